// SPDX-License-Identifier: MIT
/*
 * nl80211 message parsing (plugins/wlan/nlparse.c) on messages built with
 * libnl the way the kernel builds them: interfaces, stations (events and
 * dumps, with nested station info and bit rates), scan results, truncated
 * and lying messages; and the information elements of a BSS (SSID, RSN
 * and WPA elements, the security they add up to).
 */
#include <errno.h>
#include <linux/nl80211.h>
#include <netlink/attr.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/wlan/nlparse.h"

static const uint8_t AP_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x00};
static const uint8_t STA_MAC[6] = {0x02, 0x00, 0x00, 0x00, 0x01, 0x00};

static struct nl_msg *msg_new(uint8_t cmd)
{
	struct nl_msg *m = nlmsg_alloc();
	assert_non_null(m);
	assert_non_null(genlmsg_put(m, 0, 7, 28, 0, 0, cmd, 0));
	return m;
}

static const void *raw(struct nl_msg *m, size_t *len)
{
	*len = nlmsg_hdr(m)->nlmsg_len;
	return nlmsg_hdr(m);
}

static void iface_in_ap_mode(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_INTERFACE);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 5);
	nla_put_u32(m, NL80211_ATTR_WIPHY, 1);
	nla_put_string(m, NL80211_ATTR_IFNAME, "wlan0");
	nla_put_u32(m, NL80211_ATTR_IFTYPE, NL80211_IFTYPE_AP);
	nla_put(m, NL80211_ATTR_MAC, 6, AP_MAC);
	nla_put_u32(m, NL80211_ATTR_WIPHY_FREQ, 2412);
	nla_put_u32(m, NL80211_ATTR_CHANNEL_WIDTH, NL80211_CHAN_WIDTH_20);
	nla_put_u32(m, NL80211_ATTR_WIPHY_TX_POWER_LEVEL, 2000);
	nla_put(m, NL80211_ATTR_SSID, 9, "labgw-lab");
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_iface w;

	assert_int_equal(wlan_msg_cmd(b, len), NL80211_CMD_NEW_INTERFACE);
	assert_int_equal(wlan_parse_iface(b, len, &w), 0);
	assert_int_equal(w.ifindex, 5);
	assert_int_equal(w.wiphy, 1);
	assert_string_equal(w.name, "wlan0");
	assert_int_equal(w.mode, WLAN_MODE_AP);
	assert_string_equal(wlan_mode_name(w.mode), "ap");
	assert_true(w.has_mac);
	assert_memory_equal(w.mac, AP_MAC, 6);
	assert_int_equal(w.freq_mhz, 2412);
	assert_int_equal(wlan_freq_channel(w.freq_mhz), 1);
	assert_int_equal(w.width_mhz, 20);
	assert_true(w.has_txpower);
	assert_int_equal(w.txpower_mbm, 2000);
	assert_true(w.has_ssid);
	assert_string_equal(w.ssid, "labgw-lab");
	nlmsg_free(m);
}

static void iface_without_ifindex_is_refused(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_INTERFACE);
	nla_put_string(m, NL80211_ATTR_IFNAME, "wlan0");
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_iface w;
	assert_int_equal(wlan_parse_iface(b, len, &w), -EINVAL);
	nlmsg_free(m);
}

static void iface_ssid_with_odd_bytes_is_printable(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_INTERFACE);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 3);
	nla_put_u32(m, NL80211_ATTR_IFTYPE, NL80211_IFTYPE_STATION);
	nla_put(m, NL80211_ATTR_SSID, 4, "a\x01\\\xff");
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_iface w;
	assert_int_equal(wlan_parse_iface(b, len, &w), 0);
	assert_string_equal(w.ssid, "a\\x01\\x5c\\xff");
	assert_int_equal(w.mode, WLAN_MODE_STATION);
	nlmsg_free(m);
}

static void put_rate(struct nl_msg *m, int attr, uint32_t units)
{
	struct nlattr *r = nla_nest_start(m, attr);
	nla_put_u32(m, NL80211_RATE_INFO_BITRATE32, units);
	nla_nest_end(m, r);
}

