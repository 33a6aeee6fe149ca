// SPDX-License-Identifier: MIT
/*
 * LoRaWAN 1.0.x frame format (specification section 4: MHDR, FHDR, FPort,
 * FRMPayload, MIC; section 6.2: join-request and join-accept), written from
 * the specification. Pure.
 */
#include "phy.h"

#include <errno.h>
#include <string.h>

const char *phy_mtype_name(enum phy_mtype m)
{
	switch (m) {
	case PHY_JOIN_REQUEST:
		return "join_request";
	case PHY_JOIN_ACCEPT:
		return "join_accept";
	case PHY_UNCONFIRMED_UP:
		return "unconfirmed_up";
	case PHY_UNCONFIRMED_DOWN:
		return "unconfirmed_down";
	case PHY_CONFIRMED_UP:
		return "confirmed_up";
	case PHY_CONFIRMED_DOWN:
		return "confirmed_down";
	case PHY_REJOIN_REQUEST:
		return "rejoin_request";
	case PHY_PROPRIETARY:
		return "proprietary";
	}
	return "unknown";
}

bool phy_mtype_is_data(enum phy_mtype m)
{
	return m >= PHY_UNCONFIRMED_UP && m <= PHY_CONFIRMED_DOWN;
}

bool phy_mtype_is_uplink(enum phy_mtype m)
{
	return m == PHY_JOIN_REQUEST || m == PHY_UNCONFIRMED_UP || m == PHY_CONFIRMED_UP ||
	       m == PHY_REJOIN_REQUEST;
}

static uint64_t get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;

	for (size_t i = n; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static void put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static int bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EINVAL;
}

int phy_parse(const uint8_t *buf, size_t len, struct phy_frame *f, const char **why)
{
	size_t rest;

	memset(f, 0, sizeof(*f));
	if (!buf || !len)
		return bad(why, "empty PHYPayload");
	f->buf = buf;
	f->len = len;
	f->mhdr = buf[0];
	f->mtype = (enum phy_mtype)(buf[0] >> 5);
	f->major = buf[0] & 0x03;
	if (len > PHY_MAX_LEN)
		return bad(why, "PHYPayload longer than 255 bytes");
	if (f->major != 0)
		return bad(why, "unknown LoRaWAN major version");
	switch (f->mtype) {
	case PHY_JOIN_REQUEST:
		if (len != PHY_JOIN_REQUEST_LEN)
			return bad(why, "join request is not 23 bytes");
		f->join_eui = get_le(buf + 1, 8);
		f->dev_eui = get_le(buf + 9, 8);
		f->dev_nonce = (uint16_t)get_le(buf + 17, 2);
		f->mic = buf + 19;
		return 0;
	case PHY_JOIN_ACCEPT:
		if (len != 17 && len != 33)
			return bad(why, "join accept is not 17 or 33 bytes");
		f->mic = buf + len - 4;
		return 0;
	case PHY_UNCONFIRMED_UP:
	case PHY_UNCONFIRMED_DOWN:
	case PHY_CONFIRMED_UP:
	case PHY_CONFIRMED_DOWN:
		break;
	case PHY_REJOIN_REQUEST:
		if (len < 5)
			return bad(why, "rejoin request shorter than 5 bytes");
		f->mic = buf + len - 4;
		return 0;
	case PHY_PROPRIETARY:
		return 0;
	}
	if (len < PHY_DATA_MIN_LEN)
		return bad(why, "data frame shorter than 12 bytes");
	f->dev_addr = (uint32_t)get_le(buf + 1, 4);
	f->fctrl = buf[5];
	f->fopts_len = buf[5] & 0x0f;
	f->fcnt16 = (uint16_t)get_le(buf + 6, 2);
	if (8u + f->fopts_len + 4u > len)
		return bad(why, "FOptsLen reaches beyond the frame");
	f->fopts = buf + 8;
	rest = len - 8 - f->fopts_len - 4;
	if (rest) {
		f->has_fport = true;
		f->fport = buf[8 + f->fopts_len];
		f->frm = buf + 9 + f->fopts_len;
		f->frm_len = rest - 1;
		if (f->fport == 0 && f->fopts_len)
			f->warning = "FOpts together with FPort 0";
	}
	f->mic = buf + len - 4;
	return 0;
}

uint32_t phy_fcnt_forward(uint32_t last, uint16_t fcnt16)
{
	return last + (uint16_t)(fcnt16 - (uint16_t)last);
}

static size_t add_unique(uint32_t *out, size_t n, uint32_t v)
{
	for (size_t i = 0; i < n; i++) {
		if (out[i] == v)
			return n;
	}
	out[n] = v;
	return n + 1;
}

size_t phy_fcnt_candidates(bool has_last, uint32_t last, uint16_t fcnt16, uint32_t out[4])
{
	size_t n = 0;
	uint32_t fwd, epoch = last & 0xffff0000u;

	if (!has_last) {
		out[0] = fcnt16;
		return 1;
	}
	fwd = phy_fcnt_forward(last, fcnt16);
	if (fwd >= last) /* else the counter space ran out */
		n = add_unique(out, n, fwd);
	if ((epoch | fcnt16) < last)
		n = add_unique(out, n, epoch | fcnt16);
	if (epoch >= 0x10000u)
		n = add_unique(out, n, (epoch - 0x10000u) | fcnt16);
	return add_unique(out, n, fcnt16);
}

