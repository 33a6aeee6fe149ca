/* SPDX-License-Identifier: MIT */
/*
 * nl80211 messages from the kernel, parsed into plain structs. Pure: no
 * sockets, no loop, no globals, so unit tests and the fuzz target link it
 * alone. Every function takes a whole generic-netlink message (nlmsghdr
 * first) and checks its length and every attribute it reads.
 */
#ifndef LABGW_WLAN_NLPARSE_H
#define LABGW_WLAN_NLPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A message longer than this is refused (the kernel's own scan results
 * with big beacons stay well below). */
#define WLAN_MSG_MAX	(64 * 1024)
#define WLAN_IFNAME_MAX 16
#define WLAN_SSID_MAX	32
/* information elements kept per BSS or station: a beacon's fit */
#define WLAN_IES_MAX 2048

enum wlan_mode {
	WLAN_MODE_UNKNOWN = 0,
	WLAN_MODE_STATION,
	WLAN_MODE_AP,
	WLAN_MODE_MONITOR,
	WLAN_MODE_MESH,
	WLAN_MODE_ADHOC,
	WLAN_MODE_P2P,
	WLAN_MODE_OTHER,
};

struct wlan_iface {
	uint32_t ifindex;
	uint32_t wiphy;
	char name[WLAN_IFNAME_MAX + 1];
	enum wlan_mode mode;
	uint8_t mac[6];
	bool has_mac;
	uint32_t freq_mhz; /* 0: no channel */
	uint32_t width_mhz;
	uint32_t center_freq1_mhz;
	int32_t txpower_mbm;
	bool has_txpower;
	char ssid[WLAN_SSID_MAX + 1]; /* printable form; "" when none */
	bool has_ssid;
};

struct wlan_station {
	uint32_t ifindex;
	uint8_t mac[6];
	bool has_signal, has_signal_avg;
	int8_t signal_dbm, signal_avg_dbm;
	uint32_t tx_bitrate_kbps, rx_bitrate_kbps; /* 0: unknown */
	uint64_t rx_bytes, tx_bytes;
	uint32_t rx_packets, tx_packets;
	uint32_t connected_s, inactive_ms;
	bool has_counters;
	const uint8_t *ies; /* association request IEs, inside the message */
	size_t ies_len;
};

struct wlan_bss {
	uint32_t ifindex;
	uint8_t bssid[6];
	uint32_t freq_mhz;
	bool has_signal;
	int32_t signal_mbm;
	uint16_t capability;
	uint16_t beacon_interval;
	uint32_t seen_ms_ago;
	bool associated;
	const uint8_t *ies; /* inside the message */
	size_t ies_len;
};

/* What the information elements of a BSS say. */
#define WLAN_SEC_WEP   0x01u
#define WLAN_SEC_WPA   0x02u
#define WLAN_SEC_WPA2  0x04u
#define WLAN_SEC_WPA3  0x08u /* SAE */
#define WLAN_SEC_OWE   0x10u
#define WLAN_SEC_8021X 0x20u /* enterprise AKM */

struct wlan_ie_info {
	bool has_ssid;
	bool ssid_hidden;		  /* zero length or all NUL */
	char ssid[4 * WLAN_SSID_MAX + 1]; /* printable; other bytes as \xNN */
	uint8_t ds_channel;		  /* 0: absent */
	unsigned security;		  /* WLAN_SEC_* */
	bool bad;			  /* an element ran past the end */
};

/* The nl80211 command of a message, or -EINVAL when it is not a
 * well-formed generic netlink message of at most WLAN_MSG_MAX bytes. */
int wlan_msg_cmd(const void *msg, size_t len);

/* 0, or -EINVAL when the message is malformed or lacks the ifindex. */
int wlan_parse_iface(const void *msg, size_t len, struct wlan_iface *out);
int wlan_parse_station(const void *msg, size_t len, struct wlan_station *out);
/* -ENOENT: a message without a BSS (nothing to report) */
int wlan_parse_bss(const void *msg, size_t len, struct wlan_bss *out);
/* The wiphy and ifindex a message names (0 when absent): events carry them. */
int wlan_parse_ids(const void *msg, size_t len, uint32_t *wiphy, uint32_t *ifindex);

void wlan_ie_parse(const uint8_t *ies, size_t len, struct wlan_ie_info *out);

const char *wlan_mode_name(enum wlan_mode m);
/* 2.4 GHz, 5 GHz, 6 GHz and 60 GHz channel numbers; 0 when unknown */
int wlan_freq_channel(uint32_t freq_mhz);
/* "aa:bb:cc:dd:ee:ff" into out[18] */
void wlan_mac_str(const uint8_t mac[6], char out[18]);
/* "open", "wep", "wpa", "wpa2", "wpa3", "owe", "wpa2-enterprise", ...:
 * the strongest the elements offer; a comma-free word for the frame */
const char *wlan_security_name(unsigned security, uint16_t capability);

#endif
