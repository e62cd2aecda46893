/*
 * Copyright (C) ReplayForge contributors
 *
 * Benchmark helper for rf-relayd (bench/relay).  "post" sends pre-built
 * batches of ~1 KB http records from N threads, each on a keep-alive
 * connection of its own and as a source of its own, and checks that every
 * record was accepted; "get" reads them back as a consumer, acking each
 * answer; "sqlite" inserts the same bytes into a new SQLite file opened
 * with the bucket file's settings (common/rf_sqlite.c) and records table,
 * in one process: the rate the relay's ingest cannot beat.  Records are
 * built (and compressed) before the clock starts; each run prints one line
 * of key=value results on stdout and fails loudly on any error.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sqlite3.h>
#include <zstd.h>

#include "rf_buf.h"
#include "rf_conf.h"
#include "rf_log.h"
#include "rf_record.h"
#include "rf_sqlite.h"


#define RELAYLOAD_ZSTD_LEVEL    1           /* what rf-spoold sends */
#define RELAYLOAD_CACHE_KIB     16384       /* relay_store.c's writer's */
#define RELAYLOAD_BUSY_MS       2000
#define RELAYLOAD_CELL_OVERHEAD 32          /* relay_bucket_int.h */
#define RELAYLOAD_MAX_THREADS   64


typedef struct {
    const char                 *mode;
    const char                 *url;
    const char                 *bucket;
    const char                 *token;
    const char                 *file;
    const char                 *consumer;
    uint64_t                    records;
    uint64_t                    batch;
    uint64_t                    threads;
    uint64_t                    body;
    uint64_t                    max;
    uint64_t                    max_size;
    int                         zstd;
} relayload_conf_t;


/* one batch: records back to back, and its wire form */
typedef struct {
    rf_buf_t                    data;
    rf_buf_t                    wire;       /* compressed, or empty */
    uint64_t                    n;
} relayload_batch_t;


typedef struct {
    const relayload_conf_t     *conf;
    pthread_t                   tid;
    pthread_barrier_t          *start;
    unsigned                    id;
    char                        source[64];
    relayload_batch_t          *batches;
    uint64_t                    nbatches;
    uint64_t                    records;
    uint64_t                    bytes;
    uint64_t                    wire_bytes;
    int                         failed;
} relayload_thread_t;


static int relayload_post(const relayload_conf_t *conf);
static void *relayload_post_thread(void *arg);
static int relayload_post_batch(relayload_thread_t *t, CURL *easy,
    relayload_batch_t *bt, rf_buf_t *resp);
static int relayload_get(const relayload_conf_t *conf);
static int relayload_ack(const relayload_conf_t *conf, CURL *easy,
    const char *url, uint64_t seq, rf_buf_t *resp);
static int relayload_sqlite(const relayload_conf_t *conf);
static int relayload_build(const relayload_conf_t *conf,
    relayload_batch_t **batches, uint64_t *nbatches, uint64_t records,
    const char *source, uint64_t seed);
static void relayload_free(relayload_batch_t *batches, uint64_t n);
static int relayload_record(const rf_http_t *h, const rf_str_t *source,
    uint64_t sseq, rf_buf_t *out);
static void relayload_body(unsigned char *p, size_t n, uint64_t *state);
static CURL *relayload_easy(const relayload_conf_t *conf, rf_buf_t *resp,
    struct curl_slist **headers, const char *type, int zstd);
static size_t relayload_write(char *ptr, size_t size, size_t nmemb,
    void *arg);
static size_t relayload_header(char *ptr, size_t size, size_t nmemb,
    void *arg);
static double relayload_now(void);
static void relayload_usage(void);


static const char  relayload_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";


