/* SPDX-License-Identifier: MIT */
/*
 * labgw plugin ABI, version 1.
 *
 * The only header a radio module includes. A module is a shared object that
 * exports one symbol, LABGW_PLUGIN_SYMBOL, a `const struct labgw_plugin`
 * (use LABGW_PLUGIN_DEFINE). The daemon loads it with RTLD_NOW|RTLD_LOCAL,
 * refuses it when abi_major differs from its own, and talks to it only
 * through the function pointers below.
 *
 * Compatibility rules:
 *  - Structs that cross the boundary start with a `size` field (the size the
 *    writer was built with) and end with reserved slots. A reader never
 *    touches a member that lies beyond `size`.
 *  - Enums are append-only; values never change meaning.
 *  - A minor bump adds members at the end (taken from the reserved slots);
 *    a major bump is anything else.
 *
 * Threading: every callback runs on the daemon's one loop thread, except the
 * `work` function of labgw_host.work_queue, which runs on a worker thread and
 * must not call any host service.
 */
#ifndef LABGW_PLUGIN_H
#define LABGW_PLUGIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define LABGW_PLUGIN_ABI_MAJOR 1
#define LABGW_PLUGIN_ABI_MINOR 5

/* Name of the one symbol a module exports. */
#define LABGW_PLUGIN_SYMBOL "labgw_plugin"

/* Technologies. Used alone for a frame, or OR-ed for a module's `techs`. */
enum labgw_tech {
	LABGW_TECH_NONE = 0,
	LABGW_TECH_BLE = 1 << 0,
	LABGW_TECH_WLAN = 1 << 1,
	LABGW_TECH_LORAWAN = 1 << 2,
	LABGW_TECH_CELLULAR = 1 << 3,
};

enum labgw_log_level {
	LABGW_LOG_ERROR = 3,   /* an operation failed */
	LABGW_LOG_WARNING = 4, /* unexpected, handled */
	LABGW_LOG_NOTICE = 5,  /* a state change an operator cares about */
	LABGW_LOG_INFO = 6,
	LABGW_LOG_DEBUG = 7,
};

/* Which part of a frame a field setter writes to (DESIGN §5). */
enum labgw_section {
	LABGW_SIG = 1,	/* "sig": signal and channel of the observation */
	LABGW_DATA = 2, /* "data": decoded fields */
};

/* Transmit status lifecycle; `queued` is reported by the host on accept. */
enum labgw_tx_status {
	LABGW_TX_QUEUED = 1,
	LABGW_TX_SENT = 2,
	LABGW_TX_ACKED = 3,
	LABGW_TX_FAILED = 4,
};

/* fd watch events */
#define LABGW_FD_READ  0x1u
#define LABGW_FD_WRITE 0x2u
#define LABGW_FD_ERROR 0x4u /* delivered, never requested: error or hang-up */

struct labgw_radio; /* one radio instance, owned by the host */
struct labgw_frame; /* a frame under construction, owned by the host */

/*
 * Callbacks a module registers. A negative return counts as a failure of the
 * module; a module whose callbacks keep failing is stopped, shown as
 * `failed`, and restarted with backoff.
 */
typedef int (*labgw_fd_cb)(void *user_data, int fd, unsigned events);
typedef int (*labgw_timer_cb)(void *user_data);
/* Runs on a worker thread: no host services, no loop access. */
typedef void (*labgw_work_fn)(void *user_data);
/* Runs on the loop thread after `work`; status is 0, or -ECANCELED when the
 * instance was stopped meanwhile (then only free user_data). */
typedef void (*labgw_done_fn)(void *user_data, int status);

/* What a transmit costs, filled by the regulatory hook (ABI 1.2). */
struct labgw_tx_cost {
	uint32_t size;
	uint64_t airtime_ms;	 /* time on air (LoRa), 0 where it does not apply */
	uint64_t retry_after_ms; /* when refused with -EAGAIN: when it would pass */
	void *reserved[4];
};

/* A transmit or request handed to a module. Borrowed for the call. */
struct labgw_command {
	uint32_t size;
	const char *id;	  /* host-assigned, unique; pass it back to tx_status */
	const char *sbx;  /* sandbox asking, or NULL for staff */
	const char *op;	  /* "tx" for a transmit, else the request op name */
	const char *body; /* a JSON object, already checked to be valid JSON */
	size_t body_len;
	/* ABI 1.4: for a transmit, when the lease that allows it ends
	 * (µs since the epoch); 0 when unknown. A module stops what outlasts
	 * it; the host also sends op "lease.ended" (body {"resource","sbx"})
	 * when a lease ends early or on time. */
	int64_t lease_end_us;
	void *reserved[5];
};

/*
 * Services the host offers a module. The table is valid from init to exit.
 * Ids returned by watch_fd/timer_add are never 0; 0 means failure.
 * Every fd watch and timer is recorded per instance; what is left after
 * `stop` is cancelled by the host (and a warning names the module).
 */
struct labgw_host {
	uint32_t size;
	uint16_t abi_major;
	uint16_t abi_minor;

