#include "dynsec.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "daemon.h"
#include "frame.h"
#include "log.h"
#include "sandbox.h"
#include "store.h"
#include "util.h"

/* requests waiting or in flight; beyond it a new key is not added to the
 * broker (it is named in a warning) and a deletion is left to the next
 * reconciliation */
#define QUEUE_MAX 4096
/* requests sent and not yet answered */
#define INFLIGHT_MAX 32
/* a request not answered this long is sent again, at most ATTEMPTS times
 * in all; the first one unanswered on a connection means "no plugin" */
#define ANSWER_TIMEOUT_MS 5000
#define ATTEMPTS	  3
#define TICK_MS		  250
/* warnings naming keys without a broker login, per reconciliation */
#define MISSING_NAMED_MAX 20
/* the admin role that `mosquitto_ctrl dynsec init` makes */
#define ADMIN_ROLE "admin"

enum req_kind {
	REQ_SETUP,  /* default ACL access and the admin role's rights */
	REQ_LIST,   /* listClients + listRoles: probe and reconciliation */
	REQ_CREATE, /* a key's role and client */
	REQ_DELETE, /* a key's client and role */
};

struct req {
	struct req *next;
	enum req_kind kind;
	uint64_t id;
	char key_id[STORE_ID_MAX + 1];
	char *payload; /* REQ_CREATE: holds the whole key; wiped when freed */
	size_t len;
	unsigned ncmds;
	bool sent;
	uint64_t sent_ms;
	unsigned attempts;
	/* filled by the answer */
	bool answered;
	bool failed;
	json_t *clients, *roles; /* REQ_LIST */
};

struct dynsec {
	struct labgwd *d;
	uv_timer_t tick;
	bool closed;
	bool attached;
	struct dynsec_link link;
	char login[128];
	char broker[300];
	bool connected;
	bool acl_ok;	/* the plugin answered on this connection */
	bool no_plugin; /* ... or did not, in time */
	bool resync;	/* a change was not made: reconcile again */
	struct req *head, *tail;
	unsigned nreqs;
	uint64_t next_id;
	char corr[80];	   /* correlation prefix, "labgw:{gw}:" */
	char textname[80]; /* marks our clients and roles: "labgw:{gw}" */
	struct dynsec_stats st;
};

static void flush(struct dynsec *ds);

/* ---- the queue ------------------------------------------------------------ */

static void req_free(struct req *r)
{
	if (!r)
		return;
	if (r->payload) {
		explicit_bzero(r->payload, r->len);
		free(r->payload);
	}
	json_decref(r->clients);
	json_decref(r->roles);
	free(r);
}

static void unlink_req(struct dynsec *ds, struct req *r)
{
	struct req **pp = &ds->head, *prev = NULL;
	while (*pp && *pp != r) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (!*pp)
		return;
	*pp = r->next;
	if (ds->tail == r)
		ds->tail = prev;
	ds->nreqs--;
}

static void drop_all(struct dynsec *ds)
{
	while (ds->head) {
		struct req *r = ds->head;
		ds->head = r->next;
		req_free(r);
	}
	ds->tail = NULL;
	ds->nreqs = 0;
}

static bool create_pending(const struct dynsec *ds, const char *key_id)
{
	for (const struct req *r = ds->head; r; r = r->next)
		if (r->kind == REQ_CREATE && !strcmp(r->key_id, key_id))
			return true;
	return false;
}

/* A request of `cmds` (a JSON array, consumed): every command gets the
 * request's correlation id. NULL when out of memory. */
static struct req *req_new(struct dynsec *ds, enum req_kind kind, const char *key_id, json_t *cmds)
{
	struct req *r = calloc(1, sizeof(*r));
	if (!r) {
		json_decref(cmds);
		return NULL;
	}
	r->kind = kind;
	r->id = ds->next_id++;
	snprintf(r->key_id, sizeof(r->key_id), "%s", key_id ? key_id : "");
	char corr[128];
	snprintf(corr, sizeof(corr), "%s%llu", ds->corr, (unsigned long long)r->id);
	size_t i;
	json_t *c;
	json_array_foreach(cmds, i, c)
	{
		json_object_set_new(c, "correlationData", json_string(corr));
	}
	r->ncmds = (unsigned)json_array_size(cmds);
	json_t *msg = json_pack("{s:o}", "commands", cmds);
	r->payload = msg ? json_dumps(msg, JSON_COMPACT) : NULL;
	/* the key's string inside msg is freed by jansson without wiping; the
	 * one copy that lives on (r->payload) is wiped */
	json_decref(msg);
	if (!r->payload) {
		free(r);
		return NULL;
	}
	r->len = strlen(r->payload);
	return r;
}

