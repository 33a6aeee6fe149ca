/* SPDX-License-Identifier: MIT */
/*
 * The wlan radio module: a client of the kernel's nl80211 through libnl-genl.
 *
 * Two non-blocking netlink sockets, both watched by the host's loop:
 *  - `ev` joins the config, mlme and scan multicast groups: interfaces
 *    coming and going, stations joining and leaving our access points,
 *    scans finishing;
 *  - `cmd` carries our requests, one at a time from a bounded queue
 *    (interface and station dumps, scan trigger and result dump, and the
 *    staff-only transmit power setting).
 *
 * Sandboxes get scans (op "scan", under the lease {radio}:scan), nothing
 * else: no mode or channel changes, no management frames. Staff-only
 * operations arrive with cmd->sbx == NULL through the host's audited
 * radio operation API.
 */
#include <errno.h>
#include <jansson.h>
#include <linux/nl80211.h>
#include <net/if.h>
#include <netlink/genl/ctrl.h>
#include <netlink/genl/genl.h>
#include <netlink/msg.h>
#include <netlink/netlink.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <labgw/plugin.h>

#include "frame_builder.h"
#include "nlparse.h"

#define IFACES_MAX     32
#define STATIONS_MAX   1024
#define QUEUE_MAX      64
#define LAB_BSSIDS_MAX 16
#define TICK_MS	       1000
/* a request the kernel has not answered in this long is given up */
#define REQ_TIMEOUT_MS	  10000
#define SCAN_TIMEOUT_MS	  30000
#define REOPEN_MS	  5000
#define IFACES_REFRESH_MS 10000
#define BSS_PER_SCAN_MAX  512

enum req_kind {
	REQ_IFACES = 1,
	REQ_STATIONS,
	REQ_TRIGGER,
	REQ_SCAN_DUMP,
	REQ_TXPOWER,
};

struct req {
	enum req_kind kind;
	uint32_t ifindex;
	bool periodic;	 /* station dump of the station_interval: frames */
	int32_t mbm;	 /* REQ_TXPOWER; INT32_MIN: automatic */
	char cmd_id[64]; /* the command this serves, "" for our own */
};

struct station {
	bool used;
	bool seen; /* in the dump under way */
	uint32_t ifindex;
	uint8_t mac[6];
};

struct wlan {
	struct labgw_radio *r;
	const struct labgw_host *h;

	/* configuration */
	char ifnames[IFACES_MAX][WLAN_IFNAME_MAX + 1];
	unsigned n_ifnames; /* 0: every nl80211 interface */
	char scan_ifname[WLAN_IFNAME_MAX + 1];
	uint64_t station_interval_ms, scan_min_interval_ms;
	uint8_t lab_bssids[LAB_BSSIDS_MAX][6];
	unsigned n_lab_bssids;

	/* netlink */
	struct nl_sock *cmd, *ev;
	struct nl_cb *cmd_cb, *ev_cb;
	int family;
	uint64_t cmd_watch, ev_watch, tick, reopen;
	bool running;

	/* the request on the wire and those waiting */
	bool busy;
	struct req cur;
	uint32_t cur_seq;
	uint64_t cur_sent_ms;
	int cur_err;
	struct req queue[QUEUE_MAX];
	unsigned q_head, q_len;

	/* what we know */
	struct wlan_iface ifaces[IFACES_MAX], next_ifaces[IFACES_MAX];
	unsigned n_ifaces, n_next;
	bool synced; /* the first inventory and station dumps are done */
	struct station stations[STATIONS_MAX];
	unsigned n_stations;
	uint64_t next_station_ms, next_ifaces_ms;

	/* the one scan of this radio */
	bool scanning;
	char scan_cmd[64];
	uint32_t scan_ifindex;
	uint64_t scan_started_ms, last_scan_ms;
	unsigned scan_bss;

	char last_error[160];
	bool state_dirty;
	struct {
		uint64_t events, stations_joined, stations_left, station_frames, scans,
			scan_failures, bss_frames, bad_messages, overruns, queue_full, timeouts,
			reopens;
	} cnt;
};

