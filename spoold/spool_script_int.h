/*
 * Copyright (C) ReplayForge contributors
 *
 * The insides of rf-spoold's scripts shared by spool_script.c (loading,
 * running, tick()) and spool_script_store.c (the queue's commits and the
 * counters).
 */

#ifndef _SPOOL_SCRIPT_INT_H_INCLUDED_
#define _SPOOL_SCRIPT_INT_H_INCLUDED_


#include "rf_lua.h"
#include "spool_dead.h"
#include "spool_script.h"


typedef struct {
    rf_lua_t                   *lua;
    char                       *bucket;     /* NULL: the global script */
    rf_lua_stats_t              base;       /* counted in the meta already */
    rf_lua_stats_t              seen;       /* as of the last counts() */
} spool_lua_t;


struct spool_script_set_s {
    spool_lua_t                *luas;
    size_t                      n;
    spool_lua_t                *global;
    char                       *dead_letter;
    uint64_t                    dead_letter_max;
    uint64_t                    tick_ms;
    char                       *source;     /* the id, for dead letters */
    unsigned                    transform:1;    /* some transform() */
    unsigned                    buckets:1;      /* some bucket transform() */
    unsigned                    tick:1;         /* some tick() */
};


struct spool_script_s {
    spool_script_set_t         *set;
    spool_dead_t                dead;
    rf_lua_out_t                out;        /* waits for the next commit */
    rf_lua_out_t                stage;      /* the global script's outputs */
    rf_buf_t                    stamp;
    spool_script_counts_t       carry;      /* closed scripts, dead letters */
    spool_script_counts_t       carry_seen; /* of it, in the last counts() */
    uint64_t                    next_tick;  /* ms; 0: one interval away */
};


#define SPOOL_SCRIPT_NCOUNTS                                                  \
    (sizeof(spool_script_counts_t) / sizeof(uint64_t))



/* Add now - base of a script's stats to c. */
void spool_script_delta(spool_script_counts_t *c, const rf_lua_stats_t *now,
    const rf_lua_stats_t *base);


#endif /* _SPOOL_SCRIPT_INT_H_INCLUDED_ */
