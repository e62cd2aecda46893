/*
 * Copyright (C) ReplayForge contributors
 *
 * The player's side of the relay API over libcurl: the long-poll pull of
 * a bucket's records, the ack, and the JSON posts (the heartbeat).  Each
 * thread owns one player_http_t; its easy handle stays in its multi
 * handle's connection cache, so a pipeline keeps one keepalive connection,
 * and a stop flag (checked by the progress callback and around
 * curl_multi_poll(), which player_http_wakeup() interrupts) cuts a
 * long-poll short.  Above the client: a pull retried until a batch came,
 * parsed and checked, and an ack retried until the relay took it; relay
 * errors are logged (rate-limited by the log API) and backed off with
 * jitter, forever, so that no record is skipped.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rf_log.h"
#include "playerd.h"


#define PLAYER_HTTP_POLL_MS     1000
#define PLAYER_CONNECT_MS       5000
#define PLAYER_ACK_TIMEOUT_MS   30000
#define PLAYER_PULL_SLACK_MS    30000       /* over the long-poll's wait */


static int player_chunk_parse(player_chunk_t *c, uint64_t after,
    const char **why);
static void player_relay_error(player_pipe_t *p, const char *what,
    player_http_t *h, player_http_res_t *res, uint64_t *backoff);
static int player_http_perform(player_http_t *h, player_http_res_t *res);
static int player_http_url(player_http_t *h, const char *relay,
    const char *bucket, const char *tail);
static struct curl_slist *player_http_headers(const char *token,
    const char *type);
static size_t player_http_write(char *data, size_t size, size_t n,
    void *arg);
static size_t player_http_header(char *data, size_t size, size_t n,
    void *arg);
static int player_http_progress(void *arg, curl_off_t dltotal,
    curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);


int
player_http_init(player_http_t *h, const int *stop, char *err,
    size_t errlen)
{
    memset(h, 0, sizeof(player_http_t));
    rf_buf_init(&h->body);
    rf_buf_init(&h->url);
    h->stop = stop;

    h->multi = curl_multi_init();
    h->easy = curl_easy_init();

    if (h->multi == NULL || h->easy == NULL) {
        snprintf(err, errlen, "cannot create a libcurl handle");
        player_http_free(h);
        return -1;
    }

    /* a thread of a daemon: no signals from libcurl (DNS timeouts) */

    if (curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_USERAGENT,
                            PLAYERD_NAME "/" PLAYERD_VERSION) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->error)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION,
                            player_http_write) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION,
                            player_http_header) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_XFERINFOFUNCTION,
                            player_http_progress) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_XFERINFODATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_NOPROGRESS, 0L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) PLAYER_CONNECT_MS) != CURLE_OK)
    {
        snprintf(err, errlen, "cannot set up a libcurl handle");
        player_http_free(h);
        return -1;
    }

    return 0;
}


void
player_http_free(player_http_t *h)
{
    if (h->easy != NULL) {
        curl_easy_cleanup(h->easy);
        h->easy = NULL;
    }

    if (h->multi != NULL) {
        (void) curl_multi_cleanup(h->multi);
        h->multi = NULL;
    }

    rf_buf_free(&h->body);
    rf_buf_free(&h->url);
}


void
player_http_wakeup(player_http_t *h)
{
    if (h->multi != NULL) {
        (void) curl_multi_wakeup(h->multi);
    }
}


