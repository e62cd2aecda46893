/*
 * Copyright (C) ReplayForge contributors
 *
 * All of rf-spoold's SQL (see spool_store.h): the file's settings and
 * schema, the statements prepared at open, and thin operations around
 * them that check every return code and log SQLite's message.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "rf_buf.h"
#include "rf_log.h"
#include "spool_chunk.h"
#include "spool_store.h"


#define SPOOL_SCHEMA            2
#define SPOOL_EACH_BYTES        (1024 * 1024)
#define SPOOL_MIGRATE_BYTES     (1024 * 1024)
#define SPOOL_WRITER_BUSY_MS    200
#define SPOOL_READER_BUSY_MS    5000


enum {
    SPOOL_ST_META_GET = 0,
    SPOOL_ST_RELEASED,          /* the readers' statements come first */
    SPOOL_ST_READ,
    SPOOL_ST_BEGIN_READ,
    SPOOL_ST_COMMIT,
    SPOOL_ST_ROLLBACK,
    SPOOL_ST_BEGIN,
    SPOOL_ST_INSERT,
    SPOOL_ST_OLDEST,
    SPOOL_ST_NEWEST,
    SPOOL_ST_DATA,
    SPOOL_ST_DELETE,
    SPOOL_ST_PAGES,
    SPOOL_ST_VACUUM,
    SPOOL_ST_META_SET,
    SPOOL_ST_META_ADD,
    SPOOL_ST_MAX
};

#define SPOOL_ST_READER         (SPOOL_ST_ROLLBACK + 1)


_Static_assert(SPOOL_CKPT_RESTART == SQLITE_CHECKPOINT_RESTART
               && SPOOL_CKPT_TRUNCATE == SQLITE_CHECKPOINT_TRUNCATE,
               "checkpoint modes are SQLite's");


struct spool_store_s {
    sqlite3                    *db;
    sqlite3_stmt               *stmt[SPOOL_ST_MAX];
    char                       *path;
    int                         lock_fd;
    uint64_t                    page_size;
    uint64_t                    wal_frames;
    uint64_t                    damaged;    /* chunks found damaged */
    unsigned                    readonly:1;
    unsigned                    can_vacuum:1;
};


typedef struct {
    const char                 *key;
    size_t                      offset;
} spool_meta_key_t;


static int spool_store_open_writer(spool_store_t *st, uint64_t page_size,
    char *err, size_t errlen);
static int spool_store_open_reader(spool_store_t *st, char *err,
    size_t errlen);
static int spool_store_prepare_all(spool_store_t *st, int n);
static int spool_store_wal_hook(void *arg, sqlite3 *db, const char *name,
    int frames);
static int spool_store_error(spool_store_t *st, const char *what);
static int spool_store_errno(int rc);
static int spool_store_exec(spool_store_t *st, const char *sql);
static int spool_store_done(spool_store_t *st, int id, const char *what);
static int spool_store_chunk_row(spool_store_t *st, int id,
    spool_chunk_info_t *c, const char *what);
static int spool_store_read(spool_store_t *st, uint64_t *after);
static int spool_store_read_end(spool_store_t *st, int rc,
    const char *what);
static int spool_store_schema_of(spool_store_t *st);
static int spool_store_migrate(spool_store_t *st, char *err, size_t errlen);
static int spool_store_migrate_step(spool_store_t *st, rf_buf_t *chunk,
    int *more);


/*
 * The sequence of a new buffer starts at the wall clock in microseconds
 * (the %s below), not at 1: the relay drops records whose sequence is not
 * above the highest it has from the same source, so a buffer deleted and
 * created again under the same id must not count from 1 again.
 *
 * Records are stored in chunks, many to a row: one row per record cost
 * SQLite's B-tree a cell, and the WAL and the checkpoint a system call a
 * page, for every record (docs/design.md, "The buffer stores chunks").
 * A buffer of schema 1 (a row per record) is converted at open.
 */

static const char  spool_store_schema[] =
    "CREATE TABLE IF NOT EXISTS chunks ("
    "    first   INTEGER PRIMARY KEY,"
    "    last    INTEGER NOT NULL,"
    "    n       INTEGER NOT NULL,"
    "    bytes   INTEGER NOT NULL,"
    "    data    BLOB NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS meta ("
    "    key     TEXT PRIMARY KEY,"
    "    value   NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta (key, value) VALUES"
    "    ('schema', 2), ('id', ''), ('next_sseq', %s), ('released', 0),"
    "    ('ring_generation', 0), ('ring_pos', 0), ('ring_batch', 0),"
    "    ('max_buffer', 0), ('records', 0), ('bytes', 0),"
    "    ('stored_total', 0), ('dropped_oldest', 0),"
    "    ('dropped_oldest_bytes', 0), ('dropped_newest', 0),"
    "    ('dropped_newest_bytes', 0), ('invalid', 0),"
    "    ('forwarded', 0), ('forwarded_bytes', 0), ('rejected', 0),"
    "    ('rejected_bytes', 0), ('script_calls', 0), ('script_ticks', 0),"
    "    ('script_errors', 0), ('script_budget', 0),"
    "    ('script_memory', 0), ('script_dropped', 0),"
    "    ('script_produced', 0), ('dead_lettered', 0),"
    "    ('dead_dropped', 0);";


