#include "history.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "daemon.h"
#include "log.h"
#include "sandbox.h"
#include "store.h"
#include "topic.h"
#include "util.h"

/* Rows waiting for the writer; beyond, frames are not kept (and counted). */
#define PENDING_MAX 50000
#define FLUSH_MS    100
#define REPLAY_MAX  1000

struct pending {
	char sbx[STORE_ID_MAX + 1];
	struct bus_msg *msg;
};

struct batch {
	uv_work_t req;
	struct history *h;
	struct store_history_row *rows;
	size_t n;
	int64_t max_rows, min_time_us;
	int rc;
};

struct history {
	struct labgwd *d;
	struct store *st;
	struct pending *pending; /* ring of PENDING_MAX */
	size_t head, count;
	struct batch *inflight;	       /* at most one batch at the writer */
	struct pending *inflight_msgs; /* the messages of that batch, for replays */
	size_t inflight_n;
	uv_timer_t timer; /* runs only while rows wait: an idle daemon sleeps */
	bool started, stopping;
	struct history_stats stats;
};

struct history *history_new(struct labgwd *d, struct store *st)
{
	struct history *h = calloc(1, sizeof(*h));
	if (!h)
		return NULL;
	h->pending = calloc(PENDING_MAX, sizeof(*h->pending));
	if (!h->pending) {
		free(h);
		return NULL;
	}
	h->d = d;
	h->st = st;
	uv_timer_init(d->loop, &h->timer);
	h->timer.data = h;
	return h;
}

static void timer_cb(uv_timer_t *t);

void history_record(struct history *h, const char *sbx, struct bus_msg *m)
{
	if (h->stopping || h->d->cfg->history_max_frames <= 0)
		return;
	h->stats.recorded++;
	if (h->count == PENDING_MAX) {
		h->stats.dropped++;
		return;
	}
	struct pending *p = &h->pending[(h->head + h->count) % PENDING_MAX];
	snprintf(p->sbx, sizeof(p->sbx), "%s", sbx);
	p->msg = bus_msg_ref(m);
	h->count++;
	if (h->started && !uv_is_active((uv_handle_t *)&h->timer))
		uv_timer_start(&h->timer, timer_cb, FLUSH_MS, FLUSH_MS);
}

void history_forget(struct history *h, const char *sbx)
{
	/* rows not yet written: dropped at the next flush, and no longer
	 * replayed (the batch at the writer checks the sandbox itself) */
	for (size_t i = 0; i < h->count; i++) {
		struct pending *p = &h->pending[(h->head + i) % PENDING_MAX];
		if (!strcmp(p->sbx, sbx))
			p->sbx[0] = '\0';
	}
	for (size_t i = 0; i < h->inflight_n; i++)
		if (!strcmp(h->inflight_msgs[i].sbx, sbx))
			h->inflight_msgs[i].sbx[0] = '\0';
}

static void write_cb(uv_work_t *req)
{
	struct batch *b = req->data;
	b->rc = store_history_write(b->h->st, b->rows, b->n, b->max_rows, b->min_time_us);
}

static void release_inflight(struct history *h)
{
	for (size_t i = 0; i < h->inflight_n; i++)
		bus_msg_unref(h->inflight_msgs[i].msg);
	free(h->inflight_msgs);
	h->inflight_msgs = NULL;
	h->inflight_n = 0;
}

static void flush(struct history *h);

static void after_write_cb(uv_work_t *req, int status)
{
	struct batch *b = req->data;
	struct history *h = b->h;
	if (b->rc < 0 || status < 0) {
		h->stats.dropped += b->n;
		log_warning("history: %zu frames could not be written: %s", b->n,
			    strerror(b->rc < 0 ? -b->rc : ECANCELED));
	} else {
		h->stats.written += b->n;
	}
	for (size_t i = 0; i < b->n; i++) {
		free(b->rows[i].topic);
		free(b->rows[i].json);
	}
	free(b->rows);
	free(b);
	h->inflight = NULL;
	release_inflight(h);
	if (h->stopping)
		flush(h); /* what arrived meanwhile, before the loop ends */
}

