// SPDX-License-Identifier: MIT
/*
 * The plugin host on a real libuv loop, with the test modules of
 * tests/unit/modules (built into $LABGW_TEST_MODULES): loading and the ABI
 * check, configuration errors with file and line, all-or-nothing apply,
 * keeping/restarting/stopping instances on reapply, the resource ledger
 * (leftovers cancelled after stop), absent and failed radios with restart
 * backoff, commands and tx status, blocking work cancelled by a stop, and
 * the key/value store. Every test ends with the loop closed cleanly.
 */
#include <dlfcn.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "frame.h"
#include "log.h"
#include "plugin_host.h"
#include "util.h"

#include "modules/probe.h"

/* The [gateway] header every test file starts with: radio sections begin
 * on line HEADER_LINES + 1. */
#define HEADER_LINES 4
#define SEQ0	     1000

struct state_rec {
	char name[33];
	enum radio_state st;
	bool removed;
	uint64_t at_ms;
	uint64_t leftovers;
	char reason[160];
};

struct tx_rec {
	char radio[33];
	char id[80];
	enum labgw_tx_status st;
	char reason[80];
};

struct log_rec {
	enum log_level level;
	char *msg;
};

struct fx {
	uv_loop_t loop;
	uv_timer_t guard;
	bool timed_out;
	bool finished;
	struct plugin_host *h;
	char tmp[64];
	char state_dir[128];
	char modules[PATH_MAX];
	struct config *cfgs[16];
	int ncfg;
	uint64_t seq;
	struct frame *frames[512];
	int nframes;
	int unsealed;
	struct state_rec states[1024];
	int nstates;
	struct tx_rec txs[64];
	int ntx;
	struct log_rec *logs;
	int nlogs, caplogs;
	void *dl[8];
	int ndl;
};

/* ---- log capture -------------------------------------------------------- */

static void log_hook(enum log_level level, const char *msg, void *user_data)
{
	struct fx *fx = user_data;
	if (fx->nlogs == fx->caplogs) {
		int cap = fx->caplogs ? 2 * fx->caplogs : 64;
		struct log_rec *n = realloc(fx->logs, (size_t)cap * sizeof(*n));
		if (!n)
			return;
		fx->logs = n;
		fx->caplogs = cap;
	}
	fx->logs[fx->nlogs].level = level;
	fx->logs[fx->nlogs].msg = strdup(msg);
	fx->nlogs++;
}

static void logs_dump(struct fx *fx)
{
	for (int i = 0; i < fx->nlogs; i++)
		print_message("  logged (%d): %s\n", fx->logs[i].level, fx->logs[i].msg);
}

/* A message at `level` that contains every one of the NULL-terminated parts. */
static const char *logged(struct fx *fx, enum log_level level, ...)
{
	for (int i = 0; i < fx->nlogs; i++) {
		if (fx->logs[i].level != level)
			continue;
		va_list ap;
		va_start(ap, level);
		bool all = true;
		for (const char *part; (part = va_arg(ap, const char *));)
			if (!strstr(fx->logs[i].msg, part))
				all = false;
		va_end(ap);
		if (all)
			return fx->logs[i].msg;
	}
	return NULL;
}

#define ASSERT_LOGGED(fx, level, ...)                                                              \
	do {                                                                                       \
		if (!logged(fx, level, __VA_ARGS__, (const char *)NULL)) {                         \
			logs_dump(fx);                                                             \
			fail_msg("no log message at level %d with: %s", level, #__VA_ARGS__);      \
		}                                                                                  \
	} while (0)

/* ---- host callbacks ----------------------------------------------------- */

static void on_publish(void *user_data, struct frame *f)
{
	struct fx *fx = user_data;
	if (!f->sealed)
		fx->unsealed++;
	if (fx->nframes < (int)ARRAY_SIZE(fx->frames))
		fx->frames[fx->nframes++] = frame_ref(f);
}

static void on_radio_changed(void *user_data, struct labgw_radio *r, bool removed)
{
	struct fx *fx = user_data;
	if (fx->nstates == (int)ARRAY_SIZE(fx->states))
		return;
	struct state_rec *s = &fx->states[fx->nstates++];
	snprintf(s->name, sizeof(s->name), "%s", radio_name(r));
	s->st = radio_get_state(r);
	s->removed = removed;
	s->at_ms = uv_now(&fx->loop);
	s->leftovers = radio_leftovers(r);
	snprintf(s->reason, sizeof(s->reason), "%s", radio_reason(r) ? radio_reason(r) : "");
}

static void on_tx_status(void *user_data, struct labgw_radio *r, const char *cmd_id,
			 enum labgw_tx_status st, const char *reason)
{
	struct fx *fx = user_data;
	if (fx->ntx == (int)ARRAY_SIZE(fx->txs))
		return;
	struct tx_rec *t = &fx->txs[fx->ntx++];
	snprintf(t->radio, sizeof(t->radio), "%s", radio_name(r));
	snprintf(t->id, sizeof(t->id), "%s", cmd_id);
	t->st = st;
	snprintf(t->reason, sizeof(t->reason), "%s", reason ? reason : "");
}

static uint64_t on_next_seq(void *user_data)
{
	struct fx *fx = user_data;
	return fx->seq++;
}

static const struct plugin_host_ops ops = {
	.publish = on_publish,
	.radio_changed = on_radio_changed,
	.tx_status = on_tx_status,
	.next_seq = on_next_seq,
};

/* ---- fixture ------------------------------------------------------------ */

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	const char *mods = getenv("LABGW_TEST_MODULES");
	if (!mods)
		mods = "build/tests/modules";
	/* plugin_dir is a path in a file under /tmp: make it absolute */
	if (!realpath(mods, fx->modules)) {
		print_error("LABGW_TEST_MODULES=%s: %s\n", mods, strerror(errno));
		free(fx);
		return -1;
	}
	snprintf(fx->tmp, sizeof(fx->tmp), "/tmp/labgw-test-host-XXXXXX");
	if (!mkdtemp(fx->tmp)) {
		free(fx);
		return -1;
	}
	snprintf(fx->state_dir, sizeof(fx->state_dir), "%s/state", fx->tmp);
	mkdir(fx->state_dir, 0700);
	fx->seq = SEQ0;
	if (uv_loop_init(&fx->loop) < 0)
		return -1;
	uv_timer_init(&fx->loop, &fx->guard);
	fx->h = plugin_host_new(&fx->loop, &ops, fx);
	if (!fx->h)
		return -1;
	log_set_hook(log_hook, fx);
	*state = fx;
	return 0;
}

static void walk_cb(uv_handle_t *handle, void *arg)
{
	print_error("  handle left: %s%s\n", uv_handle_type_name(uv_handle_get_type(handle)),
		    uv_is_closing(handle) ? " (closing)" : "");
}

/* Run the loop until nothing is left to do (bounded: a handle left active
 * is reported, not waited for). */
