/* Public aggregates for the showcase kiosks (DESIGN §6): counts and rates per
 * tech and radio, distinct devices nearby, LoRa airtime and an hour's trend,
 * published retained on labgw/v1/pub/{gw}/stats every 2 s. No identifier
 * ever leaves this module: devices are counted through a keyed hash whose
 * key is random per process and never stored. */
#ifndef LABGW_KIOSK_H
#define LABGW_KIOSK_H

#include "frame.h"

struct labgwd;
struct kiosk;

struct kiosk *kiosk_new(struct labgwd *d);
void kiosk_start(struct kiosk *k);
void kiosk_count(struct kiosk *k, const struct frame *f);
void kiosk_stop(struct kiosk *k);
void kiosk_free(struct kiosk *k);

#endif