/* Hand what is pending to the writer thread (one batch at a time). */
static void flush(struct history *h)
{
	if (h->inflight || !h->count)
		return;
	struct batch *b = calloc(1, sizeof(*b));
	size_t n = h->count;
	struct store_history_row *rows = b ? calloc(n, sizeof(*rows)) : NULL;
	struct pending *msgs = rows ? calloc(n, sizeof(*msgs)) : NULL;
	if (!msgs) {
		free(rows);
		free(b);
		return;
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		struct pending *p = &h->pending[(h->head + i) % PENDING_MAX];
		if (!p->sbx[0]) {
			/* forgotten: its sandbox was deleted */
			bus_msg_unref(p->msg);
			p->msg = NULL;
			continue;
		}
		struct frame *f = p->msg->frame;
		snprintf(rows[k].sbx, sizeof(rows[k].sbx), "%s", p->sbx);
		rows[k].seq = f->seq;
		rows[k].time_us = (int64_t)f->time_us;
		rows[k].topic = strdup(p->msg->topic);
		rows[k].json = strdup(f->json);
		msgs[k++] = *p; /* the ref moves to the in-flight list */
		p->msg = NULL;
	}
	h->head = (h->head + n) % PENDING_MAX;
	h->count = 0;
	n = k;
	b->h = h;
	b->rows = rows;
	b->n = n;
	b->max_rows = h->d->cfg->history_max_frames;
	b->min_time_us = (int64_t)time_now_us() - (int64_t)h->d->cfg->history_max_age_ms * 1000;
	b->req.data = b;
	h->inflight = b;
	h->inflight_msgs = msgs;
	h->inflight_n = n;
	if (h->stopping) {
		/* at shutdown, on this thread: the loop is going away */
		write_cb(&b->req);
		after_write_cb(&b->req, 0);
		return;
	}
	if (uv_queue_work(h->d->loop, &b->req, write_cb, after_write_cb) < 0) {
		write_cb(&b->req);
		after_write_cb(&b->req, 0);
	}
}

static void timer_cb(uv_timer_t *t)
{
	struct history *h = t->data;
	flush(h);
	if (!h->count && !h->inflight)
		uv_timer_stop(t);
}

void history_start(struct history *h)
{
	h->started = true;
	if (h->count)
		uv_timer_start(&h->timer, timer_cb, FLUSH_MS, FLUSH_MS);
}

void history_stop(struct history *h)
{
	if (!h || h->stopping)
		return;
	uv_close((uv_handle_t *)&h->timer, NULL);
	h->stopping = true;
	/* a batch at the writer finishes in the loop; what is left is written
	 * in its done callback or below */
	if (!h->inflight)
		flush(h);
}

void history_free(struct history *h)
{
	if (!h)
		return;
	if (h->inflight) {
		/* the loop ended with a batch at the writer: not possible after
		 * uv_run returned, but be safe */
		log_error("internal: history freed with a batch in flight");
	}
	if (h->count) {
		h->stopping = true;
		flush(h);
	}
	for (size_t i = 0; i < h->count; i++)
		bus_msg_unref(h->pending[(h->head + i) % PENDING_MAX].msg);
	release_inflight(h);
	free(h->pending);
	free(h);
}

void history_get_stats(const struct history *h, struct history_stats *st)
{
	*st = h->stats;
	st->pending = h->count + h->inflight_n;
}

int history_parse_id(const char *gw, const char *id, uint64_t *seq)
{
	size_t gl = strlen(gw);
	if (strncmp(id, gw, gl) || id[gl] != '-' || strlen(id + gl + 1) != 16)
		return -1;
	char *end;
	errno = 0;
	unsigned long long v = strtoull(id + gl + 1, &end, 16);
	if (*end || errno)
		return -1;
	*seq = v;
	return 0;
}

struct replay_ctx {
	history_cb cb;
	void *ud;
	int given;
	uint64_t last;
};

static int replay_row(void *ud, uint64_t seq, int64_t time_us, const char *topic, const char *json)
{
	struct replay_ctx *c = ud;
	c->last = seq;
	c->given++;
	return c->cb(c->ud, seq, topic, json);
}