static void station_dump_with_counters(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_STATION);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 5);
	nla_put(m, NL80211_ATTR_MAC, 6, STA_MAC);
	struct nlattr *si = nla_nest_start(m, NL80211_ATTR_STA_INFO);
	nla_put_u8(m, NL80211_STA_INFO_SIGNAL, (uint8_t)-30);
	nla_put_u8(m, NL80211_STA_INFO_SIGNAL_AVG, (uint8_t)-31);
	nla_put_u64(m, NL80211_STA_INFO_RX_BYTES64, 5000000000ull);
	nla_put_u32(m, NL80211_STA_INFO_TX_BYTES, 1234);
	nla_put_u32(m, NL80211_STA_INFO_RX_PACKETS, 10);
	nla_put_u32(m, NL80211_STA_INFO_TX_PACKETS, 11);
	nla_put_u32(m, NL80211_STA_INFO_CONNECTED_TIME, 42);
	nla_put_u32(m, NL80211_STA_INFO_INACTIVE_TIME, 99);
	put_rate(m, NL80211_STA_INFO_TX_BITRATE, 540);
	struct nlattr *r = nla_nest_start(m, NL80211_STA_INFO_RX_BITRATE);
	nla_put_u16(m, NL80211_RATE_INFO_BITRATE, 10);
	nla_nest_end(m, r);
	nla_nest_end(m, si);
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_station s;

	assert_int_equal(wlan_parse_station(b, len, &s), 0);
	assert_int_equal(s.ifindex, 5);
	assert_memory_equal(s.mac, STA_MAC, 6);
	assert_true(s.has_signal && s.has_signal_avg);
	assert_int_equal(s.signal_dbm, -30);
	assert_int_equal(s.signal_avg_dbm, -31);
	assert_int_equal(s.rx_bytes, 5000000000ull);
	assert_int_equal(s.tx_bytes, 1234);
	assert_int_equal(s.rx_packets, 10);
	assert_int_equal(s.tx_packets, 11);
	assert_int_equal(s.connected_s, 42);
	assert_int_equal(s.inactive_ms, 99);
	assert_int_equal(s.tx_bitrate_kbps, 54000);
	assert_int_equal(s.rx_bitrate_kbps, 1000);
	assert_true(s.has_counters);
	assert_null(s.ies);
	char txt[18];
	wlan_mac_str(s.mac, txt);
	assert_string_equal(txt, "02:00:00:00:01:00");
	nlmsg_free(m);
}

static void station_event_without_info_but_with_ies(void **st)
{
	(void)st;
	static const uint8_t ies[] = {0, 3, 'l', 'a', 'b', 1, 1, 0x82};
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_STATION);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 5);
	nla_put(m, NL80211_ATTR_MAC, 6, STA_MAC);
	nla_put(m, NL80211_ATTR_IE, sizeof(ies), ies);
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_station s;
	assert_int_equal(wlan_parse_station(b, len, &s), 0);
	assert_false(s.has_signal);
	assert_false(s.has_counters);
	assert_int_equal(s.ies_len, sizeof(ies));
	assert_memory_equal(s.ies, ies, sizeof(ies));
	nlmsg_free(m);
}

static void station_with_short_mac_is_refused(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_DEL_STATION);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 5);
	nla_put(m, NL80211_ATTR_MAC, 4, STA_MAC);
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_station s;
	assert_int_equal(wlan_parse_station(b, len, &s), -EINVAL);
	nlmsg_free(m);
}

static void station_with_short_signal_is_refused(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_STATION);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 5);
	nla_put(m, NL80211_ATTR_MAC, 6, STA_MAC);
	struct nlattr *si = nla_nest_start(m, NL80211_ATTR_STA_INFO);
	/* a u64 counter of two bytes */
	nla_put(m, NL80211_STA_INFO_RX_BYTES64, 2, "ab");
	nla_nest_end(m, si);
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_station s;
	assert_int_equal(wlan_parse_station(b, len, &s), -EINVAL);
	nlmsg_free(m);
}

/* An RSN element with the given AKM suite types (00-0f-ac). */
static size_t rsn(uint8_t *out, const uint8_t *akms, size_t n)
{
	size_t o = 0;
	out[o++] = 48;
	out[o++] = (uint8_t)(2 + 4 + 2 + 4 + 2 + 4 * n);
	out[o++] = 1, out[o++] = 0;				      /* version */
	out[o++] = 0, out[o++] = 0x0f, out[o++] = 0xac, out[o++] = 4; /* CCMP group */
	out[o++] = 1, out[o++] = 0;
	out[o++] = 0, out[o++] = 0x0f, out[o++] = 0xac, out[o++] = 4;
	out[o++] = (uint8_t)n, out[o++] = 0;
	for (size_t i = 0; i < n; i++)
		out[o++] = 0, out[o++] = 0x0f, out[o++] = 0xac, out[o++] = akms[i];
	return o;
}

