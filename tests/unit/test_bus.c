// SPDX-License-Identifier: MIT
/*
 * The frame bus: MQTT filter semantics through the subscription trie,
 * one delivery per subscriber however many of its filters match, bounded
 * queues with drop counting and gap reporting, the wake callback, retained
 * messages, unsubscribing, and that freeing releases every reference.
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

#include "bus.h"
#include "topic.h"
#include "util.h"

static uint64_t next_seq = 1;

static struct frame *mkframe(void)
{
	struct frame *f = frame_new("lab1", "ble0", LABGW_TECH_BLE, "rx.ble.adv");
	assert_non_null(f);
	assert_int_equal(frame_seal(f, next_seq++, 1000), 0);
	return f;
}

/* Publish a fresh frame; returns what bus_publish returned. */
static int pub(struct bus *bus, const char *topic, bool retain)
{
	struct frame *f = mkframe();
	int n = bus_publish(bus, topic, f, retain);
	frame_unref(f);
	return n;
}

/* Pop one message and check its topic and the drops reported before it. */
static void expect_pop(struct bus_sub *s, const char *topic, uint64_t dropped)
{
	uint64_t d = 12345;
	struct bus_msg *m = bus_sub_pop(s, &d);
	if (!m)
		fail_msg("expected a message on '%s', queue is empty", topic);
	assert_string_equal(m->topic, topic);
	assert_int_equal(m->topic_len, strlen(topic));
	assert_int_equal(d, dropped);
	bus_msg_unref(m);
}

static void expect_empty(struct bus_sub *s, uint64_t trailing_drops)
{
	uint64_t d = 12345;
	struct bus_msg *m = bus_sub_pop(s, &d);
	if (m)
		fail_msg("expected an empty queue, got '%s'", m->topic);
	assert_int_equal(d, trailing_drops);
}

static void test_publish_refuses_bad_input(void **state)
{
	struct bus *bus = bus_new(16);
	struct bus_sub *s = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s, "#"), 0);
	struct frame *f = mkframe();
	assert_int_equal(bus_publish(bus, "", f, false), -EINVAL);
	assert_int_equal(bus_publish(bus, "a/+", f, false), -EINVAL);
	assert_int_equal(bus_publish(bus, "a/#", f, true), -EINVAL);
	assert_int_equal(bus_publish(bus, "a\x01", f, false), -EINVAL);
	/* an unsealed frame is not published */
	struct frame *open = frame_new("lab1", "ble0", LABGW_TECH_BLE, "rx.ble.adv");
	assert_int_equal(bus_publish(bus, "a", open, false), -EINVAL);
	frame_unref(open);
	assert_int_equal(bus_sub_pending(s), 0);
	struct bus_stats st;
	bus_get_stats(bus, &st);
	assert_int_equal(st.published, 0);
	assert_int_equal(st.retained, 0);
	assert_int_equal(f->refcnt, 1);
	frame_unref(f);
	bus_sub_free(s);
	bus_free(bus);
}

static void test_sub_add_errors(void **state)
{
	struct bus *bus = bus_new(16);
	assert_null(bus_sub_new(bus, 0, NULL, NULL));
	struct bus_sub *s = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s, ""), -EINVAL);
	assert_int_equal(bus_sub_add(s, "a/#/b"), -EINVAL);
	assert_int_equal(bus_sub_add(s, "a+"), -EINVAL);
	assert_int_equal(bus_sub_filter_count(s), 0);
	assert_int_equal(bus_sub_add(s, "a/+"), 0);
	assert_int_equal(bus_sub_add(s, "a/+"), -EEXIST);
	assert_int_equal(bus_sub_add(s, "a/#"), 0);
	assert_int_equal(bus_sub_filter_count(s), 2);
	assert_int_equal(bus_sub_remove(s, "a/b"), -ENOENT);
	assert_int_equal(bus_sub_remove(s, "a/+"), 0);
	assert_int_equal(bus_sub_remove(s, "a/+"), -ENOENT);
	assert_int_equal(bus_sub_filter_count(s), 1);
	bus_sub_free(s);
	bus_free(bus);
}

