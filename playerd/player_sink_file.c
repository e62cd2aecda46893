/*
 * Copyright (C) ReplayForge contributors
 *
 * The "file" sink: the JSON view of each record as one NDJSON line,
 * appended to "path" and fsync'ed before the records count as taken.
 * With max_file the file is rotated by size to path.1, path.2, ... (1 is
 * the newest); with max_total the oldest rotated files are deleted so that
 * all of them together stay under it.  A file moved or deleted under the
 * sink is noticed (its inode changed) and created again; a write that
 * fails leaves the file as it was and the records are offered again.
 */

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_log.h"
#include "playerd.h"


#define PLAYER_FILE_MAX_ROTATED 100000


typedef struct {
    char                       *path;
    uint64_t                    max_file;   /* 0: no rotation */
    uint64_t                    max_total;  /* 0: no cap */
    int                         fsync;
} player_file_conf_t;


typedef struct {
    int                         fd;
    dev_t                       dev;
    ino_t                       ino;
    uint64_t                    size;       /* of the current file */
    unsigned                    nrot;       /* path.1 .. path.nrot */
    uint64_t                    rot_total;  /* their bytes */
    rf_buf_t                    line;
    char                        name[PATH_MAX + 16];
} player_file_t;


static int player_file_check(void *conf, char *err, size_t errlen);
static int player_file_open(player_sink_t *s, char *err, size_t errlen);
static int player_file_write(player_sink_t *s, const player_rec_t *recs,
    size_t n, int *status, const char **why);
static void player_file_close(player_sink_t *s);
static int player_file_stats(player_sink_t *s, rf_buf_t *out);
static int player_file_reopen(player_sink_t *s, player_file_t *f);
static void player_file_scan(player_file_conf_t *conf, player_file_t *f);
static int player_file_rotate(player_sink_t *s, player_file_t *f);
static void player_file_trim(player_file_conf_t *conf, player_file_t *f,
    uint64_t need);
static const char *player_file_name(player_file_conf_t *conf,
    player_file_t *f, unsigned i);
static int player_file_append(player_file_t *f, const void *data,
    size_t len);


static const rf_conf_cmd_t  player_file_cmds[] = {

    { "path", RF_CONF_STR, offsetof(player_file_conf_t, path), 0, 0, NULL,
      NULL, NULL, 0 },

    { "max_file", RF_CONF_SIZE, offsetof(player_file_conf_t, max_file), 0,
      0, "0", NULL, NULL, 0 },

    { "max_total", RF_CONF_SIZE, offsetof(player_file_conf_t, max_total),
      0, 0, "0", NULL, NULL, 0 },

    { "fsync", RF_CONF_FLAG, offsetof(player_file_conf_t, fsync), 0, 0,
      "on", NULL, NULL, 0 },

    rf_conf_null_cmd
};


const player_sink_type_t  player_sink_file = {
    "file",
    player_file_cmds,
    sizeof(player_file_conf_t),
    player_file_check,
    player_file_open,
    player_file_write,
    player_file_close,
    player_file_stats,
    NULL,
    NULL
};


static int
player_file_check(void *conf, char *err, size_t errlen)
{
    player_file_conf_t  *c;

    c = conf;

    if (c->path == NULL || c->path[0] == '\0') {
        snprintf(err, errlen, "\"path\" is required");
        return -1;
    }

    if (strlen(c->path) >= PATH_MAX) {
        snprintf(err, errlen, "\"path\" is too long");
        return -1;
    }

    if (c->max_total > 0 && c->max_file == 0) {
        snprintf(err, errlen, "\"max_total\" needs \"max_file\"");
        return -1;
    }

    if (c->max_total > 0 && c->max_total < 2 * c->max_file) {
        snprintf(err, errlen, "\"max_total\" must be at least twice "
                 "\"max_file\"");
        return -1;
    }

    return 0;
}


