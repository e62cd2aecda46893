/*
 * Copyright (C) ReplayForge contributors
 *
 * Daemon logging in the shape of OpenBSD's log.c.  A message loop (a
 * failing disk, an unreachable relay) must not flood the log, so each
 * format string is a key in a small table allowing RF_LOG_BURST messages
 * per RF_LOG_WINDOW_MS; the rest are counted and reported as one
 * "suppressed N messages like: <fmt>" line when the key logs again in a
 * later window, when its slot is reused, or at log_flush_suppressed().
 * One mutex covers the table and the output, so lines never interleave.
 */


#ifndef _GNU_SOURCE
#define _GNU_SOURCE                     /* strerror_r() returning char * */
#endif

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "rf_log.h"


#define RF_LOG_KEYS             64
#define RF_LOG_FATAL            (-1)    /* fatal() and fatalx() */
#define RF_LOG_MSG_SIZE         4096


typedef struct {
    const char                 *fmt;        /* the key: NULL when free */
    int                         level;
    unsigned                    count;      /* logged in this window */
    unsigned                    suppressed;
    uint64_t                    window;     /* ms, when the window began */
    uint64_t                    used;       /* LRU clock */
} rf_log_key_t;


static void rf_log_vlog(int level, int with_errno, int limit,
    const char *fmt, va_list args)
    __attribute__((format(printf, 4, 0)));
static int rf_log_admit(int level, const char *fmt);
static void rf_log_flush_key(rf_log_key_t *key);
static void rf_log_emit(int level, const char *msg);
static uint64_t rf_log_now(void);


int                      rf_log_level = RF_LOG_INFO;

static int               rf_log_foreground = 1;
static char              rf_log_procname[64];
static uint64_t          rf_log_clock;
static rf_log_key_t      rf_log_keys[RF_LOG_KEYS];
static pthread_mutex_t   rf_log_mutex = PTHREAD_MUTEX_INITIALIZER;


void
log_init(int foreground, const char *procname)
{
    pthread_mutex_lock(&rf_log_mutex);

    /* openlog() keeps the pointer, so it must be ours */
    snprintf(rf_log_procname, sizeof(rf_log_procname), "%s",
             procname ? procname : "");

    if (!foreground) {
        openlog(rf_log_procname, LOG_PID | LOG_NDELAY, LOG_DAEMON);

    } else if (!rf_log_foreground) {
        closelog();
    }

    rf_log_foreground = foreground;

    pthread_mutex_unlock(&rf_log_mutex);
}


void
log_setverbose(int level)
{
    rf_log_level = level;
}


int
log_parse_level(const char *name)
{
    if (name == NULL) {
        return -1;
    }

    if (strcmp(name, "warn") == 0) {
        return RF_LOG_WARN;
    }

    if (strcmp(name, "info") == 0) {
        return RF_LOG_INFO;
    }

    if (strcmp(name, "debug") == 0) {
        return RF_LOG_DEBUG;
    }

    return -1;
}


void
log_warn(const char *fmt, ...)
{
    int      saved;
    va_list  args;

    saved = errno;

    va_start(args, fmt);
    rf_log_vlog(RF_LOG_WARN, saved, 1, fmt, args);
    va_end(args);

    errno = saved;
}


void
log_warnx(const char *fmt, ...)
{
    int      saved;
    va_list  args;

    saved = errno;

    va_start(args, fmt);
    rf_log_vlog(RF_LOG_WARN, 0, 1, fmt, args);
    va_end(args);

    errno = saved;
}


void
log_info_(const char *fmt, ...)
{
    int      saved;
    va_list  args;

    if (rf_log_level < RF_LOG_INFO) {
        return;
    }

    saved = errno;

    va_start(args, fmt);
    rf_log_vlog(RF_LOG_INFO, 0, 1, fmt, args);
    va_end(args);

    errno = saved;
}


void
log_debug_(const char *fmt, ...)
{
    int      saved;
    va_list  args;

    if (rf_log_level < RF_LOG_DEBUG) {
        return;
    }

    saved = errno;

    va_start(args, fmt);
    rf_log_vlog(RF_LOG_DEBUG, 0, 1, fmt, args);
    va_end(args);

    errno = saved;
}


void
fatal(const char *fmt, ...)
{
    int      saved;
    va_list  args;

    saved = errno;

    log_flush_suppressed();

    va_start(args, fmt);
    rf_log_vlog(RF_LOG_FATAL, saved, 0, fmt, args);
    va_end(args);

    exit(1);
}


void
fatalx(const char *fmt, ...)
{
    va_list  args;

    log_flush_suppressed();

    va_start(args, fmt);
    rf_log_vlog(RF_LOG_FATAL, 0, 0, fmt, args);
    va_end(args);

    exit(1);
}


