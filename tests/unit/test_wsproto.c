// SPDX-License-Identifier: MIT
/*
 * The WebSocket op protocol of DESIGN §7: parsing what clients send (valid
 * ops, the "id" echoed even on errors, every kind of malformed message),
 * and the server messages, which must be valid JSON placed after
 * `headroom` spare bytes (LWS_PRE).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util.h"
#include "wsproto.h"

#define HEADROOM 16 /* LWS_PRE on x86_64 */

/* ---- parsing ------------------------------------------------------------ */

struct parsed {
	int rc;
	struct ws_op op;
	json_t *id;
	char err[256];
};

static void parse_str(struct parsed *p, const char *msg)
{
	memset(p, 0, sizeof(*p));
	strcpy(p->err, "untouched");
	p->rc = wsproto_parse(msg, strlen(msg), &p->op, &p->id, p->err, sizeof(p->err));
}

static void parsed_release(struct parsed *p)
{
	wsproto_op_release(&p->op);
	json_decref(p->id);
	p->id = NULL;
}

static void expect_ok(struct parsed *p, const char *msg, enum ws_op_kind kind)
{
	parse_str(p, msg);
	if (p->rc != 0)
		fail_msg("'%s' refused: %s", msg, p->err);
	assert_int_equal(p->op.kind, kind);
	assert_non_null(p->op.root);
}

/* Refused, with a reason that contains `why`. */
static void expect_err(struct parsed *p, const char *msg, const char *why)
{
	parse_str(p, msg);
	if (p->rc != -EINVAL)
		fail_msg("'%s' should be refused (rc %d)", msg, p->rc);
	if (!strstr(p->err, why))
		fail_msg("'%s': reason '%s' does not mention '%s'", msg, p->err, why);
	/* nothing is left for the caller to release but the id */
	assert_null(p->op.root);
	assert_null(p->op.topic);
	assert_null(p->op.key);
	assert_null(p->op.payload);
}

static void test_parse_auth(void **state)
{
	struct parsed p;
	expect_ok(&p, "{\"op\":\"auth\",\"key\":\"k1.s3cr3t\"}", WS_OP_AUTH);
	assert_string_equal(p.op.key, "k1.s3cr3t");
	assert_null(p.id);
	assert_null(p.op.id);
	assert_false(p.op.anonymous);
	parsed_release(&p);
}

/* the kiosk's sign-in: no key, the public tree only */
static void test_parse_auth_anonymous(void **state)
{
	struct parsed p;
	expect_ok(&p, "{\"op\":\"auth\",\"anonymous\":true,\"id\":1}", WS_OP_AUTH);
	assert_true(p.op.anonymous);
	assert_null(p.op.key);
	parsed_release(&p);
	expect_err(&p, "{\"op\":\"auth\",\"anonymous\":false}", "auth needs \"key\"");
	parsed_release(&p);
	expect_err(&p, "{\"op\":\"auth\",\"anonymous\":1}", "true or false");
	parsed_release(&p);
	expect_err(&p, "{\"op\":\"auth\",\"anonymous\":true,\"key\":\"k1.s\"}", "not both");
	parsed_release(&p);
}

static void test_parse_sub_with_and_without_since(void **state)
{
	struct parsed p;
	expect_ok(&p, "{\"op\":\"sub\",\"topic\":\"labgw/v1/sbx/bob/#\",\"id\":1}", WS_OP_SUB);
	assert_string_equal(p.op.topic, "labgw/v1/sbx/bob/#");
	assert_null(p.op.since);
	assert_non_null(p.id);
	assert_int_equal(json_integer_value(p.id), 1);
	assert_ptr_equal(p.op.id, p.id); /* the same value, borrowed in op */
	parsed_release(&p);

	expect_ok(&p,
		  "{\"id\":\"s-2\",\"op\":\"sub\",\"topic\":\"labgw/v1/sbx/bob/rx/#\","
		  "\"since\":\"lab1-0000000000012a3f\"}",
		  WS_OP_SUB);
	assert_string_equal(p.op.topic, "labgw/v1/sbx/bob/rx/#");
	assert_string_equal(p.op.since, "lab1-0000000000012a3f");
	assert_string_equal(json_string_value(p.id), "s-2");
	parsed_release(&p);
}

