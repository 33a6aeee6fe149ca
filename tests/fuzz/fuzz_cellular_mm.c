/* libFuzzer target: what ModemManager passes on from the network about an
 * SMS (plugins/cellular/mm.c): the sender and the timestamp, both as any
 * string. A sender made E.164 must be one; anything kept must be a usable
 * device id (printable, no topic wildcards); a timestamp taken must be UTC
 * in our form and read back as itself. The signal dictionary reader gets
 * the bytes as a key and a value too. */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "../../plugins/cellular/mm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char in[300], num[MM_NUMBER_MAX], ts[MM_TIME_LEN], back[MM_TIME_LEN];
	size_t n = size < sizeof(in) - 1 ? size : sizeof(in) - 1;
	struct mm_signal sig;
	double v = 0;
	int rc;

	memcpy(in, data, n);
	in[n] = 0;

	rc = mm_sender(in, num);
	if (rc == 1 && !mm_is_e164(num))
		__builtin_trap();
	if (rc >= 0) {
		size_t k = strnlen(num, sizeof(num));

		if (k == 0 || k >= sizeof(num))
			__builtin_trap();
		for (size_t i = 0; i < k; i++)
			if (num[i] < 0x20 || num[i] > 0x7e || num[i] == '/' || num[i] == '#' ||
			    (num[i] == '+' && i))
				__builtin_trap();
	}

	if (mm_timestamp_utc(in, ts) == 0) {
		if (strlen(ts) != 20 || ts[19] != 'Z' || mm_timestamp_utc(ts, back) != 0 ||
		    strcmp(ts, back))
			__builtin_trap();
	}

	memset(&sig, 0, sizeof(sig));
	if (size >= sizeof(v))
		memcpy(&v, data, sizeof(v));
	if (mm_signal_take(&sig, in + (n > 8 ? 8 : n), v) && mm_signal_empty(&sig))
		__builtin_trap();
	/* the state as the int32 D-Bus carries (a cast of a huge double
	 * would be undefined behaviour of this target, not of mm.c) */
	int32_t state = 0;
	if (size >= sizeof(state))
		memcpy(&state, data, sizeof(state));
	mm_state_name(state);
	mm_registration_name((uint32_t)n);
	return 0;
}
