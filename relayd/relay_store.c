/*
 * Copyright (C) ReplayForge contributors
 *
 * All of rf-relayd's SQL (see relay_store.h): a bucket file's schema, the
 * statements prepared at open, and thin operations around them that check
 * every return code and log SQLite's message (the connection itself and
 * its settings: common/rf_sqlite.c).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "rf_log.h"
#include "rf_sqlite.h"
#include "relay_store.h"


#define RELAY_SCHEMA            1
#define RELAY_WRITER_BUSY_MS    2000
#define RELAY_READER_BUSY_MS    5000
#define RELAY_WRITER_CACHE_KIB  16384
#define RELAY_READER_CACHE_KIB  2048


enum {
    RELAY_ST_READ = 0,          /* the readers' statements come first */
    RELAY_ST_META_GET,
    RELAY_ST_META_SET,
    RELAY_ST_SOURCES,
    RELAY_ST_CONSUMERS,
    RELAY_ST_BEGIN,
    RELAY_ST_COMMIT,
    RELAY_ST_ROLLBACK,
    RELAY_ST_SAVEPOINT,
    RELAY_ST_RELEASE,
    RELAY_ST_ROLLBACK_TO,
    RELAY_ST_INSERT,
    RELAY_ST_PUT_SOURCE,
    RELAY_ST_PUT_CONSUMER,
    RELAY_ST_FIRST,
    RELAY_ST_DELETE,
    RELAY_ST_PAGES,
    RELAY_ST_VACUUM,
    RELAY_ST_MAX
};

#define RELAY_ST_READER         (RELAY_ST_READ + 1)


_Static_assert(RELAY_CKPT_PASSIVE == SQLITE_CHECKPOINT_PASSIVE
               && RELAY_CKPT_RESTART == SQLITE_CHECKPOINT_RESTART
               && RELAY_CKPT_TRUNCATE == SQLITE_CHECKPOINT_TRUNCATE,
               "checkpoint modes are SQLite's");


struct relay_store_s {
    rf_sqlite_t                 s;
    sqlite3_stmt               *stmt[RELAY_ST_MAX];
};


typedef struct {
    const char                 *key;
    size_t                      offset;
} relay_meta_key_t;


static int relay_store_prepare_all(relay_store_t *st, int n);
static int relay_store_error(relay_store_t *st, const char *what);
static int relay_store_done(relay_store_t *st, int id, const char *what);
static sqlite3_int64 relay_store_i64(uint64_t v);


static const char  relay_store_schema[] =
    "CREATE TABLE IF NOT EXISTS records ("
    "    seq        INTEGER PRIMARY KEY,"
    "    stored_ms  INTEGER NOT NULL,"
    "    source     TEXT,"
    "    size       INTEGER NOT NULL,"
    "    data       BLOB NOT NULL"
    ");"
    "CREATE TABLE IF NOT EXISTS sources ("
    "    source     TEXT PRIMARY KEY,"
    "    max_sseq   INTEGER NOT NULL,"
    "    records    INTEGER NOT NULL,"
    "    bytes      INTEGER NOT NULL,"
    "    duplicates INTEGER NOT NULL,"
    "    last_ms    INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS consumers ("
    "    name       TEXT PRIMARY KEY,"
    "    cursor     INTEGER NOT NULL,"
    "    declared   INTEGER NOT NULL,"
    "    last_ms    INTEGER NOT NULL"
    ") WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta ("
    "    key        TEXT PRIMARY KEY,"
    "    value      NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta (key, value) VALUES"
    "    ('schema', 1), ('last_seq', 0), ('records', 0), ('bytes', 0),"
    "    ('in_records', 0), ('in_bytes', 0), ('out_records', 0),"
    "    ('out_bytes', 0), ('duplicates', 0), ('rejected', 0),"
    "    ('dropped_ttl', 0), ('dropped_size', 0), ('dropped_unread', 0),"
    "    ('deleted_acked', 0);";


/* in RELAY_ST_* order; size is before data so that it reads cheaply */

