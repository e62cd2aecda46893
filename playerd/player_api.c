/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-playerd's HTTP listener (see player_api.h) on libmicrohttpd, shaped
 * like rf-relayd's: one thread per connection, the connection limit
 * answered with 503 rather than a reset, JSON errors.  Every request is
 * a GET answered at once: routing, basic auth, the query's parameters
 * checked (player_api_query.c), then the store read through a pooled
 * reader connection.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "rf_log.h"
#include "player.h"
#include "player_api.h"
#include "rf_check.h"
#include "player_api_int.h"
#include "player_htpasswd.h"


#define PLAYER_API_CONNS        64
#define PLAYER_API_SLACK        16          /* connections answered 503 */
#define PLAYER_API_TIMEOUT_S    30
#define PLAYER_API_CONN_MEMORY  (64 * 1024) /* request line and headers */
#define PLAYER_API_STACK        (256 * 1024)

static enum MHD_Result player_api_handler(void *cls,
    struct MHD_Connection *c, const char *url, const char *method,
    const char *version, const char *upload_data, size_t *upload_data_size,
    void **con_cls);
static void player_api_route(struct MHD_Connection *c, const char *url,
    player_reply_t *r);
static void player_api_list(struct MHD_Connection *c, player_store_t *st,
    player_reply_t *r);
static int player_api_list_row(uint64_t seq, const unsigned char *data,
    size_t len, void *arg);
static void player_api_one(player_store_t *st, const char *id, size_t len,
    int body, player_reply_t *r);
static int player_api_view_row(uint64_t seq, const unsigned char *data,
    size_t len, void *arg);
static int player_api_body_row(uint64_t seq, const unsigned char *data,
    size_t len, void *arg);
static enum MHD_Result player_api_send(struct MHD_Connection *c,
    player_reply_t *r);
static void player_api_notify(void *cls, struct MHD_Connection *c,
    void **socket_context, enum MHD_ConnectionNotificationCode toe);
static void player_api_log(void *cls, const char *fmt, va_list ap);


static struct MHD_Daemon   *player_api_daemon;
static player_htpasswd_t   *player_api_htpasswd;
static uint64_t             player_api_active;      /* atomic */

/* the served store; readers hold the lock while they use it */
static pthread_rwlock_t     player_api_lock = PTHREAD_RWLOCK_INITIALIZER;
static player_store_t      *player_api_store;

/* the socket context of a connection over the limit */
static char                 player_api_over;


int
player_api_start(const char *addr, const char *htpasswd, char *err,
    size_t errlen)
{
    size_t                   socklen;
    unsigned                 flags;
    struct sockaddr_storage  ss;

    if (rf_parse_addr(addr, &ss, &socklen) != 0) {
        snprintf(err, errlen, "invalid api_listen address \"%s\": use "
                 "IPV4:PORT or [IPV6]:PORT", addr);
        return -1;
    }

    if (htpasswd != NULL && htpasswd[0] != '\0') {
        player_api_htpasswd = player_htpasswd_open(htpasswd, err, errlen);

        if (player_api_htpasswd == NULL) {
            return -1;
        }
    }

    flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL_INTERNAL_THREAD
            | MHD_USE_ERROR_LOG;

    if (ss.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
    }

    player_api_daemon = MHD_start_daemon(flags, 0, NULL, NULL,
                    player_api_handler, NULL,
                    MHD_OPTION_EXTERNAL_LOGGER, player_api_log, NULL,
                    MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &ss,
                    MHD_OPTION_CONNECTION_LIMIT,
                        (unsigned) (PLAYER_API_CONNS + PLAYER_API_SLACK),
                    MHD_OPTION_CONNECTION_TIMEOUT,
                        (unsigned) PLAYER_API_TIMEOUT_S,
                    MHD_OPTION_CONNECTION_MEMORY_LIMIT,
                        (size_t) PLAYER_API_CONN_MEMORY,
                    MHD_OPTION_THREAD_STACK_SIZE, (size_t) PLAYER_API_STACK,
                    MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned) 511,
                    MHD_OPTION_NOTIFY_CONNECTION, player_api_notify, NULL,
                    MHD_OPTION_END);

    if (player_api_daemon == NULL) {
        snprintf(err, errlen, "cannot listen on %s (api_listen): %s", addr,
                 errno ? strerror(errno) : "libmicrohttpd refused");
        player_htpasswd_close(player_api_htpasswd);
        player_api_htpasswd = NULL;
        return -1;
    }

    log_info("api: listening on %s%s", addr,
             player_api_htpasswd ? ", /v1/requests with basic auth" : "");

    return 0;
}


