
/*
 * Copyright (C) ReplayForge contributors
 *
 * Captures each request (headers, body, status, timing) into the
 * replayforge ring file: the body is copied as it passes the request body
 * filter, the record is written in the log phase.  Capture never blocks,
 * never allocates outside the request pool and never changes a response;
 * a full ring drops the record and counts it.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>

#include <sys/vfs.h>
#include <linux/magic.h>

#include "rf_ring.h"
#include "rf_record.h"


#define NGX_HTTP_RF_OFF         0
#define NGX_HTTP_RF_ON          1
#define NGX_HTTP_RF_VAR         2

#define NGX_HTTP_RF_SAMPLE_MAX  10000   /* sample is kept in 1/100 of % */


typedef struct {
    ngx_str_t                   path;
    size_t                      size;
    ngx_uint_t                  mode;
    rf_ring_t                  *ring;
    ngx_int_t                   upstream_addr_index;
    ngx_int_t                   request_id_index;
} ngx_http_replayforge_main_conf_t;


typedef struct {
    ngx_int_t                   enable;
    ngx_http_complex_value_t   *cond;
    ngx_str_t                   bucket;
    size_t                      max_body;
    ngx_int_t                   sample;
    ngx_array_t                *mask;       /* of ngx_str_t, lower case */
} ngx_http_replayforge_loc_conf_t;


typedef struct {
    u_char                     *body;
    size_t                      body_len;
    size_t                      body_cap;
    off_t                       body_size;
    unsigned                    skip:1;
    unsigned                    body_seen:1;
} ngx_http_replayforge_ctx_t;


static ngx_http_replayforge_ctx_t *ngx_http_replayforge_get_ctx(
    ngx_http_request_t *r, ngx_http_replayforge_loc_conf_t *rlcf);
static ngx_int_t ngx_http_replayforge_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static ngx_int_t ngx_http_replayforge_copy_body(ngx_http_request_t *r,
    ngx_http_replayforge_ctx_t *ctx, size_t max, u_char *p, size_t n);
static ngx_int_t ngx_http_replayforge_log_handler(ngx_http_request_t *r);
static ngx_int_t ngx_http_replayforge_headers(ngx_http_request_t *r,
    ngx_http_replayforge_loc_conf_t *rlcf, rf_http_t *h);
static void ngx_http_replayforge_addresses(ngx_connection_t *c, rf_http_t *h,
    u_char *client, u_char *server);
static void ngx_http_replayforge_variable(ngx_http_request_t *r,
    ngx_int_t index, rf_str_t *s);
static ngx_int_t ngx_http_replayforge_status_handler(ngx_http_request_t *r);

