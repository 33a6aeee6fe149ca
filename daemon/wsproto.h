/* The WebSocket op protocol of DESIGN §7, as pure encode/decode functions
 * (no I/O): what a client sends is parsed into a ws_op; what the server sends
 * is produced as text with `headroom` spare bytes in front (LWS_PRE). */
#ifndef LABGW_WSPROTO_H
#define LABGW_WSPROTO_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WSPROTO_ID_MAX	64
#define WSPROTO_KEY_MAX 512

enum ws_op_kind {
	WS_OP_AUTH,
	WS_OP_SUB,
	WS_OP_UNSUB,
	WS_OP_PUB,
	WS_OP_PING,
};

struct ws_op {
	enum ws_op_kind kind;
	json_t *root;	   /* owns everything below */
	json_t *id;	   /* the client's "id" (string or integer) or NULL */
	const char *key;   /* auth, unless anonymous */
	bool anonymous;	   /* auth: {"anonymous":true}, public topics only */
	const char *topic; /* sub, unsub, pub */
	const char *since; /* sub, optional */
	json_t *payload;   /* pub: an object */
};

/*
 * Parse one client message. Returns 0, or -EINVAL with a reason for the
 * client in err. Even on failure, *id is the message's usable "id" (a new
 * reference, or NULL) so that the error can be answered with "re".
 */
int wsproto_parse(const char *buf, size_t len, struct ws_op *op, json_t **id, char *err,
		  size_t errlen);
void wsproto_op_release(struct ws_op *op);
const char *wsproto_op_name(enum ws_op_kind k);

/* {"op":"res","re":id,"ok":true[,"result":result]}; result is stolen. */
unsigned char *wsproto_res_ok(const json_t *re, json_t *result, size_t headroom, size_t *len);
/* {"op":"res","re":id,"ok":false,"error":{"code","message"[,"retry_after_ms"]}};
 * retry_after_ms < 0 leaves it out. */
unsigned char *wsproto_res_error(const json_t *re, const char *code, const char *message,
				 long long retry_after_ms, size_t headroom, size_t *len);
/* {"op":"gap","dropped":N,"since":"<id of the last frame delivered>"} */
unsigned char *wsproto_gap(uint64_t dropped, const char *since, size_t headroom, size_t *len);
/* {"op":"frame","topic":topic,"frame":<frame_json>} */
unsigned char *wsproto_frame(const char *topic, const char *frame_json, size_t frame_len,
			     size_t headroom, size_t *len);

#endif
