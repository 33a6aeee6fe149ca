#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "daemon.h"
#include "frame.h"
#include "history.h"
#include "replay.h"
#include "log.h"
#include "policy.h"
#include "router.h"
#include "topic.h"
#include "util.h"

/* Failed authentications from one address beyond this many per minute are
 * answered with a delay that doubles, up to AUTH_BLOCK_MAX_MS. */
#define AUTH_FREE_FAILURES     5
#define AUTH_WINDOW_MS	       60000
#define AUTH_BLOCK_MAX_MS      300000
#define AUTH_TRACK_MAX	       4096
#define CLAIMS_PER_SANDBOX_MAX 1000
#define KEYS_PER_SANDBOX_MAX   100
#define LEASE_MAX_US	       (7LL * 86400 * 1000000)
#define LEASE_ENDING_NOTICE_US (5LL * 60 * 1000000)
#define TICK_MS		       200

struct bucket {
	double tokens;
	uint64_t last_ms;
};

struct sbx_entry {
	struct store_sandbox s;
	struct bucket requests, frames;
	unsigned observers; /* valid keys with RIGHT_OBSERVE */
	unsigned keys, claims;
	int64_t usage_day;
	int64_t usage[4]; /* by enum store_usage_kind, of usage_day */
	bool quota_notice_sent[4];
};

struct key_entry {
	struct store_key k;
	bool gone; /* announced as gone (revoked or expired) */
};

struct claim_entry {
	struct store_claim c;
};

struct lease_entry {
	struct store_lease l;
	bool started, ending; /* events announced */
	struct lease_entry *next;
};

struct auth_fail {
	unsigned count;
	uint64_t window_start_ms;
	uint64_t blocked_until_ms;
	uint64_t last_ms;
};

struct listener {
	sandboxes_key_gone_fn gone;
	sandboxes_key_new_fn added;
	void *ud;
};

struct sandboxes {
	struct labgwd *d;
	struct store *st;
	struct smap *sbxs;	    /* id → sbx_entry */
	struct smap *keys;	    /* key id → key_entry */
	struct smap *claims;	    /* "tech:dev" → claim_entry */
	struct smap *fails;	    /* address → auth_fail */
	struct lease_entry *leases; /* not yet ended */
	struct listener listeners[8];
	size_t nlisteners;
	bool stopped; /* emergency stop */
	uv_timer_t tick;
	bool started;
	uint64_t auth_failures;
	uint64_t claims_gen; /* changes with every claim made or gone */
};

/* ---- small helpers -------------------------------------------------------- */

static const struct {
	const char *code;
	int status;
} codes[] = {
	{"BAD_REQUEST", 400},
	{"UNAUTHENTICATED", 401},
	{"FORBIDDEN", 403},
	{"NOT_FOUND", 404},
	{"CONFLICT", 409},
	{"QUOTA_EXCEEDED", 429},
	{"DUTY_CYCLE_EXHAUSTED", 429},
	{"LEASE_REQUIRED", 403},
	{"RADIO_UNAVAILABLE", 503},
	{"TOO_LARGE", 413},
	{"INTERNAL", 500},
};

int api_status_of(const char *code)
{
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
		if (!strcmp(codes[i].code, code))
			return codes[i].status;
	return 500;
}

int api_fail(struct api_error *err, const char *code, const char *fmt, ...)
{
	va_list ap;
	err->code = code;
	err->http_status = api_status_of(code);
	err->retry_after_ms = -1;
	err->frees_at[0] = '\0';
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return -1;
}

static int store_fail(struct api_error *err, int rc)
{
	if (rc == -ENOSPC)
		return api_fail(err, "INTERNAL", "the gateway's disk is full; nothing was changed");
	return api_fail(err, "INTERNAL", "the gateway could not store this (%s)", strerror(-rc));
}

static int64_t now_us(void)
{
	return (int64_t)time_now_us();
}

static json_t *time_json(int64_t us)
{
	if (!us)
		return json_null();
	char buf[32];
	time_format_us((uint64_t)us, buf);
	return json_string(buf);
}

static void claim_key(uint32_t tech, const char *dev, char *out, size_t len)
{
	snprintf(out, len, "%s:%s", frame_tech_name(tech), dev);
}

static void base64url(const unsigned char *in, size_t n, char *out)
{
	base64_encode(in, n, out);
	char *p = out;
	for (; *p && *p != '='; p++) {
		if (*p == '+')
			*p = '-';
		else if (*p == '/')
			*p = '_';
	}
	*p = '\0';
}

static int sha256(const void *data, size_t n, unsigned char out[32])
{
	unsigned int len = 32;
	return EVP_Digest(data, n, out, &len, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

static const char *const right_names[] = {"rx", "observe", "claim", "lease", "admin", "kiosk"};

int rights_parse(const json_t *list, uint32_t *rights, uint32_t *tx_techs, struct api_error *err)
{
	*rights = 0;
	*tx_techs = 0;
	if (!json_is_array(list) || json_array_size(list) == 0 || json_array_size(list) > 16)
		return api_fail(err, "BAD_REQUEST", "\"rights\" must be a list of 1 to 16 rights");
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v)
	{
		const char *r = json_string_value(v);
		if (!r)
			return api_fail(err, "BAD_REQUEST", "rights are strings");
		bool found = false;
		for (size_t k = 0; k < ARRAY_SIZE(right_names); k++) {
			if (!strcmp(r, right_names[k])) {
				*rights |= 1u << k;
				found = true;
			}
		}
		if (!found && !strncmp(r, "tx:", 3)) {
			uint32_t t = frame_tech_parse(r + 3);
			if (t) {
				*tx_techs |= t;
				found = true;
			}
		}
		if (!found)
			return api_fail(
				err, "BAD_REQUEST",
				"unknown right \"%.32s\" (rx, observe, claim, lease, admin, "
				"kiosk, tx:ble, tx:wlan, tx:lorawan, tx:cellular)",
				r);
	}
	return 0;
}

json_t *rights_to_json(uint32_t rights, uint32_t tx_techs)
{
	static const uint32_t techs[] = {LABGW_TECH_BLE, LABGW_TECH_WLAN, LABGW_TECH_LORAWAN,
					 LABGW_TECH_CELLULAR};
	json_t *a = json_array();
	for (size_t k = 0; k < ARRAY_SIZE(right_names); k++)
		if (rights & (1u << k))
			json_array_append_new(a, json_string(right_names[k]));
	for (size_t k = 0; k < ARRAY_SIZE(techs); k++) {
		if (tx_techs & techs[k]) {
			char buf[32];
			snprintf(buf, sizeof(buf), "tx:%s", frame_tech_name(techs[k]));
			json_array_append_new(a, json_string(buf));
		}
	}
	return a;
}

static bool key_valid_now(const struct key_entry *e, int64_t now)
{
	return !e->gone && !e->k.revoked_us && (!e->k.expires_us || e->k.expires_us > now);
}

/* The radio of a lease that ended is told, to stop what it allowed. */
static void lease_gone(struct sandboxes *sb, const struct store_lease *l)
{
	if (sb->d->policy)
		policy_lease_ended(sb->d->policy, l->sbx, l->resource);
}

void sandboxes_emit_event(struct sandboxes *sb, const char *sbx, const char *type, json_t *data)
{
	struct labgwd *d = sb->d;
	struct frame *f = frame_new(d->cfg->gw_id, "", LABGW_TECH_NONE, "event");
	if (!f) {
		json_decref(data);
		return;
	}
	frame_set(f, LABGW_DATA, "event", json_string(type));
	const char *k;
	json_t *v;
	json_object_foreach(data, k, v)
	{
		frame_set(f, LABGW_DATA, k, json_incref(v));
	}
	json_decref(data);
	if (frame_seal(f, labgwd_next_seq(d), time_now_us()) == 0) {
		char topic[128];
		snprintf(topic, sizeof(topic), "labgw/v1/sbx/%s/event", sbx);
		struct bus_msg *m = bus_publish_msg(d->bus, topic, f, false);
		if (m) {
			if (d->history)
				history_record(d->history, sbx, m);
			bus_msg_unref(m);
		}
	}
	frame_unref(f);
}

/* ---- caches --------------------------------------------------------------- */

static struct sbx_entry *sbx_find(struct sandboxes *sb, const char *id)
{
	return id && *id ? smap_get(sb->sbxs, id) : NULL;
}

static int load_sandbox(void *ud, const struct store_sandbox *s)
{
	struct sandboxes *sb = ud;
	struct sbx_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->s = *s;
	smap_put(sb->sbxs, s->id, e);
	return 0;
}

static void key_account(struct sandboxes *sb, const struct store_key *k, int delta)
{
	struct sbx_entry *e = sbx_find(sb, k->sbx);
	if (!e)
		return;
	e->keys += delta;
	if (k->rights & RIGHT_OBSERVE)
		e->observers += delta;
}

static int load_key(void *ud, const struct store_key *k)
{
	struct sandboxes *sb = ud;
	struct key_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->k = *k;
	e->gone = !key_valid_now(e, now_us());
	smap_put(sb->keys, k->id, e);
	if (!e->gone)
		key_account(sb, k, +1);
	return 0;
}

static int load_claim(void *ud, const struct store_claim *c)
{
	struct sandboxes *sb = ud;
	struct claim_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->c = *c;
	char k[96];
	claim_key(c->tech, c->dev, k, sizeof(k));
	smap_put(sb->claims, k, e);
	struct sbx_entry *s = sbx_find(sb, c->sbx);
	if (s)
		s->claims++;
	sb->claims_gen++;
	return 0;
}

static struct lease_entry *lease_cache_add(struct sandboxes *sb, const struct store_lease *l)
{
	struct lease_entry *e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->l = *l;
	e->next = sb->leases;
	sb->leases = e;
	return e;
}

static int load_lease(void *ud, const struct store_lease *l)
{
	struct sandboxes *sb = ud;
	struct lease_entry *e = lease_cache_add(sb, l);
	if (!e)
		return -ENOMEM;
	/* announced before the restart, as far as we know */
	int64_t now = now_us();
	e->started = l->start_us <= now;
	e->ending = l->end_us - LEASE_ENDING_NOTICE_US <= now;
	return 0;
}

static void announce_gone(struct sandboxes *sb, struct key_entry *e, const char *why)
{
	if (e->gone)
		return;
	e->gone = true;
	key_account(sb, &e->k, -1);
	log_notice("key %s: %s", e->k.id, why);
	for (size_t i = 0; i < sb->nlisteners; i++)
		if (sb->listeners[i].gone)
			sb->listeners[i].gone(sb->listeners[i].ud, e->k.id);
}

static json_t *lease_json(const struct store_lease *l, int64_t now)
{
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)l->id);
	const char *state = now < l->start_us ? "pending" : now < l->end_us ? "active" : "ended";
	return json_pack("{s:s,s:s,s:s,s:o,s:o,s:s}", "id", id, "sandbox", l->sbx, "resource",
			 l->resource, "start", time_json(l->start_us), "end", time_json(l->end_us),
			 "state", state);
}

