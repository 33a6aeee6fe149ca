#include "kiosk.h"

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "daemon.h"
#include "lora_airtime.h"
#include "util.h"

#define PUBLISH_MS	 2000
#define MINUTES		 60	/* trend: frames per minute over the last hour */
#define DEVICE_WINDOW_MS 300000 /* "nearby": seen in the last 5 minutes */
#define DEVICES_MAX	 50000	/* per tech; beyond, the count says "at least" */
#define NTECH		 4
#define RADIOS_MAX	 64

struct counter {
	uint64_t total;
	uint64_t minute[MINUTES]; /* ring by minute number */
	uint64_t minute_no[MINUTES];
};

struct radio_stats {
	char name[33];
	struct counter c;
};

struct kiosk {
	struct labgwd *d;
	uv_timer_t timer;
	bool started;
	unsigned char key[32];
	EVP_MAC_CTX *mac; /* HMAC-SHA256 under key, set up once */
	struct counter tech[NTECH];
	struct smap *devices[NTECH]; /* keyed hash → last seen (ms, boxed) */
	bool devices_capped[NTECH];
	struct radio_stats radios[RADIOS_MAX];
	size_t nradios;
	uint64_t airtime_us[MINUTES]; /* LoRa airtime per minute */
	uint64_t airtime_no[MINUTES];
};

static int tech_index(uint32_t tech)
{
	switch (tech) {
	case LABGW_TECH_BLE:
		return 0;
	case LABGW_TECH_WLAN:
		return 1;
	case LABGW_TECH_LORAWAN:
		return 2;
	case LABGW_TECH_CELLULAR:
		return 3;
	}
	return -1;
}

static const uint32_t tech_of[NTECH] = {LABGW_TECH_BLE, LABGW_TECH_WLAN, LABGW_TECH_LORAWAN,
					LABGW_TECH_CELLULAR};

struct kiosk *kiosk_new(struct labgwd *d)
{
	struct kiosk *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->d = d;
	EVP_MAC *hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	k->mac = hmac ? EVP_MAC_CTX_new(hmac) : NULL;
	EVP_MAC_free(hmac);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};
	if (RAND_bytes(k->key, sizeof(k->key)) != 1 || !k->mac ||
	    EVP_MAC_init(k->mac, k->key, sizeof(k->key), params) != 1) {
		kiosk_free(k);
		return NULL;
	}
	for (int i = 0; i < NTECH; i++) {
		k->devices[i] = smap_new();
		if (!k->devices[i]) {
			kiosk_free(k);
			return NULL;
		}
	}
	return k;
}

static void count(struct counter *c, uint64_t minute)
{
	size_t i = minute % MINUTES;
	if (c->minute_no[i] != minute) {
		c->minute_no[i] = minute;
		c->minute[i] = 0;
	}
	c->minute[i]++;
	c->total++;
}

static uint64_t last_minutes(const struct counter *c, uint64_t minute, unsigned n)
{
	uint64_t sum = 0;
	for (unsigned j = 0; j < n && j <= minute; j++) {
		size_t i = (minute - j) % MINUTES;
		if (c->minute_no[i] == minute - j)
			sum += c->minute[i];
	}
	return sum;
}

/* LoRa airtime of an uplink from its SF, bandwidth and PHYPayload length */
static uint64_t frame_airtime_us(const struct frame *f)
{
	json_t *sf = json_object_get(f->sig, "sf"), *bw = json_object_get(f->sig, "bw_hz");
	if (!json_is_integer(sf) || !json_is_integer(bw) || json_integer_value(bw) <= 0)
		return 0;
	return lora_airtime_us((int)json_integer_value(sf), (uint32_t)json_integer_value(bw), 5,
			       f->payload_len, 8, true);
}

void kiosk_count(struct kiosk *k, const struct frame *f)
{
	int t = tech_index(f->tech);
	if (t < 0 || strncmp(f->type, "rx.", 3))
		return; /* observations only, not states */
	uint64_t now = uv_now(k->d->loop);
	uint64_t minute = now / 60000;
	count(&k->tech[t], minute);
	if (f->radio[0]) {
		size_t i;
		for (i = 0; i < k->nradios; i++)
			if (!strcmp(k->radios[i].name, f->radio))
				break;
		if (i == k->nradios && k->nradios < RADIOS_MAX)
			snprintf(k->radios[k->nradios++].name, 33, "%s", f->radio);
		if (i < k->nradios)
			count(&k->radios[i].c, minute);
	}
	if (f->tech == LABGW_TECH_LORAWAN) {
		size_t i = minute % MINUTES;
		if (k->airtime_no[i] != minute) {
			k->airtime_no[i] = minute;
			k->airtime_us[i] = 0;
		}
		k->airtime_us[i] += frame_airtime_us(f);
	}
	if (!f->has_dev)
		return;
	unsigned char mac[32];
	size_t len = 0;
	/* re-initialised with the key already set: no setup per frame */
	if (EVP_MAC_init(k->mac, NULL, 0, NULL) != 1 ||
	    EVP_MAC_update(k->mac, (const unsigned char *)f->dev, strlen(f->dev)) != 1 ||
	    EVP_MAC_final(k->mac, mac, &len, sizeof(mac)) != 1)
		return;
	char h[17];
	hex_encode(mac, 8, h);
	uint64_t *seen = smap_get(k->devices[t], h);
	if (seen) {
		*seen = now;
		return;
	}
	if (smap_size(k->devices[t]) >= DEVICES_MAX) {
		k->devices_capped[t] = true;
		return;
	}
	seen = malloc(sizeof(*seen));
	if (!seen)
		return;
	*seen = now;
	smap_put(k->devices[t], h, seen);
}

