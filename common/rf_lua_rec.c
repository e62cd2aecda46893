/*
 * Copyright (C) ReplayForge contributors
 *
 * What a script's call returns, turned back into binary records:
 * untouched proxies as their own bytes, proxies whose headers alone
 * changed rebuilt around them, everything else through
 * rf_rec_from_json(); and the "sink" routes.
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


static int rf_lua_is_record(rf_lua_t *rl, lua_State *L, int idx);
static int rf_lua_emit(rf_lua_t *rl, lua_State *L, int idx,
    rf_lua_out_t *out, char *why, size_t whylen);
static int rf_lua_build(rf_lua_t *rl, lua_State *L, int t, rf_buf_t *out,
    char *why, size_t whylen);
static int rf_lua_rebuild_headers(lua_State *L, int s, rf_buf_t *out,
    char *why, size_t whylen);
static rf_json_t *rf_lua_node(rf_lua_tree_t *tr, lua_State *L, int idx,
    const char *key);
static int rf_lua_route(lua_State *L, int t, rf_lua_out_t *out,
    size_t *route, char *why, size_t whylen);


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
    int            proxy, top, rc, headers;
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
    headers = 0;

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
            } else {
                /* dirty but not full: only the headers went out */
                lua_pushlightuserdata(L, (void *) &rf_lua_key_full);
                headers = lua_rawget(L, -3) == LUA_TNIL;
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

    } else if (headers) {
        rc = rf_lua_rebuild_headers(L, idx, &out->data, why, whylen);

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


/*
 * A shadow that is dirty but not full had only its headers handed out
 * (every other write fills it first): the record is its own bytes with
 * the header fields replaced by the table's, everything else, sequences
 * included, kept as it was.  -1 with why set when an entry is not a
 * {name, value} pair of strings.
 */
static int
rf_lua_rebuild_headers(lua_State *L, int s, rf_buf_t *out, char *why,
    size_t whylen)
{
    int               h, put;
    size_t            i, n, size, nlen, vlen, off;
    rf_rec_t          rec;
    rf_field_t        f;
    rf_rec_builder_t  b;
    const char       *name, *value;

    rf_lua_proxy_rec(L, s, &rec);

    lua_pushliteral(L, "headers");
    lua_rawget(L, s);
    h = lua_gettop(L);

    n = lua_type(L, h) == LUA_TTABLE ? lua_rawlen(L, h) : 0;

    if (lua_type(L, h) != LUA_TTABLE || !lua_checkstack(L, 2 * (int) n + 4))
    {
        goto invalid;
    }

    /* pass 1: check the pairs, leaving name and value on the stack */
    size = rec.len;
    off = 0;

    while (rf_rec_next_field(&rec, &off, &f)) {
        if (f.id == RF_F_HEADER) {
            size -= RF_REC_FIELD_SIZE(f.val.len);
        }
    }

    for (i = 1; i <= n; i++) {
        if (lua_rawgeti(L, h, (lua_Integer) i) != LUA_TTABLE
            || lua_rawlen(L, -1) != 2)
        {
            goto invalid;
        }

        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        lua_remove(L, -3);

        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
        {
            goto invalid;
        }

        lua_tolstring(L, -2, &nlen);
        lua_tolstring(L, -1, &vlen);
        size += RF_REC_HEADER_SIZE(nlen, vlen);
    }

    if (size > RF_REC_MAX_SIZE) {
        snprintf(why, whylen, "the record is too large");
        lua_settop(L, h - 1);
        return -1;
    }

    if (rf_buf_reserve(out, size) != 0) {
        snprintf(why, whylen, "out of memory");
        lua_settop(L, h - 1);
        return -1;
    }

    /* pass 2: the fields in their order, the headers where they were */
    rf_rec_begin(&b, out->data + out->len, size, rec.kind, rec.time_ns);
    rf_rec_set_flags(&b, rec.flags);
    rf_rec_set_sseq(&b, rec.sseq);

    put = 0;
    off = 0;

    for ( ;; ) {
        if (!rf_rec_next_field(&rec, &off, &f)) {
            f.id = RF_F_MAX;
        }

        if (!put && (f.id == RF_F_HEADER || f.id == RF_F_MAX)) {
            for (i = 0; i < n; i++) {
                name = lua_tolstring(L, h + 1 + 2 * (int) i, &nlen);
                value = lua_tolstring(L, h + 2 + 2 * (int) i, &vlen);
                rf_rec_add_header(&b, name, nlen, value, vlen);
            }

            put = 1;
        }

        if (f.id == RF_F_MAX) {
            break;
        }

        if (f.id != RF_F_HEADER) {
            rf_rec_add(&b, f.id, f.val.data, f.val.len);
        }
    }

    lua_settop(L, h - 1);

    if (rf_rec_finish(&b) != size) {
        snprintf(why, whylen, "the record does not fit its size");
        return -1;
    }

    rf_rec_set_rseq(out->data + out->len, rec.rseq);
    out->len += size;

    return 0;

invalid:

    lua_settop(L, h - 1);
    snprintf(why, whylen, "\"headers\" must be an array of [name, value] "
             "string pairs");

    return -1;
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


int
rf_lua_out_add(rf_lua_out_t *out, const void *data, size_t len)
{
    rf_lua_rec_t  *r;

    if (rf_lua_out_grow(out) != 0 || rf_buf_add(&out->data, data, len) != 0) {
        return -1;
    }

    r = &out->recs[out->n++];
    r->off = out->data.len - len;
    r->len = len;
    r->route = RF_LUA_NO_ROUTE;

    return 0;
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