struct expiry_scan {
	struct key_entry *out[64];
	size_t n;
	int64_t now;
};

static int collect_expired(void *ud, const char *key, void *value)
{
	struct expiry_scan *scan = ud;
	struct key_entry *e = value;
	if (!e->gone && !key_valid_now(e, scan->now) && scan->n < ARRAY_SIZE(scan->out))
		scan->out[scan->n++] = e;
	return 0;
}

struct prune_scan {
	char *out[64];
	size_t n;
	uint64_t now;
};

static int collect_idle(void *ud, const char *key, void *value)
{
	struct prune_scan *ps = ud;
	struct auth_fail *f = value;
	if (ps->n < ARRAY_SIZE(ps->out) && ps->now - f->last_ms > 10 * AUTH_WINDOW_MS &&
	    ps->now >= f->blocked_until_ms)
		ps->out[ps->n++] = strdup(key);
	return 0;
}

static void tick_cb(uv_timer_t *t)
{
	struct sandboxes *sb = t->data;
	int64_t now = now_us();
	/* keys that expired: at most 64 per tick, the next tick takes more */
	struct expiry_scan scan = {.now = now};
	smap_each(sb->keys, collect_expired, &scan);
	for (size_t i = 0; i < scan.n; i++)
		announce_gone(sb, scan.out[i], "expired");
	/* lease events */
	struct lease_entry **lp = &sb->leases;
	while (*lp) {
		struct lease_entry *e = *lp;
		if (!e->started && e->l.start_us <= now) {
			e->started = true;
			sandboxes_emit_event(sb, e->l.sbx, "lease.started",
					     json_pack("{s:o}", "lease", lease_json(&e->l, now)));
		}
		if (!e->ending && e->l.end_us - LEASE_ENDING_NOTICE_US <= now &&
		    e->l.end_us > now) {
			e->ending = true;
			sandboxes_emit_event(sb, e->l.sbx, "lease.ending",
					     json_pack("{s:o,s:I}", "lease", lease_json(&e->l, now),
						       "ends_in_ms",
						       (json_int_t)((e->l.end_us - now) / 1000)));
		}
		if (e->l.end_us <= now) {
			sandboxes_emit_event(sb, e->l.sbx, "lease.ended",
					     json_pack("{s:o}", "lease", lease_json(&e->l, now)));
			if (e->started)
				lease_gone(sb, &e->l);
			*lp = e->next;
			free(e);
			continue;
		}
		lp = &e->next;
	}
	/* forget addresses that stopped failing */
	if (smap_size(sb->fails)) {
		struct prune_scan ps = {.now = uv_now(t->loop)};
		smap_each(sb->fails, collect_idle, &ps);
		for (size_t i = 0; i < ps.n; i++) {
			free(smap_remove(sb->fails, ps.out[i]));
			free(ps.out[i]);
		}
	}
}

/* ---- lifecycle ------------------------------------------------------------ */

struct sandboxes *sandboxes_new(struct labgwd *d, struct store *st)
{
	struct sandboxes *sb = calloc(1, sizeof(*sb));
	if (!sb)
		return NULL;
	sb->d = d;
	sb->st = st;
	sb->sbxs = smap_new();
	sb->keys = smap_new();
	sb->claims = smap_new();
	sb->fails = smap_new();
	if (!sb->sbxs || !sb->keys || !sb->claims || !sb->fails) {
		sandboxes_free(sb);
		return NULL;
	}
	return sb;
}

/* A new key: random id and secret. Fills k (hash) and the full key text. */
static int key_generate(struct store_key *k, char full[80])
{
	unsigned char raw[32 + 8];
	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -EIO;
	/* id: "k" and 12 characters of lowercase base32 (60 bits) */
	static const char b32[] = "abcdefghijklmnopqrstuvwxyz234567";
	uint64_t v = 0;
	memcpy(&v, raw + 32, 8);
	k->id[0] = 'k';
	for (int i = 1; i <= 12; i++, v >>= 5)
		k->id[i] = b32[v & 31];
	k->id[13] = '\0';
	char secret[64];
	base64url(raw, 32, secret);
	snprintf(full, 80, "%s.%s", k->id, secret);
	int rc = sha256(secret, strlen(secret), k->hash);
	explicit_bzero(raw, sizeof(raw));
	explicit_bzero(secret, sizeof(secret));
	return rc;
}

static void notify_key_new(struct sandboxes *sb, const struct store_key *k, const char *full)
{
	for (size_t i = 0; i < sb->nlisteners; i++)
		if (sb->listeners[i].added)
			sb->listeners[i].added(sb->listeners[i].ud, k, full);
}

static int write_admin_key(const char *path, const char *full)
{
	char tmp[4200];
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	char line[96];
	int n = snprintf(line, sizeof(line), "%s\n", full);
	bool ok = fchmod(fd, 0600) == 0 && write(fd, line, (size_t)n) == n && fsync(fd) == 0;
	explicit_bzero(line, sizeof(line));
	int e = errno;
	if (close(fd) < 0 || !ok) {
		unlink(tmp);
		return -(ok ? errno : e);
	}
	if (rename(tmp, path) < 0) {
		e = errno;
		unlink(tmp);
		return -e;
	}
	return 0;
}

static int find_admin(void *ud, const char *key, void *value)
{
	const struct key_entry *e = value;
	return !e->gone && (e->k.rights & RIGHT_ADMIN) ? 1 : 0;
}

static int ensure_admin_key(struct sandboxes *sb)
{
	if (smap_each(sb->keys, find_admin, NULL))
		return 0;
	struct store_key k = {.rights = RIGHT_ADMIN, .created_us = now_us()};
	char full[80];
	int rc = key_generate(&k, full);
	snprintf(k.note, sizeof(k.note), "created at first start");
	if (rc == 0)
		rc = store_key_create(sb->st, &k);
	if (rc == 0) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/admin.key", sb->d->cfg->state_dir);
		rc = write_admin_key(path, full);
		if (rc < 0) {
			log_error("cannot write the staff key to %s: %s", path, strerror(-rc));
			store_key_revoke(sb->st, k.id, now_us());
		} else {
			load_key(sb, &k);
			notify_key_new(sb, &k, full);
			log_notice(
				"no staff key existed: created key %s, written to %s (mode 0600)",
				k.id, path);
		}
	}
	explicit_bzero(full, sizeof(full));
	return rc;
}

int sandboxes_start(struct sandboxes *sb)
{
	int rc = store_sandbox_list(sb->st, load_sandbox, sb);
	if (rc == 0)
		rc = store_key_list(sb->st, NULL, load_key, sb);
	if (rc == 0)
		rc = store_claim_list(sb->st, NULL, load_claim, sb);
	if (rc == 0)
		rc = store_lease_list(sb->st, NULL, NULL, now_us(), load_lease, sb);
	if (rc < 0) {
		log_error("cannot load the sandboxes: %s", strerror(-rc));
		return rc;
	}
	char v[16];
	sb->stopped =
		store_setting_get(sb->st, "emergency_stop", v, sizeof(v)) == 0 && !strcmp(v, "1");
	if (sb->stopped)
		log_warning("emergency stop is on: every transmit is refused until staff lift it");
	rc = ensure_admin_key(sb);
	if (rc < 0)
		return rc;
	uv_timer_init(sb->d->loop, &sb->tick);
	sb->tick.data = sb;
	uv_timer_start(&sb->tick, tick_cb, TICK_MS, TICK_MS);
	sb->started = true;
	log_info("sandboxes: %zu sandboxes, %zu keys, %zu claims", smap_size(sb->sbxs),
		 smap_size(sb->keys), smap_size(sb->claims));
	return 0;
}

void sandboxes_stop(struct sandboxes *sb)
{
	if (sb && sb->started) {
		uv_close((uv_handle_t *)&sb->tick, NULL);
		sb->started = false;
	}
}

void sandboxes_free(struct sandboxes *sb)
{
	if (!sb)
		return;
	smap_free(sb->sbxs, free);
	smap_free(sb->keys, free);
	smap_free(sb->claims, free);
	smap_free(sb->fails, free);
	while (sb->leases) {
		struct lease_entry *e = sb->leases;
		sb->leases = e->next;
		free(e);
	}
	free(sb);
}

void sandboxes_on_key_gone(struct sandboxes *sb, sandboxes_key_gone_fn fn, void *ud)
{
	if (sb->nlisteners < ARRAY_SIZE(sb->listeners))
		sb->listeners[sb->nlisteners++] = (struct listener){.gone = fn, .ud = ud};
}

