/*
 * Copyright (C) ReplayForge contributors
 *
 * The daemons' HTTP client (see rf_http.h).  The easy handle stays in the
 * multi handle's connection cache between requests, so requests go over
 * one keepalive connection; the stop flag is checked by libcurl's
 * progress callback and by the loop around curl_multi_poll(), which
 * rf_http_wakeup() interrupts.
 */

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rf_http.h"


#define RF_HTTP_POLL_MS         1000


static size_t rf_http_write(char *data, size_t size, size_t n, void *arg);
static size_t rf_http_header(char *data, size_t size, size_t n, void *arg);
static int rf_http_progress(void *arg, curl_off_t dltotal,
    curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow);


int
rf_http_init(rf_http_client_t *h, const char *agent, const int *stop,
    char *err, size_t errlen)
{
    memset(h, 0, sizeof(rf_http_client_t));
    rf_buf_init(&h->body);
    h->stop = stop;

    h->multi = curl_multi_init();
    h->easy = curl_easy_init();

    if (h->multi == NULL || h->easy == NULL) {
        snprintf(err, errlen, "cannot create a libcurl handle");
        rf_http_free(h);
        return -1;
    }

    /* a thread of a daemon: no signals from libcurl (DNS timeouts) */

    if (curl_easy_setopt(h->easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_USERAGENT, agent) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_ERRORBUFFER, h->error)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_WRITEFUNCTION, rf_http_write)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_WRITEDATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HEADERFUNCTION, rf_http_header)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HEADERDATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_XFERINFOFUNCTION,
                            rf_http_progress) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_XFERINFODATA, h) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_NOPROGRESS, 0L) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK)
    {
        snprintf(err, errlen, "cannot set up a libcurl handle");
        rf_http_free(h);
        return -1;
    }

    return 0;
}


void
rf_http_free(rf_http_client_t *h)
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
rf_http_request(rf_http_client_t *h, const rf_http_req_t *req,
    rf_http_res_t *res)
{
    int          running, left, stopped, set;
    CURLMsg     *msg;
    CURLcode     rc;
    CURLMcode    mc;
    curl_off_t   retry;

    res->status = 0;
    res->retry_after = -1;
    res->captured = 0;
    res->body = &h->body;
    res->error = NULL;

    rf_buf_reset(&h->body);
    h->error[0] = '\0';
    h->captured = 0;
    h->overflow = 0;

    if (req->body != NULL) {
        set = curl_easy_setopt(h->easy, CURLOPT_POST, 1L) == CURLE_OK
              && curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, req->body)
                 == CURLE_OK
              && curl_easy_setopt(h->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                  (curl_off_t) req->len) == CURLE_OK;

    } else {
        set = curl_easy_setopt(h->easy, CURLOPT_HTTPGET, 1L) == CURLE_OK;
    }

    if (!set
        || curl_easy_setopt(h->easy, CURLOPT_URL, req->url) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, req->headers)
           != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) req->connect_ms) != CURLE_OK
        || curl_easy_setopt(h->easy, CURLOPT_TIMEOUT_MS,
                            (long) req->timeout_ms) != CURLE_OK)
    {
        res->error = "cannot set up the request";
        errno = EIO;
        goto failed;
    }

    mc = curl_multi_add_handle(h->multi, h->easy);
    if (mc != CURLM_OK) {
        res->error = curl_multi_strerror(mc);
        errno = EIO;
        goto failed;
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

        mc = curl_multi_poll(h->multi, NULL, 0, RF_HTTP_POLL_MS, NULL);
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

    /* the caller's headers and body are theirs again */

    (void) curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
    (void) curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);

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

    if (curl_easy_getinfo(h->easy, CURLINFO_RETRY_AFTER, &retry) == CURLE_OK
        && retry > 0)
    {
        res->retry_after = (int64_t) retry;
    }

    res->captured = h->captured;

    return 0;

failed:

    (void) curl_easy_setopt(h->easy, CURLOPT_HTTPHEADER, NULL);
    (void) curl_easy_setopt(h->easy, CURLOPT_POSTFIELDS, NULL);

    return -1;
}


void
rf_http_wakeup(rf_http_client_t *h)
{
    if (h->multi != NULL) {
        (void) curl_multi_wakeup(h->multi);
    }
}


void
rf_http_body_text(const rf_buf_t *body, char *text, size_t size)
{
    size_t  i, n;

    n = 0;

    for (i = 0; i < body->len && n + 1 < size; i++) {
        text[n++] = (body->data[i] >= 0x20 && body->data[i] < 0x7f)
                    ? (char) body->data[i] : ' ';
    }

    while (n > 0 && text[n - 1] == ' ') {
        n--;
    }

    text[n] = '\0';
}


/*
 * The answer's body, up to body_max: cut there where only an error is
 * read (body_cut), else the transfer fails as too large.
 */

static size_t
rf_http_write(char *data, size_t size, size_t n, void *arg)
{
    size_t             len, room;
    rf_http_client_t  *h;

    h = arg;
    len = size * n;

    if (h->body_max == 0) {
        return rf_buf_add(&h->body, data, len) == 0 ? len : 0;
    }

    if (h->body_cut) {
        room = h->body_max > h->body.len ? h->body_max - h->body.len : 0;

        if (room > 0
            && rf_buf_add(&h->body, data, len < room ? len : room) != 0)
        {
            return 0;
        }

        return len;
    }

    if (h->body.len + len > h->body_max) {
        h->overflow = 1;
        return 0;
    }

    return rf_buf_add(&h->body, data, len) == 0 ? len : 0;
}


/* "Name: 123": the digits of the header named by h->capture */

static size_t
rf_http_header(char *data, size_t size, size_t n, void *arg)
{
    char               num[32];
    size_t             len, name, i, j;
    rf_http_client_t  *h;

    h = arg;
    len = size * n;

    if (h->capture == NULL) {
        return len;
    }

    name = strlen(h->capture);

    if (len > name + 1 && strncasecmp(data, h->capture, name) == 0
        && data[name] == ':')
    {
        i = name + 1;

        while (i < len && (data[i] == ' ' || data[i] == '\t')) {
            i++;
        }

        for (j = 0; i < len && j < sizeof(num) - 1
                    && data[i] >= '0' && data[i] <= '9'; i++, j++)
        {
            num[j] = data[i];
        }

        num[j] = '\0';
        h->captured = strtoull(num, NULL, 10);
    }

    return len;
}


static int
rf_http_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow,
    curl_off_t ultotal, curl_off_t ulnow)
{
    rf_http_client_t  *h;

    h = arg;

    return __atomic_load_n(h->stop, __ATOMIC_ACQUIRE) ? 1 : 0;
}
