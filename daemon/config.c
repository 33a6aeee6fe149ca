#include "config.h"

#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#ifndef LABGW_PLUGIN_DIR
#define LABGW_PLUGIN_DIR "/usr/lib/labgw/plugins"
#endif
#ifndef LABGW_WEB_ROOT
#define LABGW_WEB_ROOT "/usr/share/labgw/web"
#endif

#define MAX_RADIOS     64
#define MAX_RADIO_KEYS 64
#define MAX_VALUE_LEN  1024

enum key_type {
	KT_IDENT,      /* char *: [a-z0-9_-]{1,32} */
	KT_STR,	       /* char * */
	KT_PATH,       /* char *: relative paths resolved against the file's folder */
	KT_INT,	       /* long long within [min,max] */
	KT_DURATION,   /* uint64_t ms within [min,max] */
	KT_SIZE,       /* uint64_t bytes within [min,max] */
	KT_LEVEL,      /* enum log_level */
	KT_LISTEN,     /* host:port → char *host at off, int port at off2 */
	KT_LISTEN_OPT, /* like KT_LISTEN, or empty: host "" and port -1 */
	KT_PATH_OPT,   /* like KT_PATH, or empty */
	KT_BROKER,     /* spawn | off | host:port */
	KT_QOS,	       /* long long 0 or 1 */
};

struct key_desc {
	const char *section;
	const char *key;
	enum key_type type;
	size_t off;
	size_t off2;
	const char *def;
	long long min;
	long long max;
	bool reload; /* a change takes effect on SIGHUP (else: at restart) */
	const char *doc;
};

#define OFF(f) offsetof(struct config, f)

