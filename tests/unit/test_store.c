// SPDX-License-Identifier: MIT
/*
 * store.c against real SQLite files: migrations from nothing and refusal of
 * a newer schema, every table's functions with their unique, overlap and
 * cascade rules, bounded copies of what the file holds, durability across a
 * close, an _exit and a SIGKILL, the history writer on its own thread next
 * to loop-thread readers, trimming, and a full disk (a 1 MB tmpfs).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "log.h"
#include "store.h"
#include "util.h"

/* ---- fixture -------------------------------------------------------------- */

struct fx {
	char dir[PATH_MAX];
	char path[PATH_MAX];
	struct store *st;
};

static char last_error[2048];

static void log_hook(enum log_level level, const char *msg, void *ud)
{
	if (level <= LOG_LVL_ERROR)
		snprintf(last_error, sizeof(last_error), "%s", msg);
}

static int setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	if (!fx)
		return -1;
	const char *tmp = getenv("TMPDIR");
	snprintf(fx->dir, sizeof(fx->dir), "%s/labgw-store-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return -1;
	}
	snprintf(fx->path, sizeof(fx->path), "%s/labgw.db", fx->dir);
	last_error[0] = '\0';
	*state = fx;
	return 0;
}

/* Tests that need the store open from the start. */
static int setup_open(void **state)
{
	if (setup(state))
		return -1;
	struct fx *fx = *state;
	return store_open(fx->path, &fx->st) ? -1 : 0;
}

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(p);
}

static int teardown(void **state)
{
	struct fx *fx = *state;
	store_close(fx->st);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* ---- helpers -------------------------------------------------------------- */

/* fsync and fdatasync of this process, libsqlite3's included, come here (the
 * executable's definitions win): a test can tell whether a commit reached
 * the disk before the call returned. */
static atomic_int wal_syncs;

static void count_sync(int fd)
{
	char link[64], target[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = readlink(link, target, sizeof(target) - 1);
	if (n > 4 && !memcmp(target + n - 4, "-wal", 4))
		atomic_fetch_add(&wal_syncs, 1);
}

int fsync(int fd)
{
	count_sync(fd);
	return (int)syscall(SYS_fsync, fd);
}

int fdatasync(int fd)
{
	count_sync(fd);
	return (int)syscall(SYS_fdatasync, fd);
}

/* A second, plain connection to look at the file behind the store's back. */
static sqlite3 *raw_open(const char *path)
{
	sqlite3 *db = NULL;
	if (sqlite3_open(path, &db) != SQLITE_OK)
		fail_msg("sqlite3_open %s: %s", path, db ? sqlite3_errmsg(db) : "no memory");
	sqlite3_busy_timeout(db, 5000);
	return db;
}

static void raw_exec(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	char *err = NULL;
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("%s: %s", sql, err);
	sqlite3_close(db);
}

static int64_t raw_int(const char *path, const char *sql)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) != SQLITE_ROW)
		fail_msg("%s: no row", sql);
	int64_t v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void raw_text(const char *path, const char *sql, char *out, size_t len)
{
	sqlite3 *db = raw_open(path);
	sqlite3_stmt *s;
	if (sqlite3_prepare_v2(db, sql, -1, &s, NULL) != SQLITE_OK)
		fail_msg("%s: %s", sql, sqlite3_errmsg(db));
	if (sqlite3_step(s) != SQLITE_ROW)
		fail_msg("%s: no row", sql);
	snprintf(out, len, "%s", (const char *)sqlite3_column_text(s, 0));
	sqlite3_finalize(s);
	sqlite3_close(db);
}

static struct store_sandbox sandbox(const char *id)
{
	struct store_sandbox s;
	memset(&s, 0, sizeof(s));
	snprintf(s.id, sizeof(s.id), "%s", id);
	snprintf(s.name, sizeof(s.name), "Team %s", id);
	s.created_us = 1000;
	s.quotas.tx_per_day = 100;
	return s;
}

static void add_sandbox(struct store *st, const char *id)
{
	struct store_sandbox s = sandbox(id);
	assert_int_equal(store_sandbox_create(st, &s), 0);
}

static struct store_key key(const char *id, const char *sbx)
{
	struct store_key k;
	memset(&k, 0, sizeof(k));
	snprintf(k.id, sizeof(k.id), "%s", id);
	snprintf(k.sbx, sizeof(k.sbx), "%s", sbx);
	k.rights = 0x15;
	k.tx_techs = 0x6;
	for (size_t i = 0; i < sizeof(k.hash); i++)
		k.hash[i] = (unsigned char)(i * 7 + id[0]);
	k.created_us = 1111;
	k.expires_us = 9999;
	snprintf(k.note, sizeof(k.note), "note of %s", id);
	return k;
}

static struct store_claim claim(const char *sbx, uint32_t tech, const char *dev)
{
	struct store_claim c;
	memset(&c, 0, sizeof(c));
	snprintf(c.sbx, sizeof(c.sbx), "%s", sbx);
	c.tech = tech;
	snprintf(c.dev, sizeof(c.dev), "%s", dev);
	c.created_us = 2222;
	return c;
}

static int lease(struct store *st, const char *sbx, const char *res, int64_t start, int64_t end,
		 int64_t *id, int64_t *frees)
{
	struct store_lease l;
	memset(&l, 0, sizeof(l));
	snprintf(l.sbx, sizeof(l.sbx), "%s", sbx);
	snprintf(l.resource, sizeof(l.resource), "%s", res);
	l.start_us = start;
	l.end_us = end;
	l.created_us = 1;
	int rc = store_lease_create(st, &l, frees);
	if (id)
		*id = rc ? 0 : l.id;
	return rc;
}

/* Collect what list functions give, as "a,b,c" strings. */
struct names {
	char buf[1024];
	int n;
	int stop_after; /* 0: never */
};

static void names_add(struct names *nm, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void names_add(struct names *nm, const char *fmt, ...)
{
	size_t len = strlen(nm->buf);
	if (len)
		nm->buf[len++] = ',';
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(nm->buf + len, sizeof(nm->buf) - len, fmt, ap);
	va_end(ap);
	nm->n++;
}

static int names_stop(struct names *nm)
{
	return nm->stop_after && nm->n == nm->stop_after ? 42 : 0;
}

static int sbx_cb(void *ud, const struct store_sandbox *s)
{
	names_add(ud, "%s", s->id);
	return names_stop(ud);
}

static int key_cb(void *ud, const struct store_key *k)
{
	names_add(ud, "%s@%s", k->id, k->sbx);
	return names_stop(ud);
}

static int claim_cb(void *ud, const struct store_claim *c)
{
	names_add(ud, "%s:%u:%s%s", c->sbx, c->tech, c->dev, c->has_session_keys ? "+keys" : "");
	return names_stop(ud);
}

static int lease_cb(void *ud, const struct store_lease *l)
{
	names_add(ud, "%s:%s:%lld-%lld", l->sbx, l->resource, (long long)l->start_us,
		  (long long)l->end_us);
	return names_stop(ud);
}

static int audit_cb(void *ud, const struct store_audit *a)
{
	names_add(ud, "%lld:%s:%s", (long long)a->id, a->sbx, a->action);
	return names_stop(ud);
}

static int hist_cb(void *ud, uint64_t seq, int64_t time_us, const char *topic, const char *json)
{
	names_add(ud, "%llu", (unsigned long long)seq);
	return names_stop(ud);
}

#define LIST_SBX(st, nm) (memset(&(nm), 0, sizeof(nm)), store_sandbox_list(st, sbx_cb, &(nm)))
#define LIST_KEYS(st, sbx, nm)                                                                     \
	(memset(&(nm), 0, sizeof(nm)), store_key_list(st, sbx, key_cb, &(nm)))
#define LIST_CLAIMS(st, sbx, nm)                                                                   \
	(memset(&(nm), 0, sizeof(nm)), store_claim_list(st, sbx, claim_cb, &(nm)))
#define LIST_LEASES(st, sbx, res, after, nm)                                                       \
	(memset(&(nm), 0, sizeof(nm)), store_lease_list(st, sbx, res, after, lease_cb, &(nm)))
#define LIST_HIST(st, sbx, since, filter, limit, nm)                                               \
	(memset(&(nm), 0, sizeof(nm)),                                                             \
	 store_history_query(st, sbx, since, filter, limit, hist_cb, &(nm)))

/* History rows with owned strings, as the history module hands them over. */
static struct store_history_row hrow(const char *sbx, uint64_t seq, int64_t time_us,
				     const char *dev)
{
	struct store_history_row r;
	memset(&r, 0, sizeof(r));
	snprintf(r.sbx, sizeof(r.sbx), "%s", sbx);
	r.seq = seq;
	r.time_us = time_us;
	if (asprintf(&r.topic, "labgw/v1/sbx/%s/rx/ble/lab1/ble0/%s", sbx, dev) < 0 ||
	    asprintf(&r.json, "{\"seq\":%llu}", (unsigned long long)seq) < 0)
		fail_msg("out of memory");
	return r;
}

static void hrows_free(struct store_history_row *rows, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(rows[i].topic);
		free(rows[i].json);
	}
}

