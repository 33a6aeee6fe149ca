// SPDX-License-Identifier: MIT
/*
 * The sim radio module: synthetic traffic of all four techs at a set rate
 * (frames from gen.c), and transmit commands that are accepted and
 * acknowledged like those of the real radios.
 *
 * Configuration ([radio NAME] with module = sim):
 *   rate    = frames per second, 1..100000 (default 10)
 *   seed    = 0..4294967295 (default 1); same seed, same devices and keys
 *   devices = population size, 1..10000 (default 40)
 *   techs   = space-separated subset of "ble wlan lorawan cellular" (default all)
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include <labgw/plugin.h>

#include "../ble/ad.h"
#include "../ble/adv.h"
#include "frame_builder.h"
#include "gen.h"
#include "base64.h"
#include "lora_airtime.h"

#ifndef LABGW_VERSION
#define LABGW_VERSION "0.0.0-dev"
#endif

#define TICK_MS 10
/* One tick emits at most 1/BURST_DIV s worth of frames: after a stalled
 * loop the backlog is dropped rather than flooding the bus. */
#define BURST_DIV      10
#define MAX_PENDING    64
#define SENT_AFTER_MS  20
#define ACKED_AFTER_MS 80 /* after "sent", so ~100 ms after accept */

struct sim;

struct sim_cmd {
	struct sim_cmd *prev, *next;
	struct sim *s;
	uint64_t timer; /* 0 when none is armed */
	char id[];
};

struct sim {
	struct labgw_radio *r;
	const struct labgw_host *host;
	unsigned rate, devices;
	uint32_t seed, techs;
	struct sim_gen *gen;

	bool running;
	uint64_t tick;
	uint64_t last_ms;
	uint64_t acc; /* rate x elapsed ms not yet turned into frames, < 1000 */
	uint64_t dropped;

	struct sim_cmd *cmds;
	unsigned n_cmds;

	struct sim_event ev; /* scratch, kept here to spare the stack */

	/* downlink airtime of the last DUTY_LOG transmits, for the duty cycle */
#define DUTY_LOG 256
	struct {
		uint64_t at_ms;
		uint64_t airtime_ms;
	} duty[DUTY_LOG];
	unsigned duty_next;
};

static const struct {
	const char *name;
	enum labgw_tech tech;
} techs_tab[] = {
	{"ble", LABGW_TECH_BLE},
	{"wlan", LABGW_TECH_WLAN},
	{"lorawan", LABGW_TECH_LORAWAN},
	{"cellular", LABGW_TECH_CELLULAR},
};

/* ---- configuration ---------------------------------------------------- */

static int parse_techs(struct sim *s, const char *v)
{
	const char *p = v;

	s->techs = 0;
	while (*p) {
		size_t n;
		bool found = false;

		p += strspn(p, " \t");
		n = strcspn(p, " \t");
		if (!n)
			break;
		for (size_t i = 0; i < sizeof(techs_tab) / sizeof(techs_tab[0]); i++) {
			if (strlen(techs_tab[i].name) == n && !strncmp(p, techs_tab[i].name, n)) {
				s->techs |= techs_tab[i].tech;
				found = true;
			}
		}
		if (!found) {
			s->host->config_error(s->r, "techs",
					      "unknown technology \"%.*s\" (expected some of: ble "
					      "wlan lorawan cellular)",
					      (int)(n > 32 ? 32 : n), p);
			return -EINVAL;
		}
		p += n;
	}
	if (!s->techs) {
		s->host->config_error(s->r, "techs", "no technology given");
		return -EINVAL;
	}
	return 0;
}

static int sim_init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct sim *s;
	long long rate = 0, seed = 0, devices = 0;
	const char *techs;
	int rc, rc2, rc3;

	if (host->size < offsetof(struct labgw_host, reserved))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->r = r;
	s->host = host;

	/* Read every key before failing, so none is reported as unknown. */
	rc = host->config_get_int(r, "rate", 1, 100000, 10, &rate);
	rc2 = host->config_get_int(r, "seed", 0, 4294967295LL, 1, &seed);
	rc3 = host->config_get_int(r, "devices", 1, SIM_DEVICES_MAX, 40, &devices);
	techs = host->config_get(r, "techs");
	if (rc == 0)
		rc = rc2;
	if (rc == 0)
		rc = rc3;
	if (rc == 0) {
		if (techs)
			rc = parse_techs(s, techs);
		else
			s->techs = SIM_TECHS_ALL;
	}
	if (rc < 0) {
		free(s);
		return rc;
	}
	s->rate = (unsigned)rate;
	s->seed = (uint32_t)seed;
	s->devices = (unsigned)devices;
	s->gen = sim_gen_new(s->seed, s->devices, s->techs);
	if (!s->gen) {
		rc = -errno;
		free(s);
		return rc ? rc : -ENOMEM;
	}
	/* the radio serves only the simulated techs (transmits, state) */
	host->radio_set_techs(r, s->techs);
	*state = s;
	return 0;
}

