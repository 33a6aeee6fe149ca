// SPDX-License-Identifier: MIT
/*
 * The QoS 0 PUBLISH the MQTT bridge writes itself (mqttpkt.h): the bytes of
 * an MQTT v5 PUBLISH as the broker reads them, the remaining length across
 * the one- to three-byte encodings, and the sizes it refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "mqttpkt.h"

static void test_small_publish_bytes(void **state)
{
	static const uint8_t want[] = {0x30, 0x08, 0x00, 0x03, 'a', '/', 'b', 0x00, 'h', 'i'};
	uint8_t out[sizeof(want)];
	assert_int_equal(mqttpkt_publish0_size(3, 2), sizeof(want));
	assert_int_equal(mqttpkt_publish0(out, "a/b", 3, "hi", 2), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void test_empty_payload(void **state)
{
	static const uint8_t want[] = {0x30, 0x04, 0x00, 0x01, 't', 0x00};
	uint8_t out[sizeof(want)];
	assert_int_equal(mqttpkt_publish0(out, "t", 1, NULL, 0), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* Decode the remaining length the way a broker does. */
static size_t remaining(const uint8_t *p, size_t *hdr)
{
	size_t v = 0, mul = 1, i = 1;
	do {
		v += (p[i] & 0x7f) * mul;
		mul *= 128;
	} while (p[i++] & 0x80);
	*hdr = i;
	return v;
}

static void test_remaining_length_encodings(void **state)
{
	/* payloads around the 127/128 and 16383/16384 boundaries */
	static const size_t payloads[] = {0,	 120,	121,   122,   700,
					  16370, 16375, 16380, 20000, 3000000};
	for (size_t k = 0; k < sizeof(payloads) / sizeof(payloads[0]); k++) {
		size_t len = payloads[k];
		size_t size = mqttpkt_publish0_size(5, len);
		uint8_t *out = malloc(size);
		char *payload = calloc(1, len + 1);
		assert_non_null(out);
		assert_non_null(payload);
		memset(payload, 'x', len);
		assert_int_equal(mqttpkt_publish0(out, "ab/cd", 5, payload, len), size);
		size_t hdr;
		size_t rem = remaining(out, &hdr);
		assert_int_equal(hdr + rem, size);
		assert_int_equal(rem, 2 + 5 + 1 + len);
		assert_int_equal(out[hdr], 0);
		assert_int_equal(out[hdr + 1], 5);
		assert_memory_equal(out + hdr + 2, "ab/cd", 5);
		assert_int_equal(out[hdr + 7], 0); /* property length */
		assert_memory_equal(out + hdr + 8, payload, len);
		free(out);
		free(payload);
	}
}

static void test_impossible_sizes(void **state)
{
	uint8_t out[8];
	assert_int_equal(mqttpkt_publish0_size(65536, 0), 0);
	assert_int_equal(mqttpkt_publish0_size(65535, 0), 1 + 3 + 65538);
	/* the remaining length has at most four bytes: 268435455 */
	assert_int_equal(mqttpkt_publish0_size(1, 268435455 - 4), 1 + 4 + 268435455);
	assert_int_equal(mqttpkt_publish0_size(1, 268435455 - 3), 0);
	assert_int_equal(mqttpkt_publish0(out, "t", 65536, NULL, 0), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_publish_bytes),
		cmocka_unit_test(test_empty_payload),
		cmocka_unit_test(test_remaining_length_encodings),
		cmocka_unit_test(test_impossible_sizes),
	};
	return cmocka_run_group_tests_name("mqttpkt", tests, NULL, NULL);
}
