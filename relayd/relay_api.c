/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-relayd's API handlers: a POSTed batch is decompressed within
 * max_batch, split and validated whole (binary records, or NDJSON lines
 * turned into binary records) before anything is stored; GET hands out
 * stored records as they are, or as their JSON view; ack commits a
 * consumer's cursor.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>
#include <zstd.h>

#include "rf_json.h"
#include "rf_log.h"
#include "rf_record.h"
#include "relay_api.h"


#define RELAY_WAIT_SLICE_MS     250


typedef struct {
    rf_buf_t                   *out;
    int                         ndjson;
    uint64_t                    last_seq;
} relay_read_ctx_t;


static int relay_api_decode(const rf_buf_t *in, const char *encoding,
    size_t max, rf_buf_t *out, relay_reply_t *r);
static int relay_api_zstd(const rf_buf_t *in, size_t max, rf_buf_t *out,
    relay_reply_t *r);
static int relay_api_gzip(const rf_buf_t *in, size_t max, rf_buf_t *out,
    relay_reply_t *r);
static int relay_api_ndjson(const rf_buf_t *in, rf_buf_t *out,
    relay_reply_t *r);
static int relay_api_split(rf_buf_t *batch, rf_rec_t **recs, size_t *n,
    relay_reply_t *r);
static int relay_api_read_one(uint64_t seq, const unsigned char *data,
    size_t len, void *arg);


int
relay_reply_error(relay_reply_t *r, unsigned status, const char *code,
    const char *fmt, ...)
{
    int      n;
    char     detail[1024];
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(detail, sizeof(detail), fmt, args);
    va_end(args);

    if (n < 0) {
        detail[0] = '\0';
        n = 0;
    }

    if ((size_t) n >= sizeof(detail)) {
        n = sizeof(detail) - 1;
    }

    r->status = status;
    r->type = "application/json";
    rf_buf_reset(&r->body);

    if (rf_buf_printf(&r->body, "{\"error\":\"%s\",\"detail\":", code) != 0
        || rf_json_str(&r->body, (const unsigned char *) detail, n) != 0
        || rf_buf_adds(&r->body, "}\n") != 0)
    {
        rf_buf_reset(&r->body);
    }

    return 0;
}


int
relay_api_post_records(relayd_t *rd, relay_bucket_t *b, rf_buf_t *body,
    const char *encoding, int ndjson, relay_reply_t *r)
{
    int             rc;
    size_t          n, max;
    uint64_t        wait;
    rf_buf_t        plain, recs_buf, *batch;
    rf_rec_t       *recs;
    relay_append_t  res;

    max = rd->conf.max_batch;
    recs = NULL;
    n = 0;

    rf_buf_init(&plain);
    rf_buf_init(&recs_buf);

    batch = body;

    if (encoding[0] != '\0') {
        if (relay_api_decode(body, encoding, max, &plain, r) != 0) {
            goto done;
        }

        batch = &plain;
    }

    if (ndjson) {
        if (relay_api_ndjson(batch, &recs_buf, r) != 0) {
            goto done;
        }

        batch = &recs_buf;
    }

    if (relay_api_split(batch, &recs, &n, r) != 0) {
        goto done;
    }

    wait = relayd_rate_take(rd, b, n);

    if (wait > 0) {
        relay_reply_error(r, 429, "too_many_requests", "bucket \"%s\" takes "
                          "at most %" PRId64 " records/s",
                          relay_bucket_conf(b)->name,
                          relay_bucket_conf(b)->rate);
        r->retry_after = wait;
        goto done;
    }

    if (n == 0) {
        r->status = 200;
        r->type = "application/json";
        (void) rf_buf_adds(&r->body, "{\"accepted\":0,\"duplicates\":0}\n");
        goto done;
    }

    rc = relay_bucket_append(b, recs, n, &res);

    if (rc != 0) {
        switch (errno) {

        case ENOSPC:
            relay_reply_error(r, 507, "insufficient_storage", "bucket \"%s\" "
                              "is full and its overflow policy is reject",
                              relay_bucket_conf(b)->name);
            break;

        case EFBIG:
            relay_reply_error(r, 413, "too_large", "the batch is larger "
                              "than bucket \"%s\" may ever hold",
                              relay_bucket_conf(b)->name);
            break;

        case ESHUTDOWN:
            relay_reply_error(r, 503, "unavailable", "shutting down");
            r->retry_after = 1;
            break;

        default:
            relay_reply_error(r, 500, "internal", "storing the batch failed: "
                              "%s", strerror(errno));
        }

        goto done;
    }

    r->status = 200;
    r->type = "application/json";

    (void) rf_buf_printf(&r->body, "{\"accepted\":%" PRIu64 ",\"duplicates\":"
                         "%" PRIu64 ",\"first_seq\":%" PRIu64 ",\"last_seq\":"
                         "%" PRIu64 "}\n", res.accepted, res.duplicates,
                         res.first_seq, res.last_seq);

done:

    free(recs);
    rf_buf_free(&plain);
    rf_buf_free(&recs_buf);

    return 0;
}


