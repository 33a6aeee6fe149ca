#include "plugin_host.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define KV_KEY_MAX   64
#define KV_VALUE_MAX (64 * 1024)

struct module {
	char *path;
	void *handle;
	const struct labgw_plugin *desc;
	int refs;
	struct module *next;
};

struct watch {
	uv_poll_t poll;
	uint64_t id;
	int fd;
	struct labgw_radio *r;
	labgw_fd_cb cb;
	void *user_data;
	struct watch *next;
};

struct tmr {
	uv_timer_t timer;
	uint64_t id;
	struct labgw_radio *r;
	labgw_timer_cb cb;
	void *user_data;
	struct tmr *next;
};

struct work {
	uv_work_t req;
	struct labgw_radio *r;
	unsigned gen;
	labgw_work_fn fn;
	labgw_done_fn done;
	void *user_data;
};

struct labgw_radio {
	struct plugin_host *h;
	char name[33];
	struct module *mod;
	uint32_t techs;		   /* what this instance serves: the module's, or fewer */
	const struct config *gcfg; /* the file this instance came from */
	const struct config_radio *cfg;
	bool *key_used;
	void *state;
	bool inited;
	enum radio_state st;
	char *reason;
	/* ABI 1.5: a running instance without its hardware shows as absent */
	bool hw_gone;
	char *hw_reason;
	json_t *details;
	unsigned fails; /* consecutive failing callbacks */
	unsigned gen;	/* bumped at every stop: stale work sees -ECANCELED */
	uint64_t backoff_ms;
	uint64_t up_since_ms; /* loop time of the last successful start */
	uint64_t restarts;
	uint64_t frames_in;
	uint64_t frames_out;
	uint64_t leftovers;
	uv_timer_t *retry; /* restart timer; its close callback frees the radio */
	struct watch *watches;
	struct tmr *timers;
	unsigned pending_work;
	bool removing; /* stopped for good; exit when work is done */
	bool in_apply; /* init ran in a pending apply: not yet live */
	struct labgw_radio *next;
};

struct plugin_host {
	uv_loop_t *loop;
	const struct plugin_host_ops *ops;
	void *user_data;
	struct plugin_host_limits lim;
	struct module *modules;
	struct labgw_radio *radios;
	struct labgw_radio *dying; /* removed, waiting for work or close */
	uint64_t next_id;
	struct labgw_host services;
};

static const struct labgw_host host_services;

/* ---- helpers ------------------------------------------------------------ */

static void radio_set_state(struct labgw_radio *r, enum radio_state st, const char *reason)
{
	bool changed = r->st != st || (reason && (!r->reason || strcmp(reason, r->reason))) ||
		       (!reason && r->reason);
	r->st = st;
	free(r->reason);
	r->reason = reason ? strdup(reason) : NULL;
	if (!changed)
		return;
	switch (st) {
	case RADIO_UP:
		if (r->hw_gone)
			log_notice("radio %s: up, absent (%s)", r->name,
				   r->hw_reason ? r->hw_reason : "no hardware");
		else
			log_notice("radio %s: up", r->name);
		break;
	case RADIO_ABSENT:
		log_notice("radio %s: absent (%s)", r->name, reason ? reason : "no hardware");
		break;
	case RADIO_FAILED:
		log_error("radio %s: failed (%s)", r->name, reason ? reason : "unknown");
		break;
	case RADIO_STARTING:
	case RADIO_STOPPED:
		break;
	}
	if (!r->in_apply && r->h->ops->radio_changed)
		r->h->ops->radio_changed(r->h->user_data, r, false);
}

static void watch_close_cb(uv_handle_t *handle)
{
	free(container_of((uv_poll_t *)handle, struct watch, poll));
}

static void tmr_close_cb(uv_handle_t *handle)
{
	free(container_of((uv_timer_t *)handle, struct tmr, timer));
}

/* Cancel everything in the ledger; returns how many were left. */
static size_t ledger_clear(struct labgw_radio *r)
{
	size_t n = 0;
	while (r->watches) {
		struct watch *w = r->watches;
		r->watches = w->next;
		uv_close((uv_handle_t *)&w->poll, watch_close_cb);
		n++;
	}
	while (r->timers) {
		struct tmr *t = r->timers;
		r->timers = t->next;
		uv_close((uv_handle_t *)&t->timer, tmr_close_cb);
		n++;
	}
	return n;
}

static void radio_stop_instance(struct labgw_radio *r)
{
	if (r->st != RADIO_STARTING && r->st != RADIO_UP)
		return; /* failed and absent instances are stopped already */
	r->mod->desc->stop(r->state);
	r->gen++;
	size_t left = ledger_clear(r);
	if (left) {
		r->leftovers += left;
		log_warning("radio %s: module %s left %zu fd watch(es)/timer(s) after stop; "
			    "cancelled",
			    r->name, r->mod->desc->name, left);
	}
}

static void schedule_retry(struct labgw_radio *r, uint64_t delay_ms);

/* the delay before the next restart of a failed radio: doubling, capped */
static uint64_t next_backoff(struct labgw_radio *r)
{
	r->backoff_ms = r->backoff_ms ? r->backoff_ms * 2 : r->h->lim.backoff_min_ms;
	if (r->backoff_ms > r->h->lim.backoff_max_ms)
		r->backoff_ms = r->h->lim.backoff_max_ms;
	return r->backoff_ms;
}

