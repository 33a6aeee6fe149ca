/* systemd integration: sd_notify READY/RELOADING/STOPPING/STATUS and watchdog
 * pings from the loop, active only when NOTIFY_SOCKET (and WATCHDOG_USEC)
 * are set. */
#ifndef LABGW_NOTIFY_H
#define LABGW_NOTIFY_H

#include <uv.h>

struct notify;

struct notify *notify_new(uv_loop_t *loop);
/* Starts watchdog pings at half the interval systemd asked for. */
void notify_start(struct notify *n);
void notify_ready(struct notify *n, const char *status);
void notify_reloading(struct notify *n);
void notify_stopping(struct notify *n);
/* Stops the pings; the object is freed once its timer closed. */
void notify_free(struct notify *n);

#endif
