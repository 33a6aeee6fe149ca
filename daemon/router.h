/* Where frames go (DESIGN §3, §6). Radio frames go to the staff tree
 * labgw/v1/adm/{gw}/rx/{tech}/{radio}/{dev}; gateway and radio states go to
 * their retained topics under labgw/v1/gw/{gw}/.
 *
 * Foundation stage: the sandbox routes (claims, pseudonyms) come with the
 * sandbox issue, here, so that the front-ends never change. */
#ifndef LABGW_ROUTER_H
#define LABGW_ROUTER_H

#include "daemon.h"
#include "frame.h"

void router_frame(struct labgwd *d, struct frame *f);
void router_radio_changed(struct labgwd *d, struct labgw_radio *r, bool removed);
/* "online" at start, "offline" at shutdown (the MQTT will says the same) */
void router_gateway_state(struct labgwd *d, const char *state);
/* The JSON an MQTT broker keeps as the gateway's last will. Caller frees. */
char *router_gateway_will(const struct labgwd *d);

#endif