/* The trie must agree with topic_match on every case of its table. */
static void test_filters_match_like_topic_match(void **state)
{
	static const char *const filters[] = {
		"#",	 "+",  "a",	 "a/#",	   "a/+", "a/+/c", "+/+",   "/+",   "+/b", "a/b/#",
		"a/+/#", "/#", "$SYS/#", "$SYS/+", "+/x", "a/b/c", "+/+/+", "a//c", "a/",  "/",
	};
	static const char *const topics[] = {
		"a",  "a/b",	"a/b/c", "a//c", "a/",	    "/",    "/x",  "b/a",
		"ab", "$SYS/x", "$SYS",	 "x/x",	 "a/b/c/d", "a/$x", "c/b", "a/b/d",
	};
	struct bus *bus = bus_new(0);
	for (size_t i = 0; i < ARRAY_SIZE(filters); i++) {
		struct bus_sub *s = bus_sub_new(bus, 4, NULL, NULL);
		assert_int_equal(bus_sub_add(s, filters[i]), 0);
		for (size_t j = 0; j < ARRAY_SIZE(topics); j++) {
			int n = pub(bus, topics[j], false);
			bool want = topic_match(filters[i], topics[j]);
			if (n != (want ? 1 : 0))
				fail_msg("filter '%s', topic '%s': %d deliveries, expected %d",
					 filters[i], topics[j], n, want);
			uint64_t d;
			struct bus_msg *m = bus_sub_pop(s, &d);
			assert_int_equal(m != NULL, want);
			bus_msg_unref(m);
		}
		bus_sub_free(s);
	}
	bus_free(bus);
}

static void test_one_message_shared_by_subscribers(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *a = bus_sub_new(bus, 8, NULL, NULL);
	struct bus_sub *b = bus_sub_new(bus, 8, NULL, NULL);
	struct bus_sub *c = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(a, "labgw/v1/adm/#"), 0);
	assert_int_equal(bus_sub_add(b, "labgw/v1/adm/lab1/rx/+/+/+"), 0);
	assert_int_equal(bus_sub_add(c, "labgw/v1/sbx/#"), 0);
	struct frame *f = mkframe();
	assert_int_equal(bus_publish(bus, "labgw/v1/adm/lab1/rx/ble/ble0/aa", f, false), 2);
	uint64_t d;
	struct bus_msg *ma = bus_sub_pop(a, &d);
	struct bus_msg *mb = bus_sub_pop(b, &d);
	assert_non_null(ma);
	assert_ptr_equal(ma, mb); /* wrapped once, shared */
	assert_ptr_equal(ma->frame, f);
	assert_false(ma->retained);
	assert_int_equal(bus_sub_pending(c), 0);
	bus_msg_unref(ma);
	bus_msg_unref(mb);
	assert_int_equal(f->refcnt, 1); /* every reference given back */
	frame_unref(f);
	bus_sub_free(a);
	bus_sub_free(b);
	bus_sub_free(c);
	bus_free(bus);
}

static void test_overlapping_filters_deliver_once(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *s = bus_sub_new(bus, 8, NULL, NULL);
	static const char *const f[] = {"a/b", "a/+", "a/#", "#", "+/b", "+/+"};
	for (size_t i = 0; i < ARRAY_SIZE(f); i++)
		assert_int_equal(bus_sub_add(s, f[i]), 0);
	assert_int_equal(pub(bus, "a/b", false), 1);
	assert_int_equal(pub(bus, "a/c", false), 1); /* a/+, a/#, #, +/+ */
	assert_int_equal(pub(bus, "a/b", false), 1);
	assert_int_equal(bus_sub_pending(s), 3);
	expect_pop(s, "a/b", 0);
	expect_pop(s, "a/c", 0);
	expect_pop(s, "a/b", 0);
	expect_empty(s, 0);
	struct bus_stats st;
	bus_get_stats(bus, &st);
	assert_int_equal(st.published, 3);
	assert_int_equal(st.deliveries, 3);

	/* after removing some filters the others still deliver, once */
	assert_int_equal(bus_sub_remove(s, "a/b"), 0);
	assert_int_equal(bus_sub_remove(s, "#"), 0);
	assert_int_equal(pub(bus, "a/b", false), 1);
	expect_pop(s, "a/b", 0);
	expect_empty(s, 0);
	bus_sub_free(s);
	bus_free(bus);
}

