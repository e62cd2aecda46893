/*
 * Copyright (C) ReplayForge contributors
 *
 * What a bucket knows about its sources and consumers, the rates and
 * their hour of history (one value per RELAY_HISTORY_STEP_S), and the
 * bucket's object of GET /v1/stats as docs/relay.md shows it.
 */

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rf_log.h"
#include "relay_bucket_int.h"


#define RELAY_STEP_MS           (RELAY_HISTORY_STEP_S * 1000)


static uint32_t relay_bucket_hash(const unsigned char *p, size_t len);
static int relay_bucket_sources_grow(relay_bucket_t *b);
static void relay_bucket_history_push(relay_bucket_t *b, double in,
    double out);
static int relay_bucket_num(rf_buf_t *out, double v);
static int relay_bucket_age(rf_buf_t *out, uint64_t now_ms, uint64_t ms);
static int relay_bucket_history_json(relay_bucket_t *b, rf_buf_t *out);
static int relay_bucket_consumers_json(relay_bucket_t *b, rf_buf_t *out,
    uint64_t now_ms);
static int relay_bucket_sources_json(relay_bucket_t *b, rf_buf_t *out,
    uint64_t now_ms);


/*
 * The writer thread looks sources up without the lock (it is the only
 * one that adds them) and takes it to add one, because the stats walk
 * the table under it.
 */

relay_source_t *
relay_bucket_source(relay_bucket_t *b, const rf_str_t *id, int create)
{
    uint32_t         h;
    relay_source_t  *s;

    s = b->cache;

    if (s != NULL && s->len == id->len
        && memcmp(s->id, id->data, id->len) == 0)
    {
        return s;
    }

    h = relay_bucket_hash(id->data, id->len);

    if (b->sources_size > 0) {
        for (s = b->sources[h & (b->sources_size - 1)]; s != NULL;
             s = s->next)
        {
            if (s->hash == h && s->len == id->len
                && memcmp(s->id, id->data, id->len) == 0)
            {
                b->cache = s;
                return s;
            }
        }
    }

    if (!create) {
        return NULL;
    }

    s = calloc(1, sizeof(relay_source_t) + id->len);
    if (s == NULL) {
        return NULL;
    }

    s->hash = h;
    s->len = id->len;
    memcpy(s->id, id->data, id->len);

    pthread_mutex_lock(&b->lock);

    if (b->nsources >= b->sources_size && relay_bucket_sources_grow(b) != 0)
    {
        pthread_mutex_unlock(&b->lock);
        free(s);
        return NULL;
    }

    s->next = b->sources[h & (b->sources_size - 1)];
    b->sources[h & (b->sources_size - 1)] = s;
    b->nsources++;

    pthread_mutex_unlock(&b->lock);

    b->cache = s;

    return s;
}


static int
relay_bucket_sources_grow(relay_bucket_t *b)
{
    size_t           size, i;
    relay_source_t **t, *s, *next;

    size = b->sources_size ? b->sources_size * 2 : 64;

    t = calloc(size, sizeof(relay_source_t *));
    if (t == NULL) {
        return -1;
    }

    for (i = 0; i < b->sources_size; i++) {
        for (s = b->sources[i]; s != NULL; s = next) {
            next = s->next;
            s->next = t[s->hash & (size - 1)];
            t[s->hash & (size - 1)] = s;
        }
    }

    free(b->sources);
    b->sources = t;
    b->sources_size = size;

    return 0;
}


void
relay_bucket_sources_free(relay_bucket_t *b)
{
    size_t           i;
    relay_source_t  *s, *next;

    for (i = 0; i < b->sources_size; i++) {
        for (s = b->sources[i]; s != NULL; s = next) {
            next = s->next;
            free(s);
        }
    }

    free(b->sources);
    b->sources = NULL;
    b->sources_size = 0;
    b->nsources = 0;
    b->cache = NULL;
}


/* under b->lock */

relay_consumer_t *
relay_bucket_consumer(relay_bucket_t *b, const char *name, int create)
{
    size_t             i, cap;
    relay_consumer_t  *c, **a;

    for (i = 0; i < b->nconsumers; i++) {
        if (strcmp(b->consumers[i]->name, name) == 0) {
            return b->consumers[i];
        }
    }

    if (!create) {
        return NULL;
    }

    if (b->nconsumers == b->consumers_cap) {
        cap = b->consumers_cap ? b->consumers_cap * 2 : 8;

        a = realloc(b->consumers, cap * sizeof(relay_consumer_t *));
        if (a == NULL) {
            return NULL;
        }

        b->consumers = a;
        b->consumers_cap = cap;
    }

    c = calloc(1, sizeof(relay_consumer_t));
    if (c == NULL) {
        return NULL;
    }

    snprintf(c->name, sizeof(c->name), "%s", name);
    c->dirty = 1;

    b->consumers[b->nconsumers++] = c;

    return c;
}


/*
 * Under b->lock: the lowest committed cursor of the declared consumers or
 * of all of them; *any says whether there was one.  0 when none.
 */

