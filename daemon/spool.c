#include "spool.h"

#include <errno.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct spool {
	sqlite3 *db;
	sqlite3_stmt *ins, *next, *del, *del_oldest;
	bool in_tx;
	struct spool_stats st;
};

static int sql_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	default:
		return -EIO;
	}
}

struct spool *spool_open(const char *path, uint64_t max)
{
	struct spool *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->st.max = max;
	int rc = sqlite3_open_v2(path, &s->db,
				 SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
				 NULL);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_busy_timeout(s->db, 1000);
	rc = sqlite3_exec(
		s->db,
		"PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
		"PRAGMA trusted_schema = OFF; "
		/* AUTOINCREMENT: a seq is never used twice, so the bridge's
		 * "handed over up to seq" mark stays true */
		"CREATE TABLE IF NOT EXISTS spool (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
		"topic TEXT NOT NULL, payload BLOB NOT NULL)",
		NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_prepare_v2(s->db, "INSERT INTO spool (topic, payload) VALUES (?, ?)", -1,
				     &s->ins, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(s->db,
				     "SELECT seq, topic, payload FROM spool WHERE seq > ? "
				     "ORDER BY seq LIMIT 1",
				     -1, &s->next, NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(s->db, "DELETE FROM spool WHERE seq = ?", -1, &s->del,
				     NULL)) != SQLITE_OK ||
	    (rc = sqlite3_prepare_v2(s->db,
				     "DELETE FROM spool WHERE seq = (SELECT min(seq) FROM spool)",
				     -1, &s->del_oldest, NULL)) != SQLITE_OK)
		goto fail;
	sqlite3_stmt *cnt;
	if ((rc = sqlite3_prepare_v2(s->db, "SELECT count(*) FROM spool", -1, &cnt, NULL)) !=
	    SQLITE_OK)
		goto fail;
	if (sqlite3_step(cnt) == SQLITE_ROW)
		s->st.count = (uint64_t)sqlite3_column_int64(cnt, 0);
	sqlite3_finalize(cnt);
	if (s->st.count)
		log_notice("mqtt: spool %s holds %llu messages from before; they go out first",
			   path, (unsigned long long)s->st.count);
	return s;
fail:
	log_error("mqtt: spool %s: %s", path, s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	spool_close(s);
	return NULL;
}

void spool_close(struct spool *s)
{
	if (!s)
		return;
	spool_commit(s);
	sqlite3_finalize(s->ins);
	sqlite3_finalize(s->next);
	sqlite3_finalize(s->del);
	sqlite3_finalize(s->del_oldest);
	sqlite3_close(s->db);
	free(s);
}

void spool_begin(struct spool *s)
{
	if (!s->in_tx && sqlite3_exec(s->db, "BEGIN", NULL, NULL, NULL) == SQLITE_OK)
		s->in_tx = true;
}

void spool_commit(struct spool *s)
{
	if (!s->in_tx)
		return;
	s->in_tx = false;
	int rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		log_error("mqtt: spool: commit failed: %s", sqlite3_errmsg(s->db));
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
	}
}

static int step_done(struct spool *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : sql_errno(rc);
}

int spool_append(struct spool *s, const char *topic, const void *payload, size_t len)
{
	if (s->st.max && s->st.count >= s->st.max) {
		if (step_done(s, s->del_oldest) == 0 && sqlite3_changes(s->db) > 0) {
			s->st.count--;
			s->st.dropped++;
		}
	}
	sqlite3_bind_text(s->ins, 1, topic, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s->ins, 2, payload, (int)len, SQLITE_STATIC);
	int rc = step_done(s, s->ins);
	if (rc < 0) {
		if (!s->st.errors)
			log_error("mqtt: spool: cannot write: %s", sqlite3_errmsg(s->db));
		s->st.errors++;
		return rc;
	}
	s->st.count++;
	s->st.written++;
	return 0;
}

int spool_next(struct spool *s, uint64_t after, uint64_t *seq, char **topic, void **payload,
	       size_t *len)
{
	sqlite3_bind_int64(s->next, 1, (sqlite3_int64)after);
	int rc = sqlite3_step(s->next);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		*seq = (uint64_t)sqlite3_column_int64(s->next, 0);
		const char *t = (const char *)sqlite3_column_text(s->next, 1);
		const void *p = sqlite3_column_blob(s->next, 2);
		int n = sqlite3_column_bytes(s->next, 2);
		*topic = strdup(t ? t : "");
		*payload = malloc(n > 0 ? (size_t)n : 1);
		if (!*topic || !*payload) {
			free(*topic);
			free(*payload);
			ret = -ENOMEM;
		} else {
			if (n > 0)
				memcpy(*payload, p, (size_t)n);
			*len = (size_t)n;
			ret = 1;
		}
	} else if (rc != SQLITE_DONE) {
		ret = sql_errno(rc);
	}
	sqlite3_reset(s->next);
	return ret;
}

void spool_ack(struct spool *s, uint64_t seq)
{
	sqlite3_bind_int64(s->del, 1, (sqlite3_int64)seq);
	if (step_done(s, s->del) == 0 && sqlite3_changes(s->db) > 0) {
		s->st.count--;
		s->st.acked++;
	}
}

void spool_get_stats(const struct spool *s, struct spool_stats *st)
{
	*st = s->st;
}