static void *ngx_http_replayforge_create_main_conf(ngx_conf_t *cf);
static char *ngx_http_replayforge_init_main_conf(ngx_conf_t *cf, void *conf);
static void *ngx_http_replayforge_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_replayforge_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_replayforge_ring(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_replayforge(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_replayforge_bucket(ngx_conf_t *cf, void *post,
    void *data);
static char *ngx_http_replayforge_sample(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_replayforge_mask_header(ngx_conf_t *cf,
    ngx_command_t *cmd, void *conf);
static char *ngx_http_replayforge_status(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static void ngx_http_replayforge_ring_cleanup(void *data);
static ngx_int_t ngx_http_replayforge_init(ngx_conf_t *cf);
static ngx_int_t ngx_http_replayforge_init_process(ngx_cycle_t *cycle);


static ngx_conf_post_handler_pt  ngx_http_replayforge_bucket_p =
    ngx_http_replayforge_bucket;


static ngx_command_t  ngx_http_replayforge_commands[] = {

    { ngx_string("replayforge_ring"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE123,
      ngx_http_replayforge_ring,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("replayforge"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_replayforge,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("replayforge_bucket"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_replayforge_loc_conf_t, bucket),
      &ngx_http_replayforge_bucket_p },

    { ngx_string("replayforge_max_body"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_replayforge_loc_conf_t, max_body),
      NULL },

    { ngx_string("replayforge_sample"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_replayforge_sample,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_replayforge_loc_conf_t, sample),
      NULL },

    { ngx_string("replayforge_mask_header"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_http_replayforge_mask_header,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("replayforge_status"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_replayforge_status,
      0,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_replayforge_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_replayforge_init,             /* postconfiguration */

    ngx_http_replayforge_create_main_conf, /* create main configuration */
    ngx_http_replayforge_init_main_conf,   /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_replayforge_create_loc_conf,  /* create location configuration */
    ngx_http_replayforge_merge_loc_conf    /* merge location configuration */
};


ngx_module_t  ngx_http_replayforge_module = {
    NGX_MODULE_V1,
    &ngx_http_replayforge_module_ctx,      /* module context */
    ngx_http_replayforge_commands,         /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    ngx_http_replayforge_init_process,     /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_http_request_body_filter_pt   ngx_http_next_request_body_filter;


/*
 * The per-request state, made on first use: the sampling decision is taken
 * once, so a request's body and its record always agree.
 */
static ngx_http_replayforge_ctx_t *
ngx_http_replayforge_get_ctx(ngx_http_request_t *r,
    ngx_http_replayforge_loc_conf_t *rlcf)
{
    ngx_http_replayforge_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_replayforge_module);
    if (ctx) {
        return ctx;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_replayforge_ctx_t));
    if (ctx == NULL) {
        return NULL;
    }

    if (rlcf->sample < NGX_HTTP_RF_SAMPLE_MAX
        && (ngx_int_t) (ngx_random() % NGX_HTTP_RF_SAMPLE_MAX) >= rlcf->sample)
    {
        ctx->skip = 1;
    }

    ngx_http_set_ctx(r, ctx, ngx_http_replayforge_module);

    return ctx;
}


static ngx_int_t
ngx_http_replayforge_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_chain_t                      *cl;
    ngx_http_replayforge_ctx_t       *ctx;
    ngx_http_replayforge_loc_conf_t  *rlcf;

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_replayforge_module);

    if (rlcf->enable == NGX_HTTP_RF_OFF || r != r->main) {
        return ngx_http_next_request_body_filter(r, in);
    }

    ctx = ngx_http_replayforge_get_ctx(r, rlcf);

    if (ctx == NULL || ctx->skip) {
        return ngx_http_next_request_body_filter(r, in);
    }

    ctx->body_seen = 1;

    for (cl = in; cl; cl = cl->next) {
        if (!ngx_buf_in_memory(cl->buf)) {
            continue;
        }

        if (ngx_http_replayforge_copy_body(r, ctx, rlcf->max_body,
                                           cl->buf->pos,
                                           cl->buf->last - cl->buf->pos)
            != NGX_OK)
        {
            /* no memory for the copy: the request goes on uncaptured */
            ctx->skip = 1;
            break;
        }
    }

    return ngx_http_next_request_body_filter(r, in);
}


static ngx_int_t
ngx_http_replayforge_copy_body(ngx_http_request_t *r,
    ngx_http_replayforge_ctx_t *ctx, size_t max, u_char *p, size_t n)
{
    size_t   want, cap;
    u_char  *body;

    ctx->body_size += n;

    if (ctx->body_len >= max || n == 0) {
        return NGX_OK;
    }

    want = ngx_min(n, max - ctx->body_len);

    if (ctx->body_cap - ctx->body_len < want) {

        /* size the copy by Content-Length when known, else grow by 2 */

        if (r->headers_in.content_length_n > 0 && ctx->body_cap == 0) {
            cap = ngx_min((size_t) r->headers_in.content_length_n, max);

        } else {
            cap = ngx_max(ctx->body_cap * 2, 1024);
        }

        cap = ngx_min(ngx_max(cap, ctx->body_len + want), max);

        body = ngx_pnalloc(r->pool, cap);
        if (body == NULL) {
            return NGX_ERROR;
        }

        if (ctx->body_len) {
            ngx_memcpy(body, ctx->body, ctx->body_len);
        }

        ctx->body = body;
        ctx->body_cap = cap;
    }

    ngx_memcpy(ctx->body + ctx->body_len, p, want);
    ctx->body_len += want;

    return NGX_OK;
}


static ngx_int_t
ngx_http_replayforge_log_handler(ngx_http_request_t *r)
{
    off_t                              cl;
    size_t                             size, len;
    ngx_msec_int_t                     ms;
    ngx_str_t                          val;
    ngx_time_t                        *tp;
    rf_http_t                          h;
    unsigned char                     *p;
    rf_ring_slot_t                     slot;
    ngx_connection_t                  *c;
    ngx_http_replayforge_ctx_t        *ctx;
    ngx_http_replayforge_loc_conf_t   *rlcf;
    ngx_http_replayforge_main_conf_t  *rmcf;
    u_char                             client[NGX_SOCKADDR_STRLEN];
    u_char                             server[NGX_SOCKADDR_STRLEN];

    rlcf = ngx_http_get_module_loc_conf(r, ngx_http_replayforge_module);

    if (rlcf->enable == NGX_HTTP_RF_OFF) {
        return NGX_OK;
    }

    ctx = ngx_http_replayforge_get_ctx(r, rlcf);

    if (ctx == NULL || ctx->skip) {
        return NGX_OK;
    }

    if (rlcf->enable == NGX_HTTP_RF_VAR) {
        if (ngx_http_complex_value(r, rlcf->cond, &val) != NGX_OK) {
            return NGX_OK;
        }

        if (val.len == 0 || (val.len == 1 && val.data[0] == '0')) {
            return NGX_OK;
        }
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_replayforge_module);
    c = r->connection;

    ngx_memzero(&h, sizeof(rf_http_t));

    h.time_ns = (uint64_t) r->start_sec * 1000000000
                + (uint64_t) r->start_msec * 1000000;

    h.bucket.data = rlcf->bucket.data;
    h.bucket.len = rlcf->bucket.len;
    h.method.data = r->method_name.data;
    h.method.len = r->method_name.len;
    h.uri.data = r->unparsed_uri.data;
    h.uri.len = r->unparsed_uri.len;
    h.version.data = r->http_protocol.data;
    h.version.len = r->http_protocol.len;
    h.host.data = r->headers_in.server.data;
    h.host.len = r->headers_in.server.len;

#if (NGX_HTTP_SSL)
    if (c->ssl) {
        h.scheme.data = (u_char *) "https";
        h.scheme.len = 5;
    } else
#endif
    {
        h.scheme.data = (u_char *) "http";
        h.scheme.len = 4;
    }

    ngx_http_replayforge_addresses(c, &h, client, server);

    if (ngx_http_replayforge_headers(r, rlcf, &h) != NGX_OK) {
        return NGX_OK;
    }

    h.body.data = ctx->body;
    h.body.len = ctx->body_len;
    h.body_size = ctx->body_size;

    if (!ctx->body_seen) {
        /*
         * The body was never read (discarded): say so and keep its size.
         * Discarding zeroes content_length_n, so ask the header itself.
         */
        cl = r->headers_in.content_length
             ? ngx_atoof(r->headers_in.content_length->value.data,
                         r->headers_in.content_length->value.len)
             : -1;

        if (cl > 0 || r->headers_in.chunked) {
            h.body_size = ngx_max(cl, 0);
            h.body_truncated = 1;
        }

    } else if ((off_t) ctx->body_len < ctx->body_size) {
        h.body_truncated = 1;
    }

    if (r->err_status) {
        h.status = r->err_status;

    } else if (r->headers_out.status) {
        h.status = r->headers_out.status;

    } else if (r->http_version == NGX_HTTP_VERSION_9) {
        h.status = 9;
    }

    h.bytes_sent = c->sent;

    tp = ngx_timeofday();
    ms = (ngx_msec_int_t) ((tp->sec - r->start_sec) * 1000
                           + (tp->msec - r->start_msec));
    h.duration_us = (uint64_t) ngx_max(ms, 0) * 1000;

    ngx_http_replayforge_variable(r, rmcf->upstream_addr_index, &h.upstream);

    /*
     * $request_id only when the request already has one (the configuration
     * used it, e.g. to pass it upstream): making one calls OpenSSL's
     * RAND_bytes, which costs more than all the rest of the capture.
     */
    if (r->variables[rmcf->request_id_index].valid) {
        ngx_http_replayforge_variable(r, rmcf->request_id_index,
                                      &h.request_id);
    }

    size = rf_http_size(&h);

    if (size > UINT32_MAX) {
        return NGX_OK;
    }

    p = rf_ring_reserve(rmcf->ring, (uint32_t) size, &slot);
    if (p == NULL) {
        ngx_log_debug1(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "replayforge: record of %uz bytes dropped", size);
        return NGX_OK;
    }

    len = rf_http_encode(&h, p, size);

    if (len != size) {
        rf_ring_abort(rmcf->ring, &slot);
        return NGX_OK;
    }

    rf_ring_commit(rmcf->ring, &slot, (uint32_t) len);

    return NGX_OK;
}


static ngx_int_t
ngx_http_replayforge_headers(ngx_http_request_t *r,
    ngx_http_replayforge_loc_conf_t *rlcf, rf_http_t *h)
{
    ngx_uint_t        i, j, n;
    ngx_str_t        *mask;
    rf_header_t      *hd;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *header;

    static u_char     masked[] = "***";

    n = 0;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        n += part->nelts;
    }

    if (n == 0) {
        return NGX_OK;
    }

    hd = ngx_palloc(r->pool, n * sizeof(rf_header_t));
    if (hd == NULL) {
        return NGX_ERROR;
    }

    h->headers = hd;
    mask = rlcf->mask ? rlcf->mask->elts : NULL;

    for (part = &r->headers_in.headers.part; part; part = part->next) {
        header = part->elts;

        for (i = 0; i < part->nelts; i++) {
            hd->name.data = header[i].key.data;
            hd->name.len = header[i].key.len;
            hd->value.data = header[i].value.data;
            hd->value.len = header[i].value.len;

            for (j = 0; mask && j < rlcf->mask->nelts; j++) {
                if (mask[j].len == header[i].key.len
                    && ngx_strncmp(mask[j].data, header[i].lowcase_key,
                                   mask[j].len) == 0)
                {
                    hd->value.data = masked;
                    hd->value.len = sizeof(masked) - 1;
                    break;
                }
            }

            hd++;
        }
    }

    h->nheaders = n;

    return NGX_OK;
}


/*
 * "addr:port" of both ends, from the text nginx already made: the client's
 * address text plus its port, the listening socket's own text unless it is
 * a wildcard one.  Formatting sockaddrs anew on every request cost more
 * than encoding the whole record.
 */
static void
ngx_http_replayforge_addresses(ngx_connection_t *c, rf_http_t *h,
    u_char *client, u_char *server)
{
    in_port_t  port;

    port = ngx_inet_get_port(c->sockaddr);

    if (port && c->addr_text.len) {
        h->client.data = client;
        h->client.len = ngx_snprintf(client, NGX_SOCKADDR_STRLEN,
                                     c->sockaddr->sa_family == AF_INET6
                                     ? "[%V]:%d" : "%V:%d",
                                     &c->addr_text, (int) port)
                        - client;

    } else {
        h->client.data = client;
        h->client.len = ngx_sock_ntop(c->sockaddr, c->socklen, client,
                                      NGX_SOCKADDR_STRLEN, 1);
    }

    if (c->listening && !c->listening->wildcard
        && c->listening->addr_text.len)
    {
        h->server.data = c->listening->addr_text.data;
        h->server.len = c->listening->addr_text.len;
        return;
    }

    if (ngx_connection_local_sockaddr(c, NULL, 0) == NGX_OK) {
        h->server.data = server;
        h->server.len = ngx_sock_ntop(c->local_sockaddr, c->local_socklen,
                                      server, NGX_SOCKADDR_STRLEN, 1);
    }
}


static void
ngx_http_replayforge_variable(ngx_http_request_t *r, ngx_int_t index,
    rf_str_t *s)
{
    ngx_http_variable_value_t  *vv;

    if (index == NGX_ERROR) {
        return;
    }

    vv = ngx_http_get_indexed_variable(r, index);

    if (vv && !vv->not_found && vv->len
        && !(vv->len == 1 && vv->data[0] == '-'))
    {
        s->data = vv->data;
        s->len = vv->len;
    }
}


static ngx_int_t
ngx_http_replayforge_status_handler(ngx_http_request_t *r)
{
    size_t                             len;
    ngx_int_t                          rc;
    ngx_buf_t                         *b;
    ngx_chain_t                        out;
    rf_ring_stats_t                    st;
    ngx_http_replayforge_main_conf_t  *rmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    rmcf = ngx_http_get_module_main_conf(r, ngx_http_replayforge_module);

    if (rmcf->ring == NULL) {
        return NGX_HTTP_SERVICE_UNAVAILABLE;
    }

    rf_ring_get_stats(rmcf->ring, &st);

    len = sizeof("{\"ring\":\"\",\"size\":,\"generation\":,\"used\":,"
                 "\"written\":,\"written_bytes\":,\"dropped_full\":,"
                 "\"dropped_too_big\":,\"consumed\":,\"skipped\":,"
                 "\"skipped_bytes\":}\n")
          + ngx_escape_json(NULL, rmcf->path.data, rmcf->path.len)
          + rmcf->path.len + 11 * NGX_INT64_LEN;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    b->last = ngx_cpymem(b->last, "{\"ring\":\"", 9);
    b->last = (u_char *) ngx_escape_json(b->last, rmcf->path.data,
                                         rmcf->path.len);
    b->last = ngx_sprintf(b->last,
                          "\",\"size\":%uL,\"generation\":%uL,\"used\":%uL,"
                          "\"written\":%uL,\"written_bytes\":%uL,"
                          "\"dropped_full\":%uL,\"dropped_too_big\":%uL,"
                          "\"consumed\":%uL,\"skipped\":%uL,"
                          "\"skipped_bytes\":%uL}\n",
                          st.size, st.generation, st.head - st.tail,
                          st.written, st.written_bytes, st.dropped_full,
                          st.dropped_too_big, st.consumed, st.skipped,
                          st.skipped_bytes);
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static void *
ngx_http_replayforge_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_replayforge_main_conf_t  *rmcf;

    rmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_replayforge_main_conf_t));
    if (rmcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rmcf->path = { 0, NULL };
     *     rmcf->ring = NULL;
     */

    rmcf->upstream_addr_index = NGX_ERROR;
    rmcf->request_id_index = NGX_ERROR;

    return rmcf;
}


static char *
ngx_http_replayforge_init_main_conf(ngx_conf_t *cf, void *conf)
{
    ngx_http_replayforge_main_conf_t  *rmcf = conf;

    ngx_str_t  name;

    ngx_str_set(&name, "upstream_addr");
    rmcf->upstream_addr_index = ngx_http_get_variable_index(cf, &name);

    ngx_str_set(&name, "request_id");
    rmcf->request_id_index = ngx_http_get_variable_index(cf, &name);

    if (rmcf->upstream_addr_index == NGX_ERROR
        || rmcf->request_id_index == NGX_ERROR)
    {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static void *
ngx_http_replayforge_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_replayforge_loc_conf_t  *rlcf;

    rlcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_replayforge_loc_conf_t));
    if (rlcf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     rlcf->cond = NULL;
     *     rlcf->bucket = { 0, NULL };
     */

    rlcf->enable = NGX_CONF_UNSET;
    rlcf->max_body = NGX_CONF_UNSET_SIZE;
    rlcf->sample = NGX_CONF_UNSET;
    rlcf->mask = NGX_CONF_UNSET_PTR;

    return rlcf;
}


static char *
ngx_http_replayforge_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_replayforge_loc_conf_t *prev = parent;
    ngx_http_replayforge_loc_conf_t *conf = child;

    ngx_http_replayforge_main_conf_t  *rmcf;

    if (conf->enable == NGX_CONF_UNSET) {
        conf->enable = prev->enable;
        conf->cond = prev->cond;
    }

    if (conf->enable == NGX_CONF_UNSET) {
        conf->enable = NGX_HTTP_RF_OFF;
    }

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_replayforge_module);

    if (conf->enable != NGX_HTTP_RF_OFF && rmcf->ring == NULL) {
        /* refuse rather than silently capture nothing */
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"replayforge\" is enabled but "
                           "\"replayforge_ring\" is not set");
        return NGX_CONF_ERROR;
    }

    ngx_conf_merge_str_value(conf->bucket, prev->bucket, "default");
    ngx_conf_merge_size_value(conf->max_body, prev->max_body, 64 * 1024);
    ngx_conf_merge_value(conf->sample, prev->sample, NGX_HTTP_RF_SAMPLE_MAX);
    ngx_conf_merge_ptr_value(conf->mask, prev->mask, NULL);

    return NGX_CONF_OK;
}


/* replayforge_ring path [size=64m] [mode=0600]; */

static char *
ngx_http_replayforge_ring(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_replayforge_main_conf_t *rmcf = conf;

    char                 err[256];
    off_t                size;
    struct statfs        sfs;
    ngx_str_t           *value, s;
    ngx_uint_t           i;
    ngx_pool_cleanup_t  *cln;

    if (rmcf->path.data) {
        return "is duplicate";
    }

    value = cf->args->elts;

    rmcf->path = value[1];
    rmcf->size = 64 * 1024 * 1024;
    rmcf->mode = 0600;

    if (ngx_conf_full_name(cf->cycle, &rmcf->path, 0) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    for (i = 2; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "size=", 5) == 0) {
            s.data = value[i].data + 5;
            s.len = value[i].len - 5;

            /* k, m and g: ngx_parse_size() stops at m */

            size = ngx_parse_offset(&s);

            if (size == NGX_ERROR
                || rf_ring_size_normalize((uint64_t) size) == 0)
            {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "invalid ring size \"%V\", "
                                   "must be between 64k and 64g", &value[i]);
                return NGX_CONF_ERROR;
            }

            rmcf->size = (size_t) size;
            continue;
        }

        if (ngx_strncmp(value[i].data, "mode=", 5) == 0) {
            /* octal, like chmod: 0600, 0640, 0660 */
            if (value[i].len < 7 || value[i].len > 9
                || value[i].data[5] != '0')
            {
                goto invalid;
            }

            rmcf->mode = 0;

            for (s.data = value[i].data + 6;
                 s.data < value[i].data + value[i].len;
                 s.data++)
            {
                if (*s.data < '0' || *s.data > '7') {
                    goto invalid;
                }
                rmcf->mode = rmcf->mode * 8 + (*s.data - '0');
            }

            continue;
        }

        goto invalid;
    }

    rmcf->ring = ngx_pcalloc(cf->pool, sizeof(rf_ring_t));
    if (rmcf->ring == NULL) {
        return NGX_CONF_ERROR;
    }

    if (ngx_test_config) {
        /* do not create or touch the ring when only testing */
        return NGX_CONF_OK;
    }

    /*
     * Mapped here, in the master, before workers fork; on reload the new
     * cycle maps the same file again (its records survive) and the old
     * mapping goes with the old cycle's pool.
     */

    if (rf_ring_open_or_create(rmcf->ring, (char *) rmcf->path.data,
                               rmcf->size, (mode_t) rmcf->mode,
                               err, sizeof(err))
        != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "replayforge_ring \"%V\": %s", &rmcf->path, err);
        return NGX_CONF_ERROR;
    }

    /*
     * A shared mapping of a disk file is written back by the kernel, and a
     * worker storing to a page under writeback can stall: say so.
     */
    if (fstatfs(rmcf->ring->fd, &sfs) == 0 && sfs.f_type != TMPFS_MAGIC) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "replayforge_ring \"%V\" is not on tmpfs, "
                           "workers may stall on disk writeback; "
                           "use /dev/shm", &rmcf->path);
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        rf_ring_close(rmcf->ring);
        return NGX_CONF_ERROR;
    }

    cln->handler = ngx_http_replayforge_ring_cleanup;
    cln->data = rmcf->ring;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid parameter \"%V\"", &value[i]);

    return NGX_CONF_ERROR;
}


