// SPDX-License-Identifier: MIT
/*
 * config_load on real files (DESIGN §10): the defaults, every key type, the
 * [radio NAME] sections, relative paths, and that every bad file is refused
 * with a message naming the file, the line and the key.
 */
#include <errno.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "util.h"

/* ---- log capture -------------------------------------------------------- */

#define CAP_MAX 64

static struct {
	int n;
	enum log_level level[CAP_MAX];
	char *msg[CAP_MAX];
} cap;

static void cap_hook(enum log_level level, const char *msg, void *user_data)
{
	if (cap.n < CAP_MAX) {
		cap.level[cap.n] = level;
		cap.msg[cap.n] = strdup(msg);
		cap.n++;
	}
}

static void cap_reset(void)
{
	for (int i = 0; i < cap.n; i++)
		free(cap.msg[i]);
	cap.n = 0;
}

static void cap_dump(void)
{
	for (int i = 0; i < cap.n; i++)
		print_message("  logged: %s\n", cap.msg[i]);
}

/* The first error message that starts with `prefix` and contains `part`. */
static const char *cap_error(const char *prefix, const char *part)
{
	for (int i = 0; i < cap.n; i++)
		if (cap.level[i] == LOG_LVL_ERROR && !strncmp(cap.msg[i], prefix, strlen(prefix)) &&
		    strstr(cap.msg[i], part))
			return cap.msg[i];
	return NULL;
}

static int cap_errors(void)
{
	int n = 0;
	for (int i = 0; i < cap.n; i++)
		n += cap.level[i] == LOG_LVL_ERROR;
	return n;
}

/* ---- files -------------------------------------------------------------- */

static char tmpdir[256];
static char cfgpath[512];

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/labgw-test-config-XXXXXX");
	if (!mkdtemp(tmpdir))
		return -1;
	snprintf(cfgpath, sizeof(cfgpath), "%s/labgw.conf", tmpdir);
	log_set_hook(cap_hook, NULL);
	return 0;
}

static int group_teardown(void **state)
{
	log_set_hook(NULL, NULL);
	cap_reset();
	nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void write_file(const char *path, const char *text)
{
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fputs(text, fp) >= 0, 1);
	assert_int_equal(fclose(fp), 0);
}

/* Write `text` as the configuration file and load it. */
static int load(const char *text, struct config **out)
{
	write_file(cfgpath, text);
	cap_reset();
	*out = NULL;
	return config_load(cfgpath, out);
}

static struct config *load_ok(const char *text)
{
	struct config *cfg;
	int rc = load(text, &cfg);
	if (rc != 0) {
		cap_dump();
		fail_msg("configuration refused (%d):\n%s", rc, text);
	}
	assert_non_null(cfg);
	assert_int_equal(cap_errors(), 0);
	return cfg;
}

/* ---- defaults and values ------------------------------------------------ */

static void check_defaults(const struct config *c)
{
	assert_string_equal(c->gw_id, "lab1");
	assert_string_equal(c->state_dir, "/var/lib/labgw");
	assert_string_equal(c->plugin_dir, LABGW_PLUGIN_DIR);
	assert_int_equal(c->log_level, LOG_LVL_INFO);
	assert_string_equal(c->http_host, "0.0.0.0");
	assert_int_equal(c->http_port, 8080);
	assert_string_equal(c->web_root, LABGW_WEB_ROOT);
	assert_string_equal(c->javascript_root, "/usr/share/javascript");
	assert_string_equal(c->allowed_origins, "");
	assert_int_equal(c->ws_max_message, 65536);
	assert_int_equal(c->ws_max_subscriptions, 64);
	assert_int_equal(c->ws_send_queue, 1024);
	assert_int_equal(c->ws_idle_timeout_ms, 60000);
	assert_int_equal(c->ws_auth_timeout_ms, 5000);
	assert_int_equal(c->http_max_sessions, 10000);
	assert_string_equal(c->http_tls_cert, "");
	assert_string_equal(c->http_tls_key, "");
	assert_int_equal(c->mqtt_mode, MQTT_MODE_SPAWN);
	assert_null(c->mqtt_host);
	assert_string_equal(c->mqtt_spawn_host, "127.0.0.1");
	assert_int_equal(c->mqtt_spawn_port, 1883);
	assert_string_equal(c->mosquitto_bin, "/usr/sbin/mosquitto");
	assert_string_equal(c->mqtt_client_id, "");
	assert_int_equal(c->mqtt_qos, 0);
	assert_int_equal(c->mqtt_keepalive_ms, 30000);
	assert_int_equal(c->mqtt_queue, 10000);
	assert_int_equal(c->mqtt_spool, 100000);
	assert_int_equal(c->mqtt_session_expiry_ms, 3600000);
	assert_string_equal(c->mqtt_spawn_tls_host, "");
	assert_int_equal(c->mqtt_spawn_tls_port, -1);
	assert_string_equal(c->mqtt_spawn_ws_host, "");
	assert_int_equal(c->mqtt_spawn_ws_port, -1);
	assert_string_equal(c->mqtt_tls_cert, "");
	assert_string_equal(c->mqtt_tls_key, "");
	assert_string_equal(c->mqtt_tls_ca, "");
	assert_string_equal(c->mqtt_dynsec_plugin, "");
	assert_string_equal(c->mqtt_username, "");
	assert_string_equal(c->mqtt_password_file, "");
	assert_int_equal(c->pseudonym_rotation_ms, 86400000);
	assert_int_equal(c->nradios, 0);
}

