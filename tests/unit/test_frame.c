// SPDX-License-Identifier: MIT
/*
 * The frame envelope of DESIGN §5: what frame_seal encodes (read back with
 * jansson and compared field by field, in the documented order), the
 * setters' validation, immutability after sealing, the FRAME_JSON_MAX bound
 * and reference counting.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "frame.h"
#include "util.h"

#define T_DESIGN 1795682401123456ull /* 2026-11-26T08:40:01.123456Z */

static json_t *parse(const struct frame *f)
{
	assert_true(f->sealed);
	assert_non_null(f->json);
	assert_int_equal(strlen(f->json), f->json_len);
	json_error_t je;
	json_t *j = json_loadb(f->json, f->json_len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		fail_msg("frame JSON does not parse: %s: %s", je.text, f->json);
	assert_true(json_is_object(j));
	return j;
}

static void assert_keys(json_t *obj, const char *const *keys, size_t n)
{
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		if (i >= n)
			fail_msg("unexpected key '%s'", k);
		if (strcmp(k, keys[i]))
			fail_msg("key %zu is '%s', expected '%s'", i, k, keys[i]);
		i++;
	}
	assert_int_equal(i, n);
}

static void test_design_example_envelope(void **state)
{
	static const unsigned char phy[] = {0x40, 0xda, 0x1b, 0x01, 0x26, 0x80,
					    0x01, 0x00, 0x01, 0x70, 0xf9, 0x8b};
	struct frame *f = frame_new("lab1", "lora0", LABGW_TECH_LORAWAN, "rx.lorawan.uplink");
	assert_non_null(f);
	assert_int_equal(frame_set_dev(f, "26011bda", true), 0);
	assert_int_equal(frame_set(f, LABGW_SIG, "rssi", json_integer(-57)), 0);
	assert_int_equal(frame_set(f, LABGW_SIG, "snr", json_real(7.5)), 0);
	assert_int_equal(frame_set(f, LABGW_SIG, "freq_hz", json_integer(868100000)), 0);
	assert_int_equal(frame_set(f, LABGW_SIG, "sf", json_integer(7)), 0);
	assert_int_equal(frame_set(f, LABGW_SIG, "bw_hz", json_integer(125000)), 0);
	assert_int_equal(frame_set_payload(f, phy, sizeof(phy)), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "mtype", json_string("unconfirmed_up")), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "fcnt", json_integer(1)), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "fport", json_integer(1)), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "mic_ok", json_true()), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "frm_payload", json_string("AQID")), 0);
	assert_int_equal(frame_seal(f, 0x12a3f, T_DESIGN), 0);
	assert_true(f->sealed);

	json_t *got = parse(f);
	json_error_t je;
	json_t *want = json_loads(
		"{\"v\": 1, \"id\": \"lab1-0000000000012a3f\","
		" \"time\": \"2026-11-26T08:40:01.123456Z\", \"gw\": \"lab1\","
		" \"tech\": \"lorawan\", \"radio\": \"lora0\", \"type\": \"rx.lorawan.uplink\","
		" \"dev\": {\"id\": \"26011bda\", \"claimed\": true},"
		" \"sig\": {\"rssi\": -57, \"snr\": 7.5, \"freq_hz\": 868100000, \"sf\": 7,"
		" \"bw_hz\": 125000},"
		" \"payload\": \"QNobASaAAQABcPmL\","
		" \"data\": {\"mtype\": \"unconfirmed_up\", \"fcnt\": 1, \"fport\": 1,"
		" \"mic_ok\": true, \"frm_payload\": \"AQID\"}}",
		0, &je);
	assert_non_null(want);
	if (!json_equal(got, want))
		fail_msg("envelope differs from DESIGN §5: %s", f->json);
	/* the documented order, and nothing else */
	static const char *const order[] = {"v",    "id",  "time", "gw",      "tech", "radio",
					    "type", "dev", "sig",  "payload", "data"};
	assert_keys(got, order, ARRAY_SIZE(order));
	static const char *const sig_order[] = {"rssi", "snr", "freq_hz", "sf", "bw_hz"};
	assert_keys(json_object_get(got, "sig"), sig_order, ARRAY_SIZE(sig_order));
	/* one compact line: what is sent to every client */
	assert_null(strchr(f->json, '\n'));
	assert_null(strstr(f->json, ": "));
	assert_string_equal(f->id, "lab1-0000000000012a3f");
	assert_true(f->seq == 0x12a3f);
	assert_true(f->time_us == T_DESIGN);
	json_decref(got);
	json_decref(want);
	frame_unref(f);
}