static int refuse(char *errbuf, size_t errlen, int err, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static int refuse(char *errbuf, size_t errlen, int err, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	return err;
}

static uint64_t now_ms(struct wlan *s)
{
	return s->h->now_ms(s->r);
}

static void set_error(struct wlan *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void set_error(struct wlan *s, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(s->last_error, sizeof(s->last_error), fmt, ap);
	va_end(ap);
	s->state_dirty = true;
}

/* ---- what we watch -------------------------------------------------------- */

static bool name_watched(const struct wlan *s, const char *name)
{
	if (!s->n_ifnames)
		return true;
	for (unsigned i = 0; i < s->n_ifnames; i++)
		if (!strcmp(s->ifnames[i], name))
			return true;
	return false;
}

static struct wlan_iface *iface_by_index(struct wlan *s, uint32_t ifindex)
{
	for (unsigned i = 0; i < s->n_ifaces; i++)
		if (s->ifaces[i].ifindex == ifindex)
			return &s->ifaces[i];
	return NULL;
}

static struct wlan_iface *iface_by_name(struct wlan *s, const char *name)
{
	for (unsigned i = 0; i < s->n_ifaces; i++)
		if (!strcmp(s->ifaces[i].name, name))
			return &s->ifaces[i];
	return NULL;
}

/* The lab's own networks: our access points and the configured BSSIDs. */
static bool bssid_is_lab(struct wlan *s, const uint8_t bssid[6])
{
	for (unsigned i = 0; i < s->n_ifaces; i++)
		if (s->ifaces[i].mode == WLAN_MODE_AP && s->ifaces[i].has_mac &&
		    !memcmp(s->ifaces[i].mac, bssid, 6))
			return true;
	for (unsigned i = 0; i < s->n_lab_bssids; i++)
		if (!memcmp(s->lab_bssids[i], bssid, 6))
			return true;
	return false;
}

/* ---- the request queue ------------------------------------------------------ */

static void cmd_next(struct wlan *s);

static bool queue_has(const struct wlan *s, enum req_kind kind, uint32_t ifindex)
{
	if (s->busy && s->cur.kind == kind && s->cur.ifindex == ifindex)
		return true;
	for (unsigned i = 0; i < s->q_len; i++) {
		const struct req *q = &s->queue[(s->q_head + i) % QUEUE_MAX];
		if (q->kind == kind && q->ifindex == ifindex)
			return true;
	}
	return false;
}

static int enqueue(struct wlan *s, const struct req *q)
{
	if (s->q_len >= QUEUE_MAX) {
		s->cnt.queue_full++;
		return -EBUSY;
	}
	s->queue[(s->q_head + s->q_len) % QUEUE_MAX] = *q;
	s->q_len++;
	if (!s->busy)
		cmd_next(s);
	return 0;
}

/* Ask for the inventory again; repeated asks before it runs are one. */
static void want_ifaces(struct wlan *s)
{
	if (s->cmd && !queue_has(s, REQ_IFACES, 0))
		enqueue(s, &(struct req){.kind = REQ_IFACES});
}

static void want_stations(struct wlan *s, uint32_t ifindex, bool periodic)
{
	if (s->cmd && !queue_has(s, REQ_STATIONS, ifindex))
		enqueue(s, &(struct req){
				   .kind = REQ_STATIONS, .ifindex = ifindex, .periodic = periodic});
}

/* ---- frames --------------------------------------------------------------- */

static void station_frame(struct wlan *s, const struct wlan_station *st, const char *event)
{
	struct labgw_frame *f = s->h->frame_new(s->r, LABGW_TECH_WLAN, "rx.wlan.station");
	struct fb b = {s->h, f, 0};
	struct wlan_iface *ifc = iface_by_index(s, st->ifindex);
	char mac[18];

	if (!f)
		return;
	wlan_mac_str(st->mac, mac);
	fb_dev(&b, mac);
	fb_str(&b, LABGW_DATA, "event", event);
	if (ifc) {
		fb_str(&b, LABGW_DATA, "interface", ifc->name);
		if (ifc->has_ssid)
			fb_str(&b, LABGW_DATA, "ssid", ifc->ssid);
		if (ifc->has_mac) {
			char ap[18];
			wlan_mac_str(ifc->mac, ap);
			fb_str(&b, LABGW_DATA, "bssid", ap);
		}
		if (ifc->freq_mhz)
			fb_int(&b, LABGW_SIG, "freq_hz", (int64_t)ifc->freq_mhz * 1000000);
	}
	if (st->has_signal)
		fb_int(&b, LABGW_SIG, "rssi", st->signal_dbm);
	if (st->has_signal_avg)
		fb_int(&b, LABGW_SIG, "rssi_avg", st->signal_avg_dbm);
	if (st->tx_bitrate_kbps)
		fb_int(&b, LABGW_DATA, "tx_bitrate_kbps", st->tx_bitrate_kbps);
	if (st->rx_bitrate_kbps)
		fb_int(&b, LABGW_DATA, "rx_bitrate_kbps", st->rx_bitrate_kbps);
	if (st->has_counters) {
		fb_int(&b, LABGW_DATA, "rx_bytes", (int64_t)st->rx_bytes);
		fb_int(&b, LABGW_DATA, "tx_bytes", (int64_t)st->tx_bytes);
		fb_int(&b, LABGW_DATA, "rx_packets", st->rx_packets);
		fb_int(&b, LABGW_DATA, "tx_packets", st->tx_packets);
		fb_int(&b, LABGW_DATA, "connected_s", st->connected_s);
		fb_int(&b, LABGW_DATA, "inactive_ms", st->inactive_ms);
	}
	if (b.err >= 0 && st->ies_len)
		b.err = s->h->frame_set_payload(f, st->ies, st->ies_len);
	if (b.err < 0) {
		s->h->frame_discard(f);
		return;
	}
	s->cnt.station_frames++;
	s->h->publish(f);
}

static void bss_frame(struct wlan *s, const struct wlan_bss *bss)
{
	struct labgw_frame *f = s->h->frame_new(s->r, LABGW_TECH_WLAN, "rx.wlan.scan");
	struct fb b = {s->h, f, 0};
	struct wlan_ie_info ie;
	struct wlan_iface *ifc = iface_by_index(s, bss->ifindex);
	bool lab = bssid_is_lab(s, bss->bssid);
	char mac[18];
	int ch;

	if (!f)
		return;
	wlan_ie_parse(bss->ies, bss->ies_len, &ie);
	wlan_mac_str(bss->bssid, mac);
	fb_dev(&b, mac);
	if (bss->has_signal)
		fb_double(&b, LABGW_SIG, "rssi", bss->signal_mbm / 100.0);
	if (bss->freq_mhz)
		fb_int(&b, LABGW_SIG, "freq_hz", (int64_t)bss->freq_mhz * 1000000);
	ch = wlan_freq_channel(bss->freq_mhz);
	if (ch)
		fb_int(&b, LABGW_DATA, "channel", ch);
	if (ie.has_ssid && !ie.ssid_hidden)
		fb_str(&b, LABGW_DATA, "ssid", ie.ssid);
	fb_bool(&b, LABGW_DATA, "hidden", !ie.has_ssid || ie.ssid_hidden);
	fb_str(&b, LABGW_DATA, "security", wlan_security_name(ie.security, bss->capability));
	fb_int(&b, LABGW_DATA, "capability", bss->capability);
	if (bss->beacon_interval)
		fb_int(&b, LABGW_DATA, "beacon_interval_tu", bss->beacon_interval);
	fb_int(&b, LABGW_DATA, "age_ms", bss->seen_ms_ago);
	fb_bool(&b, LABGW_DATA, "lab", lab);
	if (ifc)
		fb_str(&b, LABGW_DATA, "interface", ifc->name);
	if (s->scan_cmd[0])
		fb_str(&b, LABGW_DATA, "scan", s->scan_cmd);
	if (b.err >= 0 && bss->ies_len)
		b.err = s->h->frame_set_payload(f, bss->ies, bss->ies_len);
	/* the lab's own access point is no one's device: sandboxes see it as is */
	if (b.err >= 0 && lab)
		b.err = s->h->frame_set_public(f);
	if (b.err < 0) {
		s->h->frame_discard(f);
		return;
	}
	s->cnt.bss_frames++;
	s->h->publish(f);
}

static int publish_state(struct wlan *s)
{
	struct labgw_frame *f = s->h->frame_new(s->r, LABGW_TECH_NONE, "state.radio");
	struct fb b = {s->h, f, 0};
	char key[96], mac[18];

	if (!f)
		return -ENOMEM;
	fb_str(&b, LABGW_DATA, "nl80211", s->cmd ? "connected" : "unavailable");
	fb_int(&b, LABGW_DATA, "stations", s->n_stations);
	/* the host replaces top-level keys: "inventory" goes as a whole */
	fb_bool(&b, LABGW_DATA, "inventory.known", s->synced);
	fb_int(&b, LABGW_DATA, "inventory.count", s->n_ifaces);
	for (unsigned i = 0; i < s->n_ifaces; i++) {
		const struct wlan_iface *w = &s->ifaces[i];
#define K(field) (snprintf(key, sizeof(key), "inventory.interfaces.%s." field, w->name), key)
		fb_int(&b, LABGW_DATA, K("ifindex"), w->ifindex);
		fb_int(&b, LABGW_DATA, K("wiphy"), w->wiphy);
		fb_str(&b, LABGW_DATA, K("mode"), wlan_mode_name(w->mode));
		if (w->has_mac) {
			wlan_mac_str(w->mac, mac);
			fb_str(&b, LABGW_DATA, K("mac"), mac);
		}
		if (w->freq_mhz) {
			fb_int(&b, LABGW_DATA, K("freq_mhz"), w->freq_mhz);
			fb_int(&b, LABGW_DATA, K("channel"), wlan_freq_channel(w->freq_mhz));
		}
		if (w->width_mhz)
			fb_int(&b, LABGW_DATA, K("width_mhz"), w->width_mhz);
		if (w->has_txpower)
			fb_double(&b, LABGW_DATA, K("txpower_dbm"), w->txpower_mbm / 100.0);
		if (w->has_ssid)
			fb_str(&b, LABGW_DATA, K("ssid"), w->ssid);
#undef K
	}
	fb_bool(&b, LABGW_DATA, "scan.running", s->scanning);
	if (s->scanning)
		fb_str(&b, LABGW_DATA, "scan.tx", s->scan_cmd);
	if (s->last_error[0])
		fb_str(&b, LABGW_DATA, "last_error", s->last_error);
#define CNT(name) fb_int(&b, LABGW_DATA, "counters." #name, (int64_t)s->cnt.name)
	CNT(events);
	CNT(stations_joined);
	CNT(stations_left);
	CNT(station_frames);
	CNT(scans);
	CNT(scan_failures);
	CNT(bss_frames);
	CNT(bad_messages);
	CNT(overruns);
	CNT(queue_full);
	CNT(timeouts);
	CNT(reopens);
#undef CNT
	if (b.err < 0) {
		s->h->frame_discard(f);
		return b.err;
	}
	s->state_dirty = false;
	return s->h->state_update(f);
}

/* ---- stations ---------------------------------------------------------------- */

static struct station *station_find(struct wlan *s, uint32_t ifindex, const uint8_t mac[6])
{
	for (unsigned i = 0; i < STATIONS_MAX; i++)
		if (s->stations[i].used && s->stations[i].ifindex == ifindex &&
		    !memcmp(s->stations[i].mac, mac, 6))
			return &s->stations[i];
	return NULL;
}

/* Record a station; false when it was known already. */
static bool station_add(struct wlan *s, uint32_t ifindex, const uint8_t mac[6])
{
	struct station *st = station_find(s, ifindex, mac);

	if (st) {
		st->seen = true;
		return false;
	}
	for (unsigned i = 0; i < STATIONS_MAX; i++) {
		if (s->stations[i].used)
			continue;
		s->stations[i] = (struct station){.used = true, .seen = true, .ifindex = ifindex};
		memcpy(s->stations[i].mac, mac, 6);
		s->n_stations++;
		s->state_dirty = true;
		return true;
	}
	/* the table is full: report it anyway, it just is not tracked */
	return true;
}

static void station_drop(struct wlan *s, struct station *st)
{
	st->used = false;
	s->n_stations--;
	s->state_dirty = true;
}

static bool ap_iface(struct wlan *s, uint32_t ifindex)
{
	struct wlan_iface *w = iface_by_index(s, ifindex);
	return w && w->mode == WLAN_MODE_AP;
}

static void on_station_event(struct wlan *s, const void *msg, size_t len, bool added)
{
	struct wlan_station st;

	if (wlan_parse_station(msg, len, &st) < 0) {
		s->cnt.bad_messages++;
		return;
	}
	if (!iface_by_index(s, st.ifindex)) {
		/* an interface we do not know yet, or not ours */
		want_ifaces(s);
		return;
	}
	if (!ap_iface(s, st.ifindex)) {
		/* the mode may just have changed: look again, then dump */
		want_ifaces(s);
		return;
	}
	if (added) {
		if (station_add(s, st.ifindex, st.mac)) {
			s->cnt.stations_joined++;
			station_frame(s, &st, "joined");
		}
	} else {
		struct station *known = station_find(s, st.ifindex, st.mac);
		if (known)
			station_drop(s, known);
		s->cnt.stations_left++;
		station_frame(s, &st, "left");
	}
}

static void on_station_dumped(struct wlan *s, const void *msg, size_t len)
{
	struct wlan_station st;

	if (wlan_parse_station(msg, len, &st) < 0) {
		s->cnt.bad_messages++;
		return;
	}
	if (station_add(s, st.ifindex, st.mac)) {
		/* known before we started: present; otherwise an event was lost */
		if (s->synced)
			s->cnt.stations_joined++;
		station_frame(s, &st, s->synced ? "joined" : "present");
	} else if (s->cur.periodic) {
		station_frame(s, &st, "stats");
	}
}

/* After a station dump: who was not in it has left without an event. */
static void stations_dump_done(struct wlan *s, uint32_t ifindex)
{
	for (unsigned i = 0; i < STATIONS_MAX; i++) {
		struct station *st = &s->stations[i];
		if (!st->used || st->ifindex != ifindex)
			continue;
		if (!st->seen) {
			struct wlan_station gone = {.ifindex = ifindex};
			memcpy(gone.mac, st->mac, 6);
			station_drop(s, st);
			s->cnt.stations_left++;
			station_frame(s, &gone, "left");
		}
		st->seen = false;
	}
}

/* Forget stations of interfaces that are gone or no longer access points. */
static void stations_prune(struct wlan *s)
{
	for (unsigned i = 0; i < STATIONS_MAX; i++) {
		struct station *st = &s->stations[i];
		if (st->used && !ap_iface(s, st->ifindex)) {
			struct wlan_station gone = {.ifindex = st->ifindex};
			memcpy(gone.mac, st->mac, 6);
			station_drop(s, st);
			s->cnt.stations_left++;
			station_frame(s, &gone, "left");
		}
	}
}

/* ---- interfaces ------------------------------------------------------------ */

static void on_iface_dumped(struct wlan *s, const void *msg, size_t len)
{
	struct wlan_iface w;

	if (wlan_parse_iface(msg, len, &w) < 0) {
		s->cnt.bad_messages++;
		return;
	}
	if (!w.name[0] || !name_watched(s, w.name) || s->n_next >= IFACES_MAX)
		return;
	s->next_ifaces[s->n_next++] = w;
}

static void ifaces_dump_done(struct wlan *s)
{
	bool changed = s->n_next != s->n_ifaces ||
		       memcmp(s->next_ifaces, s->ifaces, s->n_next * sizeof(s->ifaces[0]));
	bool first = !s->synced;

	memcpy(s->ifaces, s->next_ifaces, s->n_next * sizeof(s->ifaces[0]));
	s->n_ifaces = s->n_next;
	if (changed) {
		s->state_dirty = true;
		stations_prune(s);
	}
	/* stations of access points we have not dumped yet */
	for (unsigned i = 0; i < s->n_ifaces; i++)
		if (s->ifaces[i].mode == WLAN_MODE_AP && (changed || first))
			want_stations(s, s->ifaces[i].ifindex, false);
	if (first) {
		s->synced = true;
		s->h->log(s->r, LABGW_LOG_NOTICE, "nl80211: %u interface(s) watched", s->n_ifaces);
	}
}

/* ---- scans ----------------------------------------------------------------- */

static void scan_end(struct wlan *s, enum labgw_tx_status st, const char *reason)
{
	char result[64];

	if (!s->scanning)
		return;
	if (st == LABGW_TX_ACKED) {
		snprintf(result, sizeof(result), "{\"bss\":%u}", s->scan_bss);
		s->h->tx_result(s->r, s->scan_cmd, st, NULL, result);
	} else {
		s->cnt.scan_failures++;
		s->h->tx_status(s->r, s->scan_cmd, st, reason);
	}
	s->scanning = false;
	s->scan_cmd[0] = 0;
	s->state_dirty = true;
}

static void on_scan_event(struct wlan *s, int cmd, const void *msg, size_t len)
{
	uint32_t wiphy, ifindex;

	if (!s->scanning || wlan_parse_ids(msg, len, &wiphy, &ifindex) < 0 ||
	    ifindex != s->scan_ifindex)
		return;
	if (cmd == NL80211_CMD_SCAN_ABORTED) {
		scan_end(s, LABGW_TX_FAILED, "the kernel aborted the scan");
		return;
	}
	if (cmd == NL80211_CMD_NEW_SCAN_RESULTS && !queue_has(s, REQ_SCAN_DUMP, ifindex) &&
	    enqueue(s, &(struct req){.kind = REQ_SCAN_DUMP, .ifindex = ifindex}) < 0)
		scan_end(s, LABGW_TX_FAILED, "too many netlink requests waiting");
}

static void on_bss_dumped(struct wlan *s, const void *msg, size_t len)
{
	struct wlan_bss bss;
	int rc = wlan_parse_bss(msg, len, &bss);

	if (rc == -ENOENT)
		return;
	if (rc < 0) {
		s->cnt.bad_messages++;
		return;
	}
	/* only what this scan saw, not what the kernel remembers of older ones */
	if (bss.seen_ms_ago > now_ms(s) - s->scan_started_ms + 1000)
		return;
	if (s->scan_bss >= BSS_PER_SCAN_MAX)
		return;
	s->scan_bss++;
	bss_frame(s, &bss);
}

/* ---- netlink ------------------------------------------------------------- */

static struct nl_msg *msg_for(struct wlan *s, uint8_t cmd, int flags)
{
	struct nl_msg *m = nlmsg_alloc();

	if (m && !genlmsg_put(m, NL_AUTO_PORT, NL_AUTO_SEQ, s->family, 0, flags, cmd, 0)) {
		nlmsg_free(m);
		return NULL;
	}
	return m;
}

static struct nl_msg *build(struct wlan *s, const struct req *q)
{
	struct nl_msg *m = NULL;

	switch (q->kind) {
	case REQ_IFACES:
		m = msg_for(s, NL80211_CMD_GET_INTERFACE, NLM_F_DUMP);
		break;
	case REQ_STATIONS:
		m = msg_for(s, NL80211_CMD_GET_STATION, NLM_F_DUMP);
		if (m && nla_put_u32(m, NL80211_ATTR_IFINDEX, q->ifindex) < 0)
			goto fail;
		break;
	case REQ_TRIGGER:
		m = msg_for(s, NL80211_CMD_TRIGGER_SCAN, NLM_F_ACK);
		if (m && nla_put_u32(m, NL80211_ATTR_IFINDEX, q->ifindex) < 0)
			goto fail;
		break;
	case REQ_SCAN_DUMP:
		m = msg_for(s, NL80211_CMD_GET_SCAN, NLM_F_DUMP);
		if (m && nla_put_u32(m, NL80211_ATTR_IFINDEX, q->ifindex) < 0)
			goto fail;
		break;
	case REQ_TXPOWER:
		m = msg_for(s, NL80211_CMD_SET_WIPHY, NLM_F_ACK);
		if (!m || nla_put_u32(m, NL80211_ATTR_IFINDEX, q->ifindex) < 0)
			goto fail;
		if (q->mbm == INT32_MIN) {
			if (nla_put_u32(m, NL80211_ATTR_WIPHY_TX_POWER_SETTING,
					NL80211_TX_POWER_AUTOMATIC) < 0)
				goto fail;
		} else if (nla_put_u32(m, NL80211_ATTR_WIPHY_TX_POWER_SETTING,
				       NL80211_TX_POWER_FIXED) < 0 ||
			   nla_put_u32(m, NL80211_ATTR_WIPHY_TX_POWER_LEVEL, (uint32_t)q->mbm) <
				   0) {
			goto fail;
		}
		break;
	}
	return m;
fail:
	nlmsg_free(m);
	return NULL;
}

/* The request on the wire finished: err 0 or a negative errno. */
static void cur_done(struct wlan *s, int err)
{
	struct req q = s->cur;
	char why[160];

	s->busy = false;
	switch (q.kind) {
	case REQ_IFACES:
		if (!err)
			ifaces_dump_done(s);
		break;
	case REQ_STATIONS:
		if (!err)
			stations_dump_done(s, q.ifindex);
		break;
	case REQ_TRIGGER:
		if (err) {
			snprintf(why, sizeof(why), "the kernel refused the scan: %s%s",
				 strerror(-err),
				 err == -EBUSY ? " (the interface is busy, e.g. scanning or "
						 "connecting)"
					       : "");
			scan_end(s, LABGW_TX_FAILED, why);
		} else if (s->scanning) {
			s->h->tx_status(s->r, s->scan_cmd, LABGW_TX_SENT, NULL);
		}
		break;
	case REQ_SCAN_DUMP:
		if (err) {
			snprintf(why, sizeof(why), "reading the scan results failed: %s",
				 strerror(-err));
			scan_end(s, LABGW_TX_FAILED, why);
		} else {
			scan_end(s, LABGW_TX_ACKED, NULL);
		}
		break;
	case REQ_TXPOWER:
		if (err) {
			snprintf(why, sizeof(why), "the kernel refused: %s", strerror(-err));
			s->h->tx_status(s->r, q.cmd_id, LABGW_TX_FAILED, why);
		} else {
			s->h->tx_status(s->r, q.cmd_id, LABGW_TX_ACKED, NULL);
			want_ifaces(s);
		}
		break;
	}
	if (err && q.kind != REQ_TRIGGER && q.kind != REQ_TXPOWER)
		set_error(s, "nl80211 request %d failed: %s", q.kind, strerror(-err));
	if (!s->busy)
		cmd_next(s);
}

static void cmd_next(struct wlan *s)
{
	while (!s->busy && s->q_len && s->cmd) {
		struct req q = s->queue[s->q_head];
		s->q_head = (s->q_head + 1) % QUEUE_MAX;
		s->q_len--;
		if (q.kind == REQ_IFACES)
			s->n_next = 0;
		struct nl_msg *m = build(s, &q);
		int rc = m ? nl_send_auto(s->cmd, m) : -NLE_NOMEM;
		if (m)
			s->cur_seq = nlmsg_hdr(m)->nlmsg_seq;
		nlmsg_free(m);
		s->cur = q;
		s->busy = true;
		if (rc < 0) {
			s->h->log(s->r, LABGW_LOG_WARNING, "nl80211: cannot send a request: %s",
				  nl_geterror(rc));
			cur_done(s, -EIO);
			continue;
		}
		s->cur_sent_ms = now_ms(s);
		s->cur_err = 0;
	}
}

static int cmd_valid(struct nl_msg *m, void *ud)
{
	struct wlan *s = ud;
	struct nlmsghdr *nlh = nlmsg_hdr(m);
	size_t len = nlh->nlmsg_len;

	if (!s->busy)
		return NL_SKIP;
	switch (s->cur.kind) {
	case REQ_IFACES:
		on_iface_dumped(s, nlh, len);
		break;
	case REQ_STATIONS:
		on_station_dumped(s, nlh, len);
		break;
	case REQ_SCAN_DUMP:
		on_bss_dumped(s, nlh, len);
		break;
	case REQ_TRIGGER:
	case REQ_TXPOWER:
		break;
	}
	return NL_OK;
}

static int cmd_seq_check(struct nl_msg *m, void *ud)
{
	struct wlan *s = ud;
	/* answers to a request we gave up on are dropped */
	return s->busy && nlmsg_hdr(m)->nlmsg_seq == s->cur_seq ? NL_OK : NL_SKIP;
}

static int cmd_finish(struct nl_msg *m, void *ud)
{
	struct wlan *s = ud;

	if (s->busy)
		cur_done(s, 0);
	return NL_STOP;
}

static int cmd_error(struct sockaddr_nl *nla, struct nlmsgerr *e, void *ud)
{
	struct wlan *s = ud;

	if (s->busy && e->msg.nlmsg_seq == s->cur_seq)
		cur_done(s, e->error ? e->error : -EIO);
	return NL_STOP;
}

static void sockets_close(struct wlan *s);
static void schedule_reopen(struct wlan *s);

static int read_all(struct wlan *s, struct nl_sock *sk, struct nl_cb *cb, const char *which)
{
	int rc;

	/* each call reads one datagram (and the rest of a dump); 0: no more */
	for (int i = 0; i < 256; i++) {
		rc = nl_recvmsgs_report(sk, cb);
		if (rc == 0 || rc == -NLE_AGAIN)
			return 0;
		if (rc == -NLE_NOMEM && sk == s->ev) {
			/* the kernel dropped events: look at everything again */
			s->cnt.overruns++;
			s->h->log(s->r, LABGW_LOG_WARNING,
				  "nl80211: events were lost; reading the state again");
			want_ifaces(s);
			for (unsigned k = 0; k < s->n_ifaces; k++)
				if (s->ifaces[k].mode == WLAN_MODE_AP)
					want_stations(s, s->ifaces[k].ifindex, false);
			continue;
		}
		if (rc < 0) {
			s->cnt.bad_messages++;
			if (sk == s->cmd && s->busy)
				cur_done(s, -EIO);
			if (rc == -NLE_BAD_SOCK) {
				set_error(s, "nl80211 %s socket failed: %s", which,
					  nl_geterror(rc));
				return -EIO;
			}
			return 0;
		}
	}
	return 0;
}

static int cmd_fd_cb(void *ud, int fd, unsigned events)
{
	struct wlan *s = ud;

	if (read_all(s, s->cmd, s->cmd_cb, "request") < 0) {
		sockets_close(s);
		schedule_reopen(s);
	}
	return 0;
}

static int ev_valid(struct nl_msg *m, void *ud)
{
	struct wlan *s = ud;
	struct nlmsghdr *nlh = nlmsg_hdr(m);
	size_t len = nlh->nlmsg_len;
	int cmd = wlan_msg_cmd(nlh, len);

	if (cmd < 0) {
		s->cnt.bad_messages++;
		return NL_SKIP;
	}
	s->cnt.events++;
	switch (cmd) {
	case NL80211_CMD_NEW_STATION:
		on_station_event(s, nlh, len, true);
		break;
	case NL80211_CMD_DEL_STATION:
		on_station_event(s, nlh, len, false);
		break;
	case NL80211_CMD_NEW_SCAN_RESULTS:
	case NL80211_CMD_SCAN_ABORTED:
		on_scan_event(s, cmd, nlh, len);
		break;
	case NL80211_CMD_NEW_INTERFACE:
	case NL80211_CMD_DEL_INTERFACE:
	case NL80211_CMD_SET_INTERFACE:
	case NL80211_CMD_NEW_WIPHY:
	case NL80211_CMD_DEL_WIPHY:
	case NL80211_CMD_CH_SWITCH_NOTIFY:
	case NL80211_CMD_CONNECT:
	case NL80211_CMD_DISCONNECT:
	case NL80211_CMD_START_AP:
	case NL80211_CMD_STOP_AP:
		want_ifaces(s);
		break;
	default:
		break;
	}
	return NL_OK;
}

static int ev_seq_check(struct nl_msg *m, void *ud)
{
	return NL_OK;
}

static int ev_fd_cb(void *ud, int fd, unsigned events)
{
	struct wlan *s = ud;

	if (read_all(s, s->ev, s->ev_cb, "event") < 0) {
		sockets_close(s);
		schedule_reopen(s);
	}
	return 0;
}

static void sockets_close(struct wlan *s)
{
	if (s->cmd_watch)
		s->h->watch_fd_cancel(s->r, s->cmd_watch);
	if (s->ev_watch)
		s->h->watch_fd_cancel(s->r, s->ev_watch);
	s->cmd_watch = s->ev_watch = 0;
	if (s->cmd)
		nl_socket_free(s->cmd);
	if (s->ev)
		nl_socket_free(s->ev);
	if (s->cmd_cb)
		nl_cb_put(s->cmd_cb);
	if (s->ev_cb)
		nl_cb_put(s->ev_cb);
	s->cmd = s->ev = NULL;
	s->cmd_cb = s->ev_cb = NULL;
	if (s->busy) {
		s->busy = false;
		if (s->cur.kind == REQ_TXPOWER)
			s->h->tx_status(s->r, s->cur.cmd_id, LABGW_TX_FAILED,
					"the netlink connection closed");
	}
	for (; s->q_len; s->q_len--, s->q_head = (s->q_head + 1) % QUEUE_MAX) {
		struct req *q = &s->queue[s->q_head];
		if (q->kind == REQ_TXPOWER)
			s->h->tx_status(s->r, q->cmd_id, LABGW_TX_FAILED,
					"the netlink connection closed");
	}
	scan_end(s, LABGW_TX_FAILED, "the netlink connection closed");
	s->synced = false;
	s->state_dirty = true;
}

static int join_group(struct wlan *s, const char *group)
{
	int id = genl_ctrl_resolve_grp(s->ev, "nl80211", group);

	if (id < 0)
		return id;
	return nl_socket_add_membership(s->ev, id);
}

/* Open both sockets and resolve the family and groups (blocking, at start:
 * the kernel answers these at once). */
static int sockets_open(struct wlan *s)
{
	int rc;

	s->cmd = nl_socket_alloc();
	s->ev = nl_socket_alloc();
	s->cmd_cb = nl_cb_alloc(NL_CB_DEFAULT);
	s->ev_cb = nl_cb_alloc(NL_CB_DEFAULT);
	if (!s->cmd || !s->ev || !s->cmd_cb || !s->ev_cb) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = genl_connect(s->cmd)) < 0 || (rc = genl_connect(s->ev)) < 0) {
		set_error(s, "cannot open a generic netlink socket: %s", nl_geterror(rc));
		rc = -ENODEV;
		goto fail;
	}
	s->family = genl_ctrl_resolve(s->cmd, "nl80211");
	if (s->family < 0) {
		set_error(s, "the kernel has no nl80211 (no Wi-Fi driver loaded)");
		rc = -ENODEV;
		goto fail;
	}
	if ((rc = join_group(s, NL80211_MULTICAST_GROUP_CONFIG)) < 0 ||
	    (rc = join_group(s, NL80211_MULTICAST_GROUP_MLME)) < 0 ||
	    (rc = join_group(s, NL80211_MULTICAST_GROUP_SCAN)) < 0) {
		set_error(s, "cannot join the nl80211 event groups: %s", nl_geterror(rc));
		rc = -ENODEV;
		goto fail;
	}
	nl_socket_disable_seq_check(s->ev);
	nl_socket_set_buffer_size(s->ev, 1 << 20, 0);
	nl_socket_set_buffer_size(s->cmd, 1 << 20, 0);
	nl_cb_set(s->ev_cb, NL_CB_VALID, NL_CB_CUSTOM, ev_valid, s);
	/* events carry no sequence of ours: a callback of its own, or libnl
	 * checks them against our requests' */
	nl_cb_set(s->ev_cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, ev_seq_check, NULL);
	nl_cb_set(s->cmd_cb, NL_CB_VALID, NL_CB_CUSTOM, cmd_valid, s);
	nl_cb_set(s->cmd_cb, NL_CB_SEQ_CHECK, NL_CB_CUSTOM, cmd_seq_check, s);
	nl_cb_set(s->cmd_cb, NL_CB_FINISH, NL_CB_CUSTOM, cmd_finish, s);
	nl_cb_set(s->cmd_cb, NL_CB_ACK, NL_CB_CUSTOM, cmd_finish, s);
	nl_cb_err(s->cmd_cb, NL_CB_CUSTOM, cmd_error, s);
	if (nl_socket_set_nonblocking(s->cmd) < 0 || nl_socket_set_nonblocking(s->ev) < 0) {
		rc = -EIO;
		goto fail;
	}
	s->cmd_watch = s->h->watch_fd(s->r, nl_socket_get_fd(s->cmd), LABGW_FD_READ, cmd_fd_cb, s);
	s->ev_watch = s->h->watch_fd(s->r, nl_socket_get_fd(s->ev), LABGW_FD_READ, ev_fd_cb, s);
	if (!s->cmd_watch || !s->ev_watch) {
		rc = -ENOMEM;
		goto fail;
	}
	s->last_error[0] = 0;
	want_ifaces(s);
	return 0;
fail:
	sockets_close(s);
	return rc;
}

