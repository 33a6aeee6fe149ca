// SPDX-License-Identifier: MIT
/*
 * Duty-cycle ledger: per band, the transmissions of the last window as
 * records (start, end, airtime), appended in commit order.
 */
#include "dutycycle.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dc_rec {
	uint64_t start_ms, end_ms;
	uint64_t airtime_us;
};

struct dc_log {
	struct dc_rec *rec;
	size_t n, cap;
};

struct dc_ledger {
	struct dc_table t;
	uint64_t window_ms;
	struct dc_log log[DC_BANDS_MAX];
};

static const struct dc_band eu868_bands[] = {
	{863000000, 868000000, 10000},	{868000000, 868600000, 10000}, {868700000, 869200000, 1000},
	{869400000, 869650000, 100000}, {869700000, 870000000, 10000},
};

void dc_table_default(struct dc_table *t)
{
	t->n = sizeof(eu868_bands) / sizeof(eu868_bands[0]);
	memcpy(t->band, eu868_bands, sizeof(eu868_bands));
}

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* A decimal "123.456" with at most `decimals` fraction digits, scaled by
 * 10^decimals, at most `max` after scaling. Advances *p. */
static int parse_fixed(const char **p, unsigned decimals, uint64_t max, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;
	unsigned d = 0, digits = 0;

	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > max)
			return -1;
		s++;
		digits++;
	}
	if (!digits)
		return -1;
	if (*s == '.') {
		s++;
		if (!(*s >= '0' && *s <= '9'))
			return -1;
		while (*s >= '0' && *s <= '9') {
			if (d == decimals)
				return -1;
			v = v * 10 + (uint64_t)(*s - '0');
			d++;
			s++;
		}
	}
	for (; d < decimals; d++)
		v *= 10;
	if (v > max)
		return -1;
	*p = s;
	*out = v;
	return 0;
}

#define MHZ_MAX 4000u /* Hz fit 32 bits */

int dc_table_parse(const char *s, struct dc_table *t, char *err, size_t errlen)
{
	struct dc_table out = {0};
	const char *p = s;

	if (!s)
		return fail(err, errlen, "no bands given");
	for (;;) {
		struct dc_band b;
		uint64_t lo, hi, ppm;
		const char *tok;

		p += strspn(p, " \t,");
		if (!*p)
			break;
		tok = p;
		if (out.n == DC_BANDS_MAX)
			return fail(err, errlen, "more than %d bands", DC_BANDS_MAX);
		if (parse_fixed(&p, 6, (uint64_t)MHZ_MAX * 1000000, &lo) < 0 || *p++ != '-' ||
		    parse_fixed(&p, 6, (uint64_t)MHZ_MAX * 1000000, &hi) < 0 || *p++ != ':' ||
		    parse_fixed(&p, 4, 1000000, &ppm) < 0)
			return fail(err, errlen,
				    "band %zu (\"%.24s\"): expected LOW-HIGH:PERCENT%% like "
				    "868.0-868.6:1%% (MHz, up to %u MHz)",
				    out.n + 1, tok, MHZ_MAX);
		if (*p == '%')
			p++;
		if (*p && !strchr(" \t,", *p))
			return fail(err, errlen, "band %zu (\"%.24s\"): unexpected '%c'", out.n + 1,
				    tok, *p);
		if (lo >= hi)
			return fail(err, errlen,
				    "band %zu: the low edge must be below the high edge",
				    out.n + 1);
		if (ppm == 0 || ppm > 1000000)
			return fail(err, errlen,
				    "band %zu: the duty cycle must be above 0%% and at "
				    "most 100%%",
				    out.n + 1);
		b.lo_hz = (uint32_t)lo;
		b.hi_hz = (uint32_t)hi;
		b.ppm = (uint32_t)ppm;
		for (size_t i = 0; i < out.n; i++) {
			if (b.lo_hz < out.band[i].hi_hz && out.band[i].lo_hz < b.hi_hz)
				return fail(err, errlen, "band %zu overlaps band %zu", out.n + 1,
					    i + 1);
		}
		out.band[out.n++] = b;
	}
	if (!out.n)
		return fail(err, errlen, "no bands given");
	*t = out;
	return 0;
}