static void push_back(struct dynsec *ds, struct req *r)
{
	r->next = NULL;
	if (ds->tail)
		ds->tail->next = r;
	else
		ds->head = r;
	ds->tail = r;
	ds->nreqs++;
}

static void push_front(struct dynsec *ds, struct req *r)
{
	r->next = ds->head;
	ds->head = r;
	if (!ds->tail)
		ds->tail = r;
	ds->nreqs++;
}

/* Is it worth queueing broker changes now? */
static bool active(const struct dynsec *ds)
{
	if (ds->closed || ds->d->cfg->mqtt_mode == MQTT_MODE_OFF)
		return false;
	/* connected, and the broker showed it has no plugin: nothing to do
	 * until the next connection probes again */
	return !(ds->connected && ds->no_plugin);
}

/* ---- commands -------------------------------------------------------------- */

static json_t *cmd(const char *name)
{
	return json_pack("{s:s}", "command", name);
}

static void acl(json_t *acls, const char *type, const char *topic, int priority, bool allow)
{
	json_array_append_new(acls, json_pack("{s:s,s:s,s:i,s:b}", "acltype", type, "topic", topic,
					      "priority", priority, "allow", allow));
}

/* allow labgw/v1/sbx/{sbx}/{rest} */
static void acl_sbx(json_t *acls, const char *type, const char *sbx, const char *rest)
{
	char topic[256];
	snprintf(topic, sizeof(topic), "labgw/v1/sbx/%s/%s", sbx, rest);
	acl(acls, type, topic, 0, true);
}

/* The ACLs of a key's role (DESIGN §6). Sandbox ids are identifiers (no
 * wildcard, no '/'), so "labgw/v1/sbx/{sbx}/" is a prefix that ends with a
 * level separator: "bob" never matches "bobby". Requests are granted per
 * op, because the bridge serves what arrives through the broker with the
 * sandbox's rights: the broker's ACL is the check of the key's rights. */
static json_t *key_acls(const struct store_key *k)
{
	json_t *a = json_array();
	const char *sub = "subscribePattern", *pub = "publishClientSend";
	bool sub_all = false;
	if (k->rights & RIGHT_ADMIN) {
		/* staff read everything but the sandboxes' requests, which may
		 * carry session keys (claims); no API gives those back either */
		acl(a, sub, "labgw/v1/sbx/+/req/#", 1, false);
		acl(a, "publishClientReceive", "labgw/v1/sbx/+/req/#", 1, false);
		acl(a, sub, "#", 0, true);
		acl(a, sub, "labgw/v1/adm/#", 0, true);
		acl(a, pub, "labgw/v1/sbx/+/tx/+/+/+/req", 0, true);
		acl(a, pub, "labgw/v1/sbx/+/req/#", 0, true);
		sub_all = true;
	}
	if (k->rights & RIGHT_KIOSK) {
		acl(a, sub, "labgw/v1/pub/#", 0, true);
		acl(a, sub, "labgw/v1/gw/+/state", 0, true);
	}
	if (k->sbx[0]) {
		const char *s = k->sbx;
		if (k->rights & RIGHT_RX)
			acl_sbx(a, sub, s, "rx/#");
		if (k->rights & RIGHT_OBSERVE)
			acl_sbx(a, sub, s, "obs/#");
		acl_sbx(a, sub, s, "tx/+/+/+/status");
		acl_sbx(a, sub, s, "res/#");
		acl_sbx(a, sub, s, "event");
		acl(a, sub, "labgw/v1/gw/#", 0, true);
		static const enum labgw_tech techs[] = {LABGW_TECH_BLE, LABGW_TECH_WLAN,
							LABGW_TECH_LORAWAN, LABGW_TECH_CELLULAR};
		for (size_t i = 0; i < ARRAY_SIZE(techs); i++) {
			if (!(k->tx_techs & techs[i]))
				continue;
			char rest[64];
			snprintf(rest, sizeof(rest), "tx/%s/+/+/req", frame_tech_name(techs[i]));
			acl_sbx(a, pub, s, rest);
		}
		acl_sbx(a, pub, s, "req/claims");
		acl_sbx(a, pub, s, "req/leases");
		acl_sbx(a, pub, s, "req/sandbox");
		if (k->rights & RIGHT_CLAIM) {
			acl_sbx(a, pub, s, "req/claim");
			acl_sbx(a, pub, s, "req/unclaim");
		}
		if (k->rights & RIGHT_LEASE) {
			acl_sbx(a, pub, s, "req/lease");
			acl_sbx(a, pub, s, "req/unlease");
		}
	}
	/* the broker's control topics are never a key's business, not even a
	 * staff key's: dynsec's "#" pattern also admits an explicit
	 * subscription to $CONTROL/... (priority 1 is checked before 0) */
	acl(a, sub, "$CONTROL/#", 1, false);
	acl(a, "publishClientReceive", "$CONTROL/#", 1, false);
	/* deny the rest in the role itself, so that the key is confined even
	 * on a broker whose default access allows more */
	acl(a, pub, "#", -1, false);
	if (!sub_all)
		acl(a, sub, "#", -1, false);
	return a;
}

