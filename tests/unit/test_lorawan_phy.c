// SPDX-License-Identifier: MIT
/*
 * LoRaWAN 1.0.x frames of the lorawan module (plugins/lorawan/phy.c):
 * parsing, MIC check with 32-bit frame counter reconstruction, FRMPayload
 * decryption, building downlinks, and the EU868 payload limits.
 *
 * The LoRaWAN 1.0.x specification publishes no frame test vectors. Sources
 * of the vectors here, none made by this code:
 *  - lora-packet (github.com/anthonykirby/lora-packet, README and tests): a
 *    data uplink and a join request, made by an independent implementation;
 *  - frames made for this test by a separate Python implementation written
 *    from the specification on python3-cryptography (AES, CMAC), with
 *    32-bit counters above 0xffff, FOpts, FPort 0 and downlinks:
 *      NwkSKey 2b7e151628aed2a6abf7158809cf4f3c,
 *      AppSKey 000102030405060708090a0b0c0d0e0f, DevAddr 26011bda.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/lorawan/phy.h"

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
	size_t n = 0;
	int hi = -1;

	for (; *s; s++) {
		int v = 0;

		if (*s == ' ')
			continue;
		if (*s >= '0' && *s <= '9')
			v = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			v = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			v = *s - 'A' + 10;
		else
			fail_msg("bad hex digit '%c'", *s);
		if (hi < 0) {
			hi = v;
			continue;
		}
		assert_true(n < cap);
		out[n++] = (uint8_t)(hi << 4 | v);
		hi = -1;
	}
	assert_int_equal(hi, -1);
	return n;
}

static void key(const char *hex, uint8_t k[16])
{
	assert_int_equal(unhex(hex, k, 16), 16);
}

/* lora-packet */
static const char LP_NWK[] = "44024241ed4ce9a68c6a8bc055233fd3";
static const char LP_APP[] = "ec925802ae430ca77fd3dd73cb2cc588";
static const char LP_UP[] = "40F17DBE4900020001954378762B11FF0D";
static const char LP_JOIN[] = "0039363463336913AA05693574323831330489C65B1304";

/* the Python implementation */
static const char NWK[] = "2b7e151628aed2a6abf7158809cf4f3c";
static const char APP[] = "000102030405060708090a0b0c0d0e0f";
#define DEVADDR 0x26011bdau
/* unconfirmed up, ADR, FCnt 0x0001000a, FPort 5, "labgw uplink" */
static const char PY_UP_32[] = "40da1b0126800a00055e8eb39c037f47a171985f826b4347cb";
/* confirmed up, ACK, FOpts 02 03, FCnt 0x00012345, FPort 9, bytes 00..11 */
static const char PY_UP_FOPTS[] = "80da1b01262245230203"
				  "09ebcd8878b0b65f1274e3231ca2fc7e9bfc06e7806297";
/* unconfirmed up, FCnt 7, FPort 0, MAC commands 02 06 01 under the NwkSKey */
static const char PY_UP_PORT0[] = "40da1b012600070000a7484d24dbfa44";
/* unconfirmed down, ACK, FCnt 0x00010003, FPort 1, 01 02 03 */
static const char PY_DOWN_ACK[] = "60da1b01262003000179a93b8916f650";
/* confirmed down, FCnt 0, FPort 223, empty FRMPayload */
static const char PY_DOWN_CONF[] = "a0da1b0126000000df20b87048";
/* unconfirmed down, FCnt 0x00010000, FPort 1, "hi" */
static const char PY_DOWN_HI[] = "60da1b012600000001276d454e11fb";

