// SPDX-License-Identifier: MIT
/*
 * The Semtech UDP protocol of the lorawan module (plugins/lorawan/gwmp.c):
 * datagram headers, rxpk and stat from PUSH_DATA, TX_ACK feedback, and
 * the PULL_RESP it builds, checked field by field against PROTOCOL.TXT
 * (Lora-net/packet_forwarder, sections 3 to 6) and re-read with jansson.
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

#include "../../plugins/lorawan/gwmp.h"

static const uint8_t EUI[8] = {0xaa, 0x55, 0x5a, 0x00, 0x00, 0x00, 0x01, 0x01};

/* version 2, token, identifier, [EUI], [text] into buf; returns the length */
static size_t dgram(uint8_t *buf, uint8_t version, uint16_t token, uint8_t ident, bool eui,
		    const char *text)
{
	size_t n = 4;

	buf[0] = version;
	buf[1] = (uint8_t)(token >> 8);
	buf[2] = (uint8_t)token;
	buf[3] = ident;
	if (eui) {
		memcpy(buf + 4, EUI, 8);
		n += 8;
	}
	if (text) {
		memcpy(buf + n, text, strlen(text));
		n += strlen(text);
	}
	return n;
}

static void headers(void **st)
{
	uint8_t buf[128];
	struct gwmp_header h;
	const char *why = NULL;
	size_t n;

	(void)st;
	n = dgram(buf, 2, 0xbeef, GWMP_PUSH_DATA, true, "{\"stat\":{}}");
	assert_int_equal(gwmp_parse(buf, n, &h, &why), 0);
	assert_int_equal(h.version, 2);
	assert_int_equal(h.token, 0xbeef);
	assert_int_equal(h.type, GWMP_PUSH_DATA);
	assert_true(h.has_eui);
	assert_true(h.eui == 0xaa555a0000000101ull);
	assert_int_equal(h.body_len, 11);
	assert_memory_equal(h.body, "{\"stat\":{}}", 11);

	n = dgram(buf, 2, 1, GWMP_PULL_DATA, true, NULL);
	assert_int_equal(gwmp_parse(buf, n, &h, &why), 0);
	assert_int_equal(h.type, GWMP_PULL_DATA);
	assert_int_equal(h.body_len, 0);
	assert_int_equal(gwmp_parse(buf, n + 1, &h, &why), -EINVAL);
	assert_string_equal(why, "PULL_DATA is not 12 bytes");

	/* TX_ACK: JSON optional; a C string terminator is dropped */
	n = dgram(buf, 2, 7, GWMP_TX_ACK, true, NULL);
	assert_int_equal(gwmp_parse(buf, n, &h, &why), 0);
	assert_int_equal(h.body_len, 0);
	n = dgram(buf, 2, 7, GWMP_TX_ACK, true, "{}");
	buf[n++] = '\0';
	buf[n++] = '\0';
	assert_int_equal(gwmp_parse(buf, n, &h, &why), 0);
	assert_int_equal(h.body_len, 2);

	n = dgram(buf, 2, 9, GWMP_PULL_RESP, false, "{\"txpk\":{}}");
	assert_int_equal(gwmp_parse(buf, n, &h, &why), 0);
	assert_false(h.has_eui);
	assert_int_equal(h.body_len, 11);
	n = dgram(buf, 2, 9, GWMP_PUSH_ACK, false, NULL);
	assert_int_equal(gwmp_parse(buf, n, &h, &why), 0);
	assert_int_equal(h.type, GWMP_PUSH_ACK);
	n = dgram(buf, 1, 9, GWMP_PULL_ACK, false, NULL);
	assert_int_equal(gwmp_parse(buf, n, &h, &why), 0);
	assert_int_equal(h.version, 1);

	/* refused */
	assert_int_equal(gwmp_parse(buf, 3, &h, &why), -EINVAL);
	assert_int_equal(gwmp_parse(NULL, 0, &h, &why), -EINVAL);
	n = dgram(buf, 3, 9, GWMP_PUSH_DATA, true, "{}");
	assert_int_equal(gwmp_parse(buf, n, &h, &why), -EINVAL);
	n = dgram(buf, 0, 9, GWMP_PUSH_DATA, true, "{}");
	assert_int_equal(gwmp_parse(buf, n, &h, &why), -EINVAL);
	n = dgram(buf, 2, 9, 6, true, "{}");
	assert_int_equal(gwmp_parse(buf, n, &h, &why), -EINVAL);
	assert_string_equal(why, "unknown packet identifier");
	n = dgram(buf, 2, 9, GWMP_PUSH_DATA, true, NULL);
	assert_int_equal(gwmp_parse(buf, n, &h, &why), -EINVAL);
	assert_string_equal(why, "no JSON object");
	assert_int_equal(gwmp_parse(buf, 11, &h, &why), -EINVAL);
	assert_string_equal(why, "no gateway EUI");
	n = dgram(buf, 2, 9, GWMP_PUSH_DATA, true, "");
	buf[n++] = '\0';
	assert_int_equal(gwmp_parse(buf, n, &h, &why), -EINVAL);
	n = dgram(buf, 2, 9, GWMP_PULL_RESP, false, NULL);
	assert_int_equal(gwmp_parse(buf, n, &h, &why), -EINVAL);
	{
		uint8_t *big = calloc(1, GWMP_DATAGRAM_MAX + 1);

		assert_non_null(big);
		dgram(big, 2, 9, GWMP_PUSH_DATA, true, "{}");
		assert_int_equal(gwmp_parse(big, GWMP_DATAGRAM_MAX + 1, &h, &why), -EINVAL);
		free(big);
	}
	assert_string_equal(gwmp_type_name(GWMP_TX_ACK), "TX_ACK");
	assert_string_equal(gwmp_type_name(GWMP_PULL_RESP), "PULL_RESP");
}

