/*
 * Copyright (C) ReplayForge contributors
 *
 * What a bucket's writer thread does besides appends and acks: the tick's
 * retention (ttl, records acked by every declared consumer, a file over a
 * lowered cap), each in transactions small enough for the WAL share; the
 * counters and last-seen times no transaction carried yet; and a new
 * configuration's declared consumers.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_log.h"
#include "relay_bucket_int.h"


#define RELAY_RETAIN_MS         250     /* retention's time per tick */
#define RELAY_SHRINK_STEPS      64


static int relay_bucket_retain(relay_bucket_t *b, uint64_t upto,
    uint64_t before, int ttl, uint64_t deadline);
static int relay_bucket_shrink(relay_bucket_t *b, uint64_t deadline);


void
relay_bucket_do_tick(relay_bucket_t *b, relay_job_t *job)
{
    int       any;
    uint64_t  deadline, ttl, upto;

    deadline = relay_bucket_mono_ms() + RELAY_RETAIN_MS;
    job->rc = 0;

    ttl = b->conf->ttl;

    if (ttl > 0 && job->now_ms > ttl
        && relay_bucket_retain(b, UINT64_MAX, job->now_ms - ttl, 1, deadline)
           != 0)
    {
        job->rc = -1;
    }

    /* records acked by every declared consumer */

    pthread_mutex_lock(&b->lock);
    upto = relay_bucket_min_cursor(b, 1, &any);
    pthread_mutex_unlock(&b->lock);

    if (any && upto > 0
        && relay_bucket_retain(b, upto, UINT64_MAX, 0, deadline) != 0)
    {
        job->rc = -1;
    }

    if (relay_bucket_shrink(b, deadline) != 0
        || relay_bucket_flush(b) != 0)
    {
        job->rc = -1;
    }

    /* nothing came since the last tick: give the WAL back */

    if (b->appends == 0 && relay_store_wal_frames(b->store) > 0) {
        (void) relay_store_checkpoint(b->store, RELAY_CKPT_TRUNCATE);
    }

    b->appends = 0;

    if (job->rc != 0) {
        job->err = EIO;
    }
}


/*
 * Delete, in transactions of relay_bucket_chunk() records at most, the
 * records with seq <= upto stored before "before", until deadline.
 */

static int
relay_bucket_retain(relay_bucket_t *b, uint64_t upto, uint64_t before,
    int ttl, uint64_t deadline)
{
    int                rc;
    uint64_t           first, ms, below;
    relay_txn_t        tx;
    relay_store_del_t  del;

    for ( ;; ) {
        rc = relay_store_first(b->store, &first, &ms);
        if (rc != 1) {
            return rc;
        }

        if (first > upto || ms >= before) {
            return 0;
        }

        below = first + relay_bucket_chunk(b);

        if (upto < below - 1) {
            below = upto + 1;
        }

        if (relay_bucket_txn_begin(b, &tx, b->cap.txn_frames / 2
                                           + RELAY_SMALL_FRAMES)
            != 0)
        {
            return -1;
        }

        memset(&del, 0, sizeof(relay_store_del_t));

        if (relay_store_delete(b->store, below, before, tx.unread, &del)
            != 0)
        {
            relay_store_rollback(b->store);
            return -1;
        }

        tx.d.records -= del.n;
        tx.d.bytes -= del.bytes;
        tx.d.dropped_unread += del.unread;
        tx.deleted = 1;

        if (ttl) {
            tx.d.dropped_ttl += del.n;

        } else {
            tx.d.deleted_acked += del.n;
        }

        if (relay_bucket_txn_commit(b, &tx) != 0) {
            return -1;
        }

        if (del.n == 0 || relay_bucket_mono_ms() >= deadline) {
            return 0;
        }
    }
}


/*
 * A file larger than the data share (the cap was lowered): the cap wins
 * over either policy; the oldest records go and the pages go back.
 */

static int
relay_bucket_shrink(relay_bucket_t *b, uint64_t deadline)
{
    int           i, vacuum;
    uint64_t      pages, used;
    relay_txn_t   tx;
    relay_meta_t  jd;

    for (i = 0; i < RELAY_SHRINK_STEPS; i++) {
        if (relay_store_pages(b->store, &pages, &used) != 0) {
            return -1;
        }

        vacuum = relay_store_can_vacuum(b->store)
                 && pages > b->cap.data_pages + b->cap.slack_pages;

        if (used <= b->cap.data_pages && !vacuum) {
            return 0;
        }

        if (relay_bucket_txn_begin(b, &tx, b->cap.txn_frames / 2
                                           + RELAY_SMALL_FRAMES
                                           + 3 * b->cap.vacuum_pages)
            != 0)
        {
            return -1;
        }

        memset(&jd, 0, sizeof(relay_meta_t));

        if (relay_bucket_make_room(b, &tx, &jd, 0, relay_bucket_chunk(b))
            != 0
            || (vacuum
                && relay_store_vacuum(b->store, b->cap.vacuum_pages) != 0))
        {
            relay_store_rollback(b->store);
            return -1;
        }

        relay_meta_add(&tx.d, &jd);

        if (relay_bucket_txn_commit(b, &tx) != 0) {
            return -1;
        }

        if (relay_bucket_mono_ms() >= deadline) {
            return 0;
        }
    }

    return 0;
}