/* ---- frames ----------------------------------------------------------- */

/* The same decoding and fields as the ble module: the advert's bytes
 * through the AD parser, then the one rx.ble.adv writer. */
static void emit_ble(struct fb *b, const struct sim_event *ev)
{
	const struct sim_ble_adv *a = &ev->u.ble;
	struct ble_ad ad;
	struct ble_adv_meta meta = {
		.addr = ev->dev,
		.random = a->addr_random,
		.has_rssi = true,
		.rssi = a->rssi,
	};

	if (b->err < 0)
		return;
	if (ble_ad_parse(ev->payload, ev->payload_len, &ad) < 0) {
		b->err = -EINVAL;
		return;
	}
	b->err = ble_adv_fields(b->h, b->f, &meta, &ad);
}

static void emit_wlan(struct fb *b, const struct sim_event *ev)
{
	const struct sim_wlan_station *w = &ev->u.wlan;

	fb_int(b, LABGW_SIG, "freq_hz", (int64_t)w->freq_hz);
	fb_str(b, LABGW_DATA, "mac", ev->dev);
	fb_str(b, LABGW_DATA, "ssid", w->ssid);
	switch (w->event) {
	case SIM_WLAN_JOINED:
		fb_str(b, LABGW_DATA, "event", "joined");
		fb_int(b, LABGW_SIG, "signal_dbm", w->signal_dbm);
		fb_int(b, LABGW_SIG, "signal_avg_dbm", w->signal_avg_dbm);
		break;
	case SIM_WLAN_LEFT:
		fb_str(b, LABGW_DATA, "event", "left");
		fb_int(b, LABGW_DATA, "connected_s", w->connected_s);
		break;
	case SIM_WLAN_SIGNAL:
		fb_str(b, LABGW_DATA, "event", "signal");
		fb_int(b, LABGW_SIG, "signal_dbm", w->signal_dbm);
		fb_int(b, LABGW_SIG, "signal_avg_dbm", w->signal_avg_dbm);
		fb_int(b, LABGW_DATA, "tx_bitrate_kbps", w->tx_bitrate_kbps);
		fb_int(b, LABGW_DATA, "rx_bitrate_kbps", w->rx_bitrate_kbps);
		fb_int(b, LABGW_DATA, "rx_bytes", (int64_t)w->rx_bytes);
		fb_int(b, LABGW_DATA, "tx_bytes", (int64_t)w->tx_bytes);
		fb_int(b, LABGW_DATA, "rx_packets", (int64_t)w->rx_packets);
		fb_int(b, LABGW_DATA, "tx_packets", (int64_t)w->tx_packets);
		fb_int(b, LABGW_DATA, "connected_s", w->connected_s);
		break;
	}
}

static void emit_lora_rx(struct fb *b, const struct sim_lora_rx *rx)
{
	fb_int(b, LABGW_SIG, "rssi", rx->rssi);
	fb_double(b, LABGW_SIG, "snr", rx->snr);
	fb_int(b, LABGW_SIG, "freq_hz", (int64_t)rx->freq_hz);
	fb_int(b, LABGW_SIG, "sf", rx->sf);
	fb_int(b, LABGW_SIG, "bw_hz", rx->bw_hz);
	fb_str(b, LABGW_SIG, "codr", rx->codr);
	fb_int(b, LABGW_SIG, "chan", rx->chan);
	fb_int(b, LABGW_SIG, "rfch", rx->rfch);
}

