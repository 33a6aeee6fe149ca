/* Captures of a sandbox's frames (GET .../leases/{id}/capture, POST
 * .../replay): the JSON Lines format, one {"topic","frame"} object a line,
 * and the conversion of BLE and LoRaWAN frames to pcapng packets. Pure: no
 * I/O, no loop; the parser takes input from outside (a replay upload) and is
 * unit-tested and fuzzed (tests/unit/test_capture.c,
 * tests/fuzz/fuzz_capture.c). */
#ifndef LABGW_CAPTURE_H
#define LABGW_CAPTURE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

#define CAPTURE_LINE_MAX   (16 * 1024) /* one line of JSON Lines */
#define CAPTURE_FRAMES_MAX 10000       /* frames of one capture or replay */

/* Append one JSON Lines record: {"topic":...,"frame":<frame_json>}\n. */
void capture_jsonl_append(struct strbuf *sb, const char *topic, const char *frame_json);

/* Parse JSON Lines of at most `max_frames` records into an array of
 * {"topic","frame","time_us"} objects (time_us from the frame's "time"),
 * in file order, which must be time order. Blank lines are skipped. Every
 * record must be an object with a valid topic name and a frame object with
 * "type" and "time" (RFC 3339). Returns the array, or NULL with a reason
 * naming the line in err. */
json_t *capture_jsonl_parse(const char *text, size_t len, size_t max_frames, char *err,
			    size_t errlen);

/* The pcapng packet of a frame, if it has one: an rx.ble.adv frame with its
 * address and advertising data (interface 0, LINKTYPE_BLUETOOTH_LE_LL_WITH_PHDR), an
 * rx.lorawan.uplink or rx.lorawan.join frame with its PHYPayload (interface
 * 1, LINKTYPE_LORATAP). 1: written; 0: the frame has none (another type, or
 * a pseudonymised frame without address or payload). */
int capture_pcapng_frame(struct strbuf *sb, const json_t *frame);
/* The section header and the two interfaces capture_pcapng_frame uses. */
void capture_pcapng_start(struct strbuf *sb);

#endif
