/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests for common/rf_log.c: the stderr line format, level parsing
 * and filtering (arguments not evaluated below the level), strerror and
 * errno preservation, the per-format burst limit with its exact
 * "suppressed N" count (on a new window, on flush, on eviction from the
 * key table), whole lines from several threads, syslog mode writing
 * nothing to stderr, and fatal()/fatalx() exiting with 1.  Stderr is
 * captured by pointing fd 2 at a temporary file.
 */


#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rf_log.h"


#define LINE_RE                                                             \
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z "    \
    "rftest\\[[0-9]+\\]: (warn|info|debug|fatal): "

#define NTHREADS                4
#define NPERTHREAD              8


static void capture_start(void);
static char *capture_end(void);
static int count(const char *text, const char *needle);
static int count_lines(const char *text);
static void check_lines(const char *text);
static int side_effect(void);
static void *thread_main(void *arg);
static int setup(void **state);
static void test_parse_level(void **state);
static void test_format(void **state);
static void test_warn_errno(void **state);
static void test_levels(void **state);
static void test_burst_flush(void **state);
static void test_burst_window(void **state);
static void test_keys_independent(void **state);
static void test_eviction(void **state);
static void test_threads(void **state);
static void test_long_message(void **state);
static void test_syslog_mode(void **state);
static void test_fatal(void **state);


static int  cap_fd = -1;
static int  saved_fd = -1;
static int  side_effects;


static void
capture_start(void)
{
    char  path[] = "/tmp/rf_log_test.XXXXXX";

    cap_fd = mkstemp(path);
    assert_true(cap_fd != -1);
    unlink(path);

    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd != -1);
    assert_true(dup2(cap_fd, STDERR_FILENO) != -1);
}


static char *
capture_end(void)
{
    char   *buf;
    off_t   size;

    assert_true(dup2(saved_fd, STDERR_FILENO) != -1);
    close(saved_fd);

    size = lseek(cap_fd, 0, SEEK_END);
    assert_true(size >= 0);

    buf = malloc(size + 1);
    assert_non_null(buf);
    assert_int_equal(pread(cap_fd, buf, size, 0), size);
    buf[size] = '\0';
    close(cap_fd);

    return buf;
}


static int
count(const char *text, const char *needle)
{
    int  n;

    for (n = 0; (text = strstr(text, needle)) != NULL; n++) {
        text += strlen(needle);
    }

    return n;
}


static int
count_lines(const char *text)
{
    return count(text, "\n");
}


/* every line is whole and well formed */

static void
check_lines(const char *text)
{
    char        *copy, *line, *save;
    regex_t      re;

    assert_int_equal(regcomp(&re, LINE_RE, REG_EXTENDED | REG_NOSUB), 0);

    copy = strdup(text);
    assert_non_null(copy);

    for (line = strtok_r(copy, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save))
    {
        if (regexec(&re, line, 0, NULL, 0) != 0) {
            regfree(&re);
            fail_msg("malformed line \"%s\"", line);
        }
    }

    regfree(&re);
    free(copy);
}


static int
side_effect(void)
{
    return ++side_effects;
}


static int
setup(void **state)
{
    log_init(1, "rftest");
    log_setverbose(RF_LOG_INFO);

    return 0;
}


static void
test_parse_level(void **state)
{
    assert_int_equal(log_parse_level("warn"), RF_LOG_WARN);
    assert_int_equal(log_parse_level("info"), RF_LOG_INFO);
    assert_int_equal(log_parse_level("debug"), RF_LOG_DEBUG);
    assert_int_equal(log_parse_level("warning"), -1);
    assert_int_equal(log_parse_level("DEBUG"), -1);
    assert_int_equal(log_parse_level(""), -1);
    assert_int_equal(log_parse_level(NULL), -1);
}


static void
test_format(void **state)
{
    char     *out, expect[128];
    regex_t   re;

    capture_start();
    log_warnx("hello %d %s", 42, "world");
    out = capture_end();

    assert_int_equal(regcomp(&re, LINE_RE "hello 42 world\n$",
                             REG_EXTENDED | REG_NOSUB), 0);
    if (regexec(&re, out, 0, NULL, 0) != 0) {
        fail_msg("unexpected \"%s\"", out);
    }
    regfree(&re);

    snprintf(expect, sizeof(expect), " rftest[%ld]: warn: ",
             (long) getpid());
    assert_non_null(strstr(out, expect));

    free(out);
}