static void test_parse_unsub_pub_ping(void **state)
{
	struct parsed p;
	expect_ok(&p, "{\"op\":\"unsub\",\"topic\":\"a/+\"}", WS_OP_UNSUB);
	assert_string_equal(p.op.topic, "a/+");
	parsed_release(&p);

	expect_ok(&p,
		  "{\"op\":\"pub\",\"topic\":\"labgw/v1/sbx/bob/tx/lorawan/lab1/lora0/req\","
		  "\"payload\":{\"dev\":\"26011bda\",\"fport\":1,\"data\":\"AQID\"},\"id\":-5}",
		  WS_OP_PUB);
	assert_string_equal(p.op.topic, "labgw/v1/sbx/bob/tx/lorawan/lab1/lora0/req");
	assert_true(json_is_object(p.op.payload));
	assert_string_equal(json_string_value(json_object_get(p.op.payload, "dev")), "26011bda");
	assert_int_equal(json_integer_value(p.id), -5);
	parsed_release(&p);

	expect_ok(&p, "{\"op\":\"ping\",\"id\":\"p\"}", WS_OP_PING);
	assert_string_equal(json_string_value(p.id), "p");
	parsed_release(&p);

	/* extra members are ignored; whitespace is fine */
	expect_ok(&p, " {\n \"op\" : \"ping\", \"x\": [1,2,3] }\n", WS_OP_PING);
	parsed_release(&p);
	/* an empty payload object is still an object */
	expect_ok(&p, "{\"op\":\"pub\",\"topic\":\"t\",\"payload\":{}}", WS_OP_PUB);
	parsed_release(&p);
}

static void test_parse_uses_len_not_nul(void **state)
{
	/* a frame is not NUL-terminated: only len bytes count */
	const char buf[] = "{\"op\":\"ping\"}GARBAGE";
	struct ws_op op;
	json_t *id;
	char err[128];
	assert_int_equal(wsproto_parse(buf, 13, &op, &id, err, sizeof(err)), 0);
	assert_int_equal(op.kind, WS_OP_PING);
	wsproto_op_release(&op);
	assert_int_equal(wsproto_parse(buf, 12, &op, &id, err, sizeof(err)), -EINVAL);
	assert_int_equal(wsproto_parse(buf, sizeof(buf) - 1, &op, &id, err, sizeof(err)), -EINVAL);
	assert_int_equal(wsproto_parse(buf, 0, &op, &id, err, sizeof(err)), -EINVAL);
}

