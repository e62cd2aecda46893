/*
 * Copyright (C) ReplayForge contributors
 *
 * Between rf-relayd's HTTP server (relay_http.c: listeners, connections,
 * bodies, responses) and its routing and checks (relay_route.c).
 */

#ifndef _RELAY_ROUTE_H_INCLUDED_
#define _RELAY_ROUTE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "relay_api.h"
#include "relayd.h"


typedef enum {
    RELAY_ROUTE_NONE = 0,
    RELAY_ROUTE_POST_RECORDS,
    RELAY_ROUTE_GET_RECORDS,
    RELAY_ROUTE_ACK,
    RELAY_ROUTE_HEARTBEAT,
    RELAY_ROUTE_HEALTHZ,
    RELAY_ROUTE_STATS,
    RELAY_ROUTE_METRICS,
    RELAY_ROUTE_DASHBOARD
} relay_route_t;


typedef struct {
    relayd_t                   *rd;
    struct MHD_Daemon          *daemon;
    unsigned                    stats:1;
    uint64_t                    max_conns;
    uint64_t                    active;     /* atomic */
} relay_listener_t;


/* one request */
typedef struct {
    relay_route_t               route;
    relay_bucket_t             *bucket;
    rf_buf_t                    body;
    size_t                      max_body;
    char                        encoding[16];
    unsigned                    ndjson:1;
    unsigned                    done:1;     /* a response is queued */
} relay_req_t;


#define RELAY_HTTP_SMALL_BODY   (64 * 1024) /* acks, heartbeats */


/* -1: answer r now (the body is not read) */
int relay_http_route_api(relay_listener_t *l, const char *url,
    const char *method, relay_req_t *req, relay_reply_t *r);
int relay_http_route_stats(const char *url, const char *method,
    relay_req_t *req, relay_reply_t *r);

/* the bucket's token, or any bucket's when only is NULL; 0 or -1 */
int relay_http_auth(relayd_t *rd, struct MHD_Connection *c,
    relay_bucket_t *only);

/* type, encoding and size of a body before it is read; 0 or -1 */
int relay_http_content(struct MHD_Connection *c, relay_req_t *req,
    relayd_t *rd, relay_reply_t *r);

int relay_http_get_query(struct MHD_Connection *c, relayd_t *rd,
    relay_get_t *q, relay_reply_t *r);


#endif /* _RELAY_ROUTE_H_INCLUDED_ */
