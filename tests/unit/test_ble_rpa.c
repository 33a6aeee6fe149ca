// SPDX-License-Identifier: MIT
/*
 * Resolvable private addresses (plugins/ble/rpa.c): the ah function against
 * the Core specification's sample data and against vectors made with the
 * openssl command line, resolution with and without a kept context, the
 * address kinds, and the text forms of addresses and IRKs.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/ble/rpa.h"

/* Core specification sample data for ah */
static const char SAMPLE_IRK[] = "ec0234a357c8ad05341010a60a397d9b";
static const uint8_t SAMPLE_PRAND[3] = {0x70, 0x81, 0x94};
static const uint8_t SAMPLE_HASH[3] = {0x0d, 0xfb, 0xaa};

/* `printf '00..00<prand>' | xxd -r -p | openssl enc -aes-128-ecb -K <irk> -nopad`,
 * the last three bytes */
static const char CLI_IRK[] = "48353270fe434eae598480f162b4480c";
static const struct {
	uint8_t prand[3], hash[3];
} CLI[] = {
	{{0x5a, 0x1c, 0x3e}, {0x93, 0x53, 0x13}},
	{{0x7f, 0xff, 0xff}, {0xba, 0x7b, 0x76}},
};

static void ah_sample_data(void **st)
{
	uint8_t irk[BLE_IRK_LEN], hash[3];

	(void)st;
	assert_true(ble_irk_parse(SAMPLE_IRK, irk));
	assert_int_equal(irk[0], 0xec);
	assert_int_equal(irk[15], 0x9b);
	assert_int_equal(ble_rpa_ah(irk, SAMPLE_PRAND, hash), 0);
	assert_memory_equal(hash, SAMPLE_HASH, 3);

	assert_true(ble_irk_parse(CLI_IRK, irk));
	for (size_t i = 0; i < sizeof(CLI) / sizeof(CLI[0]); i++) {
		assert_int_equal(ble_rpa_ah(irk, CLI[i].prand, hash), 0);
		assert_memory_equal(hash, CLI[i].hash, 3);
	}
}

static void resolve(void **st)
{
	uint8_t irk[BLE_IRK_LEN], other[BLE_IRK_LEN], addr[BLE_ADDR_LEN];

	(void)st;
	assert_true(ble_irk_parse(SAMPLE_IRK, irk));
	assert_true(ble_addr_parse("70:81:94:0D:FB:AA", addr));
	assert_true(ble_rpa_is_resolvable(addr));
	assert_true(ble_rpa_resolve(irk, addr));

	/* another IRK (one bit off) */
	memcpy(other, irk, sizeof(other));
	other[15] ^= 0x01;
	assert_false(ble_rpa_resolve(other, addr));
	/* another hash or another prand */
	assert_true(ble_addr_parse("70:81:94:0d:fb:ab", addr));
	assert_false(ble_rpa_resolve(irk, addr));
	assert_true(ble_addr_parse("70:81:95:0d:fb:aa", addr));
	assert_false(ble_rpa_resolve(irk, addr));

	assert_true(ble_irk_parse(CLI_IRK, other));
	assert_true(ble_addr_parse("5a:1c:3e:93:53:13", addr));
	assert_true(ble_rpa_resolve(other, addr));
	assert_false(ble_rpa_resolve(irk, addr));
	assert_true(ble_addr_parse("7f:ff:ff:ba:7b:76", addr));
	assert_true(ble_rpa_resolve(other, addr));
}

/* Static random (11), non-resolvable private (00) and public-looking
 * addresses are never resolved, even when their low half is the hash of
 * their high half. */
static void only_rpas_resolve(void **st)
{
	static const uint8_t top[3] = {0x00, 0x80, 0xc0};
	uint8_t irk[BLE_IRK_LEN], addr[BLE_ADDR_LEN];

	(void)st;
	assert_true(ble_irk_parse(SAMPLE_IRK, irk));
	for (int i = 0; i < 3; i++) {
		addr[0] = (uint8_t)(top[i] | (SAMPLE_PRAND[0] & 0x3f));
		addr[1] = SAMPLE_PRAND[1];
		addr[2] = SAMPLE_PRAND[2];
		assert_int_equal(ble_rpa_ah(irk, addr, addr + 3), 0);
		assert_false(ble_rpa_is_resolvable(addr));
		assert_false(ble_rpa_resolve(irk, addr));
		/* the same with the top bits set to 01 (and its own hash) does */
		addr[0] = (uint8_t)(0x40 | (addr[0] & 0x3f));
		assert_int_equal(ble_rpa_ah(irk, addr, addr + 3), 0);
		assert_true(ble_rpa_resolve(irk, addr));
	}
	assert_true(ble_addr_parse("3f:ff:ff:00:00:00", addr));
	assert_false(ble_rpa_is_resolvable(addr));
	assert_true(ble_addr_parse("40:00:00:00:00:00", addr));
	assert_true(ble_rpa_is_resolvable(addr));
	assert_true(ble_addr_parse("7f:ff:ff:ff:ff:ff", addr));
	assert_true(ble_rpa_is_resolvable(addr));
	assert_true(ble_addr_parse("c0:ff:ee:00:00:01", addr));
	assert_false(ble_rpa_is_resolvable(addr));
}

