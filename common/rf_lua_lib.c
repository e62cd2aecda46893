/*
 * Copyright (C) ReplayForge contributors
 *
 * The rf table scripts get: rf.json.encode/decode (and rf.json.null),
 * rf.b64.encode/decode, rf.sha256, rf.now, rf.env, rf.log, rf.header and
 * rf.copy.
 *
 * These run inside a script's call, where any Lua API function may raise
 * (the memory cap).  So they hold no C memory across such calls but the
 * state's own scratch buffer and last decoded JSON document, which the
 * next use or rf_lua_close() frees.
 */

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rf_log.h"
#include "rf_lua_int.h"
#include "rf_sha256.h"


/* a scratch buffer bigger than this is given back after use */
#define RF_LUA_SCRATCH_KEEP     (1024 * 1024)
/* rf.log messages are cut to this many bytes */
#define RF_LUA_LOG_MAX          1024


static int rf_lua_json_encode(lua_State *L);
static int rf_lua_json_value(lua_State *L, int idx, rf_buf_t *b, int depth,
    char *err, size_t errlen);
static int rf_lua_json_decode(lua_State *L);
static void rf_lua_json_push(lua_State *L, const rf_json_t *v);
static int rf_lua_b64_encode(lua_State *L);
static int rf_lua_b64_decode(lua_State *L);
static int rf_lua_sha256(lua_State *L);
static int rf_lua_now(lua_State *L);
static int rf_lua_env(lua_State *L);
static int rf_lua_log_fn(lua_State *L);
static int rf_lua_header(lua_State *L);
static int rf_lua_copy(lua_State *L);
static void rf_lua_copy_table(lua_State *L, int idx, int depth);
static void rf_lua_scratch_done(rf_lua_t *rl);


void
rf_lua_open_lib(lua_State *L)
{
    static const luaL_Reg  rf[] = {
        { "sha256", rf_lua_sha256 },
        { "now", rf_lua_now },
        { "env", rf_lua_env },
        { "log", rf_lua_log_fn },
        { "header", rf_lua_header },
        { "copy", rf_lua_copy },
        { NULL, NULL }
    };

    static const luaL_Reg  json[] = {
        { "encode", rf_lua_json_encode },
        { "decode", rf_lua_json_decode },
        { NULL, NULL }
    };

    static const luaL_Reg  b64[] = {
        { "encode", rf_lua_b64_encode },
        { "decode", rf_lua_b64_decode },
        { NULL, NULL }
    };

    luaL_newlib(L, rf);

    luaL_newlib(L, json);
    lua_pushlightuserdata(L, (void *) &rf_lua_key_null);
    lua_setfield(L, -2, "null");
    lua_setfield(L, -2, "json");

    luaL_newlib(L, b64);
    lua_setfield(L, -2, "b64");

    lua_setglobal(L, "rf");
}


static void
rf_lua_scratch_done(rf_lua_t *rl)
{
    if (rl->scratch.cap > RF_LUA_SCRATCH_KEEP) {
        rf_buf_free(&rl->scratch);
    } else {
        rf_buf_reset(&rl->scratch);
    }
}


/* rf.json */

static int
rf_lua_json_encode(lua_State *L)
{
    char       err[256];
    rf_lua_t  *rl;

    rl = rf_lua_self(L);
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    err[0] = '\0';

    rf_buf_reset(&rl->scratch);

    if (rf_lua_json_value(L, 1, &rl->scratch, 0, err, sizeof(err)) != 0) {
        if (err[0] == '\0') {
            snprintf(err, sizeof(err), "out of memory");
        }

        rf_lua_scratch_done(rl);
        return luaL_error(L, "rf.json.encode: %s", err);
    }

    lua_pushlstring(L, (const char *) rl->scratch.data, rl->scratch.len);
    rf_lua_scratch_done(rl);

    return 1;
}


/*
 * A sequence 1..n with nothing else is an array, an empty table "[]",
 * string keys an object; anything else is refused.  Only memory errors
 * raise in here (the proxy's shadow); the caller's messages do not.
 */
