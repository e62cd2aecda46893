/*
 * Copyright (C) ReplayForge contributors
 *
 * The forwarder's HTTP client (see spool_http.h).  The easy handle stays
 * in the multi handle's connection cache between requests, so batches go
 * over one keepalive connection; the stop flag is checked by libcurl's
 * progress callback and by the loop around curl_multi_poll(), which
 * spool_http_wakeup() interrupts.
 */

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "spoold.h"
#include "spool_http.h"


#define SPOOL_HTTP_POLL_MS      1000


static size_t spool_http_write(char *data, size_t size, size_t n,
    void *arg);
static int spool_http_progress(void *arg, curl_off_t dltotal,
    curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);


int
spool_http_init(spool_http_t *h, const int *stop, char *err, size_t errlen)
{
    memset(h, 0, sizeof(spool_http_t));
    rf_buf_init(&h->body);
    h->stop = stop;

    h->multi = curl_multi_init();
    h->easy = curl_easy_init();

    if (h->multi == NULL || h->easy == NULL) {
        snprintf(err, errlen, "cannot create a libcurl handle");
        spool_http_free(h);
        return -1;
    }

    /* a thread of a daemon: no signals from libcurl (DNS timeouts) */

    if (curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_USERAGENT,
                            SPOOLD_NAME "/" SPOOLD_VERSION) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->error)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, spool_http_write)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_XFERINFOFUNCTION,
                            spool_http_progress) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_XFERINFODATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_NOPROGRESS, 0L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_POST, 1L) != CURLE_OK)
    {
        snprintf(err, errlen, "cannot set up a libcurl handle");
        spool_http_free(h);
        return -1;
    }

    return 0;
}


void
spool_http_free(spool_http_t *h)
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
}


int
spool_http_post(spool_http_t *h, const char *url, struct curl_slist *headers,
    const void *body, size_t len, uint64_t connect_ms, uint64_t timeout_ms,
    spool_http_res_t *res)
{
    int          running, left, stopped;
    CURLMsg     *msg;
    CURLcode     rc;
    CURLMcode    mc;
    curl_off_t   retry;

    res->status = 0;
    res->retry_after = -1;
    res->body = &h->body;
    res->error = NULL;

    rf_buf_reset(&h->body);
    h->error[0] = '\0';

    if (curl_easy_setopt(h->easy, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, headers) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, body) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) len) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) connect_ms) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS, (long) timeout_ms)
           != CURLE_OK)
    {
        res->error = "cannot set up the request";
        errno = EIO;
        return -1;
    }

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

        mc = curl_multi_poll(h->multi, NULL, 0, SPOOL_HTTP_POLL_MS, NULL);
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

    if (stopped || rc == CURLE_ABORTED_BY_CALLBACK) {
        res->error = "stopped";
        errno = ECANCELED;
        return -1;
    }

    if (mc != CURLM_OK) {
        res->error = curl_multi_strerror(mc);
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

    if (curl_easy_getinfo(h->easy, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK
        && retry > 0)
    {
        res->retry_after = (int64_t) retry;
    }

    return 0;
}


void
spool_http_wakeup(spool_http_t *h)
{
    if (h->multi != NULL) {
        (void) curl_multi_wakeup(h->multi);
    }
}


/* the answer's body, cut at SPOOL_HTTP_BODY_MAX: only errors are read */

static size_t
spool_http_write(char *data, size_t size, size_t n, void *arg)
{
    size_t         len, room;
    spool_http_t  *h;

    h = arg;
    len = size * n;

    room = SPOOL_HTTP_BODY_MAX - h->body.len;

    if (room > 0
        && rf_buf_add(&h->body, data, len < room ? len : room) != 0)
    {
        return 0;
    }

    return len;
}


static int
spool_http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
    spool_http_t  *h;

    h = arg;

    return __atomic_load_n(h->stop, __ATOMIC_ACQUIRE) ? 1 : 0;
}
