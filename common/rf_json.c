/*
 * Copyright (C) ReplayForge contributors
 *
 * The JSON reader (see rf_json.h): an iterative parser that checks the
 * whole RFC 8259 grammar and UTF-8 before anything is trusted, with one
 * chunked arena per document; and strict base64.  The binary record built
 * back from a JSON view is in rf_json_rec.c.
 */

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_json.h"


#define RF_JSON_BLOCK_MIN       4096
#define RF_JSON_BLOCK_MAX       (16 * 1024 * 1024)

/* SWAR: 8 bytes at a time, "is any byte < n" and "is any byte zero" */
#define RF_ONES                 0x0101010101010101ULL
#define RF_HIGHS                0x8080808080808080ULL
#define rf_has_less(x, n)       (((x) - RF_ONES * (n)) & ~(x) & RF_HIGHS)
#define rf_has_zero(x)          (((x) - RF_ONES) & ~(x) & RF_HIGHS)

#define rf_json_ws(c)           ((c) == ' ' || (c) == '\n' || (c) == '\r'  \
                                 || (c) == '\t')
#define rf_json_digit(c)        ((unsigned) (c) - '0' < 10)


typedef struct rf_json_block_s  rf_json_block_t;

struct rf_json_block_s {
    rf_json_block_t            *next;
    size_t                      size;
    size_t                      used;
    unsigned char               data[];
};

struct rf_json_doc_s {
    rf_json_t                  *root;
    rf_json_block_t            *cur;        /* nodes and strings go here */
    rf_json_block_t            *blocks;     /* all malloc'ed ones */
    size_t                      next_size;
    size_t                      nodes;
};

typedef struct {
    const unsigned char        *start;
    const unsigned char        *p;
    const unsigned char        *end;
    rf_json_doc_t              *doc;
    const char                 *msg;        /* the error, when set */
} rf_json_parser_t;



static void *rf_json_alloc_block(rf_json_doc_t *doc, size_t n);
static rf_json_t *rf_json_node(rf_json_parser_t *ps);
static int rf_json_string(rf_json_parser_t *ps, rf_str_t *out);
static int rf_json_unescape(rf_json_parser_t *ps, const unsigned char *p,
    const unsigned char *q, unsigned char *d, size_t *len);
static int rf_json_hex4(const unsigned char *p, unsigned *cp);
static int rf_json_number(rf_json_parser_t *ps, rf_json_t *node);
static double rf_json_strtod(const char *s);
static void rf_json_c_locale_init(void);


static const unsigned char  rf_b64_value[256] = {
#define X 0xff
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,62,X,X,X,63,
    52,53,54,55,56,57,58,59,60,61,X,X,X,X,X,X,
    X,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,
    15,16,17,18,19,20,21,22,23,24,25,X,X,X,X,X,
    X,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,
    41,42,43,44,45,46,47,48,49,50,51,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,
    X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X, X,X,X,X,X,X,X,X,X,X,X,X,X,X,X,X
#undef X
};

/* exact powers of ten: the fast, correctly rounded number path */
static const double  rf_pow10[] = {
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12,
    1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22
};

static pthread_once_t  rf_json_c_locale_once = PTHREAD_ONCE_INIT;
static locale_t        rf_json_c_locale;


/*
 * The first block shares the document's allocation and is sized from the
 * text, so that a typical record view costs one malloc.
 */