static void
test_warn_errno(void **state)
{
    int    i, j;
    char  *out;

    capture_start();

    errno = ENOENT;
    log_warn("open \"%s\"", "x.conf");
    assert_int_equal(errno, ENOENT);

    errno = EACCES;
    log_warnx("plain");
    assert_int_equal(errno, EACCES);
    log_info("info keeps errno");
    assert_int_equal(errno, EACCES);

    out = capture_end();

    assert_non_null(strstr(out, "warn: open \"x.conf\": No such file or "
                                "directory\n"));
    assert_non_null(strstr(out, "warn: plain\n"));
    assert_int_equal(count(out, "Permission denied"), 0);
    check_lines(out);

    free(out);

    /* a failing write(2) must not change errno either */
    saved_fd = dup(STDERR_FILENO);
    assert_true(saved_fd != -1);
    close(STDERR_FILENO);

    errno = ENOENT;
    log_warn("to a closed stderr");
    i = errno;
    log_warnx("to a closed stderr");
    j = errno;

    assert_true(dup2(saved_fd, STDERR_FILENO) != -1);
    close(saved_fd);

    assert_int_equal(i, ENOENT);
    assert_int_equal(j, ENOENT);
}


static void
test_levels(void **state)
{
    char  *out;

    side_effects = 0;

    capture_start();

    log_setverbose(RF_LOG_WARN);
    log_info("info at warn %d", side_effect());
    log_debug("debug at warn %d", side_effect());
    log_info_("direct info at warn");
    log_warnx("warn at warn");

    log_setverbose(RF_LOG_INFO);
    log_info("info at info");
    log_debug("debug at info %d", side_effect());

    log_setverbose(RF_LOG_DEBUG);
    log_info("info at debug");
    log_debug("debug at debug %d", side_effect());

    log_setverbose(RF_LOG_INFO);

    out = capture_end();

    /* arguments are not evaluated below the level */
    assert_int_equal(side_effects, 1);

    assert_int_equal(count(out, "at warn"), 1);
    assert_non_null(strstr(out, "warn: warn at warn\n"));
    assert_non_null(strstr(out, "info: info at info\n"));
    assert_int_equal(count(out, "debug at info"), 0);
    assert_non_null(strstr(out, "info: info at debug\n"));
    assert_non_null(strstr(out, "debug: debug at debug 1\n"));
    assert_int_equal(count_lines(out), 4);
    check_lines(out);

    free(out);
}


static void
test_burst_flush(void **state)
{
    int    i;
    char  *out;

    capture_start();

    for (i = 0; i < 25; i++) {
        log_warnx("burst %d", i);
    }

    out = capture_end();

    assert_int_equal(count(out, "warn: burst "), RF_LOG_BURST);
    assert_non_null(strstr(out, "warn: burst 9\n"));
    assert_int_equal(count(out, "warn: burst 10\n"), 0);
    free(out);

    capture_start();
    log_flush_suppressed();
    log_flush_suppressed();
    out = capture_end();

    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "warn: suppressed 15 messages like: "
                                "burst %d\n"));
    check_lines(out);
    free(out);

    /* still in the same window: suppressed again, counted from zero */
    capture_start();
    log_warnx("burst %d", 99);
    log_warnx("burst %d", 100);
    log_flush_suppressed();
    out = capture_end();

    assert_int_equal(count_lines(out), 1);
    assert_non_null(strstr(out, "suppressed 2 messages like: burst %d\n"));
    free(out);
}


static void
test_burst_window(void **state)
{
    int    i;
    char  *out, *supp, *next;

    capture_start();

    for (i = 0; i < RF_LOG_BURST + 3; i++) {
        log_info("window %d", i);
    }

    usleep((RF_LOG_WINDOW_MS + 100) * 1000);

    log_info("window %d", 100);

    for (i = 0; i < RF_LOG_BURST - 1; i++) {
        log_info("window %d", 200 + i);
    }

    log_info("window %d", 300);
    log_flush_suppressed();

    out = capture_end();

    /* the count comes first, then the message that ended the window */
    supp = strstr(out, "info: suppressed 3 messages like: window %d\n");
    next = strstr(out, "info: window 100\n");
    assert_non_null(supp);
    assert_non_null(next);
    assert_true(supp < next);

    assert_int_equal(count(out, "info: window "), 2 * RF_LOG_BURST);
    assert_int_equal(count(out, "window 300"), 0);
    assert_non_null(strstr(out, "suppressed 1 messages like: window %d\n"));
    assert_int_equal(count_lines(out), 2 * RF_LOG_BURST + 2);
    check_lines(out);

    free(out);
}


