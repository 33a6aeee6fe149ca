#include "mqtt.h"

#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <pthread.h>
#include <mqtt_protocol.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "broker.h"
#include "daemon.h"
#include "dynsec.h"
#include "log.h"
#include "mqttpkt.h"
#include "policy.h"
#include "router.h"
#include "sandbox.h"
#include "spool.h"
#include "topic.h"
#include "util.h"

/* Messages handed to libmosquitto and not yet written (QoS 0) or
 * acknowledged (QoS 1). Bounds libmosquitto's own queue. */
#define MAX_INFLIGHT 512
/* Messages published per loop iteration, so one busy link never starves
 * the rest of the loop; plus what came in since the last iteration (see
 * drain_cb). */
#define DRAIN_BATCH 256
/* Bytes of QoS 0 PUBLISHes written by the bridge itself (out_*) and not yet
 * taken by the socket: past this, draining waits for the socket. */
#define OUT_MAX	       (256 * 1024)
#define REQUEST_MAX    (64 * 1024)
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 10000
#define PASSWORD_MAX   256
/* After a broker lost its sessions (on_connect), spooled messages wait this
 * long before they go out, so that subscribers with persistent sessions,
 * which the broker forgot as well, can connect and subscribe again first. */
#define LOST_SESSIONS_HOLD_MS 5000

/* The frames link (struct mqtt_bridge): its states, QoS 1 slots, the
 * largest packet it reads from the broker, connect timeout. */
enum { FL_DOWN, FL_TCP, FL_CONNACK, FL_UP };
#define FL_SLOTS (2 * MAX_INFLIGHT) /* a slot is free long before its id comes again */
#define FL_IN_MAX (64 * 1024)
#define FL_IN_BUF (FL_IN_MAX + 5)
#define FL_CONNECT_TIMEOUT_MS 10000

struct fl_slot {
	uint16_t id;	   /* the packet id, 0: free */
	uint64_t seq;	   /* a spooled message: its seq */
	struct bus_msg *m; /* else the message, for a resend after a reconnect */
};

struct mqtt_bridge {
	struct labgwd *d;
	struct mosquitto *mosq;
	char *host;
	int port;
	uv_poll_t *poll; /* freed in its close callback */
	int poll_fd;
	int poll_events;
	uv_timer_t misc;      /* keepalive, every second */
	uv_timer_t reconnect; /* backoff */
	uv_idle_t drain;      /* publishes queued messages, next loop turn */
	/* the connect runs on a thread of its own (connect_thread); mu guards
	 * the hand-over of the object between it and the loop */
	pthread_mutex_t mu;
	uv_async_t connect_async;		   /* the thread's "done" */
	bool connecting;			   /* libmosquitto's object is the thread's */
	bool async_closed;			   /* shut down: the thread does not signal */
	bool orphaned;				   /* freed while connecting: the thread frees */
	int connect_keepalive_s, connect_expiry_s; /* read by the thread */
	int connect_rc;
	int connect_errno;
	uint64_t backoff_ms;
	size_t left_pending; /* bus queue length after the last drain_cb */
	bool connected;
	bool shutting_down;
	struct bus_sub *sub;
	unsigned inflight;
	struct mqtt_stats st;
	char topic_req_tx[256];
	char state_topic[128];
	char username[128];    /* "" = no login */
	struct dynsec *dynsec; /* the daemon's, while attached */
	bool refused_logged;
	/* sandbox frames at QoS 1 (spool.h); NULL: they go straight out */
	struct spool *spool;
	uint64_t *mid_seq;	 /* spool seq of each message id in flight, 0: none */
	uint64_t spool_sent;	 /* highest seq handed to libmosquitto */
	bool spool_pending;	 /* there may be spooled messages not yet handed over */
	bool session;		 /* clean start off, session expiry on the CONNECT */
	bool had_session;	 /* a connect of this run left our session on the broker */
	bool spool_held;	 /* LOST_SESSIONS_HOLD_MS running: spooled messages wait */
	unsigned spool_inflight; /* spooled messages libmosquitto holds unacknowledged */
	unsigned hold_extended;
	uv_timer_t hold;
	/* The frames link (on a plain socket, `raw`: no TLS): a connection
	 * of its own, client id "{client_id}-frames", that carries every
	 * frame that is not retained, written and read by labgwd itself
	 * (mqttpkt.h): PUBLISHes at QoS 0 and 1 encoded into `out` and sent
	 * with one send() per loop turn, PUBACKs read in bulk. libmosquitto's
	 * connection keeps the rest (retained states and the will, requests
	 * and answers, dynsec). With TLS, frames go through libmosquitto. */
	bool raw;
	int fl_state; /* FL_* */
	int fl_fd;
	uv_poll_t *fl_poll; /* freed in its close callback */
	int fl_events;
	struct sockaddr_storage fl_addr; /* the broker, as libmosquitto reached it */
	socklen_t fl_addrlen;
	char fl_client_id[160];
	char *fl_password; /* the login's password, for the frames link's CONNECT */
	uint8_t *fl_in;	   /* FL_IN_MAX bytes read and not yet parsed */
	size_t fl_in_len;
	struct fl_slot *fl_slots; /* QoS 1 messages in flight, by packet id % FL_SLOTS */
	uint16_t fl_next_id;
	unsigned fl_inflight;
	unsigned fl_window;   /* the broker's receive maximum, at most MAX_INFLIGHT */
	uint8_t fl_max_qos;   /* the broker's maximum QoS */
	uint16_t fl_keepalive; /* seconds, 0: none */
	uint64_t fl_since;    /* when the state was entered (ms, loop time) */
	uint64_t fl_last_out; /* when the link last wrote */
	uint64_t fl_ping_at;  /* a PINGREQ waits for its PINGRESP since, 0: none */
	uint64_t fl_retry_at; /* FL_DOWN: the next connect, 0: when the main link is up */
	uint64_t fl_backoff_ms;
	bool fl_had_session; /* a CONNACK of this run left its session on the broker */
	bool fl_qos0_logged;
	bool fl_refused_logged;
	uint8_t *out;
	size_t out_off, out_len, out_cap;
	uint32_t max_packet; /* the broker's Maximum Packet Size, 0: none */
};

static void poll_close_cb(uv_handle_t *h)
{
	free(h);
}

static void schedule_reconnect(struct mqtt_bridge *b);
static void sync_poll(struct mqtt_bridge *b);
static void fl_down(struct mqtt_bridge *b, const char *why);

static void link_down(struct mqtt_bridge *b, const char *why)
{
	if (b->poll) {
		uv_close((uv_handle_t *)b->poll, poll_close_cb);
		b->poll = NULL;
		b->poll_fd = -1;
	}
	uv_idle_stop(&b->drain);
	if (b->spool)
		spool_commit(b->spool); /* the PUBACKs read (poll_cb) */
	b->inflight = 0;
	/* the frames link lives while this one does */
	fl_down(b, "the control link is down");
	b->fl_retry_at = 0;
	if (b->dynsec)
		dynsec_link_down(b->dynsec);
	if (b->connected) {
		b->connected = false;
		b->st.disconnects++;
		log_warning("mqtt: connection to %s:%d lost (%s); reconnecting", b->host, b->port,
			    why);
	}
	if (!b->shutting_down)
		schedule_reconnect(b);
}

/* After every libmosquitto call: follow its socket and its wish to write. */
static void after_call(struct mqtt_bridge *b, int rc, const char *what)
{
	int fd = mosquitto_socket(b->mosq);
	if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_NO_CONN) {
		log_debug("mqtt: %s: %s", what, mosquitto_strerror(rc));
	}
	if (fd < 0 || (rc != MOSQ_ERR_SUCCESS)) {
		if (fd >= 0)
			mosquitto_disconnect(b->mosq);
		link_down(b, rc == MOSQ_ERR_SUCCESS ? "socket closed" : mosquitto_strerror(rc));
		return;
	}
	sync_poll(b);
}