rf_json_doc_t *
rf_json_parse(const char *text, size_t len, char *err, size_t errlen)
{
    size_t             size, depth;
    rf_str_t           key;
    rf_json_t         *node, *parent;
    rf_json_t         *stack[RF_JSON_MAX_DEPTH], *last[RF_JSON_MAX_DEPTH];
    rf_json_doc_t     *doc;
    rf_json_parser_t   ps;
    enum {
        sw_value,
        sw_member,
        sw_after
    } state;

    size = len < RF_JSON_BLOCK_MAX / 8 ? len * 8 + 1024 : RF_JSON_BLOCK_MAX;
    size = size < RF_JSON_BLOCK_MIN ? RF_JSON_BLOCK_MIN : size;

    doc = malloc(sizeof(rf_json_doc_t) + sizeof(rf_json_block_t) + size);
    if (doc == NULL) {
        if (err && errlen) {
            snprintf(err, errlen, "out of memory at byte 0");
        }
        errno = ENOMEM;
        return NULL;
    }

    doc->root = NULL;
    doc->cur = (rf_json_block_t *) (doc + 1);
    doc->cur->next = NULL;
    doc->cur->size = size;
    doc->cur->used = 0;
    doc->blocks = NULL;
    doc->next_size = size * 2;
    doc->nodes = 0;

    ps.start = (const unsigned char *) text;
    ps.p = ps.start;
    ps.end = ps.start + len;
    ps.doc = doc;
    ps.msg = NULL;

    key.len = 0;
    key.data = NULL;
    depth = 0;
    parent = NULL;
    state = sw_value;

    for ( ;; ) {

        while (ps.p < ps.end && rf_json_ws(*ps.p)) {
            ps.p++;
        }

        if (ps.p == ps.end) {
            if (depth == 0 && state == sw_after) {
                return doc;
            }

            ps.msg = "unexpected end of input";
            goto failed;
        }

        switch (state) {

        case sw_value:
            node = rf_json_node(&ps);
            if (node == NULL) {
                goto failed;
            }

            node->key = key;
            key.len = 0;
            key.data = NULL;

            if (parent == NULL) {
                doc->root = node;

            } else {
                if (last[depth - 1]) {
                    last[depth - 1]->next = node;
                } else {
                    parent->child = node;
                }

                last[depth - 1] = node;
                parent->count++;
            }

            state = sw_after;

            switch (*ps.p) {

            case '{':
            case '[':
                if (depth == RF_JSON_MAX_DEPTH) {
                    ps.msg = "nesting too deep";
                    goto failed;
                }

                node->type = *ps.p == '{' ? RF_JSON_OBJECT : RF_JSON_ARRAY;
                stack[depth] = node;
                last[depth] = NULL;
                parent = node;
                depth++;
                ps.p++;

                while (ps.p < ps.end && rf_json_ws(*ps.p)) {
                    ps.p++;
                }

                if (ps.p < ps.end
                    && *ps.p == (node->type == RF_JSON_OBJECT ? '}' : ']'))
                {
                    /* empty: handled as a closing bracket in sw_after */
                    break;
                }

                state = node->type == RF_JSON_OBJECT ? sw_member : sw_value;
                break;

            case '"':
                node->type = RF_JSON_STRING;
                if (rf_json_string(&ps, &node->str) == -1) {
                    goto failed;
                }
                break;

            case 't':
            case 'f':
            case 'n':
                if (ps.end - ps.p >= 4 && memcmp(ps.p, "true", 4) == 0) {
                    node->type = RF_JSON_TRUE;
                    ps.p += 4;

                } else if (ps.end - ps.p >= 5
                           && memcmp(ps.p, "false", 5) == 0)
                {
                    node->type = RF_JSON_FALSE;
                    ps.p += 5;

                } else if (ps.end - ps.p >= 4
                           && memcmp(ps.p, "null", 4) == 0)
                {
                    node->type = RF_JSON_NULL;
                    ps.p += 4;

                } else {
                    ps.msg = "invalid literal";
                    goto failed;
                }
                break;

            default:
                if (*ps.p != '-' && !rf_json_digit(*ps.p)) {
                    ps.msg = "unexpected character";
                    goto failed;
                }

                node->type = RF_JSON_NUMBER;
                if (rf_json_number(&ps, node) == -1) {
                    goto failed;
                }
            }

            break;

        case sw_member:
            if (*ps.p != '"') {
                ps.msg = "expected a member name";
                goto failed;
            }

            if (rf_json_string(&ps, &key) == -1) {
                goto failed;
            }

            while (ps.p < ps.end && rf_json_ws(*ps.p)) {
                ps.p++;
            }

            if (ps.p == ps.end || *ps.p != ':') {
                ps.msg = "expected ':'";
                goto failed;
            }

            ps.p++;
            state = sw_value;
            break;

        case sw_after:
            if (depth == 0) {
                ps.msg = "trailing characters";
                goto failed;
            }

            if (*ps.p == ',') {
                ps.p++;
                state = parent->type == RF_JSON_OBJECT ? sw_member : sw_value;
                break;
            }

            if (*ps.p != (parent->type == RF_JSON_OBJECT ? '}' : ']')) {
                ps.msg = parent->type == RF_JSON_OBJECT ? "expected ',' or '}'"
                                                        : "expected ',' or ']'";
                goto failed;
            }

            ps.p++;
            depth--;
            parent = depth ? stack[depth - 1] : NULL;
            break;
        }
    }

failed:

    if (err && errlen) {
        snprintf(err, errlen, "%s at byte %zu", ps.msg,
                 (size_t) (ps.p - ps.start));
    }

    errno = strcmp(ps.msg, "out of memory") == 0 ? ENOMEM : EINVAL;
    rf_json_free(doc);

    return NULL;
}