void sandboxes_on_key_new(struct sandboxes *sb, sandboxes_key_new_fn fn, void *ud)
{
	if (sb->nlisteners < ARRAY_SIZE(sb->listeners))
		sb->listeners[sb->nlisteners++] = (struct listener){.added = fn, .ud = ud};
}

/* ---- authentication ------------------------------------------------------- */

static void auth_failed(struct sandboxes *sb, const char *addr)
{
	uint64_t now = uv_now(sb->d->loop);
	sb->auth_failures++;
	if (!addr || !*addr)
		return;
	struct auth_fail *f = smap_get(sb->fails, addr);
	if (!f) {
		if (smap_size(sb->fails) >= AUTH_TRACK_MAX)
			return; /* bounded; the tick forgets idle addresses */
		f = calloc(1, sizeof(*f));
		if (!f)
			return;
		f->window_start_ms = now;
		smap_put(sb->fails, addr, f);
	}
	if (now - f->window_start_ms > AUTH_WINDOW_MS && now >= f->blocked_until_ms) {
		f->window_start_ms = now;
		f->count = 0;
	}
	f->count++;
	f->last_ms = now;
	if (f->count > AUTH_FREE_FAILURES) {
		unsigned over = f->count - AUTH_FREE_FAILURES;
		uint64_t delay = 1000ull << (over > 9 ? 9 : over - 1);
		if (delay > AUTH_BLOCK_MAX_MS)
			delay = AUTH_BLOCK_MAX_MS;
		f->blocked_until_ms = now + delay;
		if (over == 1)
			log_warning(
				"authentication: %u failures from %s in a minute; slowing it down",
				f->count, addr);
	}
}

int sandboxes_auth(struct sandboxes *sb, const char *key, const char *addr, struct principal *who,
		   struct api_error *err)
{
	uint64_t now_ms = uv_now(sb->d->loop);
	struct auth_fail *f = addr && *addr ? smap_get(sb->fails, addr) : NULL;
	if (f && f->blocked_until_ms > now_ms) {
		api_fail(err, "QUOTA_EXCEEDED",
			 "too many failed authentications from this address; retry in %llu ms",
			 (unsigned long long)(f->blocked_until_ms - now_ms));
		err->retry_after_ms = (long long)(f->blocked_until_ms - now_ms);
		return -1;
	}
	char id[33];
	const char *secret, *why;
	if (!key || auth_split_key(key, id, &secret, &why) < 0) {
		auth_failed(sb, addr);
		return api_fail(err, "UNAUTHENTICATED", "%s", key ? why : "no key given");
	}
	struct key_entry *e = smap_get(sb->keys, id);
	unsigned char h[32];
	if (sha256(secret, strlen(secret), h) < 0)
		return api_fail(err, "INTERNAL", "cannot check the key");
	/* compare even for unknown ids, so timing does not tell ids apart */
	static const unsigned char zero[32];
	bool match = CRYPTO_memcmp(h, e ? e->k.hash : zero, 32) == 0 && e;
	if (!match) {
		auth_failed(sb, addr);
		return api_fail(err, "UNAUTHENTICATED", "unknown key");
	}
	int64_t now = now_us();
	if (e->k.revoked_us)
		return api_fail(err, "UNAUTHENTICATED", "key %s was revoked", e->k.id);
	if (e->k.expires_us && e->k.expires_us <= now)
		return api_fail(err, "UNAUTHENTICATED", "key %s has expired", e->k.id);
	if (e->gone)
		return api_fail(err, "UNAUTHENTICATED", "key %s is no longer valid", e->k.id);
	memset(who, 0, sizeof(*who));
	snprintf(who->key_id, sizeof(who->key_id), "%s", e->k.id);
	snprintf(who->sbx, sizeof(who->sbx), "%s", e->k.sbx);
	who->rights = e->k.rights;
	who->tx_techs = e->k.tx_techs;
	who->expires_us = e->k.expires_us;
	return 0;
}

uint64_t sandboxes_auth_failures(const struct sandboxes *sb)
{
	return sb->auth_failures;
}

bool sandboxes_key_valid(struct sandboxes *sb, const char *key_id)
{
	struct key_entry *e = smap_get(sb->keys, key_id);
	return e && key_valid_now(e, now_us());
}

/* ---- topic access --------------------------------------------------------- */

static bool within(const char *filter, const char *prefix)
{
	return topic_filter_within(filter, prefix);
}

bool sandboxes_may_read(struct sandboxes *sb, const struct principal *who, const char *filter,
			struct api_error *err)
{
	char prefix[96];
	if (principal_is_staff(who))
		return true;
	if (who->anonymous) {
		if (within(filter, "labgw/v1/pub/"))
			return true;
		return api_fail(err, "FORBIDDEN",
				"without a key, only labgw/v1/pub/... can be read"),
		       false;
	}
	if (who->rights & RIGHT_KIOSK) {
		char state[96];
		snprintf(state, sizeof(state), "labgw/v1/gw/%s/state", sb->d->cfg->gw_id);
		if (within(filter, "labgw/v1/pub/") || !strcmp(filter, state) ||
		    !strcmp(filter, "labgw/v1/gw/+/state"))
			return true;
	}
	if (who->sbx[0]) {
		/* gateway and radio states carry nothing private */
		if (within(filter, "labgw/v1/gw/"))
			return true;
		snprintf(prefix, sizeof(prefix), "labgw/v1/sbx/%s/", who->sbx);
		if (within(filter, prefix)) {
			/* a filter inside rx/ or obs/ needs that right (the broker
			 * refuses it the same way); wider ones are filtered as
			 * frames go out */
			const char *rest = filter + strlen(prefix);
			if ((!strncmp(rest, "rx/", 3) || !strcmp(rest, "rx")) &&
			    !(who->rights & RIGHT_RX))
				return api_fail(err, "FORBIDDEN", "this key lacks the right rx"),
				       false;
			if ((!strncmp(rest, "obs/", 4) || !strcmp(rest, "obs")) &&
			    !(who->rights & RIGHT_OBSERVE))
				return api_fail(err, "FORBIDDEN",
						"this key lacks the right observe"),
				       false;
			return true;
		}
	}
	if (who->sbx[0])
		api_fail(err, "FORBIDDEN",
			 "this key reads labgw/v1/sbx/%s/... and labgw/v1/gw/... only", who->sbx);
	else
		api_fail(err, "FORBIDDEN",
			 "this key reads labgw/v1/pub/... and the gateway state only");
	return false;
}

bool sandboxes_may_receive(const struct principal *who, const char *topic)
{
	if (principal_is_staff(who) || !who->sbx[0])
		return true; /* staff; kiosk filters were checked at subscribe */
	/* labgw/v1/sbx/{sbx}/rx|obs/...: the part of the tree needs its right */
	size_t n = strlen(who->sbx);
	if (strncmp(topic, "labgw/v1/sbx/", 13) || strncmp(topic + 13, who->sbx, n) ||
	    topic[13 + n] != '/')
		return true;
	const char *rest = topic + 14 + n;
	if (!strncmp(rest, "rx/", 3))
		return who->rights & RIGHT_RX;
	if (!strncmp(rest, "obs/", 4))
		return who->rights & RIGHT_OBSERVE;
	return true;
}

/* ---- routing lookups ------------------------------------------------------ */

const char *sandboxes_claim_owner(struct sandboxes *sb, uint32_t tech, const char *dev)
{
	char k[96];
	claim_key(tech, dev, k, sizeof(k));
	struct claim_entry *e = smap_get(sb->claims, k);
	return e ? e->c.sbx : NULL;
}

struct irk_each_ctx {
	sandboxes_irk_fn fn;
	void *ud;
};

static int irk_each(void *ud, const char *key, void *value)
{
	struct irk_each_ctx *c = ud;
	struct claim_entry *e = value;
	if (e->c.tech == LABGW_TECH_BLE && e->c.has_irk)
		c->fn(c->ud, e->c.dev, e->c.irk);
	return 0;
}

uint64_t sandboxes_ble_irks(struct sandboxes *sb, sandboxes_irk_fn fn, void *ud)
{
	if (fn) {
		struct irk_each_ctx c = {fn, ud};
		smap_each(sb->claims, irk_each, &c);
	}
	return sb->claims_gen;
}

bool sandboxes_claim_keys(struct sandboxes *sb, const char *dev_addr, unsigned char nwkskey[16],
			  unsigned char appskey[16])
{
	char k[96];
	claim_key(LABGW_TECH_LORAWAN, dev_addr, k, sizeof(k));
	struct claim_entry *e = smap_get(sb->claims, k);
	if (!e || !e->c.has_session_keys)
		return false;
	memcpy(nwkskey, e->c.nwkskey, 16);
	memcpy(appskey, e->c.appskey, 16);
	return true;
}

struct each_ctx {
	sandboxes_each_fn fn;
	void *ud;
};

static int each_observer(void *ud, const char *key, void *value)
{
	struct each_ctx *c = ud;
	struct sbx_entry *e = value;
	if (e->observers)
		c->fn(c->ud, e->s.id);
	return 0;
}

void sandboxes_each_observer(struct sandboxes *sb, sandboxes_each_fn fn, void *ud)
{
	struct each_ctx c = {fn, ud};
	smap_each(sb->sbxs, each_observer, &c);
}

/* ---- quotas ----------------------------------------------------------------- */

/* Take a token from a bucket of `rate` per second (burst: one second's
 * worth). Returns 0, or the ms until a token is there. */
static uint64_t bucket_take(struct bucket *b, int64_t rate, uint64_t now_ms)
{
	if (rate <= 0)
		return 0;
	if (!b->last_ms) {
		b->tokens = (double)rate;
		b->last_ms = now_ms;
	}
	b->tokens += (double)(now_ms - b->last_ms) * (double)rate / 1000.0;
	if (b->tokens > (double)rate)
		b->tokens = (double)rate;
	b->last_ms = now_ms;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	uint64_t wait = (uint64_t)((1.0 - b->tokens) * 1000.0 / (double)rate) + 1;
	return wait;
}

