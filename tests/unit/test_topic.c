// SPDX-License-Identifier: MIT
/*
 * Topic names and filters (MQTT rules, DESIGN §6): what is a valid name or
 * filter, what a filter matches, how a topic splits into levels, the
 * access-prefix check, and the escaping of device ids as one level.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "topic.h"
#include "util.h"

/* A string of `n` copies of `unit` (a caller-freed buffer). */
static char *repeat(const char *unit, size_t n, const char *tail)
{
	size_t ul = strlen(unit), tl = strlen(tail);
	char *s = malloc(ul * n + tl + 1);
	assert_non_null(s);
	for (size_t i = 0; i < n; i++)
		memcpy(s + i * ul, unit, ul);
	memcpy(s + ul * n, tail, tl + 1);
	return s;
}

static void test_name_valid(void **state)
{
	static const char *const ok[] = {
		"a",
		"a/b",
		"labgw/v1/gw/lab1/state",
		"/",			/* two empty levels */
		"/a",			/* a leading empty level */
		"a/",			/* a trailing empty level */
		"a//b",			/* an empty level inside */
		"$SYS/x",		/* '$' is fine in a name */
		"a b",			/* space is printable */
		"gr\xc3\xbc\xc3\x9f/x", /* UTF-8 */
		"labgw/v1/adm/lab1/rx/cellular/cell0/%2B4917",
	};
	static const char *const bad[] = {
		"",    "+",	"#",	 "a/+",	 "a/#",	 "a+b",	 "a#b",
		"+/a", "a/b/#", "a\x01", "a\tb", "a\nb", "\x7f", "a/\x1f/b",
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		if (!topic_name_valid(ok[i]))
			fail_msg("name '%s' should be valid", ok[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (topic_name_valid(bad[i]))
			fail_msg("name '%s' should be invalid", bad[i]);
	}
}

static void test_filter_valid(void **state)
{
	static const char *const ok[] = {
		"a",   "#",	"+",	 "a/#",	   "a/+",
		"+/a", "a/+/b", "+/+",	 "/#",	   "/+",
		"+/#", "a//+",	"a/+/#", "$SYS/#", "labgw/v1/sbx/bob/#",
		"/",   "a//b",
	};
	static const char *const bad[] = {
		"",	  "a/#/b", "#/a", "a#", "a/b#", "#a",	  "a+",	     "+a",     "a/+b",
		"a/b+/c", "++",	   "##",  "+#", "#/#",	"a/\x01", "a\x7f/#", "a/\n/+",
	};
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++) {
		if (!topic_filter_valid(ok[i]))
			fail_msg("filter '%s' should be valid", ok[i]);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (topic_filter_valid(bad[i]))
			fail_msg("filter '%s' should be invalid", bad[i]);
	}
}

static void test_length_limit(void **state)
{
	char *s = repeat("a", TOPIC_MAX_LEN, "");
	assert_true(topic_name_valid(s));
	assert_true(topic_filter_valid(s));
	free(s);
	s = repeat("a", TOPIC_MAX_LEN + 1, "");
	assert_false(topic_name_valid(s));
	assert_false(topic_filter_valid(s));
	free(s);
	/* a filter at the limit that ends in '#' */
	s = repeat("a", TOPIC_MAX_LEN - 2, "/#");
	assert_int_equal(strlen(s), TOPIC_MAX_LEN);
	assert_true(topic_filter_valid(s));
	free(s);
	s = repeat("a", TOPIC_MAX_LEN - 1, "/#");
	assert_false(topic_filter_valid(s));
	free(s);
}

static void test_level_limit(void **state)
{
	/* TOPIC_MAX_LEVELS levels are TOPIC_MAX_LEVELS - 1 slashes */
	char *s = repeat("a/", TOPIC_MAX_LEVELS - 1, "a");
	assert_true(topic_name_valid(s));
	assert_true(topic_filter_valid(s));
	free(s);
	s = repeat("a/", TOPIC_MAX_LEVELS, "a");
	assert_false(topic_name_valid(s));
	assert_false(topic_filter_valid(s));
	free(s);
	/* empty levels count as levels */
	s = repeat("/", TOPIC_MAX_LEVELS - 1, "");
	assert_true(topic_name_valid(s));
	free(s);
	s = repeat("/", TOPIC_MAX_LEVELS, "");
	assert_false(topic_name_valid(s));
	free(s);
	/* and so do wildcards */
	s = repeat("+/", TOPIC_MAX_LEVELS - 1, "#");
	assert_true(topic_filter_valid(s));
	free(s);
	s = repeat("+/", TOPIC_MAX_LEVELS, "#");
	assert_false(topic_filter_valid(s));
	free(s);
}

static const struct {
	const char *filter, *topic;
	bool match;
} match_table[] = {
	{"a/b/c", "a/b/c", true},
	{"a/b/c", "a/b", false},
	{"a/b", "a/b/c", false},
	{"a/b", "a/bc", false},
	{"a/bc", "a/b", false},
	{"ab", "a", false},
	{"a", "ab", false},
	{"a", "A", false}, /* case matters */
	{"a/+/c", "a/b/c", true},
	{"a/+/c", "a//c", true}, /* '+' matches an empty level */
	{"a/+/c", "a/b/d", false},
	{"a/+/c", "a/b/x/c", false},
	{"a/+", "a/", true},
	{"a/+", "a", false},
	{"a/+", "a/b/c", false},
	{"+", "a", true},
	{"+", "a/b", false},
	{"+", "/", false},
	{"+/+", "/", true},
	{"/+", "/x", true},
	{"/+", "x/", false},
	{"+/b", "a/b", true},
	{"+/+/+", "a/b/c", true},
	{"+/+/+", "a/b", false},
	{"#", "a", true},
	{"#", "a/b/c", true},
	{"#", "/", true},
	{"a/#", "a", true}, /* '#' matches the parent level too */
	{"a/#", "a/", true},
	{"a/#", "a/b", true},
	{"a/#", "a/b/c/d", true},
	{"a/#", "ab", false},
	{"a/#", "b/a", false},
	{"a/b/#", "a", false},
	{"a/b/#", "a/b", true},
	{"a/+/#", "a", false},
	{"a/+/#", "a/b", true},
	{"a/+/#", "a/b/c", true},
	{"/#", "/a", true},
	{"/#", "a", false},
	/* '$' topics are not matched by a leading wildcard */
	{"#", "$SYS/x", false},
	{"+/x", "$SYS/x", false},
	{"+", "$SYS", false},
	{"$SYS/#", "$SYS/x", true},
	{"$SYS/+", "$SYS/x", true},
	{"$SYS", "$SYS", true},
	{"a/#", "a/$x", true}, /* only the first level is special */
	{"a/+", "a/$x", true},
	{"labgw/v1/sbx/bob/#", "labgw/v1/sbx/bob/rx/ble/lab1/ble0/p-0011", true},
	{"labgw/v1/sbx/bob/#", "labgw/v1/sbx/bobby/rx", false},
	{"labgw/v1/sbx/+/event", "labgw/v1/sbx/bob/event", true},
	{"labgw/v1/gw/+/radio/+/state", "labgw/v1/gw/lab1/radio/lora0/state", true},
	{"labgw/v1/gw/+/radio/+/state", "labgw/v1/gw/lab1/radios", false},
};

static void test_match_table(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(match_table); i++) {
		bool m = topic_match(match_table[i].filter, match_table[i].topic);
		if (m != match_table[i].match)
			fail_msg("'%s' %s '%s'", match_table[i].filter,
				 match_table[i].match ? "should match" : "should not match",
				 match_table[i].topic);
	}
}