const rf_json_t *
rf_json_root(const rf_json_doc_t *doc)
{
    return doc->root;
}


void
rf_json_free(rf_json_doc_t *doc)
{
    rf_json_block_t  *blk, *next;

    if (doc == NULL) {
        return;
    }

    for (blk = doc->blocks; blk; blk = next) {
        next = blk->next;
        free(blk);
    }

    free(doc);
}


static inline void *
rf_json_alloc(rf_json_doc_t *doc, size_t n, size_t align)
{
    size_t            off;
    rf_json_block_t  *blk;

    blk = doc->cur;
    off = (blk->used + align - 1) & ~(align - 1);

    if (off <= blk->size && n <= blk->size - off) {
        blk->used = off + n;
        return blk->data + off;
    }

    return rf_json_alloc_block(doc, n);
}


/*
 * A large string gets a block of its own so that the current block's
 * room is not wasted; otherwise blocks double up to RF_JSON_BLOCK_MAX.
 */
static void *
rf_json_alloc_block(rf_json_doc_t *doc, size_t n)
{
    size_t            size;
    rf_json_block_t  *blk;

    size = n > doc->next_size / 4 ? n : doc->next_size;

    if (size > SIZE_MAX - sizeof(rf_json_block_t)) {
        return NULL;
    }

    blk = malloc(sizeof(rf_json_block_t) + size);
    if (blk == NULL) {
        return NULL;
    }

    blk->next = doc->blocks;
    blk->size = size;
    blk->used = n;
    doc->blocks = blk;

    if (size == doc->next_size) {
        doc->cur = blk;

        if (doc->next_size < RF_JSON_BLOCK_MAX) {
            doc->next_size *= 2;
        }
    }

    return blk->data;
}


static rf_json_t *
rf_json_node(rf_json_parser_t *ps)
{
    rf_json_t  *node;

    if (ps->doc->nodes == RF_JSON_MAX_NODES) {
        ps->msg = "too many values";
        return NULL;
    }

    node = rf_json_alloc(ps->doc, sizeof(rf_json_t), sizeof(void *));
    if (node == NULL) {
        ps->msg = "out of memory";
        return NULL;
    }

    ps->doc->nodes++;
    memset(node, 0, sizeof(rf_json_t));

    return node;
}


/*
 * ps->p is at the opening quote.  One pass finds the closing quote (8
 * bytes at a time while there is nothing to look at) and rejects raw
 * control characters; plain strings are then copied, the others decoded
 * with their UTF-8 checked.  Strings are NUL-terminated in the arena.
 */
static int
rf_json_string(rf_json_parser_t *ps, rf_str_t *out)
{
    int                   plain;
    size_t                len;
    uint64_t              w;
    unsigned char        *d;
    const unsigned char  *s, *p, *end;

    s = ps->p + 1;
    p = s;
    end = ps->end;
    plain = 1;

    for ( ;; ) {

        while (end - p >= 8) {
            memcpy(&w, p, 8);

            if (rf_has_less(w, 0x20)
                | rf_has_zero(w ^ (RF_ONES * '"'))
                | rf_has_zero(w ^ (RF_ONES * '\\'))
                | (w & RF_HIGHS))
            {
                break;
            }

            p += 8;
        }

        if (p == end) {
            ps->p = p;
            ps->msg = "unterminated string";
            return -1;
        }

        if (*p == '"') {
            break;
        }

        if (*p == '\\') {
            if (end - p < 2) {
                ps->p = end;
                ps->msg = "unterminated string";
                return -1;
            }

            plain = 0;
            p += 2;
            continue;
        }

        if (*p < 0x20) {
            ps->p = p;
            ps->msg = "control character in string";
            return -1;
        }

        if (*p >= 0x80) {
            plain = 0;
        }

        p++;
    }

    len = p - s;

    d = rf_json_alloc(ps->doc, len + 1, 1);
    if (d == NULL) {
        ps->msg = "out of memory";
        return -1;
    }

    if (plain) {
        memcpy(d, s, len);

    } else if (rf_json_unescape(ps, s, p, d, &len) == -1) {
        return -1;
    }

    d[len] = '\0';
    out->data = d;
    out->len = len;
    ps->p = p + 1;

    return 0;
}


