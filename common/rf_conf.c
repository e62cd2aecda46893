/*
 * Copyright (C) ReplayForge contributors
 *
 * The daemons' directive table: a node tree from rf_conf_parse.c, or a
 * command-line flag, is applied through an rf_conf_cmd_t table (name,
 * type, bounds, default, offset) that converts, range-checks and stores
 * each value; parsing and applying are separate steps, as in h2o.  Every
 * error is one "file:line: message" (or "--flag: message") string.
 */


#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "rf_conf.h"
#include "rf_conf_int.h"


typedef struct {
    uint64_t                    scale;
    const char                 *name;
} rf_conf_unit_t;


static int rf_conf_digits(const char **s, uint64_t limit, uint64_t *v);
static const rf_conf_cmd_t *rf_conf_find(const rf_conf_cmd_t *cmds,
    const char *name, int flag);
static int rf_conf_value(const rf_conf_cmd_t *cmd, const char *value,
    void *conf, const char *subject, int flag, char *err, size_t errlen);
static void rf_conf_bad_value(const char *subject, int flag,
    const char *value, const char *hint, char *err, size_t errlen);
static void rf_conf_fmt(char *buf, size_t len, uint64_t v,
    const rf_conf_unit_t *units);
static int rf_conf_apply_value(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, const char *prefix, char *err,
    size_t errlen);
static int rf_conf_call(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, const char *prefix, char *err, size_t errlen);


/* largest first; each ends with the unit of 1, which a bare number has */

static const rf_conf_unit_t  rf_conf_size_units[] = {
    { 1024 * 1024 * 1024ULL, "g" },
    { 1024 * 1024ULL, "m" },
    { 1024ULL, "k" },
    { 1ULL, "" }
};

static const rf_conf_unit_t  rf_conf_msec_units[] = {
    { 7 * 24 * 60 * 60 * 1000ULL, "w" },
    { 24 * 60 * 60 * 1000ULL, "d" },
    { 60 * 60 * 1000ULL, "h" },
    { 60 * 1000ULL, "m" },
    { 1000ULL, "s" },
    { 1ULL, "ms" }
};


/*
 * Set when a message already carries its "file:line: " (or "--flag: ")
 * prefix, so that an error coming back through a CUSTOM handler that
 * applied a block's children is not prefixed twice.
 */
static __thread int  rf_conf_located;


int
rf_conf_defaults(const rf_conf_cmd_t *cmds, void *conf, char *err,
    size_t errlen)
{
    char                  subject[256];
    const rf_conf_cmd_t  *cmd;

    for (cmd = cmds; cmd->name != NULL; cmd++) {
        if (cmd->dflt == NULL || cmd->type == RF_CONF_CUSTOM) {
            continue;
        }

        snprintf(subject, sizeof(subject), "\"%s\" directive default",
                 cmd->name);

        if (rf_conf_value(cmd, cmd->dflt, conf, subject, 0, err, errlen)
            != 0)
        {
            return -1;
        }
    }

    return 0;
}


