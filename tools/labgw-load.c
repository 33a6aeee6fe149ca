// SPDX-License-Identifier: MIT
/*
 * labgw-load: the load generator of the fan-out benchmarks (bench/fanout.py).
 *
 * It opens CONNS WebSocket subscribers on one libuv loop and, optionally,
 * injects frames on a fixed open-loop schedule: frame k is due at
 * t0 + k / RATE whatever the server does, and carries that scheduled time,
 * so latency is measured from when the frame should have gone out and a
 * server that stalls the sender cannot hide its delay (no coordinated
 * omission). Every delivery's latency is arrival - scheduled time, on
 * CLOCK_MONOTONIC: sender and receivers are this one process.
 *
 * Subscribers (-P):
 *   labgw  labgwd's API (/api/v1/ws, subprotocol labgw.v1, Authorization:
 *          Bearer KEY, then {"op":"sub","topic":TOPIC}); gap notices counted
 *   mqtt   MQTT 3.1.1 over WebSocket (subprotocol mqtt), as to mosquitto's
 *          `protocol websockets` listener: CONNECT, SUBSCRIBE TOPIC QoS 0
 *   plain  the opening handshake only (SUBPROTO), e.g. idle connections to
 *          libwebsockets' test server
 *
 * Injection (-I):
 *   none        subscribers only: they stay connected for DURATION seconds
 *   gwmp:PORT   PUSH_DATA datagrams (GWMP v2) to a labgwd lorawan radio
 *   mqtt:PORT   MQTT PUBLISH QoS 0 to a broker's plain MQTT listener, each
 *               payload a labgwd-like LoRaWAN frame of about SIZE bytes
 *
 * Either way each frame's PHYPayload is an unconfirmed uplink whose
 * FRMPayload holds the sequence number and the scheduled send time (µs,
 * u64 LE each); subscribers find it in the frame's "payload" (base64).
 *
 * It prints {"event":"ready",...} once every subscriber is subscribed, then
 * one JSON object with the results, on stdout.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

enum proto { P_LABGW, P_MQTT, P_PLAIN };
enum inject { I_NONE, I_GWMP, I_MQTT };
enum cstate { C_IDLE, C_CONNECTING, C_HANDSHAKE, C_SUBSCRIBING, C_READY, C_CLOSED };

#define FRM_LEN	   16
#define PHY_LEN	   (1 + 4 + 1 + 2 + 1 + FRM_LEN + 4)
#define MAX_BATCH  16
#define PING_EVERY 20000 /* ms: MQTT PINGREQ (keepalive 60 s) */

struct opts {
	const char *host;
	int port;
	const char *path;
	const char *key;
	const char *topic;
	const char *subproto;
	enum proto proto;
	int conns;
	int parallel;
	double rate;
	double duration;
	double warmup;
	double drain;
	enum inject inject;
	int inject_port;
	int batch;
	int size;
	int stall;
};

struct conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	int idx;
	enum cstate st;
	bool stalled;
	uint8_t *in; /* bytes read, not yet parsed */
	size_t in_len, in_cap;
	uint8_t *msg; /* WebSocket message being reassembled */
	size_t msg_len, msg_cap;
	int msg_op;
	uint8_t *mq; /* MQTT byte stream (over WebSocket binary messages) */
	size_t mq_len, mq_cap;
	uint64_t frames;
};

struct stats {
	uint64_t sent, send_errors, late_max_us;
	uint64_t frames, stalled_frames, bytes, gaps, gap_dropped, other;
	uint64_t connected, failed, closed_early, bad;
	uint32_t *lat; /* µs, one per delivery to a reading subscriber */
	size_t lat_n, lat_cap;
};

static struct opts o = {.host = "127.0.0.1",
			.path = "/api/v1/ws",
			.topic = "labgw/v1/adm/+/rx/lorawan/#",
			.conns = 100,
			.parallel = 64,
			.rate = 0,
			.duration = 10,
			.warmup = 1,
			.drain = 2,
			.batch = 1,
			.size = 0};
static struct stats st;
static uv_loop_t *loop;
static struct conn *conns;
static int next_conn, inflight, ready_n;
static uv_timer_t tick_timer, phase_timer, ping_timer;
static uint64_t t0_us, end_us, seq_next;
static int udp_fd = -1;
static uv_tcp_t pub_tcp;
static uv_connect_t pub_creq;
static bool pub_ready;
static uint64_t last_frame_us;

static uint64_t now_us(void)
{
	return uv_hrtime() / 1000u;
}

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n);
	if (!q) {
		fprintf(stderr, "labgw-load: out of memory\n");
		exit(1);
	}
	return q;
}

