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
const char  rf_lua_key_null;


typedef struct {
    rf_json_t                  *nodes;
    size_t                      n;
    size_t                      cap;
    char                      (*lits)[48];
} rf_lua_tree_t;


static void *rf_lua_alloc(void *ud, void *ptr, size_t osize, size_t nsize);
static int rf_lua_panic(lua_State *L);
static void rf_lua_hook(lua_State *L, lua_Debug *ar);
static void rf_lua_sandbox(lua_State *L);
static int rf_lua_load(lua_State *L);
static int rf_lua_setmetatable(lua_State *L);
static int rf_lua_collectgarbage(lua_State *L);
static int rf_lua_print(lua_State *L);
static void rf_lua_proxy_mt(rf_lua_t *rl);
static int rf_lua_index(lua_State *L);
static int rf_lua_newindex(lua_State *L);
static int rf_lua_pairs(lua_State *L);
static void rf_lua_push_view(lua_State *L, rf_lua_t *rl, const rf_rec_t *rec);
static int rf_lua_thread(rf_lua_t *rl);
static void rf_lua_drop_thread(rf_lua_t *rl);
static int rf_lua_run(rf_lua_t *rl, int nargs, int *nres, char *why,
    size_t whylen);
static int rf_lua_results(rf_lua_t *rl, int nres, rf_lua_out_t *out,
    const char *what, char *why, size_t whylen);
static int rf_lua_is_record(rf_lua_t *rl, lua_State *L, int idx);
static int rf_lua_emit(rf_lua_t *rl, lua_State *L, int idx,
    rf_lua_out_t *out, char *why, size_t whylen);
static int rf_lua_build(rf_lua_t *rl, lua_State *L, int t, rf_buf_t *out,
    char *why, size_t whylen);
static rf_json_t *rf_lua_node(rf_lua_tree_t *tr, lua_State *L, int idx,
    const char *key);
static int rf_lua_route(lua_State *L, int t, rf_lua_out_t *out,
    size_t *route, char *why, size_t whylen);
static void rf_lua_ts(uint64_t ns, char *buf, size_t len);


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


#define rf_lua_count(rl, f)  __atomic_add_fetch(&(rl)->st.f, 1, __ATOMIC_RELAXED)


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


/*
 * The record proxy: an empty table but for one lightuserdata key holding
 * the record's bytes, then its shadow table once a field was read.
 * Writes go to the shadow and mark it dirty; so does handing out the
 * headers (they can be changed in place).  Setting "sink" only routes.
 */

static void
rf_lua_proxy_mt(rf_lua_t *rl)
{
    lua_State  *L;

    L = rl->L;

    lua_createtable(L, 0, 4);
    lua_pushcfunction(L, rf_lua_index);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, rf_lua_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, rf_lua_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");

    rl->mt_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}


int
rf_lua_shadow(lua_State *L, int idx, int dirty)
{
    size_t       len;
    rf_rec_t     rec;
    rf_lua_t    *rl;
    const char  *bytes, *err;

    idx = lua_absindex(L, idx);
    rl = rf_lua_self(L);

    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx)) {
        lua_pushvalue(L, idx);
        return 0;
    }

    lua_rawgeti(L, LUA_REGISTRYINDEX, rl->mt_ref);

    if (!lua_rawequal(L, -1, -2)) {
        lua_pop(L, 2);
        lua_pushvalue(L, idx);
        return 0;
    }

    lua_pop(L, 2);

    lua_pushlightuserdata(L, (void *) &rf_lua_key_state);

    if (lua_rawget(L, idx) == LUA_TSTRING) {
        bytes = lua_tolstring(L, -1, &len);

        if (rf_rec_parse(&rec, (const unsigned char *) bytes, len, &err)
            != 0)
        {
            return luaL_error(L, "record: %s", err);
        }

        rf_lua_push_view(L, rl, &rec);

        lua_pushlightuserdata(L, (void *) &rf_lua_key_bytes);
        lua_pushvalue(L, -3);
        lua_rawset(L, -3);

        lua_pushlightuserdata(L, (void *) &rf_lua_key_state);
        lua_pushvalue(L, -2);
        lua_rawset(L, idx);

        lua_remove(L, -2);
    }

    if (dirty) {
        lua_pushlightuserdata(L, (void *) &rf_lua_key_dirty);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }

    return 1;
}