static void test_empty_file_gives_defaults(void **state)
{
	struct config *c = load_ok("");
	check_defaults(c);
	assert_string_equal(c->path, cfgpath);
	config_free(c);

	/* comments, blank lines and empty known sections change nothing */
	c = load_ok("; a comment\n# another\n\n[gateway]\n[http]\n\n[mqtt]\n[privacy]\n[log]\n");
	check_defaults(c);
	config_free(c);
}

static void test_every_key_type(void **state)
{
	struct config *c = load_ok("[gateway]\n"
				   "id = lab-2_x\n"		    /* ident */
				   "state_dir = /srv/labgw/state\n" /* path */
				   "plugin_dir = /opt/labgw/plugins\n"
				   "[log]\n"
				   "level = debug\n" /* level */
				   "[http]\n"
				   "listen = [::1]:0\n" /* listen */
				   "web_root = /srv/web\n"
				   "allowed_origins = https://a.example *\n" /* string */
				   "max_message = 1M\n"			     /* size */
				   "max_subscriptions = 10000\n"	     /* int */
				   "send_queue = 16\n"
				   "idle_timeout = 2s\n" /* duration */
				   "auth_timeout = 250ms\n"
				   "max_sessions = 1\n"
				   "[mqtt]\n"
				   "broker = broker.example.org:8883\n" /* broker */
				   "spawn_listen = :1884\n"
				   "mosquitto = /usr/local/sbin/mosquitto\n"
				   "client_id = gw-a\n"
				   "qos = 1\n" /* qos */
				   "keepalive = 1h\n"
				   "queue = 10000000\n"
				   "[privacy]\n"
				   "pseudonym_rotation = 30d\n");
	assert_string_equal(c->gw_id, "lab-2_x");
	assert_string_equal(c->state_dir, "/srv/labgw/state");
	assert_string_equal(c->plugin_dir, "/opt/labgw/plugins");
	assert_int_equal(c->log_level, LOG_LVL_DEBUG);
	assert_string_equal(c->http_host, "::1");
	assert_int_equal(c->http_port, 0);
	assert_string_equal(c->web_root, "/srv/web");
	assert_string_equal(c->allowed_origins, "https://a.example *");
	assert_int_equal(c->ws_max_message, 1048576);
	assert_int_equal(c->ws_max_subscriptions, 10000);
	assert_int_equal(c->ws_send_queue, 16);
	assert_int_equal(c->ws_idle_timeout_ms, 2000);
	assert_int_equal(c->ws_auth_timeout_ms, 250);
	assert_int_equal(c->http_max_sessions, 1);
	assert_int_equal(c->mqtt_mode, MQTT_MODE_EXTERNAL);
	assert_string_equal(c->mqtt_host, "broker.example.org");
	assert_int_equal(c->mqtt_port, 8883);
	assert_string_equal(c->mqtt_spawn_host, "0.0.0.0"); /* ":port" listens everywhere */
	assert_int_equal(c->mqtt_spawn_port, 1884);
	assert_string_equal(c->mosquitto_bin, "/usr/local/sbin/mosquitto");
	assert_string_equal(c->mqtt_client_id, "gw-a");
	assert_int_equal(c->mqtt_qos, 1);
	assert_int_equal(c->mqtt_keepalive_ms, 3600000);
	assert_int_equal(c->mqtt_queue, 10000000);
	assert_int_equal(c->pseudonym_rotation_ms, 30ull * 86400000);
	config_free(c);

	c = load_ok("[mqtt]\nbroker = off\n[log]\nlevel = WARNING\n");
	assert_int_equal(c->mqtt_mode, MQTT_MODE_OFF);
	assert_int_equal(c->log_level, LOG_LVL_WARNING);
	config_free(c);
	c = load_ok("[mqtt]\nbroker = [::1]:1883\n");
	assert_int_equal(c->mqtt_mode, MQTT_MODE_EXTERNAL);
	assert_string_equal(c->mqtt_host, "::1");
	assert_int_equal(c->mqtt_port, 1883);
	config_free(c);
	/* values keep inner spaces; inline comments are not part of them */
	c = load_ok("[gateway]\nid = lab3 ; the third\n[http]\nallowed_origins =   a  b  \n");
	assert_string_equal(c->gw_id, "lab3");
	assert_string_equal(c->allowed_origins, "a  b");
	config_free(c);
}

