/* csp_limiter_t: token-bucket rate limiting (golang.org/x/time/rate) and the
 * book's MultiLimiter. See limiter_internal.h for the bucket state.
 *
 * Algorithm (Go's reserveN): an event of n tokens at time now computes the
 * bucket's tokens at now, subtracts n, and if that is negative books the
 * event at now + (-tokens / limit), its "time to act"; the caller then
 * sleeps until then. Bookings are made under the bucket lock, so they are
 * served in arrival order, and each booking pushes the next one further by
 * n / limit. Durations computed from tokens are rounded UP to the
 * nanosecond, and sleeps never end early, so no event ever happens before
 * the bucket allows it.
 *
 * Multi-limiters book on every leaf bucket at once, all or none: the leaves'
 * locks are taken together (in address order, which the leaves array keeps),
 * each leaf's booking is computed, and either every leaf commits or none
 * does. The event's time to act is the latest of the leaves' (the most
 * restrictive one). Like the book's sequential Wait over its limiters, each
 * leaf's token is taken at booking time.
 *
 * Invariants
 *   - A bucket's fields change only under its lock; nothing here holds a
 *     lock across a switch, a sleep or a call that may block.
 *   - A committed booking subtracted exactly n tokens from every finite-rate
 *     leaf and recorded (time to act, limit) per leaf in the reservation, so
 *     that csp_reservation_cancel can give back what is still unused.
 *   - leaves[] of a multi-limiter is immutable, distinct, sorted by address
 *     and holds one reference per leaf.
 *
 * Lock order: bucket locks in increasing address order; the limiter map's
 * lock (limiter_map.c) before any bucket lock. Bucket locks are leaves of
 * the library's lock order otherwise (docs/internals/locking.md).
 */
#include <stdlib.h>
#include <string.h>

#include "limiter_internal.h"
#include "../sched/wait.h"

/* ---- arithmetic (no libm: the library links only pthread) ---- */

static inline bool is_inf(double x)
{
    return x > 1.7976931348623157e308; /* +inf: above DBL_MAX */
}

static inline bool is_nan(double x)
{
    return x != x;
}

/* Tokens gained in d ns at limit tokens/s; whole seconds and the rest apart,
 * so long durations keep nanosecond precision (Go does the same). */
static double tokens_from_dur(double limit, csp_duration_t d)
{
    if (d <= 0 || limit <= 0)
        return 0;
    if (is_inf(limit))
        return limit;
    return (double)(d / CSP_SECOND) * limit + (double)(d % CSP_SECOND) * limit / 1e9;
}

/* Time needed to gain `tokens` (> 0) at limit, rounded up to the ns;
 * CSP_FOREVER when it never comes (limit 0) or does not fit. */
static csp_duration_t dur_from_tokens(double limit, double tokens)
{
    if (tokens <= 0 || is_inf(limit))
        return 0;
    if (limit <= 0)
        return CSP_FOREVER;
    double ns = tokens / limit * 1e9;
    if (!(ns < 9.0e18))
        return CSP_FOREVER;
    csp_duration_t d = (csp_duration_t)ns;
    if ((double)d < ns)
        d++;
    return d;
}

double csp__limiter_advance(const csp_limiter_t *b, csp_time_t now)
{
    csp_time_t last = b->last;
    if (now < last)
        last = now;
    double t = b->tokens + tokens_from_dur(b->limit, now - last);
    if (t > (double)b->burst)
        t = (double)b->burst;
    return t;
}

static bool rate_ok(double rate)
{
    return !is_nan(rate) && rate >= 0;
}

/* ---- rates ---- */

CSP_EXTERN double csp_rate_every(csp_duration_t interval)
{
    if (interval <= 0)
        return CSP_RATE_INF;
    return 1e9 / (double)interval;
}

CSP_EXTERN double csp_rate_per(int events, csp_duration_t period)
{
    if (events <= 0 || period <= 0)
        return 0.0;
    return (double)events * 1e9 / (double)period;
}

/* ---- life cycle ---- */

CSP_EXTERN csp_limiter_t *csp_limiter_new(double rate, int burst)
{
    if (!rate_ok(rate) || burst < 0)
        return NULL;
    csp_limiter_t *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    atomic_init(&l->refs, 1);
    l->limit = rate;
    l->burst = burst;
    l->tokens = (double)burst; /* starts full */
    l->last = csp_now();
    l->last_event = l->last;
    return l;
}

CSP_EXTERN csp_limiter_t *csp_limiter_retain(csp_limiter_t *l)
{
    if (l)
        atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed); /* caller holds one */
    return l;
}

