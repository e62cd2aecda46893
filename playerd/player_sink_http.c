/*
 * Copyright (C) ReplayForge contributors
 *
 * The http sink, "sink http NAME { target URL; ... }": replays captured
 * http records to one or more targets.  This file holds its directives,
 * their checks, the handles it opens and its stats; the replay itself
 * (request building, pacing, the libcurl multi loop) is in
 * player_sink_http_send.c.  See docs/player-http.md.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rf_log.h"
#include "player.h"
#include "player_sink_http.h"


static int player_sink_http_target(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int player_sink_http_header(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int player_sink_http_speed(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int player_sink_http_token(const char *s);
static int player_sink_http_check(void *conf, char *err, size_t errlen);
static int player_sink_http_open(player_sink_t *s, char *err, size_t errlen);
static void player_sink_http_close(player_sink_t *s);
static int player_sink_http_stats_json(player_sink_t *s, rf_buf_t *out);
static int player_sink_http_metrics(player_sink_t *s, rf_buf_t *out);
static void player_sink_http_free_conf(void *conf);


static const char *const  player_sink_http_hosts[] = {
    "keep", "target", NULL
};


static const rf_conf_cmd_t  player_sink_http_cmds[] = {

    { "target", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL,
      player_sink_http_target, 1 },

    { "concurrency", RF_CONF_INT,
      offsetof(player_http_conf_t, concurrency), 1, 1024, "32", NULL,
      NULL, 0 },

    { "rate", RF_CONF_INT, offsetof(player_http_conf_t, rate), 0,
      10000000, "0", NULL, NULL, 0 },

    { "speed", RF_CONF_CUSTOM, offsetof(player_http_conf_t, speed), 0, 0,
      NULL, NULL, player_sink_http_speed, 0 },

    { "max_wait", RF_CONF_MSEC, offsetof(player_http_conf_t, max_wait), 0,
      3600 * 1000, "5s", NULL, NULL, 0 },

    { "timeout", RF_CONF_MSEC, offsetof(player_http_conf_t, timeout), 1,
      3600 * 1000, "10s", NULL, NULL, 0 },

    { "host", RF_CONF_ENUM, offsetof(player_http_conf_t, host), 0, 0,
      "keep", player_sink_http_hosts, NULL, 0 },

    { "header", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL,
      player_sink_http_header, 1 },

    { "compare", RF_CONF_FLAG, offsetof(player_http_conf_t, compare), 0, 0,
      "on", NULL, NULL, 0 },

    { "mismatch_log", RF_CONF_STR,
      offsetof(player_http_conf_t, mismatch_log), 0, 0, NULL, NULL, NULL,
      0 },

    rf_conf_null_cmd
};


const player_sink_type_t  player_sink_http = {
    "http",
    player_sink_http_cmds,
    sizeof(player_http_conf_t),
    player_sink_http_check,
    player_sink_http_open,
    player_sink_http_write,
    player_sink_http_close,
    player_sink_http_stats_json,
    player_sink_http_metrics,
    player_sink_http_free_conf
};


/*
 * "target http[s]://host[:port][/base]": the record's uri is appended to
 * the base path, so a query or a fragment in the target makes no sense.
 */