	void (*log)(struct labgw_radio *r, enum labgw_log_level level, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));
	const char *(*radio_name)(const struct labgw_radio *r);
	const char *(*gateway_id)(const struct labgw_radio *r);

	/*
	 * Configuration of this instance's [radio NAME] section. Reading a key
	 * marks it as known; after init, a key nobody read is refused as unknown.
	 * The typed getters log "FILE:LINE: key: reason" and return -EINVAL for
	 * a bad value; a missing key yields `def` and 0.
	 */
	const char *(*config_get)(struct labgw_radio *r, const char *key);
	int (*config_get_int)(struct labgw_radio *r, const char *key, long long min, long long max,
			      long long def, long long *out);
	int (*config_get_bool)(struct labgw_radio *r, const char *key, bool def, bool *out);
	/* "250ms", "10s", "5m", "24h", "2d"; plain numbers are seconds. */
	int (*config_get_duration_ms)(struct labgw_radio *r, const char *key, uint64_t min_ms,
				      uint64_t max_ms, uint64_t def_ms, uint64_t *out);
	/* Report a problem with a key's value, with file and line. */
	void (*config_error)(struct labgw_radio *r, const char *key, const char *fmt, ...)
		__attribute__((format(printf, 3, 4)));

	/*
	 * Frames. frame_new starts one (tech is one LABGW_TECH_ value, type like
	 * "rx.ble.adv"); setters return 0 or -EINVAL/-ENOMEM; `key` may be a
	 * dotted path ("ibeacon.major") that creates nested objects. publish
	 * consumes the frame whatever it returns; discard drops an unpublished one.
	 */
	struct labgw_frame *(*frame_new)(struct labgw_radio *r, enum labgw_tech tech,
					 const char *type);
	int (*frame_set_dev)(struct labgw_frame *f, const char *dev_id);
	int (*frame_set_payload)(struct labgw_frame *f, const void *data, size_t len);
	int (*frame_set_int)(struct labgw_frame *f, enum labgw_section s, const char *key,
			     int64_t v);
	int (*frame_set_double)(struct labgw_frame *f, enum labgw_section s, const char *key,
				double v);
	int (*frame_set_bool)(struct labgw_frame *f, enum labgw_section s, const char *key, bool v);
	int (*frame_set_str)(struct labgw_frame *f, enum labgw_section s, const char *key,
			     const char *v);
	/* bytes as lowercase hex, or as base64 */
	int (*frame_set_hex)(struct labgw_frame *f, enum labgw_section s, const char *key,
			     const void *data, size_t len);
	int (*frame_set_base64)(struct labgw_frame *f, enum labgw_section s, const char *key,
				const void *data, size_t len);
	/* append a string to the array at `key` (created when absent) */
	int (*frame_append_str)(struct labgw_frame *f, enum labgw_section s, const char *key,
				const char *v);
	int (*publish)(struct labgw_frame *f);
	void (*frame_discard)(struct labgw_frame *f);

	/*
	 * Radio state details (channel, concentrators, modem, ...): build a
	 * frame of any type with LABGW_DATA fields; the host merges them into
	 * the radio's retained state and consumes the frame.
	 */
	int (*state_update)(struct labgw_frame *details);

	/* Loop services, all cancelled by the host when the instance stops. */
	uint64_t (*watch_fd)(struct labgw_radio *r, int fd, unsigned events, labgw_fd_cb cb,
			     void *user_data);
	int (*watch_fd_modify)(struct labgw_radio *r, uint64_t id, unsigned events);
	void (*watch_fd_cancel)(struct labgw_radio *r, uint64_t id);
	/* first after timeout_ms, then every repeat_ms (0 = once) */
	uint64_t (*timer_add)(struct labgw_radio *r, uint64_t timeout_ms, uint64_t repeat_ms,
			      labgw_timer_cb cb, void *user_data);
	void (*timer_cancel)(struct labgw_radio *r, uint64_t id);
	int (*work_queue)(struct labgw_radio *r, labgw_work_fn work, labgw_done_fn done,
			  void *user_data);
	/* the loop's cached monotonic time in ms */
	uint64_t (*now_ms)(struct labgw_radio *r);

	/*
	 * Small persistent key/value state of this instance (keys [a-z0-9_.-],
	 * at most 64 bytes; values at most 64 KiB). kv_get returns the value
	 * length, -ENOENT when absent, -ENOBUFS when `cap` is too small.
	 */
	int (*kv_set)(struct labgw_radio *r, const char *key, const void *val, size_t len);
	int (*kv_get)(struct labgw_radio *r, const char *key, void *buf, size_t cap);

	/* Progress of a command accepted earlier; reason for LABGW_TX_FAILED.
	 * May be called from inside command(): the host publishes it after
	 * "queued". */
	int (*tx_status)(struct labgw_radio *r, const char *cmd_id, enum labgw_tx_status st,
			 const char *reason);

	/* ABI 1.1. Narrow the techs this instance serves (a subset of the
	 * module's `techs`, e.g. from its configuration); call it in init. */
	int (*radio_set_techs)(struct labgw_radio *r, uint32_t techs);

	/* ABI 1.3. The ABP session keys a sandbox claimed a LoRaWAN device with
	 * (dev_addr: 8 lowercase hex); false when nobody claimed it with keys.
	 * Keys are secrets: never log or publish them. */
	bool (*lorawan_session_keys)(struct labgw_radio *r, const char *dev_addr,
				     uint8_t nwkskey[16], uint8_t appskey[16]);
	/* ABI 1.3. Record what the module did on nobody's request (e.g. a
	 * downlink relayed from an upstream network server) in the audit log;
	 * result is "ok" or an error code, detail free text. */
	void (*audit)(struct labgw_radio *r, const char *action, const char *target,
		      const char *result, int64_t size, const char *detail);

	/* ABI 1.4. Whether a sandbox claimed the device `dev_id` (as the
	 * module sets it with frame_set_dev) of this radio's techs; a module
	 * keeps what it knows of claimed devices (e.g. in a bounded cache). */
	bool (*device_claimed)(struct labgw_radio *r, const char *dev_id);
	/* ABI 1.4. The identity resolving keys sandboxes claimed BLE devices
	 * with: cb(ud, identity address as claimed, IRK most significant byte
	 * first) for each (cb NULL: none). Returns a number that changes
	 * whenever any claim is made or removed: cache resolutions until it
	 * does. IRKs are secrets: never log or publish them. */
	uint64_t (*ble_irks)(struct labgw_radio *r,
			     void (*cb)(void *ud, const char *identity, const uint8_t irk[16]),
			     void *ud);
	/* ABI 1.4. tx_status with a result: `result_json` (a JSON object, e.g.
	 * the value a GATT read returned) goes into the status frame as
	 * "result". -EINVAL when it is not a JSON object of at most 64 KiB. */
	int (*tx_result)(struct labgw_radio *r, const char *cmd_id, enum labgw_tx_status st,
			 const char *reason, const char *result_json);

	/* ABI 1.5. Mark a frame as describing the lab's own equipment (e.g. the
	 * lab's access point in a scan), not anyone's device: sandboxes that
	 * observe it get it as it is, device id and fields unpseudonymised.
	 * Never use it for a device a visitor could carry. */
	int (*frame_set_public)(struct labgw_frame *f);

	/* ABI 1.5. Whether a running instance has its hardware now (a modem
	 * unplugged, its daemon gone): without it the radio shows as `absent`
	 * with `reason`, transmits are refused as RADIO_UNAVAILABLE, and the
	 * instance keeps running to see the hardware come back (then it says
	 * present again). Every start begins present. */
	void (*radio_present)(struct labgw_radio *r, bool present, const char *reason);

	void *reserved[8];
};

