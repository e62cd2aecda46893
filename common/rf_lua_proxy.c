/*
 * Copyright (C) ReplayForge contributors
 *
 * The record proxy: how transform(r) sees a record.  Fields are decoded
 * from the record's bytes into a shadow table when read; writes and the
 * headers mark it changed (rf_lua_rec.c then rebuilds the record).
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "rf_lua_int.h"


/*
 * The view's keys, of every kind: a full shadow has each the record has.
 */
static const char  *const rf_lua_keys[] = {
    "kind", "ts", "id", "seq", "source", "bucket",
    "method", "uri", "version", "scheme", "host", "client", "server",
    "headers", "body", "body_size", "body_truncated", "status",
    "bytes_sent", "duration_ms", "upstream", "request_id",
    "session", "dir", "event", "data", "offset_ns", "path", "line",
    "command", "output", "exit", "query", "rows"
};


static int rf_lua_index(lua_State *L);
static int rf_lua_newindex(lua_State *L);
static int rf_lua_pairs(lua_State *L);
static int rf_lua_push_field(lua_State *L, rf_lua_t *rl, const rf_rec_t *rec,
    const char *key);


/*
 * The record proxy: an empty table but for one lightuserdata key holding
 * the record's bytes, then its shadow table once a field was read.  A
 * read decodes just that field into the shadow (a filter reading the uri
 * pays for the uri only).  A write first fills in every field (so that a
 * field set to nil stays nil), marks the shadow dirty and goes to it;
 * handing out the headers (changeable in place) marks it dirty too.
 * Setting "sink" only routes: the record keeps its bytes.
 */

void
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
rf_lua_shadow(lua_State *L, int idx, int flags)
{
    int        full;
    size_t     i, n;
    rf_rec_t   rec;
    rf_lua_t  *rl;

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
        /* the first use: the shadow, keeping the bytes */
        lua_createtable(L, 0, 8);
        lua_pushlightuserdata(L, (void *) &rf_lua_key_bytes);
        lua_pushvalue(L, -3);
        lua_rawset(L, -3);

        lua_pushlightuserdata(L, (void *) &rf_lua_key_state);
        lua_pushvalue(L, -2);
        lua_rawset(L, idx);

        lua_remove(L, -2);
    }

    if (flags & RF_LUA_FULL) {
        lua_pushlightuserdata(L, (void *) &rf_lua_key_full);
        full = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);

        if (!full) {
            rf_lua_proxy_rec(L, lua_gettop(L), &rec);
            n = sizeof(rf_lua_keys) / sizeof(rf_lua_keys[0]);

            for (i = 0; i < n; i++) {
                lua_pushstring(L, rf_lua_keys[i]);

                if (lua_rawget(L, -2) == LUA_TNIL
                    && rf_lua_push_field(L, rl, &rec, rf_lua_keys[i]))
                {
                    lua_setfield(L, -3, rf_lua_keys[i]);
                }

                lua_pop(L, 1);
            }

            lua_pushlightuserdata(L, (void *) &rf_lua_key_full);
            lua_pushboolean(L, 1);
            lua_rawset(L, -3);
        }
    }

    if (flags & RF_LUA_DIRTY) {
        lua_pushlightuserdata(L, (void *) &rf_lua_key_dirty);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }

    return 1;
}


/* the record of the shadow at s (its bytes were checked on the way in) */
void
rf_lua_proxy_rec(lua_State *L, int s, rf_rec_t *rec)
{
    size_t       len;
    const char  *bytes, *err;

    lua_pushlightuserdata(L, (void *) &rf_lua_key_bytes);
    lua_rawget(L, s);
    bytes = lua_tolstring(L, -1, &len);
    lua_pop(L, 1);              /* the shadow keeps the string alive */

    if (rf_rec_parse_sealed(rec, (const unsigned char *) bytes, len, &err)
        != 0)
    {
        luaL_error(L, "record: %s", err);
    }
}


int
rf_lua_field(lua_State *L, int idx, const char *key)
{
    int       s;
    rf_rec_t  rec;

    if (!rf_lua_shadow(L, idx, 0)) {
        lua_pushstring(L, key);
        lua_rawget(L, -2);
        lua_remove(L, -2);
        return 0;
    }

    s = lua_gettop(L);

    lua_pushstring(L, key);

    if (lua_rawget(L, s) == LUA_TNIL) {
        lua_pushlightuserdata(L, (void *) &rf_lua_key_full);

        if (lua_rawget(L, s) == LUA_TNIL) {
            lua_pop(L, 2);

            rf_lua_proxy_rec(L, s, &rec);

            if (rf_lua_push_field(L, rf_lua_self(L), &rec, key)) {
                lua_pushvalue(L, -1);
                lua_setfield(L, s, key);
            } else {
                lua_pushnil(L);
            }

        } else {
            lua_pop(L, 1);
        }
    }

    lua_remove(L, s);

    return 1;
}


