#include "frame.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* sections nest no deeper than this (paths have a few levels; values from
 * modules are checked at encoding) */
#define FRAME_JSON_DEPTH 32

struct frame *frame_new(const char *gw, const char *radio, enum labgw_tech tech, const char *type)
{
	if (strlen(gw) > FRAME_ID_MAX || strlen(radio) > FRAME_ID_MAX || !frame_type_valid(type))
		return NULL;
	struct frame *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	f->refcnt = 1;
	f->tech = tech;
	strcpy(f->gw, gw);
	strcpy(f->radio, radio);
	strcpy(f->type, type);
	return f;
}

struct frame *frame_ref(struct frame *f)
{
	f->refcnt++;
	return f;
}

void frame_unref(struct frame *f)
{
	if (!f || --f->refcnt > 0)
		return;
	json_decref(f->sig);
	json_decref(f->data);
	free(f->payload);
	free(f->json);
	free(f);
}

bool frame_dev_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		unsigned char c = (unsigned char)s[n];
		if (c <= 0x20 || c >= 0x7f)
			return false;
	}
	return n > 0 && n < FRAME_DEV_MAX;
}

bool frame_type_valid(const char *s)
{
	size_t n = 0;
	for (; s[n]; n++) {
		char c = s[n];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_'))
			return false;
	}
	return n > 0 && n < FRAME_TYPE_MAX;
}

int frame_set_dev(struct frame *f, const char *dev_id, bool claimed)
{
	if (f->sealed || !frame_dev_valid(dev_id))
		return -EINVAL;
	strcpy(f->dev, dev_id);
	f->has_dev = true;
	f->claimed = claimed;
	return 0;
}

int frame_set_payload(struct frame *f, const void *data, size_t len)
{
	if (f->sealed)
		return -EINVAL;
	if (len > FRAME_PAYLOAD_MAX)
		return -E2BIG;
	unsigned char *p = NULL;
	if (len) {
		p = malloc(len);
		if (!p)
			return -ENOMEM;
		memcpy(p, data, len);
	}
	free(f->payload);
	f->payload = p;
	f->payload_len = len;
	return 0;
}

static json_t **section_slot(struct frame *f, enum labgw_section s)
{
	switch (s) {
	case LABGW_SIG:
		return &f->sig;
	case LABGW_DATA:
		return &f->data;
	}
	return NULL;
}

json_t *frame_section(const struct frame *f, enum labgw_section s)
{
	return section_slot((struct frame *)f, s) ? *section_slot((struct frame *)f, s) : NULL;
}

/* "a.b.c", each part 1..63 of [A-Za-z0-9_-] */
static bool path_valid(const char *p)
{
	for (;;) {
		size_t n = strcspn(p, ".");
		if (n == 0 || n > 63)
			return false;
		for (size_t i = 0; i < n; i++) {
			char c = p[i];
			if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			      (c >= '0' && c <= '9') || c == '_' || c == '-'))
				return false;
		}
		if (!p[n])
			return true;
		p += n + 1;
	}
}

/* Walk `path` in the section, creating objects; returns the parent object
 * and the last key in `leaf`. A bad path changes nothing. */
static json_t *walk(struct frame *f, enum labgw_section s, const char *path, char leaf[64])
{
	json_t **slot = section_slot(f, s);
	if (!slot || !path_valid(path))
		return NULL;
	if (!*slot && !(*slot = json_object()))
		return NULL;
	json_t *obj = *slot;
	const char *p = path;
	for (;;) {
		size_t n = strcspn(p, ".");
		memcpy(leaf, p, n);
		leaf[n] = '\0';
		if (!p[n])
			return obj;
		json_t *child = json_object_get(obj, leaf);
		if (!child) {
			child = json_object();
			if (!child || json_object_set_new(obj, leaf, child) < 0)
				return NULL;
		} else if (!json_is_object(child)) {
			return NULL;
		}
		obj = child;
		p += n + 1;
	}
}

