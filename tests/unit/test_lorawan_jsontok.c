// SPDX-License-Identifier: MIT
/*
 * The strict JSON tokenizer of the lorawan module (plugins/lorawan/jsontok.c):
 * RFC 8259 grammar and escapes, RFC 3629 UTF-8, the depth limit, numbers as
 * jansson reads them, keys after unescaping with the last duplicate winning,
 * token structure and workspace sizes.
 */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "../../plugins/lorawan/jsontok.h"

static struct jsontok tok[4096];

/* parses s (n bytes) into d over tok[]; returns jsontok_load()'s result */
static int load_n(struct jsontok_doc *d, const char *s, size_t n)
{
	return jsontok_load(d, s, n, tok, sizeof(tok) / sizeof(tok[0]));
}

static int load(struct jsontok_doc *d, const char *s)
{
	return load_n(d, s, strlen(s));
}

static bool valid_n(const char *s, size_t n)
{
	size_t ntok;

	return jsontok_parse(s, n, NULL, 0, &ntok, NULL) == -ENOBUFS;
}

static bool valid(const char *s)
{
	return valid_n(s, strlen(s));
}

static void accepts_rfc8259_documents(void **st)
{
	static const char *const good[] = {
		"{}",
		"[]",
		"1",
		"-0",
		"\"\"",
		"true",
		"false",
		"null",
		" \t\r\n{ \"a\" : [ 1 , 2.5e-3 , -0.0 , 1E+2 , true , false , null , { } , [ ] ] } "
		"\r\n",
		"[0,-0,0.0,1e5,1E5,1e+5,1e-5,1.5e005,123456789012345678901234567890]",
		"{\"\":\"\"}",
		"[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u0041\\u00e9\\uD83D\\uDE00\"]",
		"[\"\x7f\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf\xef\xbf\xbf\"]",
		"[1e400]",
		"[-9223372036854775809]",
	};

	(void)st;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		if (!valid(good[i]))
			fail_msg("refused: %s", good[i]);
	}
}

static void refuses_what_rfc8259_does_not_allow(void **st)
{
	static const char *const bad[] = {
		/* structure */
		"", " ", "{", "}", "[", "[1", "[1,]", "[,1]", "[1,,2]", "[1 2]", "{\"a\":1,}",
		"{,}", "{\"a\" 1}", "{\"a\":}", "{\"a\"}", "{a:1}", "{'a':1}", "{1:1}",
		"{\"a\":1 \"b\":2}", "[}", "{]", "{} x", "{}{}", "[]]",
		"\xef\xbb\xbf{}",	      /* a BOM, as jansson */
		"\f[]", "\v[]", "[\xc2\xa0]", /* NBSP is not JSON whitespace */
		/* literals */
		"tru", "nul", "True", "NULL", "truex", "[true1]", "nan", "NaN", "Infinity",
		"-Infinity",
		/* numbers */
		"01", "-01", "00", "1.", ".5", "-.5", "+1", "-", "1e", "1e+", "1E-", "1.e5", "0x10",
		"1.5.3", "1e5e5", "--1", "[- 1]",
		/* strings */
		"\"", "\"abc", "[\"a\tb\"]", "[\"a\nb\"]", "[\"\x01\"]", "[\"\x1f\"]",
		"[\"\\x41\"]", "[\"\\U0041\"]", "[\"\\'\"]", "[\"\\u00G1\"]", "[\"\\u00\"]",
		"[\"\\u12\"", "[\"\\\"]", "[\"\\",
		/* surrogates: a low one first, a high one alone or before no low one */
		"[\"\\uDC00\"]", "[\"\\uDFFF\"]", "[\"\\uD800\"]", "[\"\\uD800x\"]",
		"[\"\\uD800\\n\"]", "[\"\\uD800\\u0041\"]", "[\"\\uD800\\uD800\"]",
		"[\"\\uDBFF\\uE000\"]", "[\"\\uD800\\u",
		/* UTF-8 */
		"[\"\x80\"]", "[\"\xbf\"]", "[\"\xc0\x80\"]",	      /* overlong NUL */
		"[\"\xc1\xbf\"]",				      /* overlong */
		"[\"\xe0\x80\x80\"]",				      /* overlong */
		"[\"\xe0\x9f\xbf\"]",				      /* overlong */
		"[\"\xed\xa0\x80\"]",				      /* U+D800 */
		"[\"\xed\xbf\xbf\"]",				      /* U+DFFF */
		"[\"\xf0\x80\x80\x80\"]",			      /* overlong */
		"[\"\xf0\x8f\xbf\xbf\"]",			      /* overlong */
		"[\"\xf4\x90\x80\x80\"]",			      /* U+110000 */
		"[\"\xf5\x80\x80\x80\"]", "[\"\xff\"]", "[\"\xc3\"]", /* cut short by the quote */
		"[\"\xe2\x82\"]",				      /* cut short */
		"[\"\xc3\x28\"]",				      /* not a continuation byte */
		"[\"\xe2\x28\xa1\"]",				      /* not a continuation byte */
		"\"\xc3",					      /* cut short by the end */
		"[\xc3\xa9]",					      /* outside a string */
	};

	(void)st;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (valid(bad[i]))
			fail_msg("accepted: %s", bad[i]);
	}
	/* NUL bytes: inside or outside strings (jansson 2.14 skips one right
	 * after a number or literal; RFC 8259 does not) */
	assert_false(valid_n("[\"a\0\"]", 5));
	assert_false(valid_n("[1\0]", 4));
	assert_false(valid_n("[true\0]", 7));
	assert_false(valid_n("{}\0", 3));
	assert_false(valid_n("\0{}", 3));
	assert_false(valid_n(NULL, 0));
}