static void test_fifo_order_across_wraparound(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *s = bus_sub_new(bus, 3, NULL, NULL);
	assert_int_equal(bus_sub_add(s, "t/+"), 0);
	char topic[16];
	int next_pop = 0;
	for (int i = 0; i < 20; i++) {
		snprintf(topic, sizeof(topic), "t/%d", i);
		assert_int_equal(pub(bus, topic, false), 1);
		if (i % 2) {
			snprintf(topic, sizeof(topic), "t/%d", next_pop++);
			expect_pop(s, topic, 0);
			snprintf(topic, sizeof(topic), "t/%d", next_pop++);
			expect_pop(s, topic, 0);
		}
	}
	expect_empty(s, 0);
	assert_int_equal(bus_sub_dropped_total(s), 0);
	bus_sub_free(s);
	bus_free(bus);
}

static void test_full_queue_drops_and_counts(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *slow = bus_sub_new(bus, 4, NULL, NULL);
	struct bus_sub *fast = bus_sub_new(bus, 64, NULL, NULL);
	assert_int_equal(bus_sub_add(slow, "x/#"), 0);
	assert_int_equal(bus_sub_add(fast, "x/#"), 0);
	char topic[16];
	for (int i = 0; i < 10; i++) {
		snprintf(topic, sizeof(topic), "x/%d", i);
		/* queued for both until the slow one is full, then only the fast one */
		assert_int_equal(pub(bus, topic, false), i < 4 ? 2 : 1);
	}
	assert_int_equal(bus_sub_pending(slow), 4);
	assert_int_equal(bus_sub_pending(fast), 10);
	assert_int_equal(bus_sub_dropped_total(slow), 6);
	assert_int_equal(bus_sub_dropped_total(fast), 0);
	struct bus_stats st;
	bus_get_stats(bus, &st);
	assert_int_equal(st.published, 10);
	assert_int_equal(st.deliveries, 14);
	assert_int_equal(st.dropped, 6);
	assert_int_equal(st.subscribers, 2);

	/* the slow one gets the oldest four, then the six drops as a trailing gap */
	for (int i = 0; i < 4; i++) {
		snprintf(topic, sizeof(topic), "x/%d", i);
		expect_pop(slow, topic, 0);
	}
	expect_empty(slow, 6);
	expect_empty(slow, 0); /* reported once */
	assert_int_equal(bus_sub_dropped_total(slow), 6);

	/* a message matched by two filters of a full subscriber is one drop */
	assert_int_equal(bus_sub_add(slow, "x/+"), 0);
	for (int i = 0; i < 4; i++)
		assert_int_equal(pub(bus, "x/y", false), 2);
	assert_int_equal(pub(bus, "x/y", false), 1);
	assert_int_equal(bus_sub_dropped_total(slow), 7);
	bus_get_stats(bus, &st);
	assert_int_equal(st.dropped, 7);
	bus_sub_free(slow);
	bus_sub_free(fast);
	bus_get_stats(bus, &st);
	assert_int_equal(st.subscribers, 0);
	bus_free(bus);
}

static void test_gap_reported_before_next_message(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *s = bus_sub_new(bus, 2, NULL, NULL);
	assert_int_equal(bus_sub_add(s, "g/+"), 0);
	assert_int_equal(pub(bus, "g/1", false), 1);
	assert_int_equal(pub(bus, "g/2", false), 1);
	assert_int_equal(pub(bus, "g/3", false), 0); /* dropped */
	assert_int_equal(pub(bus, "g/4", false), 0);
	assert_int_equal(pub(bus, "g/5", false), 0);
	expect_pop(s, "g/1", 0);
	assert_int_equal(pub(bus, "g/6", false), 1); /* room again */
	assert_int_equal(pub(bus, "g/7", false), 0);
	expect_pop(s, "g/2", 0);
	expect_pop(s, "g/6", 3); /* g/3..g/5 were lost between g/2 and g/6 */
	expect_empty(s, 1);	 /* g/7 after the last one */
	assert_int_equal(pub(bus, "g/8", false), 1);
	expect_pop(s, "g/8", 0); /* the trailing gap is not reported twice */
	expect_empty(s, 0);
	assert_int_equal(bus_sub_dropped_total(s), 4);
	bus_sub_free(s);
	bus_free(bus);
}

