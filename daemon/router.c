#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "kiosk.h"
#include "log.h"
#include "privacy.h"
#include "sandbox.h"
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

void router_prepare(struct labgwd *d, struct frame *f)
{
	/* the envelope says whether a sandbox claimed the device */
	f->claimed = f->has_dev && d->sandboxes &&
		     sandboxes_claim_owner(d->sandboxes, f->tech, f->dev) != NULL;
}

/* prefix/{tech}[/{gw}]/{radio}/{dev}, the device id escaped as one level
 * ("-" for none) */
static void frame_topic(char *topic, size_t len, const char *prefix, const struct frame *f,
			bool with_gw, const char *dev)
{
	char esc[3 * FRAME_DEV_MAX];
	const char *tech = f->tech ? frame_tech_name(f->tech) : "-";
	if (!dev || topic_escape_level(dev, esc, sizeof(esc)) < 0)
		strcpy(esc, "-");
	snprintf(topic, len, "%s/%s%s%s/%s/%s", prefix, tech, with_gw ? "/" : "",
		 with_gw ? f->gw : "", f->radio, esc);
}

static void deliver(struct labgwd *d, const char *sbx, const char *topic, struct frame *f)
{
	struct bus_msg *m = bus_publish_msg(d->bus, topic, f, false);
	if (!m)
		return;
	if (d->history)
		history_record(d->history, sbx, m);
	bus_msg_unref(m);
}

struct observe_ctx {
	struct labgwd *d;
	struct frame *f;
};

static void observe_one(void *ud, const char *sbx)
{
	struct observe_ctx *c = ud;
	struct labgwd *d = c->d;
	if (!sandboxes_take_frame(d->sandboxes, sbx))
		return;
	struct frame *v = privacy_view(d->privacy, c->f, sbx);
	if (!v)
		return;
	char prefix[96], topic[256];
	snprintf(prefix, sizeof(prefix), "labgw/v1/sbx/%s/obs", sbx);
	frame_topic(topic, sizeof(topic), prefix, v, true, v->has_dev ? v->dev : NULL);
	deliver(d, sbx, topic, v);
	frame_unref(v);
}

void router_frame(struct labgwd *d, struct frame *f)
{
	char topic[256], prefix[96];
	/* staff: every frame, raw */
	snprintf(prefix, sizeof(prefix), "labgw/v1/adm/%s/rx", f->gw);
	frame_topic(topic, sizeof(topic), prefix, f, false, f->has_dev ? f->dev : NULL);
	int n = bus_publish(d->bus, topic, f, false);
	/* origin is the radio while the frame's publish call runs */
	if (n > 0 && f->origin)
		radio_count_out(f->origin, (uint64_t)n);
	if (d->kiosk)
		kiosk_count(d->kiosk, f);
	if (!d->sandboxes)
		return;
	const char *owner =
		f->has_dev ? sandboxes_claim_owner(d->sandboxes, f->tech, f->dev) : NULL;
	if (owner) {
		/* the owner sees its device raw; nobody else sees it at all */
		if (sandboxes_take_frame(d->sandboxes, owner)) {
			snprintf(prefix, sizeof(prefix), "labgw/v1/sbx/%s/rx", owner);
			frame_topic(topic, sizeof(topic), prefix, f, true, f->dev);
			deliver(d, owner, topic, f);
		}
		return;
	}
	struct observe_ctx c = {d, f};
	sandboxes_each_observer(d->sandboxes, observe_one, &c);
}

json_t *router_techs_json(uint32_t techs)
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
						      router_techs_json(radio_techs(r)), "state",
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
	char topic[128], adm[128];
	snprintf(topic, sizeof(topic), "labgw/v1/gw/%s/radio/%s/state", d->cfg->gw_id,
		 radio_name(r));
	snprintf(adm, sizeof(adm), "labgw/v1/adm/%s/radio/%s/state", d->cfg->gw_id, radio_name(r));
	if (removed) {
		bus_clear_retained(d->bus, topic);
		bus_clear_retained(d->bus, adm);
		policy_radio_gone(d->policy, radio_name(r));
	} else {
		/* everybody's view, then staff's when the details hold what only
		 * staff see */
		const json_t *det = radio_details(r);
		bool has_staff = det && json_object_get(det, RADIO_DETAILS_STAFF);
		for (int staff = 0; staff <= (has_staff ? 1 : 0); staff++) {
			struct frame *f = frame_new(d->cfg->gw_id, radio_name(r), LABGW_TECH_NONE,
						    "state.radio");
			if (!f)
				break;
			json_t *view = radio_details_view(r, staff);
			if (view)
				frame_set(f, LABGW_DATA, "details", view);
			frame_set(f, LABGW_DATA, "state",
				  json_string(radio_state_name(radio_get_state(r))));
			frame_set(f, LABGW_DATA, "module", json_string(radio_module(r)));
			frame_set(f, LABGW_DATA, "techs", router_techs_json(radio_techs(r)));
			if (radio_reason(r))
				frame_set(f, LABGW_DATA, "reason", json_string(radio_reason(r)));
			publish_sealed(d, staff ? adm : topic, f, true);
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