static void acks_echo_version_and_token(void **st)
{
	uint8_t out[4], buf[64];

	(void)st;
	assert_int_equal(gwmp_build_ack(out, 2, 0x1234, GWMP_PUSH_ACK), 4);
	assert_memory_equal(out, "\x02\x12\x34\x01", 4);
	gwmp_build_ack(out, 2, 0xffff, GWMP_PULL_ACK);
	assert_memory_equal(out, "\x02\xff\xff\x04", 4);
	gwmp_build_ack(out, 1, 0, GWMP_PUSH_ACK);
	assert_memory_equal(out, "\x01\x00\x00\x01", 4);
	dgram(buf, 2, 0x0102, GWMP_TX_ACK, true, NULL);
	gwmp_set_token(buf, 12, 0xa0b0);
	assert_memory_equal(buf, "\x02\xa0\xb0\x05", 4);
	assert_memory_equal(buf + 4, EUI, 8);
}

/* The upstream example of PROTOCOL.TXT, section 4, with valid base64 */
static const char PUSH[] =
	"{\"rxpk\":[{\"time\":\"2013-03-31T16:21:17.528002Z\",\"tmst\":3512348611,\"chan\":2,"
	"\"rfch\":0,\"freq\":866.349812,\"stat\":1,\"modu\":\"LORA\",\"datr\":\"SF7BW125\","
	"\"codr\":\"4/6\",\"rssi\":-35,\"lsnr\":5.1,\"size\":4,\"data\":\"QAECAw==\"},"
	"{\"time\":\"2013-03-31T16:21:17.530974Z\",\"tmst\":3512348514,\"chan\":9,\"rfch\":1,"
	"\"freq\":869.1,\"stat\":1,\"modu\":\"FSK\",\"datr\":50000,\"rssi\":-75,\"size\":16,"
	"\"data\":\"VEVTVF9QQUNLRVRfMTIzNA==\"},"
	"{\"tmst\":3316387610,\"chan\":0,\"rfch\":0,\"freq\":863.00981,\"stat\":-1,"
	"\"modu\":\"LORA\",\"datr\":\"SF10BW125\",\"codr\":\"4/7\",\"rssi\":-38,\"lsnr\":5.5,"
	"\"size\":3,\"data\":\"AAEC\"}],"
	"\"stat\":{\"time\":\"2014-01-12 08:59:28 GMT\",\"lati\":46.24000,\"long\":3.25230,"
	"\"alti\":145,\"rxnb\":2,\"rxok\":2,\"rxfw\":2,\"ackr\":100.0,\"dwnb\":2,\"txnb\":2}}";

