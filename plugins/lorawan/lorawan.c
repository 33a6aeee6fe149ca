// SPDX-License-Identifier: MIT
/*
 * The lorawan radio module: a GWMP (Semtech UDP) server for LoRa packet
 * forwarders. Uplinks become rx.lorawan.uplink / rx.lorawan.join frames,
 * with MIC check, 32-bit frame counters and decryption for devices claimed
 * with ABP session keys; sandboxes send class A downlinks (RX1, else RX2)
 * within the EU868 duty cycle of each concentrator; optionally every
 * datagram is relayed to upstream network servers, whose downlinks pass the
 * same duty-cycle ledger.
 *
 * Configuration ([radio NAME] with module = lorawan), see README.md:
 *   listen, keepalive, rx2_datr, rx2_freq, rx_lead, tx_power, duty_cycle,
 *   upstream, expect_tx_ack, region, max_concentrators
 *
 * Everything lives in the instance; every table is bounded.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/crypto.h>

#include <labgw/plugin.h>

#include "dutycycle.h"
#include "frame_builder.h"
#include "gwmp.h"
#include "lora_airtime.h"
#include "lorawan_crypto.h"
#include "phy.h"

#ifndef LABGW_VERSION
#define LABGW_VERSION "0.0.0-dev"
#endif

#define UPSTREAM_MAX	  4
#define DEV_MAX		  4096
#define DEV_BUCKETS	  1024
#define PENDING_MAX	  64
#define RELAY_MAX	  256
#define COPIES_MAX	  4
#define RECV_BATCH	  64
#define TICK_MS		  250
#define STATE_EVERY_MS	  1000	/* state details at most this often */
#define STATE_REFRESH_MS  30000 /* and this often anyway (duty cycle, last_seen) */
#define FLUSH_EVERY_MS	  1000	/* uplink counters to disk: a kill -9 forgets at most this much */
#define TX_ACK_WAIT_MS	  5000
#define RELAY_TTL_MS	  30000
#define RESOLVE_RETRY_MS  30000
#define COPY_WINDOW_MS	  1000 /* copies of one uplink from several concentrators */
#define FCNT_DOWN_RESERVE 16   /* downlink counters persisted ahead of use */
#define RECEIVE_DELAY1_MS 1000
#define RECEIVE_DELAY2_MS 2000
#define RECV_BUF	  (GWMP_DATAGRAM_MAX + 64)

/* ---- state ------------------------------------------------------------- */

struct lw;

struct upstream {
	char spec[160]; /* as configured: host:port */
	char host[128];
	char port[8];
	bool resolved, resolving;
	struct sockaddr_storage addr;
	socklen_t addr_len;
	uint64_t retry_at_ms;
	uint64_t relayed_up, relayed_down, refused_down, acks, errors;
};

/* the socket of one concentrator towards one upstream server */
struct pair {
	struct lw *s;
	struct conc *c;
	unsigned up;
	int fd;
	uint64_t watch;
};

struct conc {
	bool used;
	uint64_t eui;
	char eui_s[17];
	uint8_t version;
	bool has_up, has_down, online;
	struct sockaddr_storage up_addr, down_addr;
	socklen_t up_len, down_len;
	uint64_t last_seen_ms, last_pull_ms; /* monotonic */
	int64_t last_seen_wall, last_pull_wall;
	/* the concentrator's µs counter at a moment of ours */
	bool has_clock;
	uint32_t clock_tmst;
	uint64_t clock_ms;
	bool has_stat;
	struct gwmp_stat stat;
	uint64_t rx, tx_sent, tx_acked, tx_failed, tx_refused;
	struct dc_ledger *ledger;
	bool ledger_dirty; /* not saved since the last commit */
	struct pair pairs[UPSTREAM_MAX];
};

/* one concentrator's copy of a device's last uplink */
struct copy {
	uint64_t eui;
	uint32_t tmst;
	uint64_t at_ms;
	int rssi;
};

struct dev {
	struct dev *next;	   /* hash chain */
	struct dev *newer, *older; /* least recently used list */
	uint32_t addr;
	/* the last uplink, for class A */
	bool has_up;
	uint16_t up_fcnt16;
	uint8_t up_mic[4];
	bool up_lora;
	uint32_t up_freq;
	int up_sf;
	uint32_t up_bw;
	bool ack_pending; /* it was a confirmed uplink, not yet answered */
	bool answered;	  /* a downlink went into its receive windows */
	unsigned ncopies;
	struct copy copies[COPIES_MAX];
	/* counters of a device with session keys */
	bool loaded;
	uint8_t kcv[4];
	bool has_fcnt_up;
	uint32_t fcnt_up;
	uint8_t last_mic[4];
	uint32_t fcnt_down, fcnt_down_reserved;
	bool dirty;
};

struct pending {
	struct lw *s;
	bool used;
	char id[64];
	uint64_t eui;
	bool has_token;
	uint16_t token;
	bool sent;
	bool ack_after_sent; /* no TX_ACK to wait for (GWMP v1) */
	const char *fail;    /* fail with this once reported: the concentrator is offline */
	uint64_t timer;
	/* the uplink it answers (class A): free again if this one fails */
	bool class_a;
	uint32_t dev_addr;
	uint16_t up_fcnt16;
	uint8_t up_mic[4];
};

struct relay {
	bool used;
	uint16_t token; /* ours, towards the concentrator */
	uint64_t eui;
	unsigned up;
	uint16_t up_token;
	uint64_t at_ms;
};

struct counters {
	uint64_t datagrams, malformed, push_data, pull_data, tx_ack, rxpk, rxpk_bad, rxpk_over,
		crc_fail, table_full, tx_ack_unknown, send_errors, relay_malformed;
};

struct lw {
	struct labgw_radio *r;
	const struct labgw_host *h;

	/* configuration */
	struct sockaddr_storage listen_addr;
	socklen_t listen_len;
	uint64_t keepalive_ms, rx_lead_ms;
	int rx2_sf;
	uint32_t rx2_bw, rx2_freq;
	int tx_power;
	struct dc_table bands;
	bool expect_tx_ack;
	unsigned max_conc;
	unsigned n_up;
	struct upstream up[UPSTREAM_MAX];

	/* running */
	bool running;
	int fd;
	uint64_t watch, tick;
	char bound[80];
	struct lorawan_crypto *crypto;
	struct conc *conc;
	struct dev *dev_hash[DEV_BUCKETS];
	struct dev *dev_newest, *dev_oldest;
	unsigned n_dev;
	struct pending pending[PENDING_MAX];
	struct relay relay[RELAY_MAX];
	uint16_t next_token;
	struct counters cnt;
	bool state_dirty;
	uint64_t state_at_ms, flush_at_ms;
	uint8_t *buf;
	struct gwmp_push *push;
};

static int refuse(char *errbuf, size_t errlen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(char *errbuf, size_t errlen, int err, const char *fmt, ...)
{
	va_list ap;

	if (errbuf && errlen) {
		va_start(ap, fmt);
		vsnprintf(errbuf, errlen, fmt, ap);
		va_end(ap);
	}
	return err;
}

static uint64_t now_ms(struct lw *s)
{
	return s->h->now_ms(s->r);
}

static int64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void iso_time(int64_t ms, char out[32])
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + strlen(out), 32 - strlen(out), ".%03dZ", (int)(ms % 1000));
}

static void addr_str(const struct sockaddr_storage *a, char *out, size_t len)
{
	char ip[INET6_ADDRSTRLEN] = "?";

	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *v6 = (const void *)a;

		inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof(ip));
		snprintf(out, len, "[%s]:%u", ip, ntohs(v6->sin6_port));
	} else {
		const struct sockaddr_in *v4 = (const void *)a;

		inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof(ip));
		snprintf(out, len, "%s:%u", ip, ntohs(v4->sin_port));
	}
}

static bool addr_equal(const struct sockaddr_storage *a, socklen_t al,
		       const struct sockaddr_storage *b, socklen_t bl)
{
	return al == bl && !memcmp(a, b, al);
}