static void grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return;
	size_t c = *cap ? *cap : 4096;
	while (c < need)
		c *= 2;
	*buf = xrealloc(*buf, c);
	*cap = c;
}

/* ---- base64 ------------------------------------------------------------ */

static const char b64tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t b64_encode(const uint8_t *in, size_t len, char *out)
{
	size_t n = 0;
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[n++] = b64tbl[(v >> 18) & 63];
		out[n++] = b64tbl[(v >> 12) & 63];
		out[n++] = i + 1 < len ? b64tbl[(v >> 6) & 63] : '=';
		out[n++] = i + 2 < len ? b64tbl[v & 63] : '=';
	}
	out[n] = '\0';
	return n;
}

static int b64_val(uint8_t c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

/* Decode up to outcap bytes from the base64 text at s (stops at a non-base64
 * character); returns the bytes written. */
static size_t b64_decode_prefix(const uint8_t *s, size_t n, uint8_t *out, size_t outcap)
{
	uint32_t acc = 0;
	int bits = 0;
	size_t w = 0;
	for (size_t i = 0; i < n && w < outcap; i++) {
		int v = b64_val(s[i]);
		if (v < 0)
			break;
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[w++] = (uint8_t)(acc >> bits);
		}
	}
	return w;
}

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* The PHYPayload of frame seq, due at t_us, as base64 into out (>= 64). */
static void phy_b64(uint64_t seq, uint64_t t_us, char *out)
{
	uint8_t phy[PHY_LEN];
	uint32_t addr = 0x26200000u + (uint32_t)(seq % 1000);
	uint32_t fcnt = (uint32_t)(seq / 1000);
	phy[0] = 0x40; /* unconfirmed data up */
	phy[1] = (uint8_t)addr;
	phy[2] = (uint8_t)(addr >> 8);
	phy[3] = (uint8_t)(addr >> 16);
	phy[4] = (uint8_t)(addr >> 24);
	phy[5] = 0; /* FCtrl */
	phy[6] = (uint8_t)fcnt;
	phy[7] = (uint8_t)(fcnt >> 8);
	phy[8] = 1; /* FPort */
	put_le64(phy + 9, seq);
	put_le64(phy + 17, t_us);
	memset(phy + 25, 0xa5, 4); /* MIC: not checked for unclaimed devices */
	b64_encode(phy, sizeof(phy), out);
}

/* ---- deliveries --------------------------------------------------------- */

static void record(struct conn *c, const uint8_t *p, size_t n)
{
	static const char key[] = "\"payload\":\"";
	const uint8_t *k = memmem(p, n, key, sizeof(key) - 1);
	uint8_t phy[PHY_LEN];
	if (!k) {
		st.other++;
		return;
	}
	k += sizeof(key) - 1;
	if (b64_decode_prefix(k, n - (size_t)(k - p), phy, sizeof(phy)) < 25 || phy[0] != 0x40) {
		st.bad++;
		return;
	}
	uint64_t t = get_le64(phy + 17), now = now_us();
	last_frame_us = now;
	c->frames++;
	st.bytes += n;
	if (c->stalled) {
		st.stalled_frames++;
		return;
	}
	st.frames++;
	if (st.lat_n == st.lat_cap) {
		st.lat_cap = st.lat_cap ? 2 * st.lat_cap : 1 << 16;
		st.lat = xrealloc(st.lat, st.lat_cap * sizeof(*st.lat));
	}
	st.lat[st.lat_n++] = now > t ? (uint32_t)(now - t < UINT32_MAX ? now - t : UINT32_MAX) : 0;
}

static uint64_t json_uint_after(const uint8_t *p, size_t n, const char *key)
{
	const uint8_t *k = memmem(p, n, key, strlen(key));
	if (!k)
		return 0;
	k += strlen(key);
	uint64_t v = 0;
	while (k < p + n && *k >= '0' && *k <= '9')
		v = v * 10 + (uint64_t)(*k++ - '0');
	return v;
}

/* ---- writes ------------------------------------------------------------- */

struct wreq {
	uv_write_t req;
	uv_buf_t buf;
};

static void write_done(uv_write_t *req, int status)
{
	struct wreq *w = (struct wreq *)req;
	free(w->buf.base);
	free(w);
}

/* Takes ownership of data (malloc'd). */
static void stream_write(uv_stream_t *s, uint8_t *data, size_t len)
{
	struct wreq *w = xrealloc(NULL, sizeof(*w));
	w->buf = uv_buf_init((char *)data, (unsigned)len);
	if (uv_write(&w->req, s, &w->buf, 1, write_done) < 0) {
		free(data);
		free(w);
		st.send_errors++;
	}
}

