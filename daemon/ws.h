/* WebSocket API sessions (DESIGN §7): the labgw.v1 op protocol on top of
 * libwebsockets. Internal to the HTTP front-end. */
#ifndef LABGW_WS_H
#define LABGW_WS_H

#include <libwebsockets.h>
#include <stdbool.h>

#include "http.h"

#define WS_PROTOCOL_NAME "labgw.v1"
#define WS_PATH		 "/api/v1/ws"

/* Close codes of DESIGN §7 */
#define WS_CLOSE_UNAUTHENTICATED 4401
#define WS_CLOSE_FORBIDDEN	 4403
#define WS_CLOSE_QUOTA		 4429
#define WS_CLOSE_PROTOCOL	 4400

struct ws_session;

/* The lws protocol callback of "labgw.v1". */
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		size_t len);
/* Close the sessions of a key that is no longer valid (4401). */
void ws_key_gone(struct http_server *s, const char *key_id);
/* Frames dropped so far at the queues of the sessions still open. */
uint64_t ws_live_dropped(struct http_server *s);
/* Ask every session to close with 1001 (going away). */
void ws_close_all(struct http_server *s);
/* Write the live frames of the sessions woken in this loop iteration
 * (http.c calls it from its uv_check handle, after the poll phase). */
void ws_flush(struct http_server *s);

/* Shared with http.c */
struct labgwd *http__daemon(struct http_server *s);
struct http_stats *http__stats(struct http_server *s);
struct ws_session **http__sessions(struct http_server *s);
/* The sessions waiting for ws_flush, and arming it for this iteration. */
struct ws_session **http__flush_list(struct http_server *s);
void http__flush_arm(struct http_server *s);

#endif
