/* The SQLite database of DESIGN §9.
 *
 * Two connections to one WAL database:
 *  - the main connection, used only by the loop thread (everything but
 *    store_history_write), synchronous=FULL so a commit is on disk before
 *    the call returns;
 *  - the history connection, used only by store_history_write (a worker
 *    thread), synchronous=NORMAL, serialised by hist_lock.
 * Both are opened with SQLITE_OPEN_NOMUTEX ("multi-thread" mode): a
 * connection is never used by two threads at once (the loop thread owns one,
 * hist_lock guards the other), so SQLite's per-connection mutex would only
 * add cost; SQLite's global state stays locked as long as the library was
 * built thread-safe, which store_open checks. FULLMUTEX would not be enough
 * on its own anyway: it serialises single calls, not a BEGIN..COMMIT.
 * WAL lets the loop thread read while the worker writes; writers of the two
 * connections take turns under busy_timeout. Transactions of several
 * statements are BEGIN IMMEDIATE (a single write statement takes the write
 * lock up front anyway), so none can fail half-way to upgrade a stale read
 * snapshot with SQLITE_BUSY_SNAPSHOT, which no busy handler retries.
 */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "topic.h"
#include "util.h"

#define BUSY_TIMEOUT_MS 5000

/* ---- schema --------------------------------------------------------------- */

/* Migration N (1-based) takes user_version from N-1 to N in one transaction.
 * Append only; never edit a step that has shipped. A step that rebuilds a
 * table must cope with foreign_keys=ON (the pragma is a no-op inside a
 * transaction). */
static const char *const migrations[] = {
	/* 1: every table of the first release */
	"CREATE TABLE settings ("
	"  name TEXT PRIMARY KEY NOT NULL,"
	"  value TEXT NOT NULL"
	") STRICT;"

	"CREATE TABLE sandboxes ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  name TEXT NOT NULL,"
	"  created_us INTEGER NOT NULL,"
	"  requests_per_s INTEGER NOT NULL DEFAULT 0,"
	"  frames_per_s INTEGER NOT NULL DEFAULT 0,"
	"  tx_per_day INTEGER NOT NULL DEFAULT 0,"
	"  airtime_ms_per_day INTEGER NOT NULL DEFAULT 0,"
	"  sms_per_day INTEGER NOT NULL DEFAULT 0"
	") STRICT;"

	/* sbx NULL is a staff or kiosk key (the API's ""): a NULL foreign key
	 * refers to nothing and is always allowed */
	"CREATE TABLE keys ("
	"  id TEXT PRIMARY KEY NOT NULL,"
	"  sbx TEXT REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  rights INTEGER NOT NULL,"
	"  tx_techs INTEGER NOT NULL,"
	"  hash BLOB NOT NULL CHECK (length(hash) = 32),"
	"  created_us INTEGER NOT NULL,"
	"  expires_us INTEGER NOT NULL DEFAULT 0,"
	"  revoked_us INTEGER NOT NULL DEFAULT 0,"
	"  note TEXT NOT NULL DEFAULT ''"
	") STRICT;"
	"CREATE INDEX keys_sbx ON keys(sbx);"

	/* a device has at most one owner, whichever sandbox */
	"CREATE TABLE claims ("
	"  sbx TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  tech INTEGER NOT NULL,"
	"  dev TEXT NOT NULL,"
	"  created_us INTEGER NOT NULL,"
	"  nwkskey BLOB CHECK (nwkskey IS NULL OR length(nwkskey) = 16),"
	"  appskey BLOB CHECK (appskey IS NULL OR length(appskey) = 16),"
	"  UNIQUE (tech, dev)"
	") STRICT;"
	"CREATE INDEX claims_sbx ON claims(sbx);"

	/* AUTOINCREMENT: a deleted lease's id is never handed out again.
	 * Leases of one resource never overlap (store_lease_create is the only
	 * way in, store_lease_end only shortens). */
	"CREATE TABLE leases ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  sbx TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  resource TEXT NOT NULL,"
	"  start_us INTEGER NOT NULL,"
	"  end_us INTEGER NOT NULL,"
	"  created_us INTEGER NOT NULL,"
	"  CHECK (end_us > start_us)"
	") STRICT;"
	"CREATE INDEX leases_resource ON leases(resource, start_us, end_us);"
	"CREATE INDEX leases_sbx ON leases(sbx);"
	"CREATE INDEX leases_end ON leases(end_us);"

	"CREATE TABLE usage ("
	"  sbx TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  day INTEGER NOT NULL,"
	"  kind INTEGER NOT NULL,"
	"  total INTEGER NOT NULL,"
	"  PRIMARY KEY (sbx, day, kind)"
	") STRICT, WITHOUT ROWID;"

	/* no foreign keys: the audit log outlives sandboxes and keys */
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  time_us INTEGER NOT NULL,"
	"  key_id TEXT NOT NULL,"
	"  sbx TEXT NOT NULL,"
	"  action TEXT NOT NULL,"
	"  target TEXT NOT NULL,"
	"  result TEXT NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  detail TEXT NOT NULL"
	") STRICT;"
	"CREATE INDEX audit_sbx ON audit(sbx, id);"

	/* the primary key is the (sbx, seq) index every query and trim walks */
	"CREATE TABLE history ("
	"  sbx TEXT NOT NULL REFERENCES sandboxes(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  time_us INTEGER NOT NULL,"
	"  topic TEXT NOT NULL,"
	"  json TEXT NOT NULL,"
	"  PRIMARY KEY (sbx, seq)"
	") STRICT;",

	/* 2: BLE claims may carry the device's identity resolving key */
	"ALTER TABLE claims ADD COLUMN irk BLOB CHECK (irk IS NULL OR length(irk) = 16);",
};

#define SCHEMA_VERSION ((int)ARRAY_SIZE(migrations))

/* ---- cached statements ---------------------------------------------------- */

#define SBX_COLS                                                                                   \
	"id, name, created_us, requests_per_s, frames_per_s, tx_per_day, airtime_ms_per_day, "     \
	"sms_per_day"
#define KEY_COLS   "id, sbx, rights, tx_techs, hash, created_us, expires_us, revoked_us, note"
#define CLAIM_COLS "sbx, tech, dev, created_us, nwkskey, appskey, irk"
#define LEASE_COLS "id, sbx, resource, start_us, end_us, created_us"
#define AUDIT_COLS "id, time_us, key_id, sbx, action, target, result, size, detail"

/* main connection */
enum stmt {
	S_BEGIN,
	S_COMMIT,
	S_ROLLBACK,
	S_SETTING_GET,
	S_SETTING_SET,
	S_SETTING_DELETE,
	S_SBX_INSERT,
	S_SBX_GET,
	S_SBX_UPDATE,
	S_SBX_LIST,
	S_SBX_DEL_HISTORY,
	S_SBX_DEL_USAGE,
	S_SBX_DEL_LEASES,
	S_SBX_DEL_CLAIMS,
	S_SBX_DEL_KEYS,
	S_SBX_DELETE,
	S_KEY_INSERT,
	S_KEY_GET,
	S_KEY_REVOKE,
	S_KEY_LIST_ALL,
	S_KEY_LIST_SBX,
	S_CLAIM_INSERT,
	S_CLAIM_DELETE,
	S_CLAIM_LIST_ALL,
	S_CLAIM_LIST_SBX,
	S_LEASE_BEFORE,
	S_LEASE_INSERT,
	S_LEASE_DELETE,
	S_LEASE_SHORTEN,
	S_LEASE_DROP_UNSTARTED,
	S_LEASE_LIST,
	S_USAGE_ADD,
	S_USAGE_GET,
	S_AUDIT_INSERT,
	S_AUDIT_LIST_ALL,
	S_AUDIT_LIST_SBX,
	S_HISTORY_QUERY,
	S_COUNT
};