static struct gwmp_push push;

static int parse_push(const char *json)
{
	const char *why = NULL;

	return gwmp_parse_push((const uint8_t *)json, strlen(json), &push, &why);
}

static void push_data_example(void **st)
{
	const struct gwmp_rxpk *a = &push.rxpk[0], *b = &push.rxpk[1], *c = &push.rxpk[2];
	const struct gwmp_stat *s = &push.stat;

	(void)st;
	assert_int_equal(parse_push(PUSH), 0);
	assert_int_equal(push.n_rxpk, 3);
	assert_null(a->error);
	assert_true(a->has_time);
	assert_string_equal(a->time, "2013-03-31T16:21:17.528002Z");
	assert_true(a->has_tmst);
	assert_int_equal(a->tmst, 3512348611u);
	assert_int_equal(a->chan, 2);
	assert_int_equal(a->rfch, 0);
	assert_int_equal(a->freq_hz, 866349812);
	assert_int_equal(a->stat, GWMP_CRC_OK);
	assert_int_equal(a->modu, GWMP_MODU_LORA);
	assert_int_equal(a->sf, 7);
	assert_int_equal(a->bw_hz, 125000);
	assert_string_equal(a->codr, "4/6");
	assert_int_equal(a->cr, 6);
	assert_int_equal(a->rssi, -35);
	assert_true(a->has_lsnr);
	assert_true(a->lsnr > 5.09 && a->lsnr < 5.11);
	assert_int_equal(a->data_len, 4);
	assert_memory_equal(a->data, "\x40\x01\x02\x03", 4);

	assert_null(b->error);
	assert_int_equal(b->modu, GWMP_MODU_FSK);
	assert_int_equal(b->fsk_bps, 50000);
	assert_int_equal(b->freq_hz, 869100000);
	assert_false(b->has_lsnr);
	assert_false(b->has_codr);
	assert_int_equal(b->data_len, 16);
	assert_memory_equal(b->data, "TEST_PACKET_1234", 16);

	assert_null(c->error);
	assert_false(c->has_time);
	assert_int_equal(c->stat, GWMP_CRC_FAIL);
	assert_int_equal(c->freq_hz, 863009810);
	assert_int_equal(c->cr, 7);

	assert_true(push.has_stat);
	assert_string_equal(s->time, "2014-01-12 08:59:28 GMT");
	assert_true(s->has_lati && s->has_long && s->has_alti);
	assert_true(s->lati > 46.2399 && s->lati < 46.2401);
	assert_true(s->lon > 3.2522 && s->lon < 3.2524);
	assert_int_equal(s->alti, 145);
	assert_int_equal(s->rxnb, 2);
	assert_int_equal(s->rxok, 2);
	assert_int_equal(s->rxfw, 2);
	assert_true(s->ackr == 100.0);
	assert_int_equal(s->dwnb, 2);
	assert_int_equal(s->txnb, 2);
}

