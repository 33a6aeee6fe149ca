/* A private mosquitto for `[mqtt] broker = spawn`: configured in
 * {state_dir}/mosquitto/, listening on [mqtt] spawn_listen, supervised
 * (restarted with backoff when it exits), its output logged, stopped with
 * the daemon. */
#ifndef LABGW_BROKER_H
#define LABGW_BROKER_H

#include <stdbool.h>
#include <stdint.h>

struct labgwd;
struct broker;

struct broker *broker_new(struct labgwd *d);
const char *broker_host(const struct broker *b);
int broker_port(const struct broker *b);
bool broker_running(const struct broker *b);
uint64_t broker_restarts(const struct broker *b);
/* SIGTERM now, SIGKILL if still there after a second; the loop runs on
 * until the process is reaped. */
void broker_shutdown(struct broker *b);
void broker_free(struct broker *b);

#endif
