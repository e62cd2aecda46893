/*
 * Copyright (C) ReplayForge contributors
 *
 * The "log" sink: one line per record, "<seq> <method> <uri> <status>
 * <duration>ms" for http and a short line for the other kinds, to stderr
 * in the foreground and to syslog otherwise, in the log API's format.
 * The lines are written here rather than through log_info(): the log
 * API suppresses repeats of one format, and a sink must not lose lines.
 */

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "rf_log.h"
#include "playerd.h"


typedef struct {
    int                         level;      /* RF_LOG_* */
} player_log_conf_t;


static int player_log_write(player_sink_t *s, const player_rec_t *recs,
    size_t n, int *status, const char **why);
static int player_log_line(const player_rec_t *r, char *buf, size_t size);
static void player_log_emit(int level, const char *msg, size_t len);


static const char *const  player_log_levels[] = {
    "warn", "info", "debug", NULL
};


static const rf_conf_cmd_t  player_log_cmds[] = {

    { "level", RF_CONF_ENUM, offsetof(player_log_conf_t, level), 0, 0,
      "info", player_log_levels, NULL, 0 },

    rf_conf_null_cmd
};


const player_sink_type_t  player_sink_log = {
    "log",
    player_log_cmds,
    sizeof(player_log_conf_t),
    NULL,
    NULL,
    player_log_write,
    NULL,
    NULL,
    NULL,
    NULL
};


static int
player_log_write(player_sink_t *s, const player_rec_t *recs, size_t n,
    int *status, const char **why)
{
    char                buf[1024];
    int                 len;
    size_t              i;
    player_log_conf_t  *conf;

    conf = s->conf;

    for (i = 0; i < n; i++) {
        status[i] = PLAYER_OK;

        if (rf_log_level < conf->level) {
            continue;
        }

        len = player_log_line(&recs[i], buf, sizeof(buf));
        player_log_emit(conf->level, buf, (size_t) len);
    }

    return 0;
}


/* the uri is cut and its control bytes replaced: one record, one line */

static int
player_log_line(const player_rec_t *r, char *buf, size_t size)
{
    int              n;
    size_t           i;
    uint64_t         status, dur, off;
    rf_str_t         method, uri, a, b;
    const rf_rec_t  *rec;

    rec = &r->rec;

    if (rec->kind == RF_KIND_HTTP) {
        if (rf_rec_field(rec, RF_F_METHOD, &method) == -1) {
            method.data = (const unsigned char *) "-";
            method.len = 1;
        }

        if (rf_rec_field(rec, RF_F_URI, &uri) == -1) {
            uri.data = (const unsigned char *) "-";
            uri.len = 1;
        }

        if (rf_rec_field_u64(rec, RF_F_STATUS, &status) == -1) {
            status = 0;
        }

        if (rf_rec_field_u64(rec, RF_F_DURATION_US, &dur) == -1) {
            dur = 0;
        }

        n = snprintf(buf, size, "%" PRIu64 " %.*s %.*s %" PRIu64
                     " %" PRIu64 ".%03" PRIu64 "ms", r->seq,
                     (int) (method.len > 32 ? 32 : method.len), method.data,
                     (int) (uri.len > 512 ? 512 : uri.len), uri.data,
                     status, dur / 1000, dur % 1000);

    } else if (rec->kind == RF_KIND_TCP) {
        if (rf_rec_field(rec, RF_F_SESSION, &a) == -1) {
            a.len = 0;
        }

        if (rf_rec_field(rec, RF_F_EVENT, &b) == -1) {
            b.len = 0;
        }

        if (rf_rec_field(rec, RF_F_DATA, &uri) == -1) {
            uri.len = 0;
        }

        if (rf_rec_field_u64(rec, RF_F_OFFSET_NS, &off) == -1) {
            off = 0;
        }

        n = snprintf(buf, size, "%" PRIu64 " tcp %.*s %.*s %zu bytes +%"
                     PRIu64 "ms", r->seq, (int) (a.len > 64 ? 64 : a.len),
                     a.data, (int) (b.len > 16 ? 16 : b.len), b.data,
                     uri.len, off / 1000000);

    } else {
        if (rf_rec_field(rec, RF_F_SOURCE, &a) == -1) {
            a.len = 0;
        }

        n = snprintf(buf, size, "%" PRIu64 " %s %.*s %u bytes", r->seq,
                     rf_kind_name(rec->kind),
                     (int) (a.len > 64 ? 64 : a.len), a.data, rec->len);
    }

    if (n < 0) {
        n = 0;
    }

    if ((size_t) n >= size) {
        n = (int) size - 1;
    }

    for (i = 0; i < (size_t) n; i++) {
        if ((unsigned char) buf[i] < 0x20 || buf[i] == 0x7f) {
            buf[i] = '?';
        }
    }

    buf[n] = '\0';

    return n;
}


static void
player_log_emit(int level, const char *msg, size_t len)
{
    int              n, prio;
    char             line[1280], stamp[32];
    size_t           off;
    ssize_t          w;
    struct tm        tm;
    const char      *name;
    struct timespec  ts;

    name = player_log_levels[level];
    prio = (level == RF_LOG_WARN) ? LOG_WARNING
           : (level == RF_LOG_INFO) ? LOG_INFO : LOG_DEBUG;

    if (!player_foreground) {
        syslog(prio, "%.*s", (int) len, msg);
        return;
    }

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);

    n = snprintf(line, sizeof(line), "%s.%03ldZ " PLAYERD_NAME "[%ld]: "
                 "%s: %.*s\n", stamp, ts.tv_nsec / 1000000, (long) getpid(),
                 name, (int) len, msg);

    if (n < 0) {
        return;
    }

    if ((size_t) n >= sizeof(line)) {
        n = sizeof(line) - 1;
        line[n - 1] = '\n';
    }

    /* one write(2) per line: lines of threads never interleave */

    for (off = 0; off < (size_t) n; off += (size_t) w) {
        w = write(STDERR_FILENO, line + off, (size_t) n - off);

        if (w == -1 && errno == EINTR) {
            w = 0;
            continue;
        }

        if (w <= 0) {
            break;
        }
    }
}