static void test_gateway_frame_has_no_radio_or_tech(void **state)
{
	struct frame *f = frame_new("lab1", "", LABGW_TECH_NONE, "state.radio");
	assert_non_null(f);
	assert_null(frame_section(f, LABGW_SIG));
	assert_null(frame_section(f, LABGW_DATA));
	assert_int_equal(frame_seal(f, 0, 0), 0);
	json_t *j = parse(f);
	static const char *const order[] = {"v", "id", "time", "gw", "type"};
	assert_keys(j, order, ARRAY_SIZE(order));
	assert_int_equal(json_integer_value(json_object_get(j, "v")), 1);
	assert_string_equal(json_string_value(json_object_get(j, "id")), "lab1-0000000000000000");
	assert_string_equal(json_string_value(json_object_get(j, "time")),
			    "1970-01-01T00:00:00.000000Z");
	json_decref(j);
	frame_unref(f);
}

static void test_tech_names(void **state)
{
	static const struct {
		enum labgw_tech t;
		const char *name;
	} v[] = {
		{LABGW_TECH_BLE, "ble"},
		{LABGW_TECH_WLAN, "wlan"},
		{LABGW_TECH_LORAWAN, "lorawan"},
		{LABGW_TECH_CELLULAR, "cellular"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		assert_string_equal(frame_tech_name(v[i].t), v[i].name);
		assert_int_equal(frame_tech_parse(v[i].name), v[i].t);
		struct frame *f = frame_new("gw", "r0", v[i].t, "rx.x");
		assert_int_equal(frame_seal(f, 1, 1), 0);
		json_t *j = parse(f);
		assert_string_equal(json_string_value(json_object_get(j, "tech")), v[i].name);
		json_decref(j);
		frame_unref(f);
	}
	assert_int_equal(frame_tech_parse("BLE"), LABGW_TECH_NONE);
	assert_int_equal(frame_tech_parse(""), LABGW_TECH_NONE);
	assert_int_equal(frame_tech_parse("lora"), LABGW_TECH_NONE);
	assert_string_equal(frame_tech_name(LABGW_TECH_NONE), "");
}

static void test_ids_increase_with_seq(void **state)
{
	/* the id is the replay cursor: fixed width, so text order is seq order */
	static const uint64_t seqs[] = {0, 1, 9, 10, 255, 256, 0x12a3f, UINT64_MAX / 2, UINT64_MAX};
	char prev[80] = "";
	for (size_t i = 0; i < ARRAY_SIZE(seqs); i++) {
		struct frame *f = frame_new("lab1", "r", LABGW_TECH_BLE, "rx.ble.adv");
		assert_int_equal(frame_seal(f, seqs[i], T_DESIGN), 0);
		assert_int_equal(strlen(f->id), strlen("lab1-") + 16);
		assert_true(strcmp(prev, f->id) < 0);
		snprintf(prev, sizeof(prev), "%s", f->id);
		frame_unref(f);
	}
	assert_string_equal(prev, "lab1-ffffffffffffffff");

	/* the longest gateway id still fits */
	char gw[FRAME_ID_MAX + 1];
	memset(gw, 'g', FRAME_ID_MAX);
	gw[FRAME_ID_MAX] = '\0';
	struct frame *f = frame_new(gw, gw, LABGW_TECH_BLE, "rx.ble.adv");
	assert_non_null(f);
	assert_int_equal(frame_seal(f, UINT64_MAX, T_DESIGN), 0);
	char want[80];
	snprintf(want, sizeof(want), "%s-ffffffffffffffff", gw);
	assert_string_equal(f->id, want);
	json_t *j = parse(f);
	assert_string_equal(json_string_value(json_object_get(j, "id")), want);
	json_decref(j);
	frame_unref(f);
}

static void test_new_refuses_bad_type_and_long_ids(void **state)
{
	static const char *const bad_types[] = {"",	  "RX.ble.adv",	  "rx-ble",	"rx ble",
						"rx/ble", "rx.ble.adv\n", "tx.status!", "\xc3\xa4"};
	for (size_t i = 0; i < ARRAY_SIZE(bad_types); i++) {
		assert_false(frame_type_valid(bad_types[i]));
		assert_null(frame_new("lab1", "r0", LABGW_TECH_BLE, bad_types[i]));
	}
	static const char *const good_types[] = {"rx.ble.adv", "state.cellular.signal",
						 "tx.status",  "rx.wlan.station",
						 "a",	       "x_1.2"};
	for (size_t i = 0; i < ARRAY_SIZE(good_types); i++) {
		assert_true(frame_type_valid(good_types[i]));
		struct frame *f = frame_new("lab1", "r0", LABGW_TECH_BLE, good_types[i]);
		assert_non_null(f);
		frame_unref(f);
	}
	char t[FRAME_TYPE_MAX + 1];
	memset(t, 'a', sizeof(t));
	t[FRAME_TYPE_MAX - 1] = '\0';
	assert_true(frame_type_valid(t)); /* FRAME_TYPE_MAX - 1 chars */
	t[FRAME_TYPE_MAX - 1] = 'a';
	t[FRAME_TYPE_MAX] = '\0';
	assert_false(frame_type_valid(t));
	assert_null(frame_new("lab1", "r0", LABGW_TECH_BLE, t));

	char id[FRAME_ID_MAX + 2];
	memset(id, 'x', sizeof(id));
	id[FRAME_ID_MAX + 1] = '\0';
	assert_null(frame_new(id, "r0", LABGW_TECH_BLE, "rx.ble.adv"));
	assert_null(frame_new("lab1", id, LABGW_TECH_BLE, "rx.ble.adv"));
}

static void test_dev_ids(void **state)
{
	static const char *const bad[] = {"",	  " ",	   "a b",      " a",  "a\t",
					  "\x7f", "a\x01", "\xc3\xa4", "a\n", "\xff"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct frame *f = frame_new("lab1", "r0", LABGW_TECH_BLE, "rx.ble.adv");
		assert_false(frame_dev_valid(bad[i]));
		assert_int_equal(frame_set_dev(f, bad[i], false), -EINVAL);
		assert_int_equal(frame_seal(f, 1, 1), 0);
		json_t *j = parse(f);
		assert_null(json_object_get(j, "dev")); /* nothing half-set */
		json_decref(j);
		frame_unref(f);
	}
	char longest[FRAME_DEV_MAX];
	memset(longest, 'd', sizeof(longest));
	longest[FRAME_DEV_MAX - 1] = '\0';
	assert_true(frame_dev_valid(longest));
	char too_long[FRAME_DEV_MAX + 1];
	memset(too_long, 'd', sizeof(too_long));
	too_long[FRAME_DEV_MAX] = '\0';
	assert_false(frame_dev_valid(too_long));

	/* printable ids that need escaping in JSON come back unchanged */
	const char *const good[] = {"aa:bb:cc:dd:ee:ff",
				    "+4917612345678",
				    "p-0011223344556677",
				    "quote\"back\\slash",
				    "{}[]<>&'",
				    "a/b#c+d",
				    longest};
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		struct frame *f = frame_new("lab1", "r0", LABGW_TECH_BLE, "rx.ble.adv");
		assert_int_equal(frame_set_dev(f, good[i], i % 2 == 0), 0);
		assert_int_equal(frame_seal(f, 1, 1), 0);
		json_t *j = parse(f);
		json_t *dev = json_object_get(j, "dev");
		assert_string_equal(json_string_value(json_object_get(dev, "id")), good[i]);
		assert_true(json_is_boolean(json_object_get(dev, "claimed")));
		assert_int_equal(json_is_true(json_object_get(dev, "claimed")), i % 2 == 0);
		json_decref(j);
		frame_unref(f);
	}
}

