/* libFuzzer target: the PUSH_DATA JSON reader (plugins/lorawan/jsontok.c and
 * gwmp_parse_push) against jansson. The input is the JSON of one PUSH_DATA.
 *
 * 1. jsontok accepts what jansson (JSON_DECODE_ANY) accepts, and its tokens
 *    hold the same values: types, sizes, unescaped strings, numbers to the
 *    bit, object members with the last of duplicate keys.
 * 2. Where jansson refuses and jsontok does not, the input is one of the
 *    documented cases (jsontok.h): a string with U+0000, or numbers jansson
 *    refuses (beyond int64, beyond a double): with those numbers written
 *    as 0 jansson must accept it.
 * 3. Where jansson accepts and jsontok refuses, the input has NUL bytes,
 *    each right after a number or true/false/null: jansson 2.14 skips such
 *    a byte (its reader takes NUL for "no character"), RFC 8259 does not
 *    allow it. Without those bytes jsontok must accept it.
 * 4. gwmp_parse_push gives what the former jansson reader
 *    (gwmp_push_jansson.c) gives: return value, error string, every field
 *    of every rxpk and of stat; for the inputs of 3 once the NUL bytes are
 *    removed; not for the number case of 2.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "../../plugins/lorawan/gwmp.h"
#include "../../plugins/lorawan/jsontok.h"
#include "gwmp_push_jansson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gwmp_push ours, ref;

#define CHECK(cond)                                                                                \
	do {                                                                                       \
		if (!(cond))                                                                       \
			__builtin_trap();                                                          \
	} while (0)

static bool same_double(double a, double b)
{
	return !memcmp(&a, &b, sizeof(a));
}

/* token i of d holds the value v */
static void same_value(const struct jsontok_doc *d, int i, const json_t *v)
{
	const struct jsontok *t = jsontok_at(d, i);
	size_t distinct = 0;
	double x;
	int k;

	switch (t->type) {
	case JSONTOK_OBJECT:
		CHECK(json_is_object(v));
		k = i + 1;
		for (uint32_t m = 0; m < t->size; m++, k = (int)jsontok_at(d, k + 1)->next) {
			char key[256], *kp = key;
			size_t n = jsontok_str(d, k, key, sizeof(key));

			if (n >= sizeof(key)) {
				kp = malloc(n + 1);
				CHECK(kp);
				jsontok_str(d, k, kp, n + 1);
			}
			CHECK(strlen(kp) == n); /* no U+0000: jansson took it */
			CHECK(jsontok_str_eq(d, k, kp));
			CHECK(json_object_get(v, kp));
			/* the last of duplicate keys is the one jansson keeps */
			if (jsontok_find(d, i, kp) == k + 1) {
				distinct++;
				same_value(d, k + 1, json_object_get(v, kp));
			}
			if (kp != key)
				free(kp);
		}
		CHECK(distinct == json_object_size(v));
		break;
	case JSONTOK_ARRAY:
		CHECK(json_is_array(v) && t->size == json_array_size(v));
		k = i + 1;
		for (uint32_t m = 0; m < t->size; m++, k = (int)jsontok_at(d, k)->next)
			same_value(d, k, json_array_get(v, m));
		CHECK((uint32_t)k == t->next);
		break;
	case JSONTOK_STRING: {
		size_t n = json_is_string(v) ? json_string_length(v) : (size_t)-1;
		char *s;

		CHECK(json_is_string(v));
		s = malloc(n + 1);
		CHECK(s);
		CHECK(jsontok_str(d, i, s, n + 1) == n);
		CHECK(!memcmp(s, json_string_value(v), n));
		free(s);
		CHECK(t->next == (uint32_t)i + 1);
		break;
	}
	case JSONTOK_NUMBER:
		CHECK(json_is_number(v));
		CHECK(jsontok_num(d, i, &x) == 0);
		CHECK(same_double(x, json_number_value(v)));
		CHECK(!!(t->flags & JSONTOK_F_INT) == json_is_integer(v));
		break;
	case JSONTOK_TRUE:
		CHECK(json_is_true(v));
		break;
	case JSONTOK_FALSE:
		CHECK(json_is_false(v));
		break;
	case JSONTOK_NULL:
		CHECK(json_is_null(v));
		break;
	default:
		CHECK(0);
	}
}

/* Writes 0 over every number jsontok_num() reports out of jansson's range;
 * returns whether there was one. */
static bool zero_big_numbers(const struct jsontok_doc *d, char *text)
{
	bool any = false;

	for (size_t i = 0; i < d->n; i++) {
		const struct jsontok *t = jsontok_at(d, (int)i);
		double x;

		if (t->type != JSONTOK_NUMBER || jsontok_num(d, (int)i, &x) != -ERANGE)
			continue;
		memset(text + t->start, ' ', t->end - t->start);
		text[t->start] = '0';
		any = true;
	}
	return any;
}

static void same_str(const char *a, const char *b)
{
	CHECK((!a && !b) || (a && b && !strcmp(a, b)));
}