/* Write rows seq first..last (time_us = seq * 1000) of one sandbox. */
static int hwrite_range(struct store *st, const char *sbx, uint64_t first, uint64_t last,
			int64_t max_rows, int64_t min_time_us)
{
	size_t n = (size_t)(last - first + 1);
	struct store_history_row *rows = calloc(n, sizeof(*rows));
	assert_non_null(rows);
	for (size_t i = 0; i < n; i++)
		rows[i] = hrow(sbx, first + i, (int64_t)(first + i) * 1000, "d0");
	int rc = store_history_write(st, rows, n, max_rows, min_time_us);
	hrows_free(rows, n);
	free(rows);
	return rc;
}

static int64_t hist_count(const char *path, const char *sbx)
{
	char sql[128];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM history WHERE sbx = '%s'", sbx);
	return raw_int(path, sql);
}

/* ---- open and migrations --------------------------------------------------- */

static void test_open_creates_and_migrates_new_file(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(access(fx->path, F_OK), -1);
	assert_int_equal(store_open(fx->path, &fx->st), 0);
	int v = store_schema_version(fx->st);
	assert_true(v >= 1);
	assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), v);

	char mode[16];
	raw_text(fx->path, "PRAGMA journal_mode", mode, sizeof(mode));
	assert_string_equal(mode, "wal");
	static const char *const tables[] = {"settings", "sandboxes", "keys",  "claims",
					     "leases",	 "usage",     "audit", "history"};
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		char sql[128];
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = '%s'",
			 tables[i]);
		if (raw_int(fx->path, sql) != 1)
			fail_msg("table %s missing", tables[i]);
	}
	/* the file holds key hashes and session keys */
	struct stat sb;
	assert_int_equal(stat(fx->path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);

	/* reopening runs no migration again and keeps the version */
	store_close(fx->st);
	fx->st = NULL;
	assert_int_equal(store_open(fx->path, &fx->st), 0);
	assert_int_equal(store_schema_version(fx->st), v);
}

