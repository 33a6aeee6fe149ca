/* The one gate commands pass on their way back to the radios (DESIGN §8):
 * every surface (WebSocket, MQTT, later REST) submits here. It checks the
 * topic and body, hands the command to the radio, remembers it until it ends,
 * and publishes its tx.status frames on
 * labgw/v1/sbx/{sbx}/tx/{tech}/{gw}/{radio}/status.
 *
 * Foundation stage: no rights, leases or quotas yet (sandbox issue). */
#ifndef LABGW_POLICY_H
#define LABGW_POLICY_H

#include <jansson.h>

#include "auth.h"
#include "labgw/plugin.h"

struct labgwd;
struct policy;

#define POLICY_MAX_PENDING 4096

struct policy_result {
	const char *code; /* DESIGN §7 error code, NULL when accepted */
	char message[256];
	long long retry_after_ms; /* < 0: none */
	char frees_at[32];	  /* LEASE_REQUIRED: when the holder's lease ends, or "" */
	json_t *result;		  /* on success, the answer body (caller owns) */
};

struct policy *policy_new(struct labgwd *d);
void policy_free(struct policy *p);

/* A client publishes `payload` to `topic`. 0 when accepted, else -1 with
 * res->code and res->message set. */
int policy_submit(struct policy *p, const struct principal *who, const char *topic,
		  const json_t *payload, struct policy_result *res);

/* A staff-only operation on a radio (body {"op", ...}); audited. Progress
 * goes to labgw/v1/adm/{gw}/ops/{radio}/status. */
int policy_radio_op(struct policy *p, const struct principal *who, const char *radio,
		    const json_t *body, struct policy_result *res);

/* A radio reports progress of a command (plugin host op). */
void policy_tx_status(struct policy *p, struct labgw_radio *r, const char *cmd_id,
		      enum labgw_tx_status st, const char *reason);
/* The same with a result object (borrowed), published as "result". */
void policy_tx_result(struct policy *p, struct labgw_radio *r, const char *cmd_id,
		      enum labgw_tx_status st, const char *reason, const json_t *result);

/* A radio went away: its unfinished commands fail with "radio removed". */
void policy_radio_gone(struct policy *p, const char *radio);
/* A lease of `resource` ("radio:kind") held by `sbx` ended: the radio is
 * told (op "lease.ended") so that what the lease allowed stops. */
void policy_lease_ended(struct policy *p, const char *sbx, const char *resource);
/* A claim ended (released, or with its sandbox): radios of the tech are told
 * (op "claim.ended") so that sessions with the device close. */
void policy_claim_ended(struct policy *p, const char *sbx, uint32_t tech, const char *dev);

/* Commands accepted and not yet finished. */
unsigned policy_pending(const struct policy *p);

/* Topic levels of a transmit request, for the front-ends' subscriptions:
 * labgw/v1/sbx/+/tx/+/{gw}/+/req and labgw/v1/sbx/+/req/+ */
#define POLICY_TX_FILTER_FMT "labgw/v1/sbx/+/tx/+/%s/+/req"
#define POLICY_REQ_FILTER    "labgw/v1/sbx/+/req/+"

#endif
