#include "rest.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "daemon.h"
#include "frame.h"
#include "history.h"
#include "log.h"
#include "policy.h"
#include "replay.h"
#include "sandbox.h"
#include "util.h"

/* The OpenAPI document, compiled in from docs/openapi.json so that the
 * daemon always serves the description of the routes it was built with,
 * whatever web_root says (the Makefile makes rest.o depend on the file). */
__asm__(".pushsection .rodata\n"
	".balign 16\n"
	"rest__openapi_start:\n"
	".incbin \"docs/openapi.json\"\n"
	"rest__openapi_end:\n"
	".byte 0\n"
	".balign 16\n"
	"rest__asyncapi_start:\n"
	".incbin \"docs/asyncapi.yaml\"\n"
	"rest__asyncapi_end:\n"
	".byte 0\n"
	".popsection\n");
extern const char rest__openapi_start[], rest__openapi_end[];
extern const char rest__asyncapi_start[], rest__asyncapi_end[];

const char *rest_openapi(size_t *len)
{
	*len = (size_t)(rest__openapi_end - rest__openapi_start);
	return rest__openapi_start;
}

const char *rest_asyncapi(size_t *len)
{
	*len = (size_t)(rest__asyncapi_end - rest__asyncapi_start);
	return rest__asyncapi_start;
}

/* ---- routes -------------------------------------------------------------- */

/* path parameters, validated before any api_* call */
enum param {
	P_NONE,
	P_SBX,
	P_RADIO,
	P_KEY,
	P_TECH,
	P_DEV, /* the rest of the path: device ids may hold '/' */
	P_LEASE,
};

#define PARAMS_MAX 3
#define PARAM_LEN  (FRAME_DEV_MAX + 8)

struct rest_call {
	struct labgwd *d;
	const struct route *route;
	const struct op *op;
	struct principal who;
	char params[PARAMS_MAX][PARAM_LEN];
	/* query values; NULL when absent or empty */
	char *args[4];
	char *argbuf;
	json_t *body;
	json_t *result;
	struct capture_out raw; /* an answer that is not JSON (a capture) */
	struct api_error err;
};

typedef int (*op_fn)(struct rest_call *c);

#define OP_BODY	  (1u << 0) /* takes a JSON object body */
#define OP_PUBLIC (1u << 1) /* no authentication */

struct op {
	enum rest_method method;
	op_fn fn;
	unsigned flags;
	unsigned status;     /* on success */
	const char *args[4]; /* query parameters, NULL-terminated */
};

struct route {
	const char *pattern; /* literal levels and {param} levels */
	enum param params[PARAMS_MAX];
	struct op ops[3];
};

#define C_PARAM(c, i) ((c)->params[i])
#define SB(c)	      ((c)->d->sandboxes)

static int op_openapi(struct rest_call *c)
{
	return 0; /* answered from the compiled-in document */
}

static int op_asyncapi(struct rest_call *c)
{
	return 0; /* answered from the compiled-in document */
}

static int op_gateway(struct rest_call *c)
{
	return api_gateway(SB(c), &c->who, &c->result, &c->err);
}

