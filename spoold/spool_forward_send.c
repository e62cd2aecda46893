/*
 * Copyright (C) ReplayForge contributors
 *
 * The forwarder's requests to the relay: a batch POSTed as stored,
 * zstd-compressed, with its bucket's token, and what the answer decides
 * (200 acknowledges, 400 rejects for good, 413 halves, anything else is
 * retried with backoff, the batch read again from the buffer); and the
 * heartbeat with the spool's stats.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "rf_log.h"
#include "spool_forward_int.h"


#define SPOOL_FWD_BACKOFF_MIN   (100 * 1000000ULL)      /* ns */
#define SPOOL_FWD_CONNECT_MS    5000
#define SPOOL_FWD_TIMEOUT_MS    60000
#define SPOOL_FWD_HB_CONNECT_MS 1000
#define SPOOL_FWD_HB_TIMEOUT_MS 2000
#define SPOOL_FWD_ZSTD_LEVEL    1
#define SPOOL_FWD_RETRY_AFTER_MAX  3600     /* s, before retry_max applies */


static void spool_fwd_failed(spool_fwd_t *f, uint64_t wait,
    const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void spool_fwd_error(spool_fwd_t *f, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int spool_fwd_heartbeat_json(spool_fwd_t *f, rf_buf_t *b,
    uint64_t now);
static int spool_fwd_url(spool_fwd_t *f, const char *path,
    const rf_str_t *bucket);
static struct curl_slist *spool_fwd_headers(spool_fwd_t *f,
    const char *type, const char *token, int zstd);
static int spool_fwd_post(spool_fwd_t *f, struct curl_slist *headers,
    uint64_t connect_ms, uint64_t timeout_ms, rf_http_res_t *res);
static const char *spool_fwd_token_for(spool_fwd_t *f,
    const rf_str_t *bucket);
static uint64_t spool_fwd_jitter(spool_fwd_t *f, uint64_t base);


void
spool_fwd_send(spool_fwd_t *f)
{
    int                  rc;
    char                 text[512];
    size_t               bound, n;
    const char          *token;
    rf_http_res_t        res;
    spool_fwd_batch_t   *bt;
    struct curl_slist   *headers;
    rf_str_t             bucket;

    bt = &f->batch;

    bucket.data = bt->bucket.data;
    bucket.len = bt->bucket.len;

    bound = ZSTD_compressBound(bt->data.len);

    if (rf_buf_reserve(&f->zbuf, bound) != 0) {
        spool_fwd_failed(f, 0, "no memory to compress a batch of %zu bytes",
                         bt->data.len);
        return;
    }

    n = ZSTD_compressCCtx(f->zctx, f->zbuf.data, bound, bt->data.data,
                          bt->data.len, SPOOL_FWD_ZSTD_LEVEL);
    if (ZSTD_isError(n)) {
        spool_fwd_failed(f, 0, "zstd: %s", ZSTD_getErrorName(n));
        return;
    }

    f->zbuf.len = n;

    token = spool_fwd_token_for(f, &bucket);

    if (token == NULL) {
        spool_fwd_failed(f, 0, "bucket \"%.*s\": no token for it: set "
                         "\"token\", or a token in a bucket block",
                         (int) bucket.len, bucket.data);
        return;
    }

    headers = spool_fwd_headers(f, "application/x-replayforge", token, 1);

    if (headers == NULL
        || spool_fwd_url(f, "/v1/buckets/", &bucket) != 0)
    {
        curl_slist_free_all(headers);
        spool_fwd_failed(f, 0, "no memory for a request");
        return;
    }

    rc = spool_fwd_post(f, headers, SPOOL_FWD_CONNECT_MS,
                        SPOOL_FWD_TIMEOUT_MS, &res);

    curl_slist_free_all(headers);

    if (rc != 0) {
        if (errno == ECANCELED) {
            return;             /* stopping: the batch stays buffered */
        }

        spool_fwd_failed(f, 0, "bucket \"%.*s\": %s", (int) bucket.len,
                         bucket.data, res.error);
        return;
    }

    rf_http_body_text(res.body, text, sizeof(text));

    switch (res.status) {

    case 200:
        spool_fwd_done(f, 0);
        return;

    case 400:

        /* the relay can parse nothing of it: retrying cannot help */

        spool_fwd_error(f, "bucket \"%.*s\": 400 %s", (int) bucket.len,
                        bucket.data, text);

        log_warnx("relay %s REJECTED a batch of %" PRIu64 " records (%zu "
                  "bytes, sequences %" PRIu64 " to %" PRIu64 ") of bucket "
                  "\"%.*s\" as malformed, the records are dropped: 400 %s",
                  f->conf.relay, bt->n, bt->data.len, bt->first, bt->last,
                  (int) bucket.len, bucket.data, text);

        spool_fwd_done(f, 1);
        return;

    case 413:

        /*
         * the relay's max_batch is smaller: halve, down to one record, and
         * keep the smaller size for the batches after it
         */

        if (bt->n > 1) {
            f->relay_max = bt->data.len / 2;

            log_warnx("relay %s: a batch of %" PRIu64 " records (%zu bytes) "
                      "is too large for it (413), batches are now at most %"
                      PRIu64 " bytes", f->conf.relay, bt->n, bt->data.len,
                      f->relay_max);

            bt->max_n = bt->n / 2;
            bt->max_bytes = f->relay_max;
            bt->reread = 1;
            return;
        }

        spool_fwd_error(f, "bucket \"%.*s\": 413 %s", (int) bucket.len,
                        bucket.data, text);

        log_warnx("relay %s REJECTED a record of %zu bytes (sequence %"
                  PRIu64 ") of bucket \"%.*s\" as too large, it is dropped: "
                  "413 %s", f->conf.relay, bt->data.len, bt->first,
                  (int) bucket.len, bucket.data, text);

        spool_fwd_done(f, 1);
        return;

    case 401:
    case 403:
        spool_fwd_failed(f, 0, "bucket \"%.*s\": %ld, the relay refuses the "
                         "token: check \"token\" for this bucket: %s",
                         (int) bucket.len, bucket.data, res.status, text);
        return;

    case 404:
        spool_fwd_failed(f, 0, "bucket \"%.*s\": 404, the relay has no such "
                         "bucket (or %s is not a relay): %s",
                         (int) bucket.len, bucket.data, f->conf.relay, text);
        return;

    default:

        /* 429, 503, 507 ...: when the relay says when, then */

        if (res.retry_after > SPOOL_FWD_RETRY_AFTER_MAX) {
            res.retry_after = SPOOL_FWD_RETRY_AFTER_MAX;
        }

        spool_fwd_failed(f, res.retry_after > 0
                            ? (uint64_t) res.retry_after * 1000000000
                            : 0,
                         "bucket \"%.*s\": %ld %s", (int) bucket.len,
                         bucket.data, res.status, text);
        return;
    }
}


/*
 * The batch stays: it is read again and sent after wait ns, or after the
 * next backoff step (wait 0): 100ms doubling up to retry_max, each with
 * jitter, so that many spools do not come back in step.
 */

static void
spool_fwd_failed(spool_fwd_t *f, uint64_t wait, const char *fmt, ...)
{
    va_list   args;
    uint64_t  max;

    va_start(args, fmt);
    vsnprintf(f->last_error, sizeof(f->last_error), fmt, args);
    va_end(args);

    f->errors++;

    max = f->conf.retry_max * 1000000;

    if (wait == 0) {
        if (f->backoff == 0) {
            f->backoff = SPOOL_FWD_BACKOFF_MIN;
        }

        wait = spool_fwd_jitter(f, f->backoff);

        f->backoff *= 2;
        if (f->backoff > max) {
            f->backoff = max;
        }
    }

    if (wait > max) {
        wait = max;
    }

    f->failing = 1;

    log_warnx("relay %s: %s; the batch stays buffered, retrying in %.1fs",
              f->conf.relay, f->last_error, (double) wait / 1e9);

    f->retry_at = rf_now_ns() + wait;
    f->batch.reread = 1;
}


/* counted, and kept for the heartbeat's last_error */

static void
spool_fwd_error(spool_fwd_t *f, const char *fmt, ...)
{
    va_list  args;

    va_start(args, fmt);
    vsnprintf(f->last_error, sizeof(f->last_error), fmt, args);
    va_end(args);

    f->errors++;
}


void
spool_fwd_heartbeat(spool_fwd_t *f, uint64_t now)
{
    int                 rc;
    char                text[256];
    const char         *token;
    rf_http_res_t       res;
    struct curl_slist  *headers;

    token = f->conf.token;

    if (token == NULL && f->conf.nbuckets > 0) {
        token = f->conf.buckets[0].token;
    }

    rf_buf_reset(&f->zbuf);

    if (spool_fwd_heartbeat_json(f, &f->zbuf, now) != 0
        || spool_fwd_url(f, "/v1/heartbeat", NULL) != 0)
    {
        log_warnx("heartbeat: out of memory");
        return;
    }

    headers = spool_fwd_headers(f, "application/json", token, 0);
    if (headers == NULL) {
        log_warnx("heartbeat: out of memory");
        return;
    }

    rc = spool_fwd_post(f, headers, SPOOL_FWD_HB_CONNECT_MS,
                        SPOOL_FWD_HB_TIMEOUT_MS, &res);

    curl_slist_free_all(headers);

    f->hb_ns = now;
    f->hb_records = f->sent_records;

    if (rc != 0) {
        if (errno != ECANCELED) {
            log_warnx("relay %s: heartbeat failed: %s", f->conf.relay,
                      res.error);
        }

        return;
    }

    if (res.status != 204 && res.status != 200) {
        rf_http_body_text(res.body, text, sizeof(text));
        log_warnx("relay %s: heartbeat refused: %ld %s", f->conf.relay,
                  res.status, text);
    }
}


/* docs/relay.md: POST /v1/heartbeat, with exactly the keys shown there */

static int
spool_fwd_heartbeat_json(spool_fwd_t *f, rf_buf_t *b, uint64_t now)
{
    int              rc;
    double           rate;
    uint64_t         used;
    spool_meta_t     m;
    rf_ring_stats_t  rs;

    pthread_mutex_lock(&f->lock);

    m = f->meta;

    if (f->ring_attached) {
        rs = f->ring;

    } else {
        memset(&rs, 0, sizeof(rf_ring_stats_t));
    }

    pthread_mutex_unlock(&f->lock);

    used = rs.head > rs.tail ? rs.head - rs.tail : 0;

    rate = 0;

    if (now > f->hb_ns) {
        rate = (double) (f->sent_records - f->hb_records) * 1e9
               / (double) (now - f->hb_ns);
    }

    rc = rf_buf_adds(b, "{\"id\":");
    rc |= rf_json_str(b, (const unsigned char *) f->conf.id,
                      strlen(f->conf.id));
    rc |= rf_buf_adds(b, ",\"role\":\"spool\",\"host\":");
    rc |= rf_json_str(b, (const unsigned char *) f->host, strlen(f->host));
    rc |= rf_buf_adds(b, ",\"version\":\"" SPOOLD_VERSION "\"");

    if (f->conf.heartbeat % 1000 == 0) {
        rc |= rf_buf_printf(b, ",\"interval_s\":%" PRIu64,
                            f->conf.heartbeat / 1000);

    } else {
        rc |= rf_buf_printf(b, ",\"interval_s\":%.3f",
                            (double) f->conf.heartbeat / 1000);
    }

    rc |= rf_buf_printf(b,
        ",\"stats\":{\"ring_size\":%" PRIu64 ",\"ring_used\":%" PRIu64
        ",\"ring_written\":%" PRIu64 ",\"ring_dropped_full\":%" PRIu64
        ",\"ring_dropped_too_big\":%" PRIu64
        ",\"buffer_records\":%" PRIu64 ",\"buffer_bytes\":%" PRIu64
        ",\"buffer_max\":%" PRIu64 ",\"buffer_dropped_oldest\":%" PRIu64
        ",\"buffer_dropped_newest\":%" PRIu64
        ",\"script_calls\":%" PRIu64 ",\"script_ticks\":%" PRIu64
        ",\"script_errors\":%" PRIu64
        ",\"script_budget\":%" PRIu64 ",\"script_memory\":%" PRIu64
        ",\"script_dropped\":%" PRIu64 ",\"script_produced\":%" PRIu64
        ",\"dead_lettered\":%" PRIu64 ",\"dead_dropped\":%" PRIu64
        ",\"sent_records\":%" PRIu64 ",\"sent_bytes\":%" PRIu64
        ",\"send_rate\":%.1f,\"errors\":%" PRIu64 ",\"last_error\":",
        rs.size, used, rs.written, rs.dropped_full, rs.dropped_too_big,
        m.records, m.bytes, m.max_buffer, m.dropped_oldest,
        m.dropped_newest, m.script.calls, m.script.ticks, m.script.errors,
        m.script.budget, m.script.memory, m.script.dropped, m.script.produced,
        m.script.dead_lettered, m.script.dead_dropped, f->sent_records,
        f->sent_bytes, rate, f->errors);

    rc |= rf_json_str(b, (const unsigned char *) f->last_error,
                      strlen(f->last_error));
    rc |= rf_buf_adds(b, "}}");

    return rc ? -1 : 0;
}


/* relay + path (+ the bucket, escaped, + "/records"), in f->text */

static int
spool_fwd_url(spool_fwd_t *f, const char *path, const rf_str_t *bucket)
{
    int                   rc;
    size_t                i;
    const unsigned char  *p;

    rf_buf_reset(&f->text);

    rc = rf_buf_adds(&f->text, f->conf.relay);
    rc |= rf_buf_adds(&f->text, path);

    if (bucket != NULL) {
        p = bucket->data;

        for (i = 0; i < bucket->len; i++) {
            if ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
                || (p[i] >= '0' && p[i] <= '9') || p[i] == '-'
                || p[i] == '.' || p[i] == '_' || p[i] == '~')
            {
                rc |= rf_buf_addc(&f->text, p[i]);

            } else {
                rc |= rf_buf_printf(&f->text, "%%%02X", p[i]);
            }
        }

        rc |= rf_buf_adds(&f->text, "/records");
    }

    rc |= rf_buf_addc(&f->text, '\0');

    return rc ? -1 : 0;
}


static struct curl_slist *
spool_fwd_headers(spool_fwd_t *f, const char *type, const char *token,
    int zstd)
{
    char                line[64 + 4096];
    struct curl_slist  *h, *t;

    h = NULL;

    snprintf(line, sizeof(line), "Content-Type: %s", type);

    /* no "Expect: 100-continue" round trip before a large body */

    if ((t = curl_slist_append(h, line)) == NULL) {
        return NULL;
    }

    h = t;

    if ((t = curl_slist_append(h, "Expect:")) == NULL) {
        goto failed;
    }

    if (zstd && (t = curl_slist_append(h, "Content-Encoding: zstd")) == NULL)
    {
        goto failed;
    }

    if (token != NULL) {
        snprintf(line, sizeof(line), "Authorization: Bearer %s", token);

        if ((t = curl_slist_append(h, line)) == NULL) {
            goto failed;
        }
    }

    return h;

failed:

    curl_slist_free_all(h);

    return NULL;
}


/* f->zbuf to the URL in f->text */

static int
spool_fwd_post(spool_fwd_t *f, struct curl_slist *headers,
    uint64_t connect_ms, uint64_t timeout_ms, rf_http_res_t *res)
{
    rf_http_req_t  req;

    req.url = (const char *) f->text.data;
    req.headers = headers;
    req.body = f->zbuf.data;
    req.len = f->zbuf.len;
    req.connect_ms = connect_ms;
    req.timeout_ms = timeout_ms;

    return rf_http_request(&f->http, &req, res);
}


static const char *
spool_fwd_token_for(spool_fwd_t *f, const rf_str_t *bucket)
{
    return spoold_conf_token(&f->conf, (const char *) bucket->data,
                             bucket->len);
}


/* between base/2 and base (xorshift64: no need for a good generator) */

static uint64_t
spool_fwd_jitter(spool_fwd_t *f, uint64_t base)
{
    f->rng ^= f->rng << 13;
    f->rng ^= f->rng >> 7;
    f->rng ^= f->rng << 17;

    return base / 2 + f->rng % (base / 2 + 1);
}
