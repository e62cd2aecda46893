/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-playerd: flags, start-up (sinks opened before it detaches, so that
 * mistakes show on the terminal), signals (SIGHUP stops the pipelines,
 * reads the configuration again and starts them anew; SIGTERM and SIGINT
 * abandon the batch in flight unacked and exit), and the pipelines: per
 * bucket a fetcher thread that long-polls the relay one batch ahead
 * (after= the last seq it fetched; the cursor moves only on ack) and a
 * sink thread that runs each batch through the sinks and then acks it.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rf_log.h"
#include "rf_ratelimit.h"
#include "player_api.h"
#include "playerd.h"


#define PLAYER_SLEEP_SLICE_MS   50


static void player_usage(FILE *out);
static void player_signals(void);
static void player_signal_handler(int signo);
static int player_start(player_conf_t *conf, char *err, size_t errlen);
static void player_stop(void);
static void player_reload(player_conf_t **conf);
static void *player_fetch_thread(void *arg);
static void *player_pipe_thread(void *arg);
static int player_cond_init(pthread_cond_t *cond);
static void player_pipe_wait(player_pipe_t *p, int ticks);


enum {
    PLAYER_OPT_HELP = 256,
    PLAYER_OPT_CONF             /* + index into player_flag_names */
};

static const char *const  player_flag_names[] = {
    "relay", "bucket", "token", "consumer", "target", "sqlite",
    "api_listen", "htpasswd", "file", "dead_letter", "id", "log_level",
    "token_file", "max_tries", "retry_backoff", "heartbeat", "script"
};

static const struct option  player_options[] = {
    { "help", no_argument, NULL, PLAYER_OPT_HELP },
    { "relay", required_argument, NULL, PLAYER_OPT_CONF + 0 },
    { "bucket", required_argument, NULL, PLAYER_OPT_CONF + 1 },
    { "token", required_argument, NULL, PLAYER_OPT_CONF + 2 },
    { "consumer", required_argument, NULL, PLAYER_OPT_CONF + 3 },
    { "target", required_argument, NULL, PLAYER_OPT_CONF + 4 },
    { "sqlite", required_argument, NULL, PLAYER_OPT_CONF + 5 },
    { "api-listen", required_argument, NULL, PLAYER_OPT_CONF + 6 },
    { "htpasswd", required_argument, NULL, PLAYER_OPT_CONF + 7 },
    { "file", required_argument, NULL, PLAYER_OPT_CONF + 8 },
    { "dead-letter", required_argument, NULL, PLAYER_OPT_CONF + 9 },
    { "id", required_argument, NULL, PLAYER_OPT_CONF + 10 },
    { "log-level", required_argument, NULL, PLAYER_OPT_CONF + 11 },
    { "token-file", required_argument, NULL, PLAYER_OPT_CONF + 12 },
    { "max-tries", required_argument, NULL, PLAYER_OPT_CONF + 13 },
    { "retry-backoff", required_argument, NULL, PLAYER_OPT_CONF + 14 },
    { "heartbeat", required_argument, NULL, PLAYER_OPT_CONF + 15 },
    { "script", required_argument, NULL, PLAYER_OPT_CONF + 16 },
    { NULL, 0, NULL, 0 }
};


int                       player_foreground;

pthread_rwlock_t          player_pipes_lock = PTHREAD_RWLOCK_INITIALIZER;
player_pipe_t            *player_pipes;
size_t                    player_npipes;
player_conf_t            *player_pipes_conf;

static volatile sig_atomic_t  player_quit;
static volatile sig_atomic_t  player_hup;

static const char        *player_conf_file;