static bool drain(struct fx *fx)
{
	for (int i = 0; i < 5000; i++) {
		if (!uv_run(&fx->loop, UV_RUN_NOWAIT))
			return true;
		usleep(1000);
	}
	uv_walk(&fx->loop, walk_cb, NULL);
	return false;
}

/* Shut down, run the loop dry, free the host, and close the loop. */
static void fx_finish(struct fx *fx)
{
	fx->finished = true;
	plugin_host_shutdown(fx->h);
	uv_close((uv_handle_t *)&fx->guard, NULL);
	bool dry = drain(fx);
	plugin_host_free(fx->h);
	fx->h = NULL;
	assert_true(dry);
	assert_int_equal(uv_loop_close(&fx->loop), 0);
	assert_null(logged(fx, LOG_LVL_ERROR, "internal", (const char *)NULL));
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	log_set_hook(NULL, NULL);
	if (!fx->finished) {
		plugin_host_shutdown(fx->h);
		uv_close((uv_handle_t *)&fx->guard, NULL);
		drain(fx);
		plugin_host_free(fx->h);
		uv_loop_close(&fx->loop);
	}
	for (int i = 0; i < fx->nframes; i++)
		frame_unref(fx->frames[i]);
	for (int i = 0; i < fx->ncfg; i++)
		config_free(fx->cfgs[i]);
	for (int i = 0; i < fx->ndl; i++)
		dlclose(fx->dl[i]);
	for (int i = 0; i < fx->nlogs; i++)
		free(fx->logs[i].msg);
	free(fx->logs);
	nftw(fx->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void guard_cb(uv_timer_t *t)
{
	struct fx *fx = t->data;
	fx->timed_out = true;
}

static void guard_start(struct fx *fx, uint64_t ms)
{
	fx->timed_out = false;
	fx->guard.data = fx;
	uv_timer_start(&fx->guard, guard_cb, ms, 0);
}

/* Run the loop until `cond` holds or `ms` passed; evaluates to `cond`. */
#define RUN_UNTIL(fx, cond, ms)                                                                    \
	({                                                                                         \
		guard_start(fx, ms);                                                               \
		while (!(cond) && !(fx)->timed_out)                                                \
			uv_run(&(fx)->loop, UV_RUN_ONCE);                                          \
		uv_timer_stop(&(fx)->guard);                                                       \
		(cond);                                                                            \
	})

static void run_for(struct fx *fx, uint64_t ms)
{
	RUN_UNTIL(fx, false, ms);
}

/* Write a configuration file with the [gateway] header and `radios`, load
 * it (kept until teardown), and return it. */
static struct config *fx_config(struct fx *fx, const char *radios)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/labgw-%d.conf", fx->tmp, fx->ncfg);
	FILE *fp = fopen(path, "w");
	assert_non_null(fp);
	fprintf(fp, "[gateway]\nid = gwtest\nplugin_dir = %s\nstate_dir = %s\n%s", fx->modules,
		fx->state_dir, radios);
	fclose(fp);
	struct config *c = NULL;
	if (config_load(path, &c) != 0) {
		logs_dump(fx);
		fail_msg("test configuration refused:\n%s", radios);
	}
	assert_true(fx->ncfg < (int)ARRAY_SIZE(fx->cfgs));
	fx->cfgs[fx->ncfg++] = c;
	return c;
}

/* Free a configuration the host no longer points into (ASan finds it if
 * it still does). */
static void fx_config_free(struct fx *fx, struct config *c)
{
	for (int i = 0; i < fx->ncfg; i++) {
		if (fx->cfgs[i] == c) {
			config_free(c);
			fx->cfgs[i] = fx->cfgs[--fx->ncfg];
			return;
		}
	}
	fail_msg("not a test configuration");
}

/* The probe of test module `name`, reset. */
static struct probe *fx_probe(struct fx *fx, const char *name)
{
	char path[PATH_MAX + 64];
	snprintf(path, sizeof(path), "%s/%s.so", fx->modules, name);
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h)
		fail_msg("%s", dlerror());
	assert_true(fx->ndl < (int)ARRAY_SIZE(fx->dl));
	fx->dl[fx->ndl++] = h;
	struct probe *p = dlsym(h, LABGW_TEST_PROBE);
	assert_non_null(p);
	memset(p, 0, sizeof(*p));
	return p;
}

static struct probe_radio *slot(struct probe *p, const char *radio)
{
	struct probe_radio *s = probe_slot(p, radio);
	assert_non_null(s);
	return s;
}

static int count_states(struct fx *fx, const char *name, enum radio_state st, bool removed)
{
	int n = 0;
	for (int i = 0; i < fx->nstates; i++)
		if (!strcmp(fx->states[i].name, name) && fx->states[i].st == st &&
		    fx->states[i].removed == removed)
			n++;
	return n;
}

static int frames_of(struct fx *fx, const char *radio)
{
	int n = 0;
	for (int i = 0; i < fx->nframes; i++)
		n += !strcmp(fx->frames[i]->radio, radio);
	return n;
}

static json_t *frame_json(const struct frame *f)
{
	json_error_t je;
	json_t *j = json_loadb(f->json, f->json_len, 0, &je);
	if (!j)
		fail_msg("frame JSON: %s: %s", je.text, f->json);
	return j;
}

static int command(struct fx *fx, struct labgw_radio *r, const char *id, const char *op,
		   const char *body, char *err, size_t errlen)
{
	struct labgw_command cmd = {
		.size = sizeof(cmd),
		.id = id,
		.sbx = "bob",
		.op = op,
		.body = body,
		.body_len = strlen(body),
	};
	return plugin_host_command(fx->h, r, &cmd, err, errlen);
}

/* ---- a good module ------------------------------------------------------ */

