#include "broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/rand.h>
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
#define STABLE_MS      30000
#define ADMIN_USER     "labgwd"
#define ADMIN_PW_BYTES 32 /* 43 characters of unpadded base64url */
#define MOSQUITTO_CTRL "mosquitto_ctrl"

#if defined(__x86_64__)
#define MULTIARCH "x86_64-linux-gnu"
#elif defined(__aarch64__)
#define MULTIARCH "aarch64-linux-gnu"
#elif defined(__arm__)
#define MULTIARCH "arm-linux-gnueabihf"
#elif defined(__i386__)
#define MULTIARCH "i386-linux-gnu"
#elif defined(__riscv) && __riscv_xlen == 64
#define MULTIARCH "riscv64-linux-gnu"
#elif defined(__powerpc64__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define MULTIARCH "powerpc64le-linux-gnu"
#elif defined(__s390x__)
#define MULTIARCH "s390x-linux-gnu"
#else
#define MULTIARCH "x86_64-linux-gnu"
#endif
#define DYNSEC_PLUGIN_DEFAULT "/usr/lib/" MULTIARCH "/mosquitto_dynamic_security.so"

struct broker {
	struct labgwd *d;
	char host[64];	       /* where the plain listener binds */
	char connect_host[64]; /* where the bridge reaches it */
	int port;
	char tls_host[64];
	int tls_port; /* -1: no TLS listener */
	char ws_host[64];
	int ws_port; /* -1: no WebSocket listener */
	char dir[4096];
	char conf[4200];
	char pidfile[4200];
	char dynsec_file[4200];
	char pwfile[4200];
	char plugin[4096];
	char admin_pw[64]; /* never logged */
	uv_process_t proc;
	uv_pipe_t out;
	bool running;
	bool proc_open; /* proc and out need closing */
	/* mosquitto_ctrl dynsec init, on the first start */
	uv_process_t ctrl;
	uv_pipe_t ctrl_in;
	uv_write_t ctrl_write;
	char ctrl_buf[160]; /* the password twice, for its prompt; wiped after */
	bool ctrl_running;
	uint64_t started_ms;
	uv_timer_t restart;
	uv_timer_t kill;
	uint64_t backoff_ms;
	uint64_t restarts;
	bool shutting_down;
	char line[LINE_MAX_LEN];
	size_t linelen;
};

/* A free TCP port on host (for a listen port 0). */
static int free_port(const char *host)
{
	struct sockaddr_storage ss = {0};
	struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
		s4->sin_family = AF_INET;
		len = sizeof(*s4);
	} else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
		s6->sin6_family = AF_INET6;
		len = sizeof(*s6);
	} else {
		return -EINVAL;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	close(fd);
	return ntohs(ss.ss_family == AF_INET ? s4->sin_port : s6->sin6_port);
}

/* "localhost" as an address; the port 0 of a listener replaced by a free
 * one. 0 or a negative errno. */
static int pick_listener(const char *what, const char *host_in, int port_in, char *host,
			 size_t hostlen, int *port)
{
	snprintf(host, hostlen, "%s", strcmp(host_in, "localhost") ? host_in : "127.0.0.1");
	*port = port_in;
	if (*port == 0) {
		*port = free_port(host);
		if (*port < 0) {
			log_error("mosquitto: no free port for %s on %s: %s", what, host,
				  strerror(-*port));
			return *port;
		}
	}
	return 0;
}

/* ---- the dynamic-security admin login ------------------------------------ */

static void base64url(const unsigned char *in, size_t n, char *out)
{
	base64_encode(in, n, out);
	char *w = out;
	for (const char *r = out; *r; r++) {
		if (*r == '=')
			break;
		*w++ = *r == '+' ? '-' : *r == '/' ? '_' : *r;
	}
	*w = '\0';
}

static bool pw_valid(const char *pw)
{
	size_t n = strlen(pw);
	if (n < 16 || n > 60)
		return false;
	for (const char *p = pw; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
		      (*p >= '0' && *p <= '9') || *p == '-' || *p == '_'))
			return false;
	return true;
}