static const char *const stmt_sql[S_COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
	[S_SETTING_SET] = "INSERT INTO settings(name, value) VALUES (?1, ?2) "
			  "ON CONFLICT(name) DO UPDATE SET value = excluded.value",
	[S_SETTING_DELETE] = "DELETE FROM settings WHERE name = ?1",
	[S_SBX_INSERT] =
		"INSERT INTO sandboxes(" SBX_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_SBX_GET] = "SELECT " SBX_COLS " FROM sandboxes WHERE id = ?1",
	[S_SBX_UPDATE] = "UPDATE sandboxes SET name = ?2, requests_per_s = ?4, frames_per_s = ?5, "
			 "tx_per_day = ?6, airtime_ms_per_day = ?7, sms_per_day = ?8 WHERE id = ?1",
	[S_SBX_LIST] = "SELECT " SBX_COLS " FROM sandboxes ORDER BY id",
	[S_SBX_DEL_HISTORY] = "DELETE FROM history WHERE sbx = ?1",
	[S_SBX_DEL_USAGE] = "DELETE FROM usage WHERE sbx = ?1",
	[S_SBX_DEL_LEASES] = "DELETE FROM leases WHERE sbx = ?1",
	[S_SBX_DEL_CLAIMS] = "DELETE FROM claims WHERE sbx = ?1",
	[S_SBX_DEL_KEYS] = "DELETE FROM keys WHERE sbx = ?1",
	[S_SBX_DELETE] = "DELETE FROM sandboxes WHERE id = ?1",
	[S_KEY_INSERT] =
		"INSERT INTO keys(" KEY_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[S_KEY_GET] = "SELECT " KEY_COLS " FROM keys WHERE id = ?1",
	/* the first revocation time stands */
	[S_KEY_REVOKE] = "UPDATE keys SET revoked_us = CASE revoked_us WHEN 0 THEN ?2 "
			 "ELSE revoked_us END WHERE id = ?1",
	[S_KEY_LIST_ALL] = "SELECT " KEY_COLS " FROM keys ORDER BY id",
	[S_KEY_LIST_SBX] = "SELECT " KEY_COLS " FROM keys WHERE sbx IS ?1 ORDER BY id",
	[S_CLAIM_INSERT] = "INSERT INTO claims(" CLAIM_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[S_CLAIM_DELETE] = "DELETE FROM claims WHERE sbx = ?1 AND tech = ?2 AND dev = ?3",
	[S_CLAIM_LIST_ALL] = "SELECT " CLAIM_COLS " FROM claims ORDER BY sbx, tech, dev",
	[S_CLAIM_LIST_SBX] = "SELECT " CLAIM_COLS " FROM claims WHERE sbx = ?1 ORDER BY tech, dev",
	/* newest first from the new lease's end backwards: see lease_conflict() */
	[S_LEASE_BEFORE] = "SELECT start_us, end_us FROM leases "
			   "WHERE resource = ?1 AND start_us < ?2 ORDER BY start_us DESC",
	[S_LEASE_INSERT] = "INSERT INTO leases(sbx, resource, start_us, end_us, created_us) "
			   "VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_LEASE_DELETE] = "DELETE FROM leases WHERE id = ?1 AND sbx = ?2",
	[S_LEASE_SHORTEN] = "UPDATE leases SET end_us = min(end_us, ?3) "
			    "WHERE id = ?1 AND sbx = ?2 AND start_us < ?3",
	[S_LEASE_DROP_UNSTARTED] =
		"DELETE FROM leases WHERE id = ?1 AND sbx = ?2 AND start_us >= ?3",
	[S_LEASE_LIST] = "SELECT " LEASE_COLS " FROM leases WHERE end_us > ?3 "
			 "AND (?1 IS NULL OR sbx = ?1) AND (?2 IS NULL OR resource = ?2) "
			 "ORDER BY start_us, id",
	[S_USAGE_ADD] = "INSERT INTO usage(sbx, day, kind, total) VALUES (?1, ?2, ?3, ?4) "
			"ON CONFLICT(sbx, day, kind) DO UPDATE SET total = total + excluded.total "
			"RETURNING total",
	[S_USAGE_GET] = "SELECT total FROM usage WHERE sbx = ?1 AND day = ?2 AND kind = ?3",
	[S_AUDIT_INSERT] = "INSERT INTO audit(time_us, key_id, sbx, action, target, result, size, "
			   "detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	[S_AUDIT_LIST_ALL] = "SELECT " AUDIT_COLS " FROM audit WHERE id > ?2 ORDER BY id LIMIT ?3",
	[S_AUDIT_LIST_SBX] = "SELECT " AUDIT_COLS " FROM audit WHERE sbx = ?1 AND id > ?2 "
			     "ORDER BY id LIMIT ?3",
	[S_HISTORY_QUERY] = "SELECT seq, time_us, topic, json FROM history "
			    "WHERE sbx = ?1 AND seq > ?2 ORDER BY seq",
};

/* history connection */
enum hstmt {
	H_BEGIN,
	H_COMMIT,
	H_ROLLBACK,
	H_INSERT,
	H_CUT_COUNT,
	H_CUT_AGE,
	H_DROP_UPTO,
	H_DROP_BEFORE,
	H_COUNT
};

static const char *const hstmt_sql[H_COUNT] = {
	[H_BEGIN] = "BEGIN IMMEDIATE",
	[H_COMMIT] = "COMMIT",
	[H_ROLLBACK] = "ROLLBACK",
	/* a sandbox deleted while the batch waited takes its rows with it
	 * (also when a new sandbox got its id meanwhile: a row older than the
	 * sandbox is not its own); a row written twice (a retried batch) is
	 * kept once */
	[H_INSERT] = "INSERT INTO history(sbx, seq, time_us, topic, json) "
		     "SELECT ?1, ?2, ?3, ?4, ?5 WHERE EXISTS "
		     "(SELECT 1 FROM sandboxes WHERE id = ?1 AND created_us <= ?3) "
		     "ON CONFLICT(sbx, seq) DO NOTHING",
	/* the newest row beyond the first ?2 newest: O(?2) on the index */
	[H_CUT_COUNT] =
		"SELECT seq FROM history WHERE sbx = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2",
	/* the oldest row new enough: O(rows that go) */
	[H_CUT_AGE] =
		"SELECT seq FROM history WHERE sbx = ?1 AND time_us >= ?2 ORDER BY seq LIMIT 1",
	[H_DROP_UPTO] = "DELETE FROM history WHERE sbx = ?1 AND seq <= ?2",
	[H_DROP_BEFORE] = "DELETE FROM history WHERE sbx = ?1 AND seq < ?2",
};

struct store {
	sqlite3 *db; /* loop thread only */
	sqlite3_stmt *stmt[S_COUNT];
	int version;

