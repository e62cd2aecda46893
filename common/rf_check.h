/*
 * Copyright (C) ReplayForge contributors
 *
 * Values every daemon checks the same way: the names of buckets,
 * consumers, sources and sinks, and listen addresses.
 */

#ifndef _RF_CHECK_H_INCLUDED_
#define _RF_CHECK_H_INCLUDED_


#include <stddef.h>

#include <sys/socket.h>


#define RF_NAME_MAX             64


/* 1 when name[0..len) is 1 to RF_NAME_MAX of [A-Za-z0-9._-]. */
int rf_valid_name(const char *name, size_t len);

/*
 * "addr:port" with an IPv4 literal or a [bracketed] IPv6 one into *ss;
 * 0, or -1 when it is not one.
 */
int rf_parse_addr(const char *s, struct sockaddr_storage *ss,
    size_t *socklen);


#endif /* _RF_CHECK_H_INCLUDED_ */
