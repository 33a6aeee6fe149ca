// SPDX-License-Identifier: MIT
/*
 * BLE advertising data (plugins/ble/ad.c): real adverts (iBeacon, Eddystone
 * UID/URL/TLM, a phone, a wearable), every edge of the AD structure format,
 * the beacons' reserved values, the builder and its round trip through the
 * parser, the UUID helpers, and the sim radio's adverts decoded the way the
 * simulator says it encoded them.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/ble/ad.h"
#include "../../plugins/sim/gen.h"

#define BYTES(...) ((const uint8_t[]){__VA_ARGS__}), sizeof((const uint8_t[]){__VA_ARGS__})

static struct ble_ad ad, ad2;

static void assert_uuid_str(const struct ble_uuid *u, const char *want)
{
	char s[BLE_UUID_STR_LEN];

	assert_int_equal(ble_uuid_str(u, s), strlen(want));
	assert_string_equal(s, want);
}

/* ---- real adverts ------------------------------------------------------ */

/* flags; Apple manufacturer data: 02 15, UUID, major 1, minor 2, -59 dBm */
static const uint8_t IBEACON[] = {0x02, 0x01, 0x06, 0x1a, 0xff, 0x4c, 0x00, 0x02, 0x15, 0xe2,
				  0xc5, 0x6d, 0xb5, 0xdf, 0xfb, 0x48, 0xd2, 0xb0, 0x60, 0xd0,
				  0xf5, 0xa7, 0x10, 0x96, 0xe0, 0x00, 0x01, 0x00, 0x02, 0xc5};

static void ibeacon(void **st)
{
	static const uint8_t uuid[16] = {0xe2, 0xc5, 0x6d, 0xb5, 0xdf, 0xfb, 0x48, 0xd2,
					 0xb0, 0x60, 0xd0, 0xf5, 0xa7, 0x10, 0x96, 0xe0};

	(void)st;
	assert_int_equal(sizeof(IBEACON), 30);
	assert_int_equal(ble_ad_parse(IBEACON, sizeof(IBEACON), &ad), 0);
	assert_int_equal(ad.len, 30);
	assert_false(ad.truncated);
	assert_true(ad.has_flags);
	assert_int_equal(ad.flags, BLE_AD_FLAG_LE_GENERAL | BLE_AD_FLAG_NO_BREDR);
	assert_int_equal(ad.n_mfr, 1);
	assert_int_equal(ad.mfr[0].company, 0x004c);
	assert_int_equal(ad.mfr[0].len, 23);
	assert_ptr_equal(ad.mfr[0].data, IBEACON + 7);
	assert_true(ad.has_ibeacon);
	assert_memory_equal(ad.ibeacon.uuid, uuid, 16);
	assert_int_equal(ad.ibeacon.major, 1);
	assert_int_equal(ad.ibeacon.minor, 2);
	assert_int_equal(ad.ibeacon.power, -59);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
	assert_false(ad.has_name);
	assert_int_equal(ad.n_unknown + ad.n_malformed + ad.n_uuids + ad.n_svc, 0);
}

static void ibeacon_lookalikes(void **st)
{
	uint8_t b[sizeof(IBEACON)];

	(void)st;
	/* another company */
	memcpy(b, IBEACON, sizeof(b));
	b[5] = 0x4d;
	assert_int_equal(ble_ad_parse(b, sizeof(b), &ad), 0);
	assert_false(ad.has_ibeacon);
	assert_int_equal(ad.n_mfr, 1);
	assert_int_equal(ad.mfr[0].company, 0x004d);
	/* Apple, but not type 02 length 15 */
	memcpy(b, IBEACON, sizeof(b));
	b[8] = 0x16;
	assert_int_equal(ble_ad_parse(b, sizeof(b), &ad), 0);
	assert_false(ad.has_ibeacon);
	/* one byte short: the structure ends a byte earlier */
	memcpy(b, IBEACON, sizeof(b));
	b[3] = 0x19;
	assert_int_equal(ble_ad_parse(b, sizeof(b) - 1, &ad), 0);
	assert_false(ad.has_ibeacon);
	assert_int_equal(ad.mfr[0].len, 22);
	/* Apple's other manufacturer data */
	assert_int_equal(ble_ad_parse(BYTES(0x06, 0xff, 0x4c, 0x00, 0x10, 0x01, 0x1b), &ad), 0);
	assert_false(ad.has_ibeacon);
	assert_int_equal(ad.mfr[0].len, 3);
}

static const uint8_t EDDY_UID[] = {0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe, 0x17, 0x16, 0xaa, 0xfe,
				   0x00, 0xe7, 0x8b, 0x4a, 0x00, 0x21, 0x5b, 0x3f, 0x9c, 0x70, 0x11,
				   0xe2, 0x00, 0x00, 0x00, 0x12, 0x34, 0x56, 0x00, 0x00};

static void eddystone_uid(void **st)
{
	static const uint8_t ns[10] = {0x8b, 0x4a, 0x00, 0x21, 0x5b, 0x3f, 0x9c, 0x70, 0x11, 0xe2};
	static const uint8_t inst[6] = {0x00, 0x00, 0x00, 0x12, 0x34, 0x56};

	(void)st;
	assert_int_equal(ble_ad_parse(EDDY_UID, sizeof(EDDY_UID), &ad), 0);
	assert_int_equal(ad.len, sizeof(EDDY_UID));
	assert_int_equal(ad.n_uuids, 1);
	assert_true(ble_uuid_is16(&ad.uuids[0].uuid, 0xfeaa));
	assert_int_equal(ad.uuids[0].uuid.bits, 16);
	assert_true(ad.uuids[0].complete);
	assert_int_equal(ad.n_svc, 1);
	assert_uuid_str(&ad.svc[0].uuid, "feaa");
	assert_int_equal(ad.svc[0].len, 20);
	assert_ptr_equal(ad.svc[0].data, EDDY_UID + 11);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_UID);
	assert_string_equal(ble_eddystone_frame_name(ad.eddystone.frame), "uid");
	assert_int_equal(ad.eddystone.tx_power, -25);
	assert_memory_equal(ad.eddystone.ns, ns, 10);
	assert_memory_equal(ad.eddystone.instance, inst, 6);
	assert_false(ad.eddystone_undecoded);
	assert_false(ad.has_ibeacon);

	/* without the two reserved bytes */
	uint8_t b[sizeof(EDDY_UID)];

	memcpy(b, EDDY_UID, sizeof(b));
	b[7] = 0x15;
	assert_int_equal(ble_ad_parse(b, sizeof(b) - 2, &ad), 0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_UID);
	assert_memory_equal(ad.eddystone.instance, inst, 6);
	/* 19 bytes is neither */
	b[7] = 0x16;
	assert_int_equal(ble_ad_parse(b, sizeof(b) - 1, &ad), 0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
	assert_true(ad.eddystone_undecoded);
	assert_int_equal(ad.n_svc, 1);
}

