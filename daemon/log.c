#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>
#include <unistd.h>

static enum log_level cur_level = LOG_LVL_INFO;
static bool journal;
static log_hook_fn hook;
static void *hook_data;

static const char *const level_names[] = {
	[LOG_LVL_ERROR] = "error", [LOG_LVL_WARNING] = "warning", [LOG_LVL_NOTICE] = "notice",
	[LOG_LVL_INFO] = "info",   [LOG_LVL_DEBUG] = "debug",
};

/* systemd sets JOURNAL_STREAM=dev:ino of the stream it connected to stderr */
void log_init(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	struct stat st;
	unsigned long long dev, ino;
	journal = js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 &&
		  fstat(STDERR_FILENO, &st) == 0 && (unsigned long long)st.st_dev == dev &&
		  (unsigned long long)st.st_ino == ino;
}

bool log_to_journal(void)
{
	return journal;
}

void log_set_level(enum log_level level)
{
	cur_level = level;
}

enum log_level log_get_level(void)
{
	return cur_level;
}

int log_level_parse(const char *s)
{
	for (int l = LOG_LVL_ERROR; l <= LOG_LVL_DEBUG; l++)
		if (!strcasecmp(s, level_names[l]))
			return l;
	return -EINVAL;
}

void log_set_hook(log_hook_fn fn, void *user_data)
{
	hook = fn;
	hook_data = user_data;
}

void log_vmsg(enum log_level level, const char *fmt, va_list ap)
{
	if (level > cur_level)
		return;
	char msg[2048];
	vsnprintf(msg, sizeof(msg), fmt, ap);
	if (hook)
		hook(level, msg, hook_data);
	if (journal) {
		sd_journal_send("MESSAGE=%s", msg, "PRIORITY=%d", (int)level,
				"SYSLOG_IDENTIFIER=labgwd", NULL);
		return;
	}
	struct timespec ts;
	struct tm tm;
	char tbuf[32];
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(tbuf, sizeof(tbuf), "%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ld labgwd %s: %s\n", tbuf, ts.tv_nsec / 1000000, level_names[level],
		msg);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_vmsg(level, fmt, ap);
	va_end(ap);
}