int frame_set(struct frame *f, enum labgw_section s, const char *path, json_t *v)
{
	char leaf[64];
	if (!v) /* jansson refused the value: a NaN, or no memory */
		return -EINVAL;
	json_t *obj = !f->sealed ? walk(f, s, path, leaf) : NULL;
	if (!obj) {
		json_decref(v);
		return -EINVAL;
	}
	return json_object_set_new(obj, leaf, v) < 0 ? -ENOMEM : 0;
}

int frame_append(struct frame *f, enum labgw_section s, const char *path, json_t *v)
{
	char leaf[64];
	if (!v)
		return -EINVAL;
	json_t *obj = !f->sealed ? walk(f, s, path, leaf) : NULL;
	if (!obj) {
		json_decref(v);
		return -EINVAL;
	}
	json_t *arr = json_object_get(obj, leaf);
	if (!arr) {
		arr = json_array();
		if (!arr || json_object_set_new(obj, leaf, arr) < 0) {
			json_decref(v);
			return -ENOMEM;
		}
	} else if (!json_is_array(arr)) {
		json_decref(v);
		return -EINVAL;
	}
	return json_array_append_new(arr, v) < 0 ? -ENOMEM : 0;
}

const char *frame_tech_name(enum labgw_tech tech)
{
	switch (tech) {
	case LABGW_TECH_NONE:
		return "";
	case LABGW_TECH_BLE:
		return "ble";
	case LABGW_TECH_WLAN:
		return "wlan";
	case LABGW_TECH_LORAWAN:
		return "lorawan";
	case LABGW_TECH_CELLULAR:
		return "cellular";
	}
	return "";
}

enum labgw_tech frame_tech_parse(const char *s)
{
	static const enum labgw_tech all[] = {LABGW_TECH_BLE, LABGW_TECH_WLAN, LABGW_TECH_LORAWAN,
					      LABGW_TECH_CELLULAR};
	for (size_t i = 0; i < ARRAY_SIZE(all); i++)
		if (!strcmp(s, frame_tech_name(all[i])))
			return all[i];
	return LABGW_TECH_NONE;
}

/*
 * The sections are written by hand rather than with json_dumpb: frames are
 * encoded once each at ingest rate, and jansson's dumper (a callback per
 * token, printf for every number) was a quarter of the CPU a LoRaWAN uplink
 * cost. The output is the same compact JSON: keys in insertion order, UTF-8
 * as is, reals with 10 significant digits.
 */
static void write_value(struct strbuf *sb, const json_t *v, int depth);

static void write_real(struct strbuf *sb, double x)
{
	char buf[40];
	if (!isfinite(x)) {
		strbuf_puts(sb, "null"); /* not representable in JSON */
		return;
	}
	int n = snprintf(buf, sizeof(buf), "%.10g", x);
	if (n <= 0 || (size_t)n >= sizeof(buf) - 2)
		return;
	/* a locale with a decimal comma would break JSON */
	for (char *c = buf; *c; c++)
		if (*c == ',')
			*c = '.';
	if (!strpbrk(buf, ".eEn"))
		memcpy(buf + n, ".0", 3), n += 2;
	strbuf_append(sb, buf, (size_t)n);
}

