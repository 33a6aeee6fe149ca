#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <libwebsockets.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "daemon.h"
#include "log.h"
#include "metrics.h"
#include "rest.h"
#include "util.h"
#include "ws.h"

#define URL_MAX 1024

/* Headers on every page we serve; over TLS, Strict-Transport-Security too
 * (set by http_server_new: there is one server per process). */
static char security_headers[640];
static const char security_headers_base[] =
	"content-security-policy: default-src 'self'; script-src 'self'; style-src 'self'; "
	"img-src 'self' data:; connect-src 'self' ws: wss:; frame-ancestors 'none'; "
	"base-uri 'none'; form-action 'self'\x0d\x0a"
	"x-content-type-options: nosniff\x0d\x0a"
	"x-frame-options: DENY\x0d\x0a"
	"referrer-policy: no-referrer\x0d\x0a";

struct http_server {
	struct labgwd *d;
	struct lws_context *ctx;
	struct lws_vhost *vh;
	int port;
	lws_retry_bo_t retry;
	struct ws_session *sessions;
	struct http_stats stats;
	bool shutting_down;
	uv_timer_t drain; /* shutdown: wait for close frames, then destroy */
	uint64_t drain_deadline;
	/* sessions with new live frames, written by ws_flush before the
	 * loop polls (frames of timers: written before the loop reads what
	 * clients sent since) and after it (frames of what it read) */
	uv_prepare_t flush_pre;
	uv_check_t flush;
	bool flush_armed;
	struct ws_session *flush_list;
};

/* per HTTP connection, reset for each transaction */
struct http_pss {
	unsigned char *body; /* LWS_PRE headroom, then the body */
	size_t len, sent;
	bool head;  /* HEAD: headers only */
	bool close; /* close the connection after the answer */
	/* a REST request whose body is being read */
	struct rest_call *call;
	struct strbuf rx;
};

struct ws_session **http__flush_list(struct http_server *s)
{
	return &s->flush_list;
}

static void flush_now(struct http_server *s)
{
	uv_check_stop(&s->flush);
	uv_prepare_stop(&s->flush_pre);
	s->flush_armed = false;
	ws_flush(s);
}

static void flush_cb(uv_check_t *c)
{
	flush_now(container_of(c, struct http_server, flush));
}

static void flush_pre_cb(uv_prepare_t *p)
{
	flush_now(container_of(p, struct http_server, flush_pre));
}

void http__flush_arm(struct http_server *s)
{
	if (s->flush_armed)
		return;
	s->flush_armed = true;
	uv_prepare_start(&s->flush_pre, flush_pre_cb);
	uv_check_start(&s->flush, flush_cb);
}

struct labgwd *http__daemon(struct http_server *s)
{
	return s->d;
}

struct http_stats *http__stats(struct http_server *s)
{
	return &s->stats;
}

struct ws_session **http__sessions(struct http_server *s)
{
	return &s->sessions;
}

static void lws_log(int level, const char *line)
{
	char buf[512];
	size_t n = strlen(line);
	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	/* lws prefixes a timestamp; drop it, ours has one */
	const char *p = line;
	if (*p == '[') {
		const char *rb = strchr(p, ']');
		if (rb && (size_t)(rb - line) < n) {
			p = rb + 1;
			while (*p == ' ')
				p++;
		}
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)(n - (size_t)(p - line)), p);
	log_msg(level & LLL_ERR	   ? LOG_LVL_ERROR
		: level & LLL_WARN ? LOG_LVL_WARNING
				   : LOG_LVL_DEBUG,
		"libwebsockets: %s", buf);
}

/* Start a response with a body and the security headers, plus `extra`;
 * the body is written on HTTP_WRITEABLE. */
