/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests of the Lua bridge: loading and its errors, the sandbox,
 * records in and out (untouched records keep their bytes, binary bodies
 * survive, tables become records), nil, lists and routes, the budget
 * against loops that try to escape it, the memory cap, and the helpers.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rf_json.h"
#include "rf_lua.h"


#define TEST_TIME_NS  1795428000123456000ULL    /* 2026-11-23T10:00:00 */

static const unsigned char  test_body[] = {
    'a', 0, 0xff, 0xfe, '\n', 0x80, 'z', 0
};


static char  test_dir[] = "/tmp/rf-lua-test-XXXXXX";
static int   test_n;


/* a script file with the given text */
static char *
script(const char *text)
{
    char  *path;
    FILE  *f;

    path = malloc(256);
    assert_non_null(path);
    snprintf(path, 256, "%s/s%d.lua", test_dir, test_n++);

    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);

    return path;
}


static rf_lua_t *
open_ok(const char *text, const char *stamp, uint64_t budget,
    uint64_t memory)
{
    char           err[512], *path;
    rf_lua_t      *L;
    rf_lua_conf_t  c;

    path = script(text);

    memset(&c, 0, sizeof(c));
    c.path = path;
    c.name = "test";
    c.budget = budget;
    c.memory = memory;
    c.stamp_source = stamp;

    L = rf_lua_open(&c, err, sizeof(err));
    if (L == NULL) {
        print_error("open: %s\n", err);
    }

    assert_non_null(L);
    free(path);

    return L;
}


static void
open_fails(const char *text, const char *expect)
{
    char           err[512], *path;
    rf_lua_t      *L;
    rf_lua_conf_t  c;

    path = script(text);

    memset(&c, 0, sizeof(c));
    c.path = path;

    L = rf_lua_open(&c, err, sizeof(err));
    assert_null(L);

    if (strstr(err, expect) == NULL) {
        print_error("error \"%s\" lacks \"%s\"\n", err, expect);
        fail();
    }

    free(path);
}


/* an http record with two headers and the binary body, or a simple one */
static size_t
build(unsigned char *buf, size_t cap, const char *uri, int binary)
{
    rf_rec_builder_t  b;

    rf_rec_begin(&b, buf, cap, RF_KIND_HTTP, TEST_TIME_NS);
    rf_rec_add(&b, RF_F_BUCKET, "prod", 4);
    rf_rec_add(&b, RF_F_METHOD, "POST", 4);
    rf_rec_add(&b, RF_F_URI, uri, strlen(uri));
    rf_rec_add(&b, RF_F_HOST, "example.com", 11);
    rf_rec_add_header(&b, "Authorization", 13, "Bearer s3cret", 13);
    rf_rec_add_header(&b, "X-User", 6, "alice", 5);

    if (binary) {
        rf_rec_add(&b, RF_F_BODY, test_body, sizeof(test_body));
    } else {
        rf_rec_add(&b, RF_F_BODY, "{\"k\":1}", 7);
    }

    rf_rec_add_u64(&b, RF_F_STATUS, 503);
    rf_rec_add_u64(&b, RF_F_DURATION_US, 1250);

    return rf_rec_finish(&b);
}


static void
parse_ok(rf_rec_t *rec, const unsigned char *p, size_t len)
{
    const char  *err;

    if (rf_rec_parse(rec, p, len, &err) != 0) {
        print_error("parse: %s\n", err);
        fail();
    }
}


/* run transform on a record with uri; 0 or -1 */
static int
run(rf_lua_t *L, const char *uri, int binary, rf_lua_out_t *out, char *why)
{
    size_t          len;
    rf_rec_t        rec;
    unsigned char   buf[1024];

    len = build(buf, sizeof(buf), uri, binary);
    assert_true(len > 0);
    parse_ok(&rec, buf, len);

    return rf_lua_transform(L, &rec, out, why, 512);
}


/* run on uri must fail with a reason containing expect */
static void
fails(rf_lua_t *L, const char *uri, rf_lua_out_t *out, const char *expect)
{
    char  why[512];

    assert_int_equal(run(L, uri, 0, out, why), -1);

    if (strstr(why, expect) == NULL) {
        print_error("%s: reason \"%s\" lacks \"%s\"\n", uri, why, expect);
        fail();
    }
}


