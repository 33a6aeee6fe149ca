#include "replay.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "base64.h"
#include "bus.h"
#include "capture.h"
#include "config.h"
#include "daemon.h"
#include "frame.h"
#include "history.h"
#include "log.h"
#include "sandbox.h"
#include "store.h"
#include "topic.h"
#include "util.h"

/* Replays are paced, but never faster than this many frames a second, and
 * never longer than this (the capture's span divided by the speed). */
#define REPLAY_RATE_MAX	    1000
#define REPLAY_DURATION_MAX (24LL * 3600 * 1000)
#define SPEED_MAX	    1000.0

/* ---- capture ------------------------------------------------------------- */

struct lease_find {
	long long id;
	struct store_lease l;
	bool found;
};

static int find_lease(void *ud, const struct store_lease *l)
{
	struct lease_find *f = ud;
	if (l->id == f->id) {
		f->l = *l;
		f->found = true;
	}
	return 0;
}

/* The lease `lease_id` of sandbox `sbx` (ended ones too); 0 or -1 with err. */
static int lease_of(struct labgwd *d, const struct principal *who, const char *sbx,
		    const char *lease_id, struct store_lease *out, struct api_error *err)
{
	if (!sbx || !ident_valid(sbx, 32))
		return api_fail(err, "BAD_REQUEST", "not a sandbox id");
	if (!principal_is_staff(who) && strcmp(who->sbx, sbx))
		return api_fail(err, "FORBIDDEN", "this key may not read sandbox '%s'", sbx);
	struct lease_find f = {0};
	if (!lease_id || parse_int(lease_id, 1, INT64_MAX, &f.id) < 0)
		return api_fail(err, "BAD_REQUEST", "a lease id is a number");
	if (store_lease_list(d->store, sbx, NULL, 0, find_lease, &f) < 0)
		return api_fail(err, "INTERNAL", "the leases could not be read");
	if (!f.found)
		return api_fail(err, "NOT_FOUND", "sandbox %s has no lease %lld", sbx, f.id);
	*out = f.l;
	return 0;
}

struct capture_ctx {
	const struct principal *who;
	int64_t from_us, to_us;
	bool pcapng;
	struct strbuf sb;
	uint64_t last;
	int given;
	unsigned frames;
	bool truncated, done;
};

static int capture_row(void *ud, uint64_t seq, const char *topic, const char *json)
{
	struct capture_ctx *c = ud;
	c->last = seq;
	c->given++;
	if (c->done)
		return 0;
	if (!principal_is_staff(c->who) && !sandboxes_may_receive(c->who, topic))
		return 0;
	json_t *frame = json_loads(json, 0, NULL);
	const char *t = json_string_value(json_object_get(frame, "time"));
	int64_t us;
	if (!t || time_parse_rfc3339(t, &us) < 0 || us < c->from_us) {
		json_decref(frame);
		return 0;
	}
	if (us >= c->to_us) {
		c->done = true; /* history is in id order, which is time order */
		json_decref(frame);
		return 0;
	}
	if (c->frames >= CAPTURE_FRAMES_MAX || c->sb.len + strlen(json) + 512 > CAPTURE_BYTES_MAX) {
		c->truncated = c->done = true;
		json_decref(frame);
		return 0;
	}
	if (c->pcapng)
		c->frames += (unsigned)capture_pcapng_frame(&c->sb, frame);
	else {
		capture_jsonl_append(&c->sb, topic, json);
		c->frames++;
	}
	json_decref(frame);
	return 0;
}