static void hex_lower(const uint8_t *p, size_t n, char *out)
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = d[p[i] >> 4];
		out[2 * i + 1] = d[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static void devaddr_str(uint32_t a, char out[9])
{
	snprintf(out, 9, "%08x", (unsigned)a);
}

static bool parse_devaddr(const char *s, uint32_t *out)
{
	uint32_t v = 0;

	if (!s || strlen(s) != 8)
		return false;
	for (int i = 0; i < 8; i++) {
		char c = s[i];
		unsigned d;

		if (c >= '0' && c <= '9')
			d = (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (unsigned)(c - 'A' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*out = v;
	return true;
}

/* ---- configuration ----------------------------------------------------- */

/* "host:port" or "[v6]:port" into its parts. */
static bool split_hostport(const char *v, char *host, size_t hl, char *port, size_t pl)
{
	const char *colon;
	size_t n;

	if (v[0] == '[') {
		const char *end = strchr(v, ']');

		if (!end || end[1] != ':')
			return false;
		n = (size_t)(end - v - 1);
		colon = end + 1;
		v++;
	} else {
		colon = strrchr(v, ':');
		if (!colon || strchr(v, ':') != colon)
			return false;
		n = (size_t)(colon - v);
	}
	if (!n || n >= hl || strlen(colon + 1) >= pl || !colon[1] ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1) || atol(colon + 1) > 65535)
		return false;
	memcpy(host, v, n);
	host[n] = '\0';
	strcpy(port, colon + 1);
	return true;
}

static int parse_listen(struct lw *s, const char *v)
{
	char host[128], port[8];
	struct sockaddr_in *v4 = (void *)&s->listen_addr;
	struct sockaddr_in6 *v6 = (void *)&s->listen_addr;

	memset(&s->listen_addr, 0, sizeof(s->listen_addr));
	if (!split_hostport(v, host, sizeof(host), port, sizeof(port)))
		goto bad;
	if (!strcmp(host, "localhost"))
		strcpy(host, "127.0.0.1");
	if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
		v4->sin_family = AF_INET;
		v4->sin_port = htons((uint16_t)atoi(port));
		s->listen_len = sizeof(*v4);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
		v6->sin6_family = AF_INET6;
		v6->sin6_port = htons((uint16_t)atoi(port));
		s->listen_len = sizeof(*v6);
		return 0;
	}
bad:
	s->h->config_error(s->r, "listen",
			   "'%s' is not ADDRESS:PORT with a numeric address, like 0.0.0.0:1700 "
			   "or [::]:1700",
			   v);
	return -EINVAL;
}

static int parse_upstream(struct lw *s, const char *v)
{
	const char *p = v;

	s->n_up = 0;
	while (*p) {
		char item[160];
		size_t n;
		struct upstream *u;

		p += strspn(p, " \t,");
		n = strcspn(p, " \t,");
		if (!n)
			break;
		if (s->n_up == UPSTREAM_MAX) {
			s->h->config_error(s->r, "upstream", "at most %d upstream servers",
					   UPSTREAM_MAX);
			return -EINVAL;
		}
		if (n >= sizeof(item)) {
			s->h->config_error(s->r, "upstream", "an address is too long");
			return -EINVAL;
		}
		memcpy(item, p, n);
		item[n] = '\0';
		u = &s->up[s->n_up];
		memset(u, 0, sizeof(*u));
		if (!split_hostport(item, u->host, sizeof(u->host), u->port, sizeof(u->port)) ||
		    atoi(u->port) < 1) {
			s->h->config_error(s->r, "upstream",
					   "'%s' is not HOST:PORT (like ns.example.org:1700)",
					   item);
			return -EINVAL;
		}
		snprintf(u->spec, sizeof(u->spec), "%s", item);
		s->n_up++;
		p += n;
	}
	return 0;
}

/* Hz, or MHz when the value has a decimal point */
static bool parse_freq(const char *v, uint32_t *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(v, &end);
	if (errno || end == v || *end || !isfinite(d) || d <= 0)
		return false;
	if (strchr(v, '.'))
		d *= 1e6;
	if (d < 1e6 || d > 4e9)
		return false;
	*out = (uint32_t)llround(d);
	return true;
}

static int lw_init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct lw *s;
	const char *listen, *rx2_datr, *rx2_freq, *duty, *upstream, *region;
	long long tx_power = 0, max_conc = 0;
	int rc = 0, rcs[5];
	char err[200];

	if (host->size < offsetof(struct labgw_host, reserved))
		return -EINVAL; /* needs ABI 1.3: session keys and audit */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->r = r;
	s->h = host;
	s->fd = -1;

	/* read every key before failing, so none is reported as unknown */
	listen = host->config_get(r, "listen");
	rx2_datr = host->config_get(r, "rx2_datr");
	rx2_freq = host->config_get(r, "rx2_freq");
	duty = host->config_get(r, "duty_cycle");
	upstream = host->config_get(r, "upstream");
	region = host->config_get(r, "region");
	rcs[0] = host->config_get_duration_ms(r, "keepalive", 1000, 3600000, 10000,
					      &s->keepalive_ms);
	rcs[1] = host->config_get_duration_ms(r, "rx_lead", 0, 900, 100, &s->rx_lead_ms);
	rcs[2] = host->config_get_int(r, "tx_power", 0, 30, 14, &tx_power);
	rcs[3] = host->config_get_bool(r, "expect_tx_ack", true, &s->expect_tx_ack);
	rcs[4] = host->config_get_int(r, "max_concentrators", 1, 1024, 64, &max_conc);
	for (size_t i = 0; i < 5; i++) {
		if (rcs[i] < 0)
			rc = rcs[i];
	}
	s->tx_power = (int)tx_power;
	s->max_conc = (unsigned)max_conc;

	if (region && strcasecmp(region, "EU868")) {
		host->config_error(r, "region",
				   "'%s' is not supported: this module knows only EU868", region);
		rc = -EINVAL;
	}
	if (parse_listen(s, listen ? listen : "0.0.0.0:1700") < 0)
		rc = -EINVAL;
	s->rx2_sf = 12;
	s->rx2_bw = 125000;
	if (rx2_datr && (!gwmp_parse_datr(rx2_datr, &s->rx2_sf, &s->rx2_bw) ||
			 phy_eu868_dr(s->rx2_sf, s->rx2_bw) < 0)) {
		host->config_error(r, "rx2_datr",
				   "'%s' is not an EU868 LoRa data rate (SF7BW125 .. SF12BW125, "
				   "SF7BW250)",
				   rx2_datr);
		rc = -EINVAL;
	}
	s->rx2_freq = 869525000;
	if (rx2_freq && !parse_freq(rx2_freq, &s->rx2_freq)) {
		host->config_error(r, "rx2_freq",
				   "'%s' is not a frequency in Hz (or MHz with a decimal point)",
				   rx2_freq);
		rc = -EINVAL;
	}
	if (duty) {
		if (dc_table_parse(duty, &s->bands, err, sizeof(err)) < 0) {
			host->config_error(r, "duty_cycle", "%s", err);
			rc = -EINVAL;
		}
	} else {
		dc_table_default(&s->bands);
	}
	if (rc == 0 && dc_table_find(&s->bands, s->rx2_freq, s->rx2_bw) < 0) {
		host->config_error(r, "rx2_freq", "%u Hz lies outside every duty_cycle band",
				   (unsigned)s->rx2_freq);
		rc = -EINVAL;
	}
	if (upstream && parse_upstream(s, upstream) < 0)
		rc = -EINVAL;
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->conc = calloc(s->max_conc, sizeof(*s->conc));
	s->buf = malloc(RECV_BUF);
	s->push = malloc(sizeof(*s->push));
	s->crypto = lorawan_crypto_new();
	if (!s->conc || !s->buf || !s->push || !s->crypto) {
		free(s->conc);
		free(s->buf);
		free(s->push);
		lorawan_crypto_free(s->crypto);
		free(s);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < s->max_conc; i++) {
		for (unsigned k = 0; k < UPSTREAM_MAX; k++)
			s->conc[i].pairs[k].fd = -1;
	}
	if (getrandom(&s->next_token, sizeof(s->next_token), GRND_NONBLOCK) !=
	    sizeof(s->next_token))
		s->next_token = (uint16_t)wall_ms();
	host->radio_set_techs(r, LABGW_TECH_LORAWAN);
	*state = s;
	return 0;
}

/* ---- concentrators ----------------------------------------------------- */

static void pending_finish(struct pending *p, enum labgw_tx_status st, const char *reason);
static void pair_close(struct lw *s, struct pair *pr);

static struct conc *conc_find(struct lw *s, uint64_t eui)
{
	for (unsigned i = 0; i < s->max_conc; i++) {
		if (s->conc[i].used && s->conc[i].eui == eui)
			return &s->conc[i];
	}
	return NULL;
}

/* The ledger of a concentrator is saved (in wall-clock time) so that a
 * restart does not reset the regulatory budget. */
static void ledger_kv_key(const struct conc *c, char out[24])
{
	snprintf(out, 24, "dc-%s", c->eui_s);
}

static void ledger_save(struct lw *s, struct conc *c)
{
	char key[24], *buf = malloc(DC_EXPORT_MAX);
	long n;
	int rc;

	if (!buf)
		return;
	ledger_kv_key(c, key);
	n = dc_ledger_export(c->ledger, now_ms(s), wall_ms(), buf, DC_EXPORT_MAX);
	rc = n < 0 ? (int)n : s->h->kv_set(s->r, key, buf, (size_t)n);
	if (rc < 0)
		s->h->log(s->r, LABGW_LOG_WARNING, "duty-cycle ledger of %s not saved: %s",
			  c->eui_s, strerror(-rc));
	else
		c->ledger_dirty = false;
	free(buf);
}

static void ledger_load(struct lw *s, struct conc *c)
{
	char key[24], *buf = malloc(DC_EXPORT_MAX);
	int n;

	if (!buf)
		return;
	ledger_kv_key(c, key);
	n = s->h->kv_get(s->r, key, buf, DC_EXPORT_MAX);
	if (n > 0) {
		n = dc_ledger_import(c->ledger, buf, (size_t)n, now_ms(s), wall_ms());
		if (n < 0)
			s->h->log(s->r, LABGW_LOG_WARNING,
				  "saved duty-cycle ledger of %s unreadable: %s", c->eui_s,
				  strerror(-n));
		else if (n > 0)
			s->h->log(s->r, LABGW_LOG_INFO,
				  "duty-cycle ledger of %s: %d transmissions of the last hour "
				  "restored",
				  c->eui_s, n);
	}
	free(buf);
}

static void ledger_flush(struct lw *s)
{
	for (unsigned i = 0; i < s->max_conc; i++) {
		if (s->conc[i].used && s->conc[i].ledger_dirty)
			ledger_save(s, &s->conc[i]);
	}
}

static bool conc_has_pending(struct lw *s, const struct conc *c)
{
	for (unsigned i = 0; i < PENDING_MAX; i++) {
		if (s->pending[i].used && s->pending[i].eui == c->eui)
			return true;
	}
	return false;
}

static void conc_clear(struct lw *s, struct conc *c)
{
	if (c->ledger_dirty)
		ledger_save(s, c);
	for (unsigned i = 0; i < UPSTREAM_MAX; i++)
		pair_close(s, &c->pairs[i]);
	for (unsigned i = 0; i < RELAY_MAX; i++) {
		if (s->relay[i].used && s->relay[i].eui == c->eui)
			s->relay[i].used = false;
	}
	dc_ledger_free(c->ledger);
	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < UPSTREAM_MAX; i++)
		c->pairs[i].fd = -1;
}

/* The concentrator of `eui`, registered when new. When the table is full, a
 * concentrator that is offline, has nothing pending and nothing in its
 * duty-cycle ledger makes room (the oldest such); else NULL. */
static struct conc *conc_get(struct lw *s, uint64_t eui)
{
	struct conc *c = conc_find(s, eui), *victim = NULL;
	uint64_t now = now_ms(s);

	if (c)
		return c;
	for (unsigned i = 0; i < s->max_conc; i++) {
		struct conc *x = &s->conc[i];
		bool idle = true;

		if (!x->used) {
			victim = x;
			break;
		}
		if (x->online || conc_has_pending(s, x))
			continue;
		for (size_t b = 0; b < s->bands.n && idle; b++)
			idle = dc_ledger_used_us(x->ledger, b, now) == 0;
		if (idle && (!victim || x->last_seen_ms < victim->last_seen_ms))
			victim = x;
	}
	if (!victim)
		return NULL;
	if (victim->used) {
		s->h->log(s->r, LABGW_LOG_INFO,
			  "concentrator %s forgotten to make room for %016llx", victim->eui_s,
			  (unsigned long long)eui);
		conc_clear(s, victim);
	}
	c = victim;
	memset(c, 0, sizeof(*c));
	for (unsigned i = 0; i < UPSTREAM_MAX; i++)
		c->pairs[i].fd = -1;
	c->ledger = dc_ledger_new(&s->bands, DC_WINDOW_MS);
	if (!c->ledger)
		return NULL;
	c->used = true;
	c->eui = eui;
	gwmp_eui_str(eui, c->eui_s);
	ledger_load(s, c);
	s->state_dirty = true;
	return c;
}

static void conc_offline(struct lw *s, struct conc *c, const char *why)
{
	if (!c->online)
		return;
	c->online = false;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_NOTICE, "concentrator %s offline (%s)", c->eui_s, why);
	for (unsigned i = 0; i < PENDING_MAX; i++) {
		struct pending *p = &s->pending[i];

		if (p->used && p->eui == c->eui && !p->fail)
			pending_finish(p, LABGW_TX_FAILED, "concentrator offline");
	}
}

/* The concentrator's µs counter now, from the last one it reported. */
static bool conc_tmst_now(struct lw *s, const struct conc *c, uint32_t *tmst)
{
	uint64_t age = now_ms(s) - c->clock_ms;

	if (!c->has_clock || age > 600000)
		return false;
	*tmst = c->clock_tmst + (uint32_t)(age * 1000);
	return true;
}

/* When a tmst-scheduled transmission starts, in our ms (now when unknown). */
static uint64_t conc_tmst_at(struct lw *s, const struct conc *c, uint32_t tmst)
{
	uint32_t cur;
	int32_t delta;

	if (!conc_tmst_now(s, c, &cur))
		return now_ms(s);
	delta = (int32_t)(tmst - cur);
	if (delta <= 0 || delta > 10000000)
		return now_ms(s);
	return now_ms(s) + (uint64_t)delta / 1000;
}

/* ---- devices ----------------------------------------------------------- */

static void dev_kv_key(uint32_t addr, char out[24])
{
	snprintf(out, 24, "dev-%08x", (unsigned)addr);
}

/* Persists the counters of a device with keys. */
static int dev_save(struct lw *s, struct dev *d)
{
	char key[24], val[128], kcv[9];
	int n, rc;

	if (!d->loaded)
		return 0;
	dev_kv_key(d->addr, key);
	hex_lower(d->kcv, 4, kcv);
	if (d->has_fcnt_up)
		n = snprintf(val, sizeof(val), "up=%u down=%u kcv=%s\n", (unsigned)d->fcnt_up,
			     (unsigned)d->fcnt_down_reserved, kcv);
	else
		n = snprintf(val, sizeof(val), "up=- down=%u kcv=%s\n",
			     (unsigned)d->fcnt_down_reserved, kcv);
	rc = s->h->kv_set(s->r, key, val, (size_t)n);
	if (rc < 0)
		s->h->log(s->r, LABGW_LOG_WARNING, "frame counters of %08x not saved: %s",
			  (unsigned)d->addr, strerror(-rc));
	else
		d->dirty = false;
	return rc;
}

static void dev_flush(struct lw *s)
{
	for (unsigned b = 0; b < DEV_BUCKETS; b++) {
		for (struct dev *d = s->dev_hash[b]; d; d = d->next) {
			if (d->dirty)
				dev_save(s, d);
		}
	}
}

static void lru_unlink(struct lw *s, struct dev *d)
{
	if (d->newer)
		d->newer->older = d->older;
	else
		s->dev_newest = d->older;
	if (d->older)
		d->older->newer = d->newer;
	else
		s->dev_oldest = d->newer;
	d->newer = d->older = NULL;
}

