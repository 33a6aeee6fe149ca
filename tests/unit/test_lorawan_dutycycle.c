// SPDX-License-Identifier: MIT
/*
 * The EU868 duty-cycle ledger of the lorawan module (plugins/lorawan/
 * dutycycle.c) and the LoRa time on air it is fed with (plugins/shared/
 * lora_airtime.c).
 *
 * Airtime vectors are published values of the AN1200.13 formula (Semtech
 * "LoRa Modem Designer's Guide"), as shown by the LoRa airtime calculator
 * spreadsheets that quote it (13 bytes at SF9; 37 bytes at SF7..SF12 with
 * the low data rate optimisation on "auto", i.e. at SF11 and SF12).
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

#include "../../plugins/lorawan/dutycycle.h"
#include "../../plugins/shared/lora_airtime.h"

#define HOUR DC_WINDOW_MS

/* ---- airtime -------------------------------------------------------------- */

static void airtime_published_values(void **st)
{
	static const struct {
		int sf, cr;
		size_t len;
		bool crc;
		uint64_t us;
	} v[] = {
		/* 13 bytes (an empty LoRaWAN frame), explicit header, CRC on */
		{9, 5, 13, true, 164864},
		/* 24 bytes of application payload + 13 bytes of LoRaWAN */
		{7, 5, 37, true, 82176},
		{8, 5, 37, true, 143872},
		{9, 5, 37, true, 267264},
		{10, 5, 37, true, 493568},
		{11, 5, 37, true, 1069056},
		{12, 5, 37, true, 1974272},
	};

	(void)st;
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		uint64_t got = lora_airtime_us(v[i].sf, 125000, v[i].cr, v[i].len, 8, v[i].crc);

		if (got != v[i].us)
			fail_msg("SF%d CR4/%d %zu bytes: %llu us, want %llu", v[i].sf, v[i].cr,
				 v[i].len, (unsigned long long)got, (unsigned long long)v[i].us);
	}
}

/* Downlinks go without CRC: the formula's 16 bits less. Worked by hand:
 * 16 bytes at SF7/125 kHz: ceil((128-28+28)/28) = 5 → 8 + 25 symbols, plus
 * 12.25 of preamble → 45.25 × 1.024 ms. */
static void airtime_downlinks_without_crc(void **st)
{
	(void)st;
	assert_int_equal(lora_airtime_us(7, 125000, 5, 16, 8, false), 46336);
	assert_int_equal(lora_airtime_us(12, 125000, 5, 16, 8, false), 1155072);
	/* 13 bytes: ceil((104-28+28)/28) = 4 → 28 symbols → 40.25 × 1.024 */
	assert_int_equal(lora_airtime_us(7, 125000, 5, 13, 8, false), 41216);
	/* CRC on adds symbols at this length: ceil(120/28) = 5 */
	assert_int_equal(lora_airtime_us(7, 125000, 5, 13, 8, true), 46336);
	/* SF7 at 250 kHz: half the symbol time of 125 kHz */
	assert_int_equal(lora_airtime_us(7, 250000, 5, 16, 8, false), 23168);
	/* the low data rate optimisation is on at SF11/125 kHz (16.384 ms
	 * symbols), off at SF11/250 kHz (8.192 ms):
	 * 125 kHz: ceil((128-44+28)/36) = 4 → 28 → 40.25 × 16.384 = 659.456
	 * 250 kHz: ceil(112/44) = 3 → 23 → 35.25 × 8.192 = 288.768 */
	assert_int_equal(lora_airtime_us(11, 125000, 5, 16, 8, false), 659456);
	assert_int_equal(lora_airtime_us(11, 250000, 5, 16, 8, false), 288768);
	/* out of range */
	assert_int_equal(lora_airtime_us(13, 125000, 5, 16, 8, false), 0);
	assert_int_equal(lora_airtime_us(7, 125000, 9, 16, 8, false), 0);
	assert_int_equal(lora_airtime_us(7, 125000, 5, 256, 8, false), 0);
}

/* ---- the band table ---------------------------------------------------------- */

static const char EU868[] = "863.0-868.0:1% 868.0-868.6:1% 868.7-869.2:0.1% 869.4-869.65:10% "
			    "869.7-870.0:1%";

