/* SPDX-License-Identifier: MIT */
#include "adv.h"

#include <stdio.h>

#include "frame_builder.h"

static void beacons(struct fb *w, const struct ble_ad *ad)
{
	const struct ble_eddystone *e = &ad->eddystone;
	char v[BLE_UUID_STR_LEN];

	if (ad->has_ibeacon) {
		const uint8_t *u = ad->ibeacon.uuid;

		snprintf(v, sizeof(v),
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
			 u[12], u[13], u[14], u[15]);
		fb_str(w, LABGW_DATA, "ibeacon.uuid", v);
		fb_int(w, LABGW_DATA, "ibeacon.major", ad->ibeacon.major);
		fb_int(w, LABGW_DATA, "ibeacon.minor", ad->ibeacon.minor);
		fb_int(w, LABGW_DATA, "ibeacon.tx_power", ad->ibeacon.power);
	}
	switch (e->frame) {
	case BLE_EDDYSTONE_NONE:
		break;
	case BLE_EDDYSTONE_UID:
		fb_str(w, LABGW_DATA, "eddystone.frame", "uid");
		fb_hex(w, LABGW_DATA, "eddystone.namespace", e->ns, sizeof(e->ns));
		fb_hex(w, LABGW_DATA, "eddystone.instance", e->instance, sizeof(e->instance));
		fb_int(w, LABGW_DATA, "eddystone.tx_power", e->tx_power);
		break;
	case BLE_EDDYSTONE_URL:
		fb_str(w, LABGW_DATA, "eddystone.frame", "url");
		fb_str(w, LABGW_DATA, "eddystone.url", e->url);
		fb_int(w, LABGW_DATA, "eddystone.tx_power", e->tx_power);
		break;
	case BLE_EDDYSTONE_TLM:
		fb_str(w, LABGW_DATA, "eddystone.frame", "tlm");
		if (e->has_battery)
			fb_int(w, LABGW_DATA, "eddystone.battery_mv", e->battery_mv);
		if (e->has_temp)
			fb_double(w, LABGW_DATA, "eddystone.temp_c", e->temp / 256.0);
		fb_int(w, LABGW_DATA, "eddystone.adv_count", e->adv_count);
		fb_int(w, LABGW_DATA, "eddystone.uptime_s", e->sec_count / 10);
		break;
	}
}

int ble_adv_fields(const struct labgw_host *h, struct labgw_frame *f,
		   const struct ble_adv_meta *meta, const struct ble_ad *ad)
{
	struct fb w = {.h = h, .f = f, .err = 0};
	char key[64], v[BLE_UUID_STR_LEN];

	fb_dev(&w, meta->identity ? meta->identity : meta->addr);
	if (meta->has_rssi)
		fb_int(&w, LABGW_SIG, "rssi", meta->rssi);
	if (ad->has_tx_power)
		fb_int(&w, LABGW_SIG, "tx_power", ad->tx_power);
	fb_str(&w, LABGW_DATA, "addr", meta->addr);
	fb_str(&w, LABGW_DATA, "addr_type", meta->random ? "random" : "public");
	if (meta->identity)
		fb_bool(&w, LABGW_DATA, "resolved", true);
	if (ad->has_flags)
		fb_int(&w, LABGW_DATA, "flags", ad->flags);
	if (ad->has_name)
		fb_str(&w, LABGW_DATA, "name", ad->name);
	if (ad->has_appearance)
		fb_int(&w, LABGW_DATA, "appearance", ad->appearance);
	for (size_t i = 0; i < ad->n_mfr; i++) {
		snprintf(key, sizeof(key), "manufacturer_data.%04x", ad->mfr[i].company);
		fb_hex(&w, LABGW_DATA, key, ad->mfr[i].data, ad->mfr[i].len);
	}
	for (size_t i = 0; i < ad->n_svc; i++) {
		ble_uuid_str(&ad->svc[i].uuid, v);
		snprintf(key, sizeof(key), "service_data.%s", v);
		fb_hex(&w, LABGW_DATA, key, ad->svc[i].data, ad->svc[i].len);
	}
	for (size_t i = 0; i < ad->n_uuids; i++) {
		ble_uuid_str(&ad->uuids[i].uuid, v);
		fb_append(&w, LABGW_DATA, "uuids", v);
	}
	beacons(&w, ad);
	if (ad->truncated)
		fb_bool(&w, LABGW_DATA, "truncated", true);
	return w.err;
}
