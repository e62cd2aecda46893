/*
 * Copyright (C) ReplayForge contributors
 *
 * The daemons' configuration parser and directive table.  Files are read
 * whole and tokenized in one pass (quotes, escapes and ${ENV} are resolved
 * while a token is built, so an expanded value is never re-parsed), then
 * turned into a tree of nodes; "include" is resolved at parse time, as
 * nginx does.  Applying a tree through an rf_conf_cmd_t table is a second,
 * separate step, shared with the command-line flags.  Input is untrusted:
 * tokens, arguments, nesting and file sizes are all bounded.
 */


#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_conf.h"


#define RF_CONF_MAX_FILE        (64 * 1024 * 1024)
#define RF_CONF_MAX_FILES       4096    /* includes may fan out */
#define RF_CONF_MAX_ENV_NAME    255
#define RF_CONF_NO_LINE         ((unsigned) -1)

#define rf_conf_is_space(c)                                                 \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r'                \
     || (c) == '\f' || (c) == '\v')


enum {
    RF_CONF_TOK_ERROR = -1,
    RF_CONF_TOK_EOF,
    RF_CONF_TOK_WORD,
    RF_CONF_TOK_SEMI,
    RF_CONF_TOK_OPEN,
    RF_CONF_TOK_CLOSE
};


typedef struct {
    const char                 *file;       /* the name used in messages */
    char                       *dir;        /* includes are relative to it */
    const char                 *pos;
    const char                 *last;
    unsigned                    line;
} rf_conf_src_t;


typedef struct {
    dev_t                       dev;
    ino_t                       ino;
} rf_conf_file_id_t;


typedef struct {
    char                       *err;
    size_t                      errlen;
    char                       *tok;        /* RF_CONF_MAX_TOKEN + 1 */
    size_t                      len;
    rf_conf_file_id_t           open[RF_CONF_MAX_DEPTH + 1];
    int                         nopen;
    int                         nfiles;
} rf_conf_parser_t;


