/*
 * Copyright (C) ReplayForge contributors
 *
 * The forwarder's thread and its batches.  It takes records in sequence
 * order from its own read-only connection, groups a run of one bucket
 * into a batch (bounded by count, bytes, and the linger time a trickle
 * gets to fill it), waits for the rate limits' tokens, and has
 * spool_forward_send.c send it.  One batch is in flight at a time: the
 * relay drops a record whose sequence is not above the highest it has
 * from this source, so order must hold.  What the relay acknowledged is
 * queued for the main thread, the buffer's only writer, to delete.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rf_log.h"
#include "spool_forward_int.h"


#define SPOOL_FWD_RATE_SLICES   10      /* a limited batch: 1/10 s worth */


static void *spool_fwd_thread(void *arg);
static int spool_fwd_open(spool_fwd_t *f);
static void spool_fwd_close(spool_fwd_t *f);
static void spool_fwd_step(spool_fwd_t *f);
static void spool_fwd_new_batch(spool_fwd_t *f);
static int spool_fwd_fill(spool_fwd_t *f);
static int spool_fwd_take(uint64_t sseq, const rf_str_t *bucket,
    const unsigned char *data, size_t len, void *arg);
static void spool_fwd_push_ack(spool_fwd_t *f, uint64_t upto,
    int rejected);
static void spool_fwd_wait(spool_fwd_t *f, uint64_t deadline, int records,
    uint64_t seen);
static int spool_fwd_stopped(spool_fwd_t *f);


spool_fwd_t *
spool_fwd_create(void)
{
    spool_fwd_t         *f;
    pthread_condattr_t   attr;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        errno = ENOMEM;
        return NULL;
    }

    f = calloc(1, sizeof(spool_fwd_t));
    if (f == NULL) {
        return NULL;
    }

    /* waits are on the monotonic clock, like every deadline here */

    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f);
        errno = ENOMEM;
        return NULL;
    }

    if (pthread_condattr_init(&attr) != 0
        || pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0
        || pthread_cond_init(&f->cond, &attr) != 0)
    {
        (void) pthread_mutex_destroy(&f->lock);
        free(f);
        errno = ENOMEM;
        return NULL;
    }

    (void) pthread_condattr_destroy(&attr);

    rf_buf_init(&f->batch.data);
    rf_buf_init(&f->batch.bucket);
    rf_buf_init(&f->zbuf);
    rf_buf_init(&f->text);

    return f;
}


void
spool_fwd_destroy(spool_fwd_t *f)
{
    if (f == NULL) {
        return;
    }

    spool_fwd_stop(f);

    rf_buf_free(&f->batch.data);
    rf_buf_free(&f->batch.bucket);
    rf_buf_free(&f->zbuf);
    rf_buf_free(&f->text);

    (void) pthread_cond_destroy(&f->cond);
    (void) pthread_mutex_destroy(&f->lock);

    free(f);

    curl_global_cleanup();
}


int
spool_fwd_start(spool_fwd_t *f, const spoold_conf_t *conf)
{
    int       rc;
    uint64_t  now;
    sigset_t  all, old;

    if (f->running || conf->relay == NULL) {
        errno = EINVAL;
        return -1;
    }

    if (spoold_conf_dup(&f->conf, conf) != 0) {
        return -1;
    }

    now = rf_now_ns();

    rf_ratelimit_init(&f->rl_n, (double) conf->rate, 0, now);
    rf_ratelimit_init(&f->rl_bytes, (double) conf->rate_bytes, 0, now);

    f->cursor = __atomic_load_n(&f->acked, __ATOMIC_ACQUIRE);
    f->retry_at = 0;
    f->backoff = 0;
    f->relay_max = 0;
    f->failing = 0;
    f->hb_next = now;
    f->hb_ns = now;
    f->hb_records = f->sent_records;
    f->rng = now ^ ((uint64_t) getpid() << 32) ^ (uintptr_t) f;

    spool_fwd_new_batch(f);

    if (gethostname(f->host, sizeof(f->host)) != 0) {
        snprintf(f->host, sizeof(f->host), "unknown");
    }

    f->host[sizeof(f->host) - 1] = '\0';

    __atomic_store_n(&f->stop, 0, __ATOMIC_RELEASE);

    /* signals are the main thread's business */

    sigfillset(&all);
    (void) pthread_sigmask(SIG_BLOCK, &all, &old);

    rc = pthread_create(&f->thread, NULL, spool_fwd_thread, f);

    (void) pthread_sigmask(SIG_SETMASK, &old, NULL);

    if (rc != 0) {
        spoold_conf_free(&f->conf);
        errno = rc;
        return -1;
    }

    f->running = 1;

    return 0;
}