static void rolename(const char *key_id, char *out, size_t n)
{
	snprintf(out, n, "key-%s", key_id);
}

static json_t *delete_cmds(const char *key_id)
{
	char role[64];
	rolename(key_id, role, sizeof(role));
	json_t *c = json_array();
	json_t *dc = cmd("deleteClient"); /* also disconnects it */
	json_object_set_new(dc, "username", json_string(key_id));
	json_array_append_new(c, dc);
	json_t *dr = cmd("deleteRole");
	json_object_set_new(dr, "rolename", json_string(role));
	json_array_append_new(c, dr);
	return c;
}

static void queue_delete(struct dynsec *ds, const char *key_id)
{
	if (ds->nreqs >= QUEUE_MAX) {
		log_warning(
			"mqtt: too many broker changes waiting; key %s is removed from the broker "
			"at the next reconciliation",
			key_id);
		ds->resync = true;
		return;
	}
	struct req *r = req_new(ds, REQ_DELETE, key_id, delete_cmds(key_id));
	if (!r) {
		ds->resync = true;
		return;
	}
	push_back(ds, r);
}

static struct req *list_req(struct dynsec *ds)
{
	json_t *c = json_array();
	json_t *lc = cmd("listClients");
	json_object_set_new(lc, "verbose", json_true());
	json_array_append_new(c, lc);
	json_t *lr = cmd("listRoles");
	json_object_set_new(lr, "verbose", json_true());
	json_array_append_new(c, lr);
	return req_new(ds, REQ_LIST, NULL, c);
}

static struct req *setup_req(struct dynsec *ds)
{
	json_t *c = json_array();
	json_t *d = cmd("setDefaultACLAccess");
	json_object_set_new(d, "acls",
			    json_pack("[{s:s,s:b},{s:s,s:b},{s:s,s:b},{s:s,s:b}]", "acltype",
				      "publishClientSend", "allow", 0, "acltype", "subscribe",
				      "allow", 0, "acltype", "publishClientReceive", "allow", 1,
				      "acltype", "unsubscribe", "allow", 1));
	json_array_append_new(c, d);
	/* the bridge publishes the topic tree and answers requests */
	json_t *a = cmd("addRoleACL");
	json_object_set_new(a, "rolename", json_string(ADMIN_ROLE));
	json_object_set_new(a, "acltype", json_string("publishClientSend"));
	json_object_set_new(a, "topic", json_string("labgw/v1/#"));
	json_object_set_new(a, "priority", json_integer(0));
	json_object_set_new(a, "allow", json_true());
	json_array_append_new(c, a);
	return req_new(ds, REQ_SETUP, NULL, c);
}

/* ---- sending --------------------------------------------------------------- */

