// SPDX-License-Identifier: MIT
/*
 * A module whose callbacks fail. Its timer fires every `period` and returns
 * what the next letter of `pattern` says ('f': -EIO, 'o': 0), cycling; the
 * first `start_fails` starts return -EIO. The host must stop a radio after
 * fail_threshold failures in a row, show it as failed, and restart it with
 * a growing delay.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labgw/plugin.h"
#include "probe.h"

PROBE_DEFINE;

struct failing {
	const struct labgw_host *host;
	struct labgw_radio *r;
	struct probe_radio *p;
	char pattern[64];
	size_t pos;
	uint64_t period_ms;
	long long start_fails;
	uint64_t timer;
};

static int on_timer(void *user_data)
{
	struct failing *f = user_data;
	f->p->ticks++;
	if (!f->p->running)
		f->p->ticks_after_stop++;
	char c = f->pattern[f->pos++ % strlen(f->pattern)];
	return c == 'f' ? -EIO : 0;
}

static int init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct probe_radio *p = probe_slot(&labgw_test_probe, host->radio_name(r));
	if (!p)
		return -ENOSPC;
	struct failing *f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->host = host;
	f->r = r;
	f->p = p;
	const char *pat = host->config_get(r, "pattern");
	snprintf(f->pattern, sizeof(f->pattern), "%s", pat ? pat : "f");
	if (!f->pattern[0] || strspn(f->pattern, "fo") != strlen(f->pattern)) {
		host->config_error(r, "pattern", "only f and o");
		free(f);
		return -EINVAL;
	}
	if (host->config_get_duration_ms(r, "period", 1, 60000, 2, &f->period_ms) < 0 ||
	    host->config_get_int(r, "start_fails", 0, 100, 0, &f->start_fails) < 0) {
		free(f);
		return -EINVAL;
	}
	p->inits++;
	p->host = host;
	p->radio = r;
	*state = f;
	return 0;
}

static int start(void *state)
{
	struct failing *f = state;
	f->p->starts++;
	if (f->p->starts <= f->start_fails)
		return -EIO;
	f->pos = 0;
	f->timer = f->host->timer_add(f->r, f->period_ms, f->period_ms, on_timer, f);
	if (!f->timer)
		return -EIO;
	f->p->running = true;
	return 0;
}

static int command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	return -ENOTSUP;
}

static void stop(void *state)
{
	struct failing *f = state;
	f->p->stops++;
	f->p->running = false;
	f->host->timer_cancel(f->r, f->timer);
	f->timer = 0;
}

static void exit_(void *state)
{
	struct failing *f = state;
	f->p->exits++;
	if (f->p->radio == f->r) /* not a newer instance's */
		f->p->radio = NULL;
	free(f);
}

LABGW_PLUGIN_DEFINE(.name = "failing", .version = "1", .techs = LABGW_TECH_LORAWAN, .init = init,
		    .start = start, .command = command, .stop = stop, .exit = exit_);
