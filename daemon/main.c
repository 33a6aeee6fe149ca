/* labgwd: the Open Innovation Lab testbed gateway daemon. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker.h"
#include "daemon.h"
#include "dynsec.h"
#include "history.h"
#include "replay.h"
#include "http.h"
#include "kiosk.h"
#include "log.h"
#include "mqtt.h"
#include "notify.h"
#include "policy.h"
#include "privacy.h"
#include "router.h"
#include "sandbox.h"
#include "store.h"
#include "util.h"
#include "ws.h"

#define DEFAULT_CONFIG "/etc/labgw/labgw.conf"
/* SIGTERM to exit: the daemon gives up waiting for its handles after this */
#define SHUTDOWN_DEADLINE_MS 1800

static struct labgwd D;
static struct notify *notifier;
static uv_signal_t sig_term, sig_int, sig_hup;
static uv_timer_t deadline;
/* objects retired by a reload, freed once the loop has closed their handles */
struct retired {
	struct mqtt_bridge *mqtt;
	struct broker *broker;
	struct retired *next;
};
static struct retired *retired;

/* ---- plugin host → router --------------------------------------------- */

static void host_publish(void *ud, struct frame *f)
{
	router_frame(ud, f);
}

static void host_radio_changed(void *ud, struct labgw_radio *r, bool removed)
{
	router_radio_changed(ud, r, removed);
}

static void host_tx_status(void *ud, struct labgw_radio *r, const char *cmd_id,
			   enum labgw_tx_status st, const char *reason)
{
	struct labgwd *d = ud;
	policy_tx_status(d->policy, r, cmd_id, st, reason);
}

static void host_tx_result(void *ud, struct labgw_radio *r, const char *cmd_id,
			   enum labgw_tx_status st, const char *reason, const json_t *result)
{
	struct labgwd *d = ud;
	policy_tx_result(d->policy, r, cmd_id, st, reason, result);
}

static uint64_t host_next_seq(void *ud)
{
	return labgwd_next_seq(ud);
}

static void host_prepare(void *ud, struct frame *f)
{
	router_prepare(ud, f);
}

static bool host_session_keys(void *ud, const char *dev_addr, uint8_t nwkskey[16],
			      uint8_t appskey[16])
{
	struct labgwd *d = ud;
	return d->sandboxes && sandboxes_claim_keys(d->sandboxes, dev_addr, nwkskey, appskey);
}

static bool host_device_claimed(void *ud, uint32_t techs, const char *dev_id)
{
	struct labgwd *d = ud;
	static const uint32_t all[] = {LABGW_TECH_BLE, LABGW_TECH_WLAN, LABGW_TECH_LORAWAN,
				       LABGW_TECH_CELLULAR};
	if (!d->sandboxes)
		return false;
	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if ((techs & all[i]) && sandboxes_claim_owner(d->sandboxes, all[i], dev_id))
			return true;
	return false;
}

static uint64_t host_ble_irks(void *ud,
			      void (*cb)(void *cb_ud, const char *identity, const uint8_t irk[16]),
			      void *cb_ud)
{
	struct labgwd *d = ud;
	return d->sandboxes ? sandboxes_ble_irks(d->sandboxes, cb, cb_ud) : 0;
}

static void host_audit(void *ud, struct labgw_radio *r, const char *action, const char *target,
		       const char *result, int64_t size, const char *detail)
{
	struct labgwd *d = ud;
	char t[96];
	snprintf(t, sizeof(t), "%s%s%s", radio_name(r), target && *target ? ":" : "",
		 target ? target : "");
	if (d->sandboxes)
		sandboxes_audit(d->sandboxes, NULL, NULL, action, t, result, size, detail);
}

static const struct plugin_host_ops host_ops = {
	.publish = host_publish,
	.radio_changed = host_radio_changed,
	.tx_status = host_tx_status,
	.tx_result = host_tx_result,
	.next_seq = host_next_seq,
	.prepare = host_prepare,
	.session_keys = host_session_keys,
	.audit = host_audit,
	.device_claimed = host_device_claimed,
	.ble_irks = host_ble_irks,
};