bool sandboxes_take_request(struct sandboxes *sb, const char *sbx, struct api_error *err)
{
	struct sbx_entry *e = sbx_find(sb, sbx);
	if (!e)
		return true;
	uint64_t wait = bucket_take(&e->requests, e->s.quotas.requests_per_s, uv_now(sb->d->loop));
	if (!wait)
		return true;
	api_fail(err, "QUOTA_EXCEEDED", "more than %lld requests per second",
		 (long long)e->s.quotas.requests_per_s);
	err->retry_after_ms = (long long)wait;
	return false;
}

bool sandboxes_take_frame(struct sandboxes *sb, const char *sbx)
{
	struct sbx_entry *e = sbx_find(sb, sbx);
	return !e || !bucket_take(&e->frames, e->s.quotas.frames_per_s, uv_now(sb->d->loop));
}

static int64_t today(void)
{
	return now_us() / (86400LL * 1000000);
}

static int64_t ms_to_midnight(void)
{
	int64_t us = now_us();
	return ((today() + 1) * 86400LL * 1000000 - us) / 1000 + 1;
}

/* today's usage of a kind, from the cache (loaded from the store per day) */
static int64_t usage_get(struct sandboxes *sb, struct sbx_entry *e, enum store_usage_kind kind)
{
	int64_t day = today();
	if (e->usage_day != day) {
		e->usage_day = day;
		memset(e->usage, 0, sizeof(e->usage));
		memset(e->quota_notice_sent, 0, sizeof(e->quota_notice_sent));
		for (int k = USAGE_TX; k <= USAGE_SMS; k++)
			store_usage_get(sb->st, e->s.id, day, (enum store_usage_kind)k,
					&e->usage[k]);
	}
	return e->usage[kind];
}

/* ---- the policy gate's checks -------------------------------------------- */

void sandboxes_tx_resource(uint32_t tech, const char *radio, const json_t *body, char *out,
			   size_t outlen)
{
	const char *kind = "tx";
	switch (tech) {
	case LABGW_TECH_BLE:
		kind = json_object_get(body, "dev") ? "gatt" : "adv";
		break;
	case LABGW_TECH_CELLULAR:
		kind = "sms";
		break;
	case LABGW_TECH_WLAN:
		kind = "scan";
		break;
	case LABGW_TECH_LORAWAN:
		kind = "tx";
		break;
	}
	snprintf(out, outlen, "%s:%s", radio, kind);
}

static const struct lease_entry *active_lease(struct sandboxes *sb, const char *sbx,
					      const char *resource, int64_t now)
{
	for (const struct lease_entry *e = sb->leases; e; e = e->next)
		if (!strcmp(e->l.resource, resource) && !strcmp(e->l.sbx, sbx) &&
		    e->l.start_us <= now && now < e->l.end_us)
			return e;
	return NULL;
}

static const struct lease_entry *lease_holder(struct sandboxes *sb, const char *resource,
					      int64_t now)
{
	for (const struct lease_entry *e = sb->leases; e; e = e->next)
		if (!strcmp(e->l.resource, resource) && e->l.start_us <= now && now < e->l.end_us)
			return e;
	return NULL;
}

bool sandboxes_stopped(struct sandboxes *sb)
{
	return sb->stopped;
}

static int budget_check(struct sandboxes *sb, struct sbx_entry *e, enum store_usage_kind kind,
			int64_t limit, int64_t amount, const char *what, struct api_error *err)
{
	if (limit <= 0)
		return 0;
	int64_t used = usage_get(sb, e, kind);
	if (used + amount <= limit)
		return 0;
	api_fail(err, "QUOTA_EXCEEDED", "daily %s budget of sandbox %s used up (%lld of %lld)",
		 what, e->s.id, (long long)used, (long long)limit);
	err->retry_after_ms = ms_to_midnight();
	if (!e->quota_notice_sent[kind]) {
		e->quota_notice_sent[kind] = true;
		sandboxes_emit_event(sb, e->s.id, "quota.exhausted",
				     json_pack("{s:s,s:I,s:I}", "budget", what, "limit",
					       (json_int_t)limit, "retry_after_ms",
					       (json_int_t)err->retry_after_ms));
	}
	return -1;
}

int64_t sandboxes_lease_end(struct sandboxes *sb, const char *sbx, const char *resource)
{
	const struct lease_entry *e = active_lease(sb, sbx, resource, now_us());
	return e ? e->l.end_us : 0;
}

int sandboxes_tx_check(struct sandboxes *sb, const struct principal *who, const char *sbx,
		       uint32_t tech, const char *resource, const struct tx_cost *cost,
		       struct api_error *err)
{
	if (!principal_is_staff(who) && !who->via_broker) {
		if (strcmp(who->sbx, sbx))
			return api_fail(err, "FORBIDDEN", "this key may not act for sandbox '%s'",
					sbx);
		if (!(who->tx_techs & tech))
			return api_fail(err, "FORBIDDEN", "this key lacks the right tx:%s",
					frame_tech_name(tech));
	}
	if (sb->stopped)
		return api_fail(err, "RADIO_UNAVAILABLE",
				"emergency stop: staff have stopped all transmits");
	struct sbx_entry *e = sbx_find(sb, sbx);
	if (!e)
		return api_fail(err, "NOT_FOUND", "no sandbox '%s'", sbx);
	int64_t now = now_us();
	if (!active_lease(sb, sbx, resource, now)) {
		const struct lease_entry *h = lease_holder(sb, resource, now);
		api_fail(err, "LEASE_REQUIRED", "transmitting on %s needs an active lease of it%s",
			 resource, h ? "; another sandbox holds it now" : "");
		if (h) {
			time_format_us((uint64_t)h->l.end_us, err->frees_at);
			err->retry_after_ms = (h->l.end_us - now) / 1000 + 1;
		}
		return -1;
	}
	if (budget_check(sb, e, USAGE_TX, e->s.quotas.tx_per_day, 1, "transmit", err) < 0)
		return -1;
	if (budget_check(sb, e, USAGE_AIRTIME_MS, e->s.quotas.airtime_ms_per_day, cost->airtime_ms,
			 "LoRa airtime", err) < 0)
		return -1;
	if (cost->sms && budget_check(sb, e, USAGE_SMS, e->s.quotas.sms_per_day, 1, "SMS", err) < 0)
		return -1;
	return 0;
}

static void charge(struct sandboxes *sb, struct sbx_entry *e, enum store_usage_kind kind,
		   int64_t amount)
{
	if (amount <= 0)
		return;
	usage_get(sb, e, kind);
	int64_t total;
	if (store_usage_add(sb->st, e->s.id, e->usage_day, kind, amount, &total) == 0)
		e->usage[kind] = total;
	else
		e->usage[kind] += amount;
}

void sandboxes_tx_charge(struct sandboxes *sb, const char *sbx, const struct tx_cost *cost)
{
	struct sbx_entry *e = sbx_find(sb, sbx);
	if (!e)
		return;
	charge(sb, e, USAGE_TX, 1);
	charge(sb, e, USAGE_AIRTIME_MS, cost->airtime_ms);
	if (cost->sms)
		charge(sb, e, USAGE_SMS, 1);
}

void sandboxes_audit(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const char *action, const char *target, const char *result, int64_t size,
		     const char *detail)
{
	struct store_audit a = {.time_us = now_us(), .size = size};
	snprintf(a.key_id, sizeof(a.key_id), "%s",
		 who ? (who->key_id[0] ? who->key_id : (who->via_broker ? "mqtt" : "")) : "");
	snprintf(a.sbx, sizeof(a.sbx), "%s", sbx ? sbx : "");
	snprintf(a.action, sizeof(a.action), "%s", action);
	snprintf(a.target, sizeof(a.target), "%s", target ? target : "");
	snprintf(a.result, sizeof(a.result), "%s", result);
	snprintf(a.detail, sizeof(a.detail), "%s", detail ? detail : "");
	int rc = store_audit_append(sb->st, &a);
	if (rc < 0)
		log_error("audit: cannot record %s %s (%s): %s", action, a.target, result,
			  strerror(-rc));
	struct labgwd *d = sb->d;
	struct frame *f = frame_new(d->cfg->gw_id, "", LABGW_TECH_NONE, "audit");
	if (!f)
		return;
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)a.id);
	frame_set(f, LABGW_DATA, "id", json_string(id));
	frame_set(f, LABGW_DATA, "key_id", json_string(a.key_id));
	frame_set(f, LABGW_DATA, "sandbox", json_string(a.sbx));
	frame_set(f, LABGW_DATA, "action", json_string(a.action));
	frame_set(f, LABGW_DATA, "target", json_string(a.target));
	frame_set(f, LABGW_DATA, "result", json_string(a.result));
	frame_set(f, LABGW_DATA, "size", json_integer(a.size));
	json_t *dj = json_string(a.detail);
	frame_set(f, LABGW_DATA, "detail", dj ? dj : json_string(""));
	if (frame_seal(f, labgwd_next_seq(d), (uint64_t)a.time_us) == 0) {
		char topic[96];
		snprintf(topic, sizeof(topic), "labgw/v1/adm/%s/audit", d->cfg->gw_id);
		bus_publish(d->bus, topic, f, false);
	}
	frame_unref(f);
}

/* ---- API: common ---------------------------------------------------------- */

static bool is_staff(const struct principal *who)
{
	return principal_is_staff(who);
}

static int need_staff(const struct principal *who, struct api_error *err)
{
	return is_staff(who) ? 0 : api_fail(err, "FORBIDDEN", "this needs a staff key (admin)");
}