static void test_id_echoed_on_errors(void **state)
{
	static const struct {
		const char *msg, *why;
	} v[] = {
		{"{\"id\":\"abc\",\"op\":\"dance\"}", "unknown op"},
		{"{\"id\":\"abc\"}", "missing \"op\""},
		{"{\"id\":\"abc\",\"op\":5}", "\"op\""},
		{"{\"id\":\"abc\",\"op\":\"sub\"}", "sub needs \"topic\""},
		{"{\"id\":\"abc\",\"op\":\"sub\",\"topic\":7}", "\"topic\" must be a string"},
		{"{\"id\":\"abc\",\"op\":\"sub\",\"topic\":\"\"}", "\"topic\" must be 1 to 1024"},
		{"{\"id\":\"abc\",\"op\":\"sub\",\"topic\":\"t\",\"since\":1}",
		 "\"since\" must be a string"},
		{"{\"id\":\"abc\",\"op\":\"auth\"}", "auth needs \"key\""},
		{"{\"id\":\"abc\",\"op\":\"auth\",\"key\":null}", "\"key\" must be a string"},
		{"{\"id\":\"abc\",\"op\":\"unsub\"}", "unsub needs \"topic\""},
		{"{\"id\":\"abc\",\"op\":\"pub\",\"payload\":{}}", "pub needs \"topic\""},
		{"{\"id\":\"abc\",\"op\":\"pub\",\"topic\":\"t\"}", "pub needs \"payload\""},
		{"{\"id\":\"abc\",\"op\":\"pub\",\"topic\":\"t\",\"payload\":[1]}", "\"payload\""},
		{"{\"id\":\"abc\",\"op\":\"pub\",\"topic\":\"t\",\"payload\":\"x\"}",
		 "\"payload\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct parsed p;
		expect_err(&p, v[i].msg, v[i].why);
		if (!p.id || !json_is_string(p.id) || strcmp(json_string_value(p.id), "abc"))
			fail_msg("'%s': the id is not handed back for the error", v[i].msg);
		parsed_release(&p);
	}
	/* an integer id too */
	struct parsed p;
	expect_err(&p, "{\"op\":\"nope\",\"id\":42}", "unknown op");
	assert_true(json_is_integer(p.id));
	assert_int_equal(json_integer_value(p.id), 42);
	parsed_release(&p);
}

static void test_malformed_messages(void **state)
{
	static const struct {
		const char *msg, *why;
	} v[] = {
		{"", "not valid JSON"},
		{"{", "not valid JSON"},
		{"{\"op\":\"ping\",}", "not valid JSON"},
		{"{\"op\":\"ping\"} {}", "not valid JSON"},
		{"{'op':'ping'}", "not valid JSON"},
		{"{\"op\":\"ping\",\"op\":\"ping\"}", "not valid JSON"}, /* duplicate key */
		{"{\"op\":\"p\\u0000ing\"}", "not valid JSON"},		 /* NUL in a string */
		{"{\"op\":\"\xff\"}", "not valid JSON"},		 /* not UTF-8 */
		{"[]", "must be a JSON object"},
		{"[{\"op\":\"ping\"}]", "must be a JSON object"},
		{"\"ping\"", "not valid JSON"}, /* a bare value: '{' expected */
		{"42", "not valid JSON"},
		{"null", "not valid JSON"},
		{"{}", "missing \"op\""},
		{"{\"op\":null}", "missing \"op\""},
		{"{\"op\":\"PING\"}", "unknown op"},
		{"{\"op\":\"\"}", "unknown op"},
		{"{\"op\":\"ping \"}", "unknown op"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct parsed p;
		expect_err(&p, v[i].msg, v[i].why);
		assert_null(p.id);
		parsed_release(&p);
	}
}

static void test_bad_ids(void **state)
{
	static const char *const bad[] = {
		"{\"op\":\"ping\",\"id\":1.5}",	 "{\"op\":\"ping\",\"id\":true}",
		"{\"op\":\"ping\",\"id\":null}", "{\"op\":\"ping\",\"id\":{}}",
		"{\"op\":\"ping\",\"id\":[1]}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct parsed p;
		expect_err(&p, bad[i], "\"id\"");
		assert_null(p.id); /* not usable as "re" */
		parsed_release(&p);
	}
	/* string ids: up to WSPROTO_ID_MAX bytes */
	char msg[256], id[WSPROTO_ID_MAX + 2];
	memset(id, 'i', sizeof(id));
	id[WSPROTO_ID_MAX] = '\0';
	snprintf(msg, sizeof(msg), "{\"op\":\"ping\",\"id\":\"%s\"}", id);
	struct parsed p;
	expect_ok(&p, msg, WS_OP_PING);
	assert_string_equal(json_string_value(p.id), id);
	parsed_release(&p);
	id[WSPROTO_ID_MAX] = 'i';
	id[WSPROTO_ID_MAX + 1] = '\0';
	snprintf(msg, sizeof(msg), "{\"op\":\"ping\",\"id\":\"%s\"}", id);
	expect_err(&p, msg, "\"id\"");
	assert_null(p.id);
	parsed_release(&p);
}

/* A message with one string member of `n` bytes. */
static char *msg_with(const char *fmt_head, size_t n, const char *tail)
{
	size_t hl = strlen(fmt_head), tl = strlen(tail);
	char *m = malloc(hl + n + tl + 1);
	memcpy(m, fmt_head, hl);
	memset(m + hl, 'k', n);
	memcpy(m + hl + n, tail, tl + 1);
	return m;
}

static void test_length_limits(void **state)
{
	static const struct {
		const char *head, *tail;
		size_t max;
		enum ws_op_kind kind;
		const char *name;
	} v[] = {
		{"{\"op\":\"auth\",\"key\":\"", "\"}", WSPROTO_KEY_MAX, WS_OP_AUTH, "\"key\""},
		{"{\"op\":\"sub\",\"topic\":\"", "\"}", 1024, WS_OP_SUB, "\"topic\""},
		{"{\"op\":\"unsub\",\"topic\":\"", "\"}", 1024, WS_OP_UNSUB, "\"topic\""},
		{"{\"op\":\"pub\",\"payload\":{},\"topic\":\"", "\"}", 1024, WS_OP_PUB,
		 "\"topic\""},
		{"{\"op\":\"sub\",\"topic\":\"t\",\"since\":\"", "\"}", 64, WS_OP_SUB, "\"since\""},
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		struct parsed p;
		char *m = msg_with(v[i].head, v[i].max, v[i].tail);
		expect_ok(&p, m, v[i].kind);
		parsed_release(&p);
		free(m);
		m = msg_with(v[i].head, v[i].max + 1, v[i].tail);
		expect_err(&p, m, v[i].name);
		parsed_release(&p);
		free(m);
	}
}

static void test_op_names(void **state)
{
	assert_string_equal(wsproto_op_name(WS_OP_AUTH), "auth");
	assert_string_equal(wsproto_op_name(WS_OP_SUB), "sub");
	assert_string_equal(wsproto_op_name(WS_OP_UNSUB), "unsub");
	assert_string_equal(wsproto_op_name(WS_OP_PUB), "pub");
	assert_string_equal(wsproto_op_name(WS_OP_PING), "ping");
}

/* ---- encoding ----------------------------------------------------------- */

/* Check the layout (headroom, then '{', NUL after len) and parse. */
static json_t *decode(unsigned char *buf, size_t headroom, size_t len)
{
	assert_non_null(buf);
	assert_true(len > 2);
	assert_int_equal(buf[headroom], '{');
	assert_int_equal(buf[headroom + len - 1], '}');
	assert_int_equal(strlen((char *)buf + headroom), len);
	json_error_t je;
	json_t *j = json_loadb((char *)buf + headroom, len, JSON_REJECT_DUPLICATES, &je);
	if (!j)
		fail_msg("not valid JSON: %s: %s", je.text, (char *)buf + headroom);
	assert_true(json_is_object(j));
	return j;
}

static void test_res_ok(void **state)
{
	static const size_t headrooms[] = {0, 1, HEADROOM, 100};
	for (size_t i = 0; i < ARRAY_SIZE(headrooms); i++) {
		size_t h = headrooms[i], len = 0;
		json_t *re = json_string("req-1");
		unsigned char *buf = wsproto_res_ok(re, NULL, h, &len);
		json_t *j = decode(buf, h, len);
		json_error_t je;
		json_t *want = json_loads("{\"op\":\"res\",\"re\":\"req-1\",\"ok\":true}", 0, &je);
		assert_true(json_equal(j, want));
		/* op first: clients dispatch on it */
		assert_memory_equal(buf + h, "{\"op\":\"res\"", 11);
		assert_int_equal(re->refcount, 1); /* borrowed, not taken */
		json_decref(re);
		json_decref(want);
		json_decref(j);
		free(buf);
	}

	/* with a result (stolen), an integer id, and without an id */
	size_t len;
	json_t *re = json_integer(7);
	unsigned char *buf =
		wsproto_res_ok(re, json_pack("{s:i,s:[s]}", "n", 3, "l", "x"), HEADROOM, &len);
	json_t *j = decode(buf, HEADROOM, len);
	assert_int_equal(json_integer_value(json_object_get(j, "re")), 7);
	assert_true(json_is_true(json_object_get(j, "ok")));
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "result"), "n")), 3);
	json_decref(j);
	json_decref(re);
	free(buf);

	buf = wsproto_res_ok(NULL, NULL, HEADROOM, &len);
	j = decode(buf, HEADROOM, len);
	assert_true(json_is_null(json_object_get(j, "re")));
	assert_null(json_object_get(j, "result"));
	json_decref(j);
	free(buf);
}