static int reopen_cb(void *ud)
{
	struct wlan *s = ud;

	s->reopen = 0;
	if (!s->running || s->cmd)
		return 0;
	s->cnt.reopens++;
	if (sockets_open(s) < 0)
		schedule_reopen(s);
	return 0;
}

static void schedule_reopen(struct wlan *s)
{
	if (s->running && !s->reopen)
		s->reopen = s->h->timer_add(s->r, REOPEN_MS, 0, reopen_cb, s);
}

static int tick_cb(void *ud)
{
	struct wlan *s = ud;
	uint64_t now = now_ms(s);

	if (s->busy && now - s->cur_sent_ms > REQ_TIMEOUT_MS) {
		s->cnt.timeouts++;
		s->h->log(s->r, LABGW_LOG_WARNING, "nl80211: no answer to request %d in time",
			  s->cur.kind);
		cur_done(s, -ETIMEDOUT);
	}
	if (s->scanning && now - s->scan_started_ms > SCAN_TIMEOUT_MS)
		scan_end(s, LABGW_TX_FAILED, "the scan did not finish in time");
	if (s->cmd && s->synced && s->station_interval_ms && now >= s->next_station_ms) {
		s->next_station_ms = now + s->station_interval_ms;
		for (unsigned i = 0; i < s->n_ifaces; i++)
			if (s->ifaces[i].mode == WLAN_MODE_AP)
				want_stations(s, s->ifaces[i].ifindex, true);
	}
	/* channel and power changes do not all come as events */
	if (s->cmd && s->synced && now >= s->next_ifaces_ms) {
		s->next_ifaces_ms = now + IFACES_REFRESH_MS;
		want_ifaces(s);
	}
	if (s->state_dirty)
		publish_state(s);
	return 0;
}