/* Write what libmosquitto queued. A MOSQ_ERR_* for after_call(); a full
 * socket is not an error (the rest waits for UV_WRITABLE). */
static int flush(struct mqtt_bridge *b)
{
	if (!mosquitto_want_write(b->mosq))
		return MOSQ_ERR_SUCCESS;
	return mosquitto_loop_write(b->mosq, 1);
}

static void wake_drain(struct mqtt_bridge *b);
static void drain_cb(uv_idle_t *h);

static void poll_cb(uv_poll_t *p, int status, int events)
{
	struct mqtt_bridge *b = p->data;
	int rc = MOSQ_ERR_SUCCESS;
	if (status < 0) {
		link_down(b, uv_strerror(status));
		return;
	}
	if (events & (UV_READABLE | UV_DISCONNECT)) {
		/* the PUBACKs read take their messages out of the spool in
		 * the transaction that drain_cb commits at the end of this
		 * loop turn, not in one commit each (a kill -9 before that
		 * commit sends them again: at least once, as QoS 1) */
		if (b->spool && !b->shutting_down) {
			spool_begin(b->spool);
			uv_idle_start(&b->drain, drain_cb);
		}
		rc = mosquitto_loop_read(b->mosq, 64);
	}
	/* what the read queued (PUBACKs, answers) goes out now */
	if (rc == MOSQ_ERR_SUCCESS && b->poll)
		rc = flush(b);
	if (b->poll) /* a callback may have taken the link down */
		after_call(b, rc, "loop");
	if (b->poll)
		wake_drain(b); /* the socket may have taken what held the drain */
}

static void sync_poll(struct mqtt_bridge *b)
{
	int fd = mosquitto_socket(b->mosq);
	if (fd < 0)
		return;
	if (b->poll && b->poll_fd != fd) {
		uv_close((uv_handle_t *)b->poll, poll_close_cb);
		b->poll = NULL;
	}
	if (!b->poll) {
		b->poll = malloc(sizeof(*b->poll));
		if (!b->poll || uv_poll_init(b->d->loop, b->poll, fd) < 0) {
			free(b->poll);
			b->poll = NULL;
			log_error("mqtt: cannot watch the broker socket");
			return;
		}
		b->poll->data = b;
		b->poll_fd = fd;
		b->poll_events = 0;
	}
	bool w = mosquitto_want_write(b->mosq);
	int ev = UV_READABLE | UV_DISCONNECT | (w ? UV_WRITABLE : 0);
	if (ev != b->poll_events) {
		uv_poll_start(b->poll, ev, poll_cb);
		b->poll_events = ev;
	}
}

/* ---- the frames link (struct mqtt_bridge) ---- */

static void hold_cb(uv_timer_t *t);
static void fl_poll_cb(uv_poll_t *p, int status, int events);

/* The control link is up and, in raw mode, the frames link too: frames can
 * go out. */
static bool link_up(const struct mqtt_bridge *b)
{
	return b->connected && (!b->raw || b->fl_state == FL_UP);
}

/* A message can go to the broker now: connected, with room in the window
 * of the link it takes and in the frames link's write buffer. */
static bool can_send(const struct mqtt_bridge *b)
{
	if (!b->connected || b->inflight >= MAX_INFLIGHT)
		return false;
	return !b->raw || (b->fl_state == FL_UP && b->fl_inflight < b->fl_window &&
			   b->out_len - b->out_off < OUT_MAX);
}

/* The broker lost its sessions (a CONNACK without the session it had):
 * with them the sessions and subscriptions of every other client. What the
 * spool sends now would be acknowledged and dropped for want of
 * subscribers, so it waits for them to subscribe again. */
static void sessions_lost(struct mqtt_bridge *b)
{
	log_warning("mqtt: %s:%d lost its sessions (killed, or its store lost)%s", b->host,
		    b->port,
		    b->spool ? "; spooled frames wait 5 s for subscribers to subscribe again" : "");
	if (b->spool) {
		b->spool_held = true;
		b->hold_extended = 0;
		uv_timer_start(&b->hold, hold_cb, LOST_SESSIONS_HOLD_MS, 0);
	}
}

static void fl_sync(struct mqtt_bridge *b)
{
	if (!b->fl_poll)
		return;
	bool w = b->fl_state == FL_TCP || b->out_off < b->out_len;
	int ev = UV_READABLE | UV_DISCONNECT | (w ? UV_WRITABLE : 0);
	if (ev != b->fl_events) {
		uv_poll_start(b->fl_poll, ev, fl_poll_cb);
		b->fl_events = ev;
	}
}

/* Close the frames link; it connects again after a backoff while the
 * control link is up. What was not written is gone (QoS 0, as in
 * libmosquitto's queue); spooled messages in flight go again from the spool
 * (all it holds is unacknowledged); other QoS 1 messages in flight keep
 * their slots and go again after the next CONNACK. */
static void fl_down(struct mqtt_bridge *b, const char *why)
{
	if (b->fl_state == FL_DOWN)
		return;
	bool was_up = b->fl_state == FL_UP;
	if (b->fl_poll) {
		uv_close((uv_handle_t *)b->fl_poll, poll_close_cb);
		b->fl_poll = NULL;
	}
	if (b->fl_fd >= 0) {
		close(b->fl_fd);
		b->fl_fd = -1;
	}
	b->fl_state = FL_DOWN;
	b->fl_events = 0;
	b->out_off = b->out_len = 0;
	b->fl_in_len = 0;
	b->fl_ping_at = 0;
	for (unsigned i = 0; i < FL_SLOTS; i++) {
		struct fl_slot *s = &b->fl_slots[i];
		if (s->id && !s->m) {
			s->id = 0;
			b->fl_inflight--;
		}
	}
	if (b->spool) {
		spool_commit(b->spool); /* the PUBACKs read */
		b->spool_sent = 0;
		b->spool_pending = true;
	}
	b->fl_backoff_ms = b->fl_backoff_ms ? b->fl_backoff_ms * 2 : 1000;
	if (b->fl_backoff_ms > BACKOFF_MAX_MS)
		b->fl_backoff_ms = BACKOFF_MAX_MS;
	b->fl_retry_at = uv_now(b->d->loop) + b->fl_backoff_ms;
	if (was_up && !b->shutting_down) {
		log_warning("mqtt: frames link to %s:%d lost (%s); reconnecting", b->host, b->port,
			    why);
	} else if (!b->shutting_down) {
		log_debug("mqtt: frames link to %s:%d: %s", b->host, b->port, why);
	}
}

/* Room for `size` more bytes in the write buffer: 0 or -ENOMEM. */
static int fl_reserve(struct mqtt_bridge *b, size_t size)
{
	if (b->out_len + size > b->out_cap && b->out_off) {
		memmove(b->out, b->out + b->out_off, b->out_len - b->out_off);
		b->out_len -= b->out_off;
		b->out_off = 0;
	}
	if (b->out_len + size <= b->out_cap)
		return 0;
	size_t cap = b->out_cap ? b->out_cap : 64 * 1024;
	while (cap < b->out_len + size)
		cap *= 2;
	uint8_t *n = realloc(b->out, cap);
	if (!n)
		return -ENOMEM;
	b->out = n;
	b->out_cap = cap;
	return 0;
}

/* After a failed send() or recv() on the frames link: 0 to try again
 * (EINTR), 1 when the socket would block, -1 when the link went down. */
static int fl_io_failed(struct mqtt_bridge *b)
{
	if (errno == EINTR)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK)
		return 1;
	fl_down(b, strerror(errno));
	return -1;
}

/* Write what is buffered, as far as the socket takes it: false when the
 * link went down. */
static bool fl_flush(struct mqtt_bridge *b)
{
	while (b->out_off < b->out_len) {
		ssize_t n = send(b->fl_fd, b->out + b->out_off, b->out_len - b->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0) {
			int e = fl_io_failed(b);
			if (e < 0)
				return false;
			if (e)
				break;
			continue;
		}
		b->out_off += (size_t)n;
		b->fl_last_out = uv_now(b->d->loop);
	}
	if (b->out_off == b->out_len)
		b->out_off = b->out_len = 0;
	fl_sync(b);
	return true;
}

