/* libFuzzer target: REST requests — method, path, query and JSON body —
 * through rest_call_start()/rest_call_finish() with the staff key, against
 * the real sandbox, policy and history code on a SQLite store in a
 * temporary folder (no radios, no MQTT, no HTTP server).
 *
 * Input: byte 0 picks the method; then the path (with an optional
 * "?a=b&c=d" query) up to the first '\n'; the rest is the body. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "config.h"
#include "daemon.h"
#include "history.h"
#include "kiosk.h"
#include "log.h"
#include "plugin_host.h"
#include "policy.h"
#include "privacy.h"
#include "rest.h"
#include "sandbox.h"
#include "store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct labgwd d;
static uv_loop_t loop;
static char auth[128];
static uint64_t seq;

static uint64_t next_seq(void *ud)
{
	return ++seq;
}

static const struct plugin_host_ops ops = {.next_seq = next_seq};

static void die(const char *what)
{
	fprintf(stderr, "fuzz_rest: %s\n", what);
	abort();
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	log_set_level(LOG_LVL_ERROR - 1); /* refusals are expected */
	char dir[] = "/tmp/labgw-fuzz-rest-XXXXXX";
	if (!mkdtemp(dir))
		die("mkdtemp");
	char conf[512];
	int n = snprintf(conf, sizeof(conf), "[gateway]\nstate_dir = %s\n[mqtt]\nbroker = off\n",
			 dir);
	FILE *fp = fmemopen(conf, (size_t)n, "r");
	if (!fp || config_load_stream(fp, "/fuzz/labgw.conf", &d.cfg) != 0)
		die("config");
	fclose(fp);
	uv_loop_init(&loop);
	d.loop = &loop;
	char path[600];
	snprintf(path, sizeof(path), "%s/labgw.db", dir);
	d.bus = bus_new(64);
	if (!d.bus || store_open(path, &d.store) < 0)
		die("store");
	d.sandboxes = sandboxes_new(&d, d.store);
	d.privacy = d.sandboxes ? privacy_new(&d, d.store) : NULL;
	d.history = d.privacy ? history_new(&d, d.store) : NULL;
	d.kiosk = d.history ? kiosk_new(&d) : NULL;
	if (!d.kiosk || sandboxes_start(d.sandboxes) < 0)
		die("sandboxes");
	history_start(d.history);
	d.policy = policy_new(&d);
	d.host = plugin_host_new(&loop, &ops, &d);
	if (!d.policy || !d.host || plugin_host_apply(d.host, d.cfg) < 0)
		die("policy");
	snprintf(path, sizeof(path), "%s/admin.key", dir);
	fp = fopen(path, "r");
	char key[100] = "";
	if (!fp || !fgets(key, sizeof(key), fp))
		die("admin key");
	fclose(fp);
	key[strcspn(key, "\n")] = '\0';
	snprintf(auth, sizeof(auth), "Bearer %s", key);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum rest_method methods[] = {REST_GET,   REST_POST,   REST_PUT,   REST_PATCH,
						   REST_DELETE, REST_HEAD, REST_OPTIONS};
	if (size < 1 || size > REST_BODY_MAX + 2048)
		return 0;
	enum rest_method m = methods[data[0] % (sizeof(methods) / sizeof(methods[0]))];
	const char *in = (const char *)data + 1;
	size_t len = size - 1;
	const char *nl = memchr(in, '\n', len);
	size_t plen = nl ? (size_t)(nl - in) : len;
	if (plen > 1024)
		return 0;
	/* the path as libwebsockets hands it over: NUL-free, under /api/v1/ */
	char url[1100];
	size_t ul = (size_t)snprintf(url, sizeof(url), "%s", REST_PREFIX);
	for (size_t i = 0; i < plen && ul < sizeof(url) - 1; i++)
		url[ul++] = in[i] ? in[i] : '_';
	url[ul] = '\0';
	struct rest_arg args[REST_ARGS_MAX];
	size_t nargs = 0;
	char *q = strchr(url, '?');
	if (q) {
		*q++ = '\0';
		for (char *tok = strtok(q, "&"); tok && nargs < REST_ARGS_MAX;
		     tok = strtok(NULL, "&")) {
			char *eq = strchr(tok, '=');
			if (eq)
				*eq++ = '\0';
			args[nargs].name = tok;
			args[nargs].value = eq ? eq : "";
			nargs++;
		}
	}
	const char *body = nl ? nl + 1 : "";
	size_t blen = nl ? len - plen - 1 : 0;
	struct rest_request rq = {.method = m,
				  .path = url,
				  .args = args,
				  .nargs = nargs,
				  .authorization = auth,
				  .peer = "127.0.0.1"};
	struct rest_call *call = NULL;
	struct rest_response rs;
	memset(&rs, 0, sizeof(rs));
	if (rest_call_start(&d, &rq, blen > 0, &call, &rs) == REST_READ_BODY) {
		rest_call_finish(call, body, blen, &rs);
		rest_call_free(call);
	}
	if (rs.status < 100 || rs.status > 599)
		__builtin_trap();
	rest_response_release(&rs);
	uv_run(&loop, UV_RUN_NOWAIT);
	return 0;
}
