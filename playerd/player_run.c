/*
 * Copyright (C) ReplayForge contributors
 *
 * One batch through the sinks of its bucket: the bucket's script first
 * (once per record), then per sink what reaches it (its route, its own
 * script), offered again and again with a doubling backoff, until the
 * sink took the records, refused them for good, or ran out of tries;
 * those two go to the dead-letter file, which is fsync'ed before the
 * batch counts as done (and so before the ack).  A record is never
 * dropped by the core: when even the dead-letter write fails, it stays
 * pending.  The scripts' tick() outputs take the same way, unacked.
 */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rf_log.h"
#include "playerd.h"


typedef struct {
    size_t                     *pending;    /* indexes into the records */
    size_t                      npending;
    unsigned                   *tries;      /* per record */
    player_rec_t               *recs;       /* the offer */
    int                        *status;
    const char                **why;
} player_offer_t;


static int player_run_recs(player_pipe_t *p, const player_recs_t *recs,
    int *dead);
static int player_run_sink(player_pipe_t *p, player_sink_t *s,
    const player_rec_t *recs, size_t n, int *dead);
static int player_run_synced(player_pipe_t *p, int dead);
static int player_offer_alloc(player_offer_t *o, size_t n);
static void player_offer_free(player_offer_t *o);
static int player_dead_sync(void);


static pthread_mutex_t  player_dead_mutex = PTHREAD_MUTEX_INITIALIZER;
static int              player_dead_fd = -1;
static char            *player_dead_path;


int
player_run_batch(player_pipe_t *p, player_chunk_t *c)
{
    int             dead;
    player_recs_t   chunk, *recs;

    dead = 0;

    if (p->bc->lua != NULL && rf_lua_has_transform(p->bc->lua)) {
        if (player_script_bucket(p, c->recs, c->n, &recs, &dead) != 0) {
            return -1;
        }

    } else {
        chunk.recs = c->recs;
        chunk.routes = NULL;
        chunk.n = c->n;
        chunk.cap = c->n;
        recs = &chunk;
    }

    if (player_run_recs(p, recs, &dead) != 0) {
        return -1;
    }

    return player_run_synced(p, dead);
}


/*
 * Every script_tick: the bucket's tick() (its records go the way a
 * batch's do), then each sink's (to that sink alone).  Nothing to ack.
 */

int
player_run_tick(player_pipe_t *p)
{
    int             dead;
    size_t          i;
    uint64_t        now;
    player_sink_t  *s;
    player_recs_t  *recs;

    now = player_now_ms();

    if (now < p->next_tick) {
        return 0;
    }

    p->next_tick = now + p->conf->script_tick;
    dead = 0;

    if (p->bc->lua != NULL && rf_lua_has_tick(p->bc->lua)) {
        if (player_script_bucket(p, NULL, 0, &recs, &dead) != 0
            || player_run_recs(p, recs, &dead) != 0)
        {
            return -1;
        }
    }

    for (i = 0; i < p->bc->nsinks; i++) {
        s = p->bc->sinks[i];

        if (s->lua == NULL || !rf_lua_has_tick(s->lua)) {
            continue;
        }

        if (player_script_sink_tick(p, s, &recs) != 0
            || player_run_sink(p, s, recs->recs, recs->n, &dead) != 0)
        {
            return -1;
        }
    }

    return player_run_synced(p, dead);
}


/* each sink its share of recs, through its script; 0, or -1 stopped */

static int
player_run_recs(player_pipe_t *p, const player_recs_t *recs, int *dead)
{
    size_t          i;
    player_sink_t  *s;
    player_recs_t  *out;

    for (i = 0; i < p->bc->nsinks; i++) {
        s = p->bc->sinks[i];

        if (player_script_sink(p, s, recs, &out, dead) != 0
            || player_run_sink(p, s, out->recs, out->n, dead) != 0)
        {
            return -1;
        }
    }

    return 0;
}


/* what was dead-lettered is on disk before the ack */