	pthread_mutex_t hist_lock; /* guards hdb and hstmt */
	sqlite3 *hdb;
	sqlite3_stmt *hstmt[H_COUNT];
};

/* ---- errors --------------------------------------------------------------- */

/* The errno of store.h for a failed SQLite call on db. Constraint outcomes
 * are answers for the caller, not failures, so only the rest is logged. */
static int db_errno(sqlite3 *db, int rc, const char *what)
{
	switch (rc) {
	case SQLITE_CONSTRAINT_UNIQUE:
	case SQLITE_CONSTRAINT_PRIMARYKEY:
		return -EEXIST;
	case SQLITE_CONSTRAINT_FOREIGNKEY:
		return -ENOENT;
	}
	const char *file = sqlite3_db_filename(db, "main");
	if (!file || !*file)
		file = "database";
	int sys = sqlite3_system_errno(db);
	switch (rc & 0xff) {
	case SQLITE_FULL:
		log_error("store: %s: %s failed, the disk is full (%s)", file, what,
			  sqlite3_errmsg(db));
		return -ENOSPC;
	case SQLITE_IOERR:
		if (sys == ENOSPC) {
			log_error("store: %s: %s failed, the disk is full (%s)", file, what,
				  sqlite3_errmsg(db));
			return -ENOSPC;
		}
		break;
	case SQLITE_NOMEM:
		log_error("store: %s: %s failed: out of memory", file, what);
		return -ENOMEM;
	case SQLITE_TOOBIG:
		log_error("store: %s: %s refused: a value is too large", file, what);
		return -E2BIG;
	case SQLITE_CONSTRAINT:
		/* CHECK, NOT NULL, type: callers validate, so this is a bug */
		log_error("store: %s: %s refused: %s", file, what, sqlite3_errmsg(db));
		return -EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		/* Still locked after busy_timeout: another process holds the
		 * file, or a writer hung. Not -EBUSY, which callers report to
		 * users as a conflicting row. */
		log_error("store: %s: %s failed: locked for over %d ms (%s)", file, what,
			  BUSY_TIMEOUT_MS, sqlite3_errmsg(db));
		return -EIO;
	}
	log_error("store: %s: %s failed: %s (%s)", file, what, sqlite3_errmsg(db),
		  sqlite3_errstr(rc));
	return -EIO;
}

/* ---- statement helpers ------------------------------------------------------ */

/* A cached statement ready for binding, or NULL when it is still stepping:
 * a list callback called back into its own list function. */
static sqlite3_stmt *stmt_take(sqlite3_stmt *s)
{
	if (sqlite3_stmt_busy(s)) {
		log_error("store: statement re-entered from a callback: %s", sqlite3_sql(s));
		return NULL;
	}
	return s;
}

/* Reset after use: ends the statement's read transaction and drops the
 * borrowed pointers bound to it. */
static void stmt_done(sqlite3_stmt *s)
{
	sqlite3_reset(s);
	sqlite3_clear_bindings(s);
}

/* Binding keeps the first failure in *rc so a call binds everything, then
 * checks once. Text is borrowed (SQLITE_STATIC) until stmt_done. */
static void bind_text(sqlite3_stmt *s, int i, const char *v, size_t len, int *rc)
{
	if (*rc != SQLITE_OK)
		return;
	if (!v)
		*rc = sqlite3_bind_null(s, i);
	else if (len > INT_MAX)
		*rc = SQLITE_TOOBIG;
	else
		*rc = sqlite3_bind_text(s, i, v, (int)len, SQLITE_STATIC);
}

static void bind_blob(sqlite3_stmt *s, int i, const void *v, size_t len, int *rc)
{
	if (*rc != SQLITE_OK)
		return;
	*rc = v ? sqlite3_bind_blob(s, i, v, (int)len, SQLITE_STATIC) : sqlite3_bind_null(s, i);
}

static void bind_i64(sqlite3_stmt *s, int i, int64_t v, int *rc)
{
	if (*rc == SQLITE_OK)
		*rc = sqlite3_bind_int64(s, i, v);
}

/* Length of a string that must be NUL-terminated within `size` bytes (a
 * fixed-size field) and hold at least `min` bytes; -1 otherwise. */
static long field_len(const char *s, size_t size, size_t min)
{
	if (!s)
		return -1;
	size_t n = strnlen(s, size);
	return n == size || n < min ? -1 : (long)n;
}

/* Length of an id argument: 1..STORE_ID_MAX bytes; -1 otherwise. */
static long id_len(const char *s)
{
	return field_len(s, STORE_ID_MAX + 1, 1);
}

/* Copy a text column into a fixed-size field, cut to fit: the database
 * is a file anyone with access may have edited. */
static void col_text(sqlite3_stmt *s, int i, char *dst, size_t size)
{
	const unsigned char *t = sqlite3_column_text(s, i);
	size_t n = t ? (size_t)sqlite3_column_bytes(s, i) : 0;
	if (n >= size)
		n = size - 1;
	if (n)
		memcpy(dst, t, n);
	dst[n] = '\0';
}

/* Copy a blob column of exactly `size` bytes; false (dst zeroed) if it is
 * NULL or of another size. */
static bool col_blob(sqlite3_stmt *s, int i, unsigned char *dst, size_t size)
{
	const void *b = sqlite3_column_blob(s, i);
	if (!b || (size_t)sqlite3_column_bytes(s, i) != size) {
		memset(dst, 0, size);
		return false;
	}
	memcpy(dst, b, size);
	return true;
}

/* Run a statement that returns no rows; its changes in *changes. */
static int run(sqlite3 *db, sqlite3_stmt *s, const char *what, int *changes)
{
	int rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_DONE) {
		if (changes)
			*changes = sqlite3_changes(db);
	} else {
		err = db_errno(db, rc, what);
	}
	stmt_done(s);
	return err;
}

/* Undo an open transaction after a failure; SQLite may have rolled it back
 * already (disk full, out of memory). */
static void tx_rollback(sqlite3 *db, sqlite3_stmt *rollback)
{
	if (sqlite3_get_autocommit(db))
		return;
	int rc = sqlite3_step(rollback);
	if (rc != SQLITE_DONE)
		db_errno(db, rc, "rollback");
	stmt_done(rollback);
}

/* Commit, or roll back if the commit failed. */
static int tx_commit(sqlite3 *db, sqlite3_stmt *commit, sqlite3_stmt *rollback, const char *what)
{
	int err = run(db, commit, what, NULL);
	if (err)
		tx_rollback(db, rollback);
	return err;
}

static int begin(struct store *st, const char *what)
{
	return run(st->db, st->stmt[S_BEGIN], what, NULL);
}

static int commit(struct store *st, const char *what)
{
	return tx_commit(st->db, st->stmt[S_COMMIT], st->stmt[S_ROLLBACK], what);
}

static void rollback(struct store *st)
{
	tx_rollback(st->db, st->stmt[S_ROLLBACK]);
}

/* ---- open, migrate, close ------------------------------------------------- */

static int pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_errno(db, rc, sql);
	rc = sqlite3_step(s);
	int err = 0;
	if (rc == SQLITE_ROW)
		*out = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		err = -ENOTSUP; /* a pragma this SQLite was built without */
	else
		err = db_errno(db, rc, sql);
	sqlite3_finalize(s);
	return err;
}

