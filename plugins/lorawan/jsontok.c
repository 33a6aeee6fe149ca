// SPDX-License-Identifier: MIT
/*
 * A strict JSON tokenizer without a tree (see jsontok.h), written from
 * RFC 8259 (the grammar) and RFC 3629 section 4 (well-formed UTF-8).
 * Iterative: the depth costs one bit per open container, not stack frames.
 */
#include "jsontok.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define NONE UINT32_MAX

struct tz {
	const unsigned char *base, *p, *end;
	struct jsontok *tok;
	size_t cap, n;
	unsigned flags;
	/* Containers still open: the ones with a token (index < cap) come first,
	 * since they were opened first; each links to its parent through `next`
	 * until it closes. `open` is the innermost of them, `unstored` counts
	 * the ones inside it that got no token. */
	uint32_t open;
	unsigned unstored;
	unsigned depth;
	uint8_t is_obj[JSONTOK_DEPTH_MAX / 8]; /* bit k: open container k is an object */
};

static bool is_ws(unsigned c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool is_digit(unsigned c)
{
	return c >= '0' && c <= '9';
}

static void skip_ws(struct tz *t)
{
	while (t->p < t->end && is_ws(*t->p))
		t->p++;
}

static int hex_val(unsigned c)
{
	if (c >= '0' && c <= '9')
		return (int)(c - '0');
	if (c >= 'a' && c <= 'f')
		return (int)(c - 'a' + 10);
	if (c >= 'A' && c <= 'F')
		return (int)(c - 'A' + 10);
	return -1;
}

/* four hex digits at p (the caller checked there are four bytes), or -1 */
static long hex4(const unsigned char *p)
{
	long v = 0;

	for (int i = 0; i < 4; i++) {
		int d = hex_val(p[i]);

		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* The length of the well-formed UTF-8 sequence of 2 to 4 bytes at p, or 0
 * (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
	unsigned c = p[0], lo = 0x80, hi = 0xbf;
	size_t n;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;
		else if (c == 0xed)
			hi = 0x9f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;
		else if (c == 0xf4)
			hi = 0x8f;
	} else {
		return 0;
	}
	if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++) {
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	}
	return n;
}

/* From after the opening quote to the closing quote (left at t->p). */
static bool scan_string(struct tz *t, uint8_t *flags)
{
	const unsigned char *p = t->p, *end = t->end;

	while (p < end) {
		unsigned c = *p;
		size_t n;
		long u, lo;

		if (c == '"') {
			t->p = p;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c < 0x80 && c != '\\') {
			p++;
			continue;
		}
		if (c >= 0x80) {
			if (!(n = utf8_seq(p, end)))
				return false;
			p += n;
			continue;
		}
		*flags |= JSONTOK_F_ESCAPED;
		if (end - p < 2)
			return false;
		switch (p[1]) {
		case '"':
		case '\\':
		case '/':
		case 'b':
		case 'f':
		case 'n':
		case 'r':
		case 't':
			p += 2;
			continue;
		case 'u':
			break;
		default:
			return false;
		}
		if (end - p < 6 || (u = hex4(p + 2)) < 0)
			return false;
		p += 6;
		if (u >= 0xdc00 && u <= 0xdfff)
			return false; /* a low surrogate first */
		if (u >= 0xd800 && u <= 0xdbff) {
			if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
				return false;
			lo = hex4(p + 2);
			if (lo < 0xdc00 || lo > 0xdfff)
				return false;
			p += 6;
		} else if (u == 0) {
			t->flags |= JSONTOK_DOC_NUL;
		}
	}
	return false;
}

/* -? (0 | [1-9][0-9]*) (\.[0-9]+)? ([eE][+-]?[0-9]+)? */
static bool scan_number(struct tz *t, uint8_t *flags)
{
	const unsigned char *p = t->p, *end = t->end;

	*flags = JSONTOK_F_INT;
	if (*p == '-')
		p++;
	if (p == end || !is_digit(*p))
		return false;
	if (*p++ != '0') {
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && *p == '.') {
		*flags = 0;
		if (++p == end || !is_digit(*p))
			return false;
		while (p < end && is_digit(*p))
			p++;
	}
	if (p < end && (*p == 'e' || *p == 'E')) {
		*flags = 0;
		p++;
		if (p < end && (*p == '+' || *p == '-'))
			p++;
		if (p == end || !is_digit(*p))
			return false;
		while (p < end && is_digit(*p))
			p++;
	}
	t->p = p;
	return true;
}

static uint32_t tok_add(struct tz *t, enum jsontok_type type, const unsigned char *start,
			const unsigned char *end, uint8_t flags)
{
	size_t i = t->n++;

	if (i < t->cap) {
		struct jsontok *k = &t->tok[i];

		k->start = (uint32_t)(start - t->base);
		k->end = (uint32_t)(end - t->base);
		k->size = 0;
		k->next = (uint32_t)i + 1;
		k->type = (uint8_t)type;
		k->flags = flags;
	}
	return (uint32_t)i;
}

static bool in_object(const struct tz *t)
{
	unsigned k = t->depth - 1;

	return t->is_obj[k / 8] >> (k % 8) & 1;
}

/* one more member or element in the innermost open container */
static void add_child(struct tz *t)
{
	if (!t->unstored && t->open != NONE)
		t->tok[t->open].size++;
}

static void container_open(struct tz *t, bool obj)
{
	uint32_t i = tok_add(t, obj ? JSONTOK_OBJECT : JSONTOK_ARRAY, t->p, t->p + 1, 0);
	unsigned k = t->depth++;

	if (i < t->cap) {
		t->tok[i].next = t->open;
		t->open = i;
	} else {
		t->unstored++;
	}
	if (obj)
		t->is_obj[k / 8] |= (uint8_t)(1u << (k % 8));
	else
		t->is_obj[k / 8] &= (uint8_t) ~(1u << (k % 8));
	t->p++;
}

/* at the closing bracket */
static void container_close(struct tz *t)
{
	t->depth--;
	t->p++;
	if (t->unstored) {
		t->unstored--;
	} else {
		struct jsontok *k = &t->tok[t->open];

		t->open = k->next;
		k->next = (uint32_t)t->n;
		k->end = (uint32_t)(t->p - t->base);
	}
}

/* A key, its colon and the whitespace up to the value. */
static bool member_key(struct tz *t)
{
	const unsigned char *start;
	uint8_t flags = 0;

	if (t->p == t->end || *t->p != '"')
		return false;
	start = ++t->p;
	if (!scan_string(t, &flags))
		return false;
	add_child(t);
	tok_add(t, JSONTOK_STRING, start, t->p, flags);
	t->p++;
	skip_ws(t);
	if (t->p == t->end || *t->p != ':')
		return false;
	t->p++;
	skip_ws(t);
	return true;
}

static bool literal(struct tz *t, const char *word, size_t n, enum jsontok_type type)
{
	if ((size_t)(t->end - t->p) < n || memcmp(t->p, word, n))
		return false;
	tok_add(t, type, t->p, t->p + n, 0);
	t->p += n;
	return true;
}

/* One value at t->p: 0 when complete, 1 when it opened a container that
 * holds something (what comes next is its first value), -1 when invalid. */
static int value(struct tz *t)
{
	const unsigned char *start = t->p;
	uint8_t flags = 0;

	if (t->depth >= JSONTOK_DEPTH_MAX || t->p == t->end)
		return -1;
	if (t->depth && !in_object(t))
		add_child(t);
	switch (*t->p) {
	case '{':
	case '[': {
		bool obj = *t->p == '{';

		container_open(t, obj);
		skip_ws(t);
		if (t->p < t->end && *t->p == (obj ? '}' : ']')) {
			container_close(t);
			return 0;
		}
		if (obj && !member_key(t))
			return -1;
		return 1;
	}
	case '"':
		start = ++t->p;
		if (!scan_string(t, &flags))
			return -1;
		tok_add(t, JSONTOK_STRING, start, t->p, flags);
		t->p++;
		return 0;
	case 't':
		return literal(t, "true", 4, JSONTOK_TRUE) ? 0 : -1;
	case 'f':
		return literal(t, "false", 5, JSONTOK_FALSE) ? 0 : -1;
	case 'n':
		return literal(t, "null", 4, JSONTOK_NULL) ? 0 : -1;
	default:
		if (!scan_number(t, &flags))
			return -1;
		tok_add(t, JSONTOK_NUMBER, start, t->p, flags);
		return 0;
	}
}

/* After a complete value: closes what ends here; 1 when a ',' (and in an
 * object the next key) leads to another value, 0 at the end of the text,
 * -1 when invalid. */
static int after_value(struct tz *t)
{
	for (;;) {
		bool obj;

		skip_ws(t);
		if (!t->depth)
			return t->p == t->end ? 0 : -1;
		if (t->p == t->end)
			return -1;
		obj = in_object(t);
		if (*t->p == ',') {
			t->p++;
			skip_ws(t);
			if (obj && !member_key(t))
				return -1;
			return 1;
		}
		if (*t->p != (obj ? '}' : ']'))
			return -1;
		container_close(t);
	}
}

int jsontok_parse(const char *json, size_t len, struct jsontok *tok, size_t cap, size_t *ntok,
		  unsigned *doc_flags)
{
	struct tz t = {
		.tok = tok,
		.cap = tok ? cap : 0,
		.open = NONE,
	};
	int rc;

	*ntok = 0;
	if (doc_flags)
		*doc_flags = 0;
	if (!json || len > JSONTOK_LEN_MAX)
		return -EINVAL;
	t.base = t.p = (const unsigned char *)json;
	t.end = t.p + len;
	skip_ws(&t);
	for (;;) {
		rc = value(&t);
		if (rc < 0)
			return -EINVAL;
		if (rc == 1)
			continue;
		rc = after_value(&t);
		if (rc < 0)
			return -EINVAL;
		if (rc == 0)
			break;
	}
	*ntok = t.n;
	if (doc_flags)
		*doc_flags = t.flags;
	return t.n > t.cap ? -ENOBUFS : 0;
}

int jsontok_load(struct jsontok_doc *d, const char *json, size_t len, struct jsontok *ws,
		 size_t cap)
{
	struct jsontok *tok;
	size_t n;
	int rc;

	memset(d, 0, sizeof(*d));
	d->json = json;
	d->len = len;
	rc = jsontok_parse(json, len, ws, cap, &n, &d->flags);
	if (rc == 0) {
		d->tok = ws;
		d->n = n;
		return 0;
	}
	if (rc != -ENOBUFS)
		return rc;
	if (n > SIZE_MAX / sizeof(*tok) || !(tok = malloc(n * sizeof(*tok))))
		return -ENOMEM;
	rc = jsontok_parse(json, len, tok, n, &n, &d->flags);
	if (rc < 0) {
		free(tok);
		return rc;
	}
	d->tok = tok;
	d->n = n;
	d->owned = true;
	return 0;
}

void jsontok_doc_release(struct jsontok_doc *d)
{
	if (d->owned)
		free(d->tok);
	d->tok = NULL;
	d->n = 0;
	d->owned = false;
}

/* ---- reading ------------------------------------------------------------ */

static size_t utf8_put(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3f));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/* The escape at *pp (of a checked string) into out; advances *pp. */
static size_t unescape_one(const char **pp, char out[4])
{
	const unsigned char *p = (const unsigned char *)*pp;
	uint32_t cp;

	*pp += 2;
	switch (p[1]) {
	case 'b':
		out[0] = '\b';
		return 1;
	case 'f':
		out[0] = '\f';
		return 1;
	case 'n':
		out[0] = '\n';
		return 1;
	case 'r':
		out[0] = '\r';
		return 1;
	case 't':
		out[0] = '\t';
		return 1;
	case 'u':
		break;
	default: /* '"', '\\', '/' */
		out[0] = (char)p[1];
		return 1;
	}
	cp = (uint32_t)hex4(p + 2);
	*pp += 4;
	if (cp >= 0xd800 && cp <= 0xdbff) {
		cp = 0x10000 + ((cp - 0xd800) << 10) + ((uint32_t)hex4(p + 8) - 0xdc00);
		*pp += 6;
	}
	return utf8_put(cp, out);
}