/* A free packet id (its slot free too), or 0 when every slot is taken. */
static uint16_t fl_take_id(struct mqtt_bridge *b)
{
	for (unsigned i = 0; i < FL_SLOTS; i++) {
		uint16_t id = ++b->fl_next_id;
		if (!id)
			id = b->fl_next_id = 1;
		if (!b->fl_slots[id % FL_SLOTS].id)
			return id;
	}
	return 0;
}

/* Encode a PUBLISH into the write buffer: 0, -EMSGSIZE or -ENOMEM. */
static int fl_encode(struct mqtt_bridge *b, const char *topic, size_t tlen, const void *payload,
		     size_t len, int qos, uint16_t id, bool dup)
{
	size_t size = mqttpkt_publish_size(tlen, len, qos);
	if (!size || (b->max_packet && size > b->max_packet))
		return -EMSGSIZE;
	if (fl_reserve(b, size) < 0)
		return -ENOMEM;
	b->out_len += mqttpkt_publish(b->out + b->out_len, topic, tlen, payload, len, qos, id, dup);
	return 0;
}

/* Buffer a PUBLISH on the frames link: spooled (seq) or a bus message (m,
 * referenced while in flight at QoS 1). 0, -EAGAIN (no packet id free),
 * -ENOMEM, or -EINVAL / -EMSGSIZE for a message that cannot be sent (what
 * mosquitto_publish_v5 checks, it checks too). */
static int fl_publish(struct mqtt_bridge *b, const char *topic, const void *payload, size_t len,
		      int qos, uint64_t seq, struct bus_msg *m)
{
	size_t tlen = strlen(topic);
	if (tlen > UINT16_MAX || mosquitto_validate_utf8(topic, (int)tlen) != MOSQ_ERR_SUCCESS ||
	    mosquitto_pub_topic_check2(topic, tlen) != MOSQ_ERR_SUCCESS)
		return -EINVAL;
	if (qos > b->fl_max_qos) {
		if (!b->fl_qos0_logged)
			log_error("mqtt: %s:%d accepts QoS 0 only: frames go at QoS 0%s", b->host,
				  b->port, b->spool ? " and leave the spool unacknowledged" : "");
		b->fl_qos0_logged = true;
		qos = 0;
	}
	uint16_t id = qos ? fl_take_id(b) : 0;
	if (qos && !id)
		return -EAGAIN;
	int rc = fl_encode(b, topic, tlen, payload, len, qos, id, false);
	if (rc < 0)
		return rc;
	if (qos) {
		struct fl_slot *s = &b->fl_slots[id % FL_SLOTS];
		s->id = id;
		s->seq = seq;
		s->m = m ? bus_msg_ref(m) : NULL;
		b->fl_inflight++;
	} else if (seq) {
		spool_ack(b->spool, seq);
	}
	return 0;
}

