/* SPDX-License-Identifier: MIT */
/*
 * The Semtech gateway messaging protocol (GWMP, "Semtech UDP", version 2 as
 * in PROTOCOL.TXT of Lora-net/packet_forwarder; version 1 datagrams are
 * accepted too): datagram headers, the upstream JSON (rxpk, stat), the
 * downstream JSON (txpk) and the TX_ACK feedback.
 *
 * Pure: no I/O, no globals. Every parser takes bytes from the network,
 * checks lengths, types and ranges, and returns 0 or -EINVAL with a static
 * reason in *why. The JSON of PUSH_DATA, read for every received packet,
 * goes through jsontok (no tree, no allocation in the common case), the
 * rest through jansson.
 */
#ifndef LABGW_LORAWAN_GWMP_H
#define LABGW_LORAWAN_GWMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base64.h"

#define GWMP_DATAGRAM_MAX 65507 /* the largest UDP payload over IPv4 */
#define GWMP_HDR_LEN	  4	/* version, token, identifier */
#define GWMP_EUI_HDR_LEN  12	/* ... and the gateway EUI */
#define GWMP_JSON_MAX	  (GWMP_DATAGRAM_MAX - GWMP_EUI_HDR_LEN)
#define GWMP_RXPK_MAX	  64 /* rxpk per PUSH_DATA; more are counted, not parsed */
#define GWMP_PHY_MAX	  255
#define GWMP_TIME_MAX	  40
#define GWMP_NAME_MAX	  32 /* a TX_ACK error name */

enum gwmp_type {
	GWMP_PUSH_DATA = 0,
	GWMP_PUSH_ACK = 1,
	GWMP_PULL_DATA = 2,
	GWMP_PULL_RESP = 3,
	GWMP_PULL_ACK = 4,
	GWMP_TX_ACK = 5,
};

const char *gwmp_type_name(enum gwmp_type t);

struct gwmp_header {
	uint8_t version; /* 1 or 2 */
	uint16_t token;	 /* bytes 1-2, big-endian */
	enum gwmp_type type;
	bool has_eui; /* PUSH_DATA, PULL_DATA, TX_ACK */
	uint64_t eui;
	/* the JSON after the header (PUSH_DATA, PULL_RESP, TX_ACK), trailing NUL
	 * bytes removed; may be empty for TX_ACK */
	const uint8_t *body;
	size_t body_len;
};

/* Splits a datagram. PUSH_DATA and PULL_RESP need a JSON body, PULL_DATA is
 * exactly 12 bytes, acknowledgements at least 4. */
int gwmp_parse(const uint8_t *buf, size_t len, struct gwmp_header *h, const char **why);

/* PUSH_ACK or PULL_ACK for a token: 4 bytes into out. */
size_t gwmp_build_ack(uint8_t out[GWMP_HDR_LEN], uint8_t version, uint16_t token,
		      enum gwmp_type type);

/* Overwrites the token of a datagram (relaying with tokens of our own). */
void gwmp_set_token(uint8_t *buf, size_t len, uint16_t token);

enum gwmp_modu {
	GWMP_MODU_LORA = 0,
	GWMP_MODU_FSK = 1,
};

enum gwmp_crc {
	GWMP_CRC_NONE = 0,
	GWMP_CRC_OK = 1,
	GWMP_CRC_FAIL = -1,
};

/* One received packet. Optional fields have a has_ flag. */
struct gwmp_rxpk {
	const char *error; /* NULL, or why this rxpk is unusable (then skip it) */
	bool has_time;
	char time[GWMP_TIME_MAX];
	bool has_tmst;
	uint32_t tmst;
	bool has_tmms;
	uint64_t tmms;
	bool has_freq;
	uint32_t freq_hz;
	bool has_chan;
	uint32_t chan;
	bool has_rfch;
	uint32_t rfch;
	bool has_stat;
	enum gwmp_crc stat;
	enum gwmp_modu modu;
	bool has_datr;
	int sf;		  /* LoRa */
	uint32_t bw_hz;	  /* LoRa */
	uint32_t fsk_bps; /* FSK */
	bool has_codr;
	char codr[8]; /* "4/5" */
	int cr;	      /* 5..8 from codr, 0 when unknown */
	bool has_rssi;
	int rssi; /* "rssi", else "rssis", else rsig[0] */
	bool has_lsnr;
	double lsnr;
	size_t data_len;
	uint8_t data[GWMP_PHY_MAX];
};