static void test_open_migrates_empty_file(void **state)
{
	struct fx *fx = *state;
	int fd = open(fx->path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(store_open(fx->path, &fx->st), 0);
	assert_true(store_schema_version(fx->st) >= 1);
	add_sandbox(fx->st, "a");
	struct store_sandbox s;
	assert_int_equal(store_sandbox_get(fx->st, "a", &s), 0);
}

static void test_open_refuses_newer_schema(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(store_open(fx->path, &fx->st), 0);
	int v = store_schema_version(fx->st);
	add_sandbox(fx->st, "a");
	store_close(fx->st);
	fx->st = NULL;

	char sql[64];
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", v + 1);
	raw_exec(fx->path, sql);
	last_error[0] = '\0';
	struct store *st = (struct store *)0x1;
	assert_int_equal(store_open(fx->path, &st), -ENOTSUP);
	assert_null(st);
	if (!strstr(last_error, "newer"))
		fail_msg("no clear error logged, got '%s'", last_error);
	/* left as it was */
	assert_int_equal(raw_int(fx->path, "PRAGMA user_version"), v + 1);
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM sandboxes"), 1);
}

static void test_open_refuses_a_file_that_is_no_database(void **state)
{
	struct fx *fx = *state;
	FILE *f = fopen(fx->path, "w");
	assert_non_null(f);
	for (int i = 0; i < 200; i++)
		fputs("this is not an SQLite database\n", f);
	fclose(f);
	last_error[0] = '\0';
	assert_int_equal(store_open(fx->path, &fx->st), -EIO);
	assert_null(fx->st);
	assert_true(last_error[0] != '\0');
}

static void test_open_bad_directory(void **state)
{
	struct fx *fx = *state;
	char p[PATH_MAX + 16];
	snprintf(p, sizeof(p), "%s/missing/labgw.db", fx->dir);
	assert_int_equal(store_open(p, &fx->st), -ENOENT);
	assert_null(fx->st);
}

/* ---- settings --------------------------------------------------------------- */

static void test_settings(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	char v[STORE_SETTING_MAX + 1];
	assert_int_equal(store_setting_get(st, "stop", v, sizeof(v)), -ENOENT);
	assert_int_equal(store_setting_set(st, "stop", "on"), 0);
	assert_int_equal(store_setting_get(st, "stop", v, sizeof(v)), 0);
	assert_string_equal(v, "on");
	assert_int_equal(store_setting_set(st, "stop", "off"), 0);
	assert_int_equal(store_setting_get(st, "stop", v, sizeof(v)), 0);
	assert_string_equal(v, "off");
	assert_int_equal(store_setting_set(st, "empty", ""), 0);
	assert_int_equal(store_setting_get(st, "empty", v, sizeof(v)), 0);
	assert_string_equal(v, "");

	/* too small a buffer is refused, not cut; an exact fit is fine */
	char small[4] = "xxx";
	assert_int_equal(store_setting_get(st, "stop", small, 3), -ENOBUFS);
	assert_int_equal(store_setting_get(st, "stop", small, 4), 0);
	assert_string_equal(small, "off");

	/* the size limit: STORE_SETTING_MAX bytes are fine, one more is not */
	char big[STORE_SETTING_MAX + 2];
	memset(big, 's', sizeof(big));
	big[STORE_SETTING_MAX] = '\0';
	assert_int_equal(store_setting_set(st, "big", big), 0);
	assert_int_equal(store_setting_get(st, "big", v, sizeof(v)), 0);
	assert_int_equal(strlen(v), STORE_SETTING_MAX);
	big[STORE_SETTING_MAX] = 's';
	big[STORE_SETTING_MAX + 1] = '\0';
	assert_int_equal(store_setting_set(st, "big", big), -E2BIG);
	assert_int_equal(store_setting_get(st, "big", v, sizeof(v)), 0);
	assert_int_equal(strlen(v), STORE_SETTING_MAX);

	assert_int_equal(store_setting_delete(st, "stop"), 0);
	assert_int_equal(store_setting_delete(st, "stop"), -ENOENT);
	assert_int_equal(store_setting_get(st, "stop", v, sizeof(v)), -ENOENT);
	assert_int_equal(store_setting_set(st, "", "x"), -EINVAL);
}

/* ---- sandboxes ------------------------------------------------------------ */

static void test_sandboxes(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	struct store_sandbox s = sandbox("bob"), got;
	s.quotas = (struct store_quotas){1, 2, 3, 4, 5};
	assert_int_equal(store_sandbox_create(st, &s), 0);
	assert_int_equal(store_sandbox_create(st, &s), -EEXIST);
	assert_int_equal(store_sandbox_get(st, "bob", &got), 0);
	assert_memory_equal(&got, &s, sizeof(s));
	assert_int_equal(store_sandbox_get(st, "bobby", &got), -ENOENT);

	snprintf(s.name, sizeof(s.name), "Renamed");
	s.quotas.sms_per_day = 50;
	s.created_us = 7; /* not changed by update */
	assert_int_equal(store_sandbox_update(st, &s), 0);
	assert_int_equal(store_sandbox_get(st, "bob", &got), 0);
	assert_string_equal(got.name, "Renamed");
	assert_int_equal(got.quotas.sms_per_day, 50);
	assert_int_equal(got.quotas.requests_per_s, 1);
	assert_int_equal(got.created_us, 1000);
	struct store_sandbox nope = sandbox("nope");
	assert_int_equal(store_sandbox_update(st, &nope), -ENOENT);
	s.quotas.tx_per_day = -1;
	assert_int_equal(store_sandbox_update(st, &s), -EINVAL);

	add_sandbox(st, "alice");
	add_sandbox(st, "carol");
	struct names nm;
	assert_int_equal(LIST_SBX(st, nm), 0);
	assert_string_equal(nm.buf, "alice,bob,carol");
	memset(&nm, 0, sizeof(nm));
	nm.stop_after = 2;
	assert_int_equal(store_sandbox_list(st, sbx_cb, &nm), 42);
	assert_string_equal(nm.buf, "alice,bob");

	assert_int_equal(store_sandbox_delete(st, "bob"), 0);
	assert_int_equal(store_sandbox_delete(st, "bob"), -ENOENT);
	assert_int_equal(LIST_SBX(st, nm), 0);
	assert_string_equal(nm.buf, "alice,carol");
}

/* Fields must be terminated within their size; what the file holds is cut
 * to fit (a file edited by hand must not overrun a struct). */
static void test_strings_are_bounded(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	struct store_sandbox s = sandbox("x");
	memset(s.id, 'a', sizeof(s.id));
	assert_int_equal(store_sandbox_create(st, &s), -EINVAL);
	s = sandbox("x");
	memset(s.name, 'n', sizeof(s.name));
	assert_int_equal(store_sandbox_create(st, &s), -EINVAL);
	s.name[STORE_NAME_MAX] = '\0'; /* exactly the longest name */
	assert_int_equal(store_sandbox_create(st, &s), 0);
	struct store_sandbox got;
	assert_int_equal(store_sandbox_get(st, "x", &got), 0);
	assert_int_equal(strlen(got.name), STORE_NAME_MAX);

	char longid[STORE_ID_MAX + 2];
	memset(longid, 'i', sizeof(longid));
	longid[STORE_ID_MAX + 1] = '\0';
	assert_int_equal(store_sandbox_get(st, longid, &got), -EINVAL);
	assert_int_equal(store_sandbox_get(st, "", &got), -EINVAL);

	struct store_key k = key("k", "x");
	memset(k.note, 'z', sizeof(k.note));
	assert_int_equal(store_key_create(st, &k), -EINVAL);
	struct store_claim c = claim("x", 1, "dev");
	memset(c.dev, 'd', sizeof(c.dev));
	assert_int_equal(store_claim_create(st, &c), -EINVAL);

	/* a name far longer than the struct holds, written behind the store's back */
	raw_exec(fx->path,
		 "INSERT INTO sandboxes(id, name, created_us) VALUES "
		 "('long', printf('%.*c', 5000, 'L'), 1);"
		 "INSERT INTO keys(id, sbx, rights, tx_techs, hash, created_us, note) VALUES "
		 "('lk', NULL, 0, 0, zeroblob(32), 1, printf('%.*c', 900, 'N'))");
	assert_int_equal(store_sandbox_get(st, "long", &got), 0);
	assert_int_equal(strlen(got.name), STORE_NAME_MAX);
	assert_int_equal(got.name[0], 'L');
	struct store_key gk;
	assert_int_equal(store_key_get(st, "lk", &gk), 0);
	assert_int_equal(strlen(gk.note), STORE_NAME_MAX);
	assert_string_equal(gk.sbx, "");
}

/* ---- keys ----------------------------------------------------------------- */

static void test_keys(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "bob");
	add_sandbox(st, "bobby");
	struct store_key k = key("k1", "bob"), got;
	assert_int_equal(store_key_create(st, &k), 0);
	assert_int_equal(store_key_create(st, &k), -EEXIST);
	assert_int_equal(store_key_get(st, "k1", &got), 0);
	assert_memory_equal(&got, &k, sizeof(k));
	assert_int_equal(store_key_get(st, "k9", &got), -ENOENT);

	/* staff and kiosk keys belong to no sandbox */
	struct store_key staff = key("staff", "");
	assert_int_equal(store_key_create(st, &staff), 0);
	assert_int_equal(store_key_get(st, "staff", &got), 0);
	assert_string_equal(got.sbx, "");
	assert_memory_equal(got.hash, staff.hash, sizeof(staff.hash));
	struct store_key kiosk = key("kiosk", "");
	assert_int_equal(store_key_create(st, &kiosk), 0);

	/* a key of a sandbox that does not exist */
	struct store_key orphan = key("k2", "nobody");
	assert_int_equal(store_key_create(st, &orphan), -ENOENT);

	struct store_key k3 = key("k3", "bobby");
	assert_int_equal(store_key_create(st, &k3), 0);

	struct names nm;
	assert_int_equal(LIST_KEYS(st, NULL, nm), 0);
	assert_string_equal(nm.buf, "k1@bob,k3@bobby,kiosk@,staff@");
	assert_int_equal(LIST_KEYS(st, "", nm), 0);
	assert_string_equal(nm.buf, "kiosk@,staff@");
	assert_int_equal(LIST_KEYS(st, "bob", nm), 0);
	assert_string_equal(nm.buf, "k1@bob");
	assert_int_equal(LIST_KEYS(st, "carol", nm), 0);
	assert_int_equal(nm.n, 0);

	/* revoking: the first time stands */
	assert_int_equal(store_key_revoke(st, "k1", 5000), 0);
	assert_int_equal(store_key_revoke(st, "k1", 6000), 0);
	assert_int_equal(store_key_get(st, "k1", &got), 0);
	assert_int_equal(got.revoked_us, 5000);
	assert_int_equal(store_key_revoke(st, "k9", 5000), -ENOENT);
	assert_int_equal(store_key_revoke(st, "k1", 0), -EINVAL);

	/* keys go with their sandbox, staff keys stay */
	assert_int_equal(store_sandbox_delete(st, "bob"), 0);
	assert_int_equal(store_key_get(st, "k1", &got), -ENOENT);
	assert_int_equal(LIST_KEYS(st, NULL, nm), 0);
	assert_string_equal(nm.buf, "k3@bobby,kiosk@,staff@");
}

/* ---- claims --------------------------------------------------------------- */

static void test_claims(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	struct store_claim c = claim("a", 3, "26011bda");
	c.has_session_keys = true;
	memset(c.nwkskey, 0x11, sizeof(c.nwkskey));
	memset(c.appskey, 0x22, sizeof(c.appskey));
	assert_int_equal(store_claim_create(st, &c), 0);
	/* one owner per device, across sandboxes and within one */
	assert_int_equal(store_claim_create(st, &c), -EBUSY);
	struct store_claim other = claim("b", 3, "26011bda");
	assert_int_equal(store_claim_create(st, &other), -EBUSY);
	/* the same id on another tech is another device */
	struct store_claim ble = claim("b", 1, "26011bda");
	assert_int_equal(store_claim_create(st, &ble), 0);
	struct store_claim nobody = claim("zz", 1, "x");
	assert_int_equal(store_claim_create(st, &nobody), -ENOENT);

	struct names nm;
	assert_int_equal(LIST_CLAIMS(st, NULL, nm), 0);
	assert_string_equal(nm.buf, "a:3:26011bda+keys,b:1:26011bda");
	assert_int_equal(LIST_CLAIMS(st, "b", nm), 0);
	assert_string_equal(nm.buf, "b:1:26011bda");

	assert_int_equal(store_claim_delete(st, "b", 3, "26011bda"), -ENOENT);
	assert_int_equal(store_claim_delete(st, "a", 3, "26011bda"), 0);
	assert_int_equal(store_claim_delete(st, "a", 3, "26011bda"), -ENOENT);
	/* free again: b may claim it now */
	assert_int_equal(store_claim_create(st, &other), 0);

	/* claims go with their sandbox, and the device is free again */
	assert_int_equal(store_sandbox_delete(st, "b"), 0);
	assert_int_equal(LIST_CLAIMS(st, NULL, nm), 0);
	assert_int_equal(nm.n, 0);
	c.has_session_keys = false;
	assert_int_equal(store_claim_create(st, &c), 0);
	assert_int_equal(LIST_CLAIMS(st, NULL, nm), 0);
	assert_string_equal(nm.buf, "a:3:26011bda");
}

