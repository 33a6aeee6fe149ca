#include "broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#include "daemon.h"
#include "log.h"
#include "util.h"

#define LINE_MAX_LEN   1024
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000
/* a broker that ran this long resets the backoff */
#define STABLE_MS 30000

struct broker {
	struct labgwd *d;
	char host[64];
	int port;
	char dir[4096];
	char conf[4200];
	char pidfile[4200];
	uv_process_t proc;
	uv_pipe_t out;
	bool running;
	bool proc_open; /* proc and out need closing */
	uint64_t started_ms;
	uv_timer_t restart;
	uv_timer_t kill;
	uint64_t backoff_ms;
	uint64_t restarts;
	bool shutting_down;
	char line[LINE_MAX_LEN];
	size_t linelen;
};

static bool is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return !strcmp(host, "localhost");
}

/* A free TCP port on host (for spawn_listen port 0). */
static int free_port(const char *host)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &sa.sin_addr) != 1)
		return -EINVAL;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	socklen_t len = sizeof(sa);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	close(fd);
	return ntohs(sa.sin_port);
}

static int write_conf(struct broker *b)
{
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", b->conf);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	struct passwd *pw = getpwuid(geteuid());
	fprintf(f,
		"# Written by labgwd at every start of the broker; edits are lost.\n"
		"per_listener_settings false\n"
		"listener %d %s\n"
		"allow_anonymous true\n"
		"persistence true\n"
		"persistence_location %s/\n"
		"autosave_interval 30\n"
		"max_queued_messages 10000\n"
		"log_dest stdout\n"
		"log_type error\n"
		"log_type warning\n"
		"log_type notice\n"
		"log_timestamp false\n"
		"connection_messages false\n",
		b->port, b->host, b->dir);
	/* as root, mosquitto would switch to user "mosquitto", which cannot
	 * write our state folder */
	if (pw)
		fprintf(f, "user %s\n", pw->pw_name);
	if (fclose(f) != 0)
		return -errno;
	if (rename(tmp, b->conf) < 0)
		return -errno;
	return 0;
}

static void log_line(struct broker *b)
{
	b->line[b->linelen] = '\0';
	if (b->linelen)
		log_info("mosquitto: %s", b->line);
	b->linelen = 0;
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static char chunk[4096];
	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void read_cb(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct broker *b = s->data;
	if (n < 0) {
		log_line(b);
		uv_read_stop(s);
		return;
	}
	for (ssize_t i = 0; i < n; i++) {
		char c = buf->base[i];
		if (c == '\n') {
			log_line(b);
		} else if (b->linelen < LINE_MAX_LEN - 1) {
			b->line[b->linelen++] = c;
		}
	}
}

static int spawn(struct broker *b);

static void restart_cb(uv_timer_t *t)
{
	struct broker *b = t->data;
	if (b->shutting_down)
		return;
	b->restarts++;
	if (spawn(b) < 0) {
		b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BACKOFF_MIN_MS;
		if (b->backoff_ms > BACKOFF_MAX_MS)
			b->backoff_ms = BACKOFF_MAX_MS;
		uv_timer_start(&b->restart, restart_cb, b->backoff_ms, 0);
	}
}

static void proc_closed(uv_handle_t *h)
{
	/* embedded in struct broker, freed by broker_free */
}

static void exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct broker *b = p->data;
	b->running = false;
	unlink(b->pidfile);
	uv_timer_stop(&b->kill);
	uv_close((uv_handle_t *)&b->proc, proc_closed);
	if (uv_is_readable((uv_stream_t *)&b->out))
		uv_read_stop((uv_stream_t *)&b->out);
	uv_close((uv_handle_t *)&b->out, proc_closed);
	b->proc_open = false;
	if (b->shutting_down) {
		uv_close((uv_handle_t *)&b->kill, NULL);
		log_info("mosquitto: stopped");
		return;
	}
	if (sig)
		log_warning("mosquitto exited by signal %d", sig);
	else
		log_warning("mosquitto exited with status %lld", (long long)status);
	if (uv_now(b->d->loop) - b->started_ms > STABLE_MS)
		b->backoff_ms = 0;
	b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (b->backoff_ms > BACKOFF_MAX_MS)
		b->backoff_ms = BACKOFF_MAX_MS;
	log_notice("mosquitto: restarting in %llu ms", (unsigned long long)b->backoff_ms);
	uv_timer_start(&b->restart, restart_cb, b->backoff_ms, 0);
}