/* "https://www." "example" ".com/" "labgw" */
static const uint8_t EDDY_URL[] = {0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe, 0x13, 0x16,
				   0xaa, 0xfe, 0x10, 0xeb, 0x01, 'e',  'x',  'a',  'm',
				   'p',	 'l',  'e',  0x00, 'l',	 'a',  'b',  'g',  'w'};

static void eddystone_url(void **st)
{
	(void)st;
	assert_int_equal(ble_ad_parse(EDDY_URL, sizeof(EDDY_URL), &ad), 0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_URL);
	assert_string_equal(ble_eddystone_frame_name(ad.eddystone.frame), "url");
	assert_int_equal(ad.eddystone.tx_power, -21);
	assert_string_equal(ad.eddystone.url, "https://www.example.com/labgw");
	assert_false(ad.eddystone_undecoded);
}

/* service data of an Eddystone-URL frame: scheme, then the encoded URL */
static void url_of(const uint8_t *enc, size_t n, struct ble_ad *out)
{
	uint8_t b[64] = {0x03, 0x03, 0xaa, 0xfe, (uint8_t)(5 + n), 0x16, 0xaa, 0xfe, 0x10, 0x00};

	memcpy(b + 10, enc, n);
	assert_int_equal(ble_ad_parse(b, 10 + n, out), 0);
	assert_false(out->truncated);
}

static void eddystone_url_codes(void **st)
{
	static const char *const want[] = {".com/", ".org/", ".edu/", ".net/", ".info/",
					   ".biz/", ".gov/", ".com",  ".org",  ".edu",
					   ".net",  ".info", ".biz",  ".gov"};
	static const char *const scheme[] = {"http://www.", "https://www.", "http://", "https://"};
	char s[64];

	(void)st;
	for (uint8_t c = 0; c < 14; c++) {
		uint8_t enc[] = {0x02, 'x', c, 'y'};

		url_of(enc, sizeof(enc), &ad);
		assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_URL);
		snprintf(s, sizeof(s), "http://x%sy", want[c]);
		assert_string_equal(ad.eddystone.url, s);
	}
	for (uint8_t i = 0; i < 4; i++) {
		uint8_t enc[] = {i, 'a', '.', 'b'};

		url_of(enc, sizeof(enc), &ad);
		snprintf(s, sizeof(s), "%sa.b", scheme[i]);
		assert_string_equal(ad.eddystone.url, s);
	}
	/* reserved: codes 0x0e..0x20 and 0x7f..0xff, schemes from 4 */
	static const uint8_t bad[] = {0x0e, 0x1f, 0x20, 0x7f, 0x80, 0xff};

	for (size_t i = 0; i < sizeof(bad); i++) {
		uint8_t enc[] = {0x00, 'a', bad[i], 'b'};

		url_of(enc, sizeof(enc), &ad);
		assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
		assert_true(ad.eddystone_undecoded);
		assert_string_equal(ad.eddystone.url, "");
		assert_int_equal(ad.n_svc, 1); /* the raw service data stays */
	}
	url_of(BYTES(0x04, 'a', 'b'), &ad);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
	assert_true(ad.eddystone_undecoded);
	/* the longest: 17 expansion codes of 6 characters, then one too many */
	uint8_t enc[19];

	enc[0] = 0x01;
	memset(enc + 1, 0x04, 18);
	url_of(enc, 18, &ad);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_URL);
	assert_int_equal(strlen(ad.eddystone.url), 12 + 17 * 6);
	assert_int_equal(strlen(ad.eddystone.url), BLE_EDDYSTONE_URL_LEN - 1);
	url_of(enc, 19, &ad);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
	assert_true(ad.eddystone_undecoded);
	/* a scheme and nothing else */
	url_of(BYTES(0x03), &ad);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_URL);
	assert_string_equal(ad.eddystone.url, "https://");
}

/* battery 3000 mV, 23.5 °C, 0x1234 PDUs, 12345.6 s */
static const uint8_t EDDY_TLM[] = {0x02, 0x01, 0x06, 0x03, 0x03, 0xaa, 0xfe, 0x11, 0x16,
				   0xaa, 0xfe, 0x20, 0x00, 0x0b, 0xb8, 0x17, 0x80, 0x00,
				   0x00, 0x12, 0x34, 0x00, 0x01, 0xe2, 0x40};