/*
 * In SPOOL_ST_* order.  A read starts at the chunk that holds the record
 * after ?1, if any.
 */

static const char *const  spool_store_sql[SPOOL_ST_MAX] = {
    "SELECT key, value FROM meta",
    "SELECT value FROM meta WHERE key = 'released'",
    "SELECT first, last, data FROM chunks WHERE first >= coalesce("
    "(SELECT first FROM chunks WHERE first <= ?1 ORDER BY first DESC"
    " LIMIT 1), 0) ORDER BY first",
    "BEGIN",
    "COMMIT",
    "ROLLBACK",
    "BEGIN IMMEDIATE",
    "INSERT INTO chunks (first, last, n, bytes, data)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
    "SELECT first, last, n, bytes FROM chunks ORDER BY first LIMIT 1",
    "SELECT first, last, n, bytes FROM chunks WHERE first >= ?1"
    " ORDER BY first DESC LIMIT 1",
    "SELECT data FROM chunks WHERE first = ?1",
    "DELETE FROM chunks WHERE first = ?1",
    "SELECT p.page_count, f.freelist_count"
    " FROM pragma_page_count() AS p, pragma_freelist_count() AS f",
    "PRAGMA incremental_vacuum(1)",
    "UPDATE meta SET value = ?2 WHERE key = ?1",
    "UPDATE meta SET value = value + ?2 WHERE key = ?1"
};


static const spool_meta_key_t  spool_meta_keys[] = {
    { "records", offsetof(spool_meta_t, records) },
    { "bytes", offsetof(spool_meta_t, bytes) },
    { "stored_total", offsetof(spool_meta_t, stored_total) },
    { "dropped_oldest", offsetof(spool_meta_t, dropped_oldest) },
    { "dropped_oldest_bytes", offsetof(spool_meta_t, dropped_oldest_bytes) },
    { "dropped_newest", offsetof(spool_meta_t, dropped_newest) },
    { "dropped_newest_bytes", offsetof(spool_meta_t, dropped_newest_bytes) },
    { "invalid", offsetof(spool_meta_t, invalid) },
    { "forwarded", offsetof(spool_meta_t, forwarded) },
    { "forwarded_bytes", offsetof(spool_meta_t, forwarded_bytes) },
    { "rejected", offsetof(spool_meta_t, rejected) },
    { "rejected_bytes", offsetof(spool_meta_t, rejected_bytes) },
    { "next_sseq", offsetof(spool_meta_t, next_sseq) },
    { "released", offsetof(spool_meta_t, released) },
    { "ring_generation", offsetof(spool_meta_t, ring_generation) },
    { "ring_pos", offsetof(spool_meta_t, ring_pos) },
    { "ring_batch", offsetof(spool_meta_t, ring_batch) },
    { "max_buffer", offsetof(spool_meta_t, max_buffer) },
    { "script_calls", offsetof(spool_meta_t, script.calls) },
    { "script_ticks", offsetof(spool_meta_t, script.ticks) },
    { "script_errors", offsetof(spool_meta_t, script.errors) },
    { "script_budget", offsetof(spool_meta_t, script.budget) },
    { "script_memory", offsetof(spool_meta_t, script.memory) },
    { "script_dropped", offsetof(spool_meta_t, script.dropped) },
    { "script_produced", offsetof(spool_meta_t, script.produced) },
    { "dead_lettered", offsetof(spool_meta_t, script.dead_lettered) },
    { "dead_dropped", offsetof(spool_meta_t, script.dead_dropped) },
    { NULL, 0 }
};


int
spool_store_open(spool_store_t **stp, const char *path, int readonly,
    uint64_t page_size, char *err, size_t errlen)
{
    int             rc;
    spool_store_t  *st;

    *stp = NULL;

    st = calloc(1, sizeof(spool_store_t));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    st->lock_fd = -1;
    st->readonly = readonly ? 1 : 0;
    st->path = strdup(path);

    if (st->path == NULL) {
        snprintf(err, errlen, "out of memory");
        spool_store_close(st);
        return -1;
    }

    rc = readonly ? spool_store_open_reader(st, err, errlen)
                  : spool_store_open_writer(st, page_size, err, errlen);
    if (rc != 0) {
        spool_store_close(st);
        return -1;
    }

    *stp = st;

    return 0;
}


