/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests of the JSON reader: the RFC 8259 grammar (valid and invalid
 * documents with the byte each error names), strings, numbers, the depth
 * and size limits, the getters, strict base64, records rebuilt from their
 * JSON view byte for byte, and mutated views that must never crash.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rf_json.h"


#define S(x)  { sizeof(x) - 1, (const unsigned char *) x }
#define L(x)  x, sizeof(x) - 1

#define TEST_TIME_NS  1795428000123456000ULL    /* 2026-11-23T10:00:00 */


typedef struct {
    const char     *text;
    size_t          len;
    const char     *err;
} bad_json_t;

typedef struct {
    const char     *text;
    int             is_int;
    int64_t         i;
    double          num;
} number_t;


static rf_json_doc_t *parse(const char *text, size_t len, char *err);
static void add_str(rf_rec_builder_t *b, unsigned id, const char *s);
static size_t build_http(unsigned char *buf, size_t cap, int variant);
static size_t stamp(unsigned char *buf, size_t len, uint64_t sseq,
    const char *source);
static void to_json(const unsigned char *rec, size_t len, rf_buf_t *out);
static void from_json(const rf_buf_t *json, rf_buf_t *out);
static void round_trip(const unsigned char *rec, size_t len,
    const unsigned char *expect, size_t elen);
static void from_json_error(const char *text, const char *err);
static uint64_t from_json_u64(const char *text, unsigned id);
static void mutate(unsigned char *p, size_t *len);


/* Every document is parsed from an exact-size copy: overreads trap. */
static rf_json_doc_t *
parse(const char *text, size_t len, char *err)
{
    char           *copy;
    rf_json_doc_t  *doc;

    copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, text, len);

    err[0] = '\0';
    doc = rf_json_parse(copy, len, err, 128);

    free(copy);

    return doc;
}


static void
test_valid(void **state)
{
    size_t           i;
    char             err[128];
    rf_json_doc_t   *doc;
    const rf_json_t *root;

    static const char  *docs[] = {
        "{}", "[]", " \t\r\n[ ] \n", "0", "\"\"", "true", "false", "null",
        "{\"a\":[1,{\"b\":null}],\"c\":\"d\"}",
        "[[],{},[[]],{\"\":{}}]",
        "{ \"a\" : 1 , \"b\" : [ 1 , 2 ] }",
        "\"\xf0\x9f\x98\x80 \xe2\x82\xac \xc3\xa9 \x7f\"",
        "[-0,0.0,1e0,1E+1,1e-1,-1.5e300]",
    };

    (void) state;

    for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
        doc = parse(docs[i], strlen(docs[i]), err);
        if (doc == NULL) {
            fail_msg("\"%s\": %s", docs[i], err);
        }
        rf_json_free(doc);
    }

    doc = parse(L("{\"a\":[1,\"x\",{}],\"b\":{\"c\":true}}"), err);
    assert_non_null(doc);
    root = rf_json_root(doc);

    assert_int_equal(root->type, RF_JSON_OBJECT);
    assert_int_equal(root->count, 2);
    assert_int_equal(root->child->type, RF_JSON_ARRAY);
    assert_int_equal(root->child->count, 3);
    assert_int_equal(root->child->key.len, 1);
    assert_int_equal(root->child->child->type, RF_JSON_NUMBER);
    assert_int_equal(root->child->child->key.len, 0);
    assert_int_equal(root->child->child->next->type, RF_JSON_STRING);
    assert_int_equal(root->child->child->next->next->type, RF_JSON_OBJECT);
    assert_int_equal(root->child->child->next->next->count, 0);
    assert_null(root->child->child->next->next->next);
    assert_int_equal(root->child->next->child->type, RF_JSON_TRUE);
    assert_memory_equal(root->child->next->child->key.data, "c", 1);

    rf_json_free(doc);
}


static void
test_numbers(void **state)
{
    size_t           i;
    char             err[128];
    rf_json_doc_t   *doc;
    const rf_json_t *n;

    static const number_t  nums[] = {
        { "0", 1, 0, 0 },
        { "-0", 1, 0, -0.0 },
        { "42", 1, 42, 42 },
        { "-17", 1, -17, -17 },
        { "9223372036854775807", 1, INT64_MAX, 9223372036854775807.0 },
        { "-9223372036854775808", 1, INT64_MIN, -9223372036854775808.0 },
        { "9223372036854775808", 0, 0, 9223372036854775808.0 },
        { "18446744073709551615", 0, 0, 18446744073709551615.0 },
        { "123456789012345678901234567890", 0, 0, 1.2345678901234568e29 },
        { "1.5", 0, 0, 1.5 },
        { "-0.25", 0, 0, -0.25 },
        { "12.345", 0, 0, 12.345 },
        { "1e3", 0, 0, 1000 },
        { "1E+3", 0, 0, 1000 },
        { "25e-2", 0, 0, 0.25 },
        { "0.1", 0, 0, 0.1 },
        { "3.141592653589793", 0, 0, 3.141592653589793 },
        { "1.7976931348623157e308", 0, 0, 1.7976931348623157e308 },
        { "5e-324", 0, 0, 5e-324 },
        { "1e-400", 0, 0, 0 },
        { "0.00000000000000000000000000001", 0, 0, 1e-29 },
        { "1.0", 0, 0, 1 },
    };

    (void) state;

    for (i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        doc = parse(nums[i].text, strlen(nums[i].text), err);
        if (doc == NULL) {
            fail_msg("%s: %s", nums[i].text, err);
        }

        n = rf_json_root(doc);
        assert_int_equal(n->type, RF_JSON_NUMBER);
        assert_int_equal(n->str.len, strlen(nums[i].text));
        assert_memory_equal(n->str.data, nums[i].text, n->str.len);

        if (n->is_int != nums[i].is_int || n->num != nums[i].num
            || signbit(n->num) != signbit(nums[i].num)
            || (n->is_int && n->i != nums[i].i))
        {
            fail_msg("%s: is_int %u i %lld num %.17g", nums[i].text,
                     n->is_int, (long long) n->i, n->num);
        }

        rf_json_free(doc);
    }
}