static void eddystone_tlm(void **st)
{
	uint8_t b[sizeof(EDDY_TLM)];

	(void)st;
	assert_int_equal(ble_ad_parse(EDDY_TLM, sizeof(EDDY_TLM), &ad), 0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_TLM);
	assert_string_equal(ble_eddystone_frame_name(ad.eddystone.frame), "tlm");
	assert_true(ad.eddystone.has_battery);
	assert_int_equal(ad.eddystone.battery_mv, 3000);
	assert_true(ad.eddystone.has_temp);
	assert_int_equal(ad.eddystone.temp, 23 * 256 + 128);
	assert_true(ad.eddystone.temp / 256.0 == 23.5);
	assert_int_equal(ad.eddystone.adv_count, 0x1234);
	assert_int_equal(ad.eddystone.sec_count, 123456);

	/* below zero: -0.5 °C; "not supported" values */
	memcpy(b, EDDY_TLM, sizeof(b));
	b[15] = 0xff;
	b[16] = 0x80;
	assert_int_equal(ble_ad_parse(b, sizeof(b), &ad), 0);
	assert_int_equal(ad.eddystone.temp, -128);
	b[13] = b[14] = 0;
	b[15] = 0x80;
	b[16] = 0x00;
	assert_int_equal(ble_ad_parse(b, sizeof(b), &ad), 0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_TLM);
	assert_false(ad.eddystone.has_battery);
	assert_false(ad.eddystone.has_temp);
	assert_int_equal(ad.eddystone.adv_count, 0x1234);

	/* version 1 is encrypted (eTLM); others unknown */
	for (int v = 1; v < 3; v++) {
		memcpy(b, EDDY_TLM, sizeof(b));
		b[12] = (uint8_t)v;
		assert_int_equal(ble_ad_parse(b, sizeof(b), &ad), 0);
		assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
		assert_true(ad.eddystone_undecoded);
		assert_false(ad.eddystone.has_battery);
	}
	/* a byte short */
	memcpy(b, EDDY_TLM, sizeof(b));
	b[7] = 0x10;
	assert_int_equal(ble_ad_parse(b, sizeof(b) - 1, &ad), 0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
	assert_true(ad.eddystone_undecoded);
	/* EID (0x30) and empty service data are not decoded */
	assert_int_equal(
		ble_ad_parse(BYTES(0x0e, 0x16, 0xaa, 0xfe, 0x30, 0xf0, 1, 2, 3, 4, 5, 6, 7, 8, 9),
			     &ad),
		0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
	assert_true(ad.eddystone_undecoded);
	assert_int_equal(ble_ad_parse(BYTES(0x03, 0x16, 0xaa, 0xfe), &ad), 0);
	assert_true(ad.eddystone_undecoded);
	assert_int_equal(ad.n_svc, 1);
	assert_int_equal(ad.svc[0].len, 0);
	/* the same frame under another UUID is just service data */
	memcpy(b, EDDY_TLM, sizeof(b));
	b[9] = 0xab;
	assert_int_equal(ble_ad_parse(b, sizeof(b), &ad), 0);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
	assert_false(ad.eddystone_undecoded);
	assert_uuid_str(&ad.svc[0].uuid, "feab");
}

static void eddystone_first_decoded_frame_counts(void **st)
{
	uint8_t b[64];
	size_t n = 0;

	(void)st;
	/* a bad URL frame, then TLM, then UID */
	memcpy(b, (const uint8_t[]){0x06, 0x16, 0xaa, 0xfe, 0x10, 0x00, 0x04}, 7);
	n += 7;
	memcpy(b + n, EDDY_TLM + 7, sizeof(EDDY_TLM) - 7);
	n += sizeof(EDDY_TLM) - 7;
	memcpy(b + n, EDDY_UID + 7, sizeof(EDDY_UID) - 7);
	n += sizeof(EDDY_UID) - 7;
	assert_int_equal(ble_ad_parse(b, n, &ad), 0);
	assert_int_equal(ad.len, n);
	assert_int_equal(ad.n_svc, 3);
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_TLM);
	assert_int_equal(ad.eddystone.battery_mv, 3000);
	assert_true(ad.eddystone_undecoded);
}

/* A phone: flags, a shortened and a complete name (UTF-8), TX power,
 * appearance, complete 16-bit and incomplete 128-bit UUIDs, Samsung
 * manufacturer data, and a type this parser does not know. */
static const uint8_t PHONE[] = {
	0x02, 0x01, 0x1a,						  /* flags */
	0x04, 0x08, 'M',  'a',	'x',					  /* shortened name */
	0x0a, 0x09, 'M',  'a',	'x',  0xe2, 0x80, 0x99, 's',  0x20, 0xf0, /* bad UTF-8 */
	0x02, 0x0a, 0x0c,						  /* TX power 12 dBm */
	0x03, 0x19, 0x40, 0x00,						  /* appearance: phone */
	0x05, 0x03, 0x0d, 0x18, 0x0f, 0x18,				  /* 180d, 180f */
	0x11, 0x06, 0x9e, 0xca, 0xdc, 0x24, 0x0e, 0xe5, 0xa9, 0xe0, 0x93,
	0xf3, 0xa3, 0xb5, 0x01, 0x00, 0x40, 0x6e,	/* Nordic UART */
	0x07, 0xff, 0x75, 0x00, 0x42, 0x04, 0x01, 0x80, /* Samsung */
	0x03, 0x2c, 0x01, 0x02,				/* unknown type */
};

static void phone(void **st)
{
	(void)st;
	assert_int_equal(ble_ad_parse(PHONE, sizeof(PHONE), &ad), 0);
	assert_int_equal(ad.len, sizeof(PHONE));
	assert_false(ad.truncated);
	assert_int_equal(ad.flags, 0x1a);
	/* the complete name is not valid UTF-8 (0xf0 starts a 4-byte form),
	 * so the shortened one is reported */
	assert_true(ad.has_name);
	assert_false(ad.name_complete);
	assert_true(ad.bad_name);
	assert_string_equal(ad.name, "Max");
	assert_int_equal(ad.name_len, 3);
	assert_true(ad.has_tx_power);
	assert_int_equal(ad.tx_power, 12);
	assert_true(ad.has_appearance);
	assert_int_equal(ad.appearance, 0x0040);
	assert_int_equal(ad.n_uuids, 3);
	assert_uuid_str(&ad.uuids[0].uuid, "180d");
	assert_uuid_str(&ad.uuids[1].uuid, "180f");
	assert_true(ad.uuids[0].complete && ad.uuids[1].complete);
	assert_uuid_str(&ad.uuids[2].uuid, "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
	assert_int_equal(ad.uuids[2].uuid.bits, 128);
	assert_false(ad.uuids[2].complete);
	assert_int_equal(ad.n_mfr, 1);
	assert_int_equal(ad.mfr[0].company, 0x0075);
	assert_int_equal(ad.mfr[0].len, 4);
	assert_memory_equal(ad.mfr[0].data, ((const uint8_t[]){0x42, 0x04, 0x01, 0x80}), 4);
	assert_int_equal(ad.n_unknown, 1);
	assert_int_equal(ad.n_malformed, 0);

	/* with the complete name fixed, it wins */
	uint8_t b[sizeof(PHONE)];

	memcpy(b, PHONE, sizeof(b));
	b[18] = '!';
	assert_int_equal(ble_ad_parse(b, sizeof(b), &ad), 0);
	assert_true(ad.has_name);
	assert_true(ad.name_complete);
	assert_false(ad.bad_name);
	assert_string_equal(ad.name, "Max\xe2\x80\x99s !");
	assert_int_equal(ad.name_len, 9);
}

/* ---- edges of the format ----------------------------------------------- */

static void empty_and_padding(void **st)
{
	uint8_t zeros[31] = {0};

	(void)st;
	assert_int_equal(ble_ad_parse(NULL, 0, &ad), 0);
	assert_int_equal(ad.len, 0);
	assert_false(ad.has_flags);
	assert_int_equal(ble_ad_parse(zeros, sizeof(zeros), &ad), 0);
	assert_int_equal(ad.len, 0);
	assert_false(ad.truncated);

	/* a zero length ends the report: what follows is not looked at */
	assert_int_equal(ble_ad_parse(BYTES(0x02, 0x01, 0x06, 0x00, 0x02, 0x0a, 0x04), &ad), 0);
	assert_int_equal(ad.len, 3);
	assert_true(ad.has_flags);
	assert_false(ad.has_tx_power);
	assert_false(ad.truncated);

	/* a structure with a type and no data */
	assert_int_equal(ble_ad_parse(BYTES(0x01, 0x09, 0x01, 0x01), &ad), 0);
	assert_int_equal(ad.len, 4);
	assert_true(ad.has_name);
	assert_int_equal(ad.name_len, 0);
	assert_string_equal(ad.name, "");
	assert_true(ad.has_flags);
	assert_int_equal(ad.flags, 0);
}

static void overrun_keeps_what_came_before(void **st)
{
	(void)st;
	/* the name says 5 bytes follow, 2 do */
	assert_int_equal(ble_ad_parse(BYTES(0x02, 0x01, 0x06, 0x05, 0x09, 'a', 'b'), &ad), 0);
	assert_true(ad.truncated);
	assert_int_equal(ad.len, 3);
	assert_true(ad.has_flags);
	assert_int_equal(ad.flags, 6);
	assert_false(ad.has_name);
	/* a length byte and nothing else */
	assert_int_equal(ble_ad_parse(BYTES(0x02, 0x01, 0x06, 0x01), &ad), 0);
	assert_true(ad.truncated);
	assert_int_equal(ad.len, 3);
	assert_int_equal(ble_ad_parse(BYTES(0xff), &ad), 0);
	assert_true(ad.truncated);
	assert_int_equal(ad.len, 0);
	/* the iBeacon cut short by one byte */
	assert_int_equal(ble_ad_parse(IBEACON, sizeof(IBEACON) - 1, &ad), 0);
	assert_true(ad.truncated);
	assert_false(ad.has_ibeacon);
	assert_int_equal(ad.n_mfr, 0);
	assert_true(ad.has_flags);
}

static void sizes(void **st)
{
	static uint8_t big[BLE_AD_MAX + 1];
	size_t off = 0;

	(void)st;
	/* 1650 bytes of 255-byte manufacturer data structures, then a tail */
	while (BLE_AD_MAX - off >= 256) {
		big[off] = 255;
		big[off + 1] = BLE_AD_MFR_DATA;
		memset(big + off + 2, (int)off, 254);
		off += 256;
	}
	big[off] = (uint8_t)(BLE_AD_MAX - off - 1);
	big[off + 1] = 0x2d;
	assert_int_equal(ble_ad_parse(big, BLE_AD_MAX, &ad), 0);
	assert_int_equal(ad.len, BLE_AD_MAX);
	assert_false(ad.truncated);
	assert_int_equal(ad.n_mfr, 6);
	assert_int_equal(ad.mfr[5].len, 252);
	assert_int_equal(ad.n_unknown, 1);
	assert_int_equal(ble_ad_parse(big, BLE_AD_MAX + 1, &ad), -E2BIG);
	assert_int_equal(ad.n_mfr, 0); /* reset on error too */
	assert_int_equal(ble_ad_parse(NULL, 3, &ad), -EINVAL);
	assert_int_equal(ble_ad_parse(big, 3, NULL), -EINVAL);
}

static void names_must_be_utf8(void **st)
{
	static const struct {
		const char *s;
		size_t n;
		bool ok;
	} cases[] = {
		{"plain", 5, true},
		{"\xc3\xa9t\xc3\xa9", 6, true}, /* été */
		{"\xe2\x98\x83", 3, true},	/* U+2603 */
		{"\xf0\x9f\x93\xa1", 4, true},	/* U+1F4E1 */
		{"\xf4\x8f\xbf\xbf", 4, true},	/* U+10FFFF */
		{"\xef\xbf\xbf", 3, true},	/* U+FFFF */
		{"name\0\0\0", 7, true},	/* padded with NULs */
		{"\xc0\xaf", 2, false},		/* overlong '/' */
		{"\xe0\x80\xaf", 3, false},	/* overlong '/' */
		{"\xf0\x80\x80\xaf", 4, false}, /* overlong '/' */
		{"\xed\xa0\x80", 3, false},	/* U+D800, a surrogate */
		{"\xf4\x90\x80\x80", 4, false}, /* U+110000 */
		{"\xf5\x80\x80\x80", 4, false}, /* no such lead byte */
		{"ab\x80", 3, false},		/* stray continuation */
		{"ab\xe2\x82", 4, false},	/* cut short */
		{"\xe2\x28\xa1", 3, false},	/* bad continuation */
		{"na\0me", 5, false},		/* NUL inside */
		{"\xff", 1, false},
	};
	uint8_t b[16];

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b[0] = (uint8_t)(cases[i].n + 1);
		b[1] = BLE_AD_NAME_COMPLETE;
		memcpy(b + 2, cases[i].s, cases[i].n);
		assert_int_equal(ble_ad_parse(b, cases[i].n + 2, &ad), 0);
		if (cases[i].ok != ad.has_name)
			fail_msg("case %zu: has_name %d", i, ad.has_name);
		assert_true(ad.bad_name == !cases[i].ok);
		if (cases[i].ok) {
			assert_int_equal(ad.name_len, strlen(cases[i].s));
			assert_string_equal(ad.name, cases[i].s);
		}
	}
	/* the longest name: 254 bytes */
	static uint8_t longest[256];

	longest[0] = 255;
	longest[1] = BLE_AD_NAME_SHORT;
	memset(longest + 2, 'n', 254);
	assert_int_equal(ble_ad_parse(longest, sizeof(longest), &ad), 0);
	assert_int_equal(ad.name_len, 254);
	assert_int_equal(strlen(ad.name), 254);
	assert_false(ad.name_complete);
	/* the first of a kind counts; complete beats shortened */
	assert_int_equal(
		ble_ad_parse(BYTES(0x02, 0x09, 'a', 0x02, 0x09, 'b', 0x02, 0x08, 'c'), &ad), 0);
	assert_string_equal(ad.name, "a");
	assert_int_equal(
		ble_ad_parse(BYTES(0x02, 0x08, 'c', 0x02, 0x08, 'd', 0x02, 0x09, 'b'), &ad), 0);
	assert_string_equal(ad.name, "b");
	assert_true(ad.name_complete);
}

static void too_many_entries_are_counted(void **st)
{
	uint8_t b[512];
	size_t n = 0;

	(void)st;
	/* 40 16-bit UUIDs: 0x1800 .. 0x1827 */
	b[n++] = 81;
	b[n++] = BLE_AD_UUID16_ALL;
	for (int i = 0; i < 40; i++) {
		b[n++] = (uint8_t)i;
		b[n++] = 0x18;
	}
	/* 2 32-bit UUIDs */
	memcpy(b + n, ((const uint8_t[]){9, BLE_AD_UUID32_SOME, 1, 2, 3, 4, 5, 6, 7, 8}), 10);
	n += 10;
	/* 10 manufacturer data and 10 service data structures */
	for (int i = 0; i < 10; i++) {
		memcpy(b + n, ((const uint8_t[]){4, 0xff, (uint8_t)i, 0x01, 0xaa}), 5);
		n += 5;
		memcpy(b + n, ((const uint8_t[]){5, 0x16, (uint8_t)i, 0x20, 0xbb, 0xcc}), 6);
		n += 6;
	}
	assert_int_equal(ble_ad_parse(b, n, &ad), 0);
	assert_int_equal(ad.len, n);
	assert_int_equal(ad.n_uuids, BLE_AD_UUIDS_MAX);
	assert_int_equal(ad.uuids_over, 40 + 2 - BLE_AD_UUIDS_MAX);
	assert_uuid_str(&ad.uuids[31].uuid, "181f");
	assert_int_equal(ad.n_mfr, BLE_AD_MFR_MAX);
	assert_int_equal(ad.mfr_over, 2);
	assert_int_equal(ad.mfr[7].company, 0x0107);
	assert_int_equal(ad.n_svc, BLE_AD_SVC_MAX);
	assert_int_equal(ad.svc_over, 2);
	assert_uuid_str(&ad.svc[7].uuid, "2007");
	assert_int_equal(ad.svc[7].len, 2);
}

static void malformed_structures_are_skipped(void **st)
{
	(void)st;
	assert_int_equal(ble_ad_parse(BYTES(0x03, 0x0a, 0x01, 0x02,	  /* TX power, 2 bytes */
					    0x02, 0x19, 0x40,		  /* appearance, 1 byte */
					    0x04, 0x03, 0x0d, 0x18, 0x0f, /* 3 bytes of UUID16 */
					    0x04, 0x05, 1, 2, 3,	  /* 3 bytes of UUID32 */
					    0x02, 0xff, 0x4c,		  /* no company id */
					    0x03, 0x20, 0x01, 0x02,	  /* short UUID32 */
					    0x05, 0x21, 1, 2, 3, 4,	  /* short UUID128 */
					    0x02, 0x0a, 0xf6),		  /* TX power -10 */
				      &ad),
			 0);
	assert_int_equal(ad.n_malformed, 7);
	assert_false(ad.has_appearance);
	assert_int_equal(ad.n_uuids + ad.n_mfr + ad.n_svc, 0);
	assert_true(ad.has_tx_power);
	assert_int_equal(ad.tx_power, -10);
	assert_false(ad.truncated);
	/* first flags, TX power and appearance count */
	assert_int_equal(
		ble_ad_parse(BYTES(0x02, 0x01, 0x06, 0x02, 0x01, 0x1a, 0x02, 0x0a, 0x01, 0x02, 0x0a,
				   0x02, 0x03, 0x19, 0xc1, 0x03, 0x03, 0x19, 0x00, 0x00),
			     &ad),
		0);
	assert_int_equal(ad.flags, 0x06);
	assert_int_equal(ad.tx_power, 1);
	assert_int_equal(ad.appearance, 0x03c1);
}

static void uuid_sizes_on_air(void **st)
{
	(void)st;
	/* 32-bit 0x0000180d, 128-bit on the base: both are "180d" */
	assert_int_equal(
		ble_ad_parse(BYTES(0x05, 0x05, 0x0d, 0x18, 0x00, 0x00, 0x05, 0x05, 0x78, 0x56, 0x34,
				   0x12, 0x11, 0x07, 0xfb, 0x34, 0x9b, 0x5f, 0x80, 0x00, 0x00, 0x80,
				   0x00, 0x10, 0x00, 0x00, 0x0d, 0x18, 0x00, 0x00),
			     &ad),
		0);
	assert_int_equal(ad.n_uuids, 3);
	assert_int_equal(ad.uuids[0].uuid.bits, 32);
	assert_uuid_str(&ad.uuids[0].uuid, "180d");
	assert_uuid_str(&ad.uuids[1].uuid, "12345678");
	assert_int_equal(ad.uuids[2].uuid.bits, 128);
	assert_uuid_str(&ad.uuids[2].uuid, "180d");
	assert_true(ble_uuid_equal(&ad.uuids[0].uuid, &ad.uuids[2].uuid));
	assert_true(ble_uuid_is16(&ad.uuids[2].uuid, 0x180d));
	assert_false(ble_uuid_is16(&ad.uuids[1].uuid, 0x5678));
}

/* ---- UUID helpers ------------------------------------------------------ */

static void uuid_text(void **st)
{
	static const char *const feaa[] = {"feaa", "FEAA", "0000feaa",
					   "0000FEAA-0000-1000-8000-00805F9B34FB",
					   "0000feaa-0000-1000-8000-00805f9b34fb"};
	static const char *const bad[] = {"",
					  "fea",
					  "feaa ",
					  " feaa",
					  "feag",
					  "0000feaa0",
					  "0000feaa-0000-1000-8000-00805f9b34f",
					  "0000feaa-0000-1000-8000-00805f9b34fbb",
					  "0000feaa00000-1000-8000-00805f9b34fb",
					  "0000feaa-0000-1000-8000_00805f9b34fb",
					  "0000feaa-0000-1000-80-0000805f9b34fb",
					  "0x00feaa"};
	struct ble_uuid u, v;
	char s[BLE_UUID_STR_LEN];

	(void)st;
	for (size_t i = 0; i < sizeof(feaa) / sizeof(feaa[0]); i++) {
		assert_true(ble_uuid_parse(feaa[i], &u));
		assert_int_equal(u.bits, 16);
		assert_true(ble_uuid_is16(&u, 0xfeaa));
		assert_uuid_str(&u, "feaa");
	}
	assert_memory_equal(u.bytes,
			    ((const uint8_t[]){0x00, 0x00, 0xfe, 0xaa, 0x00, 0x00, 0x10, 0x00, 0x80,
					       0x00, 0x00, 0x80, 0x5f, 0x9b, 0x34, 0xfb}),
			    16);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ble_uuid_parse(bad[i], &u))
			fail_msg("\"%s\" parsed", bad[i]);
	}
	assert_false(ble_uuid_parse(NULL, &u));

	assert_true(ble_uuid_parse("1234FEAA", &u));
	assert_int_equal(u.bits, 32);
	assert_int_equal(ble_uuid_shortest(&u), 32);
	assert_uuid_str(&u, "1234feaa");
	assert_true(ble_uuid_parse("00123456", &u));
	assert_int_equal(u.bits, 32);
	assert_uuid_str(&u, "00123456");
	assert_true(ble_uuid_parse("1234FEAA", &u));
	assert_true(ble_uuid_parse("1234feaa-0000-1000-8000-00805f9b34fb", &v));
	assert_true(ble_uuid_equal(&u, &v));
	assert_int_equal(v.bits, 32);

	assert_true(ble_uuid_parse("6E400001-B5A3-F393-E0A9-E50E24DCCA9E", &u));
	assert_int_equal(u.bits, 128);
	assert_int_equal(ble_uuid_str(&u, s), 36);
	assert_string_equal(s, "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
	/* almost the base UUID */
	assert_true(ble_uuid_parse("0000feaa-0000-1000-8000-00805f9b34fc", &u));
	assert_int_equal(u.bits, 128);
	assert_uuid_str(&u, "0000feaa-0000-1000-8000-00805f9b34fc");

	ble_uuid_from16(&u, 0x2a37);
	assert_int_equal(u.bits, 16);
	assert_uuid_str(&u, "2a37");
	ble_uuid_from32(&u, 0x2a37);
	assert_int_equal(u.bits, 32);
	assert_int_equal(ble_uuid_shortest(&u), 16);
	assert_uuid_str(&u, "2a37");
	ble_uuid_from16(&u, 0);
	assert_uuid_str(&u, "0000");
	assert_true(ble_uuid_parse("0000", &v));
	assert_true(ble_uuid_equal(&u, &v));
}

