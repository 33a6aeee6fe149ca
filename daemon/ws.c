#include "ws.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "daemon.h"
#include "history.h"
#include "sandbox.h"
#include "log.h"
#include "policy.h"
#include "topic.h"
#include "util.h"
#include "wsproto.h"

/* Answers waiting to be written. The client cannot make this grow without
 * bound: past WS_REPLY_PAUSE answers we stop reading from it. */
#define WS_REPLY_PAUSE 64
/* Live frames written per writable callback at most. */
#define WS_WRITE_BURST 32
/* Bytes a session's socket may hold not yet sent. The kernel would take
 * megabytes from us (the send buffer grows to tcp_wmem's maximum) for a
 * client that reads slowly, and a pong or close frame written after them
 * would wait until the client has read them all: seconds, past its ping
 * timeout. Held back, the backlog waits in the session's queue (bounded by
 * send_queue, with gap notices), which control frames overtake. */
#define WS_NOTSENT_LOWAT (64 * 1024)

struct reply {
	unsigned char *buf; /* LWS_PRE headroom, then len bytes */
	size_t len;
	uint64_t seq; /* of a replayed frame */
	struct reply *next;
};

struct ws_session {
	struct http_server *srv;
	struct lws *wsi;
	struct bus_sub *sub;
	bool authed;
	struct principal who;
	char peer[64];
	/* limits, fixed at connect */
	size_t max_message;
	size_t max_subs;
	/* the message being received */
	struct strbuf rx;
	bool rx_open;
	struct reply *replies, **replies_tail;
	unsigned nreplies;
	bool rx_paused;
	uint64_t gap;	      /* drops to announce before the next frame */
	struct bus_msg *held; /* popped, to be written after the gap notice */
	char last_id[FRAME_ID_MAX + 24];
	/* a replay (`sub` with `since`) in progress: frames of sbx after
	 * `cursor` up to `until` matching `filter`, fetched in chunks */
	struct {
		bool active;
		char *filter; /* allocated: most sessions never replay */
		uint64_t cursor, until;
		struct reply *chunk, **chunk_tail;
		unsigned chunk_n;
	} replay;
	bool flush_queued; /* in the server's flush list */
	struct ws_session *flush_next;
	int close_code; /* > 0: close at the next writable */
	char close_reason[100];
	struct ws_session *next, *prev;
};

struct pss {
	struct ws_session *s;
};

static void close_later(struct ws_session *s, int code, const char *reason);

static void queue_reply(struct ws_session *s, unsigned char *buf, size_t len)
{
	if (!buf) {
		close_later(s, LWS_CLOSE_STATUS_UNEXPECTED_CONDITION, "out of memory");
		return;
	}
	struct reply *r = malloc(sizeof(*r));
	if (!r) {
		free(buf);
		return;
	}
	r->buf = buf;
	r->len = len;
	r->seq = 0;
	r->next = NULL;
	*s->replies_tail = r;
	s->replies_tail = &r->next;
	s->nreplies++;
	if (s->nreplies >= WS_REPLY_PAUSE && !s->rx_paused) {
		s->rx_paused = true;
		lws_rx_flow_control(s->wsi, 0);
	}
	lws_callback_on_writable(s->wsi);
}

static void reply_ok(struct ws_session *s, const json_t *re, json_t *result)
{
	size_t len = 0;
	unsigned char *b = wsproto_res_ok(re, result, LWS_PRE, &len);
	queue_reply(s, b, len);
}

static void reply_error(struct ws_session *s, const json_t *re, const char *code, const char *msg,
			long long retry_after_ms)
{
	size_t len = 0;
	http__stats(s->srv)->ws_errors++;
	unsigned char *b = wsproto_res_error(re, code, msg, retry_after_ms, LWS_PRE, &len);
	queue_reply(s, b, len);
}

