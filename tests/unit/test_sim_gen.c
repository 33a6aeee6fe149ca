// SPDX-License-Identifier: MIT
/*
 * The sim generator: determinism, the mix of techs, and that every frame is
 * what a real receiver would make of it: BLE adverts parse as AD structures
 * that decode to the reported fields, LoRaWAN MICs verify under the keys of
 * the documented derivation and FRMPayloads decrypt, counters only grow,
 * WLAN stations join before anything else.
 */
#include <ctype.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "../../plugins/shared/lorawan_crypto.h"
#include "../../plugins/sim/gen.h"

#define T0 1764146401000ull /* 2025-11-26T08:40:01Z */

static struct sim_event ev, ev2;

/* ---- helpers ---------------------------------------------------------- */

static uint64_t get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* The key derivation as documented in gen.h, done with plain OpenSSL. */
static void doc_derive(uint32_t seed, uint8_t label, uint64_t id, size_t id_len, uint8_t out[16])
{
	uint8_t k[16] = "labgw-sim", in[16] = {0};
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int n = 0;

	k[12] = (uint8_t)(seed >> 24);
	k[13] = (uint8_t)(seed >> 16);
	k[14] = (uint8_t)(seed >> 8);
	k[15] = (uint8_t)seed;
	in[0] = label;
	for (size_t i = 0; i < id_len; i++)
		in[1 + i] = (uint8_t)(id >> (8 * (id_len - 1 - i)));
	assert_non_null(c);
	assert_int_equal(EVP_EncryptInit_ex(c, EVP_aes_128_ecb(), NULL, k, NULL), 1);
	EVP_CIPHER_CTX_set_padding(c, 0);
	assert_int_equal(EVP_EncryptUpdate(c, out, &n, in, 16), 1);
	assert_int_equal(n, 16);
	EVP_CIPHER_CTX_free(c);
}

struct seen {
	char dev[24];
	uint64_t last; /* fcnt, dev_nonce, ... */
	int state;     /* WLAN: 0 never seen, 1 connected, 2 left */
	uint64_t counters[4];
	uint32_t connected_s;
};

static struct seen *seen_get(struct seen *tab, size_t cap, size_t *n, const char *dev)
{
	for (size_t i = 0; i < *n; i++) {
		if (!strcmp(tab[i].dev, dev))
			return &tab[i];
	}
	assert_true(*n < cap);
	memset(&tab[*n], 0, sizeof(tab[*n]));
	snprintf(tab[*n].dev, sizeof(tab[*n].dev), "%s", dev);
	return &tab[(*n)++];
}

/* ---- determinism and mix ----------------------------------------------- */

static void same_seed_same_sequence(void **st)
{
	struct sim_gen *a = sim_gen_new(7, 40, SIM_TECHS_ALL);
	struct sim_gen *b = sim_gen_new(7, 40, SIM_TECHS_ALL);
	struct sim_gen *c = sim_gen_new(8, 40, SIM_TECHS_ALL);
	unsigned differ = 0;

	(void)st;
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	for (unsigned i = 0; i < 5000; i++) {
		assert_int_equal(sim_gen_next(a, T0 + i * 37ull, &ev), 0);
		assert_int_equal(sim_gen_next(b, T0 + i * 37ull, &ev2), 0);
		assert_memory_equal(&ev, &ev2, sizeof(ev));
		assert_int_equal(sim_gen_next(c, T0 + i * 37ull, &ev2), 0);
		if (strcmp(ev.dev, ev2.dev) || ev.payload_len != ev2.payload_len ||
		    memcmp(ev.payload, ev2.payload, ev.payload_len))
			differ++;
	}
	/* another seed: other devices, other frames */
	assert_true(differ > 4500);
	sim_gen_free(a);
	sim_gen_free(b);
	sim_gen_free(c);
}

