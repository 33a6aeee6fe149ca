// SPDX-License-Identifier: MIT
/*
 * spool.c: the MQTT bridge's on-disk spool — order, acknowledgement, the
 * bound (oldest dropped first, counted), sequence numbers never reused, and
 * what a reopened spool still holds.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "log.h"
#include "spool.h"

struct fx {
	char dir[64];
	char path[96];
};

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/labgw-test-spool-XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(fx->path, sizeof(fx->path), "%s/spool.db", fx->dir);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

/* The next message after `after`: its seq, and its payload compared. */
static uint64_t next_is(struct spool *s, uint64_t after, const char *topic, const char *payload)
{
	uint64_t seq = 0;
	char *t = NULL;
	void *p = NULL;
	size_t len = 0;
	assert_int_equal(spool_next(s, after, &seq, &t, &p, &len), 1);
	assert_string_equal(t, topic);
	assert_int_equal(len, strlen(payload));
	assert_memory_equal(p, payload, len);
	assert_true(seq > after);
	free(t);
	free(p);
	return seq;
}

static void nothing_after(struct spool *s, uint64_t after)
{
	uint64_t seq;
	char *t;
	void *p;
	size_t len;
	assert_int_equal(spool_next(s, after, &seq, &t, &p, &len), 0);
}

static void test_order_and_ack(void **state)
{
	struct fx *fx = *state;
	struct spool *s = spool_open(fx->path, 10);
	assert_non_null(s);
	spool_begin(s);
	assert_int_equal(spool_append(s, "a/1", "one", 3), 0);
	assert_int_equal(spool_append(s, "a/2", "two", 3), 0);
	spool_commit(s);
	uint64_t s1 = next_is(s, 0, "a/1", "one");
	uint64_t s2 = next_is(s, s1, "a/2", "two");
	nothing_after(s, s2);
	/* acknowledged out of order */
	spool_ack(s, s2);
	spool_ack(s, s2); /* twice: counted once */
	struct spool_stats st;
	spool_get_stats(s, &st);
	assert_int_equal(st.count, 1);
	assert_int_equal(st.acked, 1);
	assert_int_equal(st.written, 2);
	next_is(s, 0, "a/1", "one");
	spool_ack(s, s1);
	nothing_after(s, 0);
	/* an emptied spool does not hand out old numbers again */
	assert_int_equal(spool_append(s, "a/3", "three", 5), 0);
	uint64_t s3 = next_is(s, 0, "a/3", "three");
	assert_true(s3 > s2);
	spool_close(s);
}

static void test_full_spool_drops_the_oldest(void **state)
{
	struct fx *fx = *state;
	struct spool *s = spool_open(fx->path, 3);
	assert_non_null(s);
	char buf[8];
	for (int i = 0; i < 5; i++) {
		snprintf(buf, sizeof(buf), "m%d", i);
		assert_int_equal(spool_append(s, "t", buf, strlen(buf)), 0);
	}
	struct spool_stats st;
	spool_get_stats(s, &st);
	assert_int_equal(st.count, 3);
	assert_int_equal(st.dropped, 2);
	assert_int_equal(st.max, 3);
	uint64_t seq = next_is(s, 0, "t", "m2");
	seq = next_is(s, seq, "t", "m3");
	next_is(s, seq, "t", "m4");
	spool_close(s);
}

static void test_a_reopened_spool_keeps_what_was_not_acknowledged(void **state)
{
	struct fx *fx = *state;
	struct spool *s = spool_open(fx->path, 100);
	assert_non_null(s);
	assert_int_equal(spool_append(s, "t", "kept", 4), 0);
	assert_int_equal(spool_append(s, "t", "acked", 5), 0);
	uint64_t first = next_is(s, 0, "t", "kept");
	uint64_t second = next_is(s, first, "t", "acked");
	spool_ack(s, second);
	/* an open transaction is committed by close */
	spool_begin(s);
	assert_int_equal(spool_append(s, "t", "late", 4), 0);
	spool_close(s);

	s = spool_open(fx->path, 100);
	assert_non_null(s);
	struct spool_stats st;
	spool_get_stats(s, &st);
	assert_int_equal(st.count, 2);
	assert_int_equal(st.written, 0);
	uint64_t seq = next_is(s, 0, "t", "kept");
	next_is(s, seq, "t", "late");
	spool_close(s);
}

static void test_an_unusable_path_is_refused(void **state)
{
	assert_null(spool_open("/nonexistent-dir/spool.db", 10));
}

int main(void)
{
	log_set_level(LOG_LVL_ERROR - 1);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_order_and_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_full_spool_drops_the_oldest, setup, teardown),
		cmocka_unit_test_setup_teardown(
			test_a_reopened_spool_keeps_what_was_not_acknowledged, setup, teardown),
		cmocka_unit_test(test_an_unusable_path_is_refused),
	};
	return cmocka_run_group_tests_name("spool", tests, NULL, NULL);
}
