/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's configuration (spoold_conf.c), shared by the daemon
 * (spoold.c) and the one-shot --dump and --stats commands (spool_dump.c).
 */

#ifndef _SPOOLD_H_INCLUDED_
#define _SPOOLD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_conf.h"


#define SPOOLD_NAME             "rf-spoold"
#define SPOOLD_VERSION          "0.1.0"


/* bucket NAME { token T; script FILE; } */
typedef struct {
    char                       *name;
    char                       *token;
    char                       *script;         /* NULL or "": none */
} spoold_bucket_t;


typedef struct {
    char                       *id;
    char                       *ring;
    char                       *buffer;
    uint64_t                    max_buffer;
    int                         overflow;       /* SPOOL_DROP_* */
    int64_t                     batch;
    uint64_t                    batch_linger;   /* ms */
    uint64_t                    stall_timeout;  /* ms */
    int                         log_level;      /* RF_LOG_* */

    /* forwarding (spool_forward.c); relay NULL: none */
    char                       *relay;          /* no trailing slash */
    char                       *token;          /* token or token_file */
    spoold_bucket_t            *buckets;
    size_t                      nbuckets;
    uint64_t                    rate;           /* records/s, 0: none */
    uint64_t                    rate_bytes;     /* bytes/s, 0: none */
    int64_t                     forward_batch;
    uint64_t                    forward_batch_bytes;
    uint64_t                    forward_linger; /* ms */
    uint64_t                    retry_max;      /* ms */
    uint64_t                    heartbeat;      /* ms */

    /* Lua (spool_script.c); script NULL or "": none */
    char                       *script;
    int64_t                     script_budget;  /* instructions per call */
    uint64_t                    script_memory;  /* bytes per script */
    uint64_t                    script_tick;    /* ms */
    char                       *dead_letter;    /* NULL: buffer.dead.ndjson */
    uint64_t                    dead_letter_max;
} spoold_conf_t;


extern const char *const  spoold_overflow_names[];
extern const char *const  spoold_level_names[];


/* A directive given as a flag (kept for reloads); 0, or -1 if too many. */
int spoold_conf_flag(const char *name, const char *value);

/* Defaults, then the file (NULL: none), then the flags.  0 or -1, err. */
int spoold_conf_load(spoold_conf_t *conf, const char *file, char *err,
    size_t errlen);

/*
 * What the daemon needs besides valid directives: id, ring, buffer, and a
 * token when a relay is set.
 */
int spoold_conf_check(const spoold_conf_t *conf, char *err, size_t errlen);
void spoold_conf_free(spoold_conf_t *conf);

/* spoold_conf_fwd.c: handlers of relay, token(_file), bucket, rate(_bytes) */
int spoold_conf_relay(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen);
int spoold_conf_token_set(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
int spoold_conf_bucket(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen);
int spoold_conf_rate(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen);

/* A deep copy (for the forwarder's thread); 0, or -1 with ENOMEM. */
int spoold_conf_dup(spoold_conf_t *dst, const spoold_conf_t *src);

/* The token for records of bucket (the bucket's, else the global one). */
const char *spoold_conf_token(const spoold_conf_t *conf, const char *bucket,
    size_t len);

/* 1 when the forwarding settings of a and b differ (a reload). */
int spoold_conf_fwd_changed(const spoold_conf_t *a, const spoold_conf_t *b);

/* -t: prints nginx's "syntax is ok" lines or the error; exit status. */
int spoold_conf_test(const char *file);

/* Print every buffered record as NDJSON; returns the exit status. */
int spool_dump(const spoold_conf_t *conf);

/* Print the buffer's (and the ring's) counters as JSON; the exit status. */
int spool_stats(const spoold_conf_t *conf);


#endif /* _SPOOLD_H_INCLUDED_ */
