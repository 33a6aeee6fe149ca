/* SPDX-License-Identifier: MIT */
/*
 * What the plugin-host test modules record about themselves, per radio
 * name. Each module exports one `struct probe` as LABGW_TEST_PROBE; the
 * test opens the same .so with dlopen and reads it through dlsym (the host
 * loads modules RTLD_LOCAL, so every module has its own copy).
 */
#ifndef LABGW_TEST_PROBE_H
#define LABGW_TEST_PROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "labgw/plugin.h"

#define LABGW_TEST_PROBE "labgw_test_probe"
#define PROBE_RADIOS	 8

struct probe_radio {
	char name[33];
	const struct labgw_host *host; /* set in init */
	struct labgw_radio *radio;     /* valid from init until exit */
	char gw[33];
	uint64_t interval_ms;
	int inits, starts, stops, exits;
	bool running;	      /* between a successful start and stop */
	int ticks;	      /* timer callbacks */
	int ticks_after_stop; /* must stay 0: the host cancels what is left */
	int fd_events;
	int fd_events_after_stop;
	int publish_rc; /* last result of host->publish */
	int commands;
};

struct probe {
	struct probe_radio r[PROBE_RADIOS];
};

/* The slot of radio `name`, created on first use (NULL when full). */
static inline struct probe_radio *probe_slot(struct probe *p, const char *name)
{
	for (int i = 0; i < PROBE_RADIOS; i++)
		if (!strcmp(p->r[i].name, name))
			return &p->r[i];
	for (int i = 0; i < PROBE_RADIOS; i++) {
		if (!p->r[i].name[0]) {
			strncpy(p->r[i].name, name, sizeof(p->r[i].name) - 1);
			return &p->r[i];
		}
	}
	return NULL;
}

extern struct probe labgw_test_probe;
#define PROBE_DEFINE __attribute__((visibility("default"))) struct probe labgw_test_probe

#endif