static int
spool_store_open_writer(spool_store_t *st, uint64_t page_size, char *err,
    size_t errlen)
{
    int              rc;
    char             sql[128], first[32], *schema;
    sqlite3_stmt    *stmt;
    struct timespec  ts;

    /*
     * One writer per buffer: a second spool on the same file would break
     * the ring position bookkeeping.  flock() does not mix with SQLite's
     * fcntl() locks; the descriptor stays open until after sqlite3_close(),
     * because closing any descriptor of the file drops the process's
     * fcntl() locks on it.
     */

    st->lock_fd = open(st->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (st->lock_fd == -1) {
        snprintf(err, errlen, "cannot open buffer \"%s\": %s", st->path,
                 strerror(errno));
        return -1;
    }

    if (flock(st->lock_fd, LOCK_EX | LOCK_NB) == -1) {
        snprintf(err, errlen, "buffer \"%s\" is in use by another process "
                 "(flock: %s)", st->path, strerror(errno));
        return -1;
    }

    rc = sqlite3_open_v2(st->path, &st->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                         | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open buffer \"%s\": %s", st->path,
                 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        return -1;
    }

    if (sqlite3_extended_result_codes(st->db, 1) != SQLITE_OK
        || sqlite3_busy_timeout(st->db, SPOOL_WRITER_BUSY_MS) != SQLITE_OK)
    {
        goto failed;
    }

    /*
     * page_size and auto_vacuum only take effect on a new file, before the
     * first table.  secure_delete is on in Debian's build: zeroing freed
     * pages would double the WAL traffic of every drop.  Checkpoints are
     * the buffer's business (wal_autocheckpoint 0), so they happen where
     * the cap needs them.
     */

    snprintf(sql, sizeof(sql), "PRAGMA page_size = %" PRIu64 ";"
             "PRAGMA auto_vacuum = INCREMENTAL;", page_size);

    if (spool_store_exec(st, sql) != 0) {
        goto failed;
    }

    rc = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &stmt,
                            NULL);
    if (rc != SQLITE_OK) {
        goto failed;
    }

    rc = sqlite3_step(stmt);

    if (rc != SQLITE_ROW
        || sqlite3_stricmp((const char *) sqlite3_column_text(stmt, 0),
                           "wal") != 0)
    {
        snprintf(err, errlen, "cannot switch buffer \"%s\" to WAL mode: %s",
                 st->path, sqlite3_errmsg(st->db));
        (void) sqlite3_finalize(stmt);
        return -1;
    }

    if (sqlite3_finalize(stmt) != SQLITE_OK
        || spool_store_exec(st, "PRAGMA synchronous = NORMAL;"
                                "PRAGMA secure_delete = OFF;"
                                "PRAGMA wal_autocheckpoint = 0;"
                                "PRAGMA temp_store = MEMORY;"
                                "PRAGMA cache_size = -8192;") != 0
        || spool_store_exec(st, "BEGIN IMMEDIATE") != 0)
    {
        goto failed;
    }

    (void) clock_gettime(CLOCK_REALTIME, &ts);
    snprintf(first, sizeof(first), "%" PRIu64,
             (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000);

    schema = sqlite3_mprintf(spool_store_schema, first);
    if (schema == NULL) {
        snprintf(err, errlen, "out of memory");
        (void) spool_store_exec(st, "ROLLBACK");
        return -1;
    }

    rc = spool_store_exec(st, schema);
    sqlite3_free(schema);

    if (rc != 0) {
        snprintf(err, errlen, "cannot create the tables of buffer \"%s\": "
                 "%s", st->path, sqlite3_errmsg(st->db));
        (void) spool_store_exec(st, "ROLLBACK");
        return -1;
    }

    if (spool_store_exec(st, "COMMIT") != 0
        || spool_store_prepare_all(st, SPOOL_ST_MAX) != 0)
    {
        goto failed;
    }

    if (spool_store_migrate(st, err, errlen) != 0) {
        return -1;
    }

    rc = sqlite3_prepare_v2(st->db, "SELECT p.page_size, a.auto_vacuum"
                            " FROM pragma_page_size() AS p,"
                            " pragma_auto_vacuum() AS a", -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        goto failed;
    }

    if (sqlite3_step(stmt) != SQLITE_ROW) {
        (void) sqlite3_finalize(stmt);
        goto failed;
    }

    st->page_size = (uint64_t) sqlite3_column_int64(stmt, 0);
    st->can_vacuum = (sqlite3_column_int(stmt, 1) == 2);

    if (sqlite3_finalize(stmt) != SQLITE_OK || st->page_size < 512) {
        goto failed;
    }

    if (!st->can_vacuum) {
        log_info("buffer \"%s\" was created without incremental "
                 "auto_vacuum: it cannot give pages back to the disk",
                 st->path);
    }

    (void) sqlite3_wal_hook(st->db, spool_store_wal_hook, st);

    return 0;

failed:

    snprintf(err, errlen, "cannot open buffer \"%s\": %s", st->path,
             sqlite3_errmsg(st->db));

    return -1;
}


static int
spool_store_open_reader(spool_store_t *st, char *err, size_t errlen)
{
    int          rc;
    struct stat  sb;

    if (stat(st->path, &sb) == -1) {
        if (errno == ENOENT) {
            snprintf(err, errlen, "buffer \"%s\" does not exist", st->path);

        } else {
            snprintf(err, errlen, "buffer \"%s\": %s", st->path,
                     strerror(errno));
        }

        return -1;
    }

    rc = sqlite3_open_v2(st->path, &st->db,
                         SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open buffer \"%s\": %s", st->path,
                 st->db ? sqlite3_errmsg(st->db) : sqlite3_errstr(rc));
        return -1;
    }

    if (sqlite3_extended_result_codes(st->db, 1) != SQLITE_OK
        || sqlite3_busy_timeout(st->db, SPOOL_READER_BUSY_MS) != SQLITE_OK)
    {
        snprintf(err, errlen, "cannot open buffer \"%s\": %s", st->path,
                 sqlite3_errmsg(st->db));
        return -1;
    }

    /* also a conversion that a crash cut short: its chunks are not all */

    if (spool_store_schema_of(st) == 1) {
        snprintf(err, errlen, "buffer \"%s\" was written by an older "
                 "rf-spoold (schema 1): start rf-spoold on it once to "
                 "convert it", st->path);
        return -1;
    }

    if (spool_store_prepare_all(st, SPOOL_ST_READER) != 0) {
        snprintf(err, errlen, "\"%s\" is not an rf-spoold buffer: %s",
                 st->path, sqlite3_errmsg(st->db));
        return -1;
    }

    return 0;
}


