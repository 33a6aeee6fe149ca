#include "topic.h"

#include <string.h>

static bool topic_check(const char *s, bool filter)
{
	size_t len = strlen(s);
	if (len == 0 || len > TOPIC_MAX_LEN)
		return false;
	int levels = 1;
	const char *level = s;
	for (const char *p = s;; p++) {
		unsigned char c = (unsigned char)*p;
		if (c == '/' || c == '\0') {
			size_t n = (size_t)(p - level);
			if (filter && memchr(level, '#', n) && (n != 1 || c != '\0'))
				return false; /* '#' alone, and only as the last level */
			if (filter && memchr(level, '+', n) && n != 1)
				return false;
			if (c == '\0')
				break;
			if (++levels > TOPIC_MAX_LEVELS)
				return false;
			level = p + 1;
			continue;
		}
		if (c < 0x20 || c == 0x7f)
			return false;
		if (!filter && (c == '+' || c == '#'))
			return false;
	}
	return true;
}

bool topic_name_valid(const char *topic)
{
	return topic_check(topic, false);
}

bool topic_filter_valid(const char *filter)
{
	return topic_check(filter, true);
}

bool topic_match(const char *f, const char *t)
{
	/* topics starting with '$' are not matched by a leading wildcard */
	if (*t == '$' && (*f == '+' || *f == '#'))
		return false;
	for (;;) {
		if (f[0] == '#' && f[1] == '\0')
			return true;
		if (f[0] == '+' && (f[1] == '/' || f[1] == '\0')) {
			const char *slash = strchr(t, '/');
			f++;
			if (!slash) {
				t += strlen(t);
			} else {
				t = slash;
			}
		} else {
			while (*f && *f != '/' && *f == *t)
				f++, t++;
			if ((*f && *f != '/') || (*t && *t != '/'))
				return false;
		}
		/* both at '/' or '\0' */
		if (*f == '\0' && *t == '\0')
			return true;
		if (*f == '/' && *t == '\0')
			return f[1] == '#' && f[2] == '\0'; /* "a/#" matches "a" */
		if (*f != '/' || *t != '/')
			return false;
		f++, t++;
	}
}

int topic_split(char *buf, const char **levels, int max)
{
	int n = 0;
	char *p = buf;
	for (;;) {
		if (n == max)
			return -1;
		levels[n++] = p;
		char *slash = strchr(p, '/');
		if (!slash)
			return n;
		*slash = '\0';
		p = slash + 1;
	}
}

bool topic_filter_within(const char *filter, const char *prefix)
{
	size_t pl = strlen(prefix);
	/* literal prefix: the filter must spell it out, wildcards inside the
	 * prefix would reach other trees */
	if (strncmp(filter, prefix, pl))
		return false;
	return true;
}

int topic_escape_level(const char *s, char *out, size_t outlen)
{
	size_t n = 0;
	for (; *s; s++) {
		const char *esc = NULL;
		switch (*s) {
		case '%':
			esc = "%25";
			break;
		case '/':
			esc = "%2F";
			break;
		case '+':
			esc = "%2B";
			break;
		case '#':
			esc = "%23";
			break;
		}
		size_t k = esc ? 3 : 1;
		if (n + k >= outlen)
			return -1;
		if (esc)
			memcpy(out + n, esc, 3);
		else
			out[n] = *s;
		n += k;
	}
	if (n >= outlen)
		return -1;
	out[n] = '\0';
	return (int)n;
}
