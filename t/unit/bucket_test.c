/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests of the relay's bucket engine (relayd/relay_bucket*.c and
 * relay_store.c): append and read in order with rseq set in place, dedup
 * by source sequence, group commit under concurrent appends, long polls,
 * cursors and acks, ttl and ack retention, the max_size cap over file +
 * WAL under both policies, counters across reopen, the stats object, and
 * reopening after the writer process was killed mid-stream.  Ends with
 * the engine's append and read rates as TAP diagnostics.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "rf_json.h"
#include "rf_record.h"
#include "rf_sqlite.h"
#include "relay_bucket.h"


#define MB                  (1024 * 1024ULL)
#define GB                  (1024 * MB)

#define CONC_THREADS        4
#define CONC_BATCHES        40
#define CONC_RECORDS        100

#define PERF_THREADS        2
#define PERF_BATCHES        100
#define PERF_RECORDS        1000
#define PERF_BODY           900     /* about 1 KB a record */


typedef struct {
    unsigned char  *buf;
    size_t          len;
    rf_rec_t       *recs;
    size_t          n;
} batch_t;


typedef struct {
    uint64_t       *seqs;
    size_t          n;
    size_t          cap;
    uint64_t        bytes;
    int             bad;
    int             copy;           /* keep (source, sseq) too */
    char          **sources;
    uint64_t       *sseqs;
} collect_t;


typedef struct {
    relay_bucket_t *b;
    int             id;
    size_t          batches;
    size_t          records;
    size_t          body;
    batch_t        *pre;            /* built beforehand, or NULL */
    int             failed;
} appender_t;


typedef struct {
    relay_bucket_t *b;
    uint64_t        after;
    uint64_t        wait_ms;
    int64_t         got;
    int             err;
    int             done;
    uint64_t        took_ms;
    pthread_mutex_t lock;
} poller_t;


/* samples the files' size while appends run: catches a passing peak */
typedef struct {
    pthread_mutex_t lock;
    int             stop;
    uint64_t        peak;
    uint64_t        samples;
} watcher_t;


static char  dir[256];
static char  path[512];


static int
setup(void **state)
{
    (void) state;

    snprintf(dir, sizeof(dir), "/tmp/rf-bucket-test.XXXXXX");

    if (mkdtemp(dir) == NULL) {
        return -1;
    }

    snprintf(path, sizeof(path), "%s/b.db", dir);

    return 0;
}


static int
teardown(void **state)
{
    char  cmd[600];

    (void) state;

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);

    return system(cmd) == 0 ? 0 : -1;
}


static uint64_t
mono_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


static uint64_t
wall_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/* n records of about body bytes; source NULL: unstamped (sseq 0) */

static void
batch_make(batch_t *bt, const char *source, uint64_t sseq0, size_t n,
    size_t body)
{
    size_t            i, cap, len, off;
    rf_str_t          src;
    rf_rec_t          r;
    const char       *err;
    unsigned char    *tmp, *payload;
    rf_rec_builder_t  bld;

    cap = body + 512 + (source ? strlen(source) : 0);

    bt->buf = malloc(n * cap);
    bt->recs = calloc(n, sizeof(rf_rec_t));
    tmp = malloc(cap);
    payload = malloc(body + 1);
    assert_non_null(bt->buf);
    assert_non_null(bt->recs);
    assert_non_null(tmp);
    assert_non_null(payload);

    off = 0;

    for (i = 0; i < n; i++) {
        memset(payload, 'a' + (int) ((sseq0 + i) % 26), body);

        rf_rec_begin(&bld, tmp, cap, RF_KIND_HTTP, 1000000000ULL * (i + 1));
        rf_rec_add(&bld, RF_F_METHOD, "POST", 4);
        rf_rec_add(&bld, RF_F_URI, "/api/x?y=1", 10);
        rf_rec_add_u64(&bld, RF_F_STATUS, 200);
        rf_rec_add(&bld, RF_F_BODY, payload, body);
        len = rf_rec_finish(&bld);
        assert_true(len > 0);

        if (source != NULL) {
            assert_int_equal(rf_rec_parse(&r, tmp, len, &err), 0);
            src.data = (const unsigned char *) source;
            src.len = strlen(source);
            len = rf_rec_stamp(&r, sseq0 + i, &src, bt->buf + off, cap);
            assert_true(len > 0);

        } else {
            memcpy(bt->buf + off, tmp, len);
        }

        off += len;
    }

    /* parse once all are written: rf_rec_t views into bt->buf */

    bt->len = off;
    bt->n = n;
    off = 0;

    for (i = 0; i < n; i++) {
        len = rf_rec_peek_len(bt->buf + off, bt->len - off);
        assert_int_equal(rf_rec_parse(&bt->recs[i], bt->buf + off, len,
                                      &err), 0);
        off += len;
    }

    free(tmp);
    free(payload);
}


static void
batch_free(batch_t *bt)
{
    free(bt->buf);
    free(bt->recs);
    memset(bt, 0, sizeof(batch_t));
}


static relay_bucket_t *
open_bucket(uint64_t max_size, uint64_t ttl, int overflow,
    const char *c1, const char *c2)
{
    char                 err[256];
    relay_bucket_t      *b;
    relay_bucket_conf_t  conf;

    memset(&conf, 0, sizeof(conf));
    conf.name = "b";
    conf.token = "secret";
    conf.max_size = max_size;
    conf.ttl = ttl;
    conf.overflow = overflow;

    if (c1 != NULL) {
        conf.consumers[conf.nconsumers++] = (char *) c1;
    }

    if (c2 != NULL) {
        conf.consumers[conf.nconsumers++] = (char *) c2;
    }

    b = NULL;

    if (relay_bucket_open(&b, &conf, dir, err, sizeof(err)) != 0) {
        print_error("open: %s\n", err);
        fail();
    }

    return b;
}


