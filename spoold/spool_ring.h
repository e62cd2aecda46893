/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's side of the capture ring: attaching (and resuming exactly
 * where the buffer's meta says), reading batches (through the scripts,
 * when there are), stamping them and handing them to the store,
 * releasing the ring only after the commit.
 */

#ifndef _SPOOL_RING_H_INCLUDED_
#define _SPOOL_RING_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "rf_record.h"
#include "rf_ring.h"
#include "spool_buffer.h"
#include "spool_script.h"


#define SPOOL_RING_SAME         0
#define SPOOL_RING_REPLACED     1   /* another file, or another path */
#define SPOOL_RING_RESET        2   /* same file, new generation */

/*
 * A batch the ring cannot fill waits SPOOL_RING_LINGER_MS (or the linger,
 * when shorter) before it is committed, and while it holds less than
 * SPOOL_RING_LINGER_PAGES pages of the buffer, up to the linger
 * (batch_linger, 250ms by default): every commit writes four or five
 * whole pages besides the records (the header, the meta, the pointer
 * map, the free list: 64k each from a cap of 256m), so a trickle
 * committed record by record would write many times its size.
 */
#define SPOOL_RING_LINGER_MS    20
#define SPOOL_RING_LINGER_PAGES 4


typedef struct {
    rf_ring_t                   ring;
    rf_ring_reader_t            rd;
    char                       *path;
    uint64_t                    generation;
    uint64_t                    released;   /* the tail we gave back */
    unsigned                    attached:1;
    unsigned                    waiting:1;  /* "waiting for" was logged */
    unsigned                    failed:1;   /* storing it failed */
    unsigned                    scripted:1; /* the batch went to scripts */
    int                         last_rc;    /* of rf_ring_next() */
    uint64_t                    linger_ms;  /* batch_linger */

    /* the batch: views into the ring, valid until it is released */
    rf_rec_t                   *recs;
    size_t                      nrecs;
    size_t                      nalloc;
    uint64_t                    bytes;      /* stamped sizes */
    uint64_t                    taken;      /* records read, invalid too */
    uint64_t                    invalid;
    uint64_t                    end_pos;
    uint64_t                    first_ms;   /* when it began */

    rf_buf_t                    stamp;
} spool_ring_t;


void spool_ring_init(spool_ring_t *sr);
void spool_ring_set_linger(spool_ring_t *sr, uint64_t linger_ms);
void spool_ring_free(spool_ring_t *sr);

/*
 * Attach path and position the reader: at the buffer's ring_pos when the
 * generation is the one the buffer last stored from (records committed
 * but not released before a crash are released first), else at the tail.
 * 0, or -1 with errno ENOENT (no ring yet) or EINVAL (not a ring).
 */
int spool_ring_attach(spool_ring_t *sr, const char *path, spool_buffer_t *b,
    uint64_t stall_ms);
void spool_ring_detach(spool_ring_t *sr);
void spool_ring_set_stall(spool_ring_t *sr, uint64_t stall_ms);

/* SPOOL_RING_SAME, _REPLACED or _RESET (see above). */
int spool_ring_changed(spool_ring_t *sr, const char *path);

/*
 * Read up to max records (and the store's batch bytes) into the batch,
 * and through the scripts of ss when it has transforms (their outputs
 * are stored instead); store it, with what else ss has queued, in one
 * transaction and release it when it is full, or when the ring ran dry
 * and the batch is old enough (see above), or when flush is set.
 * Returns the records stored, 0 when none were (the ring was empty, or
 * the batch waits for more; last_rc tells RF_RING_EMPTY from
 * RF_RING_WAIT), -1 when the store failed: the batch is kept, still
 * unreleased, and the next call retries it.
 */
int64_t spool_ring_drain(spool_ring_t *sr, spool_buffer_t *b,
    const rf_str_t *id, spool_script_t *ss, size_t max, int flush);

/* A batch is read but not stored yet. */
#define spool_ring_pending(sr)  ((sr)->taken != 0)


#endif /* _SPOOL_RING_H_INCLUDED_ */