/* ---- the module table: started in order, stopped in reverse ------------ */

static void on_signal(uv_signal_t *s, int signum);

static int services_start(struct labgwd *d)
{
	if (mkdir(d->cfg->state_dir, 0750) < 0 && errno != EEXIST) {
		log_error("cannot create state_dir %s: %s", d->cfg->state_dir, strerror(errno));
		return -errno;
	}
	notifier = notify_new(d->loop);
	if (!notifier)
		return -ENOMEM;
	uv_signal_init(d->loop, &sig_term);
	uv_signal_init(d->loop, &sig_int);
	uv_signal_init(d->loop, &sig_hup);
	uv_signal_start(&sig_term, on_signal, SIGTERM);
	uv_signal_start(&sig_int, on_signal, SIGINT);
	uv_signal_start(&sig_hup, on_signal, SIGHUP);
	notify_start(notifier);
	return 0;
}

static void services_stop(struct labgwd *d)
{
	uv_close((uv_handle_t *)&sig_term, NULL);
	uv_close((uv_handle_t *)&sig_int, NULL);
	uv_close((uv_handle_t *)&sig_hup, NULL);
	notify_free(notifier);
	notifier = NULL;
}

static int bus_start(struct labgwd *d)
{
	d->bus = bus_new(4096);
	return d->bus ? 0 : -ENOMEM;
}

static void bus_stop(struct labgwd *d)
{
	/* freed after the loop: sessions still hold subscriptions until then */
}

static int store_start(struct labgwd *d)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/labgw.db", d->cfg->state_dir);
	int rc = store_open(path, &d->store);
	if (rc < 0)
		log_error("cannot open the database %s: %s", path, strerror(-rc));
	return rc;
}

static void store_stop(struct labgwd *d)
{
	/* closed after the loop: the history writer may still be at work */
}

static void key_gone(void *ud, const char *key_id)
{
	struct labgwd *d = ud;
	if (d->http)
		ws_key_gone(d->http, key_id);
}

/* keys, rights, claims, leases, quotas; pseudonyms; history; kiosk */
static int sandboxes_up(struct labgwd *d)
{
	d->sandboxes = sandboxes_new(d, d->store);
	d->privacy = d->sandboxes ? privacy_new(d, d->store) : NULL;
	d->history = d->privacy ? history_new(d, d->store) : NULL;
	d->kiosk = d->history ? kiosk_new(d) : NULL;
	d->replay = d->kiosk ? replay_new(d) : NULL;
	if (!d->replay)
		return -ENOMEM;
	/* the broker's logins follow the keys (dynsec.h) */
	d->dynsec = dynsec_new(d);
	if (!d->dynsec)
		return -ENOMEM;
	sandboxes_on_key_new(d->sandboxes, dynsec_key_new, d->dynsec);
	sandboxes_on_key_gone(d->sandboxes, dynsec_key_gone, d->dynsec);
	int rc = sandboxes_start(d->sandboxes);
	if (rc < 0)
		return rc;
	sandboxes_on_key_gone(d->sandboxes, key_gone, d);
	history_start(d->history);
	kiosk_start(d->kiosk);
	return 0;
}

static void sandboxes_down(struct labgwd *d)
{
	kiosk_stop(d->kiosk);
	replay_stop(d->replay);
	history_stop(d->history);
	sandboxes_stop(d->sandboxes);
	dynsec_shutdown(d->dynsec);
}

static int policy_start(struct labgwd *d)
{
	d->policy = policy_new(d);
	return d->policy ? 0 : -ENOMEM;
}

static void policy_stop(struct labgwd *d)
{
}

static int host_start(struct labgwd *d)
{
	d->host = plugin_host_new(d->loop, &host_ops, d);
	if (!d->host)
		return -ENOMEM;
	if (plugin_host_apply(d->host, d->cfg) < 0) {
		log_error("%s: radio configuration refused (see above)", d->cfg->path);
		return -EINVAL;
	}
	return 0;
}

