/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-spoold's directives as a table (each is also a --flag), loading them
 * from defaults, the -c file and the flags in that order, the checks that
 * need more than one directive, and -t.
 */

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rf_conf.h"
#include "rf_lua.h"
#include "spoold.h"
#include "spool_script.h"
#include "spool_store.h"


#define SPOOLD_MAX_FLAGS        64
#define SPOOLD_RATE_MAX         1000000000
#define SPOOLD_BUDGET_MAX       1000000000000LL


typedef struct {
    const char                 *name;
    const char                 *value;
} spoold_flag_t;


static int spoold_conf_id(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);


const char *const  spoold_overflow_names[] = {
    "drop_oldest", "drop_newest", NULL
};

const char *const  spoold_level_names[] = {
    "warn", "info", "debug", NULL
};


/* the directives; every one is also a flag: --name value */

static const rf_conf_cmd_t  spoold_cmds[] = {

    { "id", RF_CONF_CUSTOM, offsetof(spoold_conf_t, id), 0, 0, NULL, NULL,
      spoold_conf_id, 0 },

    { "ring", RF_CONF_STR, offsetof(spoold_conf_t, ring), 0, 0, NULL, NULL,
      NULL, 0 },

    { "buffer", RF_CONF_STR, offsetof(spoold_conf_t, buffer), 0, 0, NULL,
      NULL, NULL, 0 },

    { "max_buffer", RF_CONF_SIZE, offsetof(spoold_conf_t, max_buffer),
      1024 * 1024, 0, "256m", NULL, NULL, 0 },

    { "overflow", RF_CONF_ENUM, offsetof(spoold_conf_t, overflow), 0, 0,
      "drop_oldest", spoold_overflow_names, NULL, 0 },

    { "batch", RF_CONF_INT, offsetof(spoold_conf_t, batch), 1, 65536,
      "4096", NULL, NULL, 0 },

    { "batch_linger", RF_CONF_MSEC, offsetof(spoold_conf_t, batch_linger),
      0, 60000, "250ms", NULL, NULL, 0 },

    { "stall_timeout", RF_CONF_MSEC, offsetof(spoold_conf_t, stall_timeout),
      1, 0, "1s", NULL, NULL, 0 },

    { "log_level", RF_CONF_ENUM, offsetof(spoold_conf_t, log_level), 0, 0,
      "info", spoold_level_names, NULL, 0 },

    { "relay", RF_CONF_CUSTOM, offsetof(spoold_conf_t, relay), 0, 0, NULL,
      NULL, spoold_conf_relay, 0 },

    /* token and token_file set the same string, one of them at most */

    { "token", RF_CONF_CUSTOM, offsetof(spoold_conf_t, token), 0, 0, NULL,
      NULL, spoold_conf_token_set, 0 },

    { "token_file", RF_CONF_CUSTOM, offsetof(spoold_conf_t, token), 0, 0,
      NULL, NULL, spoold_conf_token_set, 0 },

    { "bucket", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, spoold_conf_bucket, 1 },

    { "rate", RF_CONF_CUSTOM, offsetof(spoold_conf_t, rate), 0,
      SPOOLD_RATE_MAX, NULL, NULL, spoold_conf_rate, 0 },

    { "rate_bytes", RF_CONF_CUSTOM, offsetof(spoold_conf_t, rate_bytes),
      1024, 0, NULL, NULL, spoold_conf_rate, 0 },

    { "forward_batch", RF_CONF_INT, offsetof(spoold_conf_t, forward_batch),
      1, 100000, "1000", NULL, NULL, 0 },

    { "forward_batch_bytes", RF_CONF_SIZE,
      offsetof(spoold_conf_t, forward_batch_bytes), 1024,
      32 * 1024 * 1024, "1m", NULL, NULL, 0 },

    { "forward_linger", RF_CONF_MSEC,
      offsetof(spoold_conf_t, forward_linger), 0, 60000, "50ms", NULL, NULL,
      0 },

    { "retry_max", RF_CONF_MSEC, offsetof(spoold_conf_t, retry_max), 100,
      3600 * 1000, "30s", NULL, NULL, 0 },

    { "heartbeat", RF_CONF_MSEC, offsetof(spoold_conf_t, heartbeat), 1000,
      3600 * 1000, "5s", NULL, NULL, 0 },

    /* script_budget and script_memory default to the bridge's (load) */

    { "script", RF_CONF_STR, offsetof(spoold_conf_t, script), 0, 0, NULL,
      NULL, NULL, 0 },

    { "script_budget", RF_CONF_INT, offsetof(spoold_conf_t, script_budget),
      1000, SPOOLD_BUDGET_MAX, NULL, NULL, NULL, 0 },

    { "script_memory", RF_CONF_SIZE, offsetof(spoold_conf_t, script_memory),
      RF_LUA_MEMORY_MIN, 0, NULL, NULL, NULL, 0 },

    { "script_tick", RF_CONF_MSEC, offsetof(spoold_conf_t, script_tick), 10,
      3600 * 1000, "1s", NULL, NULL, 0 },

    { "dead_letter", RF_CONF_STR, offsetof(spoold_conf_t, dead_letter), 0,
      0, NULL, NULL, NULL, 0 },

    { "dead_letter_max", RF_CONF_SIZE,
      offsetof(spoold_conf_t, dead_letter_max), 1024, 0, "64m", NULL, NULL,
      0 },

    rf_conf_null_cmd
};