static void test_good_radio_publishes_sealed_frames(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	struct config *c = fx_config(fx, "[radio a]\nmodule = good\ninterval = 5ms\nchannel = 11\n"
					 "[radio b]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);

	struct labgw_radio *a = plugin_host_find(fx->h, "a");
	struct labgw_radio *b = plugin_host_find(fx->h, "b");
	assert_non_null(a);
	assert_non_null(b);
	assert_null(plugin_host_find(fx->h, "c"));
	/* configuration order */
	assert_ptr_equal(plugin_host_first(fx->h), a);
	assert_ptr_equal(plugin_host_next(a), b);
	assert_null(plugin_host_next(b));
	assert_int_equal(radio_get_state(a), RADIO_UP);
	assert_string_equal(radio_state_name(radio_get_state(a)), "up");
	assert_string_equal(radio_name(a), "a");
	assert_string_equal(radio_module(a), "good");
	assert_int_equal(radio_techs(a), LABGW_TECH_BLE | LABGW_TECH_WLAN); /* the module's */
	assert_null(radio_reason(a));
	/* starting (again when start reported details), then up once */
	assert_true(count_states(fx, "a", RADIO_STARTING, false) >= 1);
	assert_int_equal(count_states(fx, "a", RADIO_UP, false), 1);
	assert_int_equal(fx->states[fx->nstates - 1].st, RADIO_UP);
	/* the module got its configuration and the gateway id */
	assert_int_equal(slot(p, "a")->interval_ms, 5);
	assert_int_equal(slot(p, "b")->interval_ms, 3600000);
	assert_string_equal(slot(p, "a")->gw, "gwtest");
	/* state_update details */
	const json_t *d = radio_details(a);
	assert_non_null(d);
	assert_int_equal(json_integer_value(json_object_get(d, "channel")), 11);
	assert_int_equal(json_integer_value(json_object_get(radio_details(b), "channel")), 37);
	assert_int_equal(radio_ledger_size(a), 1);

	assert_true(RUN_UNTIL(fx, frames_of(fx, "a") >= 3, 2000));
	assert_int_equal(fx->unsealed, 0);
	assert_int_equal(frames_of(fx, "b"), 0); /* interval = 1h */
	assert_int_equal(radio_frames_in(a), fx->nframes);
	assert_int_equal(slot(p, "a")->publish_rc, 0);
	for (int i = 0; i < 3; i++) {
		struct frame *f = fx->frames[i];
		assert_true(f->sealed);
		assert_true(f->seq == SEQ0 + (uint64_t)i); /* numbered by next_seq */
		char id[64];
		snprintf(id, sizeof(id), "gwtest-%016llx", (unsigned long long)(SEQ0 + i));
		assert_string_equal(f->id, id);
		json_t *j = frame_json(f);
		assert_string_equal(json_string_value(json_object_get(j, "gw")), "gwtest");
		assert_string_equal(json_string_value(json_object_get(j, "radio")), "a");
		assert_string_equal(json_string_value(json_object_get(j, "tech")), "ble");
		assert_string_equal(json_string_value(json_object_get(j, "type")), "rx.ble.adv");
		assert_string_equal(json_string_value(json_object_get(j, "payload")), "AgEG");
		json_t *dev = json_object_get(j, "dev");
		assert_string_equal(json_string_value(json_object_get(dev, "id")),
				    "aa:bb:cc:dd:ee:ff");
		assert_true(json_is_false(json_object_get(dev, "claimed")));
		json_t *data = json_object_get(j, "data");
		assert_int_equal(json_integer_value(json_object_get(data, "n")), i);
		assert_string_equal(json_string_value(json_object_get(
					    json_object_get(data, "ibeacon"), "uuid")),
				    "f7826da6");
		assert_int_equal(
			json_integer_value(json_object_get(json_object_get(j, "sig"), "rssi")),
			-60);
		json_decref(j);
	}
	radio_count_out(a, 5);
	radio_count_out(a, 2);
	assert_int_equal(radio_frames_out(a), 7);

	fx_finish(fx);
	assert_int_equal(slot(p, "a")->stops, 1);
	assert_int_equal(slot(p, "a")->exits, 1);
	assert_int_equal(slot(p, "b")->exits, 1);
	assert_int_equal(slot(p, "a")->ticks_after_stop, 0);
	assert_int_equal(count_states(fx, "a", RADIO_STOPPED, true), 1);
	assert_int_equal(count_states(fx, "b", RADIO_STOPPED, true), 1);
}

static void test_commands_report_tx_status(void **state)
{
	struct fx *fx = *state;
	fx_probe(fx, "good");
	struct config *c =
		fx_config(fx, "[radio a]\nmodule = good\ninterval = 1h\n"
			      "[radio n]\nmodule = good\ninterval = 1h\nfail_tx = yes\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct labgw_radio *a = plugin_host_find(fx->h, "a");
	struct labgw_radio *n = plugin_host_find(fx->h, "n");
	char err[128];

	assert_int_equal(command(fx, a, "c1", "tx", "{\"data\":\"AQID\"}", err, sizeof(err)), 0);
	assert_int_equal(fx->ntx, 0); /* progress comes later, from the loop */
	assert_true(RUN_UNTIL(fx, fx->ntx >= 2, 2000));
	assert_string_equal(fx->txs[0].id, "c1");
	assert_string_equal(fx->txs[0].radio, "a");
	assert_int_equal(fx->txs[0].st, LABGW_TX_SENT);
	assert_string_equal(fx->txs[1].id, "c1");
	assert_int_equal(fx->txs[1].st, LABGW_TX_ACKED);
	assert_string_equal(fx->txs[1].reason, "");

	/* refusals carry the module's reason, or the host's */
	assert_int_equal(command(fx, a, "c2", "scan", "{}", err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "unknown op scan");
	assert_int_equal(command(fx, a, "c3", "tx", "{\"bad\":1}", err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "bad request");
	for (int i = 0; i < 8; i++) {
		char id[16];
		snprintf(id, sizeof(id), "q%d", i);
		assert_int_equal(command(fx, a, id, "tx", "{}", err, sizeof(err)), 0);
	}
	assert_int_equal(command(fx, a, "q8", "tx", "{}", err, sizeof(err)), -EBUSY);
	assert_string_equal(err, strerror(EBUSY));
	assert_true(RUN_UNTIL(fx, fx->ntx >= 2 + 16, 2000));

	/* a failed transmit */
	int before = fx->ntx;
	assert_int_equal(command(fx, n, "c4", "tx", "{}", err, sizeof(err)), 0);
	assert_true(RUN_UNTIL(fx, fx->ntx > before, 2000));
	assert_string_equal(fx->txs[before].id, "c4");
	assert_string_equal(fx->txs[before].radio, "n");
	assert_int_equal(fx->txs[before].st, LABGW_TX_FAILED);
	assert_string_equal(fx->txs[before].reason, "no ack");

	/* accepted but never sent: the stop reports it failed */
	before = fx->ntx;
	assert_int_equal(command(fx, a, "c5", "tx", "{}", err, sizeof(err)), 0);
	fx_finish(fx);
	assert_int_equal(fx->ntx, before + 1);
	assert_string_equal(fx->txs[before].id, "c5");
	assert_int_equal(fx->txs[before].st, LABGW_TX_FAILED);
	assert_string_equal(fx->txs[before].reason, "radio stopped");
}

/* ---- refused configurations --------------------------------------------- */

static void test_wrong_abi_refused_with_warning(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "wrong_abi");
	struct config *c = fx_config(fx, "[radio w]\nmodule = wrong_abi\n");
	assert_int_equal(plugin_host_apply(fx->h, c), -EINVAL);
	ASSERT_LOGGED(fx, LOG_LVL_WARNING, "refusing module", "wrong_abi.so", "ABI 99.3");
	char where[300];
	snprintf(where, sizeof(where), "%s:%d: [radio w] module:", c->path, HEADER_LINES + 1);
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "wrong_abi", "refused");
	assert_int_equal(slot(p, "w")->inits, 0);
	assert_null(plugin_host_first(fx->h));
	assert_int_equal(fx->nstates, 0);
	fx_finish(fx);
}

static void test_init_failure_refused(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "init_fails");
	struct config *c = fx_config(fx, "[radio i]\nmodule = init_fails\nregion = MARS\n");
	assert_int_equal(plugin_host_apply(fx->h, c), -EINVAL);
	char where[300];
	/* the module's own complaint, at the key's line */
	snprintf(where, sizeof(where), "%s:%d: [radio i] region: ", c->path, HEADER_LINES + 3);
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "'MARS' is not a region");
	snprintf(where, sizeof(where), "%s:%d: [radio i]", c->path, HEADER_LINES + 1);
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "init_fails", "refused its configuration");
	assert_int_equal(slot(p, "i")->inits, 1);
	assert_int_equal(slot(p, "i")->exits, 0); /* no exit without a successful init */
	assert_null(plugin_host_first(fx->h));
	fx_finish(fx);
}

