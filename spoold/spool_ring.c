/*
 * Copyright (C) ReplayForge contributors
 *
 * Draining the capture ring into the buffer.  A batch is a run of records
 * read in place from the ring; they are parsed, stamped (source id, next
 * sequence number) and stored in one transaction together with the ring
 * position after them, and only then released.  So a crash between the
 * commit and the release is repaired at the next attach from the meta,
 * and a failed commit leaves the records in the ring for the next try.
 * With scripts, each record goes through them as it is read (once, even
 * when the store is retried), and what they queue is stored instead.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "rf_log.h"
#include "spool_ring.h"


#define SPOOL_STAMP_KEEP        (1024 * 1024)


static int spool_ring_collect(spool_ring_t *sr, spool_buffer_t *b,
    const rf_str_t *id, spool_script_t *ss, size_t max);
static int spool_ring_store(spool_ring_t *sr, spool_buffer_t *b,
    const rf_str_t *id, spool_script_t *ss);
static void spool_ring_clear(spool_ring_t *sr);
static uint64_t spool_ring_now_ms(void);


void
spool_ring_init(spool_ring_t *sr)
{
    memset(sr, 0, sizeof(spool_ring_t));
    sr->ring.fd = -1;
    rf_buf_init(&sr->stamp);
}


void
spool_ring_free(spool_ring_t *sr)
{
    spool_ring_detach(sr);
    free(sr->recs);
    sr->recs = NULL;
    sr->nalloc = 0;
    rf_buf_free(&sr->stamp);
}


int
spool_ring_attach(spool_ring_t *sr, const char *path, spool_buffer_t *b,
    uint64_t stall_ms)
{
    char                 err[512];
    struct stat          sb;
    rf_ring_stats_t      rs;
    const spool_meta_t  *m;

    if (sr->attached) {
        return 0;
    }

    if (rf_ring_attach(&sr->ring, path, 0, err, sizeof(err)) != 0) {
        if (stat(path, &sb) == -1 && errno == ENOENT) {
            if (!sr->waiting) {
                log_info("ring \"%s\" does not exist yet, waiting for it",
                         path);
                sr->waiting = 1;
            }

            errno = ENOENT;
            return -1;
        }

        log_warnx("ring \"%s\": %s", path, err);
        errno = EINVAL;
        return -1;
    }

    /* one pass now instead of a fault per page while draining */

    if (rf_ring_populate(&sr->ring, 0) == -1) {
        log_debug("ring \"%s\": cannot pre-fault it: %s", path,
                  strerror(errno));
    }

    free(sr->path);
    sr->path = strdup(path);
    if (sr->path == NULL) {
        rf_ring_close(&sr->ring);
        errno = ENOMEM;
        return -1;
    }

    rf_ring_reader_init(&sr->ring, &sr->rd, stall_ms * 1000000);
    rf_ring_get_stats(&sr->ring, &rs);

    sr->generation = rs.generation;
    m = spool_buffer_meta(b);

    if (m->ring_generation != rs.generation) {
        log_info("ring \"%s\" attached: generation %016" PRIx64 " is new to "
                 "the buffer, reading from its tail %" PRIu64, path,
                 rs.generation, rs.tail);

    } else if (m->ring_pos > rs.tail && m->ring_pos <= rs.head) {

        /* stored and committed, but the release did not happen */

        rf_ring_release(&sr->ring, m->ring_pos, m->ring_batch);
        rf_ring_reader_init(&sr->ring, &sr->rd, stall_ms * 1000000);

        log_info("ring \"%s\" attached: released %" PRIu64 " records up to %"
                 PRIu64 " that were stored before the last stop", path,
                 m->ring_batch, m->ring_pos);

    } else if (m->ring_pos == rs.tail) {
        log_info("ring \"%s\" attached: resuming at %" PRIu64, path,
                 rs.tail);

    } else {
        log_warnx("ring \"%s\" attached: the buffer stopped at %" PRIu64
                  " but the ring's tail is %" PRIu64 " (head %" PRIu64 "), "
                  "reading from the tail", path, m->ring_pos, rs.tail,
                  rs.head);
    }

    sr->released = sr->rd.pos;
    sr->attached = 1;
    sr->waiting = 0;

    return 0;
}


