/*
 * Copyright (C) ReplayForge contributors
 *
 * The "discord" sink: one line per record, rendered from a template, posted
 * to a Discord webhook.  Lines of consecutive records share a message (up
 * to "batch" lines, never over Discord's 2000 characters) so that a busy
 * bucket stays inside the webhook's rate limit; a 429 is waited out and
 * the same message sent again, and the X-RateLimit-* headers pace the next
 * message before Discord has to say no.  Captured text is hostile: it is
 * made valid UTF-8 without control characters, and the message forbids
 * every mention (allowed_mentions), so "@everyone" in a URI pings no one.
 * The template and the line cuts are in player_sink_discord_text.c.
 */

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>

#include "player.h"
#include "player_sink_discord.h"
#include "rf_json.h"
#include "rf_log.h"


static int player_discord_check(void *conf, char *err, size_t errlen);
static int player_discord_open(player_sink_t *s, char *err, size_t errlen);
static int player_discord_write(player_sink_t *s, const player_rec_t *recs,
    size_t n, int *status, const char **why);
static int player_discord_send(player_sink_t *s, size_t nrecs,
    const char **why);
static void player_discord_close(player_sink_t *s);
static int player_discord_stats_json(player_sink_t *s, rf_buf_t *out);
static int player_discord_metrics(player_sink_t *s, rf_buf_t *out);
static void player_discord_free_conf(void *conf);

static void player_discord_header_seen(player_discord_t *d);
static size_t player_discord_on_header(char *data, size_t size, size_t n,
    void *arg);
static size_t player_discord_on_data(char *data, size_t size, size_t n,
    void *arg);
static double player_discord_seconds(const char *p, const char *end);
static uint64_t player_discord_wait_ms(double s);
static void player_discord_defer(player_discord_t *d, uint64_t ms);
static void player_discord_pace(player_discord_t *d);
static uint64_t player_discord_now(void);
static const char *player_discord_why(long status);
static int player_discord_label(rf_buf_t *out, const char *s);


static const rf_conf_cmd_t  player_discord_cmds[] = {

    { "webhook", RF_CONF_STR, offsetof(player_discord_conf_t, webhook),
      0, 0, NULL, NULL, NULL, 0 },

    { "template", RF_CONF_STR, offsetof(player_discord_conf_t, template),
      0, 0, PLAYER_DISCORD_TEMPLATE, NULL, NULL, 0 },

    { "batch", RF_CONF_INT, offsetof(player_discord_conf_t, batch),
      1, 1000, "10", NULL, NULL, 0 },

    { "username", RF_CONF_STR, offsetof(player_discord_conf_t, username),
      0, 0, NULL, NULL, NULL, 0 },

    { "timeout", RF_CONF_MSEC, offsetof(player_discord_conf_t, timeout),
      1, 600000, "10s", NULL, NULL, 0 },

    rf_conf_null_cmd
};


const player_sink_type_t  player_sink_discord = {
    "discord",
    player_discord_cmds,
    sizeof(player_discord_conf_t),
    player_discord_check,
    player_discord_open,
    player_discord_write,
    player_discord_close,
    player_discord_stats_json,
    player_discord_metrics,
    player_discord_free_conf
};




static int
player_discord_check(void *data, char *err, size_t errlen)
{
    player_discord_conf_t  *conf;

    conf = data;

    if (conf->webhook == NULL || conf->webhook[0] == '\0') {
        snprintf(err, errlen, "\"webhook\" is required");
        return -1;
    }

    if (strncasecmp(conf->webhook, "http://", 7) != 0
        && strncasecmp(conf->webhook, "https://", 8) != 0)
    {
        snprintf(err, errlen, "\"webhook\" must be an http:// or https:// "
                 "URL, not \"%s\"", conf->webhook);
        return -1;
    }

    if (conf->username != NULL
        && !rf_utf8_valid((const unsigned char *) conf->username,
                          strlen(conf->username)))
    {
        snprintf(err, errlen, "\"username\" is not valid UTF-8");
        return -1;
    }

    return player_discord_compile(conf, err, errlen);
}


