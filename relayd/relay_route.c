/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-relayd's routing and request checks, made on a request's first
 * callback before any body is read: which endpoint, which bucket, the
 * bearer token (compared in constant time), Content-Type,
 * Content-Encoding and Content-Length; and the query of a GET.
 */

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "relay_api.h"
#include "relay_route.h"
#include "relayd.h"


static int relay_http_token_equal(const char *given, size_t glen,
    const char *want);
static int relay_http_u64(const char *s, uint64_t *v);


/*
 *   POST /v1/buckets/{b}/records     GET /v1/buckets/{b}/records
 *   POST /v1/buckets/{b}/ack         POST /v1/heartbeat     GET /healthz
 */
int
relay_http_route_api(relay_listener_t *l, const char *url,
    const char *method, relay_req_t *req, relay_reply_t *r)
{
    size_t       n;
    const char  *name, *slash, *rest;
    int          get, post;

    get = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    post = strcmp(method, "POST") == 0;

    if (strcmp(url, "/healthz") == 0) {
        req->route = RELAY_ROUTE_HEALTHZ;
        goto method_get;
    }

    if (strcmp(url, "/v1/heartbeat") == 0) {
        req->route = RELAY_ROUTE_HEARTBEAT;
        goto method_post;
    }

    if (strncmp(url, "/v1/buckets/", 12) != 0) {
        goto not_found;
    }

    name = url + 12;
    slash = strchr(name, '/');
    if (slash == NULL) {
        goto not_found;
    }

    n = slash - name;
    rest = slash + 1;

    if (strcmp(rest, "records") == 0) {
        req->route = post ? RELAY_ROUTE_POST_RECORDS : RELAY_ROUTE_GET_RECORDS;

        if (!get && !post) {
            relay_reply_error(r, 405, "method_not_allowed", "use GET or "
                              "POST");
            return -1;
        }

    } else if (strcmp(rest, "ack") == 0) {
        req->route = RELAY_ROUTE_ACK;

        if (!post) {
            goto not_post;
        }

    } else {
        goto not_found;
    }

    req->bucket = relayd_bucket(l->rd, name, n);

    if (req->bucket == NULL) {
        relay_reply_error(r, 404, "not_found", "no bucket \"%.*s\"",
                          (int) (n > RELAY_NAME_MAX ? RELAY_NAME_MAX : n),
                          name);
        return -1;
    }

    return 0;

method_get:

    if (!get) {
        relay_reply_error(r, 405, "method_not_allowed", "use GET");
        return -1;
    }

    return 0;

method_post:

    if (post) {
        return 0;
    }

not_post:

    relay_reply_error(r, 405, "method_not_allowed", "use POST");
    return -1;

not_found:

    relay_reply_error(r, 404, "not_found", "no such path");
    return -1;
}


int
relay_http_route_stats(const char *url, const char *method,
    relay_req_t *req, relay_reply_t *r)
{
    if (strcmp(url, "/") == 0) {
        req->route = RELAY_ROUTE_DASHBOARD;

    } else if (strcmp(url, "/v1/stats") == 0) {
        req->route = RELAY_ROUTE_STATS;

    } else if (strcmp(url, "/metrics") == 0) {
        req->route = RELAY_ROUTE_METRICS;

    } else if (strcmp(url, "/healthz") == 0) {
        req->route = RELAY_ROUTE_HEALTHZ;

    } else {
        relay_reply_error(r, 404, "not_found", "no such path");
        return -1;
    }

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        relay_reply_error(r, 405, "method_not_allowed", "use GET");
        return -1;
    }

    return 0;
}


/*
 * "Authorization: Bearer T" against the bucket's token, or for a
 * heartbeat (only NULL) against every bucket's.
 */
int
relay_http_auth(relayd_t *rd, struct MHD_Connection *c, relay_bucket_t *only)
{
    int          ok;
    size_t       i, n, glen;
    const char  *h, *given;

    h = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_AUTHORIZATION);

    if (h == NULL || strncasecmp(h, "Bearer ", 7) != 0) {
        return -1;
    }

    given = h + 7;
    while (*given == ' ') {
        given++;
    }

    glen = strlen(given);
    ok = 0;

    pthread_rwlock_rdlock(&rd->lock);

    if (only != NULL) {
        ok = relay_http_token_equal(given, glen,
                                    relay_bucket_conf(only)->token);

    } else {
        n = __atomic_load_n(&rd->nbuckets, __ATOMIC_ACQUIRE);

        for (i = 0; i < n; i++) {
            ok |= relay_http_token_equal(given, glen,
                                         relay_bucket_conf(rd->buckets[i])
                                             ->token);
        }
    }

    pthread_rwlock_unlock(&rd->lock);

    return ok ? 0 : -1;
}


/* the time taken depends on the expected token's length only */