static void test_payload_base64(void **state)
{
	static const struct {
		const char *in, *b64;
	} v[] = {
		{"f", "Zg=="},
		{"fo", "Zm8="},
		{"foo", "Zm9v"},
		{"foobar", "Zm9vYmFy"},
		{"+4917612345678: hi", "KzQ5MTc2MTIzNDU2Nzg6IGhp"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct frame *f =
			frame_new("lab1", "cell0", LABGW_TECH_CELLULAR, "rx.cellular.sms");
		assert_int_equal(frame_set_payload(f, "garbage", 7), 0);
		/* a second call replaces the first */
		assert_int_equal(frame_set_payload(f, v[i].in, strlen(v[i].in)), 0);
		assert_int_equal(frame_seal(f, 2, 2), 0);
		json_t *j = parse(f);
		assert_string_equal(json_string_value(json_object_get(j, "payload")), v[i].b64);
		json_decref(j);
		frame_unref(f);
	}
}

static void test_payload_limit(void **state)
{
	unsigned char *big = malloc(FRAME_PAYLOAD_MAX + 1);
	assert_non_null(big);
	for (size_t i = 0; i <= FRAME_PAYLOAD_MAX; i++)
		big[i] = (unsigned char)(i * 7);
	struct frame *f = frame_new("lab1", "r0", LABGW_TECH_BLE, "rx.ble.adv");
	assert_int_equal(frame_set_payload(f, big, FRAME_PAYLOAD_MAX + 1), -E2BIG);
	assert_int_equal(frame_set_payload(f, big, FRAME_PAYLOAD_MAX), 0);
	assert_int_equal(frame_seal(f, 3, 3), 0);
	json_t *j = parse(f);
	const char *b64 = json_string_value(json_object_get(j, "payload"));
	assert_non_null(b64);
	char *want = malloc(base64_encoded_len(FRAME_PAYLOAD_MAX) + 1);
	base64_encode(big, FRAME_PAYLOAD_MAX, want);
	assert_string_equal(b64, want);
	free(want);
	json_decref(j);
	frame_unref(f);
	free(big);
}

static void test_dotted_paths(void **state)
{
	struct frame *f = frame_new("lab1", "ble0", LABGW_TECH_BLE, "rx.ble.adv");
	assert_int_equal(frame_set(f, LABGW_DATA, "ibeacon.major", json_integer(1)), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "ibeacon.minor", json_integer(2)), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "ibeacon.uuid", json_string("f7826da6")), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "a.b.c.d", json_true()), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "Name-1_x", json_string("ok")), 0);
	/* a later set of the same key replaces it */
	assert_int_equal(frame_set(f, LABGW_DATA, "ibeacon.minor", json_integer(3)), 0);
	assert_int_equal(frame_append(f, LABGW_DATA, "uuids", json_string("180f")), 0);
	assert_int_equal(frame_append(f, LABGW_DATA, "uuids", json_string("180a")), 0);
	assert_int_equal(frame_append(f, LABGW_DATA, "svc.list", json_integer(7)), 0);
	assert_int_equal(frame_set(f, LABGW_SIG, "rssi", json_integer(-70)), 0);
	assert_non_null(frame_section(f, LABGW_DATA));
	assert_int_equal(frame_seal(f, 4, 4), 0);
	json_t *j = parse(f);
	json_error_t je;
	json_t *want = json_loads("{\"ibeacon\":{\"major\":1,\"minor\":3,\"uuid\":\"f7826da6\"},"
				  "\"a\":{\"b\":{\"c\":{\"d\":true}}},\"Name-1_x\":\"ok\","
				  "\"uuids\":[\"180f\",\"180a\"],\"svc\":{\"list\":[7]}}",
				  0, &je);
	assert_non_null(want);
	if (!json_equal(json_object_get(j, "data"), want))
		fail_msg("data: %s", f->json);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "sig"), "rssi")),
			 -70);
	json_decref(want);
	json_decref(j);
	frame_unref(f);
}

