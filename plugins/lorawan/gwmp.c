// SPDX-License-Identifier: MIT
/*
 * GWMP (Semtech UDP packet forwarder protocol) parsing and building,
 * written from PROTOCOL.TXT (sections 3 to 6). Pure.
 */
#include "gwmp.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "jsontok.h"

const char *gwmp_type_name(enum gwmp_type t)
{
	switch (t) {
	case GWMP_PUSH_DATA:
		return "PUSH_DATA";
	case GWMP_PUSH_ACK:
		return "PUSH_ACK";
	case GWMP_PULL_DATA:
		return "PULL_DATA";
	case GWMP_PULL_RESP:
		return "PULL_RESP";
	case GWMP_PULL_ACK:
		return "PULL_ACK";
	case GWMP_TX_ACK:
		return "TX_ACK";
	}
	return "?";
}

static int bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

static uint64_t get_be64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

int gwmp_parse(const uint8_t *buf, size_t len, struct gwmp_header *h, const char **why)
{
	memset(h, 0, sizeof(*h));
	if (!buf || len < GWMP_HDR_LEN)
		return bad(why, "shorter than 4 bytes");
	if (len > GWMP_DATAGRAM_MAX)
		return bad(why, "longer than 65507 bytes");
	if (buf[0] != 1 && buf[0] != 2)
		return bad(why, "unknown protocol version");
	if (buf[3] > GWMP_TX_ACK)
		return bad(why, "unknown packet identifier");
	h->version = buf[0];
	h->token = (uint16_t)(buf[1] << 8 | buf[2]);
	h->type = (enum gwmp_type)buf[3];
	switch (h->type) {
	case GWMP_PUSH_DATA:
	case GWMP_PULL_DATA:
	case GWMP_TX_ACK:
		if (len < GWMP_EUI_HDR_LEN)
			return bad(why, "no gateway EUI");
		h->has_eui = true;
		h->eui = get_be64(buf + 4);
		h->body = buf + GWMP_EUI_HDR_LEN;
		h->body_len = len - GWMP_EUI_HDR_LEN;
		break;
	case GWMP_PULL_RESP:
		h->body = buf + GWMP_HDR_LEN;
		h->body_len = len - GWMP_HDR_LEN;
		break;
	case GWMP_PUSH_ACK:
	case GWMP_PULL_ACK:
		break;
	}
	/* some forwarders send the C string's terminator along */
	while (h->body_len && h->body[h->body_len - 1] == '\0')
		h->body_len--;
	if (h->type == GWMP_PULL_DATA && len != GWMP_EUI_HDR_LEN)
		return bad(why, "PULL_DATA is not 12 bytes");
	if ((h->type == GWMP_PUSH_DATA || h->type == GWMP_PULL_RESP) && !h->body_len)
		return bad(why, "no JSON object");
	return 0;
}

size_t gwmp_build_ack(uint8_t out[GWMP_HDR_LEN], uint8_t version, uint16_t token,
		      enum gwmp_type type)
{
	out[0] = version;
	out[1] = (uint8_t)(token >> 8);
	out[2] = (uint8_t)token;
	out[3] = (uint8_t)type;
	return GWMP_HDR_LEN;
}

void gwmp_set_token(uint8_t *buf, size_t len, uint16_t token)
{
	if (len >= GWMP_HDR_LEN) {
		buf[1] = (uint8_t)(token >> 8);
		buf[2] = (uint8_t)token;
	}
}

void gwmp_eui_str(uint64_t eui, char out[17])
{
	snprintf(out, 17, "%016llx", (unsigned long long)eui);
}