/* A masked client frame. */
static void ws_send(struct conn *c, int op, const void *data, size_t len)
{
	uint8_t *f = xrealloc(NULL, len + 14);
	size_t h = 0;
	static const uint8_t mask[4] = {0x3a, 0x91, 0x5c, 0xe7};
	f[h++] = (uint8_t)(0x80 | op);
	if (len < 126) {
		f[h++] = (uint8_t)(0x80 | len);
	} else if (len < 65536) {
		f[h++] = 0x80 | 126;
		f[h++] = (uint8_t)(len >> 8);
		f[h++] = (uint8_t)len;
	} else {
		f[h++] = 0x80 | 127;
		for (int i = 7; i >= 0; i--)
			f[h++] = (uint8_t)((uint64_t)len >> (8 * i));
	}
	memcpy(f + h, mask, 4);
	h += 4;
	for (size_t i = 0; i < len; i++)
		f[h + i] = ((const uint8_t *)data)[i] ^ mask[i & 3];
	stream_write((uv_stream_t *)&c->tcp, f, h + len);
}

static size_t mqtt_varint(uint8_t *p, size_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v % 128;
		v /= 128;
		p[n++] = (uint8_t)(v ? b | 0x80 : b);
	} while (v);
	return n;
}

/* An MQTT packet: type byte, then the body. Returns its length in out. */
static size_t mqtt_packet(uint8_t *out, uint8_t type, const uint8_t *body, size_t len)
{
	out[0] = type;
	size_t h = 1 + mqtt_varint(out + 1, len);
	memcpy(out + h, body, len);
	return h + len;
}

static size_t mqtt_connect(uint8_t *out, const char *client_id)
{
	uint8_t body[128];
	size_t idl = strlen(client_id), n = 0;
	static const uint8_t var[] = {0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, 0, 60};
	memcpy(body, var, sizeof(var));
	n = sizeof(var);
	body[n++] = (uint8_t)(idl >> 8);
	body[n++] = (uint8_t)idl;
	memcpy(body + n, client_id, idl);
	n += idl;
	return mqtt_packet(out, 0x10, body, n);
}

/* ---- subscribers ---------------------------------------------------------- */

static void start_more(void);
static void all_ready(void);

static void conn_done_setup(struct conn *c, bool ok)
{
	inflight--;
	if (ok) {
		c->st = C_READY;
		st.connected++;
		if (++ready_n == o.conns)
			all_ready();
	} else {
		st.failed++;
		c->st = C_CLOSED;
		uv_read_stop((uv_stream_t *)&c->tcp);
		if (ready_n + (int)st.failed == o.conns)
			all_ready();
	}
	start_more();
}

static void conn_lost(struct conn *c)
{
	if (c->st == C_READY)
		st.closed_early++;
	else if (c->st != C_CLOSED)
		conn_done_setup(c, false);
	c->st = C_CLOSED;
}

static void mqtt_in(struct conn *c)
{
	size_t off = 0;
	while (c->mq_len - off >= 2) {
		const uint8_t *p = c->mq + off;
		size_t avail = c->mq_len - off, len = 0, mult = 1, i = 1;
		for (;; i++) {
			if (i >= avail || i > 4)
				goto more;
			len += (p[i] & 127) * mult;
			mult *= 128;
			if (!(p[i] & 128))
				break;
		}
		size_t h = i + 1;
		if (avail < h + len)
			break;
		const uint8_t *b = p + h;
		switch (p[0] >> 4) {
		case 2: /* CONNACK */
			if (len >= 2 && b[1] == 0 && c->st == C_SUBSCRIBING) {
				uint8_t body[512], pkt[520];
				size_t tl = strlen(o.topic), n = 0;
				body[n++] = 0;
				body[n++] = 1;
				body[n++] = (uint8_t)(tl >> 8);
				body[n++] = (uint8_t)tl;
				memcpy(body + n, o.topic, tl);
				n += tl;
				body[n++] = 0;
				size_t pl = mqtt_packet(pkt, 0x82, body, n);
				ws_send(c, 2, pkt, pl);
			} else if (c->st == C_SUBSCRIBING) {
				conn_done_setup(c, false);
			}
			break;
		case 9: /* SUBACK */
			if (c->st == C_SUBSCRIBING)
				conn_done_setup(c, len >= 3 && b[2] != 0x80);
			break;
		case 3: { /* PUBLISH */
			if (len < 2)
				break;
			size_t tl = ((size_t)b[0] << 8) | b[1], q = (p[0] >> 1) & 3;
			size_t skip = 2 + tl + (q ? 2 : 0);
			if (skip <= len)
				record(c, b + skip, len - skip);
			break;
		}
		default:
			break;
		}
		off += h + len;
	}
more:
	if (off) {
		memmove(c->mq, c->mq + off, c->mq_len - off);
		c->mq_len -= off;
	}
}