int api_capture(struct labgwd *d, const struct principal *who, const char *sbx,
		const char *lease_id, const char *format, struct capture_out *out,
		struct api_error *err)
{
	memset(out, 0, sizeof(*out));
	struct store_lease l;
	if (lease_of(d, who, sbx, lease_id, &l, err) < 0)
		return -1;
	bool pcapng;
	if (!format || !strcmp(format, "jsonl"))
		pcapng = false;
	else if (!strcmp(format, "pcapng"))
		pcapng = true;
	else
		return api_fail(err, "BAD_REQUEST", "\"format\" is jsonl or pcapng");
	int64_t now = (int64_t)time_now_us();
	struct capture_ctx c = {.who = who,
				.from_us = l.start_us,
				.to_us = l.end_us < now ? l.end_us : now,
				.pcapng = pcapng};
	strbuf_init(&c.sb, 4096);
	if (pcapng)
		capture_pcapng_start(&c.sb);
	/* the history in pages, oldest first, until past the lease's end */
	do {
		c.given = 0;
		if (history_replay(d->history, sbx, c.last, NULL, 1000, capture_row, &c) < 0) {
			strbuf_release(&c.sb);
			return api_fail(err, "INTERNAL", "the history could not be read");
		}
	} while (c.given == 1000 && !c.done);
	if (c.sb.failed) {
		strbuf_release(&c.sb);
		return api_fail(err, "INTERNAL", "out of memory");
	}
	out->body = strbuf_steal(&c.sb, &out->len);
	if (!out->body) {
		out->body = strdup("");
		out->len = 0;
	}
	out->content_type = pcapng ? "application/x-pcapng" : "application/x-ndjson";
	snprintf(out->filename, sizeof(out->filename), "%s-lease-%" PRId64 ".%s", sbx, l.id,
		 pcapng ? "pcapng" : "jsonl");
	out->truncated = c.truncated;
	out->frames = c.frames;
	char detail[96];
	snprintf(detail, sizeof(detail), "%s, %u frames%s", pcapng ? "pcapng" : "jsonl", c.frames,
		 c.truncated ? ", truncated" : "");
	sandboxes_audit(d->sandboxes, who, sbx, "capture", lease_id, "ok", (int64_t)out->len,
			detail);
	return 0;
}

/* ---- replay -------------------------------------------------------------- */

struct job {
	uv_timer_t timer;
	struct replay *r;
	struct job *next;
	char sbx[STORE_ID_MAX + 1];
	char id[32];
	json_t *recs; /* {"topic","frame","time_us"}, time order */
	size_t next_rec, sent, skipped;
	double speed;
	uint64_t start_ms; /* loop time of the first frame */
	int64_t first_us;  /* capture time of the first frame */
	bool closing;
};

struct replay {
	struct labgwd *d;
	struct job *jobs;
	unsigned counter;
	bool stopping;
};

struct replay *replay_new(struct labgwd *d)
{
	struct replay *r = calloc(1, sizeof(*r));
	if (r)
		r->d = d;
	return r;
}

static void emit(struct replay *r, const char *sbx, const char *event, const struct job *j,
		 const char *reason)
{
	json_t *data = json_pack("{s:s, s:I}", "replay", j->id, "frames",
				 (json_int_t)json_array_size(j->recs));
	if (data && !strcmp(event, "replay.ended")) {
		json_object_set_new(data, "sent", json_integer((json_int_t)j->sent));
		json_object_set_new(data, "reason", json_string(reason));
	}
	if (data)
		sandboxes_emit_event(r->d->sandboxes, sbx, event, data);
}

static void job_closed(uv_handle_t *h)
{
	struct job *j = h->data;
	json_decref(j->recs);
	free(j);
}

static void job_end(struct job *j, const char *reason)
{
	if (j->closing)
		return;
	j->closing = true;
	struct job **pp = &j->r->jobs;
	while (*pp && *pp != j)
		pp = &(*pp)->next;
	if (*pp)
		*pp = j->next;
	if (!j->r->stopping && strcmp(reason, "sandbox deleted"))
		emit(j->r, j->sbx, "replay.ended", j, reason);
	log_info("replay %s of sandbox %s %s: %zu of %zu frames", j->id, j->sbx, reason, j->sent,
		 json_array_size(j->recs));
	uv_timer_stop(&j->timer);
	uv_close((uv_handle_t *)&j->timer, job_closed);
}

/* The frame of a record, rebuilt as a new frame of this gateway (new id and
 * time) marked replayed, on the same topic under the sandbox's own tree. */