uint64_t
relay_bucket_min_cursor(relay_bucket_t *b, int declared_only, int *any)
{
    size_t    i;
    uint64_t  min;

    *any = 0;
    min = 0;

    for (i = 0; i < b->nconsumers; i++) {
        if (declared_only && !b->consumers[i]->declared) {
            continue;
        }

        if (!*any || b->consumers[i]->cursor < min) {
            min = b->consumers[i]->cursor;
        }

        *any = 1;
    }

    return min;
}


/* under b->lock: close the step when RELAY_HISTORY_STEP_S went by */

void
relay_bucket_rates(relay_bucket_t *b, uint64_t now_ms)
{
    size_t           i, k;
    uint64_t         el;
    relay_source_t  *s;

    if (b->step_ms == 0 || now_ms < b->step_ms) {
        el = 0;
        k = 0;

    } else {
        el = now_ms - b->step_ms;
        k = el / RELAY_STEP_MS;

        if (k == 0) {
            return;
        }
    }

    if (k > 0) {
        b->rate_in = (double) (b->meta.in_records - b->step_in) * 1000.0
                     / (double) el;
        b->rate_out = (double) (b->meta.out_records - b->step_out) * 1000.0
                      / (double) el;

        /* a late tick: each step it missed gets the average */

        for (i = 0; i < k && i < RELAY_HISTORY_LEN; i++) {
            relay_bucket_history_push(b, b->rate_in, b->rate_out);
        }
    }

    for (i = 0; i < b->sources_size; i++) {
        for (s = b->sources[i]; s != NULL; s = s->next) {
            if (k > 0) {
                s->rate_in = (double) (s->c.records - s->step_records)
                             * 1000.0 / (double) el;
            }

            s->step_records = s->c.records;
        }
    }

    b->step_ms = now_ms;
    b->step_in = b->meta.in_records;
    b->step_out = b->meta.out_records;
}


static void
relay_bucket_history_push(relay_bucket_t *b, double in, double out)
{
    b->hist_in[b->hist_pos] = (float) in;
    b->hist_out[b->hist_pos] = (float) out;
    b->hist_pos = (b->hist_pos + 1) % RELAY_HISTORY_LEN;

    if (b->hist_len < RELAY_HISTORY_LEN) {
        b->hist_len++;
    }
}


int
relay_bucket_stats_json(relay_bucket_t *b, rf_buf_t *out)
{
    int                         rc;
    uint64_t                    now, db, wal, ttl;
    const relay_bucket_conf_t  *conf;

    now = relay_bucket_now_ms();

    if (rf_sqlite_file_sizes(b->path, &db, &wal) != 0) {
        db = 0;
        wal = 0;
    }

    pthread_mutex_lock(&b->lock);

    conf = b->conf;
    ttl = conf->ttl;

    rc = rf_buf_adds(out, "{\"name\":");
    rc |= rf_json_str(out, (const unsigned char *) conf->name,
                      strlen(conf->name));
    rc |= rf_buf_printf(out, ",\"records\":%" PRIu64 ",\"bytes\":%" PRIu64
                        ",\"file_bytes\":%" PRIu64 ",\"max_size\":%" PRIu64
                        ",\"ttl_s\":", b->meta.records, b->meta.bytes,
                        db + wal, conf->max_size);

    if (ttl % 1000 == 0) {
        rc |= rf_buf_printf(out, "%" PRIu64, ttl / 1000);

    } else {
        rc |= relay_bucket_num(out, (double) ttl / 1000.0);
    }

    rc |= rf_buf_printf(out, ",\"overflow\":\"%s\",\"first_seq\":%" PRIu64
                        ",\"last_seq\":%" PRIu64 ",\"oldest_age_s\":",
                        conf->overflow == RELAY_OVERFLOW_REJECT
                        ? "reject" : "drop_oldest",
                        b->first_seq, b->meta.last_seq);
    rc |= relay_bucket_age(out, now, b->first_seq ? b->oldest_ms : 0);

    rc |= rf_buf_printf(out, ",\"in_records\":%" PRIu64 ",\"in_bytes\":%"
                        PRIu64 ",\"out_records\":%" PRIu64 ",\"out_bytes\":%"
                        PRIu64 ",\"duplicates\":%" PRIu64 ",\"rejected\":%"
                        PRIu64 ",\"dropped_ttl\":%" PRIu64
                        ",\"dropped_size\":%" PRIu64 ",\"dropped_unread\":%"
                        PRIu64 ",\"deleted_acked\":%" PRIu64 ",\"rate_in\":",
                        b->meta.in_records, b->meta.in_bytes,
                        b->meta.out_records, b->meta.out_bytes,
                        b->meta.duplicates, b->meta.rejected,
                        b->meta.dropped_ttl, b->meta.dropped_size,
                        b->meta.dropped_unread, b->meta.deleted_acked);
    rc |= relay_bucket_num(out, b->rate_in);
    rc |= rf_buf_adds(out, ",\"rate_out\":");
    rc |= relay_bucket_num(out, b->rate_out);
    rc |= relay_bucket_history_json(b, out);
    rc |= relay_bucket_consumers_json(b, out, now);
    rc |= relay_bucket_sources_json(b, out, now);
    rc |= rf_buf_addc(out, '}');

    pthread_mutex_unlock(&b->lock);

    if (rc != 0) {
        errno = ENOMEM;
        return -1;
    }

    return 0;
}