static void test_design_example_loads(void **state)
{
	struct config *c = load_ok("[gateway]\n"
				   "id = lab1\n"
				   "state_dir = /var/lib/labgw\n"
				   "\n"
				   "[http]\n"
				   "listen = 0.0.0.0:8080\n"
				   "web_root = /usr/share/labgw/web\n"
				   "\n"
				   "[mqtt]\n"
				   "broker = spawn\n"
				   "\n"
				   "[privacy]\n"
				   "pseudonym_rotation = 24h\n"
				   "\n"
				   "[radio lora0]\n"
				   "module = lorawan\n"
				   "listen = 0.0.0.0:1700\n"
				   "region = EU868\n");
	assert_int_equal(c->nradios, 1);
	const struct config_radio *r = config_find_radio(c, "lora0");
	assert_non_null(r);
	assert_ptr_equal(r, &c->radios[0]);
	assert_string_equal(r->name, "lora0");
	assert_string_equal(r->module, "lorawan");
	assert_int_equal(r->line, 15);
	/* module's own keys, in file order, with their lines */
	assert_int_equal(r->nkv, 2);
	assert_string_equal(r->kv[0].key, "listen");
	assert_string_equal(r->kv[0].value, "0.0.0.0:1700");
	assert_int_equal(r->kv[0].line, 17);
	assert_string_equal(r->kv[1].key, "region");
	assert_string_equal(r->kv[1].value, "EU868");
	assert_int_equal(r->kv[1].line, 18);
	assert_null(config_find_radio(c, "lora1"));
	assert_int_equal(c->mqtt_mode, MQTT_MODE_SPAWN);
	config_free(c);
}

static void test_several_radios(void **state)
{
	struct config *c = load_ok("[radio sim0]\nmodule = sim\nrate = 10\n"
				   "[gateway]\nid = lab1\n"
				   "[radio ble0]\nmodule = ble\n"
				   "[radio lora-1_b]\nmodule = lorawan\nregion = EU868\n");
	assert_int_equal(c->nradios, 3);
	assert_string_equal(c->radios[0].name, "sim0");
	assert_string_equal(c->radios[1].name, "ble0");
	assert_int_equal(c->radios[1].nkv, 0);
	assert_string_equal(c->radios[2].name, "lora-1_b");
	assert_string_equal(c->radios[2].module, "lorawan");
	/* a key called like a gateway key is the module's inside a radio */
	config_free(c);
	c = load_ok("[radio r0]\nmodule = sim\nid = x\nlisten = nonsense\n");
	assert_int_equal(c->radios[0].nkv, 2);
	assert_string_equal(c->gw_id, "lab1");
	config_free(c);
}

/* ---- errors ------------------------------------------------------------- */