static void keys_follow_seed(void **st)
{
	struct sim_gen *a = sim_gen_new(7, 40, SIM_TECHS_ALL);
	struct sim_gen *b = sim_gen_new(7, 40, SIM_TECHS_ALL);
	uint8_t n1[16], s1[16], n2[16], s2[16];
	unsigned found = 0;

	(void)st;
	for (unsigned i = 0; i < 2000 && found < 5; i++) {
		assert_int_equal(sim_gen_next(a, T0 + i, &ev), 0);
		if (ev.type != SIM_LORAWAN_UPLINK)
			continue;
		assert_int_equal(sim_gen_lorawan_keys(a, ev.u.up.devaddr, n1, s1), 0);
		assert_int_equal(sim_gen_lorawan_keys(b, ev.u.up.devaddr, n2, s2), 0);
		assert_memory_equal(n1, n2, 16);
		assert_memory_equal(s1, s2, 16);
		assert_memory_not_equal(n1, s1, 16);
		found++;
	}
	assert_int_equal(found, 5);
	/* not a simulated device */
	assert_int_equal(sim_gen_lorawan_keys(a, 0x12345678u, n1, s1), -ENOENT);
	assert_int_equal(sim_gen_lorawan_appkey(a, 0x0011223344556677ull, n1), -ENOENT);
	{
		unsigned enoent = 0;

		for (uint32_t x = 0x26000000u; x < 0x26000040u; x++)
			enoent += sim_gen_lorawan_keys(a, x, n1, s1) == -ENOENT;
		assert_true(enoent > 50);
	}
	sim_gen_free(a);
	sim_gen_free(b);
}

static void every_tech_in_its_share(void **st)
{
	struct sim_gen *g = sim_gen_new(1, 40, SIM_TECHS_ALL);
	unsigned by_type[8] = {0}, by_tech[16] = {0};
	const unsigned n = 20000;

	(void)st;
	assert_non_null(g);
	assert_int_equal(sim_gen_devices(g, LABGW_TECH_BLE) + sim_gen_devices(g, LABGW_TECH_WLAN) +
				 sim_gen_devices(g, LABGW_TECH_LORAWAN) +
				 sim_gen_devices(g, LABGW_TECH_CELLULAR),
			 40);
	for (unsigned i = 0; i < n; i++) {
		assert_int_equal(sim_gen_next(g, T0 + i * 10ull, &ev), 0);
		assert_in_range(ev.type, SIM_BLE_ADV, SIM_CELL_SMS);
		by_type[ev.type]++;
		by_tech[ev.tech]++;
		assert_non_null(ev.type_name);
	}
	for (int t = SIM_BLE_ADV; t <= SIM_CELL_SMS; t++)
		assert_true(by_type[t] > 0);
	/* BLE most frequent, then LoRaWAN, WLAN, cellular rarest */
	assert_true(by_tech[LABGW_TECH_BLE] > by_tech[LABGW_TECH_LORAWAN]);
	assert_true(by_tech[LABGW_TECH_LORAWAN] > by_tech[LABGW_TECH_WLAN]);
	assert_true(by_tech[LABGW_TECH_WLAN] > by_tech[LABGW_TECH_CELLULAR]);
	assert_in_range(by_tech[LABGW_TECH_BLE], n * 50 / 100, n * 60 / 100);
	assert_in_range(by_tech[LABGW_TECH_CELLULAR], n * 3 / 100, n * 7 / 100);
	sim_gen_free(g);
}