static void fl_connect(struct mqtt_bridge *b)
{
	b->fl_state = FL_TCP;
	b->fl_since = uv_now(b->d->loop);
	b->fl_fd = socket(b->fl_addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (b->fl_fd < 0) {
		fl_down(b, strerror(errno));
		return;
	}
	int one = 1;
	setsockopt(b->fl_fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (connect(b->fl_fd, (struct sockaddr *)&b->fl_addr, b->fl_addrlen) < 0 &&
	    errno != EINPROGRESS) {
		fl_down(b, strerror(errno));
		return;
	}
	b->fl_poll = malloc(sizeof(*b->fl_poll));
	if (!b->fl_poll || uv_poll_init(b->d->loop, b->fl_poll, b->fl_fd) < 0) {
		free(b->fl_poll);
		b->fl_poll = NULL;
		fl_down(b, "cannot watch the socket");
		return;
	}
	b->fl_poll->data = b;
	b->fl_events = 0;
	fl_sync(b);
}

/* On the spawned broker the bridge's rights to labgw/v1/# come from the
 * dynamic-security set-up of the control link: the frames link waits for
 * it. */
static bool fl_rights_ready(const struct mqtt_bridge *b)
{
	if (!b->dynsec || !b->d->broker)
		return true;
	struct dynsec_stats ds;
	dynsec_get_stats(b->dynsec, &ds);
	return ds.acl_ok;
}

static void fl_maybe_connect(struct mqtt_bridge *b)
{
	if (!b->raw || !b->connected || b->shutting_down || b->fl_state != FL_DOWN ||
	    !b->fl_addrlen || (b->fl_retry_at && uv_now(b->d->loop) < b->fl_retry_at) ||
	    !fl_rights_ready(b))
		return;
	fl_connect(b);
}

static void fl_up(struct mqtt_bridge *b, const struct mqttpkt_connack *c)
{
	b->fl_state = FL_UP;
	b->fl_since = uv_now(b->d->loop);
	b->fl_backoff_ms = 0;
	b->fl_refused_logged = false;
	b->fl_window = c->receive_max < MAX_INFLIGHT ? c->receive_max : MAX_INFLIGHT;
	b->fl_max_qos = c->max_qos;
	b->max_packet = c->max_packet;
	if (c->has_server_keepalive)
		b->fl_keepalive = c->server_keepalive;
	bool present = c->session_present;
	log_info("mqtt: frames link as %s: receive maximum %u, maximum QoS %u, maximum packet "
		 "size %u, keepalive %u s",
		 b->fl_client_id, c->receive_max, c->max_qos, c->max_packet, b->fl_keepalive);
	log_notice("mqtt: connected to %s:%d%s", b->host, b->port,
		   !b->session ? ""
		   : present   ? " (session resumed)"
			       : " (new session)");
	if (b->session && b->fl_had_session && !present) {
		sessions_lost(b);
	} else if (present && b->spool_held) {
		b->spool_held = false;
		uv_timer_stop(&b->hold);
	}
	b->fl_had_session = b->session;
	/* QoS 1 messages in flight at the loss go again with their packet
	 * ids, flagged DUP if the broker kept the session */
	for (unsigned i = 0; i < FL_SLOTS; i++) {
		struct fl_slot *s = &b->fl_slots[i];
		if (!s->id)
			continue;
		const struct bus_msg *m = s->m;
		if (!m || fl_encode(b, m->topic, strlen(m->topic), m->frame->json,
				    m->frame->json_len, 1, s->id, present) == 0)
			continue;
		b->st.dropped++;
		bus_msg_unref(s->m);
		s->m = NULL;
		s->id = 0;
		b->fl_inflight--;
	}
	b->spool_pending = b->spool != NULL;
	if (fl_flush(b))
		wake_drain(b);
}

/* The broker acknowledged packet `id`. */
static void fl_puback(struct mqtt_bridge *b, uint16_t id, uint8_t reason)
{
	struct fl_slot *s = &b->fl_slots[id % FL_SLOTS];
	if (s->id != id) {
		log_debug("mqtt: frames link: PUBACK for packet %u, not in flight", id);
		return;
	}
	if (reason >= 0x80)
		log_debug("mqtt: broker refused a frame: %s", mosquitto_reason_string(reason));
	if (s->m) {
		bus_msg_unref(s->m);
		s->m = NULL;
	} else if (b->spool) {
		/* acknowledged; a refusal would be the same answer again, so
		 * the message leaves the spool either way */
		spool_ack(b->spool, s->seq);
	}
	s->id = 0;
	b->fl_inflight--;
}

/* One packet from the broker: false when the link went down. */
static bool fl_packet(struct mqtt_bridge *b, const struct mqttpkt_in *pk)
{
	b->fl_ping_at = 0; /* it is alive */
	if (b->fl_state == FL_CONNACK) {
		struct mqttpkt_connack c;
		if (mqttpkt_connack(pk, &c) < 0) {
			fl_down(b, "no valid CONNACK");
			return false;
		}
		if (c.reason) {
			if (!b->fl_refused_logged)
				log_warning("mqtt: broker %s:%d refused the frames link (client %s): "
					    "%s",
					    b->host, b->port, b->fl_client_id,
					    mosquitto_reason_string(c.reason));
			b->fl_refused_logged = true;
			fl_down(b, "refused");
			return false;
		}
		fl_up(b, &c);
		return b->fl_state == FL_UP;
	}
	uint16_t id;
	uint8_t reason = 0;
	switch (pk->type) {
	case 4: /* PUBACK */
		if (mqttpkt_puback(pk, &id, &reason) < 0)
			break;
		fl_puback(b, id, reason);
		return true;
	case 13: /* PINGRESP */
		if (pk->flags || pk->len)
			break;
		return true;
	case 14: /* DISCONNECT */
		if (mqttpkt_disconnect_reason(pk, &reason) < 0)
			break;
		fl_down(b, mosquitto_reason_string(reason));
		return false;
	default:
		break;
	}
	fl_down(b, "unexpected or malformed packet");
	return false;
}

/* Read what the broker sent: false when the link went down. */
static bool fl_read(struct mqtt_bridge *b)
{
	/* the PUBACKs' messages leave the spool in the transaction that
	 * drain_cb commits at the end of this loop turn (see poll_cb) */
	if (b->spool && !b->shutting_down) {
		spool_begin(b->spool);
		uv_idle_start(&b->drain, drain_cb);
	}
	for (int i = 0; i < 16; i++) {
		size_t room = FL_IN_BUF - b->fl_in_len;
		ssize_t n = recv(b->fl_fd, b->fl_in + b->fl_in_len, room, MSG_DONTWAIT);
		if (n == 0) {
			fl_down(b, "closed by the broker");
			return false;
		}
		if (n < 0) {
			int e = fl_io_failed(b);
			if (e < 0)
				return false;
			if (e)
				break;
			continue;
		}
		b->fl_in_len += (size_t)n;
		size_t off = 0;
		for (;;) {
			struct mqttpkt_in pk;
			long k = mqttpkt_next(b->fl_in + off, b->fl_in_len - off, FL_IN_MAX, &pk);
			if (k < 0) {
				fl_down(b, "malformed or oversized packet");
				return false;
			}
			if (k == 0)
				break;
			off += (size_t)k;
			if (!fl_packet(b, &pk))
				return false;
		}
		memmove(b->fl_in, b->fl_in + off, b->fl_in_len - off);
		b->fl_in_len -= off;
		if ((size_t)n < room)
			break; /* all there was */
	}
	return true;
}

static void fl_poll_cb(uv_poll_t *p, int status, int events)
{
	struct mqtt_bridge *b = p->data;
	if (status < 0) {
		fl_down(b, uv_strerror(status));
		return;
	}
	if (b->fl_state == FL_TCP) {
		int err = 0;
		socklen_t el = sizeof(err);
		if (getsockopt(b->fl_fd, SOL_SOCKET, SO_ERROR, &err, &el) < 0)
			err = errno;
		if (err) {
			fl_down(b, strerror(err));
			return;
		}
		struct mqttpkt_connect c = {
			.client_id = b->fl_client_id,
			.username = b->username[0] ? b->username : NULL,
			.password = b->fl_password,
			.keepalive_s = b->fl_keepalive,
			.clean_start = !b->session,
			.session_expiry_s = b->session ? (uint32_t)(b->d->cfg->mqtt_session_expiry_ms /
								   1000)
						       : 0,
		};
		size_t cap = 64 + strlen(b->fl_client_id) + strlen(b->username) +
			     (b->fl_password ? strlen(b->fl_password) : 0);
		size_t n = fl_reserve(b, cap) < 0 ? 0 : mqttpkt_connect(b->out + b->out_len, cap, &c);
		if (!n) {
			fl_down(b, "cannot make the CONNECT");
			return;
		}
		b->out_len += n;
		b->fl_state = FL_CONNACK;
		fl_flush(b);
		return;
	}
	unsigned before = b->fl_inflight;
	if ((events & (UV_READABLE | UV_DISCONNECT)) && !fl_read(b))
		return;
	if (b->fl_state != FL_UP || ((events & UV_WRITABLE) && !fl_flush(b)))
		return;
	/* PUBACKs opened the window, or the socket took what held the drain:
	 * refill now rather than a loop turn later (the broker's receive
	 * maximum is often small, 20 on mosquitto, so the rate is the window
	 * per round trip, and this is half of the round trip) */
	if ((b->fl_inflight < before || (events & UV_WRITABLE)) && bus_sub_pending(b->sub))
		drain_cb(&b->drain);
	else
		wake_drain(b);
}

/* Every second (misc_cb): connect when due, give up a connect that gets no
 * answer, keep the link alive. */
static void fl_tick(struct mqtt_bridge *b)
{
	if (!b->raw || b->shutting_down)
		return;
	uint64_t now = uv_now(b->d->loop);
	switch (b->fl_state) {
	case FL_DOWN:
		fl_maybe_connect(b);
		break;
	case FL_TCP:
	case FL_CONNACK:
		if (now - b->fl_since >= FL_CONNECT_TIMEOUT_MS)
			fl_down(b, "no answer to the connect");
		break;
	default: {
		uint64_t ka = (uint64_t)b->fl_keepalive * 1000;
		if (!ka)
			break;
		if (b->fl_ping_at && now - b->fl_ping_at >= ka) {
			fl_down(b, "no answer to PINGREQ");
			break;
		}
		if (!b->fl_ping_at && now - b->fl_last_out >= ka / 2 && fl_reserve(b, 2) == 0) {
			b->out_len += mqttpkt_pingreq(b->out + b->out_len);
			b->fl_ping_at = now;
			fl_flush(b);
		}
		break;
	}
	}
}

static bool spooled(const struct mqtt_bridge *b, const struct bus_msg *m)
{
	return b->spool && !m->retained && !strncmp(m->topic, "labgw/v1/sbx/", 13);
}

/* Hand spooled messages to libmosquitto, up to DRAIN_BATCH a turn (a budget
 * of their own: a busy bus does not keep the spool from draining). Those it
 * has keep their place in its queue across a reconnect (it sends them again
 * itself); they leave the spool at their PUBACK (on_publish). */
static void spool_send(struct mqtt_bridge *b)
{
	unsigned n = 0;
	while (can_send(b) && n < DRAIN_BATCH) {
		uint64_t seq;
		char *topic;
		void *payload;
		size_t len;
		int r = spool_next(b->spool, b->spool_sent, &seq, &topic, &payload, &len);
		if (r <= 0) {
			b->spool_pending = false;
			break;
		}
		if (b->raw) {
			r = fl_publish(b, topic, payload, len, 1, seq, NULL);
			free(topic);
			free(payload);
			n++;
			if (r == -EAGAIN || r == -ENOMEM)
				break; /* it goes later */
			if (r < 0) {
				/* it never can: it leaves */
				log_debug("mqtt: spooled message not sent: %s", strerror(-r));
				spool_ack(b->spool, seq);
			} else {
				b->st.published++;
			}
			b->spool_sent = seq;
			continue;
		}
		int mid = 0;
		int rc = mosquitto_publish_v5(b->mosq, &mid, topic, (int)len, payload, 1, false,
					      NULL);
		free(topic);
		free(payload);
		n++;
		if (rc != MOSQ_ERR_SUCCESS) {
			after_call(b, rc, "publish");
			break;
		}
		b->spool_sent = seq;
		b->mid_seq[(uint16_t)mid] = seq;
		b->spool_inflight++;
		b->inflight++;
		b->st.published++;
	}
}

/* Spooled messages wait to be handed over, and may go now. */
static bool spool_ready(const struct mqtt_bridge *b)
{
	return b->spool_pending && !b->spool_held;
}

static void drain_cb(uv_idle_t *h)
{
	struct mqtt_bridge *b = h->data;
	size_t n = 0;
	/* A fixed batch lets the queue grow for good once producers make more
	 * than it per iteration (a radio catching up after a slow iteration
	 * makes more, and the iterations get slower still): take at least
	 * what came in since the last iteration too, so the drain gets a share
	 * of the loop in proportion to its producers' */
	size_t budget = DRAIN_BATCH, pending = bus_sub_pending(b->sub);
	if (pending > b->left_pending)
		budget += pending - b->left_pending;
	if (b->spool)
		spool_begin(b->spool);
	while (n < budget) {
		bool sendable = can_send(b);
		/* while the link is down, the spool takes what is for it */
		if (!sendable && !(b->spool && !link_up(b)))
			break;
		uint64_t dropped;
		struct bus_msg *m = bus_sub_pop(b->sub, &dropped);
		b->st.dropped += dropped;
		if (!m)
			break;
		n++;
		if (spooled(b, m)) {
			if (spool_append(b->spool, m->topic, m->frame->json, m->frame->json_len) ==
			    0)
				b->spool_pending = true;
			bus_msg_unref(m);
			continue;
		}
		/* retained states take the control link, which may be up
		 * while the frames link is not */
		if (!sendable && !(m->retained && b->connected && b->inflight < MAX_INFLIGHT)) {
			b->st.dropped++;
			bus_msg_unref(m);
			continue;
		}
		int qos = m->retained ? 1 : (int)b->d->cfg->mqtt_qos;
		if (b->raw && !m->retained) {
			int r = fl_publish(b, m->topic, m->frame->json, m->frame->json_len, qos, 0, m);
			if (r == 0) {
				b->st.published++;
			} else {
				b->st.dropped++;
				log_debug("mqtt: %s not sent: %s", m->topic, strerror(-r));
			}
			bus_msg_unref(m);
			continue;
		}
		int rc = mosquitto_publish_v5(b->mosq, NULL, m->topic, (int)m->frame->json_len,
					      m->frame->json, qos, m->retained, NULL);
		bus_msg_unref(m);
		if (rc != MOSQ_ERR_SUCCESS) {
			b->st.dropped++;
			after_call(b, rc, "publish");
			break;
		}
		b->inflight++;
		b->st.published++;
	}
	if (b->spool) {
		if (spool_ready(b))
			spool_send(b);
		spool_commit(b->spool);
	}
	/* one write for the turn's messages */
	if (b->fl_state == FL_UP)
		fl_flush(b);
	if (b->poll)
		after_call(b, flush(b), "write");
	b->left_pending = bus_sub_pending(b->sub);
	bool sendable = can_send(b);
	bool more = (b->left_pending && (sendable || (b->spool && !link_up(b)))) ||
		    (sendable && spool_ready(b));
	if (!more || b->shutting_down)
		uv_idle_stop(&b->drain);
	else
		uv_idle_start(&b->drain, drain_cb); /* when called directly (fl_poll_cb) */
}

static void wake_drain(struct mqtt_bridge *b)
{
	if (b->shutting_down)
		return;
	bool sendable = can_send(b);
	if ((bus_sub_pending(b->sub) && (sendable || (b->spool && !link_up(b)))) ||
	    (sendable && spool_ready(b)))
		uv_idle_start(&b->drain, drain_cb);
}

static void hold_cb(uv_timer_t *t)
{
	struct mqtt_bridge *b = t->data;
	/* on_publish may have moved spool_sent back below messages still in
	 * flight: those must be acknowledged before spool_send goes on from
	 * there, or they would go out twice (a broker that never answers
	 * them is given up on after 10 more seconds) */
	if (b->spool_inflight && b->hold_extended++ < 20) {
		uv_timer_start(&b->hold, hold_cb, 500, 0);
		return;
	}
	b->spool_held = false;
	wake_drain(b);
}

static void bus_wake(struct bus_sub *sub, void *user_data)
{
	wake_drain(user_data);
}

static void on_publish(struct mosquitto *m, void *ud, int mid, int reason,
		       const mosquitto_property *p)
{
	struct mqtt_bridge *b = ud;
	if (b->inflight)
		b->inflight--;
	uint64_t seq = b->spool && mid >= 0 ? b->mid_seq[(uint16_t)mid] : 0;
	if (seq) {
		b->mid_seq[(uint16_t)mid] = 0;
		if (b->spool_inflight)
			b->spool_inflight--;
		if (b->spool_held && reason == MQTT_RC_NO_MATCHING_SUBSCRIBERS) {
			/* libmosquitto's resend, after the broker lost its
			 * sessions, of what was in flight then: no one has
			 * subscribed again yet, so it stays, to go out again
			 * after the hold */
			if (seq <= b->spool_sent)
				b->spool_sent = seq - 1;
		} else {
			/* acknowledged; a refusal (reason >= 0x80) would be
			 * the same answer again, so the message leaves the
			 * spool either way */
			if (reason >= 0x80)
				log_debug("mqtt: broker refused a spooled message: %s",
					  mosquitto_reason_string(reason));
			spool_ack(b->spool, seq);
		}
	}
	wake_drain(b);
}

static void on_connect(struct mosquitto *m, void *ud, int rc, int flags,
		       const mosquitto_property *p)
{
	struct mqtt_bridge *b = ud;
	if (rc != 0) {
		bool login = rc == MQTT_RC_NOT_AUTHORIZED || rc == MQTT_RC_BAD_USERNAME_OR_PASSWORD;
		/* a bad login does not heal by retrying: say it once per bridge */
		if (!login || !b->refused_logged)
			log_warning("mqtt: broker %s:%d refused the connection: %s%s", b->host,
				    b->port, mosquitto_reason_string(rc),
				    !login	     ? ""
				    : b->d->broker   ? " (the admin login of "
						       "{state_dir}/mosquitto/admin.pw)"
				    : b->username[0] ? " (check [mqtt] username and password_file)"
						     : " (it wants a login: [mqtt] username and "
						       "password_file)");
		b->refused_logged = b->refused_logged || login;
		return; /* the broker closes; link_down follows */
	}
	b->connected = true;
	b->backoff_ms = 0;
	b->inflight = 0;
	b->st.connects++;
	b->refused_logged = false;
	bool present = flags & 1;
	if (b->raw) {
		/* the frames link (fl_*) connects to the same address; on it
		 * the bridge is "connected" (the notice, the sessions) */
		log_info("mqtt: control link to %s:%d up%s", b->host, b->port,
			 !b->session ? ""
			 : present   ? " (session resumed)"
				     : " (new session)");
		b->fl_addrlen = sizeof(b->fl_addr);
		if (getpeername(mosquitto_socket(b->mosq), (struct sockaddr *)&b->fl_addr,
				&b->fl_addrlen) < 0) {
			log_warning("mqtt: frames link: no broker address: %s", strerror(errno));
			b->fl_addrlen = 0;
		}
		b->fl_keepalive = (uint16_t)(b->d->cfg->mqtt_keepalive_ms / 1000);
		b->fl_retry_at = 0;
		b->fl_backoff_ms = 0;
	} else {
		log_notice("mqtt: connected to %s:%d%s", b->host, b->port,
			   !b->session ? ""
			   : present   ? " (session resumed)"
				       : " (new session)");
		/* Our session gone although the broker had it: the broker
		 * lost its state (sessions_lost). libmosquitto sends what it
		 * had in flight at the loss again at once; what of that finds
		 * no subscriber stays in the spool (on_publish). */
		if (b->session && b->had_session && !present)
			sessions_lost(b);
		else if (present && b->spool_held) {
			b->spool_held = false;
			uv_timer_stop(&b->hold);
		}
	}
	b->had_session = b->session;
	b->spool_pending = b->spool != NULL;
	mosquitto_subscribe_v5(b->mosq, NULL, b->topic_req_tx, 1, 0, NULL);
	mosquitto_subscribe_v5(b->mosq, NULL, POLICY_REQ_FILTER, 1, 0, NULL);
	if (b->dynsec) {
		/* before any other publish: on the spawned broker this gives the
		 * bridge its rights to labgw/v1/# (the broker handles a
		 * connection's packets in order) */
		mosquitto_subscribe_v5(b->mosq, NULL, DYNSEC_RESPONSE_TOPIC, 0, 0, NULL);
		dynsec_link_up(b->dynsec);
	}
	/* resend the retained states: the broker may have lost them */
	bus_sub_remove(b->sub, "labgw/v1/#");
	bus_sub_add(b->sub, "labgw/v1/#");
	fl_maybe_connect(b);
	wake_drain(b);
}

static void on_disconnect(struct mosquitto *m, void *ud, int rc, const mosquitto_property *p)
{
	struct mqtt_bridge *b = ud;
	link_down(b, rc ? mosquitto_reason_string(rc) : "disconnected");
}

/* Answer a request: to its MQTT v5 response topic if it gave one, else to
 * labgw/v1/sbx/{sbx}/res/{op}. */
static void answer(struct mqtt_bridge *b, const char *default_topic, const char *res_prefix,
		   const mosquitto_property *props, const struct policy_result *res, bool ok)
{
	char *resp_topic = NULL;
	void *corr = NULL;
	uint16_t corr_len = 0;
	mosquitto_property_read_string(props, MQTT_PROP_RESPONSE_TOPIC, &resp_topic, false);
	mosquitto_property_read_binary(props, MQTT_PROP_CORRELATION_DATA, &corr, &corr_len, false);
	json_t *o = json_pack("{s:b}", "ok", ok);
	if (ok && res->result)
		json_object_set(o, "result", res->result);
	if (!ok) {
		json_t *e = json_pack("{s:s,s:s}", "code", res->code, "message", res->message);
		if (res->retry_after_ms >= 0)
			json_object_set_new(e, "retry_after_ms", json_integer(res->retry_after_ms));
		json_object_set_new(o, "error", e);
	}
	char *txt = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	/* The bridge may publish anywhere under labgw/v1/: a response topic
	 * is taken only inside the asking sandbox's res/ tree (which its key
	 * may read), never elsewhere on the requester's say-so. */
	const char *topic = default_topic;
	if (resp_topic && topic_name_valid(resp_topic) &&
	    !strncmp(resp_topic, res_prefix, strlen(res_prefix)) && resp_topic[strlen(res_prefix)])
		topic = resp_topic;
	mosquitto_property *out = NULL;
	if (corr)
		mosquitto_property_add_binary(&out, MQTT_PROP_CORRELATION_DATA, corr, corr_len);
	if (txt) {
		int rc = mosquitto_publish_v5(b->mosq, NULL, topic, (int)strlen(txt), txt, 1, false,
					      out);
		if (rc == MOSQ_ERR_SUCCESS)
			b->inflight++; /* on_publish counts it down */
		else
			log_debug("mqtt: answer to %s not sent: %s", topic, mosquitto_strerror(rc));
	}
	mosquitto_property_free_all(&out);
	free(txt);
	free(resp_topic);
	free(corr);
}

static void on_message(struct mosquitto *m, void *ud, const struct mosquitto_message *msg,
		       const mosquitto_property *props)
{
	struct mqtt_bridge *b = ud;
	struct policy_result res = {.retry_after_ms = -1};
	if (!strcmp(msg->topic, DYNSEC_RESPONSE_TOPIC)) {
		if (b->dynsec && msg->payloadlen > 0)
			dynsec_on_response(b->dynsec, msg->payload, (size_t)msg->payloadlen);
		fl_maybe_connect(b); /* it may wait for the rights set up here */
		return;
	}
	b->st.requests++;

	char buf[TOPIC_MAX_LEN + 1];
	const char *lv[TOPIC_MAX_LEVELS];
	snprintf(buf, sizeof(buf), "%s", msg->topic);
	int n = topic_split(buf, lv, TOPIC_MAX_LEVELS);
	bool is_tx = n == 9;
	if ((n != 9 && n != 6) || !ident_valid(lv[3], STORE_ID_MAX))
		return; /* not one of the topics subscribed to */
	char reply_topic[TOPIC_MAX_LEN + 1], res_prefix[TOPIC_MAX_LEN + 1];
	snprintf(res_prefix, sizeof(res_prefix), "labgw/v1/sbx/%s/res/", lv[3]);
	if (is_tx)
		snprintf(reply_topic, sizeof(reply_topic), "%stx", res_prefix);
	else
		snprintf(reply_topic, sizeof(reply_topic), "%s%s", res_prefix, lv[5]);
	/* The broker's ACL let the publisher write this sandbox's tx/{tech}
	 * or req/{op} topic, and grants those per the key's rights (dynsec.c):
	 * the request acts with the sandbox's rights. Which key published is
	 * not known here (audit: "mqtt"). */
	struct principal who = {.via_broker = true,
				.rights = RIGHT_RX | RIGHT_OBSERVE | RIGHT_CLAIM | RIGHT_LEASE,
				.tx_techs = LABGW_TECH_BLE | LABGW_TECH_WLAN | LABGW_TECH_LORAWAN |
					    LABGW_TECH_CELLULAR};
	snprintf(who.key_id, sizeof(who.key_id), "mqtt");
	snprintf(who.sbx, sizeof(who.sbx), "%s", lv[3]);

	/* a request of a sandbox spends one of its request tokens, as on the
	 * WebSocket and REST */
	struct api_error qerr;
	if (b->d->sandboxes && !sandboxes_take_request(b->d->sandboxes, lv[3], &qerr)) {
		res.code = qerr.code;
		snprintf(res.message, sizeof(res.message), "%s", qerr.message);
		res.retry_after_ms = qerr.retry_after_ms;
		answer(b, reply_topic, res_prefix, props, &res, false);
		return;
	}
	json_t *payload = NULL;
	if (msg->payloadlen > REQUEST_MAX) {
		res.code = "TOO_LARGE";
		snprintf(res.message, sizeof(res.message), "request exceeds %d bytes", REQUEST_MAX);
	} else {
		json_error_t je;
		payload = json_loadb(msg->payload, (size_t)msg->payloadlen, JSON_REJECT_DUPLICATES,
				     &je);
		if (!payload) {
			res.code = "BAD_REQUEST";
			snprintf(res.message, sizeof(res.message), "not valid JSON: %s", je.text);
		}
	}
	if (payload) {
		int rc = policy_submit(b->d->policy, &who, msg->topic, payload, &res);
		json_decref(payload);
		answer(b, reply_topic, res_prefix, props, &res, rc == 0);
		json_decref(res.result);
		return;
	}
	answer(b, reply_topic, res_prefix, props, &res, false);
}

static void on_log(struct mosquitto *m, void *ud, int level, const char *str)
{
	if (level & (MOSQ_LOG_ERR | MOSQ_LOG_WARNING))
		log_debug("mqtt: libmosquitto: %s", str);
}

/* dynsec's way to the broker: QoS 0, because the dynsec queue resends after
 * a reconnect itself (libmosquitto would resend a QoS 1 message as well) */
static int publish_control(void *ud, const char *topic, const char *payload, size_t len)
{
	struct mqtt_bridge *b = ud;
	if (!b->connected || b->shutting_down)
		return -ENOTCONN;
	int rc = mosquitto_publish_v5(b->mosq, NULL, topic, (int)len, payload, 0, false, NULL);
	if (rc != MOSQ_ERR_SUCCESS) {
		log_debug("mqtt: control message not sent: %s", mosquitto_strerror(rc));
		return -EIO;
	}
	b->inflight++; /* on_publish counts it down */
	if (b->poll)
		sync_poll(b);
	return 0;
}

/* The first line of `path` as the bridge's password; 0 or a negative errno
 * (logged, without the contents). */
static int read_password(const char *path, char *out, size_t cap)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		log_error("mqtt: [mqtt] password_file %s: %s", path, strerror(e));
		return -e;
	}
	struct stat st;
	if (fstat(fd, &st) == 0 && (st.st_mode & 077))
		log_warning("mqtt: %s is readable by others; it should be mode 0600", path);
	ssize_t n = read(fd, out, cap - 1);
	close(fd);
	if (n < 0) {
		int e = errno;
		log_error("mqtt: [mqtt] password_file %s: %s", path, strerror(e));
		return -e;
	}
	out[n] = '\0';
	out[strcspn(out, "\r\n")] = '\0';
	if (!out[0]) {
		log_error("mqtt: [mqtt] password_file %s: empty first line", path);
		return -EINVAL;
	}
	return 0;
}

