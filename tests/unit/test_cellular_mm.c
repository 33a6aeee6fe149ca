// SPDX-License-Identifier: MIT
/*
 * ModemManager's values in our words (plugins/cellular/mm.c): the names of
 * its enums, the access technology bitmask and the family a modem is on,
 * Modem.Signal's dictionaries, SMS timestamps in both forms ModemManager
 * has used, and senders as device ids.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../plugins/cellular/mm.h"

static void state_names(void **st)
{
	(void)st;
	assert_string_equal(mm_state_name(-1), "failed");
	assert_string_equal(mm_state_name(0), "unknown");
	assert_string_equal(mm_state_name(3), "disabled");
	assert_string_equal(mm_state_name(8), "registered");
	assert_string_equal(mm_state_name(11), "connected");
	assert_null(mm_state_name(12));
	assert_null(mm_state_name(-2));
	assert_null(mm_state_name(INT32_MIN));
	assert_string_equal(mm_failed_reason_name(2), "sim-missing");
	assert_string_equal(mm_failed_reason_name(3), "sim-error");
	assert_null(mm_failed_reason_name(6));
	assert_string_equal(mm_registration_name(1), "home");
	assert_string_equal(mm_registration_name(5), "roaming");
	assert_string_equal(mm_registration_name(3), "denied");
	assert_string_equal(mm_registration_name(11), "attached-rlos");
	assert_null(mm_registration_name(12));
	assert_null(mm_registration_name(UINT32_MAX));
}

static void access_technologies(void **st)
{
	const char *names[24];
	size_t n;

	(void)st;
	assert_int_equal(mm_family_of(0), MM_FAMILY_NONE);
	assert_int_equal(mm_family_of(MM_AT_GSM | MM_AT_EDGE), MM_FAMILY_GSM);
	assert_int_equal(mm_family_of(MM_AT_HSPA_PLUS), MM_FAMILY_UMTS);
	assert_int_equal(mm_family_of(MM_AT_LTE | MM_AT_UMTS), MM_FAMILY_LTE);
	assert_int_equal(mm_family_of(MM_AT_LTE_NB_IOT), MM_FAMILY_LTE);
	/* 5G NR non-standalone: LTE anchor and NR at once */
	assert_int_equal(mm_family_of(MM_AT_LTE | MM_AT_5GNR), MM_FAMILY_5GNR);
	assert_int_equal(mm_family_of(MM_AT_EVDOA), MM_FAMILY_CDMA);
	assert_int_equal(mm_family_of(1u << 30), MM_FAMILY_NONE);
	assert_string_equal(mm_family_name(MM_FAMILY_5GNR), "5gnr");
	assert_null(mm_family_name(MM_FAMILY_NONE));
	assert_string_equal(mm_family_signal_prop(MM_FAMILY_5GNR), "Nr5g");
	assert_string_equal(mm_family_signal_prop(MM_FAMILY_LTE), "Lte");
	assert_string_equal(mm_family_signal_prop(MM_FAMILY_GSM), "Gsm");

	n = mm_access_tech_names(MM_AT_LTE | MM_AT_5GNR | MM_AT_HSPA_PLUS | (1u << 31), names, 24);
	assert_int_equal(n, 3);
	assert_string_equal(names[0], "hspa+");
	assert_string_equal(names[1], "lte");
	assert_string_equal(names[2], "5gnr");
	/* bounded by cap */
	assert_int_equal(mm_access_tech_names(0x3ffff, names, 2), 2);
	assert_int_equal(mm_access_tech_names(0, names, 24), 0);
}

static void signal_values(void **st)
{
	struct mm_signal s;

	(void)st;
	memset(&s, 0, sizeof(s));
	assert_true(mm_signal_empty(&s));
	assert_true(mm_signal_take(&s, "rsrp", -98.5));
	assert_true(mm_signal_take(&s, "snr", 7.25));
	assert_false(mm_signal_take(&s, "error-rate", 0.1)); /* not ours */
	assert_false(mm_signal_take(&s, "rssi", NAN));
	assert_false(mm_signal_take(&s, "rssi", INFINITY));
	assert_false(mm_signal_take(&s, "rssi", -1e9));
	assert_false(mm_signal_take(&s, NULL, 1));
	assert_false(mm_signal_empty(&s));
	assert_true(s.has_rsrp && s.has_snr && !s.has_rssi && !s.has_sinr);
	assert_true(s.rsrp == -98.5 && s.snr == 7.25);
}