static spoold_flag_t  spoold_flags[SPOOLD_MAX_FLAGS];
static int           spoold_nflags;


int
spoold_conf_flag(const char *name, const char *value)
{
    if (spoold_nflags == SPOOLD_MAX_FLAGS) {
        return -1;
    }

    spoold_flags[spoold_nflags].name = name;
    spoold_flags[spoold_nflags].value = value;
    spoold_nflags++;

    return 0;
}


static int
spoold_conf_id(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char           *p;
    size_t          i, n;
    const char     *s;
    spoold_conf_t  *c;

    c = conf;

    if (node->block || node->nargs != 1) {
        snprintf(err, errlen, "invalid number of arguments in \"id\" "
                 "directive");
        return -1;
    }

    s = node->args[0];
    n = strlen(s);

    if (n == 0 || n > SPOOL_ID_MAX) {
        snprintf(err, errlen, "invalid id \"%s\": it must be 1 to %d "
                 "characters long", s, SPOOL_ID_MAX);
        return -1;
    }

    for (i = 0; i < n; i++) {
        if (!isalnum((unsigned char) s[i]) && s[i] != '.' && s[i] != '_'
            && s[i] != '-')
        {
            snprintf(err, errlen, "invalid id \"%s\": only letters, digits, "
                     "\".\", \"_\" and \"-\" are allowed", s);
            return -1;
        }
    }

    p = strdup(s);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    free(c->id);
    c->id = p;

    return 0;
}


/* defaults, then the file, then the flags: flags win */

int
spoold_conf_load(spoold_conf_t *conf, const char *file, char *err,
    size_t errlen)
{
    int              i, rc;
    rf_conf_node_t  *nodes;

    memset(conf, 0, sizeof(spoold_conf_t));

    if (rf_conf_defaults(spoold_cmds, conf, err, errlen) != 0) {
        goto failed;
    }

    conf->script_budget = RF_LUA_BUDGET_DEFAULT;
    conf->script_memory = RF_LUA_MEMORY_DEFAULT;

    if (file != NULL) {
        nodes = rf_conf_parse_file(file, err, errlen);
        if (nodes == NULL) {
            goto failed;
        }

        rc = rf_conf_apply(spoold_cmds, nodes, conf, err, errlen);
        rf_conf_free(nodes);

        if (rc != 0) {
            goto failed;
        }
    }

    for (i = 0; i < spoold_nflags; i++) {
        if (rf_conf_set(spoold_cmds, conf, spoold_flags[i].name,
                        spoold_flags[i].value, err, errlen)
            != 0)
        {
            goto failed;
        }
    }

    return 0;

failed:

    spoold_conf_free(conf);

    return -1;
}


int
spoold_conf_check(const spoold_conf_t *conf, char *err, size_t errlen)
{
    size_t       i;
    const char  *missing;

    missing = NULL;

    if (conf->id == NULL) {
        missing = "id";

    } else if (conf->ring == NULL || conf->ring[0] == '\0') {
        missing = "ring";

    } else if (conf->buffer == NULL || conf->buffer[0] == '\0') {
        missing = "buffer";
    }

    if (missing != NULL) {
        snprintf(err, errlen, "no \"%s\" is set: use the \"%s\" directive "
                 "or --%s", missing, missing, missing);
        return -1;
    }

    if (conf->relay == NULL || conf->token != NULL) {
        return 0;
    }

    if (conf->nbuckets == 0) {
        snprintf(err, errlen, "\"relay\" is set but no token: use the "
                 "\"token\" or \"token_file\" directive, --token, or "
                 "bucket tokens");
        return -1;
    }

    for (i = 0; i < conf->nbuckets; i++) {
        if (conf->buckets[i].token == NULL) {
            snprintf(err, errlen, "bucket \"%s\" has no token, and there "
                     "is no global \"token\"", conf->buckets[i].name);
            return -1;
        }
    }

    return 0;
}


