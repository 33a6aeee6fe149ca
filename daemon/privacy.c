#include "privacy.h"

#include <errno.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define MASTER_SETTING "pseudonym_master"

struct sbx_key {
	uint64_t epoch;
	unsigned char key[32];
};

struct privacy {
	struct labgwd *d;
	unsigned char master[32];
	uint64_t epoch;
	unsigned char epoch_key[32];
	struct smap *keys; /* sbx → sbx_key of the current epoch */
};

static void hmac(const unsigned char *key, const void *data, size_t n, unsigned char out[32])
{
	unsigned int len = 32;
	HMAC(EVP_sha256(), key, 32, data, n, out, &len);
}

static int hexdecode(const char *s, unsigned char *out, size_t n)
{
	if (strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		unsigned v;
		if (sscanf(s + 2 * i, "%2x", &v) != 1)
			return -EINVAL;
		out[i] = (unsigned char)v;
	}
	return 0;
}

struct privacy *privacy_new(struct labgwd *d, struct store *st)
{
	struct privacy *p = calloc(1, sizeof(*p));
	if (!p || !(p->keys = smap_new())) {
		free(p);
		return NULL;
	}
	p->d = d;
	p->epoch = UINT64_MAX;
	char hex[65];
	if (store_setting_get(st, MASTER_SETTING, hex, sizeof(hex)) < 0 ||
	    hexdecode(hex, p->master, 32) < 0) {
		if (RAND_bytes(p->master, 32) != 1) {
			privacy_free(p);
			return NULL;
		}
		hex_encode(p->master, 32, hex);
		int rc = store_setting_set(st, MASTER_SETTING, hex);
		if (rc < 0) {
			log_error("privacy: cannot store the pseudonym secret: %s", strerror(-rc));
			explicit_bzero(hex, sizeof(hex));
			privacy_free(p);
			return NULL;
		}
		log_info("privacy: made a new pseudonym secret");
	}
	explicit_bzero(hex, sizeof(hex));
	return p;
}

void privacy_free(struct privacy *p)
{
	if (!p)
		return;
	smap_free(p->keys, free);
	explicit_bzero(p, sizeof(*p));
	free(p);
}

static const unsigned char *sbx_key(struct privacy *p, const char *sbx)
{
	uint64_t rot = p->d->cfg->pseudonym_rotation_ms;
	uint64_t epoch = time_now_us() / 1000 / (rot ? rot : 86400000);
	if (epoch != p->epoch) {
		char msg[32];
		int n = snprintf(msg, sizeof(msg), "epoch%llu", (unsigned long long)epoch);
		hmac(p->master, msg, (size_t)n, p->epoch_key);
		p->epoch = epoch;
	}
	struct sbx_key *k = smap_get(p->keys, sbx);
	if (!k) {
		k = calloc(1, sizeof(*k));
		if (!k)
			return NULL;
		k->epoch = UINT64_MAX;
		smap_put(p->keys, sbx, k);
	}
	if (k->epoch != epoch) {
		hmac(p->epoch_key, sbx, strlen(sbx), k->key);
		k->epoch = epoch;
	}
	return k->key;
}

void privacy_pseudonym(struct privacy *p, const char *sbx, uint32_t tech, const char *dev,
		       char out[PSEUDONYM_LEN + 1])
{
	char msg[96];
	int n = snprintf(msg, sizeof(msg), "%s:%s", frame_tech_name(tech), dev);
	unsigned char mac[32];
	const unsigned char *key = sbx_key(p, sbx);
	if (!key) {
		/* never hand out the id: an all-zero key still hides it */
		static const unsigned char zero[32];
		key = zero;
	}
	hmac(key, msg, (size_t)n, mac);
	out[0] = 'p';
	out[1] = '-';
	hex_encode(mac, 8, out + 2);
}

