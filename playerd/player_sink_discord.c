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
#include "rf_json.h"
#include "rf_log.h"


#define PLAYER_DISCORD_MAX_CHARS    2000    /* Discord's limit of content */
#define PLAYER_DISCORD_WAIT_MAX     60000   /* ms: a wait Discord asks for */
#define PLAYER_DISCORD_429_MAX      5       /* 429s in a row, one message */
#define PLAYER_DISCORD_429_DFLT     1000    /* ms, a 429 that names no wait */
#define PLAYER_DISCORD_ANSWER_MAX   4096    /* bytes of an answer kept */
#define PLAYER_DISCORD_TEMPLATE     "{method} {uri} \xe2\x86\x92 {status}"

/* U+2026 and U+FFFD in UTF-8 */
#define PLAYER_DISCORD_ELLIPSIS     "\xe2\x80\xa6"
#define PLAYER_DISCORD_REPLACEMENT  "\xef\xbf\xbd"


/* what a template part stands for */
enum {
    PLAYER_DISCORD_TEXT = 0,
    PLAYER_DISCORD_METHOD,
    PLAYER_DISCORD_URI,
    PLAYER_DISCORD_STATUS,
    PLAYER_DISCORD_HOST,
    PLAYER_DISCORD_SOURCE,
    PLAYER_DISCORD_ID,
    PLAYER_DISCORD_SEQ,
    PLAYER_DISCORD_DURATION,
    PLAYER_DISCORD_CLIENT,
    PLAYER_DISCORD_TS,
    PLAYER_DISCORD_BUCKET,
    PLAYER_DISCORD_KIND,
    PLAYER_DISCORD_HEADER,
    PLAYER_DISCORD_BODY
};


/* how one message went */
enum {
    PLAYER_DISCORD_SENT = 0,
    PLAYER_DISCORD_AGAIN,       /* PLAYER_RETRY */
    PLAYER_DISCORD_REFUSED      /* PLAYER_FAIL */
};


typedef struct {
    unsigned                    what;
    char                       *text;       /* TEXT: bytes; HEADER: name */
    size_t                      len;
} player_discord_part_t;


typedef struct {
    char                       *webhook;
    char                       *template;
    int64_t                     batch;
    char                       *username;
    uint64_t                    timeout;    /* ms */

    /* the template, compiled by check() */
    player_discord_part_t      *parts;
    size_t                      nparts;
} player_discord_conf_t;


typedef struct {
    CURL                       *curl;
    struct curl_slist          *headers;
    char                        error[CURL_ERROR_SIZE];

    rf_buf_t                    lines;      /* every record's line */
    size_t                     *ends;       /* line i ends at ends[i] */
    size_t                      nends;
    rf_buf_t                    value;      /* one placeholder's value */
    rf_buf_t                    body;       /* {body}, before its cut */
    rf_buf_t                    content;    /* one message's text */
    rf_buf_t                    payload;    /* its JSON */
    rf_buf_t                    answer;

    /* from the answer's headers; -1: absent */
    double                      retry_after;
    double                      reset_after;
    long                        remaining;

    uint64_t                    not_before; /* monotonic ms */

    /* read by other threads with __atomic loads */
    uint64_t                    messages;
    uint64_t                    records;
    uint64_t                    rate_limited;
    uint64_t                    errors;
} player_discord_t;


static int player_discord_check(void *conf, char *err, size_t errlen);
static int player_discord_compile(player_discord_conf_t *conf, char *err,
    size_t errlen);
static int player_discord_open(player_sink_t *s, char *err, size_t errlen);
static int player_discord_write(player_sink_t *s, const player_rec_t *recs,
    size_t n, int *status, const char **why);
static int player_discord_send(player_sink_t *s, size_t nrecs,
    const char **why);
static void player_discord_close(player_sink_t *s);
static int player_discord_stats_json(player_sink_t *s, rf_buf_t *out);
static int player_discord_metrics(player_sink_t *s, rf_buf_t *out);
static void player_discord_free_conf(void *conf);

static int player_discord_render(player_discord_t *d,
    const player_discord_conf_t *conf, const player_rec_t *pr);
static int player_discord_value(player_discord_t *d,
    const player_discord_part_t *part, const player_rec_t *pr);
static int player_discord_clean(rf_buf_t *b, const unsigned char *p,
    size_t n);
