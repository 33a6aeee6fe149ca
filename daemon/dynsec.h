/* Keys on the MQTT broker (DESIGN §6, §7): labgwd as the admin client of
 * mosquitto's dynamic-security plugin, over the bridge's connection.
 *
 * Every key is a broker client (username = key id, password = the whole key
 * "<id>.<secret>") with one role "key-<id>" whose ACLs follow the key's
 * rights; everything else is denied. Commands go as JSON to
 * $CONTROL/dynamic-security/v1 and are answered on .../v1/response; each
 * carries a correlation id. Pending commands wait in a bounded queue, are
 * sent while the bridge is connected and sent again after a reconnect.
 *
 * On every (re)connect the broker's clients are reconciled with the key
 * store: clients of keys that are no longer valid are deleted; valid keys
 * without a client cannot be recreated (the secret is not kept) and are
 * named in a warning. A broker that does not answer within 5 s has no
 * dynamic-security plugin (or labgwd is not its admin): that is logged as
 * an error, and frames are bridged all the same.
 *
 * The object lives as long as the daemon (keys may be created before the
 * bridge connects, and the bridge is replaced on reload); the bridge
 * attaches to it. The whole key handed to dynsec_key_new is kept only until
 * the broker confirmed the client, and is never logged. */
#ifndef LABGW_DYNSEC_H
#define LABGW_DYNSEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct labgwd;
struct dynsec;
struct store_key;

#define DYNSEC_TOPIC	      "$CONTROL/dynamic-security/v1"
#define DYNSEC_RESPONSE_TOPIC "$CONTROL/dynamic-security/v1/response"

struct dynsec_stats {
	bool acl_ok;	  /* the plugin answered on the current connection */
	uint64_t sent;	  /* commands sent (a resend counts again) */
	uint64_t failed;  /* commands refused by the broker or never answered */
	uint64_t pending; /* requests queued or waiting for their answer */
};

/* How commands reach the broker: the bridge. */
struct dynsec_link {
	/* Publish at QoS 0; 0, or a negative errno when not possible now. */
	int (*publish)(void *ud, const char *topic, const char *payload, size_t len);
	void *ud;
	const char *login;  /* the bridge's username: never deleted (may be "") */
	bool own_broker;    /* the spawned broker: every client there is ours */
	const char *broker; /* "host:port", for messages */
};

/* Needs d->loop; d->store and d->sandboxes are used when they are set. */
struct dynsec *dynsec_new(struct labgwd *d);
/* Closes the timer; free after the loop ran. */
void dynsec_shutdown(struct dynsec *ds);
void dynsec_free(struct dynsec *ds);

/* The bridge: attach when created (link is copied), link_up after each
 * CONNACK (having subscribed to DYNSEC_RESPONSE_TOPIC, and before any other
 * publish: the spawned broker's admin role gets its rights to labgw/v1/#
 * here), link_down when the connection is lost, detach at shutdown. */
void dynsec_attach(struct dynsec *ds, const struct dynsec_link *link);
void dynsec_detach(struct dynsec *ds);
void dynsec_link_up(struct dynsec *ds);
void dynsec_link_down(struct dynsec *ds);
/* A message on DYNSEC_RESPONSE_TOPIC. */
void dynsec_on_response(struct dynsec *ds, const void *payload, size_t len);

/* The sandboxes hooks (sandboxes_on_key_new / sandboxes_on_key_gone) with
 * the dynsec as user data. */
void dynsec_key_new(void *ud, const struct store_key *k, const char *key);
void dynsec_key_gone(void *ud, const char *key_id);

void dynsec_get_stats(const struct dynsec *ds, struct dynsec_stats *st);

#endif