/* counters no transaction carried yet (out_*), consumers' last seen */

int
relay_bucket_flush(relay_bucket_t *b)
{
    size_t                   i, n;
    relay_txn_t              tx;
    relay_consumer_t        *c;
    relay_store_consumer_t  *rows;

    pthread_mutex_lock(&b->lock);

    rows = NULL;
    n = 0;

    if (b->nconsumers > 0) {
        rows = malloc(b->nconsumers * sizeof(relay_store_consumer_t));
    }

    for (i = 0; rows != NULL && i < b->nconsumers; i++) {
        c = b->consumers[i];

        if (!c->dirty) {
            continue;
        }

        c->dirty = 0;
        rows[n].name = c->name;
        rows[n].cursor = c->cursor;
        rows[n].declared = c->declared;
        rows[n].last_ms = c->last_ms;
        n++;
    }

    i = memcmp(&b->meta, &b->saved, sizeof(relay_meta_t));

    pthread_mutex_unlock(&b->lock);

    if (n == 0 && i == 0) {
        free(rows);
        return 0;
    }

    if (relay_bucket_txn_begin(b, &tx, RELAY_SMALL_FRAMES) != 0) {
        free(rows);
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (relay_store_put_consumer(b->store, &rows[i]) != 0) {
            relay_store_rollback(b->store);
            free(rows);
            return -1;
        }
    }

    free(rows);

    return relay_bucket_txn_commit(b, &tx);
}


void
relay_bucket_do_conf(relay_bucket_t *b, relay_job_t *job)
{
    relay_bucket_conf_t  *old;

    pthread_mutex_lock(&b->lock);
    old = b->conf;
    __atomic_store_n(&b->conf, job->conf, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&b->lock);

    if (relay_bucket_declare(b, job->conf) != 0
        || relay_bucket_apply_limits(b) != 0)
    {
        job->rc = -1;
        job->err = errno;

        pthread_mutex_lock(&b->lock);
        __atomic_store_n(&b->conf, old, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&b->lock);

        (void) relay_bucket_apply_limits(b);
        return;
    }

    job->rc = 0;
}


/* the consumers conf declares are declared, and the others are not */

int
relay_bucket_declare(relay_bucket_t *b, const relay_bucket_conf_t *conf)
{
    int                      want;
    size_t                   i, k, n;
    relay_txn_t              tx;
    relay_consumer_t        *c;
    relay_store_consumer_t  *rows;

    pthread_mutex_lock(&b->lock);

    for (i = 0; i < conf->nconsumers; i++) {
        if (relay_bucket_consumer(b, conf->consumers[i], 1) == NULL) {
            pthread_mutex_unlock(&b->lock);
            errno = ENOMEM;
            return -1;
        }
    }

    rows = malloc(b->nconsumers * sizeof(relay_store_consumer_t));
    if (rows == NULL) {
        pthread_mutex_unlock(&b->lock);
        errno = ENOMEM;
        return -1;
    }

    n = 0;

    for (i = 0; i < b->nconsumers; i++) {
        c = b->consumers[i];
        want = 0;

        for (k = 0; k < conf->nconsumers; k++) {
            if (strcmp(conf->consumers[k], c->name) == 0) {
                want = 1;
                break;
            }
        }

        if (want == c->declared && !c->dirty) {
            continue;
        }

        c->declared = want;
        c->dirty = 0;
        rows[n].name = c->name;
        rows[n].cursor = c->cursor;
        rows[n].declared = want;
        rows[n].last_ms = c->last_ms;
        n++;
    }

    pthread_mutex_unlock(&b->lock);

    if (n == 0) {
        free(rows);
        return 0;
    }

    if (relay_bucket_txn_begin(b, &tx, RELAY_SMALL_FRAMES) != 0) {
        free(rows);
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (relay_store_put_consumer(b->store, &rows[i]) != 0) {
            relay_store_rollback(b->store);
            free(rows);
            return -1;
        }
    }

    free(rows);

    return relay_bucket_txn_commit(b, &tx);
}
