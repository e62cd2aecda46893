/*
 * Copyright (C) ReplayForge contributors
 *
 * All of rf-playerd's SQL (see player_store.h): the sqlite sink's schema,
 * the statements prepared when a connection opens, the writer's thin
 * operations and the readers' pool and queries.  Every value a client
 * gives is bound to a statement, never spliced into one.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sqlite3.h>

#include "rf_log.h"
#include "rf_sqlite.h"
#include "player_store.h"


#define PLAYER_SCHEMA           1
#define PLAYER_WRITER_BUSY_MS   2000
#define PLAYER_READER_BUSY_MS   5000
#define PLAYER_WRITER_CACHE_KIB 8192
#define PLAYER_READER_CACHE_KIB 2048
#define PLAYER_READERS_IDLE     8       /* pooled reader connections */


/* the writer's statements */
enum {
    PLAYER_ST_BEGIN = 0,
    PLAYER_ST_COMMIT,
    PLAYER_ST_ROLLBACK,
    PLAYER_ST_INSERT,
    PLAYER_ST_DROP,
    PLAYER_ST_ADD_DROPPED,
    PLAYER_ST_TOTALS,
    PLAYER_ST_PAGES,
    PLAYER_ST_VACUUM,
    PLAYER_ST_MAX
};

/* a reader's: the query variants first, by the index that drives them */
enum {
    PLAYER_RD_SEQ = 0,
    PLAYER_RD_METHOD,
    PLAYER_RD_PATH,
    PLAYER_RD_PREFIX,
    PLAYER_RD_STATUS,
    PLAYER_RD_TIME,
    PLAYER_RD_DATA,
    PLAYER_RD_ID,
    PLAYER_RD_BEGIN,
    PLAYER_RD_END,
    PLAYER_RD_MAX
};


typedef struct player_reader_s  player_reader_t;

struct player_reader_s {
    rf_sqlite_t                 s;
    sqlite3_stmt               *stmt[PLAYER_RD_MAX];
    player_reader_t            *next;
};


struct player_store_s {
    rf_sqlite_t                 s;
    sqlite3_stmt               *stmt[PLAYER_ST_MAX];

    pthread_mutex_t             lock;       /* the idle readers */
    player_reader_t            *idle;
    unsigned                    nidle;
};


static int player_store_prepare(rf_sqlite_t *s, const char *const *sql,
    sqlite3_stmt **stmt, int n);
static int player_store_done(player_store_t *st, int id, const char *what);
static player_reader_t *player_store_reader(player_store_t *st);
static void player_store_reader_put(player_store_t *st, player_reader_t *r);
static void player_store_reader_close(player_reader_t *r);
static int player_store_bind_query(player_reader_t *r, sqlite3_stmt *stmt,
    const player_query_t *q, unsigned char *upper);
static int player_store_rows(player_reader_t *r, const uint64_t *seqs,
    size_t n, player_store_row_pt cb, void *arg);
static int player_store_bind_str(sqlite3_stmt *stmt, int i,
    const rf_str_t *v, int has);
static void player_store_http(const rf_rec_t *rec, rf_str_t *path,
    rf_str_t *ctype);
static sqlite3_int64 player_store_i64(uint64_t v);


static const char  player_store_schema[] =
    "CREATE TABLE IF NOT EXISTS requests ("
    "    seq          INTEGER PRIMARY KEY,"
    "    kind         TEXT NOT NULL,"
    "    ts           INTEGER NOT NULL,"
    "    source       TEXT,"
    "    sseq         INTEGER NOT NULL,"
    "    method       TEXT,"
    "    path         TEXT,"
    "    uri          TEXT,"
    "    status       INTEGER,"
    "    duration_us  INTEGER,"
    "    bytes_sent   INTEGER,"
    "    body_size    INTEGER,"
    "    content_type TEXT,"
    "    size         INTEGER NOT NULL,"
    "    data         BLOB NOT NULL"
    ");"
    "CREATE INDEX IF NOT EXISTS requests_ts ON requests (ts);"
    "CREATE INDEX IF NOT EXISTS requests_method ON requests (method);"
    "CREATE INDEX IF NOT EXISTS requests_path ON requests (path);"
    "CREATE INDEX IF NOT EXISTS requests_status ON requests (status);"
    "CREATE INDEX IF NOT EXISTS requests_id ON requests (source, sseq);"
    "CREATE TABLE IF NOT EXISTS meta ("
    "    key          TEXT PRIMARY KEY,"
    "    value        NOT NULL"
    ") WITHOUT ROWID;"
    "INSERT OR IGNORE INTO meta (key, value) VALUES"
    "    ('schema', 1), ('dropped', 0);";


