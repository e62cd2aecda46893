/*
 * Copyright (C) ReplayForge contributors
 *
 * The Lua scripts of rf-playerd (common/rf_lua.c runs them): a bucket's
 * script sees every record of a pulled batch once, before the sinks, and
 * routes what it returns to all of them or, with r.sink, to some; a
 * sink's script sees what reaches that sink, once, before the retries.
 * The states are opened with the configuration (so -t and a reload
 * catch a broken script) and used by the bucket's sink thread alone.
 * Every output record carries the relay seq of the record it came from;
 * what tick() returns carries 0.  A record a script fails on goes to the
 * dead-letter file and the rest of the batch goes on.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_log.h"
#include "playerd.h"


#define PLAYER_SCRIPT_WHY       1024


static int player_script_open(const player_conf_t *conf, const char *path,
    const char *name, rf_lua_t **lua, char *err, size_t errlen);
static int player_script_collect(player_pipe_t *p, rf_lua_out_t *out,
    player_recs_t *r);
static int player_script_reserve(player_pipe_t *p, player_recs_t *r,
    size_t n);
static int player_script_failed(player_pipe_t *p, player_sink_t *s,
    const char *path, const char *why, const player_rec_t *pr, int *dead);
static int player_script_unrouted(player_pipe_t *p, player_recs_t *r,
    int *dead);
static int player_script_routed(const rf_lua_out_t *out, size_t route,
    const char *sink);
static int player_script_json(rf_buf_t *b, const char *prefix,
    const rf_lua_t *lua);
static void player_script_values(const rf_lua_t *lua, uint64_t v[8]);


/* every script of a configuration; -t, start-up and reload call this */

