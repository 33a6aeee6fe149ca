/* SPDX-License-Identifier: MIT */
#include "nlparse.h"

#include <errno.h>
#include <linux/nl80211.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <stdio.h>
#include <string.h>

/* The attributes we read, with the sizes the kernel documents; libnl
 * refuses a message whose attribute is shorter than its type says. */
static struct nla_policy attr_policy[NL80211_ATTR_MAX + 1] = {
	[NL80211_ATTR_WIPHY] = {.type = NLA_U32},
	[NL80211_ATTR_IFINDEX] = {.type = NLA_U32},
	[NL80211_ATTR_IFNAME] = {.type = NLA_STRING, .maxlen = 64},
	[NL80211_ATTR_IFTYPE] = {.type = NLA_U32},
	[NL80211_ATTR_MAC] = {.type = NLA_UNSPEC, .minlen = 6},
	[NL80211_ATTR_WIPHY_FREQ] = {.type = NLA_U32},
	[NL80211_ATTR_CHANNEL_WIDTH] = {.type = NLA_U32},
	[NL80211_ATTR_CENTER_FREQ1] = {.type = NLA_U32},
	[NL80211_ATTR_WIPHY_TX_POWER_LEVEL] = {.type = NLA_U32},
	[NL80211_ATTR_SSID] = {.type = NLA_UNSPEC, .maxlen = 32},
	[NL80211_ATTR_STA_INFO] = {.type = NLA_NESTED},
	[NL80211_ATTR_BSS] = {.type = NLA_NESTED},
	[NL80211_ATTR_IE] = {.type = NLA_UNSPEC},
};

static struct nla_policy sta_policy[NL80211_STA_INFO_MAX + 1] = {
	[NL80211_STA_INFO_INACTIVE_TIME] = {.type = NLA_U32},
	[NL80211_STA_INFO_RX_BYTES] = {.type = NLA_U32},
	[NL80211_STA_INFO_TX_BYTES] = {.type = NLA_U32},
	[NL80211_STA_INFO_RX_BYTES64] = {.type = NLA_U64},
	[NL80211_STA_INFO_TX_BYTES64] = {.type = NLA_U64},
	[NL80211_STA_INFO_SIGNAL] = {.type = NLA_U8},
	[NL80211_STA_INFO_SIGNAL_AVG] = {.type = NLA_U8},
	[NL80211_STA_INFO_TX_BITRATE] = {.type = NLA_NESTED},
	[NL80211_STA_INFO_RX_BITRATE] = {.type = NLA_NESTED},
	[NL80211_STA_INFO_RX_PACKETS] = {.type = NLA_U32},
	[NL80211_STA_INFO_TX_PACKETS] = {.type = NLA_U32},
	[NL80211_STA_INFO_CONNECTED_TIME] = {.type = NLA_U32},
};

static struct nla_policy rate_policy[NL80211_RATE_INFO_MAX + 1] = {
	[NL80211_RATE_INFO_BITRATE] = {.type = NLA_U16},
	[NL80211_RATE_INFO_BITRATE32] = {.type = NLA_U32},
};

static struct nla_policy bss_policy[NL80211_BSS_MAX + 1] = {
	[NL80211_BSS_BSSID] = {.type = NLA_UNSPEC, .minlen = 6},
	[NL80211_BSS_FREQUENCY] = {.type = NLA_U32},
	[NL80211_BSS_BEACON_INTERVAL] = {.type = NLA_U16},
	[NL80211_BSS_CAPABILITY] = {.type = NLA_U16},
	[NL80211_BSS_INFORMATION_ELEMENTS] = {.type = NLA_UNSPEC},
	[NL80211_BSS_BEACON_IES] = {.type = NLA_UNSPEC},
	[NL80211_BSS_SIGNAL_MBM] = {.type = NLA_U32},
	[NL80211_BSS_STATUS] = {.type = NLA_U32},
	[NL80211_BSS_SEEN_MS_AGO] = {.type = NLA_U32},
};

int wlan_msg_cmd(const void *msg, size_t len)
{
	const struct nlmsghdr *nlh = msg;

	if (!msg || len < NLMSG_HDRLEN || len > WLAN_MSG_MAX)
		return -EINVAL;
	if (nlh->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN || nlh->nlmsg_len > len)
		return -EINVAL;
	return ((const struct genlmsghdr *)((const char *)msg + NLMSG_HDRLEN))->cmd;
}