static int
spool_store_prepare_all(spool_store_t *st, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(st->db, spool_store_sql[i], -1,
                               SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL)
            != SQLITE_OK)
        {
            /* a reader says "not an rf-spoold buffer" by itself */

            if (!st->readonly) {
                log_warnx("buffer \"%s\": prepare \"%s\": %s", st->path,
                          spool_store_sql[i], sqlite3_errmsg(st->db));
            }

            return -1;
        }
    }

    return 0;
}


void
spool_store_close(spool_store_t *st)
{
    int  i;

    if (st == NULL) {
        return;
    }

    if (st->db != NULL && !sqlite3_get_autocommit(st->db)) {
        spool_store_rollback(st);
    }

    for (i = 0; i < SPOOL_ST_MAX; i++) {
        if (st->stmt[i] != NULL) {
            (void) sqlite3_finalize(st->stmt[i]);
        }
    }

    /* the last connection checkpoints and removes the -wal */

    if (st->db != NULL && sqlite3_close(st->db) != SQLITE_OK) {
        log_warnx("buffer \"%s\": close: %s", st->path,
                  sqlite3_errmsg(st->db));
    }

    if (st->lock_fd != -1) {
        (void) close(st->lock_fd);
    }

    free(st->path);
    free(st);
}


const char *
spool_store_path(spool_store_t *st)
{
    return st->path;
}


uint64_t
spool_store_page_size(spool_store_t *st)
{
    return st->page_size;
}


int
spool_store_can_vacuum(spool_store_t *st)
{
    return st->can_vacuum;
}


uint64_t
spool_store_wal_frames(spool_store_t *st)
{
    return st->wal_frames;
}


uint64_t
spool_store_damaged(spool_store_t *st)
{
    return st->damaged;
}


int
spool_store_read_meta(spool_store_t *st, spool_meta_t *m)
{
    int            rc, i, schema;
    const char    *key, *id;
    sqlite3_stmt  *stmt;

    memset(m, 0, sizeof(spool_meta_t));

    stmt = st->stmt[SPOOL_ST_META_GET];
    schema = 0;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        key = (const char *) sqlite3_column_text(stmt, 0);
        if (key == NULL) {
            continue;
        }

        if (strcmp(key, "schema") == 0) {
            schema = sqlite3_column_int(stmt, 1);
            continue;
        }

        if (strcmp(key, "id") == 0) {
            id = (const char *) sqlite3_column_text(stmt, 1);
            snprintf(m->id, sizeof(m->id), "%s", id ? id : "");
            continue;
        }

        for (i = 0; spool_meta_keys[i].key != NULL; i++) {
            if (strcmp(key, spool_meta_keys[i].key) == 0) {
                *(uint64_t *) ((char *) m + spool_meta_keys[i].offset) =
                    (uint64_t) sqlite3_column_int64(stmt, 1);
                break;
            }
        }
    }

    if (rc != SQLITE_DONE) {
        spool_store_error(st, "read meta");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return spool_store_error(st, "read meta");
    }

    if (schema != SPOOL_SCHEMA) {
        log_warnx("buffer \"%s\": schema %d, this rf-spoold reads %d",
                  st->path, schema, SPOOL_SCHEMA);
        errno = EINVAL;
        return -1;
    }

    return 0;
}


int
spool_store_begin(spool_store_t *st)
{
    return spool_store_done(st, SPOOL_ST_BEGIN, "begin");
}


int
spool_store_commit(spool_store_t *st)
{
    return spool_store_done(st, SPOOL_ST_COMMIT, "commit");
}