void
player_api_stop(void)
{
    if (player_api_daemon != NULL) {
        MHD_stop_daemon(player_api_daemon);
        player_api_daemon = NULL;
    }

    player_htpasswd_close(player_api_htpasswd);
    player_api_htpasswd = NULL;
}


int
player_api_set_store(player_store_t *st)
{
    int  rc;

    pthread_rwlock_wrlock(&player_api_lock);

    rc = (player_api_store != NULL);

    if (!rc) {
        player_api_store = st;
    }

    pthread_rwlock_unlock(&player_api_lock);

    return rc;
}


void
player_api_clear_store(player_store_t *st)
{
    pthread_rwlock_wrlock(&player_api_lock);

    if (player_api_store == st) {
        player_api_store = NULL;
    }

    pthread_rwlock_unlock(&player_api_lock);
}


static void
player_api_notify(void *cls, struct MHD_Connection *c, void **socket_context,
    enum MHD_ConnectionNotificationCode toe)
{
    uint64_t  n;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        n = __atomic_add_fetch(&player_api_active, 1, __ATOMIC_RELAXED);
        *socket_context = (n > PLAYER_API_CONNS) ? &player_api_over : NULL;
        return;
    }

    (void) __atomic_sub_fetch(&player_api_active, 1, __ATOMIC_RELAXED);
}


static void
player_api_log(void *cls, const char *fmt, va_list ap)
{
    int   n;
    char  msg[512];

    /* libmicrohttpd reports what clients do wrong: not our errors */

    n = vsnprintf(msg, sizeof(msg), fmt, ap);
    while (n > 0 && (size_t) n < sizeof(msg) && msg[n - 1] == '\n') {
        msg[--n] = '\0';
    }

    log_info("api: %s", msg);
}


static enum MHD_Result
player_api_handler(void *cls, struct MHD_Connection *c, const char *url,
    const char *method, const char *version, const char *upload_data,
    size_t *upload_data_size, void **con_cls)
{
    player_reply_t                   r;
    enum MHD_Result                  rc;
    const union MHD_ConnectionInfo  *ci;

    static char  seen;

    /*
     * Answered once the request is complete (an answer queued at the
     * first call costs the connection its keep-alive); a body that comes
     * with a GET is read and ignored.
     */

    if (*con_cls == NULL) {
        *con_cls = &seen;
        return MHD_YES;
    }

    if (*upload_data_size != 0) {
        *upload_data_size = 0;
        return MHD_YES;
    }

    memset(&r, 0, sizeof(player_reply_t));
    rf_buf_init(&r.body);

    ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    if (ci != NULL && ci->socket_context == &player_api_over) {
        player_api_error(&r, 503, "unavailable", "too many connections "
                         "(%d)", PLAYER_API_CONNS);

    } else if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        player_api_error(&r, 405, "method_not_allowed", "use GET");

    } else {
        player_api_route(c, url, &r);
    }

    rc = player_api_send(c, &r);
    rf_buf_free(&r.body);

    return rc;
}


/*
 *   GET /healthz    GET /metrics    GET /v1/requests
 *   GET /v1/requests/{id}           GET /v1/requests/{id}/body
 */
static void
player_api_route(struct MHD_Connection *c, const char *url,
    player_reply_t *r)
{
    int              body;
    size_t           n;
    const char      *id;
    player_store_t  *st;

    if (strcmp(url, "/healthz") == 0) {
        r->type = "text/plain";
        r->status = player_healthy() ? 200 : 503;
        (void) rf_buf_adds(&r->body, r->status == 200 ? "ok\n"
                                                      : "unhealthy\n");
        return;
    }

    if (strcmp(url, "/metrics") == 0) {
        if (player_metrics(&r->body) != 0) {
            player_api_error(r, 500, "internal", "out of memory");
            return;
        }

        r->status = 200;
        r->type = "text/plain; version=0.0.4";
        return;
    }

    if (strncmp(url, "/v1/requests", 12) != 0
        || (url[12] != '\0' && url[12] != '/'))
    {
        player_api_error(r, 404, "not_found", "no such path");
        return;
    }

    if (player_api_htpasswd != NULL
        && !player_htpasswd_check(player_api_htpasswd,
                 MHD_lookup_connection_value(c, MHD_HEADER_KIND,
                                             MHD_HTTP_HEADER_AUTHORIZATION)))
    {
        r->auth = 1;
        player_api_error(r, 401, "unauthorized", "missing or wrong "
                         "credentials");
        return;
    }

    id = NULL;
    n = 0;
    body = 0;

    if (url[12] == '/') {
        id = url + 13;
        n = strcspn(id, "/");

        if (id[n] != '\0') {
            body = (strcmp(id + n, "/body") == 0);

            if (!body) {
                player_api_error(r, 404, "not_found", "no such path");
                return;
            }
        }
    }

    pthread_rwlock_rdlock(&player_api_lock);

    st = player_api_store;

    if (st == NULL) {
        player_api_error(r, 404, "not_found", "no sqlite sink is open");

    } else if (id == NULL) {
        player_api_list(c, st, r);

    } else {
        player_api_one(st, id, n, body, r);
    }

    pthread_rwlock_unlock(&player_api_lock);
}