static void test_match_is_exact_for_literal_filters(void **state)
{
	/* a filter without wildcards matches exactly its own name */
	static const char *const names[] = {"a", "a/b", "/", "a//b", "$SYS/x", "x/"};
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		for (size_t j = 0; j < ARRAY_SIZE(names); j++)
			assert_int_equal(topic_match(names[i], names[j]), i == j);
}

static void test_split(void **state)
{
	const char *lv[4];
	char b1[] = "a/b/c";
	assert_int_equal(topic_split(b1, lv, 4), 3);
	assert_string_equal(lv[0], "a");
	assert_string_equal(lv[1], "b");
	assert_string_equal(lv[2], "c");

	char b2[] = "/x/";
	assert_int_equal(topic_split(b2, lv, 4), 3);
	assert_string_equal(lv[0], "");
	assert_string_equal(lv[1], "x");
	assert_string_equal(lv[2], "");

	char b3[] = "one";
	assert_int_equal(topic_split(b3, lv, 4), 1);
	assert_string_equal(lv[0], "one");

	char b4[] = "a/b/c/d";
	assert_int_equal(topic_split(b4, lv, 4), 4);
	assert_string_equal(lv[3], "d");
	char b5[] = "a/b/c/d/e";
	assert_int_equal(topic_split(b5, lv, 4), -1);
}

