/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold, the capture sidecar: flags, start-up, signals (SIGHUP
 * reloads, SIGTERM and SIGINT stop after the current batch) and the main
 * loop that drains the ring into the buffer, polling without a pause while
 * records come and backing off when idle, and ticking the scripts.  The
 * main thread is the only writer of the buffer: it also deletes what the
 * forwarder's thread (spool_forward.c) reports the relay acknowledged.
 */

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rf_log.h"
#include "spoold.h"
#include "spool_buffer.h"
#include "spool_forward.h"
#include "spool_ring.h"
#include "spool_script.h"
#include "spoold_int.h"


#define SPOOLD_ATTACH_US        100000      /* polling for the ring file */
#define SPOOLD_IDLE_MIN_US      50
#define SPOOLD_IDLE_MAX_US      20000
#define SPOOLD_WAIT_MAX_US      1000
#define SPOOLD_ERROR_MIN_US     10000
#define SPOOLD_ERROR_MAX_US     2000000
#define SPOOLD_BUSY_MAX_US      200000
#define SPOOLD_CHECK_MS         1000        /* ring replaced? */
#define SPOOLD_IDLE_CKPT_MS     1000        /* idle: checkpoint the WAL */
#define SPOOLD_OLD_RING_ROUNDS  1000
#define SPOOLD_PUBLISH_MS       250         /* stats for the heartbeat */
#define SPOOLD_HEAP_PAD         (1024 * 1024)
#define SPOOLD_HEAP_TRIM        (8 * 1024 * 1024)
#define SPOOLD_HEAP_MMAP        (4 * 1024 * 1024)


static void spoold_usage(FILE *out);
static void spoold_signals(void);
static void spoold_signal_handler(int signo);
static void spoold_open_buffer(spoold_t *sd);
static void spoold_run(spoold_t *sd);
static int64_t spoold_script_store(spoold_t *sd);
static int spoold_forwarded(spoold_t *sd);
static void spoold_publish(spoold_t *sd, uint64_t now);
static void spoold_sleep(uint64_t us);
static uint64_t spoold_now_ms(void);


enum {
    SPOOLD_OPT_DUMP = 256,
    SPOOLD_OPT_STATS,
    SPOOLD_OPT_HELP,
    SPOOLD_OPT_CONF             /* + index into spoold_flag_names */
};

/* the flags that set a directive, in SPOOLD_OPT_CONF + i order */

static const char *const  spoold_flag_names[] = {
    "id", "ring", "buffer", "max_buffer", "overflow", "batch",
    "stall_timeout", "log_level", "relay", "token", "token_file", "bucket",
    "rate", "rate_bytes", "forward_batch", "forward_batch_bytes",
    "forward_linger", "retry_max", "heartbeat", "script", "script_budget",
    "script_memory", "script_tick", "dead_letter", "dead_letter_max",
    "batch_linger"
};

static const struct option  spoold_options[] = {
    { "dump", no_argument, NULL, SPOOLD_OPT_DUMP },
    { "stats", no_argument, NULL, SPOOLD_OPT_STATS },
    { "help", no_argument, NULL, SPOOLD_OPT_HELP },
    { "id", required_argument, NULL, SPOOLD_OPT_CONF + 0 },
    { "ring", required_argument, NULL, SPOOLD_OPT_CONF + 1 },
    { "buffer", required_argument, NULL, SPOOLD_OPT_CONF + 2 },
    { "max-buffer", required_argument, NULL, SPOOLD_OPT_CONF + 3 },
    { "overflow", required_argument, NULL, SPOOLD_OPT_CONF + 4 },
    { "batch", required_argument, NULL, SPOOLD_OPT_CONF + 5 },
    { "stall-timeout", required_argument, NULL, SPOOLD_OPT_CONF + 6 },
    { "log-level", required_argument, NULL, SPOOLD_OPT_CONF + 7 },
    { "relay", required_argument, NULL, SPOOLD_OPT_CONF + 8 },
    { "token", required_argument, NULL, SPOOLD_OPT_CONF + 9 },
    { "token-file", required_argument, NULL, SPOOLD_OPT_CONF + 10 },
    { "bucket", required_argument, NULL, SPOOLD_OPT_CONF + 11 },
    { "rate", required_argument, NULL, SPOOLD_OPT_CONF + 12 },
    { "rate-bytes", required_argument, NULL, SPOOLD_OPT_CONF + 13 },
    { "forward-batch", required_argument, NULL, SPOOLD_OPT_CONF + 14 },
    { "forward-batch-bytes", required_argument, NULL, SPOOLD_OPT_CONF + 15 },
    { "forward-linger", required_argument, NULL, SPOOLD_OPT_CONF + 16 },
    { "retry-max", required_argument, NULL, SPOOLD_OPT_CONF + 17 },
    { "heartbeat", required_argument, NULL, SPOOLD_OPT_CONF + 18 },
    { "script", required_argument, NULL, SPOOLD_OPT_CONF + 19 },
    { "script-budget", required_argument, NULL, SPOOLD_OPT_CONF + 20 },
    { "script-memory", required_argument, NULL, SPOOLD_OPT_CONF + 21 },
    { "script-tick", required_argument, NULL, SPOOLD_OPT_CONF + 22 },
    { "dead-letter", required_argument, NULL, SPOOLD_OPT_CONF + 23 },
    { "dead-letter-max", required_argument, NULL, SPOOLD_OPT_CONF + 24 },
    { "batch-linger", required_argument, NULL, SPOOLD_OPT_CONF + 25 },
    { NULL, 0, NULL, 0 }
};