/* The bridge's login: the spawned broker's admin, or [mqtt] username and
 * password_file. 0 or a negative errno. */
static int set_login(struct mqtt_bridge *b)
{
	const struct config *cfg = b->d->cfg;
	char pw[PASSWORD_MAX];
	const char *user = NULL, *pass = NULL;
	pw[0] = '\0';
	if (b->d->broker) {
		user = broker_admin_user(b->d->broker);
		pass = broker_admin_password(b->d->broker);
	} else if (cfg->mqtt_username[0]) {
		user = cfg->mqtt_username;
		if (cfg->mqtt_password_file[0]) {
			int rc = read_password(cfg->mqtt_password_file, pw, sizeof(pw));
			if (rc < 0) {
				explicit_bzero(pw, sizeof(pw));
				return rc;
			}
			pass = pw;
		}
	}
	int rc = MOSQ_ERR_SUCCESS;
	if (user) {
		snprintf(b->username, sizeof(b->username), "%s", user);
		/* libmosquitto keeps its own copy; the frames link too */
		rc = mosquitto_username_pw_set(b->mosq, user, pass);
		if (rc == MOSQ_ERR_SUCCESS && pass && b->raw && !(b->fl_password = strdup(pass)))
			rc = MOSQ_ERR_NOMEM;
	}
	explicit_bzero(pw, sizeof(pw));
	return rc == MOSQ_ERR_SUCCESS ? 0 : -EINVAL;
}