static void only_enabled_techs(void **st)
{
	struct sim_gen *g = sim_gen_new(3, 40, LABGW_TECH_LORAWAN | LABGW_TECH_CELLULAR);
	struct sim_gen *one = sim_gen_new(3, 1, LABGW_TECH_BLE);
	char first[24];
	unsigned lora = 0, cell = 0;

	(void)st;
	assert_non_null(g);
	assert_non_null(one);
	assert_int_equal(sim_gen_devices(g, LABGW_TECH_BLE), 0);
	assert_int_equal(sim_gen_devices(g, LABGW_TECH_WLAN), 0);
	for (unsigned i = 0; i < 3000; i++) {
		assert_int_equal(sim_gen_next(g, T0 + i, &ev), 0);
		assert_true(ev.tech == LABGW_TECH_LORAWAN || ev.tech == LABGW_TECH_CELLULAR);
		lora += ev.tech == LABGW_TECH_LORAWAN;
		cell += ev.tech == LABGW_TECH_CELLULAR;
	}
	assert_true(lora > 0 && cell > 0);
	assert_int_equal(sim_gen_next(one, T0, &ev), 0);
	snprintf(first, sizeof(first), "%s", ev.dev);
	for (unsigned i = 0; i < 200; i++) {
		assert_int_equal(sim_gen_next(one, T0 + i, &ev), 0);
		assert_int_equal(ev.tech, LABGW_TECH_BLE);
		assert_string_equal(ev.dev, first);
	}
	sim_gen_free(g);
	sim_gen_free(one);
}

static void bad_arguments(void **st)
{
	(void)st;
	errno = 0;
	assert_null(sim_gen_new(1, 0, SIM_TECHS_ALL));
	assert_int_equal(errno, EINVAL);
	assert_null(sim_gen_new(1, SIM_DEVICES_MAX + 1, SIM_TECHS_ALL));
	assert_null(sim_gen_new(1, 10, 0));
	assert_null(sim_gen_new(1, 10, 1u << 7));
}

/* ---- BLE -------------------------------------------------------------- */

/* Eddystone-URL expansion, from the Eddystone specification's tables. */
static void eddystone_url_decode(const uint8_t *p, size_t n, char *out, size_t cap)
{
	static const char *const schemes[] = {"http://www.", "https://www.", "http://", "https://"};
	static const char *const exp[] = {".com/", ".org/", ".edu/", ".net/", ".info/",
					  ".biz/", ".gov/", ".com",  ".org",  ".edu",
					  ".net",  ".info", ".biz",  ".gov"};
	size_t len;

	assert_true(n >= 1);
	assert_true(p[0] < 4);
	snprintf(out, cap, "%s", schemes[p[0]]);
	len = strlen(out);
	for (size_t i = 1; i < n; i++) {
		const char *add;
		char one[2] = {(char)p[i], 0};

		if (p[i] < 14) {
			add = exp[p[i]];
		} else {
			assert_true(p[i] > 0x20 && p[i] < 0x7f);
			add = one;
		}
		assert_true(len + strlen(add) < cap);
		memcpy(out + len, add, strlen(add) + 1);
		len += strlen(add);
	}
}