static void lru_push(struct lw *s, struct dev *d)
{
	d->older = s->dev_newest;
	d->newer = NULL;
	if (s->dev_newest)
		s->dev_newest->newer = d;
	s->dev_newest = d;
	if (!s->dev_oldest)
		s->dev_oldest = d;
}

static struct dev *dev_find(struct lw *s, uint32_t addr)
{
	for (struct dev *d = s->dev_hash[addr % DEV_BUCKETS]; d; d = d->next) {
		if (d->addr == addr) {
			if (s->dev_newest != d) {
				lru_unlink(s, d);
				lru_push(s, d);
			}
			return d;
		}
	}
	return NULL;
}

static void dev_remove(struct lw *s, struct dev *victim)
{
	for (struct dev **dp = &s->dev_hash[victim->addr % DEV_BUCKETS]; *dp; dp = &(*dp)->next) {
		if (*dp == victim) {
			*dp = victim->next;
			break;
		}
	}
	lru_unlink(s, victim);
	if (victim->dirty)
		dev_save(s, victim);
	free(victim);
	s->n_dev--;
}

static struct dev *dev_get(struct lw *s, uint32_t addr)
{
	struct dev *d = dev_find(s, addr);

	if (d)
		return d;
	/* forget the least recently used (its counters are on disk) */
	if (s->n_dev >= DEV_MAX && s->dev_oldest)
		dev_remove(s, s->dev_oldest);
	d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->addr = addr;
	d->next = s->dev_hash[addr % DEV_BUCKETS];
	s->dev_hash[addr % DEV_BUCKETS] = d;
	lru_push(s, d);
	s->n_dev++;
	return d;
}

/* A key check value: who holds the key cannot be told from it, but a
 * change of keys can (then the counters start over). */
static void key_kcv(struct lw *s, const uint8_t key[16], uint8_t kcv[4])
{
	static const uint8_t zero[16];
	uint8_t out[16];

	if (lorawan_crypto_aes128_encrypt(s->crypto, key, zero, out) < 0)
		memset(out, 0, sizeof(out));
	memcpy(kcv, out, 4);
	OPENSSL_cleanse(out, sizeof(out));
}

/* Loads the counters of a device with session keys (once), and starts them
 * over when the keys changed. */
static void dev_load(struct lw *s, struct dev *d, const uint8_t nwkskey[16])
{
	uint8_t kcv[4];

	key_kcv(s, nwkskey, kcv);
	if (!d->loaded) {
		char key[24], val[128], kcv_s[9] = "", up[16] = "";
		unsigned down = 0;
		int n;

		dev_kv_key(d->addr, key);
		n = s->h->kv_get(s->r, key, val, sizeof(val) - 1);
		d->loaded = true;
		if (n > 0) {
			val[n] = '\0';
			if (sscanf(val, "up=%15s down=%u kcv=%8s", up, &down, kcv_s) == 3 &&
			    strlen(kcv_s) == 8) {
				for (int i = 0; i < 4; i++) {
					unsigned x;

					sscanf(kcv_s + 2 * i, "%2x", &x);
					d->kcv[i] = (uint8_t)x;
				}
				if (strcmp(up, "-")) {
					d->has_fcnt_up = true;
					d->fcnt_up = (uint32_t)strtoul(up, NULL, 10);
				}
				/* counters up to the reservation may have gone out */
				d->fcnt_down = d->fcnt_down_reserved = down;
			} else {
				s->h->log(s->r, LABGW_LOG_WARNING,
					  "saved frame counters of %08x unreadable; starting over",
					  (unsigned)d->addr);
				memcpy(d->kcv, kcv, 4);
			}
		} else {
			memcpy(d->kcv, kcv, 4);
			d->dirty = true;
		}
	}
	if (memcmp(d->kcv, kcv, 4)) {
		s->h->log(s->r, LABGW_LOG_INFO,
			  "session keys of %08x changed: frame counters start over",
			  (unsigned)d->addr);
		memcpy(d->kcv, kcv, 4);
		d->has_fcnt_up = false;
		d->fcnt_up = 0;
		d->fcnt_down = d->fcnt_down_reserved = 0;
		d->dirty = true;
	}
}

/* Notes an uplink for class A answers: a new one, or another
 * concentrator's copy of the last one. */
static void dev_note_uplink(struct lw *s, struct dev *d, const struct conc *c,
			    const struct gwmp_rxpk *rx, const struct phy_frame *f)
{
	uint64_t now = now_ms(s);
	struct copy cp = {c->eui, rx->tmst, now, rx->has_rssi ? rx->rssi : -200};

	if (!rx->has_tmst || !rx->has_freq)
		return;
	if (d->has_up && d->up_fcnt16 == f->fcnt16 && !memcmp(d->up_mic, f->mic, 4) && d->ncopies &&
	    now - d->copies[0].at_ms < COPY_WINDOW_MS) {
		for (unsigned i = 0; i < d->ncopies; i++) {
			if (d->copies[i].eui == c->eui) {
				d->copies[i] = cp;
				return;
			}
		}
		if (d->ncopies < COPIES_MAX)
			d->copies[d->ncopies++] = cp;
		return;
	}
	d->has_up = true;
	d->up_fcnt16 = f->fcnt16;
	memcpy(d->up_mic, f->mic, 4);
	d->up_lora = rx->modu == GWMP_MODU_LORA && rx->has_datr;
	d->up_freq = rx->freq_hz;
	d->up_sf = rx->sf;
	d->up_bw = rx->bw_hz;
	d->ack_pending = f->mtype == PHY_CONFIRMED_UP;
	d->answered = false;
	d->ncopies = 1;
	d->copies[0] = cp;
}

/* ---- state details ----------------------------------------------------- */

static void state_conc(struct fb *b, struct lw *s, struct conc *c)
{
	char k[96], t[32], a[80];
	uint64_t now = now_ms(s);

#define CK(name) (snprintf(k, sizeof(k), "concentrators.%s.%s", c->eui_s, name), k)
	fb_bool(b, LABGW_DATA, CK("online"), c->online);
	fb_int(b, LABGW_DATA, CK("version"), c->version);
	iso_time(c->last_seen_wall, t);
	fb_str(b, LABGW_DATA, CK("last_seen"), t);
	if (c->last_pull_wall) {
		iso_time(c->last_pull_wall, t);
		fb_str(b, LABGW_DATA, CK("last_pull"), t);
	}
	if (c->has_up) {
		addr_str(&c->up_addr, a, sizeof(a));
		fb_str(b, LABGW_DATA, CK("up_addr"), a);
	}
	if (c->has_down) {
		addr_str(&c->down_addr, a, sizeof(a));
		fb_str(b, LABGW_DATA, CK("down_addr"), a);
	}
	fb_int(b, LABGW_DATA, CK("rx"), (int64_t)c->rx);
	fb_int(b, LABGW_DATA, CK("tx"), (int64_t)c->tx_sent);
	fb_int(b, LABGW_DATA, CK("tx_acked"), (int64_t)c->tx_acked);
	fb_int(b, LABGW_DATA, CK("tx_failed"), (int64_t)c->tx_failed);
	fb_int(b, LABGW_DATA, CK("tx_refused"), (int64_t)c->tx_refused);
	if (c->has_stat) {
		const struct gwmp_stat *st = &c->stat;

		if (st->has_time)
			fb_str(b, LABGW_DATA, CK("stat_time"), st->time);
		if (st->has_lati)
			fb_double(b, LABGW_DATA, CK("lati"), st->lati);
		if (st->has_long)
			fb_double(b, LABGW_DATA, CK("long"), st->lon);
		if (st->has_alti)
			fb_int(b, LABGW_DATA, CK("alti"), st->alti);
		if (st->has_rxnb)
			fb_int(b, LABGW_DATA, CK("rxnb"), (int64_t)st->rxnb);
		if (st->has_rxok)
			fb_int(b, LABGW_DATA, CK("rxok"), (int64_t)st->rxok);
		if (st->has_rxfw)
			fb_int(b, LABGW_DATA, CK("rxfw"), (int64_t)st->rxfw);
		if (st->has_ackr)
			fb_double(b, LABGW_DATA, CK("ackr"), st->ackr);
		if (st->has_dwnb)
			fb_int(b, LABGW_DATA, CK("dwnb"), (int64_t)st->dwnb);
		if (st->has_txnb)
			fb_int(b, LABGW_DATA, CK("txnb"), (int64_t)st->txnb);
	}
#undef CK
	for (size_t i = 0; i < s->bands.n; i++) {
		char name[DC_BAND_NAME_LEN];
		const struct dc_band *band = &s->bands.band[i];
		uint64_t used = dc_ledger_used_us(c->ledger, i, now);

		dc_band_name(band, name);
		snprintf(k, sizeof(k), "duty_cycle.%s.%s.used_ms", c->eui_s, name);
		fb_int(b, LABGW_DATA, k, (int64_t)((used + 999) / 1000));
		snprintf(k, sizeof(k), "duty_cycle.%s.%s.limit_ms", c->eui_s, name);
		fb_int(b, LABGW_DATA, k, (int64_t)(dc_band_limit_us(band, DC_WINDOW_MS) / 1000));
		snprintf(k, sizeof(k), "duty_cycle.%s.%s.percent", c->eui_s, name);
		fb_double(b, LABGW_DATA, k, band->ppm / 10000.0);
	}
}

static int publish_state(struct lw *s)
{
	struct fb b = {.h = s->h, .err = 0};
	unsigned online = 0, known = 0;
	char k[64];

	b.f = s->h->frame_new(s->r, LABGW_TECH_NONE, "state.radio");
	if (!b.f)
		return -ENOMEM;
	fb_str(&b, LABGW_DATA, "region", "EU868");
	if (s->bound[0])
		fb_str(&b, LABGW_DATA, "listen", s->bound);
	for (unsigned i = 0; i < s->max_conc; i++) {
		if (!s->conc[i].used)
			continue;
		known++;
		online += s->conc[i].online;
		state_conc(&b, s, &s->conc[i]);
	}
	fb_int(&b, LABGW_DATA, "concentrators_known", known);
	fb_int(&b, LABGW_DATA, "concentrators_online", online);
	fb_int(&b, LABGW_DATA, "devices", s->n_dev);
#define CNT(name) fb_int(&b, LABGW_DATA, "gwmp." #name, (int64_t)s->cnt.name)
	CNT(datagrams);
	CNT(malformed);
	CNT(push_data);
	CNT(pull_data);
	CNT(tx_ack);
	CNT(rxpk);
	CNT(rxpk_bad);
	CNT(rxpk_over);
	CNT(crc_fail);
	CNT(table_full);
	CNT(tx_ack_unknown);
	CNT(send_errors);
	CNT(relay_malformed);
#undef CNT
	for (unsigned i = 0; i < s->n_up; i++) {
		const struct upstream *u = &s->up[i];

#define UK(name) (snprintf(k, sizeof(k), "upstreams.%u.%s", i, name), k)
		fb_str(&b, LABGW_DATA, UK("addr"), u->spec);
		fb_bool(&b, LABGW_DATA, UK("resolved"), u->resolved);
		fb_int(&b, LABGW_DATA, UK("relayed_up"), (int64_t)u->relayed_up);
		fb_int(&b, LABGW_DATA, UK("relayed_down"), (int64_t)u->relayed_down);
		fb_int(&b, LABGW_DATA, UK("refused_down"), (int64_t)u->refused_down);
		fb_int(&b, LABGW_DATA, UK("acks"), (int64_t)u->acks);
		fb_int(&b, LABGW_DATA, UK("errors"), (int64_t)u->errors);
#undef UK
	}
	if (b.err < 0) {
		s->h->frame_discard(b.f);
		return b.err;
	}
	s->state_dirty = false;
	s->state_at_ms = now_ms(s);
	return s->h->state_update(b.f);
}

/* ---- uplinks ----------------------------------------------------------- */

