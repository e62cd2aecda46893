/*
 * Copyright (C) ReplayForge contributors
 *
 * What rf-relayd shows about itself and the systems around it: the
 * heartbeats of spools and players (the latest one per id, kept in
 * memory, bounded in number and size), GET /v1/stats as JSON and
 * GET /metrics in Prometheus' text format.
 */

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_json.h"
#include "rf_log.h"
#include "relayd.h"


#define RELAY_SYSTEMS_MAX       1024
#define RELAY_SYSTEM_STATS_MAX  (16 * 1024)
#define RELAY_SYSTEM_FIELD_MAX  256
#define RELAY_SYSTEM_FORGET_MS  (24 * 3600 * 1000)


typedef struct {
    char                       *id;
    char                       *role;
    char                       *host;
    char                       *version;
    char                       *stats;      /* a JSON object, as sent */
    char                        addr[64];
    uint64_t                    interval_s;
    uint64_t                    last_ms;
} relay_system_t;


typedef struct {
    const char                 *name;
    const char                 *type;       /* counter | gauge */
    const char                 *help;
    size_t                      offset;     /* in relay_bucket_counters_t */
} relay_metric_t;


static int relay_stats_field(const rf_json_t *root, const char *key,
    int required, char **out, char *err, size_t errlen);
static int relay_stats_write(const rf_json_t *v, rf_buf_t *out);
static int relay_stats_systems(rf_buf_t *out, uint64_t now);
static void relay_system_free(relay_system_t *s);


static pthread_mutex_t  relay_systems_lock = PTHREAD_MUTEX_INITIALIZER;
static relay_system_t   relay_systems[RELAY_SYSTEMS_MAX];
static size_t           relay_nsystems;


static const relay_metric_t  relay_metrics[] = {
    { "records", "gauge", "Records the bucket holds.",
      offsetof(relay_bucket_counters_t, records) },
    { "bytes", "gauge", "Bytes of the records the bucket holds.",
      offsetof(relay_bucket_counters_t, bytes) },
    { "file_bytes", "gauge", "Bytes of the bucket's file and its WAL.",
      offsetof(relay_bucket_counters_t, file_bytes) },
    { "last_seq", "gauge", "Highest sequence number assigned.",
      offsetof(relay_bucket_counters_t, last_seq) },
    { "in_records_total", "counter", "Records accepted.",
      offsetof(relay_bucket_counters_t, in_records) },
    { "in_bytes_total", "counter", "Bytes of records accepted.",
      offsetof(relay_bucket_counters_t, in_bytes) },
    { "out_records_total", "counter", "Records sent to readers.",
      offsetof(relay_bucket_counters_t, out_records) },
    { "out_bytes_total", "counter", "Bytes of records sent to readers.",
      offsetof(relay_bucket_counters_t, out_bytes) },
    { "duplicates_total", "counter", "Records dropped as duplicates.",
      offsetof(relay_bucket_counters_t, duplicates) },
    { "rejected_total", "counter", "Records refused because the bucket "
      "was full (507).", offsetof(relay_bucket_counters_t, rejected) },
    { "dropped_ttl_total", "counter", "Records deleted by ttl.",
      offsetof(relay_bucket_counters_t, dropped_ttl) },
    { "dropped_size_total", "counter", "Records deleted by max_size.",
      offsetof(relay_bucket_counters_t, dropped_size) },
    { "dropped_unread_total", "counter", "Records deleted before every "
      "consumer acked them.",
      offsetof(relay_bucket_counters_t, dropped_unread) },
    { "deleted_acked_total", "counter", "Records deleted after every "
      "declared consumer acked them.",
      offsetof(relay_bucket_counters_t, deleted_acked) },
    { NULL, NULL, NULL, 0 }
};


/*
 * {"id":..,"role":..,"host":..,"version":..,"interval_s":..,"stats":{..}}
 * id and role are required; stats must be an object.
 */
