// SPDX-License-Identifier: MIT
/*
 * A module whose hardware is missing: start registers a timer, then finds
 * no device and returns -ENODEV. The radio shows as absent, the host undoes
 * the registration (the timer never fires), retries later, and the daemon
 * runs on.
 */
#include <errno.h>
#include <stdlib.h>

#include "labgw/plugin.h"
#include "probe.h"

PROBE_DEFINE;

struct absent {
	const struct labgw_host *host;
	struct labgw_radio *r;
	struct probe_radio *p;
};

static int on_timer(void *user_data)
{
	struct absent *a = user_data;
	a->p->ticks++;
	a->p->ticks_after_stop++; /* this radio never runs */
	return 0;
}

static int init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct probe_radio *p = probe_slot(&labgw_test_probe, host->radio_name(r));
	if (!p)
		return -ENOSPC;
	struct absent *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->host = host;
	a->r = r;
	a->p = p;
	p->inits++;
	p->host = host;
	p->radio = r;
	*state = a;
	return 0;
}

static int start(void *state)
{
	struct absent *a = state;
	a->p->starts++;
	a->host->timer_add(a->r, 1, 1, on_timer, a);
	return -ENODEV;
}

static int command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	return 0;
}

static void stop(void *state)
{
	struct absent *a = state;
	a->p->stops++;
}

static void exit_(void *state)
{
	struct absent *a = state;
	a->p->exits++;
	if (a->p->radio == a->r) /* not a newer instance's */
		a->p->radio = NULL;
	free(a);
}

LABGW_PLUGIN_DEFINE(.name = "absent", .version = "1", .techs = LABGW_TECH_CELLULAR, .init = init,
		    .start = start, .command = command, .stop = stop, .exit = exit_);