static int
rf_lua_index(lua_State *L)
{
    int  dirty;

    dirty = lua_type(L, 2) == LUA_TSTRING
            && strcmp(lua_tostring(L, 2), "headers") == 0;

    rf_lua_shadow(L, 1, dirty);
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);

    return 1;
}


static int
rf_lua_newindex(lua_State *L)
{
    int  dirty;

    dirty = !(lua_type(L, 2) == LUA_TSTRING
              && strcmp(lua_tostring(L, 2), "sink") == 0);

    rf_lua_shadow(L, 1, dirty);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);

    return 0;
}


/* pairs() hands out the nested tables: count it as a write */
static int
rf_lua_next(lua_State *L)
{
    lua_settop(L, 2);

    while (lua_next(L, 1)) {
        if (lua_type(L, -2) != LUA_TLIGHTUSERDATA) {
            return 2;
        }

        lua_pop(L, 1);
    }

    lua_pushnil(L);

    return 1;
}


static int
rf_lua_pairs(lua_State *L)
{
    lua_pushcfunction(L, rf_lua_next);
    rf_lua_shadow(L, 1, 1);
    lua_pushnil(L);

    return 3;
}


static void
rf_lua_setstr(lua_State *L, const char *key, const rf_str_t *s)
{
    lua_pushlstring(L, (const char *) s->data, s->len);
    lua_setfield(L, -2, key);
}


static void
rf_lua_setu64(lua_State *L, const char *key, uint64_t v)
{
    if (v <= INT64_MAX) {
        lua_pushinteger(L, (lua_Integer) v);
    } else {
        lua_pushnumber(L, (lua_Number) v);
    }

    lua_setfield(L, -2, key);
}


/* the JSON view's fields, bodies raw (rf_rec_to_json() is the model) */
static void
rf_lua_push_view(lua_State *L, rf_lua_t *rl, const rf_rec_t *rec)
{
    char        ts[64];
    size_t      off, i;
    uint64_t    v;
    rf_str_t    s, name, value;
    rf_field_t  f;

    static const rf_str_t  dflt = rf_string("default");

    static const struct {
        unsigned     id;
        const char  *key;
    } strs[] = {
        { RF_F_METHOD, "method" }, { RF_F_URI, "uri" },
        { RF_F_VERSION, "version" }, { RF_F_SCHEME, "scheme" },
        { RF_F_HOST, "host" }, { RF_F_CLIENT, "client" },
        { RF_F_SERVER, "server" }, { RF_F_UPSTREAM, "upstream" },
        { RF_F_REQUEST_ID, "request_id" }
    };

    lua_createtable(L, 0, 24);

    if (rl->stamp_source) {
        lua_pushstring(L, rl->stamp_source);
        lua_setfield(L, -2, "source");

    } else {
        if (rf_rec_field(rec, RF_F_SOURCE, &s) == -1) {
            s.data = (const unsigned char *) "";
            s.len = 0;
        }

        rf_lua_setstr(L, "source", &s);

        /* "source:sseq"; the source may hold any byte */
        lua_pushlstring(L, (const char *) s.data, s.len);
        lua_pushfstring(L, ":%I", (lua_Integer) rec->sseq);
        lua_concat(L, 2);
        lua_setfield(L, -2, "id");

        if (rec->rseq) {
            rf_lua_setu64(L, "seq", rec->rseq);
        }
    }

    lua_pushstring(L, rf_kind_name(rec->kind));
    lua_setfield(L, -2, "kind");

    if (rf_rec_field(rec, RF_F_BUCKET, &s) == -1) {
        s = dflt;
    }

    rf_lua_setstr(L, "bucket", &s);

    rf_lua_ts(rec->time_ns, ts, sizeof(ts));
    lua_pushstring(L, ts);
    lua_setfield(L, -2, "ts");

    if (rec->kind != RF_KIND_HTTP) {
        off = 0;

        while (rf_rec_next_field(rec, &off, &f)) {
            if (f.id == RF_F_OFFSET_NS || f.id == RF_F_EXIT) {
                if (f.val.len == 8 && rf_rec_field_u64(rec, f.id, &v) == 0) {
                    rf_lua_setu64(L, f.id == RF_F_EXIT ? "exit" : "offset_ns",
                                  v);
                }

            } else if (f.id == RF_F_DATA) {
                rf_lua_setstr(L, "data", &f.val);

            } else if (rf_field_key(f.id)) {
                rf_lua_setstr(L, rf_field_key(f.id), &f.val);
            }
        }

        return;
    }

    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (rf_rec_field(rec, strs[i].id, &s) == 0) {
            rf_lua_setstr(L, strs[i].key, &s);
        }
    }

    lua_newtable(L);
    off = 0;
    i = 0;

    while (rf_rec_next_field(rec, &off, &f)) {
        if (f.id != RF_F_HEADER
            || rf_rec_header_split(&f.val, &name, &value) == -1)
        {
            continue;
        }

        lua_createtable(L, 2, 0);
        lua_pushlstring(L, (const char *) name.data, name.len);
        lua_rawseti(L, -2, 1);
        lua_pushlstring(L, (const char *) value.data, value.len);
        lua_rawseti(L, -2, 2);
        lua_rawseti(L, -2, (lua_Integer) ++i);
    }

    lua_setfield(L, -2, "headers");

    if (rf_rec_field(rec, RF_F_BODY, &s) == -1) {
        s.data = (const unsigned char *) "";
        s.len = 0;
    }

    rf_lua_setstr(L, "body", &s);

    if (rf_rec_field_u64(rec, RF_F_BODY_SIZE, &v) == -1) {
        v = s.len;
    }

    rf_lua_setu64(L, "body_size", v);

    lua_pushboolean(L, (rec->flags & RF_REC_F_BODY_TRUNCATED) != 0);
    lua_setfield(L, -2, "body_truncated");

    if (rf_rec_field_u64(rec, RF_F_STATUS, &v) == 0) {
        rf_lua_setu64(L, "status", v);
    }

    if (rf_rec_field_u64(rec, RF_F_BYTES_SENT, &v) == 0) {
        rf_lua_setu64(L, "bytes_sent", v);
    }

    if (rf_rec_field_u64(rec, RF_F_DURATION_US, &v) == 0) {
        lua_pushnumber(L, (lua_Number) v / 1000);
        lua_setfield(L, -2, "duration_ms");
    }
}