static void message_in(struct conn *c, int op, const uint8_t *p, size_t n)
{
	switch (o.proto) {
	case P_LABGW:
		if (c->st == C_SUBSCRIBING) {
			if (memmem(p, n, "\"re\":1", 6))
				conn_done_setup(c, memmem(p, n, "\"ok\":true", 9) != NULL);
			return;
		}
		if (memmem(p, n, "\"op\":\"frame\"", 12)) {
			record(c, p, n);
		} else if (memmem(p, n, "\"op\":\"gap\"", 10)) {
			st.gaps++;
			st.gap_dropped += json_uint_after(p, n, "\"dropped\":");
		} else {
			st.other++;
		}
		return;
	case P_MQTT:
		grow(&c->mq, &c->mq_cap, c->mq_len + n);
		memcpy(c->mq + c->mq_len, p, n);
		c->mq_len += n;
		mqtt_in(c);
		return;
	case P_PLAIN:
		st.other++;
		return;
	}
}

/* Parse WebSocket frames out of c->in; returns bytes consumed. */
static size_t ws_in(struct conn *c, size_t start)
{
	size_t off = start;
	for (;;) {
		uint8_t *p = c->in + off;
		size_t avail = c->in_len - off;
		if (avail < 2)
			break;
		int fin = p[0] & 0x80, op = p[0] & 0x0f, masked = p[1] & 0x80;
		uint64_t len = p[1] & 0x7f;
		size_t h = 2;
		if (len == 126) {
			if (avail < 4)
				break;
			len = ((uint64_t)p[2] << 8) | p[3];
			h = 4;
		} else if (len == 127) {
			if (avail < 10)
				break;
			len = 0;
			for (int i = 0; i < 8; i++)
				len = (len << 8) | p[2 + i];
			h = 10;
		}
		uint8_t mk[4] = {0};
		if (masked) {
			if (avail < h + 4)
				break;
			memcpy(mk, p + h, 4);
			h += 4;
		}
		if (avail < h + len)
			break;
		uint8_t *data = p + h;
		if (masked)
			for (uint64_t i = 0; i < len; i++)
				data[i] ^= mk[i & 3];
		off += h + (size_t)len;
		if (op == 0x9) {
			ws_send(c, 0xA, data, (size_t)len);
		} else if (op == 0x8) {
			conn_lost(c);
			return off - start;
		} else if (op == 0x1 || op == 0x2 || op == 0x0) {
			if (op != 0)
				c->msg_op = op;
			if (fin && op != 0 && c->msg_len == 0) {
				message_in(c, op, data, (size_t)len);
			} else {
				grow(&c->msg, &c->msg_cap, c->msg_len + (size_t)len);
				memcpy(c->msg + c->msg_len, data, (size_t)len);
				c->msg_len += (size_t)len;
				if (fin) {
					message_in(c, c->msg_op, c->msg, c->msg_len);
					c->msg_len = 0;
				}
			}
		}
	}
	return off - start;
}

