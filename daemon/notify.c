#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "log.h"

struct notify {
	uv_timer_t timer;
	uint64_t watchdog_usec;
};

struct notify *notify_new(uv_loop_t *loop)
{
	struct notify *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	uv_timer_init(loop, &n->timer);
	return n;
}

static void ping_cb(uv_timer_t *t)
{
	sd_notify(0, "WATCHDOG=1");
}

void notify_start(struct notify *n)
{
	uint64_t usec = 0;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
		n->watchdog_usec = usec;
		uint64_t ms = usec / 2000;
		if (ms == 0)
			ms = 1;
		log_info("systemd watchdog: %llu ms, pinging every %llu ms",
			 (unsigned long long)(usec / 1000), (unsigned long long)ms);
		uv_timer_start(&n->timer, ping_cb, ms, ms);
	}
}

void notify_ready(struct notify *n, const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_reloading(struct notify *n)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
		   (unsigned long long)ts.tv_sec * 1000000ull +
			   (unsigned long long)ts.tv_nsec / 1000);
}

void notify_stopping(struct notify *n)
{
	sd_notify(0, "STOPPING=1");
}

static void close_cb(uv_handle_t *h)
{
	free(h); /* the timer is the first member */
}

void notify_free(struct notify *n)
{
	if (n)
		uv_close((uv_handle_t *)&n->timer, close_cb);
}
