/*
 * Copyright (C) ReplayForge contributors
 *
 * The forwarder's HTTP client: one libcurl easy handle, kept for
 * keepalive, driven through a multi handle so that a stop interrupts a
 * transfer at once (spool_http_wakeup) instead of at the next progress
 * call.  One thread uses it; only the wakeup may come from another.
 */

#ifndef _SPOOL_HTTP_H_INCLUDED_
#define _SPOOL_HTTP_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "rf_buf.h"


/* what an answer keeps of its body: enough for a JSON error */
#define SPOOL_HTTP_BODY_MAX     4096


typedef struct {
    CURLM                      *multi;
    CURL                       *easy;
    const int                  *stop;       /* read with __atomic */
    rf_buf_t                    body;
    char                        error[CURL_ERROR_SIZE];
} spool_http_t;


typedef struct {
    long                        status;
    int64_t                     retry_after;    /* seconds, -1: none */
    const rf_buf_t             *body;           /* at most BODY_MAX */
    const char                 *error;          /* when -1 was returned */
} spool_http_res_t;


/* 0, or -1 with err set.  stop: a flag that aborts transfers when set. */
int spool_http_init(spool_http_t *h, const int *stop, char *err,
    size_t errlen);
void spool_http_free(spool_http_t *h);

/*
 * POST body to url with headers, within timeout_ms (connecting within
 * connect_ms).  0 when an answer came (any status, in res), or -1 with
 * res->error set: no answer (errno ECANCELED when stopped, else EIO).
 */
int spool_http_post(spool_http_t *h, const char *url,
    struct curl_slist *headers, const void *body, size_t len,
    uint64_t connect_ms, uint64_t timeout_ms, spool_http_res_t *res);

/* From any thread: a transfer in progress looks at the stop flag now. */
void spool_http_wakeup(spool_http_t *h);


#endif /* _SPOOL_HTTP_H_INCLUDED_ */