static int exec(sqlite3 *db, const char *sql, const char *what)
{
	int rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	return rc == SQLITE_OK ? 0 : db_errno(db, rc, what);
}

static int prepare_all(sqlite3 *db, const char *const *sql, sqlite3_stmt **stmts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		int rc = sqlite3_prepare_v3(db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &stmts[i],
					    NULL);
		if (rc != SQLITE_OK)
			return db_errno(db, rc, "prepare");
	}
	return 0;
}

static void finalize_all(sqlite3_stmt **stmts, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		sqlite3_finalize(stmts[i]);
		stmts[i] = NULL;
	}
}

/* Open one connection with the settings both share. */
static int db_open(const char *path, bool full_sync, sqlite3 **out)
{
	sqlite3 *db = NULL;
	int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
		    SQLITE_OPEN_EXRESCODE;
	int rc = sqlite3_open_v2(path, &db, flags, NULL);
	if (rc != SQLITE_OK) {
		int err = db ? db_errno(db, rc, "open") : -ENOMEM;
		sqlite3_close(db);
		return err;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	int64_t fk = 0;
	int err = exec(db,
		       full_sync ? "PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; "
				   "PRAGMA trusted_schema = OFF"
				 : "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; "
				   "PRAGMA trusted_schema = OFF",
		       "open");
	if (!err)
		err = pragma_int(db, "PRAGMA foreign_keys", &fk);
	if (!err && fk != 1) {
		log_error("store: %s: SQLite has no foreign key support", path);
		err = -ENOTSUP;
	}
	if (err) {
		sqlite3_close(db);
		return err;
	}
	*out = db;
	return 0;
}

static int set_wal(sqlite3 *db, const char *path)
{
	sqlite3_stmt *s;
	int rc = sqlite3_prepare_v2(db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_errno(db, rc, "journal_mode");
	rc = sqlite3_step(s);
	int err = 0;
	if (rc != SQLITE_ROW) {
		err = db_errno(db, rc, "journal_mode");
	} else {
		const char *mode = (const char *)sqlite3_column_text(s, 0);
		if (!mode || strcmp(mode, "wal")) {
			log_error("store: %s: cannot use WAL mode (journal mode is %s)", path,
				  mode ? mode : "unknown");
			err = -EIO;
		}
	}
	sqlite3_finalize(s);
	return err;
}

/* Take the file one migration further, in one transaction; *current when
 * there was nothing left to do. The version is read inside the transaction,
 * so two processes opening the same new file do not both run a step. */
static int migrate_step(sqlite3 *db, const char *path, int *version, bool *current)
{
	int err = exec(db, "BEGIN IMMEDIATE", "migrate");
	if (err)
		return err;
	int64_t v = 0;
	err = pragma_int(db, "PRAGMA user_version", &v);
	if (!err && (v < 0 || v > SCHEMA_VERSION)) {
		log_error("store: %s: schema version %lld is newer than this labgwd knows (%d): "
			  "written by a later release, refusing to open it",
			  path, (long long)v, SCHEMA_VERSION);
		err = -ENOTSUP;
	}
	char what[48] = "migrate";
	if (!err && v < SCHEMA_VERSION) {
		char bump[48];
		snprintf(what, sizeof(what), "migration %d", (int)v + 1);
		snprintf(bump, sizeof(bump), "PRAGMA user_version = %d", (int)v + 1);
		err = exec(db, migrations[v], what);
		if (!err)
			err = exec(db, bump, what);
	}
	if (!err)
		err = exec(db, "COMMIT", what);
	if (err) {
		if (!sqlite3_get_autocommit(db))
			sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
		return err;
	}
	if (v == SCHEMA_VERSION) {
		*current = true;
		*version = SCHEMA_VERSION;
	} else {
		log_notice("store: %s: schema migrated to version %d", path, (int)v + 1);
	}
	return 0;
}

static int migrate(sqlite3 *db, const char *path, int *version)
{
	bool current = false;
	int err = 0;
	while (!err && !current)
		err = migrate_step(db, path, version, &current);
	return err;
}

int store_open(const char *path, struct store **out)
{
	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!path || !*path)
		return -EINVAL;
	if (!sqlite3_threadsafe()) {
		log_error("store: SQLite was built without thread support; the history writer "
			  "needs it");
		return -ENOTSUP;
	}

	/* Key hashes and session keys live here: create the file private;
	 * SQLite gives the -wal and -shm files the same mode. */
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		int err = -errno;
		log_error("store: %s: %s", path, strerror(-err));
		return err;
	}
	close(fd);

	struct store *st = calloc(1, sizeof(*st));
	if (!st)
		return -ENOMEM;
	int err = pthread_mutex_init(&st->hist_lock, NULL);
	if (err) {
		free(st);
		return -err;
	}
	err = db_open(path, true, &st->db);
	if (!err)
		err = set_wal(st->db, path);
	if (!err)
		err = migrate(st->db, path, &st->version);
	if (!err)
		err = prepare_all(st->db, stmt_sql, st->stmt, S_COUNT);
	if (!err)
		err = db_open(path, false, &st->hdb);
	if (!err)
		err = prepare_all(st->hdb, hstmt_sql, st->hstmt, H_COUNT);
	if (err) {
		store_close(st);
		return err;
	}
	*out = st;
	return 0;
}

void store_close(struct store *st)
{
	if (!st)
		return;
	/* the main connection closes last: as the last one it checkpoints the
	 * WAL into the database file */
	pthread_mutex_lock(&st->hist_lock); /* a batch still being written */
	finalize_all(st->hstmt, H_COUNT);
	if (st->hdb && sqlite3_close(st->hdb) != SQLITE_OK)
		log_error("store: closing the history connection: %s", sqlite3_errmsg(st->hdb));
	pthread_mutex_unlock(&st->hist_lock);
	finalize_all(st->stmt, S_COUNT);
	if (st->db && sqlite3_close(st->db) != SQLITE_OK)
		log_error("store: closing the database: %s", sqlite3_errmsg(st->db));
	pthread_mutex_destroy(&st->hist_lock);
	free(st);
}

int store_schema_version(struct store *st)
{
	return st ? st->version : -EINVAL;
}

/* ---- settings ------------------------------------------------------------- */

#define SETTING_NAME_MAX 128

int store_setting_get(struct store *st, const char *name, char *value, size_t cap)
{
	long nlen = field_len(name, SETTING_NAME_MAX + 1, 1);
	if (!st || nlen < 0 || !value || !cap)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_SETTING_GET]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, err = 0;
	bind_text(s, 1, name, (size_t)nlen, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(s, 0);
		size_t n = t ? (size_t)sqlite3_column_bytes(s, 0) : 0;
		if (n >= cap) {
			err = -ENOBUFS;
		} else {
			if (n)
				memcpy(value, t, n);
			value[n] = '\0';
		}
	} else if (rc == SQLITE_DONE) {
		err = -ENOENT;
	} else {
		err = db_errno(st->db, rc, "setting get");
	}
	stmt_done(s);
	return err;
}

