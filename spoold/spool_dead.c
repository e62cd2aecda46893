/*
 * Copyright (C) ReplayForge contributors
 *
 * The dead-letter file of rf-spoold's scripts.  A failed record is turned
 * into its line at once (the record is a view into the ring or into a
 * script's output, both gone after the batch) and queued; the batch's
 * store writes and syncs the queue before its commit.  The cap is on the
 * file's size: a line that would pass it is not written, and the caller
 * counts it.
 */

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_log.h"
#include "spool_dead.h"


#define SPOOL_DEAD_KEEP         (1024 * 1024)


static int spool_dead_open(spool_dead_t *d);
static void spool_dead_close(spool_dead_t *d);


void
spool_dead_init(spool_dead_t *d)
{
    memset(d, 0, sizeof(spool_dead_t));
    d->fd = -1;
    rf_buf_init(&d->queue);
}


void
spool_dead_free(spool_dead_t *d)
{
    spool_dead_close(d);
    rf_buf_free(&d->queue);
    d->path = NULL;
}


void
spool_dead_set(spool_dead_t *d, const char *path, uint64_t max)
{
    d->max = max;

    if (d->path == NULL || strcmp(d->path, path) != 0) {
        spool_dead_close(d);
        d->known = 0;
    }

    d->path = path;
}


int
spool_dead_add(spool_dead_t *d, const char *reason, const char *script,
    const char *source, const rf_rec_t *rec)
{
    int          rc;
    size_t       save, len;
    struct stat  sb;

    if (!d->known) {
        d->size = (stat(d->path, &sb) == 0) ? (uint64_t) sb.st_size : 0;
        d->size += d->queue.len - d->written;
        d->known = 1;
    }

    save = d->queue.len;

    rc = rf_buf_adds(&d->queue, "{\"reason\":");
    rc |= rf_json_str(&d->queue, (const unsigned char *) reason,
                      strlen(reason));
    rc |= rf_buf_adds(&d->queue, ",\"script\":");
    rc |= rf_json_str(&d->queue, (const unsigned char *) script,
                      strlen(script));
    rc |= rf_buf_adds(&d->queue, ",\"source\":");
    rc |= rf_json_str(&d->queue, (const unsigned char *) source,
                      strlen(source));
    rc |= rf_buf_adds(&d->queue, ",\"record\":");
    rc |= rf_rec_to_json(rec, &d->queue);

    if (rc != 0) {
        d->queue.len = save;
        errno = ENOMEM;
        return -1;
    }

    /* rf_rec_to_json() ends the object with a newline: ours ends it */

    d->queue.len--;

    if (rf_buf_adds(&d->queue, "}\n") != 0) {
        d->queue.len = save;
        errno = ENOMEM;
        return -1;
    }

    len = d->queue.len - save;

    if (d->size + len > d->max) {
        d->queue.len = save;
        return 0;
    }

    d->size += len;

    return 1;
}


int
spool_dead_sync(spool_dead_t *d)
{
    ssize_t      n;
    struct stat  sb;

    if (!spool_dead_pending(d)) {
        return 0;
    }

    /* moved away or deleted (rotation): the next lines go to a new file */

    if (d->fd != -1 && d->queue.len > d->written
        && (stat(d->path, &sb) == -1 || sb.st_dev != d->dev
            || sb.st_ino != d->ino))
    {
        if (d->dirty && fsync(d->fd) == -1) {
            log_warn("dead-letter file \"%s\": fsync", d->path);
            return -1;
        }

        d->dirty = 0;
        spool_dead_close(d);
    }

    if (d->fd == -1 && d->queue.len > d->written
        && spool_dead_open(d) != 0)
    {
        return -1;
    }

    while (d->written < d->queue.len) {
        n = write(d->fd, d->queue.data + d->written,
                  d->queue.len - d->written);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            log_warn("dead-letter file \"%s\": write", d->path);
            return -1;
        }

        d->written += (size_t) n;
        d->dirty = 1;
    }

    if (d->dirty && fsync(d->fd) == -1) {
        log_warn("dead-letter file \"%s\": fsync", d->path);
        return -1;
    }

    d->dirty = 0;
    d->written = 0;
    rf_buf_reset(&d->queue);

    if (d->queue.cap > SPOOL_DEAD_KEEP) {
        rf_buf_free(&d->queue);
    }

    return 0;
}


static int
spool_dead_open(spool_dead_t *d)
{
    int          fd, err;
    struct stat  sb;

    /* records may carry secrets: as private as the buffer */

    fd = open(d->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd == -1) {
        log_warn("dead-letter file \"%s\": open", d->path);
        return -1;
    }

    if (fstat(fd, &sb) == -1) {
        err = errno;
        log_warn("dead-letter file \"%s\": fstat", d->path);
        (void) close(fd);
        errno = err;
        return -1;
    }

    d->fd = fd;
    d->dev = sb.st_dev;
    d->ino = sb.st_ino;
    d->size = (uint64_t) sb.st_size + (d->queue.len - d->written);
    d->known = 1;

    return 0;
}


static void
spool_dead_close(spool_dead_t *d)
{
    if (d->fd == -1) {
        return;
    }

    if (d->dirty && fsync(d->fd) == -1) {
        log_warn("dead-letter file \"%s\": fsync", d->path);
    }

    (void) close(d->fd);
    d->fd = -1;
    d->dirty = 0;
}