CSP_EXTERN void csp_limiter_release(csp_limiter_t *l)
{
    if (!l)
        return;
    /* acq_rel: the last releaser sees every other holder's writes */
    if (atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (uint32_t i = 0; i < l->nleaves; i++)
        csp_limiter_release(l->leaves[i]); /* leaves are buckets: no deeper recursion */
    free(l);
}

static int cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)*(csp_limiter_t *const *)a;
    uintptr_t y = (uintptr_t)*(csp_limiter_t *const *)b;
    return x < y ? -1 : x > y;
}

CSP_EXTERN csp_limiter_t *csp_limiter_multi(csp_limiter_t *const *limiters, size_t n)
{
    if (!limiters || n == 0)
        return NULL;
    csp_limiter_t *flat[CSP_LIMITER_MAX_LEAVES];
    size_t nf = 0;
    for (size_t i = 0; i < n; i++) {
        csp_limiter_t *x = limiters[i];
        if (!x)
            return NULL;
        size_t k = x->nleaves ? x->nleaves : 1;
        for (size_t j = 0; j < k; j++) {
            csp_limiter_t *leaf = x->nleaves ? x->leaves[j] : x;
            bool dup = false;
            for (size_t m = 0; m < nf; m++)
                dup |= flat[m] == leaf;
            if (dup)
                continue;
            if (nf == CSP_LIMITER_MAX_LEAVES)
                return NULL;
            flat[nf++] = leaf;
        }
    }
    qsort(flat, nf, sizeof flat[0], cmp_ptr); /* the lock order */
    csp_limiter_t *l = calloc(1, sizeof *l + nf * sizeof(csp_limiter_t *));
    if (!l)
        return NULL;
    atomic_init(&l->refs, 1);
    l->nleaves = (uint32_t)nf;
    for (size_t i = 0; i < nf; i++)
        l->leaves[i] = csp_limiter_retain(flat[i]);
    return l;
}

/* The leaf view: a multi-limiter's buckets, or the bucket itself. */
#define LEAVES(l, self_) ((l)->nleaves ? (l)->leaves : &(self_))
#define NLEAVES(l)       ((l)->nleaves ? (l)->nleaves : 1u)

/* ---- booking ---- */

/* Books n (> 0) tokens on every leaf of l at time now, if each leaf's time
 * to act is at most latest; all or none. Returns 0 and fills *r;
 * CSP_EINVAL (n above a finite-rate leaf's burst), CSP_EAGAIN (a leaf's
 * tokens never come: rate 0), CSP_ETIMEDOUT (later than latest). Takes the
 * leaves' locks (address order) and releases them before returning. */
static int book(csp_limiter_t *l, int n, csp_time_t now, csp_time_t latest, csp_reservation_t *r)
{
    csp_limiter_t *self = l;
    csp_limiter_t *const *lv = LEAVES(l, self);
    uint32_t nl = NLEAVES(l);
    double tok[CSP_LIMITER_MAX_LEAVES];
    csp_time_t tta[CSP_LIMITER_MAX_LEAVES];
    csp_time_t when = now;
    int rc = 0;

    for (uint32_t i = 0; i < nl; i++)
        csp__spin_lock(&lv[i]->lock);
    for (uint32_t i = 0; i < nl && rc == 0; i++) {
        csp_limiter_t *b = lv[i];
        if (is_inf(b->limit)) { /* no limit: nothing taken */
            tta[i] = now;
            continue;
        }
        if (n > b->burst) {
            rc = CSP_EINVAL;
            break;
        }
        double t = csp__limiter_advance(b, now) - (double)n;
        csp_duration_t wait = dur_from_tokens(b->limit, -t);
        if (wait == CSP_FOREVER || wait > CSP_FOREVER - 1 - now) {
            rc = CSP_EAGAIN;
            break;
        }
        tok[i] = t;
        tta[i] = now + wait;
        if (tta[i] > latest)
            rc = CSP_ETIMEDOUT;
        if (tta[i] > when)
            when = tta[i];
    }
    if (rc == 0) {
        for (uint32_t i = 0; i < nl; i++) {
            csp_limiter_t *b = lv[i];
            r->_leaf[i].tta = tta[i];
            r->_leaf[i].limit = b->limit;
            if (is_inf(b->limit))
                continue;
            b->last = now;
            b->tokens = tok[i];
            b->last_event = tta[i];
        }
    }
    for (uint32_t i = nl; i-- > 0;)
        csp__spin_unlock(&lv[i]->lock);

    r->ok = rc == 0;
    r->n = rc == 0 ? n : 0;
    r->time_to_act = when;
    r->_lim = l;
    r->_nleaves = (int)nl;
    return rc;
}