static const struct key_desc keys[] = {
	{"gateway", "id", KT_IDENT, OFF(gw_id), 0, "lab1", 0, 0, false,
	 "Gateway id: the `{gw}` level of every topic and the prefix of frame ids."},
	{"gateway", "state_dir", KT_PATH, OFF(state_dir), 0, "/var/lib/labgw", 0, 0, false,
	 "Folder for the daemon's state (database, admin key, spawned broker's files); created "
	 "if missing."},
	{"gateway", "plugin_dir", KT_PATH, OFF(plugin_dir), 0, LABGW_PLUGIN_DIR, 0, 0, true,
	 "Folder of the radio modules: `[radio X] module = M` loads `{plugin_dir}/M.so`."},
	{"log", "level", KT_LEVEL, OFF(log_level), 0, "info", 0, 0, true,
	 "Lowest level logged: error, warning, notice, info or debug."},
	{"http", "listen", KT_LISTEN, OFF(http_host), OFF(http_port), "0.0.0.0:8080", 0, 0, false,
	 "Address and port of the HTTP/WebSocket server (`host:port`, `[v6]:port`; port 0 picks "
	 "a free one, logged at start)."},
	{"http", "web_root", KT_PATH, OFF(web_root), 0, LABGW_WEB_ROOT, 0, 0, false,
	 "Folder of the static web files served at `/`."},
	{"http", "javascript_root", KT_PATH_OPT, OFF(javascript_root), 0, "/usr/share/javascript",
	 0, 0, false,
	 "Folder served read-only at `/javascript/`: Debian's shared JavaScript libraries (the "
	 "web pages load `/javascript/chart.js/` from package `libjs-chart.js`). Empty: not "
	 "served."},
	{"http", "allowed_origins", KT_STR, OFF(allowed_origins), 0, "", 0, 0, true,
	 "Space-separated `Origin` values allowed on the WebSocket besides the gateway's own "
	 "origin; `*` allows any. Clients that send no Origin (not browsers) are allowed."},
	{"http", "max_message", KT_SIZE, OFF(ws_max_message), 0, "64k", 256, 16 << 20, true,
	 "Largest WebSocket message a client may send; a larger one closes the connection with "
	 "1009."},
	{"http", "max_subscriptions", KT_INT, OFF(ws_max_subscriptions), 0, "64", 1, 10000, true,
	 "Topic filters one WebSocket session may hold."},
	{"http", "send_queue", KT_INT, OFF(ws_send_queue), 0, "1024", 16, 1000000, true,
	 "Frames queued for one WebSocket session; beyond it frames are dropped and the client "
	 "gets a `gap` notice with the number dropped."},
	{"http", "idle_timeout", KT_DURATION, OFF(ws_idle_timeout_ms), 0, "60s", 2000, 86400000,
	 false,
	 "A WebSocket peer silent this long is pinged at half of it and dropped at the end."},
	{"http", "auth_timeout", KT_DURATION, OFF(ws_auth_timeout_ms), 0, "5s", 100, 600000, true,
	 "Time a WebSocket client has to authenticate before it is closed with 4401."},
	{"http", "max_sessions", KT_INT, OFF(http_max_sessions), 0, "10000", 1, 1000000, true,
	 "Concurrent WebSocket sessions; further upgrades are refused with HTTP 503."},
	{"http", "tls_cert", KT_PATH_OPT, OFF(http_tls_cert), 0, "", 0, 0, false,
	 "PEM certificate (chain) of the HTTP/WebSocket server: set, it speaks only HTTPS and "
	 "`wss://` (TLS 1.2 or later, forward-secret AEAD ciphers only) and sends "
	 "`Strict-Transport-Security`. Needs `tls_key`."},
	{"http", "tls_key", KT_PATH_OPT, OFF(http_tls_key), 0, "", 0, 0, false,
	 "PEM private key of `[http] tls_cert`."},
	{"mqtt", "broker", KT_BROKER, OFF(mqtt_mode), 0, "spawn", 0, 0, true,
	 "`spawn`: start and supervise a private mosquitto; `host:port`: use that broker; "
	 "`off`: no MQTT."},
	{"mqtt", "spawn_listen", KT_LISTEN, OFF(mqtt_spawn_host), OFF(mqtt_spawn_port),
	 "127.0.0.1:1883", 0, 0, true,
	 "Plain MQTT listener of a spawned broker (port 0 picks a free one, logged at start). "
	 "Clients log in with a key: username = key id, password = the whole key; anonymous "
	 "clients are refused. The bridge connects here too."},
	{"mqtt", "spawn_listen_tls", KT_LISTEN_OPT, OFF(mqtt_spawn_tls_host),
	 OFF(mqtt_spawn_tls_port), "", 0, 0, true,
	 "MQTT over TLS (1.2 or later) listener of a spawned broker, `host:port`; empty: none. "
	 "Needs `tls_cert` and `tls_key`."},
	{"mqtt", "spawn_listen_ws", KT_LISTEN_OPT, OFF(mqtt_spawn_ws_host), OFF(mqtt_spawn_ws_port),
	 "", 0, 0, true,
	 "MQTT over WebSocket listener of a spawned broker, for browsers, `host:port`; empty: "
	 "none. With `tls_cert` set it speaks TLS (`wss://`), else plain `ws://`."},
	{"mqtt", "tls_cert", KT_PATH_OPT, OFF(mqtt_tls_cert), 0, "", 0, 0, true,
	 "PEM certificate (chain) of a spawned broker's TLS and WebSocket listeners; it must be "
	 "readable by labgwd's user."},
	{"mqtt", "tls_key", KT_PATH_OPT, OFF(mqtt_tls_key), 0, "", 0, 0, true,
	 "PEM private key of `tls_cert`."},
	{"mqtt", "tls_ca", KT_PATH_OPT, OFF(mqtt_tls_ca), 0, "", 0, 0, true,
	 "With `broker = host:port`: PEM CA certificate(s) that signed the broker's certificate; "
	 "set, the bridge speaks TLS (1.2 or later) to the broker and checks its certificate "
	 "and name. Empty: plain MQTT."},
	{"mqtt", "dynsec_plugin", KT_PATH_OPT, OFF(mqtt_dynsec_plugin), 0, "", 0, 0, true,
	 "mosquitto's dynamic-security plugin, loaded by a spawned broker; empty: Debian's "
	 "`/usr/lib/{multiarch}/mosquitto_dynamic_security.so`."},
	{"mqtt", "mosquitto", KT_PATH, OFF(mosquitto_bin), 0, "/usr/sbin/mosquitto", 0, 0, true,
	 "The mosquitto binary started for `broker = spawn`."},
	{"mqtt", "username", KT_STR, OFF(mqtt_username), 0, "", 0, 0, true,
	 "With `broker = host:port`: the user the bridge logs in as. Keys are enforced on that "
	 "broker only if it runs the dynamic-security plugin and this user is its admin; "
	 "otherwise labgwd logs an error and bridges frames all the same. Empty: no login. (A "
	 "spawned broker's admin login is made by labgwd, in `{state_dir}/mosquitto/admin.pw`.)"},
	{"mqtt", "password_file", KT_PATH_OPT, OFF(mqtt_password_file), 0, "", 0, 0, true,
	 "With `broker = host:port`: file whose first line is the bridge's password (keep it "
	 "mode 0600); read when the bridge starts, never logged."},
	{"mqtt", "client_id", KT_STR, OFF(mqtt_client_id), 0, "", 0, 0, true,
	 "MQTT client id of the bridge; empty means `labgwd-{gw}`. On a plain socket frames go "
	 "on a second connection, `{client_id}-frames` (docs/architecture.md, \"The frames "
	 "link\"): a broker ACL that names client ids must admit both."},
	{"mqtt", "qos", KT_QOS, OFF(mqtt_qos), 0, "0", 0, 1, true,
	 "QoS of frames published to the broker (retained state is always QoS 1)."},
	{"mqtt", "keepalive", KT_DURATION, OFF(mqtt_keepalive_ms), 0, "30s", 5000, 3600000, true,
	 "MQTT keepalive interval of the bridge."},
	{"mqtt", "queue", KT_INT, OFF(mqtt_queue), 0, "10000", 16, 10000000, true,
	 "Frames waiting for the broker; beyond it (or while disconnected) frames are dropped "
	 "and counted in `labgw_mqtt_dropped_total`."},
	{"mqtt", "spool", KT_INT, OFF(mqtt_spool), 0, "100000", 0, 100000000, false,
	 "With `qos = 1`: sandbox frames go through an on-disk spool "
	 "(`{state_dir}/mqtt-spool.db`) and leave it when the broker acknowledged them, so a "
	 "broker that is down or restarting loses none. At most this many messages; when full "
	 "the oldest are dropped and counted in `labgw_mqtt_spool_dropped_total`. 0: no spool. "
	 "While the broker is away, frames outside the sandboxes' topics are dropped."},
	{"mqtt", "session_expiry", KT_DURATION, OFF(mqtt_session_expiry_ms), 0, "1h", 0,
	 4294967000LL, false,
	 "Persistent broker session of the bridge (clean start off, this session expiry "
	 "interval): the broker keeps the bridge's subscriptions and unacknowledged messages "
	 "across a reconnect. 0: a clean session at every connect."},
	{"privacy", "pseudonym_rotation", KT_DURATION, OFF(pseudonym_rotation_ms), 0, "24h", 60000,
	 30LL * 86400000, true,
	 "How often the secret behind the pseudonyms of unclaimed devices rotates: within one "
	 "period a sandbox sees a device under one pseudonym."},
	{"privacy", "observe_payload", KT_STR, OFF(observe_payload), 0, "", 0, 0, true,
	 "Space-separated techs whose raw payload observers (the `observe` right) see for "
	 "unclaimed devices; empty: none (payloads can hold addresses, names and numbers)."},
	{"history", "max_frames", KT_INT, OFF(history_max_frames), 0, "10000", 0, 10000000, true,
	 "Frames kept per sandbox for replay (`since`) and GET .../frames; 0 keeps none."},
	{"history", "max_age", KT_DURATION, OFF(history_max_age_ms), 0, "24h", 60000,
	 90LL * 86400000, true, "Frames older than this leave the history."},
};

