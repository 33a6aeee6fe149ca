/* Logging with fixed level meanings (CONVENTIONS.md): to the journal when
 * stderr is connected to it (JOURNAL_STREAM), else to stderr. Never pass
 * secrets (keys, session keys) to these functions. */
#ifndef LABGW_LOG_H
#define LABGW_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum log_level {
	LOG_LVL_ERROR = 3,
	LOG_LVL_WARNING = 4,
	LOG_LVL_NOTICE = 5,
	LOG_LVL_INFO = 6,
	LOG_LVL_DEBUG = 7,
};

/* Picks the destination (journal or stderr) from the environment. */
void log_init(void);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* "error", "warning", "notice", "info", "debug" → level; -EINVAL otherwise */
int log_level_parse(const char *s);
bool log_to_journal(void);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void log_vmsg(enum log_level level, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

/* Tests: every message at or above the current level is also passed here. */
typedef void (*log_hook_fn)(enum log_level level, const char *msg, void *user_data);
void log_set_hook(log_hook_fn fn, void *user_data);

#define log_error(...)	 log_msg(LOG_LVL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LVL_WARNING, __VA_ARGS__)
#define log_notice(...)	 log_msg(LOG_LVL_NOTICE, __VA_ARGS__)
#define log_info(...)	 log_msg(LOG_LVL_INFO, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_LVL_DEBUG)                                              \
			log_msg(LOG_LVL_DEBUG, __VA_ARGS__);                                       \
	} while (0)

#endif