static void host_stop(struct labgwd *d)
{
	plugin_host_shutdown(d->host);
}

/* broker (if spawned) and bridge, from the [mqtt] settings of d->cfg */
static int mqtt_up(struct labgwd *d)
{
	const struct config *cfg = d->cfg;
	switch (cfg->mqtt_mode) {
	case MQTT_MODE_OFF:
		log_info("mqtt: off");
		return 0;
	case MQTT_MODE_SPAWN:
		d->broker = broker_new(d);
		if (!d->broker)
			return -EINVAL;
		d->mqtt = mqtt_bridge_new(d, broker_host(d->broker), broker_port(d->broker));
		break;
	case MQTT_MODE_EXTERNAL:
		d->mqtt = mqtt_bridge_new(d, cfg->mqtt_host, cfg->mqtt_port);
		break;
	}
	if (!d->mqtt)
		return -ENOMEM;
	if (d->broker)
		log_notice("MQTT broker: mqtt://%s:%d/", broker_host(d->broker),
			   broker_port(d->broker));
	return 0;
}

static void mqtt_down(struct labgwd *d)
{
	mqtt_bridge_shutdown(d->mqtt);
	broker_shutdown(d->broker);
}

static int http_start(struct labgwd *d)
{
	d->http = http_server_new(d);
	if (!d->http)
		return -EADDRINUSE;
	const char *h = d->cfg->http_host;
	bool any = !strcmp(h, "0.0.0.0") || !strcmp(h, "::");
	bool v6 = strchr(h, ':') != NULL;
	log_notice("listening on %s://%s%s%s:%d/ (WebSocket API at /api/v1/ws)",
		   d->cfg->http_tls_cert[0] ? "https" : "http", v6 && !any ? "[" : "",
		   any ? "127.0.0.1" : h, v6 && !any ? "]" : "", http_server_port(d->http));
	return 0;
}

static void http_stop(struct labgwd *d)
{
	http_server_shutdown(d->http);
}

struct module_def {
	const char *name;
	int (*start)(struct labgwd *d);
	void (*stop)(struct labgwd *d);
};

/* log and config come first, in main() */
static const struct module_def modules[] = {
	{"loop services", services_start, services_stop},
	{"store", store_start, store_stop},
	{"bus", bus_start, bus_stop},
	{"sandboxes", sandboxes_up, sandboxes_down},
	{"policy", policy_start, policy_stop},
	{"plugin host", host_start, host_stop},
	{"mqtt", mqtt_up, mqtt_down},
	{"http", http_start, http_stop},
};
static size_t modules_up;

static void deadline_cb(uv_timer_t *t)
{
	log_error("shutdown did not finish within %d ms; exiting anyway", SHUTDOWN_DEADLINE_MS);
	_exit(1);
}

static void stop_all(struct labgwd *d)
{
	if (d->stopping)
		return;
	d->stopping = true;
	if (notifier)
		notify_stopping(notifier);
	log_notice("stopping");
	uv_timer_init(d->loop, &deadline);
	uv_timer_start(&deadline, deadline_cb, SHUTDOWN_DEADLINE_MS, 0);
	uv_unref((uv_handle_t *)&deadline);
	if (d->bus && modules_up == ARRAY_SIZE(modules))
		router_gateway_state(d, "offline");
	while (modules_up > 0) {
		const struct module_def *m = &modules[--modules_up];
		log_debug("stopping module %s", m->name);
		m->stop(d);
	}
}

/* ---- reload --------------------------------------------------------------- */

