/*
 * Copyright (C) ReplayForge contributors
 *
 * rf-playerd's HTTP listener ("api_listen ADDR;", libmicrohttpd, one
 * thread per connection):
 *
 *   GET /healthz                  player_healthy(): 200 "ok", else 503
 *   GET /metrics                  player_metrics(), Prometheus text
 *   GET /v1/requests?...          the sqlite sink's rows, paged by seq
 *   GET /v1/requests/{id}         one record's JSON view
 *   GET /v1/requests/{id}/body    its body, with its Content-Type
 *
 * {id} is the relay's seq, or the record's id "source:sseq".  With
 * "htpasswd FILE;" the /v1/requests routes want basic auth; /healthz and
 * /metrics stay open (bind the listener to a private address).
 *
 * Which store it serves: the first sqlite sink to open calls
 * player_api_set_store() with its store, and player_api_clear_store()
 * from its close(), before the store closes; later sqlite sinks are
 * stored but not served.  Start and stop are the core's: start before or
 * after the sinks open, stop after they closed or before, either works;
 * without a store /v1/requests answers 404.
 */

#ifndef _PLAYER_API_H_INCLUDED_
#define _PLAYER_API_H_INCLUDED_


#include <stddef.h>

#include "player_store.h"


/*
 * Listen on addr ("127.0.0.1:8490", "[::1]:8490"); htpasswd NULL or ""
 * for no auth.  The htpasswd file is read now (an unreadable or malformed
 * file is an error) and again whenever its mtime, size or inode change.
 * 0, or -1 with err set.
 */
int player_api_start(const char *addr, const char *htpasswd, char *err,
    size_t errlen);
void player_api_stop(void);

/* 0: st is served now; 1: another store already is (st is not). */
int player_api_set_store(player_store_t *st);
/* Stop serving st, waiting for the requests that use it. */
void player_api_clear_store(player_store_t *st);


#endif /* _PLAYER_API_H_INCLUDED_ */