static void rf_conf_error(char *err, size_t errlen, const char *file,
    unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static char *rf_conf_dirname(const char *path);
static char *rf_conf_join(const char *dir, const char *path);
static int rf_conf_read_file(rf_conf_parser_t *p, const char *path,
    const rf_conf_src_t *from, unsigned from_line, rf_conf_node_t ***tail,
    int depth);
static int rf_conf_include(rf_conf_parser_t *p, const rf_conf_src_t *src,
    const char *pattern, unsigned line, rf_conf_node_t ***tail, int depth);
static int rf_conf_parse_block(rf_conf_parser_t *p, rf_conf_src_t *src,
    rf_conf_node_t ***tail, int depth, int in_block);
static rf_conf_node_t *rf_conf_add_node(rf_conf_parser_t *p,
    const rf_conf_src_t *src, char **words, int n, unsigned line,
    rf_conf_node_t ***tail);
static int rf_conf_read_token(rf_conf_parser_t *p, rf_conf_src_t *src,
    unsigned *line);
static int rf_conf_put(rf_conf_parser_t *p, const rf_conf_src_t *src,
    const char *s, size_t n);
static int rf_conf_escape(rf_conf_parser_t *p, rf_conf_src_t *src);
static int rf_conf_env(rf_conf_parser_t *p, rf_conf_src_t *src);
static const rf_conf_cmd_t *rf_conf_find(const rf_conf_cmd_t *cmds,
    const char *name, int flag);
static int rf_conf_value(const rf_conf_cmd_t *cmd, const char *value,
    void *conf, const char *subject, int flag, char *err, size_t errlen);
static void rf_conf_bad_value(const char *subject, int flag,
    const char *value, const char *hint, char *err, size_t errlen);
static void rf_conf_fmt_size(char *buf, size_t len, uint64_t v);
static void rf_conf_fmt_msec(char *buf, size_t len, uint64_t v);
static int rf_conf_apply_value(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, const char *prefix, char *err,
    size_t errlen);
static int rf_conf_call(const rf_conf_cmd_t *cmd, const rf_conf_node_t *node,
    void *conf, const char *prefix, char *err, size_t errlen);


/*
 * Set when a message already carries its "file:line: " (or "--flag: ")
 * prefix, so that an error coming back through a CUSTOM handler that
 * applied a block's children is not prefixed twice.
 */
static __thread int  rf_conf_located;


rf_conf_node_t *
rf_conf_parse_file(const char *path, char *err, size_t errlen)
{
    rf_conf_node_t    *root, **tail;
    rf_conf_parser_t   p;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    memset(&p, 0, sizeof(p));
    p.err = err;
    p.errlen = errlen;

    p.tok = malloc(RF_CONF_MAX_TOKEN + 1);
    if (p.tok == NULL) {
        rf_conf_error(err, errlen, path, RF_CONF_NO_LINE, "out of memory");
        return NULL;
    }

    root = NULL;
    tail = &root;

    if (rf_conf_read_file(&p, path, NULL, 0, &tail, 0) != 0) {
        rf_conf_free(root);
        root = NULL;
    }

    free(p.tok);

    return root;
}


rf_conf_node_t *
rf_conf_parse_string(const char *text, const char *name, char *err,
    size_t errlen)
{
    int                rc;
    rf_conf_src_t      src;
    rf_conf_node_t    *root, **tail;
    rf_conf_parser_t   p;

    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    if (name == NULL) {
        name = "(string)";
    }

    memset(&p, 0, sizeof(p));
    p.err = err;
    p.errlen = errlen;

    p.tok = malloc(RF_CONF_MAX_TOKEN + 1);
    src.dir = rf_conf_dirname(name);

    if (p.tok == NULL || src.dir == NULL) {
        rf_conf_error(err, errlen, name, 1, "out of memory");
        free(p.tok);
        free(src.dir);
        return NULL;
    }

    src.file = name;
    src.pos = text;
    src.last = text + strlen(text);
    src.line = 1;

    root = NULL;
    tail = &root;

    rc = rf_conf_parse_block(&p, &src, &tail, 0, 0);

    free(src.dir);
    free(p.tok);

    if (rc != 0) {
        rf_conf_free(root);
        return NULL;
    }

    return root;
}


void
rf_conf_free(rf_conf_node_t *nodes)
{
    int              i;
    rf_conf_node_t  *next;

    while (nodes != NULL) {
        next = nodes->next;

        /* recursion is bounded by RF_CONF_MAX_DEPTH */
        rf_conf_free(nodes->children);

        for (i = 0; i < nodes->nargs; i++) {
            free(nodes->args[i]);
        }

        free(nodes->args);
        free(nodes->name);
        free(nodes->file);
        free(nodes);

        nodes = next;
    }
}


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
    unsigned  d;
    uint64_t  u, limit;

    neg = (*s == '-');
    if (neg) {
        s++;
    }

    if (*s == '\0') {
        return -1;
    }

    limit = neg ? (uint64_t) INT64_MAX + 1 : (uint64_t) INT64_MAX;

    for (u = 0; *s != '\0'; s++) {
        if (*s < '0' || *s > '9') {
            return -1;
        }

        d = *s - '0';

        if (u > (limit - d) / 10) {
            return -1;
        }

        u = u * 10 + d;
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


int
rf_conf_parse_size(const char *s, uint64_t *bytes)
{
    unsigned  d;
    uint64_t  u, scale;

    if (*s < '0' || *s > '9') {
        return -1;
    }

    for (u = 0; *s >= '0' && *s <= '9'; s++) {
        d = *s - '0';

        if (u > (UINT64_MAX - d) / 10) {
            return -1;
        }

        u = u * 10 + d;
    }

    switch (*s) {

    case '\0':
        scale = 1;
        break;

    case 'k':
    case 'K':
        scale = 1024;
        break;

    case 'm':
    case 'M':
        scale = 1024 * 1024;
        break;

    case 'g':
    case 'G':
        scale = 1024 * 1024 * 1024;
        break;

    default:
        return -1;
    }

    if (scale != 1 && *++s != '\0') {
        return -1;
    }

    if (u > UINT64_MAX / scale) {
        return -1;
    }

    *bytes = u * scale;

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
    int       digits, rank, last;
    unsigned  d;
    uint64_t  value, total, scale;

    total = 0;
    value = 0;
    digits = 0;
    last = 7;

    for ( /* void */ ; *s != '\0'; s++) {

        if (*s >= '0' && *s <= '9') {
            d = *s - '0';

            if (value > (UINT64_MAX - d) / 10) {
                return -1;
            }

            value = value * 10 + d;
            digits = 1;
            continue;
        }

        if (!digits) {
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
            rank = 2;
            scale = 1000;
            break;

        default:
            return -1;
        }

        if (rank >= last) {
            return -1;
        }

        last = rank;

        if (value > UINT64_MAX / scale
            || total > UINT64_MAX - value * scale)
        {
            return -1;
        }

        total += value * scale;
        value = 0;
        digits = 0;
    }

    if (digits) {
        if (last <= 2
            || value > UINT64_MAX / 1000
            || total > UINT64_MAX - value * 1000)
        {
            return -1;
        }

        total += value * 1000;

    } else if (last == 7) {
        return -1;
    }

    *ms = total;

    return 0;
}


/* "file:line: message"; no file: bare message; RF_CONF_NO_LINE: "file: " */

static void
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


static char *
rf_conf_dirname(const char *path)
{
    char  *dir, *slash;

    slash = strrchr(path, '/');

    if (slash == NULL) {
        return strdup(".");
    }

    if (slash == path) {
        return strdup("/");
    }

    dir = strndup(path, slash - path);

    return dir;
}


static char *
rf_conf_join(const char *dir, const char *path)
{
    char    *full;
    size_t   dlen, plen;

    if (path[0] == '/' || strcmp(dir, ".") == 0) {
        return strdup(path);
    }

    dlen = strlen(dir);
    plen = strlen(path);

    full = malloc(dlen + plen + 2);
    if (full == NULL) {
        return NULL;
    }

    memcpy(full, dir, dlen);
    full[dlen] = '/';
    memcpy(full + dlen + 1, path, plen + 1);

    return full;
}


/* errors about the file itself are located at the include that named it */

static int
rf_conf_read_file(rf_conf_parser_t *p, const char *path,
    const rf_conf_src_t *from, unsigned from_line, rf_conf_node_t ***tail,
    int depth)
{
    int            fd, i, rc;
    char          *buf, *nul;
    size_t         size, len;
    ssize_t        n;
    unsigned       line;
    struct stat    st;
    const char    *ffile;
    rf_conf_src_t  src;

    ffile = from ? from->file : NULL;
    rc = -1;
    buf = NULL;

    fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
    if (fd == -1) {
        rf_conf_error(p->err, p->errlen, ffile, from_line,
                      "cannot open \"%s\": %s", path, strerror(errno));
        return -1;
    }

    if (fstat(fd, &st) == -1) {
        rf_conf_error(p->err, p->errlen, ffile, from_line,
                      "cannot stat \"%s\": %s", path, strerror(errno));
        goto done;
    }

    if (!S_ISREG(st.st_mode)) {
        rf_conf_error(p->err, p->errlen, ffile, from_line,
                      "\"%s\" is not a regular file", path);
        goto done;
    }

    for (i = 0; i < p->nopen; i++) {
        if (p->open[i].dev == st.st_dev && p->open[i].ino == st.st_ino) {
            rf_conf_error(p->err, p->errlen, ffile, from_line,
                          "include loop: \"%s\" includes itself", path);
            goto done;
        }
    }

    if (depth > RF_CONF_MAX_DEPTH) {
        rf_conf_error(p->err, p->errlen, ffile, from_line,
                      "blocks and includes nested too deeply "
                      "(more than %d levels)", RF_CONF_MAX_DEPTH);
        goto done;
    }

    if (++p->nfiles > RF_CONF_MAX_FILES) {
        rf_conf_error(p->err, p->errlen, ffile, from_line,
                      "too many included files (more than %d)",
                      RF_CONF_MAX_FILES);
        goto done;
    }

    if (st.st_size > RF_CONF_MAX_FILE) {
        rf_conf_error(p->err, p->errlen, ffile, from_line,
                      "\"%s\" is too large (more than %d bytes)", path,
                      RF_CONF_MAX_FILE);
        goto done;
    }

    size = st.st_size;

    buf = malloc(size + 1);
    if (buf == NULL) {
        rf_conf_error(p->err, p->errlen, ffile, from_line, "out of memory");
        goto done;
    }

    /* a file shrinking under us is read as it is now; growth is ignored */

    for (len = 0; len < size; len += n) {
        n = read(fd, buf + len, size - len);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n == -1) {
            rf_conf_error(p->err, p->errlen, ffile, from_line,
                          "cannot read \"%s\": %s", path, strerror(errno));
            goto done;
        }

        if (n == 0) {
            break;
        }
    }

    nul = memchr(buf, '\0', len);
    if (nul != NULL) {
        line = 1;
        for (i = 0; buf + i < nul; i++) {
            line += (buf[i] == '\n');
        }

        rf_conf_error(p->err, p->errlen, path, line,
                      "unexpected NUL character");
        goto done;
    }

    src.file = path;
    src.dir = rf_conf_dirname(path);
    src.pos = buf;
    src.last = buf + len;
    src.line = 1;

    if (src.dir == NULL) {
        rf_conf_error(p->err, p->errlen, ffile, from_line, "out of memory");
        goto done;
    }

    p->open[p->nopen].dev = st.st_dev;
    p->open[p->nopen].ino = st.st_ino;
    p->nopen++;

    rc = rf_conf_parse_block(p, &src, tail, depth, 0);

    p->nopen--;
    free(src.dir);

done:

    free(buf);
    close(fd);

    return rc;
}


/*
 * A pattern that matches nothing is not an error (an empty conf.d/), but a
 * literal name that does not exist is.
 */

static int
rf_conf_include(rf_conf_parser_t *p, const rf_conf_src_t *src,
    const char *pattern, unsigned line, rf_conf_node_t ***tail, int depth)
{
    int      rc;
    char    *path;
    size_t   i;
    glob_t   g;

    path = rf_conf_join(src->dir, pattern);
    if (path == NULL) {
        rf_conf_error(p->err, p->errlen, src->file, line, "out of memory");
        return -1;
    }

    if (strpbrk(pattern, "*?[") == NULL) {
        rc = rf_conf_read_file(p, path, src, line, tail, depth + 1);
        free(path);
        return rc;
    }

    rc = glob(path, 0, NULL, &g);

    switch (rc) {

    case 0:
        break;

    case GLOB_NOMATCH:
        free(path);
        return 0;

    case GLOB_NOSPACE:
        rf_conf_error(p->err, p->errlen, src->file, line, "out of memory");
        free(path);
        return -1;

    default:
        rf_conf_error(p->err, p->errlen, src->file, line,
                      "cannot read the files matching \"%s\"", path);
        free(path);
        return -1;
    }

    for (i = 0; i < g.gl_pathc; i++) {
        rc = rf_conf_read_file(p, g.gl_pathv[i], src, line, tail, depth + 1);
        if (rc != 0) {
            break;
        }
    }

    globfree(&g);
    free(path);

    return rc;
}


static int
rf_conf_parse_block(rf_conf_parser_t *p, rf_conf_src_t *src,
    rf_conf_node_t ***tail, int depth, int in_block)
{
    int               i, n, rc;
    char             *words[RF_CONF_MAX_ARGS + 1];
    unsigned          line, dline;
    rf_conf_node_t   *node, **children;

    n = 0;
    dline = 0;

    for ( ;; ) {

        rc = rf_conf_read_token(p, src, &line);

        switch (rc) {

        case RF_CONF_TOK_ERROR:
            goto failed;

        case RF_CONF_TOK_WORD:
            if (n == RF_CONF_MAX_ARGS + 1) {
                rf_conf_error(p->err, p->errlen, src->file, line,
                              "too many arguments in \"%s\" directive "
                              "(at most %d)", words[0], RF_CONF_MAX_ARGS);
                goto failed;
            }

            words[n] = malloc(p->len + 1);
            if (words[n] == NULL) {
                rf_conf_error(p->err, p->errlen, src->file, line,
                              "out of memory");
                goto failed;
            }

            memcpy(words[n], p->tok, p->len + 1);

            if (n++ == 0) {
                dline = line;
            }

            continue;

        case RF_CONF_TOK_EOF:
            if (n > 0) {
                rf_conf_error(p->err, p->errlen, src->file, line,
                              "unexpected end of file, "
                              "expecting \";\" or \"}\"");
                goto failed;
            }

            if (in_block) {
                rf_conf_error(p->err, p->errlen, src->file, line,
                              "unexpected end of file, expecting \"}\"");
                goto failed;
            }

            return 0;

        case RF_CONF_TOK_CLOSE:
            if (n > 0 || !in_block) {
                rf_conf_error(p->err, p->errlen, src->file, line,
                              "unexpected \"}\"");
                goto failed;
            }

            return 0;

        default: /* RF_CONF_TOK_SEMI, RF_CONF_TOK_OPEN */
            break;
        }

        if (n == 0) {
            rf_conf_error(p->err, p->errlen, src->file, line,
                          "unexpected \"%c\"",
                          rc == RF_CONF_TOK_SEMI ? ';' : '{');
            goto failed;
        }

        if (strcmp(words[0], "include") == 0) {
            if (rc == RF_CONF_TOK_OPEN) {
                rf_conf_error(p->err, p->errlen, src->file, dline,
                              "\"include\" directive does not take a block");
                goto failed;
            }

            if (n != 2) {
                rf_conf_error(p->err, p->errlen, src->file, dline,
                              "invalid number of arguments "
                              "in \"include\" directive");
                goto failed;
            }

            if (rf_conf_include(p, src, words[1], dline, tail, depth) != 0) {
                goto failed;
            }

            for (i = 0; i < n; i++) {
                free(words[i]);
            }

            n = 0;
            continue;
        }

        if (rc == RF_CONF_TOK_OPEN && depth >= RF_CONF_MAX_DEPTH) {
            rf_conf_error(p->err, p->errlen, src->file, dline,
                          "blocks and includes nested too deeply "
                          "(more than %d levels)", RF_CONF_MAX_DEPTH);
            goto failed;
        }

        node = rf_conf_add_node(p, src, words, n, dline, tail);
        if (node == NULL) {
            goto failed;
        }

        n = 0;

        if (rc == RF_CONF_TOK_OPEN) {
            node->block = 1;
            children = &node->children;

            if (rf_conf_parse_block(p, src, &children, depth + 1, 1) != 0) {
                return -1;
            }
        }
    }

failed:

    for (i = 0; i < n; i++) {
        free(words[i]);
    }

    return -1;
}


/* takes the words on success; on failure the caller still owns them */

static rf_conf_node_t *
rf_conf_add_node(rf_conf_parser_t *p, const rf_conf_src_t *src,
    char **words, int n, unsigned line, rf_conf_node_t ***tail)
{
    int              i;
    rf_conf_node_t  *node;

    node = calloc(1, sizeof(rf_conf_node_t));
    if (node == NULL) {
        goto nomem;
    }

    node->args = malloc(n * sizeof(char *));    /* nargs and a NULL */
    node->file = strdup(src->file);

    if (node->args == NULL || node->file == NULL) {
        free(node->args);
        free(node->file);
        free(node);
        goto nomem;
    }

    node->name = words[0];

    for (i = 1; i < n; i++) {
        node->args[i - 1] = words[i];
    }

    node->args[n - 1] = NULL;
    node->nargs = n - 1;
    node->line = line;

    **tail = node;
    *tail = &node->next;

    return node;

nomem:

    rf_conf_error(p->err, p->errlen, src->file, line, "out of memory");

    return NULL;
}


/*
 * Quotes open a token only at its start, as in nginx; a closing quote must
 * be followed by a space, ";", "{" or "}".  "#" starts a comment only
 * where a token could start.
 */

static int
rf_conf_read_token(rf_conf_parser_t *p, rf_conf_src_t *src, unsigned *line)
{
    int   rc;
    char  ch, quote;

    for ( ;; ) {
        if (src->pos == src->last) {
            *line = src->line;
            return RF_CONF_TOK_EOF;
        }

        ch = *src->pos;

        if (ch == '#') {
            while (src->pos < src->last && *src->pos != '\n') {
                src->pos++;
            }

            continue;
        }

        if (!rf_conf_is_space(ch)) {
            break;
        }

        if (ch == '\n') {
            src->line++;
        }

        src->pos++;
    }

    *line = src->line;

    switch (ch) {

    case ';':
        src->pos++;
        return RF_CONF_TOK_SEMI;

    case '{':
        src->pos++;
        return RF_CONF_TOK_OPEN;

    case '}':
        src->pos++;
        return RF_CONF_TOK_CLOSE;
    }

    p->len = 0;
    quote = 0;

    if (ch == '"' || ch == '\'') {
        quote = ch;
        src->pos++;
    }

    for ( ;; ) {

        if (src->pos == src->last) {
            if (quote) {
                rf_conf_error(p->err, p->errlen, src->file, *line,
                              "unterminated quoted string");
                return RF_CONF_TOK_ERROR;
            }

            break;
        }

        ch = *src->pos;

        if (quote && ch == quote) {
            src->pos++;

            if (src->pos == src->last) {
                break;
            }

            ch = *src->pos;

            if (rf_conf_is_space(ch) || ch == ';' || ch == '{' || ch == '}')
            {
                break;
            }

            if (isprint((unsigned char) ch)) {
                rf_conf_error(p->err, p->errlen, src->file, src->line,
                              "unexpected \"%c\" after quoted string", ch);
            } else {
                rf_conf_error(p->err, p->errlen, src->file, src->line,
                              "unexpected byte 0x%02x after quoted string",
                              (unsigned char) ch);
            }

            return RF_CONF_TOK_ERROR;
        }

        if (!quote
            && (rf_conf_is_space(ch) || ch == ';' || ch == '{' || ch == '}'))
        {
            break;
        }

        if (ch == '\\') {
            rc = rf_conf_escape(p, src);

        } else if (ch == '$' && src->last - src->pos > 1
                   && src->pos[1] == '{')
        {
            rc = rf_conf_env(p, src);

        } else {
            if (ch == '\n') {
                src->line++;
            }

            rc = rf_conf_put(p, src, &ch, 1);
            src->pos++;
        }

        if (rc != 0) {
            return RF_CONF_TOK_ERROR;
        }
    }

    p->tok[p->len] = '\0';

    return RF_CONF_TOK_WORD;
}


static int
rf_conf_put(rf_conf_parser_t *p, const rf_conf_src_t *src, const char *s,
    size_t n)
{
    if (n > RF_CONF_MAX_TOKEN - p->len) {
        rf_conf_error(p->err, p->errlen, src->file, src->line,
                      "token too long (more than %d bytes)",
                      RF_CONF_MAX_TOKEN);
        return -1;
    }

    memcpy(p->tok + p->len, s, n);
    p->len += n;

    return 0;
}


/* unknown escapes are kept as written, as nginx does ("\d" in a regex) */

static int
rf_conf_escape(rf_conf_parser_t *p, rf_conf_src_t *src)
{
    char    c[2];
    size_t  n;

    src->pos++;

    if (src->pos == src->last) {
        return rf_conf_put(p, src, "\\", 1);
    }

    c[0] = *src->pos++;
    n = 1;

    switch (c[0]) {

    case 'n':
        c[0] = '\n';
        break;

    case 't':
        c[0] = '\t';
        break;

    case 'r':
        c[0] = '\r';
        break;

    case '"':
    case '\'':
    case '\\':
    case '$':
        break;

    default:
        if (c[0] == '\n') {
            src->line++;
        }

        c[1] = c[0];
        c[0] = '\\';
        n = 2;
    }

    return rf_conf_put(p, src, c, n);
}


static int
rf_conf_env(rf_conf_parser_t *p, rf_conf_src_t *src)
{
    char         name[RF_CONF_MAX_ENV_NAME + 1];
    size_t       n;
    const char  *s, *value;

    s = src->pos + 2;

    for (n = 0; s + n < src->last && n <= RF_CONF_MAX_ENV_NAME; n++) {
        if (!((s[n] >= 'A' && s[n] <= 'Z') || (s[n] >= 'a' && s[n] <= 'z')
              || (s[n] >= '0' && s[n] <= '9') || s[n] == '_'))
        {
            break;
        }
    }

    if (n == 0 || n > RF_CONF_MAX_ENV_NAME || s + n == src->last
        || s[n] != '}')
    {
        rf_conf_error(p->err, p->errlen, src->file, src->line,
                      "invalid environment variable reference, "
                      "expecting \"${NAME}\" where NAME is letters, "
                      "digits and \"_\"");
        return -1;
    }

    memcpy(name, s, n);
    name[n] = '\0';

    value = getenv(name);
    if (value == NULL) {
        rf_conf_error(p->err, p->errlen, src->file, src->line,
                      "environment variable \"%s\" is not set", name);
        return -1;
    }

    src->pos = s + n + 1;

    return rf_conf_put(p, src, value, strlen(value));
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
            snprintf(bound, sizeof(bound), "%" PRId64, cmd->min);
            most = "least";
            goto bounds;
        }

        if (cmd->max != 0 && iv > cmd->max) {
            snprintf(bound, sizeof(bound), "%" PRId64, cmd->max);
            most = "most";
            goto bounds;
        }

        *(int64_t *) field = iv;

        return 0;

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

        if (cmd->type == RF_CONF_SIZE) {
            rf_conf_fmt_size(bound, sizeof(bound), uv);
        } else {
            rf_conf_fmt_msec(bound, sizeof(bound), uv);
        }

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
rf_conf_fmt_size(char *buf, size_t len, uint64_t v)
{
    if (v != 0 && v % (1024 * 1024 * 1024) == 0) {
        snprintf(buf, len, "%" PRIu64 "g", v >> 30);

    } else if (v != 0 && v % (1024 * 1024) == 0) {
        snprintf(buf, len, "%" PRIu64 "m", v >> 20);

    } else if (v != 0 && v % 1024 == 0) {
        snprintf(buf, len, "%" PRIu64 "k", v >> 10);

    } else {
        snprintf(buf, len, "%" PRIu64, v);
    }
}


static void
rf_conf_fmt_msec(char *buf, size_t len, uint64_t v)
{
    int  i;

    static const struct {
        uint64_t     ms;
        const char  *unit;
    } units[] = {
        { 7 * 24 * 60 * 60 * 1000ULL, "w" },
        { 24 * 60 * 60 * 1000ULL, "d" },
        { 60 * 60 * 1000ULL, "h" },
        { 60 * 1000ULL, "m" },
        { 1000ULL, "s" },
        { 1ULL, "ms" }
    };

    if (v == 0) {
        snprintf(buf, len, "0");
        return;
    }

    for (i = 0; v % units[i].ms != 0; i++) {
        /* void */
    }

    snprintf(buf, len, "%" PRIu64 "%s", v / units[i].ms, units[i].unit);
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
