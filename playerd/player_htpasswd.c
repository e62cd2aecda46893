/*
 * Copyright (C) ReplayForge contributors
 *
 * Basic auth for the query API (see player_htpasswd.h): the htpasswd
 * file's lines in memory, refreshed when the file changes, the header
 * decoded, and the password checked by APR outside of any lock (bcrypt
 * takes milliseconds on purpose).
 */

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <apr_general.h>
#include <apr_md5.h>

#include "rf_log.h"
#include "player_htpasswd.h"


#define PLAYER_HTPASSWD_MAX     (1024 * 1024)   /* the file */
#define PLAYER_HTPASSWD_LINE    1024            /* name:hash */
#define PLAYER_AUTH_MAX         1024            /* decoded name:password */


typedef struct {
    char                       *name;
    char                       *hash;
} player_htpasswd_entry_t;


struct player_htpasswd_s {
    char                       *path;
    pthread_mutex_t             lock;
    player_htpasswd_entry_t    *entries;
    size_t                      n;
    struct stat                 sb;         /* of the file last read */
    int                         have_sb;
};


static int player_htpasswd_load(player_htpasswd_t *h, char *err,
    size_t errlen);
static int player_htpasswd_parse(char *text, player_htpasswd_entry_t **ep,
    size_t *np, char *err, size_t errlen);
static void player_htpasswd_free_entries(player_htpasswd_entry_t *e,
    size_t n);
static void player_htpasswd_refresh(player_htpasswd_t *h);
static int player_htpasswd_equal(const char *a, const char *b);
static int player_htpasswd_b64(const char *in, char *out, size_t cap);
static void player_htpasswd_apr_init(void);


static pthread_once_t  player_apr_once = PTHREAD_ONCE_INIT;
static int             player_apr_rc;

/* checked against when the name is unknown and the file has no line */
static const char  player_htpasswd_decoy[] =
    "$apr1$rfdecoy0$VDu3yn1n8dVqNfEfLtq6O/";