static const char *const  relay_store_sql[RELAY_ST_MAX] = {
    "SELECT seq, data FROM records WHERE seq > ?1 ORDER BY seq LIMIT ?2",
    "SELECT key, value FROM meta",
    "UPDATE meta SET value = ?2 WHERE key = ?1",
    "SELECT source, max_sseq, records, bytes, duplicates, last_ms"
    " FROM sources",
    "SELECT name, cursor, declared, last_ms FROM consumers",
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT job",
    "RELEASE job",
    "ROLLBACK TO job",
    "INSERT INTO records (seq, stored_ms, source, size, data)"
    " VALUES (?1, ?2, ?3, ?4, ?5)",
    "INSERT OR REPLACE INTO sources"
    " (source, max_sseq, records, bytes, duplicates, last_ms)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    "INSERT OR REPLACE INTO consumers (name, cursor, declared, last_ms)"
    " VALUES (?1, ?2, ?3, ?4)",
    "SELECT seq, stored_ms FROM records ORDER BY seq LIMIT 1",
    "DELETE FROM records WHERE seq < ?1 AND stored_ms < ?2"
    " RETURNING seq, size",
    "SELECT p.page_count, f.freelist_count"
    " FROM pragma_page_count() AS p, pragma_freelist_count() AS f",
    "PRAGMA incremental_vacuum(1)"
};


static const relay_meta_key_t  relay_meta_keys[RELAY_META_FIELDS] = {
    { "last_seq", offsetof(relay_meta_t, last_seq) },
    { "records", offsetof(relay_meta_t, records) },
    { "bytes", offsetof(relay_meta_t, bytes) },
    { "in_records", offsetof(relay_meta_t, in_records) },
    { "in_bytes", offsetof(relay_meta_t, in_bytes) },
    { "out_records", offsetof(relay_meta_t, out_records) },
    { "out_bytes", offsetof(relay_meta_t, out_bytes) },
    { "duplicates", offsetof(relay_meta_t, duplicates) },
    { "rejected", offsetof(relay_meta_t, rejected) },
    { "dropped_ttl", offsetof(relay_meta_t, dropped_ttl) },
    { "dropped_size", offsetof(relay_meta_t, dropped_size) },
    { "dropped_unread", offsetof(relay_meta_t, dropped_unread) },
    { "deleted_acked", offsetof(relay_meta_t, deleted_acked) }
};

_Static_assert(sizeof(relay_meta_t) == RELAY_META_FIELDS * sizeof(uint64_t),
               "every meta field has a key");


int
relay_store_open(relay_store_t **stp, const char *path, int reader,
    uint64_t page_size, char *err, size_t errlen)
{
    int             rc;
    relay_store_t  *st;

    *stp = NULL;

    st = calloc(1, sizeof(relay_store_t));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (rf_sqlite_open(&st->s, path, "bucket file", !reader, page_size,
                       reader ? RELAY_READER_CACHE_KIB : RELAY_WRITER_CACHE_KIB,
                       reader ? RELAY_READER_BUSY_MS : RELAY_WRITER_BUSY_MS,
                       err, errlen)
        != 0)
    {
        relay_store_close(st);
        return -1;
    }

    if (reader) {
        if (relay_store_prepare_all(st, RELAY_ST_READER) != 0) {
            snprintf(err, errlen, "\"%s\" is not a bucket file: %s", path,
                     sqlite3_errmsg(st->s.db));
            relay_store_close(st);
            return -1;
        }

        *stp = st;
        return 0;
    }

    rc = rf_sqlite_exec(&st->s, "BEGIN IMMEDIATE");

    if (rc == 0 && rf_sqlite_exec(&st->s, relay_store_schema) != 0) {
        snprintf(err, errlen, "cannot create the tables of bucket file "
                 "\"%s\": %s", path, sqlite3_errmsg(st->s.db));
        (void) rf_sqlite_exec(&st->s, "ROLLBACK");
        relay_store_close(st);
        return -1;
    }

    if (rc != 0
        || rf_sqlite_exec(&st->s, "COMMIT") != 0
        || relay_store_prepare_all(st, RELAY_ST_MAX) != 0)
    {
        snprintf(err, errlen, "cannot open bucket file \"%s\": %s", path,
                 sqlite3_errmsg(st->s.db));
        relay_store_close(st);
        return -1;
    }

    *stp = st;

    return 0;
}


static int
relay_store_prepare_all(relay_store_t *st, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(st->s.db, relay_store_sql[i], -1,
                               SQLITE_PREPARE_PERSISTENT, &st->stmt[i], NULL)
            != SQLITE_OK)
        {
            log_warnx("bucket file \"%s\": prepare \"%s\": %s", st->s.path,
                      relay_store_sql[i], sqlite3_errmsg(st->s.db));
            return -1;
        }
    }

    return 0;
}


void
relay_store_close(relay_store_t *st)
{
    int  i;

    if (st == NULL) {
        return;
    }

    if (st->s.db != NULL && !sqlite3_get_autocommit(st->s.db)) {
        relay_store_rollback(st);
    }

    for (i = 0; i < RELAY_ST_MAX; i++) {
        if (st->stmt[i] != NULL) {
            (void) sqlite3_finalize(st->stmt[i]);
        }
    }

    rf_sqlite_close(&st->s);
    free(st);
}


