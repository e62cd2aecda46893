/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-relayd's HTTP server on libmicrohttpd: the API listener and the
 * stats listener, one thread per connection (a long-poll or a POST
 * waiting for its group commit may block its own thread and nobody
 * else's), the connection limit answered with 503 rather than a reset,
 * bodies bounded while they arrive, and the responses.  Routing and the
 * checks made before a body is read are in relay_route.c.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "rf_log.h"
#include "relay_api.h"
#include "relay_route.h"
#include "relay_dashboard.h"
#include "relayd.h"


#define RELAY_HTTP_SLACK        64          /* connections answered 503 */
#define RELAY_HTTP_CONN_MEMORY  (64 * 1024) /* request line and headers */
#define RELAY_HTTP_STACK        (256 * 1024)
#define RELAY_HTTP_STATS_CONNS  32


static enum MHD_Result relay_http_handler(void *cls,
    struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size,
    void **con_cls);
static int relay_http_begin(relay_listener_t *l, struct MHD_Connection *c,
    const char *url, const char *method, relay_req_t *req,
    relay_reply_t *r);
static void relay_http_finish(relay_listener_t *l, struct MHD_Connection *c,
    relay_req_t *req, relay_reply_t *r);
static enum MHD_Result relay_http_send(struct MHD_Connection *c,
    relay_reply_t *r);
static void relay_http_completed(void *cls, struct MHD_Connection *c,
    void **con_cls, enum MHD_RequestTerminationCode toe);
static void relay_http_notify(void *cls, struct MHD_Connection *c,
    void **socket_context, enum MHD_ConnectionNotificationCode toe);
static void relay_http_log(void *cls, const char *fmt, va_list ap);
static int relay_http_listen(relay_listener_t *l, relayd_t *rd,
    const char *addr, uint64_t max_conns, int stats, char *err,
    size_t errlen);
static void relay_http_client_addr(struct MHD_Connection *c, char *buf,
    size_t len);


static relay_listener_t  relay_api_listener;
static relay_listener_t  relay_stats_listener;

/* the socket context of a connection over the limit */
static char  relay_http_over;


int
relay_http_start(relayd_t *rd, char *err, size_t errlen)
{
    if (relay_http_listen(&relay_api_listener, rd, rd->conf.listen,
                          (uint64_t) rd->conf.max_connections, 0, err,
                          errlen)
        != 0)
    {
        return -1;
    }

    if (strcmp(rd->conf.stats_listen, "off") != 0
        && relay_http_listen(&relay_stats_listener, rd,
                             rd->conf.stats_listen, RELAY_HTTP_STATS_CONNS,
                             1, err, errlen)
           != 0)
    {
        relay_http_stop();
        return -1;
    }

    return 0;
}


static int
relay_http_listen(relay_listener_t *l, relayd_t *rd, const char *addr,
    uint64_t max_conns, int stats, char *err, size_t errlen)
{
    size_t                   socklen;
    unsigned                 flags;
    struct sockaddr_storage  ss;

    if (rf_parse_addr(addr, &ss, &socklen) != 0) {
        snprintf(err, errlen, "invalid address \"%s\"", addr);
        return -1;
    }

    l->rd = rd;
    l->stats = stats;
    l->max_conns = max_conns;
    l->active = 0;

    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD
            | MHD_USE_ERROR_LOG;

    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }

    /* the logger first, so that option errors already go through it */

    l->daemon = MHD_start_daemon(flags, 0, NULL, NULL, relay_http_handler, l,
                    MHD_OPTION_EXTERNAL_LOGGER, relay_http_log, l,
                    MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                    MHD_OPTION_CONNECTION_LIMIT,
                        (unsigned) (max_conns + RELAY_HTTP_SLACK),
                    MHD_OPTION_CONNECTION_TIMEOUT,
                        (unsigned) ((rd->conf.client_timeout + 999) / 1000),
                    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                        (size_t) RELAY_HTTP_CONN_MEMORY,
                    MHD_OPTION_THREAD_STACK_SIZE, (size_t) RELAY_HTTP_STACK,
                    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned) 511,
                    MHD_OPTION_NOTIFY_COMPLETED, relay_http_completed, l,
                    MHD_OPTION_NOTIFY_CONNECTION, relay_http_notify, l,
                    MHD_OPTION_END);

    if (l->daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s (%s): %s", addr,
                 stats ? "stats_listen" : "listen",
                 errno ? strerror(errno) : "libmicrohttpd refused");
        return -1;
    }

    return 0;
}


