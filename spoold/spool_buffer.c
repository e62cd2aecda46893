/*
 * Copyright (C) ReplayForge contributors
 *
 * The byte cap over the buffer's file and its -wal.  The cap C is shared
 * out as
 *
 *   data     72%  pages of the database (records, tree, meta, free list):
 *                 before a batch is inserted, the oldest records go until
 *                 the pages in use plus the batch's estimate fit
 *   wal      22%  the -wal: a batch whose estimated frames would not fit
 *                 is preceded by a checkpoint that starts the WAL over
 *   reserve   6%  what the estimates can be off by in one batch
 *
 * A batch carries at most C/32 (4m at most) and one record at most C/8,
 * so one commit never writes more than the WAL's share; the sizes on disk
 * are checked with stat() after every commit.  The -shm file (32k per
 * 4096 WAL frames) is not counted.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rf_log.h"
#include "spool_buffer.h"
#include "spool_chunk.h"


#define SPOOL_DATA_SHARE        72      /* percent of the cap */
#define SPOOL_WAL_SHARE         22
#define SPOOL_PAGE_MIN          4096
#define SPOOL_PAGE_MAX          65536
#define SPOOL_CHUNK_MAX         (1024 * 1024)
#define SPOOL_CELL_OVERHEAD     24      /* an entry's header and bucket */
#define SPOOL_RATIO_ONE         1024    /* fixed point page/byte ratios */
#define SPOOL_RATIO_START       1280
#define SPOOL_RATIO_MAX         2400
#define SPOOL_DROP_LOG_MS       10000
#define SPOOL_SHRINK_STEPS      64
#define SPOOL_RELEASE_STEPS     8       /* transactions per release call */


typedef struct {
    int64_t                     records;
    int64_t                     bytes;
    int64_t                     stored_total;
    uint64_t                    dropped_oldest;
    uint64_t                    dropped_oldest_bytes;
    uint64_t                    dropped_newest;
    uint64_t                    dropped_newest_bytes;
    uint64_t                    forwarded;
    uint64_t                    forwarded_bytes;
    uint64_t                    rejected;
    uint64_t                    rejected_bytes;
} spool_delta_t;


struct spool_buffer_s {
    spool_store_t              *store;
    const char                 *path;
    spool_meta_t                meta;

    /* limits, from set_limits() */
    uint64_t                    cap;
    int                         overflow;
    uint64_t                    page_size;
    uint64_t                    data_pages;
    uint64_t                    slack_pages;
    uint64_t                    wal_limit;
    uint64_t                    batch_bytes;
    uint64_t                    chunk_max;
    uint64_t                    max_record;
    uint64_t                    vacuum_pages;
    uint64_t                    ratio;      /* page bytes per record byte */

    /* what the last look found */
    uint64_t                    pages;
    uint64_t                    db_bytes;
    uint64_t                    wal_bytes;
    uint64_t                    peak_bytes;
    unsigned                    over_cap:1;
    unsigned                    in_txn:1;
    unsigned                    refusing:1;     /* drop_newest is dropping */

    /* drops not logged yet, logged at most every SPOOL_DROP_LOG_MS */
    uint64_t                    drop_log_ms;
    uint64_t                    log_oldest;
    uint64_t                    log_oldest_bytes;
    uint64_t                    log_newest;
    uint64_t                    log_newest_bytes;

    /* the open batch, and the chunk it fills */
    uint64_t                    room_bytes;
    uint64_t                    added_bytes;
    uint64_t                    first_sseq;
    uint64_t                    released;
    spool_delta_t               d;
    rf_buf_t                    chunk;
    spool_chunk_info_t          pending;
};


static uint64_t spool_buffer_est_pages(spool_buffer_t *b, uint64_t bytes,
    uint64_t n);
static int spool_buffer_wal_room(spool_buffer_t *b, uint64_t frames);
static int spool_buffer_checkpoint(spool_buffer_t *b, int mode);
static int spool_buffer_flush(spool_buffer_t *b);
static void spool_buffer_chunk_reset(spool_buffer_t *b);
static int spool_buffer_unreleased(spool_buffer_t *b,
    const spool_chunk_info_t *c, uint64_t upto, uint64_t *n,
    uint64_t *bytes);
