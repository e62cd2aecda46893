/*
 * Copyright (C) ReplayForge contributors
 *
 * The forwarder: a thread that reads the buffer through its own read-only
 * connection, sends it to rf-relayd in batches, one at a time and in
 * sequence order, and sends heartbeats.  It never writes the buffer: it
 * hands what the relay acknowledged back to the main thread, which
 * deletes it (spool_buffer_release).
 */

#ifndef _SPOOL_FORWARD_H_INCLUDED_
#define _SPOOL_FORWARD_H_INCLUDED_


#include <stdint.h>

#include "rf_ring.h"
#include "spoold.h"
#include "spool_store.h"


typedef struct spool_fwd_s  spool_fwd_t;


/* NULL on ENOMEM.  Once, before any thread: initializes libcurl. */
spool_fwd_t *spool_fwd_create(void);
void spool_fwd_destroy(spool_fwd_t *f);

/*
 * Start the thread with a copy of conf (conf->relay must be set); it
 * resumes after the last acknowledged record.  0, or -1 with errno.
 */
int spool_fwd_start(spool_fwd_t *f, const spoold_conf_t *conf);

/*
 * Stop the thread and wait for it: an unfinished transfer is aborted,
 * whatever was not acknowledged stays in the buffer and is sent again by
 * the next start.
 */
void spool_fwd_stop(spool_fwd_t *f);
int spool_fwd_running(spool_fwd_t *f);

/* Main thread: records up to sseq stored are in the buffer now. */
void spool_fwd_notify(spool_fwd_t *f, uint64_t stored);

/* Main thread: the buffer's meta and the ring's counters (NULL: no ring). */
void spool_fwd_publish(spool_fwd_t *f, const spool_meta_t *m,
    const rf_ring_stats_t *rs);

/*
 * Main thread: the oldest acknowledgement not applied yet: 1 with every
 * record up to *upto to be deleted, counted as rejected when *rejected,
 * else as forwarded; 0 when there is none.  spool_fwd_applied() once it
 * is done.
 */
int spool_fwd_acked(spool_fwd_t *f, uint64_t *upto, int *rejected);
void spool_fwd_applied(spool_fwd_t *f, uint64_t upto, int rejected);


#endif /* _SPOOL_FORWARD_H_INCLUDED_ */