static void
ngx_http_replayforge_ring_cleanup(void *data)
{
    rf_ring_t  *ring = data;

    rf_ring_close(ring);
}


/* replayforge on | off | $var; */

static char *
ngx_http_replayforge(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_replayforge_loc_conf_t *rlcf = conf;

    ngx_str_t                         *value;
    ngx_http_compile_complex_value_t   ccv;

    if (rlcf->enable != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "on") == 0) {
        rlcf->enable = NGX_HTTP_RF_ON;
        return NGX_CONF_OK;
    }

    if (ngx_strcmp(value[1].data, "off") == 0) {
        rlcf->enable = NGX_HTTP_RF_OFF;
        return NGX_CONF_OK;
    }

    if (value[1].data[0] != '$') {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid value \"%V\", "
                           "it must be \"on\", \"off\" or a variable",
                           &value[1]);
        return NGX_CONF_ERROR;
    }

    rlcf->cond = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (rlcf->cond == NULL) {
        return NGX_CONF_ERROR;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = &value[1];
    ccv.complex_value = rlcf->cond;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    rlcf->enable = NGX_HTTP_RF_VAR;

    return NGX_CONF_OK;
}


static char *
ngx_http_replayforge_bucket(ngx_conf_t *cf, void *post, void *data)
{
    ngx_str_t  *name = data;

    u_char  *p;

    if (name->len == 0 || name->len > 64) {
        goto invalid;
    }

    for (p = name->data; p < name->data + name->len; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')
              || (*p >= '0' && *p <= '9') || *p == '.' || *p == '_'
              || *p == '-'))
        {
            goto invalid;
        }
    }

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid bucket name \"%V\", it must be 1 to 64 "
                       "characters of A-Z a-z 0-9 . _ -", name);

    return NGX_CONF_ERROR;
}