struct wake_rec {
	struct bus_sub *sub;
	int calls;
	size_t pending_at_call;
};

static void wake_cb(struct bus_sub *sub, void *user_data)
{
	struct wake_rec *w = user_data;
	assert_ptr_equal(sub, w->sub);
	w->calls++;
	w->pending_at_call = bus_sub_pending(sub);
}

static void test_wake_only_on_empty_to_nonempty(void **state)
{
	struct bus *bus = bus_new(4);
	struct wake_rec w = {0};
	struct bus_sub *s = bus_sub_new(bus, 3, wake_cb, &w);
	w.sub = s;
	assert_int_equal(bus_sub_add(s, "w/#"), 0);
	assert_int_equal(w.calls, 0);
	pub(bus, "w/1", false);
	assert_int_equal(w.calls, 1);
	assert_int_equal(w.pending_at_call, 1); /* called once the message is there */
	pub(bus, "w/2", false);
	pub(bus, "w/3", false);
	pub(bus, "w/4", false); /* dropped: no wake either */
	assert_int_equal(w.calls, 1);
	pub(bus, "other", false);
	assert_int_equal(w.calls, 1);
	expect_pop(s, "w/1", 0);
	pub(bus, "w/5", false); /* not empty before: no wake */
	assert_int_equal(w.calls, 1);
	expect_pop(s, "w/2", 0);
	expect_pop(s, "w/3", 0);
	expect_pop(s, "w/5", 1);
	expect_empty(s, 0);
	pub(bus, "w/6", false);
	assert_int_equal(w.calls, 2);
	expect_pop(s, "w/6", 0);
	/* a retained message queued by a new filter wakes as well */
	pub(bus, "r/1", true);
	assert_int_equal(w.calls, 2);
	assert_int_equal(bus_sub_add(s, "r/+"), 0);
	assert_int_equal(w.calls, 3);
	bus_sub_free(s);
	bus_free(bus);
}

