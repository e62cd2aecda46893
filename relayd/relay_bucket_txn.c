/*
 * Copyright (C) ReplayForge contributors
 *
 * A bucket's transactions on the writer connection, and its state between
 * the file and memory: what open loads, what a transaction changes (kept
 * as deltas of the meta and pending copies of the sources' and consumers'
 * numbers) and how it becomes the committed state after COMMIT, and the
 * checkpoint that keeps the WAL inside its share of the cap.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rf_log.h"
#include "relay_bucket_int.h"


#define RELAY_CKPT_TRIES        5


static int relay_bucket_load_source(const relay_store_source_t *row,
    void *arg);
static int relay_bucket_load_consumer(const relay_store_consumer_t *row,
    void *arg);
static void relay_bucket_applied(relay_bucket_t *b, relay_txn_t *tx);
static int relay_bucket_wal_room(relay_bucket_t *b, uint64_t frames);


int
relay_bucket_apply_limits(relay_bucket_t *b)
{
    rf_sqlite_cap_init(&b->cap, b->conf->max_size,
                       relay_store_page_size(b->store));

    return relay_store_wal_limit(b->store, b->cap.wal_limit);
}


/* at open, before the writer thread runs: the file's state into memory */

int
relay_bucket_load(relay_bucket_t *b, char *err, size_t errlen)
{
    int       rc;
    uint64_t  first, ms;

    if (relay_store_read_meta(b->store, &b->meta) != 0) {
        snprintf(err, errlen, "bucket file \"%s\" cannot be read (see "
                 "above)", b->path);
        return -1;
    }

    b->saved = b->meta;

    if (relay_store_each_source(b->store, relay_bucket_load_source, b) != 0
        || relay_store_each_consumer(b->store, relay_bucket_load_consumer,
                                     b) != 0
        || relay_bucket_apply_limits(b) != 0
        || relay_bucket_declare(b, b->conf) != 0)
    {
        snprintf(err, errlen, "bucket file \"%s\" cannot be read (see "
                 "above)", b->path);
        return -1;
    }

    rc = relay_store_first(b->store, &first, &ms);
    if (rc == -1) {
        snprintf(err, errlen, "bucket file \"%s\" cannot be read (see "
                 "above)", b->path);
        return -1;
    }

    b->first_seq = rc ? first : 0;
    b->oldest_ms = rc ? ms : 0;

    return 0;
}


static int
relay_bucket_load_source(const relay_store_source_t *row, void *arg)
{
    relay_bucket_t  *b;
    relay_source_t  *s;

    b = arg;

    s = relay_bucket_source(b, &row->id, 1);
    if (s == NULL) {
        errno = ENOMEM;
        return -1;
    }

    s->c.max_sseq = row->max_sseq;
    s->c.records = row->records;
    s->c.bytes = row->bytes;
    s->c.duplicates = row->duplicates;
    s->c.last_ms = row->last_ms;
    s->committed = 1;

    return 0;
}


static int
relay_bucket_load_consumer(const relay_store_consumer_t *row, void *arg)
{
    relay_bucket_t    *b;
    relay_consumer_t  *c;

    b = arg;

    if (!rf_valid_name(row->name, strlen(row->name))) {
        return 0;
    }

    c = relay_bucket_consumer(b, row->name, 1);
    if (c == NULL) {
        errno = ENOMEM;
        return -1;
    }

    c->cursor = row->cursor;
    c->declared = row->declared;
    c->last_ms = row->last_ms;
    c->dirty = 0;

    return 0;
}


int
relay_bucket_txn_begin(relay_bucket_t *b, relay_txn_t *tx, uint64_t frames)
{
    int  any;

    if (relay_bucket_wal_room(b, frames) != 0) {
        return -1;
    }

    memset(tx, 0, sizeof(relay_txn_t));

    tx->gen = ++b->txn_gen;
    tx->now_ms = relay_bucket_now_ms();

    pthread_mutex_lock(&b->lock);

    tx->snap = b->meta;
    tx->next_seq = b->meta.last_seq;

    /* no consumer at all: every record is unread */
    tx->unread = relay_bucket_min_cursor(b, 0, &any);

    pthread_mutex_unlock(&b->lock);

    return relay_store_begin(b->store);
}