static int
player_discord_open(player_sink_t *s, char *err, size_t errlen)
{
    char                    agent[64];
    player_discord_t       *d;
    player_discord_conf_t  *conf;

    conf = s->conf;

    if (conf->parts == NULL && player_discord_check(conf, err, errlen) != 0)
    {
        return -1;
    }

    d = calloc(1, sizeof(player_discord_t));
    if (d == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    rf_buf_init(&d->lines);
    rf_buf_init(&d->value);
    rf_buf_init(&d->body);
    rf_buf_init(&d->content);
    rf_buf_init(&d->payload);
    rf_buf_init(&d->answer);

    s->ctx = d;

    snprintf(agent, sizeof(agent), "%s/%s", PLAYERD_NAME, PLAYERD_VERSION);

    d->curl = curl_easy_init();

    /* curl adds "Expect: 100-continue" to larger POSTs: one round trip */

    d->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (d->headers != NULL) {
        d->headers = curl_slist_append(d->headers, "Expect:");
    }

    if (d->curl == NULL || d->headers == NULL) {
        snprintf(err, errlen, "cannot create a libcurl handle");
        player_discord_close(s);
        return -1;
    }

    /* a thread of a daemon: no signals from libcurl (DNS timeouts) */

    if (curl_easy_setopt(d->curl, CURLOPT_URL, conf->webhook) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_USERAGENT, agent) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_ERRORBUFFER, d->error)
           != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, d->headers)
           != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_POST, 1L) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_CONNECTTIMEOUT_MS,
                            (long) conf->timeout) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_TIMEOUT_MS,
                            (long) conf->timeout) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_HEADERFUNCTION,
                            player_discord_on_header) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_HEADERDATA, d) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_WRITEFUNCTION,
                            player_discord_on_data) != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_WRITEDATA, d) != CURLE_OK)
    {
        snprintf(err, errlen, "cannot set up a libcurl handle");
        player_discord_close(s);
        return -1;
    }

    return 0;
}


/*
 * Every line first, then messages of consecutive lines: a message takes
 * the next line while it has fewer than "batch" lines and the line and
 * its "\n" still fit into PLAYER_DISCORD_MAX_CHARS.
 */

static int
player_discord_write(player_sink_t *s, const player_rec_t *recs, size_t n,
    int *status, const char **why)
{
    int                     rc, st;
    size_t                  i, j, k, chars, c, start, *ends;
    const char             *reason;
    player_discord_t       *d;
    player_discord_conf_t  *conf;

    d = s->ctx;
    conf = s->conf;

    if (n > d->nends) {
        ends = realloc(d->ends, n * sizeof(size_t));
        if (ends == NULL) {
            return -1;
        }

        d->ends = ends;
        d->nends = n;
    }

    rf_buf_reset(&d->lines);

    for (i = 0; i < n; i++) {
        if (player_discord_render(d, conf, &recs[i]) != 0) {
            return -1;
        }

        d->ends[i] = d->lines.len;
    }

    for (i = 0; i < n; i = j) {
        rf_buf_reset(&d->content);
        chars = 0;

        for (j = i; j < n && j - i < (size_t) conf->batch; j++) {
            start = j ? d->ends[j - 1] : 0;
            c = player_discord_chars(d->lines.data + start,
                                     d->ends[j] - start);

            if (j > i && chars + 1 + c > PLAYER_DISCORD_MAX_CHARS) {
                break;
            }

            if ((j > i && rf_buf_addc(&d->content, '\n') != 0)
                || rf_buf_add(&d->content, d->lines.data + start,
                              d->ends[j] - start) != 0)
            {
                return -1;
            }

            chars += (j > i) + c;
        }

        reason = NULL;
        rc = player_discord_send(s, j - i, &reason);

        st = (rc == PLAYER_DISCORD_SENT) ? PLAYER_OK
             : (rc == PLAYER_DISCORD_REFUSED) ? PLAYER_FAIL : PLAYER_RETRY;

        for (k = i; k < j; k++) {
            status[k] = st;
            why[k] = reason;
        }

        if (rc == PLAYER_DISCORD_AGAIN) {

            /* the webhook is away or busy: the rest waits for the retry */

            for (k = j; k < n; k++) {
                status[k] = PLAYER_RETRY;
                why[k] = "discord: an earlier message is to be retried";
            }

            break;
        }
    }

    return 0;
}