void
spool_fwd_stop(spool_fwd_t *f)
{
    if (!f->running) {
        return;
    }

    pthread_mutex_lock(&f->lock);

    __atomic_store_n(&f->stop, 1, __ATOMIC_RELEASE);

    if (f->http_live) {
        rf_http_wakeup(&f->http);
    }

    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);

    (void) pthread_join(f->thread, NULL);

    f->running = 0;
    spoold_conf_free(&f->conf);
}


int
spool_fwd_running(spool_fwd_t *f)
{
    return f->running;
}


void
spool_fwd_notify(spool_fwd_t *f, uint64_t stored)
{
    if (__atomic_load_n(&f->stored, __ATOMIC_RELAXED) == stored) {
        return;
    }

    pthread_mutex_lock(&f->lock);
    __atomic_store_n(&f->stored, stored, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->lock);
}


void
spool_fwd_publish(spool_fwd_t *f, const spool_meta_t *m,
    const rf_ring_stats_t *rs)
{
    pthread_mutex_lock(&f->lock);

    f->meta = *m;
    f->ring_attached = (rs != NULL);

    if (rs != NULL) {
        f->ring = *rs;
    }

    pthread_mutex_unlock(&f->lock);
}


int
spool_fwd_acked(spool_fwd_t *f, uint64_t *upto, int *rejected)
{
    int  rc;

    if (__atomic_load_n(&f->acked, __ATOMIC_ACQUIRE) == f->applied) {
        return 0;
    }

    pthread_mutex_lock(&f->lock);

    rc = (f->nacks > 0);

    if (rc) {
        *upto = f->acks[0].upto;
        *rejected = f->acks[0].rejected;
    }

    pthread_mutex_unlock(&f->lock);

    return rc;
}


void
spool_fwd_applied(spool_fwd_t *f, uint64_t upto, int rejected)
{
    pthread_mutex_lock(&f->lock);

    /* the forwarder may have moved this entry on meanwhile: keep it then */

    if (f->nacks > 0 && f->acks[0].upto == upto
        && f->acks[0].rejected == rejected)
    {
        f->nacks--;
        memmove(&f->acks[0], &f->acks[1],
                f->nacks * sizeof(spool_fwd_ack_t));

        if (f->nacks == 0) {
            f->applied = upto;
        }

        pthread_cond_broadcast(&f->cond);
    }

    pthread_mutex_unlock(&f->lock);
}


static void *
spool_fwd_thread(void *arg)
{
    spool_fwd_t  *f;

    f = arg;

    log_info("forwarding to %s: batches of %" PRId64 " records or %" PRIu64
             " bytes, linger %" PRIu64 "ms, rate %" PRIu64 " records/s, %"
             PRIu64 " bytes/s (0: unlimited), resuming after sequence %"
             PRIu64, f->conf.relay, f->conf.forward_batch,
             f->conf.forward_batch_bytes, f->conf.forward_linger,
             f->conf.rate, f->conf.rate_bytes, f->cursor);

    while (!spool_fwd_stopped(f)) {
        if (f->store == NULL && spool_fwd_open(f) != 0) {
            spool_fwd_wait(f, rf_now_ns() + SPOOL_FWD_REOPEN, 0, 0);
            continue;
        }

        spool_fwd_step(f);
    }

    spool_fwd_close(f);

    log_info("forwarding to %s stopped, acknowledged up to sequence %"
             PRIu64, f->conf.relay, f->cursor);

    return NULL;
}


static int
spool_fwd_open(spool_fwd_t *f)
{
    char  err[4096];

    if (spool_store_open(&f->store, f->conf.buffer, 1, 0, err, sizeof(err))
        != 0)
    {
        log_warnx("forwarder: %s", err);
        return -1;
    }

    f->zctx = ZSTD_createCCtx();

    if (f->zctx == NULL
        || rf_http_init(&f->http, SPOOLD_NAME "/" SPOOLD_VERSION, &f->stop,
                        err, sizeof(err)) != 0)
    {
        log_warnx("forwarder: %s", f->zctx ? err : "no memory for zstd");
        spool_fwd_close(f);
        return -1;
    }

    /* only errors are read of an answer: the rest is cut */

    f->http.body_max = SPOOL_FWD_BODY_MAX;
    f->http.body_cut = 1;

    pthread_mutex_lock(&f->lock);
    f->http_live = 1;
    pthread_mutex_unlock(&f->lock);

    return 0;
}


