/*
 * Copyright (C) ReplayForge contributors
 *
 * A chunk: the records of one row of the buffer's chunks table, one
 * after the other, each as
 *
 *   sseq     8 bytes, little-endian, above the previous entry's
 *   length   4 bytes, little-endian: the record's bytes
 *   blen     2 bytes, little-endian: the bucket's bytes
 *   bucket   blen bytes
 *   record   length bytes (the stamped record, as it goes to the relay)
 *
 * The file is read as hostile input: every length is checked against
 * what is left, and sequences must grow.
 */

#ifndef _SPOOL_CHUNK_H_INCLUDED_
#define _SPOOL_CHUNK_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "rf_record.h"


#define SPOOL_CHUNK_HDR         14
#define SPOOL_CHUNK_BUCKET_MAX  65535


typedef struct {
    uint64_t                    sseq;
    rf_str_t                    bucket;
    const unsigned char        *data;
    size_t                      len;
} spool_entry_t;


typedef struct {
    const unsigned char        *p;
    size_t                      len;
    size_t                      off;
    uint64_t                    last;       /* sseq of the entry before */
} spool_chunk_iter_t;


/* The bytes an entry takes in its chunk. */
#define spool_chunk_entry_size(blen, len)  (SPOOL_CHUNK_HDR + (blen) + (len))

/*
 * Append an entry: 0, or -1 with errno (ENOMEM; EINVAL for a bucket
 * longer than SPOOL_CHUNK_BUCKET_MAX or a record of 4 GB or more).
 */
int spool_chunk_add(rf_buf_t *chunk, uint64_t sseq, const rf_str_t *bucket,
    const unsigned char *data, size_t len);

void spool_chunk_iter(spool_chunk_iter_t *it, const unsigned char *p,
    size_t len);

/*
 * The next entry (pointing into the chunk): 1, 0 at the end, -1 when
 * the rest of the chunk is damaged (a length past the end, a sequence
 * not above the one before).
 */
int spool_chunk_next(spool_chunk_iter_t *it, spool_entry_t *e);


#endif /* _SPOOL_CHUNK_H_INCLUDED_ */