int phy_uplink_verify(struct lorawan_crypto *c, const struct phy_frame *f,
		      const uint8_t nwkskey[LORAWAN_KEY_LEN], bool has_last, uint32_t last,
		      struct phy_uplink_check *out)
{
	uint32_t cand[4];
	size_t n;

	memset(out, 0, sizeof(*out));
	if (!f || !phy_mtype_is_data(f->mtype) || !phy_mtype_is_uplink(f->mtype) || !f->mic ||
	    !nwkskey)
		return -EINVAL;
	n = phy_fcnt_candidates(has_last, last, f->fcnt16, cand);
	out->fcnt = cand[0];
	for (size_t i = 0; i < n; i++) {
		uint8_t mic[LORAWAN_MIC_LEN];
		int rc = lorawan_crypto_data_mic(c, nwkskey, LORAWAN_DIR_UP, f->dev_addr, cand[i],
						 f->buf, f->len - LORAWAN_MIC_LEN, mic);

		if (rc < 0)
			return rc;
		if (!memcmp(mic, f->mic, LORAWAN_MIC_LEN)) {
			out->mic_ok = true;
			out->fcnt = cand[i];
			out->fresh = !has_last || cand[i] > last;
			out->stale = !out->fresh;
			return 0;
		}
	}
	return 0;
}

int phy_decrypt_frm(struct lorawan_crypto *c, const struct phy_frame *f, uint32_t fcnt,
		    const uint8_t nwkskey[LORAWAN_KEY_LEN], const uint8_t appskey[LORAWAN_KEY_LEN],
		    uint8_t *out)
{
	if (!f || !phy_mtype_is_data(f->mtype) || !f->has_fport)
		return -EINVAL;
	return lorawan_crypto_frm_payload(c, f->fport ? appskey : nwkskey,
					  phy_mtype_is_uplink(f->mtype) ? LORAWAN_DIR_UP
									: LORAWAN_DIR_DOWN,
					  f->dev_addr, fcnt, f->frm, f->frm_len, out);
}

long phy_build_data(struct lorawan_crypto *c, const struct phy_data_params *p,
		    const uint8_t nwkskey[LORAWAN_KEY_LEN], const uint8_t appskey[LORAWAN_KEY_LEN],
		    uint8_t *out, size_t cap)
{
	enum lorawan_dir dir;
	size_t n, total;
	int rc;

	if (!p || !out || !nwkskey || !phy_mtype_is_data(p->mtype) || p->fopts_len > 15 ||
	    (p->fopts_len && !p->fopts) || (p->len && (!p->payload || !p->has_fport)) ||
	    (p->has_fport && p->fport == 0 && p->fopts_len) ||
	    (p->has_fport && p->fport && !appskey))
		return -EINVAL;
	total = 1 + 7 + p->fopts_len + (p->has_fport ? 1 : 0) + p->len + LORAWAN_MIC_LEN;
	if (total > PHY_MAX_LEN || total > cap)
		return -ENOBUFS;
	dir = phy_mtype_is_uplink(p->mtype) ? LORAWAN_DIR_UP : LORAWAN_DIR_DOWN;
	out[0] = (uint8_t)(p->mtype << 5); /* major 0: LoRaWAN R1 */
	put_le(out + 1, p->dev_addr, 4);
	out[5] = (uint8_t)((p->fctrl & 0xf0) | p->fopts_len);
	put_le(out + 6, p->fcnt & 0xffff, 2);
	if (p->fopts_len)
		memcpy(out + 8, p->fopts, p->fopts_len);
	n = 8 + p->fopts_len;
	if (p->has_fport) {
		out[n++] = p->fport;
		rc = lorawan_crypto_frm_payload(c, p->fport ? appskey : nwkskey, dir, p->dev_addr,
						p->fcnt, p->payload, p->len, out + n);
		if (rc < 0)
			return rc;
		n += p->len;
	}
	rc = lorawan_crypto_data_mic(c, nwkskey, dir, p->dev_addr, p->fcnt, out, n, out + n);
	if (rc < 0)
		return rc;
	return (long)(n + LORAWAN_MIC_LEN);
}

static const struct {
	int sf;
	uint32_t bw_hz;
	size_t max_mac;
} eu868_drs[] = {
	{12, 125000, 59}, {11, 125000, 59}, {10, 125000, 59}, {9, 125000, 123},
	{8, 125000, 250}, {7, 125000, 250}, {7, 250000, 250},
};

int phy_eu868_dr(int sf, uint32_t bw_hz)
{
	for (size_t i = 0; i < sizeof(eu868_drs) / sizeof(eu868_drs[0]); i++) {
		if (eu868_drs[i].sf == sf && eu868_drs[i].bw_hz == bw_hz)
			return (int)i;
	}
	return -1;
}

size_t phy_eu868_max_mac_payload(int sf, uint32_t bw_hz)
{
	int dr = phy_eu868_dr(sf, bw_hz);

	return dr < 0 ? 0 : eu868_drs[dr].max_mac;
}