static void test_filter_within(void **state)
{
	static const char *prefix = "labgw/v1/sbx/bob/";
	static const struct {
		const char *filter;
		bool within;
	} v[] = {
		{"labgw/v1/sbx/bob/#", true},
		{"labgw/v1/sbx/bob/rx/#", true},
		{"labgw/v1/sbx/bob/rx/+/lab1/+/+", true},
		{"labgw/v1/sbx/bob/tx/lorawan/lab1/lora0/status", true},
		{"labgw/v1/sbx/bob/+", true},
		{"labgw/v1/sbx/bobby/#", false}, /* the trailing '/' is what keeps bobby out */
		{"labgw/v1/sbx/bob", false},
		{"labgw/v1/sbx/+/#", false}, /* a wildcard inside the prefix reaches others */
		{"labgw/v1/sbx/#", false},
		{"labgw/v1/+/bob/#", false},
		{"+/v1/sbx/bob/#", false},
		{"#", false},
		{"labgw/v1/pub/lab1/stats", false},
		{"", false},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		if (topic_filter_within(v[i].filter, prefix) != v[i].within)
			fail_msg("'%s' %s within '%s'", v[i].filter,
				 v[i].within ? "should be" : "should not be", prefix);
	}
	assert_true(topic_filter_within("labgw/v1/pub/#", "labgw/v1/pub/"));
	assert_false(topic_filter_within("labgw/v1/pu/#", "labgw/v1/pub/"));
}

static void test_filter_within_agrees_with_match(void **state)
{
	/* whatever a filter accepted as within the prefix matches, is under it */
	static const char *prefix = "labgw/v1/sbx/bob/";
	static const char *const filters[] = {"labgw/v1/sbx/bob/+/#",
					      "labgw/v1/sbx/bob/rx/+",
					      "labgw/v1/sbx/+/rx",
					      "labgw/v1/sbx/#",
					      "#",
					      "+/+/+/+/+"};
	static const char *const topics[] = {"labgw/v1/sbx/bob/rx", "labgw/v1/sbx/bobby/rx",
					     "labgw/v1/sbx/eve/rx", "labgw/v1/sbx/bob/rx/ble",
					     "labgw/v1/adm/lab1/audit"};
	for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
		if (!topic_filter_within(filters[i], prefix))
			continue;
		for (size_t j = 0; j < ARRAY_SIZE(topics); j++)
			if (topic_match(filters[i], topics[j]))
				assert_memory_equal(topics[j], prefix, strlen(prefix));
	}
}

static void test_escape_level(void **state)
{
	static const struct {
		const char *in, *out;
	} v[] = {
		{"26011bda", "26011bda"},
		{"+4917612345678", "%2B4917612345678"},
		{"a/b", "a%2Fb"},
		{"#", "%23"},
		{"100%", "100%25"},
		{"%2B", "%252B"}, /* escaping is reversible: '%' itself is escaped */
		{"aa:bb:cc:dd:ee:ff", "aa:bb:cc:dd:ee:ff"},
		{"+/#%", "%2B%2F%23%25"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		char out[64];
		assert_int_equal(topic_escape_level(v[i].in, out, sizeof(out)), strlen(v[i].out));
		assert_string_equal(out, v[i].out);
		/* the result is one level of a valid topic name */
		char topic[96];
		snprintf(topic, sizeof(topic), "labgw/v1/adm/lab1/rx/ble/ble0/%s", out);
		assert_true(topic_name_valid(topic));
		assert_null(strchr(out, '/'));
	}
	/* outlen counts the NUL */
	char out[4];
	assert_int_equal(topic_escape_level("abc", out, 4), 3);
	assert_string_equal(out, "abc");
	assert_int_equal(topic_escape_level("abcd", out, 4), -1);
	assert_int_equal(topic_escape_level("+", out, 4), 3);
	assert_string_equal(out, "%2B");
	assert_int_equal(topic_escape_level("a+", out, 4), -1);
	assert_int_equal(topic_escape_level("", out, 1), 0);
	assert_string_equal(out, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_name_valid),
		cmocka_unit_test(test_filter_valid),
		cmocka_unit_test(test_length_limit),
		cmocka_unit_test(test_level_limit),
		cmocka_unit_test(test_match_table),
		cmocka_unit_test(test_match_is_exact_for_literal_filters),
		cmocka_unit_test(test_split),
		cmocka_unit_test(test_filter_within),
		cmocka_unit_test(test_filter_within_agrees_with_match),
		cmocka_unit_test(test_escape_level),
	};
	return cmocka_run_group_tests_name("topic", tests, NULL, NULL);
}