/* output i's JSON view */
static void
view(const rf_lua_out_t *out, size_t i, rf_buf_t *json)
{
    rf_rec_t  rec;

    parse_ok(&rec, out->data.data + out->recs[i].off, out->recs[i].len);
    rf_buf_reset(json);
    assert_int_equal(rf_rec_to_json(&rec, json), 0);
    assert_int_equal(rf_buf_addc(json, '\0'), 0);
}


static void
test_open_errors(void **state)
{
    char           err[512];
    rf_lua_conf_t  c;

    memset(&c, 0, sizeof(c));
    c.path = "/nonexistent/x.lua";
    assert_null(rf_lua_open(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "/nonexistent/x.lua"));

    open_fails("function transform(r)\n  return r\nend end\n", ".lua:3:");
    open_fails("x = 1\n", "defines neither transform() nor tick()");
    open_fails("transform = 5\n", "transform is a number, not a function");
    open_fails("function transform(r) return r end\n"
               "function init() error('no config') end\n",
               "init(): ");
    open_fails("function transform(r) return r end\n"
               "function init() error('no config') end\n", "no config");
    open_fails("while true do end\n", "instruction budget");
    open_fails("\x1bLua", "binary chunk");

    c.path = "x.lua";
    c.memory = 1000;
    assert_null(rf_lua_open(&c, err, sizeof(err)));
    assert_non_null(strstr(err, "memory cap"));
}


static void
test_sandbox(void **state)
{
    char          why[512];
    rf_lua_t     *L;
    rf_lua_out_t  out;

    L = open_ok(
        "assert(io == nil and debug == nil and package == nil)\n"
        "assert(require == nil and dofile == nil and loadfile == nil)\n"
        "assert(os.execute == nil and os.exit == nil and os.getenv == nil)\n"
        "assert(os.remove == nil and os.time and os.date and os.clock)\n"
        "assert(string.dump == nil)\n"
        "assert(load('return 1 + 1')() == 2)\n"
        "local f, e = pcall(load, string.char(27) .. 'Lua', 'x', 'b')\n"
        "assert(not f)\n"
        "local ok = pcall(setmetatable, {}, {__gc = function() end})\n"
        "assert(not ok)\n"
        "assert(not pcall(collectgarbage, 'stop'))\n"
        "assert(collectgarbage('count') > 0)\n"
        "function transform(r)\n"
        "  assert(getmetatable(r) == false)\n"
        "  assert(not pcall(setmetatable, r, {}))\n"
        "  return r\n"
        "end\n", NULL, 0, 0);

    rf_lua_out_init(&out);
    assert_int_equal(run(L, "/x", 0, &out, why), 0);
    assert_int_equal(out.n, 1);

    rf_lua_out_free(&out);
    rf_lua_close(L);
}


/* untouched or only read: the very same bytes */
static void
test_untouched(void **state)
{
    char           why[512];
    size_t         len;
    rf_rec_t       rec;
    rf_lua_t      *L;
    rf_lua_out_t   out;
    unsigned char  buf[1024];

    L = open_ok("function transform(r)\n"
                "  if r.uri:sub(1, 7) == '/health' then return nil end\n"
                "  local n = r.headers\n"          /* read: counts as dirty */
                "  return r\n"
                "end\n", NULL, 0, 0);

    rf_lua_out_init(&out);

    len = build(buf, sizeof(buf), "/a", 1);
    rf_rec_set_rseq(buf, 77);
    parse_ok(&rec, buf, len);

    assert_int_equal(rf_lua_transform(L, &rec, &out, why, sizeof(why)), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.recs[0].route, RF_LUA_NO_ROUTE);

    /* rebuilt: the same view, but not the relay sequence */
    rf_lua_close(L);

    L = open_ok("function transform(r)\n"
                "  if r.uri:sub(1, 7) == '/health' then return nil end\n"
                "  return r\n"
                "end\n", NULL, 0, 0);

    rf_lua_out_reset(&out);
    assert_int_equal(rf_lua_transform(L, &rec, &out, why, sizeof(why)), 0);
    assert_int_equal(out.n, 1);
    assert_int_equal(out.recs[0].len, len);
    assert_memory_equal(out.data.data + out.recs[0].off, buf, len);

    rf_lua_out_reset(&out);
    assert_int_equal(run(L, "/health/live", 0, &out, why), 0);
    assert_int_equal(out.n, 0);

    rf_lua_close(L);

    /* a trivial transform */
    L = open_ok("function transform(r) return r end\n", NULL, 0, 0);
    rf_lua_out_reset(&out);
    assert_int_equal(rf_lua_transform(L, &rec, &out, why, sizeof(why)), 0);
    assert_int_equal(out.recs[0].len, len);
    assert_memory_equal(out.data.data + out.recs[0].off, buf, len);

    rf_lua_out_free(&out);
    rf_lua_close(L);
}