static void
test_invalid(void **state)
{
    size_t          i;
    char            err[128];
    rf_json_doc_t  *doc;

    static const bad_json_t  bad[] = {
        { L(""), "unexpected end of input at byte 0" },
        { L("  \n"), "unexpected end of input at byte 3" },
        { L("01"), "leading zero in number at byte 1" },
        { L("-01"), "leading zero in number at byte 2" },
        { L("-"), "invalid number at byte 1" },
        { L("1."), "invalid number at byte 2" },
        { L("1.e3"), "invalid number at byte 2" },
        { L(".5"), "unexpected character at byte 0" },
        { L("+1"), "unexpected character at byte 0" },
        { L("1e"), "invalid number at byte 2" },
        { L("1e+"), "invalid number at byte 3" },
        { L("0x10"), "trailing characters at byte 1" },
        { L("1e400"), "number out of range at byte 0" },
        { L("-1e400"), "number out of range at byte 0" },
        { L("NaN"), "unexpected character at byte 0" },
        { L("Infinity"), "unexpected character at byte 0" },
        { L("tru"), "invalid literal at byte 0" },
        { L("nul"), "invalid literal at byte 0" },
        { L("True"), "unexpected character at byte 0" },
        { L("truex"), "trailing characters at byte 4" },
        { L("1 2"), "trailing characters at byte 2" },
        { L("{} x"), "trailing characters at byte 3" },
        { L("[]]"), "trailing characters at byte 2" },
        { L("1\0"), "trailing characters at byte 1" },
        { L("\xef\xbb\xbf" "1"), "unexpected character at byte 0" },
        { L("[1,]"), "unexpected character at byte 3" },
        { L("[,1]"), "unexpected character at byte 1" },
        { L("[1 2]"), "expected ',' or ']' at byte 3" },
        { L("[1"), "unexpected end of input at byte 2" },
        { L("{\"a\"}"), "expected ':' at byte 4" },
        { L("{\"a\":}"), "unexpected character at byte 5" },
        { L("{a:1}"), "expected a member name at byte 1" },
        { L("{\"a\":1,}"), "expected a member name at byte 7" },
        { L("{\"a\":1]"), "expected ',' or '}' at byte 6" },
        { L("{'a':1}"), "expected a member name at byte 1" },
        { L("\"abc"), "unterminated string at byte 4" },
        { L("\"abc\\"), "unterminated string at byte 5" },
        { L("\"a\\x\""), "invalid escape at byte 2" },
        { L("\"a\\'\""), "invalid escape at byte 2" },
        { L("\"\\u12\""), "invalid \\u escape at byte 1" },
        { L("\"\\u12G4\""), "invalid \\u escape at byte 1" },
        { L("\"\\ud800\""), "unpaired surrogate at byte 1" },
        { L("\"\\udc00\\ud800\""), "unpaired surrogate at byte 1" },
        { L("\"x\\ud800\\u0041\""), "unpaired surrogate at byte 2" },
        { L("\"\\ud800x\""), "unpaired surrogate at byte 1" },
        { L("\"\\ud800\\ud800\""), "unpaired surrogate at byte 1" },
        { L("\"a\x01\""), "control character in string at byte 2" },
        { L("\"a\tb\""), "control character in string at byte 2" },
        { L("\"a\nb\""), "control character in string at byte 2" },
        { L("\"a\0b\""), "control character in string at byte 2" },
        { L("\"0123456789\x1f\""), "control character in string at byte 11" },
        { L("\"\xff\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\x80\""), "invalid UTF-8 in string at byte 1" },
        { L("\"ab\xc0\xaf\""), "invalid UTF-8 in string at byte 3" },
        { L("\"\xc3\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\xe2\x82\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\xe0\x80\xaf\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\xed\xa0\x80\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\xf0\x80\x80\xaf\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\xf4\x90\x80\x80\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\xf8\x88\x80\x80\x80\""), "invalid UTF-8 in string at byte 1" },
        { L("\"\xe2\x82\xac\xe2\x28\xa1\""),
          "invalid UTF-8 in string at byte 4" },
        { L("{\"\xff\":1}"), "invalid UTF-8 in string at byte 2" },
        { L("\x80"), "unexpected character at byte 0" },
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        doc = parse(bad[i].text, bad[i].len, err);

        if (doc != NULL) {
            fail_msg("case %zu \"%s\" was accepted", i, bad[i].text);
        }

        if (strcmp(err, bad[i].err) != 0) {
            fail_msg("case %zu \"%s\": \"%s\", expected \"%s\"", i,
                     bad[i].text, err, bad[i].err);
        }
    }
}