static int
relay_api_decode(const rf_buf_t *in, const char *encoding, size_t max,
    rf_buf_t *out, relay_reply_t *r)
{
    if (strcmp(encoding, "zstd") == 0) {
        return relay_api_zstd(in, max, out, r);
    }

    if (strcmp(encoding, "gzip") == 0 || strcmp(encoding, "x-gzip") == 0) {
        return relay_api_gzip(in, max, out, r);
    }

    if (strcmp(encoding, "identity") == 0) {
        return rf_buf_add(out, in->data, in->len);
    }

    relay_reply_error(r, 415, "unsupported_media_type", "unknown "
                      "Content-Encoding \"%s\": use zstd or gzip", encoding);
    return -1;
}


/* both decoders stop at max bytes of output: a small bomb gets a 413 */

static int
relay_api_zstd(const rf_buf_t *in, size_t max, rf_buf_t *out,
    relay_reply_t *r)
{
    int                 rc;
    size_t              ret, want;
    unsigned long long  size;
    ZSTD_DCtx          *dctx;
    ZSTD_inBuffer       ib;
    ZSTD_outBuffer      ob;

    dctx = ZSTD_createDCtx();
    if (dctx == NULL) {
        relay_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }

    rc = -1;

    /*
     * The usual case, one frame that states its size: one call
     * into a buffer of exactly that size.  Streaming in steps made zstd
     * allocate (and the kernel fault in) its window for every request,
     * and halved the ingest rate.
     */

    size = ZSTD_getFrameContentSize(in->data, in->len);

    if (size != ZSTD_CONTENTSIZE_UNKNOWN && size != ZSTD_CONTENTSIZE_ERROR
        && ZSTD_findFrameCompressedSize(in->data, in->len) == in->len)
    {
        if (size > max) {
            relay_reply_error(r, 413, "too_large", "the batch is larger "
                              "than max_batch (%zu bytes) once "
                              "decompressed", max);
            goto done;
        }

        if (rf_buf_reserve(out, size) != 0) {
            relay_reply_error(r, 500, "internal", "out of memory");
            goto done;
        }

        ret = ZSTD_decompressDCtx(dctx, out->data + out->len, size,
                                  in->data, in->len);
        if (ZSTD_isError(ret)) {
            relay_reply_error(r, 400, "bad_request", "zstd: %s",
                              ZSTD_getErrorName(ret));
            goto done;
        }

        out->len += ret;
        rc = 0;
        goto done;
    }

    ib.src = in->data;
    ib.size = in->len;
    ib.pos = 0;
    ret = 1;

    while (ib.pos < ib.size || ret != 0) {

        want = out->len + ZSTD_DStreamOutSize();
        if (want > max + 1) {
            want = max + 1;
        }

        if (out->len == want) {
            relay_reply_error(r, 413, "too_large", "the batch is larger "
                              "than max_batch (%zu bytes) once "
                              "decompressed", max);
            goto done;
        }

        if (rf_buf_reserve(out, want - out->len) != 0) {
            relay_reply_error(r, 500, "internal", "out of memory");
            goto done;
        }

        ob.dst = out->data + out->len;
        ob.size = want - out->len;
        ob.pos = 0;

        ret = ZSTD_decompressStream(dctx, &ob, &ib);
        if (ZSTD_isError(ret)) {
            relay_reply_error(r, 400, "bad_request", "zstd: %s",
                              ZSTD_getErrorName(ret));
            goto done;
        }

        out->len += ob.pos;

        if (ob.pos == 0 && ib.pos == ib.size && ret != 0) {
            relay_reply_error(r, 400, "bad_request", "zstd: the body ends "
                              "inside a frame");
            goto done;
        }
    }

    if (out->len > max) {
        relay_reply_error(r, 413, "too_large", "the batch is larger than "
                          "max_batch (%zu bytes) once decompressed", max);
        goto done;
    }

    rc = 0;

done:

    ZSTD_freeDCtx(dctx);

    return rc;
}