static const char *const  player_store_sql[PLAYER_ST_MAX] = {
    "BEGIN IMMEDIATE",
    "COMMIT",
    "ROLLBACK",
    "INSERT OR IGNORE INTO requests (seq, kind, ts, source, sseq, method,"
    " path, uri, status, duration_us, bytes_sent, body_size, content_type,"
    " size, data)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14,"
    " ?15)",
    "DELETE FROM requests WHERE seq IN"
    " (SELECT seq FROM requests ORDER BY seq LIMIT ?1) RETURNING size",
    "UPDATE meta SET value = value + ?1 WHERE key = 'dropped'",
    "SELECT count(*), total(size),"
    " (SELECT value FROM meta WHERE key = 'dropped'),"
    " (SELECT value FROM meta WHERE key = 'schema') FROM requests",
    "SELECT p.page_count, f.freelist_count"
    " FROM pragma_page_count() AS p, pragma_freelist_count() AS f",
    "PRAGMA incremental_vacuum(1)"
};


/*
 * Every variant has every filter: ?1 after, ?2 limit, ?3 method, ?4 path,
 * ?5 and ?6 the prefix's range (?6 an empty BLOB, which sorts after every
 * TEXT, when the range has no end), ?7 status, ?8 since, ?9 until; NULL
 * is "any".  The variant names the index that finds the rows; the others
 * are checked on the rows it found.
 */

#define PLAYER_FILTERS                                                        \
    " AND seq > ?1"                                                           \
    " AND (?3 IS NULL OR method = ?3)"                                        \
    " AND (?4 IS NULL OR path = ?4)"                                          \
    " AND (?5 IS NULL OR (path >= ?5 AND path < ?6))"                         \
    " AND (?7 IS NULL OR status = ?7)"                                        \
    " AND (?8 IS NULL OR ts >= ?8)"                                           \
    " AND (?9 IS NULL OR ts < ?9)"                                            \
    " ORDER BY seq LIMIT ?2"

static const char *const  player_store_rd_sql[PLAYER_RD_MAX] = {
    "SELECT seq FROM requests WHERE 1" PLAYER_FILTERS,
    "SELECT seq FROM requests INDEXED BY requests_method"
    " WHERE method = ?3" PLAYER_FILTERS,
    "SELECT seq FROM requests INDEXED BY requests_path"
    " WHERE path = ?4" PLAYER_FILTERS,
    "SELECT seq FROM requests INDEXED BY requests_path"
    " WHERE path >= ?5 AND path < ?6" PLAYER_FILTERS,
    "SELECT seq FROM requests INDEXED BY requests_status"
    " WHERE status = ?7" PLAYER_FILTERS,
    "SELECT seq FROM requests INDEXED BY requests_ts"
    " WHERE ts >= coalesce(?8, -9223372036854775807 - 1)"
    " AND ts <= coalesce(?9, 9223372036854775807)" PLAYER_FILTERS,
    "SELECT data FROM requests WHERE seq = ?1",
    "SELECT seq, data FROM requests WHERE source = ?1 AND sseq = ?2"
    " ORDER BY seq LIMIT 1",
    "BEGIN",
    "COMMIT"
};