void
spool_store_rollback(spool_store_t *st)
{
    /* a failed COMMIT or an I/O error may have rolled back already */

    if (sqlite3_get_autocommit(st->db)) {
        return;
    }

    (void) spool_store_done(st, SPOOL_ST_ROLLBACK, "rollback");
}


int
spool_store_insert(spool_store_t *st, const spool_chunk_info_t *c,
    const unsigned char *data, size_t len)
{
    sqlite3_stmt  *stmt;

    stmt = st->stmt[SPOOL_ST_INSERT];

    if (sqlite3_bind_int64(stmt, 1, (sqlite3_int64) c->first) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 2, (sqlite3_int64) c->last) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 3, (sqlite3_int64) c->n) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, (sqlite3_int64) c->bytes) != SQLITE_OK
        || sqlite3_bind_blob64(stmt, 5, data, len, SQLITE_STATIC)
           != SQLITE_OK)
    {
        return spool_store_error(st, "bind chunk");
    }

    return spool_store_done(st, SPOOL_ST_INSERT, "insert");
}


int
spool_store_oldest(spool_store_t *st, spool_chunk_info_t *c)
{
    return spool_store_chunk_row(st, SPOOL_ST_OLDEST, c, "find oldest");
}


int
spool_store_newest(spool_store_t *st, uint64_t from, spool_chunk_info_t *c)
{
    if (sqlite3_bind_int64(st->stmt[SPOOL_ST_NEWEST], 1,
                           (sqlite3_int64) from)
        != SQLITE_OK)
    {
        return spool_store_error(st, "bind");
    }

    return spool_store_chunk_row(st, SPOOL_ST_NEWEST, c, "find newest");
}


int
spool_store_delete(spool_store_t *st, uint64_t first)
{
    if (sqlite3_bind_int64(st->stmt[SPOOL_ST_DELETE], 1,
                           (sqlite3_int64) first)
        != SQLITE_OK)
    {
        return spool_store_error(st, "bind");
    }

    return spool_store_done(st, SPOOL_ST_DELETE, "delete chunk");
}


int
spool_store_count(spool_store_t *st, uint64_t first, uint64_t above,
    uint64_t upto, uint64_t *n, uint64_t *bytes)
{
    int                  rc, got;
    size_t               len;
    sqlite3_stmt        *stmt;
    spool_entry_t        e;
    const void          *data;
    spool_chunk_iter_t   it;

    stmt = st->stmt[SPOOL_ST_DATA];

    if (sqlite3_bind_int64(stmt, 1, (sqlite3_int64) first) != SQLITE_OK) {
        return spool_store_error(st, "bind");
    }

    rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW) {
        data = sqlite3_column_blob(stmt, 0);
        len = (size_t) sqlite3_column_bytes(stmt, 0);

        if (data == NULL && len != 0) {
            (void) sqlite3_reset(stmt);
            errno = ENOMEM;
            return -1;
        }

        spool_chunk_iter(&it, data, len);

        while ((got = spool_chunk_next(&it, &e)) == 1) {
            if (e.sseq > above && e.sseq <= upto) {
                (*n)++;
                *bytes += e.len;
            }
        }

        if (got == -1) {
            log_warnx("buffer \"%s\": chunk %" PRIu64 " is damaged at "
                      "byte %zu", st->path, first, it.off);
        }

        rc = sqlite3_step(stmt);
    }

    if (rc != SQLITE_DONE) {
        spool_store_error(st, "read chunk");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return spool_store_error(st, "read chunk");
    }

    return 0;
}


int
spool_store_pages(spool_store_t *st, uint64_t *pages, uint64_t *used)
{
    uint64_t       freelist;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[SPOOL_ST_PAGES];

    if (sqlite3_step(stmt) != SQLITE_ROW) {
        spool_store_error(st, "page count");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    *pages = (uint64_t) sqlite3_column_int64(stmt, 0);
    freelist = (uint64_t) sqlite3_column_int64(stmt, 1);
    *used = (*pages > freelist) ? *pages - freelist : 0;

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return spool_store_error(st, "page count");
    }

    return 0;
}


int
spool_store_vacuum(spool_store_t *st, uint64_t pages)
{
    int            rc;
    uint64_t       i;
    sqlite3_stmt  *stmt;

    /*
     * One page a run, so that the statement stays prepared whatever pages
     * is; it yields a row on the way, which says nothing.
     */

    stmt = st->stmt[SPOOL_ST_VACUUM];

    for (i = 0; i < pages; i++) {
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            /* void */
        }

        if (rc != SQLITE_DONE) {
            spool_store_error(st, "incremental vacuum");
            (void) sqlite3_reset(stmt);
            return -1;
        }

        if (sqlite3_reset(stmt) != SQLITE_OK) {
            return spool_store_error(st, "incremental vacuum");
        }
    }

    return 0;
}


