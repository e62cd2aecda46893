/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-relayd's directives as tables (the top level, and the bucket block),
 * loading them from defaults, the -c file and the flags in that order,
 * the checks that need more than one directive, and -t.
 */

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "rf_check.h"
#include "rf_conf.h"
#include "rf_log.h"
#include "relayd.h"


#define RELAYD_MAX_FLAGS        64
#define RELAYD_TOKEN_MAX        4096


typedef struct {
    const char                 *name;
    const char                 *value;
} relayd_flag_t;


/* a bucket block while it is applied: token_file is resolved after */
typedef struct {
    relay_bucket_conf_t         b;
    char                       *token_file;
} relayd_bucket_tmp_t;


static int relayd_conf_bucket(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int relayd_conf_consumer(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int relayd_conf_check(relayd_conf_t *conf, char *err, size_t errlen);
static void relayd_bucket_conf_free(relay_bucket_conf_t *b);


const char *const  relayd_level_names[] = {
    "warn", "info", "debug", NULL
};

const char *const  relayd_overflow_names[] = {
    "drop_oldest", "reject", NULL
};


static const rf_conf_cmd_t  relayd_cmds[] = {

    { "listen", RF_CONF_STR, offsetof(relayd_conf_t, listen), 0, 0,
      "127.0.0.1:8480", NULL, NULL, 0 },

    { "stats_listen", RF_CONF_STR, offsetof(relayd_conf_t, stats_listen),
      0, 0, "127.0.0.1:8481", NULL, NULL, 0 },

    { "data", RF_CONF_STR, offsetof(relayd_conf_t, data), 0, 0, NULL, NULL,
      NULL, 0 },

    { "max_connections", RF_CONF_INT,
      offsetof(relayd_conf_t, max_connections), 1, 65536, "256", NULL,
      NULL, 0 },

    { "max_batch", RF_CONF_SIZE, offsetof(relayd_conf_t, max_batch), 4096,
      (int64_t) RF_REC_MAX_SIZE * 4, "32m", NULL, NULL, 0 },

    { "client_timeout", RF_CONF_MSEC,
      offsetof(relayd_conf_t, client_timeout), 1000, 0, "30s", NULL, NULL,
      0 },

    { "max_wait", RF_CONF_MSEC, offsetof(relayd_conf_t, max_wait), 0,
      3600 * 1000, "60s", NULL, NULL, 0 },

    { "log_level", RF_CONF_ENUM, offsetof(relayd_conf_t, log_level), 0, 0,
      "info", relayd_level_names, NULL, 0 },

    { "bucket", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, relayd_conf_bucket,
      1 },

    rf_conf_null_cmd
};


static const rf_conf_cmd_t  relayd_bucket_cmds[] = {

    { "token", RF_CONF_STR, offsetof(relayd_bucket_tmp_t, b.token), 0, 0,
      NULL, NULL, NULL, 0 },

    { "token_file", RF_CONF_STR, offsetof(relayd_bucket_tmp_t, token_file),
      0, 0, NULL, NULL, NULL, 0 },

    { "max_size", RF_CONF_SIZE, offsetof(relayd_bucket_tmp_t, b.max_size),
      1024 * 1024, 0, "1g", NULL, NULL, 0 },

    { "ttl", RF_CONF_MSEC, offsetof(relayd_bucket_tmp_t, b.ttl), 0, 0,
      "7d", NULL, NULL, 0 },

    { "overflow", RF_CONF_ENUM, offsetof(relayd_bucket_tmp_t, b.overflow),
      0, 0, "drop_oldest", relayd_overflow_names, NULL, 0 },

    { "rate", RF_CONF_INT, offsetof(relayd_bucket_tmp_t, b.rate), 0,
      100000000, "0", NULL, NULL, 0 },

    { "consumer", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, relayd_conf_consumer,
      1 },

    rf_conf_null_cmd
};


static relayd_flag_t  relayd_flags[RELAYD_MAX_FLAGS];
static int            relayd_nflags;


int
relayd_conf_flag(const char *name, const char *value)
{
    if (relayd_nflags == RELAYD_MAX_FLAGS) {
        return -1;
    }

    relayd_flags[relayd_nflags].name = name;
    relayd_flags[relayd_nflags].value = value;
    relayd_nflags++;

    return 0;
}


/*
 * "bucket NAME { ... }" in a file, or "NAME:TOKEN" (--bucket) with every
 * other setting at its default.
 */
static int
relayd_conf_bucket(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char                 *colon;
    const char           *name;
    size_t                i, len;
    relayd_conf_t        *c;
    relayd_bucket_tmp_t   t;

    c = conf;

    if (node->nargs != 1) {
        snprintf(err, errlen, "invalid number of arguments in \"bucket\" "
                 "directive");
        return -1;
    }

    name = node->args[0];
    colon = NULL;

    if (!node->block) {
        colon = strchr(name, ':');
        if (colon == NULL || colon[1] == '\0') {
            snprintf(err, errlen, "invalid bucket \"%s\": expected "
                     "NAME:TOKEN, or a \"bucket NAME { ... }\" block", name);
            return -1;
        }
    }

    len = colon ? (size_t) (colon - name) : strlen(name);

    if (!rf_valid_name(name, len)) {
        snprintf(err, errlen, "invalid bucket name \"%.*s\": 1 to %d "
                 "letters, digits, \".\", \"_\" or \"-\"", (int) len, name,
                 RELAY_NAME_MAX);
        return -1;
    }

    for (i = 0; i < c->nbuckets; i++) {
        if (strlen(c->buckets[i].name) == len
            && memcmp(c->buckets[i].name, name, len) == 0)
        {
            snprintf(err, errlen, "bucket \"%.*s\" is defined twice",
                     (int) len, name);
            return -1;
        }
    }

    if (c->nbuckets == RELAYD_MAX_BUCKETS) {
        snprintf(err, errlen, "too many buckets (at most %d)",
                 RELAYD_MAX_BUCKETS);
        return -1;
    }

    memset(&t, 0, sizeof(relayd_bucket_tmp_t));

    if (rf_conf_defaults(relayd_bucket_cmds, &t, err, errlen) != 0) {
        return -1;
    }

    t.b.name = strndup(name, len);
    if (t.b.name == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    if (node->block) {
        if (rf_conf_apply(relayd_bucket_cmds, node->children, &t, err,
                          errlen)
            != 0)
        {
            goto failed;
        }

    } else {
        t.b.token = strdup(colon + 1);
        if (t.b.token == NULL) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }
    }

    if (t.b.token != NULL && t.token_file != NULL) {
        snprintf(err, errlen, "bucket \"%s\" has both \"token\" and "
                 "\"token_file\"", t.b.name);
        goto failed;
    }

    if (t.token_file != NULL) {
        if (rf_conf_token_file(t.token_file, RELAYD_TOKEN_MAX, &t.b.token,
                               err, errlen) != 0)
        {
            goto failed;
        }

        free(t.token_file);
        t.token_file = NULL;
    }

    if (t.b.token == NULL || t.b.token[0] == '\0') {
        snprintf(err, errlen, "bucket \"%s\" has no token: use \"token\" or "
                 "\"token_file\"", t.b.name);
        goto failed;
    }

    if (strlen(t.b.token) > RELAYD_TOKEN_MAX) {
        snprintf(err, errlen, "the token of bucket \"%s\" is longer than %d "
                 "bytes", t.b.name, RELAYD_TOKEN_MAX);
        goto failed;
    }

    c->buckets[c->nbuckets++] = t.b;

    return 0;

failed:

    free(t.token_file);
    relayd_bucket_conf_free(&t.b);

    return -1;
}


static int
relayd_conf_consumer(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    size_t                i;
    const char           *name;
    relayd_bucket_tmp_t  *t;

    t = conf;

    if (node->block || node->nargs != 1) {
        snprintf(err, errlen, "invalid number of arguments in \"consumer\" "
                 "directive");
        return -1;
    }

    name = node->args[0];

    if (!rf_valid_name(name, strlen(name))) {
        snprintf(err, errlen, "invalid consumer name \"%s\": 1 to %d "
                 "letters, digits, \".\", \"_\" or \"-\"", name,
                 RELAY_NAME_MAX);
        return -1;
    }

    for (i = 0; i < t->b.nconsumers; i++) {
        if (strcmp(t->b.consumers[i], name) == 0) {
            snprintf(err, errlen, "consumer \"%s\" is declared twice", name);
            return -1;
        }
    }

    if (t->b.nconsumers == RELAY_MAX_CONSUMERS) {
        snprintf(err, errlen, "too many consumers (at most %d)",
                 RELAY_MAX_CONSUMERS);
        return -1;
    }

    t->b.consumers[t->b.nconsumers] = strdup(name);
    if (t->b.consumers[t->b.nconsumers] == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    t->b.nconsumers++;

    return 0;
}


/* defaults, then the file, then the flags: flags win */

int
relayd_conf_load(relayd_conf_t *conf, const char *file, char *err,
    size_t errlen)
{
    int              i, rc;
    rf_conf_node_t  *nodes;

    memset(conf, 0, sizeof(relayd_conf_t));

    if (rf_conf_defaults(relayd_cmds, conf, err, errlen) != 0) {
        goto failed;
    }

    if (file != NULL) {
        nodes = rf_conf_parse_file(file, err, errlen);
        if (nodes == NULL && err[0] != '\0') {
            goto failed;
        }

        rc = rf_conf_apply(relayd_cmds, nodes, conf, err, errlen);
        rf_conf_free(nodes);

        if (rc != 0) {
            goto failed;
        }
    }

    for (i = 0; i < relayd_nflags; i++) {
        if (rf_conf_set(relayd_cmds, conf, relayd_flags[i].name,
                        relayd_flags[i].value, err, errlen)
            != 0)
        {
            goto failed;
        }
    }

    if (relayd_conf_check(conf, err, errlen) != 0) {
        goto failed;
    }

    return 0;

failed:

    relayd_conf_free(conf);

    return -1;
}


static int
relayd_conf_check(relayd_conf_t *conf, char *err, size_t errlen)
{
    size_t                   len;
    struct sockaddr_storage  ss;

    if (conf->data == NULL || conf->data[0] == '\0') {
        snprintf(err, errlen, "no \"data\" directory is set: use the "
                 "\"data\" directive or --data");
        return -1;
    }

    if (conf->nbuckets == 0) {
        snprintf(err, errlen, "no bucket is defined: use a \"bucket\" block "
                 "or --bucket NAME:TOKEN");
        return -1;
    }

    if (rf_parse_addr(conf->listen, &ss, &len) != 0) {
        snprintf(err, errlen, "invalid listen address \"%s\": expected "
                 "ADDR:PORT", conf->listen);
        return -1;
    }

    if (strcmp(conf->stats_listen, "off") != 0
        && rf_parse_addr(conf->stats_listen, &ss, &len) != 0)
    {
        snprintf(err, errlen, "invalid stats_listen address \"%s\": "
                 "expected ADDR:PORT or \"off\"", conf->stats_listen);
        return -1;
    }

    return 0;
}


static void
relayd_bucket_conf_free(relay_bucket_conf_t *b)
{
    size_t  i;

    free(b->name);
    free(b->token);

    for (i = 0; i < b->nconsumers; i++) {
        free(b->consumers[i]);
    }

    memset(b, 0, sizeof(relay_bucket_conf_t));
}


void
relayd_conf_free(relayd_conf_t *conf)
{
    size_t  i;

    rf_conf_release(relayd_cmds, conf);

    for (i = 0; i < conf->nbuckets; i++) {
        relayd_bucket_conf_free(&conf->buckets[i]);
    }

    conf->nbuckets = 0;
}


/* -t, with nginx's wording */

int
relayd_conf_test(const char *file)
{
    char           err[4096];
    const char    *name;
    relayd_conf_t  conf;

    name = file ? file : "(command line)";

    if (relayd_conf_load(&conf, file, err, sizeof(err)) != 0) {
        fprintf(stderr, RELAYD_NAME ": [emerg] %s\n", err);
        fprintf(stderr, RELAYD_NAME ": configuration file %s test failed\n",
                name);
        return 1;
    }

    relayd_conf_free(&conf);

    fprintf(stderr, RELAYD_NAME ": the configuration file %s syntax is ok\n",
            name);
    fprintf(stderr, RELAYD_NAME ": configuration file %s test is "
            "successful\n", name);

    return 0;
}
