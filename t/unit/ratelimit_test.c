/*
 * Copyright (C) ReplayForge contributors
 *
 * Unit tests of the token bucket, on a fake clock: unlimited, bursts, the
 * steady rate over a simulated 10 s (greedy, ticking and byte-sized
 * takers), debt for items larger than the burst, the wait it returns, and
 * hostile arguments.
 */

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>

#include "rf_ratelimit.h"


#define MS          1000000ULL
#define SEC         1000000000ULL
#define T0          (1000 * SEC)        /* the fake clock starts here */


static void assert_near(double got, double want, double rel);


static void
assert_near(double got, double want, double rel)
{
    if (fabs(got - want) > want * rel) {
        fail_msg("%.3f is not within %.2f%% of %.3f", got, rel * 100, want);
    }
}


static void
test_unlimited(void **state)
{
    int             i;
    rf_ratelimit_t  rl;

    (void) state;

    rf_ratelimit_init(&rl, 0, 0, T0);

    for (i = 0; i < 100000; i++) {
        assert_int_equal(rf_ratelimit_take(&rl, 1e12, T0), 0);
    }

    rf_ratelimit_init(&rl, -5, 10, T0);
    assert_int_equal(rf_ratelimit_take(&rl, 1e12, T0), 0);
}


static void
test_burst(void **state)
{
    int             i;
    uint64_t        w;
    rf_ratelimit_t  rl;

    (void) state;

    rf_ratelimit_init(&rl, 10, 5, T0);

    for (i = 0; i < 5; i++) {
        assert_int_equal(rf_ratelimit_take(&rl, 1, T0), 0);
    }

    /* one token every 100 ms */
    w = rf_ratelimit_take(&rl, 1, T0);
    assert_true(w >= 100 * MS && w <= 100 * MS + 1000);

    /* refused a microsecond early, nothing taken; taken on time */
    assert_true(rf_ratelimit_take(&rl, 1, T0 + w - 1000) > 0);
    assert_true(rf_ratelimit_take(&rl, 1, T0 + w - 1000) <= 1001);
    assert_int_equal(rf_ratelimit_take(&rl, 1, T0 + w), 0);
    assert_true(rf_ratelimit_take(&rl, 1, T0 + w) > 0);

    /* an idle minute refills the burst, not more */
    for (i = 0; i < 5; i++) {
        assert_int_equal(rf_ratelimit_take(&rl, 1, T0 + 60 * SEC), 0);
    }
    assert_true(rf_ratelimit_take(&rl, 1, T0 + 60 * SEC) > 0);

    /* burst 0: a second's worth */
    rf_ratelimit_init(&rl, 100, 0, T0);

    for (i = 0; i < 100; i++) {
        assert_int_equal(rf_ratelimit_take(&rl, 1, T0), 0);
    }
    assert_true(rf_ratelimit_take(&rl, 1, T0) > 0);

    /* and at least one token, so a slow rate still lets items through */
    rf_ratelimit_init(&rl, 0.5, 0, T0);
    assert_int_equal(rf_ratelimit_take(&rl, 1, T0), 0);
    w = rf_ratelimit_take(&rl, 1, T0);
    assert_true(w >= 2 * SEC && w <= 2 * SEC + 1000);
}


/*
 * A greedy taker sleeping exactly the returned wait, a poller on a 1 ms
 * tick that ignores it, and a byte limit with varied item sizes: each
 * gets the burst plus rate x 10 s, within 1%.
 */
static void
test_steady_rate(void **state)
{
    uint64_t        now, w, end, n1, taken, bytes, size;
    rf_ratelimit_t  rl;

    (void) state;

    rf_ratelimit_init(&rl, 1000, 50, T0);
    end = T0 + 10 * SEC;
    taken = 0;
    n1 = 0;

    for (now = T0; now < end; now += w) {
        w = rf_ratelimit_take(&rl, 1, now);

        if (w == 0) {
            taken++;
            n1 += now < T0 + SEC;
        }
    }

    assert_near((double) taken, 10 * 1000 + 50, 0.01);
    /* after the first second only the rate counts */
    assert_near((double) (taken - n1), 9 * 1000, 0.01);

    rf_ratelimit_init(&rl, 1000, 1, T0);
    taken = 0;

    for (now = T0; now < end; now += MS / 4) {
        while (rf_ratelimit_take(&rl, 1, now) == 0) {
            taken++;
        }
    }

    assert_near((double) taken, 10 * 1000, 0.01);

    rf_ratelimit_init(&rl, 1e6, 65536, T0);
    srandom(7);
    bytes = 0;
    size = 1 + random() % 1500;

    for (now = T0; now < end; now += w) {
        w = rf_ratelimit_take(&rl, (double) size, now);

        if (w == 0) {
            bytes += size;
            size = 1 + random() % 1500;
        }
    }

    assert_near((double) bytes, 10 * 1e6 + 65536, 0.01);
}