static int respond(struct lws *wsi, struct http_pss *pss, unsigned status, const char *ctype,
		   const char *body, size_t len, const char *extra)
{
	unsigned char hdr[LWS_PRE + 2048];
	unsigned char *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof(hdr) - 1;
	free(pss->body);
	pss->body = malloc(LWS_PRE + len + 1);
	if (!pss->body)
		return -1;
	memcpy(pss->body + LWS_PRE, body, len);
	pss->len = len;
	pss->sent = 0;
	if (lws_add_http_common_headers(wsi, status, ctype, (lws_filepos_t)len, &p, end))
		return -1;
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)"no-store", 8, &p, end))
		return -1;
	const char *parts[2] = {security_headers, extra};
	for (int i = 0; i < 2; i++) {
		size_t el = parts[i] ? strlen(parts[i]) : 0;
		if ((size_t)(end - p) < el)
			return -1;
		if (el)
			memcpy(p, parts[i], el);
		p += el;
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_callback_on_writable(wsi);
	return 0;
}

static int respond_problem(struct lws *wsi, struct http_pss *pss, unsigned status, const char *code,
			   const char *detail)
{
	json_t *o = json_pack("{s:s,s:s,s:i,s:s}", "type", "about:blank", "title", code, "status",
			      (int)status, "code", code);
	json_t *dj = json_string(detail);
	json_object_set_new(o, "detail", dj ? dj : json_string("(detail not UTF-8)"));
	char *txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!txt)
		return -1;
	int rc = respond(wsi, pss, status, "application/problem+json", txt, strlen(txt), NULL);
	free(txt);
	return rc;
}

static const char *mime_of(const char *path)
{
	static const struct {
		const char *ext, *type;
	} types[] = {
		{".html", "text/html; charset=utf-8"},
		{".js", "text/javascript; charset=utf-8"},
		{".mjs", "text/javascript; charset=utf-8"},
		{".css", "text/css; charset=utf-8"},
		{".json", "application/json"},
		{".svg", "image/svg+xml"},
		{".png", "image/png"},
		{".ico", "image/x-icon"},
		{".woff2", "font/woff2"},
		{".txt", "text/plain; charset=utf-8"},
		{".md", "text/markdown; charset=utf-8"},
		{".yaml", "application/yaml"},
	};
	const char *dot = strrchr(path, '.');
	if (dot && !strchr(dot, '/'))
		for (size_t i = 0; i < ARRAY_SIZE(types); i++)
			if (!strcmp(dot, types[i].ext))
				return types[i].type;
	return "application/octet-stream";
}

/* Map a URL path under web_root; NULL for anything that could escape it. */
static bool static_path(const char *root, const char *url, char *out, size_t outlen)
{
	if (url[0] != '/' || strstr(url, "/.") || strchr(url, '\\'))
		return false; /* no "..", no hidden files */
	int n = snprintf(out, outlen, "%s%s", root, url);
	if (n < 0 || (size_t)n >= outlen - 16)
		return false;
	struct stat st;
	if (stat(out, &st) == 0 && S_ISDIR(st.st_mode)) {
		if (out[n - 1] != '/')
			strcat(out, "/");
		strcat(out, "index.html");
	}
	return true;
}

#define JS_PREFIX "/javascript/"

/* Files under web_root at "/", and Debian's shared JavaScript libraries
 * ([http] javascript_root) at "/javascript/": read-only, GET and HEAD. */
static int serve_static(struct http_server *srv, struct lws *wsi, struct http_pss *pss,
			const char *url)
{
	char path[4096];
	const char *root = srv->d->cfg->web_root;
	const char *js_root = srv->d->cfg->javascript_root;
	if (js_root && js_root[0] && !strncmp(url, JS_PREFIX, strlen(JS_PREFIX))) {
		root = js_root;
		url += strlen(JS_PREFIX) - 1; /* keep the '/' */
	}
	if (!static_path(root, url, path, sizeof(path)))
		return respond_problem(wsi, pss, 404, "NOT_FOUND", "no such page");
	struct stat st;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
		return respond_problem(wsi, pss, 404, "NOT_FOUND", "no such page");
	int rc = lws_serve_http_file(wsi, path, mime_of(path), security_headers,
				     (int)strlen(security_headers));
	if (rc < 0)
		return -1;
	if (rc > 0 && lws_http_transaction_completed(wsi))
		return -1;
	return 0;
}

