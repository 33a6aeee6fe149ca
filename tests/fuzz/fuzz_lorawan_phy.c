/* libFuzzer target: LoRaWAN PHYPayloads as received over the air
 * (plugins/lorawan/phy.c). The input is one PHYPayload; the seeds are
 * frames under the keys below, so that the MIC path is reached. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugins/lorawan/phy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const uint8_t NWK[16] = {0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6,
				0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf, 0x4f, 0x3c};
static const uint8_t APP[16] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

static struct lorawan_crypto *crypto;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct phy_frame f;
	struct phy_uplink_check chk;
	const char *why;
	uint8_t plain[PHY_MAX_LEN], again[PHY_MAX_LEN];
	uint32_t cand[4], last;
	size_t n;

	if (!crypto)
		crypto = lorawan_crypto_new();
	if (phy_parse(data, size, &f, &why) < 0)
		return 0;
	if (size > PHY_MAX_LEN || (f.mic && f.mic + 4 != data + size))
		__builtin_trap();
	if (!phy_mtype_is_data(f.mtype) || !phy_mtype_is_uplink(f.mtype))
		return 0;
	if (8u + f.fopts_len + (f.has_fport ? 1u : 0u) + f.frm_len + 4u != size)
		__builtin_trap();
	/* a last counter from the frame itself, to vary the reconstruction */
	last = (uint32_t)data[0] << 17 | f.fcnt16;
	n = phy_fcnt_candidates(true, last, f.fcnt16, cand);
	for (size_t i = 0; i < n; i++) {
		if ((cand[i] & 0xffff) != f.fcnt16)
			__builtin_trap();
		for (size_t k = 0; k < i; k++)
			if (cand[k] == cand[i])
				__builtin_trap();
	}
	if (phy_uplink_verify(crypto, &f, NWK, size & 1, last, &chk) < 0)
		return 0;
	/* (RFU bits in the MHDR are not rebuilt) */
	if (!chk.mic_ok || !f.has_fport || (f.fport == 0 && f.fopts_len) || (data[0] & 0x1c))
		return 0;
	if ((chk.fcnt & 0xffff) != f.fcnt16 || chk.fresh == chk.stale)
		__builtin_trap();
	if (phy_decrypt_frm(crypto, &f, chk.fcnt, NWK, APP, plain) < 0)
		__builtin_trap();
	/* a verified frame is rebuilt to the same bytes from its plaintext */
	{
		struct phy_data_params p = {
			.mtype = f.mtype,
			.dev_addr = f.dev_addr,
			.fctrl = f.fctrl,
			.fopts = f.fopts,
			.fopts_len = f.fopts_len,
			.fcnt = chk.fcnt,
			.has_fport = true,
			.fport = f.fport,
			.payload = plain,
			.len = f.frm_len,
		};
		long m = phy_build_data(crypto, &p, NWK, APP, again, sizeof(again));

		if (m != (long)size || memcmp(again, data, size))
			__builtin_trap();
	}
	return 0;
}
