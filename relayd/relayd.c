/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-relayd, the relay: flags, start-up (buckets opened and listeners
 * bound before it detaches, so that mistakes show on the terminal),
 * signals (SIGHUP reloads buckets' tokens and limits and adds new
 * buckets; SIGTERM and SIGINT stop after the requests in flight) and the
 * once-a-second tick that runs retention and rates.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "rf_log.h"
#include "relayd.h"


#define RELAYD_TICK_MS          1000


static void relayd_usage(FILE *out);
static void relayd_signals(void);
static void relayd_signal_handler(int signo);
static int relayd_open_buckets(relayd_t *rd, char *err, size_t errlen);
static void relayd_close_buckets(relayd_t *rd);
static void relayd_run(relayd_t *rd);
static void relayd_reload(relayd_t *rd);


enum {
    RELAYD_OPT_HELP = 256,
    RELAYD_OPT_CONF             /* + index into relayd_flag_names */
};

static const char *const  relayd_flag_names[] = {
    "listen", "stats_listen", "data", "bucket", "max_connections",
    "max_batch", "client_timeout", "max_wait", "log_level"
};

static const struct option  relayd_options[] = {
    { "help", no_argument, NULL, RELAYD_OPT_HELP },
    { "listen", required_argument, NULL, RELAYD_OPT_CONF + 0 },
    { "stats-listen", required_argument, NULL, RELAYD_OPT_CONF + 1 },
    { "data", required_argument, NULL, RELAYD_OPT_CONF + 2 },
    { "bucket", required_argument, NULL, RELAYD_OPT_CONF + 3 },
    { "max-connections", required_argument, NULL, RELAYD_OPT_CONF + 4 },
    { "max-batch", required_argument, NULL, RELAYD_OPT_CONF + 5 },
    { "client-timeout", required_argument, NULL, RELAYD_OPT_CONF + 6 },
    { "max-wait", required_argument, NULL, RELAYD_OPT_CONF + 7 },
    { "log-level", required_argument, NULL, RELAYD_OPT_CONF + 8 },
    { NULL, 0, NULL, 0 }
};


static volatile sig_atomic_t  relayd_quit;
static volatile sig_atomic_t  relayd_hup;

static const char  *relayd_conf_file;


int
main(int argc, char **argv)
{
    int          c, foreground, test;
    char         err[4096];
    const char  *file;
    relayd_t    *rd;

    file = NULL;
    foreground = 0;
    test = 0;

    opterr = 0;

    while ((c = getopt_long(argc, argv, ":c:tdvh", relayd_options, NULL))
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
            foreground = 1;
            break;

        case 'v':
            fprintf(stderr, RELAYD_NAME " version: " RELAYD_NAME "/"
                    RELAYD_VERSION "\n");
            return 0;

        case 'h':
        case RELAYD_OPT_HELP:
            relayd_usage(stdout);
            return 0;

        case '?':
            if (optopt != 0 && optopt < 256) {
                fprintf(stderr, RELAYD_NAME ": invalid option: \"-%c\"\n",
                        optopt);

            } else {
                fprintf(stderr, RELAYD_NAME ": invalid option: \"%s\"\n",
                        argv[optind - 1]);
            }

            relayd_usage(stderr);
            return 1;

        case ':':
            fprintf(stderr, RELAYD_NAME ": option \"%s\" requires a value\n",
                    argv[optind - 1]);
            relayd_usage(stderr);
            return 1;

        default:
            if (c < RELAYD_OPT_CONF
                || relayd_conf_flag(relayd_flag_names[c - RELAYD_OPT_CONF],
                                    optarg)
                   != 0)
            {
                relayd_usage(stderr);
                return 1;
            }

            break;
        }
    }

    if (optind < argc) {
        fprintf(stderr, RELAYD_NAME ": unexpected argument \"%s\"\n",
                argv[optind]);
        relayd_usage(stderr);
        return 1;
    }

    if (test) {
        return relayd_conf_test(file);
    }

    log_init(1, RELAYD_NAME);

    rd = calloc(1, sizeof(relayd_t));
    if (rd == NULL) {
        fatal("calloc");
    }

    relayd_conf_file = file;

    if (relayd_conf_load(&rd->conf, file, err, sizeof(err)) != 0) {
        fprintf(stderr, RELAYD_NAME ": [emerg] %s\n", err);
        free(rd);
        return 1;
    }

    log_setverbose(rd->conf.log_level);

    if (mkdir(rd->conf.data, 0750) == -1 && errno != EEXIST) {
        fatal("cannot create data directory \"%s\"", rd->conf.data);
    }

    if (pthread_rwlock_init(&rd->lock, NULL) != 0) {
        fatalx("pthread_rwlock_init failed");
    }

    /*
     * The buckets' writer threads and the listeners' threads would not
     * survive daemon()'s fork, so the buckets are opened once here, where
     * a bad directory or a damaged file still shows on the terminal, and
     * again after it.
     */

    if (!foreground) {
        if (relayd_open_buckets(rd, err, sizeof(err)) != 0) {
            fprintf(stderr, RELAYD_NAME ": [emerg] %s\n", err);
            return 1;
        }

        relayd_close_buckets(rd);

        if (daemon(1, 0) == -1) {
            fatal("daemon");
        }

        log_init(0, RELAYD_NAME);
    }

    relayd_signals();

    if (pthread_mutex_init(&rd->rate_lock, NULL) != 0) {
        fatalx("pthread_mutex_init failed");
    }

    rd->started_ms = relayd_now_ms();

    if (relayd_open_buckets(rd, err, sizeof(err)) != 0) {
        fatalx("%s", err);
    }

    if (relay_http_start(rd, err, sizeof(err)) != 0) {
        relayd_close_buckets(rd);
        fatalx("%s", err);
    }

    log_info("started: listen %s, stats_listen %s, data \"%s\", %zu "
             "buckets", rd->conf.listen, rd->conf.stats_listen,
             rd->conf.data, rd->nbuckets);

    relayd_run(rd);

    log_info("stopping");

    rd->quit = 1;
    relay_http_stop();
    relayd_close_buckets(rd);
    relay_stats_free();
    relayd_conf_free(&rd->conf);
    pthread_rwlock_destroy(&rd->lock);
    pthread_mutex_destroy(&rd->rate_lock);
    free(rd);

    log_info("exited");
    log_flush_suppressed();

    return 0;
}