static volatile sig_atomic_t   spoold_quit;
static volatile sig_atomic_t   spoold_hup;


int
main(int argc, char **argv)
{
    int          c, foreground, test, dump, stats;
    char         err[4096];
    spoold_t     sd;
    const char  *file;

    file = NULL;
    foreground = 0;
    test = 0;
    dump = 0;
    stats = 0;

    opterr = 0;

    while ((c = getopt_long(argc, argv, ":c:tdvh", spoold_options, NULL))
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
            fprintf(stderr, SPOOLD_NAME " version: " SPOOLD_NAME "/"
                    SPOOLD_VERSION "\n");
            return 0;

        case 'h':
        case SPOOLD_OPT_HELP:
            spoold_usage(stdout);
            return 0;

        case SPOOLD_OPT_DUMP:
            dump = 1;
            break;

        case SPOOLD_OPT_STATS:
            stats = 1;
            break;

        case '?':
            if (optopt != 0 && optopt < 256) {
                fprintf(stderr, SPOOLD_NAME ": invalid option: \"-%c\"\n",
                        optopt);

            } else {
                fprintf(stderr, SPOOLD_NAME ": invalid option: \"%s\"\n",
                        argv[optind - 1]);
            }

            spoold_usage(stderr);
            return 1;

        case ':':
            fprintf(stderr, SPOOLD_NAME ": option \"%s\" requires a value\n",
                    argv[optind - 1]);
            spoold_usage(stderr);
            return 1;

        default:
            if (c < SPOOLD_OPT_CONF
                || spoold_conf_flag(spoold_flag_names[c - SPOOLD_OPT_CONF],
                                    optarg)
                   != 0)
            {
                spoold_usage(stderr);
                return 1;
            }

            break;
        }
    }

    if (optind < argc) {
        fprintf(stderr, SPOOLD_NAME ": unexpected argument \"%s\"\n",
                argv[optind]);
        spoold_usage(stderr);
        return 1;
    }

    if (test) {
        return spoold_conf_test(file);
    }

    log_init(1, SPOOLD_NAME);

    memset(&sd, 0, sizeof(spoold_t));
    sd.conf_file = file;

    if (spoold_conf_load(&sd.conf, file, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": [emerg] %s\n", err);
        return 1;
    }

    if (dump || stats) {
        if (sd.conf.buffer == NULL || sd.conf.buffer[0] == '\0') {
            fprintf(stderr, SPOOLD_NAME ": %s needs --buffer PATH\n",
                    dump ? "--dump" : "--stats");
            spoold_conf_free(&sd.conf);
            return 1;
        }

        log_setverbose(RF_LOG_WARN);

        c = dump ? spool_dump(&sd.conf) : spool_stats(&sd.conf);

        spoold_conf_free(&sd.conf);

        return c;
    }

    if (spoold_conf_check(&sd.conf, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": [emerg] %s\n", err);
        spoold_conf_free(&sd.conf);
        return 1;
    }

    log_setverbose(sd.conf.log_level);

    /* before the fork: a script that does not load is told on the terminal */

    sd.script = spool_script_create(&sd.conf, err, sizeof(err));

    if (sd.script == NULL) {
        fprintf(stderr, SPOOLD_NAME ": [emerg] %s\n", err);
        spoold_conf_free(&sd.conf);
        return 1;
    }

    /*
     * SQLite allocates and frees page-sized blocks all the time; with
     * glibc's default trim threshold every batch moved the heap's top up
     * and down with brk(), thousands of calls a second.  Setting it also
     * fixes the mmap threshold at 128k, and SQLite builds every chunk
     * row (up to a megabyte) in a block of its own: each one was a fresh
     * mmap() faulted in page by page, then unmapped.  Blocks up to
     * SPOOLD_HEAP_MMAP now come from the heap and are reused.
     */

    (void) mallopt(M_TOP_PAD, SPOOLD_HEAP_PAD);
    (void) mallopt(M_TRIM_THRESHOLD, SPOOLD_HEAP_TRIM);
    (void) mallopt(M_MMAP_THRESHOLD, SPOOLD_HEAP_MMAP);

    /*
     * Open the buffer once in the foreground so that a bad path or a
     * buffer in use is reported on the terminal, then again after the
     * fork: SQLite connections and their locks must not cross a fork.
     */

    spoold_open_buffer(&sd);

    if (!foreground) {
        spool_buffer_close(sd.buffer);
        sd.buffer = NULL;

        if (daemon(1, 0) == -1) {
            fatal("daemon");
        }

        log_init(0, SPOOLD_NAME);
        spoold_open_buffer(&sd);
    }

    spoold_signals();
    spool_ring_init(&sd.ring);
    spool_ring_set_linger(&sd.ring, sd.conf.batch_linger);

    /* after the fork: threads do not cross it */

    sd.fwd = spool_fwd_create();
    if (sd.fwd == NULL) {
        fatal("forwarder");
    }

    log_info("started: id \"%s\", ring \"%s\", buffer \"%s\", max_buffer %"
             PRIu64 ", overflow %s, %" PRIu64 " records stored, next "
             "sequence %" PRIu64, sd.conf.id, sd.conf.ring, sd.conf.buffer,
             sd.conf.max_buffer, spoold_overflow_names[sd.conf.overflow],
             spool_buffer_meta(sd.buffer)->records,
             spool_buffer_meta(sd.buffer)->next_sseq);

    spoold_fwd_start(&sd);
    spoold_run(&sd);

    spool_ring_free(&sd.ring);
    spool_buffer_close(sd.buffer);
    spool_fwd_destroy(sd.fwd);
    spool_script_destroy(sd.script);
    spoold_conf_free(&sd.conf);

    log_info("exited");
    log_flush_suppressed();

    return 0;
}