static void push_data_variants(void **st)
{
	char big[64 * 80 + 64];
	size_t n;

	(void)st;
	/* stat alone, rxpk alone, neither */
	assert_int_equal(parse_push("{\"stat\":{\"rxnb\":1}}"), 0);
	assert_int_equal(push.n_rxpk, 0);
	assert_true(push.has_stat && push.stat.has_rxnb && !push.stat.has_txnb);
	assert_int_equal(parse_push("{}"), 0);
	assert_false(push.has_stat);
	assert_int_equal(parse_push(" {\"rxpk\":[]} \n"), 0);
	/* bad stat fields are left out, not an error */
	assert_int_equal(parse_push("{\"stat\":{\"lati\":\"north\",\"rxnb\":-1,\"alti\":12}}"), 0);
	assert_false(push.stat.has_lati || push.stat.has_rxnb);
	assert_true(push.stat.has_alti);
	/* the signal of SX1302 forwarders, and of the first antenna */
	assert_int_equal(parse_push("{\"rxpk\":[{\"rssis\":-100,\"rssic\":-90,\"data\":\"\"}]}"),
			 0);
	assert_true(push.rxpk[0].has_rssi);
	assert_int_equal(push.rxpk[0].rssi, -100);
	assert_int_equal(
		parse_push("{\"rxpk\":[{\"rsig\":[{\"ant\":0,\"rssic\":-91,\"lsnr\":-2.5}],"
			   "\"data\":\"AQ==\"}]}"),
		0);
	assert_int_equal(push.rxpk[0].rssi, -91);
	assert_true(push.rxpk[0].lsnr == -2.5);
	assert_false(push.rxpk[0].has_tmst);
	/* bad elements get an error of their own; the rest are fine */
	assert_int_equal(
		parse_push("{\"rxpk\":[{\"data\":\"!!!\"},{\"tmst\":-1,\"data\":\"\"},"
			   "{\"data\":\"QA==\",\"size\":2},{\"freq\":\"868.1\",\"data\":\"\"},"
			   "{\"datr\":\"SF7BW126\",\"data\":\"\"},{\"modu\":\"OOK\",\"data\":\"\"},"
			   "{\"modu\":\"LORA\",\"datr\":50000,\"data\":\"\"},"
			   "{\"stat\":2,\"data\":\"\"},{\"rssi\":\"-3\",\"data\":\"\"},3,"
			   "{\"tmst\":4294967296,\"data\":\"\"},{\"tmst\":1.5,\"data\":\"\"},"
			   "{},{\"data\":\"QQ==\",\"size\":1,\"tmst\":4294967295}]}"),
		0);
	assert_int_equal(push.n_rxpk, 14);
	for (size_t i = 0; i < 13; i++) {
		if (!push.rxpk[i].error)
			fail_msg("rxpk %zu accepted", i);
	}
	assert_null(push.rxpk[13].error);
	assert_int_equal(push.rxpk[13].tmst, 4294967295u);
	/* data beyond 255 bytes */
	n = (size_t)snprintf(big, sizeof(big), "{\"rxpk\":[{\"data\":\"");
	for (int i = 0; i < 86; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "AAAA");
	snprintf(big + n, sizeof(big) - n, "\"}]}");
	assert_int_equal(parse_push(big), 0);
	assert_non_null(push.rxpk[0].error);
	/* more than GWMP_RXPK_MAX: counted, not parsed */
	n = (size_t)snprintf(big, sizeof(big), "{\"rxpk\":[");
	for (int i = 0; i < GWMP_RXPK_MAX + 3; i++)
		n += (size_t)snprintf(big + n, sizeof(big) - n, "%s{\"data\":\"AA==\"}",
				      i ? "," : "");
	snprintf(big + n, sizeof(big) - n, "]}");
	assert_int_equal(parse_push(big), 0);
	assert_int_equal(push.n_rxpk, GWMP_RXPK_MAX);
	assert_int_equal(push.rxpk_over, 3);

	/* the datagram is refused */
	assert_int_equal(parse_push("[]"), -EINVAL);
	assert_int_equal(parse_push("{"), -EINVAL);
	assert_int_equal(parse_push("{} x"), -EINVAL);
	assert_int_equal(parse_push("{\"rxpk\":{}}"), -EINVAL);
	assert_int_equal(parse_push("{\"stat\":[]}"), -EINVAL);
	assert_int_equal(parse_push(""), -EINVAL);
}

