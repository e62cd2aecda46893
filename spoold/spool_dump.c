/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold --dump and --stats: read-only looks at a buffer, safe next to
 * a running spool.  Reads happen in short transactions and output is
 * written between them, so a slow pipe never holds the spool's WAL.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "rf_buf.h"
#include "rf_record.h"
#include "rf_ring.h"
#include "spoold.h"
#include "spool_store.h"


typedef struct {
    rf_buf_t                    out;
    uint64_t                    bad;
    int                         failed;
} spool_dump_ctx_t;


static int spool_dump_record(uint64_t sseq, const unsigned char *data,
    size_t len, void *arg);
static int spool_stats_ring(rf_buf_t *b, const char *path);


int
spool_dump(const spoold_conf_t *conf)
{
    int                rc;
    char               err[4096];
    uint64_t           damaged;
    spool_store_t     *st;
    spool_dump_ctx_t   ctx;

    if (spool_store_open(&st, conf->buffer, 1, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": %s\n", err);
        return 1;
    }

    rf_buf_init(&ctx.out);
    ctx.bad = 0;
    ctx.failed = 0;

    rc = spool_store_each(st, 0, spool_dump_record, &ctx);
    damaged = spool_store_damaged(st);

    spool_store_close(st);
    rf_buf_free(&ctx.out);

    if (fflush(stdout) == EOF) {
        ctx.failed = 1;
    }

    if (ctx.failed) {
        fprintf(stderr, SPOOLD_NAME ": --dump: cannot write: %s\n",
                strerror(errno));
        return 1;
    }

    if (rc != 0) {
        fprintf(stderr, SPOOLD_NAME ": --dump: reading buffer \"%s\" "
                "failed\n", conf->buffer);
        return 1;
    }

    if (damaged) {
        fprintf(stderr, SPOOLD_NAME ": --dump: %" PRIu64 " chunks of "
                "buffer \"%s\" are damaged, the records after the damage "
                "in each were skipped\n", damaged, conf->buffer);
    }

    if (ctx.bad) {
        fprintf(stderr, SPOOLD_NAME ": --dump: %" PRIu64 " records of "
                "buffer \"%s\" are damaged\n", ctx.bad, conf->buffer);
    }

    if (damaged || ctx.bad) {
        return 1;
    }

    return 0;
}


/* builds a chunk's JSON; writes it at the chunk's end (data == NULL) */

static int
spool_dump_record(uint64_t sseq, const unsigned char *data, size_t len,
    void *arg)
{
    rf_rec_t           rec;
    const char        *err;
    spool_dump_ctx_t  *ctx;

    ctx = arg;

    if (data == NULL) {
        if (ctx->out.len > 0
            && fwrite(ctx->out.data, 1, ctx->out.len, stdout)
               != ctx->out.len)
        {
            ctx->failed = 1;
            return -1;
        }

        rf_buf_reset(&ctx->out);

        return 0;
    }

    if (rf_rec_parse(&rec, data, len, &err) != 0) {
        fprintf(stderr, SPOOLD_NAME ": --dump: record %" PRIu64 ": %s\n",
                sseq, err);
        ctx->bad++;
        return 0;
    }

    if (rf_rec_to_json(&rec, &ctx->out) != 0) {
        fprintf(stderr, SPOOLD_NAME ": --dump: out of memory\n");
        return -1;
    }

    return 0;
}