static void
spoold_usage(FILE *out)
{
    fprintf(out,
        "usage: " SPOOLD_NAME " [-d] [-v] [-t] [-c FILE] [--ring PATH] "
        "[--buffer PATH]\n"
        "         [--id NAME] [--max-buffer SIZE] "
        "[--overflow drop_oldest|drop_newest]\n"
        "         [--batch N] [--batch-linger TIME] [--stall-timeout TIME]\n"
        "         [--log-level warn|info|debug]\n"
        "         [--relay URL --token TOKEN|--token-file PATH] "
        "[--bucket NAME:TOKEN]\n"
        "         [--rate N/s] [--rate-bytes SIZE/s] [--forward-batch N]\n"
        "         [--forward-batch-bytes SIZE] [--forward-linger TIME] "
        "[--retry-max TIME]\n"
        "         [--heartbeat TIME] [--script FILE] [--script-budget N]\n"
        "         [--script-memory SIZE] [--script-tick TIME] "
        "[--dead-letter FILE]\n"
        "         [--dead-letter-max SIZE]\n"
        "       " SPOOLD_NAME " --dump --buffer PATH\n"
        "       " SPOOLD_NAME " --stats --buffer PATH [--ring PATH]\n"
        "\n"
        "  -c FILE   configuration file (flags override it)\n"
        "  -t        test the configuration and exit\n"
        "  -d        stay in the foreground, log to stderr\n"
        "  -v        print the version and exit\n"
        "  --dump    print every buffered record as NDJSON and exit\n"
        "  --stats   print the buffer's counters as JSON and exit\n");
}


static void
spoold_signals(void)
{
    struct sigaction  sa;

    memset(&sa, 0, sizeof(struct sigaction));
    sigemptyset(&sa.sa_mask);

    /* no SA_RESTART: a signal cuts the idle sleep short */

    sa.sa_handler = spoold_signal_handler;

    if (sigaction(SIGTERM, &sa, NULL) == -1
        || sigaction(SIGINT, &sa, NULL) == -1
        || sigaction(SIGHUP, &sa, NULL) == -1)
    {
        fatal("sigaction");
    }

    /* a file size limit makes SQLite's write fail (EFBIG), not kill us */

    sa.sa_handler = SIG_IGN;

    if (sigaction(SIGPIPE, &sa, NULL) == -1
        || sigaction(SIGXFSZ, &sa, NULL) == -1)
    {
        fatal("sigaction");
    }
}


