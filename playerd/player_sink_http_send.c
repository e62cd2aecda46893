/*
 * Copyright (C) ReplayForge contributors
 *
 * The http sink's replay loop: a batch's records are turned into requests
 * (original method, uri under the target's base path, headers in order
 * without the hop-by-hop ones, body byte-exact) and run on one libcurl
 * multi handle, up to "concurrency" per target over keepalive
 * connections, every record to every target.  A record is admitted
 * (begun) in order, after the rate limit and, with "speed", after its
 * original distance from the one before; nothing else is in flight then,
 * so the original order holds.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "rf_log.h"
#include "player.h"
#include "player_sink_http.h"


#define PLAYER_HTTP_POLL_MS     1000


static int player_sink_http_prepare(player_http_ctx_t *ctx,
    const player_rec_t *recs, size_t n);
static int player_sink_http_admit(player_http_ctx_t *ctx,
    const player_rec_t *recs, size_t i, uint64_t *wake);
static uint64_t player_sink_http_due(player_http_ctx_t *ctx,
    const player_rec_t *r, uint64_t now);
static void player_sink_http_dispatch(player_http_ctx_t *ctx,
    const player_rec_t *recs, size_t n, uint64_t *wake);
static void player_sink_http_done(player_http_ctx_t *ctx,
    const player_rec_t *recs, player_http_slot_t *slot, CURLcode rc);
static void player_sink_http_mismatch(player_http_ctx_t *ctx,
    const player_rec_t *r, const player_http_job_t *job,
    player_http_target_t *tg, uint64_t orig, long status, uint64_t us);
static void player_sink_http_remember(player_http_ctx_t *ctx,
    const player_rec_t *r, uint64_t done);
static uint64_t player_sink_http_recall(player_http_ctx_t *ctx,
    const player_rec_t *r, int forget);


int
player_sink_http_write(player_sink_t *s, const player_rec_t *recs, size_t n,
    int *status, const char **why)
{
    int                  running, left, busy, finished;
    long                 ms;
    size_t               i, t;
    CURLMsg             *msg;
    uint64_t             wake, now;
    CURLMcode            mc;
    player_http_ctx_t   *ctx;
    player_http_job_t   *job;
    player_http_slot_t  *slot;

    ctx = s->ctx;

    if (player_sink_http_prepare(ctx, recs, n) != 0) {
        for (i = 0; i < n; i++) {
            status[i] = PLAYER_RETRY;
            why[i] = "out of memory";
        }
        return -1;
    }

    for ( ;; ) {
        wake = 0;
        player_sink_http_dispatch(ctx, recs, n, &wake);

        busy = 0;
        for (t = 0; t < ctx->conf->ntargets; t++) {
            busy += ctx->targets[t].inflight;
        }

        if (busy == 0 && wake == 0) {
            break;
        }

        mc = curl_multi_perform(ctx->multi, &running);
        if (mc != CURLM_OK) {
            log_warnx("sink http %s: %s", s->name, curl_multi_strerror(mc));
        }

        finished = 0;

        while ((msg = curl_multi_info_read(ctx->multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE) {
                continue;
            }

            finished++;

            slot = NULL;
            (void) curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
                                     (char **) &slot);
            if (slot != NULL) {
                player_sink_http_done(ctx, recs, slot, msg->data.result);
            }
        }

        /* freed slots and maybe an admission: start more before sleeping */

        if (finished > 0) {
            continue;
        }

        /* sleep until a socket or the next admission is due */

        ms = PLAYER_HTTP_POLL_MS;

        if (wake != 0) {
            now = rf_now_ns();
            ms = (wake > now) ? (long) ((wake - now + 999999) / 1000000) : 0;
            if (ms > PLAYER_HTTP_POLL_MS) {
                ms = PLAYER_HTTP_POLL_MS;
            }
        }

        if (ms > 0 || busy) {
            (void) curl_multi_poll(ctx->multi, NULL, 0, (int) ms, NULL);
        }
    }

    for (i = 0; i < n; i++) {
        job = &ctx->jobs[i];

        if (job->status == PLAYER_OK && job->left > 0) {
            job->status = PLAYER_RETRY;     /* cannot happen; be safe */
            job->why = "not sent";
        }

        status[i] = job->status;
        why[i] = job->why;

        if (ctx->conf->ntargets > 1 && recs[i].rec.kind == RF_KIND_HTTP) {
            if (job->status == PLAYER_RETRY && job->done != 0) {
                player_sink_http_remember(ctx, &recs[i], job->done);

            } else if (ctx->npartial > 0) {
                (void) player_sink_http_recall(ctx, &recs[i], 1);
            }
        }
    }

    return 0;
}



