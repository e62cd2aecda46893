/*
 * Copyright (C) ReplayForge contributors
 *
 * A bucket's writer thread: group commit and the byte cap.  Appends and
 * acks queued while a transaction ran are taken together and committed
 * in ONE transaction, each in a savepoint of its own, so that one that
 * fails (no room under reject, too large) fails alone; then every caller
 * is woken with its own result.  The pending state (sources' high-water
 * marks, seq, counters) is kept apart from the committed one and only
 * becomes it after COMMIT (relay_bucket_txn.c).
 *
 * The cap over file + WAL is shared out as rf_sqlite.h says: before a
 * batch goes in, the pages in use plus its estimate must fit the data
 * share (else the oldest records go, or the batch is refused), and a
 * transaction whose frames would not fit the WAL share is preceded by a
 * RESTART checkpoint; several batches are grouped up to half the WAL
 * share, one alone may take all of it.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_log.h"
#include "relay_bucket_int.h"


static relay_job_t *relay_bucket_take(relay_bucket_t *b, uint64_t *frames);
static void relay_bucket_group(relay_bucket_t *b, relay_job_t *jobs,
    uint64_t frames);
static int relay_bucket_job_append(relay_bucket_t *b, relay_job_t *job,
    relay_txn_t *tx);
static int relay_bucket_dedup(relay_bucket_t *b, relay_job_t *job,
    relay_txn_t *tx, rf_str_t *ids, unsigned char *dup, uint64_t *bytes);
static int relay_bucket_job_done(relay_bucket_t *b, relay_txn_t *tx);
static int relay_bucket_job_ack(relay_bucket_t *b, relay_job_t *job,
    relay_txn_t *tx);
static uint64_t relay_bucket_job_frames(relay_bucket_t *b,
    relay_job_t *job);
static uint64_t relay_bucket_est_frames(relay_bucket_t *b, uint64_t need);


void *
relay_bucket_writer(void *arg)
{
    uint64_t        frames;
    relay_job_t    *jobs, *j, *next;
    relay_bucket_t *b;

    b = arg;

    pthread_mutex_lock(&b->lock);

    for ( ;; ) {
        while (b->head == NULL && !b->closing) {
            pthread_cond_wait(&b->work_cond, &b->lock);
        }

        /* closing: what was queued before is still committed */

        if (b->head == NULL) {
            break;
        }

        jobs = relay_bucket_take(b, &frames);

        pthread_mutex_unlock(&b->lock);

        switch (jobs->type) {

        case RELAY_JOB_TICK:
            relay_bucket_do_tick(b, jobs);
            break;

        case RELAY_JOB_CONF:
            relay_bucket_do_conf(b, jobs);
            break;

        default:
            relay_bucket_group(b, jobs, frames);
        }

        pthread_mutex_lock(&b->lock);

        /* a waiter may return as soon as done is set: next first */

        for (j = jobs; j != NULL; j = next) {
            next = j->next;
            j->done = 1;
        }

        pthread_cond_broadcast(&b->done_cond);
    }

    pthread_mutex_unlock(&b->lock);

    /* out_* and last seen times that no transaction carried yet */

    (void) relay_bucket_flush(b);

    return NULL;
}


/* under b->lock: a tick or a conf alone, or appends and acks together */

static relay_job_t *
relay_bucket_take(relay_bucket_t *b, uint64_t *frames)
{
    uint64_t      total, f, budget;
    relay_job_t  *first, *last;

    first = b->head;
    last = first;
    total = 0;

    if (first->type == RELAY_JOB_APPEND || first->type == RELAY_JOB_ACK) {
        total = relay_bucket_job_frames(b, first);
        budget = b->cap.txn_frames / 2;

        while (last->next != NULL
               && (last->next->type == RELAY_JOB_APPEND
                   || last->next->type == RELAY_JOB_ACK))
        {
            f = relay_bucket_job_frames(b, last->next);

            if (total + f > budget) {
                break;
            }

            total += f;
            last = last->next;
        }
    }

    b->head = last->next;

    if (b->head == NULL) {
        b->tail = &b->head;
    }

    last->next = NULL;
    *frames = total;

    return first;
}


