/*
 * Copyright (C) ReplayForge contributors
 *
 * The insides of a bucket, shared by its API (relay_bucket.c), its writer
 * thread (relay_bucket_writer.c, _txn.c, _retain.c) and its stats
 * (relay_bucket_stats.c).
 *
 * Who owns what: b->lock guards the job queue, the committed state (meta,
 * last seq, the sources' committed stats, the consumers, the rates) and
 * the reader pool.  The writer connection, the limits and the pending
 * (uncommitted) state belong to the writer thread alone.
 */

#ifndef _RELAY_BUCKET_INT_H_INCLUDED_
#define _RELAY_BUCKET_INT_H_INCLUDED_


#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rf_check.h"
#include "rf_sqlite.h"
#include "relay_bucket.h"
#include "relay_store.h"


#define RELAY_READERS           4       /* reader connections per bucket */
#define RELAY_CELL_OVERHEAD     32      /* rowid, stored_ms, size, header */
#define RELAY_DROP_CHUNK        65536   /* records per DELETE at most */
#define RELAY_SMALL_FRAMES      16      /* meta, consumers, tree above */


/* A source's numbers; kept committed, pending (txn) and per job. */
typedef struct {
    uint64_t                    max_sseq;
    uint64_t                    records;
    uint64_t                    bytes;
    uint64_t                    duplicates;
    uint64_t                    last_ms;
} relay_src_stat_t;


typedef struct relay_source_s  relay_source_t;

struct relay_source_s {
    relay_source_t             *next;       /* hash chain */
    relay_source_t             *txn_next;   /* touched in the txn */
    relay_source_t             *job_next;   /* touched in the job */
    uint32_t                    hash;
    int                         committed;  /* shown in the stats */
    uint64_t                    txn_gen;
    uint64_t                    job_gen;
    relay_src_stat_t            c;          /* committed (b->lock) */
    relay_src_stat_t            p;          /* the open txn's */
    relay_src_stat_t            j;          /* the running job's */
    uint64_t                    step_records;
    double                      rate_in;
    size_t                      len;
    unsigned char               id[];
};


typedef struct {
    char                        name[RELAY_NAME_MAX + 1];
    uint64_t                    cursor;     /* committed */
    uint64_t                    last_ms;    /* seen; saved lazily */
    uint64_t                    pend_cursor;
    uint64_t                    txn_gen;
    int                         declared;   /* changed by the writer */
    int                         dirty;      /* last_ms unsaved (b->lock) */
} relay_consumer_t;


typedef enum {
    RELAY_JOB_APPEND = 0,
    RELAY_JOB_ACK,
    RELAY_JOB_TICK,
    RELAY_JOB_CONF
} relay_job_type_t;


typedef struct relay_job_s  relay_job_t;

struct relay_job_s {
    relay_job_t                *next;
    relay_job_type_t            type;
    int                         done;
    int                         rc;
    int                         err;        /* errno when rc is -1 */

    /* append */
    const rf_rec_t             *recs;
    size_t                      n;
    uint64_t                    bytes;
    relay_append_t             *res;

    /* ack */
    relay_consumer_t           *consumer;
    uint64_t                    upto;
    uint64_t                    cursor;

    /* tick */
    uint64_t                    now_ms;

    /* reconfigure */
    relay_bucket_conf_t        *conf;
};


/* a reconfigured bucket keeps its old confs until close (readers) */
typedef struct relay_conf_node_s  relay_conf_node_t;

struct relay_conf_node_s {
    relay_conf_node_t          *next;
    relay_bucket_conf_t         conf;
};


struct relay_bucket_s {
    relay_bucket_conf_t        *conf;
    relay_conf_node_t          *confs;
    char                       *path;

    pthread_mutex_t             lock;
    pthread_cond_t              work_cond;      /* the writer waits */
    pthread_cond_t              done_cond;      /* jobs are done */
    pthread_cond_t              commit_cond;    /* readers wait */
    pthread_cond_t              pool_cond;
    pthread_t                   writer;
    int                         writer_started;
    int                         closing;

