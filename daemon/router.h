/* Where frames go (DESIGN §3, §6): radio frames to the staff tree and the
 * sandboxes, gateway and radio states to their retained topics under
 * labgw/v1/gw/{gw}/. */
#ifndef LABGW_ROUTER_H
#define LABGW_ROUTER_H

#include "daemon.h"
#include "frame.h"

/* A radio's frame before it is sealed: marks whether a sandbox claimed it. */
void router_prepare(struct labgwd *d, struct frame *f);
/* A radio's sealed frame: to the staff tree, to the sandbox that claimed the
 * device (raw, on labgw/v1/sbx/{sbx}/rx/{tech}/{gw}/{radio}/{dev}), or, for
 * devices nobody claimed, pseudonymised to every sandbox that observes
 * (labgw/v1/sbx/{sbx}/obs/{tech}/{gw}/{radio}/{pseudonym}); counted for the
 * kiosk. */
void router_frame(struct labgwd *d, struct frame *f);
void router_radio_changed(struct labgwd *d, struct labgw_radio *r, bool removed);
/* "online" at start, "offline" at shutdown (the MQTT will says the same) */
void router_gateway_state(struct labgwd *d, const char *state);
/* The JSON an MQTT broker keeps as the gateway's last will. Caller frees. */
char *router_gateway_will(const struct labgwd *d);

/* ["ble", "lorawan", ...] for a mask of techs */
json_t *router_techs_json(uint32_t techs);

#endif