/* ---- commands ------------------------------------------------------------ */

static int scan_start(struct wlan *s, const struct labgw_command *cmd, json_t *body, char *errbuf,
		      size_t errlen)
{
	json_t *ifj = json_object_get(body, "interface");
	const char *want = json_is_string(ifj) ? json_string_value(ifj) : s->scan_ifname;
	struct wlan_iface *w = NULL;
	uint64_t now = now_ms(s);
	const char *k;
	json_t *v;

	json_object_foreach(body, k, v)
	{
		if (strcmp(k, "op") && strcmp(k, "interface") && strcmp(k, "tech"))
			return refuse(errbuf, errlen, -EINVAL,
				      "a scan takes \"op\" and \"interface\", not \"%.32s\"", k);
	}
	if (ifj && !json_is_string(ifj))
		return refuse(errbuf, errlen, -EINVAL, "\"interface\" must be a string");
	if (!s->cmd || !s->synced)
		return refuse(errbuf, errlen, -ENODEV, "nl80211 is not available");
	if (want[0]) {
		w = iface_by_name(s, want);
		if (!w)
			return refuse(errbuf, errlen, -EINVAL,
				      "no watched interface \"%.32s\" on this radio", want);
	} else {
		/* the first interface that is not an access point */
		for (unsigned i = 0; i < s->n_ifaces && !w; i++)
			if (s->ifaces[i].mode == WLAN_MODE_STATION)
				w = &s->ifaces[i];
		if (!w)
			return refuse(errbuf, errlen, -ENODEV,
				      "this radio has no interface in station mode to scan with");
	}
	if (w->mode == WLAN_MODE_MONITOR)
		return refuse(errbuf, errlen, -EINVAL, "%s is a monitor interface", w->name);
	if (s->scanning)
		return refuse(errbuf, errlen, -EBUSY, "a scan is running (%s)", s->scan_cmd);
	if (s->last_scan_ms && now - s->last_scan_ms < s->scan_min_interval_ms)
		return refuse(errbuf, errlen, -EBUSY,
			      "one scan per %llu s on this radio; the next in %llu s",
			      (unsigned long long)(s->scan_min_interval_ms / 1000),
			      (unsigned long long)((s->scan_min_interval_ms -
						    (now - s->last_scan_ms) + 999) /
						   1000));
	if (enqueue(s, &(struct req){.kind = REQ_TRIGGER, .ifindex = w->ifindex}) < 0)
		return refuse(errbuf, errlen, -EBUSY, "too many netlink requests waiting");
	s->scanning = true;
	snprintf(s->scan_cmd, sizeof(s->scan_cmd), "%s", cmd->id);
	s->scan_ifindex = w->ifindex;
	s->scan_started_ms = s->last_scan_ms = now;
	s->scan_bss = 0;
	s->cnt.scans++;
	s->state_dirty = true;
	return 0;
}