static void test_retained_delivered_replaced_cleared(void **state)
{
	struct bus *bus = bus_new(16);
	struct bus_stats st;
	struct frame *f1 = mkframe();
	struct frame *f2 = mkframe();
	/* retained with nobody listening */
	assert_int_equal(bus_publish(bus, "labgw/v1/gw/lab1/state", f1, true), 0);
	assert_int_equal(pub(bus, "labgw/v1/gw/lab1/radio/ble0/state", true), 0);
	assert_int_equal(pub(bus, "labgw/v1/gw/lab1/noise", false), 0);
	bus_get_stats(bus, &st);
	assert_int_equal(st.retained, 2);
	assert_int_equal(f1->refcnt, 2); /* the bus holds it */

	/* a new subscription gets the matching retained messages at once */
	struct bus_sub *s = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s, "labgw/v1/gw/+/state"), 0);
	assert_int_equal(bus_sub_pending(s), 1);
	uint64_t d;
	struct bus_msg *m = bus_sub_pop(s, &d);
	assert_non_null(m);
	assert_true(m->retained);
	assert_ptr_equal(m->frame, f1);
	assert_string_equal(m->topic, "labgw/v1/gw/lab1/state");
	bus_msg_unref(m);

	/* a second retained publish replaces the first */
	assert_int_equal(bus_publish(bus, "labgw/v1/gw/lab1/state", f2, true), 1);
	expect_pop(s, "labgw/v1/gw/lab1/state", 0);
	bus_get_stats(bus, &st);
	assert_int_equal(st.retained, 2);
	assert_int_equal(f1->refcnt, 1); /* the old one was let go */
	struct bus_sub *s2 = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s2, "labgw/v1/gw/lab1/state"), 0);
	m = bus_sub_pop(s2, &d);
	assert_non_null(m);
	assert_ptr_equal(m->frame, f2);
	bus_msg_unref(m);

	/* a non-retained publish leaves the retained message alone */
	assert_int_equal(pub(bus, "labgw/v1/gw/lab1/state", false), 2);
	expect_pop(s, "labgw/v1/gw/lab1/state", 0);
	expect_pop(s2, "labgw/v1/gw/lab1/state", 0);
	struct bus_sub *s3 = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s3, "labgw/v1/gw/lab1/state"), 0);
	m = bus_sub_pop(s3, &d);
	assert_non_null(m);
	assert_ptr_equal(m->frame, f2);
	bus_msg_unref(m);

	/* '#' gets every retained topic; a second matching filter repeats them
	 * (as MQTT does for each new subscription) */
	struct bus_sub *all = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(all, "labgw/#"), 0);
	assert_int_equal(bus_sub_pending(all), 2);
	assert_int_equal(bus_sub_add(all, "labgw/v1/gw/lab1/radio/+/state"), 0);
	assert_int_equal(bus_sub_pending(all), 3);

	/* cleared: later subscriptions get nothing */
	bus_clear_retained(bus, "labgw/v1/gw/lab1/state");
	bus_clear_retained(bus, "labgw/v1/never/retained");
	bus_get_stats(bus, &st);
	assert_int_equal(st.retained, 1);
	struct bus_sub *s4 = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s4, "labgw/v1/gw/lab1/state"), 0);
	assert_int_equal(bus_sub_pending(s4), 0);

	bus_sub_free(s);
	bus_sub_free(s2);
	bus_sub_free(s3);
	bus_sub_free(all);
	bus_sub_free(s4);
	assert_int_equal(f1->refcnt, 1);
	assert_int_equal(f2->refcnt, 1); /* cleared and no longer queued anywhere */
	frame_unref(f1);
	frame_unref(f2);
	bus_free(bus); /* frees the retained message left (LSan checks) */
}

static void test_retained_store_is_bounded(void **state)
{
	struct bus *bus = bus_new(2);
	struct bus_stats st;
	pub(bus, "r/a", true);
	pub(bus, "r/b", true);
	pub(bus, "r/c", true);
	bus_get_stats(bus, &st);
	assert_int_equal(st.retained, 2);
	/* replacing a held topic still works at the limit */
	struct frame *f = mkframe();
	bus_publish(bus, "r/a", f, true);
	bus_get_stats(bus, &st);
	assert_int_equal(st.retained, 2);
	struct bus_sub *s = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s, "r/a"), 0);
	uint64_t d;
	struct bus_msg *m = bus_sub_pop(s, &d);
	assert_non_null(m);
	assert_ptr_equal(m->frame, f);
	bus_msg_unref(m);
	bus_sub_free(s);
	frame_unref(f);

	/* max_retained 0: nothing is kept */
	struct bus *none = bus_new(0);
	pub(none, "r/a", true);
	bus_get_stats(none, &st);
	assert_int_equal(st.retained, 0);
	bus_free(none);
	bus_free(bus);
}

static void test_unsubscribe_stops_delivery(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *s = bus_sub_new(bus, 8, NULL, NULL);
	assert_int_equal(bus_sub_add(s, "a/b"), 0);
	assert_int_equal(bus_sub_add(s, "a/b/c"), 0);
	assert_int_equal(bus_sub_add(s, "a"), 0);
	/* removing a filter whose trie node has children keeps the children */
	assert_int_equal(bus_sub_remove(s, "a/b"), 0);
	assert_int_equal(pub(bus, "a/b", false), 0);
	assert_int_equal(pub(bus, "a/b/c", false), 1);
	assert_int_equal(pub(bus, "a", false), 1);
	assert_int_equal(bus_sub_remove(s, "a/b/c"), 0);
	assert_int_equal(pub(bus, "a/b/c", false), 0);
	assert_int_equal(pub(bus, "a", false), 1);
	assert_int_equal(bus_sub_remove(s, "a"), 0);
	assert_int_equal(pub(bus, "a", false), 0);
	assert_int_equal(bus_sub_filter_count(s), 0);
	/* messages queued before the unsubscribe stay queued */
	expect_pop(s, "a/b/c", 0);
	expect_pop(s, "a", 0);
	expect_pop(s, "a", 0);
	expect_empty(s, 0);
	/* and a filter can be added again */
	assert_int_equal(bus_sub_add(s, "a/b"), 0);
	assert_int_equal(pub(bus, "a/b", false), 1);
	bus_sub_free(s);
	bus_free(bus);
}

