/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-relayd's configuration (relayd_conf.c), its HTTP front (relay_http.c)
 * and the stats side (relay_stats.c: /v1/stats, /metrics, heartbeats),
 * shared by the daemon's main loop (relayd.c).
 */

#ifndef _RELAYD_H_INCLUDED_
#define _RELAYD_H_INCLUDED_


#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "rf_check.h"
#include "rf_ratelimit.h"
#include "relay_bucket.h"


#define RELAYD_NAME             "rf-relayd"
#define RELAYD_VERSION          "0.1.0"

#define RELAYD_MAX_BUCKETS      256


typedef struct {
    char                       *listen;
    char                       *stats_listen;   /* "off": none */
    char                       *data;
    int64_t                     max_connections;
    uint64_t                    max_batch;      /* bytes, decompressed */
    uint64_t                    client_timeout; /* ms */
    uint64_t                    max_wait;       /* ms */
    int                         log_level;
    relay_bucket_conf_t         buckets[RELAYD_MAX_BUCKETS];
    size_t                      nbuckets;
} relayd_conf_t;


/*
 * The running relay.  buckets[] only grows (a reload may add buckets), and
 * nbuckets is published with a release store after the slot is filled, so
 * connection threads read it without a lock; lock guards what a reload
 * changes under them (tokens, limits).
 */
typedef struct {
    relayd_conf_t               conf;
    relay_bucket_t             *buckets[RELAYD_MAX_BUCKETS];
    size_t                      nbuckets;
    pthread_rwlock_t            lock;
    pthread_mutex_t             rate_lock;  /* guards rate[] */
    rf_ratelimit_t              rate[RELAYD_MAX_BUCKETS];
    uint64_t                    started_ms;
    volatile int                quit;
} relayd_t;


extern const char *const  relayd_level_names[];
extern const char *const  relayd_overflow_names[];


/* A directive given as a flag (kept for reloads); 0, or -1 if too many. */
int relayd_conf_flag(const char *name, const char *value);

/* Defaults, then the file (NULL: none), then the flags.  0 or -1, err. */
int relayd_conf_load(relayd_conf_t *conf, const char *file, char *err,
    size_t errlen);
void relayd_conf_free(relayd_conf_t *conf);

/* -t: prints nginx's "syntax is ok" lines or the error; exit status. */
int relayd_conf_test(const char *file);


/* Start the API and stats listeners; 0, or -1 with err set. */
int relay_http_start(relayd_t *rd, char *err, size_t errlen);
void relay_http_stop(void);

/* The bucket named name (len bytes), or NULL. */
relay_bucket_t *relayd_bucket(relayd_t *rd, const char *name, size_t len);

/*
 * The bucket's ingest rate limit: 0 when n records may go in now, else
 * the seconds to wait (nothing taken).
 */
uint64_t relayd_rate_take(relayd_t *rd, relay_bucket_t *b, size_t n);


/* Heartbeats: remember a system's latest report.  0, or -1 with err. */
int relay_stats_heartbeat(const char *body, size_t len, const char *addr,
    uint64_t now_ms, char *err, size_t errlen);
int relay_stats_json(relayd_t *rd, rf_buf_t *out);
int relay_stats_metrics(relayd_t *rd, rf_buf_t *out);
void relay_stats_free(void);

uint64_t relayd_now_ms(void);


#endif /* _RELAYD_H_INCLUDED_ */
