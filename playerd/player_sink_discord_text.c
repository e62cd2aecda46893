/*
 * Copyright (C) ReplayForge contributors
 *
 * The discord sink's text: the template compiled into parts (every
 * placeholder checked, so that -t reports a wrong one), a record rendered
 * into one line, and the cuts that keep a line inside Discord's 2000
 * characters, counted the way Discord counts them (UTF-16 units), at
 * UTF-8 boundaries.  Captured text is made valid UTF-8 without control
 * characters before it goes into a line.
 */

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "player.h"
#include "player_sink_discord.h"
#include "rf_json.h"
#include "rf_log.h"


static int player_discord_value(player_discord_t *d,
    const player_discord_part_t *part, const player_rec_t *pr);
static int player_discord_clean(rf_buf_t *b, const unsigned char *p,
    size_t n);
static size_t player_discord_cut(const unsigned char *p, size_t n,
    size_t chars);


static const struct {
    const char                 *name;
    unsigned                    what;
} player_discord_names[] = {
    { "method", PLAYER_DISCORD_METHOD },
    { "uri", PLAYER_DISCORD_URI },
    { "status", PLAYER_DISCORD_STATUS },
    { "host", PLAYER_DISCORD_HOST },
    { "source", PLAYER_DISCORD_SOURCE },
    { "id", PLAYER_DISCORD_ID },
    { "seq", PLAYER_DISCORD_SEQ },
    { "duration_ms", PLAYER_DISCORD_DURATION },
    { "client", PLAYER_DISCORD_CLIENT },
    { "ts", PLAYER_DISCORD_TS },
    { "bucket", PLAYER_DISCORD_BUCKET },
    { "kind", PLAYER_DISCORD_KIND },
    { "body", PLAYER_DISCORD_BODY },
    { "line", PLAYER_DISCORD_LINE }
};


/*
 * "{name}" and "{header:NAME}" become parts, the text between them parts
 * of their own; "{{" and "}}" are a literal brace.  Everything is checked
 * here, so that -t reports an unknown placeholder.
 */