static void timestamps(void **st)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{"2026-11-26T09:40:01+01:00", "2026-11-26T08:40:01Z"},
		{"2026-11-26T09:40:01+01", "2026-11-26T08:40:01Z"},
		{"2026-11-26T09:40:01+0130", "2026-11-26T08:10:01Z"},
		{"2026-11-26T08:40:01Z", "2026-11-26T08:40:01Z"},
		{"2026-11-26T08:40:01.123Z", "2026-11-26T08:40:01Z"},
		{"2026-11-26 08:40Z", "2026-11-26T08:40:00Z"},
		/* across the day, month and year */
		{"2027-01-01T00:30:00+02:00", "2026-12-31T22:30:00Z"},
		{"2024-02-28T23:00:00-02:00", "2024-02-29T01:00:00Z"},
		/* the older form, offset in quarter hours (+04 = one hour) */
		{"261126094001+04", "2026-11-26T08:40:01Z"},
		{"261126084001-08", "2026-11-26T10:40:01Z"},
	};
	static const char *const bad[] = {
		"",
		"2026-11-26T09:40:01",	     /* no offset: local time of where? */
		"2026-13-26T09:40:01Z",	     /* month 13 */
		"2026-02-29T09:40:01Z",	     /* not a leap year */
		"2026-11-26T24:00:00Z",	     /* hour 24 */
		"2026-11-26T09:40:01+25:00", /* offset */
		"2026-11-26T09:40:01Zjunk",
		"2026-11-26T09:40:01.Z",
		"1969-12-31T23:59:59Z",
		"261126094001*04",
		"26112609400a+04",
		"hello",
	};
	char out[MM_TIME_LEN];

	(void)st;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		memset(out, 0, sizeof(out));
		assert_int_equal(mm_timestamp_utc(ok[i].in, out), 0);
		assert_string_equal(out, ok[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(mm_timestamp_utc(bad[i], out), -EINVAL);
	assert_int_equal(mm_timestamp_utc(NULL, out), -EINVAL);
}

static void senders(void **st)
{
	char out[MM_NUMBER_MAX];

	(void)st;
	assert_int_equal(mm_sender("+4915112345678", out), 1);
	assert_string_equal(out, "+4915112345678");
	assert_int_equal(mm_sender("0049 151 123-456 78", out), 1);
	assert_string_equal(out, "+4915112345678");
	assert_int_equal(mm_sender("+49 (151) 1234.5678", out), 1);
	assert_string_equal(out, "+4915112345678");
	/* national: kept as digits, not E.164 (claims cannot match it) */
	assert_int_equal(mm_sender("015112345678", out), 0);
	assert_string_equal(out, "015112345678");
	/* too long for E.164 */
	assert_int_equal(mm_sender("+1234567890123456", out), 0);
	/* a short code */
	assert_int_equal(mm_sender("22000", out), 0);
	assert_string_equal(out, "22000");
	/* alphanumeric senders: printable, no topic wildcards or slashes */
	assert_int_equal(mm_sender("  Telekom  ", out), 0);
	assert_string_equal(out, "Telekom");
	assert_int_equal(mm_sender("a/b+c#d\x01\xc3\xa4 e", out), 0);
	assert_string_equal(out, "abcd e");
	assert_int_equal(mm_sender("\x01\x02", out), -EINVAL);
	assert_int_equal(mm_sender("", out), -EINVAL);
	assert_int_equal(mm_sender(NULL, out), -EINVAL);
	/* long input: cut, NUL-terminated */
	assert_int_equal(mm_sender("ABCDEFGHIJKLMNOPQRSTUVWXYZABCDEFGHIJKLMNOPQRSTUVWXYZ", out), 0);
	assert_int_equal(strlen(out), MM_NUMBER_MAX - 1);

	assert_true(mm_is_e164("+4915112345678"));
	assert_true(mm_is_e164("+1234567"));
	assert_false(mm_is_e164("+123456"));
	assert_false(mm_is_e164("+0123456789"));
	assert_false(mm_is_e164("4915112345678"));
	assert_false(mm_is_e164("+49151123456789012"));
	assert_false(mm_is_e164("+49151x2345678"));
	assert_false(mm_is_e164(NULL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(state_names),	 cmocka_unit_test(access_technologies),
		cmocka_unit_test(signal_values), cmocka_unit_test(timestamps),
		cmocka_unit_test(senders),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