int store_setting_set(struct store *st, const char *name, const char *value)
{
	long nlen = field_len(name, SETTING_NAME_MAX + 1, 1);
	if (!st || nlen < 0 || !value)
		return -EINVAL;
	size_t vlen = strnlen(value, STORE_SETTING_MAX + 1);
	if (vlen > STORE_SETTING_MAX)
		return -E2BIG;
	sqlite3_stmt *s = stmt_take(st->stmt[S_SETTING_SET]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK;
	bind_text(s, 1, name, (size_t)nlen, &rc);
	bind_text(s, 2, value, vlen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "setting set");
	}
	return run(st->db, s, "setting set", NULL);
}

int store_setting_delete(struct store *st, const char *name)
{
	long nlen = field_len(name, SETTING_NAME_MAX + 1, 1);
	if (!st || nlen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_SETTING_DELETE]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, changes = 0;
	bind_text(s, 1, name, (size_t)nlen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "setting delete");
	}
	int err = run(st->db, s, "setting delete", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

/* ---- sandboxes ------------------------------------------------------------ */

static int sbx_bind(sqlite3_stmt *s, const struct store_sandbox *x)
{
	long ilen = field_len(x->id, sizeof(x->id), 1);
	long nlen = field_len(x->name, sizeof(x->name), 0);
	const struct store_quotas *q = &x->quotas;
	if (ilen < 0 || nlen < 0 || q->requests_per_s < 0 || q->frames_per_s < 0 ||
	    q->tx_per_day < 0 || q->airtime_ms_per_day < 0 || q->sms_per_day < 0)
		return -EINVAL;
	int rc = SQLITE_OK;
	bind_text(s, 1, x->id, (size_t)ilen, &rc);
	bind_text(s, 2, x->name, (size_t)nlen, &rc);
	bind_i64(s, 3, x->created_us, &rc);
	bind_i64(s, 4, q->requests_per_s, &rc);
	bind_i64(s, 5, q->frames_per_s, &rc);
	bind_i64(s, 6, q->tx_per_day, &rc);
	bind_i64(s, 7, q->airtime_ms_per_day, &rc);
	bind_i64(s, 8, q->sms_per_day, &rc);
	return rc == SQLITE_OK ? 0 : -EIO;
}

static void sbx_read(sqlite3_stmt *s, void *out)
{
	struct store_sandbox *x = out;
	memset(x, 0, sizeof(*x));
	col_text(s, 0, x->id, sizeof(x->id));
	col_text(s, 1, x->name, sizeof(x->name));
	x->created_us = sqlite3_column_int64(s, 2);
	x->quotas.requests_per_s = sqlite3_column_int64(s, 3);
	x->quotas.frames_per_s = sqlite3_column_int64(s, 4);
	x->quotas.tx_per_day = sqlite3_column_int64(s, 5);
	x->quotas.airtime_ms_per_day = sqlite3_column_int64(s, 6);
	x->quotas.sms_per_day = sqlite3_column_int64(s, 7);
}

int store_sandbox_create(struct store *st, const struct store_sandbox *x)
{
	if (!st || !x)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_SBX_INSERT]);
	if (!s)
		return -EDEADLK;
	int err = sbx_bind(s, x);
	if (err) {
		stmt_done(s);
		return err;
	}
	return run(st->db, s, "sandbox create", NULL);
}

/* One row by id through a prepared statement and a reader of its columns;
 * -ENOENT when there is none. */
static int get_by_id(struct store *st, int which, const char *id,
		     void (*read)(sqlite3_stmt *, void *), void *out, const char *what)
{
	long ilen = id_len(id);
	if (!st || ilen < 0 || !out)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[which]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, err = 0;
	bind_text(s, 1, id, (size_t)ilen, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		read(s, out);
	else if (rc == SQLITE_DONE)
		err = -ENOENT;
	else
		err = db_errno(st->db, rc, what);
	stmt_done(s);
	return err;
}

int store_sandbox_get(struct store *st, const char *id, struct store_sandbox *out)
{
	return get_by_id(st, S_SBX_GET, id, sbx_read, out, "sandbox get");
}

int store_sandbox_update(struct store *st, const struct store_sandbox *x)
{
	if (!st || !x)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_SBX_UPDATE]);
	if (!s)
		return -EDEADLK;
	int err = sbx_bind(s, x);
	if (err) {
		stmt_done(s);
		return err;
	}
	int changes = 0;
	err = run(st->db, s, "sandbox update", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

int store_sandbox_delete(struct store *st, const char *id)
{
	/* children first, explicitly: the cascades of the schema would do it,
	 * but this does not depend on foreign_keys being on */
	static const enum stmt steps[] = {
		S_SBX_DEL_HISTORY, S_SBX_DEL_USAGE, S_SBX_DEL_LEASES,
		S_SBX_DEL_CLAIMS,  S_SBX_DEL_KEYS,  S_SBX_DELETE,
	};
	long ilen = id_len(id);
	if (!st || ilen < 0)
		return -EINVAL;
	int err = begin(st, "sandbox delete");
	if (err)
		return err;
	int changes = 0;
	for (size_t i = 0; i < ARRAY_SIZE(steps) && !err; i++) {
		sqlite3_stmt *s = stmt_take(st->stmt[steps[i]]);
		if (!s) {
			err = -EDEADLK;
			break;
		}
		int rc = SQLITE_OK;
		bind_text(s, 1, id, (size_t)ilen, &rc);
		if (rc != SQLITE_OK) {
			stmt_done(s);
			err = db_errno(st->db, rc, "sandbox delete");
			break;
		}
		err = run(st->db, s, "sandbox delete", &changes);
	}
	if (!err && !changes)
		err = -ENOENT; /* the sandbox row itself */
	if (err) {
		rollback(st);
		return err;
	}
	return commit(st, "sandbox delete");
}

int store_sandbox_list(struct store *st, store_sandbox_cb cb, void *ud)
{
	if (!st || !cb)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_SBX_LIST]);
	if (!s)
		return -EDEADLK;
	int rc, ret = 0;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_sandbox x;
		sbx_read(s, &x);
		ret = cb(ud, &x);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = db_errno(st->db, rc, "sandbox list");
	stmt_done(s);
	return ret;
}

/* ---- keys ----------------------------------------------------------------- */

static void key_read(sqlite3_stmt *s, void *out)
{
	struct store_key *k = out;
	memset(k, 0, sizeof(*k));
	col_text(s, 0, k->id, sizeof(k->id));
	col_text(s, 1, k->sbx, sizeof(k->sbx)); /* NULL → "" */
	k->rights = (uint32_t)sqlite3_column_int64(s, 2);
	k->tx_techs = (uint32_t)sqlite3_column_int64(s, 3);
	col_blob(s, 4, k->hash, sizeof(k->hash));
	k->created_us = sqlite3_column_int64(s, 5);
	k->expires_us = sqlite3_column_int64(s, 6);
	k->revoked_us = sqlite3_column_int64(s, 7);
	col_text(s, 8, k->note, sizeof(k->note));
}

