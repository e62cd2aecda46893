/*
 * Copyright (C) ReplayForge contributors
 *
 * Records between the bridge and scripts: the proxy a record is handed
 * in as (filled from the bytes on first use), and what a call returns
 * turned back into binary records: untouched proxies as their own bytes,
 * everything else through rf_rec_from_json(), with the "sink" routes.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rf_lua_int.h"


typedef struct {
    rf_json_t                  *nodes;
    size_t                      n;
    size_t                      cap;
    char                      (*lits)[48];
} rf_lua_tree_t;


static int rf_lua_index(lua_State *L);
static int rf_lua_newindex(lua_State *L);
static int rf_lua_pairs(lua_State *L);
static void rf_lua_push_view(lua_State *L, rf_lua_t *rl, const rf_rec_t *rec);
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


/*
 * The record proxy: an empty table but for one lightuserdata key holding
 * the record's bytes, then its shadow table once a field was read.
 * Writes go to the shadow and mark it dirty; so does handing out the
 * headers (they can be changed in place).  Setting "sink" only routes.
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

/* what a call returned: nil, a record, or a list of records */
int
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