int
spool_stats(const spoold_conf_t *conf)
{
    int             rc;
    char            err[4096];
    rf_buf_t        b;
    uint64_t        db, wal;
    spool_meta_t    m;
    spool_store_t  *st;

    if (spool_store_open(&st, conf->buffer, 1, 0, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": %s\n", err);
        return 1;
    }

    rc = spool_store_read_meta(st, &m);

    spool_store_close(st);

    if (rc != 0) {
        fprintf(stderr, SPOOLD_NAME ": --stats: cannot read buffer \"%s\"\n",
                conf->buffer);
        return 1;
    }

    if (spool_store_file_sizes(conf->buffer, &db, &wal) != 0) {
        db = 0;
        wal = 0;
    }

    rf_buf_init(&b);

    rc = rf_buf_adds(&b, "{\"buffer\":");
    rc |= rf_json_str(&b, (const unsigned char *) conf->buffer,
                      strlen(conf->buffer));
    rc |= rf_buf_adds(&b, ",\"id\":");
    rc |= rf_json_str(&b, (const unsigned char *) m.id, strlen(m.id));

    rc |= rf_buf_printf(&b,
        ",\"max_buffer\":%" PRIu64 ",\"records\":%" PRIu64
        ",\"bytes\":%" PRIu64 ",\"file_bytes\":%" PRIu64
        ",\"db_bytes\":%" PRIu64 ",\"wal_bytes\":%" PRIu64
        ",\"stored_total\":%" PRIu64
        ",\"dropped_oldest\":%" PRIu64 ",\"dropped_oldest_bytes\":%" PRIu64
        ",\"dropped_newest\":%" PRIu64 ",\"dropped_newest_bytes\":%" PRIu64
        ",\"invalid\":%" PRIu64
        ",\"forwarded\":%" PRIu64 ",\"forwarded_bytes\":%" PRIu64
        ",\"rejected\":%" PRIu64 ",\"rejected_bytes\":%" PRIu64
        ",\"next_sseq\":%" PRIu64
        ",\"ring_generation\":%" PRIu64 ",\"ring_pos\":%" PRIu64
        ",\"script_calls\":%" PRIu64 ",\"script_ticks\":%" PRIu64
        ",\"script_errors\":%" PRIu64 ",\"script_budget\":%" PRIu64
        ",\"script_memory\":%" PRIu64 ",\"script_dropped\":%" PRIu64
        ",\"script_produced\":%" PRIu64 ",\"dead_lettered\":%" PRIu64
        ",\"dead_dropped\":%" PRIu64,
        m.max_buffer, m.records, m.bytes, db + wal, db, wal, m.stored_total,
        m.dropped_oldest, m.dropped_oldest_bytes, m.dropped_newest,
        m.dropped_newest_bytes, m.invalid, m.forwarded, m.forwarded_bytes,
        m.rejected, m.rejected_bytes, m.next_sseq, m.ring_generation,
        m.ring_pos, m.script.calls, m.script.ticks, m.script.errors,
        m.script.budget, m.script.memory, m.script.dropped, m.script.produced,
        m.script.dead_lettered, m.script.dead_dropped);

    if (conf->ring != NULL && conf->ring[0] != '\0') {
        rc |= spool_stats_ring(&b, conf->ring);
    }

    rc |= rf_buf_adds(&b, "}\n");

    if (rc != 0) {
        fprintf(stderr, SPOOLD_NAME ": --stats: out of memory\n");
        rf_buf_free(&b);
        return 1;
    }

    if (fwrite(b.data, 1, b.len, stdout) != b.len || fflush(stdout) == EOF) {
        fprintf(stderr, SPOOLD_NAME ": --stats: cannot write: %s\n",
                strerror(errno));
        rf_buf_free(&b);
        return 1;
    }

    rf_buf_free(&b);

    return 0;
}


/* the ring's own counters, when it can be attached; a note otherwise */

static int
spool_stats_ring(rf_buf_t *b, const char *path)
{
    int              rc;
    char             err[512];
    rf_ring_t        ring;
    rf_ring_stats_t  rs;

    if (rf_ring_attach(&ring, path, 1, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": --stats: no ring counters: %s\n", err);
        return 0;
    }

    rf_ring_get_stats(&ring, &rs);
    rf_ring_close(&ring);

    rc = rf_buf_adds(b, ",\"ring\":");
    rc |= rf_json_str(b, (const unsigned char *) path, strlen(path));

    rc |= rf_buf_printf(b,
        ",\"ring_size\":%" PRIu64 ",\"ring_head\":%" PRIu64
        ",\"ring_tail\":%" PRIu64 ",\"ring_file_generation\":%" PRIu64
        ",\"written\":%" PRIu64 ",\"written_bytes\":%" PRIu64
        ",\"dropped_full\":%" PRIu64 ",\"dropped_too_big\":%" PRIu64
        ",\"consumed\":%" PRIu64 ",\"skipped\":%" PRIu64
        ",\"skipped_bytes\":%" PRIu64,
        rs.size, rs.head, rs.tail, rs.generation, rs.written,
        rs.written_bytes, rs.dropped_full, rs.dropped_too_big, rs.consumed,
        rs.skipped, rs.skipped_bytes);

    return rc;
}
