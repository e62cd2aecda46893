/*
 * Copyright (C) ReplayForge contributors
 *
 * Record codec: the builder the capture writes with (straight into the
 * ring), the bounds-checked zero-copy reader every later hop uses, and the
 * JSON view.  The layout is described in rf_record.h.
 */

#include <errno.h>
#include <string.h>
#include <time.h>

#include "rf_crc32c.h"
#include "rf_record.h"


static void rf_put16(unsigned char *p, uint16_t v);
static void rf_put32(unsigned char *p, uint32_t v);
static void rf_put64(unsigned char *p, uint64_t v);
static uint16_t rf_get16(const unsigned char *p);
static uint32_t rf_get32(const unsigned char *p);
static uint64_t rf_get64(const unsigned char *p);
static int rf_json_key_str(rf_buf_t *b, const char *key, const rf_str_t *s);
static int rf_json_http(const rf_rec_t *rec, rf_buf_t *b);
static int rf_json_other(const rf_rec_t *rec, rf_buf_t *b);
static int rf_json_body(rf_buf_t *b, const char *key, const rf_str_t *s);
static int rf_rec_parse_(rf_rec_t *rec, const unsigned char *buf, size_t len,
    int crc, const char **err);


static const char  *rf_kind_names[RF_KIND_MAX] = {
    "unknown", "http", "tcp", "line", "exec", "pg"
};


/* JSON keys of the simple string fields, for the non-http kinds */
static const char  *rf_field_keys[RF_F_MAX] = {
    [RF_F_SESSION] = "session",
    [RF_F_DIR] = "dir",
    [RF_F_EVENT] = "event",
    [RF_F_CLIENT] = "client",
    [RF_F_SERVER] = "server",
    [RF_F_PATH] = "path",
    [RF_F_LINE] = "line",
    [RF_F_COMMAND] = "command",
    [RF_F_OUTPUT] = "output",
    [RF_F_QUERY] = "query",
    [RF_F_ROWS] = "rows",
};


static void
rf_put16(unsigned char *p, uint16_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
}


static void
rf_put32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char) v;
    p[1] = (unsigned char) (v >> 8);
    p[2] = (unsigned char) (v >> 16);
    p[3] = (unsigned char) (v >> 24);
}


static void
rf_put64(unsigned char *p, uint64_t v)
{
    rf_put32(p, (uint32_t) v);
    rf_put32(p + 4, (uint32_t) (v >> 32));
}


static uint16_t
rf_get16(const unsigned char *p)
{
    return (uint16_t) (p[0] | p[1] << 8);
}


static uint32_t
rf_get32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16
           | (uint32_t) p[3] << 24;
}


static uint64_t
rf_get64(const unsigned char *p)
{
    return (uint64_t) rf_get32(p) | (uint64_t) rf_get32(p + 4) << 32;
}


void
rf_rec_begin(rf_rec_builder_t *b, unsigned char *buf, size_t cap,
    unsigned kind, uint64_t time_ns)
{
    b->start = buf;
    b->end = buf + cap;
    b->overflow = 0;

    if (cap < RF_REC_HDR_SIZE) {
        b->p = buf;
        b->overflow = 1;
        return;
    }

    memset(buf, 0, RF_REC_HDR_SIZE);
    buf[16] = RF_REC_VERSION;
    buf[17] = (unsigned char) kind;
    rf_put64(buf + 32, time_ns);

    b->p = buf + RF_REC_HDR_SIZE;
}


void
rf_rec_add(rf_rec_builder_t *b, unsigned id, const void *data, size_t len)
{
    if (b->overflow
        || len > RF_REC_MAX_SIZE
        || (size_t) (b->end - b->p) < RF_REC_FIELD_SIZE(len))
    {
        b->overflow = 1;
        return;
    }

    rf_put16(b->p, (uint16_t) id);
    rf_put32(b->p + 2, (uint32_t) len);

    if (len) {
        memcpy(b->p + RF_REC_FIELD_HDR, data, len);
    }

    b->p += RF_REC_FIELD_SIZE(len);
}


void
rf_rec_add_u64(rf_rec_builder_t *b, unsigned id, uint64_t v)
{
    unsigned char  buf[8];

    rf_put64(buf, v);
    rf_rec_add(b, id, buf, 8);
}