static void test_bad_radio_keys_refused_with_file_line(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	/* a key the module does not read */
	struct config *c = fx_config(fx, "[radio a]\nmodule = good\ninterval = 10ms\n"
					 "intervall = 20ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c), -EINVAL);
	char where[300];
	snprintf(where, sizeof(where), "%s:%d: [radio a] intervall: ", c->path, HEADER_LINES + 4);
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "unknown key for module good");
	assert_int_equal(slot(p, "a")->inits, 1);
	assert_int_equal(slot(p, "a")->starts, 0);
	assert_int_equal(slot(p, "a")->exits, 1); /* inited, so exited */
	assert_null(plugin_host_first(fx->h));

	/* a bad value for a key it reads */
	c = fx_config(fx, "[radio a]\nmodule = good\n\ninterval = soon\n");
	assert_int_equal(plugin_host_apply(fx->h, c), -EINVAL);
	snprintf(where, sizeof(where), "%s:%d: [radio a] interval: ", c->path, HEADER_LINES + 4);
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "'soon' is not a duration");
	c = fx_config(fx, "[radio a]\nmodule = good\nchannel = 40\n");
	assert_int_equal(plugin_host_apply(fx->h, c), -EINVAL);
	snprintf(where, sizeof(where), "%s:%d: [radio a] channel: ", c->path, HEADER_LINES + 3);
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "out of range 0..39");

	/* a module that is not there */
	c = fx_config(fx, "[radio z]\nmodule = nosuch\n");
	assert_int_equal(plugin_host_apply(fx->h, c), -EINVAL);
	snprintf(where, sizeof(where), "%s:%d: [radio z] module: ", c->path, HEADER_LINES + 1);
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "'nosuch' not found");
	assert_null(plugin_host_first(fx->h));
	assert_int_equal(fx->nstates, 0);
	fx_finish(fx);
}

/* ---- apply: all or nothing; keep, restart, stop ------------------------- */

