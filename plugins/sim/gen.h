/* SPDX-License-Identifier: MIT */
/*
 * The sim module's traffic generator: pure and deterministic (no I/O, no
 * globals, no clock of its own). A generator owns a fixed population of
 * simulated devices of the enabled technologies and, on each call of
 * sim_gen_next(), describes the next frame one of them sends. For the same
 * seed, device count, techs mask and sequence of now_ms values, the
 * sequence of events is the same, on every machine.
 *
 * Population: n_devices are split over the enabled techs with weights
 * BLE 50, LoRaWAN 25, WLAN 20, cellular (SMS senders) 5, each enabled tech
 * getting at least one while devices remain (BLE first, then LoRaWAN, WLAN,
 * cellular). The cellular modem's own signal reports need no device.
 * Frames are drawn with weights BLE 55, LoRaWAN 22, WLAN 18, cellular 5 over
 * the techs that have something to send; 3 % of LoRaWAN frames are
 * join-requests, 20 % of cellular frames are SMS (when there are senders).
 *
 * LoRaWAN devices use ABP sessions (LoRaWAN 1.0.x, uplinks only, FOptsLen 0)
 * whose keys follow from the seed, so whoever knows the seed can verify
 * MICs and decrypt:
 *
 *   K_sim   = "labgw-sim" 00 00 00 | seed (4 bytes, big-endian)   (16 bytes)
 *   NwkSKey = AES-128-Encrypt(K_sim, 01 | DevAddr (4 bytes, big-endian) | 00 x 11)
 *   AppSKey = AES-128-Encrypt(K_sim, 02 | DevAddr (4 bytes, big-endian) | 00 x 11)
 *   AppKey  = AES-128-Encrypt(K_sim, 03 | DevEUI (8 bytes, big-endian)  | 00 x 7)
 *
 * "big-endian" is the order in which the ids are written as hex (DevAddr
 * "26011bda" is 26 01 1b da), not the on-air order.
 */
#ifndef LABGW_SIM_GEN_H
#define LABGW_SIM_GEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <labgw/plugin.h>

#define SIM_DEVICES_MAX 10000u
#define SIM_PAYLOAD_MAX 256u
#define SIM_BLE_ADV_MAX 31u /* legacy advertising data */
#define SIM_FRM_MAX	32u /* FRMPayload bytes of a simulated uplink, at most */
#define SIM_TECHS_ALL	(LABGW_TECH_BLE | LABGW_TECH_WLAN | LABGW_TECH_LORAWAN | LABGW_TECH_CELLULAR)

enum sim_type {
	SIM_BLE_ADV = 1,    /* rx.ble.adv */
	SIM_WLAN_STATION,   /* rx.wlan.station */
	SIM_LORAWAN_UPLINK, /* rx.lorawan.uplink */
	SIM_LORAWAN_JOIN,   /* rx.lorawan.join */
	SIM_CELL_SIGNAL,    /* state.cellular.signal */
	SIM_CELL_SMS,	    /* rx.cellular.sms */
};

enum sim_beacon {
	SIM_BEACON_NONE = 0,
	SIM_BEACON_IBEACON,
	SIM_BEACON_EDDYSTONE_UID,
	SIM_BEACON_EDDYSTONE_URL,
	SIM_BEACON_EDDYSTONE_TLM,
};

enum sim_wlan_event {
	SIM_WLAN_JOINED = 1,
	SIM_WLAN_LEFT,
	SIM_WLAN_SIGNAL,
};

/*
 * An advert. Everything below is decoded from ev->payload, which holds the
 * AD structures; byte ranges are offsets into ev->payload.
 */
struct sim_ble_adv {
	bool addr_random; /* addr_type "random", else "public" */
	int rssi;
	bool has_tx_power; /* AD type 0x0a present */
	int tx_power;
	char name[32]; /* AD type 0x09; "" when not advertised */
	bool has_mfr;  /* AD type 0xff: company id, then data */
	uint16_t company;
	uint8_t mfr_off, mfr_len; /* the data after the company id */
	bool has_svc;		  /* AD type 0x16: 16-bit service UUID, then data */
	uint16_t svc_uuid;
	uint8_t svc_off, svc_len; /* the data after the UUID */
	unsigned n_uuids;	  /* AD type 0x03: complete list of 16-bit UUIDs */
	uint16_t uuids[4];
	enum sim_beacon beacon;
	struct {
		uint8_t uuid[16];
		uint16_t major, minor;
		int tx_power; /* measured power at 1 m */
	} ibeacon;
	struct {
		int tx_power;	/* UID/URL: calibrated power at 0 m */
		uint8_t ns[10]; /* UID */
		uint8_t instance[6];
		char url[48];	     /* URL, expanded */
		uint16_t battery_mv; /* TLM */
		double temp_c;
		uint32_t adv_count;
		uint32_t uptime_s; /* SEC_CNT / 10 */
	} eddystone;
};