void
spool_ring_detach(spool_ring_t *sr)
{
    if (!sr->attached) {
        return;
    }

    /* records not stored stay in the ring for whoever attaches next */

    spool_ring_clear(sr);
    rf_ring_close(&sr->ring);

    sr->attached = 0;
    free(sr->path);
    sr->path = NULL;
}


void
spool_ring_set_linger(spool_ring_t *sr, uint64_t linger_ms)
{
    sr->linger_ms = linger_ms;
}


void
spool_ring_set_stall(spool_ring_t *sr, uint64_t stall_ms)
{
    sr->rd.stall_timeout_ns = stall_ms * 1000000;
}


int
spool_ring_changed(spool_ring_t *sr, const char *path)
{
    rf_ring_stats_t  rs;

    if (!sr->attached) {
        return SPOOL_RING_SAME;
    }

    if (strcmp(sr->path, path) != 0 || rf_ring_replaced(&sr->ring, path)) {
        return SPOOL_RING_REPLACED;
    }

    rf_ring_get_stats(&sr->ring, &rs);

    if (rs.generation != sr->generation) {
        return SPOOL_RING_RESET;
    }

    return SPOOL_RING_SAME;
}


int64_t
spool_ring_drain(spool_ring_t *sr, spool_buffer_t *b, const rf_str_t *id,
    spool_script_t *ss, size_t max, int flush)
{
    uint64_t  n, now;

    if (!sr->attached) {
        return 0;
    }

    now = spool_ring_now_ms();

    if (!sr->failed) {
        if (sr->taken == 0) {
            sr->first_ms = now;
        }

        if (spool_ring_collect(sr, b, id, ss, max) != 0) {
            return -1;
        }

        if (sr->taken == 0) {
            /* only torn slots were skipped: nothing to store */

            if (sr->rd.pos != sr->released) {
                rf_ring_release(&sr->ring, sr->rd.pos, 0);
                sr->released = sr->rd.pos;
            }

            return 0;
        }

        if (!flush && sr->last_rc != RF_RING_OK
            && now - sr->first_ms < sr->linger_ms
            && (now - sr->first_ms < SPOOL_RING_LINGER_MS
                || sr->bytes < SPOOL_RING_LINGER_PAGES
                               * spool_buffer_page_size(b)))
        {
            return 0;
        }
    }

    if (spool_ring_store(sr, b, id, ss) != 0) {
        sr->failed = 1;
        return -1;
    }

    rf_ring_release(&sr->ring, sr->end_pos, sr->taken);
    sr->released = sr->end_pos;

    n = sr->taken;
    spool_ring_clear(sr);

    return (int64_t) n;
}


static int
spool_ring_collect(spool_ring_t *sr, spool_buffer_t *b, const rf_str_t *id,
    spool_script_t *ss, size_t max)
{
    int                   rc, scripted;
    uint32_t              len;
    uint64_t              limit, extra;
    rf_rec_t             *recs;
    const char           *err;
    const unsigned char  *p;

    if (sr->nalloc < max) {
        recs = realloc(sr->recs, max * sizeof(rf_rec_t));
        if (recs == NULL) {
            log_warnx("ring: no memory for a batch of %zu records", max);
            errno = ENOMEM;
            return -1;
        }

        sr->recs = recs;
        sr->nalloc = max;
    }

    limit = spool_buffer_batch_bytes(b);
    extra = RF_REC_FIELD_SIZE(id->len);

    sr->last_rc = RF_RING_OK;

    /*
     * A batch is read through the scripts or not at all; when a reload
     * added or removed them meanwhile, what was read is stored first.
     */

    scripted = (ss != NULL && spool_script_active(ss));

    if (sr->taken == 0) {
        sr->scripted = scripted;

    } else if (sr->scripted != scripted) {
        return 0;
    }

    while (sr->nrecs < max && sr->bytes < limit) {
        rc = rf_ring_next(&sr->ring, &sr->rd, &p, &len);
        if (rc != RF_RING_OK) {
            sr->last_rc = rc;
            break;
        }

        sr->taken++;

        if (rf_rec_parse(&sr->recs[sr->nrecs], p, len, &err) != 0) {
            sr->invalid++;
            log_warnx("ring \"%s\": skipped an invalid record of %" PRIu32
                      " bytes: %s", sr->path, len, err);
            continue;
        }

        if (sr->scripted) {
            spool_script_run(ss, &sr->recs[sr->nrecs], limit);
            sr->bytes = spool_script_bytes(ss, id->len);
            sr->nrecs++;
            continue;
        }

        sr->bytes += len + extra;
        sr->nrecs++;
    }

    sr->end_pos = sr->rd.pos;

    return 0;
}