/* Close with a code and reason from outside the receive path. Returning -1
 * from the WRITEABLE callback after lws_close_reason() closes without a
 * close frame in lws 4.1, while the TIMER callback sends it, so the close
 * is taken there, at once. */
static void close_later(struct ws_session *s, int code, const char *reason)
{
	if (s->close_code)
		return;
	s->close_code = code;
	snprintf(s->close_reason, sizeof(s->close_reason), "%s", reason);
	lws_close_reason(s->wsi, (enum lws_close_status)code, (unsigned char *)s->close_reason,
			 strlen(s->close_reason));
	lws_set_timer_usecs(s->wsi, 1);
	/* lws (4.1, libuv) re-arms its timer only when it services something:
	 * called from outside an lws callback (shutdown), the timer would wait
	 * for unrelated traffic. A writable request makes lws service now. */
	lws_callback_on_writable(s->wsi);
}

/* A live frame for an idle queue. Rather than ask lws for a writable
 * callback (two epoll_ctl calls and a loop round per frame and session,
 * most of the fan-out's cost), the session joins the flush list, written
 * directly after this iteration's poll phase (ws_flush). */
static void bus_wake(struct bus_sub *sub, void *user_data)
{
	struct ws_session *s = user_data;
	if (s->flush_queued)
		return;
	struct ws_session **head = http__flush_list(s->srv);
	s->flush_queued = true;
	s->flush_next = *head;
	*head = s;
	http__flush_arm(s->srv);
}

/* {"op":"auth","anonymous":true}: the public aggregates for kiosks, which
 * have no key; sandboxes_may_read() keeps such a session to labgw/v1/pub/ */
static void authenticate_anonymous(struct ws_session *s, const json_t *re)
{
	memset(&s->who, 0, sizeof(s->who));
	s->who.anonymous = true;
	s->authed = true;
	if (!s->close_code)
		lws_set_timer_usecs(s->wsi, LWS_SET_TIMER_USEC_CANCEL);
	log_info("ws %s: anonymous (reads labgw/v1/pub/ only)", s->peer);
	reply_ok(s, re,
		 json_pack("{s:n,s:n,s:[],s:b}", "key_id", "sandbox", "rights", "anonymous", 1));
}

static bool authenticate(struct ws_session *s, const char *key, const json_t *re)
{
	struct principal who;
	struct api_error err;
	struct labgwd *d = http__daemon(s->srv);
	if (sandboxes_auth(d->sandboxes, key, s->peer, &who, &err) < 0) {
		log_info("ws %s: authentication refused: %s", s->peer, err.message);
		http__stats(s->srv)->ws_errors++;
		close_later(s,
			    strcmp(err.code, "QUOTA_EXCEEDED") ? WS_CLOSE_UNAUTHENTICATED
							       : WS_CLOSE_QUOTA,
			    err.message);
		return false;
	}
	s->who = who;
	s->authed = true;
	if (!s->close_code)
		lws_set_timer_usecs(s->wsi, LWS_SET_TIMER_USEC_CANCEL);
	log_info("ws %s: authenticated as key %s", s->peer, who.key_id);
	if (re)
		reply_ok(s, re,
			 json_pack("{s:s,s:o,s:o}", "key_id", who.key_id, "sandbox",
				   who.sbx[0] ? json_string(who.sbx) : json_null(), "rights",
				   rights_to_json(who.rights, who.tx_techs)));
	return true;
}

/* Frames from the history for the running replay, a chunk at a time. */
static int replay_frame(void *ud, uint64_t seq, const char *topic, const char *json)
{
	struct ws_session *s = ud;
	if (seq > s->replay.until)
		return 1; /* live from here: the subscription has it */
	s->replay.cursor = seq;
	if (!sandboxes_may_receive(&s->who, topic))
		return 0;
	struct reply *r = malloc(sizeof(*r));
	if (!r)
		return 1;
	r->buf = wsproto_frame(topic, json, strlen(json), LWS_PRE, &r->len);
	r->seq = seq;
	r->next = NULL;
	if (!r->buf) {
		free(r);
		return 1;
	}
	*s->replay.chunk_tail = r;
	s->replay.chunk_tail = &r->next;
	s->replay.chunk_n++;
	return 0;
}

