/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests for common/rf_conf.c: the tokenizer (quotes, escapes,
 * comments, ${ENV}, limits), includes (globs, relative paths, loops,
 * depth), the directive table (every type, unit and bound, duplicates,
 * CUSTOM blocks), flags, and every error message with its file:line.
 * Every prefix and many mutations of a valid file are parsed to show that
 * hostile input ends in an error, never a crash (run it under ASan).
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_conf.h"


#define NBUCKETS                4


typedef struct {
    char                       *label;
    uint64_t                    max_size;
    uint64_t                    ttl;
} bucket_t;


typedef struct {
    char                       *id;
    char                       *name;
    char                       *tag;
    int64_t                     workers;
    int64_t                     delta;
    uint64_t                    max_buffer;
    uint64_t                    chunk;
    uint64_t                    timeout;
    int                         compress;
    int                         policy;
    int                         nlist;
    int                         nbuckets;
    bucket_t                    buckets[NBUCKETS];
} test_conf_t;


static int bucket_handler(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int list_handler(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen);
static int fail_handler(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen);
static int silent_handler(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static void conf_cleanup(test_conf_t *c);
static int parse_apply(const char *text, test_conf_t *c, char *err,
    size_t errlen);
static void check_error(const char *text, const char *expected);
static void write_file(const char *name, const char *text, size_t len);
static void make_dir(const char *name);
static const char *tpath(const char *name);
static const char *strf(const char *f, ...)
    __attribute__((format(printf, 1, 2)));
static int rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw);
static int group_setup(void **state);
static int group_teardown(void **state);
static void fuzz_one(const char *text, size_t len, int *errors);
static uint32_t fuzz_rand(uint32_t *seed);
static void test_simple(void **state);
static void test_defaults(void **state);
static void test_bad_default(void **state);
static void test_parse_size(void **state);
static void test_parse_msec(void **state);
static void test_parse_int(void **state);
static void test_types(void **state);
static void test_bounds(void **state);
static void test_invalid_values(void **state);
static void test_directive_errors(void **state);
static void test_multi(void **state);
static void test_quotes(void **state);
static void test_comments(void **state);
static void test_blocks(void **state);
static void test_parse_errors(void **state);
static void test_max_args_and_depth(void **state);
static void test_env(void **state);
static void test_long_tokens(void **state);
static void test_small_err_buffer(void **state);
static void test_include(void **state);
static void test_include_errors(void **state);
static void test_include_loops(void **state);
static void test_set(void **state);
static void test_release(void **state);
static void test_fuzz_prefixes(void **state);
static void test_fuzz_mutations(void **state);


static const char *const  policies[] = {
    "drop_oldest", "drop_newest", "reject", NULL
};


static const rf_conf_cmd_t  test_cmds[] = {
    { "id", RF_CONF_STR, offsetof(test_conf_t, id), 0, 0, NULL, NULL,
      NULL, 0 },
    { "name", RF_CONF_STR, offsetof(test_conf_t, name), 0, 0, "rf", NULL,
      NULL, 0 },
    { "tag", RF_CONF_STR, offsetof(test_conf_t, tag), 0, 0, NULL, NULL,
      NULL, 1 },
    { "workers", RF_CONF_INT, offsetof(test_conf_t, workers), 1, 64, "4",
      NULL, NULL, 0 },
    { "delta", RF_CONF_INT, offsetof(test_conf_t, delta), -100, 100, NULL,
      NULL, NULL, 0 },
    { "max_buffer", RF_CONF_SIZE, offsetof(test_conf_t, max_buffer),
      1024 * 1024, 0, "64m", NULL, NULL, 0 },
    { "chunk", RF_CONF_SIZE, offsetof(test_conf_t, chunk), 0,
      1024 * 1024 * 1024, "16k", NULL, NULL, 0 },
    { "timeout", RF_CONF_MSEC, offsetof(test_conf_t, timeout), 100,
      3600 * 1000, "30s", NULL, NULL, 0 },
    { "compress", RF_CONF_FLAG, offsetof(test_conf_t, compress), 0, 0,
      "on", NULL, NULL, 0 },
    { "policy", RF_CONF_ENUM, offsetof(test_conf_t, policy), 0, 0,
      "drop_newest", policies, NULL, 0 },
    { "list", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, list_handler, 1 },
    { "bucket", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, bucket_handler, 1 },
    { "fail", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, fail_handler, 0 },
    { "silent", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, silent_handler, 0 },
    rf_conf_null_cmd
};


static const rf_conf_cmd_t  bucket_cmds[] = {
    { "label", RF_CONF_STR, offsetof(bucket_t, label), 0, 0, NULL, NULL,
      NULL, 0 },
    { "max_size", RF_CONF_SIZE, offsetof(bucket_t, max_size), 0, 0, "1g",
      NULL, NULL, 0 },
    { "ttl", RF_CONF_MSEC, offsetof(bucket_t, ttl), 0, 0, "7d", NULL,
      NULL, 0 },
    rf_conf_null_cmd
};


static char  tmpdir[] = "/tmp/rf_conf_test.XXXXXX";


static int
bucket_handler(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    bucket_t     *b;
    test_conf_t  *c = conf;

    if (!node->block || node->nargs != 0) {
        snprintf(err, errlen, "\"bucket\" directive takes a block only");
        return -1;
    }

    if (c->nbuckets == NBUCKETS) {
        snprintf(err, errlen, "too many buckets");
        return -1;
    }

    b = &c->buckets[c->nbuckets++];

    if (rf_conf_defaults(bucket_cmds, b, err, errlen) != 0) {
        return -1;
    }

    return rf_conf_apply(bucket_cmds, node->children, b, err, errlen);
}


static int
list_handler(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    ((test_conf_t *) conf)->nlist += node->nargs;

    return 0;
}


static int
fail_handler(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    snprintf(err, errlen, "custom failure with %d args", node->nargs);

    return -1;
}


static int
silent_handler(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    return -1;
}


static void
conf_cleanup(test_conf_t *c)
{
    int  i;

    for (i = 0; i < c->nbuckets; i++) {
        rf_conf_release(bucket_cmds, &c->buckets[i]);
    }

    rf_conf_release(test_cmds, c);
    memset(c, 0, sizeof(test_conf_t));
}


/* -1 on a parse or apply error; an empty config is not an error */

static int
parse_apply(const char *text, test_conf_t *c, char *err, size_t errlen)
{
    int              rc;
    rf_conf_node_t  *nodes;

    nodes = rf_conf_parse_string(text, "t.conf", err, errlen);
    if (nodes == NULL) {
        return (err[0] != '\0') ? -1 : 0;
    }

    rc = rf_conf_apply(test_cmds, nodes, c, err, errlen);
    rf_conf_free(nodes);

    return rc;
}


static void
check_error(const char *text, const char *expected)
{
    char         err[1024];
    test_conf_t  c;

    memset(&c, 0, sizeof(c));
    err[0] = '\0';

    if (parse_apply(text, &c, err, sizeof(err)) != -1) {
        conf_cleanup(&c);
        fail_msg("no error for \"%s\", expected \"%s\"", text, expected);
    }

    conf_cleanup(&c);
    assert_string_equal(err, expected);
}


/* len 0: strlen(text) */

static void
write_file(const char *name, const char *text, size_t len)
{
    FILE  *f;

    if (len == 0) {
        len = strlen(text);
    }

    f = fopen(tpath(name), "w");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}


static void
make_dir(const char *name)
{
    assert_int_equal(mkdir(tpath(name), 0700), 0);
}


/* the path of name in tmpdir, in one of a few rotating static buffers */

static const char *
tpath(const char *name)
{
    static int   i;
    static char  buf[8][512];

    i = (i + 1) % 8;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", tmpdir, name);

    return buf[i];
}


static const char *
strf(const char *f, ...)
{
    va_list      args;
    static int   i;
    static char  buf[4][1024];

    i = (i + 1) % 4;

    va_start(args, f);
    vsnprintf(buf[i], sizeof(buf[i]), f, args);
    va_end(args);

    return buf[i];
}


static int
rm_entry(const char *path, const struct stat *st, int flag,
    struct FTW *ftw)
{
    return remove(path);
}


static int
group_setup(void **state)
{
    return (mkdtemp(tmpdir) == NULL) ? -1 : 0;
}


static int
group_teardown(void **state)
{
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}


static void
test_simple(void **state)
{
    char             err[256];
    test_conf_t      c;
    rf_conf_node_t  *n;

    n = rf_conf_parse_string("id a1;\n\n  workers   8 ;\nlist x y z;\n",
                             "t.conf", err, sizeof(err));
    assert_non_null(n);

    assert_string_equal(n->name, "id");
    assert_int_equal(n->nargs, 1);
    assert_string_equal(n->args[0], "a1");
    assert_null(n->args[1]);
    assert_string_equal(n->file, "t.conf");
    assert_int_equal(n->line, 1);
    assert_int_equal(n->block, 0);
    assert_null(n->children);

    assert_string_equal(n->next->name, "workers");
    assert_int_equal(n->next->line, 3);
    assert_int_equal(n->next->next->nargs, 3);
    assert_string_equal(n->next->next->args[2], "z");
    assert_null(n->next->next->next);

    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_apply(test_cmds, n, &c, err, sizeof(err)), 0);
    assert_string_equal(c.id, "a1");
    assert_int_equal(c.workers, 8);
    assert_int_equal(c.nlist, 3);

    rf_conf_free(n);
    conf_cleanup(&c);
}


