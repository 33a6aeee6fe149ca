/* Sandboxes (DESIGN §2, §7, §8): the isolated workspaces of developer teams,
 * their keys and rights, claimed devices, leases of transmit resources,
 * quotas, the emergency stop and the audit log. State lives in the store;
 * this module keeps it cached for the hot paths (key lookup, claim lookup per
 * frame, lease check per transmit) and is the one place that changes it.
 *
 * Every operation of the API takes the principal asking and answers with a
 * JSON result or an api_error whose code is one of DESIGN §7, so that REST,
 * the WebSocket `req/{op}` topics and MQTT share one implementation. */
#ifndef LABGW_SANDBOX_H
#define LABGW_SANDBOX_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "store.h"

struct labgwd;
struct sandboxes;

/* rights of a key; the tx:<tech> rights are a separate mask of techs */
#define RIGHT_RX      (1u << 0) /* frames of the sandbox's claimed devices */
#define RIGHT_OBSERVE (1u << 1) /* pseudonymised frames of unclaimed devices */
#define RIGHT_CLAIM   (1u << 2)
#define RIGHT_LEASE   (1u << 3)
#define RIGHT_ADMIN   (1u << 4) /* staff: everything */
#define RIGHT_KIOSK   (1u << 5) /* public aggregates only */

struct api_error {
	const char *code; /* BAD_REQUEST, UNAUTHENTICATED, FORBIDDEN, NOT_FOUND, ... */
	int http_status;
	char message[256];
	long long retry_after_ms; /* < 0: none */
	char frees_at[32];	  /* CONFLICT of a lease: RFC 3339 time it frees, or "" */
};

