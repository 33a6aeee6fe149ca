/* libFuzzer target: BLE advertising data (plugins/ble/ad.c), as received
 * or as rebuilt from what bluetoothd reports. The input is one report.
 * Every decoded field is read (so that ASan sees a bad pointer or length),
 * what was parsed is built again and must parse to the same fields, and
 * the UUID and address text helpers get the raw bytes too. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "../../plugins/ble/ad.h"
#include "../../plugins/ble/rpa.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct ble_ad ad, back;

/* Folds the bytes into a sum, so that none of the reads is optimised away. */
static volatile unsigned sink;

static unsigned touch(const void *p, size_t n)
{
	const uint8_t *b = p;
	unsigned s = 0;

	for (size_t i = 0; i < n; i++)
		s += b[i];
	return s;
}

static bool inside(const uint8_t *p, size_t n, const uint8_t *buf, size_t len)
{
	return p >= buf && n <= len && (size_t)(p - buf) <= len - n;
}

static void walk(const struct ble_ad *a, const uint8_t *buf, size_t len)
{
	char s[BLE_UUID_STR_LEN];
	unsigned sum = 0;

	if (a->len > len || a->n_uuids > BLE_AD_UUIDS_MAX || a->n_mfr > BLE_AD_MFR_MAX ||
	    a->n_svc > BLE_AD_SVC_MAX)
		__builtin_trap();
	if (a->has_name) {
		if (a->name_len > BLE_AD_NAME_MAX || strlen(a->name) != a->name_len ||
		    !ble_utf8_valid((const uint8_t *)a->name, a->name_len))
			__builtin_trap();
	}
	for (size_t i = 0; i < a->n_uuids; i++) {
		size_t n = ble_uuid_str(&a->uuids[i].uuid, s);
		struct ble_uuid u;

		if (n != strlen(s) || !ble_uuid_parse(s, &u) ||
		    !ble_uuid_equal(&u, &a->uuids[i].uuid))
			__builtin_trap();
		sum += a->uuids[i].uuid.bits;
	}
	for (size_t i = 0; i < a->n_mfr; i++) {
		if (!inside(a->mfr[i].data, a->mfr[i].len, buf, len))
			__builtin_trap();
		sum += touch(a->mfr[i].data, a->mfr[i].len) + a->mfr[i].company;
	}
	for (size_t i = 0; i < a->n_svc; i++) {
		if (!inside(a->svc[i].data, a->svc[i].len, buf, len))
			__builtin_trap();
		sum += touch(a->svc[i].data, a->svc[i].len) +
		       (unsigned)ble_uuid_str(&a->svc[i].uuid, s);
	}
	if (a->has_ibeacon)
		sum += touch(&a->ibeacon, sizeof(a->ibeacon));
	switch (a->eddystone.frame) {
	case BLE_EDDYSTONE_NONE:
		break;
	case BLE_EDDYSTONE_UID:
		sum += touch(a->eddystone.ns, 10) + touch(a->eddystone.instance, 6);
		break;
	case BLE_EDDYSTONE_URL:
		if (strlen(a->eddystone.url) >= BLE_EDDYSTONE_URL_LEN)
			__builtin_trap();
		for (const char *c = a->eddystone.url; *c; c++) {
			if (*c <= 0x20 || *c >= 0x7f)
				__builtin_trap();
		}
		break;
	case BLE_EDDYSTONE_TLM:
		sum += a->eddystone.battery_mv + (unsigned)a->eddystone.temp +
		       a->eddystone.adv_count + a->eddystone.sec_count;
		break;
	}
	sink = sum;
}

/* true when an add succeeded, false when the report is full; traps on
 * anything else (what was parsed is always valid input to the builder) */
static bool added(int err)
{
	if (err && err != -ENOSPC)
		__builtin_trap();
	return !err;
}

/* Builds again what was kept and checks that it parses the same. Only when
 * nothing was lost: no overflow, no bad name, nothing malformed or unknown. */