/* staff only: {"op":"set_txpower","interface":"wlan0","dbm":10 | "auto"} */
static int txpower_start(struct wlan *s, const struct labgw_command *cmd, json_t *body,
			 char *errbuf, size_t errlen)
{
	const char *name = json_string_value(json_object_get(body, "interface"));
	json_t *dbm = json_object_get(body, "dbm");
	struct wlan_iface *w = name ? iface_by_name(s, name) : NULL;
	struct req q = {.kind = REQ_TXPOWER};

	if (!w)
		return refuse(errbuf, errlen, -EINVAL,
			      "\"interface\" must name a watched interface");
	if (json_is_string(dbm) && !strcmp(json_string_value(dbm), "auto")) {
		q.mbm = INT32_MIN;
	} else if (json_is_number(dbm) && json_number_value(dbm) >= 0 &&
		   json_number_value(dbm) <= 30) {
		q.mbm = (int32_t)(json_number_value(dbm) * 100);
	} else {
		return refuse(errbuf, errlen, -EINVAL, "\"dbm\" must be 0..30 or \"auto\"");
	}
	if (!s->cmd)
		return refuse(errbuf, errlen, -ENODEV, "nl80211 is not available");
	q.ifindex = w->ifindex;
	snprintf(q.cmd_id, sizeof(q.cmd_id), "%s", cmd->id);
	if (enqueue(s, &q) < 0)
		return refuse(errbuf, errlen, -EBUSY, "too many netlink requests waiting");
	return 0;
}