struct parse_state {
	struct config *cfg;
	const char *path;
	char *dir; /* folder of the file, for relative paths */
	FILE *fp;
	int line;
	int errors;
	bool seen[ARRAY_SIZE(keys)];
	int seen_line[ARRAY_SIZE(keys)];
	struct {
		int line;
		char *name;
	} * hdrs; /* every section header, to place a syntax error */
	size_t nhdrs;
	struct config_radio *cur_radio;
	bool cur_bad_section;
	char cur_section[256];
};

static void perr(struct parse_state *ps, const char *section, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void perr(struct parse_state *ps, const char *section, const char *key, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	char where[300] = "";
	if (section && section[0])
		snprintf(where, sizeof(where), "[%s]%s", section, key ? " " : "");
	if (!where[0] && !key)
		log_error("%s:%d: %s", ps->path, ps->line, msg);
	else
		log_error("%s:%d: %s%s: %s", ps->path, ps->line, where, key ? key : "", msg);
	ps->errors++;
}

static char *resolve_path(const char *dir, const char *v)
{
	if (v[0] == '/' || !dir)
		return strdup(v);
	char *out;
	if (asprintf(&out, "%s/%s", dir, v) < 0)
		return NULL;
	return out;
}

static void set_str(char **slot, char *v)
{
	free(*slot);
	*slot = v;
}

/* Parse `v` for key `d` into cfg; returns NULL or a reason. */
static const char *apply_key(struct config *cfg, const struct key_desc *d, const char *v,
			     const char *dir)
{
	char *base = (char *)cfg;
	long long ll;
	uint64_t u;
	int r;
	switch (d->type) {
	case KT_IDENT:
		if (!ident_valid(v, 32))
			return "must be 1 to 32 of a-z 0-9 _ - (starting with a letter or digit)";
		set_str((char **)(base + d->off), strdup(v));
		return NULL;
	case KT_STR:
		set_str((char **)(base + d->off), strdup(v));
		return NULL;
	case KT_PATH:
		if (!*v)
			return "must not be empty";
		set_str((char **)(base + d->off), resolve_path(dir, v));
		return NULL;
	case KT_PATH_OPT:
		set_str((char **)(base + d->off), *v ? resolve_path(dir, v) : strdup(""));
		return NULL;
	case KT_INT:
	case KT_QOS:
		r = parse_int(v, d->min, d->max, &ll);
		if (r == -ERANGE)
			return d->type == KT_QOS ? "must be 0 or 1" : "out of range";
		if (r < 0)
			return "not an integer";
		*(long long *)(base + d->off) = ll;
		return NULL;
	case KT_DURATION:
		if (parse_duration_ms(v, &u) < 0)
			return "not a duration (like 250ms, 10s, 5m, 24h, 2d)";
		if (u < (uint64_t)d->min || u > (uint64_t)d->max)
			return "out of range";
		*(uint64_t *)(base + d->off) = u;
		return NULL;
	case KT_SIZE:
		if (parse_size(v, &u) < 0)
			return "not a size (like 512, 64k, 1M)";
		if (u < (uint64_t)d->min || u > (uint64_t)d->max)
			return "out of range";
		*(uint64_t *)(base + d->off) = u;
		return NULL;
	case KT_LEVEL:
		r = log_level_parse(v);
		if (r < 0)
			return "must be one of error, warning, notice, info, debug";
		*(enum log_level *)(base + d->off) = (enum log_level)r;
		return NULL;
	case KT_LISTEN_OPT:
		if (!*v) {
			set_str((char **)(base + d->off), strdup(""));
			*(int *)(base + d->off2) = -1;
			return NULL;
		}
		/* fall through */
	case KT_LISTEN: {
		char host[256];
		int port;
		if (parse_host_port(v, host, sizeof(host), &port) < 0)
			return "not host:port (port 0..65535; IPv6 in brackets)";
		set_str((char **)(base + d->off), strdup(host[0] ? host : "0.0.0.0"));
		*(int *)(base + d->off2) = port;
		return NULL;
	}
	case KT_BROKER: {
		char host[256];
		int port;
		if (!strcmp(v, "spawn")) {
			cfg->mqtt_mode = MQTT_MODE_SPAWN;
			return NULL;
		}
		if (!strcmp(v, "off")) {
			cfg->mqtt_mode = MQTT_MODE_OFF;
			return NULL;
		}
		if (parse_host_port(v, host, sizeof(host), &port) < 0 || !host[0] || port == 0)
			return "must be spawn, off, or host:port of a broker";
		cfg->mqtt_mode = MQTT_MODE_EXTERNAL;
		set_str(&cfg->mqtt_host, strdup(host));
		cfg->mqtt_port = port;
		return NULL;
	}
	}
	return "internal: unknown key type";
}

static int radio_section(struct parse_state *ps, const char *section)
{
	const char *name = section + 5;
	while (*name == ' ' || *name == '\t')
		name++;
	struct config *cfg = ps->cfg;
	if (!ident_valid(name, 32)) {
		perr(ps, section, NULL, "radio name must be 1 to 32 of a-z 0-9 _ -");
		return -1;
	}
	for (size_t i = 0; i < cfg->nradios; i++) {
		if (!strcmp(cfg->radios[i].name, name)) {
			perr(ps, section, NULL, "radio '%s' is defined twice (first on line %d)",
			     name, cfg->radios[i].line);
			return -1;
		}
	}
	if (cfg->nradios >= MAX_RADIOS) {
		perr(ps, section, NULL, "more than %d radios", MAX_RADIOS);
		return -1;
	}
	struct config_radio *nr = realloc(cfg->radios, (cfg->nradios + 1) * sizeof(*nr));
	if (!nr)
		return -1;
	cfg->radios = nr;
	ps->cur_radio = &nr[cfg->nradios++];
	memset(ps->cur_radio, 0, sizeof(*ps->cur_radio));
	ps->cur_radio->name = strdup(name);
	ps->cur_radio->line = ps->line;
	return 0;
}

static bool known_section(const char *s)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!strcmp(keys[i].section, s))
			return true;
	return false;
}