struct prune_ctx {
	uint64_t now;
	char *old[1024];
	size_t n;
};

static int find_old(void *ud, const char *key, void *value)
{
	struct prune_ctx *c = ud;
	if (c->now - *(uint64_t *)value > DEVICE_WINDOW_MS && c->n < ARRAY_SIZE(c->old))
		c->old[c->n++] = strdup(key);
	return 0;
}

static void prune(struct kiosk *k, int t, uint64_t now)
{
	struct prune_ctx c;
	do {
		c.now = now;
		c.n = 0;
		smap_each(k->devices[t], find_old, &c);
		for (size_t i = 0; i < c.n; i++) {
			free(smap_remove(k->devices[t], c.old[i]));
			free(c.old[i]);
		}
	} while (c.n == ARRAY_SIZE(c.old));
	if (smap_size(k->devices[t]) < DEVICES_MAX)
		k->devices_capped[t] = false;
}

static void publish(uv_timer_t *timer)
{
	struct kiosk *k = timer->data;
	struct labgwd *d = k->d;
	uint64_t now = uv_now(d->loop);
	uint64_t minute = now / 60000;
	json_t *techs = json_object();
	for (int t = 0; t < NTECH; t++) {
		prune(k, t, now);
		json_t *trend = json_array();
		for (int j = MINUTES - 1; j >= 0; j--) {
			uint64_t m = minute >= (uint64_t)j ? minute - (uint64_t)j : 0;
			size_t i = m % MINUTES;
			json_array_append_new(
				trend,
				json_integer(k->tech[t].minute_no[i] == m && minute >= (uint64_t)j
						     ? (json_int_t)k->tech[t].minute[i]
						     : 0));
		}
		json_object_set_new(techs, frame_tech_name(tech_of[t]),
				    json_pack("{s:I,s:I,s:I,s:b,s:o}", "frames_total",
					      (json_int_t)k->tech[t].total, "frames_last_minute",
					      (json_int_t)last_minutes(&k->tech[t], minute, 1),
					      "devices", (json_int_t)smap_size(k->devices[t]),
					      "devices_capped", k->devices_capped[t],
					      "trend_per_minute", trend));
	}
	json_t *radios = json_array();
	for (size_t i = 0; i < k->nradios; i++)
		json_array_append_new(
			radios,
			json_pack("{s:s,s:I,s:I}", "radio", k->radios[i].name, "frames_total",
				  (json_int_t)k->radios[i].c.total, "frames_last_minute",
				  (json_int_t)last_minutes(&k->radios[i].c, minute, 1)));
	uint64_t air = 0;
	for (unsigned j = 0; j < MINUTES && j <= minute; j++) {
		size_t i = (minute - j) % MINUTES;
		if (k->airtime_no[i] == minute - j)
			air += k->airtime_us[i];
	}
	struct frame *f = frame_new(d->cfg->gw_id, "", LABGW_TECH_NONE, "stats");
	if (!f)
		return;
	frame_set(f, LABGW_DATA, "techs", techs);
	frame_set(f, LABGW_DATA, "radios", radios);
	frame_set(f, LABGW_DATA, "lora_airtime_ms_last_hour",
		  json_integer((json_int_t)(air / 1000)));
	frame_set(f, LABGW_DATA, "device_window_s", json_integer(DEVICE_WINDOW_MS / 1000));
	if (frame_seal(f, labgwd_next_seq(d), time_now_us()) == 0) {
		char topic[96];
		snprintf(topic, sizeof(topic), "labgw/v1/pub/%s/stats", d->cfg->gw_id);
		bus_publish(d->bus, topic, f, true);
	}
	frame_unref(f);
}

void kiosk_start(struct kiosk *k)
{
	uv_timer_init(k->d->loop, &k->timer);
	k->timer.data = k;
	uv_timer_start(&k->timer, publish, PUBLISH_MS, PUBLISH_MS);
	k->started = true;
}

void kiosk_stop(struct kiosk *k)
{
	if (k && k->started) {
		uv_close((uv_handle_t *)&k->timer, NULL);
		k->started = false;
	}
}

void kiosk_free(struct kiosk *k)
{
	if (!k)
		return;
	for (int i = 0; i < NTECH; i++)
		smap_free(k->devices[i], free);
	EVP_MAC_CTX_free(k->mac);
	explicit_bzero(k->key, sizeof(k->key));
	free(k);
}