int
player_store_open(player_store_t **stp, const char *path, uint64_t cap,
    char *err, size_t errlen)
{
    int              rc;
    uint64_t         rows, bytes, dropped;
    player_store_t  *st;

    *stp = NULL;

    st = calloc(1, sizeof(player_store_t));
    if (st == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (pthread_mutex_init(&st->lock, NULL) != 0) {
        free(st);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (rf_sqlite_open(&st->s, path, "sqlite sink file", 1,
                       rf_sqlite_page_size(cap), PLAYER_WRITER_CACHE_KIB,
                       PLAYER_WRITER_BUSY_MS, err, errlen)
        != 0)
    {
        player_store_close(st);
        return -1;
    }

    rc = rf_sqlite_exec(&st->s, "BEGIN IMMEDIATE");

    if (rc == 0 && rf_sqlite_exec(&st->s, player_store_schema) != 0) {
        snprintf(err, errlen, "cannot create the tables of sqlite sink "
                 "file \"%s\": %s", path, sqlite3_errmsg(st->s.db));
        (void) rf_sqlite_exec(&st->s, "ROLLBACK");
        player_store_close(st);
        return -1;
    }

    if (rc != 0
        || rf_sqlite_exec(&st->s, "COMMIT") != 0
        || player_store_prepare(&st->s, player_store_sql, st->stmt,
                                PLAYER_ST_MAX) != 0)
    {
        snprintf(err, errlen, "cannot open sqlite sink file \"%s\": %s",
                 path, sqlite3_errmsg(st->s.db));
        player_store_close(st);
        return -1;
    }

    rc = player_store_totals(st, &rows, &bytes, &dropped);

    if (rc != 0) {
        snprintf(err, errlen, "sqlite sink file \"%s\" cannot be read: "
                 "%s", path, rc == 1 ? "not schema 1" : "see above");
        player_store_close(st);
        return -1;
    }

    *stp = st;

    return 0;
}


static int
player_store_prepare(rf_sqlite_t *s, const char *const *sql,
    sqlite3_stmt **stmt, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        if (sqlite3_prepare_v3(s->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                               &stmt[i], NULL)
            != SQLITE_OK)
        {
            log_warnx("%s \"%s\": prepare \"%s\": %s", s->kind, s->path,
                      sql[i], sqlite3_errmsg(s->db));
            return -1;
        }
    }

    return 0;
}


void
player_store_close(player_store_t *st)
{
    int               i;
    player_reader_t  *r;

    if (st == NULL) {
        return;
    }

    while (st->idle != NULL) {
        r = st->idle;
        st->idle = r->next;
        player_store_reader_close(r);
    }

    if (st->s.db != NULL && !sqlite3_get_autocommit(st->s.db)) {
        player_store_rollback(st);
    }

    for (i = 0; i < PLAYER_ST_MAX; i++) {
        if (st->stmt[i] != NULL) {
            (void) sqlite3_finalize(st->stmt[i]);
        }
    }

    rf_sqlite_close(&st->s);
    pthread_mutex_destroy(&st->lock);
    free(st);
}


const char *
player_store_path(player_store_t *st)
{
    return st->s.path;
}


uint64_t
player_store_page_size(player_store_t *st)
{
    return st->s.page_size;
}


int
player_store_can_vacuum(player_store_t *st)
{
    return st->s.can_vacuum;
}


uint64_t
player_store_wal_frames(player_store_t *st)
{
    return st->s.wal_frames;
}


/* 0, 1 when the file's schema is another one, or -1 */

int
player_store_totals(player_store_t *st, uint64_t *rows, uint64_t *bytes,
    uint64_t *dropped)
{
    int            schema;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[PLAYER_ST_TOTALS];

    if (sqlite3_step(stmt) != SQLITE_ROW) {
        rf_sqlite_error(&st->s, "count rows");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    *rows = (uint64_t) sqlite3_column_int64(stmt, 0);
    *bytes = (uint64_t) sqlite3_column_double(stmt, 1);
    *dropped = (uint64_t) sqlite3_column_int64(stmt, 2);
    schema = sqlite3_column_int(stmt, 3);

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return rf_sqlite_error(&st->s, "count rows");
    }

    if (schema != PLAYER_SCHEMA) {
        log_warnx("sqlite sink file \"%s\": schema %d, this rf-playerd "
                  "writes %d", st->s.path, schema, PLAYER_SCHEMA);
        return 1;
    }

    return 0;
}


int
player_store_begin(player_store_t *st)
{
    return player_store_done(st, PLAYER_ST_BEGIN, "begin");
}


int
player_store_commit(player_store_t *st)
{
    return player_store_done(st, PLAYER_ST_COMMIT, "commit");
}


void
player_store_rollback(player_store_t *st)
{
    /* a failed COMMIT or an I/O error may have rolled back already */

    if (sqlite3_get_autocommit(st->s.db)) {
        return;
    }

    (void) player_store_done(st, PLAYER_ST_ROLLBACK, "rollback");
}


int
player_store_insert(player_store_t *st, uint64_t seq, const rf_rec_t *rec,
    int *added)
{
    int            rc, http;
    size_t         i;
    uint64_t       v;
    rf_str_t       source, method, uri, path, ctype;
    sqlite3_stmt  *stmt;

    /* the filters' columns: the http kind's, NULL for the others */

    static const unsigned  u64s[] = {
        RF_F_STATUS, RF_F_DURATION_US, RF_F_BYTES_SENT, RF_F_BODY_SIZE
    };

    stmt = st->stmt[PLAYER_ST_INSERT];
    http = (rec->kind == RF_KIND_HTTP);

    if (rf_rec_field(rec, RF_F_SOURCE, &source) == -1) {
        source.len = 0;
    }

    if (!http || rf_rec_field(rec, RF_F_METHOD, &method) == -1) {
        method.data = NULL;
    }

    if (!http || rf_rec_field(rec, RF_F_URI, &uri) == -1) {
        uri.data = NULL;
    }

    path.data = NULL;
    path.len = 0;
    ctype.data = NULL;
    ctype.len = 0;

    if (http) {
        player_store_http(rec, &path, &ctype);
    }

    rc = sqlite3_bind_int64(stmt, 1, player_store_i64(seq));

    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_text(stmt, 2, rf_kind_name(rec->kind), -1,
                               SQLITE_STATIC);
    }

    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt, 3, player_store_i64(rec->time_ns));
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 4, &source, source.len > 0);
    }

    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt, 5, player_store_i64(rec->sseq));
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 6, &method, method.data != NULL);
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 7, &path, path.data != NULL);
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 8, &uri, uri.data != NULL);
    }

    for (i = 0; rc == SQLITE_OK && i < 4; i++) {
        if (http && rf_rec_field_u64(rec, u64s[i], &v) == 0) {
            rc = sqlite3_bind_int64(stmt, 9 + (int) i, player_store_i64(v));

        } else {
            rc = sqlite3_bind_null(stmt, 9 + (int) i);
        }
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 13, &ctype, ctype.data != NULL);
    }

    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt, 14, (sqlite3_int64) rec->len);
    }

    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_blob(stmt, 15, rec->buf, (int) rec->len,
                               SQLITE_STATIC);
    }

    if (rc != SQLITE_OK) {
        return rf_sqlite_error(&st->s, "bind record");
    }

    if (player_store_done(st, PLAYER_ST_INSERT, "insert record") != 0) {
        return -1;
    }

    *added = (sqlite3_changes(st->s.db) > 0);

    return 0;
}


