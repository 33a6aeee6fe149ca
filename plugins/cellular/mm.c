/* SPDX-License-Identifier: MIT */
#include "mm.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define N(a) (sizeof(a) / sizeof((a)[0]))

const char *mm_state_name(int32_t state)
{
	static const char *const names[] = {
		"unknown", "initializing", "locked",	 "disabled",	  "disabling",	"enabling",
		"enabled", "searching",	   "registered", "disconnecting", "connecting", "connected",
	};

	if (state == -1)
		return "failed";
	if (state < 0 || (size_t)state >= N(names))
		return NULL;
	return names[state];
}

const char *mm_failed_reason_name(uint32_t reason)
{
	static const char *const names[] = {
		"none",
		"unknown",
		"sim-missing",
		"sim-error",
		"unknown-capabilities",
		"esim-without-profiles",
	};

	return reason < N(names) ? names[reason] : NULL;
}

const char *mm_registration_name(uint32_t reg)
{
	static const char *const names[] = {
		"idle",
		"home",
		"searching",
		"denied",
		"unknown",
		"roaming",
		"home-sms-only",
		"roaming-sms-only",
		"emergency-only",
		"home-csfb-not-preferred",
		"roaming-csfb-not-preferred",
		"attached-rlos",
	};

	return reg < N(names) ? names[reg] : NULL;
}

enum mm_family mm_family_of(uint32_t at)
{
	if (at & MM_AT_5GNR)
		return MM_FAMILY_5GNR;
	if (at & (MM_AT_LTE | MM_AT_LTE_CAT_M | MM_AT_LTE_NB_IOT))
		return MM_FAMILY_LTE;
	if (at & (MM_AT_UMTS | MM_AT_HSDPA | MM_AT_HSUPA | MM_AT_HSPA | MM_AT_HSPA_PLUS))
		return MM_FAMILY_UMTS;
	if (at & (MM_AT_GSM | MM_AT_GSM_COMPACT | MM_AT_GPRS | MM_AT_EDGE))
		return MM_FAMILY_GSM;
	if (at & (MM_AT_1XRTT | MM_AT_EVDO0 | MM_AT_EVDOA | MM_AT_EVDOB))
		return MM_FAMILY_CDMA;
	return MM_FAMILY_NONE;
}

const char *mm_family_name(enum mm_family f)
{
	switch (f) {
	case MM_FAMILY_NONE:
		return NULL;
	case MM_FAMILY_GSM:
		return "gsm";
	case MM_FAMILY_UMTS:
		return "umts";
	case MM_FAMILY_LTE:
		return "lte";
	case MM_FAMILY_5GNR:
		return "5gnr";
	case MM_FAMILY_CDMA:
		return "cdma";
	}
	return NULL;
}

const char *mm_family_signal_prop(enum mm_family f)
{
	switch (f) {
	case MM_FAMILY_NONE:
		return NULL;
	case MM_FAMILY_GSM:
		return "Gsm";
	case MM_FAMILY_UMTS:
		return "Umts";
	case MM_FAMILY_LTE:
		return "Lte";
	case MM_FAMILY_5GNR:
		return "Nr5g";
	case MM_FAMILY_CDMA:
		return "Cdma";
	}
	return NULL;
}

size_t mm_access_tech_names(uint32_t at, const char **names, size_t cap)
{
	static const char *const bits[] = {
		"pots",	 "gsm",	  "gsm-compact", "gprs",  "edge",      "umts",
		"hsdpa", "hsupa", "hspa",	 "hspa+", "1xrtt",     "evdo0",
		"evdoa", "evdob", "lte",	 "5gnr",  "lte-cat-m", "lte-nb-iot",
	};
	size_t n = 0;

	for (size_t i = 0; i < N(bits) && n < cap; i++)
		if (at & (1u << i))
			names[n++] = bits[i];
	return n;
}

bool mm_signal_take(struct mm_signal *s, const char *key, double v)
{
	static const struct {
		const char *key;
		size_t has, val;
	} keys[] = {
#define K(name) {#name, offsetof(struct mm_signal, has_##name), offsetof(struct mm_signal, name)}
		K(rssi), K(rscp), K(ecio), K(rsrp), K(rsrq), K(snr), K(sinr), K(io),
#undef K
	};

	if (!key || !isfinite(v) || v < -300 || v > 300)
		return false;
	for (size_t i = 0; i < N(keys); i++) {
		if (strcmp(key, keys[i].key))
			continue;
		*(bool *)((char *)s + keys[i].has) = true;
		*(double *)((char *)s + keys[i].val) = v;
		return true;
	}
	return false;
}

bool mm_signal_empty(const struct mm_signal *s)
{
	return !(s->has_rssi || s->has_rscp || s->has_ecio || s->has_rsrp || s->has_rsrq ||
		 s->has_snr || s->has_sinr || s->has_io);
}

/* n decimal digits at p into *out; false when any is not a digit */
static bool digits(const char *p, int n, int *out)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return false;
		v = v * 10 + (p[i] - '0');
	}
	*out = v;
	return true;
}

static bool leap(int y)
{
	return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

static int days_in(int y, int m)
{
	static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};

	return m == 2 && leap(y) ? 29 : d[m - 1];
}