static void handshake_done(struct conn *c)
{
	switch (o.proto) {
	case P_LABGW: {
		char sub[600];
		int n = snprintf(sub, sizeof(sub), "{\"op\":\"sub\",\"id\":1,\"topic\":\"%s\"}",
				 o.topic);
		c->st = C_SUBSCRIBING;
		ws_send(c, 1, sub, (size_t)n);
		return;
	}
	case P_MQTT: {
		uint8_t pkt[200];
		char id[64];
		snprintf(id, sizeof(id), "ll-%d-%d", (int)getpid(), c->idx);
		c->st = C_SUBSCRIBING;
		ws_send(c, 2, pkt, mqtt_connect(pkt, id));
		return;
	}
	case P_PLAIN:
		c->st = C_SUBSCRIBING;
		conn_done_setup(c, true);
		return;
	}
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	struct conn *c = h->data;
	grow(&c->in, &c->in_cap, c->in_len + 65536);
	*buf = uv_buf_init((char *)c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void read_cb(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
	struct conn *c = s->data;
	if (nread < 0) {
		uv_read_stop(s);
		conn_lost(c);
		return;
	}
	c->in_len += (size_t)nread;
	size_t off = 0;
	if (c->st == C_HANDSHAKE) {
		uint8_t *e = memmem(c->in, c->in_len, "\r\n\r\n", 4);
		if (!e)
			return;
		if (c->in_len < 12 || memcmp(c->in, "HTTP/1.1 101", 12)) {
			uv_read_stop(s);
			conn_done_setup(c, false);
			return;
		}
		off = (size_t)(e - c->in) + 4;
		handshake_done(c);
	}
	if (c->st != C_CLOSED)
		off += ws_in(c, off);
	if (off) {
		memmove(c->in, c->in + off, c->in_len - off);
		c->in_len -= off;
	}
}

static void connect_cb(uv_connect_t *req, int status)
{
	struct conn *c = req->data;
	if (status < 0) {
		conn_done_setup(c, false);
		return;
	}
	char hs[2048];
	int n = snprintf(hs, sizeof(hs),
			 "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
			 "Connection: Upgrade\r\nSec-WebSocket-Key: bGFiZ3ctbG9hZC1rZXktMQ==\r\n"
			 "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: %s\r\n%s%s%s\r\n",
			 o.path, o.host, o.port, o.subproto, o.key ? "Authorization: Bearer " : "",
			 o.key ? o.key : "", o.key ? "\r\n" : "");
	c->st = C_HANDSHAKE;
	uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, read_cb);
	stream_write((uv_stream_t *)&c->tcp, (uint8_t *)strdup(hs), (size_t)n);
}

static void start_more(void)
{
	struct sockaddr_in sa;
	uv_ip4_addr(o.host, o.port, &sa);
	while (inflight < o.parallel && next_conn < o.conns) {
		struct conn *c = &conns[next_conn];
		c->idx = next_conn++;
		uv_tcp_init(loop, &c->tcp);
		c->tcp.data = c;
		c->creq.data = c;
		c->st = C_CONNECTING;
		inflight++;
		if (uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, connect_cb) < 0)
			conn_done_setup(c, false);
	}
}

/* ---- injection ------------------------------------------------------------ */

static char frame_pad[65536];
static int frame_pad_len;

/* A labgwd-like LoRaWAN frame, for the broker's subscribers. */
static size_t mqtt_frame_json(char *out, size_t cap, uint64_t seq, const char *b64)
{
	int n = snprintf(out, cap,
			 "{\"v\":1,\"id\":\"lab1-%016" PRIx64 "\",\"time\":\"2026-11-26T08:40:01."
			 "123456Z\",\"gw\":\"lab1\",\"tech\":\"lorawan\",\"radio\":\"lora0\","
			 "\"type\":\"rx.lorawan.uplink\",\"dev\":{\"id\":\"%08" PRIx32
			 "\",\"claimed\":false},\"sig\":{\"rssi\":-57,\"snr\":7.5,\"freq_hz\":"
			 "868100000,\"sf\":7,\"bw_hz\":125000},\"payload\":\"%s\",\"data\":{"
			 "\"mtype\":\"unconfirmed_up\",\"fcnt\":%" PRIu64 ",\"fport\":1%s}}",
			 seq, 0x26200000u + (uint32_t)(seq % 1000), b64, seq / 1000, frame_pad);
	return n < 0 ? 0 : (size_t)n;
}

