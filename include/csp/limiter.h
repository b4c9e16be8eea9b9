/* libcsp — rate limiting (the book's chapter 5 "Rate Limiting"; Go's
 * golang.org/x/time/rate token bucket, the book's MultiLimiter, and a keyed
 * limiter map for per-client limits).
 *
 * A limiter is a token bucket: it holds up to `burst` tokens, starts full,
 * and gains `rate` tokens per second. Every event takes one token (or n);
 * an event that finds too few tokens waits (csp_limiter_wait), is refused
 * (csp_limiter_allow) or books its tokens ahead and learns how long to wait
 * (csp_limiter_reserve). Time is csp_now(); waits never end early, so a
 * limiter never lets events through faster than rate and burst allow.
 *
 *   csp_limiter_t *api = csp_limiter_new(csp_rate_per(2, CSP_SECOND), 2);
 *   csp_limiter_t *min = csp_limiter_new(csp_rate_per(10, 60 * CSP_SECOND), 10);
 *   csp_limiter_t *both = csp_limiter_multi((csp_limiter_t *[]){ api, min }, 2);
 *   if (csp_limiter_wait(both, ctx) == 0) { ... do the request ... }
 *
 * A multi-limiter (csp_limiter_multi) is a limiter too: every call below
 * accepts it, and multi-limiters nest. An event on it takes its tokens from
 * every limiter it combines and goes ahead when the most restrictive of them
 * allows it.
 *
 * Ownership: csp_limiter_new / csp_limiter_multi / csp_limiter_map_get return
 * one reference the caller owns and drops with csp_limiter_release; a
 * multi-limiter holds references to the limiters it combines. Limiters are
 * thread-safe: any task or plain thread may use one at once. Their state is
 * guarded by a short internal lock that is never held while waiting.
 */
#ifndef CSP_LIMITER_H
#define CSP_LIMITER_H

#include <math.h>
#include <stddef.h>

#include "common.h"
#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csp_limiter csp_limiter_t;

/* A rate with no limit (Go's rate.Inf): every event is allowed at once and
 * the burst is ignored. */
#define CSP_RATE_INF ((double)INFINITY)

/* The most distinct token buckets one multi-limiter may combine (after
 * flattening nested multi-limiters). */
#define CSP_LIMITER_MAX_LEAVES 8

/* ---- rates ---- */

/* Go's rate.Every: one event per interval, as tokens per second.
 * interval <= 0: CSP_RATE_INF. Never blocks. */
CSP_EXTERN double csp_rate_every(csp_duration_t interval);
/* The book's Per(events, period): events per period, spread evenly
 * (csp_rate_every(period / events)). events <= 0 or period <= 0: 0.0 (a rate
 * that allows nothing beyond the burst). Never blocks. */
CSP_EXTERN double csp_rate_per(int events, csp_duration_t period);

/* ---- token buckets ---- */

/* A token bucket that gains rate tokens per second (0: never refills;
 * CSP_RATE_INF: no limit) and holds at most burst, starting full. Returns one
 * reference owned by the caller, or NULL: rate negative or NaN, burst < 0,
 * out of memory. Never blocks; needs no runtime. */
CSP_EXTERN csp_limiter_t *csp_limiter_new(double rate, int burst);

/* The book's MultiLimiter: a limiter whose events take tokens from every
 * limiter in limiters[0..n-1] (buckets or multi-limiters, which are flattened:
 * each distinct bucket counts once) and that lets an event through when all
 * of them do, i.e. when the most restrictive does. Retains each bucket.
 * Returns one reference owned by the caller, or NULL: limiters NULL, n == 0,
 * a NULL entry, more than CSP_LIMITER_MAX_LEAVES distinct buckets, out of
 * memory. Never blocks. Its rate and burst are those of its buckets (see the
 * getters); csp_limiter_set_rate/set_burst apply to buckets only. */
CSP_EXTERN csp_limiter_t *csp_limiter_multi(csp_limiter_t *const *limiters, size_t n);

/* Adds a reference; returns l (NULL for NULL). */
CSP_EXTERN csp_limiter_t *csp_limiter_retain(csp_limiter_t *l);
/* Drops a reference; the last one frees the limiter (and a multi-limiter's
 * references to its buckets). NULL: no-op. Reservations made on l must be
 * done with (waited for or cancelled) before the caller's last release. */
CSP_EXTERN void csp_limiter_release(csp_limiter_t *l);

/* ---- waiting ---- */