static void send_req(struct dynsec *ds, struct req *r)
{
	if (ds->link.publish(ds->link.ud, DYNSEC_TOPIC, r->payload, r->len) < 0)
		return; /* the link is going down; sent again after the reconnect */
	r->sent = true;
	r->sent_ms = uv_now(ds->d->loop);
	r->attempts++;
	ds->st.sent += r->ncmds;
}

static void flush(struct dynsec *ds)
{
	if (!ds->attached || !ds->connected || ds->no_plugin)
		return;
	unsigned inflight = 0;
	for (struct req *r = ds->head; r; r = r->next)
		inflight += r->sent;
	for (struct req *r = ds->head; r && inflight < INFLIGHT_MAX && ds->connected; r = r->next) {
		if (r->sent)
			continue;
		send_req(ds, r);
		if (!r->sent)
			break;
		inflight++;
	}
	if (ds->resync && !ds->head && ds->acl_ok) {
		ds->resync = false;
		struct req *r = list_req(ds);
		if (r) {
			push_back(ds, r);
			send_req(ds, r);
		}
	}
}

/* ---- the sandboxes hooks --------------------------------------------------- */

void dynsec_key_new(void *ud, const struct store_key *k, const char *key)
{
	struct dynsec *ds = ud;
	if (!active(ds))
		return;
	if (ds->login[0] && !strcmp(k->id, ds->login)) {
		log_error("mqtt: key %s has the broker login's name; not added to the broker",
			  k->id);
		return;
	}
	if (ds->nreqs >= QUEUE_MAX) {
		log_warning("mqtt: too many broker changes waiting; key %s is not added to the "
			    "broker (re-issue it to use MQTT)",
			    k->id);
		ds->st.failed++;
		return;
	}
	char role[64];
	rolename(k->id, role, sizeof(role));
	/* delete first: a resend after a reconnect must not find a half-made
	 * client (the answer to the first try may have been lost) */
	json_t *c = delete_cmds(k->id);
	json_t *cr = cmd("createRole");
	json_object_set_new(cr, "rolename", json_string(role));
	json_object_set_new(cr, "textname", json_string(ds->textname));
	json_object_set_new(cr, "acls", key_acls(k));
	json_array_append_new(c, cr);
	json_t *cc = cmd("createClient");
	json_object_set_new(cc, "username", json_string(k->id));
	json_object_set_new(cc, "password", json_string(key));
	json_object_set_new(cc, "textname", json_string(ds->textname));
	json_object_set_new(cc, "roles", json_pack("[{s:s,s:i}]", "rolename", role, "priority", 0));
	json_array_append_new(c, cc);
	struct req *r = req_new(ds, REQ_CREATE, k->id, c);
	if (!r) {
		log_error("mqtt: out of memory; key %s is not added to the broker", k->id);
		return;
	}
	push_back(ds, r);
	flush(ds);
}

void dynsec_key_gone(void *ud, const char *key_id)
{
	struct dynsec *ds = ud;
	/* a creation not sent yet is simply dropped, with its secret */
	for (struct req *r = ds->head, *next; r; r = next) {
		next = r->next;
		if (r->kind == REQ_CREATE && !r->sent && !strcmp(r->key_id, key_id)) {
			unlink_req(ds, r);
			req_free(r);
		}
	}
	if (!active(ds))
		return;
	queue_delete(ds, key_id);
	flush(ds);
}

/* ---- reconciliation ------------------------------------------------------ */

static const char *jstr(const json_t *o, const char *name)
{
	return json_string_value(json_object_get(o, name));
}

struct missing_ctx {
	struct dynsec *ds;
	struct smap *in_broker;
	unsigned missing;
	unsigned keys;
};

static int missing_cb(void *ud, const struct store_key *k)
{
	struct missing_ctx *m = ud;
	if (!sandboxes_key_valid(m->ds->d->sandboxes, k->id))
		return 0;
	m->keys++;
	if (smap_get(m->in_broker, k->id) || create_pending(m->ds, k->id))
		return 0;
	if (++m->missing <= MISSING_NAMED_MAX)
		log_warning("mqtt: key %s has no login on the broker %s; re-issue it to use MQTT",
			    k->id, m->ds->broker);
	return 0;
}

static bool ours(const struct dynsec *ds, const json_t *o)
{
	const char *t = jstr(o, "textname");
	return ds->link.own_broker || (t && !strcmp(t, ds->textname));
}