static void unescapes_strings(void **st)
{
	struct jsontok_doc d;
	char out[64];

	(void)st;
	assert_int_equal(load(&d, "[\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]"), 0);
	assert_int_equal(d.n, 2);
	assert_int_equal(jsontok_type_of(&d, 1), JSONTOK_STRING);
	assert_true(jsontok_at(&d, 1)->flags & JSONTOK_F_ESCAPED);
	assert_int_equal(jsontok_str(&d, 1, out, sizeof(out)), 8);
	assert_string_equal(out, "\"\\/\b\f\n\r\t");

	/* \u: one to four UTF-8 bytes; hex digits of either case */
	assert_int_equal(
		load(&d, "[\"\\u0041\\u00e9\\u00E9\\u20ac\\uFFFF\\ud83d\\uDE00\\uDBFF\\uDFFF\"]"),
		0);
	assert_int_equal(jsontok_str(&d, 1, out, sizeof(out)), 1 + 2 + 2 + 3 + 3 + 4 + 4);
	assert_memory_equal(
		out, "A\xc3\xa9\xc3\xa9\xe2\x82\xac\xef\xbf\xbf\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf",
		19);
	assert_true(jsontok_str_eq(
		&d, 1,
		"A\xc3\xa9\xc3\xa9\xe2\x82\xac\xef\xbf\xbf\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf"));
	assert_false(jsontok_str_eq(&d, 1, "A"));
	assert_false(jsontok_str_eq(&d, 1, ""));
	assert_int_equal(d.flags, 0);

	/* raw UTF-8 is copied as it is, and without escapes the flag is off */
	assert_int_equal(load(&d, "[\"caf\xc3\xa9\"]"), 0);
	assert_false(jsontok_at(&d, 1)->flags & JSONTOK_F_ESCAPED);
	assert_int_equal(jsontok_str(&d, 1, out, sizeof(out)), 5);
	assert_string_equal(out, "caf\xc3\xa9");

	/* like snprintf: the whole length, a truncated copy, always a NUL */
	assert_int_equal(load(&d, "[\"abc\\u00e9def\"]"), 0);
	assert_int_equal(jsontok_str(&d, 1, out, 4), 8);
	assert_string_equal(out, "abc");
	assert_int_equal(jsontok_str(&d, 1, out, 8), 8);
	assert_string_equal(out, "abc\xc3\xa9"
				 "de");
	assert_int_equal(jsontok_str(&d, 1, out, 9), 8);
	assert_string_equal(out, "abc\xc3\xa9"
				 "def");
	assert_int_equal(jsontok_str(&d, 1, out, 1), 8);
	assert_string_equal(out, "");
	assert_int_equal(jsontok_str(&d, 1, NULL, 0), 8);

	/* U+0000 is a valid string, flagged for callers that refuse it */
	assert_int_equal(load(&d, "[\"a\\u0000b\"]"), 0);
	assert_true(d.flags & JSONTOK_DOC_NUL);
	assert_int_equal(jsontok_str(&d, 1, out, sizeof(out)), 3);
	assert_memory_equal(out, "a\0b", 4);
	assert_false(jsontok_str_eq(&d, 1, "a"));
	assert_int_equal(load(&d, "{\"\\u0000\":1}"), 0);
	assert_true(d.flags & JSONTOK_DOC_NUL);
	assert_int_equal(load(&d, "{\"\\u0001\":\"\\u00000\"}"), 0);
	assert_true(d.flags & JSONTOK_DOC_NUL);
	assert_int_equal(load(&d, "{\"\\u0100\":\"\\u1000\"}"), 0);
	assert_false(d.flags & JSONTOK_DOC_NUL);
}