static int
player_sink_http_prepare(player_http_ctx_t *ctx, const player_rec_t *recs,
    size_t n)
{
    size_t              i, t, ntargets;
    uint64_t            us;
    player_http_job_t  *job, *jobs;

    if (n > ctx->njobs) {
        jobs = realloc(ctx->jobs, n * sizeof(player_http_job_t));
        if (jobs == NULL) {
            return -1;
        }

        ctx->jobs = jobs;
        ctx->njobs = n;
    }

    ntargets = ctx->conf->ntargets;

    for (i = 0; i < n; i++) {
        job = &ctx->jobs[i];
        memset(job, 0, sizeof(player_http_job_t));
        job->status = PLAYER_OK;

        if (recs[i].rec.kind != RF_KIND_HTTP) {
            player_http_add(&ctx->skipped, 1);
            continue;
        }

        if (ctx->npartial > 0) {
            job->done = player_sink_http_recall(ctx, &recs[i], 0);
        }

        for (t = 0; t < ntargets; t++) {
            if (!(job->done & (1ULL << t))) {
                job->left++;
            }
        }

        if (rf_rec_field_u64(&recs[i].rec, RF_F_DURATION_US, &us) == 0) {
            job->orig_us = us;
            job->has_orig = 1;
        }
    }

    for (t = 0; t < ntargets; t++) {
        ctx->targets[t].next = 0;
    }

    ctx->admitted = 0;

    return 0;
}


/* each target walks the batch in order, as far as its slots and
 * the admission of new records allow */

static void
player_sink_http_dispatch(player_http_ctx_t *ctx, const player_rec_t *recs,
    size_t n, uint64_t *wake)
{
    size_t                 i, t, k, conc;
    const char            *why;
    player_http_job_t     *job;
    player_http_slot_t    *slot;
    player_http_target_t  *tg;

    conc = (size_t) ctx->conf->concurrency;

    for (t = 0; t < ctx->conf->ntargets; t++) {
        tg = &ctx->targets[t];

        while (tg->inflight < conc && tg->next < n) {
            i = tg->next;
            job = &ctx->jobs[i];

            if (job->left == 0 || (job->done & (1ULL << t))
                || job->status == PLAYER_FAIL)
            {
                tg->next++;
                continue;
            }

            if (i >= ctx->admitted
                && !player_sink_http_admit(ctx, recs, i, wake))
            {
                break;
            }

            for (k = t * conc; ctx->slots[k].busy; k++) {
                /* void: inflight < conc, so one is free */
            }

            slot = &ctx->slots[k];
            slot->rec = i;
            slot->target = t;

            why = player_sink_http_start(ctx, slot, &recs[i].rec);

            if (why != NULL) {
                /* the record itself is wrong: no target will take it */
                job->status = PLAYER_FAIL;
                job->why = why;
                job->left = 0;
                tg->next++;
                continue;
            }

            slot->busy = 1;
            tg->inflight++;
            tg->next++;
        }
    }
}


/* 1 when record i may begin now; else 0, with *wake set when it may */