static void
relay_bucket_group(relay_bucket_t *b, relay_job_t *jobs, uint64_t frames)
{
    int          rc, err;
    relay_txn_t  tx;
    relay_job_t *j;

    if (relay_bucket_txn_begin(b, &tx, frames) != 0) {
        goto failed;
    }

    for (j = jobs; j != NULL; j = j->next) {
        if (relay_store_savepoint(b->store) != 0) {
            relay_store_rollback(b->store);
            goto failed;
        }

        rc = (j->type == RELAY_JOB_APPEND)
             ? relay_bucket_job_append(b, j, &tx)
             : relay_bucket_job_ack(b, j, &tx);

        if (rc == 0) {
            if (relay_store_release(b->store) != 0) {
                relay_store_rollback(b->store);
                goto failed;
            }

            continue;
        }

        j->rc = -1;
        j->err = errno;

        if (relay_store_rollback_to(b->store) != 0) {
            relay_store_rollback(b->store);
            goto failed;
        }
    }

    if (relay_bucket_txn_commit(b, &tx) != 0) {
        goto failed;
    }

    if (tx.d.last_seq != 0) {
        b->appends++;
    }

    return;

failed:

    err = errno;

    for (j = jobs; j != NULL; j = j->next) {
        if (j->rc == 0) {
            j->rc = -1;
            j->err = err;

            if (j->res != NULL) {
                memset(j->res, 0, sizeof(relay_append_t));
            }
        }
    }
}


static int
relay_bucket_job_append(relay_bucket_t *b, relay_job_t *job,
    relay_txn_t *tx)
{
    int             err;
    size_t          i;
    uint64_t        seq0, seq, bytes, accepted, need, pages, used;
    rf_str_t       *ids;
    relay_meta_t    jd;
    const rf_rec_t *rec;
    unsigned char  *dup;

    ids = malloc(job->n * (sizeof(rf_str_t) + 1));
    if (ids == NULL) {
        errno = ENOMEM;
        return -1;
    }

    dup = (unsigned char *) (ids + job->n);
    seq0 = tx->next_seq;
    memset(&jd, 0, sizeof(relay_meta_t));

    if (relay_bucket_dedup(b, job, tx, ids, dup, &bytes) != 0) {
        goto failed;
    }

    accepted = 0;

    for (i = 0; i < job->n; i++) {
        accepted += !dup[i];
    }

    if (accepted > 0) {
        need = rf_sqlite_est_pages(&b->cap, bytes, accepted,
                                   RELAY_CELL_OVERHEAD, b->ratio);

        /* alone after a checkpoint, a batch may take the WAL's share */

        if (need > b->cap.data_pages - b->cap.data_pages / 8
            || relay_bucket_est_frames(b, need) > b->cap.txn_frames)
        {
            errno = EFBIG;
            goto failed;
        }

        if (relay_store_pages(b->store, &pages, &used) != 0) {
            goto failed;
        }

        if (used + need > b->cap.data_pages) {
            if (b->conf->overflow == RELAY_OVERFLOW_REJECT) {
                goto full;
            }

            if (relay_bucket_make_room(b, tx, &jd, need, 0) != 0) {
                goto failed;
            }
        }

        for (i = 0; i < job->n; i++) {
            if (dup[i]) {
                continue;
            }

            rec = &job->recs[i];
            seq = ++tx->next_seq;

            /* the caller's buffer is writable (relay_bucket.h) */
            rf_rec_set_rseq((unsigned char *) rec->buf, seq);

            if (relay_store_insert(b->store, seq, tx->now_ms, &ids[i],
                                   rec->buf, rec->len)
                != 0)
            {
                goto failed;
            }
        }

        /* the estimate was off: correct before anything is committed */

        if (relay_store_pages(b->store, &pages, &used) != 0) {
            goto failed;
        }

        if (used > b->cap.data_pages) {
            if (b->conf->overflow == RELAY_OVERFLOW_REJECT) {
                goto full;
            }

            if (relay_bucket_make_room(b, tx, &jd, 0, 0) != 0) {
                goto failed;
            }
        }
    }

    if (relay_bucket_job_done(b, tx) != 0) {
        goto failed;
    }

    jd.in_records += accepted;
    jd.in_bytes += bytes;
    jd.records += accepted;
    jd.bytes += bytes;
    jd.duplicates += job->n - accepted;

    relay_meta_add(&tx->d, &jd);

    job->res->accepted = accepted;
    job->res->duplicates = job->n - accepted;
    job->res->first_seq = accepted ? seq0 + 1 : 0;
    job->res->last_seq = accepted ? tx->next_seq : 0;

    free(ids);

    return 0;

full:

    /* counted in the transaction, outside the savepoint that goes */

    tx->d.rejected += job->n;
    errno = ENOSPC;

failed:

    err = errno;
    tx->next_seq = seq0;
    free(ids);
    errno = err;

    return -1;
}