/*
 * rf.header() on a record whose headers were not handed out: the first
 * value of name straight from the bytes, pushed (or nil); 1.  0 when the
 * table's own headers must be searched (not a proxy, or headers out).
 */
int
rf_lua_header_bytes(lua_State *L, int idx, const char *name, size_t len)
{
    int         s;
    size_t      off;
    rf_rec_t    rec;
    rf_str_t    n, v;
    rf_field_t  f;

    if (!rf_lua_shadow(L, idx, 0)) {
        lua_pop(L, 1);
        return 0;
    }

    s = lua_gettop(L);

    lua_pushliteral(L, "headers");

    if (lua_rawget(L, s) != LUA_TNIL) {
        lua_pop(L, 2);
        return 0;
    }

    lua_pop(L, 1);

    rf_lua_proxy_rec(L, s, &rec);
    off = 0;

    while (rf_rec_next_field(&rec, &off, &f)) {
        if (f.id == RF_F_HEADER && rf_rec_header_split(&f.val, &n, &v) == 0
            && n.len == len && strncasecmp((const char *) n.data, name, len)
                               == 0
            && memchr(n.data, '\0', n.len) == NULL)
        {
            lua_pushlstring(L, (const char *) v.data, v.len);
            lua_remove(L, s);
            return 1;
        }
    }

    lua_pop(L, 1);
    lua_pushnil(L);

    return 1;
}


static int
rf_lua_index(lua_State *L)
{
    const char  *key;

    if (lua_type(L, 2) != LUA_TSTRING) {
        rf_lua_shadow(L, 1, 0);
        lua_pushvalue(L, 2);
        lua_rawget(L, -2);
        return 1;
    }

    key = lua_tostring(L, 2);

    if (strcmp(key, "headers") == 0) {
        rf_lua_shadow(L, 1, RF_LUA_DIRTY);
        lua_pop(L, 1);
    }

    rf_lua_field(L, 1, key);

    return 1;
}


static int
rf_lua_newindex(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TSTRING
        && strcmp(lua_tostring(L, 2), "sink") == 0)
    {
        rf_lua_shadow(L, 1, 0);
    } else {
        rf_lua_shadow(L, 1, RF_LUA_FULL | RF_LUA_DIRTY);
    }

    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    lua_rawset(L, -3);

    return 0;
}


/* next() over the shadow, hiding the bridge's own keys */
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


/* pairs() hands out the nested tables: count it as a write */
static int
rf_lua_pairs(lua_State *L)
{
    lua_pushcfunction(L, rf_lua_next);
    rf_lua_shadow(L, 1, RF_LUA_FULL | RF_LUA_DIRTY);
    lua_pushnil(L);

    return 3;
}


static void
rf_lua_push_u64(lua_State *L, uint64_t v)
{
    if (v <= INT64_MAX) {
        lua_pushinteger(L, (lua_Integer) v);
    } else {
        lua_pushnumber(L, (lua_Number) v);
    }
}


/*
 * Push the JSON view's field key of rec (bodies raw; rf_rec_to_json() is
 * the model): 1, or 0 when the record has no such field.
 */
