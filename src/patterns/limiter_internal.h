/* Token buckets as seen by limiter.c and limiter_map.c. Never installed.
 *
 * A csp_limiter_t is either a bucket (nleaves == 0) or a multi-limiter
 * (nleaves > 0: leaves[] holds retained buckets, distinct and sorted by
 * address, immutable after creation). Every operation works on a "leaf
 * view": the multi-limiter's leaves, or the bucket itself as a view of one.
 *
 * Bucket state (Go's x/time/rate.Limiter), all under the bucket's lock:
 *   limit       tokens per second (>= 0, or +inf: no limit)
 *   burst       bucket depth (>= 0)
 *   tokens      tokens at time `last` (negative while events are booked
 *               ahead: each booking subtracts n at once)
 *   last        when tokens was computed
 *   last_event  time to act of the latest booking (for cancellation)
 * Tokens at time t >= last are min(burst, tokens + limit * (t - last)).
 */
#ifndef CSP_PATTERNS_LIMITER_INTERNAL_H
#define CSP_PATTERNS_LIMITER_INTERNAL_H

#include "../internal.h"

#include <csp/limiter.h>

struct csp_limiter {
    /* Reference count. Increments: relaxed (the caller already holds a
     * reference, or the map lock makes the new holder known); decrements:
     * acq_rel, so that the last release sees every holder's writes before
     * freeing. The map reads it with acquire under its lock (eviction). */
    _Atomic uint32_t refs;
    uint32_t         nleaves;    /* 0: bucket; else multi-limiter (immutable) */
    csp__spinlock_t  lock;       /* bucket: guards the fields below */
    double           limit;
    int              burst;
    double           tokens;
    csp_time_t       last;
    csp_time_t       last_event;
    csp_limiter_t   *leaves[];   /* multi-limiter only */
};

/* Tokens of bucket b at time now (b's lock held). */
double csp__limiter_advance(const csp_limiter_t *b, csp_time_t now);

#endif /* CSP_PATTERNS_LIMITER_INTERNAL_H */
