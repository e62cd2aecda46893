/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-playerd's core, between its own files: the configuration
 * (player_conf.c), the relay client (player_pull.c), the pipelines
 * (playerd.c, player_run.c), the dead-letter file and the heartbeat
 * with the metrics (player_heartbeat.c).  The sinks only see player.h.
 */

#ifndef _PLAYERD_H_INCLUDED_
#define _PLAYERD_H_INCLUDED_


#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "player.h"
#include "rf_http.h"


#define PLAYER_MAX_BUCKETS      64
#define PLAYER_MAX_SINKS        32
#define PLAYER_BACKOFF_MAX_MS   5000        /* retries of a sink */
#define PLAYER_RELAY_BACKOFF_MS 10000       /* relay errors, at most */
#define PLAYER_TOKEN_MAX        4096


typedef struct {
    char                       *name;
    char                       *consumer;
    char                       *token;      /* NULL: the top level's */
    int64_t                     batch;
    uint64_t                    wait;       /* ms */
    char                       *script;     /* "script FILE;" */
    rf_lua_t                   *lua;        /* its state, opened at load */
    player_sink_t              *sinks[PLAYER_MAX_SINKS];
    size_t                      nsinks;
} player_bucket_conf_t;


typedef struct {
    char                       *relay;
    char                       *token;
    char                       *token_file;
    char                       *id;
    char                       *api_listen;
    char                       *htpasswd;
    char                       *dead_letter;
    int64_t                     max_tries;
    uint64_t                    retry_backoff;  /* ms */
    uint64_t                    heartbeat;      /* ms, 0: none */
    int                         log_level;
    int64_t                     script_budget;
    uint64_t                    script_memory;
    uint64_t                    script_tick;    /* ms */
    player_bucket_conf_t        buckets[PLAYER_MAX_BUCKETS];
    size_t                      nbuckets;
} player_conf_t;


/* player_conf.c */

int player_conf_flag(const char *name, const char *value);
int player_conf_load(player_conf_t *conf, const char *file, char *err,
    size_t errlen);
void player_conf_free(player_conf_t *conf);
int player_conf_test(const char *file);
const char *player_bucket_token(const player_conf_t *conf,
    const player_bucket_conf_t *b);


/* player_pull.c: the relay API over rf_http (one handle a thread) */

#define PLAYER_HTTP_BODY_MAX    (2 * (size_t) RF_REC_MAX_SIZE + 65536)

int player_http_init(rf_http_client_t *h, const int *stop, char *err,
    size_t errlen);

/*
 * GET records after "after" (0: after the consumer's cursor) into
 * h->body; 0 with res->status set (200, 204, ...), or -1 with errno
 * ECANCELED when stopped, EIO on a transport error.
 */
int player_http_pull(rf_http_client_t *h, const char *relay,
    const char *bucket, const char *consumer, const char *token,
    uint64_t after, int64_t max, uint64_t wait_ms, rf_http_res_t *res);
int player_http_ack(rf_http_client_t *h, const char *relay,
    const char *bucket, const char *consumer, const char *token,
    uint64_t upto, rf_http_res_t *res);
int player_http_post_json(rf_http_client_t *h, const char *url,
    const char *token, const void *body, size_t len, uint64_t timeout_ms,
    rf_http_res_t *res);


/* a pulled batch: the answer's bytes and views of its records */
typedef struct {
    rf_buf_t                    body;
    player_rec_t               *recs;
    size_t                      n;
    size_t                      cap;
    uint64_t                    last_seq;
} player_chunk_t;


/*
 * Records on their way to the sinks: views into a chunk or into what a
 * script produced, and the route of each (an offset into the script's
 * rf_lua_out_t routes, or RF_LUA_NO_ROUTE: every sink).
 */
typedef struct {
    player_rec_t               *recs;
    size_t                     *routes;
    size_t                      n;
    size_t                      cap;
} player_recs_t;


