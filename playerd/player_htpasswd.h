/*
 * Copyright (C) ReplayForge contributors
 *
 * Basic auth against an Apache htpasswd file ("name:hash" lines) for the
 * query API: the hashes are checked by APR's apr_password_validate()
 * (bcrypt "$2y$", apr1 "$apr1$", "{SHA}", and crypt(3)'s: "$5$", "$6$",
 * DES).  The file is read again when its mtime, size or inode change; a
 * file that cannot be read then lets nobody in until it is fixed.
 */

#ifndef _PLAYER_HTPASSWD_H_INCLUDED_
#define _PLAYER_HTPASSWD_H_INCLUDED_


#include <stddef.h>


#define PLAYER_HTPASSWD_REALM   "replayforge"


typedef struct player_htpasswd_s  player_htpasswd_t;


/* Read path now; NULL with err set when it cannot be read or parsed. */
player_htpasswd_t *player_htpasswd_open(const char *path, char *err,
    size_t errlen);
void player_htpasswd_close(player_htpasswd_t *h);

/*
 * An "Authorization" header's value (NULL when there was none): 1 when it
 * is "Basic" with a name and password the file accepts, else 0.  Safe
 * from any thread; the time it takes does not say whether the name
 * exists.
 */
int player_htpasswd_check(player_htpasswd_t *h, const char *authorization);


#endif /* _PLAYER_HTPASSWD_H_INCLUDED_ */