static int claim_keys_cb(void *ud, const struct store_claim *c)
{
	memcpy(ud, c, sizeof(*c));
	return 0;
}

static void test_claim_session_keys_round_trip(void **state)
{
	struct fx *fx = *state;
	add_sandbox(fx->st, "a");
	struct store_claim c = claim("a", 3, "26011bda"), got;
	c.has_session_keys = true;
	for (int i = 0; i < 16; i++) {
		c.nwkskey[i] = (unsigned char)i;
		c.appskey[i] = (unsigned char)(0xf0 | i);
	}
	assert_int_equal(store_claim_create(fx->st, &c), 0);
	memset(&got, 0xaa, sizeof(got));
	assert_int_equal(store_claim_list(fx->st, "a", claim_keys_cb, &got), 0);
	assert_true(got.has_session_keys);
	assert_memory_equal(got.nwkskey, c.nwkskey, 16);
	assert_memory_equal(got.appskey, c.appskey, 16);
	assert_int_equal(got.created_us, c.created_us);
}

/* ---- leases --------------------------------------------------------------- */

static void test_lease_overlap_boundaries(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	int64_t id1, id, frees = -1;
	assert_int_equal(lease(st, "a", "lora0:tx", 100, 200, &id1, &frees), 0);
	assert_true(id1 > 0);
	assert_int_equal(frees, -1); /* untouched on success */

	/* [start, end) is half-open: touching on either side is no overlap */
	assert_int_equal(lease(st, "b", "lora0:tx", 200, 300, &id, &frees), 0);
	assert_true(id > id1);
	assert_int_equal(lease(st, "b", "lora0:tx", 50, 100, &id, &frees), 0);

	/* one microsecond into a neighbour is an overlap */
	assert_int_equal(lease(st, "b", "lora0:tx", 199, 250, &id, &frees), -EBUSY);
	assert_int_equal(frees, 300); /* spans [100,200) and [200,300): the later end */
	assert_int_equal(lease(st, "b", "lora0:tx", 99, 101, &id, &frees), -EBUSY);
	assert_int_equal(frees, 200);
	/* inside, around, equal */
	assert_int_equal(lease(st, "b", "lora0:tx", 120, 130, &id, &frees), -EBUSY);
	assert_int_equal(frees, 200);
	assert_int_equal(lease(st, "b", "lora0:tx", 0, 1000, &id, &frees), -EBUSY);
	assert_int_equal(frees, 300);
	assert_int_equal(lease(st, "a", "lora0:tx", 100, 200, &id, &frees), -EBUSY);
	assert_int_equal(frees, 200);
	/* a gap stays bookable; another resource is independent */
	assert_int_equal(lease(st, "b", "lora0:tx", 0, 50, &id, &frees), 0);
	assert_int_equal(lease(st, "b", "lora0:tx", 300, 400, &id, &frees), 0);
	assert_int_equal(lease(st, "b", "ble0:adv", 100, 200, &id, &frees), 0);
	/* frees_us may be NULL */
	assert_int_equal(lease(st, "b", "lora0:tx", 150, 160, &id, NULL), -EBUSY);

	/* refused up front */
	assert_int_equal(lease(st, "a", "lora0:tx", 500, 500, &id, &frees), -EINVAL);
	assert_int_equal(lease(st, "a", "lora0:tx", 600, 500, &id, &frees), -EINVAL);
	assert_int_equal(lease(st, "nobody", "lora0:tx", 900, 1000, &id, &frees), -ENOENT);
	/* a refused lease left nothing behind */
	struct names nm;
	assert_int_equal(LIST_LEASES(st, NULL, "lora0:tx", 0, nm), 0);
	assert_string_equal(nm.buf, "b:lora0:tx:0-50,b:lora0:tx:50-100,a:lora0:tx:100-200,"
				    "b:lora0:tx:200-300,b:lora0:tx:300-400");
}

static void test_lease_end_and_delete(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	int64_t id, id2, frees;
	assert_int_equal(lease(st, "a", "lora0:tx", 100, 200, &id, &frees), 0);
	/* another sandbox cannot end or delete it */
	assert_int_equal(store_lease_end(st, "b", id, 150), -ENOENT);
	assert_int_equal(store_lease_delete(st, "b", id), -ENOENT);

	/* ended early: the rest of the slot is free */
	assert_int_equal(store_lease_end(st, "a", id, 150), 0);
	assert_int_equal(lease(st, "b", "lora0:tx", 150, 200, &id2, &frees), 0);
	assert_int_equal(lease(st, "b", "lora0:tx", 149, 160, NULL, &frees), -EBUSY);
	assert_int_equal(frees, 200);
	/* never lengthened */
	assert_int_equal(store_lease_end(st, "a", id, 500), 0);
	struct names nm;
	assert_int_equal(LIST_LEASES(st, "a", NULL, 0, nm), 0);
	assert_string_equal(nm.buf, "a:lora0:tx:100-150");
	/* ended before it began: gone */
	assert_int_equal(store_lease_end(st, "a", id, 100), 0);
	assert_int_equal(LIST_LEASES(st, "a", NULL, 0, nm), 0);
	assert_int_equal(nm.n, 0);
	assert_int_equal(store_lease_end(st, "a", id, 100), -ENOENT);

	assert_int_equal(store_lease_delete(st, "b", id2), 0);
	assert_int_equal(store_lease_delete(st, "b", id2), -ENOENT);
	/* ids are not handed out again */
	int64_t id3;
	assert_int_equal(lease(st, "b", "lora0:tx", 100, 200, &id3, &frees), 0);
	assert_true(id3 > id2);
}

static void test_lease_list_filters(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	assert_int_equal(lease(st, "a", "lora0:tx", 100, 200, NULL, NULL), 0);
	assert_int_equal(lease(st, "b", "lora0:tx", 300, 400, NULL, NULL), 0);
	assert_int_equal(lease(st, "a", "ble0:adv", 150, 250, NULL, NULL), 0);
	struct names nm;
	assert_int_equal(LIST_LEASES(st, NULL, NULL, 0, nm), 0);
	assert_string_equal(nm.buf, "a:lora0:tx:100-200,a:ble0:adv:150-250,b:lora0:tx:300-400");
	/* only leases ending after after_us: one ending exactly then is over */
	assert_int_equal(LIST_LEASES(st, NULL, NULL, 200, nm), 0);
	assert_string_equal(nm.buf, "a:ble0:adv:150-250,b:lora0:tx:300-400");
	assert_int_equal(LIST_LEASES(st, "a", NULL, 199, nm), 0);
	assert_string_equal(nm.buf, "a:lora0:tx:100-200,a:ble0:adv:150-250");
	assert_int_equal(LIST_LEASES(st, "a", "ble0:adv", 0, nm), 0);
	assert_string_equal(nm.buf, "a:ble0:adv:150-250");
	assert_int_equal(LIST_LEASES(st, NULL, "lora0:tx", 0, nm), 0);
	assert_int_equal(nm.n, 2);
	assert_int_equal(LIST_LEASES(st, NULL, NULL, 400, nm), 0);
	assert_int_equal(nm.n, 0);
}