static int spawn(struct broker *b)
{
	const char *bin = b->d->cfg->mosquitto_bin;
	int rc = write_conf(b);
	if (rc < 0) {
		log_error("mosquitto: cannot write %s: %s", b->conf, strerror(-rc));
		return rc;
	}
	/* setpriv makes the kernel stop the broker if labgwd dies, even by
	 * SIGKILL, so that no orphan keeps the port */
	char *args[] = {"setpriv", "--pdeathsig", "TERM", "--", (char *)bin, "-c", b->conf, NULL};
	uv_pipe_init(b->d->loop, &b->out, 0);
	b->out.data = b;
	uv_stdio_container_t stdio[3] = {
		{.flags = UV_IGNORE},
		{.flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE, .data.stream = (uv_stream_t *)&b->out},
		{.flags = UV_INHERIT_FD, .data.fd = 2},
	};
	uv_process_options_t opt = {
		.file = "setpriv",
		.args = args,
		.exit_cb = exit_cb,
		.stdio_count = 3,
		.stdio = stdio,
	};
	b->proc.data = b;
	rc = uv_spawn(b->d->loop, &b->proc, &opt);
	if (rc < 0) {
		log_error("mosquitto: cannot start %s: %s", bin, uv_strerror(rc));
		uv_close((uv_handle_t *)&b->out, proc_closed);
		uv_close((uv_handle_t *)&b->proc, proc_closed);
		return rc;
	}
	b->proc_open = true;
	b->running = true;
	b->started_ms = uv_now(b->d->loop);
	uv_read_start((uv_stream_t *)&b->out, alloc_cb, read_cb);
	FILE *pf = fopen(b->pidfile, "w");
	if (pf) {
		fprintf(pf, "%d\n", b->proc.pid);
		fclose(pf);
	}
	log_notice("mosquitto: started (pid %d) on %s:%d", b->proc.pid, b->host, b->port);
	return 0;
}

struct broker *broker_new(struct labgwd *d)
{
	const struct config *cfg = d->cfg;
	if (!is_loopback(cfg->mqtt_spawn_host)) {
		log_error("%s: [mqtt] spawn_listen: '%s' is not a loopback address; the spawned "
			  "broker admits anonymous clients until the sandbox ACLs exist",
			  cfg->path, cfg->mqtt_spawn_host);
		return NULL;
	}
	if (access(cfg->mosquitto_bin, X_OK) < 0) {
		log_error("%s: [mqtt] mosquitto: %s: %s", cfg->path, cfg->mosquitto_bin,
			  strerror(errno));
		return NULL;
	}
	struct broker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->d = d;
	snprintf(b->host, sizeof(b->host), "%s",
		 strcmp(cfg->mqtt_spawn_host, "localhost") ? cfg->mqtt_spawn_host : "127.0.0.1");
	b->port = cfg->mqtt_spawn_port;
	if (b->port == 0) {
		b->port = free_port(b->host);
		if (b->port < 0) {
			log_error("mosquitto: no free port on %s: %s", b->host, strerror(-b->port));
			free(b);
			return NULL;
		}
	}
	snprintf(b->dir, sizeof(b->dir), "%s/mosquitto", cfg->state_dir);
	snprintf(b->conf, sizeof(b->conf), "%s/mosquitto.conf", b->dir);
	snprintf(b->pidfile, sizeof(b->pidfile), "%s/mosquitto.pid", b->dir);
	if (mkdir(b->dir, 0700) < 0 && errno != EEXIST) {
		log_error("mosquitto: cannot create %s: %s", b->dir, strerror(errno));
		free(b);
		return NULL;
	}
	uv_timer_init(d->loop, &b->restart);
	uv_timer_init(d->loop, &b->kill);
	b->restart.data = b->kill.data = b;
	if (spawn(b) < 0) {
		/* supervised like a crash: retried with backoff */
		b->backoff_ms = BACKOFF_MIN_MS;
		uv_timer_start(&b->restart, restart_cb, b->backoff_ms, 0);
	}
	return b;
}

const char *broker_host(const struct broker *b)
{
	return b->host;
}

int broker_port(const struct broker *b)
{
	return b->port;
}

bool broker_running(const struct broker *b)
{
	return b->running;
}

uint64_t broker_restarts(const struct broker *b)
{
	return b->restarts;
}

static void kill_cb(uv_timer_t *t)
{
	struct broker *b = t->data;
	if (b->running) {
		log_warning("mosquitto: did not stop within a second; killing it");
		uv_process_kill(&b->proc, SIGKILL);
	}
}

void broker_shutdown(struct broker *b)
{
	if (!b || b->shutting_down)
		return;
	b->shutting_down = true;
	uv_timer_stop(&b->restart);
	uv_close((uv_handle_t *)&b->restart, NULL);
	if (b->running) {
		/* exit_cb closes the kill timer */
		uv_process_kill(&b->proc, SIGTERM);
		uv_timer_start(&b->kill, kill_cb, 1000, 0);
	} else {
		uv_close((uv_handle_t *)&b->kill, NULL);
	}
}

void broker_free(struct broker *b)
{
	free(b);
}
