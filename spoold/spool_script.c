/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's Lua transforms.  A record read from the ring goes through
 * the global script, and each record that comes out of it through the
 * script of its bucket, once: what that one returns is final, whatever
 * bucket it names.  This happens as the batch is read, not when it is
 * stored, because a store that fails is retried with the same batch and
 * a script must see each record once; the outputs wait in a queue that
 * the batch's commit stores (with the ring position), or a commit of its
 * own when they come from tick() and no batch is being read.  Without
 * scripts the ring's records are stored as they are (spool_ring.c).
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_log.h"
#include "spool_script_int.h"


#define SPOOL_SCRIPT_DEAD_SUFFIX    ".dead.ndjson"
#define SPOOL_SCRIPT_WHY            1024


static int spool_script_open(spool_script_set_t *set,
    const spoold_conf_t *conf, const char *path, const char *bucket,
    char *err, size_t errlen);
static spool_lua_t *spool_script_find(spool_script_set_t *set,
    const rf_rec_t *rec);
static void spool_script_bucket(spool_script_t *ss, const rf_rec_t *rec);
static void spool_script_stage(spool_script_t *ss, spool_lua_t *from);
static void spool_script_failed(spool_script_t *ss, spool_lua_t *sl,
    const rf_rec_t *rec, const char *why);
static int spool_script_over(spool_script_t *ss, size_t n, size_t len,
    uint64_t limit, char *why, size_t whylen);


int
spool_script_test(const spoold_conf_t *conf, char *err, size_t errlen)
{
    spool_script_set_t  *set;

    set = spool_script_load(conf, err, errlen);
    if (set == NULL) {
        return -1;
    }

    spool_script_set_free(set);

    return 0;
}


spool_script_set_t *
spool_script_load(const spoold_conf_t *conf, char *err, size_t errlen)
{
    size_t               i, n, len;
    const char          *buffer;
    spool_script_set_t  *set;

    set = calloc(1, sizeof(spool_script_set_t));
    if (set == NULL) {
        goto nomem;
    }

    n = (conf->script != NULL && conf->script[0] != '\0') ? 1 : 0;

    for (i = 0; i < conf->nbuckets; i++) {
        if (conf->buckets[i].script != NULL
            && conf->buckets[i].script[0] != '\0')
        {
            n++;
        }
    }

    if (n > 0) {
        set->luas = calloc(n, sizeof(spool_lua_t));
        if (set->luas == NULL) {
            goto nomem;
        }
    }

    if (conf->script != NULL && conf->script[0] != '\0') {
        if (spool_script_open(set, conf, conf->script, NULL, err, errlen)
            != 0)
        {
            goto failed;
        }

        set->global = &set->luas[0];
    }

    for (i = 0; i < conf->nbuckets; i++) {
        if (conf->buckets[i].script != NULL
            && conf->buckets[i].script[0] != '\0'
            && spool_script_open(set, conf, conf->buckets[i].script,
                                 conf->buckets[i].name, err, errlen)
               != 0)
        {
            goto failed;
        }
    }

    if (conf->dead_letter != NULL && conf->dead_letter[0] != '\0') {
        set->dead_letter = strdup(conf->dead_letter);

    } else {
        buffer = conf->buffer ? conf->buffer : "rf-spoold";
        len = strlen(buffer) + sizeof(SPOOL_SCRIPT_DEAD_SUFFIX);

        set->dead_letter = malloc(len);
        if (set->dead_letter != NULL) {
            snprintf(set->dead_letter, len, "%s" SPOOL_SCRIPT_DEAD_SUFFIX,
                     buffer);
        }
    }

    set->source = strdup(conf->id ? conf->id : "");

    if (set->dead_letter == NULL || set->source == NULL) {
        goto nomem;
    }

    set->dead_letter_max = conf->dead_letter_max;
    set->tick_ms = conf->script_tick;

    return set;

nomem:

    snprintf(err, errlen, "out of memory");

failed:

    spool_script_set_free(set);

    return NULL;
}


