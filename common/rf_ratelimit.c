/*
 * Copyright (C) ReplayForge contributors
 *
 * The token bucket (see rf_ratelimit.h).  Doubles keep fractional tokens
 * exact enough for rates from a few per second to millions of bytes per
 * second.
 */

#include <time.h>

#include "rf_ratelimit.h"


void
rf_ratelimit_init(rf_ratelimit_t *rl, double rate, double burst,
    uint64_t now_ns)
{
    rl->rate = rate > 0 ? rate : 0;

    /* also NaN */
    if (!(burst > 0)) {
        burst = rl->rate;
    }

    rl->burst = burst < 1 ? 1 : burst;
    rl->tokens = rl->burst;
    rl->last_ns = now_ns;
}


uint64_t
rf_ratelimit_take(rf_ratelimit_t *rl, double n, uint64_t now_ns)
{
    double  need, wait;

    /* nothing to take; a negative or NaN n must not mint tokens */
    if (rl->rate == 0 || !(n > 0)) {
        return 0;
    }

    if (now_ns > rl->last_ns) {
        rl->tokens += (double) (now_ns - rl->last_ns) * rl->rate / 1e9;

        if (rl->tokens > rl->burst) {
            rl->tokens = rl->burst;
        }

        rl->last_ns = now_ns;
    }

    /* more than a burst at once: allowed from a full bucket, into debt */

    need = n <= rl->burst ? n : rl->burst;

    if (rl->tokens >= need) {
        rl->tokens -= n;
        return 0;
    }

    wait = (need - rl->tokens) * 1e9 / rl->rate;

    /* converting a double beyond the range of uint64_t is undefined */
    if (wait >= 18e18) {
        return UINT64_MAX;
    }

    return (uint64_t) wait + 1;
}


uint64_t
rf_now_ns(void)
{
    struct timespec  ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}