/* replayforge_sample 12.5%; : kept in hundredths of a percent */

static char *
ngx_http_replayforge_sample(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_replayforge_loc_conf_t *rlcf = conf;

    u_char     *p, *last;
    ngx_int_t   v, frac;
    ngx_str_t  *value;

    if (rlcf->sample != NGX_CONF_UNSET) {
        return "is duplicate";
    }

    value = cf->args->elts;

    p = value[1].data;
    last = p + value[1].len;

    if (last > p && last[-1] == '%') {
        last--;
    }

    v = 0;
    frac = 0;

    if (p == last || *p < '0' || *p > '9') {
        goto invalid;
    }

    while (p < last && *p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > 100) {
            goto invalid;
        }
    }

    if (p < last && *p == '.') {
        p++;

        if (p == last || last - p > 2) {
            goto invalid;
        }

        frac = (*p++ - '0') * 10;
        if (frac < 0 || frac > 90) {
            goto invalid;
        }

        if (p < last) {
            if (*p < '0' || *p > '9') {
                goto invalid;
            }
            frac += *p++ - '0';
        }
    }

    if (p != last || v * 100 + frac > NGX_HTTP_RF_SAMPLE_MAX) {
        goto invalid;
    }

    rlcf->sample = v * 100 + frac;

    return NGX_CONF_OK;

