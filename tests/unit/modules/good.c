// SPDX-License-Identifier: MIT
/*
 * A well-behaved test module: publishes one BLE frame every `interval`,
 * reports a `channel` in its radio state, accepts "tx" commands and reports
 * them sent and acked from a timer (never from inside `command`), and
 * releases everything in stop.
 *
 * Keys: interval (duration, default 100ms), channel (int 0..39, default 37),
 * fail_tx (bool: report accepted transmits as failed), techs (a list of
 * tech names: narrow the module's ble+wlan for this instance).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "labgw/plugin.h"
#include "probe.h"

PROBE_DEFINE;

#define MAX_PENDING 8

struct good {
	const struct labgw_host *host;
	struct labgw_radio *r;
	struct probe_radio *p;
	uint64_t interval_ms;
	long long channel;
	bool fail_tx;
	uint64_t tick_timer;
	uint64_t tx_timer;
	char pending[MAX_PENDING][80];
	int npending;
	int64_t n;
};

static int tick(void *user_data)
{
	struct good *g = user_data;
	const struct labgw_host *h = g->host;
	g->p->ticks++;
	if (!g->p->running)
		g->p->ticks_after_stop++;
	struct labgw_frame *f = h->frame_new(g->r, LABGW_TECH_BLE, "rx.ble.adv");
	if (!f)
		return -ENOMEM;
	static const unsigned char adv[] = {0x02, 0x01, 0x06};
	h->frame_set_dev(f, "aa:bb:cc:dd:ee:ff");
	h->frame_set_payload(f, adv, sizeof(adv));
	h->frame_set_int(f, LABGW_SIG, "rssi", -60);
	h->frame_set_int(f, LABGW_DATA, "n", g->n++);
	h->frame_set_str(f, LABGW_DATA, "ibeacon.uuid", "f7826da6");
	g->p->publish_rc = h->publish(f);
	return 0;
}

static int init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct probe_radio *p = probe_slot(&labgw_test_probe, host->radio_name(r));
	if (!p)
		return -ENOSPC;
	p->inits++;
	struct good *g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->host = host;
	g->r = r;
	g->p = p;
	bool ok = host->config_get_duration_ms(r, "interval", 1, 3600000, 100, &g->interval_ms) ==
			  0 &&
		  host->config_get_int(r, "channel", 0, 39, 37, &g->channel) == 0 &&
		  host->config_get_bool(r, "fail_tx", false, &g->fail_tx) == 0;
	if (!ok) {
		free(g);
		return -EINVAL;
	}
	const char *techs = host->config_get(r, "techs");
	if (techs) {
		static const char *const names[] = {"ble", "wlan", "lorawan", "cellular"};
		uint32_t mask = 0;
		char buf[128];
		snprintf(buf, sizeof(buf), "%s", techs);
		for (char *save, *t = strtok_r(buf, " ,", &save); t;
		     t = strtok_r(NULL, " ,", &save))
			for (unsigned i = 0; i < 4; i++)
				if (!strcmp(t, names[i]))
					mask |= 1u << i;
		int rc = host->radio_set_techs(r, mask);
		if (rc < 0) {
			host->config_error(r, "techs", "'%s' is not served by this module", techs);
			free(g);
			return rc;
		}
	}
	p->host = host;
	p->radio = r;
	p->interval_ms = g->interval_ms;
	snprintf(p->gw, sizeof(p->gw), "%s", host->gateway_id(r));
	*state = g;
	return 0;
}

static int start(void *state)
{
	struct good *g = state;
	g->p->starts++;
	g->tick_timer = g->host->timer_add(g->r, g->interval_ms, g->interval_ms, tick, g);
	if (!g->tick_timer)
		return -EIO;
	struct labgw_frame *d = g->host->frame_new(g->r, LABGW_TECH_BLE, "state.radio");
	g->host->frame_set_int(d, LABGW_DATA, "channel", g->channel);
	g->host->state_update(d);
	g->p->running = true;
	return 0;
}

static int report_tx(void *user_data)
{
	struct good *g = user_data;
	for (int i = 0; i < g->npending; i++) {
		if (g->fail_tx) {
			g->host->tx_status(g->r, g->pending[i], LABGW_TX_FAILED, "no ack");
		} else {
			g->host->tx_status(g->r, g->pending[i], LABGW_TX_SENT, NULL);
			g->host->tx_status(g->r, g->pending[i], LABGW_TX_ACKED, NULL);
		}
	}
	g->npending = 0;
	g->tx_timer = 0; /* a one-shot timer is gone after its callback */
	return 0;
}

static int command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	struct good *g = state;
	g->p->commands++;
	if (strcmp(cmd->op, "tx")) {
		snprintf(errbuf, errlen, "unknown op %s", cmd->op);
		return -ENOTSUP;
	}
	if (strstr(cmd->body, "\"bad\"")) {
		snprintf(errbuf, errlen, "bad request");
		return -EINVAL;
	}
	if (g->npending == MAX_PENDING)
		return -EBUSY; /* no reason: the host supplies one */
	snprintf(g->pending[g->npending++], sizeof(g->pending[0]), "%s", cmd->id);
	if (!g->tx_timer)
		g->tx_timer = g->host->timer_add(g->r, 0, 0, report_tx, g);
	return 0;
}

static void stop(void *state)
{
	struct good *g = state;
	g->p->stops++;
	g->p->running = false;
	g->host->timer_cancel(g->r, g->tick_timer);
	if (g->tx_timer)
		g->host->timer_cancel(g->r, g->tx_timer);
	for (int i = 0; i < g->npending; i++)
		g->host->tx_status(g->r, g->pending[i], LABGW_TX_FAILED, "radio stopped");
	g->npending = 0;
	g->tick_timer = g->tx_timer = 0;
}

static void exit_(void *state)
{
	struct good *g = state;
	g->p->exits++;
	if (g->p->radio == g->r) /* not a newer instance's */
		g->p->radio = NULL;
	free(g);
}

LABGW_PLUGIN_DEFINE(.name = "good", .version = "1.0", .techs = LABGW_TECH_BLE | LABGW_TECH_WLAN,
		    .init = init, .start = start, .command = command, .stop = stop, .exit = exit_);