/* the token of value i read as a number */
static int num(const char *s, double *out)
{
	struct jsontok_doc d;
	int rc;

	assert_int_equal(load(&d, s), 0);
	assert_int_equal(jsontok_type_of(&d, 0), JSONTOK_NUMBER);
	rc = jsontok_num(&d, 0, out);
	jsontok_doc_release(&d);
	return rc;
}

static void reads_numbers_as_jansson_does(void **st)
{
	char big[200];
	double x;

	(void)st;
	assert_int_equal(num("0", &x), 0);
	assert_true(x == 0 && !signbit(x));
	/* -0 is an integer for jansson: plus zero; -0.0 is a real: minus zero */
	assert_int_equal(num("-0", &x), 0);
	assert_true(x == 0 && !signbit(x));
	assert_int_equal(num("-0.0", &x), 0);
	assert_true(x == 0 && signbit(x));
	assert_int_equal(num("-0e0", &x), 0);
	assert_true(signbit(x));
	assert_int_equal(num("868.1", &x), 0);
	assert_true(x == 868.1);
	assert_int_equal(num("-35", &x), 0);
	assert_true(x == -35);
	assert_int_equal(num("1E+2", &x), 0);
	assert_true(x == 100);
	assert_int_equal(num("25e-1", &x), 0);
	assert_true(x == 2.5);
	/* integers: exact to int64, then the double nearest */
	assert_int_equal(num("9007199254740993", &x), 0);
	assert_true(x == 9007199254740992.0);
	assert_int_equal(num("9223372036854775807", &x), 0);
	assert_true(x == 9223372036854775808.0);
	assert_int_equal(num("-9223372036854775808", &x), 0);
	assert_true(x == -9223372036854775808.0);
	/* beyond int64 or a double: what jansson refuses, still with a value */
	assert_int_equal(num("9223372036854775808", &x), -ERANGE);
	assert_true(x == 9223372036854775808.0);
	assert_int_equal(num("-9223372036854775809", &x), -ERANGE);
	assert_true(x == -9223372036854775808.0);
	assert_int_equal(num("123456789012345678901234567890", &x), -ERANGE);
	assert_true(x == 123456789012345678901234567890.0);
	assert_int_equal(num("1e400", &x), -ERANGE);
	assert_true(x == HUGE_VAL);
	assert_int_equal(num("-1e400", &x), -ERANGE);
	assert_true(x == -HUGE_VAL);
	assert_int_equal(num("1.7976931348623157e308", &x), 0);
	assert_true(x == 1.7976931348623157e308);
	/* underflow is no error for jansson */
	assert_int_equal(num("1e-400", &x), 0);
	assert_true(x == 0);
	assert_int_equal(num("4.9e-324", &x), 0);
	assert_true(x > 0);
	/* longer than the copy on the stack */
	snprintf(big, sizeof(big), "868.1%0120d1", 0);
	assert_int_equal(num(big, &x), 0);
	assert_true(x == 868.1);
	snprintf(big, sizeof(big), "1%0100d", 0);
	assert_int_equal(num(big, &x), -ERANGE);
	assert_true(x == 1e100);
}