static int
player_sink_http_target(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char                 *url, **targets;
    size_t                len;
    const char           *p, *auth, *slash;
    player_http_conf_t   *c;

    c = conf;

    if (node->block || node->nargs != 1) {
        snprintf(err, errlen, "invalid number of arguments in \"target\" "
                 "directive");
        return -1;
    }

    p = node->args[0];

    if (strncasecmp(p, "http://", 7) == 0) {
        auth = p + 7;

    } else if (strncasecmp(p, "https://", 8) == 0) {
        auth = p + 8;

    } else {
        snprintf(err, errlen, "invalid target \"%s\", it must be an "
                 "http:// or https:// URL", p);
        return -1;
    }

    if (*auth == '\0' || *auth == '/' || strpbrk(p, "?# \t\r\n") != NULL) {
        snprintf(err, errlen, "invalid target \"%s\", it needs a host and "
                 "no query or fragment", p);
        return -1;
    }

    if (c->ntargets == PLAYER_HTTP_TARGETS_MAX) {
        snprintf(err, errlen, "too many targets, at most %d",
                 PLAYER_HTTP_TARGETS_MAX);
        return -1;
    }

    /* the uri brings its own '/' */

    len = strlen(p);
    slash = strchr(auth, '/');

    while (slash != NULL && len > (size_t) (slash - p)
           && p[len - 1] == '/')
    {
        len--;
    }

    url = strndup(p, len);
    targets = realloc(c->targets, (c->ntargets + 1) * sizeof(char *));

    if (url == NULL || targets == NULL) {
        free(url);
        if (targets != NULL) {
            c->targets = targets;
        }
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    c->targets = targets;
    c->targets[c->ntargets++] = url;

    return 0;
}


/* "header NAME VALUE": set, replacing every captured one; "" drops it */

static int
player_sink_http_header(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char                  *name, *value;
    player_http_conf_t    *c;
    player_http_header_t  *h;

    c = conf;

    if (node->block || node->nargs != 2) {
        snprintf(err, errlen, "invalid number of arguments in \"header\" "
                 "directive");
        return -1;
    }

    if (!player_sink_http_token(node->args[0])) {
        snprintf(err, errlen, "invalid header name \"%s\"", node->args[0]);
        return -1;
    }

    if (strpbrk(node->args[1], "\r\n") != NULL) {
        snprintf(err, errlen, "invalid value of header \"%s\"",
                 node->args[0]);
        return -1;
    }

    if (c->nheaders == PLAYER_HTTP_HEADERS_MAX) {
        snprintf(err, errlen, "too many headers, at most %d",
                 PLAYER_HTTP_HEADERS_MAX);
        return -1;
    }

    name = strdup(node->args[0]);
    value = strdup(node->args[1]);
    h = realloc(c->headers, (c->nheaders + 1) * sizeof(*h));

    if (name == NULL || value == NULL || h == NULL) {
        free(name);
        free(value);
        if (h != NULL) {
            c->headers = h;
        }
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    c->headers = h;
    c->headers[c->nheaders].name = name;
    c->headers[c->nheaders].value = value;
    c->nheaders++;

    return 0;
}


/* "speed F": a factor on the original pacing; 0 is as fast as allowed */

static int
player_sink_http_speed(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char                *end;
    double               v;
    player_http_conf_t  *c;

    c = conf;

    if (node->block || node->nargs != 1) {
        snprintf(err, errlen, "invalid number of arguments in \"speed\" "
                 "directive");
        return -1;
    }

    errno = 0;
    v = strtod(node->args[0], &end);

    if (errno != 0 || end == node->args[0] || *end != '\0' || !isfinite(v)
        || v < 0 || v > 1000)
    {
        snprintf(err, errlen, "\"speed\" directive invalid value \"%s\", "
                 "it must be a number from 0 to 1000", node->args[0]);
        return -1;
    }

    c->speed = v;

    return 0;
}


/* RFC 9110 tchar */

static int
player_sink_http_token(const char *s)
{
    if (*s == '\0') {
        return 0;
    }

    for ( /* void */ ; *s != '\0'; s++) {
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')
              || (*s >= '0' && *s <= '9') || strchr("!#$%&'*+-.^_`|~", *s)))
        {
            return 0;
        }
    }

    return 1;
}


static int
player_sink_http_check(void *conf, char *err, size_t errlen)
{
    player_http_conf_t  *c;

    c = conf;

    if (c->ntargets == 0) {
        snprintf(err, errlen, "\"target\" directive is required");
        return -1;
    }

    return 0;
}