static void
rf_lua_ts(uint64_t ns, char *buf, size_t len)
{
    char       day[40];
    time_t     sec;
    struct tm  tm;

    sec = (time_t) (ns / 1000000000);
    gmtime_r(&sec, &tm);
    strftime(day, sizeof(day), "%Y-%m-%dT%H:%M:%S", &tm);

    snprintf(buf, len, "%s.%06lluZ", day,
             (unsigned long long) (ns % 1000000000) / 1000);
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


/* what a call returned: nil, a record, or a list of records */
static int
rf_lua_results(rf_lua_t *rl, int nres, rf_lua_out_t *out, const char *what,
    char *why, size_t whylen)
{
    int          t, e;
    size_t       n, i, saved_n, saved_len, saved_routes;
    lua_State   *co;

    co = rl->co;
    t = lua_gettop(co) - nres + 1;

    if (nres == 0 || lua_isnil(co, t)
        || (lua_isboolean(co, t) && !lua_toboolean(co, t)))
    {
        if (what[0] == 't' && what[1] == 'r') {
            rf_lua_count(rl, dropped);
        }

        return 0;
    }

    if (lua_type(co, t) != LUA_TTABLE) {
        rf_lua_count(rl, errors);
        snprintf(why, whylen, "%s returned a %s: return the record, a "
                 "list of records or nil", what, luaL_typename(co, t));
        return -1;
    }

    saved_n = out->n;
    saved_len = out->data.len;
    saved_routes = out->routes.len;

    if (rf_lua_is_record(rl, co, t)) {
        if (rf_lua_emit(rl, co, t, out, why, whylen) != 0) {
            goto failed;
        }

        rf_lua_count(rl, produced);

        return 0;
    }

    n = lua_rawlen(co, t);

    /* members but no kind and no elements: a record missing its kind */
    if (n == 0) {
        lua_pushnil(co);

        if (lua_next(co, t)) {
            lua_pop(co, 2);
            snprintf(why, whylen, "%s returned a table with no \"kind\" "
                     "that is not a list of records either", what);
            goto failed;
        }
    }

    if (n > RF_LUA_MAX_OUT) {
        snprintf(why, whylen, "%s returned %zu records, more than %d", what,
                 n, RF_LUA_MAX_OUT);
        goto failed;
    }

    if (n == 0 && what[0] == 't' && what[1] == 'r') {
        rf_lua_count(rl, dropped);
    }

    for (i = 1; i <= n; i++) {
        lua_rawgeti(co, t, (lua_Integer) i);
        e = lua_gettop(co);

        if (lua_type(co, e) != LUA_TTABLE || !rf_lua_is_record(rl, co, e)) {
            snprintf(why, whylen, "%s returned a list whose element %zu is "
                     "not a record", what, i);
            goto failed;
        }

        if (rf_lua_emit(rl, co, e, out, why, whylen) != 0) {
            goto failed;
        }

        lua_pop(co, 1);
    }

    __atomic_add_fetch(&rl->st.produced, n, __ATOMIC_RELAXED);

    return 0;

failed:

    rf_lua_count(rl, errors);
    out->n = saved_n;
    out->data.len = saved_len;
    out->routes.len = saved_routes;

    return -1;
}


/* a record: a proxy, or a table with a "kind" */
static int
rf_lua_is_record(rf_lua_t *rl, lua_State *L, int idx)
{
    int  yes;

    if (lua_getmetatable(L, idx)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, rl->mt_ref);
        yes = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);

        if (yes) {
            return 1;
        }
    }

    lua_pushliteral(L, "kind");
    yes = lua_rawget(L, idx) != LUA_TNIL;
    lua_pop(L, 1);

    return yes;
}