void
relay_http_stop(void)
{
    if (relay_api_listener.daemon != NULL) {
        MHD_stop_daemon(relay_api_listener.daemon);
        relay_api_listener.daemon = NULL;
    }

    if (relay_stats_listener.daemon != NULL) {
        MHD_stop_daemon(relay_stats_listener.daemon);
        relay_stats_listener.daemon = NULL;
    }
}


/*
 * Connections beyond max_connections (MHD accepts a few more) get a 503
 * with "Connection: close" instead of a silent reset.
 */
static void
relay_http_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
    uint64_t           n;
    relay_listener_t  *l;

    l = cls;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        n = __atomic_add_fetch(&l->active, 1, __ATOMIC_RELAXED);
        *socket_context = (n > l->max_conns) ? &relay_http_over : NULL;
        return;
    }

    (void) __atomic_sub_fetch(&l->active, 1, __ATOMIC_RELAXED);
}


static void
relay_http_log(void *cls, const char *fmt, va_list ap)
{
    char  msg[512];
    int   n;

    /* libmicrohttpd reports what clients do wrong: not our errors */

    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    while (n > 0 && (size_t) n < sizeof(msg) && msg[n - 1] == '\n') {
        msg[--n] = '\0';
    }

    log_info("http: %s", msg);
}


static enum MHD_Result
relay_http_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
    relay_req_t       *req;
    relay_reply_t      r;
    relay_listener_t  *l;
    enum MHD_Result    rc;

    l = cls;
    req = *con_cls;

    memset(&r, 0, sizeof(relay_reply_t));
    rf_buf_init(&r.body);

    if (req == NULL) {
        req = calloc(1, sizeof(relay_req_t));
        if (req == NULL) {
            return MHD_NO;
        }

        rf_buf_init(&req->body);
        *con_cls = req;

        if (relay_http_begin(l, c, url, method, req, &r) != 0) {
            /* an early answer: the body (if any) is not read */
            req->done = 1;
            rc = relay_http_send(c, &r);
            rf_buf_free(&r.body);
            return rc;
        }

        return MHD_YES;
    }

    if (req->done) {
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        if (req->body.len + *upload_data_size > req->max_body) {
            relay_reply_error(&r, 413, "too_large", "the body is larger than "
                              "%zu bytes", req->max_body);
            goto answer;
        }

        if (rf_buf_add(&req->body, upload_data, *upload_data_size) != 0) {
            relay_reply_error(&r, 500, "internal", "out of memory");
            goto answer;
        }

        *upload_data_size = 0;
        return MHD_YES;
    }

    relay_http_finish(l, c, req, &r);

answer:

    *upload_data_size = 0;
    req->done = 1;
    rc = relay_http_send(c, &r);
    rf_buf_free(&r.body);

    return rc;
}


/* route, auth and headers, before any body is read; -1: answer now */

static int
relay_http_begin(relay_listener_t *l, struct MHD_Connection *c,
    const char *url, const char *method, relay_req_t *req, relay_reply_t *r)
{
    const union MHD_ConnectionInfo  *ci;

    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    if (ci != NULL && ci->socket_context == &relay_http_over) {
        r->retry_after = 1;
        relay_reply_error(r, 503, "unavailable", "too many connections "
                          "(max_connections %" PRIu64 ")", l->max_conns);
        return -1;
    }

    if (l->rd->quit) {
        r->retry_after = 1;
        relay_reply_error(r, 503, "unavailable", "shutting down");
        return -1;
    }

    if (l->stats) {
        return relay_http_route_stats(url, method, req, r);
    }

    if (relay_http_route_api(l, url, method, req, r) != 0) {
        return -1;
    }

    if (req->route == RELAY_ROUTE_HEALTHZ) {
        return 0;
    }

    if (relay_http_auth(l->rd, c, req->bucket) != 0) {
        relay_reply_error(r, 401, "unauthorized", "missing or wrong bearer "
                          "token");
        return -1;
    }

    return relay_http_content(c, req, l->rd, r);
}


/* the whole body is there: do the work */