static void
spoold_signal_handler(int signo)
{
    if (signo == SIGHUP) {
        spoold_hup = 1;

    } else {
        spoold_quit = 1;
    }
}


static void
spoold_open_buffer(spoold_t *sd)
{
    char  err[4096];

    if (spool_buffer_open(&sd->buffer, sd->conf.buffer, sd->conf.max_buffer,
                          sd->conf.overflow, sd->conf.id, err, sizeof(err))
        != 0)
    {
        fatalx("%s", err);
    }

    sd->id.data = (const unsigned char *) sd->conf.id;
    sd->id.len = strlen(sd->conf.id);
}


static void
spoold_run(spoold_t *sd)
{
    int64_t   n, m;
    uint64_t  now, idle_us, error_us, max_us, next_check, idle_since;
    unsigned  tidy;

    idle_us = 0;
    error_us = 0;
    now = spoold_now_ms();
    next_check = now + SPOOLD_CHECK_MS;
    idle_since = now;
    tidy = 0;               /* the idle work: shrink, checkpoint */

    while (!spoold_quit) {

        if (spoold_hup) {
            spoold_hup = 0;
            spoold_reload(sd);
            tidy = 0;
        }

        /* what the relay acknowledged, also when no records come */

        now = spoold_now_ms();

        if (spoold_forwarded(sd) > 0) {
            idle_since = now;
            tidy = 0;
        }

        spoold_publish(sd, now);
        spool_script_tick(sd->script, now,
                          spool_buffer_batch_bytes(sd->buffer));

        if (!sd->ring.attached) {
            if (spool_ring_attach(&sd->ring, sd->conf.ring, sd->buffer,
                                  sd->conf.stall_timeout)
                != 0)
            {
                (void) spoold_script_store(sd);

                if (!tidy && now - idle_since >= SPOOLD_IDLE_CKPT_MS
                    && spool_buffer_idle(sd->buffer) == 0)
                {
                    tidy = 1;
                }

                spoold_sleep(SPOOLD_ATTACH_US);
                continue;
            }

            next_check = spoold_now_ms() + SPOOLD_CHECK_MS;
        }

        n = spool_ring_drain(&sd->ring, sd->buffer, &sd->id, sd->script,
                             (size_t) sd->conf.batch, 0);

        if (n >= 0) {
            m = spoold_script_store(sd);
            n = (m < 0) ? -1 : n + m;
        }

        spool_fwd_notify(sd->fwd,
                         spool_buffer_meta(sd->buffer)->next_sseq - 1);

        now = spoold_now_ms();

        if (n > 0) {
            /* records keep coming: no sleep at all */
            idle_us = 0;
            error_us = 0;
            idle_since = now;
            tidy = 0;

        } else if (n == 0) {
            error_us = 0;

            if (!tidy && !spool_ring_pending(&sd->ring)
                && now - idle_since >= SPOOLD_IDLE_CKPT_MS
                && spool_buffer_idle(sd->buffer) == 0)
            {
                tidy = 1;
            }

            /*
             * RF_RING_WAIT: a producer is between reserve and commit, a
             * matter of microseconds unless it died (the stall timeout
             * handles that), so the wait stays short.
             */

            idle_us = idle_us ? idle_us * 2 : SPOOLD_IDLE_MIN_US;

            if (idle_us > SPOOLD_IDLE_MAX_US
                || (sd->ring.last_rc == RF_RING_WAIT
                    && idle_us > SPOOLD_WAIT_MAX_US))
            {
                idle_us = (sd->ring.last_rc == RF_RING_WAIT)
                          ? SPOOLD_WAIT_MAX_US : SPOOLD_IDLE_MAX_US;
            }

            spoold_sleep(idle_us);

        } else {

            /*
             * The store logged why; the batch stays in the ring.  EBUSY
             * is a reader holding the WAL, which goes away soon; a full
             * or failing disk gets longer pauses.
             */

            max_us = (errno == EBUSY) ? SPOOLD_BUSY_MAX_US
                                      : SPOOLD_ERROR_MAX_US;

            error_us = error_us ? error_us * 2 : SPOOLD_ERROR_MIN_US;
            if (error_us > max_us) {
                error_us = max_us;
            }

            spoold_sleep(error_us);
        }

        if (now >= next_check) {
            next_check = now + SPOOLD_CHECK_MS;
            spoold_check_ring(sd);
        }
    }

    /* unacknowledged records stay buffered for the next start */

    spool_fwd_stop(sd->fwd);

    /* the batch read so far is stored (a failed one gets one more try) */

    if (spool_ring_pending(&sd->ring)
        && spool_ring_drain(&sd->ring, sd->buffer, &sd->id, sd->script,
                            0, 1) < 0)
    {
        log_warnx("stopping with %" PRIu64 " records not stored; they stay "
                  "in the ring", sd->ring.taken);
    }

    if (spoold_script_store(sd) < 0) {
        log_warnx("stopping with %zu records of the scripts not stored",
                  spool_script_count(sd->script));
    }

    while (spoold_forwarded(sd) > 0) {
        /* void */
    }
}


