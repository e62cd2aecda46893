/*
 * Copyright (C) ReplayForge contributors
 *
 * The Lua 5.4 bridge rf-spoold and rf-playerd run transforms with.
 *
 * One rf_lua_t is one sandboxed lua_State running one script file: no
 * io, os (but time, clock, date), package, require, debug, loadfile,
 * dofile, string.dump; load() takes text only.  Each call into the
 * script (transform, tick) runs on a coroutine under an instruction
 * budget: a count hook yields the coroutine away when the budget is
 * spent, so neither pcall nor a coroutine of the script's own can catch
 * it.  A custom allocator caps the state's memory.
 *
 * A record is handed to transform() as a table with the fields of its
 * JSON view (DESIGN §3), but the body (and tcp data) is the raw bytes,
 * never base64.  The table is a proxy: it is filled on first access, and
 * a record the script returns untouched (not written to, headers not
 * fetched) goes on as the very same bytes.
 *
 * Not thread-safe: one thread uses an rf_lua_t at a time.
 */

#ifndef _RF_LUA_H_INCLUDED_
#define _RF_LUA_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "rf_record.h"


#define RF_LUA_BUDGET_DEFAULT   1000000                 /* instructions */
#define RF_LUA_MEMORY_DEFAULT   (64ULL * 1024 * 1024)   /* bytes */
#define RF_LUA_MEMORY_MIN       (1ULL * 1024 * 1024)


typedef struct rf_lua_s  rf_lua_t;


typedef struct {
    const char                 *path;       /* the script file */
    const char                 *name;       /* for logs: "bucket \"x\"" */
    uint64_t                    budget;     /* per call; 0: default */
    uint64_t                    memory;     /* per state; 0: default */

    /*
     * The spool: records have no source stamp yet; the table shows
     * source as this (the spool's id), and id, source and seq a script
     * sets are not written back (the spool stamps every record).
     * NULL: the player; id, source and seq are kept as they are.
     */
    const char                 *stamp_source;
} rf_lua_conf_t;


/* One output record: bytes in out->data, its route in out->routes. */
typedef struct {
    size_t                      off;
    size_t                      len;
    size_t                      route;      /* RF_LUA_NO_ROUTE or offset */
} rf_lua_rec_t;

#define RF_LUA_NO_ROUTE         ((size_t) -1)

/*
 * What calls produce, appended: records (sealed, valid for rf_rec_parse)
 * and, for records whose table had a "sink" member (a name or a list of
 * names), the names in out->routes as NUL-terminated strings followed by
 * an empty one.  Reset it between uses; it keeps its memory.
 */
typedef struct {
    rf_buf_t                    data;
    rf_buf_t                    routes;
    rf_lua_rec_t               *recs;
    size_t                      n;
    size_t                      nalloc;
} rf_lua_out_t;


typedef struct {
    uint64_t                    calls;      /* transform() */
    uint64_t                    ticks;      /* tick() */
    uint64_t                    errors;     /* runtime errors, bad returns */
    uint64_t                    budget;     /* stopped by the budget */
    uint64_t                    memory;     /* stopped by the memory cap */
    uint64_t                    dropped;    /* transform returned nil */
    uint64_t                    produced;   /* records out of calls */
    uint64_t                    memory_used;
} rf_lua_stats_t;


void rf_lua_out_init(rf_lua_out_t *out);
void rf_lua_out_reset(rf_lua_out_t *out);
void rf_lua_out_free(rf_lua_out_t *out);

/* Append a record as it is (no route); 0, or -1 with ENOMEM. */
int rf_lua_out_add(rf_lua_out_t *out, const void *data, size_t len);

/* The route's names one after another: NULL after the last one. */
const char *rf_lua_route_next(const rf_lua_out_t *out, size_t route,
    const char *prev);


/*
 * Load and run the script, check that it defines transform() or tick()
 * (as functions), and call init() when it defines one.  NULL with a
 * message naming the file (and line) in err: unreadable, syntax, runtime
 * error, budget or memory, nothing defined.  -t calls just this.
 */
rf_lua_t *rf_lua_open(const rf_lua_conf_t *conf, char *err, size_t errlen);
void rf_lua_close(rf_lua_t *L);

int rf_lua_has_transform(const rf_lua_t *L);
int rf_lua_has_tick(const rf_lua_t *L);
const char *rf_lua_path(const rf_lua_t *L);

/*
 * Run transform(r) on rec: what it returns is appended to out (nothing
 * for nil or an empty list).  0, or -1 with the reason in why and out as
 * it was: a runtime error, the budget, the memory cap, or a return value
 * that is not a record, a list of records or nil, or a record that does
 * not convert (missing kind, a field of the wrong type...).  The caller
 * dead-letters rec then.  Errors are counted, not logged.
 */
int rf_lua_transform(rf_lua_t *L, const rf_rec_t *rec, rf_lua_out_t *out,
    char *why, size_t whylen);

/* Run tick(): the records it returns (nil, one, or a list) go to out. */
int rf_lua_tick(rf_lua_t *L, rf_lua_out_t *out, char *why, size_t whylen);

void rf_lua_stats(const rf_lua_t *L, rf_lua_stats_t *st);


#endif /* _RF_LUA_H_INCLUDED_ */