static void test_sub_free_releases_queued_messages(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *a = bus_sub_new(bus, 4, NULL, NULL);
	struct bus_sub *b = bus_sub_new(bus, 4, NULL, NULL);
	assert_int_equal(bus_sub_add(a, "q/#"), 0);
	assert_int_equal(bus_sub_add(b, "q/#"), 0);
	struct frame *f = mkframe();
	for (int i = 0; i < 6; i++) /* wraps a's ring, with drops */
		assert_true(bus_publish(bus, "q/x", f, false) >= 0);
	uint64_t d;
	bus_msg_unref(bus_sub_pop(a, &d));
	bus_msg_unref(bus_sub_pop(a, &d));
	/* four messages live (queued at b), one more now queued at a only */
	assert_int_equal(f->refcnt, 1 + 4);
	assert_int_equal(bus_publish(bus, "q/x", f, false), 1);
	assert_int_equal(f->refcnt, 1 + 5);
	/* freeing a subscriber releases what only it held, and keeps the others */
	bus_sub_free(a);
	assert_int_equal(f->refcnt, 1 + 4);
	assert_int_equal(bus_publish(bus, "q/y", f, false), 0); /* b is full */
	bus_sub_free(b);
	assert_int_equal(f->refcnt, 1);
	frame_unref(f);
	struct bus_stats st;
	bus_get_stats(bus, &st);
	assert_int_equal(st.subscribers, 0);
	bus_free(bus);
}

/* The send queue grows on demand (an idle session holds no ring): messages
 * queued across several growths, with the ring wrapped in between, come
 * out in order, and the cap still bounds it. */
static void test_queue_grows_in_order_up_to_cap(void **state)
{
	struct bus *bus = bus_new(0);
	struct bus_sub *s = bus_sub_new(bus, 50, NULL, NULL);
	assert_int_equal(bus_sub_add(s, "q/#"), 0);
	char topic[32];
	int next_out = 0, next_in = 0;
	/* wrap the first ring, then grow it while wrapped */
	for (; next_in < 6; next_in++) {
		snprintf(topic, sizeof(topic), "q/%d", next_in);
		assert_int_equal(pub(bus, topic, false), 1);
	}
	for (; next_out < 4; next_out++) {
		snprintf(topic, sizeof(topic), "q/%d", next_out);
		expect_pop(s, topic, 0);
	}
	for (; next_in < 52; next_in++) {
		snprintf(topic, sizeof(topic), "q/%d", next_in);
		assert_int_equal(pub(bus, topic, false), 1);
	}
	assert_int_equal(bus_sub_pending(s), 48);
	/* two more fill it to the cap of 50; the next ones are dropped */
	assert_int_equal(pub(bus, "q/52", false), 1);
	assert_int_equal(pub(bus, "q/53", false), 1);
	assert_int_equal(pub(bus, "q/54", false), 0);
	assert_int_equal(pub(bus, "q/55", false), 0);
	assert_int_equal(bus_sub_pending(s), 50);
	for (; next_out < 54; next_out++) {
		snprintf(topic, sizeof(topic), "q/%d", next_out);
		expect_pop(s, topic, 0);
	}
	expect_empty(s, 2);
	bus_sub_free(s);
	bus_free(bus);
}

/* Many filters over shared trie paths, added and removed in a scrambled
 * order by several subscribers: afterwards nothing is delivered, and the
 * trie is empty again (the bus frees no nodes itself: LSan reports any
 * node that was not pruned). */