/* staff, or a key of this sandbox holding `right` (0: any right) */
static int need_own(struct sandboxes *sb, const struct principal *who, const char *sbx,
		    uint32_t right, const char *right_name, struct sbx_entry **out,
		    struct api_error *err)
{
	if (!sbx || !ident_valid(sbx, 32))
		return api_fail(err, "BAD_REQUEST", "not a sandbox id");
	if (!is_staff(who)) {
		if (strcmp(who->sbx, sbx))
			return api_fail(err, "FORBIDDEN", "this key may not act for sandbox '%s'",
					sbx);
		if (right && !(who->rights & right))
			return api_fail(err, "FORBIDDEN", "this key lacks the right %s",
					right_name);
	}
	struct sbx_entry *e = sbx_find(sb, sbx);
	if (!e)
		return api_fail(err, "NOT_FOUND", "no sandbox '%s'", sbx);
	if (out)
		*out = e;
	return 0;
}

static const char *body_str(const json_t *body, const char *name)
{
	return json_string_value(json_object_get(body, name));
}

/* ---- API: gateway and radios ------------------------------------------------ */

static json_t *radio_json(struct labgw_radio *r, bool full, bool staff)
{
	json_t *o = json_pack("{s:s,s:s,s:o,s:s}", "radio", radio_name(r), "module",
			      radio_module(r), "techs", router_techs_json(radio_techs(r)), "state",
			      radio_state_name(radio_get_state(r)));
	if (full) {
		if (radio_reason(r))
			json_object_set_new(o, "reason", json_string(radio_reason(r)));
		/* personal data in the details only for staff */
		json_t *det = radio_details_view(r, staff);
		if (det)
			json_object_set_new(o, "details", det);
	}
	return o;
}

int api_gateway(struct sandboxes *sb, const struct principal *who, json_t **result,
		struct api_error *err)
{
	struct labgwd *d = sb->d;
	json_t *radios = json_array();
	for (struct labgw_radio *r = plugin_host_first(d->host); r; r = plugin_host_next(r))
		json_array_append_new(radios, radio_json(r, false, false));
	*result = json_pack("{s:s,s:s,s:o,s:b,s:o}", "id", d->cfg->gw_id, "version", LABGW_VERSION,
			    "started", time_json((int64_t)d->started_us), "stopped", sb->stopped,
			    "radios", radios);
	return 0;
}

int api_radio_get(struct sandboxes *sb, const struct principal *who, const char *radio,
		  json_t **result, struct api_error *err)
{
	struct labgw_radio *r = radio ? plugin_host_find(sb->d->host, radio) : NULL;
	if (!r)
		return api_fail(err, "NOT_FOUND", "no radio '%.32s'", radio ? radio : "");
	*result = radio_json(r, true, principal_is_staff(who));
	return 0;
}

/* ---- API: sandboxes ------------------------------------------------------- */

static const struct {
	const char *name;
	size_t off;
} quota_fields[] = {
	{"requests_per_s", offsetof(struct store_quotas, requests_per_s)},
	{"frames_per_s", offsetof(struct store_quotas, frames_per_s)},
	{"tx_per_day", offsetof(struct store_quotas, tx_per_day)},
	{"airtime_ms_per_day", offsetof(struct store_quotas, airtime_ms_per_day)},
	{"sms_per_day", offsetof(struct store_quotas, sms_per_day)},
};

static json_t *quotas_json(const struct store_quotas *q)
{
	json_t *o = json_object();
	for (size_t i = 0; i < ARRAY_SIZE(quota_fields); i++)
		json_object_set_new(
			o, quota_fields[i].name,
			json_integer(*(const int64_t *)((const char *)q + quota_fields[i].off)));
	return o;
}

static int quotas_parse(const json_t *j, struct store_quotas *q, struct api_error *err)
{
	if (!j)
		return 0;
	if (!json_is_object(j))
		return api_fail(err, "BAD_REQUEST", "\"quotas\" must be an object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)j, k, v)
	{
		size_t i;
		for (i = 0; i < ARRAY_SIZE(quota_fields); i++)
			if (!strcmp(k, quota_fields[i].name))
				break;
		if (i == ARRAY_SIZE(quota_fields))
			return api_fail(err, "BAD_REQUEST",
					"unknown quota \"%.32s\" (requests_per_s, frames_per_s, "
					"tx_per_day, airtime_ms_per_day, sms_per_day)",
					k);
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
		    json_integer_value(v) > 1000000000)
			return api_fail(err, "BAD_REQUEST",
					"quota %s must be an integer from 0 (no limit) to 1e9", k);
		*(int64_t *)((char *)q + quota_fields[i].off) = json_integer_value(v);
	}
	return 0;
}

static json_t *sandbox_json(struct sandboxes *sb, struct sbx_entry *e, bool full)
{
	json_t *o = json_pack("{s:s,s:s,s:o,s:o}", "id", e->s.id, "name", e->s.name, "created",
			      time_json(e->s.created_us), "quotas", quotas_json(&e->s.quotas));
	if (full) {
		char day[16];
		int64_t t = today();
		char tbuf[32];
		time_format_us((uint64_t)(t * 86400LL * 1000000), tbuf);
		snprintf(day, sizeof(day), "%.10s", tbuf);
		json_object_set_new(o, "usage",
				    json_pack("{s:s,s:I,s:I,s:I}", "day", day, "tx",
					      (json_int_t)usage_get(sb, e, USAGE_TX), "airtime_ms",
					      (json_int_t)usage_get(sb, e, USAGE_AIRTIME_MS), "sms",
					      (json_int_t)usage_get(sb, e, USAGE_SMS)));
		json_object_set_new(o, "keys", json_integer(e->keys));
		json_object_set_new(o, "claims", json_integer(e->claims));
	}
	return o;
}

static int check_fields(const json_t *body, const char *const *allowed, struct api_error *err)
{
	if (!json_is_object(body))
		return api_fail(err, "BAD_REQUEST", "the body must be a JSON object");
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
	{
		bool ok = false;
		for (const char *const *a = allowed; *a; a++)
			if (!strcmp(k, *a))
				ok = true;
		if (!ok)
			return api_fail(err, "BAD_REQUEST", "unknown field \"%.32s\"", k);
	}
	return 0;
}

static int name_parse(const json_t *body, char *out, struct api_error *err)
{
	json_t *n = json_object_get(body, "name");
	if (!n)
		return 0;
	if (!json_is_string(n) || json_string_length(n) > STORE_NAME_MAX)
		return api_fail(err, "BAD_REQUEST", "\"name\" must be a string of at most %d bytes",
				STORE_NAME_MAX);
	snprintf(out, STORE_NAME_MAX + 1, "%s", json_string_value(n));
	return 0;
}

int api_sandbox_create(struct sandboxes *sb, const struct principal *who, const json_t *body,
		       json_t **result, struct api_error *err)
{
	static const char *const fields[] = {"id", "name", "quotas", NULL};
	if (need_staff(who, err) < 0 || check_fields(body, fields, err) < 0)
		return -1;
	const char *id = body_str(body, "id");
	if (!id || !ident_valid(id, 32))
		return api_fail(err, "BAD_REQUEST",
				"\"id\" must be 1 to 32 of a-z 0-9 _ - (starting with a letter or "
				"digit)");
	struct store_sandbox s = {.created_us = now_us()};
	snprintf(s.id, sizeof(s.id), "%s", id);
	snprintf(s.name, sizeof(s.name), "%s", id);
	if (name_parse(body, s.name, err) < 0 ||
	    quotas_parse(json_object_get(body, "quotas"), &s.quotas, err) < 0)
		return -1;
	if (sbx_find(sb, id))
		return api_fail(err, "CONFLICT", "sandbox '%s' exists", id);
	int rc = store_sandbox_create(sb->st, &s);
	if (rc == -EEXIST)
		return api_fail(err, "CONFLICT", "sandbox '%s' exists", id);
	if (rc < 0)
		return store_fail(err, rc);
	load_sandbox(sb, &s);
	sandboxes_audit(sb, who, id, "sandbox.create", id, "ok", 0, NULL);
	*result = sandbox_json(sb, sbx_find(sb, id), false);
	return 0;
}

struct list_ctx {
	struct sandboxes *sb;
	json_t *arr;
};

static int list_sandbox(void *ud, const char *key, void *value)
{
	struct list_ctx *c = ud;
	json_array_append_new(c->arr, sandbox_json(c->sb, value, false));
	return 0;
}

int api_sandbox_list(struct sandboxes *sb, const struct principal *who, json_t **result,
		     struct api_error *err)
{
	json_t *arr = json_array();
	if (is_staff(who)) {
		struct list_ctx c = {sb, arr};
		smap_each(sb->sbxs, list_sandbox, &c);
	} else if (who->sbx[0] && sbx_find(sb, who->sbx)) {
		json_array_append_new(arr, sandbox_json(sb, sbx_find(sb, who->sbx), false));
	}
	*result = json_pack("{s:o}", "sandboxes", arr);
	return 0;
}

int api_sandbox_get(struct sandboxes *sb, const struct principal *who, const char *sbx,
		    json_t **result, struct api_error *err)
{
	struct sbx_entry *e;
	if (need_own(sb, who, sbx, 0, NULL, &e, err) < 0)
		return -1;
	*result = sandbox_json(sb, e, true);
	return 0;
}

int api_sandbox_update(struct sandboxes *sb, const struct principal *who, const char *sbx,
		       const json_t *body, json_t **result, struct api_error *err)
{
	static const char *const fields[] = {"name", "quotas", NULL};
	struct sbx_entry *e;
	if (need_staff(who, err) < 0 || need_own(sb, who, sbx, 0, NULL, &e, err) < 0 ||
	    check_fields(body, fields, err) < 0)
		return -1;
	struct store_sandbox s = e->s;
	if (name_parse(body, s.name, err) < 0 ||
	    quotas_parse(json_object_get(body, "quotas"), &s.quotas, err) < 0)
		return -1;
	int rc = store_sandbox_update(sb->st, &s);
	if (rc < 0)
		return store_fail(err, rc);
	e->s = s;
	sandboxes_audit(sb, who, sbx, "sandbox.update", sbx, "ok", 0, NULL);
	*result = sandbox_json(sb, e, false);
	return 0;
}

