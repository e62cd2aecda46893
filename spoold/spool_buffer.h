/*
 * Copyright (C) ReplayForge contributors
 *
 * The bounded buffer: the store with a hard byte cap over its file and
 * -wal, an overflow policy, batches that commit records together with the
 * meta (sequence, ring position, counters), and the release of what the
 * relay acknowledged.  Only the main thread writes it.
 */

#ifndef _SPOOL_BUFFER_H_INCLUDED_
#define _SPOOL_BUFFER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_record.h"
#include "spool_store.h"


#define SPOOL_DROP_OLDEST       0
#define SPOOL_DROP_NEWEST       1


typedef struct spool_buffer_s  spool_buffer_t;


/* What a batch's commit records besides the records themselves. */
typedef struct {
    uint64_t                    next_sseq;
    uint64_t                    ring_generation;
    uint64_t                    ring_pos;
    uint64_t                    ring_batch;
    uint64_t                    invalid;
    spool_script_counts_t       script;     /* to add to the meta */
} spool_commit_t;


/*
 * Open (create) the buffer for writing, with its cap, policy and source
 * id.  0, or -1 with err set.
 */
int spool_buffer_open(spool_buffer_t **bp, const char *path,
    uint64_t max_buffer, int overflow, const char *id, char *err,
    size_t errlen);
void spool_buffer_close(spool_buffer_t *b);

/* A new cap, policy or id (reload); 0 or -1. */
int spool_buffer_set_limits(spool_buffer_t *b, uint64_t max_buffer,
    int overflow, const char *id);

/* The meta as of the last commit. */
const spool_meta_t *spool_buffer_meta(spool_buffer_t *b);

/* Largest batch payload, in bytes, one transaction should carry. */
uint64_t spool_buffer_batch_bytes(spool_buffer_t *b);
/* The file's page size: the least a commit writes. */
uint64_t spool_buffer_page_size(spool_buffer_t *b);

/*
 * A batch: begin() with the batch's total size and count makes room for
 * it (drop_oldest) and keeps the WAL inside its share of the cap, add()
 * stores or drops (drop_newest, too large) one stamped record, commit()
 * writes the meta and commits; rollback() undoes everything.
 * begin/commit: 0 or -1 with errno (ENOSPC, EIO, EBUSY: the WAL cannot be
 * checkpointed yet, ENOMEM); after -1 nothing was stored.
 * add: 1 stored, 0 dropped, -1 error (roll back).
 */
int spool_buffer_begin(spool_buffer_t *b, uint64_t bytes, uint64_t n);
int spool_buffer_add(spool_buffer_t *b, uint64_t sseq,
    const rf_str_t *bucket, const unsigned char *data, size_t len);
int spool_buffer_commit(spool_buffer_t *b, const spool_commit_t *c);
void spool_buffer_rollback(spool_buffer_t *b);

/*
 * The relay acknowledged every record up to upto (a source sequence):
 * delete them, counted as forwarded, or as rejected when the relay
 * refused them for good.  Records the cap dropped already are not
 * counted twice.  A bounded number of transactions of at most a batch's
 * bytes each: 0 done, 1 more to do (call again), -1 with errno (EBUSY: a
 * reader holds the WAL; try later).
 */
int spool_buffer_release(spool_buffer_t *b, uint64_t upto, int rejected);

/*
 * Nothing came for a while: log the drops, shrink a file left over the
 * cap by a lowered max_buffer (a bounded number of steps), checkpoint and
 * truncate the WAL.  0 done, 1 more to do (call again), -1 error.
 */
int spool_buffer_idle(spool_buffer_t *b);


#endif /* _SPOOL_BUFFER_H_INCLUDED_ */