static void
test_defaults(void **state)
{
    char         err[256];
    test_conf_t  c;

    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_defaults(test_cmds, &c, err, sizeof(err)), 0);

    assert_null(c.id);
    assert_string_equal(c.name, "rf");
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.delta, 0);
    assert_int_equal(c.max_buffer, 64 * 1024 * 1024);
    assert_int_equal(c.chunk, 16 * 1024);
    assert_int_equal(c.timeout, 30000);
    assert_int_equal(c.compress, 1);
    assert_int_equal(c.policy, 1);

    /* a config overrides the defaults; STR replaces without leaking */
    assert_int_equal(parse_apply("name other; compress off;", &c, err,
                                 sizeof(err)), 0);
    assert_string_equal(c.name, "other");
    assert_int_equal(c.compress, 0);

    conf_cleanup(&c);
}


static void
test_bad_default(void **state)
{
    char         err[256];
    test_conf_t  c;

    static const rf_conf_cmd_t  cmds[] = {
        { "max_buffer", RF_CONF_SIZE, offsetof(test_conf_t, max_buffer),
          1024 * 1024, 0, "12q", NULL, NULL, 0 },
        rf_conf_null_cmd
    };

    static const rf_conf_cmd_t  cmds2[] = {
        { "max_buffer", RF_CONF_SIZE, offsetof(test_conf_t, max_buffer),
          1024 * 1024, 0, "1k", NULL, NULL, 0 },
        rf_conf_null_cmd
    };

    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_defaults(cmds, &c, err, sizeof(err)), -1);
    assert_string_equal(err,
                        "\"max_buffer\" directive default invalid value "
                        "\"12q\"");

    assert_int_equal(rf_conf_defaults(cmds2, &c, err, sizeof(err)), -1);
    assert_string_equal(err, "\"max_buffer\" directive default value must "
                             "be at least 1m");
}


static void
test_parse_size(void **state)
{
    size_t    i;
    uint64_t  v;

    static const struct {
        const char  *s;
        uint64_t     v;
    } good[] = {
        { "0", 0 },
        { "512", 512 },
        { "64k", 64 * 1024 },
        { "64K", 64 * 1024 },
        { "10m", 10 * 1024 * 1024 },
        { "10M", 10 * 1024 * 1024 },
        { "1g", 1024 * 1024 * 1024 },
        { "3G", 3ULL * 1024 * 1024 * 1024 },
        { "18446744073709551615", UINT64_MAX },
        { "17179869183g", 17179869183ULL << 30 },
    };

    static const char *const  bad[] = {
        "", "k", "m", "1.5m", "12q", "1kb", "1k1", "-1", "+1", " 1", "1 ",
        "1t", "18446744073709551616", "17179869184g", "18014398509481984k",
        "99999999999999999999999"
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        if (rf_conf_parse_size(good[i].s, &v) != 0 || v != good[i].v) {
            fail_msg("size \"%s\": %llu", good[i].s, (unsigned long long) v);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rf_conf_parse_size(bad[i], &v) != -1) {
            fail_msg("size \"%s\" accepted", bad[i]);
        }
    }
}