void
rf_rec_add_header(rf_rec_builder_t *b, const void *name, size_t nlen,
    const void *value, size_t vlen)
{
    size_t  len;

    len = 4 + nlen + vlen;

    if (b->overflow
        || nlen > RF_REC_MAX_SIZE || vlen > RF_REC_MAX_SIZE
        || (size_t) (b->end - b->p) < RF_REC_FIELD_SIZE(len))
    {
        b->overflow = 1;
        return;
    }

    rf_put16(b->p, RF_F_HEADER);
    rf_put32(b->p + 2, (uint32_t) len);
    rf_put32(b->p + RF_REC_FIELD_HDR, (uint32_t) nlen);

    if (nlen) {
        memcpy(b->p + RF_REC_FIELD_HDR + 4, name, nlen);
    }

    if (vlen) {
        memcpy(b->p + RF_REC_FIELD_HDR + 4 + nlen, value, vlen);
    }

    b->p += RF_REC_FIELD_SIZE(len);
}


void
rf_rec_set_flags(rf_rec_builder_t *b, unsigned flags)
{
    if (!b->overflow) {
        rf_put16(b->start + 18, (uint16_t) flags);
    }
}


void
rf_rec_set_sseq(rf_rec_builder_t *b, uint64_t sseq)
{
    if (!b->overflow) {
        rf_put64(b->start + 24, sseq);
    }
}


size_t
rf_rec_finish(rf_rec_builder_t *b)
{
    size_t  len;

    len = b->p - b->start;

    if (b->overflow || len > RF_REC_MAX_SIZE) {
        return 0;
    }

    rf_put32(b->start, (uint32_t) len);
    rf_rec_seal(b->start);

    return len;
}


void
rf_rec_seal(unsigned char *buf)
{
    uint32_t  len;

    len = rf_get32(buf);
    rf_put32(buf + 4, rf_crc32c(0, buf + 16, len - 16));
}


void
rf_rec_set_rseq(unsigned char *buf, uint64_t rseq)
{
    rf_put64(buf + 8, rseq);
}


#define rf_http_str_size(s)  ((s).len ? RF_REC_FIELD_SIZE((s).len) : 0)

size_t
rf_http_size(const rf_http_t *h)
{
    size_t  n, i;

    n = RF_REC_HDR_SIZE
        + rf_http_str_size(h->bucket)
        + rf_http_str_size(h->method)
        + rf_http_str_size(h->uri)
        + rf_http_str_size(h->version)
        + rf_http_str_size(h->scheme)
        + rf_http_str_size(h->host)
        + rf_http_str_size(h->client)
        + rf_http_str_size(h->server)
        + RF_REC_FIELD_SIZE(h->body.len)
        + rf_http_str_size(h->upstream)
        + rf_http_str_size(h->request_id)
        + 4 * RF_REC_U64_SIZE;

    for (i = 0; i < h->nheaders; i++) {
        n += RF_REC_HEADER_SIZE(h->headers[i].name.len,
                                h->headers[i].value.len);
    }

    return n;
}


#define rf_http_add_str(b, id, s)                                           \
    if ((s).len) {                                                          \
        rf_rec_add(b, id, (s).data, (s).len);                               \
    }

size_t
rf_http_encode(const rf_http_t *h, unsigned char *buf, size_t cap)
{
    size_t             i;
    rf_rec_builder_t   b;
    const rf_header_t *hd;

    rf_rec_begin(&b, buf, cap, RF_KIND_HTTP, h->time_ns);

    rf_http_add_str(&b, RF_F_BUCKET, h->bucket);
    rf_http_add_str(&b, RF_F_METHOD, h->method);
    rf_http_add_str(&b, RF_F_URI, h->uri);
    rf_http_add_str(&b, RF_F_VERSION, h->version);
    rf_http_add_str(&b, RF_F_SCHEME, h->scheme);
    rf_http_add_str(&b, RF_F_HOST, h->host);
    rf_http_add_str(&b, RF_F_CLIENT, h->client);
    rf_http_add_str(&b, RF_F_SERVER, h->server);

    for (i = 0; i < h->nheaders; i++) {
        hd = &h->headers[i];
        rf_rec_add_header(&b, hd->name.data, hd->name.len,
                          hd->value.data, hd->value.len);
    }

    rf_rec_add(&b, RF_F_BODY, h->body.data, h->body.len);
    rf_rec_add_u64(&b, RF_F_BODY_SIZE, h->body_size);
    rf_rec_add_u64(&b, RF_F_STATUS, h->status);
    rf_rec_add_u64(&b, RF_F_BYTES_SENT, h->bytes_sent);
    rf_rec_add_u64(&b, RF_F_DURATION_US, h->duration_us);
    rf_http_add_str(&b, RF_F_UPSTREAM, h->upstream);
    rf_http_add_str(&b, RF_F_REQUEST_ID, h->request_id);

    if (h->body_truncated) {
        rf_rec_set_flags(&b, RF_REC_F_BODY_TRUNCATED);
    }

    return rf_rec_finish(&b);
}