/* Read {dir}/admin.pw, or make a new password and write it (0600). A
 * dynamic-security file without a readable password file is moved aside:
 * its admin login would be lost, so it starts afresh (reconciliation then
 * names the keys to re-issue). 0 or a negative errno. */
static int admin_password(struct broker *b)
{
	int fd = open(b->pwfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		char buf[sizeof(b->admin_pw)];
		struct stat st;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (fstat(fd, &st) == 0 && (st.st_mode & 077)) {
			log_warning("mosquitto: %s was readable by others; made it 0600",
				    b->pwfile);
			fchmod(fd, 0600);
		}
		close(fd);
		if (n > 0) {
			buf[n] = '\0';
			buf[strcspn(buf, "\r\n")] = '\0';
			if (pw_valid(buf)) {
				snprintf(b->admin_pw, sizeof(b->admin_pw), "%s", buf);
				explicit_bzero(buf, sizeof(buf));
				return 0;
			}
		}
		explicit_bzero(buf, sizeof(buf));
		log_warning("mosquitto: %s holds no valid password; making a new one", b->pwfile);
	} else if (errno != ENOENT) {
		log_warning("mosquitto: cannot read %s: %s; making a new password", b->pwfile,
			    strerror(errno));
	}
	if (access(b->dynsec_file, F_OK) == 0) {
		char aside[4300];
		snprintf(aside, sizeof(aside), "%s.lost-admin-%llu", b->dynsec_file,
			 (unsigned long long)(time_now_us() / 1000000));
		log_warning("mosquitto: the admin password of %s is lost; moving it to %s and "
			    "starting a new one (existing keys must be re-issued to use MQTT)",
			    b->dynsec_file, aside);
		if (rename(b->dynsec_file, aside) < 0) {
			log_error("mosquitto: cannot move %s: %s", b->dynsec_file, strerror(errno));
			return -errno;
		}
	}
	unsigned char raw[ADMIN_PW_BYTES];
	if (RAND_bytes(raw, sizeof(raw)) != 1) {
		log_error("mosquitto: no random bytes for the admin password");
		return -EIO;
	}
	char enc[64];
	base64url(raw, sizeof(raw), enc);
	explicit_bzero(raw, sizeof(raw));
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", b->pwfile);
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		log_error("mosquitto: cannot write %s: %s", tmp, strerror(e));
		explicit_bzero(enc, sizeof(enc));
		return -e;
	}
	size_t len = strlen(enc);
	enc[len] = '\n';
	bool ok = write(fd, enc, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0;
	enc[len] = '\0';
	if (close(fd) != 0)
		ok = false;
	if (!ok || rename(tmp, b->pwfile) < 0) {
		int e = errno ? errno : EIO;
		log_error("mosquitto: cannot write %s: %s", b->pwfile, strerror(e));
		unlink(tmp);
		explicit_bzero(enc, sizeof(enc));
		return -e;
	}
	snprintf(b->admin_pw, sizeof(b->admin_pw), "%s", enc);
	explicit_bzero(enc, sizeof(enc));
	log_notice("mosquitto: made the broker's admin login (user %s, password in %s)", ADMIN_USER,
		   b->pwfile);
	return 0;
}

static void listener_tls(FILE *f, const struct config *cfg)
{
	fprintf(f,
		"certfile %s\n"
		"keyfile %s\n"
		"tls_version tlsv1.2\n"
		"ciphers %s\n",
		cfg->mqtt_tls_cert, cfg->mqtt_tls_key, LABGW_TLS12_CIPHERS);
}