static int
collect_cb(uint64_t seq, const unsigned char *data, size_t len, void *arg)
{
    rf_str_t     src;
    rf_rec_t     r;
    collect_t   *c;
    const char  *err;

    c = arg;

    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->seqs = realloc(c->seqs, c->cap * sizeof(uint64_t));
        c->sseqs = realloc(c->sseqs, c->cap * sizeof(uint64_t));
        c->sources = realloc(c->sources, c->cap * sizeof(char *));

        if (c->seqs == NULL || c->sseqs == NULL || c->sources == NULL) {
            return -1;
        }
    }

    /* what was stored is a valid record numbered in place */

    if (rf_rec_parse(&r, data, len, &err) != 0 || r.rseq != seq) {
        c->bad++;
    }

    c->sources[c->n] = NULL;
    c->sseqs[c->n] = r.sseq;

    if (c->copy && rf_rec_field(&r, RF_F_SOURCE, &src) == 0) {
        c->sources[c->n] = strndup((const char *) src.data, src.len);
    }

    c->seqs[c->n++] = seq;
    c->bytes += len;

    return 0;
}


static void
collect_free(collect_t *c)
{
    size_t  i;

    for (i = 0; i < c->n; i++) {
        free(c->sources[i]);
    }

    free(c->seqs);
    free(c->sseqs);
    free(c->sources);
    memset(c, 0, sizeof(collect_t));
}


/* everything after "after", in reads of at most max */

static void
read_all(relay_bucket_t *b, uint64_t after, size_t max, collect_t *c)
{
    int64_t  n;

    for ( ;; ) {
        n = relay_bucket_read(b, after, max, 16 * MB, 0, collect_cb, c);
        assert_true(n >= 0);

        if (n == 0) {
            break;
        }

        after = c->seqs[c->n - 1];
    }
}


static void
counters(relay_bucket_t *b, relay_bucket_counters_t *c)
{
    assert_int_equal(relay_bucket_counters(b, c), 0);
}


static uint64_t
disk_bytes(void)
{
    uint64_t  db, wal;

    assert_int_equal(rf_sqlite_file_sizes(path, &db, &wal), 0);

    return db + wal;
}


static void
test_append_read(void **state)
{
    size_t                   i;
    int64_t                  n;
    batch_t                  bt;
    collect_t                c;
    relay_bucket_t          *b;
    relay_append_t           res;
    relay_bucket_counters_t  k;

    (void) state;

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);

    batch_make(&bt, "web-1", 1, 100, 200);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(res.accepted, 100);
    assert_int_equal(res.duplicates, 0);
    assert_int_equal(res.first_seq, 1);
    assert_int_equal(res.last_seq, 100);

    /* rseq is set in the caller's bytes as well */

    for (i = 0; i < bt.n; i++) {
        assert_int_equal(bt.buf[bt.recs[i].buf - bt.buf + 8], (i + 1) & 0xff);
    }

    memset(&c, 0, sizeof(c));
    read_all(b, 0, 7, &c);
    assert_int_equal(c.n, 100);
    assert_int_equal(c.bad, 0);

    for (i = 0; i < c.n; i++) {
        assert_int_equal(c.seqs[i], i + 1);
        assert_int_equal(c.sseqs[i], i + 1);
    }

    collect_free(&c);

    /* about max_bytes, but always one */

    memset(&c, 0, sizeof(c));
    n = relay_bucket_read(b, 10, 1000, 1, 0, collect_cb, &c);
    assert_int_equal(n, 1);
    assert_int_equal(c.seqs[0], 11);
    collect_free(&c);

    memset(&c, 0, sizeof(c));
    n = relay_bucket_read(b, 10, 1000, 3 * bt.recs[0].len, 0, collect_cb, &c);
    assert_int_equal(n, 3);
    collect_free(&c);

    memset(&c, 0, sizeof(c));
    n = relay_bucket_read(b, 100, 1000, MB, 0, collect_cb, &c);
    assert_int_equal(n, 0);
    collect_free(&c);

    counters(b, &k);
    assert_int_equal(k.records, 100);
    assert_int_equal(k.first_seq, 1);
    assert_int_equal(k.last_seq, 100);
    assert_int_equal(k.in_records, 100);
    assert_int_equal(k.in_bytes, bt.len);
    assert_int_equal(k.bytes, bt.len);
    assert_int_equal(k.out_records, 100 + 1 + 3);

    relay_bucket_close(b);
    batch_free(&bt);
}


