/*
 * Copyright (C) ReplayForge contributors
 *
 * What the http sink's two files share: its configuration (applied by
 * player_sink_http.c) and its running state, driven by the libcurl multi
 * loop of player_sink_http_send.c.
 */

#ifndef _PLAYER_SINK_HTTP_H_INCLUDED_
#define _PLAYER_SINK_HTTP_H_INCLUDED_


#include <stdint.h>

#include <curl/curl.h>

#include "player.h"
#include "rf_ratelimit.h"


#define PLAYER_HTTP_TARGETS_MAX     64      /* a bit each in a uint64_t */
#define PLAYER_HTTP_HEADERS_MAX     64
#define PLAYER_HTTP_PARTIAL_MAX     4096
#define PLAYER_HTTP_METHOD_MAX      32

#define PLAYER_HTTP_HOST_KEEP       0
#define PLAYER_HTTP_HOST_TARGET     1

#define player_http_add(p, v)   __atomic_add_fetch(p, v, __ATOMIC_RELAXED)


typedef struct {
    char                       *name;
    char                       *value;      /* "": drop, send nothing */
} player_http_header_t;


typedef struct {
    char                      **targets;
    size_t                      ntargets;
    player_http_header_t       *headers;
    size_t                      nheaders;
    int64_t                     concurrency;
    int64_t                     rate;
    double                      speed;
    uint64_t                    max_wait;
    uint64_t                    timeout;
    int                         host;
    int                         compare;
    char                       *mismatch_log;
} player_http_conf_t;


/* counters are written by the sink's thread, read with atomic loads */
typedef struct {
    char                       *base;       /* the URL, no trailing '/' */
    uint64_t                    requests;   /* answered */
    uint64_t                    errors;     /* no answer */
    uint64_t                    mismatches;
    uint64_t                    status[6];  /* by class: [1] 1xx .. [5] */
    uint64_t                    latency_us; /* replayed, summed */
    uint64_t                    orig_us;    /* the originals of the same */
    uint64_t                    orig_count;
    unsigned                    inflight;
    size_t                      next;       /* the batch's next record */
} player_http_target_t;


/* one request in flight: an easy handle and what it was made of */
typedef struct {
    CURL                       *easy;
    struct curl_slist          *headers;
    size_t                      rec;
    unsigned                    target;
    int                         busy;
    char                        method[PLAYER_HTTP_METHOD_MAX + 1];
    char                        error[CURL_ERROR_SIZE];
} player_http_slot_t;


/* a record replayed to some targets only: never replay it to them again */
typedef struct {
    uint64_t                    seq;
    const unsigned char        *buf;        /* the record's bytes */
    uint64_t                    done;       /* a bit per target */
} player_http_partial_t;


/* per record of the batch being written */
typedef struct {
    uint64_t                    done;       /* targets that answered */
    uint64_t                    orig_us;
    unsigned                    left;       /* targets still to go */
    int                         status;     /* PLAYER_* so far */
    const char                 *why;
    unsigned                    has_orig:1;
} player_http_job_t;


typedef struct {
    player_sink_t              *sink;
    player_http_conf_t         *conf;
    CURLM                      *multi;
    player_http_target_t       *targets;
    player_http_slot_t         *slots;      /* concurrency per target */
    size_t                      nslots;
    player_http_job_t          *jobs;
    size_t                      njobs;      /* allocated */
    rf_buf_t                    line;       /* URL, header lines, NDJSON */
    rf_ratelimit_t              rl;
    int                         mismatch_fd;

    player_http_partial_t       partial[PLAYER_HTTP_PARTIAL_MAX];
    size_t                      npartial;
    size_t                      partial_next;

    /* pacing (speed > 0): a capture time and when it was replayed */
    int                         anchored;
    uint64_t                    anchor_mono;
    uint64_t                    anchor_rec;
    uint64_t                    capped_seq;
    uint64_t                    capped_due;
    int                         capped;

    size_t                      admitted;   /* records of the batch begun */

    uint64_t                    skipped;    /* not http */
    uint64_t                    truncated;  /* replayed with a cut body */
    uint64_t                    waits;      /* pacing waits cut to max */
} player_http_ctx_t;


int player_sink_http_write(player_sink_t *s, const player_rec_t *recs,
    size_t n, int *status, const char **why);
int player_sink_http_slot_init(player_http_ctx_t *ctx,
    player_http_slot_t *slot);
const char *player_sink_http_start(player_http_ctx_t *ctx,
    player_http_slot_t *slot, const rf_rec_t *rec);


#endif /* _PLAYER_SINK_HTTP_H_INCLUDED_ */