static void bridge_release(struct mqtt_bridge *b)
{
	if (b->fl_password) {
		explicit_bzero(b->fl_password, strlen(b->fl_password));
		free(b->fl_password);
	}
	free(b->fl_slots);
	free(b->fl_in);
	mosquitto_destroy(b->mosq);
	free(b->host);
	pthread_mutex_destroy(&b->mu);
	free(b);
}

/* On a thread of its own: libmosquitto sends CONNECT properties (the
 * session expiry) only from its blocking connect, which also resolves the
 * host name and waits for TCP's handshake; off the loop, neither stalls the
 * daemon, whatever the broker's distance. Nothing on the loop touches
 * b->mosq meanwhile (b->connecting: no poll, no publish, no keepalive). A
 * detached thread rather than libuv's pool: a connect to a broker that
 * drops packets can take minutes, and a shutdown must not wait for it. */
static void *connect_thread(void *arg)
{
	struct mqtt_bridge *b = arg;
	mosquitto_property *props = NULL;
	if (b->session)
		mosquitto_property_add_int32(&props, MQTT_PROP_SESSION_EXPIRY_INTERVAL,
					     (uint32_t)b->connect_expiry_s);
	errno = 0;
	int rc = mosquitto_connect_bind_v5(b->mosq, b->host, b->port, b->connect_keepalive_s, NULL,
					   props);
	int err = errno;
	mosquitto_property_free_all(&props);

	pthread_mutex_lock(&b->mu);
	b->connect_rc = rc;
	b->connect_errno = err;
	b->connecting = false;
	bool orphaned = b->orphaned;
	if (!orphaned && !b->async_closed)
		uv_async_send(&b->connect_async);
	pthread_mutex_unlock(&b->mu);
	if (orphaned)
		bridge_release(b);
	return NULL;
}