/* Keys that only take effect at restart keep their running value. */
static void keep_restart_keys(struct config *old, struct config *nu)
{
#define KEEP_STR(f, name)                                                                          \
	if (strcmp(old->f, nu->f)) {                                                               \
		log_warning("reload: %s changed; it takes effect at the next restart", name);      \
		char *t = nu->f;                                                                   \
		nu->f = old->f;                                                                    \
		old->f = t;                                                                        \
	}
#define KEEP_NUM(f, name)                                                                          \
	if (old->f != nu->f) {                                                                     \
		log_warning("reload: %s changed; it takes effect at the next restart", name);      \
		nu->f = old->f;                                                                    \
	}
	KEEP_STR(gw_id, "[gateway] id");
	KEEP_STR(state_dir, "[gateway] state_dir");
	KEEP_STR(http_host, "[http] listen");
	KEEP_NUM(http_port, "[http] listen");
	KEEP_STR(web_root, "[http] web_root");
	KEEP_STR(javascript_root, "[http] javascript_root");
	KEEP_NUM(ws_idle_timeout_ms, "[http] idle_timeout");
#undef KEEP_STR
#undef KEEP_NUM
}

static bool mqtt_changed(const struct config *a, const struct config *b)
{
	return a->mqtt_mode != b->mqtt_mode || a->mqtt_port != b->mqtt_port ||
	       (a->mqtt_host && b->mqtt_host && strcmp(a->mqtt_host, b->mqtt_host)) ||
	       strcmp(a->mqtt_spawn_host, b->mqtt_spawn_host) ||
	       a->mqtt_spawn_port != b->mqtt_spawn_port ||
	       strcmp(a->mosquitto_bin, b->mosquitto_bin) ||
	       strcmp(a->mqtt_client_id, b->mqtt_client_id) ||
	       strcmp(a->mqtt_spawn_tls_host, b->mqtt_spawn_tls_host) ||
	       a->mqtt_spawn_tls_port != b->mqtt_spawn_tls_port ||
	       strcmp(a->mqtt_spawn_ws_host, b->mqtt_spawn_ws_host) ||
	       a->mqtt_spawn_ws_port != b->mqtt_spawn_ws_port ||
	       strcmp(a->mqtt_tls_cert, b->mqtt_tls_cert) ||
	       strcmp(a->mqtt_tls_key, b->mqtt_tls_key) || strcmp(a->mqtt_tls_ca, b->mqtt_tls_ca) ||
	       strcmp(a->mqtt_dynsec_plugin, b->mqtt_dynsec_plugin) ||
	       strcmp(a->mqtt_username, b->mqtt_username) ||
	       strcmp(a->mqtt_password_file, b->mqtt_password_file) ||
	       a->mqtt_keepalive_ms != b->mqtt_keepalive_ms || a->mqtt_queue != b->mqtt_queue;
}

static void reload(struct labgwd *d)
{
	log_notice("reloading %s", d->config_path);
	notify_reloading(notifier);
	struct config *nu = NULL;
	if (config_load(d->config_path, &nu) < 0) {
		log_error("reload failed: keeping the running configuration");
		d->reloads_failed++;
		notify_ready(notifier, "running (last reload failed)");
		return;
	}
	keep_restart_keys(d->cfg, nu);
	if (plugin_host_apply(d->host, nu) < 0) {
		log_error("reload failed: radio configuration refused; keeping the running "
			  "configuration");
		config_free(nu);
		d->reloads_failed++;
		notify_ready(notifier, "running (last reload failed)");
		return;
	}
	struct config *old = d->cfg;
	d->cfg = nu;
	log_set_level(nu->log_level);
	if (mqtt_changed(old, nu)) {
		log_notice("reload: [mqtt] changed; restarting the bridge");
		struct retired *r = calloc(1, sizeof(*r));
		if (r) {
			mqtt_down(d);
			r->mqtt = d->mqtt;
			r->broker = d->broker;
			r->next = retired;
			retired = r;
			d->mqtt = NULL;
			d->broker = NULL;
			if (mqtt_up(d) < 0)
				log_error("reload: MQTT could not be set up; running without it");
		}
	}
	config_free(old);
	d->reloads_ok++;
	log_notice("configuration reloaded");
	notify_ready(notifier, "running");
}

static void on_signal(uv_signal_t *s, int signum)
{
	struct labgwd *d = &D;
	if (signum == SIGHUP) {
		if (!d->stopping)
			reload(d);
		return;
	}
	if (d->stopping) {
		log_notice("signal %d while stopping: ignored", signum);
		return;
	}
	log_notice("signal %s received", signum == SIGTERM ? "SIGTERM" : "SIGINT");
	stop_all(d);
}