static int
player_sink_http_open(player_sink_t *s, char *err, size_t errlen)
{
    size_t               i;
    player_http_ctx_t   *ctx;
    player_http_conf_t  *c;

    c = s->conf;

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(err, errlen, "cannot initialise libcurl");
        return -1;
    }

    ctx = calloc(1, sizeof(player_http_ctx_t));
    if (ctx == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    s->ctx = ctx;
    ctx->sink = s;
    ctx->conf = c;
    ctx->mismatch_fd = -1;
    rf_buf_init(&ctx->line);
    rf_ratelimit_init(&ctx->rl, (double) c->rate, 0, rf_now_ns());

    ctx->targets = calloc(c->ntargets, sizeof(player_http_target_t));
    ctx->nslots = c->ntargets * (size_t) c->concurrency;
    ctx->slots = calloc(ctx->nslots, sizeof(player_http_slot_t));
    ctx->multi = curl_multi_init();

    if (ctx->targets == NULL || ctx->slots == NULL || ctx->multi == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    /* every connection of every target stays in the multi's cache */

    if (curl_multi_setopt(ctx->multi, CURLMOPT_MAXCONNECTS,
                          (long) ctx->nslots) != CURLM_OK)
    {
        snprintf(err, errlen, "cannot set up a libcurl multi handle");
        goto failed;
    }

    for (i = 0; i < c->ntargets; i++) {
        ctx->targets[i].base = c->targets[i];
    }

    for (i = 0; i < ctx->nslots; i++) {
        if (player_sink_http_slot_init(ctx, &ctx->slots[i]) != 0) {
            snprintf(err, errlen, "cannot set up a libcurl handle");
            goto failed;
        }
    }

    if (c->mismatch_log != NULL && c->mismatch_log[0] != '\0') {
        ctx->mismatch_fd = open(c->mismatch_log,
                                O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
                                0644);
        if (ctx->mismatch_fd == -1) {
            snprintf(err, errlen, "open(\"%s\"): %s", c->mismatch_log,
                     strerror(errno));
            goto failed;
        }
    }

    log_info("sink http %s: %zu target(s), concurrency %" PRId64
             ", rate %" PRId64 "/s, speed %g", s->name, c->ntargets,
             c->concurrency, c->rate, c->speed);

    return 0;

failed:

    player_sink_http_close(s);

    return -1;
}


static void
player_sink_http_close(player_sink_t *s)
{
    size_t              i;
    player_http_ctx_t  *ctx;

    ctx = s->ctx;
    if (ctx == NULL) {
        return;
    }

    for (i = 0; ctx->slots != NULL && i < ctx->nslots; i++) {
        if (ctx->slots[i].easy != NULL) {
            if (ctx->slots[i].busy) {
                (void) curl_multi_remove_handle(ctx->multi,
                                                ctx->slots[i].easy);
            }
            curl_easy_cleanup(ctx->slots[i].easy);
        }
        curl_slist_free_all(ctx->slots[i].headers);
    }

    if (ctx->multi != NULL) {
        (void) curl_multi_cleanup(ctx->multi);
    }

    if (ctx->mismatch_fd != -1) {
        (void) close(ctx->mismatch_fd);
    }

    rf_buf_free(&ctx->line);
    free(ctx->slots);
    free(ctx->targets);
    free(ctx->jobs);
    free(ctx);

    s->ctx = NULL;
}


#define player_http_get(p)  __atomic_load_n(p, __ATOMIC_RELAXED)


static int
player_sink_http_stats_json(player_sink_t *s, rf_buf_t *out)
{
    size_t                 i;
    uint64_t               req, err, mis, lat, orig, norig;
    player_http_ctx_t     *ctx;
    player_http_target_t  *t;

    ctx = s->ctx;
    if (ctx == NULL) {
        return 0;
    }

    req = err = mis = lat = orig = norig = 0;

    for (i = 0; i < ctx->conf->ntargets; i++) {
        t = &ctx->targets[i];
        req += player_http_get(&t->requests);
        err += player_http_get(&t->errors);
        mis += player_http_get(&t->mismatches);
        lat += player_http_get(&t->latency_us);
        orig += player_http_get(&t->orig_us);
        norig += player_http_get(&t->orig_count);
    }

    if (rf_buf_printf(out, ",\"requests\":%" PRIu64 ",\"errors\":%" PRIu64
                      ",\"mismatches\":%" PRIu64 ",\"skipped\":%" PRIu64
                      ",\"truncated\":%" PRIu64 ",\"pacing_cut\":%" PRIu64
                      ",\"latency_ms_sum\":%.3f,\"latency_count\":%" PRIu64
                      ",\"orig_latency_ms_sum\":%.3f"
                      ",\"orig_latency_count\":%" PRIu64 ",\"targets\":[",
                      req, err, mis, player_http_get(&ctx->skipped),
                      player_http_get(&ctx->truncated),
                      player_http_get(&ctx->waits), lat / 1000.0, req,
                      orig / 1000.0, norig) != 0)
    {
        return -1;
    }

    for (i = 0; i < ctx->conf->ntargets; i++) {
        t = &ctx->targets[i];

        if ((i > 0 && rf_buf_addc(out, ',') != 0)
            || rf_buf_adds(out, "{\"url\":") != 0
            || rf_json_str(out, (const unsigned char *) t->base,
                           strlen(t->base)) != 0
            || rf_buf_printf(out, ",\"requests\":%" PRIu64
                             ",\"errors\":%" PRIu64
                             ",\"mismatches\":%" PRIu64
                             ",\"2xx\":%" PRIu64 ",\"3xx\":%" PRIu64
                             ",\"4xx\":%" PRIu64 ",\"5xx\":%" PRIu64
                             ",\"latency_ms_sum\":%.3f"
                             ",\"orig_latency_ms_sum\":%.3f"
                             ",\"orig_latency_count\":%" PRIu64 "}",
                             player_http_get(&t->requests),
                             player_http_get(&t->errors),
                             player_http_get(&t->mismatches),
                             player_http_get(&t->status[2]),
                             player_http_get(&t->status[3]),
                             player_http_get(&t->status[4]),
                             player_http_get(&t->status[5]),
                             player_http_get(&t->latency_us) / 1000.0,
                             player_http_get(&t->orig_us) / 1000.0,
                             player_http_get(&t->orig_count)) != 0)
        {
            return -1;
        }
    }

    return rf_buf_addc(out, ']');
}


static int
player_sink_http_metrics(player_sink_t *s, rf_buf_t *out)
{
    int                    rc;
    size_t                 i, k;
    player_http_ctx_t     *ctx;
    player_http_target_t  *t;

    static const char     *classes[] = { "", "1xx", "2xx", "3xx", "4xx",
                                         "5xx" };

    ctx = s->ctx;
    if (ctx == NULL) {
        return 0;
    }

    rc = rf_buf_printf(out, "rf_player_http_skipped_total{bucket=\"%s\","
                       "sink=\"%s\"} %" PRIu64 "\n", s->bucket, s->name,
                       player_http_get(&ctx->skipped));

    for (i = 0; rc == 0 && i < ctx->conf->ntargets; i++) {
        t = &ctx->targets[i];

#define PLAYER_HTTP_LABELS  "{bucket=\"%s\",sink=\"%s\",target=\"%s\""

        rc = rf_buf_printf(out,
            "rf_player_http_requests_total" PLAYER_HTTP_LABELS "} %" PRIu64
            "\nrf_player_http_errors_total" PLAYER_HTTP_LABELS "} %" PRIu64
            "\nrf_player_http_mismatches_total" PLAYER_HTTP_LABELS "} %"
            PRIu64 "\nrf_player_http_latency_seconds_sum" PLAYER_HTTP_LABELS
            "} %.6f\nrf_player_http_latency_seconds_count" PLAYER_HTTP_LABELS
            "} %" PRIu64 "\nrf_player_http_orig_latency_seconds_sum"
            PLAYER_HTTP_LABELS "} %.6f\n"
            "rf_player_http_orig_latency_seconds_count" PLAYER_HTTP_LABELS
            "} %" PRIu64 "\n",
            s->bucket, s->name, t->base, player_http_get(&t->requests),
            s->bucket, s->name, t->base, player_http_get(&t->errors),
            s->bucket, s->name, t->base, player_http_get(&t->mismatches),
            s->bucket, s->name, t->base,
            player_http_get(&t->latency_us) / 1e6,
            s->bucket, s->name, t->base, player_http_get(&t->requests),
            s->bucket, s->name, t->base,
            player_http_get(&t->orig_us) / 1e6,
            s->bucket, s->name, t->base, player_http_get(&t->orig_count));

        for (k = 1; rc == 0 && k < 6; k++) {
            rc = rf_buf_printf(out, "rf_player_http_responses_total"
                               PLAYER_HTTP_LABELS ",class=\"%s\"} %" PRIu64
                               "\n", s->bucket, s->name, t->base, classes[k],
                               player_http_get(&t->status[k]));
        }
    }

    return rc;
}


static void
player_sink_http_free_conf(void *conf)
{
    size_t               i;
    player_http_conf_t  *c;

    c = conf;

    for (i = 0; i < c->ntargets; i++) {
        free(c->targets[i]);
    }

    for (i = 0; i < c->nheaders; i++) {
        free(c->headers[i].name);
        free(c->headers[i].value);
    }

    free(c->targets);
    free(c->headers);

    c->targets = NULL;
    c->headers = NULL;
    c->ntargets = 0;
    c->nheaders = 0;
}