static const struct bad_case {
	const char *text;
	int line;
	const char *where; /* "[section] key", "[section]" or "key" */
	const char *reason;
} bad_cases[] = {
	{"[bogus]\nx = 1\n", 1, "[bogus]", "unknown section"},
	{"[gateway]\nid = lab1\n[Gateway]\n", 3, "[Gateway]", "unknown section"},
	{"[radio]\nmodule = sim\n", 1, "[radio]", "unknown section"},
	{"[http]\nlisten2 = :80\n", 2, "[http] listen2", "unknown key"},
	{"[gateway]\n\n\nlisten = :80\n", 4, "[gateway] listen", "unknown key"},
	{"[gateway]\nid = a\nid = b\n", 3, "[gateway] id", "given twice (first on line 2)"},
	{"[gateway]\nid = a\n[http]\nlisten = :1\n[gateway]\nid = b\n", 6, "[gateway] id",
	 "given twice (first on line 2)"},
	{"[http]\nsend_queue = ten\n", 2, "[http] send_queue", "not an integer"},
	{"[http]\nsend_queue = 1.5\n", 2, "[http] send_queue", "not an integer"},
	{"[http]\nsend_queue = 15\n", 2, "[http] send_queue", "out of range"},
	{"[http]\nmax_sessions = 99999999999999999999\n", 2, "[http] max_sessions", "out of range"},
	{"[http]\nidle_timeout = 10x\n", 2, "[http] idle_timeout", "not a duration"},
	{"[http]\nidle_timeout = -5s\n", 2, "[http] idle_timeout", "not a duration"},
	{"[http]\nidle_timeout = 1s\n", 2, "[http] idle_timeout", "out of range"},
	{"[privacy]\npseudonym_rotation = 31d\n", 2, "[privacy] pseudonym_rotation",
	 "out of range"},
	{"[http]\nmax_message = 64q\n", 2, "[http] max_message", "not a size"},
	{"[http]\nmax_message = 255\n", 2, "[http] max_message", "out of range"},
	{"[http]\nmax_message = 17M\n", 2, "[http] max_message", "out of range"},
	{"[http]\nlisten = 8080\n", 2, "[http] listen", "not host:port"},
	{"[http]\nlisten = 0.0.0.0:65536\n", 2, "[http] listen", "not host:port"},
	{"[http]\nlisten = ::1:8080\n", 2, "[http] listen", "not host:port"},
	{"[mqtt]\nspawn_listen = localhost\n", 2, "[mqtt] spawn_listen", "not host:port"},
	{"[mqtt]\nbroker = localhost\n", 2, "[mqtt] broker", "must be spawn, off, or host:port"},
	{"[mqtt]\nbroker = localhost:0\n", 2, "[mqtt] broker", "must be spawn, off, or host:port"},
	{"[mqtt]\nbroker = :1883\n", 2, "[mqtt] broker", "must be spawn, off, or host:port"},
	{"[mqtt]\nbroker = SPAWN\n", 2, "[mqtt] broker", "must be spawn, off, or host:port"},
	{"[mqtt]\nqos = 2\n", 2, "[mqtt] qos", "must be 0 or 1"},
	{"[mqtt]\nspawn_listen_ws = 8083\n", 2, "[mqtt] spawn_listen_ws", "not host:port"},
	{"[mqtt]\n\nspawn_listen_tls = :8883\n", 3, "[mqtt] spawn_listen_tls",
	 "needs `tls_cert` and `tls_key`"},
	{"[mqtt]\ntls_cert = a.pem\n", 2, "[mqtt] tls_cert", "needs `tls_key` as well"},
	{"[mqtt]\ntls_key = a.key\n", 2, "[mqtt] tls_key", "needs `tls_cert` as well"},
	{"[mqtt]\npassword_file = pw\n", 2, "[mqtt] password_file", "needs `username` as well"},
	{"[mqtt]\nqos = one\n", 2, "[mqtt] qos", "not an integer"},
	{"[log]\nlevel = loud\n", 2, "[log] level", "must be one of error, warning"},
	{"[gateway]\nid = Lab1\n", 2, "[gateway] id", "must be 1 to 32"},
	{"[gateway]\nid = abcdefghijklmnopqrstuvwxyz0123456\n", 2, "[gateway] id",
	 "must be 1 to 32"},
	{"[gateway]\nid =\n", 2, "[gateway] id", "must be 1 to 32"},
	{"[gateway]\nstate_dir =\n", 2, "[gateway] state_dir", "must not be empty"},
	{"id = lab1\n", 1, "id", "key outside of any [section]"},
	{"\n; comment\nlisten = :80\n[http]\n", 3, "listen", "key outside of any [section]"},
	{"[radio r0]\nregion = EU868\n", 1, "[radio r0] module", "missing"},
	{"[gateway]\n[radio r0]\n", 2, "[radio r0] module", "missing"},
	{"[radio r0]\nmodule = sim\n\n[radio r0]\nmodule = sim\n", 4, "[radio r0]",
	 "defined twice (first on line 1)"},
	{"[radio R0]\nmodule = sim\n", 1, "[radio R0]", "radio name must be"},
	{"[radio a/b]\nmodule = sim\n", 1, "[radio a/b]", "radio name must be"},
	{"[radio a b]\nmodule = sim\n", 1, "[radio a b]", "radio name must be"},
	{"[radio abcdefghijklmnopqrstuvwxyz0123456]\nmodule = sim\n", 1,
	 "[radio abcdefghijklmnopqrstuvwxyz0123456]", "radio name must be"},
	{"[radio r0]\nmodule = ../evil\n", 2, "[radio r0] module", "must be a module name"},
	{"[radio r0]\nmodule = /tmp/evil\n", 2, "[radio r0] module", "must be a module name"},
	{"[radio r0]\nmodule = sim\nmodule = ble\n", 3, "[radio r0] module", "given twice"},
	{"[radio r0]\nmodule = sim\nrate = 1\nrate = 2\n", 4, "[radio r0] rate",
	 "given twice (first on line 3)"},
	{"[gateway]\nthis is not a key\n", 2, "[gateway]", "syntax error"},
	{"[gateway\nid = lab1\n", 1, "", "syntax error"},
};