    relay_job_t                *head;
    relay_job_t               **tail;

    /* committed state, under lock */
    relay_meta_t                meta;
    uint64_t                    first_seq;
    uint64_t                    oldest_ms;
    relay_source_t            **sources;        /* hash */
    size_t                      nsources;
    size_t                      sources_size;
    relay_consumer_t          **consumers;
    size_t                      nconsumers;
    size_t                      consumers_cap;

    /* rates, under lock */
    uint64_t                    step_ms;
    uint64_t                    step_in;
    uint64_t                    step_out;
    double                      rate_in;
    double                      rate_out;
    float                       hist_in[RELAY_HISTORY_LEN];
    float                       hist_out[RELAY_HISTORY_LEN];
    size_t                      hist_pos;       /* next slot */
    size_t                      hist_len;

    /* reader pool, under lock; users: threads inside read or a job */
    relay_store_t              *readers[RELAY_READERS];
    size_t                      nfree;
    size_t                      users;

    /* the writer thread's own */
    relay_store_t              *store;
    rf_sqlite_cap_t             cap;
    uint64_t                    ratio;
    uint64_t                    txn_gen;
    uint64_t                    job_gen;
    relay_meta_t                saved;          /* what the file holds */
    uint64_t                    appends;        /* since the last tick */
    int                         over_cap;
    relay_source_t             *cache;          /* the last one looked up */
};


/* One transaction of the writer: what it changes until COMMIT. */
typedef struct {
    uint64_t                    gen;
    relay_meta_t                snap;       /* b->meta when it began */
    relay_meta_t                d;          /* its changes, mod 2^64 */
    uint64_t                    next_seq;   /* the last seq given */
    uint64_t                    unread;     /* seq > unread: unread */
    uint64_t                    now_ms;
    relay_source_t             *sources;
    relay_source_t             *job_sources;
    int                         deleted;
    int                         acked;
} relay_txn_t;


/* relay_bucket_writer.c */
void *relay_bucket_writer(void *arg);
int relay_bucket_make_room(relay_bucket_t *b, relay_txn_t *tx,
    relay_meta_t *jd, uint64_t need, uint64_t limit);
uint64_t relay_bucket_chunk(relay_bucket_t *b);

/* relay_bucket_retain.c */
void relay_bucket_do_tick(relay_bucket_t *b, relay_job_t *job);
void relay_bucket_do_conf(relay_bucket_t *b, relay_job_t *job);
int relay_bucket_flush(relay_bucket_t *b);
int relay_bucket_declare(relay_bucket_t *b,
    const relay_bucket_conf_t *conf);

/* relay_bucket_txn.c */
int relay_bucket_load(relay_bucket_t *b, char *err, size_t errlen);
int relay_bucket_apply_limits(relay_bucket_t *b);
int relay_bucket_txn_begin(relay_bucket_t *b, relay_txn_t *tx,
    uint64_t frames);
int relay_bucket_txn_commit(relay_bucket_t *b, relay_txn_t *tx);
void relay_meta_add(relay_meta_t *a, const relay_meta_t *d);
uint64_t relay_bucket_mono_ms(void);

/* relay_bucket_stats.c */
relay_source_t *relay_bucket_source(relay_bucket_t *b, const rf_str_t *id,
    int create);
void relay_bucket_sources_free(relay_bucket_t *b);
relay_consumer_t *relay_bucket_consumer(relay_bucket_t *b, const char *name,
    int create);
void relay_bucket_rates(relay_bucket_t *b, uint64_t now_ms);
uint64_t relay_bucket_min_cursor(relay_bucket_t *b, int declared_only,
    int *any);
uint64_t relay_bucket_now_ms(void);


#endif /* _RELAY_BUCKET_INT_H_INCLUDED_ */