static void datr_and_codr(void **st)
{
	int sf = 0, cr = 0;
	uint32_t bw = 0;
	static const char *const bad_datr[] = {"",
					       "SF7",
					       "SF7BW",
					       "BW125",
					       "SF4BW125",
					       "SF13BW125",
					       "SF7BW126",
					       "sf7bw125",
					       "SF7BW125 ",
					       "SF07BW0125x",
					       "SF999999999999BW125",
					       "SF7BW99999999999"};
	static const char *const bad_codr[] = {"", "4/4", "4/9", "5/5", "4/5 ", "4/", "OFF"};

	(void)st;
	assert_true(gwmp_parse_datr("SF7BW125", &sf, &bw));
	assert_int_equal(sf, 7);
	assert_int_equal(bw, 125000);
	assert_true(gwmp_parse_datr("SF12BW500", &sf, &bw));
	assert_int_equal(sf, 12);
	assert_int_equal(bw, 500000);
	assert_true(gwmp_parse_datr("SF5BW250", &sf, &bw));
	for (size_t i = 0; i < sizeof(bad_datr) / sizeof(bad_datr[0]); i++) {
		if (gwmp_parse_datr(bad_datr[i], &sf, &bw))
			fail_msg("datr \"%s\" accepted", bad_datr[i]);
	}
	assert_false(gwmp_parse_datr(NULL, &sf, &bw));
	for (int i = 5; i <= 8; i++) {
		char s[4] = {'4', '/', (char)('0' + i), 0};

		assert_true(gwmp_parse_codr(s, &cr));
		assert_int_equal(cr, i);
	}
	for (size_t i = 0; i < sizeof(bad_codr) / sizeof(bad_codr[0]); i++)
		assert_false(gwmp_parse_codr(bad_codr[i], &cr));
}

static int tx_ack(const char *json, struct gwmp_tx_ack *a)
{
	const char *why;

	return gwmp_parse_tx_ack((const uint8_t *)json, strlen(json), a, &why);
}

static void tx_ack_errors(void **st)
{
	struct gwmp_tx_ack a;
	static const struct {
		const char *name;
		enum gwmp_tx_error e;
	} names[] = {
		{"NONE", GWMP_TX_NONE},
		{"TOO_LATE", GWMP_TX_TOO_LATE},
		{"TOO_EARLY", GWMP_TX_TOO_EARLY},
		{"COLLISION_PACKET", GWMP_TX_COLLISION_PACKET},
		{"COLLISION_BEACON", GWMP_TX_COLLISION_BEACON},
		{"TX_FREQ", GWMP_TX_FREQ},
		{"TX_POWER", GWMP_TX_POWER},
		{"GPS_UNLOCKED", GWMP_TX_GPS_UNLOCKED},
	};
	char json[96];

	(void)st;
	/* no JSON at all means no error */
	assert_int_equal(gwmp_parse_tx_ack(NULL, 0, &a, NULL), 0);
	assert_int_equal(a.error, GWMP_TX_NONE);
	assert_string_equal(a.name, "NONE");
	assert_int_equal(tx_ack(" \r\n", &a), 0);
	assert_int_equal(a.error, GWMP_TX_NONE);
	assert_int_equal(tx_ack("{}", &a), 0);
	assert_int_equal(a.error, GWMP_TX_NONE);
	assert_int_equal(tx_ack("{\"txpk_ack\":{}}", &a), 0);
	assert_int_equal(a.error, GWMP_TX_NONE);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(json, sizeof(json), "{\"txpk_ack\":{\"error\":\"%s\"}}", names[i].name);
		assert_int_equal(tx_ack(json, &a), 0);
		assert_int_equal(a.error, names[i].e);
		assert_string_equal(a.name, names[i].name);
	}
	/* names outside the list are kept when they look like one */
	assert_int_equal(tx_ack("{\"txpk_ack\":{\"error\":\"UNKNOWN\"}}", &a), 0);
	assert_int_equal(a.error, GWMP_TX_OTHER);
	assert_string_equal(a.name, "UNKNOWN");
	assert_int_equal(tx_ack("{\"txpk_ack\":{\"error\":\"TX_FREQ_2\"}}", &a), 0);
	assert_int_equal(a.error, GWMP_TX_OTHER);
	assert_string_equal(a.name, "TX_FREQ_2");
	assert_int_equal(tx_ack("{\"txpk_ack\":{\"error\":\"<script>\"}}", &a), 0);
	assert_int_equal(a.error, GWMP_TX_OTHER);
	assert_string_equal(a.name, "UNKNOWN");
	assert_int_equal(tx_ack("{\"txpk_ack\":{\"error\":\"\"}}", &a), 0);
	assert_int_equal(a.error, GWMP_TX_OTHER);
	/* SX1302 forwarders warn about an adjusted power: sent, so no error */
	assert_int_equal(tx_ack("{\"txpk_ack\":{\"warn\":\"TX_POWER\",\"value\":14}}", &a), 0);
	assert_int_equal(a.error, GWMP_TX_NONE);
	assert_true(a.has_warn);
	assert_string_equal(a.warn, "TX_POWER");
	/* malformed */
	assert_int_equal(tx_ack("{broken", &a), -EINVAL);
	assert_int_equal(tx_ack("[]", &a), -EINVAL);
	assert_int_equal(tx_ack("{\"txpk_ack\":[]}", &a), -EINVAL);
	assert_int_equal(tx_ack("{\"txpk_ack\":{\"error\":7}}", &a), -EINVAL);
}

