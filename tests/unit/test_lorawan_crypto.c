// SPDX-License-Identifier: MIT
/*
 * Known-answer tests of plugins/shared/lorawan_crypto.c.
 *
 * Sources of the vectors, none of them produced by this code:
 *  - AES-CMAC: RFC 4493 section 4 (the same as NIST SP 800-38B, CMAC-AES128).
 *  - AES-128 block: NIST SP 800-38A F.1.1 (ECB-AES128.Encrypt, block #1).
 *  - LoRaWAN frames: the test vectors published with the lora-packet library
 *    (github.com/anthonykirby/lora-packet, README and its MIC/decrypt tests),
 *    which were made by an independent implementation.
 *  - The B0/A-block layout checks build the blocks by hand from the
 *    specification's field table and compare against the RFC-checked CMAC and
 *    plain AES.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/shared/lorawan_crypto.h"

/* Parses hex (spaces allowed) into out; returns the byte count. */
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

static const char RFC4493_KEY[] = "2b7e1516 28aed2a6 abf71588 09cf4f3c";
static const char RFC4493_MSG[] = "6bc1bee2 2e409f96 e93d7e11 7393172a"
				  "ae2d8a57 1e03ac9c 9eb76fac 45af8e51"
				  "30c81c46 a35ce411 e5fbc119 1a0a52ef"
				  "f69f2445 df4f9b17 ad2b417b e66c3710";

static void check_cmac(struct lorawan_crypto *c, size_t mlen, const char *want_hex)
{
	uint8_t k[16], msg[64], want[16], tag[16];

	key(RFC4493_KEY, k);
	assert_int_equal(unhex(RFC4493_MSG, msg, sizeof(msg)), 64);
	unhex(want_hex, want, sizeof(want));
	memset(tag, 0xee, sizeof(tag));
	assert_int_equal(lorawan_crypto_cmac(c, k, msg, mlen, tag), 0);
	assert_memory_equal(tag, want, 16);
}

static void cmac_rfc4493(void **st)
{
	struct lorawan_crypto *c = lorawan_crypto_new();

	(void)st;
	assert_non_null(c);
	/* Examples 1-4, with a reused context, and in an order that makes a
	 * context carrying state between calls show. */
	check_cmac(c, 16, "070a16b4 6b4d4144 f79bdd9d d04a287c");
	check_cmac(c, 0, "bb1d6929 e9593728 7fa37d12 9b756746");
	check_cmac(c, 40, "dfa66747 de9ae630 30ca3261 1497c827");
	check_cmac(c, 64, "51f0bebf 7e3b9d92 fc497417 79363cfe");
	lorawan_crypto_free(c);
	/* and without a context */
	check_cmac(NULL, 40, "dfa66747 de9ae630 30ca3261 1497c827");
}

static void aes_block_sp800_38a(void **st)
{
	uint8_t k[16], in[16], want[16], out[16];

	(void)st;
	key(RFC4493_KEY, k);
	unhex("6bc1bee22e409f96e93d7e117393172a", in, 16);
	unhex("3ad77bb40d7a3660a89ecaf32466ef97", want, 16);
	assert_int_equal(lorawan_crypto_aes128_encrypt(NULL, k, in, out), 0);
	assert_memory_equal(out, want, 16);
}

/* lora-packet vectors: NwkSKey/AppSKey and DevAddr 49be7df1 */
static const char NWKSKEY[] = "44024241ed4ce9a68c6a8bc055233fd3";
static const char APPSKEY[] = "ec925802ae430ca77fd3dd73cb2cc588";
#define DEVADDR 0x49be7df1u

struct data_vec {
	const char *phy;
	enum lorawan_dir dir;
	uint32_t fcnt;
	const char *plain; /* NULL: no FRMPayload check */
};

static const struct data_vec data_vecs[] = {
	{"40F17DBE4900020001954378762B11FF0D", LORAWAN_DIR_UP, 2, "test"},
	{"40F17DBE49000300012A3518AF", LORAWAN_DIR_UP, 3, NULL},
	/* unconfirmed data down with ACK, no FRMPayload */
	{"60f17dbe4920020001f9d65d27", LORAWAN_DIR_DOWN, 2, NULL},
	/* 44-byte FRMPayload: three keystream blocks, the last one partial */
	{"40f17dbe490004000155332de41a11adc072553544429ce7787707d1c316e027e7e5e334263376affb8aa1"
	 "7ad30075293f28dea8a20af3c5e7",
	 LORAWAN_DIR_UP, 4, "The quick brown fox jumps over the lazy dog."},
};