int
spool_store_checkpoint(spool_store_t *st, int mode)
{
    int  rc, log, done;

    rc = sqlite3_wal_checkpoint_v2(st->db, "main", mode, &log, &done);

    if (rc == SQLITE_BUSY) {
        errno = EBUSY;
        return -1;
    }

    if (rc != SQLITE_OK) {
        return spool_store_error(st, "checkpoint");
    }

    /* the next transaction writes the WAL from its beginning */
    st->wal_frames = 0;

    return 0;
}


int
spool_store_wal_limit(spool_store_t *st, uint64_t bytes)
{
    char  sql[64];

    /* a backstop: SQLite trims a WAL it starts over to this */

    snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %" PRIu64,
             bytes);

    return spool_store_exec(st, sql);
}


int
spool_store_meta_put(spool_store_t *st, const char *key, int64_t value,
    int add)
{
    int            id;
    sqlite3_stmt  *stmt;

    id = add ? SPOOL_ST_META_ADD : SPOOL_ST_META_SET;
    stmt = st->stmt[id];

    if (sqlite3_bind_text(stmt, 1, key, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 2, value) != SQLITE_OK)
    {
        return spool_store_error(st, "bind");
    }

    return spool_store_done(st, id, "write meta");
}


int
spool_store_meta_id(spool_store_t *st, const char *id)
{
    sqlite3_stmt  *stmt;

    stmt = st->stmt[SPOOL_ST_META_SET];

    if (sqlite3_bind_text(stmt, 1, "id", -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_text(stmt, 2, id, -1, SQLITE_STATIC) != SQLITE_OK)
    {
        return spool_store_error(st, "bind");
    }

    return spool_store_done(st, SPOOL_ST_META_SET, "write meta");
}


/*
 * A read transaction: the meta's released, then the chunks from the one
 * that holds the record after *after (raised to released).
 */

static int
spool_store_read(spool_store_t *st, uint64_t *after)
{
    int            rc;
    uint64_t       released;
    sqlite3_stmt  *stmt;

    if (spool_store_done(st, SPOOL_ST_BEGIN_READ, "begin") != 0) {
        return -1;
    }

    stmt = st->stmt[SPOOL_ST_RELEASED];
    released = 0;

    rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW) {
        released = (uint64_t) sqlite3_column_int64(stmt, 0);
        rc = sqlite3_step(stmt);
    }

    if (rc != SQLITE_DONE) {
        spool_store_error(st, "read meta");
        (void) sqlite3_reset(stmt);
        goto failed;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        spool_store_error(st, "read meta");
        goto failed;
    }

    if (*after < released) {
        *after = released;
    }

    if (sqlite3_bind_int64(st->stmt[SPOOL_ST_READ], 1,
                           (sqlite3_int64) (*after + 1))
        != SQLITE_OK)
    {
        spool_store_error(st, "bind");
        goto failed;
    }

    return 0;

failed:

    (void) spool_store_done(st, SPOOL_ST_ROLLBACK, "rollback");

    return -1;
}


/* ends what spool_store_read() began; rc is the last sqlite3_step()'s */

static int
spool_store_read_end(spool_store_t *st, int rc, const char *what)
{
    sqlite3_stmt  *stmt;

    stmt = st->stmt[SPOOL_ST_READ];

    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        spool_store_error(st, what);
        (void) sqlite3_reset(stmt);
        (void) spool_store_done(st, SPOOL_ST_ROLLBACK, "rollback");
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        spool_store_error(st, what);
        (void) spool_store_done(st, SPOOL_ST_ROLLBACK, "rollback");
        return -1;
    }

    return spool_store_done(st, SPOOL_ST_COMMIT, "end read");
}


int
spool_store_each(spool_store_t *st, uint64_t after,
    spool_store_each_pt handler, void *arg)
{
    int                  rc, got, stop;
    size_t               len, chunk;
    uint64_t             first, last;
    sqlite3_stmt        *stmt;
    spool_entry_t        e;
    const void          *data;
    spool_chunk_iter_t   it;

    stmt = st->stmt[SPOOL_ST_READ];

    for ( ;; ) {
        if (spool_store_read(st, &after) != 0) {
            return -1;
        }

        chunk = 0;
        stop = 0;

        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            first = (uint64_t) sqlite3_column_int64(stmt, 0);
            last = (uint64_t) sqlite3_column_int64(stmt, 1);
            data = sqlite3_column_blob(stmt, 2);
            len = (size_t) sqlite3_column_bytes(stmt, 2);

            if (data == NULL && len != 0) {
                rc = SQLITE_NOMEM;
                break;
            }

            spool_chunk_iter(&it, data, len);

            while ((got = spool_chunk_next(&it, &e)) == 1) {
                if (e.sseq <= after) {
                    continue;
                }

                after = e.sseq;

                if (handler(e.sseq, e.data, e.len, arg) != 0) {
                    stop = 1;
                    break;
                }
            }

            if (got == -1) {
                st->damaged++;
                log_warnx("buffer \"%s\": chunk %" PRIu64 " is damaged at "
                          "byte %zu, the rest of it is skipped", st->path,
                          first, it.off);
            }

            /* the next read goes on after this chunk, even if damaged */

            if (!stop && after < last) {
                after = last;
            }

            chunk += len;

            if (stop || chunk >= SPOOL_EACH_BYTES) {
                break;
            }
        }

        /* the read transaction ends here, before any slow output */

        if (spool_store_read_end(st, rc, "read records") != 0) {
            return -1;
        }

        if (stop || handler(0, NULL, 0, arg) != 0) {
            return -1;
        }

        if (rc == SQLITE_DONE) {
            return 0;
        }
    }
}