int
player_discord_compile(player_discord_conf_t *conf, char *err, size_t errlen)
{
    size_t                  i, max, len;
    const char             *p, *start, *close;
    player_discord_part_t  *part;

    player_discord_free_parts(conf);

    p = conf->template ? conf->template : "";

    if (*p == '\0') {
        snprintf(err, errlen, "\"template\" is empty");
        return -1;
    }

    if (!rf_utf8_valid((const unsigned char *) p, strlen(p))) {
        snprintf(err, errlen, "\"template\" is not valid UTF-8");
        return -1;
    }

    /* at most a part per character, and one */
    max = strlen(p) + 1;

    conf->parts = calloc(max, sizeof(player_discord_part_t));
    if (conf->parts == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    while (*p != '\0') {
        part = &conf->parts[conf->nparts];

        if (*p != '{' || p[1] == '{') {

            /* text up to the next placeholder, braces undoubled */

            part->what = PLAYER_DISCORD_TEXT;
            part->text = malloc(strlen(p) + 1);
            if (part->text == NULL) {
                goto nomem;
            }

            conf->nparts++;

            while (*p != '\0' && (*p != '{' || p[1] == '{')) {
                if ((*p == '{' || *p == '}') && p[1] == *p) {
                    p++;
                }

                part->text[part->len++] = *p++;
            }

            continue;
        }

        start = p + 1;
        close = strchr(start, '}');

        if (close == NULL) {
            snprintf(err, errlen, "unterminated placeholder \"%.32s\" in "
                     "\"template\" (a literal \"{\" is written \"{{\")", p);
            goto failed;
        }

        len = close - start;

        if (len > 7 && strncmp(start, "header:", 7) == 0) {
            for (i = 7; i < len; i++) {
                if (!isgraph((unsigned char) start[i]) || start[i] == ':') {
                    break;
                }
            }

            if (i < len) {
                snprintf(err, errlen, "invalid header name in \"{%.*s}\" "
                         "in \"template\"", (int) len, start);
                goto failed;
            }

            part->what = PLAYER_DISCORD_HEADER;
            part->len = len - 7;
            part->text = strndup(start + 7, len - 7);
            if (part->text == NULL) {
                goto nomem;
            }

            conf->nparts++;
            p = close + 1;
            continue;
        }

        for (i = 0; i < sizeof(player_discord_names)
                        / sizeof(player_discord_names[0]); i++)
        {
            if (strlen(player_discord_names[i].name) == len
                && strncmp(player_discord_names[i].name, start, len) == 0)
            {
                break;
            }
        }

        if (i == sizeof(player_discord_names)
                 / sizeof(player_discord_names[0]))
        {
            snprintf(err, errlen, "unknown placeholder \"{%.*s}\" in "
                     "\"template\"", (int) (len > 64 ? 64 : len), start);
            goto failed;
        }

        part->what = player_discord_names[i].what;
        conf->nparts++;
        p = close + 1;
    }

    return 0;

nomem:

    snprintf(err, errlen, "out of memory");

failed:

    player_discord_free_parts(conf);

    return -1;
}


/*
 * A record's line into d->lines.  {body} gets the room the rest of the
 * line leaves (shared when it appears more than once), cut with "…";
 * then the whole line is cut the same way if it is still too long.
 */

int
player_discord_render(player_discord_t *d, const player_discord_conf_t *conf,
    const player_rec_t *pr)
{
    size_t          i, start, chars, nbody, room, cut, len;
    rf_str_t        body;
    unsigned char  *p;

    start = d->lines.len;
    nbody = 0;

    /* the line without its body, to measure the room */

    for (i = 0; i < conf->nparts; i++) {
        if (conf->parts[i].what == PLAYER_DISCORD_BODY) {
            nbody++;
            continue;
        }

        if (player_discord_value(d, &conf->parts[i], pr) != 0
            || rf_buf_add(&d->lines, d->value.data, d->value.len) != 0)
        {
            return -1;
        }
    }

    if (nbody) {
        chars = player_discord_chars(d->lines.data + start,
                                     d->lines.len - start);
        room = chars < PLAYER_DISCORD_MAX_CHARS
               ? (PLAYER_DISCORD_MAX_CHARS - chars) / nbody : 0;

        rf_buf_reset(&d->body);

        if (rf_rec_field(&pr->rec, RF_F_BODY, &body) == 0
            && player_discord_clean(&d->body, body.data, body.len) != 0)
        {
            return -1;
        }

        if (player_discord_chars(d->body.data, d->body.len) > room) {
            cut = room ? player_discord_cut(d->body.data, d->body.len,
                                            room - 1) : 0;
            d->body.len = cut;

            if (room && rf_buf_adds(&d->body, PLAYER_DISCORD_ELLIPSIS) != 0)
            {
                return -1;
            }
        }

        d->lines.len = start;

        for (i = 0; i < conf->nparts; i++) {
            if (conf->parts[i].what == PLAYER_DISCORD_BODY) {
                if (rf_buf_add(&d->lines, d->body.data, d->body.len) != 0) {
                    return -1;
                }

                continue;
            }

            if (player_discord_value(d, &conf->parts[i], pr) != 0
                || rf_buf_add(&d->lines, d->value.data, d->value.len) != 0)
            {
                return -1;
            }
        }
    }

    p = d->lines.data + start;
    len = d->lines.len - start;

    if (player_discord_chars(p, len) > PLAYER_DISCORD_MAX_CHARS) {
        cut = player_discord_cut(p, len, PLAYER_DISCORD_MAX_CHARS - 1);
        d->lines.len = start + cut;
        return rf_buf_adds(&d->lines, PLAYER_DISCORD_ELLIPSIS);
    }

    /* Discord refuses a message of nothing but blanks */

    for (i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\n') {
            return 0;
        }
    }

    d->lines.len = start;

    return rf_buf_addc(&d->lines, '-');
}


/* one placeholder's text into d->value; a missing field is "-" */