static void
test_keys_independent(void **state)
{
    int    i;
    char  *out;

    capture_start();

    for (i = 0; i < 2 * RF_LOG_BURST; i++) {
        log_warnx("key a %d", i);
        log_warnx("key b %d", i);
    }

    log_flush_suppressed();

    out = capture_end();

    assert_int_equal(count(out, "warn: key a"), RF_LOG_BURST);
    assert_int_equal(count(out, "warn: key b"), RF_LOG_BURST);
    assert_int_equal(count(out, "suppressed 10 messages like: key a %d\n"),
                     1);
    assert_int_equal(count(out, "suppressed 10 messages like: key b %d\n"),
                     1);

    free(out);
}


#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
#pragma GCC diagnostic ignored "-Wformat-security"

/* a key pushed out of the table reports its count before it is reused */

static void
test_eviction(void **state)
{
    int          i;
    char        *out;
    static char  fmts[100][32];     /* the table keeps the pointers */

    capture_start();

    for (i = 0; i < RF_LOG_BURST + 2; i++) {
        log_warnx("evicted %d", i);
    }

    for (i = 0; i < 100; i++) {
        snprintf(fmts[i], sizeof(fmts[i]), "filler %d", i);
        log_warnx(fmts[i], 0);
    }

    out = capture_end();

    assert_int_equal(count(out, "suppressed 2 messages like: evicted %d\n"),
                     1);
    assert_int_equal(count(out, "filler"), 100);
    free(out);

    capture_start();
    log_flush_suppressed();
    out = capture_end();

    assert_string_equal(out, "");
    free(out);
}

#pragma GCC diagnostic pop


static void *
thread_main(void *arg)
{
    int  i;

    for (i = 0; i < NPERTHREAD; i++) {
        log_info("thread %ld line %d %s", (long) (intptr_t) arg, i,
                 "some padding to make the line longer than a few bytes");
    }

    return NULL;
}


static void
test_threads(void **state)
{
    long       i;
    char      *out;
    pthread_t  t[NTHREADS];

    capture_start();

    for (i = 0; i < NTHREADS; i++) {
        assert_int_equal(pthread_create(&t[i], NULL, thread_main,
                                        (void *) (intptr_t) i), 0);
    }

    for (i = 0; i < NTHREADS; i++) {
        pthread_join(t[i], NULL);
    }

    log_flush_suppressed();

    out = capture_end();

    /* one format: a burst, then the exact count of the rest */
    assert_int_equal(count(out, "info: thread "), RF_LOG_BURST);
    assert_non_null(strstr(out, "suppressed 22 messages like: thread "));
    assert_int_equal(count_lines(out), RF_LOG_BURST + 1);
    check_lines(out);

    free(out);
}


static void
test_long_message(void **state)
{
    char  *out, *big;

    big = malloc(10000);
    assert_non_null(big);
    memset(big, 'q', 9999);
    big[9999] = '\0';

    capture_start();
    log_warnx("long %s", big);
    out = capture_end();

    assert_int_equal(count_lines(out), 1);
    assert_int_equal(out[strlen(out) - 1], '\n');
    check_lines(out);

    free(out);
    free(big);
}


static void
test_syslog_mode(void **state)
{
    char  *out;

    capture_start();
    log_init(0, "rftest");
    log_warnx("to syslog");
    log_init(1, "rftest");
    out = capture_end();

    assert_string_equal(out, "");
    free(out);
}


static void
test_fatal(void **state)
{
    int    status, i;
    char  *out;
    pid_t  pid;

    for (i = 0; i < 2; i++) {
        capture_start();

        pid = fork();
        assert_true(pid != -1);

        if (pid == 0) {
            if (i == 0) {
                fatalx("bye %d", 7);
            }

            errno = EPIPE;
            fatal("write");
        }

        assert_int_equal(waitpid(pid, &status, 0), pid);
        out = capture_end();

        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 1);

        if (i == 0) {
            assert_non_null(strstr(out, "fatal: bye 7\n"));
        } else {
            assert_non_null(strstr(out, "fatal: write: Broken pipe\n"));
        }

        check_lines(out);
        free(out);
    }
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test_setup(test_parse_level, setup),
        cmocka_unit_test_setup(test_format, setup),
        cmocka_unit_test_setup(test_warn_errno, setup),
        cmocka_unit_test_setup(test_levels, setup),
        cmocka_unit_test_setup(test_burst_flush, setup),
        cmocka_unit_test_setup(test_burst_window, setup),
        cmocka_unit_test_setup(test_keys_independent, setup),
        cmocka_unit_test_setup(test_eviction, setup),
        cmocka_unit_test_setup(test_threads, setup),
        cmocka_unit_test_setup(test_long_message, setup),
        cmocka_unit_test_setup(test_syslog_mode, setup),
        cmocka_unit_test_setup(test_fatal, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
