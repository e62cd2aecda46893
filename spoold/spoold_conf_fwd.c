/*
 * Copyright (C) ReplayForge contributors
 *
 * The handlers of rf-spoold's forwarding directives (the table is in
 * spoold_conf.c): the relay URL, tokens from the file or from token
 * files, bucket blocks with their own tokens, and rates with an optional
 * "/s"; and the questions the daemon asks of them.
 */

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>

#include "rf_conf.h"
#include "spoold.h"


#define SPOOLD_TOKEN_MAX        4096
#define SPOOLD_BUCKET_MAX       64
#define SPOOLD_FLAG_FILE        "(command line)"    /* rf_conf_set()'s */


static int spoold_conf_token_read(const char *path, char **token,
    char *err, size_t errlen);
static int spoold_conf_token_check(const char *token, const char *what,
    char *err, size_t errlen);
static int spoold_conf_bucket_add(spoold_conf_t *c, const char *name,
    size_t len, char *token, char *script, int flag, char *err,
    size_t errlen);
static int spoold_conf_one_arg(const rf_conf_node_t *node, char *err,
    size_t errlen);
static int spoold_conf_is_flag(const rf_conf_node_t *node);
static int spoold_conf_str_differ(const char *a, const char *b);


/* inside bucket NAME { } (the script runs in spool_script.c) */

static const rf_conf_cmd_t  spoold_bucket_cmds[] = {

    { "token", RF_CONF_CUSTOM, offsetof(spoold_bucket_t, token), 0, 0, NULL,
      NULL, spoold_conf_token_set, 0 },

    { "token_file", RF_CONF_CUSTOM, offsetof(spoold_bucket_t, token), 0, 0,
      NULL, NULL, spoold_conf_token_set, 0 },

    { "script", RF_CONF_STR, offsetof(spoold_bucket_t, script), 0, 0, NULL,
      NULL, NULL, 0 },

    rf_conf_null_cmd
};


/*
 * http:// or https://, a host, no user, query or fragment; a path is
 * allowed (a relay behind a prefix).  Stored without trailing slashes.
 */

