// SPDX-License-Identifier: MIT
/*
 * The reader of PUSH_DATA JSON as plugins/lorawan/gwmp.c had it before
 * jsontok: a jansson tree walked by key. Test code, the reference of
 * fuzz_gwmp_json.c; not linked into labgwd. Keep it as it is: it says what
 * gwmp_parse_push() has to give.
 */
#include "gwmp_push_jansson.h"

#include <errno.h>
#include <math.h>
#include <string.h>

#include <jansson.h>

static int bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

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

static bool ref_parse_datr(const char *s, int *sf, uint32_t *bw_hz)
{
	unsigned v = 0, b = 0;
	const char *p = s;

	if (!s || strncmp(p, "SF", 2))
		return false;
	p += 2;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9' && v < 100)
		v = v * 10 + (unsigned)(*p++ - '0');
	if (strncmp(p, "BW", 2))
		return false;
	p += 2;
	if (*p < '0' || *p > '9')
		return false;
	while (*p >= '0' && *p <= '9' && b < 10000)
		b = b * 10 + (unsigned)(*p++ - '0');
	if (*p || v < 5 || v > 12 || (b != 125 && b != 250 && b != 500))
		return false;
	*sf = (int)v;
	*bw_hz = b * 1000;
	return true;
}

/* ---- upstream ---------------------------------------------------------- */

#define RXPK_ERR(r, msg)                                                                           \
	do {                                                                                       \
		(r)->error = (msg);                                                                \
		return;                                                                            \
	} while (0)

static void parse_datr(const json_t *o, struct gwmp_rxpk *r)
{
	const json_t *modu = json_object_get(o, "modu"), *datr = json_object_get(o, "datr");
	const char *m = json_string_value(modu);

	if (modu && (!m || (strcmp(m, "LORA") && strcmp(m, "FSK"))))
		RXPK_ERR(r, "modu is neither \"LORA\" nor \"FSK\"");
	r->modu = m && !strcmp(m, "FSK") ? GWMP_MODU_FSK : GWMP_MODU_LORA;
	if (!m && json_is_number(datr))
		r->modu = GWMP_MODU_FSK;
	if (!datr)
		return;
	if (r->modu == GWMP_MODU_LORA) {
		if (!json_is_string(datr) ||
		    !ref_parse_datr(json_string_value(datr), &r->sf, &r->bw_hz))
			RXPK_ERR(r, "datr is not a LoRa data rate like \"SF7BW125\"");
	} else {
		int64_t bps;

		if (get_int(o, "datr", 1, 1000000, &bps) != 1)
			RXPK_ERR(r, "datr is not an FSK bit rate");
		r->fsk_bps = (uint32_t)bps;
	}
	r->has_datr = true;
}

/* signal of the first antenna of a "rsig" array (multi-antenna forwarders) */
static void parse_rsig(const json_t *o, struct gwmp_rxpk *r)
{
	const json_t *a = json_object_get(o, "rsig"), *s;
	double d;

	if (!json_is_array(a) || !json_is_object(s = json_array_get(a, 0)))
		return;
	if (!r->has_rssi &&
	    (get_num(s, "rssis", -300, 300, &d) == 1 || get_num(s, "rssic", -300, 300, &d) == 1)) {
		r->rssi = (int)lround(d);
		r->has_rssi = true;
	}
	if (!r->has_lsnr && get_num(s, "lsnr", -100, 100, &d) == 1) {
		r->lsnr = d;
		r->has_lsnr = true;
	}
}

