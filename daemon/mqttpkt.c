#include "mqttpkt.h"

#include <string.h>

#define REMAINING_MAX 268435455u /* four bytes of variable byte integer */

static size_t remaining_len(size_t topic_len, size_t payload_len)
{
	/* topic length, topic, property length (0), payload */
	return 2 + topic_len + 1 + payload_len;
}

static size_t varint_len(size_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

size_t mqttpkt_publish0_size(size_t topic_len, size_t payload_len)
{
	if (topic_len > 65535 || payload_len > REMAINING_MAX)
		return 0;
	size_t rem = remaining_len(topic_len, payload_len);
	if (rem > REMAINING_MAX)
		return 0;
	return 1 + varint_len(rem) + rem;
}

size_t mqttpkt_publish0(uint8_t *out, const char *topic, size_t topic_len, const void *payload,
			size_t payload_len)
{
	size_t size = mqttpkt_publish0_size(topic_len, payload_len);
	if (!size)
		return 0;
	size_t rem = remaining_len(topic_len, payload_len);
	uint8_t *p = out;
	*p++ = 0x30; /* PUBLISH, DUP 0, QoS 0, RETAIN 0 */
	do {
		uint8_t c = rem % 128;
		rem /= 128;
		*p++ = rem ? c | 0x80 : c;
	} while (rem);
	*p++ = (uint8_t)(topic_len >> 8);
	*p++ = (uint8_t)topic_len;
	memcpy(p, topic, topic_len);
	p += topic_len;
	*p++ = 0; /* no properties */
	if (payload_len)
		memcpy(p, payload, payload_len);
	p += payload_len;
	return (size_t)(p - out);
}