/*
 * Mark duplicates: a record whose sseq is not above the high-water mark
 * of its source, as this job sees it (committed, then what earlier jobs
 * of the transaction and earlier records of this batch took).  Sets the
 * accepted records' bytes and their source ids.
 */

static int
relay_bucket_dedup(relay_bucket_t *b, relay_job_t *job, relay_txn_t *tx,
    rf_str_t *ids, unsigned char *dup, uint64_t *bytes)
{
    size_t           i;
    uint64_t         gen, total;
    rf_str_t         id;
    relay_source_t  *s;
    const rf_rec_t  *rec;

    gen = ++b->job_gen;
    tx->job_sources = NULL;
    total = 0;

    for (i = 0; i < job->n; i++) {
        rec = &job->recs[i];
        dup[i] = 0;
        ids[i].len = 0;
        ids[i].data = NULL;

        if (rf_rec_field(rec, RF_F_SOURCE, &id) == 0 && id.len > 0) {
            s = relay_bucket_source(b, &id, 1);
            if (s == NULL) {
                errno = ENOMEM;
                return -1;
            }

            if (s->job_gen != gen) {
                s->job_gen = gen;
                s->j = (s->txn_gen == tx->gen) ? s->p : s->c;
                s->job_next = tx->job_sources;
                tx->job_sources = s;
            }

            s->j.last_ms = tx->now_ms;

            if (rec->sseq != 0 && rec->sseq <= s->j.max_sseq) {
                s->j.duplicates++;
                dup[i] = 1;
                continue;
            }

            if (rec->sseq > s->j.max_sseq) {
                s->j.max_sseq = rec->sseq;
            }

            s->j.records++;
            s->j.bytes += rec->len;
            ids[i] = id;
        }

        total += rec->len;
    }

    *bytes = total;

    return 0;
}


/* the job went well: write its sources, once each, and keep its view */

static int
relay_bucket_job_done(relay_bucket_t *b, relay_txn_t *tx)
{
    relay_source_t        *s;
    relay_store_source_t   row;

    for (s = tx->job_sources; s != NULL; s = s->job_next) {
        row.id.data = s->id;
        row.id.len = s->len;
        row.max_sseq = s->j.max_sseq;
        row.records = s->j.records;
        row.bytes = s->j.bytes;
        row.duplicates = s->j.duplicates;
        row.last_ms = s->j.last_ms;

        if (relay_store_put_source(b->store, &row) != 0) {
            return -1;
        }
    }

    for (s = tx->job_sources; s != NULL; s = s->job_next) {
        if (s->txn_gen != tx->gen) {
            s->txn_gen = tx->gen;
            s->txn_next = tx->sources;
            tx->sources = s;
        }

        s->p = s->j;
    }

    tx->job_sources = NULL;

    return 0;
}