int
rf_conf_apply(const rf_conf_cmd_t *cmds, const rf_conf_node_t *nodes,
    void *conf, char *err, size_t errlen)
{
    int                    n, rc;
    char                   prefix[4096];
    size_t                 ncmds;
    unsigned char         *seen;
    const rf_conf_cmd_t   *cmd;
    const rf_conf_node_t  *node;

    for (ncmds = 0; cmds[ncmds].name != NULL; ncmds++) {
        /* void */
    }

    seen = calloc(ncmds + 1, 1);
    if (seen == NULL) {
        rf_conf_error(err, errlen, nodes ? nodes->file : NULL,
                      nodes ? nodes->line : RF_CONF_NO_LINE,
                      "out of memory");
        return -1;
    }

    rc = -1;

    for (node = nodes; node != NULL; node = node->next) {

        cmd = rf_conf_find(cmds, node->name, 0);
        if (cmd == NULL) {
            rf_conf_error(err, errlen, node->file, node->line,
                          "unknown directive \"%s\"", node->name);
            goto done;
        }

        if (seen[cmd - cmds] && !cmd->multi) {
            rf_conf_error(err, errlen, node->file, node->line,
                          "\"%s\" directive is duplicate", node->name);
            goto done;
        }

        seen[cmd - cmds] = 1;

        n = snprintf(prefix, sizeof(prefix), "%s:%u: ", node->file,
                     node->line);
        if (n < 0 || (size_t) n >= sizeof(prefix)) {
            prefix[0] = '\0';
        }

        if (cmd->type == RF_CONF_CUSTOM) {
            if (rf_conf_call(cmd, node, conf, prefix, err, errlen) != 0) {
                goto done;
            }

            continue;
        }

        if (node->block) {
            rf_conf_error(err, errlen, node->file, node->line,
                          "\"%s\" directive does not take a block",
                          node->name);
            goto done;
        }

        if (node->nargs != 1) {
            rf_conf_error(err, errlen, node->file, node->line,
                          "invalid number of arguments in \"%s\" directive",
                          node->name);
            goto done;
        }

        if (rf_conf_apply_value(cmd, node, conf, prefix, err, errlen) != 0) {
            goto done;
        }
    }

    rc = 0;

done:

    free(seen);

    return rc;
}


int
rf_conf_set(const rf_conf_cmd_t *cmds, void *conf, const char *name,
    const char *value, char *err, size_t errlen)
{
    char                  flag[256], prefix[260];
    char                 *args[2];
    size_t                i;
    rf_conf_node_t        node;
    const rf_conf_cmd_t  *cmd;

    while (*name == '-') {
        name++;
    }

    cmd = rf_conf_find(cmds, name, 1);
    if (cmd == NULL) {
        rf_conf_error(err, errlen, NULL, 0, "unknown option --%s", name);
        return -1;
    }

    /* the flag is always named in its canonical "--max-buffer" spelling */

    snprintf(flag, sizeof(flag), "--%s", cmd->name);
    for (i = 2; flag[i] != '\0'; i++) {
        if (flag[i] == '_') {
            flag[i] = '-';
        }
    }

    if (value == NULL) {
        if (cmd->type != RF_CONF_FLAG) {
            rf_conf_error(err, errlen, NULL, 0, "option %s requires a value",
                          flag);
            return -1;
        }

        value = "on";
    }

    if (cmd->type != RF_CONF_CUSTOM) {
        return rf_conf_value(cmd, value, conf, flag, 1, err, errlen);
    }

    args[0] = (char *) value;
    args[1] = NULL;

    memset(&node, 0, sizeof(node));
    node.name = (char *) cmd->name;
    node.args = args;
    node.nargs = 1;
    node.file = (char *) "(command line)";

    snprintf(prefix, sizeof(prefix), "%s: ", flag);

    return rf_conf_call(cmd, &node, conf, prefix, err, errlen);
}


void
rf_conf_release(const rf_conf_cmd_t *cmds, void *conf)
{
    char                **p;
    const rf_conf_cmd_t  *cmd;

    for (cmd = cmds; cmd->name != NULL; cmd++) {
        if (cmd->type == RF_CONF_STR) {
            p = (char **) ((char *) conf + cmd->offset);
            free(*p);
            *p = NULL;
        }
    }
}


int
rf_conf_parse_int(const char *s, int64_t *v)
{
    int       neg;
    uint64_t  u, limit;

    neg = (*s == '-');
    if (neg) {
        s++;
    }

    limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

    if (rf_conf_digits(&s, limit, &u) != 0 || *s != '\0') {
        return -1;
    }

    if (!neg) {
        *v = (int64_t) u;

    } else if (u == (uint64_t) INT64_MAX + 1) {
        *v = INT64_MIN;

    } else {
        *v = -(int64_t) u;
    }

    return 0;
}


/* the suffix is the whole rest: "64k" and "64K", but not "64kb" */

