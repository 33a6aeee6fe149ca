/* libFuzzer target: values clients send to the sandbox API and that no
 * other target parses — times, keys, rights lists, frame ids — and the
 * privacy filter over decoded frame data. The first byte picks the parser. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "history.h"
#include "privacy.h"
#include "sandbox.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1 || size > 4096)
		return 0;
	char *s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	switch (data[0] % 5) {
	case 0: {
		int64_t us;
		(void)time_parse_rfc3339(s, &us);
		break;
	}
	case 1: {
		char id[33];
		const char *secret, *why;
		if (auth_split_key(s, id, &secret, &why) == 0 && strlen(id) > 32)
			__builtin_trap();
		break;
	}
	case 2: {
		json_t *j = json_loads(s, 0, NULL);
		uint32_t r, t;
		struct api_error err;
		(void)rights_parse(j, &r, &t, &err);
		json_t *back = rights_to_json(r, t);
		json_decref(back);
		json_decref(j);
		break;
	}
	case 3: {
		uint64_t seq;
		(void)history_parse_id("lab1", s, &seq);
		break;
	}
	case 4: {
		/* "type\njson" */
		char *nl = strchr(s, '\n');
		if (!nl)
			break;
		*nl = '\0';
		json_t *j = json_loads(nl + 1, 0, NULL);
		json_t *out = privacy_filter_data(s, j);
		json_decref(out);
		json_decref(j);
		break;
	}
	}
	free(s);
	return 0;
}
