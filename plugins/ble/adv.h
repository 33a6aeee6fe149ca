/* SPDX-License-Identifier: MIT */
/*
 * An advertisement as a frame: the fields of an `rx.ble.adv` frame (DESIGN
 * §5, docs/api.md) written from decoded advertising data. The one writer of
 * that frame type's fields for the ble module and the sim, so both give the
 * same shape.
 */
#ifndef LABGW_BLE_ADV_H
#define LABGW_BLE_ADV_H

#include <stdbool.h>
#include <stdint.h>

#include <labgw/plugin.h>

#include "ad.h"

/* What is known of an advertisement besides its data. */
struct ble_adv_meta {
	const char *addr; /* lowercase "aa:bb:cc:dd:ee:ff", as heard */
	bool random;	  /* address type: random (else public) */
	bool has_rssi;
	int rssi; /* dBm */
	/* the identity address an RPA resolved to (dev.id is then that
	 * address and `addr` the RPA heard), or NULL */
	const char *identity;
};

/*
 * Sets dev, sig and data of frame `f` from `meta` and `ad` (which must have
 * come from ble_ad_parse); the payload is the caller's to set. Returns 0 or
 * the first setter's negative errno.
 */
int ble_adv_fields(const struct labgw_host *h, struct labgw_frame *f,
		   const struct ble_adv_meta *meta, const struct ble_ad *ad);

#endif
