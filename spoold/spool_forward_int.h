/*
 * Copyright (C) ReplayForge contributors
 *
 * The forwarder's insides, shared by its thread and batching
 * (spool_forward.c) and its requests to the relay (spool_forward_send.c):
 * the state, which fields the main thread shares and how.
 */

#ifndef _SPOOL_FORWARD_INT_H_INCLUDED_
#define _SPOOL_FORWARD_INT_H_INCLUDED_


#include <pthread.h>
#include <stdint.h>

#include <zstd.h>

#include "rf_buf.h"
#include "rf_http.h"
#include "rf_ratelimit.h"
#include "rf_ring.h"
#include "spoold.h"
#include "spool_forward.h"
#include "spool_store.h"


#define SPOOL_FWD_ACKS          64
#define SPOOL_FWD_ERROR_MAX     256
#define SPOOL_FWD_REOPEN        (1000 * 1000000ULL)     /* ns */
#define SPOOL_FWD_BODY_MAX      4096    /* of an answer: a JSON error */


typedef struct {
    uint64_t                    upto;
    int                         rejected;
} spool_fwd_ack_t;


typedef struct {
    rf_buf_t                    data;       /* the records back to back */
    rf_buf_t                    bucket;
    uint64_t                    first;
    uint64_t                    last;
    uint64_t                    n;
    uint64_t                    max_n;      /* this batch's limits */
    uint64_t                    max_bytes;
    uint64_t                    started;    /* ns, its first record */
    unsigned                    full:1;     /* or another bucket follows */
    unsigned                    sealed:1;   /* the linger is over */
    unsigned                    paid_n:1;   /* tokens taken */
    unsigned                    paid_bytes:1;
    unsigned                    reread:1;   /* read it again, then send */
} spool_fwd_batch_t;


/*
 * Fields are the main thread's, the forwarder's, or shared: those under
 * lock, or read and written with __atomic (no bit-fields among them, as
 * neighbouring bits would be written by both threads).
 */
struct spool_fwd_s {

    /* shared */
    pthread_mutex_t             lock;
    pthread_cond_t              cond;       /* records, stop, ack room */
    int                         stop;       /* __atomic */
    uint64_t                    stored;     /* __atomic: in the buffer */
    uint64_t                    acked;      /* __atomic: the relay has */
    spool_fwd_ack_t             acks[SPOOL_FWD_ACKS];   /* under lock */
    size_t                      nacks;
    spool_meta_t                meta;
    rf_ring_stats_t             ring;
    int                         ring_attached;
    int                         http_live;  /* wakeup may be called */

    /* the main thread's */
    pthread_t                   thread;
    int                         running;
    uint64_t                    applied;

    /* the forwarder's */
    spoold_conf_t               conf;       /* a copy */
    spool_store_t              *store;
    rf_http_client_t            http;
    ZSTD_CCtx                  *zctx;
    rf_buf_t                    zbuf;       /* a batch compressed, JSON */
    rf_buf_t                    text;       /* a URL */
    rf_ratelimit_t              rl_n;
    rf_ratelimit_t              rl_bytes;
    spool_fwd_batch_t           batch;
    uint64_t                    cursor;     /* acknowledged up to */
    uint64_t                    retry_at;   /* ns */
    uint64_t                    backoff;    /* ns, the next pause */
    uint64_t                    hb_next;    /* ns */
    uint64_t                    relay_max;  /* bytes a batch, after 413 */
    uint64_t                    rng;
    int                         failing;
    char                        host[256];

    /* the forwarder's counters, kept across restarts */
    uint64_t                    sent_records;
    uint64_t                    sent_bytes;
    uint64_t                    errors;
    uint64_t                    hb_records;     /* sent_records then */
    uint64_t                    hb_ns;          /* the last heartbeat */
    char                        last_error[SPOOL_FWD_ERROR_MAX];
};


/* spool_forward_send.c: the batch to the relay, and its answer */
void spool_fwd_send(spool_fwd_t *f);
void spool_fwd_heartbeat(spool_fwd_t *f, uint64_t now);

/* spool_forward.c: the relay has the batch (or refused it for good) */
void spool_fwd_done(spool_fwd_t *f, int rejected);


#endif /* _SPOOL_FORWARD_INT_H_INCLUDED_ */