static int
rf_lua_out_grow(rf_lua_out_t *out)
{
    size_t         n;
    rf_lua_rec_t  *recs;

    if (out->n < out->nalloc) {
        return 0;
    }

    n = out->nalloc ? out->nalloc * 2 : 16;

    recs = realloc(out->recs, n * sizeof(rf_lua_rec_t));
    if (recs == NULL) {
        return -1;
    }

    out->recs = recs;
    out->nalloc = n;

    return 0;
}


/* one record at idx into out: untouched proxies as their own bytes */
static int
rf_lua_emit(rf_lua_t *rl, lua_State *L, int idx, rf_lua_out_t *out,
    char *why, size_t whylen)
{
    int            proxy, top, rc;
    size_t         len, off, route;
    const char    *bytes;
    rf_lua_rec_t  *r;

    top = lua_gettop(L);

    if (rf_lua_out_grow(out) != 0) {
        snprintf(why, whylen, "out of memory");
        return -1;
    }

    off = out->data.len;
    bytes = NULL;
    proxy = 0;

    if (lua_getmetatable(L, idx)) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, rl->mt_ref);
        proxy = lua_rawequal(L, -1, -2);
        lua_pop(L, 2);
    }

    if (proxy) {
        lua_pushlightuserdata(L, (void *) &rf_lua_key_state);

        if (lua_rawget(L, idx) == LUA_TSTRING) {
            bytes = lua_tolstring(L, -1, &len);

        } else {
            lua_pushlightuserdata(L, (void *) &rf_lua_key_dirty);

            if (lua_rawget(L, -2) == LUA_TNIL) {
                lua_pushlightuserdata(L, (void *) &rf_lua_key_bytes);
                lua_rawget(L, -3);
                bytes = lua_tolstring(L, -1, &len);
            }
        }

        /* the shadow (or the bytes) at top + 1 holds every value used */
        idx = top + 1;
    }

    if (bytes) {
        rc = rf_buf_add(&out->data, bytes, len);
        if (rc != 0) {
            snprintf(why, whylen, "out of memory");
        }

    } else {
        rc = rf_lua_build(rl, L, idx, &out->data, why, whylen);
    }

    if (rc != 0) {
        lua_settop(L, top);
        return -1;
    }

    route = RF_LUA_NO_ROUTE;

    if (lua_type(L, idx) == LUA_TTABLE
        && rf_lua_route(L, idx, out, &route, why, whylen) != 0)
    {
        out->data.len = off;
        lua_settop(L, top);
        return -1;
    }

    lua_settop(L, top);

    r = &out->recs[out->n++];
    r->off = off;
    r->len = out->data.len - off;
    r->route = route;

    return 0;
}