static void test_trie_pruned_after_churn(void **state)
{
	struct bus *bus = bus_new(0);
	enum { NSUB = 4, NF = 60 };
	struct bus_sub *subs[NSUB];
	char filters[NF][48];
	for (int i = 0; i < NF; i++) {
		static const char *const shapes[][2] = {{"labgw/v1/sbx/s", "/#"},
							{"labgw/v1/+/s", "/rx"},
							{"labgw/v1/adm/lab1/rx/+/r", "/+"},
							{"a/", ""},
							{"a/", "/#"},
							{"+/", ""},
							{"#", NULL}};
		const char *const *sh = shapes[i % 7];
		if (sh[1])
			snprintf(filters[i], sizeof(filters[i]), "%s%d%s", sh[0], i / 7, sh[1]);
		else
			snprintf(filters[i], sizeof(filters[i]), "%s", sh[0]);
	}
	for (int k = 0; k < NSUB; k++) {
		subs[k] = bus_sub_new(bus, 4, NULL, NULL);
		for (int i = 0; i < NF; i++) {
			int rc = bus_sub_add(subs[k], filters[(i * 7 + k) % NF]);
			assert_true(rc == 0 || rc == -EEXIST); /* "#" repeats */
		}
	}
	/* remove in another order, leaving every second subscriber's "#" */
	for (int k = 0; k < NSUB; k++)
		for (int i = NF - 1; i >= 0; i--) {
			const char *flt = filters[(i * 13 + 5) % NF];
			if (k % 2 && !strcmp(flt, "#"))
				continue;
			int rc = bus_sub_remove(subs[k], flt);
			assert_true(rc == 0 || rc == -ENOENT);
		}
	for (int k = 0; k < NSUB; k++)
		assert_int_equal(bus_sub_filter_count(subs[k]), k % 2 ? 1 : 0);
	assert_int_equal(pub(bus, "labgw/v1/sbx/s1/rx", false), NSUB / 2);
	assert_int_equal(pub(bus, "a/3", false), NSUB / 2);
	for (int k = 1; k < NSUB; k += 2)
		assert_int_equal(bus_sub_remove(subs[k], "#"), 0);
	assert_int_equal(pub(bus, "labgw/v1/sbx/s1/rx", false), 0);
	assert_int_equal(pub(bus, "a/3/x", false), 0);
	for (int k = 0; k < NSUB; k++)
		bus_sub_free(subs[k]);

	/* subscribers freed with their filters still held prune the trie too */
	struct bus_sub *s = bus_sub_new(bus, 1, NULL, NULL);
	for (int i = 0; i < NF; i++) {
		int rc = bus_sub_add(s, filters[i]);
		assert_true(rc == 0 || rc == -EEXIST);
	}
	bus_sub_free(s);
	struct bus_sub *probe = bus_sub_new(bus, 1, NULL, NULL);
	assert_int_equal(pub(bus, "a/1", false), 0);
	bus_sub_free(probe);
	struct bus_stats st;
	bus_get_stats(bus, &st);
	assert_int_equal(st.subscribers, 0);
	bus_free(bus);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_publish_refuses_bad_input),
		cmocka_unit_test(test_sub_add_errors),
		cmocka_unit_test(test_filters_match_like_topic_match),
		cmocka_unit_test(test_one_message_shared_by_subscribers),
		cmocka_unit_test(test_overlapping_filters_deliver_once),
		cmocka_unit_test(test_fifo_order_across_wraparound),
		cmocka_unit_test(test_full_queue_drops_and_counts),
		cmocka_unit_test(test_gap_reported_before_next_message),
		cmocka_unit_test(test_wake_only_on_empty_to_nonempty),
		cmocka_unit_test(test_retained_delivered_replaced_cleared),
		cmocka_unit_test(test_retained_store_is_bounded),
		cmocka_unit_test(test_unsubscribe_stops_delivery),
		cmocka_unit_test(test_sub_free_releases_queued_messages),
		cmocka_unit_test(test_queue_grows_in_order_up_to_cap),
		cmocka_unit_test(test_trie_pruned_after_churn),
	};
	return cmocka_run_group_tests_name("bus", tests, NULL, NULL);
}