/* Go's Limiter.Wait: csp_limiter_wait_n(l, ctx, 1). */
CSP_EXTERN int csp_limiter_wait(csp_limiter_t *l, csp_ctx_t *ctx);
/* Blocks until l lets n events happen, then takes their tokens (Go's
 * Limiter.WaitN). Returns
 *   0              the tokens are taken (n == 0: at once);
 *   CSP_ECANCELED / CSP_EDEADLINE  ctx is done: on entry (nothing is taken,
 *                  even if tokens were there, as in Go), or while waiting
 *                  (the booked tokens are given back);
 *   CSP_EDEADLINE  at once, without waiting, when ctx has a deadline and the
 *                  wait would not end before it (Go's "would exceed context
 *                  deadline"); nothing is taken;
 *   CSP_EAGAIN     at once: the rate is 0 and the bucket lacks the tokens, so
 *                  no wait could ever end (nothing is taken);
 *   CSP_EINVAL     l or ctx NULL, n < 0, n above the burst (of any bucket of a
 *                  multi-limiter; never possible);
 *   CSP_ESHUTDOWN  the runtime is stopping (the booked tokens are given back).
 * Parks the task (blocks a plain thread) until the tokens' time comes; the
 * tokens are booked on entry (a later change of rate does not move it).
 * Waiters are served in the order they arrive. */
CSP_EXTERN int csp_limiter_wait_n(csp_limiter_t *l, csp_ctx_t *ctx, int n);

/* Go's Limiter.Allow: csp_limiter_allow_n(l, 1). */
CSP_EXTERN int csp_limiter_allow(csp_limiter_t *l);
/* Takes n tokens if all of them are there now (of every bucket of a
 * multi-limiter, all or none). 0: taken, the event may happen now;
 * CSP_EAGAIN: not enough tokens (nothing taken); CSP_EINVAL: l NULL, n < 0,
 * n above the burst. n == 0: 0. Never blocks. */
CSP_EXTERN int csp_limiter_allow_n(csp_limiter_t *l, int n);

/* ---- reservations (Go's Limiter.ReserveN / Reservation) ---- */

/* A booking of n tokens, filled in by csp_limiter_reserve. Caller-owned
 * storage (on the stack is fine); fields are read-only; use the functions.
 * It borrows the limiter: keep a reference to it until the reservation is
 * used or cancelled. */
typedef struct csp_reservation {
    int            ok;          /* 1 while it holds tokens (0: failed or cancelled) */
    int            n;           /* tokens booked */
    csp_time_t     time_to_act; /* when the event may happen (csp_now() time) */
    /* private */
    csp_limiter_t *_lim;
    int            _nleaves;
    struct {
        csp_time_t tta;
        double     limit;
    } _leaf[CSP_LIMITER_MAX_LEAVES];
} csp_reservation_t;

/* Books n tokens now, however long they take to come (Go's ReserveN): fills
 * *r and returns 0; the event may happen at r->time_to_act
 * (csp_reservation_delay from now). Failures leave r->ok == 0 and take
 * nothing: CSP_EINVAL (l or r NULL, n < 0, n above the burst), CSP_EAGAIN
 * (rate 0 and too few tokens: they would never come). Never blocks. */
CSP_EXTERN int csp_limiter_reserve(csp_limiter_t *l, int n, csp_reservation_t *r);
/* How long from now until r's event may happen: 0 if it may now;
 * CSP_FOREVER (as a duration) if r is not ok or NULL. Never blocks. */
CSP_EXTERN csp_duration_t csp_reservation_delay(const csp_reservation_t *r);
/* Gives r's tokens back (Go's Reservation.Cancel), as far as no later booking
 * relies on them: tokens booked by others after r are not given back twice,
 * and nothing is given back once r's time to act has passed (the event may
 * have happened). r->ok becomes 0; cancelling again, or a failed
 * reservation, does nothing. NULL: no-op. Never blocks. */
CSP_EXTERN void csp_reservation_cancel(csp_reservation_t *r);
/* Sleeps until r's time to act. 0; ctx done first: r is cancelled and
 * csp_ctx_err(ctx) returned; CSP_EINVAL (r or ctx NULL, r not ok);
 * CSP_ESHUTDOWN (r cancelled). Parks the task. */
CSP_EXTERN int csp_reservation_wait(csp_reservation_t *r, csp_ctx_t *ctx);

/* ---- settings and state ---- */

/* Changes a bucket's rate (tokens per second, >= 0 or CSP_RATE_INF) from now
 * on; tokens gained so far are kept (Go's SetLimit). Waits already booked
 * keep their time. 0, CSP_EINVAL (NULL, a multi-limiter, negative or NaN
 * rate). Never blocks. */