static void
player_api_list(struct MHD_Connection *c, player_store_t *st,
    player_reply_t *r)
{
    int64_t        rc;
    player_list_t  l;

    memset(&l, 0, sizeof(player_list_t));
    l.r = r;
    l.q.limit = PLAYER_QUERY_LIMIT;

    if (player_api_query(c, &l) != 0) {
        return;
    }

    /* one row more than asked says whether there is a next page */

    l.q.limit++;

    if (rf_buf_adds(&r->body, "{\"items\":[") != 0) {
        player_api_error(r, 500, "internal", "out of memory");
        return;
    }

    rc = player_store_query(st, &l.q, player_api_list_row, &l);

    if (rc == -1) {
        player_api_error(r, 500, "internal", "the store cannot be read: %s",
                         strerror(errno));
        return;
    }

    if ((l.more
         ? rf_buf_printf(&r->body, "],\"next\":%" PRIu64 "}\n", l.last)
         : rf_buf_adds(&r->body, "],\"next\":null}\n"))
        != 0)
    {
        player_api_error(r, 500, "internal", "out of memory");
        return;
    }

    r->status = 200;
    r->type = "application/json";
}


static int
player_api_list_row(uint64_t seq, const unsigned char *data, size_t len,
    void *arg)
{
    const char     *err;
    rf_rec_t        rec;
    player_list_t  *l;

    l = arg;

    if (l->n == l->q.limit - 1) {
        l->more = 1;
        return 0;
    }

    if (rf_rec_parse(&rec, data, len, &err) != 0) {
        log_warnx("api: the row of seq %" PRIu64 " is not a record: %s",
                  seq, err);
        return 0;
    }

    rec.rseq = seq;

    if ((l->n > 0 && rf_buf_addc(&l->r->body, ',') != 0)
        || rf_rec_to_json(&rec, &l->r->body) != 0)
    {
        return -1;
    }

    /* the JSON view ends with a newline: not inside the array */

    l->r->body.len--;
    l->n++;
    l->last = seq;

    return 0;
}


/* {id}: the seq, or "source:sseq" */

static void
player_api_one(player_store_t *st, const char *id, size_t len, int body,
    player_reply_t *r)
{
    int          rc;
    uint64_t     seq;
    rf_str_t     source;
    const char  *colon;

    colon = memrchr(id, ':', len);

    if (colon != NULL) {
        source.data = (const unsigned char *) id;
        source.len = colon - id;

        if (source.len == 0
            || player_api_u64(colon + 1, len - source.len - 1, &seq) != 0)
        {
            goto invalid;
        }

    } else if (player_api_u64(id, len, &seq) != 0) {
        goto invalid;
    }

    rc = player_store_get(st, seq, colon ? &source : NULL,
                          body ? player_api_body_row : player_api_view_row,
                          r);

    if (rc == -1 && r->status == 0) {
        player_api_error(r, 500, "internal", "the store cannot be read: %s",
                         strerror(errno));

    } else if (rc == 0) {
        player_api_error(r, 404, "not_found", "no record %.*s",
                         (int) (len > 128 ? 128 : len), id);
    }

    return;

invalid:

    player_api_error(r, 400, "bad_request", "the id is a seq or "
                     "\"source:sseq\"");
}


static int
player_api_view_row(uint64_t seq, const unsigned char *data, size_t len,
    void *arg)
{
    const char      *err;
    rf_rec_t         rec;
    player_reply_t  *r;

    r = arg;

    if (rf_rec_parse(&rec, data, len, &err) != 0) {
        player_api_error(r, 500, "internal", "the row is not a record: %s",
                         err);
        return 0;
    }

    rec.rseq = seq;

    if (rf_rec_to_json(&rec, &r->body) != 0) {
        return -1;
    }

    r->status = 200;
    r->type = "application/json";

    return 0;
}