static void expect_refused(const struct bad_case *b)
{
	struct config *c = (struct config *)1;
	int rc = load(b->text, &c);
	if (rc != -EINVAL) {
		config_free(rc == 0 ? c : NULL);
		fail_msg("accepted (rc %d):\n%s", rc, b->text);
	}
	assert_null(c);
	char prefix[700];
	if (b->where[0])
		snprintf(prefix, sizeof(prefix), "%s:%d: %s: ", cfgpath, b->line, b->where);
	else
		snprintf(prefix, sizeof(prefix), "%s:%d: ", cfgpath, b->line);
	if (!cap_error(prefix, b->reason)) {
		cap_dump();
		fail_msg("no error '%s...%s' for:\n%s", prefix, b->reason, b->text);
	}
}

static void test_bad_files_name_file_line_key(void **state)
{
	for (size_t i = 0; i < ARRAY_SIZE(bad_cases); i++)
		expect_refused(&bad_cases[i]);
}

static void test_unreadable_file(void **state)
{
	char path[600];
	snprintf(path, sizeof(path), "%s/does-not-exist.conf", tmpdir);
	struct config *c = NULL;
	cap_reset();
	assert_int_equal(config_load(path, &c), -ENOENT);
	assert_null(c);
	char prefix[700];
	snprintf(prefix, sizeof(prefix), "%s: ", path);
	assert_non_null(cap_error(prefix, "cannot read"));
}

static void test_every_problem_is_reported(void **state)
{
	struct config *c;
	int rc = load("[gateway]\n"
		      "id = BAD\n" /* 2 */
		      "[http]\n"
		      "send_queue = 1\n" /* 4 */
		      "[nope]\n"	 /* 5 */
		      "[mqtt]\n"
		      "qos = 7\n"   /* 7 */
		      "[radio x]\n" /* 8: no module */
		      "k = v\n",
		      &c);
	assert_int_equal(rc, -EINVAL);
	char p[700];
	snprintf(p, sizeof(p), "%s:2: [gateway] id: ", cfgpath);
	assert_non_null(cap_error(p, "must be"));
	snprintf(p, sizeof(p), "%s:4: [http] send_queue: ", cfgpath);
	assert_non_null(cap_error(p, "out of range"));
	snprintf(p, sizeof(p), "%s:5: [nope]: ", cfgpath);
	assert_non_null(cap_error(p, "unknown section"));
	snprintf(p, sizeof(p), "%s:7: [mqtt] qos: ", cfgpath);
	assert_non_null(cap_error(p, "0 or 1"));
	snprintf(p, sizeof(p), "%s:8: [radio x] module: ", cfgpath);
	assert_non_null(cap_error(p, "missing"));
	assert_int_equal(cap_errors(), 5);
}

