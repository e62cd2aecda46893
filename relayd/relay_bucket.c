/*
 * Copyright (C) ReplayForge contributors
 *
 * A bucket's API (see relay_bucket.h): everything that changes the file
 * becomes a job on the writer thread's queue (relay_bucket_writer.c) and
 * waits for the commit that holds it; reads take a connection of their
 * own from a small pool and run beside the writer under WAL; long polls
 * sleep on a condition the writer signals after every commit.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rf_log.h"
#include "relay_bucket_int.h"


static int relay_bucket_conf_copy(relay_bucket_conf_t *dst,
    const relay_bucket_conf_t *src, char *err, size_t errlen);
static void relay_bucket_conf_free(relay_bucket_conf_t *c);
static void relay_bucket_free(relay_bucket_t *b);
static int relay_bucket_run(relay_bucket_t *b, relay_job_t *job);
static int relay_bucket_take_reader(relay_bucket_t *b, relay_store_t **st);
static void relay_bucket_leave(relay_bucket_t *b);
static void relay_bucket_deadline(struct timespec *ts, uint64_t wait_ms);


int
relay_bucket_open(relay_bucket_t **bp, const relay_bucket_conf_t *conf,
    const char *dir, char *err, size_t errlen)
{
    int                 rc;
    size_t              i, len;
    relay_bucket_t     *b;
    pthread_condattr_t  attr;

    *bp = NULL;

    b = calloc(1, sizeof(relay_bucket_t));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    b->tail = &b->head;
    b->ratio = RF_SQLITE_RATIO_START;

    /* long polls wait on the monotonic clock */

    if (pthread_mutex_init(&b->lock, NULL) != 0
        || pthread_condattr_init(&attr) != 0)
    {
        snprintf(err, errlen, "cannot create the bucket's locks");
        free(b);
        return -1;
    }

    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);

    if (rc != 0
        || pthread_cond_init(&b->commit_cond, &attr) != 0
        || pthread_cond_init(&b->work_cond, NULL) != 0
        || pthread_cond_init(&b->done_cond, NULL) != 0
        || pthread_cond_init(&b->pool_cond, NULL) != 0)
    {
        /* initialising a condition does not fail on Linux */
        (void) pthread_condattr_destroy(&attr);
        snprintf(err, errlen, "cannot create the bucket's conditions");
        (void) pthread_mutex_destroy(&b->lock);
        free(b);
        return -1;
    }

    (void) pthread_condattr_destroy(&attr);

    b->confs = calloc(1, sizeof(relay_conf_node_t));
    if (b->confs == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    if (relay_bucket_conf_copy(&b->confs->conf, conf, err, errlen) != 0) {
        goto failed;
    }

    b->conf = &b->confs->conf;

    len = strlen(dir) + strlen(conf->name) + sizeof("/.db");

    b->path = malloc(len);
    if (b->path == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    snprintf(b->path, len, "%s/%s.db", dir, conf->name);

    if (relay_store_open(&b->store, b->path, 0,
                         rf_sqlite_page_size(conf->max_size), err, errlen)
        != 0)
    {
        goto failed;
    }

    if (relay_bucket_load(b, err, errlen) != 0) {
        goto failed;
    }

    for (i = 0; i < RELAY_READERS; i++) {
        if (relay_store_open(&b->readers[i], b->path, 1, 0, err, errlen)
            != 0)
        {
            goto failed;
        }
    }

    b->nfree = RELAY_READERS;

    if (pthread_create(&b->writer, NULL, relay_bucket_writer, b) != 0) {
        snprintf(err, errlen, "bucket \"%s\": cannot start its writer",
                 conf->name);
        goto failed;
    }

    b->writer_started = 1;

    log_debug("bucket \"%s\": %s, %" PRIu64 " records, last seq %" PRIu64,
              conf->name, b->path, b->meta.records, b->meta.last_seq);

    *bp = b;

    return 0;

failed:

    relay_bucket_free(b);

    return -1;
}


void
relay_bucket_close(relay_bucket_t *b)
{
    if (b == NULL) {
        return;
    }

    pthread_mutex_lock(&b->lock);

    b->closing = 1;

    pthread_cond_broadcast(&b->work_cond);
    pthread_cond_broadcast(&b->commit_cond);
    pthread_cond_broadcast(&b->pool_cond);

    pthread_mutex_unlock(&b->lock);

    /* the writer commits what is queued before it leaves */

    if (b->writer_started) {
        (void) pthread_join(b->writer, NULL);
        b->writer_started = 0;
    }

    /* threads that were woken still hold the lock or wait for it */

    pthread_mutex_lock(&b->lock);

    while (b->users > 0) {
        pthread_cond_wait(&b->pool_cond, &b->lock);
    }

    pthread_mutex_unlock(&b->lock);

    relay_bucket_free(b);
}


static void
relay_bucket_free(relay_bucket_t *b)
{
    size_t              i;
    relay_conf_node_t  *node, *next;

    /* the readers first: the writer's close is the last, it checkpoints */

    for (i = 0; i < RELAY_READERS; i++) {
        relay_store_close(b->readers[i]);
    }

    relay_store_close(b->store);

    relay_bucket_sources_free(b);

    for (i = 0; i < b->nconsumers; i++) {
        free(b->consumers[i]);
    }

    free(b->consumers);

    for (node = b->confs; node != NULL; node = next) {
        next = node->next;
        relay_bucket_conf_free(&node->conf);
        free(node);
    }

    free(b->path);

    (void) pthread_cond_destroy(&b->work_cond);
    (void) pthread_cond_destroy(&b->done_cond);
    (void) pthread_cond_destroy(&b->commit_cond);
    (void) pthread_cond_destroy(&b->pool_cond);
    (void) pthread_mutex_destroy(&b->lock);

    free(b);
}


int
relay_bucket_reconfigure(relay_bucket_t *b, const relay_bucket_conf_t *conf,
    char *err, size_t errlen)
{
    relay_job_t         job;
    relay_conf_node_t  *node;

    if (strcmp(conf->name, b->conf->name) != 0) {
        snprintf(err, errlen, "bucket \"%s\" cannot be renamed to \"%s\"",
                 b->conf->name, conf->name);
        return -1;
    }

    node = calloc(1, sizeof(relay_conf_node_t));
    if (node == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (relay_bucket_conf_copy(&node->conf, conf, err, errlen) != 0) {
        free(node);
        return -1;
    }

    memset(&job, 0, sizeof(relay_job_t));
    job.type = RELAY_JOB_CONF;
    job.conf = &node->conf;

    if (relay_bucket_run(b, &job) != 0) {
        snprintf(err, errlen, "bucket \"%s\": cannot apply the new "
                 "configuration: %s", conf->name, strerror(errno));
        relay_bucket_conf_free(&node->conf);
        free(node);
        return -1;
    }

    /*
     * The old conf stays until close: connection threads may still read
     * its token.
     */

    pthread_mutex_lock(&b->lock);
    node->next = b->confs;
    b->confs = node;
    pthread_mutex_unlock(&b->lock);

    return 0;
}


const relay_bucket_conf_t *
relay_bucket_conf(relay_bucket_t *b)
{
    return __atomic_load_n(&b->conf, __ATOMIC_ACQUIRE);
}


int
relay_bucket_append(relay_bucket_t *b, const rf_rec_t *recs, size_t n,
    relay_append_t *res)
{
    size_t       i;
    relay_job_t  job;

    memset(res, 0, sizeof(relay_append_t));

    if (n == 0) {
        return 0;
    }

    memset(&job, 0, sizeof(relay_job_t));
    job.type = RELAY_JOB_APPEND;
    job.recs = recs;
    job.n = n;
    job.res = res;

    for (i = 0; i < n; i++) {
        job.bytes += recs[i].len;
    }

    return relay_bucket_run(b, &job);
}


int64_t
relay_bucket_read(relay_bucket_t *b, uint64_t after, size_t max,
    size_t max_bytes, uint64_t wait_ms, relay_read_pt cb, void *arg)
{
    int              rc, err;
    int64_t          n;
    uint64_t         bytes;
    relay_store_t   *st;
    struct timespec  deadline;

    if (max == 0) {
        max = 1;
    }

    relay_bucket_deadline(&deadline, wait_ms);

    pthread_mutex_lock(&b->lock);

    b->users++;
    n = 0;
    err = 0;

    for ( ;; ) {
        if (b->closing) {
            n = -1;
            err = ESHUTDOWN;
            break;
        }

        if (b->meta.last_seq > after) {

            if (relay_bucket_take_reader(b, &st) != 0) {
                n = -1;
                err = errno;
                break;
            }

            pthread_mutex_unlock(&b->lock);

            n = relay_store_read(st, after, max, max_bytes, cb, arg, &bytes);
            err = errno;

            pthread_mutex_lock(&b->lock);

            b->readers[b->nfree++] = st;
            pthread_cond_broadcast(&b->pool_cond);

            if (n > 0) {
                b->meta.out_records += (uint64_t) n;
                b->meta.out_bytes += bytes;
            }

            if (n != 0) {
                break;
            }

            /* deleted under us: wait for what comes next */

            if (after < b->meta.last_seq) {
                after = b->meta.last_seq;
            }

            continue;
        }

        if (wait_ms == 0) {
            break;
        }

        rc = pthread_cond_timedwait(&b->commit_cond, &b->lock, &deadline);

        if (rc == ETIMEDOUT
            && (b->meta.last_seq <= after || b->closing))
        {
            break;
        }
    }

    relay_bucket_leave(b);

    pthread_mutex_unlock(&b->lock);

    if (n < 0) {
        errno = err;
    }

    return n;
}


int
relay_bucket_cursor(relay_bucket_t *b, const char *consumer,
    uint64_t *cursor)
{
    relay_consumer_t  *c;

    if (!rf_valid_name(consumer, strlen(consumer))) {
        errno = EINVAL;
        return -1;
    }

    pthread_mutex_lock(&b->lock);

    c = relay_bucket_consumer(b, consumer, 1);
    if (c == NULL) {
        pthread_mutex_unlock(&b->lock);
        errno = ENOMEM;
        return -1;
    }

    c->last_ms = relay_bucket_now_ms();
    c->dirty = 1;
    *cursor = c->cursor;

    pthread_mutex_unlock(&b->lock);

    return 0;
}


int
relay_bucket_ack(relay_bucket_t *b, const char *consumer, uint64_t upto,
    uint64_t *cursor)
{
    relay_job_t        job;
    relay_consumer_t  *c;

    if (!rf_valid_name(consumer, strlen(consumer))) {
        errno = EINVAL;
        return -1;
    }

    pthread_mutex_lock(&b->lock);

    if (upto > b->meta.last_seq) {
        pthread_mutex_unlock(&b->lock);
        errno = EINVAL;
        return -1;
    }

    c = relay_bucket_consumer(b, consumer, 1);
    if (c == NULL) {
        pthread_mutex_unlock(&b->lock);
        errno = ENOMEM;
        return -1;
    }

    c->last_ms = relay_bucket_now_ms();
    c->dirty = 1;

    /* never backwards: what is committed already is durable */

    if (upto <= c->cursor) {
        *cursor = c->cursor;
        pthread_mutex_unlock(&b->lock);
        return 0;
    }

    pthread_mutex_unlock(&b->lock);

    memset(&job, 0, sizeof(relay_job_t));
    job.type = RELAY_JOB_ACK;
    job.consumer = c;
    job.upto = upto;

    if (relay_bucket_run(b, &job) != 0) {
        return -1;
    }

    *cursor = job.cursor;

    return 0;
}


void
relay_bucket_tick(relay_bucket_t *b, uint64_t now_ms)
{
    relay_job_t  job;

    pthread_mutex_lock(&b->lock);
    relay_bucket_rates(b, now_ms);
    pthread_mutex_unlock(&b->lock);

    memset(&job, 0, sizeof(relay_job_t));
    job.type = RELAY_JOB_TICK;
    job.now_ms = now_ms;

    /* the writer logged what failed */

    (void) relay_bucket_run(b, &job);
}


int
relay_bucket_counters(relay_bucket_t *b, relay_bucket_counters_t *c)
{
    uint64_t  db, wal;

    memset(c, 0, sizeof(relay_bucket_counters_t));

    if (rf_sqlite_file_sizes(b->path, &db, &wal) != 0) {
        db = 0;
        wal = 0;
    }

    pthread_mutex_lock(&b->lock);

    c->records = b->meta.records;
    c->bytes = b->meta.bytes;
    c->file_bytes = db + wal;
    c->first_seq = b->first_seq;
    c->last_seq = b->meta.last_seq;
    c->oldest_ms = b->oldest_ms;
    c->in_records = b->meta.in_records;
    c->in_bytes = b->meta.in_bytes;
    c->out_records = b->meta.out_records;
    c->out_bytes = b->meta.out_bytes;
    c->duplicates = b->meta.duplicates;
    c->rejected = b->meta.rejected;
    c->dropped_ttl = b->meta.dropped_ttl;
    c->dropped_size = b->meta.dropped_size;
    c->dropped_unread = b->meta.dropped_unread;
    c->deleted_acked = b->meta.deleted_acked;
    c->consumers = b->nconsumers;

    pthread_mutex_unlock(&b->lock);

    return 0;
}


/* queue a job for the writer and wait until it is done */

static int
relay_bucket_run(relay_bucket_t *b, relay_job_t *job)
{
    pthread_mutex_lock(&b->lock);

    if (b->closing) {
        pthread_mutex_unlock(&b->lock);
        errno = ESHUTDOWN;
        return -1;
    }

    b->users++;

    job->next = NULL;
    job->done = 0;
    *b->tail = job;
    b->tail = &job->next;

    pthread_cond_signal(&b->work_cond);

    while (!job->done) {
        pthread_cond_wait(&b->done_cond, &b->lock);
    }

    relay_bucket_leave(b);

    pthread_mutex_unlock(&b->lock);

    if (job->rc != 0) {
        errno = job->err;
        return -1;
    }

    return 0;
}


/* under b->lock */

static int
relay_bucket_take_reader(relay_bucket_t *b, relay_store_t **st)
{
    while (b->nfree == 0) {
        if (b->closing) {
            errno = ESHUTDOWN;
            return -1;
        }

        pthread_cond_wait(&b->pool_cond, &b->lock);
    }

    *st = b->readers[--b->nfree];
    b->readers[b->nfree] = NULL;

    return 0;
}


/* under b->lock: a thread leaves the bucket; close may be waiting */

static void
relay_bucket_leave(relay_bucket_t *b)
{
    b->users--;

    if (b->closing && b->users == 0) {
        pthread_cond_broadcast(&b->pool_cond);
    }
}


static void
relay_bucket_deadline(struct timespec *ts, uint64_t wait_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);

    if (wait_ms > 86400000) {
        wait_ms = 86400000;
    }

    ts->tv_sec += (time_t) (wait_ms / 1000);
    ts->tv_nsec += (long) (wait_ms % 1000) * 1000000;

    if (ts->tv_nsec >= 1000000000) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000;
    }
}