int
main(int argc, char **argv)
{
    int               c;
    char             *end;
    uint64_t         *v;
    relayload_conf_t  conf;

    static const struct option  opts[] = {
        { "records", required_argument, NULL, 'n' },
        { "batch", required_argument, NULL, 'b' },
        { "threads", required_argument, NULL, 't' },
        { "body", required_argument, NULL, 's' },
        { "max", required_argument, NULL, 'm' },
        { "max-size", required_argument, NULL, 'S' },
        { "consumer", required_argument, NULL, 'c' },
        { "zstd", no_argument, NULL, 'z' },
        { NULL, 0, NULL, 0 }
    };

    memset(&conf, 0, sizeof(relayload_conf_t));
    conf.records = 200000;
    conf.batch = 1000;
    conf.threads = 2;
    conf.body = 1024;
    conf.max = 1000;
    conf.max_size = 1024ULL * 1024 * 1024;     /* a bucket's default */
    conf.consumer = "bench";

    if (argc < 2) {
        relayload_usage();
        return 2;
    }

    conf.mode = argv[1];

    while ((c = getopt_long(argc - 1, argv + 1, "n:b:t:s:m:S:c:z", opts,
                            NULL))
           != -1)
    {
        switch (c) {

        case 'n':
            v = &conf.records;
            break;

        case 'b':
            v = &conf.batch;
            break;

        case 't':
            v = &conf.threads;
            break;

        case 's':
            v = &conf.body;
            break;

        case 'm':
            v = &conf.max;
            break;

        case 'S':
            if (rf_conf_parse_size(optarg, &conf.max_size) != 0) {
                fprintf(stderr, "relayload: invalid size \"%s\"\n", optarg);
                return 2;
            }

            continue;

        case 'c':
            conf.consumer = optarg;
            continue;

        case 'z':
            conf.zstd = 1;
            continue;

        default:
            relayload_usage();
            return 2;
        }

        errno = 0;
        *v = strtoull(optarg, &end, 10);

        if (errno != 0 || *end != '\0' || *v == 0) {
            fprintf(stderr, "relayload: invalid number \"%s\"\n", optarg);
            return 2;
        }
    }

    argc -= optind + 1;
    argv += optind + 1;

    if (conf.threads > RELAYLOAD_MAX_THREADS) {
        fprintf(stderr, "relayload: at most %d threads\n",
                RELAYLOAD_MAX_THREADS);
        return 2;
    }

    log_init(1, "relayload");
    log_setverbose(RF_LOG_WARN);

    if (strcmp(conf.mode, "sqlite") == 0 && argc == 1) {
        conf.file = argv[0];
        return relayload_sqlite(&conf) == 0 ? 0 : 1;
    }

    if (argc != 3) {
        relayload_usage();
        return 2;
    }

    conf.url = argv[0];
    conf.bucket = argv[1];
    conf.token = argv[2];

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "relayload: curl_global_init failed\n");
        return 1;
    }

    if (strcmp(conf.mode, "post") == 0) {
        return relayload_post(&conf) == 0 ? 0 : 1;
    }

    if (strcmp(conf.mode, "get") == 0) {
        return relayload_get(&conf) == 0 ? 0 : 1;
    }

    relayload_usage();

    return 2;
}


static void
relayload_usage(void)
{
    fprintf(stderr,
        "usage: relayload post URL BUCKET TOKEN [-n RECORDS] [-b BATCH]\n"
        "                 [-t THREADS] [-s BODY_BYTES] [-z]\n"
        "       relayload get URL BUCKET TOKEN [-n RECORDS] [-m MAX]\n"
        "                 [-c CONSUMER]\n"
        "       relayload sqlite FILE [-n RECORDS] [-b BATCH]"
        " [-s BODY_BYTES]\n"
        "                 [-S MAX_SIZE]\n");
}