static int
spool_script_open(spool_script_set_t *set, const spoold_conf_t *conf,
    const char *path, const char *bucket, char *err, size_t errlen)
{
    char           name[96];
    spool_lua_t   *sl;
    rf_lua_conf_t  lc;

    memset(&lc, 0, sizeof(rf_lua_conf_t));

    lc.path = path;
    lc.budget = (uint64_t) conf->script_budget;
    lc.memory = conf->script_memory;
    lc.stamp_source = conf->id ? conf->id : "";

    if (bucket != NULL) {
        snprintf(name, sizeof(name), "bucket \"%s\"", bucket);
        lc.name = name;
    }

    sl = &set->luas[set->n];

    sl->lua = rf_lua_open(&lc, err, errlen);
    if (sl->lua == NULL) {
        return -1;
    }

    set->n++;

    if (bucket != NULL) {
        sl->bucket = strdup(bucket);
        if (sl->bucket == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }

    if (rf_lua_has_transform(sl->lua)) {
        set->transform = 1;
        set->buckets |= (bucket != NULL);
    }

    set->tick |= (rf_lua_has_tick(sl->lua) != 0);

    return 0;
}


void
spool_script_set_free(spool_script_set_t *set)
{
    size_t  i;

    if (set == NULL) {
        return;
    }

    for (i = 0; i < set->n; i++) {
        rf_lua_close(set->luas[i].lua);
        free(set->luas[i].bucket);
    }

    free(set->luas);
    free(set->dead_letter);
    free(set->source);
    free(set);
}


spool_script_t *
spool_script_create(const spoold_conf_t *conf, char *err, size_t errlen)
{
    spool_script_t      *ss;
    spool_script_set_t  *set;

    set = spool_script_load(conf, err, errlen);
    if (set == NULL) {
        return NULL;
    }

    ss = calloc(1, sizeof(spool_script_t));
    if (ss == NULL) {
        snprintf(err, errlen, "out of memory");
        spool_script_set_free(set);
        return NULL;
    }

    spool_dead_init(&ss->dead);
    rf_lua_out_init(&ss->out);
    rf_lua_out_init(&ss->stage);
    rf_buf_init(&ss->stamp);

    spool_script_install(ss, set);

    return ss;
}


void
spool_script_destroy(spool_script_t *ss)
{
    if (ss == NULL) {
        return;
    }

    spool_dead_free(&ss->dead);
    spool_script_set_free(ss->set);
    rf_lua_out_free(&ss->out);
    rf_lua_out_free(&ss->stage);
    rf_buf_free(&ss->stamp);
    free(ss);
}


void
spool_script_install(spool_script_t *ss, spool_script_set_t *set)
{
    size_t               i;
    spool_lua_t         *sl;
    rf_lua_stats_t       now;
    spool_script_set_t  *old;

    spool_dead_set(&ss->dead, set->dead_letter, set->dead_letter_max);

    /* what the old scripts did and no commit counted yet is kept */

    old = ss->set;

    for (i = 0; old != NULL && i < old->n; i++) {
        rf_lua_stats(old->luas[i].lua, &now);
        spool_script_delta(&ss->carry, &now, &old->luas[i].base);
    }

    spool_script_set_free(old);

    ss->set = set;
    ss->next_tick = 0;

    for (i = 0; i < set->n; i++) {
        sl = &set->luas[i];

        log_info("script \"%s\" loaded for %s%s%s:%s%s",
                 rf_lua_path(sl->lua), sl->bucket ? "bucket \"" : "",
                 sl->bucket ? sl->bucket : "every record",
                 sl->bucket ? "\"" : "",
                 rf_lua_has_transform(sl->lua) ? " transform()" : "",
                 rf_lua_has_tick(sl->lua) ? " tick()" : "");
    }
}


int
spool_script_active(const spool_script_t *ss)
{
    return ss->set != NULL && ss->set->transform;
}


void
spool_script_run(spool_script_t *ss, const rf_rec_t *rec, uint64_t limit)
{
    char          why[SPOOL_SCRIPT_WHY];
    size_t        n, len;
    spool_lua_t  *sl;

    /* sl: the script to blame for too much output */

    sl = ss->set->global;
    n = ss->out.n;
    len = ss->out.data.len;

    if (sl == NULL || !rf_lua_has_transform(sl->lua)) {
        spool_script_bucket(ss, rec);
        sl = spool_script_find(ss->set, rec);

    } else {
        rf_lua_out_reset(&ss->stage);

        if (rf_lua_transform(sl->lua, rec, &ss->stage, why, sizeof(why))
            != 0)
        {
            spool_script_failed(ss, sl, rec, why);
            return;
        }

        spool_script_stage(ss, sl);
    }

    if (sl != NULL && spool_script_over(ss, n, len, limit, why, sizeof(why))) {
        ss->carry.errors++;
        spool_script_failed(ss, sl, rec, why);
    }
}


void
spool_script_tick(spool_script_t *ss, uint64_t now_ms, uint64_t limit)
{
    int                  rc;
    char                 why[SPOOL_SCRIPT_WHY];
    size_t               i, n, len;
    spool_lua_t         *sl;
    spool_script_set_t  *set;

    set = ss->set;

    if (set == NULL || !set->tick) {
        return;
    }

    if (ss->next_tick == 0) {
        ss->next_tick = now_ms + set->tick_ms;
        return;
    }

    if (now_ms < ss->next_tick) {
        return;
    }

    /* from now: a spool held up for a while does not tick in a burst */
    ss->next_tick = now_ms + set->tick_ms;

    for (i = 0; i < set->n; i++) {
        sl = &set->luas[i];

        if (!rf_lua_has_tick(sl->lua)) {
            continue;
        }

        n = ss->out.n;
        len = ss->out.data.len;

        /* the global script's records still see their bucket's script */

        if (sl == set->global) {
            rf_lua_out_reset(&ss->stage);
            rc = rf_lua_tick(sl->lua, &ss->stage, why, sizeof(why));

        } else {
            rc = rf_lua_tick(sl->lua, &ss->out, why, sizeof(why));
        }

        if (rc != 0) {
            log_warnx("script \"%s\": tick(): %s", rf_lua_path(sl->lua), why);
            continue;
        }

        if (sl == set->global) {
            spool_script_stage(ss, sl);
        }

        if (spool_script_over(ss, n, len, limit, why, sizeof(why))) {
            ss->carry.errors++;
            log_warnx("script \"%s\": tick(): %s, dropped",
                      rf_lua_path(sl->lua), why);
        }
    }
}


static spool_lua_t *
spool_script_find(spool_script_set_t *set, const rf_rec_t *rec)
{
    size_t        i;
    rf_str_t      b;
    spool_lua_t  *sl;

    static const rf_str_t  dflt = rf_string("default");

    if (!set->buckets) {
        return NULL;
    }

    if (rf_rec_field(rec, RF_F_BUCKET, &b) != 0 || b.len == 0) {
        b = dflt;
    }

    for (i = 0; i < set->n; i++) {
        sl = &set->luas[i];

        if (sl->bucket != NULL && strlen(sl->bucket) == b.len
            && memcmp(sl->bucket, b.data, b.len) == 0)
        {
            return rf_lua_has_transform(sl->lua) ? sl : NULL;
        }
    }

    return NULL;
}


/* the last step: what comes out is queued as it is */

static void
spool_script_bucket(spool_script_t *ss, const rf_rec_t *rec)
{
    char          why[SPOOL_SCRIPT_WHY];
    spool_lua_t  *sl;

    sl = spool_script_find(ss->set, rec);

    if (sl == NULL) {
        if (rf_lua_out_add(&ss->out, rec->buf, rec->len) != 0) {
            log_warnx("scripts: no memory to queue a record of %" PRIu32
                      " bytes, dropped", rec->len);
        }

        return;
    }

    if (rf_lua_transform(sl->lua, rec, &ss->out, why, sizeof(why)) != 0) {
        spool_script_failed(ss, sl, rec, why);
    }
}


/* the global script's records, each on to its bucket's script */

static void
spool_script_stage(spool_script_t *ss, spool_lua_t *from)
{
    size_t         i;
    rf_rec_t       rec;
    const char    *err;
    rf_lua_rec_t  *r;

    for (i = 0; i < ss->stage.n; i++) {
        r = &ss->stage.recs[i];

        if (rf_rec_parse_sealed(&rec, ss->stage.data.data + r->off, r->len,
                                &err) != 0)
        {
            log_warnx("script \"%s\": skipped an invalid record it "
                      "returned: %s", rf_lua_path(from->lua), err);
            continue;
        }

        spool_script_bucket(ss, &rec);
    }

    rf_lua_out_reset(&ss->stage);
}


static void
spool_script_failed(spool_script_t *ss, spool_lua_t *sl, const rf_rec_t *rec,
    const char *why)
{
    int          rc;
    const char  *path;

    path = rf_lua_path(sl->lua);

    rc = spool_dead_add(&ss->dead, why, path, ss->set->source, rec);

    if (rc == 1) {
        ss->carry.dead_lettered++;
        log_warnx("script \"%s\": %s; the record went to the dead-letter "
                  "file \"%s\"", path, why, ss->dead.path);
        return;
    }

    ss->carry.dead_dropped++;

    log_warnx("script \"%s\": %s; the record is dropped: %s \"%s\"", path,
              why, (rc == 0) ? "dead_letter_max reached in"
                             : "no memory for a line of", ss->dead.path);
}


/*
 * What one record (or one tick()) became is stored in one transaction,
 * which the cap's shares bound to a batch's bytes (spool_buffer.c): more
 * than one record over that is refused, as an error of the script.
 */

static int
spool_script_over(spool_script_t *ss, size_t n, size_t len, uint64_t limit,
    char *why, size_t whylen)
{
    size_t    recs;
    uint64_t  bytes;

    recs = ss->out.n - n;
    bytes = ss->out.data.len - len
            + recs * RF_REC_FIELD_SIZE(strlen(ss->set->source));

    if (recs <= 1 || bytes <= limit) {
        return 0;
    }

    snprintf(why, whylen, "%zu records of %" PRIu64 " bytes came out, more "
             "than one batch of the buffer takes (%" PRIu64 " bytes)", recs,
             bytes, limit);

    ss->out.n = n;
    ss->out.data.len = len;

    return 1;
}