int
relay_stats_heartbeat(const char *body, size_t len, const char *addr,
    uint64_t now_ms, char *err, size_t errlen)
{
    size_t            i, slot, oldest;
    int64_t           interval;
    const char       *slash;
    const rf_json_t  *root, *stats;
    rf_json_doc_t    *doc;
    rf_buf_t          text;
    relay_system_t    s;

    memset(&s, 0, sizeof(relay_system_t));

    doc = rf_json_parse(body, len, err, errlen);
    if (doc == NULL) {
        return -1;
    }

    root = rf_json_root(doc);

    if (root->type != RF_JSON_OBJECT) {
        snprintf(err, errlen, "a heartbeat is a JSON object");
        goto failed;
    }

    if (relay_stats_field(root, "id", 1, &s.id, err, errlen) != 0
        || relay_stats_field(root, "role", 1, &s.role, err, errlen) != 0
        || relay_stats_field(root, "host", 0, &s.host, err, errlen) != 0
        || relay_stats_field(root, "version", 0, &s.version, err, errlen)
           != 0)
    {
        goto failed;
    }

    /* a name, or NAME/NAME: a player reports per bucket as ID/BUCKET */
    slash = strchr(s.id, '/');

    if (slash ? !rf_valid_name(s.id, (size_t) (slash - s.id))
                || !rf_valid_name(slash + 1, strlen(slash + 1))
              : !rf_valid_name(s.id, strlen(s.id)))
    {
        snprintf(err, errlen, "invalid \"id\": a name or NAME/NAME, names "
                 "of 1 to %d letters, digits, \".\", \"_\" or \"-\"",
                 RELAY_NAME_MAX);
        goto failed;
    }

    if (rf_json_get_int(root, "interval_s", &interval) == 0) {
        s.interval_s = (interval > 0 && interval < 86400) ? interval : 0;
    }

    stats = rf_json_get(root, "stats");

    if (stats != NULL) {
        if (stats->type != RF_JSON_OBJECT) {
            snprintf(err, errlen, "\"stats\" must be an object");
            goto failed;
        }

        if (len > RELAY_SYSTEM_STATS_MAX) {
            snprintf(err, errlen, "the heartbeat is larger than %d bytes",
                     RELAY_SYSTEM_STATS_MAX);
            goto failed;
        }
    }

    if (stats != NULL) {
        rf_buf_init(&text);

        if (relay_stats_write(stats, &text) != 0
            || rf_buf_addc(&text, '\0') != 0)
        {
            rf_buf_free(&text);
            snprintf(err, errlen, "out of memory");
            goto failed;
        }

        s.stats = (char *) text.data;
    }

    rf_json_free(doc);
    doc = NULL;

    snprintf(s.addr, sizeof(s.addr), "%s", addr);
    s.last_ms = now_ms;

    pthread_mutex_lock(&relay_systems_lock);

    slot = relay_nsystems;
    oldest = 0;

    for (i = 0; i < relay_nsystems; i++) {
        if (strcmp(relay_systems[i].id, s.id) == 0) {
            slot = i;
            break;
        }

        if (relay_systems[i].last_ms < relay_systems[oldest].last_ms) {
            oldest = i;
        }
    }

    if (slot == RELAY_SYSTEMS_MAX) {
        /* full: the one silent for the longest makes room */
        slot = oldest;
    }

    if (slot < relay_nsystems) {
        relay_system_free(&relay_systems[slot]);

    } else {
        relay_nsystems++;
    }

    relay_systems[slot] = s;

    pthread_mutex_unlock(&relay_systems_lock);

    return 0;

failed:

    if (doc != NULL) {
        rf_json_free(doc);
    }

    relay_system_free(&s);

    return -1;
}


