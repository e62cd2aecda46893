/*
 * Copyright (C) ReplayForge contributors
 *
 * One bucket's SQLite file and all of rf-relayd's SQL: the records table
 * (seq as the rowid, the stored bytes with rseq set), the sources table
 * (per source high-water mark and counts), the consumers table (durable
 * cursors) and the meta table (last seq, persistent counters).  One
 * writer connection, used by the bucket's writer thread only, and reader
 * connections beside it under WAL.  No policy here.
 */

#ifndef _RELAY_STORE_H_INCLUDED_
#define _RELAY_STORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_record.h"


/* checkpoint modes, as SQLite's */
#define RELAY_CKPT_PASSIVE      0
#define RELAY_CKPT_RESTART      2
#define RELAY_CKPT_TRUNCATE     3


typedef struct relay_store_s  relay_store_t;


/*
 * The meta table as one struct.  records and bytes are what the records
 * table holds now, last_seq the highest seq ever given (so that seq never
 * starts over, even when every record was deleted); the others only grow.
 */
typedef struct {
    uint64_t                    last_seq;
    uint64_t                    records;
    uint64_t                    bytes;
    uint64_t                    in_records;
    uint64_t                    in_bytes;
    uint64_t                    out_records;
    uint64_t                    out_bytes;
    uint64_t                    duplicates;
    uint64_t                    rejected;
    uint64_t                    dropped_ttl;
    uint64_t                    dropped_size;
    uint64_t                    dropped_unread;
    uint64_t                    deleted_acked;
} relay_meta_t;

#define RELAY_META_FIELDS       13


typedef struct {
    rf_str_t                    id;
    uint64_t                    max_sseq;
    uint64_t                    records;
    uint64_t                    bytes;
    uint64_t                    duplicates;
    uint64_t                    last_ms;
} relay_store_source_t;


typedef struct {
    const char                 *name;
    uint64_t                    cursor;
    uint64_t                    last_ms;
    int                         declared;
} relay_store_consumer_t;


/* What a delete took: rows, their bytes, and those with seq > unread. */
typedef struct {
    uint64_t                    n;
    uint64_t                    bytes;
    uint64_t                    unread;
} relay_store_del_t;


/* For every row of a walk; non-zero stops it. */
typedef int (*relay_store_source_pt)(const relay_store_source_t *s,
    void *arg);
typedef int (*relay_store_consumer_pt)(const relay_store_consumer_t *c,
    void *arg);
typedef int (*relay_store_read_pt)(uint64_t seq, const unsigned char *data,
    size_t len, void *arg);


/*
 * Open path.  Writer (reader 0): created when missing with pages of
 * page_size bytes and incremental auto_vacuum, locked against a second
 * writer (flock), WAL.  Reader: the file must exist (the writer opens
 * first).  0, or -1 with err set.
 */
int relay_store_open(relay_store_t **stp, const char *path, int reader,
    uint64_t page_size, char *err, size_t errlen);
void relay_store_close(relay_store_t *st);

uint64_t relay_store_page_size(relay_store_t *st);
int relay_store_can_vacuum(relay_store_t *st);
/* Frames in the WAL after the last commit (0 after a checkpoint). */
uint64_t relay_store_wal_frames(relay_store_t *st);

/*
 * Everything below returns 0 (or what it says), or -1 with errno: ENOSPC,
 * EIO, EBUSY, ENOMEM, EACCES, EINVAL; SQLite's message has been logged.
 */

int relay_store_read_meta(relay_store_t *st, relay_meta_t *m);
/* Write the fields of m that differ from old. */
int relay_store_write_meta(relay_store_t *st, const relay_meta_t *m,
    const relay_meta_t *old);

int relay_store_each_source(relay_store_t *st, relay_store_source_pt cb,
    void *arg);
int relay_store_each_consumer(relay_store_t *st, relay_store_consumer_pt cb,
    void *arg);

/* Writer: one transaction at a time, savepoints inside it. */
int relay_store_begin(relay_store_t *st);
int relay_store_commit(relay_store_t *st);
void relay_store_rollback(relay_store_t *st);
int relay_store_savepoint(relay_store_t *st);
int relay_store_release(relay_store_t *st);
int relay_store_rollback_to(relay_store_t *st);

int relay_store_insert(relay_store_t *st, uint64_t seq, uint64_t stored_ms,
    const rf_str_t *source, const unsigned char *data, size_t len);
int relay_store_put_source(relay_store_t *st, const relay_store_source_t *s);
int relay_store_put_consumer(relay_store_t *st,
    const relay_store_consumer_t *c);

/* 1 with the oldest record's seq and stored_ms, 0 when there is none. */
int relay_store_first(relay_store_t *st, uint64_t *seq, uint64_t *stored_ms);

/*
 * Delete the records with seq < below and stored_ms < before; add what
 * went to *d, counting as unread those with seq > unread.
 */
int relay_store_delete(relay_store_t *st, uint64_t below, uint64_t before,
    uint64_t unread, relay_store_del_t *d);

/* Pages of the file, and those not on the free list. */
int relay_store_pages(relay_store_t *st, uint64_t *pages, uint64_t *used);
/* Give up to pages free pages back to the disk, within a transaction. */
int relay_store_vacuum(relay_store_t *st, uint64_t pages);
/* EBUSY when a reader kept the checkpoint from finishing. */
int relay_store_checkpoint(relay_store_t *st, int mode);
int relay_store_wal_limit(relay_store_t *st, uint64_t bytes);

/*
 * Reader: the records with seq > after, oldest first, at most max rows
 * and about max_bytes (always the first), in one read transaction, each
 * given to cb as SQLite holds it.  Returns the rows cb took (a non-zero
 * return stops the walk and is not counted), their bytes in *bytes; or
 * -1.
 */
int64_t relay_store_read(relay_store_t *st, uint64_t after, size_t max,
    size_t max_bytes, relay_store_read_pt cb, void *arg, uint64_t *bytes);


#endif /* _RELAY_STORE_H_INCLUDED_ */