int
main(int argc, char **argv)
{
    int             c, test;
    char            err[4096];
    const char     *file;
    player_conf_t  *conf;

    file = NULL;
    test = 0;

    opterr = 0;

    while ((c = getopt_long(argc, argv, ":c:tdvh", player_options, NULL))
           != -1)
    {
        switch (c) {

        case 'c':
            file = optarg;
            break;

        case 't':
            test = 1;
            break;

        case 'd':
            player_foreground = 1;
            break;

        case 'v':
            fprintf(stderr, PLAYERD_NAME " version: " PLAYERD_NAME "/"
                    PLAYERD_VERSION "\n");
            return 0;

        case 'h':
        case PLAYER_OPT_HELP:
            player_usage(stdout);
            return 0;

        case '?':
            if (optopt != 0 && optopt < 256) {
                fprintf(stderr, PLAYERD_NAME ": invalid option: \"-%c\"\n",
                        optopt);

            } else {
                fprintf(stderr, PLAYERD_NAME ": invalid option: \"%s\"\n",
                        argv[optind - 1]);
            }

            player_usage(stderr);
            return 1;

        case ':':
            fprintf(stderr, PLAYERD_NAME ": option \"%s\" requires a "
                    "value\n", argv[optind - 1]);
            player_usage(stderr);
            return 1;

        default:
            if (c < PLAYER_OPT_CONF
                || player_conf_flag(player_flag_names[c - PLAYER_OPT_CONF],
                                    optarg)
                   != 0)
            {
                player_usage(stderr);
                return 1;
            }

            break;
        }
    }

    if (optind < argc) {
        fprintf(stderr, PLAYERD_NAME ": unexpected argument \"%s\"\n",
                argv[optind]);
        player_usage(stderr);
        return 1;
    }

    if (test) {
        return player_conf_test(file);
    }

    log_init(1, PLAYERD_NAME);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fatalx("curl_global_init failed");
    }

    conf = calloc(1, sizeof(player_conf_t));
    if (conf == NULL) {
        fatal("calloc");
    }

    player_conf_file = file;

    err[0] = '\0';

    if (player_conf_load(conf, file, err, sizeof(err)) != 0) {
        fprintf(stderr, PLAYERD_NAME ": [emerg] %s\n", err);
        free(conf);
        return 1;
    }

    log_setverbose(conf->log_level);

    /*
     * Threads would not survive daemon()'s fork: the sinks are opened
     * once here, where a bad path still shows on the terminal, and again
     * after it.
     */

    if (!player_foreground) {
        if (player_start(conf, err, sizeof(err)) != 0) {
            fprintf(stderr, PLAYERD_NAME ": [emerg] %s\n", err);
            return 1;
        }

        player_stop();

        if (daemon(1, 0) == -1) {
            fatal("daemon");
        }

        log_init(0, PLAYERD_NAME);
    }

    player_signals();

    if (player_start(conf, err, sizeof(err)) != 0) {
        if (player_foreground) {
            fprintf(stderr, PLAYERD_NAME ": [emerg] %s\n", err);
            player_conf_free(conf);
            free(conf);
            return 1;
        }

        fatalx("%s", err);
    }

    log_info("started: relay %s, %zu buckets, id \"%s\"", conf->relay,
             conf->nbuckets, conf->id);

    while (!player_quit) {

        if (player_hup) {
            player_hup = 0;
            player_reload(&conf);
        }

        log_flush_suppressed();

        /* a signal cuts the sleep short (no SA_RESTART) */

        (void) usleep(200 * 1000);
    }

    log_info("stopping");

    player_stop();
    player_conf_free(conf);
    free(conf);
    curl_global_cleanup();

    log_info("exited");
    log_flush_suppressed();

    return 0;
}


static void
player_usage(FILE *out)
{
    fprintf(out,
        "usage: " PLAYERD_NAME " [-d] [-v] [-t] [-c FILE] [--relay URL] "
        "[--token TOKEN]\n"
        "         [--bucket NAME --consumer NAME [--target URL ...] "
        "[--file PATH]\n"
        "          [--sqlite PATH] [--script FILE] ]\n"
        "         [--api-listen ADDR:PORT] [--htpasswd FILE]\n"
        "         [--dead-letter PATH] [--id ID] "
        "[--log-level warn|info|debug]\n"
        "         [--token-file PATH] [--max-tries N] "
        "[--retry-backoff TIME]\n"
        "         [--heartbeat TIME]\n"
        "\n"
        "  -c FILE   configuration file (flags add to it and override it)\n"
        "  -t        test the configuration and exit\n"
        "  -d        stay in the foreground, log to stderr\n"
        "  -v        print the version and exit\n");
}