/* The top-level attributes of a well-formed message. */
static int parse_top(const void *msg, size_t len, struct nlattr **tb)
{
	if (wlan_msg_cmd(msg, len) < 0)
		return -EINVAL;
	/* libnl's parser does not write to the message */
	if (genlmsg_parse((struct nlmsghdr *)msg, 0, tb, NL80211_ATTR_MAX, attr_policy) < 0)
		return -EINVAL;
	return 0;
}

int wlan_parse_ids(const void *msg, size_t len, uint32_t *wiphy, uint32_t *ifindex)
{
	struct nlattr *tb[NL80211_ATTR_MAX + 1];

	if (parse_top(msg, len, tb) < 0)
		return -EINVAL;
	*wiphy = tb[NL80211_ATTR_WIPHY] ? nla_get_u32(tb[NL80211_ATTR_WIPHY]) : 0;
	*ifindex = tb[NL80211_ATTR_IFINDEX] ? nla_get_u32(tb[NL80211_ATTR_IFINDEX]) : 0;
	return 0;
}

static enum wlan_mode mode_of(uint32_t t)
{
	switch (t) {
	case NL80211_IFTYPE_STATION:
		return WLAN_MODE_STATION;
	case NL80211_IFTYPE_AP:
		return WLAN_MODE_AP;
	case NL80211_IFTYPE_MONITOR:
		return WLAN_MODE_MONITOR;
	case NL80211_IFTYPE_MESH_POINT:
		return WLAN_MODE_MESH;
	case NL80211_IFTYPE_ADHOC:
		return WLAN_MODE_ADHOC;
	case NL80211_IFTYPE_P2P_CLIENT:
	case NL80211_IFTYPE_P2P_GO:
	case NL80211_IFTYPE_P2P_DEVICE:
		return WLAN_MODE_P2P;
	default:
		return WLAN_MODE_OTHER;
	}
}

const char *wlan_mode_name(enum wlan_mode m)
{
	switch (m) {
	case WLAN_MODE_UNKNOWN:
		return "unknown";
	case WLAN_MODE_STATION:
		return "station";
	case WLAN_MODE_AP:
		return "ap";
	case WLAN_MODE_MONITOR:
		return "monitor";
	case WLAN_MODE_MESH:
		return "mesh";
	case WLAN_MODE_ADHOC:
		return "adhoc";
	case WLAN_MODE_P2P:
		return "p2p";
	case WLAN_MODE_OTHER:
		return "other";
	}
	return "unknown";
}

static uint32_t width_mhz(uint32_t w)
{
	switch (w) {
	case NL80211_CHAN_WIDTH_20_NOHT:
	case NL80211_CHAN_WIDTH_20:
		return 20;
	case NL80211_CHAN_WIDTH_40:
		return 40;
	case NL80211_CHAN_WIDTH_80:
		return 80;
	case NL80211_CHAN_WIDTH_80P80:
	case NL80211_CHAN_WIDTH_160:
		return 160;
	case NL80211_CHAN_WIDTH_5:
		return 5;
	case NL80211_CHAN_WIDTH_10:
		return 10;
	default:
		return 0;
	}
}

/* SSID bytes in a printable form: ASCII kept, anything else as \xNN. */
static void ssid_print(const uint8_t *s, size_t n, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < n && o + 5 <= cap; i++) {
		if (s[i] >= 0x20 && s[i] < 0x7f && s[i] != '\\')
			out[o++] = (char)s[i];
		else
			o += (size_t)snprintf(out + o, cap - o, "\\x%02x", s[i]);
	}
	out[o] = 0;
}

