/*
 * Copyright (C) ReplayForge contributors
 *
 * The http sink's requests: an easy handle set up once per slot, and one
 * record turned into a request on it: the original method, the uri under
 * the target's base path, the captured headers in order and with
 * duplicates less the hop-by-hop ones, and the body byte-exact with a
 * recomputed Content-Length; nothing libcurl would add on its own
 * (Accept, Content-Type, Expect: 100-continue, a proxy from the
 * environment).
 */

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rf_log.h"
#include "player.h"
#include "player_sink_http.h"


#define PLAYER_HTTP_CONN_TOKENS 16


static size_t player_sink_http_discard(char *data, size_t size, size_t n,
    void *arg);
static int player_sink_http_headers(player_http_ctx_t *ctx,
    player_http_slot_t *slot, const rf_rec_t *rec, int body);
static int player_sink_http_hop(const rf_str_t *name,
    const rf_str_t *tokens, size_t ntokens);
static int player_sink_http_append(player_http_ctx_t *ctx,
    player_http_slot_t *slot, const rf_str_t *name, const rf_str_t *value);
static int player_sink_http_raw(player_http_slot_t *slot, const char *line);
static int player_sink_http_streq(const rf_str_t *s, const char *lit);


/* never forwarded: they describe the captured connection, not the request */

static const char *const  player_sink_http_hop_by_hop[] = {
    "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding",
    "TE", "Trailer", "Upgrade", "Proxy-Authorization", "Content-Length",
    "Expect", NULL
};


int
player_sink_http_slot_init(player_http_ctx_t *ctx, player_http_slot_t *slot)
{
    CURL                *e;
    player_http_conf_t  *c;

    c = ctx->conf;

    e = curl_easy_init();
    if (e == NULL) {
        return -1;
    }

    slot->easy = e;

    /*
     * No proxy from the environment, the uri's "/../" as captured, no
     * compression asked for that the original did not ask for.
     */

    if (curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_PRIVATE, slot) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_ERRORBUFFER, slot->error) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_WRITEFUNCTION,
                            player_sink_http_discard) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_PROXY, "") != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_PATH_AS_IS, 1L) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_HTTP_VERSION,
                            (long) CURL_HTTP_VERSION_1_1) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long) c->timeout)
           != CURLE_OK
        || curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long) c->timeout)
           != CURLE_OK)
    {
        return -1;
    }

    return 0;
}


static size_t
player_sink_http_discard(char *data, size_t size, size_t n, void *arg)
{
    return size * n;
}


/* NULL, or why the record cannot be replayed at all */

