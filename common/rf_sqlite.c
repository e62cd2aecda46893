/*
 * Copyright (C) ReplayForge contributors
 *
 * A capped SQLite file in WAL mode (see rf_sqlite.h): opening it with its
 * settings, errors as errno values, and the arithmetic of the cap.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_log.h"
#include "rf_sqlite.h"


static int rf_sqlite_open_writer(rf_sqlite_t *s, uint64_t page_size,
    int cache_kib, int busy_ms, char *err, size_t errlen);
static int rf_sqlite_settings(rf_sqlite_t *s, int cache_kib);
static int rf_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name,
    int frames);


int
rf_sqlite_open(rf_sqlite_t *s, const char *path, const char *kind,
    int writer, uint64_t page_size, int cache_kib, int busy_ms, char *err,
    size_t errlen)
{
    int   rc;
    char  sql[64];

    memset(s, 0, sizeof(rf_sqlite_t));

    s->kind = kind;
    s->lock_fd = -1;
    s->path = strdup(path);

    if (s->path == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (writer) {
        return rf_sqlite_open_writer(s, page_size, cache_kib, busy_ms, err,
                                     errlen);
    }

    rc = sqlite3_open_v2(path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s \"%s\": %s", kind, path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return -1;
    }

    snprintf(sql, sizeof(sql), "PRAGMA query_only = 1;"
             "PRAGMA cache_size = -%d;", cache_kib);

    if (sqlite3_extended_result_codes(s->db, 1) != SQLITE_OK
        || sqlite3_busy_timeout(s->db, busy_ms) != SQLITE_OK
        || rf_sqlite_exec(s, sql) != 0)
    {
        snprintf(err, errlen, "cannot read %s \"%s\": %s", kind, path,
                 sqlite3_errmsg(s->db));
        return -1;
    }

    return 0;
}


static int
rf_sqlite_open_writer(rf_sqlite_t *s, uint64_t page_size, int cache_kib,
    int busy_ms, char *err, size_t errlen)
{
    int   rc;
    char  sql[128];

    /*
     * One writer per file.  flock() does not mix with SQLite's fcntl()
     * locks; the descriptor stays open until after sqlite3_close(),
     * because closing any descriptor of the file drops the process's
     * fcntl() locks on it.
     */

    s->lock_fd = open(s->path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (s->lock_fd == -1) {
        snprintf(err, errlen, "cannot open %s \"%s\": %s", s->kind, s->path,
                 strerror(errno));
        return -1;
    }

    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) == -1) {
        snprintf(err, errlen, "%s \"%s\" is in use by another process "
                 "(flock: %s)", s->kind, s->path, strerror(errno));
        return -1;
    }

    rc = sqlite3_open_v2(s->path, &s->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                         | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "cannot open %s \"%s\": %s", s->kind, s->path,
                 s->db ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
        return -1;
    }

    /*
     * page_size and auto_vacuum only take effect on a new file, before the
     * first table.
     */

    snprintf(sql, sizeof(sql), "PRAGMA page_size = %" PRIu64 ";"
             "PRAGMA auto_vacuum = INCREMENTAL;", page_size);

    if (sqlite3_extended_result_codes(s->db, 1) != SQLITE_OK
        || sqlite3_busy_timeout(s->db, busy_ms) != SQLITE_OK
        || rf_sqlite_exec(s, sql) != 0
        || rf_sqlite_settings(s, cache_kib) != 0)
    {
        snprintf(err, errlen, "cannot open %s \"%s\": %s", s->kind, s->path,
                 sqlite3_errmsg(s->db));
        return -1;
    }

    if (!s->can_vacuum) {
        log_info("%s \"%s\" was created without incremental auto_vacuum: "
                 "it cannot give pages back to the disk", s->kind, s->path);
    }

    (void) sqlite3_wal_hook(s->db, rf_sqlite_wal_hook, s);

    return 0;
}