invalid:

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "invalid sample \"%V\", it must be a percentage "
                       "from 0 to 100 with up to two decimals", &value[1]);

    return NGX_CONF_ERROR;
}


static char *
ngx_http_replayforge_mask_header(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_replayforge_loc_conf_t *rlcf = conf;

    ngx_str_t   *value, *name;
    ngx_uint_t   i;

    if (rlcf->mask == NGX_CONF_UNSET_PTR) {
        rlcf->mask = ngx_array_create(cf->pool, 4, sizeof(ngx_str_t));
        if (rlcf->mask == NULL) {
            return NGX_CONF_ERROR;
        }
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {
        name = ngx_array_push(rlcf->mask);
        if (name == NULL) {
            return NGX_CONF_ERROR;
        }

        name->len = value[i].len;
        name->data = ngx_pnalloc(cf->pool, name->len);
        if (name->data == NULL) {
            return NGX_CONF_ERROR;
        }

        ngx_strlow(name->data, value[i].data, name->len);
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_replayforge_status(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_replayforge_status_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_replayforge_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt               *h;
    ngx_http_core_main_conf_t         *cmcf;
    ngx_http_replayforge_main_conf_t  *rmcf;

    rmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_replayforge_module);

    if (rmcf->ring == NULL) {
        return NGX_OK;
    }

    ngx_http_next_request_body_filter = ngx_http_top_request_body_filter;
    ngx_http_top_request_body_filter = ngx_http_replayforge_body_filter;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_replayforge_log_handler;

    return NGX_OK;
}


/*
 * A worker maps every page of the ring into its page tables before it takes
 * requests: fork does not copy them for a shared file mapping, so each page
 * would otherwise cost a fault on the request path the first time a record
 * lands on it.  The ring is the one this cycle mapped, so after a reload
 * the new workers populate the new mapping.
 */
static ngx_int_t
ngx_http_replayforge_init_process(ngx_cycle_t *cycle)
{
    ngx_err_t                          err;
    ngx_uint_t                         level;
    ngx_http_replayforge_main_conf_t  *rmcf;

    if (ngx_process != NGX_PROCESS_WORKER
        && ngx_process != NGX_PROCESS_SINGLE)
    {
        /* the cache manager and loader never write the ring */
        return NGX_OK;
    }

    rmcf = ngx_http_cycle_get_module_main_conf(cycle,
                                               ngx_http_replayforge_module);
    if (rmcf == NULL || rmcf->ring == NULL || rmcf->ring->hdr == NULL) {
        return NGX_OK;
    }

    if (rf_ring_populate(rmcf->ring, 1) == 0) {
        ngx_log_debug2(NGX_LOG_DEBUG_HTTP, cycle->log, 0,
                       "replayforge_ring \"%V\": %uz bytes populated",
                       &rmcf->path, rmcf->ring->map_size);
        return NGX_OK;
    }

    err = ngx_errno;

    /* EINVAL: a kernel before 5.14, the ring works without */

    level = (err == NGX_EINVAL) ? NGX_LOG_INFO : NGX_LOG_WARN;

    ngx_log_error(level, cycle->log, err,
                  "replayforge_ring \"%V\": cannot pre-fault the ring, "
                  "workers will fault it in as they write", &rmcf->path);

    return NGX_OK;
}