static void emit(uint64_t first, int n, uint64_t due0, uint64_t period)
{
	static uint8_t buf[65536];
	char b64[64];
	if (o.inject == I_GWMP) {
		static uint16_t token;
		static const uint8_t eui[8] = {0xaa, 0x55, 0x5a, 0, 0, 0, 0xbe, 0x02};
		size_t len = 0;
		buf[0] = 2;
		token++;
		buf[1] = (uint8_t)(token >> 8);
		buf[2] = (uint8_t)token;
		buf[3] = 0;
		memcpy(buf + 4, eui, 8);
		len = 12;
		len += (size_t)snprintf((char *)buf + len, sizeof(buf) - len, "{\"rxpk\":[");
		for (int k = 0; k < n; k++) {
			uint64_t seq = first + (uint64_t)k;
			phy_b64(seq, due0 + (uint64_t)k * period, b64);
			len += (size_t)snprintf(
				(char *)buf + len, sizeof(buf) - len,
				"%s{\"tmst\":%" PRIu32 ",\"chan\":0,\"rfch\":0,\"freq\":868.100000,"
				"\"stat\":1,\"modu\":\"LORA\",\"datr\":\"SF7BW125\",\"codr\":\"4/"
				"5\","
				"\"rssi\":-57,\"lsnr\":7.5,\"size\":%d,\"data\":\"%s\"}",
				k ? "," : "", (uint32_t)(due0 + (uint64_t)k * period), PHY_LEN,
				b64);
		}
		len += (size_t)snprintf((char *)buf + len, sizeof(buf) - len, "]}");
		if (send(udp_fd, buf, len, 0) < 0)
			st.send_errors++;
		else
			st.sent += (uint64_t)n;
	} else if (o.inject == I_MQTT && pub_ready) {
		size_t total = 0;
		uint8_t *out = xrealloc(NULL, (size_t)n * (sizeof(frame_pad) + 1024));
		for (int k = 0; k < n; k++) {
			uint64_t seq = first + (uint64_t)k;
			char json[sizeof(frame_pad) + 800];
			phy_b64(seq, due0 + (uint64_t)k * period, b64);
			size_t jl = mqtt_frame_json(json, sizeof(json), seq, b64);
			size_t tl = strlen(o.topic);
			uint8_t *p = out + total;
			p[0] = 0x30;
			size_t h = 1 + mqtt_varint(p + 1, 2 + tl + jl);
			p[h++] = (uint8_t)(tl >> 8);
			p[h++] = (uint8_t)tl;
			memcpy(p + h, o.topic, tl);
			h += tl;
			memcpy(p + h, json, jl);
			total += h + jl;
		}
		stream_write((uv_stream_t *)&pub_tcp, out, total);
		st.sent += (uint64_t)n;
	} else {
		st.send_errors += (uint64_t)n;
	}
}

static void finish(void);

static void drain_cb(uv_timer_t *t)
{
	uint64_t now = now_us();
	/* done when nothing arrived for 500 ms, or after the drain time */
	if (now - last_frame_us > 500000 || now > end_us + (uint64_t)(o.drain * 1e6))
		finish();
}

static void tick_cb(uv_timer_t *t)
{
	uint64_t now = now_us();
	uint64_t total = (uint64_t)(o.rate * o.duration + 0.5);
	double period = 1e6 / o.rate;
	while (seq_next < total) {
		uint64_t due = t0_us + (uint64_t)((double)seq_next * period);
		if (due > now)
			break;
		if (now - due > st.late_max_us)
			st.late_max_us = now - due;
		int n = 1;
		while (n < o.batch && seq_next + (uint64_t)n < total &&
		       t0_us + (uint64_t)((double)(seq_next + (uint64_t)n) * period) <= now)
			n++;
		emit(seq_next, n, due, (uint64_t)period);
		seq_next += (uint64_t)n;
	}
	if (seq_next >= total) {
		uv_timer_stop(t);
		end_us = now;
		last_frame_us = now;
		uv_timer_start(&phase_timer, drain_cb, 100, 100);
	}
}

static void hold_done_cb(uv_timer_t *t)
{
	finish();
}

static void start_schedule_cb(uv_timer_t *t)
{
	for (int i = 0; i < o.stall && i < o.conns; i++) {
		conns[i].stalled = true;
		if (conns[i].st == C_READY) {
			/* a small window: the server's queue, not the kernel's
			 * buffers, is what fills up */
			int rcvbuf = 4096;
			uv_recv_buffer_size((uv_handle_t *)&conns[i].tcp, &rcvbuf);
			uv_read_stop((uv_stream_t *)&conns[i].tcp);
		}
	}
	t0_us = now_us() + 1000;
	if (o.inject == I_NONE || o.rate <= 0) {
		end_us = t0_us + (uint64_t)(o.duration * 1e6);
		uv_timer_start(&phase_timer, hold_done_cb, (uint64_t)(o.duration * 1000), 0);
		return;
	}
	uv_timer_start(&tick_timer, tick_cb, 1, 1);
}

static void all_ready(void)
{
	printf("{\"event\":\"ready\",\"connected\":%" PRIu64 ",\"failed\":%" PRIu64 "}\n",
	       st.connected, st.failed);
	fflush(stdout);
	uv_timer_start(&phase_timer, start_schedule_cb, (uint64_t)(o.warmup * 1000), 0);
}

static void ping_cb(uv_timer_t *t)
{
	static const uint8_t ping[2] = {0xc0, 0};
	for (int i = 0; i < o.conns; i++)
		if (conns[i].st == C_READY && !conns[i].stalled)
			ws_send(&conns[i], 2, ping, 2);
}

static void pub_read_alloc(uv_handle_t *h, size_t s, uv_buf_t *b)
{
	static char buf[4096];
	*b = uv_buf_init(buf, sizeof(buf));
}