static void
test_parse_msec(void **state)
{
    size_t    i;
    uint64_t  v;

    static const struct {
        const char  *s;
        uint64_t     v;
    } good[] = {
        { "0", 0 },
        { "500ms", 500 },
        { "30s", 30000 },
        { "30", 30000 },
        { "5m", 300000 },
        { "2h", 7200000 },
        { "7d", 604800000 },
        { "1w", 604800000 },
        { "1h30m", 5400000 },
        { "1m30", 90000 },
        { "1s500ms", 1500 },
        { "1w2d3h4m5s6ms", 788645006 },
        { "0ms", 0 },
        { "30500568904w", 30500568904ULL * 604800000 },
        { "18446744073709551615ms", UINT64_MAX },
    };

    static const char *const  bad[] = {
        "", "ms", "s", "h30m", "30m1h", "1s5", "5ms5", "1h1h", "1m1m",
        "1s1s", "1ms1s", "1x", "-1", "+1", "1 s", "1.5s", "1hh", "1hm",
        "30500568905w", "18446744073709551616ms", "18446744073709552s",
        "18446744073709552", "30500568904w1d999999999999999999m"
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        if (rf_conf_parse_msec(good[i].s, &v) != 0 || v != good[i].v) {
            fail_msg("msec \"%s\": %llu", good[i].s, (unsigned long long) v);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rf_conf_parse_msec(bad[i], &v) != -1) {
            fail_msg("msec \"%s\" accepted", bad[i]);
        }
    }
}


static void
test_parse_int(void **state)
{
    size_t   i;
    int64_t  v;

    static const struct {
        const char  *s;
        int64_t      v;
    } good[] = {
        { "0", 0 },
        { "-5", -5 },
        { "007", 7 },
        { "9223372036854775807", INT64_MAX },
        { "-9223372036854775808", INT64_MIN },
    };

    static const char *const  bad[] = {
        "", "-", "--1", "+1", "1e3", "12q", " 1", "0x10",
        "9223372036854775808", "-9223372036854775809",
        "99999999999999999999"
    };

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        v = 12345;
        if (rf_conf_parse_int(good[i].s, &v) != 0 || v != good[i].v) {
            fail_msg("int \"%s\": %lld", good[i].s, (long long) v);
        }
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (rf_conf_parse_int(bad[i], &v) != -1) {
            fail_msg("int \"%s\" accepted", bad[i]);
        }
    }
}


static void
test_types(void **state)
{
    char         err[256];
    test_conf_t  c;

    memset(&c, 0, sizeof(c));

    assert_int_equal(parse_apply("id 'x y';\n"
                                 "workers 64;\n"
                                 "delta -100;\n"
                                 "max_buffer 2G;\n"
                                 "chunk 0;\n"
                                 "timeout 1h;\n"
                                 "compress on;\n"
                                 "policy reject;\n",
                                 &c, err, sizeof(err)), 0);

    assert_string_equal(c.id, "x y");
    assert_int_equal(c.workers, 64);
    assert_int_equal(c.delta, -100);
    assert_int_equal(c.max_buffer, 2ULL << 30);
    assert_int_equal(c.chunk, 0);
    assert_int_equal(c.timeout, 3600000);
    assert_int_equal(c.compress, 1);
    assert_int_equal(c.policy, 2);
    conf_cleanup(&c);

    assert_int_equal(parse_apply("id '';\n"
                                 "workers 1;\n"
                                 "delta 100;\n"
                                 "max_buffer 1m;\n"
                                 "chunk 1g;\n"
                                 "timeout 100ms;\n"
                                 "compress off;\n"
                                 "policy drop_oldest;\n",
                                 &c, err, sizeof(err)), 0);

    assert_string_equal(c.id, "");
    assert_int_equal(c.workers, 1);
    assert_int_equal(c.delta, 100);
    assert_int_equal(c.max_buffer, 1 << 20);
    assert_int_equal(c.chunk, 1 << 30);
    assert_int_equal(c.timeout, 100);
    assert_int_equal(c.compress, 0);
    assert_int_equal(c.policy, 0);
    conf_cleanup(&c);
}


static void
test_bounds(void **state)
{
    check_error("workers 0;",
                "t.conf:1: \"workers\" directive value must be at least 1");
    check_error("\nworkers 65;",
                "t.conf:2: \"workers\" directive value must be at most 64");
    check_error("delta -101;",
                "t.conf:1: \"delta\" directive value must be at least -100");
    check_error("delta 101;",
                "t.conf:1: \"delta\" directive value must be at most 100");
    check_error("max_buffer 1023k;",
                "t.conf:1: \"max_buffer\" directive value must be "
                "at least 1m");
    check_error("chunk 1025m;",
                "t.conf:1: \"chunk\" directive value must be at most 1g");
    check_error("timeout 99ms;",
                "t.conf:1: \"timeout\" directive value must be "
                "at least 100ms");
    check_error("timeout 1h1ms;",
                "t.conf:1: \"timeout\" directive value must be at most 1h");
}


static void
test_invalid_values(void **state)
{
    check_error("max_buffer 12q;",
                "t.conf:1: \"max_buffer\" directive invalid value \"12q\"");
    check_error("max_buffer 99999999999g;",
                "t.conf:1: \"max_buffer\" directive invalid value "
                "\"99999999999g\"");
    check_error("workers four;",
                "t.conf:1: \"workers\" directive invalid value \"four\"");
    check_error("workers 99999999999999999999;",
                "t.conf:1: \"workers\" directive invalid value "
                "\"99999999999999999999\"");
    check_error("timeout 1m1h;",
                "t.conf:1: \"timeout\" directive invalid value \"1m1h\"");
    check_error("compress yes;",
                "t.conf:1: \"compress\" directive invalid value \"yes\", "
                "it must be \"on\" or \"off\"");
    check_error("policy newest;",
                "t.conf:1: \"policy\" directive invalid value \"newest\", "
                "it must be \"drop_oldest\", \"drop_newest\" or \"reject\"");
}


static void
test_directive_errors(void **state)
{
    check_error("id a;\nfoo bar;", "t.conf:2: unknown directive \"foo\"");
    check_error("workers;",
                "t.conf:1: invalid number of arguments in \"workers\" "
                "directive");
    check_error("workers 1 2;",
                "t.conf:1: invalid number of arguments in \"workers\" "
                "directive");
    check_error("id a;\n#\nid b;", "t.conf:3: \"id\" directive is duplicate");
    check_error("workers 4 {\n}",
                "t.conf:1: \"workers\" directive does not take a block");
    check_error("fail 1 2;", "t.conf:1: custom failure with 2 args");
    check_error("\nsilent;", "t.conf:2: invalid \"silent\" directive");
    check_error("fail; fail;", "t.conf:1: custom failure with 0 args");
}


static void
test_multi(void **state)
{
    char         err[256];
    test_conf_t  c;

    memset(&c, 0, sizeof(c));

    /* a multi STR keeps the last value; the earlier ones are not leaked */
    assert_int_equal(parse_apply("tag a; tag b; list 1; list 2 3; tag c;",
                                 &c, err, sizeof(err)), 0);
    assert_string_equal(c.tag, "c");
    assert_int_equal(c.nlist, 3);

    conf_cleanup(&c);
}