static void res_clear(csp_reservation_t *r, csp_limiter_t *l)
{
    r->ok = 0;
    r->n = 0;
    r->time_to_act = 0;
    r->_lim = l;
    r->_nleaves = 0;
}

CSP_EXTERN int csp_limiter_reserve(csp_limiter_t *l, int n, csp_reservation_t *r)
{
    if (!r)
        return CSP_EINVAL;
    res_clear(r, l);
    if (!l || n < 0)
        return CSP_EINVAL;
    csp_time_t now = csp_now();
    if (n == 0) {
        r->ok = 1;
        r->time_to_act = now;
        return 0;
    }
    int rc = book(l, n, now, CSP_FOREVER - 1, r);
    return rc == CSP_ETIMEDOUT ? CSP_EAGAIN : rc;
}

CSP_EXTERN csp_duration_t csp_reservation_delay(const csp_reservation_t *r)
{
    if (!r || !r->ok)
        return CSP_FOREVER;
    csp_duration_t d = r->time_to_act - csp_now();
    return d > 0 ? d : 0;
}

CSP_EXTERN void csp_reservation_cancel(csp_reservation_t *r)
{
    if (!r || !r->ok)
        return;
    r->ok = 0;
    csp_limiter_t *l = r->_lim;
    csp_time_t now = csp_now();
    if (!l || r->n == 0 || r->time_to_act < now)
        return; /* nothing booked, or the event may have happened already */
    csp_limiter_t *self = l;
    csp_limiter_t *const *lv = LEAVES(l, self);
    uint32_t nl = NLEAVES(l);
    if ((int)nl != r->_nleaves)
        return; /* not a reservation of this limiter */
    for (uint32_t i = 0; i < nl; i++) {
        csp_limiter_t *b = lv[i];
        double limit = r->_leaf[i].limit;
        csp_time_t tta = r->_leaf[i].tta;
        if (is_inf(limit))
            continue; /* nothing was taken */
        csp__spin_lock(&b->lock);
        /* Tokens booked by others after r (between r's time to act and the
         * latest booking) are not given back: they are theirs now. */
        double restore = (double)r->n - tokens_from_dur(limit, b->last_event - tta);
        if (restore > 0) {
            double t = csp__limiter_advance(b, now) + restore;
            if (t > (double)b->burst)
                t = (double)b->burst;
            b->last = now;
            b->tokens = t;
            if (tta == b->last_event) {
                csp_time_t prev = tta - dur_from_tokens(limit, (double)r->n);
                if (prev >= now)
                    b->last_event = prev;
            }
        }
        csp__spin_unlock(&b->lock);
    }
}

/* Parks until `when` or until ctx is done. 0 once `when` has come (also if
 * ctx finished at the same moment); csp_ctx_err(ctx); CSP_ESHUTDOWN. */
static int sleep_until_ctx(csp_ctx_t *ctx, csp_time_t when)
{
    csp__waiter_t w;
    csp__waiter_init(&w); /* known to nobody else: no queue, no unlink hook */
    uint32_t st = csp__waiter_wait_ctx(&w, ctx, when, "limiter.wait");
    if (st == CSP__W_TIMEDOUT)
        return 0;
    if (st == CSP__W_CANCELED) {
        if (csp_now() >= when)
            return 0; /* the tokens' time came anyway: the event may go */
        int e = csp_ctx_err(ctx);
        return e ? e : CSP_ECANCELED;
    }
    return csp__shutdown_err();
}

CSP_EXTERN int csp_reservation_wait(csp_reservation_t *r, csp_ctx_t *ctx)
{
    if (!r || !ctx || !r->ok)
        return CSP_EINVAL;
    if (r->time_to_act <= csp_now())
        return 0;
    int rc = sleep_until_ctx(ctx, r->time_to_act);
    if (rc != 0)
        csp_reservation_cancel(r);
    return rc;
}

/* ---- wait and allow ---- */

CSP_EXTERN int csp_limiter_wait(csp_limiter_t *l, csp_ctx_t *ctx)
{
    return csp_limiter_wait_n(l, ctx, 1);
}