static int
player_run_synced(player_pipe_t *p, int dead)
{
    while (dead && player_dead_sync() != 0) {
        log_warn("dead_letter \"%s\": fsync", player_dead_path);

        if (player_sleep(&p->stop, 1000) != 0) {
            return -1;
        }
    }

    return 0;
}


/* one sink: 0 when it took or dead-lettered every record, -1 stopped */

static int
player_run_sink(player_pipe_t *p, player_sink_t *s, const player_rec_t *recs,
    size_t n, int *dead)
{
    int              st;
    size_t           i, j, k, m;
    uint64_t         backoff;
    const char      *why;
    player_offer_t   offer, *o;

    if (n == 0) {
        return 0;
    }

    o = &offer;

    while (player_offer_alloc(o, n) != 0) {
        log_warnx("bucket \"%s\": out of memory for a batch of %zu",
                  p->bc->name, n);

        if (player_sleep(&p->stop, 1000) != 0) {
            return -1;
        }
    }

    for (i = 0; i < n; i++) {
        o->pending[i] = i;
        o->tries[i] = 0;
    }

    o->npending = n;
    backoff = p->conf->retry_backoff;

    while (o->npending > 0) {

        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
            player_offer_free(o);
            return -1;
        }

        m = o->npending;

        for (j = 0; j < m; j++) {
            o->recs[j] = recs[o->pending[j]];
            o->status[j] = PLAYER_RETRY;
            o->why[j] = NULL;
        }

        if (s->type->write(s, o->recs, m, o->status, o->why) != 0) {
            for (j = 0; j < m; j++) {
                o->status[j] = PLAYER_RETRY;

                if (o->why[j] == NULL) {
                    o->why[j] = "sink failed";
                }
            }
        }

        /* the records still pending stay in order, compacted in place */

        k = 0;

        for (j = 0; j < m; j++) {
            i = o->pending[j];
            st = o->status[j];
            why = o->why[j];
            o->tries[i]++;

            if (st == PLAYER_OK) {
                __atomic_add_fetch(&s->taken, 1, __ATOMIC_RELAXED);
                continue;
            }

            if (st != PLAYER_FAIL && o->tries[i] < p->conf->max_tries) {
                __atomic_add_fetch(&s->retried, 1, __ATOMIC_RELAXED);
                o->pending[k++] = i;
                continue;
            }

            if (why == NULL) {
                why = (st == PLAYER_FAIL) ? "refused" : "too many tries";
            }

            if (player_dead_write(p, s->name, NULL, o->tries[i], why,
                                  &recs[i].rec)
                != 0)
            {
                /* not lost: offered again, and dead-lettered later */
                o->pending[k++] = i;
                continue;
            }

            log_warnx("bucket \"%s\" sink \"%s\": record %" PRIu64
                      " dead-lettered after %u tries: %s", p->bc->name,
                      s->name, recs[i].seq, o->tries[i], why);

            __atomic_add_fetch(&s->dead, 1, __ATOMIC_RELAXED);
            __atomic_add_fetch(&p->dead, 1, __ATOMIC_RELAXED);
            *dead = 1;
        }

        o->npending = k;

        if (k == 0) {
            break;
        }

        if (player_sleep(&p->stop, backoff) != 0) {
            player_offer_free(o);
            return -1;
        }

        backoff *= 2;

        if (backoff > PLAYER_BACKOFF_MAX_MS) {
            backoff = PLAYER_BACKOFF_MAX_MS;
        }
    }

    player_offer_free(o);

    return 0;
}


static int
player_offer_alloc(player_offer_t *o, size_t n)
{
    memset(o, 0, sizeof(player_offer_t));

    n = n ? n : 1;

    o->pending = calloc(n, sizeof(size_t));
    o->tries = calloc(n, sizeof(unsigned));
    o->recs = calloc(n, sizeof(player_rec_t));
    o->status = calloc(n, sizeof(int));
    o->why = calloc(n, sizeof(const char *));

    if (o->pending == NULL || o->tries == NULL || o->recs == NULL
        || o->status == NULL || o->why == NULL)
    {
        player_offer_free(o);
        return -1;
    }

    return 0;
}