static int
player_discord_value(player_discord_t *d, const player_discord_part_t *part,
    const player_rec_t *pr)
{
    char             ts[64];
    size_t           off;
    time_t           sec;
    uint64_t         v;
    rf_str_t         s, name, value;
    struct tm        tm;
    rf_field_t       f;
    const rf_rec_t  *rec;

    static const unsigned  ids[] = {
        [PLAYER_DISCORD_METHOD] = RF_F_METHOD,
        [PLAYER_DISCORD_URI] = RF_F_URI,
        [PLAYER_DISCORD_HOST] = RF_F_HOST,
        [PLAYER_DISCORD_SOURCE] = RF_F_SOURCE,
        [PLAYER_DISCORD_CLIENT] = RF_F_CLIENT,
        [PLAYER_DISCORD_BUCKET] = RF_F_BUCKET,
        [PLAYER_DISCORD_LINE] = RF_F_LINE
    };

    rec = &pr->rec;
    rf_buf_reset(&d->value);

    switch (part->what) {

    case PLAYER_DISCORD_TEXT:
        return rf_buf_add(&d->value, part->text, part->len);

    case PLAYER_DISCORD_METHOD:
    case PLAYER_DISCORD_URI:
    case PLAYER_DISCORD_HOST:
    case PLAYER_DISCORD_SOURCE:
    case PLAYER_DISCORD_CLIENT:
    case PLAYER_DISCORD_BUCKET:
    case PLAYER_DISCORD_LINE:
        if (rf_rec_field(rec, ids[part->what], &s) == 0) {
            return player_discord_clean(&d->value, s.data, s.len);
        }

        /* as the JSON view has it */

        return rf_buf_adds(&d->value,
                           part->what == PLAYER_DISCORD_BUCKET ? "default"
                           : "-");

    case PLAYER_DISCORD_STATUS:
        if (rf_rec_field_u64(rec, RF_F_STATUS, &v) == 0) {
            return rf_buf_printf(&d->value, "%llu", (unsigned long long) v);
        }

        return rf_buf_addc(&d->value, '-');

    case PLAYER_DISCORD_DURATION:
        if (rf_rec_field_u64(rec, RF_F_DURATION_US, &v) == 0) {
            return rf_buf_printf(&d->value, "%llu.%03llu",
                                 (unsigned long long) (v / 1000),
                                 (unsigned long long) (v % 1000));
        }

        return rf_buf_addc(&d->value, '-');

    case PLAYER_DISCORD_ID:
        if (rf_rec_field(rec, RF_F_SOURCE, &s) == 0
            && player_discord_clean(&d->value, s.data, s.len) != 0)
        {
            return -1;
        }

        return rf_buf_printf(&d->value, ":%llu",
                             (unsigned long long) rec->sseq);

    case PLAYER_DISCORD_SEQ:
        return rf_buf_printf(&d->value, "%llu", (unsigned long long) pr->seq);

    case PLAYER_DISCORD_TS:
        sec = (time_t) (rec->time_ns / 1000000000);
        gmtime_r(&sec, &tm);
        strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

        return rf_buf_printf(&d->value, "%s.%06lluZ", ts,
                             (unsigned long long)
                             (rec->time_ns % 1000000000) / 1000);

    case PLAYER_DISCORD_KIND:
        return rf_buf_adds(&d->value, rf_kind_name(rec->kind));

    case PLAYER_DISCORD_HEADER:
        off = 0;

        while (rf_rec_next_field(rec, &off, &f)) {
            if (f.id == RF_F_HEADER
                && rf_rec_header_split(&f.val, &name, &value) == 0
                && name.len == part->len
                && strncasecmp((const char *) name.data, part->text,
                               name.len) == 0)
            {
                return player_discord_clean(&d->value, value.data,
                                            value.len);
            }
        }

        return rf_buf_addc(&d->value, '-');

    default:
        break;
    }

    return 0;
}


/*
 * Captured bytes as text: invalid UTF-8 becomes U+FFFD, control
 * characters a blank, so that a value never breaks the line apart.
 */

static int
player_discord_clean(rf_buf_t *b, const unsigned char *p, size_t n)
{
    size_t  i, k;

    for (i = 0; i < n; i += k) {
        if (p[i] < 0x20 || p[i] == 0x7f) {
            k = 1;
            if (rf_buf_addc(b, ' ') != 0) {
                return -1;
            }

            continue;
        }

        k = p[i] < 0x80 ? 1 : p[i] >= 0xf0 ? 4 : p[i] >= 0xe0 ? 3 : 2;

        if (i + k <= n && rf_utf8_valid(p + i, k)) {
            if (rf_buf_add(b, p + i, k) != 0) {
                return -1;
            }

            continue;
        }

        k = 1;
        if (rf_buf_adds(b, PLAYER_DISCORD_REPLACEMENT) != 0) {
            return -1;
        }
    }

    return 0;
}


/*
 * Characters of valid UTF-8 as UTF-16 counts them: one outside the BMP
 * is two.  Never fewer than code points, whichever Discord counts.
 */

size_t
player_discord_chars(const unsigned char *p, size_t n)
{
    size_t  i, c;

    c = 0;

    for (i = 0; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            c += (p[i] >= 0xf0) ? 2 : 1;
        }
    }

    return c;
}


/* the bytes of the longest prefix of at most chars characters */

static size_t
player_discord_cut(const unsigned char *p, size_t n, size_t chars)
{
    size_t  i, c, w;

    c = 0;

    for (i = 0; i < n; /* void */) {
        w = (p[i] >= 0xf0) ? 2 : 1;
        if (c + w > chars) {
            break;
        }

        c += w;

        for (i++; i < n && (p[i] & 0xc0) == 0x80; i++) {
            /* void */
        }
    }

    return i;
}


void
player_discord_free_parts(player_discord_conf_t *conf)
{
    size_t  i;

    if (conf->parts == NULL) {
        return;
    }

    for (i = 0; i < conf->nparts; i++) {
        free(conf->parts[i].text);
    }

    free(conf->parts);
    conf->parts = NULL;
    conf->nparts = 0;
}