int wlan_parse_iface(const void *msg, size_t len, struct wlan_iface *out)
{
	struct nlattr *tb[NL80211_ATTR_MAX + 1];

	memset(out, 0, sizeof(*out));
	if (parse_top(msg, len, tb) < 0 || !tb[NL80211_ATTR_IFINDEX])
		return -EINVAL;
	out->ifindex = nla_get_u32(tb[NL80211_ATTR_IFINDEX]);
	if (tb[NL80211_ATTR_WIPHY])
		out->wiphy = nla_get_u32(tb[NL80211_ATTR_WIPHY]);
	if (tb[NL80211_ATTR_IFNAME]) {
		const char *n = nla_data(tb[NL80211_ATTR_IFNAME]);
		size_t l = strnlen(n, (size_t)nla_len(tb[NL80211_ATTR_IFNAME]));
		if (l > WLAN_IFNAME_MAX)
			return -EINVAL;
		memcpy(out->name, n, l);
	}
	out->mode = tb[NL80211_ATTR_IFTYPE] ? mode_of(nla_get_u32(tb[NL80211_ATTR_IFTYPE]))
					    : WLAN_MODE_UNKNOWN;
	if (tb[NL80211_ATTR_MAC]) {
		memcpy(out->mac, nla_data(tb[NL80211_ATTR_MAC]), 6);
		out->has_mac = true;
	}
	if (tb[NL80211_ATTR_WIPHY_FREQ])
		out->freq_mhz = nla_get_u32(tb[NL80211_ATTR_WIPHY_FREQ]);
	if (tb[NL80211_ATTR_CHANNEL_WIDTH])
		out->width_mhz = width_mhz(nla_get_u32(tb[NL80211_ATTR_CHANNEL_WIDTH]));
	if (tb[NL80211_ATTR_CENTER_FREQ1])
		out->center_freq1_mhz = nla_get_u32(tb[NL80211_ATTR_CENTER_FREQ1]);
	if (tb[NL80211_ATTR_WIPHY_TX_POWER_LEVEL]) {
		out->txpower_mbm = (int32_t)nla_get_u32(tb[NL80211_ATTR_WIPHY_TX_POWER_LEVEL]);
		out->has_txpower = true;
	}
	if (tb[NL80211_ATTR_SSID]) {
		ssid_print(nla_data(tb[NL80211_ATTR_SSID]), (size_t)nla_len(tb[NL80211_ATTR_SSID]),
			   out->ssid, sizeof(out->ssid));
		out->has_ssid = true;
	}
	return 0;
}

static uint32_t rate_kbps(struct nlattr *nest)
{
	struct nlattr *rb[NL80211_RATE_INFO_MAX + 1];

	if (!nest || nla_parse_nested(rb, NL80211_RATE_INFO_MAX, nest, rate_policy) < 0)
		return 0;
	/* the kernel counts in units of 100 kbit/s */
	if (rb[NL80211_RATE_INFO_BITRATE32])
		return nla_get_u32(rb[NL80211_RATE_INFO_BITRATE32]) * 100u;
	if (rb[NL80211_RATE_INFO_BITRATE])
		return nla_get_u16(rb[NL80211_RATE_INFO_BITRATE]) * 100u;
	return 0;
}

int wlan_parse_station(const void *msg, size_t len, struct wlan_station *out)
{
	struct nlattr *tb[NL80211_ATTR_MAX + 1];
	struct nlattr *si[NL80211_STA_INFO_MAX + 1];

	memset(out, 0, sizeof(*out));
	if (parse_top(msg, len, tb) < 0 || !tb[NL80211_ATTR_IFINDEX] || !tb[NL80211_ATTR_MAC])
		return -EINVAL;
	out->ifindex = nla_get_u32(tb[NL80211_ATTR_IFINDEX]);
	memcpy(out->mac, nla_data(tb[NL80211_ATTR_MAC]), 6);
	if (tb[NL80211_ATTR_IE] && nla_len(tb[NL80211_ATTR_IE]) > 0) {
		out->ies = nla_data(tb[NL80211_ATTR_IE]);
		out->ies_len = (size_t)nla_len(tb[NL80211_ATTR_IE]);
		if (out->ies_len > WLAN_IES_MAX)
			out->ies_len = WLAN_IES_MAX;
	}
	if (!tb[NL80211_ATTR_STA_INFO])
		return 0;
	if (nla_parse_nested(si, NL80211_STA_INFO_MAX, tb[NL80211_ATTR_STA_INFO], sta_policy) < 0)
		return -EINVAL;
	if (si[NL80211_STA_INFO_SIGNAL]) {
		out->signal_dbm = (int8_t)nla_get_u8(si[NL80211_STA_INFO_SIGNAL]);
		out->has_signal = true;
	}
	if (si[NL80211_STA_INFO_SIGNAL_AVG]) {
		out->signal_avg_dbm = (int8_t)nla_get_u8(si[NL80211_STA_INFO_SIGNAL_AVG]);
		out->has_signal_avg = true;
	}
	out->tx_bitrate_kbps = rate_kbps(si[NL80211_STA_INFO_TX_BITRATE]);
	out->rx_bitrate_kbps = rate_kbps(si[NL80211_STA_INFO_RX_BITRATE]);
	if (si[NL80211_STA_INFO_RX_BYTES64])
		out->rx_bytes = nla_get_u64(si[NL80211_STA_INFO_RX_BYTES64]);
	else if (si[NL80211_STA_INFO_RX_BYTES])
		out->rx_bytes = nla_get_u32(si[NL80211_STA_INFO_RX_BYTES]);
	if (si[NL80211_STA_INFO_TX_BYTES64])
		out->tx_bytes = nla_get_u64(si[NL80211_STA_INFO_TX_BYTES64]);
	else if (si[NL80211_STA_INFO_TX_BYTES])
		out->tx_bytes = nla_get_u32(si[NL80211_STA_INFO_TX_BYTES]);
	if (si[NL80211_STA_INFO_RX_PACKETS])
		out->rx_packets = nla_get_u32(si[NL80211_STA_INFO_RX_PACKETS]);
	if (si[NL80211_STA_INFO_TX_PACKETS])
		out->tx_packets = nla_get_u32(si[NL80211_STA_INFO_TX_PACKETS]);
	if (si[NL80211_STA_INFO_CONNECTED_TIME])
		out->connected_s = nla_get_u32(si[NL80211_STA_INFO_CONNECTED_TIME]);
	if (si[NL80211_STA_INFO_INACTIVE_TIME])
		out->inactive_ms = nla_get_u32(si[NL80211_STA_INFO_INACTIVE_TIME]);
	out->has_counters = si[NL80211_STA_INFO_RX_BYTES64] || si[NL80211_STA_INFO_RX_BYTES] ||
			    si[NL80211_STA_INFO_CONNECTED_TIME];
	return 0;
}