int
spool_store_batch(spool_store_t *st, uint64_t after, uint64_t limit,
    spool_store_batch_pt handler, void *arg)
{
    int                  rc, got, stop;
    size_t               len;
    uint64_t             n, first;
    sqlite3_stmt        *stmt;
    spool_entry_t        e;
    const void          *data;
    spool_chunk_iter_t   it;

    if (spool_store_read(st, &after) != 0) {
        return -1;
    }

    stmt = st->stmt[SPOOL_ST_READ];
    rc = SQLITE_DONE;
    n = 0;
    stop = 0;

    while (n < limit && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        first = (uint64_t) sqlite3_column_int64(stmt, 0);
        data = sqlite3_column_blob(stmt, 2);
        len = (size_t) sqlite3_column_bytes(stmt, 2);

        if (data == NULL && len != 0) {
            rc = SQLITE_NOMEM;
            break;
        }

        spool_chunk_iter(&it, data, len);
        got = 0;

        while (n < limit && (got = spool_chunk_next(&it, &e)) == 1) {
            if (e.sseq <= after) {
                continue;
            }

            stop = handler(e.sseq, &e.bucket, e.data, e.len, arg);
            if (stop != 0) {
                break;
            }

            n++;
        }

        if (got == -1) {
            st->damaged++;
            log_warnx("buffer \"%s\": chunk %" PRIu64 " is damaged at byte "
                      "%zu, the rest of it is skipped", st->path, first,
                      it.off);
        }

        if (stop != 0) {
            break;
        }
    }

    /* the read transaction ends here */

    if (spool_store_read_end(st, (n >= limit || stop) ? SQLITE_ROW : rc,
                             "read records")
        != 0)
    {
        return -1;
    }

    if (stop < 0) {
        errno = ENOMEM;
        return -1;
    }

    return (int) n;
}


int
spool_store_file_sizes(const char *path, uint64_t *db, uint64_t *wal)
{
    char         buf[4096];
    struct stat  sb;

    *db = 0;
    *wal = 0;

    if (stat(path, &sb) == -1) {
        return -1;
    }

    *db = (uint64_t) sb.st_size;

    if (snprintf(buf, sizeof(buf), "%s-wal", path) >= (int) sizeof(buf)) {
        errno = ENAMETOOLONG;
        return -1;
    }

    if (stat(buf, &sb) == 0) {
        *wal = (uint64_t) sb.st_size;

    } else if (errno != ENOENT) {
        return -1;
    }

    return 0;
}


/* one row of first, last, n, bytes: 1, 0 when none, -1 */

static int
spool_store_chunk_row(spool_store_t *st, int id, spool_chunk_info_t *c,
    const char *what)
{
    int            rc;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[id];

    rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW) {
        c->first = (uint64_t) sqlite3_column_int64(stmt, 0);
        c->last = (uint64_t) sqlite3_column_int64(stmt, 1);
        c->n = (uint64_t) sqlite3_column_int64(stmt, 2);
        c->bytes = (uint64_t) sqlite3_column_int64(stmt, 3);

    } else if (rc != SQLITE_DONE) {
        spool_store_error(st, what);
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return spool_store_error(st, what);
    }

    return rc == SQLITE_ROW;
}


/* the meta's schema, 0 when it cannot be read */

static int
spool_store_schema_of(spool_store_t *st)
{
    int            schema;
    sqlite3_stmt  *stmt;

    if (sqlite3_prepare_v2(st->db, "SELECT value FROM meta"
                           " WHERE key = 'schema'", -1, &stmt, NULL)
        != SQLITE_OK)
    {
        return 0;
    }

    schema = (sqlite3_step(stmt) == SQLITE_ROW)
             ? sqlite3_column_int(stmt, 0) : 0;

    (void) sqlite3_finalize(stmt);

    return schema;
}


/*
 * Schema 1 kept a row per record in a records table.  Its records move
 * into chunks a megabyte per transaction, the WAL checkpointed after
 * each, so that the conversion stays near the cap.
 */