static void
test_strings(void **state)
{
    size_t           i, n;
    char             err[128], *text;
    rf_json_doc_t   *doc;
    const rf_json_t *s;

    (void) state;

    doc = parse(L("\"a\\u0000b\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC"
                  "\\ud83d\\ude00\\uDBFF\\uDFFF\""), err);
    assert_non_null(doc);
    s = rf_json_root(doc);
    assert_int_equal(s->type, RF_JSON_STRING);
    assert_int_equal(s->str.len, 24);
    assert_memory_equal(s->str.data,
                        "a\0b\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac"
                        "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 24);
    assert_int_equal(s->str.data[s->str.len], '\0');
    rf_json_free(doc);

    /* the 8-byte scan: an escape or a stop byte at every offset */
    for (n = 1; n < 40; n++) {
        text = malloc(n + 8);
        assert_non_null(text);

        for (i = 0; i < n; i++) {
            text[0] = '"';
            memset(text + 1, 'x', n);
            text[1 + i] = '\\';
            memcpy(text + 2 + i, "n", 1);
            text[1 + n] = '"';

            doc = parse(text, n + 2, err);

            if (i == n - 1) {
                /* the backslash escapes the closing quote */
                assert_null(doc);
                assert_non_null(strstr(err, "unterminated string"));
                continue;
            }

            assert_non_null(doc);
            s = rf_json_root(doc);
            assert_int_equal(s->str.len, n - 1);
            assert_int_equal(s->str.data[i], '\n');
            rf_json_free(doc);

            text[1 + i] = '\x1f';
            doc = parse(text, n + 2, err);
            assert_null(doc);
            assert_non_null(strstr(err, "control character"));
        }

        free(text);
    }
}


static void
test_depth(void **state)
{
    size_t          i, n;
    char            err[128], *text, msg[64];
    rf_json_doc_t  *doc;

    (void) state;

    text = malloc(6 * (RF_JSON_MAX_DEPTH + 1) + 1);
    assert_non_null(text);

    for (n = RF_JSON_MAX_DEPTH; n <= RF_JSON_MAX_DEPTH + 1; n++) {
        for (i = 0; i < n; i++) {
            text[i] = '[';
            text[n + i] = ']';
        }

        doc = parse(text, 2 * n, err);

        if (n == RF_JSON_MAX_DEPTH) {
            assert_non_null(doc);
            rf_json_free(doc);

        } else {
            assert_null(doc);
            snprintf(msg, sizeof(msg), "nesting too deep at byte %d",
                     RF_JSON_MAX_DEPTH);
            assert_string_equal(err, msg);
        }
    }

    /* objects count too: {"a":{"a":...}} */
    for (i = 0, n = 0; i < RF_JSON_MAX_DEPTH + 1; i++) {
        memcpy(text + n, "{\"a\":", 5);
        n += 5;
    }
    text[n++] = '1';
    memset(text + n, '}', RF_JSON_MAX_DEPTH + 1);
    n += RF_JSON_MAX_DEPTH + 1;

    assert_null(parse(text, n, err));
    assert_non_null(strstr(err, "nesting too deep"));

    assert_non_null(doc = parse(text + 5, n - 6, err));
    rf_json_free(doc);

    free(text);
}


/* The value limit, and a large document across several arena blocks. */
static void
test_large(void **state)
{
    size_t           i, n, len;
    char             err[128], *text;
    clock_t          t;
    rf_json_doc_t   *doc;
    const rf_json_t *root, *v;

    (void) state;

    n = RF_JSON_MAX_NODES;
    text = malloc(2 * n + 2);
    assert_non_null(text);

    text[0] = '[';
    for (i = 0; i < n; i++) {
        text[1 + 2 * i] = '7';
        text[2 + 2 * i] = ',';
    }

    /* the array itself and n - 1 numbers: exactly the limit */
    len = 2 * (n - 1) + 1;
    text[len - 1] = ']';

    t = clock();
    doc = parse(text, len, err);
    t = clock() - t;
    assert_non_null(doc);

    root = rf_json_root(doc);
    assert_int_equal(root->count, n - 1);

    for (i = 0, v = root->child; v; v = v->next, i++) {
        if (v->type != RF_JSON_NUMBER || v->i != 7) {
            fail_msg("element %zu", i);
        }
    }

    assert_int_equal(i, n - 1);
    rf_json_free(doc);

    print_message("# %zu values parsed in %.0f ms\n", n - 1,
                  (double) t * 1000 / CLOCKS_PER_SEC);

    text[len - 1] = ',';
    text[len] = '7';
    text[len + 1] = ']';
    assert_null(parse(text, len + 2, err));
    assert_non_null(strstr(err, "too many values"));

    /* one 3 MB string, bigger than any block */
    free(text);
    text = malloc(3000002);
    assert_non_null(text);
    text[0] = '"';
    memset(text + 1, 'y', 3000000);
    text[3000001] = '"';

    doc = parse(text, 3000002, err);
    assert_non_null(doc);
    assert_int_equal(rf_json_root(doc)->str.len, 3000000);
    assert_int_equal(rf_json_root(doc)->str.data[2999999], 'y');
    rf_json_free(doc);

    free(text);
}


static void
test_getters(void **state)
{
    char             err[128];
    int64_t          i;
    uint64_t         u;
    rf_str_t         s;
    rf_json_doc_t   *doc;
    const rf_json_t *o;

    (void) state;

    doc = parse(L("{\"s\":\"v\\u0000w\",\"i\":-5,\"u\":18446744073709551615,"
                  "\"f\":1.5,\"big\":18446744073709551616,\"e\":1e2,"
                  "\"s\":\"second\",\"n\":null,\"a\":[\"s\"],"
                  "\"k\\u0000\":1}"), err);
    assert_non_null(doc);
    o = rf_json_root(doc);

    assert_int_equal(rf_json_get_str(o, "s", &s), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.data, "v\0w", 3);      /* the first "s" */

    assert_int_equal(rf_json_get_int(o, "i", &i), 0);
    assert_int_equal(i, -5);
    assert_int_equal(rf_json_get_u64(o, "i", &u), -1);

    assert_int_equal(rf_json_get_u64(o, "u", &u), 0);
    assert_true(u == UINT64_MAX);
    assert_int_equal(rf_json_get_int(o, "u", &i), -1);

    assert_int_equal(rf_json_get_int(o, "f", &i), -1);
    assert_int_equal(rf_json_get_u64(o, "f", &u), -1);
    assert_int_equal(rf_json_get_u64(o, "big", &u), -1);
    assert_int_equal(rf_json_get_u64(o, "e", &u), -1);

    assert_int_equal(rf_json_get_str(o, "i", &s), -1);
    assert_int_equal(rf_json_get_str(o, "n", &s), -1);
    assert_int_equal(rf_json_get_str(o, "missing", &s), -1);
    assert_int_equal(rf_json_get_int(o, "s", &i), -1);

    assert_non_null(rf_json_get(o, "n"));
    assert_int_equal(rf_json_get(o, "n")->type, RF_JSON_NULL);
    assert_null(rf_json_get(o, "k"));       /* "k\0" is another key */
    assert_null(rf_json_get(o, ""));

    /* only objects have members */
    assert_null(rf_json_get(rf_json_get(o, "a"), "s"));
    assert_int_equal(rf_json_get_str(rf_json_get(o, "a"), "s", &s), -1);
    assert_null(rf_json_get(NULL, "s"));

    rf_json_free(doc);
}


static void
test_base64(void **state)
{
    size_t    i;
    rf_buf_t  b;

    static const struct {
        const char  *in;
        const char  *out;
        size_t       len;
    } good[] = {
        { "", "", 0 },
        { "Zg==", "f", 1 },
        { "Zm8=", "fo", 2 },
        { "Zm9v", "foo", 3 },
        { "Zm9vYg==", "foob", 4 },
        { "Zm9vYmE=", "fooba", 5 },
        { "Zm9vYmFy", "foobar", 6 },
        { "AP8A/w==", "\0\xff\0\xff", 4 },
        { "+/+/", "\xfb\xff\xbf", 3 },
    };

    static const char  *bad[] = {
        "Zg", "Zg=", "Zm9", "Z===", "====", "Zh==", "Zm9=", "Zg=A",
        "Zm9vYg==Zg==", "Zm9v\n", " Zm9v", "Zm9-", "Zm9_", "Zm=v", "=Zm9",
        "Zm9\x80",
    };

    (void) state;

    rf_buf_init(&b);

    for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        rf_buf_reset(&b);
        assert_int_equal(rf_buf_add(&b, "#", 1), 0);

        if (rf_base64_decode(&b, (const unsigned char *) good[i].in,
                             strlen(good[i].in)) != 0)
        {
            fail_msg("\"%s\" refused", good[i].in);
        }

        assert_int_equal(b.len, 1 + good[i].len);
        assert_memory_equal(b.data + 1, good[i].out, good[i].len);
    }

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rf_buf_reset(&b);
        assert_int_equal(rf_buf_add(&b, "#", 1), 0);

        if (rf_base64_decode(&b, (const unsigned char *) bad[i],
                             strlen(bad[i])) != -1)
        {
            fail_msg("\"%s\" accepted", bad[i]);
        }

        assert_int_equal(b.len, 1);
    }

    /* every 0..300 byte string encodes and decodes back */
    for (i = 0; i < 300; i++) {
        unsigned char  data[300];
        rf_buf_t       enc;
        size_t         k;

        for (k = 0; k < i; k++) {
            data[k] = (unsigned char) (k * 37 + i);
        }

        rf_buf_init(&enc);
        assert_int_equal(rf_json_base64(&enc, data, i), 0);

        rf_buf_reset(&b);
        assert_int_equal(rf_base64_decode(&b, enc.data + 1, enc.len - 2), 0);
        assert_int_equal(b.len, i);
        assert_memory_equal(b.data, data, i);
        rf_buf_free(&enc);
    }

    rf_buf_free(&b);
}


