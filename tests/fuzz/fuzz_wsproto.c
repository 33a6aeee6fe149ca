/* libFuzzer target: a WebSocket client message (daemon/wsproto.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "wsproto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ws_op op;
	json_t *id = NULL;
	char err[256];
	if (size > 65536)
		return 0; /* the session refuses larger messages before parsing */
	if (wsproto_parse((const char *)data, size, &op, &id, err, sizeof(err)) == 0) {
		size_t len;
		unsigned char *b = wsproto_res_ok(op.id, NULL, 16, &len);
		free(b);
		if (op.topic) {
			b = wsproto_frame(op.topic, "{}", 2, 16, &len);
			free(b);
		}
		wsproto_op_release(&op);
	} else {
		size_t len;
		unsigned char *b = wsproto_res_error(id, "BAD_REQUEST", err, -1, 16, &len);
		free(b);
	}
	json_decref(id);
	return 0;
}