bool jsontok_str_eq(const struct jsontok_doc *d, int i, const char *s)
{
	const struct jsontok *t = &d->tok[i];
	const char *p = d->json + t->start, *end = d->json + t->end;
	size_t n = t->end - t->start;

	if (!(t->flags & JSONTOK_F_ESCAPED)) /* no NUL in p[0..n): strncmp stops at s's */
		return (!n || s[0] == p[0]) && !strncmp(s, p, n) && s[n] == '\0';
	while (p < end) {
		char buf[4];
		size_t k = 1;

		if (*p == '\\')
			k = unescape_one(&p, buf);
		else
			buf[0] = *p++;
		for (size_t j = 0; j < k; j++, s++) {
			if (!*s || *s != buf[j])
				return false;
		}
	}
	return *s == '\0';
}

static void put(char *out, size_t cap, size_t at, const char *src, size_t k)
{
	if (cap && at < cap - 1)
		memcpy(out + at, src, k < cap - 1 - at ? k : cap - 1 - at);
}

size_t jsontok_str(const struct jsontok_doc *d, int i, char *out, size_t cap)
{
	const struct jsontok *t = &d->tok[i];
	const char *p = d->json + t->start, *end = d->json + t->end;
	size_t n = 0;

	while (p < end) {
		const char *q;
		char buf[4];
		size_t k;

		if (*p == '\\') {
			k = unescape_one(&p, buf);
			put(out, cap, n, buf, k);
			n += k;
			continue;
		}
		q = memchr(p, '\\', (size_t)(end - p));
		if (!q)
			q = end;
		put(out, cap, n, p, (size_t)(q - p));
		n += (size_t)(q - p);
		p = q;
	}
	if (cap)
		out[n < cap ? n : cap - 1] = '\0';
	return n;
}

