/* libFuzzer target: the configuration file (daemon/config.c). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int quiet;
	if (!quiet) {
		log_set_level(LOG_LVL_ERROR - 1); /* parse errors are expected */
		quiet = 1;
	}
	if (size > 1 << 20)
		return 0;
	FILE *fp = fmemopen((void *)data, size ? size : 1, "r");
	if (!fp)
		return 0;
	struct config *cfg = NULL;
	if (config_load_stream(fp, "/fuzz/labgw.conf", &cfg) == 0)
		config_free(cfg);
	fclose(fp);
	return 0;
}
