/* SPDX-License-Identifier: MIT */
/*
 * An sd-bus connection of a radio module, driven by the host's loop: the
 * connection's fd is a host fd watch and sd-bus's next deadline a host
 * timer; each turn processes a bounded number of messages; optionally reads
 * come in bursts; a lost connection is opened again after a delay; and the
 * one service the module talks to (bluetoothd, ModemManager) is followed as
 * it comes and goes on the bus.
 *
 * The owner embeds a struct busloop, fills the fields above "state", and
 * calls busloop_open from its own open function (which the reopen callback
 * calls too). After queuing calls outside a bus callback it calls
 * busloop_arm, so that sd-bus's wish to write is watched.
 */
#ifndef LABGW_BUSLOOP_H
#define LABGW_BUSLOOP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <systemd/sd-bus.h>

#include <labgw/plugin.h>

struct busloop {
	const struct labgw_host *h;
	struct labgw_radio *r;
	void *ud; /* for the callbacks */
	/* 0: read as messages come. Else, once the bus had something, the
	 * next read waits this long and takes what came meanwhile at once:
	 * one wakeup (and one burst of frames) for many signals. */
	uint64_t hold_ms;
	uint64_t reconnect_ms;
	const char *service; /* the well-known name followed, e.g. "org.bluez" */
	/* The service is on the bus as `owner`: at open (restart false) or
	 * when it came back (restart true). */
	void (*appeared)(void *ud, const char *owner, bool restart);
	/* The service left the bus (b->owner is "" again). */
	void (*gone)(void *ud);
	/* At open: the service is not on the bus. */
	void (*absent)(void *ud);
	/* The connection is closing (lost, or closed by the owner); the bus is
	 * still valid: drop what depends on it. Optional. */
	void (*closing)(void *ud);
	/* After busloop_lost closed the connection. Optional. */
	void (*lost)(void *ud);
	/* After a turn that processed messages. Optional. */
	void (*processed)(void *ud);
	/* The reconnect delay is over: open again (0 also when the owner no
	 * longer wants to); negative: try again after the delay. */
	int (*reopen)(void *ud);

	/* state */
	sd_bus *bus;
	uint64_t watch, timer, timer_at, hold_timer, reconnect;
	unsigned watch_events;
	bool holding;
	char owner[64]; /* the service's unique name; "" while it is absent */
};

/* Connect to the system bus (named `description` in its logs), add the
 * signal matches (handlers[i] for matches[i], userdata the owner's ud) and
 * ask who owns the service: the matches are in place before the answer, so
 * nothing the service does in between is missed. */
int busloop_open(struct busloop *b, const char *description, const char *const *matches,
		 const sd_bus_message_handler_t *handlers, size_t n);
/* Whether m was sent by the service (as it is now on the bus). */
bool busloop_from_service(const struct busloop *b, sd_bus_message *m);
/* Watch for what sd-bus waits for next: fd events and its deadline. */
void busloop_arm(struct busloop *b);
/* Close the connection (closing callback first); no reconnect. */
void busloop_close(struct busloop *b);
/* The connection failed with err: warn, close, and reopen after the delay. */
void busloop_lost(struct busloop *b, int err);
/* Close and forget any pending reconnect (the owner stops). */
void busloop_stop(struct busloop *b);

#endif