static int spool_buffer_make_room(spool_buffer_t *b, uint64_t need);
static int spool_buffer_unstore_newest(spool_buffer_t *b);
static int spool_buffer_write_meta(spool_buffer_t *b,
    const spool_commit_t *c);
static void spool_buffer_no_batch(spool_buffer_t *b, spool_commit_t *c);
static void spool_buffer_apply(spool_buffer_t *b, const spool_commit_t *c);
static void spool_buffer_learn(spool_buffer_t *b, uint64_t used);
static void spool_buffer_look(spool_buffer_t *b);
static void spool_buffer_log_drops(spool_buffer_t *b, int force);
static uint64_t spool_buffer_now_ms(void);


static const rf_str_t  spool_buffer_default_bucket = {
    sizeof("default") - 1, (const unsigned char *) "default"
};


int
spool_buffer_open(spool_buffer_t **bp, const char *path, uint64_t max_buffer,
    int overflow, const char *id, char *err, size_t errlen)
{
    uint64_t         page_size, used;
    spool_buffer_t  *b;

    *bp = NULL;

    b = calloc(1, sizeof(spool_buffer_t));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    /*
     * SQLite writes and checkpoints a page per system call, so a big cap
     * gets bigger pages: max_buffer / 4096 rounded down to a power of
     * two, 4k to 64k (the largest SQLite has; 64k from a cap of 256m).
     * A small commit writes a few whole pages whatever it holds, so a
     * small batch waits for more (batch_linger, spool_ring.h).  Only a
     * new file takes the page size.
     */

    for (page_size = SPOOL_PAGE_MIN;
         page_size < SPOOL_PAGE_MAX && page_size * 2 * 4096 <= max_buffer;
         page_size *= 2)
    {
        /* void */
    }

    if (spool_store_open(&b->store, path, 0, page_size, err, errlen) != 0) {
        free(b);
        return -1;
    }

    b->path = spool_store_path(b->store);
    b->page_size = spool_store_page_size(b->store);
    b->ratio = SPOOL_RATIO_START;
    rf_buf_init(&b->chunk);

    if (spool_store_read_meta(b->store, &b->meta) != 0
        || spool_store_pages(b->store, &b->pages, &used) != 0
        || spool_buffer_set_limits(b, max_buffer, overflow, id) != 0)
    {
        snprintf(err, errlen, "cannot use buffer \"%s\" (see above)", path);
        spool_buffer_close(b);
        return -1;
    }

    b->released = b->meta.released;

    spool_buffer_look(b);

    *bp = b;

    return 0;
}


void
spool_buffer_close(spool_buffer_t *b)
{
    if (b == NULL) {
        return;
    }

    spool_buffer_log_drops(b, 1);
    spool_store_close(b->store);
    rf_buf_free(&b->chunk);
    free(b);
}