/* An item larger than the burst: let through from a full bucket, repaid. */
static void
test_debt(void **state)
{
    uint64_t        w;
    rf_ratelimit_t  rl;

    (void) state;

    rf_ratelimit_init(&rl, 100, 10, T0);

    assert_int_equal(rf_ratelimit_take(&rl, 50, T0), 0);

    /* 40 tokens owed plus the one asked for, at 100/s: 410 ms */
    w = rf_ratelimit_take(&rl, 1, T0);
    assert_true(w >= 410 * MS && w <= 410 * MS + 1000);
    assert_true(rf_ratelimit_take(&rl, 1, T0 + 400 * MS) > 0);
    assert_int_equal(rf_ratelimit_take(&rl, 1, T0 + w), 0);

    /* from a part-full bucket it waits for a full one, not for 50 */
    rf_ratelimit_init(&rl, 100, 10, T0);
    assert_int_equal(rf_ratelimit_take(&rl, 5, T0), 0);

    w = rf_ratelimit_take(&rl, 50, T0);
    assert_true(w >= 50 * MS && w <= 50 * MS + 1000);
    assert_int_equal(rf_ratelimit_take(&rl, 50, T0 + w), 0);

    /* and the next huge item waits for the debt and a full bucket */
    w = rf_ratelimit_take(&rl, 50, T0 + w);
    assert_true(w >= 500 * MS && w <= 500 * MS + 1000);
}


/*
 * Waiting the returned time is always enough, at any rate and level, and
 * it is not much more than needed: a microsecond less is refused.
 */
static void
test_wait_is_exact(void **state)
{
    int             k, r;
    double          n;
    uint64_t        now, w;
    rf_ratelimit_t  rl, copy;

    static const double  rates[] = { 0.25, 1, 3, 7.5, 1000, 12345.6, 1e6, 1e9 };

    (void) state;

    for (r = 0; r < (int) (sizeof(rates) / sizeof(rates[0])); r++) {
        for (k = 1; k < 1000; k++) {
            rf_ratelimit_init(&rl, rates[r], 0, T0);
            assert_int_equal(rf_ratelimit_take(&rl, rl.burst, T0), 0);

            n = rl.burst * k / 1000.0;
            now = T0 + (uint64_t) k * 7919;
            w = rf_ratelimit_take(&rl, n, now);

            if (w == 0) {
                continue;
            }

            if (w > 1000) {
                copy = rl;
                assert_true(rf_ratelimit_take(&copy, n, now + w - 1000) > 0);
            }

            if (rf_ratelimit_take(&rl, n, now + w) != 0) {
                fail_msg("rate %g, n %g: refused after the %llu ns wait",
                         rates[r], n, (unsigned long long) w);
            }
        }
    }
}


static void
test_hostile(void **state)
{
    int             i;
    uint64_t        w;
    rf_ratelimit_t  rl;

    (void) state;

    /* a wait beyond 2^64 ns saturates instead of wrapping to ~0 */
    rf_ratelimit_init(&rl, 1e-12, 1, T0);
    assert_int_equal(rf_ratelimit_take(&rl, 1, T0), 0);
    w = rf_ratelimit_take(&rl, 1, T0);
    assert_true(w == UINT64_MAX);

    /* negative and NaN amounts take nothing and mint nothing */
    rf_ratelimit_init(&rl, 10, 5, T0);
    assert_int_equal(rf_ratelimit_take(&rl, -100, T0), 0);
    assert_int_equal(rf_ratelimit_take(&rl, NAN, T0), 0);
    assert_int_equal(rf_ratelimit_take(&rl, 0, T0), 0);

    for (i = 0; i < 5; i++) {
        assert_int_equal(rf_ratelimit_take(&rl, 1, T0), 0);
    }

    w = rf_ratelimit_take(&rl, 1, T0);
    assert_true(w >= 100 * MS && w <= 100 * MS + 1000);

    /* a NaN burst falls back to a second's worth */
    rf_ratelimit_init(&rl, 10, NAN, T0);
    assert_true(rl.burst == 10);

    /* a clock going backwards refills nothing and keeps the state sane */
    rf_ratelimit_init(&rl, 10, 1, T0);
    assert_int_equal(rf_ratelimit_take(&rl, 1, T0), 0);
    w = rf_ratelimit_take(&rl, 1, T0 - 60 * SEC);
    assert_true(w >= 100 * MS && w <= 100 * MS + 1000);
    assert_int_equal(rf_ratelimit_take(&rl, 1, T0 + 100 * MS + 1), 0);

    /* the real clock is monotonic */
    w = rf_now_ns();
    assert_true(rf_now_ns() >= w);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_unlimited),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_debt),
        cmocka_unit_test(test_wait_is_exact),
        cmocka_unit_test(test_hostile),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