static enum rest_method request_method(struct lws *wsi)
{
	static const struct {
		enum lws_token_indexes tok;
		enum rest_method m;
	} methods[] = {
		{WSI_TOKEN_GET_URI, REST_GET},	       {WSI_TOKEN_HEAD_URI, REST_HEAD},
		{WSI_TOKEN_POST_URI, REST_POST},       {WSI_TOKEN_PUT_URI, REST_PUT},
		{WSI_TOKEN_PATCH_URI, REST_PATCH},     {WSI_TOKEN_DELETE_URI, REST_DELETE},
		{WSI_TOKEN_OPTIONS_URI, REST_OPTIONS},
	};
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		if (lws_hdr_total_length(wsi, methods[i].tok) > 0)
			return methods[i].m;
	return 0;
}

/* Write a REST answer: the common headers, the security headers, and the
 * ones of the answer. */
static int respond_rest(struct http_server *srv, struct lws *wsi, struct http_pss *pss,
			struct rest_response *rs)
{
	char extra[1024];
	snprintf(extra, sizeof(extra), "%s%s", rs->headers,
		 pss->close ? "connection: close\x0d\x0a" : "");
	if (rs->status >= 400)
		srv->stats.rest_errors++;
	int rc = respond(wsi, pss, rs->status, rs->content_type, rs->body, rs->len, extra);
	rest_response_release(rs);
	return rc;
}

/* The query string as lws decoded it, split into name and value. -1 when
 * it is too long or has too many parameters. */
static int query_args(struct lws *wsi, char *buf, size_t cap, struct rest_arg *args, size_t *nargs)
{
	*nargs = 0;
	int total = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
	if (total <= 0)
		return 0;
	if ((size_t)total >= cap)
		return -1;
	char *p = buf;
	for (int i = 0;; i++) {
		int n = lws_hdr_copy_fragment(wsi, p, (int)(cap - (size_t)(p - buf)),
					      WSI_TOKEN_HTTP_URI_ARGS, i);
		if (n < 0)
			break;
		if (n == 0)
			continue; /* "a=1&&b=2" */
		if (*nargs == REST_ARGS_MAX)
			return -1;
		char *eq = strchr(p, '=');
		args[*nargs].name = p;
		args[*nargs].value = eq ? eq + 1 : p + n;
		if (eq)
			*eq = '\0';
		(*nargs)++;
		p += n + 1;
	}
	return 0;
}

/* A request under /api/v1/: refuse what can be refused from its headers,
 * then either answer now or read the body (LWS_CALLBACK_HTTP_BODY) and
 * answer at LWS_CALLBACK_HTTP_BODY_COMPLETION. */
