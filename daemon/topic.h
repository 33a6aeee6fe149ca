/* MQTT-style topic names and filters (pure). Levels are separated by '/';
 * in a filter, '+' matches one whole level and a final '#' matches any number
 * of levels, including none ("a/#" matches "a"). */
#ifndef LABGW_TOPIC_H
#define LABGW_TOPIC_H

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_MAX_LEN	 1024
#define TOPIC_MAX_LEVELS 32

/* A name a message may be published to: 1..TOPIC_MAX_LEN bytes, at most
 * TOPIC_MAX_LEVELS levels, no wildcards, no control characters. */
bool topic_name_valid(const char *topic);
/* A subscription filter: as a name, but '+' and a final '#' allowed as whole
 * levels. */
bool topic_filter_valid(const char *filter);
bool topic_match(const char *filter, const char *topic);

/* Split into at most `max` levels pointing into `buf` (a copy the caller
 * owns, modified in place). Returns the number of levels or -1 if more. */
int topic_split(char *buf, const char **levels, int max);

/* true when `filter` spells out `prefix` literally, a prefix that ends with
 * '/': it then matches only topics in that subtree (and, through a final
 * "/#", the subtree's root itself), so "labgw/v1/sbx/bob/" never admits
 * "bobby". */
bool topic_filter_within(const char *filter, const char *prefix);

/* Write `s` as one topic level: '%', '/', '+' and '#' become %25, %2F, %2B,
 * %23 (so "+4917..." is the level "%2B4917..."). Returns the length, or -1
 * if it does not fit in outlen (NUL included). */
int topic_escape_level(const char *s, char *out, size_t outlen);

#endif