uint64_t
relay_store_page_size(relay_store_t *st)
{
    return st->s.page_size;
}


int
relay_store_can_vacuum(relay_store_t *st)
{
    return st->s.can_vacuum;
}


uint64_t
relay_store_wal_frames(relay_store_t *st)
{
    return st->s.wal_frames;
}


int
relay_store_read_meta(relay_store_t *st, relay_meta_t *m)
{
    int            rc, i, schema;
    const char    *key;
    sqlite3_stmt  *stmt;

    memset(m, 0, sizeof(relay_meta_t));

    stmt = st->stmt[RELAY_ST_META_GET];
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

        for (i = 0; i < RELAY_META_FIELDS; i++) {
            if (strcmp(key, relay_meta_keys[i].key) == 0) {
                *(uint64_t *) ((char *) m + relay_meta_keys[i].offset) =
                    (uint64_t) sqlite3_column_int64(stmt, 1);
                break;
            }
        }
    }

    if (rc != SQLITE_DONE) {
        relay_store_error(st, "read meta");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return relay_store_error(st, "read meta");
    }

    if (schema != RELAY_SCHEMA) {
        log_warnx("bucket file \"%s\": schema %d, this rf-relayd reads %d",
                  st->s.path, schema, RELAY_SCHEMA);
        errno = EINVAL;
        return -1;
    }

    return 0;
}


int
relay_store_write_meta(relay_store_t *st, const relay_meta_t *m,
    const relay_meta_t *old)
{
    int            i;
    uint64_t       v;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[RELAY_ST_META_SET];

    for (i = 0; i < RELAY_META_FIELDS; i++) {
        v = *(const uint64_t *) ((const char *) m
                                 + relay_meta_keys[i].offset);

        if (old != NULL
            && v == *(const uint64_t *) ((const char *) old
                                         + relay_meta_keys[i].offset))
        {
            continue;
        }

        if (sqlite3_bind_text(stmt, 1, relay_meta_keys[i].key, -1,
                              SQLITE_STATIC) != SQLITE_OK
            || sqlite3_bind_int64(stmt, 2, relay_store_i64(v)) != SQLITE_OK)
        {
            return relay_store_error(st, "bind meta");
        }

        if (relay_store_done(st, RELAY_ST_META_SET, "write meta") != 0) {
            return -1;
        }
    }

    return 0;
}


int
relay_store_each_source(relay_store_t *st, relay_store_source_pt cb,
    void *arg)
{
    int                    rc, stop;
    sqlite3_stmt          *stmt;
    relay_store_source_t   s;

    stmt = st->stmt[RELAY_ST_SOURCES];
    stop = 0;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        s.id.data = sqlite3_column_text(stmt, 0);
        s.id.len = (size_t) sqlite3_column_bytes(stmt, 0);

        if (s.id.data == NULL) {
            continue;
        }

        s.max_sseq = (uint64_t) sqlite3_column_int64(stmt, 1);
        s.records = (uint64_t) sqlite3_column_int64(stmt, 2);
        s.bytes = (uint64_t) sqlite3_column_int64(stmt, 3);
        s.duplicates = (uint64_t) sqlite3_column_int64(stmt, 4);
        s.last_ms = (uint64_t) sqlite3_column_int64(stmt, 5);

        if (cb(&s, arg) != 0) {
            stop = 1;
            break;
        }
    }

    if (!stop && rc != SQLITE_DONE) {
        relay_store_error(st, "read sources");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return relay_store_error(st, "read sources");
    }

    return stop ? -1 : 0;
}


int
relay_store_each_consumer(relay_store_t *st, relay_store_consumer_pt cb,
    void *arg)
{
    int                     rc, stop;
    sqlite3_stmt           *stmt;
    relay_store_consumer_t  c;

    stmt = st->stmt[RELAY_ST_CONSUMERS];
    stop = 0;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        c.name = (const char *) sqlite3_column_text(stmt, 0);

        if (c.name == NULL) {
            continue;
        }

        c.cursor = (uint64_t) sqlite3_column_int64(stmt, 1);
        c.declared = sqlite3_column_int(stmt, 2);
        c.last_ms = (uint64_t) sqlite3_column_int64(stmt, 3);

        if (cb(&c, arg) != 0) {
            stop = 1;
            break;
        }
    }

    if (!stop && rc != SQLITE_DONE) {
        relay_store_error(st, "read consumers");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return relay_store_error(st, "read consumers");
    }

    return stop ? -1 : 0;
}