int
player_scripts_open(player_conf_t *conf, char *err, size_t errlen)
{
    char                   name[256];
    size_t                 i, j;
    player_sink_t         *s;
    player_bucket_conf_t  *b;

    for (i = 0; i < conf->nbuckets; i++) {
        b = &conf->buckets[i];

        if (b->script != NULL) {
            snprintf(name, sizeof(name), "bucket \"%s\"", b->name);

            if (player_script_open(conf, b->script, name, &b->lua, err,
                                   errlen)
                != 0)
            {
                return -1;
            }
        }

        for (j = 0; j < b->nsinks; j++) {
            s = b->sinks[j];

            if (s->script == NULL) {
                continue;
            }

            snprintf(name, sizeof(name), "bucket \"%s\" sink \"%s\"",
                     b->name, s->name);

            if (player_script_open(conf, s->script, name, &s->lua, err,
                                   errlen)
                != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


static int
player_script_open(const player_conf_t *conf, const char *path,
    const char *name, rf_lua_t **lua, char *err, size_t errlen)
{
    char           msg[2048];
    rf_lua_conf_t  lc;

    if (path[0] == '\0') {
        snprintf(err, errlen, "%s: \"script\" must name a file", name);
        return -1;
    }

    memset(&lc, 0, sizeof(rf_lua_conf_t));
    lc.path = path;
    lc.name = name;
    lc.budget = (uint64_t) conf->script_budget;
    lc.memory = conf->script_memory;
    lc.stamp_source = NULL;

    msg[0] = '\0';

    *lua = rf_lua_open(&lc, msg, sizeof(msg));
    if (*lua == NULL) {
        snprintf(err, errlen, "%s: %s", name,
                 msg[0] ? msg : "cannot open the script");
        return -1;
    }

    return 0;
}


/* 1 when some script of the bucket has a tick() */

int
player_script_ticks(const player_bucket_conf_t *bc)
{
    size_t  i;

    if (bc->lua != NULL && rf_lua_has_tick(bc->lua)) {
        return 1;
    }

    for (i = 0; i < bc->nsinks; i++) {
        if (bc->sinks[i]->lua != NULL && rf_lua_has_tick(bc->sinks[i]->lua)) {
            return 1;
        }
    }

    return 0;
}


void
player_script_init(player_pipe_t *p)
{
    rf_lua_out_init(&p->bout);
    rf_lua_out_init(&p->sout);
    memset(&p->brecs, 0, sizeof(player_recs_t));
    memset(&p->srecs, 0, sizeof(player_recs_t));
}


void
player_script_free(player_pipe_t *p)
{
    rf_lua_out_free(&p->bout);
    rf_lua_out_free(&p->sout);
    free(p->brecs.recs);
    free(p->brecs.routes);
    free(p->srecs.recs);
    free(p->srecs.routes);
    memset(&p->brecs, 0, sizeof(player_recs_t));
    memset(&p->srecs, 0, sizeof(player_recs_t));
}


/*
 * The bucket's transform() on n records (of a batch), or its tick()
 * (in NULL): the output in p->brecs, with routes.  A record the script
 * fails on is dead-lettered ("sink": null), as is one routed to a sink
 * the bucket does not have (for that name).  0, or -1 stopped.
 */

int
player_script_bucket(player_pipe_t *p, const player_rec_t *in, size_t n,
    player_recs_t **out, int *dead)
{
    char       why[PLAYER_SCRIPT_WHY];
    size_t     i, k, from;
    rf_lua_t  *lua;

    lua = p->bc->lua;
    rf_lua_out_reset(&p->bout);

    if (in == NULL) {
        if (rf_lua_tick(lua, &p->bout, why, sizeof(why)) != 0) {
            log_warnx("bucket \"%s\": script %s: tick(): %s", p->bc->name,
                      p->bc->script, why);
            rf_lua_out_reset(&p->bout);
        }

        /* not from the relay */

        for (k = 0; k < p->bout.n; k++) {
            rf_rec_set_rseq(p->bout.data.data + p->bout.recs[k].off, 0);
        }
    }

    for (i = 0; in != NULL && i < n; i++) {
        from = p->bout.n;

        if (rf_lua_transform(lua, &in[i].rec, &p->bout, why, sizeof(why))
            != 0)
        {
            if (player_script_failed(p, NULL, p->bc->script, why, &in[i],
                                     dead)
                != 0)
            {
                return -1;
            }

            continue;
        }

        for (k = from; k < p->bout.n; k++) {
            rf_rec_set_rseq(p->bout.data.data + p->bout.recs[k].off,
                            in[i].seq);
        }
    }

    if (player_script_collect(p, &p->bout, &p->brecs) != 0) {
        return -1;
    }

    if (player_script_unrouted(p, &p->brecs, dead) != 0) {
        return -1;
    }

    *out = &p->brecs;

    return 0;
}


/*
 * What reaches sink s of the records in: those without a route and
 * those routed to it, through its transform() when it has one.  *out is
 * in itself when nothing is left out and nothing changed.  0, or -1
 * stopped.
 */

int
player_script_sink(player_pipe_t *p, player_sink_t *s,
    const player_recs_t *in, player_recs_t **out, int *dead)
{
    char       why[PLAYER_SCRIPT_WHY];
    size_t     i, k, from;
    rf_lua_t  *lua;

    lua = (s->lua != NULL && rf_lua_has_transform(s->lua)) ? s->lua : NULL;

    if (lua == NULL && in->routes == NULL) {
        *out = (player_recs_t *) in;
        return 0;
    }

    if (lua == NULL) {
        if (player_script_reserve(p, &p->srecs, in->n) != 0) {
            return -1;
        }

        p->srecs.n = 0;

        for (i = 0; i < in->n; i++) {
            if (player_script_routed(&p->bout, in->routes[i], s->name)) {
                p->srecs.recs[p->srecs.n] = in->recs[i];
                p->srecs.routes[p->srecs.n] = RF_LUA_NO_ROUTE;
                p->srecs.n++;
            }
        }

        *out = &p->srecs;
        return 0;
    }

    rf_lua_out_reset(&p->sout);

    for (i = 0; i < in->n; i++) {
        if (in->routes != NULL
            && !player_script_routed(&p->bout, in->routes[i], s->name))
        {
            continue;
        }

        from = p->sout.n;

        if (rf_lua_transform(lua, &in->recs[i].rec, &p->sout, why,
                             sizeof(why))
            != 0)
        {
            if (player_script_failed(p, s, s->script, why, &in->recs[i], dead)
                != 0)
            {
                return -1;
            }

            continue;
        }

        for (k = from; k < p->sout.n; k++) {
            rf_rec_set_rseq(p->sout.data.data + p->sout.recs[k].off,
                            in->recs[i].seq);
        }
    }

    if (player_script_collect(p, &p->sout, &p->srecs) != 0) {
        return -1;
    }

    /* a sink's script routes nowhere else */

    for (i = 0; i < p->srecs.n; i++) {
        p->srecs.routes[i] = RF_LUA_NO_ROUTE;
    }

    *out = &p->srecs;

    return 0;
}


/* sink s's tick(): what it returns goes to s alone */

int
player_script_sink_tick(player_pipe_t *p, player_sink_t *s,
    player_recs_t **out)
{
    char    why[PLAYER_SCRIPT_WHY];
    size_t  k;

    rf_lua_out_reset(&p->sout);

    if (rf_lua_tick(s->lua, &p->sout, why, sizeof(why)) != 0) {
        log_warnx("bucket \"%s\" sink \"%s\": script %s: tick(): %s",
                  p->bc->name, s->name, s->script, why);
        rf_lua_out_reset(&p->sout);
    }

    for (k = 0; k < p->sout.n; k++) {
        rf_rec_set_rseq(p->sout.data.data + p->sout.recs[k].off, 0);
    }

    if (player_script_collect(p, &p->sout, &p->srecs) != 0) {
        return -1;
    }

    for (k = 0; k < p->srecs.n; k++) {
        p->srecs.routes[k] = RF_LUA_NO_ROUTE;
    }

    *out = &p->srecs;

    return 0;
}


/*
 * out's records as views (out is not appended to while they are used).
 * The bridge seals what it produces: a record that does not parse would
 * be its bug, logged and left out.
 */
static int
player_script_collect(player_pipe_t *p, rf_lua_out_t *out, player_recs_t *r)
{
    size_t         i;
    const char    *err;
    player_rec_t  *pr;

    if (player_script_reserve(p, r, out->n) != 0) {
        return -1;
    }

    r->n = 0;

    for (i = 0; i < out->n; i++) {
        pr = &r->recs[r->n];

        if (rf_rec_parse_sealed(&pr->rec, out->data.data + out->recs[i].off,
                                out->recs[i].len, &err) != 0)
        {
            log_warnx("bucket \"%s\": a script's record does not parse: %s",
                      p->bc->name, err);
            continue;
        }

        pr->seq = pr->rec.rseq;
        r->routes[r->n] = out->recs[i].route;
        r->n++;
    }

    return 0;
}


static int
player_script_reserve(player_pipe_t *p, player_recs_t *r, size_t n)
{
    size_t         cap;
    size_t        *routes;
    player_rec_t  *recs;

    while (r->cap < n) {
        cap = r->cap ? r->cap * 2 : 64;
        cap = cap < n ? n : cap;

        recs = realloc(r->recs, cap * sizeof(player_rec_t));
        if (recs != NULL) {
            r->recs = recs;
        }

        routes = realloc(r->routes, cap * sizeof(size_t));
        if (routes != NULL) {
            r->routes = routes;
        }

        if (recs != NULL && routes != NULL) {
            r->cap = cap;
            break;
        }

        log_warnx("bucket \"%s\": out of memory for %zu script records",
                  p->bc->name, n);

        if (player_sleep(&p->stop, 1000) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * The record a script failed on goes to the dead-letter file; should
 * even that write fail, it is tried again (the script does not run
 * again), and the batch stays unacked if the player stops meanwhile.
 * 0, or -1 stopped.
 */
static int
player_script_failed(player_pipe_t *p, player_sink_t *s, const char *path,
    const char *why, const player_rec_t *pr, int *dead)
{
    char  reason[PLAYER_SCRIPT_WHY + 512];

    snprintf(reason, sizeof(reason), "script %s: %s", path, why);

    while (player_dead_write(p, s ? s->name : NULL, path, 1, reason,
                             &pr->rec)
           != 0)
    {
        if (player_sleep(&p->stop, 1000) != 0) {
            return -1;
        }
    }

    log_warnx("bucket \"%s\"%s%s%s: record %" PRIu64 " dead-lettered: %s",
              p->bc->name, s ? " sink \"" : "", s ? s->name : "",
              s ? "\"" : "", pr->seq, reason);

    if (s != NULL) {
        __atomic_add_fetch(&s->dead, 1, __ATOMIC_RELAXED);
    }

    __atomic_add_fetch(&p->dead, 1, __ATOMIC_RELAXED);
    *dead = 1;

    return 0;
}


/* a route naming a sink the bucket does not have: dead-lettered, per name */

static int
player_script_unrouted(player_pipe_t *p, player_recs_t *r, int *dead)
{
    char           why[PLAYER_NAME_MAX * 2 + 64];
    size_t         i, j;
    const char    *name;

    for (i = 0; i < r->n; i++) {
        name = NULL;

        while ((name = rf_lua_route_next(&p->bout, r->routes[i], name))
               != NULL)
        {
            for (j = 0; j < p->bc->nsinks; j++) {
                if (strcmp(p->bc->sinks[j]->name, name) == 0) {
                    break;
                }
            }

            if (j < p->bc->nsinks) {
                continue;
            }

            snprintf(why, sizeof(why), "no sink \"%.*s\" in bucket \"%s\"",
                     PLAYER_NAME_MAX, name, p->bc->name);

            if (player_script_failed(p, NULL, p->bc->script, why,
                                     &r->recs[i], dead)
                != 0)
            {
                return -1;
            }
        }
    }

    return 0;
}


static int
player_script_routed(const rf_lua_out_t *out, size_t route, const char *sink)
{
    const char  *name;

    if (route == RF_LUA_NO_ROUTE) {
        return 1;
    }

    name = NULL;

    while ((name = rf_lua_route_next(out, route, name)) != NULL) {
        if (strcmp(name, sink) == 0) {
            return 1;
        }
    }

    return 0;
}


/* the heartbeat's members: "script_*" of the bucket, "<sink>_script_*" */

int
player_script_stats_json(const player_bucket_conf_t *bc, rf_buf_t *b)
{
    int     rc;
    size_t  i;

    rc = 0;

    if (bc->lua != NULL) {
        rc |= player_script_json(b, "", bc->lua);
    }

    for (i = 0; i < bc->nsinks; i++) {
        if (bc->sinks[i]->lua != NULL) {
            rc |= player_script_json(b, bc->sinks[i]->name, bc->sinks[i]->lua);
        }
    }

    return rc ? -1 : 0;
}


static int
player_script_json(rf_buf_t *b, const char *prefix, const rf_lua_t *lua)
{
    int             rc;
    size_t          k;
    uint64_t        v[8];

    static const char *const  keys[] = {
        "calls", "ticks", "errors", "budget", "memory", "dropped",
        "produced"
    };

    player_script_values(lua, v);

    rc = 0;

    for (k = 0; k < 7; k++) {
        rc |= rf_buf_adds(b, ",\"");

        if (prefix[0] != '\0') {
            rc |= rf_json_escape(b, (const unsigned char *) prefix,
                                 strlen(prefix));
            rc |= rf_buf_addc(b, '_');
        }

        rc |= rf_buf_printf(b, "script_%s\":%" PRIu64, keys[k], v[k]);
    }

    return rc ? -1 : 0;
}



/* a script's counters in the order of the stats' keys and the metrics */
static void
player_script_values(const rf_lua_t *lua, uint64_t v[8])
{
    rf_lua_stats_t  st;

    rf_lua_stats(lua, &st);

    v[0] = st.calls;
    v[1] = st.ticks;
    v[2] = st.errors;
    v[3] = st.budget;
    v[4] = st.memory;
    v[5] = st.dropped;
    v[6] = st.produced;
    v[7] = st.memory_used;
}

/*
 * Prometheus samples of every script, labelled by bucket and sink (""
 * for a bucket's own script); under player_pipes_lock.
 */

int
player_script_metrics(rf_buf_t *out)
{
    int                    rc;
    size_t                 i, j, k;
    uint64_t               v[8];
    rf_lua_t              *lua;
    const char            *sink;
    player_bucket_conf_t  *bc;

    static const struct {
        const char  *name;
        const char  *type;
        const char  *help;
    } fam[] = {
        { "rf_player_script_calls_total", "counter",
          "transform() calls" },
        { "rf_player_script_ticks_total", "counter",
          "tick() calls" },
        { "rf_player_script_errors_total", "counter",
          "calls that failed: an error or a bad return" },
        { "rf_player_script_budget_total", "counter",
          "calls stopped by the instruction budget" },
        { "rf_player_script_memory_total", "counter",
          "calls stopped by the memory cap" },
        { "rf_player_script_dropped_total", "counter",
          "records a transform() dropped (returned nil)" },
        { "rf_player_script_produced_total", "counter",
          "records transform() and tick() returned" },
        { "rf_player_script_memory_bytes", "gauge",
          "memory the script's state holds" }
    };

    rc = 0;

    for (k = 0; k < sizeof(fam) / sizeof(fam[0]); k++) {
        rc |= rf_buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n",
                            fam[k].name, fam[k].help, fam[k].name,
                            fam[k].type);

        for (i = 0; i < player_npipes; i++) {
            bc = player_pipes[i].bc;

            for (j = 0; j <= bc->nsinks; j++) {
                lua = (j == 0) ? bc->lua : bc->sinks[j - 1]->lua;
                sink = (j == 0) ? "" : bc->sinks[j - 1]->name;

                if (lua == NULL) {
                    continue;
                }

                player_script_values(lua, v);

                rc |= rf_buf_printf(out, "%s{bucket=\"%s\",sink=\"%s\"} %"
                                    PRIu64 "\n", fam[k].name, bc->name,
                                    sink, v[k]);
            }
        }
    }

    return rc ? -1 : 0;
}