/* ---- usage and audit ------------------------------------------------------- */

static void test_usage(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	int64_t t = -1;
	assert_int_equal(store_usage_get(st, "a", 20000, USAGE_TX, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(store_usage_add(st, "a", 20000, USAGE_TX, 1, &t), 0);
	assert_int_equal(t, 1);
	assert_int_equal(store_usage_add(st, "a", 20000, USAGE_TX, 2, &t), 0);
	assert_int_equal(t, 3);
	assert_int_equal(store_usage_add(st, "a", 20000, USAGE_AIRTIME_MS, 1500, NULL), 0);
	assert_int_equal(store_usage_add(st, "a", 20001, USAGE_TX, 5, &t), 0);
	assert_int_equal(t, 5);
	assert_int_equal(store_usage_get(st, "a", 20000, USAGE_TX, &t), 0);
	assert_int_equal(t, 3);
	assert_int_equal(store_usage_get(st, "a", 20000, USAGE_AIRTIME_MS, &t), 0);
	assert_int_equal(t, 1500);
	assert_int_equal(store_usage_get(st, "a", 20000, USAGE_SMS, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(store_usage_add(st, "nobody", 20000, USAGE_TX, 1, &t), -ENOENT);
	assert_int_equal(store_usage_add(st, "a", 20000, (enum store_usage_kind)9, 1, &t), -EINVAL);
}

static struct store_audit audit(const char *sbx, const char *action)
{
	struct store_audit a;
	memset(&a, 0, sizeof(a));
	a.time_us = 123;
	snprintf(a.key_id, sizeof(a.key_id), "k1");
	snprintf(a.sbx, sizeof(a.sbx), "%s", sbx);
	snprintf(a.action, sizeof(a.action), "%s", action);
	snprintf(a.target, sizeof(a.target), "lora0:tx");
	snprintf(a.result, sizeof(a.result), "ok");
	a.size = 23;
	snprintf(a.detail, sizeof(a.detail), "sf7");
	return a;
}

static int audit_copy_cb(void *ud, const struct store_audit *a)
{
	memcpy(ud, a, sizeof(*a));
	return 0;
}

static void test_audit(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	int64_t ids[5];
	const char *sbx[5] = {"a", "", "b", "a", "a"};
	for (int i = 0; i < 5; i++) {
		struct store_audit a = audit(sbx[i], i % 2 ? "stop.on" : "tx");
		assert_int_equal(store_audit_append(st, &a), 0);
		ids[i] = a.id;
		if (i)
			assert_true(ids[i] > ids[i - 1]);
	}
	struct names nm;
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(store_audit_list(st, NULL, 0, 100, audit_cb, &nm), 0);
	assert_int_equal(nm.n, 5);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(store_audit_list(st, "a", 0, 100, audit_cb, &nm), 0);
	char want[128];
	snprintf(want, sizeof(want), "%lld:a:tx,%lld:a:stop.on,%lld:a:tx", (long long)ids[0],
		 (long long)ids[3], (long long)ids[4]);
	assert_string_equal(nm.buf, want);
	/* since and limit: oldest first after since */
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(store_audit_list(st, NULL, ids[1], 2, audit_cb, &nm), 0);
	snprintf(want, sizeof(want), "%lld:b:tx,%lld:a:stop.on", (long long)ids[2],
		 (long long)ids[3]);
	assert_string_equal(nm.buf, want);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(store_audit_list(st, "", 0, 10, audit_cb, &nm), 0);
	assert_int_equal(nm.n, 1);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(store_audit_list(st, NULL, 0, 0, audit_cb, &nm), 0);
	assert_int_equal(nm.n, 0);

	struct store_audit got, a = audit("a", "tx");
	assert_int_equal(store_audit_list(st, NULL, ids[3], 1, audit_copy_cb, &got), 0);
	a.id = ids[4];
	assert_memory_equal(&got, &a, sizeof(a));
}

/* ---- a sandbox's delete ---------------------------------------------------- */

static void test_sandbox_delete_takes_everything_but_audit(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	const char *sbxs[] = {"a", "b"};
	for (int i = 0; i < 2; i++) {
		char kid[8];
		snprintf(kid, sizeof(kid), "k%s", sbxs[i]);
		struct store_key k = key(kid, sbxs[i]);
		assert_int_equal(store_key_create(st, &k), 0);
		struct store_claim c = claim(sbxs[i], 1, kid);
		assert_int_equal(store_claim_create(st, &c), 0);
		assert_int_equal(lease(st, sbxs[i], "ble0:adv", 100 * i, 100 * i + 50, NULL, NULL),
				 0);
		assert_int_equal(store_usage_add(st, sbxs[i], 1, USAGE_SMS, 3, NULL), 0);
		struct store_audit au = audit(sbxs[i], "key.create");
		assert_int_equal(store_audit_append(st, &au), 0);
		assert_int_equal(hwrite_range(st, sbxs[i], 1, 10, 0, 0), 0);
	}

	assert_int_equal(store_sandbox_delete(st, "a"), 0);

	static const char *const tables[] = {"keys", "claims", "leases", "usage", "history"};
	for (size_t i = 0; i < ARRAY_SIZE(tables); i++) {
		char sql[128];
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE sbx = 'a'", tables[i]);
		if (raw_int(fx->path, sql))
			fail_msg("rows of the deleted sandbox left in %s", tables[i]);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM %s WHERE sbx = 'b'", tables[i]);
		if (raw_int(fx->path, sql) < 1)
			fail_msg("rows of another sandbox gone from %s", tables[i]);
	}
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM audit WHERE sbx = 'a'"), 1);

	/* a new team under the same id starts from nothing */
	add_sandbox(st, "a");
	struct names nm;
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 100, nm), 0);
	assert_int_equal(nm.n, 0);
	int64_t t = -1;
	assert_int_equal(store_usage_get(st, "a", 1, USAGE_SMS, &t), 0);
	assert_int_equal(t, 0);
	assert_int_equal(LIST_KEYS(st, "a", nm), 0);
	assert_int_equal(nm.n, 0);
}

/* The schema's own cascade, for rows that reach the tables another way. */
static void test_foreign_keys_cascade(void **state)
{
	struct fx *fx = *state;
	add_sandbox(fx->st, "a");
	struct store_claim c = claim("a", 1, "dev1");
	assert_int_equal(store_claim_create(fx->st, &c), 0);
	struct store_key k = key("k", "a");
	assert_int_equal(store_key_create(fx->st, &k), 0);
	raw_exec(fx->path, "PRAGMA foreign_keys = ON; DELETE FROM sandboxes WHERE id = 'a'");
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM claims"), 0);
	assert_int_equal(raw_int(fx->path, "SELECT count(*) FROM keys"), 0);
}

/* ---- history -------------------------------------------------------------- */

struct hcheck {
	uint64_t last;
	int n;
	const char *dev; /* every row's topic ends with it, or NULL */
};

static int hcheck_cb(void *ud, uint64_t seq, int64_t time_us, const char *topic, const char *json)
{
	struct hcheck *hc = ud;
	char want[64];
	snprintf(want, sizeof(want), "{\"seq\":%llu}", (unsigned long long)seq);
	if (seq <= hc->last || strcmp(json, want) || time_us != (int64_t)seq * 1000)
		return -1000;
	if (hc->dev && strcmp(strrchr(topic, '/') + 1, hc->dev))
		return -1001;
	hc->last = seq;
	hc->n++;
	return 0;
}

static void test_history_write_and_query(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	struct store_history_row rows[8];
	const char *devs[] = {"d0", "d1"};
	for (int i = 0; i < 8; i++)
		rows[i] = hrow(i < 6 ? "a" : "b", (uint64_t)(i + 1), (i + 1) * 1000, devs[i % 2]);
	assert_int_equal(store_history_write(st, rows, 8, 0, 0), 0);
	hrows_free(rows, 8);

	struct names nm;
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "1,2,3,4,5,6");
	assert_int_equal(LIST_HIST(st, "b", 0, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "7,8");
	assert_int_equal(LIST_HIST(st, "a", 3, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "4,5,6");
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 2, nm), 0);
	assert_string_equal(nm.buf, "1,2");
	/* the limit counts matches, not rows read */
	assert_int_equal(LIST_HIST(st, "a", 0, "labgw/v1/sbx/a/rx/ble/+/+/d1", 2, nm), 0);
	assert_string_equal(nm.buf, "2,4");
	assert_int_equal(LIST_HIST(st, "a", 0, "labgw/v1/sbx/a/#", 100, nm), 0);
	assert_int_equal(nm.n, 6);
	assert_int_equal(LIST_HIST(st, "a", 0, "labgw/v1/sbx/b/#", 100, nm), 0);
	assert_int_equal(nm.n, 0);
	assert_int_equal(LIST_HIST(st, "a", 6, NULL, 100, nm), 0);
	assert_int_equal(nm.n, 0);
	assert_int_equal(LIST_HIST(st, "a", UINT64_MAX, NULL, 100, nm), 0);
	assert_int_equal(nm.n, 0);
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 0, nm), 0);
	assert_int_equal(nm.n, 0);
	assert_int_equal(LIST_HIST(st, "a", 0, "a/#/b", 10, nm), -EINVAL);
	/* early stop returns the callback's value */
	memset(&nm, 0, sizeof(nm));
	nm.stop_after = 1;
	assert_int_equal(store_history_query(st, "a", 0, NULL, 10, hist_cb, &nm), 42);
	struct hcheck hc = {0, 0, "d1"};
	assert_int_equal(store_history_query(st, "a", 0, "labgw/v1/sbx/a/rx/ble/lab1/ble0/d1", 10,
					     hcheck_cb, &hc),
			 0);
	assert_int_equal(hc.n, 3);

	/* a retried batch is kept once; an empty batch is fine */
	assert_int_equal(hwrite_range(st, "a", 5, 7, 0, 0), 0);
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "1,2,3,4,5,6,7");
	assert_int_equal(store_history_write(st, NULL, 0, 0, 0), 0);
}