static void emit_uplink(struct fb *b, const struct sim_event *ev)
{
	const struct sim_lorawan_uplink *u = &ev->u.up;

	emit_lora_rx(b, &u->rx);
	fb_str(b, LABGW_DATA, "mtype", u->confirmed ? "confirmed_up" : "unconfirmed_up");
	fb_str(b, LABGW_DATA, "dev_addr", ev->dev);
	fb_bool(b, LABGW_DATA, "adr", u->adr);
	fb_bool(b, LABGW_DATA, "ack", u->ack);
	fb_int(b, LABGW_DATA, "fopts_len", u->fopts_len);
	fb_int(b, LABGW_DATA, "fcnt", u->fcnt);
	fb_int(b, LABGW_DATA, "fport", u->fport);
	if (b->err >= 0)
		b->err = b->h->frame_set_base64(b->f, LABGW_DATA, "frm_payload",
						ev->payload + u->frm_off, u->frm_len);
	fb_hex(b, LABGW_DATA, "mic", u->mic, 4);
}

static void emit_join(struct fb *b, const struct sim_event *ev)
{
	const struct sim_lorawan_join *j = &ev->u.join;

	emit_lora_rx(b, &j->rx);
	fb_str(b, LABGW_DATA, "mtype", "join_request");
	fb_str(b, LABGW_DATA, "join_eui", j->join_eui);
	fb_str(b, LABGW_DATA, "dev_eui", j->dev_eui);
	fb_int(b, LABGW_DATA, "dev_nonce", j->dev_nonce);
	fb_hex(b, LABGW_DATA, "mic", j->mic, 4);
}

static void emit_cell_signal(struct fb *b, const struct sim_event *ev)
{
	const struct sim_cell_signal *c = &ev->u.cell;

	if (c->has_rssi)
		fb_int(b, LABGW_SIG, "rssi", c->rssi);
	if (c->has_rsrp)
		fb_int(b, LABGW_SIG, "rsrp", c->rsrp);
	if (c->has_rsrq)
		fb_double(b, LABGW_SIG, "rsrq", c->rsrq);
	if (c->has_sinr)
		fb_double(b, LABGW_SIG, "sinr", c->sinr);
	fb_str(b, LABGW_DATA, "access_tech", c->access_tech);
	fb_str(b, LABGW_DATA, "operator_code", c->operator_code);
	fb_str(b, LABGW_DATA, "operator_name", c->operator_name);
	fb_str(b, LABGW_DATA, "registration", c->registration);
}

static void emit_sms(struct fb *b, const struct sim_event *ev)
{
	fb_str(b, LABGW_DATA, "number", ev->dev);
	fb_str(b, LABGW_DATA, "text", ev->u.sms.text);
	fb_str(b, LABGW_DATA, "timestamp", ev->u.sms.timestamp);
}

static void count_drop(struct sim *s, int err, const char *what)
{
	if (s->dropped++ == 0)
		s->host->log(s->r, LABGW_LOG_WARNING,
			     "%s frame dropped: %s (further drops counted)", what, strerror(-err));
}

static void emit(struct sim *s, const struct sim_event *ev)
{
	struct fb b = {.h = s->host, .err = 0};

	b.f = s->host->frame_new(s->r, ev->tech, ev->type_name);
	if (!b.f) {
		count_drop(s, -ENOMEM, ev->type_name);
		return;
	}
	if (ev->dev[0])
		b.err = s->host->frame_set_dev(b.f, ev->dev);
	if (ev->payload_len && b.err >= 0)
		b.err = s->host->frame_set_payload(b.f, ev->payload, ev->payload_len);
	switch (ev->type) {
	case SIM_BLE_ADV:
		emit_ble(&b, ev);
		break;
	case SIM_WLAN_STATION:
		emit_wlan(&b, ev);
		break;
	case SIM_LORAWAN_UPLINK:
		emit_uplink(&b, ev);
		break;
	case SIM_LORAWAN_JOIN:
		emit_join(&b, ev);
		break;
	case SIM_CELL_SIGNAL:
		emit_cell_signal(&b, ev);
		break;
	case SIM_CELL_SMS:
		emit_sms(&b, ev);
		break;
	}
	if (b.err < 0) {
		s->host->frame_discard(b.f);
		count_drop(s, b.err, ev->type_name);
		return;
	}
	b.err = s->host->publish(b.f);
	if (b.err < 0)
		count_drop(s, b.err, ev->type_name);
}