/* "sink": a name or a list of names, into out->routes */
static int
rf_lua_route(lua_State *L, int t, rf_lua_out_t *out, size_t *route,
    char *why, size_t whylen)
{
    int          type, rc;
    size_t       i, n, len, start;
    const char  *name;

    lua_pushliteral(L, "sink");
    type = lua_rawget(L, t);

    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }

    start = out->routes.len;
    n = type == LUA_TTABLE ? lua_rawlen(L, -1) : 1;

    for (i = 1; i <= n; i++) {
        if (type == LUA_TTABLE) {
            lua_rawgeti(L, -1, (lua_Integer) i);
        } else {
            lua_pushvalue(L, -1);
        }

        name = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len)
                                              : NULL;

        if (name == NULL || len == 0 || strlen(name) != len) {
            out->routes.len = start;
            snprintf(why, whylen, "\"sink\" must be a sink's name or a "
                     "list of names");
            return -1;
        }

        rc = rf_buf_add(&out->routes, name, len + 1);
        lua_pop(L, 1);

        if (rc != 0) {
            out->routes.len = start;
            snprintf(why, whylen, "out of memory");
            return -1;
        }
    }

    lua_pop(L, 1);

    if (rf_buf_addc(&out->routes, '\0') != 0) {
        out->routes.len = start;
        snprintf(why, whylen, "out of memory");
        return -1;
    }

    *route = start;

    return 0;
}


/*
 * A table into a binary record: its members become a JSON node tree
 * (strings point into the Lua strings, which stay on the stack) and
 * rf_rec_from_json() does the rest, so that Lua and NDJSON ingest share
 * one set of rules.  Members are read raw, in the record's field order.
 */
static int
rf_lua_build(rf_lua_t *rl, lua_State *L, int t, rf_buf_t *out, char *why,
    size_t whylen)
{
    int            rc, stamped;
    size_t         nh, i;
    const char    *key;
    uint64_t       now;
    rf_json_t      root, *node, **link;
    rf_lua_tree_t  tr;
    struct timespec  ts;

    static const char  *const keys[] = {
        "kind", "ts", "id", "source", "bucket",
        "method", "uri", "version", "scheme", "host", "client", "server",
        "headers", "body", "body_b64", "body_size", "body_truncated",
        "status", "bytes_sent", "duration_ms", "upstream", "request_id",
        "session", "dir", "event", "data", "data_b64", "offset_ns", "path",
        "line", "command", "output", "exit", "query", "rows"
    };

    t = lua_absindex(L, t);
    stamped = rl->stamp_source != NULL;

    lua_pushliteral(L, "headers");
    nh = lua_rawget(L, t) == LUA_TTABLE ? lua_rawlen(L, -1) : 0;
    lua_pop(L, 1);

    tr.cap = sizeof(keys) / sizeof(keys[0]) + 3 * nh + 4;
    tr.n = 0;
    tr.nodes = calloc(tr.cap, sizeof(rf_json_t));
    tr.lits = calloc(tr.cap, sizeof(tr.lits[0]));

    if (tr.nodes == NULL || tr.lits == NULL
        || !lua_checkstack(L, (int) tr.cap + 8))
    {
        free(tr.nodes);
        free(tr.lits);
        snprintf(why, whylen, "out of memory");
        return -1;
    }

    memset(&root, 0, sizeof(rf_json_t));
    root.type = RF_JSON_OBJECT;
    link = &root.child;

    for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        key = keys[i];

        if (stamped && (strcmp(key, "id") == 0 || strcmp(key, "source") == 0))
        {
            continue;
        }

        lua_pushstring(L, key);

        if (lua_rawget(L, t) == LUA_TNIL) {
            lua_pop(L, 1);

            if (strcmp(key, "ts") != 0) {
                continue;
            }

            /* a new record is from now */
            clock_gettime(CLOCK_REALTIME, &ts);
            now = (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
            rf_lua_ts(now, tr.lits[tr.n], sizeof(tr.lits[0]));
            lua_pushstring(L, tr.lits[tr.n]);
        }

        node = rf_lua_node(&tr, L, -1, key);
        *link = node;
        link = &node->next;
        root.count++;
    }

    rc = rf_rec_from_json(&root, out, why, whylen);

    free(tr.nodes);
    free(tr.lits);

    return rc;
}