/* A station of the lab AP; ev->dev is its MAC. No payload. */
struct sim_wlan_station {
	enum sim_wlan_event event;
	const char *ssid;
	uint64_t freq_hz;
	/* joined and signal only */
	int signal_dbm, signal_avg_dbm;
	/* signal only; byte and packet counters never decrease per device */
	uint32_t tx_bitrate_kbps, rx_bitrate_kbps;
	uint64_t rx_bytes, tx_bytes, rx_packets, tx_packets;
	/* signal and left */
	uint32_t connected_s;
};

/* What the concentrator reports with a LoRa packet. */
struct sim_lora_rx {
	int rssi;
	double snr;
	uint64_t freq_hz;
	int sf;
	uint32_t bw_hz;
	const char *codr;
	int chan;
	int rfch;
};

/* ev->payload is the PHYPayload; ev->dev the DevAddr as 8 hex. */
struct sim_lorawan_uplink {
	struct sim_lora_rx rx;
	bool confirmed;
	uint32_t devaddr;
	bool adr, ack;
	unsigned fopts_len; /* always 0 */
	uint32_t fcnt;	    /* full 32-bit counter; the low 16 bits are on air */
	uint8_t fport;
	uint8_t frm_off, frm_len;   /* encrypted FRMPayload in ev->payload */
	uint8_t plain[SIM_FRM_MAX]; /* the FRMPayload before encryption (Cayenne LPP) */
	uint8_t mic[4];
};

/* ev->payload is the 23-byte join-request; ev->dev the DevEUI as 16 hex. */
struct sim_lorawan_join {
	struct sim_lora_rx rx;
	char join_eui[17], dev_eui[17];
	uint64_t join_eui_v, dev_eui_v;
	uint16_t dev_nonce;
	uint8_t mic[4];
};

/* The modem's serving cell. Which values are present depends on the
 * access technology: lte has all four, 5gnr no rssi, umts only rssi. */
struct sim_cell_signal {
	const char *access_tech; /* "lte", "5gnr", "umts" */
	bool has_rssi, has_rsrp, has_rsrq, has_sinr;
	int rssi, rsrp; /* dBm */
	double rsrq;	/* dB */
	double sinr;	/* dB */
	const char *operator_code;
	const char *operator_name;
	const char *registration; /* "home", "roaming" */
};

/* ev->dev is the sender (E.164); ev->payload the text as UTF-8. */
struct sim_cell_sms {
	char text[161];
	char timestamp[32]; /* ISO 8601, UTC, SMSC time shortly before now */
};

struct sim_event {
	enum labgw_tech tech; /* one LABGW_TECH_ value */
	enum sim_type type;
	const char *type_name; /* "rx.ble.adv", ... */
	char dev[24];	       /* "" for frames without a device */
	size_t payload_len;    /* 0: no payload */
	uint8_t payload[SIM_PAYLOAD_MAX];
	union {
		struct sim_ble_adv ble;
		struct sim_wlan_station wlan;
		struct sim_lorawan_uplink up;
		struct sim_lorawan_join join;
		struct sim_cell_signal cell;
		struct sim_cell_sms sms;
	} u;
};

struct sim_gen;

/*
 * n_devices is 1..SIM_DEVICES_MAX, techs a non-empty OR of LABGW_TECH_
 * values. NULL with errno EINVAL for bad arguments, ENOMEM otherwise.
 */
struct sim_gen *sim_gen_new(uint32_t seed, unsigned n_devices, uint32_t techs);
void sim_gen_free(struct sim_gen *g);

/*
 * Fills *ev (entirely; it need not be initialised) with the next frame.
 * now_ms is the caller's wall clock in Unix milliseconds; it is used for
 * durations and counters (time going backwards counts as no time passing)
 * and for SMS timestamps. Returns 0, or -EIO when the crypto library fails
 * (ev is then unusable).
 */
int sim_gen_next(struct sim_gen *g, uint64_t now_ms, struct sim_event *ev);

/* Devices of one tech (a single LABGW_TECH_ value) in the population. */
unsigned sim_gen_devices(const struct sim_gen *g, enum labgw_tech tech);

/* Session keys of the simulated device with this DevAddr (as written in
 * hex: 0x26011bda); -ENOENT when no device has it. O(1). */
int sim_gen_lorawan_keys(const struct sim_gen *g, uint32_t devaddr, uint8_t nwkskey[16],
			 uint8_t appskey[16]);

/* AppKey of the simulated device with this DevEUI; -ENOENT if unknown. */
int sim_gen_lorawan_appkey(const struct sim_gen *g, uint64_t dev_eui, uint8_t appkey[16]);

#endif