int
rf_conf_parse_size(const char *s, uint64_t *bytes)
{
    uint64_t               u;
    const rf_conf_unit_t  *unit;

    if (rf_conf_digits(&s, UINT64_MAX, &u) != 0) {
        return -1;
    }

    for (unit = rf_conf_size_units; strcasecmp(s, unit->name) != 0; unit++) {
        if (unit->scale == 1) {
            return -1;
        }
    }

    if (u > UINT64_MAX / unit->scale) {
        return -1;
    }

    *bytes = u * unit->scale;

    return 0;
}


/*
 * Like nginx's ngx_parse_time(): "1h30m", units in decreasing order, each
 * at most once; a trailing bare number counts as seconds ("1m30" is 90s,
 * "30" is 30s), so it may not follow "s" or "ms".
 */

int
rf_conf_parse_msec(const char *s, uint64_t *ms)
{
    int       rank, last;
    uint64_t  value, total, scale;

    total = 0;
    last = 7;

    while (*s != '\0') {

        if (rf_conf_digits(&s, UINT64_MAX, &value) != 0) {
            return -1;
        }

        switch (*s) {

        case 'w':
            rank = 6;
            scale = 7 * 24 * 60 * 60 * 1000ULL;
            break;

        case 'd':
            rank = 5;
            scale = 24 * 60 * 60 * 1000ULL;
            break;

        case 'h':
            rank = 4;
            scale = 60 * 60 * 1000ULL;
            break;

        case 'm':
            if (s[1] == 's') {
                s++;
                rank = 1;
                scale = 1;
                break;
            }

            rank = 3;
            scale = 60 * 1000ULL;
            break;

        case 's':
        case '\0':
            rank = 2;
            scale = 1000;
            break;

        default:
            return -1;
        }

        if (rank >= last
            || value > UINT64_MAX / scale
            || total > UINT64_MAX - value * scale)
        {
            return -1;
        }

        last = rank;
        total += value * scale;

        if (*s != '\0') {
            s++;
        }
    }

    if (last == 7) {
        return -1;                      /* "" */
    }

    *ms = total;

    return 0;
}


/* the whole file is the token, without trailing blanks and newlines */

int
rf_conf_token_file(const char *path, size_t max, char **token, char *err,
    size_t errlen)
{
    char    *buf, *t;
    FILE    *f;
    size_t   n;

    buf = malloc(max + 2);
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read token_file \"%s\": %s", path,
                 strerror(errno));
        goto failed;
    }

    n = fread(buf, 1, max + 1, f);
    fclose(f);

    if (n > max) {
        snprintf(err, errlen, "token_file \"%s\" is longer than %zu bytes",
                 path, max);
        goto failed;
    }

    while (n > 0 && isspace((unsigned char) buf[n - 1])) {
        n--;
    }

    buf[n] = '\0';

    if (n == 0 || memchr(buf, '\0', n) != NULL) {
        snprintf(err, errlen, "token_file \"%s\" holds no token", path);
        goto failed;
    }

    t = strdup(buf);
    if (t == NULL) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    free(buf);
    free(*token);
    *token = t;

    return 0;

failed:

    free(buf);

    return -1;
}


void
rf_conf_error(char *err, size_t errlen, const char *file, unsigned line,
    const char *fmt, ...)
{
    int      n;
    va_list  args;

    if (err == NULL || errlen == 0) {
        return;
    }

    if (file == NULL) {
        n = 0;

    } else if (line == RF_CONF_NO_LINE) {
        n = snprintf(err, errlen, "%s: ", file);

    } else {
        n = snprintf(err, errlen, "%s:%u: ", file, line);
    }

    if (n >= 0 && (size_t) n < errlen) {
        va_start(args, fmt);
        vsnprintf(err + n, errlen - n, fmt, args);
        va_end(args);
    }

    rf_conf_located = (file != NULL);
}


/* one or more digits, at most limit; *s is left after them */

