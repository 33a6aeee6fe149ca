// SPDX-License-Identifier: MIT
/*
 * Bluetooth LE advertising data, written from the Core Specification
 * Supplement (Part A, data types), Vol 3 Part C 11 (AD structure format),
 * Apple's iBeacon layout and Google's Eddystone frame specifications
 * (UID, URL, TLM). Pure.
 */
#include "ad.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"

/* 00000000-0000-1000-8000-00805f9b34fb */
static const uint8_t base_uuid[16] = {0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10, 0x00,
				      0x80, 0x00, 0x00, 0x80, 0x5f, 0x9b, 0x34, 0xfb};

static uint16_t get_le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint16_t get_be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* ---- UUIDs ------------------------------------------------------------- */

void ble_uuid_from32(struct ble_uuid *u, uint32_t v)
{
	memcpy(u->bytes, base_uuid, 16);
	u->bytes[0] = (uint8_t)(v >> 24);
	u->bytes[1] = (uint8_t)(v >> 16);
	u->bytes[2] = (uint8_t)(v >> 8);
	u->bytes[3] = (uint8_t)v;
	u->bits = 32;
}

void ble_uuid_from16(struct ble_uuid *u, uint16_t v)
{
	ble_uuid_from32(u, v);
	u->bits = 16;
}

bool ble_uuid_equal(const struct ble_uuid *a, const struct ble_uuid *b)
{
	return !memcmp(a->bytes, b->bytes, 16);
}

unsigned ble_uuid_shortest(const struct ble_uuid *u)
{
	if (memcmp(u->bytes + 4, base_uuid + 4, 12))
		return 128;
	return u->bytes[0] || u->bytes[1] ? 32 : 16;
}

bool ble_uuid_is16(const struct ble_uuid *u, uint16_t v)
{
	return ble_uuid_shortest(u) == 16 && get_be16(u->bytes + 2) == v;
}