static void test_apply_is_all_or_nothing(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	struct probe *pi = fx_probe(fx, "init_fails");
	struct config *c1 = fx_config(fx, "[radio a]\nmodule = good\ninterval = 5ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c1), 0);
	struct labgw_radio *a = plugin_host_find(fx->h, "a");
	assert_true(RUN_UNTIL(fx, frames_of(fx, "a") >= 1, 2000));
	int nstates = fx->nstates;

	/* a changed, b new but refused: nothing changes */
	struct config *c2 = fx_config(fx, "[radio a]\nmodule = good\ninterval = 7ms\n"
					  "[radio b]\nmodule = init_fails\n");
	assert_int_equal(plugin_host_apply(fx->h, c2), -EINVAL);
	assert_int_equal(slot(pi, "b")->inits, 1);
	assert_ptr_equal(plugin_host_find(fx->h, "a"), a);
	assert_null(plugin_host_find(fx->h, "b"));
	assert_int_equal(radio_get_state(a), RADIO_UP);
	assert_int_equal(slot(p, "a")->stops, 0);
	assert_int_equal(slot(p, "a")->starts, 1);

	/* a removed, c with a module of the wrong ABI: nothing changes */
	struct config *c3 = fx_config(fx, "[radio c]\nmodule = wrong_abi\n");
	assert_int_equal(plugin_host_apply(fx->h, c3), -EINVAL);
	assert_ptr_equal(plugin_host_find(fx->h, "a"), a);
	assert_null(plugin_host_find(fx->h, "c"));
	assert_int_equal(slot(p, "a")->stops, 0);
	assert_int_equal(fx->nstates, nstates); /* no state change was announced */

	/* and the old radio still works */
	int had = frames_of(fx, "a");
	assert_true(RUN_UNTIL(fx, frames_of(fx, "a") >= had + 2, 2000));
	assert_ptr_equal(plugin_host_first(fx->h), a);
	assert_null(plugin_host_next(a));
	fx_finish(fx);
	assert_int_equal(slot(p, "a")->ticks_after_stop, 0);
}

static void test_reapply_keeps_restarts_stops(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	const char *text = "[radio a]\nmodule = good\ninterval = 5ms\n"
			   "[radio b]\nmodule = good\ninterval = 5ms\n";
	struct config *c1 = fx_config(fx, text);
	assert_int_equal(plugin_host_apply(fx->h, c1), 0);
	struct labgw_radio *a = plugin_host_find(fx->h, "a");
	struct labgw_radio *b = plugin_host_find(fx->h, "b");
	int nstates = fx->nstates;

	/* the same file again: both instances kept, nothing restarted */
	struct config *c2 = fx_config(fx, text);
	assert_int_equal(plugin_host_apply(fx->h, c2), 0);
	assert_ptr_equal(plugin_host_find(fx->h, "a"), a);
	assert_ptr_equal(plugin_host_find(fx->h, "b"), b);
	assert_int_equal(slot(p, "a")->inits, 1);
	assert_int_equal(slot(p, "a")->starts, 1);
	assert_int_equal(slot(p, "a")->stops, 0);
	assert_int_equal(fx->nstates, nstates);
	/* the host must now point into c2 only */
	fx_config_free(fx, c1);
	assert_true(RUN_UNTIL(fx, frames_of(fx, "a") >= 2, 2000));

	/* a's section changed: a restarts with the new values, b is kept */
	struct config *c3 = fx_config(fx, "[radio a]\nmodule = good\ninterval = 6ms\n"
					  "[radio b]\nmodule = good\ninterval = 5ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c3), 0);
	fx_config_free(fx, c2);
	struct labgw_radio *a2 = plugin_host_find(fx->h, "a");
	assert_non_null(a2);
	assert_true(a2 != a);
	assert_int_equal(radio_get_state(a2), RADIO_UP);
	assert_ptr_equal(plugin_host_find(fx->h, "b"), b);
	assert_int_equal(slot(p, "a")->inits, 2);
	assert_int_equal(slot(p, "a")->starts, 2);
	assert_int_equal(slot(p, "a")->stops, 1);
	assert_int_equal(slot(p, "a")->interval_ms, 6);
	assert_int_equal(slot(p, "b")->starts, 1);
	assert_int_equal(slot(p, "b")->stops, 0);
	assert_int_equal(count_states(fx, "a", RADIO_STOPPED, true), 1);
	assert_int_equal(count_states(fx, "b", RADIO_STOPPED, true), 0);
	ASSERT_LOGGED(fx, LOG_LVL_NOTICE, "radio a", "configuration changed");
	run_for(fx, 20);
	assert_int_equal(slot(p, "a")->exits, 1); /* the old instance */
	assert_int_equal(slot(p, "a")->ticks_after_stop, 0);

	/* a removed: stopped for good; b runs on */
	struct config *c4 = fx_config(fx, "[radio b]\nmodule = good\ninterval = 5ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c4), 0);
	fx_config_free(fx, c3);
	assert_null(plugin_host_find(fx->h, "a"));
	assert_ptr_equal(plugin_host_first(fx->h), b);
	assert_int_equal(count_states(fx, "a", RADIO_STOPPED, true), 2);
	ASSERT_LOGGED(fx, LOG_LVL_NOTICE, "radio a", "removed from configuration");
	int had_b = frames_of(fx, "b"), had_a = frames_of(fx, "a");
	assert_true(RUN_UNTIL(fx, frames_of(fx, "b") >= had_b + 2, 2000));
	assert_int_equal(frames_of(fx, "a"), had_a);
	assert_int_equal(slot(p, "a")->stops, 2);
	assert_int_equal(slot(p, "a")->exits, 2);
	assert_int_equal(slot(p, "a")->ticks_after_stop, 0);
	assert_int_equal(slot(p, "b")->stops, 0);
	fx_finish(fx);
	assert_int_equal(slot(p, "b")->exits, 1);
}

/* ---- the ledger ---------------------------------------------------------- */

static void test_leftovers_cancelled_after_stop(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "leaves_timer");
	fx_probe(fx, "good");
	struct config *c = fx_config(fx, "[radio s]\nmodule = leaves_timer\n"
					 "[radio g]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct probe_radio *s = slot(p, "s");
	assert_true(RUN_UNTIL(fx, s->ticks >= 3 && s->fd_events >= 2, 2000));
	struct labgw_radio *r = plugin_host_find(fx->h, "s");
	assert_int_equal(radio_ledger_size(r), 2);
	assert_int_equal(radio_leftovers(r), 0);

	/* remove it: stop forgets the timer and the fd watch */
	struct config *c2 = fx_config(fx, "[radio g]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c2), 0);
	assert_int_equal(s->stops, 1);
	ASSERT_LOGGED(fx, LOG_LVL_WARNING, "radio s", "leaves_timer", "left 2");
	bool seen = false;
	for (int i = 0; i < fx->nstates; i++)
		if (!strcmp(fx->states[i].name, "s") && fx->states[i].removed) {
			assert_int_equal(fx->states[i].leftovers, 2);
			seen = true;
		}
	assert_true(seen);
	int ticks = s->ticks, events = s->fd_events;
	run_for(fx, 40);
	assert_int_equal(s->ticks, ticks);
	assert_int_equal(s->fd_events, events);
	assert_int_equal(s->ticks_after_stop, 0);
	assert_int_equal(s->fd_events_after_stop, 0);
	assert_int_equal(s->exits, 1);
	/* a well-behaved neighbour leaves nothing behind */
	assert_null(logged(fx, LOG_LVL_WARNING, "radio g", "left", (const char *)NULL));
	fx_finish(fx);
	assert_null(logged(fx, LOG_LVL_WARNING, "radio g", "left", (const char *)NULL));
}

/* ---- absent and failed radios ------------------------------------------- */

static void test_absent_radio_daemon_runs_on(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "absent");
	fx_probe(fx, "good");
	struct plugin_host_limits lim = {.fail_threshold = 5,
					 .backoff_min_ms = 10,
					 .backoff_max_ms = 100,
					 .absent_retry_ms = 10};
	plugin_host_set_limits(fx->h, &lim);
	struct config *c = fx_config(fx, "[radio x]\nmodule = absent\n"
					 "[radio a]\nmodule = good\ninterval = 5ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct labgw_radio *x = plugin_host_find(fx->h, "x");
	struct labgw_radio *a = plugin_host_find(fx->h, "a");
	assert_int_equal(radio_get_state(x), RADIO_ABSENT);
	assert_string_equal(radio_state_name(RADIO_ABSENT), "absent");
	assert_non_null(radio_reason(x));
	assert_non_null(strstr(radio_reason(x), strerror(ENODEV)));
	assert_int_equal(count_states(fx, "x", RADIO_ABSENT, false), 1);
	assert_int_equal(radio_ledger_size(x), 0); /* start's timer was undone */
	assert_int_equal(radio_get_state(a), RADIO_UP);

	struct probe_radio *s = slot(p, "x");
	assert_true(RUN_UNTIL(fx, s->starts >= 3 && frames_of(fx, "a") >= 2, 2000));
	assert_true(radio_restarts(x) >= 2);
	assert_int_equal(radio_get_state(x), RADIO_ABSENT);
	assert_int_equal(s->ticks, 0);
	assert_int_equal(s->stops, 0); /* never started, so never stopped */
	char err[128];
	assert_int_equal(command(fx, x, "c1", "tx", "{}", err, sizeof(err)), -ENODEV);
	assert_string_equal(err, "radio x is absent");
	assert_int_equal(s->commands, 0);
	fx_finish(fx);
	assert_int_equal(s->exits, 1);
	assert_int_equal(s->ticks, 0);
}

/* The times at which radio `name` went failed and was started again. */
static int fail_restart_delays(struct fx *fx, const char *name, uint64_t *delays, int max)
{
	int n = 0;
	for (int i = 0; i < fx->nstates && n < max; i++) {
		if (strcmp(fx->states[i].name, name) || fx->states[i].st != RADIO_FAILED)
			continue;
		for (int j = i + 1; j < fx->nstates; j++) {
			if (!strcmp(fx->states[j].name, name) &&
			    fx->states[j].st == RADIO_STARTING) {
				delays[n++] = fx->states[j].at_ms - fx->states[i].at_ms;
				break;
			}
		}
	}
	return n;
}

static void test_failing_callbacks_mark_radio_failed(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "failing");
	struct plugin_host_limits lim = {.fail_threshold = 3,
					 .backoff_min_ms = 10,
					 .backoff_max_ms = 10000,
					 .absent_retry_ms = 1000};
	plugin_host_set_limits(fx->h, &lim);
	struct config *c = fx_config(fx, "[radio f]\nmodule = failing\nperiod = 2ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct labgw_radio *r = plugin_host_find(fx->h, "f");
	struct probe_radio *s = slot(p, "f");
	assert_int_equal(radio_get_state(r), RADIO_UP);
	assert_true(RUN_UNTIL(fx, radio_get_state(r) == RADIO_FAILED, 2000));
	/* after exactly fail_threshold failures in a row */
	assert_int_equal(s->ticks, 3);
	assert_int_equal(s->stops, 1);
	assert_non_null(strstr(radio_reason(r), "3 callbacks failed in a row"));
	assert_non_null(strstr(radio_reason(r), strerror(EIO)));
	assert_string_equal(radio_state_name(RADIO_FAILED), "failed");
	ASSERT_LOGGED(fx, LOG_LVL_ERROR, "radio f", "failed");
	assert_int_equal(radio_ledger_size(r), 0);

	/* restarted after the backoff, and failed again */
	assert_true(RUN_UNTIL(fx, s->starts >= 3, 3000));
	assert_true(radio_restarts(r) >= 2);
	assert_true(count_states(fx, "f", RADIO_FAILED, false) >= 2);
	assert_int_equal(s->ticks_after_stop, 0);

	/* a failed radio cannot use the loop or publish */
	assert_true(RUN_UNTIL(fx, radio_get_state(r) == RADIO_FAILED, 2000));
	const struct labgw_host *host = s->host;
	struct labgw_radio *mr = s->radio;
	assert_ptr_equal(mr, r);
	int frames = fx->nframes;
	struct labgw_frame *lf = host->frame_new(mr, LABGW_TECH_LORAWAN, "rx.lorawan.uplink");
	assert_non_null(lf);
	assert_int_equal(host->publish(lf), -EPERM);
	assert_int_equal(fx->nframes, frames);
	char err[64];
	assert_int_equal(command(fx, r, "c1", "tx", "{}", err, sizeof(err)), -ENODEV);
	assert_string_equal(err, "radio f is failed");
	fx_finish(fx);
	assert_int_equal(s->exits, 1);
}

static void test_failed_radio_backoff_grows(void **state)
{
	/* A module whose start succeeds but whose callbacks keep failing must
	 * be retried with a doubling delay (DESIGN §3: "never in a tight
	 * loop"), not every backoff_min_ms forever. */
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "failing");
	struct plugin_host_limits lim = {.fail_threshold = 3,
					 .backoff_min_ms = 10,
					 .backoff_max_ms = 80,
					 .absent_retry_ms = 1000};
	plugin_host_set_limits(fx->h, &lim);
	struct config *c = fx_config(fx, "[radio f]\nmodule = failing\nperiod = 1ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct probe_radio *s = slot(p, "f");
	assert_true(RUN_UNTIL(fx, s->starts >= 6, 5000));
	uint64_t d[5];
	int n = fail_restart_delays(fx, "f", d, 5);
	assert_int_equal(n, 5);
	for (int k = 0; k < n; k++) {
		uint64_t want = 10u << k;
		if (want > 80)
			want = 80;
		if (d[k] < want)
			fail_msg(
				"restart %d came %llu ms after the failure; expected at least %llu "
				"(delays %llu %llu %llu %llu %llu ms)",
				k + 1, (unsigned long long)d[k], (unsigned long long)want,
				(unsigned long long)d[0], (unsigned long long)d[1],
				(unsigned long long)d[2], (unsigned long long)d[3],
				(unsigned long long)d[4]);
	}
	fx_finish(fx);
}

static void test_failing_start_backoff_then_up(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "failing");
	struct plugin_host_limits lim = {.fail_threshold = 3,
					 .backoff_min_ms = 10,
					 .backoff_max_ms = 1000,
					 .absent_retry_ms = 1000};
	plugin_host_set_limits(fx->h, &lim);
	struct config *c = fx_config(fx, "[radio f]\nmodule = failing\npattern = o\n"
					 "start_fails = 3\nperiod = 5ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct labgw_radio *r = plugin_host_find(fx->h, "f");
	assert_int_equal(radio_get_state(r), RADIO_FAILED);
	assert_non_null(strstr(radio_reason(r), "start:"));
	assert_non_null(strstr(radio_reason(r), strerror(EIO)));
	struct probe_radio *s = slot(p, "f");
	assert_true(RUN_UNTIL(fx, radio_get_state(r) == RADIO_UP, 3000));
	assert_int_equal(s->starts, 4);
	assert_int_equal(radio_restarts(r), 3);
	assert_null(radio_reason(r));
	uint64_t d[3];
	assert_int_equal(fail_restart_delays(fx, "f", d, 3), 3);
	assert_true(d[0] >= 10);
	assert_true(d[1] >= 20);
	assert_true(d[2] >= 40);
	/* once up, its successful callbacks keep it up */
	assert_true(RUN_UNTIL(fx, s->ticks >= 5, 2000));
	assert_int_equal(radio_get_state(r), RADIO_UP);
	fx_finish(fx);
}

static void test_occasional_failures_are_tolerated(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "failing");
	struct plugin_host_limits lim = {.fail_threshold = 3,
					 .backoff_min_ms = 10,
					 .backoff_max_ms = 1000,
					 .absent_retry_ms = 1000};
	plugin_host_set_limits(fx->h, &lim);
	/* two failures, then a success: the count starts over */
	struct config *c =
		fx_config(fx, "[radio f]\nmodule = failing\npattern = ffo\nperiod = 1ms\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct probe_radio *s = slot(p, "f");
	assert_true(RUN_UNTIL(fx, s->ticks >= 12, 3000));
	struct labgw_radio *r = plugin_host_find(fx->h, "f");
	assert_int_equal(radio_get_state(r), RADIO_UP);
	assert_int_equal(s->stops, 0);
	assert_int_equal(count_states(fx, "f", RADIO_FAILED, false), 0);
	ASSERT_LOGGED(fx, LOG_LVL_WARNING, "radio f", "callback failed", "2 in a row");
	assert_null(logged(fx, LOG_LVL_WARNING, "radio f", "3 in a row", (const char *)NULL));
	fx_finish(fx);
}

/* ---- blocking work ------------------------------------------------------- */

struct work_ctx {
	atomic_bool go; /* set by the test: the work may finish */
	atomic_bool worked;
	int done_calls;
	int status;
	int exits_at_done;
	struct probe_radio *s;
};

static void work_fn(void *user_data)
{
	struct work_ctx *w = user_data;
	/* bounded, so that a failed test cannot leave a worker blocked */
	for (int i = 0; i < 5000 && !atomic_load(&w->go); i++)
		usleep(1000);
	atomic_store(&w->worked, true);
}

static void done_fn(void *user_data, int status)
{
	struct work_ctx *w = user_data;
	w->done_calls++;
	w->status = status;
	w->exits_at_done = w->s->exits;
}

static void test_work_done_and_cancelled(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	struct config *c = fx_config(fx, "[radio a]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct probe_radio *s = slot(p, "a");
	const struct labgw_host *host = s->host;

	/* finished while the radio runs: status 0 */
	struct work_ctx w1 = {.s = s};
	assert_int_equal(host->work_queue(s->radio, work_fn, done_fn, &w1), 0);
	atomic_store(&w1.go, true);
	assert_true(RUN_UNTIL(fx, w1.done_calls, 2000));
	assert_true(w1.worked);
	assert_int_equal(w1.status, 0);
	assert_int_equal(host->work_queue(s->radio, NULL, done_fn, &w1), -EINVAL);
	assert_int_equal(host->work_queue(s->radio, work_fn, NULL, &w1), -EINVAL);

	/* still running when the radio is removed: -ECANCELED, and exit only
	 * after the done callback */
	struct work_ctx w2 = {.s = s};
	assert_int_equal(host->work_queue(s->radio, work_fn, done_fn, &w2), 0);
	struct config *empty = fx_config(fx, "");
	assert_int_equal(plugin_host_apply(fx->h, empty), 0);
	assert_int_equal(s->stops, 1);
	assert_int_equal(s->exits, 0); /* waits for the work */
	atomic_store(&w2.go, true);
	assert_true(RUN_UNTIL(fx, w2.done_calls && s->exits, 2000));
	assert_true(w2.worked);
	assert_int_equal(w2.done_calls, 1);
	assert_int_equal(w2.status, -ECANCELED);
	assert_int_equal(w2.exits_at_done, 0);
	assert_int_equal(s->exits, 1);
	fx_finish(fx);
}

static void test_work_cancelled_by_restart(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	struct config *c = fx_config(fx, "[radio a]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct probe_radio *s = slot(p, "a");
	struct work_ctx w = {.s = s};
	assert_int_equal(s->host->work_queue(s->radio, work_fn, done_fn, &w), 0);
	/* the section changes: the instance that queued the work is replaced */
	struct config *c2 = fx_config(fx, "[radio a]\nmodule = good\ninterval = 30m\n");
	assert_int_equal(plugin_host_apply(fx->h, c2), 0);
	assert_int_equal(radio_get_state(plugin_host_find(fx->h, "a")), RADIO_UP);
	atomic_store(&w.go, true);
	assert_true(RUN_UNTIL(fx, w.done_calls, 2000));
	assert_int_equal(w.status, -ECANCELED);
	run_for(fx, 10);
	assert_int_equal(s->exits, 1);
	fx_finish(fx);
	assert_int_equal(s->exits, 2);
}

/* ---- key/value state ----------------------------------------------------- */

static void test_kv_round_trip_and_limits(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	struct config *c = fx_config(fx, "[radio a]\nmodule = good\ninterval = 1h\n"
					 "[radio b]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	const struct labgw_host *h = slot(p, "a")->host;
	struct labgw_radio *a = slot(p, "a")->radio;
	struct labgw_radio *b = slot(p, "b")->radio;
	char buf[128];

	assert_int_equal(h->kv_get(a, "fcnt.26011bda", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(h->kv_set(a, "fcnt.26011bda", "hello", 5), 0);
	memset(buf, 0, sizeof(buf));
	assert_int_equal(h->kv_get(a, "fcnt.26011bda", buf, sizeof(buf)), 5);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(h->kv_get(a, "fcnt.26011bda", buf, 5), 5);
	assert_int_equal(h->kv_get(a, "fcnt.26011bda", buf, 4), -ENOBUFS);
	/* overwrite, shorter */
	assert_int_equal(h->kv_set(a, "fcnt.26011bda", "bye", 3), 0);
	assert_int_equal(h->kv_get(a, "fcnt.26011bda", buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "bye", 3);
	/* an empty value exists */
	assert_int_equal(h->kv_set(a, "empty", "", 0), 0);
	assert_int_equal(h->kv_get(a, "empty", buf, sizeof(buf)), 0);
	/* every radio has its own */
	assert_int_equal(h->kv_get(b, "fcnt.26011bda", buf, sizeof(buf)), -ENOENT);
	/* it lives under state_dir */
	char path[512];
	snprintf(path, sizeof(path), "%s/radios/a/fcnt.26011bda", fx->state_dir);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 3);

	/* keys: [a-z0-9_.-], 1..64, not starting with '.' */
	char k64[65], k65[66];
	memset(k64, 'k', 64);
	k64[64] = '\0';
	memset(k65, 'k', 65);
	k65[65] = '\0';
	assert_int_equal(h->kv_set(a, k64, "x", 1), 0);
	assert_int_equal(h->kv_get(a, k64, buf, sizeof(buf)), 1);
	static const char *const bad[] = {"",	   ".hidden", "..",  "../x",	 "a/b",
					  "Upper", "a b",     "a\n", "\xc3\xa4", "/abs"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (h->kv_set(a, bad[i], "x", 1) != -EINVAL)
			fail_msg("kv_set accepted key '%s'", bad[i]);
		assert_int_equal(h->kv_get(a, bad[i], buf, sizeof(buf)), -EINVAL);
	}
	assert_int_equal(h->kv_set(a, k65, "x", 1), -EINVAL);
	assert_int_equal(h->kv_get(a, k65, buf, sizeof(buf)), -EINVAL);

	/* values: up to 64 KiB */
	size_t max = 64 * 1024;
	unsigned char *big = malloc(max + 1), *back = malloc(max + 1);
	for (size_t i = 0; i <= max; i++)
		big[i] = (unsigned char)(i * 31 + 7);
	assert_int_equal(h->kv_set(a, "big", big, max), 0);
	assert_int_equal(h->kv_get(a, "big", back, max + 1), (int)max);
	assert_memory_equal(back, big, max);
	assert_int_equal(h->kv_set(a, "big", big, max + 1), -EINVAL);
	assert_int_equal(h->kv_get(a, "big", back, max), (int)max); /* the old value stays */
	free(big);
	free(back);

	/* it persists across a restart of the radio */
	struct config *c2 = fx_config(fx, "[radio a]\nmodule = good\ninterval = 30m\n"
					  "[radio b]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c2), 0);
	struct labgw_radio *a2 = slot(p, "a")->radio;
	assert_non_null(a2);
	assert_true(a2 != a);
	assert_int_equal(h->kv_get(a2, "fcnt.26011bda", buf, sizeof(buf)), 3);
	assert_memory_equal(buf, "bye", 3);
	fx_finish(fx);
}

/* ---- techs and the ABI --------------------------------------------------- */

static void test_radio_narrows_its_techs(void **state)
{
	struct fx *fx = *state;
	fx_probe(fx, "good");
	struct config *c = fx_config(fx, "[radio a]\nmodule = good\ninterval = 1h\ntechs = wlan\n"
					 "[radio b]\nmodule = good\ninterval = 1h\n"
					 "techs = ble wlan\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	assert_int_equal(radio_techs(plugin_host_find(fx->h, "a")), LABGW_TECH_WLAN);
	assert_int_equal(radio_techs(plugin_host_find(fx->h, "b")),
			 LABGW_TECH_BLE | LABGW_TECH_WLAN);
	/* not a subset of the module's techs, or none at all */
	static const char *const bad[] = {"lorawan", "ble lorawan", "none"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char text[128];
		snprintf(text, sizeof(text),
			 "[radio x]\nmodule = good\ninterval = 1h\ntechs = %s\n", bad[i]);
		struct config *cx = fx_config(fx, text);
		assert_int_equal(plugin_host_apply(fx->h, cx), -EINVAL);
		char where[300];
		snprintf(where, sizeof(where), "%s:%d: [radio x] techs: ", cx->path,
			 HEADER_LINES + 4);
		ASSERT_LOGGED(fx, LOG_LVL_ERROR, where, "not served");
	}
	fx_finish(fx);
}

/* The layout of ABI 1.0 as released: modules built against it must keep
 * working with every 1.x daemon, so members are only ever added at the end
 * (from the reserved slots), never inserted. */
/* ABI 1.5: a running radio says its hardware went and came back */
static void test_radio_present_makes_a_running_radio_absent(void **state)
{
	struct fx *fx = *state;
	struct probe *p = fx_probe(fx, "good");
	struct config *c = fx_config(fx, "[radio a]\nmodule = good\ninterval = 1h\n");
	assert_int_equal(plugin_host_apply(fx->h, c), 0);
	struct labgw_radio *a = plugin_host_find(fx->h, "a");
	struct probe_radio *pa = slot(p, "a");
	assert_int_equal(radio_get_state(a), RADIO_UP);
	assert_non_null(pa->host->radio_present);

	int n = fx->nstates;
	pa->host->radio_present(pa->radio, false, "modem unplugged");
	assert_int_equal(radio_get_state(a), RADIO_ABSENT);
	assert_string_equal(radio_reason(a), "modem unplugged");
	assert_int_equal(fx->nstates, n + 1); /* announced once */
	assert_int_equal(fx->states[n].st, RADIO_ABSENT);
	assert_string_equal(fx->states[n].reason, "modem unplugged");
	pa->host->radio_present(pa->radio, false, "modem unplugged");
	assert_int_equal(fx->nstates, n + 1); /* no news */
	/* still running: the instance sees the hardware come back */
	assert_true(pa->running);
	assert_int_equal(pa->stops, 0);
	char err[128];
	assert_int_equal(command(fx, a, "c1", "tx", "{}", err, sizeof(err)), -ENODEV);

	pa->host->radio_present(pa->radio, true, NULL);
	assert_int_equal(radio_get_state(a), RADIO_UP);
	assert_null(radio_reason(a));
	assert_int_equal(fx->nstates, n + 2);
	assert_int_equal(fx->states[n + 1].st, RADIO_UP);

	/* a restart begins present */
	pa->host->radio_present(pa->radio, false, NULL);
	assert_string_equal(radio_reason(a), "no hardware");
	struct config *c2 = fx_config(fx, "[radio a]\nmodule = good\ninterval = 30m\n");
	assert_int_equal(plugin_host_apply(fx->h, c2), 0);
	a = plugin_host_find(fx->h, "a");
	assert_int_equal(radio_get_state(a), RADIO_UP);
	assert_null(radio_reason(a));
}

static void test_abi_1_0_layout_is_frozen(void **state)
{
#define SLOT(i) (8 + (i) * sizeof(void *))
	assert_int_equal(offsetof(struct labgw_plugin, size), 0);
	assert_int_equal(offsetof(struct labgw_plugin, abi_major), 4);
	assert_int_equal(offsetof(struct labgw_plugin, abi_minor), 6);
	assert_int_equal(offsetof(struct labgw_plugin, name), SLOT(0));
	assert_int_equal(offsetof(struct labgw_plugin, version), SLOT(1));
	assert_int_equal(offsetof(struct labgw_plugin, init), SLOT(3));
	assert_int_equal(offsetof(struct labgw_plugin, start), SLOT(4));
	assert_int_equal(offsetof(struct labgw_plugin, command), SLOT(5));
	assert_int_equal(offsetof(struct labgw_plugin, stop), SLOT(6));
	assert_int_equal(offsetof(struct labgw_plugin, exit), SLOT(7));
	assert_int_equal(sizeof(struct labgw_plugin), SLOT(8 + 8));

	assert_int_equal(offsetof(struct labgw_command, id), SLOT(0));
	assert_int_equal(offsetof(struct labgw_command, body_len), SLOT(4));
	assert_int_equal(sizeof(struct labgw_command), SLOT(5 + 6));

	static const struct {
		size_t off;
		const char *name;
	} host[] = {
#define M(m) {offsetof(struct labgw_host, m), #m}
		M(log),
		M(radio_name),
		M(gateway_id),
		M(config_get),
		M(config_get_int),
		M(config_get_bool),
		M(config_get_duration_ms),
		M(config_error),
		M(frame_new),
		M(frame_set_dev),
		M(frame_set_payload),
		M(frame_set_int),
		M(frame_set_double),
		M(frame_set_bool),
		M(frame_set_str),
		M(frame_set_hex),
		M(frame_set_base64),
		M(frame_append_str),
		M(publish),
		M(frame_discard),
		M(state_update),
		M(watch_fd),
		M(watch_fd_modify),
		M(watch_fd_cancel),
		M(timer_add),
		M(timer_cancel),
		M(work_queue),
		M(now_ms),
		M(kv_set),
		M(kv_get),
		M(tx_status),
#undef M
	};
	assert_int_equal(offsetof(struct labgw_host, abi_minor), 6);
	for (size_t i = 0; i < ARRAY_SIZE(host); i++) {
		if (host[i].off != SLOT(i))
			fail_msg("labgw_host.%s moved from offset %zu to %zu: modules built for "
				 "ABI 1.0 would call the wrong service",
				 host[i].name, (size_t)SLOT(i), host[i].off);
	}
	/* 31 services and 16 reserved slots: the struct never grows */
	assert_int_equal(sizeof(struct labgw_host), SLOT(31 + 16));
#undef SLOT
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_good_radio_publishes_sealed_frames, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_commands_report_tx_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_wrong_abi_refused_with_warning, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_init_failure_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_radio_keys_refused_with_file_line, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_apply_is_all_or_nothing, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reapply_keeps_restarts_stops, setup, teardown),
		cmocka_unit_test_setup_teardown(test_leftovers_cancelled_after_stop, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_absent_radio_daemon_runs_on, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_callbacks_mark_radio_failed, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_failed_radio_backoff_grows, setup, teardown),
		cmocka_unit_test_setup_teardown(test_failing_start_backoff_then_up, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_occasional_failures_are_tolerated, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_work_done_and_cancelled, setup, teardown),
		cmocka_unit_test_setup_teardown(test_work_cancelled_by_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kv_round_trip_and_limits, setup, teardown),
		cmocka_unit_test_setup_teardown(test_radio_narrows_its_techs, setup, teardown),
		cmocka_unit_test_setup_teardown(test_radio_present_makes_a_running_radio_absent,
						setup, teardown),
		cmocka_unit_test(test_abi_1_0_layout_is_frozen),
	};
	return cmocka_run_group_tests_name("plugin_host", tests, NULL, NULL);
}
