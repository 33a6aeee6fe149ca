#include "metrics.h"

#include <stdlib.h>

#include "broker.h"
#include "daemon.h"
#include "http.h"
#include "mqtt.h"
#include "policy.h"
#include "sandbox.h"
#include "util.h"

static void family(struct strbuf *sb, const char *name, const char *type, const char *help)
{
	strbuf_printf(sb, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void value(struct strbuf *sb, const char *name, unsigned long long v)
{
	strbuf_printf(sb, "%s %llu\n", name, v);
}

char *metrics_render(struct labgwd *d, size_t *len)
{
	static const enum radio_state states[] = {RADIO_STARTING, RADIO_UP, RADIO_ABSENT,
						  RADIO_FAILED};
	struct strbuf sb;
	strbuf_init(&sb, 4096);

	family(&sb, "labgw_info", "gauge", "Build and gateway identity.");
	strbuf_printf(&sb, "labgw_info{version=\"%s\",gw=\"%s\"} 1\n", LABGW_VERSION,
		      d->cfg->gw_id);
	family(&sb, "labgw_uptime_seconds", "gauge", "Seconds since start.");
	value(&sb, "labgw_uptime_seconds", (time_now_us() - d->started_us) / 1000000u);

	family(&sb, "labgw_radio_state", "gauge", "1 for the state each radio is in.");
	for (struct labgw_radio *r = plugin_host_first(d->host); r; r = plugin_host_next(r))
		for (size_t i = 0; i < ARRAY_SIZE(states); i++)
			strbuf_printf(&sb, "labgw_radio_state{radio=\"%s\",state=\"%s\"} %d\n",
				      radio_name(r), radio_state_name(states[i]),
				      radio_get_state(r) == states[i]);
	family(&sb, "labgw_radio_frames_in_total", "counter", "Frames published by each radio.");
	for (struct labgw_radio *r = plugin_host_first(d->host); r; r = plugin_host_next(r))
		strbuf_printf(&sb, "labgw_radio_frames_in_total{radio=\"%s\"} %llu\n",
			      radio_name(r), (unsigned long long)radio_frames_in(r));
	family(&sb, "labgw_radio_frames_out_total", "counter",
	       "Deliveries of each radio's frames to subscribers (WebSocket sessions, MQTT).");
	for (struct labgw_radio *r = plugin_host_first(d->host); r; r = plugin_host_next(r))
		strbuf_printf(&sb, "labgw_radio_frames_out_total{radio=\"%s\"} %llu\n",
			      radio_name(r), (unsigned long long)radio_frames_out(r));
	family(&sb, "labgw_radio_restarts_total", "counter", "Restarts after failure or absence.");
	for (struct labgw_radio *r = plugin_host_first(d->host); r; r = plugin_host_next(r))
		strbuf_printf(&sb, "labgw_radio_restarts_total{radio=\"%s\"} %llu\n", radio_name(r),
			      (unsigned long long)radio_restarts(r));

	struct bus_stats bs;
	bus_get_stats(d->bus, &bs);
	family(&sb, "labgw_bus_published_total", "counter", "Messages published on the bus.");
	value(&sb, "labgw_bus_published_total", bs.published);
	family(&sb, "labgw_bus_deliveries_total", "counter", "Messages queued to subscribers.");
	value(&sb, "labgw_bus_deliveries_total", bs.deliveries);
	family(&sb, "labgw_bus_dropped_total", "counter",
	       "Messages dropped at full subscriber queues (all subscribers).");
	value(&sb, "labgw_bus_dropped_total", bs.dropped);
	family(&sb, "labgw_bus_subscribers", "gauge", "Bus subscribers.");
	value(&sb, "labgw_bus_subscribers", bs.subscribers);

	if (d->http) {
		struct http_stats hs;
		http_server_get_stats(d->http, &hs);
		family(&sb, "labgw_ws_sessions", "gauge", "Open WebSocket sessions.");
		value(&sb, "labgw_ws_sessions", hs.sessions);
		family(&sb, "labgw_ws_sessions_total", "counter", "WebSocket sessions accepted.");
		value(&sb, "labgw_ws_sessions_total", hs.sessions_total);
		family(&sb, "labgw_ws_refused_total", "counter", "WebSocket upgrades refused.");
		value(&sb, "labgw_ws_refused_total", hs.sessions_refused);
		family(&sb, "labgw_ws_messages_in_total", "counter", "Client messages received.");
		value(&sb, "labgw_ws_messages_in_total", hs.ws_messages_in);
		family(&sb, "labgw_ws_frames_out_total", "counter", "Frames sent to clients.");
		value(&sb, "labgw_ws_frames_out_total", hs.ws_frames_out);
		family(&sb, "labgw_ws_dropped_total", "counter",
		       "Frames dropped at full session send queues.");
		value(&sb, "labgw_ws_dropped_total", hs.ws_dropped);
		family(&sb, "labgw_ws_gaps_total", "counter", "Gap notices sent.");
		value(&sb, "labgw_ws_gaps_total", hs.ws_gaps);
		family(&sb, "labgw_ws_errors_total", "counter",
		       "Error answers and protocol closes on the WebSocket API.");
		value(&sb, "labgw_ws_errors_total", hs.ws_errors);
		family(&sb, "labgw_http_requests_total", "counter", "Plain HTTP requests.");
		value(&sb, "labgw_http_requests_total", hs.http_requests);
		family(&sb, "labgw_rest_requests_total", "counter", "REST API requests.");
		value(&sb, "labgw_rest_requests_total", hs.rest_requests);
		family(&sb, "labgw_rest_errors_total", "counter",
		       "REST API answers with an error status (4xx, 5xx).");
		value(&sb, "labgw_rest_errors_total", hs.rest_errors);
	}

	struct mqtt_stats ms = {0};
	if (d->mqtt)
		mqtt_bridge_get_stats(d->mqtt, &ms);
	family(&sb, "labgw_mqtt_enabled", "gauge", "1 when the MQTT bridge is configured.");
	value(&sb, "labgw_mqtt_enabled", d->mqtt != NULL);
	family(&sb, "labgw_mqtt_connected", "gauge", "1 while the bridge is connected.");
	value(&sb, "labgw_mqtt_connected", ms.connected);
	family(&sb, "labgw_mqtt_connects_total", "counter", "Successful broker connections.");
	value(&sb, "labgw_mqtt_connects_total", ms.connects);
	family(&sb, "labgw_mqtt_published_total", "counter", "Messages published to the broker.");
	value(&sb, "labgw_mqtt_published_total", ms.published);
	family(&sb, "labgw_mqtt_dropped_total", "counter",
	       "Messages not published: bridge queue full or broker unreachable.");
	value(&sb, "labgw_mqtt_dropped_total", ms.dropped);
	family(&sb, "labgw_mqtt_queue", "gauge", "Messages waiting for the broker.");
	value(&sb, "labgw_mqtt_queue", ms.queued);
	family(&sb, "labgw_mqtt_spool_max", "gauge",
	       "Bound of the bridge's on-disk spool in messages (0: no spool).");
	value(&sb, "labgw_mqtt_spool_max", ms.spool_max);
	family(&sb, "labgw_mqtt_spool_messages", "gauge",
	       "Messages in the spool: not yet acknowledged by the broker.");
	value(&sb, "labgw_mqtt_spool_messages", ms.spool_count);
	family(&sb, "labgw_mqtt_spool_written_total", "counter", "Messages written to the spool.");
	value(&sb, "labgw_mqtt_spool_written_total", ms.spool_written);
	family(&sb, "labgw_mqtt_spool_acked_total", "counter",
	       "Spooled messages the broker acknowledged.");
	value(&sb, "labgw_mqtt_spool_acked_total", ms.spool_acked);
	family(&sb, "labgw_mqtt_spool_dropped_total", "counter",
	       "Oldest spooled messages dropped because the spool was full.");
	value(&sb, "labgw_mqtt_spool_dropped_total", ms.spool_dropped);
	family(&sb, "labgw_mqtt_spool_errors_total", "counter",
	       "Messages that could not be written to the spool (disk full, ...).");
	value(&sb, "labgw_mqtt_spool_errors_total", ms.spool_errors);
	family(&sb, "labgw_mqtt_requests_total", "counter", "Client requests received over MQTT.");
	value(&sb, "labgw_mqtt_requests_total", ms.requests);
	family(&sb, "labgw_mqtt_acl_ok", "gauge",
	       "1 when the broker's dynamic-security plugin answered on the current connection "
	       "(keys are enforced on MQTT).");
	value(&sb, "labgw_mqtt_acl_ok", ms.acl_ok);
	family(&sb, "labgw_mqtt_dynsec_commands_total", "counter",
	       "Dynamic-security commands sent to the broker (resends count again).");
	value(&sb, "labgw_mqtt_dynsec_commands_total", ms.dynsec_sent);
	family(&sb, "labgw_mqtt_dynsec_failed_total", "counter",
	       "Dynamic-security commands the broker refused or did not answer.");
	value(&sb, "labgw_mqtt_dynsec_failed_total", ms.dynsec_failed);
	if (d->broker) {
		family(&sb, "labgw_broker_running", "gauge", "1 while the spawned broker runs.");
		value(&sb, "labgw_broker_running", broker_running(d->broker));
		family(&sb, "labgw_broker_restarts_total", "counter",
		       "Restarts of the spawned broker.");
		value(&sb, "labgw_broker_restarts_total", broker_restarts(d->broker));
	}

	if (d->sandboxes) {
		family(&sb, "labgw_auth_failures_total", "counter",
		       "Failed authentications (unknown or malformed keys) on every surface.");
		value(&sb, "labgw_auth_failures_total", sandboxes_auth_failures(d->sandboxes));
	}
	family(&sb, "labgw_tx_pending", "gauge", "Transmit commands not yet finished.");
	value(&sb, "labgw_tx_pending", policy_pending(d->policy));
	family(&sb, "labgw_config_reloads_total", "counter", "Configuration reloads by result.");
	strbuf_printf(&sb, "labgw_config_reloads_total{result=\"ok\"} %llu\n",
		      (unsigned long long)d->reloads_ok);
	strbuf_printf(&sb, "labgw_config_reloads_total{result=\"failed\"} %llu\n",
		      (unsigned long long)d->reloads_failed);
	return strbuf_steal(&sb, len);
}