static void round_trip(const struct ble_ad *a)
{
	static uint8_t out[BLE_AD_MAX];
	struct ble_uuid u[BLE_AD_UUIDS_MAX];
	struct ble_ad_builder b;

	if (a->uuids_over || a->mfr_over || a->svc_over || a->bad_name || a->n_unknown ||
	    a->n_malformed)
		return;
	ble_ad_builder_init(&b, out, sizeof(out));
	for (size_t i = 0; i < a->n_uuids; i++)
		u[i] = a->uuids[i].uuid;
	/* the rebuilt report may need more room than the input (Flags without
	 * data gets a byte, a list of mixed sizes is split by size): running
	 * out of it is no failure, anything else is */
	if (a->has_flags && !added(ble_ad_add_flags(&b, a->flags)))
		return;
	if (a->has_name && !added(ble_ad_add_name(&b, a->name)))
		return;
	/* -128 dBm fits the byte but is outside the TX Power Level's range */
	if (a->has_tx_power && a->tx_power != -128 && !added(ble_ad_add_tx_power(&b, a->tx_power)))
		return;
	if (a->has_appearance && !added(ble_ad_add_appearance(&b, a->appearance)))
		return;
	if (!added(ble_ad_add_uuids(&b, u, a->n_uuids)))
		return;
	for (size_t i = 0; i < a->n_mfr; i++) {
		if (!added(ble_ad_add_mfr(&b, a->mfr[i].company, a->mfr[i].data, a->mfr[i].len)))
			return;
	}
	for (size_t i = 0; i < a->n_svc; i++) {
		if (!added(ble_ad_add_svc(&b, &a->svc[i].uuid, a->svc[i].data, a->svc[i].len)))
			return;
	}
	if (ble_ad_parse(out, b.len, &back) || back.len != b.len || back.truncated ||
	    back.n_malformed || back.n_uuids != a->n_uuids || back.n_mfr != a->n_mfr ||
	    back.n_svc != a->n_svc || back.has_name != a->has_name ||
	    (a->has_name && strcmp(back.name, a->name)) || back.flags != a->flags ||
	    back.has_ibeacon != a->has_ibeacon || back.eddystone.frame != a->eddystone.frame ||
	    back.eddystone_undecoded != a->eddystone_undecoded)
		__builtin_trap();
	if (a->has_tx_power && a->tx_power != -128 && back.tx_power != a->tx_power)
		__builtin_trap();
	if (back.has_appearance != a->has_appearance || back.appearance != a->appearance)
		__builtin_trap();
	/* the same UUIDs, grouped by size now */
	for (size_t i = 0; i < a->n_uuids; i++) {
		size_t in_a = 0, in_back = 0;

		for (size_t j = 0; j < a->n_uuids; j++) {
			in_a += ble_uuid_equal(&a->uuids[j].uuid, &a->uuids[i].uuid);
			in_back += ble_uuid_equal(&back.uuids[j].uuid, &a->uuids[i].uuid);
		}
		if (in_a != in_back)
			__builtin_trap();
	}
	for (size_t i = 0; i < a->n_mfr; i++) {
		if (back.mfr[i].company != a->mfr[i].company || back.mfr[i].len != a->mfr[i].len ||
		    memcmp(back.mfr[i].data, a->mfr[i].data, a->mfr[i].len))
			__builtin_trap();
	}
	for (size_t i = 0; i < a->n_svc; i++) {
		if (!ble_uuid_equal(&back.svc[i].uuid, &a->svc[i].uuid) ||
		    back.svc[i].len != a->svc[i].len ||
		    memcmp(back.svc[i].data, a->svc[i].data, a->svc[i].len))
			__builtin_trap();
	}
	if (a->eddystone.frame == BLE_EDDYSTONE_URL && strcmp(back.eddystone.url, a->eddystone.url))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	int err;

	/* the text helpers on the raw bytes */
	if (size < 64) {
		char s[64];
		struct ble_uuid u;
		uint8_t addr[BLE_ADDR_LEN], irk[BLE_IRK_LEN];

		memcpy(s, data, size);
		s[size] = '\0';
		if (ble_uuid_parse(s, &u)) {
			char again[BLE_UUID_STR_LEN];
			struct ble_uuid v;

			ble_uuid_str(&u, again);
			if (!ble_uuid_parse(again, &v) || !ble_uuid_equal(&u, &v) ||
			    v.bits != u.bits)
				__builtin_trap();
		}
		if (ble_addr_parse(s, addr)) {
			char again[BLE_ADDR_STR_LEN];

			ble_addr_str(addr, again);
			if (strcasecmp(again, s))
				__builtin_trap();
		}
		(void)ble_irk_parse(s, irk);
	}

	err = ble_ad_parse(data, size, &ad);
	if (size > BLE_AD_MAX) {
		if (err != -E2BIG)
			__builtin_trap();
		return 0;
	}
	if (err)
		__builtin_trap();
	walk(&ad, data, size);
	round_trip(&ad);
	return 0;
}