/* ---- main ----------------------------------------------------------------- */

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: labgwd [-c FILE]\n"
		"       labgwd --help | --help-config | --version\n"
		"\n"
		"The Open Innovation Lab testbed gateway daemon: radio modules, WebSocket and\n"
		"MQTT API, web console.\n"
		"\n"
		"  -c, --config FILE  configuration file (default " DEFAULT_CONFIG ")\n"
		"      --help-config  print the reference of every configuration key\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop, SIGHUP reloads the configuration (a bad file\n"
		"leaves the running one in place).\n");
}

static void free_all(struct labgwd *d)
{
	while (retired) {
		struct retired *r = retired;
		retired = r->next;
		mqtt_bridge_free(r->mqtt);
		broker_free(r->broker);
		free(r);
	}
	http_server_free(d->http);
	mqtt_bridge_free(d->mqtt);
	broker_free(d->broker);
	dynsec_free(d->dynsec);
	plugin_host_free(d->host);
	policy_free(d->policy);
	kiosk_free(d->kiosk);
	replay_free(d->replay);
	history_free(d->history);
	privacy_free(d->privacy);
	sandboxes_free(d->sandboxes);
	bus_free(d->bus);
	store_close(d->store);
	config_free(d->cfg);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"config", required_argument, NULL, 'c'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{"help-config", no_argument, NULL, 'C'},
		{NULL, 0, NULL, 0},
	};
	const char *path = DEFAULT_CONFIG;
	int c;
	/* Frames are built as many small objects, a loop turn's worth at a
	 * time (a radio's burst), and freed together once delivered. glibc's
	 * fastbins keep those chunks unmerged until a larger request sweeps
	 * them up (malloc_consolidate), which made malloc a third of the CPU
	 * at 30,000 frames/s bridged to MQTT; without fastbins the same run
	 * took 42-45 % of a core instead of 50-55 % (perf, bench/fanout.py P6). */
	mallopt(M_MXFAST, 0);
	while ((c = getopt_long(argc, argv, "c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("labgwd %s (plugin ABI %d.%d)\n", LABGW_VERSION,
			       LABGW_PLUGIN_ABI_MAJOR, LABGW_PLUGIN_ABI_MINOR);
			return 0;
		case 'C':
			config_print_reference(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "labgwd: unexpected argument '%s'\n", argv[optind]);
		usage(stderr);
		return 2;
	}

	signal(SIGPIPE, SIG_IGN);
	log_init();
	struct labgwd *d = &D;
	d->config_path = path;
	if (config_load(path, &d->cfg) < 0) {
		log_error("configuration refused; not starting");
		return 1;
	}
	log_set_level(d->cfg->log_level);
	log_notice("labgwd %s starting (gateway %s, config %s)", LABGW_VERSION, d->cfg->gw_id,
		   path);
	d->started_us = time_now_us();
	d->seq = d->started_us;
	d->loop = uv_default_loop();
	mosquitto_lib_init();

	int rc = 0;
	for (; modules_up < ARRAY_SIZE(modules); modules_up++) {
		const struct module_def *m = &modules[modules_up];
		log_debug("starting module %s", m->name);
		rc = m->start(d);
		if (rc < 0) {
			log_error("start-up failed in %s: %s", m->name, strerror(-rc));
			break;
		}
	}
	if (rc == 0) {
		router_gateway_state(d, "online");
		notify_ready(notifier, "running");
		log_notice("ready");
	} else {
		stop_all(d);
	}
	uv_run(d->loop, UV_RUN_DEFAULT);
	http_server_finish(d->http);
	if (d->stopping)
		uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(d->loop, UV_RUN_DEFAULT);

	free_all(d);
	mosquitto_lib_cleanup();
	int lc = uv_loop_close(d->loop);
	if (lc != 0) {
		log_error("internal: handles left open at exit");
		return 1;
	}
	if (rc == 0)
		log_notice("stopped");
	return rc == 0 ? 0 : 1;
}
