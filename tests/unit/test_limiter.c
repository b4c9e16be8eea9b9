/* ctest-timeout: 120 */
/* Rate limiting (include/csp/limiter.h): token buckets, multi-limiters and
 * the keyed limiter map.
 *
 * Timing checks are one-sided where the box's load matters: lower bounds on
 * event times are strict ("never faster than the rate allows": the k-th
 * event never happens before (k - burst) / rate after the limiter was made;
 * the only slack is 1 us for floating-point rounding of token counts), upper
 * bounds are loose (seconds). Exact counts are checked where time cannot
 * interfere: buckets of rate 0 never refill, so exactly `burst` events get
 * through however the tasks interleave.
 */
#define _GNU_SOURCE
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <csp.h>
#include <csp/limiter.h>

#include "task_check.h"
#include "test_util.h"

#define MS CSP_MILLISECOND
/* Floating-point slack for strict lower bounds (token arithmetic in doubles). */
#define FP_SLACK ((csp_duration_t)1000)

/* The earliest time the k-th event (1-based) may happen on a fresh bucket of
 * rate r and burst b made at or after t0. */
static csp_time_t earliest(csp_time_t t0, int k, double r, int b)
{
    if (k <= b)
        return t0;
    return t0 + (csp_time_t)((double)(k - b) * 1e9 / r) - FP_SLACK;
}