static void
spool_fwd_close(spool_fwd_t *f)
{
    pthread_mutex_lock(&f->lock);

    if (f->http_live) {
        f->http_live = 0;
        rf_http_free(&f->http);
    }

    pthread_mutex_unlock(&f->lock);

    if (f->zctx != NULL) {
        ZSTD_freeCCtx(f->zctx);
        f->zctx = NULL;
    }

    spool_store_close(f->store);
    f->store = NULL;
}


/*
 * One decision: a heartbeat when due, else the batch one step further
 * (read, linger, wait for tokens, send), or a wait.
 */

static void
spool_fwd_step(spool_fwd_t *f)
{
    uint64_t            now, seen, until, w;
    spool_fwd_batch_t  *bt;

    now = rf_now_ns();
    bt = &f->batch;

    if (now >= f->hb_next) {
        spool_fwd_heartbeat(f, now);
        f->hb_next = rf_now_ns() + f->conf.heartbeat * 1000000;
        return;
    }

    if (now < f->retry_at) {
        spool_fwd_wait(f, f->retry_at < f->hb_next ? f->retry_at : f->hb_next,
                       0, 0);
        return;
    }

    if (bt->reread) {

        /* a retry: what is in the buffer now, within the same limits */

        rf_buf_reset(&bt->data);
        bt->n = 0;
        bt->full = 0;

        if (spool_fwd_fill(f) != 0) {
            f->retry_at = now + SPOOL_FWD_REOPEN;
            return;
        }

        bt->reread = 0;
        bt->sealed = 1;

        if (bt->n == 0) {
            spool_fwd_new_batch(f);     /* the cap dropped all of it */
            return;
        }
    }

    if (!bt->sealed) {
        seen = __atomic_load_n(&f->stored, __ATOMIC_ACQUIRE);

        if (!bt->full && spool_fwd_fill(f) != 0) {
            f->retry_at = now + SPOOL_FWD_REOPEN;
            return;
        }

        if (bt->n == 0) {
            spool_fwd_wait(f, f->hb_next, 1, seen);
            return;
        }

        /* a trickle: wait a little for the batch to fill */

        until = bt->started + f->conf.forward_linger * 1000000;

        if (!bt->full && now < until) {
            spool_fwd_wait(f, until < f->hb_next ? until : f->hb_next, 1,
                           seen);
            return;
        }

        bt->sealed = 1;
    }

    /* a limited forwarder sends a tenth of a second's worth, when due */

    if (!bt->paid_n) {
        w = rf_ratelimit_take(&f->rl_n, (double) bt->n, now);
        if (w != 0) {
            spool_fwd_wait(f, now + w < f->hb_next ? now + w : f->hb_next, 0,
                           0);
            return;
        }

        bt->paid_n = 1;
    }

    if (!bt->paid_bytes) {
        w = rf_ratelimit_take(&f->rl_bytes, (double) bt->data.len, now);
        if (w != 0) {
            spool_fwd_wait(f, now + w < f->hb_next ? now + w : f->hb_next, 0,
                           0);
            return;
        }

        bt->paid_bytes = 1;
    }

    spool_fwd_send(f);
}


static void
spool_fwd_new_batch(spool_fwd_t *f)
{
    uint64_t            slice;
    spool_fwd_batch_t  *bt;

    bt = &f->batch;

    /* a batch of a huge record is not kept around */

    if (bt->data.cap > 2 * f->conf.forward_batch_bytes) {
        rf_buf_free(&bt->data);
    }

    rf_buf_reset(&bt->data);

    bt->n = 0;
    bt->first = 0;
    bt->last = 0;
    bt->full = 0;
    bt->sealed = 0;
    bt->paid_n = 0;
    bt->paid_bytes = 0;
    bt->reread = 0;

    bt->max_n = (uint64_t) f->conf.forward_batch;
    bt->max_bytes = f->conf.forward_batch_bytes;

    if (f->conf.rate) {
        slice = f->conf.rate / SPOOL_FWD_RATE_SLICES;
        slice = slice ? slice : 1;
        bt->max_n = slice < bt->max_n ? slice : bt->max_n;
    }

    if (f->conf.rate_bytes) {
        slice = f->conf.rate_bytes / SPOOL_FWD_RATE_SLICES;
        bt->max_bytes = slice < bt->max_bytes ? slice : bt->max_bytes;
    }

    if (f->relay_max && f->relay_max < bt->max_bytes) {
        bt->max_bytes = f->relay_max;
    }
}


/* more records into the batch: in order, of its bucket, within limits */