static int
rf_json_unescape(rf_json_parser_t *ps, const unsigned char *p,
    const unsigned char *q, unsigned char *d, size_t *len)
{
    unsigned char  *start;
    unsigned        c, cp, lo, hi, lo2;
    size_t          n, k;

    start = d;

    while (p < q) {
        c = *p;

        if (c < 0x80 && c != '\\') {
            *d++ = (unsigned char) c;
            p++;
            continue;
        }

        if (c >= 0x80) {
            /* RFC 3629: no overlongs, surrogates or code points > 10FFFF */
            n = q - p;
            lo = 0x80;
            hi = 0xbf;
            k = 0;

            if (c >= 0xc2 && c <= 0xdf) {
                k = 2;

            } else if (c >= 0xe0 && c <= 0xef) {
                k = 3;
                lo = c == 0xe0 ? 0xa0 : 0x80;
                hi = c == 0xed ? 0x9f : 0xbf;

            } else if (c >= 0xf0 && c <= 0xf4) {
                k = 4;
                lo = c == 0xf0 ? 0x90 : 0x80;
                hi = c == 0xf4 ? 0x8f : 0xbf;
            }

            if (k == 0 || n < k || p[1] < lo || p[1] > hi
                || (k > 2 && (p[2] & 0xc0) != 0x80)
                || (k > 3 && (p[3] & 0xc0) != 0x80))
            {
                ps->p = p;
                ps->msg = "invalid UTF-8 in string";
                return -1;
            }

            memcpy(d, p, k);
            d += k;
            p += k;
            continue;
        }

        /* an escape; the scan made sure it is not the last byte */
        ps->p = p;
        c = p[1];
        p += 2;

        switch (c) {
        case '"': case '\\': case '/':
            *d++ = (unsigned char) c;
            continue;
        case 'b': *d++ = '\b'; continue;
        case 'f': *d++ = '\f'; continue;
        case 'n': *d++ = '\n'; continue;
        case 'r': *d++ = '\r'; continue;
        case 't': *d++ = '\t'; continue;
        case 'u': break;
        default:
            ps->msg = "invalid escape";
            return -1;
        }

        if (q - p < 4 || rf_json_hex4(p, &cp) == -1) {
            ps->msg = "invalid \\u escape";
            return -1;
        }

        p += 4;

        if (cp >= 0xdc00 && cp <= 0xdfff) {
            ps->msg = "unpaired surrogate";
            return -1;
        }

        if (cp >= 0xd800 && cp <= 0xdbff) {
            if (q - p < 6 || p[0] != '\\' || p[1] != 'u'
                || rf_json_hex4(p + 2, &lo2) == -1
                || lo2 < 0xdc00 || lo2 > 0xdfff)
            {
                ps->msg = "unpaired surrogate";
                return -1;
            }

            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo2 - 0xdc00);
            p += 6;
        }

        if (cp < 0x80) {
            *d++ = (unsigned char) cp;

        } else if (cp < 0x800) {
            *d++ = (unsigned char) (0xc0 | cp >> 6);
            *d++ = (unsigned char) (0x80 | (cp & 0x3f));

        } else if (cp < 0x10000) {
            *d++ = (unsigned char) (0xe0 | cp >> 12);
            *d++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            *d++ = (unsigned char) (0x80 | (cp & 0x3f));

        } else {
            *d++ = (unsigned char) (0xf0 | cp >> 18);
            *d++ = (unsigned char) (0x80 | ((cp >> 12) & 0x3f));
            *d++ = (unsigned char) (0x80 | ((cp >> 6) & 0x3f));
            *d++ = (unsigned char) (0x80 | (cp & 0x3f));
        }
    }

    *len = d - start;

    return 0;
}