int dc_table_find(const struct dc_table *t, uint32_t freq_hz, uint32_t bw_hz)
{
	uint64_t lo = freq_hz - (uint64_t)(bw_hz / 2 < freq_hz ? bw_hz / 2 : freq_hz);
	uint64_t hi = (uint64_t)freq_hz + bw_hz / 2;

	for (size_t i = 0; i < t->n; i++) {
		if (lo >= t->band[i].lo_hz && hi <= t->band[i].hi_hz)
			return (int)i;
	}
	return -1;
}

uint64_t dc_band_limit_us(const struct dc_band *b, uint64_t window_ms)
{
	return window_ms * b->ppm / 1000u;
}

void dc_band_name(const struct dc_band *b, char out[DC_BAND_NAME_LEN])
{
	snprintf(out, DC_BAND_NAME_LEN, "%u-%u", (unsigned)b->lo_hz, (unsigned)b->hi_hz);
}

/* v / 10^decimals without trailing zeros, at least `keep` decimals */
static void fmt_fixed(char *out, size_t len, uint64_t v, unsigned decimals, unsigned keep)
{
	uint64_t scale = 1;
	char frac[16];
	int n;

	for (unsigned i = 0; i < decimals; i++)
		scale *= 10;
	snprintf(frac, sizeof(frac), "%0*llu", (int)decimals, (unsigned long long)(v % scale));
	n = (int)decimals;
	while (n > (int)keep && frac[n - 1] == '0')
		n--;
	frac[n] = '\0';
	snprintf(out, len, "%llu%s%s", (unsigned long long)(v / scale), n ? "." : "", frac);
}

void dc_band_label(const struct dc_band *b, char *out, size_t len)
{
	char lo[24], hi[24], pct[24];

	fmt_fixed(lo, sizeof(lo), b->lo_hz, 6, 1);
	fmt_fixed(hi, sizeof(hi), b->hi_hz, 6, 1);
	fmt_fixed(pct, sizeof(pct), b->ppm, 4, 0);
	snprintf(out, len, "%s-%s MHz %s%%", lo, hi, pct);
}

struct dc_ledger *dc_ledger_new(const struct dc_table *t, uint64_t window_ms)
{
	struct dc_ledger *l;

	if (!t || t->n > DC_BANDS_MAX || !window_ms)
		return NULL;
	l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->t = *t;
	l->window_ms = window_ms;
	/* a few records per band up front: a commit never needs memory */
	for (size_t i = 0; i < t->n; i++) {
		l->log[i].rec = calloc(8, sizeof(struct dc_rec));
		if (!l->log[i].rec) {
			dc_ledger_free(l);
			return NULL;
		}
		l->log[i].cap = 8;
	}
	return l;
}

void dc_ledger_free(struct dc_ledger *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < DC_BANDS_MAX; i++)
		free(l->log[i].rec);
	free(l);
}

const struct dc_table *dc_ledger_table(const struct dc_ledger *l)
{
	return &l->t;
}

static uint64_t ceil_ms(uint64_t us)
{
	return (us + 999) / 1000;
}

/* Drops the records that left the window ending at now_ms. */
static void prune(struct dc_ledger *l, struct dc_log *g, uint64_t now_ms)
{
	size_t keep = 0;

	for (size_t i = 0; i < g->n; i++) {
		if (g->rec[i].end_ms + l->window_ms > now_ms)
			g->rec[keep++] = g->rec[i];
	}
	g->n = keep;
}

uint64_t dc_ledger_used_us(struct dc_ledger *l, size_t band, uint64_t now_ms)
{
	struct dc_log *g;
	uint64_t used = 0;

	if (band >= l->t.n)
		return 0;
	g = &l->log[band];
	prune(l, g, now_ms);
	for (size_t i = 0; i < g->n; i++)
		used += g->rec[i].airtime_us;
	return used;
}

struct expiry {
	uint64_t at_ms, airtime_us;
};