int store_key_create(struct store *st, const struct store_key *k)
{
	if (!st || !k)
		return -EINVAL;
	long ilen = field_len(k->id, sizeof(k->id), 1);
	long slen = field_len(k->sbx, sizeof(k->sbx), 0);
	long nlen = field_len(k->note, sizeof(k->note), 0);
	if (ilen < 0 || slen < 0 || nlen < 0 || k->expires_us < 0 || k->revoked_us < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_KEY_INSERT]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK;
	bind_text(s, 1, k->id, (size_t)ilen, &rc);
	bind_text(s, 2, slen ? k->sbx : NULL, (size_t)slen, &rc);
	bind_i64(s, 3, k->rights, &rc);
	bind_i64(s, 4, k->tx_techs, &rc);
	bind_blob(s, 5, k->hash, sizeof(k->hash), &rc);
	bind_i64(s, 6, k->created_us, &rc);
	bind_i64(s, 7, k->expires_us, &rc);
	bind_i64(s, 8, k->revoked_us, &rc);
	bind_text(s, 9, k->note, (size_t)nlen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "key create");
	}
	return run(st->db, s, "key create", NULL);
}

int store_key_get(struct store *st, const char *id, struct store_key *out)
{
	return get_by_id(st, S_KEY_GET, id, key_read, out, "key get");
}