static int
rf_json_hex4(const unsigned char *p, unsigned *cp)
{
    unsigned  i, c, v;

    v = 0;

    for (i = 0; i < 4; i++) {
        c = p[i];

        if (c >= '0' && c <= '9') {
            c -= '0';

        } else {
            c |= 0x20;

            if (c < 'a' || c > 'f') {
                return -1;
            }

            c -= 'a' - 10;
        }

        v = v << 4 | c;
    }

    *cp = v;

    return 0;
}


/*
 * The grammar exactly: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?.
 * Up to 19 significant digits with a small exponent are converted here
 * (an integer below 2^53 times or divided by an exact power of ten is
 * correctly rounded); the rest goes to strtod in the C locale.
 */
static int
rf_json_number(rf_json_parser_t *ps, rf_json_t *node)
{
    int                   neg, eneg, nd, e10, exp, slow, integer;
    char                 *lit;
    size_t                len;
    uint64_t              m;
    const unsigned char  *p, *end, *start;

    start = ps->p;
    p = start;
    end = ps->end;
    neg = 0;
    nd = 0;
    e10 = 0;
    slow = 0;
    integer = 1;
    m = 0;

    if (*p == '-') {
        neg = 1;
        p++;
    }

    if (p == end || !rf_json_digit(*p)) {
        goto invalid;
    }

    if (*p == '0') {
        p++;

        if (p < end && rf_json_digit(*p)) {
            ps->p = p;
            ps->msg = "leading zero in number";
            return -1;
        }

    } else {
        for ( /* void */ ; p < end && rf_json_digit(*p); p++) {
            if (nd == 19) {
                slow = 1;
                continue;
            }

            m = m * 10 + (*p - '0');
            nd++;
        }
    }

    if (p < end && *p == '.') {
        p++;
        integer = 0;

        if (p == end || !rf_json_digit(*p)) {
            goto invalid;
        }

        for ( /* void */ ; p < end && rf_json_digit(*p); p++) {
            if (nd == 19) {
                slow = 1;
                continue;
            }

            m = m * 10 + (*p - '0');
            nd += m != 0;
            e10--;
        }
    }

    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        integer = 0;
        eneg = 0;
        exp = 0;

        if (p < end && (*p == '+' || *p == '-')) {
            eneg = *p == '-';
            p++;
        }

        if (p == end || !rf_json_digit(*p)) {
            goto invalid;
        }

        for ( /* void */ ; p < end && rf_json_digit(*p); p++) {
            if (exp < 100000) {
                exp = exp * 10 + (*p - '0');
            }
        }

        e10 += eneg ? -exp : exp;
    }

    len = p - start;

    lit = rf_json_alloc(ps->doc, len + 1, 1);
    if (lit == NULL) {
        ps->msg = "out of memory";
        return -1;
    }

    memcpy(lit, start, len);
    lit[len] = '\0';
    node->str.data = (unsigned char *) lit;
    node->str.len = len;

    if (integer && !slow
        && (neg ? m <= (uint64_t) INT64_MAX + 1 : m <= INT64_MAX))
    {
        node->is_int = 1;
        node->i = neg ? (int64_t) (0 - m) : (int64_t) m;
    }

    if (!slow && m <= (1ULL << 53) && e10 >= -22 && e10 <= 22) {
        node->num = e10 >= 0 ? (double) m * rf_pow10[e10]
                             : (double) m / rf_pow10[-e10];
        node->num = neg ? -node->num : node->num;

    } else if (integer && !slow) {
        /* up to 19 digits: the conversion rounds correctly */
        node->num = neg ? -(double) m : (double) m;

    } else {
        node->num = rf_json_strtod(lit);

        if (isinf(node->num)) {
            ps->msg = "number out of range";
            return -1;
        }
    }

    ps->p = p;

    return 0;

invalid:

    ps->p = p;
    ps->msg = "invalid number";

    return -1;
}


static double
rf_json_strtod(const char *s)
{
    pthread_once(&rf_json_c_locale_once, rf_json_c_locale_init);

    if (rf_json_c_locale != (locale_t) 0) {
        return strtod_l(s, NULL, rf_json_c_locale);
    }

    return strtod(s, NULL);
}


static void
rf_json_c_locale_init(void)
{
    rf_json_c_locale = newlocale(LC_ALL_MASK, "C", (locale_t) 0);
}


