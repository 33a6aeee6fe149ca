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
	va_start(ap, fmt);
	int n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !strbuf_reserve(sb, (size_t)n))
		return;
	va_start(ap, fmt);
	vsnprintf(sb->buf + sb->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	sb->len += (size_t)n;
}

void strbuf_json_str(struct strbuf *sb, const char *s)
{
	static const char hex[] = "0123456789abcdef";
	strbuf_append(sb, "\"", 1);
	const char *run = s;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
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
	strbuf_puts(sb, run);
	strbuf_append(sb, "\"", 1);
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

size_t base64_encoded_len(size_t n)
{
	return (n + 2) / 3 * 4;
}

void base64_encode(const void *data, size_t n, char *out)
{
	static const char tbl[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = data;
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
		*out++ = tbl[v >> 18];
		*out++ = tbl[(v >> 12) & 63];
		*out++ = tbl[(v >> 6) & 63];
		*out++ = tbl[v & 63];
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)p[i] << 16;
		*out++ = tbl[v >> 18];
		*out++ = tbl[(v >> 12) & 63];
		*out++ = '=';
		*out++ = '=';
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
		*out++ = tbl[v >> 18];
		*out++ = tbl[(v >> 12) & 63];
		*out++ = tbl[(v >> 6) & 63];
		*out++ = '=';
	}
	*out = '\0';
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
