/*
 * Copyright (C) ReplayForge contributors
 *
 * The sqlite sink's file (all of rf-playerd's SQL is in player_store.c):
 * one row per record, keyed by the relay's sequence number, with the
 * columns the query API filters on and the record's own bytes.  One
 * writer connection (the sink's write()) and a small pool of reader
 * connections that the API's threads borrow per request.
 */

#ifndef _PLAYER_STORE_H_INCLUDED_
#define _PLAYER_STORE_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_record.h"


#define PLAYER_QUERY_LIMIT      100     /* rows of a page by default */
#define PLAYER_QUERY_LIMIT_MAX  1000
#define PLAYER_QUERY_STR_MAX    4096    /* method, path, path_prefix */

#define PLAYER_CKPT_PASSIVE     0       /* SQLite's checkpoint modes */
#define PLAYER_CKPT_RESTART     2
#define PLAYER_CKPT_TRUNCATE    3


typedef struct player_store_s  player_store_t;


/* a filter of GET /v1/requests; a NULL string or has_* 0: any */
typedef struct {
    uint64_t                    after;      /* seq > after */
    uint64_t                    limit;      /* rows wanted */
    rf_str_t                    method;
    rf_str_t                    path;
    rf_str_t                    prefix;
    int64_t                     status;
    int64_t                     since;      /* ts >= since, ns */
    int64_t                     until;      /* ts < until, ns */
    unsigned                    has_method:1;
    unsigned                    has_path:1;
    unsigned                    has_prefix:1;
    unsigned                    has_status:1;
    unsigned                    has_since:1;
    unsigned                    has_until:1;
} player_query_t;


/* one row read: the record's bytes are valid during the call only */
typedef int (*player_store_row_pt)(uint64_t seq, const unsigned char *data,
    size_t len, void *arg);


/*
 * Open (create) the file at path as its writer, with pages sized for
 * cap (a new file only).  0, or -1 with err set.
 */
int player_store_open(player_store_t **stp, const char *path, uint64_t cap,
    char *err, size_t errlen);
void player_store_close(player_store_t *st);

const char *player_store_path(player_store_t *st);
uint64_t player_store_page_size(player_store_t *st);
int player_store_can_vacuum(player_store_t *st);
uint64_t player_store_wal_frames(player_store_t *st);

/*
 * Rows, their records' bytes and the rows the cap dropped, ever; 0, 1
 * when the file has another schema, or -1.
 */
int player_store_totals(player_store_t *st, uint64_t *rows, uint64_t *bytes,
    uint64_t *dropped);


/* The writer's side: 0 or -1 with errno, SQLite's message logged. */
int player_store_begin(player_store_t *st);
int player_store_commit(player_store_t *st);
void player_store_rollback(player_store_t *st);

/* *added is 0 when the row was there already (a retried batch). */
int player_store_insert(player_store_t *st, uint64_t seq,
    const rf_rec_t *rec, int *added);

/* Delete the k oldest rows: how many went and their records' bytes. */
int player_store_drop(player_store_t *st, uint64_t k, uint64_t *n,
    uint64_t *bytes);
int player_store_add_dropped(player_store_t *st, uint64_t n);

int player_store_pages(player_store_t *st, uint64_t *pages, uint64_t *used);
int player_store_vacuum(player_store_t *st, uint64_t pages);
int player_store_checkpoint(player_store_t *st, int mode);
int player_store_wal_limit(player_store_t *st, uint64_t bytes);


/*
 * The readers' side, safe from any thread (a pooled connection each).
 * query: the rows of q in seq order, at most q->limit; the number of
 * rows, or -1.  get: by seq, or by the record's id "source:sseq" when
 * source is not NULL; 1 found, 0 not, -1 error.
 */
int64_t player_store_query(player_store_t *st, const player_query_t *q,
    player_store_row_pt cb, void *arg);
int player_store_get(player_store_t *st, uint64_t seq,
    const rf_str_t *source, player_store_row_pt cb, void *arg);


#endif /* _PLAYER_STORE_H_INCLUDED_ */