static size_t player_discord_chars(const unsigned char *p, size_t n);
static size_t player_discord_cut(const unsigned char *p, size_t n,
    size_t chars);
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


static const struct {
    const char                 *name;
    unsigned                    what;
} player_discord_names[] = {
    { "method", PLAYER_DISCORD_METHOD },
    { "uri", PLAYER_DISCORD_URI },
    { "status", PLAYER_DISCORD_STATUS },
    { "host", PLAYER_DISCORD_HOST },
    { "source", PLAYER_DISCORD_SOURCE },
    { "id", PLAYER_DISCORD_ID },
    { "seq", PLAYER_DISCORD_SEQ },
    { "duration_ms", PLAYER_DISCORD_DURATION },
    { "client", PLAYER_DISCORD_CLIENT },
    { "ts", PLAYER_DISCORD_TS },
    { "bucket", PLAYER_DISCORD_BUCKET },
    { "kind", PLAYER_DISCORD_KIND },
    { "body", PLAYER_DISCORD_BODY }
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


/*
 * "{name}" and "{header:NAME}" become parts, the text between them parts
 * of their own; "{{" and "}}" are a literal brace.  Everything is checked
 * here, so that -t reports an unknown placeholder.
 */

static int
player_discord_compile(player_discord_conf_t *conf, char *err, size_t errlen)
{
    size_t                  i, max, len;
    const char             *p, *start, *close;
    player_discord_part_t  *part;

    player_discord_free_conf(conf);

    p = conf->template ? conf->template : "";

    if (*p == '\0') {
        snprintf(err, errlen, "\"template\" is empty");
        return -1;
    }

    if (!rf_utf8_valid((const unsigned char *) p, strlen(p))) {
        snprintf(err, errlen, "\"template\" is not valid UTF-8");
        return -1;
    }

    /* at most a part per character, and one */
    max = strlen(p) + 1;

    conf->parts = calloc(max, sizeof(player_discord_part_t));
    if (conf->parts == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    while (*p != '\0') {
        part = &conf->parts[conf->nparts];

        if (*p != '{' || p[1] == '{') {

            /* text up to the next placeholder, braces undoubled */

            part->what = PLAYER_DISCORD_TEXT;
            part->text = malloc(strlen(p) + 1);
            if (part->text == NULL) {
                goto nomem;
            }

            conf->nparts++;

            while (*p != '\0' && (*p != '{' || p[1] == '{')) {
                if ((*p == '{' || *p == '}') && p[1] == *p) {
                    p++;
                }

                part->text[part->len++] = *p++;
            }

            continue;
        }

        start = p + 1;
        close = strchr(start, '}');

        if (close == NULL) {
            snprintf(err, errlen, "unterminated placeholder \"%.32s\" in "
                     "\"template\" (a literal \"{\" is written \"{{\")", p);
            goto failed;
        }

        len = close - start;

        if (len > 7 && strncmp(start, "header:", 7) == 0) {
            for (i = 7; i < len; i++) {
                if (!isgraph((unsigned char) start[i]) || start[i] == ':') {
                    break;
                }
            }

            if (i < len) {
                snprintf(err, errlen, "invalid header name in \"{%.*s}\" "
                         "in \"template\"", (int) len, start);
                goto failed;
            }

            part->what = PLAYER_DISCORD_HEADER;
            part->len = len - 7;
            part->text = strndup(start + 7, len - 7);
            if (part->text == NULL) {
                goto nomem;
            }

            conf->nparts++;
            p = close + 1;
            continue;
        }

        for (i = 0; i < sizeof(player_discord_names)
                        / sizeof(player_discord_names[0]); i++)
        {
            if (strlen(player_discord_names[i].name) == len
                && strncmp(player_discord_names[i].name, start, len) == 0)
            {
                break;
            }
        }

        if (i == sizeof(player_discord_names)
                 / sizeof(player_discord_names[0]))
        {
            snprintf(err, errlen, "unknown placeholder \"{%.*s}\" in "
                     "\"template\"", (int) (len > 64 ? 64 : len), start);
            goto failed;
        }

        part->what = player_discord_names[i].what;
        conf->nparts++;
        p = close + 1;
    }

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");

failed:

    player_discord_free_conf(conf);

    return -1;
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
    size_t                  i;
    player_discord_conf_t  *conf;

    conf = data;

    if (conf->parts == NULL) {
        return;
    }

    for (i = 0; i < conf->nparts; i++) {
        free(conf->parts[i].text);
    }

    free(conf->parts);
    conf->parts = NULL;
    conf->nparts = 0;
}


/*
 * A record's line into d->lines.  {body} gets the room the rest of the
 * line leaves (shared when it appears more than once), cut with "…";
 * then the whole line is cut the same way if it is still too long.
 */

static int
player_discord_render(player_discord_t *d, const player_discord_conf_t *conf,
    const player_rec_t *pr)
{
    size_t          i, start, chars, nbody, room, cut, len;
    rf_str_t        body;
    unsigned char  *p;

    start = d->lines.len;
    nbody = 0;

    /* the line without its body, to measure the room */

    for (i = 0; i < conf->nparts; i++) {
        if (conf->parts[i].what == PLAYER_DISCORD_BODY) {
            nbody++;
            continue;
        }

        if (player_discord_value(d, &conf->parts[i], pr) != 0
            || rf_buf_add(&d->lines, d->value.data, d->value.len) != 0)
        {
            return -1;
        }
    }

    if (nbody) {
        chars = player_discord_chars(d->lines.data + start,
                                     d->lines.len - start);
        room = chars < PLAYER_DISCORD_MAX_CHARS
               ? (PLAYER_DISCORD_MAX_CHARS - chars) / nbody : 0;

        rf_buf_reset(&d->body);

        if (rf_rec_field(&pr->rec, RF_F_BODY, &body) == 0
            && player_discord_clean(&d->body, body.data, body.len) != 0)
        {
            return -1;
        }

        if (player_discord_chars(d->body.data, d->body.len) > room) {
            cut = room ? player_discord_cut(d->body.data, d->body.len,
                                            room - 1) : 0;
            d->body.len = cut;

            if (room && rf_buf_adds(&d->body, PLAYER_DISCORD_ELLIPSIS) != 0)
            {
                return -1;
            }
        }

        d->lines.len = start;

        for (i = 0; i < conf->nparts; i++) {
            if (conf->parts[i].what == PLAYER_DISCORD_BODY) {
                if (rf_buf_add(&d->lines, d->body.data, d->body.len) != 0) {
                    return -1;
                }

                continue;
            }

            if (player_discord_value(d, &conf->parts[i], pr) != 0
                || rf_buf_add(&d->lines, d->value.data, d->value.len) != 0)
            {
                return -1;
            }
        }
    }

    p = d->lines.data + start;
    len = d->lines.len - start;

    if (player_discord_chars(p, len) > PLAYER_DISCORD_MAX_CHARS) {
        cut = player_discord_cut(p, len, PLAYER_DISCORD_MAX_CHARS - 1);
        d->lines.len = start + cut;
        return rf_buf_adds(&d->lines, PLAYER_DISCORD_ELLIPSIS);
    }

    /* Discord refuses a message of nothing but blanks */

    for (i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\n') {
            return 0;
        }
    }

    d->lines.len = start;

    return rf_buf_addc(&d->lines, '-');
}


/* one placeholder's text into d->value; a missing field is "-" */

static int
player_discord_value(player_discord_t *d, const player_discord_part_t *part,
    const player_rec_t *pr)
{
    char             ts[64];
    size_t           off;
    time_t           sec;
    uint64_t         v;
    rf_str_t         s, name, value;
    struct tm        tm;
    rf_field_t       f;
    const rf_rec_t  *rec;

    static const unsigned  ids[] = {
        [PLAYER_DISCORD_METHOD] = RF_F_METHOD,
        [PLAYER_DISCORD_URI] = RF_F_URI,
        [PLAYER_DISCORD_HOST] = RF_F_HOST,
        [PLAYER_DISCORD_SOURCE] = RF_F_SOURCE,
        [PLAYER_DISCORD_CLIENT] = RF_F_CLIENT,
        [PLAYER_DISCORD_BUCKET] = RF_F_BUCKET
    };

    rec = &pr->rec;
    rf_buf_reset(&d->value);

    switch (part->what) {

    case PLAYER_DISCORD_TEXT:
        return rf_buf_add(&d->value, part->text, part->len);

    case PLAYER_DISCORD_METHOD:
    case PLAYER_DISCORD_URI:
    case PLAYER_DISCORD_HOST:
    case PLAYER_DISCORD_SOURCE:
    case PLAYER_DISCORD_CLIENT:
    case PLAYER_DISCORD_BUCKET:
        if (rf_rec_field(rec, ids[part->what], &s) == 0) {
            return player_discord_clean(&d->value, s.data, s.len);
        }

        /* as the JSON view has it */

        return rf_buf_adds(&d->value,
                           part->what == PLAYER_DISCORD_BUCKET ? "default"
                           : "-");

    case PLAYER_DISCORD_STATUS:
        if (rf_rec_field_u64(rec, RF_F_STATUS, &v) == 0) {
            return rf_buf_printf(&d->value, "%llu", (unsigned long long) v);
        }

        return rf_buf_addc(&d->value, '-');

    case PLAYER_DISCORD_DURATION:
        if (rf_rec_field_u64(rec, RF_F_DURATION_US, &v) == 0) {
            return rf_buf_printf(&d->value, "%llu.%03llu",
                                 (unsigned long long) (v / 1000),
                                 (unsigned long long) (v % 1000));
        }

        return rf_buf_addc(&d->value, '-');

    case PLAYER_DISCORD_ID:
        if (rf_rec_field(rec, RF_F_SOURCE, &s) == 0
            && player_discord_clean(&d->value, s.data, s.len) != 0)
        {
            return -1;
        }

        return rf_buf_printf(&d->value, ":%llu",
                             (unsigned long long) rec->sseq);

    case PLAYER_DISCORD_SEQ:
        return rf_buf_printf(&d->value, "%llu", (unsigned long long) pr->seq);

    case PLAYER_DISCORD_TS:
        sec = (time_t) (rec->time_ns / 1000000000);
        gmtime_r(&sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

        return rf_buf_printf(&d->value, "%s.%06lluZ", ts,
                             (unsigned long long)
                             (rec->time_ns % 1000000000) / 1000);

    case PLAYER_DISCORD_KIND:
        return rf_buf_adds(&d->value, rf_kind_name(rec->kind));

    case PLAYER_DISCORD_HEADER:
        off = 0;

        while (rf_rec_next_field(rec, &off, &f)) {
            if (f.id == RF_F_HEADER
                && rf_rec_header_split(&f.val, &name, &value) == 0
                && name.len == part->len
                && strncasecmp((const char *) name.data, part->text,
                               name.len) == 0)
            {
                return player_discord_clean(&d->value, value.data,
                                            value.len);
            }
        }

        return rf_buf_addc(&d->value, '-');

    default:
        break;
    }

    return 0;
}


/*
 * Captured bytes as text: invalid UTF-8 becomes U+FFFD, control
 * characters a blank, so that a value never breaks the line apart.
 */

static int
player_discord_clean(rf_buf_t *b, const unsigned char *p, size_t n)
{
    size_t  i, k;

    for (i = 0; i < n; i += k) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            k = 1;
            if (rf_buf_addc(b, ' ') != 0) {
                return -1;
            }

            continue;
        }

        k = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : 2;

        if (i + k <= n && rf_utf8_valid(p + i, k)) {
            if (rf_buf_add(b, p + i, k) != 0) {
                return -1;
            }

            continue;
        }

        k = 1;
        if (rf_buf_adds(b, PLAYER_DISCORD_REPLACEMENT) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Characters of valid UTF-8 as UTF-16 counts them: one outside the BMP
 * is two.  Never fewer than code points, whichever Discord counts.
 */

static size_t
player_discord_chars(const unsigned char *p, size_t n)
{
    size_t  i, c;

    c = 0;

    for (i = 0; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            c += (p[i] >= 0xf0) ? 2 : 1;
        }
    }

    return c;
}


/* the bytes of the longest prefix of at most chars characters */

static size_t
player_discord_cut(const unsigned char *p, size_t n, size_t chars)
{
    size_t  i, c, w;

    c = 0;

    for (i = 0; i < n; /* void */) {
        w = (p[i] >= 0xf0) ? 2 : 1;
        if (c + w > chars) {
            break;
        }

        c += w;

        for (i++; i < n && (p[i] & 0xc0) == 0x80; i++) {
            /* void */
        }
    }

    return i;
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