static void pub_read(uv_stream_t *s, ssize_t n, const uv_buf_t *b)
{
	if (n < 0) {
		fprintf(stderr, "labgw-load: publisher connection lost\n");
		pub_ready = false;
		uv_read_stop(s);
		return;
	}
	if (n >= 4 && (uint8_t)b->base[0] == 0x20)
		pub_ready = b->base[3] == 0;
}

static void pub_connect_cb(uv_connect_t *req, int status)
{
	if (status < 0) {
		fprintf(stderr, "labgw-load: publisher: %s\n", uv_strerror(status));
		exit(1);
	}
	uint8_t pkt[200];
	size_t n = mqtt_connect(pkt, "ll-publisher");
	uint8_t *cp = xrealloc(NULL, n);
	memcpy(cp, pkt, n);
	uv_tcp_nodelay(&pub_tcp, 1);
	uv_read_start((uv_stream_t *)&pub_tcp, pub_read_alloc, pub_read);
	stream_write((uv_stream_t *)&pub_tcp, cp, n);
}

/* ---- results -------------------------------------------------------------- */

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static double pct(double p)
{
	if (!st.lat_n)
		return -1;
	size_t k = (size_t)llround(p / 100.0 * (double)(st.lat_n - 1));
	return st.lat[k] / 1000.0;
}