static int
relayload_post(const relayload_conf_t *conf)
{
    int                  rc;
    double               t0, t1, s;
    uint64_t             i, per, records, bytes, wire;
    pthread_barrier_t    start;
    relayload_thread_t  *th;

    th = calloc(conf->threads, sizeof(relayload_thread_t));
    if (th == NULL) {
        fprintf(stderr, "relayload: out of memory\n");
        return -1;
    }

    if (pthread_barrier_init(&start, NULL, (unsigned) conf->threads + 1)
        != 0)
    {
        fprintf(stderr, "relayload: pthread_barrier_init failed\n");
        free(th);
        return -1;
    }

    /* whole batches only, shared out as evenly as they go */

    per = (conf->records + conf->batch - 1) / conf->batch;
    rc = 0;

    for (i = 0; i < conf->threads; i++) {
        th[i].conf = conf;
        th[i].start = &start;
        th[i].id = (unsigned) i;
        snprintf(th[i].source, sizeof(th[i].source), "load%ld.%u",
                 (long) getpid(), th[i].id);

        records = (per / conf->threads + (i < per % conf->threads))
                  * conf->batch;

        if (relayload_build(conf, &th[i].batches, &th[i].nbatches, records,
                            th[i].source, i + 1)
            != 0)
        {
            return -1;
        }
    }

    for (i = 0; i < conf->threads; i++) {
        if (pthread_create(&th[i].tid, NULL, relayload_post_thread, &th[i])
            != 0)
        {
            fprintf(stderr, "relayload: pthread_create failed\n");
            exit(1);
        }
    }

    (void) pthread_barrier_wait(&start);
    t0 = relayload_now();

    records = 0;
    bytes = 0;
    wire = 0;

    for (i = 0; i < conf->threads; i++) {
        (void) pthread_join(th[i].tid, NULL);

        rc |= th[i].failed ? -1 : 0;
        records += th[i].records;
        bytes += th[i].bytes;
        wire += th[i].wire_bytes;
    }

    t1 = relayload_now();
    s = t1 - t0;

    for (i = 0; i < conf->threads; i++) {
        relayload_free(th[i].batches, th[i].nbatches);
    }

    (void) pthread_barrier_destroy(&start);
    free(th);

    if (rc != 0) {
        fprintf(stderr, "relayload: post FAILED (see above)\n");
        return -1;
    }

    printf("mode=post zstd=%d threads=%" PRIu64 " batch=%" PRIu64
           " records=%" PRIu64 " record_bytes=%" PRIu64 " seconds=%.3f"
           " records_per_s=%.0f mb_per_s=%.1f wire_mb_per_s=%.1f\n",
           conf->zstd, conf->threads, conf->batch, records,
           records ? bytes / records : 0, s, records / s, bytes / s / 1e6,
           wire / s / 1e6);

    return 0;
}


static void *
relayload_post_thread(void *arg)
{
    CURL                *easy;
    uint64_t             i;
    rf_buf_t             resp;
    relayload_thread_t  *t;
    struct curl_slist   *headers;

    t = arg;

    rf_buf_init(&resp);

    easy = relayload_easy(t->conf, &resp, &headers,
                          "application/x-replayforge", t->conf->zstd);

    (void) pthread_barrier_wait(t->start);

    if (easy == NULL) {
        t->failed = 1;
        return NULL;
    }

    for (i = 0; i < t->nbatches; i++) {
        if (relayload_post_batch(t, easy, &t->batches[i], &resp) != 0) {
            t->failed = 1;
            break;
        }
    }

    curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
    rf_buf_free(&resp);

    return NULL;
}


static int
relayload_post_batch(relayload_thread_t *t, CURL *easy,
    relayload_batch_t *bt, rf_buf_t *resp)
{
    long             status;
    CURLcode         rc;
    const char      *p;
    const rf_buf_t  *body;
    uint64_t         accepted;

    body = t->conf->zstd ? &bt->wire : &bt->data;

    rf_buf_reset(resp);

    if (curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body->data) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                            (curl_off_t) body->len) != CURLE_OK)
    {
        fprintf(stderr, "relayload: thread %u: curl_easy_setopt failed\n",
                t->id);
        return -1;
    }

    rc = curl_easy_perform(easy);
    if (rc != CURLE_OK) {
        fprintf(stderr, "relayload: thread %u: POST: %s\n", t->id,
                curl_easy_strerror(rc));
        return -1;
    }

    status = 0;
    (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);

    (void) rf_buf_addc(resp, '\0');
    p = resp->data ? strstr((const char *) resp->data, "\"accepted\":")
                   : NULL;
    accepted = p ? strtoull(p + 11, NULL, 10) : 0;

    if (status != 200 || accepted != bt->n) {
        fprintf(stderr, "relayload: thread %u: POST of %" PRIu64 " records "
                "answered %ld, accepted %" PRIu64 ": %s\n", t->id, bt->n,
                status, accepted,
                resp->data ? (const char *) resp->data : "");
        return -1;
    }

    t->records += bt->n;
    t->bytes += bt->data.len;
    t->wire_bytes += body->len;

    return 0;
}


/* read R records as consumer C, acking every answer's last seq */

