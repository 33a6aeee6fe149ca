/* libFuzzer target: topic names and filters from clients (daemon/topic.c).
 * The input is "filter\0topic". */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "topic.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[2 * TOPIC_MAX_LEN + 4];
	if (size >= sizeof(buf))
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	const char *filter = buf;
	const char *topic = memchr(buf, '\0', size) ? buf + strlen(buf) + 1 : "";
	bool fv = topic_filter_valid(filter);
	bool tv = topic_name_valid(topic);
	if (fv && tv)
		(void)topic_match(filter, topic);
	if (tv && topic_match(topic, topic) != true)
		__builtin_trap(); /* a valid name always matches itself */
	char esc[3 * TOPIC_MAX_LEN + 1];
	(void)topic_escape_level(topic, esc, sizeof(esc));
	char copy[TOPIC_MAX_LEN + 1];
	const char *levels[TOPIC_MAX_LEVELS];
	if (tv) {
		strcpy(copy, topic);
		(void)topic_split(copy, levels, TOPIC_MAX_LEVELS);
	}
	return 0;
}