static void pull_resp_built_as_the_protocol_says(void **st)
{
	uint8_t out[512], phy[16];
	struct gwmp_txpk t = {
		.imme = false,
		.tmst = 4000000000u,
		.freq_hz = 869525000,
		.rfch = 0,
		.powe = 14,
		.modu = GWMP_MODU_LORA,
		.sf = 12,
		.bw_hz = 125000,
		.cr = 5,
		.ipol = true,
		.ncrc = true,
		.data = phy,
		.size = sizeof(phy),
	};
	const char want[] = "{\"txpk\":{\"imme\":false,\"tmst\":4000000000,\"freq\":869.525000,"
			    "\"rfch\":0,\"powe\":14,\"modu\":\"LORA\",\"datr\":\"SF12BW125\","
			    "\"codr\":\"4/5\",\"ipol\":true,\"size\":16,"
			    "\"data\":\"YAECAwQFBgcICQoLDA0ODw==\",\"ncrc\":true}}";
	json_t *root, *o;
	json_error_t jerr;
	struct gwmp_txpk back;
	struct gwmp_header h;
	bool has_tmst;
	const char *why;
	long n;

	(void)st;
	for (size_t i = 0; i < sizeof(phy); i++)
		phy[i] = (uint8_t)i;
	phy[0] = 0x60;
	n = gwmp_build_pull_resp(out, sizeof(out), 2, 0xabcd, &t);
	assert_int_equal(n, 4 + strlen(want));
	assert_memory_equal(out, "\x02\xab\xcd\x03", 4);
	assert_memory_equal(out + 4, want, strlen(want));
	/* a JSON reader sees the same */
	root = json_loadb((const char *)out + 4, (size_t)n - 4, 0, &jerr);
	assert_non_null(root);
	o = json_object_get(root, "txpk");
	assert_true(json_is_false(json_object_get(o, "imme")));
	assert_int_equal(json_integer_value(json_object_get(o, "tmst")), 4000000000LL);
	assert_true(json_real_value(json_object_get(o, "freq")) == 869.525);
	assert_string_equal(json_string_value(json_object_get(o, "datr")), "SF12BW125");
	json_decref(root);
	/* and our own reader of upstream PULL_RESPs */
	assert_int_equal(gwmp_parse(out, (size_t)n, &h, &why), 0);
	assert_int_equal(gwmp_parse_pull_resp(h.body, h.body_len, &back, &has_tmst, &why), 0);
	assert_true(has_tmst);
	assert_int_equal(back.tmst, t.tmst);
	assert_int_equal(back.freq_hz, t.freq_hz);
	assert_int_equal(back.sf, 12);
	assert_int_equal(back.bw_hz, 125000);
	assert_int_equal(back.cr, 5);
	assert_int_equal(back.size, 16);
	assert_true(back.ipol && back.ncrc && !back.imme);
	assert_int_equal(back.powe, 14);

	/* immediate, Hz precision, another rate and power, a preamble */
	t.imme = true;
	t.freq_hz = 868100001;
	t.sf = 7;
	t.bw_hz = 250000;
	t.cr = 8;
	t.powe = 27;
	t.ncrc = false;
	t.ipol = false;
	t.prea = 10;
	t.size = 1;
	n = gwmp_build_pull_resp(out, sizeof(out), 1, 1, &t);
	assert_true(n > 4);
	out[n] = '\0';
	assert_string_equal((char *)out + 4,
			    "{\"txpk\":{\"imme\":true,\"freq\":868.100001,\"rfch\":0,\"powe\":27,"
			    "\"modu\":\"LORA\",\"datr\":\"SF7BW250\",\"codr\":\"4/8\","
			    "\"ipol\":false,\"size\":1,\"data\":\"YA==\",\"ncrc\":false,"
			    "\"prea\":10}}");
	assert_int_equal(out[0], 1);
	/* too small a buffer; bad parameters */
	assert_int_equal(gwmp_build_pull_resp(out, 40, 2, 1, &t), -ENOBUFS);
	t.cr = 4;
	assert_int_equal(gwmp_build_pull_resp(out, sizeof(out), 2, 1, &t), -EINVAL);
	t.cr = 5;
	t.size = 256;
	assert_int_equal(gwmp_build_pull_resp(out, sizeof(out), 2, 1, &t), -EINVAL);
}