/* Delete the clients and roles of keys that are no longer valid; name the
 * valid keys without a client. */
static void reconcile(struct dynsec *ds, const json_t *clients, const json_t *roles)
{
	struct labgwd *d = ds->d;
	if (!d->sandboxes || !d->store) {
		log_debug("mqtt: no key store; broker clients not reconciled");
		return;
	}
	struct smap *in_broker = smap_new(), *deleting = smap_new();
	if (!in_broker || !deleting) {
		smap_free(in_broker, NULL);
		smap_free(deleting, NULL);
		return;
	}
	unsigned removed = 0;
	size_t i;
	json_t *c;
	json_array_foreach(clients, i, c)
	{
		const char *user = json_is_string(c) ? json_string_value(c) : jstr(c, "username");
		if (!user || !strcmp(user, ds->login))
			continue;
		smap_put(in_broker, user, (void *)1);
		if (!ours(ds, c) || sandboxes_key_valid(d->sandboxes, user) ||
		    create_pending(ds, user))
			continue;
		log_notice("mqtt: removing broker client %s: not a valid key", user);
		queue_delete(ds, user);
		smap_put(deleting, user, (void *)1);
		removed++;
	}
	json_array_foreach(roles, i, c)
	{
		const char *role = json_is_string(c) ? json_string_value(c) : jstr(c, "rolename");
		if (!role || strncmp(role, "key-", 4) || !role[4])
			continue;
		const char *id = role + 4;
		/* a role without its client is left over from a half-made key */
		if (!ours(ds, c) || smap_get(deleting, id) || create_pending(ds, id) ||
		    (sandboxes_key_valid(d->sandboxes, id) && smap_get(in_broker, id)))
			continue;
		log_info("mqtt: removing broker role %s: no valid key with a client", role);
		queue_delete(ds, id);
		smap_put(deleting, id, (void *)1);
		removed++;
	}
	struct missing_ctx m = {.ds = ds, .in_broker = in_broker};
	int rc = store_key_list(d->store, NULL, missing_cb, &m);
	if (rc < 0)
		log_warning("mqtt: cannot list the keys: %s", strerror(-rc));
	if (m.missing > MISSING_NAMED_MAX)
		log_warning("mqtt: %u more keys have no login on the broker; re-issue them to use "
			    "MQTT",
			    m.missing - MISSING_NAMED_MAX);
	log_info("mqtt: broker reconciled: %u valid keys, %u logins removed, %u keys without a "
		 "login",
		 m.keys, removed, m.missing);
	smap_free(in_broker, NULL);
	smap_free(deleting, NULL);
}

/* ---- answers --------------------------------------------------------------- */

static struct req *find_req(struct dynsec *ds, const char *corr)
{
	size_t n = strlen(ds->corr);
	if (!corr || strncmp(corr, ds->corr, n))
		return NULL; /* another admin's command */
	char *end;
	errno = 0;
	unsigned long long id = strtoull(corr + n, &end, 10);
	if (errno || *end || end == corr + n)
		return NULL;
	for (struct req *r = ds->head; r; r = r->next)
		if (r->id == id)
			return r;
	return NULL;
}

/* Errors that mean "already as wanted". */
static bool harmless(const char *command, const char *error)
{
	return (!strcmp(command, "deleteClient") && !strcmp(error, "Client not found")) ||
	       (!strcmp(command, "deleteRole") && !strcmp(error, "Role not found")) ||
	       (!strcmp(command, "addRoleACL") &&
		!strcmp(error, "ACL with this topic already exists"));
}

static const char *what(const struct req *r)
{
	switch (r->kind) {
	case REQ_SETUP:
		return "set-up";
	case REQ_LIST:
		return "listing";
	case REQ_CREATE:
		return "creation";
	case REQ_DELETE:
		return "removal";
	}
	return "";
}

