/*
 * Copyright (C) ReplayForge contributors
 *
 * Between the HTTP server (relay_http.c: listeners, connections, routing,
 * auth, errors) and the API handlers (relay_api.c: batches in and out,
 * acks).  A handler fills a relay_reply_t; the server turns it into the
 * response.
 */

#ifndef _RELAY_API_H_INCLUDED_
#define _RELAY_API_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "relayd.h"


#define RELAY_READ_MAX_DEFAULT  1000
#define RELAY_READ_MAX          100000
#define RELAY_READ_BYTES        (16 * 1024 * 1024)


typedef struct {
    unsigned                    status;
    const char                 *type;       /* Content-Type */
    rf_buf_t                    body;
    uint64_t                    last_seq;   /* X-RF-Last-Seq when > 0 */
    uint64_t                    retry_after; /* s, with 429 and 503 */
} relay_reply_t;


/* What a GET .../records asked for, parsed from the query string. */
typedef struct {
    const char                 *consumer;   /* NULL: none */
    uint64_t                    max;
    uint64_t                    after;
    unsigned                    has_after:1;
    unsigned                    ndjson:1;
    uint64_t                    wait_ms;
} relay_get_t;


/* An error reply: {"error":code,"detail":"..."}; always returns 0. */
int relay_reply_error(relay_reply_t *r, unsigned status, const char *code,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/*
 * POST .../records: body is the request body as received, encoding its
 * Content-Encoding ("" for none), ndjson whether it is NDJSON.
 */
int relay_api_post_records(relayd_t *rd, relay_bucket_t *b,
    rf_buf_t *body, const char *encoding, int ndjson, relay_reply_t *r);

int relay_api_get_records(relayd_t *rd, relay_bucket_t *b,
    const relay_get_t *q, relay_reply_t *r);

int relay_api_ack(relay_bucket_t *b, const rf_buf_t *body,
    relay_reply_t *r);


#endif /* _RELAY_API_H_INCLUDED_ */
