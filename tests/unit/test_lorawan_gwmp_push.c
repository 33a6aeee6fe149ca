// SPDX-License-Identifier: MIT
/*
 * gwmp_parse_push (plugins/lorawan/gwmp.c) on the JSON that its tokenizer
 * (jsontok.c) has to get right as jansson did: escapes in keys and values,
 * duplicate keys, U+0000, numbers at the edges of their grammar and range,
 * documents larger than the tokens on the stack, deep nesting, bad UTF-8.
 * The cases of PROTOCOL.TXT are in test_lorawan_gwmp.c.
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

#include "../../plugins/lorawan/gwmp.h"

static struct gwmp_push push;
static const char *why;

static int parse_n(const char *json, size_t n)
{
	why = NULL;
	return gwmp_parse_push((const uint8_t *)json, n, &push, &why);
}

static int parse(const char *json)
{
	return parse_n(json, strlen(json));
}

/* the only rxpk of a document */
static const struct gwmp_rxpk *one(const char *json)
{
	if (parse(json) != 0)
		fail_msg("refused (%s): %s", why, json);
	assert_int_equal(push.n_rxpk, 1);
	return &push.rxpk[0];
}

static void escapes_in_keys_and_values(void **st)
{
	const struct gwmp_rxpk *r;

	(void)st;
	r = one("{\"r\\u0078pk\":[{\"d\\u0061ta\":\"QUJD\\/w==\",\"time\":\"2024\\u002d01\","
		"\"modu\":\"L\\u004fRA\",\"datr\":\"S\\u0046\\u0031\\u0032BW\\u0031\\u00325\","
		"\"codr\":\"4\\/5\",\"\\u0074mst\":7}]}");
	assert_null(r->error);
	/* "\/" is how some JSON writers put the '/' of base64 */
	assert_int_equal(r->data_len, 4);
	assert_memory_equal(r->data, "ABC\xff", 4);
	assert_string_equal(r->time, "2024-01");
	assert_int_equal(r->modu, GWMP_MODU_LORA);
	assert_int_equal(r->sf, 12);
	assert_int_equal(r->bw_hz, 125000);
	assert_string_equal(r->codr, "4/5");
	assert_int_equal(r->cr, 5);
	assert_true(r->has_tmst && r->tmst == 7);
	/* FSK spelled with escapes; a datr with escapes that is long only
	 * through leading zeros */
	r = one("{\"rxpk\":[{\"modu\":\"\\u0046SK\",\"datr\":50000,\"data\":\"\"}]}");
	assert_null(r->error);
	assert_int_equal(r->modu, GWMP_MODU_FSK);
	assert_int_equal(r->fsk_bps, 50000);
	r = one("{\"rxpk\":[{\"datr\":\"SF\\u00300000000000000000000000000000000000000007BW0125\","
		"\"data\":\"\"}]}");
	assert_null(r->error);
	assert_int_equal(r->sf, 7);
	assert_int_equal(r->bw_hz, 125000);
	/* escapes that make a string non-ASCII or too long for its field */
	r = one("{\"rxpk\":[{\"time\":\"\\u00e9t\\u00e9\",\"data\":\"\"}]}");
	assert_null(r->error);
	assert_false(r->has_time);
	assert_string_equal(r->time, "");
	r = one("{\"rxpk\":[{\"codr\":\"4/\\u0035\\u0020\",\"data\":\"\"}]}");
	assert_null(r->error);
	assert_true(r->has_codr && r->cr == 0);
	r = one("{\"rxpk\":[{\"codr\":\"\\t\",\"data\":\"\"}]}");
	assert_string_equal(r->error, "codr is not a coding rate");
	r = one("{\"rxpk\":[{\"modu\":\"LORA\\u0020\",\"data\":\"\"}]}");
	assert_string_equal(r->error, "modu is neither \"LORA\" nor \"FSK\"");
	/* base64 spelled out in \u escapes, and one too long to be ours */
	r = one("{\"rxpk\":[{\"data\":\"\\u0051\\u0051\\u003d\\u003d\"}]}");
	assert_null(r->error);
	assert_int_equal(r->data_len, 1);
	{
		char big[2048];
		size_t n = (size_t)snprintf(big, sizeof(big), "{\"rxpk\":[{\"data\":\"");

		for (int i = 0; i < 86; i++)
			n += (size_t)snprintf(big + n, sizeof(big) - n, "\\u0041AAA");
		snprintf(big + n, sizeof(big) - n, "\"}]}");
		r = one(big);
		assert_string_equal(r->error, "data is not base64 of at most 255 bytes");
		/* 340 characters: 255 bytes, the most there is */
		n = (size_t)snprintf(big, sizeof(big), "{\"rxpk\":[{\"data\":\"\\/");
		for (int i = 0; i < 339; i++)
			big[n++] = 'A';
		snprintf(big + n, sizeof(big) - n, "\"}]}");
		r = one(big);
		assert_null(r->error);
		assert_int_equal(r->data_len, 255);
		assert_int_equal(r->data[0], 0xfc);
	}
}

