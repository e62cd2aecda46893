/*
 * Copyright (C) ReplayForge contributors
 *
 * The record: one binary, versioned, checksummed encoding that travels
 * unchanged from the ring to the player, and its JSON (NDJSON) view.
 */

#ifndef _RF_RECORD_H_INCLUDED_
#define _RF_RECORD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"


/*
 * Encoding (little-endian):
 *
 *   0   u32  len      whole record, header included
 *   4   u32  crc      CRC32C of bytes [16, len)
 *   8   u64  rseq     relay sequence; 0 until the relay sets it in place,
 *                     which is why the checksum leaves it out
 *   16  u8   version  RF_REC_VERSION
 *   17  u8   kind     RF_KIND_*
 *   18  u16  flags    RF_REC_F_*
 *   20  u32  reserved 0
 *   24  u64  sseq     source sequence (set by the spool)
 *   32  u64  time_ns  capture time, ns since the epoch
 *   40  fields: u16 id, u32 len, len bytes; any order, ids may repeat
 *
 * Integers in fields are u64.  A header field holds u32 name length,
 * name, value.  Unknown field ids are skipped by readers (forward
 * compatibility); unknown kinds and versions are rejected.
 */

#define RF_REC_VERSION          1
#define RF_REC_HDR_SIZE         40
#define RF_REC_FIELD_HDR        6
#define RF_REC_MAX_SIZE         (64U * 1024 * 1024)

#define RF_REC_FIELD_SIZE(n)    (RF_REC_FIELD_HDR + (size_t) (n))
#define RF_REC_U64_SIZE         RF_REC_FIELD_SIZE(8)
#define RF_REC_HEADER_SIZE(n, v)  RF_REC_FIELD_SIZE(4 + (size_t) (n) + (v))

#define RF_REC_F_BODY_TRUNCATED 0x0001

enum {
    RF_KIND_HTTP = 1,
    RF_KIND_TCP,
    RF_KIND_LINE,
    RF_KIND_EXEC,
    RF_KIND_PG,
    RF_KIND_MAX
};

enum {
    RF_F_SOURCE = 1,
    RF_F_BUCKET,
    RF_F_METHOD,
    RF_F_URI,
    RF_F_VERSION,
    RF_F_SCHEME,
    RF_F_HOST,
    RF_F_CLIENT,
    RF_F_SERVER,
    RF_F_HEADER,
    RF_F_BODY,
    RF_F_BODY_SIZE,
    RF_F_STATUS,
    RF_F_BYTES_SENT,
    RF_F_DURATION_US,
    RF_F_UPSTREAM,
    RF_F_REQUEST_ID,
    RF_F_SESSION,           /* tcp */
    RF_F_DIR,
    RF_F_EVENT,
    RF_F_DATA,
    RF_F_OFFSET_NS,
    RF_F_PATH,              /* line */
    RF_F_LINE,
    RF_F_COMMAND,           /* exec */
    RF_F_OUTPUT,
    RF_F_EXIT,
    RF_F_QUERY,             /* pg */
    RF_F_ROWS,
    RF_F_MAX
};


typedef struct {
    size_t                      len;
    const unsigned char        *data;
} rf_str_t;

#define rf_string(s)            { sizeof(s) - 1, (const unsigned char *) s }


/* Writing: begin, add fields, finish; buf must hold the computed size. */
typedef struct {
    unsigned char              *start;
    unsigned char              *p;
    unsigned char              *end;
    int                         overflow;
} rf_rec_builder_t;

void rf_rec_begin(rf_rec_builder_t *b, unsigned char *buf, size_t cap,
    unsigned kind, uint64_t time_ns);
void rf_rec_add(rf_rec_builder_t *b, unsigned id, const void *data,
    size_t len);
void rf_rec_add_u64(rf_rec_builder_t *b, unsigned id, uint64_t v);
void rf_rec_add_header(rf_rec_builder_t *b, const void *name, size_t nlen,
    const void *value, size_t vlen);
