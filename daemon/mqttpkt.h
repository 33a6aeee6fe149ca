/* MQTT v5 packets the bridge writes itself (mqtt.c): a QoS 0 PUBLISH
 * without properties, so that frames go out in one write per loop turn
 * instead of libmosquitto's packet allocation and write per message. Pure:
 * no I/O, no libmosquitto. */
#ifndef LABGW_MQTTPKT_H
#define LABGW_MQTTPKT_H

#include <stddef.h>
#include <stdint.h>

/* The size of the PUBLISH of mqttpkt_publish0(), or 0 when the packet is
 * impossible (topic longer than 65535 bytes, remaining length over the
 * MQTT maximum of 268435455). */
size_t mqttpkt_publish0_size(size_t topic_len, size_t payload_len);

/* Write a QoS 0, not retained, MQTT v5 PUBLISH of payload to topic (no
 * properties, no packet id) at out, which has room for
 * mqttpkt_publish0_size() bytes; returns that size (0: impossible). The
 * topic is not checked here (the caller checks it as a topic name). */
size_t mqttpkt_publish0(uint8_t *out, const char *topic, size_t topic_len, const void *payload,
			size_t payload_len);

#endif