static int
relay_api_gzip(const rf_buf_t *in, size_t max, rf_buf_t *out,
    relay_reply_t *r)
{
    int       rc, zrc;
    size_t    want;
    z_stream  zs;

    memset(&zs, 0, sizeof(z_stream));

    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        relay_reply_error(r, 500, "internal", "out of memory");
        return -1;
    }

    zs.next_in = in->data;
    zs.avail_in = in->len;
    rc = -1;

    for ( ;; ) {
        want = out->len + 65536;
        if (want > max + 1) {
            want = max + 1;
        }

        if (out->len == want) {
            relay_reply_error(r, 413, "too_large", "the batch is larger "
                              "than max_batch (%zu bytes) once "
                              "decompressed", max);
            goto done;
        }

        if (rf_buf_reserve(out, want - out->len) != 0) {
            relay_reply_error(r, 500, "internal", "out of memory");
            goto done;
        }

        zs.next_out = out->data + out->len;
        zs.avail_out = want - out->len;

        zrc = inflate(&zs, Z_NO_FLUSH);
        out->len = want - zs.avail_out;

        if (zrc == Z_STREAM_END) {
            if (zs.avail_in == 0) {
                break;
            }

            /* concatenated members, as gzip(1) makes them */
            if (inflateReset(&zs) != Z_OK) {
                goto bad;
            }

            continue;
        }

        if (zrc == Z_BUF_ERROR && zs.avail_in == 0) {
            relay_reply_error(r, 400, "bad_request", "gzip: the body ends "
                              "inside the stream");
            goto done;
        }

        if (zrc != Z_OK && zrc != Z_BUF_ERROR) {
            goto bad;
        }
    }

    if (out->len > max) {
        relay_reply_error(r, 413, "too_large", "the batch is larger than "
                          "max_batch (%zu bytes) once decompressed", max);
        goto done;
    }

    rc = 0;
    goto done;

bad:

    relay_reply_error(r, 400, "bad_request", "gzip: %s",
                      zs.msg ? zs.msg : "invalid data");

done:

    inflateEnd(&zs);

    return rc;
}


/* every line a JSON view object, each made into a binary record */

static int
relay_api_ndjson(const rf_buf_t *in, rf_buf_t *out, relay_reply_t *r)
{
    char                err[512];
    size_t              line, len;
    const char         *p, *end, *eol;
    rf_json_doc_t      *doc;
    const rf_json_t    *root;

    p = (const char *) in->data;
    end = p + in->len;
    line = 0;

    while (p < end) {
        line++;

        eol = memchr(p, '\n', end - p);
        if (eol == NULL) {
            eol = end;
        }

        len = eol - p;
        if (len > 0 && p[len - 1] == '\r') {
            len--;
        }

        if (len == 0) {
            p = eol + 1;
            continue;
        }

        doc = rf_json_parse(p, len, err, sizeof(err));
        if (doc == NULL) {
            relay_reply_error(r, 400, "bad_request", "line %zu: %s", line,
                              err);
            return -1;
        }

        root = rf_json_root(doc);

        if (root->type != RF_JSON_OBJECT) {
            rf_json_free(doc);
            relay_reply_error(r, 400, "bad_request", "line %zu: not a JSON "
                              "object", line);
            return -1;
        }

        if (rf_rec_from_json(root, out, err, sizeof(err)) != 0) {
            rf_json_free(doc);
            relay_reply_error(r, 400, "bad_request", "line %zu: %s", line,
                              err);
            return -1;
        }

        rf_json_free(doc);

        p = eol + 1;
    }

    return 0;
}


/* the batch as records, each checked whole (length, checksum, fields) */

static int
relay_api_split(rf_buf_t *batch, rf_rec_t **recs, size_t *n,
    relay_reply_t *r)
{
    size_t          off, cap, i, len;
    uint32_t        rlen;
    rf_rec_t       *a, *na;
    const char     *err;
    unsigned char  *p;

    p = batch->data;
    len = batch->len;
    off = 0;
    i = 0;
    cap = 0;
    a = NULL;

    while (off < len) {

        rlen = rf_rec_peek_len(p + off, len - off);

        if (rlen == 0 || rlen > len - off) {
            relay_reply_error(r, 400, "bad_request", "record %zu at byte %zu: "
                              "truncated (the batch ends inside it)", i, off);
            goto failed;
        }

        if (i == cap) {
            cap = cap ? cap * 2 : 256;
            na = realloc(a, cap * sizeof(rf_rec_t));
            if (na == NULL) {
                relay_reply_error(r, 500, "internal", "out of memory");
                goto failed;
            }

            a = na;
        }

        if (rf_rec_parse(&a[i], p + off, rlen, &err) != 0) {
            relay_reply_error(r, 400, "bad_request", "record %zu at byte %zu: "
                              "%s", i, off, err);
            goto failed;
        }

        off += rlen;
        i++;
    }

    *recs = a;
    *n = i;

    return 0;

failed:

    free(a);

    return -1;
}