/* changed records are rebuilt; the body's bytes survive */
static void
test_rebuild_binary(void **state)
{
    char            why[512];
    rf_buf_t        json;
    rf_rec_t        rec;
    rf_str_t        body;
    rf_lua_t       *L;
    rf_lua_out_t    out;

    L = open_ok(
        "function transform(r)\n"
        "  for _, h in ipairs(r.headers) do\n"
        "    if h[1]:lower() == 'authorization' then h[2] = '[redacted]' end\n"
        "  end\n"
        "  r.body = r.body .. ''\n"
        "  assert(#r.body == 8 and r.body:byte(2) == 0)\n"
        "  assert(r.duration_ms == 1.25 and r.status == 503)\n"
        "  assert(r.body_truncated == false and r.kind == 'http')\n"
        "  assert(r.ts == '2026-11-23T10:00:00.123456Z')\n"
        "  return r\n"
        "end\n", NULL, 0, 0);

    rf_lua_out_init(&out);
    rf_buf_init(&json);

    assert_int_equal(run(L, "/a?b=1", 1, &out, why), 0);
    assert_int_equal(out.n, 1);

    parse_ok(&rec, out.data.data, out.recs[0].len);
    assert_int_equal(rf_rec_field(&rec, RF_F_BODY, &body), 0);
    assert_int_equal(body.len, sizeof(test_body));
    assert_memory_equal(body.data, test_body, sizeof(test_body));
    assert_int_equal(rec.time_ns, TEST_TIME_NS);

    view(&out, 0, &json);
    assert_non_null(strstr((char *) json.data,
                           "[\"Authorization\",\"[redacted]\"],"
                           "[\"X-User\",\"alice\"]"));
    assert_non_null(strstr((char *) json.data, "\"uri\":\"/a?b=1\""));
    assert_non_null(strstr((char *) json.data, "\"status\":503"));
    assert_non_null(strstr((char *) json.data, "\"duration_ms\":1.250"));
    assert_non_null(strstr((char *) json.data, "\"bucket\":\"prod\""));
    assert_null(strstr((char *) json.data, "s3cret"));

    rf_buf_free(&json);
    rf_lua_out_free(&out);
    rf_lua_close(L);
}


/* headers alone changed: the rest kept byte for byte, sequences too */
static void
test_headers_only(void **state)
{
    char           why[512];
    size_t         len, off;
    rf_buf_t       json;
    rf_rec_t       rec, o;
    rf_str_t       s;
    rf_field_t     f;
    rf_lua_t      *L;
    rf_lua_out_t   out;
    unsigned char  buf[1024];

    L = open_ok("function transform(r)\n"
                "  if r.uri == '/del' then r.status = nil return r end\n"
                "  if r.uri == '/bad' then r.headers[1] = 5 return r end\n"
                "  assert(rf.header(r, 'AUTHORIZATION') == 'Bearer s3cret')\n"
                "  local h = r.headers\n"
                "  h[1][2] = 'x'\n"
                "  h[#h + 1] = {'X-Added', 'yes'}\n"
                "  assert(rf.header(r, 'x-added') == 'yes')\n"
                "  return r\n"
                "end\n", NULL, 0, 0);

    rf_lua_out_init(&out);
    rf_buf_init(&json);

    len = build(buf, sizeof(buf), "/a", 1);
    rf_rec_set_rseq(buf, 77);
    parse_ok(&rec, buf, len);

    assert_int_equal(rf_lua_transform(L, &rec, &out, why, sizeof(why)), 0);
    assert_int_equal(out.n, 1);
    parse_ok(&o, out.data.data, out.recs[0].len);
    assert_int_equal(o.rseq, 77);
    assert_int_equal(o.time_ns, TEST_TIME_NS);
    assert_int_equal(rf_rec_field(&o, RF_F_BODY, &s), 0);
    assert_memory_equal(s.data, test_body, sizeof(test_body));

    off = 0;
    while (rf_rec_next_field(&o, &off, &f)) {
        if (f.id == RF_F_HEADER) {
            break;
        }
    }
    assert_int_equal(f.id, RF_F_HEADER);      /* in place, not at the end */

    view(&out, 0, &json);
    assert_non_null(strstr((char *) json.data,
                           "\"headers\":[[\"Authorization\",\"x\"],"
                           "[\"X-User\",\"alice\"],[\"X-Added\",\"yes\"]]"));
    assert_non_null(strstr((char *) json.data, "\"status\":503"));

    rf_lua_out_reset(&out);
    assert_int_equal(run(L, "/del", 0, &out, why), 0);
    view(&out, 0, &json);
    assert_null(strstr((char *) json.data, "\"status\""));
    assert_non_null(strstr((char *) json.data, "\"uri\":\"/del\""));

    fails(L, "/bad", &out, "\"headers\" must be");

    rf_buf_free(&json);
    rf_lua_out_free(&out);
    rf_lua_close(L);
}