void
log_flush_suppressed(void)
{
    int  i;

    pthread_mutex_lock(&rf_log_mutex);

    for (i = 0; i < RF_LOG_KEYS; i++) {
        rf_log_flush_key(&rf_log_keys[i]);
    }

    pthread_mutex_unlock(&rf_log_mutex);
}


/*
 * with_errno: the saved errno to append (0, "Success", is not appended);
 * limit: apply the rate limit (fatal messages always get out).
 */

static void
rf_log_vlog(int level, int with_errno, int limit, const char *fmt,
    va_list args)
{
    char    msg[RF_LOG_MSG_SIZE], ebuf[128];
    size_t  len;

    pthread_mutex_lock(&rf_log_mutex);

    if (limit && !rf_log_admit(level, fmt)) {
        pthread_mutex_unlock(&rf_log_mutex);
        return;
    }

    if (vsnprintf(msg, sizeof(msg), fmt, args) < 0) {
        msg[0] = '\0';
    }

    len = strlen(msg);

    if (with_errno) {
        snprintf(msg + len, sizeof(msg) - len, ": %s",
                 strerror_r(with_errno, ebuf, sizeof(ebuf)));
    }

    rf_log_emit(level, msg);

    pthread_mutex_unlock(&rf_log_mutex);
}


/* called locked; 1: log it now, 0: suppressed */

static int
rf_log_admit(int level, const char *fmt)
{
    int            i;
    uint64_t       now;
    rf_log_key_t  *key, *lru;

    now = rf_log_now();
    key = NULL;
    lru = &rf_log_keys[0];

    for (i = 0; i < RF_LOG_KEYS; i++) {
        if (rf_log_keys[i].fmt == fmt) {
            key = &rf_log_keys[i];
            break;
        }

        if (rf_log_keys[i].used < lru->used) {
            lru = &rf_log_keys[i];
        }
    }

    if (key == NULL) {
        /* a free slot has used == 0, so it is the least recently used */
        key = lru;
        rf_log_flush_key(key);

        key->fmt = fmt;
        key->count = 0;
        key->suppressed = 0;
        key->window = now;
    }

    key->level = level;
    key->used = ++rf_log_clock;

    if (now - key->window >= RF_LOG_WINDOW_MS) {
        rf_log_flush_key(key);
        key->window = now;
        key->count = 0;
    }

    if (key->count >= RF_LOG_BURST) {
        key->suppressed++;
        return 0;
    }

    key->count++;

    return 1;
}


/* called locked */

static void
rf_log_flush_key(rf_log_key_t *key)
{
    char  msg[RF_LOG_MSG_SIZE];

    if (key->fmt == NULL || key->suppressed == 0) {
        return;
    }

    snprintf(msg, sizeof(msg), "suppressed %u messages like: %s",
             key->suppressed, key->fmt);

    key->suppressed = 0;

    rf_log_emit(key->level, msg);
}


/* called locked; one write() per line so that processes do not interleave */

static void
rf_log_emit(int level, const char *msg)
{
    int              n, prio;
    char             line[RF_LOG_MSG_SIZE + 256], stamp[32];
    size_t           len, off;
    ssize_t          w;
    struct tm        tm;
    const char      *name;
    struct timespec  ts;

    switch (level) {

    case RF_LOG_FATAL:
        name = "fatal";
        prio = LOG_CRIT;
        break;

    case RF_LOG_WARN:
        name = "warn";
        prio = LOG_WARNING;
        break;

    case RF_LOG_INFO:
        name = "info";
        prio = LOG_INFO;
        break;

    default:
        name = "debug";
        prio = LOG_DEBUG;
        break;
    }

    if (!rf_log_foreground) {
        syslog(prio, "%s", msg);
        return;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    n = snprintf(line, sizeof(line), "%s.%03ldZ %s[%ld]: %s: %s\n", stamp,
                 ts.tv_nsec / 1000000,
                 rf_log_procname[0] ? rf_log_procname
                                    : program_invocation_short_name,
                 (long) getpid(), name, msg);

    if (n < 0) {
        return;
    }

    len = (size_t) n;

    if (len >= sizeof(line)) {
        len = sizeof(line) - 1;
        line[len - 1] = '\n';
    }

    for (off = 0; off < len; off += w) {
        w = write(STDERR_FILENO, line + off, len - off);

        if (w == -1 && errno == EINTR) {
            w = 0;
            continue;
        }

        if (w <= 0) {
            break;
        }
    }
}


static uint64_t
rf_log_now(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