static void radio_start_instance(struct labgw_radio *r)
{
	/* retrying an absent radio is no news until the outcome differs */
	bool was_absent = r->st == RADIO_ABSENT;
	char *absent_reason = was_absent && r->reason ? strdup(r->reason) : NULL;
	if (was_absent)
		r->st = RADIO_STARTING;
	else
		radio_set_state(r, RADIO_STARTING, NULL);
	r->fails = 0;
	r->hw_gone = false;
	free(r->hw_reason);
	r->hw_reason = NULL;
	int rc = r->mod->desc->start(r->state);
	if (r->st != RADIO_STARTING) {
		free(absent_reason);
		return; /* the module failed from inside start (callback) */
	}
	if (rc == 0) {
		free(absent_reason);
		r->up_since_ms = uv_now(r->h->loop);
		radio_set_state(r, RADIO_UP, NULL);
		return;
	}
	/* undo whatever start registered before failing */
	r->gen++;
	ledger_clear(r);
	char why[128];
	snprintf(why, sizeof(why), "start: %s", strerror(-rc));
	if (rc == -ENODEV || rc == -ENOTSUP) {
		if (absent_reason && !strcmp(absent_reason, why))
			r->st = RADIO_ABSENT; /* unchanged: nothing to announce */
		else
			radio_set_state(r, RADIO_ABSENT, why);
		free(absent_reason);
		schedule_retry(r, r->h->lim.absent_retry_ms);
		return;
	}
	free(absent_reason);
	radio_set_state(r, RADIO_FAILED, why);
	schedule_retry(r, next_backoff(r));
}

static void retry_cb(uv_timer_t *t)
{
	struct labgw_radio *r = t->data;
	if (r->removing)
		return;
	r->restarts++;
	log_info("radio %s: restarting (attempt %llu)", r->name, (unsigned long long)r->restarts);
	radio_start_instance(r);
}

static void schedule_retry(struct labgw_radio *r, uint64_t delay_ms)
{
	uv_timer_start(r->retry, retry_cb, delay_ms, 0);
}

/* A callback of the module failed. */
static void radio_callback_result(struct labgw_radio *r, int rc)
{
	if (rc >= 0) {
		r->fails = 0;
		return;
	}
	if (r->st != RADIO_UP && r->st != RADIO_STARTING)
		return;
	r->fails++;
	log_warning("radio %s: callback failed: %s (%u in a row)", r->name, strerror(-rc),
		    r->fails);
	if (r->fails < r->h->lim.fail_threshold)
		return;
	radio_stop_instance(r);
	/* a radio that ran fine for a while starts its backoff over */
	if (uv_now(r->h->loop) - r->up_since_ms > r->h->lim.backoff_max_ms)
		r->backoff_ms = 0;
	char why[128];
	snprintf(why, sizeof(why), "%u callbacks failed in a row, last: %s", r->fails,
		 strerror(-rc));
	radio_set_state(r, RADIO_FAILED, why);
	schedule_retry(r, next_backoff(r));
}

static bool radio_live(const struct labgw_radio *r)
{
	return !r->removing && (r->st == RADIO_UP || r->st == RADIO_STARTING);
}

/* ---- modules -------------------------------------------------------------- */

static struct module *module_get(struct plugin_host *h, const char *dir, const char *name,
				 char *why, size_t whylen)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s.so", dir, name);
	for (struct module *m = h->modules; m; m = m->next) {
		if (!strcmp(m->path, path)) {
			m->refs++;
			return m;
		}
	}
	if (access(path, R_OK) < 0) {
		snprintf(why, whylen, "module '%s' not found: %s: %s", name, path, strerror(errno));
		return NULL;
	}
	void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!handle) {
		snprintf(why, whylen, "module '%s' cannot be loaded: %s", name, dlerror());
		return NULL;
	}
	const struct labgw_plugin *d = dlsym(handle, LABGW_PLUGIN_SYMBOL);
	const char *problem = NULL;
	char buf[160];
	if (!d) {
		problem = "does not export " LABGW_PLUGIN_SYMBOL;
	} else if (d->abi_major != LABGW_PLUGIN_ABI_MAJOR) {
		snprintf(buf, sizeof(buf), "built for plugin ABI %u.%u, this labgwd speaks %u.%u",
			 d->abi_major, d->abi_minor, LABGW_PLUGIN_ABI_MAJOR,
			 LABGW_PLUGIN_ABI_MINOR);
		problem = buf;
	} else if (d->size < offsetof(struct labgw_plugin, reserved)) {
		problem = "has a descriptor smaller than ABI 1.0's";
	} else if (!d->name || !d->init || !d->start || !d->command || !d->stop || !d->exit) {
		problem = "has an incomplete descriptor";
	}
	if (problem) {
		log_warning("refusing module %s: %s", path, problem);
		snprintf(why, whylen, "module '%s' refused: %s", name, problem);
		dlclose(handle);
		return NULL;
	}
	struct module *m = calloc(1, sizeof(*m));
	if (!m || !(m->path = strdup(path))) {
		free(m);
		dlclose(handle);
		snprintf(why, whylen, "out of memory");
		return NULL;
	}
	m->handle = handle;
	m->desc = d;
	m->refs = 1;
	m->next = h->modules;
	h->modules = m;
	log_info("loaded module %s %s (%s)", d->name, d->version ? d->version : "", path);
	return m;
}

