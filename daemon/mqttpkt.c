#include "mqttpkt.h"

#include <string.h>

/* ---- writing ---- */

static size_t varint_len(size_t v)
{
	return v < 128 ? 1 : v < 16384 ? 2 : v < 2097152 ? 3 : 4;
}

static uint8_t *put_varint(uint8_t *p, size_t v)
{
	do {
		uint8_t c = v % 128;
		v /= 128;
		*p++ = v ? c | 0x80 : c;
	} while (v);
	return p;
}

static uint8_t *put_u16(uint8_t *p, uint16_t v)
{
	*p++ = (uint8_t)(v >> 8);
	*p++ = (uint8_t)v;
	return p;
}

static uint8_t *put_str(uint8_t *p, const char *s, size_t len)
{
	p = put_u16(p, (uint16_t)len);
	if (len)
		memcpy(p, s, len);
	return p + len;
}

static size_t publish_remaining(size_t topic_len, size_t payload_len, int qos)
{
	/* topic length, topic, packet id (QoS 1), property length (0), payload */
	return 2 + topic_len + (qos ? 2 : 0) + 1 + payload_len;
}

size_t mqttpkt_publish_size(size_t topic_len, size_t payload_len, int qos)
{
	if (topic_len > 65535 || payload_len > MQTTPKT_REMAINING_MAX || qos < 0 || qos > 1)
		return 0;
	size_t rem = publish_remaining(topic_len, payload_len, qos);
	if (rem > MQTTPKT_REMAINING_MAX)
		return 0;
	return 1 + varint_len(rem) + rem;
}

size_t mqttpkt_publish(uint8_t *out, const char *topic, size_t topic_len, const void *payload,
		       size_t payload_len, int qos, uint16_t id, bool dup)
{
	size_t size = mqttpkt_publish_size(topic_len, payload_len, qos);
	if (!size || (qos && !id))
		return 0;
	uint8_t *p = out;
	/* PUBLISH, RETAIN 0 */
	*p++ = (uint8_t)(0x30 | (qos ? 0x02 : 0) | (qos && dup ? 0x08 : 0));
	p = put_varint(p, publish_remaining(topic_len, payload_len, qos));
	p = put_str(p, topic, topic_len);
	if (qos)
		p = put_u16(p, id);
	*p++ = 0; /* no properties */
	if (payload_len)
		memcpy(p, payload, payload_len);
	p += payload_len;
	return (size_t)(p - out);
}

size_t mqttpkt_connect(uint8_t *out, size_t cap, const struct mqttpkt_connect *c)
{
	const char *id = c->client_id ? c->client_id : "";
	size_t id_len = strlen(id);
	size_t user_len = c->username ? strlen(c->username) : 0;
	size_t pass_len = c->username && c->password ? strlen(c->password) : 0;
	if (id_len > 65535 || user_len > 65535 || pass_len > 65535)
		return 0;
	size_t props = c->session_expiry_s ? 5 : 0; /* 0x11 and four bytes */
	size_t rem = 6 /* "MQTT" */ + 1 /* level */ + 1 /* flags */ + 2 /* keepalive */ +
		     varint_len(props) + props + 2 + id_len;
	if (c->username)
		rem += 2 + user_len;
	if (c->username && c->password)
		rem += 2 + pass_len;
	size_t size = 1 + varint_len(rem) + rem;
	if (size > cap)
		return 0;
	uint8_t flags = c->clean_start ? 0x02 : 0;
	if (c->username)
		flags |= 0x80;
	if (c->username && c->password)
		flags |= 0x40;
	uint8_t *p = out;
	*p++ = 0x10;
	p = put_varint(p, rem);
	p = put_str(p, "MQTT", 4);
	*p++ = 5;
	*p++ = flags;
	p = put_u16(p, c->keepalive_s);
	p = put_varint(p, props);
	if (props) {
		*p++ = 0x11;
		*p++ = (uint8_t)(c->session_expiry_s >> 24);
		*p++ = (uint8_t)(c->session_expiry_s >> 16);
		*p++ = (uint8_t)(c->session_expiry_s >> 8);
		*p++ = (uint8_t)c->session_expiry_s;
	}
	p = put_str(p, id, id_len);
	if (c->username)
		p = put_str(p, c->username, user_len);
	if (c->username && c->password)
		p = put_str(p, c->password, pass_len);
	return (size_t)(p - out);
}

size_t mqttpkt_pingreq(uint8_t *out)
{
	out[0] = 0xc0;
	out[1] = 0;
	return 2;
}

size_t mqttpkt_disconnect(uint8_t *out)
{
	out[0] = 0xe0;
	out[1] = 0; /* reason 0, normal disconnection */
	return 2;
}

/* ---- reading ---- */

/* A variable byte integer at buf: its length in bytes (1-4) with *v set, 0
 * when more bytes are needed, -1 when malformed (a fifth byte). */
