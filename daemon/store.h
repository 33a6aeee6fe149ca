/* Persistent state in SQLite (DESIGN §9): {state_dir}/labgw.db in WAL mode,
 * schema versioned by migrations. Every function here runs on the loop
 * thread and is synchronous: a write that returns 0 is durable
 * (synchronous=FULL), so a kill -9 right after loses none of it.
 *
 * The frame history is the exception: rows are handed over in batches with
 * store_history_write(), which a worker thread runs on its own connection
 * (synchronous=NORMAL: a power cut may lose the last batch, a kill -9 none).
 *
 * Errors: 0 or a negative errno; -ENOENT not found, -EEXIST already there,
 * -EBUSY a conflicting row (lease overlap, claimed device), -ENOSPC disk
 * full, -EIO any other SQLite failure (logged with SQLite's message).
 *
 * List callbacks run while the list's statement is open: they may call other
 * store functions, but not the list function that calls them (-EDEADLK). */
#ifndef LABGW_STORE_H
#define LABGW_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_ID_MAX	  32   /* sandbox and key ids: ident_valid(..., 32) */
#define STORE_NAME_MAX	  128  /* sandbox display names */
#define STORE_DEV_MAX	  63   /* device ids (frame_dev_valid) */
#define STORE_RES_MAX	  64   /* lease resources "radio:kind" */
#define STORE_TEXT_MAX	  256  /* audit details */
#define STORE_SETTING_MAX 4096 /* setting values, NUL not counted */

struct store;

/* Open (creating if missing, mode 0600) and migrate the database. -ENOTSUP
 * if it was written by a newer labgwd (a schema version this code does not
 * know). */
int store_open(const char *path, struct store **out);
void store_close(struct store *st);
/* The schema version after migrations. */
int store_schema_version(struct store *st);

/* ---- settings: small named values (emergency stop, secrets, ...) ---- */
/* value: NUL-terminated, at most STORE_SETTING_MAX bytes (-E2BIG). -ENOENT
 * when unset, -ENOBUFS when it does not fit in cap. */
int store_setting_get(struct store *st, const char *name, char *value, size_t cap);
int store_setting_set(struct store *st, const char *name, const char *value);
int store_setting_delete(struct store *st, const char *name);

/* ---- sandboxes ---- */
struct store_quotas {
	/* 0 means "no limit" */
	int64_t requests_per_s;	    /* client requests (ops, REST calls) */
	int64_t frames_per_s;	    /* frames delivered to the sandbox */
	int64_t tx_per_day;	    /* transmits accepted per UTC day */
	int64_t airtime_ms_per_day; /* LoRa airtime per UTC day */
	int64_t sms_per_day;	    /* SMS sent per UTC day */
};

struct store_sandbox {
	char id[STORE_ID_MAX + 1];
	char name[STORE_NAME_MAX + 1];
	int64_t created_us;
	struct store_quotas quotas;
};

int store_sandbox_create(struct store *st, const struct store_sandbox *s); /* -EEXIST */
int store_sandbox_get(struct store *st, const char *id, struct store_sandbox *out);
int store_sandbox_update(struct store *st, const struct store_sandbox *s); /* name, quotas */
/* Removes the sandbox and everything of it: keys, claims, leases, usage,
 * history (audit rows stay). */
int store_sandbox_delete(struct store *st, const char *id);
/* cb returns non-zero to stop early; that value is returned. */
typedef int (*store_sandbox_cb)(void *ud, const struct store_sandbox *s);
int store_sandbox_list(struct store *st, store_sandbox_cb cb, void *ud);

/* ---- keys ---- */
struct store_key {
	char id[STORE_ID_MAX + 1];
	char sbx[STORE_ID_MAX + 1]; /* "" for staff and kiosk keys */
	uint32_t rights;	    /* RIGHT_* of sandbox.h */
	uint32_t tx_techs;	    /* OR of enum labgw_tech: the tx:<tech> rights */
	unsigned char hash[32];	    /* SHA-256 of the secret */
	int64_t created_us;
	int64_t expires_us; /* 0: never */
	int64_t revoked_us; /* 0: not revoked */
	char note[STORE_NAME_MAX + 1];
};

int store_key_create(struct store *st, const struct store_key *k); /* -EEXIST */
int store_key_get(struct store *st, const char *id, struct store_key *out);
int store_key_revoke(struct store *st, const char *id, int64_t when_us);
typedef int (*store_key_cb)(void *ud, const struct store_key *k);
/* sbx NULL: every key; "" staff and kiosk keys only */
int store_key_list(struct store *st, const char *sbx, store_key_cb cb, void *ud);