/* The next replayed frame, fetching the history a chunk at a time; NULL
 * when the replay is over (the subscription carries on live). */
static struct reply *replay_next(struct ws_session *s)
{
	struct labgwd *d = http__daemon(s->srv);
	while (s->replay.active && !s->replay.chunk) {
		uint64_t before = s->replay.cursor;
		s->replay.chunk_tail = &s->replay.chunk;
		int n = history_replay(d->history, s->who.sbx, s->replay.cursor, s->replay.filter,
				       64, replay_frame, s);
		/* over when nothing newer is left up to `until` */
		if (n <= 0 || s->replay.cursor == before || s->replay.cursor >= s->replay.until)
			s->replay.active = s->replay.chunk != NULL;
	}
	struct reply *r = s->replay.chunk;
	if (r) {
		s->replay.chunk = r->next;
		if (!s->replay.chunk) {
			s->replay.chunk_tail = &s->replay.chunk;
			if (s->replay.cursor >= s->replay.until)
				s->replay.active = false;
		}
		s->replay.chunk_n--;
	}
	return r;
}

static void op_sub(struct ws_session *s, const struct ws_op *op)
{
	struct labgwd *d = http__daemon(s->srv);
	struct api_error err;
	if (!topic_filter_valid(op->topic)) {
		unsigned levels = 1;
		for (const char *c = op->topic; *c; c++)
			levels += *c == '/';
		char msg[128];
		if (levels > TOPIC_MAX_LEVELS)
			snprintf(msg, sizeof(msg), "topic filter has %u levels; at most %d", levels,
				 TOPIC_MAX_LEVELS);
		else
			snprintf(msg, sizeof(msg),
				 "not a valid topic filter ('+' and a final '#' "
				 "only as whole levels)");
		reply_error(s, op->id, "BAD_REQUEST", msg, -1);
		return;
	}
	if (!sandboxes_may_read(d->sandboxes, &s->who, op->topic, &err)) {
		reply_error(s, op->id, err.code, err.message, -1);
		return;
	}
	uint64_t since = 0;
	if (op->since) {
		char prefix[64];
		snprintf(prefix, sizeof(prefix), "labgw/v1/sbx/%s/", s->who.sbx);
		if (!s->who.sbx[0] || !topic_filter_within(op->topic, prefix)) {
			reply_error(s, op->id, "BAD_REQUEST",
				    "history is kept for a sandbox's own topics "
				    "(labgw/v1/sbx/{sbx}/...): replay needs a sandbox key",
				    -1);
			return;
		}
		if (history_parse_id(d->cfg->gw_id, op->since, &since) < 0) {
			reply_error(s, op->id, "BAD_REQUEST",
				    "\"since\" is the id of a frame of this gateway", -1);
			return;
		}
		if (s->replay.active) {
			reply_error(s, op->id, "CONFLICT", "a replay is running in this session",
				    -1);
			return;
		}
	}
	if (bus_sub_filter_count(s->sub) >= s->max_subs && !bus_sub_has(s->sub, op->topic)) {
		char msg[96];
		snprintf(msg, sizeof(msg), "at most %zu subscriptions per session", s->max_subs);
		reply_error(s, op->id, "QUOTA_EXCEEDED", msg, -1);
		return;
	}
	/* answer first: retained frames for the filter follow the answer */
	int rc = bus_sub_add(s->sub, op->topic);
	if (rc < 0 && rc != -EEXIST) {
		reply_error(s, op->id, "INTERNAL", "could not subscribe", -1);
		return;
	}
	json_t *result = json_pack("{s:s}", "topic", op->topic);
	if (rc == -EEXIST)
		json_object_set_new(result, "existed", json_true());
	if (op->since) {
		/* frames up to now come from the history, later ones from the
		 * subscription just made: no gap, no duplicate */
		char *filter = strdup(op->topic);
		if (!filter) {
			reply_error(s, op->id, "INTERNAL", "out of memory", -1);
			json_decref(result);
			return;
		}
		free(s->replay.filter);
		s->replay.filter = filter;
		s->replay.active = true;
		s->replay.cursor = since;
		s->replay.until = d->seq;
		json_object_set_new(result, "replay", json_true());
	}
	reply_ok(s, op->id, result);
}

