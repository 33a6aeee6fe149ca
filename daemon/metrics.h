/* Prometheus text exposition of the daemon's counters, for GET /metrics. */
#ifndef LABGW_METRICS_H
#define LABGW_METRICS_H

#include <stddef.h>

struct labgwd;

/* Caller frees; NULL when out of memory. */
char *metrics_render(struct labgwd *d, size_t *len);

#endif
