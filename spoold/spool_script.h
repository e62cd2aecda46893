/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's Lua transforms (common/rf_lua.h): the global script and the
 * per-bucket ones, run once on every record the ring gives as the batch
 * is read; tick(); the records they produce and the dead letters queued
 * until the batch that carries them commits; the counters for the meta.
 */

#ifndef _SPOOL_SCRIPT_H_INCLUDED_
#define _SPOOL_SCRIPT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_record.h"
#include "spoold.h"
#include "spool_buffer.h"


typedef struct spool_script_s      spool_script_t;
typedef struct spool_script_set_s  spool_script_set_t;


/* -t: open every script of conf (the chunk and init() run), close them. */
int spool_script_test(const spoold_conf_t *conf, char *err, size_t errlen);

/*
 * The scripts of conf, opened, with its dead_letter and script_tick: an
 * empty set when it has none.  NULL with err naming the file (and line).
 */
spool_script_set_t *spool_script_load(const spoold_conf_t *conf, char *err,
    size_t errlen);
void spool_script_set_free(spool_script_set_t *set);

/* The daemon's: the scripts of conf, opened.  NULL with err. */
spool_script_t *spool_script_create(const spoold_conf_t *conf, char *err,
    size_t errlen);
void spool_script_destroy(spool_script_t *ss);

/*
 * Run set from now on (a reload; it is taken over) and close the scripts
 * before it.  What they produced stays queued, and what they counted is
 * kept for the next commit.
 */
void spool_script_install(spool_script_t *ss, spool_script_set_t *set);

/* Some script has transform(): ring records go to spool_script_run(). */
int spool_script_active(const spool_script_t *ss);

/*
 * One record through the global script, then each of its outputs through
 * its bucket's script (bucket "default" when it has none).  What comes
 * out, and the dead letter of a script's error, wait for the next commit.
 * More than one record of more than limit bytes (a batch's) is an error.
 */
void spool_script_run(spool_script_t *ss, const rf_rec_t *rec,
    uint64_t limit);

/* Every script_tick: tick() of every script that has one. */
void spool_script_tick(spool_script_t *ss, uint64_t now_ms, uint64_t limit);

/* Records or dead letters wait for a commit. */
int spool_script_pending(const spool_script_t *ss);

/* The queued records: their count, and their bytes once stamped. */
size_t spool_script_count(const spool_script_t *ss);
uint64_t spool_script_bytes(const spool_script_t *ss, size_t idlen);

/*
 * A commit carrying the queue, in this order: sync() (the dead letters
 * on disk) before the transaction, add() inside it (stamped, sequences
 * from *sseq on), counts() for the commit's meta, and committed() after
 * the commit succeeded.  sync and add: 0, or -1 with errno.
 */
int spool_script_sync(spool_script_t *ss);
int spool_script_add(spool_script_t *ss, spool_buffer_t *b,
    const rf_str_t *id, uint64_t *sseq, uint64_t *invalid);
void spool_script_counts(spool_script_t *ss, spool_script_counts_t *c);
void spool_script_committed(spool_script_t *ss);

/*
 * The queue in a transaction of its own, when no ring batch is read
 * (tick() records while the ring is idle or absent).  The records
 * stored, or -1 with errno: the queue is kept for the next try.
 */
int64_t spool_script_store(spool_script_t *ss, spool_buffer_t *b,
    const rf_str_t *id);


#endif /* _SPOOL_SCRIPT_H_INCLUDED_ */
