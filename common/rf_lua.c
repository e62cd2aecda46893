/*
 * Copyright (C) ReplayForge contributors
 *
 * The Lua bridge: a sandboxed state per script, calls on a coroutine
 * under an instruction budget and a memory cap, the record proxy, and
 * the conversion of what a script returns back into binary records.
 *
 * The budget.  A count hook adds RF_LUA_STEP per firing; once the sum
 * passes the budget it re-arms itself to fire on every instruction and
 * yields.  Yielding (not raising) is what makes it final: a pcall in the
 * script would catch an error, but a yield goes past it to whoever
 * resumed the thread.  That is lua_resume() here, or coroutine.resume()
 * of a coroutine the script made itself, which then carries on in our
 * thread and is yielded away at its next instruction.  Where yielding is
 * impossible (a comparator inside table.sort), the hook raises instead
 * and the next instruction back in a Lua frame yields.  The suspended
 * thread is dropped; the next call gets a fresh one.
 *
 * The memory cap.  The allocator refuses to grow past the cap while
 * script code runs (capped), which Lua reports as a memory error inside
 * the call.  The C side's own work between calls (pushing a record,
 * reading the results) runs uncapped, so it never raises outside a
 * protected call: an unprotected error would end in lua_atpanic.
 *
 * Finalizers would run script code at any allocation, outside both the
 * budget and the protected call: setmetatable refuses __gc.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rf_log.h"
#include "rf_lua_int.h"


const char  rf_lua_key_state;
const char  rf_lua_key_bytes;
const char  rf_lua_key_dirty;
const char  rf_lua_key_full;
const char  rf_lua_key_null;


static void *rf_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
static int rf_lua_panic(lua_State *L);
static void rf_lua_hook(lua_State *L, lua_Debug *ar);
static void rf_lua_sandbox(lua_State *L);
static int rf_lua_load(lua_State *L);
static int rf_lua_setmetatable(lua_State *L);
static int rf_lua_collectgarbage(lua_State *L);
static int rf_lua_print(lua_State *L);
static int rf_lua_thread(rf_lua_t *rl);
static void rf_lua_drop_thread(rf_lua_t *rl);
static int rf_lua_run(rf_lua_t *rl, int nargs, int *nres, char *why,
    size_t whylen);


/* the state */

rf_lua_t *
rf_lua_open(const rf_lua_conf_t *conf, char *err, size_t errlen)
{
    int         nres, i;
    char        why[512];
    lua_State  *L;
    rf_lua_t   *rl;

    static const char  *const fns[] = { "transform", "tick", "init" };

    if (conf->memory && conf->memory < RF_LUA_MEMORY_MIN) {
        snprintf(err, errlen, "script \"%s\": the memory cap must be at "
                 "least %llu bytes", conf->path,
                 (unsigned long long) RF_LUA_MEMORY_MIN);
        return NULL;
    }

    rl = calloc(1, sizeof(rf_lua_t));
    if (rl == NULL) {
        snprintf(err, errlen, "script \"%s\": out of memory", conf->path);
        return NULL;
    }

    rl->co_ref = LUA_NOREF;
    rl->mt_ref = LUA_NOREF;
    rl->fn_transform = LUA_NOREF;
    rl->fn_tick = LUA_NOREF;
    rl->budget = conf->budget ? conf->budget : RF_LUA_BUDGET_DEFAULT;
    rl->memory = conf->memory ? conf->memory : RF_LUA_MEMORY_DEFAULT;
    rl->step = rl->budget < RF_LUA_STEP ? (int) rl->budget : RF_LUA_STEP;
    rf_buf_init(&rl->scratch);

    rl->path = strdup(conf->path);
    rl->name = strdup(conf->name ? conf->name : conf->path);
    rl->stamp_source = conf->stamp_source ? strdup(conf->stamp_source) : NULL;

    if (rl->path == NULL || rl->name == NULL
        || (conf->stamp_source && rl->stamp_source == NULL))
    {
        snprintf(err, errlen, "script \"%s\": out of memory", conf->path);
        goto failed;
    }

    L = lua_newstate(rf_lua_alloc, rl);
    if (L == NULL) {
        snprintf(err, errlen, "script \"%s\": out of memory", conf->path);
        goto failed;
    }

    rl->L = L;
    rf_lua_self(L) = rl;
    lua_atpanic(L, rf_lua_panic);

    rf_lua_sandbox(L);
    rf_lua_open_lib(L);
    rf_lua_proxy_mt(rl);

    /* text only: a precompiled chunk could break the VM's invariants */
    if (luaL_loadfilex(L, rl->path, "t") != LUA_OK) {
        /* syntax errors name the file already, the others do not */
        if (strstr(lua_tostring(L, -1), rl->path)) {
            snprintf(err, errlen, "script %s", lua_tostring(L, -1));
        } else {
            snprintf(err, errlen, "script \"%s\": %s", rl->path,
                     lua_tostring(L, -1));
        }
        goto failed;
    }

    if (rf_lua_thread(rl) != 0) {
        snprintf(err, errlen, "script \"%s\": out of memory", rl->path);
        goto failed;
    }

    lua_xmove(L, rl->co, 1);

    if (rf_lua_run(rl, 0, &nres, why, sizeof(why)) != 0) {
        snprintf(err, errlen, "script \"%s\": %s", rl->path, why);
        goto failed;
    }

    lua_settop(rl->co, 0);

    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS);

    for (i = 0; i < 3; i++) {
        lua_pushstring(L, fns[i]);

        if (lua_rawget(L, -2) != LUA_TNIL && !lua_isfunction(L, -1)) {
            snprintf(err, errlen, "script \"%s\": %s is a %s, not a "
                     "function", rl->path, fns[i], luaL_typename(L, -1));
            goto failed;
        }

        if (i == 2) {
            break;
        }

        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            continue;
        }

        *(i == 0 ? &rl->fn_transform : &rl->fn_tick) =
            luaL_ref(L, LUA_REGISTRYINDEX);
    }

    if (rl->fn_transform == LUA_NOREF && rl->fn_tick == LUA_NOREF) {
        snprintf(err, errlen, "script \"%s\" defines neither transform() "
                 "nor tick()", rl->path);
        goto failed;
    }

    if (!lua_isnil(L, -1)) {
        lua_xmove(L, rl->co, 1);

        if (rf_lua_run(rl, 0, &nres, why, sizeof(why)) != 0) {
            snprintf(err, errlen, "script \"%s\": init(): %s", rl->path,
                     why);
            goto failed;
        }

        lua_settop(rl->co, 0);
    }

    lua_settop(L, 0);
    memset(&rl->st, 0, sizeof(rf_lua_stats_t));

    return rl;

