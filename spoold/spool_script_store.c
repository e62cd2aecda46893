/*
 * Copyright (C) ReplayForge contributors
 *
 * Committing what rf-spoold's scripts queued: the dead letters synced
 * first, then the records stamped and added inside the transaction of a
 * ring batch (spool_ring.c) or of their own (tick() with the ring idle),
 * and the scripts' counters carried into the meta with the same commit.
 * Nothing is forgotten before the commit succeeded: a failed one is
 * retried with the very same queue.
 */

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "rf_log.h"
#include "spool_script_int.h"


#define SPOOL_SCRIPT_KEEP           (4 * 1024 * 1024)   /* queue kept */


int
spool_script_pending(const spool_script_t *ss)
{
    return ss->out.n != 0 || spool_dead_pending(&ss->dead);
}


size_t
spool_script_count(const spool_script_t *ss)
{
    return ss->out.n;
}


uint64_t
spool_script_bytes(const spool_script_t *ss, size_t idlen)
{
    return ss->out.data.len + ss->out.n * RF_REC_FIELD_SIZE(idlen);
}


int
spool_script_sync(spool_script_t *ss)
{
    return spool_dead_sync(&ss->dead);
}


int
spool_script_add(spool_script_t *ss, spool_buffer_t *b, const rf_str_t *id,
    uint64_t *sseq, uint64_t *invalid)
{
    int            rc;
    size_t         i, need, n;
    rf_str_t       bucket;
    rf_rec_t       rec;
    const char    *err;
    rf_lua_rec_t  *r;

    for (i = 0; i < ss->out.n; i++) {
        r = &ss->out.recs[i];

        /* the bridge seals what it builds: this only finds our own bugs */

        if (rf_rec_parse_sealed(&rec, ss->out.data.data + r->off, r->len,
                                &err) != 0)
        {
            (*invalid)++;
            log_warnx("scripts: skipped an invalid record of %zu bytes: %s",
                      r->len, err);
            continue;
        }

        need = rec.len + RF_REC_FIELD_SIZE(id->len);

        if (rf_buf_reserve(&ss->stamp, need) != 0) {
            log_warnx("scripts: no memory to stamp a record of %zu bytes",
                      need);
            return -1;
        }

        n = rf_rec_stamp(&rec, *sseq, id, ss->stamp.data, ss->stamp.cap);
        if (n == 0) {
            (*invalid)++;
            log_warnx("scripts: skipped a record of %" PRIu32 " bytes: too "
                      "large to stamp", rec.len);
            continue;
        }

        if (rf_rec_field(&rec, RF_F_BUCKET, &bucket) != 0) {
            bucket.len = 0;
            bucket.data = NULL;
        }

        rc = spool_buffer_add(b, *sseq, &bucket, ss->stamp.data, n);
        if (rc == -1) {
            return -1;
        }

        if (rc == 1) {
            (*sseq)++;
        }
    }

    return 0;
}


void
spool_script_counts(spool_script_t *ss, spool_script_counts_t *c)
{
    size_t     i;
    uint64_t  *d;
    const uint64_t  *s;

    memset(c, 0, sizeof(spool_script_counts_t));

    for (i = 0; ss->set != NULL && i < ss->set->n; i++) {
        rf_lua_stats(ss->set->luas[i].lua, &ss->set->luas[i].seen);
        spool_script_delta(c, &ss->set->luas[i].seen,
                           &ss->set->luas[i].base);
    }

    ss->carry_seen = ss->carry;

    /* a struct of uint64_t only: added up as an array */

    d = (uint64_t *) c;
    s = (const uint64_t *) &ss->carry;

    for (i = 0; i < SPOOL_SCRIPT_NCOUNTS; i++) {
        d[i] += s[i];
    }
}


void
spool_script_committed(spool_script_t *ss)
{
    size_t           i;
    uint64_t        *d;
    const uint64_t  *s;

    for (i = 0; ss->set != NULL && i < ss->set->n; i++) {
        ss->set->luas[i].base = ss->set->luas[i].seen;
    }

    d = (uint64_t *) &ss->carry;
    s = (const uint64_t *) &ss->carry_seen;

    for (i = 0; i < SPOOL_SCRIPT_NCOUNTS; i++) {
        d[i] -= s[i];
    }

    memset(&ss->carry_seen, 0, sizeof(spool_script_counts_t));

    rf_lua_out_reset(&ss->out);

    if (ss->out.data.cap > SPOOL_SCRIPT_KEEP) {
        rf_lua_out_free(&ss->out);
        rf_lua_out_init(&ss->out);
    }

    if (ss->stamp.cap > SPOOL_SCRIPT_KEEP) {
        rf_buf_free(&ss->stamp);
    }
}


int64_t
spool_script_store(spool_script_t *ss, spool_buffer_t *b, const rf_str_t *id)
{
    int                  err;
    uint64_t             sseq, first, invalid;
    spool_commit_t       c;
    const spool_meta_t  *m;

    if (!spool_script_pending(ss)) {
        return 0;
    }

    if (spool_script_sync(ss) != 0) {
        return -1;
    }

    /* the ring's position stays: none of these records came from it */

    m = spool_buffer_meta(b);

    c.ring_generation = m->ring_generation;
    c.ring_pos = m->ring_pos;
    c.ring_batch = m->ring_batch;

    if (spool_buffer_begin(b, spool_script_bytes(ss, id->len),
                           spool_script_count(ss))
        != 0)
    {
        return -1;
    }

    first = spool_buffer_meta(b)->next_sseq;
    sseq = first;
    invalid = 0;

    if (spool_script_add(ss, b, id, &sseq, &invalid) != 0) {
        err = errno;
        spool_buffer_rollback(b);
        errno = err;
        return -1;
    }

    c.next_sseq = sseq;
    c.invalid = invalid;
    spool_script_counts(ss, &c.script);

    if (spool_buffer_commit(b, &c) != 0) {
        return -1;
    }

    spool_script_committed(ss);

    log_debug("stored %" PRIu64 " records of the scripts", sseq - first);

    return (int64_t) (sseq - first);
}


void
spool_script_delta(spool_script_counts_t *c, const rf_lua_stats_t *now,
    const rf_lua_stats_t *base)
{
    c->calls += now->calls - base->calls;
    c->ticks += now->ticks - base->ticks;
    c->errors += now->errors - base->errors;
    c->budget += now->budget - base->budget;
    c->memory += now->memory - base->memory;
    c->dropped += now->dropped - base->dropped;
    c->produced += now->produced - base->produced;
}