int store_key_revoke(struct store *st, const char *id, int64_t when_us)
{
	long ilen = id_len(id);
	if (!st || ilen < 0 || when_us <= 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_KEY_REVOKE]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, changes = 0;
	bind_text(s, 1, id, (size_t)ilen, &rc);
	bind_i64(s, 2, when_us, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "key revoke");
	}
	int err = run(st->db, s, "key revoke", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

int store_key_list(struct store *st, const char *sbx, store_key_cb cb, void *ud)
{
	long slen = sbx ? field_len(sbx, STORE_ID_MAX + 1, 0) : 0;
	if (!st || !cb || slen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[sbx ? S_KEY_LIST_SBX : S_KEY_LIST_ALL]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, ret = 0;
	if (sbx) /* "" lists the keys whose sbx is NULL */
		bind_text(s, 1, slen ? sbx : NULL, (size_t)slen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "key list");
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_key k;
		key_read(s, &k);
		ret = cb(ud, &k);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = db_errno(st->db, rc, "key list");
	stmt_done(s);
	return ret;
}

/* ---- claims --------------------------------------------------------------- */

int store_claim_create(struct store *st, const struct store_claim *c)
{
	if (!st || !c)
		return -EINVAL;
	long slen = field_len(c->sbx, sizeof(c->sbx), 1);
	long dlen = field_len(c->dev, sizeof(c->dev), 1);
	if (slen < 0 || dlen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_CLAIM_INSERT]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK;
	bind_text(s, 1, c->sbx, (size_t)slen, &rc);
	bind_i64(s, 2, c->tech, &rc);
	bind_text(s, 3, c->dev, (size_t)dlen, &rc);
	bind_i64(s, 4, c->created_us, &rc);
	bind_blob(s, 5, c->has_session_keys ? c->nwkskey : NULL, sizeof(c->nwkskey), &rc);
	bind_blob(s, 6, c->has_session_keys ? c->appskey : NULL, sizeof(c->appskey), &rc);
	bind_blob(s, 7, c->has_irk ? c->irk : NULL, sizeof(c->irk), &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "claim create");
	}
	int err = run(st->db, s, "claim create", NULL);
	return err == -EEXIST ? -EBUSY : err;
}

int store_claim_delete(struct store *st, const char *sbx, uint32_t tech, const char *dev)
{
	long slen = id_len(sbx);
	long dlen = field_len(dev, STORE_DEV_MAX + 1, 1);
	if (!st || slen < 0 || dlen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_CLAIM_DELETE]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, changes = 0;
	bind_text(s, 1, sbx, (size_t)slen, &rc);
	bind_i64(s, 2, tech, &rc);
	bind_text(s, 3, dev, (size_t)dlen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "claim delete");
	}
	int err = run(st->db, s, "claim delete", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

int store_claim_list(struct store *st, const char *sbx, store_claim_cb cb, void *ud)
{
	long slen = sbx ? id_len(sbx) : 0;
	if (!st || !cb || slen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[sbx ? S_CLAIM_LIST_SBX : S_CLAIM_LIST_ALL]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, ret = 0;
	if (sbx)
		bind_text(s, 1, sbx, (size_t)slen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "claim list");
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_claim c;
		memset(&c, 0, sizeof(c));
		col_text(s, 0, c.sbx, sizeof(c.sbx));
		c.tech = (uint32_t)sqlite3_column_int64(s, 1);
		col_text(s, 2, c.dev, sizeof(c.dev));
		c.created_us = sqlite3_column_int64(s, 3);
		bool nwk = col_blob(s, 4, c.nwkskey, sizeof(c.nwkskey));
		bool app = col_blob(s, 5, c.appskey, sizeof(c.appskey));
		c.has_session_keys = nwk && app;
		c.has_irk = col_blob(s, 6, c.irk, sizeof(c.irk));
		ret = cb(ud, &c);
		/* the copy on our stack held secrets */
		explicit_bzero(&c, sizeof(c));
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = db_errno(st->db, rc, "claim list");
	stmt_done(s);
	return ret;
}

/* ---- leases --------------------------------------------------------------- */

/* Whether [start, end) of `resource` overlaps a stored lease; *frees_us is
 * then the latest end among the overlapping ones. Stored leases of a
 * resource are disjoint, so by falling start they also end earlier and
 * earlier: walking back from the last one starting before `end`, the first
 * that ends by `start` closes the search. That bounds the work by the
 * number of overlaps, however long the lease history. */
static int lease_conflict(struct store *st, const char *resource, size_t rlen, int64_t start,
			  int64_t end, bool *busy, int64_t *frees_us)
{
	sqlite3_stmt *s = stmt_take(st->stmt[S_LEASE_BEFORE]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, err = 0;
	*busy = false;
	*frees_us = 0;
	bind_text(s, 1, resource, rlen, &rc);
	bind_i64(s, 2, end, &rc);
	if (rc == SQLITE_OK) {
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			int64_t e = sqlite3_column_int64(s, 1);
			if (e <= start)
				break;
			*busy = true;
			if (e > *frees_us)
				*frees_us = e;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		err = db_errno(st->db, rc, "lease overlap check");
	stmt_done(s);
	return err;
}

int store_lease_create(struct store *st, struct store_lease *l, int64_t *frees_us)
{
	if (!st || !l)
		return -EINVAL;
	long slen = field_len(l->sbx, sizeof(l->sbx), 1);
	long rlen = field_len(l->resource, sizeof(l->resource), 1);
	if (slen < 0 || rlen < 0 || l->end_us <= l->start_us)
		return -EINVAL;
	/* the check and the insert see the same leases: IMMEDIATE holds the
	 * write lock from the first read */
	int err = begin(st, "lease create");
	if (err)
		return err;
	bool busy;
	int64_t frees = 0;
	err = lease_conflict(st, l->resource, (size_t)rlen, l->start_us, l->end_us, &busy, &frees);
	if (!err && busy) {
		if (frees_us)
			*frees_us = frees;
		err = -EBUSY;
	}
	if (!err) {
		sqlite3_stmt *s = stmt_take(st->stmt[S_LEASE_INSERT]);
		if (!s) {
			err = -EDEADLK;
		} else {
			int rc = SQLITE_OK;
			bind_text(s, 1, l->sbx, (size_t)slen, &rc);
			bind_text(s, 2, l->resource, (size_t)rlen, &rc);
			bind_i64(s, 3, l->start_us, &rc);
			bind_i64(s, 4, l->end_us, &rc);
			bind_i64(s, 5, l->created_us, &rc);
			if (rc != SQLITE_OK) {
				stmt_done(s);
				err = db_errno(st->db, rc, "lease create");
			} else {
				err = run(st->db, s, "lease create", NULL);
			}
		}
	}
	if (err) {
		rollback(st);
		return err;
	}
	int64_t id = sqlite3_last_insert_rowid(st->db);
	err = commit(st, "lease create");
	if (!err)
		l->id = id;
	return err;
}

int store_lease_delete(struct store *st, const char *sbx, int64_t id)
{
	long slen = id_len(sbx);
	if (!st || slen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_LEASE_DELETE]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, changes = 0;
	bind_i64(s, 1, id, &rc);
	bind_text(s, 2, sbx, (size_t)slen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "lease delete");
	}
	int err = run(st->db, s, "lease delete", &changes);
	return err ? err : changes ? 0 : -ENOENT;
}

int store_lease_end(struct store *st, const char *sbx, int64_t id, int64_t end_us)
{
	/* exactly one of the two matches a lease that exists */
	static const enum stmt steps[] = {S_LEASE_SHORTEN, S_LEASE_DROP_UNSTARTED};
	long slen = id_len(sbx);
	if (!st || slen < 0)
		return -EINVAL;
	for (size_t i = 0; i < ARRAY_SIZE(steps); i++) {
		sqlite3_stmt *s = stmt_take(st->stmt[steps[i]]);
		if (!s)
			return -EDEADLK;
		int rc = SQLITE_OK, changes = 0;
		bind_i64(s, 1, id, &rc);
		bind_text(s, 2, sbx, (size_t)slen, &rc);
		bind_i64(s, 3, end_us, &rc);
		if (rc != SQLITE_OK) {
			stmt_done(s);
			return db_errno(st->db, rc, "lease end");
		}
		int err = run(st->db, s, "lease end", &changes);
		if (err || changes)
			return err;
	}
	return -ENOENT;
}

int store_lease_list(struct store *st, const char *sbx, const char *resource, int64_t after_us,
		     store_lease_cb cb, void *ud)
{
	long slen = sbx ? id_len(sbx) : 0;
	long rlen = resource ? field_len(resource, STORE_RES_MAX + 1, 1) : 0;
	if (!st || !cb || slen < 0 || rlen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_LEASE_LIST]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, ret = 0;
	bind_text(s, 1, sbx, (size_t)slen, &rc);
	bind_text(s, 2, resource, (size_t)rlen, &rc);
	bind_i64(s, 3, after_us, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "lease list");
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_lease l;
		memset(&l, 0, sizeof(l));
		l.id = sqlite3_column_int64(s, 0);
		col_text(s, 1, l.sbx, sizeof(l.sbx));
		col_text(s, 2, l.resource, sizeof(l.resource));
		l.start_us = sqlite3_column_int64(s, 3);
		l.end_us = sqlite3_column_int64(s, 4);
		l.created_us = sqlite3_column_int64(s, 5);
		ret = cb(ud, &l);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = db_errno(st->db, rc, "lease list");
	stmt_done(s);
	return ret;
}

/* ---- usage ---------------------------------------------------------------- */

static bool usage_kind_valid(enum store_usage_kind kind)
{
	return kind == USAGE_TX || kind == USAGE_AIRTIME_MS || kind == USAGE_SMS;
}

int store_usage_add(struct store *st, const char *sbx, int64_t day, enum store_usage_kind kind,
		    int64_t amount, int64_t *total)
{
	long slen = id_len(sbx);
	if (!st || slen < 0 || !usage_kind_valid(kind))
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_USAGE_ADD]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, err = 0;
	int64_t t = 0;
	bind_text(s, 1, sbx, (size_t)slen, &rc);
	bind_i64(s, 2, day, &rc);
	bind_i64(s, 3, kind, &rc);
	bind_i64(s, 4, amount, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		t = sqlite3_column_int64(s, 0);
		/* the autocommit (and its errors) comes with the last step */
		rc = sqlite3_step(s);
	}
	if (rc != SQLITE_DONE)
		err = db_errno(st->db, rc, "usage add");
	stmt_done(s);
	if (!err && total)
		*total = t;
	return err;
}

int store_usage_get(struct store *st, const char *sbx, int64_t day, enum store_usage_kind kind,
		    int64_t *total)
{
	long slen = id_len(sbx);
	if (!st || slen < 0 || !usage_kind_valid(kind) || !total)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_USAGE_GET]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, err = 0;
	bind_text(s, 1, sbx, (size_t)slen, &rc);
	bind_i64(s, 2, day, &rc);
	bind_i64(s, 3, kind, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*total = sqlite3_column_int64(s, 0);
	else if (rc == SQLITE_DONE)
		*total = 0;
	else
		err = db_errno(st->db, rc, "usage get");
	stmt_done(s);
	return err;
}

/* ---- audit ---------------------------------------------------------------- */

int store_audit_append(struct store *st, struct store_audit *a)
{
	if (!st || !a)
		return -EINVAL;
	long klen = field_len(a->key_id, sizeof(a->key_id), 0);
	long slen = field_len(a->sbx, sizeof(a->sbx), 0);
	long alen = field_len(a->action, sizeof(a->action), 1);
	long tlen = field_len(a->target, sizeof(a->target), 0);
	long rlen = field_len(a->result, sizeof(a->result), 0);
	long dlen = field_len(a->detail, sizeof(a->detail), 0);
	if (klen < 0 || slen < 0 || alen < 0 || tlen < 0 || rlen < 0 || dlen < 0)
		return -EINVAL;
	sqlite3_stmt *s = stmt_take(st->stmt[S_AUDIT_INSERT]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK;
	bind_i64(s, 1, a->time_us, &rc);
	bind_text(s, 2, a->key_id, (size_t)klen, &rc);
	bind_text(s, 3, a->sbx, (size_t)slen, &rc);
	bind_text(s, 4, a->action, (size_t)alen, &rc);
	bind_text(s, 5, a->target, (size_t)tlen, &rc);
	bind_text(s, 6, a->result, (size_t)rlen, &rc);
	bind_i64(s, 7, a->size, &rc);
	bind_text(s, 8, a->detail, (size_t)dlen, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "audit append");
	}
	int err = run(st->db, s, "audit append", NULL);
	if (!err)
		a->id = sqlite3_last_insert_rowid(st->db);
	return err;
}

int store_audit_list(struct store *st, const char *sbx, int64_t since_id, int limit,
		     store_audit_cb cb, void *ud)
{
	long slen = sbx ? field_len(sbx, STORE_ID_MAX + 1, 0) : 0;
	if (!st || !cb || slen < 0 || limit < 0)
		return -EINVAL;
	if (!limit)
		return 0;
	sqlite3_stmt *s = stmt_take(st->stmt[sbx ? S_AUDIT_LIST_SBX : S_AUDIT_LIST_ALL]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, ret = 0;
	if (sbx)
		bind_text(s, 1, sbx, (size_t)slen, &rc);
	bind_i64(s, 2, since_id, &rc);
	bind_i64(s, 3, limit, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "audit list");
	}
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct store_audit a;
		memset(&a, 0, sizeof(a));
		a.id = sqlite3_column_int64(s, 0);
		a.time_us = sqlite3_column_int64(s, 1);
		col_text(s, 2, a.key_id, sizeof(a.key_id));
		col_text(s, 3, a.sbx, sizeof(a.sbx));
		col_text(s, 4, a.action, sizeof(a.action));
		col_text(s, 5, a.target, sizeof(a.target));
		col_text(s, 6, a.result, sizeof(a.result));
		a.size = sqlite3_column_int64(s, 7);
		col_text(s, 8, a.detail, sizeof(a.detail));
		ret = cb(ud, &a);
		if (ret)
			break;
	}
	if (!ret && rc != SQLITE_DONE)
		ret = db_errno(st->db, rc, "audit list");
	stmt_done(s);
	return ret;
}

/* ---- history -------------------------------------------------------------- */

/* The seq of the row a trim query finds; *found false when there is none. */
static int hist_cut(struct store *st, enum hstmt q, const char *sbx, size_t slen, int64_t arg,
		    bool *found, int64_t *seq)
{
	sqlite3_stmt *s = st->hstmt[q];
	int rc = SQLITE_OK, err = 0;
	*found = false;
	bind_text(s, 1, sbx, slen, &rc);
	bind_i64(s, 2, arg, &rc);
	if (rc == SQLITE_OK)
		rc = sqlite3_step(s);
	if (rc == SQLITE_ROW) {
		*found = true;
		*seq = sqlite3_column_int64(s, 0);
	} else if (rc != SQLITE_DONE) {
		err = db_errno(st->hdb, rc, "history trim");
	}
	stmt_done(s);
	return err;
}

/* Delete the rows of sbx up to or before seq (H_DROP_UPTO, H_DROP_BEFORE). */
static int hist_drop(struct store *st, enum hstmt q, const char *sbx, size_t slen, int64_t seq)
{
	sqlite3_stmt *s = st->hstmt[q];
	int rc = SQLITE_OK;
	bind_text(s, 1, sbx, slen, &rc);
	bind_i64(s, 2, seq, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->hdb, rc, "history trim");
	}
	return run(st->hdb, s, "history trim", NULL);
}

/* The age trim removes the oldest rows by seq up to the first one new
 * enough: seq and time rise together (both are stamped when a frame is
 * made), so after a step back of the wall clock a few rows may stay until
 * the count trim takes them. */
static int hist_trim(struct store *st, const char *sbx, size_t slen, int64_t max_rows,
		     int64_t min_time_us)
{
	bool found;
	int64_t seq;
	int err = 0;
	if (max_rows > 0) {
		err = hist_cut(st, H_CUT_COUNT, sbx, slen, max_rows, &found, &seq);
		if (!err && found)
			err = hist_drop(st, H_DROP_UPTO, sbx, slen, seq);
	}
	if (!err && min_time_us > 0) {
		err = hist_cut(st, H_CUT_AGE, sbx, slen, min_time_us, &found, &seq);
		if (!err && found)
			err = hist_drop(st, H_DROP_BEFORE, sbx, slen, seq);
		else if (!err) /* every row is too old */
			err = hist_drop(st, H_DROP_UPTO, sbx, slen, INT64_MAX);
	}
	return err;
}

static int hist_insert(struct store *st, const struct store_history_row *r, size_t slen)
{
	sqlite3_stmt *s = st->hstmt[H_INSERT];
	int rc = SQLITE_OK;
	bind_text(s, 1, r->sbx, slen, &rc);
	bind_i64(s, 2, (int64_t)r->seq, &rc);
	bind_i64(s, 3, r->time_us, &rc);
	bind_text(s, 4, r->topic, strnlen(r->topic, TOPIC_MAX_LEN + 1), &rc);
	bind_text(s, 5, r->json, strlen(r->json), &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->hdb, rc, "history write");
	}
	return run(st->hdb, s, "history write", NULL);
}

