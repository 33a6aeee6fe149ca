/* HTTP and WebSocket front-end on libwebsockets, on the daemon's own libuv
 * loop (foreign loop; no second thread). Serves static files from web_root,
 * /healthz, /metrics, the REST API under /api/v1/ (rest.c) and the WebSocket
 * API at /api/v1/ws (ws.c). */
#ifndef LABGW_HTTP_H
#define LABGW_HTTP_H

#include <stdint.h>

struct labgwd;
struct http_server;

struct http_stats {
	uint64_t sessions;	   /* WebSocket sessions now */
	uint64_t sessions_total;   /* accepted since start */
	uint64_t sessions_refused; /* upgrades refused (limits, origin, path) */
	uint64_t ws_messages_in;   /* client messages received */
	uint64_t ws_frames_out;	   /* frame messages sent */
	uint64_t ws_dropped;	   /* frames dropped at full session queues */
	uint64_t ws_gaps;	   /* gap notices sent */
	uint64_t ws_errors;	   /* error answers and protocol closes */
	uint64_t http_requests;	   /* plain HTTP requests */
	uint64_t rest_requests;	   /* of them, under /api/v1/ */
	uint64_t rest_errors;	   /* REST answers with status >= 400 */
};

/* Listen on [http] listen. NULL on failure (logged). */
struct http_server *http_server_new(struct labgwd *d);
int http_server_port(const struct http_server *s);
void http_server_get_stats(const struct http_server *s, struct http_stats *st);
/* Close every session with 1001 and release libwebsockets; its handles
 * close while the loop runs on. */
void http_server_shutdown(struct http_server *s);
/* After shutdown, once the loop has stopped; run the loop once more after. */
void http_server_finish(struct http_server *s);
/* After finish and that last run. */
void http_server_free(struct http_server *s);

#endif
