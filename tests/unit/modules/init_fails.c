// SPDX-License-Identifier: MIT
/*
 * A module that refuses its configuration: init reports the problem with
 * config_error (file and line) and returns -EINVAL. exit must not be called.
 */
#include <errno.h>

#include "labgw/plugin.h"
#include "probe.h"

PROBE_DEFINE;

static int init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct probe_radio *p = probe_slot(&labgw_test_probe, host->radio_name(r));
	if (p)
		p->inits++;
	const char *region = host->config_get(r, "region");
	host->config_error(r, "region", "'%s' is not a region this module knows",
			   region ? region : "(none)");
	*state = p; /* so that a wrong call of exit would be counted */
	return -EINVAL;
}

static int start(void *state)
{
	return 0;
}

static int command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	return -ENOTSUP;
}

static void stop(void *state)
{
}

static void exit_(void *state)
{
	struct probe_radio *p = state;
	if (p)
		p->exits++;
}

LABGW_PLUGIN_DEFINE(.name = "init_fails", .version = "1", .techs = LABGW_TECH_LORAWAN, .init = init,
		    .start = start, .command = command, .stop = stop, .exit = exit_);
