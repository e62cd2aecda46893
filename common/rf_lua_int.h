/*
 * Copyright (C) ReplayForge contributors
 *
 * The bridge's insides shared by rf_lua.c (state, sandbox, calls, the
 * record proxy, conversions) and rf_lua_lib.c (the rf.* helpers).
 */

#ifndef _RF_LUA_INT_H_INCLUDED_
#define _RF_LUA_INT_H_INCLUDED_


#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#include "rf_json.h"
#include "rf_lua.h"


/* hook granularity: the budget is checked every this many instructions */
#define RF_LUA_STEP             1000
/* records one call may return */
#define RF_LUA_MAX_OUT          10000
/* tables nested deeper than this are refused by encode and copy */
#define RF_LUA_MAX_DEPTH        64


struct rf_lua_s {
    lua_State                  *L;          /* the main thread */
    lua_State                  *co;         /* calls run on it; NULL: none */
    int                         co_ref;
    int                         mt_ref;     /* the record proxy's metatable */
    int                         fn_transform;
    int                         fn_tick;

    char                       *path;
    char                       *name;
    char                       *stamp_source;

    uint64_t                    budget;
    uint64_t                    memory;
    uint64_t                    used;       /* bytes allocated */
    uint64_t                    count;      /* instructions of this call */
    int                         step;

    unsigned                    capped:1;   /* script code is running */
    unsigned                    over:1;     /* the budget is spent */

    rf_lua_stats_t              st;         /* __atomic: read by others */

    rf_buf_t                    scratch;    /* helpers' output */
    rf_json_doc_t              *doc;        /* rf.json.decode's last */
};


#define rf_lua_self(L)          (*(rf_lua_t **) lua_getextraspace(L))

/* lightuserdata keys of the proxy and its shadow */
extern const char  rf_lua_key_state;        /* proxy: bytes or shadow */
extern const char  rf_lua_key_bytes;        /* shadow: the original bytes */
extern const char  rf_lua_key_dirty;        /* shadow: written to */
extern const char  rf_lua_key_full;         /* shadow: every field is in */
extern const char  rf_lua_key_null;         /* rf.json.null */


#define RF_LUA_FULL             1   /* every field decoded */
#define RF_LUA_DIRTY            2   /* mark it changed */

/*
 * Push the table behind the value at idx: a record proxy's shadow (made
 * on first use, filled with RF_LUA_FULL), else the value itself.  Returns
 * 1 for a proxy.  Raises only on memory errors.
 */
int rf_lua_shadow(lua_State *L, int idx, int flags);

/* Push member key of a record (decoded on demand) or table, raw.  */
int rf_lua_field(lua_State *L, int idx, const char *key);

/* rf.header() from a record's bytes: 1 with the value or nil pushed, or 0 */
int rf_lua_header_bytes(lua_State *L, int idx, const char *name,
    size_t len);

/* Install the rf table (rf_lua_lib.c) as a global. */
void rf_lua_open_lib(lua_State *L);

/* rf.log and print: one sanitised, rate-limited log line. */
void rf_lua_log(rf_lua_t *rl, int level, const char *msg, size_t len);

/* rf_lua_proxy.c: the record of a proxy's shadow at s; a capture time */
void rf_lua_proxy_rec(lua_State *L, int s, rf_rec_t *rec);
void rf_lua_ts(uint64_t ns, char *buf, size_t len);

/* rf_lua_proxy.c: the proxy's metatable; rf_lua_rec.c: a call's results */
void rf_lua_proxy_mt(rf_lua_t *rl);
int rf_lua_results(rf_lua_t *rl, int nres, rf_lua_out_t *out,
    const char *what, char *why, size_t whylen);

#define rf_lua_count(rl, f)                                                 \
    __atomic_add_fetch(&(rl)->st.f, 1, __ATOMIC_RELAXED)


#endif /* _RF_LUA_INT_H_INCLUDED_ */