static void begin_section(struct parse_state *ps, const char *section)
{
	snprintf(ps->cur_section, sizeof(ps->cur_section), "%s", section);
	void *nh = realloc(ps->hdrs, (ps->nhdrs + 1) * sizeof(*ps->hdrs));
	if (nh) {
		ps->hdrs = nh;
		ps->hdrs[ps->nhdrs].line = ps->line;
		ps->hdrs[ps->nhdrs++].name = strdup(section);
	}
	ps->cur_radio = NULL;
	ps->cur_bad_section = false;
	if (!strncmp(section, "radio", 5) && (section[5] == ' ' || section[5] == '\t')) {
		if (radio_section(ps, section) < 0)
			ps->cur_bad_section = true;
	} else if (!known_section(section)) {
		perr(ps, section, NULL, "unknown section");
		ps->cur_bad_section = true;
	}
}

static char *reader(char *str, int num, void *stream)
{
	struct parse_state *ps = stream;
	if (!fgets(str, num, ps->fp))
		return NULL;
	ps->line++;
	size_t n = strlen(str);
	if (n == (size_t)num - 1 && str[n - 1] != '\n' && !feof(ps->fp)) {
		/* inih would split the line: skip the rest and report it */
		int c;
		while ((c = fgetc(ps->fp)) != EOF && c != '\n')
			;
		perr(ps, ps->cur_section, NULL, "line longer than the limit of %d characters",
		     num - 2);
		str[0] = '\0';
		return str;
	}
	/* Sections are tracked here, where every header is seen (inih calls
	 * the handler only for keys): empty and repeated sections count too. */
	const char *p = str;
	while (*p == ' ' || *p == '\t')
		p++;
	const char *rb = *p == '[' ? strchr(p, ']') : NULL;
	if (rb) {
		char name[256];
		const char *b = p + 1;
		while (*b == ' ' || *b == '\t')
			b++;
		size_t len = (size_t)(rb - b);
		while (len && (b[len - 1] == ' ' || b[len - 1] == '\t'))
			len--;
		snprintf(name, sizeof(name), "%.*s", (int)len, b);
		begin_section(ps, name);
	}
	return str;
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
	struct parse_state *ps = user;
	if (!section[0]) {
		perr(ps, "", name, "key outside of any [section]");
		return 1;
	}
	if (!name || ps->cur_bad_section)
		return 1;
	if (strlen(value) > MAX_VALUE_LEN) {
		perr(ps, section, name, "value longer than %d bytes", MAX_VALUE_LEN);
		return 1;
	}
	if (ps->cur_radio) {
		struct config_radio *r = ps->cur_radio;
		if (!strcmp(name, "module")) {
			if (r->module) {
				perr(ps, section, name, "given twice");
				return 1;
			}
			if (!ident_valid(value, 32)) {
				perr(ps, section, name, "must be a module name (a-z 0-9 _ -)");
				return 1;
			}
			r->module = strdup(value);
			return 1;
		}
		for (size_t i = 0; i < r->nkv; i++) {
			if (!strcmp(r->kv[i].key, name)) {
				perr(ps, section, name, "given twice (first on line %d)",
				     r->kv[i].line);
				return 1;
			}
		}
		if (r->nkv >= MAX_RADIO_KEYS) {
			perr(ps, section, name, "more than %d keys in one radio", MAX_RADIO_KEYS);
			return 1;
		}
		struct config_kv *nkv = realloc(r->kv, (r->nkv + 1) * sizeof(*nkv));
		if (!nkv)
			return 0;
		r->kv = nkv;
		nkv[r->nkv].key = strdup(name);
		nkv[r->nkv].value = strdup(value);
		nkv[r->nkv].line = ps->line;
		r->nkv++;
		return 1;
	}
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key_desc *d = &keys[i];
		if (strcmp(d->section, section) || strcmp(d->key, name))
			continue;
		if (ps->seen[i]) {
			perr(ps, section, name, "given twice (first on line %d)", ps->seen_line[i]);
			return 1;
		}
		ps->seen[i] = true;
		ps->seen_line[i] = ps->line;
		const char *why = apply_key(ps->cfg, d, value, ps->dir);
		if (why)
			perr(ps, section, name, "%s: '%s'", why, value);
		return 1;
	}
	perr(ps, section, name, "unknown key");
	return 1;
}