/* the uri's path (up to "?"), and the first Content-Type header */

static void
player_store_http(const rf_rec_t *rec, rf_str_t *path, rf_str_t *ctype)
{
    size_t      off, i;
    rf_str_t    name, value;
    rf_field_t  f;

    off = 0;

    while (rf_rec_next_field(rec, &off, &f)) {
        if (f.id == RF_F_URI && path->data == NULL) {
            for (i = 0; i < f.val.len && f.val.data[i] != '?'; i++) {
                /* void */
            }

            path->data = f.val.data;
            path->len = i;

        } else if (f.id == RF_F_HEADER && ctype->data == NULL
                   && rf_rec_header_split(&f.val, &name, &value) == 0
                   && name.len == 12
                   && strncasecmp((const char *) name.data, "content-type",
                                  12) == 0)
        {
            *ctype = value;
        }
    }
}


int
player_store_drop(player_store_t *st, uint64_t k, uint64_t *n,
    uint64_t *bytes)
{
    int            rc;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[PLAYER_ST_DROP];
    *n = 0;
    *bytes = 0;

    if (sqlite3_bind_int64(stmt, 1, player_store_i64(k)) != SQLITE_OK) {
        return rf_sqlite_error(&st->s, "bind");
    }

    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        (*n)++;
        *bytes += (uint64_t) sqlite3_column_int64(stmt, 0);
    }

    if (rc != SQLITE_DONE) {
        rf_sqlite_error(&st->s, "drop the oldest rows");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return rf_sqlite_error(&st->s, "drop the oldest rows");
    }

    return 0;
}