static void duplicate_keys_last_one_wins(void **st)
{
	const struct gwmp_rxpk *r;

	(void)st;
	assert_int_equal(parse("{\"rxpk\":[{\"data\":\"\"},{\"data\":\"\"}],\"rxpk\":[{\"data\":"
			       "\"QQ==\"}]}"),
			 0);
	assert_int_equal(push.n_rxpk, 1);
	assert_int_equal(push.rxpk[0].data_len, 1);
	assert_int_equal(parse("{\"stat\":[],\"stat\":{\"rxnb\":1}}"), 0);
	assert_true(push.has_stat && push.stat.rxnb == 1);
	assert_int_equal(parse("{\"stat\":{},\"stat\":[]}"), -EINVAL);
	assert_string_equal(why, "stat is not an object");
	r = one("{\"rxpk\":[{\"data\":\"!!\",\"tmst\":\"x\",\"data\":\"QQ==\",\"tmst\":5,"
		"\"d\\u0061ta\":\"QUI=\"}]}");
	assert_null(r->error);
	assert_int_equal(r->data_len, 2);
	assert_int_equal(r->tmst, 5);
	r = one("{\"rxpk\":[{\"tmst\":5,\"tmst\":-5,\"data\":\"\"}]}");
	assert_string_equal(r->error, "tmst is not a 32-bit counter");
}

static void nul_anywhere_is_refused_as_jansson_did(void **st)
{
	(void)st;
	assert_int_equal(parse("{\"rxpk\":[],\"x\":\"a\\u0000\"}"), -EINVAL);
	assert_string_equal(why, "not valid JSON");
	assert_int_equal(parse("{\"rxpk\":[{\"data\":\"\",\"\\u0000\":1}]}"), -EINVAL);
	assert_string_equal(why, "not valid JSON");
	/* a NUL byte, in a string or out of one (the old jansson reader skipped
	 * one right after a number or literal) */
	assert_int_equal(parse_n("{\"a\":\"\0\"}", 9), -EINVAL);
	assert_string_equal(why, "not valid JSON");
	assert_int_equal(parse_n("{\"a\":1\0}", 8), -EINVAL);
	assert_string_equal(why, "not valid JSON");
	/* U+0001 is fine where it is not read */
	assert_int_equal(parse("{\"rxpk\":[],\"x\":\"\\u0001\"}"), 0);
}

static void roots_and_errors_as_before(void **st)
{
	static const struct {
		const char *json, *why;
	} cases[] = {
		{"1", "not valid JSON"}, /* jansson took only objects and arrays */
		{"\"x\"", "not valid JSON"},
		{"null", "not valid JSON"},
		{"[]", "JSON is not an object"},
		{"[{}]", "JSON is not an object"},
		{"{\"rxpk\":[{\"data\":\"\"},]}", "not valid JSON"},
		{"{\"rxpk\":[{\"data\":\"\xc3\x28\"}]}", "not valid JSON"},
		{"{\"rxpk\":[{\"data\":\"\\ud800\"}]}", "not valid JSON"},
		{"{\"rxpk\":[{\"freq\":01,\"data\":\"\"}]}", "not valid JSON"},
		{"{\"rxpk\":[{\"freq\":868.,\"data\":\"\"}]}", "not valid JSON"},
		{"{\"rxpk\":null}", "rxpk is not an array"},
		{"{\"rxpk\":\"[]\"}", "rxpk is not an array"},
		{"{\"stat\":null}", "stat is not an object"},
		{"  ", "not valid JSON"},
	};

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (parse(cases[i].json) != -EINVAL || strcmp(why, cases[i].why))
			fail_msg("%s: %s", cases[i].json, why ? why : "accepted");
	}
	assert_int_equal(gwmp_parse_push(NULL, 0, &push, &why), -EINVAL);
	assert_string_equal(why, "no JSON object");
	assert_int_equal(
		parse(" \t\r\n{ \"rxpk\" : [ { \"data\" : \"\" } ] , \"stat\" : { } } \r\n"), 0);
	assert_int_equal(push.n_rxpk, 1);
	assert_true(push.has_stat);
}