static int
relay_bucket_history_json(relay_bucket_t *b, rf_buf_t *out)
{
    int     rc, k;
    size_t  i, pos;

    rc = rf_buf_printf(out, ",\"history\":{\"step_s\":%d",
                       RELAY_HISTORY_STEP_S);

    for (k = 0; k < 2; k++) {
        rc |= rf_buf_adds(out, k == 0 ? ",\"in\":[" : ",\"out\":[");

        /* oldest first */

        pos = (b->hist_pos + RELAY_HISTORY_LEN - b->hist_len)
              % RELAY_HISTORY_LEN;

        for (i = 0; i < b->hist_len; i++) {
            if (i > 0) {
                rc |= rf_buf_addc(out, ',');
            }

            rc |= relay_bucket_num(out, k == 0 ? b->hist_in[pos]
                                               : b->hist_out[pos]);
            pos = (pos + 1) % RELAY_HISTORY_LEN;
        }

        rc |= rf_buf_addc(out, ']');
    }

    rc |= rf_buf_addc(out, '}');

    return rc;
}


static int
relay_bucket_consumers_json(relay_bucket_t *b, rf_buf_t *out,
    uint64_t now_ms)
{
    int                rc;
    size_t             i;
    relay_consumer_t  *c;

    rc = rf_buf_adds(out, ",\"consumers\":[");

    for (i = 0; i < b->nconsumers; i++) {
        c = b->consumers[i];

        rc |= rf_buf_adds(out, i ? ",{\"name\":" : "{\"name\":");
        rc |= rf_json_str(out, (const unsigned char *) c->name,
                          strlen(c->name));
        rc |= rf_buf_printf(out, ",\"declared\":%s,\"cursor\":%" PRIu64
                            ",\"lag\":%" PRIu64 ",\"last_seen_age_s\":",
                            c->declared ? "true" : "false", c->cursor,
                            b->meta.last_seq > c->cursor
                            ? b->meta.last_seq - c->cursor : 0);
        rc |= relay_bucket_age(out, now_ms, c->last_ms);
        rc |= rf_buf_addc(out, '}');
    }

    rc |= rf_buf_addc(out, ']');

    return rc;
}


static int
relay_bucket_sources_json(relay_bucket_t *b, rf_buf_t *out, uint64_t now_ms)
{
    int              rc, first;
    size_t           i;
    relay_source_t  *s;

    rc = rf_buf_adds(out, ",\"sources\":[");
    first = 1;

    for (i = 0; i < b->sources_size; i++) {
        for (s = b->sources[i]; s != NULL; s = s->next) {
            if (!s->committed) {
                continue;
            }

            rc |= rf_buf_adds(out, first ? "{\"id\":" : ",{\"id\":");
            rc |= rf_json_str(out, s->id, s->len);
            rc |= rf_buf_printf(out, ",\"records\":%" PRIu64 ",\"max_sseq\":%"
                                PRIu64 ",\"duplicates\":%" PRIu64
                                ",\"last_seen_age_s\":", s->c.records,
                                s->c.max_sseq, s->c.duplicates);
            rc |= relay_bucket_age(out, now_ms, s->c.last_ms);
            rc |= rf_buf_adds(out, ",\"rate_in\":");
            rc |= relay_bucket_num(out, s->rate_in);
            rc |= rf_buf_addc(out, '}');
            first = 0;
        }
    }

    rc |= rf_buf_addc(out, ']');

    return rc;
}


/* a JSON number with at most two decimals, no trailing zeros */

static int
relay_bucket_num(rf_buf_t *out, double v)
{
    int   n;
    char  buf[64];

    if (!(v == v) || v < 0 || v > 1e15) {
        v = 0;
    }

    n = snprintf(buf, sizeof(buf), "%.2f", v);

    while (n > 0 && buf[n - 1] == '0') {
        n--;
    }

    if (n > 0 && buf[n - 1] == '.') {
        n--;
    }

    return rf_buf_add(out, buf, (size_t) n);
}


/* seconds since ms, or null for never */

static int
relay_bucket_age(rf_buf_t *out, uint64_t now_ms, uint64_t ms)
{
    if (ms == 0) {
        return rf_buf_adds(out, "null");
    }

    return relay_bucket_num(out, now_ms > ms
                                 ? (double) (now_ms - ms) / 1000.0 : 0.0);
}


uint64_t
relay_bucket_now_ms(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_REALTIME, &ts);

    return (uint64_t) ts.tv_sec * 1000 + (uint64_t) ts.tv_nsec / 1000000;
}


/* FNV-1a */

static uint32_t
relay_bucket_hash(const unsigned char *p, size_t len)
{
    size_t    i;
    uint32_t  h;

    h = 2166136261u;

    for (i = 0; i < len; i++) {
        h ^= p[i];
        h *= 16777619u;
    }

    return h;
}