static void module_put(struct plugin_host *h, struct module *m)
{
	if (--m->refs > 0)
		return;
	struct module **mp = &h->modules;
	while (*mp != m)
		mp = &(*mp)->next;
	*mp = m->next;
	dlclose(m->handle);
	free(m->path);
	free(m);
}

/* ---- radio lifecycle ---------------------------------------------------- */

static void radio_free_cb(uv_handle_t *handle)
{
	struct labgw_radio *r = handle->data;
	free(handle);
	free(r->key_used);
	free(r->reason);
	free(r->hw_reason);
	json_decref(r->details);
	free(r);
}

/* Exit and free; waits for pending work first (after_work calls back). */
static void radio_destroy(struct labgw_radio *r)
{
	r->removing = true;
	if (r->pending_work)
		return;
	if (r->inited) {
		r->mod->desc->exit(r->state);
		r->inited = false;
		ledger_clear(r); /* registrations made by exit itself */
	}
	struct plugin_host *h = r->h;
	for (struct labgw_radio **rp = &h->dying; *rp; rp = &(*rp)->next) {
		if (*rp == r) {
			*rp = r->next;
			break;
		}
	}
	module_put(h, r->mod);
	uv_close((uv_handle_t *)r->retry, radio_free_cb);
}

static void radio_remove(struct labgw_radio *r)
{
	struct plugin_host *h = r->h;
	radio_stop_instance(r);
	uv_timer_stop(r->retry);
	r->st = RADIO_STOPPED;
	if (!r->in_apply && h->ops->radio_changed)
		h->ops->radio_changed(h->user_data, r, true);
	r->next = h->dying;
	h->dying = r;
	radio_destroy(r);
}

static struct labgw_radio *radio_new(struct plugin_host *h, const struct config *cfg,
				     const struct config_radio *rc)
{
	char why[512];
	struct module *m = module_get(h, cfg->plugin_dir, rc->module, why, sizeof(why));
	if (!m) {
		log_error("%s:%d: [radio %s] module: %s", cfg->path, rc->line, rc->name, why);
		return NULL;
	}
	struct labgw_radio *r = calloc(1, sizeof(*r));
	uv_timer_t *t = malloc(sizeof(*t));
	bool *used = calloc(rc->nkv + 1, sizeof(bool));
	if (!r || !t || !used) {
		free(r);
		free(t);
		free(used);
		module_put(h, m);
		return NULL;
	}
	r->h = h;
	snprintf(r->name, sizeof(r->name), "%s", rc->name);
	r->mod = m;
	r->techs = m->desc->techs;
	r->gcfg = cfg;
	r->cfg = rc;
	r->key_used = used;
	r->st = RADIO_STOPPED;
	r->in_apply = true;
	uv_timer_init(h->loop, t);
	t->data = r;
	r->retry = t;

	int rv = m->desc->init(r, &h->services, &r->state);
	if (rv < 0) {
		log_error("%s:%d: [radio %s]: module %s refused its configuration: %s", cfg->path,
			  rc->line, rc->name, m->desc->name, strerror(-rv));
		ledger_clear(r);
		r->next = h->dying;
		h->dying = r;
		radio_destroy(r);
		return NULL;
	}
	r->inited = true;
	bool unknown = false;
	for (size_t i = 0; i < rc->nkv; i++) {
		if (!used[i]) {
			log_error("%s:%d: [radio %s] %s: unknown key for module %s", cfg->path,
				  rc->kv[i].line, rc->name, rc->kv[i].key, m->desc->name);
			unknown = true;
		}
	}
	if (unknown) {
		r->next = h->dying;
		h->dying = r;
		radio_destroy(r);
		return NULL;
	}
	return r;
}

/* ---- public API --------------------------------------------------------- */

struct plugin_host *plugin_host_new(uv_loop_t *loop, const struct plugin_host_ops *ops,
				    void *user_data)
{
	struct plugin_host *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->loop = loop;
	h->ops = ops;
	h->user_data = user_data;
	h->lim = (struct plugin_host_limits){
		.fail_threshold = 5,
		.backoff_min_ms = 1000,
		.backoff_max_ms = 300000,
		.absent_retry_ms = 30000,
	};
	h->services = host_services;
	return h;
}

void plugin_host_set_limits(struct plugin_host *h, const struct plugin_host_limits *lim)
{
	h->lim = *lim;
}