int
relay_bucket_txn_commit(relay_bucket_t *b, relay_txn_t *tx)
{
    int           err;
    relay_meta_t  target;

    tx->d.last_seq = tx->next_seq - tx->snap.last_seq;

    target = tx->snap;
    relay_meta_add(&target, &tx->d);

    if (relay_store_write_meta(b->store, &target, &b->saved) != 0
        || relay_store_commit(b->store) != 0)
    {
        err = errno;
        relay_store_rollback(b->store);
        errno = err;
        return -1;
    }

    b->saved = target;

    relay_bucket_applied(b, tx);

    return 0;
}


/* after COMMIT: the pending state becomes the committed one */

static void
relay_bucket_applied(relay_bucket_t *b, relay_txn_t *tx)
{
    int                rc;
    size_t             i;
    uint64_t           first, ms, db, wal, pages, used;
    relay_source_t    *s;
    relay_consumer_t  *c;

    rc = -1;
    first = 0;
    ms = 0;

    if (tx->deleted || (b->first_seq == 0 && tx->d.last_seq != 0)) {
        rc = relay_store_first(b->store, &first, &ms);
    }

    if (rf_sqlite_file_sizes(b->path, &db, &wal) != 0) {
        db = 0;
        wal = 0;
    }

    pthread_mutex_lock(&b->lock);

    relay_meta_add(&b->meta, &tx->d);

    for (s = tx->sources; s != NULL; s = s->txn_next) {
        s->c = s->p;
        s->committed = 1;
    }

    for (i = 0; tx->acked && i < b->nconsumers; i++) {
        c = b->consumers[i];

        if (c->txn_gen == tx->gen && c->pend_cursor > c->cursor) {
            c->cursor = c->pend_cursor;
        }
    }

    if (rc != -1) {
        b->first_seq = rc ? first : 0;
        b->oldest_ms = rc ? ms : 0;
    }

    if (tx->d.last_seq != 0) {
        pthread_cond_broadcast(&b->commit_cond);
    }

    pthread_mutex_unlock(&b->lock);

    if (relay_store_pages(b->store, &pages, &used) == 0) {
        b->ratio = rf_sqlite_learn_ratio(&b->cap, used, b->saved.bytes,
                                         b->ratio);
    }

    /* only after the cap was lowered under what the file held */

    if (db + wal > b->cap.cap) {
        if (!b->over_cap) {
            log_warnx("bucket \"%s\": files take %" PRIu64 " bytes, over "
                      "the cap of %" PRIu64 ", shrinking", b->conf->name,
                      db + wal, b->cap.cap);
            b->over_cap = 1;
        }

        (void) relay_store_checkpoint(b->store, RELAY_CKPT_TRUNCATE);

    } else if (b->over_cap) {
        log_info("bucket \"%s\": back under the cap, %" PRIu64 " bytes",
                 b->conf->name, db + wal);
        b->over_cap = 0;
    }
}


/*
 * The frames a transaction may write must fit in the WAL share, else
 * everything in it goes back into the database first and the transaction
 * writes the WAL from its start (RESTART: the file keeps its size, which
 * saves allocating it anew every time).  A reader in the middle of its
 * snapshot makes that wait, for a short read at most.
 */

static int
relay_bucket_wal_room(relay_bucket_t *b, uint64_t frames)
{
    int  i;

    if (frames > b->cap.txn_frames) {
        frames = b->cap.txn_frames;
    }

    if (relay_store_wal_frames(b->store) + frames <= b->cap.txn_frames) {
        return 0;
    }

    for (i = 0; i < RELAY_CKPT_TRIES; i++) {
        if (relay_store_checkpoint(b->store, RELAY_CKPT_RESTART) == 0) {
            return 0;
        }

        if (errno != EBUSY) {
            return -1;
        }
    }

    log_warnx("bucket \"%s\": readers keep the WAL from being "
              "checkpointed; the write fails", b->conf->name);

    errno = EIO;

    return -1;
}


void
relay_meta_add(relay_meta_t *a, const relay_meta_t *d)
{
    int              i;
    uint64_t        *pa;
    const uint64_t  *pd;

    /* every field is a uint64_t (relay_store.c asserts it) */

    pa = (uint64_t *) a;
    pd = (const uint64_t *) d;

    for (i = 0; i < RELAY_META_FIELDS; i++) {
        pa[i] += pd[i];
    }
}


uint64_t
relay_bucket_mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}