static void default_table_is_the_eu868_one(void **st)
{
	struct dc_table def, parsed;
	char err[128];
	static const uint64_t limits_ms[] = {36000, 36000, 3600, 360000, 36000};

	(void)st;
	dc_table_default(&def);
	assert_int_equal(dc_table_parse(EU868, &parsed, err, sizeof(err)), 0);
	assert_int_equal(def.n, 5);
	assert_int_equal(parsed.n, 5);
	assert_memory_equal(&def.band, &parsed.band, 5 * sizeof(def.band[0]));
	for (size_t i = 0; i < 5; i++)
		assert_int_equal(dc_band_limit_us(&def.band[i], HOUR), limits_ms[i] * 1000);
	assert_int_equal(def.band[3].lo_hz, 869400000);
	assert_int_equal(def.band[3].hi_hz, 869650000);
	assert_int_equal(def.band[3].ppm, 100000);
}

static void table_parse_variants_and_errors(void **st)
{
	struct dc_table t;
	char err[160];
	static const char *const bad[] = {
		"",
		"   ",
		"868.0-868.6",
		"868.0:1%",
		"868.0-868.6:",
		"868.6-868.0:1%",
		"868.0-868.0:1%",
		"868.0-868.6:0%",
		"868.0-868.6:100.5%",
		"868.0-868.6:1%%",
		"868.0-868.6:1%x",
		"868.0-868.6:1% 868.5-869.0:1%",
		"868.0000001-868.6:1%",
		"868.-868.6:1%",
		"-868.6:1%",
		"868.0-868.6:0.00001%",
		"5000-5001:1%",
		"1-2:1% 2-3:1% 3-4:1% 4-5:1% 5-6:1% 6-7:1% 7-8:1% 8-9:1% 9-10:1% 10-11:1% "
		"11-12:1% 12-13:1% 13-14:1% 14-15:1% 15-16:1% 16-17:1% 17-18:1%",
	};

	(void)st;
	assert_int_equal(dc_table_parse("868.0-868.6:1,869.4-869.65:10%,\t868.7-869.2:0.1", &t, err,
					sizeof(err)),
			 0);
	assert_int_equal(t.n, 3);
	assert_int_equal(t.band[0].ppm, 10000);
	assert_int_equal(t.band[2].ppm, 1000);
	assert_int_equal(t.band[2].lo_hz, 868700000);
	/* touching bands are fine, Hz precision */
	assert_int_equal(
		dc_table_parse("868-868.000001:100% 868.000001-869:0.0001%", &t, err, sizeof(err)),
		0);
	assert_int_equal(t.band[0].hi_hz, 868000001);
	assert_int_equal(t.band[1].ppm, 1);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		if (dc_table_parse(bad[i], &t, err, sizeof(err)) != -EINVAL)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_true(err[0] != '\0');
	}
	assert_int_equal(dc_table_parse(NULL, &t, err, sizeof(err)), -EINVAL);
}

static void band_of_a_channel(void **st)
{
	struct dc_table t;
	char name[DC_BAND_NAME_LEN], label[48];

	(void)st;
	dc_table_default(&t);
	assert_int_equal(dc_table_find(&t, 868100000, 125000), 1);
	assert_int_equal(dc_table_find(&t, 868500000, 125000), 1);
	assert_int_equal(dc_table_find(&t, 867100000, 125000), 0);
	assert_int_equal(dc_table_find(&t, 867900000, 125000), 0);
	assert_int_equal(dc_table_find(&t, 869525000, 125000), 3);
	assert_int_equal(dc_table_find(&t, 868800000, 125000), 2);
	/* the whole channel must fit: 868.0 at 125 kHz straddles two bands,
	 * 868.55 reaches beyond 868.6, 868.65 lies in the gap */
	assert_int_equal(dc_table_find(&t, 868000000, 125000), -1);
	assert_int_equal(dc_table_find(&t, 868550000, 125000), -1);
	assert_int_equal(dc_table_find(&t, 868650000, 0), -1);
	assert_int_equal(dc_table_find(&t, 869300000, 125000), -1);
	assert_int_equal(dc_table_find(&t, 902300000, 125000), -1);
	assert_int_equal(dc_table_find(&t, 0, 125000), -1);
	/* a point on the edge belongs to the first band that holds it */
	assert_int_equal(dc_table_find(&t, 868000000, 0), 0);
	dc_band_name(&t.band[3], name);
	assert_string_equal(name, "869400000-869650000");
	dc_band_label(&t.band[3], label, sizeof(label));
	assert_string_equal(label, "869.4-869.65 MHz 10%");
	dc_band_label(&t.band[2], label, sizeof(label));
	assert_string_equal(label, "868.7-869.2 MHz 0.1%");
	dc_band_label(&t.band[0], label, sizeof(label));
	assert_string_equal(label, "863.0-868.0 MHz 1%");
}