static int
relayload_get(const relayload_conf_t *conf)
{
    char                url[1024], ack_url[1024];
    long                status;
    CURL               *easy, *ack;
    double              t0, t1, s;
    size_t              off;
    uint32_t            len;
    uint64_t            records, bytes, gets, seq;
    rf_buf_t            resp, ack_resp;
    CURLcode            rc;
    struct curl_slist  *headers, *ack_headers;

    rf_buf_init(&resp);
    rf_buf_init(&ack_resp);

    easy = relayload_easy(conf, &resp, &headers, NULL, 0);
    ack = relayload_easy(conf, &ack_resp, &ack_headers, "application/json",
                         0);
    if (easy == NULL || ack == NULL) {
        return -1;
    }

    snprintf(url, sizeof(url), "%s/v1/buckets/%s/records?consumer=%s"
             "&max=%" PRIu64, conf->url, conf->bucket, conf->consumer,
             conf->max);
    snprintf(ack_url, sizeof(ack_url), "%s/v1/buckets/%s/ack", conf->url,
             conf->bucket);

    if (curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, relayload_header)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HEADERDATA, &seq) != CURLE_OK
        || curl_easy_setopt(ack, CURLOPT_URL, ack_url) != CURLE_OK)
    {
        fprintf(stderr, "relayload: curl_easy_setopt failed\n");
        return -1;
    }

    records = 0;
    bytes = 0;
    gets = 0;

    t0 = relayload_now();

    while (records < conf->records) {
        rf_buf_reset(&resp);
        seq = 0;

        rc = curl_easy_perform(easy);
        if (rc != CURLE_OK) {
            fprintf(stderr, "relayload: GET: %s\n", curl_easy_strerror(rc));
            return -1;
        }

        status = 0;
        (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
        gets++;

        if (status != 200 || seq == 0) {
            fprintf(stderr, "relayload: GET answered %ld (X-RF-Last-Seq %"
                    PRIu64 ") after %" PRIu64 " of %" PRIu64 " records\n",
                    status, seq, records, conf->records);
            return -1;
        }

        /* count the records: each one's length leads it */

        for (off = 0; off < resp.len; off += len) {
            len = rf_rec_peek_len(resp.data + off, resp.len - off);

            if (len < RF_REC_HDR_SIZE || len > resp.len - off) {
                fprintf(stderr, "relayload: GET: a malformed record at byte "
                        "%zu of %zu\n", off, resp.len);
                return -1;
            }

            records++;
        }

        bytes += resp.len;

        if (relayload_ack(conf, ack, ack_url, seq, &ack_resp) != 0) {
            return -1;
        }
    }

    t1 = relayload_now();
    s = t1 - t0;

    curl_easy_cleanup(easy);
    curl_easy_cleanup(ack);
    curl_slist_free_all(headers);
    curl_slist_free_all(ack_headers);
    rf_buf_free(&resp);
    rf_buf_free(&ack_resp);

    printf("mode=get max=%" PRIu64 " records=%" PRIu64 " gets=%" PRIu64
           " seconds=%.3f records_per_s=%.0f mb_per_s=%.1f\n", conf->max,
           records, gets, s, records / s, bytes / s / 1e6);

    return 0;
}


static int
relayload_ack(const relayload_conf_t *conf, CURL *easy, const char *url,
    uint64_t seq, rf_buf_t *resp)
{
    int       n;
    long      status;
    char      body[256];
    CURLcode  rc;

    n = snprintf(body, sizeof(body), "{\"consumer\":\"%s\",\"upto\":%" PRIu64
                 "}", conf->consumer, seq);

    rf_buf_reset(resp);

    if (curl_easy_setopt(easy, CURLOPT_POSTFIELDS, body) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE, (long) n)
           != CURLE_OK)
    {
        fprintf(stderr, "relayload: curl_easy_setopt failed\n");
        return -1;
    }

    rc = curl_easy_perform(easy);
    if (rc != CURLE_OK) {
        fprintf(stderr, "relayload: ack: %s\n", curl_easy_strerror(rc));
        return -1;
    }

    status = 0;
    (void) curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);

    if (status != 200) {
        (void) rf_buf_addc(resp, '\0');
        fprintf(stderr, "relayload: ack of %" PRIu64 " answered %ld: %s\n",
                seq, status, (const char *) resp->data);
        return -1;
    }

    return 0;
}


/*
 * The physical limit: the same records inserted into a new file with the
 * bucket file's settings and records table, in transactions of B, the
 * WAL checkpointed (RESTART) when the next transaction would not fit its
 * share, as the relay's writer does; none of the relay's other work
 * (dedup, sources, meta, HTTP, the handoff to its writer thread).
 */