static void
relayd_usage(FILE *out)
{
    fprintf(out,
        "usage: " RELAYD_NAME " [-d] [-v] [-t] [-c FILE] "
        "[--listen ADDR:PORT] [--data DIR]\n"
        "         [--bucket NAME:TOKEN ...] [--stats-listen ADDR:PORT|off]\n"
        "         [--max-connections N] [--max-batch SIZE] "
        "[--client-timeout TIME]\n"
        "         [--max-wait TIME] [--log-level warn|info|debug]\n"
        "\n"
        "  -c FILE   configuration file (flags add to it and override it)\n"
        "  -t        test the configuration and exit\n"
        "  -d        stay in the foreground, log to stderr\n"
        "  -v        print the version and exit\n");
}


static void
relayd_signals(void)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(struct sigaction));
    sigemptyset(&sa.sa_mask);

    sa.sa_handler = relayd_signal_handler;

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
relayd_signal_handler(int signo)
{
    if (signo == SIGHUP) {
        relayd_hup = 1;

    } else {
        relayd_quit = 1;
    }
}


static int
relayd_open_buckets(relayd_t *rd, char *err, size_t errlen)
{
    size_t  i;

    for (i = 0; i < rd->conf.nbuckets; i++) {
        if (relay_bucket_open(&rd->buckets[i], &rd->conf.buckets[i],
                              rd->conf.data, err, errlen)
            != 0)
        {
            relayd_close_buckets(rd);
            return -1;
        }

        rf_ratelimit_init(&rd->rate[i], (double) rd->conf.buckets[i].rate,
                          0, rf_now_ns());
        __atomic_store_n(&rd->nbuckets, i + 1, __ATOMIC_RELEASE);
    }

    return 0;
}


static void
relayd_close_buckets(relayd_t *rd)
{
    size_t  i;

    for (i = 0; i < rd->nbuckets; i++) {
        relay_bucket_close(rd->buckets[i]);
        rd->buckets[i] = NULL;
    }

    rd->nbuckets = 0;
}


uint64_t
relayd_rate_take(relayd_t *rd, relay_bucket_t *b, size_t n)
{
    size_t    i, nb;
    uint64_t  wait;

    nb = __atomic_load_n(&rd->nbuckets, __ATOMIC_ACQUIRE);

    for (i = 0; i < nb && rd->buckets[i] != b; i++) {
        /* void */
    }

    if (i == nb) {
        return 0;
    }

    pthread_mutex_lock(&rd->rate_lock);
    wait = rf_ratelimit_take(&rd->rate[i], (double) n, rf_now_ns());
    pthread_mutex_unlock(&rd->rate_lock);

    return wait ? (wait + 999999999) / 1000000000 : 0;
}


relay_bucket_t *
relayd_bucket(relayd_t *rd, const char *name, size_t len)
{
    size_t       i, n;
    const char  *bname;

    n = __atomic_load_n(&rd->nbuckets, __ATOMIC_ACQUIRE);

    for (i = 0; i < n; i++) {
        bname = relay_bucket_conf(rd->buckets[i])->name;

        if (strlen(bname) == len && memcmp(bname, name, len) == 0) {
            return rd->buckets[i];
        }
    }

    return NULL;
}


