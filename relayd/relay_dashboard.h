/*
 * Copyright (C) ReplayForge contributors
 *
 * The dashboard page served at GET / on the stats listener, built into the
 * binary so that a relay never depends on files beside it.
 */

#ifndef _RELAY_DASHBOARD_H_INCLUDED_
#define _RELAY_DASHBOARD_H_INCLUDED_


#include <stddef.h>


/* the bytes of relayd/relay_dashboard.html (NUL-terminated, not counted) */
const unsigned char *relay_dashboard_html(size_t *len);


#endif /* _RELAY_DASHBOARD_H_INCLUDED_ */