int plugin_host_apply(struct plugin_host *h, const struct config *cfg)
{
	size_t n = cfg->nradios;
	struct labgw_radio **fresh = calloc(n ? n : 1, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	int errors = 0;
	/* 1. init every new or changed instance; nothing live changes yet */
	for (size_t i = 0; i < n; i++) {
		const struct config_radio *rc = &cfg->radios[i];
		struct labgw_radio *old = plugin_host_find(h, rc->name);
		if (old && config_radio_equal(old->cfg, rc))
			continue;
		fresh[i] = radio_new(h, cfg, rc);
		if (!fresh[i])
			errors++;
	}
	if (errors) {
		for (size_t i = 0; i < n; i++)
			if (fresh[i]) {
				fresh[i]->next = h->dying;
				h->dying = fresh[i];
				radio_destroy(fresh[i]);
			}
		free(fresh);
		return -EINVAL;
	}
	/* 2. commit: keep unchanged, replace changed, remove dropped */
	struct labgw_radio **rp = &h->radios;
	while (*rp) {
		struct labgw_radio *r = *rp;
		const struct config_radio *rc = config_find_radio(cfg, r->name);
		bool keep = false;
		if (rc) {
			size_t i = (size_t)(rc - cfg->radios);
			keep = !fresh[i];
			if (keep) {
				/* same content: point at the new file's copy */
				r->cfg = rc;
				r->gcfg = cfg;
			}
		}
		if (keep) {
			rp = &r->next;
			continue;
		}
		*rp = r->next;
		log_notice("radio %s: %s", r->name,
			   rc ? "configuration changed, restarting" : "removed from configuration");
		radio_remove(r);
	}
	for (size_t i = 0; i < n; i++) {
		struct labgw_radio *r = fresh[i];
		if (!r)
			continue;
		r->in_apply = false;
		/* append, to keep configuration order */
		struct labgw_radio **tail = &h->radios;
		while (*tail)
			tail = &(*tail)->next;
		*tail = r;
		r->next = NULL;
		radio_start_instance(r);
	}
	free(fresh);
	return 0;
}

void plugin_host_shutdown(struct plugin_host *h)
{
	while (h->radios) {
		struct labgw_radio *r = h->radios;
		h->radios = r->next;
		radio_remove(r);
	}
}

void plugin_host_free(struct plugin_host *h)
{
	if (!h)
		return;
	if (h->radios || h->dying)
		log_error("internal: plugin host freed with radios left");
	while (h->modules) {
		struct module *m = h->modules;
		h->modules = m->next;
		dlclose(m->handle);
		free(m->path);
		free(m);
	}
	free(h);
}

struct labgw_radio *plugin_host_find(struct plugin_host *h, const char *name)
{
	for (struct labgw_radio *r = h->radios; r; r = r->next)
		if (!strcmp(r->name, name))
			return r;
	return NULL;
}

struct labgw_radio *plugin_host_first(struct plugin_host *h)
{
	return h->radios;
}

struct labgw_radio *plugin_host_next(struct labgw_radio *r)
{
	return r->next;
}

int plugin_host_command(struct plugin_host *h, struct labgw_radio *r,
			const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	errbuf[0] = '\0';
	if (r->st != RADIO_UP) {
		snprintf(errbuf, errlen, "radio %s is %s", r->name, radio_state_name(r->st));
		return -ENODEV;
	}
	/* without its hardware a radio sends nothing; notices still reach it */
	if (r->hw_gone && cmd->op && !strcmp(cmd->op, "tx")) {
		snprintf(errbuf, errlen, "radio %s is absent (%s)", r->name,
			 r->hw_reason ? r->hw_reason : "no hardware");
		return -ENODEV;
	}
	int rc = r->mod->desc->command(r->state, cmd, errbuf, errlen);
	if (rc < 0 && !errbuf[0])
		snprintf(errbuf, errlen, "%s", strerror(-rc));
	return rc;
}

int plugin_host_tx_check(struct plugin_host *h, struct labgw_radio *r,
			 const struct labgw_command *cmd, struct labgw_tx_cost *cost, char *errbuf,
			 size_t errlen)
{
	const struct labgw_plugin *d = r->mod->desc;
	memset(cost, 0, sizeof(*cost));
	cost->size = sizeof(*cost);
	errbuf[0] = '\0';
	bool has = d->size >= offsetof(struct labgw_plugin, tx_check) + sizeof(d->tx_check) &&
		   d->tx_check;
	if (!has || r->st != RADIO_UP)
		return 0;
	int rc = d->tx_check(r->state, cmd, cost, errbuf, errlen);
	if (rc < 0 && !errbuf[0])
		snprintf(errbuf, errlen, "%s", strerror(-rc));
	return rc < 0 ? (rc == -EAGAIN ? -EAGAIN : -EINVAL) : 0;
}

const char *radio_name(const struct labgw_radio *r)
{
	return r->name;
}

const char *radio_module(const struct labgw_radio *r)
{
	return r->mod->desc->name;
}

uint32_t radio_techs(const struct labgw_radio *r)
{
	return r->techs;
}

enum radio_state radio_get_state(const struct labgw_radio *r)
{
	return r->st == RADIO_UP && r->hw_gone ? RADIO_ABSENT : r->st;
}

const char *radio_state_name(enum radio_state st)
{
	switch (st) {
	case RADIO_STARTING:
		return "starting";
	case RADIO_UP:
		return "up";
	case RADIO_ABSENT:
		return "absent";
	case RADIO_FAILED:
		return "failed";
	case RADIO_STOPPED:
		return "stopped";
	}
	return "unknown";
}

const char *radio_reason(const struct labgw_radio *r)
{
	return r->st == RADIO_UP && r->hw_gone ? r->hw_reason : r->reason;
}

const json_t *radio_details(const struct labgw_radio *r)
{
	return r->details;
}

json_t *radio_details_view(const struct labgw_radio *r, bool staff)
{
	if (!r->details)
		return NULL;
	json_t *d = json_deep_copy(r->details);
	if (d && !staff)
		json_object_del(d, RADIO_DETAILS_STAFF);
	return d;
}

uint64_t radio_frames_in(const struct labgw_radio *r)
{
	return r->frames_in;
}

uint64_t radio_frames_out(const struct labgw_radio *r)
{
	return r->frames_out;
}

void radio_count_out(struct labgw_radio *r, uint64_t n)
{
	r->frames_out += n;
}

uint64_t radio_restarts(const struct labgw_radio *r)
{
	return r->restarts;
}

size_t radio_ledger_size(const struct labgw_radio *r)
{
	size_t n = 0;
	for (struct watch *w = r->watches; w; w = w->next)
		n++;
	for (struct tmr *t = r->timers; t; t = t->next)
		n++;
	return n;
}

uint64_t radio_leftovers(const struct labgw_radio *r)
{
	return r->leftovers;
}

/* ---- the service table -------------------------------------------------- */

static void svc_log(struct labgw_radio *r, enum labgw_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void svc_log(struct labgw_radio *r, enum labgw_log_level level, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	enum log_level l = (enum log_level)level;
	if (l < LOG_LVL_ERROR)
		l = LOG_LVL_ERROR;
	if (l > LOG_LVL_DEBUG)
		l = LOG_LVL_DEBUG;
	log_msg(l, "radio %s: %s", r->name, msg);
}

static const char *svc_radio_name(const struct labgw_radio *r)
{
	return r->name;
}

static const char *svc_gateway_id(const struct labgw_radio *r)
{
	return r->gcfg->gw_id;
}

static int svc_radio_set_techs(struct labgw_radio *r, uint32_t techs)
{
	if (!techs || (techs & ~r->mod->desc->techs))
		return -EINVAL;
	r->techs = techs;
	return 0;
}

static const struct config_kv *find_kv(struct labgw_radio *r, const char *key)
{
	for (size_t i = 0; i < r->cfg->nkv; i++) {
		if (!strcmp(r->cfg->kv[i].key, key)) {
			r->key_used[i] = true;
			return &r->cfg->kv[i];
		}
	}
	return NULL;
}

static const char *svc_config_get(struct labgw_radio *r, const char *key)
{
	const struct config_kv *kv = find_kv(r, key);
	return kv ? kv->value : NULL;
}

static void config_error_v(struct labgw_radio *r, const char *key, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void config_error_v(struct labgw_radio *r, const char *key, const char *fmt, va_list ap)
{
	char msg[512];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	const struct config_kv *kv = find_kv(r, key);
	log_error("%s:%d: [radio %s] %s: %s", r->gcfg->path, kv ? kv->line : r->cfg->line, r->name,
		  key, msg);
}

static void svc_config_error(struct labgw_radio *r, const char *key, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void svc_config_error(struct labgw_radio *r, const char *key, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	config_error_v(r, key, fmt, ap);
	va_end(ap);
}

static int svc_config_get_int(struct labgw_radio *r, const char *key, long long min, long long max,
			      long long def, long long *out)
{
	const char *v = svc_config_get(r, key);
	if (!v) {
		*out = def;
		return 0;
	}
	int rc = parse_int(v, min, max, out);
	if (rc == -ERANGE)
		svc_config_error(r, key, "'%s' is out of range %lld..%lld", v, min, max);
	else if (rc < 0)
		svc_config_error(r, key, "'%s' is not an integer", v);
	return rc < 0 ? -EINVAL : 0;
}

static int svc_config_get_bool(struct labgw_radio *r, const char *key, bool def, bool *out)
{
	const char *v = svc_config_get(r, key);
	if (!v) {
		*out = def;
		return 0;
	}
	if (parse_bool(v, out) < 0) {
		svc_config_error(r, key, "'%s' is not yes/no", v);
		return -EINVAL;
	}
	return 0;
}

static int svc_config_get_duration_ms(struct labgw_radio *r, const char *key, uint64_t min_ms,
				      uint64_t max_ms, uint64_t def_ms, uint64_t *out)
{
	const char *v = svc_config_get(r, key);
	if (!v) {
		*out = def_ms;
		return 0;
	}
	uint64_t ms;
	if (parse_duration_ms(v, &ms) < 0) {
		svc_config_error(r, key, "'%s' is not a duration (like 250ms, 10s, 5m, 24h)", v);
		return -EINVAL;
	}
	if (ms < min_ms || ms > max_ms) {
		svc_config_error(r, key, "'%s' is out of range %llums..%llums", v,
				 (unsigned long long)min_ms, (unsigned long long)max_ms);
		return -EINVAL;
	}
	*out = ms;
	return 0;
}

static struct labgw_frame *svc_frame_new(struct labgw_radio *r, enum labgw_tech tech,
					 const char *type)
{
	struct frame *f = frame_new(r->gcfg->gw_id, r->name, tech, type);
	if (f)
		f->origin = r;
	return (struct labgw_frame *)f;
}

static int svc_frame_set_dev(struct labgw_frame *f, const char *dev_id)
{
	return frame_set_dev((struct frame *)f, dev_id, false);
}

static int svc_frame_set_public(struct labgw_frame *lf)
{
	struct frame *f = (struct frame *)lf;
	if (f->sealed)
		return -EINVAL;
	f->is_public = true;
	return 0;
}

static int svc_frame_set_payload(struct labgw_frame *f, const void *data, size_t len)
{
	return frame_set_payload((struct frame *)f, data, len);
}

static int svc_frame_set_int(struct labgw_frame *f, enum labgw_section s, const char *key,
			     int64_t v)
{
	return frame_set((struct frame *)f, s, key, json_integer(v));
}

static int svc_frame_set_double(struct labgw_frame *f, enum labgw_section s, const char *key,
				double v)
{
	return frame_set((struct frame *)f, s, key, json_real(v));
}

static int svc_frame_set_bool(struct labgw_frame *f, enum labgw_section s, const char *key, bool v)
{
	return frame_set((struct frame *)f, s, key, json_boolean(v));
}

static int svc_frame_set_str(struct labgw_frame *f, enum labgw_section s, const char *key,
			     const char *v)
{
	return frame_set((struct frame *)f, s, key, v ? json_string(v) : NULL);
}

static int set_encoded(struct labgw_frame *f, enum labgw_section s, const char *key,
		       const void *data, size_t len, bool hex)
{
	if (len > FRAME_PAYLOAD_MAX)
		return -E2BIG;
	char *buf = malloc(hex ? 2 * len + 1 : base64_encoded_len(len) + 1);
	if (!buf)
		return -ENOMEM;
	if (hex)
		hex_encode(data, len, buf);
	else
		base64_encode(data, len, buf);
	int rc = frame_set((struct frame *)f, s, key, json_string(buf));
	free(buf);
	return rc;
}

static int svc_frame_set_hex(struct labgw_frame *f, enum labgw_section s, const char *key,
			     const void *data, size_t len)
{
	return set_encoded(f, s, key, data, len, true);
}

static int svc_frame_set_base64(struct labgw_frame *f, enum labgw_section s, const char *key,
				const void *data, size_t len)
{
	return set_encoded(f, s, key, data, len, false);
}

static int svc_frame_append_str(struct labgw_frame *f, enum labgw_section s, const char *key,
				const char *v)
{
	return frame_append((struct frame *)f, s, key, v ? json_string(v) : NULL);
}

static void svc_frame_discard(struct labgw_frame *f)
{
	frame_unref((struct frame *)f);
}

static int svc_publish(struct labgw_frame *lf)
{
	struct frame *f = (struct frame *)lf;
	struct labgw_radio *r = f->origin;
	if (!r || !radio_live(r)) {
		frame_unref(f);
		return -EPERM;
	}
	struct plugin_host *h = r->h;
	if (h->ops->prepare)
		h->ops->prepare(h->user_data, f);
	uint64_t seq = h->ops->next_seq(h->user_data);
	int rc = frame_seal(f, seq, time_now_us());
	if (rc < 0) {
		log_debug("radio %s: frame %s refused: %s", r->name, f->type, strerror(-rc));
		frame_unref(f);
		return rc;
	}
	r->frames_in++;
	h->ops->publish(h->user_data, f);
	frame_unref(f);
	return 0;
}

static int svc_state_update(struct labgw_frame *lf)
{
	struct frame *f = (struct frame *)lf;
	struct labgw_radio *r = f->origin;
	if (!r || r->removing) {
		frame_unref(f);
		return -EPERM;
	}
	json_t *d = frame_section(f, LABGW_DATA);
	if (d) {
		if (!r->details)
			r->details = json_object();
		if (!r->details || json_object_update(r->details, d) < 0) {
			frame_unref(f);
			return -ENOMEM;
		}
	}
	frame_unref(f);
	if (r->h->ops->radio_changed && !r->in_apply)
		r->h->ops->radio_changed(r->h->user_data, r, false);
	return 0;
}

static void poll_cb(uv_poll_t *p, int status, int events)
{
	struct watch *w = container_of(p, struct watch, poll);
	unsigned ev = 0;
	if (events & UV_READABLE)
		ev |= LABGW_FD_READ;
	if (events & UV_WRITABLE)
		ev |= LABGW_FD_WRITE;
	if (status < 0 || (events & UV_DISCONNECT))
		ev |= LABGW_FD_ERROR;
	int rc = w->cb(w->user_data, w->fd, ev);
	radio_callback_result(w->r, rc);
}

static unsigned uv_events(unsigned ev)
{
	unsigned e = UV_DISCONNECT;
	if (ev & LABGW_FD_READ)
		e |= UV_READABLE;
	if (ev & LABGW_FD_WRITE)
		e |= UV_WRITABLE;
	return e;
}

static uint64_t svc_watch_fd(struct labgw_radio *r, int fd, unsigned events, labgw_fd_cb cb,
			     void *user_data)
{
	if (!radio_live(r) || !cb || fd < 0)
		return 0;
	struct watch *w = calloc(1, sizeof(*w));
	if (!w)
		return 0;
	if (uv_poll_init(r->h->loop, &w->poll, fd) < 0) {
		free(w);
		return 0;
	}
	w->id = ++r->h->next_id;
	w->fd = fd;
	w->r = r;
	w->cb = cb;
	w->user_data = user_data;
	uv_poll_start(&w->poll, (int)uv_events(events), poll_cb);
	w->next = r->watches;
	r->watches = w;
	return w->id;
}

static int svc_watch_fd_modify(struct labgw_radio *r, uint64_t id, unsigned events)
{
	for (struct watch *w = r->watches; w; w = w->next)
		if (w->id == id)
			return uv_poll_start(&w->poll, (int)uv_events(events), poll_cb) < 0
				       ? -EINVAL
				       : 0;
	return -ENOENT;
}

static void svc_watch_fd_cancel(struct labgw_radio *r, uint64_t id)
{
	for (struct watch **wp = &r->watches; *wp; wp = &(*wp)->next) {
		if ((*wp)->id == id) {
			struct watch *w = *wp;
			*wp = w->next;
			uv_close((uv_handle_t *)&w->poll, watch_close_cb);
			return;
		}
	}
}

static void svc_timer_cancel(struct labgw_radio *r, uint64_t id);

static void timer_cb(uv_timer_t *t)
{
	struct tmr *tm = container_of(t, struct tmr, timer);
	struct labgw_radio *r = tm->r;
	uint64_t id = tm->id;
	bool once = uv_timer_get_repeat(t) == 0;
	int rc = tm->cb(tm->user_data);
	if (once)
		svc_timer_cancel(r, id); /* no-op if the callback cancelled it */
	radio_callback_result(r, rc);
}

static uint64_t svc_timer_add(struct labgw_radio *r, uint64_t timeout_ms, uint64_t repeat_ms,
			      labgw_timer_cb cb, void *user_data)
{
	if (!radio_live(r) || !cb)
		return 0;
	struct tmr *t = calloc(1, sizeof(*t));
	if (!t)
		return 0;
	uv_timer_init(r->h->loop, &t->timer);
	t->id = ++r->h->next_id;
	t->r = r;
	t->cb = cb;
	t->user_data = user_data;
	uv_timer_start(&t->timer, timer_cb, timeout_ms, repeat_ms);
	t->next = r->timers;
	r->timers = t;
	return t->id;
}

static void svc_timer_cancel(struct labgw_radio *r, uint64_t id)
{
	for (struct tmr **tp = &r->timers; *tp; tp = &(*tp)->next) {
		if ((*tp)->id == id) {
			struct tmr *t = *tp;
			*tp = t->next;
			uv_close((uv_handle_t *)&t->timer, tmr_close_cb);
			return;
		}
	}
}

static void work_cb(uv_work_t *req)
{
	struct work *w = req->data;
	w->fn(w->user_data);
}

static void after_work_cb(uv_work_t *req, int status)
{
	struct work *w = req->data;
	struct labgw_radio *r = w->r;
	r->pending_work--;
	bool stale = status < 0 || w->gen != r->gen || r->removing;
	w->done(w->user_data, stale ? -ECANCELED : 0);
	free(w);
	if (r->removing && !r->pending_work)
		radio_destroy(r);
}

static int svc_work_queue(struct labgw_radio *r, labgw_work_fn fn, labgw_done_fn done,
			  void *user_data)
{
	if (!radio_live(r) || !fn || !done)
		return -EINVAL;
	struct work *w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->req.data = w;
	w->r = r;
	w->gen = r->gen;
	w->fn = fn;
	w->done = done;
	w->user_data = user_data;
	int rc = uv_queue_work(r->h->loop, &w->req, work_cb, after_work_cb);
	if (rc < 0) {
		free(w);
		return -EIO;
	}
	r->pending_work++;
	return 0;
}

static uint64_t svc_now_ms(struct labgw_radio *r)
{
	return uv_now(r->h->loop);
}

static bool kv_key_valid(const char *key)
{
	size_t n = strlen(key);
	if (n == 0 || n > KV_KEY_MAX || key[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = key[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
		      c == '-'))
			return false;
	}
	return true;
}

static int kv_dir(struct labgw_radio *r, char *out, size_t len)
{
	char d[4096];
	snprintf(d, sizeof(d), "%s/radios", r->gcfg->state_dir);
	if (mkdir(d, 0750) < 0 && errno != EEXIST)
		return -errno;
	snprintf(out, len, "%s/radios/%s", r->gcfg->state_dir, r->name);
	if (mkdir(out, 0750) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int svc_kv_set(struct labgw_radio *r, const char *key, const void *val, size_t len)
{
	char dir[4096], path[4200], tmp[4300];
	if (!kv_key_valid(key) || len > KV_VALUE_MAX)
		return -EINVAL;
	int rc = kv_dir(r, dir, sizeof(dir));
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, key);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	const char *p = val;
	size_t left = len;
	while (left) {
		ssize_t w = write(fd, p, left);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			close(fd);
			unlink(tmp);
			return rc;
		}
		p += w;
		left -= (size_t)w;
	}
	if (fsync(fd) < 0 || close(fd) < 0) {
		rc = -errno;
		unlink(tmp);
		return rc;
	}
	if (rename(tmp, path) < 0) {
		rc = -errno;
		unlink(tmp);
		return rc;
	}
	return 0;
}

static int svc_kv_get(struct labgw_radio *r, const char *key, void *buf, size_t cap)
{
	char dir[4096], path[4200];
	if (!kv_key_valid(key))
		return -EINVAL;
	int rc = kv_dir(r, dir, sizeof(dir));
	if (rc < 0)
		return rc;
	snprintf(path, sizeof(path), "%s/%s", dir, key);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct stat st;
	if (fstat(fd, &st) < 0 || st.st_size > KV_VALUE_MAX) {
		close(fd);
		return -EIO;
	}
	if ((size_t)st.st_size > cap) {
		close(fd);
		return -ENOBUFS;
	}
	ssize_t n = read(fd, buf, (size_t)st.st_size);
	close(fd);
	return n < 0 ? -EIO : (int)n;
}

static int svc_tx_status(struct labgw_radio *r, const char *cmd_id, enum labgw_tx_status st,
			 const char *reason)
{
	if (!cmd_id || r->removing)
		return -EINVAL;
	switch (st) {
	case LABGW_TX_QUEUED:
	case LABGW_TX_SENT:
	case LABGW_TX_ACKED:
	case LABGW_TX_FAILED:
		break;
	default:
		return -EINVAL;
	}
	if (r->h->ops->tx_status)
		r->h->ops->tx_status(r->h->user_data, r, cmd_id, st, reason);
	return 0;
}

static int svc_tx_result(struct labgw_radio *r, const char *cmd_id, enum labgw_tx_status st,
			 const char *reason, const char *result_json)
{
	if (!result_json)
		return svc_tx_status(r, cmd_id, st, reason);
	if (!cmd_id || r->removing || strlen(result_json) > 65536)
		return -EINVAL;
	json_t *res = json_loads(result_json, JSON_REJECT_DUPLICATES, NULL);
	if (!json_is_object(res)) {
		json_decref(res);
		return -EINVAL;
	}
	int rc = 0;
	switch (st) {
	case LABGW_TX_QUEUED:
	case LABGW_TX_SENT:
	case LABGW_TX_ACKED:
	case LABGW_TX_FAILED:
		if (r->h->ops->tx_result)
			r->h->ops->tx_result(r->h->user_data, r, cmd_id, st, reason, res);
		else if (r->h->ops->tx_status)
			r->h->ops->tx_status(r->h->user_data, r, cmd_id, st, reason);
		break;
	default:
		rc = -EINVAL;
	}
	json_decref(res);
	return rc;
}

static void svc_radio_present(struct labgw_radio *r, bool present, const char *reason)
{
	if (r->removing || (r->st != RADIO_UP && r->st != RADIO_STARTING))
		return;
	if (!reason || !*reason)
		reason = "no hardware";
	if (present == !r->hw_gone && (present || (r->hw_reason && !strcmp(r->hw_reason, reason))))
		return;
	r->hw_gone = !present;
	free(r->hw_reason);
	r->hw_reason = present ? NULL : strdup(reason);
	if (r->st != RADIO_UP)
		return; /* inside start: the state after it says it */
	if (present)
		log_notice("radio %s: up (hardware back)", r->name);
	else
		log_notice("radio %s: absent (%s)", r->name, reason);
	if (!r->in_apply && r->h->ops->radio_changed)
		r->h->ops->radio_changed(r->h->user_data, r, false);
}

static bool svc_lorawan_session_keys(struct labgw_radio *r, const char *dev_addr,
				     uint8_t nwkskey[16], uint8_t appskey[16])
{
	struct plugin_host *h = r->h;
	return dev_addr && h->ops->session_keys &&
	       h->ops->session_keys(h->user_data, dev_addr, nwkskey, appskey);
}

static bool svc_device_claimed(struct labgw_radio *r, const char *dev_id)
{
	struct plugin_host *h = r->h;
	return dev_id && h->ops->device_claimed &&
	       h->ops->device_claimed(h->user_data, radio_techs(r), dev_id);
}

static uint64_t svc_ble_irks(struct labgw_radio *r,
			     void (*cb)(void *ud, const char *identity, const uint8_t irk[16]),
			     void *ud)
{
	struct plugin_host *h = r->h;
	return h->ops->ble_irks ? h->ops->ble_irks(h->user_data, cb, ud) : 0;
}

static void svc_audit(struct labgw_radio *r, const char *action, const char *target,
		      const char *result, int64_t size, const char *detail)
{
	struct plugin_host *h = r->h;
	if (h->ops->audit && action && result)
		h->ops->audit(h->user_data, r, action, target, result, size, detail);
}

static const struct labgw_host host_services = {
	.size = sizeof(struct labgw_host),
	.abi_major = LABGW_PLUGIN_ABI_MAJOR,
	.abi_minor = LABGW_PLUGIN_ABI_MINOR,
	.log = svc_log,
	.radio_name = svc_radio_name,
	.gateway_id = svc_gateway_id,
	.radio_set_techs = svc_radio_set_techs,
	.lorawan_session_keys = svc_lorawan_session_keys,
	.audit = svc_audit,
	.device_claimed = svc_device_claimed,
	.ble_irks = svc_ble_irks,
	.tx_result = svc_tx_result,
	.frame_set_public = svc_frame_set_public,
	.radio_present = svc_radio_present,
	.config_get = svc_config_get,
	.config_get_int = svc_config_get_int,
	.config_get_bool = svc_config_get_bool,
	.config_get_duration_ms = svc_config_get_duration_ms,
	.config_error = svc_config_error,
	.frame_new = svc_frame_new,
	.frame_set_dev = svc_frame_set_dev,
	.frame_set_payload = svc_frame_set_payload,
	.frame_set_int = svc_frame_set_int,
	.frame_set_double = svc_frame_set_double,
	.frame_set_bool = svc_frame_set_bool,
	.frame_set_str = svc_frame_set_str,
	.frame_set_hex = svc_frame_set_hex,
	.frame_set_base64 = svc_frame_set_base64,
	.frame_append_str = svc_frame_append_str,
	.publish = svc_publish,
	.frame_discard = svc_frame_discard,
	.state_update = svc_state_update,
	.watch_fd = svc_watch_fd,
	.watch_fd_modify = svc_watch_fd_modify,
	.watch_fd_cancel = svc_watch_fd_cancel,
	.timer_add = svc_timer_add,
	.timer_cancel = svc_timer_cancel,
	.work_queue = svc_work_queue,
	.now_ms = svc_now_ms,
	.kv_set = svc_kv_set,
	.kv_get = svc_kv_get,
	.tx_status = svc_tx_status,
};