static void parse_lora_packet_uplink(void **st)
{
	uint8_t buf[64], nwk[16], app[16], plain[16];
	struct phy_frame f;
	struct phy_uplink_check chk;
	const char *why = NULL;
	size_t n = unhex(LP_UP, buf, sizeof(buf));

	(void)st;
	assert_int_equal(phy_parse(buf, n, &f, &why), 0);
	assert_int_equal(f.mtype, PHY_UNCONFIRMED_UP);
	assert_string_equal(phy_mtype_name(f.mtype), "unconfirmed_up");
	assert_int_equal(f.major, 0);
	assert_int_equal(f.dev_addr, 0x49be7df1);
	assert_int_equal(f.fctrl, 0);
	assert_int_equal(f.fopts_len, 0);
	assert_int_equal(f.fcnt16, 2);
	assert_true(f.has_fport);
	assert_int_equal(f.fport, 1);
	assert_int_equal(f.frm_len, 4);
	assert_memory_equal(f.frm, "\x95\x43\x78\x76", 4);
	assert_memory_equal(f.mic, "\x2b\x11\xff\x0d", 4);
	assert_null(f.warning);
	key(LP_NWK, nwk);
	key(LP_APP, app);
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, false, 0, &chk), 0);
	assert_true(chk.mic_ok);
	assert_int_equal(chk.fcnt, 2);
	assert_true(chk.fresh);
	assert_false(chk.stale);
	assert_int_equal(phy_decrypt_frm(NULL, &f, chk.fcnt, nwk, app, plain), 0);
	assert_memory_equal(plain, "test", 4);
	/* the same counter again is stale; a wrong key fails the MIC */
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, true, 2, &chk), 0);
	assert_true(chk.mic_ok && chk.stale && !chk.fresh);
	assert_int_equal(chk.fcnt, 2);
	assert_int_equal(phy_uplink_verify(NULL, &f, app, false, 0, &chk), 0);
	assert_false(chk.mic_ok || chk.fresh || chk.stale);
}

static void parse_lora_packet_join_request(void **st)
{
	uint8_t buf[64];
	struct phy_frame f;
	const char *why = NULL;
	size_t n = unhex(LP_JOIN, buf, sizeof(buf));

	(void)st;
	assert_int_equal(phy_parse(buf, n, &f, &why), 0);
	assert_int_equal(f.mtype, PHY_JOIN_REQUEST);
	assert_string_equal(phy_mtype_name(f.mtype), "join_request");
	/* EUIs travel little-endian; shown big-endian */
	assert_true(f.join_eui == 0xaa13693363343639ull);
	assert_true(f.dev_eui == 0x3331383274356905ull);
	assert_int_equal(f.dev_nonce, 0x8904);
	assert_memory_equal(f.mic, "\xc6\x5b\x13\x04", 4);
	assert_true(phy_mtype_is_uplink(f.mtype));
	assert_false(phy_mtype_is_data(f.mtype));
}

static void parse_python_frames(void **st)
{
	uint8_t buf[64], nwk[16], app[16], plain[64];
	struct phy_frame f;
	struct phy_uplink_check chk;
	const char *why;
	size_t n;

	(void)st;
	key(NWK, nwk);
	key(APP, app);

	n = unhex(PY_UP_FOPTS, buf, sizeof(buf));
	assert_int_equal(phy_parse(buf, n, &f, &why), 0);
	assert_int_equal(f.mtype, PHY_CONFIRMED_UP);
	assert_int_equal(f.dev_addr, DEVADDR);
	assert_int_equal(f.fctrl & 0xf0, PHY_FCTRL_ACK);
	assert_int_equal(f.fopts_len, 2);
	assert_memory_equal(f.fopts, "\x02\x03", 2);
	assert_int_equal(f.fcnt16, 0x2345);
	assert_int_equal(f.fport, 9);
	assert_int_equal(f.frm_len, 18);
	/* the 32-bit counter comes from the last one seen */
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, true, 0x12000, &chk), 0);
	assert_true(chk.mic_ok && chk.fresh);
	assert_int_equal(chk.fcnt, 0x12345);
	assert_int_equal(phy_decrypt_frm(NULL, &f, chk.fcnt, nwk, app, plain), 0);
	for (int i = 0; i < 18; i++)
		assert_int_equal(plain[i], i);

	n = unhex(PY_UP_PORT0, buf, sizeof(buf));
	assert_int_equal(phy_parse(buf, n, &f, &why), 0);
	assert_int_equal(f.fport, 0);
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, true, 6, &chk), 0);
	assert_true(chk.mic_ok && chk.fresh && chk.fcnt == 7);
	/* FPort 0: the NwkSKey, whatever the AppSKey */
	assert_int_equal(phy_decrypt_frm(NULL, &f, 7, nwk, NULL, plain), 0);
	assert_memory_equal(plain, "\x02\x06\x01", 3);

	n = unhex(PY_DOWN_ACK, buf, sizeof(buf));
	assert_int_equal(phy_parse(buf, n, &f, &why), 0);
	assert_int_equal(f.mtype, PHY_UNCONFIRMED_DOWN);
	assert_false(phy_mtype_is_uplink(f.mtype));
	assert_int_equal(phy_decrypt_frm(NULL, &f, 0x10003, nwk, app, plain), 0);
	assert_memory_equal(plain, "\x01\x02\x03", 3);
	/* only uplinks are verified here */
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, false, 0, &chk), -EINVAL);
	assert_false(chk.mic_ok);
}