/* the value at idx as a node; the value stays on the stack */
static rf_json_t *
rf_lua_node(rf_lua_tree_t *tr, lua_State *L, int idx, const char *key)
{
    int          j, type;
    size_t       i, n, len;
    rf_json_t   *node, *h, *v, **link;
    lua_Number   d;

    idx = lua_absindex(L, idx);
    node = &tr->nodes[tr->n];
    node->key.data = (const unsigned char *) key;
    node->key.len = key ? strlen(key) : 0;

    switch (lua_type(L, idx)) {

    case LUA_TSTRING:
        node->type = RF_JSON_STRING;
        node->str.data = (const unsigned char *) lua_tolstring(L, idx, &len);
        node->str.len = len;
        break;

    case LUA_TBOOLEAN:
        node->type = lua_toboolean(L, idx) ? RF_JSON_TRUE : RF_JSON_FALSE;
        break;

    case LUA_TNUMBER:
        node->type = RF_JSON_NUMBER;

        if (lua_isinteger(L, idx)) {
            node->is_int = 1;
            node->i = (int64_t) lua_tointeger(L, idx);
            node->num = (double) node->i;
            snprintf(tr->lits[tr->n], sizeof(tr->lits[0]), "%lld",
                     (long long) node->i);

        } else {
            d = lua_tonumber(L, idx);
            node->num = (double) d;
            snprintf(tr->lits[tr->n], sizeof(tr->lits[0]), "%.17g",
                     (double) d);
        }

        node->str.data = (const unsigned char *) tr->lits[tr->n];
        node->str.len = strlen(tr->lits[tr->n]);
        break;

    case LUA_TTABLE:
        if (key == NULL) {
            node->type = RF_JSON_NULL;
            break;
        }

        /* headers: a list of {name, value} (or {name=, value=}) */
        node->type = RF_JSON_ARRAY;
        tr->n++;

        n = lua_rawlen(L, idx);
        if (n > (tr->cap - tr->n) / 3) {
            n = (tr->cap - tr->n) / 3;
        }

        link = &node->child;

        for (i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, (lua_Integer) i);
            h = &tr->nodes[tr->n++];

            if (lua_type(L, -1) == LUA_TTABLE) {
                h->type = RF_JSON_ARRAY;
                type = lua_rawgeti(L, -1, 1);

                if (type == LUA_TNIL) {
                    lua_pop(L, 1);
                    lua_pushliteral(L, "name");
                    lua_rawget(L, -2);
                    lua_pushliteral(L, "value");
                    lua_rawget(L, -3);
                    j = 2;

                } else {
                    lua_rawgeti(L, -2, 2);
                    j = lua_rawlen(L, -3) == 2 ? 2 : 3;
                }

                v = rf_lua_node(tr, L, -2, NULL);
                h->child = v;
                v->next = rf_lua_node(tr, L, -1, NULL);
                h->count = (size_t) j;

            } else {
                h->type = RF_JSON_NULL;
            }

            *link = h;
            link = &h->next;
            node->count++;
        }

        return node;

    default:
        node->type = RF_JSON_NULL;
    }

    tr->n++;

    return node;
}


/* out */

void
rf_lua_out_init(rf_lua_out_t *out)
{
    memset(out, 0, sizeof(rf_lua_out_t));
    rf_buf_init(&out->data);
    rf_buf_init(&out->routes);
}


void
rf_lua_out_reset(rf_lua_out_t *out)
{
    out->n = 0;
    rf_buf_reset(&out->data);
    rf_buf_reset(&out->routes);
}


void
rf_lua_out_free(rf_lua_out_t *out)
{
    rf_buf_free(&out->data);
    rf_buf_free(&out->routes);
    free(out->recs);
    memset(out, 0, sizeof(rf_lua_out_t));
}


const char *
rf_lua_route_next(const rf_lua_out_t *out, size_t route, const char *prev)
{
    const char  *p;

    if (route == RF_LUA_NO_ROUTE) {
        return NULL;
    }

    p = prev ? prev + strlen(prev) + 1
             : (const char *) out->routes.data + route;

    return *p ? p : NULL;
}