/*
 * The descriptor a module exports.
 *
 * init:    parse and validate configuration, allocate state; no I/O yet.
 *          Returns 0 or a negative errno (-EINVAL for bad configuration).
 * start:   begin work. -ENODEV/-ENOTSUP: hardware absent (state `absent`,
 *          the daemon runs on); other errors: state `failed`, retried.
 * command: accept (0) or refuse (negative errno; -EINVAL bad request,
 *          -ENOTSUP unknown op, -EBUSY, -ENODEV radio unavailable) a command,
 *          with a human reason in errbuf. Accepted commands report their
 *          progress with host->tx_status.
 * stop:    end work; release fds and timers (the host cancels what is left).
 * exit:    free state. Called once, after stop and after pending work ended.
 *
 * Between init and exit, start and stop may alternate several times: the
 * host restarts a failed or absent radio by calling start again after stop.
 */
struct labgw_plugin {
	uint32_t size;
	uint16_t abi_major;
	uint16_t abi_minor;
	const char *name;
	const char *version;
	uint32_t techs; /* OR of enum labgw_tech */

	int (*init)(struct labgw_radio *r, const struct labgw_host *host, void **state);
	int (*start)(void *state);
	int (*command)(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen);
	void (*stop)(void *state);
	void (*exit)(void *state);

	/*
	 * ABI 1.2, optional (NULL: no regulatory limits, no cost). The regulatory
	 * hook: before a transmit is handed to command(), the host asks what it
	 * costs (airtime, for the sandbox's budget) and whether the radio's
	 * regulatory budget (the EU868 duty cycle of a sub-band, shared by all
	 * sandboxes) allows it now. Return 0, -EAGAIN with cost->retry_after_ms
	 * when the budget is used up, or -EINVAL for a bad request. Nothing is
	 * committed here; command() commits.
	 */
	int (*tx_check)(void *state, const struct labgw_command *cmd, struct labgw_tx_cost *cost,
			char *errbuf, size_t errlen);

	void *reserved[7];
};

#define LABGW_PLUGIN_DEFINE(...)                                                                   \
	__attribute__((visibility("default")))                                                     \
	const struct labgw_plugin labgw_plugin = {.size = sizeof(struct labgw_plugin),             \
						  .abi_major = LABGW_PLUGIN_ABI_MAJOR,             \
						  .abi_minor = LABGW_PLUGIN_ABI_MINOR,             \
						  __VA_ARGS__}

#ifdef __cplusplus
}
#endif
#endif