static void
test_dedup(void **state)
{
    batch_t                  bt, mix, anon;
    collect_t                c;
    relay_bucket_t          *b;
    relay_append_t           res;
    relay_bucket_counters_t  k;

    (void) state;

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);

    batch_make(&bt, "web-1", 1, 50, 100);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(res.accepted, 50);

    /* a retry of the same batch: all duplicates, nothing stored */

    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(res.accepted, 0);
    assert_int_equal(res.duplicates, 50);
    assert_int_equal(res.first_seq, 0);

    counters(b, &k);
    assert_int_equal(k.records, 50);
    assert_int_equal(k.last_seq, 50);
    assert_int_equal(k.duplicates, 50);

    /* within one batch: 51 52 52 51 53 → 3 new, 2 duplicates */

    batch_make(&mix, "web-1", 51, 5, 100);
    mix.recs[2].sseq = 52;
    mix.recs[3].sseq = 51;
    mix.recs[4].sseq = 53;
    assert_int_equal(relay_bucket_append(b, mix.recs, mix.n, &res), 0);
    assert_int_equal(res.accepted, 3);
    assert_int_equal(res.duplicates, 2);
    assert_int_equal(res.first_seq, 51);
    assert_int_equal(res.last_seq, 53);

    /* another source has its own mark; no source: never a duplicate */

    batch_free(&mix);
    batch_make(&mix, "web-2", 1, 5, 100);
    assert_int_equal(relay_bucket_append(b, mix.recs, mix.n, &res), 0);
    assert_int_equal(res.accepted, 5);

    batch_make(&anon, NULL, 0, 5, 100);
    assert_int_equal(relay_bucket_append(b, anon.recs, anon.n, &res), 0);
    assert_int_equal(relay_bucket_append(b, anon.recs, anon.n, &res), 0);
    assert_int_equal(res.accepted, 5);

    relay_bucket_close(b);

    /* the marks survive a restart */

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(res.accepted, 0);
    assert_int_equal(res.duplicates, 50);

    memset(&c, 0, sizeof(c));
    read_all(b, 0, 1000, &c);
    assert_int_equal(c.n, 50 + 3 + 5 + 10);
    assert_int_equal(c.bad, 0);
    collect_free(&c);

    counters(b, &k);
    assert_int_equal(k.duplicates, 50 + 2 + 50);
    assert_int_equal(k.in_records, 68);

    relay_bucket_close(b);
    batch_free(&bt);
    batch_free(&mix);
    batch_free(&anon);
}


static void *
appender(void *arg)
{
    char            src[32];
    size_t          i;
    batch_t         bt;
    appender_t     *a;
    relay_append_t  res;

    a = arg;
    snprintf(src, sizeof(src), "src-%d", a->id);

    for (i = 0; i < a->batches; i++) {
        if (a->pre != NULL) {
            bt = a->pre[i];

        } else {
            batch_make(&bt, src, 1 + i * a->records, a->records, a->body);
        }

        if (relay_bucket_append(a->b, bt.recs, bt.n, &res) != 0
            || res.accepted != a->records
            || res.last_seq - res.first_seq + 1 != a->records)
        {
            a->failed++;
        }

        if (a->pre == NULL) {
            batch_free(&bt);
        }
    }

    return NULL;
}


static void
test_concurrent(void **state)
{
    int              t;
    size_t           i, seen[CONC_THREADS];
    collect_t        c;
    pthread_t        tid[CONC_THREADS];
    appender_t       a[CONC_THREADS];
    relay_bucket_t  *b;

    (void) state;

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);

    for (t = 0; t < CONC_THREADS; t++) {
        memset(&a[t], 0, sizeof(appender_t));
        a[t].b = b;
        a[t].id = t;
        a[t].batches = CONC_BATCHES;
        a[t].records = CONC_RECORDS;
        a[t].body = 100;
        assert_int_equal(pthread_create(&tid[t], NULL, appender, &a[t]), 0);
    }

    for (t = 0; t < CONC_THREADS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
        assert_int_equal(a[t].failed, 0);
        seen[t] = 0;
    }

    /* every record once, seq 1..N without gaps, each source in order */

    memset(&c, 0, sizeof(c));
    c.copy = 1;
    read_all(b, 0, 5000, &c);
    assert_int_equal(c.n, CONC_THREADS * CONC_BATCHES * CONC_RECORDS);
    assert_int_equal(c.bad, 0);

    for (i = 0; i < c.n; i++) {
        assert_int_equal(c.seqs[i], i + 1);
        assert_non_null(c.sources[i]);
        t = atoi(c.sources[i] + 4);
        assert_true(t >= 0 && t < CONC_THREADS);
        assert_int_equal(c.sseqs[i], ++seen[t]);
    }

    collect_free(&c);
    relay_bucket_close(b);
}


static int
read_nothing(uint64_t seq, const unsigned char *data, size_t len, void *arg)
{
    (*(int64_t *) arg)++;
    return 0;
}


static void *
poller(void *arg)
{
    int64_t     got, calls;
    uint64_t    t0;
    poller_t   *p;

    p = arg;
    calls = 0;
    t0 = mono_ms();

    got = relay_bucket_read(p->b, p->after, 100, MB, p->wait_ms, read_nothing,
                            &calls);

    pthread_mutex_lock(&p->lock);
    p->got = got;
    p->err = got < 0 ? errno : 0;
    p->took_ms = mono_ms() - t0;
    p->done = 1;
    pthread_mutex_unlock(&p->lock);

    return NULL;
}


static int
poller_done(poller_t *p, uint64_t limit_ms)
{
    int       done;
    uint64_t  t0;

    t0 = mono_ms();

    for ( ;; ) {
        pthread_mutex_lock(&p->lock);
        done = p->done;
        pthread_mutex_unlock(&p->lock);

        if (done || mono_ms() - t0 > limit_ms) {
            return done;
        }

        sched_yield();
    }
}