static void op_unsub(struct ws_session *s, const struct ws_op *op)
{
	if (bus_sub_remove(s->sub, op->topic) < 0) {
		reply_error(s, op->id, "NOT_FOUND", "no such subscription in this session", -1);
		return;
	}
	reply_ok(s, op->id, json_pack("{s:s}", "topic", op->topic));
}

static void op_pub(struct ws_session *s, const struct ws_op *op)
{
	struct policy_result res;
	struct labgwd *d = http__daemon(s->srv);
	if (s->who.anonymous) {
		reply_error(s, op->id, "FORBIDDEN", "without a key nothing can be published", -1);
		return;
	}
	if (policy_submit(d->policy, &s->who, op->topic, op->payload, &res) < 0) {
		reply_error(s, op->id, res.code, res.message, res.retry_after_ms);
		return;
	}
	reply_ok(s, op->id, res.result);
}

static void handle_message(struct ws_session *s, const char *buf, size_t len)
{
	struct ws_op op;
	json_t *id = NULL;
	char err[256];
	http__stats(s->srv)->ws_messages_in++;
	if (wsproto_parse(buf, len, &op, &id, err, sizeof(err)) < 0) {
		reply_error(s, id, "BAD_REQUEST", err, -1);
		json_decref(id);
		return;
	}
	json_decref(id);
	if (!s->authed && op.kind != WS_OP_AUTH) {
		http__stats(s->srv)->ws_errors++;
		close_later(s, WS_CLOSE_UNAUTHENTICATED, "authenticate first: {\"op\":\"auth\"}");
		wsproto_op_release(&op);
		return;
	}
	struct api_error qerr;
	if (op.kind != WS_OP_AUTH && op.kind != WS_OP_PING && s->who.sbx[0] &&
	    !sandboxes_take_request(http__daemon(s->srv)->sandboxes, s->who.sbx, &qerr)) {
		reply_error(s, op.id, qerr.code, qerr.message, qerr.retry_after_ms);
		wsproto_op_release(&op);
		return;
	}
	switch (op.kind) {
	case WS_OP_AUTH:
		if (s->authed)
			reply_error(s, op.id, "CONFLICT", "already authenticated", -1);
		else if (op.anonymous)
			authenticate_anonymous(s, op.id ? op.id : json_null());
		else
			authenticate(s, op.key, op.id ? op.id : json_null());
		break;
	case WS_OP_SUB:
		op_sub(s, &op);
		break;
	case WS_OP_UNSUB:
		op_unsub(s, &op);
		break;
	case WS_OP_PUB:
		op_pub(s, &op);
		break;
	case WS_OP_PING:
		reply_ok(s, op.id, NULL);
		break;
	}
	wsproto_op_release(&op);
}

