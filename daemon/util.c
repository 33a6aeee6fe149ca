#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

void strbuf_init(struct strbuf *sb, size_t hint)
{
	memset(sb, 0, sizeof(*sb));
	sb->cap = hint ? hint : 64;
	sb->buf = malloc(sb->cap);
	if (!sb->buf) {
		sb->failed = true;
		sb->cap = 0;
		return;
	}
	sb->buf[0] = '\0';
}

void strbuf_release(struct strbuf *sb)
{
	free(sb->buf);
	memset(sb, 0, sizeof(*sb));
}

bool strbuf_reserve(struct strbuf *sb, size_t extra)
{
	if (sb->failed)
		return false;
	if (sb->len + extra + 1 <= sb->cap)
		return true;
	size_t cap = sb->cap ? sb->cap : 64;
	while (cap < sb->len + extra + 1)
		cap *= 2;
	char *nb = realloc(sb->buf, cap);
	if (!nb) {
		sb->failed = true;
		return false;
	}
	sb->buf = nb;
	sb->cap = cap;
	return true;
}

void strbuf_append(struct strbuf *sb, const void *data, size_t len)
{
	if (!strbuf_reserve(sb, len))
		return;
	memcpy(sb->buf + sb->len, data, len);
	sb->len += len;
	sb->buf[sb->len] = '\0';
}

void strbuf_puts(struct strbuf *sb, const char *s)
{
	strbuf_append(sb, s, strlen(s));
}