static int
spool_ring_store(spool_ring_t *sr, spool_buffer_t *b, const rf_str_t *id,
    spool_script_t *ss)
{
    int              rc, err;
    size_t           i, need, n, nrecs;
    uint64_t         sseq, invalid, bytes;
    rf_str_t         bucket;
    spool_commit_t   c;

    /* the scripts' records replace the batch's, tick()'s come on top */

    nrecs = sr->scripted ? 0 : sr->nrecs;
    bytes = sr->scripted ? 0 : sr->bytes;

    if (ss != NULL) {
        if (spool_script_sync(ss) != 0) {
            return -1;
        }

        bytes += spool_script_bytes(ss, id->len);
    }

    if (spool_buffer_begin(b, bytes,
                           nrecs + (ss ? spool_script_count(ss) : 0))
        != 0)
    {
        return -1;
    }

    sseq = spool_buffer_meta(b)->next_sseq;
    invalid = sr->invalid;

    for (i = 0; i < nrecs; i++) {
        need = sr->recs[i].len + RF_REC_FIELD_SIZE(id->len);

        if (rf_buf_reserve(&sr->stamp, need) != 0) {
            log_warnx("ring: no memory to stamp a record of %zu bytes",
                      need);
            goto failed;
        }

        n = rf_rec_stamp(&sr->recs[i], sseq, id, sr->stamp.data,
                         sr->stamp.cap);
        if (n == 0) {
            /* only when the stamp makes it pass the record size limit */
            invalid++;
            log_warnx("ring \"%s\": skipped a record of %" PRIu32 " bytes: "
                      "too large to stamp", sr->path, sr->recs[i].len);
            continue;
        }

        if (rf_rec_field(&sr->recs[i], RF_F_BUCKET, &bucket) != 0) {
            bucket.len = 0;
            bucket.data = NULL;
        }

        rc = spool_buffer_add(b, sseq, &bucket, sr->stamp.data, n);
        if (rc == -1) {
            goto failed;
        }

        if (rc == 1) {
            sseq++;
        }
    }

    if (ss != NULL && spool_script_add(ss, b, id, &sseq, &invalid) != 0) {
        goto failed;
    }

    c.next_sseq = sseq;
    c.ring_generation = sr->generation;
    c.ring_pos = sr->end_pos;
    c.ring_batch = sr->taken;
    c.invalid = invalid;

    if (ss != NULL) {
        spool_script_counts(ss, &c.script);

    } else {
        memset(&c.script, 0, sizeof(spool_script_counts_t));
    }

    if (spool_buffer_commit(b, &c) != 0) {
        return -1;
    }

    if (ss != NULL) {
        spool_script_committed(ss);
    }

    log_debug("stored a batch of %" PRIu64 " records (%" PRIu64 " invalid),"
              " ring position %" PRIu64, sr->taken, invalid, sr->end_pos);

    return 0;

failed:

    err = errno;
    spool_buffer_rollback(b);
    errno = err;

    return -1;
}


static void
spool_ring_clear(spool_ring_t *sr)
{
    sr->nrecs = 0;
    sr->bytes = 0;
    sr->taken = 0;
    sr->invalid = 0;
    sr->failed = 0;

    if (sr->stamp.cap > SPOOL_STAMP_KEEP) {
        rf_buf_free(&sr->stamp);
    }
}


static uint64_t
spool_ring_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