static void test_bad_paths_refused(void **state)
{
	char part64[65], part63[64];
	memset(part64, 'k', 64);
	part64[64] = '\0';
	memset(part63, 'k', 63);
	part63[63] = '\0';
	const char *const bad[] = {"",	    ".",	"a.",  ".a",	"a..b", "a b", "a/b",
				   "a.b c", "\xc3\xa4", "a:b", "a.b\n", part64, "x.y."};
	struct frame *f = frame_new("lab1", "ble0", LABGW_TECH_BLE, "rx.ble.adv");
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		/* the value is stolen also on failure (ASan checks the leak) */
		if (frame_set(f, LABGW_DATA, bad[i], json_integer(1)) != -EINVAL)
			fail_msg("path '%s' should be refused", bad[i]);
		if (frame_append(f, LABGW_SIG, bad[i], json_integer(1)) != -EINVAL)
			fail_msg("append path '%s' should be refused", bad[i]);
	}
	assert_int_equal(frame_set(f, LABGW_DATA, part63, json_integer(63)), 0);
	/* a path through a non-object, and append to a non-array */
	assert_int_equal(frame_set(f, LABGW_DATA, "n", json_integer(1)), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "n.sub", json_integer(2)), -EINVAL);
	assert_int_equal(frame_append(f, LABGW_DATA, "n", json_integer(3)), -EINVAL);
	/* a NULL value (a failed json_ constructor) */
	/* jansson gives NULL for a NaN or a string that is not UTF-8 */
	assert_int_equal(frame_set(f, LABGW_DATA, "z", json_real(NAN)), -EINVAL);
	assert_int_equal(frame_append(f, LABGW_DATA, "z", json_string("\xff")), -EINVAL);
	/* an unknown section */
	assert_int_equal(frame_set(f, (enum labgw_section)3, "x", json_integer(1)), -EINVAL);
	assert_int_equal(frame_seal(f, 5, 5), 0);
	json_t *j = parse(f);
	json_t *data = json_object_get(j, "data");
	assert_int_equal(json_integer_value(json_object_get(data, part63)), 63);
	assert_int_equal(json_integer_value(json_object_get(data, "n")), 1);
	json_decref(j);
	frame_unref(f);
}