static void
add_str(rf_rec_builder_t *b, unsigned id, const char *s)
{
    rf_rec_add(b, id, s, strlen(s));
}


/*
 * Variant 0: an ordinary UTF-8 request.  1: binary body with NULs, the
 * truncated flag, duplicate headers.  2: a UTF-8 body with NUL and
 * control characters.  3 and 4: a Latin-1 header value, and the UTF-8
 * record it becomes through the view.
 */
static size_t
build_http(unsigned char *buf, size_t cap, int variant)
{
    rf_http_t    h;
    rf_header_t  hd[4];

    static const unsigned char  bin[] = {
        'G', 0, 0, 0xff, 0xfe, 'x', 0x80, 0, '\n', 0xc3
    };

    memset(&h, 0, sizeof(rf_http_t));
    memset(hd, 0, sizeof(hd));

    h.time_ns = TEST_TIME_NS;
    h.bucket = (rf_str_t) S("prod");
    h.method = (rf_str_t) S("POST");
    h.uri = (rf_str_t) S("/api/x?y=1&z=\"q\"");
    h.version = (rf_str_t) S("HTTP/1.1");
    h.scheme = (rf_str_t) S("https");
    h.host = (rf_str_t) S("example.com");
    h.client = (rf_str_t) S("10.0.0.1:51000");
    h.server = (rf_str_t) S("10.0.0.2:443");
    hd[0] = (rf_header_t) { S("Content-Type"), S("application/json") };
    hd[1] = (rf_header_t) { S("X-A"), S("1") };
    hd[2] = (rf_header_t) { S("X-A"), S("2") };
    hd[3] = (rf_header_t) { S("X-Empty"), S("") };
    h.headers = hd;
    h.nheaders = 4;
    h.body = (rf_str_t) S("{\"k\":\"\xc3\xa9\"}");
    h.body_size = h.body.len;
    h.status = 201;
    h.bytes_sent = 120;
    h.duration_us = 12345;
    h.upstream = (rf_str_t) S("127.0.0.1:9000");
    h.request_id = (rf_str_t) S("a1b2c3");

    switch (variant) {

    case 1:
        h.body.data = bin;
        h.body.len = sizeof(bin);
        h.body_size = 1000000;
        h.body_truncated = 1;
        h.status = 0;
        h.duration_us = 7;
        h.request_id.len = 0;
        break;

    case 2:
        h.body = (rf_str_t) S("a\0b\x01\x1f\t\"\\\x7f\xe2\x82\xac");
        h.body_size = h.body.len;
        h.duration_us = 3000000000ULL;
        h.upstream.len = 0;
        break;

    case 3:
        hd[1].value = (rf_str_t) S("caf\xe9 \xff");
        break;

    case 4:
        hd[1].value = (rf_str_t) S("caf\xc3\xa9 \xc3\xbf");
        break;
    }

    return rf_http_encode(&h, buf, cap);
}


static size_t
stamp(unsigned char *buf, size_t len, uint64_t sseq, const char *source)
{
    size_t          n;
    rf_rec_t        rec;
    rf_str_t        src;
    const char     *err;
    unsigned char  *tmp;

    tmp = malloc(len + 256);
    assert_non_null(tmp);
    assert_int_equal(rf_rec_parse(&rec, buf, len, &err), 0);

    src.data = (const unsigned char *) source;
    src.len = strlen(source);

    n = rf_rec_stamp(&rec, sseq, &src, tmp, len + 256);
    assert_true(n > len);
    memcpy(buf, tmp, n);
    free(tmp);

    return n;
}


static void
to_json(const unsigned char *rec, size_t len, rf_buf_t *out)
{
    rf_rec_t     r;
    const char  *err;

    rf_buf_reset(out);

    if (rf_rec_parse(&r, rec, len, &err) != 0) {
        fail_msg("rf_rec_parse: %s", err);
    }

    assert_int_equal(rf_rec_to_json(&r, out), 0);
}


static void
from_json(const rf_buf_t *json, rf_buf_t *out)
{
    char            err[128];
    rf_json_doc_t  *doc;

    doc = parse((const char *) json->data, json->len, err);
    if (doc == NULL) {
        fail_msg("rf_json_parse: %s: %.*s", err, (int) json->len,
                 json->data);
    }

    rf_buf_reset(out);

    if (rf_rec_from_json(rf_json_root(doc), out, err, sizeof(err)) != 0) {
        fail_msg("rf_rec_from_json: %s: %.*s", err, (int) json->len,
                 json->data);
    }

    rf_json_free(doc);
}


/*
 * rec -> view -> record must give expect byte for byte, and expect's own
 * view; when expect is rec itself, the view comes back identical.
 */