static int
rf_lua_json_value(lua_State *L, int idx, rf_buf_t *b, int depth, char *err,
    size_t errlen)
{
    int           rc, array, t;
    size_t        n, count, len;
    lua_Integer   k;
    lua_Number    d;
    const char   *s;

    idx = lua_absindex(L, idx);

    switch (lua_type(L, idx)) {

    case LUA_TNIL:
        return rf_buf_adds(b, "null") ? -1 : 0;

    case LUA_TBOOLEAN:
        return rf_buf_adds(b, lua_toboolean(L, idx) ? "true" : "false")
               ? -1 : 0;

    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            return rf_buf_printf(b, "%lld", (long long) lua_tointeger(L, idx))
                   ? -1 : 0;
        }

        d = lua_tonumber(L, idx);

        if (!isfinite(d)) {
            snprintf(err, errlen, "%s cannot be encoded",
                     isnan(d) ? "NaN" : "an infinite number");
            return -1;
        }

        return rf_buf_printf(b, "%.17g", (double) d) ? -1 : 0;

    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &len);
        return rf_json_str(b, (const unsigned char *) s, len) ? -1 : 0;

    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == (void *) &rf_lua_key_null) {
            return rf_buf_adds(b, "null") ? -1 : 0;
        }
        break;

    case LUA_TTABLE:
        if (depth >= RF_LUA_MAX_DEPTH) {
            snprintf(err, errlen, "tables nested deeper than %d (a cycle?)",
                     RF_LUA_MAX_DEPTH);
            return -1;
        }

        if (!lua_checkstack(L, 8)) {
            snprintf(err, errlen, "out of stack");
            return -1;
        }

        rf_lua_shadow(L, idx, RF_LUA_FULL);
        t = lua_gettop(L);

        n = lua_rawlen(L, t);
        count = 0;
        array = 1;

        lua_pushnil(L);

        while (lua_next(L, t)) {
            lua_pop(L, 1);

            if (lua_type(L, -1) == LUA_TLIGHTUSERDATA) {
                continue;           /* the proxy's own keys */
            }

            count++;

            if (!lua_isinteger(L, -1)) {
                array = 0;

                if (lua_type(L, -1) != LUA_TSTRING) {
                    snprintf(err, errlen, "a table key is a %s: keys must "
                             "be strings, or 1..n for an array",
                             luaL_typename(L, -1));
                    lua_pop(L, 2);
                    return -1;
                }

            } else {
                k = lua_tointeger(L, -1);

                if (k < 1 || (size_t) k > n) {
                    snprintf(err, errlen, "a table mixes array and object "
                             "keys");
                    lua_pop(L, 2);
                    return -1;
                }
            }
        }

        if (array && count != n) {
            snprintf(err, errlen, "an array has holes");
            lua_pop(L, 1);
            return -1;
        }

        if (!array && n > 0) {
            snprintf(err, errlen, "a table mixes array and object keys");
            lua_pop(L, 1);
            return -1;
        }

        rc = rf_buf_addc(b, array ? '[' : '{');

        if (array) {
            for (k = 1; rc == 0 && (size_t) k <= n; k++) {
                if (k > 1) {
                    rc = rf_buf_addc(b, ',');
                }

                lua_rawgeti(L, t, k);
                rc = rc ? rc : rf_lua_json_value(L, -1, b, depth + 1, err,
                                                 errlen);
                lua_pop(L, 1);
            }

        } else {
            count = 0;
            lua_pushnil(L);

            while (rc == 0 && lua_next(L, t)) {
                if (lua_type(L, -2) == LUA_TLIGHTUSERDATA) {
                    lua_pop(L, 1);
                    continue;
                }

                if (count++) {
                    rc = rf_buf_addc(b, ',');
                }

                s = lua_tolstring(L, -2, &len);
                rc = rc ? rc : rf_json_str(b, (const unsigned char *) s, len);
                rc = rc ? rc : rf_buf_addc(b, ':');
                rc = rc ? rc : rf_lua_json_value(L, -1, b, depth + 1, err,
                                                 errlen);
                lua_pop(L, 1);
            }

            if (rc != 0) {
                lua_pop(L, 1);      /* the key next() would have taken */
            }
        }

        lua_pop(L, 1);

        if (rc == 0) {
            rc = rf_buf_addc(b, array ? ']' : '}');
        }

        if (rc != 0 && err[0] == '\0') {
            snprintf(err, errlen, "out of memory");
        }

        return rc ? -1 : 0;

    default:
        break;
    }

    snprintf(err, errlen, "a %s value cannot be encoded",
             luaL_typename(L, idx));

    return -1;
}