/* A locale whose decimal point is ',': an installed one, else one built with
 * localedef from the locales package into a temporary LOCPATH. */
static bool comma_locale(char *dir, size_t cap)
{
	static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8",
					    "fr_FR.utf8"};
	char cmd[256];

	dir[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (setlocale(LC_NUMERIC, names[i]))
			return true;
	}
	if (access("/usr/share/i18n/locales/de_DE", R_OK) ||
	    snprintf(dir, cap, "/tmp/labgw-locale-XXXXXX") >= (int)cap || !mkdtemp(dir))
		return false;
	snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 >/dev/null 2>&1",
		 dir);
	if (system(cmd) != 0)
		return false;
	setenv("LOCPATH", dir, 1);
	return setlocale(LC_NUMERIC, "de_DE.UTF-8") != NULL;
}

static void numbers_do_not_depend_on_the_locale(void **st)
{
	struct jsontok_doc d;
	char dir[64], cmd[128];
	double x = 0;
	bool have = comma_locale(dir, sizeof(dir));

	(void)st;
	if (have) {
		assert_string_equal(localeconv()->decimal_point, ",");
		assert_int_equal(load(&d, "[868.1,5]"), 0);
		assert_int_equal(jsontok_num(&d, 1, &x), 0);
		assert_true(x == 868.1);
		assert_int_equal(jsontok_num(&d, 2, &x), 0);
		assert_true(x == 5);
		assert_int_equal(num("-2.5e1", &x), 0);
		assert_true(x == -25);
		setlocale(LC_NUMERIC, "C");
	}
	if (dir[0]) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		assert_int_equal(system(cmd), 0);
		unsetenv("LOCPATH");
	}
	if (!have)
		skip(); /* no locale with a decimal comma, no localedef and locales */
}

/* n containers deep, innermost holding `inner` */
static char *nest(int n, const char *open, const char *close, const char *inner)
{
	size_t lo = strlen(open), lc = strlen(close), li = strlen(inner);
	char *s = malloc((size_t)n * (lo + lc) + li + 1), *p = s;

	assert_non_null(s);
	for (int i = 0; i < n; i++, p += lo)
		memcpy(p, open, lo);
	memcpy(p, inner, li);
	p += li;
	for (int i = 0; i < n; i++, p += lc)
		memcpy(p, close, lc);
	*p = '\0';
	return s;
}