static void numbers_at_the_edges(void **st)
{
	const struct gwmp_rxpk *r;
	char big[256];

	(void)st;
	/* -0 is an integer: plus zero, as jansson had it; -0.0 keeps its sign */
	r = one("{\"rxpk\":[{\"lsnr\":-0,\"tmst\":-0,\"data\":\"\"}]}");
	assert_null(r->error);
	assert_true(r->has_lsnr && r->lsnr == 0 && !signbit(r->lsnr));
	assert_true(r->has_tmst && r->tmst == 0);
	r = one("{\"rxpk\":[{\"lsnr\":-0.0,\"data\":\"\"}]}");
	assert_true(r->has_lsnr && signbit(r->lsnr));
	/* integral reals and exponents count as integers */
	r = one("{\"rxpk\":[{\"tmst\":1e3,\"chan\":2.0,\"rfch\":0E0,\"stat\":-1.0,\"size\":0,"
		"\"data\":\"\"}]}");
	assert_null(r->error);
	assert_int_equal(r->tmst, 1000);
	assert_int_equal(r->chan, 2);
	assert_int_equal(r->stat, GWMP_CRC_FAIL);
	r = one("{\"rxpk\":[{\"freq\":8.681E2,\"rssi\":-35.5,\"data\":\"\"}]}");
	assert_int_equal(r->freq_hz, 868100000);
	assert_int_equal(r->rssi, -36);
	/* a number longer than the tokenizer's copy on the stack */
	snprintf(big, sizeof(big), "{\"rxpk\":[{\"freq\":868.1%0150d1,\"data\":\"\"}]}", 0);
	r = one(big);
	assert_null(r->error);
	assert_int_equal(r->freq_hz, 868100000);
	/* the edges of the ranges */
	r = one("{\"rxpk\":[{\"tmms\":9007199254740992,\"data\":\"\"}]}");
	assert_null(r->error);
	assert_true(r->tmms == 9007199254740992ull);
	r = one("{\"rxpk\":[{\"tmms\":9007199254740994,\"data\":\"\"}]}");
	assert_string_equal(r->error, "tmms is not a GPS time in ms");
	r = one("{\"rxpk\":[{\"freq\":1e-6,\"data\":\"\"}]}");
	assert_null(r->error);
	r = one("{\"rxpk\":[{\"freq\":0,\"data\":\"\"}]}");
	assert_string_equal(r->error, "freq is not a frequency in MHz");
	r = one("{\"rxpk\":[{\"freq\":1e-400,\"data\":\"\"}]}");
	assert_string_equal(r->error, "freq is not a frequency in MHz");
}

/* What jansson refused for the whole datagram, numbers beyond int64 or a
 * double, makes the field that holds one bad, and is ignored elsewhere. */
static void numbers_jansson_refused(void **st)
{
	const struct gwmp_rxpk *r;

	(void)st;
	r = one("{\"rxpk\":[{\"tmst\":18446744073709551616,\"data\":\"\"}]}");
	assert_string_equal(r->error, "tmst is not a 32-bit counter");
	r = one("{\"rxpk\":[{\"lsnr\":1e400,\"data\":\"\"}]}");
	assert_string_equal(r->error, "lsnr is not an SNR in dB");
	r = one("{\"rxpk\":[{\"rssi\":-1e400,\"data\":\"\"}]}");
	assert_string_equal(r->error, "rssi is not a level in dBm");
	r = one("{\"rxpk\":[{\"foff\":99999999999999999999,\"x\":[1e999],\"data\":\"AA==\"}]}");
	assert_null(r->error);
	assert_int_equal(r->data_len, 1);
	assert_int_equal(
		parse("{\"stat\":{\"rxnb\":-9223372036854775809,\"lati\":1e400,\"rxok\":3}}"), 0);
	assert_false(push.stat.has_rxnb || push.stat.has_lati);
	assert_true(push.stat.has_rxok);
}