static void
player_signals(void)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(struct sigaction));
    sigemptyset(&sa.sa_mask);

    sa.sa_handler = player_signal_handler;

    if (sigaction(SIGTERM, &sa, NULL) == -1
        || sigaction(SIGINT, &sa, NULL) == -1
        || sigaction(SIGHUP, &sa, NULL) == -1)
    {
        fatal("sigaction");
    }

    sa.sa_handler = SIG_IGN;

    if (sigaction(SIGPIPE, &sa, NULL) == -1
        || sigaction(SIGXFSZ, &sa, NULL) == -1)
    {
        fatal("sigaction");
    }
}


static void
player_signal_handler(int signo)
{
    if (signo == SIGHUP) {
        player_hup = 1;

    } else {
        player_quit = 1;
    }
}


/*
 * SIGHUP: a configuration that does not load leaves the running one
 * alone; one that loads replaces it (pipelines stopped, the unacked
 * batch abandoned and pulled again by the new ones).  Should its sinks
 * not open, the old configuration is started again.
 */
static void
player_reload(player_conf_t **conf)
{
    char            err[4096];
    player_conf_t  *nc;

    nc = calloc(1, sizeof(player_conf_t));
    if (nc == NULL) {
        log_warnx("reload: out of memory");
        return;
    }

    err[0] = '\0';

    if (player_conf_load(nc, player_conf_file, err, sizeof(err)) != 0) {
        log_warnx("reload failed, the configuration is unchanged: %s", err);
        free(nc);
        return;
    }

    player_stop();

    log_setverbose(nc->log_level);

    if (player_start(nc, err, sizeof(err)) != 0) {
        log_warnx("reload failed, back to the old configuration: %s", err);

        player_conf_free(nc);
        free(nc);

        log_setverbose((*conf)->log_level);

        if (player_start(*conf, err, sizeof(err)) != 0) {
            fatalx("%s", err);
        }

        return;
    }

    player_conf_free(*conf);
    free(*conf);
    *conf = nc;

    log_info("reloaded: relay %s, %zu buckets", nc->relay, nc->nbuckets);
}


/* open the dead-letter file and every sink, then start the threads */

static int
player_start(player_conf_t *conf, char *err, size_t errlen)
{
    char            msg[1024];
    size_t          i, j, k, n, nopen;
    player_sink_t  *s;
    player_pipe_t  *pipes, *p;

    if (player_dead_open(conf->dead_letter, err, errlen) != 0) {
        return -1;
    }

    pipes = calloc(conf->nbuckets, sizeof(player_pipe_t));
    if (pipes == NULL) {
        snprintf(err, errlen, "out of memory");
        player_dead_close();
        return -1;
    }

    for (i = 0; i < conf->nbuckets; i++) {
        for (j = 0; j < conf->buckets[i].nsinks; j++) {
            s = conf->buckets[i].sinks[j];
            s->ctx = NULL;

            msg[0] = '\0';

            if (s->type->open != NULL
                && s->type->open(s, msg, sizeof(msg)) != 0)
            {
                snprintf(err, errlen, "bucket \"%s\" sink %s \"%s\": %s",
                         conf->buckets[i].name, s->type->type, s->name,
                         msg[0] ? msg : "cannot open");
                nopen = j;
                goto failed;
            }
        }
    }

    if (strcmp(conf->api_listen, "off") != 0
        && player_api_start(conf->api_listen, conf->htpasswd, msg,
                            sizeof(msg))
           != 0)
    {
        snprintf(err, errlen, "api_listen %s: %s", conf->api_listen, msg);
        i = conf->nbuckets - 1;
        nopen = conf->buckets[i].nsinks;
        goto failed;
    }

    for (i = 0; i < conf->nbuckets; i++) {
        p = &pipes[i];
        p->conf = conf;
        p->bc = &conf->buckets[i];
        p->token = player_bucket_token(conf, p->bc);
        p->next_tick = player_now_ms() + conf->script_tick;
        player_script_init(p);

        if (pthread_mutex_init(&p->lock, NULL) != 0
            || player_cond_init(&p->cond) != 0
            || player_http_init(&p->fetch_http, &p->stop, err, errlen) != 0
            || player_http_init(&p->ack_http, &p->stop, err, errlen) != 0)
        {
            snprintf(err, errlen, "cannot set up the pipeline of bucket "
                     "\"%s\"", p->bc->name);
            fatalx("%s", err);
        }
    }

    pthread_rwlock_wrlock(&player_pipes_lock);
    player_pipes = pipes;
    player_npipes = conf->nbuckets;
    player_pipes_conf = conf;
    pthread_rwlock_unlock(&player_pipes_lock);

    for (i = 0; i < conf->nbuckets; i++) {
        p = &pipes[i];

        __atomic_store_n(&p->running, 1, __ATOMIC_RELEASE);

        if (pthread_create(&p->fetch_tid, NULL, player_fetch_thread, p)
            != 0)
        {
            fatalx("pthread_create failed");
        }

        p->fetch_started = 1;

        if (pthread_create(&p->pipe_tid, NULL, player_pipe_thread, p) != 0) {
            fatalx("pthread_create failed");
        }

        p->pipe_started = 1;
    }

    if (player_heartbeat_start(conf, err, errlen) != 0) {
        fatalx("%s", err);
    }

    return 0;

failed:

    /* the sinks opened so far: all of the buckets before i, nopen of i */

    for (j = 0; j <= i; j++) {
        n = (j < i) ? conf->buckets[j].nsinks : nopen;

        for (k = 0; k < n; k++) {
            s = conf->buckets[j].sinks[k];

            if (s->type->close != NULL) {
                s->type->close(s);
            }

            s->ctx = NULL;
        }
    }

    free(pipes);
    player_dead_close();

    return -1;
}


