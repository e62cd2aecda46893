/*
 * Copyright (C) ReplayForge contributors
 *
 * The discord sink's types, shared by the sink (player_sink_discord.c:
 * directives, sending, 429s and pacing) and its text
 * (player_sink_discord_text.c: the template and the 2000-character cuts).
 */

#ifndef _PLAYER_SINK_DISCORD_H_INCLUDED_
#define _PLAYER_SINK_DISCORD_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "player.h"


#define PLAYER_DISCORD_MAX_CHARS    2000    /* Discord's limit of content */
#define PLAYER_DISCORD_WAIT_MAX     60000   /* ms: a wait Discord asks for */
#define PLAYER_DISCORD_429_MAX      5       /* 429s in a row, one message */
#define PLAYER_DISCORD_429_DFLT     1000    /* ms, a 429 that names no wait */
#define PLAYER_DISCORD_ANSWER_MAX   4096    /* bytes of an answer kept */
#define PLAYER_DISCORD_TEMPLATE     "{method} {uri} \xe2\x86\x92 {status}"

/* U+2026 and U+FFFD in UTF-8 */
#define PLAYER_DISCORD_ELLIPSIS     "\xe2\x80\xa6"
#define PLAYER_DISCORD_REPLACEMENT  "\xef\xbf\xbd"


/* what a template part stands for */
enum {
    PLAYER_DISCORD_TEXT = 0,
    PLAYER_DISCORD_METHOD,
    PLAYER_DISCORD_URI,
    PLAYER_DISCORD_STATUS,
    PLAYER_DISCORD_HOST,
    PLAYER_DISCORD_SOURCE,
    PLAYER_DISCORD_ID,
    PLAYER_DISCORD_SEQ,
    PLAYER_DISCORD_DURATION,
    PLAYER_DISCORD_CLIENT,
    PLAYER_DISCORD_TS,
    PLAYER_DISCORD_BUCKET,
    PLAYER_DISCORD_KIND,
    PLAYER_DISCORD_HEADER,
    PLAYER_DISCORD_BODY,
    PLAYER_DISCORD_LINE
};


/* how one message went */
enum {
    PLAYER_DISCORD_SENT = 0,
    PLAYER_DISCORD_AGAIN,       /* PLAYER_RETRY */
    PLAYER_DISCORD_REFUSED      /* PLAYER_FAIL */
};


typedef struct {
    unsigned                    what;
    char                       *text;       /* TEXT: bytes; HEADER: name */
    size_t                      len;
} player_discord_part_t;


typedef struct {
    char                       *webhook;
    char                       *template;
    int64_t                     batch;
    char                       *username;
    uint64_t                    timeout;    /* ms */

    /* the template, compiled by check() */
    player_discord_part_t      *parts;
    size_t                      nparts;
} player_discord_conf_t;


typedef struct {
    CURL                       *curl;
    struct curl_slist          *headers;
    char                        error[CURL_ERROR_SIZE];

    rf_buf_t                    lines;      /* every record's line */
    size_t                     *ends;       /* line i ends at ends[i] */
    size_t                      nends;
    rf_buf_t                    value;      /* one placeholder's value */
    rf_buf_t                    body;       /* {body}, before its cut */
    rf_buf_t                    content;    /* one message's text */
    rf_buf_t                    payload;    /* its JSON */
    rf_buf_t                    answer;

    /* from the answer's headers; -1: absent */
    double                      retry_after;
    double                      reset_after;
    long                        remaining;

    uint64_t                    not_before; /* monotonic ms */

    /* read by other threads with __atomic loads */
    uint64_t                    messages;
    uint64_t                    records;
    uint64_t                    rate_limited;
    uint64_t                    errors;
} player_discord_t;


/* Compile conf->template into conf->parts; 0, or -1 with err set. */
int player_discord_compile(player_discord_conf_t *conf, char *err,
    size_t errlen);

/* Append pr's line to d->lines (within the limit); 0 or -1 (ENOMEM). */
int player_discord_render(player_discord_t *d,
    const player_discord_conf_t *conf, const player_rec_t *pr);

/* Characters of UTF-8 text as Discord counts them (UTF-16 units). */
size_t player_discord_chars(const unsigned char *p, size_t n);

/* Free what compile() made (also called by the sink's free_conf). */
void player_discord_free_parts(player_discord_conf_t *conf);


#endif /* _PLAYER_SINK_DISCORD_H_INCLUDED_ */