int
relay_store_begin(relay_store_t *st)
{
    return relay_store_done(st, RELAY_ST_BEGIN, "begin");
}


int
relay_store_commit(relay_store_t *st)
{
    return relay_store_done(st, RELAY_ST_COMMIT, "commit");
}


void
relay_store_rollback(relay_store_t *st)
{
    /* a failed COMMIT or an I/O error may have rolled back already */

    if (sqlite3_get_autocommit(st->s.db)) {
        return;
    }

    (void) relay_store_done(st, RELAY_ST_ROLLBACK, "rollback");
}


int
relay_store_savepoint(relay_store_t *st)
{
    return relay_store_done(st, RELAY_ST_SAVEPOINT, "savepoint");
}


int
relay_store_release(relay_store_t *st)
{
    return relay_store_done(st, RELAY_ST_RELEASE, "release savepoint");
}


int
relay_store_rollback_to(relay_store_t *st)
{
    int  err;

    /* keep the errno of what failed */

    err = errno;

    if (relay_store_done(st, RELAY_ST_ROLLBACK_TO, "roll back to savepoint")
        != 0
        || relay_store_done(st, RELAY_ST_RELEASE, "release savepoint") != 0)
    {
        return -1;
    }

    errno = err;

    return 0;
}


int
relay_store_insert(relay_store_t *st, uint64_t seq, uint64_t stored_ms,
    const rf_str_t *source, const unsigned char *data, size_t len)
{
    int            rc;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[RELAY_ST_INSERT];

    if (source != NULL && source->len > 0) {
        rc = sqlite3_bind_text(stmt, 3, (const char *) source->data,
                               (int) source->len, SQLITE_STATIC);

    } else {
        rc = sqlite3_bind_null(stmt, 3);
    }

    if (rc != SQLITE_OK
        || sqlite3_bind_int64(stmt, 1, relay_store_i64(seq)) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 2, relay_store_i64(stored_ms))
           != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, (sqlite3_int64) len) != SQLITE_OK
        || sqlite3_bind_blob(stmt, 5, data, (int) len, SQLITE_STATIC)
           != SQLITE_OK)
    {
        return relay_store_error(st, "bind record");
    }

    return relay_store_done(st, RELAY_ST_INSERT, "insert record");
}


int
relay_store_put_source(relay_store_t *st, const relay_store_source_t *s)
{
    sqlite3_stmt  *stmt;

    stmt = st->stmt[RELAY_ST_PUT_SOURCE];

    if (sqlite3_bind_text(stmt, 1, (const char *) s->id.data,
                          (int) s->id.len, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 2, relay_store_i64(s->max_sseq))
           != SQLITE_OK
        || sqlite3_bind_int64(stmt, 3, relay_store_i64(s->records))
           != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, relay_store_i64(s->bytes))
           != SQLITE_OK
        || sqlite3_bind_int64(stmt, 5, relay_store_i64(s->duplicates))
           != SQLITE_OK
        || sqlite3_bind_int64(stmt, 6, relay_store_i64(s->last_ms))
           != SQLITE_OK)
    {
        return relay_store_error(st, "bind source");
    }

    return relay_store_done(st, RELAY_ST_PUT_SOURCE, "write source");
}


int
relay_store_put_consumer(relay_store_t *st, const relay_store_consumer_t *c)
{
    sqlite3_stmt  *stmt;

    stmt = st->stmt[RELAY_ST_PUT_CONSUMER];

    if (sqlite3_bind_text(stmt, 1, c->name, -1, SQLITE_STATIC) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 2, relay_store_i64(c->cursor))
           != SQLITE_OK
        || sqlite3_bind_int(stmt, 3, c->declared ? 1 : 0) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 4, relay_store_i64(c->last_ms))
           != SQLITE_OK)
    {
        return relay_store_error(st, "bind consumer");
    }

    return relay_store_done(st, RELAY_ST_PUT_CONSUMER, "write consumer");
}


int
relay_store_first(relay_store_t *st, uint64_t *seq, uint64_t *stored_ms)
{
    int            rc;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[RELAY_ST_FIRST];

    rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW) {
        *seq = (uint64_t) sqlite3_column_int64(stmt, 0);
        *stored_ms = (uint64_t) sqlite3_column_int64(stmt, 1);

    } else if (rc != SQLITE_DONE) {
        relay_store_error(st, "find the oldest record");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return relay_store_error(st, "find the oldest record");
    }

    return rc == SQLITE_ROW;
}


