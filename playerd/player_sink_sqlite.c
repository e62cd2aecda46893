/*
 * Copyright (C) ReplayForge contributors
 *
 * The sqlite sink: "sink sqlite NAME { path FILE; max_size SIZE; }"
 * stores every record, one row each keyed by the relay's seq, for the
 * query API (player_api.c; the SQL is player_store.c's).  max_size holds
 * over the file and its -wal as the relay's buckets hold theirs
 * (rf_sqlite.h): the oldest rows go, counted, when new ones need the
 * room.  A write() is one transaction, or several when its records would
 * not fit in the WAL's share of the cap at once.
 */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_log.h"
#include "rf_sqlite.h"
#include "player.h"
#include "player_api.h"
#include "player_store.h"


#define PLAYER_SQLITE_MIN_SIZE  (1024 * 1024)
#define PLAYER_SQLITE_OVERHEAD  192     /* columns, five index entries */
#define PLAYER_SQLITE_SMALL     16      /* meta, the trees above */
#define PLAYER_SQLITE_CKPT_TRIES 5


typedef struct {
    char                       *path;
    uint64_t                    max_size;
} player_sqlite_conf_t;


typedef struct {
    player_store_t             *store;
    rf_sqlite_cap_t             cap;
    uint64_t                    ratio;
    unsigned                    served:1;   /* by the API */
    unsigned                    over_cap:1;

    /* __atomic: read by the stats and the metrics */
    uint64_t                    rows;
    uint64_t                    bytes;
    uint64_t                    dropped;
    uint64_t                    errors;
} player_sqlite_t;


/* what one transaction changed, applied after its COMMIT */
typedef struct {
    uint64_t                    rows;
    uint64_t                    bytes;
    uint64_t                    gone;
    uint64_t                    gone_bytes;
} player_sqlite_delta_t;


static int player_sqlite_check(void *conf, char *err, size_t errlen);
static int player_sqlite_open(player_sink_t *s, char *err, size_t errlen);
static int player_sqlite_write(player_sink_t *s, const player_rec_t *recs,
    size_t n, int *status, const char **why);
static int player_sqlite_txn(player_sqlite_t *ps, const player_rec_t *recs,
    size_t n, const int *status, uint64_t bytes);
static int player_sqlite_make_room(player_sqlite_t *ps,
    player_sqlite_delta_t *d);
static int player_sqlite_wal_room(player_sqlite_t *ps, uint64_t frames);
static uint64_t player_sqlite_chunk(player_sqlite_t *ps);
static void player_sqlite_after(player_sink_t *s, player_sqlite_t *ps);
static void player_sqlite_close(player_sink_t *s);
static int player_sqlite_stats_json(player_sink_t *s, rf_buf_t *out);
static int player_sqlite_metrics(player_sink_t *s, rf_buf_t *out);
static uint64_t player_sqlite_file_bytes(player_sqlite_t *ps);


static const rf_conf_cmd_t  player_sqlite_cmds[] = {

    { "path", RF_CONF_STR, offsetof(player_sqlite_conf_t, path),
      0, 0, NULL, NULL, NULL, 0 },

    { "max_size", RF_CONF_SIZE, offsetof(player_sqlite_conf_t, max_size),
      PLAYER_SQLITE_MIN_SIZE, 0, "1g", NULL, NULL, 0 },

    rf_conf_null_cmd
};


const player_sink_type_t  player_sink_sqlite = {
    "sqlite",
    player_sqlite_cmds,
    sizeof(player_sqlite_conf_t),
    player_sqlite_check,
    player_sqlite_open,
    player_sqlite_write,
    player_sqlite_close,
    player_sqlite_stats_json,
    player_sqlite_metrics,
    NULL
};


static int
player_sqlite_check(void *conf, char *err, size_t errlen)
{
    player_sqlite_conf_t  *c;

    c = conf;

    if (c->path == NULL || c->path[0] == '\0') {
        snprintf(err, errlen, "\"path\" is required");
        return -1;
    }

    return 0;
}