int
spool_buffer_set_limits(spool_buffer_t *b, uint64_t max_buffer, int overflow,
    const char *id)
{
    uint64_t  frame;

    b->cap = max_buffer;
    b->overflow = overflow;
    b->refusing = 0;

    frame = b->page_size + SPOOL_WAL_FRAME_HDR;

    b->data_pages = max_buffer / 100 * SPOOL_DATA_SHARE / b->page_size;
    b->slack_pages = b->data_pages / 64 + 2;
    b->wal_limit = max_buffer / 100 * SPOOL_WAL_SHARE;

    b->batch_bytes = max_buffer / 32;

    if (b->batch_bytes < 32 * 1024) {
        b->batch_bytes = 32 * 1024;
    }

    if (b->batch_bytes > 4 * 1024 * 1024) {
        b->batch_bytes = 4 * 1024 * 1024;
    }

    /* a chunk is read whole: a forwarder's batch reads two at most */

    b->chunk_max = b->batch_bytes < SPOOL_CHUNK_MAX ? b->batch_bytes
                                                    : SPOOL_CHUNK_MAX;

    b->max_record = max_buffer / 8;

    if (b->max_record > RF_REC_MAX_SIZE) {
        b->max_record = RF_REC_MAX_SIZE;
    }

    /* a moved page writes itself, its parent and a pointer-map page */

    b->vacuum_pages = b->wal_limit / 2 / (3 * frame);

    if (b->vacuum_pages == 0) {
        b->vacuum_pages = 1;
    }

    if (spool_store_wal_limit(b->store, b->wal_limit) != 0) {
        return -1;
    }

    if (b->meta.max_buffer != max_buffer) {
        if (spool_store_meta_put(b->store, "max_buffer",
                                 (int64_t) max_buffer, 0)
            != 0)
        {
            return -1;
        }

        b->meta.max_buffer = max_buffer;
    }

    if (strcmp(b->meta.id, id) != 0) {
        if (spool_store_meta_id(b->store, id) != 0) {
            return -1;
        }

        snprintf(b->meta.id, sizeof(b->meta.id), "%s", id);
    }

    log_debug("buffer \"%s\": cap %" PRIu64 ", pages of %" PRIu64 ", data %"
              PRIu64 " pages, wal %" PRIu64 ", batch %" PRIu64 ", largest "
              "record %" PRIu64, b->path, b->cap, b->page_size,
              b->data_pages, b->wal_limit, b->batch_bytes, b->max_record);

    return 0;
}


const spool_meta_t *
spool_buffer_meta(spool_buffer_t *b)
{
    return &b->meta;
}


uint64_t
spool_buffer_batch_bytes(spool_buffer_t *b)
{
    return b->batch_bytes;
}


uint64_t
spool_buffer_page_size(spool_buffer_t *b)
{
    return b->page_size;
}


int
spool_buffer_begin(spool_buffer_t *b, uint64_t bytes, uint64_t n)
{
    int       vacuum;
    uint64_t  need, frames, ptrmap, pages, used;

    if (b->in_txn) {
        errno = EINVAL;
        return -1;
    }

    /* the WAL first: the frames this batch may write must fit its share */

    need = spool_buffer_est_pages(b, bytes, n);
    ptrmap = b->data_pages / (b->page_size / 5) + 1;
    frames = need + (need < ptrmap ? need : ptrmap) + 16;

    vacuum = spool_store_can_vacuum(b->store)
             && b->pages > b->data_pages + b->slack_pages;

    if (vacuum) {
        frames += 3 * b->vacuum_pages;
    }

    if (spool_buffer_wal_room(b, frames) != 0
        || spool_store_begin(b->store) != 0)
    {
        return -1;
    }

    b->in_txn = 1;
    b->added_bytes = 0;
    b->first_sseq = 0;
    memset(&b->d, 0, sizeof(spool_delta_t));
    spool_buffer_chunk_reset(b);

    if (spool_store_pages(b->store, &pages, &used) != 0) {
        goto failed;
    }

    /*
     * drop_newest keeps what is stored, except when the cap was lowered
     * under what the buffer holds: the cap wins then.
     */

    if (b->overflow == SPOOL_DROP_OLDEST || used > b->data_pages) {
        if (spool_buffer_make_room(b, b->overflow == SPOOL_DROP_OLDEST
                                      ? need : 0)
            != 0)
        {
            goto failed;
        }

        if (spool_store_pages(b->store, &pages, &used) != 0) {
            goto failed;
        }
    }

    b->room_bytes = 0;

    if (used < b->data_pages) {
        b->room_bytes = (b->data_pages - used) * b->page_size
                        * SPOOL_RATIO_ONE / b->ratio;
    }

    /*
     * Once drop_newest drops, it goes on dropping until there is room for
     * a whole batch again, so that the estimate's noise at the edge does
     * not let single later records in between dropped ones.
     */

    if (b->refusing && b->room_bytes >= b->batch_bytes) {
        b->refusing = 0;
    }

    if (vacuum && spool_store_vacuum(b->store, b->vacuum_pages) != 0) {
        goto failed;
    }

    return 0;

failed:

    spool_buffer_rollback(b);

    return -1;
}