static int cmp_time(const void *a, const void *b)
{
    csp_time_t x = *(const csp_time_t *)a, y = *(const csp_time_t *)b;
    return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------------ */
/* bad input, no runtime needed                                               */

static void test_limiter_bad_input(void **state)
{
    (void)state;
    csp_ctx_t *bg = csp_ctx_background();
    assert_null(csp_limiter_new(-1.0, 1));
    assert_null(csp_limiter_new(NAN, 1));
    assert_null(csp_limiter_new(1.0, -1));
    assert_null(csp_limiter_multi(NULL, 1));

    csp_limiter_t *l = csp_limiter_new(10.0, 2);
    assert_non_null(l);
    assert_null(csp_limiter_multi(&l, 0));
    csp_limiter_t *with_null[2] = { l, NULL };
    assert_null(csp_limiter_multi(with_null, 2));
    csp_limiter_t *many[CSP_LIMITER_MAX_LEAVES + 1];
    for (int i = 0; i <= CSP_LIMITER_MAX_LEAVES; i++)
        many[i] = csp_limiter_new(1.0, 1);
    assert_null(csp_limiter_multi(many, CSP_LIMITER_MAX_LEAVES + 1));
    csp_limiter_t *mx = csp_limiter_multi(many, CSP_LIMITER_MAX_LEAVES);
    assert_non_null(mx);
    for (int i = 0; i <= CSP_LIMITER_MAX_LEAVES; i++)
        csp_limiter_release(many[i]);
    assert_int_equal(csp_limiter_set_rate(mx, 2.0), CSP_EINVAL); /* multi */
    assert_int_equal(csp_limiter_set_burst(mx, 2), CSP_EINVAL);
    csp_limiter_release(mx); /* frees its leaves too (ASan checks) */

    assert_int_equal(csp_limiter_wait(NULL, bg), CSP_EINVAL);
    assert_int_equal(csp_limiter_wait(l, NULL), CSP_EINVAL);
    assert_int_equal(csp_limiter_wait_n(l, bg, -1), CSP_EINVAL);
    assert_int_equal(csp_limiter_wait_n(l, bg, 3), CSP_EINVAL); /* above the burst */
    assert_int_equal(csp_limiter_allow(NULL), CSP_EINVAL);
    assert_int_equal(csp_limiter_allow_n(l, -1), CSP_EINVAL);
    assert_int_equal(csp_limiter_allow_n(l, 3), CSP_EINVAL);
    assert_int_equal(csp_limiter_allow_n(l, 0), 0);
    assert_true(csp_limiter_tokens(l) > 1.99); /* nothing was taken by the failures */

    csp_reservation_t r;
    assert_int_equal(csp_limiter_reserve(NULL, 1, &r), CSP_EINVAL);
    assert_int_equal(r.ok, 0);
    assert_int_equal(csp_limiter_reserve(l, 1, NULL), CSP_EINVAL);
    assert_int_equal(csp_limiter_reserve(l, -1, &r), CSP_EINVAL);
    assert_int_equal(csp_limiter_reserve(l, 3, &r), CSP_EINVAL);
    assert_int_equal(r.ok, 0);
    assert_true(csp_reservation_delay(&r) == CSP_FOREVER);
    assert_true(csp_reservation_delay(NULL) == CSP_FOREVER);
    csp_reservation_cancel(NULL);
    csp_reservation_cancel(&r); /* a failed reservation: no-op */
    assert_int_equal(csp_reservation_wait(NULL, bg), CSP_EINVAL);
    assert_int_equal(csp_reservation_wait(&r, bg), CSP_EINVAL);

    assert_int_equal(csp_limiter_set_rate(NULL, 1.0), CSP_EINVAL);
    assert_int_equal(csp_limiter_set_rate(l, -2.0), CSP_EINVAL);
    assert_int_equal(csp_limiter_set_rate(l, NAN), CSP_EINVAL);
    assert_int_equal(csp_limiter_set_burst(NULL, 1), CSP_EINVAL);
    assert_int_equal(csp_limiter_set_burst(l, -1), CSP_EINVAL);
    assert_true(isnan(csp_limiter_rate(NULL)));
    assert_true(isnan(csp_limiter_tokens(NULL)));
    assert_int_equal(csp_limiter_burst(NULL), CSP_EINVAL);
    assert_true(csp_limiter_rate(l) == 10.0);
    assert_int_equal(csp_limiter_burst(l), 2);
    assert_null(csp_limiter_retain(NULL));
    csp_limiter_release(NULL);

    /* rates */
    assert_true(csp_rate_every(0) == CSP_RATE_INF);
    assert_true(csp_rate_every(-5) == CSP_RATE_INF);
    assert_true(fabs(csp_rate_every(100 * MS) - 10.0) < 1e-9);
    assert_true(fabs(csp_rate_per(10, 60 * CSP_SECOND) - 10.0 / 60.0) < 1e-12);
    assert_true(csp_rate_per(0, CSP_SECOND) == 0.0);
    assert_true(csp_rate_per(3, 0) == 0.0);

    /* the map */
    assert_null(csp_limiter_map_new(-1.0, 1, 0));
    assert_null(csp_limiter_map_new(1.0, -1, 0));
    assert_null(csp_limiter_map_new(1.0, 1, -1));
    csp_limiter_map_t *m = csp_limiter_map_new(1.0, 1, 0);
    assert_non_null(m);
    assert_null(csp_limiter_map_get(NULL, "k", 1));
    assert_null(csp_limiter_map_get(m, NULL, 1));
    assert_int_equal(csp_limiter_map_allow(NULL, "k", 1, 1), CSP_EINVAL);
    assert_int_equal(csp_limiter_map_allow(m, NULL, 3, 1), CSP_EINVAL);
    assert_int_equal(csp_limiter_map_allow(m, "k", 1, -1), CSP_EINVAL);
    assert_int_equal(csp_limiter_map_wait(m, NULL, "k", 1, 1), CSP_EINVAL);
    assert_int_equal(csp_limiter_map_wait(NULL, bg, "k", 1, 1), CSP_EINVAL);
    assert_int_equal(csp_limiter_map_len(NULL), 0);
    assert_int_equal(csp_limiter_map_evict(NULL), 0);
    /* the empty key is a key like any other */
    assert_int_equal(csp_limiter_map_allow(m, NULL, 0, 1), 0);
    assert_int_equal(csp_limiter_map_allow(m, "", 0, 1), CSP_EAGAIN);
    assert_int_equal(csp_limiter_map_len(m), 1);
    csp_limiter_map_release(m);
    csp_limiter_map_release(NULL);

    csp_limiter_release(l);
}

/* ------------------------------------------------------------------------ */
/* allow: the burst at once, then never faster than the rate                  */

static void allow_window(double rate, int burst, csp_duration_t window)
{
    csp_time_t t0 = csp_now(); /* before the bucket exists: a lower bound */
    csp_limiter_t *l = csp_limiter_new(rate, burst);
    TCHECK(l != NULL);
    if (!l)
        return;
    /* a fresh bucket is full: the whole burst goes through at once */
    for (int i = 0; i < burst; i++)
        TCHECK_EQ(csp_limiter_allow(l), 0);
    int got = burst;
    csp_time_t end = t0 + window;
    while (csp_now() < end) {
        int rc = csp_limiter_allow(l);
        csp_time_t t = csp_now();
        if (rc == 0) {
            got++;
            /* strict: the got-th event cannot come before its time */
            TCHECK(t >= earliest(t0, got, rate, burst));
        } else {
            TCHECK_EQ(rc, CSP_EAGAIN);
        }
        csp_sleep(MS / 2);
    }
    csp_time_t elapsed = csp_now() - t0;
    /* strict upper bound on the count: burst + rate * elapsed */
    TCHECK((double)got <= burst + rate * (double)elapsed / 1e9 + 1e-6);
    /* loose lower bound: at least half of what the rate allows in the window */
    TCHECK((double)got >= burst + 0.5 * rate * (double)window / 1e9 - 1);
    csp_limiter_release(l);
}

static void allow_main(void *arg)
{
    (void)arg;
    allow_window(40.0, 5, 250 * MS);
}

static void test_limiter_allow_burst_then_rate(void **state)
{
    (void)state;
    /* on a plain thread with no runtime (allow never blocks) */
    TC_RESET();
    allow_window(40.0, 5, 250 * MS);
    TC_ASSERT_CLEAN();
    for (int w = 0; w < TC_NWORKER_COUNTS; w += 2)
        T_RUN(allow_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* wait from many tasks: the k-th event at or after (k - burst) / rate        */

enum { WR_TASKS = 4, WR_PER = 6, WR_BURST = 3 };
#define WR_RATE 100.0
static csp_limiter_t *wr_lim;
static csp_time_t wr_times[WR_TASKS * WR_PER];
static atomic_int wr_n;
static csp_wg_t wr_wg;

static void wr_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < WR_PER; i++) {
        TCHECK_EQ(csp_limiter_wait(wr_lim, csp_ctx_background()), 0);
        csp_time_t t = csp_now();
        wr_times[atomic_fetch_add(&wr_n, 1)] = t;
        if (i % 2)
            csp_yield();
    }
    csp_wg_done(&wr_wg);
}

static void wr_main(void *arg)
{
    (void)arg;
    atomic_store(&wr_n, 0);
    csp_time_t t0 = csp_now();
    wr_lim = csp_limiter_new(WR_RATE, WR_BURST);
    csp_wg_add(&wr_wg, WR_TASKS);
    for (int i = 0; i < WR_TASKS; i++)
        TCHECK_EQ(csp_go(wr_task, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&wr_wg), 0);
    int n = atomic_load(&wr_n);
    TCHECK_EQ(n, WR_TASKS * WR_PER);
    qsort(wr_times, (size_t)n, sizeof wr_times[0], cmp_time);
    for (int k = 1; k <= n; k++)
        TCHECK(wr_times[k - 1] >= earliest(t0, k, WR_RATE, WR_BURST));
    /* loose: 21 events at 100/s take ~0.21 s */
    TCHECK(wr_times[n - 1] - t0 < 3 * CSP_SECOND);
    /* every booking was consumed: nothing is left over or owed */
    double tk = csp_limiter_tokens(wr_lim);
    TCHECK(tk <= WR_BURST && tk > -0.5);
    csp_limiter_release(wr_lim);
}

static void test_limiter_wait_rate(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(wr_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* On a plain thread with no runtime: the wait blocks the thread. */
static void test_limiter_wait_plain_thread(void **state)
{
    (void)state;
    csp_time_t t0 = csp_now();
    csp_limiter_t *l = csp_limiter_new(20.0, 1);
    assert_non_null(l);
    for (int k = 1; k <= 4; k++) {
        assert_int_equal(csp_limiter_wait(l, csp_ctx_background()), 0);
        assert_true(csp_now() >= earliest(t0, k, 20.0, 1));
    }
    csp_limiter_release(l);
}

/* ------------------------------------------------------------------------ */
/* contexts: cancelled on entry, cancelled while waiting, deadline too near   */

static csp_limiter_t *cx_lim;
static csp_ctx_t *cx_ctx;
static atomic_int cx_rc;
static csp_wg_t cx_wg;

static void cx_waiter(void *arg)
{
    (void)arg;
    atomic_store(&cx_rc, csp_limiter_wait(cx_lim, cx_ctx));
    csp_wg_done(&cx_wg);
}

static void cx_main(void *arg)
{
    (void)arg;
    /* 1. a context cancelled before the call: ECANCELED, nothing taken */
    cx_lim = csp_limiter_new(1.0, 2);
    csp_ctx_t *c = csp_ctx_with_cancel(csp_ctx_background());
    csp_ctx_cancel(c);
    TCHECK_EQ(csp_limiter_wait(cx_lim, c), CSP_ECANCELED);
    TCHECK(csp_limiter_tokens(cx_lim) > 1.99);
    csp_ctx_release(c);

    /* 2. cancelled while waiting: the wait ends early and gives the token back */
    TCHECK_EQ(csp_limiter_allow_n(cx_lim, 2), 0); /* empty: the next token is 1 s away */
    cx_ctx = csp_ctx_with_cancel(csp_ctx_background());
    atomic_store(&cx_rc, 1);
    csp_wg_add(&cx_wg, 1);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_go(cx_waiter, NULL), 0);
    csp_sleep(30 * MS);
    TCHECK_EQ(atomic_load(&cx_rc), 1); /* still waiting */
    TCHECK(csp_limiter_tokens(cx_lim) < -0.5); /* its token is booked */
    csp_ctx_cancel(cx_ctx);
    TCHECK_EQ(csp_wg_wait(&cx_wg), 0);
    TCHECK_EQ(atomic_load(&cx_rc), CSP_ECANCELED);
    TCHECK(csp_now() - t0 < 900 * MS); /* long before the token came */
    /* given back: the bucket holds what it gained since it was emptied */
    double tk = csp_limiter_tokens(cx_lim);
    TCHECK(tk > -0.01 && tk < 1.0);
    csp_ctx_release(cx_ctx);

    /* 3. a deadline the wait cannot meet: CSP_EDEADLINE at once, nothing taken */
    csp_limiter_t *slow = csp_limiter_new(1.0, 1);
    TCHECK_EQ(csp_limiter_allow(slow), 0);
    csp_ctx_t *d = csp_ctx_with_timeout(csp_ctx_background(), 400 * MS);
    double before = csp_limiter_tokens(slow);
    csp_time_t t1 = csp_now();
    TCHECK_EQ(csp_limiter_wait(slow, d), CSP_EDEADLINE);
    TCHECK(csp_now() - t1 < 300 * MS); /* at once, not at the deadline */
    TCHECK_EQ(csp_ctx_err(d), 0);         /* the deadline has not even passed */
    TCHECK(csp_limiter_tokens(slow) >= before); /* nothing booked */
    csp_ctx_release(d);

    /* 4. a wait that fits in the deadline succeeds, and not early */
    csp_limiter_t *fits = csp_limiter_new(10.0, 1);
    csp_time_t t2 = csp_now();
    TCHECK_EQ(csp_limiter_allow(fits), 0);
    csp_ctx_t *d2 = csp_ctx_with_timeout(csp_ctx_background(), 2 * CSP_SECOND);
    TCHECK_EQ(csp_limiter_wait(fits, d2), 0);
    TCHECK(csp_now() >= earliest(t2, 2, 10.0, 1));
    csp_ctx_release(d2);

    /* 5. rate 0: the bucket never refills, a wait could never end */
    csp_limiter_t *zero = csp_limiter_new(0.0, 1);
    TCHECK_EQ(csp_limiter_wait(zero, csp_ctx_background()), 0);
    TCHECK_EQ(csp_limiter_wait(zero, csp_ctx_background()), CSP_EAGAIN);
    csp_reservation_t r;
    TCHECK_EQ(csp_limiter_reserve(zero, 1, &r), CSP_EAGAIN);
    TCHECK_EQ(r.ok, 0);

    csp_limiter_release(zero);
    csp_limiter_release(fits);
    csp_limiter_release(slow);
    csp_limiter_release(cx_lim);
}

static void test_limiter_wait_ctx(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(cx_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* reservations: delay, cancel gives tokens back (only those still unused)    */

static void rs_main(void *arg)
{
    (void)arg;
    csp_limiter_t *l = csp_limiter_new(1.0, 2); /* 1 token/s: delays of ~1 s */
    csp_reservation_t a, b, c, d;
    TCHECK_EQ(csp_limiter_reserve(l, 2, &a), 0);
    TCHECK_EQ(a.ok, 1);
    TCHECK(csp_reservation_delay(&a) == 0);
    TCHECK_EQ(csp_limiter_reserve(l, 1, &b), 0);
    csp_duration_t db = csp_reservation_delay(&b);
    TCHECK(db > 800 * MS && db <= CSP_SECOND);
    /* cancelling a (its time has passed) gives nothing back */
    csp_reservation_cancel(&a);
    TCHECK_EQ(a.ok, 0);
    TCHECK(csp_limiter_tokens(l) < -0.5);
    /* cancelling b gives its token back: the next booking waits ~1 s, not ~2 s */
    csp_reservation_cancel(&b);
    csp_reservation_cancel(&b); /* twice: no second give-back */
    TCHECK_EQ(b.ok, 0);
    double tk = csp_limiter_tokens(l);
    TCHECK(tk > -0.01 && tk < 0.5);
    TCHECK_EQ(csp_limiter_reserve(l, 1, &c), 0);
    csp_duration_t dc = csp_reservation_delay(&c);
    TCHECK(dc > 500 * MS && dc <= CSP_SECOND);
    /* d is booked after c; cancelling c now gives nothing back (d relies on
     * c's slot: Go's rule), so a new booking still waits ~3 s */
    TCHECK_EQ(csp_limiter_reserve(l, 1, &d), 0);
    TCHECK(csp_reservation_delay(&d) > 1500 * MS);
    csp_reservation_cancel(&c);
    csp_reservation_t e;
    TCHECK_EQ(csp_limiter_reserve(l, 1, &e), 0);
    TCHECK(csp_reservation_delay(&e) > 2500 * MS);
    /* cancelling the latest booking (e) does give back */
    csp_reservation_cancel(&e);
    csp_reservation_t f;
    TCHECK_EQ(csp_limiter_reserve(l, 1, &f), 0);
    csp_duration_t df = csp_reservation_delay(&f);
    TCHECK(df > 1500 * MS && df <= 3 * CSP_SECOND + MS); /* ~4 s without the give-back */
    csp_reservation_cancel(&f);
    csp_reservation_cancel(&d);
    csp_limiter_release(l);

    /* reservation_wait sleeps until the time to act, never less */
    csp_limiter_t *q = csp_limiter_new(20.0, 1);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_limiter_allow(q), 0);
    csp_reservation_t g;
    TCHECK_EQ(csp_limiter_reserve(q, 1, &g), 0);
    TCHECK_EQ(csp_reservation_wait(&g, csp_ctx_background()), 0);
    TCHECK(csp_now() >= g.time_to_act);
    TCHECK(csp_now() >= earliest(t0, 2, 20.0, 1));
    /* ... and cancels itself when its context ends first */
    csp_reservation_t h;
    TCHECK_EQ(csp_limiter_reserve(q, 1, &h), 0);
    csp_ctx_t *c2 = csp_ctx_with_cancel(csp_ctx_background());
    csp_ctx_cancel(c2);
    TCHECK_EQ(csp_reservation_wait(&h, c2), CSP_ECANCELED);
    TCHECK_EQ(h.ok, 0);
    TCHECK(csp_limiter_tokens(q) > -0.5);
    csp_ctx_release(c2);
    csp_limiter_release(q);
}

static void test_limiter_reserve_cancel(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w += 2)
        T_RUN(rs_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* multi-limiter: the most restrictive wins                                   */

enum { ML_EVENTS = 6 };

static void ml_main(void *arg)
{
    (void)arg;
    csp_time_t t0 = csp_now();
    csp_limiter_t *fast = csp_limiter_new(200.0, 1);
    csp_limiter_t *slow = csp_limiter_new(20.0, 1);
    csp_limiter_t *m = csp_limiter_multi((csp_limiter_t *[]){ fast, slow }, 2);
    TCHECK(m != NULL);
    TCHECK(csp_limiter_rate(m) == 20.0); /* the book's Limit(): the most restrictive */
    TCHECK_EQ(csp_limiter_burst(m), 1);
    for (int k = 1; k <= ML_EVENTS; k++) {
        TCHECK_EQ(csp_limiter_wait(m, csp_ctx_background()), 0);
        TCHECK(csp_now() >= earliest(t0, k, 20.0, 1)); /* the slow one's pace */
    }
    TCHECK(csp_now() - t0 < 3 * CSP_SECOND);

    /* all or none: the slow bucket is empty, so allow takes nothing from fast */
    csp_sleep(20 * MS); /* fast refills (200/s, burst 1) */
    TCHECK(csp_limiter_tokens(fast) > 0.99);
    if (csp_limiter_tokens(slow) < 0.9) {
        TCHECK_EQ(csp_limiter_allow(m), CSP_EAGAIN);
        TCHECK(csp_limiter_tokens(fast) > 0.99);
    }

    /* nesting flattens and deduplicates: m + fast is still two buckets */
    csp_limiter_t *m2 = csp_limiter_multi((csp_limiter_t *[]){ m, fast }, 2);
    TCHECK(m2 != NULL);
    TCHECK(csp_limiter_rate(m2) == 20.0);
    csp_limiter_t *slower = csp_limiter_new(5.0, 3);
    csp_limiter_t *m3 = csp_limiter_multi((csp_limiter_t *[]){ m2, slower }, 2);
    TCHECK(csp_limiter_rate(m3) == 5.0);
    TCHECK_EQ(csp_limiter_burst(m3), 1);
    TCHECK_EQ(csp_limiter_wait_n(m3, csp_ctx_background(), 2), CSP_EINVAL); /* > min burst */
    /* a limiter with no limit passes everything through */
    csp_limiter_t *inf = csp_limiter_new(CSP_RATE_INF, 0);
    for (int i = 0; i < 1000; i++)
        TCHECK_EQ(csp_limiter_allow(inf), 0);
    csp_limiter_t *m4 = csp_limiter_multi((csp_limiter_t *[]){ inf, slower }, 2);
    TCHECK(csp_limiter_rate(m4) == 5.0);
    TCHECK_EQ(csp_limiter_burst(m4), 3); /* the unlimited bucket's burst 0 does not count */
    TCHECK_EQ(csp_limiter_allow_n(m4, 3), 0);

    csp_limiter_release(m4);
    csp_limiter_release(inf);
    csp_limiter_release(m3);
    csp_limiter_release(slower);
    csp_limiter_release(m2);
    /* the multi-limiters keep their buckets alive past the caller's release */
    csp_limiter_release(fast);
    csp_limiter_release(slow);
    TCHECK(csp_limiter_rate(m) == 20.0);
    csp_limiter_release(m);
}

static void test_limiter_multi(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(ml_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* Concurrent multi-limiter bookings are all or none: with rate-0 buckets of
 * bursts 100 and 30, exactly 30 events get through and the big bucket keeps
 * exactly 70 tokens, however the tasks interleave. */
enum { MC_TASKS = 8 };
static csp_limiter_t *mc_big, *mc_small, *mc_m;
static atomic_int mc_ok;
static csp_wg_t mc_wg;

static void mc_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        int rc = csp_limiter_allow(mc_m);
        if (rc == 0)
            atomic_fetch_add(&mc_ok, 1);
        else
            TCHECK_EQ(rc, CSP_EAGAIN);
        /* and waits on the small bucket alone fail at once once it is dry */
        if (i % 5 == 0)
            csp_yield();
    }
    csp_wg_done(&mc_wg);
}

static void mc_main(void *arg)
{
    (void)arg;
    mc_big = csp_limiter_new(0.0, 100);
    mc_small = csp_limiter_new(0.0, 30);
    mc_m = csp_limiter_multi((csp_limiter_t *[]){ mc_small, mc_big }, 2);
    atomic_store(&mc_ok, 0);
    csp_wg_add(&mc_wg, MC_TASKS);
    for (int i = 0; i < MC_TASKS; i++)
        TCHECK_EQ(csp_go(mc_task, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&mc_wg), 0);
    TCHECK_EQ(atomic_load(&mc_ok), 30);
    TCHECK(csp_limiter_tokens(mc_big) == 70.0);
    TCHECK(csp_limiter_tokens(mc_small) == 0.0);
    TCHECK_EQ(csp_limiter_wait(mc_small, csp_ctx_background()), CSP_EAGAIN);
    csp_limiter_release(mc_m);
    csp_limiter_release(mc_small);
    csp_limiter_release(mc_big);
}

static void test_limiter_multi_all_or_none(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 3; rep++)
            T_RUN(mc_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* settings at run time                                                       */

static void test_limiter_settings(void **state)
{
    (void)state;
    csp_limiter_t *l = csp_limiter_new(1.0, 2);
    assert_int_equal(csp_limiter_allow_n(l, 2), 0);
    assert_int_equal(csp_limiter_allow(l), CSP_EAGAIN);
    /* no limit: everything passes */
    assert_int_equal(csp_limiter_set_rate(l, CSP_RATE_INF), 0);
    assert_true(csp_limiter_rate(l) == CSP_RATE_INF);
    for (int i = 0; i < 100; i++)
        assert_int_equal(csp_limiter_allow(l), 0);
    /* back to a slow rate: the bucket is full (infinite rate filled it) */
    assert_int_equal(csp_limiter_set_rate(l, 0.5), 0);
    assert_int_equal(csp_limiter_allow_n(l, 2), 0);
    assert_int_equal(csp_limiter_allow(l), CSP_EAGAIN);
    /* a bigger burst lets bigger events through once tokens are there */
    assert_int_equal(csp_limiter_allow_n(l, 3), CSP_EINVAL);
    assert_int_equal(csp_limiter_set_burst(l, 5), 0);
    assert_int_equal(csp_limiter_burst(l), 5);
    assert_int_equal(csp_limiter_set_rate(l, 1e9), 0); /* refills in ns */
    csp_sleep(MS);
    assert_int_equal(csp_limiter_allow_n(l, 5), 0);
    /* a smaller burst drops the tokens above it */
    assert_int_equal(csp_limiter_set_rate(l, 0.0), 0);
    assert_int_equal(csp_limiter_set_burst(l, 1), 0);
    assert_true(csp_limiter_tokens(l) <= 1.0);
    assert_int_equal(csp_limiter_set_burst(l, 0), 0);
    assert_int_equal(csp_limiter_allow(l), CSP_EINVAL); /* burst 0: never */
    csp_limiter_release(l);
}

/* ------------------------------------------------------------------------ */
/* keyed limiters                                                             */

enum { KM_KEYS = 16, KM_TASKS = 8, KM_BURST = 10 };
static csp_limiter_map_t *km_map;
static atomic_int km_ok[KM_KEYS];
static csp_wg_t km_wg;

static void km_task(void *arg)
{
    uintptr_t me = (uintptr_t)arg;
    for (int i = 0; i < KM_KEYS * 3; i++) {
        int k = (int)((me * 7 + (uintptr_t)i) % KM_KEYS);
        char key[16];
        int len = snprintf(key, sizeof key, "client-%d", k);
        int rc = csp_limiter_map_allow(km_map, key, (size_t)len, 1);
        if (rc == 0)
            atomic_fetch_add(&km_ok[k], 1);
        else
            TCHECK_EQ(rc, CSP_EAGAIN);
        if (i % 7 == 0)
            csp_yield();
    }
    csp_wg_done(&km_wg);
}

static void km_main(void *arg)
{
    (void)arg;
    /* rate 0: each key's bucket lets exactly KM_BURST events through, and the
     * keys do not share anything */
    km_map = csp_limiter_map_new(0.0, KM_BURST, CSP_SECOND);
    for (int k = 0; k < KM_KEYS; k++)
        atomic_store(&km_ok[k], 0);
    csp_wg_add(&km_wg, KM_TASKS);
    for (uintptr_t i = 0; i < KM_TASKS; i++)
        TCHECK_EQ(csp_go(km_task, (void *)i), 0);
    TCHECK_EQ(csp_wg_wait(&km_wg), 0);
    for (int k = 0; k < KM_KEYS; k++)
        TCHECK_EQ(atomic_load(&km_ok[k]), KM_BURST); /* 8 * 3 = 24 attempts per key */
    TCHECK_EQ(csp_limiter_map_len(km_map), KM_KEYS);
    /* empty buckets are never evicted (a new one would be full) */
    TCHECK_EQ(csp_limiter_map_evict(km_map), 0);
    csp_limiter_map_release(km_map);

    /* isolation with waits: one client's exhausted bucket does not slow another */
    csp_limiter_map_t *m = csp_limiter_map_new(10.0, 1, 0);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_limiter_map_wait(m, csp_ctx_background(), "alice", 5, 1), 0);
    TCHECK_EQ(csp_limiter_map_wait(m, csp_ctx_background(), "alice", 5, 1), 0);
    TCHECK(csp_now() >= earliest(t0, 2, 10.0, 1)); /* alice waited her turn */
    TCHECK_EQ(csp_limiter_map_allow(m, "bob", 3, 1), 0); /* bob did not */
    TCHECK_EQ(csp_limiter_map_allow(m, "alice", 5, 1), CSP_EAGAIN);
    csp_limiter_t *alice = csp_limiter_map_get(m, "alice", 5);
    csp_limiter_t *alice2 = csp_limiter_map_get(m, "alice", 5);
    TCHECK(alice != NULL && alice == alice2); /* the same bucket per key */
    csp_limiter_t *bob = csp_limiter_map_get(m, "bob", 3);
    TCHECK(bob != alice);
    csp_limiter_release(alice2);
    TCHECK_EQ(csp_limiter_map_len(m), 2);

    /* eviction: idle, full and unreferenced only */
    csp_sleep(150 * MS); /* both refill (10/s, burst 1) */
    TCHECK_EQ(csp_limiter_map_evict(m), 0); /* both still held */
    csp_limiter_release(bob);
    TCHECK_EQ(csp_limiter_map_evict(m), 1); /* bob */
    TCHECK_EQ(csp_limiter_map_len(m), 1);
    /* a held bucket stays usable and is the map's: allow through either */
    TCHECK_EQ(csp_limiter_allow(alice), 0);
    TCHECK_EQ(csp_limiter_map_allow(m, "alice", 5, 1), CSP_EAGAIN);
    csp_limiter_release(alice);
    TCHECK_EQ(csp_limiter_map_evict(m), 0); /* not full again yet */
    csp_sleep(150 * MS);
    TCHECK_EQ(csp_limiter_map_evict(m), 1);
    TCHECK_EQ(csp_limiter_map_len(m), 0);
    csp_limiter_map_release(m);

    /* automatic eviction during calls, at most once per idle_ttl */
    csp_limiter_map_t *a = csp_limiter_map_new(1000.0, 1, 200 * MS);
    for (int i = 0; i < 10; i++) {
        char key[8];
        int len = snprintf(key, sizeof key, "k%d", i);
        TCHECK_EQ(csp_limiter_map_allow(a, key, (size_t)len, 1), 0);
    }
    TCHECK_EQ(csp_limiter_map_len(a), 10);
    csp_sleep(300 * MS); /* idle > ttl, refilled */
    TCHECK_EQ(csp_limiter_map_allow(a, "fresh", 5, 1), 0);
    TCHECK_EQ(csp_limiter_map_len(a), 1); /* the pass ran on that call */
    csp_limiter_map_release(a);
}

static void test_limiter_map(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(km_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* the book's APIConnection: per-second and per-minute limits, scaled         */

/* Three clients share a multi-limiter of 2 per "second" (burst 2) and 10 per
 * "minute" (burst 10), with a "second" of 10 ms: the first 10 events come at
 * the per-second pace, the rest at the per-minute pace. */
#define AC_SEC (10 * MS)
enum { AC_CLIENTS = 3, AC_EVENTS = 14 };
static csp_limiter_t *ac_lim;
static csp_time_t ac_times[AC_EVENTS];
static atomic_int ac_n;
static csp_wg_t ac_wg;

static void ac_client(void *arg)
{
    (void)arg;
    for (;;) {
        int i = atomic_fetch_add(&ac_n, 1);
        if (i >= AC_EVENTS)
            break;
        TCHECK_EQ(csp_limiter_wait(ac_lim, csp_ctx_background()), 0);
        ac_times[i] = csp_now();
    }
    csp_wg_done(&ac_wg);
}

static void ac_main(void *arg)
{
    (void)arg;
    csp_time_t t0 = csp_now();
    csp_limiter_t *per_sec = csp_limiter_new(csp_rate_per(2, AC_SEC), 2);
    csp_limiter_t *per_min = csp_limiter_new(csp_rate_per(10, 60 * AC_SEC), 10);
    ac_lim = csp_limiter_multi((csp_limiter_t *[]){ per_sec, per_min }, 2);
    TCHECK(fabs(csp_limiter_rate(ac_lim) - csp_rate_per(10, 60 * AC_SEC)) < 1e-9);
    atomic_store(&ac_n, 0);
    csp_wg_add(&ac_wg, AC_CLIENTS);
    for (int i = 0; i < AC_CLIENTS; i++)
        TCHECK_EQ(csp_go(ac_client, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&ac_wg), 0);
    qsort(ac_times, AC_EVENTS, sizeof ac_times[0], cmp_time);
    double rs = csp_rate_per(2, AC_SEC), rm = csp_rate_per(10, 60 * AC_SEC);
    for (int k = 1; k <= AC_EVENTS; k++) {
        TCHECK(ac_times[k - 1] >= earliest(t0, k, rs, 2));
        TCHECK(ac_times[k - 1] >= earliest(t0, k, rm, 10));
    }
    TCHECK(ac_times[AC_EVENTS - 1] - t0 < 5 * CSP_SECOND);
    csp_limiter_release(ac_lim);
    csp_limiter_release(per_min);
    csp_limiter_release(per_sec);
}

static void test_limiter_api_connection(void **state)
{
    (void)state;
    T_RUN(ac_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limiter_bad_input),
        cmocka_unit_test(test_limiter_allow_burst_then_rate),
        cmocka_unit_test(test_limiter_wait_rate),
        cmocka_unit_test(test_limiter_wait_plain_thread),
        cmocka_unit_test(test_limiter_wait_ctx),
        cmocka_unit_test(test_limiter_reserve_cancel),
        cmocka_unit_test(test_limiter_multi),
        cmocka_unit_test(test_limiter_multi_all_or_none),
        cmocka_unit_test(test_limiter_settings),
        cmocka_unit_test(test_limiter_map),
        cmocka_unit_test(test_limiter_api_connection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
