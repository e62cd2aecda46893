/*
 * Copyright (C) ReplayForge contributors
 *
 * Daemon logging in the shape of OpenBSD's log.c: stderr when running in
 * the foreground, syslog otherwise; repeats of one message are rate
 * limited with a "suppressed N" line.
 */

#ifndef _RF_LOG_H_INCLUDED_
#define _RF_LOG_H_INCLUDED_


#include <stdarg.h>


#define RF_LOG_WARN             0
#define RF_LOG_INFO             1
#define RF_LOG_DEBUG            2

/* Messages of one format allowed per window before suppression. */
#define RF_LOG_BURST            10
#define RF_LOG_WINDOW_MS        1000


extern int  rf_log_level;


void log_init(int foreground, const char *procname);
void log_setverbose(int level);          /* RF_LOG_* */
int log_parse_level(const char *name);   /* "warn" | "info" | "debug", -1 */

void log_warn(const char *fmt, ...)      /* appends ": strerror(errno)" */
    __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void log_info_(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void log_debug_(const char *fmt, ...)
    __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...)
    __attribute__((format(printf, 1, 2), noreturn));

/* Print the pending "suppressed N messages like: ..." lines of every key. */
void log_flush_suppressed(void);

/* The level is checked before the arguments are evaluated. */
#define log_info(...)                                                       \
    do { if (rf_log_level >= RF_LOG_INFO) log_info_(__VA_ARGS__); } while (0)
#define log_debug(...)                                                      \
    do { if (rf_log_level >= RF_LOG_DEBUG) log_debug_(__VA_ARGS__); } while (0)


#endif /* _RF_LOG_H_INCLUDED_ */