int
spool_buffer_add(spool_buffer_t *b, uint64_t sseq, const rf_str_t *bucket,
    const unsigned char *data, size_t len)
{
    uint64_t  cost;

    if (len > b->max_record) {
        log_warnx("buffer \"%s\": a record of %zu bytes is larger than a "
                  "cap of %" PRIu64 " can take (%" PRIu64 "), dropped",
                  b->path, len, b->cap, b->max_record);
        b->d.dropped_newest++;
        b->d.dropped_newest_bytes += len;
        return 0;
    }

    cost = len + SPOOL_CELL_OVERHEAD;

    if (b->overflow == SPOOL_DROP_NEWEST
        && (b->refusing || b->added_bytes + cost > b->room_bytes))
    {
        b->refusing = 1;
        b->d.dropped_newest++;
        b->d.dropped_newest_bytes += len;
        return 0;
    }

    if (bucket == NULL || bucket->len == 0) {
        bucket = &spool_buffer_default_bucket;
    }

    if (b->chunk.len > 0
        && b->chunk.len + spool_chunk_entry_size(bucket->len, len)
           > b->chunk_max
        && spool_buffer_flush(b) != 0)
    {
        return -1;
    }

    if (spool_chunk_add(&b->chunk, sseq, bucket, data, len) != 0) {
        log_warn("buffer \"%s\": record %" PRIu64, b->path, sseq);
        return -1;
    }

    if (b->pending.n == 0) {
        b->pending.first = sseq;
    }

    b->pending.last = sseq;
    b->pending.n++;
    b->pending.bytes += len;

    if (b->first_sseq == 0) {
        b->first_sseq = sseq;
    }

    b->added_bytes += cost;
    b->d.records++;
    b->d.bytes += (int64_t) len;
    b->d.stored_total++;

    return 1;
}


int
spool_buffer_commit(spool_buffer_t *b, const spool_commit_t *c)
{
    uint64_t  pages, used;

    if (!b->in_txn) {
        errno = EINVAL;
        return -1;
    }

    if (spool_buffer_flush(b) != 0) {
        goto failed;
    }

    /* the estimates were off: correct before anything is committed */

    if (spool_store_pages(b->store, &pages, &used) != 0) {
        goto failed;
    }

    if (used > b->data_pages) {
        if (b->overflow == SPOOL_DROP_NEWEST && b->first_sseq != 0
            && spool_buffer_unstore_newest(b) != 0)
        {
            goto failed;
        }

        if (spool_buffer_make_room(b, 0) != 0
            || spool_store_pages(b->store, &pages, &used) != 0)
        {
            goto failed;
        }
    }

    if (spool_buffer_write_meta(b, c) != 0
        || spool_store_commit(b->store) != 0)
    {
        goto failed;
    }

    b->in_txn = 0;
    b->pages = pages;

    spool_buffer_apply(b, c);
    spool_buffer_learn(b, used);
    spool_buffer_look(b);

    /* only after the cap was lowered under what the file held */

    if (b->db_bytes + b->wal_bytes > b->cap) {
        if (!b->over_cap) {
            log_warnx("buffer \"%s\": files take %" PRIu64 " bytes, over "
                      "the cap of %" PRIu64 ", shrinking", b->path,
                      b->db_bytes + b->wal_bytes, b->cap);
            b->over_cap = 1;
        }

        (void) spool_buffer_checkpoint(b, SPOOL_CKPT_TRUNCATE);

    } else if (b->over_cap) {
        log_info("buffer \"%s\": back under the cap, %" PRIu64 " bytes",
                 b->path, b->db_bytes + b->wal_bytes);
        b->over_cap = 0;
    }

    spool_buffer_log_drops(b, 0);

    return 0;

failed:

    spool_buffer_rollback(b);

    return -1;
}


void
spool_buffer_rollback(spool_buffer_t *b)
{
    int  err;

    if (!b->in_txn) {
        return;
    }

    err = errno;

    b->in_txn = 0;
    b->released = b->meta.released;
    spool_buffer_chunk_reset(b);
    spool_store_rollback(b->store);

    errno = err;
}


