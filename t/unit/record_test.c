/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests of the record codec: encoding, zero-copy decoding, the JSON
 * view's exact shape, stamping, and hostile input (every single-byte
 * corruption, truncation, random records with valid checksums).
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_crc32c.h"
#include "rf_record.h"


#define S(x)  { sizeof(x) - 1, (const unsigned char *) x }


static const rf_header_t  test_headers[] = {
    { S("Content-Type"), S("application/json") },
    { S("X-A"), S("1") },
    { S("X-A"), S("2") },
};


static void
fill_http(rf_http_t *h)
{
    memset(h, 0, sizeof(rf_http_t));

    h->time_ns = 1795428000123456789ULL;       /* 2026-11-23T10:00:00 */
    h->bucket = (rf_str_t) S("prod");
    h->method = (rf_str_t) S("POST");
    h->uri = (rf_str_t) S("/api/x?y=1");
    h->version = (rf_str_t) S("HTTP/1.1");
    h->scheme = (rf_str_t) S("http");
    h->host = (rf_str_t) S("example.com");
    h->client = (rf_str_t) S("10.0.0.1:51000");
    h->server = (rf_str_t) S("10.0.0.2:80");
    h->headers = test_headers;
    h->nheaders = 3;
    h->body = (rf_str_t) S("{\"k\":1}");
    h->body_size = 7;
    h->status = 200;
    h->bytes_sent = 120;
    h->duration_us = 1250;
    h->upstream = (rf_str_t) S("127.0.0.1:9000");
}


static size_t
encode(const rf_http_t *h, unsigned char *buf, size_t cap)
{
    size_t  n;

    n = rf_http_encode(h, buf, cap);
    assert_int_equal(n, rf_http_size(h));

    return n;
}


static void
test_http_json(void **state)
{
    size_t          n, m;
    rf_buf_t        b;
    rf_rec_t        rec, st;
    rf_http_t       h;
    const char     *err;
    unsigned char   buf[4096], out[4096];
    rf_str_t        src = S("web-1");

    (void) state;

    fill_http(&h);
    n = encode(&h, buf, sizeof(buf));

    assert_int_equal(rf_rec_parse(&rec, buf, n, &err), 0);
    assert_int_equal(rec.kind, RF_KIND_HTTP);
    assert_int_equal(rec.sseq, 0);

    m = rf_rec_stamp(&rec, 42, &src, out, sizeof(out));
    assert_int_equal(m, n + RF_REC_FIELD_SIZE(5));
    assert_int_equal(rf_rec_parse(&st, out, m, &err), 0);
    assert_int_equal(st.sseq, 42);

    rf_rec_set_rseq(out, 1042);        /* outside the checksum */
    assert_int_equal(rf_rec_parse(&st, out, m, &err), 0);

    rf_buf_init(&b);
    assert_int_equal(rf_rec_to_json(&st, &b), 0);
    assert_int_equal(rf_buf_addc(&b, '\0'), 0);

    assert_string_equal((char *) b.data,
        "{\"id\":\"web-1:42\",\"seq\":1042,\"kind\":\"http\","
        "\"source\":\"web-1\",\"bucket\":\"prod\","
        "\"ts\":\"2026-11-23T10:00:00.123456Z\","
        "\"method\":\"POST\",\"uri\":\"/api/x?y=1\",\"version\":\"HTTP/1.1\","
        "\"scheme\":\"http\",\"host\":\"example.com\","
        "\"client\":\"10.0.0.1:51000\",\"server\":\"10.0.0.2:80\","
        "\"headers\":[[\"Content-Type\",\"application/json\"],"
        "[\"X-A\",\"1\"],[\"X-A\",\"2\"]],"
        "\"body\":\"{\\\"k\\\":1}\",\"body_size\":7,"
        "\"body_truncated\":false,"
        "\"status\":200,\"bytes_sent\":120,\"duration_ms\":1.250,"
        "\"upstream\":\"127.0.0.1:9000\"}\n");

    rf_buf_free(&b);
}