static int
relayload_sqlite(const relayload_conf_t *conf)
{
    char                  err[512];
    char                  source[64];
    double                t0, t1, s;
    uint64_t              i, k, seq, bytes, need, ptrmap, frames, ckpts;
    uint64_t              nbatches, stored_ms;
    uint32_t              len;
    rf_sqlite_t           db;
    sqlite3_stmt         *ins;
    rf_sqlite_cap_t       cap;
    relayload_batch_t    *batches, *bt;
    const unsigned char  *p;

    static const char  schema[] =
        "CREATE TABLE records ("
        "    seq        INTEGER PRIMARY KEY,"
        "    stored_ms  INTEGER NOT NULL,"
        "    source     TEXT,"
        "    size       INTEGER NOT NULL,"
        "    data       BLOB NOT NULL"
        ")";

    /* a source named as the post threads name theirs: the same bytes */

    snprintf(source, sizeof(source), "load%ld.0", (long) getpid());

    if (relayload_build(conf, &batches, &nbatches, conf->records, source,
                        1)
        != 0)
    {
        return -1;
    }

    if (rf_sqlite_open(&db, conf->file, "bench file", 1,
                       rf_sqlite_page_size(conf->max_size),
                       RELAYLOAD_CACHE_KIB, RELAYLOAD_BUSY_MS, err,
                       sizeof(err))
        != 0)
    {
        fprintf(stderr, "relayload: %s\n", err);
        return -1;
    }

    rf_sqlite_cap_init(&cap, conf->max_size, db.page_size);

    if (rf_sqlite_wal_limit(&db, cap.wal_limit) != 0
        || rf_sqlite_exec(&db, schema) != 0
        || sqlite3_prepare_v3(db.db, "INSERT INTO records"
                              " (seq, stored_ms, source, size, data)"
                              " VALUES (?1, ?2, ?3, ?4, ?5)", -1,
                              SQLITE_PREPARE_PERSISTENT, &ins, NULL)
           != SQLITE_OK)
    {
        fprintf(stderr, "relayload: %s: %s\n", conf->file,
                sqlite3_errmsg(db.db));
        return -1;
    }

    seq = 0;
    bytes = 0;
    ckpts = 0;
    stored_ms = (uint64_t) time(NULL) * 1000;
    ptrmap = cap.data_pages / (cap.page_size / 5) + 1;

    t0 = relayload_now();

    for (k = 0; k < nbatches; k++) {
        bt = &batches[k];

        /* relay_bucket_est_frames() */
        need = rf_sqlite_est_pages(&cap, bt->data.len, bt->n,
                                   RELAYLOAD_CELL_OVERHEAD,
                                   RF_SQLITE_RATIO_START);
        frames = need + (need < ptrmap ? need : ptrmap) + need / 32 + 16;

        if (db.wal_frames + frames > cap.txn_frames) {
            if (rf_sqlite_checkpoint(&db, SQLITE_CHECKPOINT_RESTART) != 0) {
                fprintf(stderr, "relayload: checkpoint failed\n");
                return -1;
            }

            ckpts++;
        }

        if (rf_sqlite_exec(&db, "BEGIN IMMEDIATE") != 0) {
            return -1;
        }

        p = bt->data.data;

        for (i = 0; i < bt->n; i++) {
            len = rf_rec_peek_len(p, bt->data.len);

            if (sqlite3_bind_int64(ins, 1, (sqlite3_int64) ++seq) != SQLITE_OK
                || sqlite3_bind_int64(ins, 2, (sqlite3_int64) stored_ms)
                   != SQLITE_OK
                || sqlite3_bind_text(ins, 3, source, (int) strlen(source),
                                     SQLITE_STATIC)
                   != SQLITE_OK
                || sqlite3_bind_int64(ins, 4, (sqlite3_int64) len)
                   != SQLITE_OK
                || sqlite3_bind_blob(ins, 5, p, (int) len, SQLITE_STATIC)
                   != SQLITE_OK
                || rf_sqlite_done(&db, ins, "insert") != 0)
            {
                fprintf(stderr, "relayload: insert: %s\n",
                        sqlite3_errmsg(db.db));
                return -1;
            }

            bytes += len;
            p += len;
        }

        if (rf_sqlite_exec(&db, "COMMIT") != 0) {
            return -1;
        }
    }

    t1 = relayload_now();
    s = t1 - t0;

    (void) sqlite3_finalize(ins);
    rf_sqlite_close(&db);
    relayload_free(batches, nbatches);

    printf("mode=sqlite page_size=%" PRIu64 " batch=%" PRIu64 " records=%"
           PRIu64 " record_bytes=%" PRIu64 " checkpoints=%" PRIu64
           " seconds=%.3f records_per_s=%.0f mb_per_s=%.1f\n",
           cap.page_size, conf->batch, seq, seq ? bytes / seq : 0, ckpts, s,
           seq / s, bytes / s / 1e6);

    return 0;
}


