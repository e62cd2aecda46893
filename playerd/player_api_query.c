/*
 * Copyright (C) ReplayForge contributors
 *
 * The query string of rf-playerd's GET /v1/requests, checked one
 * parameter at a time before the store is read: an unknown, repeated,
 * empty or malformed one is a 400 that names it, and so is a since after
 * until.  Times are RFC 3339 or unix seconds, both to the nanosecond.
 */

#include <stdint.h>
#include <string.h>

#include <microhttpd.h>

#include "player_api_int.h"
#include "player_store.h"


static enum MHD_Result player_api_param(void *cls, enum MHD_ValueKind kind,
    const char *key, size_t key_size, const char *value, size_t value_size);
static int player_api_time(const char *s, size_t n, int64_t *ns);
static int player_api_token(const char *s, size_t n);


/* GET /v1/requests's parameters, a bit each in player_list_t.seen */
static const char *const    player_api_params[] = {
    "method", "path", "path_prefix", "status", "since", "until", "limit",
    "after", NULL
};


int
player_api_query(struct MHD_Connection *c, player_list_t *l)
{
    (void) MHD_get_connection_values_n(c, MHD_GET_ARGUMENT_KIND,
                                       player_api_param, l);

    if (l->bad) {
        return -1;
    }

    if (l->q.has_since && l->q.has_until && l->q.since > l->q.until) {
        player_api_error(l->r, 400, "bad_request", "since is after until");
        return -1;
    }

    return 0;
}


/* one parameter of GET /v1/requests; MHD_NO stops at the first bad one */

static enum MHD_Result
player_api_param(void *cls, enum MHD_ValueKind kind, const char *key,
    size_t key_size, const char *value, size_t value_size)
{
    int             i;
    uint64_t        u;
    rf_str_t        s;
    player_list_t  *l;

    l = cls;

    /* "?&limit=1": what a client that joins strings sends */

    if (key_size == 0 && value_size == 0) {
        return MHD_YES;
    }

    for (i = 0; player_api_params[i] != NULL; i++) {
        if (strcmp(key, player_api_params[i]) == 0) {
            break;
        }
    }

    if (player_api_params[i] == NULL) {
        player_api_error(l->r, 400, "bad_request", "unknown parameter "
                         "\"%.64s\"", key);
        goto bad;
    }

    if (l->seen & (1u << i)) {
        player_api_error(l->r, 400, "bad_request", "%s is given twice",
                         key);
        goto bad;
    }

    l->seen |= 1u << i;

    if (value == NULL || value_size == 0) {
        player_api_error(l->r, 400, "bad_request", "%s is empty", key);
        goto bad;
    }

    s.data = (const unsigned char *) value;
    s.len = value_size;

    if (i <= 2 && (value_size > PLAYER_QUERY_STR_MAX
                   || memchr(value, '\0', value_size) != NULL))
    {
        player_api_error(l->r, 400, "bad_request", "%s must be 1 to %d "
                         "bytes, without NUL", key, PLAYER_QUERY_STR_MAX);
        goto bad;
    }

    switch (i) {

    case 0:
        if (!player_api_token(value, value_size)) {
            player_api_error(l->r, 400, "bad_request", "method must be an "
                             "HTTP method token");
            goto bad;
        }

        l->q.method = s;
        l->q.has_method = 1;
        break;

    case 1:
        l->q.path = s;
        l->q.has_path = 1;
        break;

    case 2:
        l->q.prefix = s;
        l->q.has_prefix = 1;
        break;

    case 3:
        if (player_api_u64(value, value_size, &u) != 0 || u < 100
            || u > 999)
        {
            player_api_error(l->r, 400, "bad_request", "status must be a "
                             "number from 100 to 999");
            goto bad;
        }

        l->q.status = (int64_t) u;
        l->q.has_status = 1;
        break;

    case 4:
    case 5:
        if (player_api_time(value, value_size,
                            i == 4 ? &l->q.since : &l->q.until) != 0)
        {
            player_api_error(l->r, 400, "bad_request", "%s must be an RFC "
                             "3339 time (2026-01-02T03:04:05Z) or unix "
                             "seconds", key);
            goto bad;
        }

        if (i == 4) {
            l->q.has_since = 1;

        } else {
            l->q.has_until = 1;
        }

        break;

    case 6:
        if (player_api_u64(value, value_size, &u) != 0 || u == 0) {
            player_api_error(l->r, 400, "bad_request", "limit must be a "
                             "positive number");
            goto bad;
        }

        l->q.limit = u > PLAYER_QUERY_LIMIT_MAX ? PLAYER_QUERY_LIMIT_MAX : u;
        break;

    default:
        if (player_api_u64(value, value_size, &l->q.after) != 0) {
            player_api_error(l->r, 400, "bad_request", "after must be a "
                             "seq (a non-negative number)");
            goto bad;
        }
    }

    return MHD_YES;

bad:

    l->bad = 1;

    return MHD_NO;
}


