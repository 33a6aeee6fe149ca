// SPDX-License-Identifier: MIT
/*
 * pcapng.c and capture.c: the pcapng blocks (lengths, alignment, byte
 * order), the BLE advertising packet and its CRC (a packet Wireshark
 * accepts), the LoRaTap header, the conversion of frames to packets, and the
 * JSON Lines parser of replay uploads with its limits.
 */
#include <math.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "capture.h"
#include "pcapng.h"
#include "util.h"

static uint32_t le32(const char *p)
{
	const uint8_t *b = (const uint8_t *)p;
	return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t)b[3] << 24;
}

/* Walk the blocks: each is type, length, ..., length; lengths multiple of 4 */
static int count_blocks(const char *buf, size_t len, uint32_t type)
{
	size_t off = 0;
	int n = 0;
	while (off < len) {
		assert_true(off + 12 <= len);
		uint32_t bl = le32(buf + off + 4);
		assert_int_equal(bl % 4, 0);
		assert_true(off + bl <= len);
		assert_int_equal(le32(buf + off + bl - 4), bl);
		if (le32(buf + off) == type)
			n++;
		off += bl;
	}
	assert_int_equal(off, len);
	return n;
}

static void test_pcapng_blocks_are_well_formed(void **state)
{
	struct strbuf sb;
	strbuf_init(&sb, 64);
	pcapng_section(&sb, "labgwd");
	assert_int_equal(le32(sb.buf), 0x0a0d0d0a);
	assert_int_equal(le32(sb.buf + 8), 0x1a2b3c4d);
	pcapng_interface(&sb, PCAPNG_LINKTYPE_LORATAP, "lorawan");
	static const uint8_t data[5] = {1, 2, 3, 4, 5};
	pcapng_packet(&sb, 0, 0x0006612af9696e85ull, data, sizeof(data), "lab1-1");
	pcapng_packet(&sb, 0, 1, data, 4, NULL);
	assert_false(sb.failed);
	assert_int_equal(count_blocks(sb.buf, sb.len, 1), 1);
	assert_int_equal(count_blocks(sb.buf, sb.len, 6), 2);
	/* the first packet: timestamp high and low, lengths, data */
	const char *epb = sb.buf + le32(sb.buf + 4) + le32(sb.buf + le32(sb.buf + 4) + 4);
	assert_int_equal(le32(epb), 6);
	assert_int_equal(le32(epb + 12), 0x0006612a);
	assert_int_equal(le32(epb + 16), 0xf9696e85);
	assert_int_equal(le32(epb + 20), 5);
	assert_int_equal(le32(epb + 24), 5);
	assert_memory_equal(epb + 28, data, 5);
	strbuf_release(&sb);
}

static void test_ble_adv_packet_and_crc(void **state)
{
	/* an advertisement of the sim radio; Wireshark checked its CRC */
	static const uint8_t ad[] = {0x02, 0x01, 0x1a, 0x0a, 0xff, 0x4c, 0x00, 0x10, 0x05,
				     0xfd, 0x7b, 0x0a, 0xbb, 0x77, 0x02, 0x0a, 0x0c};
	static const uint8_t want[] = {0xd6, 0xbe, 0x89, 0x8e, 0x40, 0x17, 0xfd, 0x32,
				       0xe1, 0xdd, 0x47, 0x79, 0x02, 0x01, 0x1a, 0x0a,
				       0xff, 0x4c, 0x00, 0x10, 0x05, 0xfd, 0x7b, 0x0a,
				       0xbb, 0x77, 0x02, 0x0a, 0x0c, 0x4a, 0x39, 0xb7};
	uint8_t pkt[PCAPNG_BLE_PKT_MAX];
	int n = pcapng_ble_adv(pkt, "79:47:dd:e1:32:fd", true, ad, sizeof(ad));
	assert_int_equal(n, sizeof(want));
	assert_memory_equal(pkt, want, sizeof(want));
	/* a public address: TxAdd clear */
	n = pcapng_ble_adv(pkt, "79:47:DD:E1:32:FD", false, ad, 0);
	assert_int_equal(n, 4 + 2 + 6 + 3);
	assert_int_equal(pkt[4], 0x00);
	assert_int_equal(pkt[5], 6);
	/* refused: bad addresses, more than 31 bytes of AD */
	uint8_t big[32] = {0};
	assert_int_equal(pcapng_ble_adv(pkt, "79:47:dd:e1:32", true, ad, 1), -EINVAL);
	assert_int_equal(pcapng_ble_adv(pkt, "79-47-dd-e1-32-fd", true, ad, 1), -EINVAL);
	assert_int_equal(pcapng_ble_adv(pkt, "g9:47:dd:e1:32:fd", true, ad, 1), -EINVAL);
	assert_int_equal(pcapng_ble_adv(pkt, NULL, true, ad, 1), -EINVAL);
	assert_int_equal(pcapng_ble_adv(pkt, "79:47:dd:e1:32:fd", true, big, 32), -EINVAL);
}

