/* SPDX-License-Identifier: MIT */
#include "busloop.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* messages handled per turn: the loop serves others too */
#define PUMP_MAX 256

/* What is left after PUMP_MAX waits for the next turn: sd-bus then reports
 * a zero timeout (busloop_arm) or the hold timer comes back. True when
 * something was processed. */
static bool pump(struct busloop *b)
{
	bool did = false;
	int rc = 0;

	for (unsigned n = 0; n < PUMP_MAX && b->bus && (rc = sd_bus_process(b->bus, NULL)) > 0; n++)
		did = true;
	if (b->bus && rc < 0) {
		busloop_lost(b, rc);
		return did;
	}
	if (b->bus)
		busloop_arm(b);
	if (did && b->processed)
		b->processed(b->ud);
	return did;
}

static int hold_end_cb(void *ud)
{
	struct busloop *b = ud;

	b->hold_timer = 0;
	/* still holding while reading: when there was something the bus is
	 * busy, hold again */
	if (pump(b) && b->bus) {
		b->hold_timer = b->h->timer_add(b->r, b->hold_ms, 0, hold_end_cb, b);
		if (b->hold_timer)
			return 0;
	}
	b->holding = false;
	if (b->bus)
		busloop_arm(b);
	return 0;
}

static void hold(struct busloop *b)
{
	if (!b->bus || b->holding || !b->hold_ms)
		return;
	b->hold_timer = b->h->timer_add(b->r, b->hold_ms, 0, hold_end_cb, b);
	if (!b->hold_timer)
		return;
	b->holding = true;
	busloop_arm(b);
}

static int fd_cb(void *ud, int fd, unsigned events)
{
	struct busloop *b = ud;

	/* a message after a quiet spell is read at once: only a busy bus waits */
	if (pump(b))
		hold(b);
	return 0;
}

static int timer_cb(void *ud)
{
	struct busloop *b = ud;

	b->timer = 0;
	b->timer_at = 0;
	pump(b);
	return 0;
}

void busloop_arm(struct busloop *b)
{
	int ev = sd_bus_get_events(b->bus);
	unsigned want = 0;
	uint64_t usec = UINT64_MAX;

	if (ev < 0) {
		busloop_lost(b, ev);
		return;
	}
	if ((ev & POLLIN) && !b->holding)
		want |= LABGW_FD_READ;
	if (ev & POLLOUT)
		want |= LABGW_FD_WRITE;
	/* the same events nearly every time: a modify is a syscall or two */
	if (want != b->watch_events && b->h->watch_fd_modify(b->r, b->watch, want) == 0)
		b->watch_events = want;
	if (sd_bus_get_timeout(b->bus, &usec) < 0)
		usec = UINT64_MAX;
	if (usec == b->timer_at)
		return;
	if (b->timer)
		b->h->timer_cancel(b->r, b->timer);
	b->timer = 0;
	b->timer_at = usec;
	if (usec != UINT64_MAX) {
		struct timespec ts;
		uint64_t now, delay_ms = 0;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
		if (usec > now)
			delay_ms = (usec - now + 999) / 1000;
		b->timer = b->h->timer_add(b->r, delay_ms, 0, timer_cb, b);
	}
}

void busloop_close(struct busloop *b)
{
	if (b->watch)
		b->h->watch_fd_cancel(b->r, b->watch);
	if (b->timer)
		b->h->timer_cancel(b->r, b->timer);
	if (b->hold_timer)
		b->h->timer_cancel(b->r, b->hold_timer);
	b->watch = b->timer = b->hold_timer = 0;
	b->timer_at = 0;
	b->holding = false;
	if (b->bus && b->closing)
		b->closing(b->ud);
	if (b->bus)
		sd_bus_flush_close_unref(b->bus);
	b->bus = NULL;
	b->owner[0] = 0;
}