static void parse_rxpk(const json_t *o, struct gwmp_rxpk *r)
{
	const json_t *data = json_object_get(o, "data");
	int64_t i;
	double d;
	long n;
	int rc;

	memset(r, 0, sizeof(*r));
	if (!json_is_object(o))
		RXPK_ERR(r, "rxpk element is not an object");
	if (!json_is_string(data))
		RXPK_ERR(r, "no \"data\" string");
	n = base64_decode(json_string_value(data), json_string_length(data), r->data,
			  sizeof(r->data));
	if (n < 0)
		RXPK_ERR(r, "data is not base64 of at most 255 bytes");
	r->data_len = (size_t)n;
	rc = get_int(o, "size", 0, 65535, &i);
	if (rc < 0 || (rc == 1 && (size_t)i != r->data_len))
		RXPK_ERR(r, "size does not match the data");
	r->has_time = get_str(o, "time", r->time, sizeof(r->time)) == 1;
	if ((rc = get_int(o, "tmst", 0, 4294967295.0, &i)) < 0)
		RXPK_ERR(r, "tmst is not a 32-bit counter");
	r->has_tmst = rc == 1;
	r->tmst = (uint32_t)(rc == 1 ? i : 0);
	if ((rc = get_int(o, "tmms", 0, 9007199254740992.0, &i)) < 0)
		RXPK_ERR(r, "tmms is not a GPS time in ms");
	r->has_tmms = rc == 1;
	r->tmms = (uint64_t)(rc == 1 ? i : 0);
	if ((rc = get_num(o, "freq", 0.000001, 4000, &d)) < 0)
		RXPK_ERR(r, "freq is not a frequency in MHz");
	r->has_freq = rc == 1;
	r->freq_hz = rc == 1 ? (uint32_t)llround(d * 1e6) : 0;
	if ((rc = get_int(o, "chan", 0, 65535, &i)) < 0)
		RXPK_ERR(r, "chan is not a channel number");
	r->has_chan = rc == 1;
	r->chan = (uint32_t)(rc == 1 ? i : 0);
	if ((rc = get_int(o, "rfch", 0, 65535, &i)) < 0)
		RXPK_ERR(r, "rfch is not an RF chain number");
	r->has_rfch = rc == 1;
	r->rfch = (uint32_t)(rc == 1 ? i : 0);
	if ((rc = get_int(o, "stat", -1, 1, &i)) < 0)
		RXPK_ERR(r, "stat is not -1, 0 or 1");
	r->has_stat = rc == 1;
	r->stat = rc == 1 ? (enum gwmp_crc)i : GWMP_CRC_OK;
	parse_datr(o, r);
	if (r->error)
		return;
	if ((rc = get_str(o, "codr", r->codr, sizeof(r->codr))) < 0)
		RXPK_ERR(r, "codr is not a coding rate");
	r->has_codr = rc == 1;
	if (r->has_codr && !gwmp_parse_codr(r->codr, &r->cr))
		r->cr = 0;
	if ((rc = get_num(o, "rssi", -300, 300, &d)) < 0 ||
	    (rc == 0 && (rc = get_num(o, "rssis", -300, 300, &d)) < 0))
		RXPK_ERR(r, "rssi is not a level in dBm");
	r->has_rssi = rc == 1;
	r->rssi = rc == 1 ? (int)lround(d) : 0;
	if ((rc = get_num(o, "lsnr", -100, 100, &d)) < 0)
		RXPK_ERR(r, "lsnr is not an SNR in dB");
	r->has_lsnr = rc == 1;
	r->lsnr = rc == 1 ? d : 0;
	parse_rsig(o, r);
}

static void parse_stat(const json_t *o, struct gwmp_stat *s)
{
	int64_t i;
	double d;

	memset(s, 0, sizeof(*s));
	/* informational: a bad field is left out, not an error */
	s->has_time = get_str(o, "time", s->time, sizeof(s->time)) == 1;
	if ((s->has_lati = get_num(o, "lati", -90, 90, &d) == 1))
		s->lati = d;
	if ((s->has_long = get_num(o, "long", -180, 180, &d) == 1))
		s->lon = d;
	if ((s->has_alti = get_int(o, "alti", -100000, 100000, &i) == 1))
		s->alti = i;
#define STAT_COUNT(name)                                                                           \
	if ((s->has_##name = get_int(o, #name, 0, 9007199254740992.0, &i) == 1))                   \
		s->name = (uint64_t)i;
	STAT_COUNT(rxnb)
	STAT_COUNT(rxok)
	STAT_COUNT(rxfw)
	STAT_COUNT(dwnb)
	STAT_COUNT(txnb)
#undef STAT_COUNT
	if ((s->has_ackr = get_num(o, "ackr", 0, 100, &d) == 1))
		s->ackr = d;
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

int gwmp_push_jansson(const uint8_t *json, size_t len, struct gwmp_push *out, const char **why)
{
	json_t *root, *rxpk, *stat;
	int rc = 0;

	out->n_rxpk = 0;
	out->rxpk_over = 0;
	out->has_stat = false;
	root = load_object(json, len, why);
	if (!root)
		return -EINVAL;
	rxpk = json_object_get(root, "rxpk");
	stat = json_object_get(root, "stat");
	if (rxpk && !json_is_array(rxpk)) {
		rc = bad(why, "rxpk is not an array");
		goto out;
	}
	if (stat && !json_is_object(stat)) {
		rc = bad(why, "stat is not an object");
		goto out;
	}
	for (size_t i = 0; rxpk && i < json_array_size(rxpk); i++) {
		if (out->n_rxpk == GWMP_RXPK_MAX) {
			out->rxpk_over++;
			continue;
		}
		parse_rxpk(json_array_get(rxpk, i), &out->rxpk[out->n_rxpk++]);
	}
	if (stat) {
		parse_stat(stat, &out->stat);
		out->has_stat = true;
	}
out:
	json_decref(root);
	return rc;
}