static int
player_discord_send(player_sink_t *s, size_t nrecs, const char **why)
{
    long                    code;
    double                  wait;
    unsigned                limited;
    CURLcode                rc;
    rf_json_doc_t          *doc;
    const rf_json_t        *v;
    player_discord_t       *d;
    player_discord_conf_t  *conf;

    d = s->ctx;
    conf = s->conf;

    rf_buf_reset(&d->payload);

    if (rf_buf_adds(&d->payload, "{\"content\":") != 0
        || rf_json_str(&d->payload, d->content.data, d->content.len) != 0
        || (conf->username != NULL && conf->username[0] != '\0'
            && (rf_buf_adds(&d->payload, ",\"username\":") != 0
                || rf_json_str(&d->payload,
                               (const unsigned char *) conf->username,
                               strlen(conf->username)) != 0))
        || rf_buf_adds(&d->payload, ",\"allowed_mentions\":{\"parse\":[]}}")
           != 0)
    {
        *why = "discord: out of memory";
        return PLAYER_DISCORD_AGAIN;
    }

    if (curl_easy_setopt(d->curl, CURLOPT_POSTFIELDS, d->payload.data)
        != CURLE_OK
        || curl_easy_setopt(d->curl, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) d->payload.len) != CURLE_OK)
    {
        *why = "discord: cannot set up the request";
        return PLAYER_DISCORD_AGAIN;
    }

    for (limited = 0; /* void */; limited++) {
        player_discord_pace(d);

        rf_buf_reset(&d->answer);
        player_discord_header_seen(d);
        d->error[0] = '\0';

        rc = curl_easy_perform(d->curl);

        if (d->remaining == 0 && d->reset_after >= 0) {
            player_discord_defer(d, player_discord_wait_ms(d->reset_after));
        }

        if (rc != CURLE_OK) {
            __atomic_add_fetch(&d->errors, 1, __ATOMIC_RELAXED);
            log_warnx("sink \"%s\": webhook: %s", s->name,
                      d->error[0] ? d->error : curl_easy_strerror(rc));
            *why = "discord: webhook not reached";
            return PLAYER_DISCORD_AGAIN;
        }

        code = 0;
        (void) curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &code);

        if (code >= 200 && code < 300) {
            __atomic_add_fetch(&d->messages, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&d->records, nrecs, __ATOMIC_RELAXED);
            return PLAYER_DISCORD_SENT;
        }

        if (code != 429) {
            break;
        }

        /*
         * Rate limited: not the records' fault.  The header is whole
         * seconds at times, the body's "retry_after" exact: the longer
         * one is waited.
         */

        __atomic_add_fetch(&d->rate_limited, 1, __ATOMIC_RELAXED);

        wait = d->retry_after;
        doc = NULL;

        if (d->answer.len > 0) {
            doc = rf_json_parse((const char *) d->answer.data,
                                d->answer.len, NULL, 0);
        }

        if (doc != NULL) {
            v = rf_json_get(rf_json_root(doc), "retry_after");
            if (v != NULL && v->type == RF_JSON_NUMBER && v->num > wait) {
                wait = v->num;
            }

            rf_json_free(doc);
        }

        if (limited + 1 >= PLAYER_DISCORD_429_MAX) {
            log_info("sink \"%s\": rate limited %u times in a row, the "
                     "message waits for the next try", s->name,
                     limited + 1);
            *why = "discord: rate limited";
            return PLAYER_DISCORD_AGAIN;
        }

        player_discord_defer(d, wait >= 0 ? player_discord_wait_ms(wait)
                                          : PLAYER_DISCORD_429_DFLT);

        log_info("sink \"%s\": rate limited, sending again in %.3fs",
                 s->name, wait >= 0 ? wait : PLAYER_DISCORD_429_DFLT / 1e3);
    }

    __atomic_add_fetch(&d->errors, 1, __ATOMIC_RELAXED);

    log_warnx("sink \"%s\": webhook answered %ld: %.*s", s->name, code,
              (int) (d->answer.len > 200 ? 200 : d->answer.len),
              d->answer.data ? (const char *) d->answer.data : "");

    *why = player_discord_why(code);

    /* another 4xx is the message's fault, and will not change */

    return (code >= 400 && code < 500) ? PLAYER_DISCORD_REFUSED
                                       : PLAYER_DISCORD_AGAIN;
}