/* n (even) hex digits into n / 2 bytes */
static bool hex_bytes(const char *s, size_t n, uint8_t *out)
{
	for (size_t i = 0; i < n; i += 2) {
		int hi = hex_digit(s[i]), lo = hex_digit(s[i + 1]);

		if (hi < 0 || lo < 0)
			return false;
		out[i / 2] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}

bool ble_uuid_parse(const char *s, struct ble_uuid *out)
{
	/* the groups of the 36-character form: 8-4-4-4-12 */
	static const uint8_t group[5] = {8, 4, 4, 4, 12};
	uint8_t b[16];
	size_t len;

	if (!s)
		return false;
	len = strnlen(s, 37);
	if (len == 4 || len == 8) {
		memset(b, 0, 4);
		if (!hex_bytes(s, len, b + 4 - len / 2))
			return false;
		ble_uuid_from32(out, get_be32(b));
	} else if (len == 36) {
		uint8_t *p = b;

		for (int g = 0; g < 5; g++) {
			if (!hex_bytes(s, group[g], p))
				return false;
			p += group[g] / 2;
			s += group[g];
			if (g < 4 && *s++ != '-')
				return false;
		}
		memcpy(out->bytes, b, 16);
	} else {
		return false;
	}
	out->bits = (uint8_t)ble_uuid_shortest(out);
	return true;
}

size_t ble_uuid_str(const struct ble_uuid *u, char out[BLE_UUID_STR_LEN])
{
	const uint8_t *b = u->bytes;
	int n;

	switch (ble_uuid_shortest(u)) {
	case 16:
		n = snprintf(out, BLE_UUID_STR_LEN, "%02x%02x", b[2], b[3]);
		break;
	case 32:
		n = snprintf(out, BLE_UUID_STR_LEN, "%02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
		break;
	default:
		n = snprintf(out, BLE_UUID_STR_LEN,
			     "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
			     b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10],
			     b[11], b[12], b[13], b[14], b[15]);
		break;
	}
	return (size_t)n;
}

/* A UUID of `size` bytes as on air (little-endian) */
static void uuid_from_air(struct ble_uuid *u, const uint8_t *p, size_t size)
{
	switch (size) {
	case 2:
		ble_uuid_from16(u, get_le16(p));
		break;
	case 4:
		ble_uuid_from32(u, (uint32_t)get_le16(p) | (uint32_t)get_le16(p + 2) << 16);
		break;
	default:
		for (int i = 0; i < 16; i++)
			u->bytes[i] = p[15 - i];
		u->bits = 128;
		break;
	}
}

/* The UUID in `size` bytes (2, 4 or 16) as on air into p. */
static void uuid_to_air(const struct ble_uuid *u, uint8_t *p, size_t size)
{
	for (size_t i = 0; i < size; i++)
		p[i] = u->bytes[size == 16 ? 15 - i : 3 - i];
}

/* ---- UTF-8 ------------------------------------------------------------- */

bool ble_utf8_valid(const uint8_t *s, size_t len)
{
	size_t i = 0;

	while (i < len) {
		uint8_t c = s[i];
		uint32_t cp, min;
		size_t n;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf) {
			n = 1;
			cp = c & 0x1f;
			min = 0x80;
		} else if (c >= 0xe0 && c <= 0xef) {
			n = 2;
			cp = c & 0x0f;
			min = 0x800;
		} else if (c >= 0xf0 && c <= 0xf4) {
			n = 3;
			cp = c & 0x07;
			min = 0x10000;
		} else {
			return false; /* a continuation byte, 0xc0/0xc1, or above U+10FFFF */
		}
		if (len - i - 1 < n)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

/* ---- beacons ----------------------------------------------------------- */

static bool ibeacon_decode(const uint8_t *d, size_t len, struct ble_ibeacon *ib)
{
	if (len != 23 || d[0] != 0x02 || d[1] != 0x15)
		return false;
	memcpy(ib->uuid, d + 2, 16);
	ib->major = get_be16(d + 18);
	ib->minor = get_be16(d + 20);
	ib->power = (int8_t)d[22];
	return true;
}

static bool eddystone_url(const uint8_t *d, size_t len, char *out)
{
	static const char *const scheme[] = {"http://www.", "https://www.", "http://", "https://"};
	static const char *const expansion[] = {".com/", ".org/", ".edu/", ".net/", ".info/",
						".biz/", ".gov/", ".com",  ".org",  ".edu",
						".net",	 ".info", ".biz",  ".gov"};
	size_t n;

	if (len < 1 || len - 1 > BLE_EDDYSTONE_URL_ENC_MAX || d[0] >= 4)
		return false;
	n = strlen(scheme[d[0]]);
	memcpy(out, scheme[d[0]], n);
	for (size_t i = 1; i < len; i++) {
		uint8_t c = d[i];

		if (c < 14) {
			size_t e = strlen(expansion[c]);

			memcpy(out + n, expansion[c], e);
			n += e;
		} else if (c > 0x20 && c < 0x7f) {
			out[n++] = (char)c;
		} else {
			return false; /* reserved */
		}
	}
	out[n] = '\0';
	return true;
}

/* d: the service data after the 0xfeaa UUID */
static bool eddystone_decode(const uint8_t *d, size_t len, struct ble_eddystone *e)
{
	struct ble_eddystone t;

	if (len < 1)
		return false;
	memset(&t, 0, sizeof(t));
	switch (d[0]) {
	case 0x00:
		if (len != 18 && len != 20)
			return false;
		t.frame = BLE_EDDYSTONE_UID;
		t.tx_power = (int8_t)d[1];
		memcpy(t.ns, d + 2, 10);
		memcpy(t.instance, d + 12, 6);
		break;
	case 0x10:
		if (len < 3 || !eddystone_url(d + 2, len - 2, t.url))
			return false;
		t.frame = BLE_EDDYSTONE_URL;
		t.tx_power = (int8_t)d[1];
		break;
	case 0x20:
		if (len != 14 || d[1] != 0x00)
			return false;
		t.frame = BLE_EDDYSTONE_TLM;
		t.battery_mv = get_be16(d + 2);
		t.has_battery = t.battery_mv != 0;
		t.temp = (int16_t)get_be16(d + 4);
		t.has_temp = get_be16(d + 4) != 0x8000;
		if (!t.has_temp)
			t.temp = 0;
		t.adv_count = get_be32(d + 6);
		t.sec_count = get_be32(d + 10);
		break;
	default:
		return false;
	}
	*e = t;
	return true;
}

const char *ble_eddystone_frame_name(enum ble_eddystone_frame f)
{
	switch (f) {
	case BLE_EDDYSTONE_NONE:
		return NULL;
	case BLE_EDDYSTONE_UID:
		return "uid";
	case BLE_EDDYSTONE_URL:
		return "url";
	case BLE_EDDYSTONE_TLM:
		return "tlm";
	}
	return NULL;
}

/* ---- parser ------------------------------------------------------------ */

static void add_uuids(struct ble_ad *a, const uint8_t *d, size_t len, size_t size, bool complete)
{
	if (len % size) {
		a->n_malformed++;
		return;
	}
	for (size_t i = 0; i < len; i += size) {
		struct ble_ad_uuid *u;

		if (a->n_uuids == BLE_AD_UUIDS_MAX) {
			a->uuids_over += (len - i) / size;
			return;
		}
		u = &a->uuids[a->n_uuids++];
		uuid_from_air(&u->uuid, d + i, size);
		u->complete = complete;
	}
}

static void set_name(struct ble_ad *a, const uint8_t *d, size_t len, bool complete)
{
	if (a->has_name && (a->name_complete || !complete))
		return; /* keep the first, a complete one over a shortened one */
	while (len && d[len - 1] == '\0')
		len--;
	if (memchr(d, '\0', len) || !ble_utf8_valid(d, len)) {
		a->bad_name = true;
		return;
	}
	memcpy(a->name, d, len);
	a->name[len] = '\0';
	a->name_len = len;
	a->has_name = true;
	a->name_complete = complete;
}

static void add_mfr(struct ble_ad *a, const uint8_t *d, size_t len)
{
	uint16_t company;

	if (len < 2) {
		a->n_malformed++;
		return;
	}
	company = get_le16(d);
	if (!a->has_ibeacon && company == BLE_COMPANY_APPLE)
		a->has_ibeacon = ibeacon_decode(d + 2, len - 2, &a->ibeacon);
	if (a->n_mfr == BLE_AD_MFR_MAX) {
		a->mfr_over++;
		return;
	}
	a->mfr[a->n_mfr++] = (struct ble_ad_mfr){.company = company, .data = d + 2, .len = len - 2};
}

static void add_svc(struct ble_ad *a, const uint8_t *d, size_t len, size_t size)
{
	struct ble_uuid u;

	if (len < size) {
		a->n_malformed++;
		return;
	}
	uuid_from_air(&u, d, size);
	if (ble_uuid_is16(&u, BLE_UUID16_EDDYSTONE)) {
		struct ble_eddystone e;

		if (!eddystone_decode(d + size, len - size, &e))
			a->eddystone_undecoded = true;
		else if (a->eddystone.frame == BLE_EDDYSTONE_NONE)
			a->eddystone = e;
	}
	if (a->n_svc == BLE_AD_SVC_MAX) {
		a->svc_over++;
		return;
	}
	a->svc[a->n_svc++] = (struct ble_ad_svc){.uuid = u, .data = d + size, .len = len - size};
}

/* One structure: type, then len bytes of data at d. */
static void parse_one(struct ble_ad *a, uint8_t type, const uint8_t *d, size_t len)
{
	switch (type) {
	case BLE_AD_FLAGS:
		if (!a->has_flags) {
			a->has_flags = true;
			a->flags = len ? d[0] : 0;
		}
		break;
	case BLE_AD_UUID16_SOME:
	case BLE_AD_UUID16_ALL:
		add_uuids(a, d, len, 2, type == BLE_AD_UUID16_ALL);
		break;
	case BLE_AD_UUID32_SOME:
	case BLE_AD_UUID32_ALL:
		add_uuids(a, d, len, 4, type == BLE_AD_UUID32_ALL);
		break;
	case BLE_AD_UUID128_SOME:
	case BLE_AD_UUID128_ALL:
		add_uuids(a, d, len, 16, type == BLE_AD_UUID128_ALL);
		break;
	case BLE_AD_NAME_SHORT:
	case BLE_AD_NAME_COMPLETE:
		set_name(a, d, len, type == BLE_AD_NAME_COMPLETE);
		break;
	case BLE_AD_TX_POWER:
		if (len != 1)
			a->n_malformed++;
		else if (!a->has_tx_power) {
			a->has_tx_power = true;
			a->tx_power = (int8_t)d[0];
		}
		break;
	case BLE_AD_APPEARANCE:
		if (len != 2)
			a->n_malformed++;
		else if (!a->has_appearance) {
			a->has_appearance = true;
			a->appearance = get_le16(d);
		}
		break;
	case BLE_AD_SVC_DATA16:
		add_svc(a, d, len, 2);
		break;
	case BLE_AD_SVC_DATA32:
		add_svc(a, d, len, 4);
		break;
	case BLE_AD_SVC_DATA128:
		add_svc(a, d, len, 16);
		break;
	case BLE_AD_MFR_DATA:
		add_mfr(a, d, len);
		break;
	default:
		a->n_unknown++;
		break;
	}
}

int ble_ad_parse(const uint8_t *buf, size_t len, struct ble_ad *out)
{
	size_t off = 0;

	if (!out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	if (len > BLE_AD_MAX)
		return -E2BIG;
	if (!buf && len)
		return -EINVAL;
	while (off < len) {
		size_t n = buf[off]; /* type and data */

		if (n == 0)
			break; /* early termination: the rest is padding */
		if (n > len - off - 1) {
			out->truncated = true;
			break;
		}
		parse_one(out, buf[off + 1], buf + off + 2, n - 1);
		off += 1 + n;
	}
	out->len = off;
	return 0;
}

/* ---- builder ----------------------------------------------------------- */

void ble_ad_builder_init(struct ble_ad_builder *b, uint8_t *buf, size_t cap)
{
	b->buf = buf;
	b->cap = cap > BLE_AD_MAX ? BLE_AD_MAX : cap;
	b->len = 0;
}

/* Room for a structure of len data bytes? */
static int room(const struct ble_ad_builder *b, size_t len)
{
	if (len > BLE_AD_DATA_MAX)
		return -EINVAL;
	return b->cap - b->len < len + 2 ? -ENOSPC : 0;
}

/* Writes the header of a structure; the caller fills its len bytes. */
static uint8_t *put_hdr(struct ble_ad_builder *b, uint8_t type, size_t len)
{
	uint8_t *p = b->buf + b->len;

	p[0] = (uint8_t)(len + 1);
	p[1] = type;
	b->len += len + 2;
	return p + 2;
}

int ble_ad_add(struct ble_ad_builder *b, uint8_t type, const void *data, size_t len)
{
	int err;

	if (!b || (!data && len))
		return -EINVAL;
	err = room(b, len);
	if (err)
		return err;
	if (len)
		memcpy(put_hdr(b, type, len), data, len);
	else
		put_hdr(b, type, 0);
	return 0;
}

int ble_ad_add_flags(struct ble_ad_builder *b, uint8_t flags)
{
	return ble_ad_add(b, BLE_AD_FLAGS, &flags, 1);
}

int ble_ad_add_name(struct ble_ad_builder *b, const char *name)
{
	size_t len;

	if (!name)
		return -EINVAL;
	len = strnlen(name, BLE_AD_NAME_MAX + 1);
	if (len > BLE_AD_NAME_MAX || !ble_utf8_valid((const uint8_t *)name, len))
		return -EINVAL;
	return ble_ad_add(b, BLE_AD_NAME_COMPLETE, name, len);
}

int ble_ad_add_tx_power(struct ble_ad_builder *b, int dbm)
{
	uint8_t v;

	if (dbm < -127 || dbm > 127)
		return -EINVAL;
	v = (uint8_t)(int8_t)dbm;
	return ble_ad_add(b, BLE_AD_TX_POWER, &v, 1);
}

int ble_ad_add_appearance(struct ble_ad_builder *b, uint16_t appearance)
{
	uint8_t v[2] = {(uint8_t)appearance, (uint8_t)(appearance >> 8)};

	return ble_ad_add(b, BLE_AD_APPEARANCE, v, 2);
}

int ble_ad_add_uuids(struct ble_ad_builder *b, const struct ble_uuid *uuids, size_t n)
{
	static const struct {
		unsigned bits;
		uint8_t type;
	} kind[3] = {{16, BLE_AD_UUID16_ALL}, {32, BLE_AD_UUID32_ALL}, {128, BLE_AD_UUID128_ALL}};
	size_t need = 0;

	if (!b || (!uuids && n))
		return -EINVAL;
	/* the bytes of all lists first: all or nothing */
	for (int k = 0; k < 3; k++) {
		size_t size = kind[k].bits / 8, per = BLE_AD_DATA_MAX / size, count = 0;

		for (size_t i = 0; i < n; i++)
			count += ble_uuid_shortest(&uuids[i]) == kind[k].bits;
		need += count * size + (count + per - 1) / per * 2;
	}
	if (b->cap - b->len < need)
		return -ENOSPC;
	for (int k = 0; k < 3; k++) {
		size_t size = kind[k].bits / 8, per = BLE_AD_DATA_MAX / size, left = 0, i = 0;

		for (size_t j = 0; j < n; j++)
			left += ble_uuid_shortest(&uuids[j]) == kind[k].bits;
		while (left) {
			size_t m = left < per ? left : per;
			uint8_t *p = put_hdr(b, kind[k].type, m * size);

			for (size_t w = 0; w < m; i++) {
				if (ble_uuid_shortest(&uuids[i]) == kind[k].bits)
					uuid_to_air(&uuids[i], p + w++ * size, size);
			}
			left -= m;
		}
	}
	return 0;
}

int ble_ad_add_mfr(struct ble_ad_builder *b, uint16_t company, const uint8_t *data, size_t len)
{
	uint8_t *p;
	int err;

	if (!b || (!data && len))
		return -EINVAL;
	err = room(b, len + 2);
	if (err)
		return err;
	p = put_hdr(b, BLE_AD_MFR_DATA, len + 2);
	p[0] = (uint8_t)company;
	p[1] = (uint8_t)(company >> 8);
	if (len)
		memcpy(p + 2, data, len);
	return 0;
}

int ble_ad_add_svc(struct ble_ad_builder *b, const struct ble_uuid *uuid, const uint8_t *data,
		   size_t len)
{
	size_t size;
	uint8_t type, *p;
	int err;

	if (!b || !uuid || (!data && len))
		return -EINVAL;
	switch (ble_uuid_shortest(uuid)) {
	case 16:
		size = 2;
		type = BLE_AD_SVC_DATA16;
		break;
	case 32:
		size = 4;
		type = BLE_AD_SVC_DATA32;
		break;
	default:
		size = 16;
		type = BLE_AD_SVC_DATA128;
		break;
	}
	err = room(b, len + size);
	if (err)
		return err;
	p = put_hdr(b, type, len + size);
	uuid_to_air(uuid, p, size);
	if (len)
		memcpy(p + size, data, len);
	return 0;
}