void strbuf_printf(struct strbuf *sb, const char *fmt, ...)
{
	va_list ap;
	if (sb->failed)
		return;
	/* one formatting pass when the text fits in the room left */
	size_t room = sb->cap - sb->len;
	va_start(ap, fmt);
	int n = vsnprintf(sb->buf + sb->len, room, fmt, ap);
	va_end(ap);
	if (n < 0) {
		sb->buf[sb->len] = '\0';
		return;
	}
	if ((size_t)n >= room) {
		if (!strbuf_reserve(sb, (size_t)n)) {
			sb->buf[sb->len] = '\0';
			return;
		}
		va_start(ap, fmt);
		vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	sb->len += (size_t)n;
}

void strbuf_int(struct strbuf *sb, long long v)
{
	char tmp[24], *p = tmp + sizeof(tmp);
	unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	strbuf_append(sb, p, (size_t)(tmp + sizeof(tmp) - p));
}

void strbuf_json_strn(struct strbuf *sb, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	strbuf_append(sb, "\"", 1);
	const char *run = s;
	const unsigned char *end = (const unsigned char *)s + len;
	for (const unsigned char *p = (const unsigned char *)s; p < end; p++) {
		char esc[7];
		size_t n = 0;
		switch (*p) {
		case '"':
			n = 2, esc[0] = '\\', esc[1] = '"';
			break;
		case '\\':
			n = 2, esc[0] = '\\', esc[1] = '\\';
			break;
		case '\n':
			n = 2, esc[0] = '\\', esc[1] = 'n';
			break;
		case '\r':
			n = 2, esc[0] = '\\', esc[1] = 'r';
			break;
		case '\t':
			n = 2, esc[0] = '\\', esc[1] = 't';
			break;
		default:
			if (*p < 0x20) {
				esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0';
				esc[4] = hex[*p >> 4], esc[5] = hex[*p & 15];
				n = 6;
			}
		}
		if (!n)
			continue;
		strbuf_append(sb, run, (size_t)((const char *)p - run));
		strbuf_append(sb, esc, n);
		run = (const char *)p + 1;
	}
	strbuf_append(sb, run, (size_t)((const char *)end - run));
	strbuf_append(sb, "\"", 1);
}

void strbuf_json_str(struct strbuf *sb, const char *s)
{
	strbuf_json_strn(sb, s, strlen(s));
}

char *strbuf_steal(struct strbuf *sb, size_t *len)
{
	char *b = sb->failed ? NULL : sb->buf;
	if (len)
		*len = b ? sb->len : 0;
	if (!b)
		free(sb->buf);
	memset(sb, 0, sizeof(*sb));
	return b;
}

void hex_encode(const void *data, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = data;
	for (size_t i = 0; i < n; i++) {
		*out++ = hex[p[i] >> 4];
		*out++ = hex[p[i] & 15];
	}
	*out = '\0';
}

int parse_int(const char *s, long long min, long long max, long long *out)
{
	if (!s || !*s || isspace((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (*end)
		return -EINVAL;
	if (errno == ERANGE || v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"yes", "true", "on", "1"};
	static const char *const no[] = {"no", "false", "off", "0"};
	for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/* number followed by an optional unit from the table; returns value * unit */
static int parse_scaled(const char *s, const char *const *units, const uint64_t *mult,
			size_t nunits, uint64_t defmult, uint64_t *out)
{
	if (!s || !isdigit((unsigned char)*s))
		return -EINVAL;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	uint64_t m = defmult;
	if (*end) {
		size_t i;
		for (i = 0; i < nunits; i++)
			if (!strcmp(end, units[i]))
				break;
		if (i == nunits)
			return -EINVAL;
		m = mult[i];
	}
	if (m && v > UINT64_MAX / m)
		return -ERANGE;
	*out = v * m;
	return 0;
}

int parse_duration_ms(const char *s, uint64_t *out)
{
	static const char *const units[] = {"ms", "s", "m", "h", "d"};
	static const uint64_t mult[] = {1, 1000, 60000, 3600000, 86400000};
	return parse_scaled(s, units, mult, ARRAY_SIZE(units), 1000, out);
}

int parse_size(const char *s, uint64_t *out)
{
	static const char *const units[] = {"k", "K", "M", "G"};
	static const uint64_t mult[] = {1024, 1024, 1024 * 1024, 1024 * 1024 * 1024};
	return parse_scaled(s, units, mult, ARRAY_SIZE(units), 1, out);
}

int parse_host_port(const char *s, char *host, size_t hostlen, int *port)
{
	const char *colon;
	const char *h = s;
	size_t hl;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -EINVAL;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon)
			return -EINVAL;
		hl = (size_t)(colon - s);
		if (memchr(s, ':', hl))
			return -EINVAL; /* bare IPv6 needs brackets */
	}
	if (hl >= hostlen)
		return -EINVAL;
	long long p;
	if (parse_int(colon + 1, 0, 65535, &p) < 0)
		return -EINVAL;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = (int)p;
	return 0;
}

bool ident_valid(const char *s, size_t maxlen)
{
	size_t n = 0;
	if (!s || !(islower((unsigned char)*s) || isdigit((unsigned char)*s)))
		return false;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (!(islower(c) || isdigit(c) || c == '_' || c == '-'))
			return false;
	}
	return n <= maxlen;
}

uint64_t time_now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void time_format_us(uint64_t us, char out[32])
{
	time_t sec = (time_t)(us / 1000000u);
	struct tm tm;
	gmtime_r(&sec, &tm);
	size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(out + n, 32 - n, ".%06uZ", (unsigned)(us % 1000000u));
}

static int digits(const char *s, int n)
{
	int v = 0;
	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

int time_parse_rfc3339(const char *s, int64_t *us)
{
	/* YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm) */
	if (strlen(s) < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') ||
	    s[13] != ':' || s[16] != ':')
		return -EINVAL;
	int Y = digits(s, 4), M = digits(s + 5, 2), D = digits(s + 8, 2);
	int h = digits(s + 11, 2), m = digits(s + 14, 2), sec = digits(s + 17, 2);
	if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > 31 || h < 0 || h > 23 || m < 0 || m > 59 ||
	    sec < 0 || sec > 60)
		return -EINVAL;
	const char *p = s + 19;
	int64_t frac = 0;
	if (*p == '.') {
		int n = 0;
		p++;
		while (*p >= '0' && *p <= '9') {
			if (n < 6)
				frac = frac * 10 + (*p - '0');
			n++;
			p++;
		}
		if (n == 0)
			return -EINVAL;
		for (; n < 6; n++)
			frac *= 10;
	}
	int64_t off = 0;
	if (*p == 'Z' || *p == 'z') {
		p++;
	} else if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
		int oh = digits(p + 1, 2), om = digits(p + 4, 2);
		if (oh < 0 || oh > 23 || om < 0 || om > 59)
			return -EINVAL;
		off = (int64_t)(oh * 60 + om) * 60 * (*p == '+' ? 1 : -1);
		p += 6;
	} else {
		return -EINVAL;
	}
	if (*p)
		return -EINVAL;
	static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
	if (D > mdays[M - 1] + (M == 2 && leap))
		return -EINVAL;
	/* days from civil (Howard Hinnant's algorithm) */
	int y = Y - (M <= 2);
	int era = y / 400;
	int yoe = y - era * 400;
	int doy = (153 * (M + (M > 2 ? -3 : 9)) + 2) / 5 + D - 1;
	int doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	int64_t days = (int64_t)era * 146097 + doe - 719468;
	int64_t t = days * 86400 + h * 3600 + m * 60 + (sec > 59 ? 59 : sec) - off;
	if (t < 0)
		return -EINVAL;
	*us = t * 1000000 + frac;
	return 0;
}

struct smap_entry {
	char *key;
	void *value;
	uint32_t hash;
	struct smap_entry *next;
};

struct smap {
	struct smap_entry **buckets;
	size_t nbuckets;
	size_t size;
};

static uint32_t smap_hash(const char *s)
{
	uint32_t h = 2166136261u; /* FNV-1a */
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 16777619u;
	}
	return h;
}

