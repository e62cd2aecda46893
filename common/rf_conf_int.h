/*
 * Copyright (C) ReplayForge contributors
 *
 * What the configuration parser (rf_conf_parse.c) and the directive table
 * (rf_conf.c) share and nobody else should see: the one error formatter,
 * so that every message is located the same way.
 */

#ifndef _RF_CONF_INT_H_INCLUDED_
#define _RF_CONF_INT_H_INCLUDED_


#include <stddef.h>

#include "rf_conf.h"


#define RF_CONF_NO_LINE         ((unsigned) -1)


/*
 * "file:line: message"; no file: the bare message; RF_CONF_NO_LINE:
 * "file: message".  Also records whether the message is located.
 */
void rf_conf_error(char *err, size_t errlen, const char *file, unsigned line,
    const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));


#endif /* _RF_CONF_INT_H_INCLUDED_ */