/* The line a key was given on (0: not given). */
static int key_line(const struct parse_state *ps, const char *section, const char *key)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!strcmp(keys[i].section, section) && !strcmp(keys[i].key, key))
			return ps->seen[i] ? ps->seen_line[i] : 0;
	return 0;
}

/* [mqtt] (and [http]) keys that only make sense together */
static void check_mqtt(struct parse_state *ps)
{
	const struct config *cfg = ps->cfg;
	bool hcert = cfg->http_tls_cert[0], hkey = cfg->http_tls_key[0];
	if (hcert != hkey) {
		ps->line = key_line(ps, "http", hcert ? "tls_cert" : "tls_key");
		perr(ps, "http", hcert ? "tls_cert" : "tls_key", "needs `%s` as well",
		     hcert ? "tls_key" : "tls_cert");
	}
	if (cfg->mqtt_tls_ca[0] && cfg->mqtt_mode != MQTT_MODE_EXTERNAL) {
		ps->line = key_line(ps, "mqtt", "tls_ca");
		perr(ps, "mqtt", "tls_ca", "only for `broker = host:port`");
	}
	bool cert = cfg->mqtt_tls_cert[0], key = cfg->mqtt_tls_key[0];
	if (cert != key) {
		ps->line = key_line(ps, "mqtt", cert ? "tls_cert" : "tls_key");
		perr(ps, "mqtt", cert ? "tls_cert" : "tls_key", "needs `%s` as well",
		     cert ? "tls_key" : "tls_cert");
	}
	if (cfg->mqtt_spawn_tls_port >= 0 && !cert) {
		ps->line = key_line(ps, "mqtt", "spawn_listen_tls");
		perr(ps, "mqtt", "spawn_listen_tls", "needs `tls_cert` and `tls_key`");
	}
	if (cfg->mqtt_password_file[0] && !cfg->mqtt_username[0]) {
		ps->line = key_line(ps, "mqtt", "password_file");
		perr(ps, "mqtt", "password_file", "needs `username` as well");
	}
}