static void
test_binary_body(void **state)
{
    size_t          n;
    rf_buf_t        b;
    rf_rec_t        rec;
    rf_str_t        body;
    rf_http_t       h;
    const char     *err;
    unsigned char   buf[4096];
    unsigned char   bin[] = { 'a', 0, 0xff, 'b', 0x80, '\n' };

    (void) state;

    fill_http(&h);
    h.body.data = bin;
    h.body.len = sizeof(bin);
    h.body_size = 100000;
    h.body_truncated = 1;
    h.nheaders = 0;

    n = encode(&h, buf, sizeof(buf));
    assert_int_equal(rf_rec_parse(&rec, buf, n, &err), 0);

    /* zero copy: the view points into the buffer */
    assert_int_equal(rf_rec_field(&rec, RF_F_BODY, &body), 0);
    assert_true(body.data > buf && body.data < buf + n);
    assert_memory_equal(body.data, bin, sizeof(bin));

    rf_buf_init(&b);
    assert_int_equal(rf_rec_to_json(&rec, &b), 0);
    assert_int_equal(rf_buf_addc(&b, '\0'), 0);

    assert_non_null(strstr((char *) b.data,
                           "\"headers\":[],\"body_b64\":\"YQD/YoAK\","
                           "\"body_size\":100000,\"body_truncated\":true"));
    assert_null(strstr((char *) b.data, "\"body\":"));

    rf_buf_free(&b);
}


static void
test_json_strings(void **state)
{
    rf_buf_t  b;

    (void) state;

    rf_buf_init(&b);

    assert_int_equal(rf_json_str(&b, (const unsigned char *)
                                 "a\"b\\c\n\t\x01\xc3\xa9\xff", 11), 0);
    assert_int_equal(rf_buf_addc(&b, '\0'), 0);
    assert_string_equal((char *) b.data,
                        "\"a\\\"b\\\\c\\n\\t\\u0001\xc3\xa9\\u00ff\"");

    assert_true(rf_utf8_valid((const unsigned char *) "\xe2\x82\xac", 3));
    assert_false(rf_utf8_valid((const unsigned char *) "\xc0\xaf", 2));
    assert_false(rf_utf8_valid((const unsigned char *) "\xed\xa0\x80", 3));
    assert_false(rf_utf8_valid((const unsigned char *) "\xe2\x82", 2));
    assert_false(rf_utf8_valid((const unsigned char *) "\xf4\x90\x80\x80",
                               4));

    rf_buf_reset(&b);
    assert_int_equal(rf_json_base64(&b, (const unsigned char *) "ab", 2), 0);
    assert_int_equal(rf_buf_addc(&b, '\0'), 0);
    assert_string_equal((char *) b.data, "\"YWI=\"");

    rf_buf_free(&b);
}


/* Every byte flipped: the record is refused, except in rseq. */
static void
test_corruption(void **state)
{
    size_t          n, i;
    rf_rec_t        rec;
    rf_http_t       h;
    const char     *err;
    unsigned char   buf[4096];

    (void) state;

    fill_http(&h);
    n = encode(&h, buf, sizeof(buf));

    for (i = 0; i < n; i++) {
        buf[i] ^= 0x5a;

        if (i >= 8 && i < 16) {
            assert_int_equal(rf_rec_parse(&rec, buf, n, &err), 0);
        } else {
            assert_int_equal(rf_rec_parse(&rec, buf, n, &err), -1);
        }

        buf[i] ^= 0x5a;
    }

    for (i = 0; i < n; i++) {
        assert_int_equal(rf_rec_parse_sealed(&rec, buf, i, &err), -1);
    }

    /* the sealed variant skips the checksum, nothing else */
    buf[n - 1] ^= 0x5a;
    assert_int_equal(rf_rec_parse(&rec, buf, n, &err), -1);
    assert_int_equal(rf_rec_parse_sealed(&rec, buf, n, &err), 0);
    assert_int_equal(rec.len, n);
    buf[n - 1] ^= 0x5a;
    buf[17] = RF_KIND_MAX;
    assert_int_equal(rf_rec_parse_sealed(&rec, buf, n, &err), -1);
    buf[17] = RF_KIND_HTTP;

    for (i = 0; i < n; i++) {
        assert_int_equal(rf_rec_parse(&rec, buf, i, &err), -1);
    }

    assert_int_equal(rf_rec_parse(&rec, buf, n, &err), 0);
}


