#include "policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "frame.h"
#include "history.h"
#include "log.h"
#include "sandbox.h"
#include "store.h"
#include "topic.h"
#include "util.h"

/* a command between accept and its last status */
struct pending {
	char id[40];
	char sbx[33];
	char radio[33];
	enum labgw_tech tech;
	uint64_t created_ms;
	/* statuses a module reports from inside command(): published after
	 * "queued", once command() returned */
	bool submitting;
	unsigned ndeferred;
	enum labgw_tx_status deferred[3];
	char deferred_reason[3][128];
	json_t *deferred_result[3];
	struct pending *next;
};

struct policy {
	struct labgwd *d;
	struct pending *pending; /* newest first */
	unsigned npending;
	uint64_t next_id;
};

static void pending_free(struct pending *c)
{
	for (unsigned i = 0; i < c->ndeferred; i++)
		json_decref(c->deferred_result[i]);
	free(c);
}

struct policy *policy_new(struct labgwd *d)
{
	struct policy *p = calloc(1, sizeof(*p));
	if (p)
		p->d = d;
	return p;
}

void policy_free(struct policy *p)
{
	if (!p)
		return;
	while (p->pending) {
		struct pending *c = p->pending;
		p->pending = c->next;
		pending_free(c);
	}
	free(p);
}

unsigned policy_pending(const struct policy *p)
{
	return p->npending;
}

