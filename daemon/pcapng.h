/* pcapng (the capture file format of Wireshark and tshark) for a sandbox's
 * capture of BLE and LoRaWAN frames (GET .../leases/{id}/capture?format=pcapng):
 * a section header, one interface per link type, and enhanced packet blocks,
 * little-endian. Pure: no I/O, no loop, no globals; a unit test links it
 * alone. */
#ifndef LABGW_PCAPNG_H
#define LABGW_PCAPNG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define PCAPNG_LINKTYPE_BLUETOOTH_LE_LL		  251
#define PCAPNG_LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR 256
#define PCAPNG_LINKTYPE_LORATAP			  270

/* BLE advertising channel PDU: 2-byte header, AdvA, at most 31 bytes of AD */
#define PCAPNG_BLE_AD_MAX  31
#define PCAPNG_BLE_PKT_MAX (4 + 2 + 6 + PCAPNG_BLE_AD_MAX + 3)
#define PCAPNG_LORATAP_HDR 15
#define PCAPNG_BLE_PHDR	   10

/* The section header block, with a shb_userappl option naming `app`. */
void pcapng_section(struct strbuf *sb, const char *app);
/* An interface description block; interfaces are numbered 0, 1, ... in the
 * order written. Timestamps are microseconds (the default resolution). */
void pcapng_interface(struct strbuf *sb, uint16_t linktype, const char *name);
/* An enhanced packet block of interface `ifid`, captured at `time_us`
 * (µs since the epoch), with an opt_comment when comment is not NULL. */
void pcapng_packet(struct strbuf *sb, uint32_t ifid, uint64_t time_us, const void *data, size_t len,
		   const char *comment);

/* The BLE link-layer CRC (24 bits, as its three bytes go on air, LSB
 * first) of `len` bytes with the advertising channel's initial value. */
uint32_t pcapng_ble_crc(const uint8_t *pdu, size_t len);
/* A LINKTYPE_BLUETOOTH_LE_LL packet of an ADV_IND advertisement: access
 * address 0x8e89bed6, header (TxAdd set for a random address), AdvA (addr
 * is "aa:bb:cc:dd:ee:ff"), the AD structures, CRC. Returns its length, or
 * -EINVAL for a bad address or more than 31 bytes of AD. */
int pcapng_ble_adv(uint8_t out[PCAPNG_BLE_PKT_MAX], const char *addr, bool random,
		   const uint8_t *ad, size_t ad_len);
/* The pseudo-header of LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR in front of such
 * a packet: RF channel 0 (advertising channel 37), the signal power, and
 * flags "dewhitened, signal power valid" and CRC not checked, so that
 * Wireshark checks the CRC itself. */
void pcapng_ble_phdr(uint8_t out[PCAPNG_BLE_PHDR], int rssi_dbm);
/* A LoRaTap v0 header (LINKTYPE_LORATAP) for a LoRaWAN frame: frequency,
 * bandwidth, spreading factor, RSSI, SNR, and the public sync word 0x34, so
 * that Wireshark hands the payload to its LoRaWAN dissector. */
void pcapng_loratap_header(uint8_t out[PCAPNG_LORATAP_HDR], uint32_t freq_hz, uint32_t bw_hz,
			   unsigned sf, int rssi_dbm, double snr_db);

#endif
