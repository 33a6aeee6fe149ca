/* The frame envelope of DESIGN §5: built once, sealed (id, time, JSON
 * encoding) once, then shared read-only by reference among all subscribers. */
#ifndef LABGW_FRAME_H
#define LABGW_FRAME_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "labgw/plugin.h"

#define FRAME_ID_MAX	  32
#define FRAME_TYPE_MAX	  48
#define FRAME_DEV_MAX	  64
#define FRAME_PAYLOAD_MAX 16384
/* A sealed frame's JSON is at most this long; larger ones are refused. */
#define FRAME_JSON_MAX 65536

struct frame {
	int refcnt;
	bool sealed;
	uint64_t seq;
	uint64_t time_us;
	enum labgw_tech tech;
	char id[FRAME_ID_MAX + 24];
	char gw[FRAME_ID_MAX + 1];
	char radio[FRAME_ID_MAX + 1];
	char type[FRAME_TYPE_MAX];
	char dev[FRAME_DEV_MAX];
	bool has_dev;
	bool claimed;
	bool is_public; /* the lab's own equipment: no pseudonym (plugin ABI 1.5) */
	bool replayed;	/* re-published by a replay (replay.c): "replayed": true */
	json_t *sig;	/* object, created on first use */
	json_t *data;	/* object, created on first use */
	unsigned char *payload;
	size_t payload_len;
	char *json; /* the encoding, once sealed */
	size_t json_len;
	void *origin; /* the radio instance that built it, for the plugin host */
};

/* `radio` may be "" (gateway-level frames); tech may be LABGW_TECH_NONE. */
struct frame *frame_new(const char *gw, const char *radio, enum labgw_tech tech, const char *type);
struct frame *frame_ref(struct frame *f);
void frame_unref(struct frame *f);

/* Setters: only before frame_seal; 0 or -EINVAL/-ENOMEM/-E2BIG. */
int frame_set_dev(struct frame *f, const char *dev_id, bool claimed);
int frame_set_payload(struct frame *f, const void *data, size_t len);
/* Set `path` ("a.b.c", each part 1..63 of [A-Za-z0-9_-]) in sig or data to
 * `v`, which is stolen (also on failure). A NULL `v` (what jansson returns
 * for a NaN or a string that is not UTF-8) gives -EINVAL. */
int frame_set(struct frame *f, enum labgw_section s, const char *path, json_t *v);
/* Append `v` (stolen) to the array at `path`, created when absent. */
int frame_append(struct frame *f, enum labgw_section s, const char *path, json_t *v);
/* The object of a section (NULL if nothing was set). Borrowed. */
json_t *frame_section(const struct frame *f, enum labgw_section s);

/* Give the frame its sequence number and time, and encode it. After this the
 * frame is immutable. -E2BIG if the encoding exceeds FRAME_JSON_MAX. */
int frame_seal(struct frame *f, uint64_t seq, uint64_t time_us);

const char *frame_tech_name(enum labgw_tech tech);
/* "ble" → LABGW_TECH_BLE; LABGW_TECH_NONE for anything else */
enum labgw_tech frame_tech_parse(const char *s);
/* a dev id: 1..63 printable ASCII without spaces ("+4917..." is fine: the
 * router escapes it for the topic level, see topic_escape_level) */
bool frame_dev_valid(const char *s);
bool frame_type_valid(const char *s);

#endif