static int
relay_bucket_conf_copy(relay_bucket_conf_t *dst,
    const relay_bucket_conf_t *src, char *err, size_t errlen)
{
    size_t  i, k;

    memset(dst, 0, sizeof(relay_bucket_conf_t));

    if (src->name == NULL
        || !rf_valid_name(src->name, strlen(src->name)))
    {
        snprintf(err, errlen, "invalid bucket name \"%s\"",
                 src->name ? src->name : "");
        return -1;
    }

    if (src->nconsumers > RELAY_MAX_CONSUMERS) {
        snprintf(err, errlen, "bucket \"%s\": more than %d consumers",
                 src->name, RELAY_MAX_CONSUMERS);
        return -1;
    }

    *dst = *src;
    dst->name = NULL;
    dst->token = NULL;
    dst->nconsumers = 0;
    memset(dst->consumers, 0, sizeof(dst->consumers));

    dst->name = strdup(src->name);
    dst->token = strdup(src->token ? src->token : "");

    if (dst->name == NULL || dst->token == NULL) {
        goto nomem;
    }

    for (i = 0; i < src->nconsumers; i++) {
        if (src->consumers[i] == NULL
            || !rf_valid_name(src->consumers[i],
                              strlen(src->consumers[i])))
        {
            snprintf(err, errlen, "bucket \"%s\": invalid consumer name "
                     "\"%s\"", src->name,
                     src->consumers[i] ? src->consumers[i] : "");
            relay_bucket_conf_free(dst);
            return -1;
        }

        for (k = 0; k < i; k++) {
            if (strcmp(src->consumers[k], src->consumers[i]) == 0) {
                break;
            }
        }

        if (k < i) {
            continue;
        }

        dst->consumers[dst->nconsumers] = strdup(src->consumers[i]);

        if (dst->consumers[dst->nconsumers] == NULL) {
            goto nomem;
        }

        dst->nconsumers++;
    }

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");
    relay_bucket_conf_free(dst);

    return -1;
}


static void
relay_bucket_conf_free(relay_bucket_conf_t *c)
{
    size_t  i;

    free(c->name);
    free(c->token);

    for (i = 0; i < c->nconsumers; i++) {
        free(c->consumers[i]);
    }

    memset(c, 0, sizeof(relay_bucket_conf_t));
}