/* keys whose lengths jsontok_members() keeps at hand */
#define MEMBERS_FAST 32

void jsontok_members(const struct jsontok_doc *d, int obj, const char *const *keys, size_t nkeys,
		     int *vals)
{
	size_t len[MEMBERS_FAST], next = 0;
	uint32_t k, m;

	for (size_t j = 0; j < nkeys; j++) {
		vals[j] = -1;
		if (j < MEMBERS_FAST)
			len[j] = strlen(keys[j]);
	}
	if (jsontok_type_of(d, obj) != JSONTOK_OBJECT)
		return;
	for (m = 0, k = (uint32_t)obj + 1; m < d->tok[obj].size; m++, k = d->tok[k + 1].next) {
		const struct jsontok *t = &d->tok[k];
		const char *p = d->json + t->start;
		size_t n = t->end - t->start;

		/* from the key after the last one found: members tend to come in
		 * the order of keys[] (the keys are distinct, so the order of the
		 * tries does not change the result) */
		for (size_t i = 0, j = next; i < nkeys; i++, j = j + 1 < nkeys ? j + 1 : 0) {
			/* an unescaped key: its length and bytes decide */
			bool eq = j < MEMBERS_FAST && !(t->flags & JSONTOK_F_ESCAPED)
					  ? len[j] == n && (!n || (keys[j][0] == p[0] &&
								   !memcmp(keys[j], p, n)))
					  : jsontok_str_eq(d, (int)k, keys[j]);

			if (eq) {
				vals[j] = (int)k + 1;
				next = j + 1 < nkeys ? j + 1 : 0;
				break;
			}
		}
	}
}