static void
test_long_poll(void **state)
{
    int64_t          calls;
    uint64_t         t0, took;
    batch_t          bt;
    poller_t         p;
    pthread_t        tid;
    relay_bucket_t  *b;
    relay_append_t   res;

    (void) state;

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);
    batch_make(&bt, "web-1", 1, 1, 100);

    /* nothing comes: the wait ends on time, not before */

    calls = 0;
    t0 = mono_ms();
    assert_int_equal(relay_bucket_read(b, 0, 10, MB, 300, read_nothing,
                                       &calls), 0);
    took = mono_ms() - t0;
    assert_true(took >= 300);
    assert_true(took < 3000);
    assert_int_equal(calls, 0);

    /* a commit wakes a waiting reader long before its wait ends */

    memset(&p, 0, sizeof(p));
    pthread_mutex_init(&p.lock, NULL);
    p.b = b;
    p.wait_ms = 20000;
    assert_int_equal(pthread_create(&tid, NULL, poller, &p), 0);

    assert_false(poller_done(&p, 100));
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_true(poller_done(&p, 10000));
    pthread_join(tid, NULL);
    assert_int_equal(p.got, 1);
    assert_true(p.took_ms < 10000);

    /* close wakes a waiting reader */

    p.done = 0;
    p.after = 1;
    assert_int_equal(pthread_create(&tid, NULL, poller, &p), 0);
    assert_false(poller_done(&p, 100));
    relay_bucket_close(b);
    assert_true(poller_done(&p, 10000));
    pthread_join(tid, NULL);
    assert_int_equal(p.got, -1);
    assert_int_equal(p.err, ESHUTDOWN);
    assert_true(p.took_ms < 10000);

    pthread_mutex_destroy(&p.lock);
    batch_free(&bt);
}


static void
test_cursor_ack(void **state)
{
    char             big[RELAY_NAME_MAX + 2];
    batch_t          bt;
    uint64_t         cur;
    rf_buf_t         out;
    relay_bucket_t  *b;
    relay_append_t   res;

    (void) state;

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, "staging", NULL);

    assert_int_equal(relay_bucket_cursor(b, "c1", &cur), 0);
    assert_int_equal(cur, 0);

    batch_make(&bt, "web-1", 1, 10, 100);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);

    assert_int_equal(relay_bucket_ack(b, "c1", 5, &cur), 0);
    assert_int_equal(cur, 5);

    /* never backwards */
    assert_int_equal(relay_bucket_ack(b, "c1", 3, &cur), 0);
    assert_int_equal(cur, 5);

    /* beyond the last seq, bad names */
    assert_int_equal(relay_bucket_ack(b, "c1", 11, &cur), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(relay_bucket_ack(b, "a/b", 1, &cur), -1);
    assert_int_equal(errno, EINVAL);
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(relay_bucket_cursor(b, big, &cur), -1);
    assert_int_equal(errno, EINVAL);

    assert_int_equal(relay_bucket_ack(b, "staging", 10, &cur), 0);
    assert_int_equal(cur, 10);

    relay_bucket_close(b);

    /* durable */

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, "staging", NULL);

    assert_int_equal(relay_bucket_cursor(b, "c1", &cur), 0);
    assert_int_equal(cur, 5);
    assert_int_equal(relay_bucket_cursor(b, "staging", &cur), 0);
    assert_int_equal(cur, 10);

    rf_buf_init(&out);
    assert_int_equal(relay_bucket_stats_json(b, &out), 0);
    assert_int_equal(rf_buf_addc(&out, '\0'), 0);
    assert_non_null(strstr((char *) out.data, "{\"name\":\"c1\",\"declared\":"
                           "false,\"cursor\":5,\"lag\":5,"));
    assert_non_null(strstr((char *) out.data, "{\"name\":\"staging\","
                           "\"declared\":true,\"cursor\":10,\"lag\":0,"));
    rf_buf_free(&out);

    relay_bucket_close(b);
    batch_free(&bt);
}


static void
test_retention(void **state)
{
    batch_t                  bt, more;
    uint64_t                 cur, now;
    collect_t                c;
    relay_bucket_t          *b;
    relay_append_t           res;
    relay_bucket_counters_t  k;

    (void) state;

    /* ttl: no consumer at all, so every record dropped was unread */

    b = open_bucket(GB, 60000, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);
    batch_make(&bt, "web-1", 1, 10, 100);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);

    now = wall_ms();
    relay_bucket_tick(b, now);
    counters(b, &k);
    assert_int_equal(k.records, 10);
    assert_true(k.oldest_ms >= now - 60000 && k.oldest_ms <= now + 1000);

    relay_bucket_tick(b, now + 61000 + 1000);
    counters(b, &k);
    assert_int_equal(k.records, 0);
    assert_int_equal(k.bytes, 0);
    assert_int_equal(k.first_seq, 0);
    assert_int_equal(k.dropped_ttl, 10);
    assert_int_equal(k.dropped_unread, 10);
    assert_int_equal(k.deleted_acked, 0);

    relay_bucket_close(b);

    /* seq never starts over, even with every record gone */

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, "a", "b");
    batch_make(&more, "web-1", 11, 20, 100);
    assert_int_equal(relay_bucket_append(b, more.recs, more.n, &res), 0);
    assert_int_equal(res.first_seq, 11);
    assert_int_equal(res.last_seq, 30);

    /* acked by every declared consumer; u is undeclared and behind */

    assert_int_equal(relay_bucket_ack(b, "u", 14, &cur), 0);
    assert_int_equal(relay_bucket_ack(b, "a", 20, &cur), 0);
    relay_bucket_tick(b, wall_ms());
    counters(b, &k);
    assert_int_equal(k.records, 20);
    assert_int_equal(k.deleted_acked, 0);

    assert_int_equal(relay_bucket_ack(b, "b", 25, &cur), 0);
    relay_bucket_tick(b, wall_ms());
    counters(b, &k);
    assert_int_equal(k.records, 10);
    assert_int_equal(k.first_seq, 21);
    assert_int_equal(k.deleted_acked, 10);
    assert_int_equal(k.dropped_ttl, 10);
    /* 15..20 were not read by u yet */
    assert_int_equal(k.dropped_unread, 10 + 6);

    memset(&c, 0, sizeof(c));
    read_all(b, 0, 1000, &c);
    assert_int_equal(c.n, 10);
    assert_int_equal(c.seqs[0], 21);
    collect_free(&c);

    relay_bucket_close(b);
    batch_free(&bt);
    batch_free(&more);
}