static void rx_sig(struct fb *b, const struct conc *c, const struct gwmp_rxpk *rx)
{
	if (rx->has_rssi)
		fb_int(b, LABGW_SIG, "rssi", rx->rssi);
	if (rx->has_lsnr)
		fb_double(b, LABGW_SIG, "snr", rx->lsnr);
	if (rx->has_freq)
		fb_int(b, LABGW_SIG, "freq_hz", rx->freq_hz);
	fb_str(b, LABGW_SIG, "modu", rx->modu == GWMP_MODU_LORA ? "LORA" : "FSK");
	if (rx->has_datr && rx->modu == GWMP_MODU_LORA) {
		fb_int(b, LABGW_SIG, "sf", rx->sf);
		fb_int(b, LABGW_SIG, "bw_hz", rx->bw_hz);
	} else if (rx->has_datr) {
		fb_int(b, LABGW_SIG, "bitrate", rx->fsk_bps);
	}
	if (rx->has_codr)
		fb_str(b, LABGW_SIG, "codr", rx->codr);
	if (rx->has_chan)
		fb_int(b, LABGW_SIG, "chan", rx->chan);
	if (rx->has_rfch)
		fb_int(b, LABGW_SIG, "rfch", rx->rfch);
	if (rx->has_tmst)
		fb_int(b, LABGW_SIG, "tmst", rx->tmst);
	if (rx->has_tmms)
		fb_int(b, LABGW_SIG, "tmms", (int64_t)rx->tmms);
	if (rx->has_stat)
		fb_str(b, LABGW_SIG, "crc",
		       rx->stat == GWMP_CRC_OK	   ? "ok"
		       : rx->stat == GWMP_CRC_FAIL ? "fail"
						   : "none");
	fb_str(b, LABGW_SIG, "gw_eui", c->eui_s);
	if (rx->has_time)
		fb_str(b, LABGW_SIG, "time", rx->time);
}

/* Whether a frame is another concentrator's copy of the device's last
 * uplink, heard at the same time. */
static bool other_copy(struct lw *s, const struct dev *d, const struct conc *c,
		       const struct phy_frame *f)
{
	if (!d->has_up || !d->ncopies || d->up_fcnt16 != f->fcnt16 ||
	    memcmp(d->up_mic, f->mic, 4) || now_ms(s) - d->copies[0].at_ms >= COPY_WINDOW_MS)
		return false;
	for (unsigned i = 0; i < d->ncopies; i++) {
		if (d->copies[i].eui == c->eui)
			return false;
	}
	return true;
}

/* MIC, counter and decryption of a data uplink of a device with keys;
 * true when it set fcnt and frm_payload. */
static bool rx_keyed(struct fb *b, struct lw *s, struct dev *d, const struct conc *c,
		     const struct phy_frame *f, const uint8_t nwk[16], const uint8_t app[16],
		     bool *replay)
{
	struct phy_uplink_check chk;
	uint8_t plain[PHY_MAX_LEN];

	*replay = true; /* a frame that fails the checks opens no receive window */
	dev_load(s, d, nwk);
	if (phy_uplink_verify(s->crypto, f, nwk, d->has_fcnt_up, d->fcnt_up, &chk) < 0) {
		fb_str(b, LABGW_DATA, "error", "MIC check failed to run");
		return false;
	}
	fb_bool(b, LABGW_DATA, "mic_ok", chk.mic_ok);
	fb_bool(b, LABGW_DATA, "decrypted", chk.mic_ok && f->has_fport);
	if (!chk.mic_ok) {
		fb_int(b, LABGW_DATA, "fcnt", chk.fcnt);
		if (f->has_fport)
			fb_b64(b, LABGW_DATA, "frm_payload", f->frm, f->frm_len);
		return true;
	}
	*replay = false;
	fb_int(b, LABGW_DATA, "fcnt", chk.fcnt);
	if (chk.fresh) {
		d->has_fcnt_up = true;
		d->fcnt_up = chk.fcnt;
		memcpy(d->last_mic, f->mic, 4);
		d->dirty = true;
	} else if (chk.fcnt == d->fcnt_up && !memcmp(d->last_mic, f->mic, 4) &&
		   other_copy(s, d, c, f)) {
		/* the same frame through another concentrator: not a replay */
		fb_bool(b, LABGW_DATA, "duplicate", true);
	} else {
		fb_bool(b, LABGW_DATA, "fcnt_replay", true);
		*replay = true;
	}
	if (!f->has_fport)
		return true;
	if (phy_decrypt_frm(s->crypto, f, chk.fcnt, nwk, app, plain) < 0) {
		fb_str(b, LABGW_DATA, "error", "decryption failed to run");
		return false;
	}
	fb_b64(b, LABGW_DATA, "frm_payload", plain, f->frm_len);
	OPENSSL_cleanse(plain, f->frm_len);
	return true;
}

static void rx_data(struct fb *b, struct lw *s, struct conc *c, const struct gwmp_rxpk *rx,
		    const struct phy_frame *f)
{
	char dev[9];
	bool up = phy_mtype_is_uplink(f->mtype), done = false, replay = false;
	uint8_t nwk[16], app[16];
	struct dev *d = NULL;

	devaddr_str(f->dev_addr, dev);
	fb_dev(b, dev);
	fb_str(b, LABGW_DATA, "mtype", phy_mtype_name(f->mtype));
	fb_str(b, LABGW_DATA, "dev_addr", dev);
	fb_bool(b, LABGW_DATA, "adr", f->fctrl & PHY_FCTRL_ADR);
	if (up) {
		fb_bool(b, LABGW_DATA, "adr_ack_req", f->fctrl & PHY_FCTRL_ADR_ACK_REQ);
		fb_bool(b, LABGW_DATA, "class_b", f->fctrl & PHY_FCTRL_CLASS_B);
	} else {
		fb_bool(b, LABGW_DATA, "fpending", f->fctrl & PHY_FCTRL_FPENDING);
	}
	fb_bool(b, LABGW_DATA, "ack", f->fctrl & PHY_FCTRL_ACK);
	fb_int(b, LABGW_DATA, "fopts_len", f->fopts_len);
	if (f->fopts_len)
		fb_hex(b, LABGW_DATA, "fopts", f->fopts, f->fopts_len);
	if (f->has_fport)
		fb_int(b, LABGW_DATA, "fport", f->fport);
	fb_hex(b, LABGW_DATA, "mic", f->mic, 4);
	if (f->warning)
		fb_str(b, LABGW_DATA, "warning", f->warning);
	if (up && s->h->lorawan_session_keys(s->r, dev, nwk, app)) {
		d = dev_get(s, f->dev_addr);
		if (d)
			done = rx_keyed(b, s, d, c, f, nwk, app, &replay);
		else
			fb_str(b, LABGW_DATA, "error", "no memory for the device's counters");
		OPENSSL_cleanse(nwk, sizeof(nwk));
		OPENSSL_cleanse(app, sizeof(app));
	}
	if (!done) {
		fb_int(b, LABGW_DATA, "fcnt", f->fcnt16);
		if (f->has_fport)
			fb_b64(b, LABGW_DATA, "frm_payload", f->frm, f->frm_len);
	}
	if (!up || replay)
		return;
	if (!d)
		d = dev_get(s, f->dev_addr);
	if (d)
		dev_note_uplink(s, d, c, rx, f);
}

static void rx_join(struct fb *b, const struct phy_frame *f)
{
	char eui[17];

	gwmp_eui_str(f->dev_eui, eui);
	fb_dev(b, eui);
	fb_str(b, LABGW_DATA, "mtype", phy_mtype_name(f->mtype));
	fb_str(b, LABGW_DATA, "dev_eui", eui);
	gwmp_eui_str(f->join_eui, eui);
	fb_str(b, LABGW_DATA, "join_eui", eui);
	fb_int(b, LABGW_DATA, "dev_nonce", f->dev_nonce);
	fb_hex(b, LABGW_DATA, "mic", f->mic, 4);
}

static void rx_publish(struct lw *s, struct conc *c, const struct gwmp_rxpk *rx)
{
	struct phy_frame f;
	const char *why = NULL;
	const char *type = "rx.lorawan.uplink";
	struct fb b = {.h = s->h, .err = 0};
	int prc = -EINVAL;
	int rc;

	s->cnt.rxpk++;
	if (rx->error) {
		s->cnt.rxpk_bad++;
		s->h->log(s->r, LABGW_LOG_DEBUG, "rxpk from %s dropped: %s", c->eui_s, rx->error);
		return;
	}
	c->rx++;
	if (rx->has_tmst) {
		c->has_clock = true;
		c->clock_tmst = rx->tmst;
		c->clock_ms = now_ms(s);
	}
	if (rx->stat != GWMP_CRC_FAIL) {
		prc = phy_parse(rx->data, rx->data_len, &f, &why);
		if (prc == 0 && f.mtype == PHY_JOIN_REQUEST)
			type = "rx.lorawan.join";
	} else {
		s->cnt.crc_fail++;
	}
	b.f = s->h->frame_new(s->r, LABGW_TECH_LORAWAN, type);
	if (!b.f)
		return;
	if (rx->data_len)
		b.err = s->h->frame_set_payload(b.f, rx->data, rx->data_len);
	rx_sig(&b, c, rx);
	if (rx->stat == GWMP_CRC_FAIL) {
		fb_str(&b, LABGW_DATA, "error", "CRC error: not decoded");
	} else if (prc < 0) {
		char msg[96];

		if (rx->data_len) {
			fb_str(&b, LABGW_DATA, "mtype", phy_mtype_name(f.mtype));
			fb_int(&b, LABGW_DATA, "major", f.major);
		}
		snprintf(msg, sizeof(msg), "bad PHYPayload: %s (%zu bytes)", why, rx->data_len);
		fb_str(&b, LABGW_DATA, "error", msg);
	} else if (phy_mtype_is_data(f.mtype)) {
		rx_data(&b, s, c, rx, &f);
	} else if (f.mtype == PHY_JOIN_REQUEST) {
		rx_join(&b, &f);
	} else {
		fb_str(&b, LABGW_DATA, "mtype", phy_mtype_name(f.mtype));
		if (f.mic)
			fb_hex(&b, LABGW_DATA, "mic", f.mic, 4);
	}
	if (b.err < 0) {
		s->h->log(s->r, LABGW_LOG_DEBUG, "uplink from %s not published: %s", c->eui_s,
			  strerror(-b.err));
		s->h->frame_discard(b.f);
		return;
	}
	rc = s->h->publish(b.f);
	if (rc < 0)
		s->h->log(s->r, LABGW_LOG_DEBUG, "uplink from %s refused: %s", c->eui_s,
			  strerror(-rc));
}

/* ---- upstream network servers ----------------------------------------- */

static int pair_cb(void *user_data, int fd, unsigned events);

static void pair_close(struct lw *s, struct pair *pr)
{
	if (pr->watch)
		s->h->watch_fd_cancel(s->r, pr->watch);
	if (pr->fd >= 0)
		close(pr->fd);
	pr->watch = 0;
	pr->fd = -1;
}

static struct pair *pair_get(struct lw *s, struct conc *c, unsigned ui)
{
	struct pair *pr = &c->pairs[ui];
	struct upstream *u = &s->up[ui];
	int fd;

	if (pr->fd >= 0)
		return pr;
	if (!u->resolved)
		return NULL;
	fd = socket(u->addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	if (connect(fd, (struct sockaddr *)&u->addr, u->addr_len) < 0) {
		close(fd);
		goto fail;
	}
	pr->s = s;
	pr->c = c;
	pr->up = ui;
	pr->fd = fd;
	pr->watch = s->h->watch_fd(s->r, fd, LABGW_FD_READ, pair_cb, pr);
	if (!pr->watch) {
		close(fd);
		pr->fd = -1;
		goto fail;
	}
	return pr;
fail:
	u->errors++;
	s->h->log(s->r, LABGW_LOG_DEBUG, "no socket towards upstream %s: %s", u->spec,
		  strerror(errno));
	return NULL;
}

/* Relays a PUSH_DATA or PULL_DATA of a concentrator to every upstream. */
static void relay_up(struct lw *s, struct conc *c, const uint8_t *buf, size_t len)
{
	for (unsigned i = 0; i < s->n_up; i++) {
		struct pair *pr = pair_get(s, c, i);

		if (!pr)
			continue;
		if (send(pr->fd, buf, len, 0) < 0) {
			s->up[i].errors++;
			continue;
		}
		s->up[i].relayed_up++;
	}
}

static uint16_t token_new(struct lw *s)
{
	return s->next_token++;
}

static struct relay *relay_new(struct lw *s)
{
	struct relay *oldest = NULL;