static void answer_item(struct dynsec *ds, struct req *r, const json_t *item)
{
	const char *command = jstr(item, "command");
	const char *error = jstr(item, "error");
	r->answered = true;
	if (!command)
		return;
	if (error && !harmless(command, error)) {
		r->failed = true;
		ds->st.failed++;
		/* the broker's message names no secret */
		if (r->key_id[0])
			log_error("mqtt: broker refused %s of key %s: %.200s", command, r->key_id,
				  error);
		else
			log_error("mqtt: broker refused %s: %.200s", command, error);
		return;
	}
	if (r->kind != REQ_LIST)
		return;
	json_t *data = json_object_get(item, "data");
	if (!strcmp(command, "listClients")) {
		json_decref(r->clients);
		r->clients = json_incref(json_object_get(data, "clients"));
	} else if (!strcmp(command, "listRoles")) {
		json_decref(r->roles);
		r->roles = json_incref(json_object_get(data, "roles"));
	}
}

static void finish(struct dynsec *ds, struct req *r)
{
	unlink_req(ds, r);
	switch (r->kind) {
	case REQ_SETUP:
		break;
	case REQ_LIST:
		if (json_is_array(r->clients) && json_is_array(r->roles))
			reconcile(ds, r->clients, r->roles);
		else
			ds->resync = true;
		break;
	case REQ_CREATE:
		if (r->failed)
			log_error(
				"mqtt: key %s has no login on the broker; re-issue it to use MQTT",
				r->key_id);
		else
			log_info("mqtt: key %s can log in to the broker", r->key_id);
		break;
	case REQ_DELETE:
		if (r->failed)
			ds->resync = true;
		else
			log_info("mqtt: key %s removed from the broker", r->key_id);
		break;
	}
	req_free(r);
}

void dynsec_on_response(struct dynsec *ds, const void *payload, size_t len)
{
	json_error_t je;
	json_t *o = json_loadb(payload, len, 0, &je);
	json_t *items = json_object_get(o, "responses");
	if (!json_is_array(items)) {
		log_debug("mqtt: dynamic-security answer not understood");
		json_decref(o);
		return;
	}
	size_t i;
	json_t *item;
	bool ours = false;
	json_array_foreach(items, i, item)
	{
		const char *corr = jstr(item, "correlationData");
		ours = ours || (corr && !strncmp(corr, ds->corr, strlen(ds->corr)));
		struct req *r = find_req(ds, corr);
		if (r)
			answer_item(ds, r, item);
	}
	json_decref(o);
	if (ours && ds->connected && ds->no_plugin) {
		/* a late answer: the plugin is there after all */
		ds->no_plugin = false;
		ds->resync = true;
		log_notice("mqtt: the dynamic-security plugin of %s answered late; reconciling",
			   ds->broker);
	}
	bool any = ours;
	for (struct req *r = ds->head, *next; r; r = next) {
		next = r->next;
		if (r->answered)
			finish(ds, r);
	}
	if (any && ds->connected && !ds->acl_ok) {
		ds->acl_ok = true;
		log_notice("mqtt: the dynamic-security plugin of %s answers: keys are enforced on "
			   "MQTT",
			   ds->broker);
	}
	flush(ds);
}

/* ---- timeouts -------------------------------------------------------------- */

static void no_plugin(struct dynsec *ds)
{
	ds->no_plugin = true;
	ds->acl_ok = false;
	log_error("mqtt: broker at %s has no dynamic-security plugin (or labgwd is not its "
		  "admin): keys are not enforced on MQTT",
		  ds->broker);
	for (struct req *r = ds->head; r; r = r->next) {
		if (r->sent)
			ds->st.failed += r->ncmds;
		if (r->kind == REQ_CREATE)
			log_warning("mqtt: key %s is not added to the broker", r->key_id);
	}
	drop_all(ds);
}

static void tick_cb(uv_timer_t *t)
{
	struct dynsec *ds = t->data;
	if (!ds->connected || ds->no_plugin)
		return;
	uint64_t now = uv_now(ds->d->loop);
	for (struct req *r = ds->head, *next; r; r = next) {
		next = r->next;
		if (!r->sent || now - r->sent_ms < ANSWER_TIMEOUT_MS)
			continue;
		if (!ds->acl_ok) {
			no_plugin(ds);
			return;
		}
		ds->st.failed += r->ncmds;
		if (r->attempts < ATTEMPTS) {
			log_warning("mqtt: no answer from the broker to the %s of %s; sending it "
				    "again",
				    what(r), r->key_id[0] ? r->key_id : "keys");
			r->sent = false;
			continue;
		}
		log_error("mqtt: the broker did not answer the %s of %s", what(r),
			  r->key_id[0] ? r->key_id : "keys");
		if (r->kind == REQ_CREATE)
			log_error(
				"mqtt: key %s has no login on the broker; re-issue it to use MQTT",
				r->key_id);
		else
			ds->resync = true;
		unlink_req(ds, r);
		req_free(r);
	}
	flush(ds);
}

