/* The frame bus: topic-addressed, MQTT-style filters, one bounded queue per
 * subscriber. A published frame is wrapped once in a reference-counted
 * bus_msg shared by every subscriber that matches. When a subscriber's queue
 * is full, new messages for it are dropped and counted; the count reaches the
 * subscriber in order, before the next message it does get (a "gap"). */
#ifndef LABGW_BUS_H
#define LABGW_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "frame.h"

struct bus_msg {
	int refcnt;
	uint64_t serial; /* per bus, increasing */
	bool retained;
	struct frame *frame;
	char *topic;
	size_t topic_len;
	/* Encoding for WebSocket clients, made on first use by the front-end
	 * and shared by all of them (freed with the message). */
	unsigned char *ws_buf;
	size_t ws_len;
};

struct bus;
struct bus_sub;

/* Called when the subscriber's queue goes from empty to non-empty. */
typedef void (*bus_wake_fn)(struct bus_sub *sub, void *user_data);

struct bus_stats {
	uint64_t published;  /* messages published */
	uint64_t deliveries; /* messages queued to subscribers */
	uint64_t dropped;    /* messages dropped at full queues */
	uint64_t retained;   /* retained topics held */
	uint64_t subscribers;
};

/* max_retained bounds the retained store: beyond it new retained topics are
 * not kept (existing ones are still replaced). */
struct bus *bus_new(size_t max_retained);
/* All subscribers must have been freed. */
void bus_free(struct bus *bus);

struct bus_msg *bus_msg_ref(struct bus_msg *m);
void bus_msg_unref(struct bus_msg *m);

/* Publish a sealed frame to `topic` (a valid topic name). With `retain`, the
 * message replaces the topic's retained one and is given to later matching
 * subscriptions. Returns the number of subscribers it was queued for, or a
 * negative errno (-EINVAL bad topic, -ENOMEM). The frame is borrowed. */
int bus_publish(struct bus *bus, const char *topic, struct frame *f, bool retain);
/* The same, returning the message (a reference the caller unrefs) so that it
 * can be kept (history); NULL on failure. */
struct bus_msg *bus_publish_msg(struct bus *bus, const char *topic, struct frame *f, bool retain);
/* Forget the retained message of `topic`, if any. */
void bus_clear_retained(struct bus *bus, const char *topic);
void bus_get_stats(const struct bus *bus, struct bus_stats *st);

struct bus_sub *bus_sub_new(struct bus *bus, size_t queue_cap, bus_wake_fn wake, void *user_data);
/* Removes the subscriber's filters and releases its queue. */
void bus_sub_free(struct bus_sub *sub);
/* Add a filter; retained messages matching it are queued at once.
 * -EINVAL bad filter, -EEXIST already held, -ENOMEM. */
int bus_sub_add(struct bus_sub *sub, const char *filter);
/* -ENOENT if the subscriber does not hold `filter` */
int bus_sub_remove(struct bus_sub *sub, const char *filter);
size_t bus_sub_filter_count(const struct bus_sub *sub);
/* true if the subscriber holds exactly this filter */
bool bus_sub_has(const struct bus_sub *sub, const char *filter);
/* Next message (a reference the caller unrefs), with in *dropped the number
 * of messages dropped just before it. NULL when the queue is empty; then
 * *dropped may still be > 0 (drops after the last queued message). */
struct bus_msg *bus_sub_pop(struct bus_sub *sub, uint64_t *dropped);
size_t bus_sub_pending(const struct bus_sub *sub);
uint64_t bus_sub_dropped_total(const struct bus_sub *sub);

#endif
