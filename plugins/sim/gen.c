// SPDX-License-Identifier: MIT
/*
 * Deterministic synthetic radio traffic for the sim module (see gen.h).
 *
 * All randomness comes from one xoshiro256** stream seeded from the seed,
 * consumed in a fixed order; per-frame work allocates nothing.
 */
#include "gen.h"

#include "../shared/lorawan_crypto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- random numbers ---------------------------------------------------- */

struct rng {
	uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl64(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_u64(struct rng *r)
{
	uint64_t *s = r->s;
	uint64_t res = rotl64(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl64(s[3], 45);
	return res;
}

/* Uniform in [0, n), n >= 1 (multiply-shift; bias below 2^-32). */
static uint32_t rng_below(struct rng *r, uint32_t n)
{
	return (uint32_t)(((rng_u64(r) >> 32) * n) >> 32);
}

/* Uniform in [lo, hi]. */
static int rng_range(struct rng *r, int lo, int hi)
{
	return lo + (int)rng_below(r, (uint32_t)(hi - lo + 1));
}

static bool rng_permille(struct rng *r, unsigned p)
{
	return rng_below(r, 1000) < p;
}

static void rng_bytes(struct rng *r, uint8_t *p, size_t n)
{
	while (n) {
		uint64_t v = rng_u64(r);

		for (int i = 0; i < 8 && n; i++, n--, v >>= 8)
			*p++ = (uint8_t)v;
	}
}

static int clampi(int v, int lo, int hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

/* One step of a bounded random walk. */
static int walk(struct rng *r, int v, int step, int lo, int hi)
{
	return clampi(v + rng_range(r, -step, step), lo, hi);
}

/*
 * i -> (a*i + b) mod 2^bits with a odd is a bijection: ids made from
 * distinct indexes never collide, and the index of an id is found in O(1).
 */
struct perm {
	uint64_t a, b, a_inv, mask;
};

static void perm_init(struct perm *p, struct rng *r, unsigned bits)
{
	uint64_t x;

	p->mask = (bits >= 64) ? ~0ull : ((1ull << bits) - 1);
	p->a = rng_u64(r) | 1;
	p->b = rng_u64(r);
	/* Newton's iteration for the inverse mod 2^64: 3, 6, 12, 24, 48, 96 bits */
	x = p->a;
	for (int i = 0; i < 5; i++)
		x *= 2 - p->a * x;
	p->a_inv = x;
}

static uint64_t perm_fwd(const struct perm *p, uint64_t i)
{
	return (p->a * i + p->b) & p->mask;
}

static uint64_t perm_inv(const struct perm *p, uint64_t v)
{
	return ((v - p->b) * p->a_inv) & p->mask;
}

/* ---- population ------------------------------------------------------- */

enum ble_kind {
	BLE_IBEACON,
	BLE_EDDYSTONE,
	BLE_PHONE,
	BLE_SENSOR,   /* BTHome v2 thermometer */
	BLE_WEARABLE, /* heart-rate strap */
};

struct ble_dev {
	char addr[18];
	bool random;
	enum ble_kind kind;
	int rssi;
	int tx_power;
	char name[16];
	/* iBeacon */
	uint16_t major, minor;
	uint8_t uuid_idx;
	/* Eddystone */
	bool eddy_url;
	uint8_t instance[6];
	char url[48];
	uint8_t url_enc[18]; /* scheme byte + up to 17 encoded bytes */
	uint8_t url_enc_len;
	uint64_t boot_ms; /* 0 until first seen */
	uint32_t adv_interval_ms;
	int batt_mv, temp256;
	/* phone */
	uint16_t company;
	uint8_t mfr[8];
	uint8_t mfr_len;
	/* sensor */
	int temp100, hum100, battery;
	uint8_t packet_id;
};

struct wlan_dev {
	char mac[18];
	bool connected;
	bool band5;
	uint64_t joined_ms, last_ms, left_ms;
	uint32_t away_ms; /* stays away this long after leaving */
	int signal, avg;
	uint32_t load; /* typical bytes per second towards the station */
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
};

enum lora_kind {
	LORA_ENV,     /* temperature, humidity, pressure */
	LORA_TRACKER, /* GPS and battery */
	LORA_METER,   /* digital input and analog value */
};

struct lora_dev {
	uint32_t devaddr;
	char devaddr_str[9];
	uint64_t dev_eui, join_eui;
	char dev_eui_str[17], join_eui_str[17];
	uint8_t nwkskey[16], appskey[16], appkey[16];
	uint32_t fcnt;
	uint16_t dev_nonce;
	enum lora_kind kind;
	uint8_t fport;
	int sf;
	bool adr, confirmed;
	int rssi, snr10;
	int temp10, hum2, press10;
	int lat, lon, alt, batt100;
	int din, ain100;
};

struct sms_dev {
	char number[17];
	unsigned sent;
};

struct cell_state {
	unsigned at; /* index into access_techs */
	unsigned home_op, roam_op;
	bool roaming;
	int rssi, rsrp, rsrq10, sinr10;
};

struct sim_gen {
	uint32_t seed;
	uint32_t techs;
	struct rng rng;
	struct lorawan_crypto *crypto;
	uint8_t k_sim[16];

	unsigned n_ble, n_wlan, n_lora, n_sms;
	struct ble_dev *ble;
	struct wlan_dev *wlan;
	struct lora_dev *lora;
	struct sms_dev *sms;

	struct perm lora_addr, lora_eui;
	uint8_t ibeacon_uuid[2][16];
	uint8_t eddy_ns[10];
	const char *ssid;
	struct cell_state cell;

	unsigned w_ble, w_lora, w_wlan, w_cell;
};

#define DEVADDR_PREFIX 0x26000000u /* NwkID 0x13 */
#define DEVADDR_MASK   0x01ffffffu
#define DEV_EUI_PREFIX 0x70b3d57ed0000000ull
#define DEV_EUI_MASK   0x0fffffffull

static const char *const type_names[] = {
	[SIM_BLE_ADV] = "rx.ble.adv",
	[SIM_WLAN_STATION] = "rx.wlan.station",
	[SIM_LORAWAN_UPLINK] = "rx.lorawan.uplink",
	[SIM_LORAWAN_JOIN] = "rx.lorawan.join",
	[SIM_CELL_SIGNAL] = "state.cellular.signal",
	[SIM_CELL_SMS] = "rx.cellular.sms",
};

static void fmt_mac(char out[18], const uint8_t a[6])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", a[0], a[1], a[2], a[3], a[4], a[5]);
}

/*
 * Eddystone-URL compression: a scheme byte, then the rest with the
 * expansion codes 0x00..0x0d. Returns the encoded length (scheme byte
 * included), or 0 when it does not fit in 18 bytes.
 */
static size_t eddystone_url_encode(const char *url, uint8_t out[18])
{
	static const char *const schemes[] = {"http://www.", "https://www.", "http://", "https://"};
	static const char *const exp[] = {".com/", ".org/", ".edu/", ".net/", ".info/",
					  ".biz/", ".gov/", ".com",  ".org",  ".edu",
					  ".net",  ".info", ".biz",  ".gov"};
	size_t n = 0;
	int scheme = -1;

	for (int i = 0; i < 4; i++) {
		if (!strncmp(url, schemes[i], strlen(schemes[i])) &&
		    (scheme < 0 || strlen(schemes[i]) > strlen(schemes[scheme])))
			scheme = i;
	}
	if (scheme < 0)
		return 0;
	out[n++] = (uint8_t)scheme;
	url += strlen(schemes[scheme]);
	while (*url) {
		int code = -1;

		if (n >= 18)
			return 0;
		for (int i = 0; i < 14 && code < 0; i++) {
			if (!strncmp(url, exp[i], strlen(exp[i])))
				code = i;
		}
		if (code >= 0) {
			out[n++] = (uint8_t)code;
			url += strlen(exp[code]);
		} else {
			out[n++] = (uint8_t)*url++;
		}
	}
	return n;
}

static void make_ble(struct sim_gen *g, struct ble_dev *d, const struct perm *p, unsigned i)
{
	struct rng *r = &g->rng;
	uint64_t low = perm_fwd(p, i);
	unsigned k = rng_below(r, 100);
	uint8_t a[6];

	d->kind = k < 20   ? BLE_IBEACON
		  : k < 35 ? BLE_EDDYSTONE
		  : k < 70 ? BLE_PHONE
		  : k < 85 ? BLE_SENSOR
			   : BLE_WEARABLE;
	rng_bytes(r, a, 3);
	a[3] = (uint8_t)(low >> 16);
	a[4] = (uint8_t)(low >> 8);
	a[5] = (uint8_t)low;
	d->random = true;
	switch (d->kind) {
	case BLE_PHONE:
		a[0] = (uint8_t)(0x40 | (a[0] & 0x3f)); /* resolvable private */
		break;
	case BLE_SENSOR:
		a[0] = 0xa4; /* public, Telink OUI */
		a[1] = 0xc1;
		a[2] = 0x38;
		d->random = false;
		break;
	case BLE_IBEACON:
	case BLE_EDDYSTONE:
	case BLE_WEARABLE:
		a[0] |= 0xc0; /* random static */
		break;
	}
	fmt_mac(d->addr, a);
	d->rssi = rng_range(r, -95, -45);

	switch (d->kind) {
	case BLE_IBEACON:
		d->uuid_idx = (uint8_t)rng_below(r, 2);
		d->major = (uint16_t)rng_range(r, 1, 5);
		d->minor = (uint16_t)(100 + i);
		d->tx_power = rng_range(r, -65, -56);
		break;
	case BLE_EDDYSTONE: {
		static const char *const urls[] = {
			"https://example.com/lab/",
			"https://www.example.org/b/",
			"http://oil.example.net/",
			"https://example.edu/r",
		};
		unsigned u = rng_below(r, 4);
		char tail[8];

		rng_bytes(r, d->instance, 6);
		d->eddy_url = rng_below(r, 2);
		d->tx_power = rng_range(r, -25, -15);
		snprintf(tail, sizeof(tail), "%02x", i & 0xff);
		snprintf(d->url, sizeof(d->url), "%s%s", urls[u], tail);
		d->url_enc_len = (uint8_t)eddystone_url_encode(d->url, d->url_enc);
		if (!d->url_enc_len)
			d->eddy_url = false;
		d->adv_interval_ms = (uint32_t)rng_range(r, 100, 1000);
		d->batt_mv = rng_range(r, 2800, 3100);
		d->temp256 = rng_range(r, 18, 26) * 256;
		break;
	}
	case BLE_PHONE:
		if (rng_below(r, 4)) {
			d->company = 0x004c; /* Nearby Info */
			d->mfr[0] = 0x10;
			d->mfr[1] = 0x05;
			rng_bytes(r, &d->mfr[2], 5);
			d->mfr_len = 7;
		} else {
			d->company = 0x0075;
			d->mfr[0] = 0x42;
			d->mfr[1] = 0x04;
			rng_bytes(r, &d->mfr[2], 6);
			d->mfr_len = 8;
		}
		d->tx_power = rng_below(r, 2) ? 12 : -127; /* -127: not advertised */
		break;
	case BLE_SENSOR:
		snprintf(d->name, sizeof(d->name), "ATC_%02X%02X%02X", a[3], a[4], a[5]);
		d->temp100 = rng_range(r, 1800, 2600);
		d->hum100 = rng_range(r, 3500, 6500);
		d->battery = rng_range(r, 40, 100);
		d->packet_id = (uint8_t)rng_u64(r);
		break;
	case BLE_WEARABLE:
		snprintf(d->name, sizeof(d->name), "HRM %02X%02X", a[4], a[5]);
		d->tx_power = rng_range(r, -4, 4);
		break;
	}
}

static void make_wlan(struct sim_gen *g, struct wlan_dev *d, const struct perm *p, unsigned i)
{
	static const uint8_t ouis[][3] = {{0xb8, 0x27, 0xeb}, {0xdc, 0xa6, 0x32}};
	struct rng *r = &g->rng;
	uint64_t low = perm_fwd(p, i);
	uint8_t a[6];

	if (rng_below(r, 10) < 7) {
		rng_bytes(r, a, 3);
		a[0] = (uint8_t)((a[0] & 0xfc) | 0x02); /* locally administered unicast */
	} else {
		memcpy(a, ouis[rng_below(r, 2)], 3);
	}
	a[3] = (uint8_t)(low >> 16);
	a[4] = (uint8_t)(low >> 8);
	a[5] = (uint8_t)low;
	fmt_mac(d->mac, a);
	d->band5 = rng_below(r, 3) != 0;
	d->signal = rng_range(r, -80, -35);
	d->avg = d->signal;
	d->load = (uint32_t)rng_range(r, 2000, 400000);
}

static int derive_key(struct sim_gen *g, uint8_t label, const uint8_t *id, size_t n,
		      uint8_t out[16])
{
	uint8_t in[16] = {0};

	in[0] = label;
	memcpy(&in[1], id, n);
	return lorawan_crypto_aes128_encrypt(g->crypto, g->k_sim, in, out);
}

static void put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
}

static int make_lora(struct sim_gen *g, struct lora_dev *d, unsigned i)
{
	static const uint64_t join_euis[] = {0x70b3d57ed0001a2bull, 0x70b3d57ed0003c4dull,
					     0x0000000000000000ull};
	struct rng *r = &g->rng;
	uint8_t id[8];
	int rc;

	d->devaddr = DEVADDR_PREFIX | (uint32_t)perm_fwd(&g->lora_addr, i);
	d->dev_eui = DEV_EUI_PREFIX | perm_fwd(&g->lora_eui, i);
	d->join_eui = join_euis[rng_below(r, 3)];
	snprintf(d->devaddr_str, sizeof(d->devaddr_str), "%08x", d->devaddr);
	snprintf(d->dev_eui_str, sizeof(d->dev_eui_str), "%016llx", (unsigned long long)d->dev_eui);
	snprintf(d->join_eui_str, sizeof(d->join_eui_str), "%016llx",
		 (unsigned long long)d->join_eui);

	put_be(id, d->devaddr, 4);
	rc = derive_key(g, 0x01, id, 4, d->nwkskey);
	if (rc == 0)
		rc = derive_key(g, 0x02, id, 4, d->appskey);
	put_be(id, d->dev_eui, 8);
	if (rc == 0)
		rc = derive_key(g, 0x03, id, 8, d->appkey);
	if (rc < 0)
		return rc;

	d->fcnt = (uint32_t)rng_range(r, 0, 2000);
	d->dev_nonce = (uint16_t)rng_below(r, 500);
	d->kind = (enum lora_kind)rng_below(r, 3);
	d->fport = d->kind == LORA_ENV ? 2 : d->kind == LORA_TRACKER ? 1 : 10;
	if (rng_below(r, 5) == 0)
		d->fport = (uint8_t)rng_range(r, 1, 223);
	d->rssi = rng_range(r, -120, -50);
	d->snr10 = rng_range(r, -150, 100);
	d->sf = clampi(7 + (-d->rssi - 90) / 6, 7, 12);
	d->adr = rng_below(r, 10) < 8;
	d->confirmed = rng_below(r, 10) == 0;
	d->temp10 = rng_range(r, -50, 300);
	d->hum2 = rng_range(r, 60, 160);
	d->press10 = rng_range(r, 9800, 10300);
	d->lat = 525200 + rng_range(r, -500, 500); /* around Berlin, 0.0001 degrees */
	d->lon = 134050 + rng_range(r, -800, 800);
	d->alt = rng_range(r, 3000, 6000);
	d->batt100 = rng_range(r, 330, 420);
	d->din = 0;
	d->ain100 = rng_range(r, 0, 10000);
	return 0;
}

static void make_sms(struct sim_gen *g, struct sms_dev *d, uint32_t a, uint32_t b, unsigned i)
{
	static const char *const prefixes[] = {"151", "152", "160", "170", "171", "176"};
	uint32_t tail = (uint32_t)(((uint64_t)a * i + b) % 10000000u);

	snprintf(d->number, sizeof(d->number), "+49%s%07u", prefixes[rng_below(&g->rng, 6)], tail);
}

/* Splits n devices over the enabled techs (see gen.h). Order: ble, lora,
 * wlan, cellular. */
static void split_devices(unsigned n, uint32_t techs, unsigned out[4])
{
	static const uint32_t bits[4] = {LABGW_TECH_BLE, LABGW_TECH_LORAWAN, LABGW_TECH_WLAN,
					 LABGW_TECH_CELLULAR};
	static const unsigned weights[4] = {50, 25, 20, 5};
	unsigned wsum = 0, given = 0;

	for (int t = 0; t < 4; t++)
		wsum += (techs & bits[t]) ? weights[t] : 0;
	for (int t = 0; t < 4; t++) {
		out[t] = (techs & bits[t]) ? n * weights[t] / wsum : 0;
		given += out[t];
	}
	for (int t = 0; t < 4 && given < n; t++) {
		if ((techs & bits[t]) && out[t] == 0) {
			out[t]++;
			given++;
		}
	}
	for (int t = 0; given < n; t = (t + 1) % 4) {
		if (techs & bits[t]) {
			out[t]++;
			given++;
		}
	}
}

struct sim_gen *sim_gen_new(uint32_t seed, unsigned n_devices, uint32_t techs)
{
	struct sim_gen *g;
	struct perm pb, pw;
	unsigned counts[4];
	uint32_t sms_a, sms_b;

	if (n_devices < 1 || n_devices > SIM_DEVICES_MAX || !techs || (techs & ~SIM_TECHS_ALL)) {
		errno = EINVAL;
		return NULL;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		goto nomem;
	g->seed = seed;
	g->techs = techs;
	rng_seed(&g->rng, 0x6c616267772d7369ull ^ seed); /* "labgw-si" */
	memcpy(g->k_sim, "labgw-sim", 9);
	put_be(&g->k_sim[12], seed, 4);
	g->crypto = lorawan_crypto_new();
	if (!g->crypto)
		goto nomem;

	split_devices(n_devices, techs, counts);
	g->n_ble = counts[0];
	g->n_lora = counts[1];
	g->n_wlan = counts[2];
	g->n_sms = counts[3];
	g->ble = calloc(g->n_ble ? g->n_ble : 1, sizeof(*g->ble));
	g->lora = calloc(g->n_lora ? g->n_lora : 1, sizeof(*g->lora));
	g->wlan = calloc(g->n_wlan ? g->n_wlan : 1, sizeof(*g->wlan));
	g->sms = calloc(g->n_sms ? g->n_sms : 1, sizeof(*g->sms));
	if (!g->ble || !g->lora || !g->wlan || !g->sms)
		goto nomem;

	perm_init(&pb, &g->rng, 24);
	perm_init(&pw, &g->rng, 24);
	perm_init(&g->lora_addr, &g->rng, 25);
	perm_init(&g->lora_eui, &g->rng, 28);
	sms_a = 1 + rng_below(&g->rng, 9999998u);
	while (sms_a % 2 == 0 || sms_a % 5 == 0)
		sms_a++;
	sms_b = rng_below(&g->rng, 10000000u);
	for (int k = 0; k < 2; k++) {
		rng_bytes(&g->rng, g->ibeacon_uuid[k], 16);
		g->ibeacon_uuid[k][6] = (uint8_t)((g->ibeacon_uuid[k][6] & 0x0f) | 0x40);
		g->ibeacon_uuid[k][8] = (uint8_t)((g->ibeacon_uuid[k][8] & 0x3f) | 0x80);
	}
	rng_bytes(&g->rng, g->eddy_ns, sizeof(g->eddy_ns));
	g->ssid = "oil-lab";

	for (unsigned i = 0; i < g->n_ble; i++)
		make_ble(g, &g->ble[i], &pb, i);
	for (unsigned i = 0; i < g->n_wlan; i++)
		make_wlan(g, &g->wlan[i], &pw, i);
	for (unsigned i = 0; i < g->n_lora; i++) {
		if (make_lora(g, &g->lora[i], i) < 0) {
			sim_gen_free(g);
			errno = EIO;
			return NULL;
		}
	}
	for (unsigned i = 0; i < g->n_sms; i++)
		make_sms(g, &g->sms[i], sms_a, sms_b, i);

	g->cell.at = rng_below(&g->rng, 100) < 70 ? 1 : 2;
	g->cell.home_op = rng_below(&g->rng, 3);
	g->cell.roam_op = rng_below(&g->rng, 2);
	g->cell.rsrp = rng_range(&g->rng, -110, -80);
	g->cell.rssi = g->cell.rsrp + 27;
	g->cell.rsrq10 = rng_range(&g->rng, -150, -60);
	g->cell.sinr10 = rng_range(&g->rng, 0, 200);

	g->w_ble = g->n_ble ? 55 : 0;
	g->w_lora = g->n_lora ? 22 : 0;
	g->w_wlan = g->n_wlan ? 18 : 0;
	g->w_cell = (techs & LABGW_TECH_CELLULAR) ? 5 : 0;
	return g;

nomem:
	sim_gen_free(g);
	errno = ENOMEM;
	return NULL;
}

void sim_gen_free(struct sim_gen *g)
{
	if (!g)
		return;
	lorawan_crypto_free(g->crypto);
	if (g->lora)
		memset(g->lora, 0, sizeof(*g->lora) * (g->n_lora ? g->n_lora : 1));
	free(g->ble);
	free(g->wlan);
	free(g->lora);
	free(g->sms);
	free(g);
}

unsigned sim_gen_devices(const struct sim_gen *g, enum labgw_tech tech)
{
	switch (tech) {
	case LABGW_TECH_BLE:
		return g->n_ble;
	case LABGW_TECH_WLAN:
		return g->n_wlan;
	case LABGW_TECH_LORAWAN:
		return g->n_lora;
	case LABGW_TECH_CELLULAR:
		return g->n_sms;
	case LABGW_TECH_NONE:
		break;
	}
	return 0;
}

int sim_gen_lorawan_keys(const struct sim_gen *g, uint32_t devaddr, uint8_t nwkskey[16],
			 uint8_t appskey[16])
{
	uint64_t i;

	if ((devaddr & ~DEVADDR_MASK) != DEVADDR_PREFIX)
		return -ENOENT;
	i = perm_inv(&g->lora_addr, devaddr & DEVADDR_MASK);
	if (i >= g->n_lora || g->lora[i].devaddr != devaddr)
		return -ENOENT;
	memcpy(nwkskey, g->lora[i].nwkskey, 16);
	memcpy(appskey, g->lora[i].appskey, 16);
	return 0;
}

int sim_gen_lorawan_appkey(const struct sim_gen *g, uint64_t dev_eui, uint8_t appkey[16])
{
	uint64_t i;

	if ((dev_eui & ~DEV_EUI_MASK) != DEV_EUI_PREFIX)
		return -ENOENT;
	i = perm_inv(&g->lora_eui, dev_eui & DEV_EUI_MASK);
	if (i >= g->n_lora || g->lora[i].dev_eui != dev_eui)
		return -ENOENT;
	memcpy(appkey, g->lora[i].appkey, 16);
	return 0;
}

/* ---- BLE -------------------------------------------------------------- */

/* Appends one AD structure; writes nothing and returns false when it would
 * not fit in the 31 bytes of legacy advertising data. */
static bool ad_put(struct sim_event *ev, uint8_t type, const void *data, size_t len,
		   uint8_t *value_off)
{
	uint8_t *p = ev->payload + ev->payload_len;

	if (ev->payload_len + 2 + len > SIM_BLE_ADV_MAX)
		return false;
	p[0] = (uint8_t)(len + 1);
	p[1] = type;
	memcpy(p + 2, data, len);
	if (value_off)
		*value_off = (uint8_t)(ev->payload_len + 2);
	ev->payload_len += 2 + len;
	return true;
}

static void ad_flags(struct sim_event *ev, uint8_t flags)
{
	ad_put(ev, 0x01, &flags, 1, NULL);
}

static void ad_name(struct sim_event *ev, const char *name)
{
	if (ad_put(ev, 0x09, name, strlen(name), NULL))
		snprintf(ev->u.ble.name, sizeof(ev->u.ble.name), "%s", name);
}

static void ad_tx_power(struct sim_event *ev, int dbm)
{
	uint8_t v = (uint8_t)(int8_t)dbm;

	if (ad_put(ev, 0x0a, &v, 1, NULL)) {
		ev->u.ble.has_tx_power = true;
		ev->u.ble.tx_power = dbm;
	}
}

static void ad_uuids(struct sim_event *ev, const uint16_t *uuids, unsigned n)
{
	uint8_t v[8];

	for (unsigned i = 0; i < n; i++) {
		v[2 * i] = (uint8_t)uuids[i];
		v[2 * i + 1] = (uint8_t)(uuids[i] >> 8);
	}
	if (ad_put(ev, 0x03, v, 2 * n, NULL)) {
		ev->u.ble.n_uuids = n;
		memcpy(ev->u.ble.uuids, uuids, n * sizeof(*uuids));
	}
}

static bool ad_mfr(struct sim_event *ev, uint16_t company, const uint8_t *data, size_t n)
{
	uint8_t v[SIM_BLE_ADV_MAX], off;

	if (n + 2 > sizeof(v))
		return false;
	v[0] = (uint8_t)company;
	v[1] = (uint8_t)(company >> 8);
	memcpy(v + 2, data, n);
	if (!ad_put(ev, 0xff, v, n + 2, &off))
		return false;
	ev->u.ble.has_mfr = true;
	ev->u.ble.company = company;
	ev->u.ble.mfr_off = (uint8_t)(off + 2);
	ev->u.ble.mfr_len = (uint8_t)n;
	return true;
}

static bool ad_svc(struct sim_event *ev, uint16_t uuid, const uint8_t *data, size_t n)
{
	uint8_t v[SIM_BLE_ADV_MAX], off;

	if (n + 2 > sizeof(v))
		return false;
	v[0] = (uint8_t)uuid;
	v[1] = (uint8_t)(uuid >> 8);
	memcpy(v + 2, data, n);
	if (!ad_put(ev, 0x16, v, n + 2, &off))
		return false;
	ev->u.ble.has_svc = true;
	ev->u.ble.svc_uuid = uuid;
	ev->u.ble.svc_off = (uint8_t)(off + 2);
	ev->u.ble.svc_len = (uint8_t)n;
	return true;
}

static void gen_ibeacon(struct sim_gen *g, struct ble_dev *d, struct sim_event *ev)
{
	struct sim_ble_adv *b = &ev->u.ble;
	const uint8_t *uuid = g->ibeacon_uuid[d->uuid_idx];
	uint8_t m[23];

	ad_flags(ev, 0x06);
	m[0] = 0x02; /* iBeacon type and length */
	m[1] = 0x15;
	memcpy(&m[2], uuid, 16);
	put_be(&m[18], d->major, 2);
	put_be(&m[20], d->minor, 2);
	m[22] = (uint8_t)(int8_t)d->tx_power;
	if (ad_mfr(ev, 0x004c, m, sizeof(m))) {
		b->beacon = SIM_BEACON_IBEACON;
		memcpy(b->ibeacon.uuid, uuid, 16);
		b->ibeacon.major = d->major;
		b->ibeacon.minor = d->minor;
		b->ibeacon.tx_power = d->tx_power;
	}
}

static void gen_eddystone(struct sim_gen *g, struct ble_dev *d, uint64_t now, struct sim_event *ev)
{
	static const uint16_t feaa = 0xfeaa;
	struct sim_ble_adv *b = &ev->u.ble;
	struct rng *r = &g->rng;
	uint8_t s[20];

	ad_flags(ev, 0x06);
	ad_uuids(ev, &feaa, 1);
	if (!d->boot_ms)
		d->boot_ms = now - (uint64_t)rng_range(r, 3600, 30 * 86400) * 1000;
	if (rng_below(r, 5) == 0) {
		uint64_t up = now > d->boot_ms ? now - d->boot_ms : 0;
		uint32_t sec_cnt = (uint32_t)(up / 100), adv = (uint32_t)(up / d->adv_interval_ms);

		d->batt_mv = walk(r, d->batt_mv, 2, 2600, 3100);
		d->temp256 = walk(r, d->temp256, 64, 10 * 256, 32 * 256);
		s[0] = 0x20; /* TLM, version 0 */
		s[1] = 0x00;
		put_be(&s[2], (uint16_t)d->batt_mv, 2);
		put_be(&s[4], (uint16_t)(int16_t)d->temp256, 2);
		put_be(&s[6], adv, 4);
		put_be(&s[10], sec_cnt, 4);
		if (ad_svc(ev, feaa, s, 14)) {
			b->beacon = SIM_BEACON_EDDYSTONE_TLM;
			b->eddystone.battery_mv = (uint16_t)d->batt_mv;
			b->eddystone.temp_c = (int16_t)d->temp256 / 256.0;
			b->eddystone.adv_count = adv;
			b->eddystone.uptime_s = sec_cnt / 10;
		}
	} else if (d->eddy_url) {
		s[0] = 0x10;
		s[1] = (uint8_t)(int8_t)d->tx_power;
		memcpy(&s[2], d->url_enc, d->url_enc_len);
		if (ad_svc(ev, feaa, s, 2 + (size_t)d->url_enc_len)) {
			b->beacon = SIM_BEACON_EDDYSTONE_URL;
			b->eddystone.tx_power = d->tx_power;
			snprintf(b->eddystone.url, sizeof(b->eddystone.url), "%s", d->url);
		}
	} else {
		s[0] = 0x00;
		s[1] = (uint8_t)(int8_t)d->tx_power;
		memcpy(&s[2], g->eddy_ns, 10);
		memcpy(&s[12], d->instance, 6);
		s[18] = 0; /* RFU */
		s[19] = 0;
		if (ad_svc(ev, feaa, s, 20)) {
			b->beacon = SIM_BEACON_EDDYSTONE_UID;
			b->eddystone.tx_power = d->tx_power;
			memcpy(b->eddystone.ns, g->eddy_ns, 10);
			memcpy(b->eddystone.instance, d->instance, 6);
		}
	}
}

static void gen_ble(struct sim_gen *g, uint64_t now, struct sim_event *ev)
{
	struct rng *r = &g->rng;
	struct ble_dev *d = &g->ble[rng_below(r, g->n_ble)];
	struct sim_ble_adv *b = &ev->u.ble;

	ev->tech = LABGW_TECH_BLE;
	ev->type = SIM_BLE_ADV;
	memcpy(ev->dev, d->addr, sizeof(d->addr));
	d->rssi = walk(r, d->rssi, 3, -100, -35);
	b->addr_random = d->random;
	b->rssi = d->rssi;

	switch (d->kind) {
	case BLE_IBEACON:
		gen_ibeacon(g, d, ev);
		break;
	case BLE_EDDYSTONE:
		gen_eddystone(g, d, now, ev);
		break;
	case BLE_PHONE:
		ad_flags(ev, 0x1a);
		if (d->company == 0x004c && rng_below(r, 4) == 0)
			d->mfr[2] = (uint8_t)rng_u64(r); /* status flags change */
		ad_mfr(ev, d->company, d->mfr, d->mfr_len);
		if (d->tx_power != -127)
			ad_tx_power(ev, d->tx_power);
		break;
	case BLE_SENSOR: {
		uint8_t s[11];

		d->packet_id++;
		d->temp100 = walk(r, d->temp100, 5, 1500, 3000);
		d->hum100 = walk(r, d->hum100, 20, 2000, 8000);
		if (rng_permille(r, 5))
			d->battery = clampi(d->battery - 1, 0, 100);
		ad_flags(ev, 0x06);
		ad_name(ev, d->name);
		s[0] = 0x40; /* BTHome v2, unencrypted */
		s[1] = 0x00; /* packet id */
		s[2] = d->packet_id;
		s[3] = 0x01; /* battery % */
		s[4] = (uint8_t)d->battery;
		s[5] = 0x02; /* temperature, 0.01 C, LE */
		s[6] = (uint8_t)(int16_t)d->temp100;
		s[7] = (uint8_t)((uint16_t)(int16_t)d->temp100 >> 8);
		s[8] = 0x03; /* humidity, 0.01 %, LE */
		s[9] = (uint8_t)d->hum100;
		s[10] = (uint8_t)(d->hum100 >> 8);
		ad_svc(ev, 0xfcd2, s, sizeof(s));
		break;
	}
	case BLE_WEARABLE: {
		static const uint16_t hr[] = {0x180d, 0x180f};

		ad_flags(ev, 0x06);
		ad_uuids(ev, hr, 2);
		ad_tx_power(ev, d->tx_power);
		ad_name(ev, d->name);
		break;
	}
	}
}

/* ---- WLAN ------------------------------------------------------------- */

static uint32_t wlan_bitrate(struct rng *r, bool band5, int signal)
{
	static const uint32_t r24[] = {6500,  13000, 19500, 26000, 39000,
				       52000, 58500, 65000, 72200, 144400};
	static const uint32_t r5[] = {29300,  58500,  87800,  117000, 175500, 234000,
				      263300, 292500, 390000, 433300, 866700};
	const uint32_t *t = band5 ? r5 : r24;
	int n = band5 ? 11 : 10;
	int idx = clampi((signal + 90) * (n - 1) / 55 + rng_range(r, -1, 1), 0, n - 1);

	return t[idx];
}

static void gen_wlan(struct sim_gen *g, uint64_t now, struct sim_event *ev)
{
	struct rng *r = &g->rng;
	struct sim_wlan_station *w = &ev->u.wlan;
	unsigned i = rng_below(r, g->n_wlan);
	struct wlan_dev *d = &g->wlan[i];
	uint64_t dt, down, up;

	/* A station that left recently stays away; report on a connected one. */
	if (!d->connected && now < d->left_ms + d->away_ms) {
		for (unsigned k = 1; k < g->n_wlan; k++) {
			struct wlan_dev *o = &g->wlan[(i + k) % g->n_wlan];

			if (o->connected) {
				d = o;
				break;
			}
		}
	}
	ev->tech = LABGW_TECH_WLAN;
	ev->type = SIM_WLAN_STATION;
	memcpy(ev->dev, d->mac, sizeof(d->mac));
	w->ssid = g->ssid;
	w->freq_hz = d->band5 ? 5180000000ull : 2437000000ull;

	if (!d->connected) {
		d->connected = true;
		d->joined_ms = now;
		d->last_ms = now;
		d->signal = walk(r, d->signal, 6, -85, -30);
		d->avg = d->signal;
		w->event = SIM_WLAN_JOINED;
		w->signal_dbm = d->signal;
		w->signal_avg_dbm = d->avg;
		return;
	}
	w->connected_s = (uint32_t)(now > d->joined_ms ? (now - d->joined_ms) / 1000 : 0);
	if (rng_permille(r, 30)) {
		d->connected = false;
		d->left_ms = now;
		d->away_ms = (uint32_t)rng_range(r, 5000, 120000);
		w->event = SIM_WLAN_LEFT;
		return;
	}

	dt = now > d->last_ms ? now - d->last_ms : 0;
	if (dt > 60000)
		dt = 60000;
	d->last_ms = now > d->last_ms ? now : d->last_ms;
	d->signal = walk(r, d->signal, 3, -90, -30);
	d->avg = (d->avg * 7 + d->signal) / 8;
	down = (uint64_t)d->load * dt / 1000 * (uint64_t)rng_range(r, 50, 150) / 100 + 120;
	up = down / (uint64_t)rng_range(r, 4, 20) + 80;
	d->tx_bytes += down;
	d->rx_bytes += up;
	d->tx_packets += down / (uint64_t)rng_range(r, 400, 1500) + 1;
	d->rx_packets += up / (uint64_t)rng_range(r, 60, 600) + 1;

	w->event = SIM_WLAN_SIGNAL;
	w->signal_dbm = d->signal;
	w->signal_avg_dbm = d->avg;
	w->tx_bitrate_kbps = wlan_bitrate(r, d->band5, d->signal);
	w->rx_bitrate_kbps = wlan_bitrate(r, d->band5, d->signal - 3);
	w->rx_bytes = d->rx_bytes;
	w->tx_bytes = d->tx_bytes;
	w->rx_packets = d->rx_packets;
	w->tx_packets = d->tx_packets;
}

/* ---- LoRaWAN ---------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void lora_rx(struct sim_gen *g, struct lora_dev *d, struct sim_lora_rx *rx)
{
	static const uint32_t khz[8] = {868100, 868300, 868500, 867100,
					867300, 867500, 867700, 867900};
	struct rng *r = &g->rng;
	int chan = (int)rng_below(r, 8);

	d->rssi = walk(r, d->rssi, 4, -125, -40);
	d->snr10 = walk(r, d->snr10, 10, -200, 120);
	if (d->adr && rng_permille(r, 20))
		d->sf = walk(r, d->sf, 1, 7, 12);
	rx->rssi = d->rssi;
	rx->snr = d->snr10 / 10.0;
	rx->freq_hz = (uint64_t)khz[chan] * 1000;
	rx->sf = d->sf;
	rx->bw_hz = 125000;
	rx->codr = "4/5";
	rx->chan = chan;
	rx->rfch = chan < 3 ? 1 : 0;
}

/* Cayenne LPP record: channel, type, big-endian value of n bytes. */
static size_t lpp(uint8_t *p, uint8_t ch, uint8_t type, int64_t v, size_t n)
{
	p[0] = ch;
	p[1] = type;
	put_be(&p[2], (uint64_t)v, n);
	return 2 + n;
}

static size_t lora_plain(struct sim_gen *g, struct lora_dev *d, uint8_t *p)
{
	struct rng *r = &g->rng;
	size_t n = 0;

	switch (d->kind) {
	case LORA_ENV:
		d->temp10 = walk(r, d->temp10, 3, -200, 400);
		d->hum2 = walk(r, d->hum2, 2, 20, 200);
		d->press10 = walk(r, d->press10, 5, 9500, 10500);
		n += lpp(p + n, 1, 0x67, d->temp10, 2);
		n += lpp(p + n, 2, 0x68, d->hum2, 1);
		n += lpp(p + n, 3, 0x73, d->press10, 2);
		break;
	case LORA_TRACKER:
		d->lat = walk(r, d->lat, 20, 520000, 530000);
		d->lon = walk(r, d->lon, 30, 130000, 140000);
		d->alt = walk(r, d->alt, 50, 0, 20000);
		if (rng_permille(r, 20))
			d->batt100 = clampi(d->batt100 - 1, 300, 420);
		p[n++] = 1;
		p[n++] = 0x88;
		put_be(p + n, (uint64_t)d->lat, 3);
		put_be(p + n + 3, (uint64_t)d->lon, 3);
		put_be(p + n + 6, (uint64_t)d->alt, 3);
		n += 9;
		n += lpp(p + n, 2, 0x02, d->batt100, 2);
		break;
	case LORA_METER:
		if (rng_permille(r, 100))
			d->din = !d->din;
		d->ain100 = walk(r, d->ain100, 50, 0, 30000);
		n += lpp(p + n, 1, 0x00, d->din, 1);
		n += lpp(p + n, 2, 0x02, d->ain100, 2);
		break;
	}
	return n;
}

static int gen_lora_uplink(struct sim_gen *g, struct lora_dev *d, struct sim_event *ev)
{
	struct sim_lorawan_uplink *u = &ev->u.up;
	uint8_t *p = ev->payload;
	size_t n;
	int rc;

	ev->type = SIM_LORAWAN_UPLINK;
	memcpy(ev->dev, d->devaddr_str, sizeof(d->devaddr_str));
	lora_rx(g, d, &u->rx);
	u->confirmed = d->confirmed;
	u->devaddr = d->devaddr;
	u->adr = d->adr;
	u->ack = rng_permille(&g->rng, 10);
	u->fopts_len = 0;
	u->fcnt = d->fcnt++;
	u->fport = d->fport;
	n = lora_plain(g, d, u->plain);

	p[0] = d->confirmed ? 0x80 : 0x40;
	put_le(&p[1], d->devaddr, 4);
	p[5] = (uint8_t)((u->adr ? 0x80 : 0) | (u->ack ? 0x20 : 0));
	put_le(&p[6], u->fcnt, 2);
	p[8] = u->fport;
	u->frm_off = 9;
	u->frm_len = (uint8_t)n;
	rc = lorawan_crypto_frm_payload(g->crypto, d->appskey, LORAWAN_DIR_UP, d->devaddr, u->fcnt,
					u->plain, n, p + 9);
	if (rc == 0)
		rc = lorawan_crypto_data_mic(g->crypto, d->nwkskey, LORAWAN_DIR_UP, d->devaddr,
					     u->fcnt, p, 9 + n, u->mic);
	if (rc < 0)
		return rc;
	memcpy(p + 9 + n, u->mic, 4);
	ev->payload_len = 9 + n + 4;
	return 0;
}

static int gen_lora_join(struct sim_gen *g, struct lora_dev *d, struct sim_event *ev)
{
	struct sim_lorawan_join *j = &ev->u.join;
	uint8_t *p = ev->payload;
	int rc;

	ev->type = SIM_LORAWAN_JOIN;
	memcpy(ev->dev, d->dev_eui_str, sizeof(d->dev_eui_str));
	lora_rx(g, d, &j->rx);
	memcpy(j->join_eui, d->join_eui_str, sizeof(j->join_eui));
	memcpy(j->dev_eui, d->dev_eui_str, sizeof(j->dev_eui));
	j->join_eui_v = d->join_eui;
	j->dev_eui_v = d->dev_eui;
	j->dev_nonce = ++d->dev_nonce;
	p[0] = 0x00;
	put_le(&p[1], d->join_eui, 8);
	put_le(&p[9], d->dev_eui, 8);
	put_le(&p[17], j->dev_nonce, 2);
	rc = lorawan_crypto_join_request_mic(g->crypto, d->appkey, p, 19, j->mic);
	if (rc < 0)
		return rc;
	memcpy(p + 19, j->mic, 4);
	ev->payload_len = 23;
	return 0;
}

static int gen_lora(struct sim_gen *g, struct sim_event *ev)
{
	struct lora_dev *d = &g->lora[rng_below(&g->rng, g->n_lora)];

	ev->tech = LABGW_TECH_LORAWAN;
	if (rng_permille(&g->rng, 30))
		return gen_lora_join(g, d, ev);
	return gen_lora_uplink(g, d, ev);
}

/* ---- cellular --------------------------------------------------------- */

static const char *const access_techs[] = {"umts", "lte", "5gnr"};
static const char *const home_ops[][2] = {
	{"26201", "Telekom.de"}, {"26202", "Vodafone.de"}, {"26203", "o2 - de"}};
static const char *const roam_ops[][2] = {{"22801", "Swisscom"}, {"20801", "Orange F"}};

static void gen_cell_signal(struct sim_gen *g, struct sim_event *ev)
{
	struct rng *r = &g->rng;
	struct cell_state *c = &g->cell;
	struct sim_cell_signal *s = &ev->u.cell;

	ev->type = SIM_CELL_SIGNAL;
	if (rng_permille(r, 30)) {
		unsigned k = rng_below(r, 100);

		c->at = k < 70 ? 1 : k < 95 ? 2 : 0;
	}
	if (rng_permille(r, 5))
		c->roaming = !c->roaming;
	c->rsrp = walk(r, c->rsrp, 2, -125, -70);
	c->rsrq10 = walk(r, c->rsrq10, 5, -195, -30);
	c->sinr10 = walk(r, c->sinr10, 10, -50, 300);
	s->access_tech = access_techs[c->at];
	switch (c->at) {
	case 0: /* UMTS: RSSI only */
		c->rssi = walk(r, c->rssi, 2, -105, -55);
		s->has_rssi = true;
		s->rssi = c->rssi;
		break;
	case 1:
		c->rssi = clampi(c->rsrp + 27 + rng_range(r, -2, 2), -113, -51);
		s->has_rssi = true;
		s->rssi = c->rssi;
		/* fall through */
	case 2:
		s->has_rsrp = s->has_rsrq = s->has_sinr = true;
		s->rsrp = c->rsrp;
		s->rsrq = c->rsrq10 / 10.0;
		s->sinr = (c->at == 1 ? clampi(c->sinr10, -50, 250) : c->sinr10) / 10.0;
		break;
	}
	if (c->roaming) {
		s->operator_code = roam_ops[c->roam_op][0];
		s->operator_name = roam_ops[c->roam_op][1];
		s->registration = "roaming";
	} else {
		s->operator_code = home_ops[c->home_op][0];
		s->operator_name = home_ops[c->home_op][1];
		s->registration = "home";
	}
}

static void gen_cell_sms(struct sim_gen *g, uint64_t now, struct sim_event *ev)
{
	static const char *const texts[][2] = {
		{"Test ", " from the lab"},	    {"Hallo Labor, Nachricht Nr. ", ""},
		{"Grüße aus Raum ", "!"},	    {"PING ", ""},
		{"Sensor ", ": 21,5 °C, alles ok"}, {"Meeting moved to room ", " 🙂"},
	};
	struct rng *r = &g->rng;
	struct sms_dev *d = &g->sms[rng_below(r, g->n_sms)];
	struct sim_cell_sms *s = &ev->u.sms;
	unsigned t = rng_below(r, 6), delay = (unsigned)rng_range(r, 500, 6000);
	time_t sec;
	struct tm tm;

	ev->type = SIM_CELL_SMS;
	memcpy(ev->dev, d->number, sizeof(d->number));
	snprintf(s->text, sizeof(s->text), "%s%u%s", texts[t][0], ++d->sent, texts[t][1]);
	ev->payload_len = strlen(s->text);
	memcpy(ev->payload, s->text, ev->payload_len);
	sec = (time_t)((now > delay ? now - delay : 0) / 1000);
	gmtime_r(&sec, &tm);
	strftime(s->timestamp, sizeof(s->timestamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void gen_cell(struct sim_gen *g, uint64_t now, struct sim_event *ev)
{
	ev->tech = LABGW_TECH_CELLULAR;
	if (g->n_sms && rng_below(&g->rng, 5) == 0)
		gen_cell_sms(g, now, ev);
	else
		gen_cell_signal(g, ev);
}

/* ---- the next frame ---------------------------------------------------- */

int sim_gen_next(struct sim_gen *g, uint64_t now_ms, struct sim_event *ev)
{
	unsigned pick;
	int rc = 0;

	memset(ev, 0, sizeof(*ev));
	pick = rng_below(&g->rng, g->w_ble + g->w_lora + g->w_wlan + g->w_cell);
	if (pick < g->w_ble) {
		gen_ble(g, now_ms, ev);
	} else if ((pick -= g->w_ble) < g->w_lora) {
		rc = gen_lora(g, ev);
	} else if ((pick -= g->w_lora) < g->w_wlan) {
		gen_wlan(g, now_ms, ev);
	} else {
		gen_cell(g, now_ms, ev);
	}
	ev->type_name = type_names[ev->type];
	return rc;
}
