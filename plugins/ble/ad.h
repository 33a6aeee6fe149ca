/* SPDX-License-Identifier: MIT */
/*
 * Bluetooth LE advertising data: the AD structures of an advertising or
 * scan response report (Core Specification Supplement, Part A: length,
 * type, data), the beacons carried in them (iBeacon, Eddystone UID, URL
 * and TLM), a builder that writes AD structures back (the ble module
 * rebuilds the report from what bluetoothd tells over D-Bus, then parses
 * it with the same parser), and Bluetooth UUIDs as bytes and strings.
 *
 * Pure: no I/O, no globals, no allocation.
 *
 * Byte order: multi-byte fields are little-endian on air (company ids,
 * 16/32/128-bit UUIDs, appearance); the iBeacon and Eddystone payloads are
 * big-endian on air. Everything below is in host integers, and 128-bit
 * UUIDs are stored in the order they are written as text (big-endian:
 * "0000feaa-0000-1000-8000-00805f9b34fb" is 00 00 fe aa 00 00 10 00 ...).
 */
#ifndef LABGW_BLE_AD_H
#define LABGW_BLE_AD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Extended advertising data, the largest report there is; also the limit
 * of the parser's input and of what a builder writes. */
#define BLE_AD_MAX		  1650
#define BLE_AD_DATA_MAX		  254 /* data bytes of one AD structure (length byte 255) */
#define BLE_AD_NAME_MAX		  BLE_AD_DATA_MAX
#define BLE_AD_UUIDS_MAX	  32 /* service UUIDs kept; more are counted */
#define BLE_AD_MFR_MAX		  8  /* manufacturer data entries kept; more are counted */
#define BLE_AD_SVC_MAX		  8  /* service data entries kept; more are counted */
#define BLE_UUID_STR_LEN	  37 /* "0000feaa-0000-1000-8000-00805f9b34fb" and NUL */
#define BLE_EDDYSTONE_URL_ENC_MAX 17 /* encoded URL bytes after the scheme */
/* the longest expansion: "https://www." and 17 codes of 6 characters */
#define BLE_EDDYSTONE_URL_LEN (12 + BLE_EDDYSTONE_URL_ENC_MAX * 6 + 1)

/* AD types decoded here (Assigned Numbers, "Common Data Types") */
#define BLE_AD_FLAGS	     0x01
#define BLE_AD_UUID16_SOME   0x02 /* incomplete list of 16-bit service UUIDs */
#define BLE_AD_UUID16_ALL    0x03 /* complete list */
#define BLE_AD_UUID32_SOME   0x04
#define BLE_AD_UUID32_ALL    0x05
#define BLE_AD_UUID128_SOME  0x06
#define BLE_AD_UUID128_ALL   0x07
#define BLE_AD_NAME_SHORT    0x08
#define BLE_AD_NAME_COMPLETE 0x09
#define BLE_AD_TX_POWER	     0x0a
#define BLE_AD_SVC_DATA16    0x16
#define BLE_AD_APPEARANCE    0x19
#define BLE_AD_SVC_DATA32    0x20
#define BLE_AD_SVC_DATA128   0x21
#define BLE_AD_MFR_DATA	     0xff

/* Bits of the Flags AD type (the first data byte) */
#define BLE_AD_FLAG_LE_LIMITED	  0x01
#define BLE_AD_FLAG_LE_GENERAL	  0x02
#define BLE_AD_FLAG_NO_BREDR	  0x04
#define BLE_AD_FLAG_LE_BREDR_CTRL 0x08
#define BLE_AD_FLAG_LE_BREDR_HOST 0x10

#define BLE_COMPANY_APPLE    0x004c
#define BLE_UUID16_EDDYSTONE 0xfeaa

/*
 * A service UUID, always held as 128 bits. `bits` is the size it had on air
 * (16, 32 or 128) when it comes from ble_ad_parse(), and the shortest size
 * that can carry it when it comes from ble_uuid_parse() or ble_uuid_from16/32().
 * Two UUIDs are the same when their bytes are (ble_uuid_equal), whatever
 * their `bits`.
 */
struct ble_uuid {
	uint8_t bytes[16]; /* big-endian, as written */
	uint8_t bits;
};

void ble_uuid_from16(struct ble_uuid *u, uint16_t v);
void ble_uuid_from32(struct ble_uuid *u, uint32_t v);
bool ble_uuid_equal(const struct ble_uuid *a, const struct ble_uuid *b);
/* Whether u is the 16-bit UUID v on the Bluetooth base UUID. */
bool ble_uuid_is16(const struct ble_uuid *u, uint16_t v);
/* 16 when u is 0000xxxx-0000-1000-8000-00805f9b34fb, 32 when it is
 * xxxxxxxx-0000-1000-8000-00805f9b34fb, else 128. */