static void test_history_write_checks_the_batch_first(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	struct store_history_row rows[2] = {hrow("a", 1, 1000, "d0"),
					    hrow("a", (uint64_t)INT64_MAX + 1, 2000, "d0")};
	assert_int_equal(store_history_write(st, rows, 2, 0, 0), -ERANGE);
	free(rows[1].json);
	rows[1].json = NULL;
	rows[1].seq = 2;
	assert_int_equal(store_history_write(st, rows, 2, 0, 0), -EINVAL);
	hrows_free(rows, 2);
	assert_int_equal(hist_count(fx->path, "a"), 0);

	/* rows of a sandbox that is gone (deleted while the batch waited) are
	 * dropped; the rest of the batch is written */
	struct store_history_row mixed[2] = {hrow("a", 1, 1000, "d0"), hrow("gone", 2, 2000, "d0")};
	assert_int_equal(store_history_write(st, mixed, 2, 0, 0), 0);
	hrows_free(mixed, 2);
	assert_int_equal(hist_count(fx->path, "a"), 1);
	assert_int_equal(hist_count(fx->path, "gone"), 0);
}

static void test_history_trim_by_count(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	assert_int_equal(hwrite_range(st, "b", 1, 30, 0, 0), 0);
	assert_int_equal(hwrite_range(st, "a", 101, 120, 10, 0), 0);
	struct names nm;
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "111,112,113,114,115,116,117,118,119,120");
	/* the newest by seq stay, whatever order they came in */
	assert_int_equal(hwrite_range(st, "a", 121, 125, 10, 0), 0);
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "116,117,118,119,120,121,122,123,124,125");
	/* only the sandboxes of the batch are trimmed */
	assert_int_equal(hist_count(fx->path, "b"), 30);
	/* exactly max_rows: nothing goes */
	assert_int_equal(hwrite_range(st, "b", 31, 31, 31, 0), 0);
	assert_int_equal(hist_count(fx->path, "b"), 31);
	assert_int_equal(hwrite_range(st, "b", 32, 32, 31, 0), 0);
	assert_int_equal(hist_count(fx->path, "b"), 31);
	assert_int_equal(LIST_HIST(st, "b", 0, NULL, 1, nm), 0);
	assert_string_equal(nm.buf, "2");
}

static void test_history_trim_by_age(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	add_sandbox(st, "b");
	assert_int_equal(hwrite_range(st, "a", 1, 50, 0, 0), 0);
	assert_int_equal(hwrite_range(st, "b", 1, 50, 0, 0), 0);
	/* rows with time_us >= min_time_us stay (time_us = seq * 1000) */
	assert_int_equal(hwrite_range(st, "a", 51, 60, 0, 45000), 0);
	struct names nm;
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 1, nm), 0);
	assert_string_equal(nm.buf, "45");
	assert_int_equal(hist_count(fx->path, "a"), 16);
	assert_int_equal(hist_count(fx->path, "b"), 50);
	/* both limits at once: the stricter one wins */
	assert_int_equal(hwrite_range(st, "a", 61, 61, 5, 50000), 0);
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "57,58,59,60,61");
	assert_int_equal(hwrite_range(st, "a", 62, 62, 100, 58000), 0);
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 100, nm), 0);
	assert_string_equal(nm.buf, "58,59,60,61,62");
	/* everything too old, the new rows included */
	assert_int_equal(hwrite_range(st, "a", 63, 64, 0, INT64_MAX), 0);
	assert_int_equal(hist_count(fx->path, "a"), 0);
}

/* The history writer on a worker thread while the loop thread reads the
 * history and writes elsewhere: every reader sees whole batches in seq order,
 * a since-cursor reader misses nothing, and no call fails with "locked". */
struct writer {
	struct store *st;
	int batches, per_batch;
	atomic_int failures;
	atomic_bool done;
};

static void *writer_main(void *arg)
{
	struct writer *w = arg;
	struct store_history_row *rows = calloc((size_t)w->per_batch, sizeof(*rows));
	for (int b = 0; rows && b < w->batches; b++) {
		for (int i = 0; i < w->per_batch; i++) {
			uint64_t seq = (uint64_t)(b * w->per_batch + i + 1);
			char dev[8];
			snprintf(dev, sizeof(dev), "d%d", (int)(seq % 4));
			rows[i] = hrow("a", seq, (int64_t)seq * 1000, dev);
		}
		if (store_history_write(w->st, rows, (size_t)w->per_batch, 0, 0))
			atomic_fetch_add(&w->failures, 1);
		hrows_free(rows, (size_t)w->per_batch);
		if (b % 16 == 0)
			sched_yield();
	}
	if (!rows)
		atomic_fetch_add(&w->failures, 1);
	free(rows);
	atomic_store(&w->done, true);
	return NULL;
}

static void test_history_worker_thread_with_loop_readers(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	struct writer w = {.st = st, .batches = 200, .per_batch = 50};
	atomic_init(&w.failures, 0);
	atomic_init(&w.done, false);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, writer_main, &w), 0);

	const char *filter = "labgw/v1/sbx/a/rx/ble/+/+/d1";
	struct hcheck cursor = {0, 0, "d1"};
	int rounds = 0, concurrent = 0;
	while (!atomic_load(&w.done) || rounds < 3) {
		bool during = !atomic_load(&w.done);
		/* a snapshot read from the start */
		struct hcheck full = {0, 0, "d1"};
		assert_int_equal(store_history_query(st, "a", 0, filter, 200, hcheck_cb, &full), 0);
		/* a client catching up from its cursor */
		assert_int_equal(
			store_history_query(st, "a", cursor.last, filter, 100, hcheck_cb, &cursor),
			0);
		if (rounds % 32 == 0) {
			struct store_audit au = audit("a", "tx");
			assert_int_equal(store_audit_append(st, &au), 0);
			assert_int_equal(store_usage_add(st, "a", 1, USAGE_TX, 1, NULL), 0);
		}
		rounds++;
		concurrent += during;
	}
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(atomic_load(&w.failures), 0);
	for (int i = 0; i < 100 && cursor.last < 9997; i++)
		assert_int_equal(
			store_history_query(st, "a", cursor.last, filter, 100, hcheck_cb, &cursor),
			0);
	/* d1 rows are seq 1, 5, 9, ... 9997: each seen once, in order */
	assert_int_equal(cursor.n, 2500);
	assert_int_equal(cursor.last, 9997);
	assert_int_equal(hist_count(fx->path, "a"), 10000);
	if (!concurrent)
		print_message("note: the writer finished before the first read\n");
}