struct smap *smap_new(void)
{
	struct smap *m = calloc(1, sizeof(*m));
	if (!m)
		return NULL;
	m->nbuckets = 16;
	m->buckets = calloc(m->nbuckets, sizeof(*m->buckets));
	if (!m->buckets) {
		free(m);
		return NULL;
	}
	return m;
}

void smap_free(struct smap *m, void (*free_value)(void *))
{
	if (!m)
		return;
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct smap_entry *e = m->buckets[i];
		while (e) {
			struct smap_entry *next = e->next;
			if (free_value)
				free_value(e->value);
			free(e->key);
			free(e);
			e = next;
		}
	}
	free(m->buckets);
	free(m);
}

static struct smap_entry **smap_find(const struct smap *m, const char *key, uint32_t h)
{
	struct smap_entry **ep = &m->buckets[h & (m->nbuckets - 1)];
	for (; *ep; ep = &(*ep)->next)
		if ((*ep)->hash == h && !strcmp((*ep)->key, key))
			return ep;
	return ep;
}

void *smap_get(const struct smap *m, const char *key)
{
	struct smap_entry **ep = smap_find(m, key, smap_hash(key));
	return *ep ? (*ep)->value : NULL;
}

static void smap_grow(struct smap *m)
{
	size_t n = m->nbuckets * 2;
	struct smap_entry **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* stays correct, only slower */
	for (size_t i = 0; i < m->nbuckets; i++) {
		struct smap_entry *e = m->buckets[i];
		while (e) {
			struct smap_entry *next = e->next;
			e->next = b[e->hash & (n - 1)];
			b[e->hash & (n - 1)] = e;
			e = next;
		}
	}
	free(m->buckets);
	m->buckets = b;
	m->nbuckets = n;
}

void *smap_put(struct smap *m, const char *key, void *value)
{
	uint32_t h = smap_hash(key);
	struct smap_entry **ep = smap_find(m, key, h);
	if (*ep) {
		void *old = (*ep)->value;
		(*ep)->value = value;
		return old;
	}
	struct smap_entry *e = malloc(sizeof(*e));
	if (!e || !(e->key = strdup(key))) {
		free(e);
		errno = ENOMEM;
		return NULL;
	}
	e->value = value;
	e->hash = h;
	e->next = NULL;
	*ep = e;
	if (++m->size > m->nbuckets * 2)
		smap_grow(m);
	return NULL;
}

void *smap_remove(struct smap *m, const char *key)
{
	struct smap_entry **ep = smap_find(m, key, smap_hash(key));
	if (!*ep)
		return NULL;
	struct smap_entry *e = *ep;
	void *v = e->value;
	*ep = e->next;
	free(e->key);
	free(e);
	m->size--;
	return v;
}

size_t smap_size(const struct smap *m)
{
	return m->size;
}

int smap_each(const struct smap *m, int (*fn)(void *ud, const char *key, void *value), void *ud)
{
	for (size_t i = 0; i < m->nbuckets; i++)
		for (struct smap_entry *e = m->buckets[i]; e; e = e->next) {
			int r = fn(ud, e->key, e->value);
			if (r)
				return r;
		}
	return 0;
}