static int
relay_http_token_equal(const char *given, size_t glen, const char *want)
{
    size_t          i, wlen;
    unsigned char   diff, g;

    wlen = strlen(want);
    diff = (glen != wlen);

    for (i = 0; i < wlen; i++) {
        g = (i < glen) ? (unsigned char) given[i] : 0;
        diff |= g ^ (unsigned char) want[i];
    }

    return diff == 0;
}


/* the body's type, encoding and size limit, checked before it is read */

int
relay_http_content(struct MHD_Connection *c, relay_req_t *req, relayd_t *rd,
    relay_reply_t *r)
{
    size_t       n;
    uint64_t     clen;
    const char  *type, *enc, *len;

    if (req->route == RELAY_ROUTE_GET_RECORDS) {
        return 0;
    }

    req->max_body = (req->route == RELAY_ROUTE_POST_RECORDS)
                    ? rd->conf.max_batch : RELAY_HTTP_SMALL_BODY;

    len = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_CONTENT_LENGTH);

    if (len != NULL && relay_http_u64(len, &clen) == 0
        && clen > req->max_body)
    {
        relay_reply_error(r, 413, "too_large", "the body is larger than %zu "
                          "bytes", req->max_body);
        return -1;
    }

    if (req->route != RELAY_ROUTE_POST_RECORDS) {
        return 0;
    }

    type = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                       MHD_HTTP_HEADER_CONTENT_TYPE);
    if (type == NULL) {
        type = "";
    }

    n = strcspn(type, "; ");

#define relay_type_is(t)                                                      \
    (n == sizeof(t) - 1 && strncasecmp(type, t, n) == 0)

    if (relay_type_is("application/x-replayforge")) {
        req->ndjson = 0;

    } else if (relay_type_is("application/x-ndjson")
               || relay_type_is("application/jsonlines"))
    {
        req->ndjson = 1;

    } else {
        relay_reply_error(r, 415, "unsupported_media_type", "Content-Type "
                          "must be application/x-replayforge or "
                          "application/x-ndjson");
        return -1;
    }

#undef relay_type_is

    enc = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                      MHD_HTTP_HEADER_CONTENT_ENCODING);
    if (enc == NULL) {
        enc = "";
    }

    if (enc[0] != '\0' && strcasecmp(enc, "zstd") != 0
        && strcasecmp(enc, "gzip") != 0 && strcasecmp(enc, "x-gzip") != 0
        && strcasecmp(enc, "identity") != 0)
    {
        relay_reply_error(r, 415, "unsupported_media_type", "unknown "
                          "Content-Encoding: use zstd or gzip");
        return -1;
    }

    for (n = 0; enc[n] != '\0' && n < sizeof(req->encoding) - 1; n++) {
        req->encoding[n] = (enc[n] >= 'A' && enc[n] <= 'Z')
                           ? enc[n] + ('a' - 'A') : enc[n];
    }

    req->encoding[n] = '\0';

    return 0;
}


int
relay_http_get_query(struct MHD_Connection *c, relayd_t *rd, relay_get_t *q,
    relay_reply_t *r)
{
    const char  *v;

    memset(q, 0, sizeof(relay_get_t));
    q->max = RELAY_READ_MAX_DEFAULT;

    v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "consumer");
    if (v != NULL) {
        if (!rf_valid_name(v, strlen(v))) {
            relay_reply_error(r, 400, "bad_request", "invalid "
                              "consumer name");
            return -1;
        }

        q->consumer = v;
    }

    v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "max");
    if (v != NULL) {
        if (relay_http_u64(v, &q->max) != 0 || q->max == 0) {
            relay_reply_error(r, 400, "bad_request", "max must be a "
                              "positive integer");
            return -1;
        }

        if (q->max > RELAY_READ_MAX) {
            q->max = RELAY_READ_MAX;
        }
    }

    v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "after");
    if (v != NULL) {
        if (relay_http_u64(v, &q->after) != 0) {
            relay_reply_error(r, 400, "bad_request", "after must be a "
                              "non-negative integer");
            return -1;
        }

        q->has_after = 1;
    }

    v = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "wait");
    if (v != NULL) {
        if (relay_http_u64(v, &q->wait_ms) != 0
            || q->wait_ms > UINT64_MAX / 1000)
        {
            relay_reply_error(r, 400, "bad_request", "wait must be a "
                              "number of seconds");
            return -1;
        }

        q->wait_ms *= 1000;

        if (q->wait_ms > rd->conf.max_wait) {
            q->wait_ms = rd->conf.max_wait;
        }
    }

    v = MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                    MHD_HTTP_HEADER_ACCEPT);
    q->ndjson = (v != NULL && strstr(v, "application/x-ndjson") != NULL);

    return 0;
}


static int
relay_http_u64(const char *s, uint64_t *v)
{
    uint64_t  n;

    if (*s == '\0') {
        return -1;
    }

    for (n = 0; *s; s++) {
        if (*s < '0' || *s > '9' || n > (UINT64_MAX - 9) / 10) {
            return -1;
        }

        n = n * 10 + (*s - '0');
    }

    *v = n;

    return 0;
}