/* rf.json.decode(s): the value, or nil and a message */
static int
rf_lua_json_decode(lua_State *L)
{
    char         err[256];
    size_t       len;
    rf_lua_t    *rl;
    const char  *s;

    rl = rf_lua_self(L);
    s = luaL_checklstring(L, 1, &len);

    if (rl->doc) {
        rf_json_free(rl->doc);
        rl->doc = NULL;
    }

    rl->doc = rf_json_parse(s, len, err, sizeof(err));

    if (rl->doc == NULL) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }

    rf_lua_json_push(L, rf_json_root(rl->doc));

    rf_json_free(rl->doc);
    rl->doc = NULL;

    return 1;
}


static void
rf_lua_json_push(lua_State *L, const rf_json_t *v)
{
    lua_Integer       i;
    const rf_json_t  *c;

    luaL_checkstack(L, 4, "rf.json.decode: too deep");

    switch (v->type) {

    case RF_JSON_NULL:
        lua_pushlightuserdata(L, (void *) &rf_lua_key_null);
        break;

    case RF_JSON_TRUE:
    case RF_JSON_FALSE:
        lua_pushboolean(L, v->type == RF_JSON_TRUE);
        break;

    case RF_JSON_NUMBER:
        if (v->is_int) {
            lua_pushinteger(L, (lua_Integer) v->i);
        } else {
            lua_pushnumber(L, (lua_Number) v->num);
        }
        break;

    case RF_JSON_STRING:
        lua_pushlstring(L, (const char *) v->str.data, v->str.len);
        break;

    case RF_JSON_ARRAY:
        lua_createtable(L, v->count > INT32_MAX ? 0 : (int) v->count, 0);

        for (c = v->child, i = 1; c; c = c->next, i++) {
            rf_lua_json_push(L, c);
            lua_rawseti(L, -2, i);
        }
        break;

    default:
        lua_createtable(L, 0, v->count > INT32_MAX ? 0 : (int) v->count);

        for (c = v->child; c; c = c->next) {
            lua_pushlstring(L, (const char *) c->key.data, c->key.len);
            rf_lua_json_push(L, c);
            lua_rawset(L, -3);
        }
    }
}


/* rf.b64 */

static int
rf_lua_b64_encode(lua_State *L)
{
    size_t       len;
    rf_lua_t    *rl;
    const char  *s;

    rl = rf_lua_self(L);
    s = luaL_checklstring(L, 1, &len);

    rf_buf_reset(&rl->scratch);

    if (rf_json_base64(&rl->scratch, (const unsigned char *) s, len) != 0) {
        rf_lua_scratch_done(rl);
        return luaL_error(L, "rf.b64.encode: out of memory");
    }

    /* without the quotes rf_json_base64() writes */
    lua_pushlstring(L, (const char *) rl->scratch.data + 1,
                    rl->scratch.len - 2);
    rf_lua_scratch_done(rl);

    return 1;
}


/* rf.b64.decode(s): the bytes, or nil and a message */
static int
rf_lua_b64_decode(lua_State *L)
{
    size_t       len;
    rf_lua_t    *rl;
    const char  *s;

    rl = rf_lua_self(L);
    s = luaL_checklstring(L, 1, &len);

    rf_buf_reset(&rl->scratch);

    if (rf_base64_decode(&rl->scratch, (const unsigned char *) s, len) != 0)
    {
        rf_lua_scratch_done(rl);
        lua_pushnil(L);
        lua_pushstring(L, errno == ENOMEM ? "out of memory"
                                          : "not standard padded base64");
        return 2;
    }

    lua_pushlstring(L, (const char *) rl->scratch.data, rl->scratch.len);
    rf_lua_scratch_done(rl);

    return 1;
}


static int
rf_lua_sha256(lua_State *L)
{
    char         hex[65];
    size_t       len;
    const char  *s;

    s = luaL_checklstring(L, 1, &len);
    rf_sha256_hex(s, len, hex);
    lua_pushlstring(L, hex, 64);

    return 1;
}


static int
rf_lua_now(lua_State *L)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    lua_pushnumber(L, (lua_Number) ts.tv_sec + (lua_Number) ts.tv_nsec / 1e9);

    return 1;
}


