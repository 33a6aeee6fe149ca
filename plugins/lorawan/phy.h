/* SPDX-License-Identifier: MIT */
/*
 * LoRaWAN 1.0.x PHYPayloads: parsing, MIC check with 32-bit frame counter
 * reconstruction, FRMPayload decryption, and building data frames; the
 * EU868 payload limits of the regional parameters.
 *
 * Pure: no I/O, no globals; the cryptography is plugins/shared/
 * lorawan_crypto. Multi-byte fields are little-endian on air; DevAddr and
 * EUIs are returned as host integers, shown big-endian ("26011bda").
 */
#ifndef LABGW_LORAWAN_PHY_H
#define LABGW_LORAWAN_PHY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lorawan_crypto.h"

#define PHY_MAX_LEN	     255
#define PHY_DATA_MIN_LEN     12 /* MHDR, FHDR without FOpts, MIC */
#define PHY_DATA_OVERHEAD    13 /* ... and FPort */
#define PHY_JOIN_REQUEST_LEN 23

enum phy_mtype {
	PHY_JOIN_REQUEST = 0,
	PHY_JOIN_ACCEPT = 1,
	PHY_UNCONFIRMED_UP = 2,
	PHY_UNCONFIRMED_DOWN = 3,
	PHY_CONFIRMED_UP = 4,
	PHY_CONFIRMED_DOWN = 5,
	PHY_REJOIN_REQUEST = 6, /* RFU in 1.0.x, rejoin in 1.1 */
	PHY_PROPRIETARY = 7,
};

/* FCtrl bits (FOptsLen is the low nibble) */
#define PHY_FCTRL_ADR	      0x80
#define PHY_FCTRL_ADR_ACK_REQ 0x40 /* uplink */
#define PHY_FCTRL_ACK	      0x20
#define PHY_FCTRL_FPENDING    0x10 /* downlink */
#define PHY_FCTRL_CLASS_B     0x10 /* uplink (1.0.2+) */

/* "join_request", "unconfirmed_up", ... */
const char *phy_mtype_name(enum phy_mtype m);
bool phy_mtype_is_data(enum phy_mtype m);
bool phy_mtype_is_uplink(enum phy_mtype m);

struct phy_frame {
	const uint8_t *buf; /* the PHYPayload parsed (borrowed) */
	size_t len;
	uint8_t mhdr;
	enum phy_mtype mtype;
	uint8_t major;
	/* data frames */
	uint32_t dev_addr;
	uint8_t fctrl;
	uint8_t fopts_len;
	const uint8_t *fopts;
	uint16_t fcnt16;
	bool has_fport;
	uint8_t fport;
	const uint8_t *frm;
	size_t frm_len;
	/* join requests */
	uint64_t join_eui, dev_eui;
	uint16_t dev_nonce;
	/* the last four bytes (not for proprietary frames) */
	const uint8_t *mic;
	/* set when the frame decodes but breaks a rule of the specification
	 * (e.g. FOpts together with FPort 0) */
	const char *warning;
};

/*
 * Parses a PHYPayload. Returns 0, or -EINVAL with a static reason in *why:
 * empty, longer than 255 bytes, unknown major version (f->mtype and
 * f->major are still set), too short for its MType, FOptsLen beyond the
 * frame, join request not 23 bytes, join accept not 17 or 33 bytes.
 */
int phy_parse(const uint8_t *buf, size_t len, struct phy_frame *f, const char **why);

/*
 * The 32-bit uplink counter that follows `last`: the smallest value
 * >= last whose low 16 bits are fcnt16 (last itself when they match).
 */
uint32_t phy_fcnt_forward(uint32_t last, uint16_t fcnt16);

/* The 32-bit counters a 16-bit one may stand for after `last` (has_last
 * false: nothing known), most likely first: forward, then back in the
 * same and the previous epoch, then a counter reset. Returns the count. */
size_t phy_fcnt_candidates(bool has_last, uint32_t last, uint16_t fcnt16, uint32_t out[4]);

struct phy_uplink_check {
	bool mic_ok;
	uint32_t fcnt; /* the verified counter; the forward guess when !mic_ok */
	bool fresh;    /* mic_ok and beyond last (or nothing known) */
	bool stale;    /* mic_ok and at or below last: a replay or a repeat */
};

/* Checks the MIC of a data uplink under nwkskey, trying the candidates of
 * phy_fcnt_candidates. Returns 0, -EINVAL for a frame that is no data
 * uplink, or a negative errno of the crypto. */
int phy_uplink_verify(struct lorawan_crypto *c, const struct phy_frame *f,
		      const uint8_t nwkskey[LORAWAN_KEY_LEN], bool has_last, uint32_t last,
		      struct phy_uplink_check *out);

/* Decrypts the FRMPayload of a data frame into out (f->frm_len bytes): the
 * AppSKey for FPort 1..255, the NwkSKey for FPort 0. */
int phy_decrypt_frm(struct lorawan_crypto *c, const struct phy_frame *f, uint32_t fcnt,
		    const uint8_t nwkskey[LORAWAN_KEY_LEN], const uint8_t appskey[LORAWAN_KEY_LEN],
		    uint8_t *out);

struct phy_data_params {
	enum phy_mtype mtype; /* 2..5 */
	uint32_t dev_addr;
	uint8_t fctrl; /* flags only; FOptsLen comes from fopts_len */
	const uint8_t *fopts;
	size_t fopts_len; /* 0..15 */
	uint32_t fcnt;	  /* full counter; the low 16 bits go on air */
	bool has_fport;
	uint8_t fport;
	const uint8_t *payload; /* plaintext FRMPayload */
	size_t len;
};

/* Builds, encrypts and signs a data frame into out. Returns its length,
 * -EINVAL for bad parameters, -ENOBUFS when it does not fit cap or 255
 * bytes, or an error of the crypto. */
long phy_build_data(struct lorawan_crypto *c, const struct phy_data_params *p,
		    const uint8_t nwkskey[LORAWAN_KEY_LEN], const uint8_t appskey[LORAWAN_KEY_LEN],
		    uint8_t *out, size_t cap);

/* EU868: the maximum MACPayload size M of a LoRa data rate (RP002, not
 * repeater compatible: 59, 59, 59, 123, 250, 250, 250 for DR0..DR6), 0 for
 * a rate EU868 does not have. The FRMPayload limit N is M - 8 without
 * FOpts. */
size_t phy_eu868_max_mac_payload(int sf, uint32_t bw_hz);
/* EU868 data rate index of a LoRa rate, -1 if none. */
int phy_eu868_dr(int sf, uint32_t bw_hz);

#endif