struct sbx_keys_ctx {
	const char *sbx;
	struct key_entry *out[KEYS_PER_SANDBOX_MAX + 8];
	size_t n;
};

static int keys_of(void *ud, const char *key, void *value)
{
	struct sbx_keys_ctx *c = ud;
	struct key_entry *e = value;
	if (!strcmp(e->k.sbx, c->sbx) && c->n < ARRAY_SIZE(c->out))
		c->out[c->n++] = e;
	return 0;
}

struct sbx_claims_ctx {
	const char *sbx;
	char **out;
	size_t n, cap;
};

static int claims_of(void *ud, const char *key, void *value)
{
	struct sbx_claims_ctx *c = ud;
	struct claim_entry *e = value;
	if (!strcmp(e->c.sbx, c->sbx) && c->n < c->cap)
		c->out[c->n++] = strdup(key);
	return 0;
}

int api_sandbox_delete(struct sandboxes *sb, const struct principal *who, const char *sbx,
		       json_t **result, struct api_error *err)
{
	struct sbx_entry *e;
	if (need_staff(who, err) < 0 || need_own(sb, who, sbx, 0, NULL, &e, err) < 0)
		return -1;
	int rc = store_sandbox_delete(sb->st, sbx);
	if (rc < 0)
		return store_fail(err, rc);
	if (sb->d->history)
		history_forget(sb->d->history, sbx); /* not inherited by a later namesake */
	replay_forget(sb->d->replay, sbx);
	/* keys go first, announced, so that every surface drops them */
	struct sbx_keys_ctx kc = {.sbx = sbx};
	smap_each(sb->keys, keys_of, &kc);
	for (size_t i = 0; i < kc.n; i++) {
		announce_gone(sb, kc.out[i], "its sandbox was deleted");
		free(smap_remove(sb->keys, kc.out[i]->k.id));
	}
	char *victims[CLAIMS_PER_SANDBOX_MAX + 8];
	struct sbx_claims_ctx cc = {.sbx = sbx, .out = victims, .cap = ARRAY_SIZE(victims)};
	smap_each(sb->claims, claims_of, &cc);
	for (size_t i = 0; i < cc.n; i++) {
		struct claim_entry *ce = smap_remove(sb->claims, victims[i]);
		if (ce && sb->d->policy)
			policy_claim_ended(sb->d->policy, sbx, ce->c.tech, ce->c.dev);
		free(ce);
		free(victims[i]);
	}
	sb->claims_gen++;
	struct lease_entry **lp = &sb->leases;
	while (*lp) {
		if (!strcmp((*lp)->l.sbx, sbx)) {
			struct lease_entry *le = *lp;
			*lp = le->next;
			if (le->l.start_us <= now_us())
				lease_gone(sb, &le->l);
			free(le);
		} else {
			lp = &(*lp)->next;
		}
	}
	free(smap_remove(sb->sbxs, sbx));
	sandboxes_audit(sb, who, sbx, "sandbox.delete", sbx, "ok", 0, NULL);
	*result = json_pack("{s:s}", "deleted", sbx);
	return 0;
}

/* ---- API: keys ---------------------------------------------------------------- */

static json_t *key_json(const struct store_key *k)
{
	return json_pack("{s:s,s:o,s:o,s:o,s:o,s:o,s:s}", "id", k->id, "sandbox",
			 k->sbx[0] ? json_string(k->sbx) : json_null(), "rights",
			 rights_to_json(k->rights, k->tx_techs), "created",
			 time_json(k->created_us), "expires", time_json(k->expires_us), "revoked",
			 time_json(k->revoked_us), "note", k->note);
}

int api_key_create(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const json_t *body, json_t **result, struct api_error *err)
{
	static const char *const fields[] = {"rights", "expires", "expires_in", "note", NULL};
	if (need_staff(who, err) < 0 || check_fields(body, fields, err) < 0)
		return -1;
	struct sbx_entry *e = NULL;
	if (sbx && need_own(sb, who, sbx, 0, NULL, &e, err) < 0)
		return -1;
	struct store_key k = {.created_us = now_us()};
	if (rights_parse(json_object_get(body, "rights"), &k.rights, &k.tx_techs, err) < 0)
		return -1;
	uint32_t sandbox_rights = RIGHT_RX | RIGHT_OBSERVE | RIGHT_CLAIM | RIGHT_LEASE;
	if (sbx && (k.rights & ~sandbox_rights))
		return api_fail(err, "BAD_REQUEST",
				"a sandbox key holds rx, observe, claim, lease and tx:<tech>; "
				"staff and kiosk keys are made with POST /api/v1/keys");
	if (!sbx && (k.tx_techs || (k.rights & sandbox_rights) ||
		     (k.rights & (RIGHT_ADMIN | RIGHT_KIOSK)) == (RIGHT_ADMIN | RIGHT_KIOSK)))
		return api_fail(err, "BAD_REQUEST",
				"a key without sandbox is either [\"admin\"] or [\"kiosk\"]");
	if (e && e->keys >= KEYS_PER_SANDBOX_MAX)
		return api_fail(err, "QUOTA_EXCEEDED", "a sandbox has at most %d keys",
				KEYS_PER_SANDBOX_MAX);
	const char *exp = body_str(body, "expires");
	json_t *exp_in = json_object_get(body, "expires_in");
	if (exp && exp_in)
		return api_fail(err, "BAD_REQUEST", "give \"expires\" or \"expires_in\", not both");
	if (exp && time_parse_rfc3339(exp, &k.expires_us) < 0)
		return api_fail(err, "BAD_REQUEST", "\"expires\" must be an RFC 3339 time");
	if (exp_in) {
		if (!json_is_integer(exp_in) || json_integer_value(exp_in) < 1 ||
		    json_integer_value(exp_in) > 10LL * 365 * 86400)
			return api_fail(err, "BAD_REQUEST",
					"\"expires_in\" must be seconds, 1 to 10 years");
		k.expires_us = k.created_us + json_integer_value(exp_in) * 1000000;
	}
	if (k.expires_us && k.expires_us <= k.created_us)
		return api_fail(err, "BAD_REQUEST", "\"expires\" is in the past");
	json_t *note = json_object_get(body, "note");
	if (note && (!json_is_string(note) || json_string_length(note) > STORE_NAME_MAX))
		return api_fail(err, "BAD_REQUEST", "\"note\" must be a string of at most %d bytes",
				STORE_NAME_MAX);
	snprintf(k.note, sizeof(k.note), "%s", note ? json_string_value(note) : "");
	snprintf(k.sbx, sizeof(k.sbx), "%s", sbx ? sbx : "");
	char full[80];
	int rc = key_generate(&k, full);
	if (rc == 0)
		rc = store_key_create(sb->st, &k);
	if (rc < 0) {
		explicit_bzero(full, sizeof(full));
		return store_fail(err, rc);
	}
	load_key(sb, &k);
	notify_key_new(sb, &k, full);
	sandboxes_audit(sb, who, sbx, "key.create", k.id, "ok", 0, NULL);
	*result = key_json(&k);
	json_object_set_new(*result, "key", json_string(full));
	explicit_bzero(full, sizeof(full));
	return 0;
}

struct key_list_ctx {
	const char *sbx; /* NULL: all; "": staff and kiosk */
	json_t *arr;
};

static int list_key(void *ud, const char *key, void *value)
{
	struct key_list_ctx *c = ud;
	struct key_entry *e = value;
	if (!c->sbx || !strcmp(c->sbx, e->k.sbx))
		json_array_append_new(c->arr, key_json(&e->k));
	return 0;
}

int api_key_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		 json_t **result, struct api_error *err)
{
	if (need_staff(who, err) < 0 || (sbx && need_own(sb, who, sbx, 0, NULL, NULL, err) < 0))
		return -1;
	struct key_list_ctx c = {sbx ? sbx : "", json_array()};
	smap_each(sb->keys, list_key, &c);
	*result = json_pack("{s:o}", "keys", c.arr);
	return 0;
}

int api_key_revoke(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const char *key_id, json_t **result, struct api_error *err)
{
	if (need_staff(who, err) < 0 || (sbx && need_own(sb, who, sbx, 0, NULL, NULL, err) < 0))
		return -1;
	struct key_entry *e = key_id ? smap_get(sb->keys, key_id) : NULL;
	if (!e || strcmp(e->k.sbx, sbx ? sbx : ""))
		return api_fail(err, "NOT_FOUND", "no key '%.32s' here", key_id ? key_id : "");
	if (!strcmp(e->k.id, who->key_id))
		return api_fail(err, "CONFLICT", "a key cannot revoke itself");
	if (!e->k.revoked_us) {
		int64_t when = now_us();
		int rc = store_key_revoke(sb->st, e->k.id, when);
		if (rc < 0)
			return store_fail(err, rc);
		e->k.revoked_us = when;
		announce_gone(sb, e, "revoked");
		sandboxes_audit(sb, who, sbx, "key.revoke", e->k.id, "ok", 0, NULL);
	}
	*result = key_json(&e->k);
	return 0;
}

/* ---- API: claims ---------------------------------------------------------- */

static bool mac_valid(const char *s)
{
	if (strlen(s) != 17)
		return false;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':'
			       : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return true;
}