static int pull_resp(const char *json, struct gwmp_txpk *t, bool *has_tmst)
{
	const char *why;

	return gwmp_parse_pull_resp((const uint8_t *)json, strlen(json), t, has_tmst, &why);
}

static void pull_resp_from_upstream(void **st)
{
	struct gwmp_txpk t;
	bool has_tmst;
	static const char *const bad[] = {
		"{}",
		"{\"txpk\":[]}",
		"{\"txpk\":{\"imme\":true,\"datr\":\"SF7BW125\",\"data\":\"AA==\"}}",
		"{\"txpk\":{\"imme\":true,\"freq\":868.1,\"data\":\"AA==\"}}",
		"{\"txpk\":{\"imme\":true,\"freq\":868.1,\"datr\":\"SF7BW125\"}}",
		"{\"txpk\":{\"freq\":868.1,\"datr\":\"SF7BW125\",\"data\":\"AA==\"}}",
		"{\"txpk\":{\"imme\":1,\"freq\":868.1,\"datr\":\"SF7BW125\",\"data\":\"AA==\"}}",
		"{\"txpk\":{\"imme\":true,\"freq\":868.1,\"datr\":\"SF7BW125\",\"data\":\"AA==\","
		"\"size\":2}}",
		"{\"txpk\":{\"imme\":true,\"freq\":868.1,\"datr\":\"SF7BW125\",\"codr\":\"4/9\","
		"\"data\":\"AA==\"}}",
		"{\"txpk\":{\"imme\":true,\"freq\":868.1,\"modu\":\"FSK\",\"datr\":\"x\","
		"\"data\":\"AA==\"}}",
		"{\"txpk\":{\"tmst\":-5,\"freq\":868.1,\"datr\":\"SF7BW125\",\"data\":\"AA==\"}}",
		"{\"txpk\":{\"imme\":true,\"freq\":868.1,\"datr\":\"SF7BW125\",\"data\":7}}",
	};

	(void)st;
	/* the examples of PROTOCOL.TXT section 6 (valid base64) */
	assert_int_equal(pull_resp("{\"txpk\":{\"imme\":true,\"freq\":864.123456,\"rfch\":0,"
				   "\"powe\":14,\"modu\":\"LORA\",\"datr\":\"SF11BW125\","
				   "\"codr\":\"4/6\",\"ipol\":false,\"size\":32,"
				   "\"data\":\"H3P3N2i9qc4yt7rK7ldqoeCVJGBybzPY5h1Dd7P7p8s=\"}}",
				   &t, &has_tmst),
			 0);
	assert_true(t.imme && !has_tmst);
	assert_int_equal(t.freq_hz, 864123456);
	assert_int_equal(t.sf, 11);
	assert_int_equal(t.cr, 6);
	assert_int_equal(t.size, 32);
	assert_false(t.ncrc);
	assert_int_equal(pull_resp("{\"txpk\":{\"imme\":true,\"freq\":861.3,\"rfch\":0,\"powe\":12,"
				   "\"modu\":\"FSK\",\"datr\":50000,\"fdev\":3000,\"size\":32,"
				   "\"data\":\"H3P3N2i9qc4yt7rK7ldqoeCVJGBybzPY5h1Dd7P7p8s=\"}}",
				   &t, &has_tmst),
			 0);
	assert_int_equal(t.modu, GWMP_MODU_FSK);
	assert_int_equal(t.fsk_bps, 50000);
	assert_int_equal(t.fdev_hz, 3000);
	assert_int_equal(t.powe, 12);
	/* size alone, tmst scheduling, codr default */
	assert_int_equal(pull_resp("{\"txpk\":{\"tmst\":5,\"freq\":869.525,\"datr\":\"SF12BW125\","
				   "\"size\":20,\"ncrc\":true}}",
				   &t, &has_tmst),
			 0);
	assert_true(has_tmst && t.tmst == 5 && t.size == 20 && t.cr == 5 && t.ncrc);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (pull_resp(bad[i], &t, &has_tmst) != -EINVAL)
			fail_msg("accepted %s", bad[i]);
	}
}