static void *
watcher(void *arg)
{
    int         stop;
    uint64_t    db, wal;
    watcher_t  *w;

    w = arg;

    for ( ;; ) {
        if (rf_sqlite_file_sizes(path, &db, &wal) == 0) {
            pthread_mutex_lock(&w->lock);

            if (db + wal > w->peak) {
                w->peak = db + wal;
            }

            w->samples++;
            pthread_mutex_unlock(&w->lock);
        }

        pthread_mutex_lock(&w->lock);
        stop = w->stop;
        pthread_mutex_unlock(&w->lock);

        if (stop) {
            return NULL;
        }

        sched_yield();
    }
}


/*
 * Append n batches; the files are never over the cap, neither after an
 * append returns nor while one runs (a watcher thread samples them).
 * Returns how many appends failed, and the peak seen.
 */

static size_t
fill(relay_bucket_t *b, const char *src, uint64_t *sseq, size_t batches,
    size_t records, size_t body, uint64_t cap, int *err, uint64_t *peak)
{
    size_t          i, failed;
    batch_t         bt;
    uint64_t        size;
    pthread_t       tid;
    watcher_t       w;
    relay_append_t  res;

    failed = 0;

    memset(&w, 0, sizeof(w));
    pthread_mutex_init(&w.lock, NULL);
    assert_int_equal(pthread_create(&tid, NULL, watcher, &w), 0);

    for (i = 0; i < batches; i++) {
        batch_make(&bt, src, *sseq, records, body);

        if (relay_bucket_append(b, bt.recs, bt.n, &res) != 0) {
            *err = errno;
            failed++;

        } else {
            *sseq += records;
        }

        size = disk_bytes();

        if (size > *peak) {
            *peak = size;
        }

        assert_true(size <= cap);
        batch_free(&bt);
    }

    pthread_mutex_lock(&w.lock);
    w.stop = 1;
    pthread_mutex_unlock(&w.lock);
    pthread_join(tid, NULL);
    pthread_mutex_destroy(&w.lock);

    if (w.peak > *peak) {
        *peak = w.peak;
    }

    assert_true(w.samples > 0);
    assert_true(w.peak <= cap);

    return failed;
}


static void
test_max_size_drop_oldest(void **state)
{
    int                      err;
    uint64_t                 sseq, peak;
    collect_t                c;
    relay_bucket_t          *b;
    relay_bucket_counters_t  k;

    (void) state;

    b = open_bucket(2 * MB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);

    sseq = 1;
    peak = 0;
    err = 0;

    /* 8 MB through a 2 MB bucket */

    assert_int_equal(fill(b, "web-1", &sseq, 160, 50, 1000, 2 * MB, &err,
                          &peak), 0);

    /* and 6 MB more in batches of 10 records of 10 KB */

    assert_int_equal(fill(b, "web-1", &sseq, 60, 10, 10000, 2 * MB, &err,
                          &peak), 0);

    counters(b, &k);
    assert_int_equal(k.in_records, 8600);
    assert_true(k.dropped_size > 0);
    assert_int_equal(k.records + k.dropped_size, 8600);
    assert_int_equal(k.dropped_unread, k.dropped_size);
    assert_int_equal(k.first_seq, k.dropped_size + 1);
    assert_true(k.file_bytes <= 2 * MB);

    /* what is left is the newest, contiguous */

    memset(&c, 0, sizeof(c));
    read_all(b, 0, 10000, &c);
    assert_int_equal(c.n, k.records);
    assert_int_equal(c.seqs[0], k.first_seq);
    assert_int_equal(c.seqs[c.n - 1], 8600);
    assert_int_equal(c.bad, 0);
    collect_free(&c);

    print_message("# drop_oldest: peak %" PRIu64 " bytes of a %llu cap, "
                  "%" PRIu64 " records kept\n", peak, 2 * MB, k.records);

    relay_bucket_close(b);
}


static void
test_max_size_reject(void **state)
{
    int                      err;
    size_t                   failed;
    uint64_t                 sseq, peak, cur, last;
    relay_bucket_t          *b;
    relay_bucket_counters_t  k;

    (void) state;

    b = open_bucket(2 * MB, 0, RELAY_OVERFLOW_REJECT, "a", NULL);

    sseq = 1;
    peak = 0;
    err = 0;

    failed = fill(b, "web-1", &sseq, 80, 50, 1000, 2 * MB, &err, &peak);
    assert_true(failed > 0);
    assert_int_equal(err, ENOSPC);

    counters(b, &k);
    assert_int_equal(k.rejected, failed * 50);
    assert_int_equal(k.dropped_size, 0);
    assert_int_equal(k.records, sseq - 1);
    assert_int_equal(k.last_seq, sseq - 1);
    last = k.last_seq;

    /* once read and acked, the room comes back */

    assert_int_equal(relay_bucket_ack(b, "a", last, &cur), 0);
    relay_bucket_tick(b, wall_ms());
    counters(b, &k);
    assert_int_equal(k.records, 0);
    assert_int_equal(k.deleted_acked, last);
    assert_int_equal(k.dropped_unread, 0);

    failed = fill(b, "web-1", &sseq, 10, 10, 10000, 2 * MB, &err, &peak);
    assert_int_equal(failed, 0);

    print_message("# reject: peak %" PRIu64 " bytes of a %llu cap\n", peak,
                  2 * MB);

    relay_bucket_close(b);
}