static uint64_t wall_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int tick_cb(void *user_data)
{
	struct sim *s = user_data;
	uint64_t now = s->host->now_ms(s->r);
	uint64_t n, cap = s->rate / BURST_DIV + 1, wall;

	if (now > s->last_ms) {
		s->acc += (uint64_t)s->rate * (now - s->last_ms);
		s->last_ms = now;
	}
	n = s->acc / 1000;
	s->acc %= 1000;
	if (n > cap) {
		n = cap;
		s->acc = 0;
	}
	if (!n)
		return 0;
	wall = wall_ms();
	for (uint64_t i = 0; i < n; i++) {
		int rc = sim_gen_next(s->gen, wall, &s->ev);

		if (rc < 0) {
			count_drop(s, rc, "simulated");
			continue;
		}
		emit(s, &s->ev);
	}
	return 0;
}

static int publish_state(struct sim *s)
{
	struct labgw_frame *f = s->host->frame_new(s->r, LABGW_TECH_NONE, "state.radio");
	struct fb b = {.h = s->host, .f = f, .err = 0};

	if (!f)
		return -ENOMEM;
	fb_int(&b, LABGW_DATA, "devices", s->devices);
	fb_int(&b, LABGW_DATA, "rate", s->rate);
	for (size_t i = 0; i < sizeof(techs_tab) / sizeof(techs_tab[0]); i++) {
		if (s->techs & techs_tab[i].tech)
			fb_append(&b, LABGW_DATA, "techs", techs_tab[i].name);
	}
	if (b.err < 0) {
		s->host->frame_discard(f);
		return b.err;
	}
	return s->host->state_update(f);
}

/* ---- start / stop ----------------------------------------------------- */

static int sim_start(void *state)
{
	struct sim *s = state;
	int rc;

	if (s->running)
		return 0;
	s->last_ms = s->host->now_ms(s->r);
	s->acc = 0;
	s->dropped = 0;
	s->tick = s->host->timer_add(s->r, TICK_MS, TICK_MS, tick_cb, s);
	if (!s->tick)
		return -ENOMEM;
	rc = publish_state(s);
	if (rc < 0) {
		s->host->timer_cancel(s->r, s->tick);
		s->tick = 0;
		return rc;
	}
	s->running = true;
	s->host->log(s->r, LABGW_LOG_NOTICE, "simulating %u devices at %u frames/s (seed %u)",
		     s->devices, s->rate, (unsigned)s->seed);
	return 0;
}

static void cmd_unlink(struct sim *s, struct sim_cmd *c)
{
	if (c->prev)
		c->prev->next = c->next;
	else
		s->cmds = c->next;
	if (c->next)
		c->next->prev = c->prev;
	s->n_cmds--;
	free(c);
}

static void sim_stop(void *state)
{
	struct sim *s = state;

	if (s->tick) {
		s->host->timer_cancel(s->r, s->tick);
		s->tick = 0;
	}
	while (s->cmds) {
		struct sim_cmd *c = s->cmds;

		if (c->timer)
			s->host->timer_cancel(s->r, c->timer);
		s->host->tx_status(s->r, c->id, LABGW_TX_FAILED, "radio stopped");
		cmd_unlink(s, c);
	}
	if (s->running && s->dropped)
		s->host->log(s->r, LABGW_LOG_NOTICE, "%llu frames dropped while running",
			     (unsigned long long)s->dropped);
	s->running = false;
}

static void sim_exit(void *state)
{
	struct sim *s = state;

	if (!s)
		return;
	/* exit follows stop; commands still here were never reported */
	while (s->cmds)
		cmd_unlink(s, s->cmds);
	sim_gen_free(s->gen);
	free(s);
}

/* ---- commands --------------------------------------------------------- */

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

static bool is_hex(const char *s, size_t n)
{
	return strlen(s) == n && strspn(s, "0123456789abcdefABCDEF") == n;
}