int store_history_write(struct store *st, const struct store_history_row *rows, size_t n,
			int64_t max_rows, int64_t min_time_us)
{
	if (!st || (n && !rows))
		return -EINVAL;
	/* check the whole batch before writing any of it */
	for (size_t i = 0; i < n; i++) {
		const struct store_history_row *r = &rows[i];
		if (field_len(r->sbx, sizeof(r->sbx), 1) < 0 || !r->topic || !r->json ||
		    strnlen(r->topic, TOPIC_MAX_LEN + 1) > TOPIC_MAX_LEN)
			return -EINVAL;
		if (r->seq > INT64_MAX) {
			log_error("store: history seq %llu out of range",
				  (unsigned long long)r->seq);
			return -ERANGE;
		}
	}
	if (!n)
		return 0;

	pthread_mutex_lock(&st->hist_lock);
	sqlite3 *db = st->hdb;
	int err = run(db, st->hstmt[H_BEGIN], "history write", NULL);
	if (err)
		goto out;
	for (size_t i = 0; i < n && !err; i++)
		err = hist_insert(st, &rows[i], strlen(rows[i].sbx));
	/* each sandbox of the batch once */
	for (size_t i = 0; i < n && !err; i++) {
		size_t j = 0;
		while (j < i && strcmp(rows[j].sbx, rows[i].sbx))
			j++;
		if (j == i)
			err = hist_trim(st, rows[i].sbx, strlen(rows[i].sbx), max_rows,
					min_time_us);
	}
	if (err)
		tx_rollback(db, st->hstmt[H_ROLLBACK]);
	else
		err = tx_commit(db, st->hstmt[H_COMMIT], st->hstmt[H_ROLLBACK], "history write");
out:
	pthread_mutex_unlock(&st->hist_lock);
	return err;
}

int store_history_query(struct store *st, const char *sbx, uint64_t since, const char *topic_filter,
			int limit, store_history_cb cb, void *ud)
{
	long slen = id_len(sbx);
	if (!st || slen < 0 || !cb || limit < 0 ||
	    (topic_filter && !topic_filter_valid(topic_filter)))
		return -EINVAL;
	/* no row has a seq beyond INT64_MAX (store_history_write) */
	if (!limit || since >= INT64_MAX)
		return 0;
	sqlite3_stmt *s = stmt_take(st->stmt[S_HISTORY_QUERY]);
	if (!s)
		return -EDEADLK;
	int rc = SQLITE_OK, ret = 0, given = 0;
	bind_text(s, 1, sbx, (size_t)slen, &rc);
	bind_i64(s, 2, (int64_t)since, &rc);
	if (rc != SQLITE_OK) {
		stmt_done(s);
		return db_errno(st->db, rc, "history query");
	}
	/* The rows of one sandbox are bounded by the trim, and the JSON of a
	 * row the filter drops is never loaded. */
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		const char *topic = (const char *)sqlite3_column_text(s, 2);
		if (!topic) {
			rc = SQLITE_NOMEM; /* the column is NOT NULL */
			break;
		}
		if (topic_filter && !topic_match(topic_filter, topic))
			continue;
		const char *json = (const char *)sqlite3_column_text(s, 3);
		if (!json) {
			rc = SQLITE_NOMEM;
			break;
		}
		ret = cb(ud, (uint64_t)sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1),
			 topic, json);
		if (ret || ++given == limit)
			break;
	}
	if (!ret && rc != SQLITE_DONE && rc != SQLITE_ROW)
		ret = db_errno(st->db, rc, "history query");
	stmt_done(s);
	return ret;
}
