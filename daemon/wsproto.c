#include "wsproto.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const op_names[] = {
	[WS_OP_AUTH] = "auth", [WS_OP_SUB] = "sub",   [WS_OP_UNSUB] = "unsub",
	[WS_OP_PUB] = "pub",   [WS_OP_PING] = "ping",
};

const char *wsproto_op_name(enum ws_op_kind k)
{
	return op_names[k];
}

/* a string member, required or optional; NULL+err when wrong */
static int get_str(json_t *root, const char *name, bool required, size_t max, const char **out,
		   const char *op, char *err, size_t errlen)
{
	json_t *v = json_object_get(root, name);
	*out = NULL;
	if (!v) {
		if (required) {
			snprintf(err, errlen, "%s needs \"%s\"", op, name);
			return -EINVAL;
		}
		return 0;
	}
	if (!json_is_string(v)) {
		snprintf(err, errlen, "\"%s\" must be a string", name);
		return -EINVAL;
	}
	size_t n = json_string_length(v);
	if (n == 0 || n > max) {
		snprintf(err, errlen, "\"%s\" must be 1 to %zu bytes long", name, max);
		return -EINVAL;
	}
	if (strlen(json_string_value(v)) != n) {
		snprintf(err, errlen, "\"%s\" must not contain NUL", name);
		return -EINVAL;
	}
	*out = json_string_value(v);
	return 0;
}

int wsproto_parse(const char *buf, size_t len, struct ws_op *op, json_t **id, char *err,
		  size_t errlen)
{
	json_error_t je;
	memset(op, 0, sizeof(*op));
	*id = NULL;
	json_t *root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!root) {
		snprintf(err, errlen, "not valid JSON: %s (at byte %d)", je.text, je.position);
		return -EINVAL;
	}
	if (!json_is_object(root)) {
		snprintf(err, errlen, "a message must be a JSON object");
		json_decref(root);
		return -EINVAL;
	}
	json_t *jid = json_object_get(root, "id");
	if (jid) {
		bool ok = (json_is_string(jid) && json_string_length(jid) <= WSPROTO_ID_MAX) ||
			  json_is_integer(jid);
		if (!ok) {
			snprintf(err, errlen,
				 "\"id\" must be an integer or a string of at most %d "
				 "bytes",
				 WSPROTO_ID_MAX);
			json_decref(root);
			return -EINVAL;
		}
		*id = json_incref(jid);
	}
	json_t *jop = json_object_get(root, "op");
	if (!jop || !json_is_string(jop)) {
		snprintf(err, errlen, "missing \"op\" (one of auth, sub, unsub, pub, ping)");
		json_decref(root);
		return -EINVAL;
	}
	const char *name = json_string_value(jop);
	size_t k;
	for (k = 0; k < ARRAY_SIZE(op_names); k++)
		if (!strcmp(name, op_names[k]))
			break;
	if (k == ARRAY_SIZE(op_names)) {
		snprintf(err, errlen, "unknown op \"%.32s\" (expected auth, sub, unsub, pub, ping)",
			 name);
		json_decref(root);
		return -EINVAL;
	}
	op->kind = (enum ws_op_kind)k;
	op->root = root;
	op->id = jid;
	int rc = 0;
	switch (op->kind) {
	case WS_OP_AUTH: {
		/* {"op":"auth","anonymous":true}: the public tree only (kiosks) */
		json_t *anon = json_object_get(root, "anonymous");
		if (anon && !json_is_boolean(anon)) {
			snprintf(err, errlen, "\"anonymous\" must be true or false");
			rc = -EINVAL;
			break;
		}
		op->anonymous = json_is_true(anon);
		if (op->anonymous && json_object_get(root, "key")) {
			snprintf(err, errlen,
				 "auth takes \"key\" or \"anonymous\": true, not both");
			rc = -EINVAL;
			break;
		}
		if (!op->anonymous)
			rc = get_str(root, "key", true, WSPROTO_KEY_MAX, &op->key, name, err,
				     errlen);
		break;
	}
	case WS_OP_SUB:
		rc = get_str(root, "topic", true, 1024, &op->topic, name, err, errlen);
		if (!rc)
			rc = get_str(root, "since", false, 64, &op->since, name, err, errlen);
		break;
	case WS_OP_UNSUB:
		rc = get_str(root, "topic", true, 1024, &op->topic, name, err, errlen);
		break;
	case WS_OP_PUB:
		rc = get_str(root, "topic", true, 1024, &op->topic, name, err, errlen);
		if (!rc) {
			op->payload = json_object_get(root, "payload");
			if (!json_is_object(op->payload)) {
				snprintf(err, errlen, "pub needs \"payload\": a JSON object");
				rc = -EINVAL;
			}
		}
		break;
	case WS_OP_PING:
		break;
	}
	if (rc < 0) {
		json_decref(root);
		memset(op, 0, sizeof(*op));
	}
	return rc;
}