player_htpasswd_t *
player_htpasswd_open(const char *path, char *err, size_t errlen)
{
    player_htpasswd_t  *h;

    pthread_once(&player_apr_once, player_htpasswd_apr_init);

    if (player_apr_rc != APR_SUCCESS) {
        snprintf(err, errlen, "apr_initialize() failed");
        return NULL;
    }

    h = calloc(1, sizeof(player_htpasswd_t));
    if (h == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    h->path = strdup(path);

    if (h->path == NULL || pthread_mutex_init(&h->lock, NULL) != 0) {
        free(h->path);
        free(h);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    if (player_htpasswd_load(h, err, errlen) != 0) {
        player_htpasswd_close(h);
        return NULL;
    }

    return h;
}


static void
player_htpasswd_apr_init(void)
{
    player_apr_rc = apr_initialize();
}


void
player_htpasswd_close(player_htpasswd_t *h)
{
    if (h == NULL) {
        return;
    }

    player_htpasswd_free_entries(h->entries, h->n);
    pthread_mutex_destroy(&h->lock);
    free(h->path);
    free(h);
}


/* read the file: the old lines stay when it cannot be read or parsed */

static int
player_htpasswd_load(player_htpasswd_t *h, char *err, size_t errlen)
{
    FILE                     *f;
    char                     *text;
    size_t                    len, n;
    struct stat               sb;
    player_htpasswd_entry_t  *e;

    f = fopen(h->path, "re");
    if (f == NULL) {
        snprintf(err, errlen, "cannot open htpasswd file \"%s\": %s",
                 h->path, strerror(errno));
        return -1;
    }

    if (fstat(fileno(f), &sb) == -1) {
        snprintf(err, errlen, "cannot stat htpasswd file \"%s\": %s",
                 h->path, strerror(errno));
        fclose(f);
        return -1;
    }

    text = malloc(PLAYER_HTPASSWD_MAX + 1);
    if (text == NULL) {
        snprintf(err, errlen, "out of memory");
        fclose(f);
        return -1;
    }

    len = fread(text, 1, PLAYER_HTPASSWD_MAX + 1, f);

    if (ferror(f) || len > PLAYER_HTPASSWD_MAX) {
        snprintf(err, errlen, "cannot read htpasswd file \"%s\": %s",
                 h->path, ferror(f) ? strerror(errno) : "larger than 1m");
        free(text);
        fclose(f);
        return -1;
    }

    fclose(f);
    text[len] = '\0';

    if (player_htpasswd_parse(text, &e, &n, err, errlen) != 0) {
        free(text);
        return -1;
    }

    free(text);

    player_htpasswd_free_entries(h->entries, h->n);
    h->entries = e;
    h->n = n;
    h->sb = sb;
    h->have_sb = 1;

    return 0;
}


/* "name:hash" lines; blank lines and "#" comments are skipped */

static int
player_htpasswd_parse(char *text, player_htpasswd_entry_t **ep, size_t *np,
    char *err, size_t errlen)
{
    char                     *line, *next, *colon, *end;
    size_t                    n, cap, lineno;
    player_htpasswd_entry_t  *e, *ne;

    e = NULL;
    n = 0;
    cap = 0;
    lineno = 0;

    for (line = text; line != NULL && *line != '\0'; line = next) {
        lineno++;
        next = strchr(line, '\n');

        if (next != NULL) {
            *next++ = '\0';
        }

        end = line + strlen(line);

        while (end > line && (end[-1] == '\r' || end[-1] == ' '
                              || end[-1] == '\t'))
        {
            *--end = '\0';
        }

        if (line[0] == '\0' || line[0] == '#') {
            continue;
        }

        colon = strchr(line, ':');

        if (colon == NULL || colon == line || colon[1] == '\0'
            || end - line > PLAYER_HTPASSWD_LINE)
        {
            snprintf(err, errlen, "htpasswd file line %zu: expected "
                     "\"name:hash\"", lineno);
            goto failed;
        }

        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            ne = realloc(e, cap * sizeof(player_htpasswd_entry_t));

            if (ne == NULL) {
                goto nomem;
            }

            e = ne;
        }

        *colon = '\0';
        e[n].name = strdup(line);
        e[n].hash = strdup(colon + 1);

        if (e[n].name == NULL || e[n].hash == NULL) {
            free(e[n].name);
            free(e[n].hash);
            goto nomem;
        }

        n++;
    }

    *ep = e;
    *np = n;

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");

failed:

    player_htpasswd_free_entries(e, n);

    return -1;
}


static void
player_htpasswd_free_entries(player_htpasswd_entry_t *e, size_t n)
{
    size_t  i;

    for (i = 0; i < n; i++) {
        free(e[i].name);
        free(e[i].hash);
    }

    free(e);
}


int
player_htpasswd_check(player_htpasswd_t *h, const char *authorization)
{
    int     found;
    char    cred[PLAYER_AUTH_MAX + 1], hash[PLAYER_HTPASSWD_LINE + 1];
    char   *pass;
    size_t  i;

    if (authorization == NULL
        || strncasecmp(authorization, "Basic ", 6) != 0
        || player_htpasswd_b64(authorization + 6, cred, sizeof(cred)) != 0)
    {
        return 0;
    }

    pass = strchr(cred, ':');
    if (pass == NULL || pass == cred) {
        return 0;
    }

    *pass++ = '\0';

    /* every line is compared, and an unknown name checks a decoy hash */

    pthread_mutex_lock(&h->lock);

    player_htpasswd_refresh(h);

    found = 0;
    snprintf(hash, sizeof(hash), "%s",
             h->n > 0 ? h->entries[0].hash : player_htpasswd_decoy);

    for (i = 0; i < h->n; i++) {
        if (player_htpasswd_equal(cred, h->entries[i].name) && !found) {
            snprintf(hash, sizeof(hash), "%s", h->entries[i].hash);
            found = 1;
        }
    }

    pthread_mutex_unlock(&h->lock);

    if (apr_password_validate(pass, hash) != APR_SUCCESS) {
        found = 0;
    }

    explicit_bzero(cred, sizeof(cred));

    return found;
}


/* under the lock: read the file again when it changed */

static void
player_htpasswd_refresh(player_htpasswd_t *h)
{
    char         err[512];
    struct stat  sb;

    if (stat(h->path, &sb) == -1) {
        if (h->have_sb) {
            log_warnx("htpasswd file \"%s\": %s: nobody is let in until it "
                      "is back", h->path, strerror(errno));
            player_htpasswd_free_entries(h->entries, h->n);
            h->entries = NULL;
            h->n = 0;
            h->have_sb = 0;
        }

        return;
    }

    if (h->have_sb && sb.st_ino == h->sb.st_ino && sb.st_dev == h->sb.st_dev
        && sb.st_size == h->sb.st_size
        && sb.st_mtim.tv_sec == h->sb.st_mtim.tv_sec
        && sb.st_mtim.tv_nsec == h->sb.st_mtim.tv_nsec)
    {
        return;
    }

    if (player_htpasswd_load(h, err, sizeof(err)) != 0) {
        log_warnx("%s: nobody is let in until it is fixed", err);
        player_htpasswd_free_entries(h->entries, h->n);
        h->entries = NULL;
        h->n = 0;

        /* not again until it changes */
        h->sb = sb;
        h->have_sb = 1;
        return;
    }

    log_info("htpasswd file \"%s\": read again, %zu names", h->path, h->n);
}


/* the time taken depends on b's length only */

static int
player_htpasswd_equal(const char *a, const char *b)
{
    size_t          i, alen, blen;
    unsigned char   diff, c;

    alen = strlen(a);
    blen = strlen(b);
    diff = (alen != blen);

    for (i = 0; i < blen; i++) {
        c = (i < alen) ? (unsigned char) a[i] : 0;
        diff |= c ^ (unsigned char) b[i];
    }

    return diff == 0;
}


/* standard base64, padding optional; the result is a C string */

static int
player_htpasswd_b64(const char *in, char *out, size_t cap)
{
    int       v;
    size_t    n;
    unsigned  acc, bits;

    while (*in == ' ') {
        in++;
    }

    n = 0;
    acc = 0;
    bits = 0;

    for ( ; *in != '\0' && *in != '='; in++) {
        if (*in >= 'A' && *in <= 'Z') {
            v = *in - 'A';

        } else if (*in >= 'a' && *in <= 'z') {
            v = *in - 'a' + 26;

        } else if (*in >= '0' && *in <= '9') {
            v = *in - '0' + 52;

        } else if (*in == '+') {
            v = 62;

        } else if (*in == '/') {
            v = 63;

        } else {
            return -1;
        }

        acc = (acc << 6) | (unsigned) v;
        bits += 6;

        if (bits >= 8) {
            bits -= 8;

            if (n + 1 >= cap) {
                return -1;
            }

            out[n] = (char) ((acc >> bits) & 0xff);

            /* a NUL would cut the name or the password short */
            if (out[n] == '\0') {
                return -1;
            }

            n++;
        }
    }

    while (*in == '=') {
        in++;
    }

    while (*in == ' ') {
        in++;
    }

    if (*in != '\0') {
        return -1;
    }

    out[n] = '\0';

    return 0;
}
