// SPDX-License-Identifier: MIT
/*
 * A module built for a plugin ABI this daemon does not speak (major 99):
 * the host must refuse it with a warning naming it, and never call init.
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
	return 0;
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
}

__attribute__((visibility("default"))) const struct labgw_plugin labgw_plugin = {
	.size = sizeof(struct labgw_plugin),
	.abi_major = 99,
	.abi_minor = 3,
	.name = "wrong_abi",
	.version = "99.3",
	.techs = LABGW_TECH_BLE,
	.init = init,
	.start = start,
	.command = command,
	.stop = stop,
	.exit = exit_,
};