uint32_t
rf_rec_peek_len(const unsigned char *buf, size_t avail)
{
    return avail < 4 ? 0 : rf_get32(buf);
}


int
rf_rec_parse(rf_rec_t *rec, const unsigned char *buf, size_t len,
    const char **err)
{
    return rf_rec_parse_(rec, buf, len, 1, err);
}


int
rf_rec_parse_sealed(rf_rec_t *rec, const unsigned char *buf, size_t len,
    const char **err)
{
    return rf_rec_parse_(rec, buf, len, 0, err);
}


static int
rf_rec_parse_(rf_rec_t *rec, const unsigned char *buf, size_t len, int crc,
    const char **err)
{
    size_t    off, flen;
    uint32_t  rlen;

    if (len < RF_REC_HDR_SIZE) {
        *err = "record shorter than its header";
        return -1;
    }

    rlen = rf_get32(buf);

    if (rlen != len) {
        *err = "record length does not match its frame";
        return -1;
    }

    if (rlen > RF_REC_MAX_SIZE) {
        *err = "record too large";
        return -1;
    }

    if (buf[16] != RF_REC_VERSION) {
        *err = "unsupported record version";
        return -1;
    }

    if (buf[17] == 0 || buf[17] >= RF_KIND_MAX) {
        *err = "unknown record kind";
        return -1;
    }

    if (crc && rf_get32(buf + 4) != rf_crc32c(0, buf + 16, rlen - 16)) {
        *err = "record checksum mismatch";
        return -1;
    }

    for (off = RF_REC_HDR_SIZE; off < rlen; off += RF_REC_FIELD_HDR + flen) {
        if (rlen - off < RF_REC_FIELD_HDR) {
            *err = "truncated field header";
            return -1;
        }

        flen = rf_get32(buf + off + 2);

        if (flen > rlen - off - RF_REC_FIELD_HDR) {
            *err = "field overruns the record";
            return -1;
        }

        if (rf_get16(buf + off) == RF_F_HEADER
            && (flen < 4 || rf_get32(buf + off + RF_REC_FIELD_HDR) > flen - 4))
        {
            *err = "malformed header field";
            return -1;
        }
    }

    rec->buf = buf;
    rec->len = rlen;
    rec->version = buf[16];
    rec->kind = buf[17];
    rec->flags = rf_get16(buf + 18);
    rec->rseq = rf_get64(buf + 8);
    rec->sseq = rf_get64(buf + 24);
    rec->time_ns = rf_get64(buf + 32);

    return 0;
}


int
rf_rec_next_field(const rf_rec_t *rec, size_t *off, rf_field_t *f)
{
    size_t  o, flen;

    o = *off ? *off : RF_REC_HDR_SIZE;

    /* bounds were checked by rf_rec_parse; check again, cheaply */
    if (o + RF_REC_FIELD_HDR > rec->len) {
        return 0;
    }

    flen = rf_get32(rec->buf + o + 2);

    if (flen > rec->len - o - RF_REC_FIELD_HDR) {
        return 0;
    }

    f->id = rf_get16(rec->buf + o);
    f->val.data = rec->buf + o + RF_REC_FIELD_HDR;
    f->val.len = flen;

    *off = o + RF_REC_FIELD_HDR + flen;

    return 1;
}


int
rf_rec_field(const rf_rec_t *rec, unsigned id, rf_str_t *val)
{
    size_t      off;
    rf_field_t  f;

    off = 0;

    while (rf_rec_next_field(rec, &off, &f)) {
        if (f.id == id) {
            *val = f.val;
            return 0;
        }
    }

    return -1;
}


int
rf_rec_field_u64(const rf_rec_t *rec, unsigned id, uint64_t *v)
{
    rf_str_t  s;

    if (rf_rec_field(rec, id, &s) == -1 || s.len != 8) {
        return -1;
    }

    *v = rf_get64(s.data);

    return 0;
}