static int cmp_expiry(const void *a, const void *b)
{
	const struct expiry *x = a, *y = b;

	return x->at_ms < y->at_ms ? -1 : x->at_ms > y->at_ms;
}

uint64_t dc_ledger_wait_ms(const struct dc_ledger *l, size_t band, uint64_t at_ms,
			   uint64_t airtime_us)
{
	const struct dc_log *g;
	uint64_t limit, used = 0, need, freed = 0, a_ms = ceil_ms(airtime_us);
	struct expiry ex[DC_RECORDS_MAX];
	size_t n = 0;

	if (band >= l->t.n)
		return DC_NEVER;
	limit = dc_band_limit_us(&l->t.band[band], l->window_ms);
	if (airtime_us > limit)
		return DC_NEVER;
	g = &l->log[band];
	/* a record counts while it ends after the window that closes with
	 * the new transmission opens: end > at + a - window */
	for (size_t i = 0; i < g->n; i++) {
		const struct dc_rec *r = &g->rec[i];

		if (r->end_ms + l->window_ms > at_ms + a_ms) {
			used += r->airtime_us;
			ex[n].at_ms = r->end_ms + l->window_ms - a_ms;
			ex[n].airtime_us = r->airtime_us;
			n++;
		}
	}
	if (used + airtime_us <= limit)
		return 0;
	need = used + airtime_us - limit;
	qsort(ex, n, sizeof(ex[0]), cmp_expiry);
	for (size_t i = 0; i < n; i++) {
		freed += ex[i].airtime_us;
		if (freed >= need)
			return ex[i].at_ms > at_ms ? ex[i].at_ms - at_ms : 1;
	}
	return DC_NEVER; /* not reached: airtime_us <= limit */
}

/* Appends a record; past the bound the oldest folds into the next. */
static void append(struct dc_log *g, struct dc_rec r)
{
	if (g->n == g->cap && g->cap < DC_RECORDS_MAX) {
		size_t cap = g->cap ? g->cap * 2 : 8;
		struct dc_rec *p;

		if (cap > DC_RECORDS_MAX)
			cap = DC_RECORDS_MAX;
		p = realloc(g->rec, cap * sizeof(*p));
		if (p) {
			g->rec = p;
			g->cap = cap;
		}
	}
	if (g->n == g->cap) {
		/* full (or no memory to grow): fold the oldest record into
		 * the next one, or into the new one when it is the only one */
		struct dc_rec *a = &g->rec[0], *b = g->n > 1 ? &g->rec[1] : &r;

		b->airtime_us += a->airtime_us;
		if (a->start_ms > b->start_ms)
			b->start_ms = a->start_ms;
		if (a->end_ms > b->end_ms)
			b->end_ms = a->end_ms;
		memmove(&g->rec[0], &g->rec[1], (g->n - 1) * sizeof(g->rec[0]));
		g->n--;
	}
	g->rec[g->n++] = r;
}

int dc_ledger_commit(struct dc_ledger *l, size_t band, uint64_t at_ms, uint64_t airtime_us)
{
	struct dc_rec r = {at_ms, at_ms + ceil_ms(airtime_us), airtime_us};

	if (band >= l->t.n)
		return -EINVAL;
	append(&l->log[band], r);
	return 0;
}

static int emit(char *buf, size_t cap, size_t *off, const struct dc_band *b, const struct dc_rec *r,
		uint64_t now_ms, int64_t now_wall_ms)
{
	int n = snprintf(buf + *off, cap - *off, "%u %u %lld %lld %llu\n", (unsigned)b->lo_hz,
			 (unsigned)b->hi_hz,
			 (long long)(now_wall_ms - ((int64_t)now_ms - (int64_t)r->start_ms)),
			 (long long)(now_wall_ms - ((int64_t)now_ms - (int64_t)r->end_ms)),
			 (unsigned long long)r->airtime_us);

	if (n < 0 || (size_t)n >= cap - *off)
		return -ENOBUFS;
	*off += (size_t)n;
	return 0;
}