int
player_http_pull(player_http_t *h, const char *relay, const char *bucket,
    const char *consumer, const char *token, uint64_t after, int64_t max,
    uint64_t wait_ms, player_http_res_t *res)
{
    int                 rc;
    uint64_t            wait_s;
    struct curl_slist  *headers;

    wait_s = (wait_ms + 999) / 1000;

    if (player_http_url(h, relay, bucket, "/records") != 0
        || rf_buf_printf(&h->url, "?consumer=%s&max=%" PRId64 "&wait=%"
                         PRIu64, consumer, max, wait_s) != 0
        || (after > 0
            && rf_buf_printf(&h->url, "&after=%" PRIu64, after) != 0)
        || rf_buf_addc(&h->url, '\0') != 0)
    {
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    headers = player_http_headers(token, NULL);
    if (headers == NULL) {
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    if (curl_easy_setopt(h->easy, CURLOPT_URL, (char *) h->url.data)
        != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS,
                            (long) (wait_s * 1000 + PLAYER_PULL_SLACK_MS))
           != CURLE_OK)
    {
        curl_slist_free_all(headers);
        res->status = 0;
        res->error = "cannot set up the request";
        errno = EIO;
        return -1;
    }

    rc = player_http_perform(h, res);

    (void) curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(headers);

    return rc;
}


int
player_http_ack(player_http_t *h, const char *relay, const char *bucket,
    const char *consumer, const char *token, uint64_t upto,
    player_http_res_t *res)
{
    int       rc;
    rf_buf_t  body;

    rf_buf_init(&body);

    rc = rf_buf_adds(&body, "{\"consumer\":");
    rc |= rf_json_str(&body, (const unsigned char *) consumer,
                      strlen(consumer));
    rc |= rf_buf_printf(&body, ",\"upto\":%" PRIu64 "}", upto);

    if (rc != 0 || player_http_url(h, relay, bucket, "/ack") != 0
        || rf_buf_addc(&h->url, '\0') != 0)
    {
        rf_buf_free(&body);
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    /* the url lives in h->url, which the post copies into libcurl */

    rc = player_http_post_json(h, (char *) h->url.data, token, body.data,
                               body.len, PLAYER_ACK_TIMEOUT_MS, res);

    rf_buf_free(&body);

    return rc;
}


int
player_http_post_json(player_http_t *h, const char *url, const char *token,
    const void *body, size_t len, uint64_t timeout_ms,
    player_http_res_t *res)
{
    int                 rc;
    struct curl_slist  *headers;

    headers = player_http_headers(token, "application/json");
    if (headers == NULL) {
        res->status = 0;
        res->error = "out of memory";
        errno = ENOMEM;
        return -1;
    }

    if (curl_easy_setopt(h->easy, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_POST, 1L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) len) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long) timeout_ms)
           != CURLE_OK)
    {
        curl_slist_free_all(headers);
        res->status = 0;
        res->error = "cannot set up the request";
        errno = EIO;
        return -1;
    }

    rc = player_http_perform(h, res);

    (void) curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
    (void) curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);

    return rc;
}


static int
player_http_perform(player_http_t *h, player_http_res_t *res)
{
    int        running, left, stopped;
    CURLMsg   *msg;
    CURLcode   rc;
    CURLMcode  mc;

    res->status = 0;
    res->error = NULL;

    rf_buf_reset(&h->body);
    h->error[0] = '\0';
    h->last_seq = 0;
    h->overflow = 0;

    mc = curl_multi_add_handle(h->multi, h->easy);
    if (mc != CURLM_OK) {
        res->error = curl_multi_strerror(mc);
        errno = EIO;
        return -1;
    }

    stopped = 0;
    rc = CURLE_OK;

    for ( ;; ) {
        mc = curl_multi_perform(h->multi, &running);

        if (mc != CURLM_OK || running == 0) {
            break;
        }

        if (__atomic_load_n(h->stop, __ATOMIC_ACQUIRE)) {
            stopped = 1;
            break;
        }

        mc = curl_multi_poll(h->multi, NULL, 0, PLAYER_HTTP_POLL_MS, NULL);
        if (mc != CURLM_OK) {
            break;
        }
    }

    if (mc == CURLM_OK && !stopped) {
        rc = CURLE_GOT_NOTHING;

        while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == h->easy) {
                rc = msg->data.result;
            }
        }
    }

    /* an unfinished transfer is aborted here, its connection closed */

    (void) curl_multi_remove_handle(h->multi, h->easy);

    if (stopped
        || (rc == CURLE_ABORTED_BY_CALLBACK
            && __atomic_load_n(h->stop, __ATOMIC_ACQUIRE)))
    {
        res->error = "stopped";
        errno = ECANCELED;
        return -1;
    }

    if (mc != CURLM_OK) {
        res->error = curl_multi_strerror(mc);
        errno = EIO;
        return -1;
    }

    if (h->overflow) {
        res->error = "answer too large";
        errno = EIO;
        return -1;
    }

    if (rc != CURLE_OK) {
        res->error = h->error[0] ? h->error : curl_easy_strerror(rc);
        errno = EIO;
        return -1;
    }

    if (curl_easy_getinfo(h->easy, CURLINFO_RESPONSE_CODE, &res->status)
        != CURLE_OK)
    {
        res->status = 0;
    }

    return 0;
}