/* Another writer (here: a second process's connection) holding the lock for
 * a moment makes a store write wait, not fail. */
struct locker {
	const char *path;
	atomic_bool locked;
};

static void *locker_main(void *arg)
{
	struct locker *lk = arg;
	sqlite3 *db = raw_open(lk->path);
	sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	atomic_store(&lk->locked, true);
	usleep(300 * 1000);
	sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	sqlite3_close(db);
	return NULL;
}

static void test_write_waits_for_another_writer(void **state)
{
	struct fx *fx = *state;
	struct locker lk = {.path = fx->path};
	atomic_init(&lk.locked, false);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, locker_main, &lk), 0);
	while (!atomic_load(&lk.locked))
		usleep(1000);
	uint64_t t0 = time_now_us();
	assert_int_equal(store_setting_set(fx->st, "stop", "on"), 0);
	assert_true(time_now_us() - t0 >= 200 * 1000);
	assert_int_equal(pthread_join(t, NULL), 0);
}

/* ---- durability ------------------------------------------------------------ */

static void test_reopen_after_close_keeps_everything(void **state)
{
	struct fx *fx = *state;
	assert_int_equal(store_open(fx->path, &fx->st), 0);
	struct store *st = fx->st;
	add_sandbox(st, "a");
	struct store_key k = key("k", "a");
	assert_int_equal(store_key_create(st, &k), 0);
	struct store_claim c = claim("a", 2, "02:00:00:00:00:01");
	assert_int_equal(store_claim_create(st, &c), 0);
	int64_t lid;
	assert_int_equal(lease(st, "a", "wlan0:scan", 10, 20, &lid, NULL), 0);
	assert_int_equal(store_usage_add(st, "a", 3, USAGE_TX, 4, NULL), 0);
	struct store_audit au = audit("a", "tx");
	assert_int_equal(store_audit_append(st, &au), 0);
	assert_int_equal(store_setting_set(st, "stop", "on"), 0);
	assert_int_equal(hwrite_range(st, "a", 1, 3, 0, 0), 0);
	store_close(st);
	fx->st = NULL;
	/* the last close folds the WAL into the database file */
	char wal[PATH_MAX + 8];
	snprintf(wal, sizeof(wal), "%s-wal", fx->path);
	assert_int_equal(access(wal, F_OK), -1);

	assert_int_equal(store_open(fx->path, &fx->st), 0);
	st = fx->st;
	struct store_sandbox s;
	assert_int_equal(store_sandbox_get(st, "a", &s), 0);
	struct store_key gk;
	assert_int_equal(store_key_get(st, "k", &gk), 0);
	assert_memory_equal(&gk, &k, sizeof(k));
	struct names nm;
	assert_int_equal(LIST_CLAIMS(st, "a", nm), 0);
	assert_string_equal(nm.buf, "a:2:02:00:00:00:00:01");
	assert_int_equal(LIST_LEASES(st, "a", NULL, 0, nm), 0);
	assert_string_equal(nm.buf, "a:wlan0:scan:10-20");
	int64_t t;
	assert_int_equal(store_usage_get(st, "a", 3, USAGE_TX, &t), 0);
	assert_int_equal(t, 4);
	memset(&nm, 0, sizeof(nm));
	assert_int_equal(store_audit_list(st, "a", 0, 10, audit_cb, &nm), 0);
	assert_int_equal(nm.n, 1);
	char v[16];
	assert_int_equal(store_setting_get(st, "stop", v, sizeof(v)), 0);
	assert_string_equal(v, "on");
	assert_int_equal(LIST_HIST(st, "a", 0, NULL, 10, nm), 0);
	assert_string_equal(nm.buf, "1,2,3");
}

/* Power loss cannot be staged in-process; what can be checked is that the
 * WAL was synced before a loop-thread write returned (synchronous=FULL),
 * and that history batches skip that cost (synchronous=NORMAL). */
static void test_loop_writes_are_synced_before_returning(void **state)
{
	struct fx *fx = *state;
	struct store *st = fx->st;
	add_sandbox(st, "a");
	int before = atomic_load(&wal_syncs);
	struct store_key k = key("k", "a");
	assert_int_equal(store_key_create(st, &k), 0);
	assert_true(atomic_load(&wal_syncs) > before);
	before = atomic_load(&wal_syncs);
	assert_int_equal(lease(st, "a", "lora0:tx", 1, 2, NULL, NULL), 0);
	assert_true(atomic_load(&wal_syncs) > before);
	before = atomic_load(&wal_syncs);
	assert_int_equal(store_usage_add(st, "a", 1, USAGE_TX, 1, NULL), 0);
	assert_true(atomic_load(&wal_syncs) > before);
	before = atomic_load(&wal_syncs);
	assert_int_equal(store_sandbox_delete(st, "a"), 0);
	assert_true(atomic_load(&wal_syncs) > before);

	add_sandbox(st, "b");
	before = atomic_load(&wal_syncs);
	assert_int_equal(hwrite_range(st, "b", 1, 20, 0, 0), 0);
	assert_int_equal(atomic_load(&wal_syncs), before);
}

/* A child writes key `id` and dies right after store_key_create returns;
 * the parent finds it. how: 0 _exit(0) (no close), 1 SIGKILL. */