static void connect_done(uv_async_t *a)
{
	struct mqtt_bridge *b = a->data;
	pthread_mutex_lock(&b->mu);
	bool still = b->connecting;
	pthread_mutex_unlock(&b->mu);
	if (still || b->shutting_down)
		return;
	if (b->connect_rc != MOSQ_ERR_SUCCESS) {
		log_debug("mqtt: connect to %s:%d: %s", b->host, b->port,
			  b->connect_rc == MOSQ_ERR_ERRNO ? strerror(b->connect_errno)
							  : mosquitto_strerror(b->connect_rc));
		schedule_reconnect(b);
		return;
	}
	sync_poll(b);
}

static void connect_now(struct mqtt_bridge *b)
{
	pthread_mutex_lock(&b->mu);
	bool busy = b->connecting;
	pthread_mutex_unlock(&b->mu);
	if (busy)
		return;
	b->connect_keepalive_s = (int)(b->d->cfg->mqtt_keepalive_ms / 1000);
	b->connect_expiry_s = (int)(b->d->cfg->mqtt_session_expiry_ms / 1000);
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	b->connecting = true;
	int rc = pthread_create(&t, &attr, connect_thread, b);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		b->connecting = false;
		log_warning("mqtt: connect to %s:%d: no thread: %s", b->host, b->port,
			    strerror(rc));
		schedule_reconnect(b);
	}
}

static void reconnect_cb(uv_timer_t *t)
{
	struct mqtt_bridge *b = t->data;
	if (!b->shutting_down)
		connect_now(b);
}

static void schedule_reconnect(struct mqtt_bridge *b)
{
	b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (b->backoff_ms > BACKOFF_MAX_MS)
		b->backoff_ms = BACKOFF_MAX_MS;
	/* up to 25% jitter so that many gateways do not reconnect in step */
	uint64_t delay = b->backoff_ms + (uint64_t)rand() % (b->backoff_ms / 4 + 1);
	uv_timer_start(&b->reconnect, reconnect_cb, delay, 0);
}

static void misc_cb(uv_timer_t *t)
{
	struct mqtt_bridge *b = t->data;
	fl_tick(b);
	if (!b->poll || b->connecting)
		return;
	int rc = mosquitto_loop_misc(b->mosq);
	after_call(b, rc, "keepalive");
}

static void setup_failed(struct mqtt_bridge *b)
{
	bus_sub_free(b->sub);
	spool_close(b->spool);
	free(b->mid_seq);
	free(b->out);
	bridge_release(b);
}

struct mqtt_bridge *mqtt_bridge_new(struct labgwd *d, const char *host, int port)
{
	const struct config *cfg = d->cfg;
	struct mqtt_bridge *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->d = d;
	pthread_mutex_init(&b->mu, NULL);
	b->host = strdup(host);
	b->port = port;
	b->poll_fd = -1;
	b->fl_fd = -1;
	char client_id[128];
	if (cfg->mqtt_client_id[0])
		snprintf(client_id, sizeof(client_id), "%s", cfg->mqtt_client_id);
	else
		snprintf(client_id, sizeof(client_id), "labgwd-%s", cfg->gw_id);
	snprintf(b->fl_client_id, sizeof(b->fl_client_id), "%s-frames", client_id);
	snprintf(b->topic_req_tx, sizeof(b->topic_req_tx), POLICY_TX_FILTER_FMT, cfg->gw_id);
	snprintf(b->state_topic, sizeof(b->state_topic), "labgw/v1/gw/%s/state", cfg->gw_id);