failed:

    rf_lua_close(rl);

    return NULL;
}


void
rf_lua_close(rf_lua_t *rl)
{
    if (rl == NULL) {
        return;
    }

    if (rl->L) {
        lua_close(rl->L);
    }

    if (rl->doc) {
        rf_json_free(rl->doc);
    }

    rf_buf_free(&rl->scratch);
    free(rl->path);
    free(rl->name);
    free(rl->stamp_source);
    free(rl);
}


int
rf_lua_has_transform(const rf_lua_t *rl)
{
    return rl->fn_transform != LUA_NOREF;
}


int
rf_lua_has_tick(const rf_lua_t *rl)
{
    return rl->fn_tick != LUA_NOREF;
}


const char *
rf_lua_path(const rf_lua_t *rl)
{
    return rl->path;
}


void
rf_lua_stats(const rf_lua_t *rl, rf_lua_stats_t *st)
{
    st->calls = __atomic_load_n(&rl->st.calls, __ATOMIC_RELAXED);
    st->ticks = __atomic_load_n(&rl->st.ticks, __ATOMIC_RELAXED);
    st->errors = __atomic_load_n(&rl->st.errors, __ATOMIC_RELAXED);
    st->budget = __atomic_load_n(&rl->st.budget, __ATOMIC_RELAXED);
    st->memory = __atomic_load_n(&rl->st.memory, __ATOMIC_RELAXED);
    st->dropped = __atomic_load_n(&rl->st.dropped, __ATOMIC_RELAXED);
    st->produced = __atomic_load_n(&rl->st.produced, __ATOMIC_RELAXED);
    st->memory_used = __atomic_load_n(&rl->used, __ATOMIC_RELAXED);
}


static void *
rf_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    size_t     old;
    void      *p;
    rf_lua_t  *rl;

    rl = ud;
    old = ptr ? osize : 0;          /* without ptr, osize is a type tag */

    if (nsize == 0) {
        free(ptr);
        __atomic_store_n(&rl->used, rl->used - old, __ATOMIC_RELAXED);
        return NULL;
    }

    if (rl->capped && nsize > old && rl->used - old + nsize > rl->memory) {
        return NULL;
    }

    p = realloc(ptr, nsize);
    if (p == NULL) {
        return NULL;
    }

    __atomic_store_n(&rl->used, rl->used - old + nsize, __ATOMIC_RELAXED);

    return p;
}


/* only an allocation failing uncapped, that is malloc itself, gets here */
static int
rf_lua_panic(lua_State *L)
{
    const char  *msg;

    msg = lua_tostring(L, -1);

    fatalx("lua: unprotected error: %s", msg ? msg : "(not a string)");
}