static int
player_sqlite_open(player_sink_t *s, char *err, size_t errlen)
{
    int                    rc;
    uint64_t               rows, bytes, dropped;
    player_sqlite_t       *ps;
    player_sqlite_conf_t  *c;

    c = s->conf;

    ps = calloc(1, sizeof(player_sqlite_t));
    if (ps == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    if (player_store_open(&ps->store, c->path, c->max_size, err, errlen)
        != 0)
    {
        free(ps);
        return -1;
    }

    rf_sqlite_cap_init(&ps->cap, c->max_size,
                       player_store_page_size(ps->store));
    ps->ratio = RF_SQLITE_RATIO_START;

    rc = player_store_totals(ps->store, &rows, &bytes, &dropped);

    if (rc != 0 || player_store_wal_limit(ps->store, ps->cap.wal_limit) != 0)
    {
        snprintf(err, errlen, "sqlite sink file \"%s\" cannot be used (see "
                 "above)", c->path);
        player_store_close(ps->store);
        free(ps);
        return -1;
    }

    ps->rows = rows;
    ps->bytes = bytes;
    ps->dropped = dropped;

    if (player_api_set_store(ps->store) == 0) {
        ps->served = 1;

    } else {
        log_info("sqlite sink \"%s\": stores into \"%s\"; the query API "
                 "serves the first sqlite sink's file only", s->name,
                 c->path);
    }

    s->ctx = ps;

    return 0;
}


static int
player_sqlite_write(player_sink_t *s, const player_rec_t *recs, size_t n,
    int *status, const char **why)
{
    size_t            i, j, k;
    uint64_t          bytes, max, half;
    player_sqlite_t  *ps;

    ps = s->ctx;

    /* a record that would take half of the data's share never fits */

    max = ps->cap.data_pages * ps->cap.page_size / 2;
    half = ps->cap.txn_frames / 2;

    for (i = 0; i < n; i++) {
        status[i] = PLAYER_OK;
        why[i] = NULL;

        if (rf_sqlite_est_pages(&ps->cap, recs[i].rec.len, 1,
                                PLAYER_SQLITE_OVERHEAD, ps->ratio)
            * ps->cap.page_size > max)
        {
            status[i] = PLAYER_FAIL;
            why[i] = "the record is too large for the sqlite sink's "
                     "max_size";
        }

        /*
         * Rows are keyed by the relay's seq: records a script made, which
         * have none (tick) or share one (fan-out, next to each other),
         * are refused rather than silently ignored as duplicates.
         */

        if (recs[i].seq == 0) {
            status[i] = PLAYER_FAIL;
            why[i] = "the sqlite sink keeps relay records by their seq, "
                     "and a tick() record has none";

        } else if (i > 0 && recs[i].seq == recs[i - 1].seq) {
            status[i] = PLAYER_FAIL;
            why[i] = "the sqlite sink keeps one row per relay seq, and a "
                     "script returned several records of this one";
        }
    }

    for (i = 0; i < n; i = j) {

        /* as many records as the WAL's share takes in one transaction */

        bytes = 0;

        for (j = i; j < n; j++) {
            if (j > i
                && rf_sqlite_est_pages(&ps->cap, bytes + recs[j].rec.len,
                                       j - i + 1, PLAYER_SQLITE_OVERHEAD,
                                       ps->ratio)
                   > half)
            {
                break;
            }

            if (status[j] == PLAYER_OK) {
                bytes += recs[j].rec.len;
            }
        }

        if (player_sqlite_txn(ps, recs + i, j - i, status + i, bytes) != 0) {
            (void) __atomic_add_fetch(&ps->errors, 1, __ATOMIC_RELAXED);

            for (k = i; k < n; k++) {
                if (status[k] == PLAYER_OK) {
                    status[k] = PLAYER_RETRY;
                    why[k] = "the sqlite sink cannot write (see the log)";
                }
            }

            break;
        }
    }

    player_sqlite_after(s, ps);

    return 0;
}


static int
player_sqlite_txn(player_sqlite_t *ps, const player_rec_t *recs, size_t n,
    const int *status, uint64_t bytes)
{
    int                    added;
    size_t                 i;
    uint64_t               pages, used;
    player_sqlite_delta_t  d;

    if (player_sqlite_wal_room(ps, rf_sqlite_est_pages(&ps->cap, bytes, n,
                                                       PLAYER_SQLITE_OVERHEAD,
                                                       ps->ratio)
                                   + PLAYER_SQLITE_SMALL)
        != 0
        || player_store_begin(ps->store) != 0)
    {
        return -1;
    }

    memset(&d, 0, sizeof(player_sqlite_delta_t));

    for (i = 0; i < n; i++) {
        if (status[i] != PLAYER_OK) {
            continue;
        }

        if (player_store_insert(ps->store, recs[i].seq, &recs[i].rec, &added)
            != 0)
        {
            goto failed;
        }

        if (added) {
            d.rows++;
            d.bytes += recs[i].rec.len;
        }
    }

    if (player_sqlite_make_room(ps, &d) != 0
        || player_store_pages(ps->store, &pages, &used) != 0)
    {
        goto failed;
    }

    /* the pages the oldest rows left go back to the disk */

    if (player_store_can_vacuum(ps->store)
        && pages > ps->cap.data_pages + ps->cap.slack_pages
        && player_store_vacuum(ps->store, ps->cap.vacuum_pages) != 0)
    {
        goto failed;
    }

    if ((d.gone > 0 && player_store_add_dropped(ps->store, d.gone) != 0)
        || player_store_commit(ps->store) != 0)
    {
        goto failed;
    }

    (void) __atomic_add_fetch(&ps->rows, d.rows - d.gone, __ATOMIC_RELAXED);
    (void) __atomic_add_fetch(&ps->bytes, d.bytes - d.gone_bytes,
                              __ATOMIC_RELAXED);
    (void) __atomic_add_fetch(&ps->dropped, d.gone, __ATOMIC_RELAXED);

    return 0;

failed:

    player_store_rollback(ps->store);

    return -1;
}


/* drop the oldest rows until the data's share holds what is used */

static int
player_sqlite_make_room(player_sqlite_t *ps, player_sqlite_delta_t *d)
{
    uint64_t  pages, used, rows, bytes, want, avg, k, n, b;

    for ( ;; ) {
        if (player_store_pages(ps->store, &pages, &used) != 0) {
            return -1;
        }

        if (used <= ps->cap.data_pages) {
            return 0;
        }

        rows = __atomic_load_n(&ps->rows, __ATOMIC_RELAXED) + d->rows
               - d->gone;
        bytes = __atomic_load_n(&ps->bytes, __ATOMIC_RELAXED) + d->bytes
                - d->gone_bytes;

        if (rows == 0) {
            return 0;
        }

        want = (used - ps->cap.data_pages) * ps->cap.page_size
               * RF_SQLITE_RATIO_ONE / ps->ratio + 1;
        avg = bytes / rows + PLAYER_SQLITE_OVERHEAD;
        k = want / avg + 1;

        if (k > player_sqlite_chunk(ps)) {
            k = player_sqlite_chunk(ps);
        }

        if (player_store_drop(ps->store, k, &n, &b) != 0) {
            return -1;
        }

        if (n == 0) {
            return 0;
        }

        d->gone += n;
        d->gone_bytes += b;
    }
}


/* rows one transaction may delete: every emptied page is a WAL frame */

static uint64_t
player_sqlite_chunk(player_sqlite_t *ps)
{
    uint64_t  rows, avg, k;

    rows = __atomic_load_n(&ps->rows, __ATOMIC_RELAXED);

    if (rows == 0) {
        return 1024;
    }

    avg = __atomic_load_n(&ps->bytes, __ATOMIC_RELAXED) / rows
          + PLAYER_SQLITE_OVERHEAD;
    k = ps->cap.txn_frames / 4 * ps->cap.page_size * RF_SQLITE_RATIO_ONE
        / ps->ratio / avg;

    return k > 0 ? k : 1;
}


/*
 * The frames a transaction may write must fit in the WAL's share, else
 * the WAL goes back into the file first (RESTART) and starts over.
 */

static int
player_sqlite_wal_room(player_sqlite_t *ps, uint64_t frames)
{
    int  i;

    if (frames > ps->cap.txn_frames) {
        frames = ps->cap.txn_frames;
    }

    if (player_store_wal_frames(ps->store) + frames <= ps->cap.txn_frames) {
        return 0;
    }

    for (i = 0; i < PLAYER_SQLITE_CKPT_TRIES; i++) {
        if (player_store_checkpoint(ps->store, PLAYER_CKPT_RESTART) == 0) {
            return 0;
        }

        if (errno != EBUSY) {
            return -1;
        }
    }

    log_warnx("sqlite sink file \"%s\": readers keep the WAL from being "
              "checkpointed; the write is retried",
              player_store_path(ps->store));

    errno = EBUSY;

    return -1;
}


static void
player_sqlite_after(player_sink_t *s, player_sqlite_t *ps)
{
    uint64_t  pages, used, size;

    if (player_store_pages(ps->store, &pages, &used) == 0) {
        ps->ratio = rf_sqlite_learn_ratio(&ps->cap, used,
                                          __atomic_load_n(&ps->bytes,
                                                          __ATOMIC_RELAXED),
                                          ps->ratio);
    }

    /* a file made under a larger cap, or estimates that were off */

    size = player_sqlite_file_bytes(ps);

    if (size > ps->cap.cap) {
        if (!ps->over_cap) {
            log_warnx("sqlite sink \"%s\": files take %" PRIu64 " bytes, "
                      "over max_size %" PRIu64, s->name, size,
                      ps->cap.cap);
            ps->over_cap = 1;
        }

        (void) player_store_checkpoint(ps->store, PLAYER_CKPT_TRUNCATE);

    } else if (ps->over_cap) {
        log_info("sqlite sink \"%s\": back under max_size", s->name);
        ps->over_cap = 0;
    }
}


static void
player_sqlite_close(player_sink_t *s)
{
    player_sqlite_t  *ps;

    ps = s->ctx;

    if (ps == NULL) {
        return;
    }

    if (ps->served) {
        player_api_clear_store(ps->store);
    }

    player_store_close(ps->store);
    free(ps);
    s->ctx = NULL;
}


static int
player_sqlite_stats_json(player_sink_t *s, rf_buf_t *out)
{
    player_sqlite_t  *ps;

    ps = s->ctx;

    if (ps == NULL) {
        return 0;
    }

    return rf_buf_printf(out, ",\"rows\":%" PRIu64 ",\"bytes\":%" PRIu64
                         ",\"dropped\":%" PRIu64 ",\"errors\":%" PRIu64
                         ",\"file_bytes\":%" PRIu64,
                         __atomic_load_n(&ps->rows, __ATOMIC_RELAXED),
                         __atomic_load_n(&ps->bytes, __ATOMIC_RELAXED),
                         __atomic_load_n(&ps->dropped, __ATOMIC_RELAXED),
                         __atomic_load_n(&ps->errors, __ATOMIC_RELAXED),
                         player_sqlite_file_bytes(ps));
}


static int
player_sqlite_metrics(player_sink_t *s, rf_buf_t *out)
{
    size_t            i;
    uint64_t          v[4];
    player_sqlite_t  *ps;

    static const char *const  names[4] = {
        "rf_player_sqlite_rows", "rf_player_sqlite_dropped_total",
        "rf_player_sqlite_errors_total", "rf_player_sqlite_file_bytes"
    };

    ps = s->ctx;

    if (ps == NULL) {
        return 0;
    }

    /* bucket and sink names are [A-Za-z0-9._-] (player_conf.c) */

    v[0] = __atomic_load_n(&ps->rows, __ATOMIC_RELAXED);
    v[1] = __atomic_load_n(&ps->dropped, __ATOMIC_RELAXED);
    v[2] = __atomic_load_n(&ps->errors, __ATOMIC_RELAXED);
    v[3] = player_sqlite_file_bytes(ps);

    for (i = 0; i < 4; i++) {
        if (rf_buf_printf(out, "%s{bucket=\"%s\",sink=\"%s\"} %" PRIu64
                          "\n", names[i], s->bucket, s->name, v[i])
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


static uint64_t
player_sqlite_file_bytes(player_sqlite_t *ps)
{
    uint64_t  db, wal;

    if (rf_sqlite_file_sizes(player_store_path(ps->store), &db, &wal) != 0) {
        return 0;
    }

    return db + wal;
}