int wlan_parse_bss(const void *msg, size_t len, struct wlan_bss *out)
{
	struct nlattr *tb[NL80211_ATTR_MAX + 1];
	struct nlattr *b[NL80211_BSS_MAX + 1];
	struct nlattr *ie;

	memset(out, 0, sizeof(*out));
	if (parse_top(msg, len, tb) < 0)
		return -EINVAL;
	if (!tb[NL80211_ATTR_BSS])
		return -ENOENT;
	if (nla_parse_nested(b, NL80211_BSS_MAX, tb[NL80211_ATTR_BSS], bss_policy) < 0 ||
	    !b[NL80211_BSS_BSSID])
		return -EINVAL;
	if (tb[NL80211_ATTR_IFINDEX])
		out->ifindex = nla_get_u32(tb[NL80211_ATTR_IFINDEX]);
	memcpy(out->bssid, nla_data(b[NL80211_BSS_BSSID]), 6);
	if (b[NL80211_BSS_FREQUENCY])
		out->freq_mhz = nla_get_u32(b[NL80211_BSS_FREQUENCY]);
	if (b[NL80211_BSS_SIGNAL_MBM]) {
		out->signal_mbm = (int32_t)nla_get_u32(b[NL80211_BSS_SIGNAL_MBM]);
		out->has_signal = true;
	}
	if (b[NL80211_BSS_CAPABILITY])
		out->capability = nla_get_u16(b[NL80211_BSS_CAPABILITY]);
	if (b[NL80211_BSS_BEACON_INTERVAL])
		out->beacon_interval = nla_get_u16(b[NL80211_BSS_BEACON_INTERVAL]);
	if (b[NL80211_BSS_SEEN_MS_AGO])
		out->seen_ms_ago = nla_get_u32(b[NL80211_BSS_SEEN_MS_AGO]);
	if (b[NL80211_BSS_STATUS]) {
		uint32_t st = nla_get_u32(b[NL80211_BSS_STATUS]);
		out->associated =
			st == NL80211_BSS_STATUS_ASSOCIATED || st == NL80211_BSS_STATUS_IBSS_JOINED;
	}
	/* a probe response says most; a beacon is the fallback */
	ie = b[NL80211_BSS_INFORMATION_ELEMENTS] ? b[NL80211_BSS_INFORMATION_ELEMENTS]
						 : b[NL80211_BSS_BEACON_IES];
	if (ie && nla_len(ie) > 0) {
		out->ies = nla_data(ie);
		out->ies_len = (size_t)nla_len(ie);
		if (out->ies_len > WLAN_IES_MAX)
			out->ies_len = WLAN_IES_MAX;
	}
	return 0;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

/* The AKM suites of an RSN or WPA element body starting at its version. */
static unsigned akm_security(const uint8_t *p, size_t n, const uint8_t oui[3], bool rsn)
{
	unsigned sec = 0;
	size_t o = 2 + 4; /* version, group cipher */

	if (n < o + 2)
		return rsn ? WLAN_SEC_WPA2 : WLAN_SEC_WPA; /* defaults the standard gives */
	size_t npair = le16(p + o);
	o += 2;
	if (npair > (n - o) / 4)
		return rsn ? WLAN_SEC_WPA2 : WLAN_SEC_WPA;
	o += 4 * npair;
	if (n < o + 2)
		return rsn ? WLAN_SEC_WPA2 : WLAN_SEC_WPA;
	size_t nakm = le16(p + o);
	o += 2;
	if (nakm > (n - o) / 4)
		nakm = (n - o) / 4;
	for (size_t i = 0; i < nakm; i++, o += 4) {
		if (memcmp(p + o, oui, 3))
			continue;
		unsigned t = p[o + 3];
		if (!rsn) {
			sec |= t == 1 ? WLAN_SEC_WPA | WLAN_SEC_8021X : WLAN_SEC_WPA;
			continue;
		}
		switch (t) {
		case 1:	 /* 802.1X */
		case 3:	 /* FT over 802.1X */
		case 5:	 /* 802.1X SHA-256 */
		case 11: /* Suite B */
		case 12: /* Suite B 192 */
		case 13: /* FT 802.1X SHA-384 */
			sec |= WLAN_SEC_WPA2 | WLAN_SEC_8021X;
			break;
		case 8:	 /* SAE */
		case 9:	 /* FT over SAE */
		case 24: /* SAE with group-dependent hash */
		case 25:
			sec |= WLAN_SEC_WPA3;
			break;
		case 18:
			sec |= WLAN_SEC_OWE;
			break;
		default: /* PSK and its variants */
			sec |= WLAN_SEC_WPA2;
			break;
		}
	}
	return sec ? sec : (rsn ? WLAN_SEC_WPA2 : WLAN_SEC_WPA);
}

void wlan_ie_parse(const uint8_t *ies, size_t len, struct wlan_ie_info *out)
{
	static const uint8_t ieee_oui[3] = {0x00, 0x0f, 0xac};
	static const uint8_t ms_oui[3] = {0x00, 0x50, 0xf2};
	size_t o = 0;

	memset(out, 0, sizeof(*out));
	while (ies && o + 2 <= len) {
		uint8_t id = ies[o], n = ies[o + 1];
		const uint8_t *p = ies + o + 2;
		if (o + 2 + n > len) {
			out->bad = true;
			return;
		}
		switch (id) {
		case 0: /* SSID */
			if (out->has_ssid || n > WLAN_SSID_MAX)
				break;
			out->has_ssid = true;
			out->ssid_hidden = true;
			for (size_t i = 0; i < n; i++)
				if (p[i])
					out->ssid_hidden = false;
			if (!out->ssid_hidden)
				ssid_print(p, n, out->ssid, sizeof(out->ssid));
			break;
		case 3: /* DS parameter set */
			if (n >= 1)
				out->ds_channel = p[0];
			break;
		case 48: /* RSN */
			if (n >= 2)
				out->security |= akm_security(p, n, ieee_oui, true);
			break;
		case 221: /* vendor: Microsoft's WPA element is type 1 */
			if (n >= 6 && !memcmp(p, ms_oui, 3) && p[3] == 1)
				out->security |= akm_security(p + 4, n - 4u, ms_oui, false);
			break;
		default:
			break;
		}
		o += 2u + n;
	}
	if (o != len)
		out->bad = true;
}

const char *wlan_security_name(unsigned sec, uint16_t capability)
{
	if ((sec & WLAN_SEC_WPA3) && (sec & WLAN_SEC_WPA2) && !(sec & WLAN_SEC_8021X))
		return "wpa2-wpa3";
	if (sec & WLAN_SEC_WPA3)
		return "wpa3";
	if (sec & WLAN_SEC_OWE)
		return "owe";
	if (sec & WLAN_SEC_8021X)
		return (sec & WLAN_SEC_WPA2) ? "wpa2-enterprise" : "wpa-enterprise";
	if (sec & WLAN_SEC_WPA2)
		return "wpa2";
	if (sec & WLAN_SEC_WPA)
		return "wpa";
	/* the capability's privacy bit without RSN or WPA: WEP */
	return (capability & 0x0010) ? "wep" : "open";
}

int wlan_freq_channel(uint32_t f)
{
	if (f == 2484)
		return 14;
	if (f >= 2412 && f <= 2472)
		return (int)(f - 2407) / 5;
	if (f >= 5955 && f <= 7115)
		return (int)(f - 5950) / 5;
	if (f == 5935)
		return 2;
	if (f >= 4910 && f <= 4980)
		return (int)(f - 4000) / 5;
	if (f >= 5000 && f <= 5900)
		return (int)(f - 5000) / 5;
	if (f >= 58320 && f <= 70200)
		return (int)(f - 56160) / 2160;
	return 0;
}

void wlan_mac_str(const uint8_t m[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}