	for (unsigned i = 0; i < RELAY_MAX; i++) {
		if (!s->relay[i].used)
			return &s->relay[i];
		if (!oldest || s->relay[i].at_ms < oldest->at_ms)
			oldest = &s->relay[i];
	}
	return oldest;
}

/* Airtime of a txpk as the forwarder will send it. */
static uint64_t txpk_airtime_us(const struct gwmp_txpk *t)
{
	if (t->modu == GWMP_MODU_FSK) {
		/* preamble, sync word, length, payload, CRC */
		uint64_t bits = ((uint64_t)(t->prea ? t->prea : 5) + 3 + 1 + t->size + 2) * 8;

		return t->fsk_bps ? (bits * 1000000 + t->fsk_bps - 1) / t->fsk_bps : 0;
	}
	return lora_airtime_us(t->sf, t->bw_hz, t->cr, t->size, t->prea ? t->prea : 8, !t->ncrc);
}

static void relay_refuse(struct lw *s, struct conc *c, struct upstream *u, const char *code,
			 int64_t size, const char *detail)
{
	u->refused_down++;
	c->tx_refused++;
	s->state_dirty = true;
	s->h->log(s->r, LABGW_LOG_INFO, "downlink from upstream %s for %s not sent: %s (%s)",
		  u->spec, c->eui_s, code, detail);
	s->h->audit(s->r, "upstream.tx", u->spec, code, size, detail);
}

/* A PULL_RESP of an upstream server: through the duty-cycle ledger to the
 * concentrator, with a token of ours to match its TX_ACK. */
static void relay_down(struct lw *s, struct conc *c, unsigned ui, const struct gwmp_header *hd,
		       uint8_t *buf, size_t len)
{
	struct upstream *u = &s->up[ui];
	struct gwmp_txpk t;
	bool has_tmst;
	const char *why;
	char detail[200], label[48];
	uint64_t airtime, at, wait;
	struct relay *rl;
	int band;

	if (gwmp_parse_pull_resp(hd->body, hd->body_len, &t, &has_tmst, &why) < 0) {
		s->cnt.relay_malformed++;
		snprintf(detail, sizeof(detail), "gateway %s: bad txpk: %s", c->eui_s, why);
		relay_refuse(s, c, u, "BAD_REQUEST", 0, detail);
		return;
	}
	if (!c->online || !c->has_down) {
		snprintf(detail, sizeof(detail), "gateway %s is offline", c->eui_s);
		relay_refuse(s, c, u, "RADIO_UNAVAILABLE", (int64_t)t.size, detail);
		return;
	}
	airtime = txpk_airtime_us(&t);
	band = dc_table_find(&s->bands, t.freq_hz,
			     t.modu == GWMP_MODU_LORA ? t.bw_hz : 2 * t.fdev_hz + t.fsk_bps);
	if (band < 0) {
		snprintf(detail, sizeof(detail), "gateway %s: %u Hz lies outside every sub-band",
			 c->eui_s, (unsigned)t.freq_hz);
		relay_refuse(s, c, u, "BAD_REQUEST", (int64_t)t.size, detail);
		return;
	}
	at = !t.imme && has_tmst ? conc_tmst_at(s, c, t.tmst) : now_ms(s);
	wait = dc_ledger_wait_ms(c->ledger, (size_t)band, at, airtime);
	dc_band_label(&s->bands.band[band], label, sizeof(label));
	if (wait) {
		if (wait == DC_NEVER) {
			snprintf(detail, sizeof(detail),
				 "gateway %s, band %s: %llu ms of airtime exceed the hourly budget",
				 c->eui_s, label, (unsigned long long)((airtime + 999) / 1000));
			relay_refuse(s, c, u, "DUTY_CYCLE_EXHAUSTED", (int64_t)t.size, detail);
			return;
		}
		snprintf(
			detail, sizeof(detail),
			"gateway %s, band %s: %llu ms used of %llu ms, %llu ms more needed; "
			"retry after %llu ms",
			c->eui_s, label,
			(unsigned long long)(dc_ledger_used_us(c->ledger, (size_t)band, now_ms(s)) /
					     1000),
			(unsigned long long)(dc_band_limit_us(&s->bands.band[band], DC_WINDOW_MS) /
					     1000),
			(unsigned long long)((airtime + 999) / 1000), (unsigned long long)wait);
		relay_refuse(s, c, u, "DUTY_CYCLE_EXHAUSTED", (int64_t)t.size, detail);
		return;
	}
	rl = relay_new(s);
	rl->used = true;
	rl->token = token_new(s);
	rl->eui = c->eui;
	rl->up = ui;
	rl->up_token = hd->token;
	rl->at_ms = now_ms(s);
	gwmp_set_token(buf, len, rl->token);
	if (sendto(s->fd, buf, len, 0, (struct sockaddr *)&c->down_addr, c->down_len) < 0) {
		rl->used = false;
		s->cnt.send_errors++;
		snprintf(detail, sizeof(detail), "gateway %s: %s", c->eui_s, strerror(errno));
		relay_refuse(s, c, u, "INTERNAL", (int64_t)t.size, detail);
		return;
	}
	dc_ledger_commit(c->ledger, (size_t)band, at, airtime);
	c->ledger_dirty = true;
	u->relayed_down++;
	c->tx_sent++;
	s->state_dirty = true;
	snprintf(detail, sizeof(detail), "gateway %s, %u.%06u MHz, band %s, airtime %llu ms",
		 c->eui_s, (unsigned)(t.freq_hz / 1000000), (unsigned)(t.freq_hz % 1000000), label,
		 (unsigned long long)((airtime + 999) / 1000));
	s->h->audit(s->r, "upstream.tx", u->spec, "ok", (int64_t)t.size, detail);
}

static int pair_cb(void *user_data, int fd, unsigned events)
{
	struct pair *pr = user_data;
	struct lw *s = pr->s;
	struct upstream *u = &s->up[pr->up];

	for (int i = 0; i < RECV_BATCH; i++) {
		struct gwmp_header hd;
		const char *why;
		ssize_t n = recv(fd, s->buf, RECV_BUF, MSG_TRUNC);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				u->errors++; /* e.g. ICMP port unreachable */
			break;
		}
		if (gwmp_parse(s->buf, (size_t)n, &hd, &why) < 0) {
			s->cnt.relay_malformed++;
			s->h->log(s->r, LABGW_LOG_DEBUG, "malformed datagram from upstream %s: %s",
				  u->spec, why);
			continue;
		}
		switch (hd.type) {
		case GWMP_PUSH_ACK:
		case GWMP_PULL_ACK:
			u->acks++;
			break;
		case GWMP_PULL_RESP:
			relay_down(s, pr->c, pr->up, &hd, s->buf, (size_t)n);
			break;
		case GWMP_PUSH_DATA:
		case GWMP_PULL_DATA:
		case GWMP_TX_ACK:
			s->cnt.relay_malformed++;
			s->h->log(s->r, LABGW_LOG_DEBUG, "unexpected %s from upstream %s",
				  gwmp_type_name(hd.type), u->spec);
			break;
		}
	}
	(void)events;
	return 0;
}

struct resolve_job {
	struct lw *s;
	unsigned idx;
	char host[128], port[8];
	int rc;
	struct sockaddr_storage addr;
	socklen_t len;
};

static void resolve_work(void *user_data)
{
	struct resolve_job *j = user_data;
	struct addrinfo hints = {.ai_socktype = SOCK_DGRAM}, *res = NULL;

	j->rc = getaddrinfo(j->host, j->port, &hints, &res);
	if (j->rc == 0 && res && res->ai_addrlen <= sizeof(j->addr)) {
		memcpy(&j->addr, res->ai_addr, res->ai_addrlen);
		j->len = res->ai_addrlen;
	} else if (j->rc == 0) {
		j->rc = EAI_FAIL;
	}
	if (res)
		freeaddrinfo(res);
}

static void resolve_done(void *user_data, int status)
{
	struct resolve_job *j = user_data;
	struct lw *s = j->s;
	struct upstream *u = &s->up[j->idx];

	if (status == 0) {
		u->resolving = false;
		if (j->rc == 0) {
			char a[80];

			u->addr = j->addr;
			u->addr_len = j->len;
			u->resolved = true;
			addr_str(&u->addr, a, sizeof(a));
			s->h->log(s->r, LABGW_LOG_NOTICE, "upstream %s is %s", u->spec, a);
		} else {
			u->retry_at_ms = now_ms(s) + RESOLVE_RETRY_MS;
			s->h->log(s->r, LABGW_LOG_WARNING,
				  "upstream %s not resolved: %s (retrying in %d s)", u->spec,
				  gai_strerror(j->rc), RESOLVE_RETRY_MS / 1000);
		}
		s->state_dirty = true;
	}
	free(j);
}

static void resolve_start(struct lw *s, unsigned i)
{
	struct upstream *u = &s->up[i];
	struct resolve_job *j;

	if (u->resolved || u->resolving)
		return;
	j = calloc(1, sizeof(*j));
	if (!j)
		return;
	j->s = s;
	j->idx = i;
	snprintf(j->host, sizeof(j->host), "%s", u->host);
	snprintf(j->port, sizeof(j->port), "%s", u->port);
	if (s->h->work_queue(s->r, resolve_work, resolve_done, j) < 0) {
		free(j);
		u->retry_at_ms = now_ms(s) + RESOLVE_RETRY_MS;
		return;
	}
	u->resolving = true;
}

/* ---- downlinks: commands ----------------------------------------------- */

static int pending_sent_cb(void *user_data);
static int pending_timeout_cb(void *user_data);

static void pending_free(struct pending *p)
{
	struct lw *s = p->s;

	if (p->timer)
		s->h->timer_cancel(s->r, p->timer);
	memset(p, 0, sizeof(*p));
}

static struct dev *dev_find(struct lw *s, uint32_t addr);

/* Reports the final status and forgets the command. */
static void pending_finish(struct pending *p, enum labgw_tx_status st, const char *reason)
{
	struct lw *s = p->s;
	struct conc *c = conc_find(s, p->eui);
	char id[sizeof(p->id)];

	if (p->class_a && st == LABGW_TX_FAILED) {
		/* not sent: the device's windows are free for another try */
		struct dev *d = dev_find(s, p->dev_addr);

		if (d && d->has_up && d->up_fcnt16 == p->up_fcnt16 &&
		    !memcmp(d->up_mic, p->up_mic, 4))
			d->answered = false;
	}
	memcpy(id, p->id, sizeof(id));
	if (!p->sent && st != LABGW_TX_FAILED)
		s->h->tx_status(s->r, id, LABGW_TX_SENT, NULL);
	if (c) {
		if (st == LABGW_TX_ACKED)
			c->tx_acked++;
		else
			c->tx_failed++;
		s->state_dirty = true;
	}
	pending_free(p);
	s->h->tx_status(s->r, id, st, st == LABGW_TX_FAILED ? reason : NULL);
}

static int pending_timeout_cb(void *user_data)
{
	struct pending *p = user_data;
	struct lw *s = p->s;

	p->timer = 0;
	if (s->expect_tx_ack)
		pending_finish(p, LABGW_TX_FAILED, "no TX_ACK within 5 s");
	else
		pending_finish(p, LABGW_TX_ACKED, NULL);
	return 0;
}

/* Runs on the loop after command() returned: the host reports "queued"
 * first. */
