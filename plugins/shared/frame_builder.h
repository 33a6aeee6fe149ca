/* SPDX-License-Identifier: MIT */
/*
 * Building a frame field by field through the host's setters, for radio
 * modules: the first failing setter sticks in `err` and the rest are
 * skipped, so a module checks once at the end.
 */
#ifndef LABGW_FRAME_BUILDER_H
#define LABGW_FRAME_BUILDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <labgw/plugin.h>

struct fb {
	const struct labgw_host *h;
	struct labgw_frame *f;
	int err;
};

static inline void fb_int(struct fb *b, enum labgw_section sec, const char *key, int64_t v)
{
	if (b->err >= 0)
		b->err = b->h->frame_set_int(b->f, sec, key, v);
}

static inline void fb_double(struct fb *b, enum labgw_section sec, const char *key, double v)
{
	if (b->err >= 0)
		b->err = b->h->frame_set_double(b->f, sec, key, v);
}

static inline void fb_bool(struct fb *b, enum labgw_section sec, const char *key, bool v)
{
	if (b->err >= 0)
		b->err = b->h->frame_set_bool(b->f, sec, key, v);
}

static inline void fb_str(struct fb *b, enum labgw_section sec, const char *key, const char *v)
{
	if (b->err >= 0)
		b->err = b->h->frame_set_str(b->f, sec, key, v);
}

/* bytes as lowercase hex */
static inline void fb_hex(struct fb *b, enum labgw_section sec, const char *key, const void *v,
			  size_t n)
{
	if (b->err >= 0)
		b->err = b->h->frame_set_hex(b->f, sec, key, v, n);
}

static inline void fb_b64(struct fb *b, enum labgw_section sec, const char *key, const void *v,
			  size_t n)
{
	if (b->err >= 0)
		b->err = b->h->frame_set_base64(b->f, sec, key, v, n);
}

/* append a string to the array at key */
static inline void fb_append(struct fb *b, enum labgw_section sec, const char *key, const char *v)
{
	if (b->err >= 0)
		b->err = b->h->frame_append_str(b->f, sec, key, v);
}

static inline void fb_dev(struct fb *b, const char *dev)
{
	if (b->err >= 0)
		b->err = b->h->frame_set_dev(b->f, dev);
}

#endif