/* One context per IRK, reused over many addresses: the same answers as
 * the one-shot function, in any order. */
static void kept_context(void **st)
{
	uint8_t irk_a[BLE_IRK_LEN], irk_b[BLE_IRK_LEN], addr[BLE_ADDR_LEN];
	struct ble_irk *a, *b;
	unsigned hits_a = 0, hits_b = 0;

	(void)st;
	assert_true(ble_irk_parse(SAMPLE_IRK, irk_a));
	assert_true(ble_irk_parse(CLI_IRK, irk_b));
	a = ble_irk_new(irk_a);
	b = ble_irk_new(irk_b);
	assert_non_null(a);
	assert_non_null(b);
	for (unsigned i = 0; i < 600; i++) {
		const uint8_t *k = i % 3 == 0 ? irk_b : irk_a;

		addr[0] = (uint8_t)(0x40 | (i & 0x3f));
		addr[1] = (uint8_t)(i >> 6);
		addr[2] = (uint8_t)(i * 7);
		assert_int_equal(ble_rpa_ah(k, addr, addr + 3), 0);
		if (i % 5 == 0)
			addr[5] ^= 0x80; /* spoil every fifth */
		hits_a += ble_irk_resolve(a, addr);
		hits_b += ble_irk_resolve(b, addr);
		assert_true(ble_irk_resolve(a, addr) == ble_rpa_resolve(irk_a, addr));
	}
	/* 400 made with a, 200 with b; a fifth of each spoiled (i % 15 == 0
	 * for b: 40 of them; i % 5 == 0 and i % 3 != 0: 80 of a's) */
	assert_int_equal(hits_a, 400 - 80);
	assert_int_equal(hits_b, 200 - 40);
	assert_true(ble_addr_parse("70:81:94:0d:fb:aa", addr));
	assert_true(ble_irk_resolve(a, addr));
	assert_false(ble_irk_resolve(b, addr));
	assert_false(ble_irk_resolve(NULL, addr));
	ble_irk_free(a);
	ble_irk_free(b);
	ble_irk_free(NULL);
	assert_null(ble_irk_new(NULL));
}

static void addresses_as_text(void **st)
{
	static const char *const bad[] = {"",
					  "aa:bb:cc:dd:ee",
					  "aa:bb:cc:dd:ee:f",
					  "aa:bb:cc:dd:ee:ff:",
					  "aa:bb:cc:dd:ee:ff0",
					  "aa-bb-cc-dd-ee-ff",
					  "aabbccddeeff",
					  "aa:bb:cc:dd:ee:fg",
					  "aa:bb:cc:dd:e:eff",
					  " a:bb:cc:dd:ee:ff",
					  "aa:bb:cc:dd:ee:+f"};
	uint8_t addr[BLE_ADDR_LEN] = {0}, keep[BLE_ADDR_LEN];
	char s[BLE_ADDR_STR_LEN];

	(void)st;
	assert_true(ble_addr_parse("AA:bb:CC:dd:EE:0f", addr));
	assert_memory_equal(addr, ((const uint8_t[]){0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f}), 6);
	ble_addr_str(addr, s);
	assert_string_equal(s, "aa:bb:cc:dd:ee:0f");
	memcpy(keep, addr, sizeof(keep));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (ble_addr_parse(bad[i], addr))
			fail_msg("\"%s\" parsed", bad[i]);
		assert_memory_equal(addr, keep, 6); /* untouched when refused */
	}
	assert_false(ble_addr_parse(NULL, addr));
}

static void irks_as_text(void **st)
{
	uint8_t msb[BLE_IRK_LEN], lsb[BLE_IRK_LEN];

	(void)st;
	assert_true(ble_irk_parse("EC0234A357C8AD05341010A60A397D9B", msb));
	/* BlueZ's files hold the bytes the other way round */
	assert_false(ble_irk_parse_le("9b7d390aa6101034 05adc857a33402ec", lsb));
	assert_true(ble_irk_parse_le("9b7d390aa610103405adc857a33402ec", lsb));
	assert_memory_equal(msb, lsb, BLE_IRK_LEN);
	assert_true(ble_irk_parse(SAMPLE_IRK, lsb));
	assert_memory_equal(msb, lsb, BLE_IRK_LEN);

	assert_false(ble_irk_parse("ec0234a357c8ad05341010a60a397d9", msb));
	assert_false(ble_irk_parse("ec0234a357c8ad05341010a60a397d9bb", msb));
	assert_false(ble_irk_parse("ec0234a357c8ad05341010a60a397d9g", msb));
	assert_false(ble_irk_parse("0xec0234a357c8ad05341010a60a397d", msb));
	assert_false(ble_irk_parse("", msb));
	assert_false(ble_irk_parse(NULL, msb));
	assert_false(ble_irk_parse_le(NULL, msb));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(ah_sample_data),    cmocka_unit_test(resolve),
		cmocka_unit_test(only_rpas_resolve), cmocka_unit_test(kept_context),
		cmocka_unit_test(addresses_as_text), cmocka_unit_test(irks_as_text),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