static int pending_sent_cb(void *user_data)
{
	struct pending *p = user_data;
	struct lw *s = p->s;

	p->timer = 0;
	if (p->fail) {
		pending_finish(p, LABGW_TX_FAILED, p->fail);
		return 0;
	}
	p->sent = true;
	s->h->tx_status(s->r, p->id, LABGW_TX_SENT, NULL);
	if (p->ack_after_sent) {
		pending_finish(p, LABGW_TX_ACKED, NULL);
		return 0;
	}
	p->timer = s->h->timer_add(s->r, TX_ACK_WAIT_MS, 0, pending_timeout_cb, p);
	if (!p->timer)
		pending_finish(p, LABGW_TX_FAILED, "out of timers");
	return 0;
}

static struct pending *pending_new(struct lw *s)
{
	for (unsigned i = 0; i < PENDING_MAX; i++) {
		if (!s->pending[i].used) {
			memset(&s->pending[i], 0, sizeof(s->pending[i]));
			s->pending[i].s = s;
			return &s->pending[i];
		}
	}
	return NULL;
}

static void on_tx_ack(struct lw *s, struct conc *c, const struct gwmp_header *hd, uint8_t *buf,
		      size_t len)
{
	struct gwmp_tx_ack ack;
	const char *why;

	if (gwmp_parse_tx_ack(hd->body, hd->body_len, &ack, &why) < 0) {
		s->cnt.malformed++;
		s->state_dirty = true;
		s->h->log(s->r, LABGW_LOG_DEBUG, "malformed TX_ACK from %s dropped: %s", c->eui_s,
			  why);
		return;
	}
	for (unsigned i = 0; i < PENDING_MAX; i++) {
		struct pending *p = &s->pending[i];

		if (!p->used || !p->has_token || p->token != hd->token || p->eui != c->eui)
			continue;
		if (ack.error == GWMP_TX_NONE)
			pending_finish(p, LABGW_TX_ACKED, NULL);
		else
			pending_finish(p, LABGW_TX_FAILED, ack.name);
		return;
	}
	for (unsigned i = 0; i < RELAY_MAX; i++) {
		struct relay *rl = &s->relay[i];
		struct pair *pr;

		if (!rl->used || rl->token != hd->token || rl->eui != c->eui)
			continue;
		rl->used = false;
		pr = pair_get(s, c, rl->up);
		gwmp_set_token(buf, len, rl->up_token);
		if (!pr || send(pr->fd, buf, len, 0) < 0)
			s->up[rl->up].errors++;
		return;
	}
	s->cnt.tx_ack_unknown++;
	s->h->log(s->r, LABGW_LOG_DEBUG, "TX_ACK from %s for unknown token %u", c->eui_s,
		  (unsigned)hd->token);
}

/* A transmit request, checked. */
struct req {
	bool raw;
	uint8_t phy[PHY_MAX_LEN];
	size_t phy_len;
	bool class_a; /* answer the device's last uplink in RX1 or RX2 */
	uint32_t dev_addr;
	char dev[9];
	uint8_t fport;
	bool confirmed;
	uint8_t payload[PHY_MAX_LEN];
	size_t payload_len;
	bool has_gw;
	uint64_t gw;
	int powe;
	/* explicit timing (raw) */
	bool imme, has_tmst;
	uint32_t tmst;
	uint32_t freq_hz, bw_hz;
	int sf, cr;
};

/* What will be sent where. */
struct plan {
	struct conc *c;
	struct dev *d;
	const char *window; /* "RX1", "RX2", "explicit" */
	struct gwmp_txpk tx;
	size_t size;
	uint64_t airtime_us;
	int band;
	uint64_t at_ms;
	bool set_ack;
};

static int json_uint(json_t *body, const char *key, uint64_t min, uint64_t max, bool *has,
		     uint64_t *out, char *errbuf, size_t errlen)
{
	json_t *v = json_object_get(body, key);

	*has = false;
	if (!v)
		return 0;
	if (!json_is_integer(v) || json_integer_value(v) < (json_int_t)min ||
	    (uint64_t)json_integer_value(v) > max)
		return refuse(errbuf, errlen, -EINVAL, "\"%s\" must be an integer %llu..%llu", key,
			      (unsigned long long)min, (unsigned long long)max);
	*has = true;
	*out = (uint64_t)json_integer_value(v);
	return 0;
}

static int parse_req(struct lw *s, const struct labgw_command *cmd, struct req *q, char *errbuf,
		     size_t errlen)
{
	json_error_t jerr;
	json_t *body, *v;
	bool has;
	uint64_t x;
	long n;
	int rc = 0;

	memset(q, 0, sizeof(*q));
	q->powe = s->tx_power;
	q->bw_hz = 125000;
	q->cr = 5;
	if (!cmd->body)
		return refuse(errbuf, errlen, -EINVAL, "missing body");
	body = json_loadb(cmd->body, cmd->body_len, 0, &jerr);
	if (!body)
		return refuse(errbuf, errlen, -EINVAL, "body: %s", jerr.text);
	if (!json_is_object(body)) {
		rc = refuse(errbuf, errlen, -EINVAL, "body must be a JSON object");
		goto out;
	}
	if ((rc = json_uint(body, "powe", 0, 30, &has, &x, errbuf, errlen)) < 0)
		goto out;
	if (has)
		q->powe = (int)x;
	v = json_object_get(body, "gw_eui");
	if (v) {
		if (!json_is_string(v) || !gwmp_eui_parse(json_string_value(v), &q->gw)) {
			rc = refuse(errbuf, errlen, -EINVAL,
				    "\"gw_eui\" must be a gateway EUI of 16 hex digits");
			goto out;
		}
		q->has_gw = true;
	}
	v = json_object_get(body, "phy_payload");
	if (v) {
		bool explicit_params = false;
		const char *codr;

		q->raw = true;
		n = json_is_string(v) ? base64_decode(json_string_value(v), json_string_length(v),
						      q->phy, sizeof(q->phy))
				      : -1;
		if (n < 1) {
			rc = refuse(errbuf, errlen, -EINVAL,
				    "\"phy_payload\" must be base64 of 1 to 255 bytes");
			goto out;
		}
		q->phy_len = (size_t)n;
		v = json_object_get(body, "imme");
		if (v && !json_is_boolean(v)) {
			rc = refuse(errbuf, errlen, -EINVAL, "\"imme\" must be true or false");
			goto out;
		}
		q->imme = json_is_true(v);
		if ((rc = json_uint(body, "tmst", 0, UINT32_MAX, &q->has_tmst, &x, errbuf,
				    errlen)) < 0)
			goto out;
		q->tmst = (uint32_t)x;
		if (q->imme && q->has_tmst) {
			rc = refuse(errbuf, errlen, -EINVAL, "give \"tmst\" or \"imme\", not both");
			goto out;
		}
		if ((rc = json_uint(body, "freq_hz", 1000000, 4000000000u, &has, &x, errbuf,
				    errlen)) < 0)
			goto out;
		explicit_params |= has;
		q->freq_hz = (uint32_t)x;
		if ((rc = json_uint(body, "sf", 7, 12, &has, &x, errbuf, errlen)) < 0)
			goto out;
		explicit_params |= has;
		q->sf = (int)x;
		if ((rc = json_uint(body, "bw_hz", 125000, 500000, &has, &x, errbuf, errlen)) < 0)
			goto out;
		if (has && x != 125000 && x != 250000 && x != 500000) {
			rc = refuse(errbuf, errlen, -EINVAL,
				    "\"bw_hz\" must be 125000, 250000 or 500000");
			goto out;
		}
		explicit_params |= has;
		if (has)
			q->bw_hz = (uint32_t)x;
		v = json_object_get(body, "codr");
		if (v) {
			codr = json_string_value(v);
			if (!codr || !gwmp_parse_codr(codr, &q->cr)) {
				rc = refuse(errbuf, errlen, -EINVAL,
					    "\"codr\" must be \"4/5\" .. \"4/8\"");
				goto out;
			}
			explicit_params = true;
		}
		if (q->imme || q->has_tmst) {
			if (!q->freq_hz || !q->sf) {
				rc = refuse(errbuf, errlen, -EINVAL,
					    "\"freq_hz\" and \"sf\" are required with \"%s\"",
					    q->imme ? "imme" : "tmst");
				goto out;
			}
		} else if (explicit_params) {
			rc = refuse(errbuf, errlen, -EINVAL,
				    "\"tmst\" or \"imme\" is required with explicit TX parameters; "
				    "without them the downlink goes into the device's class A "
				    "receive windows");
			goto out;
		} else {
			unsigned mtype = q->phy[0] >> 5;

			if ((mtype != PHY_UNCONFIRMED_DOWN && mtype != PHY_CONFIRMED_DOWN) ||
			    q->phy_len < PHY_DATA_MIN_LEN) {
				rc = refuse(
					errbuf, errlen, -EINVAL,
					"without \"tmst\" or \"imme\", \"phy_payload\" must be a "
					"data downlink (MType 3 or 5) to answer in class A");
				goto out;
			}
			q->class_a = true;
			q->dev_addr = (uint32_t)q->phy[1] | (uint32_t)q->phy[2] << 8 |
				      (uint32_t)q->phy[3] << 16 | (uint32_t)q->phy[4] << 24;
			devaddr_str(q->dev_addr, q->dev);
		}
		goto out;
	}
	/* a frame to build for a device with session keys */
	v = json_object_get(body, "dev");
	if (!json_is_string(v) || !parse_devaddr(json_string_value(v), &q->dev_addr)) {
		rc = refuse(errbuf, errlen, -EINVAL,
			    "\"dev\" must be a DevAddr of 8 hex digits (or give \"phy_payload\")");
		goto out;
	}
	devaddr_str(q->dev_addr, q->dev);
	q->class_a = true;
	v = json_object_get(body, "fport");
	if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 223) {
		rc = refuse(errbuf, errlen, -EINVAL, "\"fport\" must be an integer 1..223");
		goto out;
	}
	q->fport = (uint8_t)json_integer_value(v);
	v = json_object_get(body, "confirmed");
	if (v && !json_is_boolean(v)) {
		rc = refuse(errbuf, errlen, -EINVAL, "\"confirmed\" must be true or false");
		goto out;
	}
	q->confirmed = json_is_true(v);
	v = json_object_get(body, "payload");
	n = json_is_string(v)
		    ? base64_decode(json_string_value(v), json_string_length(v), q->payload, 242)
		    : -1;
	if (n < 0) {
		rc = refuse(errbuf, errlen, -EINVAL,
			    "\"payload\" must be base64 of at most 242 bytes");
		goto out;
	}
	q->payload_len = (size_t)n;
out:
	json_decref(body);
	return rc;
}

/* Whether a transmission fits: its band, airtime and the duty cycle.
 * 0, -EINVAL (why in errbuf), or -EAGAIN with *wait. */
static int plan_fit(struct lw *s, struct plan *p, uint64_t *wait, char *errbuf, size_t errlen)
{
	char label[48];
	size_t max_mac = phy_eu868_max_mac_payload(p->tx.sf, p->tx.bw_hz);

	*wait = 0;
	if (max_mac && p->size > max_mac + 5)
		return refuse(errbuf, errlen, -EINVAL,
			      "%s: %zu bytes exceed the %zu of SF%dBW%u in EU868", p->window,
			      p->size, max_mac + 5, p->tx.sf, (unsigned)(p->tx.bw_hz / 1000));
	p->airtime_us = lora_airtime_us(p->tx.sf, p->tx.bw_hz, p->tx.cr, p->size, 8, false);
	p->band = dc_table_find(&s->bands, p->tx.freq_hz, p->tx.bw_hz);
	if (p->band < 0)
		return refuse(errbuf, errlen, -EINVAL,
			      "%s: %u Hz lies outside every duty-cycle sub-band", p->window,
			      (unsigned)p->tx.freq_hz);
	*wait = dc_ledger_wait_ms(p->c->ledger, (size_t)p->band, p->at_ms, p->airtime_us);
	if (!*wait)
		return 0;
	dc_band_label(&s->bands.band[p->band], label, sizeof(label));
	if (*wait == DC_NEVER)
		return refuse(errbuf, errlen, -EINVAL,
			      "%s: %llu ms of airtime exceed the hourly budget of band %s",
			      p->window, (unsigned long long)((p->airtime_us + 999) / 1000), label);
	return refuse(
		errbuf, errlen, -EAGAIN,
		"%s: duty cycle of band %s on gateway %s: %llu of %llu ms used in the last "
		"hour",
		p->window, label, p->c->eui_s,
		(unsigned long long)(dc_ledger_used_us(p->c->ledger, (size_t)p->band, now_ms(s)) +
				     999) /
			1000,
		(unsigned long long)(dc_band_limit_us(&s->bands.band[p->band], DC_WINDOW_MS) /
				     1000));
}