static int on_rest(struct http_server *srv, struct lws *wsi, struct http_pss *pss, const char *url,
		   enum rest_method method)
{
	struct rest_response rs;
	memset(&rs, 0, sizeof(rs));
	if (!method) {
		rest_problem(&rs, 405, "BAD_REQUEST", "unsupported method");
		return respond_rest(srv, wsi, pss, &rs);
	}
	if (srv->shutting_down) {
		/* the sandbox layer stops right after the front-ends */
		pss->close = true;
		rest_problem(&rs, 503, "INTERNAL", "gateway shutting down");
		return respond_rest(srv, wsi, pss, &rs);
	}
	/* lws reads no chunked request bodies, and takes a POST, PUT or
	 * PATCH without Content-Length for one of 100 MB: whatever follows
	 * on the connection would be read as that body */
	long long clen = -1;
	char num[24];
	int hl = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_CONTENT_LENGTH);
	if (hl > 0) {
		if ((size_t)hl >= sizeof(num) ||
		    lws_hdr_copy(wsi, num, sizeof(num), WSI_TOKEN_HTTP_CONTENT_LENGTH) < 0 ||
		    parse_int(num, 0, INT64_MAX, &clen) < 0) {
			pss->close = true;
			rest_problem(&rs, 400, "BAD_REQUEST", "Content-Length is not a number");
			return respond_rest(srv, wsi, pss, &rs);
		}
	}
	if (lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
		pss->close = true;
		rest_problem(&rs, 411, "BAD_REQUEST",
			     "chunked request bodies are not supported: send Content-Length");
		return respond_rest(srv, wsi, pss, &rs);
	}
	if (clen < 0 && (method == REST_POST || method == REST_PUT || method == REST_PATCH))
		pss->close = true;
	/* an answer sent before the body is read makes lws discard the rest
	 * of it, keeping the connection; beyond this much, we close it */
	if (clen > 16 * REST_BODY_MAX)
		pss->close = true;

	char qbuf[2048];
	struct rest_arg args[REST_ARGS_MAX];
	size_t nargs = 0;
	if (query_args(wsi, qbuf, sizeof(qbuf), args, &nargs) < 0) {
		rest_problem(&rs, 400, "BAD_REQUEST",
			     "query string too long (at most %zu bytes, %d parameters)",
			     sizeof(qbuf) - 1, REST_ARGS_MAX);
		return respond_rest(srv, wsi, pss, &rs);
	}
	char authz[AUTH_KEY_MAX + 64];
	bool has_authz = false;
	int al = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (al > 0) {
		/* an over-long header is passed on cut, and refused as a key */
		has_authz = true;
		if ((size_t)al >= sizeof(authz) ||
		    lws_hdr_copy(wsi, authz, sizeof(authz), WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
			snprintf(authz, sizeof(authz), "Bearer (too long)");
	}
	char peer[64] = "";
	lws_get_peer_simple(wsi, peer, sizeof(peer));
	struct rest_request rq = {
		.method = method,
		.path = url,
		.args = args,
		.nargs = nargs,
		.authorization = has_authz ? authz : NULL,
		.peer = peer,
	};
	struct rest_call *call = NULL;
	enum rest_next next = rest_call_start(srv->d, &rq, clen > 0, &call, &rs);
	explicit_bzero(authz, sizeof(authz));
	if (next == REST_READ_BODY) {
		if (clen > REST_BODY_MAX) {
			rest_call_free(call);
			rest_problem(&rs, 413, "TOO_LARGE", "the body exceeds %d bytes",
				     REST_BODY_MAX);
			return respond_rest(srv, wsi, pss, &rs);
		}
		pss->call = call;
		strbuf_init(&pss->rx, (size_t)clen);
		return 0;
	}
	return respond_rest(srv, wsi, pss, &rs);
}

/* LWS_CALLBACK_HTTP_BODY: collect a REST body */
static int on_body(struct http_server *srv, struct lws *wsi, struct http_pss *pss, const void *in,
		   size_t len)
{
	if (!pss->call)
		return 0; /* answered already: lws discards the rest */
	if (pss->rx.len + len > REST_BODY_MAX) {
		struct rest_response rs;
		memset(&rs, 0, sizeof(rs));
		rest_call_free(pss->call);
		pss->call = NULL;
		strbuf_release(&pss->rx);
		rest_problem(&rs, 413, "TOO_LARGE", "the body exceeds %d bytes", REST_BODY_MAX);
		return respond_rest(srv, wsi, pss, &rs);
	}
	strbuf_append(&pss->rx, in, len);
	return 0;
}

/* LWS_CALLBACK_HTTP_BODY_COMPLETION */
static int on_body_done(struct http_server *srv, struct lws *wsi, struct http_pss *pss)
{
	if (!pss->call) {
		/* answered before the body was read (a refusal, an operation
		 * without body, a static file): lws writes such an answer while
		 * the body still comes in, then discards the rest of it */
		lws_callback_on_writable(wsi);
		return 0;
	}
	struct rest_response rs;
	memset(&rs, 0, sizeof(rs));
	if (pss->rx.failed)
		rest_problem(&rs, 500, "INTERNAL", "out of memory");
	else
		rest_call_finish(pss->call, pss->rx.buf ? pss->rx.buf : "", pss->rx.len, &rs);
	rest_call_free(pss->call);
	pss->call = NULL;
	strbuf_release(&pss->rx);
	return respond_rest(srv, wsi, pss, &rs);
}

static void request_reset(struct http_pss *pss)
{
	free(pss->body);
	pss->body = NULL;
	rest_call_free(pss->call);
	pss->call = NULL;
	strbuf_release(&pss->rx);
	pss->close = false;
	pss->head = false;
}

static int on_http(struct http_server *srv, struct lws *wsi, struct http_pss *pss, const char *url)
{
	srv->stats.http_requests++;
	request_reset(pss);
	enum rest_method method = request_method(wsi);
	pss->head = method == REST_HEAD;
	if (!strncmp(url, REST_PREFIX, strlen(REST_PREFIX)) && strcmp(url, WS_PATH)) {
		srv->stats.rest_requests++;
		return on_rest(srv, wsi, pss, url, method);
	}
	if (method != REST_GET && method != REST_HEAD)
		return respond_problem(wsi, pss, 405, "BAD_REQUEST",
				       "only GET and HEAD are served here");
	if (!strcmp(url, "/healthz")) {
		const char *body = srv->shutting_down ? "{\"status\":\"stopping\"}\n"
						      : "{\"status\":\"ok\"}\n";
		return respond(wsi, pss, srv->shutting_down ? 503 : 200, "application/json", body,
			       strlen(body), NULL);
	}
	if (!strcmp(url, "/metrics")) {
		size_t len;
		char *txt = metrics_render(srv->d, &len);
		if (!txt)
			return respond_problem(wsi, pss, 500, "INTERNAL", "out of memory");
		int rc = respond(wsi, pss, 200, "text/plain; version=0.0.4; charset=utf-8", txt,
				 len, NULL);
		free(txt);
		return rc;
	}
	if (!strcmp(url, WS_PATH))
		return respond_problem(wsi, pss, 400, "BAD_REQUEST",
				       "this is the WebSocket API: connect with subprotocol "
				       "labgw.v1");
	if (!strncmp(url, "/api/", 5))
		return respond_problem(wsi, pss, 404, "NOT_FOUND", "no such API endpoint");
	return serve_static(srv, wsi, pss, url);
}

static bool host_origin_matches(struct lws *wsi, const char *origin)
{
	char host[256];
	if (lws_hdr_copy(wsi, host, sizeof(host), WSI_TOKEN_HOST) <= 0)
		return false;
	const char *o = origin;
	if (!strncmp(o, "http://", 7))
		o += 7;
	else if (!strncmp(o, "https://", 8))
		o += 8;
	else
		return false;
	return !strcasecmp(o, host);
}

static bool origin_allowed(struct http_server *srv, struct lws *wsi)
{
	char origin[256];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN);
	if (n <= 0)
		return true; /* not a browser */
	if (n >= (int)sizeof(origin) ||
	    lws_hdr_copy(wsi, origin, sizeof(origin), WSI_TOKEN_ORIGIN) < 0)
		return false;
	if (host_origin_matches(wsi, origin))
		return true;
	const char *list = srv->d->cfg->allowed_origins;
	size_t ol = strlen(origin);
	for (const char *p = list; *p;) {
		while (*p == ' ')
			p++;
		size_t wl = strcspn(p, " ");
		if (wl == 1 && *p == '*')
			return true;
		if (wl == ol && !strncasecmp(p, origin, ol))
			return true;
		p += wl;
	}
	return false;
}