static void test_syntax_error_names_its_section(void **state)
{
	/* the bad line is in [gateway]; the message must not blame [http] */
	struct config *c;
	assert_int_equal(load("[gateway]\n"
			      "id = lab1\n"
			      "oops\n"
			      "[http]\n"
			      "listen = :8080\n",
			      &c),
			 -EINVAL);
	char p[700];
	snprintf(p, sizeof(p), "%s:3: [gateway]: ", cfgpath);
	if (!cap_error(p, "syntax error")) {
		cap_dump();
		fail_msg("expected '%s syntax error ...'", p);
	}
}

/* A line of `n` characters (newline not counted) as a radio key. */
static char *long_line_file(size_t n, const char *after)
{
	const char *head = "[radio r0]\nmodule = sim\n";
	size_t hl = strlen(head), al = strlen(after);
	char *s = malloc(hl + n + 2 + al);
	memcpy(s, head, hl);
	memcpy(s + hl, "note = ", 7);
	memset(s + hl + 7, 'x', n - 7);
	s[hl + n] = '\n';
	memcpy(s + hl + n + 1, after, al + 1);
	return s;
}

static void test_line_length_limit(void **state)
{
	/* 198 characters is the longest line inih takes whole (INI_MAX_LINE 200
	 * with the newline and the NUL) */
	char *s = long_line_file(198, "");
	struct config *c = load_ok(s);
	assert_int_equal(strlen(c->radios[0].kv[0].value), 198 - 7);
	config_free(c);
	free(s);

	s = long_line_file(199, "");
	assert_int_equal(load(s, &c), -EINVAL);
	char p[700];
	snprintf(p, sizeof(p), "%s:3: ", cfgpath);
	if (!cap_error(p, "longer than the limit")) {
		cap_dump();
		fail_msg("expected '%s... longer than the limit'", p);
	}
	free(s);

	/* a long line at the very end, without a newline */
	s = long_line_file(500, "");
	s[strlen(s) - 1] = '\0';
	assert_int_equal(load(s, &c), -EINVAL);
	assert_non_null(cap_error(p, "longer than the limit"));
	free(s);
}

static void test_long_line_error_names_its_own_line(void **state)
{
	/* The over-long line is line 3; the keys after it must not take the
	 * blame, and must still be checked. */
	char *s = long_line_file(300, "\nregion = EU868\n[http]\nlisten = nope\n");
	struct config *c;
	assert_int_equal(load(s, &c), -EINVAL);
	char p[700];
	snprintf(p, sizeof(p), "%s:3: ", cfgpath);
	if (!cap_error(p, "longer than the limit")) {
		cap_dump();
		fail_msg("expected '%s... longer than the limit'", p);
	}
	snprintf(p, sizeof(p), "%s:7: [http] listen: ", cfgpath);
	if (!cap_error(p, "not host:port")) {
		cap_dump();
		fail_msg("the error on line 7 was not reported");
	}
	free(s);
}

/* ---- paths -------------------------------------------------------------- */