/* ---- claims ---- */
struct store_claim {
	char sbx[STORE_ID_MAX + 1];
	uint32_t tech; /* one enum labgw_tech */
	char dev[STORE_DEV_MAX + 1];
	int64_t created_us;
	/* LoRaWAN ABP session keys; never returned by any API once stored */
	bool has_session_keys;
	unsigned char nwkskey[16];
	unsigned char appskey[16];
	/* BLE identity resolving key (schema 2); a secret like the above */
	bool has_irk;
	unsigned char irk[16];
};

/* -EBUSY when (tech, dev) is claimed by any sandbox */
int store_claim_create(struct store *st, const struct store_claim *c);
int store_claim_delete(struct store *st, const char *sbx, uint32_t tech, const char *dev);
typedef int (*store_claim_cb)(void *ud, const struct store_claim *c);
/* sbx NULL: every claim */
int store_claim_list(struct store *st, const char *sbx, store_claim_cb cb, void *ud);

/* ---- leases ---- */
struct store_lease {
	int64_t id; /* assigned by store_lease_create */
	char sbx[STORE_ID_MAX + 1];
	char resource[STORE_RES_MAX + 1];
	int64_t start_us, end_us; /* [start, end) */
	int64_t created_us;
};

/* Assigns l->id. -EBUSY when it overlaps a lease of the same resource; then
 * *frees_us is the end of the overlapping lease that ends last. */
int store_lease_create(struct store *st, struct store_lease *l, int64_t *frees_us);
/* -ENOENT if no such lease of this sandbox */
int store_lease_delete(struct store *st, const char *sbx, int64_t id);
/* Shorten a lease to end at `end_us` (ended early; never lengthens); one
 * ended at or before its start is removed. -ENOENT */
int store_lease_end(struct store *st, const char *sbx, int64_t id, int64_t end_us);
typedef int (*store_lease_cb)(void *ud, const struct store_lease *l);
/* sbx and resource may be NULL (any); only leases ending after after_us */
int store_lease_list(struct store *st, const char *sbx, const char *resource, int64_t after_us,
		     store_lease_cb cb, void *ud);

/* ---- daily usage (quotas) ---- */
enum store_usage_kind {
	USAGE_TX = 1,
	USAGE_AIRTIME_MS = 2,
	USAGE_SMS = 3,
};
/* day: days since the epoch (UTC). Adds `amount`, returns the new total in
 * *total (may be NULL). store_usage_get gives 0 for nothing added yet. */
int store_usage_add(struct store *st, const char *sbx, int64_t day, enum store_usage_kind kind,
		    int64_t amount, int64_t *total);
int store_usage_get(struct store *st, const char *sbx, int64_t day, enum store_usage_kind kind,
		    int64_t *total);

/* ---- audit ---- */
struct store_audit {
	int64_t id; /* assigned */
	int64_t time_us;
	char key_id[STORE_ID_MAX + 1];
	char sbx[STORE_ID_MAX + 1];
	char action[48];		/* "tx", "key.create", "claim.delete", "stop.on", ... */
	char target[STORE_RES_MAX + 1]; /* radio, resource, key id, device, ... */
	char result[32];		/* "ok" or an error code */
	int64_t size;			/* bytes of a transmit, else 0 */
	char detail[STORE_TEXT_MAX + 1];
};

int store_audit_append(struct store *st, struct store_audit *a);
typedef int (*store_audit_cb)(void *ud, const struct store_audit *a);
/* sbx NULL: all; rows with id > since_id, oldest first, at most limit */
int store_audit_list(struct store *st, const char *sbx, int64_t since_id, int limit,
		     store_audit_cb cb, void *ud);

/* ---- frame history ---- */
struct store_history_row {
	char sbx[STORE_ID_MAX + 1];
	uint64_t seq; /* the frame's sequence number (its id's hex part) */
	int64_t time_us;
	char *topic; /* owned by the row */
	char *json;  /* the frame as the sandbox saw it; owned */
};

/* Write rows in one transaction on the history connection; safe to call
 * from a worker thread (it does not touch anything else of st). Then trim
 * every sandbox in the batch to at most max_rows rows and to rows newer
 * than min_time_us (time_us >= min_time_us); 0 means no such limit. Rows of
 * a sandbox deleted meanwhile are dropped; seq must be <= INT64_MAX
 * (-ERANGE). */
int store_history_write(struct store *st, const struct store_history_row *rows, size_t n,
			int64_t max_rows, int64_t min_time_us);
typedef int (*store_history_cb)(void *ud, uint64_t seq, int64_t time_us, const char *topic,
				const char *json);
/* Rows of sbx with seq > since, oldest first, at most limit; topic_filter
 * (MQTT syntax) or NULL for all. Runs on the loop thread. */
int store_history_query(struct store *st, const char *sbx, uint64_t since, const char *topic_filter,
			int limit, store_history_cb cb, void *ud);

#endif