static bool hex_valid(const char *s, size_t n)
{
	if (strlen(s) != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static bool e164_valid(const char *s)
{
	size_t n = strlen(s);
	if (n < 8 || n > 16 || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	for (size_t i = 2; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

/* Normalise (lowercase) and check a device id of `tech`; NULL or a reason. */
static const char *dev_check(uint32_t tech, char *dev)
{
	for (char *p = dev; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	switch (tech) {
	case LABGW_TECH_BLE:
		return mac_valid(dev) ? NULL
				      : "a BLE device is its address, like c0:ff:ee:00:00:01";
	case LABGW_TECH_WLAN:
		return mac_valid(dev) ? NULL : "a WLAN station is its MAC, like 02:00:00:00:00:01";
	case LABGW_TECH_LORAWAN:
		return hex_valid(dev, 8) || hex_valid(dev, 16)
			       ? NULL
			       : "a LoRaWAN device is its DevAddr (8 hex) or DevEUI (16 hex)";
	case LABGW_TECH_CELLULAR:
		return e164_valid(dev) ? NULL
				       : "a phone is its number in E.164, like +4915112345678";
	}
	return "unknown tech";
}

static int hexkey(const char *s, unsigned char out[16])
{
	if (!s)
		return -1;
	char low[33];
	snprintf(low, sizeof(low), "%s", s);
	for (char *p = low; *p; p++)
		if (*p >= 'A' && *p <= 'F')
			*p = (char)(*p - 'A' + 'a');
	if (strlen(s) != 32 || !hex_valid(low, 32))
		return -1;
	for (int i = 0; i < 16; i++) {
		unsigned v;
		sscanf(low + 2 * i, "%2x", &v);
		out[i] = (unsigned char)v;
	}
	return 0;
}

static json_t *claim_json(const struct store_claim *c)
{
	return json_pack("{s:s,s:s,s:o,s:b,s:b}", "tech", frame_tech_name(c->tech), "dev", c->dev,
			 "created", time_json(c->created_us), "session_keys", c->has_session_keys,
			 "irk", c->has_irk);
}

struct irk_find_ctx {
	const unsigned char *irk;
	bool found;
};

static int irk_find(void *ud, const char *key, void *value)
{
	struct irk_find_ctx *c = ud;
	struct claim_entry *e = value;
	if (e->c.has_irk && !CRYPTO_memcmp(e->c.irk, c->irk, 16))
		c->found = true;
	return c->found;
}

int api_claim_create(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const json_t *body, json_t **result, struct api_error *err)
{
	static const char *const fields[] = {"tech", "dev", "nwkskey", "appskey", "irk", NULL};
	struct sbx_entry *e;
	if (need_own(sb, who, sbx, RIGHT_CLAIM, "claim", &e, err) < 0 ||
	    check_fields(body, fields, err) < 0)
		return -1;
	const char *tech_s = body_str(body, "tech"), *dev_s = body_str(body, "dev");
	uint32_t tech = tech_s ? frame_tech_parse(tech_s) : 0;
	if (!tech)
		return api_fail(err, "BAD_REQUEST",
				"\"tech\" must be ble, wlan, lorawan or cellular");
	if (!dev_s || strlen(dev_s) > STORE_DEV_MAX)
		return api_fail(err, "BAD_REQUEST", "\"dev\" is missing or too long");
	struct store_claim c = {.tech = tech, .created_us = now_us()};
	snprintf(c.dev, sizeof(c.dev), "%s", dev_s);
	snprintf(c.sbx, sizeof(c.sbx), "%s", sbx);
	const char *why = dev_check(tech, c.dev);
	if (why)
		return api_fail(err, "BAD_REQUEST", "%s", why);
	const char *nk = body_str(body, "nwkskey"), *ak = body_str(body, "appskey");
	if (nk || ak || json_object_get(body, "nwkskey") || json_object_get(body, "appskey")) {
		if (tech != LABGW_TECH_LORAWAN || strlen(c.dev) != 8)
			return api_fail(err, "BAD_REQUEST",
					"session keys go with a LoRaWAN DevAddr claim (ABP)");
		if (hexkey(nk, c.nwkskey) < 0 || hexkey(ak, c.appskey) < 0)
			return api_fail(err, "BAD_REQUEST",
					"\"nwkskey\" and \"appskey\" are both 32 hex digits");
		c.has_session_keys = true;
	}
	if (json_object_get(body, "irk")) {
		if (tech != LABGW_TECH_BLE)
			return api_fail(err, "BAD_REQUEST",
					"an \"irk\" goes with a BLE claim of the identity address");
		if (hexkey(body_str(body, "irk"), c.irk) < 0)
			return api_fail(err, "BAD_REQUEST",
					"\"irk\" is 32 hex digits, most significant byte first");
		c.has_irk = true;
		/* one key, one device: a second claim of the same key would take
		 * over the first team's device under another address */
		struct irk_find_ctx fc = {.irk = c.irk};
		smap_each(sb->claims, irk_find, &fc);
		if (fc.found) {
			explicit_bzero(&c, sizeof(c));
			sandboxes_audit(sb, who, sbx, "claim.create", dev_s, "CONFLICT", 0,
					"identity resolving key claimed already");
			return api_fail(err, "CONFLICT",
					"a device with this identity resolving key is claimed "
					"already");
		}
	}
	if (e->claims >= CLAIMS_PER_SANDBOX_MAX)
		return api_fail(err, "QUOTA_EXCEEDED", "a sandbox has at most %d claims",
				CLAIMS_PER_SANDBOX_MAX);
	int rc = sandboxes_claim_owner(sb, tech, c.dev) ? -EBUSY : store_claim_create(sb->st, &c);
	if (rc == -EBUSY || rc == -EEXIST) {
		sandboxes_audit(sb, who, sbx, "claim.create", c.dev, "CONFLICT", 0, NULL);
		return api_fail(err, "CONFLICT", "%s %s is claimed already", tech_s, c.dev);
	}
	if (rc < 0)
		return store_fail(err, rc);
	load_claim(sb, &c);
	sandboxes_audit(sb, who, sbx, "claim.create", c.dev, "ok", 0,
			c.has_session_keys ? "with session keys"
			: c.has_irk	   ? "with an identity resolving key"
					   : NULL);
	*result = claim_json(&c);
	explicit_bzero(&c, sizeof(c));
	return 0;
}

struct claim_list_ctx {
	const char *sbx;
	json_t *arr;
};

static int list_claim(void *ud, const char *key, void *value)
{
	struct claim_list_ctx *c = ud;
	struct claim_entry *e = value;
	if (!strcmp(e->c.sbx, c->sbx))
		json_array_append_new(c->arr, claim_json(&e->c));
	return 0;
}

int api_claim_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   json_t **result, struct api_error *err)
{
	if (need_own(sb, who, sbx, 0, NULL, NULL, err) < 0)
		return -1;
	struct claim_list_ctx c = {sbx, json_array()};
	smap_each(sb->claims, list_claim, &c);
	*result = json_pack("{s:o}", "claims", c.arr);
	return 0;
}

int api_claim_delete(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const char *tech_s, const char *dev_s, json_t **result, struct api_error *err)
{
	if (need_own(sb, who, sbx, RIGHT_CLAIM, "claim", NULL, err) < 0)
		return -1;
	uint32_t tech = tech_s ? frame_tech_parse(tech_s) : 0;
	if (!tech || !dev_s || strlen(dev_s) > STORE_DEV_MAX)
		return api_fail(err, "BAD_REQUEST", "give a tech and a device");
	char dev[STORE_DEV_MAX + 1];
	snprintf(dev, sizeof(dev), "%s", dev_s);
	dev_check(tech, dev); /* normalise */
	char k[96];
	claim_key(tech, dev, k, sizeof(k));
	struct claim_entry *e = smap_get(sb->claims, k);
	/* another sandbox's claim looks like no claim at all */
	if (!e || strcmp(e->c.sbx, sbx))
		return api_fail(err, "NOT_FOUND", "sandbox %s has no claim on %s %s", sbx, tech_s,
				dev);
	int rc = store_claim_delete(sb->st, sbx, tech, dev);
	if (rc < 0 && rc != -ENOENT)
		return store_fail(err, rc);
	free(smap_remove(sb->claims, k));
	sb->claims_gen++;
	if (sb->d->policy)
		policy_claim_ended(sb->d->policy, sbx, tech, dev);
	struct sbx_entry *s = sbx_find(sb, sbx);
	if (s && s->claims)
		s->claims--;
	sandboxes_audit(sb, who, sbx, "claim.delete", dev, "ok", 0, NULL);
	*result = json_pack("{s:{s:s,s:s}}", "deleted", "tech", tech_s, "dev", dev);
	return 0;
}

/* ---- API: leases ------------------------------------------------------------ */

static bool resource_valid(struct sandboxes *sb, const char *res, struct api_error *err)
{
	char radio[40];
	const char *colon = strchr(res, ':');
	size_t n = colon ? (size_t)(colon - res) : 0;
	if (!colon || n == 0 || n >= sizeof(radio)) {
		api_fail(err, "BAD_REQUEST", "a resource is \"{radio}:{kind}\", like lora0:tx");
		return false;
	}
	memcpy(radio, res, n);
	radio[n] = '\0';
	struct labgw_radio *r = plugin_host_find(sb->d->host, radio);
	if (!r) {
		api_fail(err, "NOT_FOUND", "no radio '%s'", radio);
		return false;
	}
	const char *kind = colon + 1;
	uint32_t t = radio_techs(r);
	bool ok = ((t & LABGW_TECH_LORAWAN) && !strcmp(kind, "tx")) ||
		  ((t & LABGW_TECH_BLE) && (!strcmp(kind, "adv") || !strcmp(kind, "gatt"))) ||
		  ((t & LABGW_TECH_CELLULAR) && !strcmp(kind, "sms")) ||
		  ((t & LABGW_TECH_WLAN) && !strcmp(kind, "scan"));
	if (!ok)
		api_fail(
			err, "BAD_REQUEST",
			"radio %s has no resource '%.16s' (kinds: tx for lorawan, adv and gatt for "
			"ble, sms for cellular, scan for wlan)",
			radio, kind);
	return ok;
}

int api_lease_create(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const json_t *body, json_t **result, struct api_error *err)
{
	static const char *const fields[] = {"resource", "start", "end", NULL};
	if (need_own(sb, who, sbx, RIGHT_LEASE, "lease", NULL, err) < 0 ||
	    check_fields(body, fields, err) < 0)
		return -1;
	const char *res = body_str(body, "resource");
	const char *start = body_str(body, "start"), *end = body_str(body, "end");
	if (!res || strlen(res) > STORE_RES_MAX)
		return api_fail(err, "BAD_REQUEST", "\"resource\" is missing or too long");
	if (!resource_valid(sb, res, err))
		return -1;
	struct store_lease l = {.created_us = now_us()};
	if (!start || !end)
		return api_fail(err, "BAD_REQUEST", "\"start\" and \"end\" are RFC 3339 times");
	if (!strcmp(start, "now"))
		l.start_us = l.created_us;
	else if (time_parse_rfc3339(start, &l.start_us) < 0)
		return api_fail(err, "BAD_REQUEST",
				"\"start\" must be an RFC 3339 time or \"now\"");
	if (time_parse_rfc3339(end, &l.end_us) < 0)
		return api_fail(err, "BAD_REQUEST", "\"end\" must be an RFC 3339 time");
	if (l.end_us <= l.start_us)
		return api_fail(err, "BAD_REQUEST", "\"end\" must come after \"start\"");
	if (l.end_us <= l.created_us)
		return api_fail(err, "BAD_REQUEST", "\"end\" is in the past");
	if (l.end_us - l.start_us > LEASE_MAX_US)
		return api_fail(err, "BAD_REQUEST", "a lease lasts at most 7 days");
	if (l.start_us < l.created_us)
		l.start_us = l.created_us; /* a lease does not start in the past */
	snprintf(l.sbx, sizeof(l.sbx), "%s", sbx);
	snprintf(l.resource, sizeof(l.resource), "%s", res);
	int64_t frees = 0;
	int rc = store_lease_create(sb->st, &l, &frees);
	if (rc == -EBUSY) {
		sandboxes_audit(sb, who, sbx, "lease.create", res, "CONFLICT", 0, NULL);
		api_fail(err, "CONFLICT", "%s is booked for that time", res);
		time_format_us((uint64_t)frees, err->frees_at);
		return -1;
	}
	if (rc < 0)
		return store_fail(err, rc);
	lease_cache_add(sb, &l);
	sandboxes_audit(sb, who, sbx, "lease.create", res, "ok", 0, NULL);
	*result = lease_json(&l, now_us());
	return 0;
}

struct lease_list_ctx {
	json_t *arr;
	int64_t now;
};

static int list_lease(void *ud, const struct store_lease *l)
{
	struct lease_list_ctx *c = ud;
	json_array_append_new(c->arr, lease_json(l, c->now));
	return 0;
}

int api_lease_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   json_t **result, struct api_error *err)
{
	if (need_own(sb, who, sbx, 0, NULL, NULL, err) < 0)
		return -1;
	int64_t now = now_us();
	struct lease_list_ctx c = {json_array(), now};
	/* current and future leases, and those ended in the last day */
	int rc = store_lease_list(sb->st, sbx, NULL, now - 86400LL * 1000000, list_lease, &c);
	if (rc < 0) {
		json_decref(c.arr);
		return store_fail(err, rc);
	}
	*result = json_pack("{s:o}", "leases", c.arr);
	return 0;
}

int api_lease_delete(struct sandboxes *sb, const struct principal *who, const char *sbx,
		     const char *lease_id, json_t **result, struct api_error *err)
{
	if (need_own(sb, who, sbx, RIGHT_LEASE, "lease", NULL, err) < 0)
		return -1;
	long long id;
	if (!lease_id || parse_int(lease_id, 1, INT64_MAX, &id) < 0)
		return api_fail(err, "BAD_REQUEST", "a lease id is a number");
	struct lease_entry **lp = &sb->leases;
	while (*lp && !((*lp)->l.id == id && !strcmp((*lp)->l.sbx, sbx)))
		lp = &(*lp)->next;
	if (!*lp)
		return api_fail(err, "NOT_FOUND", "sandbox %s has no current lease %lld", sbx, id);
	struct lease_entry *le = *lp;
	int64_t now = now_us();
	bool active = le->l.start_us <= now;
	/* an active lease ends now (kept for the record); a pending one goes */
	int rc = active ? store_lease_end(sb->st, sbx, id, now)
			: store_lease_delete(sb->st, sbx, id);
	if (rc < 0 && rc != -ENOENT)
		return store_fail(err, rc);
	if (active) {
		le->l.end_us = now;
		sandboxes_emit_event(sb, sbx, "lease.ended",
				     json_pack("{s:o}", "lease", lease_json(&le->l, now)));
		lease_gone(sb, &le->l);
	}
	*lp = le->next;
	free(le);
	sandboxes_audit(sb, who, sbx, "lease.delete", lease_id, "ok", 0,
			active ? "ended early" : NULL);
	*result = json_pack("{s:s}", "deleted", lease_id);
	return 0;
}

/* ---- API: audit and emergency stop ---------------------------------------- */

struct audit_ctx {
	json_t *arr;
	int64_t last;
};

static int list_audit(void *ud, const struct store_audit *a)
{
	struct audit_ctx *c = ud;
	char id[32];
	snprintf(id, sizeof(id), "%lld", (long long)a->id);
	json_t *detail = json_string(a->detail);
	json_array_append_new(c->arr,
			      json_pack("{s:s,s:o,s:s,s:o,s:s,s:s,s:s,s:I,s:o}", "id", id, "time",
					time_json(a->time_us), "key_id", a->key_id, "sandbox",
					a->sbx[0] ? json_string(a->sbx) : json_null(), "action",
					a->action, "target", a->target, "result", a->result, "size",
					(json_int_t)a->size, "detail",
					detail ? detail : json_string("")));
	c->last = a->id;
	return 0;
}

int api_audit_list(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const char *since, const char *limit, json_t **result, struct api_error *err)
{
	if (need_staff(who, err) < 0)
		return -1;
	long long since_id = 0, lim = 100;
	if (sbx && *sbx && !ident_valid(sbx, 32))
		return api_fail(err, "BAD_REQUEST", "\"sbx\" is not a sandbox id");
	if (since && *since && parse_int(since, 0, INT64_MAX, &since_id) < 0)
		return api_fail(err, "BAD_REQUEST", "\"since\" is an audit entry id");
	if (limit && *limit && parse_int(limit, 1, 1000, &lim) < 0)
		return api_fail(err, "BAD_REQUEST", "\"limit\" is 1 to 1000");
	struct audit_ctx c = {json_array(), 0};
	int rc = store_audit_list(sb->st, sbx && *sbx ? sbx : NULL, since_id, (int)lim, list_audit,
				  &c);
	if (rc < 0) {
		json_decref(c.arr);
		return store_fail(err, rc);
	}
	json_t *next = json_null();
	if (json_array_size(c.arr) == (size_t)lim) {
		char buf[32];
		snprintf(buf, sizeof(buf), "%lld", (long long)c.last);
		next = json_string(buf);
	}
	*result = json_pack("{s:o,s:o}", "entries", c.arr, "next", next);
	return 0;
}

int api_stop(struct sandboxes *sb, const struct principal *who, bool on, json_t **result,
	     struct api_error *err)
{
	if (need_staff(who, err) < 0)
		return -1;
	int rc = on ? store_setting_set(sb->st, "emergency_stop", "1")
		    : store_setting_delete(sb->st, "emergency_stop");
	if (rc < 0 && rc != -ENOENT)
		return store_fail(err, rc);
	if (sb->stopped != on) {
		sb->stopped = on;
		if (on) {
			log_warning("emergency stop ON by key %s: every transmit is refused",
				    who->key_id);
			/* and what is on the air now stops: radios end what
			 * the active leases allowed (advertisements, GATT) */
			int64_t now = now_us();
			for (const struct lease_entry *e = sb->leases; e; e = e->next)
				if (e->l.start_us <= now && now < e->l.end_us)
					lease_gone(sb, &e->l);
		} else
			log_notice("emergency stop lifted by key %s", who->key_id);
		sandboxes_audit(sb, who, NULL, on ? "stop.on" : "stop.off", "", "ok", 0, NULL);
	}
	*result = json_pack("{s:b}", "stopped", on);
	return 0;
}

/* ---- request ops over req/{op} ------------------------------------------- */

int api_request_op(struct sandboxes *sb, const struct principal *who, const char *sbx,
		   const char *op, const json_t *body, json_t **result, struct api_error *err)
{
	if (!strcmp(op, "claim"))
		return api_claim_create(sb, who, sbx, body, result, err);
	if (!strcmp(op, "claims"))
		return api_claim_list(sb, who, sbx, result, err);
	if (!strcmp(op, "unclaim"))
		return api_claim_delete(sb, who, sbx, body_str(body, "tech"), body_str(body, "dev"),
					result, err);
	if (!strcmp(op, "lease"))
		return api_lease_create(sb, who, sbx, body, result, err);
	if (!strcmp(op, "leases"))
		return api_lease_list(sb, who, sbx, result, err);
	if (!strcmp(op, "unlease")) {
		json_t *id = json_object_get(body, "id");
		char buf[32];
		if (json_is_integer(id))
			snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(id));
		else
			snprintf(buf, sizeof(buf), "%s",
				 json_is_string(id) ? json_string_value(id) : "");
		return api_lease_delete(sb, who, sbx, buf, result, err);
	}
	if (!strcmp(op, "sandbox"))
		return api_sandbox_get(sb, who, sbx, result, err);
	return api_fail(
		err, "NOT_FOUND",
		"unknown request op '%.32s' (claim, unclaim, claims, lease, unlease, leases, "
		"sandbox)",
		op);
}
