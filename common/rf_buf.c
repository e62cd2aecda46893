/*
 * Copyright (C) ReplayForge contributors
 *
 * Growable byte buffers and the JSON string writers the record's JSON view
 * and the daemons' APIs share.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_buf.h"


static const char  rf_b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static const char  rf_hex[] = "0123456789abcdef";


void
rf_buf_init(rf_buf_t *b)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}


void
rf_buf_free(rf_buf_t *b)
{
    free(b->data);
    rf_buf_init(b);
}


void
rf_buf_reset(rf_buf_t *b)
{
    b->len = 0;
}


int
rf_buf_reserve(rf_buf_t *b, size_t n)
{
    size_t          cap;
    unsigned char  *p;

    if (n <= b->cap - b->len) {
        return 0;
    }

    if (n > SIZE_MAX / 2 - b->len) {
        errno = ENOMEM;
        return -1;
    }

    cap = b->cap ? b->cap : 256;

    while (cap - b->len < n) {
        cap *= 2;
    }

    p = realloc(b->data, cap);
    if (p == NULL) {
        errno = ENOMEM;
        return -1;
    }

    b->data = p;
    b->cap = cap;

    return 0;
}


int
rf_buf_add(rf_buf_t *b, const void *data, size_t n)
{
    if (rf_buf_reserve(b, n) == -1) {
        return -1;
    }

    if (n) {
        memcpy(b->data + b->len, data, n);
        b->len += n;
    }

    return 0;
}


int
rf_buf_adds(rf_buf_t *b, const char *s)
{
    return rf_buf_add(b, s, strlen(s));
}


int
rf_buf_addc(rf_buf_t *b, int c)
{
    if (rf_buf_reserve(b, 1) == -1) {
        return -1;
    }

    b->data[b->len++] = (unsigned char) c;

    return 0;
}


int
rf_buf_printf(rf_buf_t *b, const char *fmt, ...)
{
    int      n;
    va_list  ap;

    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);

    if (n < 0 || rf_buf_reserve(b, (size_t) n + 1) == -1) {
        errno = ENOMEM;
        return -1;
    }

    va_start(ap, fmt);
    vsnprintf((char *) b->data + b->len, (size_t) n + 1, fmt, ap);
    va_end(ap);

    b->len += n;

    return 0;
}


/*
 * Length of the valid UTF-8 sequence at p (1 to 4), or 0 when the bytes
 * there do not start one.
 */
static size_t
rf_utf8_seq(const unsigned char *p, size_t n)
{
    unsigned  c, need, i;
    uint32_t  cp, min;

    c = p[0];

    if (c < 0x80) {
        return 1;
    }

    if ((c & 0xe0) == 0xc0) {
        need = 1; cp = c & 0x1f; min = 0x80;

    } else if ((c & 0xf0) == 0xe0) {
        need = 2; cp = c & 0x0f; min = 0x800;

    } else if ((c & 0xf8) == 0xf0) {
        need = 3; cp = c & 0x07; min = 0x10000;

    } else {
        return 0;
    }

    if (n < need + 1) {
        return 0;
    }

    for (i = 1; i <= need; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }

    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;
    }

    return need + 1;
}


int
rf_utf8_valid(const unsigned char *data, size_t n)
{
    size_t  i, k;

    for (i = 0; i < n; i += k) {
        k = rf_utf8_seq(data + i, n - i);
        if (k == 0) {
            return 0;
        }
    }

    return 1;
}


int
rf_json_str(rf_buf_t *b, const unsigned char *data, size_t n)
{
    size_t  save;

    save = b->len;

    if (rf_buf_addc(b, '"') == -1
        || rf_json_escape(b, data, n) == -1
        || rf_buf_addc(b, '"') == -1)
    {
        b->len = save;
        return -1;
    }

    return 0;
}


int
rf_json_escape(rf_buf_t *b, const unsigned char *data, size_t n)
{
    size_t          i, k;
    unsigned        c;
    unsigned char  *p;

    /* worst case: every byte becomes \u00XX */
    if (n > SIZE_MAX / 6 || rf_buf_reserve(b, n * 6) == -1) {
        errno = ENOMEM;
        return -1;
    }

    p = b->data + b->len;

    for (i = 0; i < n; i += k) {
        c = data[i];
        k = 1;

        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            *p++ = (unsigned char) c;
            continue;
        }

        if (c >= 0x80) {
            k = rf_utf8_seq(data + i, n - i);
            if (k) {
                memcpy(p, data + i, k);
                p += k;
                continue;
            }
            k = 1;
        }

        *p++ = '\\';

        switch (c) {
        case '"':  *p++ = '"';  break;
        case '\\': *p++ = '\\'; break;
        case '\n': *p++ = 'n';  break;
        case '\r': *p++ = 'r';  break;
        case '\t': *p++ = 't';  break;
        default:
            *p++ = 'u';
            *p++ = '0';
            *p++ = '0';
            *p++ = rf_hex[c >> 4];
            *p++ = rf_hex[c & 0xf];
        }
    }

    b->len = p - b->data;

    return 0;
}


int
rf_json_base64(rf_buf_t *b, const unsigned char *data, size_t n)
{
    size_t          i;
    uint32_t        v;
    unsigned char  *p;

    if (n > (SIZE_MAX - 8) / 2 || rf_buf_reserve(b, (n + 2) / 3 * 4 + 2) == -1)
    {
        errno = ENOMEM;
        return -1;
    }

    p = b->data + b->len;
    *p++ = '"';

    for (i = 0; i + 2 < n; i += 3) {
        v = (uint32_t) data[i] << 16 | (uint32_t) data[i + 1] << 8
            | data[i + 2];
        *p++ = rf_b64_alphabet[v >> 18];
        *p++ = rf_b64_alphabet[(v >> 12) & 0x3f];
        *p++ = rf_b64_alphabet[(v >> 6) & 0x3f];
        *p++ = rf_b64_alphabet[v & 0x3f];
    }

    if (i < n) {
        v = (uint32_t) data[i] << 16;
        if (i + 1 < n) {
            v |= (uint32_t) data[i + 1] << 8;
        }
        *p++ = rf_b64_alphabet[v >> 18];
        *p++ = rf_b64_alphabet[(v >> 12) & 0x3f];
        *p++ = (i + 1 < n) ? rf_b64_alphabet[(v >> 6) & 0x3f] : '=';
        *p++ = '=';
    }

    *p++ = '"';
    b->len = p - b->data;

    return 0;
}