static void test_relative_paths_resolved_against_file_folder(void **state)
{
	char sub[600], path[700], want[800];
	snprintf(sub, sizeof(sub), "%s/etc", tmpdir);
	mkdir(sub, 0700);
	snprintf(path, sizeof(path), "%s/labgw.conf", sub);
	write_file(path, "[gateway]\nstate_dir = state\nplugin_dir = ../plugins\n"
			 "[http]\nweb_root = ./web\n[mqtt]\nmosquitto = /usr/bin/mosquitto\n"
			 "tls_cert = tls/cert.pem\ntls_key = /k.pem\nusername = gw\n"
			 "password_file = pw\nspawn_listen_tls = [::1]:8883\n"
			 "spawn_listen_ws = :0\n");
	struct config *c = NULL;
	cap_reset();
	assert_int_equal(config_load(path, &c), 0);
	snprintf(want, sizeof(want), "%s/tls/cert.pem", sub);
	assert_string_equal(c->mqtt_tls_cert, want);
	assert_string_equal(c->mqtt_tls_key, "/k.pem");
	snprintf(want, sizeof(want), "%s/pw", sub);
	assert_string_equal(c->mqtt_password_file, want);
	assert_string_equal(c->mqtt_username, "gw");
	assert_string_equal(c->mqtt_spawn_tls_host, "::1");
	assert_int_equal(c->mqtt_spawn_tls_port, 8883);
	assert_string_equal(c->mqtt_spawn_ws_host, "0.0.0.0");
	assert_int_equal(c->mqtt_spawn_ws_port, 0);
	assert_string_equal(c->mqtt_dynsec_plugin, ""); /* empty: the default */
	snprintf(want, sizeof(want), "%s/state", sub);
	assert_string_equal(c->state_dir, want);
	snprintf(want, sizeof(want), "%s/../plugins", sub);
	assert_string_equal(c->plugin_dir, want);
	snprintf(want, sizeof(want), "%s/./web", sub);
	assert_string_equal(c->web_root, want);
	assert_string_equal(c->mosquitto_bin, "/usr/bin/mosquitto"); /* absolute: as is */
	/* defaults stay absolute */
	config_free(c);

	/* a relative file name: relative to the working directory's view of it */
	char cwd[4096];
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(chdir(tmpdir), 0);
	c = NULL;
	int rc = config_load("etc/labgw.conf", &c);
	if (rc == 0) {
		assert_string_equal(c->state_dir, "etc/state");
		assert_string_equal(c->path, "etc/labgw.conf");
		config_free(c);
	}
	c = NULL;
	assert_int_equal(chdir("etc"), 0);
	int rc2 = config_load("labgw.conf", &c);
	if (rc2 == 0) {
		assert_string_equal(c->state_dir, "./state");
		config_free(c);
	}
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(rc, 0);
	assert_int_equal(rc2, 0);
}

/* ---- radios compared ---------------------------------------------------- */

static void test_radio_equal(void **state)
{
	struct config *a = load_ok("[radio x]\nmodule = sim\nrate = 10\nseed = 1\n"
				   "[radio y]\nmodule = sim\nseed = 1\nrate = 10\n"
				   "[radio z]\nmodule = sim\nrate = 10\nseed = 2\n"
				   "[radio w]\nmodule = ble\nrate = 10\nseed = 1\n"
				   "[radio v]\nmodule = sim\nrate = 10\n"
				   "[radio u]\nmodule = sim\nrate = 10\nseed = 1\nextra = 0\n"
				   "[radio t]\nmodule = sim\nrate = 10\nSeed = 1\n");
	struct config *b = load_ok("; the same file, moved down a few lines\n\n\n"
				   "[radio x]\nmodule = sim\nrate = 10\nseed = 1\n");
	const struct config_radio *x = config_find_radio(a, "x");
	/* the same content; order and line numbers do not matter */
	assert_true(config_radio_equal(x, config_find_radio(b, "x")));
	assert_true(config_radio_equal(x, config_find_radio(a, "y")));
	assert_true(config_radio_equal(x, x));
	/* any difference does */
	static const char *const differ[] = {"z", "w", "v", "u", "t"};
	for (size_t i = 0; i < ARRAY_SIZE(differ); i++) {
		const struct config_radio *o = config_find_radio(a, differ[i]);
		assert_non_null(o);
		if (config_radio_equal(x, o) || config_radio_equal(o, x))
			fail_msg("radio x and %s should differ", differ[i]);
	}
	config_free(a);
	config_free(b);
}

/* ---- the reference ------------------------------------------------------ */