static int on_receive(struct ws_session *s, const char *in, size_t len)
{
	struct lws *wsi = s->wsi;
	if (lws_frame_is_binary(wsi)) {
		static const char why[] = "binary messages are not supported; send JSON text";
		http__stats(s->srv)->ws_errors++;
		lws_close_reason(wsi, WS_CLOSE_PROTOCOL, (unsigned char *)why, sizeof(why) - 1);
		return -1;
	}
	if (lws_is_first_fragment(wsi)) {
		s->rx.len = 0;
		s->rx_open = true;
	}
	if (s->rx.len + len > s->max_message) {
		char why[96];
		int n = snprintf(why, sizeof(why), "message exceeds the limit of %zu bytes",
				 s->max_message);
		http__stats(s->srv)->ws_errors++;
		lws_close_reason(wsi, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, (unsigned char *)why,
				 (size_t)n);
		return -1;
	}
	strbuf_append(&s->rx, in, len);
	if (s->rx.failed)
		return -1;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	s->rx_open = false;
	handle_message(s, s->rx.buf, s->rx.len);
	/* keep big buffers from lingering after one large message */
	if (s->rx.cap > 16384) {
		strbuf_release(&s->rx);
		strbuf_init(&s->rx, 1024);
	}
	return 0;
}

static int write_buf(struct ws_session *s, unsigned char *buf, size_t len)
{
	int n = lws_write(s->wsi, buf + LWS_PRE, len, LWS_WRITE_TEXT);
	return n < (int)len ? -1 : 0;
}

/* Make s->held the next frame this session may receive (gaps counted on
 * the way); false when there is neither a frame nor a gap to send. */
static bool next_live(struct ws_session *s)
{
	while (!s->held) {
		uint64_t dropped = 0;
		s->held = bus_sub_pop(s->sub, &dropped);
		s->gap += dropped;
		if (!s->held)
			break;
		/* a key without observe (or rx) gets nothing of that part */
		if (!sandboxes_may_receive(&s->who, s->held->topic)) {
			bus_msg_unref(s->held);
			s->held = NULL;
		}
	}
	return s->gap || s->held;
}

/* Write the gap notice if one is due, else the held frame. */
static int write_live(struct ws_session *s, struct http_stats *st)
{
	int rc;
	if (s->gap) {
		size_t len;
		unsigned char *b = wsproto_gap(s->gap, s->last_id, LWS_PRE, &len);
		rc = b ? write_buf(s, b, len) : -1;
		free(b);
		st->ws_gaps++;
		s->gap = 0;
		return rc;
	}
	struct bus_msg *m = s->held;
	s->held = NULL;
	if (!m->ws_buf)
		m->ws_buf = wsproto_frame(m->topic, m->frame->json, m->frame->json_len, LWS_PRE,
					  &m->ws_len);
	rc = m->ws_buf ? write_buf(s, m->ws_buf, m->ws_len) : -1;
	size_t idl = strnlen(m->frame->id, sizeof(s->last_id) - 1);
	memcpy(s->last_id, m->frame->id, idl);
	s->last_id[idl] = '\0';
	bus_msg_unref(m);
	st->ws_frames_out++;
	return rc;
}

/* The session socket's limit of unsent bytes (WS_NOTSENT_LOWAT). */
static void limit_unsent(struct ws_session *s)
{
	int v = WS_NOTSENT_LOWAT;
	lws_sockfd_type fd = lws_get_socket_fd(s->wsi);
	if (fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &v, sizeof(v)) < 0)
		log_debug("ws %s: TCP_NOTSENT_LOWAT: %s", s->peer, strerror(errno));
}

/* TCP_CORK on the session's socket; false where it does not apply. */
static bool cork(struct lws *wsi, bool on)
{
	int v = on;
	lws_sockfd_type fd = lws_get_socket_fd(wsi);
	return fd >= 0 && setsockopt(fd, IPPROTO_TCP, TCP_CORK, &v, sizeof(v)) == 0;
}

/* Live frames: several at a time while the socket takes them whole, which
 * saves a poll round per frame; a gap notice always goes before its frame.
 * A write the socket did not take whole is buffered by lws, which then
 * waits for writable itself (lws_partial_buffered): the burst stops there,
 * so lws never holds more than one frame and the session's queue, bounded
 * by send_queue, is what fills up behind a slow client. */
