/* The plugin host: loads radio modules (DESIGN §3), runs one instance per
 * [radio NAME] section, hands them the labgw_host service table, keeps a
 * ledger of their fd watches and timers, and drives the radio states
 * starting → up | absent | failed with restart backoff. */
#ifndef LABGW_PLUGIN_HOST_H
#define LABGW_PLUGIN_HOST_H

#include <jansson.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "frame.h"
#include "labgw/plugin.h"

enum radio_state {
	RADIO_STARTING,
	RADIO_UP,
	RADIO_ABSENT,
	RADIO_FAILED,
	RADIO_STOPPED,
};

/* What the host tells the rest of the daemon. All run on the loop thread. */
struct plugin_host_ops {
	/* A module published a frame; it is sealed. The callee takes a ref if
	 * it keeps it. */
	void (*publish)(void *user_data, struct frame *f);
	/* A radio's state or details changed, or the radio went away
	 * (state RADIO_STOPPED with `removed`). */
	void (*radio_changed)(void *user_data, struct labgw_radio *r, bool removed);
	/* An accepted command made progress. */
	void (*tx_status)(void *user_data, struct labgw_radio *r, const char *cmd_id,
			  enum labgw_tx_status st, const char *reason);
	/* Optional: the same with a result object (labgw_host 1.4); borrowed. */
	void (*tx_result)(void *user_data, struct labgw_radio *r, const char *cmd_id,
			  enum labgw_tx_status st, const char *reason, const json_t *result);
	/* Next frame sequence number and the time to stamp (µs since epoch). */
	uint64_t (*next_seq)(void *user_data);
	/* Optional: a module's frame just before it is sealed (to mark claims). */
	void (*prepare)(void *user_data, struct frame *f);
	/* Optional: LoRaWAN ABP keys of a claimed device (labgw_host 1.3). */
	bool (*session_keys)(void *user_data, const char *dev_addr, uint8_t nwkskey[16],
			     uint8_t appskey[16]);
	/* Optional: whether a sandbox claimed a device (labgw_host 1.4). */
	bool (*device_claimed)(void *user_data, uint32_t techs, const char *dev_id);
	/* Optional: claimed BLE identity resolving keys (labgw_host 1.4). */
	uint64_t (*ble_irks)(void *user_data,
			     void (*cb)(void *ud, const char *identity, const uint8_t irk[16]),
			     void *ud);
	/* Optional: an audit record from a module (labgw_host 1.3). */
	void (*audit)(void *user_data, struct labgw_radio *r, const char *action,
		      const char *target, const char *result, int64_t size, const char *detail);
};

struct plugin_host_limits {
	unsigned fail_threshold;  /* consecutive callback failures → failed */
	uint64_t backoff_min_ms;  /* first restart delay after a failure */
	uint64_t backoff_max_ms;  /* cap of the doubling delay */
	uint64_t absent_retry_ms; /* retry interval of an absent radio */
};

struct plugin_host;

struct plugin_host *plugin_host_new(uv_loop_t *loop, const struct plugin_host_ops *ops,
				    void *user_data);
void plugin_host_set_limits(struct plugin_host *h, const struct plugin_host_limits *lim);

/*
 * Bring the running radios in line with `cfg`: new sections are loaded and
 * initialised, changed ones replaced, removed ones stopped. All-or-nothing:
 * if any new instance fails to load or init (bad module, wrong ABI, bad
 * keys), every problem is logged, nothing changes, and -EINVAL is returned.
 * `cfg` must outlive the next apply (the host keeps pointers into it).
 */
int plugin_host_apply(struct plugin_host *h, const struct config *cfg);
/* Stop and exit every instance (and unload modules once their work ended). */
void plugin_host_shutdown(struct plugin_host *h);
/* Free the host; after shutdown and after the loop ran pending closes. */
void plugin_host_free(struct plugin_host *h);

struct labgw_radio *plugin_host_find(struct plugin_host *h, const char *name);
struct labgw_radio *plugin_host_first(struct plugin_host *h);
struct labgw_radio *plugin_host_next(struct labgw_radio *r);

/* Hand a command to a radio. 0 when accepted; else a negative errno and a
 * reason in errbuf (-ENODEV: not up, or as the module refused). */
int plugin_host_command(struct plugin_host *h, struct labgw_radio *r,
			const struct labgw_command *cmd, char *errbuf, size_t errlen);

/* The module's regulatory hook for a transmit: 0 (cost filled; zero when
 * the module has no hook), -EAGAIN (budget used up, cost->retry_after_ms),
 * or -EINVAL with a reason. */
int plugin_host_tx_check(struct plugin_host *h, struct labgw_radio *r,
			 const struct labgw_command *cmd, struct labgw_tx_cost *cost, char *errbuf,
			 size_t errlen);

const char *radio_name(const struct labgw_radio *r);
const char *radio_module(const struct labgw_radio *r);
uint32_t radio_techs(const struct labgw_radio *r);
enum radio_state radio_get_state(const struct labgw_radio *r);
const char *radio_state_name(enum radio_state st);
/* last failure or absence reason, or NULL */
const char *radio_reason(const struct labgw_radio *r);
/* details merged from state_update, or NULL (borrowed) */
const json_t *radio_details(const struct labgw_radio *r);
/* The key of radio details that only staff see (personal data such as a
 * modem's IMEI, IMSI, ICCID and numbers): left out of the radio state that
 * sandboxes and kiosks read, published whole on the staff-only
 * labgw/v1/adm/{gw}/radio/{radio}/state. */
#define RADIO_DETAILS_STAFF "staff"
/* A copy of the details as `staff` or everybody else sees them (new
 * reference), or NULL when the radio has none. */
json_t *radio_details_view(const struct labgw_radio *r, bool staff);
uint64_t radio_frames_in(const struct labgw_radio *r);
/* deliveries of this radio's frames to subscribers, counted by the router */
uint64_t radio_frames_out(const struct labgw_radio *r);
void radio_count_out(struct labgw_radio *r, uint64_t n);
uint64_t radio_restarts(const struct labgw_radio *r);
/* fd watches and timers the instance holds now */
size_t radio_ledger_size(const struct labgw_radio *r);
/* leftovers the host cancelled after the module's stop, since start */
uint64_t radio_leftovers(const struct labgw_radio *r);

#endif