static void check_ble(const struct sim_event *e, unsigned *kinds)
{
	const struct sim_ble_adv *b = &e->u.ble;
	bool saw_name = false, saw_txp = false, saw_uuids = false, saw_mfr = false, saw_svc = false;
	unsigned flags = 0;
	size_t i = 0;

	assert_int_equal(e->tech, LABGW_TECH_BLE);
	assert_string_equal(e->type_name, "rx.ble.adv");
	/* the address: lowercase, colon separated; random ones carry the
	 * static (11) or resolvable (01) marker in the top bits */
	assert_int_equal(strlen(e->dev), 17);
	for (int k = 0; k < 17; k++) {
		if (k % 3 == 2)
			assert_int_equal(e->dev[k], ':');
		else
			assert_true(isxdigit((unsigned char)e->dev[k]) &&
				    !isupper((unsigned char)e->dev[k]));
	}
	if (b->addr_random) {
		unsigned top = (unsigned)strtoul(e->dev, NULL, 16) >> 6;

		assert_true(top == 3 || top == 1);
	}
	assert_in_range(b->rssi + 200, -100 + 200, -35 + 200);
	assert_in_range(e->payload_len, 3, SIM_BLE_ADV_MAX);

	while (i < e->payload_len) {
		const uint8_t *p = e->payload + i;
		size_t len = p[0], vlen;
		const uint8_t *v = p + 2;

		assert_true(len >= 1);
		assert_true(i + 1 + len <= e->payload_len);
		vlen = len - 1;
		switch (p[1]) {
		case 0x01:
			assert_int_equal(vlen, 1);
			flags = v[0];
			break;
		case 0x09:
			saw_name = true;
			assert_int_equal(strlen(b->name), vlen);
			assert_memory_equal(b->name, v, vlen);
			break;
		case 0x0a:
			saw_txp = true;
			assert_int_equal(vlen, 1);
			assert_true(b->has_tx_power);
			assert_int_equal(b->tx_power, (int8_t)v[0]);
			break;
		case 0x03:
			saw_uuids = true;
			assert_int_equal(vlen, 2 * b->n_uuids);
			for (unsigned k = 0; k < b->n_uuids; k++)
				assert_int_equal(get_le(v + 2 * k, 2), b->uuids[k]);
			break;
		case 0xff:
			saw_mfr = true;
			assert_true(b->has_mfr);
			assert_true(vlen >= 2);
			assert_int_equal(get_le(v, 2), b->company);
			assert_int_equal(b->mfr_len, vlen - 2);
			assert_ptr_equal(e->payload + b->mfr_off, v + 2);
			if (b->company == 0x004c && vlen == 25 && v[2] == 0x02 && v[3] == 0x15) {
				assert_int_equal(b->beacon, SIM_BEACON_IBEACON);
				assert_memory_equal(b->ibeacon.uuid, v + 4, 16);
				assert_int_equal(b->ibeacon.major, get_be(v + 20, 2));
				assert_int_equal(b->ibeacon.minor, get_be(v + 22, 2));
				assert_int_equal(b->ibeacon.tx_power, (int8_t)v[24]);
				kinds[SIM_BEACON_IBEACON]++;
			}
			break;
		case 0x16:
			saw_svc = true;
			assert_true(b->has_svc);
			assert_true(vlen >= 2);
			assert_int_equal(get_le(v, 2), b->svc_uuid);
			assert_int_equal(b->svc_len, vlen - 2);
			assert_ptr_equal(e->payload + b->svc_off, v + 2);
			if (b->svc_uuid == 0xfcd2) {
				/* BTHome v2: packet id, battery, temperature, humidity */
				const uint8_t *s = v + 2;

				assert_int_equal(vlen - 2, 11);
				assert_int_equal(s[0], 0x40);
				assert_true(s[1] == 0x00 && s[3] == 0x01 && s[5] == 0x02 &&
					    s[8] == 0x03);
				assert_in_range(s[4], 0, 100);
				assert_in_range((int16_t)get_le(s + 6, 2) + 10000, -4000 + 10000,
						6000 + 10000);
				assert_in_range(get_le(s + 9, 2), 1000, 10000);
			}
			if (b->svc_uuid == 0xfeaa) {
				const uint8_t *s = v + 2;

				switch (s[0]) {
				case 0x00:
					assert_int_equal(vlen - 2, 20);
					assert_int_equal(b->beacon, SIM_BEACON_EDDYSTONE_UID);
					assert_int_equal(b->eddystone.tx_power, (int8_t)s[1]);
					assert_memory_equal(b->eddystone.ns, s + 2, 10);
					assert_memory_equal(b->eddystone.instance, s + 12, 6);
					break;
				case 0x10: {
					char url[64];

					assert_int_equal(b->beacon, SIM_BEACON_EDDYSTONE_URL);
					assert_int_equal(b->eddystone.tx_power, (int8_t)s[1]);
					assert_in_range(vlen - 2 - 2, 1, 18);
					eddystone_url_decode(s + 2, vlen - 4, url, sizeof(url));
					assert_string_equal(url, b->eddystone.url);
					break;
				}
				case 0x20:
					assert_int_equal(vlen - 2, 14);
					assert_int_equal(s[1], 0);
					assert_int_equal(b->beacon, SIM_BEACON_EDDYSTONE_TLM);
					assert_int_equal(b->eddystone.battery_mv, get_be(s + 2, 2));
					assert_true(b->eddystone.temp_c ==
						    (int16_t)get_be(s + 4, 2) / 256.0);
					assert_int_equal(b->eddystone.adv_count, get_be(s + 6, 4));
					assert_int_equal(b->eddystone.uptime_s,
							 get_be(s + 10, 4) / 10);
					break;
				default:
					fail_msg("unknown Eddystone frame 0x%02x", s[0]);
				}
				kinds[b->beacon]++;
			}
			break;
		default:
			fail_msg("unexpected AD type 0x%02x", p[1]);
		}
		i += 1 + len;
	}
	assert_int_equal(i, e->payload_len);
	assert_true(flags != 0);
	/* nothing decoded that is not in the bytes */
	assert_int_equal(saw_name, b->name[0] != 0);
	assert_int_equal(saw_txp, b->has_tx_power);
	assert_int_equal(saw_uuids, b->n_uuids > 0);
	assert_int_equal(saw_mfr, b->has_mfr);
	assert_int_equal(saw_svc, b->has_svc);
	if (b->beacon == SIM_BEACON_NONE)
		kinds[0]++;
}

