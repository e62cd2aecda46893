/*
 * Copyright (C) ReplayForge contributors
 *
 * The player's side of the relay API over rf_http: the long-poll pull of
 * a bucket's records, the ack, and the JSON posts (the heartbeat).  Each
 * thread owns one rf_http_client_t, so a pipeline keeps one keepalive
 * connection and a stop cuts a long-poll short.  Above the client: a pull
 * retried until a batch came, parsed and checked, and an ack retried
 * until the relay took it; relay errors are logged (rate-limited by the
 * log API) and backed off with jitter, forever, so that no record is
 * skipped.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_log.h"
#include "playerd.h"


#define PLAYER_CONNECT_MS       5000
#define PLAYER_ACK_TIMEOUT_MS   30000
#define PLAYER_PULL_SLACK_MS    30000       /* over the long-poll's wait */


static int player_chunk_parse(player_chunk_t *c, uint64_t after,
    const char **why);
static void player_relay_error(player_pipe_t *p, const char *what,
    rf_http_client_t *h, rf_http_res_t *res, uint64_t *backoff);
static int player_http_url(rf_buf_t *url, const char *relay,
    const char *bucket, const char *tail);
static struct curl_slist *player_http_headers(const char *token,
    const char *type);


/* a batch is read whole; X-RF-Last-Seq tells how far the bucket goes */

int
player_http_init(rf_http_client_t *h, const int *stop, char *err,
    size_t errlen)
{
    if (rf_http_init(h, PLAYERD_NAME "/" PLAYERD_VERSION, stop, err, errlen)
        != 0)
    {
        return -1;
    }

    h->body_max = PLAYER_HTTP_BODY_MAX;
    h->capture = "x-rf-last-seq";

    return 0;
}