static void rsig_of_the_first_antenna(void **st)
{
	const struct gwmp_rxpk *r;

	(void)st;
	r = one("{\"rxpk\":[{\"rsig\":[],\"data\":\"\"}]}");
	assert_false(r->has_rssi || r->has_lsnr);
	r = one("{\"rxpk\":[{\"rsig\":[[{\"rssic\":-1}],{\"rssic\":-2}],\"data\":\"\"}]}");
	assert_false(r->has_rssi);
	r = one("{\"rxpk\":[{\"rsig\":{\"rssic\":-1},\"data\":\"\"}]}");
	assert_false(r->has_rssi);
	r = one("{\"rxpk\":[{\"rsig\":[{\"rssis\":\"x\",\"rssic\":-91.6,\"lsnr\":101},"
		"{\"rssic\":-50,\"lsnr\":3}],\"data\":\"\"}]}");
	assert_true(r->has_rssi && r->rssi == -92);
	assert_false(r->has_lsnr);
	/* the top level wins */
	r = one("{\"rxpk\":[{\"rssi\":-10,\"lsnr\":1.5,\"rsig\":[{\"rssic\":-91,\"lsnr\":-2}],"
		"\"data\":\"\"}]}");
	assert_int_equal(r->rssi, -10);
	assert_true(r->lsnr == 1.5);
}

/* More values than the tokens on the stack: one allocation, same reading */
static void large_documents(void **st)
{
	size_t cap = GWMP_JSON_MAX, n;
	char *big = malloc(cap + 1);
	char *deep;

	(void)st;
	assert_non_null(big);
	n = (size_t)snprintf(big, cap, "{\"stat\":{\"rxnb\":7},\"rxpk\":[");
	for (int i = 0; i < 200; i++)
		n += (size_t)snprintf(
			big + n, cap - n,
			"%s{\"tmst\":%d,\"chan\":%d,\"freq\":868.1,\"datr\":\"SF7BW125\","
			"\"rsig\":[{\"rssic\":-%d}],\"data\":\"QQ==\"}",
			i ? "," : "", i, i % 8, i % 100);
	n += (size_t)snprintf(big + n, cap - n, "]}");
	assert_true(n < cap);
	assert_int_equal(parse(big), 0);
	assert_int_equal(push.n_rxpk, GWMP_RXPK_MAX);
	assert_int_equal(push.rxpk_over, 200 - GWMP_RXPK_MAX);
	for (int i = 0; i < GWMP_RXPK_MAX; i++) {
		const struct gwmp_rxpk *r = &push.rxpk[i];

		assert_null(r->error);
		assert_int_equal(r->tmst, i);
		assert_int_equal(r->chan, i % 8);
		assert_int_equal(r->rssi, -(i % 100));
		assert_int_equal(r->sf, 7);
	}
	assert_true(push.has_stat && push.stat.rxnb == 7);

	/* as deep as jansson went, in a field nobody reads; one more is refused */
	deep = malloc(2 * 2049 + 64);
	assert_non_null(deep);
	for (int depth = 2048; depth <= 2049; depth++) {
		n = (size_t)sprintf(deep, "{\"x\":");
		for (int i = 0; i < depth - 1; i++)
			deep[n++] = '[';
		for (int i = 0; i < depth - 1; i++)
			deep[n++] = ']';
		sprintf(deep + n, ",\"rxpk\":[{\"data\":\"\"}]}");
		assert_int_equal(parse(deep), depth == 2048 ? 0 : -EINVAL);
	}
	assert_string_equal(why, "not valid JSON");
	free(deep);

	/* the longest document: JSON longer is refused first */
	memset(big, ' ', cap + 1);
	memcpy(big, "{}", 2);
	assert_int_equal(parse_n(big, cap), 0);
	assert_int_equal(parse_n(big, cap + 1), -EINVAL);
	assert_string_equal(why, "JSON longer than 65495 bytes");
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(escapes_in_keys_and_values),
		cmocka_unit_test(duplicate_keys_last_one_wins),
		cmocka_unit_test(nul_anywhere_is_refused_as_jansson_did),
		cmocka_unit_test(roots_and_errors_as_before),
		cmocka_unit_test(numbers_at_the_edges),
		cmocka_unit_test(numbers_jansson_refused),
		cmocka_unit_test(rsig_of_the_first_antenna),
		cmocka_unit_test(large_documents),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