/* Counters beyond 16 bits: which 32-bit value the 16 on air stand for. */
static void fcnt_reconstruction(void **st)
{
	uint8_t buf[64], nwk[16];
	struct phy_frame f;
	struct phy_uplink_check chk;
	uint32_t c[4];
	const char *why;
	size_t n = unhex(PY_UP_32, buf, sizeof(buf));

	(void)st;
	assert_int_equal(phy_fcnt_forward(0, 0), 0);
	assert_int_equal(phy_fcnt_forward(5, 5), 5);
	assert_int_equal(phy_fcnt_forward(5, 6), 6);
	assert_int_equal(phy_fcnt_forward(0xfffe, 1), 0x10001);
	assert_int_equal(phy_fcnt_forward(0x1fff0, 0xfff1), 0x1fff1);
	assert_int_equal(phy_fcnt_forward(0x1fff0, 0x0003), 0x20003);
	assert_int_equal(phy_fcnt_forward(0x10005, 0x0004), 0x20004);

	assert_int_equal(phy_fcnt_candidates(false, 0, 77, c), 1);
	assert_int_equal(c[0], 77);
	/* forward, back in the epoch, back an epoch, reset */
	assert_int_equal(phy_fcnt_candidates(true, 0x20010, 0x0005, c), 4);
	assert_int_equal(c[0], 0x30005);
	assert_int_equal(c[1], 0x20005);
	assert_int_equal(c[2], 0x10005);
	assert_int_equal(c[3], 0x00005);
	/* the same counter: itself first */
	assert_int_equal(phy_fcnt_candidates(true, 0x20010, 0x0010, c), 3);
	assert_int_equal(c[0], 0x20010);
	assert_int_equal(c[1], 0x10010);
	assert_int_equal(c[2], 0x00010);
	/* first epoch: no duplicates */
	assert_int_equal(phy_fcnt_candidates(true, 9, 3, c), 2);
	assert_int_equal(c[0], 0x10003);
	assert_int_equal(c[1], 3);
	/* the top of the counter space: no wrapping forward */
	assert_int_equal(phy_fcnt_candidates(true, 0xfffffff0u, 0x0005, c), 3);
	assert_int_equal(c[0], 0xffff0005u);
	assert_int_equal(c[1], 0xfffe0005u);
	assert_int_equal(c[2], 5);

	key(NWK, nwk);
	assert_int_equal(phy_parse(buf, n, &f, &why), 0);
	assert_int_equal(f.fcnt16, 0x000a);
	assert_int_equal(f.fctrl & 0xf0, PHY_FCTRL_ADR);
	/* after 0xfff0 the 16-bit 0x000a is 0x1000a: it verifies */
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, true, 0xfff0, &chk), 0);
	assert_true(chk.mic_ok && chk.fresh);
	assert_int_equal(chk.fcnt, 0x1000a);
	/* nothing known: 0x000a is tried and fails; the guess is reported */
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, false, 0, &chk), 0);
	assert_false(chk.mic_ok);
	assert_int_equal(chk.fcnt, 0x000a);
	/* after 0x10010 it can only be an old counter: verified, stale */
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, true, 0x10010, &chk), 0);
	assert_true(chk.mic_ok && chk.stale && !chk.fresh);
	assert_int_equal(chk.fcnt, 0x1000a);
	/* after 0x3fff0 it is two epochs back: no candidate verifies */
	assert_int_equal(phy_uplink_verify(NULL, &f, nwk, true, 0x3fff0, &chk), 0);
	assert_false(chk.mic_ok);
	assert_int_equal(chk.fcnt, 0x4000a);
}