static int publish_rec(struct job *j, const json_t *rec)
{
	struct labgwd *d = j->r->d;
	const char *topic = json_string_value(json_object_get(rec, "topic"));
	const json_t *fr = json_object_get(rec, "frame");
	/* labgw/v1/sbx/{any}/{rx|obs}/{tech}/{gw}/{radio}/{dev} */
	char lv[9][128];
	int n = 0;
	const char *p = topic;
	while (n < 9) {
		const char *s = strchr(p, '/');
		size_t len = s ? (size_t)(s - p) : strlen(p);
		if (len >= sizeof(lv[0]))
			return -EINVAL;
		memcpy(lv[n], p, len);
		lv[n][len] = '\0';
		n++;
		if (!s)
			break;
		p = s + 1;
	}
	if (n != 9 || strcmp(lv[0], "labgw") || strcmp(lv[1], "v1") || strcmp(lv[2], "sbx") ||
	    (strcmp(lv[4], "rx") && strcmp(lv[4], "obs")))
		return -EINVAL;
	const char *type = json_string_value(json_object_get(fr, "type"));
	const char *radio = json_string_value(json_object_get(fr, "radio"));
	enum labgw_tech tech = frame_tech_parse(lv[5]);
	if (!type || !frame_type_valid(type) || tech == LABGW_TECH_NONE ||
	    strcmp(json_string_value(json_object_get(fr, "tech")) ?: "", lv[5]))
		return -EINVAL;
	if (!radio || !ident_valid(radio, 32))
		return -EINVAL;
	struct frame *f = frame_new(d->cfg->gw_id, radio, tech, type);
	if (!f)
		return -ENOMEM;
	int rc = 0;
	const json_t *dev = json_object_get(fr, "dev");
	const char *dev_id = json_string_value(json_object_get(dev, "id"));
	if (dev_id)
		rc = frame_set_dev(f, dev_id, json_is_true(json_object_get(dev, "claimed")));
	const char *b64 = json_string_value(json_object_get(fr, "payload"));
	if (!rc && b64) {
		uint8_t *buf = malloc(FRAME_PAYLOAD_MAX);
		long len = buf ? base64_decode(b64, strlen(b64), buf, FRAME_PAYLOAD_MAX) : -1;
		rc = len < 0 ? -EINVAL : frame_set_payload(f, buf, (size_t)len);
		free(buf);
	}
	const char *sec_name[2] = {"sig", "data"};
	enum labgw_section secs[2] = {LABGW_SIG, LABGW_DATA};
	for (int s = 0; s < 2 && !rc; s++) {
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)json_object_get(fr, sec_name[s]), k, v)
		{
			if (!rc)
				rc = frame_set(f, secs[s], k, json_incref(v));
		}
	}
	f->replayed = true;
	char esc[3 * FRAME_DEV_MAX + 1] = "-";
	if (!rc && dev_id && topic_escape_level(dev_id, esc, sizeof(esc)) < 0)
		rc = -EINVAL;
	if (!rc)
		rc = frame_seal(f, labgwd_next_seq(d), time_now_us());
	if (!rc) {
		char t[256];
		snprintf(t, sizeof(t), "labgw/v1/sbx/%s/%s/%s/%s/%s/%s", j->sbx, lv[4], lv[5],
			 d->cfg->gw_id, radio, esc);
		struct bus_msg *m = bus_publish_msg(d->bus, t, f, false);
		if (m) {
			if (d->history)
				history_record(d->history, j->sbx, m);
			bus_msg_unref(m);
		}
	}
	frame_unref(f);
	return rc;
}

/* labgw/v1/sbx/{any}/rx/... or .../obs/... */
static bool replayable(const char *topic)
{
	static const char prefix[] = "labgw/v1/sbx/";
	if (!topic || strncmp(topic, prefix, sizeof(prefix) - 1))
		return false;
	const char *p = strchr(topic + sizeof(prefix) - 1, '/');
	return p && (!strncmp(p, "/rx/", 4) || !strncmp(p, "/obs/", 5));
}

static void job_tick(uv_timer_t *t)
{
	struct job *j = t->data;
	uint64_t now = uv_now(j->r->d->loop);
	size_t total = json_array_size(j->recs);
	unsigned burst = 0;
	while (j->next_rec < total) {
		const json_t *rec = json_array_get(j->recs, j->next_rec);
		int64_t at_us = json_integer_value(json_object_get(rec, "time_us"));
		uint64_t due =
			j->start_ms + (uint64_t)((double)(at_us - j->first_us) / 1000.0 / j->speed);
		/* the rate limit: at most REPLAY_RATE_MAX frames a second */
		uint64_t floor_due = j->start_ms + j->next_rec * 1000 / REPLAY_RATE_MAX;
		if (due < floor_due)
			due = floor_due;
		if (due > now || burst >= 64) {
			uv_timer_start(&j->timer, job_tick, due > now ? due - now : 1, 0);
			return;
		}
		if (publish_rec(j, rec) == 0)
			j->sent++;
		else
			j->skipped++;
		j->next_rec++;
		burst++;
	}
	job_end(j, "done");
}