static void
relay_http_finish(relay_listener_t *l, struct MHD_Connection *c,
    relay_req_t *req, relay_reply_t *r)
{
    char          err[512], addr[64];
    size_t        len;
    relayd_t     *rd;
    relay_get_t   q;
    const unsigned char  *page;

    rd = l->rd;

    switch (req->route) {

    case RELAY_ROUTE_POST_RECORDS:
        relay_api_post_records(rd, req->bucket, &req->body, req->encoding,
                               req->ndjson, r);
        return;

    case RELAY_ROUTE_GET_RECORDS:
        if (relay_http_get_query(c, rd, &q, r) == 0) {
            relay_api_get_records(rd, req->bucket, &q, r);
        }
        return;

    case RELAY_ROUTE_ACK:
        relay_api_ack(req->bucket, &req->body, r);
        return;

    case RELAY_ROUTE_HEARTBEAT:
        relay_http_client_addr(c, addr, sizeof(addr));

        if (relay_stats_heartbeat((const char *) req->body.data,
                                  req->body.len, addr, relayd_now_ms(), err,
                                  sizeof(err))
            != 0)
        {
            relay_reply_error(r, 400, "bad_request", "%s", err);
            return;
        }

        r->status = 204;
        return;

    case RELAY_ROUTE_HEALTHZ:
        r->status = 200;
        r->type = "text/plain";
        (void) rf_buf_adds(&r->body, "ok\n");
        return;

    case RELAY_ROUTE_STATS:
        if (relay_stats_json(rd, &r->body) != 0) {
            relay_reply_error(r, 500, "internal", "out of memory");
            return;
        }

        r->status = 200;
        r->type = "application/json";
        return;

    case RELAY_ROUTE_METRICS:
        if (relay_stats_metrics(rd, &r->body) != 0) {
            relay_reply_error(r, 500, "internal", "out of memory");
            return;
        }

        r->status = 200;
        r->type = "text/plain; version=0.0.4";
        return;

    case RELAY_ROUTE_DASHBOARD:
        page = relay_dashboard_html(&len);

        if (rf_buf_add(&r->body, page, len) != 0) {
            relay_reply_error(r, 500, "internal", "out of memory");
            return;
        }

        r->status = 200;
        r->type = "text/html; charset=utf-8";
        return;

    default:
        relay_reply_error(r, 404, "not_found", "no such path");
    }
}


static enum MHD_Result
relay_http_send(struct MHD_Connection *c, relay_reply_t *r)
{
    char                  num[32];
    struct MHD_Response  *resp;
    enum MHD_Result       rc;

    if (r->status == 0) {
        relay_reply_error(r, 500, "internal", "no response");
    }

    resp = MHD_create_response_from_buffer(r->body.len, r->body.data,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        return MHD_NO;
    }

    /* the response owns the bytes now */
    rf_buf_init(&r->body);

    if (r->type != NULL) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    }

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");

    if (r->type != NULL && strncmp(r->type, "text/html", 9) == 0) {
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; "
                                "script-src 'unsafe-inline'; "
                                "style-src 'unsafe-inline'; "
                                "connect-src 'self'; img-src data:");
    }

    if (r->last_seq > 0) {
        snprintf(num, sizeof(num), "%" PRIu64, r->last_seq);
        MHD_add_response_header(resp, "X-RF-Last-Seq", num);
    }

    if (r->retry_after > 0) {
        snprintf(num, sizeof(num), "%" PRIu64, r->retry_after);
        MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, num);
    }

    if (r->status >= 400 && r->status != 404 && r->status != 401) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }

    rc = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);

    return rc;
}


static void
relay_http_completed(void *cls, struct MHD_Connection *c, void **con_cls,
    enum MHD_RequestTerminationCode toe)
{
    relay_req_t  *req;

    req = *con_cls;

    if (req != NULL) {
        rf_buf_free(&req->body);
        free(req);
        *con_cls = NULL;
    }
}


static void
relay_http_client_addr(struct MHD_Connection *c, char *buf, size_t len)
{
    const struct sockaddr           *sa;
    const union MHD_ConnectionInfo  *ci;

    buf[0] = '\0';

    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci == NULL || ci->client_addr == NULL) {
        return;
    }

    sa = ci->client_addr;

    if (sa->sa_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, buf,
                  len);

    } else if (sa->sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr,
                  buf, len);
    }
}