static int write_conf(struct broker *b)
{
	char tmp[4300];
	snprintf(tmp, sizeof(tmp), "%s.tmp", b->conf);
	FILE *f = fopen(tmp, "w");
	if (!f)
		return -errno;
	const struct config *cfg = b->d->cfg;
	struct passwd *pw = getpwuid(geteuid());
	/* security settings are global (per_listener_settings false): every
	 * listener needs a login that the dynamic-security plugin knows */
	fprintf(f,
		"# Written by labgwd at every start of the broker; edits are lost.\n"
		"per_listener_settings false\n"
		"allow_anonymous false\n"
		"plugin %s\n"
		"plugin_opt_config_file %s\n"
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
		b->plugin, b->dynsec_file, b->dir);
	/* as root, mosquitto would switch to user "mosquitto", which cannot
	 * write our state folder */
	if (pw)
		fprintf(f, "user %s\n", pw->pw_name);
	fprintf(f, "\nlistener %d %s\n", b->port, b->host);
	if (b->tls_port >= 0) {
		fprintf(f, "\nlistener %d %s\n", b->tls_port, b->tls_host);
		listener_tls(f, cfg);
	}
	if (b->ws_port >= 0) {
		fprintf(f, "\nlistener %d %s\nprotocol websockets\n", b->ws_port, b->ws_host);
		if (cfg->mqtt_tls_cert[0])
			listener_tls(f, cfg);
	}
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
static void backoff_restart(struct broker *b);

static void restart_cb(uv_timer_t *t)
{
	struct broker *b = t->data;
	if (b->shutting_down)
		return;
	b->restarts++;
	if (spawn(b) < 0)
		backoff_restart(b);
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

static void backoff_restart(struct broker *b)
{
	b->backoff_ms = b->backoff_ms ? b->backoff_ms * 2 : BACKOFF_MIN_MS;
	if (b->backoff_ms > BACKOFF_MAX_MS)
		b->backoff_ms = BACKOFF_MAX_MS;
	uv_timer_start(&b->restart, restart_cb, b->backoff_ms, 0);
}

static int spawn_mosquitto(struct broker *b);

/* Give the new file's admin role its rights to labgw/v1/ before the broker
 * reads it: added at run time, the change would disconnect the bridge
 * (mosquitto disconnects the clients of a role whose ACLs change). The
 * bridge also adds it at every connection (dynsec.c), which is then a
 * no-op. */
static int grant_bridge(const char *path)
{
	json_error_t je;
	json_t *root = json_load_file(path, 0, &je);
	json_t *roles = json_object_get(root, "roles"), *role;
	size_t i;
	int rc = -EINVAL;
	json_array_foreach(roles, i, role)
	{
		const char *name = json_string_value(json_object_get(role, "rolename"));
		json_t *acls = json_object_get(role, "acls");
		if (!name || strcmp(name, "admin") || !json_is_array(acls))
			continue;
		json_array_append_new(acls,
				      json_pack("{s:s,s:s,s:b}", "acltype", "publishClientSend",
						"topic", "labgw/v1/#", "allow", 1));
		rc = 0;
	}
	if (rc == 0) {
		char tmp[4300];
		snprintf(tmp, sizeof(tmp), "%s.tmp", path);
		if (json_dump_file(root, tmp, JSON_INDENT(1)) < 0 || chmod(tmp, 0600) < 0 ||
		    rename(tmp, path) < 0)
			rc = -EIO;
	}
	json_decref(root);
	return rc;
}

static void ctrl_closed(uv_handle_t *h)
{
	/* embedded in struct broker */
}

static void ctrl_exit_cb(uv_process_t *p, int64_t status, int sig)
{
	struct broker *b = p->data;
	b->ctrl_running = false;
	uv_close((uv_handle_t *)&b->ctrl, ctrl_closed);
	if (!uv_is_closing((uv_handle_t *)&b->ctrl_in))
		uv_close((uv_handle_t *)&b->ctrl_in, ctrl_closed);
	explicit_bzero(b->ctrl_buf, sizeof(b->ctrl_buf));
	if (b->shutting_down)
		return;
	/* mosquitto_ctrl exits 0 even when it failed: the file tells */
	if (status != 0 || sig != 0 || access(b->dynsec_file, R_OK) < 0) {
		log_error("mosquitto: `%s dynsec init` did not create %s (exit status %lld)",
			  MOSQUITTO_CTRL, b->dynsec_file, (long long)status);
		backoff_restart(b);
		return;
	}
	chmod(b->dynsec_file, 0600);
	if (grant_bridge(b->dynsec_file) < 0)
		log_warning("mosquitto: could not add the bridge's rights to %s; it is done at "
			    "the first connection instead",
			    b->dynsec_file);
	log_notice("mosquitto: created %s with admin user %s", b->dynsec_file, ADMIN_USER);
	if (spawn_mosquitto(b) < 0)
		backoff_restart(b);
}

static void ctrl_written(uv_write_t *w, int status)
{
	struct broker *b = w->data;
	/* end of input: its prompt reads two lines, then it exits */
	if (!uv_is_closing((uv_handle_t *)&b->ctrl_in))
		uv_close((uv_handle_t *)&b->ctrl_in, ctrl_closed);
	explicit_bzero(b->ctrl_buf, sizeof(b->ctrl_buf));
}

/* `mosquitto_ctrl dynsec init FILE labgwd` with the password on its
 * standard input (not in its arguments, which every local user can read in
 * /proc); mosquitto starts when it has exited. */
static int dynsec_init(struct broker *b)
{
	char *args[] = {MOSQUITTO_CTRL, "dynsec", "init", b->dynsec_file, ADMIN_USER, NULL};
	uv_pipe_init(b->d->loop, &b->ctrl_in, 0);
	b->ctrl_in.data = b;
	uv_stdio_container_t stdio[3] = {
		{.flags = UV_CREATE_PIPE | UV_READABLE_PIPE,
		 .data.stream = (uv_stream_t *)&b->ctrl_in},
		{.flags = UV_IGNORE},
		{.flags = UV_INHERIT_FD, .data.fd = 2},
	};
	uv_process_options_t opt = {
		.file = MOSQUITTO_CTRL,
		.args = args,
		.exit_cb = ctrl_exit_cb,
		.stdio_count = 3,
		.stdio = stdio,
	};
	b->ctrl.data = b;
	int rc = uv_spawn(b->d->loop, &b->ctrl, &opt);
	if (rc < 0) {
		log_error("mosquitto: cannot run %s (package mosquitto-clients): %s",
			  MOSQUITTO_CTRL, uv_strerror(rc));
		uv_close((uv_handle_t *)&b->ctrl_in, ctrl_closed);
		uv_close((uv_handle_t *)&b->ctrl, ctrl_closed);
		return rc;
	}
	b->ctrl_running = true;
	snprintf(b->ctrl_buf, sizeof(b->ctrl_buf), "%s\n%s\n", b->admin_pw, b->admin_pw);
	uv_buf_t buf = uv_buf_init(b->ctrl_buf, (unsigned)strlen(b->ctrl_buf));
	b->ctrl_write.data = b;
	rc = uv_write(&b->ctrl_write, (uv_stream_t *)&b->ctrl_in, &buf, 1, ctrl_written);
	if (rc < 0) {
		explicit_bzero(b->ctrl_buf, sizeof(b->ctrl_buf));
		uv_close((uv_handle_t *)&b->ctrl_in, ctrl_closed);
		uv_process_kill(&b->ctrl, SIGTERM); /* its exit callback reports */
	}
	return 0;
}

static int spawn(struct broker *b)
{
	if (b->ctrl_running)
		return 0;
	if (access(b->dynsec_file, F_OK) < 0) {
		log_info("mosquitto: creating %s", b->dynsec_file);
		return dynsec_init(b);
	}
	return spawn_mosquitto(b);
}

static int spawn_mosquitto(struct broker *b)
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

static void log_url(const char *scheme, const char *host, int port, const char *path)
{
	bool v6 = strchr(host, ':') != NULL;
	log_notice("MQTT broker: %s://%s%s%s:%d/%s", scheme, v6 ? "[" : "", host, v6 ? "]" : "",
		   port, path);
}

static bool readable(const char *cfgpath, const char *key, const char *path)
{
	if (access(path, R_OK) == 0)
		return true;
	log_error("%s: [mqtt] %s: %s: %s", cfgpath, key, path, strerror(errno));
	return false;
}

struct broker *broker_new(struct labgwd *d)
{
	const struct config *cfg = d->cfg;
	if (access(cfg->mosquitto_bin, X_OK) < 0) {
		log_error("%s: [mqtt] mosquitto: %s: %s", cfg->path, cfg->mosquitto_bin,
			  strerror(errno));
		return NULL;
	}
	const char *plugin =
		cfg->mqtt_dynsec_plugin[0] ? cfg->mqtt_dynsec_plugin : DYNSEC_PLUGIN_DEFAULT;
	if (!readable(cfg->path, "dynsec_plugin", plugin))
		return NULL;
	if (cfg->mqtt_tls_cert[0] && (!readable(cfg->path, "tls_cert", cfg->mqtt_tls_cert) ||
				      !readable(cfg->path, "tls_key", cfg->mqtt_tls_key)))
		return NULL;
	struct broker *b = calloc(1, sizeof(*b));
	if (!b)
		return NULL;
	b->d = d;
	snprintf(b->plugin, sizeof(b->plugin), "%s", plugin);
	b->tls_port = b->ws_port = -1;
	if (pick_listener("spawn_listen", cfg->mqtt_spawn_host, cfg->mqtt_spawn_port, b->host,
			  sizeof(b->host), &b->port) < 0 ||
	    (cfg->mqtt_spawn_tls_port >= 0 &&
	     pick_listener("spawn_listen_tls", cfg->mqtt_spawn_tls_host, cfg->mqtt_spawn_tls_port,
			   b->tls_host, sizeof(b->tls_host), &b->tls_port) < 0) ||
	    (cfg->mqtt_spawn_ws_port >= 0 &&
	     pick_listener("spawn_listen_ws", cfg->mqtt_spawn_ws_host, cfg->mqtt_spawn_ws_port,
			   b->ws_host, sizeof(b->ws_host), &b->ws_port) < 0)) {
		free(b);
		return NULL;
	}
	/* the bridge reaches a wildcard listener on loopback */
	snprintf(b->connect_host, sizeof(b->connect_host), "%s",
		 !strcmp(b->host, "0.0.0.0") ? "127.0.0.1"
		 : !strcmp(b->host, "::")    ? "::1"
					     : b->host);
	snprintf(b->dir, sizeof(b->dir), "%s/mosquitto", cfg->state_dir);
	snprintf(b->conf, sizeof(b->conf), "%s/mosquitto.conf", b->dir);
	snprintf(b->pidfile, sizeof(b->pidfile), "%s/mosquitto.pid", b->dir);
	snprintf(b->dynsec_file, sizeof(b->dynsec_file), "%s/dynamic-security.json", b->dir);
	snprintf(b->pwfile, sizeof(b->pwfile), "%s/admin.pw", b->dir);
	if (mkdir(b->dir, 0700) < 0 && errno != EEXIST) {
		log_error("mosquitto: cannot create %s: %s", b->dir, strerror(errno));
		free(b);
		return NULL;
	}
	if (admin_password(b) < 0) {
		free(b);
		return NULL;
	}
	if (b->tls_port >= 0)
		log_url("mqtts", b->tls_host, b->tls_port, "");
	if (b->ws_port >= 0)
		log_url(cfg->mqtt_tls_cert[0] ? "wss" : "ws", b->ws_host, b->ws_port, "");
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
	return b->connect_host;
}

const char *broker_admin_user(const struct broker *b)
{
	return ADMIN_USER;
}

const char *broker_admin_password(const struct broker *b)
{
	return b->admin_pw;
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
	if (b)
		explicit_bzero(b->admin_pw, sizeof(b->admin_pw));
	free(b);
}
