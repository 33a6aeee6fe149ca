/* SPDX-License-Identifier: MIT */
/* The former jansson reader of PUSH_DATA JSON, the reference of
 * fuzz_gwmp_json.c (test code). */
#ifndef LABGW_FUZZ_GWMP_PUSH_JANSSON_H
#define LABGW_FUZZ_GWMP_PUSH_JANSSON_H

#include "../../plugins/lorawan/gwmp.h"

int gwmp_push_jansson(const uint8_t *json, size_t len, struct gwmp_push *out, const char **why);

#endif