/*
 * Batches of the records one source sends: sseq 1, 2, ...; every body is
 * different (base64 of random bytes), so that compression sees what it
 * would see in 1 KB of varied text rather than one record repeated.
 */

static int
relayload_build(const relayload_conf_t *conf, relayload_batch_t **batches,
    uint64_t *nbatches, uint64_t records, const char *source, uint64_t seed)
{
    size_t              bound, n;
    uint64_t            i, k, nb, sseq, state;
    rf_str_t            src;
    rf_http_t           h;
    rf_header_t         hd[4];
    ZSTD_CCtx          *zctx;
    unsigned char      *body;
    relayload_batch_t  *b;

    nb = (records + conf->batch - 1) / conf->batch;

    b = calloc(nb ? nb : 1, sizeof(relayload_batch_t));
    body = malloc(conf->body + 1);
    zctx = conf->zstd ? ZSTD_createCCtx() : NULL;

    if (b == NULL || body == NULL || (conf->zstd && zctx == NULL)) {
        fprintf(stderr, "relayload: out of memory\n");
        return -1;
    }

    /* what the module captures of a wrk POST (bench/ringfill.c) */

    memset(&h, 0, sizeof(h));
    h.method = (rf_str_t) rf_string("POST");
    h.uri = (rf_str_t) rf_string("/bench/path?q=1");
    h.version = (rf_str_t) rf_string("HTTP/1.1");
    h.scheme = (rf_str_t) rf_string("http");
    h.host = (rf_str_t) rf_string("bench.local");
    h.client = (rf_str_t) rf_string("127.0.0.1:40000");
    h.server = (rf_str_t) rf_string("127.0.0.1:8080");
    hd[0] = (rf_header_t) { rf_string("Host"), rf_string("bench.local") };
    hd[1] = (rf_header_t) { rf_string("User-Agent"), rf_string("wrk") };
    hd[2] = (rf_header_t) { rf_string("Content-Type"),
                            rf_string("application/octet-stream") };
    hd[3] = (rf_header_t) { rf_string("Content-Length"), rf_string("1024") };
    h.headers = hd;
    h.nheaders = 4;
    h.body.data = body;
    h.body.len = conf->body;
    h.body_size = conf->body;
    h.status = 200;
    h.bytes_sent = 200;
    h.duration_us = 1000;

    src.data = (const unsigned char *) source;
    src.len = strlen(source);

    state = 0x9e3779b97f4a7c15ULL * seed;
    sseq = 0;

    for (k = 0; k < nb; k++) {
        n = (records - k * conf->batch < conf->batch)
            ? records - k * conf->batch : conf->batch;

        rf_buf_init(&b[k].data);
        rf_buf_init(&b[k].wire);
        b[k].n = n;

        for (i = 0; i < n; i++) {
            relayload_body(body, conf->body, &state);
            h.time_ns = 1795428000000000000ULL + ++sseq * 1000;

            if (relayload_record(&h, &src, sseq, &b[k].data) != 0) {
                fprintf(stderr, "relayload: out of memory\n");
                return -1;
            }
        }

        if (!conf->zstd) {
            continue;
        }

        bound = ZSTD_compressBound(b[k].data.len);

        if (rf_buf_reserve(&b[k].wire, bound) != 0) {
            fprintf(stderr, "relayload: out of memory\n");
            return -1;
        }

        n = ZSTD_compressCCtx(zctx, b[k].wire.data, bound, b[k].data.data,
                              b[k].data.len, RELAYLOAD_ZSTD_LEVEL);
        if (ZSTD_isError(n)) {
            fprintf(stderr, "relayload: zstd: %s\n", ZSTD_getErrorName(n));
            return -1;
        }

        b[k].wire.len = n;
    }

    ZSTD_freeCCtx(zctx);
    free(body);

    *batches = b;
    *nbatches = nb;

    return 0;
}


