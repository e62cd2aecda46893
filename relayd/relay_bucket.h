/*
 * Copyright (C) ReplayForge contributors
 *
 * A bucket: an append-only log of records in its own SQLite file
 * (relay_store.c holds the SQL), with one writer thread that commits the
 * batches of all concurrent POSTs together (group commit), long-poll
 * readers woken by commits, durable consumer cursors, retention (max_size
 * over file + WAL, ttl, acked by every declared consumer) with every drop
 * of unread data counted, and the counters and rate history the stats and
 * dashboard show.  Thread-safe: called from the HTTP server's connection
 * threads and from the main thread's tick.
 */

#ifndef _RELAY_BUCKET_H_INCLUDED_
#define _RELAY_BUCKET_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "rf_record.h"


#define RELAY_NAME_MAX          64      /* bucket and consumer names */
#define RELAY_MAX_CONSUMERS     64      /* declared ones, per bucket */

#define RELAY_OVERFLOW_DROP_OLDEST  0
#define RELAY_OVERFLOW_REJECT       1

#define RELAY_HISTORY_STEP_S    10      /* rate history: 360 x 10 s = 1 h */
#define RELAY_HISTORY_LEN       360


typedef struct {
    char                       *name;       /* [A-Za-z0-9._-]{1,64} */
    char                       *token;      /* resolved (token_file read) */
    uint64_t                    max_size;   /* bytes, file + WAL */
    uint64_t                    ttl;        /* ms, 0: none */
    int                         overflow;   /* RELAY_OVERFLOW_* */
    int64_t                     rate;       /* records/s in, 0: no limit
                                               (kept by the HTTP front) */
    char                       *consumers[RELAY_MAX_CONSUMERS];
    size_t                      nconsumers; /* declared */
} relay_bucket_conf_t;


typedef struct relay_bucket_s  relay_bucket_t;


typedef struct {
    uint64_t                    accepted;
    uint64_t                    duplicates;
    uint64_t                    first_seq;  /* of the accepted ones */
    uint64_t                    last_seq;
} relay_append_t;


/*
 * For each record read, in seq order: the stored bytes (rseq set in
 * place).  Non-zero stops the read early.
 */
typedef int (*relay_read_pt)(uint64_t seq, const unsigned char *data,
    size_t len, void *arg);


/*
 * Open or create <dir>/<name>.db (WAL), start the bucket's writer thread.
 * 0, or -1 with err set.
 */
int relay_bucket_open(relay_bucket_t **bp, const relay_bucket_conf_t *conf,
    const char *dir, char *err, size_t errlen);

/* Stop the writer (after committing what is queued), wake every reader. */
void relay_bucket_close(relay_bucket_t *b);

/* Reload: new token, limits and declared consumers; 0 or -1 with err. */
int relay_bucket_reconfigure(relay_bucket_t *b,
    const relay_bucket_conf_t *conf, char *err, size_t errlen);

const relay_bucket_conf_t *relay_bucket_conf(relay_bucket_t *b);

/*
 * Append n validated records (recs[i].buf are writable: the relay sets
 * rseq in place).  Records whose (source, sseq) is not above the highest
 * sseq stored for that source are duplicates: counted, not stored
 * (sseq 0 or no source: never a duplicate).  Blocks until the group
 * commit that holds them is durable.  All or nothing: 0, or -1 with
 * errno ENOSPC (policy reject and no room: 507), EFBIG (the batch alone
 * is larger than the bucket may hold: 413), ESHUTDOWN (closing), EIO or
 * ENOMEM (500).
 */
int relay_bucket_append(relay_bucket_t *b, const rf_rec_t *recs, size_t n,
    relay_append_t *res);

/*
 * Records with seq > after, at most max of them and about max_bytes
 * (always at least one), oldest first.  If none is there, wait up to
 * wait_ms for a commit (returns early on close).  Returns how many
 * records cb took (a non-zero return stops the read; that record is not
 * counted), or -1 with errno (ESHUTDOWN: the bucket is closing).  cb runs
 * inside a read transaction, on SQLite's copy of the bytes: keep it short
 * (copy, do not send), a long one holds the WAL's checkpoints up.
 */
int64_t relay_bucket_read(relay_bucket_t *b, uint64_t after, size_t max,
    size_t max_bytes, uint64_t wait_ms, relay_read_pt cb, void *arg);

/*
 * A consumer's committed cursor (0 for a new one, which is then
 * remembered as undeclared); marks it seen now.  0 or -1 (EINVAL: bad
 * name).
 */
int relay_bucket_cursor(relay_bucket_t *b, const char *consumer,
    uint64_t *cursor);

/*
 * Commit a consumer's cursor to upto (never backwards: a lower upto
 * leaves it).  Durable before it returns.  0 with the cursor now in
 * *cursor, or -1 with errno EINVAL (upto beyond the last seq, bad name).
 */
int relay_bucket_ack(relay_bucket_t *b, const char *consumer, uint64_t upto,
    uint64_t *cursor);

/* Every second from the main thread: ttl and ack retention, rates. */
void relay_bucket_tick(relay_bucket_t *b, uint64_t now_ms);

/* This bucket's object of GET /v1/stats (see docs/relay.md); 0 or -1. */
int relay_bucket_stats_json(relay_bucket_t *b, rf_buf_t *out);

/*
 * The counters GET /metrics shows (relay_stats.c writes the families);
 * the totals only grow, the others are what the bucket holds now.
 */
typedef struct {
    uint64_t                    records;        /* held now */
    uint64_t                    bytes;          /* records' bytes */
    uint64_t                    file_bytes;     /* file + WAL */
    uint64_t                    first_seq;      /* 0: empty */
    uint64_t                    last_seq;       /* highest ever assigned */
    uint64_t                    oldest_ms;      /* stored at, 0: empty */
    uint64_t                    in_records;     /* totals: accepted */
    uint64_t                    in_bytes;
    uint64_t                    out_records;    /* sent to readers */
    uint64_t                    out_bytes;
    uint64_t                    duplicates;
    uint64_t                    rejected;       /* records refused: 507 */
    uint64_t                    dropped_ttl;    /* deleted by retention */
    uint64_t                    dropped_size;
    uint64_t                    dropped_unread; /* of those, not yet acked
                                                   by every consumer */
    uint64_t                    deleted_acked;  /* acked by every declared
                                                   consumer */
    size_t                      consumers;      /* declared and seen */
} relay_bucket_counters_t;

int relay_bucket_counters(relay_bucket_t *b, relay_bucket_counters_t *c);


#endif /* _RELAY_BUCKET_H_INCLUDED_ */
