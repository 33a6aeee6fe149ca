/* LoRa time on air (Semtech AN1200.13), pure. */
#ifndef LABGW_LORA_AIRTIME_H
#define LABGW_LORA_AIRTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Airtime in µs of a `len`-byte PHYPayload at spreading factor sf (5..12),
 * bandwidth bw_hz, coding rate 4/cr (cr 5..8), with `preamble` symbols,
 * explicit header, and the CRC on (uplinks) or off (downlinks). Low data
 * rate optimisation is on when a symbol lasts 16 ms or more. 0 for
 * parameters out of range. */
uint64_t lora_airtime_us(int sf, uint32_t bw_hz, int cr, size_t len, int preamble, bool crc);

#endif