int
spoold_conf_relay(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char                    *p, *part, **field;
    size_t                   n;
    CURLU                   *u;
    CURLUcode                rc;
    const char              *s;
    static const CURLUPart   none[] = {
        CURLUPART_USER, CURLUPART_QUERY, CURLUPART_FRAGMENT
    };

    if (spoold_conf_one_arg(node, err, errlen) != 0) {
        return -1;
    }

    s = node->args[0];

    if (strncasecmp(s, "http://", 7) != 0
        && strncasecmp(s, "https://", 8) != 0)
    {
        snprintf(err, errlen, "invalid relay URL \"%s\": it must start with "
                 "http:// or https://", s);
        return -1;
    }

    u = curl_url();
    if (u == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    rc = curl_url_set(u, CURLUPART_URL, s, 0);

    if (rc == CURLUE_OK) {
        part = NULL;
        rc = curl_url_get(u, CURLUPART_HOST, &part, 0);

        if (rc == CURLUE_OK && (part == NULL || part[0] == '\0')) {
            rc = CURLUE_NO_HOST;
        }

        curl_free(part);
    }

    for (n = 0; rc == CURLUE_OK && n < sizeof(none) / sizeof(none[0]); n++) {
        part = NULL;

        if (curl_url_get(u, none[n], &part, 0) == CURLUE_OK) {
            curl_free(part);
            curl_url_cleanup(u);
            snprintf(err, errlen, "invalid relay URL \"%s\": it may not have "
                     "a %s", s, n == 0 ? "user" : (n == 1 ? "query"
                                                          : "fragment"));
            return -1;
        }
    }

    curl_url_cleanup(u);

    if (rc != CURLUE_OK) {
        snprintf(err, errlen, "invalid relay URL \"%s\": %s", s,
                 curl_url_strerror(rc));
        return -1;
    }

    p = strdup(s);
    if (p == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    for (n = strlen(p); n > 0 && p[n - 1] == '/'; n--) {
        p[n - 1] = '\0';
    }

    field = (char **) ((char *) conf + cmd->offset);
    free(*field);
    *field = p;

    return 0;
}


/* token T and token_file PATH, at the top level and in bucket { } */

int
spoold_conf_token_set(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char  *p, **field;

    if (spoold_conf_one_arg(node, err, errlen) != 0) {
        return -1;
    }

    field = (char **) ((char *) conf + cmd->offset);

    /* in a file, one of the two; a flag overrides whatever the file set */

    if (*field != NULL && !spoold_conf_is_flag(node)) {
        snprintf(err, errlen, "\"token\" and \"token_file\" are both set");
        return -1;
    }

    if (strcmp(cmd->name, "token_file") == 0) {
        if (spoold_conf_token_read(node->args[0], &p, err, errlen) != 0) {
            return -1;
        }

    } else {
        if (spoold_conf_token_check(node->args[0], "token", err, errlen)
            != 0)
        {
            return -1;
        }

        p = strdup(node->args[0]);
        if (p == NULL) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
    }

    free(*field);
    *field = p;

    return 0;
}


/* read at load time: a reload reads it again */

static int
spoold_conf_token_read(const char *path, char **token, char *err,
    size_t errlen)
{
    int      fd;
    char     buf[SPOOLD_TOKEN_MAX + 2], *b, *e;
    ssize_t  n;
    size_t   len;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        snprintf(err, errlen, "cannot read token_file \"%s\": %s", path,
                 strerror(errno));
        return -1;
    }

    len = 0;

    while (len < sizeof(buf) - 1) {
        n = read(fd, buf + len, sizeof(buf) - 1 - len);

        if (n == -1) {
            if (errno == EINTR) {
                continue;
            }

            snprintf(err, errlen, "cannot read token_file \"%s\": %s", path,
                     strerror(errno));
            (void) close(fd);
            return -1;
        }

        if (n == 0) {
            break;
        }

        len += (size_t) n;
    }

    (void) close(fd);

    if (len > SPOOLD_TOKEN_MAX) {
        snprintf(err, errlen, "token_file \"%s\" is larger than %d bytes",
                 path, SPOOLD_TOKEN_MAX);
        return -1;
    }

    buf[len] = '\0';

    for (b = buf; *b != '\0' && isspace((unsigned char) *b); b++) {
        /* void */
    }

    for (e = buf + len; e > b && isspace((unsigned char) e[-1]); e--) {
        /* void */
    }

    *e = '\0';

    if (b == e) {
        snprintf(err, errlen, "token_file \"%s\" is empty", path);
        return -1;
    }

    if (spoold_conf_token_check(b, "token_file", err, errlen) != 0) {
        return -1;
    }

    *token = strdup(b);
    if (*token == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    return 0;
}


/* it goes into an HTTP header: visible ASCII only */

static int
spoold_conf_token_check(const char *token, const char *what, char *err,
    size_t errlen)
{
    const char  *p;

    if (token[0] == '\0') {
        snprintf(err, errlen, "empty %s", what);
        return -1;
    }

    if (strlen(token) > SPOOLD_TOKEN_MAX) {
        snprintf(err, errlen, "%s longer than %d bytes", what,
                 SPOOLD_TOKEN_MAX);
        return -1;
    }

    for (p = token; *p != '\0'; p++) {
        if ((unsigned char) *p <= 0x20 || (unsigned char) *p >= 0x7f) {
            snprintf(err, errlen, "invalid %s: only visible ASCII characters "
                     "(no spaces) are allowed", what);
            return -1;
        }
    }

    return 0;
}


/* bucket NAME { token T; } in files, --bucket NAME:TOKEN as a flag */

int
spoold_conf_bucket(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    char             *colon, *token;
    const char       *name;
    spoold_bucket_t   tmp;

    if (node->nargs != 1) {
        snprintf(err, errlen, "invalid number of arguments in \"bucket\" "
                 "directive");
        return -1;
    }

    name = node->args[0];

    if (node->block) {
        memset(&tmp, 0, sizeof(spoold_bucket_t));

        if (rf_conf_apply(spoold_bucket_cmds, node->children, &tmp, err,
                          errlen)
            != 0)
        {
            free(tmp.token);
            free(tmp.script);
            return -1;
        }

        return spoold_conf_bucket_add(conf, name, strlen(name), tmp.token,
                                      tmp.script, 0, err, errlen);
    }

    colon = strchr(name, ':');
    if (colon == NULL) {
        snprintf(err, errlen, "invalid bucket \"%s\": it must be a block, "
                 "bucket NAME { token T; }, or NAME:TOKEN", name);
        return -1;
    }

    if (spoold_conf_token_check(colon + 1, "token", err, errlen) != 0) {
        return -1;
    }

    token = strdup(colon + 1);
    if (token == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    return spoold_conf_bucket_add(conf, name, colon - name, token, NULL,
                                  spoold_conf_is_flag(node), err, errlen);
}


/*
 * Takes token (NULL: the global token applies) and script (NULL: none).
 * A flag (NAME:TOKEN) sets the token of a bucket the file made, which
 * keeps its script.
 */

static int
spoold_conf_bucket_add(spoold_conf_t *c, const char *name, size_t len,
    char *token, char *script, int flag, char *err, size_t errlen)
{
    size_t            i;
    spoold_bucket_t  *b;

    if (len == 0 || len > SPOOLD_BUCKET_MAX) {
        snprintf(err, errlen, "invalid bucket name \"%.*s\": it must be 1 to "
                 "%d characters long", (int) len, name, SPOOLD_BUCKET_MAX);
        goto failed;
    }

    for (i = 0; i < len; i++) {
        if (!isalnum((unsigned char) name[i]) && name[i] != '.'
            && name[i] != '_' && name[i] != '-')
        {
            snprintf(err, errlen, "invalid bucket name \"%.*s\": only "
                     "letters, digits, \".\", \"_\" and \"-\" are allowed",
                     (int) len, name);
            goto failed;
        }
    }

    for (i = 0; i < c->nbuckets; i++) {
        b = &c->buckets[i];

        if (strlen(b->name) != len || memcmp(b->name, name, len) != 0) {
            continue;
        }

        if (!flag) {
            snprintf(err, errlen, "bucket \"%.*s\" is duplicate", (int) len,
                     name);
            goto failed;
        }

        free(b->token);
        b->token = token;

        return 0;
    }

    b = realloc(c->buckets, (c->nbuckets + 1) * sizeof(spoold_bucket_t));
    if (b == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    c->buckets = b;
    b = &c->buckets[c->nbuckets];

    b->name = strndup(name, len);
    if (b->name == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    b->token = token;
    b->script = script;
    c->nbuckets++;

    return 0;

failed:

    free(token);
    free(script);

    return -1;
}


/* rate N, rate N/s; rate_bytes SIZE, rate_bytes SIZE/s; 0 is unlimited */

int
spoold_conf_rate(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, char *err, size_t errlen)
{
    int       rc, bytes;
    char      buf[64];
    size_t    n;
    int64_t   iv;
    uint64_t  v;

    if (spoold_conf_one_arg(node, err, errlen) != 0) {
        return -1;
    }

    bytes = (strcmp(cmd->name, "rate_bytes") == 0);

    n = strlen(node->args[0]);

    if (n >= sizeof(buf)) {
        goto invalid;
    }

    memcpy(buf, node->args[0], n + 1);

    if (n > 2 && strcmp(buf + n - 2, "/s") == 0) {
        buf[n - 2] = '\0';
    }

    if (bytes) {
        rc = rf_conf_parse_size(buf, &v);

    } else {
        rc = rf_conf_parse_int(buf, &iv);
        v = (uint64_t) iv;

        if (rc == 0 && iv < 0) {
            rc = -1;
        }
    }

    if (rc != 0) {
        goto invalid;
    }

    if (v != 0 && cmd->min != 0 && v < (uint64_t) cmd->min) {
        snprintf(err, errlen, "\"%s\" value must be 0 (unlimited) or at "
                 "least %" PRId64 " bytes per second", cmd->name, cmd->min);
        return -1;
    }

    if (cmd->max != 0 && v > (uint64_t) cmd->max) {
        snprintf(err, errlen, "\"%s\" value must be at most %" PRId64,
                 cmd->name, cmd->max);
        return -1;
    }

    *(uint64_t *) ((char *) conf + cmd->offset) = v;

    return 0;

invalid:

    snprintf(err, errlen, "invalid value \"%s\" in \"%s\", it must be %s",
             node->args[0], cmd->name,
             bytes ? "a size per second: \"10m\" or \"10m/s\", 0 for no limit"
                   : "records per second: \"200\" or \"200/s\", 0 for no "
                     "limit");

    return -1;
}


static int
spoold_conf_one_arg(const rf_conf_node_t *node, char *err, size_t errlen)
{
    if (node->block || node->nargs != 1) {
        snprintf(err, errlen, "invalid number of arguments in \"%s\" "
                 "directive", node->name);
        return -1;
    }

    return 0;
}


static int
spoold_conf_is_flag(const rf_conf_node_t *node)
{
    return node->file != NULL && strcmp(node->file, SPOOLD_FLAG_FILE) == 0;
}


const char *
spoold_conf_token(const spoold_conf_t *conf, const char *bucket, size_t len)
{
    size_t                  i;
    const spoold_bucket_t  *b;

    for (i = 0; i < conf->nbuckets; i++) {
        b = &conf->buckets[i];

        if (b->token != NULL && strlen(b->name) == len
            && memcmp(b->name, bucket, len) == 0)
        {
            return b->token;
        }
    }

    return conf->token;
}


int
spoold_conf_fwd_changed(const spoold_conf_t *a, const spoold_conf_t *b)
{
    size_t  i;

    if (spoold_conf_str_differ(a->relay, b->relay)
        || spoold_conf_str_differ(a->token, b->token)
        || spoold_conf_str_differ(a->id, b->id)
        || a->nbuckets != b->nbuckets
        || a->rate != b->rate
        || a->rate_bytes != b->rate_bytes
        || a->forward_batch != b->forward_batch
        || a->forward_batch_bytes != b->forward_batch_bytes
        || a->forward_linger != b->forward_linger
        || a->retry_max != b->retry_max
        || a->heartbeat != b->heartbeat)
    {
        return 1;
    }

    for (i = 0; i < a->nbuckets; i++) {
        if (spoold_conf_str_differ(a->buckets[i].name, b->buckets[i].name)
            || spoold_conf_str_differ(a->buckets[i].token,
                                      b->buckets[i].token))
        {
            return 1;
        }
    }

    return 0;
}


static int
spoold_conf_str_differ(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a != b;
    }

    return strcmp(a, b) != 0;
}