static void
player_discord_close(player_sink_t *s)
{
    player_discord_t  *d;

    d = s->ctx;
    if (d == NULL) {
        return;
    }

    if (d->curl != NULL) {
        curl_easy_cleanup(d->curl);
    }

    curl_slist_free_all(d->headers);

    rf_buf_free(&d->lines);
    rf_buf_free(&d->value);
    rf_buf_free(&d->body);
    rf_buf_free(&d->content);
    rf_buf_free(&d->payload);
    rf_buf_free(&d->answer);
    free(d->ends);
    free(d);

    s->ctx = NULL;
}


static int
player_discord_stats_json(player_sink_t *s, rf_buf_t *out)
{
    player_discord_t  *d;

    d = s->ctx;
    if (d == NULL) {
        return 0;
    }

    return rf_buf_printf(out, ",\"messages\":%llu,\"records\":%llu,"
                         "\"rate_limited\":%llu,\"errors\":%llu",
                         (unsigned long long)
                         __atomic_load_n(&d->messages, __ATOMIC_RELAXED),
                         (unsigned long long)
                         __atomic_load_n(&d->records, __ATOMIC_RELAXED),
                         (unsigned long long)
                         __atomic_load_n(&d->rate_limited, __ATOMIC_RELAXED),
                         (unsigned long long)
                         __atomic_load_n(&d->errors, __ATOMIC_RELAXED));
}


static int
player_discord_metrics(player_sink_t *s, rf_buf_t *out)
{
    size_t             i;
    uint64_t           v;
    player_discord_t  *d;

    static const char  *names[] = {
        "rf_player_discord_messages_total",
        "rf_player_discord_records_total",
        "rf_player_discord_rate_limited_total",
        "rf_player_discord_errors_total"
    };

    d = s->ctx;
    if (d == NULL) {
        return 0;
    }

    for (i = 0; i < 4; i++) {
        v = __atomic_load_n(i == 0 ? &d->messages
                            : i == 1 ? &d->records
                            : i == 2 ? &d->rate_limited : &d->errors,
                            __ATOMIC_RELAXED);

        if (rf_buf_printf(out, "%s{bucket=\"", names[i]) != 0
            || player_discord_label(out, s->bucket ? s->bucket : "") != 0
            || rf_buf_adds(out, "\",sink=\"") != 0
            || player_discord_label(out, s->name ? s->name : "") != 0
            || rf_buf_printf(out, "\"} %llu\n", (unsigned long long) v) != 0)
        {
            return -1;
        }
    }

    return 0;
}


static void
player_discord_free_conf(void *data)
{
    player_discord_free_parts(data);
}


static void
player_discord_header_seen(player_discord_t *d)
{
    d->retry_after = -1;
    d->reset_after = -1;
    d->remaining = -1;
}


static size_t
player_discord_on_header(char *data, size_t size, size_t n, void *arg)
{
    char              *colon, *end, *v;
    size_t             len, nlen;
    player_discord_t  *d;

    d = arg;
    len = size * n;
    end = data + len;

    /* a new status line: an interim answer's headers do not count */

    if (len > 5 && strncmp(data, "HTTP/", 5) == 0) {
        player_discord_header_seen(d);
        return len;
    }

    colon = memchr(data, ':', len);
    if (colon == NULL) {
        return len;
    }

    nlen = colon - data;

    for (v = colon + 1; v < end && (*v == ' ' || *v == '\t'); v++) {
        /* void */
    }

    if (nlen == 11 && strncasecmp(data, "Retry-After", 11) == 0) {
        d->retry_after = player_discord_seconds(v, end);

    } else if (nlen == 23
               && strncasecmp(data, "X-RateLimit-Reset-After", 23) == 0)
    {
        d->reset_after = player_discord_seconds(v, end);

    } else if (nlen == 21
               && strncasecmp(data, "X-RateLimit-Remaining", 21) == 0)
    {
        d->remaining = (long) player_discord_seconds(v, end);
    }

    return len;
}