/* The gateway's status report. */
struct gwmp_stat {
	bool has_time;
	char time[GWMP_TIME_MAX];
	bool has_lati, has_long, has_alti;
	double lati, lon;
	int64_t alti;
	bool has_rxnb, has_rxok, has_rxfw, has_ackr, has_dwnb, has_txnb;
	uint64_t rxnb, rxok, rxfw, dwnb, txnb;
	double ackr;
};

struct gwmp_push {
	size_t n_rxpk;
	size_t rxpk_over; /* rxpk beyond GWMP_RXPK_MAX, not parsed */
	struct gwmp_rxpk rxpk[GWMP_RXPK_MAX];
	bool has_stat;
	struct gwmp_stat stat;
};

/* The JSON of a PUSH_DATA: a root object with an optional "rxpk" array and
 * an optional "stat" object. A bad rxpk element gets its own `error` and
 * does not fail the datagram; a bad root, rxpk or stat does (-EINVAL), as
 * does a lack of memory for a document of more than 512 values and keys
 * (-ENOMEM). What is accepted, and every field and error, are what the
 * former jansson reader gave, but for two things: numbers jansson refused
 * (beyond int64 or a double) make their field bad instead of the whole
 * datagram, and a NUL byte outside a string is refused (jansson 2.14
 * skipped one right after a number or literal). */
int gwmp_parse_push(const uint8_t *json, size_t len, struct gwmp_push *out, const char **why);

/* "SF7BW125" → 7, 125000 (SF 5..12; BW 125, 250 or 500). */
bool gwmp_parse_datr(const char *s, int *sf, uint32_t *bw_hz);
/* "4/5" .. "4/8" → 5 .. 8 */
bool gwmp_parse_codr(const char *s, int *cr);

enum gwmp_tx_error {
	GWMP_TX_NONE = 0,
	GWMP_TX_TOO_LATE,
	GWMP_TX_TOO_EARLY,
	GWMP_TX_COLLISION_PACKET,
	GWMP_TX_COLLISION_BEACON,
	GWMP_TX_FREQ,
	GWMP_TX_POWER,
	GWMP_TX_GPS_UNLOCKED,
	GWMP_TX_OTHER, /* a name outside the list; see `name` */
};

struct gwmp_tx_ack {
	enum gwmp_tx_error error;
	char name[GWMP_NAME_MAX + 1]; /* "NONE", "TOO_LATE", ... as sent (A-Z0-9_) */
	bool has_warn;
	char warn[GWMP_NAME_MAX + 1];
};

/* The JSON of a TX_ACK; empty (or only whitespace) means NONE, as does a
 * "txpk_ack" without "error". */
int gwmp_parse_tx_ack(const uint8_t *json, size_t len, struct gwmp_tx_ack *out, const char **why);

/* What the concentrator is asked to send. */
struct gwmp_txpk {
	bool imme;     /* else at tmst */
	uint32_t tmst; /* concentrator µs counter */
	uint32_t freq_hz;
	uint32_t rfch;
	int powe; /* dBm */
	enum gwmp_modu modu;
	int sf;		  /* LoRa */
	uint32_t bw_hz;	  /* LoRa */
	int cr;		  /* LoRa, 5..8 */
	uint32_t fsk_bps; /* FSK */
	uint32_t fdev_hz; /* FSK */
	bool ipol;
	bool ncrc;
	int prea;	     /* 0: forwarder default */
	size_t size;	     /* bytes; the length of data when built */
	const uint8_t *data; /* for gwmp_build_pull_resp */
};

/* Builds a PULL_RESP datagram into out; returns its length, or -ENOBUFS /
 * -EINVAL. freq is written with exactly 6 decimals (Hz precision). */
long gwmp_build_pull_resp(uint8_t *out, size_t cap, uint8_t version, uint16_t token,
			  const struct gwmp_txpk *t);

/* The JSON of a PULL_RESP (from an upstream network server): the fields
 * that decide airtime and timing; data is not kept (size is its length). */
int gwmp_parse_pull_resp(const uint8_t *json, size_t len, struct gwmp_txpk *out, bool *has_tmst,
			 const char **why);

/* Base64 (RFC 4648, standard alphabet). decode accepts missing padding and
 * returns the byte count or -1 (bad input or more than cap bytes); encode
 * writes a NUL-terminated string and returns its length or -1. */

/* 16 lowercase hex digits. */
void gwmp_eui_str(uint64_t eui, char out[17]);
bool gwmp_eui_parse(const char *s, uint64_t *eui);

#endif
