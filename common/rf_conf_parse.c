/*
 * Copyright (C) ReplayForge contributors
 *
 * The configuration language: files are read whole and tokenized in one
 * pass (quotes, escapes and ${ENV} are resolved while a token is built, so
 * an expanded value is never re-parsed), then turned into a tree of nodes;
 * "include" is resolved at parse time, as nginx does.  Applying the tree
 * is rf_conf.c's business.  Input is untrusted: tokens, arguments, nesting
 * and file sizes are all bounded.
 */


#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rf_conf.h"
#include "rf_conf_int.h"


#define RF_CONF_MAX_FILE        (64 * 1024 * 1024)
#define RF_CONF_MAX_FILES       4096    /* includes may fan out */
#define RF_CONF_MAX_ENV_NAME    255

#define rf_conf_is_space(c)                                                 \
    ((c) == ' ' || (c) == '\t' || (c) == '\n' || (c) == '\r'                \
     || (c) == '\f' || (c) == '\v')

#define rf_conf_is_delim(c)                                                 \
    (rf_conf_is_space(c) || (c) == ';' || (c) == '{' || (c) == '}')


enum {
    RF_CONF_TOK_ERROR = -1,
    RF_CONF_TOK_EOF,
    RF_CONF_TOK_WORD,
    RF_CONF_TOK_SEMI,
    RF_CONF_TOK_OPEN,
    RF_CONF_TOK_CLOSE
};