/* The hand-written section encoder must give JSON that reads back equal to
 * what was set, for every value type and every string that needs escaping,
 * and print reals the way the envelope documents (10 digits, always a
 * fraction or exponent). */
static void test_sections_encode_every_value_type(void **state)
{
	struct frame *f = frame_new("lab1", "lora0", LABGW_TECH_LORAWAN, "rx.lorawan.uplink");
	json_t *want = json_pack("{s:I,s:I,s:i,s:f,s:f,s:f,s:f,s:b,s:b,s:n,s:s,s:s,s:[i,s,{s:i}]}",
				 "max", (json_int_t)INT64_MAX, "min", (json_int_t)INT64_MIN, "zero",
				 0, "half", 7.5, "neg", -7.3, "big", 1e300, "whole", 3.0, "t", 1,
				 "f", 0, "nil", "esc", "q\"b\\s/n\nr\rt\tc\x01\x1f", "utf8",
				 "Gr\xc3\xbc\xc3\x9f"
				 "e \xe2\x82\xac \xf0\x9f\x93\xa1",
				 "arr", 1, "two", "k", 3);
	assert_non_null(want);
	const char *k;
	json_t *v;
	json_object_foreach(want, k, v)
		assert_int_equal(frame_set(f, LABGW_DATA, k, json_incref(v)), 0);
	/* a string with a NUL inside (json_stringn) keeps its length */
	assert_int_equal(frame_set(f, LABGW_SIG, "nul", json_stringn("a\0b", 3)), 0);
	assert_int_equal(frame_seal(f, 9, 9), 0);
	json_t *j = json_loadb(f->json, f->json_len, JSON_ALLOW_NUL, NULL);
	assert_non_null(j);
	assert_true(json_equal(json_object_get(j, "data"), want));
	json_t *nul = json_object_get(json_object_get(j, "sig"), "nul");
	assert_int_equal(json_string_length(nul), 3);
	assert_memory_equal(json_string_value(nul), "a\0b", 3);
	assert_non_null(strstr(f->json, "\"half\":7.5,"));
	assert_non_null(strstr(f->json, "\"neg\":-7.3,"));
	assert_non_null(strstr(f->json, "\"whole\":3.0,"));
	assert_non_null(strstr(f->json, "\"min\":-9223372036854775808,"));
	assert_non_null(strstr(f->json, "\\u0001\\u001f"));
	json_decref(j);
	json_decref(want);
	frame_unref(f);
}

static void test_failed_set_leaves_frame_unchanged(void **state)
{
	/* A setter that returns -EINVAL must not have half-built the path:
	 * "x.y." is refused, so no "x":{"y":{}} may appear in the frame. */
	struct frame *f = frame_new("lab1", "ble0", LABGW_TECH_BLE, "rx.ble.adv");
	assert_int_equal(frame_set(f, LABGW_DATA, "x.y.", json_integer(1)), -EINVAL);
	assert_int_equal(frame_set(f, LABGW_SIG, "ok.bad key", json_integer(1)), -EINVAL);
	assert_int_equal(frame_append(f, LABGW_DATA, "list.", json_string("a")), -EINVAL);
	assert_int_equal(frame_seal(f, 6, 6), 0);
	json_t *j = parse(f);
	bool traces = json_object_get(j, "data") || json_object_get(j, "sig");
	char *json = strdup(f->json);
	json_decref(j);
	frame_unref(f);
	if (traces) {
		print_error("refused setters left traces: %s\n", json);
		free(json);
		fail();
	}
	free(json);
}