static void build_downlinks_like_the_python_frames(void **st)
{
	uint8_t nwk[16], app[16], want[64], out[255];
	struct phy_data_params p = {
		.mtype = PHY_UNCONFIRMED_DOWN,
		.dev_addr = DEVADDR,
		.fctrl = PHY_FCTRL_ACK,
		.fcnt = 0x10003,
		.has_fport = true,
		.fport = 1,
		.payload = (const uint8_t *)"\x01\x02\x03",
		.len = 3,
	};
	long n;

	(void)st;
	key(NWK, nwk);
	key(APP, app);
	n = phy_build_data(NULL, &p, nwk, app, out, sizeof(out));
	assert_int_equal(n, unhex(PY_DOWN_ACK, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)n);

	p.mtype = PHY_CONFIRMED_DOWN;
	p.fctrl = 0;
	p.fcnt = 0;
	p.fport = 223;
	p.len = 0;
	n = phy_build_data(NULL, &p, nwk, app, out, sizeof(out));
	assert_int_equal(n, unhex(PY_DOWN_CONF, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)n);

	p.mtype = PHY_UNCONFIRMED_DOWN;
	p.fcnt = 0x10000;
	p.fport = 1;
	p.payload = (const uint8_t *)"hi";
	p.len = 2;
	n = phy_build_data(NULL, &p, nwk, app, out, sizeof(out));
	assert_int_equal(n, unhex(PY_DOWN_HI, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)n);
}

static void build_uplinks_like_the_python_frames(void **st)
{
	uint8_t nwk[16], app[16], want[64], out[255], pl[18];
	struct lorawan_crypto *c = lorawan_crypto_new();
	struct phy_data_params p = {
		.mtype = PHY_UNCONFIRMED_UP,
		.dev_addr = DEVADDR,
		.fctrl = PHY_FCTRL_ADR,
		.fcnt = 0x1000a,
		.has_fport = true,
		.fport = 5,
		.payload = (const uint8_t *)"labgw uplink",
		.len = 12,
	};
	long n;

	(void)st;
	assert_non_null(c);
	key(NWK, nwk);
	key(APP, app);
	n = phy_build_data(c, &p, nwk, app, out, sizeof(out));
	assert_int_equal(n, unhex(PY_UP_32, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)n);

	for (int i = 0; i < 18; i++)
		pl[i] = (uint8_t)i;
	p.mtype = PHY_CONFIRMED_UP;
	p.fctrl = PHY_FCTRL_ACK | 0x0f; /* the FOptsLen nibble is ignored */
	p.fopts = (const uint8_t *)"\x02\x03";
	p.fopts_len = 2;
	p.fcnt = 0x12345;
	p.fport = 9;
	p.payload = pl;
	p.len = 18;
	n = phy_build_data(c, &p, nwk, app, out, sizeof(out));
	assert_int_equal(n, unhex(PY_UP_FOPTS, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)n);

	p.mtype = PHY_UNCONFIRMED_UP;
	p.fctrl = 0;
	p.fopts_len = 0;
	p.fcnt = 7;
	p.fport = 0;
	p.payload = (const uint8_t *)"\x02\x06\x01";
	p.len = 3;
	n = phy_build_data(c, &p, nwk, NULL, out, sizeof(out));
	assert_int_equal(n, unhex(PY_UP_PORT0, want, sizeof(want)));
	assert_memory_equal(out, want, (size_t)n);
	lorawan_crypto_free(c);
}