static void
player_stop(void)
{
    size_t          i, j, n;
    player_sink_t  *s;
    player_pipe_t  *pipes, *p;
    player_conf_t  *conf;

    player_heartbeat_stop();
    player_api_stop();

    pthread_rwlock_wrlock(&player_pipes_lock);
    pipes = player_pipes;
    n = player_npipes;
    conf = player_pipes_conf;
    player_pipes = NULL;
    player_npipes = 0;
    player_pipes_conf = NULL;
    pthread_rwlock_unlock(&player_pipes_lock);

    if (pipes == NULL) {
        return;
    }

    for (i = 0; i < n; i++) {
        p = &pipes[i];

        __atomic_store_n(&p->stop, 1, __ATOMIC_RELEASE);

        pthread_mutex_lock(&p->lock);
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);

        rf_http_wakeup(&p->fetch_http);
        rf_http_wakeup(&p->ack_http);
    }

    for (i = 0; i < n; i++) {
        p = &pipes[i];

        if (p->fetch_started) {
            pthread_join(p->fetch_tid, NULL);
        }

        if (p->pipe_started) {
            pthread_join(p->pipe_tid, NULL);
        }

        if (p->ready != NULL) {
            player_chunk_free(p->ready);
            p->ready = NULL;
        }

        for (j = 0; j < conf->buckets[i].nsinks; j++) {
            s = conf->buckets[i].sinks[j];

            if (s->type->close != NULL) {
                s->type->close(s);
            }

            s->ctx = NULL;
        }

        rf_http_free(&p->fetch_http);
        rf_http_free(&p->ack_http);
        player_script_free(p);
        pthread_mutex_destroy(&p->lock);
        pthread_cond_destroy(&p->cond);
    }

    free(pipes);
    player_dead_close();
}


/*
 * The fetcher: one batch ahead of the sinks.  Its first pull reads from
 * the consumer's committed cursor; every later one from the last seq it
 * fetched, so a batch is fetched while the one before is in the sinks.
 */