static void
rf_lua_hook(lua_State *L, lua_Debug *ar)
{
    rf_lua_t  *rl;

    rl = rf_lua_self(L);

    if (!rl->over) {
        rl->count += (uint64_t) rl->step;

        if (rl->count <= rl->budget) {
            return;
        }

        rl->over = 1;
        lua_sethook(rl->co, rf_lua_hook, LUA_MASKCOUNT, 1);
    }

    if (lua_isyieldable(L)) {
        lua_yield(L, 0);
        return;
    }

    luaL_error(L, "instruction budget of %llu exceeded",
               (unsigned long long) rl->budget);
}


/* the sandbox: what the base libraries keep, and wrapped functions */

static void
rf_lua_sandbox(lua_State *L)
{
    size_t  i;

    static const luaL_Reg  libs[] = {
        { LUA_GNAME, luaopen_base },
        { LUA_COLIBNAME, luaopen_coroutine },
        { LUA_TABLIBNAME, luaopen_table },
        { LUA_STRLIBNAME, luaopen_string },
        { LUA_MATHLIBNAME, luaopen_math },
        { LUA_UTF8LIBNAME, luaopen_utf8 },
        { LUA_OSLIBNAME, luaopen_os },
    };

    static const char  *const gone[] = {
        "dofile", "loadfile", "warn", "require", "module"
    };

    static const char  *const os_kept[] = {
        "clock", "date", "difftime", "time"
    };

    static const struct {
        const char     *name;
        lua_CFunction   fn;
    } wrapped[] = {
        { "load", rf_lua_load },
        { "setmetatable", rf_lua_setmetatable },
        { "collectgarbage", rf_lua_collectgarbage },
    };

    for (i = 0; i < sizeof(libs) / sizeof(libs[0]); i++) {
        luaL_requiref(L, libs[i].name, libs[i].func, 1);
        lua_pop(L, 1);
    }

    lua_pushglobaltable(L);

    for (i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
        lua_pushnil(L);
        lua_setfield(L, -2, gone[i]);
    }

    /* the original as the wrapper's upvalue */
    for (i = 0; i < sizeof(wrapped) / sizeof(wrapped[0]); i++) {
        lua_getfield(L, -1, wrapped[i].name);
        lua_pushcclosure(L, wrapped[i].fn, 1);
        lua_setfield(L, -2, wrapped[i].name);
    }

    lua_pushcfunction(L, rf_lua_print);
    lua_setfield(L, -2, "print");

    lua_getfield(L, -1, LUA_STRLIBNAME);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    lua_pop(L, 1);

    /* os: the clock and dates only */
    lua_getfield(L, -1, LUA_OSLIBNAME);
    lua_createtable(L, 0, 4);

    for (i = 0; i < sizeof(os_kept) / sizeof(os_kept[0]); i++) {
        lua_getfield(L, -2, os_kept[i]);
        lua_setfield(L, -2, os_kept[i]);
    }

    lua_setfield(L, -3, LUA_OSLIBNAME);
    lua_pop(L, 2);

    /* the loaded-modules table would hand back the originals */
    lua_pushnil(L);
    lua_setfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
}


static int
rf_lua_load(lua_State *L)
{
    int          n;
    const char  *mode;

    n = lua_gettop(L);

    mode = luaL_optstring(L, 3, "t");
    if (strcmp(mode, "t") != 0) {
        return luaL_error(L, "load: only text chunks can be loaded");
    }

    if (n < 3) {
        lua_settop(L, 3);
        n = 3;
    }

    lua_pushliteral(L, "t");
    lua_replace(L, 3);

    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, LUA_MULTRET);

    return lua_gettop(L);
}


static int
rf_lua_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");

        if (lua_rawget(L, 2) != LUA_TNIL) {
            return luaL_error(L, "setmetatable: __gc is not available to "
                              "scripts");
        }

        lua_pop(L, 1);
    }

    lua_settop(L, 2);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 2, 1);

    return 1;
}


static int
rf_lua_collectgarbage(lua_State *L)
{
    const char  *opt;

    opt = luaL_optstring(L, 1, "collect");

    if (strcmp(opt, "collect") != 0 && strcmp(opt, "count") != 0
        && strcmp(opt, "step") != 0 && strcmp(opt, "isrunning") != 0)
    {
        return luaL_error(L, "collectgarbage: \"%s\" is not available to "
                          "scripts", opt);
    }

    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);

    return lua_gettop(L);
}