static int
rf_conf_digits(const char **s, uint64_t limit, uint64_t *v)
{
    unsigned     d;
    uint64_t     u;
    const char  *p;

    p = *s;

    if (*p < '0' || *p > '9') {
        return -1;
    }

    for (u = 0; *p >= '0' && *p <= '9'; p++) {
        d = *p - '0';

        if (u > (limit - d) / 10) {
            return -1;
        }

        u = u * 10 + d;
    }

    *s = p;
    *v = u;

    return 0;
}


/* flag names may spell "max_buffer" as "max-buffer" */

static const rf_conf_cmd_t *
rf_conf_find(const rf_conf_cmd_t *cmds, const char *name, int flag)
{
    const char  *a, *b;

    for ( /* void */ ; cmds->name != NULL; cmds++) {

        if (!flag) {
            if (strcmp(cmds->name, name) == 0) {
                return cmds;
            }

            continue;
        }

        for (a = cmds->name, b = name; *a != '\0'; a++, b++) {
            if (*a != *b
                && !((*a == '_' || *a == '-') && (*b == '_' || *b == '-')))
            {
                break;
            }
        }

        if (*a == '\0' && *b == '\0') {
            return cmds;
        }
    }

    return NULL;
}


/*
 * Converts, range-checks and stores one value.  subject is "\"name\"
 * directive" or "--name" (flag set), which changes the message order.
 */

static int
rf_conf_value(const rf_conf_cmd_t *cmd, const char *value, void *conf,
    const char *subject, int flag, char *err, size_t errlen)
{
    int          i, rc;
    char        *s, **sp, hint[512], bound[32];
    void        *field;
    size_t       n;
    int64_t      iv;
    uint64_t     uv;
    const char  *sep, *most;

    field = (char *) conf + cmd->offset;

    switch (cmd->type) {

    case RF_CONF_STR:
        s = strdup(value);
        if (s == NULL) {
            rf_conf_error(err, errlen, NULL, 0, "out of memory");
            return -1;
        }

        sp = field;
        free(*sp);
        *sp = s;

        return 0;

    case RF_CONF_INT:
        if (rf_conf_parse_int(value, &iv) != 0) {
            break;
        }

        if (iv < cmd->min) {
            iv = cmd->min;
            most = "least";

        } else if (cmd->max != 0 && iv > cmd->max) {
            iv = cmd->max;
            most = "most";

        } else {
            *(int64_t *) field = iv;
            return 0;
        }

        snprintf(bound, sizeof(bound), "%" PRId64, iv);

        goto bounds;

    case RF_CONF_SIZE:
    case RF_CONF_MSEC:
        if (cmd->type == RF_CONF_SIZE) {
            rc = rf_conf_parse_size(value, &uv);
        } else {
            rc = rf_conf_parse_msec(value, &uv);
        }

        if (rc != 0) {
            break;
        }

        if (cmd->min > 0 && uv < (uint64_t) cmd->min) {
            uv = cmd->min;
            most = "least";

        } else if (cmd->max > 0 && uv > (uint64_t) cmd->max) {
            uv = cmd->max;
            most = "most";

        } else {
            *(uint64_t *) field = uv;
            return 0;
        }

        rf_conf_fmt(bound, sizeof(bound), uv,
                    (cmd->type == RF_CONF_SIZE) ? rf_conf_size_units
                                                : rf_conf_msec_units);

        goto bounds;

    case RF_CONF_FLAG:
        if (strcmp(value, "on") == 0) {
            *(int *) field = 1;
            return 0;
        }

        if (strcmp(value, "off") == 0) {
            *(int *) field = 0;
            return 0;
        }

        rf_conf_bad_value(subject, flag, value,
                          ", it must be \"on\" or \"off\"", err, errlen);
        return -1;

    case RF_CONF_ENUM:
        for (i = 0; cmd->enums != NULL && cmd->enums[i] != NULL; i++) {
            if (strcmp(value, cmd->enums[i]) == 0) {
                *(int *) field = i;
                return 0;
            }
        }

        n = snprintf(hint, sizeof(hint), ", it must be ");

        for (i = 0; cmd->enums != NULL && cmd->enums[i] != NULL; i++) {
            sep = (i == 0) ? "" : (cmd->enums[i + 1] ? ", " : " or ");

            if (n < sizeof(hint)) {
                n += snprintf(hint + n, sizeof(hint) - n, "%s\"%s\"", sep,
                              cmd->enums[i]);
            }
        }

        rf_conf_bad_value(subject, flag, value, (i > 0) ? hint : "", err,
                          errlen);
        return -1;

    default:
        rf_conf_error(err, errlen, NULL, 0, "%s has an unknown type %d",
                      subject, (int) cmd->type);
        return -1;
    }

    rf_conf_bad_value(subject, flag, value, "", err, errlen);

    return -1;

bounds:

    rf_conf_error(err, errlen, NULL, 0, "%s value must be at %s %s",
                  subject, most, bound);

    return -1;
}