static int
player_sink_http_admit(player_http_ctx_t *ctx, const player_rec_t *recs,
    size_t i, uint64_t *wake)
{
    size_t               t;
    uint64_t             now, due, wait;
    const player_rec_t  *r;
    player_http_conf_t  *c;

    c = ctx->conf;
    r = &recs[i];
    now = rf_now_ns();
    due = now;

    if (c->speed > 0) {
        for (t = 0; t < c->ntargets; t++) {
            if (ctx->targets[t].inflight > 0) {
                return 0;               /* one record at a time */
            }
        }

        due = player_sink_http_due(ctx, r, now);

        if (due > now) {
            if (*wake == 0 || due < *wake) {
                *wake = due;
            }
            return 0;
        }
    }

    if (c->rate > 0) {
        if (ctx->rl.burst > c->rate / 20.0 + 1) {
            /* a twentieth of a second's worth: smooth, not bursty */
            rf_ratelimit_init(&ctx->rl, (double) c->rate,
                              c->rate / 20.0, now);
        }

        wait = rf_ratelimit_take(&ctx->rl, 1, now);
        if (wait > 0) {
            if (*wake == 0 || now + wait < *wake) {
                *wake = now + wait;
            }
            return 0;
        }
    }

    if (c->speed > 0
        && (!ctx->anchored
            || (ctx->capped && ctx->capped_seq == r->seq)
            || (r->rec.time_ns >= ctx->anchor_rec
                && now > due + c->max_wait * 1000000)))
    {
        /* the first, or after a cut wait or a long stall: start afresh */
        ctx->anchored = 1;
        ctx->anchor_mono = now;
        ctx->anchor_rec = r->rec.time_ns;
        ctx->capped = 0;
    }

    ctx->admitted = i + 1;

    return 1;
}


/*
 * When a record is due at "speed": its capture time's distance from the
 * anchor record's, divided by speed, after the anchor's replay.  A wait
 * longer than max_wait is cut to max_wait (once per record: the cut
 * deadline is kept), and the pacing starts afresh from that record.
 */

static uint64_t
player_sink_http_due(player_http_ctx_t *ctx, const player_rec_t *r,
    uint64_t now)
{
    uint64_t             off, due, cap;
    player_http_conf_t  *c;

    c = ctx->conf;

    if (!ctx->anchored) {
        return now;
    }

    if (ctx->capped && ctx->capped_seq == r->seq) {
        return ctx->capped_due;
    }

    off = 0;
    if (r->rec.time_ns > ctx->anchor_rec) {
        off = (uint64_t) ((double) (r->rec.time_ns - ctx->anchor_rec)
                          / c->speed);
    }

    due = ctx->anchor_mono + off;
    cap = now + c->max_wait * 1000000;

    if (due > cap) {
        ctx->capped = 1;
        ctx->capped_seq = r->seq;
        ctx->capped_due = cap;
        player_http_add(&ctx->waits, 1);
        return cap;
    }

    return due;
}


/* a request is over: an answer of any status, or no answer at all */

static void
player_sink_http_done(player_http_ctx_t *ctx, const player_rec_t *recs,
    player_http_slot_t *slot, CURLcode rc)
{
    long                   code;
    uint64_t               orig;
    curl_off_t             us;
    const player_rec_t    *r;
    player_http_job_t     *job;
    player_http_target_t  *tg;

    tg = &ctx->targets[slot->target];
    job = &ctx->jobs[slot->rec];
    r = &recs[slot->rec];

    (void) curl_multi_remove_handle(ctx->multi, slot->easy);
    slot->busy = 0;
    tg->inflight--;
    job->left--;

    if (rc != CURLE_OK) {
        player_http_add(&tg->errors, 1);

        if (rc == CURLE_URL_MALFORMAT || rc == CURLE_UNSUPPORTED_PROTOCOL) {
            job->status = PLAYER_FAIL;
            job->why = curl_easy_strerror(rc);

        } else if (job->status != PLAYER_FAIL) {
            job->status = PLAYER_RETRY;
            job->why = curl_easy_strerror(rc);
        }

        log_warnx("sink http %s: %s: %s", ctx->sink->name, tg->base,
                  slot->error[0] ? slot->error : curl_easy_strerror(rc));
        return;
    }

    code = 0;
    us = 0;
    (void) curl_easy_getinfo(slot->easy, CURLINFO_RESPONSE_CODE, &code);
    (void) curl_easy_getinfo(slot->easy, CURLINFO_TOTAL_TIME_T, &us);

    job->done |= 1ULL << slot->target;

    player_http_add(&tg->requests, 1);
    player_http_add(&tg->latency_us, (uint64_t) us);

    if (code >= 100 && code < 600) {
        player_http_add(&tg->status[code / 100], 1);
    }

    if (job->has_orig) {
        player_http_add(&tg->orig_us, job->orig_us);
        player_http_add(&tg->orig_count, 1);
    }

    if (ctx->conf->compare
        && rf_rec_field_u64(&r->rec, RF_F_STATUS, &orig) == 0 && orig != 0
        && orig != (uint64_t) code)
    {
        player_http_add(&tg->mismatches, 1);
        player_sink_http_mismatch(ctx, r, job, tg, orig, code,
                                  (uint64_t) us);
    }
}