void rf_rec_set_flags(rf_rec_builder_t *b, unsigned flags);
/* The source sequence, for builders that rebuild a stamped record. */
void rf_rec_set_sseq(rf_rec_builder_t *b, uint64_t sseq);
/* Returns the record's length, or 0 when the buffer was too small. */
size_t rf_rec_finish(rf_rec_builder_t *b);


/* An http request as the capture sees it; all strings are views. */
typedef struct {
    rf_str_t                    name;
    rf_str_t                    value;
} rf_header_t;

typedef struct {
    uint64_t                    time_ns;
    rf_str_t                    bucket;
    rf_str_t                    method;
    rf_str_t                    uri;
    rf_str_t                    version;
    rf_str_t                    scheme;
    rf_str_t                    host;
    rf_str_t                    client;
    rf_str_t                    server;
    const rf_header_t          *headers;
    size_t                      nheaders;
    rf_str_t                    body;
    uint64_t                    body_size;
    unsigned                    body_truncated:1;
    uint64_t                    status;
    uint64_t                    bytes_sent;
    uint64_t                    duration_us;
    rf_str_t                    upstream;
    rf_str_t                    request_id;
} rf_http_t;

size_t rf_http_size(const rf_http_t *h);
size_t rf_http_encode(const rf_http_t *h, unsigned char *buf, size_t cap);


/* Reading: every length is checked against the buffer. */
typedef struct {
    const unsigned char        *buf;
    uint32_t                    len;
    uint8_t                     version;
    uint8_t                     kind;
    uint16_t                    flags;
    uint64_t                    rseq;
    uint64_t                    sseq;
    uint64_t                    time_ns;
} rf_rec_t;

typedef struct {
    unsigned                    id;
    rf_str_t                    val;
} rf_field_t;

/*
 * Validate buf as one record: its length (must equal len), checksum,
 * version, kind and every field's bounds.  0, or -1 with *err set to a
 * static message.
 */
int rf_rec_parse(rf_rec_t *rec, const unsigned char *buf, size_t len,
    const char **err);

/*
 * The same checks but the checksum, for bytes this process sealed itself
 * or has checked already (a copy it kept): every bound is still checked.
 */
int rf_rec_parse_sealed(rf_rec_t *rec, const unsigned char *buf, size_t len,
    const char **err);

/* Length a record at buf claims, or 0 when fewer than 4 bytes remain. */
uint32_t rf_rec_peek_len(const unsigned char *buf, size_t avail);

/* Iterate fields: *off starts at 0; returns 1 per field, 0 at the end. */
int rf_rec_next_field(const rf_rec_t *rec, size_t *off, rf_field_t *f);

/* First field with id, or -1. */
int rf_rec_field(const rf_rec_t *rec, unsigned id, rf_str_t *val);
int rf_rec_field_u64(const rf_rec_t *rec, unsigned id, uint64_t *v);

/* Split a header field's value into name and value; -1 if malformed. */
int rf_rec_header_split(const rf_str_t *field, rf_str_t *name,
    rf_str_t *value);

/* Recompute and store the checksum after editing a record in place. */
void rf_rec_seal(unsigned char *buf);
void rf_rec_set_rseq(unsigned char *buf, uint64_t rseq);

/*
 * Copy rec to out with sseq set and a SOURCE field appended (the spool's
 * stamp), resealed.  Returns the new length or 0 when out is too small.
 */
size_t rf_rec_stamp(const rf_rec_t *rec, uint64_t sseq, const rf_str_t *source,
    unsigned char *out, size_t cap);

/* Append the JSON view of rec and a newline to out; -1 on ENOMEM. */
int rf_rec_to_json(const rf_rec_t *rec, rf_buf_t *out);

const char *rf_kind_name(unsigned kind);
/* JSON key of a plain string field of the non-http kinds, or NULL. */
const char *rf_field_key(unsigned id);


#endif /* _RF_RECORD_H_INCLUDED_ */