/*
 * What the scripts queued while no batch is read from the ring (tick()):
 * in a commit of its own.  A batch being read takes it along instead.
 */

static int64_t
spoold_script_store(spoold_t *sd)
{
    int64_t  n;

    if (spool_ring_pending(&sd->ring) || !spool_script_pending(sd->script)) {
        return 0;
    }

    n = spool_script_store(sd->script, sd->buffer, &sd->id);

    if (n > 0) {
        spool_fwd_notify(sd->fwd,
                         spool_buffer_meta(sd->buffer)->next_sseq - 1);
    }

    return n;
}


void
spoold_fwd_start(spoold_t *sd)
{
    rf_ring_stats_t  rs;

    if (sd->conf.relay == NULL) {
        return;
    }

    spool_fwd_notify(sd->fwd, spool_buffer_meta(sd->buffer)->next_sseq - 1);

    if (sd->ring.attached) {
        rf_ring_get_stats(&sd->ring.ring, &rs);
    }

    spool_fwd_publish(sd->fwd, spool_buffer_meta(sd->buffer),
                      sd->ring.attached ? &rs : NULL);

    if (spool_fwd_start(sd->fwd, &sd->conf) != 0) {
        log_warn("cannot start forwarding to %s", sd->conf.relay);
    }
}


/*
 * Deletes what the relay acknowledged: 1 when something was done, 0 when
 * nothing was to do, -1 when the buffer failed (tried again later).
 */

static int
spoold_forwarded(spoold_t *sd)
{
    int       rc, rejected, did;
    uint64_t  upto;

    did = 0;

    while (spool_fwd_acked(sd->fwd, &upto, &rejected)) {
        rc = spool_buffer_release(sd->buffer, upto, rejected);

        if (rc != 0) {
            return (rc == 1) ? 1 : -1;
        }

        spool_fwd_applied(sd->fwd, upto, rejected);
        did = 1;
    }

    return did;
}


static void
spoold_publish(spoold_t *sd, uint64_t now)
{
    rf_ring_stats_t  rs;

    if (now < sd->next_publish || !spool_fwd_running(sd->fwd)) {
        return;
    }

    sd->next_publish = now + SPOOLD_PUBLISH_MS;

    if (sd->ring.attached) {
        rf_ring_get_stats(&sd->ring.ring, &rs);
    }

    spool_fwd_publish(sd->fwd, spool_buffer_meta(sd->buffer),
                      sd->ring.attached ? &rs : NULL);
}


/* every second, and after a reload: the ring file replaced or reset */

void
spoold_check_ring(spoold_t *sd)
{
    int  i;

    if (!sd->ring.attached || sd->ring.failed) {
        return;
    }

    switch (spool_ring_changed(&sd->ring, sd->conf.ring)) {

    case SPOOL_RING_REPLACED:

        /*
         * Old nginx workers may still write to the old file for a while;
         * take what is there now, then move on to the new one.
         */

        log_info("ring \"%s\" was replaced or moved, draining the old file",
                 sd->ring.path);

        for (i = 0; i < SPOOLD_OLD_RING_ROUNDS; i++) {
            if (spool_ring_drain(&sd->ring, sd->buffer, &sd->id, sd->script,
                                 (size_t) sd->conf.batch, 1)
                <= 0)
            {
                break;
            }
        }

        if (spool_ring_pending(&sd->ring)) {
            return;
        }

        spool_ring_detach(&sd->ring);
        break;

    case SPOOL_RING_RESET:

        /* positions in the old generation mean nothing any more */

        log_info("ring \"%s\" was recreated in place (new generation), "
                 "starting from its tail", sd->ring.path);
        spool_ring_detach(&sd->ring);
        break;

    default:
        break;
    }
}


static void
spoold_sleep(uint64_t us)
{
    struct timespec  ts;

    ts.tv_sec = us / 1000000;
    ts.tv_nsec = (us % 1000000) * 1000;

    /* EINTR is fine: the loop looks at the signal flags first */
    (void) nanosleep(&ts, NULL);
}


static uint64_t
spoold_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