static int replay_mem(struct replay_ctx *c, const struct pending *p, const char *sbx,
		      uint64_t since, const char *filter, int limit)
{
	if (c->given >= limit || strcmp(p->sbx, sbx))
		return 0;
	const struct frame *f = p->msg->frame;
	if (f->seq <= since || f->seq <= c->last)
		return 0;
	if (filter && !topic_match(filter, p->msg->topic))
		return 0;
	c->last = f->seq;
	c->given++;
	return c->cb(c->ud, f->seq, p->msg->topic, f->json);
}

int history_replay(struct history *h, const char *sbx, uint64_t since, const char *filter,
		   int limit, history_cb cb, void *ud)
{
	struct replay_ctx c = {cb, ud, 0, 0};
	if (limit > REPLAY_MAX)
		limit = REPLAY_MAX;
	/* the store holds the oldest, then the batch at the writer, then what
	 * is pending: seqs increase along this path */
	int rc = store_history_query(h->st, sbx, since, filter, limit, replay_row, &c);
	if (rc < 0)
		return -1;
	for (size_t i = 0; i < h->inflight_n && c.given < limit; i++)
		if (replay_mem(&c, &h->inflight_msgs[i], sbx, since, filter, limit))
			return c.given;
	for (size_t i = 0; i < h->count && c.given < limit; i++)
		if (replay_mem(&c, &h->pending[(h->head + i) % PENDING_MAX], sbx, since, filter,
			       limit))
			return c.given;
	return c.given;
}

struct frames_ctx {
	json_t *arr;
	uint64_t last;
	const char *gw;
};

static int add_frame(void *ud, uint64_t seq, const char *topic, const char *json)
{
	struct frames_ctx *c = ud;
	json_error_t je;
	json_t *frame = json_loads(json, 0, &je);
	if (frame)
		json_array_append_new(c->arr,
				      json_pack("{s:s,s:o}", "topic", topic, "frame", frame));
	c->last = seq;
	return 0;
}

int api_frames(struct history *h, const struct principal *who, const char *sbx, const char *since,
	       const char *topic, const char *limit, json_t **result, struct api_error *err)
{
	if (!sbx || !ident_valid(sbx, 32))
		return api_fail(err, "BAD_REQUEST", "not a sandbox id");
	if (!principal_is_staff(who) && strcmp(who->sbx, sbx))
		return api_fail(err, "FORBIDDEN", "this key may not read sandbox '%s'", sbx);
	uint64_t from = 0;
	long long lim = 100;
	const char *gw = h->d->cfg->gw_id;
	if (since && *since && history_parse_id(gw, since, &from) < 0)
		return api_fail(err, "BAD_REQUEST",
				"\"since\" is a frame id of this gateway (%s-…)", gw);
	if (limit && *limit && parse_int(limit, 1, REPLAY_MAX, &lim) < 0)
		return api_fail(err, "BAD_REQUEST", "\"limit\" is 1 to %d", REPLAY_MAX);
	if (topic && *topic && !topic_filter_valid(topic))
		return api_fail(err, "BAD_REQUEST", "\"topic\" is not a valid topic filter");
	struct frames_ctx c = {json_array(), 0, gw};
	/* a key without rx or observe must not read those parts back either */
	int n = history_replay(h, sbx, from, topic && *topic ? topic : NULL, (int)lim, add_frame,
			       &c);
	if (n < 0) {
		json_decref(c.arr);
		return api_fail(err, "INTERNAL", "the history could not be read");
	}
	if (!principal_is_staff(who)) {
		size_t i = 0;
		while (i < json_array_size(c.arr)) {
			const char *t = json_string_value(
				json_object_get(json_array_get(c.arr, i), "topic"));
			if (t && !sandboxes_may_receive(who, t))
				json_array_remove(c.arr, i);
			else
				i++;
		}
	}
	json_t *next = json_null();
	if (n == lim && c.last) {
		char id[64];
		snprintf(id, sizeof(id), "%s-%016" PRIx64, gw, c.last);
		next = json_string(id);
	}
	*result = json_pack("{s:o,s:o}", "frames", c.arr, "next", next);
	return 0;
}
