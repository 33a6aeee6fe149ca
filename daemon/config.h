/* The daemon's configuration: an INI file parsed with inih (DESIGN §10).
 * Every key is described once, in config.c's table, which also produces the
 * reference printed by `labgwd --help-config` (and kept in README.md). */
#ifndef LABGW_CONFIG_H
#define LABGW_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "log.h"

struct config_kv {
	char *key;
	char *value;
	int line;
};

/* One [radio NAME] section. Keys other than `module` are the module's. */
struct config_radio {
	char *name;
	char *module;
	int line;
	struct config_kv *kv;
	size_t nkv;
};

enum mqtt_mode {
	MQTT_MODE_OFF,
	MQTT_MODE_SPAWN,
	MQTT_MODE_EXTERNAL,
};

struct config {
	char *path; /* as given, for messages */

	/* [gateway] */
	char *gw_id;
	char *state_dir;
	char *plugin_dir;

	/* [log] */
	enum log_level log_level;

	/* [http] */
	char *http_host;
	int http_port;
	char *web_root;
	char *javascript_root; /* served at /javascript/; "" = not served */
	char *allowed_origins; /* space-separated; "*" = any */
	uint64_t ws_max_message;
	long long ws_max_subscriptions;
	long long ws_send_queue;
	uint64_t ws_idle_timeout_ms;
	uint64_t ws_auth_timeout_ms;
	long long http_max_sessions;
	char *http_tls_cert; /* "" = plain HTTP */
	char *http_tls_key;

	/* [mqtt] */
	enum mqtt_mode mqtt_mode;
	char *mqtt_host; /* external broker (MQTT_MODE_EXTERNAL) */
	int mqtt_port;
	char *mqtt_spawn_host; /* where a spawned broker listens */
	int mqtt_spawn_port;
	char *mqtt_spawn_tls_host; /* "" and port -1: no TLS listener */
	int mqtt_spawn_tls_port;
	char *mqtt_spawn_ws_host; /* "" and port -1: no WebSocket listener */
	int mqtt_spawn_ws_port;
	char *mqtt_tls_cert; /* "" = none */
	char *mqtt_tls_key;
	char *mqtt_tls_ca;	  /* external broker over TLS; "" = plain */
	char *mqtt_dynsec_plugin; /* "" = Debian's multiarch path */
	char *mqtt_username;	  /* external broker login; "" = none */
	char *mqtt_password_file; /* "" = none */
	char *mosquitto_bin;
	char *mqtt_client_id; /* "" = labgwd-{gw} */
	long long mqtt_qos;
	uint64_t mqtt_keepalive_ms;
	long long mqtt_queue;
	long long mqtt_spool;		 /* messages; 0 = no spool */
	uint64_t mqtt_session_expiry_ms; /* 0 = clean session */

	/* [privacy] */
	uint64_t pseudonym_rotation_ms;
	char *observe_payload; /* techs whose payload observers see */

	/* [history] */
	long long history_max_frames;
	uint64_t history_max_age_ms;

	struct config_radio *radios;
	size_t nradios;
};

/* Parse `path`. Every problem is logged as "FILE:LINE: [section] key: reason";
 * returns 0, -ENOENT/-EACCES (cannot read) or -EINVAL (bad content). */
int config_load(const char *path, struct config **out);
/* The same from an open stream; `path` names it in messages and anchors
 * relative paths. */
int config_load_stream(FILE *fp, const char *path, struct config **out);
void config_free(struct config *cfg);

const struct config_radio *config_find_radio(const struct config *cfg, const char *name);
/* true when both sections hold the same module and the same keys and values */
bool config_radio_equal(const struct config_radio *a, const struct config_radio *b);

/* Markdown reference of every key: section, key, default, meaning. */
void config_print_reference(FILE *out);

#endif