unsigned ble_uuid_shortest(const struct ble_uuid *u);

/*
 * "feaa" (4 hex digits, a 16-bit UUID), "0000feaa" (8, a 32-bit UUID) or
 * "0000feaa-0000-1000-8000-00805f9b34fb" (the 36-character form, as BlueZ
 * gives them); either case, nothing around. `bits` of the result is the
 * shortest size (so "0000feaa-0000-1000-8000-00805f9b34fb" gives 16).
 */
bool ble_uuid_parse(const char *s, struct ble_uuid *out);

/*
 * Lowercase text in the shortest form: "feaa" for a 16-bit UUID on the
 * base UUID, "1234feaa" for a 32-bit one, else the 36-character form
 * (`bits` is not looked at). This is the form of the frames' "uuids" and
 * "service_data" keys. Returns the length written (without the NUL).
 */
size_t ble_uuid_str(const struct ble_uuid *u, char out[BLE_UUID_STR_LEN]);

/* One service UUID of a list; `complete` tells the list it came in. */
struct ble_ad_uuid {
	struct ble_uuid uuid;
	bool complete;
};

/* Manufacturer specific data: the company identifier, then data (borrowed
 * from the parsed buffer; the company id is not part of it). */
struct ble_ad_mfr {
	uint16_t company;
	const uint8_t *data;
	size_t len;
};

/* Service data: the UUID, then data (borrowed; the UUID is not part of it). */
struct ble_ad_svc {
	struct ble_uuid uuid;
	const uint8_t *data;
	size_t len;
};

/* Apple iBeacon: manufacturer data of company 0x004c that is exactly
 * 02 15, proximity UUID (16), major (2), minor (2), measured power (1). */
struct ble_ibeacon {
	uint8_t uuid[16]; /* as on air and as written (big-endian) */
	uint16_t major;
	uint16_t minor;
	int8_t power; /* RSSI at 1 m, dBm */
};

enum ble_eddystone_frame {
	BLE_EDDYSTONE_NONE = 0,
	BLE_EDDYSTONE_UID,
	BLE_EDDYSTONE_URL,
	BLE_EDDYSTONE_TLM,
};

/* "uid", "url", "tlm"; NULL for NONE */
const char *ble_eddystone_frame_name(enum ble_eddystone_frame f);

/*
 * Eddystone, from service data of UUID 0xfeaa. Only the fields of `frame`
 * are set:
 *   UID (0x00, 18 or 20 bytes, the last two reserved): tx_power, ns, instance
 *   URL (0x10, 3 to 20 bytes): tx_power, url (scheme prefix and expansion
 *        codes applied; a reserved scheme or code means not decoded)
 *   TLM (0x20, 14 bytes, version 0 only: unencrypted): battery, temperature,
 *        adv_count, sec_count
 */
struct ble_eddystone {
	enum ble_eddystone_frame frame;
	int8_t tx_power; /* calibrated at 0 m, dBm */
	uint8_t ns[10];
	uint8_t instance[6];
	char url[BLE_EDDYSTONE_URL_LEN]; /* NUL-terminated, printable ASCII */
	bool has_battery;		 /* 0 mV on air means "not supported" */
	uint16_t battery_mv;
	bool has_temp;	    /* 0x8000 on air means "not supported" */
	int16_t temp;	    /* signed 8.8 fixed point: °C = temp / 256.0 */
	uint32_t adv_count; /* advertising PDUs since power-up or reboot */
	uint32_t sec_count; /* time since power-up or reboot, 0.1 s units */
};

/*
 * A parsed report. Pointers borrow from the parsed buffer, which must
 * outlive them; everything else is copied.
 *
 * Duplicates: the first Flags, TX Power Level and Appearance structure
 * counts, later ones are ignored; a complete local name is preferred to a
 * shortened one, the first of each kind counts. UUIDs, manufacturer and
 * service data accumulate over all structures (up to the *_MAX above, the
 * rest counted in *_over). The iBeacon is the first manufacturer data that
 * is one, the Eddystone frame the first 0xfeaa service data that decodes,
 * also when their entries were not kept for lack of room.
 */
