/* MQTT v5 packets of the bridge's frames link (mqtt.c), which carries the
 * frames on a connection of its own, written and read by labgwd instead of
 * libmosquitto (whose allocation, write per PUBLISH and byte-wise reads per
 * PUBACK were most of the bridge's cost): the packets it writes (CONNECT,
 * PUBLISH at QoS 0 and 1, PINGREQ, DISCONNECT) and a reader for those a
 * broker sends such a client (CONNACK, PUBACK, PINGRESP, DISCONNECT). Pure:
 * no I/O, no libmosquitto. */
#ifndef LABGW_MQTTPKT_H
#define LABGW_MQTTPKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MQTTPKT_REMAINING_MAX 268435455u /* four bytes of variable byte integer */

/* ---- writing ---- */

/* The size of a PUBLISH without properties (qos 0 or 1), or 0 when the
 * packet is impossible (topic longer than 65535 bytes, remaining length
 * over the MQTT maximum of 268435455). */
size_t mqttpkt_publish_size(size_t topic_len, size_t payload_len, int qos);

/* Write a not retained MQTT v5 PUBLISH of payload to topic (no properties;
 * qos 1: packet id `id`, `dup` the DUP flag of a resend) at out, which has
 * room for mqttpkt_publish_size() bytes; returns that size (0: impossible).
 * The topic is not checked here (the caller checks it as a topic name). */
size_t mqttpkt_publish(uint8_t *out, const char *topic, size_t topic_len, const void *payload,
		       size_t payload_len, int qos, uint16_t id, bool dup);

struct mqttpkt_connect {
	const char *client_id;
	const char *username; /* NULL: none */
	const char *password; /* NULL: none (only with a username) */
	uint16_t keepalive_s;
	bool clean_start;
	uint32_t session_expiry_s; /* 0: no property (the session ends with the link) */
};

/* Write an MQTT v5 CONNECT (no will) at out of cap bytes: its size, or 0
 * when it does not fit or a string is longer than 65535 bytes. */
size_t mqttpkt_connect(uint8_t *out, size_t cap, const struct mqttpkt_connect *c);

/* PINGREQ and DISCONNECT (normal disconnection): two bytes at out. */
size_t mqttpkt_pingreq(uint8_t *out);
size_t mqttpkt_disconnect(uint8_t *out);

/* ---- reading ---- */

struct mqttpkt_in {
	uint8_t type;	     /* the high four bits of the first byte: 2 CONNACK, 4 PUBACK, ... */
	uint8_t flags;	     /* the low four bits */
	const uint8_t *body; /* the variable header and payload, in the caller's buffer */
	size_t len;
};

/* The packet at the start of buf (len bytes): its size (> 0) with *p set,
 * 0 when more bytes are needed, -1 when it is malformed or its remaining
 * length is over `max` (the reader's size limit). */
long mqttpkt_next(const uint8_t *buf, size_t len, size_t max, struct mqttpkt_in *p);

struct mqttpkt_connack {
	bool session_present;
	uint8_t reason;		 /* 0: accepted */
	uint16_t receive_max;	 /* 65535 when the broker sends none */
	uint32_t max_packet;	 /* 0: no limit */
	uint8_t max_qos;	 /* 2 when the broker sends none */
	uint16_t server_keepalive; /* 0: none; else the keepalive to use */
	bool has_server_keepalive;
};

/* Decode a CONNACK's body: 0, or -1 when malformed. */
int mqttpkt_connack(const struct mqttpkt_in *p, struct mqttpkt_connack *c);

/* Decode a PUBACK: its packet id and reason code (0 when absent); 0, or -1
 * when malformed. */
int mqttpkt_puback(const struct mqttpkt_in *p, uint16_t *id, uint8_t *reason);

/* Decode a DISCONNECT's reason code (0 when absent); 0, or -1 when
 * malformed. */
int mqttpkt_disconnect_reason(const struct mqttpkt_in *p, uint8_t *reason);

#endif