static int refuse(struct policy_result *res, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int refuse(struct policy_result *res, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(res->message, sizeof(res->message), fmt, ap);
	va_end(ap);
	res->code = code;
	return -1;
}

static void publish_status(struct policy *p, const struct pending *c, enum labgw_tx_status st,
			   const char *reason, const json_t *result)
{
	static const char *const names[] = {[LABGW_TX_QUEUED] = "queued",
					    [LABGW_TX_SENT] = "sent",
					    [LABGW_TX_ACKED] = "acked",
					    [LABGW_TX_FAILED] = "failed"};
	struct labgwd *d = p->d;
	struct frame *f = frame_new(d->cfg->gw_id, c->radio, c->tech, "tx.status");
	if (!f)
		return;
	frame_set(f, LABGW_DATA, "req", json_string(c->id));
	frame_set(f, LABGW_DATA, "status", json_string(names[st]));
	if (reason) {
		json_t *r = json_string(reason);
		frame_set(f, LABGW_DATA, "reason", r ? r : json_string("(not UTF-8)"));
	}
	if (result)
		frame_set(f, LABGW_DATA, "result", json_deep_copy(result));
	if (frame_seal(f, labgwd_next_seq(d), time_now_us()) == 0) {
		char topic[256];
		if (!c->sbx[0]) {
			/* a staff operation on a radio: staff's tree, no history */
			snprintf(topic, sizeof(topic), "labgw/v1/adm/%s/ops/%s/status",
				 d->cfg->gw_id, c->radio);
			bus_publish(d->bus, topic, f, false);
			frame_unref(f);
			return;
		}
		snprintf(topic, sizeof(topic), "labgw/v1/sbx/%s/tx/%s/%s/%s/status", c->sbx,
			 frame_tech_name(c->tech), d->cfg->gw_id, c->radio);
		/* a frame of the sandbox's tree: kept for replay like the others */
		struct bus_msg *m = bus_publish_msg(d->bus, topic, f, false);
		if (m) {
			if (d->history)
				history_record(d->history, c->sbx, m);
			bus_msg_unref(m);
		}
	}
	frame_unref(f);
}

static void pending_drop(struct policy *p, struct pending *c)
{
	for (struct pending **cp = &p->pending; *cp; cp = &(*cp)->next) {
		if (*cp == c) {
			*cp = c->next;
			pending_free(c);
			p->npending--;
			return;
		}
	}
}

/* "queued" for an accepted command, then what the module reported from
 * inside command(), in its order; forgets the command if that was final. */
static void publish_queued(struct policy *p, struct pending *c)
{
	bool done = false;

	publish_status(p, c, LABGW_TX_QUEUED, NULL, NULL);
	for (unsigned i = 0; i < c->ndeferred; i++) {
		publish_status(p, c, c->deferred[i],
			       c->deferred_reason[i][0] ? c->deferred_reason[i] : NULL,
			       c->deferred_result[i]);
		done |= c->deferred[i] == LABGW_TX_ACKED || c->deferred[i] == LABGW_TX_FAILED;
	}
	if (done)
		pending_drop(p, c);
}

/* Commands without a final status after this long are failed and forgotten,
 * so that a module that loses one cannot fill the table. */
#define PENDING_EXPIRY_MS (10 * 60 * 1000)

static void expire(struct policy *p)
{
	uint64_t now = uv_now(p->d->loop);
	struct pending **cp = &p->pending;
	while (*cp) {
		struct pending *c = *cp;
		if (now - c->created_ms < PENDING_EXPIRY_MS) {
			cp = &c->next;
			continue;
		}
		publish_status(p, c, LABGW_TX_FAILED, "no final status from the radio in time",
			       NULL);
		*cp = c->next;
		pending_free(c);
		p->npending--;
	}
}

void policy_radio_gone(struct policy *p, const char *radio)
{
	struct pending **cp = &p->pending;
	while (*cp) {
		struct pending *c = *cp;
		if (strcmp(c->radio, radio)) {
			cp = &c->next;
			continue;
		}
		publish_status(p, c, LABGW_TX_FAILED, "radio removed", NULL);
		*cp = c->next;
		pending_free(c);
		p->npending--;
	}
}

/* A sandbox transmits only to devices it claimed: the LoRaWAN DevAddr of a
 * downlink (given, or inside a raw PHYPayload), the BLE device of a GATT
 * write, the number of an SMS. Staff may address any device. */
static int target_check(struct policy *p, const struct principal *who, const char *sbx,
			enum labgw_tech tech, const json_t *body, struct policy_result *res)
{
	if (principal_is_staff(who))
		return 0;
	char dev[40] = "";
	const char *field = NULL;
	switch (tech) {
	case LABGW_TECH_LORAWAN: {
		const char *phy = json_string_value(json_object_get(body, "phy_payload"));
		if (phy) {
			unsigned char buf[16];
			size_t n = strlen(phy);
			/* the first 12 base64 characters hold MHDR and DevAddr */
			if (n < 16 || base64_decode(phy, 16, buf, sizeof(buf)) < 5)
				return refuse(res, "BAD_REQUEST", "\"phy_payload\" is too short");
			unsigned mtype = buf[0] >> 5;
			if (mtype != 3 && mtype != 5)
				return refuse(res, "FORBIDDEN",
					      "a sandbox sends data downlinks only (MType 3 or 5)");
			snprintf(dev, sizeof(dev), "%02x%02x%02x%02x", buf[4], buf[3], buf[2],
				 buf[1]);
		} else {
			field = "dev";
		}
		break;
	}
	case LABGW_TECH_BLE:
		field = "dev"; /* GATT; adverts have no target */
		break;
	case LABGW_TECH_CELLULAR:
		field = "to";
		break;
	case LABGW_TECH_WLAN:
	case LABGW_TECH_NONE:
		break;
	}
	if (field) {
		const char *v = json_string_value(json_object_get(body, field));
		if (!v)
			return 0; /* the module refuses a missing target itself */
		snprintf(dev, sizeof(dev), "%s", v);
		for (char *c = dev; *c; c++)
			if (*c >= 'A' && *c <= 'F')
				*c = (char)(*c - 'A' + 'a');
	}
	if (!dev[0])
		return 0;
	const char *owner = sandboxes_claim_owner(p->d->sandboxes, tech, dev);
	if (!owner || strcmp(owner, sbx))
		return refuse(res, "FORBIDDEN", "sandbox %s has not claimed %s %s", sbx,
			      frame_tech_name(tech), dev);
	return 0;
}

static int refuse_api(struct policy_result *res, const struct api_error *err)
{
	res->code = err->code;
	snprintf(res->message, sizeof(res->message), "%s", err->message);
	res->retry_after_ms = err->retry_after_ms;
	snprintf(res->frees_at, sizeof(res->frees_at), "%s", err->frees_at);
	return -1;
}

/* labgw/v1/sbx/{sbx}/tx/{tech}/{gw}/{radio}/req, through the gate of
 * DESIGN §8: right → lease → quota → regulatory hook → radio. */
static int submit_tx(struct policy *p, const struct principal *who, const char **lv,
		     const json_t *payload, const char *body, size_t body_len, bool dry_run,
		     struct policy_result *res)
{
	struct labgwd *d = p->d;
	const char *sbx = lv[3], *tech_s = lv[5], *gw = lv[6], *radio = lv[7];
	enum labgw_tech tech = frame_tech_parse(tech_s);
	if (tech == LABGW_TECH_NONE)
		return refuse(res, "BAD_REQUEST",
			      "unknown tech '%.16s' (expected ble, wlan, lorawan, cellular)",
			      tech_s);
	if (strcmp(gw, d->cfg->gw_id))
		return refuse(res, "NOT_FOUND", "this is gateway '%s', not '%.32s'", d->cfg->gw_id,
			      gw);
	struct labgw_radio *r = plugin_host_find(d->host, radio);
	if (!r)
		return refuse(res, "NOT_FOUND", "no radio '%.32s' on gateway %s", radio, gw);
	if (!(radio_techs(r) & tech))
		return refuse(res, "BAD_REQUEST", "radio %s does not do %s", radio, tech_s);
	if (target_check(p, who, sbx, tech, payload, res) < 0)
		return -1;

	char id[40];
	snprintf(id, sizeof(id), "tx-%016llx", (unsigned long long)(p->next_id + 1));
	struct labgw_command cmd = {
		.size = sizeof(cmd),
		.id = id,
		.sbx = sbx,
		.op = "tx",
		.body = body,
		.body_len = body_len,
	};
	/* the regulatory hook tells the cost the quota needs; its verdict
	 * counts after the quota's */
	struct labgw_tx_cost cost;
	char regerr[256];
	int reg = plugin_host_tx_check(d->host, r, &cmd, &cost, regerr, sizeof(regerr));
	if (reg == -EINVAL)
		return refuse(res, "BAD_REQUEST", "%s", regerr);
	struct tx_cost tc = {.airtime_ms = (int64_t)cost.airtime_ms,
			     .sms = tech == LABGW_TECH_CELLULAR};
	char resource[STORE_RES_MAX + 1];
	sandboxes_tx_resource(tech, radio, payload, resource, sizeof(resource));
	struct api_error err;
	if (sandboxes_tx_check(d->sandboxes, who, sbx, tech, resource, &tc, &err) < 0)
		return refuse_api(res, &err);
	if (reg == -EAGAIN) {
		refuse(res, "DUTY_CYCLE_EXHAUSTED", "radio %s: %s", radio, regerr);
		res->retry_after_ms = (long long)cost.retry_after_ms;
		return -1;
	}
	if (radio_get_state(r) != RADIO_UP)
		return refuse(res, "RADIO_UNAVAILABLE", "radio %s is %s", radio,
			      radio_state_name(radio_get_state(r)));
	if (dry_run) {
		/* every rule passed: what it would cost, nothing sent or charged */
		res->result = json_pack("{s:b,s:s,s:I}", "dry_run", 1, "verdict", "ok",
					"airtime_ms", (json_int_t)tc.airtime_ms);
		return 0;
	}
	expire(p);
	if (p->npending >= POLICY_MAX_PENDING)
		return refuse(res, "RADIO_UNAVAILABLE", "%u commands in flight; try again later",
			      p->npending);

	struct pending *c = calloc(1, sizeof(*c));
	if (!c)
		return refuse(res, "INTERNAL", "out of memory");
	p->next_id++;
	snprintf(c->id, sizeof(c->id), "%s", id);
	snprintf(c->sbx, sizeof(c->sbx), "%s", sbx);
	snprintf(c->radio, sizeof(c->radio), "%s", radio);
	c->tech = tech;
	c->created_ms = uv_now(d->loop);
	char errbuf[256];
	c->next = p->pending;
	p->pending = c;
	p->npending++;
	c->submitting = true;
	cmd.lease_end_us = sandboxes_lease_end(d->sandboxes, sbx, resource);
	int rc = plugin_host_command(d->host, r, &cmd, errbuf, sizeof(errbuf));
	c->submitting = false;
	if (rc < 0) {
		pending_drop(p, c);
		switch (rc) {
		case -EINVAL:
		case -ENOTSUP:
			return refuse(res, "BAD_REQUEST", "radio %s: %s", radio, errbuf);
		case -EBUSY:
			return refuse(res, "RADIO_UNAVAILABLE", "radio %s is busy: %s", radio,
				      errbuf);
		case -ENODEV:
			return refuse(res, "RADIO_UNAVAILABLE", "%s", errbuf);
		default:
			return refuse(res, "INTERNAL", "radio %s: %s", radio, errbuf);
		}
	}
	sandboxes_tx_charge(d->sandboxes, sbx, &tc);
	log_info("tx %s accepted for sandbox %s on %s (key %s)", c->id, sbx, radio, who->key_id);
	res->result = json_pack("{s:s,s:s}", "tx", c->id, "status", "queued");
	if (tc.airtime_ms)
		json_object_set_new(res->result, "airtime_ms", json_integer(tc.airtime_ms));
	publish_queued(p, c);
	return 0;
}

static int submit(struct policy *p, const struct principal *who, const char **lv, int n,
		  const json_t *payload, struct policy_result *res)
{
	struct labgwd *d = p->d;
	bool sbx_tree =
		n >= 4 && !strcmp(lv[0], "labgw") && !strcmp(lv[1], "v1") && !strcmp(lv[2], "sbx");
	bool is_tx = sbx_tree && n == 9 && !strcmp(lv[4], "tx") && !strcmp(lv[8], "req");
	bool is_req = sbx_tree && n == 6 && !strcmp(lv[4], "req");
	if (!is_tx && !is_req)
		return refuse(
			res, "FORBIDDEN",
			"clients publish only to labgw/v1/sbx/{sbx}/tx/{tech}/{gw}/{radio}/req "
			"or labgw/v1/sbx/{sbx}/req/{op}");
	const char *sbx = lv[3];
	if (!ident_valid(sbx, 32))
		return refuse(res, "BAD_REQUEST", "sandbox id '%.40s' is not valid", sbx);
	if (!principal_is_staff(who) && !who->via_broker && strcmp(who->sbx, sbx)) {
		refuse(res, "FORBIDDEN", "this key may not act for sandbox '%s'", sbx);
		if (is_tx) {
			/* a transmit refused is audited, in the sandbox it aimed at */
			char *text = json_dumps(payload, JSON_COMPACT);
			sandboxes_audit(d->sandboxes, who, sbx, "tx", lv[7], res->code,
					text ? (int64_t)strlen(text) : 0, res->message);
			free(text);
		}
		return -1;
	}
	if (is_req) {
		struct api_error err;
		struct principal w = *who;
		if (w.via_broker) {
			/* the broker's ACL let this client publish here */
			snprintf(w.sbx, sizeof(w.sbx), "%s", sbx);
			w.rights = RIGHT_CLAIM | RIGHT_LEASE;
		}
		if (api_request_op(d->sandboxes, &w, sbx, lv[5], payload, &res->result, &err) < 0)
			return refuse_api(res, &err);
		return 0;
	}
	/* the module sees the request's tech even if the body leaves it out;
	 * "dry_run" is the gate's, not the module's */
	json_t *dr = json_object_get(payload, "dry_run");
	if (dr && !json_is_boolean(dr))
		return refuse(res, "BAD_REQUEST", "\"dry_run\" must be true or false");
	bool dry_run = json_is_true(dr);
	json_t *body = json_deep_copy(payload);
	if (body && !json_object_get(body, "tech"))
		json_object_set_new(body, "tech", json_string(lv[5]));
	if (body)
		json_object_del(body, "dry_run");
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return refuse(res, "INTERNAL", "out of memory");
	size_t len = strlen(text);
	int rc = submit_tx(p, who, lv, payload, text, len, dry_run, res);
	free(text);
	const char *detail =
		rc == 0 ? (dry_run ? "dry run"
				   : json_string_value(json_object_get(res->result, "tx")))
			: res->message;
	sandboxes_audit(d->sandboxes, who, sbx, dry_run ? "tx.dry_run" : "tx", lv[7],
			rc == 0 ? "ok" : res->code, (int64_t)len, detail);
	return rc;
}

int policy_submit(struct policy *p, const struct principal *who, const char *topic,
		  const json_t *payload, struct policy_result *res)
{
	char buf[TOPIC_MAX_LEN + 1];
	const char *lv[TOPIC_MAX_LEVELS];
	memset(res, 0, sizeof(*res));
	res->retry_after_ms = -1;
	if (!topic_name_valid(topic))
		return refuse(res, "BAD_REQUEST", "not a valid topic name (no wildcards)");
	if (!json_is_object(payload))
		return refuse(res, "BAD_REQUEST", "payload must be a JSON object");
	snprintf(buf, sizeof(buf), "%s", topic);
	int n = topic_split(buf, lv, TOPIC_MAX_LEVELS);
	return submit(p, who, lv, n, payload, res);
}

/* Operations only staff may ask of a radio (e.g. a WLAN radio's transmit
 * power): not transmits of a sandbox, so no lease or quota, but audited like
 * them, and refused during an emergency stop. */
int policy_radio_op(struct policy *p, const struct principal *who, const char *radio,
		    const json_t *body, struct policy_result *res)
{
	struct labgwd *d = p->d;
	memset(res, 0, sizeof(*res));
	res->retry_after_ms = -1;
	const char *op = json_string_value(json_object_get(body, "op"));
	int rc;
	char *text = NULL;
	if (!principal_is_staff(who)) {
		rc = refuse(res, "FORBIDDEN", "radio operations are for staff keys only");
		goto audit;
	}
	if (!op || !ident_valid(op, 32) || !strcmp(op, "tx") || strchr(op, '.')) {
		rc = refuse(res, "BAD_REQUEST", "\"op\" must name an operation of the radio");
		goto audit;
	}
	struct labgw_radio *r = plugin_host_find(d->host, radio);
	if (!r) {
		rc = refuse(res, "NOT_FOUND", "no radio '%.32s' on gateway %s", radio,
			    d->cfg->gw_id);
		goto audit;
	}
	if (d->sandboxes && sandboxes_stopped(d->sandboxes)) {
		rc = refuse(res, "RADIO_UNAVAILABLE",
			    "emergency stop: staff have stopped all transmits");
		goto audit;
	}
	if (radio_get_state(r) != RADIO_UP) {
		rc = refuse(res, "RADIO_UNAVAILABLE", "radio %s is %s", radio,
			    radio_state_name(radio_get_state(r)));
		goto audit;
	}
	expire(p);
	if (p->npending >= POLICY_MAX_PENDING) {
		rc = refuse(res, "RADIO_UNAVAILABLE", "%u commands in flight; try again later",
			    p->npending);
		goto audit;
	}
	text = json_dumps(body, JSON_COMPACT);
	struct pending *c = calloc(1, sizeof(*c));
	if (!c || !text) {
		free(c);
		rc = refuse(res, "INTERNAL", "out of memory");
		goto audit;
	}
	p->next_id++;
	snprintf(c->id, sizeof(c->id), "op-%016llx", (unsigned long long)p->next_id);
	snprintf(c->radio, sizeof(c->radio), "%s", radio);
	uint32_t techs = radio_techs(r);
	c->tech = (enum labgw_tech)(techs & (uint32_t) - (int32_t)techs); /* its first tech */
	c->created_ms = uv_now(d->loop);
	c->next = p->pending;
	p->pending = c;
	p->npending++;
	struct labgw_command cmd = {
		.size = sizeof(cmd),
		.id = c->id,
		.sbx = NULL,
		.op = op,
		.body = text,
		.body_len = strlen(text),
	};
	char errbuf[256];
	c->submitting = true;
	int mrc = plugin_host_command(d->host, r, &cmd, errbuf, sizeof(errbuf));
	c->submitting = false;
	if (mrc < 0) {
		pending_drop(p, c);
		rc = refuse(res,
			    mrc == -EINVAL || mrc == -ENOTSUP ? "BAD_REQUEST"
			    : mrc == -EBUSY || mrc == -ENODEV ? "RADIO_UNAVAILABLE"
							      : "INTERNAL",
			    "radio %s: %s", radio, errbuf);
		goto audit;
	}
	log_notice("radio %s: staff operation %s (%s) by key %s", radio, op, c->id, who->key_id);
	res->result = json_pack("{s:s,s:s}", "op", c->id, "status", "queued");
	publish_queued(p, c);
	rc = 0;
audit:;
	char action[48];
	snprintf(action, sizeof(action), "radio.%s", op && strlen(op) <= 32 ? op : "?");
	if (d->sandboxes)
		sandboxes_audit(d->sandboxes, who, NULL, action, radio, rc == 0 ? "ok" : res->code,
				text ? (int64_t)strlen(text) : 0,
				rc == 0 ? json_string_value(json_object_get(res->result, "op"))
					: res->message);
	free(text);
	return rc;
}

void policy_tx_result(struct policy *p, struct labgw_radio *r, const char *cmd_id,
		      enum labgw_tx_status st, const char *reason, const json_t *result)
{
	struct pending *c;
	for (c = p->pending; c; c = c->next)
		if (!strcmp(c->id, cmd_id) && !strcmp(c->radio, radio_name(r)))
			break;
	if (!c) {
		log_debug("radio %s: status for unknown command %.40s", radio_name(r), cmd_id);
		return;
	}
	if (c->submitting) {
		if (c->ndeferred < ARRAY_SIZE(c->deferred)) {
			c->deferred[c->ndeferred] = st;
			snprintf(c->deferred_reason[c->ndeferred], sizeof(c->deferred_reason[0]),
				 "%s", reason ? reason : "");
			c->deferred_result[c->ndeferred] = result ? json_deep_copy(result) : NULL;
			c->ndeferred++;
		}
		return;
	}
	publish_status(p, c, st, reason, result);
	if (st == LABGW_TX_ACKED || st == LABGW_TX_FAILED)
		pending_drop(p, c);
}

void policy_tx_status(struct policy *p, struct labgw_radio *r, const char *cmd_id,
		      enum labgw_tx_status st, const char *reason)
{
	policy_tx_result(p, r, cmd_id, st, reason, NULL);
}

/* Tells radio r of something that ended (op "lease.ended" or "claim.ended"). */
static void notify_radio(struct policy *p, struct labgw_radio *r, const char *sbx, const char *op,
			 json_t *body)
{
	char id[48], errbuf[256];
	char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	json_decref(body);
	if (!text)
		return;
	snprintf(id, sizeof(id), "note-%016llx", (unsigned long long)++p->next_id);
	struct labgw_command cmd = {
		.size = sizeof(cmd),
		.id = id,
		.sbx = sbx,
		.op = op,
		.body = text,
		.body_len = strlen(text),
	};
	int rc = plugin_host_command(p->d->host, r, &cmd, errbuf, sizeof(errbuf));
	/* a module with nothing to stop may not know the op */
	if (rc < 0 && rc != -ENOTSUP)
		log_warning("radio %s: %s of %s: %s", radio_name(r), op, sbx, errbuf);
	free(text);
}

void policy_lease_ended(struct policy *p, const char *sbx, const char *resource)
{
	char radio[64];
	const char *colon = strchr(resource, ':');
	if (!colon || (size_t)(colon - resource) >= sizeof(radio))
		return;
	snprintf(radio, sizeof(radio), "%.*s", (int)(colon - resource), resource);
	struct labgw_radio *r = plugin_host_find(p->d->host, radio);
	if (!r || radio_get_state(r) != RADIO_UP)
		return;
	notify_radio(p, r, sbx, "lease.ended",
		     json_pack("{s:s,s:s}", "resource", resource, "sbx", sbx));
}

void policy_claim_ended(struct policy *p, const char *sbx, uint32_t tech, const char *dev)
{
	for (struct labgw_radio *r = plugin_host_first(p->d->host); r; r = plugin_host_next(r)) {
		if (!(radio_techs(r) & tech) || radio_get_state(r) != RADIO_UP)
			continue;
		notify_radio(p, r, sbx, "claim.ended",
			     json_pack("{s:s,s:s,s:s}", "tech", frame_tech_name(tech), "dev", dev,
				       "sbx", sbx));
	}
}
