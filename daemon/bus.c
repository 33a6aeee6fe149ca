#include "bus.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "topic.h"

/* Subscriptions live in a trie of topic levels; '+' and '#' are ordinary
 * child names there, so matching a topic visits at most three children per
 * level instead of every subscription. */
struct node {
	char *level;
	struct node *parent;
	struct node *children; /* first child */
	struct node *next;     /* next sibling */
	struct entry *entries; /* subscriptions whose filter ends here */
};

struct entry {
	struct bus_sub *sub;
	struct node *node;
	char *filter;
	struct entry *next_in_node;
	struct entry *next_in_sub;
};

struct slot {
	struct bus_msg *msg;
	uint64_t dropped_before;
};

struct bus_sub {
	struct bus *bus;
	struct entry *entries;
	size_t nfilters;
	bus_wake_fn wake;
	void *user_data;
	uint64_t last_serial; /* dedupe when several filters match */
	/* the send queue: a ring of `alloc` slots, grown on demand up to
	 * `cap` (an idle subscriber costs no queue memory) */
	struct slot *ring;
	size_t cap, alloc, head, count;
	uint64_t pending_drops; /* dropped since the last queued message */
	uint64_t dropped_total;
	struct bus_sub *next, *prev;
};

struct retained {
	struct bus_msg *msg;
	struct retained *next;
};

struct bus {
	struct node root;
	uint64_t serial;
	struct retained *retained;
	size_t nretained, max_retained;
	struct bus_sub *subs;
	struct bus_stats stats;
};

struct bus *bus_new(size_t max_retained)
{
	struct bus *bus = calloc(1, sizeof(*bus));
	if (bus)
		bus->max_retained = max_retained;
	return bus;
}

void bus_free(struct bus *bus)
{
	if (!bus)
		return;
	while (bus->retained) {
		struct retained *r = bus->retained;
		bus->retained = r->next;
		bus_msg_unref(r->msg);
		free(r);
	}
	/* every subscriber freed ⇒ the trie is empty */
	free(bus);
}

struct bus_msg *bus_msg_ref(struct bus_msg *m)
{
	m->refcnt++;
	return m;
}

void bus_msg_unref(struct bus_msg *m)
{
	if (!m || --m->refcnt > 0)
		return;
	frame_unref(m->frame);
	free(m->topic);
	free(m->ws_buf);
	free(m);
}

#define RING_FIRST 8

/* Double the ring (at most to cap), its slots in order from index 0;
 * -ENOSPC when it is full at cap, -ENOMEM. */
static int ring_grow(struct bus_sub *s)
{
	if (s->alloc >= s->cap)
		return -ENOSPC;
	size_t n = s->alloc ? 2 * s->alloc : RING_FIRST;
	if (n > s->cap)
		n = s->cap;
	struct slot *r = calloc(n, sizeof(*r));
	if (!r)
		return -ENOMEM;
	for (size_t i = 0; i < s->count; i++)
		r[i] = s->ring[(s->head + i) % s->alloc];
	free(s->ring);
	s->ring = r;
	s->alloc = n;
	s->head = 0;
	return 0;
}

static void enqueue(struct bus_sub *s, struct bus_msg *m)
{
	struct bus *bus = s->bus;
	if (s->last_serial == m->serial)
		return;
	s->last_serial = m->serial;
	if (s->count == s->alloc && ring_grow(s) < 0) {
		s->pending_drops++;
		s->dropped_total++;
		bus->stats.dropped++;
		return;
	}
	struct slot *sl = &s->ring[(s->head + s->count) % s->alloc];
	sl->msg = bus_msg_ref(m);
	sl->dropped_before = s->pending_drops;
	s->pending_drops = 0;
	s->count++;
	bus->stats.deliveries++;
	if (s->count == 1 && s->wake)
		s->wake(s, s->user_data);
}

static void deliver_node(struct node *n, struct bus_msg *m)
{
	for (struct entry *e = n->entries; e; e = e->next_in_node)
		enqueue(e->sub, m);
}