static int
player_api_body_row(uint64_t seq, const unsigned char *data, size_t len,
    void *arg)
{
    size_t           off, i;
    rf_str_t         name, value, body;
    rf_rec_t         rec;
    rf_field_t       f;
    const char      *err;
    player_reply_t  *r;

    r = arg;

    if (rf_rec_parse(&rec, data, len, &err) != 0) {
        player_api_error(r, 500, "internal", "the row is not a record: %s",
                         err);
        return 0;
    }

    if (rec.kind != RF_KIND_HTTP) {
        player_api_error(r, 404, "not_found", "record %" PRIu64 " is a %s "
                         "record: it has no body", seq,
                         rf_kind_name(rec.kind));
        return 0;
    }

    body.len = 0;
    body.data = NULL;
    off = 0;

    while (rf_rec_next_field(&rec, &off, &f)) {
        if (f.id == RF_F_BODY && body.data == NULL) {
            body = f.val;

        } else if (f.id == RF_F_HEADER && r->ctype[0] == '\0'
                   && rf_rec_header_split(&f.val, &name, &value) == 0
                   && name.len == 12
                   && strncasecmp((const char *) name.data, "content-type",
                                  12) == 0
                   && value.len > 0 && value.len <= PLAYER_API_CTYPE_MAX)
        {
            /* a value a response header cannot carry is not used */

            for (i = 0; i < value.len; i++) {
                if (value.data[i] < 0x20 || value.data[i] > 0x7e) {
                    break;
                }
            }

            if (i == value.len) {
                memcpy(r->ctype, value.data, value.len);
                r->ctype[value.len] = '\0';
            }
        }
    }

    if (rf_rec_field_u64(&rec, RF_F_BODY_SIZE, &r->body_size) != 0) {
        r->body_size = body.len;
    }

    if (body.len > 0 && rf_buf_add(&r->body, body.data, body.len) != 0) {
        return -1;
    }

    r->status = 200;
    r->raw = 1;
    r->truncated = (rec.flags & RF_REC_F_BODY_TRUNCATED) != 0;
    r->type = r->ctype[0] ? r->ctype : "application/octet-stream";

    return 0;
}


int
player_api_error(player_reply_t *r, unsigned status, const char *code,
    const char *fmt, ...)
{
    int      n;
    char     detail[1024];
    va_list  args;

    va_start(args, fmt);
    n = vsnprintf(detail, sizeof(detail), fmt, args);
    va_end(args);

    if (n < 0) {
        detail[0] = '\0';
        n = 0;
    }

    if ((size_t) n >= sizeof(detail)) {
        n = sizeof(detail) - 1;
    }

    r->status = status;
    r->type = "application/json";
    r->raw = 0;
    rf_buf_reset(&r->body);

    if (rf_buf_printf(&r->body, "{\"error\":\"%s\",\"detail\":", code) != 0
        || rf_json_str(&r->body, (const unsigned char *) detail, n) != 0
        || rf_buf_adds(&r->body, "}\n") != 0)
    {
        rf_buf_reset(&r->body);
    }

    return 0;
}


static enum MHD_Result
player_api_send(struct MHD_Connection *c, player_reply_t *r)
{
    char                  num[32];
    struct MHD_Response  *resp;
    enum MHD_Result       rc;

    if (r->status == 0) {
        player_api_error(r, 500, "internal", "no response");
    }

    resp = MHD_create_response_from_buffer(r->body.len, r->body.data,
                                           MHD_RESPMEM_MUST_FREE);
    if (resp == NULL) {
        return MHD_NO;
    }

    /* the response owns the bytes now */
    rf_buf_init(&r->body);

    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type)
        != MHD_YES)
    {
        (void) MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
                                       "application/octet-stream");
    }

    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");

    if (r->raw) {
        /* captured bytes: never a page that runs in this origin */
        MHD_add_response_header(resp, "Content-Security-Policy",
                                "default-src 'none'; sandbox");
        MHD_add_response_header(resp, "X-RF-Body-Truncated",
                                r->truncated ? "1" : "0");
        snprintf(num, sizeof(num), "%" PRIu64, r->body_size);
        MHD_add_response_header(resp, "X-RF-Body-Size", num);
    }

    if (r->auth) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
                                "Basic realm=\"" PLAYER_HTPASSWD_REALM "\"");
    }

    if (r->status >= 500) {
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
    }

    rc = MHD_queue_response(c, r->status, resp);
    MHD_destroy_response(resp);

    return rc;
}