static int
relay_bucket_job_ack(relay_bucket_t *b, relay_job_t *job, relay_txn_t *tx)
{
    uint64_t                 cursor;
    relay_consumer_t        *c;
    relay_store_consumer_t   row;

    /* cursor and declared change on this thread only */

    c = job->consumer;

    if (c->txn_gen != tx->gen) {
        c->txn_gen = tx->gen;
        c->pend_cursor = c->cursor;
    }

    cursor = job->upto > c->pend_cursor ? job->upto : c->pend_cursor;

    if (cursor != c->pend_cursor) {
        row.name = c->name;
        row.cursor = cursor;
        row.declared = c->declared;
        row.last_ms = tx->now_ms;

        if (relay_store_put_consumer(b->store, &row) != 0) {
            return -1;
        }

        c->pend_cursor = cursor;
        tx->acked = 1;
    }

    job->cursor = cursor;

    return 0;
}


/*
 * Delete the oldest records until the pages in use plus need fit the data
 * share, or the table is empty, or limit records went (0: no limit).
 * Seqs are dense but for what was deleted, so "seq < oldest + k" takes
 * about k records.  For a batch, the pages freed here are the ones its
 * records take: each is written to the WAL once.
 */

int
relay_bucket_make_room(relay_bucket_t *b, relay_txn_t *tx, relay_meta_t *jd,
    uint64_t need, uint64_t limit)
{
    int                rc;
    uint64_t           pages, used, records, bytes, want, avg, k, gone;
    uint64_t           oldest, ms;
    relay_store_del_t  del;

    gone = 0;

    for ( ;; ) {
        if (limit != 0 && gone >= limit) {
            return 0;
        }

        if (relay_store_pages(b->store, &pages, &used) != 0) {
            return -1;
        }

        if (used + need <= b->cap.data_pages) {
            return 0;
        }

        records = tx->snap.records + tx->d.records + jd->records;
        bytes = tx->snap.bytes + tx->d.bytes + jd->bytes;

        if (records == 0) {
            return 0;
        }

        want = (used + need - b->cap.data_pages) * b->cap.page_size
               * RF_SQLITE_RATIO_ONE / b->ratio + 1;
        avg = bytes / records + RELAY_CELL_OVERHEAD;
        k = want / avg + 1;

        if (k > RELAY_DROP_CHUNK) {
            k = RELAY_DROP_CHUNK;
        }

        if (limit != 0 && k > limit - gone) {
            k = limit - gone;
        }

        rc = relay_store_first(b->store, &oldest, &ms);
        if (rc != 1) {
            return rc;
        }

        memset(&del, 0, sizeof(relay_store_del_t));

        if (relay_store_delete(b->store, oldest + k, UINT64_MAX, tx->unread,
                               &del)
            != 0)
        {
            return -1;
        }

        jd->records -= del.n;
        jd->bytes -= del.bytes;
        jd->dropped_size += del.n;
        jd->dropped_unread += del.unread;
        tx->deleted = 1;
        gone += k;
    }
}


/*
 * How many records one deleting transaction may take: deleting dirties
 * every leaf page it empties, and the WAL share must hold them.
 */

uint64_t
relay_bucket_chunk(relay_bucket_t *b)
{
    uint64_t  avg, k;

    if (b->saved.records == 0) {
        return RELAY_DROP_CHUNK;
    }

    avg = b->saved.bytes / b->saved.records + RELAY_CELL_OVERHEAD;
    k = b->cap.txn_frames / 2 * b->cap.page_size * RF_SQLITE_RATIO_ONE
        / b->ratio / avg;

    if (k == 0) {
        k = 1;
    }

    return k < RELAY_DROP_CHUNK ? k : RELAY_DROP_CHUNK;
}


static uint64_t
relay_bucket_job_frames(relay_bucket_t *b, relay_job_t *job)
{
    if (job->type != RELAY_JOB_APPEND) {
        return RELAY_SMALL_FRAMES / 8;
    }

    return relay_bucket_est_frames(b,
               rf_sqlite_est_pages(&b->cap, job->bytes, job->n,
                                   RELAY_CELL_OVERHEAD, b->ratio));
}


/* new pages, the pointer-map pages they touch, the tree above, meta */

static uint64_t
relay_bucket_est_frames(relay_bucket_t *b, uint64_t need)
{
    uint64_t  ptrmap;

    ptrmap = b->cap.data_pages / (b->cap.page_size / 5) + 1;

    return need + (need < ptrmap ? need : ptrmap) + need / 32 + 16;
}