/* ---- builder ----------------------------------------------------------- */

static void builder_round_trip(void **st)
{
	static const char *const uuid_s[] = {"0000180d-0000-1000-8000-00805f9b34fb", "12345678",
					     "6e400001-b5a3-f393-e0a9-e50e24dcca9e", "180f",
					     "00001234-0000-1000-8000-00805f9b34fb"};
	static const uint8_t tlm[14] = {0x20, 0x00, 0x0b, 0xb8, 0x17, 0x80, 0x00,
					0x00, 0x12, 0x34, 0x00, 0x01, 0xe2, 0x40};
	static const uint8_t custom[3] = {1, 2, 3};
	struct ble_uuid uuids[5], svc_u;
	struct ble_ad_builder b;
	uint8_t buf[BLE_AD_MAX];
	char s[BLE_UUID_STR_LEN];

	(void)st;
	for (int i = 0; i < 5; i++)
		assert_true(ble_uuid_parse(uuid_s[i], &uuids[i]));
	ble_ad_builder_init(&b, buf, sizeof(buf));
	assert_int_equal(ble_ad_add_flags(&b, 0x06), 0);
	assert_int_equal(ble_ad_add_name(&b, "Thermo \xe2\x98\x83"), 0);
	assert_int_equal(ble_ad_add_tx_power(&b, -8), 0);
	assert_int_equal(ble_ad_add_appearance(&b, 0x0300), 0);
	assert_int_equal(ble_ad_add_uuids(&b, uuids, 5), 0);
	assert_int_equal(ble_ad_add_mfr(&b, 0x004c, IBEACON + 7, 23), 0);
	assert_int_equal(ble_ad_add_mfr(&b, 0x0059, NULL, 0), 0);
	ble_uuid_from16(&svc_u, 0xfeaa);
	assert_int_equal(ble_ad_add_svc(&b, &svc_u, tlm, sizeof(tlm)), 0);
	assert_true(ble_uuid_parse("6e400001-b5a3-f393-e0a9-e50e24dcca9e", &svc_u));
	assert_int_equal(ble_ad_add_svc(&b, &svc_u, custom, sizeof(custom)), 0);
	assert_true(ble_uuid_parse("0000fcd2-0000-1000-8000-00805f9b34fb", &svc_u));
	assert_int_equal(ble_ad_add_svc(&b, &svc_u, custom, 1), 0);
	assert_int_equal(ble_ad_add(&b, 0x2c, NULL, 0), 0);

	/* the bytes: flags, then the name as given */
	assert_memory_equal(buf, ((const uint8_t[]){0x02, 0x01, 0x06, 0x0b, 0x09, 'T'}), 6);
	/* 16-bit UUIDs first, each list in its size */
	assert_memory_equal(buf + 22,
			    ((const uint8_t[]){0x07, 0x03, 0x0d, 0x18, 0x0f, 0x18, 0x34, 0x12, 0x05,
					       0x05, 0x78, 0x56, 0x34, 0x12, 0x11, 0x07, 0x9e}),
			    17);

	assert_int_equal(ble_ad_parse(buf, b.len, &ad), 0);
	assert_int_equal(ad.len, b.len);
	assert_false(ad.truncated);
	assert_int_equal(ad.n_malformed, 0);
	assert_int_equal(ad.n_unknown, 1);
	assert_int_equal(ad.flags, 0x06);
	assert_true(ad.has_name && ad.name_complete);
	assert_string_equal(ad.name, "Thermo \xe2\x98\x83");
	assert_int_equal(ad.tx_power, -8);
	assert_int_equal(ad.appearance, 0x0300);
	assert_int_equal(ad.n_uuids, 5);
	/* in list order: 16-bit, 32-bit, 128-bit */
	static const int order[5] = {0, 3, 4, 1, 2};

	for (int i = 0; i < 5; i++) {
		assert_true(ble_uuid_equal(&ad.uuids[i].uuid, &uuids[order[i]]));
		assert_int_equal(ad.uuids[i].uuid.bits, uuids[order[i]].bits);
		assert_true(ad.uuids[i].complete);
	}
	assert_int_equal(ad.n_mfr, 2);
	assert_true(ad.has_ibeacon);
	assert_int_equal(ad.ibeacon.minor, 2);
	assert_int_equal(ad.mfr[1].company, 0x0059);
	assert_int_equal(ad.mfr[1].len, 0);
	assert_int_equal(ad.n_svc, 3);
	assert_int_equal(ad.svc[0].uuid.bits, 16);
	assert_int_equal(ad.svc[0].len, sizeof(tlm));
	assert_memory_equal(ad.svc[0].data, tlm, sizeof(tlm));
	assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_TLM);
	assert_int_equal(ad.eddystone.sec_count, 123456);
	assert_int_equal(ad.svc[1].uuid.bits, 128);
	ble_uuid_str(&ad.svc[1].uuid, s);
	assert_string_equal(s, "6e400001-b5a3-f393-e0a9-e50e24dcca9e");
	assert_memory_equal(ad.svc[1].data, custom, 3);
	assert_uuid_str(&ad.svc[2].uuid, "fcd2");
	assert_int_equal(ad.svc[2].len, 1);

	/* what was parsed builds the same bytes again */
	struct ble_ad_builder b2;
	uint8_t buf2[BLE_AD_MAX];
	struct ble_uuid again[BLE_AD_UUIDS_MAX];

	ble_ad_builder_init(&b2, buf2, sizeof(buf2));
	assert_int_equal(ble_ad_add_flags(&b2, ad.flags), 0);
	assert_int_equal(ble_ad_add_name(&b2, ad.name), 0);
	assert_int_equal(ble_ad_add_tx_power(&b2, ad.tx_power), 0);
	assert_int_equal(ble_ad_add_appearance(&b2, ad.appearance), 0);
	for (size_t i = 0; i < ad.n_uuids; i++)
		again[i] = ad.uuids[i].uuid;
	assert_int_equal(ble_ad_add_uuids(&b2, again, ad.n_uuids), 0);
	for (size_t i = 0; i < ad.n_mfr; i++)
		assert_int_equal(
			ble_ad_add_mfr(&b2, ad.mfr[i].company, ad.mfr[i].data, ad.mfr[i].len), 0);
	for (size_t i = 0; i < ad.n_svc; i++)
		assert_int_equal(
			ble_ad_add_svc(&b2, &ad.svc[i].uuid, ad.svc[i].data, ad.svc[i].len), 0);
	assert_int_equal(ble_ad_add(&b2, 0x2c, NULL, 0), 0);
	assert_int_equal(b2.len, b.len);
	assert_memory_equal(buf2, buf, b.len);
	assert_int_equal(ble_ad_parse(buf2, b2.len, &ad2), 0);
	assert_string_equal(ad2.name, ad.name);
}