static void
round_trip(const unsigned char *rec, size_t len, const unsigned char *expect,
    size_t elen)
{
    rf_buf_t  j1, j2, je, bin;

    rf_buf_init(&j1);
    rf_buf_init(&j2);
    rf_buf_init(&je);
    rf_buf_init(&bin);

    to_json(rec, len, &j1);
    from_json(&j1, &bin);

    if (bin.len != elen || memcmp(bin.data, expect, elen) != 0) {
        fail_msg("record differs (%zu bytes, expected %zu) for %.*s",
                 bin.len, elen, (int) j1.len, j1.data);
    }

    to_json(bin.data, bin.len, &j2);
    to_json(expect, elen, &je);

    assert_int_equal(j2.len, je.len);
    assert_memory_equal(j2.data, je.data, je.len);

    if (rec == expect) {
        assert_int_equal(j2.len, j1.len);
        assert_memory_equal(j2.data, j1.data, j1.len);
    }

    rf_buf_free(&j1);
    rf_buf_free(&j2);
    rf_buf_free(&je);
    rf_buf_free(&bin);
}


static void
test_http_round_trip(void **state)
{
    int             v;
    size_t          n, m;
    rf_buf_t        j;
    unsigned char   rec[4096], utf8[4096];

    (void) state;

    rf_buf_init(&j);

    for (v = 0; v < 3; v++) {
        n = build_http(rec, sizeof(rec), v);
        assert_true(n > 0);
        n = stamp(rec, n, 1000 + v, "web-1");
        round_trip(rec, n, rec, n);
    }

    /* the views really used the paths under test */
    to_json(rec, n, &j);
    assert_non_null(memmem(j.data, j.len, L("a\\u0000b\\u0001\\u001f\\t")));
    assert_non_null(memmem(j.data, j.len, L("\"duration_ms\":3000000.000")));

    n = build_http(rec, sizeof(rec), 1);
    n = stamp(rec, n, 18446744073709551615ULL, "spool:eu:1");
    to_json(rec, n, &j);
    assert_non_null(memmem(j.data, j.len, L("\"id\":\"spool:eu:1:"
                                            "18446744073709551615\"")));
    assert_non_null(memmem(j.data, j.len, L("\"body_b64\":")));
    assert_non_null(memmem(j.data, j.len, L("\"body_truncated\":true")));
    round_trip(rec, n, rec, n);

    /* an empty source, as an unconfigured spool would stamp */
    n = build_http(rec, sizeof(rec), 0);
    n = stamp(rec, n, 0, "");
    round_trip(rec, n, rec, n);

    /* the one lossy spot: a Latin-1 byte comes back as its UTF-8 */
    n = build_http(rec, sizeof(rec), 3);
    n = stamp(rec, n, 5, "web-1");
    m = build_http(utf8, sizeof(utf8), 4);
    m = stamp(utf8, m, 5, "web-1");
    to_json(rec, n, &j);
    assert_non_null(memmem(j.data, j.len, L("caf\\u00e9 \\u00ff")));
    round_trip(rec, n, utf8, m);
    round_trip(utf8, m, utf8, m);

    rf_buf_free(&j);
}


static void
test_kinds_round_trip(void **state)
{
    size_t            n;
    rf_rec_builder_t  b;
    unsigned char     rec[4096];

    static const unsigned char  bin[] = { 0, 1, 2, 0xff, 'x', 0, 0x80 };

    (void) state;

    /* tcp: binary data (twice: ids may repeat), offsets */
    rf_rec_begin(&b, rec, sizeof(rec), RF_KIND_TCP, TEST_TIME_NS + 1000);
    add_str(&b, RF_F_BUCKET, "db");
    add_str(&b, RF_F_SESSION, "s-17");
    add_str(&b, RF_F_CLIENT, "10.0.0.1:40000");
    add_str(&b, RF_F_SERVER, "10.0.0.2:5432");
    add_str(&b, RF_F_DIR, "in");
    add_str(&b, RF_F_EVENT, "data");
    rf_rec_add(&b, RF_F_DATA, bin, sizeof(bin));
    rf_rec_add_u64(&b, RF_F_OFFSET_NS, 123456789012ULL);
    add_str(&b, RF_F_DIR, "out");
    rf_rec_add(&b, RF_F_DATA, "pong\0", 5);
    rf_rec_add_u64(&b, RF_F_OFFSET_NS, UINT64_MAX);
    n = rf_rec_finish(&b);
    assert_true(n > 0);
    n = stamp(rec, n, 77, "tap-1");
    round_trip(rec, n, rec, n);

    /* line */
    rf_rec_begin(&b, rec, sizeof(rec), RF_KIND_LINE, 0);
    add_str(&b, RF_F_BUCKET, "logs");
    add_str(&b, RF_F_PATH, "/var/log/app.log");
    add_str(&b, RF_F_LINE, "GET / \"quoted\"\t\xe2\x82\xac \\ end");
    n = rf_rec_finish(&b);
    n = stamp(rec, n, 1, "host-a");
    round_trip(rec, n, rec, n);

    /* exec */
    rf_rec_begin(&b, rec, sizeof(rec), RF_KIND_EXEC, 86399999999000ULL);
    add_str(&b, RF_F_BUCKET, "cron");
    add_str(&b, RF_F_COMMAND, "/bin/sh -c 'echo hi'");
    add_str(&b, RF_F_OUTPUT, "hi\nthere\n");
    rf_rec_add_u64(&b, RF_F_EXIT, 137);
    rf_rec_add(&b, RF_F_DATA, "", 0);
    n = rf_rec_finish(&b);
    n = stamp(rec, n, 2, "host-b");
    round_trip(rec, n, rec, n);

    /* pg */
    rf_rec_begin(&b, rec, sizeof(rec), RF_KIND_PG, 4102444800000000000ULL);
    add_str(&b, RF_F_BUCKET, "pg");
    add_str(&b, RF_F_SESSION, "pid 4242");
    add_str(&b, RF_F_QUERY, "SELECT 1 WHERE a = 'x'");
    add_str(&b, RF_F_ROWS, "1");
    rf_rec_add(&b, RF_F_DATA, bin, 3);
    n = rf_rec_finish(&b);
    n = stamp(rec, n, 3, "pg-1");
    round_trip(rec, n, rec, n);
}