/* ---- the ledger ----------------------------------------------------------------- */

static struct dc_ledger *eu868_ledger(void)
{
	struct dc_table t;
	struct dc_ledger *l;

	dc_table_default(&t);
	l = dc_ledger_new(&t, HOUR);
	assert_non_null(l);
	return l;
}

static void budget_fills_and_says_when_it_frees(void **st)
{
	struct dc_ledger *l = eu868_ledger();
	const uint64_t t0 = 1000000;

	(void)st;
	/* 36 transmissions of 1 s, one a second: 36 s, the 1 % of an hour */
	for (unsigned i = 0; i < 36; i++) {
		assert_int_equal(dc_ledger_wait_ms(l, 1, t0 + i * 1000, 1000000), 0);
		assert_int_equal(dc_ledger_commit(l, 1, t0 + i * 1000, 1000000), 0);
	}
	assert_int_equal(dc_ledger_used_us(l, 1, t0 + 36000), 36000000);
	/* nothing more fits until the first one left the hour: it ended at
	 * t0 + 1 s, and a 1 s transmission starting at T ends at T + 1 s, so
	 * T + 1 s - 1 h must reach t0 + 1 s */
	assert_int_equal(dc_ledger_wait_ms(l, 1, t0 + 36000, 1000000), HOUR - 36000);
	/* 1.5 s more needs two of them to leave: the second ended at t0 + 2 s */
	assert_int_equal(dc_ledger_wait_ms(l, 1, t0 + 36000, 1500000), HOUR + 500 - 36000);
	/* at that moment it fits */
	assert_int_equal(dc_ledger_wait_ms(l, 1, t0 + HOUR, 1000000), 0);
	assert_int_equal(dc_ledger_wait_ms(l, 1, t0 + HOUR - 1, 1000000), 1);
	/* other bands and other ledgers are untouched */
	assert_int_equal(dc_ledger_used_us(l, 0, t0 + 36000), 0);
	assert_int_equal(dc_ledger_wait_ms(l, 0, t0 + 36000, 36000000), 0);
	/* the hour slides: an hour after the last one ended, nothing is used */
	assert_int_equal(dc_ledger_used_us(l, 1, t0 + 35000 + 1000 + HOUR - 1), 1000000);
	assert_int_equal(dc_ledger_used_us(l, 1, t0 + 36000 + HOUR), 0);
	assert_int_equal(dc_ledger_records(l, 1), 0);
	dc_ledger_free(l);
}

static void small_budget_band(void **st)
{
	struct dc_ledger *l = eu868_ledger();

	(void)st;
	/* 868.7-869.2 is 0.1 %: 3.6 s an hour; two SF12 frames of 1.155 s... */
	assert_int_equal(dc_ledger_commit(l, 2, 0, 1155072), 0);
	assert_int_equal(dc_ledger_commit(l, 2, 5000, 1155072), 0);
	assert_int_equal(dc_ledger_wait_ms(l, 2, 10000, 1155072), 0);
	assert_int_equal(dc_ledger_commit(l, 2, 10000, 1155072), 0);
	/* ...a fourth is 4.62 s > 3.6 s */
	assert_true(dc_ledger_wait_ms(l, 2, 15000, 1155072) > 3500000);
	/* one alone larger than the budget never fits */
	assert_int_equal(dc_ledger_wait_ms(l, 2, 0, 3600001), DC_NEVER);
	/* exactly the budget: all three must leave; the last ends at
	 * 11.156 s, so a 3.6 s transmission fits from 11.156 s + 1 h - 3.6 s */
	assert_int_equal(dc_ledger_wait_ms(l, 2, 0, 3600000), 11156 + HOUR - 3600);
	dc_ledger_free(l);
}

static void unknown_band(void **st)
{
	struct dc_ledger *l = eu868_ledger();

	(void)st;
	assert_int_equal(dc_ledger_commit(l, 5, 0, 1000), -EINVAL);
	assert_int_equal(dc_ledger_wait_ms(l, 5, 0, 1000), DC_NEVER);
	assert_int_equal(dc_ledger_used_us(l, 99, 0), 0);
	assert_int_equal(dc_ledger_records(l, 99), 0);
	assert_null(dc_ledger_new(dc_ledger_table(l), 0));
	dc_ledger_free(l);
	dc_ledger_free(NULL);
}

/* Past DC_RECORDS_MAX records merge, towards the later start: the ledger
 * stays bounded and never counts less than was sent. */
