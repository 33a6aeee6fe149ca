/* libFuzzer target: a replay upload (JSON Lines, daemon/capture.c), and the
 * pcapng conversion of the frames it holds. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "capture.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[160];
	if (size > 65536)
		return 0; /* the REST body limit refuses larger uploads first */
	json_t *a = capture_jsonl_parse((const char *)data, size, 100, err, sizeof(err));
	if (!a)
		return 0;
	struct strbuf sb;
	strbuf_init(&sb, 256);
	capture_pcapng_start(&sb);
	size_t i;
	json_t *rec;
	json_array_foreach(a, i, rec)
	{
		capture_pcapng_frame(&sb, json_object_get(rec, "frame"));
	}
	strbuf_release(&sb);
	json_decref(a);
	return 0;
}