static void
test_lists_routes(void **state)
{
    char          why[512];
    rf_buf_t      json;
    const char   *n;
    rf_lua_t     *L;
    rf_lua_out_t  out;

    L = open_ok(
        "function transform(r)\n"
        "  if r.uri == '/none' then return {} end\n"
        "  if r.uri == '/bad' then return {r, 5} end\n"
        "  if r.uri == '/str' then return 'x' end\n"
        "  if r.uri == '/kindless' then return {uri = '/x'} end\n"
        "  if r.uri == '/badsink' then r.sink = {'a', 7} return r end\n"
        "  local c = rf.copy(r)\n"
        "  c.bucket = 'admin'\n"
        "  c.sink = 'db'\n"
        "  r.sink = {'a', 'b'}\n"
        "  local n = {kind = 'line', line = 'hello', bucket = 'x'}\n"
        "  return {r, c, n}\n"
        "end\n", NULL, 0, 0);

    rf_lua_out_init(&out);
    rf_buf_init(&json);

    assert_int_equal(run(L, "/x", 0, &out, why), 0);
    assert_int_equal(out.n, 3);

    n = rf_lua_route_next(&out, out.recs[0].route, NULL);
    assert_string_equal(n, "a");
    n = rf_lua_route_next(&out, out.recs[0].route, n);
    assert_string_equal(n, "b");
    assert_null(rf_lua_route_next(&out, out.recs[0].route, n));

    n = rf_lua_route_next(&out, out.recs[1].route, NULL);
    assert_string_equal(n, "db");
    assert_int_equal(out.recs[2].route, RF_LUA_NO_ROUTE);

    view(&out, 1, &json);
    assert_non_null(strstr((char *) json.data, "\"bucket\":\"admin\""));
    assert_non_null(strstr((char *) json.data, "\"uri\":\"/x\""));

    view(&out, 2, &json);
    assert_non_null(strstr((char *) json.data, "\"kind\":\"line\""));
    assert_non_null(strstr((char *) json.data, "\"line\":\"hello\""));

    rf_lua_out_reset(&out);
    assert_int_equal(run(L, "/none", 0, &out, why), 0);
    assert_int_equal(out.n, 0);

    /* errors leave out as it was */
    assert_int_equal(run(L, "/x", 0, &out, why), 0);
    assert_int_equal(out.n, 3);
    fails(L, "/bad", &out, "element 2");
    assert_int_equal(out.n, 3);
    fails(L, "/str", &out, "returned a string");
    fails(L, "/kindless", &out, "no \"kind\"");
    fails(L, "/badsink", &out, "sink");
    assert_int_equal(out.n, 3);

    rf_buf_free(&json);
    rf_lua_out_free(&out);
    rf_lua_close(L);
}


/* the spool: source shown, id and source never written back */
static void
test_stamp_source(void **state)
{
    char          why[512];
    rf_rec_t      rec;
    rf_str_t      s;
    rf_lua_t     *L;
    rf_lua_out_t  out;

    L = open_ok("function transform(r)\n"
                "  assert(r.source == 'web-1' and r.id == nil)\n"
                "  r.source = 'evil'\n"
                "  r.id = 'evil:1'\n"
                "  return r\n"
                "end\n", "web-1", 0, 0);

    rf_lua_out_init(&out);
    assert_int_equal(run(L, "/x", 0, &out, why), 0);
    assert_int_equal(out.n, 1);

    parse_ok(&rec, out.data.data, out.recs[0].len);
    assert_int_equal(rf_rec_field(&rec, RF_F_SOURCE, &s), -1);
    assert_int_equal(rec.sseq, 0);

    rf_lua_out_free(&out);
    rf_lua_close(L);
}