static void write_value(struct strbuf *sb, const json_t *v, int depth)
{
	if (depth > FRAME_JSON_DEPTH) {
		strbuf_puts(sb, "null");
		return;
	}
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		const char *k;
		json_t *m;
		bool first = true;
		strbuf_append(sb, "{", 1);
		json_object_foreach((json_t *)v, k, m)
		{
			if (!first)
				strbuf_append(sb, ",", 1);
			first = false;
			strbuf_json_str(sb, k);
			strbuf_append(sb, ":", 1);
			write_value(sb, m, depth + 1);
		}
		strbuf_append(sb, "}", 1);
		break;
	}
	case JSON_ARRAY:
		strbuf_append(sb, "[", 1);
		for (size_t i = 0; i < json_array_size(v); i++) {
			if (i)
				strbuf_append(sb, ",", 1);
			write_value(sb, json_array_get(v, i), depth + 1);
		}
		strbuf_append(sb, "]", 1);
		break;
	case JSON_STRING:
		strbuf_json_strn(sb, json_string_value(v), json_string_length(v));
		break;
	case JSON_INTEGER:
		strbuf_int(sb, (long long)json_integer_value(v));
		break;
	case JSON_REAL:
		write_real(sb, json_real_value(v));
		break;
	case JSON_TRUE:
		strbuf_append(sb, "true", 4);
		break;
	case JSON_FALSE:
		strbuf_append(sb, "false", 5);
		break;
	case JSON_NULL:
		strbuf_append(sb, "null", 4);
		break;
	}
}

static void append_object(struct strbuf *sb, const char *key, const json_t *obj)
{
	if (!obj || !json_object_size(obj))
		return;
	strbuf_append(sb, ",\"", 2);
	strbuf_puts(sb, key);
	strbuf_append(sb, "\":", 2);
	write_value(sb, obj, 0);
}

int frame_seal(struct frame *f, uint64_t seq, uint64_t time_us)
{
	if (f->sealed)
		return -EINVAL;
	f->seq = seq;
	f->time_us = time_us;
	snprintf(f->id, sizeof(f->id), "%s-%016llx", f->gw, (unsigned long long)seq);
	char tbuf[32];
	time_format_us(time_us, tbuf);

	struct strbuf sb;
	strbuf_init(&sb, 384 + f->payload_len * 4 / 3);
	strbuf_puts(&sb, "{\"v\":1,\"id\":\"");
	strbuf_puts(&sb, f->id);
	strbuf_puts(&sb, "\",\"time\":\"");
	strbuf_puts(&sb, tbuf);
	strbuf_puts(&sb, "\",\"gw\":\"");
	strbuf_puts(&sb, f->gw);
	strbuf_append(&sb, "\"", 1);
	if (f->tech != LABGW_TECH_NONE) {
		strbuf_puts(&sb, ",\"tech\":\"");
		strbuf_puts(&sb, frame_tech_name(f->tech));
		strbuf_append(&sb, "\"", 1);
	}
	if (f->radio[0]) {
		strbuf_puts(&sb, ",\"radio\":\"");
		strbuf_puts(&sb, f->radio);
		strbuf_append(&sb, "\"", 1);
	}
	strbuf_puts(&sb, ",\"type\":\"");
	strbuf_puts(&sb, f->type);
	strbuf_append(&sb, "\"", 1);
	if (f->has_dev) {
		strbuf_puts(&sb, ",\"dev\":{\"id\":");
		strbuf_json_str(&sb, f->dev);
		strbuf_puts(&sb, f->claimed ? ",\"claimed\":true}" : ",\"claimed\":false}");
	}
	append_object(&sb, "sig", f->sig);
	if (f->payload) {
		size_t n = base64_encoded_len(f->payload_len);
		strbuf_puts(&sb, ",\"payload\":\"");
		if (strbuf_reserve(&sb, n + 1)) {
			base64_encode(f->payload, f->payload_len, sb.buf + sb.len);
			sb.len += n;
		}
		strbuf_append(&sb, "\"", 1);
	}
	append_object(&sb, "data", f->data);
	if (f->replayed)
		strbuf_puts(&sb, ",\"replayed\":true");
	strbuf_append(&sb, "}", 1);
	if (sb.failed) {
		strbuf_release(&sb);
		return -ENOMEM;
	}
	if (sb.len > FRAME_JSON_MAX) {
		strbuf_release(&sb);
		return -E2BIG;
	}
	f->json = strbuf_steal(&sb, &f->json_len);
	f->sealed = true;
	return 0;
}