/* ---- the link -------------------------------------------------------------- */

struct dynsec *dynsec_new(struct labgwd *d)
{
	struct dynsec *ds = calloc(1, sizeof(*ds));
	if (!ds)
		return NULL;
	ds->d = d;
	/* ids of this run differ from those of earlier runs, whose answers may
	 * still arrive */
	ds->next_id = time_now_us();
	snprintf(ds->corr, sizeof(ds->corr), "labgw:%s:", d->cfg->gw_id);
	snprintf(ds->textname, sizeof(ds->textname), "labgw:%s", d->cfg->gw_id);
	uv_timer_init(d->loop, &ds->tick);
	ds->tick.data = ds;
	return ds;
}

void dynsec_shutdown(struct dynsec *ds)
{
	if (!ds || ds->closed)
		return;
	ds->closed = true;
	ds->attached = ds->connected = false;
	uv_close((uv_handle_t *)&ds->tick, NULL);
}

void dynsec_free(struct dynsec *ds)
{
	if (!ds)
		return;
	drop_all(ds);
	free(ds);
}

void dynsec_attach(struct dynsec *ds, const struct dynsec_link *link)
{
	ds->link = *link;
	snprintf(ds->login, sizeof(ds->login), "%s", link->login ? link->login : "");
	snprintf(ds->broker, sizeof(ds->broker), "%s", link->broker ? link->broker : "");
	ds->link.login = ds->login;
	ds->link.broker = ds->broker;
	ds->attached = true;
	ds->connected = false;
}

void dynsec_detach(struct dynsec *ds)
{
	if (!ds)
		return;
	dynsec_link_down(ds);
	ds->attached = false;
	memset(&ds->link, 0, sizeof(ds->link));
	/* a reload that turned MQTT off: nothing will send what waits (and
	 * creations hold whole keys) */
	if (ds->d->cfg->mqtt_mode == MQTT_MODE_OFF)
		drop_all(ds);
}

void dynsec_link_up(struct dynsec *ds)
{
	if (!ds->attached || ds->closed)
		return;
	ds->connected = true;
	ds->acl_ok = ds->no_plugin = false;
	/* what was sent on the lost connection goes again; set-up and listing
	 * are made afresh, first */
	for (struct req *r = ds->head, *next; r; r = next) {
		next = r->next;
		if (r->kind == REQ_SETUP || r->kind == REQ_LIST) {
			unlink_req(ds, r);
			req_free(r);
			continue;
		}
		if (r->attempts >= ATTEMPTS) {
			/* it went out that often and the link went down each time:
			 * do not feed it to the broker again */
			log_error("mqtt: giving up the %s of key %s after %u attempts", what(r),
				  r->key_id, r->attempts);
			ds->st.failed += r->ncmds;
			if (r->kind == REQ_DELETE)
				ds->resync = true;
			unlink_req(ds, r);
			req_free(r);
			continue;
		}
		r->sent = false;
		r->answered = r->failed = false;
	}
	struct req *list = list_req(ds);
	if (list)
		push_front(ds, list);
	if (ds->link.own_broker) {
		struct req *setup = setup_req(ds);
		if (setup)
			push_front(ds, setup);
	}
	uv_timer_start(&ds->tick, tick_cb, TICK_MS, TICK_MS);
	flush(ds);
}

void dynsec_link_down(struct dynsec *ds)
{
	if (!ds || !ds->connected)
		return;
	ds->connected = false;
	ds->acl_ok = false;
	ds->no_plugin = false;
	if (!ds->closed)
		uv_timer_stop(&ds->tick);
}

void dynsec_get_stats(const struct dynsec *ds, struct dynsec_stats *st)
{
	*st = ds->st;
	st->acl_ok = ds->acl_ok;
	st->pending = ds->nreqs;
}
