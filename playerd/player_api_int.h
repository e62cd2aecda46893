/*
 * Copyright (C) ReplayForge contributors
 *
 * Between rf-playerd's HTTP listener (player_api.c: the daemon, routing,
 * the store's answers, the responses) and the query string of
 * GET /v1/requests (player_api_query.c).  Not part of player_api.h's API.
 */

#ifndef _PLAYER_API_INT_H_INCLUDED_
#define _PLAYER_API_INT_H_INCLUDED_


#include <stddef.h>
#include <stdint.h>

#include <microhttpd.h>

#include "rf_buf.h"
#include "player_store.h"


#define PLAYER_API_CTYPE_MAX    255


typedef struct {
    unsigned                    status;
    const char                 *type;
    rf_buf_t                    body;
    char                        ctype[PLAYER_API_CTYPE_MAX + 1];
    uint64_t                    body_size;
    unsigned                    auth:1;     /* WWW-Authenticate */
    unsigned                    raw:1;      /* a captured body */
    unsigned                    truncated:1;
} player_reply_t;


/* GET /v1/requests: the parameters as they are parsed, and the page */
typedef struct {
    player_query_t              q;
    unsigned                    seen;       /* bit per parameter */
    player_reply_t             *r;
    int                         bad;
    uint64_t                    n;
    uint64_t                    last;
    unsigned                    more:1;
} player_list_t;


/* a JSON error in r, replacing what r held; 0 */
int player_api_error(player_reply_t *r, unsigned status, const char *code,
    const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* the query string into l->q (l->q.limit preset); -1: l->r is answered */
int player_api_query(struct MHD_Connection *c, player_list_t *l);

/* decimal digits only, no sign or blank; 0 or -1 */
int player_api_u64(const char *s, size_t n, uint64_t *v);


#endif /* _PLAYER_API_INT_H_INCLUDED_ */
