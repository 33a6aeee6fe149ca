#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "topic.h"
#include "policy.h"
#include "util.h"

static void publish_sealed(struct labgwd *d, const char *topic, struct frame *f, bool retain)
{
	if (frame_seal(f, labgwd_next_seq(d), time_now_us()) == 0)
		bus_publish(d->bus, topic, f, retain);
	else
		log_warning("frame %s for %s could not be encoded", f->type, topic);
}

void router_frame(struct labgwd *d, struct frame *f)
{
	char topic[256], dev[3 * FRAME_DEV_MAX];
	const char *tech = f->tech ? frame_tech_name(f->tech) : "-";
	if (!f->has_dev || topic_escape_level(f->dev, dev, sizeof(dev)) < 0)
		strcpy(dev, "-");
	snprintf(topic, sizeof(topic), "labgw/v1/adm/%s/rx/%s/%s/%s", f->gw, tech, f->radio, dev);
	int n = bus_publish(d->bus, topic, f, false);
	/* origin is the radio while the frame's publish call runs */
	if (n > 0 && f->origin)
		radio_count_out(f->origin, (uint64_t)n);
}

static json_t *techs_array(uint32_t techs)
{
	static const enum labgw_tech all[] = {LABGW_TECH_BLE, LABGW_TECH_WLAN, LABGW_TECH_LORAWAN,
					      LABGW_TECH_CELLULAR};
	json_t *a = json_array();
	for (size_t i = 0; a && i < ARRAY_SIZE(all); i++)
		if (techs & all[i])
			json_array_append_new(a, json_string(frame_tech_name(all[i])));
	return a;
}

static void publish_inventory(struct labgwd *d)
{
	struct frame *f = frame_new(d->cfg->gw_id, "", LABGW_TECH_NONE, "state.radios");
	if (!f)
		return;
	json_t *list = json_array();
	for (struct labgw_radio *r = plugin_host_first(d->host); r; r = plugin_host_next(r)) {
		json_array_append_new(list, json_pack("{s:s,s:s,s:o,s:s}", "radio", radio_name(r),
						      "module", radio_module(r), "techs",
						      techs_array(radio_techs(r)), "state",
						      radio_state_name(radio_get_state(r))));
	}
	frame_set(f, LABGW_DATA, "radios", list);
	char topic[128];
	snprintf(topic, sizeof(topic), "labgw/v1/gw/%s/radios", d->cfg->gw_id);
	publish_sealed(d, topic, f, true);
	frame_unref(f);
}

void router_radio_changed(struct labgwd *d, struct labgw_radio *r, bool removed)
{
	char topic[128];
	snprintf(topic, sizeof(topic), "labgw/v1/gw/%s/radio/%s/state", d->cfg->gw_id,
		 radio_name(r));
	if (removed) {
		bus_clear_retained(d->bus, topic);
		policy_radio_gone(d->policy, radio_name(r));
	} else {
		struct frame *f =
			frame_new(d->cfg->gw_id, radio_name(r), LABGW_TECH_NONE, "state.radio");
		if (f) {
			const json_t *det = radio_details(r);
			if (det)
				frame_set(f, LABGW_DATA, "details", json_deep_copy(det));
			frame_set(f, LABGW_DATA, "state",
				  json_string(radio_state_name(radio_get_state(r))));
			frame_set(f, LABGW_DATA, "module", json_string(radio_module(r)));
			frame_set(f, LABGW_DATA, "techs", techs_array(radio_techs(r)));
			if (radio_reason(r))
				frame_set(f, LABGW_DATA, "reason", json_string(radio_reason(r)));
			publish_sealed(d, topic, f, true);
			frame_unref(f);
		}
	}
	if (!d->stopping)
		publish_inventory(d);
}

static struct frame *gateway_frame(const struct labgwd *d, const char *state)
{
	struct frame *f = frame_new(d->cfg->gw_id, "", LABGW_TECH_NONE, "state.gateway");
	if (!f)
		return NULL;
	char started[32];
	time_format_us(d->started_us, started);
	frame_set(f, LABGW_DATA, "state", json_string(state));
	frame_set(f, LABGW_DATA, "version", json_string(LABGW_VERSION));
	frame_set(f, LABGW_DATA, "started", json_string(started));
	return f;
}

void router_gateway_state(struct labgwd *d, const char *state)
{
	struct frame *f = gateway_frame(d, state);
	if (!f)
		return;
	char topic[128];
	snprintf(topic, sizeof(topic), "labgw/v1/gw/%s/state", d->cfg->gw_id);
	publish_sealed(d, topic, f, true);
	frame_unref(f);
}

char *router_gateway_will(const struct labgwd *d)
{
	/* composed at connect time; sequence 0 marks it as the broker's message */
	struct frame *f = gateway_frame(d, "offline");
	if (!f)
		return NULL;
	char *s = NULL;
	if (frame_seal(f, 0, time_now_us()) == 0)
		s = strdup(f->json);
	frame_unref(f);
	return s;
}