static int wlan_command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	struct wlan *s = state;
	json_t *body = json_loadb(cmd->body, cmd->body_len, 0, NULL);
	const char *op;
	int rc;

	if (!json_is_object(body)) {
		json_decref(body);
		return refuse(errbuf, errlen, -EINVAL, "the body is not a JSON object");
	}
	op = json_string_value(json_object_get(body, "op"));
	if (!strcmp(cmd->op, "lease.ended") || !strcmp(cmd->op, "claim.ended")) {
		rc = -ENOTSUP; /* a scan ends by itself; nothing to stop */
		refuse(errbuf, errlen, rc, "nothing to stop");
	} else if (!strcmp(cmd->op, "tx")) {
		/* what a sandbox may ask: scans, nothing else */
		if (!op || strcmp(op, "scan"))
			rc = refuse(errbuf, errlen, -EINVAL,
				    "a wlan radio takes {\"op\":\"scan\"} only; interface modes, "
				    "channels and management frames are not for sandboxes");
		else
			rc = scan_start(s, cmd, body, errbuf, errlen);
	} else if (cmd->sbx) {
		rc = refuse(errbuf, errlen, -EPERM, "\"%.32s\" is for staff only", cmd->op);
	} else if (!strcmp(cmd->op, "scan")) {
		rc = scan_start(s, cmd, body, errbuf, errlen);
	} else if (!strcmp(cmd->op, "set_txpower")) {
		rc = txpower_start(s, cmd, body, errbuf, errlen);
	} else {
		rc = refuse(errbuf, errlen, -ENOTSUP,
			    "the wlan radio has no operation \"%.32s\" (scan, set_txpower)",
			    cmd->op);
	}
	json_decref(body);
	return rc;
}