static void data_frames_lora_packet(void **st)
{
	struct lorawan_crypto *c = lorawan_crypto_new();
	uint8_t nwk[16], app[16];

	(void)st;
	assert_non_null(c);
	key(NWKSKEY, nwk);
	key(APPSKEY, app);
	for (size_t i = 0; i < sizeof(data_vecs) / sizeof(data_vecs[0]); i++) {
		const struct data_vec *v = &data_vecs[i];
		uint8_t phy[128], mic[4], plain[128];
		size_t n = unhex(v->phy, phy, sizeof(phy));
		const size_t hdr = 1 + 7 + 1; /* MHDR, FHDR without FOpts, FPort */

		assert_int_equal(
			lorawan_crypto_data_mic(c, nwk, v->dir, DEVADDR, v->fcnt, phy, n - 4, mic),
			0);
		assert_memory_equal(mic, phy + n - 4, 4);
		/* the same through a one-shot context */
		memset(mic, 0, 4);
		assert_int_equal(lorawan_crypto_data_mic(NULL, nwk, v->dir, DEVADDR, v->fcnt, phy,
							 n - 4, mic),
				 0);
		assert_memory_equal(mic, phy + n - 4, 4);
		/* a wrong direction or counter gives another MIC */
		assert_int_equal(
			lorawan_crypto_data_mic(c, nwk, !v->dir, DEVADDR, v->fcnt, phy, n - 4, mic),
			0);
		assert_memory_not_equal(mic, phy + n - 4, 4);
		assert_int_equal(lorawan_crypto_data_mic(c, nwk, v->dir, DEVADDR,
							 v->fcnt + 0x10000u, phy, n - 4, mic),
				 0);
		assert_memory_not_equal(mic, phy + n - 4, 4);
		if (!v->plain)
			continue;
		assert_int_equal(n - 4 - hdr, strlen(v->plain));
		assert_int_equal(lorawan_crypto_frm_payload(c, app, v->dir, DEVADDR, v->fcnt,
							    phy + hdr, n - 4 - hdr, plain),
				 0);
		assert_memory_equal(plain, v->plain, strlen(v->plain));
		/* in place, and back */
		assert_int_equal(lorawan_crypto_frm_payload(c, app, v->dir, DEVADDR, v->fcnt, plain,
							    n - 4 - hdr, plain),
				 0);
		assert_memory_equal(plain, phy + hdr, n - 4 - hdr);
	}
	lorawan_crypto_free(c);
}

static void join_request_lora_packet(void **st)
{
	uint8_t k[16], phy[32], mic[4];
	size_t n;

	(void)st;
	key("98929b92c49edba9676d646d3b612456", k);
	n = unhex("0039363463336913AA05693574323831330489C65B1304", phy, sizeof(phy));
	assert_int_equal(n, 23);
	assert_int_equal(lorawan_crypto_join_request_mic(NULL, k, phy, 19, mic), 0);
	assert_memory_equal(mic, phy + 19, 4);
	/* the lora-packet "bodged" DevNonce variant must not verify */
	phy[18] ^= 0x01;
	assert_int_equal(lorawan_crypto_join_request_mic(NULL, k, phy, 19, mic), 0);
	assert_memory_not_equal(mic, phy + 19, 4);
}

/*
 * B0 = 49 | 00 00 00 00 | Dir | DevAddr (LE) | FCnt (LE, 32 bit) | 00 | len(msg);
 * MIC = first 4 bytes of CMAC(NwkSKey, B0 | msg).
 */
static void data_mic_b0_layout(void **st)
{
	uint8_t k[16], msg[40], buf[16 + 40], tag[16], mic[4];
	const uint8_t b0[16] = {0x49, 0,    0,	  0,	0,    0x01, 0xda, 0x1b,
				0x01, 0x26, 0x34, 0x12, 0x02, 0x01, 0x00, 40};

	(void)st;
	key(NWKSKEY, k);
	for (size_t i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)(i * 7 + 3);
	memcpy(buf, b0, 16);
	memcpy(buf + 16, msg, sizeof(msg));
	assert_int_equal(lorawan_crypto_cmac(NULL, k, buf, sizeof(buf), tag), 0);
	assert_int_equal(lorawan_crypto_data_mic(NULL, k, LORAWAN_DIR_DOWN, 0x26011bdau,
						 0x01021234u, msg, sizeof(msg), mic),
			 0);
	assert_memory_equal(mic, tag, 4);
}