int
relay_store_delete(relay_store_t *st, uint64_t below, uint64_t before,
    uint64_t unread, relay_store_del_t *d)
{
    int            rc;
    uint64_t       seq;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[RELAY_ST_DELETE];

    if (sqlite3_bind_int64(stmt, 1, relay_store_i64(below)) != SQLITE_OK
        || sqlite3_bind_int64(stmt, 2, relay_store_i64(before)) != SQLITE_OK)
    {
        return relay_store_error(st, "bind");
    }

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        seq = (uint64_t) sqlite3_column_int64(stmt, 0);

        d->n++;
        d->bytes += (uint64_t) sqlite3_column_int64(stmt, 1);

        if (seq > unread) {
            d->unread++;
        }
    }

    if (rc != SQLITE_DONE) {
        relay_store_error(st, "delete records");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return relay_store_error(st, "delete records");
    }

    return 0;
}


int
relay_store_pages(relay_store_t *st, uint64_t *pages, uint64_t *used)
{
    uint64_t       freelist;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[RELAY_ST_PAGES];

    if (sqlite3_step(stmt) != SQLITE_ROW) {
        relay_store_error(st, "page count");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    *pages = (uint64_t) sqlite3_column_int64(stmt, 0);
    freelist = (uint64_t) sqlite3_column_int64(stmt, 1);
    *used = (*pages > freelist) ? *pages - freelist : 0;

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return relay_store_error(st, "page count");
    }

    return 0;
}


int
relay_store_vacuum(relay_store_t *st, uint64_t pages)
{
    int            rc;
    uint64_t       i;
    sqlite3_stmt  *stmt;

    /*
     * One page a run, so that the statement stays prepared whatever pages
     * is; it yields a row on the way, which says nothing.
     */

    stmt = st->stmt[RELAY_ST_VACUUM];

    for (i = 0; i < pages; i++) {
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            /* void */
        }

        if (rc != SQLITE_DONE) {
            relay_store_error(st, "incremental vacuum");
            (void) sqlite3_reset(stmt);
            return -1;
        }

        if (sqlite3_reset(stmt) != SQLITE_OK) {
            return relay_store_error(st, "incremental vacuum");
        }
    }

    return 0;
}


int
relay_store_checkpoint(relay_store_t *st, int mode)
{
    return rf_sqlite_checkpoint(&st->s, mode);
}


int
relay_store_wal_limit(relay_store_t *st, uint64_t bytes)
{
    /* a backstop: SQLite trims a WAL it starts over to this */

    return rf_sqlite_wal_limit(&st->s, bytes);
}


int64_t
relay_store_read(relay_store_t *st, uint64_t after, size_t max,
    size_t max_bytes, relay_store_read_pt cb, void *arg, uint64_t *bytes)
{
    int             rc;
    size_t          len;
    int64_t         n;
    uint64_t        seq, total;
    const void     *data;
    sqlite3_stmt   *stmt;

    stmt = st->stmt[RELAY_ST_READ];

    if (max > INT32_MAX) {
        max = INT32_MAX;
    }

    if (sqlite3_bind_int64(stmt, 1, relay_store_i64(after)) != SQLITE_OK
        || sqlite3_bind_int(stmt, 2, (int) max) != SQLITE_OK)
    {
        return relay_store_error(st, "bind");
    }

    n = 0;
    total = 0;

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        seq = (uint64_t) sqlite3_column_int64(stmt, 0);
        data = sqlite3_column_blob(stmt, 1);
        len = (size_t) sqlite3_column_bytes(stmt, 1);

        if (data == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }

        if (n > 0 && total + len > max_bytes) {
            rc = SQLITE_DONE;
            break;
        }

        if (cb(seq, data, len, arg) != 0) {
            rc = SQLITE_DONE;
            break;
        }

        n++;
        total += len;
    }

    if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
        relay_store_error(st, "read records");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    /* the read transaction ends here */

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return relay_store_error(st, "read records");
    }

    *bytes = total;

    return n;
}


static int
relay_store_error(relay_store_t *st, const char *what)
{
    return rf_sqlite_error(&st->s, what);
}


static int
relay_store_done(relay_store_t *st, int id, const char *what)
{
    return rf_sqlite_done(&st->s, st->stmt[id], what);
}


/* SQLite's integers are signed: the largest u64 values saturate */

static sqlite3_int64
relay_store_i64(uint64_t v)
{
    return v > (uint64_t) INT64_MAX ? INT64_MAX : (sqlite3_int64) v;
}