static void ble_adverts_decode_from_bytes(void **st)
{
	struct sim_gen *g = sim_gen_new(11, 200, LABGW_TECH_BLE);
	unsigned kinds[8] = {0}, names = 0, txp = 0;

	(void)st;
	assert_non_null(g);
	for (unsigned i = 0; i < 20000; i++) {
		assert_int_equal(sim_gen_next(g, T0 + i * 20ull, &ev), 0);
		check_ble(&ev, kinds);
		names += ev.u.ble.name[0] != 0;
		txp += ev.u.ble.has_tx_power;
	}
	for (int k = SIM_BEACON_NONE; k <= SIM_BEACON_EDDYSTONE_TLM; k++)
		assert_true(kinds[k] > 0);
	assert_true(names > 0 && names < 20000);
	assert_true(txp > 0);
	sim_gen_free(g);
}

/* ---- LoRaWAN ---------------------------------------------------------- */

/* Cayenne LPP: channel, type, value of a size fixed by the type. */
static void check_lpp(const uint8_t *p, size_t n)
{
	size_t i = 0;

	assert_true(n > 0);
	while (i < n) {
		size_t sz = 0;

		assert_true(i + 2 <= n);
		switch (p[i + 1]) {
		case 0x00: /* digital input */
		case 0x68: /* humidity */
			sz = 1;
			break;
		case 0x02: /* analog input */
		case 0x67: /* temperature */
		case 0x73: /* barometer */
			sz = 2;
			break;
		case 0x88: /* GPS */
			sz = 9;
			break;
		default:
			fail_msg("unexpected LPP type 0x%02x", p[i + 1]);
		}
		i += 2 + sz;
	}
	assert_int_equal(i, n);
}

static void check_lora_rx(const struct sim_lora_rx *rx)
{
	static const uint32_t khz[8] = {868100, 868300, 868500, 867100,
					867300, 867500, 867700, 867900};

	assert_in_range(rx->chan, 0, 7);
	assert_int_equal(rx->freq_hz, (uint64_t)khz[rx->chan] * 1000);
	assert_int_equal(rx->rfch, rx->chan < 3 ? 1 : 0);
	assert_in_range(rx->sf, 7, 12);
	assert_int_equal(rx->bw_hz, 125000);
	assert_string_equal(rx->codr, "4/5");
	assert_in_range(rx->rssi + 200, -125 + 200, -40 + 200);
	assert_true(rx->snr >= -20.0 && rx->snr <= 12.0);
}