static void scan_result_with_ies(void **st)
{
	(void)st;
	uint8_t ies[128];
	size_t n = 0;
	ies[n++] = 0, ies[n++] = 9;
	memcpy(ies + n, "neighbour", 9), n += 9;
	ies[n++] = 3, ies[n++] = 1, ies[n++] = 6;
	n += rsn(ies + n, (const uint8_t[]){2}, 1);

	struct nl_msg *m = msg_new(NL80211_CMD_NEW_SCAN_RESULTS);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 7);
	struct nlattr *bss = nla_nest_start(m, NL80211_ATTR_BSS);
	nla_put(m, NL80211_BSS_BSSID, 6, AP_MAC);
	nla_put_u32(m, NL80211_BSS_FREQUENCY, 2437);
	nla_put_u32(m, NL80211_BSS_SIGNAL_MBM, (uint32_t)-4250);
	nla_put_u16(m, NL80211_BSS_CAPABILITY, 0x0411);
	nla_put_u16(m, NL80211_BSS_BEACON_INTERVAL, 100);
	nla_put_u32(m, NL80211_BSS_SEEN_MS_AGO, 120);
	nla_put_u32(m, NL80211_BSS_STATUS, NL80211_BSS_STATUS_ASSOCIATED);
	nla_put(m, NL80211_BSS_INFORMATION_ELEMENTS, (int)n, ies);
	nla_nest_end(m, bss);
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_bss r;
	struct wlan_ie_info ie;

	assert_int_equal(wlan_parse_bss(b, len, &r), 0);
	assert_int_equal(r.ifindex, 7);
	assert_memory_equal(r.bssid, AP_MAC, 6);
	assert_int_equal(r.freq_mhz, 2437);
	assert_int_equal(wlan_freq_channel(r.freq_mhz), 6);
	assert_true(r.has_signal);
	assert_int_equal(r.signal_mbm, -4250);
	assert_int_equal(r.capability, 0x0411);
	assert_int_equal(r.beacon_interval, 100);
	assert_int_equal(r.seen_ms_ago, 120);
	assert_true(r.associated);
	assert_int_equal(r.ies_len, n);
	wlan_ie_parse(r.ies, r.ies_len, &ie);
	assert_false(ie.bad);
	assert_true(ie.has_ssid);
	assert_false(ie.ssid_hidden);
	assert_string_equal(ie.ssid, "neighbour");
	assert_int_equal(ie.ds_channel, 6);
	assert_string_equal(wlan_security_name(ie.security, r.capability), "wpa2");
	nlmsg_free(m);
}

static void scan_message_without_bss_is_nothing(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_SCAN_RESULTS);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 7);
	size_t len;
	const void *b = raw(m, &len);
	struct wlan_bss r;
	uint32_t wiphy = 9, ifindex = 0;
	assert_int_equal(wlan_parse_bss(b, len, &r), -ENOENT);
	assert_int_equal(wlan_parse_ids(b, len, &wiphy, &ifindex), 0);
	assert_int_equal(wiphy, 0);
	assert_int_equal(ifindex, 7);
	nlmsg_free(m);
}

static void truncated_and_lying_messages_are_refused(void **st)
{
	(void)st;
	struct nl_msg *m = msg_new(NL80211_CMD_NEW_INTERFACE);
	nla_put_u32(m, NL80211_ATTR_IFINDEX, 5);
	nla_put_string(m, NL80211_ATTR_IFNAME, "wlan0");
	size_t len;
	const uint8_t *b = raw(m, &len);
	uint8_t copy[256];
	struct wlan_iface w;
	assert_true(len <= sizeof(copy));
	memcpy(copy, b, len);

	/* shorter than its header says */
	assert_int_equal(wlan_msg_cmd(copy, len - 1), -EINVAL);
	assert_int_equal(wlan_parse_iface(copy, len - 1, &w), -EINVAL);
	/* no room for the generic header */
	assert_int_equal(wlan_msg_cmd(copy, 10), -EINVAL);
	assert_int_equal(wlan_msg_cmd(NULL, 0), -EINVAL);
	/* an attribute claiming more than the message holds */
	struct nlattr *a = (struct nlattr *)(copy + NLMSG_HDRLEN + GENL_HDRLEN);
	a->nla_len = 200;
	assert_int_equal(wlan_parse_iface(copy, len, &w), -EINVAL);
	/* larger than the limit */
	assert_int_equal(wlan_msg_cmd(copy, WLAN_MSG_MAX + 1), -EINVAL);
	nlmsg_free(m);
}

