// SPDX-License-Identifier: MIT
/*
 * Resolvable private addresses, written from the Core specification: the
 * security function e (Vol 3 Part H 2.2.1: AES-128, the most significant
 * byte of key and data first), ah (2.2.2) and the RPA layout (Vol 6 Part B
 * 1.3.2.2). Pure.
 */
#include "rpa.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "hex.h"

struct ble_irk {
	EVP_CIPHER_CTX *ctx; /* AES-128-ECB, keyed, no padding */
};

static int hexbyte(const char *s)
{
	int hi = hex_digit(s[0]), lo = hi < 0 ? -1 : hex_digit(s[1]);

	return lo < 0 ? -1 : hi << 4 | lo;
}

bool ble_addr_parse(const char *s, uint8_t addr[BLE_ADDR_LEN])
{
	uint8_t a[BLE_ADDR_LEN];

	if (!s || strnlen(s, 18) != 17)
		return false;
	for (int i = 0; i < BLE_ADDR_LEN; i++) {
		int v = hexbyte(s + 3 * i);

		if (v < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return false;
		a[i] = (uint8_t)v;
	}
	memcpy(addr, a, BLE_ADDR_LEN);
	return true;
}

void ble_addr_str(const uint8_t addr[BLE_ADDR_LEN], char out[BLE_ADDR_STR_LEN])
{
	snprintf(out, BLE_ADDR_STR_LEN, "%02x:%02x:%02x:%02x:%02x:%02x", addr[0], addr[1], addr[2],
		 addr[3], addr[4], addr[5]);
}

static bool irk_parse(const char *s, bool reverse, uint8_t irk[BLE_IRK_LEN])
{
	uint8_t k[BLE_IRK_LEN];

	if (!s || strnlen(s, 33) != 32)
		return false;
	for (int i = 0; i < BLE_IRK_LEN; i++) {
		int v = hexbyte(s + 2 * i);

		if (v < 0) {
			OPENSSL_cleanse(k, sizeof(k));
			return false;
		}
		k[reverse ? BLE_IRK_LEN - 1 - i : i] = (uint8_t)v;
	}
	memcpy(irk, k, BLE_IRK_LEN);
	OPENSSL_cleanse(k, sizeof(k));
	return true;
}

bool ble_irk_parse(const char *s, uint8_t irk[BLE_IRK_LEN])
{
	return irk_parse(s, false, irk);
}

bool ble_irk_parse_le(const char *s, uint8_t irk[BLE_IRK_LEN])
{
	return irk_parse(s, true, irk);
}

struct ble_irk *ble_irk_new(const uint8_t irk[BLE_IRK_LEN])
{
	struct ble_irk *k;
	EVP_CIPHER *aes;

	if (!irk)
		return NULL;
	k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->ctx = EVP_CIPHER_CTX_new();
	aes = EVP_CIPHER_fetch(NULL, "AES-128-ECB", NULL);
	if (!k->ctx || !aes || !EVP_EncryptInit_ex2(k->ctx, aes, irk, NULL, NULL) ||
	    !EVP_CIPHER_CTX_set_padding(k->ctx, 0)) {
		EVP_CIPHER_free(aes);
		ble_irk_free(k);
		return NULL;
	}
	EVP_CIPHER_free(aes); /* the context holds its own reference */
	return k;
}

void ble_irk_free(struct ble_irk *k)
{
	if (!k)
		return;
	EVP_CIPHER_CTX_free(k->ctx);
	free(k);
}

/* ah with a keyed context: e(irk, 0^104 || prand), the low 24 bits. ECB
 * keeps no state between blocks, so the context serves any number of
 * calls without being set up again. */
static int ah(struct ble_irk *k, const uint8_t prand[3], uint8_t hash[3])
{
	uint8_t in[16] = {0}, out[16];
	int outl = 0;

	memcpy(in + 13, prand, 3);
	if (!EVP_EncryptUpdate(k->ctx, out, &outl, in, sizeof(in)) || outl != (int)sizeof(out))
		return -EIO;
	memcpy(hash, out + 13, 3);
	return 0;
}

int ble_rpa_ah(const uint8_t irk[BLE_IRK_LEN], const uint8_t prand[3], uint8_t hash[3])
{
	struct ble_irk *k = ble_irk_new(irk);
	int err;

	if (!k)
		return -EIO;
	err = ah(k, prand, hash);
	ble_irk_free(k);
	return err;
}

bool ble_rpa_is_resolvable(const uint8_t addr[BLE_ADDR_LEN])
{
	return (addr[0] & 0xc0) == 0x40;
}

bool ble_irk_resolve(struct ble_irk *k, const uint8_t addr[BLE_ADDR_LEN])
{
	uint8_t hash[3];

	if (!k || !ble_rpa_is_resolvable(addr) || ah(k, addr, hash) < 0)
		return false;
	return !memcmp(hash, addr + 3, 3);
}

bool ble_rpa_resolve(const uint8_t irk[BLE_IRK_LEN], const uint8_t addr[BLE_ADDR_LEN])
{
	struct ble_irk *k;
	bool ok;

	if (!ble_rpa_is_resolvable(addr))
		return false;
	k = ble_irk_new(irk);
	ok = ble_irk_resolve(k, addr);
	ble_irk_free(k);
	return ok;
}
