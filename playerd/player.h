/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-playerd's shared types: the batch a pull hands to the sinks, the
 * sink interface every sink type implements (player_sink_*.c), and what
 * the core (playerd.c, player_conf.c, player_pull.c) offers the rest:
 * metrics, health, the record's JSON view.
 *
 * The core pulls a batch for a bucket/consumer, gives it to every sink
 * of the bucket, retries the records a sink could not take yet (up to
 * max_tries, with backoff), sends what still fails to the dead-letter
 * file, and acks the batch only when every sink has taken or dead-lettered
 * every record.  A sink never sees the same record twice after it said
 * PLAYER_OK.
 */

#ifndef _PLAYER_H_INCLUDED_
#define _PLAYER_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "rf_conf.h"
#include "rf_lua.h"
#include "rf_record.h"


#define PLAYERD_NAME            "rf-playerd"
#define PLAYERD_VERSION         "0.1.0"

#define PLAYER_NAME_MAX         64


/* a record's outcome in a sink's write() */
#define PLAYER_OK               0   /* taken: never offered again */
#define PLAYER_RETRY            1   /* not now: offered again later */
#define PLAYER_FAIL             2   /* never: dead-letter it now */


typedef struct {
    uint64_t                    seq;        /* the relay's */
    rf_rec_t                    rec;        /* a view into the batch */
} player_rec_t;


typedef struct {
    const char                 *bucket;
    const char                 *consumer;
    player_rec_t               *recs;
    size_t                      n;
} player_batch_t;


typedef struct player_sink_s  player_sink_t;


typedef struct {
    const char                 *type;       /* "http", "sqlite", ... */

    /* the directives of "sink TYPE NAME { ... }", offsets into conf */
    const rf_conf_cmd_t        *cmds;
    size_t                      conf_size;

    /* after the block was applied: cross-directive checks; 0 or -1 */
    int  (*check)(void *conf, char *err, size_t errlen);

    /* start: files, handles, threads; 0, or -1 with err set */
    int  (*open)(player_sink_t *s, char *err, size_t errlen);

    /*
     * Take n records: set status[i] to PLAYER_OK, PLAYER_RETRY or
     * PLAYER_FAIL for each; on PLAYER_FAIL and PLAYER_RETRY write a short
     * reason to why[i] (a static string, or NULL).  May block (pacing,
     * rate limits, network), but must return within its own timeouts.
     * Returns 0, or -1 when the sink itself is broken (all RETRY).
     */
    int  (*write)(player_sink_t *s, const player_rec_t *recs, size_t n,
                  int *status, const char **why);

    /* stop threads, flush and close */
    void (*close)(player_sink_t *s);

    /*
     * Extra members of this sink's object in the stats (",\"k\":v"...),
     * and extra Prometheus sample lines (name{bucket=,sink=} value);
     * either may be NULL.  0 or -1 (ENOMEM).
     */
    int  (*stats_json)(player_sink_t *s, rf_buf_t *out);
    int  (*metrics)(player_sink_t *s, rf_buf_t *out);

    /* free conf's own allocations (STR members are released by the core) */
    void (*free_conf)(void *conf);
} player_sink_type_t;


struct player_sink_s {
    const player_sink_type_t   *type;
    char                       *name;
    const char                 *bucket;
    void                       *conf;       /* conf_size bytes, applied */
    void                       *ctx;        /* the sink's own state */

    /* "script FILE;" in the block: run on what reaches this sink */
    char                       *script;
    rf_lua_t                   *lua;

    /* kept by the core; read with __atomic loads from other threads */
    uint64_t                    taken;
    uint64_t                    retried;
    uint64_t                    dead;
};


/* every sink type; player_sinks.c lists them */
extern const player_sink_type_t  player_sink_http;
extern const player_sink_type_t  player_sink_sqlite;
extern const player_sink_type_t  player_sink_file;
extern const player_sink_type_t  player_sink_discord;
extern const player_sink_type_t  player_sink_log;

const player_sink_type_t *player_sink_type(const char *name);


/* From the core, for the API listener (player_api.c). */

/* Prometheus text of the whole player; 0 or -1 (ENOMEM). */
int player_metrics(rf_buf_t *out);

/* 1 while every pipeline runs (the relay may be away: still healthy). */
int player_healthy(void);


#endif /* _PLAYER_H_INCLUDED_ */
