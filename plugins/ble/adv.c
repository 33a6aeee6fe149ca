/* SPDX-License-Identifier: MIT */
#include "adv.h"

#include <stdio.h>

/* The first failing setter sticks in err; the rest are skipped. */
struct fw {
	const struct labgw_host *h;
	struct labgw_frame *f;
	int err;
};

static void w_int(struct fw *w, enum labgw_section s, const char *key, int64_t v)
{
	if (w->err >= 0)
		w->err = w->h->frame_set_int(w->f, s, key, v);
}

static void w_double(struct fw *w, enum labgw_section s, const char *key, double v)
{
	if (w->err >= 0)
		w->err = w->h->frame_set_double(w->f, s, key, v);
}

static void w_bool(struct fw *w, enum labgw_section s, const char *key, bool v)
{
	if (w->err >= 0)
		w->err = w->h->frame_set_bool(w->f, s, key, v);
}

static void w_str(struct fw *w, enum labgw_section s, const char *key, const char *v)
{
	if (w->err >= 0)
		w->err = w->h->frame_set_str(w->f, s, key, v);
}

static void w_hex(struct fw *w, enum labgw_section s, const char *key, const void *v, size_t n)
{
	if (w->err >= 0)
		w->err = w->h->frame_set_hex(w->f, s, key, v, n);
}

static void w_append(struct fw *w, enum labgw_section s, const char *key, const char *v)
{
	if (w->err >= 0)
		w->err = w->h->frame_append_str(w->f, s, key, v);
}

static void beacons(struct fw *w, const struct ble_ad *ad)
{
	const struct ble_eddystone *e = &ad->eddystone;
	char v[BLE_UUID_STR_LEN];

	if (ad->has_ibeacon) {
		const uint8_t *u = ad->ibeacon.uuid;

		snprintf(v, sizeof(v),
			 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11],
			 u[12], u[13], u[14], u[15]);
		w_str(w, LABGW_DATA, "ibeacon.uuid", v);
		w_int(w, LABGW_DATA, "ibeacon.major", ad->ibeacon.major);
		w_int(w, LABGW_DATA, "ibeacon.minor", ad->ibeacon.minor);
		w_int(w, LABGW_DATA, "ibeacon.tx_power", ad->ibeacon.power);
	}
	switch (e->frame) {
	case BLE_EDDYSTONE_NONE:
		break;
	case BLE_EDDYSTONE_UID:
		w_str(w, LABGW_DATA, "eddystone.frame", "uid");
		w_hex(w, LABGW_DATA, "eddystone.namespace", e->ns, sizeof(e->ns));
		w_hex(w, LABGW_DATA, "eddystone.instance", e->instance, sizeof(e->instance));
		w_int(w, LABGW_DATA, "eddystone.tx_power", e->tx_power);
		break;
	case BLE_EDDYSTONE_URL:
		w_str(w, LABGW_DATA, "eddystone.frame", "url");
		w_str(w, LABGW_DATA, "eddystone.url", e->url);
		w_int(w, LABGW_DATA, "eddystone.tx_power", e->tx_power);
		break;
	case BLE_EDDYSTONE_TLM:
		w_str(w, LABGW_DATA, "eddystone.frame", "tlm");
		if (e->has_battery)
			w_int(w, LABGW_DATA, "eddystone.battery_mv", e->battery_mv);
		if (e->has_temp)
			w_double(w, LABGW_DATA, "eddystone.temp_c", e->temp / 256.0);
		w_int(w, LABGW_DATA, "eddystone.adv_count", e->adv_count);
		w_int(w, LABGW_DATA, "eddystone.uptime_s", e->sec_count / 10);
		break;
	}
}

int ble_adv_fields(const struct labgw_host *h, struct labgw_frame *f,
		   const struct ble_adv_meta *meta, const struct ble_ad *ad)
{
	struct fw w = {.h = h, .f = f, .err = 0};
	char key[64], v[BLE_UUID_STR_LEN];

	w.err = h->frame_set_dev(f, meta->identity ? meta->identity : meta->addr);
	if (meta->has_rssi)
		w_int(&w, LABGW_SIG, "rssi", meta->rssi);
	if (ad->has_tx_power)
		w_int(&w, LABGW_SIG, "tx_power", ad->tx_power);
	w_str(&w, LABGW_DATA, "addr", meta->addr);
	w_str(&w, LABGW_DATA, "addr_type", meta->random ? "random" : "public");
	if (meta->identity)
		w_bool(&w, LABGW_DATA, "resolved", true);
	if (ad->has_flags)
		w_int(&w, LABGW_DATA, "flags", ad->flags);
	if (ad->has_name)
		w_str(&w, LABGW_DATA, "name", ad->name);
	if (ad->has_appearance)
		w_int(&w, LABGW_DATA, "appearance", ad->appearance);
	for (size_t i = 0; i < ad->n_mfr; i++) {
		snprintf(key, sizeof(key), "manufacturer_data.%04x", ad->mfr[i].company);
		w_hex(&w, LABGW_DATA, key, ad->mfr[i].data, ad->mfr[i].len);
	}
	for (size_t i = 0; i < ad->n_svc; i++) {
		ble_uuid_str(&ad->svc[i].uuid, v);
		snprintf(key, sizeof(key), "service_data.%s", v);
		w_hex(&w, LABGW_DATA, key, ad->svc[i].data, ad->svc[i].len);
	}
	for (size_t i = 0; i < ad->n_uuids; i++) {
		ble_uuid_str(&ad->uuids[i].uuid, v);
		w_append(&w, LABGW_DATA, "uuids", v);
	}
	beacons(&w, ad);
	if (ad->truncated)
		w_bool(&w, LABGW_DATA, "truncated", true);
	return w.err;
}