static void key_survives_death(struct fx *fx, int how, const char *id)
{
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *st;
		if (store_open(fx->path, &st))
			_exit(2);
		struct store_sandbox s = sandbox("a");
		if (store_sandbox_create(st, &s) && store_sandbox_get(st, "a", &s))
			_exit(3);
		struct store_key k = key(id, "a");
		if (store_key_create(st, &k))
			_exit(4);
		if (how)
			raise(SIGKILL);
		_exit(0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	if (how) {
		if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
			fail_msg("child did not die by SIGKILL (status %#x)", status);
	} else {
		if (!WIFEXITED(status) || WEXITSTATUS(status))
			fail_msg("child failed (status %#x)", status);
	}
	assert_int_equal(store_open(fx->path, &fx->st), 0);
	struct store_key want = key(id, "a"), got;
	assert_int_equal(store_key_get(fx->st, id, &got), 0);
	assert_memory_equal(&got, &want, sizeof(want));
	store_close(fx->st);
	fx->st = NULL;
}

static void test_key_survives_exit_without_close(void **state)
{
	key_survives_death(*state, 0, "k0");
}

static void test_key_survives_sigkill(void **state)
{
	struct fx *fx = *state;
	key_survives_death(fx, 1, "k1");
	key_survives_death(fx, 1, "k2"); /* and once more on the recovered file */
	assert_int_equal(store_open(fx->path, &fx->st), 0);
	struct names nm;
	assert_int_equal(LIST_KEYS(fx->st, "a", nm), 0);
	assert_string_equal(nm.buf, "k1@a,k2@a");
}

/* ---- disk full -------------------------------------------------------------- */

/* Fill the file system that will hold `filler` to the last byte, then give
 * back `room` bytes. */
static void fill_disk(const char *filler, off_t room)
{
	int fd = open(filler, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	assert_true(fd >= 0);
	static char chunk[65536];
	memset(chunk, 'F', sizeof(chunk));
	size_t sizes[] = {sizeof(chunk), 4096, 512, 1};
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		for (;;) {
			ssize_t n = write(fd, chunk, sizes[i]);
			if (n < 0) {
				assert_int_equal(errno, ENOSPC);
				break;
			}
		}
	}
	off_t size = lseek(fd, 0, SEEK_END);
	assert_true(size > room);
	assert_int_equal(ftruncate(fd, size - room), 0);
	close(fd);
}

static void test_disk_full_is_enospc_and_loses_nothing(void **state)
{
	struct fx *fx = *state;
	char mnt[PATH_MAX + 8], db[PATH_MAX + 16], filler[PATH_MAX + 16];
	snprintf(mnt, sizeof(mnt), "%s/mnt", fx->dir);
	snprintf(db, sizeof(db), "%s/labgw.db", mnt);
	snprintf(filler, sizeof(filler), "%s/filler", mnt);
	assert_int_equal(mkdir(mnt, 0700), 0);
	/* A private mount namespace: the tmpfs is seen by no one else and
	 * goes away with this process if the test dies half-way. */
	if (unshare(CLONE_NEWNS) == 0)
		mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=1m,mode=0700") != 0)
		fail_msg("cannot mount a 1 MB tmpfs on %s (%s): this test needs root "
			 "(CAP_SYS_ADMIN) to simulate a full disk",
			 mnt, strerror(errno));

	struct store *st;
	assert_int_equal(store_open(db, &st), 0);
	add_sandbox(st, "keep");
	struct store_key k = key("k", "keep");
	assert_int_equal(store_key_create(st, &k), 0);
	assert_int_equal(store_setting_set(st, "before", "yes"), 0);
	assert_int_equal(hwrite_range(st, "keep", 1, 5, 0, 0), 0);

	/* room for a few writes, so some succeed right up to the edge */
	fill_disk(filler, 64 * 1024);

	/* loop-thread writes: each either durable (0) or -ENOSPC */
	static char big[STORE_SETTING_MAX + 1];
	memset(big, 'v', STORE_SETTING_MAX);
	int ok = 0, rc = 0;
	for (; ok < 1000; ok++) {
		char name[32];
		snprintf(name, sizeof(name), "fill%d", ok);
		big[0] = (char)('a' + ok % 26);
		rc = store_setting_set(st, name, big);
		if (rc)
			break;
	}
	assert_int_equal(rc, -ENOSPC);
	if (!strstr(last_error, "disk is full"))
		fail_msg("no clear error logged, got '%s'", last_error);
	/* the history connection too */
	uint64_t seq = 6;
	for (int i = 0; i < 1000; i++) {
		struct store_history_row r = hrow("keep", seq, (int64_t)seq * 1000, "d0");
		free(r.json);
		r.json = malloc(20000);
		assert_non_null(r.json);
		memset(r.json, 'j', 19999);
		r.json[19999] = '\0';
		rc = store_history_write(st, &r, 1, 0, 0);
		hrows_free(&r, 1);
		if (rc)
			break;
		seq++;
	}
	assert_int_equal(rc, -ENOSPC);
	/* reads still work while the disk is full */
	struct store_sandbox s;
	assert_int_equal(store_sandbox_get(st, "keep", &s), 0);
	char v[STORE_SETTING_MAX + 1];
	assert_int_equal(store_setting_get(st, "before", v, sizeof(v)), 0);
	store_close(st); /* its checkpoint may fail for want of space: nothing is lost */

	/* space comes back */
	assert_int_equal(unlink(filler), 0);
	assert_int_equal(store_open(db, &st), 0);
	assert_int_equal(store_sandbox_get(st, "keep", &s), 0);
	struct store_key gk;
	assert_int_equal(store_key_get(st, "k", &gk), 0);
	assert_memory_equal(&gk, &k, sizeof(k));
	assert_int_equal(store_setting_get(st, "before", v, sizeof(v)), 0);
	for (int i = 0; i <= ok; i++) {
		char name[32];
		snprintf(name, sizeof(name), "fill%d", i);
		rc = store_setting_get(st, name, v, sizeof(v));
		if (i < ok) {
			assert_int_equal(rc, 0);
			assert_int_equal(strlen(v), STORE_SETTING_MAX);
			assert_int_equal(v[0], 'a' + i % 26);
		} else {
			assert_int_equal(rc, -ENOENT); /* the one that failed is not half there */
		}
	}
	struct hcheck hc = {0, 0, NULL};
	struct names nm;
	assert_int_equal(LIST_HIST(st, "keep", 0, NULL, 1000, nm), 0);
	assert_int_equal(nm.n, (int)seq - 1);
	assert_int_equal(store_history_query(st, "keep", 0, NULL, 5, hcheck_cb, &hc), 0);
	assert_int_equal(hc.n, 5);
	/* and it takes writes again */
	add_sandbox(st, "after");
	store_close(st);

	char check[64];
	raw_text(db, "PRAGMA integrity_check", check, sizeof(check));
	assert_string_equal(check, "ok");
	if (umount2(mnt, MNT_DETACH) != 0)
		fail_msg("umount %s: %s", mnt, strerror(errno));
}

/* ---- callbacks ------------------------------------------------------------ */

struct reenter {
	struct store *st;
	int inner_list, inner_get;
};

static int reenter_cb(void *ud, const struct store_sandbox *s)
{
	struct reenter *r = ud;
	struct names nm;
	r->inner_list = LIST_SBX(r->st, nm);
	struct store_sandbox got;
	r->inner_get = store_sandbox_get(r->st, s->id, &got);
	return 0;
}

static void test_list_callback_reentry(void **state)
{
	struct fx *fx = *state;
	add_sandbox(fx->st, "a");
	struct reenter r = {fx->st, 1, 1};
	assert_int_equal(store_sandbox_list(fx->st, reenter_cb, &r), 0);
	assert_int_equal(r.inner_list, -EDEADLK);
	assert_int_equal(r.inner_get, 0);
	/* and the statement is usable afterwards */
	struct names nm;
	assert_int_equal(LIST_SBX(fx->st, nm), 0);
	assert_string_equal(nm.buf, "a");
}

int main(void)
{
	log_set_level(LOG_LVL_WARNING);
	log_set_hook(log_hook, NULL);
#define T(f)  cmocka_unit_test_setup_teardown(f, setup, teardown)
#define TO(f) cmocka_unit_test_setup_teardown(f, setup_open, teardown)
	const struct CMUnitTest tests[] = {
		T(test_open_creates_and_migrates_new_file),
		T(test_open_migrates_empty_file),
		T(test_open_refuses_newer_schema),
		T(test_open_refuses_a_file_that_is_no_database),
		T(test_open_bad_directory),
		TO(test_settings),
		TO(test_sandboxes),
		TO(test_strings_are_bounded),
		TO(test_keys),
		TO(test_claims),
		TO(test_claim_session_keys_round_trip),
		TO(test_lease_overlap_boundaries),
		TO(test_lease_end_and_delete),
		TO(test_lease_list_filters),
		TO(test_usage),
		TO(test_audit),
		TO(test_sandbox_delete_takes_everything_but_audit),
		TO(test_foreign_keys_cascade),
		TO(test_history_write_and_query),
		TO(test_history_write_checks_the_batch_first),
		TO(test_history_trim_by_count),
		TO(test_history_trim_by_age),
		TO(test_history_worker_thread_with_loop_readers),
		TO(test_write_waits_for_another_writer),
		T(test_reopen_after_close_keeps_everything),
		TO(test_loop_writes_are_synced_before_returning),
		T(test_key_survives_exit_without_close),
		T(test_key_survives_sigkill),
		TO(test_list_callback_reentry),
		T(test_disk_full_is_enospc_and_loses_nothing),
	};
	return cmocka_run_group_tests_name("store", tests, NULL, NULL);
}