/* true if the comma-separated Sec-WebSocket-Protocol list offers name
 * (exactly: lws picks the protocol by its full name) */
static bool offers_subprotocol(const char *list, const char *name)
{
	size_t nl = strlen(name);
	for (const char *p = list; *p;) {
		p += strspn(p, " \t,");
		size_t wl = strcspn(p, " \t,");
		if (wl == nl && !strncmp(p, name, nl))
			return true;
		p += wl;
	}
	return false;
}

/* lws_return_http_status() answers an upgrade request with "HTTP/1.0" (at
 * CONFIRM_UPGRADE lws has not recorded the request's version yet) and an
 * HTML body: write a complete HTTP/1.1 problem answer instead. */
static int refuse_upgrade(struct lws *wsi, unsigned status, const char *code, const char *why)
{
	json_t *o = json_pack("{s:s,s:s,s:i,s:s,s:s}", "type", "about:blank", "title", code,
			      "status", (int)status, "code", code, "detail", why);
	char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (!body)
		return -1;
	unsigned char buf[LWS_PRE + 4096];
	int n = snprintf((char *)buf + LWS_PRE, sizeof(buf) - LWS_PRE,
			 "HTTP/1.1 %u %s\r\nserver: labgwd\r\n"
			 "content-type: application/problem+json\r\n"
			 "content-length: %zu\r\nconnection: close\r\n%s\r\n%s",
			 status,
			 status == 403	 ? "Forbidden"
			 : status == 404 ? "Not Found"
			 : status == 503 ? "Service Unavailable"
					 : "Bad Request",
			 strlen(body), security_headers, body);
	free(body);
	if (n < 0 || (size_t)n >= sizeof(buf) - LWS_PRE)
		return -1;
	lws_write(wsi, buf + LWS_PRE, (size_t)n, LWS_WRITE_HTTP_HEADERS);
	return 1;
}