/* bit by bit, as the polynomial defines it: the reference */
static uint32_t
crc32c_ref(const unsigned char *p, size_t n)
{
    int       k;
    uint32_t  c;

    c = 0xffffffff;

    while (n--) {
        c ^= *p++;

        for (k = 0; k < 8; k++) {
            c = (c & 1) ? (c >> 1) ^ 0x82f63b78 : c >> 1;
        }
    }

    return ~c;
}


/* every length around the three-block stride, and split computations */
static void
test_crc32c(void **state)
{
    size_t          n, k;
    unsigned char  *buf;

    (void) state;

    assert_int_equal(rf_crc32c(0, "123456789", 9), 0xe3069283);

    buf = malloc(4096);
    assert_non_null(buf);

    srandom(7);

    for (n = 0; n < 4096; n++) {
        buf[n] = (unsigned char) random();
    }

    for (n = 0; n <= 4096; n += (n < 1200 ? 1 : 61)) {
        assert_int_equal(rf_crc32c(0, buf, n), crc32c_ref(buf, n));
    }

    for (k = 0; k <= 1000; k += 37) {
        assert_int_equal(rf_crc32c(rf_crc32c(0, buf, k), buf + k, 3000 - k),
                         crc32c_ref(buf, 3000));
    }

    free(buf);
}


/*
 * Random field areas behind a valid header and checksum, so parsing gets
 * past the CRC: it must refuse or accept without reading out of bounds
 * (the sanitizer build checks that), and an accepted record must render.
 */
static void
test_fuzz(void **state)
{
    int             round, accepted;
    size_t          n, i;
    uint32_t        crc;
    rf_buf_t        b;
    rf_rec_t        rec;
    const char     *err;
    unsigned char  *buf;

    (void) state;

    srandom(12345);
    rf_buf_init(&b);
    accepted = 0;

    for (round = 0; round < 20000; round++) {
        n = RF_REC_HDR_SIZE + (size_t) (random() % 200);
        buf = malloc(n);        /* exact size: overreads are caught */
        assert_non_null(buf);

        for (i = 0; i < n; i++) {
            buf[i] = (unsigned char) random();
        }

        /* plausible field headers now and then */
        for (i = RF_REC_HDR_SIZE; i + 6 <= n; i += 6 + (random() % 9)) {
            if (random() % 2) {
                buf[i] = (unsigned char) (1 + random() % RF_F_MAX);
                buf[i + 1] = 0;
                buf[i + 2] = (unsigned char) (random() % 12);
                buf[i + 3] = buf[i + 4] = buf[i + 5] = 0;
            }
        }

        buf[0] = (unsigned char) n;
        buf[1] = (unsigned char) (n >> 8);
        buf[2] = buf[3] = 0;
        buf[16] = RF_REC_VERSION;
        buf[17] = (unsigned char) (1 + random() % (RF_KIND_MAX - 1));
        crc = rf_crc32c(0, buf + 16, n - 16);
        memcpy(buf + 4, &crc, 4);

        if (rf_rec_parse(&rec, buf, n, &err) == 0) {
            accepted++;
            rf_buf_reset(&b);
            assert_int_equal(rf_rec_to_json(&rec, &b), 0);
            assert_true(b.len > 0 && b.data[b.len - 1] == '\n');
        }

        free(buf);
    }

    print_message("# fuzz: %d of 20000 random records accepted\n", accepted);
    assert_true(accepted > 0);

    rf_buf_free(&b);
}


static void
test_builder_overflow(void **state)
{
    rf_http_t       h;
    unsigned char   buf[4096];

    (void) state;

    fill_http(&h);

    assert_int_equal(rf_http_encode(&h, buf, rf_http_size(&h) - 1), 0);
    assert_int_equal(rf_http_encode(&h, buf, 10), 0);
    assert_int_equal(rf_rec_peek_len(buf, 3), 0);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_http_json),
        cmocka_unit_test(test_binary_body),
        cmocka_unit_test(test_json_strings),
        cmocka_unit_test(test_corruption),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_fuzz),
        cmocka_unit_test(test_builder_overflow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