/*
 * Deleting a chunk writes at most its leaf, the tree above it, the free
 * list's trunks and the pointer map, never the overflow pages it frees
 * (secure_delete is off), so a transaction that deletes a batch's bytes
 * of chunks stays well within the WAL's share.  A chunk the relay
 * acknowledged in part stays until the rest is; released says how far
 * the counters went.
 */

int
spool_buffer_release(spool_buffer_t *b, uint64_t upto, int rejected)
{
    int                 i, rc, done;
    uint64_t            n, nb, work, need, ptrmap;
    spool_commit_t      cm;
    spool_chunk_info_t  c;

    if (b->in_txn) {
        errno = EINVAL;
        return -1;
    }

    for (i = 0; i < SPOOL_RELEASE_STEPS; i++) {

        if (upto <= b->meta.released) {
            return 0;
        }

        need = spool_buffer_est_pages(b, 0, 0) + 16;
        ptrmap = b->data_pages / (b->page_size / 5) + 1;

        if (spool_buffer_wal_room(b, need + ptrmap) != 0
            || spool_store_begin(b->store) != 0)
        {
            return -1;
        }

        b->in_txn = 1;
        memset(&b->d, 0, sizeof(spool_delta_t));

        work = 0;
        done = 0;

        while (!done && work < b->batch_bytes) {
            rc = spool_store_oldest(b->store, &c);
            if (rc == -1) {
                goto failed;
            }

            if (rc == 0 || c.first > upto) {
                b->released = upto;
                done = 1;
                break;
            }

            n = 0;
            nb = 0;

            if (spool_buffer_unreleased(b, &c, upto, &n, &nb) != 0) {
                goto failed;
            }

            b->d.records -= (int64_t) n;
            b->d.bytes -= (int64_t) nb;

            if (rejected) {
                b->d.rejected += n;
                b->d.rejected_bytes += nb;

            } else {
                b->d.forwarded += n;
                b->d.forwarded_bytes += nb;
            }

            if (c.last > upto) {
                b->released = upto;             /* the rest stays */
                done = 1;
                break;
            }

            if (spool_store_delete(b->store, c.first) != 0) {
                goto failed;
            }

            b->released = c.last;
            work += c.bytes;
        }

        spool_buffer_no_batch(b, &cm);

        if (spool_buffer_write_meta(b, &cm) != 0
            || spool_store_commit(b->store) != 0)
        {
            goto failed;
        }

        b->in_txn = 0;

        spool_buffer_apply(b, &cm);
        spool_buffer_look(b);

        log_debug("buffer \"%s\": %s %" PRIu64 " records (%" PRIu64
                  " bytes) up to %" PRIu64, b->path,
                  rejected ? "deleted the rejected" : "released",
                  (uint64_t) -b->d.records, (uint64_t) -b->d.bytes,
                  b->released);

        if (done) {
            return 0;
        }
    }

    return 1;

failed:

    spool_buffer_rollback(b);

    return -1;
}


int
spool_buffer_idle(spool_buffer_t *b)
{
    int             i;
    spool_commit_t  c;

    spool_buffer_log_drops(b, 1);

    if (b->in_txn) {
        return 0;
    }

    /*
     * A file larger than the data share (the cap was lowered) shrinks in
     * empty batches: begin() drops and gives pages back, commit() counts.
     */

    spool_buffer_no_batch(b, &c);

    for (i = 0; i < SPOOL_SHRINK_STEPS; i++) {
        if (!spool_store_can_vacuum(b->store)
            || b->pages <= b->data_pages + b->slack_pages)
        {
            break;
        }

        if (spool_buffer_begin(b, 0, 0) != 0
            || spool_buffer_commit(b, &c) != 0)
        {
            return -1;
        }
    }

    if (b->wal_bytes > 0
        && spool_buffer_checkpoint(b, SPOOL_CKPT_TRUNCATE) != 0)
    {
        return -1;
    }

    return (i == SPOOL_SHRINK_STEPS) ? 1 : 0;
}