bool busloop_from_service(const struct busloop *b, sd_bus_message *m)
{
	const char *sender = sd_bus_message_get_sender(m);

	return b->owner[0] && sender && !strcmp(sender, b->owner);
}

static void appeared(struct busloop *b, const char *owner, bool restart)
{
	snprintf(b->owner, sizeof(b->owner), "%s", owner);
	if (b->appeared)
		b->appeared(b->ud, b->owner, restart);
}

static int on_name_owner_changed(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct busloop *b = ud;
	const char *name, *old, *new_owner;
	const char *sender = sd_bus_message_get_sender(m);

	if (!sender || strcmp(sender, "org.freedesktop.DBus"))
		return 0;
	if (sd_bus_message_read(m, "sss", &name, &old, &new_owner) < 0 || strcmp(name, b->service))
		return 0;
	if (b->owner[0]) {
		b->owner[0] = 0;
		if (b->gone)
			b->gone(b->ud);
	}
	if (new_owner[0])
		appeared(b, new_owner, true);
	return 0;
}

static int owner_known(sd_bus_message *m, void *ud, sd_bus_error *ret)
{
	struct busloop *b = ud;
	const char *owner;

	if (sd_bus_message_is_method_error(m, NULL)) {
		if (b->absent)
			b->absent(b->ud);
		return 0;
	}
	/* NameOwnerChanged may have told already */
	if (sd_bus_message_read(m, "s", &owner) >= 0 && !b->owner[0])
		appeared(b, owner, false);
	return 0;
}

static int reconnect_cb(void *ud)
{
	struct busloop *b = ud;

	b->reconnect = 0;
	if (b->bus)
		return 0;
	if (b->reopen(b->ud) < 0 && !b->bus)
		b->reconnect = b->h->timer_add(b->r, b->reconnect_ms, 0, reconnect_cb, b);
	return 0;
}

void busloop_lost(struct busloop *b, int err)
{
	b->h->log(b->r, LABGW_LOG_WARNING, "lost the system bus (%s): reconnecting",
		  strerror(-err));
	busloop_close(b);
	if (b->lost)
		b->lost(b->ud);
	if (!b->reconnect)
		b->reconnect = b->h->timer_add(b->r, b->reconnect_ms, 0, reconnect_cb, b);
}

void busloop_stop(struct busloop *b)
{
	if (b->reconnect)
		b->h->timer_cancel(b->r, b->reconnect);
	b->reconnect = 0;
	busloop_close(b);
}

int busloop_open(struct busloop *b, const char *description, const char *const *matches,
		 const sd_bus_message_handler_t *handlers, size_t n)
{
	char rule[256];
	int rc = sd_bus_open_system(&b->bus);

	if (rc < 0) {
		b->bus = NULL;
		return rc;
	}
	sd_bus_set_description(b->bus, description);
	b->watch = b->h->watch_fd(b->r, sd_bus_get_fd(b->bus), LABGW_FD_READ, fd_cb, b);
	b->watch_events = LABGW_FD_READ;
	if (!b->watch) {
		sd_bus_flush_close_unref(b->bus);
		b->bus = NULL;
		return -ENOMEM;
	}
	snprintf(rule, sizeof(rule),
		 "type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',"
		 "interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='%s'",
		 b->service);
	rc = sd_bus_add_match_async(b->bus, NULL, rule, on_name_owner_changed, NULL, b);
	if (rc < 0)
		goto fail;
	for (size_t i = 0; i < n; i++) {
		rc = sd_bus_add_match_async(b->bus, NULL, matches[i], handlers[i], NULL, b->ud);
		if (rc < 0)
			goto fail;
	}
	rc = sd_bus_call_method_async(b->bus, NULL, "org.freedesktop.DBus", "/org/freedesktop/DBus",
				      "org.freedesktop.DBus", "GetNameOwner", owner_known, b, "s",
				      b->service);
	if (rc < 0)
		goto fail;
	busloop_arm(b);
	return 0;
fail:
	busloop_close(b);
	return rc;
}
