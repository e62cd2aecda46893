/*
 * Copyright (C) ReplayForge contributors
 *
 * A token bucket: rate tokens per second, up to burst stored.  Used for
 * records/s and bytes/s limits when forwarding and replaying.  Not
 * thread-safe; one owner.
 */

#ifndef _RF_RATELIMIT_H_INCLUDED_
#define _RF_RATELIMIT_H_INCLUDED_


#include <stdint.h>


typedef struct {
    double                      rate;       /* tokens per second, 0: none */
    double                      burst;      /* most tokens kept */
    double                      tokens;
    uint64_t                    last_ns;    /* monotonic time of refill */
} rf_ratelimit_t;


/* rate 0 means unlimited; burst 0 means one second's worth (at least 1). */
void rf_ratelimit_init(rf_ratelimit_t *rl, double rate, double burst,
    uint64_t now_ns);

/*
 * Take n tokens at monotonic time now_ns: returns 0 when they were taken,
 * or the nanoseconds to wait before they will be there (nothing taken).
 * A request larger than burst is allowed once the bucket is full, taking
 * it into debt, so that one huge item is never refused forever.
 */
uint64_t rf_ratelimit_take(rf_ratelimit_t *rl, double n, uint64_t now_ns);

/* CLOCK_MONOTONIC in ns. */
uint64_t rf_now_ns(void);


#endif /* _RF_RATELIMIT_H_INCLUDED_ */