static struct config *config_new_defaults(void)
{
	struct config *cfg = calloc(1, sizeof(*cfg));
	if (!cfg)
		return NULL;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const char *why = apply_key(cfg, &keys[i], keys[i].def, NULL);
		if (why) {
			log_error("internal: default of [%s] %s: %s", keys[i].section, keys[i].key,
				  why);
			config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

int config_load(const char *path, struct config **out)
{
	FILE *fp = fopen(path, "r");
	if (!fp) {
		int e = errno;
		log_error("%s: cannot read configuration: %s", path, strerror(e));
		return -e;
	}
	int rc = config_load_stream(fp, path, out);
	fclose(fp);
	return rc;
}

int config_load_stream(FILE *fp, const char *path, struct config **out)
{
	struct parse_state ps = {.path = path, .fp = fp};
	ps.cfg = config_new_defaults();
	if (!ps.cfg)
		return -ENOMEM;
	ps.cfg->path = strdup(path);
	char *slash = strrchr(path, '/');
	ps.dir = slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
	int r = ini_parse_stream(reader, &ps, handler, &ps);
	if (r > 0) {
		const char *sec = "";
		for (size_t i = 0; i < ps.nhdrs && ps.hdrs[i].line < r; i++)
			sec = ps.hdrs[i].name ? ps.hdrs[i].name : "";
		ps.line = r;
		perr(&ps, sec, NULL, "syntax error (expected [section] or key = value)");
	} else if (r < 0) {
		log_error("%s: cannot parse: out of memory", path);
		ps.errors++;
	}
	for (size_t i = 0; i < ps.cfg->nradios; i++) {
		struct config_radio *rad = &ps.cfg->radios[i];
		if (!rad->module) {
			ps.line = rad->line;
			char sec[64];
			snprintf(sec, sizeof(sec), "radio %s", rad->name);
			perr(&ps, sec, "module", "missing (which radio module to load)");
		}
	}
	if (!ps.errors)
		check_mqtt(&ps);
	free(ps.dir);
	for (size_t i = 0; i < ps.nhdrs; i++)
		free(ps.hdrs[i].name);
	free(ps.hdrs);
	if (ps.errors) {
		config_free(ps.cfg);
		return -EINVAL;
	}
	*out = ps.cfg;
	return 0;
}

void config_free(struct config *cfg)
{
	if (!cfg)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		switch (keys[i].type) {
		case KT_IDENT:
		case KT_STR:
		case KT_PATH:
		case KT_PATH_OPT:
		case KT_LISTEN:
		case KT_LISTEN_OPT:
			free(*(char **)((char *)cfg + keys[i].off));
			break;
		case KT_INT:
		case KT_DURATION:
		case KT_SIZE:
		case KT_LEVEL:
		case KT_BROKER:
		case KT_QOS:
			break;
		}
	}
	free(cfg->mqtt_host);
	for (size_t i = 0; i < cfg->nradios; i++) {
		struct config_radio *r = &cfg->radios[i];
		for (size_t k = 0; k < r->nkv; k++) {
			free(r->kv[k].key);
			free(r->kv[k].value);
		}
		free(r->kv);
		free(r->name);
		free(r->module);
	}
	free(cfg->radios);
	free(cfg->path);
	free(cfg);
}

const struct config_radio *config_find_radio(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nradios; i++)
		if (!strcmp(cfg->radios[i].name, name))
			return &cfg->radios[i];
	return NULL;
}

bool config_radio_equal(const struct config_radio *a, const struct config_radio *b)
{
	if (strcmp(a->module, b->module) || a->nkv != b->nkv)
		return false;
	for (size_t i = 0; i < a->nkv; i++) {
		size_t j;
		for (j = 0; j < b->nkv; j++)
			if (!strcmp(a->kv[i].key, b->kv[j].key))
				break;
		if (j == b->nkv || strcmp(a->kv[i].value, b->kv[j].value))
			return false;
	}
	return true;
}

void config_print_reference(FILE *out)
{
	const char *sec = "";
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		const struct key_desc *d = &keys[i];
		if (strcmp(sec, d->section)) {
			sec = d->section;
			fprintf(out, "%s### `[%s]`\n\n", i ? "\n" : "", sec);
			fprintf(out, "| key | default | on reload | meaning |\n| --- | --- | --- | "
				     "--- |\n");
		}
		fprintf(out, "| `%s` | `%s` | %s | %s |\n", d->key, d->def[0] ? d->def : "\"\"",
			d->reload ? "applied" : "restart", d->doc);
	}
}