int
player_api_u64(const char *s, size_t n, uint64_t *v)
{
    size_t    i;
    uint64_t  x;

    if (n == 0 || n > 20) {
        return -1;
    }

    for (x = 0, i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || x > (UINT64_MAX - 9) / 10) {
            return -1;
        }

        x = x * 10 + (uint64_t) (s[i] - '0');
    }

    *v = x;

    return 0;
}


/*
 * "1767322800", "1767322800.25" or RFC 3339 "2026-01-02T03:04:05Z",
 * "...05.123456789+02:00" (a "+" that came as a space from the query
 * string too): ns since the epoch.
 */
static int
player_api_time(const char *s, size_t n, int64_t *ns)
{
    int         sign, rfc;
    size_t      i, k;
    int64_t     y, mo, d, h, mi, sec, days, frac, off;
    const char  *p, *end;

    static const int  mdays[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31,
                                  30, 31 };

#define num(at, len, out)                                                     \
    do {                                                                      \
        out = 0;                                                              \
        for (k = 0; k < (len); k++) {                                         \
            if ((at)[k] < '0' || (at)[k] > '9') {                             \
                return -1;                                                    \
            }                                                                 \
            out = out * 10 + ((at)[k] - '0');                                 \
        }                                                                     \
    } while (0)

    end = s + n;
    p = s;
    rfc = 0;

    for (i = 0; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        /* void */
    }

    if (i > 0 && i <= 11 && (i == n || s[i] == '.')) {
        num(s, i, sec);
        p = s + i;
        goto fraction;
    }

    if (n < 20 || s[4] != '-' || s[7] != '-' || s[13] != ':'
        || s[16] != ':' || (s[10] != 'T' && s[10] != 't' && s[10] != ' '))
    {
        return -1;
    }

    rfc = 1;

    num(s, 4, y);
    num(s + 5, 2, mo);
    num(s + 8, 2, d);
    num(s + 11, 2, h);
    num(s + 14, 2, mi);
    num(s + 17, 2, sec);

    if (y < 1 || mo < 1 || mo > 12 || d < 1 || h > 23 || mi > 59 || sec > 60
        || d > mdays[mo - 1] + (mo == 2 && y % 4 == 0
                                && (y % 100 != 0 || y % 400 == 0)))
    {
        return -1;
    }

    /* days since 1970-01-01 of a proleptic Gregorian date */

    y -= (mo <= 2);
    days = (y / 400) * 146097
           + (y % 400) * 365 + (y % 400) / 4 - (y % 400) / 100
           + (153 * (mo > 2 ? mo - 3 : mo + 9) + 2) / 5 + d - 1 - 719468;

    sec += days * 86400 + h * 3600 + mi * 60;
    p = s + 19;

fraction:

    frac = 0;

    if (p < end && *p == '.') {
        for (p++, k = 0; p < end && *p >= '0' && *p <= '9'; p++, k++) {
            if (k < 9) {
                frac = frac * 10 + (*p - '0');
            }
        }

        if (k == 0) {
            return -1;
        }

        for ( ; k < 9; k++) {
            frac *= 10;
        }
    }

    if (rfc) {
        /* RFC 3339 wants its offset */

        if (p < end && (*p == 'Z' || *p == 'z') && p + 1 == end) {
            off = 0;

        } else if (end - p == 6 && (*p == '+' || *p == '-' || *p == ' ')
                   && p[3] == ':')
        {
            sign = (*p == '-') ? -1 : 1;
            num(p + 1, 2, h);
            num(p + 4, 2, mi);

            if (h > 23 || mi > 59) {
                return -1;
            }

            off = sign * (h * 3600 + mi * 60);

        } else {
            return -1;
        }

        sec -= off;

    } else if (p != end) {
        return -1;
    }

#undef num

    if (sec < -9223372035 || sec > 9223372035) {
        return -1;
    }

    *ns = sec * 1000000000 + frac;

    return 0;
}


/* an HTTP method is a token (RFC 9110) */

static int
player_api_token(const char *s, size_t n)
{
    size_t  i;

    if (n > 32) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z')
              || (s[i] >= '0' && s[i] <= '9')
              || strchr("!#$%&'*+-.^_`|~", s[i]) != NULL))
        {
            return 0;
        }
    }

    return 1;
}