const rf_json_t *
rf_json_get(const rf_json_t *obj, const char *key)
{
    size_t            len;
    const rf_json_t  *m;

    if (obj == NULL || obj->type != RF_JSON_OBJECT) {
        return NULL;
    }

    len = strlen(key);

    for (m = obj->child; m; m = m->next) {
        if (m->key.len == len && memcmp(m->key.data, key, len) == 0) {
            return m;
        }
    }

    return NULL;
}


int
rf_json_get_str(const rf_json_t *obj, const char *key, rf_str_t *out)
{
    const rf_json_t  *v;

    v = rf_json_get(obj, key);

    if (v == NULL || v->type != RF_JSON_STRING) {
        return -1;
    }

    *out = v->str;

    return 0;
}


int
rf_json_get_int(const rf_json_t *obj, const char *key, int64_t *out)
{
    const rf_json_t  *v;

    v = rf_json_get(obj, key);

    if (v == NULL || v->type != RF_JSON_NUMBER || !v->is_int) {
        return -1;
    }

    *out = v->i;

    return 0;
}


int
rf_json_get_u64(const rf_json_t *obj, const char *key, uint64_t *out)
{
    return rf_json_u64(rf_json_get(obj, key), out);
}


/* Integers above INT64_MAX are read from the literal. */
int
rf_json_u64(const rf_json_t *v, uint64_t *out)
{
    size_t    i;
    uint64_t  n;

    if (v == NULL || v->type != RF_JSON_NUMBER) {
        return -1;
    }

    if (v->is_int) {
        if (v->i < 0) {
            return -1;
        }

        *out = (uint64_t) v->i;
        return 0;
    }

    n = 0;

    for (i = 0; i < v->str.len; i++) {
        if (!rf_json_digit(v->str.data[i])
            || n > (UINT64_MAX - (v->str.data[i] - '0')) / 10)
        {
            return -1;
        }

        n = n * 10 + (v->str.data[i] - '0');
    }

    *out = n;

    return 0;
}


int
rf_base64_decode(rf_buf_t *out, const unsigned char *in, size_t len)
{
    size_t          i, n;
    uint32_t        v, a, b, c, e;
    unsigned char  *d;

    if (rf_base64_size(in, len, &n) == -1) {
        errno = EINVAL;
        return -1;
    }

    if (rf_buf_reserve(out, n) == -1) {
        return -1;
    }

    d = out->data + out->len;

    for (i = 0; i + 4 < len; i += 4) {
        a = rf_b64_value[in[i]];
        b = rf_b64_value[in[i + 1]];
        c = rf_b64_value[in[i + 2]];
        e = rf_b64_value[in[i + 3]];

        /* valid values are below 64, the table's invalid mark is 0xff */
        if ((a | b | c | e) & 0xc0) {
            goto invalid;
        }

        v = a << 18 | b << 12 | c << 6 | e;
        *d++ = (unsigned char) (v >> 16);
        *d++ = (unsigned char) (v >> 8);
        *d++ = (unsigned char) v;
    }

    if (len) {
        /* the last quantum, padded; the bits padding drops must be 0 */
        a = rf_b64_value[in[i]];
        b = rf_b64_value[in[i + 1]];
        c = in[i + 2] == '=' ? 0 : rf_b64_value[in[i + 2]];
        e = in[i + 3] == '=' ? 0 : rf_b64_value[in[i + 3]];

        if (((a | b | c | e) & 0xc0)
            || (in[i + 2] == '=' && (in[i + 3] != '=' || (b & 0x0f)))
            || (in[i + 3] == '=' && (c & 0x03)))
        {
            goto invalid;
        }

        v = a << 18 | b << 12 | c << 6 | e;
        *d++ = (unsigned char) (v >> 16);

        if (in[i + 2] != '=') {
            *d++ = (unsigned char) (v >> 8);
        }

        if (in[i + 3] != '=') {
            *d++ = (unsigned char) v;
        }
    }

    out->len += n;

    return 0;

invalid:

    errno = EINVAL;

    return -1;
}


/* The decoded length from the length and the padding; -1 if malformed. */
int
rf_base64_size(const unsigned char *in, size_t len, size_t *n)
{
    size_t  pad;

    if (len % 4) {
        return -1;
    }

    pad = 0;

    if (len && in[len - 1] == '=') {
        pad = in[len - 2] == '=' ? 2 : 1;
    }

    *n = len / 4 * 3 - pad;

    return 0;
}