/* one NDJSON line per mismatch, written whole with one write() */

static void
player_sink_http_mismatch(player_http_ctx_t *ctx, const player_rec_t *r,
    const player_http_job_t *job, player_http_target_t *tg, uint64_t orig,
    long status, uint64_t us)
{
    int        rc;
    ssize_t    n;
    rf_str_t   source, method, uri;
    rf_buf_t  *b;

    if (ctx->mismatch_fd == -1) {
        return;
    }

    if (rf_rec_field(&r->rec, RF_F_SOURCE, &source) != 0) {
        source.len = 0;
    }

    if (rf_rec_field(&r->rec, RF_F_METHOD, &method) != 0) {
        method.len = 0;
    }

    if (rf_rec_field(&r->rec, RF_F_URI, &uri) != 0) {
        uri.len = 0;
    }

    b = &ctx->line;
    rf_buf_reset(b);

    rc = rf_buf_adds(b, "{\"id\":\"");
    rc = rc || rf_json_escape(b, source.data, source.len);
    rc = rc || rf_buf_printf(b, ":%" PRIu64 "\",\"seq\":%" PRIu64
                             ",\"target\":", r->rec.sseq, r->seq);
    rc = rc || rf_json_str(b, (const unsigned char *) tg->base,
                           strlen(tg->base));
    rc = rc || rf_buf_adds(b, ",\"method\":");
    rc = rc || rf_json_str(b, method.data, method.len);
    rc = rc || rf_buf_adds(b, ",\"uri\":");
    rc = rc || rf_json_str(b, uri.data, uri.len);
    rc = rc || rf_buf_printf(b, ",\"status\":%" PRIu64
                             ",\"replayed_status\":%ld", orig, status);

    if (job->has_orig) {
        rc = rc || rf_buf_printf(b, ",\"duration_ms\":%.3f",
                                 job->orig_us / 1000.0);
    }

    rc = rc || rf_buf_printf(b, ",\"replayed_ms\":%.3f}\n", us / 1000.0);

    if (rc != 0) {
        return;
    }

    n = write(ctx->mismatch_fd, b->data, b->len);
    if (n != (ssize_t) b->len) {
        log_warn("sink http %s: write(\"%s\")", ctx->sink->name,
                 ctx->conf->mismatch_log);
    }
}


/*
 * Records some targets answered and others did not are remembered by
 * seq, so that the retry goes only to the others: a target never gets a
 * record twice.  A small ring; the oldest is forgotten when it is full.
 * A script's fan-out gives records of one seq: their bytes (which stay
 * where they are while the batch is retried) tell them apart.  What a
 * script's tick() made has no seq and is not remembered: its retry goes
 * to every target.
 */

static void
player_sink_http_remember(player_http_ctx_t *ctx, const player_rec_t *r,
    uint64_t done)
{
    size_t  i;

    if (r->seq == 0) {
        return;
    }

    for (i = 0; i < ctx->npartial; i++) {
        if (ctx->partial[i].seq == r->seq && ctx->partial[i].buf == r->rec.buf)
        {
            ctx->partial[i].done = done;
            return;
        }
    }

    ctx->partial[ctx->partial_next].seq = r->seq;
    ctx->partial[ctx->partial_next].buf = r->rec.buf;
    ctx->partial[ctx->partial_next].done = done;
    ctx->partial_next = (ctx->partial_next + 1) % PLAYER_HTTP_PARTIAL_MAX;

    if (ctx->npartial < PLAYER_HTTP_PARTIAL_MAX) {
        ctx->npartial++;
    }
}


static uint64_t
player_sink_http_recall(player_http_ctx_t *ctx, const player_rec_t *r,
    int forget)
{
    size_t    i;
    uint64_t  done;

    for (i = 0; i < ctx->npartial; i++) {
        if (ctx->partial[i].seq == r->seq && ctx->partial[i].buf == r->rec.buf)
        {
            done = ctx->partial[i].done;

            if (forget) {
                ctx->partial[i].seq = UINT64_MAX;
                ctx->partial[i].buf = NULL;
                ctx->partial[i].done = 0;
            }

            return done;
        }
    }

    return 0;
}
