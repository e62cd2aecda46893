/*
 * Copyright (C) ReplayForge contributors
 *
 * Names and listen addresses, checked alike by every daemon (see
 * rf_check.h).  Names end up in file names, URLs and JSON, so they are
 * kept to a small, safe alphabet.
 */

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rf_check.h"


int
rf_valid_name(const char *name, size_t len)
{
    size_t  i;
    char    c;

    if (len == 0 || len > RF_NAME_MAX) {
        return 0;
    }

    for (i = 0; i < len; i++) {
        c = name[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
        {
            return 0;
        }
    }

    return 1;
}


int
rf_parse_addr(const char *s, struct sockaddr_storage *ss, size_t *socklen)
{
    char                 host[64], *end;
    long                 port;
    size_t               n;
    const char          *colon;
    struct sockaddr_in  *sin;
    struct sockaddr_in6 *sin6;

    colon = strrchr(s, ':');
    if (colon == NULL) {
        return -1;
    }

    errno = 0;
    port = strtol(colon + 1, &end, 10);

    if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 0
        || port > 65535)
    {
        return -1;
    }

    n = colon - s;

    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
    }

    if (n == 0 || n >= sizeof(host)) {
        return -1;
    }

    memcpy(host, s, n);
    host[n] = '\0';

    memset(ss, 0, sizeof(struct sockaddr_storage));

    sin = (struct sockaddr_in *) ss;

    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t) port);
        *socklen = sizeof(struct sockaddr_in);
        return 0;
    }

    sin6 = (struct sockaddr_in6 *) ss;

    if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t) port);
        *socklen = sizeof(struct sockaddr_in6);
        return 0;
    }

    return -1;
}
