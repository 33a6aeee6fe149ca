/* Small pure helpers shared by the daemon's subsystems. No loop, no globals. */
#ifndef LABGW_UTIL_H
#define LABGW_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base64.h"

#define ARRAY_SIZE(a)			(sizeof(a) / sizeof((a)[0]))
#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

/* TLS 1.2 cipher suites of every TLS endpoint (HTTPS, the spawned broker's
 * listeners, the bridge): forward-secret (ECDHE) AEAD only; TLS 1.3 has
 * nothing else. */
#define LABGW_TLS12_CIPHERS                                                                        \
	"ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-"        \
	"SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-"     \
	"POLY1305"

/* A growable byte buffer, always NUL-terminated. On allocation failure the
 * buffer is marked failed and further appends are ignored. */
struct strbuf {
	char *buf;
	size_t len;
	size_t cap;
	bool failed;
};

void strbuf_init(struct strbuf *sb, size_t hint);
void strbuf_release(struct strbuf *sb);
/* Make room for `extra` more bytes (plus the NUL); false if that failed. */
bool strbuf_reserve(struct strbuf *sb, size_t extra);
void strbuf_append(struct strbuf *sb, const void *data, size_t len);
void strbuf_puts(struct strbuf *sb, const char *s);
void strbuf_printf(struct strbuf *sb, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Append a decimal integer. */
void strbuf_int(struct strbuf *sb, long long v);
/* Append `s` as a JSON string literal, quotes included (UTF-8 passes as is;
 * quote, backslash and control characters are escaped). */
void strbuf_json_str(struct strbuf *sb, const char *s);
void strbuf_json_strn(struct strbuf *sb, const char *s, size_t len);
/* Hand the buffer over to the caller (NULL if it failed); sb is reset. */
char *strbuf_steal(struct strbuf *sb, size_t *len);

void hex_encode(const void *data, size_t n, char *out);

/* Parsers of configuration values; return 0 or -EINVAL/-ERANGE. */
int parse_int(const char *s, long long min, long long max, long long *out);
int parse_bool(const char *s, bool *out);
/* "250ms", "10s", "5m", "24h", "2d"; a bare number means seconds. */
int parse_duration_ms(const char *s, uint64_t *out);
/* "64k", "1M", "512": bytes with optional k/K/M/G binary suffix. */
int parse_size(const char *s, uint64_t *out);
/* "host:port", "[v6]:port" or ":port"; port 0 allowed (ephemeral). The host
 * part is copied into host (empty for ":port"). */
int parse_host_port(const char *s, char *host, size_t hostlen, int *port);

/* An identifier as used for gateway, radio and sandbox ids: [a-z0-9_-],
 * 1..maxlen chars, starting with a letter or digit. */
bool ident_valid(const char *s, size_t maxlen);

/* Wall clock in microseconds since the epoch. */
uint64_t time_now_us(void);
/* RFC 3339 UTC with microseconds: "2026-11-26T08:40:01.123456Z" (27 chars). */
void time_format_us(uint64_t us, char out[32]);

/* RFC 3339 ("2026-11-26T08:40:01Z", fraction and +hh:mm offsets allowed)
 * → µs since the epoch; -EINVAL otherwise. */
int time_parse_rfc3339(const char *s, int64_t *us);

/* A string-keyed hash map of pointers (keys copied; values borrowed). */
struct smap;
struct smap *smap_new(void);
/* Frees the map; free_value (may be NULL) is called for every value. */
void smap_free(struct smap *m, void (*free_value)(void *));
void *smap_get(const struct smap *m, const char *key);
/* Insert or replace; returns the previous value (or NULL). NULL and errno
 * ENOMEM on failure can be told apart with smap_get. */
void *smap_put(struct smap *m, const char *key, void *value);
void *smap_remove(struct smap *m, const char *key);
size_t smap_size(const struct smap *m);
/* Visit every entry; the callback must not change the map. Non-zero stops
 * and is returned. */
int smap_each(const struct smap *m, int (*fn)(void *ud, const char *key, void *value), void *ud);

#endif