static int
relay_stats_field(const rf_json_t *root, const char *key, int required,
    char **out, char *err, size_t errlen)
{
    rf_str_t  v;

    if (rf_json_get_str(root, key, &v) != 0) {
        if (!required && rf_json_get(root, key) == NULL) {
            return 0;
        }

        snprintf(err, errlen, "\"%s\" must be a string", key);
        return -1;
    }

    if (v.len > RELAY_SYSTEM_FIELD_MAX || memchr(v.data, '\0', v.len)) {
        snprintf(err, errlen, "\"%s\" is too long or holds a NUL", key);
        return -1;
    }

    *out = strndup((const char *) v.data, v.len);
    if (*out == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    return 0;
}


/* a parsed value written back as JSON (depth bounded by the parser) */

static int
relay_stats_write(const rf_json_t *v, rf_buf_t *out)
{
    int               rc;
    const rf_json_t  *e;

    switch (v->type) {

    case RF_JSON_NULL:
        return rf_buf_adds(out, "null");

    case RF_JSON_FALSE:
        return rf_buf_adds(out, "false");

    case RF_JSON_TRUE:
        return rf_buf_adds(out, "true");

    case RF_JSON_NUMBER:
        return rf_buf_add(out, v->str.data, v->str.len);

    case RF_JSON_STRING:
        return rf_json_str(out, v->str.data, v->str.len);

    case RF_JSON_ARRAY:
    case RF_JSON_OBJECT:
        rc = rf_buf_addc(out, v->type == RF_JSON_ARRAY ? '[' : '{');

        for (e = v->child; rc == 0 && e != NULL; e = e->next) {
            if (e != v->child) {
                rc = rf_buf_addc(out, ',');
            }

            if (rc == 0 && v->type == RF_JSON_OBJECT) {
                rc = rf_json_str(out, e->key.data, e->key.len);
                rc |= rf_buf_addc(out, ':');
            }

            if (rc == 0) {
                rc = relay_stats_write(e, out);
            }
        }

        if (rc == 0) {
            rc = rf_buf_addc(out, v->type == RF_JSON_ARRAY ? ']' : '}');
        }

        return rc;
    }

    return -1;
}


static void
relay_system_free(relay_system_t *s)
{
    free(s->id);
    free(s->role);
    free(s->host);
    free(s->version);
    free(s->stats);
    memset(s, 0, sizeof(relay_system_t));
}


void
relay_stats_free(void)
{
    size_t  i;

    pthread_mutex_lock(&relay_systems_lock);

    for (i = 0; i < relay_nsystems; i++) {
        relay_system_free(&relay_systems[i]);
    }

    relay_nsystems = 0;

    pthread_mutex_unlock(&relay_systems_lock);
}


int
relay_stats_json(relayd_t *rd, rf_buf_t *out)
{
    int       rc;
    size_t    i, n;
    uint64_t  now;

    now = relayd_now_ms();

    rc = rf_buf_printf(out, "{\"relay\":{\"version\":\"" RELAYD_VERSION "\","
                       "\"uptime_s\":%" PRIu64 ",\"now_ms\":%" PRIu64 "},"
                       "\"buckets\":[", (now - rd->started_ms) / 1000, now);

    n = __atomic_load_n(&rd->nbuckets, __ATOMIC_ACQUIRE);

    for (i = 0; rc == 0 && i < n; i++) {
        if (i > 0) {
            rc = rf_buf_addc(out, ',');
        }

        if (rc == 0) {
            rc = relay_bucket_stats_json(rd->buckets[i], out);
        }
    }

    if (rc == 0) {
        rc = rf_buf_adds(out, "],\"systems\":[");
    }

    if (rc == 0) {
        rc = relay_stats_systems(out, now);
    }

    if (rc == 0) {
        rc = rf_buf_adds(out, "]}\n");
    }

    return rc;
}


static int
relay_stats_systems(rf_buf_t *out, uint64_t now)
{
    int              rc;
    size_t           i, j, n;
    relay_system_t  *s;

#define relay_str_member(key, v)                                              \
    (rf_buf_adds(out, ",\"" key "\":") != 0                                   \
     || ((v) ? rf_json_str(out, (const unsigned char *) (v), strlen(v))      \
             : rf_buf_adds(out, "null")) != 0)

    rc = 0;

    pthread_mutex_lock(&relay_systems_lock);

    /* forget systems silent for a day */

    for (i = 0, j = 0; i < relay_nsystems; i++) {
        if (now - relay_systems[i].last_ms > RELAY_SYSTEM_FORGET_MS) {
            relay_system_free(&relay_systems[i]);
            continue;
        }

        relay_systems[j++] = relay_systems[i];
    }

    for (i = j; i < relay_nsystems; i++) {
        memset(&relay_systems[i], 0, sizeof(relay_system_t));
    }

    relay_nsystems = j;
    n = j;

    for (i = 0; i < n; i++) {
        s = &relay_systems[i];

        if ((i > 0 && rf_buf_addc(out, ',') != 0)
            || rf_buf_adds(out, "{\"id\":") != 0
            || rf_json_str(out, (const unsigned char *) s->id,
                           strlen(s->id)) != 0
            || relay_str_member("role", s->role)
            || relay_str_member("host", s->host)
            || relay_str_member("version", s->version)
            || relay_str_member("addr", s->addr)
            || rf_buf_printf(out, ",\"last_heartbeat_age_s\":%.1f,"
                             "\"interval_s\":%" PRIu64 ",\"stats\":",
                             (double) (now - s->last_ms) / 1000,
                             s->interval_s) != 0)
        {
            rc = -1;
            break;
        }

        if (s->stats == NULL) {
            rc = rf_buf_adds(out, "{}}");

        } else {
            rc = rf_buf_adds(out, s->stats);
            rc |= rf_buf_addc(out, '}');
        }

        if (rc != 0) {
            break;
        }
    }

#undef relay_str_member

    pthread_mutex_unlock(&relay_systems_lock);

    return rc;
}


int
relay_stats_metrics(relayd_t *rd, rf_buf_t *out)
{
    size_t                    i, j, n;
    relay_bucket_counters_t   c[RELAYD_MAX_BUCKETS];
    const relay_metric_t     *m;

    n = __atomic_load_n(&rd->nbuckets, __ATOMIC_ACQUIRE);

    for (i = 0; i < n; i++) {
        if (relay_bucket_counters(rd->buckets[i], &c[i]) != 0) {
            memset(&c[i], 0, sizeof(relay_bucket_counters_t));
        }
    }

    for (m = relay_metrics; m->name != NULL; m++) {
        if (rf_buf_printf(out, "# HELP rf_relay_%s %s\n# TYPE rf_relay_%s "
                          "%s\n", m->name, m->help, m->name, m->type) != 0)
        {
            return -1;
        }

        for (j = 0; j < n; j++) {
            if (rf_buf_printf(out, "rf_relay_%s{bucket=\"%s\"} %" PRIu64 "\n",
                              m->name, relay_bucket_conf(rd->buckets[j])->name,
                              *(uint64_t *) ((char *) &c[j] + m->offset))
                != 0)
            {
                return -1;
            }
        }
    }

    pthread_mutex_lock(&relay_systems_lock);
    n = relay_nsystems;
    pthread_mutex_unlock(&relay_systems_lock);

    return rf_buf_printf(out, "# HELP rf_relay_systems Systems heard from "
                         "in the last day.\n# TYPE rf_relay_systems gauge\n"
                         "rf_relay_systems %zu\n# HELP rf_relay_uptime_seconds "
                         "Seconds since start.\n# TYPE rf_relay_uptime_seconds "
                         "gauge\nrf_relay_uptime_seconds %" PRIu64 "\n", n,
                         (relayd_now_ms() - rd->started_ms) / 1000);
}