static int
player_file_open(player_sink_t *s, char *err, size_t errlen)
{
    char                 dir[PATH_MAX];
    struct stat          st;
    player_file_t       *f;
    player_file_conf_t  *conf;

    conf = s->conf;

    snprintf(dir, sizeof(dir), "%s", conf->path);

    if (stat(dirname(dir), &st) == -1 || !S_ISDIR(st.st_mode)) {
        snprintf(dir, sizeof(dir), "%s", conf->path);
        snprintf(err, errlen, "directory \"%s\" does not exist",
                 dirname(dir));
        return -1;
    }

    f = calloc(1, sizeof(player_file_t));
    if (f == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    f->fd = -1;
    rf_buf_init(&f->line);

    if (player_file_reopen(s, f) != 0) {
        snprintf(err, errlen, "cannot open \"%s\": %s", conf->path,
                 strerror(errno));
        free(f);
        return -1;
    }

    player_file_scan(conf, f);

    s->ctx = f;

    return 0;
}


static void
player_file_close(player_sink_t *s)
{
    player_file_t  *f;

    f = s->ctx;
    if (f == NULL) {
        return;
    }

    if (f->fd != -1) {
        (void) close(f->fd);
    }

    rf_buf_free(&f->line);
    free(f);

    s->ctx = NULL;
}


static int
player_file_write(player_sink_t *s, const player_rec_t *recs, size_t n,
    int *status, const char **why)
{
    size_t               i, j, first;
    uint64_t             start;
    struct stat          st;
    player_file_t       *f;
    player_file_conf_t  *conf;

    f = s->ctx;
    conf = s->conf;

    /* moved or deleted under us: a new file at path */

    if (f->fd != -1
        && (stat(conf->path, &st) == -1 || st.st_ino != f->ino
            || st.st_dev != f->dev))
    {
        (void) close(f->fd);
        f->fd = -1;
    }

    if (f->fd == -1 && player_file_reopen(s, f) != 0) {
        log_warn("sink file \"%s\": cannot open \"%s\"", s->name,
                 conf->path);

        for (i = 0; i < n; i++) {
            status[i] = PLAYER_RETRY;
            why[i] = "cannot open the file";
        }

        return 0;
    }

    first = 0;
    start = f->size;

    for (i = 0; i < n; i++) {
        rf_buf_reset(&f->line);

        if (rf_rec_to_json(&recs[i].rec, &f->line) != 0) {
            status[i] = PLAYER_RETRY;
            why[i] = "out of memory";
            continue;
        }

        if (conf->max_file > 0 && f->size > 0
            && f->size + f->line.len > conf->max_file)
        {
            /* what is in the file now is durable before it is renamed */

            if ((conf->fsync && fsync(f->fd) == -1)
                || player_file_rotate(s, f) != 0)
            {
                log_warn("sink file \"%s\": cannot rotate \"%s\"", s->name,
                         conf->path);
                goto failed;
            }

            first = i;
            start = 0;
        }

        if (conf->max_total > 0) {
            player_file_trim(conf, f, f->line.len);
        }

        if (player_file_append(f, f->line.data, f->line.len) != 0) {
            log_warn("sink file \"%s\": cannot write \"%s\"", s->name,
                     conf->path);
            goto failed;
        }

        status[i] = PLAYER_OK;
    }

    if (conf->fsync && fsync(f->fd) == -1) {
        log_warn("sink file \"%s\": fsync \"%s\"", s->name, conf->path);

        /* nothing of this file counts: it may all be lost */
        i = first;
        (void) ftruncate(f->fd, (off_t) start);
        f->size = start;
        goto failed;
    }

    return 0;

failed:

    /*
     * The lines written so far to this file are taken; the rest are
     * offered again, and the file is opened anew then.
     */

    for (j = i; j < n; j++) {
        status[j] = PLAYER_RETRY;
        why[j] = "cannot write the file";
    }

    if (f->fd != -1) {
        if (conf->fsync) {
            (void) fsync(f->fd);
        }

        (void) close(f->fd);
    }

    f->fd = -1;

    return 0;
}


static int
player_file_stats(player_sink_t *s, rf_buf_t *out)
{
    player_file_t  *f;

    f = s->ctx;
    if (f == NULL) {
        return 0;
    }

    return rf_buf_printf(out, ",\"file_bytes\":%llu,\"rotated\":%u,"
                         "\"rotated_bytes\":%llu",
                         (unsigned long long) f->size, f->nrot,
                         (unsigned long long) f->rot_total);
}


static int
player_file_reopen(player_sink_t *s, player_file_t *f)
{
    int                  fd;
    struct stat          st;
    player_file_conf_t  *conf;

    conf = s->conf;

    fd = open(conf->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd == -1) {
        return -1;
    }

    if (fstat(fd, &st) == -1) {
        (void) close(fd);
        return -1;
    }

    if (!S_ISREG(st.st_mode)) {
        (void) close(fd);
        errno = EINVAL;
        return -1;
    }

    f->fd = fd;
    f->dev = st.st_dev;
    f->ino = st.st_ino;
    f->size = (uint64_t) st.st_size;

    return 0;
}


/* the rotated files there are, and their bytes */

static void
player_file_scan(player_file_conf_t *conf, player_file_t *f)
{
    unsigned     i;
    struct stat  st;

    f->nrot = 0;
    f->rot_total = 0;

    for (i = 1; i <= PLAYER_FILE_MAX_ROTATED; i++) {
        if (stat(player_file_name(conf, f, i), &st) == -1) {
            break;
        }

        f->nrot = i;
        f->rot_total += (uint64_t) st.st_size;
    }
}


/* path.N to path.N+1 ..., path to path.1, and a new path */

static int
player_file_rotate(player_sink_t *s, player_file_t *f)
{
    char                 to[PATH_MAX + 16];
    unsigned             i;
    player_file_conf_t  *conf;

    conf = s->conf;

    player_file_scan(conf, f);

    for (i = f->nrot; i >= 1; i--) {
        snprintf(to, sizeof(to), "%s", player_file_name(conf, f, i + 1));

        if (rename(player_file_name(conf, f, i), to) == -1) {
            return -1;
        }
    }

    if (rename(conf->path, player_file_name(conf, f, 1)) == -1) {
        return -1;
    }

    (void) close(f->fd);
    f->fd = -1;

    f->nrot++;
    f->rot_total += f->size;

    if (player_file_reopen(s, f) != 0) {
        return -1;
    }

    log_debug("sink file \"%s\": rotated \"%s\"", s->name, conf->path);

    return 0;
}


/* delete the oldest rotated files until need more bytes fit */

static void
player_file_trim(player_file_conf_t *conf, player_file_t *f, uint64_t need)
{
    const char   *name;
    struct stat   st;

    while (f->nrot > 0 && f->rot_total + f->size + need > conf->max_total) {
        name = player_file_name(conf, f, f->nrot);

        if (stat(name, &st) == 0) {
            if (unlink(name) == -1) {
                log_warn("cannot delete \"%s\"", name);
                return;
            }

            f->rot_total -= (uint64_t) st.st_size < f->rot_total
                            ? (uint64_t) st.st_size : f->rot_total;
        }

        f->nrot--;
    }
}


static const char *
player_file_name(player_file_conf_t *conf, player_file_t *f, unsigned i)
{
    snprintf(f->name, sizeof(f->name), "%s.%u", conf->path, i);

    return f->name;
}


/* all of it, or the file is cut back to where it was */

static int
player_file_append(player_file_t *f, const void *data, size_t len)
{
    size_t   off;
    ssize_t  n;

    for (off = 0; off < len; off += (size_t) n) {
        n = write(f->fd, (const char *) data + off, len - off);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n <= 0) {
            if (n == 0) {
                errno = EIO;
            }

            if (off > 0) {
                (void) ftruncate(f->fd, (off_t) f->size);
            }

            return -1;
        }
    }

    f->size += len;

    return 0;
}