static void records_stay_bounded_and_conservative(void **st)
{
	struct dc_ledger *l = eu868_ledger();
	uint64_t sent = 0;

	(void)st;
	for (unsigned i = 0; i < 5 * DC_RECORDS_MAX; i++) {
		uint64_t a = 10000 + i % 7 * 1000;

		assert_int_equal(dc_ledger_commit(l, 3, (uint64_t)i * 100, a), 0);
		sent += a;
		assert_true(dc_ledger_records(l, 3) <= DC_RECORDS_MAX);
	}
	assert_int_equal(dc_ledger_records(l, 3), DC_RECORDS_MAX);
	assert_int_equal(dc_ledger_used_us(l, 3, 5 * DC_RECORDS_MAX * 100), sent);
	/* later, when the true use has half left the window, the merged
	 * records count at least what truly remains */
	{
		uint64_t at = HOUR + 2 * DC_RECORDS_MAX * 100 + 50, left = 0;

		for (unsigned i = 0; i < 5 * DC_RECORDS_MAX; i++) {
			uint64_t a = 10000 + i % 7 * 1000;

			if ((uint64_t)i * 100 + (a + 999) / 1000 + HOUR > at)
				left += a;
		}
		assert_true(left > 0 && left < sent);
		assert_true(dc_ledger_used_us(l, 3, at) >= left);
	}
	/* and nothing once the last one left the hour */
	assert_int_equal(dc_ledger_used_us(l, 3, HOUR + 5 * DC_RECORDS_MAX * 100 + 100), 0);
	dc_ledger_free(l);
}

/* A transmission's record counts in full while any of it lies in the
 * window; the waiting time is the same whether records came in order. */
static void out_of_order_commits(void **st)
{
	struct dc_table t;
	struct dc_ledger *a, *b;
	char err[64];

	(void)st;
	assert_int_equal(dc_table_parse("868.0-868.6:0.1%", &t, err, sizeof(err)), 0);
	a = dc_ledger_new(&t, HOUR);
	b = dc_ledger_new(&t, HOUR);
	assert_non_null(a);
	assert_non_null(b);
	/* RX2 of an earlier uplink may be committed after RX1 of a later one */
	dc_ledger_commit(a, 0, 2000, 1000000);
	dc_ledger_commit(a, 0, 1000, 1000000);
	dc_ledger_commit(a, 0, 3000, 1000000);
	dc_ledger_commit(b, 0, 1000, 1000000);
	dc_ledger_commit(b, 0, 2000, 1000000);
	dc_ledger_commit(b, 0, 3000, 1000000);
	/* 3 s used of 3.6 s: 1 s more needs the first (end 2 s) to leave */
	assert_int_equal(dc_ledger_wait_ms(a, 0, 4000, 1000000), 2000 + HOUR - 1000 - 4000);
	assert_int_equal(dc_ledger_wait_ms(a, 0, 4000, 1000000),
			 dc_ledger_wait_ms(b, 0, 4000, 1000000));
	assert_int_equal(dc_ledger_wait_ms(a, 0, 4000, 600000), 0);
	dc_ledger_free(a);
	dc_ledger_free(b);
}

/* The ledger survives a restart through its text form, in wall-clock
 * time: a fresh process (with another monotonic clock) sees the same
 * budget used. */