typedef struct {
    const char                 *file;       /* includes are relative to it */
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


static int rf_conf_parser_init(rf_conf_parser_t *p, char *err,
    size_t errlen);
static char *rf_conf_include_path(const char *file, const char *pattern);
static int rf_conf_read_file(rf_conf_parser_t *p, const char *path,
    const rf_conf_src_t *from, unsigned from_line, rf_conf_node_t ***tail,
    int depth);
static char *rf_conf_read_fd(rf_conf_parser_t *p, int fd, const char *path,
    size_t size, const char *ffile, unsigned from_line, size_t *len);
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


rf_conf_node_t *
rf_conf_parse_file(const char *path, char *err, size_t errlen)
{
    rf_conf_node_t    *root, **tail;
    rf_conf_parser_t   p;

    if (rf_conf_parser_init(&p, err, errlen) != 0) {
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
    rf_conf_src_t      src;
    rf_conf_node_t    *root, **tail;
    rf_conf_parser_t   p;

    if (name == NULL) {
        name = "(string)";
    }

    if (rf_conf_parser_init(&p, err, errlen) != 0) {
        rf_conf_error(err, errlen, name, 1, "out of memory");
        return NULL;
    }

    src.file = name;
    src.pos = text;
    src.last = text + strlen(text);
    src.line = 1;

    root = NULL;
    tail = &root;

    if (rf_conf_parse_block(&p, &src, &tail, 0, 0) != 0) {
        rf_conf_free(root);
        root = NULL;
    }

    free(p.tok);

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


/* clears err, so that an empty config leaves it "" */

static int
rf_conf_parser_init(rf_conf_parser_t *p, char *err, size_t errlen)
{
    if (err != NULL && errlen > 0) {
        err[0] = '\0';
    }

    memset(p, 0, sizeof(rf_conf_parser_t));
    p->err = err;
    p->errlen = errlen;

    p->tok = malloc(RF_CONF_MAX_TOKEN + 1);

    return (p->tok == NULL) ? -1 : 0;
}


/* errors about the file itself are located at the include that named it */

static int
rf_conf_read_file(rf_conf_parser_t *p, const char *path,
    const rf_conf_src_t *from, unsigned from_line, rf_conf_node_t ***tail,
    int depth)
{
    int            fd, i, rc;
    char          *buf;
    size_t         len;
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

    buf = rf_conf_read_fd(p, fd, path, st.st_size, ffile, from_line, &len);
    if (buf == NULL) {
        goto done;
    }

    src.file = path;
    src.pos = buf;
    src.last = buf + len;
    src.line = 1;

    p->open[p->nopen].dev = st.st_dev;
    p->open[p->nopen].ino = st.st_ino;
    p->nopen++;

    rc = rf_conf_parse_block(p, &src, tail, depth, 0);

    p->nopen--;

done:

    free(buf);
    close(fd);

    return rc;
}


/*
 * Reads at most size bytes into a buffer that contains no NUL; a file
 * shrinking under us is read as it is now, growth is ignored.
 */

static char *
rf_conf_read_fd(rf_conf_parser_t *p, int fd, const char *path, size_t size,
    const char *ffile, unsigned from_line, size_t *len)
{
    char      *buf, *nul;
    size_t     i;
    ssize_t    n;
    unsigned   line;

    buf = malloc(size + 1);
    if (buf == NULL) {
        rf_conf_error(p->err, p->errlen, ffile, from_line, "out of memory");
        return NULL;
    }

    for (*len = 0; *len < size; *len += n) {
        n = read(fd, buf + *len, size - *len);

        if (n == -1 && errno == EINTR) {
            n = 0;
            continue;
        }

        if (n == -1) {
            rf_conf_error(p->err, p->errlen, ffile, from_line,
                          "cannot read \"%s\": %s", path, strerror(errno));
            free(buf);
            return NULL;
        }

        if (n == 0) {
            break;
        }
    }

    nul = memchr(buf, '\0', *len);
    if (nul == NULL) {
        return buf;
    }

    line = 1;
    for (i = 0; buf + i < nul; i++) {
        line += (buf[i] == '\n');
    }

    rf_conf_error(p->err, p->errlen, path, line, "unexpected NUL character");
    free(buf);

    return NULL;
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

    path = rf_conf_include_path(src->file, pattern);
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
        for (i = 0; i < g.gl_pathc; i++) {
            rc = rf_conf_read_file(p, g.gl_pathv[i], src, line, tail,
                                   depth + 1);
            if (rc != 0) {
                break;
            }
        }

        globfree(&g);
        break;

    case GLOB_NOMATCH:
        rc = 0;
        break;

    case GLOB_NOSPACE:
        rf_conf_error(p->err, p->errlen, src->file, line, "out of memory");
        rc = -1;
        break;

    default:
        rf_conf_error(p->err, p->errlen, src->file, line,
                      "cannot read the files matching \"%s\"", path);
        rc = -1;
    }

    free(path);

    return rc;
}


/*
 * A relative pattern is taken from the including file's directory, its
 * name up to the last "/"; a directory of "." is left out, so that errors
 * name "x.conf" rather than "./x.conf".
 */

static char *
rf_conf_include_path(const char *file, const char *pattern)
{
    char        *full;
    size_t       dlen, plen;
    const char  *slash;

    slash = strrchr(file, '/');

    if (pattern[0] == '/' || slash == NULL
        || (slash == file + 1 && file[0] == '.'))
    {
        return strdup(pattern);
    }

    dlen = (slash == file) ? 1 : (size_t) (slash - file);
    plen = strlen(pattern);

    full = malloc(dlen + plen + 2);
    if (full == NULL) {
        return NULL;
    }

    memcpy(full, file, dlen);
    full[dlen] = '/';
    memcpy(full + dlen + 1, pattern, plen + 1);

    return full;
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

            words[n] = strndup(p->tok, p->len);     /* tokens have no NUL */
            if (words[n] == NULL) {
                rf_conf_error(p->err, p->errlen, src->file, line,
                              "out of memory");
                goto failed;
            }

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

            rc = rf_conf_include(p, src, words[1], dline, tail, depth);

            free(words[0]);
            free(words[1]);
            n = 0;

            if (rc != 0) {
                return -1;
            }

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

            if (src->pos == src->last || rf_conf_is_delim(*src->pos)) {
                break;
            }

            ch = *src->pos;

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

        if (!quote && rf_conf_is_delim(ch)) {
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