static const char *const all_keys[][2] = {
	{"gateway", "id"},
	{"gateway", "state_dir"},
	{"gateway", "plugin_dir"},
	{"log", "level"},
	{"http", "listen"},
	{"http", "web_root"},
	{"http", "javascript_root"},
	{"http", "allowed_origins"},
	{"http", "max_message"},
	{"http", "max_subscriptions"},
	{"http", "send_queue"},
	{"http", "idle_timeout"},
	{"http", "auth_timeout"},
	{"http", "max_sessions"},
	{"http", "tls_cert"},
	{"http", "tls_key"},
	{"mqtt", "broker"},
	{"mqtt", "spawn_listen"},
	{"mqtt", "spawn_listen_tls"},
	{"mqtt", "spawn_listen_ws"},
	{"mqtt", "tls_cert"},
	{"mqtt", "tls_key"},
	{"mqtt", "tls_ca"},
	{"mqtt", "dynsec_plugin"},
	{"mqtt", "mosquitto"},
	{"mqtt", "username"},
	{"mqtt", "password_file"},
	{"mqtt", "client_id"},
	{"mqtt", "qos"},
	{"mqtt", "keepalive"},
	{"mqtt", "queue"},
	{"mqtt", "spool"},
	{"mqtt", "session_expiry"},
	{"privacy", "pseudonym_rotation"},
	{"privacy", "observe_payload"},
	{"history", "max_frames"},
	{"history", "max_age"},
};

static char *reference(void)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp = open_memstream(&buf, &len);
	assert_non_null(fp);
	config_print_reference(fp);
	fclose(fp);
	assert_non_null(buf);
	return buf;
}

static void test_reference_mentions_every_key(void **state)
{
	char *ref = reference();
	for (size_t i = 0; i < ARRAY_SIZE(all_keys); i++) {
		char sec[64], row[64];
		snprintf(sec, sizeof(sec), "### `[%s]`\n", all_keys[i][0]);
		snprintf(row, sizeof(row), "\n| `%s` | ", all_keys[i][1]);
		char *s = strstr(ref, sec);
		if (!s)
			fail_msg("no section %s in the reference", all_keys[i][0]);
		/* the row is in its own section's table */
		char *next = strstr(s + 1, "### ");
		char *r = strstr(s, row);
		if (!r || (next && r > next))
			fail_msg("[%s] %s is not in the reference", all_keys[i][0], all_keys[i][1]);
	}
	free(ref);
}

/* Every row of the reference is a key the parser accepts, with its default
 * as a valid value: the table and the parser cannot drift apart. */
static void test_reference_rows_are_accepted(void **state)
{
	char *ref = reference();
	char section[64] = "";
	int rows = 0;
	for (char *line = strtok(ref, "\n"); line; line = strtok(NULL, "\n")) {
		if (sscanf(line, "### `[%63[^]]]`", section) == 1)
			continue;
		char key[64], def[256];
		if (sscanf(line, "| `%63[^`]` | `%255[^`]` |", key, def) != 2)
			continue;
		assert_true(section[0]);
		if (!strcmp(def, "\"\""))
			def[0] = '\0';
		char text[512];
		snprintf(text, sizeof(text), "[%s]\n%s = %s\n", section, key, def);
		struct config *c;
		if (load(text, &c) != 0) {
			cap_dump();
			fail_msg("reference row [%s] %s = '%s' is refused", section, key, def);
		}
		/* a default written out gives the default configuration */
		check_defaults(c);
		config_free(c);
		rows++;
	}
	assert_int_equal(rows, ARRAY_SIZE(all_keys));
	free(ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_empty_file_gives_defaults),
		cmocka_unit_test(test_every_key_type),
		cmocka_unit_test(test_design_example_loads),
		cmocka_unit_test(test_several_radios),
		cmocka_unit_test(test_bad_files_name_file_line_key),
		cmocka_unit_test(test_unreadable_file),
		cmocka_unit_test(test_every_problem_is_reported),
		cmocka_unit_test(test_syntax_error_names_its_section),
		cmocka_unit_test(test_line_length_limit),
		cmocka_unit_test(test_long_line_error_names_its_own_line),
		cmocka_unit_test(test_relative_paths_resolved_against_file_folder),
		cmocka_unit_test(test_radio_equal),
		cmocka_unit_test(test_reference_mentions_every_key),
		cmocka_unit_test(test_reference_rows_are_accepted),
	};
	return cmocka_run_group_tests_name("config", tests, group_setup, group_teardown);
}
