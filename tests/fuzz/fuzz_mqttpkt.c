/* libFuzzer target: what a broker sends the bridge's frames link
 * (daemon/mqttpkt.c): the input is a byte stream, split into packets as
 * the link splits what it reads (size limit FUZZ_MAX), each decoded as the
 * link decodes it. Checks: a packet never reaches past the input nor its
 * limit, and what the link writes itself reads back. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mqttpkt.h"

#define FUZZ_MAX 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;
	while (off < size) {
		struct mqttpkt_in p;
		long k = mqttpkt_next(data + off, size - off, FUZZ_MAX, &p);
		if (k <= 0)
			break;
		if ((size_t)k > size - off || p.len > FUZZ_MAX ||
		    p.body + p.len != data + off + (size_t)k)
			__builtin_trap();
		struct mqttpkt_connack c;
		uint16_t id;
		uint8_t reason;
		switch (p.type) {
		case 2:
			(void)mqttpkt_connack(&p, &c);
			break;
		case 4:
			if (mqttpkt_puback(&p, &id, &reason) == 0 && !id)
				__builtin_trap();
			break;
		case 14:
			(void)mqttpkt_disconnect_reason(&p, &reason);
			break;
		default:
			break;
		}
		off += (size_t)k;
	}
	/* the input as a topic and payload of a QoS 1 PUBLISH reads back */
	static uint8_t out[FUZZ_MAX + 512 + 16];
	size_t tlen = size / 3 < 512 ? size / 3 : 512;
	size_t plen = size - tlen < FUZZ_MAX ? size - tlen : FUZZ_MAX;
	size_t n = mqttpkt_publish(out, (const char *)data, tlen, data + tlen, plen, 1, 0x4242,
				   size & 1);
	if (n != mqttpkt_publish_size(tlen, plen, 1))
		__builtin_trap();
	struct mqttpkt_in p;
	if (mqttpkt_next(out, n, sizeof(out), &p) != (long)n || p.type != 3 ||
	    (p.flags & 0x06) != 0x02 || p.len != 2 + tlen + 2 + 1 + plen ||
	    memcmp(p.body + 2 + tlen + 3, data + tlen, plen) != 0)
		__builtin_trap();
	return 0;
}
