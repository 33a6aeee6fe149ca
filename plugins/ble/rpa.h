/* SPDX-License-Identifier: MIT */
/*
 * Bluetooth device addresses and resolvable private addresses (RPA): the
 * random address hash function ah (Core Vol 3 Part H 2.2.2), resolution of
 * an RPA with an identity resolving key (IRK), and the text forms of
 * addresses and IRKs.
 *
 * Pure: no I/O, no globals; OpenSSL 3 does the AES-128.
 *
 * Byte order: addresses and IRKs are held most significant byte first, the
 * order in which they are written ("70:81:94:0d:fb:aa" is 70 81 94 0d fb aa;
 * IRK "ec0234a3...397d9b" is ec 02 ... 9b, as in the Core specification's
 * sample data). HCI, the kernel's mgmt interface and the air carry both
 * least significant byte first, and so do the IRKs in BlueZ's storage
 * (/var/lib/bluetooth/.../info, [IdentityResolvingKey] Key): read those
 * with ble_irk_parse_le(). An RPA is prand (addr[0..2], the top two bits
 * 01) followed by hash = ah(IRK, prand) (addr[3..5]).
 */
#ifndef LABGW_BLE_RPA_H
#define LABGW_BLE_RPA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BLE_ADDR_LEN	 6
#define BLE_ADDR_STR_LEN 18 /* "aa:bb:cc:dd:ee:ff" and NUL */
#define BLE_IRK_LEN	 16

/* "AA:BB:CC:DD:EE:FF", either case, exactly 17 characters. */
bool ble_addr_parse(const char *s, uint8_t addr[BLE_ADDR_LEN]);
/* Lowercase, as device ids are shown in frames and topics. */
void ble_addr_str(const uint8_t addr[BLE_ADDR_LEN], char out[BLE_ADDR_STR_LEN]);

/* 32 hex digits, either case, most significant byte first. */
bool ble_irk_parse(const char *s, uint8_t irk[BLE_IRK_LEN]);
/* 32 hex digits, least significant byte first (BlueZ's info files). */
bool ble_irk_parse_le(const char *s, uint8_t irk[BLE_IRK_LEN]);

/* hash = ah(irk, prand): 0, or -EIO when OpenSSL fails. */
int ble_rpa_ah(const uint8_t irk[BLE_IRK_LEN], const uint8_t prand[3], uint8_t hash[3]);

/* A random address whose two most significant bits are 01. That is all
 * that is checked (not that the random part of prand has 0s and 1s). */
bool ble_rpa_is_resolvable(const uint8_t addr[BLE_ADDR_LEN]);

/* Whether addr is an RPA made with irk. Sets up AES for the one call;
 * to try many addresses against an IRK, use a struct ble_irk. */
bool ble_rpa_resolve(const uint8_t irk[BLE_IRK_LEN], const uint8_t addr[BLE_ADDR_LEN]);

/* An IRK with its AES context, set up once. Not thread-safe. The key is
 * kept only inside OpenSSL's context, which clears it when freed. */
struct ble_irk;

/* NULL when OpenSSL fails or memory runs out. */
struct ble_irk *ble_irk_new(const uint8_t irk[BLE_IRK_LEN]);
void ble_irk_free(struct ble_irk *k);
/* As ble_rpa_resolve(); false also when OpenSSL fails. */
bool ble_irk_resolve(struct ble_irk *k, const uint8_t addr[BLE_ADDR_LEN]);

#endif