int jsontok_find(const struct jsontok_doc *d, int obj, const char *key)
{
	int v;

	jsontok_members(d, obj, &key, 1, &v);
	return v;
}

/* an integer without fraction or exponent, when it fits int64 */
static bool int64_text(const char *s, size_t n, int64_t *out)
{
	bool neg = n && s[0] == '-';
	uint64_t m = 0;

	for (size_t k = neg; k < n; k++) {
		unsigned dg = (unsigned)(s[k] - '0');

		if (m > (UINT64_MAX - dg) / 10)
			return false;
		m = m * 10 + dg;
	}
	if (m > (uint64_t)INT64_MAX + (neg ? 1 : 0))
		return false;
	if (neg)
		*out = m == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)m;
	else
		*out = (int64_t)m;
	return true;
}

int jsontok_num(const struct jsontok_doc *d, int i, double *out)
{
	const struct jsontok *t = &d->tok[i];
	const char *s = d->json + t->start;
	size_t n = t->end - t->start;
	char small[64], *buf = small, *e;
	int64_t iv;
	double v;
	int err, rc = 0;

	if (t->flags & JSONTOK_F_INT) {
		if (int64_text(s, n, &iv)) {
			*out = (double)iv; /* as jansson: json_integer, then a double */
			return 0;
		}
		rc = -ERANGE;
	}
	/* strtod wants a terminated string: a copy of just the number, so that
	 * nothing after it (a ',' in a locale that takes it for the decimal
	 * point) is read */
	if (n >= sizeof(small) && !(buf = malloc(n + 1)))
		return -ENOMEM;
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	v = strtod(buf, &e);
	err = errno;
	if (e != buf + n) {
		/* the process's locale has another decimal point */
		locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);

		if (c) {
			errno = 0;
			v = strtod_l(buf, &e, c);
			err = errno;
			freelocale(c);
		} else {
			rc = -ENOMEM;
		}
	}
	if (buf != small)
		free(buf);
	if (rc == -ENOMEM)
		return rc;
	*out = v;
	if ((v == HUGE_VAL || v == -HUGE_VAL) && err == ERANGE)
		rc = -ERANGE;
	return rc;
}
