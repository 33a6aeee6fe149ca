// SPDX-License-Identifier: MIT
/*
 * The packets of the MQTT bridge's frames link (mqttpkt.h): the bytes of
 * the MQTT v5 PUBLISH (QoS 0 and 1), CONNECT, PINGREQ and DISCONNECT it
 * writes as a broker reads them, the remaining length across the one- to
 * three-byte encodings, the sizes it refuses; and the reader of what a
 * broker sends back (CONNACK with properties, PUBACK, PINGRESP,
 * DISCONNECT), split at every byte, malformed, and over its size limit.
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
	assert_int_equal(mqttpkt_publish_size(3, 2, 0), sizeof(want));
	assert_int_equal(mqttpkt_publish(out, "a/b", 3, "hi", 2, 0, 0, false), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

static void test_empty_payload(void **state)
{
	static const uint8_t want[] = {0x30, 0x04, 0x00, 0x01, 't', 0x00};
	uint8_t out[sizeof(want)];
	assert_int_equal(mqttpkt_publish(out, "t", 1, NULL, 0, 0, 0, false), sizeof(want));
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
		size_t size = mqttpkt_publish_size(5, len, 0);
		uint8_t *out = malloc(size);
		char *payload = calloc(1, len + 1);
		assert_non_null(out);
		assert_non_null(payload);
		memset(payload, 'x', len);
		assert_int_equal(mqttpkt_publish(out, "ab/cd", 5, payload, len, 0, 0, false), size);
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
	assert_int_equal(mqttpkt_publish_size(65536, 0, 0), 0);
	assert_int_equal(mqttpkt_publish_size(65535, 0, 0), 1 + 3 + 65538);
	/* the remaining length has at most four bytes: 268435455 */
	assert_int_equal(mqttpkt_publish_size(1, 268435455 - 4, 0), 1 + 4 + 268435455);
	assert_int_equal(mqttpkt_publish_size(1, 268435455 - 3, 0), 0);
	assert_int_equal(mqttpkt_publish(out, "t", 65536, NULL, 0, 0, 0, false), 0);
}