static void lorawan_frames_verify(void **st)
{
	const uint32_t seed = 4242;
	struct sim_gen *g = sim_gen_new(seed, 60, LABGW_TECH_LORAWAN);
	static struct seen devs[128], euis[128];
	size_t ndevs = 0, neuis = 0;
	unsigned ups = 0, joins = 0, confirmed = 0;

	(void)st;
	assert_non_null(g);
	for (unsigned i = 0; i < 20000; i++) {
		const uint8_t *p = ev.payload;
		char str[40];

		assert_int_equal(sim_gen_next(g, T0 + i * 100ull, &ev), 0);
		assert_int_equal(ev.tech, LABGW_TECH_LORAWAN);
		if (ev.type == SIM_LORAWAN_UPLINK) {
			const struct sim_lorawan_uplink *u = &ev.u.up;
			uint8_t nwk[16], app[16], dnwk[16], dapp[16], mic[4], plain[64];
			size_t n = ev.payload_len, frm = n - 13;
			struct seen *s;

			ups++;
			assert_string_equal(ev.type_name, "rx.lorawan.uplink");
			check_lora_rx(&u->rx);
			assert_in_range(n, 13 + 1, 13 + SIM_FRM_MAX);
			assert_int_equal(p[0], u->confirmed ? 0x80 : 0x40);
			confirmed += u->confirmed;
			assert_int_equal(get_le(p + 1, 4), u->devaddr);
			snprintf(str, sizeof(str), "%08x", u->devaddr);
			assert_string_equal(ev.dev, str);
			assert_int_equal(p[5] & 0x0f, 0);
			assert_int_equal(u->fopts_len, 0);
			assert_int_equal(!!(p[5] & 0x80), u->adr);
			assert_int_equal(!!(p[5] & 0x20), u->ack);
			assert_int_equal(get_le(p + 6, 2), u->fcnt & 0xffff);
			assert_int_equal(p[8], u->fport);
			assert_in_range(u->fport, 1, 223);
			assert_int_equal(u->frm_off, 9);
			assert_int_equal(u->frm_len, frm);
			assert_memory_equal(p + n - 4, u->mic, 4);

			/* keys: the generator's and the documented derivation agree */
			assert_int_equal(sim_gen_lorawan_keys(g, u->devaddr, nwk, app), 0);
			doc_derive(seed, 0x01, u->devaddr, 4, dnwk);
			doc_derive(seed, 0x02, u->devaddr, 4, dapp);
			assert_memory_equal(nwk, dnwk, 16);
			assert_memory_equal(app, dapp, 16);

			assert_int_equal(lorawan_crypto_data_mic(NULL, nwk, LORAWAN_DIR_UP,
								 u->devaddr, u->fcnt, p, n - 4,
								 mic),
					 0);
			assert_memory_equal(mic, p + n - 4, 4);
			assert_int_equal(lorawan_crypto_frm_payload(NULL, app, LORAWAN_DIR_UP,
								    u->devaddr, u->fcnt, p + 9, frm,
								    plain),
					 0);
			assert_memory_equal(plain, u->plain, frm);
			check_lpp(plain, frm);

			s = seen_get(devs, 128, &ndevs, ev.dev);
			if (s->state)
				assert_true(u->fcnt > s->last);
			s->state = 1;
			s->last = u->fcnt;
		} else {
			const struct sim_lorawan_join *j = &ev.u.join;
			uint8_t key[16], dkey[16], mic[4];
			struct seen *s;

			assert_int_equal(ev.type, SIM_LORAWAN_JOIN);
			assert_string_equal(ev.type_name, "rx.lorawan.join");
			joins++;
			check_lora_rx(&j->rx);
			assert_int_equal(ev.payload_len, 23);
			assert_int_equal(p[0], 0x00);
			assert_int_equal(get_le(p + 1, 8), j->join_eui_v);
			assert_int_equal(get_le(p + 9, 8), j->dev_eui_v);
			assert_int_equal(get_le(p + 17, 2), j->dev_nonce);
			snprintf(str, sizeof(str), "%016llx", (unsigned long long)j->dev_eui_v);
			assert_string_equal(j->dev_eui, str);
			assert_string_equal(ev.dev, str);
			snprintf(str, sizeof(str), "%016llx", (unsigned long long)j->join_eui_v);
			assert_string_equal(j->join_eui, str);
			assert_memory_equal(p + 19, j->mic, 4);

			assert_int_equal(sim_gen_lorawan_appkey(g, j->dev_eui_v, key), 0);
			doc_derive(seed, 0x03, j->dev_eui_v, 8, dkey);
			assert_memory_equal(key, dkey, 16);
			assert_int_equal(lorawan_crypto_join_request_mic(NULL, key, p, 19, mic), 0);
			assert_memory_equal(mic, p + 19, 4);

			s = seen_get(euis, 128, &neuis, ev.dev);
			if (s->state)
				assert_true(j->dev_nonce > s->last);
			s->state = 1;
			s->last = j->dev_nonce;
		}
	}
	assert_true(ups > 15000);
	assert_true(joins > 100);
	assert_true(confirmed > 0 && confirmed < ups);
	assert_true(ndevs > 50);
	sim_gen_free(g);
}