static void
rf_conf_bad_value(const char *subject, int flag, const char *value,
    const char *hint, char *err, size_t errlen)
{
    if (flag) {
        rf_conf_error(err, errlen, NULL, 0, "invalid value \"%s\" for %s%s",
                      value, subject, hint);

    } else {
        rf_conf_error(err, errlen, NULL, 0, "%s invalid value \"%s\"%s",
                      subject, value, hint);
    }
}


/* bounds are shown in the largest unit that divides them: 1m, not 1048576 */

static void
rf_conf_fmt(char *buf, size_t len, uint64_t v, const rf_conf_unit_t *units)
{
    if (v == 0) {
        snprintf(buf, len, "0");
        return;
    }

    while (v % units->scale != 0) {
        units++;
    }

    snprintf(buf, len, "%" PRIu64 "%s", v / units->scale, units->name);
}


/* the message goes after the prefix, or is cut off with it */

static int
rf_conf_apply_value(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, const char *prefix, char *err, size_t errlen)
{
    int     rc;
    char    subject[256];
    size_t  n;

    snprintf(subject, sizeof(subject), "\"%s\" directive", cmd->name);

    n = strlen(prefix);

    if (err != NULL && errlen > 0) {
        snprintf(err, errlen, "%s", prefix);
    }

    if (err != NULL && errlen > n) {
        rc = rf_conf_value(cmd, node->args[0], conf, subject, 0, err + n,
                           errlen - n);
    } else {
        rc = rf_conf_value(cmd, node->args[0], conf, subject, 0, NULL, 0);
    }

    if (rc != 0) {
        rf_conf_located = 1;
        return -1;
    }

    return 0;
}


/*
 * Runs a CUSTOM handler with err already holding prefix ("file:line: " or
 * "--flag: "); a handler that applied a block's children and failed there
 * returns a message that is already located, and the prefix is dropped.
 */

static int
rf_conf_call(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, const char *prefix, char *err, size_t errlen)
{
    int     rc;
    char    tmp[256];
    size_t  n;

    if (cmd->handler == NULL) {
        rf_conf_error(err, errlen, NULL, 0,
                      "%s\"%s\" directive has no handler", prefix,
                      cmd->name);
        rf_conf_located = 1;
        return -1;
    }

    n = strlen(prefix);

    if (err == NULL || errlen <= n) {
        if (err != NULL && errlen > 0) {
            snprintf(err, errlen, "%s", prefix);
        }

        tmp[0] = '\0';
        return cmd->handler(cmd, node, conf, tmp, sizeof(tmp));
    }

    memcpy(err, prefix, n + 1);
    rf_conf_located = 0;

    rc = cmd->handler(cmd, node, conf, err + n, errlen - n);
    if (rc == 0) {
        return 0;
    }

    if (rf_conf_located) {
        memmove(err, err + n, strlen(err + n) + 1);

    } else if (err[n] == '\0') {
        snprintf(err + n, errlen - n, "invalid \"%s\" directive",
                 node->name);
    }

    rf_conf_located = 1;

    return -1;
}
