// SPDX-License-Identifier: MIT
/*
 * nl80211 messages from the kernel (plugins/wlan/nlparse.c): the input is a
 * whole generic netlink message, header and all, read as an interface, a
 * station and a scan result; the information elements found are parsed
 * too, and the input itself as information elements.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../plugins/wlan/nlparse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wlan_iface w;
	struct wlan_station st;
	struct wlan_bss bss;
	struct wlan_ie_info ie;
	uint32_t wiphy, ifindex;
	void *msg;

	if (size > WLAN_MSG_MAX + 16)
		return 0;
	/* netlink messages arrive 4-byte aligned */
	msg = malloc(size ? size : 1);
	if (!msg)
		return 0;
	memcpy(msg, data, size);
	if (wlan_msg_cmd(msg, size) >= 0) {
		wlan_parse_ids(msg, size, &wiphy, &ifindex);
		wlan_parse_iface(msg, size, &w);
		if (wlan_parse_station(msg, size, &st) == 0 && st.ies)
			wlan_ie_parse(st.ies, st.ies_len, &ie);
		if (wlan_parse_bss(msg, size, &bss) == 0) {
			wlan_ie_parse(bss.ies, bss.ies_len, &ie);
			(void)wlan_security_name(ie.security, bss.capability);
			(void)wlan_freq_channel(bss.freq_mhz);
		}
	}
	wlan_ie_parse(data, size, &ie);
	free(msg);
	return 0;
}
