/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's SQLite file, and all of its SQL: the chunks table (runs
 * of stamped records, spool_chunk.h, keyed by the source sequence of
 * their first record, so a reader takes them in order and the buffer
 * deletes the oldest once acknowledged or dropped), the meta table, and
 * the few operations the buffer (spool_buffer.c), the forwarder's reader
 * (spool_forward.c) and the --dump/--stats readers are made of.  No
 * policy here.
 */

#ifndef _SPOOL_STORE_H_INCLUDED_
#define _SPOOL_STORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_record.h"


#define SPOOL_ID_MAX            64

#define SPOOL_WAL_HDR           32      /* SQLite's WAL header and frame */
#define SPOOL_WAL_FRAME_HDR     24      /* header sizes */

/* checkpoint modes, as SQLite's */
#define SPOOL_CKPT_RESTART      2
#define SPOOL_CKPT_TRUNCATE     3


typedef struct spool_store_s  spool_store_t;


/* A row of the chunks table, without its data. */
typedef struct {
    uint64_t                    first;      /* sseq of the first record */
    uint64_t                    last;       /* and of the last */
    uint64_t                    n;          /* records */
    uint64_t                    bytes;      /* of the records themselves */
} spool_chunk_info_t;


/*
 * What the Lua scripts did (spool_script.c), counted like the other
 * counters: as increments committed with the batches.
 */
typedef struct {
    uint64_t                    calls;          /* transform() */
    uint64_t                    ticks;          /* tick() */
    uint64_t                    errors;         /* runtime errors */
    uint64_t                    budget;         /* stopped by the budget */
    uint64_t                    memory;         /* stopped by the memory cap */
    uint64_t                    dropped;        /* returned nil */
    uint64_t                    produced;       /* records returned */
    uint64_t                    dead_lettered;
    uint64_t                    dead_dropped;   /* over dead_letter_max */
} spool_script_counts_t;


/*
 * The meta table, as one struct.  records and bytes describe the records
 * the chunks hold above released (the oldest chunk may still hold some
 * the relay acknowledged); the other counters only grow.
 */
typedef struct {
    uint64_t                    records;
    uint64_t                    bytes;
    uint64_t                    stored_total;
    uint64_t                    dropped_oldest;
    uint64_t                    dropped_oldest_bytes;
    uint64_t                    dropped_newest;
    uint64_t                    dropped_newest_bytes;
    uint64_t                    invalid;
    uint64_t                    forwarded;      /* acked by the relay */
    uint64_t                    forwarded_bytes;
    uint64_t                    rejected;       /* refused with a 400 */
    uint64_t                    rejected_bytes;
    uint64_t                    next_sseq;
    uint64_t                    released;       /* acked or rejected up to */
    uint64_t                    ring_generation;
    uint64_t                    ring_pos;       /* ring read up to here */
    uint64_t                    ring_batch;     /* records of the last batch */
    uint64_t                    max_buffer;
    spool_script_counts_t       script;
    char                        id[SPOOL_ID_MAX + 1];
} spool_meta_t;


/*
 * Called for every record of spool_store_each() in order; with data NULL
 * at the end of each chunk, outside any read transaction (the place to do
 * slow output).  Non-zero stops the walk.
 */
typedef int (*spool_store_each_pt)(uint64_t sseq, const unsigned char *data,
    size_t len, void *arg);

/*
 * Called for every record of spool_store_batch() in order, inside the
 * read transaction (copy what is needed, nothing slow): 0 takes the
 * record and goes on, 1 stops before it, -1 stops with ENOMEM.
 */
typedef int (*spool_store_batch_pt)(uint64_t sseq, const rf_str_t *bucket,
    const unsigned char *data, size_t len, void *arg);


/*
 * Open the file.  Writer (readonly 0): created when missing with pages of
 * page_size bytes, locked against a second writer, WAL mode.  Reader: the
 * file must exist, nothing is written.  0, or -1 with err set.
 */
int spool_store_open(spool_store_t **stp, const char *path, int readonly,
    uint64_t page_size, char *err, size_t errlen);
void spool_store_close(spool_store_t *st);

const char *spool_store_path(spool_store_t *st);
uint64_t spool_store_page_size(spool_store_t *st);
int spool_store_can_vacuum(spool_store_t *st);
/* Frames in the WAL after the last commit (0 after a checkpoint). */
uint64_t spool_store_wal_frames(spool_store_t *st);
/* The damaged chunks the readers below came across (and skipped). */
uint64_t spool_store_damaged(spool_store_t *st);

/*
 * Everything below returns 0 (or what it says), or -1 with errno: ENOSPC,
 * EIO, EBUSY (locked, or a reader kept a checkpoint from finishing),
 * ENOMEM, EACCES; the SQLite message has been logged.
 */

int spool_store_read_meta(spool_store_t *st, spool_meta_t *m);

/* Writer: one transaction at a time. */
int spool_store_begin(spool_store_t *st);
int spool_store_commit(spool_store_t *st);
void spool_store_rollback(spool_store_t *st);

int spool_store_insert(spool_store_t *st, const spool_chunk_info_t *c,
    const unsigned char *data, size_t len);
/* 1 with the oldest chunk (or the newest at or above from), 0 if none. */
int spool_store_oldest(spool_store_t *st, spool_chunk_info_t *c);
int spool_store_newest(spool_store_t *st, uint64_t from,
    spool_chunk_info_t *c);
int spool_store_delete(spool_store_t *st, uint64_t first);
/*
 * Count the records of chunk first with above < sseq <= upto into *n and
 * *bytes (a damaged rest of the chunk is logged and not counted).
 */
int spool_store_count(spool_store_t *st, uint64_t first, uint64_t above,
    uint64_t upto, uint64_t *n, uint64_t *bytes);

/* Pages of the file, and those not on the free list. */
int spool_store_pages(spool_store_t *st, uint64_t *pages, uint64_t *used);
/* Give up to pages free pages back to the disk, within a transaction. */
int spool_store_vacuum(spool_store_t *st, uint64_t pages);
int spool_store_checkpoint(spool_store_t *st, int mode);
int spool_store_wal_limit(spool_store_t *st, uint64_t bytes);

/* Set a meta value, or add to it. */
int spool_store_meta_put(spool_store_t *st, const char *key, int64_t value,
    int add);
int spool_store_meta_id(spool_store_t *st, const char *id);

/*
 * Every record with sseq > after (and above released), in order, in
 * short read transactions of a bounded size, so that a running spool is
 * never held up for long.  A damaged chunk is logged and skipped.
 */
int spool_store_each(spool_store_t *st, uint64_t after,
    spool_store_each_pt handler, void *arg);

/*
 * Reader: at most limit records with sseq > after (and above released),
 * in order, in one short read transaction (the forwarder's batches).  The
 * records taken, or -1.
 */
int spool_store_batch(spool_store_t *st, uint64_t after, uint64_t limit,
    spool_store_batch_pt handler, void *arg);

/* The bytes the buffer takes on disk: the file and its -wal. */
int spool_store_file_sizes(const char *path, uint64_t *db, uint64_t *wal);


#endif /* _SPOOL_STORE_H_INCLUDED_ */
