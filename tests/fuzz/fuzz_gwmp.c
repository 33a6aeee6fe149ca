/* libFuzzer target: GWMP datagrams from packet forwarders and upstream
 * network servers (plugins/lorawan/gwmp.c). The input is one datagram. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugins/lorawan/gwmp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct gwmp_push push;

/* A PULL_RESP we build from what we parsed reads back the same. */
static void round_trip(const struct gwmp_txpk *in)
{
	static const uint8_t zeros[GWMP_PHY_MAX];
	struct gwmp_txpk t = *in, back;
	struct gwmp_header h;
	uint8_t out[2048];
	bool has_tmst;
	const char *why;
	long n;

	t.data = zeros;
	n = gwmp_build_pull_resp(out, sizeof(out), 2, 0x1234, &t);
	if (n < 0)
		return; /* e.g. an FSK rate or coding rate the builder does not take */
	if (gwmp_parse(out, (size_t)n, &h, &why) < 0 || h.type != GWMP_PULL_RESP ||
	    h.token != 0x1234)
		__builtin_trap();
	if (gwmp_parse_pull_resp(h.body, h.body_len, &back, &has_tmst, &why) < 0)
		__builtin_trap();
	if (back.freq_hz != t.freq_hz || back.size != t.size || back.imme != t.imme ||
	    (!t.imme && (!has_tmst || back.tmst != t.tmst)) || back.modu != t.modu ||
	    back.ipol != t.ipol || back.ncrc != t.ncrc)
		__builtin_trap();
	if (t.modu == GWMP_MODU_LORA &&
	    (back.sf != t.sf || back.bw_hz != t.bw_hz || back.cr != t.cr))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct gwmp_header h;
	struct gwmp_tx_ack ack;
	struct gwmp_txpk t;
	const char *why;
	bool has_tmst;
	uint8_t b64out[GWMP_PHY_MAX];
	char enc[(GWMP_PHY_MAX + 2) / 3 * 4 + 1];
	long n;

	/* the helpers on the raw bytes too */
	if (size < 512) {
		char s[512];
		int sf, cr;
		uint32_t bw;
		uint64_t eui;

		memcpy(s, data, size);
		s[size] = '\0';
		(void)gwmp_parse_datr(s, &sf, &bw);
		(void)gwmp_parse_codr(s, &cr);
		(void)gwmp_eui_parse(s, &eui);
		n = base64_decode(s, strlen(s), b64out, sizeof(b64out));
		if (n >= 0) {
			uint8_t again[GWMP_PHY_MAX];

			base64_encode(b64out, (size_t)n, enc);
			if (strlen(enc) != base64_encoded_len((size_t)n) ||
			    base64_decode(enc, strlen(enc), again, sizeof(again)) != n ||
			    memcmp(again, b64out, (size_t)n))
				__builtin_trap();
		}
	}
	if (gwmp_parse(data, size, &h, &why) < 0)
		return 0;
	if (h.body_len > size)
		__builtin_trap();
	switch (h.type) {
	case GWMP_PUSH_DATA:
		if (gwmp_parse_push(h.body, h.body_len, &push, &why) == 0) {
			if (push.n_rxpk > GWMP_RXPK_MAX)
				__builtin_trap();
			for (size_t i = 0; i < push.n_rxpk; i++) {
				const struct gwmp_rxpk *r = &push.rxpk[i];

				if (r->data_len > GWMP_PHY_MAX || strlen(r->time) >= GWMP_TIME_MAX)
					__builtin_trap();
				if (!r->error && r->has_datr && r->modu == GWMP_MODU_LORA &&
				    (r->sf < 5 || r->sf > 12))
					__builtin_trap();
			}
		}
		break;
	case GWMP_TX_ACK:
		if (gwmp_parse_tx_ack(h.body, h.body_len, &ack, &why) == 0 &&
		    (strlen(ack.name) > GWMP_NAME_MAX ||
		     (ack.error == GWMP_TX_NONE) != (!strcmp(ack.name, "NONE"))))
			__builtin_trap();
		break;
	case GWMP_PULL_RESP:
		if (gwmp_parse_pull_resp(h.body, h.body_len, &t, &has_tmst, &why) == 0)
			round_trip(&t);
		break;
	case GWMP_PULL_DATA:
	case GWMP_PUSH_ACK:
	case GWMP_PULL_ACK:
		break;
	}
	return 0;
}