static size_t
player_discord_on_data(char *data, size_t size, size_t n, void *arg)
{
    size_t             len, room;
    player_discord_t  *d;

    d = arg;
    len = size * n;
    room = PLAYER_DISCORD_ANSWER_MAX - d->answer.len;

    if (room > 0
        && rf_buf_add(&d->answer, data, len < room ? len : room) != 0)
    {
        return 0;
    }

    return len;
}


/* "1", "0.25", "1.5\r\n": a non-negative number of seconds, or -1 */

static double
player_discord_seconds(const char *p, const char *end)
{
    char    buf[32], *last;
    size_t  len;
    double  v;

    len = end - p;

    while (len > 0 && isspace((unsigned char) p[len - 1])) {
        len--;
    }

    if (len == 0 || len >= sizeof(buf)) {
        return -1;
    }

    memcpy(buf, p, len);
    buf[len] = '\0';

    errno = 0;
    v = strtod(buf, &last);

    if (errno != 0 || *last != '\0' || !isfinite(v) || v < 0) {
        return -1;
    }

    return v;
}


static uint64_t
player_discord_wait_ms(double s)
{
    uint64_t  ms;

    if (s * 1000 >= PLAYER_DISCORD_WAIT_MAX) {
        return PLAYER_DISCORD_WAIT_MAX;
    }

    /* rounded up: waking early would only earn another 429 */

    ms = (uint64_t) (s * 1000);

    return (ms < s * 1000) ? ms + 1 : ms;
}


/* no message before ms from now; a later limit already set stays */

static void
player_discord_defer(player_discord_t *d, uint64_t ms)
{
    uint64_t  t;

    t = player_discord_now() + ms;

    if (t > d->not_before) {
        d->not_before = t;
    }
}


/* wait until d->not_before, which a 429 or an empty bucket set */

static void
player_discord_pace(player_discord_t *d)
{
    uint64_t         now, ms;
    struct timespec  ts;

    for ( ;; ) {
        now = player_discord_now();
        if (now >= d->not_before) {
            return;
        }

        ms = d->not_before - now;
        ts.tv_sec = ms / 1000;
        ts.tv_nsec = (ms % 1000) * 1000000;

        (void) nanosleep(&ts, NULL);
    }
}


static uint64_t
player_discord_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}


/* why[] must be static: the common statuses by name, the rest by class */

static const char *
player_discord_why(long status)
{
    switch (status) {

    case 400:
        return "discord: HTTP 400 (bad request)";
    case 401:
        return "discord: HTTP 401 (unauthorized)";
    case 403:
        return "discord: HTTP 403 (forbidden)";
    case 404:
        return "discord: HTTP 404 (unknown webhook)";
    case 405:
        return "discord: HTTP 405 (method not allowed)";
    case 413:
        return "discord: HTTP 413 (payload too large)";
    default:
        break;
    }

    if (status >= 400 && status < 500) {
        return "discord: HTTP 4xx";
    }

    if (status >= 500 && status < 600) {
        return "discord: HTTP 5xx";
    }

    return "discord: unexpected HTTP status";
}


static int
player_discord_label(rf_buf_t *out, const char *s)
{
    for ( /* void */ ; *s != '\0'; s++) {
        if ((*s == '\\' || *s == '"') && rf_buf_addc(out, '\\') != 0) {
            return -1;
        }

        if (rf_buf_addc(out, *s == '\n' ? ' ' : *s) != 0) {
            return -1;
        }
    }

    return 0;
}