static uint64_t
spool_buffer_est_pages(spool_buffer_t *b, uint64_t bytes, uint64_t n)
{
    uint64_t  x;

    x = (bytes + n * SPOOL_CELL_OVERHEAD) * b->ratio / SPOOL_RATIO_ONE;

    return (x + b->page_size - 1) / b->page_size + 2;
}


/*
 * The WAL must take frames more within its share, else everything in it
 * goes back into the database and the next transaction writes the WAL
 * from its start again (RESTART: the file keeps its size, which saves
 * allocating it anew every time).  A reader in the middle of its snapshot
 * makes that fail (EBUSY); nothing is written until it has gone.
 */

static int
spool_buffer_wal_room(spool_buffer_t *b, uint64_t frames)
{
    if (SPOOL_WAL_HDR + (spool_store_wal_frames(b->store) + frames)
                        * (b->page_size + SPOOL_WAL_FRAME_HDR)
        <= b->wal_limit)
    {
        return 0;
    }

    return spool_buffer_checkpoint(b, SPOOL_CKPT_RESTART);
}


static int
spool_buffer_checkpoint(spool_buffer_t *b, int mode)
{
    int  rc;

    rc = spool_store_checkpoint(b->store, mode);

    spool_buffer_look(b);

    if (rc != 0 && errno == EBUSY) {
        log_info("buffer \"%s\": a reader holds the WAL (%" PRIu64 " bytes),"
                 " writes wait for it", b->path, b->wal_bytes);
        errno = EBUSY;
    }

    return rc;
}


/*
 * The records of chunk c above released and up to upto: those still
 * counted in records and bytes.  Only the oldest chunk can hold some
 * below released, and only then is it read.
 */

static int
spool_buffer_unreleased(spool_buffer_t *b, const spool_chunk_info_t *c,
    uint64_t upto, uint64_t *n, uint64_t *bytes)
{
    if (c->first > b->released && c->last <= upto) {
        *n += c->n;
        *bytes += c->bytes;
        return 0;
    }

    return spool_store_count(b->store, c->first, b->released, upto, n,
                             bytes);
}


/*
 * Drop the oldest chunks until the pages in use plus need fit the data
 * share, or the table is empty.
 */

static int
spool_buffer_make_room(spool_buffer_t *b, uint64_t need)
{
    int                 rc;
    uint64_t            pages, used, n, nb;
    spool_chunk_info_t  c;

    for ( ;; ) {
        if (spool_store_pages(b->store, &pages, &used) != 0) {
            return -1;
        }

        if (used + need <= b->data_pages) {
            return 0;
        }

        rc = spool_store_oldest(b->store, &c);
        if (rc != 1) {
            return rc;          /* -1, or 0: the table is empty */
        }

        n = 0;
        nb = 0;

        if (spool_buffer_unreleased(b, &c, UINT64_MAX, &n, &nb) != 0
            || spool_store_delete(b->store, c.first) != 0)
        {
            return -1;
        }

        b->d.records -= (int64_t) n;
        b->d.bytes -= (int64_t) nb;
        b->d.dropped_oldest += n;
        b->d.dropped_oldest_bytes += nb;
    }
}


/*
 * drop_newest, when the estimate let in too much: take back the newest
 * chunks of this batch.
 */

static int
spool_buffer_unstore_newest(spool_buffer_t *b)
{
    int                 rc;
    uint64_t            pages, used;
    spool_chunk_info_t  c;

    for ( ;; ) {
        if (spool_store_pages(b->store, &pages, &used) != 0) {
            return -1;
        }

        if (used <= b->data_pages) {
            return 0;
        }

        rc = spool_store_newest(b->store, b->first_sseq, &c);
        if (rc != 1) {
            return rc;
        }

        if (spool_store_delete(b->store, c.first) != 0) {
            return -1;
        }

        b->refusing = 1;
        b->d.records -= (int64_t) c.n;
        b->d.bytes -= (int64_t) c.bytes;
        b->d.stored_total -= (int64_t) c.n;
        b->d.dropped_newest += c.n;
        b->d.dropped_newest_bytes += c.bytes;
    }
}