static void
relayd_run(relayd_t *rd)
{
    size_t           i, n;
    uint64_t         now, next;
    struct timespec  ts;

    next = relayd_now_ms();

    while (!relayd_quit) {

        if (relayd_hup) {
            relayd_hup = 0;
            relayd_reload(rd);
        }

        now = relayd_now_ms();

        if (now >= next) {
            n = __atomic_load_n(&rd->nbuckets, __ATOMIC_ACQUIRE);

            for (i = 0; i < n; i++) {
                relay_bucket_tick(rd->buckets[i], now);
            }

            next = now + RELAYD_TICK_MS;
            log_flush_suppressed();
        }

        /* a signal cuts the sleep short (no SA_RESTART) */

        ts.tv_sec = 0;
        ts.tv_nsec = 100 * 1000000L;
        (void) nanosleep(&ts, NULL);
    }
}


/*
 * SIGHUP: the file is read again.  Tokens, limits and consumers of
 * existing buckets change in place, new buckets open; removing a bucket
 * and changing a listener need a restart (said so in the log).
 */
static void
relayd_reload(relayd_t *rd)
{
    char            err[4096];
    size_t          i, j, nold;
    relayd_conf_t  *nc;
    relay_bucket_t *b;

    nc = calloc(1, sizeof(relayd_conf_t));
    if (nc == NULL) {
        log_warn("reload");
        return;
    }

    if (relayd_conf_load(nc, relayd_conf_file, err, sizeof(err)) != 0) {
        log_warnx("reload failed, keeping the running configuration: %s",
                  err);
        free(nc);
        return;
    }

    if (strcmp(nc->listen, rd->conf.listen) != 0
        || strcmp(nc->stats_listen, rd->conf.stats_listen) != 0
        || strcmp(nc->data, rd->conf.data) != 0)
    {
        log_warnx("reload: listen, stats_listen and data change only with "
                  "a restart; keeping the running ones");
    }

    /* new buckets first: a client told of the reload finds them */

    nold = rd->nbuckets;

    for (j = 0; j < nc->nbuckets; j++) {
        if (relayd_bucket(rd, nc->buckets[j].name,
                          strlen(nc->buckets[j].name))
            != NULL)
        {
            continue;
        }

        if (rd->nbuckets == RELAYD_MAX_BUCKETS) {
            log_warnx("reload: too many buckets, \"%s\" not added",
                      nc->buckets[j].name);
            continue;
        }

        /* the new bucket's conf moves into the running conf */

        i = rd->conf.nbuckets;
        rd->conf.buckets[i] = nc->buckets[j];
        memset(&nc->buckets[j], 0, sizeof(relay_bucket_conf_t));

        if (relay_bucket_open(&b, &rd->conf.buckets[i], rd->conf.data, err,
                              sizeof(err))
            != 0)
        {
            log_warnx("reload: bucket \"%s\" not added: %s",
                      rd->conf.buckets[i].name, err);
            nc->buckets[j] = rd->conf.buckets[i];
            memset(&rd->conf.buckets[i], 0, sizeof(relay_bucket_conf_t));
            continue;
        }

        rd->conf.nbuckets++;
        rd->buckets[rd->nbuckets] = b;
        rf_ratelimit_init(&rd->rate[rd->nbuckets],
                          (double) rd->conf.buckets[i].rate, 0, rf_now_ns());
        __atomic_store_n(&rd->nbuckets, rd->nbuckets + 1, __ATOMIC_RELEASE);

        log_info("reload: bucket \"%s\" added", rd->conf.buckets[i].name);
    }

    for (i = 0; i < nold; i++) {
        for (j = 0; j < nc->nbuckets; j++) {
            if (nc->buckets[j].name != NULL
                && strcmp(rd->conf.buckets[i].name, nc->buckets[j].name)
                   == 0)
            {
                break;
            }
        }

        if (j == nc->nbuckets) {
            log_warnx("reload: bucket \"%s\" is no longer configured; it "
                      "stays open until a restart",
                      rd->conf.buckets[i].name);
            continue;
        }

        pthread_rwlock_wrlock(&rd->lock);

        if (relay_bucket_reconfigure(rd->buckets[i], &nc->buckets[j], err,
                                     sizeof(err))
            != 0)
        {
            log_warnx("reload: bucket \"%s\": %s", nc->buckets[j].name,
                      err);
        }

        pthread_rwlock_unlock(&rd->lock);

        if (nc->buckets[j].rate != rd->conf.buckets[i].rate) {
            rd->conf.buckets[i].rate = nc->buckets[j].rate;
            pthread_mutex_lock(&rd->rate_lock);
            rf_ratelimit_init(&rd->rate[i], (double) nc->buckets[j].rate, 0,
                              rf_now_ns());
            pthread_mutex_unlock(&rd->rate_lock);
        }
    }

    log_setverbose(nc->log_level);

    relayd_conf_free(nc);
    free(nc);

    log_info("reloaded");
}


uint64_t
relayd_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}