static int get_varint(const uint8_t *buf, size_t len, uint32_t *v)
{
	uint32_t val = 0;
	*v = 0;
	for (int i = 0; i < 4; i++) {
		if ((size_t)i >= len)
			return 0;
		val |= (uint32_t)(buf[i] & 0x7f) << (7 * i);
		if (!(buf[i] & 0x80)) {
			*v = val;
			return i + 1;
		}
	}
	return -1;
}

long mqttpkt_next(const uint8_t *buf, size_t len, size_t max, struct mqttpkt_in *p)
{
	if (len < 2)
		return 0;
	uint32_t rem = 0;
	int n = get_varint(buf + 1, len - 1, &rem);
	if (n < 0)
		return -1;
	if (rem > max)
		return -1;
	if (n == 0)
		return 0;
	size_t total = 1 + (size_t)n + rem;
	if (len < total)
		return 0;
	p->type = buf[0] >> 4;
	p->flags = buf[0] & 0x0f;
	p->body = buf + 1 + n;
	p->len = rem;
	return (long)total;
}

/* The property length at body + at, which must cover the rest of the body
 * exactly: the size of the length field (1-4) with *plen set, or -1. */
static int props_len(const struct mqttpkt_in *p, size_t at, uint32_t *plen)
{
	int k = get_varint(p->body + at, p->len - at, plen);
	return k > 0 && *plen == p->len - at - (size_t)k ? k : -1;
}

static uint32_t get_u32(const uint8_t *b)
{
	return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The size of the value of property `id` at b (n bytes left), or -1 for an
 * unknown property or one that runs past the end. */
static long prop_value_len(uint8_t id, const uint8_t *b, size_t n)
{
	switch (id) {
	case 0x01: case 0x17: case 0x19: case 0x24: case 0x25: case 0x28: case 0x29: case 0x2a:
		return n >= 1 ? 1 : -1;
	case 0x13: case 0x21: case 0x22: case 0x23:
		return n >= 2 ? 2 : -1;
	case 0x02: case 0x11: case 0x18: case 0x27:
		return n >= 4 ? 4 : -1;
	case 0x0b: {
		uint32_t v;
		int k = get_varint(b, n, &v);
		return k > 0 ? k : -1;
	}
	case 0x03: case 0x08: case 0x09: case 0x12: case 0x15: case 0x16: case 0x1a: case 0x1c:
	case 0x1f: {
		if (n < 2)
			return -1;
		size_t l = 2 + ((size_t)b[0] << 8 | b[1]);
		return l <= n ? (long)l : -1;
	}
	case 0x26: { /* a pair of strings */
		if (n < 2)
			return -1;
		size_t l1 = 2 + ((size_t)b[0] << 8 | b[1]);
		if (l1 + 2 > n)
			return -1;
		size_t l2 = 2 + ((size_t)b[l1] << 8 | b[l1 + 1]);
		return l1 + l2 <= n ? (long)(l1 + l2) : -1;
	}
	default:
		return -1;
	}
}

int mqttpkt_connack(const struct mqttpkt_in *p, struct mqttpkt_connack *c)
{
	memset(c, 0, sizeof(*c));
	c->receive_max = 65535;
	c->max_qos = 2;
	if (p->type != 2 || p->flags != 0 || p->len < 2 || (p->body[0] & 0xfe))
		return -1;
	c->session_present = p->body[0] & 1;
	c->reason = p->body[1];
	if (p->len == 2)
		return 0;
	uint32_t plen;
	int k = props_len(p, 2, &plen);
	if (k < 0)
		return -1;
	const uint8_t *q = p->body + 2 + k, *end = q + plen;
	while (q < end) {
		uint8_t id = *q++;
		long vl = prop_value_len(id, q, (size_t)(end - q));
		if (vl < 0)
			return -1;
		switch (id) {
		case 0x21:
			c->receive_max = (uint16_t)(q[0] << 8 | q[1]);
			if (!c->receive_max)
				return -1; /* a protocol error */
			break;
		case 0x27:
			c->max_packet = get_u32(q);
			if (!c->max_packet)
				return -1;
			break;
		case 0x24:
			if (q[0] > 1)
				return -1;
			c->max_qos = q[0];
			break;
		case 0x13:
			c->server_keepalive = (uint16_t)(q[0] << 8 | q[1]);
			c->has_server_keepalive = true;
			break;
		default:
			break;
		}
		q += vl;
	}
	return 0;
}

int mqttpkt_puback(const struct mqttpkt_in *p, uint16_t *id, uint8_t *reason)
{
	if (p->type != 4 || p->flags != 0 || p->len < 2)
		return -1;
	*id = (uint16_t)(p->body[0] << 8 | p->body[1]);
	*reason = p->len > 2 ? p->body[2] : 0;
	uint32_t plen;
	if (p->len > 3 && props_len(p, 3, &plen) < 0)
		return -1;
	return *id ? 0 : -1;
}

int mqttpkt_disconnect_reason(const struct mqttpkt_in *p, uint8_t *reason)
{
	if (p->type != 14 || p->flags != 0)
		return -1;
	*reason = p->len ? p->body[0] : 0;
	uint32_t plen;
	if (p->len > 1 && props_len(p, 1, &plen) < 0)
		return -1;
	return 0;
}
