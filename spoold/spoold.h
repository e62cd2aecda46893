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


#define SPOOLD_NAME             "rf-spoold"
#define SPOOLD_VERSION          "0.1.0"


typedef struct {
    char                       *id;
    char                       *ring;
    char                       *buffer;
    uint64_t                    max_buffer;
    int                         overflow;       /* SPOOL_DROP_* */
    int64_t                     batch;
    uint64_t                    stall_timeout;  /* ms */
    int                         log_level;      /* RF_LOG_* */
} spoold_conf_t;


extern const char *const  spoold_overflow_names[];
extern const char *const  spoold_level_names[];


/* A directive given as a flag (kept for reloads); 0, or -1 if too many. */
int spoold_conf_flag(const char *name, const char *value);

/* Defaults, then the file (NULL: none), then the flags.  0 or -1, err. */
int spoold_conf_load(spoold_conf_t *conf, const char *file, char *err,
    size_t errlen);

/* What the daemon needs besides valid directives: id, ring, buffer. */
int spoold_conf_check(const spoold_conf_t *conf, char *err, size_t errlen);
void spoold_conf_free(spoold_conf_t *conf);

/* -t: prints nginx's "syntax is ok" lines or the error; exit status. */
int spoold_conf_test(const char *file);

/* Print every buffered record as NDJSON; returns the exit status. */
int spool_dump(const spoold_conf_t *conf);

/* Print the buffer's (and the ring's) counters as JSON; the exit status. */
int spool_stats(const spoold_conf_t *conf);


#endif /* _SPOOLD_H_INCLUDED_ */