/* 0 lets the upgrade proceed; > 0 means we answered with an HTTP error. */
static int confirm_upgrade(struct http_server *srv, struct lws *wsi, const char *to)
{
	char url[URL_MAX], proto[256];
	const char *why = NULL, *code = "BAD_REQUEST";
	unsigned status = 400;
	if (lws_hdr_copy(wsi, url, sizeof(url), WSI_TOKEN_GET_URI) <= 0 || strcmp(url, WS_PATH)) {
		status = 404;
		code = "NOT_FOUND";
		why = "WebSocket endpoint is " WS_PATH;
	} else if (strcasecmp(to, "websocket")) {
		why = "only WebSocket upgrades are served";
	} else if (lws_hdr_copy(wsi, proto, sizeof(proto), WSI_TOKEN_PROTOCOL) <= 0 ||
		   !offers_subprotocol(proto, WS_PROTOCOL_NAME)) {
		why = "subprotocol " WS_PROTOCOL_NAME " required (Sec-WebSocket-Protocol)";
	} else if (!origin_allowed(srv, wsi)) {
		status = 403;
		code = "FORBIDDEN";
		why = "Origin not allowed ([http] allowed_origins)";
	} else if (srv->shutting_down) {
		status = 503;
		code = "INTERNAL";
		why = "gateway shutting down";
	} else if (srv->stats.sessions >= (uint64_t)srv->d->cfg->http_max_sessions) {
		status = 503;
		code = "QUOTA_EXCEEDED";
		why = "too many WebSocket sessions ([http] max_sessions)";
	}
	if (!why)
		return 0;
	srv->stats.sessions_refused++;
	log_info("websocket upgrade refused (%u): %s", status, why);
	return refuse_upgrade(wsi, status, code, why);
}

/* The answer is out: next request, or close (see on_rest). An answer
 * sent before its request's body was read makes lws discard the rest of
 * the body first. */