static void
player_offer_free(player_offer_t *o)
{
    free(o->pending);
    free(o->tries);
    free(o->recs);
    free(o->status);
    free(o->why);

    memset(o, 0, sizeof(player_offer_t));
}


/* the dead-letter file: opened once, shared by every pipeline */

int
player_dead_open(const char *path, char *err, size_t errlen)
{
    int  fd;

    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd == -1) {
        snprintf(err, errlen, "cannot open dead_letter \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }

    pthread_mutex_lock(&player_dead_mutex);

    if (player_dead_fd != -1) {
        (void) close(player_dead_fd);
    }

    free(player_dead_path);

    player_dead_fd = fd;
    player_dead_path = strdup(path);

    pthread_mutex_unlock(&player_dead_mutex);

    return 0;
}


void
player_dead_close(void)
{
    pthread_mutex_lock(&player_dead_mutex);

    if (player_dead_fd != -1) {
        (void) close(player_dead_fd);
        player_dead_fd = -1;
    }

    free(player_dead_path);
    player_dead_path = NULL;

    pthread_mutex_unlock(&player_dead_mutex);
}


/* one NDJSON line per record, written with one write(2) under O_APPEND */

int
player_dead_write(player_pipe_t *p, const char *sink, const char *script,
    unsigned tries, const char *reason, const rf_rec_t *rec)
{
    int       rc;
    size_t    off;
    ssize_t   n;
    rf_buf_t  b;

    rf_buf_init(&b);

    rc = rf_buf_adds(&b, "{\"bucket\":");
    rc |= rf_json_str(&b, (const unsigned char *) p->bc->name,
                      strlen(p->bc->name));
    rc |= rf_buf_adds(&b, ",\"consumer\":");
    rc |= rf_json_str(&b, (const unsigned char *) p->bc->consumer,
                      strlen(p->bc->consumer));
    rc |= rf_buf_adds(&b, ",\"sink\":");

    if (sink != NULL) {
        rc |= rf_json_str(&b, (const unsigned char *) sink, strlen(sink));

    } else {
        rc |= rf_buf_adds(&b, "null");
    }

    if (script != NULL) {
        rc |= rf_buf_adds(&b, ",\"script\":");
        rc |= rf_json_str(&b, (const unsigned char *) script,
                          strlen(script));
    }

    rc |= rf_buf_printf(&b, ",\"tries\":%u,\"reason\":", tries);
    rc |= rf_json_str(&b, (const unsigned char *) reason, strlen(reason));
    rc |= rf_buf_adds(&b, ",\"record\":");
    rc |= rf_rec_to_json(rec, &b);

    if (rc != 0) {
        rf_buf_free(&b);
        log_warnx("dead_letter: out of memory");
        return -1;
    }

    if (b.len > 0 && b.data[b.len - 1] == '\n') {
        b.len--;
    }

    if (rf_buf_adds(&b, "}\n") != 0) {
        rf_buf_free(&b);
        log_warnx("dead_letter: out of memory");
        return -1;
    }

    pthread_mutex_lock(&player_dead_mutex);

    rc = 0;

    for (off = 0; off < b.len; off += (size_t) n) {
        n = write(player_dead_fd, b.data + off, b.len - off);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            log_warn("dead_letter \"%s\": write", player_dead_path);
            rc = -1;
            break;
        }
    }

    pthread_mutex_unlock(&player_dead_mutex);

    rf_buf_free(&b);

    return rc;
}


static int
player_dead_sync(void)
{
    int  rc;

    pthread_mutex_lock(&player_dead_mutex);
    rc = fsync(player_dead_fd);
    pthread_mutex_unlock(&player_dead_mutex);

    return rc == -1 ? -1 : 0;
}
