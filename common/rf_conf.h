/*
 * Copyright (C) ReplayForge contributors
 *
 * The daemons' configuration language: nginx-style "directive args;" and
 * "block { ... }" files, parsed into a tree, then applied through a table
 * of directives (name, type, bounds, default, offset).
 */

#ifndef _RF_CONF_H_INCLUDED_
#define _RF_CONF_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>


#define RF_CONF_MAX_ARGS        16
#define RF_CONF_MAX_DEPTH       8       /* nested blocks and includes */
#define RF_CONF_MAX_TOKEN       65536


typedef struct rf_conf_node_s  rf_conf_node_t;

struct rf_conf_node_s {
    char                       *name;
    char                      **args;       /* nargs strings, ${ENV} done */
    int                         nargs;
    char                       *file;
    unsigned                    line;
    int                         block;      /* was written as name ... { } */
    rf_conf_node_t             *children;   /* the block's directives */
    rf_conf_node_t             *next;
};


typedef enum {
    RF_CONF_STR = 1,        /* char *, strdup'ed; "" is allowed */
    RF_CONF_INT,            /* int64_t within [min, max] */
    RF_CONF_SIZE,           /* uint64_t bytes: 512, 64k, 10m, 1g */
    RF_CONF_MSEC,           /* uint64_t ms: 500ms, 30s, 5m, 2h, 7d, bare = s */
    RF_CONF_FLAG,           /* int: on | off */
    RF_CONF_ENUM,           /* int: index into enums[] */
    RF_CONF_CUSTOM          /* handler does it all (blocks, lists) */
} rf_conf_type_t;


typedef struct rf_conf_cmd_s  rf_conf_cmd_t;

/* Returns 0, or -1 after writing "message" (no file:line) to err. */
typedef int (*rf_conf_handler_pt)(const rf_conf_cmd_t *cmd,
    const rf_conf_node_t *node, void *conf, char *err, size_t errlen);

struct rf_conf_cmd_s {
    const char                 *name;
    rf_conf_type_t              type;
    size_t                      offset;     /* into the conf struct */
    int64_t                     min;        /* INT, SIZE, MSEC bounds */
    int64_t                     max;        /* 0: no upper bound */
    const char                 *dflt;       /* in config syntax, or NULL */
    const char *const          *enums;      /* NULL-terminated, for ENUM */
    rf_conf_handler_pt          handler;    /* for CUSTOM */
    unsigned                    multi:1;    /* may appear more than once */
};

#define rf_conf_null_cmd        { NULL, 0, 0, 0, 0, NULL, NULL, NULL, 0 }


/*
 * Parse a file (includes resolved relative to the including file, glob
 * patterns allowed) or a string.  NULL on error with "file:line: message"
 * in err.  An empty config (only blanks and comments) is an empty list:
 * NULL with err set to "".
 */
rf_conf_node_t *rf_conf_parse_file(const char *path, char *err,
    size_t errlen);
rf_conf_node_t *rf_conf_parse_string(const char *text, const char *name,
    char *err, size_t errlen);
void rf_conf_free(rf_conf_node_t *nodes);

/* Store every cmd's default (NULL dflt: left zeroed) into conf. */
int rf_conf_defaults(const rf_conf_cmd_t *cmds, void *conf, char *err,
    size_t errlen);

/*
 * Apply a list of nodes (a file's top level, or a block's children):
 * unknown directives, wrong argument counts, bad values, out-of-bounds
 * values and repeats of non-multi directives are "file:line: message"
 * errors.  0 or -1.
 */
int rf_conf_apply(const rf_conf_cmd_t *cmds, const rf_conf_node_t *nodes,
    void *conf, char *err, size_t errlen);

/*
 * Set one directive from a command-line flag, with the same checks;
 * the error names the flag as "--name".  0 or -1.
 */
int rf_conf_set(const rf_conf_cmd_t *cmds, void *conf, const char *name,
    const char *value, char *err, size_t errlen);

/* Free the strings RF_CONF_STR entries of cmds hold in conf. */
void rf_conf_release(const rf_conf_cmd_t *cmds, void *conf);

/* Value parsers shared with the flags; 0 or -1 (bad syntax/overflow). */
int rf_conf_parse_size(const char *s, uint64_t *bytes);
int rf_conf_parse_msec(const char *s, uint64_t *ms);
int rf_conf_parse_int(const char *s, int64_t *v);

/*
 * A token_file: the whole file, without trailing blanks, at most max
 * bytes; it replaces *token (freed).  0, or -1 with err set.
 */
int rf_conf_token_file(const char *path, size_t max, char **token,
    char *err, size_t errlen);


#endif /* _RF_CONF_H_INCLUDED_ */