static void
relayload_free(relayload_batch_t *batches, uint64_t n)
{
    uint64_t  i;

    for (i = 0; i < n; i++) {
        rf_buf_free(&batches[i].data);
        rf_buf_free(&batches[i].wire);
    }

    free(batches);
}


/* encode, then stamp as the spool does: sseq and a SOURCE field */

static int
relayload_record(const rf_http_t *h, const rf_str_t *source, uint64_t sseq,
    rf_buf_t *out)
{
    size_t          len, cap;
    rf_rec_t        rec;
    const char     *err;
    unsigned char   tmp[8192];

    len = rf_http_size(h);

    if (len > sizeof(tmp) || rf_http_encode(h, tmp, len) != len
        || rf_rec_parse(&rec, tmp, len, &err) != 0)
    {
        return -1;
    }

    cap = len + RF_REC_FIELD_SIZE(source->len);

    if (rf_buf_reserve(out, cap) != 0) {
        return -1;
    }

    len = rf_rec_stamp(&rec, sseq, source, out->data + out->len, cap);
    if (len == 0) {
        return -1;
    }

    out->len += len;

    return 0;
}


/* base64 text of xorshift64* bytes */

static void
relayload_body(unsigned char *p, size_t n, uint64_t *state)
{
    size_t    i;
    uint64_t  x, r;

    x = *state;
    r = 0;

    for (i = 0; i < n; i++) {
        if (i % 10 == 0) {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            r = x * 0x2545f4914f6cdd1dULL;
        }

        p[i] = (unsigned char) relayload_b64[r & 63];
        r >>= 6;
    }

    *state = x;
}


static CURL *
relayload_easy(const relayload_conf_t *conf, rf_buf_t *resp,
    struct curl_slist **headers, const char *type, int zstd)
{
    char                line[1024], url[1024];
    CURL               *easy;
    struct curl_slist  *h;

    *headers = NULL;

    easy = curl_easy_init();
    if (easy == NULL) {
        fprintf(stderr, "relayload: curl_easy_init failed\n");
        return NULL;
    }

    snprintf(line, sizeof(line), "Authorization: Bearer %s", conf->token);
    h = curl_slist_append(NULL, line);

    /* no 100-continue round trip before every batch */
    h = curl_slist_append(h, "Expect:");

    if (type != NULL) {
        snprintf(line, sizeof(line), "Content-Type: %s", type);
        h = curl_slist_append(h, line);
    }

    if (zstd) {
        h = curl_slist_append(h, "Content-Encoding: zstd");
    }

    snprintf(url, sizeof(url), "%s/v1/buckets/%s/records", conf->url,
             conf->bucket);

    if (h == NULL
        || curl_easy_setopt(easy, CURLOPT_URL, url) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_HTTPHEADER, h) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_TCP_NODELAY, 1L) != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, relayload_write)
           != CURLE_OK
        || curl_easy_setopt(easy, CURLOPT_WRITEDATA, resp) != CURLE_OK)
    {
        fprintf(stderr, "relayload: cannot set up a libcurl handle\n");
        curl_slist_free_all(h);
        curl_easy_cleanup(easy);
        return NULL;
    }

    *headers = h;

    return easy;
}


static size_t
relayload_write(char *ptr, size_t size, size_t nmemb, void *arg)
{
    rf_buf_t  *b;

    b = arg;

    if (rf_buf_add(b, ptr, size * nmemb) != 0) {
        return 0;
    }

    return size * nmemb;
}


static size_t
relayload_header(char *ptr, size_t size, size_t nmemb, void *arg)
{
    size_t     n;
    uint64_t  *seq;

    seq = arg;
    n = size * nmemb;

    if (n > 14 && strncasecmp(ptr, "X-RF-Last-Seq:", 14) == 0) {
        *seq = strtoull(ptr + 14, NULL, 10);
    }

    return n;
}


static double
relayload_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return ts.tv_sec + ts.tv_nsec / 1e9;
}
