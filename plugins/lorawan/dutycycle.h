/* SPDX-License-Identifier: MIT */
/*
 * The regulatory duty-cycle ledger of one transmitter (one LoRa
 * concentrator): for each sub-band of a table, the airtime sent in a sliding
 * window (an hour), against the band's limit (1 % of the hour: 36 s).
 *
 * Pure: no I/O, no globals, no clock. Times are the caller's monotonic
 * milliseconds, airtime is in microseconds. A transmission counts in full
 * for as long as any part of it lies inside the window; when the ledger
 * must merge records to stay bounded it merges towards the later start,
 * so the ledger may overstate use but never understate it.
 */
#ifndef LABGW_LORAWAN_DUTYCYCLE_H
#define LABGW_LORAWAN_DUTYCYCLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DC_BANDS_MAX	 16
#define DC_WINDOW_MS	 3600000u /* the sliding hour of ETSI EN 300 220 */
#define DC_RECORDS_MAX	 512	  /* per band; older records merge beyond */
#define DC_NEVER	 UINT64_MAX
#define DC_BAND_NAME_LEN 24 /* "863000000-868000000" */

/* One sub-band: [lo_hz, hi_hz] with a duty cycle in millionths (1 % is
 * 10000). */
struct dc_band {
	uint32_t lo_hz, hi_hz;
	uint32_t ppm;
};

struct dc_table {
	size_t n;
	struct dc_band band[DC_BANDS_MAX];
};

/* The EU868 sub-bands of the regional parameters (ETSI EN 300 220):
 * 863.0-868.0 1 %, 868.0-868.6 1 %, 868.7-869.2 0.1 %, 869.4-869.65 10 %,
 * 869.7-870.0 1 %. */
void dc_table_default(struct dc_table *t);

/*
 * Parses "868.0-868.6:1% 868.7-869.2:0.1% ..." (MHz with up to 6 decimals,
 * percent with up to 4; bands separated by spaces or commas; the "%" is
 * optional). Bands may touch but not overlap. Returns 0, or -EINVAL with a
 * reason in err.
 */
int dc_table_parse(const char *s, struct dc_table *t, char *err, size_t errlen);

/* The band whose range holds the whole channel [freq - bw/2, freq + bw/2],
 * or -1 when none does. */
int dc_table_find(const struct dc_table *t, uint32_t freq_hz, uint32_t bw_hz);

/* The budget of a band per window, in microseconds. */
uint64_t dc_band_limit_us(const struct dc_band *b, uint64_t window_ms);

/* "868000000-868600000": a name usable as a JSON key of the state details. */
void dc_band_name(const struct dc_band *b, char out[DC_BAND_NAME_LEN]);

/* "868.0-868.6 MHz 1%": for people. */
void dc_band_label(const struct dc_band *b, char *out, size_t len);

struct dc_ledger;

/* A ledger for the bands of `t` (copied) over `window_ms`; NULL without
 * memory. */
struct dc_ledger *dc_ledger_new(const struct dc_table *t, uint64_t window_ms);
void dc_ledger_free(struct dc_ledger *l);

const struct dc_table *dc_ledger_table(const struct dc_ledger *l);

/* Airtime of `band` counted in the window that ends at now_ms. */
uint64_t dc_ledger_used_us(struct dc_ledger *l, size_t band, uint64_t now_ms);

/*
 * Whether `airtime_us` more in `band`, starting at at_ms, keeps the window
 * that ends with it within the limit: 0 when it does, else the ms to wait
 * until it would, DC_NEVER when the airtime alone exceeds the limit (or the
 * band does not exist).
 */
uint64_t dc_ledger_wait_ms(const struct dc_ledger *l, size_t band, uint64_t at_ms,
			   uint64_t airtime_us);

/* Records a transmission. at_ms must not lie before the latest now_ms given
 * to dc_ledger_used_us (records that left the window are dropped then).
 * Returns 0 or -EINVAL for an unknown band. Never fails for lack of memory:
 * records merge instead. */
int dc_ledger_commit(struct dc_ledger *l, size_t band, uint64_t at_ms, uint64_t airtime_us);

/*
 * Persistence across restarts, in wall-clock time (monotonic time does not
 * survive the process): one line per record, "LO HI START END AIRTIME\n"
 * (band edges in Hz, times in ms since the epoch, airtime in us), at most
 * DC_EXPORT_PER_BAND per band (older records merge, conservatively).
 * export returns the length written (NUL-terminated), or -ENOBUFS; import
 * takes the records of bands with the same edges that are still in the
 * window, and returns how many, or -EINVAL for a malformed text (nothing
 * taken then) or -ENOMEM. DC_EXPORT_MAX bytes always suffice.
 */
#define DC_EXPORT_PER_BAND 60
#define DC_EXPORT_MAX	   (DC_BANDS_MAX * DC_EXPORT_PER_BAND * 64)
long dc_ledger_export(const struct dc_ledger *l, uint64_t now_ms, int64_t now_wall_ms, char *buf,
		      size_t cap);
int dc_ledger_import(struct dc_ledger *l, const char *text, size_t len, uint64_t now_ms,
		     int64_t now_wall_ms);

/* Number of records kept for a band (for tests of the bound). */
size_t dc_ledger_records(const struct dc_ledger *l, size_t band);

#endif