static int
spool_store_migrate(spool_store_t *st, char *err, size_t errlen)
{
    int        more;
    uint64_t   steps;
    rf_buf_t   chunk;

    if (spool_store_schema_of(st) != 1) {
        return 0;               /* read_meta() judges the others */
    }

    log_info("buffer \"%s\": converting its records to chunks (schema 1 "
             "to %d)", st->path, SPOOL_SCHEMA);

    rf_buf_init(&chunk);
    steps = 0;

    do {
        if (spool_store_migrate_step(st, &chunk, &more) != 0) {
            rf_buf_free(&chunk);
            goto failed;
        }

        steps++;

    } while (more);

    rf_buf_free(&chunk);

    if (spool_store_exec(st, "BEGIN IMMEDIATE;"
                             "DROP TABLE records;"
                             "UPDATE meta SET value = 2"
                             " WHERE key = 'schema';"
                             "COMMIT;")
        != 0)
    {
        (void) spool_store_exec(st, "ROLLBACK");
        goto failed;
    }

    if (spool_store_checkpoint(st, SPOOL_CKPT_TRUNCATE) != 0) {
        goto failed;
    }

    log_info("buffer \"%s\": converted in %" PRIu64 " steps", st->path,
             steps);

    return 0;

failed:

    snprintf(err, errlen, "cannot convert buffer \"%s\" from schema 1: %s",
             st->path, sqlite3_errmsg(st->db));

    return -1;
}


static int
spool_store_migrate_step(spool_store_t *st, rf_buf_t *chunk, int *more)
{
    int                  rc;
    char                 sql[96];
    rf_str_t             bucket;
    sqlite3_stmt        *stmt;
    const void          *data;
    spool_chunk_info_t   c;

    *more = 0;

    if (spool_store_exec(st, "BEGIN IMMEDIATE") != 0) {
        return -1;
    }

    rc = sqlite3_prepare_v2(st->db, "SELECT sseq, bucket, data FROM records"
                            " ORDER BY sseq", -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        goto failed;
    }

    rf_buf_reset(chunk);
    memset(&c, 0, sizeof(spool_chunk_info_t));

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        if (chunk->len >= SPOOL_MIGRATE_BYTES) {
            *more = 1;
            break;
        }

        c.last = (uint64_t) sqlite3_column_int64(stmt, 0);
        bucket.data = sqlite3_column_text(stmt, 1);
        bucket.len = (size_t) sqlite3_column_bytes(stmt, 1);
        data = sqlite3_column_blob(stmt, 2);

        if (c.first == 0) {
            c.first = c.last;
        }

        if ((bucket.data == NULL && bucket.len != 0)
            || spool_chunk_add(chunk, c.last, &bucket, data,
                               (size_t) sqlite3_column_bytes(stmt, 2))
               != 0)
        {
            (void) sqlite3_finalize(stmt);
            goto failed;
        }

        c.n++;
        c.bytes += (uint64_t) sqlite3_column_bytes(stmt, 2);
    }

    if ((rc != SQLITE_ROW && rc != SQLITE_DONE)
        || sqlite3_finalize(stmt) != SQLITE_OK)
    {
        goto failed;
    }

    if (c.n > 0) {
        snprintf(sql, sizeof(sql), "DELETE FROM records WHERE sseq <= %"
                 PRIu64, c.last);

        if (spool_store_insert(st, &c, chunk->data, chunk->len) != 0
            || spool_store_exec(st, sql) != 0)
        {
            goto failed;
        }
    }

    if (spool_store_exec(st, "COMMIT") != 0) {
        goto failed;
    }

    return spool_store_checkpoint(st, SPOOL_CKPT_RESTART);

failed:

    (void) spool_store_exec(st, "ROLLBACK");

    return -1;
}


static int
spool_store_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    spool_store_t  *st;

    st = arg;
    st->wal_frames = (uint64_t) frames;

    return SQLITE_OK;
}


static int
spool_store_error(spool_store_t *st, const char *what)
{
    int  rc;

    rc = sqlite3_extended_errcode(st->db);

    log_warnx("buffer \"%s\": %s: %s", st->path, what,
              sqlite3_errmsg(st->db));

    errno = spool_store_errno(rc);

    return -1;
}


static int
spool_store_errno(int rc)
{
    switch (rc & 0xff) {

    case SQLITE_FULL:
        return ENOSPC;

    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return EBUSY;

    case SQLITE_NOMEM:
        return ENOMEM;

    case SQLITE_READONLY:
    case SQLITE_PERM:
        return EACCES;

    default:
        return EIO;
    }
}


static int
spool_store_exec(spool_store_t *st, const char *sql)
{
    char  *msg;

    msg = NULL;

    if (sqlite3_exec(st->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_warnx("buffer \"%s\": \"%s\": %s", st->path, sql,
                  msg ? msg : sqlite3_errmsg(st->db));
        sqlite3_free(msg);
        errno = spool_store_errno(sqlite3_extended_errcode(st->db));
        return -1;
    }

    return 0;
}


/* step a statement that returns no rows, then reset it */

static int
spool_store_done(spool_store_t *st, int id, const char *what)
{
    int            rc;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[id];

    rc = sqlite3_step(stmt);

    if (rc != SQLITE_DONE) {
        spool_store_error(st, what);
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return spool_store_error(st, what);
    }

    return 0;
}
