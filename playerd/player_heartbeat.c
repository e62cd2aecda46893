/*
 * Copyright (C) ReplayForge contributors
 *
 * What the player tells about itself: the heartbeat it posts to the relay
 * every "heartbeat" interval (one per bucket, with that bucket's token,
 * so the relay's dashboard lists each pipeline), the Prometheus text of
 * player_metrics() and player_healthy(), both read by the API listener.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rf_log.h"
#include "playerd.h"


#define PLAYER_HB_TIMEOUT_MS    5000


typedef struct {
    player_conf_t              *conf;
    int                         stop;
    pthread_t                   tid;
    rf_http_client_t            http;
    char                        host[256];
    uint64_t                   *last_pulled;
    uint64_t                    last_ms;
} player_hb_t;


static void *player_hb_thread(void *arg);
static void player_hb_send(player_hb_t *hb, size_t i, uint64_t now);
static int player_hb_json(player_hb_t *hb, size_t i, uint64_t now,
    rf_buf_t *b);
static int player_metrics_family(rf_buf_t *out, const char *name,
    const char *type, const char *help);
static int player_healthy_locked(void);
static int player_heartbeat_sink_stats(player_sink_t *s, rf_buf_t *b);


static player_hb_t  *player_hb;


int
player_heartbeat_start(player_conf_t *conf, char *err, size_t errlen)
{
    player_hb_t  *hb;

    if (conf->heartbeat == 0) {
        return 0;
    }

    hb = calloc(1, sizeof(player_hb_t));
    if (hb == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    hb->conf = conf;

    hb->last_pulled = calloc(conf->nbuckets, sizeof(uint64_t));
    if (hb->last_pulled == NULL) {
        free(hb);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (gethostname(hb->host, sizeof(hb->host)) != 0) {
        snprintf(hb->host, sizeof(hb->host), "localhost");
    }

    hb->host[sizeof(hb->host) - 1] = '\0';

    if (player_http_init(&hb->http, &hb->stop, err, errlen) != 0) {
        free(hb->last_pulled);
        free(hb);
        return -1;
    }

    if (pthread_create(&hb->tid, NULL, player_hb_thread, hb) != 0) {
        snprintf(err, errlen, "pthread_create failed");
        rf_http_free(&hb->http);
        free(hb->last_pulled);
        free(hb);
        return -1;
    }

    player_hb = hb;

    return 0;
}


void
player_heartbeat_stop(void)
{
    player_hb_t  *hb;

    hb = player_hb;
    if (hb == NULL) {
        return;
    }

    player_hb = NULL;

    __atomic_store_n(&hb->stop, 1, __ATOMIC_RELEASE);
    rf_http_wakeup(&hb->http);
    pthread_join(hb->tid, NULL);

    rf_http_free(&hb->http);
    free(hb->last_pulled);
    free(hb);
}


/* the first one at once, so that the dashboard shows the player soon */

static void *
player_hb_thread(void *arg)
{
    size_t        i;
    uint64_t      now;
    player_hb_t  *hb;

    hb = arg;
    hb->last_ms = player_now_ms();

    while (!__atomic_load_n(&hb->stop, __ATOMIC_ACQUIRE)) {
        now = player_now_ms();

        for (i = 0; i < hb->conf->nbuckets; i++) {
            player_hb_send(hb, i, now);
        }

        hb->last_ms = now;

        if (player_sleep(&hb->stop, hb->conf->heartbeat) != 0) {
            break;
        }
    }

    return NULL;
}


static void
player_hb_send(player_hb_t *hb, size_t i, uint64_t now)
{
    int                    rc;
    char                   text[256];
    rf_buf_t               body, url;
    rf_http_res_t          res;
    player_bucket_conf_t  *bc;

    bc = &hb->conf->buckets[i];

    rf_buf_init(&body);
    rf_buf_init(&url);

    if (player_hb_json(hb, i, now, &body) != 0
        || rf_buf_adds(&url, hb->conf->relay) != 0
        || rf_buf_adds(&url, "/v1/heartbeat") != 0
        || rf_buf_addc(&url, '\0') != 0)
    {
        log_warnx("heartbeat: out of memory");
        goto done;
    }

    rc = player_http_post_json(&hb->http, (char *) url.data,
                               player_bucket_token(hb->conf, bc), body.data,
                               body.len, PLAYER_HB_TIMEOUT_MS, &res);

    if (rc != 0) {
        if (errno != ECANCELED) {
            log_warnx("relay %s: heartbeat failed: %s", hb->conf->relay,
                      res.error);
        }

        goto done;
    }

    if (res.status != 204 && res.status != 200) {
        rf_http_body_text(res.body, text, sizeof(text));
        log_warnx("relay %s: heartbeat refused: %ld %s", hb->conf->relay,
                  res.status, text);
    }

done:

    rf_buf_free(&body);
    rf_buf_free(&url);
}


/*
 * docs/player-plan.md: the id is the player's, or "id/bucket" when it
 * plays several buckets; every stat is numeric so the dashboard shows it.
 */