/* ---- configuration and life cycle --------------------------------------- */

static int parse_mac(const char *t, size_t n, uint8_t out[6])
{
	unsigned v[6];
	char buf[18], end;

	if (n != 17)
		return -EINVAL;
	memcpy(buf, t, 17);
	buf[17] = 0;
	if (sscanf(buf, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
		   &end) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++)
		out[i] = (uint8_t)v[i];
	return 0;
}

static bool ifname_ok(const char *t, size_t n)
{
	return n && n <= WLAN_IFNAME_MAX &&
	       strspn(t, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") >= n;
}

static int read_config(struct wlan *s)
{
	const char *ifs = s->h->config_get(s->r, "interfaces");
	const char *scan_if = s->h->config_get(s->r, "scan_interface");
	const char *lab = s->h->config_get(s->r, "lab_bssids");
	int rc = 0, r1, r2;

	r1 = s->h->config_get_duration_ms(s->r, "station_interval", 0, 3600000, 10000,
					  &s->station_interval_ms);
	r2 = s->h->config_get_duration_ms(s->r, "scan_min_interval", 0, 3600000, 30000,
					  &s->scan_min_interval_ms);
	if (r1 < 0 || r2 < 0)
		rc = -EINVAL;
	if (s->station_interval_ms && s->station_interval_ms < 1000) {
		s->h->config_error(s->r, "station_interval", "0 (off) or at least 1s");
		rc = -EINVAL;
	}
	for (const char *p = ifs ? ifs : ""; *p;) {
		p += strspn(p, " ,");
		size_t n = strcspn(p, " ,");
		if (!n)
			break;
		if (!ifname_ok(p, n) || s->n_ifnames >= IFACES_MAX) {
			s->h->config_error(s->r, "interfaces",
					   "'%.*s' is not an interface name (at most %d of them)",
					   (int)n, p, IFACES_MAX);
			rc = -EINVAL;
			break;
		}
		memcpy(s->ifnames[s->n_ifnames], p, n);
		s->ifnames[s->n_ifnames++][n] = 0;
		p += n;
	}
	if (scan_if) {
		if (!ifname_ok(scan_if, strlen(scan_if)) || !name_watched(s, scan_if)) {
			s->h->config_error(s->r, "scan_interface",
					   "'%s' is not one of the watched interfaces", scan_if);
			rc = -EINVAL;
		} else {
			snprintf(s->scan_ifname, sizeof(s->scan_ifname), "%s", scan_if);
		}
	}
	for (const char *p = lab ? lab : ""; *p;) {
		p += strspn(p, " ,");
		size_t n = strcspn(p, " ,");
		if (!n)
			break;
		if (s->n_lab_bssids >= LAB_BSSIDS_MAX ||
		    parse_mac(p, n, s->lab_bssids[s->n_lab_bssids]) < 0) {
			s->h->config_error(s->r, "lab_bssids",
					   "'%.*s' is not a BSSID like 02:00:00:00:00:00 (at most "
					   "%d)",
					   (int)n, p, LAB_BSSIDS_MAX);
			rc = -EINVAL;
			break;
		}
		s->n_lab_bssids++;
		p += n;
	}
	return rc;
}

static int wlan_init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct wlan *s;
	int rc;

	if (host->size < offsetof(struct labgw_host, frame_set_public) + sizeof(void *))
		return -EINVAL; /* needs ABI 1.5: frame_set_public */
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->r = r;
	s->h = host;
	rc = read_config(s);
	if (rc < 0) {
		free(s);
		return rc;
	}
	host->radio_set_techs(r, LABGW_TECH_WLAN);
	*state = s;
	return 0;
}