static void builder_limits(void **st)
{
	static uint8_t big[BLE_AD_MAX + 100];
	uint8_t buf[16], guarded[17], data[255] = {0};
	struct ble_ad_builder b;
	struct ble_uuid u[130];

	(void)st;
	/* one byte short, with a guard byte after the buffer's end */
	ble_ad_builder_init(&b, guarded, 16);
	guarded[16] = 0xa5;
	assert_int_equal(ble_ad_add(&b, 0xff, data, 15), -ENOSPC);
	assert_int_equal(ble_ad_add_mfr(&b, 0x004c, data, 13), -ENOSPC);
	assert_int_equal(b.len, 0);
	assert_int_equal(guarded[16], 0xa5);

	ble_ad_builder_init(&b, buf, sizeof(buf));
	assert_int_equal(ble_ad_add(&b, 0xff, data, 14), 0);
	assert_int_equal(b.len, 16);
	assert_int_equal(ble_ad_add(&b, 0x2c, NULL, 0), -ENOSPC);
	assert_int_equal(ble_ad_add_flags(&b, 6), -ENOSPC);
	assert_int_equal(b.len, 16);

	ble_ad_builder_init(&b, buf, sizeof(buf));
	assert_int_equal(ble_ad_add_name(&b, "abcdefghijklmnop"), -ENOSPC);
	assert_int_equal(b.len, 0);
	assert_int_equal(ble_ad_add_name(&b, "abcdefghijklmn"), 0);
	assert_int_equal(b.len, 16);
	assert_int_equal(ble_ad_parse(buf, b.len, &ad), 0);
	assert_string_equal(ad.name, "abcdefghijklmn");

	ble_ad_builder_init(&b, big, sizeof(big));
	assert_int_equal(b.cap, BLE_AD_MAX);
	assert_int_equal(ble_ad_add(&b, 0xff, data, 255), -EINVAL);
	assert_int_equal(ble_ad_add(&b, 0xff, data, 254), 0);
	assert_int_equal(ble_ad_add_mfr(&b, 1, data, 253), -EINVAL);
	assert_int_equal(ble_ad_add_mfr(&b, 1, data, 252), 0);
	assert_int_equal(ble_ad_add(&b, 0xff, NULL, 1), -EINVAL);
	assert_int_equal(ble_ad_add_tx_power(&b, 128), -EINVAL);
	assert_int_equal(ble_ad_add_tx_power(&b, -128), -EINVAL);
	assert_int_equal(ble_ad_add_tx_power(&b, -127), 0);
	assert_int_equal(ble_ad_add_name(&b, "bad \xc0\xaf"), -EINVAL);
	assert_int_equal(ble_ad_add_name(&b, NULL), -EINVAL);
	memset(data, 'x', 254);
	data[254] = '\0';
	assert_int_equal(ble_ad_add_name(&b, (const char *)data), 0);
	memset(data, 'x', sizeof(data));
	assert_int_equal(ble_ad_add_svc(&b, NULL, data, 1), -EINVAL);
	/* fill it up to the last byte */
	while (ble_ad_add(&b, 0xff, data, 254) == 0)
		;
	assert_int_equal(ble_ad_add(&b, 0xff, data, BLE_AD_MAX - b.len - 2), 0);
	assert_int_equal(b.len, BLE_AD_MAX);
	assert_int_equal(ble_ad_parse(big, b.len, &ad), 0);
	assert_int_equal(ad.len, BLE_AD_MAX);
	assert_false(ad.truncated);

	/* 130 16-bit UUIDs and one 128-bit: two 16-bit lists, then one */
	for (int i = 0; i < 129; i++)
		ble_uuid_from16(&u[i], (uint16_t)(0x1000 + i));
	assert_true(ble_uuid_parse("6e400001-b5a3-f393-e0a9-e50e24dcca9e", &u[129]));
	ble_ad_builder_init(&b, big, 2 + 254 + 2 + 4 + 2 + 16 - 1);
	assert_int_equal(ble_ad_add_uuids(&b, u, 130), -ENOSPC);
	assert_int_equal(b.len, 0);
	ble_ad_builder_init(&b, big, 2 + 254 + 2 + 4 + 2 + 16);
	assert_int_equal(ble_ad_add_uuids(&b, u, 130), 0);
	assert_int_equal(b.len, b.cap);
	assert_int_equal(big[0], 255);
	assert_int_equal(big[1], BLE_AD_UUID16_ALL);
	assert_int_equal(big[256], 5);
	assert_int_equal(big[258], 0x7f); /* 0x107f, LE */
	assert_int_equal(big[259], 0x10);
	assert_int_equal(big[262], 17);
	assert_int_equal(big[263], BLE_AD_UUID128_ALL);
	assert_int_equal(ble_ad_parse(big, b.len, &ad), 0);
	assert_int_equal(ad.n_uuids, BLE_AD_UUIDS_MAX);
	assert_int_equal(ad.uuids_over, 130 - BLE_AD_UUIDS_MAX);
	assert_int_equal(ble_ad_add_uuids(&b, NULL, 0), 0);
}