static int
player_hb_json(player_hb_t *hb, size_t i, uint64_t now, rf_buf_t *b)
{
    int                    rc;
    double                 rate;
    size_t                 j;
    uint64_t               taken, dead, lag;
    player_sink_t         *s;
    player_bucket_conf_t  *bc;
    player_bucket_stats_t  st;

    bc = &hb->conf->buckets[i];

    player_bucket_stats(i, &st);

    rate = 0;

    if (now > hb->last_ms && st.pulled >= hb->last_pulled[i]) {
        rate = (double) (st.pulled - hb->last_pulled[i]) * 1000
               / (double) (now - hb->last_ms);
    }

    hb->last_pulled[i] = st.pulled;

    lag = st.seen_seq > st.acked_seq ? st.seen_seq - st.acked_seq : 0;

    rc = rf_buf_adds(b, "{\"id\":");

    if (hb->conf->nbuckets == 1) {
        rc |= rf_json_str(b, (const unsigned char *) hb->conf->id,
                          strlen(hb->conf->id));

    } else {
        rc |= rf_buf_addc(b, '"');
        rc |= rf_json_escape(b, (const unsigned char *) hb->conf->id,
                             strlen(hb->conf->id));
        rc |= rf_buf_addc(b, '/');
        rc |= rf_json_escape(b, (const unsigned char *) bc->name,
                             strlen(bc->name));
        rc |= rf_buf_addc(b, '"');
    }

    rc |= rf_buf_adds(b, ",\"role\":\"player\",\"host\":");
    rc |= rf_json_str(b, (const unsigned char *) hb->host, strlen(hb->host));
    rc |= rf_buf_adds(b, ",\"version\":\"" PLAYERD_VERSION "\"");

    if (hb->conf->heartbeat % 1000 == 0) {
        rc |= rf_buf_printf(b, ",\"interval_s\":%" PRIu64,
                            hb->conf->heartbeat / 1000);

    } else {
        rc |= rf_buf_printf(b, ",\"interval_s\":%.3f",
                            (double) hb->conf->heartbeat / 1000);
    }

    rc |= rf_buf_adds(b, ",\"stats\":{\"bucket\":");
    rc |= rf_json_str(b, (const unsigned char *) bc->name, strlen(bc->name));
    rc |= rf_buf_adds(b, ",\"consumer\":");
    rc |= rf_json_str(b, (const unsigned char *) bc->consumer,
                      strlen(bc->consumer));
    rc |= rf_buf_printf(b, ",\"lag\":%" PRIu64 ",\"pulled\":%" PRIu64
                        ",\"acked_seq\":%" PRIu64 ",\"rate\":%.1f"
                        ",\"dead\":%" PRIu64 ",\"errors\":%" PRIu64,
                        lag, st.pulled, st.acked_seq, rate, st.dead,
                        st.errors);

    for (j = 0; j < bc->nsinks; j++) {
        s = bc->sinks[j];
        taken = __atomic_load_n(&s->taken, __ATOMIC_RELAXED);
        dead = __atomic_load_n(&s->dead, __ATOMIC_RELAXED);

        rc |= rf_buf_adds(b, ",\"");
        rc |= rf_json_escape(b, (const unsigned char *) s->name,
                             strlen(s->name));
        rc |= rf_buf_printf(b, "_taken\":%" PRIu64 ",\"", taken);
        rc |= rf_json_escape(b, (const unsigned char *) s->name,
                             strlen(s->name));
        rc |= rf_buf_printf(b, "_dead\":%" PRIu64, dead);

        if (s->type->stats_json != NULL) {
            rc |= player_heartbeat_sink_stats(s, b);
        }
    }

    rc |= player_script_stats_json(bc, b);
    rc |= rf_buf_adds(b, "}}");

    return rc ? -1 : 0;
}


/*
 * A sink type's own counters (",\"k\":N" members, numbers only) as
 * members of the flat stats object, each key prefixed with "NAME_".
 */
static int
player_heartbeat_sink_stats(player_sink_t *s, rf_buf_t *b)
{
    int       rc, open;
    size_t    i;
    rf_buf_t  t;

    rf_buf_init(&t);

    if (s->type->stats_json(s, &t) != 0) {
        rf_buf_free(&t);
        return -1;
    }

    rc = 0;
    open = 0;

    for (i = 0; i < t.len && rc == 0; i++) {
        rc = rf_buf_addc(b, t.data[i]);

        if (t.data[i] == '"' && (open = !open)) {
            rc |= rf_json_escape(b, (const unsigned char *) s->name,
                                 strlen(s->name));
            rc |= rf_buf_addc(b, '_');
        }
    }

    rf_buf_free(&t);

    return rc ? -1 : 0;
}