static void
from_json_error(const char *text, const char *err)
{
    char            msg[128];
    rf_buf_t        out;
    rf_json_doc_t  *doc;

    doc = parse(text, strlen(text), msg);
    if (doc == NULL) {
        fail_msg("%s: %s", text, msg);
    }

    rf_buf_init(&out);
    assert_int_equal(rf_buf_add(&out, "#", 1), 0);

    msg[0] = '\0';

    if (rf_rec_from_json(rf_json_root(doc), &out, msg, sizeof(msg)) != -1) {
        fail_msg("accepted: %s", text);
    }

    if (strcmp(msg, err) != 0) {
        fail_msg("%s: \"%s\", expected \"%s\"", text, msg, err);
    }

    assert_int_equal(out.len, 1);

    rf_buf_free(&out);
    rf_json_free(doc);
}


static void
test_from_json_errors(void **state)
{
    size_t  i;
    char    text[512];

#define H     "\"kind\":\"http\",\"ts\":\"2026-11-23T10:00:00Z\""
#define TS    "\"ts\" must be a UTC time like \"2026-01-02T03:04:05.123456Z\""
#define ID    "\"id\" must be \"source:sseq\""
#define STR(m)  "\"" m "\" must be a string"
#define U64(m)  "\"" m "\" must be a non-negative integer"
#define HDRS  "\"headers\" must be an array of [name, value] string pairs"
#define B64(m)  "\"" m "\" must be a base64 string"

    static const struct {
        const char  *text;
        const char  *err;
    } bad[] = {
        { "[]", "a record must be a JSON object" },
        { "{\"ts\":\"2026-11-23T10:00:00Z\"}", "\"kind\" is missing" },
        { "{\"kind\":\"ftp\",\"ts\":\"2026-11-23T10:00:00Z\"}",
          "\"kind\" must be a known record kind" },
        { "{\"kind\":\"unknown\",\"ts\":\"2026-11-23T10:00:00Z\"}",
          "\"kind\" must be a known record kind" },
        { "{\"kind\":1,\"ts\":\"2026-11-23T10:00:00Z\"}",
          "\"kind\" must be a known record kind" },
        { "{\"kind\":\"http\\u0000\",\"ts\":\"2026-11-23T10:00:00Z\"}",
          "\"kind\" must be a known record kind" },
        { "{\"kind\":\"http\"}", "\"ts\" is missing" },
        { "{\"kind\":\"tcp\",\"ts\":\"2026-11-23T10:00:00Z\",\"data\":1}",
          STR("data") },
        { "{\"kind\":\"tcp\",\"ts\":\"2026-11-23T10:00:00Z\","
          "\"data_b64\":\"AAA\"}", B64("data_b64") },
        { "{\"kind\":\"tcp\",\"ts\":\"2026-11-23T10:00:00Z\","
          "\"data_b64\":\"AA=A\"}", B64("data_b64") },
        { "{\"kind\":\"tcp\",\"ts\":\"2026-11-23T10:00:00Z\","
          "\"offset_ns\":-5}", U64("offset_ns") },
        { "{\"kind\":\"exec\",\"ts\":\"2026-11-23T10:00:00Z\","
          "\"exit\":1.5}", U64("exit") },
        { "{\"kind\":\"line\",\"ts\":\"2026-11-23T10:00:00Z\","
          "\"path\":\"/a\",\"line\":false}", STR("line") },
        { "{\"kind\":\"pg\",\"ts\":\"2026-11-23T10:00:00Z\","
          "\"rows\":3}", STR("rows") },
    };

    /* one bad member before a valid http record's kind and ts */
    static const struct {
        const char  *member;
        const char  *err;
    } members[] = {
        { "\"ts\":1", TS },
        { "\"ts\":\"2026-11-23 10:00:00Z\"", TS },
        { "\"ts\":\"2026-11-23T10:00:00\"", TS },
        { "\"ts\":\"2026-11-23T10:00:00+01:00\"", TS },
        { "\"ts\":\"2026-11-23T10:00:00.Z\"", TS },
        { "\"ts\":\"2026-11-23T10:00:00.1234567890Z\"", TS },
        { "\"ts\":\"2026-11-23T10:00:00.12a4Z\"", TS },
        { "\"ts\":\"2026-13-23T10:00:00Z\"", TS },
        { "\"ts\":\"2026-00-23T10:00:00Z\"", TS },
        { "\"ts\":\"2026-11-00T10:00:00Z\"", TS },
        { "\"ts\":\"2026-02-29T10:00:00Z\"", TS },
        { "\"ts\":\"2100-02-29T10:00:00Z\"", TS },
        { "\"ts\":\"2026-04-31T10:00:00Z\"", TS },
        { "\"ts\":\"2026-11-23T24:00:00Z\"", TS },
        { "\"ts\":\"2026-11-23T10:60:00Z\"", TS },
        { "\"ts\":\"2026-11-23T10:00:60Z\"", TS },
        { "\"ts\":\"1969-12-31T23:59:59Z\"", TS },
        { "\"ts\":\"2554-07-21T23:34:33.709551616Z\"", TS },
        { "\"ts\":\"2026-1-23T10:00:00Z\"", TS },
        { "\"ts\":\"+026-11-23T10:00:00Z\"", TS },
        { "\"id\":\"web-1\"", ID },
        { "\"id\":\"web-1:\"", ID },
        { "\"id\":\"web-1:-1\"", ID },
        { "\"id\":\"web-1:1x\"", ID },
        { "\"id\":\"web-1:18446744073709551616\"", ID },
        { "\"id\":42", ID },
        { "\"source\":null", STR("source") },
        { "\"bucket\":[]", STR("bucket") },
        { "\"method\":1", STR("method") },
        { "\"uri\":null", STR("uri") },
        { "\"request_id\":{}", STR("request_id") },
        { "\"body\":1", STR("body") },
        { "\"status\":-1", U64("status") },
        { "\"status\":\"200\"", U64("status") },
        { "\"status\":200.0", U64("status") },
        { "\"status\":2e2", U64("status") },
        { "\"bytes_sent\":18446744073709551616", U64("bytes_sent") },
        { "\"body_size\":true", U64("body_size") },
        { "\"body_truncated\":1", "\"body_truncated\" must be true or false" },
        { "\"body_truncated\":\"true\"",
          "\"body_truncated\" must be true or false" },
        { "\"duration_ms\":-1", "\"duration_ms\" must be a non-negative "
                                "number" },
        { "\"duration_ms\":-0", "\"duration_ms\" must be a non-negative "
                                "number" },
        { "\"duration_ms\":\"1.5\"", "\"duration_ms\" must be a non-negative "
                                     "number" },
        { "\"duration_ms\":1e300", "\"duration_ms\" must be a non-negative "
                                   "number" },
        { "\"headers\":{}", HDRS },
        { "\"headers\":[\"a\",\"b\"]", HDRS },
        { "\"headers\":[[\"a\"]]", HDRS },
        { "\"headers\":[[\"a\",\"b\",\"c\"]]", HDRS },
        { "\"headers\":[[\"a\",1]]", HDRS },
        { "\"headers\":[[null,\"b\"]]", HDRS },
        { "\"body_b64\":\"Zg=\"", B64("body_b64") },
        { "\"body_b64\":\"Zh==\"", B64("body_b64") },
        { "\"body_b64\":\"Z!==\"", B64("body_b64") },
        { "\"body_b64\":7", B64("body_b64") },
        { "\"body\":\"\",\"body_b64\":\"\"",
          "\"body\" and \"body_b64\" exclude each other" },
    };

    (void) state;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        from_json_error(bad[i].text, bad[i].err);
    }

    for (i = 0; i < sizeof(members) / sizeof(members[0]); i++) {
        /* first: the first member of a name is the one read */
        snprintf(text, sizeof(text), "{%s," H "}", members[i].member);
        from_json_error(text, members[i].err);
    }