void wsproto_op_release(struct ws_op *op)
{
	json_decref(op->root);
	memset(op, 0, sizeof(*op));
}

/* Encode `obj` (stolen) after `headroom` spare bytes. */
static unsigned char *encode(json_t *obj, size_t headroom, size_t *len)
{
	if (!obj)
		return NULL;
	size_t n = json_dumpb(obj, NULL, 0, JSON_COMPACT | JSON_PRESERVE_ORDER);
	unsigned char *buf = n ? malloc(headroom + n + 1) : NULL;
	if (buf) {
		json_dumpb(obj, (char *)buf + headroom, n, JSON_COMPACT | JSON_PRESERVE_ORDER);
		buf[headroom + n] = '\0';
		*len = n;
	}
	json_decref(obj);
	return buf;
}

unsigned char *wsproto_res_ok(const json_t *re, json_t *result, size_t headroom, size_t *len)
{
	json_t *o = json_object();
	if (!o) {
		json_decref(result);
		return NULL;
	}
	json_object_set_new(o, "op", json_string("res"));
	json_object_set_new(o, "re", re ? json_deep_copy(re) : json_null());
	json_object_set_new(o, "ok", json_true());
	if (result)
		json_object_set_new(o, "result", result);
	return encode(o, headroom, len);
}

unsigned char *wsproto_res_error(const json_t *re, const char *code, const char *message,
				 long long retry_after_ms, size_t headroom, size_t *len)
{
	json_t *o = json_object();
	json_t *e = json_object();
	if (!o || !e) {
		json_decref(o);
		json_decref(e);
		return NULL;
	}
	json_object_set_new(e, "code", json_string(code));
	/* messages quote client input; keep them valid UTF-8 for jansson */
	json_t *m = json_string(message);
	json_object_set_new(e, "message", m ? m : json_string("(message not valid UTF-8)"));
	if (retry_after_ms >= 0)
		json_object_set_new(e, "retry_after_ms", json_integer(retry_after_ms));
	json_object_set_new(o, "op", json_string("res"));
	json_object_set_new(o, "re", re ? json_deep_copy(re) : json_null());
	json_object_set_new(o, "ok", json_false());
	json_object_set_new(o, "error", e);
	return encode(o, headroom, len);
}

unsigned char *wsproto_gap(uint64_t dropped, const char *since, size_t headroom, size_t *len)
{
	json_t *o = json_object();
	if (!o)
		return NULL;
	json_object_set_new(o, "op", json_string("gap"));
	json_object_set_new(o, "dropped", json_integer((json_int_t)dropped));
	json_object_set_new(o, "since", since && *since ? json_string(since) : json_null());
	return encode(o, headroom, len);
}

unsigned char *wsproto_frame(const char *topic, const char *frame_json, size_t frame_len,
			     size_t headroom, size_t *len)
{
	struct strbuf sb;
	strbuf_init(&sb, headroom + frame_len + strlen(topic) + 48);
	if (sb.failed)
		return NULL;
	memset(sb.buf, 0, headroom);
	sb.len = headroom;
	strbuf_puts(&sb, "{\"op\":\"frame\",\"topic\":");
	strbuf_json_str(&sb, topic);
	strbuf_puts(&sb, ",\"frame\":");
	strbuf_append(&sb, frame_json, frame_len);
	strbuf_append(&sb, "}", 1);
	size_t total;
	unsigned char *buf = (unsigned char *)strbuf_steal(&sb, &total);
	if (buf)
		*len = total - headroom;
	return buf;
}