static void
test_quotes(void **state)
{
    char             err[256];
    rf_conf_node_t  *n;

    n = rf_conf_parse_string("a \"x y\" 'p;q' \"a\\\"b\\\\c\\nd\\te\\rf\" "
                             "'it\\'s' \"\" '' \"\\d\" x\\\"y \"{}#\";",
                             "t.conf", err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(n->nargs, 9);
    assert_string_equal(n->args[0], "x y");
    assert_string_equal(n->args[1], "p;q");
    assert_string_equal(n->args[2], "a\"b\\c\nd\te\rf");
    assert_string_equal(n->args[3], "it's");
    assert_string_equal(n->args[4], "");
    assert_string_equal(n->args[5], "");
    assert_string_equal(n->args[6], "\\d");
    assert_string_equal(n->args[7], "x\"y");
    assert_string_equal(n->args[8], "{}#");
    rf_conf_free(n);

    /* a quote inside a word is an ordinary character, as in nginx */
    n = rf_conf_parse_string("a b\"c'd;", "t.conf", err, sizeof(err));
    assert_non_null(n);
    assert_string_equal(n->args[0], "b\"c'd");
    rf_conf_free(n);

    /* a quoted string may span lines; the lines still count */
    n = rf_conf_parse_string("a \"1\n2\n3\";\nb;", "t.conf", err,
                             sizeof(err));
    assert_non_null(n);
    assert_string_equal(n->args[0], "1\n2\n3");
    assert_int_equal(n->next->line, 4);
    rf_conf_free(n);

    /* quoted tokens may be followed directly by ; { } */
    n = rf_conf_parse_string("\"a\"\"b\"{\"c\";}", "t.conf", err,
                             sizeof(err));
    assert_null(n);
    assert_string_equal(err, "t.conf:1: unexpected \"\"\" after quoted "
                             "string");

    n = rf_conf_parse_string("'a' 'b'{'c';}", "t.conf", err, sizeof(err));
    assert_non_null(n);
    assert_string_equal(n->name, "a");
    assert_string_equal(n->children->name, "c");
    rf_conf_free(n);

    check_error("id \"a\"b;",
                "t.conf:1: unexpected \"b\" after quoted string");
    check_error("id \"a\"\x01;",
                "t.conf:1: unexpected byte 0x01 after quoted string");
    check_error("id x;\nid2 \"abc\n\n", "t.conf:2: unterminated quoted "
                                        "string");
    check_error("id 'abc\\'", "t.conf:1: unterminated quoted string");
}


static void
test_comments(void **state)
{
    char             err[256];
    rf_conf_node_t  *n;

    n = rf_conf_parse_string("# header\r\nid x; # trailing ; { }\r\n"
                             "  # indented\nname a#b;#end", "t.conf", err,
                             sizeof(err));
    assert_non_null(n);
    assert_string_equal(n->args[0], "x");
    assert_int_equal(n->line, 2);
    assert_string_equal(n->next->args[0], "a#b");
    assert_int_equal(n->next->line, 4);
    assert_null(n->next->next);
    rf_conf_free(n);

    /* empty and comment-only configs: NULL with an empty message */
    strcpy(err, "junk");
    assert_null(rf_conf_parse_string("", "t.conf", err, sizeof(err)));
    assert_string_equal(err, "");
    strcpy(err, "junk");
    assert_null(rf_conf_parse_string("# nothing\n\n", "t.conf", err,
                                     sizeof(err)));
    assert_string_equal(err, "");
}


static void
test_blocks(void **state)
{
    char             err[512];
    test_conf_t      c;
    rf_conf_node_t  *n;

    n = rf_conf_parse_string("outer a {\n  inner {\n    x 1;\n  }\n"
                             "  y;\n}\nz;\n", "t.conf", err, sizeof(err));
    assert_non_null(n);
    assert_string_equal(n->name, "outer");
    assert_int_equal(n->block, 1);
    assert_int_equal(n->nargs, 1);
    assert_string_equal(n->children->name, "inner");
    assert_int_equal(n->children->block, 1);
    assert_string_equal(n->children->children->name, "x");
    assert_int_equal(n->children->children->line, 3);
    assert_string_equal(n->children->next->name, "y");
    assert_string_equal(n->next->name, "z");
    assert_int_equal(n->next->line, 7);
    rf_conf_free(n);

    /* an empty block */
    n = rf_conf_parse_string("e {}", "t.conf", err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(n->block, 1);
    assert_null(n->children);
    rf_conf_free(n);

    memset(&c, 0, sizeof(c));

    assert_int_equal(parse_apply("bucket {\n  label a;\n  max_size 10m;\n}\n"
                                 "bucket {\n  ttl 1h;\n}\n",
                                 &c, err, sizeof(err)), 0);
    assert_int_equal(c.nbuckets, 2);
    assert_string_equal(c.buckets[0].label, "a");
    assert_int_equal(c.buckets[0].max_size, 10 << 20);
    assert_int_equal(c.buckets[0].ttl, 7 * 86400 * 1000ULL);
    assert_null(c.buckets[1].label);
    assert_int_equal(c.buckets[1].max_size, 1 << 30);
    assert_int_equal(c.buckets[1].ttl, 3600 * 1000);
    conf_cleanup(&c);

    /* errors inside a block name the child's line, prefixed only once */
    check_error("bucket {\n  label a;\n  workers 1;\n}",
                "t.conf:3: unknown directive \"workers\"");
    check_error("bucket {\n  ttl 1y;\n}",
                "t.conf:2: \"ttl\" directive invalid value \"1y\"");
    check_error("bucket {\n  label a;\n  label b;\n}",
                "t.conf:3: \"label\" directive is duplicate");
    check_error("\nbucket x {\n}",
                "t.conf:2: \"bucket\" directive takes a block only");
    check_error("bucket;", "t.conf:1: \"bucket\" directive takes a block "
                           "only");
}


static void
test_parse_errors(void **state)
{
    check_error("id x", "t.conf:1: unexpected end of file, expecting \";\" "
                        "or \"}\"");
    check_error("a {\n  b;\n",
                "t.conf:3: unexpected end of file, expecting \"}\"");
    check_error("a {\n  b {\n  c", "t.conf:3: unexpected end of file, "
                                   "expecting \";\" or \"}\"");
    check_error("id x;\n}", "t.conf:2: unexpected \"}\"");
    check_error("a {\n b c }\n}", "t.conf:2: unexpected \"}\"");
    check_error("id x;\n;", "t.conf:2: unexpected \";\"");
    check_error("\n\n{", "t.conf:3: unexpected \"{\"");
    check_error("a 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17;",
                "t.conf:1: too many arguments in \"a\" directive "
                "(at most 16)");
    check_error("include;", "t.conf:1: invalid number of arguments in "
                            "\"include\" directive");
    check_error("\ninclude a b;", "t.conf:2: invalid number of arguments "
                                  "in \"include\" directive");
    check_error("include a {}", "t.conf:1: \"include\" directive does not "
                                "take a block");
    check_error("a ${};", "t.conf:1: invalid environment variable "
                          "reference, expecting \"${NAME}\" where NAME is "
                          "letters, digits and \"_\"");
    check_error("a ${A-B};", "t.conf:1: invalid environment variable "
                             "reference, expecting \"${NAME}\" where NAME "
                             "is letters, digits and \"_\"");
    check_error("a\n${ABC", "t.conf:2: invalid environment variable "
                            "reference, expecting \"${NAME}\" where NAME "
                            "is letters, digits and \"_\"");
}


static void
test_max_args_and_depth(void **state)
{
    int              i;
    char             err[256], text[512];
    size_t           len;
    test_conf_t      c;
    rf_conf_node_t  *n;

    memset(&c, 0, sizeof(c));

    assert_int_equal(parse_apply("list 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 "
                                 "16;", &c, err, sizeof(err)), 0);
    assert_int_equal(c.nlist, 16);

    /* 8 nested blocks are fine, the 9th is not */
    len = 0;
    for (i = 0; i < 8; i++) {
        len += snprintf(text + len, sizeof(text) - len, "b%d {\n", i);
    }

    for (i = 0; i < 8; i++) {
        len += snprintf(text + len, sizeof(text) - len, "}\n");
    }

    n = rf_conf_parse_string(text, "t.conf", err, sizeof(err));
    assert_non_null(n);
    rf_conf_free(n);

    len = 0;
    for (i = 0; i < 9; i++) {
        len += snprintf(text + len, sizeof(text) - len, "b%d {\n", i);
    }

    n = rf_conf_parse_string(text, "t.conf", err, sizeof(err));
    assert_null(n);
    assert_string_equal(err, "t.conf:9: blocks and includes nested too "
                             "deeply (more than 8 levels)");
}


static void
test_env(void **state)
{
    char         err[512];
    test_conf_t  c;

    assert_int_equal(setenv("RF_TEST_A", "hello", 1), 0);
    assert_int_equal(setenv("RF_TEST_SEMI", "a; b {", 1), 0);
    assert_int_equal(setenv("RF_TEST_EMPTY", "", 1), 0);
    assert_int_equal(setenv("RF_TEST_N", "12", 1), 0);
    unsetenv("RF_TEST_UNSET_X");

    memset(&c, 0, sizeof(c));

    assert_int_equal(parse_apply("id ${RF_TEST_A};\n"
                                 "name \"pre-${RF_TEST_A}-${RF_TEST_A}\";\n"
                                 "tag '$HOME a$b $';\n"
                                 "tag ${RF_TEST_SEMI};\n"
                                 "workers ${RF_TEST_N};\n",
                                 &c, err, sizeof(err)), 0);
    assert_string_equal(c.id, "hello");
    assert_string_equal(c.name, "pre-hello-hello");
    assert_string_equal(c.tag, "a; b {");
    assert_int_equal(c.workers, 12);
    conf_cleanup(&c);

    assert_int_equal(parse_apply("tag '$HOME a$b $';\n", &c, err,
                                 sizeof(err)), 0);
    assert_string_equal(c.tag, "$HOME a$b $");
    conf_cleanup(&c);

    /* "\$" keeps a literal "${"; unquoted, "{" would end the word */
    assert_int_equal(parse_apply("tag \"\\${RF_TEST_A}x${RF_TEST_EMPTY}$\";",
                                 &c, err, sizeof(err)), 0);
    assert_string_equal(c.tag, "${RF_TEST_A}x$");
    conf_cleanup(&c);

    check_error("id a;\nname ${RF_TEST_UNSET_X};",
                "t.conf:2: environment variable \"RF_TEST_UNSET_X\" is not "
                "set");
    check_error("id \"x\n${RF_TEST_UNSET_X}\";",
                "t.conf:2: environment variable \"RF_TEST_UNSET_X\" is not "
                "set");
    check_error("workers ${RF_TEST_A};",
                "t.conf:1: \"workers\" directive invalid value \"hello\"");

    unsetenv("RF_TEST_A");
    unsetenv("RF_TEST_SEMI");
    unsetenv("RF_TEST_EMPTY");
    unsetenv("RF_TEST_N");
}


static void
test_long_tokens(void **state)
{
    char             err[256], *text, *big;
    size_t           n;
    rf_conf_node_t  *nodes;

    text = malloc(RF_CONF_MAX_TOKEN + 64);
    assert_non_null(text);

    /* exactly RF_CONF_MAX_TOKEN bytes, bare and quoted */
    n = snprintf(text, 64, "id ");
    memset(text + n, 'x', RF_CONF_MAX_TOKEN);
    strcpy(text + n + RF_CONF_MAX_TOKEN, ";");

    nodes = rf_conf_parse_string(text, "t.conf", err, sizeof(err));
    assert_non_null(nodes);
    assert_int_equal(strlen(nodes->args[0]), RF_CONF_MAX_TOKEN);
    rf_conf_free(nodes);

    n = snprintf(text, 64, "id \"");
    memset(text + n, 'x', RF_CONF_MAX_TOKEN);
    strcpy(text + n + RF_CONF_MAX_TOKEN, "\";");

    nodes = rf_conf_parse_string(text, "t.conf", err, sizeof(err));
    assert_non_null(nodes);
    assert_int_equal(strlen(nodes->args[0]), RF_CONF_MAX_TOKEN);
    rf_conf_free(nodes);

    /* one more byte */
    n = snprintf(text, 64, "\nid ");
    memset(text + n, 'x', RF_CONF_MAX_TOKEN + 1);
    strcpy(text + n + RF_CONF_MAX_TOKEN + 1, ";");

    assert_null(rf_conf_parse_string(text, "t.conf", err, sizeof(err)));
    assert_string_equal(err, "t.conf:2: token too long (more than 65536 "
                             "bytes)");

    /* or through an environment variable */
    big = malloc(RF_CONF_MAX_TOKEN + 1);
    assert_non_null(big);
    memset(big, 'y', RF_CONF_MAX_TOKEN);
    big[RF_CONF_MAX_TOKEN] = '\0';
    assert_int_equal(setenv("RF_TEST_BIG", big, 1), 0);

    nodes = rf_conf_parse_string("id ${RF_TEST_BIG};", "t.conf", err,
                                 sizeof(err));
    assert_non_null(nodes);
    rf_conf_free(nodes);

    assert_null(rf_conf_parse_string("id z${RF_TEST_BIG};", "t.conf", err,
                                     sizeof(err)));
    assert_string_equal(err, "t.conf:1: token too long (more than 65536 "
                             "bytes)");
    unsetenv("RF_TEST_BIG");

    /* a variable name longer than 255 is refused, not copied */
    n = snprintf(text, 64, "id ${");
    memset(text + n, 'V', 300);
    strcpy(text + n + 300, "};");

    assert_null(rf_conf_parse_string(text, "t.conf", err, sizeof(err)));
    assert_string_equal(err, "t.conf:1: invalid environment variable "
                             "reference, expecting \"${NAME}\" where NAME "
                             "is letters, digits and \"_\"");

    free(big);
    free(text);
}


static void
test_small_err_buffer(void **state)
{
    char             err[8];
    test_conf_t      c;
    rf_conf_node_t  *n;

    memset(err, 'Z', sizeof(err));
    assert_null(rf_conf_parse_string("}", "t.conf", err, sizeof(err)));
    assert_string_equal(err, "t.conf:");

    assert_null(rf_conf_parse_string("}", "t.conf", NULL, 0));

    n = rf_conf_parse_string("workers 0; fail;", "t.conf", err, 1);
    assert_non_null(n);
    assert_string_equal(err, "");

    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_apply(test_cmds, n, &c, err, sizeof(err)), -1);
    assert_string_equal(err, "t.conf:");
    assert_int_equal(rf_conf_apply(test_cmds, n->next, &c, NULL, 0), -1);
    assert_int_equal(rf_conf_set(test_cmds, &c, "workers", "0", NULL, 0),
                     -1);
    rf_conf_free(n);
}


static void
test_include(void **state)
{
    char             err[1024];
    test_conf_t      c;
    rf_conf_node_t  *n, *node;

    make_dir("inc");
    make_dir("inc/sub");
    make_dir("inc/conf.d");
    make_dir("inc/empty.d");

    write_file("inc/main.conf",
               "id m;\n"
               "include sub/a.conf;\n"
               "include conf.d/*.conf;\n"
               "include none/*.conf;\n"
               "include empty.d/*;\n"
               "bucket {\n"
               "    include bucket.inc;\n"
               "}\n", 0);
    write_file("inc/sub/a.conf", "workers 3;\ninclude b.conf;\n", 0);
    write_file("inc/sub/b.conf", "name b;\n", 0);
    write_file("inc/conf.d/2.conf", "\n\ntag two;\n", 0);
    write_file("inc/conf.d/1.conf", "tag one;\n", 0);
    write_file("inc/conf.d/skip.txt", "garbage\n", 0);
    write_file("inc/bucket.inc", "max_size 5m;", 0);

    n = rf_conf_parse_file(tpath("inc/main.conf"), err, sizeof(err));
    if (n == NULL) {
        fail_msg("%s", err);
    }

    /* the included nodes are spliced in place, named by their own file */
    node = n->next;
    assert_string_equal(node->name, "workers");
    assert_string_equal(node->file, tpath("inc/sub/a.conf"));
    assert_int_equal(node->line, 1);

    node = node->next;
    assert_string_equal(node->name, "name");
    assert_string_equal(node->file, tpath("inc/sub/b.conf"));

    node = node->next;
    assert_string_equal(node->args[0], "one");
    node = node->next;
    assert_string_equal(node->args[0], "two");
    assert_string_equal(node->file, tpath("inc/conf.d/2.conf"));
    assert_int_equal(node->line, 3);

    node = node->next;
    assert_string_equal(node->name, "bucket");
    assert_string_equal(node->file, tpath("inc/main.conf"));
    assert_int_equal(node->line, 6);
    assert_string_equal(node->children->name, "max_size");
    assert_null(node->next);

    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_apply(test_cmds, n, &c, err, sizeof(err)), 0);
    assert_string_equal(c.id, "m");
    assert_int_equal(c.workers, 3);
    assert_string_equal(c.name, "b");
    assert_string_equal(c.tag, "two");
    assert_int_equal(c.buckets[0].max_size, 5 << 20);
    conf_cleanup(&c);
    rf_conf_free(n);

    /* a string is relative to the directory of its name */
    n = rf_conf_parse_string("include sub/b.conf;", tpath("inc/str.conf"), err,
                             sizeof(err));
    assert_non_null(n);
    assert_string_equal(n->args[0], "b");
    rf_conf_free(n);

    n = rf_conf_parse_string(strf("include %s;", tpath("inc/sub/*.conf")),
                             "t.conf", err, sizeof(err));
    assert_non_null(n);
    assert_string_equal(n->name, "workers");
    rf_conf_free(n);
}