static void
test_efbig(void **state)
{
    batch_t                  bt;
    relay_bucket_t          *b;
    relay_append_t           res;
    relay_bucket_counters_t  k;

    (void) state;

    b = open_bucket(2 * MB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);

    batch_make(&bt, "web-1", 1, 2000, 1000);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), -1);
    assert_int_equal(errno, EFBIG);
    batch_free(&bt);

    counters(b, &k);
    assert_int_equal(k.records, 0);
    assert_int_equal(k.last_seq, 0);

    /* the high-water mark did not move: the same records go in later */

    batch_make(&bt, "web-1", 1, 50, 1000);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(res.accepted, 50);
    assert_int_equal(res.first_seq, 1);
    batch_free(&bt);

    relay_bucket_close(b);
}


static void
test_counters_persist(void **state)
{
    int                      err;
    size_t                   failed;
    batch_t                  bt;
    uint64_t                 sseq, peak;
    collect_t                c;
    relay_bucket_t          *b;
    relay_append_t           res;
    relay_bucket_counters_t  k1, k2;

    (void) state;

    b = open_bucket(2 * MB, 0, RELAY_OVERFLOW_REJECT, NULL, NULL);

    batch_make(&bt, "web-1", 1, 20, 100);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    batch_free(&bt);

    memset(&c, 0, sizeof(c));
    read_all(b, 0, 1000, &c);
    collect_free(&c);

    sseq = 21;
    peak = 0;
    failed = fill(b, "web-1", &sseq, 60, 50, 1000, 2 * MB, &err, &peak);
    assert_true(failed > 0);

    relay_bucket_tick(b, wall_ms() + 3600000);

    counters(b, &k1);
    assert_int_equal(k1.out_records, 20);
    assert_int_equal(k1.duplicates, 20);
    assert_int_equal(k1.rejected, failed * 50);

    relay_bucket_close(b);

    b = open_bucket(2 * MB, 0, RELAY_OVERFLOW_REJECT, NULL, NULL);
    counters(b, &k2);

    assert_int_equal(k2.records, k1.records);
    assert_int_equal(k2.bytes, k1.bytes);
    assert_int_equal(k2.first_seq, k1.first_seq);
    assert_int_equal(k2.last_seq, k1.last_seq);
    assert_int_equal(k2.in_records, k1.in_records);
    assert_int_equal(k2.in_bytes, k1.in_bytes);
    assert_int_equal(k2.out_records, k1.out_records);
    assert_int_equal(k2.out_bytes, k1.out_bytes);
    assert_int_equal(k2.duplicates, k1.duplicates);
    assert_int_equal(k2.rejected, k1.rejected);
    assert_int_equal(k2.dropped_ttl, k1.dropped_ttl);
    assert_int_equal(k2.dropped_size, k1.dropped_size);
    assert_int_equal(k2.dropped_unread, k1.dropped_unread);
    assert_int_equal(k2.deleted_acked, k1.deleted_acked);

    relay_bucket_close(b);
}


static const rf_json_t *
member(const rf_json_t *obj, const char *key, rf_json_type_t type)
{
    const rf_json_t  *v;

    v = rf_json_get(obj, key);

    if (v == NULL || v->type != type) {
        print_error("member \"%s\": missing or of another type\n", key);
        fail();
    }

    return v;
}