/* one bucket's pipeline: a fetcher thread one batch ahead, a sink thread */
typedef struct {
    player_conf_t              *conf;
    player_bucket_conf_t       *bc;
    const char                 *token;

    int                         stop;
    pthread_t                   fetch_tid;
    pthread_t                   pipe_tid;
    unsigned                    fetch_started:1;
    unsigned                    pipe_started:1;

    pthread_mutex_t             lock;
    pthread_cond_t              cond;
    player_chunk_t             *ready;      /* fetched, not yet taken */

    rf_http_client_t            fetch_http;
    rf_http_client_t            ack_http;

    /* the sink thread's: what the scripts produced (player_script.c) */
    rf_lua_out_t                bout;
    rf_lua_out_t                sout;
    player_recs_t               brecs;
    player_recs_t               srecs;
    uint64_t                    next_tick;  /* player_now_ms() */

    /* __atomic: read by the heartbeat and the metrics */
    uint64_t                    pulled;
    uint64_t                    acked_seq;
    uint64_t                    seen_seq;
    uint64_t                    dead;
    uint64_t                    errors;
    int                         running;
} player_pipe_t;


/* player_pull.c: pull a batch (retried until it came), ack one */

int player_pull_batch(player_pipe_t *p, uint64_t after,
    player_chunk_t **out);
int player_pull_ack(player_pipe_t *p, uint64_t upto);
void player_chunk_free(player_chunk_t *c);


/* playerd.c: the running pipelines, under player_pipes_lock */

extern pthread_rwlock_t   player_pipes_lock;
extern player_pipe_t     *player_pipes;
extern size_t             player_npipes;
extern player_conf_t     *player_pipes_conf;


/* player_run.c: a batch through every sink, and the dead-letter file */

/* 0 when every sink took or dead-lettered every record; -1 stopped */
int player_run_batch(player_pipe_t *p, player_chunk_t *c);
/* ticks due: run them; 0, or -1 stopped */
int player_run_tick(player_pipe_t *p);
int player_dead_open(const char *path, char *err, size_t errlen);
/* sink NULL: a bucket's script; script: the one that failed, or NULL */
int player_dead_write(player_pipe_t *p, const char *sink, const char *script,
    unsigned tries, const char *reason, const rf_rec_t *rec);
void player_dead_close(void);


/* player_script.c: the Lua scripts of a configuration and of a pipeline */

int player_scripts_open(player_conf_t *conf, char *err, size_t errlen);
int player_script_ticks(const player_bucket_conf_t *bc);
void player_script_init(player_pipe_t *p);
void player_script_free(player_pipe_t *p);
/* in NULL: the bucket's tick(); 0, or -1 stopped */
int player_script_bucket(player_pipe_t *p, const player_rec_t *in, size_t n,
    player_recs_t **out, int *dead);
int player_script_sink(player_pipe_t *p, player_sink_t *s,
    const player_recs_t *in, player_recs_t **out, int *dead);
int player_script_sink_tick(player_pipe_t *p, player_sink_t *s,
    player_recs_t **out);
int player_script_stats_json(const player_bucket_conf_t *bc, rf_buf_t *b);
/* under player_pipes_lock */
int player_script_metrics(rf_buf_t *out);


/* player_heartbeat.c: the heartbeat thread; metrics and health */

typedef struct {
    uint64_t                    pulled;
    uint64_t                    acked_seq;
    uint64_t                    seen_seq;
    uint64_t                    dead;
    uint64_t                    errors;
} player_bucket_stats_t;

void player_bucket_stats(size_t i, player_bucket_stats_t *st);

int player_heartbeat_start(player_conf_t *conf, char *err, size_t errlen);
void player_heartbeat_stop(void);


/* playerd.c */

extern int  player_foreground;

uint64_t player_now_ms(void);
/* sleep ms, cut short when *stop becomes set; 0, or -1 when stopped */
int player_sleep(const int *stop, uint64_t ms);
/* ms at random in [ms/2, ms] */
uint64_t player_jitter(uint64_t ms);


#endif /* _PLAYERD_H_INCLUDED_ */