static struct node *child(struct node *n, const char *level)
{
	for (struct node *c = n->children; c; c = c->next)
		if (!strcmp(c->level, level))
			return c;
	return NULL;
}

static void match(struct node *n, const char **levels, int i, int nlevels, struct bus_msg *m)
{
	struct node *hash = child(n, "#");
	/* '#' matches the rest, including nothing; not '$' topics at the root */
	if (hash && !(i == 0 && levels[0][0] == '$'))
		deliver_node(hash, m);
	if (i == nlevels) {
		deliver_node(n, m);
		return;
	}
	struct node *c = child(n, levels[i]);
	if (c)
		match(c, levels, i + 1, nlevels, m);
	if (strcmp(levels[i], "+")) {
		struct node *plus = child(n, "+");
		if (plus && !(i == 0 && levels[0][0] == '$'))
			match(plus, levels, i + 1, nlevels, m);
	}
}

static struct retained **retained_find(struct bus *bus, const char *topic)
{
	for (struct retained **rp = &bus->retained; *rp; rp = &(*rp)->next)
		if (!strcmp((*rp)->msg->topic, topic))
			return rp;
	return NULL;
}

void bus_clear_retained(struct bus *bus, const char *topic)
{
	struct retained **rp = retained_find(bus, topic);
	if (!rp)
		return;
	struct retained *r = *rp;
	*rp = r->next;
	bus_msg_unref(r->msg);
	free(r);
	bus->nretained--;
}

int bus_publish(struct bus *bus, const char *topic, struct frame *f, bool retain)
{
	uint64_t before = bus->stats.deliveries;
	struct bus_msg *m = bus_publish_msg(bus, topic, f, retain);
	if (!m)
		return topic_name_valid(topic) && f->sealed ? -ENOMEM : -EINVAL;
	bus_msg_unref(m);
	return (int)(bus->stats.deliveries - before);
}

struct bus_msg *bus_publish_msg(struct bus *bus, const char *topic, struct frame *f, bool retain)
{
	char buf[TOPIC_MAX_LEN + 1];
	const char *levels[TOPIC_MAX_LEVELS];
	if (!f->sealed || !topic_name_valid(topic))
		return NULL;
	size_t tl = strlen(topic);
	memcpy(buf, topic, tl + 1);
	int nlevels = topic_split(buf, levels, TOPIC_MAX_LEVELS);
	if (nlevels < 0)
		return NULL;

	struct bus_msg *m = calloc(1, sizeof(*m));
	if (!m || !(m->topic = strdup(topic))) {
		free(m);
		return NULL;
	}
	m->refcnt = 1;
	m->serial = ++bus->serial;
	m->retained = retain;
	m->frame = frame_ref(f);
	m->topic_len = tl;

	if (retain) {
		struct retained **rp = retained_find(bus, topic);
		if (rp) {
			bus_msg_unref((*rp)->msg);
			(*rp)->msg = bus_msg_ref(m);
		} else if (bus->nretained < bus->max_retained) {
			struct retained *r = malloc(sizeof(*r));
			if (r) {
				r->msg = bus_msg_ref(m);
				r->next = bus->retained;
				bus->retained = r;
				bus->nretained++;
			}
		}
	}
	bus->stats.published++;
	match(&bus->root, levels, 0, nlevels, m);
	return m;
}

void bus_get_stats(const struct bus *bus, struct bus_stats *st)
{
	*st = bus->stats;
	st->retained = bus->nretained;
}

struct bus_sub *bus_sub_new(struct bus *bus, size_t queue_cap, bus_wake_fn wake, void *user_data)
{
	if (queue_cap == 0)
		return NULL;
	struct bus_sub *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->bus = bus;
	s->cap = queue_cap;
	s->wake = wake;
	s->user_data = user_data;
	s->next = bus->subs;
	if (bus->subs)
		bus->subs->prev = s;
	bus->subs = s;
	bus->stats.subscribers++;
	return s;
}

static void prune(struct node *n)
{
	while (n->parent && !n->entries && !n->children) {
		struct node *p = n->parent;
		struct node **cp = &p->children;
		while (*cp != n)
			cp = &(*cp)->next;
		*cp = n->next;
		free(n->level);
		free(n);
		n = p;
	}
}