static struct job *job_of(struct replay *r, const char *sbx)
{
	for (struct job *j = r->jobs; j; j = j->next)
		if (!strcmp(j->sbx, sbx))
			return j;
	return NULL;
}

struct recs_ctx {
	const struct principal *who;
	int64_t from_us, to_us;
	json_t *recs;
	uint64_t last;
	int given;
	bool done;
};

static int lease_row(void *ud, uint64_t seq, const char *topic, const char *json)
{
	struct recs_ctx *c = ud;
	c->last = seq;
	c->given++;
	if (c->done || json_array_size(c->recs) >= CAPTURE_FRAMES_MAX)
		return 0;
	if (!principal_is_staff(c->who) && !sandboxes_may_receive(c->who, topic))
		return 0;
	json_t *frame = json_loads(json, 0, NULL);
	const char *t = json_string_value(json_object_get(frame, "time"));
	int64_t us;
	if (t && time_parse_rfc3339(t, &us) == 0 && us >= c->from_us && us < c->to_us &&
	    !json_object_get(frame, "replayed"))
		json_array_append_new(c->recs, json_pack("{s:s,s:O,s:I}", "topic", topic, "frame",
							 frame, "time_us", (json_int_t)us));
	else if (t && time_parse_rfc3339(t, &us) == 0 && us >= c->to_us)
		c->done = true;
	json_decref(frame);
	return 0;
}

int api_replay_start(struct replay *r, const struct principal *who, const char *sbx,
		     const json_t *body, json_t **result, struct api_error *err)
{
	struct labgwd *d = r->d;
	if (!sbx || !ident_valid(sbx, 32))
		return api_fail(err, "BAD_REQUEST", "not a sandbox id");
	if (!principal_is_staff(who) && strcmp(who->sbx, sbx))
		return api_fail(err, "FORBIDDEN", "this key may not replay into sandbox '%s'", sbx);
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)body, k, v)
	{
		if (strcmp(k, "lease") && strcmp(k, "jsonl") && strcmp(k, "speed"))
			return api_fail(err, "BAD_REQUEST",
					"unknown field \"%s\" (expected lease, jsonl, speed)", k);
	}
	const json_t *jl = json_object_get(body, "lease");
	const json_t *jt = json_object_get(body, "jsonl");
	const json_t *js = json_object_get(body, "speed");
	double speed = 1.0;
	if (js) {
		if (!json_is_number(js) || json_number_value(js) < 1.0 ||
		    json_number_value(js) > SPEED_MAX)
			return api_fail(err, "BAD_REQUEST", "\"speed\" is a number from 1 to %g",
					SPEED_MAX);
		speed = json_number_value(js);
	}
	if (!!jl == !!jt)
		return api_fail(err, "BAD_REQUEST",
				"give one of \"lease\" (the id of a lease of the sandbox) or "
				"\"jsonl\" (a capture as JSON Lines)");
	if (job_of(r, sbx))
		return api_fail(err, "CONFLICT",
				"sandbox %s is replaying already (DELETE .../replay cancels it)",
				sbx);
	json_t *recs = NULL;
	if (jt) {
		if (!json_is_string(jt))
			return api_fail(err, "BAD_REQUEST", "\"jsonl\" is a string of JSON Lines");
		char why[160];
		recs = capture_jsonl_parse(json_string_value(jt), json_string_length(jt),
					   CAPTURE_FRAMES_MAX, why, sizeof(why));
		if (!recs)
			return api_fail(err, "BAD_REQUEST", "\"jsonl\": %s", why);
	} else {
		char id[24];
		if (json_is_integer(jl))
			snprintf(id, sizeof(id), "%" JSON_INTEGER_FORMAT, json_integer_value(jl));
		else if (json_is_string(jl) && json_string_length(jl) < sizeof(id))
			snprintf(id, sizeof(id), "%s", json_string_value(jl));
		else
			return api_fail(err, "BAD_REQUEST", "\"lease\" is a lease id");
		struct store_lease l;
		if (lease_of(d, who, sbx, id, &l, err) < 0)
			return -1;
		int64_t now = (int64_t)time_now_us();
		struct recs_ctx c = {.who = who,
				     .from_us = l.start_us,
				     .to_us = l.end_us < now ? l.end_us : now,
				     .recs = json_array()};
		do {
			c.given = 0;
			if (history_replay(d->history, sbx, c.last, NULL, 1000, lease_row, &c) <
			    0) {
				json_decref(c.recs);
				return api_fail(err, "INTERNAL", "the history could not be read");
			}
		} while (c.given == 1000 && !c.done);
		recs = c.recs;
	}
	/* only observations are replayed: frames of rx/ and obs/ topics, not
	 * the sandbox's events or transmit statuses */
	size_t skipped = 0;
	for (size_t i = 0; i < json_array_size(recs);) {
		const char *t =
			json_string_value(json_object_get(json_array_get(recs, i), "topic"));
		if (replayable(t)) {
			i++;
		} else {
			json_array_remove(recs, i);
			skipped++;
		}
	}
	size_t n = json_array_size(recs);
	if (!n) {
		json_decref(recs);
		return api_fail(err, "BAD_REQUEST",
				"the capture holds no frames of rx/ or obs/ topics to replay");
	}
	int64_t first = json_integer_value(json_object_get(json_array_get(recs, 0), "time_us"));
	int64_t last = json_integer_value(json_object_get(json_array_get(recs, n - 1), "time_us"));
	long long duration_ms = (long long)((double)(last - first) / 1000.0 / speed);
	if (duration_ms < (long long)(n * 1000 / REPLAY_RATE_MAX))
		duration_ms = (long long)(n * 1000 / REPLAY_RATE_MAX);
	if (duration_ms > REPLAY_DURATION_MAX) {
		json_decref(recs);
		return api_fail(err, "TOO_LARGE",
				"the replay would take %lld s (at most %lld s): raise \"speed\"",
				duration_ms / 1000, REPLAY_DURATION_MAX / 1000);
	}
	struct job *j = calloc(1, sizeof(*j));
	if (!j) {
		json_decref(recs);
		return api_fail(err, "INTERNAL", "out of memory");
	}
	j->r = r;
	j->recs = recs;
	j->speed = speed;
	j->first_us = first;
	snprintf(j->sbx, sizeof(j->sbx), "%s", sbx);
	snprintf(j->id, sizeof(j->id), "rp-%u", ++r->counter);
	uv_timer_init(d->loop, &j->timer);
	j->timer.data = j;
	uv_update_time(d->loop);
	j->start_ms = uv_now(d->loop);
	j->next = r->jobs;
	r->jobs = j;
	uv_timer_start(&j->timer, job_tick, 0, 0);
	emit(r, sbx, "replay.started", j, NULL);
	char detail[96];
	snprintf(detail, sizeof(detail), "%s, %zu frames, speed %g", jt ? "upload" : "lease", n,
		 speed);
	sandboxes_audit(d->sandboxes, who, sbx, "replay", j->id, "ok", 0, detail);
	*result = json_pack("{s:s,s:I,s:I,s:f,s:I}", "replay", j->id, "frames", (json_int_t)n,
			    "skipped", (json_int_t)skipped, "speed", speed, "duration_ms",
			    (json_int_t)duration_ms);
	return 0;
}