/* print(...) logs at info level, the arguments separated by tabs */
static int
rf_lua_print(lua_State *L)
{
    int          i, n;
    size_t       len;
    luaL_Buffer  b;
    const char  *s;

    n = lua_gettop(L);
    luaL_buffinit(L, &b);

    for (i = 1; i <= n; i++) {
        s = luaL_tolstring(L, i, &len);

        if (i > 1) {
            luaL_addchar(&b, '\t');
        }

        luaL_addlstring(&b, s, len);
        lua_pop(L, 1);
    }

    luaL_pushresult(&b);
    s = lua_tolstring(L, -1, &len);
    rf_lua_log(rf_lua_self(L), RF_LOG_INFO, s, len);

    return 0;
}



/* calls */

static int
rf_lua_thread(rf_lua_t *rl)
{
    if (rl->co) {
        return 0;
    }

    rl->co = lua_newthread(rl->L);
    rl->co_ref = luaL_ref(rl->L, LUA_REGISTRYINDEX);

    return 0;
}


static void
rf_lua_drop_thread(rf_lua_t *rl)
{
    luaL_unref(rl->L, LUA_REGISTRYINDEX, rl->co_ref);
    rl->co_ref = LUA_NOREF;
    rl->co = NULL;
}


/*
 * Resume rl->co on the function and nargs arguments pushed on it.  0 with
 * *nres results on its stack, or -1 with why set: the thread is dropped.
 */
static int
rf_lua_run(rf_lua_t *rl, int nargs, int *nres, char *why, size_t whylen)
{
    int          st;
    lua_State   *co;
    const char  *msg;

    co = rl->co;
    rl->count = 0;
    rl->over = 0;
    lua_sethook(co, rf_lua_hook, LUA_MASKCOUNT, rl->step);

    rl->capped = 1;
    st = lua_resume(co, rl->L, nargs, nres);
    rl->capped = 0;

    if (st == LUA_OK) {
        return 0;
    }

    if (st == LUA_YIELD && rl->over) {
        rf_lua_count(rl, budget);
        snprintf(why, whylen, "instruction budget of %llu exceeded",
                 (unsigned long long) rl->budget);

    } else if (st == LUA_YIELD) {
        rf_lua_count(rl, errors);
        snprintf(why, whylen, "yielded outside a coroutine of its own");

    } else if (st == LUA_ERRMEM) {
        rf_lua_count(rl, memory);
        snprintf(why, whylen, "memory cap of %llu bytes reached",
                 (unsigned long long) rl->memory);

    } else {
        rf_lua_count(rl, errors);
        msg = lua_type(co, -1) == LUA_TSTRING ? lua_tostring(co, -1) : NULL;

        if (msg) {
            snprintf(why, whylen, "%s", msg);
        } else {
            snprintf(why, whylen, "error object is a %s value",
                     luaL_typename(co, -1));
        }
    }

    rf_lua_drop_thread(rl);

    if (st == LUA_ERRMEM) {
        lua_gc(rl->L, LUA_GCCOLLECT);
    }

    return -1;
}


int
rf_lua_transform(rf_lua_t *rl, const rf_rec_t *rec, rf_lua_out_t *out,
    char *why, size_t whylen)
{
    int         nres, rc;
    lua_State  *co;

    if (rl->fn_transform == LUA_NOREF) {
        snprintf(why, whylen, "the script has no transform()");
        return -1;
    }

    rf_lua_count(rl, calls);
    rf_lua_thread(rl);
    co = rl->co;

    lua_rawgeti(co, LUA_REGISTRYINDEX, rl->fn_transform);

    lua_createtable(co, 0, 1);
    lua_pushlightuserdata(co, (void *) &rf_lua_key_state);
    lua_pushlstring(co, (const char *) rec->buf, rec->len);
    lua_rawset(co, -3);
    lua_rawgeti(co, LUA_REGISTRYINDEX, rl->mt_ref);
    lua_setmetatable(co, -2);

    if (rf_lua_run(rl, 1, &nres, why, whylen) != 0) {
        return -1;
    }

    rc = rf_lua_results(rl, nres, out, "transform()", why, whylen);

    lua_settop(co, 0);

    return rc;
}


int
rf_lua_tick(rf_lua_t *rl, rf_lua_out_t *out, char *why, size_t whylen)
{
    int  nres, rc;

    if (rl->fn_tick == LUA_NOREF) {
        return 0;
    }

    rf_lua_count(rl, ticks);
    rf_lua_thread(rl);

    lua_rawgeti(rl->co, LUA_REGISTRYINDEX, rl->fn_tick);

    if (rf_lua_run(rl, 0, &nres, why, whylen) != 0) {
        return -1;
    }

    rc = rf_lua_results(rl, nres, out, "tick()", why, whylen);

    lua_settop(rl->co, 0);

    return rc;
}