static void entry_free(struct entry *e)
{
	struct entry **ep = &e->node->entries;
	while (*ep != e)
		ep = &(*ep)->next_in_node;
	*ep = e->next_in_node;
	prune(e->node);
	free(e->filter);
	free(e);
}

void bus_sub_free(struct bus_sub *s)
{
	if (!s)
		return;
	while (s->entries) {
		struct entry *e = s->entries;
		s->entries = e->next_in_sub;
		entry_free(e);
	}
	for (size_t i = 0; i < s->count; i++)
		bus_msg_unref(s->ring[(s->head + i) % s->alloc].msg);
	if (s->prev)
		s->prev->next = s->next;
	else
		s->bus->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	s->bus->stats.subscribers--;
	free(s->ring);
	free(s);
}

static bool retained_matches(const char *filter, const char *topic)
{
	return topic_match(filter, topic);
}

int bus_sub_add(struct bus_sub *s, const char *filter)
{
	char buf[TOPIC_MAX_LEN + 1];
	const char *levels[TOPIC_MAX_LEVELS];
	if (!topic_filter_valid(filter))
		return -EINVAL;
	for (struct entry *e = s->entries; e; e = e->next_in_sub)
		if (!strcmp(e->filter, filter))
			return -EEXIST;
	strcpy(buf, filter);
	int nlevels = topic_split(buf, levels, TOPIC_MAX_LEVELS);
	if (nlevels < 0)
		return -EINVAL;
	struct entry *e = calloc(1, sizeof(*e));
	if (!e || !(e->filter = strdup(filter))) {
		free(e);
		return -ENOMEM;
	}
	struct node *n = &s->bus->root;
	for (int i = 0; i < nlevels; i++) {
		struct node *c = child(n, levels[i]);
		if (!c) {
			c = calloc(1, sizeof(*c));
			if (!c || !(c->level = strdup(levels[i]))) {
				free(c);
				prune(n);
				free(e->filter);
				free(e);
				return -ENOMEM;
			}
			c->parent = n;
			c->next = n->children;
			n->children = c;
		}
		n = c;
	}
	e->sub = s;
	e->node = n;
	e->next_in_node = n->entries;
	n->entries = e;
	e->next_in_sub = s->entries;
	s->entries = e;
	s->nfilters++;
	for (struct retained *r = s->bus->retained; r; r = r->next) {
		if (retained_matches(filter, r->msg->topic)) {
			s->last_serial = 0; /* a retained message may repeat for a new filter */
			enqueue(s, r->msg);
		}
	}
	return 0;
}

int bus_sub_remove(struct bus_sub *s, const char *filter)
{
	for (struct entry **ep = &s->entries; *ep; ep = &(*ep)->next_in_sub) {
		struct entry *e = *ep;
		if (strcmp(e->filter, filter))
			continue;
		*ep = e->next_in_sub;
		entry_free(e);
		s->nfilters--;
		return 0;
	}
	return -ENOENT;
}

size_t bus_sub_filter_count(const struct bus_sub *s)
{
	return s->nfilters;
}

struct bus_msg *bus_sub_pop(struct bus_sub *s, uint64_t *dropped)
{
	if (!s->count) {
		*dropped = s->pending_drops;
		s->pending_drops = 0;
		return NULL;
	}
	struct slot *sl = &s->ring[s->head];
	struct bus_msg *m = sl->msg;
	*dropped = sl->dropped_before;
	sl->msg = NULL;
	s->head = (s->head + 1) % s->alloc;
	s->count--;
	return m;
}

size_t bus_sub_pending(const struct bus_sub *s)
{
	return s->count;
}

uint64_t bus_sub_dropped_total(const struct bus_sub *s)
{
	return s->dropped_total;
}

bool bus_sub_has(const struct bus_sub *sub, const char *filter)
{
	for (const struct entry *e = sub->entries; e; e = e->next_in_sub)
		if (!strcmp(e->filter, filter))
			return true;
	return false;
}