void
player_bucket_stats(size_t i, player_bucket_stats_t *st)
{
    player_pipe_t  *p;

    memset(st, 0, sizeof(player_bucket_stats_t));

    pthread_rwlock_rdlock(&player_pipes_lock);

    if (i < player_npipes) {
        p = &player_pipes[i];
        st->pulled = __atomic_load_n(&p->pulled, __ATOMIC_RELAXED);
        st->acked_seq = __atomic_load_n(&p->acked_seq, __ATOMIC_RELAXED);
        st->seen_seq = __atomic_load_n(&p->seen_seq, __ATOMIC_RELAXED);
        st->dead = __atomic_load_n(&p->dead, __ATOMIC_RELAXED);
        st->errors = __atomic_load_n(&p->errors, __ATOMIC_RELAXED);
    }

    pthread_rwlock_unlock(&player_pipes_lock);
}


static int
player_metrics_family(rf_buf_t *out, const char *name, const char *type,
    const char *help)
{
    return rf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help,
                         name, type);
}


int
player_metrics(rf_buf_t *out)
{
    int                    rc;
    size_t                 i, j, k, n;
    uint64_t               v, lag;
    player_pipe_t         *p;
    player_sink_t         *s;
    player_bucket_conf_t  *bc;

    static const struct {
        const char  *name;
        const char  *type;
        const char  *help;
    } fam[] = {
        { "rf_player_pulled_total", "counter",
          "records pulled from the relay" },
        { "rf_player_acked_seq", "gauge",
          "the last relay seq acked" },
        { "rf_player_lag", "gauge",
          "the last seq seen in pulls minus the acked seq" },
        { "rf_player_relay_errors_total", "counter",
          "failed pulls and acks" },
        { "rf_player_dead_total", "counter",
          "records sent to the dead-letter file" }
    };

    static const char *const  sfam[][2] = {
        { "rf_player_sink_taken_total", "records a sink took" },
        { "rf_player_sink_retried_total", "records offered to a sink again" },
        { "rf_player_sink_dead_total", "records a sink dead-lettered" }
    };

    rc = 0;

    pthread_rwlock_rdlock(&player_pipes_lock);

    n = player_npipes;

    rc |= player_metrics_family(out, "rf_player_up", "gauge",
                                "1 while every pipeline runs");
    rc |= rf_buf_printf(out, "rf_player_up %d\n", player_healthy_locked());

    for (k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
        rc |= player_metrics_family(out, fam[k].name, fam[k].type,
                                    fam[k].help);

        for (i = 0; i < n; i++) {
            p = &player_pipes[i];

            switch (k) {
            case 0:
                v = __atomic_load_n(&p->pulled, __ATOMIC_RELAXED);
                break;
            case 1:
                v = __atomic_load_n(&p->acked_seq, __ATOMIC_RELAXED);
                break;
            case 2:
                v = __atomic_load_n(&p->seen_seq, __ATOMIC_RELAXED);
                lag = __atomic_load_n(&p->acked_seq, __ATOMIC_RELAXED);
                v = v > lag ? v - lag : 0;
                break;
            case 3:
                v = __atomic_load_n(&p->errors, __ATOMIC_RELAXED);
                break;
            default:
                v = __atomic_load_n(&p->dead, __ATOMIC_RELAXED);
                break;
            }

            rc |= rf_buf_printf(out, "%s{bucket=\"%s\",consumer=\"%s\"} %"
                                PRIu64 "\n", fam[k].name, p->bc->name,
                                p->bc->consumer, v);
        }
    }

    for (k = 0; k < 3; k++) {
        rc |= player_metrics_family(out, sfam[k][0], "counter", sfam[k][1]);

        for (i = 0; i < n; i++) {
            bc = player_pipes[i].bc;

            for (j = 0; j < bc->nsinks; j++) {
                s = bc->sinks[j];
                v = __atomic_load_n(k == 0 ? &s->taken
                                    : k == 1 ? &s->retried : &s->dead,
                                    __ATOMIC_RELAXED);

                rc |= rf_buf_printf(out, "%s{bucket=\"%s\",sink=\"%s\","
                                    "type=\"%s\"} %" PRIu64 "\n",
                                    sfam[k][0], bc->name, s->name,
                                    s->type->type, v);
            }
        }
    }

    rc |= player_script_metrics(out);

    for (i = 0; i < n && rc == 0; i++) {
        bc = player_pipes[i].bc;

        for (j = 0; j < bc->nsinks; j++) {
            s = bc->sinks[j];

            if (s->type->metrics != NULL && s->type->metrics(s, out) != 0) {
                rc = -1;
                break;
            }
        }
    }

    pthread_rwlock_unlock(&player_pipes_lock);

    if (rc != 0) {
        errno = ENOMEM;
        return -1;
    }

    return 0;
}


int
player_healthy(void)
{
    int  ok;

    pthread_rwlock_rdlock(&player_pipes_lock);
    ok = player_healthy_locked();
    pthread_rwlock_unlock(&player_pipes_lock);

    return ok;
}


/* under player_pipes_lock: every pipeline's sink thread still runs */

static int
player_healthy_locked(void)
{
    size_t  i;

    if (player_npipes == 0) {
        return 0;
    }

    for (i = 0; i < player_npipes; i++) {
        if (!__atomic_load_n(&player_pipes[i].running, __ATOMIC_ACQUIRE)) {
            return 0;
        }
    }

    return 1;
}