void
spoold_conf_free(spoold_conf_t *conf)
{
    size_t  i;

    rf_conf_release(spoold_cmds, conf);

    /* the CUSTOM directives' strings are ours */

    free(conf->id);
    conf->id = NULL;
    free(conf->relay);
    conf->relay = NULL;
    free(conf->token);
    conf->token = NULL;

    for (i = 0; i < conf->nbuckets; i++) {
        free(conf->buckets[i].name);
        free(conf->buckets[i].token);
        free(conf->buckets[i].script);
    }

    free(conf->buckets);
    conf->buckets = NULL;
    conf->nbuckets = 0;
}


int
spoold_conf_dup(spoold_conf_t *dst, const spoold_conf_t *src)
{
    size_t  i;

    *dst = *src;

    dst->id = NULL;
    dst->ring = NULL;
    dst->buffer = NULL;
    dst->relay = NULL;
    dst->token = NULL;
    dst->script = NULL;
    dst->dead_letter = NULL;
    dst->buckets = NULL;
    dst->nbuckets = 0;

    if ((src->id && (dst->id = strdup(src->id)) == NULL)
        || (src->ring && (dst->ring = strdup(src->ring)) == NULL)
        || (src->buffer && (dst->buffer = strdup(src->buffer)) == NULL)
        || (src->relay && (dst->relay = strdup(src->relay)) == NULL)
        || (src->token && (dst->token = strdup(src->token)) == NULL)
        || (src->script && (dst->script = strdup(src->script)) == NULL)
        || (src->dead_letter
            && (dst->dead_letter = strdup(src->dead_letter)) == NULL))
    {
        goto failed;
    }

    if (src->nbuckets == 0) {
        return 0;
    }

    dst->buckets = calloc(src->nbuckets, sizeof(spoold_bucket_t));
    if (dst->buckets == NULL) {
        goto failed;
    }

    for (i = 0; i < src->nbuckets; i++) {
        dst->nbuckets++;

        dst->buckets[i].name = strdup(src->buckets[i].name);

        if (dst->buckets[i].name == NULL
            || (src->buckets[i].token
                && (dst->buckets[i].token = strdup(src->buckets[i].token))
                   == NULL)
            || (src->buckets[i].script
                && (dst->buckets[i].script = strdup(src->buckets[i].script))
                   == NULL))
        {
            goto failed;
        }
    }

    return 0;

failed:

    spoold_conf_free(dst);
    errno = ENOMEM;

    return -1;
}


/* -t, with nginx's wording */

int
spoold_conf_test(const char *file)
{
    char           err[4096];
    const char    *name;
    spoold_conf_t  conf;

    name = file ? file : "(command line)";

    if (spoold_conf_load(&conf, file, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": [emerg] %s\n", err);
        fprintf(stderr, SPOOLD_NAME ": configuration file %s test failed\n",
                name);
        return 1;
    }

    if (spoold_conf_check(&conf, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": [emerg] %s%s%s\n",
                file ? file : "", file ? ": " : "", err);
        fprintf(stderr, SPOOLD_NAME ": configuration file %s test failed\n",
                name);
        spoold_conf_free(&conf);
        return 1;
    }

    /* the scripts run as they would at start: the chunk and init() */

    if (spool_script_test(&conf, err, sizeof(err)) != 0) {
        fprintf(stderr, SPOOLD_NAME ": [emerg] %s\n", err);
        fprintf(stderr, SPOOLD_NAME ": configuration file %s test failed\n",
                name);
        spoold_conf_free(&conf);
        return 1;
    }

    spoold_conf_free(&conf);

    fprintf(stderr, SPOOLD_NAME ": the configuration file %s syntax is ok\n",
            name);
    fprintf(stderr, SPOOLD_NAME ": configuration file %s test is "
            "successful\n", name);

    return 0;
}