struct ble_ad {
	/* bytes parsed: up to a zero length (the rest is padding), up to a
	 * structure that runs past the end, or all of them */
	size_t len;
	/* a structure ran past the end of the input: it was not parsed;
	 * everything before it was */
	bool truncated;
	/* structures whose length does not fit their type (a TX Power Level
	 * that is not 1 byte, a UUID list that is not a multiple of the UUID
	 * size, manufacturer data without a company id, ...): skipped */
	size_t n_malformed;
	size_t n_unknown; /* structures of types not decoded here */

	bool has_flags;
	uint8_t flags; /* the first byte; 0 when the structure has none */

	/* the name, NUL-terminated, without trailing NUL bytes (some devices
	 * pad it); dropped and flagged in bad_name when it is not valid UTF-8
	 * or has a NUL inside */
	bool has_name;
	bool name_complete; /* else it is the shortened name */
	bool bad_name;
	size_t name_len;
	char name[BLE_AD_NAME_MAX + 1];

	bool has_tx_power;
	int8_t tx_power; /* dBm */
	bool has_appearance;
	uint16_t appearance;

	size_t n_uuids;
	size_t uuids_over;
	struct ble_ad_uuid uuids[BLE_AD_UUIDS_MAX];
	size_t n_mfr;
	size_t mfr_over;
	struct ble_ad_mfr mfr[BLE_AD_MFR_MAX];
	size_t n_svc;
	size_t svc_over;
	struct ble_ad_svc svc[BLE_AD_SVC_MAX];

	bool has_ibeacon;
	struct ble_ibeacon ibeacon;
	struct ble_eddystone eddystone; /* frame NONE when there is none */
	/* some 0xfeaa service data was not decoded (EID or an unknown frame,
	 * encrypted or unknown TLM version, reserved URL code, bad length) */
	bool eddystone_undecoded;
};

/*
 * Parses the AD structures in buf (no NUL termination assumed). Returns 0,
 * also for a report truncated at its end (out->truncated, the fields
 * before the overrun kept) or with malformed structures (skipped and
 * counted); -E2BIG when len > BLE_AD_MAX; -EINVAL for a NULL out, or a
 * NULL buf with a length. An empty report gives an empty *out. *out is
 * reset first, also on error.
 */
int ble_ad_parse(const uint8_t *buf, size_t len, struct ble_ad *out);

/*
 * Writes AD structures into a caller's buffer. Every add writes all of its
 * structures or nothing: -ENOSPC when they do not fit (the builder stays
 * usable for smaller ones), -EINVAL for a bad argument.
 */
struct ble_ad_builder {
	uint8_t *buf;
	size_t cap; /* at most BLE_AD_MAX */
	size_t len; /* bytes written so far */
};

/* cap above BLE_AD_MAX is taken as BLE_AD_MAX. */
void ble_ad_builder_init(struct ble_ad_builder *b, uint8_t *buf, size_t cap);

/* One structure: type, then len (at most BLE_AD_DATA_MAX) bytes of data. */
int ble_ad_add(struct ble_ad_builder *b, uint8_t type, const void *data, size_t len);
int ble_ad_add_flags(struct ble_ad_builder *b, uint8_t flags);
/* A complete local name: valid UTF-8 without NUL, at most BLE_AD_NAME_MAX bytes. */
int ble_ad_add_name(struct ble_ad_builder *b, const char *name);
/* -127..127 dBm (TX Power Level is one signed byte; BlueZ hands an int16) */
int ble_ad_add_tx_power(struct ble_ad_builder *b, int dbm);
int ble_ad_add_appearance(struct ble_ad_builder *b, uint16_t appearance);
/*
 * Complete lists of service UUIDs, each UUID in its shortest size: one list
 * of 16-bit, then 32-bit, then 128-bit UUIDs (those present), a list longer
 * than one structure holds split in several. BlueZ's UUIDs property does not
 * say whether the device sent them as complete lists; they are written as such.
 */
int ble_ad_add_uuids(struct ble_ad_builder *b, const struct ble_uuid *uuids, size_t n);
int ble_ad_add_mfr(struct ble_ad_builder *b, uint16_t company, const uint8_t *data, size_t len);
/* Service data under the UUID's shortest size (AD type 0x16, 0x20 or 0x21). */
int ble_ad_add_svc(struct ble_ad_builder *b, const struct ble_uuid *uuid, const uint8_t *data,
		   size_t len);

/* Strict UTF-8 (RFC 3629: no overlong forms, surrogates or code points
 * above U+10FFFF); NUL bytes are valid UTF-8 and accepted here. */
bool ble_utf8_valid(const uint8_t *s, size_t len);

#endif