int
rf_rec_header_split(const rf_str_t *field, rf_str_t *name, rf_str_t *value)
{
    uint32_t  nlen;

    if (field->len < 4) {
        return -1;
    }

    nlen = rf_get32(field->data);

    if (nlen > field->len - 4) {
        return -1;
    }

    name->data = field->data + 4;
    name->len = nlen;
    value->data = field->data + 4 + nlen;
    value->len = field->len - 4 - nlen;

    return 0;
}


size_t
rf_rec_stamp(const rf_rec_t *rec, uint64_t sseq, const rf_str_t *source,
    unsigned char *out, size_t cap)
{
    size_t  len;

    len = (size_t) rec->len + RF_REC_FIELD_SIZE(source->len);

    if (len > cap || len > RF_REC_MAX_SIZE) {
        return 0;
    }

    memcpy(out, rec->buf, rec->len);

    rf_put16(out + rec->len, RF_F_SOURCE);
    rf_put32(out + rec->len + 2, (uint32_t) source->len);
    memcpy(out + rec->len + RF_REC_FIELD_HDR, source->data, source->len);

    rf_put32(out, (uint32_t) len);
    rf_put64(out + 24, sseq);
    rf_rec_seal(out);

    return len;
}


const char *
rf_kind_name(unsigned kind)
{
    return kind < RF_KIND_MAX ? rf_kind_names[kind] : "unknown";
}


const char *
rf_field_key(unsigned id)
{
    return id < RF_F_MAX ? rf_field_keys[id] : NULL;
}


static int
rf_json_key_str(rf_buf_t *b, const char *key, const rf_str_t *s)
{
    if (rf_buf_printf(b, ",\"%s\":", key) == -1) {
        return -1;
    }

    return rf_json_str(b, s->data, s->len);
}


static int
rf_json_body(rf_buf_t *b, const char *key, const rf_str_t *s)
{
    if (rf_utf8_valid(s->data, s->len)) {
        return rf_json_key_str(b, key, s);
    }

    if (rf_buf_printf(b, ",\"%s_b64\":", key) == -1) {
        return -1;
    }

    return rf_json_base64(b, s->data, s->len);
}


/*
 * The http view keeps the field order of DESIGN §3 whatever order the
 * fields were written in, so the view is stable for consumers that diff.
 */
static int
rf_json_http(const rf_rec_t *rec, rf_buf_t *b)
{
    int         first, rc;
    size_t      off;
    uint64_t    v;
    rf_str_t    s, name, value;
    rf_field_t  f;

    static const struct {
        unsigned     id;
        const char  *key;
    } strs[] = {
        { RF_F_METHOD, "method" }, { RF_F_URI, "uri" },
        { RF_F_VERSION, "version" }, { RF_F_SCHEME, "scheme" },
        { RF_F_HOST, "host" }, { RF_F_CLIENT, "client" },
        { RF_F_SERVER, "server" }
    };

    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
        if (rf_rec_field(rec, strs[i].id, &s) == 0
            && rf_json_key_str(b, strs[i].key, &s) == -1)
        {
            return -1;
        }
    }

    if (rf_buf_adds(b, ",\"headers\":[") == -1) {
        return -1;
    }

    first = 1;
    off = 0;

    while (rf_rec_next_field(rec, &off, &f)) {
        if (f.id != RF_F_HEADER
            || rf_rec_header_split(&f.val, &name, &value) == -1)
        {
            continue;
        }

        rc = rf_buf_adds(b, first ? "[" : ",[");
        rc |= rf_json_str(b, name.data, name.len);
        rc |= rf_buf_addc(b, ',');
        rc |= rf_json_str(b, value.data, value.len);
        rc |= rf_buf_addc(b, ']');

        if (rc != 0) {
            return -1;
        }

        first = 0;
    }

    if (rf_buf_addc(b, ']') == -1) {
        return -1;
    }

    if (rf_rec_field(rec, RF_F_BODY, &s) == -1) {
        s.data = (const unsigned char *) "";
        s.len = 0;
    }

    if (rf_json_body(b, "body", &s) == -1) {
        return -1;
    }

    if (rf_rec_field_u64(rec, RF_F_BODY_SIZE, &v) == -1) {
        v = s.len;
    }

    if (rf_buf_printf(b, ",\"body_size\":%llu,\"body_truncated\":%s",
                      (unsigned long long) v,
                      (rec->flags & RF_REC_F_BODY_TRUNCATED) ? "true" : "false")
        == -1)
    {
        return -1;
    }

    if (rf_rec_field_u64(rec, RF_F_STATUS, &v) == 0
        && rf_buf_printf(b, ",\"status\":%llu", (unsigned long long) v) == -1)
    {
        return -1;
    }

    if (rf_rec_field_u64(rec, RF_F_BYTES_SENT, &v) == 0
        && rf_buf_printf(b, ",\"bytes_sent\":%llu", (unsigned long long) v)
           == -1)
    {
        return -1;
    }

    if (rf_rec_field_u64(rec, RF_F_DURATION_US, &v) == 0
        && rf_buf_printf(b, ",\"duration_ms\":%llu.%03llu",
                         (unsigned long long) (v / 1000),
                         (unsigned long long) (v % 1000)) == -1)
    {
        return -1;
    }

    if (rf_rec_field(rec, RF_F_UPSTREAM, &s) == 0
        && rf_json_key_str(b, "upstream", &s) == -1)
    {
        return -1;
    }

    if (rf_rec_field(rec, RF_F_REQUEST_ID, &s) == 0
        && rf_json_key_str(b, "request_id", &s) == -1)
    {
        return -1;
    }

    return 0;
}