static void nests_as_deep_as_jansson(void **st)
{
	static const struct {
		int n;
		const char *open, *close, *inner;
		bool ok;
	} cases[] = {
		/* the root is at depth 1; jansson takes values down to 2048 */
		{JSONTOK_DEPTH_MAX, "[", "]", "", true},
		{JSONTOK_DEPTH_MAX + 1, "[", "]", "", false},
		{JSONTOK_DEPTH_MAX - 1, "[", "]", "1", true},
		{JSONTOK_DEPTH_MAX, "[", "]", "1", false},
		{JSONTOK_DEPTH_MAX - 1, "{\"a\":", "}", "{}", true},
		{JSONTOK_DEPTH_MAX - 1, "{\"a\":", "}", "\"x\"", true},
		{JSONTOK_DEPTH_MAX, "{\"a\":", "}", "\"x\"", false},
		{JSONTOK_DEPTH_MAX / 2 - 1, "[{\"a\":", "}]", "[[]]", true},
		{JSONTOK_DEPTH_MAX / 2 - 1, "[{\"a\":", "}]", "[[1]]", false},
		{JSONTOK_DEPTH_MAX / 2, "[{\"a\":", "}]", "1", false},
		{100000, "[", "]", "", false},
	};
	struct jsontok_doc d;

	(void)st;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *s = nest(cases[i].n, cases[i].open, cases[i].close, cases[i].inner);

		if (valid(s) != cases[i].ok)
			fail_msg("%d x %s%s%s: %s", cases[i].n, cases[i].open, cases[i].inner,
				 cases[i].close, cases[i].ok ? "refused" : "accepted");
		free(s);
	}
	/* an unclosed nest is refused, not overflowed */
	{
		char *s = nest(JSONTOK_DEPTH_MAX, "[", "", "");

		assert_false(valid(s));
		free(s);
	}
	/* the structure of a deep one */
	{
		char *s = nest(JSONTOK_DEPTH_MAX - 1, "[", "]", "7");

		assert_int_equal(load(&d, s), 0);
		assert_int_equal(d.n, JSONTOK_DEPTH_MAX);
		for (int i = 0; i < JSONTOK_DEPTH_MAX - 1; i++) {
			assert_int_equal(jsontok_at(&d, i)->size, 1);
			assert_int_equal(jsontok_at(&d, i)->next, JSONTOK_DEPTH_MAX);
		}
		assert_int_equal(jsontok_type_of(&d, JSONTOK_DEPTH_MAX - 1), JSONTOK_NUMBER);
		jsontok_doc_release(&d);
		free(s);
	}
}

static void tokens_skip_and_count(void **st)
{
	/* tokens: 0 [ 1 [ 2 1, 3 2, 4 { 5 "a" 6 [ 7 3, 8 "b" 9 {}, 10 "x", 11 [] */
	const char *s = " [[1,2],{\"a\":[3],\"b\":{}},\"x\",[]] ";
	struct jsontok_doc d;

	(void)st;
	assert_int_equal(load(&d, s), 0);
	assert_int_equal(d.n, 12);
	assert_false(d.owned);
	assert_int_equal(jsontok_type_of(&d, 0), JSONTOK_ARRAY);
	assert_int_equal(jsontok_at(&d, 0)->size, 4);
	assert_int_equal(jsontok_at(&d, 0)->next, 12);
	assert_int_equal(jsontok_at(&d, 0)->start, 1);
	assert_int_equal(jsontok_at(&d, 0)->end, strlen(s) - 1);
	assert_int_equal(jsontok_at(&d, 1)->size, 2);
	assert_int_equal(jsontok_at(&d, 1)->next, 4);
	assert_int_equal(jsontok_type_of(&d, 4), JSONTOK_OBJECT);
	assert_int_equal(jsontok_at(&d, 4)->size, 2);
	assert_int_equal(jsontok_at(&d, 4)->next, 10);
	assert_true(jsontok_str_eq(&d, 5, "a"));
	assert_int_equal(jsontok_at(&d, 5)->next, 6);
	assert_int_equal(jsontok_at(&d, 6)->next, 8);
	assert_int_equal(jsontok_at(&d, 6)->size, 1);
	assert_int_equal(jsontok_at(&d, 9)->size, 0);
	assert_int_equal(jsontok_at(&d, 9)->next, 10);
	assert_true(jsontok_str_eq(&d, 10, "x"));
	assert_int_equal(jsontok_at(&d, 10)->start, strchr(s, 'x') - s);
	assert_int_equal(jsontok_at(&d, 10)->end, strchr(s, 'x') - s + 1);
	assert_int_equal(jsontok_at(&d, 11)->size, 0);
	assert_int_equal(jsontok_at(&d, 11)->next, 12);
	assert_int_equal(jsontok_find(&d, 4, "b"), 9);
	assert_int_equal(jsontok_find(&d, 4, "c"), -1);
	assert_int_equal(jsontok_find(&d, 0, "a"), -1); /* not an object */
	assert_int_equal(jsontok_find(&d, -1, "a"), -1);
	assert_int_equal(jsontok_type_of(&d, -1), 0);
	assert_true(jsontok_at(&d, 2)->flags & JSONTOK_F_INT);
	jsontok_doc_release(&d);
}

