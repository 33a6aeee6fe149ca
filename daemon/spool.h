/* The MQTT bridge's on-disk spool (issue 11): sandbox frames published at
 * QoS 1 are written here before they are handed to the broker and leave
 * only when the broker acknowledged them (PUBACK), so a broker that is down
 * or restarting loses none of them. It is a SQLite database of its own
 * ({state_dir}/mqtt-spool.db, WAL, synchronous = NORMAL: it survives a
 * kill -9 of labgwd, not a power cut in the last moments) holding at most
 * `max` messages; when full, the oldest message leaves and is counted as
 * dropped. Pure storage: no loop, no MQTT. */
#ifndef LABGW_SPOOL_H
#define LABGW_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct spool;

struct spool_stats {
	uint64_t max;	  /* the bound, in messages */
	uint64_t count;	  /* messages in the spool now */
	uint64_t written; /* messages written since start */
	uint64_t acked;	  /* messages the broker acknowledged */
	uint64_t dropped; /* oldest messages dropped because the spool was full */
	uint64_t errors;  /* failed writes (disk full, ...): those messages are lost */
};

/* Open (create) the spool at `path` holding at most `max` messages. NULL on
 * failure (logged). */
struct spool *spool_open(const char *path, uint64_t max);
void spool_close(struct spool *s);

/* Group the writes of one loop turn in one transaction. */
void spool_begin(struct spool *s);
void spool_commit(struct spool *s);

/* Append one message; 0 or a negative errno (-ENOSPC, -EIO). */
int spool_append(struct spool *s, const char *topic, const void *payload, size_t len);

/* The oldest message with a sequence number above `after`: 1 and its seq,
 * topic and payload (malloc'ed, the caller frees them), 0 when none, or a
 * negative errno. */
int spool_next(struct spool *s, uint64_t after, uint64_t *seq, char **topic, void **payload,
	       size_t *len);

/* The broker has the message `seq`: forget it. */
void spool_ack(struct spool *s, uint64_t seq);

void spool_get_stats(const struct spool *s, struct spool_stats *st);

#endif