/* days since 1970-01-01 of a proleptic Gregorian date */
static int64_t days_from_civil(int y, int m, int d)
{
	int64_t era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int format_utc(int y, int mo, int d, int h, int mi, int s, int off_min,
		      char out[MM_TIME_LEN])
{
	int64_t t;
	struct tm tm;
	time_t tt;

	if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > days_in(y, mo) || h > 23 ||
	    mi > 59 || s > 60 || off_min < -24 * 60 || off_min > 24 * 60)
		return -EINVAL;
	if (s == 60)
		s = 59; /* a leap second: the last whole second before it */
	t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + s - (int64_t)off_min * 60;
	if (t < 0)
		return -EINVAL;
	tt = (time_t)t;
	if (!gmtime_r(&tt, &tm))
		return -EINVAL;
	snprintf(out, MM_TIME_LEN, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	return 0;
}

/* "YYMMDDhhmmss+zz" / "-zz", zz in quarter hours (3GPP TS 23.040 SCTS) */
static int legacy_ts(const char *in, size_t n, char out[MM_TIME_LEN])
{
	int y, mo, d, h, mi, s, q;

	if (n != 15 || (in[12] != '+' && in[12] != '-') || !digits(in, 2, &y) ||
	    !digits(in + 2, 2, &mo) || !digits(in + 4, 2, &d) || !digits(in + 6, 2, &h) ||
	    !digits(in + 8, 2, &mi) || !digits(in + 10, 2, &s) || !digits(in + 13, 2, &q) || q > 96)
		return -EINVAL;
	return format_utc(2000 + y, mo, d, h, mi, s, (in[12] == '-' ? -15 : 15) * q, out);
}

int mm_timestamp_utc(const char *in, char out[MM_TIME_LEN])
{
	int y, mo, d, h, mi, s = 0, oh = 0, om = 0, sign = 1;
	size_t n, i;

	if (!in)
		return -EINVAL;
	n = strnlen(in, 64);
	if (n >= 64)
		return -EINVAL;
	if (n == 15 && in[6] != '-')
		return legacy_ts(in, n, out);
	/* YYYY-MM-DDThh:mm */
	if (n < 16 || !digits(in, 4, &y) || in[4] != '-' || !digits(in + 5, 2, &mo) ||
	    in[7] != '-' || !digits(in + 8, 2, &d) || (in[10] != 'T' && in[10] != ' ') ||
	    !digits(in + 11, 2, &h) || in[13] != ':' || !digits(in + 14, 2, &mi))
		return -EINVAL;
	i = 16;
	if (i < n && in[i] == ':') {
		if (i + 3 > n || !digits(in + i + 1, 2, &s))
			return -EINVAL;
		i += 3;
		if (i < n && (in[i] == '.' || in[i] == ',')) {
			size_t k = ++i;

			while (i < n && in[i] >= '0' && in[i] <= '9')
				i++;
			if (i == k || i - k > 9)
				return -EINVAL;
		}
	}
	if (i == n) {
		return -EINVAL; /* no offset: local time of somewhere */
	} else if (in[i] == 'Z' && i + 1 == n) {
		/* UTC */
	} else if (in[i] == '+' || in[i] == '-') {
		size_t rest = n - i - 1;
		const char *z = in + i + 1;

		sign = in[i] == '-' ? -1 : 1;
		if (rest == 2 && digits(z, 2, &oh)) {
			om = 0;
		} else if (rest == 4 && digits(z, 2, &oh) && digits(z + 2, 2, &om)) {
		} else if (rest == 5 && z[2] == ':' && digits(z, 2, &oh) && digits(z + 3, 2, &om)) {
		} else {
			return -EINVAL;
		}
		if (oh > 23 || om > 59)
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	return format_utc(y, mo, d, h, mi, s, sign * (oh * 60 + om), out);
}

bool mm_is_e164(const char *s)
{
	size_t n;

	if (!s || s[0] != '+' || s[1] < '1' || s[1] > '9')
		return false;
	n = strlen(s);
	if (n < 8 || n > 16)
		return false;
	for (size_t i = 2; i < n; i++)
		if (s[i] < '0' || s[i] > '9')
			return false;
	return true;
}

int mm_sender(const char *in, char out[MM_NUMBER_MAX])
{
	char dig[MM_NUMBER_MAX];
	size_t nd = 0, n, o = 0;
	bool intl = false, number = true, lead = true;

	if (!in)
		return -EINVAL;
	n = strnlen(in, 256);
	/* a phone number: digits and separators, '+' (or "00") in front */
	for (size_t i = 0; i < n && number; i++) {
		char c = in[i];

		if (c >= '0' && c <= '9') {
			if (nd + 1 >= sizeof(dig)) {
				number = false;
				break;
			}
			dig[nd++] = c;
			lead = false;
		} else if (c == '+' && lead && !intl) {
			intl = true;
		} else if (c == ' ' || c == '-' || c == '.' || c == '(' || c == ')') {
			continue;
		} else {
			number = false;
		}
	}
	if (number && nd) {
		size_t skip = 0;

		if (!intl && nd > 2 && dig[0] == '0' && dig[1] == '0') {
			intl = true;
			skip = 2;
		}
		dig[nd] = 0;
		if (intl && nd - skip >= 7 && nd - skip <= 15 && dig[skip] != '0') {
			snprintf(out, MM_NUMBER_MAX, "+%s", dig + skip);
			return 1;
		}
		snprintf(out, MM_NUMBER_MAX, "%s", dig);
		return 0;
	}
	/* an alphanumeric sender: printable ASCII kept, no topic wildcards */
	for (size_t i = 0; i < n && o + 1 < MM_NUMBER_MAX; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 0x20 || c > 0x7e || c == '/' || c == '+' || c == '#')
			continue;
		if (c == ' ' && (o == 0 || out[o - 1] == ' '))
			continue;
		out[o++] = (char)c;
	}
	while (o && out[o - 1] == ' ')
		o--;
	out[o] = 0;
	return o ? 0 : -EINVAL;
}