static void finds_keys_after_unescaping_last_one_wins(void **st)
{
	static const char *const keys[] = {"data", "tmst", "rxpk", "", "caf\xc3\xa9"};
	struct jsontok_doc d;
	int v[5];
	double x;

	(void)st;
	assert_int_equal(load(&d, "{\"tmst\":1,\"d\\u0061ta\":\"A\",\"tmst\":2,\"\":3,"
				  "\"caf\\u00e9\":4,\"dat\":5,\"datas\":6,\"tmst\":{\"tmst\":7}}"),
			 0);
	jsontok_members(&d, 0, keys, 5, v);
	assert_int_equal(jsontok_type_of(&d, v[0]), JSONTOK_STRING);
	assert_true(jsontok_str_eq(&d, v[0], "A"));
	assert_int_equal(jsontok_type_of(&d, v[1]), JSONTOK_OBJECT); /* the last tmst */
	assert_int_equal(v[2], -1);
	assert_int_equal(jsontok_num(&d, v[3], &x), 0);
	assert_true(x == 3);
	assert_int_equal(jsontok_num(&d, v[4], &x), 0);
	assert_true(x == 4);
	assert_int_equal(jsontok_num(&d, jsontok_find(&d, v[1], "tmst"), &x), 0);
	assert_true(x == 7);
	/* the value of a key is never taken for a key */
	assert_int_equal(load(&d, "{\"a\":\"b\",\"c\":\"a\"}"), 0);
	assert_int_equal(jsontok_find(&d, 0, "b"), -1);
	assert_int_equal(jsontok_find(&d, 0, "c"), 4);
}

static void grows_beyond_the_workspace(void **st)
{
	struct jsontok ws[4];
	struct jsontok_doc d;
	char s[64 * 1024];
	size_t n = 0, ntok;

	(void)st;
	/* the most tokens for the length: (len + 1) / 2 */
	s[n++] = '[';
	for (int i = 0; i < 20000; i++) {
		s[n++] = '0';
		s[n++] = ',';
	}
	s[n - 1] = ']';
	assert_int_equal(jsontok_parse(s, n, ws, 4, &ntok, NULL), -ENOBUFS);
	assert_int_equal(ntok, 20001);
	assert_int_equal(ntok, (n + 1) / 2);
	assert_int_equal(jsontok_load(&d, s, n, ws, 4), 0);
	assert_true(d.owned);
	assert_int_equal(d.n, 20001);
	assert_int_equal(jsontok_at(&d, 0)->size, 20000);
	assert_int_equal(jsontok_at(&d, 0)->next, 20001);
	assert_int_equal(jsontok_at(&d, 20000)->start, n - 2);
	jsontok_doc_release(&d);
	assert_null(d.tok);
	/* exactly the workspace */
	assert_int_equal(jsontok_load(&d, "[1,[2]]", 7, ws, 4), 0);
	assert_false(d.owned);
	assert_int_equal(jsontok_at(&d, 0)->next, 4);
	/* no workspace at all */
	assert_int_equal(jsontok_load(&d, "{}", 2, NULL, 0), 0);
	assert_true(d.owned);
	jsontok_doc_release(&d);
	/* invalid: no tokens, nothing to release */
	assert_int_equal(jsontok_load(&d, "[1,]", 4, ws, 4), -EINVAL);
	assert_null(d.tok);
	jsontok_doc_release(&d);
	assert_int_equal(jsontok_load(&d, "[1,2,3,4,]", 10, ws, 4), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(accepts_rfc8259_documents),
		cmocka_unit_test(refuses_what_rfc8259_does_not_allow),
		cmocka_unit_test(unescapes_strings),
		cmocka_unit_test(reads_numbers_as_jansson_does),
		cmocka_unit_test(numbers_do_not_depend_on_the_locale),
		cmocka_unit_test(nests_as_deep_as_jansson),
		cmocka_unit_test(tokens_skip_and_count),
		cmocka_unit_test(finds_keys_after_unescaping_last_one_wins),
		cmocka_unit_test(grows_beyond_the_workspace),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