static int write_live_burst(struct ws_session *s, struct http_stats *st)
{
	bool corked = false;
	int rc = 0;
	for (int n = 0; n < WS_WRITE_BURST && rc == 0; n++) {
		if (lws_partial_buffered(s->wsi) || !next_live(s))
			break;
		/* from the second frame on, hold TCP segments until the burst
		 * ends: one segment for a burst of small frames instead of one
		 * each (loopback or not, that is most of the kernel's cost per
		 * frame) */
		if (n == 1)
			corked = cork(s->wsi, true);
		rc = write_live(s, st);
	}
	if (corked)
		cork(s->wsi, false);
	return rc;
}

void ws_flush(struct http_server *srv)
{
	struct http_stats *st = http__stats(srv);
	struct ws_session **head = http__flush_list(srv);
	while (*head) {
		struct ws_session *s = *head;
		*head = s->flush_next;
		s->flush_queued = false;
		s->flush_next = NULL;
		if (s->close_code)
			continue;
		/* answers and replayed frames go first, from the writable
		 * callback (a `sub` queues its answer after the retained frames
		 * it woke the session for) */
		if (s->replies || s->replay.active || s->held) {
			lws_callback_on_writable(s->wsi);
			continue;
		}
		/* outside lws's writable callback: only when lws buffers
		 * nothing of an earlier write (write_live_burst checks), so a
		 * client that does not read leaves its frames in our queue */
		if (write_live_burst(s, st) < 0) {
			lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
			continue;
		}
		if (s->held || bus_sub_pending(s->sub))
			lws_callback_on_writable(s->wsi);
	}
}

static int on_writable(struct ws_session *s)
{
	struct http_stats *st = http__stats(s->srv);
	struct reply *r;
	int rc = 0;
	/* answers first, then replayed frames (one per callback), then live
	 * frames with their gap notices */
	if (s->replies) {
		r = s->replies;
		s->replies = r->next;
		if (!s->replies)
			s->replies_tail = &s->replies;
		s->nreplies--;
		rc = write_buf(s, r->buf, r->len);
		free(r->buf);
		free(r);
		if (s->rx_paused && s->nreplies < WS_REPLY_PAUSE / 2) {
			s->rx_paused = false;
			lws_rx_flow_control(s->wsi, 1);
		}
	} else if ((r = replay_next(s)) != NULL) {
		rc = write_buf(s, r->buf, r->len);
		snprintf(s->last_id, sizeof(s->last_id), "%s-%016llx",
			 http__daemon(s->srv)->cfg->gw_id, (unsigned long long)r->seq);
		free(r->buf);
		free(r);
		st->ws_frames_out++;
	} else {
		rc = write_live_burst(s, st);
	}
	if (rc < 0)
		return -1;
	if (s->replies || s->held || s->replay.active || bus_sub_pending(s->sub))
		lws_callback_on_writable(s->wsi);
	return 0;
}

static struct ws_session *session_new(struct http_server *srv, struct lws *wsi)
{
	struct labgwd *d = http__daemon(srv);
	struct ws_session *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->sub = bus_sub_new(d->bus, (size_t)d->cfg->ws_send_queue, bus_wake, s);
	if (!s->sub) {
		free(s);
		return NULL;
	}
	s->srv = srv;
	s->wsi = wsi;
	s->max_message = d->cfg->ws_max_message;
	s->max_subs = (size_t)d->cfg->ws_max_subscriptions;
	s->replies_tail = &s->replies;
	strbuf_init(&s->rx, 1024);
	lws_get_peer_simple(wsi, s->peer, sizeof(s->peer));
	struct ws_session **head = http__sessions(srv);
	s->next = *head;
	if (*head)
		(*head)->prev = s;
	*head = s;
	struct http_stats *st = http__stats(srv);
	st->sessions++;
	st->sessions_total++;
	return s;
}