long dc_ledger_export(const struct dc_ledger *l, uint64_t now_ms, int64_t now_wall_ms, char *buf,
		      size_t cap)
{
	size_t off = 0;

	if (!cap)
		return -ENOBUFS;
	buf[0] = '\0';
	for (size_t b = 0; b < l->t.n; b++) {
		const struct dc_log *g = &l->log[b];
		size_t first = 0;

		/* the oldest records beyond the bound go out as one */
		if (g->n > DC_EXPORT_PER_BAND) {
			struct dc_rec fold = {0, 0, 0};

			first = g->n - DC_EXPORT_PER_BAND + 1;
			for (size_t i = 0; i < first; i++) {
				const struct dc_rec *r = &g->rec[i];

				fold.airtime_us += r->airtime_us;
				if (r->start_ms > fold.start_ms)
					fold.start_ms = r->start_ms;
				if (r->end_ms > fold.end_ms)
					fold.end_ms = r->end_ms;
			}
			if (fold.end_ms + l->window_ms > now_ms &&
			    emit(buf, cap, &off, &l->t.band[b], &fold, now_ms, now_wall_ms) < 0)
				return -ENOBUFS;
		}
		for (size_t i = first; i < g->n; i++) {
			const struct dc_rec *r = &g->rec[i];

			if (r->end_ms + l->window_ms > now_ms &&
			    emit(buf, cap, &off, &l->t.band[b], r, now_ms, now_wall_ms) < 0)
				return -ENOBUFS;
		}
	}
	return (long)off;
}

/* ms before now_ms as a time of ours; before our clock's zero it is 0,
 * which keeps a record longer in the window, never shorter */
static uint64_t back(uint64_t now_ms, int64_t age_ms)
{
	if (age_ms < 0)
		age_ms = 0; /* from a clock ahead of ours: as of now */
	return (uint64_t)age_ms > now_ms ? 0 : now_ms - (uint64_t)age_ms;
}

int dc_ledger_import(struct dc_ledger *l, const char *text, size_t len, uint64_t now_ms,
		     int64_t now_wall_ms)
{
	static const size_t max = DC_BANDS_MAX * DC_EXPORT_PER_BAND;
	struct {
		size_t band;
		struct dc_rec r;
	} * recs;
	size_t n = 0, pos = 0;

	recs = calloc(max, sizeof(*recs));
	if (!recs)
		return -ENOMEM;
	while (pos < len) {
		char line[96];
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t ll = nl ? (size_t)(nl - (text + pos)) : len - pos;
		unsigned long long lo, hi, air;
		long long start, stop;
		int used = 0;

		if (ll >= sizeof(line))
			goto bad;
		memcpy(line, text + pos, ll);
		line[ll] = '\0';
		pos += ll + 1;
		if (!ll)
			continue;
		if (sscanf(line, "%llu %llu %lld %lld %llu%n", &lo, &hi, &start, &stop, &air,
			   &used) != 5 ||
		    line[used] || stop < start || air > 3600000000ull || lo > UINT32_MAX ||
		    hi > UINT32_MAX || start < 0 || stop > INT64_MAX / 2)
			goto bad;
		if (now_wall_ms - stop >= (int64_t)l->window_ms)
			continue; /* left the window */
		for (size_t b = 0; b < l->t.n; b++) {
			if (l->t.band[b].lo_hz != lo || l->t.band[b].hi_hz != hi)
				continue;
			if (n == max)
				goto bad;
			recs[n].band = b;
			recs[n].r.start_ms = back(now_ms, now_wall_ms - start);
			recs[n].r.end_ms = back(now_ms, now_wall_ms - stop);
			recs[n].r.airtime_us = air;
			n++;
			break;
		}
	}
	for (size_t i = 0; i < n; i++)
		append(&l->log[recs[i].band], recs[i].r);
	free(recs);
	return (int)n;
bad:
	free(recs);
	return -EINVAL;
}

size_t dc_ledger_records(const struct dc_ledger *l, size_t band)
{
	return band < l->t.n ? l->log[band].n : 0;
}
