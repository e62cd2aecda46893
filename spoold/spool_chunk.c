/*
 * Copyright (C) ReplayForge contributors
 *
 * The entries of a buffer chunk (see spool_chunk.h).
 */

#include <errno.h>
#include <string.h>

#include "spool_chunk.h"


static void spool_chunk_put(unsigned char *p, uint64_t v, int n);
static uint64_t spool_chunk_get(const unsigned char *p, int n);


int
spool_chunk_add(rf_buf_t *chunk, uint64_t sseq, const rf_str_t *bucket,
    const unsigned char *data, size_t len)
{
    size_t          blen;
    unsigned char  *p;

    blen = (bucket != NULL) ? bucket->len : 0;

    if (blen > SPOOL_CHUNK_BUCKET_MAX || len > UINT32_MAX) {
        errno = EINVAL;
        return -1;
    }

    if (rf_buf_reserve(chunk, spool_chunk_entry_size(blen, len)) != 0) {
        return -1;
    }

    p = chunk->data + chunk->len;

    spool_chunk_put(p, sseq, 8);
    spool_chunk_put(p + 8, len, 4);
    spool_chunk_put(p + 12, blen, 2);
    p += SPOOL_CHUNK_HDR;

    if (blen) {
        memcpy(p, bucket->data, blen);
        p += blen;
    }

    if (len) {
        memcpy(p, data, len);
    }

    chunk->len += spool_chunk_entry_size(blen, len);

    return 0;
}


void
spool_chunk_iter(spool_chunk_iter_t *it, const unsigned char *p, size_t len)
{
    it->p = p;
    it->len = len;
    it->off = 0;
    it->last = 0;
}


int
spool_chunk_next(spool_chunk_iter_t *it, spool_entry_t *e)
{
    size_t                left, blen, len;
    const unsigned char  *p;

    left = it->len - it->off;

    if (left == 0) {
        return 0;
    }

    if (left < SPOOL_CHUNK_HDR) {
        return -1;
    }

    p = it->p + it->off;

    e->sseq = spool_chunk_get(p, 8);
    len = (size_t) spool_chunk_get(p + 8, 4);
    blen = (size_t) spool_chunk_get(p + 12, 2);

    left -= SPOOL_CHUNK_HDR;

    if (e->sseq <= it->last || blen > left || len > left - blen) {
        return -1;
    }

    p += SPOOL_CHUNK_HDR;

    e->bucket.data = p;
    e->bucket.len = blen;
    e->data = p + blen;
    e->len = len;

    it->off += spool_chunk_entry_size(blen, len);
    it->last = e->sseq;

    return 1;
}


static void
spool_chunk_put(unsigned char *p, uint64_t v, int n)
{
    int  i;

    for (i = 0; i < n; i++) {
        p[i] = (unsigned char) (v >> (8 * i));
    }
}


static uint64_t
spool_chunk_get(const unsigned char *p, int n)
{
    int       i;
    uint64_t  v;

    v = 0;

    for (i = n - 1; i >= 0; i--) {
        v = (v << 8) | p[i];
    }

    return v;
}