const char *
player_sink_http_start(player_http_ctx_t *ctx, player_http_slot_t *slot,
    const rf_rec_t *rec)
{
    int                    body;
    size_t                 i;
    rf_str_t               method, uri, data;
    CURLMcode              mc;
    player_http_target_t  *tg;

    static const char      empty[1] = "";

    tg = &ctx->targets[slot->target];

    if (rf_rec_field(rec, RF_F_METHOD, &method) != 0
        || method.len == 0 || method.len > PLAYER_HTTP_METHOD_MAX)
    {
        return "no valid method";
    }

    for (i = 0; i < method.len; i++) {
        if (method.data[i] <= ' ' || method.data[i] >= 0x7f
            || strchr("()<>@,;:\\\"/[]?={}", method.data[i]) != NULL)
        {
            return "no valid method";
        }
    }

    memcpy(slot->method, method.data, method.len);
    slot->method[method.len] = '\0';

    if (rf_rec_field(rec, RF_F_URI, &uri) != 0 || uri.len == 0
        || uri.data[0] != '/')
    {
        return "no origin-form uri";
    }

    for (i = 0; i < uri.len; i++) {
        if (uri.data[i] <= ' ' || uri.data[i] == 0x7f) {
            return "uri with spaces or control characters";
        }
    }

    if (rf_rec_field(rec, RF_F_BODY, &data) != 0) {
        data.len = 0;
        data.data = (const unsigned char *) empty;
    }

    if (rec->flags & RF_REC_F_BODY_TRUNCATED) {
        player_http_add(&ctx->truncated, 1);
    }

    /*
     * A body is sent (with its Content-Length) when there is one, or
     * the original said "Content-Length" (0), or the method has one.
     */

    body = data.len > 0
           || strcmp(slot->method, "POST") == 0
           || strcmp(slot->method, "PUT") == 0
           || strcmp(slot->method, "PATCH") == 0;

    rf_buf_reset(&ctx->line);

    if (rf_buf_adds(&ctx->line, tg->base) != 0
        || rf_buf_add(&ctx->line, uri.data, uri.len) != 0
        || rf_buf_addc(&ctx->line, '\0') != 0)
    {
        return "out of memory";
    }

    if (curl_easy_setopt(slot->easy, CURLOPT_URL, (char *) ctx->line.data)
        != CURLE_OK)
    {
        return "out of memory";
    }

    switch (player_sink_http_headers(ctx, slot, rec, body)) {
    case 0:
        break;
    case 1:
        body = 1;                       /* "Content-Length: 0" */
        break;
    default:
        return "out of memory";
    }

    if (body) {
        if (curl_easy_setopt(slot->easy, CURLOPT_NOBODY, 0L) != CURLE_OK
            || curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDSIZE_LARGE,
                                (curl_off_t) data.len) != CURLE_OK
            || curl_easy_setopt(slot->easy, CURLOPT_POSTFIELDS, data.data)
               != CURLE_OK)
        {
            return "out of memory";
        }

    } else if (curl_easy_setopt(slot->easy, CURLOPT_HTTPGET, 1L) != CURLE_OK
               || curl_easy_setopt(slot->easy, CURLOPT_NOBODY,
                                   strcmp(slot->method, "HEAD") == 0 ? 1L
                                                                     : 0L)
                  != CURLE_OK)
    {
        return "out of memory";
    }

    if (curl_easy_setopt(slot->easy, CURLOPT_CUSTOMREQUEST, slot->method)
        != CURLE_OK
        || curl_easy_setopt(slot->easy, CURLOPT_HTTPHEADER, slot->headers)
           != CURLE_OK)
    {
        return "out of memory";
    }

    slot->error[0] = '\0';

    mc = curl_multi_add_handle(ctx->multi, slot->easy);
    if (mc != CURLM_OK) {
        return curl_multi_strerror(mc);
    }

    return NULL;
}


/*
 * The captured headers, in order and with duplicates, less the hop-by-hop
 * ones (and those the Connection header named), the ones "header"
 * replaces, and Host with "host target"; then the "header" ones.  libcurl
 * is kept from adding its own Accept, Content-Type and Expect.  Returns
 * 1 when the original had a Content-Length (so a body, maybe empty), 0,
 * or -1 (ENOMEM).
 */