/* the chunk being filled goes into the table */

static int
spool_buffer_flush(spool_buffer_t *b)
{
    if (b->pending.n == 0) {
        return 0;
    }

    if (spool_store_insert(b->store, &b->pending, b->chunk.data,
                           b->chunk.len)
        != 0)
    {
        return -1;
    }

    spool_buffer_chunk_reset(b);

    return 0;
}


static void
spool_buffer_chunk_reset(spool_buffer_t *b)
{
    memset(&b->pending, 0, sizeof(spool_chunk_info_t));

    /* the memory a very large record took goes back */

    if (b->chunk.cap > 2 * b->chunk_max) {
        rf_buf_free(&b->chunk);

    } else {
        rf_buf_reset(&b->chunk);
    }
}


/*
 * Positions are absolute, and written when they moved; counters are
 * added (value = value + ?), so a transaction writes only what it
 * changed.
 */

static int
spool_buffer_write_meta(spool_buffer_t *b, const spool_commit_t *c)
{
    size_t  i;

    const struct {
        const char      *key;
        int64_t          value;
        const uint64_t  *now;       /* a position: its committed value */
    } w[] = {
        { "next_sseq", (int64_t) c->next_sseq, &b->meta.next_sseq },
        { "released", (int64_t) b->released, &b->meta.released },
        { "ring_generation", (int64_t) c->ring_generation,
          &b->meta.ring_generation },
        { "ring_pos", (int64_t) c->ring_pos, &b->meta.ring_pos },
        { "ring_batch", (int64_t) c->ring_batch, &b->meta.ring_batch },
        { "records", b->d.records, NULL },
        { "bytes", b->d.bytes, NULL },
        { "stored_total", b->d.stored_total, NULL },
        { "dropped_oldest", (int64_t) b->d.dropped_oldest, NULL },
        { "dropped_oldest_bytes", (int64_t) b->d.dropped_oldest_bytes, NULL },
        { "dropped_newest", (int64_t) b->d.dropped_newest, NULL },
        { "dropped_newest_bytes", (int64_t) b->d.dropped_newest_bytes, NULL },
        { "invalid", (int64_t) c->invalid, NULL },
        { "forwarded", (int64_t) b->d.forwarded, NULL },
        { "forwarded_bytes", (int64_t) b->d.forwarded_bytes, NULL },
        { "rejected", (int64_t) b->d.rejected, NULL },
        { "rejected_bytes", (int64_t) b->d.rejected_bytes, NULL },
        { "script_calls", (int64_t) c->script.calls, NULL },
        { "script_ticks", (int64_t) c->script.ticks, NULL },
        { "script_errors", (int64_t) c->script.errors, NULL },
        { "script_budget", (int64_t) c->script.budget, NULL },
        { "script_memory", (int64_t) c->script.memory, NULL },
        { "script_dropped", (int64_t) c->script.dropped, NULL },
        { "script_produced", (int64_t) c->script.produced, NULL },
        { "dead_lettered", (int64_t) c->script.dead_lettered, NULL },
        { "dead_dropped", (int64_t) c->script.dead_dropped, NULL }
    };

    for (i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        if (w[i].now == NULL ? w[i].value == 0
                             : *w[i].now == (uint64_t) w[i].value)
        {
            continue;
        }

        if (spool_store_meta_put(b->store, w[i].key, w[i].value,
                                 w[i].now == NULL)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* the commit of a transaction that stores no batch: positions unmoved */

static void
spool_buffer_no_batch(spool_buffer_t *b, spool_commit_t *c)
{
    c->next_sseq = b->meta.next_sseq;
    c->ring_generation = b->meta.ring_generation;
    c->ring_pos = b->meta.ring_pos;
    c->ring_batch = b->meta.ring_batch;
    c->invalid = 0;
    memset(&c->script, 0, sizeof(spool_script_counts_t));
}


static void
spool_buffer_apply(spool_buffer_t *b, const spool_commit_t *c)
{
    spool_meta_t  *m;

    m = &b->meta;

    m->next_sseq = c->next_sseq;
    m->released = b->released;
    m->ring_generation = c->ring_generation;
    m->ring_pos = c->ring_pos;
    m->ring_batch = c->ring_batch;
    m->records += (uint64_t) b->d.records;
    m->bytes += (uint64_t) b->d.bytes;
    m->stored_total += (uint64_t) b->d.stored_total;
    m->dropped_oldest += b->d.dropped_oldest;
    m->dropped_oldest_bytes += b->d.dropped_oldest_bytes;
    m->dropped_newest += b->d.dropped_newest;
    m->dropped_newest_bytes += b->d.dropped_newest_bytes;
    m->invalid += c->invalid;
    m->forwarded += b->d.forwarded;
    m->forwarded_bytes += b->d.forwarded_bytes;
    m->rejected += b->d.rejected;
    m->rejected_bytes += b->d.rejected_bytes;
    m->script.calls += c->script.calls;
    m->script.ticks += c->script.ticks;
    m->script.errors += c->script.errors;
    m->script.budget += c->script.budget;
    m->script.memory += c->script.memory;
    m->script.dropped += c->script.dropped;
    m->script.produced += c->script.produced;
    m->script.dead_lettered += c->script.dead_lettered;
    m->script.dead_dropped += c->script.dead_dropped;

    b->log_oldest += b->d.dropped_oldest;
    b->log_oldest_bytes += b->d.dropped_oldest_bytes;
    b->log_newest += b->d.dropped_newest;
    b->log_newest_bytes += b->d.dropped_newest_bytes;
}


/* pages in use per stored byte, from the table as it is now, plus 6% */

static void
spool_buffer_learn(spool_buffer_t *b, uint64_t used)
{
    if (b->meta.bytes < 64 * b->page_size) {
        return;
    }

    b->ratio = used * b->page_size * SPOOL_RATIO_ONE / b->meta.bytes;
    b->ratio += b->ratio / 16;

    if (b->ratio < SPOOL_RATIO_ONE) {
        b->ratio = SPOOL_RATIO_ONE;
    }

    if (b->ratio > SPOOL_RATIO_MAX) {
        b->ratio = SPOOL_RATIO_MAX;
    }
}


/* the real sizes on disk */

static void
spool_buffer_look(spool_buffer_t *b)
{
    uint64_t  db, wal;

    if (spool_store_file_sizes(b->path, &db, &wal) != 0) {
        log_warn("buffer \"%s\": stat", b->path);
        return;
    }

    b->db_bytes = db;
    b->wal_bytes = wal;

    if (db + wal > b->peak_bytes) {
        b->peak_bytes = db + wal;
        log_debug("buffer \"%s\": peak %" PRIu64 " bytes on disk (db %"
                  PRIu64 ", wal %" PRIu64 ")", b->path, db + wal, db, wal);
    }
}


/*
 * A full buffer drops in every batch; one line per SPOOL_DROP_LOG_MS
 * with the sums says the same as hundreds of suppressed ones.
 */

static void
spool_buffer_log_drops(spool_buffer_t *b, int force)
{
    uint64_t  now;

    if (b->log_oldest == 0 && b->log_newest == 0) {
        return;
    }

    now = spool_buffer_now_ms();

    if (!force && b->drop_log_ms != 0
        && now - b->drop_log_ms < SPOOL_DROP_LOG_MS)
    {
        return;
    }

    if (b->log_oldest) {
        log_warnx("buffer \"%s\" full: dropped the %" PRIu64 " oldest "
                  "records (%" PRIu64 " bytes)", b->path, b->log_oldest,
                  b->log_oldest_bytes);
    }

    if (b->log_newest) {
        log_warnx("buffer \"%s\" full or record too large: dropped %"
                  PRIu64 " new records (%" PRIu64 " bytes)", b->path,
                  b->log_newest, b->log_newest_bytes);
    }

    b->drop_log_ms = now;
    b->log_oldest = 0;
    b->log_oldest_bytes = 0;
    b->log_newest = 0;
    b->log_newest_bytes = 0;
}


static uint64_t
spool_buffer_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