/*
 * A_i = 01 | 00 00 00 00 | Dir | DevAddr (LE) | FCnt (LE) | 00 | i, i from 1;
 * encrypting zeros yields the keystream AES(K, A_1) | AES(K, A_2) | ...
 */
static void frm_payload_a_layout(void **st)
{
	uint8_t k[16], zeros[20] = {0}, ks[20], s1[16], s2[16];
	uint8_t a1[16] = {0x01, 0, 0, 0, 0, 0x00, 0xda, 0x1b, 0x01, 0x26, 0x07, 0, 0, 0, 0, 1};
	uint8_t a2[16];

	(void)st;
	key(APPSKEY, k);
	memcpy(a2, a1, 16);
	a2[15] = 2;
	assert_int_equal(lorawan_crypto_aes128_encrypt(NULL, k, a1, s1), 0);
	assert_int_equal(lorawan_crypto_aes128_encrypt(NULL, k, a2, s2), 0);
	assert_int_equal(lorawan_crypto_frm_payload(NULL, k, LORAWAN_DIR_UP, 0x26011bdau, 7, zeros,
						    sizeof(zeros), ks),
			 0);
	assert_memory_equal(ks, s1, 16);
	assert_memory_equal(ks + 16, s2, 4);
}

/* Long payloads span several internal keystream batches. */
static void frm_payload_long_round_trip(void **st)
{
	static uint8_t in[1000], enc[1000], dec[1000];
	uint8_t k[16], a[16], s[16];

	(void)st;
	key(APPSKEY, k);
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (uint8_t)i;
	assert_int_equal(
		lorawan_crypto_frm_payload(NULL, k, LORAWAN_DIR_UP, 1, 2, in, sizeof(in), enc), 0);
	assert_memory_not_equal(in, enc, sizeof(in));
	/* block 50 (bytes 784..799) is AES(K, A_50) ^ plaintext */
	memset(a, 0, 16);
	a[0] = 0x01;
	a[6] = 1;
	a[10] = 2;
	a[15] = 50;
	assert_int_equal(lorawan_crypto_aes128_encrypt(NULL, k, a, s), 0);
	for (size_t i = 0; i < 16; i++)
		assert_int_equal(enc[49 * 16 + i], in[49 * 16 + i] ^ s[i]);
	assert_int_equal(
		lorawan_crypto_frm_payload(NULL, k, LORAWAN_DIR_UP, 1, 2, enc, sizeof(enc), dec),
		0);
	assert_memory_equal(in, dec, sizeof(in));
}

static void bad_arguments(void **st)
{
	uint8_t k[16] = {0}, msg[300] = {0}, mic[4], tag[16];

	(void)st;
	assert_int_equal(lorawan_crypto_cmac(NULL, NULL, msg, 1, tag), -EINVAL);
	assert_int_equal(lorawan_crypto_cmac(NULL, k, NULL, 1, tag), -EINVAL);
	assert_int_equal(lorawan_crypto_data_mic(NULL, k, LORAWAN_DIR_UP, 1, 1, msg, 256, mic),
			 -EINVAL);
	assert_int_equal(lorawan_crypto_data_mic(NULL, k, (enum lorawan_dir)2, 1, 1, msg, 10, mic),
			 -EINVAL);
	assert_int_equal(lorawan_crypto_data_mic(NULL, k, LORAWAN_DIR_UP, 1, 1, msg, 255, mic), 0);
	assert_int_equal(lorawan_crypto_join_request_mic(NULL, k, msg, 18, mic), -EINVAL);
	assert_int_equal(
		lorawan_crypto_frm_payload(NULL, k, LORAWAN_DIR_UP, 1, 1, msg, 255 * 16 + 1, msg),
		-EINVAL);
	assert_int_equal(lorawan_crypto_frm_payload(NULL, k, LORAWAN_DIR_UP, 1, 1, NULL, 0, NULL),
			 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(cmac_rfc4493),
		cmocka_unit_test(aes_block_sp800_38a),
		cmocka_unit_test(data_frames_lora_packet),
		cmocka_unit_test(join_request_lora_packet),
		cmocka_unit_test(data_mic_b0_layout),
		cmocka_unit_test(frm_payload_a_layout),
		cmocka_unit_test(frm_payload_long_round_trip),
		cmocka_unit_test(bad_arguments),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