static int
rf_lua_env(lua_State *L)
{
    const char  *v;

    v = getenv(luaL_checkstring(L, 1));

    if (v == NULL) {
        lua_pushnil(L);
    } else {
        lua_pushstring(L, v);
    }

    return 1;
}


/* rf.log(level, msg): "warn" (or "error"), "info", "debug" */
static int
rf_lua_log_fn(lua_State *L)
{
    int          level;
    size_t       len;
    const char  *name, *msg;

    static const char  *const levels[] = {
        "warn", "error", "info", "debug", NULL
    };

    static const int  map[] = {
        RF_LOG_WARN, RF_LOG_WARN, RF_LOG_INFO, RF_LOG_DEBUG
    };

    name = luaL_checkstring(L, 1);
    level = luaL_checkoption(L, 1, NULL, levels);
    msg = luaL_checklstring(L, 2, &len);

    (void) name;

    rf_lua_log(rf_lua_self(L), map[level], msg, len);

    return 0;
}


void
rf_lua_log(rf_lua_t *rl, int level, const char *msg, size_t len)
{
    size_t         i, n;
    unsigned char  c;
    char           line[RF_LUA_LOG_MAX + 4];

    if (level > rf_log_level) {
        return;
    }

    n = len < RF_LUA_LOG_MAX ? len : RF_LUA_LOG_MAX;

    /* no line breaks or terminal escapes from a script into the log */
    for (i = 0; i < n; i++) {
        c = (unsigned char) msg[i];
        line[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char) c;
    }

    if (n < len) {
        memcpy(line + n, "...", 3);
        n += 3;
    }

    line[n] = '\0';

    switch (level) {

    case RF_LOG_WARN:
        log_warnx("script %s: %s", rl->name, line);
        break;

    case RF_LOG_INFO:
        log_info("script %s: %s", rl->name, line);
        break;

    default:
        log_debug("script %s: %s", rl->name, line);
    }
}


/* rf.header(r, name): the first value of header name (any case), or nil */
static int
rf_lua_header(lua_State *L)
{
    int           t;
    size_t        len, nlen, i, n;
    const char   *name, *s;

    luaL_checktype(L, 1, LUA_TTABLE);
    name = luaL_checklstring(L, 2, &len);

    if (rf_lua_header_bytes(L, 1, name, len)) {
        return 1;
    }

    rf_lua_field(L, 1, "headers");

    if (lua_type(L, -1) != LUA_TTABLE) {
        lua_pushnil(L);
        return 1;
    }

    t = lua_gettop(L);
    n = lua_rawlen(L, t);

    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, t, (lua_Integer) i) != LUA_TTABLE) {
            lua_pop(L, 1);
            continue;
        }

        if (lua_rawgeti(L, -1, 1) == LUA_TSTRING) {
            s = lua_tolstring(L, -1, &nlen);

            if (nlen == len && strncasecmp(s, name, len) == 0
                && memchr(s, '\0', nlen) == NULL)
            {
                lua_rawgeti(L, -2, 2);
                return 1;
            }
        }

        lua_pop(L, 2);
    }

    lua_pushnil(L);

    return 1;
}


/* rf.copy(r): a plain deep copy (of a record, or any table) */
static int
rf_lua_copy(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    rf_lua_copy_table(L, 1, 0);

    return 1;
}


static void
rf_lua_copy_table(lua_State *L, int idx, int depth)
{
    int  t;

    if (depth >= RF_LUA_MAX_DEPTH) {
        luaL_error(L, "rf.copy: tables nested deeper than %d (a cycle?)",
                   RF_LUA_MAX_DEPTH);
        return;
    }

    luaL_checkstack(L, 6, "rf.copy: too deep");

    rf_lua_shadow(L, idx, RF_LUA_FULL);
    t = lua_gettop(L);

    lua_newtable(L);
    lua_pushnil(L);

    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TLIGHTUSERDATA) {
            lua_pop(L, 1);
            continue;
        }

        lua_pushvalue(L, -2);               /* key */

        if (lua_type(L, -2) == LUA_TTABLE) {
            rf_lua_copy_table(L, -2, depth + 1);
        } else {
            lua_pushvalue(L, -2);
        }

        lua_rawset(L, -5);
        lua_pop(L, 1);
    }

    lua_remove(L, t);
}
