/* SPDX-License-Identifier: MIT */
/*
 * ModemManager's values in our words: the enums and bitmasks of its D-Bus
 * API (MMModemState, MMModemStateFailedReason, MMModemAccessTechnology,
 * MMModem3gppRegistrationState, MMSmsState) as the names labgw publishes,
 * the extended signal dictionaries of Modem.Signal, SMS timestamps and
 * sender numbers.
 *
 * Pure: no I/O, no globals, so unit tests and fuzz targets link it alone.
 * Everything here reads values that come from outside (ModemManager over
 * D-Bus, and through it the network): every function takes any input.
 */
#ifndef LABGW_CELLULAR_MM_H
#define LABGW_CELLULAR_MM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MMModemAccessTechnology bits */
#define MM_AT_POTS	  (1u << 0)
#define MM_AT_GSM	  (1u << 1)
#define MM_AT_GSM_COMPACT (1u << 2)
#define MM_AT_GPRS	  (1u << 3)
#define MM_AT_EDGE	  (1u << 4)
#define MM_AT_UMTS	  (1u << 5)
#define MM_AT_HSDPA	  (1u << 6)
#define MM_AT_HSUPA	  (1u << 7)
#define MM_AT_HSPA	  (1u << 8)
#define MM_AT_HSPA_PLUS	  (1u << 9)
#define MM_AT_1XRTT	  (1u << 10)
#define MM_AT_EVDO0	  (1u << 11)
#define MM_AT_EVDOA	  (1u << 12)
#define MM_AT_EVDOB	  (1u << 13)
#define MM_AT_LTE	  (1u << 14)
#define MM_AT_5GNR	  (1u << 15)
#define MM_AT_LTE_CAT_M	  (1u << 16)
#define MM_AT_LTE_NB_IOT  (1u << 17)

/* MMSmsState */
#define MM_SMS_STATE_RECEIVING 2
#define MM_SMS_STATE_RECEIVED  3

/* Which radio technology family a modem is on, from the access technology
 * bitmask: the newest family whose bit is set. */
enum mm_family {
	MM_FAMILY_NONE = 0,
	MM_FAMILY_GSM,	/* GSM, GPRS, EDGE */
	MM_FAMILY_UMTS, /* UMTS and HSPA */
	MM_FAMILY_LTE,	/* LTE, LTE Cat-M, NB-IoT */
	MM_FAMILY_5GNR,
	MM_FAMILY_CDMA, /* 1xRTT, EV-DO */
};

/* "failed", "unknown", "initializing", "locked", "disabled", "disabling",
 * "enabling", "enabled", "searching", "registered", "disconnecting",
 * "connecting", "connected"; NULL for a value ModemManager does not define. */
const char *mm_state_name(int32_t state);
/* "none", "unknown", "sim-missing", "sim-error", "unknown-capabilities",
 * "esim-without-profiles"; NULL otherwise. */
const char *mm_failed_reason_name(uint32_t reason);
/* "idle", "home", "searching", "denied", "unknown", "roaming",
 * "home-sms-only", "roaming-sms-only", "emergency-only",
 * "home-csfb-not-preferred", "roaming-csfb-not-preferred", "attached-rlos";
 * NULL otherwise. */
const char *mm_registration_name(uint32_t reg);

enum mm_family mm_family_of(uint32_t access_tech);
/* "gsm", "umts", "lte", "5gnr", "cdma"; NULL for MM_FAMILY_NONE. */
const char *mm_family_name(enum mm_family f);
/* The Modem.Signal property that holds a family's values ("Gsm", "Umts",
 * "Lte", "Nr5g", "Cdma"); NULL for none. EV-DO has its own property
 * ("Evdo"), tried when "Cdma" has nothing. */
const char *mm_family_signal_prop(enum mm_family f);

/*
 * The names of the bits set in an access technology bitmask ("gsm", "gprs",
 * "edge", "umts", "hsdpa", "hsupa", "hspa", "hspa+", "1xrtt", "evdo0",
 * "evdoa", "evdob", "lte", "5gnr", "lte-cat-m", "lte-nb-iot", "pots"), in
 * bit order; at most `cap`. Returns how many were stored. Unknown bits are
 * skipped.
 */
size_t mm_access_tech_names(uint32_t access_tech, const char **names, size_t cap);

/* Extended signal values of one technology (Modem.Signal), each when given. */
struct mm_signal {
	bool has_rssi, has_rscp, has_ecio, has_rsrp, has_rsrq, has_snr, has_sinr, has_io;
	double rssi, rscp, ecio, rsrp, rsrq, snr, sinr, io;
};

/* Take one entry of a Modem.Signal dictionary. Unknown keys and values that
 * are not finite or lie outside -300..300 are ignored: returns false then. */
bool mm_signal_take(struct mm_signal *s, const char *key, double v);
bool mm_signal_empty(const struct mm_signal *s);

#define MM_TIME_LEN 32 /* "2026-11-26T08:40:01Z" and room */

/*
 * An SMS timestamp as ModemManager gives it — ISO 8601 with a UTC offset
 * ("2026-11-26T09:40:01+01:00", "...+01", "...Z", with or without seconds
 * fraction), or the older "YYMMDDhhmmss+zz" (zz in quarter hours) — as UTC,
 * "2026-11-26T08:40:01Z". -EINVAL when it is neither or names no real time.
 */
int mm_timestamp_utc(const char *in, char out[MM_TIME_LEN]);

#define MM_NUMBER_MAX 32 /* longest sender kept, with the NUL */

/*
 * A sender as it becomes a device id. A phone number (digits, optionally a
 * leading '+' or "00", with spaces, dashes, dots or brackets between) becomes
 * E.164, "+4915112345678", when it has 7 to 15 digits and a leading '+' or
 * "00" (an international number); a national number is kept as its digits.
 * An alphanumeric sender ("Telekom") is kept with everything outside
 * printable ASCII, '/', '+', '#' and spaces dropped. Returns 1 for E.164,
 * 0 for anything else kept, -EINVAL when nothing is left.
 */
int mm_sender(const char *in, char out[MM_NUMBER_MAX]);

/* Whether `s` is an E.164 number as claims hold it: '+', a digit 1-9, then
 * 6 to 14 more digits. */
bool mm_is_e164(const char *s);

#endif