/* The copy of the device's last uplink to answer through: the best RSSI
 * among concentrators that are online, else the best one. */
static const struct copy *best_copy(struct lw *s, const struct dev *d, uint64_t only)
{
	const struct copy *best = NULL;
	bool best_online = false;

	for (unsigned i = 0; i < d->ncopies; i++) {
		const struct copy *cp = &d->copies[i];
		struct conc *c = conc_find(s, cp->eui);
		bool online = c && c->online && c->has_down;

		if (!c || (only && cp->eui != only))
			continue;
		if (!best || (online && !best_online) ||
		    (online == best_online && cp->rssi > best->rssi)) {
			best = cp;
			best_online = online;
		}
	}
	return best;
}

static void window_gone(char *buf, size_t len, const char *name, uint64_t delay_ms,
			uint64_t elapsed_ms, uint64_t lead_ms)
{
	if (elapsed_ms >= delay_ms)
		snprintf(buf, len, "%s opened %llu ms ago", name,
			 (unsigned long long)(elapsed_ms - delay_ms));
	else
		snprintf(buf, len, "%s opens in %llu ms, less than rx_lead %llu ms", name,
			 (unsigned long long)(delay_ms - elapsed_ms), (unsigned long long)lead_ms);
}

static int plan_class_a(struct lw *s, const struct req *q, struct plan *p, uint64_t *retry_ms,
			char *errbuf, size_t errlen)
{
	const struct copy *cp;
	uint64_t elapsed, now = now_ms(s), wait_min = DC_NEVER;
	char why1[200] = "", why2[200] = "";
	int rc1 = -EINVAL, rc2 = -EINVAL;
	uint64_t w;

	p->d = dev_find(s, q->dev_addr);
	if (!p->d || !p->d->has_up)
		return refuse(errbuf, errlen, -EINVAL,
			      "no uplink of the device %s to answer in class A", q->dev);
	/* a device that got a downlink in RX1 does not open RX2 */
	if (p->d->answered)
		return refuse(errbuf, errlen, -EINVAL,
			      "the last uplink of %s has its downlink already: a class A device "
			      "listens again after its next uplink",
			      q->dev);
	cp = best_copy(s, p->d, q->has_gw ? q->gw : 0);
	if (!cp)
		return refuse(errbuf, errlen, -EINVAL,
			      "no uplink of the device %s to answer in class A%s", q->dev,
			      q->has_gw ? " through that gateway" : "");
	p->c = conc_find(s, cp->eui);
	elapsed = now - cp->at_ms;
	p->tx.modu = GWMP_MODU_LORA;
	p->tx.cr = 5;
	p->tx.ipol = true;
	p->tx.ncrc = true;
	p->tx.powe = q->powe;
	/* RX1: one second after the uplink, on its channel and data rate
	 * (EU868, RX1DROffset 0) */
	p->window = "RX1";
	if (!p->d->up_lora) {
		snprintf(why1, sizeof(why1), "RX1: the uplink was not LoRa");
	} else if (elapsed + s->rx_lead_ms > RECEIVE_DELAY1_MS) {
		window_gone(why1, sizeof(why1), "RX1", RECEIVE_DELAY1_MS, elapsed, s->rx_lead_ms);
	} else {
		p->tx.tmst = cp->tmst + RECEIVE_DELAY1_MS * 1000u;
		p->tx.freq_hz = p->d->up_freq;
		p->tx.sf = p->d->up_sf;
		p->tx.bw_hz = p->d->up_bw;
		p->at_ms = cp->at_ms + RECEIVE_DELAY1_MS;
		rc1 = plan_fit(s, p, &w, why1, sizeof(why1));
		if (rc1 == 0)
			return 0;
		if (rc1 == -EAGAIN && w < wait_min)
			wait_min = w;
	}
	/* RX2: two seconds after, on the fixed channel and data rate */
	p->window = "RX2";
	if (elapsed + s->rx_lead_ms > RECEIVE_DELAY2_MS) {
		window_gone(why2, sizeof(why2), "RX2", RECEIVE_DELAY2_MS, elapsed, s->rx_lead_ms);
	} else {
		p->tx.tmst = cp->tmst + RECEIVE_DELAY2_MS * 1000u;
		p->tx.freq_hz = s->rx2_freq;
		p->tx.sf = s->rx2_sf;
		p->tx.bw_hz = s->rx2_bw;
		p->at_ms = cp->at_ms + RECEIVE_DELAY2_MS;
		rc2 = plan_fit(s, p, &w, why2, sizeof(why2));
		if (rc2 == 0)
			return 0;
		if (rc2 == -EAGAIN && w < wait_min)
			wait_min = w;
	}
	if (rc1 == -EAGAIN || rc2 == -EAGAIN) {
		*retry_ms = wait_min;
		return refuse(errbuf, errlen, -EAGAIN, "%s; %s", why1, why2);
	}
	return refuse(errbuf, errlen, -EINVAL, "no receive window of %s's last uplink fits: %s; %s",
		      q->dev, why1, why2);
}

static int plan_explicit(struct lw *s, const struct req *q, struct plan *p, uint64_t *retry_ms,
			 char *errbuf, size_t errlen)
{
	uint64_t w;
	int rc;

	if (q->has_gw) {
		p->c = conc_find(s, q->gw);
		if (!p->c)
			return refuse(errbuf, errlen, -EINVAL, "no concentrator %016llx",
				      (unsigned long long)q->gw);
	} else {
		unsigned n = 0;

		for (unsigned i = 0; i < s->max_conc; i++) {
			if (s->conc[i].used && s->conc[i].has_down) {
				p->c = &s->conc[i];
				n++;
			}
		}
		if (n != 1)
			return refuse(errbuf, errlen, -EINVAL,
				      "\"gw_eui\" is required: %u concentrators can send", n);
	}
	p->window = "explicit";
	p->tx.modu = GWMP_MODU_LORA;
	p->tx.imme = q->imme;
	p->tx.tmst = q->tmst;
	p->tx.freq_hz = q->freq_hz;
	p->tx.sf = q->sf;
	p->tx.bw_hz = q->bw_hz;
	p->tx.cr = q->cr;
	p->tx.ipol = true;
	p->tx.ncrc = true;
	p->tx.powe = q->powe;
	p->at_ms = q->imme ? now_ms(s) : conc_tmst_at(s, p->c, q->tmst);
	rc = plan_fit(s, p, &w, errbuf, errlen);
	if (rc == -EAGAIN)
		*retry_ms = w;
	return rc;
}

/* Decides what a request sends where, without committing anything. */
static int plan_tx(struct lw *s, const struct req *q, struct plan *p, uint64_t *retry_ms,
		   char *errbuf, size_t errlen)
{
	uint8_t nwk[16], app[16];

	memset(p, 0, sizeof(*p));
	*retry_ms = 0;
	if (!q->raw) {
		if (!s->h->lorawan_session_keys(s->r, q->dev, nwk, app))
			return refuse(errbuf, errlen, -EINVAL,
				      "no session keys for %s: claim it with \"nwkskey\" and "
				      "\"appskey\" (ABP), or send a \"phy_payload\"",
				      q->dev);
		OPENSSL_cleanse(nwk, sizeof(nwk));
		OPENSSL_cleanse(app, sizeof(app));
		p->size = PHY_DATA_OVERHEAD + q->payload_len;
	} else {
		p->size = q->phy_len;
	}
	if (q->class_a)
		return plan_class_a(s, q, p, retry_ms, errbuf, errlen);
	return plan_explicit(s, q, p, retry_ms, errbuf, errlen);
}

/* Builds the frame of a request with session keys; takes a downlink
 * counter (persisted ahead, so that none is used twice after a crash). */
static long build_frame(struct lw *s, const struct req *q, struct plan *p, uint8_t *out,
			char *errbuf, size_t errlen)
{
	uint8_t nwk[16], app[16];
	struct phy_data_params dp = {0};
	struct dev *d = p->d;
	long n;

	if (!s->h->lorawan_session_keys(s->r, q->dev, nwk, app))
		return refuse(errbuf, errlen, -EINVAL, "no session keys for %s", q->dev);
	dev_load(s, d, nwk);
	if (d->fcnt_down >= d->fcnt_down_reserved) {
		d->fcnt_down_reserved = d->fcnt_down + FCNT_DOWN_RESERVE;
		if (dev_save(s, d) < 0) {
			d->fcnt_down_reserved = d->fcnt_down;
			OPENSSL_cleanse(nwk, sizeof(nwk));
			OPENSSL_cleanse(app, sizeof(app));
			return refuse(errbuf, errlen, -EIO,
				      "the downlink frame counter could not be saved");
		}
	}
	dp.mtype = q->confirmed ? PHY_CONFIRMED_DOWN : PHY_UNCONFIRMED_DOWN;
	dp.dev_addr = q->dev_addr;
	dp.fctrl = d->ack_pending ? PHY_FCTRL_ACK : 0;
	dp.fcnt = d->fcnt_down;
	dp.has_fport = true;
	dp.fport = q->fport;
	dp.payload = q->payload;
	dp.len = q->payload_len;
	n = phy_build_data(s->crypto, &dp, nwk, app, out, PHY_MAX_LEN);
	OPENSSL_cleanse(nwk, sizeof(nwk));
	OPENSSL_cleanse(app, sizeof(app));
	if (n < 0)
		return refuse(errbuf, errlen, -EINVAL, "frame not built: %s", strerror((int)-n));
	d->fcnt_down++;
	p->set_ack = d->ack_pending;
	return n;
}

static int lw_command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	struct lw *s = state;
	struct req q;
	struct plan p;
	struct pending *pd;
	uint8_t frame[PHY_MAX_LEN], dgram[1024];
	uint64_t retry;
	long n, dn;
	int rc;

	if (strcmp(cmd->op, "tx") != 0)
		return refuse(errbuf, errlen, -ENOTSUP, "unknown op \"%.32s\"", cmd->op);
	if (!s->running)
		return refuse(errbuf, errlen, -ENODEV, "radio is not running");
	if (!cmd->id || strlen(cmd->id) >= sizeof(pd->id))
		return refuse(errbuf, errlen, -EINVAL, "bad command id");
	pd = pending_new(s);
	if (!pd)
		return refuse(errbuf, errlen, -EBUSY, "%d downlinks already pending", PENDING_MAX);
	rc = parse_req(s, cmd, &q, errbuf, errlen);
	if (rc < 0)
		return rc;
	rc = plan_tx(s, &q, &p, &retry, errbuf, errlen);
	if (rc < 0)
		return rc;
	snprintf(pd->id, sizeof(pd->id), "%s", cmd->id);
	pd->eui = p.c->eui;
	if (!p.c->online || !p.c->has_down) {
		/* accepted, and failed once the host reported it queued */
		pd->fail = "concentrator offline";
	} else {
		if (q.raw) {
			memcpy(frame, q.phy, q.phy_len);
			n = (long)q.phy_len;
		} else {
			n = build_frame(s, &q, &p, frame, errbuf, errlen);
			if (n < 0)
				return (int)n;
		}
		p.tx.data = frame;
		p.tx.size = (size_t)n;
		pd->token = token_new(s);
		pd->has_token = true;
		dn = gwmp_build_pull_resp(dgram, sizeof(dgram), p.c->version, pd->token, &p.tx);
		if (dn < 0)
			return refuse(errbuf, errlen, -EINVAL, "txpk not built: %s",
				      strerror((int)-dn));
		if (sendto(s->fd, dgram, (size_t)dn, 0, (struct sockaddr *)&p.c->down_addr,
			   p.c->down_len) < 0) {
			s->cnt.send_errors++;
			return refuse(errbuf, errlen, -EIO, "sending to concentrator %s: %s",
				      p.c->eui_s, strerror(errno));
		}
		dc_ledger_commit(p.c->ledger, (size_t)p.band, p.at_ms, p.airtime_us);
		p.c->ledger_dirty = true;
		if (p.set_ack)
			p.d->ack_pending = false;
		if (q.class_a) {
			p.d->answered = true;
			pd->class_a = true;
			pd->dev_addr = p.d->addr;
			pd->up_fcnt16 = p.d->up_fcnt16;
			memcpy(pd->up_mic, p.d->up_mic, 4);
		}
		p.c->tx_sent++;
		pd->ack_after_sent = p.c->version < 2;
		s->state_dirty = true;
		s->h->log(s->r, LABGW_LOG_DEBUG,
			  "downlink %s to %s in %s via %s: %u.%06u MHz SF%dBW%u, %zu bytes, "
			  "%llu ms",
			  cmd->id, q.raw && !q.class_a ? "-" : q.dev, p.window, p.c->eui_s,
			  (unsigned)(p.tx.freq_hz / 1000000), (unsigned)(p.tx.freq_hz % 1000000),
			  p.tx.sf, (unsigned)(p.tx.bw_hz / 1000), p.tx.size,
			  (unsigned long long)((p.airtime_us + 999) / 1000));
	}
	pd->timer = s->h->timer_add(s->r, 0, 0, pending_sent_cb, pd);
	if (!pd->timer) {
		/* sent already: its outcome goes unreported */
		memset(pd, 0, sizeof(*pd));
		return refuse(errbuf, errlen, -ENOMEM, "out of timers");
	}
	pd->used = true;
	return 0;
}