static void ie_security_kinds(void **st)
{
	(void)st;
	uint8_t ies[128];
	struct wlan_ie_info ie;
	size_t n;

	n = rsn(ies, (const uint8_t[]){2, 8}, 2);
	wlan_ie_parse(ies, n, &ie);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "wpa2-wpa3");
	n = rsn(ies, (const uint8_t[]){8}, 1);
	wlan_ie_parse(ies, n, &ie);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "wpa3");
	n = rsn(ies, (const uint8_t[]){18}, 1);
	wlan_ie_parse(ies, n, &ie);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "owe");
	n = rsn(ies, (const uint8_t[]){1}, 1);
	wlan_ie_parse(ies, n, &ie);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "wpa2-enterprise");
	/* Microsoft's WPA element, PSK */
	static const uint8_t wpa[] = {221, 22, 0x00, 0x50, 0xf2, 1, 1, 0, 0x00, 0x50, 0xf2, 2,
				      1,   0,  0x00, 0x50, 0xf2, 2, 1, 0, 0x00, 0x50, 0xf2, 2};
	wlan_ie_parse(wpa, sizeof(wpa), &ie);
	assert_false(ie.bad);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "wpa");
	/* no element, the privacy bit: WEP; neither: open */
	wlan_ie_parse(NULL, 0, &ie);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "wep");
	assert_string_equal(wlan_security_name(ie.security, 0x01), "open");
}

static void ie_hidden_and_broken(void **st)
{
	(void)st;
	struct wlan_ie_info ie;
	static const uint8_t hidden[] = {0, 4, 0, 0, 0, 0};
	wlan_ie_parse(hidden, sizeof(hidden), &ie);
	assert_true(ie.has_ssid && ie.ssid_hidden);
	static const uint8_t empty[] = {0, 0};
	wlan_ie_parse(empty, sizeof(empty), &ie);
	assert_true(ie.has_ssid && ie.ssid_hidden);
	/* an element running past the end */
	static const uint8_t over[] = {0, 3, 'a', 'b', 1, 8, 1};
	wlan_ie_parse(over, sizeof(over), &ie);
	assert_true(ie.bad);
	assert_string_equal(ie.ssid, "ab\\x01");
	/* a trailing lone byte */
	static const uint8_t tail[] = {3, 1, 11, 7};
	wlan_ie_parse(tail, sizeof(tail), &ie);
	assert_true(ie.bad);
	assert_int_equal(ie.ds_channel, 11);
	/* an RSN element cut after its version: the standard's defaults */
	static const uint8_t rsn_short[] = {48, 2, 1, 0};
	wlan_ie_parse(rsn_short, sizeof(rsn_short), &ie);
	assert_false(ie.bad);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "wpa2");
	/* an RSN element whose counts lie */
	static const uint8_t rsn_lie[] = {48, 10, 1, 0, 0, 0x0f, 0xac, 4, 0xff, 0xff, 0, 0};
	wlan_ie_parse(rsn_lie, sizeof(rsn_lie), &ie);
	assert_false(ie.bad);
	assert_string_equal(wlan_security_name(ie.security, 0x11), "wpa2");
}

static void channels_of_frequencies(void **st)
{
	(void)st;
	assert_int_equal(wlan_freq_channel(2412), 1);
	assert_int_equal(wlan_freq_channel(2472), 13);
	assert_int_equal(wlan_freq_channel(2484), 14);
	assert_int_equal(wlan_freq_channel(5180), 36);
	assert_int_equal(wlan_freq_channel(5825), 165);
	assert_int_equal(wlan_freq_channel(5955), 1);
	assert_int_equal(wlan_freq_channel(6415), 93);
	assert_int_equal(wlan_freq_channel(58320), 1);
	assert_int_equal(wlan_freq_channel(0), 0);
	assert_int_equal(wlan_freq_channel(1000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(iface_in_ap_mode),
		cmocka_unit_test(iface_without_ifindex_is_refused),
		cmocka_unit_test(iface_ssid_with_odd_bytes_is_printable),
		cmocka_unit_test(station_dump_with_counters),
		cmocka_unit_test(station_event_without_info_but_with_ies),
		cmocka_unit_test(station_with_short_mac_is_refused),
		cmocka_unit_test(station_with_short_signal_is_refused),
		cmocka_unit_test(scan_result_with_ies),
		cmocka_unit_test(scan_message_without_bss_is_nothing),
		cmocka_unit_test(truncated_and_lying_messages_are_refused),
		cmocka_unit_test(ie_security_kinds),
		cmocka_unit_test(ie_hidden_and_broken),
		cmocka_unit_test(channels_of_frequencies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