#undef H
#undef TS
#undef ID
#undef STR
#undef U64
#undef HDRS
#undef B64
}


static uint64_t
from_json_u64(const char *text, unsigned id)
{
    char            err[128];
    uint64_t        v;
    rf_buf_t        out;
    rf_rec_t        rec;
    const char     *perr;
    rf_json_doc_t  *doc;

    doc = parse(text, strlen(text), err);
    assert_non_null(doc);

    rf_buf_init(&out);

    if (rf_rec_from_json(rf_json_root(doc), &out, err, sizeof(err)) != 0) {
        fail_msg("%s: %s", text, err);
    }

    assert_int_equal(rf_rec_parse(&rec, out.data, out.len, &perr), 0);

    if (id == 0) {
        v = rec.time_ns;
    } else if (id == (unsigned) -1) {
        v = rec.sseq;
    } else {
        assert_int_equal(rf_rec_field_u64(&rec, id, &v), 0);
    }

    rf_buf_free(&out);
    rf_json_free(doc);

    return v;
}


/* What other producers may send: the accepted variations. */
static void
test_from_json_members(void **state)
{
    char            err[128];
    rf_buf_t        out;
    rf_rec_t        rec;
    rf_str_t        s;
    const char     *perr;
    rf_json_doc_t  *doc;

#define R(m)  "{\"kind\":\"http\",\"ts\":\"2026-11-23T10:00:00Z\"" m "}"
#define T(t)  "{\"kind\":\"line\",\"ts\":\"" t "\"}"

    (void) state;

    assert_true(from_json_u64(T("1970-01-01T00:00:00Z"), 0) == 0);
    assert_true(from_json_u64(T("2026-11-23T10:00:00Z"), 0)
                == 1795428000000000000ULL);
    assert_true(from_json_u64(T("2026-11-23T10:00:00.1Z"), 0)
                == 1795428000100000000ULL);
    assert_true(from_json_u64(T("2026-11-23T10:00:00.123456789Z"), 0)
                == 1795428000123456789ULL);
    assert_true(from_json_u64(T("2000-02-29T23:59:59.000001Z"), 0)
                == 951868799000001000ULL);
    assert_true(from_json_u64(T("2554-07-21T23:34:33.709551615Z"), 0)
                == UINT64_MAX);

    assert_true(from_json_u64(R(",\"duration_ms\":12.345"),
                              RF_F_DURATION_US) == 12345);
    assert_true(from_json_u64(R(",\"duration_ms\":12"),
                              RF_F_DURATION_US) == 12000);
    assert_true(from_json_u64(R(",\"duration_ms\":0.5"),
                              RF_F_DURATION_US) == 500);
    assert_true(from_json_u64(R(",\"duration_ms\":0.0004"),
                              RF_F_DURATION_US) == 0);
    assert_true(from_json_u64(R(",\"duration_ms\":1.2346"),
                              RF_F_DURATION_US) == 1235);
    assert_true(from_json_u64(R(",\"duration_ms\":1.5e3"),
                              RF_F_DURATION_US) == 1500000);

    assert_true(from_json_u64(R(",\"status\":404,\"seq\":\"x\""),
                              RF_F_STATUS) == 404);
    assert_true(from_json_u64(R(",\"id\":\"a:b:c:99\""), -1) == 99);
    assert_true(from_json_u64(R(""), -1) == 0);

    /* the source from the id when there is no "source"; extras ignored */
    doc = parse(L(R(",\"id\":\"a:b:12\",\"bucket\":\"q\",\"seq\":5,"
                    "\"future\":{\"x\":[1]},\"data\":1")), err);
    assert_non_null(doc);

    rf_buf_init(&out);
    assert_int_equal(rf_rec_from_json(rf_json_root(doc), &out, err,
                                      sizeof(err)), 0);
    assert_int_equal(rf_rec_parse(&rec, out.data, out.len, &perr), 0);
    assert_int_equal(rec.kind, RF_KIND_HTTP);
    assert_int_equal(rec.sseq, 12);
    assert_int_equal(rec.rseq, 0);
    assert_int_equal(rf_rec_field(&rec, RF_F_SOURCE, &s), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.data, "a:b", 3);
    assert_int_equal(rf_rec_field(&rec, RF_F_BUCKET, &s), 0);
    assert_memory_equal(s.data, "q", 1);
    assert_int_equal(rf_rec_field(&rec, RF_F_DATA, &s), -1);
    assert_int_equal(rec.len, RF_REC_HDR_SIZE + 2 * RF_REC_FIELD_HDR + 4);

    /* appended after what out held, untouched */
    assert_int_equal(rf_rec_from_json(rf_json_root(doc), &out, err,
                                      sizeof(err)), 0);
    assert_int_equal(out.len, 2 * rec.len);
    assert_memory_equal(out.data, out.data + rec.len, rec.len);

    rf_buf_free(&out);
    rf_json_free(doc);

    /* "source" wins over the id's part */
    doc = parse(L(R(",\"id\":\"a:3\",\"source\":\"b\"")), err);
    assert_non_null(doc);
    rf_buf_init(&out);
    assert_int_equal(rf_rec_from_json(rf_json_root(doc), &out, err,
                                      sizeof(err)), 0);
    assert_int_equal(rf_rec_parse(&rec, out.data, out.len, &perr), 0);
    assert_int_equal(rf_rec_field(&rec, RF_F_SOURCE, &s), 0);
    assert_int_equal(s.len, 1);
    assert_memory_equal(s.data, "b", 1);
    assert_int_equal(rec.sseq, 3);
    rf_buf_free(&out);
    rf_json_free(doc);

#undef R
#undef T
}