static void finish(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	qsort(st.lat, st.lat_n, sizeof(*st.lat), cmp_u32);
	int reading = 0;
	for (int i = 0; i < o.conns; i++)
		if (conns[i].st == C_READY && !conns[i].stalled)
			reading++;
	uint64_t expected = st.sent * (uint64_t)reading;
	double win = (double)(end_us - t0_us) / 1e6;
	printf("{\"proto\":\"%s\",\"conns\":%d,\"connected\":%" PRIu64 ",\"failed\":%" PRIu64
	       ",\"closed_early\":%" PRIu64 ",\"stalled\":%d,\"reading\":%d,\"rate\":%.1f,"
	       "\"duration_s\":%.3f,\"batch\":%d,\"sent\":%" PRIu64 ",\"send_errors\":%" PRIu64
	       ",\"send_late_max_ms\":%.3f,\"expected\":%" PRIu64 ",\"received\":%" PRIu64
	       ",\"lost\":%" PRId64 ",\"stalled_received\":%" PRIu64 ",\"gaps\":%" PRIu64
	       ",\"gap_dropped\":%" PRIu64 ",\"other_messages\":%" PRIu64 ",\"bad\":%" PRIu64
	       ",\"msg_bytes_avg\":%.1f,\"deliveries_per_s\":%.1f,"
	       "\"latency_ms\":{\"n\":%zu,\"p50\":%.3f,\"p90\":%.3f,\"p99\":%.3f,"
	       "\"p999\":%.3f,\"max\":%.3f},\"client_cpu_s\":%.3f}\n",
	       o.proto == P_LABGW  ? "labgw"
	       : o.proto == P_MQTT ? "mqtt"
				   : "plain",
	       o.conns, st.connected, st.failed, st.closed_early, o.stall, reading, o.rate, win,
	       o.batch, st.sent, st.send_errors, st.late_max_us / 1000.0, expected, st.frames,
	       (int64_t)expected - (int64_t)st.frames, st.stalled_frames, st.gaps, st.gap_dropped,
	       st.other, st.bad,
	       st.frames + st.stalled_frames
		       ? (double)st.bytes / (double)(st.frames + st.stalled_frames)
		       : 0.0,
	       win > 0 ? (double)st.frames / win : 0.0, st.lat_n, pct(50), pct(90), pct(99),
	       pct(99.9), st.lat_n ? st.lat[st.lat_n - 1] / 1000.0 : -1.0,
	       (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
		       ru.ru_stime.tv_usec / 1e6);
	fflush(stdout);
	/* a load tool: the kernel closes the sockets */
	_exit(0);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: labgw-load -p PORT [-H HOST] [-P labgw|mqtt|plain] [-u PATH] [-k KEY]\n"
		"                  [-t TOPIC] [-S SUBPROTOCOL] [-c CONNS] [-j PARALLEL]\n"
		"                  [-I none|gwmp:PORT|mqtt:PORT] [-r RATE] [-b BATCH] [-d "
		"SECONDS]\n"
		"                  [-w WARMUP_S] [-D DRAIN_S] [-s STALLED_CONNS] [-z "
		"FRAME_BYTES]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	int c;
	while ((c = getopt(argc, argv, "H:p:P:u:k:t:S:c:j:I:r:b:d:w:D:s:z:")) != -1) {
		switch (c) {
		case 'H':
			o.host = optarg;
			break;
		case 'p':
			o.port = atoi(optarg);
			break;
		case 'P':
			if (!strcmp(optarg, "labgw"))
				o.proto = P_LABGW;
			else if (!strcmp(optarg, "mqtt"))
				o.proto = P_MQTT;
			else if (!strcmp(optarg, "plain"))
				o.proto = P_PLAIN;
			else
				usage();
			break;
		case 'u':
			o.path = optarg;
			break;
		case 'k':
			o.key = optarg;
			break;
		case 't':
			o.topic = optarg;
			break;
		case 'S':
			o.subproto = optarg;
			break;
		case 'c':
			o.conns = atoi(optarg);
			break;
		case 'j':
			o.parallel = atoi(optarg);
			break;
		case 'I':
			if (!strcmp(optarg, "none"))
				o.inject = I_NONE;
			else if (!strncmp(optarg, "gwmp:", 5))
				o.inject = I_GWMP, o.inject_port = atoi(optarg + 5);
			else if (!strncmp(optarg, "mqtt:", 5))
				o.inject = I_MQTT, o.inject_port = atoi(optarg + 5);
			else
				usage();
			break;
		case 'r':
			o.rate = strtod(optarg, NULL);
			break;
		case 'b':
			o.batch = atoi(optarg);
			break;
		case 'd':
			o.duration = strtod(optarg, NULL);
			break;
		case 'w':
			o.warmup = strtod(optarg, NULL);
			break;
		case 'D':
			o.drain = strtod(optarg, NULL);
			break;
		case 's':
			o.stall = atoi(optarg);
			break;
		case 'z':
			o.size = atoi(optarg);
			break;
		default:
			usage();
		}
	}
	if (o.port <= 0 || o.port > 65535 || o.conns < 0 || o.parallel < 1 || o.batch < 1 ||
	    o.batch > MAX_BATCH || o.duration <= 0 || (o.inject != I_NONE && o.rate <= 0) ||
	    o.size < 0 || o.size > (int)sizeof(frame_pad) - 64 || strlen(o.topic) > 400)
		usage();
	if (!o.subproto)
		o.subproto = o.proto == P_MQTT ? "mqtt" : "labgw.v1";

	loop = uv_default_loop();
	conns = calloc((size_t)(o.conns ? o.conns : 1), sizeof(*conns));
	uv_timer_init(loop, &tick_timer);
	uv_timer_init(loop, &phase_timer);
	uv_timer_init(loop, &ping_timer);

	if (o.inject == I_MQTT) {
		/* pad the frame so that it is about -z bytes */
		char probe[2048], b64[64];
		phy_b64(0, 0, b64);
		size_t base = mqtt_frame_json(probe, sizeof(probe), 0, b64);
		if (o.size > (int)base + 12) {
			int pad = o.size - (int)base - 10;
			frame_pad_len = snprintf(frame_pad, sizeof(frame_pad), ",\"pad\":\"");
			memset(frame_pad + frame_pad_len, 'x', (size_t)pad);
			frame_pad_len += pad;
			frame_pad[frame_pad_len++] = '"';
			frame_pad[frame_pad_len] = '\0';
		}
		struct sockaddr_in sa;
		uv_ip4_addr(o.host, o.inject_port, &sa);
		uv_tcp_init(loop, &pub_tcp);
		uv_tcp_connect(&pub_creq, &pub_tcp, (struct sockaddr *)&sa, pub_connect_cb);
	} else if (o.inject == I_GWMP) {
		struct sockaddr_in sa;
		uv_ip4_addr(o.host, o.inject_port, &sa);
		udp_fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		int sndbuf = 4 << 20;
		setsockopt(udp_fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
		if (udp_fd < 0 || connect(udp_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			perror("labgw-load: gwmp socket");
			return 1;
		}
		/* a PULL_DATA first, as a packet forwarder starts */
		uint8_t pull[12] = {2, 0, 1, 2, 0xaa, 0x55, 0x5a, 0, 0, 0, 0xbe, 0x02};
		if (send(udp_fd, pull, sizeof(pull), 0) < 0)
			perror("labgw-load: PULL_DATA");
	}
	if (o.proto == P_MQTT)
		uv_timer_start(&ping_timer, ping_cb, PING_EVERY, PING_EVERY);
	if (o.conns == 0)
		all_ready();
	else
		start_more();
	return uv_run(loop, UV_RUN_DEFAULT);
}