static void *
player_fetch_thread(void *arg)
{
    uint64_t         after;
    player_pipe_t   *p;
    player_chunk_t  *c;

    p = arg;
    after = 0;

    for ( ;; ) {
        pthread_mutex_lock(&p->lock);

        while (p->ready != NULL && !__atomic_load_n(&p->stop,
                                                    __ATOMIC_ACQUIRE))
        {
            pthread_cond_wait(&p->cond, &p->lock);
        }

        pthread_mutex_unlock(&p->lock);

        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {
            break;
        }

        if (player_pull_batch(p, after, &c) != 0) {
            break;
        }

        after = c->last_seq;

        pthread_mutex_lock(&p->lock);
        p->ready = c;
        pthread_cond_broadcast(&p->cond);
        pthread_mutex_unlock(&p->lock);
    }

    return NULL;
}


/*
 * The sink thread: each batch through the sinks, then the ack; and every
 * script_tick the scripts' tick(), also while the relay has nothing.
 */
static void *
player_pipe_thread(void *arg)
{
    int              ticks;
    player_pipe_t   *p;
    player_chunk_t  *c;

    p = arg;
    ticks = player_script_ticks(p->bc);

    for ( ;; ) {
        pthread_mutex_lock(&p->lock);

        player_pipe_wait(p, ticks);

        c = p->ready;
        p->ready = NULL;
        pthread_cond_broadcast(&p->cond);

        pthread_mutex_unlock(&p->lock);

        if (__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE) && c == NULL) {
            break;
        }

        if (ticks && c == NULL && player_run_tick(p) != 0) {
            break;
        }

        if (c == NULL) {
            continue;
        }

        if (player_run_batch(p, c) != 0
            || player_pull_ack(p, c->last_seq) != 0)
        {
            log_info("bucket \"%s\": batch %" PRIu64 "..%" PRIu64 " left "
                     "unacked", p->bc->name, c->recs[0].seq, c->last_seq);
            player_chunk_free(c);
            break;
        }

        player_chunk_free(c);

        if (ticks && player_run_tick(p) != 0) {
            break;
        }
    }

    __atomic_store_n(&p->running, 0, __ATOMIC_RELEASE);

    return NULL;
}


/* under p->lock: until a batch is ready, the player stops or a tick is due */

static void
player_pipe_wait(player_pipe_t *p, int ticks)
{
    struct timespec  ts;

    while (p->ready == NULL && !__atomic_load_n(&p->stop, __ATOMIC_ACQUIRE)) {

        if (!ticks) {
            pthread_cond_wait(&p->cond, &p->lock);
            continue;
        }

        if (player_now_ms() >= p->next_tick) {
            return;
        }

        /* player_now_ms() is CLOCK_MONOTONIC's, as is the cond's clock */

        ts.tv_sec = (time_t) (p->next_tick / 1000);
        ts.tv_nsec = (long) (p->next_tick % 1000) * 1000000L;

        (void) pthread_cond_timedwait(&p->cond, &p->lock, &ts);
    }
}


static int
player_cond_init(pthread_cond_t *cond)
{
    int                 rc;
    pthread_condattr_t  attr;

    if (pthread_condattr_init(&attr) != 0) {
        return -1;
    }

    rc = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);

    if (rc == 0) {
        rc = pthread_cond_init(cond, &attr);
    }

    (void) pthread_condattr_destroy(&attr);

    return rc ? -1 : 0;
}


uint64_t
player_now_ms(void)
{
    return rf_now_ns() / 1000000;
}


int
player_sleep(const int *stop, uint64_t ms)
{
    uint64_t         end, now, left;
    struct timespec  ts;

    end = player_now_ms() + ms;

    for ( ;; ) {
        if (__atomic_load_n(stop, __ATOMIC_ACQUIRE)) {
            return -1;
        }

        now = player_now_ms();
        if (now >= end) {
            return 0;
        }

        left = end - now;
        if (left > PLAYER_SLEEP_SLICE_MS) {
            left = PLAYER_SLEEP_SLICE_MS;
        }

        ts.tv_sec = 0;
        ts.tv_nsec = (long) left * 1000000L;
        (void) nanosleep(&ts, NULL);
    }
}


uint64_t
player_jitter(uint64_t ms)
{
    unsigned  seed;

    seed = (unsigned) (rf_now_ns() ^ (uint64_t) pthread_self());

    return ms / 2 + (ms > 1 ? (uint64_t) rand_r(&seed) % (ms / 2 + 1) : 0);
}