static void base64_and_eui(void **st)
{
	uint8_t out[16], in[256];
	char enc[400];
	uint64_t eui;
	char s[17];

	(void)st;
	assert_int_equal(base64_decode("QA==", 4, out, sizeof(out)), 1);
	assert_int_equal(out[0], 0x40);
	assert_int_equal(base64_decode("QA", 2, out, sizeof(out)), 1);
	assert_int_equal(base64_decode("", 0, out, sizeof(out)), 0);
	assert_int_equal(base64_decode("Q", 1, out, sizeof(out)), -1);
	assert_int_equal(base64_decode("QA=", 3, out, sizeof(out)), -1);
	assert_int_equal(base64_decode("-DS4", 4, out, sizeof(out)), -1);
	assert_int_equal(base64_decode("AAAAAAAAAAAAAAAAAAAAAAA=", 24, out, 16), -1);
	for (size_t n = 0; n <= sizeof(in); n += 37) {
		for (size_t i = 0; i < n; i++)
			in[i] = (uint8_t)(i * 31 + n);
		base64_encode(in, n, enc);
		assert_int_equal(strlen(enc), (n + 2) / 3 * 4);
		{
			uint8_t back[256];

			assert_int_equal(base64_decode(enc, strlen(enc), back, sizeof(back)),
					 (long)n);
			assert_memory_equal(back, in, n);
		}
	}
	base64_encode("test", 4, enc);
	assert_string_equal(enc, "dGVzdA==");

	gwmp_eui_str(0xaa555a0000000101ull, s);
	assert_string_equal(s, "aa555a0000000101");
	assert_true(gwmp_eui_parse("AA555A0000000101", &eui));
	assert_true(eui == 0xaa555a0000000101ull);
	assert_false(gwmp_eui_parse("aa555a000000010", &eui));
	assert_false(gwmp_eui_parse("aa555a00000001011", &eui));
	assert_false(gwmp_eui_parse("aa555a000000010g", &eui));
	assert_false(gwmp_eui_parse(NULL, &eui));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(headers),
		cmocka_unit_test(acks_echo_version_and_token),
		cmocka_unit_test(push_data_example),
		cmocka_unit_test(push_data_variants),
		cmocka_unit_test(datr_and_codr),
		cmocka_unit_test(tx_ack_errors),
		cmocka_unit_test(pull_resp_built_as_the_protocol_says),
		cmocka_unit_test(pull_resp_from_upstream),
		cmocka_unit_test(base64_and_eui),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
