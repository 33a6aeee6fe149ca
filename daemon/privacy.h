/* Pseudonyms and the pseudonymised view of frames (DESIGN §2, §5).
 *
 * A sandbox with the `observe` right sees frames of devices nobody claimed,
 * but never their identifiers: dev.id becomes "p-" + 16 hex of
 * HMAC-SHA256(K_sbx, tech ":" dev), where K_sbx = HMAC(K_epoch, sbx) and
 * K_epoch = HMAC(master, "epoch" epoch-number), the epoch advancing every
 * [privacy] pseudonym_rotation. The master secret is random, made once and
 * kept in the store. So one sandbox can follow a device within an epoch, two
 * sandboxes cannot join their views, and nobody can go back to the id.
 *
 * The view keeps `sig`, drops `payload` (unless [privacy] observe_payload
 * names the tech) and keeps only fields of `data` known to carry no
 * identifier of a device or person and no ever-growing counter that would
 * link a device across rotations (a list per frame type; frame types nobody
 * listed lose their data). */
#ifndef LABGW_PRIVACY_H
#define LABGW_PRIVACY_H

#include <stdint.h>

#include "frame.h"

struct labgwd;
struct store;
struct privacy;

#define PSEUDONYM_LEN 18 /* "p-" and 16 hex */

struct privacy *privacy_new(struct labgwd *d, struct store *st);
void privacy_free(struct privacy *p);

void privacy_pseudonym(struct privacy *p, const char *sbx, uint32_t tech, const char *dev,
		       char out[PSEUDONYM_LEN + 1]);
/* A sealed frame, the view of `f` for sandbox `sbx` (same id and time), or
 * NULL when out of memory. */
struct frame *privacy_view(struct privacy *p, const struct frame *f, const char *sbx);

/* The view's data for a frame type (pure; for tests): a new object with the
 * fields of `data` that may be shown. */
json_t *privacy_filter_data(const char *type, const json_t *data);

#endif