/* The regulatory hook: airtime of the chosen window and whether its
 * sub-band's duty cycle on that concentrator allows it. */
static int lw_tx_check(void *state, const struct labgw_command *cmd, struct labgw_tx_cost *cost,
		       char *errbuf, size_t errlen)
{
	struct lw *s = state;
	struct req q;
	struct plan p;
	uint64_t retry;
	int rc;

	if (strcmp(cmd->op, "tx") != 0)
		return 0;
	rc = parse_req(s, cmd, &q, errbuf, errlen);
	if (rc < 0)
		return rc;
	rc = plan_tx(s, &q, &p, &retry, errbuf, errlen);
	cost->size = (uint32_t)p.size;
	cost->airtime_ms = (p.airtime_us + 999) / 1000;
	if (rc == -EAGAIN)
		cost->retry_after_ms = retry == DC_NEVER ? DC_WINDOW_MS : retry;
	return rc;
}

/* ---- the GWMP socket --------------------------------------------------- */

static void malformed(struct lw *s, const struct sockaddr_storage *from, const char *why)
{
	char a[80];

	s->cnt.malformed++;
	s->state_dirty = true;
	addr_str(from, a, sizeof(a));
	s->h->log(s->r, LABGW_LOG_DEBUG, "malformed datagram from %s dropped: %s", a, why);
}

static void reply(struct lw *s, const struct sockaddr_storage *to, socklen_t tolen,
		  const struct gwmp_header *hd, enum gwmp_type type)
{
	uint8_t ack[GWMP_HDR_LEN];

	gwmp_build_ack(ack, hd->version, hd->token, type);
	if (sendto(s->fd, ack, sizeof(ack), 0, (const struct sockaddr *)to, tolen) < 0)
		s->cnt.send_errors++;
}

static void on_datagram(struct lw *s, uint8_t *buf, size_t len, const struct sockaddr_storage *from,
			socklen_t fromlen)
{
	struct gwmp_header hd;
	struct conc *c;
	const char *why;
	uint64_t now = now_ms(s);

	s->cnt.datagrams++;
	if (gwmp_parse(buf, len, &hd, &why) < 0) {
		malformed(s, from, why);
		return;
	}
	switch (hd.type) {
	case GWMP_PUSH_DATA:
		if (gwmp_parse_push(hd.body, hd.body_len, s->push, &why) < 0) {
			malformed(s, from, why);
			return;
		}
		c = conc_get(s, hd.eui);
		if (!c) {
			s->cnt.table_full++;
			s->state_dirty = true;
			return;
		}
		reply(s, from, fromlen, &hd, GWMP_PUSH_ACK);
		s->cnt.push_data++;
		c->version = hd.version;
		c->up_addr = *from;
		c->up_len = fromlen;
		c->has_up = true;
		c->last_seen_ms = now;
		c->last_seen_wall = wall_ms();
		relay_up(s, c, buf, len);
		s->cnt.rxpk_over += s->push->rxpk_over;
		for (size_t i = 0; i < s->push->n_rxpk; i++)
			rx_publish(s, c, &s->push->rxpk[i]);
		if (s->push->has_stat) {
			c->stat = s->push->stat;
			c->has_stat = true;
			s->state_dirty = true;
		}
		return;
	case GWMP_PULL_DATA:
		c = conc_get(s, hd.eui);
		if (!c) {
			s->cnt.table_full++;
			s->state_dirty = true;
			return;
		}
		reply(s, from, fromlen, &hd, GWMP_PULL_ACK);
		s->cnt.pull_data++;
		c->version = hd.version;
		c->last_seen_ms = c->last_pull_ms = now;
		c->last_seen_wall = c->last_pull_wall = wall_ms();
		if (!c->has_down || !addr_equal(&c->down_addr, c->down_len, from, fromlen) ||
		    !c->online) {
			char a[80];

			addr_str(from, a, sizeof(a));
			s->h->log(s->r, LABGW_LOG_NOTICE, "concentrator %s online, downlinks to %s",
				  c->eui_s, a);
			s->state_dirty = true;
		}
		c->down_addr = *from;
		c->down_len = fromlen;
		c->has_down = true;
		c->online = true;
		relay_up(s, c, buf, len);
		return;
	case GWMP_TX_ACK:
		c = conc_find(s, hd.eui);
		s->cnt.tx_ack++;
		if (!c) {
			s->cnt.tx_ack_unknown++;
			return;
		}
		c->last_seen_ms = now;
		c->last_seen_wall = wall_ms();
		on_tx_ack(s, c, &hd, buf, len);
		return;
	case GWMP_PUSH_ACK:
	case GWMP_PULL_ACK:
	case GWMP_PULL_RESP:
		malformed(s, from, "a server's packet type sent to the server");
		return;
	}
}

static int sock_cb(void *user_data, int fd, unsigned events)
{
	struct lw *s = user_data;

	for (int i = 0; i < RECV_BATCH; i++) {
		struct sockaddr_storage from;
		socklen_t fromlen = sizeof(from);
		ssize_t n = recvfrom(fd, s->buf, RECV_BUF, MSG_TRUNC, (struct sockaddr *)&from,
				     &fromlen);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				s->h->log(s->r, LABGW_LOG_DEBUG, "recvfrom: %s", strerror(errno));
			break;
		}
		if (n > GWMP_DATAGRAM_MAX) {
			s->cnt.datagrams++;
			malformed(s, &from, "longer than 65507 bytes");
			continue;
		}
		on_datagram(s, s->buf, (size_t)n, &from, fromlen);
	}
	(void)events;
	return 0;
}

/* ---- housekeeping ------------------------------------------------------ */

static int tick_cb(void *user_data)
{
	struct lw *s = user_data;
	uint64_t now = now_ms(s);

	for (unsigned i = 0; i < s->max_conc; i++) {
		struct conc *c = &s->conc[i];

		if (c->used && c->online && now - c->last_pull_ms > 3 * s->keepalive_ms)
			conc_offline(s, c, "no PULL_DATA for 3 keepalive intervals");
	}
	for (unsigned i = 0; i < RELAY_MAX; i++) {
		if (s->relay[i].used && now - s->relay[i].at_ms > RELAY_TTL_MS)
			s->relay[i].used = false;
	}
	for (unsigned i = 0; i < s->n_up; i++) {
		if (!s->up[i].resolved && !s->up[i].resolving && now >= s->up[i].retry_at_ms)
			resolve_start(s, i);
	}
	if (now - s->flush_at_ms >= FLUSH_EVERY_MS) {
		s->flush_at_ms = now;
		dev_flush(s);
		ledger_flush(s);
	}
	if ((s->state_dirty && now - s->state_at_ms >= STATE_EVERY_MS) ||
	    now - s->state_at_ms >= STATE_REFRESH_MS)
		publish_state(s);
	return 0;
}

static int lw_start(void *state)
{
	struct lw *s = state;
	struct sockaddr_storage bound;
	socklen_t blen = sizeof(bound);
	int one = 1, rcvbuf = 1 << 20, rc;

	if (s->running)
		return 0;
	s->fd = socket(s->listen_addr.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0)
		return -errno;
	if (s->listen_addr.ss_family == AF_INET6)
		setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
	setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
	if (bind(s->fd, (struct sockaddr *)&s->listen_addr, s->listen_len) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&bound, &blen) < 0) {
		char a[80];

		rc = -errno;
		addr_str(&s->listen_addr, a, sizeof(a));
		s->h->log(s->r, LABGW_LOG_ERROR, "GWMP socket on %s: %s", a, strerror(-rc));
		close(s->fd);
		s->fd = -1;
		return rc;
	}
	addr_str(&bound, s->bound, sizeof(s->bound));
	s->watch = s->h->watch_fd(s->r, s->fd, LABGW_FD_READ, sock_cb, s);
	s->tick = s->h->timer_add(s->r, TICK_MS, TICK_MS, tick_cb, s);
	if (!s->watch || !s->tick) {
		if (s->watch)
			s->h->watch_fd_cancel(s->r, s->watch);
		if (s->tick)
			s->h->timer_cancel(s->r, s->tick);
		s->watch = s->tick = 0;
		close(s->fd);
		s->fd = -1;
		return -ENOMEM;
	}
	s->running = true;
	s->flush_at_ms = now_ms(s);
	for (unsigned i = 0; i < s->n_up; i++) {
		s->up[i].retry_at_ms = 0;
		resolve_start(s, i);
	}
	s->h->log(s->r, LABGW_LOG_NOTICE, "GWMP on %s", s->bound);
	publish_state(s);
	return 0;
}

static void lw_stop(void *state)
{
	struct lw *s = state;

	for (unsigned i = 0; i < PENDING_MAX; i++) {
		if (s->pending[i].used)
			pending_finish(&s->pending[i], LABGW_TX_FAILED, "radio stopped");
	}
	for (unsigned i = 0; i < s->max_conc; i++) {
		struct conc *c = &s->conc[i];

		for (unsigned k = 0; k < UPSTREAM_MAX; k++)
			pair_close(s, &c->pairs[k]);
		c->online = false;
	}
	memset(s->relay, 0, sizeof(s->relay));
	if (s->tick)
		s->h->timer_cancel(s->r, s->tick);
	if (s->watch)
		s->h->watch_fd_cancel(s->r, s->watch);
	s->tick = s->watch = 0;
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	dev_flush(s);
	ledger_flush(s);
	s->running = false;
}

static void lw_exit(void *state)
{
	struct lw *s = state;

	if (!s)
		return;
	dev_flush(s);
	ledger_flush(s);
	for (unsigned b = 0; b < DEV_BUCKETS; b++) {
		while (s->dev_hash[b]) {
			struct dev *d = s->dev_hash[b];

			s->dev_hash[b] = d->next;
			free(d);
		}
	}
	for (unsigned i = 0; i < s->max_conc; i++) {
		for (unsigned k = 0; k < UPSTREAM_MAX; k++) {
			if (s->conc[i].pairs[k].fd >= 0)
				close(s->conc[i].pairs[k].fd);
		}
		dc_ledger_free(s->conc[i].ledger);
	}
	free(s->conc);
	free(s->buf);
	free(s->push);
	lorawan_crypto_free(s->crypto);
	free(s);
}

LABGW_PLUGIN_DEFINE(.name = "lorawan", .version = LABGW_VERSION, .techs = LABGW_TECH_LORAWAN,
		    .init = lw_init, .start = lw_start, .command = lw_command, .stop = lw_stop,
		    .exit = lw_exit, .tx_check = lw_tx_check);