static void
test_include_errors(void **state)
{
    char             err[1024];
    test_conf_t      c;
    rf_conf_node_t  *n;

    make_dir("ie");
    make_dir("ie/sub");

    write_file("ie/missing.conf", "id x;\n\ninclude nothere.conf;\n", 0);
    n = rf_conf_parse_file(tpath("ie/missing.conf"), err, sizeof(err));
    assert_null(n);
    assert_string_equal(err, strf("%s:3: cannot open \"%s\": No such file "
                                  "or directory", tpath("ie/missing.conf"),
                                  tpath("ie/nothere.conf")));

    assert_null(rf_conf_parse_file(tpath("ie/nope.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("cannot open \"%s\": No such file or "
                                  "directory", tpath("ie/nope.conf")));

    write_file("ie/syntax.conf", "id a;\ninclude sub/bad.conf;\n", 0);
    write_file("ie/sub/bad.conf", "id x;\nid y", 0);
    assert_null(rf_conf_parse_file(tpath("ie/syntax.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: unexpected end of file, expecting "
                                  "\";\" or \"}\"", tpath("ie/sub/bad.conf")));

    write_file("ie/brace.conf", "a {\ninclude sub/close.conf;\n}\n", 0);
    write_file("ie/sub/close.conf", "b;\n}\n", 0);
    assert_null(rf_conf_parse_file(tpath("ie/brace.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: unexpected \"}\"",
                                  tpath("ie/sub/close.conf")));

    write_file("ie/dir.conf", "include sub;", 0);
    assert_null(rf_conf_parse_file(tpath("ie/dir.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:1: \"%s\" is not a regular file",
                                  tpath("ie/dir.conf"), tpath("ie/sub")));

    write_file("ie/nul.conf", "id a;\nid\0b;\n", 12);
    assert_null(rf_conf_parse_file(tpath("ie/nul.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: unexpected NUL character",
                                  tpath("ie/nul.conf")));

    /* apply errors name the included file and its line */
    write_file("ie/apply.conf", "id a;\ninclude sub/w0.conf;\n", 0);
    write_file("ie/sub/w0.conf", "\nworkers 0;\n", 0);
    n = rf_conf_parse_file(tpath("ie/apply.conf"), err, sizeof(err));
    assert_non_null(n);
    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_apply(test_cmds, n, &c, err, sizeof(err)), -1);
    assert_string_equal(err, strf("%s:2: \"workers\" directive value must "
                                  "be at least 1", tpath("ie/sub/w0.conf")));
    conf_cleanup(&c);
    rf_conf_free(n);

    write_file("ie/dup.conf", "id a;\ninclude sub/id.conf;\n", 0);
    write_file("ie/sub/id.conf", "id b;\n", 0);
    n = rf_conf_parse_file(tpath("ie/dup.conf"), err, sizeof(err));
    assert_non_null(n);
    assert_int_equal(rf_conf_apply(test_cmds, n, &c, err, sizeof(err)), -1);
    assert_string_equal(err, strf("%s:1: \"id\" directive is duplicate",
                                  tpath("ie/sub/id.conf")));
    conf_cleanup(&c);
    rf_conf_free(n);
}


static void
test_include_loops(void **state)
{
    int     i;
    char    err[1024], text[256], *many;
    size_t  len;

    make_dir("loop");
    make_dir("loop2");
    make_dir("deep");

    write_file("loop/a.conf", "include b.conf;\n", 0);
    write_file("loop/b.conf", "id x;\ninclude a.conf;\n", 0);
    assert_null(rf_conf_parse_file(tpath("loop/a.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: include loop: \"%s\" includes "
                                  "itself", tpath("loop/b.conf"),
                                  tpath("loop/a.conf")));

    write_file("loop/self.conf", "\ninclude self.conf;\n", 0);
    assert_null(rf_conf_parse_file(tpath("loop/self.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: include loop: \"%s\" includes "
                                  "itself", tpath("loop/self.conf"),
                                  tpath("loop/self.conf")));

    /* the same file under another name is still the same file */
    write_file("loop/s1.conf", "include s2.conf;\n", 0);
    assert_int_equal(symlink("s1.conf", tpath("loop/s2.conf")), 0);
    assert_null(rf_conf_parse_file(tpath("loop/s1.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:1: include loop: \"%s\" includes "
                                  "itself", tpath("loop/s1.conf"),
                                  tpath("loop/s2.conf")));

    write_file("loop2/g.conf", "id a;\ninclude *.conf;\n", 0);
    assert_null(rf_conf_parse_file(tpath("loop2/g.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: include loop: \"%s\" includes "
                                  "itself", tpath("loop2/g.conf"),
                                  tpath("loop2/g.conf")));

    /* from a string: the loop is caught one level down */
    assert_null(rf_conf_parse_string("include self.conf;",
                                     tpath("loop/str.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: include loop: \"%s\" includes "
                                  "itself", tpath("loop/self.conf"),
                                  tpath("loop/self.conf")));

    /* a chain f1 .. f9 is 8 levels of include; f0 .. f9 is one too many */
    for (i = 0; i < 10; i++) {
        if (i < 9) {
            snprintf(text, sizeof(text), "include f%d.conf;\n", i + 1);
        } else {
            snprintf(text, sizeof(text), "id x;\n");
        }

        write_file(strf("deep/f%d.conf", i), text, 0);
    }

    rf_conf_free(rf_conf_parse_file(tpath("deep/f1.conf"), err, sizeof(err)));
    assert_string_equal(err, "");

    assert_null(rf_conf_parse_file(tpath("deep/f0.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:1: blocks and includes nested too "
                                  "deeply (more than 8 levels)",
                                  tpath("deep/f8.conf")));

    /* a fan-out of includes is bounded too: many.conf is file 1 */
    many = malloc(4100 * 32);
    assert_non_null(many);

    for (i = 0, len = 0; i < 4100; i++) {
        len += snprintf(many + len, 32, "include f9.conf;\n");
    }

    write_file("deep/many.conf", many, 0);
    free(many);

    assert_null(rf_conf_parse_file(tpath("deep/many.conf"), err,
                                   sizeof(err)));
    assert_string_equal(err, strf("%s:4096: too many included files (more "
                                  "than 4096)", tpath("deep/many.conf")));

    /* blocks and includes count together */
    write_file("deep/mix.conf", "a { b { c { d { e { f { g { h {\n"
                                "include f9.conf;\n"
                                "} } } } } } } }\n", 0);
    assert_null(rf_conf_parse_file(tpath("deep/mix.conf"), err, sizeof(err)));
    assert_string_equal(err, strf("%s:2: blocks and includes nested too "
                                  "deeply (more than 8 levels)",
                                  tpath("deep/mix.conf")));
}


static void
test_set(void **state)
{
    char         err[512];
    test_conf_t  c;

    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_defaults(test_cmds, &c, err, sizeof(err)), 0);

    assert_int_equal(rf_conf_set(test_cmds, &c, "max-buffer", "2m", err,
                                 sizeof(err)), 0);
    assert_int_equal(c.max_buffer, 2 << 20);
    assert_int_equal(rf_conf_set(test_cmds, &c, "max_buffer", "3m", err,
                                 sizeof(err)), 0);
    assert_int_equal(c.max_buffer, 3 << 20);
    assert_int_equal(rf_conf_set(test_cmds, &c, "--max-buffer", "4m", err,
                                 sizeof(err)), 0);
    assert_int_equal(c.max_buffer, 4 << 20);

    assert_int_equal(rf_conf_set(test_cmds, &c, "max-buffer", "12q", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "invalid value \"12q\" for --max-buffer");
    assert_int_equal(c.max_buffer, 4 << 20);

    assert_int_equal(rf_conf_set(test_cmds, &c, "max_buffer", "1k", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "--max-buffer value must be at least 1m");

    assert_int_equal(rf_conf_set(test_cmds, &c, "timeout", "2h", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "--timeout value must be at most 1h");

    assert_int_equal(rf_conf_set(test_cmds, &c, "nope", "1", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "unknown option --nope");
    assert_int_equal(rf_conf_set(test_cmds, &c, "max-buffer-x", "1", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "unknown option --max-buffer-x");
    assert_int_equal(rf_conf_set(test_cmds, &c, "max", "1", err,
                                 sizeof(err)), -1);

    assert_int_equal(rf_conf_set(test_cmds, &c, "policy", "x", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "invalid value \"x\" for --policy, it must be "
                             "\"drop_oldest\", \"drop_newest\" or "
                             "\"reject\"");
    assert_int_equal(rf_conf_set(test_cmds, &c, "compress", "maybe", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "invalid value \"maybe\" for --compress, it "
                             "must be \"on\" or \"off\"");

    assert_int_equal(rf_conf_set(test_cmds, &c, "compress", "off", err,
                                 sizeof(err)), 0);
    assert_int_equal(c.compress, 0);
    assert_int_equal(rf_conf_set(test_cmds, &c, "compress", NULL, err,
                                 sizeof(err)), 0);
    assert_int_equal(c.compress, 1);
    assert_int_equal(rf_conf_set(test_cmds, &c, "workers", NULL, err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "option --workers requires a value");

    assert_int_equal(rf_conf_set(test_cmds, &c, "fail", "x", err,
                                 sizeof(err)), -1);
    assert_string_equal(err, "--fail: custom failure with 1 args");
    assert_int_equal(rf_conf_set(test_cmds, &c, "list", "x", err,
                                 sizeof(err)), 0);
    assert_int_equal(c.nlist, 1);

    /* a flag overrides the config without being a duplicate */
    assert_int_equal(parse_apply("id a;\nworkers 2;\nname n;", &c, err,
                                 sizeof(err)), 0);
    assert_int_equal(rf_conf_set(test_cmds, &c, "id", "b", err,
                                 sizeof(err)), 0);
    assert_int_equal(rf_conf_set(test_cmds, &c, "workers", "5", err,
                                 sizeof(err)), 0);
    assert_int_equal(rf_conf_set(test_cmds, &c, "workers", "6", err,
                                 sizeof(err)), 0);
    assert_string_equal(c.id, "b");
    assert_string_equal(c.name, "n");
    assert_int_equal(c.workers, 6);

    conf_cleanup(&c);
}


static void
test_release(void **state)
{
    char         err[256];
    test_conf_t  c;

    memset(&c, 0, sizeof(c));
    assert_int_equal(rf_conf_defaults(test_cmds, &c, err, sizeof(err)), 0);
    assert_int_equal(parse_apply("id a; tag t;", &c, err, sizeof(err)), 0);

    rf_conf_release(test_cmds, &c);
    assert_null(c.id);
    assert_null(c.name);
    assert_null(c.tag);
    assert_int_equal(c.workers, 4);

    rf_conf_release(test_cmds, &c);
}


static const char  fuzz_seed[] =
    "# fuzz seed\n"
    "id \"quoted \\\"id\\\"\";\n"
    "name 'single';\n"
    "workers 8;\n"
    "max_buffer 64m;\n"
    "timeout 1h30m;\n"
    "compress on;\n"
    "policy reject;\n"
    "tag ${RF_FZ}-x;\n"
    "list a b c;\n"
    "bucket {\n"
    "    label \"x y\";  # comment\n"
    "    max_size 1g;\n"
    "    ttl 7d;\n"
    "}\n";


/* an error must be located at a line of the text, or be empty (no nodes) */

static void
fuzz_one(const char *text, size_t len, int *errors)
{
    char             err[512], extra;
    unsigned         line, lines;
    size_t           i;
    test_conf_t      c;
    rf_conf_node_t  *n;

    lines = 1;
    for (i = 0; i < len; i++) {
        lines += (text[i] == '\n');
    }

    n = rf_conf_parse_string(text, "fz.conf", err, sizeof(err));

    if (n == NULL) {
        if (err[0] == '\0') {
            return;
        }

        (*errors)++;

    } else {
        memset(&c, 0, sizeof(c));
        rf_conf_defaults(test_cmds, &c, err, sizeof(err));

        if (rf_conf_apply(test_cmds, n, &c, err, sizeof(err)) == 0) {
            err[0] = '\0';
        }

        conf_cleanup(&c);
        rf_conf_free(n);

        if (err[0] == '\0') {
            return;
        }
    }

    if (sscanf(err, "fz.conf:%u: %c", &line, &extra) != 2
        || line == 0 || line > lines)
    {
        fail_msg("bad error \"%s\" for \"%.*s\"", err, (int) len, text);
    }
}


static void
test_fuzz_prefixes(void **state)
{
    int     errors;
    char    err[256], *text;
    size_t  len, i;

    assert_int_equal(setenv("RF_FZ", "env", 1), 0);

    len = strlen(fuzz_seed);
    errors = 0;

    for (i = 0; i <= len; i++) {
        text = strndup(fuzz_seed, i);
        assert_non_null(text);
        fuzz_one(text, i, &errors);
        free(text);
    }

    /* most prefixes end inside a directive, a token or the block */
    assert_true(errors > (int) len / 2);

    rf_conf_free(rf_conf_parse_string(fuzz_seed, "fz.conf", err,
                                      sizeof(err)));
    assert_string_equal(err, "");

    unsetenv("RF_FZ");
}


/* a fixed LCG: the same mutations on every run */

static uint32_t
fuzz_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245 + 12345;

    return (*seed >> 8) & 0xffffff;
}


static void
test_fuzz_mutations(void **state)
{
    int       iter, k, nmut, errors;
    char      text[sizeof(fuzz_seed) + 8];
    size_t    len, pos;
    uint32_t  seed;

    static const char  pool[] = "{};\"'\\$#\n x1{}${}";

    assert_int_equal(setenv("RF_FZ", "env", 1), 0);

    seed = 12345;
    errors = 0;

    for (iter = 0; iter < 20000; iter++) {
        memcpy(text, fuzz_seed, sizeof(fuzz_seed));
        len = sizeof(fuzz_seed) - 1;
        nmut = 1 + fuzz_rand(&seed) % 4;

        for (k = 0; k < nmut && len > 0; k++) {
            pos = fuzz_rand(&seed) % len;

            switch (fuzz_rand(&seed) % 4) {

            case 0:
                text[pos] = pool[fuzz_rand(&seed) % (sizeof(pool) - 1)];
                break;

            case 1:
                text[pos] = 1 + fuzz_rand(&seed) % 255;
                break;

            case 2:
                memmove(text + pos, text + pos + 1, len - pos);
                len--;
                break;

            default:
                text[pos] = '\0';
                len = pos;
                break;
            }
        }

        fuzz_one(text, len, &errors);
    }

    assert_true(errors > 1000);

    unsetenv("RF_FZ");
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_simple),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_bad_default),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_parse_msec),
        cmocka_unit_test(test_parse_int),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_invalid_values),
        cmocka_unit_test(test_directive_errors),
        cmocka_unit_test(test_multi),
        cmocka_unit_test(test_quotes),
        cmocka_unit_test(test_comments),
        cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_max_args_and_depth),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_long_tokens),
        cmocka_unit_test(test_small_err_buffer),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_include_errors),
        cmocka_unit_test(test_include_loops),
        cmocka_unit_test(test_set),
        cmocka_unit_test(test_release),
        cmocka_unit_test(test_fuzz_prefixes),
        cmocka_unit_test(test_fuzz_mutations),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
