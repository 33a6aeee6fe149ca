/* A private mosquitto for `[mqtt] broker = spawn`: configured in
 * {state_dir}/mosquitto/, listening on [mqtt] spawn_listen (and, if set,
 * spawn_listen_tls and spawn_listen_ws), supervised (restarted with backoff
 * when it exits), its output logged, stopped with the daemon.
 *
 * It runs mosquitto's dynamic-security plugin with anonymous access off.
 * Its admin login (user "labgwd", a random password kept in
 * {state_dir}/mosquitto/admin.pw, 0600) is made on the first start with
 * `mosquitto_ctrl dynsec init`; the bridge logs in with it and keeps the
 * plugin's clients and roles in step with the keys (dynsec.h). */
#ifndef LABGW_BROKER_H
#define LABGW_BROKER_H

#include <stdbool.h>
#include <stdint.h>

struct labgwd;
struct broker;

struct broker *broker_new(struct labgwd *d);
/* Where the bridge connects: the plain listener (loopback for a wildcard
 * address). */
const char *broker_host(const struct broker *b);
int broker_port(const struct broker *b);
/* The plugin's admin login; the password is never to be logged. */
const char *broker_admin_user(const struct broker *b);
const char *broker_admin_password(const struct broker *b);
bool broker_running(const struct broker *b);
uint64_t broker_restarts(const struct broker *b);
/* SIGTERM now, SIGKILL if still there after a second; the loop runs on
 * until the process is reaped. */
void broker_shutdown(struct broker *b);
void broker_free(struct broker *b);

#endif