static void test_res_error(void **state)
{
	size_t len;
	json_t *re = json_string("r9");
	unsigned char *buf = wsproto_res_error(re, "QUOTA_EXCEEDED", "message quota used up", 1500,
					       HEADROOM, &len);
	json_t *j = decode(buf, HEADROOM, len);
	json_error_t je;
	json_t *want = json_loads("{\"op\":\"res\",\"re\":\"r9\",\"ok\":false,\"error\":"
				  "{\"code\":\"QUOTA_EXCEEDED\",\"message\":\"message quota used "
				  "up\",\"retry_after_ms\":1500}}",
				  0, &je);
	if (!json_equal(j, want))
		fail_msg("got %s", (char *)buf + HEADROOM);
	json_decref(want);
	json_decref(j);
	free(buf);

	/* retry_after_ms only when >= 0; 0 is a value */
	buf = wsproto_res_error(re, "BAD_REQUEST", "x", -1, HEADROOM, &len);
	j = decode(buf, HEADROOM, len);
	assert_null(json_object_get(json_object_get(j, "error"), "retry_after_ms"));
	assert_true(json_is_false(json_object_get(j, "ok")));
	json_decref(j);
	free(buf);
	buf = wsproto_res_error(re, "DUTY_CYCLE_EXHAUSTED", "x", 0, HEADROOM, &len);
	j = decode(buf, HEADROOM, len);
	json_t *ra = json_object_get(json_object_get(j, "error"), "retry_after_ms");
	assert_true(json_is_integer(ra));
	assert_int_equal(json_integer_value(ra), 0);
	json_decref(j);
	free(buf);

	/* messages quoting client input: escaped, and never invalid JSON */
	buf = wsproto_res_error(NULL, "BAD_REQUEST", "unknown op \"x\\y\"\n\x01", -1, 0, &len);
	j = decode(buf, 0, len);
	assert_string_equal(
		json_string_value(json_object_get(json_object_get(j, "error"), "message")),
		"unknown op \"x\\y\"\n\x01");
	assert_true(json_is_null(json_object_get(j, "re")));
	json_decref(j);
	free(buf);
	buf = wsproto_res_error(re, "BAD_REQUEST", "bad op \"\xc3\"", -1, HEADROOM, &len);
	j = decode(buf, HEADROOM, len);
	assert_string_equal(json_string_value(json_object_get(j, "re")), "r9");
	assert_non_null(json_string_value(json_object_get(json_object_get(j, "error"), "message")));
	json_decref(j);
	free(buf);
	json_decref(re);
}