CSP_EXTERN int csp_limiter_set_rate(csp_limiter_t *l, double rate);
/* Changes a bucket's burst (>= 0) from now on (Go's SetBurst); tokens above
 * the new burst are dropped. 0, CSP_EINVAL (NULL, a multi-limiter,
 * burst < 0). Never blocks. */
CSP_EXTERN int csp_limiter_set_burst(csp_limiter_t *l, int burst);
/* The rate in tokens per second: a multi-limiter's is the lowest of its
 * buckets' (the book's "most restrictive limit"). NaN for NULL. */
CSP_EXTERN double csp_limiter_rate(csp_limiter_t *l);
/* The burst: a multi-limiter's is the lowest of its limiting buckets' (the
 * largest n its waits accept; buckets of rate CSP_RATE_INF ignore their
 * burst, as Go's). CSP_EINVAL for NULL. */
CSP_EXTERN int csp_limiter_burst(csp_limiter_t *l);
/* Tokens available now (negative while waits are booked ahead); a
 * multi-limiter's is the lowest of its buckets'. NaN for NULL. Never blocks. */
CSP_EXTERN double csp_limiter_tokens(csp_limiter_t *l);

/* ---- keyed limiters: one bucket per key (per client, per IP, ...) ----
 *
 *   csp_limiter_map_t *m = csp_limiter_map_new(5.0, 10, 60 * CSP_SECOND);
 *   if (csp_limiter_map_allow(m, ip, ip_len) != 0) { refuse(); }
 *
 * Each key gets its own bucket of the map's rate and burst, created on first
 * use. A key's bucket is evicted (freed) once nobody but the map holds it,
 * it has been idle for idle_ttl and it is full again (so eviction never
 * gives a client tokens it would not have had). Eviction runs during the
 * map's calls, at most once per idle_ttl (once a second when idle_ttl is 0),
 * and on request (csp_limiter_map_evict); one pass looks at every key.
 * Thread-safe; the map lock is held only for the table (lock order: the map
 * lock, then a bucket's lock; never the reverse).
 */
typedef struct csp_limiter_map csp_limiter_map_t;

/* A map whose buckets have this rate and burst (as csp_limiter_new) and are
 * evicted after idle_ttl (>= 0) of idleness. The caller owns it and frees it
 * with csp_limiter_map_release. NULL: bad rate/burst, idle_ttl < 0, out of
 * memory. Never blocks. */
CSP_EXTERN csp_limiter_map_t *csp_limiter_map_new(double rate, int burst,
                                                  csp_duration_t idle_ttl);
/* Frees m and drops its references to its buckets (buckets still held by
 * callers live on, detached). No call on m may be running. NULL: no-op. */
CSP_EXTERN void csp_limiter_map_release(csp_limiter_map_t *m);
/* The bucket of key (key_len bytes compared by content), created if needed.
 * Returns one reference owned by the caller (use it with any csp_limiter_*
 * call, e.g. in a multi-limiter; release it when done: a held bucket is never
 * evicted). NULL: m NULL, key NULL with key_len > 0, out of memory. Never
 * blocks. */
CSP_EXTERN csp_limiter_t *csp_limiter_map_get(csp_limiter_map_t *m, const void *key,
                                              size_t key_len);
/* csp_limiter_allow_n on key's bucket. 0, CSP_EAGAIN, CSP_EINVAL (bad m,
 * key or n), CSP_ENOMEM. Never blocks. */
CSP_EXTERN int csp_limiter_map_allow(csp_limiter_map_t *m, const void *key, size_t key_len,
                                     int n);
/* csp_limiter_wait_n on key's bucket; results as csp_limiter_wait_n, plus
 * CSP_ENOMEM. Blocks as it does. */
CSP_EXTERN int csp_limiter_map_wait(csp_limiter_map_t *m, csp_ctx_t *ctx, const void *key,
                                    size_t key_len, int n);
/* Evicts every bucket that may be evicted now (see above); returns how many.
 * 0 for NULL. Never blocks (it holds the map lock for one pass). */
CSP_EXTERN size_t csp_limiter_map_evict(csp_limiter_map_t *m);
/* The number of keys the map holds now. 0 for NULL. */
CSP_EXTERN size_t csp_limiter_map_len(csp_limiter_map_t *m);

#ifdef __cplusplus
}
#endif
#endif /* CSP_LIMITER_H */