/* ---- WLAN ------------------------------------------------------------- */

static void wlan_station_sequences_consistent(void **st)
{
	struct sim_gen *g = sim_gen_new(5, 30, LABGW_TECH_WLAN);
	static struct seen devs[64];
	size_t ndevs = 0;
	unsigned joined = 0, left = 0, rejoined = 0, signal = 0;

	(void)st;
	assert_non_null(g);
	for (unsigned i = 0; i < 20000; i++) {
		const struct sim_wlan_station *w = &ev.u.wlan;
		struct seen *s;

		assert_int_equal(sim_gen_next(g, T0 + i * 250ull, &ev), 0);
		assert_int_equal(ev.tech, LABGW_TECH_WLAN);
		assert_string_equal(ev.type_name, "rx.wlan.station");
		assert_int_equal(ev.payload_len, 0);
		assert_string_equal(w->ssid, "oil-lab");
		assert_true(w->freq_hz == 2437000000ull || w->freq_hz == 5180000000ull);
		assert_int_equal(strlen(ev.dev), 17);
		s = seen_get(devs, 64, &ndevs, ev.dev);
		switch (w->event) {
		case SIM_WLAN_JOINED:
			assert_int_not_equal(s->state, 1);
			rejoined += s->state == 2;
			s->state = 1;
			joined++;
			assert_in_range(w->signal_dbm + 200, -90 + 200, -30 + 200);
			s->connected_s = 0;
			break;
		case SIM_WLAN_LEFT:
			assert_int_equal(s->state, 1);
			assert_true(w->connected_s >= s->connected_s);
			s->state = 2;
			left++;
			break;
		case SIM_WLAN_SIGNAL:
			assert_int_equal(s->state, 1);
			signal++;
			assert_in_range(w->signal_dbm + 200, -90 + 200, -30 + 200);
			assert_in_range(w->signal_avg_dbm + 200, -90 + 200, -30 + 200);
			assert_true(w->tx_bitrate_kbps >= 6500 && w->rx_bitrate_kbps >= 6500);
			assert_true(w->connected_s >= s->connected_s);
			s->connected_s = w->connected_s;
			/* counters never go down, and move with traffic */
			assert_true(w->rx_bytes > s->counters[0]);
			assert_true(w->tx_bytes > s->counters[1]);
			assert_true(w->rx_packets > s->counters[2]);
			assert_true(w->tx_packets > s->counters[3]);
			assert_true(w->rx_bytes >= w->rx_packets);
			s->counters[0] = w->rx_bytes;
			s->counters[1] = w->tx_bytes;
			s->counters[2] = w->rx_packets;
			s->counters[3] = w->tx_packets;
			break;
		default:
			fail_msg("bad wlan event %d", w->event);
		}
	}
	assert_int_equal(ndevs, sim_gen_devices(g, LABGW_TECH_WLAN));
	assert_true(joined > ndevs);
	assert_true(left > 0 && rejoined > 0 && signal > left);
	sim_gen_free(g);
}

/* ---- cellular --------------------------------------------------------- */

