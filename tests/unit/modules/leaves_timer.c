// SPDX-License-Identifier: MIT
/*
 * A sloppy module: start registers a repeating timer and a read watch on a
 * pipe, and stop forgets to cancel them. The host must cancel both, warn
 * naming the module, count them as leftovers, and neither may fire after
 * stop. Its fds are its own: they are closed in exit.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "labgw/plugin.h"
#include "probe.h"

PROBE_DEFINE;

struct sloppy {
	const struct labgw_host *host;
	struct labgw_radio *r;
	struct probe_radio *p;
	int pipe[2];
};

static int on_timer(void *user_data)
{
	struct sloppy *s = user_data;
	s->p->ticks++;
	if (!s->p->running)
		s->p->ticks_after_stop++;
	/* keep the fd watch busy too */
	if (write(s->pipe[1], "t", 1) < 0)
		return -errno;
	return 0;
}

static int on_fd(void *user_data, int fd, unsigned events)
{
	struct sloppy *s = user_data;
	char buf[64];
	s->p->fd_events++;
	if (!s->p->running)
		s->p->fd_events_after_stop++;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	return 0;
}

static int init(struct labgw_radio *r, const struct labgw_host *host, void **state)
{
	struct probe_radio *p = probe_slot(&labgw_test_probe, host->radio_name(r));
	if (!p)
		return -ENOSPC;
	struct sloppy *s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	if (pipe2(s->pipe, O_NONBLOCK | O_CLOEXEC) < 0) {
		free(s);
		return -errno;
	}
	s->host = host;
	s->r = r;
	s->p = p;
	p->inits++;
	p->host = host;
	p->radio = r;
	*state = s;
	return 0;
}

static int start(void *state)
{
	struct sloppy *s = state;
	s->p->starts++;
	if (!s->host->timer_add(s->r, 2, 2, on_timer, s))
		return -EIO;
	if (!s->host->watch_fd(s->r, s->pipe[0], LABGW_FD_READ, on_fd, s))
		return -EIO;
	if (write(s->pipe[1], "s", 1) < 0)
		return -errno;
	s->p->running = true;
	return 0;
}

static int command(void *state, const struct labgw_command *cmd, char *errbuf, size_t errlen)
{
	return -ENOTSUP;
}

static void stop(void *state)
{
	struct sloppy *s = state;
	s->p->stops++;
	s->p->running = false;
	/* and nothing else */
}

static void exit_(void *state)
{
	struct sloppy *s = state;
	s->p->exits++;
	if (s->p->radio == s->r) /* not a newer instance's */
		s->p->radio = NULL;
	close(s->pipe[0]);
	close(s->pipe[1]);
	free(s);
}

LABGW_PLUGIN_DEFINE(.name = "leaves_timer", .version = "1", .techs = LABGW_TECH_WLAN, .init = init,
		    .start = start, .command = command, .stop = stop, .exit = exit_);
