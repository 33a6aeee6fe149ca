/* Capture and replay of a sandbox's frames (issue 12; docs/api.md, Capture
 * and replay): the download of what a sandbox received during one of its
 * leases, as JSON Lines or pcapng, and the re-publication of a capture to
 * the sandbox's own topics, marked "replayed": true, at the original pace or
 * faster, one replay per sandbox at a time, cancellable. */
#ifndef LABGW_REPLAY_H
#define LABGW_REPLAY_H

#include <jansson.h>
#include <stddef.h>

#include "auth.h"

struct labgwd;
struct api_error;
struct replay;

/* Bounds of one capture download */
#define CAPTURE_BYTES_MAX (8 * 1024 * 1024)

struct capture_out {
	char *body; /* malloc'd, len bytes */
	size_t len;
	const char *content_type;
	char filename[96];
	bool truncated; /* CAPTURE_FRAMES_MAX or CAPTURE_BYTES_MAX reached */
	unsigned frames;
};

/* GET /api/v1/sandboxes/{sbx}/leases/{lease_id}/capture?format=jsonl|pcapng */
int api_capture(struct labgwd *d, const struct principal *who, const char *sbx,
		const char *lease_id, const char *format, struct capture_out *out,
		struct api_error *err);

struct replay *replay_new(struct labgwd *d);
/* A deleted sandbox: its replay ends at once, without an event. */
void replay_forget(struct replay *r, const char *sbx);
/* Cancel every running replay (no more frames are published). */
void replay_stop(struct replay *r);
void replay_free(struct replay *r);

/* POST /api/v1/sandboxes/{sbx}/replay {"lease"|"jsonl", "speed"?} */
int api_replay_start(struct replay *r, const struct principal *who, const char *sbx,
		     const json_t *body, json_t **result, struct api_error *err);
/* DELETE /api/v1/sandboxes/{sbx}/replay */
int api_replay_cancel(struct replay *r, const struct principal *who, const char *sbx,
		      json_t **result, struct api_error *err);

#endif