/* Fill err; returns -1 (convenient as `return api_fail(...)`). */
int api_fail(struct api_error *err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int api_status_of(const char *code);

/* "rx", "observe", "tx:ble", ... → bits; -1 and err on an unknown right */
int rights_parse(const json_t *list, uint32_t *rights, uint32_t *tx_techs, struct api_error *err);
json_t *rights_to_json(uint32_t rights, uint32_t tx_techs);

struct sandboxes *sandboxes_new(struct labgwd *d, struct store *st);
/* Load caches; create the first staff key ({state_dir}/admin.key, 0600) when
 * there is none. */
int sandboxes_start(struct sandboxes *sb);
void sandboxes_stop(struct sandboxes *sb);
void sandboxes_free(struct sandboxes *sb);

/* ---- authentication ---- */

/* Check "<key_id>.<secret>" from peer `addr` (for slowing down repeated
 * failures). 0 and *who filled; -1 and err (UNAUTHENTICATED, or
 * QUOTA_EXCEEDED with retry_after_ms while `addr` is being slowed down). */
int sandboxes_auth(struct sandboxes *sb, const char *key, const char *addr, struct principal *who,
		   struct api_error *err);
/* Is the key behind `who` still valid (not revoked, not expired)? */
/* Failed authentications since start (unknown or malformed keys). */
uint64_t sandboxes_auth_failures(const struct sandboxes *sb);
bool sandboxes_key_valid(struct sandboxes *sb, const char *key_id);

/* Keys that stop being valid (revoked, expired, their sandbox deleted) are
 * announced here, at once, so that every surface drops them. */
typedef void (*sandboxes_key_gone_fn)(void *ud, const char *key_id);
void sandboxes_on_key_gone(struct sandboxes *sb, sandboxes_key_gone_fn fn, void *ud);
/* Keys created (for the broker's client list); key is the full key. */
typedef void (*sandboxes_key_new_fn)(void *ud, const struct store_key *k, const char *key);
void sandboxes_on_key_new(struct sandboxes *sb, sandboxes_key_new_fn fn, void *ud);

/* ---- topic access (DESIGN §6) ---- */

/* May `who` subscribe to `filter`? false and err FORBIDDEN otherwise. */
bool sandboxes_may_read(struct sandboxes *sb, const struct principal *who, const char *filter,
			struct api_error *err);

/* May a session of `who`, subscribed within its rights, be given a message
 * on `topic`? (A key without RIGHT_OBSERVE gets nothing under .../obs/,
 * one without RIGHT_RX nothing under .../rx/.) */
bool sandboxes_may_receive(const struct principal *who, const char *topic);
/* Publish an event frame ({"event": type} plus data's members, which it
 * takes) on labgw/v1/sbx/{sbx}/event and keep it in the sandbox's
 * history. */
void sandboxes_emit_event(struct sandboxes *sb, const char *sbx, const char *type, json_t *data);

/* ---- routing lookups, per frame ---- */

/* The sandbox that claimed (tech, dev), or NULL. */
const char *sandboxes_claim_owner(struct sandboxes *sb, uint32_t tech, const char *dev);
/* LoRaWAN session keys of a claimed device (for the radio module). */
/* The BLE claims made with an identity resolving key: fn(ud, identity
 * address, IRK) for each (NULL fn: none). Returns a number that changes
 * whenever any claim is made or removed, so that resolutions can be cached
 * until it does. IRKs are secrets. */
typedef void (*sandboxes_irk_fn)(void *ud, const char *dev, const unsigned char irk[16]);
uint64_t sandboxes_ble_irks(struct sandboxes *sb, sandboxes_irk_fn fn, void *ud);
bool sandboxes_claim_keys(struct sandboxes *sb, const char *dev_addr, unsigned char nwkskey[16],
			  unsigned char appskey[16]);
/* Iterate sandboxes that have at least one valid key with RIGHT_OBSERVE. */
typedef void (*sandboxes_each_fn)(void *ud, const char *sbx);
void sandboxes_each_observer(struct sandboxes *sb, sandboxes_each_fn fn, void *ud);

/* ---- quotas ---- */

/* Take one request token of the sandbox (client ops, REST calls).
 * false with err QUOTA_EXCEEDED and retry_after_ms when out of tokens. */
bool sandboxes_take_request(struct sandboxes *sb, const char *sbx, struct api_error *err);
/* Take one delivered-frame token; false drops the frame for that sandbox. */
bool sandboxes_take_frame(struct sandboxes *sb, const char *sbx);

/* ---- the policy gate's checks for a transmit (DESIGN §8) ---- */

struct tx_cost {
	int64_t airtime_ms; /* LoRa airtime, 0 elsewhere */
	bool sms;
};

/* The resource a transmit needs: "{radio}:{kind}" with kind tx (lorawan),
 * adv or gatt (ble), sms (cellular), scan (wlan). */
void sandboxes_tx_resource(uint32_t tech, const char *radio, const json_t *body, char *out,
			   size_t outlen);
/* Right, emergency stop, active lease, quota; 0 or -1 with err. */
/* End (µs since the epoch) of the lease of `resource` active for sbx now,
 * or 0. */
int64_t sandboxes_lease_end(struct sandboxes *sb, const char *sbx, const char *resource);
int sandboxes_tx_check(struct sandboxes *sb, const struct principal *who, const char *sbx,
		       uint32_t tech, const char *resource, const struct tx_cost *cost,
		       struct api_error *err);
/* Count an accepted transmit against the daily budgets. */
void sandboxes_tx_charge(struct sandboxes *sb, const char *sbx, const struct tx_cost *cost);
bool sandboxes_stopped(struct sandboxes *sb);

/* Append to the audit log (and publish on labgw/v1/adm/{gw}/audit). */
void sandboxes_audit(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const char *action, const char *target, const char *result, int64_t size,
		     const char *detail);

/* ---- the API (REST paths of DESIGN §7; the same ops over req/{op}) ----
 * Each returns 0 with *result set (caller owns), or -1 with err. */

int api_gateway(struct sandboxes *sb, const struct principal *who, json_t **result,
		struct api_error *err);
int api_radio_get(struct sandboxes *sb, const struct principal *who, const char *radio,
		  json_t **result, struct api_error *err);

int api_sandbox_create(struct sandboxes *sb, const struct principal *who, const json_t *body,
		       json_t **result, struct api_error *err);
int api_sandbox_list(struct sandboxes *sb, const struct principal *who, json_t **result,
		     struct api_error *err);
int api_sandbox_get(struct sandboxes *sb, const struct principal *who, const char *sbx,
		    json_t **result, struct api_error *err);
int api_sandbox_update(struct sandboxes *sb, const struct principal *who, const char *sbx,
		       const json_t *body, json_t **result, struct api_error *err);
int api_sandbox_delete(struct sandboxes *sb, const struct principal *who, const char *sbx,
		       json_t **result, struct api_error *err);

/* sbx NULL: staff or kiosk key (POST /api/v1/keys) */
int api_key_create(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const json_t *body, json_t **result, struct api_error *err);
int api_key_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		 json_t **result, struct api_error *err);
int api_key_revoke(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const char *key_id, json_t **result, struct api_error *err);

int api_claim_create(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const json_t *body, json_t **result, struct api_error *err);
int api_claim_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   json_t **result, struct api_error *err);
int api_claim_delete(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const char *tech, const char *dev, json_t **result, struct api_error *err);

int api_lease_create(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const json_t *body, json_t **result, struct api_error *err);
int api_lease_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   json_t **result, struct api_error *err);
int api_lease_delete(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const char *lease_id, json_t **result, struct api_error *err);

int api_audit_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const char *since, const char *limit, json_t **result, struct api_error *err);
/* on: PUT /api/v1/stop; off: DELETE */
int api_stop(struct sandboxes *sb, const struct principal *who, bool on, json_t **result,
	     struct api_error *err);

/* A request op published to labgw/v1/sbx/{sbx}/req/{op}: claim, unclaim,
 * claims, lease, unlease, leases, keys, sandbox. */
int api_request_op(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const char *op, const json_t *body, json_t **result, struct api_error *err);

#endif