static void test_qos1_publish_bytes(void **state)
{
	static const uint8_t want[] = {0x32, 0x0a, 0x00, 0x03, 'a', '/', 'b', 0x12,
				       0x34, 0x00, 'h',	 'i'};
	uint8_t out[sizeof(want)];
	assert_int_equal(mqttpkt_publish_size(3, 2, 1), sizeof(want));
	assert_int_equal(mqttpkt_publish(out, "a/b", 3, "hi", 2, 1, 0x1234, false), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	/* a resend carries DUP */
	assert_int_equal(mqttpkt_publish(out, "a/b", 3, "hi", 2, 1, 0x1234, true), sizeof(want));
	assert_int_equal(out[0], 0x3a);
	/* QoS 1 needs a packet id; QoS 0 never has DUP; no QoS 2 */
	assert_int_equal(mqttpkt_publish(out, "a/b", 3, "hi", 2, 1, 0, false), 0);
	assert_int_equal(mqttpkt_publish(out, "a/b", 3, "hi", 2, 0, 0, true), 10);
	assert_int_equal(out[0], 0x30);
	assert_int_equal(mqttpkt_publish_size(3, 2, 2), 0);
}

static void test_connect_bytes(void **state)
{
	static const uint8_t want[] = {
		0x10, 0x1e,			       /* CONNECT, remaining 30 */
		0x00, 0x04, 'M', 'Q', 'T', 'T', 0x05,  /* MQTT v5 */
		0xc0,				       /* username, password, clean start 0 */
		0x00, 0x1e,			       /* keepalive 30 */
		0x05, 0x11, 0x00, 0x00, 0x0e, 0x10,    /* session expiry 3600 */
		0x00, 0x02, 'i', 'd',		       /* client id */
		0x00, 0x02, 'u', 's',		       /* username */
		0x00, 0x04, 'p', 'a', 's', 's'	       /* password */
	};
	uint8_t out[64];
	struct mqttpkt_connect c = {.client_id = "id",
				    .username = "us",
				    .password = "pass",
				    .keepalive_s = 30,
				    .session_expiry_s = 3600};
	size_t n = mqttpkt_connect(out, sizeof(out), &c);
	assert_int_equal(n, 2 + 30);
	assert_memory_equal(out, want, n);
	/* no room: nothing */
	assert_int_equal(mqttpkt_connect(out, n - 1, &c), 0);
	/* clean start, no login, no expiry */
	struct mqttpkt_connect c2 = {.client_id = "id", .clean_start = true};
	static const uint8_t want2[] = {0x10, 0x0f, 0x00, 0x04, 'M', 'Q', 'T', 'T',
					0x05, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02, 'i',
					'd'};
	assert_int_equal(mqttpkt_connect(out, sizeof(out), &c2), sizeof(want2));
	assert_memory_equal(out, want2, sizeof(want2));
	/* a password without a username is not sent */
	c2.password = "x";
	assert_int_equal(mqttpkt_connect(out, sizeof(out), &c2), sizeof(want2));
	uint8_t two[2];
	assert_int_equal(mqttpkt_pingreq(two), 2);
	assert_int_equal(two[0], 0xc0);
	assert_int_equal(two[1], 0);
	assert_int_equal(mqttpkt_disconnect(two), 2);
	assert_int_equal(two[0], 0xe0);
	assert_int_equal(two[1], 0);
}

static void test_next_splits_and_limits(void **state)
{
	/* PUBACK id 7 reason 0x10, then PINGRESP */
	static const uint8_t in[] = {0x40, 0x03, 0x00, 0x07, 0x10, 0xd0, 0x00};
	struct mqttpkt_in p;
	/* every prefix short of the first packet asks for more */
	for (size_t k = 0; k < 5; k++)
		assert_int_equal(mqttpkt_next(in, k, 1024, &p), 0);
	assert_int_equal(mqttpkt_next(in, sizeof(in), 1024, &p), 5);
	assert_int_equal(p.type, 4);
	assert_int_equal(p.flags, 0);
	assert_int_equal(p.len, 3);
	uint16_t id;
	uint8_t reason;
	assert_int_equal(mqttpkt_puback(&p, &id, &reason), 0);
	assert_int_equal(id, 7);
	assert_int_equal(reason, 0x10);
	assert_int_equal(mqttpkt_next(in + 5, 2, 1024, &p), 2);
	assert_int_equal(p.type, 13);
	assert_int_equal(p.len, 0);
	/* over the limit, and a fifth length byte: malformed */
	static const uint8_t big[] = {0x40, 0x80, 0x08}; /* 1024 */
	assert_int_equal(mqttpkt_next(big, sizeof(big), 1023, &p), -1);
	assert_int_equal(mqttpkt_next(big, sizeof(big), 1024, &p), 0);
	static const uint8_t five[] = {0x40, 0xff, 0xff, 0xff, 0xff, 0x7f};
	assert_int_equal(mqttpkt_next(five, sizeof(five), 1u << 30, &p), -1);
	/* a PUBACK of two bytes has reason 0; packet id 0 is malformed */
	static const uint8_t short_ack[] = {0x40, 0x02, 0x01, 0x02};
	assert_int_equal(mqttpkt_next(short_ack, sizeof(short_ack), 64, &p), 4);
	assert_int_equal(mqttpkt_puback(&p, &id, &reason), 0);
	assert_int_equal(id, 0x102);
	assert_int_equal(reason, 0);
	static const uint8_t zero_id[] = {0x40, 0x02, 0x00, 0x00};
	assert_int_equal(mqttpkt_next(zero_id, sizeof(zero_id), 64, &p), 4);
	assert_int_equal(mqttpkt_puback(&p, &id, &reason), -1);
	/* a PUBACK with properties that do not add up */
	static const uint8_t bad_props[] = {0x40, 0x05, 0x00, 0x01, 0x00, 0x05, 0x1f};
	assert_int_equal(mqttpkt_next(bad_props, sizeof(bad_props), 64, &p), 7);
	assert_int_equal(mqttpkt_puback(&p, &id, &reason), -1);
}

static void test_connack_properties(void **state)
{
	/* session present, accepted; receive maximum 20, maximum QoS 1,
	 * maximum packet size 1000, a reason string, a user property,
	 * server keep alive 60, topic alias maximum 10 */
	static const uint8_t in[] = {0x20, 0x1f, 0x01, 0x00, 0x1c, 0x21, 0x00, 0x14, 0x24,
				     0x01, 0x27, 0x00, 0x00, 0x03, 0xe8, 0x1f, 0x00, 0x02,
				     'o',  'k',	 0x26, 0x00, 0x01, 'k',	 0x00, 0x01, 'v',
				     0x13, 0x00, 0x3c, 0x22, 0x00, 0x0a};
	struct mqttpkt_in p;
	assert_int_equal(mqttpkt_next(in, sizeof(in), 1024, &p), sizeof(in));
	struct mqttpkt_connack c;
	assert_int_equal(mqttpkt_connack(&p, &c), 0);
	assert_true(c.session_present);
	assert_int_equal(c.reason, 0);
	assert_int_equal(c.receive_max, 20);
	assert_int_equal(c.max_qos, 1);
	assert_int_equal(c.max_packet, 1000);
	assert_true(c.has_server_keepalive);
	assert_int_equal(c.server_keepalive, 60);
	/* defaults: no properties */
	static const uint8_t plain[] = {0x20, 0x03, 0x00, 0x87, 0x00};
	assert_int_equal(mqttpkt_next(plain, sizeof(plain), 1024, &p), sizeof(plain));
	assert_int_equal(mqttpkt_connack(&p, &c), 0);
	assert_false(c.session_present);
	assert_int_equal(c.reason, 0x87);
	assert_int_equal(c.receive_max, 65535);
	assert_int_equal(c.max_qos, 2);
	assert_int_equal(c.max_packet, 0);
	assert_false(c.has_server_keepalive);
	/* malformed: an unknown property, a string past the end, receive
	 * maximum 0, reserved flag bits, the wrong packet type */
	static const uint8_t unknown[] = {0x20, 0x05, 0x00, 0x00, 0x02, 0x7f, 0x00};
	static const uint8_t past[] = {0x20, 0x06, 0x00, 0x00, 0x03, 0x1f, 0x00, 0x09};
	static const uint8_t zero_rm[] = {0x20, 0x06, 0x00, 0x00, 0x03, 0x21, 0x00, 0x00};
	static const uint8_t flags[] = {0x20, 0x03, 0x02, 0x00, 0x00};
	static const uint8_t puback[] = {0x40, 0x03, 0x00, 0x01, 0x00};
	const uint8_t *bad[] = {unknown, past, zero_rm, flags, puback};
	size_t lens[] = {sizeof(unknown), sizeof(past), sizeof(zero_rm), sizeof(flags),
			 sizeof(puback)};
	for (size_t k = 0; k < 5; k++) {
		assert_int_equal(mqttpkt_next(bad[k], lens[k], 1024, &p), (long)lens[k]);
		assert_int_equal(mqttpkt_connack(&p, &c), -1);
	}
}

static void test_disconnect_reason(void **state)
{
	struct mqttpkt_in p;
	uint8_t reason = 0xff;
	static const uint8_t none[] = {0xe0, 0x00};
	assert_int_equal(mqttpkt_next(none, sizeof(none), 64, &p), 2);
	assert_int_equal(mqttpkt_disconnect_reason(&p, &reason), 0);
	assert_int_equal(reason, 0);
	static const uint8_t takeover[] = {0xe0, 0x02, 0x8e, 0x00};
	assert_int_equal(mqttpkt_next(takeover, sizeof(takeover), 64, &p), 4);
	assert_int_equal(mqttpkt_disconnect_reason(&p, &reason), 0);
	assert_int_equal(reason, 0x8e);
	static const uint8_t bad[] = {0xe0, 0x02, 0x8e, 0x05};
	assert_int_equal(mqttpkt_next(bad, sizeof(bad), 64, &p), 4);
	assert_int_equal(mqttpkt_disconnect_reason(&p, &reason), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_small_publish_bytes),
		cmocka_unit_test(test_empty_payload),
		cmocka_unit_test(test_remaining_length_encodings),
		cmocka_unit_test(test_impossible_sizes),
		cmocka_unit_test(test_qos1_publish_bytes),
		cmocka_unit_test(test_connect_bytes),
		cmocka_unit_test(test_next_splits_and_limits),
		cmocka_unit_test(test_connack_properties),
		cmocka_unit_test(test_disconnect_reason),
	};
	return cmocka_run_group_tests_name("mqttpkt", tests, NULL, NULL);
}