static void build_refuses_bad_parameters(void **st)
{
	uint8_t nwk[16] = {1}, app[16] = {2}, out[300], big[300] = {0};
	struct phy_data_params p = {
		.mtype = PHY_UNCONFIRMED_DOWN,
		.dev_addr = 1,
		.has_fport = true,
		.fport = 1,
		.payload = big,
		.len = 242,
	};
	struct phy_frame f;
	const char *why;

	(void)st;
	/* 1 + 7 + 1 + 242 + 4 = 255: the largest */
	assert_int_equal(phy_build_data(NULL, &p, nwk, app, out, sizeof(out)), 255);
	assert_int_equal(phy_parse(out, 255, &f, &why), 0);
	assert_int_equal(f.frm_len, 242);
	p.len = 243;
	assert_int_equal(phy_build_data(NULL, &p, nwk, app, out, sizeof(out)), -ENOBUFS);
	p.len = 10;
	assert_int_equal(phy_build_data(NULL, &p, nwk, app, out, 20), -ENOBUFS);
	p.fopts = big;
	p.fopts_len = 16;
	assert_int_equal(phy_build_data(NULL, &p, nwk, app, out, sizeof(out)), -EINVAL);
	p.fopts_len = 1;
	p.fport = 0; /* MAC commands in FOpts and in FRMPayload */
	assert_int_equal(phy_build_data(NULL, &p, nwk, app, out, sizeof(out)), -EINVAL);
	p.fopts_len = 0;
	p.fport = 1;
	p.has_fport = false; /* a payload needs a port */
	assert_int_equal(phy_build_data(NULL, &p, nwk, app, out, sizeof(out)), -EINVAL);
	p.has_fport = true;
	assert_int_equal(phy_build_data(NULL, &p, nwk, NULL, out, sizeof(out)), -EINVAL);
	p.mtype = PHY_JOIN_ACCEPT;
	assert_int_equal(phy_build_data(NULL, &p, nwk, app, out, sizeof(out)), -EINVAL);
	p.mtype = PHY_UNCONFIRMED_DOWN;
	assert_int_equal(phy_build_data(NULL, &p, NULL, app, out, sizeof(out)), -EINVAL);
	/* no port, no payload: a frame of 12 bytes (e.g. an empty ACK) */
	p.has_fport = false;
	p.len = 0;
	assert_int_equal(phy_build_data(NULL, &p, nwk, NULL, out, sizeof(out)), 12);
	assert_int_equal(phy_parse(out, 12, &f, &why), 0);
	assert_false(f.has_fport);
}