int api_replay_cancel(struct replay *r, const struct principal *who, const char *sbx,
		      json_t **result, struct api_error *err)
{
	if (!sbx || !ident_valid(sbx, 32))
		return api_fail(err, "BAD_REQUEST", "not a sandbox id");
	if (!principal_is_staff(who) && strcmp(who->sbx, sbx))
		return api_fail(err, "FORBIDDEN", "this key may not act for sandbox '%s'", sbx);
	struct job *j = job_of(r, sbx);
	if (!j)
		return api_fail(err, "NOT_FOUND", "sandbox %s is not replaying", sbx);
	*result = json_pack("{s:s,s:I}", "cancelled", j->id, "sent", (json_int_t)j->sent);
	sandboxes_audit(r->d->sandboxes, who, sbx, "replay.cancel", j->id, "ok", 0, NULL);
	job_end(j, "cancelled");
	return 0;
}

void replay_forget(struct replay *r, const char *sbx)
{
	struct job *j = r ? job_of(r, sbx) : NULL;
	if (j)
		job_end(j, "sandbox deleted");
}

void replay_stop(struct replay *r)
{
	if (!r)
		return;
	r->stopping = true;
	while (r->jobs)
		job_end(r->jobs, "stopped");
}

void replay_free(struct replay *r)
{
	if (!r)
		return;
	if (r->jobs)
		log_error("internal: replay freed with a job running");
	free(r);
}