static bool is_mac(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

static bool is_e164(const char *s)
{
	size_t n;

	if (s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	n = strlen(s + 1);
	return n >= 7 && n <= 15 && strspn(s + 1, "0123456789") == n;
}

/* A string member, or NULL (with a reason) when absent or not a string. */
static const char *get_str(json_t *body, const char *key, bool required, char *errbuf,
			   size_t errlen, int *rc)
{
	json_t *v = json_object_get(body, key);

	if (!v) {
		if (required)
			*rc = refuse(errbuf, errlen, -EINVAL, "\"%s\" is required", key);
		return NULL;
	}
	if (!json_is_string(v)) {
		*rc = refuse(errbuf, errlen, -EINVAL, "\"%s\" must be a string", key);
		return NULL;
	}
	return json_string_value(v);
}

/* Decodes base64 member `key` into buf; returns its length or a negative errno. */
static long get_b64(json_t *body, const char *key, uint8_t *buf, size_t cap, char *errbuf,
		    size_t errlen)
{
	int rc = 0;
	const char *v = get_str(body, key, true, errbuf, errlen, &rc);
	long n;

	if (!v)
		return rc;
	n = base64_decode(v, strlen(v), buf, cap);
	if (n < 0)
		return refuse(errbuf, errlen, -EINVAL, "\"%s\" must be base64 of at most %zu bytes",
			      key, cap);
	return n;
}

static int check_lorawan(json_t *body, char *errbuf, size_t errlen)
{
	uint8_t buf[242];
	int rc = 0;
	const char *dev = get_str(body, "dev", true, errbuf, errlen, &rc);
	json_t *fport = json_object_get(body, "fport"), *conf = json_object_get(body, "confirmed");
	long n;

	if (!dev)
		return rc;
	if (!is_hex(dev, 8))
		return refuse(errbuf, errlen, -EINVAL, "\"dev\" must be a DevAddr of 8 hex digits");
	if (!json_is_integer(fport) || json_integer_value(fport) < 1 ||
	    json_integer_value(fport) > 223)
		return refuse(errbuf, errlen, -EINVAL, "\"fport\" must be an integer 1..223");
	if (conf && !json_is_boolean(conf))
		return refuse(errbuf, errlen, -EINVAL, "\"confirmed\" must be true or false");
	json_t *sf = json_object_get(body, "sf");
	if (sf &&
	    (!json_is_integer(sf) || json_integer_value(sf) < 7 || json_integer_value(sf) > 12))
		return refuse(errbuf, errlen, -EINVAL, "\"sf\" must be an integer 7..12");
	n = get_b64(body, "payload", buf, sizeof(buf), errbuf, errlen);
	return n < 0 ? (int)n : 0;
}

/* Airtime of a downlink: FRMPayload plus 13 bytes of MHDR, FHDR, FPort and
 * MIC, at "sf" (default 9) on 125 kHz, CRC off as downlinks go. */
static uint64_t lorawan_airtime_ms(json_t *body)
{
	const char *p = json_string_value(json_object_get(body, "payload"));
	size_t b64 = p ? strlen(p) : 0;
	size_t len = b64 / 4 * 3 - (b64 && p[b64 - 1] == '=') - (b64 > 1 && p[b64 - 2] == '=');
	json_t *sf = json_object_get(body, "sf");
	int s = json_is_integer(sf) ? (int)json_integer_value(sf) : 9;
	return (lora_airtime_us(s, 125000, 5, len + 13, 8, false) + 999) / 1000;
}

/* The EU868 duty cycle the sim plays by: 1% of any hour on its sub-band,
 * 36 s of airtime, shared by every sandbox. */
#define DUTY_WINDOW_MS 3600000
#define DUTY_BUDGET_MS 36000

static uint64_t duty_used(struct sim *s, uint64_t now)
{
	uint64_t used = 0;
	for (unsigned i = 0; i < DUTY_LOG; i++)
		if (s->duty[i].at_ms && now - s->duty[i].at_ms < DUTY_WINDOW_MS)
			used += s->duty[i].airtime_ms;
	return used;
}

/* ms until `need` more airtime fits the window, 0 when it does now */
static uint64_t duty_wait(struct sim *s, uint64_t now, uint64_t need)
{
	uint64_t used = duty_used(s, now);
	if (used + need <= DUTY_BUDGET_MS)
		return 0;
	/* entries leave the window oldest first: find when enough left */
	uint64_t wait = DUTY_WINDOW_MS;
	for (uint64_t t = 1000; t <= DUTY_WINDOW_MS; t += 1000) {
		if (duty_used(s, now + t) + need <= DUTY_BUDGET_MS) {
			wait = t;
			break;
		}
	}
	return wait;
}

static int check_ble(json_t *body, char *errbuf, size_t errlen)
{
	uint8_t buf[512]; /* longest GATT attribute value */
	int rc = 0;
	long n;

	if (json_object_get(body, "dev")) {
		/* GATT write to a device */
		const char *dev = get_str(body, "dev", true, errbuf, errlen, &rc);
		const char *ch = dev ? get_str(body, "char", true, errbuf, errlen, &rc) : NULL;

		if (!dev || !ch)
			return rc;
		if (!is_mac(dev))
			return refuse(errbuf, errlen, -EINVAL,
				      "\"dev\" must be an address like aa:bb:cc:dd:ee:ff");
		if (!is_hex(ch, 4) && !(strlen(ch) == 36 && ch[8] == '-' && ch[13] == '-' &&
					ch[18] == '-' && ch[23] == '-'))
			return refuse(errbuf, errlen, -EINVAL,
				      "\"char\" must be a 16-bit or 128-bit UUID");
		n = get_b64(body, "value", buf, sizeof(buf), errbuf, errlen);
		return n < 0 ? (int)n : 0;
	}
	/* advertisement: payload is AD structures, legacy size */
	n = get_b64(body, "payload", buf, SIM_BLE_ADV_MAX, errbuf, errlen);
	if (n < 0)
		return (int)n;
	if (n == 0)
		return refuse(errbuf, errlen, -EINVAL, "\"payload\" must not be empty");
	for (long i = 0; i < n; i += 1 + buf[i]) {
		if (buf[i] == 0 || i + 1 + buf[i] > n)
			return refuse(errbuf, errlen, -EINVAL,
				      "\"payload\" is not a sequence of AD structures (byte %ld)",
				      i);
	}
	return 0;
}

static int check_cellular(json_t *body, char *errbuf, size_t errlen)
{
	int rc = 0;
	const char *to = get_str(body, "to", true, errbuf, errlen, &rc);
	const char *text = to ? get_str(body, "text", true, errbuf, errlen, &rc) : NULL;

	if (!to || !text)
		return rc;
	if (!is_e164(to))
		return refuse(errbuf, errlen, -EINVAL,
			      "\"to\" must be an E.164 number like +4915112345678");
	if (!text[0] || strlen(text) > 640)
		return refuse(errbuf, errlen, -EINVAL, "\"text\" must be 1..640 bytes of UTF-8");
	return 0;
}

static int check_body(struct sim *s, const char *op, json_t *body, char *errbuf, size_t errlen)
{
	int rc = 0;
	const char *tech = get_str(body, "tech", strcmp(op, "scan") != 0, errbuf, errlen, &rc);
	enum labgw_tech t = LABGW_TECH_NONE;

	if (rc < 0)
		return rc;
	if (!tech)
		tech = "wlan"; /* scan without "tech" */
	for (size_t i = 0; i < sizeof(techs_tab) / sizeof(techs_tab[0]); i++) {
		if (!strcmp(tech, techs_tab[i].name))
			t = techs_tab[i].tech;
	}
	if (t == LABGW_TECH_NONE)
		return refuse(errbuf, errlen, -EINVAL, "unknown \"tech\" \"%.32s\"", tech);
	if (!(s->techs & t))
		return refuse(errbuf, errlen, -EINVAL, "this radio does not simulate %s", tech);

	if (!strcmp(op, "scan")) {
		const char *ssid;

		if (t != LABGW_TECH_WLAN)
			return refuse(errbuf, errlen, -EINVAL, "scan is a wlan operation");
		ssid = get_str(body, "ssid", false, errbuf, errlen, &rc);
		if (rc < 0)
			return rc;
		if (ssid && strlen(ssid) > 32)
			return refuse(errbuf, errlen, -EINVAL, "\"ssid\" is at most 32 bytes");
		return 0;
	}
	switch (t) {
	case LABGW_TECH_LORAWAN:
		return check_lorawan(body, errbuf, errlen);
	case LABGW_TECH_BLE:
		return check_ble(body, errbuf, errlen);
	case LABGW_TECH_CELLULAR:
		return check_cellular(body, errbuf, errlen);
	case LABGW_TECH_WLAN:
		return refuse(errbuf, errlen, -EINVAL, "wlan does not transmit; use op \"scan\"");
	case LABGW_TECH_NONE:
		break;
	}
	return refuse(errbuf, errlen, -EINVAL, "unknown \"tech\"");
}

static int acked_cb(void *user_data)
{
	struct sim_cmd *c = user_data;
	struct sim *s = c->s;

	c->timer = 0;
	s->host->tx_status(s->r, c->id, LABGW_TX_ACKED, NULL);
	cmd_unlink(s, c);
	return 0;
}

static int sent_cb(void *user_data)
{
	struct sim_cmd *c = user_data;
	struct sim *s = c->s;

	c->timer = 0;
	s->host->tx_status(s->r, c->id, LABGW_TX_SENT, NULL);
	c->timer = s->host->timer_add(s->r, ACKED_AFTER_MS, 0, acked_cb, c);
	if (!c->timer) {
		s->host->tx_status(s->r, c->id, LABGW_TX_FAILED, "out of timers");
		cmd_unlink(s, c);
	}
	return 0;
}

static int sim_command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	struct sim *s = state;
	json_error_t jerr;
	json_t *body;
	struct sim_cmd *c;
	size_t idlen;
	int rc;

	if (strcmp(cmd->op, "tx") != 0 && strcmp(cmd->op, "scan") != 0)
		return refuse(errbuf, errlen, -ENOTSUP, "unknown op \"%.32s\"", cmd->op);
	if (!s->running)
		return refuse(errbuf, errlen, -ENODEV, "radio is not running");
	if (s->n_cmds >= MAX_PENDING)
		return refuse(errbuf, errlen, -EBUSY, "%d commands already pending", MAX_PENDING);
	if (!cmd->body || !cmd->id)
		return refuse(errbuf, errlen, -EINVAL, "missing body");
	body = json_loadb(cmd->body, cmd->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!body)
		return refuse(errbuf, errlen, -EINVAL, "body: %s", jerr.text);
	if (!json_is_object(body))
		rc = refuse(errbuf, errlen, -EINVAL, "body must be a JSON object");
	else
		rc = check_body(s, cmd->op, body, errbuf, errlen);
	json_decref(body);
	if (rc < 0)
		return rc;

	if (!strcmp(cmd->op, "tx")) {
		/* commit the airtime the regulatory hook allowed */
		json_t *b = json_loadb(cmd->body, cmd->body_len, 0, NULL);
		const char *tech = json_string_value(json_object_get(b, "tech"));
		if (tech && !strcmp(tech, "lorawan")) {
			s->duty[s->duty_next].at_ms = s->host->now_ms(s->r);
			s->duty[s->duty_next].airtime_ms = lorawan_airtime_ms(b);
			s->duty_next = (s->duty_next + 1) % DUTY_LOG;
		}
		json_decref(b);
	}
	idlen = strlen(cmd->id);
	c = calloc(1, sizeof(*c) + idlen + 1);
	if (!c)
		return refuse(errbuf, errlen, -ENOMEM, "out of memory");
	memcpy(c->id, cmd->id, idlen + 1);
	c->s = s;
	c->timer = s->host->timer_add(s->r, SENT_AFTER_MS, 0, sent_cb, c);
	if (!c->timer) {
		free(c);
		return refuse(errbuf, errlen, -ENOMEM, "out of timers");
	}
	c->next = s->cmds;
	if (s->cmds)
		s->cmds->prev = c;
	s->cmds = c;
	s->n_cmds++;
	return 0;
}

/* The regulatory hook: the airtime of a LoRaWAN downlink and whether the
 * duty cycle allows it now. */
static int sim_tx_check(void *state, const struct labgw_command *cmd, struct labgw_tx_cost *cost,
			char *errbuf, size_t errlen)
{
	struct sim *s = state;
	json_t *body = json_loadb(cmd->body, cmd->body_len, 0, NULL);
	const char *tech = json_string_value(json_object_get(body, "tech"));
	int rc = 0;
	if (tech && !strcmp(tech, "lorawan") && !strcmp(cmd->op, "tx")) {
		cost->airtime_ms = lorawan_airtime_ms(body);
		uint64_t wait = duty_wait(s, s->host->now_ms(s->r), cost->airtime_ms);
		if (wait) {
			cost->retry_after_ms = wait;
			rc = refuse(errbuf, errlen, -EAGAIN,
				    "duty cycle: %llu ms of the hour's %d ms airtime used",
				    (unsigned long long)duty_used(s, s->host->now_ms(s->r)),
				    DUTY_BUDGET_MS);
		}
	}
	json_decref(body);
	return rc;
}

LABGW_PLUGIN_DEFINE(.name = "sim", .version = LABGW_VERSION,
		    .techs = LABGW_TECH_BLE | LABGW_TECH_WLAN | LABGW_TECH_LORAWAN |
			     LABGW_TECH_CELLULAR,
		    .init = sim_init, .start = sim_start, .command = sim_command, .stop = sim_stop,
		    .exit = sim_exit, .tx_check = sim_tx_check);