CSP_EXTERN int csp_limiter_wait_n(csp_limiter_t *l, csp_ctx_t *ctx, int n)
{
    if (!l || !ctx || n < 0)
        return CSP_EINVAL;
    int e = csp_ctx_err(ctx);
    if (e)
        return e; /* Go: a done context fails even if tokens are there */
    if (n == 0)
        return 0;
    csp_time_t now = csp_now();
    csp_time_t dl = CSP_FOREVER;
    /* A wait must end strictly before the deadline: at the deadline the
     * context is done. */
    csp_time_t latest = csp_ctx_deadline(ctx, &dl) ? dl - 1 : CSP_FOREVER - 1;
    csp_reservation_t r;
    int rc = book(l, n, now, latest, &r);
    if (rc == CSP_ETIMEDOUT)
        return CSP_EDEADLINE; /* at once: the wait would outlast the deadline */
    if (rc != 0)
        return rc;
    if (r.time_to_act <= now)
        return 0;
    rc = sleep_until_ctx(ctx, r.time_to_act);
    if (rc != 0)
        csp_reservation_cancel(&r);
    return rc;
}

CSP_EXTERN int csp_limiter_allow(csp_limiter_t *l)
{
    return csp_limiter_allow_n(l, 1);
}

CSP_EXTERN int csp_limiter_allow_n(csp_limiter_t *l, int n)
{
    if (!l || n < 0)
        return CSP_EINVAL;
    if (n == 0)
        return 0;
    csp_time_t now = csp_now();
    csp_reservation_t r;
    int rc = book(l, n, now, now, &r);
    return rc == CSP_ETIMEDOUT ? CSP_EAGAIN : rc;
}

/* ---- settings and state ---- */

CSP_EXTERN int csp_limiter_set_rate(csp_limiter_t *l, double rate)
{
    if (!l || l->nleaves || !rate_ok(rate))
        return CSP_EINVAL;
    csp__spin_lock(&l->lock);
    csp_time_t now = csp_now();
    l->tokens = csp__limiter_advance(l, now); /* tokens gained so far are kept */
    l->last = now;
    l->limit = rate;
    csp__spin_unlock(&l->lock);
    return 0;
}

CSP_EXTERN int csp_limiter_set_burst(csp_limiter_t *l, int burst)
{
    if (!l || l->nleaves || burst < 0)
        return CSP_EINVAL;
    csp__spin_lock(&l->lock);
    csp_time_t now = csp_now();
    double t = csp__limiter_advance(l, now);
    if (t > (double)burst)
        t = (double)burst;
    l->tokens = t;
    l->last = now;
    l->burst = burst;
    csp__spin_unlock(&l->lock);
    return 0;
}

CSP_EXTERN double csp_limiter_rate(csp_limiter_t *l)
{
    if (!l)
        return __builtin_nan("");
    csp_limiter_t *self = l;
    csp_limiter_t *const *lv = LEAVES(l, self);
    double min = CSP_RATE_INF;
    for (uint32_t i = 0; i < NLEAVES(l); i++) {
        csp__spin_lock(&lv[i]->lock);
        if (lv[i]->limit < min)
            min = lv[i]->limit;
        csp__spin_unlock(&lv[i]->lock);
    }
    return min;
}

CSP_EXTERN int csp_limiter_burst(csp_limiter_t *l)
{
    if (!l)
        return CSP_EINVAL;
    csp_limiter_t *self = l;
    csp_limiter_t *const *lv = LEAVES(l, self);
    /* the lowest burst of the buckets that limit (an unlimited bucket's burst
     * is ignored, as in bookings); all unlimited: the lowest of all */
    int min = -1, min_all = -1;
    for (uint32_t i = 0; i < NLEAVES(l); i++) {
        csp__spin_lock(&lv[i]->lock);
        int b = lv[i]->burst;
        if (!is_inf(lv[i]->limit) && (min < 0 || b < min))
            min = b;
        if (min_all < 0 || b < min_all)
            min_all = b;
        csp__spin_unlock(&lv[i]->lock);
    }
    return min >= 0 ? min : min_all;
}

CSP_EXTERN double csp_limiter_tokens(csp_limiter_t *l)
{
    if (!l)
        return __builtin_nan("");
    csp_limiter_t *self = l;
    csp_limiter_t *const *lv = LEAVES(l, self);
    csp_time_t now = csp_now();
    double min = CSP_RATE_INF;
    for (uint32_t i = 0; i < NLEAVES(l); i++) {
        csp__spin_lock(&lv[i]->lock);
        double t = csp__limiter_advance(lv[i], now);
        csp__spin_unlock(&lv[i]->lock);
        if (t < min)
            min = t;
    }
    return min;
}