static void cellular_signal_and_sms(void **st)
{
	struct sim_gen *g = sim_gen_new(9, 20, LABGW_TECH_CELLULAR);
	unsigned at[3] = {0}, sms = 0;

	(void)st;
	assert_non_null(g);
	for (unsigned i = 0; i < 20000; i++) {
		uint64_t now = T0 + i * 1000ull;

		assert_int_equal(sim_gen_next(g, now, &ev), 0);
		assert_int_equal(ev.tech, LABGW_TECH_CELLULAR);
		if (ev.type == SIM_CELL_SIGNAL) {
			const struct sim_cell_signal *c = &ev.u.cell;

			assert_string_equal(ev.type_name, "state.cellular.signal");
			assert_string_equal(ev.dev, "");
			assert_int_equal(ev.payload_len, 0);
			if (!strcmp(c->access_tech, "lte")) {
				at[0]++;
				assert_true(c->has_rssi && c->has_rsrp && c->has_rsrq &&
					    c->has_sinr);
			} else if (!strcmp(c->access_tech, "5gnr")) {
				at[1]++;
				assert_true(!c->has_rssi && c->has_rsrp && c->has_rsrq &&
					    c->has_sinr);
			} else {
				assert_string_equal(c->access_tech, "umts");
				at[2]++;
				assert_true(c->has_rssi && !c->has_rsrp && !c->has_rsrq &&
					    !c->has_sinr);
			}
			if (c->has_rssi)
				assert_in_range(c->rssi + 200, -113 + 200, -51 + 200);
			if (c->has_rsrp)
				assert_in_range(c->rsrp + 200, -140 + 200, -44 + 200);
			if (c->has_rsrq)
				assert_true(c->rsrq >= -20.0 && c->rsrq <= -3.0);
			if (c->has_sinr)
				assert_true(c->sinr >= -5.0 && c->sinr <= 30.0);
			assert_int_equal(strlen(c->operator_code), 5);
			assert_int_equal(strspn(c->operator_code, "0123456789"), 5);
			assert_true(c->operator_name && c->operator_name[0]);
			assert_true(!strcmp(c->registration, "home") ||
				    !strcmp(c->registration, "roaming"));
		} else {
			struct tm tm = {0};
			const char *end;
			time_t ts;

			assert_int_equal(ev.type, SIM_CELL_SMS);
			assert_string_equal(ev.type_name, "rx.cellular.sms");
			sms++;
			assert_true(!strncmp(ev.dev, "+49", 3));
			assert_in_range(strlen(ev.dev), 8, 16);
			assert_int_equal(strspn(ev.dev + 1, "0123456789"), strlen(ev.dev) - 1);
			assert_int_equal(ev.payload_len, strlen(ev.u.sms.text));
			assert_memory_equal(ev.payload, ev.u.sms.text, ev.payload_len);
			end = strptime(ev.u.sms.timestamp, "%Y-%m-%dT%H:%M:%SZ", &tm);
			assert_non_null(end);
			assert_int_equal(*end, 0);
			ts = timegm(&tm);
			assert_true((uint64_t)ts * 1000 <= now);
			assert_true((uint64_t)ts * 1000 + 10000 >= now);
		}
	}
	assert_true(at[0] > 0 && at[1] > 0 && at[2] > 0);
	assert_true(at[0] > at[1] && at[1] > at[2]);
	assert_in_range(sms, 20000 * 15 / 100, 20000 * 25 / 100);
	sim_gen_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(same_seed_same_sequence),
		cmocka_unit_test(keys_follow_seed),
		cmocka_unit_test(every_tech_in_its_share),
		cmocka_unit_test(only_enabled_techs),
		cmocka_unit_test(bad_arguments),
		cmocka_unit_test(ble_adverts_decode_from_bytes),
		cmocka_unit_test(lorawan_frames_verify),
		cmocka_unit_test(wlan_station_sequences_consistent),
		cmocka_unit_test(cellular_signal_and_sms),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