/*
 * WAL with synchronous = NORMAL: a commit is in the -wal when COMMIT
 * returns, so a killed process (kill -9, a crash) loses nothing that was
 * committed; only checkpoints fsync.  What FULL would add is an fsync per
 * commit, which keeps a commit through a power loss or a kernel crash as
 * well.  secure_delete is on in Debian's build: zeroing freed pages would
 * double the WAL traffic of every delete.  Checkpoints are the owner's
 * business (wal_autocheckpoint 0), so they happen where its cap needs
 * them.
 */

static int
rf_sqlite_settings(rf_sqlite_t *s, int cache_kib)
{
    int            rc;
    char           sql[256];
    sqlite3_stmt  *stmt;

    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &stmt,
                            NULL);
    if (rc != SQLITE_OK) {
        return -1;
    }

    rc = sqlite3_step(stmt);

    if (rc != SQLITE_ROW
        || sqlite3_stricmp((const char *) sqlite3_column_text(stmt, 0),
                           "wal") != 0)
    {
        (void) sqlite3_finalize(stmt);
        return -1;
    }

    snprintf(sql, sizeof(sql), "PRAGMA synchronous = NORMAL;"
             "PRAGMA secure_delete = OFF;"
             "PRAGMA wal_autocheckpoint = 0;"
             "PRAGMA temp_store = MEMORY;"
             "PRAGMA cache_size = -%d;", cache_kib);

    if (sqlite3_finalize(stmt) != SQLITE_OK || rf_sqlite_exec(s, sql) != 0)
    {
        return -1;
    }

    rc = sqlite3_prepare_v2(s->db, "SELECT p.page_size, a.auto_vacuum"
                            " FROM pragma_page_size() AS p,"
                            " pragma_auto_vacuum() AS a", -1, &stmt, NULL);
    if (rc != SQLITE_OK) {
        return -1;
    }

    if (sqlite3_step(stmt) != SQLITE_ROW) {
        (void) sqlite3_finalize(stmt);
        return -1;
    }

    s->page_size = (uint64_t) sqlite3_column_int64(stmt, 0);
    s->can_vacuum = (sqlite3_column_int(stmt, 1) == 2);

    if (sqlite3_finalize(stmt) != SQLITE_OK || s->page_size < 512) {
        return -1;
    }

    return 0;
}


void
rf_sqlite_close(rf_sqlite_t *s)
{
    /* the last connection checkpoints and removes the -wal */

    if (s->db != NULL && sqlite3_close(s->db) != SQLITE_OK) {
        log_warnx("%s \"%s\": close: %s", s->kind, s->path,
                  sqlite3_errmsg(s->db));
    }

    if (s->lock_fd != -1) {
        (void) close(s->lock_fd);
    }

    free(s->path);
    memset(s, 0, sizeof(rf_sqlite_t));
    s->lock_fd = -1;
}


int
rf_sqlite_error(rf_sqlite_t *s, const char *what)
{
    int  rc;

    rc = sqlite3_extended_errcode(s->db);

    log_warnx("%s \"%s\": %s: %s", s->kind, s->path, what,
              sqlite3_errmsg(s->db));

    errno = rf_sqlite_errno(rc);

    return -1;
}


int
rf_sqlite_exec(rf_sqlite_t *s, const char *sql)
{
    char  *msg;

    msg = NULL;

    if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        log_warnx("%s \"%s\": \"%s\": %s", s->kind, s->path, sql,
                  msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        errno = rf_sqlite_errno(sqlite3_extended_errcode(s->db));
        return -1;
    }

    return 0;
}


int
rf_sqlite_done(rf_sqlite_t *s, sqlite3_stmt *stmt, const char *what)
{
    if (sqlite3_step(stmt) != SQLITE_DONE) {
        rf_sqlite_error(s, what);
        (void) sqlite3_reset(stmt);
        return -1;
    }

    if (sqlite3_reset(stmt) != SQLITE_OK) {
        return rf_sqlite_error(s, what);
    }

    return 0;
}