static int op_radio_get(struct rest_call *c)
{
	return api_radio_get(SB(c), &c->who, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_radio_op(struct rest_call *c)
{
	struct policy_result res;
	if (policy_radio_op(c->d->policy, &c->who, C_PARAM(c, 0), c->body, &res) < 0) {
		api_fail(&c->err, res.code ? res.code : "INTERNAL", "%s", res.message);
		json_decref(res.result);
		return -1;
	}
	c->result = res.result;
	return 0;
}

static int op_sandbox_create(struct rest_call *c)
{
	return api_sandbox_create(SB(c), &c->who, c->body, &c->result, &c->err);
}

static int op_sandbox_list(struct rest_call *c)
{
	return api_sandbox_list(SB(c), &c->who, &c->result, &c->err);
}

static int op_sandbox_get(struct rest_call *c)
{
	return api_sandbox_get(SB(c), &c->who, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_sandbox_update(struct rest_call *c)
{
	return api_sandbox_update(SB(c), &c->who, C_PARAM(c, 0), c->body, &c->result, &c->err);
}

static int op_sandbox_delete(struct rest_call *c)
{
	return api_sandbox_delete(SB(c), &c->who, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_key_create(struct rest_call *c)
{
	return api_key_create(SB(c), &c->who, C_PARAM(c, 0), c->body, &c->result, &c->err);
}

static int op_key_list(struct rest_call *c)
{
	return api_key_list(SB(c), &c->who, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_key_revoke(struct rest_call *c)
{
	return api_key_revoke(SB(c), &c->who, C_PARAM(c, 0), C_PARAM(c, 1), &c->result, &c->err);
}

/* staff and kiosk keys: no sandbox */
static int op_gkey_create(struct rest_call *c)
{
	return api_key_create(SB(c), &c->who, NULL, c->body, &c->result, &c->err);
}

static int op_gkey_list(struct rest_call *c)
{
	return api_key_list(SB(c), &c->who, NULL, &c->result, &c->err);
}

static int op_gkey_revoke(struct rest_call *c)
{
	return api_key_revoke(SB(c), &c->who, NULL, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_claim_create(struct rest_call *c)
{
	return api_claim_create(SB(c), &c->who, C_PARAM(c, 0), c->body, &c->result, &c->err);
}

static int op_claim_list(struct rest_call *c)
{
	return api_claim_list(SB(c), &c->who, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_claim_delete(struct rest_call *c)
{
	return api_claim_delete(SB(c), &c->who, C_PARAM(c, 0), C_PARAM(c, 1), C_PARAM(c, 2),
				&c->result, &c->err);
}

static int op_lease_create(struct rest_call *c)
{
	return api_lease_create(SB(c), &c->who, C_PARAM(c, 0), c->body, &c->result, &c->err);
}

static int op_lease_list(struct rest_call *c)
{
	return api_lease_list(SB(c), &c->who, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_lease_delete(struct rest_call *c)
{
	return api_lease_delete(SB(c), &c->who, C_PARAM(c, 0), C_PARAM(c, 1), &c->result, &c->err);
}

static int op_frames(struct rest_call *c)
{
	return api_frames(c->d->history, &c->who, C_PARAM(c, 0), c->args[0], c->args[1], c->args[2],
			  &c->result, &c->err);
}

static int op_capture(struct rest_call *c)
{
	return api_capture(c->d, &c->who, C_PARAM(c, 0), C_PARAM(c, 1), c->args[0], &c->raw,
			   &c->err);
}

static int op_replay(struct rest_call *c)
{
	return api_replay_start(c->d->replay, &c->who, C_PARAM(c, 0), c->body, &c->result, &c->err);
}

static int op_replay_cancel(struct rest_call *c)
{
	return api_replay_cancel(c->d->replay, &c->who, C_PARAM(c, 0), &c->result, &c->err);
}

static int op_audit(struct rest_call *c)
{
	const char *sbx = c->args[0];
	if (sbx && !ident_valid(sbx, 32))
		return api_fail(&c->err, "BAD_REQUEST", "\"sbx\" is not a sandbox id");
	return api_audit_list(SB(c), &c->who, sbx, c->args[1], c->args[2], &c->result, &c->err);
}

static int op_stop_on(struct rest_call *c)
{
	return api_stop(SB(c), &c->who, true, &c->result, &c->err);
}

static int op_stop_off(struct rest_call *c)
{
	return api_stop(SB(c), &c->who, false, &c->result, &c->err);
}

/* {"tech","radio", and the transmit fields}: the same request as one
 * published to labgw/v1/sbx/{sbx}/tx/{tech}/{gw}/{radio}/req */
static int op_tx(struct rest_call *c)
{
	const char *sbx = C_PARAM(c, 0);
	const char *tech = json_string_value(json_object_get(c->body, "tech"));
	const char *radio = json_string_value(json_object_get(c->body, "radio"));
	if (!tech || frame_tech_parse(tech) == LABGW_TECH_NONE)
		return api_fail(&c->err, "BAD_REQUEST",
				"\"tech\" is required: ble, wlan, lorawan or cellular");
	if (!radio || !ident_valid(radio, 32))
		return api_fail(&c->err, "BAD_REQUEST",
				"\"radio\" is required: the id of a radio of this gateway");
	char topic[256];
	snprintf(topic, sizeof(topic), "labgw/v1/sbx/%s/tx/%s/%s/%s/req", sbx, tech,
		 c->d->cfg->gw_id, radio);
	json_t *payload = json_deep_copy(c->body);
	if (!payload)
		return api_fail(&c->err, "INTERNAL", "out of memory");
	json_object_del(payload, "tech");
	json_object_del(payload, "radio");
	struct policy_result res;
	int rc = policy_submit(c->d->policy, &c->who, topic, payload, &res);
	json_decref(payload);
	if (rc < 0) {
		api_fail(&c->err, res.code ? res.code : "INTERNAL", "%s", res.message);
		c->err.retry_after_ms = res.retry_after_ms;
		snprintf(c->err.frees_at, sizeof(c->err.frees_at), "%s", res.frees_at);
		json_decref(res.result);
		return -1;
	}
	c->result = res.result;
	return 0;
}

static const struct route routes[] = {
	{"/api/v1/openapi.json", {P_NONE}, {{REST_GET, op_openapi, OP_PUBLIC, 200, {NULL}}}},
	{"/api/v1/asyncapi.yaml", {P_NONE}, {{REST_GET, op_asyncapi, OP_PUBLIC, 200, {NULL}}}},
	{"/api/v1/gateway", {P_NONE}, {{REST_GET, op_gateway, 0, 200, {NULL}}}},
	{"/api/v1/radios/{radio}", {P_RADIO}, {{REST_GET, op_radio_get, 0, 200, {NULL}}}},
	{"/api/v1/radios/{radio}/ops", {P_RADIO}, {{REST_POST, op_radio_op, OP_BODY, 202, {NULL}}}},
	{"/api/v1/sandboxes",
	 {P_NONE},
	 {{REST_GET, op_sandbox_list, 0, 200, {NULL}},
	  {REST_POST, op_sandbox_create, OP_BODY, 201, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}",
	 {P_SBX},
	 {{REST_GET, op_sandbox_get, 0, 200, {NULL}},
	  {REST_PATCH, op_sandbox_update, OP_BODY, 200, {NULL}},
	  {REST_DELETE, op_sandbox_delete, 0, 200, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/keys",
	 {P_SBX},
	 {{REST_GET, op_key_list, 0, 200, {NULL}},
	  {REST_POST, op_key_create, OP_BODY, 201, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/keys/{key_id}",
	 {P_SBX, P_KEY},
	 {{REST_DELETE, op_key_revoke, 0, 200, {NULL}}}},
	{"/api/v1/keys",
	 {P_NONE},
	 {{REST_GET, op_gkey_list, 0, 200, {NULL}},
	  {REST_POST, op_gkey_create, OP_BODY, 201, {NULL}}}},
	{"/api/v1/keys/{key_id}", {P_KEY}, {{REST_DELETE, op_gkey_revoke, 0, 200, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/claims",
	 {P_SBX},
	 {{REST_GET, op_claim_list, 0, 200, {NULL}},
	  {REST_POST, op_claim_create, OP_BODY, 201, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/claims/{tech}/{dev}",
	 {P_SBX, P_TECH, P_DEV},
	 {{REST_DELETE, op_claim_delete, 0, 200, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/leases",
	 {P_SBX},
	 {{REST_GET, op_lease_list, 0, 200, {NULL}},
	  {REST_POST, op_lease_create, OP_BODY, 201, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/leases/{lease_id}",
	 {P_SBX, P_LEASE},
	 {{REST_DELETE, op_lease_delete, 0, 200, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/frames",
	 {P_SBX},
	 {{REST_GET, op_frames, 0, 200, {"since", "topic", "limit", NULL}}}},
	{"/api/v1/sandboxes/{sbx}/leases/{lease_id}/capture",
	 {P_SBX, P_LEASE},
	 {{REST_GET, op_capture, 0, 200, {"format", NULL}}}},
	{"/api/v1/sandboxes/{sbx}/replay",
	 {P_SBX},
	 {{REST_POST, op_replay, OP_BODY, 202, {NULL}},
	  {REST_DELETE, op_replay_cancel, 0, 200, {NULL}}}},
	{"/api/v1/sandboxes/{sbx}/tx", {P_SBX}, {{REST_POST, op_tx, OP_BODY, 202, {NULL}}}},
	{"/api/v1/audit",
	 {P_NONE},
	 {{REST_GET, op_audit, 0, 200, {"sbx", "since", "limit", NULL}}}},
	{"/api/v1/stop",
	 {P_NONE},
	 {{REST_PUT, op_stop_on, 0, 200, {NULL}}, {REST_DELETE, op_stop_off, 0, 200, {NULL}}}},
};

static const char *method_name(enum rest_method m)
{
	switch (m) {
	case REST_GET:
		return "GET";
	case REST_HEAD:
		return "HEAD";
	case REST_POST:
		return "POST";
	case REST_PUT:
		return "PUT";
	case REST_PATCH:
		return "PATCH";
	case REST_DELETE:
		return "DELETE";
	case REST_OPTIONS:
		return "OPTIONS";
	}
	return "?";
}

/* Match path against a pattern; the {param} levels are copied to params
 * (each up to PARAM_LEN - 1 bytes; longer ones are cut and later found
 * invalid, the last byte says so). {dev} takes the rest of the path. */
static bool route_match(const char *pattern, const char *path, char params[][PARAM_LEN])
{
	const char *p = pattern, *s = path;
	int np = 0;
	while (*p) {
		if (*p != '{') {
			if (*p++ != *s++)
				return false;
			continue;
		}
		const char *close = strchr(p, '}');
		bool rest = !strncmp(p, "{dev}", 5);
		size_t n = rest ? strlen(s) : strcspn(s, "/");
		if (!n || np >= PARAMS_MAX)
			return false;
		snprintf(params[np], PARAM_LEN, "%.*s", (int)(n < PARAM_LEN ? n : PARAM_LEN - 1),
			 s);
		if (n >= PARAM_LEN - 1)
			params[np][PARAM_LEN - 2] = '\x7f'; /* too long: invalid */
		np++;
		s += n;
		p = close + 1;
	}
	return *s == '\0';
}

/* A value safe to quote in an error detail: printable ASCII, at most 40. */
static const char *quotable(const char *s, char out[48])
{
	size_t i = 0;
	for (; s[i] && i < 40; i++)
		out[i] = s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"' ? s[i] : '?';
	out[i] = '\0';
	if (s[i])
		snprintf(out + i, 48 - i, "...");
	return out;
}

static bool lease_id_valid(const char *s)
{
	size_t n = strspn(s, "0123456789");
	return n > 0 && n <= 18 && !s[n];
}

/* 0, or -1 with err: the path parameters are what their names promise */
static int params_check(struct rest_call *c, struct api_error *err)
{
	char q[48];
	for (int i = 0; i < PARAMS_MAX; i++) {
		char *v = c->params[i];
		if (!v[0])
			break;
		switch (c->route->params[i]) {
		case P_NONE:
			break;
		case P_SBX:
			if (!ident_valid(v, 32))
				return api_fail(err, "BAD_REQUEST",
						"'%s' is not a sandbox id (1 to 32 of a-z 0-9 _ -, "
						"starting with a letter or digit)",
						quotable(v, q));
			break;
		case P_RADIO:
			if (!ident_valid(v, 32))
				return api_fail(err, "BAD_REQUEST", "'%s' is not a radio id",
						quotable(v, q));
			break;
		case P_KEY:
			if (!ident_valid(v, 32))
				return api_fail(err, "BAD_REQUEST", "'%s' is not a key id",
						quotable(v, q));
			break;
		case P_TECH:
			if (frame_tech_parse(v) == LABGW_TECH_NONE)
				return api_fail(err, "BAD_REQUEST",
						"unknown tech '%s' (expected ble, wlan, lorawan, "
						"cellular)",
						quotable(v, q));
			break;
		case P_DEV:
			/* libwebsockets turns a '+' left unencoded into a
			 * space; device ids have no spaces, phone numbers
			 * start with '+' */
			for (char *p = v; *p; p++)
				if (*p == ' ')
					*p = '+';
			if (!frame_dev_valid(v))
				return api_fail(err, "BAD_REQUEST",
						"'%s' is not a device id (percent-encode it: "
						"'+' as %%2B, '/' as %%2F)",
						quotable(v, q));
			break;
		case P_LEASE:
			if (!lease_id_valid(v))
				return api_fail(err, "BAD_REQUEST", "'%s' is not a lease id",
						quotable(v, q));
			break;
		}
	}
	return 0;
}

/* 0, or -1 with err: only the operation's own query parameters, once each */
static int args_take(struct rest_call *c, const struct rest_request *rq, struct api_error *err)
{
	const struct op *op = c->op;
	size_t total = 0;
	for (size_t i = 0; i < rq->nargs; i++)
		total += strlen(rq->args[i].value) + 1;
	c->argbuf = malloc(total + 1);
	if (!c->argbuf)
		return api_fail(err, "INTERNAL", "out of memory");
	char *p = c->argbuf, q[48];
	for (size_t i = 0; i < rq->nargs; i++) {
		const struct rest_arg *a = &rq->args[i];
		int k = -1;
		for (int j = 0; j < 3 && op->args[j]; j++)
			if (!strcmp(a->name, op->args[j]))
				k = j;
		if (k < 0) {
			if (!op->args[0])
				return api_fail(err, "BAD_REQUEST",
						"this operation takes no query parameters ('%s')",
						quotable(a->name, q));
			return api_fail(err, "BAD_REQUEST",
					"unknown query parameter '%s' (expected %s%s%s%s%s)",
					quotable(a->name, q), op->args[0], op->args[1] ? ", " : "",
					op->args[1] ? op->args[1] : "", op->args[2] ? ", " : "",
					op->args[2] ? op->args[2] : "");
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(rq->args[j].name, a->name))
				return api_fail(err, "BAD_REQUEST",
						"query parameter '%s' given twice", a->name);
		if (!a->value[0])
			continue; /* "?since=" is no since */
		strcpy(p, a->value);
		c->args[k] = p;
		p += strlen(p) + 1;
	}
	return 0;
}

/* ---- answers -------------------------------------------------------------- */

static void add_header(struct rest_response *rs, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void add_header(struct rest_response *rs, const char *fmt, ...)
{
	size_t used = strlen(rs->headers);
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(rs->headers + used, sizeof(rs->headers) - used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rs->headers) - used)
		rs->headers[used] = '\0'; /* never half a line */
}

static void set_body(struct rest_response *rs, char *text, const char *ctype)
{
	free(rs->owned);
	rs->owned = text;
	rs->body = text;
	rs->len = strlen(text);
	rs->content_type = ctype;
}

static void problem_json(struct rest_response *rs, unsigned status, const char *code,
			 const char *detail, long long retry_after_ms, const char *frees_at)
{
	json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "type", "about:blank", "title", code, "status",
			      (int)status, "code", code);
	json_t *dj = o ? json_string(detail) : NULL;
	if (o)
		json_object_set_new(o, "detail", dj ? dj : json_string("(detail not UTF-8)"));
	if (o && retry_after_ms >= 0)
		json_object_set_new(o, "retry_after_ms", json_integer(retry_after_ms));
	if (o && frees_at && frees_at[0])
		json_object_set_new(o, "frees_at", json_string(frees_at));
	char *txt = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	rs->status = status;
	if (!txt) {
		static const char oom[] =
			"{\"type\":\"about:blank\",\"title\":\"INTERNAL\","
			"\"status\":500,\"code\":\"INTERNAL\",\"detail\":\"out of "
			"memory\"}";
		free(rs->owned);
		rs->owned = NULL;
		rs->status = 500;
		rs->body = oom;
		rs->len = sizeof(oom) - 1;
		rs->content_type = "application/problem+json";
		return;
	}
	set_body(rs, txt, "application/problem+json");
	if (retry_after_ms >= 0 &&
	    (!strcmp(code, "QUOTA_EXCEEDED") || !strcmp(code, "DUTY_CYCLE_EXHAUSTED")))
		add_header(rs, "retry-after: %lld\r\n", (retry_after_ms + 999) / 1000);
}

void rest_problem(struct rest_response *rs, unsigned status, const char *code, const char *fmt, ...)
{
	char detail[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	problem_json(rs, status, code, detail, -1, NULL);
}

static void problem_of(struct rest_response *rs, const struct api_error *err)
{
	const char *code = err->code ? err->code : "INTERNAL";
	unsigned status = err->http_status >= 400 && err->http_status < 600
				  ? (unsigned)err->http_status
				  : (unsigned)api_status_of(code);
	problem_json(rs, status, code, err->message[0] ? err->message : code, err->retry_after_ms,
		     err->frees_at);
}

void rest_response_release(struct rest_response *rs)
{
	free(rs->owned);
	rs->owned = NULL;
	rs->body = NULL;
	rs->len = 0;
}

static void method_not_allowed(struct rest_response *rs, const struct route *r, enum rest_method m)
{
	char allow[64] = "";
	for (size_t i = 0; i < ARRAY_SIZE(r->ops) && r->ops[i].method; i++) {
		size_t n = strlen(allow);
		snprintf(allow + n, sizeof(allow) - n, "%s%s", n ? ", " : "",
			 method_name(r->ops[i].method));
		if (r->ops[i].method == REST_GET) {
			n = strlen(allow);
			snprintf(allow + n, sizeof(allow) - n, ", HEAD");
		}
	}
	rest_problem(rs, 405, "BAD_REQUEST", "%s is not served on %s (allowed: %s)", method_name(m),
		     r->pattern, allow);
	add_header(rs, "allow: %s\r\n", allow);
}

static void log_answer(const struct rest_call *c, const struct rest_response *rs)
{
	/* the route's pattern, not the path: no device ids in the log */
	const char *who = c->who.key_id[0] ? c->who.key_id : "-";
	const char *sbx = c->route->params[0] == P_SBX ? c->params[0] : "";
	if (rs->status >= 500)
		log_error("rest: %s %s %s (key %s): %u %.*s", method_name(c->op->method),
			  c->route->pattern, sbx, who, rs->status, (int)rs->len, rs->body);
	else if (rs->status >= 400)
		log_info("rest: %s %s %s (key %s): %u %s", method_name(c->op->method),
			 c->route->pattern, sbx, who, rs->status, c->err.code ? c->err.code : "");
	else
		log_debug("rest: %s %s %s (key %s): %u", method_name(c->op->method),
			  c->route->pattern, sbx, who, rs->status);
}

/* Run the operation (its body, if any, is in c->body) and answer. */
static void run(struct rest_call *c, struct rest_response *rs)
{
	if (c->op->fn == op_openapi) {
		rs->status = 200;
		rs->content_type = "application/json";
		rs->body = rest_openapi(&rs->len);
		return;
	}
	if (c->op->fn == op_asyncapi) {
		rs->status = 200;
		rs->content_type = "application/yaml";
		rs->body = rest_asyncapi(&rs->len);
		return;
	}
	if (c->op->fn(c) < 0) {
		problem_of(rs, &c->err);
	} else if (c->raw.body) {
		rs->status = c->op->status;
		rs->owned = c->raw.body;
		rs->body = c->raw.body;
		rs->len = c->raw.len;
		rs->content_type = c->raw.content_type;
		c->raw.body = NULL;
		add_header(rs, "content-disposition: attachment; filename=\"%s\"\r\n",
			   c->raw.filename);
		add_header(rs, "labgw-capture-frames: %u\r\n", c->raw.frames);
		if (c->raw.truncated)
			add_header(rs, "labgw-capture-truncated: true\r\n");
	} else if (!c->result) {
		api_fail(&c->err, "INTERNAL", "out of memory");
		problem_of(rs, &c->err);
	} else {
		char *txt = json_dumps(c->result, JSON_COMPACT);
		if (!txt) {
			api_fail(&c->err, "INTERNAL", "out of memory");
			problem_of(rs, &c->err);
		} else {
			rs->status = c->op->status;
			set_body(rs, txt, "application/json");
		}
	}
	log_answer(c, rs);
}

/* 0 with c->who set; -1 with *rs the refusal */
static int authenticate(struct rest_call *c, const struct rest_request *rq,
			struct rest_response *rs)
{
	static const char challenge[] = "www-authenticate: Bearer realm=\"labgw\"";
	const char *h = rq->authorization;
	if (!h || !*h) {
		rest_problem(rs, 401, "UNAUTHENTICATED",
			     "send the header Authorization: Bearer <key_id>.<secret>");
		add_header(rs, "%s\r\n", challenge);
		return -1;
	}
	if (strncasecmp(h, "Bearer ", 7)) {
		rest_problem(rs, 401, "UNAUTHENTICATED",
			     "the Authorization header must be \"Bearer <key_id>.<secret>\"");
		add_header(rs, "%s, error=\"invalid_request\"\r\n", challenge);
		return -1;
	}
	char key[AUTH_KEY_MAX + 1];
	const char *k = h + 7;
	k += strspn(k, " ");
	size_t n = strlen(k);
	while (n && k[n - 1] == ' ')
		n--;
	if (n > AUTH_KEY_MAX) {
		rest_problem(rs, 401, "UNAUTHENTICATED", "the key is too long");
		add_header(rs, "%s, error=\"invalid_token\"\r\n", challenge);
		return -1;
	}
	memcpy(key, k, n);
	key[n] = '\0';
	struct api_error err = {0};
	int rc = sandboxes_auth(c->d->sandboxes, key, rq->peer, &c->who, &err);
	explicit_bzero(key, sizeof(key));
	if (rc < 0) {
		c->err = err;
		problem_of(rs, &err);
		if (rs->status == 401)
			add_header(rs, "%s, error=\"invalid_token\"\r\n", challenge);
		return -1;
	}
	if (c->who.sbx[0] && !sandboxes_take_request(c->d->sandboxes, c->who.sbx, &err)) {
		c->err = err;
		problem_of(rs, &err);
		return -1;
	}
	return 0;
}

void rest_call_free(struct rest_call *c)
{
	if (!c)
		return;
	json_decref(c->body);
	json_decref(c->result);
	free(c->raw.body);
	free(c->argbuf);
	free(c);
}

enum rest_next rest_call_start(struct labgwd *d, const struct rest_request *rq, bool has_body,
			       struct rest_call **call, struct rest_response *rs)
{
	memset(rs, 0, sizeof(*rs));
	*call = NULL;
	struct rest_call *c = calloc(1, sizeof(*c));
	if (!c) {
		rest_problem(rs, 500, "INTERNAL", "out of memory");
		return REST_ANSWER;
	}
	c->d = d;
	c->err.retry_after_ms = -1;
	for (size_t i = 0; i < ARRAY_SIZE(routes) && !c->route; i++) {
		memset(c->params, 0, sizeof(c->params));
		if (route_match(routes[i].pattern, rq->path, c->params))
			c->route = &routes[i];
	}
	if (!c->route) {
		rest_problem(rs, 404, "NOT_FOUND",
			     "no such API endpoint (see /api/v1/openapi.json)");
		goto answer;
	}
	/* HEAD is GET without the body (http.c leaves it out) */
	enum rest_method m = rq->method == REST_HEAD ? REST_GET : rq->method;
	for (size_t i = 0; i < ARRAY_SIZE(c->route->ops) && c->route->ops[i].method; i++)
		if (c->route->ops[i].method == m)
			c->op = &c->route->ops[i];
	if (!c->op) {
		method_not_allowed(rs, c->route, rq->method);
		goto answer;
	}
	if (!(c->op->flags & OP_PUBLIC) && authenticate(c, rq, rs) < 0) {
		log_info("rest: %s %s from %s: %u %s", method_name(rq->method), c->route->pattern,
			 rq->peer, rs->status, c->err.code ? c->err.code : "UNAUTHENTICATED");
		goto answer;
	}
	if (params_check(c, &c->err) < 0 || args_take(c, rq, &c->err) < 0) {
		problem_of(rs, &c->err);
		log_answer(c, rs);
		goto answer;
	}
	if ((c->op->flags & OP_BODY) && has_body) {
		*call = c;
		return REST_READ_BODY;
	}
	if (c->op->flags & OP_BODY) {
		api_fail(&c->err, "BAD_REQUEST", "this operation needs a JSON object as its body");
		problem_of(rs, &c->err);
		log_answer(c, rs);
		goto answer;
	}
	run(c, rs);
answer:
	rest_call_free(c);
	return REST_ANSWER;
}

void rest_call_finish(struct rest_call *c, const char *body, size_t len, struct rest_response *rs)
{
	memset(rs, 0, sizeof(*rs));
	json_error_t jerr;
	c->body = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!c->body) {
		api_fail(&c->err, "BAD_REQUEST", "the body is not JSON: %s (line %d, column %d)",
			 jerr.text, jerr.line, jerr.column);
	} else if (!json_is_object(c->body)) {
		api_fail(&c->err, "BAD_REQUEST", "the body must be a JSON object");
	} else {
		run(c, rs);
		return;
	}
	problem_of(rs, &c->err);
	log_answer(c, rs);
}