int
player_http_pull(rf_http_client_t *h, const char *relay,
    const char *bucket, const char *consumer, const char *token,
    uint64_t after, int64_t max, uint64_t wait_ms, rf_http_res_t *res)
{
    int                 rc;
    uint64_t            wait_s;
    rf_buf_t            url;
    rf_http_req_t       req;
    struct curl_slist  *headers;

    wait_s = (wait_ms + 999) / 1000;

    rf_buf_init(&url);

    if (player_http_url(&url, relay, bucket, "/records") != 0
        || rf_buf_printf(&url, "?consumer=%s&max=%" PRId64 "&wait=%"
                         PRIu64, consumer, max, wait_s) != 0
        || (after > 0
            && rf_buf_printf(&url, "&after=%" PRIu64, after) != 0)
        || rf_buf_addc(&url, '\0') != 0)
    {
        rf_buf_free(&url);
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    headers = player_http_headers(token, NULL);
    if (headers == NULL) {
        rf_buf_free(&url);
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    req.url = (char *) url.data;
    req.headers = headers;
    req.body = NULL;
    req.len = 0;
    req.connect_ms = PLAYER_CONNECT_MS;
    req.timeout_ms = wait_s * 1000 + PLAYER_PULL_SLACK_MS;

    rc = rf_http_request(h, &req, res);

    curl_slist_free_all(headers);
    rf_buf_free(&url);

    return rc;
}


int
player_http_ack(rf_http_client_t *h, const char *relay,
    const char *bucket, const char *consumer, const char *token,
    uint64_t upto, rf_http_res_t *res)
{
    int       rc;
    rf_buf_t  body, url;

    rf_buf_init(&body);
    rf_buf_init(&url);

    rc = rf_buf_adds(&body, "{\"consumer\":");
    rc |= rf_json_str(&body, (const unsigned char *) consumer,
                      strlen(consumer));
    rc |= rf_buf_printf(&body, ",\"upto\":%" PRIu64 "}", upto);

    if (rc != 0 || player_http_url(&url, relay, bucket, "/ack") != 0
        || rf_buf_addc(&url, '\0') != 0)
    {
        rf_buf_free(&body);
        rf_buf_free(&url);
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    rc = player_http_post_json(h, (char *) url.data, token, body.data,
                               body.len, PLAYER_ACK_TIMEOUT_MS, res);

    rf_buf_free(&body);
    rf_buf_free(&url);

    return rc;
}


int
player_http_post_json(rf_http_client_t *h, const char *url,
    const char *token, const void *body, size_t len, uint64_t timeout_ms,
    rf_http_res_t *res)
{
    int                 rc;
    rf_http_req_t       req;
    struct curl_slist  *headers;

    headers = player_http_headers(token, "application/json");
    if (headers == NULL) {
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    req.url = url;
    req.headers = headers;
    req.body = body;
    req.len = len;
    req.connect_ms = PLAYER_CONNECT_MS;
    req.timeout_ms = timeout_ms;

    rc = rf_http_request(h, &req, res);

    curl_slist_free_all(headers);

    return rc;
}


/* relay + "/v1/buckets/" + bucket + tail, in url (not terminated) */

static int
player_http_url(rf_buf_t *url, const char *relay, const char *bucket,
    const char *tail)
{
    int  rc;

    /* bucket names are [A-Za-z0-9._-]: nothing to escape */

    rc = rf_buf_adds(url, relay);
    rc |= rf_buf_adds(url, "/v1/buckets/");
    rc |= rf_buf_adds(url, bucket);
    rc |= rf_buf_adds(url, tail);

    return rc ? -1 : 0;
}


static struct curl_slist *
player_http_headers(const char *token, const char *type)
{
    rf_buf_t            line;
    struct curl_slist  *list, *l;

    list = NULL;
    rf_buf_init(&line);

    if (rf_buf_printf(&line, "Authorization: Bearer %s", token) != 0
        || rf_buf_addc(&line, '\0') != 0)
    {
        rf_buf_free(&line);
        return NULL;
    }

    list = curl_slist_append(list, (char *) line.data);
    rf_buf_free(&line);

    if (list == NULL) {
        return NULL;
    }

    if (type != NULL) {
        l = curl_slist_append(list, type[0] == 'a'
                                    ? "Content-Type: application/json"
                                    : "Content-Type: text/plain");
        if (l == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }

        list = l;

    } else {
        l = curl_slist_append(list, "Accept: application/x-replayforge");
        if (l == NULL) {
            curl_slist_free_all(list);
            return NULL;
        }

        list = l;
    }

    /* no "Expect: 100-continue" round trip for small JSON posts */

    l = curl_slist_append(list, "Expect:");
    if (l == NULL) {
        curl_slist_free_all(list);
        return NULL;
    }

    return l;
}


/* pull until a batch with records came: 0, or -1 when stopped */

int
player_pull_batch(player_pipe_t *p, uint64_t after, player_chunk_t **out)
{
    int                 rc;
    uint64_t            backoff, seen;
    const char         *why;
    player_chunk_t     *c;
    rf_http_res_t       res;

    backoff = 0;

    for ( ;; ) {
        rc = player_http_pull(&p->fetch_http, p->conf->relay, p->bc->name,
                              p->bc->consumer, p->token, after,
                              p->bc->batch, p->bc->wait, &res);

        if (rc != 0 && errno == ECANCELED) {
            return -1;
        }

        if (rc == 0 && res.status == 204) {
            backoff = 0;
            continue;
        }

        if (rc != 0 || res.status != 200) {
            player_relay_error(p, "pull", &p->fetch_http, &res, &backoff);

            if (player_sleep(&p->stop, player_jitter(backoff)) != 0) {
                return -1;
            }

            continue;
        }

        c = calloc(1, sizeof(player_chunk_t));
        if (c == NULL) {
            why = "out of memory";
            goto retry;
        }

        /* the answer's bytes become the chunk's: no copy */

        c->body = p->fetch_http.body;
        rf_buf_init(&p->fetch_http.body);

        if (player_chunk_parse(c, after, &why) != 0) {
            player_chunk_free(c);
            goto retry;
        }

        if (c->n == 0) {
            player_chunk_free(c);
            continue;
        }

        seen = res.captured > c->last_seq ? res.captured : c->last_seq;

        if (seen > __atomic_load_n(&p->seen_seq, __ATOMIC_RELAXED)) {
            __atomic_store_n(&p->seen_seq, seen, __ATOMIC_RELAXED);
        }

        __atomic_add_fetch(&p->pulled, c->n, __ATOMIC_RELAXED);

        log_debug("bucket \"%s\": pulled %zu records, %" PRIu64 "..%"
                  PRIu64, p->bc->name, c->n, c->recs[0].seq, c->last_seq);

        *out = c;

        return 0;

    retry:

        __atomic_add_fetch(&p->errors, 1, __ATOMIC_RELAXED);
        log_warnx("bucket \"%s\": bad batch from relay %s: %s",
                  p->bc->name, p->conf->relay, why);

        backoff = backoff ? backoff * 2 : 200;
        if (backoff > PLAYER_RELAY_BACKOFF_MS) {
            backoff = PLAYER_RELAY_BACKOFF_MS;
        }

        if (player_sleep(&p->stop, player_jitter(backoff)) != 0) {
            return -1;
        }
    }
}


/* records back to back, each checked; seqs above after and increasing */

static int
player_chunk_parse(player_chunk_t *c, uint64_t after, const char **why)
{
    size_t          off, len;
    uint32_t        n;
    uint64_t        prev;
    player_rec_t   *r;

    off = 0;
    len = c->body.len;
    prev = after;

    while (off < len) {
        n = rf_rec_peek_len(c->body.data + off, len - off);

        if (n == 0 || n > len - off) {
            *why = "truncated record";
            return -1;
        }

        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 64;

            r = realloc(c->recs, c->cap * sizeof(player_rec_t));
            if (r == NULL) {
                *why = "out of memory";
                return -1;
            }

            c->recs = r;
        }

        r = &c->recs[c->n];

        if (rf_rec_parse(&r->rec, c->body.data + off, n, why) != 0) {
            return -1;
        }

        if (r->rec.rseq <= prev) {
            *why = "record sequence out of order";
            return -1;
        }

        r->seq = r->rec.rseq;
        prev = r->seq;
        c->last_seq = r->seq;
        c->n++;
        off += n;
    }

    return 0;
}


void
player_chunk_free(player_chunk_t *c)
{
    rf_buf_free(&c->body);
    free(c->recs);
    free(c);
}


/* until the relay took it: 0, or -1 when stopped */

int
player_pull_ack(player_pipe_t *p, uint64_t upto)
{
    int                rc;
    char               text[256];
    uint64_t           backoff;
    rf_http_res_t      res;

    backoff = 0;

    for ( ;; ) {
        rc = player_http_ack(&p->ack_http, p->conf->relay, p->bc->name,
                             p->bc->consumer, p->token, upto, &res);

        if (rc != 0 && errno == ECANCELED) {
            return -1;
        }

        if (rc == 0 && res.status == 200) {
            __atomic_store_n(&p->acked_seq, upto, __ATOMIC_RELAXED);
            return 0;
        }

        if (rc == 0 && res.status == 400) {
            /* beyond the bucket's end: the relay lost data; go on */
            rf_http_body_text(&p->ack_http.body, text, sizeof(text));
            log_warnx("bucket \"%s\": relay %s refused the ack up to %"
                      PRIu64 ": %s", p->bc->name, p->conf->relay, upto,
                      text);
            __atomic_add_fetch(&p->errors, 1, __ATOMIC_RELAXED);
            return 0;
        }

        player_relay_error(p, "ack", &p->ack_http, &res, &backoff);

        if (player_sleep(&p->stop, player_jitter(backoff)) != 0) {
            return -1;
        }
    }
}


static void
player_relay_error(player_pipe_t *p, const char *what,
    rf_http_client_t *h, rf_http_res_t *res, uint64_t *backoff)
{
    char  text[256];

    __atomic_add_fetch(&p->errors, 1, __ATOMIC_RELAXED);

    if (res->status == 0) {
        log_warnx("bucket \"%s\": %s from relay %s failed: %s",
                  p->bc->name, what, p->conf->relay,
                  res->error ? res->error : "no answer");

    } else {
        rf_http_body_text(&h->body, text, sizeof(text));
        log_warnx("bucket \"%s\": %s from relay %s refused: %ld %s",
                  p->bc->name, what, p->conf->relay, res->status, text);
    }

    *backoff = *backoff ? *backoff * 2 : 200;

    if (*backoff > PLAYER_RELAY_BACKOFF_MS) {
        *backoff = PLAYER_RELAY_BACKOFF_MS;
    }
}