static void
test_stats_json(void **state)
{
    char                 err[256];
    size_t               i;
    batch_t              bt;
    uint64_t             cur, now;
    rf_buf_t             out;
    rf_json_doc_t       *doc;
    relay_bucket_t      *b;
    relay_append_t       res;
    const rf_json_t     *root, *h, *a, *o;

    static const char  *numbers[] = {
        "records", "bytes", "file_bytes", "max_size", "ttl_s", "first_seq",
        "last_seq", "oldest_age_s", "in_records", "in_bytes", "out_records",
        "out_bytes", "duplicates", "rejected", "dropped_ttl", "dropped_size",
        "dropped_unread", "deleted_acked", "rate_in", "rate_out", NULL
    };

    (void) state;

    b = open_bucket(GB, 7 * 86400 * 1000ULL, RELAY_OVERFLOW_DROP_OLDEST,
                    "staging", NULL);

    now = wall_ms();
    relay_bucket_tick(b, now);

    batch_make(&bt, "web-\"1\"", 1, 100, 100);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(relay_bucket_ack(b, "staging", 90, &cur), 0);
    batch_free(&bt);

    relay_bucket_tick(b, now + 10000);

    rf_buf_init(&out);
    assert_int_equal(relay_bucket_stats_json(b, &out), 0);

    doc = rf_json_parse((const char *) out.data, out.len, err, sizeof(err));
    if (doc == NULL) {
        print_error("%s: %.*s\n", err, (int) out.len, (char *) out.data);
        fail();
    }

    root = rf_json_root(doc);
    assert_int_equal(root->type, RF_JSON_OBJECT);
    assert_int_equal(root->count, 25);

    assert_string_equal(member(root, "name", RF_JSON_STRING)->str.data, "b");
    assert_string_equal(member(root, "overflow", RF_JSON_STRING)->str.data,
                        "drop_oldest");

    for (i = 0; numbers[i] != NULL; i++) {
        (void) member(root, numbers[i], RF_JSON_NUMBER);
    }

    assert_int_equal(member(root, "ttl_s", RF_JSON_NUMBER)->i, 604800);
    /* staging acked 90 of them and is the only declared consumer */
    assert_int_equal(member(root, "records", RF_JSON_NUMBER)->i, 10);
    assert_int_equal(member(root, "first_seq", RF_JSON_NUMBER)->i, 91);
    assert_int_equal(member(root, "last_seq", RF_JSON_NUMBER)->i, 100);
    assert_int_equal(member(root, "deleted_acked", RF_JSON_NUMBER)->i, 90);
    assert_int_equal(member(root, "dropped_unread", RF_JSON_NUMBER)->i, 0);
    assert_true(member(root, "rate_in", RF_JSON_NUMBER)->num == 10.0);

    h = member(root, "history", RF_JSON_OBJECT);
    assert_int_equal(member(h, "step_s", RF_JSON_NUMBER)->i, 10);
    a = member(h, "in", RF_JSON_ARRAY);
    assert_int_equal(a->count, 1);
    assert_true(a->child->num == 10.0);
    a = member(h, "out", RF_JSON_ARRAY);
    assert_int_equal(a->count, 1);

    a = member(root, "consumers", RF_JSON_ARRAY);
    assert_int_equal(a->count, 1);
    o = a->child;
    assert_int_equal(o->count, 5);
    assert_string_equal(member(o, "name", RF_JSON_STRING)->str.data,
                        "staging");
    (void) member(o, "declared", RF_JSON_TRUE);
    assert_int_equal(member(o, "cursor", RF_JSON_NUMBER)->i, 90);
    assert_int_equal(member(o, "lag", RF_JSON_NUMBER)->i, 10);
    (void) member(o, "last_seen_age_s", RF_JSON_NUMBER);

    a = member(root, "sources", RF_JSON_ARRAY);
    assert_int_equal(a->count, 1);
    o = a->child;
    assert_int_equal(o->count, 6);
    assert_string_equal(member(o, "id", RF_JSON_STRING)->str.data,
                        "web-\"1\"");
    assert_int_equal(member(o, "records", RF_JSON_NUMBER)->i, 100);
    assert_int_equal(member(o, "max_sseq", RF_JSON_NUMBER)->i, 100);
    assert_int_equal(member(o, "duplicates", RF_JSON_NUMBER)->i, 0);
    (void) member(o, "last_seen_age_s", RF_JSON_NUMBER);
    assert_true(member(o, "rate_in", RF_JSON_NUMBER)->num == 10.0);

    rf_json_free(doc);
    rf_buf_free(&out);

    relay_bucket_close(b);
}


/*
 * A child appends and reports each committed batch's last seq on a pipe;
 * it is killed mid-stream (or leaves with _exit() without closing).
 * Every batch it was told is committed must be there after reopening.
 */
static void
crash_child(int fd, int leave_after)
{
    int                  i;
    char                 err[256];
    batch_t              bt;
    uint64_t             sseq;
    relay_bucket_t      *b;
    relay_append_t       res;
    relay_bucket_conf_t  conf;

    memset(&conf, 0, sizeof(conf));
    conf.name = "b";
    conf.token = "t";
    conf.max_size = GB;

    if (relay_bucket_open(&b, &conf, dir, err, sizeof(err)) != 0) {
        _exit(2);
    }

    sseq = 1;

    for (i = 0; leave_after == 0 || i < leave_after; i++) {
        batch_make(&bt, "web-1", sseq, 100, 200);

        if (relay_bucket_append(b, bt.recs, bt.n, &res) != 0) {
            _exit(3);
        }

        sseq += 100;
        batch_free(&bt);

        if (write(fd, &res.last_seq, sizeof(uint64_t)) != sizeof(uint64_t)) {
            _exit(4);
        }
    }

    _exit(0);
}


static void
crash_round(int leave_after)
{
    int                      fds[2], status;
    pid_t                    pid;
    size_t                   i, got;
    ssize_t                  n;
    uint64_t                 seq, last;
    collect_t                c;
    relay_bucket_t          *b;
    relay_append_t           res;
    relay_bucket_counters_t  k;
    batch_t                  bt;

    assert_int_equal(pipe(fds), 0);

    pid = fork();
    assert_true(pid != -1);

    if (pid == 0) {
        close(fds[0]);
        crash_child(fds[1], leave_after);
    }

    close(fds[1]);

    last = 0;
    got = 0;

    while ((n = read(fds[0], &seq, sizeof(seq))) == sizeof(seq)) {
        last = seq;

        if (leave_after == 0 && ++got == 30) {
            kill(pid, SIGKILL);
        }
    }

    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);

    if (leave_after == 0) {
        assert_true(WIFSIGNALED(status));

    } else {
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(last, (uint64_t) leave_after * 100);
    }

    assert_true(last >= 3000 || leave_after != 0);

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);

    counters(b, &k);
    assert_true(k.last_seq >= last);
    assert_int_equal(k.records, k.last_seq);

    memset(&c, 0, sizeof(c));
    read_all(b, 0, 10000, &c);
    assert_int_equal(c.n, k.last_seq);
    assert_int_equal(c.bad, 0);

    for (i = 0; i < c.n; i++) {
        assert_int_equal(c.seqs[i], i + 1);
        assert_int_equal(c.sseqs[i], i + 1);
    }

    collect_free(&c);

    /* the high-water mark and seq carry on after the crash */

    batch_make(&bt, "web-1", 1, 100, 200);
    assert_int_equal(relay_bucket_append(b, bt.recs, bt.n, &res), 0);
    assert_int_equal(res.accepted, 0);
    batch_free(&bt);

    relay_bucket_close(b);
}