static int finish_transaction(struct lws *wsi, struct http_pss *pss)
{
	if (pss->close)
		return -1;
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

static int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			 size_t len)
{
	struct http_pss *pss = user;
	struct http_server *srv = lws_context_user(lws_get_context(wsi));
	switch (reason) {
	case LWS_CALLBACK_HTTP: {
		char url[URL_MAX];
		snprintf(url, sizeof(url), "%.*s", (int)(len < URL_MAX ? len : URL_MAX - 1),
			 (const char *)in);
		if (!in || !len)
			snprintf(url, sizeof(url), "/");
		return on_http(srv, wsi, pss, url);
	}
	case LWS_CALLBACK_HTTP_WRITEABLE: {
		if (!pss->body)
			return 0;
		if (pss->head) {
			free(pss->body);
			pss->body = NULL;
			return finish_transaction(wsi, pss);
		}
		size_t chunk = pss->len - pss->sent;
		if (chunk > 16384)
			chunk = 16384;
		bool last = pss->sent + chunk == pss->len;
		/* the bytes before the chunk are sent already: lws may use them
		 * as its LWS_PRE headroom */
		int n = lws_write(wsi, pss->body + LWS_PRE + pss->sent, chunk,
				  last ? LWS_WRITE_HTTP_FINAL : LWS_WRITE_HTTP);
		if (n < (int)chunk)
			return -1;
		pss->sent += chunk;
		if (!last) {
			lws_callback_on_writable(wsi);
			return 0;
		}
		free(pss->body);
		pss->body = NULL;
		return finish_transaction(wsi, pss);
	}
	case LWS_CALLBACK_HTTP_BODY:
		return on_body(srv, wsi, pss, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		return on_body_done(srv, wsi, pss);
	case LWS_CALLBACK_HTTP_CONFIRM_UPGRADE:
		return confirm_upgrade(srv, wsi, in ? (const char *)in : "");
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (pss)
			request_reset(pss);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}

static const struct lws_protocols protocols[] = {
	{"http", http_callback, sizeof(struct http_pss), 0, 0, NULL, 0},
	/* rx_buffer_size is allocated per connection: client messages are
	 * small, and longer ones arrive in fragments that ws.c joins;
	 * tx_packet_size: lws sends at most this much per send(), else the
	 * rx buffer size (a 1 KiB limit would split every larger frame) */
	{WS_PROTOCOL_NAME, ws_callback, sizeof(void *), 1024, 0, NULL, 16384},
	{NULL, NULL, 0, 0, 0, NULL, 0},
};

/* The certificate and key of [http] load and belong together: checked
 * here, with OpenSSL's reason, because libwebsockets would start without
 * its TLS listener. */
static bool tls_pair_ok(const struct config *cfg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	const char *what = "tls_cert";
	bool ok = ctx && SSL_CTX_use_certificate_chain_file(ctx, cfg->http_tls_cert) == 1;
	if (ok) {
		what = "tls_key";
		ok = SSL_CTX_use_PrivateKey_file(ctx, cfg->http_tls_key, SSL_FILETYPE_PEM) == 1 &&
		     SSL_CTX_check_private_key(ctx) == 1;
	}
	if (!ok) {
		char err[256];
		ERR_error_string_n(ERR_get_error(), err, sizeof(err));
		log_error("cannot serve HTTPS: [http] %s %s: %s", what,
			  !strcmp(what, "tls_cert") ? cfg->http_tls_cert : cfg->http_tls_key, err);
	}
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return ok;
}

struct http_server *http_server_new(struct labgwd *d)
{
	const struct config *cfg = d->cfg;
	if (cfg->http_tls_cert[0] && !tls_pair_ok(cfg))
		return NULL;
	struct http_server *srv = calloc(1, sizeof(*srv));
	if (!srv)
		return NULL;
	srv->d = d;
	lws_set_log_level(LLL_ERR | LLL_WARN | (log_get_level() >= LOG_LVL_DEBUG ? LLL_NOTICE : 0),
			  lws_log);
	uint64_t idle_s = cfg->ws_idle_timeout_ms / 1000;
	srv->retry.secs_since_valid_ping = (uint16_t)(idle_s / 2 ? idle_s / 2 : 1);
	srv->retry.secs_since_valid_hangup = (uint16_t)(idle_s > 65535 ? 65535 : idle_s);

	struct lws_context_creation_info info;
	memset(&info, 0, sizeof(info));
	void *loops[1] = {d->loop};
	info.foreign_loops = loops;
	info.options = LWS_SERVER_OPTION_LIBUV | LWS_SERVER_OPTION_VALIDATE_UTF8 |
		       LWS_SERVER_OPTION_FAIL_UPON_UNABLE_TO_BIND |
		       LWS_SERVER_OPTION_UV_NO_SIGSEGV_SIGFPE_SPIN;
	bool any = !strcmp(cfg->http_host, "0.0.0.0") || !strcmp(cfg->http_host, "::") ||
		   !cfg->http_host[0];
	if (!strchr(cfg->http_host, ':') && strcmp(cfg->http_host, "::"))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.iface = any ? NULL : cfg->http_host;
	info.port = cfg->http_port;
	info.protocols = protocols;
	info.user = srv;
	info.pcontext = &srv->ctx;
	info.retry_and_idle_policy = &srv->retry;
	info.server_string = "labgwd";
	info.timeout_secs = 20;
	info.max_http_header_data = 8192;
	snprintf(security_headers, sizeof(security_headers), "%s%s", security_headers_base,
		 cfg->http_tls_cert[0] ? "strict-transport-security: max-age=31536000\x0d\x0a"
				       : "");
	if (cfg->http_tls_cert[0]) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = cfg->http_tls_cert;
		info.ssl_private_key_filepath = cfg->http_tls_key;
		/* TLS 1.2 or later */
		info.ssl_cipher_list = LABGW_TLS12_CIPHERS;
		info.ssl_options_set = SSL_OP_NO_SSLv3 | SSL_OP_NO_TLSv1 | SSL_OP_NO_TLSv1_1 |
				       SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE;
	}
	srv->ctx = lws_create_context(&info);
	if (!srv->ctx) {
		if (cfg->http_tls_cert[0])
			log_error("cannot serve HTTPS on %s:%d (address in use, not an address of "
				  "this machine, or [http] tls_cert %s / tls_key %s unreadable or "
				  "not a matching pair?)",
				  cfg->http_host, cfg->http_port, cfg->http_tls_cert,
				  cfg->http_tls_key);
		else
			log_error(
				"cannot serve HTTP on %s:%d (address in use, or not an address of "
				"this machine?)",
				cfg->http_host, cfg->http_port);
		free(srv);
		return NULL;
	}
	uv_check_init(d->loop, &srv->flush);
	uv_prepare_init(d->loop, &srv->flush_pre);
	srv->vh = lws_get_vhost_by_name(srv->ctx, "default");
	srv->port = srv->vh ? lws_get_vhost_listen_port(srv->vh) : cfg->http_port;
	return srv;
}

int http_server_port(const struct http_server *s)
{
	return s->port;
}

void http_server_get_stats(const struct http_server *s, struct http_stats *st)
{
	*st = s->stats;
	st->ws_dropped += ws_live_dropped((struct http_server *)s);
}

static void drain_cb(uv_timer_t *t)
{
	struct http_server *s = container_of(t, struct http_server, drain);
	if (s->sessions && uv_now(t->loop) < s->drain_deadline)
		return;
	uv_timer_stop(t);
	uv_close((uv_handle_t *)t, NULL);
	/* lws closes what is left and frees itself as its handles close in
	 * the loop; s->ctx becomes NULL then */
	lws_context_destroy(s->ctx);
}

void http_server_shutdown(struct http_server *s)
{
	if (!s || s->shutting_down)
		return;
	s->shutting_down = true;
	/* sessions get their 1001 close frame before the context goes */
	ws_close_all(s);
	ws_flush(s);
	uv_close((uv_handle_t *)&s->flush, NULL);
	uv_close((uv_handle_t *)&s->flush_pre, NULL);
	uv_timer_init(s->d->loop, &s->drain);
	s->drain_deadline = uv_now(s->d->loop) + 500;
	uv_timer_start(&s->drain, drain_cb, 0, 20);
}

void http_server_finish(struct http_server *s)
{
	/* with a foreign loop, lws completes its destruction in a second call
	 * once the loop has stopped; its last handles close in the next run */
	if (s && s->ctx)
		lws_context_destroy(s->ctx);
}

void http_server_free(struct http_server *s)
{
	if (!s)
		return;
	if (s->ctx)
		log_error("internal: HTTP server freed before libwebsockets finished");
	free(s);
}
