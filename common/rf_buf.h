/*
 * Copyright (C) ReplayForge contributors
 *
 * A growable byte buffer, and the JSON string writers built on it.
 */

#ifndef _RF_BUF_H_INCLUDED_
#define _RF_BUF_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


typedef struct {
    unsigned char              *data;
    size_t                      len;
    size_t                      cap;
} rf_buf_t;


void rf_buf_init(rf_buf_t *b);
void rf_buf_free(rf_buf_t *b);
void rf_buf_reset(rf_buf_t *b);
/* All return 0, or -1 with errno ENOMEM; the buffer is unchanged then. */
int rf_buf_reserve(rf_buf_t *b, size_t n);
int rf_buf_add(rf_buf_t *b, const void *data, size_t n);
int rf_buf_adds(rf_buf_t *b, const char *s);
int rf_buf_addc(rf_buf_t *b, int c);
int rf_buf_printf(rf_buf_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* 1 when data is valid UTF-8 (no overlongs, no surrogates). */
int rf_utf8_valid(const unsigned char *data, size_t n);

/*
 * A JSON string literal with quotes.  Bytes that are not valid UTF-8 are
 * written as \u00XX (the byte as a Latin-1 code point).
 */
int rf_json_str(rf_buf_t *b, const unsigned char *data, size_t n);
/* The same escaping, without the quotes, to build a string in parts. */
int rf_json_escape(rf_buf_t *b, const unsigned char *data, size_t n);
int rf_json_base64(rf_buf_t *b, const unsigned char *data, size_t n);


#endif /* _RF_BUF_H_INCLUDED_ */