static void test_loratap_header(void **state)
{
	uint8_t h[PCAPNG_LORATAP_HDR];
	pcapng_loratap_header(h, 868100000, 125000, 7, -57, 7.5);
	static const uint8_t want[PCAPNG_LORATAP_HDR] = {0, 0, 0,  15, 0x33, 0xbe, 0x27, 0xa0,
							 1, 7, 82, 82, 82,   30,   0x34};
	assert_memory_equal(h, want, sizeof(want));
	/* out-of-range values are clamped, never wrapped */
	pcapng_loratap_header(h, 869525000, 250000, 12, -300, -100.0);
	assert_int_equal(h[8], 2);
	assert_int_equal(h[10], 0);
	assert_int_equal((int8_t)h[13], -128);
	/* an SNR far past int's range, or not a number: clamped, not
	 * converted (a double out of int's range converted is undefined) */
	pcapng_loratap_header(h, 868100000, 125000, 7, -57, 3.4e9);
	assert_int_equal((int8_t)h[13], 127);
	pcapng_loratap_header(h, 868100000, 125000, 7, -57, -3.4e9);
	assert_int_equal((int8_t)h[13], -128);
	pcapng_loratap_header(h, 868100000, 125000, 7, -57, NAN);
	assert_int_equal((int8_t)h[13], -128);
}

static json_t *frame(const char *text)
{
	json_error_t je;
	json_t *f = json_loads(text, 0, &je);
	assert_non_null(f);
	return f;
}

static void test_frames_to_packets(void **state)
{
	struct strbuf sb;
	strbuf_init(&sb, 64);
	capture_pcapng_start(&sb);
	size_t start = sb.len;
	json_t *ble = frame("{\"type\":\"rx.ble.adv\",\"time\":\"2026-11-26T16:36:11.705230Z\","
			    "\"id\":\"lab1-01\",\"sig\":{\"rssi\":-51},\"payload\":\"AgEG\","
			    "\"data\":{\"addr\":\"e5:e1:24:1a:d4:c1\",\"addr_type\":\"random\"}}");
	json_t *lora = frame(
		"{\"type\":\"rx.lorawan.uplink\",\"time\":\"2026-11-26T16:36:11Z\","
		"\"sig\":{\"rssi\":-106,\"snr\":-2.4,\"freq_hz\":868300000,\"sf\":9,"
		"\"bw_hz\":125000},\"payload\":\"QKE/3ieAlgEBrqixAA0rtvZ4XwTzyWcTX8dwUA==\"}");
	/* pseudonymised (no address), other techs, broken: no packet */
	json_t *obs = frame("{\"type\":\"rx.ble.adv\",\"time\":\"2026-11-26T16:36:11Z\","
			    "\"payload\":\"AgEG\",\"data\":{}}");
	json_t *wlan = frame("{\"type\":\"rx.wlan.station\",\"time\":\"2026-11-26T16:36:11Z\"}");
	json_t *bad = frame("{\"type\":\"rx.lorawan.uplink\",\"time\":\"yesterday\","
			    "\"payload\":\"QKE=\"}");
	json_t *nopay = frame("{\"type\":\"rx.lorawan.join\",\"time\":\"2026-11-26T16:36:11Z\"}");
	json_t *badsf = frame("{\"type\":\"rx.lorawan.join\",\"time\":\"2026-11-26T16:36:11Z\","
			      "\"payload\":\"QKE=\",\"sig\":{\"sf\":99}}");
	assert_int_equal(capture_pcapng_frame(&sb, ble), 1);
	assert_int_equal(capture_pcapng_frame(&sb, lora), 1);
	size_t after = sb.len;
	assert_int_equal(capture_pcapng_frame(&sb, obs), 0);
	assert_int_equal(capture_pcapng_frame(&sb, wlan), 0);
	assert_int_equal(capture_pcapng_frame(&sb, bad), 0);
	assert_int_equal(capture_pcapng_frame(&sb, nopay), 0);
	assert_int_equal(capture_pcapng_frame(&sb, badsf), 0);
	assert_int_equal(sb.len, after);
	assert_int_equal(count_blocks(sb.buf, sb.len, 6), 2);
	/* the BLE packet: pseudo-header, then the access address */
	const char *epb = sb.buf + start;
	assert_int_equal(le32(epb + 8), 0); /* interface 0 */
	assert_int_equal((int8_t)epb[28 + 1], -51);
	assert_int_equal((uint8_t)epb[28 + PCAPNG_BLE_PHDR], 0xd6);
	epb += le32(epb + 4);
	assert_int_equal(le32(epb + 8), 1); /* interface 1: LoRaTap */
	assert_int_equal(le32(epb + 20), PCAPNG_LORATAP_HDR + 28);
	assert_int_equal((uint8_t)epb[28 + PCAPNG_LORATAP_HDR], 0x40); /* MHDR */
	json_decref(ble);
	json_decref(lora);
	json_decref(obs);
	json_decref(wlan);
	json_decref(bad);
	json_decref(nopay);
	json_decref(badsf);
	strbuf_release(&sb);
}

