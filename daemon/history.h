/* The per-sandbox frame history (DESIGN §9, §7 `since`): every frame a
 * sandbox receives is kept, bounded by [history] max_frames and max_age,
 * written to the store in batches by a worker thread. Replays read the store
 * and the batch not yet written, so nothing falls between them. */
#ifndef LABGW_HISTORY_H
#define LABGW_HISTORY_H

#include <jansson.h>
#include <stdint.h>

#include "auth.h"
#include "bus.h"

struct labgwd;
struct store;
struct history;
struct api_error;

struct history *history_new(struct labgwd *d, struct store *st);
/* Start writing batches (every 100 ms). */
void history_start(struct history *h);
/* Write out what is pending and stop. */
void history_stop(struct history *h);
void history_free(struct history *h);

/* Record a message delivered to sandbox `sbx` (a ref is taken). */
/* A deleted sandbox: its rows not yet written are dropped. */
void history_forget(struct history *h, const char *sbx);
void history_record(struct history *h, const char *sbx, struct bus_msg *m);

/* Frames of `sbx` after sequence `since` matching `filter`, oldest first,
 * at most `limit`: cb gets each frame's topic and JSON. Returns the number
 * given, or -1. */
typedef int (*history_cb)(void *ud, uint64_t seq, const char *topic, const char *json);
int history_replay(struct history *h, const char *sbx, uint64_t since, const char *filter,
		   int limit, history_cb cb, void *ud);

/* "lab1-0006612af9696e85" → 0x0006612af9696e85 when the gateway matches;
 * -1 when it is not a frame id of this gateway. */
int history_parse_id(const char *gw, const char *id, uint64_t *seq);

struct history_stats {
	uint64_t recorded, written, dropped, pending;
};
void history_get_stats(const struct history *h, struct history_stats *st);

/* GET /api/v1/sandboxes/{sbx}/frames?since=&topic=&limit= */
int api_frames(struct history *h, const struct principal *who, const char *sbx, const char *since,
	       const char *topic, const char *limit, json_t **result, struct api_error *err);

#endif
