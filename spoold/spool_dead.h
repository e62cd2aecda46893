/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's dead-letter file: the records a Lua script failed on, one
 * JSON object per line.  Lines are queued in memory while a batch is
 * read, and written and fsync'ed before the batch commits, so that what
 * the ring gives back is either stored, or dead-lettered on disk.
 */

#ifndef _SPOOL_DEAD_H_INCLUDED_
#define _SPOOL_DEAD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "rf_buf.h"
#include "rf_record.h"


typedef struct {
    const char                 *path;       /* the caller's */
    uint64_t                    max;        /* dead_letter_max */
    int                         fd;         /* -1: not open yet */
    dev_t                       dev;
    ino_t                       ino;
    uint64_t                    size;       /* the file's + what is queued */
    unsigned                    known:1;    /* size was looked up */
    unsigned                    dirty:1;    /* written, not fsync'ed */
    rf_buf_t                    queue;      /* lines not written yet */
    size_t                      written;    /* of the queue, on a retry */
} spool_dead_t;


void spool_dead_init(spool_dead_t *d);
void spool_dead_free(spool_dead_t *d);

/*
 * The path (kept by the caller while it is set) and the cap, at start
 * and reload; lines still queued go to the new path.
 */
void spool_dead_set(spool_dead_t *d, const char *path, uint64_t max);

/*
 * Queue {"reason":..,"script":..,"source":..,"record":<JSON view>}: 1,
 * 0 when the file would pass its cap (nothing queued), -1 with ENOMEM.
 */
int spool_dead_add(spool_dead_t *d, const char *reason, const char *script,
    const char *source, const rf_rec_t *rec);

/*
 * Write what is queued (O_APPEND) and fsync it; a file moved away (log
 * rotation) is created again.  0, or -1 with errno (logged): the lines
 * stay queued and the next call goes on where this one stopped.
 */
int spool_dead_sync(spool_dead_t *d);

#define spool_dead_pending(d)   ((d)->queue.len != 0 || (d)->dirty)


#endif /* _SPOOL_DEAD_H_INCLUDED_ */