int
player_store_add_dropped(player_store_t *st, uint64_t n)
{
    if (sqlite3_bind_int64(st->stmt[PLAYER_ST_ADD_DROPPED], 1,
                           player_store_i64(n))
        != SQLITE_OK)
    {
        return rf_sqlite_error(&st->s, "bind");
    }

    return player_store_done(st, PLAYER_ST_ADD_DROPPED, "count drops");
}


int
player_store_pages(player_store_t *st, uint64_t *pages, uint64_t *used)
{
    uint64_t       freelist;
    sqlite3_stmt  *stmt;

    stmt = st->stmt[PLAYER_ST_PAGES];

    if (sqlite3_step(stmt) != SQLITE_ROW) {
        rf_sqlite_error(&st->s, "page count");
        (void) sqlite3_reset(stmt);
        return -1;
    }

    *pages = (uint64_t) sqlite3_column_int64(stmt, 0);
    freelist = (uint64_t) sqlite3_column_int64(stmt, 1);
    *used = (*pages > freelist) ? *pages - freelist : 0;

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return rf_sqlite_error(&st->s, "page count");
    }

    return 0;
}


int
player_store_vacuum(player_store_t *st, uint64_t pages)
{
    int            rc;
    uint64_t       i;
    sqlite3_stmt  *stmt;

    /* one page a run, so that the statement stays prepared */

    stmt = st->stmt[PLAYER_ST_VACUUM];

    for (i = 0; i < pages; i++) {
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            /* void */
        }

        if (rc != SQLITE_DONE) {
            rf_sqlite_error(&st->s, "incremental vacuum");
            (void) sqlite3_reset(stmt);
            return -1;
        }

        if (sqlite3_reset(stmt) != SQLITE_OK) {
            return rf_sqlite_error(&st->s, "incremental vacuum");
        }
    }

    return 0;
}


int
player_store_checkpoint(player_store_t *st, int mode)
{
    return rf_sqlite_checkpoint(&st->s, mode);
}


int
player_store_wal_limit(player_store_t *st, uint64_t bytes)
{
    return rf_sqlite_wal_limit(&st->s, bytes);
}


int64_t
player_store_query(player_store_t *st, const player_query_t *q,
    player_store_row_pt cb, void *arg)
{
    int               id, rc;
    size_t            n, max;
    uint64_t         *seqs;
    unsigned char     upper[PLAYER_QUERY_STR_MAX];
    sqlite3_stmt     *stmt;
    player_reader_t  *r;

    /* the most selective filter given picks the index */

    if (q->has_path) {
        id = PLAYER_RD_PATH;

    } else if (q->has_prefix) {
        id = PLAYER_RD_PREFIX;

    } else if (q->has_since || q->has_until) {
        id = PLAYER_RD_TIME;

    } else if (q->has_status) {
        id = PLAYER_RD_STATUS;

    } else if (q->has_method) {
        id = PLAYER_RD_METHOD;

    } else {
        id = PLAYER_RD_SEQ;
    }

    max = q->limit;

    if (max == 0 || max > PLAYER_QUERY_LIMIT_MAX + 1
        || (q->has_prefix && q->prefix.len > sizeof(upper)))
    {
        errno = EINVAL;
        return -1;
    }

    seqs = malloc(max * sizeof(uint64_t));
    if (seqs == NULL) {
        return -1;
    }

    r = player_store_reader(st);
    if (r == NULL) {
        free(seqs);
        return -1;
    }

    /*
     * The seqs first and then the records, in one read transaction: the
     * sort of a variant that is not in seq order keeps no record bytes.
     */

    stmt = r->stmt[id];
    n = 0;
    rc = SQLITE_DONE;

    if (rf_sqlite_done(&r->s, r->stmt[PLAYER_RD_BEGIN], "begin") != 0) {
        goto failed;
    }

    if (player_store_bind_query(r, stmt, q, upper) != 0) {
        goto failed;
    }

    while (n < max && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        seqs[n++] = (uint64_t) sqlite3_column_int64(stmt, 0);
    }

    if (n < max && rc != SQLITE_DONE) {
        rf_sqlite_error(&r->s, "query");
        (void) sqlite3_reset(stmt);
        goto failed;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        rf_sqlite_error(&r->s, "query");
        goto failed;
    }

    if (player_store_rows(r, seqs, n, cb, arg) != 0
        || rf_sqlite_done(&r->s, r->stmt[PLAYER_RD_END], "end") != 0)
    {
        goto failed;
    }

    player_store_reader_put(st, r);
    free(seqs);

    return (int64_t) n;

failed:

    rc = errno;

    if (!sqlite3_get_autocommit(r->s.db)) {
        (void) rf_sqlite_exec(&r->s, "ROLLBACK");
    }

    player_store_reader_put(st, r);
    free(seqs);
    errno = rc;

    return -1;
}


