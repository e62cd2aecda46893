/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-playerd's directives as tables (the top level, the bucket block; a
 * sink block is its type's own table plus "script"), and loading: the -c
 * file, then the flags, which are first written out as configuration
 * text so that both go through one parser and one set of checks, then
 * the Lua scripts (so that a broken one fails -t, start-up and a
 * reload alike).  -t lives here too.
 */

#include <ctype.h>
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "rf_check.h"
#include "rf_conf.h"
#include "rf_log.h"
#include "playerd.h"


#define PLAYER_MAX_FLAGS        64


typedef struct {
    const char                 *name;
    const char                 *value;
} player_flag_t;


static int player_conf_bucket(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int player_conf_sink(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);
static int player_conf_sink_block(player_sink_t *s,
    const rf_conf_cmd_t *cmds, const rf_conf_node_t *children, char *err,
    size_t errlen);
static void player_sink_free(player_sink_t *s);
static void player_bucket_conf_free(player_bucket_conf_t *b);
static int player_conf_flags_text(rf_buf_t *b, char *err, size_t errlen);
static int player_conf_quote(rf_buf_t *b, const char *s);
static int player_conf_check(player_conf_t *conf, char *err, size_t errlen);


static const char *const  player_level_names[] = {
    "warn", "info", "debug", NULL
};


static const rf_conf_cmd_t  player_cmds[] = {

    { "relay", RF_CONF_STR, offsetof(player_conf_t, relay), 0, 0, NULL,
      NULL, NULL, 0 },

    { "token", RF_CONF_STR, offsetof(player_conf_t, token), 0, 0, NULL,
      NULL, NULL, 0 },

    { "token_file", RF_CONF_STR, offsetof(player_conf_t, token_file), 0, 0,
      NULL, NULL, NULL, 0 },

    { "id", RF_CONF_STR, offsetof(player_conf_t, id), 0, 0, NULL, NULL,
      NULL, 0 },

    { "api_listen", RF_CONF_STR, offsetof(player_conf_t, api_listen), 0, 0,
      "off", NULL, NULL, 0 },

    { "htpasswd", RF_CONF_STR, offsetof(player_conf_t, htpasswd), 0, 0,
      NULL, NULL, NULL, 0 },

    { "dead_letter", RF_CONF_STR, offsetof(player_conf_t, dead_letter), 0,
      0, "rf-playerd.dead.ndjson", NULL, NULL, 0 },

    { "max_tries", RF_CONF_INT, offsetof(player_conf_t, max_tries), 1,
      1000000, "5", NULL, NULL, 0 },

    { "retry_backoff", RF_CONF_MSEC, offsetof(player_conf_t, retry_backoff),
      1, PLAYER_BACKOFF_MAX_MS, "100ms", NULL, NULL, 0 },

    { "heartbeat", RF_CONF_MSEC, offsetof(player_conf_t, heartbeat), 0,
      3600 * 1000, "5s", NULL, NULL, 0 },

    { "log_level", RF_CONF_ENUM, offsetof(player_conf_t, log_level), 0, 0,
      "info", player_level_names, NULL, 0 },

    /* budget and memory: 0 when not set, the bridge's defaults */

    { "script_budget", RF_CONF_INT, offsetof(player_conf_t, script_budget),
      1000, INT64_C(1000000000000), NULL, NULL, NULL, 0 },

    { "script_memory", RF_CONF_SIZE, offsetof(player_conf_t, script_memory),
      (int64_t) RF_LUA_MEMORY_MIN, 0, NULL, NULL, NULL, 0 },

    { "script_tick", RF_CONF_MSEC, offsetof(player_conf_t, script_tick), 10,
      3600 * 1000, "1s", NULL, NULL, 0 },

    { "bucket", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, player_conf_bucket,
      1 },

    rf_conf_null_cmd
};


static const rf_conf_cmd_t  player_bucket_cmds[] = {

    { "consumer", RF_CONF_STR, offsetof(player_bucket_conf_t, consumer), 0,
      0, NULL, NULL, NULL, 0 },

    { "token", RF_CONF_STR, offsetof(player_bucket_conf_t, token), 0, 0,
      NULL, NULL, NULL, 0 },

    { "batch", RF_CONF_INT, offsetof(player_bucket_conf_t, batch), 1,
      100000, "1000", NULL, NULL, 0 },

    { "wait", RF_CONF_MSEC, offsetof(player_bucket_conf_t, wait), 0,
      3600 * 1000, "30s", NULL, NULL, 0 },

    { "script", RF_CONF_STR, offsetof(player_bucket_conf_t, script), 0, 0,
      NULL, NULL, NULL, 0 },

    { "sink", RF_CONF_CUSTOM, 0, 0, 0, NULL, NULL, player_conf_sink, 1 },

    rf_conf_null_cmd
};


static const rf_conf_cmd_t  player_empty_cmds[] = {
    rf_conf_null_cmd
};


/* a sink block's own directive, besides its type's */
static const rf_conf_cmd_t  player_sink_script_cmds[] = {

    { "script", RF_CONF_STR, offsetof(player_sink_t, script), 0, 0, NULL,
      NULL, NULL, 0 },

    rf_conf_null_cmd
};


static player_flag_t  player_flags[PLAYER_MAX_FLAGS];
static int            player_nflags;


int
player_conf_flag(const char *name, const char *value)
{
    if (player_nflags == PLAYER_MAX_FLAGS) {
        fprintf(stderr, PLAYERD_NAME ": too many flags\n");
        return -1;
    }

    player_flags[player_nflags].name = name;
    player_flags[player_nflags].value = value;
    player_nflags++;

    return 0;
}


/* "bucket NAME { consumer C; ... sink TYPE NAME { ... } ... }" */

static int
player_conf_bucket(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    size_t                 i;
    const char            *name;
    player_conf_t         *c;
    player_bucket_conf_t  *b;

    c = conf;

    if (node->nargs != 1 || !node->block) {
        snprintf(err, errlen, "expected \"bucket NAME { ... }\"");
        return -1;
    }

    name = node->args[0];

    if (!rf_valid_name(name, strlen(name))) {
        snprintf(err, errlen, "invalid bucket name \"%s\": 1 to %d "
                 "letters, digits, \".\", \"_\" or \"-\"", name,
                 PLAYER_NAME_MAX);
        return -1;
    }

    for (i = 0; i < c->nbuckets; i++) {
        if (strcmp(c->buckets[i].name, name) == 0) {
            snprintf(err, errlen, "bucket \"%s\" is defined twice", name);
            return -1;
        }
    }

    if (c->nbuckets == PLAYER_MAX_BUCKETS) {
        snprintf(err, errlen, "too many buckets (at most %d)",
                 PLAYER_MAX_BUCKETS);
        return -1;
    }

    b = &c->buckets[c->nbuckets];
    memset(b, 0, sizeof(player_bucket_conf_t));

    if (rf_conf_defaults(player_bucket_cmds, b, err, errlen) != 0) {
        return -1;
    }

    b->name = strdup(name);
    if (b->name == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    if (rf_conf_apply(player_bucket_cmds, node->children, b, err, errlen)
        != 0)
    {
        goto failed;
    }

    if (b->consumer == NULL
        || !rf_valid_name(b->consumer, strlen(b->consumer)))
    {
        snprintf(err, errlen, "bucket \"%s\" needs a \"consumer\" (1 to %d "
                 "letters, digits, \".\", \"_\" or \"-\")", name,
                 PLAYER_NAME_MAX);
        goto failed;
    }

    if (b->nsinks == 0) {
        snprintf(err, errlen, "bucket \"%s\" has no sink: add \"sink TYPE "
                 "NAME { ... }\"", name);
        goto failed;
    }

    if (b->token != NULL && b->token[0] == '\0') {
        snprintf(err, errlen, "bucket \"%s\" has an empty token", name);
        goto failed;
    }

    c->nbuckets++;

    return 0;

failed:

    player_bucket_conf_free(b);

    return -1;
}


/*
 * "sink TYPE NAME { ... }" or "sink TYPE NAME;": the type's own table is
 * applied to a conf of its size, then its check runs.
 */
static int
player_conf_sink(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char                       msg[1024];
    size_t                     i;
    player_sink_t             *s;
    player_bucket_conf_t      *b;
    const rf_conf_cmd_t       *cmds;
    const player_sink_type_t  *type;

    b = conf;

    if (node->nargs != 2) {
        snprintf(err, errlen, "expected \"sink TYPE NAME { ... }\"");
        return -1;
    }

    type = player_sink_type(node->args[0]);
    if (type == NULL) {
        snprintf(err, errlen, "unknown sink type \"%s\"", node->args[0]);
        return -1;
    }

    if (!rf_valid_name(node->args[1], strlen(node->args[1]))) {
        snprintf(err, errlen, "invalid sink name \"%s\": 1 to %d letters, "
                 "digits, \".\", \"_\" or \"-\"", node->args[1],
                 PLAYER_NAME_MAX);
        return -1;
    }

    for (i = 0; i < b->nsinks; i++) {
        if (strcmp(b->sinks[i]->name, node->args[1]) == 0) {
            snprintf(err, errlen, "sink \"%s\" is defined twice in bucket "
                     "\"%s\"", node->args[1], b->name);
            return -1;
        }
    }

    if (b->nsinks == PLAYER_MAX_SINKS) {
        snprintf(err, errlen, "too many sinks (at most %d)",
                 PLAYER_MAX_SINKS);
        return -1;
    }

    cmds = type->cmds ? type->cmds : player_empty_cmds;

    s = calloc(1, sizeof(player_sink_t));
    if (s == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    s->type = type;
    s->bucket = b->name;
    s->name = strdup(node->args[1]);
    s->conf = calloc(1, type->conf_size ? type->conf_size : 1);

    if (s->name == NULL || s->conf == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    if (rf_conf_defaults(cmds, s->conf, err, errlen) != 0) {
        goto failed;
    }

    if (node->block
        && player_conf_sink_block(s, cmds, node->children, err, errlen)
           != 0)
    {
        goto failed;
    }

    if (type->check != NULL) {
        msg[0] = '\0';

        if (type->check(s->conf, msg, sizeof(msg)) != 0) {
            snprintf(err, errlen, "sink %s \"%s\": %s", type->type, s->name,
                     msg[0] ? msg : "invalid configuration");
            goto failed;
        }
    }

    b->sinks[b->nsinks++] = s;

    return 0;

failed:

    player_sink_free(s);

    return -1;
}


/*
 * A sink block: "script" is the core's, the rest the type's.  Each table
 * is applied to its share of the directives (shallow copies of the
 * nodes, relinked), so that both report file:line as usual.
 */
static int
player_conf_sink_block(player_sink_t *s, const rf_conf_cmd_t *cmds,
    const rf_conf_node_t *children, char *err, size_t errlen)
{
    int                    rc;
    size_t                 i, n;
    rf_conf_node_t        *copy, *scripts, *rest, **sl, **rl;
    const rf_conf_node_t  *node;

    n = 0;

    for (node = children; node != NULL; node = node->next) {
        n++;
    }

    copy = calloc(n ? n : 1, sizeof(rf_conf_node_t));
    if (copy == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    scripts = NULL;
    rest = NULL;
    sl = &scripts;
    rl = &rest;

    for (i = 0, node = children; node != NULL; i++, node = node->next) {
        copy[i] = *node;
        copy[i].next = NULL;

        if (strcmp(node->name, "script") == 0) {
            *sl = &copy[i];
            sl = &copy[i].next;

        } else {
            *rl = &copy[i];
            rl = &copy[i].next;
        }
    }

    rc = rf_conf_apply(player_sink_script_cmds, scripts, s, err, errlen);

    if (rc == 0) {
        rc = rf_conf_apply(cmds, rest, s->conf, err, errlen);
    }

    free(copy);

    return rc;
}


static void
player_sink_free(player_sink_t *s)
{
    if (s->lua != NULL) {
        rf_lua_close(s->lua);
        s->lua = NULL;
    }

    rf_conf_release(player_sink_script_cmds, s);

    if (s->conf != NULL) {
        rf_conf_release(s->type->cmds ? s->type->cmds : player_empty_cmds,
                        s->conf);

        if (s->type->free_conf != NULL) {
            s->type->free_conf(s->conf);
        }

        free(s->conf);
    }

    free(s->name);
    free(s);
}


static void
player_bucket_conf_free(player_bucket_conf_t *b)
{
    size_t  i;

    for (i = 0; i < b->nsinks; i++) {
        player_sink_free(b->sinks[i]);
    }

    if (b->lua != NULL) {
        rf_lua_close(b->lua);
        b->lua = NULL;
    }

    rf_conf_release(player_bucket_cmds, b);
    free(b->name);

    memset(b, 0, sizeof(player_bucket_conf_t));
}


const char *
player_bucket_token(const player_conf_t *conf, const player_bucket_conf_t *b)
{
    return b->token ? b->token : conf->token;
}


/* a value as one quoted token: no ${ENV}, no escapes left to chance */

static int
player_conf_quote(rf_buf_t *b, const char *s)
{
    int  rc;

    rc = rf_buf_addc(b, '"');

    for ( /* void */ ; *s; s++) {
        if (*s == '"' || *s == '\\' || *s == '$') {
            rc |= rf_buf_addc(b, '\\');
        }

        if (*s == '\n') {
            rc |= rf_buf_adds(b, "\\n");
            continue;
        }

        rc |= rf_buf_addc(b, *s);
    }

    rc |= rf_buf_addc(b, '"');

    return rc ? -1 : 0;
}


/*
 * The flags as configuration text: top-level ones as directives, and
 * --bucket with --consumer and the sink flags as one bucket block
 * (docs/player-plan.md).
 */
static int
player_conf_flags_text(rf_buf_t *b, char *err, size_t errlen)
{
    int          i, rc, ntarget;
    const char  *bucket, *consumer, *sqlite, *file, *script, *n, *v;

    bucket = consumer = sqlite = file = script = NULL;
    ntarget = 0;
    rc = 0;

    for (i = 0; i < player_nflags; i++) {
        n = player_flags[i].name;
        v = player_flags[i].value;

        if (strcmp(n, "bucket") == 0) {
            bucket = v;

        } else if (strcmp(n, "consumer") == 0) {
            consumer = v;

        } else if (strcmp(n, "sqlite") == 0) {
            sqlite = v;

        } else if (strcmp(n, "file") == 0) {
            file = v;

        } else if (strcmp(n, "script") == 0) {
            script = v;

        } else if (strcmp(n, "target") == 0) {
            ntarget++;

        } else {
            rc |= rf_buf_printf(b, "%s ", n);
            rc |= player_conf_quote(b, v);
            rc |= rf_buf_adds(b, ";\n");
        }
    }

    if (bucket == NULL) {
        if (consumer != NULL || sqlite != NULL || file != NULL
            || script != NULL || ntarget > 0)
        {
            snprintf(err, errlen, "--consumer, --target, --sqlite, --file "
                     "and --script need --bucket");
            return -1;
        }

        return rc ? -1 : 0;
    }

    rc |= rf_buf_adds(b, "bucket ");
    rc |= player_conf_quote(b, bucket);
    rc |= rf_buf_adds(b, " {\n");

    if (consumer != NULL) {
        rc |= rf_buf_adds(b, "    consumer ");
        rc |= player_conf_quote(b, consumer);
        rc |= rf_buf_adds(b, ";\n");
    }

    if (script != NULL) {
        rc |= rf_buf_adds(b, "    script ");
        rc |= player_conf_quote(b, script);
        rc |= rf_buf_adds(b, ";\n");
    }

    if (ntarget > 0) {
        rc |= rf_buf_adds(b, "    sink http http {\n");

        for (i = 0; i < player_nflags; i++) {
            if (strcmp(player_flags[i].name, "target") == 0) {
                rc |= rf_buf_adds(b, "        target ");
                rc |= player_conf_quote(b, player_flags[i].value);
                rc |= rf_buf_adds(b, ";\n");
            }
        }

        rc |= rf_buf_adds(b, "    }\n");
    }

    if (sqlite != NULL) {
        rc |= rf_buf_adds(b, "    sink sqlite sqlite { path ");
        rc |= player_conf_quote(b, sqlite);
        rc |= rf_buf_adds(b, "; }\n");
    }

    if (file != NULL) {
        rc |= rf_buf_adds(b, "    sink file file { path ");
        rc |= player_conf_quote(b, file);
        rc |= rf_buf_adds(b, "; }\n");
    }

    rc |= rf_buf_adds(b, "}\n");

    return rc ? -1 : 0;
}


/* the file, then the flags: a top-level flag overrides the file's value */

int
player_conf_load(player_conf_t *conf, const char *file, char *err,
    size_t errlen)
{
    int              rc;
    rf_buf_t         text;
    rf_conf_node_t  *nodes;

    memset(conf, 0, sizeof(player_conf_t));
    rf_buf_init(&text);

    if (rf_conf_defaults(player_cmds, conf, err, errlen) != 0) {
        goto failed;
    }

    if (file != NULL) {
        nodes = rf_conf_parse_file(file, err, errlen);
        if (nodes == NULL && err[0] != '\0') {
            goto failed;
        }

        rc = rf_conf_apply(player_cmds, nodes, conf, err, errlen);
        rf_conf_free(nodes);

        if (rc != 0) {
            goto failed;
        }
    }

    if (player_conf_flags_text(&text, err, errlen) != 0) {
        goto failed;
    }

    if (text.len > 0) {
        if (rf_buf_addc(&text, '\0') != 0) {
            snprintf(err, errlen, "out of memory");
            goto failed;
        }

        nodes = rf_conf_parse_string((char *) text.data, "(command line)",
                                     err, errlen);
        if (nodes == NULL && err[0] != '\0') {
            goto failed;
        }

        rc = rf_conf_apply(player_cmds, nodes, conf, err, errlen);
        rf_conf_free(nodes);

        if (rc != 0) {
            goto failed;
        }
    }

    rf_buf_free(&text);

    if (player_conf_check(conf, err, errlen) != 0
        || player_scripts_open(conf, err, errlen) != 0)
    {
        player_conf_free(conf);
        return -1;
    }

    return 0;

failed:

    rf_buf_free(&text);
    player_conf_free(conf);

    return -1;
}


static int
player_conf_check(player_conf_t *conf, char *err, size_t errlen)
{
    size_t  i;
    char    host[256];

    if (conf->relay == NULL || conf->relay[0] == '\0') {
        snprintf(err, errlen, "no \"relay\" is set: use the \"relay\" "
                 "directive or --relay URL");
        return -1;
    }

    if (strncmp(conf->relay, "http://", 7) != 0
        && strncmp(conf->relay, "https://", 8) != 0)
    {
        snprintf(err, errlen, "invalid relay \"%s\": expected http://HOST"
                 ":PORT or https://...", conf->relay);
        return -1;
    }

    /* no trailing slash: paths are appended */

    i = strlen(conf->relay);
    while (i > 0 && conf->relay[i - 1] == '/') {
        conf->relay[--i] = '\0';
    }

    if (conf->nbuckets == 0) {
        snprintf(err, errlen, "no bucket is defined: use a \"bucket\" block "
                 "or --bucket NAME --consumer NAME with a sink flag");
        return -1;
    }

    if (conf->token != NULL && conf->token_file != NULL) {
        snprintf(err, errlen, "both \"token\" and \"token_file\" are set");
        return -1;
    }

    if (conf->token_file != NULL
        && rf_conf_token_file(conf->token_file, PLAYER_TOKEN_MAX,
                              &conf->token, err, errlen) != 0)
    {
        return -1;
    }

    for (i = 0; i < conf->nbuckets; i++) {
        if (player_bucket_token(conf, &conf->buckets[i]) == NULL) {
            snprintf(err, errlen, "bucket \"%s\" has no token: use "
                     "\"token\" (top level or in the bucket), "
                     "\"token_file\" or --token", conf->buckets[i].name);
            return -1;
        }
    }

    if (conf->dead_letter == NULL || conf->dead_letter[0] == '\0') {
        snprintf(err, errlen, "\"dead_letter\" must name a file");
        return -1;
    }

    if (conf->htpasswd != NULL && strcmp(conf->api_listen, "off") == 0) {
        snprintf(err, errlen, "\"htpasswd\" needs \"api_listen\"");
        return -1;
    }

    if (conf->id == NULL || conf->id[0] == '\0') {
        if (gethostname(host, sizeof(host)) != 0) {
            snprintf(host, sizeof(host), "localhost");
        }

        host[sizeof(host) - 1] = '\0';

        free(conf->id);

        conf->id = malloc(strlen(host) + sizeof("-player"));
        if (conf->id == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }

        sprintf(conf->id, "%s-player", host);
    }

    return 0;
}


void
player_conf_free(player_conf_t *conf)
{
    size_t  i;

    for (i = 0; i < conf->nbuckets; i++) {
        player_bucket_conf_free(&conf->buckets[i]);
    }

    conf->nbuckets = 0;

    rf_conf_release(player_cmds, conf);
}


/* -t, with nginx's wording */

int
player_conf_test(const char *file)
{
    char           err[4096];
    const char    *name;
    player_conf_t  conf;

    name = file ? file : "(command line)";

    err[0] = '\0';

    if (player_conf_load(&conf, file, err, sizeof(err)) != 0) {
        fprintf(stderr, PLAYERD_NAME ": [emerg] %s\n", err);
        fprintf(stderr, PLAYERD_NAME ": configuration file %s test failed\n",
                name);
        return 1;
    }

    player_conf_free(&conf);

    fprintf(stderr, PLAYERD_NAME ": the configuration file %s syntax is ok\n",
            name);
    fprintf(stderr, PLAYERD_NAME ": configuration file %s test is "
            "successful\n", name);

    return 0;
}