int
relay_api_get_records(relayd_t *rd, relay_bucket_t *b, const relay_get_t *q,
    relay_reply_t *r)
{
    int64_t           got;
    uint64_t          after, left, slice;
    relay_read_ctx_t  ctx;

    if (q->has_after) {
        after = q->after;

    } else if (q->consumer != NULL) {
        if (relay_bucket_cursor(b, q->consumer, &after) != 0) {
            return relay_reply_error(r, 500, "internal", "reading the cursor "
                                     "of \"%s\" failed: %s", q->consumer,
                                     strerror(errno));
        }

    } else {
        after = 0;
    }

    ctx.out = &r->body;
    ctx.ndjson = q->ndjson;
    ctx.last_seq = 0;

    /* the wait is sliced so that a stopping relay is never held up */

    left = q->wait_ms;

    for ( ;; ) {
        slice = left < RELAY_WAIT_SLICE_MS ? left : RELAY_WAIT_SLICE_MS;

        got = relay_bucket_read(b, after, q->max, RELAY_READ_BYTES, slice,
                                relay_api_read_one, &ctx);
        if (got < 0) {
            if (errno == ESHUTDOWN) {
                r->retry_after = 1;
                return relay_reply_error(r, 503, "unavailable",
                                         "shutting down");
            }

            return relay_reply_error(r, 500, "internal", "reading failed: %s",
                                     strerror(errno));
        }

        if (got > 0 || left <= slice || rd->quit) {
            break;
        }

        left -= slice;
    }

    if (got == 0) {
        r->status = 204;
        return 0;
    }

    r->status = 200;
    r->type = q->ndjson ? "application/x-ndjson"
                        : "application/x-replayforge";
    r->last_seq = ctx.last_seq;

    return 0;
}


static int
relay_api_read_one(uint64_t seq, const unsigned char *data, size_t len,
    void *arg)
{
    rf_rec_t           rec;
    const char        *err;
    relay_read_ctx_t  *ctx;

    ctx = arg;
    ctx->last_seq = seq;

    if (!ctx->ndjson) {
        return rf_buf_add(ctx->out, data, len);
    }

    if (rf_rec_parse(&rec, data, len, &err) != 0) {
        /* stored records were checked on the way in: the file is damaged */
        log_warnx("record %" PRIu64 " is unreadable (%s); skipped", seq, err);
        return 0;
    }

    return rf_rec_to_json(&rec, ctx->out);
}


int
relay_api_ack(relay_bucket_t *b, const rf_buf_t *body, relay_reply_t *r)
{
    char                 err[256], name[RELAY_NAME_MAX + 1];
    uint64_t             upto, cursor;
    rf_str_t             consumer;
    rf_json_doc_t       *doc;
    const rf_json_t     *root;

    doc = rf_json_parse((const char *) body->data, body->len, err,
                        sizeof(err));
    if (doc == NULL) {
        return relay_reply_error(r, 400, "bad_request", "%s", err);
    }

    root = rf_json_root(doc);

    if (root->type != RF_JSON_OBJECT
        || rf_json_get_str(root, "consumer", &consumer) != 0
        || rf_json_get_u64(root, "upto", &upto) != 0)
    {
        rf_json_free(doc);
        return relay_reply_error(r, 400, "bad_request", "expected "
                                 "{\"consumer\":NAME,\"upto\":SEQ}");
    }

    if (!rf_valid_name((const char *) consumer.data, consumer.len)) {
        rf_json_free(doc);
        return relay_reply_error(r, 400, "bad_request", "invalid consumer "
                                 "name");
    }

    memcpy(name, consumer.data, consumer.len);
    name[consumer.len] = '\0';
    rf_json_free(doc);

    if (relay_bucket_ack(b, name, upto, &cursor) != 0) {
        if (errno == EINVAL) {
            return relay_reply_error(r, 400, "bad_request", "upto %" PRIu64
                                     " is beyond the last seq", upto);
        }

        return relay_reply_error(r, 500, "internal", "committing the cursor "
                                 "failed: %s", strerror(errno));
    }

    r->status = 200;
    r->type = "application/json";

    (void) rf_buf_adds(&r->body, "{\"consumer\":");
    (void) rf_json_str(&r->body, (const unsigned char *) name, strlen(name));
    (void) rf_buf_printf(&r->body, ",\"cursor\":%" PRIu64 "}\n", cursor);

    return 0;
}