static void
test_crash(void **state)
{
    (void) state;

    crash_round(0);
    teardown(NULL);
    setup(NULL);
    crash_round(7);
}


static void
test_reconfigure(void **state)
{
    char                 err[256];
    rf_buf_t             out;
    relay_bucket_t      *b;
    relay_bucket_conf_t  conf;

    (void) state;

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, "a", NULL);

    memset(&conf, 0, sizeof(conf));
    conf.name = "b";
    conf.token = "new";
    conf.max_size = 2 * MB;
    conf.overflow = RELAY_OVERFLOW_REJECT;
    conf.consumers[0] = "z";
    conf.nconsumers = 1;

    assert_int_equal(relay_bucket_reconfigure(b, &conf, err, sizeof(err)),
                     0);
    assert_string_equal(relay_bucket_conf(b)->token, "new");
    assert_int_equal(relay_bucket_conf(b)->max_size, 2 * MB);

    rf_buf_init(&out);
    assert_int_equal(relay_bucket_stats_json(b, &out), 0);
    assert_int_equal(rf_buf_addc(&out, '\0'), 0);
    assert_non_null(strstr((char *) out.data, "\"overflow\":\"reject\""));
    assert_non_null(strstr((char *) out.data, "{\"name\":\"a\","
                           "\"declared\":false"));
    assert_non_null(strstr((char *) out.data, "{\"name\":\"z\","
                           "\"declared\":true"));
    rf_buf_free(&out);

    conf.name = "other";
    assert_int_equal(relay_bucket_reconfigure(b, &conf, err, sizeof(err)),
                     -1);

    relay_bucket_close(b);
}


static void
test_perf(void **state)
{
    int                      t;
    char                     src[32];
    size_t                   i;
    double                   s;
    int64_t                  n;
    uint64_t                 t0, after, total;
    collect_t                c;
    pthread_t                tid[PERF_THREADS];
    appender_t               a[PERF_THREADS];
    relay_bucket_t          *b;
    relay_bucket_counters_t  k;

    (void) state;

    b = open_bucket(GB, 0, RELAY_OVERFLOW_DROP_OLDEST, NULL, NULL);

    /* the engine alone: the batches are built before the clock starts */

    for (t = 0; t < PERF_THREADS; t++) {
        memset(&a[t], 0, sizeof(appender_t));
        a[t].b = b;
        a[t].id = t;
        a[t].batches = PERF_BATCHES;
        a[t].records = PERF_RECORDS;
        a[t].body = PERF_BODY;
        a[t].pre = calloc(PERF_BATCHES, sizeof(batch_t));
        assert_non_null(a[t].pre);
        snprintf(src, sizeof(src), "src-%d", t);

        for (i = 0; i < PERF_BATCHES; i++) {
            batch_make(&a[t].pre[i], src, 1 + i * PERF_RECORDS, PERF_RECORDS,
                       PERF_BODY);
        }
    }

    t0 = mono_ms();

    for (t = 0; t < PERF_THREADS; t++) {
        assert_int_equal(pthread_create(&tid[t], NULL, appender, &a[t]), 0);
    }

    for (t = 0; t < PERF_THREADS; t++) {
        assert_int_equal(pthread_join(tid[t], NULL), 0);
    }

    s = (double) (mono_ms() - t0 + 1) / 1000.0;

    for (t = 0; t < PERF_THREADS; t++) {
        assert_int_equal(a[t].failed, 0);

        for (i = 0; i < PERF_BATCHES; i++) {
            batch_free(&a[t].pre[i]);
        }

        free(a[t].pre);
    }
    total = PERF_THREADS * PERF_BATCHES * PERF_RECORDS;

    counters(b, &k);
    assert_int_equal(k.records, total);

    print_message("# append: %" PRIu64 " records of %" PRIu64 " bytes in "
                  "%.2f s: %.0f records/s, %.1f MB/s (%d threads, batches "
                  "of %d)\n", total, k.bytes / total, s, total / s,
                  k.bytes / s / MB, PERF_THREADS, PERF_RECORDS);

    memset(&c, 0, sizeof(c));
    after = 0;
    t0 = mono_ms();

    for ( ;; ) {
        n = relay_bucket_read(b, after, 1000, 16 * MB, 0, read_nothing,
                              &c.n);
        assert_true(n >= 0);

        if (n == 0) {
            break;
        }

        after += (uint64_t) n;
    }

    s = (double) (mono_ms() - t0 + 1) / 1000.0;

    assert_int_equal(after, total);

    print_message("# read: %.0f records/s, %.1f MB/s (reads of 1000)\n",
                  total / s, k.bytes / s / MB);

    relay_bucket_close(b);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup_teardown(test_append_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup, setup, teardown),
        cmocka_unit_test_setup_teardown(test_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_long_poll, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cursor_ack, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_size_drop_oldest, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_max_size_reject, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_efbig, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counters_persist, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_json, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconfigure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_perf, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
