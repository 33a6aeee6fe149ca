/* The MQTT bridge (DESIGN §7): labgwd as a libmosquitto client (MQTT v5) of a
 * broker, on the daemon's loop: the client socket is watched with uv_poll
 * (re-registered after every reconnect), keepalive runs from a loop timer,
 * no mosquitto thread. It publishes every bus message (frames under
 * labgw/v1/adm/..., retained states under labgw/v1/gw/...), keeps a last will
 * "offline" on the gateway state, and serves transmit requests and req/{op}
 * requests published by clients through the policy gate, with the sandbox
 * named by the topic (the broker's ACL checked the publisher's key). Its
 * connection also carries the dynamic-security commands of dynsec.c. */
#ifndef LABGW_MQTT_H
#define LABGW_MQTT_H

#include <stdbool.h>
#include <stdint.h>

struct labgwd;
struct mqtt_bridge;

struct mqtt_stats {
	bool connected;
	uint64_t connects;    /* successful CONNACKs */
	uint64_t disconnects; /* links lost */
	uint64_t published;   /* messages handed to the broker */
	uint64_t dropped;     /* messages dropped: queue full or not connected */
	uint64_t queued;      /* messages waiting now */
	uint64_t requests;    /* client requests received */
	/* the spool (spool.h) */
	bool spool_on;
	uint64_t spool_max, spool_count, spool_written, spool_acked, spool_dropped, spool_errors;
	/* keys on the broker (dynsec.h) */
	bool acl_ok;		/* the broker's dynamic-security plugin answered */
	uint64_t dynsec_sent;	/* its commands sent */
	uint64_t dynsec_failed; /* ... refused or unanswered */
};

/* Connect to host:port (reconnecting with backoff). NULL on setup failure.
 * It logs in as the spawned broker's admin (d->broker), or as [mqtt]
 * username with the password of [mqtt] password_file, and attaches to
 * d->dynsec (if set) to keep the broker's clients in step with the keys. */
struct mqtt_bridge *mqtt_bridge_new(struct labgwd *d, const char *host, int port);
void mqtt_bridge_get_stats(const struct mqtt_bridge *b, struct mqtt_stats *st);
/* Publish "offline" (retained), disconnect, and release the loop handles. */
void mqtt_bridge_shutdown(struct mqtt_bridge *b);
/* After shutdown, once the loop has run. */
void mqtt_bridge_free(struct mqtt_bridge *b);

#endif