static void export_and_import_across_a_restart(void **st)
{
	struct dc_ledger *a = eu868_ledger(), *b = eu868_ledger(), *c;
	struct dc_table other;
	char err[64], *text = malloc(DC_EXPORT_MAX);
	const uint64_t mono = 50000000;	    /* the first process's clock */
	const int64_t wall = 1764146401000; /* 2025-11-26T08:40:01Z */
	long n;

	(void)st;
	assert_non_null(text);
	/* one that left the hour, three in it, in two bands */
	dc_ledger_commit(a, 1, mono - HOUR - 5000, 1000000);
	dc_ledger_commit(a, 1, mono - 600000, 1155072);
	dc_ledger_commit(a, 1, mono - 1000, 46336);
	dc_ledger_commit(a, 3, mono - 2000, 2000000);
	n = dc_ledger_export(a, mono, wall, text, DC_EXPORT_MAX);
	assert_true(n > 0 && (size_t)n == strlen(text));
	assert_non_null(strstr(text, "868000000 868600000 1764145801000 1764145802156 1155072\n"));
	assert_null(strstr(text, " 1000000\n")); /* the old one is not written */
	/* 10 s later, in a process whose clock started 3 s ago: the records
	 * from before its zero count from its zero, i.e. a little longer */
	assert_int_equal(dc_ledger_import(b, text, (size_t)n, 3000, wall + 10000), 3);
	assert_int_equal(dc_ledger_used_us(b, 1, 3000), 1155072 + 46336);
	assert_int_equal(dc_ledger_used_us(b, 3, 3000), 2000000);
	assert_int_equal(dc_ledger_wait_ms(b, 1, 3000, 34700000), 0);
	assert_true(dc_ledger_wait_ms(b, 1, 3000, 34900000) > 0);
	/* in a process with a longer clock, times map exactly */
	c = eu868_ledger();
	assert_int_equal(dc_ledger_import(c, text, (size_t)n, 90000000, wall + 10000), 3);
	assert_int_equal(dc_ledger_wait_ms(c, 1, 90000000, 34900000),
			 (uint64_t)(HOUR - 600000 + 1156 - 10000 - 34900));
	assert_int_equal(dc_ledger_used_us(c, 1, 90000000 + HOUR - 600000 + 1156 - 10000), 46336);
	dc_ledger_free(c);
	/* an hour later nothing is taken */
	c = eu868_ledger();
	assert_int_equal(dc_ledger_import(c, text, (size_t)n, 3000, wall + HOUR + 2000), 0);
	dc_ledger_free(c);
	/* another table takes only the bands it has */
	assert_int_equal(dc_table_parse("869.4-869.65:10%", &other, err, sizeof(err)), 0);
	c = dc_ledger_new(&other, HOUR);
	assert_non_null(c);
	assert_int_equal(dc_ledger_import(c, text, (size_t)n, 3000, wall + 10000), 1);
	assert_int_equal(dc_ledger_used_us(c, 0, 3000), 2000000);
	dc_ledger_free(c);
	/* malformed text: nothing taken */
	c = eu868_ledger();
	assert_int_equal(dc_ledger_import(c, "868000000 868600000 1 2\n", 24, 3000, wall), -EINVAL);
	assert_int_equal(dc_ledger_import(c, "868000000 868600000 5 2 7\n", 26, 3000, wall),
			 -EINVAL);
	strcpy(text + n, "garbage\n");
	assert_int_equal(dc_ledger_import(c, text, strlen(text), 3000, wall + 10000), -EINVAL);
	assert_int_equal(dc_ledger_used_us(c, 1, 3000), 0);
	assert_int_equal(dc_ledger_import(c, "", 0, 3000, wall), 0);
	dc_ledger_free(c);
	/* a buffer too small */
	assert_int_equal(dc_ledger_export(a, mono, wall, text, 20), -ENOBUFS);
	dc_ledger_free(a);
	dc_ledger_free(b);
	free(text);
}

/* Many records go out bounded per band, merged without losing airtime. */
static void export_is_bounded(void **st)
{
	struct dc_ledger *a = eu868_ledger(), *b = eu868_ledger();
	char *text = malloc(DC_EXPORT_MAX);
	uint64_t sent = 0;
	long n;
	int lines = 0;

	(void)st;
	assert_non_null(text);
	for (size_t band = 0; band < 5; band++) {
		for (unsigned i = 0; i < 300; i++) {
			dc_ledger_commit(a, band, 100000 + i * 10, 5000 + i);
			sent += 5000 + i;
		}
	}
	n = dc_ledger_export(a, 200000, 1764146401000, text, DC_EXPORT_MAX);
	assert_true(n > 0 && n < DC_EXPORT_MAX);
	for (long i = 0; i < n; i++)
		lines += text[i] == '\n';
	assert_int_equal(lines, 5 * DC_EXPORT_PER_BAND);
	assert_int_equal(dc_ledger_import(b, text, (size_t)n, 200000, 1764146401000), lines);
	{
		uint64_t got = 0;

		for (size_t band = 0; band < 5; band++)
			got += dc_ledger_used_us(b, band, 200000);
		assert_int_equal(got, sent);
	}
	dc_ledger_free(a);
	dc_ledger_free(b);
	free(text);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(airtime_published_values),
		cmocka_unit_test(airtime_downlinks_without_crc),
		cmocka_unit_test(default_table_is_the_eu868_one),
		cmocka_unit_test(table_parse_variants_and_errors),
		cmocka_unit_test(band_of_a_channel),
		cmocka_unit_test(budget_fills_and_says_when_it_frees),
		cmocka_unit_test(small_budget_band),
		cmocka_unit_test(unknown_band),
		cmocka_unit_test(records_stay_bounded_and_conservative),
		cmocka_unit_test(out_of_order_commits),
		cmocka_unit_test(export_and_import_across_a_restart),
		cmocka_unit_test(export_is_bounded),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