/* ---- the sim radio's adverts ------------------------------------------- */

static void sim_adverts_decode_as_the_simulator_says(void **st)
{
	struct sim_gen *g = sim_gen_new(7, 200, LABGW_TECH_BLE);
	static struct sim_event ev;
	unsigned seen[6] = {0};

	(void)st;
	assert_non_null(g);
	for (int i = 0; i < 3000; i++) {
		const struct sim_ble_adv *s = &ev.u.ble;
		char key[BLE_UUID_STR_LEN];

		assert_int_equal(sim_gen_next(g, 1764146401000ull + (uint64_t)i * 100, &ev), 0);
		assert_int_equal(ev.type, SIM_BLE_ADV);
		assert_int_equal(ble_ad_parse(ev.payload, ev.payload_len, &ad), 0);
		assert_int_equal(ad.len, ev.payload_len);
		assert_false(ad.truncated);
		assert_int_equal(ad.n_malformed + ad.n_unknown, 0);
		assert_true(ad.has_flags);
		assert_int_equal(ad.has_tx_power, s->has_tx_power);
		if (s->has_tx_power)
			assert_int_equal(ad.tx_power, s->tx_power);
		assert_int_equal(ad.has_name, s->name[0] != '\0');
		assert_string_equal(ad.has_name ? ad.name : "", s->name);
		assert_int_equal(ad.n_mfr, s->has_mfr);
		if (s->has_mfr) {
			assert_int_equal(ad.mfr[0].company, s->company);
			assert_ptr_equal(ad.mfr[0].data, ev.payload + s->mfr_off);
			assert_int_equal(ad.mfr[0].len, s->mfr_len);
		}
		assert_int_equal(ad.n_svc, s->has_svc);
		if (s->has_svc) {
			assert_true(ble_uuid_is16(&ad.svc[0].uuid, s->svc_uuid));
			assert_ptr_equal(ad.svc[0].data, ev.payload + s->svc_off);
			assert_int_equal(ad.svc[0].len, s->svc_len);
		}
		assert_int_equal(ad.n_uuids, s->n_uuids);
		for (unsigned k = 0; k < s->n_uuids; k++) {
			char want[8];

			snprintf(want, sizeof(want), "%04x", s->uuids[k]);
			ble_uuid_str(&ad.uuids[k].uuid, key);
			assert_string_equal(key, want);
		}
		assert_int_equal(ad.has_ibeacon, s->beacon == SIM_BEACON_IBEACON);
		assert_false(ad.eddystone_undecoded);
		seen[s->beacon]++;
		switch (s->beacon) {
		case SIM_BEACON_NONE:
			assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_NONE);
			break;
		case SIM_BEACON_IBEACON:
			assert_memory_equal(ad.ibeacon.uuid, s->ibeacon.uuid, 16);
			assert_int_equal(ad.ibeacon.major, s->ibeacon.major);
			assert_int_equal(ad.ibeacon.minor, s->ibeacon.minor);
			assert_int_equal(ad.ibeacon.power, s->ibeacon.tx_power);
			break;
		case SIM_BEACON_EDDYSTONE_UID:
			assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_UID);
			assert_int_equal(ad.eddystone.tx_power, s->eddystone.tx_power);
			assert_memory_equal(ad.eddystone.ns, s->eddystone.ns, 10);
			assert_memory_equal(ad.eddystone.instance, s->eddystone.instance, 6);
			break;
		case SIM_BEACON_EDDYSTONE_URL:
			assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_URL);
			assert_int_equal(ad.eddystone.tx_power, s->eddystone.tx_power);
			assert_string_equal(ad.eddystone.url, s->eddystone.url);
			break;
		case SIM_BEACON_EDDYSTONE_TLM:
			assert_int_equal(ad.eddystone.frame, BLE_EDDYSTONE_TLM);
			assert_int_equal(ad.eddystone.battery_mv, s->eddystone.battery_mv);
			assert_true(ad.eddystone.temp / 256.0 == s->eddystone.temp_c);
			assert_int_equal(ad.eddystone.adv_count, s->eddystone.adv_count);
			assert_int_equal(ad.eddystone.sec_count / 10, s->eddystone.uptime_s);
			break;
		}
	}
	/* every kind came up */
	for (int k = SIM_BEACON_NONE; k <= SIM_BEACON_EDDYSTONE_TLM; k++) {
		if (!seen[k])
			fail_msg("no advert of beacon kind %d", k);
	}
	sim_gen_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ibeacon),
		cmocka_unit_test(ibeacon_lookalikes),
		cmocka_unit_test(eddystone_uid),
		cmocka_unit_test(eddystone_url),
		cmocka_unit_test(eddystone_url_codes),
		cmocka_unit_test(eddystone_tlm),
		cmocka_unit_test(eddystone_first_decoded_frame_counts),
		cmocka_unit_test(phone),
		cmocka_unit_test(empty_and_padding),
		cmocka_unit_test(overrun_keeps_what_came_before),
		cmocka_unit_test(sizes),
		cmocka_unit_test(names_must_be_utf8),
		cmocka_unit_test(too_many_entries_are_counted),
		cmocka_unit_test(malformed_structures_are_skipped),
		cmocka_unit_test(uuid_sizes_on_air),
		cmocka_unit_test(uuid_text),
		cmocka_unit_test(builder_round_trip),
		cmocka_unit_test(builder_limits),
		cmocka_unit_test(sim_adverts_decode_as_the_simulator_says),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