#define REC(t)                                                                                     \
	"{\"topic\":\"labgw/v1/sbx/a/rx/ble/lab1/sim0/x\",\"frame\":{\"type\":\"rx.ble.adv\","     \
	"\"time\":\"" t "\"}}"

static void expect_refused(const char *text, size_t max, const char *why)
{
	char err[160] = "";
	json_t *a = capture_jsonl_parse(text, strlen(text), max, err, sizeof(err));
	assert_null(a);
	if (!strstr(err, why))
		fail_msg("for %s: \"%s\" does not say \"%s\"", text, err, why);
}

static void test_jsonl_parse(void **state)
{
	char err[160];
	const char *ok = REC("2026-11-26T16:36:11Z") "\n\n  \r\n" REC("2026-11-26T16:36:12.5Z");
	json_t *a = capture_jsonl_parse(ok, strlen(ok), 10, err, sizeof(err));
	assert_non_null(a);
	assert_int_equal(json_array_size(a), 2);
	json_t *r = json_array_get(a, 1);
	assert_string_equal(json_string_value(json_object_get(r, "topic")),
			    "labgw/v1/sbx/a/rx/ble/lab1/sim0/x");
	assert_int_equal(
		json_integer_value(json_object_get(r, "time_us")) -
			json_integer_value(json_object_get(json_array_get(a, 0), "time_us")),
		1500000);
	json_decref(a);
	/* a last line without newline, and an empty input */
	a = capture_jsonl_parse("", 0, 10, err, sizeof(err));
	assert_int_equal(json_array_size(a), 0);
	json_decref(a);

	expect_refused(REC("2026-11-26T16:36:11Z") "\nnot json", 10, "line 2: not JSON");
	expect_refused("[1,2]", 10, "line 1: a record is");
	expect_refused("{\"topic\":\"a/+/"
		       "b\",\"frame\":{\"type\":\"t\",\"time\":\"2026-11-26T16:36:11Z\"}}",
		       10, "line 1");
	expect_refused("{\"topic\":\"a\",\"frame\":{\"time\":\"2026-11-26T16:36:11Z\"}}", 10,
		       "line 1");
	expect_refused("{\"topic\":\"a\",\"frame\":{\"type\":\"t\",\"time\":\"soon\"}}", 10,
		       "line 1");
	expect_refused("{\"topic\":\"a\",\"topic\":\"b\"}", 10, "line 1: not JSON");
	expect_refused(REC("2026-11-26T16:36:12Z") "\n" REC("2026-11-26T16:36:11Z"), 10,
		       "line 2: frames must be in time order");
	expect_refused(REC("2026-11-26T16:36:11Z") "\n" REC("2026-11-26T16:36:11Z") "\n" REC(
			       "2026-11-26T16:36:11Z"),
		       2, "more than 2 frames");
	/* a line beyond the limit is refused before it is parsed */
	size_t n = CAPTURE_LINE_MAX + 2;
	char *longline = malloc(n + 1);
	memset(longline, ' ', n);
	longline[0] = '{';
	longline[n - 1] = '}';
	longline[n] = '\0';
	expect_refused(longline, 10, "line 1: longer than");
	free(longline);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pcapng_blocks_are_well_formed),
		cmocka_unit_test(test_ble_adv_packet_and_crc),
		cmocka_unit_test(test_loratap_header),
		cmocka_unit_test(test_frames_to_packets),
		cmocka_unit_test(test_jsonl_parse),
	};
	return cmocka_run_group_tests_name("capture", tests, NULL, NULL);
}
