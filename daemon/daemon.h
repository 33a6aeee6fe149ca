/* The daemon's one context, shared by its subsystems (DESIGN §3): owned by
 * main.c, which brings the modules up in dependency order and down in
 * reverse. */
#ifndef LABGW_DAEMON_H
#define LABGW_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "bus.h"
#include "config.h"
#include "plugin_host.h"

struct http_server;
struct mqtt_bridge;
struct broker;
struct dynsec;
struct policy;
struct store;
struct sandboxes;
struct history;
struct privacy;
struct kiosk;

struct labgwd {
	uv_loop_t *loop;
	struct config *cfg; /* the running configuration */
	const char *config_path;
	struct bus *bus;
	struct store *store;
	struct sandboxes *sandboxes;
	struct history *history;
	struct replay *replay; /* capture replays (replay.h) */
	struct privacy *privacy;
	struct kiosk *kiosk;
	struct policy *policy;
	struct plugin_host *host;
	struct broker *broker;
	struct mqtt_bridge *mqtt;
	struct dynsec *dynsec; /* keys on the broker; outlives bridge restarts */
	struct http_server *http;
	uint64_t seq; /* last frame sequence number handed out */
	uint64_t started_us;
	bool stopping;
	uint64_t reloads_ok, reloads_failed;
};

/* Next frame sequence number. Starts at the wall clock in µs at start-up, so
 * ids keep increasing across restarts while the average rate since the last
 * start stays below one million frames per second. */
uint64_t labgwd_next_seq(struct labgwd *d);

#endif