static int
player_store_bind_query(player_reader_t *r, sqlite3_stmt *stmt,
    const player_query_t *q, unsigned char *upper)
{
    int     rc;
    size_t  n;

    rc = sqlite3_bind_int64(stmt, 1, player_store_i64(q->after));

    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(stmt, 2, (sqlite3_int64) q->limit);
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 3, &q->method, q->has_method);
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 4, &q->path, q->has_path);
    }

    if (rc == SQLITE_OK) {
        rc = player_store_bind_str(stmt, 5, &q->prefix, q->has_prefix);
    }

    /*
     * The end of the prefix's range: the prefix with its last byte that
     * is not 0xff incremented, and what follows it cut.
     */

    if (rc == SQLITE_OK) {
        n = q->has_prefix ? q->prefix.len : 0;

        if (n > 0) {
            memcpy(upper, q->prefix.data, n);
        }

        while (n > 0 && upper[n - 1] == 0xff) {
            n--;
        }

        if (n > 0) {
            upper[n - 1]++;
            rc = sqlite3_bind_text(stmt, 6, (const char *) upper, (int) n,
                                   SQLITE_STATIC);

        } else if (q->has_prefix) {
            rc = sqlite3_bind_zeroblob(stmt, 6, 0);

        } else {
            rc = sqlite3_bind_null(stmt, 6);
        }
    }

    if (rc == SQLITE_OK) {
        rc = q->has_status ? sqlite3_bind_int64(stmt, 7, q->status)
                           : sqlite3_bind_null(stmt, 7);
    }

    if (rc == SQLITE_OK) {
        rc = q->has_since ? sqlite3_bind_int64(stmt, 8, q->since)
                          : sqlite3_bind_null(stmt, 8);
    }

    if (rc == SQLITE_OK) {
        rc = q->has_until ? sqlite3_bind_int64(stmt, 9, q->until)
                          : sqlite3_bind_null(stmt, 9);
    }

    if (rc != SQLITE_OK) {
        return rf_sqlite_error(&r->s, "bind query");
    }

    return 0;
}


/* the records of seqs; a row dropped meanwhile is not there: skipped */

static int
player_store_rows(player_reader_t *r, const uint64_t *seqs, size_t n,
    player_store_row_pt cb, void *arg)
{
    int            rc, stop;
    size_t         i;
    const void    *data;
    sqlite3_stmt  *stmt;

    stmt = r->stmt[PLAYER_RD_DATA];

    for (i = 0; i < n; i++) {
        if (sqlite3_bind_int64(stmt, 1, player_store_i64(seqs[i]))
            != SQLITE_OK)
        {
            return rf_sqlite_error(&r->s, "bind");
        }

        rc = sqlite3_step(stmt);
        stop = 0;

        if (rc == SQLITE_ROW) {
            data = sqlite3_column_blob(stmt, 0);

            if (data == NULL) {
                rc = SQLITE_NOMEM;

            } else {
                stop = cb(seqs[i], data,
                          (size_t) sqlite3_column_bytes(stmt, 0), arg);
                rc = SQLITE_DONE;
            }
        }

        if (rc != SQLITE_DONE) {
            rf_sqlite_error(&r->s, "read a row");
            (void) sqlite3_reset(stmt);
            return -1;
        }

        if (sqlite3_reset(stmt) != SQLITE_OK) {
            return rf_sqlite_error(&r->s, "read a row");
        }

        if (stop) {
            errno = ENOMEM;
            return -1;
        }
    }

    return 0;
}