static int wlan_start(void *state)
{
	struct wlan *s = state;
	int rc;

	if (s->running)
		return 0;
	rc = sockets_open(s);
	if (rc < 0) {
		s->h->log(s->r, LABGW_LOG_WARNING, "%s", s->last_error);
		return rc == -ENOMEM ? rc : -ENODEV;
	}
	s->tick = s->h->timer_add(s->r, TICK_MS, TICK_MS, tick_cb, s);
	if (!s->tick) {
		sockets_close(s);
		return -ENOMEM;
	}
	s->running = true;
	s->next_station_ms = now_ms(s) + s->station_interval_ms;
	publish_state(s);
	return 0;
}

static void wlan_stop(void *state)
{
	struct wlan *s = state;

	s->running = false;
	if (s->tick)
		s->h->timer_cancel(s->r, s->tick);
	if (s->reopen)
		s->h->timer_cancel(s->r, s->reopen);
	s->tick = s->reopen = 0;
	sockets_close(s);
	memset(s->stations, 0, sizeof(s->stations));
	s->n_stations = 0;
	s->n_ifaces = 0;
}

static void wlan_exit(void *state)
{
	free(state);
}

LABGW_PLUGIN_DEFINE(.name = "wlan", .version = LABGW_VERSION, .techs = LABGW_TECH_WLAN,
		    .init = wlan_init, .start = wlan_start, .command = wlan_command,
		    .stop = wlan_stop, .exit = wlan_exit);