/* loops the budget must stop, however they hide */
static void
test_budget(void **state)
{
    char             why[512];
    rf_lua_t        *L;
    rf_lua_out_t     out;
    rf_lua_stats_t   st;

    L = open_ok(
        "function transform(r)\n"
        "  if r.uri == '/loop' then while true do end end\n"
        "  if r.uri == '/pcall' then\n"
        "    while true do pcall(function() while true do end end) end\n"
        "  end\n"
        "  if r.uri == '/co' then\n"
        "    local co = coroutine.wrap(function() while true do end end)\n"
        "    while true do pcall(co) end\n"
        "  end\n"
        "  if r.uri == '/co2' then\n"
        "    while true do\n"
        "      coroutine.resume(coroutine.create(function()\n"
        "        while true do coroutine.yield() end end))\n"
        "    end\n"
        "  end\n"
        "  if r.uri == '/sort' then\n"
        "    while true do\n"
        "      pcall(table.sort, {3, 2, 1}, function(a, b)\n"
        "        while true do end end)\n"
        "    end\n"
        "  end\n"
        "  if r.uri == '/gsub' then\n"
        "    while true do\n"
        "      pcall(string.gsub, 'aaaa', 'a', function()\n"
        "        while true do end end)\n"
        "    end\n"
        "  end\n"
        "  return r\n"
        "end\n", NULL, 100000, 0);

    rf_lua_out_init(&out);

    fails(L, "/loop", &out, "instruction budget of 100000 exceeded");
    assert_int_equal(run(L, "/ok", 0, &out, why), 0);
    fails(L, "/pcall", &out, "budget");
    fails(L, "/co", &out, "budget");
    fails(L, "/co2", &out, "budget");
    fails(L, "/sort", &out, "budget");
    fails(L, "/gsub", &out, "budget");
    assert_int_equal(run(L, "/ok", 0, &out, why), 0);
    assert_int_equal(out.n, 2);

    rf_lua_stats(L, &st);
    assert_int_equal(st.calls, 8);
    assert_int_equal(st.budget, 6);
    assert_int_equal(st.errors, 0);
    assert_int_equal(st.produced, 2);

    rf_lua_out_free(&out);
    rf_lua_close(L);
}


static void
test_memory(void **state)
{
    char             why[512];
    rf_lua_t        *L;
    rf_lua_out_t     out;
    rf_lua_stats_t   st;

    L = open_ok(
        "function transform(r)\n"
        "  if r.uri == '/big' then\n"
        "    local t = {}\n"
        "    for i = 1, 1e7 do t[i] = ('x'):rep(64) .. i end\n"
        "  end\n"
        "  if r.uri == '/rep' then local s = ('x'):rep(1e9) end\n"
        "  return r\n"
        "end\n", NULL, 100000000, 4 * 1024 * 1024);

    rf_lua_out_init(&out);

    fails(L, "/big", &out, "memory cap of 4194304 bytes");
    fails(L, "/rep", &out, "memory");
    assert_int_equal(run(L, "/ok", 0, &out, why), 0);
    assert_int_equal(out.n, 1);

    rf_lua_stats(L, &st);
    assert_int_equal(st.memory, 2);
    assert_true(st.memory_used < 4 * 1024 * 1024);

    rf_lua_out_free(&out);
    rf_lua_close(L);
}


static void
test_errors(void **state)
{
    char             why[512];
    rf_lua_t        *L;
    rf_lua_out_t     out;
    rf_lua_stats_t   st;

    L = open_ok("function transform(r)\n"
                "  if r.uri == '/bad' then error('boom') end\n"
                "  if r.uri == '/tbl' then error({}) end\n"
                "  if r.uri == '/yield' then coroutine.yield() end\n"
                "  if r.uri == '/status' then r.status = 'x' end\n"
                "  return r\n"
                "end\n", NULL, 0, 0);

    rf_lua_out_init(&out);

    fails(L, "/bad", &out, ".lua:2: boom");
    fails(L, "/tbl", &out, "error object is a table");
    fails(L, "/yield", &out, "yielded");
    fails(L, "/status", &out, "\"status\" must be");
    assert_int_equal(run(L, "/ok", 0, &out, why), 0);
    assert_int_equal(out.n, 1);

    rf_lua_stats(L, &st);
    assert_int_equal(st.errors, 4);

    rf_lua_out_free(&out);
    rf_lua_close(L);
}