int
player_store_get(player_store_t *st, uint64_t seq, const rf_str_t *source,
    player_store_row_pt cb, void *arg)
{
    int               rc, found, stop;
    const void       *data;
    sqlite3_stmt     *stmt;
    player_reader_t  *r;

    r = player_store_reader(st);
    if (r == NULL) {
        return -1;
    }

    if (source != NULL) {
        stmt = r->stmt[PLAYER_RD_ID];
        rc = sqlite3_bind_text(stmt, 1, (const char *) source->data,
                               (int) source->len, SQLITE_STATIC);

        if (rc == SQLITE_OK) {
            rc = sqlite3_bind_int64(stmt, 2, player_store_i64(seq));
        }

    } else {
        stmt = r->stmt[PLAYER_RD_DATA];
        rc = sqlite3_bind_int64(stmt, 1, player_store_i64(seq));
    }

    if (rc != SQLITE_OK) {
        rf_sqlite_error(&r->s, "bind");
        player_store_reader_put(st, r);
        return -1;
    }

    found = 0;
    stop = 0;
    rc = sqlite3_step(stmt);

    if (rc == SQLITE_ROW) {
        if (source != NULL) {
            seq = (uint64_t) sqlite3_column_int64(stmt, 0);
        }

        data = sqlite3_column_blob(stmt, source != NULL);

        if (data == NULL) {
            rc = SQLITE_NOMEM;

        } else {
            found = 1;
            stop = cb(seq, data,
                      (size_t) sqlite3_column_bytes(stmt, source != NULL),
                      arg);
            rc = SQLITE_DONE;
        }
    }

    if (rc != SQLITE_DONE) {
        rf_sqlite_error(&r->s, "read a row");
        (void) sqlite3_reset(stmt);
        player_store_reader_put(st, r);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        rf_sqlite_error(&r->s, "read a row");
        player_store_reader_put(st, r);
        return -1;
    }

    player_store_reader_put(st, r);

    if (stop) {
        errno = ENOMEM;
        return -1;
    }

    return found;
}


static player_reader_t *
player_store_reader(player_store_t *st)
{
    char              err[512];
    player_reader_t  *r;

    pthread_mutex_lock(&st->lock);

    r = st->idle;

    if (r != NULL) {
        st->idle = r->next;
        st->nidle--;
    }

    pthread_mutex_unlock(&st->lock);

    if (r != NULL) {
        return r;
    }

    r = calloc(1, sizeof(player_reader_t));
    if (r == NULL) {
        return NULL;
    }

    if (rf_sqlite_open(&r->s, st->s.path, "sqlite sink file", 0, 0,
                       PLAYER_READER_CACHE_KIB, PLAYER_READER_BUSY_MS, err,
                       sizeof(err))
        != 0)
    {
        log_warnx("%s", err);
        player_store_reader_close(r);
        errno = EIO;
        return NULL;
    }

    if (player_store_prepare(&r->s, player_store_rd_sql, r->stmt,
                             PLAYER_RD_MAX)
        != 0)
    {
        player_store_reader_close(r);
        errno = EIO;
        return NULL;
    }

    return r;
}


static void
player_store_reader_put(player_store_t *st, player_reader_t *r)
{
    pthread_mutex_lock(&st->lock);

    if (st->nidle < PLAYER_READERS_IDLE) {
        r->next = st->idle;
        st->idle = r;
        st->nidle++;
        r = NULL;
    }

    pthread_mutex_unlock(&st->lock);

    if (r != NULL) {
        player_store_reader_close(r);
    }
}


static void
player_store_reader_close(player_reader_t *r)
{
    int  i;

    for (i = 0; i < PLAYER_RD_MAX; i++) {
        if (r->stmt[i] != NULL) {
            (void) sqlite3_finalize(r->stmt[i]);
        }
    }

    rf_sqlite_close(&r->s);
    free(r);
}


static int
player_store_bind_str(sqlite3_stmt *stmt, int i, const rf_str_t *v, int has)
{
    if (!has) {
        return sqlite3_bind_null(stmt, i);
    }

    /* a zero-length view may have no data pointer: "" is not NULL */

    return sqlite3_bind_text(stmt, i,
                             v->len ? (const char *) v->data : "",
                             (int) v->len, SQLITE_STATIC);
}


static int
player_store_done(player_store_t *st, int id, const char *what)
{
    return rf_sqlite_done(&st->s, st->stmt[id], what);
}


/* SQLite's integers are signed: the largest u64 values saturate */

static sqlite3_int64
player_store_i64(uint64_t v)
{
    return v > (uint64_t) INT64_MAX ? INT64_MAX : (sqlite3_int64) v;
}