	/* a persistent session: clean start off, the expiry on the CONNECT
	 * (connect_work) */
	b->session = cfg->mqtt_session_expiry_ms > 0;
	b->mosq = mosquitto_new(client_id, !b->session, b);
	if (cfg->mqtt_qos == 1 && cfg->mqtt_spool > 0) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/mqtt-spool.db", cfg->state_dir);
		b->spool = spool_open(path, (uint64_t)cfg->mqtt_spool);
		b->mid_seq = calloc(65536, sizeof(*b->mid_seq));
		if (!b->spool || !b->mid_seq) {
			log_error("mqtt: the spool cannot be used: sandbox frames go out "
				  "unspooled");
			spool_close(b->spool);
			b->spool = NULL;
			free(b->mid_seq);
			b->mid_seq = NULL;
		}
	}
	b->sub = bus_sub_new(d->bus, (size_t)cfg->mqtt_queue, bus_wake, b);
	if (!b->host || !b->mosq || !b->sub) {
		log_error("mqtt: cannot set up the client");
		setup_failed(b);
		return NULL;
	}
	mosquitto_int_option(b->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
	/* QoS 1 frames in flight: with libmosquitto's default of 20, the
	 * rate is 20 per round trip to the broker, and a round trip takes a
	 * loop iteration of the busy daemon (the broker's receive maximum,
	 * when it sends one, still caps it) */
	mosquitto_int_option(b->mosq, MOSQ_OPT_SEND_MAXIMUM, MAX_INFLIGHT);
	if (cfg->mqtt_tls_ca[0] && !d->broker) {
		int trc = mosquitto_tls_set(b->mosq, cfg->mqtt_tls_ca, NULL, NULL, NULL, NULL);
		if (trc == MOSQ_ERR_SUCCESS)
			trc = mosquitto_tls_opts_set(b->mosq, 1 /* verify the broker */, "tlsv1.2",
						     LABGW_TLS12_CIPHERS);
		if (trc != MOSQ_ERR_SUCCESS) {
			log_error("mqtt: [mqtt] tls_ca %s: %s", cfg->mqtt_tls_ca,
				  trc == MOSQ_ERR_ERRNO ? strerror(errno)
							: mosquitto_strerror(trc));
			setup_failed(b);
			return NULL;
		}
	}
	/* on a plain socket frames take the frames link (see struct
	 * mqtt_bridge) */
	b->raw = !(cfg->mqtt_tls_ca[0] && !d->broker);
	if (b->raw) {
		b->fl_slots = calloc(FL_SLOTS, sizeof(*b->fl_slots));
		b->fl_in = malloc(FL_IN_BUF);
		if (!b->fl_slots || !b->fl_in) {
			log_error("mqtt: cannot set up the client");
			setup_failed(b);
			return NULL;
		}
	}
	if (set_login(b) < 0) {
		setup_failed(b);
		return NULL;
	}
	char *will = router_gateway_will(d);
	if (will) {
		mosquitto_will_set_v5(b->mosq, b->state_topic, (int)strlen(will), will, 1, true,
				      NULL);
		free(will);
	}
	mosquitto_connect_v5_callback_set(b->mosq, on_connect);
	mosquitto_disconnect_v5_callback_set(b->mosq, on_disconnect);
	mosquitto_publish_v5_callback_set(b->mosq, on_publish);
	mosquitto_message_v5_callback_set(b->mosq, on_message);
	mosquitto_log_callback_set(b->mosq, on_log);

	uv_timer_init(d->loop, &b->misc);
	uv_timer_init(d->loop, &b->reconnect);
	uv_timer_init(d->loop, &b->hold);
	uv_idle_init(d->loop, &b->drain);
	uv_async_init(d->loop, &b->connect_async, connect_done);
	b->misc.data = b->reconnect.data = b->drain.data = b->hold.data = b->connect_async.data = b;
	uv_timer_start(&b->misc, misc_cb, 1000, 1000);
	bus_sub_add(b->sub, "labgw/v1/#");
	if (d->dynsec) {
		char where[300];
		bool v6 = strchr(host, ':') != NULL;
		snprintf(where, sizeof(where), "%s%s%s:%d", v6 ? "[" : "", host, v6 ? "]" : "",
			 port);
		struct dynsec_link link = {
			.publish = publish_control,
			.ud = b,
			.login = b->username,
			.own_broker = d->broker != NULL,
			.broker = where,
		};
		dynsec_attach(d->dynsec, &link);
		b->dynsec = d->dynsec;
	}
	log_info("mqtt: bridge to %s:%d as client %s%s%s%s%s", host, port, client_id,
		 b->username[0] ? ", user " : "", b->username,
		 b->session ? ", persistent session" : "", b->spool ? ", spooled" : "");
	connect_now(b);
	return b;
}

void mqtt_bridge_get_stats(const struct mqtt_bridge *b, struct mqtt_stats *st)
{
	*st = b->st;
	st->connected = link_up(b);
	st->queued = b->sub ? bus_sub_pending(b->sub) : 0;
	if (b->spool) {
		struct spool_stats ss;
		spool_get_stats(b->spool, &ss);
		st->spool_on = true;
		st->spool_max = ss.max;
		st->spool_count = ss.count;
		st->spool_written = ss.written;
		st->spool_acked = ss.acked;
		st->spool_dropped = ss.dropped;
		st->spool_errors = ss.errors;
	}
	if (b->dynsec) {
		struct dynsec_stats ds;
		dynsec_get_stats(b->dynsec, &ds);
		st->acl_ok = ds.acl_ok;
		st->dynsec_sent = ds.sent;
		st->dynsec_failed = ds.failed;
	}
}

void mqtt_bridge_shutdown(struct mqtt_bridge *b)
{
	if (!b || b->shutting_down)
		return;
	b->shutting_down = true;
	if (b->dynsec) {
		dynsec_detach(b->dynsec);
		b->dynsec = NULL;
	}
	if (b->connected) {
		/* what is queued goes out first, as far as the socket takes it */
		while (bus_sub_pending(b->sub) && can_send(b))
			drain_cb(&b->drain);
		/* PUBACKs already in the socket let their messages leave the spool */
		if (b->spool && b->connected)
			mosquitto_loop_read(b->mosq, 16);
		if (b->fl_state == FL_UP && fl_flush(b) && (!b->spool || fl_read(b)) &&
		    fl_reserve(b, 2) == 0) {
			b->out_len += mqttpkt_disconnect(b->out + b->out_len);
			fl_flush(b);
		}
		b->connected = false;
		mosquitto_disconnect_v5(b->mosq, MQTT_RC_NORMAL_DISCONNECTION, NULL);
		if (mosquitto_socket(b->mosq) >= 0)
			flush(b); /* the frames written by the bridge, then the DISCONNECT */
		log_info("mqtt: disconnected from %s:%d", b->host, b->port);
	}
	b->connected = false;
	fl_down(b, "shutdown");
	for (unsigned i = 0; b->fl_slots && i < FL_SLOTS; i++) {
		bus_msg_unref(b->fl_slots[i].m);
		b->fl_slots[i].m = NULL;
		b->fl_slots[i].id = 0;
	}
	if (b->spool) {
		/* what is still queued for the spool goes there, for the next start */
		while (bus_sub_pending(b->sub))
			drain_cb(&b->drain);
	}
	if (b->poll) {
		uv_close((uv_handle_t *)b->poll, poll_close_cb);
		b->poll = NULL;
	}
	uv_close((uv_handle_t *)&b->misc, NULL);
	uv_close((uv_handle_t *)&b->reconnect, NULL);
	uv_close((uv_handle_t *)&b->hold, NULL);
	uv_close((uv_handle_t *)&b->drain, NULL);
	pthread_mutex_lock(&b->mu);
	b->async_closed = true;
	pthread_mutex_unlock(&b->mu);
	uv_close((uv_handle_t *)&b->connect_async, NULL);
	bus_sub_free(b->sub);
	b->sub = NULL;
}

void mqtt_bridge_free(struct mqtt_bridge *b)
{
	if (!b)
		return;
	pthread_mutex_lock(&b->mu);
	bool orphan = b->connecting;
	b->orphaned = orphan;
	pthread_mutex_unlock(&b->mu);
	spool_close(b->spool);
	free(b->mid_seq);
	free(b->out);
	if (orphan) {
		/* the connect thread has the client: it frees the rest when
		 * its connect returns */
		return;
	}
	bridge_release(b);
}