static int
rf_json_other(const rf_rec_t *rec, rf_buf_t *b)
{
    size_t      off;
    rf_field_t  f;

    off = 0;

    while (rf_rec_next_field(rec, &off, &f)) {

        switch (f.id) {

        case RF_F_DATA:
            if (rf_json_body(b, "data", &f.val) == -1) {
                return -1;
            }
            break;

        case RF_F_OFFSET_NS:
        case RF_F_EXIT:
            if (f.val.len == 8
                && rf_buf_printf(b, ",\"%s\":%llu",
                                 f.id == RF_F_EXIT ? "exit" : "offset_ns",
                                 (unsigned long long) rf_get64(f.val.data))
                   == -1)
            {
                return -1;
            }
            break;

        default:
            if (f.id < RF_F_MAX && rf_field_keys[f.id]
                && rf_json_key_str(b, rf_field_keys[f.id], &f.val) == -1)
            {
                return -1;
            }
        }
    }

    return 0;
}


int
rf_rec_to_json(const rf_rec_t *rec, rf_buf_t *b)
{
    char        ts[64];
    size_t      save;
    time_t      sec;
    struct tm   tm;
    rf_str_t    source, bucket;

    static const rf_str_t  dflt = rf_string("default");

    save = b->len;

    if (rf_rec_field(rec, RF_F_SOURCE, &source) == -1) {
        source.data = (const unsigned char *) "";
        source.len = 0;
    }

    if (rf_rec_field(rec, RF_F_BUCKET, &bucket) == -1) {
        bucket = dflt;
    }

    sec = (time_t) (rec->time_ns / 1000000000);
    gmtime_r(&sec, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    /* the id is "source:sseq" */
    if (rf_buf_adds(b, "{\"id\":\"") == -1
        || rf_json_escape(b, source.data, source.len) == -1
        || rf_buf_printf(b, ":%llu\"", (unsigned long long) rec->sseq) == -1)
    {
        goto nomem;
    }

    if (rec->rseq
        && rf_buf_printf(b, ",\"seq\":%llu", (unsigned long long) rec->rseq)
           == -1)
    {
        goto nomem;
    }

    if (rf_buf_printf(b, ",\"kind\":\"%s\"", rf_kind_name(rec->kind)) == -1
        || rf_json_key_str(b, "source", &source) == -1
        || rf_json_key_str(b, "bucket", &bucket) == -1
        || rf_buf_printf(b, ",\"ts\":\"%s.%06lluZ\"", ts,
                         (unsigned long long) (rec->time_ns % 1000000000)
                         / 1000) == -1)
    {
        goto nomem;
    }

    if (rec->kind == RF_KIND_HTTP) {
        if (rf_json_http(rec, b) == -1) {
            goto nomem;
        }

    } else if (rf_json_other(rec, b) == -1) {
        goto nomem;
    }

    if (rf_buf_adds(b, "}\n") == -1) {
        goto nomem;
    }

    return 0;

nomem:

    b->len = save;
    errno = ENOMEM;

    return -1;
}
