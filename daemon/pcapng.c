#include "pcapng.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "hex.h"

#define BT_SHB 0x0a0d0d0a
#define BT_IDB 0x00000001
#define BT_EPB 0x00000006

static void put32(struct strbuf *sb, uint32_t v)
{
	uint8_t b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};
	strbuf_append(sb, b, 4);
}

static void put16(struct strbuf *sb, uint16_t v)
{
	uint8_t b[2] = {v & 0xff, v >> 8};
	strbuf_append(sb, b, 2);
}

static size_t pad4(size_t n)
{
	return (4 - (n & 3)) & 3;
}

static void pad(struct strbuf *sb, size_t n)
{
	static const uint8_t zero[4];
	strbuf_append(sb, zero, pad4(n));
}

/* a string option: code, length, value, padding */
static size_t opt_len(const char *s)
{
	return s ? 4 + strlen(s) + pad4(strlen(s)) : 0;
}

static void opt_str(struct strbuf *sb, uint16_t code, const char *s)
{
	if (!s)
		return;
	put16(sb, code);
	put16(sb, (uint16_t)strlen(s));
	strbuf_append(sb, s, strlen(s));
	pad(sb, strlen(s));
}

void pcapng_section(struct strbuf *sb, const char *app)
{
	uint32_t total = 28 + (uint32_t)opt_len(app) + (app ? 4 : 0);
	put32(sb, BT_SHB);
	put32(sb, total);
	put32(sb, 0x1a2b3c4d); /* byte-order magic */
	put16(sb, 1);	       /* version 1.0 */
	put16(sb, 0);
	put32(sb, 0xffffffff); /* section length: not given */
	put32(sb, 0xffffffff);
	if (app) {
		opt_str(sb, 4, app); /* shb_userappl */
		put32(sb, 0);	     /* opt_endofopt */
	}
	put32(sb, total);
}

void pcapng_interface(struct strbuf *sb, uint16_t linktype, const char *name)
{
	uint32_t total = 20 + (uint32_t)opt_len(name) + (name ? 4 : 0);
	put32(sb, BT_IDB);
	put32(sb, total);
	put16(sb, linktype);
	put16(sb, 0);
	put32(sb, 0); /* snaplen: none */
	if (name) {
		opt_str(sb, 2, name); /* if_name */
		put32(sb, 0);
	}
	put32(sb, total);
}

void pcapng_packet(struct strbuf *sb, uint32_t ifid, uint64_t time_us, const void *data, size_t len,
		   const char *comment)
{
	uint32_t total =
		32 + (uint32_t)(len + pad4(len)) + (uint32_t)opt_len(comment) + (comment ? 4 : 0);
	put32(sb, BT_EPB);
	put32(sb, total);
	put32(sb, ifid);
	put32(sb, (uint32_t)(time_us >> 32));
	put32(sb, (uint32_t)time_us);
	put32(sb, (uint32_t)len);
	put32(sb, (uint32_t)len);
	strbuf_append(sb, data, len);
	pad(sb, len);
	if (comment) {
		opt_str(sb, 1, comment); /* opt_comment */
		put32(sb, 0);
	}
	put32(sb, total);
}

uint32_t pcapng_ble_crc(const uint8_t *pdu, size_t len)
{
	/* the LFSR of the Core spec (Vol 6, Part B, 3.1.1), bit-reversed so
	 * that data bits go in LSB first: polynomial x^24 + x^10 + x^9 + x^6 +
	 * x^4 + x^3 + x + 1, initial value 0x555555 */
	uint32_t state = 0xaaaaaa; /* 0x555555 reversed */
	for (size_t i = 0; i < len; i++) {
		uint8_t cur = pdu[i];
		for (int j = 0; j < 8; j++) {
			unsigned next = (state ^ cur) & 1;
			cur >>= 1;
			state >>= 1;
			if (next) {
				state |= 1u << 23;
				state ^= 0x5a6000;
			}
		}
	}
	return state;
}

int pcapng_ble_adv(uint8_t out[PCAPNG_BLE_PKT_MAX], const char *addr, bool random,
		   const uint8_t *ad, size_t ad_len)
{
	uint8_t a[6];
	if (!addr || strlen(addr) != 17 || ad_len > PCAPNG_BLE_AD_MAX)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hex_digit(addr[i * 3]), lo = hex_digit(addr[i * 3 + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && addr[i * 3 + 2] != ':'))
			return -EINVAL;
		a[i] = (uint8_t)(hi << 4 | lo);
	}
	size_t n = 0;
	out[n++] = 0xd6; /* access address 0x8e89bed6, little-endian */
	out[n++] = 0xbe;
	out[n++] = 0x89;
	out[n++] = 0x8e;
	out[n++] = (uint8_t)(0x00 | (random ? 0x40 : 0)); /* ADV_IND, TxAdd */
	out[n++] = (uint8_t)(6 + ad_len);
	for (int i = 5; i >= 0; i--) /* AdvA goes least significant byte first */
		out[n++] = a[i];
	if (ad_len)
		memcpy(out + n, ad, ad_len);
	n += ad_len;
	uint32_t crc = pcapng_ble_crc(out + 4, n - 4);
	out[n++] = crc & 0xff;
	out[n++] = (crc >> 8) & 0xff;
	out[n++] = (crc >> 16) & 0xff;
	return (int)n;
}

void pcapng_ble_phdr(uint8_t out[PCAPNG_BLE_PHDR], int rssi_dbm)
{
	memset(out, 0, PCAPNG_BLE_PHDR);
	out[0] = 0; /* RF channel 0: 2402 MHz, advertising channel 37 */
	out[1] = (uint8_t)(int8_t)(rssi_dbm < -128 ? -128 : rssi_dbm > 127 ? 127 : rssi_dbm);
	/* out[2] noise, out[3] access address offenses, out[4..7] reference
	 * access address: not given */
	out[8] = 0x01 | 0x02; /* dewhitened, signal power valid (flags, LE) */
	out[9] = 0;
}

void pcapng_loratap_header(uint8_t out[PCAPNG_LORATAP_HDR], uint32_t freq_hz, uint32_t bw_hz,
			   unsigned sf, int rssi_dbm, double snr_db)
{
	memset(out, 0, PCAPNG_LORATAP_HDR);
	out[0] = 0; /* version */
	out[2] = 0; /* header length, big-endian */
	out[3] = PCAPNG_LORATAP_HDR;
	out[4] = (uint8_t)(freq_hz >> 24);
	out[5] = (uint8_t)(freq_hz >> 16);
	out[6] = (uint8_t)(freq_hz >> 8);
	out[7] = (uint8_t)freq_hz;
	out[8] = (uint8_t)(bw_hz / 125000); /* in 125 kHz steps */
	out[9] = (uint8_t)sf;
	/* RSSI as dBm + 139, clamped to a byte */
	int r = rssi_dbm + 139;
	r = r < 0 ? 0 : r > 255 ? 255 : r;
	out[10] = (uint8_t)r; /* packet RSSI */
	out[11] = (uint8_t)r; /* max RSSI */
	out[12] = (uint8_t)r; /* current RSSI */
	/* clamped before the conversion: a double out of int's range (or
	 * NaN) converted to int is undefined */
	double q = snr_db * 4;
	int s = q >= -128 && q <= 127 ? (int)q : q > 127 ? 127 : -128;
	out[13] = (uint8_t)(int8_t)s; /* SNR in 0.25 dB steps */
	out[14] = 0x34;		      /* LoRaWAN public sync word */
}