static void test_gap(void **state)
{
	size_t len;
	unsigned char *buf = wsproto_gap(17, "lab1-0000000000012a3f", HEADROOM, &len);
	json_t *j = decode(buf, HEADROOM, len);
	json_error_t je;
	json_t *want = json_loads(
		"{\"op\":\"gap\",\"dropped\":17,\"since\":\"lab1-0000000000012a3f\"}", 0, &je);
	assert_true(json_equal(j, want));
	json_decref(want);
	json_decref(j);
	free(buf);

	buf = wsproto_gap(1ull << 40, NULL, 0, &len);
	j = decode(buf, 0, len);
	assert_true(json_integer_value(json_object_get(j, "dropped")) == (json_int_t)1 << 40);
	assert_true(json_is_null(json_object_get(j, "since")));
	json_decref(j);
	free(buf);
	buf = wsproto_gap(1, "", 0, &len);
	j = decode(buf, 0, len);
	assert_true(json_is_null(json_object_get(j, "since")));
	json_decref(j);
	free(buf);
}

static void test_frame_message(void **state)
{
	const char *fj = "{\"v\":1,\"id\":\"lab1-0000000000000001\",\"type\":\"rx.ble.adv\","
			 "\"data\":{\"name\":\"Tag \\\"7\\\"\"}}";
	static const char *const topics[] = {
		"labgw/v1/sbx/bob/rx/ble/lab1/ble0/p-0011223344556677",
		"labgw/v1/adm/lab1/rx/cellular/cell0/%2B4917612345678",
		"odd/\"quoted\"/back\\slash",
		"ctl/\x01\x1f/tab\t/nl\n",
		"utf8/gr\xc3\xbc\xc3\x9f",
	};
	for (size_t i = 0; i < ARRAY_SIZE(topics); i++) {
		size_t len;
		unsigned char *buf = wsproto_frame(topics[i], fj, strlen(fj), HEADROOM, &len);
		json_t *j = decode(buf, HEADROOM, len);
		assert_memory_equal(buf + HEADROOM, "{\"op\":\"frame\"", 13);
		assert_string_equal(json_string_value(json_object_get(j, "op")), "frame");
		assert_string_equal(json_string_value(json_object_get(j, "topic")), topics[i]);
		json_error_t je;
		json_t *want = json_loads(fj, 0, &je);
		assert_true(json_equal(json_object_get(j, "frame"), want));
		/* the frame's encoding is embedded as is, not re-encoded */
		assert_non_null(memmem(buf + HEADROOM, len, fj, strlen(fj)));
		json_decref(want);
		json_decref(j);
		free(buf);
	}
	/* only frame_len bytes of the frame are used */
	size_t len;
	char two[] = "{\"v\":1}{\"v\":2}";
	unsigned char *buf = wsproto_frame("t", two, 7, 0, &len);
	json_t *j = decode(buf, 0, len);
	assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "frame"), "v")), 1);
	json_decref(j);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_auth),
		cmocka_unit_test(test_parse_auth_anonymous),
		cmocka_unit_test(test_parse_sub_with_and_without_since),
		cmocka_unit_test(test_parse_unsub_pub_ping),
		cmocka_unit_test(test_parse_uses_len_not_nul),
		cmocka_unit_test(test_id_echoed_on_errors),
		cmocka_unit_test(test_malformed_messages),
		cmocka_unit_test(test_bad_ids),
		cmocka_unit_test(test_length_limits),
		cmocka_unit_test(test_op_names),
		cmocka_unit_test(test_res_ok),
		cmocka_unit_test(test_res_error),
		cmocka_unit_test(test_gap),
		cmocka_unit_test(test_frame_message),
	};
	return cmocka_run_group_tests_name("wsproto", tests, NULL, NULL);
}