/* relay + "/v1/buckets/" + bucket + tail, in h->url (not terminated) */

static int
player_http_url(player_http_t *h, const char *relay, const char *bucket,
    const char *tail)
{
    int  rc;

    /* bucket names are [A-Za-z0-9._-]: nothing to escape */

    rf_buf_reset(&h->url);

    rc = rf_buf_adds(&h->url, relay);
    rc |= rf_buf_adds(&h->url, "/v1/buckets/");
    rc |= rf_buf_adds(&h->url, bucket);
    rc |= rf_buf_adds(&h->url, tail);

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


void
player_http_body_text(player_http_t *h, char *text, size_t size)
{
    size_t  i, n;

    n = h->body.len < size - 1 ? h->body.len : size - 1;

    for (i = 0; i < n; i++) {
        text[i] = (h->body.data[i] >= 0x20 && h->body.data[i] < 0x7f)
                  ? (char) h->body.data[i] : ' ';
    }

    text[n] = '\0';
}


static size_t
player_http_write(char *data, size_t size, size_t n, void *arg)
{
    size_t          len;
    player_http_t  *h;

    h = arg;
    len = size * n;

    if (h->body.len + len > PLAYER_HTTP_BODY_MAX) {
        h->overflow = 1;
        return 0;
    }

    if (rf_buf_add(&h->body, data, len) != 0) {
        return 0;
    }

    return len;
}


static size_t
player_http_header(char *data, size_t size, size_t n, void *arg)
{
    char            num[32];
    size_t          len, i, j;
    player_http_t  *h;

    h = arg;
    len = size * n;

#define PLAYER_LAST_SEQ  "x-rf-last-seq:"

    if (len > sizeof(PLAYER_LAST_SEQ) - 1
        && strncasecmp(data, PLAYER_LAST_SEQ, sizeof(PLAYER_LAST_SEQ) - 1)
           == 0)
    {
        i = sizeof(PLAYER_LAST_SEQ) - 1;

        while (i < len && (data[i] == ' ' || data[i] == '\t')) {
            i++;
        }

        for (j = 0; i < len && j < sizeof(num) - 1
                    && data[i] >= '0' && data[i] <= '9'; i++, j++)
        {
            num[j] = data[i];
        }

        num[j] = '\0';
        h->last_seq = strtoull(num, NULL, 10);
    }

    return len;
}


static int
player_http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
    player_http_t  *h;

    h = arg;

    return __atomic_load_n(h->stop, __ATOMIC_ACQUIRE) ? 1 : 0;
}


/* pull until a batch with records came: 0, or -1 when stopped */

int
player_pull_batch(player_pipe_t *p, uint64_t after, player_chunk_t **out)
{
    int                 rc;
    uint64_t            backoff, seen;
    const char         *why;
    player_chunk_t     *c;
    player_http_res_t   res;

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

        seen = p->fetch_http.last_seq > c->last_seq
               ? p->fetch_http.last_seq : c->last_seq;

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
    player_http_res_t  res;

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
            player_http_body_text(&p->ack_http, text, sizeof(text));
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
player_relay_error(player_pipe_t *p, const char *what, player_http_t *h,
    player_http_res_t *res, uint64_t *backoff)
{
    char  text[256];

    __atomic_add_fetch(&p->errors, 1, __ATOMIC_RELAXED);

    if (res->status == 0) {
        log_warnx("bucket \"%s\": %s from relay %s failed: %s",
                  p->bc->name, what, p->conf->relay,
                  res->error ? res->error : "no answer");

    } else {
        player_http_body_text(h, text, sizeof(text));
        log_warnx("bucket \"%s\": %s from relay %s refused: %ld %s",
                  p->bc->name, what, p->conf->relay, res->status, text);
    }

    *backoff = *backoff ? *backoff * 2 : 200;

    if (*backoff > PLAYER_RELAY_BACKOFF_MS) {
        *backoff = PLAYER_RELAY_BACKOFF_MS;
    }
}