static void test_sealed_frame_is_immutable(void **state)
{
	struct frame *f = frame_new("lab1", "ble0", LABGW_TECH_BLE, "rx.ble.adv");
	assert_int_equal(frame_set_dev(f, "aa:bb", false), 0);
	assert_int_equal(frame_set(f, LABGW_DATA, "n", json_integer(1)), 0);
	assert_int_equal(frame_seal(f, 7, 7), 0);
	char *before = strdup(f->json);
	char id[sizeof(f->id)];
	memcpy(id, f->id, sizeof(id));

	assert_int_equal(frame_set_dev(f, "cc:dd", true), -EINVAL);
	assert_int_equal(frame_set_payload(f, "x", 1), -EINVAL);
	assert_int_equal(frame_set(f, LABGW_DATA, "n", json_integer(2)), -EINVAL);
	assert_int_equal(frame_set(f, LABGW_DATA, "m", json_integer(2)), -EINVAL);
	assert_int_equal(frame_append(f, LABGW_DATA, "l", json_integer(2)), -EINVAL);
	assert_int_equal(frame_seal(f, 8, 8), -EINVAL);

	assert_string_equal(f->json, before);
	assert_int_equal(f->json_len, strlen(before));
	assert_string_equal(f->id, id);
	assert_true(f->seq == 7);
	json_t *data = frame_section(f, LABGW_DATA);
	assert_int_equal(json_object_size(data), 1);
	assert_int_equal(json_integer_value(json_object_get(data, "n")), 1);
	free(before);
	frame_unref(f);
}

static size_t sealed_len(size_t fill)
{
	struct frame *f = frame_new("lab1", "r0", LABGW_TECH_BLE, "rx.ble.adv");
	char *s = malloc(fill + 1);
	memset(s, 'x', fill);
	s[fill] = '\0';
	assert_int_equal(frame_set(f, LABGW_DATA, "s", json_string(s)), 0);
	free(s);
	int rc = frame_seal(f, 1, 1);
	size_t n = rc == 0 ? f->json_len : 0;
	frame_unref(f);
	return n;
}

static void test_json_max_enforced(void **state)
{
	size_t base = sealed_len(0);
	assert_true(base > 0);
	/* exactly FRAME_JSON_MAX bytes is allowed */
	size_t fill = FRAME_JSON_MAX - base;
	assert_int_equal(sealed_len(fill), FRAME_JSON_MAX);

	/* one more is refused, and the frame stays unsealed */
	struct frame *f = frame_new("lab1", "r0", LABGW_TECH_BLE, "rx.ble.adv");
	char *s = malloc(fill + 2);
	memset(s, 'x', fill + 1);
	s[fill + 1] = '\0';
	assert_int_equal(frame_set(f, LABGW_DATA, "s", json_string(s)), 0);
	assert_int_equal(frame_seal(f, 1, 1), -E2BIG);
	assert_false(f->sealed);
	assert_null(f->json);
	/* much larger too */
	assert_int_equal(frame_set(f, LABGW_DATA, "t", json_string(s)), 0);
	assert_int_equal(frame_seal(f, 1, 1), -E2BIG);
	free(s);
	frame_unref(f);
}

static void test_refcount(void **state)
{
	struct frame *f = frame_new("lab1", "r0", LABGW_TECH_BLE, "rx.ble.adv");
	assert_int_equal(f->refcnt, 1);
	assert_ptr_equal(frame_ref(f), f);
	assert_ptr_equal(frame_ref(f), f);
	assert_int_equal(f->refcnt, 3);
	assert_int_equal(frame_set_payload(f, "abc", 3), 0);
	assert_int_equal(frame_set(f, LABGW_SIG, "rssi", json_integer(-1)), 0);
	assert_int_equal(frame_seal(f, 1, 1), 0);
	frame_unref(f);
	frame_unref(f);
	assert_int_equal(f->refcnt, 1);
	assert_true(f->sealed);
	frame_unref(f); /* the last one frees (checked by ASan/LSan) */
	frame_unref(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_design_example_envelope),
		cmocka_unit_test(test_gateway_frame_has_no_radio_or_tech),
		cmocka_unit_test(test_tech_names),
		cmocka_unit_test(test_ids_increase_with_seq),
		cmocka_unit_test(test_new_refuses_bad_type_and_long_ids),
		cmocka_unit_test(test_dev_ids),
		cmocka_unit_test(test_payload_base64),
		cmocka_unit_test(test_payload_limit),
		cmocka_unit_test(test_dotted_paths),
		cmocka_unit_test(test_bad_paths_refused),
		cmocka_unit_test(test_failed_set_leaves_frame_unchanged),
		cmocka_unit_test(test_sections_encode_every_value_type),
		cmocka_unit_test(test_sealed_frame_is_immutable),
		cmocka_unit_test(test_json_max_enforced),
		cmocka_unit_test(test_refcount),
	};
	return cmocka_run_group_tests_name("frame", tests, NULL, NULL);
}
