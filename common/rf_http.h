/*
 * Copyright (C) ReplayForge contributors
 *
 * The daemons' HTTP client over libcurl, for the spool's forwarder and
 * the player's relay client: one easy handle, kept for keepalive, driven
 * through a multi handle so that a stop interrupts a transfer at once
 * (rf_http_wakeup) instead of at the next progress call.  One thread uses
 * a handle; only the wakeup may come from another.
 */

#ifndef _RF_HTTP_H_INCLUDED_
#define _RF_HTTP_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "rf_buf.h"


typedef struct {
    CURLM                      *multi;
    CURL                       *easy;
    const int                  *stop;       /* read with __atomic */

    /* set after rf_http_init(), before a request */
    size_t                      body_max;   /* 0: no limit */
    unsigned                    body_cut:1; /* over body_max: cut, or fail */
    const char                 *capture;    /* a header with a number */

    rf_buf_t                    body;       /* the answer's; may be taken */
    uint64_t                    captured;
    unsigned                    overflow:1;
    char                        error[CURL_ERROR_SIZE];
} rf_http_client_t;


typedef struct {
    const char                 *url;
    struct curl_slist          *headers;    /* the caller's, NULL: none */
    const void                 *body;       /* NULL: GET, else POST */
    size_t                      len;
    uint64_t                    connect_ms;
    uint64_t                    timeout_ms;
} rf_http_req_t;


typedef struct {
    long                        status;         /* 0: no answer */
    int64_t                     retry_after;    /* seconds, -1: none */
    uint64_t                    captured;       /* 0: no such header */
    const rf_buf_t             *body;           /* the handle's */
    const char                 *error;          /* when -1 was returned */
} rf_http_res_t;


/*
 * 0, or -1 with err set.  agent: the User-Agent; stop: a flag that
 * aborts transfers when set.
 */
int rf_http_init(rf_http_client_t *h, const char *agent, const int *stop,
    char *err, size_t errlen);
void rf_http_free(rf_http_client_t *h);

/*
 * One request.  0 when an answer came (any status, in res), or -1 with
 * res->error set: no answer (errno ECANCELED when stopped, else EIO).
 */
int rf_http_request(rf_http_client_t *h, const rf_http_req_t *req,
    rf_http_res_t *res);

/* From any thread: a transfer in progress looks at the stop flag now. */
void rf_http_wakeup(rf_http_client_t *h);

/* the answer's first bytes as one printable line, without trailing blanks */
void rf_http_body_text(const rf_buf_t *body, char *text, size_t size);


#endif /* _RF_HTTP_H_INCLUDED_ */