static int
spool_fwd_fill(spool_fwd_t *f)
{
    int                 rc;
    uint64_t            after, want;
    spool_fwd_batch_t  *bt;

    bt = &f->batch;

    after = bt->n ? bt->last : f->cursor;

    /* one more than fits, to see whether the batch is full */
    want = bt->max_n - bt->n + 1;

    rc = spool_store_batch(f->store, after, want, spool_fwd_take, f);

    if (rc < 0) {
        log_warnx("forwarder: cannot read the buffer, trying again in a "
                  "second");
        return -1;
    }

    return 0;
}


static int
spool_fwd_take(uint64_t sseq, const rf_str_t *bucket,
    const unsigned char *data, size_t len, void *arg)
{
    spool_fwd_t        *f;
    spool_fwd_batch_t  *bt;

    f = arg;
    bt = &f->batch;

    if (bt->n > 0) {
        if (bucket->len != bt->bucket.len
            || memcmp(bucket->data, bt->bucket.data, bucket->len) != 0
            || bt->n >= bt->max_n
            || bt->data.len + len > bt->max_bytes)
        {
            bt->full = 1;
            return 1;
        }

    } else {
        rf_buf_reset(&bt->bucket);

        if (rf_buf_add(&bt->bucket, bucket->data, bucket->len) != 0) {
            return -1;
        }

        bt->first = sseq;
        bt->started = rf_now_ns();
    }

    /* the first record goes in whatever its size */

    if (rf_buf_add(&bt->data, data, len) != 0) {
        return -1;
    }

    bt->n++;
    bt->last = sseq;

    if (bt->n >= bt->max_n || bt->data.len >= bt->max_bytes) {
        bt->full = 1;
    }

    return 0;
}


/* the relay has the batch (or refused it for good): the next one */

void
spool_fwd_done(spool_fwd_t *f, int rejected)
{
    spool_fwd_batch_t  *bt;

    bt = &f->batch;

    if (!rejected) {
        f->sent_records += bt->n;
        f->sent_bytes += bt->data.len;

        log_debug("relay %s took %" PRIu64 " records (%zu bytes, %zu "
                  "compressed) of bucket \"%.*s\", sequences %" PRIu64
                  " to %" PRIu64, f->conf.relay, bt->n, bt->data.len,
                  f->zbuf.len, (int) bt->bucket.len, bt->bucket.data,
                  bt->first, bt->last);
    }

    if (f->failing) {
        log_info("relay %s: forwarding again", f->conf.relay);
        f->failing = 0;
    }

    f->cursor = bt->last;
    f->backoff = 0;

    spool_fwd_push_ack(f, bt->last, rejected);
    spool_fwd_new_batch(f);
}


static void
spool_fwd_push_ack(spool_fwd_t *f, uint64_t upto, int rejected)
{
    spool_fwd_ack_t  *last;

    pthread_mutex_lock(&f->lock);

    /* acknowledgements of one kind in a row are one deletion */

    last = f->nacks ? &f->acks[f->nacks - 1] : NULL;

    while (!(last != NULL && !last->rejected && !rejected)
           && f->nacks == SPOOL_FWD_ACKS
           && !__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE))
    {
        pthread_cond_wait(&f->cond, &f->lock);
        last = f->nacks ? &f->acks[f->nacks - 1] : NULL;
    }

    if (last != NULL && !last->rejected && !rejected) {
        last->upto = upto;

    } else if (f->nacks < SPOOL_FWD_ACKS) {
        f->acks[f->nacks].upto = upto;
        f->acks[f->nacks].rejected = rejected;
        f->nacks++;

    } else {
        /* stopping: it is sent again after a restart, a duplicate */
        pthread_mutex_unlock(&f->lock);
        return;
    }

    __atomic_store_n(&f->acked, upto, __ATOMIC_RELEASE);

    pthread_mutex_unlock(&f->lock);
}


/*
 * Until deadline (monotonic ns), a stop, or (records) the main thread
 * storing records past seen.
 */

static void
spool_fwd_wait(spool_fwd_t *f, uint64_t deadline, int records,
    uint64_t seen)
{
    struct timespec  ts;

    ts.tv_sec = deadline / 1000000000;
    ts.tv_nsec = deadline % 1000000000;

    pthread_mutex_lock(&f->lock);

    while (!__atomic_load_n(&f->stop, __ATOMIC_ACQUIRE)
           && !(records && __atomic_load_n(&f->stored, __ATOMIC_ACQUIRE)
                           != seen)
           && rf_now_ns() < deadline)
    {
        if (pthread_cond_timedwait(&f->cond, &f->lock, &ts) == ETIMEDOUT) {
            break;
        }
    }

    pthread_mutex_unlock(&f->lock);
}


static int
spool_fwd_stopped(spool_fwd_t *f)
{
    return __atomic_load_n(&f->stop, __ATOMIC_ACQUIRE);
}
