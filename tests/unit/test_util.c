// SPDX-License-Identifier: MIT
/*
 * util.c: the encoders (RFC 4648 base64 and base16 vectors), the parsers of
 * configuration values (integers, booleans, durations, sizes, host:port),
 * JSON string escaping, identifiers and the RFC 3339 time format.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>

#include "util.h"

/* ---- base64 / hex ------------------------------------------------------- */

static void test_base64_rfc4648_vectors(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{"", ""},
		{"f", "Zg=="},
		{"fo", "Zm8="},
		{"foo", "Zm9v"},
		{"foob", "Zm9vYg=="},
		{"fooba", "Zm9vYmE="},
		{"foobar", "Zm9vYmFy"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		size_t n = strlen(v[i].in);
		char out[16];
		memset(out, 'X', sizeof(out));
		assert_int_equal(base64_encoded_len(n), strlen(v[i].out));
		base64_encode(v[i].in, n, out);
		assert_string_equal(out, v[i].out);
	}
}

static void test_base64_binary_uses_plus_slash(void **state)
{
	/* the alphabet's last two symbols, and every 6-bit value once */
	static const unsigned char ff[] = {0xfb, 0xff, 0xbf};
	char out[8];
	base64_encode(ff, sizeof(ff), out);
	assert_string_equal(out, "+/+/");

	unsigned char all[48];
	for (unsigned i = 0; i < 64; i += 4) {
		unsigned b = i * 3 / 4;
		uint32_t v = (uint32_t)i << 18 | (uint32_t)(i + 1) << 12 | (uint32_t)(i + 2) << 6 |
			     (i + 3);
		all[b] = (unsigned char)(v >> 16);
		all[b + 1] = (unsigned char)(v >> 8);
		all[b + 2] = (unsigned char)v;
	}
	char enc[65];
	assert_int_equal(base64_encoded_len(sizeof(all)), 64);
	base64_encode(all, sizeof(all), enc);
	assert_string_equal(enc,
			    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/");
}

static void test_base64_lorawan_phypayload(void **state)
{
	/* the payload of the DESIGN §5 example */
	static const unsigned char phy[] = {0x40, 0xda, 0x1b, 0x01, 0x26, 0x80,
					    0x01, 0x00, 0x01, 0x70, 0xf9, 0x8b};
	char out[32];
	base64_encode(phy, sizeof(phy), out);
	assert_string_equal(out, "QNobASaAAQABcPmL");
}

static void test_hex_rfc4648_vectors(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{"", ""},
		{"f", "66"},
		{"fo", "666f"},
		{"foo", "666f6f"},
		{"foobar", "666f6f626172"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char out[32];
		hex_encode(v[i].in, strlen(v[i].in), out);
		assert_string_equal(out, v[i].out);
	}
	static const unsigned char b[] = {0x00, 0x0f, 0xa0, 0xff};
	char out[9];
	hex_encode(b, sizeof(b), out);
	assert_string_equal(out, "000fa0ff"); /* lowercase, zero-padded */
}

/* ---- parse_int / parse_bool --------------------------------------------- */

static void test_parse_int(void **state)
{
	long long v = 0;
	assert_int_equal(parse_int("42", 0, 100, &v), 0);
	assert_int_equal(v, 42);
	assert_int_equal(parse_int("-7", -10, 10, &v), 0);
	assert_int_equal(v, -7);
	assert_int_equal(parse_int("0", 0, 0, &v), 0);
	assert_int_equal(v, 0);
	/* bounds are inclusive */
	assert_int_equal(parse_int("16", 16, 1000000, &v), 0);
	assert_int_equal(parse_int("1000000", 16, 1000000, &v), 0);
	assert_int_equal(parse_int("9223372036854775807", 0, INT64_MAX, &v), 0);
	assert_true(v == INT64_MAX);

	v = 12345;
	assert_int_equal(parse_int("15", 16, 100, &v), -ERANGE);
	assert_int_equal(parse_int("101", 16, 100, &v), -ERANGE);
	assert_int_equal(parse_int("99999999999999999999", 0, INT64_MAX, &v), -ERANGE);
	assert_int_equal(parse_int("-99999999999999999999", INT64_MIN, 0, &v), -ERANGE);
	assert_int_equal(v, 12345); /* untouched on error */

	static const char *const bad[] = {"", " 1", "1 ", "1x", "x", "0x10", "1.5", "1e3", "--1"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(parse_int(bad[i], INT64_MIN, INT64_MAX, &v), -EINVAL);
		assert_int_equal(v, 12345);
	}
	assert_int_equal(parse_int(NULL, 0, 1, &v), -EINVAL);
}

static void test_parse_bool(void **state)
{
	static const char *const yes[] = {"yes", "true", "on", "1", "YES", "True", "ON"};
	static const char *const no[] = {"no", "false", "off", "0", "NO", "False", "Off"};
	static const char *const bad[] = {"", "y", "n", "2", "maybe", "yes ", " no", "enable"};
	bool b;
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		b = false;
		assert_int_equal(parse_bool(yes[i], &b), 0);
		assert_true(b);
	}
	for (size_t i = 0; i < ARRAY_SIZE(no); i++) {
		b = true;
		assert_int_equal(parse_bool(no[i], &b), 0);
		assert_false(b);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(parse_bool(bad[i], &b), -EINVAL);
}

/* ---- durations and sizes ------------------------------------------------ */

static void test_parse_duration(void **state)
{
	static const struct {
		const char *s;
		uint64_t ms;
	} ok[] = {
		{"250ms", 250},	   {"10s", 10000}, {"5m", 300000}, {"24h", 86400000},
		{"2d", 172800000}, {"7", 7000}, /* a bare number means seconds */
		{"0", 0},	   {"0ms", 0},	   {"1ms", 1},	   {"010s", 10000},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = 1;
		assert_int_equal(parse_duration_ms(ok[i].s, &v), 0);
		assert_true(v == ok[i].ms);
	}
	static const char *const bad[] = {"",	  "s",	   "ms",   "-1s",   "1.5s",
					  "10 s", " 10s",  "10s ", "10sec", "1w",
					  "1S",	  "10mss", "+5s",  "1h30m", "0x10"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 99;
		assert_int_equal(parse_duration_ms(bad[i], &v), -EINVAL);
		assert_true(v == 99);
	}
	uint64_t v = 99;
	/* too large for 64 bits once scaled, or already as a number */
	assert_int_equal(parse_duration_ms("18446744073709551615d", &v), -ERANGE);
	assert_int_equal(parse_duration_ms("18446744073709551615", &v), -ERANGE);
	assert_int_equal(parse_duration_ms("99999999999999999999999ms", &v), -ERANGE);
	assert_true(v == 99);
	assert_int_equal(parse_duration_ms("18446744073709551615ms", &v), 0);
	assert_true(v == UINT64_MAX);
}

static void test_parse_size(void **state)
{
	static const struct {
		const char *s;
		uint64_t n;
	} ok[] = {
		{"512", 512},	 {"0", 0},	     {"64k", 65536},	 {"64K", 65536},
		{"1M", 1048576}, {"16M", 16u << 20}, {"1G", 1073741824}, {"3G", 3ull * 1073741824},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		uint64_t v = 1;
		assert_int_equal(parse_size(ok[i].s, &v), 0);
		assert_true(v == ok[i].n);
	}
	static const char *const bad[] = {"",	"k",  "1m",   "1g", "1KB", "1 k",
					  " 1", "-1", "1.5M", "1T", "0x10"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		uint64_t v = 99;
		assert_int_equal(parse_size(bad[i], &v), -EINVAL);
		assert_true(v == 99);
	}
	uint64_t v;
	assert_int_equal(parse_size("17179869184G", &v), -ERANGE);
}

/* ---- host:port ---------------------------------------------------------- */

static void test_parse_host_port(void **state)
{
	static const struct {
		const char *s, *host;
		int port;
	} ok[] = {
		{"0.0.0.0:8080", "0.0.0.0", 8080},
		{"127.0.0.1:1883", "127.0.0.1", 1883},
		{"localhost:1", "localhost", 1},
		{"broker.example.org:65535", "broker.example.org", 65535},
		{":1700", "", 1700},
		{"host:0", "host", 0}, /* ephemeral */
		{"[::1]:80", "::1", 80},
		{"[::]:0", "::", 0},
		{"[fe80::1%eth0]:5683", "fe80::1%eth0", 5683},
		{"[2001:db8::42]:8883", "2001:db8::42", 8883},
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		char host[64] = "junk";
		int port = -1;
		assert_int_equal(parse_host_port(ok[i].s, host, sizeof(host), &port), 0);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
	}
	static const char *const bad[] = {
		"",	      "host",	    "8080",	"host:",
		"host:65536", "host:-1",    "host:80x", "host: 80",
		"::1:80",     "[::1]",	    "[::1]80",	"[::1:80",
		"[::1]:",     "[::1]:http", "a:b:c",	"host:99999999999999999999",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char host[64] = "untouched";
		int port = -1;
		assert_int_equal(parse_host_port(bad[i], host, sizeof(host), &port), -EINVAL);
		assert_int_equal(port, -1);
	}
	/* the host must fit, NUL included */
	char small[5];
	int port = -1;
	assert_int_equal(parse_host_port("abcd:1", small, sizeof(small), &port), 0);
	assert_string_equal(small, "abcd");
	assert_int_equal(parse_host_port("abcde:1", small, sizeof(small), &port), -EINVAL);
	assert_int_equal(parse_host_port("[abcde]:1", small, sizeof(small), &port), -EINVAL);
}

/* ---- strbuf ------------------------------------------------------------- */

static void test_strbuf_grows_and_steals(void **state)
{
	struct strbuf sb;
	strbuf_init(&sb, 4);
	assert_false(sb.failed);
	assert_string_equal(sb.buf, "");
	for (int i = 0; i < 1000; i++)
		strbuf_printf(&sb, "%d,", i % 10);
	strbuf_puts(&sb, "end");
	strbuf_append(&sb, "xyz", 2);
	assert_int_equal(sb.len, 2000 + 3 + 2);
	assert_int_equal(strlen(sb.buf), sb.len);
	assert_memory_equal(sb.buf, "0,1,2,", 6);
	assert_string_equal(sb.buf + 2000, "endxy");
	size_t len = 0;
	char *s = strbuf_steal(&sb, &len);
	assert_non_null(s);
	assert_int_equal(len, 2005);
	assert_null(sb.buf);
	assert_int_equal(sb.len, 0);
	free(s);

	strbuf_init(&sb, 0);
	strbuf_append(&sb, "", 0);
	s = strbuf_steal(&sb, &len);
	assert_string_equal(s, "");
	assert_int_equal(len, 0);
	free(s);
	strbuf_release(&sb); /* after a steal: harmless */
}

static char *json_str(const char *s)
{
	struct strbuf sb;
	strbuf_init(&sb, 8);
	strbuf_json_str(&sb, s);
	return strbuf_steal(&sb, NULL);
}

static void test_strbuf_json_str_escapes(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{"", "\"\""},
		{"plain", "\"plain\""},
		{"a\"b", "\"a\\\"b\""},
		{"a\\b", "\"a\\\\b\""},
		{"l1\nl2\r\t", "\"l1\\nl2\\r\\t\""},
		{"\x01\x1f", "\"\\u0001\\u001f\""},
		{"\x7f", "\"\x7f\""},				  /* DEL needs no escape in JSON */
		{"gr\xc3\xbc\xc3\x9f", "\"gr\xc3\xbc\xc3\x9f\""}, /* UTF-8 passes through */
		{"labgw/v1/+/#", "\"labgw/v1/+/#\""},
		{"\"\"", "\"\\\"\\\"\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char *s = json_str(v[i].in);
		assert_string_equal(s, v[i].out);
		/* and JSON reads back the same string */
		json_error_t je;
		json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
		assert_non_null(j);
		assert_true(json_is_string(j));
		assert_string_equal(json_string_value(j), v[i].in);
		json_decref(j);
		free(s);
	}
	/* every control character survives a round trip */
	char all[32];
	for (int c = 1; c < 32; c++)
		all[c - 1] = (char)c;
	all[31] = '\0';
	char *s = json_str(all);
	json_error_t je;
	json_t *j = json_loads(s, JSON_DECODE_ANY, &je);
	assert_non_null(j);
	assert_string_equal(json_string_value(j), all);
	json_decref(j);
	free(s);
}

static void test_strbuf_json_str_appends(void **state)
{
	struct strbuf sb;
	strbuf_init(&sb, 2);
	strbuf_puts(&sb, "{\"k\":");
	strbuf_json_str(&sb, "v\n");
	strbuf_puts(&sb, "}");
	assert_string_equal(sb.buf, "{\"k\":\"v\\n\"}");
	strbuf_release(&sb);
}

/* ---- identifiers -------------------------------------------------------- */

static void test_ident_valid(void **state)
{
	static const char *const ok[] = {
		"lab1",	 "a",	  "0",	     "0a",
		"lora0", "a-b_c", "sim-1_x", "abcdefghijklmnopqrstuvwxyz012345"};
	static const char *const bad[] = {"",	      "A",
					  "Lab1",     "-a",
					  "_a",	      "a.b",
					  "a b",      "a/b",
					  "a+b",      "a#",
					  "\xc3\xa4", "a\n",
					  "a:b",      "abcdefghijklmnopqrstuvwxyz0123456"};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		assert_true(ident_valid(ok[i], 32));
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_false(ident_valid(bad[i], 32));
	assert_false(ident_valid(NULL, 32));
	/* maxlen is inclusive */
	assert_true(ident_valid("abc", 3));
	assert_false(ident_valid("abcd", 3));
}

/* ---- time --------------------------------------------------------------- */

static void test_time_format_us(void **state)
{
	static const struct {
		uint64_t us;
		const char *s;
	} v[] = {
		{0, "1970-01-01T00:00:00.000000Z"},
		{1, "1970-01-01T00:00:00.000001Z"},
		{1795682401123456ull, "2026-11-26T08:40:01.123456Z"}, /* DESIGN §5 */
		{951868799999999ull, "2000-02-29T23:59:59.999999Z"},
		{2147483648000000ull, "2038-01-19T03:14:08.000000Z"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char out[32];
		memset(out, 'X', sizeof(out));
		time_format_us(v[i].us, out);
		assert_string_equal(out, v[i].s);
		assert_int_equal(strlen(out), 27);
	}
}

static void test_time_now_us(void **state)
{
	uint64_t a = time_now_us();
	uint64_t wall = (uint64_t)time(NULL) * 1000000u;
	uint64_t b = time_now_us();
	assert_true(b >= a);
	assert_true(a + 2000000u > wall && wall + 2000000u > a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_base64_rfc4648_vectors),
		cmocka_unit_test(test_base64_binary_uses_plus_slash),
		cmocka_unit_test(test_base64_lorawan_phypayload),
		cmocka_unit_test(test_hex_rfc4648_vectors),
		cmocka_unit_test(test_parse_int),
		cmocka_unit_test(test_parse_bool),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_host_port),
		cmocka_unit_test(test_strbuf_grows_and_steals),
		cmocka_unit_test(test_strbuf_json_str_escapes),
		cmocka_unit_test(test_strbuf_json_str_appends),
		cmocka_unit_test(test_ident_valid),
		cmocka_unit_test(test_time_format_us),
		cmocka_unit_test(test_time_now_us),
	};
	return cmocka_run_group_tests_name("util", tests, NULL, NULL);
}