static int
rf_lua_push_field(lua_State *L, rf_lua_t *rl, const rf_rec_t *rec,
    const char *key)
{
    char        ts[64];
    size_t      off, i;
    uint64_t    v;
    unsigned    id;
    rf_str_t    s, name, value;
    rf_field_t  f;

    static const struct {
        const char  *key;
        unsigned     id;
        unsigned     http:1;
    } strs[] = {
        { "method", RF_F_METHOD, 1 }, { "uri", RF_F_URI, 1 },
        { "version", RF_F_VERSION, 1 }, { "scheme", RF_F_SCHEME, 1 },
        { "host", RF_F_HOST, 1 }, { "client", RF_F_CLIENT, 0 },
        { "server", RF_F_SERVER, 0 }, { "upstream", RF_F_UPSTREAM, 1 },
        { "request_id", RF_F_REQUEST_ID, 1 }, { "data", RF_F_DATA, 0 },
        { "session", RF_F_SESSION, 0 }, { "dir", RF_F_DIR, 0 },
        { "event", RF_F_EVENT, 0 }, { "path", RF_F_PATH, 0 },
        { "line", RF_F_LINE, 0 }, { "command", RF_F_COMMAND, 0 },
        { "output", RF_F_OUTPUT, 0 }, { "query", RF_F_QUERY, 0 },
        { "rows", RF_F_ROWS, 0 }
    };

    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (strcmp(key, strs[i].key) != 0) {
            continue;
        }

        if (strs[i].http != (rec->kind == RF_KIND_HTTP)
            && !(strs[i].id == RF_F_CLIENT || strs[i].id == RF_F_SERVER))
        {
            return 0;
        }

        if (rf_rec_field(rec, strs[i].id, &s) == -1) {
            return 0;
        }

        lua_pushlstring(L, (const char *) s.data, s.len);
        return 1;
    }

    if (strcmp(key, "kind") == 0) {
        lua_pushstring(L, rf_kind_name(rec->kind));
        return 1;
    }

    if (strcmp(key, "bucket") == 0) {
        if (rf_rec_field(rec, RF_F_BUCKET, &s) == -1) {
            lua_pushliteral(L, "default");
        } else {
            lua_pushlstring(L, (const char *) s.data, s.len);
        }
        return 1;
    }

    if (strcmp(key, "ts") == 0) {
        rf_lua_ts(rec->time_ns, ts, sizeof(ts));
        lua_pushstring(L, ts);
        return 1;
    }

    if (strcmp(key, "source") == 0 || strcmp(key, "id") == 0) {
        if (rl->stamp_source) {
            if (key[0] == 'i') {
                return 0;
            }

            lua_pushstring(L, rl->stamp_source);
            return 1;
        }

        if (rf_rec_field(rec, RF_F_SOURCE, &s) == -1) {
            s.data = (const unsigned char *) "";
            s.len = 0;
        }

        lua_pushlstring(L, (const char *) s.data, s.len);

        if (key[0] == 'i') {
            /* "source:sseq"; the source may hold any byte */
            lua_pushfstring(L, ":%I", (lua_Integer) rec->sseq);
            lua_concat(L, 2);
        }

        return 1;
    }

    if (strcmp(key, "seq") == 0) {
        if (rl->stamp_source || rec->rseq == 0) {
            return 0;
        }

        rf_lua_push_u64(L, rec->rseq);
        return 1;
    }

    if (rec->kind != RF_KIND_HTTP) {
        if (strcmp(key, "offset_ns") == 0 || strcmp(key, "exit") == 0) {
            id = key[0] == 'e' ? RF_F_EXIT : RF_F_OFFSET_NS;

            if (rf_rec_field_u64(rec, id, &v) == -1) {
                return 0;
            }

            rf_lua_push_u64(L, v);
            return 1;
        }

        return 0;
    }

    if (strcmp(key, "headers") == 0) {
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

        return 1;
    }

    if (strcmp(key, "body") == 0 || strcmp(key, "body_size") == 0) {
        if (rf_rec_field(rec, RF_F_BODY, &s) == -1) {
            s.data = (const unsigned char *) "";
            s.len = 0;
        }

        if (key[4] == '\0') {
            lua_pushlstring(L, (const char *) s.data, s.len);
            return 1;
        }

        if (rf_rec_field_u64(rec, RF_F_BODY_SIZE, &v) == -1) {
            v = s.len;
        }

        rf_lua_push_u64(L, v);
        return 1;
    }

    if (strcmp(key, "body_truncated") == 0) {
        lua_pushboolean(L, (rec->flags & RF_REC_F_BODY_TRUNCATED) != 0);
        return 1;
    }

    if (strcmp(key, "status") == 0 || strcmp(key, "bytes_sent") == 0) {
        id = key[0] == 's' ? RF_F_STATUS : RF_F_BYTES_SENT;

        if (rf_rec_field_u64(rec, id, &v) == -1) {
            return 0;
        }

        rf_lua_push_u64(L, v);
        return 1;
    }

    if (strcmp(key, "duration_ms") == 0) {
        if (rf_rec_field_u64(rec, RF_F_DURATION_US, &v) == -1) {
            return 0;
        }

        lua_pushnumber(L, (lua_Number) v / 1000);
        return 1;
    }

    return 0;
}


void
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
