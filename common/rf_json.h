/*
 * Copyright (C) ReplayForge contributors
 *
 * A small JSON reader for hostile input (NDJSON ingest, acks, heartbeats,
 * later Lua): the whole text is parsed into a tree of nodes allocated in
 * one arena, strings are unescaped and binary-safe (\u0000 allowed, with
 * lengths), depth and size are bounded.
 */

#ifndef _RF_JSON_H_INCLUDED_
#define _RF_JSON_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include "rf_buf.h"
#include "rf_record.h"


#define RF_JSON_MAX_DEPTH       64
/* values in one document: bounds the arena (~90 bytes a value) */
#define RF_JSON_MAX_NODES       (1024 * 1024)


typedef enum {
    RF_JSON_NULL = 1,
    RF_JSON_FALSE,
    RF_JSON_TRUE,
    RF_JSON_NUMBER,
    RF_JSON_STRING,
    RF_JSON_ARRAY,
    RF_JSON_OBJECT
} rf_json_type_t;


typedef struct rf_json_s  rf_json_t;

struct rf_json_s {
    rf_json_type_t              type;
    rf_json_t                  *next;       /* next element or member */
    rf_str_t                    key;        /* member name, in objects */
    rf_str_t                    str;        /* STRING: unescaped bytes;
                                               NUMBER: the literal text */
    double                      num;        /* NUMBER */
    int64_t                     i;          /* NUMBER, when is_int */
    unsigned                    is_int:1;   /* an integer that fits int64 */
    rf_json_t                  *child;      /* ARRAY, OBJECT: first one */
    size_t                      count;      /* ARRAY, OBJECT: how many */
};


typedef struct rf_json_doc_s  rf_json_doc_t;


/*
 * Parse exactly one JSON value (surrounding whitespace allowed) from
 * text[0..len).  NULL with "message at byte N" in err on bad syntax,
 * invalid UTF-8 in strings, unpaired surrogates, nesting deeper than
 * RF_JSON_MAX_DEPTH, or ENOMEM.  The tree lives until rf_json_free();
 * strings and number literals in it are also NUL-terminated.
 */
rf_json_doc_t *rf_json_parse(const char *text, size_t len, char *err,
    size_t errlen);
const rf_json_t *rf_json_root(const rf_json_doc_t *doc);
void rf_json_free(rf_json_doc_t *doc);

/* The member named key of an object (the first one), or NULL. */
const rf_json_t *rf_json_get(const rf_json_t *obj, const char *key);

/*
 * Typed getters for object members; 0, or -1 when the member is missing
 * or has another type (an integer must fit, a uint64 must be >= 0).
 */
int rf_json_get_str(const rf_json_t *obj, const char *key, rf_str_t *out);
int rf_json_get_int(const rf_json_t *obj, const char *key, int64_t *out);
int rf_json_get_u64(const rf_json_t *obj, const char *key, uint64_t *out);
/* The same for a value: integers above INT64_MAX are read exactly. */
int rf_json_u64(const rf_json_t *v, uint64_t *out);

/* The decoded size of base64 text by its length and padding; 0 or -1. */
int rf_base64_size(const unsigned char *in, size_t len, size_t *n);

/* Decode standard base64 (padding required, no whitespace); 0 or -1. */
int rf_base64_decode(rf_buf_t *out, const unsigned char *in, size_t len);

/*
 * The inverse of rf_rec_to_json(): build a binary record from one JSON
 * view object (any kind).  Required: "kind", "ts"; "id" ("source:sseq")
 * or "source" sets the source and source sequence (0 when absent);
 * "seq" is ignored (the relay assigns it).  "body" or "body_b64",
 * "data" or "data_b64".  The record is appended to out, sealed.  0, or -1
 * with a message naming the offending member in err.
 *
 * Fields are written in the order the capture and the spool's stamp write
 * them, so a stamped record comes back byte for byte, except for string
 * bytes that are not UTF-8: the view wrote them as \u00XX and they come
 * back as U+00XX in UTF-8 (bodies and data use base64 and are exact).
 */
int rf_rec_from_json(const rf_json_t *obj, rf_buf_t *out, char *err,
    size_t errlen);


#endif /* _RF_JSON_H_INCLUDED_ */