int
rf_sqlite_checkpoint(rf_sqlite_t *s, int mode)
{
    int  rc, log, done;

    rc = sqlite3_wal_checkpoint_v2(s->db, "main", mode, &log, &done);

    if (rc == SQLITE_BUSY) {
        errno = EBUSY;
        return -1;
    }

    if (rc != SQLITE_OK) {
        return rf_sqlite_error(s, "checkpoint");
    }

    /* PASSIVE may leave frames; the others start the WAL over */

    if (mode != SQLITE_CHECKPOINT_PASSIVE || (log >= 0 && log == done)) {
        s->wal_frames = 0;
    }

    return 0;
}


int
rf_sqlite_wal_limit(rf_sqlite_t *s, uint64_t bytes)
{
    char  sql[64];

    snprintf(sql, sizeof(sql), "PRAGMA journal_size_limit = %" PRIu64,
             bytes);

    return rf_sqlite_exec(s, sql);
}


static int
rf_sqlite_wal_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
    rf_sqlite_t  *s;

    s = arg;
    s->wal_frames = (uint64_t) frames;

    return SQLITE_OK;
}


uint64_t
rf_sqlite_page_size(uint64_t cap)
{
    uint64_t  page_size;

    /*
     * SQLite writes and checkpoints a page per system call, so a big cap
     * gets bigger pages; bigger ones still would make every small commit
     * of a trickle write several times its size.
     */

    for (page_size = RF_SQLITE_PAGE_MIN;
         page_size < RF_SQLITE_PAGE_MAX && page_size * 2 * 4096 <= cap;
         page_size *= 2)
    {
        /* void */
    }

    return page_size;
}


void
rf_sqlite_cap_init(rf_sqlite_cap_t *c, uint64_t cap, uint64_t page_size)
{
    uint64_t  frame;

    frame = page_size + RF_SQLITE_WAL_FRAME_HDR;

    c->cap = cap;
    c->page_size = page_size;
    c->data_pages = cap / 100 * RF_SQLITE_DATA_SHARE / page_size;
    c->slack_pages = c->data_pages / 64 + 2;
    c->wal_limit = cap / 100 * RF_SQLITE_WAL_SHARE;

    c->txn_frames = 0;

    if (c->wal_limit > RF_SQLITE_WAL_HDR + frame) {
        c->txn_frames = (c->wal_limit - RF_SQLITE_WAL_HDR) / frame;
    }

    /* a moved page writes itself, its parent and a pointer-map page */

    c->vacuum_pages = c->wal_limit / 4 / (3 * frame);

    if (c->vacuum_pages == 0) {
        c->vacuum_pages = 1;
    }
}


uint64_t
rf_sqlite_wal_bytes(const rf_sqlite_cap_t *c, uint64_t frames)
{
    if (frames == 0) {
        return 0;
    }

    return RF_SQLITE_WAL_HDR
           + frames * (c->page_size + RF_SQLITE_WAL_FRAME_HDR);
}


uint64_t
rf_sqlite_est_pages(const rf_sqlite_cap_t *c, uint64_t bytes, uint64_t n,
    uint64_t overhead, uint64_t ratio)
{
    uint64_t  x;

    if (n == 0) {
        return 0;
    }

    x = (bytes + n * overhead) * ratio / RF_SQLITE_RATIO_ONE;

    return (x + c->page_size - 1) / c->page_size + 2;
}


uint64_t
rf_sqlite_learn_ratio(const rf_sqlite_cap_t *c, uint64_t used,
    uint64_t bytes, uint64_t ratio)
{
    if (bytes < 64 * c->page_size) {
        return ratio;
    }

    ratio = used * c->page_size * RF_SQLITE_RATIO_ONE / bytes;
    ratio += ratio / 16;

    if (ratio < RF_SQLITE_RATIO_ONE) {
        ratio = RF_SQLITE_RATIO_ONE;
    }

    if (ratio > RF_SQLITE_RATIO_MAX) {
        ratio = RF_SQLITE_RATIO_MAX;
    }

    return ratio;
}


int
rf_sqlite_errno(int rc)
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


int
rf_sqlite_file_sizes(const char *path, uint64_t *db, uint64_t *wal)
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