/* Fields of `data` that carry no identifier, per frame type. */
static const struct {
	const char *type;
	const char *const keys[12];
} allow[] = {
	/* no counters that only grow (bytes, packets, connected time, frame
	 * counters): they would link a device across pseudonym rotations */
	{"rx.wlan.station",
	 {"event", "ssid", "bssid", "interface", "tx_bitrate_kbps", "rx_bitrate_kbps"}},
	/* networks not the lab's: what kind, not which (no SSID) */
	{"rx.wlan.scan", {"channel", "security", "hidden", "lab", "interface", "scan"}},
	{"rx.lorawan.uplink", {"mtype", "adr", "ack", "fopts_len", "fport"}},
	{"rx.lorawan.join", {"mtype"}},
	{"state.cellular.signal",
	 {"access_tech", "operator_code", "operator_name", "registration"}},
};

json_t *privacy_filter_data(const char *type, const json_t *data)
{
	json_t *out = json_object();
	if (!out || !json_is_object(data))
		return out;
	if (!strcmp(type, "rx.ble.adv")) {
		/* what kind of device, not which one */
		json_t *v = json_object_get(data, "addr_type");
		if (json_is_string(v))
			json_object_set(out, "addr_type", v);
		v = json_object_get(data, "uuids");
		if (json_is_array(v))
			json_object_set_new(out, "uuids", json_deep_copy(v));
		json_t *mfr = json_object_get(data, "manufacturer_data");
		if (json_is_object(mfr) && json_object_size(mfr)) {
			json_t *ids = json_array();
			const char *k;
			json_t *x;
			json_object_foreach(mfr, k, x)
			{
				json_array_append_new(ids, json_string(k));
			}
			json_object_set_new(out, "companies", ids);
		}
		json_object_set_new(out, "named", json_boolean(json_object_get(data, "name")));
		if (json_object_get(data, "ibeacon"))
			json_object_set_new(out, "beacon", json_string("ibeacon"));
		json_t *ed = json_object_get(data, "eddystone");
		if (json_is_object(ed)) {
			json_t *fr = json_object_get(ed, "frame");
			char kind[32];
			snprintf(kind, sizeof(kind), "eddystone-%s",
				 json_is_string(fr) ? json_string_value(fr) : "?");
			json_object_set_new(out, "beacon", json_string(kind));
		}
		return out;
	}
	if (!strcmp(type, "rx.cellular.sms")) {
		json_t *t = json_object_get(data, "text");
		if (json_is_string(t))
			json_object_set_new(out, "length",
					    json_integer((json_int_t)json_string_length(t)));
		return out;
	}
	for (size_t i = 0; i < ARRAY_SIZE(allow); i++) {
		if (strcmp(type, allow[i].type))
			continue;
		for (size_t k = 0; k < ARRAY_SIZE(allow[i].keys) && allow[i].keys[k]; k++) {
			json_t *v = json_object_get(data, allow[i].keys[k]);
			if (v && !json_is_object(v) && !json_is_array(v))
				json_object_set(out, allow[i].keys[k], v);
		}
		break;
	}
	return out;
}

static bool keep_payload(struct privacy *p, uint32_t tech)
{
	const char *list = p->d->cfg->observe_payload;
	const char *name = frame_tech_name(tech);
	size_t n = strlen(name);
	for (const char *s = list; s && *s;) {
		s += strspn(s, " ");
		size_t w = strcspn(s, " ");
		if (w == n && !strncmp(s, name, n))
			return true;
		s += w;
	}
	return false;
}

struct frame *privacy_view(struct privacy *p, const struct frame *f, const char *sbx)
{
	if (f->is_public && f->sealed)
		return frame_ref((struct frame *)f); /* shared read-only once sealed */
	struct frame *v = frame_new(f->gw, f->radio, f->tech, f->type);
	if (!v)
		return NULL;
	if (f->has_dev) {
		char pseudo[PSEUDONYM_LEN + 1];
		privacy_pseudonym(p, sbx, f->tech, f->dev, pseudo);
		frame_set_dev(v, pseudo, false);
	}
	if (f->sig)
		v->sig = json_deep_copy(f->sig);
	if (f->data) {
		json_t *d = privacy_filter_data(f->type, f->data);
		if (d && json_object_size(d))
			v->data = d;
		else
			json_decref(d);
	}
	if (f->payload && keep_payload(p, f->tech))
		frame_set_payload(v, f->payload, f->payload_len);
	if (frame_seal(v, f->seq, f->time_us) < 0) {
		frame_unref(v);
		return NULL;
	}
	return v;
}
