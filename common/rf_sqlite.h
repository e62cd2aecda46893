/*
 * Copyright (C) ReplayForge contributors
 *
 * Helpers shared by the daemons that keep a capped SQLite file in WAL
 * mode: opening one (settings, WAL, a lock against a second writer),
 * errors logged with SQLite's message and returned as errno values, how
 * a byte cap over the file and its -wal is shared out, the page size a
 * cap gets, and the sizes on disk.  Settings only: each daemon's store
 * file holds its own schema and statements.
 */

#ifndef _RF_SQLITE_H_INCLUDED_
#define _RF_SQLITE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>


#define RF_SQLITE_WAL_HDR       32      /* SQLite's WAL header and frame */
#define RF_SQLITE_WAL_FRAME_HDR 24      /* header sizes */

#define RF_SQLITE_PAGE_MIN      4096
#define RF_SQLITE_PAGE_MAX      16384

#define RF_SQLITE_DATA_SHARE    72      /* percent of the cap */
#define RF_SQLITE_WAL_SHARE     22      /* the rest (6%) is the reserve */

#define RF_SQLITE_RATIO_ONE     1024    /* fixed point page/byte ratios */
#define RF_SQLITE_RATIO_START   1640
#define RF_SQLITE_RATIO_MAX     2400


/*
 * A cap C over file + WAL:
 *
 *   data     72%  pages in use (page_count - freelist_count) stay under
 *                 data_pages: the caller deletes or refuses records
 *   wal      22%  the -wal: wal_autocheckpoint is off and the caller
 *                 checkpoints (RESTART) before a transaction whose frames
 *                 would not fit; one transaction writes at most
 *                 txn_frames
 *   reserve   6%  what the estimates can be off by
 */
typedef struct {
    uint64_t                    cap;
    uint64_t                    page_size;
    uint64_t                    data_pages;
    uint64_t                    slack_pages;    /* free pages tolerated */
    uint64_t                    wal_limit;      /* bytes */
    uint64_t                    txn_frames;     /* frames in one txn */
    uint64_t                    vacuum_pages;   /* per incremental step */
} rf_sqlite_cap_t;


/*
 * One connection, and what its messages name it by: every failure is
 * logged as "<kind> \"<path>\": <what>: <SQLite's message>".
 */
typedef struct {
    sqlite3                    *db;
    const char                 *kind;       /* "bucket file", "buffer" */
    char                       *path;
    int                         lock_fd;
    uint64_t                    page_size;
    uint64_t                    wal_frames; /* after the last commit */
    int                         can_vacuum;
} rf_sqlite_t;


/*
 * Open path.  Writer: created when missing, with pages of page_size and
 * incremental auto_vacuum when new; locked against a second writer
 * (flock); WAL, synchronous NORMAL, no automatic checkpoints.  Reader:
 * the file must exist; query_only.  0, or -1 with err set; close it with
 * rf_sqlite_close() either way.
 */
int rf_sqlite_open(rf_sqlite_t *s, const char *path, const char *kind,
    int writer, uint64_t page_size, int cache_kib, int busy_ms, char *err,
    size_t errlen);
void rf_sqlite_close(rf_sqlite_t *s);

/* Log SQLite's last error for what; -1 with errno set from it. */
int rf_sqlite_error(rf_sqlite_t *s, const char *what);
/* Run sql (no rows); 0 or -1 as rf_sqlite_error(). */
int rf_sqlite_exec(rf_sqlite_t *s, const char *sql);
/* Step a statement that returns no rows, then reset it; 0 or -1. */
int rf_sqlite_done(rf_sqlite_t *s, sqlite3_stmt *stmt, const char *what);

/* A checkpoint in SQLite's mode; -1 with EBUSY when readers held it. */
int rf_sqlite_checkpoint(rf_sqlite_t *s, int mode);
/* journal_size_limit: a WAL that starts over is trimmed to bytes. */
int rf_sqlite_wal_limit(rf_sqlite_t *s, uint64_t bytes);


/* The page size for a new file under cap: cap / 8192, 4k to 16k. */
uint64_t rf_sqlite_page_size(uint64_t cap);

void rf_sqlite_cap_init(rf_sqlite_cap_t *c, uint64_t cap,
    uint64_t page_size);

/* Bytes of a WAL holding frames pages. */
uint64_t rf_sqlite_wal_bytes(const rf_sqlite_cap_t *c, uint64_t frames);

/*
 * Pages that bytes of payload in n rows take, at ratio (page bytes per
 * payload byte, RF_SQLITE_RATIO_ONE = 1), with overhead bytes per row.
 */
uint64_t rf_sqlite_est_pages(const rf_sqlite_cap_t *c, uint64_t bytes,
    uint64_t n, uint64_t overhead, uint64_t ratio);

/*
 * The ratio a table shows now: used pages for bytes of payload, plus
 * 1/16, within [RF_SQLITE_RATIO_ONE, RF_SQLITE_RATIO_MAX]; ratio itself
 * while the table is too small to say.
 */
uint64_t rf_sqlite_learn_ratio(const rf_sqlite_cap_t *c, uint64_t used,
    uint64_t bytes, uint64_t ratio);

/* An SQLite result code (extended or not) as an errno value. */
int rf_sqlite_errno(int rc);

/* The sizes of path and path-wal (0 when missing); 0 or -1 with errno. */
int rf_sqlite_file_sizes(const char *path, uint64_t *db, uint64_t *wal);


#endif /* _RF_SQLITE_H_INCLUDED_ */