static void
test_helpers(void **state)
{
    char          why[512];
    rf_buf_t      json;
    rf_lua_t     *L;
    rf_lua_out_t  out;

    setenv("RF_LUA_TEST", "on", 1);

    L = open_ok(
        "function transform(r)\n"
        "  assert(rf.sha256('abc') == 'ba7816bf8f01cfea414140de5dae2223'\n"
        "         .. 'b00361a396177a9cb410ff61f20015ad')\n"
        "  assert(rf.sha256('') == 'e3b0c44298fc1c149afbf4c8996fb924'\n"
        "         .. '27ae41e4649b934ca495991b7852b855')\n"
        "  assert(rf.b64.encode('hi\\0') == 'aGkA')\n"
        "  assert(rf.b64.decode('aGkA') == 'hi\\0')\n"
        "  assert(rf.b64.decode('a') == nil)\n"
        "  assert(rf.env('RF_LUA_TEST') == 'on')\n"
        "  assert(rf.env('RF_LUA_NOPE') == nil)\n"
        "  assert(rf.now() > 1.7e9)\n"
        "  assert(rf.header(r, 'x-user') == 'alice')\n"
        "  assert(rf.header(r, 'x-none') == nil)\n"
        "  local j = rf.json.decode('{\"a\":[1,2.5,null,\"x\"],\"b\":true}')\n"
        "  assert(j.a[1] == 1 and j.a[2] == 2.5 and j.a[3] == rf.json.null)\n"
        "  assert(j.a[4] == 'x' and j.b == true)\n"
        "  assert(rf.json.decode('[1,') == nil)\n"
        "  assert(rf.json.encode({1, 'a', true}) == '[1,\"a\",true]')\n"
        "  assert(rf.json.encode({}) == '[]')\n"
        "  assert(rf.json.encode({k = rf.json.null}) == '{\"k\":null}')\n"
        "  assert(not pcall(rf.json.encode, {1, x = 2}))\n"
        "  local c = {} c.c = c\n"
        "  assert(not pcall(rf.json.encode, c))\n"
        "  assert(not pcall(rf.json.encode, 0/0))\n"
        "  local e = rf.json.decode(rf.json.encode(r))\n"
        "  assert(e.uri == r.uri and e.headers[2][2] == 'alice')\n"
        "  rf.log('info', 'a line\\nwith a break')\n"
        "  print('printed', 1)\n"
        "  assert(not pcall(rf.log, 'loud', 'x'))\n"
        "  r.note = rf.json.encode({n = 1})\n"
        "  return r\n"
        "end\n", NULL, 0, 0);

    rf_lua_out_init(&out);
    rf_buf_init(&json);

    if (run(L, "/x", 0, &out, why) != 0) {
        print_error("%s\n", why);
        fail();
    }

    assert_int_equal(out.n, 1);

    rf_buf_free(&json);
    rf_lua_out_free(&out);
    rf_lua_close(L);
}


static void
test_tick(void **state)
{
    char          why[512];
    rf_buf_t      json;
    rf_lua_t     *L;
    rf_lua_out_t  out;

    L = open_ok("local n = 0\n"
                "function init() n = 10 end\n"
                "function tick()\n"
                "  n = n + 1\n"
                "  if n == 12 then error('tock') end\n"
                "  return {kind = 'line', line = 'tick ' .. n,\n"
                "          bucket = 'alerts', sink = 'discord'}\n"
                "end\n", NULL, 0, 0);

    assert_int_equal(rf_lua_has_transform(L), 0);
    assert_int_equal(rf_lua_has_tick(L), 1);

    rf_lua_out_init(&out);
    rf_buf_init(&json);

    assert_int_equal(rf_lua_tick(L, &out, why, sizeof(why)), 0);
    assert_int_equal(out.n, 1);
    view(&out, 0, &json);
    assert_non_null(strstr((char *) json.data, "\"line\":\"tick 11\""));
    assert_non_null(strstr((char *) json.data, "\"bucket\":\"alerts\""));
    assert_string_equal(rf_lua_route_next(&out, out.recs[0].route, NULL),
                        "discord");

    assert_int_equal(rf_lua_tick(L, &out, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "tock"));

    assert_int_equal(run(L, "/x", 0, &out, why), -1);

    rf_buf_free(&json);
    rf_lua_out_free(&out);
    rf_lua_close(L);
}