bool gwmp_eui_parse(const char *s, uint64_t *eui)
{
	uint64_t v = 0;

	if (!s || strlen(s) != 16)
		return false;
	for (int i = 0; i < 16; i++) {
		char c = s[i];
		int d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*eui = v;
	return true;
}

/* "SF7BW125" in s[0..n) */
static bool datr_parse(const char *s, size_t n, int *sf, uint32_t *bw_hz)
{
	unsigned v = 0, b = 0;
	size_t i = 2;

	if (n < 2 || s[0] != 'S' || s[1] != 'F')
		return false;
	if (i == n || s[i] < '0' || s[i] > '9')
		return false;
	while (i < n && s[i] >= '0' && s[i] <= '9' && v < 100)
		v = v * 10 + (unsigned)(s[i++] - '0');
	if (n - i < 2 || s[i] != 'B' || s[i + 1] != 'W')
		return false;
	i += 2;
	if (i == n || s[i] < '0' || s[i] > '9')
		return false;
	while (i < n && s[i] >= '0' && s[i] <= '9' && b < 10000)
		b = b * 10 + (unsigned)(s[i++] - '0');
	if (i != n || v < 5 || v > 12 || (b != 125 && b != 250 && b != 500))
		return false;
	*sf = (int)v;
	*bw_hz = b * 1000;
	return true;
}

bool gwmp_parse_datr(const char *s, int *sf, uint32_t *bw_hz)
{
	return s && datr_parse(s, strlen(s), sf, bw_hz);
}

bool gwmp_parse_codr(const char *s, int *cr)
{
	if (!s || strlen(s) != 3 || s[0] != '4' || s[1] != '/' || s[2] < '5' || s[2] > '8')
		return false;
	*cr = s[2] - '0';
	return true;
}

/* ---- upstream ----------------------------------------------------------- */

/*
 * PUSH_DATA is read from jsontok tokens, not from a jansson tree (a malloc
 * per value; reading that way took about six times as long), with jansson's
 * results: the document jansson accepts gives the same fields and errors,
 * and the one it refuses is refused with the same reason, but for:
 *  - a number jansson refuses the whole document for (an integer beyond
 *    int64, a real beyond a double, as in 1e400): here a value out of range
 *    of the field that holds it, and ignored in a field that is not read;
 *  - a NUL byte right after a number or literal, which jansson 2.14 skips
 *    (its reader takes NUL for "no character"): not JSON, refused here.
 * tests/fuzz/fuzz_gwmp_json.c checks this against the former reader.
 */

/* Tokens on the stack: a PUSH_DATA of 8 rxpk of 14 fields has about 240; a
 * bigger one gets one allocation of exactly enough. */
#define PUSH_TOKENS 512

/* 1: got it, 0: absent (v < 0), -1: wrong type or out of range */
static int tok_num(const struct jsontok_doc *d, int v, double min, double max, double *out)
{
	double x;

	if (v < 0)
		return 0;
	if (jsontok_type_of(d, v) != JSONTOK_NUMBER || jsontok_num(d, v, &x) < 0)
		return -1;
	if (!isfinite(x) || x < min || x > max)
		return -1;
	*out = x;
	return 1;
}

/* an integral number in [min, max] (max at most 2^53) */
static int tok_int(const struct jsontok_doc *d, int v, double min, double max, int64_t *out)
{
	double x;
	int rc = tok_num(d, v, min, max, &x);

	if (rc <= 0)
		return rc;
	if (x != floor(x))
		return -1;
	*out = (int64_t)x;
	return 1;
}

/* A printable ASCII string of at most cap-1 bytes (cap at most
 * GWMP_TIME_MAX); out is left alone unless it is one. */
static int tok_str(const struct jsontok_doc *d, int v, char *out, size_t cap)
{
	char s[GWMP_TIME_MAX];
	size_t n;

	if (v < 0)
		return 0;
	if (jsontok_type_of(d, v) != JSONTOK_STRING || cap > sizeof(s))
		return -1;
	n = jsontok_str(d, v, s, cap);
	if (n >= cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			return -1;
	}
	memcpy(out, s, n + 1);
	return 1;
}

/* base64 of string token v into out[0..cap), cap at most GWMP_PHY_MAX */
static long tok_base64(const struct jsontok_doc *d, int v, uint8_t *out, size_t cap)
{
	const struct jsontok *t = jsontok_at(d, v);
	/* 340 characters and 2 '=' at most decode to GWMP_PHY_MAX bytes: a
	 * string that does not fit here would fail to decode anyway */
	char s[(GWMP_PHY_MAX + 2) / 3 * 4 + 3];
	size_t n;

	if (!(t->flags & JSONTOK_F_ESCAPED)) /* base64 has "\/" for '/' at most */
		return base64_decode(d->json + t->start, t->end - t->start, out, cap);
	n = jsontok_str(d, v, s, sizeof(s));
	if (n >= sizeof(s))
		return -1;
	return base64_decode(s, n, out, cap);
}

static bool tok_datr(const struct jsontok_doc *d, int v, int *sf, uint32_t *bw_hz)
{
	const struct jsontok *t = jsontok_at(d, v);
	char buf[32], *s = buf;
	size_t n;
	bool ok;

	if (!(t->flags & JSONTOK_F_ESCAPED))
		return datr_parse(d->json + t->start, t->end - t->start, sf, bw_hz);
	n = jsontok_str(d, v, buf, sizeof(buf));
	if (n >= sizeof(buf)) {
		/* escaped and long: only leading zeros ("SF007BW125") make it valid */
		s = malloc(n + 1);
		if (!s)
			return false;
		jsontok_str(d, v, s, n + 1);
	}
	ok = datr_parse(s, n, sf, bw_hz);
	if (s != buf)
		free(s);
	return ok;
}

#define RXPK_ERR(r, msg)                                                                           \
	do {                                                                                       \
		(r)->error = (msg);                                                                \
		return;                                                                            \
	} while (0)

/* the fields of an rxpk, in the order packet forwarders write them (the
 * order in which jsontok_members() tries them) */
enum rxpk_field {
	RX_TIME,
	RX_TMMS,
	RX_TMST,
	RX_CHAN,
	RX_RFCH,
	RX_FREQ,
	RX_STAT,
	RX_MODU,
	RX_DATR,
	RX_CODR,
	RX_RSSI,
	RX_LSNR,
	RX_SIZE,
	RX_DATA,
	RX_RSSIS,
	RX_RSIG,
	RX_FIELDS
};

static const char *const rxpk_keys[RX_FIELDS] = {
	[RX_TIME] = "time", [RX_TMMS] = "tmms", [RX_TMST] = "tmst",   [RX_CHAN] = "chan",
	[RX_RFCH] = "rfch", [RX_FREQ] = "freq", [RX_STAT] = "stat",   [RX_MODU] = "modu",
	[RX_DATR] = "datr", [RX_CODR] = "codr", [RX_RSSI] = "rssi",   [RX_LSNR] = "lsnr",
	[RX_SIZE] = "size", [RX_DATA] = "data", [RX_RSSIS] = "rssis", [RX_RSIG] = "rsig",
};

static void parse_datr(const struct jsontok_doc *d, const int *f, struct gwmp_rxpk *r)
{
	int modu = f[RX_MODU], datr = f[RX_DATR];
	bool m = jsontok_type_of(d, modu) == JSONTOK_STRING;

	if (modu >= 0 &&
	    (!m || (!jsontok_str_eq(d, modu, "LORA") && !jsontok_str_eq(d, modu, "FSK"))))
		RXPK_ERR(r, "modu is neither \"LORA\" nor \"FSK\"");
	r->modu = m && jsontok_str_eq(d, modu, "FSK") ? GWMP_MODU_FSK : GWMP_MODU_LORA;
	if (!m && jsontok_type_of(d, datr) == JSONTOK_NUMBER)
		r->modu = GWMP_MODU_FSK;
	if (datr < 0)
		return;
	if (r->modu == GWMP_MODU_LORA) {
		if (jsontok_type_of(d, datr) != JSONTOK_STRING ||
		    !tok_datr(d, datr, &r->sf, &r->bw_hz))
			RXPK_ERR(r, "datr is not a LoRa data rate like \"SF7BW125\"");
	} else {
		int64_t bps;

		if (tok_int(d, datr, 1, 1000000, &bps) != 1)
			RXPK_ERR(r, "datr is not an FSK bit rate");
		r->fsk_bps = (uint32_t)bps;
	}
	r->has_datr = true;
}

/* signal of the first antenna of a "rsig" array (multi-antenna forwarders) */
static void parse_rsig(const struct jsontok_doc *d, int a, struct gwmp_rxpk *r)
{
	static const char *const keys[] = {"rssis", "rssic", "lsnr"};
	int f[3];
	double x;

	if (jsontok_type_of(d, a) != JSONTOK_ARRAY || !jsontok_at(d, a)->size ||
	    jsontok_type_of(d, a + 1) != JSONTOK_OBJECT)
		return;
	jsontok_members(d, a + 1, keys, 3, f);
	if (!r->has_rssi &&
	    (tok_num(d, f[0], -300, 300, &x) == 1 || tok_num(d, f[1], -300, 300, &x) == 1)) {
		r->rssi = (int)lround(x);
		r->has_rssi = true;
	}
	if (!r->has_lsnr && tok_num(d, f[2], -100, 100, &x) == 1) {
		r->lsnr = x;
		r->has_lsnr = true;
	}
}

static void parse_rxpk(const struct jsontok_doc *d, int o, struct gwmp_rxpk *r)
{
	int f[RX_FIELDS];
	int64_t i;
	double x;
	long n;
	int rc;

	memset(r, 0, sizeof(*r));
	if (jsontok_type_of(d, o) != JSONTOK_OBJECT)
		RXPK_ERR(r, "rxpk element is not an object");
	jsontok_members(d, o, rxpk_keys, RX_FIELDS, f);
	if (jsontok_type_of(d, f[RX_DATA]) != JSONTOK_STRING)
		RXPK_ERR(r, "no \"data\" string");
	n = tok_base64(d, f[RX_DATA], r->data, sizeof(r->data));
	if (n < 0)
		RXPK_ERR(r, "data is not base64 of at most 255 bytes");
	r->data_len = (size_t)n;
	rc = tok_int(d, f[RX_SIZE], 0, 65535, &i);
	if (rc < 0 || (rc == 1 && (size_t)i != r->data_len))
		RXPK_ERR(r, "size does not match the data");
	r->has_time = tok_str(d, f[RX_TIME], r->time, sizeof(r->time)) == 1;
	if ((rc = tok_int(d, f[RX_TMST], 0, 4294967295.0, &i)) < 0)
		RXPK_ERR(r, "tmst is not a 32-bit counter");
	r->has_tmst = rc == 1;
	r->tmst = (uint32_t)(rc == 1 ? i : 0);
	if ((rc = tok_int(d, f[RX_TMMS], 0, 9007199254740992.0, &i)) < 0)
		RXPK_ERR(r, "tmms is not a GPS time in ms");
	r->has_tmms = rc == 1;
	r->tmms = (uint64_t)(rc == 1 ? i : 0);
	if ((rc = tok_num(d, f[RX_FREQ], 0.000001, 4000, &x)) < 0)
		RXPK_ERR(r, "freq is not a frequency in MHz");
	r->has_freq = rc == 1;
	r->freq_hz = rc == 1 ? (uint32_t)llround(x * 1e6) : 0;
	if ((rc = tok_int(d, f[RX_CHAN], 0, 65535, &i)) < 0)
		RXPK_ERR(r, "chan is not a channel number");
	r->has_chan = rc == 1;
	r->chan = (uint32_t)(rc == 1 ? i : 0);
	if ((rc = tok_int(d, f[RX_RFCH], 0, 65535, &i)) < 0)
		RXPK_ERR(r, "rfch is not an RF chain number");
	r->has_rfch = rc == 1;
	r->rfch = (uint32_t)(rc == 1 ? i : 0);
	if ((rc = tok_int(d, f[RX_STAT], -1, 1, &i)) < 0)
		RXPK_ERR(r, "stat is not -1, 0 or 1");
	r->has_stat = rc == 1;
	r->stat = rc == 1 ? (enum gwmp_crc)i : GWMP_CRC_OK;
	parse_datr(d, f, r);
	if (r->error)
		return;
	if ((rc = tok_str(d, f[RX_CODR], r->codr, sizeof(r->codr))) < 0)
		RXPK_ERR(r, "codr is not a coding rate");
	r->has_codr = rc == 1;
	if (r->has_codr && !gwmp_parse_codr(r->codr, &r->cr))
		r->cr = 0;
	if ((rc = tok_num(d, f[RX_RSSI], -300, 300, &x)) < 0 ||
	    (rc == 0 && (rc = tok_num(d, f[RX_RSSIS], -300, 300, &x)) < 0))
		RXPK_ERR(r, "rssi is not a level in dBm");
	r->has_rssi = rc == 1;
	r->rssi = rc == 1 ? (int)lround(x) : 0;
	if ((rc = tok_num(d, f[RX_LSNR], -100, 100, &x)) < 0)
		RXPK_ERR(r, "lsnr is not an SNR in dB");
	r->has_lsnr = rc == 1;
	r->lsnr = rc == 1 ? x : 0;
	parse_rsig(d, f[RX_RSIG], r);
}

enum stat_field {
	ST_TIME,
	ST_LATI,
	ST_LONG,
	ST_ALTI,
	ST_RXNB,
	ST_RXOK,
	ST_RXFW,
	ST_ACKR,
	ST_DWNB,
	ST_TXNB,
	ST_FIELDS
};

static const char *const stat_keys[ST_FIELDS] = {
	[ST_TIME] = "time", [ST_LATI] = "lati", [ST_LONG] = "long", [ST_ALTI] = "alti",
	[ST_RXNB] = "rxnb", [ST_RXOK] = "rxok", [ST_RXFW] = "rxfw", [ST_ACKR] = "ackr",
	[ST_DWNB] = "dwnb", [ST_TXNB] = "txnb",
};

static void parse_stat(const struct jsontok_doc *d, int o, struct gwmp_stat *s)
{
	int f[ST_FIELDS];
	int64_t i;
	double x;

	memset(s, 0, sizeof(*s));
	jsontok_members(d, o, stat_keys, ST_FIELDS, f);
	/* informational: a bad field is left out, not an error */
	s->has_time = tok_str(d, f[ST_TIME], s->time, sizeof(s->time)) == 1;
	if ((s->has_lati = tok_num(d, f[ST_LATI], -90, 90, &x) == 1))
		s->lati = x;
	if ((s->has_long = tok_num(d, f[ST_LONG], -180, 180, &x) == 1))
		s->lon = x;
	if ((s->has_alti = tok_int(d, f[ST_ALTI], -100000, 100000, &i) == 1))
		s->alti = i;
#define STAT_COUNT(name, field)                                                                    \
	if ((s->has_##name = tok_int(d, f[field], 0, 9007199254740992.0, &i) == 1))                \
		s->name = (uint64_t)i;
	STAT_COUNT(rxnb, ST_RXNB)
	STAT_COUNT(rxok, ST_RXOK)
	STAT_COUNT(rxfw, ST_RXFW)
	STAT_COUNT(dwnb, ST_DWNB)
	STAT_COUNT(txnb, ST_TXNB)
#undef STAT_COUNT
	if ((s->has_ackr = tok_num(d, f[ST_ACKR], 0, 100, &x) == 1))
		s->ackr = x;
}

int gwmp_parse_push(const uint8_t *json, size_t len, struct gwmp_push *out, const char **why)
{
	static const char *const keys[] = {"rxpk", "stat"};
	struct jsontok ws[PUSH_TOKENS];
	struct jsontok_doc d;
	int f[2], rc;

	out->n_rxpk = 0;
	out->rxpk_over = 0;
	out->has_stat = false;
	if (!json || !len)
		return bad(why, "no JSON object");
	if (len > GWMP_JSON_MAX)
		return bad(why, "JSON longer than 65495 bytes");
	rc = jsontok_load(&d, (const char *)json, len, ws, PUSH_TOKENS);
	if (rc == -ENOMEM) {
		if (why)
			*why = "no memory for the JSON";
		return rc;
	}
	/* and what jansson refuses without JSON_DECODE_ANY and JSON_ALLOW_NUL */
	if (rc < 0 || (d.flags & JSONTOK_DOC_NUL) ||
	    (jsontok_type_of(&d, 0) != JSONTOK_OBJECT && jsontok_type_of(&d, 0) != JSONTOK_ARRAY)) {
		rc = bad(why, "not valid JSON");
		goto out;
	}
	if (jsontok_type_of(&d, 0) != JSONTOK_OBJECT) {
		rc = bad(why, "JSON is not an object");
		goto out;
	}
	jsontok_members(&d, 0, keys, 2, f);
	if (f[0] >= 0 && jsontok_type_of(&d, f[0]) != JSONTOK_ARRAY) {
		rc = bad(why, "rxpk is not an array");
		goto out;
	}
	if (f[1] >= 0 && jsontok_type_of(&d, f[1]) != JSONTOK_OBJECT) {
		rc = bad(why, "stat is not an object");
		goto out;
	}
	if (f[0] >= 0) {
		size_t n = jsontok_at(&d, f[0])->size;
		int e = f[0] + 1;

		out->n_rxpk = n < GWMP_RXPK_MAX ? n : GWMP_RXPK_MAX;
		out->rxpk_over = n - out->n_rxpk;
		for (size_t k = 0; k < out->n_rxpk; k++, e = (int)jsontok_at(&d, e)->next)
			parse_rxpk(&d, e, &out->rxpk[k]);
	}
	if (f[1] >= 0) {
		parse_stat(&d, f[1], &out->stat);
		out->has_stat = true;
	}
out:
	jsontok_doc_release(&d);
	return rc;
}

/* ---- downstream (jansson: not on the per-rxpk path) --------------------- */

/* 1: got it, 0: absent, -1: wrong type or out of range */
static int get_num(const json_t *o, const char *key, double min, double max, double *out)
{
	const json_t *v = json_object_get(o, key);
	double d;

	if (!v)
		return 0;
	if (!json_is_number(v))
		return -1;
	d = json_number_value(v);
	if (!isfinite(d) || d < min || d > max)
		return -1;
	*out = d;
	return 1;
}

/* an integral number in [min, max] (max at most 2^53) */
static int get_int(const json_t *o, const char *key, double min, double max, int64_t *out)
{
	double d;
	int rc = get_num(o, key, min, max, &d);

	if (rc <= 0)
		return rc;
	if (d != floor(d))
		return -1;
	*out = (int64_t)d;
	return 1;
}

static int get_bool(const json_t *o, const char *key, bool *out)
{
	const json_t *v = json_object_get(o, key);

	if (!v)
		return 0;
	if (!json_is_boolean(v))
		return -1;
	*out = json_is_true(v);
	return 1;
}

/* A printable ASCII string of at most cap-1 bytes. */
static int get_str(const json_t *o, const char *key, char *out, size_t cap)
{
	const json_t *v = json_object_get(o, key);
	const char *s;
	size_t n;

	if (!v)
		return 0;
	if (!json_is_string(v))
		return -1;
	s = json_string_value(v);
	n = json_string_length(v);
	if (n >= cap)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			return -1;
	}
	memcpy(out, s, n + 1);
	return 1;
}

static json_t *load_object(const uint8_t *json, size_t len, const char **why)
{
	json_error_t err;
	json_t *root;

	if (!json || !len) {
		bad(why, "no JSON object");
		return NULL;
	}
	if (len > GWMP_JSON_MAX) {
		bad(why, "JSON longer than 65495 bytes");
		return NULL;
	}
	root = json_loadb((const char *)json, len, 0, &err);
	if (!root) {
		bad(why, "not valid JSON");
		return NULL;
	}
	if (!json_is_object(root)) {
		json_decref(root);
		bad(why, "JSON is not an object");
		return NULL;
	}
	return root;
}

static const char *const tx_error_names[] = {
	[GWMP_TX_NONE] = "NONE",
	[GWMP_TX_TOO_LATE] = "TOO_LATE",
	[GWMP_TX_TOO_EARLY] = "TOO_EARLY",
	[GWMP_TX_COLLISION_PACKET] = "COLLISION_PACKET",
	[GWMP_TX_COLLISION_BEACON] = "COLLISION_BEACON",
	[GWMP_TX_FREQ] = "TX_FREQ",
	[GWMP_TX_POWER] = "TX_POWER",
	[GWMP_TX_GPS_UNLOCKED] = "GPS_UNLOCKED",
};

static bool name_valid(const char *s)
{
	size_t n = strlen(s);

	if (!n || n > GWMP_NAME_MAX)
		return false;
	return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") == n;
}

int gwmp_parse_tx_ack(const uint8_t *json, size_t len, struct gwmp_tx_ack *out, const char **why)
{
	json_t *root, *ack, *v;
	size_t i;

	memset(out, 0, sizeof(*out));
	out->error = GWMP_TX_NONE;
	strcpy(out->name, "NONE");
	for (i = 0; i < len && strchr(" \t\r\n", json[i]) && json[i]; i++)
		;
	if (i == len)
		return 0;
	root = load_object(json, len, why);
	if (!root)
		return -EINVAL;
	ack = json_object_get(root, "txpk_ack");
	if (!ack) {
		json_decref(root);
		return 0;
	}
	if (!json_is_object(ack)) {
		json_decref(root);
		return bad(why, "txpk_ack is not an object");
	}
	v = json_object_get(ack, "warn");
	if (json_is_string(v)) {
		out->has_warn = true;
		snprintf(out->warn, sizeof(out->warn), "%s",
			 name_valid(json_string_value(v)) ? json_string_value(v) : "UNKNOWN");
	}
	v = json_object_get(ack, "error");
	if (v && !json_is_string(v)) {
		json_decref(root);
		return bad(why, "txpk_ack.error is not a string");
	}
	if (v) {
		const char *e = json_string_value(v);

		out->error = GWMP_TX_OTHER;
		snprintf(out->name, sizeof(out->name), "%s", name_valid(e) ? e : "UNKNOWN");
		for (size_t k = 0; k < sizeof(tx_error_names) / sizeof(tx_error_names[0]); k++) {
			if (!strcmp(out->name, tx_error_names[k]))
				out->error = (enum gwmp_tx_error)k;
		}
	}
	json_decref(root);
	return 0;
}

long gwmp_build_pull_resp(uint8_t *out, size_t cap, uint8_t version, uint16_t token,
			  const struct gwmp_txpk *t)
{
	char b64[(GWMP_PHY_MAX + 2) / 3 * 4 + 1], timing[32], datr[40], extra[32];
	int n;

	if (!t || (!t->data && t->size) || t->size > GWMP_PHY_MAX || cap < GWMP_HDR_LEN)
		return -EINVAL;
	base64_encode(t->data, t->size, b64); /* fits: size <= GWMP_PHY_MAX */
	if (t->imme)
		snprintf(timing, sizeof(timing), "\"imme\":true");
	else
		snprintf(timing, sizeof(timing), "\"imme\":false,\"tmst\":%u", (unsigned)t->tmst);
	if (t->modu == GWMP_MODU_LORA) {
		if (t->sf < 5 || t->sf > 12 || !t->bw_hz || t->cr < 5 || t->cr > 8)
			return -EINVAL;
		snprintf(datr, sizeof(datr), "\"datr\":\"SF%dBW%u\",\"codr\":\"4/%d\"", t->sf,
			 (unsigned)(t->bw_hz / 1000), t->cr);
	} else {
		snprintf(datr, sizeof(datr), "\"datr\":%u,\"fdev\":%u", (unsigned)t->fsk_bps,
			 (unsigned)t->fdev_hz);
	}
	extra[0] = '\0';
	if (t->prea > 0)
		snprintf(extra, sizeof(extra), ",\"prea\":%d", t->prea);
	gwmp_build_ack(out, version, token, GWMP_PULL_RESP);
	n = snprintf((char *)out + GWMP_HDR_LEN, cap - GWMP_HDR_LEN,
		     "{\"txpk\":{%s,\"freq\":%u.%06u,\"rfch\":%u,\"powe\":%d,\"modu\":\"%s\",%s,"
		     "\"ipol\":%s,\"size\":%zu,\"data\":\"%s\",\"ncrc\":%s%s}}",
		     timing, (unsigned)(t->freq_hz / 1000000), (unsigned)(t->freq_hz % 1000000),
		     (unsigned)t->rfch, t->powe, t->modu == GWMP_MODU_LORA ? "LORA" : "FSK", datr,
		     t->ipol ? "true" : "false", t->size, b64, t->ncrc ? "true" : "false", extra);
	if (n < 0 || (size_t)n >= cap - GWMP_HDR_LEN)
		return -ENOBUFS;
	return GWMP_HDR_LEN + n;
}

int gwmp_parse_pull_resp(const uint8_t *json, size_t len, struct gwmp_txpk *t, bool *has_tmst,
			 const char **why)
{
	json_t *root, *o, *data, *datr;
	const char *m;
	char codr[8];
	int64_t i;
	double d;
	int rc = 0, r;

	memset(t, 0, sizeof(*t));
	*has_tmst = false;
	root = load_object(json, len, why);
	if (!root)
		return -EINVAL;
	o = json_object_get(root, "txpk");
	if (!json_is_object(o)) {
		rc = bad(why, "no txpk object");
		goto out;
	}
	if (get_bool(o, "imme", &t->imme) < 0 || get_bool(o, "ipol", &t->ipol) < 0 ||
	    get_bool(o, "ncrc", &t->ncrc) < 0) {
		rc = bad(why, "imme, ipol or ncrc is not a boolean");
		goto out;
	}
	if ((r = get_int(o, "tmst", 0, 4294967295.0, &i)) < 0) {
		rc = bad(why, "tmst is not a 32-bit counter");
		goto out;
	}
	*has_tmst = r == 1;
	t->tmst = (uint32_t)(r == 1 ? i : 0);
	if (get_num(o, "freq", 0.000001, 4000, &d) != 1) {
		rc = bad(why, "freq is missing or not a frequency in MHz");
		goto out;
	}
	t->freq_hz = (uint32_t)llround(d * 1e6);
	if (get_int(o, "rfch", 0, 65535, &i) == 1)
		t->rfch = (uint32_t)i;
	if (get_int(o, "powe", -100, 100, &i) == 1)
		t->powe = (int)i;
	if ((r = get_int(o, "prea", 0, 65535, &i)) < 0) {
		rc = bad(why, "prea is not a symbol count");
		goto out;
	}
	t->prea = r == 1 ? (int)i : 0;
	m = json_string_value(json_object_get(o, "modu"));
	datr = json_object_get(o, "datr");
	t->modu = (m && !strcmp(m, "FSK")) || (!m && json_is_number(datr)) ? GWMP_MODU_FSK
									   : GWMP_MODU_LORA;
	if (json_object_get(o, "modu") && (!m || (strcmp(m, "LORA") && strcmp(m, "FSK")))) {
		rc = bad(why, "modu is neither \"LORA\" nor \"FSK\"");
		goto out;
	}
	if (t->modu == GWMP_MODU_LORA) {
		if (!json_is_string(datr) ||
		    !gwmp_parse_datr(json_string_value(datr), &t->sf, &t->bw_hz)) {
			rc = bad(why, "datr is not a LoRa data rate");
			goto out;
		}
		t->cr = 5;
		if ((r = get_str(o, "codr", codr, sizeof(codr))) < 0 ||
		    (r == 1 && !gwmp_parse_codr(codr, &t->cr))) {
			rc = bad(why, "codr is not a coding rate 4/5..4/8");
			goto out;
		}
	} else {
		if (get_int(o, "datr", 1, 1000000, &i) != 1) {
			rc = bad(why, "datr is not an FSK bit rate");
			goto out;
		}
		t->fsk_bps = (uint32_t)i;
		if (get_int(o, "fdev", 0, 1000000, &i) == 1)
			t->fdev_hz = (uint32_t)i;
	}
	data = json_object_get(o, "data");
	if (data) {
		uint8_t buf[GWMP_PHY_MAX];
		long n = json_is_string(data)
				 ? base64_decode(json_string_value(data), json_string_length(data),
						 buf, sizeof(buf))
				 : -1;

		if (n < 0) {
			rc = bad(why, "data is not base64 of at most 255 bytes");
			goto out;
		}
		t->size = (size_t)n;
		if ((r = get_int(o, "size", 0, 255, &i)) < 0 || (r == 1 && (size_t)i != t->size)) {
			rc = bad(why, "size does not match the data");
			goto out;
		}
	} else if (get_int(o, "size", 0, 255, &i) == 1) {
		t->size = (size_t)i;
	} else {
		rc = bad(why, "neither data nor size");
		goto out;
	}
	if (!t->imme && !*has_tmst && !json_object_get(o, "tmms") && !json_object_get(o, "time")) {
		rc = bad(why, "no imme, tmst, tmms or time");
		goto out;
	}
out:
	json_decref(root);
	return rc;
}
