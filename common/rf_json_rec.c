/*
 * Copyright (C) ReplayForge contributors
 *
 * The binary record built back from its JSON view (rf_rec_from_json(),
 * the inverse of rf_rec_to_json()): one pass checks every member's type
 * and sizes the record, a second writes it with the record builder.
 */

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_json.h"


#define rf_json_digit(c)        ((unsigned) (c) - '0' < 10)


/* rf_rec_from_json's state: pass 1 sizes the record, pass 2 writes it */
typedef struct {
    const rf_json_t            *obj;
    unsigned                    kind;
    unsigned                    write;
    size_t                      size;
    rf_rec_builder_t            b;
    rf_buf_t                    tmp;        /* decoded base64 */
    char                       *err;
    size_t                      errlen;
} rf_jrec_t;


static int rf_jrec_error(rf_jrec_t *jr, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int rf_jrec_fields(rf_jrec_t *jr, const rf_str_t *source,
    const rf_str_t *bucket);
static int rf_jrec_http(rf_jrec_t *jr);
static int rf_jrec_other(rf_jrec_t *jr);
static void rf_jrec_add(rf_jrec_t *jr, unsigned id, const void *data,
    size_t len);
static int rf_jrec_str(rf_jrec_t *jr, const char *key, unsigned id);
static int rf_jrec_u64(rf_jrec_t *jr, const rf_json_t *v, const char *key,
    unsigned id);
static int rf_jrec_b64(rf_jrec_t *jr, const rf_json_t *v, const char *key,
    unsigned id);
static int rf_jrec_headers(rf_jrec_t *jr, const rf_json_t *v);
static int rf_jrec_duration(const rf_json_t *v, uint64_t *us);
static int rf_jrec_ts(const rf_str_t *s, uint64_t *ns);
static int rf_jrec_id(const rf_str_t *s, rf_str_t *source, uint64_t *sseq);


int
rf_rec_from_json(const rf_json_t *obj, rf_buf_t *out, char *err,
    size_t errlen)
{
    int                rc;
    unsigned           k;
    uint64_t           sseq, time_ns;
    rf_str_t           source, *src, bucket, *bkt;
    rf_jrec_t          jr;
    const rf_json_t   *v;

    jr.obj = obj;
    jr.write = 0;
    jr.size = RF_REC_HDR_SIZE;
    jr.err = err;
    jr.errlen = errlen;
    rf_buf_init(&jr.tmp);

    if (obj == NULL || obj->type != RF_JSON_OBJECT) {
        return rf_jrec_error(&jr, "a record must be a JSON object");
    }

    v = rf_json_get(obj, "kind");
    if (v == NULL) {
        return rf_jrec_error(&jr, "\"kind\" is missing");
    }

    for (k = 1; k < RF_KIND_MAX; k++) {
        if (v->type == RF_JSON_STRING
            && strlen(rf_kind_name(k)) == v->str.len
            && memcmp(rf_kind_name(k), v->str.data, v->str.len) == 0)
        {
            break;
        }
    }

    if (k == RF_KIND_MAX) {
        return rf_jrec_error(&jr, "\"kind\" must be a known record kind");
    }

    jr.kind = k;

    v = rf_json_get(obj, "ts");
    if (v == NULL) {
        return rf_jrec_error(&jr, "\"ts\" is missing");
    }

    if (v->type != RF_JSON_STRING || rf_jrec_ts(&v->str, &time_ns) == -1) {
        return rf_jrec_error(&jr, "\"ts\" must be a UTC time like "
                             "\"2026-01-02T03:04:05.123456Z\"");
    }

    sseq = 0;
    src = NULL;

    v = rf_json_get(obj, "id");
    if (v) {
        if (v->type != RF_JSON_STRING
            || rf_jrec_id(&v->str, &source, &sseq) == -1)
        {
            return rf_jrec_error(&jr, "\"id\" must be \"source:sseq\"");
        }

        src = &source;
    }

    v = rf_json_get(obj, "source");
    if (v) {
        if (v->type != RF_JSON_STRING) {
            return rf_jrec_error(&jr, "\"source\" must be a string");
        }

        source = v->str;
        src = &source;
    }

    bkt = NULL;

    v = rf_json_get(obj, "bucket");
    if (v) {
        if (v->type != RF_JSON_STRING) {
            return rf_jrec_error(&jr, "\"bucket\" must be a string");
        }

        bucket = v->str;
        bkt = &bucket;
    }

    /* pass 1 checks every member and sizes the record */
    if (rf_jrec_fields(&jr, src, bkt) == -1) {
        return -1;
    }

    if (jr.size > RF_REC_MAX_SIZE) {
        return rf_jrec_error(&jr, "the record is too large");
    }

    if (rf_buf_reserve(out, jr.size) == -1) {
        rf_jrec_error(&jr, "out of memory");
        errno = ENOMEM;
        return -1;
    }

    jr.write = 1;
    rf_rec_begin(&jr.b, out->data + out->len, jr.size, jr.kind, time_ns);
    rf_rec_set_sseq(&jr.b, sseq);

    rc = rf_jrec_fields(&jr, src, bkt);

    rf_buf_free(&jr.tmp);

    if (rc == -1) {
        return -1;
    }

    if (rf_rec_finish(&jr.b) != jr.size) {
        return rf_jrec_error(&jr, "the record does not fit its size");
    }

    out->len += jr.size;

    return 0;
}


static int
rf_jrec_error(rf_jrec_t *jr, const char *fmt, ...)
{
    va_list  ap;

    if (jr->err && jr->errlen) {
        va_start(ap, fmt);
        vsnprintf(jr->err, jr->errlen, fmt, ap);
        va_end(ap);
    }

    rf_buf_free(&jr->tmp);
    errno = EINVAL;

    return -1;
}


/*
 * The fields in the order the capture and the spool write them: bucket
 * first, the kind's fields, the spool's source stamp last.  Binary
 * records from nginx thus come back byte for byte.
 */
static int
rf_jrec_fields(rf_jrec_t *jr, const rf_str_t *source, const rf_str_t *bucket)
{
    if (bucket) {
        rf_jrec_add(jr, RF_F_BUCKET, bucket->data, bucket->len);
    }

    if ((jr->kind == RF_KIND_HTTP ? rf_jrec_http(jr) : rf_jrec_other(jr))
        == -1)
    {
        return -1;
    }

    if (source) {
        rf_jrec_add(jr, RF_F_SOURCE, source->data, source->len);
    }

    return 0;
}


static int
rf_jrec_http(rf_jrec_t *jr)
{
    size_t            i;
    uint64_t          us;
    const rf_json_t  *v, *b64;

    static const struct {
        unsigned     id;
        const char  *key;
    } strs[] = {
        { RF_F_METHOD, "method" }, { RF_F_URI, "uri" },
        { RF_F_VERSION, "version" }, { RF_F_SCHEME, "scheme" },
        { RF_F_HOST, "host" }, { RF_F_CLIENT, "client" },
        { RF_F_SERVER, "server" }
    };

    for (i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (rf_jrec_str(jr, strs[i].key, strs[i].id) == -1) {
            return -1;
        }
    }

    v = rf_json_get(jr->obj, "headers");
    if (v && rf_jrec_headers(jr, v) == -1) {
        return -1;
    }

    v = rf_json_get(jr->obj, "body");
    b64 = rf_json_get(jr->obj, "body_b64");

    if (v && b64) {
        return rf_jrec_error(jr, "\"body\" and \"body_b64\" exclude each "
                             "other");
    }

    if (v) {
        if (rf_jrec_str(jr, "body", RF_F_BODY) == -1) {
            return -1;
        }

    } else if (b64 && rf_jrec_b64(jr, b64, "body_b64", RF_F_BODY) == -1) {
        return -1;
    }

    v = rf_json_get(jr->obj, "body_size");
    if (v && rf_jrec_u64(jr, v, "body_size", RF_F_BODY_SIZE) == -1) {
        return -1;
    }

    v = rf_json_get(jr->obj, "body_truncated");
    if (v) {
        if (v->type != RF_JSON_TRUE && v->type != RF_JSON_FALSE) {
            return rf_jrec_error(jr, "\"body_truncated\" must be true or "
                                 "false");
        }

        if (jr->write && v->type == RF_JSON_TRUE) {
            rf_rec_set_flags(&jr->b, RF_REC_F_BODY_TRUNCATED);
        }
    }

    v = rf_json_get(jr->obj, "status");
    if (v && rf_jrec_u64(jr, v, "status", RF_F_STATUS) == -1) {
        return -1;
    }

    v = rf_json_get(jr->obj, "bytes_sent");
    if (v && rf_jrec_u64(jr, v, "bytes_sent", RF_F_BYTES_SENT) == -1) {
        return -1;
    }

    v = rf_json_get(jr->obj, "duration_ms");
    if (v) {
        if (rf_jrec_duration(v, &us) == -1) {
            return rf_jrec_error(jr, "\"duration_ms\" must be a "
                                 "non-negative number");
        }

        if (jr->write) {
            rf_rec_add_u64(&jr->b, RF_F_DURATION_US, us);
        } else {
            jr->size += RF_REC_U64_SIZE;
        }
    }

    if (rf_jrec_str(jr, "upstream", RF_F_UPSTREAM) == -1
        || rf_jrec_str(jr, "request_id", RF_F_REQUEST_ID) == -1)
    {
        return -1;
    }

    return 0;
}


/* rf_json_other() writes the fields in record order: read them so. */
static int
rf_jrec_other(rf_jrec_t *jr)
{
    unsigned          id;
    const char       *key;
    const rf_json_t  *m;

    for (m = jr->obj->child; m; m = m->next) {
        key = (const char *) m->key.data;

        if (m->key.len == 0 || strlen(key) != m->key.len) {
            continue;
        }

        if (strcmp(key, "data_b64") == 0) {
            if (rf_jrec_b64(jr, m, key, RF_F_DATA) == -1) {
                return -1;
            }
            continue;
        }

        if (strcmp(key, "offset_ns") == 0 || strcmp(key, "exit") == 0) {
            if (rf_jrec_u64(jr, m, key,
                            key[0] == 'e' ? RF_F_EXIT : RF_F_OFFSET_NS)
                == -1)
            {
                return -1;
            }
            continue;
        }

        if (strcmp(key, "data") == 0) {
            id = RF_F_DATA;

        } else {
            for (id = 0; id < RF_F_MAX; id++) {
                if (rf_field_key(id) && strcmp(rf_field_key(id), key) == 0) {
                    break;
                }
            }

            if (id == RF_F_MAX) {
                continue;
            }
        }

        if (m->type != RF_JSON_STRING) {
            return rf_jrec_error(jr, "\"%s\" must be a string", key);
        }

        rf_jrec_add(jr, id, m->str.data, m->str.len);
    }

    return 0;
}


static void
rf_jrec_add(rf_jrec_t *jr, unsigned id, const void *data, size_t len)
{
    if (jr->write) {
        rf_rec_add(&jr->b, id, data, len);
    } else {
        jr->size += RF_REC_FIELD_SIZE(len);
    }
}


/* An optional string member (the first one of that name). */
static int
rf_jrec_str(rf_jrec_t *jr, const char *key, unsigned id)
{
    const rf_json_t  *v;

    v = rf_json_get(jr->obj, key);

    if (v == NULL) {
        return 0;
    }

    if (v->type != RF_JSON_STRING) {
        return rf_jrec_error(jr, "\"%s\" must be a string", key);
    }

    rf_jrec_add(jr, id, v->str.data, v->str.len);

    return 0;
}


static int
rf_jrec_u64(rf_jrec_t *jr, const rf_json_t *v, const char *key, unsigned id)
{
    uint64_t  n;

    if (rf_json_u64(v, &n) == -1) {
        return rf_jrec_error(jr, "\"%s\" must be a non-negative integer",
                             key);
    }

    if (jr->write) {
        rf_rec_add_u64(&jr->b, id, n);
    } else {
        jr->size += RF_REC_U64_SIZE;
    }

    return 0;
}


/* Pass 1 only sizes base64 from its length; pass 2 decodes and checks. */
static int
rf_jrec_b64(rf_jrec_t *jr, const rf_json_t *v, const char *key, unsigned id)
{
    size_t  n;

    if (v->type != RF_JSON_STRING
        || rf_base64_size(v->str.data, v->str.len, &n) == -1)
    {
        return rf_jrec_error(jr, "\"%s\" must be a base64 string", key);
    }

    if (!jr->write) {
        jr->size += RF_REC_FIELD_SIZE(n);
        return 0;
    }

    rf_buf_reset(&jr->tmp);

    if (rf_base64_decode(&jr->tmp, v->str.data, v->str.len) == -1) {
        if (errno == ENOMEM) {
            rf_jrec_error(jr, "out of memory");
            errno = ENOMEM;
            return -1;
        }

        return rf_jrec_error(jr, "\"%s\" must be a base64 string", key);
    }

    rf_rec_add(&jr->b, id, jr->tmp.data, jr->tmp.len);

    return 0;
}


static int
rf_jrec_headers(rf_jrec_t *jr, const rf_json_t *v)
{
    const rf_json_t  *h, *name, *value;

    if (v->type != RF_JSON_ARRAY) {
        goto invalid;
    }

    for (h = v->child; h; h = h->next) {
        if (h->type != RF_JSON_ARRAY || h->count != 2) {
            goto invalid;
        }

        name = h->child;
        value = name->next;

        if (name->type != RF_JSON_STRING || value->type != RF_JSON_STRING) {
            goto invalid;
        }

        if (jr->write) {
            rf_rec_add_header(&jr->b, name->str.data, name->str.len,
                              value->str.data, value->str.len);
        } else {
            jr->size += RF_REC_HEADER_SIZE(name->str.len, value->str.len);
        }
    }

    return 0;

invalid:

    return rf_jrec_error(jr, "\"headers\" must be an array of "
                         "[name, value] string pairs");
}


/*
 * "12.345" is 12345 us exactly, as rf_rec_to_json writes it; other
 * producers' numbers are rounded to the microsecond.
 */
static int
rf_jrec_duration(const rf_json_t *v, uint64_t *us)
{
    size_t                i, n, fd;
    uint64_t              ms, frac;
    const unsigned char  *p;

    if (v->type != RF_JSON_NUMBER || v->str.data[0] == '-') {
        return -1;
    }

    p = v->str.data;
    n = v->str.len;
    ms = 0;
    frac = 0;

    for (i = 0; i < n && rf_json_digit(p[i]); i++) {
        if (ms > (UINT64_MAX - 999) / 10000) {
            goto approx;
        }

        ms = ms * 10 + (p[i] - '0');
    }

    if (i < n && p[i] == '.') {
        for (i++, fd = 0; i < n && rf_json_digit(p[i]); i++, fd++) {
            if (fd == 3) {
                goto approx;
            }

            frac = frac * 10 + (p[i] - '0');
        }

        for ( /* void */ ; fd < 3; fd++) {
            frac *= 10;
        }
    }

    if (i < n) {
        goto approx;
    }

    *us = ms * 1000 + frac;

    return 0;

approx:

    if (!(v->num >= 0 && v->num * 1000 < 9e18)) {
        return -1;
    }

    *us = (uint64_t) (v->num * 1000 + 0.5);

    return 0;
}


/* "YYYY-MM-DDTHH:MM:SS[.f{0,9}]Z", UTC, 1970 to 2554 (u64 ns) */
static int
rf_jrec_ts(const rf_str_t *s, uint64_t *ns)
{
    size_t                i, n;
    uint64_t              y, mo, d, h, mi, sec, frac, days, secs, doy;
    const unsigned char  *p;

    static const unsigned  mdays[] = {
        31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31
    };

    p = s->data;
    n = s->len;

    if (n < 20 || p[4] != '-' || p[7] != '-' || p[10] != 'T'
        || p[13] != ':' || p[16] != ':' || p[n - 1] != 'Z')
    {
        return -1;
    }

    for (i = 0; i < 19; i++) {
        if (i != 4 && i != 7 && i != 10 && i != 13 && i != 16
            && !rf_json_digit(p[i]))
        {
            return -1;
        }
    }

#define rf_ts_num(o, w)                                                     \
    ((w) == 4 ? (uint64_t) (p[o] - '0') * 1000 + (p[o + 1] - '0') * 100     \
                + (p[o + 2] - '0') * 10 + (p[o + 3] - '0')                  \
              : (uint64_t) (p[o] - '0') * 10 + (p[o + 1] - '0'))

    y = rf_ts_num(0, 4);
    mo = rf_ts_num(5, 2);
    d = rf_ts_num(8, 2);
    h = rf_ts_num(11, 2);
    mi = rf_ts_num(14, 2);
    sec = rf_ts_num(17, 2);

#undef rf_ts_num

    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59
        || sec > 59
        || d > mdays[mo - 1] + (mo == 2 && y % 4 == 0
                                && (y % 100 != 0 || y % 400 == 0)))
    {
        return -1;
    }

    frac = 0;

    if (n > 20) {
        /* ".", then 1 to 9 digits */
        if (p[19] != '.' || n - 21 == 0 || n - 21 > 9) {
            return -1;
        }

        for (i = 20; i < n - 1; i++) {
            if (!rf_json_digit(p[i])) {
                return -1;
            }

            frac = frac * 10 + (p[i] - '0');
        }

        for (i = n - 21; i < 9; i++) {
            frac *= 10;
        }
    }

    /* days since the epoch, from the civil date (March-based years) */
    y -= mo <= 2;
    doy = (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1;
    days = (y / 400) * 146097 + (y % 400) * 365 + (y % 400) / 4
           - (y % 400) / 100 + doy - 719468;

    secs = days * 86400 + h * 3600 + mi * 60 + sec;

    if (secs > (UINT64_MAX - frac) / 1000000000) {
        return -1;
    }

    *ns = secs * 1000000000 + frac;

    return 0;
}


static int
rf_jrec_id(const rf_str_t *s, rf_str_t *source, uint64_t *sseq)
{
    size_t    i, colon;
    uint64_t  n;

    for (colon = s->len; colon > 0; colon--) {
        if (s->data[colon - 1] == ':') {
            break;
        }
    }

    if (colon == 0 || colon == s->len) {
        return -1;
    }

    n = 0;

    for (i = colon; i < s->len; i++) {
        if (!rf_json_digit(s->data[i])
            || n > (UINT64_MAX - (s->data[i] - '0')) / 10)
        {
            return -1;
        }

        n = n * 10 + (s->data[i] - '0');
    }

    source->data = s->data;
    source->len = colon - 1;
    *sseq = n;

    return 0;
}