static int
player_sink_http_headers(player_http_ctx_t *ctx, player_http_slot_t *slot,
    const rf_rec_t *rec, int body)
{
    int                    clen, accept, ctype, host;
    size_t                 off, i, j, ntokens;
    rf_str_t               name, value, tokens[PLAYER_HTTP_CONN_TOKENS];
    rf_field_t             f;
    const unsigned char   *p, *end, *start;
    player_http_conf_t    *c;
    player_http_header_t  *h;

    c = ctx->conf;

    curl_slist_free_all(slot->headers);
    slot->headers = NULL;

    /* the tokens of Connection: more hop-by-hop headers (RFC 9110 7.6.1) */

    ntokens = 0;
    off = 0;

    while (rf_rec_next_field(rec, &off, &f)) {
        if (f.id != RF_F_HEADER
            || rf_rec_header_split(&f.val, &name, &value) != 0
            || !player_sink_http_streq(&name, "Connection"))
        {
            continue;
        }

        p = value.data;
        end = value.data + value.len;

        while (p < end && ntokens < PLAYER_HTTP_CONN_TOKENS) {
            while (p < end && (*p == ' ' || *p == '\t' || *p == ',')) {
                p++;
            }

            for (start = p; p < end && *p != ',' && *p != ' '
                            && *p != '\t'; p++)
            {
                /* void */
            }

            if (p > start) {
                tokens[ntokens].data = start;
                tokens[ntokens].len = p - start;
                ntokens++;
            }
        }
    }

    clen = accept = ctype = host = 0;
    off = 0;

    while (rf_rec_next_field(rec, &off, &f)) {
        if (f.id != RF_F_HEADER
            || rf_rec_header_split(&f.val, &name, &value) != 0
            || name.len == 0)
        {
            continue;
        }

        if (player_sink_http_streq(&name, "Content-Length")) {
            clen = 1;
        }

        if (player_sink_http_hop(&name, tokens, ntokens)) {
            continue;
        }

        if (player_sink_http_streq(&name, "Host")) {
            if (c->host == PLAYER_HTTP_HOST_TARGET) {
                continue;
            }
            host = 1;
        }

        for (j = 0; j < c->nheaders; j++) {
            if (player_sink_http_streq(&name, c->headers[j].name)) {
                break;
            }
        }

        if (j < c->nheaders) {
            continue;
        }

        /* a header that cannot go on the wire as it is is left out */

        for (i = 0; i < name.len; i++) {
            if (name.data[i] <= ' ' || name.data[i] == ':'
                || name.data[i] >= 0x7f)
            {
                break;
            }
        }

        if (i < name.len
            || memchr(value.data, '\r', value.len) != NULL
            || memchr(value.data, '\n', value.len) != NULL
            || memchr(value.data, '\0', value.len) != NULL)
        {
            continue;
        }

        accept |= player_sink_http_streq(&name, "Accept");
        ctype |= player_sink_http_streq(&name, "Content-Type");

        if (player_sink_http_append(ctx, slot, &name, &value) != 0) {
            return -1;
        }
    }

    /* an HTTP/1.0 request may have had no Host header: the captured host */

    if (!host && c->host == PLAYER_HTTP_HOST_KEEP
        && rf_rec_field(rec, RF_F_HOST, &value) == 0 && value.len > 0
        && memchr(value.data, '\r', value.len) == NULL
        && memchr(value.data, '\n', value.len) == NULL)
    {
        for (j = 0; j < c->nheaders; j++) {
            if (strcasecmp(c->headers[j].name, "Host") == 0) {
                break;
            }
        }

        name.data = (const unsigned char *) "Host";
        name.len = 4;

        if (j == c->nheaders
            && player_sink_http_append(ctx, slot, &name, &value) != 0)
        {
            return -1;
        }
    }

    for (j = 0; j < c->nheaders; j++) {
        h = &c->headers[j];

        if (h->value[0] == '\0') {
            continue;
        }

        name.data = (const unsigned char *) h->name;
        name.len = strlen(h->name);
        value.data = (const unsigned char *) h->value;
        value.len = strlen(h->value);

        accept |= (strcasecmp(h->name, "Accept") == 0);
        ctype |= (strcasecmp(h->name, "Content-Type") == 0);

        if (player_sink_http_append(ctx, slot, &name, &value) != 0) {
            return -1;
        }
    }

    /* "Name:" removes a header libcurl would add by itself */

    if ((!accept && player_sink_http_raw(slot, "Accept:") != 0)
        || ((body || clen) && !ctype
            && player_sink_http_raw(slot, "Content-Type:") != 0)
        || player_sink_http_raw(slot, "Expect:") != 0)
    {
        return -1;
    }

    return clen;
}


static int
player_sink_http_hop(const rf_str_t *name, const rf_str_t *tokens,
    size_t ntokens)
{
    size_t              i;
    const char *const  *h;

    for (h = player_sink_http_hop_by_hop; *h != NULL; h++) {
        if (player_sink_http_streq(name, *h)) {
            return 1;
        }
    }

    for (i = 0; i < ntokens; i++) {
        if (name->len == tokens[i].len
            && strncasecmp((const char *) name->data,
                           (const char *) tokens[i].data, name->len) == 0
            && !player_sink_http_streq(name, "Host"))
        {
            return 1;
        }
    }

    return 0;
}


/* "Name: value", or "Name;" for an empty value (libcurl's spelling) */

static int
player_sink_http_append(player_http_ctx_t *ctx, player_http_slot_t *slot,
    const rf_str_t *name, const rf_str_t *value)
{
    rf_buf_t  *b;

    b = &ctx->line;
    rf_buf_reset(b);

    if (rf_buf_add(b, name->data, name->len) != 0
        || (value->len == 0 && rf_buf_addc(b, ';') != 0)
        || (value->len > 0
            && (rf_buf_add(b, ": ", 2) != 0
                || rf_buf_add(b, value->data, value->len) != 0))
        || rf_buf_addc(b, '\0') != 0)
    {
        return -1;
    }

    return player_sink_http_raw(slot, (const char *) b->data);
}


static int
player_sink_http_raw(player_http_slot_t *slot, const char *line)
{
    struct curl_slist  *l;

    l = curl_slist_append(slot->headers, line);
    if (l == NULL) {
        return -1;
    }

    slot->headers = l;

    return 0;
}


/* a request is over: an answer of any status, or no answer at all */


static int
player_sink_http_streq(const rf_str_t *s, const char *lit)
{
    size_t  len;

    len = strlen(lit);

    return s->len == len
           && strncasecmp((const char *) s->data, lit, len) == 0;
}