/* records/s through three scripts, printed (bench/lua measures the spool) */
static void
test_speed(void **state)
{
    int               i, k, rounds;
    char              why[512], name[32], value[64];
    size_t            len;
    double            secs;
    rf_rec_t          rec;
    rf_lua_t         *L;
    rf_lua_out_t      out;
    struct timespec   t0, t1;
    rf_rec_builder_t  b;
    unsigned char     buf[4096], body[700];

    static const char  *const scripts[] = {
        "function transform(r) return r end\n",
        "function transform(r)\n"
        "  if r.uri:sub(1, 7) == '/health' then return nil end\n"
        "  return r\n"
        "end\n",
        "local secret = { authorization = true, cookie = true }\n"
        "function transform(r)\n"
        "  for _, h in ipairs(r.headers) do\n"
        "    if secret[h[1]:lower()] then h[2] = '[redacted]' end\n"
        "  end\n"
        "  return r\n"
        "end\n",
    };

    static const char  *const names[] = { "trivial", "filter", "redact" };

    memset(body, 'b', sizeof(body));

    rf_rec_begin(&b, buf, sizeof(buf), RF_KIND_HTTP, TEST_TIME_NS);
    rf_rec_add(&b, RF_F_BUCKET, "prod", 4);
    rf_rec_add(&b, RF_F_METHOD, "POST", 4);
    rf_rec_add(&b, RF_F_URI, "/api/items?page=2", 17);
    rf_rec_add(&b, RF_F_VERSION, "HTTP/1.1", 8);
    rf_rec_add(&b, RF_F_HOST, "example.com", 11);
    rf_rec_add(&b, RF_F_CLIENT, "127.0.0.1:50000", 15);

    for (k = 0; k < 10; k++) {
        snprintf(name, sizeof(name), k == 3 ? "Cookie" : "X-Header-%d", k);
        snprintf(value, sizeof(value), "value-%d-abcdefghijklmnop", k);
        rf_rec_add_header(&b, name, strlen(name), value, strlen(value));
    }

    rf_rec_add(&b, RF_F_BODY, body, sizeof(body));
    rf_rec_add_u64(&b, RF_F_STATUS, 200);
    rf_rec_add_u64(&b, RF_F_DURATION_US, 1250);
    len = rf_rec_finish(&b);
    parse_ok(&rec, buf, len);

    rf_lua_out_init(&out);
    rounds = 200000;

    for (k = 0; k < 3; k++) {
        L = open_ok(scripts[k], "web-1", 0, 0);

        clock_gettime(CLOCK_MONOTONIC, &t0);

        for (i = 0; i < rounds; i++) {
            rf_lua_out_reset(&out);
            assert_int_equal(rf_lua_transform(L, &rec, &out, why,
                                              sizeof(why)), 0);
        }

        clock_gettime(CLOCK_MONOTONIC, &t1);
        secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

        assert_int_equal(out.n, 1);
        print_message("# %s transform of a %zu-byte record: %.0f records/s\n",
                      names[k], len, rounds / secs);

        rf_lua_close(L);
    }

    rf_lua_out_free(&out);
}


int
main(void)
{
    int  rc;
    char cmd[128];

    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_sandbox),
        cmocka_unit_test(test_untouched),
        cmocka_unit_test(test_rebuild_binary),
        cmocka_unit_test(test_headers_only),
        cmocka_unit_test(test_lists_routes),
        cmocka_unit_test(test_stamp_source),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_memory),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_helpers),
        cmocka_unit_test(test_tick),
        cmocka_unit_test(test_speed),
    };

    if (mkdtemp(test_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }

    rc = cmocka_run_group_tests(tests, NULL, NULL);

    snprintf(cmd, sizeof(cmd), "rm -rf %s", test_dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "could not remove %s\n", test_dir);
    }

    return rc;
}