/*
 * Random edits of real views: flipped bits, structural bytes, bytes
 * removed and duplicated.  Nothing may crash or read out of bounds, and
 * whatever rf_rec_from_json accepts must be a valid record with a view.
 */
static void
mutate(unsigned char *p, size_t *len)
{
    size_t  i, k, edits;

    static const char  special[] = "\"\\{}[],:0-e.u\x80\xff\x01 ";

    edits = 1 + random() % 4;

    for (k = 0; k < edits && *len > 1; k++) {
        i = random() % *len;

        switch (random() % 5) {
        case 0:
            p[i] ^= (unsigned char) (1 << (random() % 8));
            break;
        case 1:
            p[i] = (unsigned char) special[random() % (sizeof(special) - 1)];
            break;
        case 2:
            memmove(p + i, p + i + 1, *len - i - 1);
            (*len)--;
            break;
        case 3:
            *len = i + 1;
            break;
        default:
            p[i] = (unsigned char) random();
        }
    }
}


static void
test_fuzz(void **state)
{
    int              round, parsed, built;
    size_t           i, k, n, len;
    char             err[128], *copy;
    rf_buf_t         views[5], out, j;
    rf_rec_t         rec;
    const char      *perr;
    rf_json_doc_t   *doc;
    rf_rec_builder_t b;
    unsigned char    buf[4096];

    (void) state;

    srandom(4242);

    for (k = 0; k < 4; k++) {
        rf_buf_init(&views[k]);
        n = build_http(buf, sizeof(buf), (int) k);
        n = stamp(buf, n, 10 + k, "web-1");
        to_json(buf, n, &views[k]);
    }

    rf_rec_begin(&b, buf, sizeof(buf), RF_KIND_TCP, TEST_TIME_NS);
    add_str(&b, RF_F_BUCKET, "db");
    add_str(&b, RF_F_SESSION, "s");
    rf_rec_add(&b, RF_F_DATA, "\xff\x00", 2);
    rf_rec_add_u64(&b, RF_F_OFFSET_NS, 5);
    n = rf_rec_finish(&b);
    n = stamp(buf, n, 1, "tap");
    rf_buf_init(&views[4]);
    to_json(buf, n, &views[4]);

    rf_buf_init(&out);
    rf_buf_init(&j);

    /* every cut before the closing brace is refused */
    for (k = 0; k < 5; k++) {
        for (i = 0; i < views[k].len - 2; i++) {
            doc = parse((const char *) views[k].data, i, err);
            if (doc != NULL) {
                fail_msg("view %zu cut at %zu accepted", k, i);
            }
        }
    }

    parsed = 0;
    built = 0;

    for (round = 0; round < 100000; round++) {
        k = random() % 5;
        len = views[k].len;
        copy = malloc(len);
        assert_non_null(copy);
        memcpy(copy, views[k].data, len);

        mutate((unsigned char *) copy, &len);

        doc = rf_json_parse(copy, len, err, sizeof(err));

        if (doc == NULL) {
            assert_non_null(strstr(err, " at byte "));
            free(copy);
            continue;
        }

        parsed++;
        rf_buf_reset(&out);

        if (rf_rec_from_json(rf_json_root(doc), &out, err, sizeof(err))
            == 0)
        {
            built++;
            assert_int_equal(rf_rec_parse(&rec, out.data, out.len, &perr),
                             0);
            rf_buf_reset(&j);
            assert_int_equal(rf_rec_to_json(&rec, &j), 0);

        } else {
            assert_int_equal(out.len, 0);
            assert_true(err[0] == '"' || err[0] == 'a');
        }

        rf_json_free(doc);
        free(copy);
    }

    print_message("# fuzz: %d of 100000 mutated views parsed, %d built\n",
                  parsed, built);
    assert_true(parsed > 100 && built > 100);

    for (k = 0; k < 5; k++) {
        rf_buf_free(&views[k]);
    }

    rf_buf_free(&out);
    rf_buf_free(&j);
}


/* Throughput on ~1 KB views, the relay's ingest case (reported only). */
static void
test_speed(void **state)
{
    int              i, rounds;
    char             err[128];
    size_t           n, bytes;
    double           secs;
    rf_buf_t         view, out;
    struct timespec  t0, t1;
    rf_json_doc_t   *doc;
    unsigned char    buf[4096];

    (void) state;

    n = build_http(buf, sizeof(buf), 0);
    n = stamp(buf, n, 1, "web-1");

    rf_buf_init(&view);
    rf_buf_init(&out);
    to_json(buf, n, &view);

    rounds = 100000;
    bytes = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);

    for (i = 0; i < rounds; i++) {
        doc = rf_json_parse((const char *) view.data, view.len, err,
                            sizeof(err));
        assert_non_null(doc);
        rf_buf_reset(&out);
        assert_int_equal(rf_rec_from_json(rf_json_root(doc), &out, err,
                                          sizeof(err)), 0);
        rf_json_free(doc);
        bytes += view.len;
    }

    clock_gettime(CLOCK_MONOTONIC, &t1);
    secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;

    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, buf, n);

    print_message("# %zu-byte views: parse + from_json %.0f MB/s, "
                  "%.0f records/s\n", view.len, bytes / secs / 1e6,
                  rounds / secs);

    rf_buf_free(&view);
    rf_buf_free(&out);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_invalid),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_large),
        cmocka_unit_test(test_getters),
        cmocka_unit_test(test_base64),
        cmocka_unit_test(test_http_round_trip),
        cmocka_unit_test(test_kinds_round_trip),
        cmocka_unit_test(test_from_json_errors),
        cmocka_unit_test(test_from_json_members),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_speed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