static void parse_errors_and_other_mtypes(void **st)
{
	uint8_t buf[300] = {0};
	struct phy_frame f;
	const char *why;

	(void)st;
	why = NULL;
	assert_int_equal(phy_parse(buf, 0, &f, &why), -EINVAL);
	assert_string_equal(why, "empty PHYPayload");
	assert_int_equal(phy_parse(NULL, 5, &f, &why), -EINVAL);
	buf[0] = 0x40;
	assert_int_equal(phy_parse(buf, 256, &f, &why), -EINVAL);
	assert_string_equal(why, "PHYPayload longer than 255 bytes");
	assert_int_equal(phy_parse(buf, 11, &f, &why), -EINVAL);
	assert_string_equal(why, "data frame shorter than 12 bytes");
	assert_int_equal(phy_parse(buf, 12, &f, &why), 0);
	assert_false(f.has_fport);
	assert_int_equal(f.frm_len, 0);
	/* major 1: not LoRaWAN R1, but the MType is still told */
	buf[0] = 0x41;
	assert_int_equal(phy_parse(buf, 20, &f, &why), -EINVAL);
	assert_string_equal(why, "unknown LoRaWAN major version");
	assert_int_equal(f.mtype, PHY_UNCONFIRMED_UP);
	assert_int_equal(f.major, 1);
	/* FOptsLen 15 needs 8 + 15 + 4 bytes */
	buf[0] = 0x40;
	buf[5] = 0x0f;
	assert_int_equal(phy_parse(buf, 26, &f, &why), -EINVAL);
	assert_string_equal(why, "FOptsLen reaches beyond the frame");
	assert_int_equal(phy_parse(buf, 27, &f, &why), 0);
	assert_int_equal(f.fopts_len, 15);
	assert_false(f.has_fport);
	/* FOpts with FPort 0 decode, with a warning */
	buf[5] = 0x01;
	buf[9] = 0x00;
	assert_int_equal(phy_parse(buf, 14, &f, &why), 0);
	assert_true(f.has_fport);
	assert_int_equal(f.fport, 0);
	assert_non_null(f.warning);
	/* join request and accept lengths */
	buf[0] = 0x00;
	assert_int_equal(phy_parse(buf, 22, &f, &why), -EINVAL);
	assert_string_equal(why, "join request is not 23 bytes");
	buf[0] = 0x20;
	assert_int_equal(phy_parse(buf, 17, &f, &why), 0);
	assert_int_equal(f.mtype, PHY_JOIN_ACCEPT);
	assert_int_equal(phy_parse(buf, 33, &f, &why), 0);
	assert_int_equal(phy_parse(buf, 18, &f, &why), -EINVAL);
	/* proprietary: anything, no MIC */
	buf[0] = 0xe0;
	assert_int_equal(phy_parse(buf, 1, &f, &why), 0);
	assert_int_equal(f.mtype, PHY_PROPRIETARY);
	assert_null(f.mic);
	assert_string_equal(phy_mtype_name(PHY_PROPRIETARY), "proprietary");
	buf[0] = 0xc0;
	assert_int_equal(phy_parse(buf, 4, &f, &why), -EINVAL);
	assert_int_equal(phy_parse(buf, 19, &f, &why), 0);
	assert_string_equal(phy_mtype_name(f.mtype), "rejoin_request");
	assert_string_equal(phy_mtype_name(PHY_CONFIRMED_DOWN), "confirmed_down");
	assert_string_equal(phy_mtype_name(PHY_UNCONFIRMED_DOWN), "unconfirmed_down");
	assert_string_equal(phy_mtype_name(PHY_CONFIRMED_UP), "confirmed_up");
	assert_string_equal(phy_mtype_name(PHY_JOIN_ACCEPT), "join_accept");
}

/* RP002 EU863-870, not repeater compatible */
static void eu868_payload_limits(void **st)
{
	(void)st;
	assert_int_equal(phy_eu868_max_mac_payload(12, 125000), 59);
	assert_int_equal(phy_eu868_max_mac_payload(11, 125000), 59);
	assert_int_equal(phy_eu868_max_mac_payload(10, 125000), 59);
	assert_int_equal(phy_eu868_max_mac_payload(9, 125000), 123);
	assert_int_equal(phy_eu868_max_mac_payload(8, 125000), 250);
	assert_int_equal(phy_eu868_max_mac_payload(7, 125000), 250);
	assert_int_equal(phy_eu868_max_mac_payload(7, 250000), 250);
	assert_int_equal(phy_eu868_max_mac_payload(12, 500000), 0);
	assert_int_equal(phy_eu868_max_mac_payload(8, 250000), 0);
	assert_int_equal(phy_eu868_dr(12, 125000), 0);
	assert_int_equal(phy_eu868_dr(7, 125000), 5);
	assert_int_equal(phy_eu868_dr(7, 250000), 6);
	assert_int_equal(phy_eu868_dr(6, 125000), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(parse_lora_packet_uplink),
		cmocka_unit_test(parse_lora_packet_join_request),
		cmocka_unit_test(parse_python_frames),
		cmocka_unit_test(fcnt_reconstruction),
		cmocka_unit_test(build_downlinks_like_the_python_frames),
		cmocka_unit_test(build_uplinks_like_the_python_frames),
		cmocka_unit_test(build_refuses_bad_parameters),
		cmocka_unit_test(parse_errors_and_other_mtypes),
		cmocka_unit_test(eu868_payload_limits),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