static void session_free(struct ws_session *s)
{
	struct http_stats *st = http__stats(s->srv);
	struct ws_session **head = http__sessions(s->srv);
	if (s->prev)
		s->prev->next = s->next;
	else
		*head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (s->flush_queued) {
		struct ws_session **fp = http__flush_list(s->srv);
		while (*fp != s)
			fp = &(*fp)->flush_next;
		*fp = s->flush_next;
	}
	st->sessions--;
	st->ws_dropped += bus_sub_dropped_total(s->sub);
	bus_msg_unref(s->held);
	bus_sub_free(s->sub);
	while (s->replay.chunk) {
		struct reply *r = s->replay.chunk;
		s->replay.chunk = r->next;
		free(r->buf);
		free(r);
	}
	while (s->replies) {
		struct reply *r = s->replies;
		s->replies = r->next;
		free(r->buf);
		free(r);
	}
	strbuf_release(&s->rx);
	free(s->replay.filter);
	free(s);
}

/* "Bearer <key>" from the Authorization header, if any */
static int header_key(struct lws *wsi, char *key, size_t keylen)
{
	char hdr[AUTH_KEY_MAX + 32];
	int n = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	if (n <= 0)
		return 0;
	if ((size_t)n >= sizeof(hdr))
		return -1;
	if (lws_hdr_copy(wsi, hdr, sizeof(hdr), WSI_TOKEN_HTTP_AUTHORIZATION) < 0)
		return -1;
	if (strncasecmp(hdr, "Bearer ", 7))
		return -1;
	snprintf(key, keylen, "%s", hdr + 7);
	return 1;
}

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in, size_t len)
{
	struct pss *pss = user;
	struct http_server *srv = lws_context_user(lws_get_context(wsi));
	struct ws_session *s = pss ? pss->s : NULL;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED: {
		struct labgwd *d = http__daemon(srv);
		s = pss->s = session_new(srv, wsi);
		if (!s)
			return -1;
		limit_unsent(s);
		char key[AUTH_KEY_MAX + 32];
		int hk = header_key(wsi, key, sizeof(key));
		if (hk < 0) {
			close_later(s, WS_CLOSE_UNAUTHENTICATED,
				    "Authorization header must be \"Bearer <key>\"");
		} else if (hk > 0) {
			authenticate(s, key, NULL);
		} else {
			lws_set_timer_usecs(wsi, (lws_usec_t)d->cfg->ws_auth_timeout_ms * 1000);
		}
		explicit_bzero(key, sizeof(key));
		log_debug("ws %s: connected", s->peer);
		return 0;
	}
	case LWS_CALLBACK_TIMER:
		if (s && !s->close_code && !s->authed)
			close_later(s, WS_CLOSE_UNAUTHENTICATED, "authentication timed out");
		else if (s && s->close_code)
			return -1;
		return 0;
	case LWS_CALLBACK_RECEIVE:
		if (!s || s->close_code)
			return 0;
		return on_receive(s, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		if (!s || s->close_code)
			return 0;
		return on_writable(s);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		return 0;
	case LWS_CALLBACK_CLOSED:
		if (s) {
			log_debug("ws %s: closed", s->peer);
			session_free(s);
			pss->s = NULL;
		}
		return 0;
	default:
		return 0;
	}
}

void ws_key_gone(struct http_server *srv, const char *key_id)
{
	for (struct ws_session *s = *http__sessions(srv); s; s = s->next)
		if (s->authed && !strcmp(s->who.key_id, key_id))
			close_later(s, WS_CLOSE_UNAUTHENTICATED, "key revoked or expired");
}

uint64_t ws_live_dropped(struct http_server *srv)
{
	uint64_t n = 0;
	for (struct ws_session *s = *http__sessions(srv); s; s = s->next)
		n += bus_sub_dropped_total(s->sub);
	return n;
}

void ws_close_all(struct http_server *srv)
{
	for (struct ws_session *s = *http__sessions(srv); s; s = s->next)
		close_later(s, LWS_CLOSE_STATUS_GOINGAWAY, "gateway shutting down");
}