static void same_rxpk(const struct gwmp_rxpk *a, const struct gwmp_rxpk *b)
{
	same_str(a->error, b->error);
	CHECK(a->has_time == b->has_time && !memcmp(a->time, b->time, sizeof(a->time)));
	CHECK(a->has_tmst == b->has_tmst && a->tmst == b->tmst);
	CHECK(a->has_tmms == b->has_tmms && a->tmms == b->tmms);
	CHECK(a->has_freq == b->has_freq && a->freq_hz == b->freq_hz);
	CHECK(a->has_chan == b->has_chan && a->chan == b->chan);
	CHECK(a->has_rfch == b->has_rfch && a->rfch == b->rfch);
	CHECK(a->has_stat == b->has_stat && a->stat == b->stat);
	CHECK(a->modu == b->modu && a->has_datr == b->has_datr);
	CHECK(a->sf == b->sf && a->bw_hz == b->bw_hz && a->fsk_bps == b->fsk_bps);
	CHECK(a->has_codr == b->has_codr && !memcmp(a->codr, b->codr, sizeof(a->codr)));
	CHECK(a->cr == b->cr);
	CHECK(a->has_rssi == b->has_rssi && a->rssi == b->rssi);
	CHECK(a->has_lsnr == b->has_lsnr && same_double(a->lsnr, b->lsnr));
	CHECK(a->data_len == b->data_len && !memcmp(a->data, b->data, a->data_len));
}

static void same_stat(const struct gwmp_stat *a, const struct gwmp_stat *b)
{
	CHECK(a->has_time == b->has_time && !memcmp(a->time, b->time, sizeof(a->time)));
	CHECK(a->has_lati == b->has_lati && same_double(a->lati, b->lati));
	CHECK(a->has_long == b->has_long && same_double(a->lon, b->lon));
	CHECK(a->has_alti == b->has_alti && a->alti == b->alti);
	CHECK(a->has_rxnb == b->has_rxnb && a->rxnb == b->rxnb);
	CHECK(a->has_rxok == b->has_rxok && a->rxok == b->rxok);
	CHECK(a->has_rxfw == b->has_rxfw && a->rxfw == b->rxfw);
	CHECK(a->has_dwnb == b->has_dwnb && a->dwnb == b->dwnb);
	CHECK(a->has_txnb == b->has_txnb && a->txnb == b->txnb);
	CHECK(a->has_ackr == b->has_ackr && same_double(a->ackr, b->ackr));
}

/* The input without the NUL bytes jansson skips (3 above) into out;
 * returns the new length. */
static size_t drop_skipped_nul(const uint8_t *data, size_t size, uint8_t *out)
{
	size_t n = 0;

	for (size_t i = 0; i < size; i++) {
		if (data[i])
			out[n++] = data[i];
		else
			CHECK(n && strchr("0123456789el", out[n - 1]) && out[n - 1]);
	}
	return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	const char *why_ours = NULL, *why_ref = NULL;
	struct jsontok_doc d;
	json_error_t err;
	json_t *root;
	bool big_numbers = false;
	uint8_t *stripped = NULL;
	const uint8_t *in = data;
	size_t in_len = size;
	int rc, rc_ref;

	if (size > GWMP_JSON_MAX)
		return 0;
	root = json_loadb(text, size, JSON_DECODE_ANY, &err);
	rc = jsontok_load(&d, text, size, NULL, 0);
	CHECK(rc == 0 || rc == -EINVAL);
	if (root && rc < 0) {
		CHECK(memchr(data, 0, size));
		stripped = malloc(size);
		CHECK(stripped);
		in_len = drop_skipped_nul(data, size, stripped);
		in = stripped;
		rc = jsontok_load(&d, (const char *)in, in_len, NULL, 0);
		CHECK(rc == 0);
	}
	if (rc == 0)
		CHECK(d.n >= 1 && d.n <= (in_len + 1) / 2 && d.tok[0].next == d.n);
	if (root) {
		CHECK(rc == 0 && !(d.flags & JSONTOK_DOC_NUL));
		same_value(&d, 0, root);
		json_decref(root);
	} else if (rc == 0 && !(d.flags & JSONTOK_DOC_NUL)) {
		/* the number case: with those numbers 0, jansson takes it */
		char *copy = malloc(size ? size : 1);

		CHECK(copy);
		memcpy(copy, data, size);
		big_numbers = zero_big_numbers(&d, copy);
		CHECK(big_numbers);
		root = json_loadb(copy, size, JSON_DECODE_ANY, &err);
		CHECK(root);
		json_decref(root);
		free(copy);
	}
	jsontok_doc_release(&d);

	rc = gwmp_parse_push(in, in_len, &ours, &why_ours);
	rc_ref = gwmp_push_jansson(data, size, &ref, &why_ref);
	free(stripped);
	if (big_numbers)
		return 0; /* jansson refused it all; we did not: documented */
	CHECK(rc == rc_ref);
	if (rc < 0) {
		same_str(why_ours, why_ref);
		return 0;
	}
	CHECK(ours.n_rxpk == ref.n_rxpk && ours.rxpk_over == ref.rxpk_over);
	for (size_t i = 0; i < ours.n_rxpk; i++)
		same_rxpk(&ours.rxpk[i], &ref.rxpk[i]);
	CHECK(ours.has_stat == ref.has_stat);
	if (ours.has_stat)
		same_stat(&ours.stat, &ref.stat);
	return 0;
}
