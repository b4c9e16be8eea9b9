/* ctest-timeout: 120 */
/* Supervision patterns (include/csp/supervise.h): heartbeats (interval and
 * per-work, never blocking), replicated requests (first success wins, the
 * rest cancelled and joined), stewards (restart on a missed heartbeat or a
 * failure, restart budget, nesting, no task left behind).
 *
 * Timing checks are one-sided where load matters: strict where the library
 * promises a bound (a ticker never pulses more often than its interval; a
 * steward never declares a ward dead before `timeout` of silence, so it
 * cannot restart more often than that), loose elsewhere (seconds).
 * "No leak" is csp_stats().tasks_live back at its value before the pattern
 * ran (polled briefly: a task that has signalled its end may still be
 * returning).
 */
#define _GNU_SOURCE
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
#include <csp/supervise.h>

#include "task_check.h"
#include "test_util.h"

#define MS CSP_MILLISECOND

/* Worker counts for the slower (timer-driven) tests. */
static const int sv_workers[] = { 1, 2, 8 };
#define SV_NW ((int)(sizeof sv_workers / sizeof sv_workers[0]))

static uint64_t tasks_live(void)
{
    csp_stats_t st;
    TCHECK_EQ(csp_stats(&st), 0);
    return st.tasks_live;
}

/* Waits (up to 2 s) until tasks_live drops to want; returns the last value. */
static uint64_t live_settle(uint64_t want)
{
    csp_time_t until = csp_now() + 2 * CSP_SECOND;
    uint64_t v;
    while ((v = tasks_live()) > want && csp_now() < until)
        csp_sleep(MS);
    return v;
}

/* ------------------------------------------------------------------------ */
/* bad input                                                                 */

static int never_ward(csp_ctx_t *ctx, csp_heartbeat_t *hb, void *arg)
{
    (void)ctx, (void)hb, (void)arg;
    return 0;
}

static int never_replica(csp_ctx_t *ctx, int i, void *arg, void *out)
{
    (void)ctx, (void)i, (void)arg, (void)out;
    return 0;
}

static int never_work(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *results, void *arg)
{
    (void)ctx, (void)hb, (void)results, (void)arg;
    return 0;
}

static void test_supervise_bad_input(void **state)
{
    (void)state;
    csp_ctx_t *bg = csp_ctx_background();
    /* heartbeats */
    assert_null(csp_heartbeat_new(-1));
    assert_null(csp_heartbeat_new(10 * MS)); /* an interval needs a runtime (ticker) */
    assert_int_equal(csp_heartbeat_pulse(NULL), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_tick(NULL), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_close(NULL), CSP_EINVAL);
    assert_null(csp_heartbeat_chan(NULL));
    assert_null(csp_heartbeat_ticker(NULL));
    assert_int_equal(csp_heartbeat_interval(NULL), 0);
    assert_null(csp_heartbeat_retain(NULL));
    csp_heartbeat_release(NULL);
    assert_int_equal(csp_heartbeat_select(NULL, bg, NULL, 0), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_sleep(NULL, bg, MS), CSP_EINVAL);

    /* a per-work heartbeat needs no runtime */
    csp_heartbeat_t *hb = csp_heartbeat_new(0);
    assert_non_null(hb);
    assert_null(csp_heartbeat_ticker(hb));
    assert_int_equal(csp_heartbeat_tick(hb), 0);
    assert_int_equal(csp_heartbeat_select(hb, NULL, NULL, 0), CSP_EINVAL);
    csp_case_t cases[CSP_HEARTBEAT_MAX_CASES + 1];
    assert_int_equal(csp_heartbeat_select(hb, bg, NULL, 1), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_select(hb, bg, cases, CSP_HEARTBEAT_MAX_CASES + 1),
                     CSP_EINVAL);
    assert_int_equal(csp_heartbeat_send(hb, bg, NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_recv(hb, bg, NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_pulse(hb), 0);
    assert_int_equal(csp_heartbeat_pulse(hb), CSP_EAGAIN); /* one pending is enough */
    assert_int_equal(csp_chan_len(csp_heartbeat_chan(hb)), 1);
    assert_int_equal(csp_chan_recv(csp_heartbeat_chan(hb), NULL), 0);
    assert_int_equal(csp_heartbeat_pulse(hb), 0);
    assert_int_equal(csp_heartbeat_close(hb), 0);
    assert_int_equal(csp_heartbeat_close(hb), CSP_ECLOSED);
    assert_int_equal(csp_heartbeat_pulse(hb), CSP_ECLOSED);
    csp_chan_t *ch = csp_chan_retain(csp_heartbeat_chan(hb));
    csp_heartbeat_release(hb);
    /* the listener's reference outlives the heartbeat: one pulse, then closed */
    assert_int_equal(csp_chan_recv(ch, NULL), 0);
    assert_int_equal(csp_chan_recv(ch, NULL), CSP_ECLOSED);
    csp_chan_release(ch);

    csp_chan_t *h = (csp_chan_t *)1, *r = (csp_chan_t *)1;
    assert_int_equal(csp_heartbeat_go(NULL, 0, 4, 0, never_work, NULL, &h, &r), CSP_EINVAL);
    assert_null(h);
    assert_null(r);
    assert_int_equal(csp_heartbeat_go(bg, 0, 4, 0, NULL, NULL, &h, &r), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_go(bg, -1, 4, 0, never_work, NULL, &h, &r), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_go(bg, 0, 4, 0, never_work, NULL, NULL, &r), CSP_EINVAL);
    assert_int_equal(csp_heartbeat_go(bg, 0, CSP_CHAN_MAX_ELEM + 1, 0, never_work, NULL, &h, &r),
                     CSP_EINVAL);
    assert_int_equal(csp_heartbeat_go(bg, 0, 4, 0, never_work, NULL, &h, &r), CSP_ESHUTDOWN);
    assert_null(h);

    /* replicated requests */
    int out;
    assert_int_equal(csp_replicate(NULL, 2, never_replica, NULL, &out, sizeof out), CSP_EINVAL);
    assert_int_equal(csp_replicate(bg, 0, never_replica, NULL, &out, sizeof out), CSP_EINVAL);
    assert_int_equal(csp_replicate(bg, -3, never_replica, NULL, &out, sizeof out), CSP_EINVAL);
    assert_int_equal(csp_replicate(bg, 2, NULL, NULL, &out, sizeof out), CSP_EINVAL);
    assert_int_equal(csp_replicate(bg, 2, never_replica, NULL, NULL, sizeof out), CSP_EINVAL);
    assert_int_equal(csp_replicate(bg, 3, never_replica, NULL, &out, SIZE_MAX / 2), CSP_EINVAL);
    /* no runtime: every replica fails to spawn */
    assert_int_equal(csp_replicate(bg, 2, never_replica, NULL, &out, sizeof out), CSP_ESHUTDOWN);

    /* stewards */
    csp_steward_opts_t o = { .timeout = 10 * MS };
    assert_null(csp_steward_new(NULL, never_ward, NULL));
    assert_null(csp_steward_new(&o, NULL, NULL));
    o.timeout = 0;
    assert_null(csp_steward_new(&o, never_ward, NULL));
    o.timeout = 10 * MS;
    o.ward_interval = 10 * MS; /* a ward that can never be on time */
    assert_null(csp_steward_new(&o, never_ward, NULL));
    o.ward_interval = -1;
    assert_null(csp_steward_new(&o, never_ward, NULL));
    o.ward_interval = 0;
    o.budget_period = -1;
    assert_null(csp_steward_new(&o, never_ward, NULL));
    o.budget_period = 0;
    o.backoff = -1;
    assert_null(csp_steward_new(&o, never_ward, NULL));
    o.backoff = 0;
    o.name = "a-very-long-ward-task-name-that-is-cut-at-31-bytes";
    csp_steward_t *s = csp_steward_new(&o, never_ward, NULL);
    assert_non_null(s);
    assert_int_equal(csp_steward_run(NULL, bg, NULL), CSP_EINVAL);
    assert_int_equal(csp_steward_run(s, NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_steward_run(s, bg, NULL), CSP_ESHUTDOWN); /* no runtime */
    assert_null(csp_steward_go(NULL, bg, MS, NULL));
    assert_null(csp_steward_go(s, NULL, MS, NULL));
    assert_null(csp_steward_go(s, bg, -1, NULL));
    assert_null(csp_steward_go(s, bg, 0, NULL)); /* no runtime */
    assert_int_equal(csp_steward_restarts(NULL), 0);
    assert_int_equal(csp_steward_restarts(s), 0);
    assert_null(csp_steward_retain(NULL));
    csp_steward_release(NULL);
    csp_steward_release(s);
}

/* ------------------------------------------------------------------------ */
/* interval heartbeats: about every interval, never more often                */

#define HI_INTERVAL (20 * MS)
#define HI_RUN      (300 * MS)
static csp_heartbeat_t *hi_hb;
static _Atomic csp_time_t hi_end;
static csp_wg_t hi_wg;

static void hi_worker(void *arg)
{
    (void)arg;
    /* idle but healthy: pulses every interval while it waits */
    TCHECK_EQ(csp_heartbeat_sleep(hi_hb, csp_ctx_background(), HI_RUN), 0);
    atomic_store(&hi_end, csp_now());
    TCHECK_EQ(csp_heartbeat_close(hi_hb), 0);
    csp_wg_done(&hi_wg);
}

static void hi_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    csp_time_t t0 = csp_now();
    hi_hb = csp_heartbeat_new(HI_INTERVAL);
    TCHECK(hi_hb != NULL);
    TCHECK(csp_heartbeat_interval(hi_hb) == HI_INTERVAL);
    TCHECK(csp_heartbeat_ticker(hi_hb) != NULL);
    csp_wg_add(&hi_wg, 1);
    TCHECK_EQ(csp_go(hi_worker, NULL), 0);
    csp_chan_t *ch = csp_heartbeat_chan(hi_hb);
    int n = 0;
    csp_time_t first = 0;
    while (csp_chan_recv(ch, NULL) == 0) {
        if (n++ == 0)
            first = csp_now();
    }
    TCHECK_EQ(csp_wg_wait(&hi_wg), 0);
    csp_time_t end = atomic_load(&hi_end);
    /* strict: no pulse before the first interval, no more than one per tick */
    TCHECK(n >= 1 && first >= t0 + HI_INTERVAL);
    TCHECK(n <= (end - t0) / HI_INTERVAL + 1);
    TCHECK(end - t0 >= HI_RUN); /* the sleep did not end early */
    /* loose: a quarter of the ticks at least */
    TCHECK(n >= HI_RUN / HI_INTERVAL / 4);
    csp_heartbeat_release(hi_hb);
    TCHECK_EQ(live_settle(live0), live0);
}

static void test_heartbeat_interval(void **state)
{
    (void)state;
    for (int w = 0; w < SV_NW; w++)
        T_RUN(hi_main, NULL, sv_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* nobody listens: pulses never block the worker                              */

enum { NL_VALUES = 40 };
static csp_heartbeat_t *nl_hb;
static csp_chan_t *nl_results;
static csp_wg_t nl_wg;

static void nl_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < NL_VALUES; i++)
        TCHECK_EQ(csp_heartbeat_send(nl_hb, csp_ctx_background(), nl_results, &i), 0);
    csp_chan_close(nl_results);
    csp_wg_done(&nl_wg);
}

static void nl_main(void *arg)
{
    (void)arg;
    /* per-work: 10000 pulses with no listener return at once */
    csp_heartbeat_t *pw = csp_heartbeat_new(0);
    csp_time_t t0 = csp_now();
    int sent = 0, dropped = 0;
    for (int i = 0; i < 10000; i++) {
        int rc = csp_heartbeat_pulse(pw);
        if (rc == 0)
            sent++;
        else if (rc == CSP_EAGAIN)
            dropped++;
    }
    TCHECK_EQ(sent, 1);
    TCHECK_EQ(dropped, 9999);
    TCHECK(csp_now() - t0 < 2 * CSP_SECOND);
    csp_heartbeat_release(pw);

    /* interval: a worker blocked in sends keeps pulsing into the void and
     * still delivers every value, in order */
    nl_hb = csp_heartbeat_new(MS);
    nl_results = csp_chan_make(sizeof(int), 0);
    csp_wg_add(&nl_wg, 1);
    TCHECK_EQ(csp_go(nl_worker, NULL), 0);
    int v, expect = 0;
    while (csp_chan_recv(nl_results, &v) == 0) {
        TCHECK_EQ(v, expect);
        expect++;
        if (expect % 8 == 0)
            csp_sleep(3 * MS); /* slow consumer: ticks fire while it sends */
    }
    TCHECK_EQ(expect, NL_VALUES);
    TCHECK_EQ(csp_wg_wait(&nl_wg), 0);
    TCHECK_EQ(csp_chan_len(csp_heartbeat_chan(nl_hb)), 1); /* one pending, the rest dropped */
    csp_chan_release(nl_results);

    /* tick(): for work that never blocks */
    TCHECK_EQ(csp_chan_recv(csp_heartbeat_chan(nl_hb), NULL), 0);
    int ticks = 0;
    csp_time_t begin = csp_now(), until = begin + 30 * MS;
    while (csp_now() < until) {
        ticks += csp_heartbeat_tick(nl_hb);
        csp_yield();
    }
    csp_time_t end = csp_now();
    /* The ticker fires on a fixed 1 ms grid and its channel holds one tick,
     * so what tick() can count in [begin, end] is: the tick pending at
     * begin, one late fire of a grid point before begin (a late ticker
     * skips the points it missed: at most one), and one per grid point in
     * [begin, end]. end is past until by the last iteration, which under
     * qemu can be long (32 ticks in a 30 ms window was seen there). */
    int most = 2 + (int)((end - begin) / MS) + 1;
    TCHECK(ticks >= 1 && ticks <= most);
    TCHECK_EQ(csp_chan_len(csp_heartbeat_chan(nl_hb)), 1);
    csp_heartbeat_release(nl_hb);
}

static void test_heartbeat_no_listener(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(nl_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* per-work heartbeats: one pulse per unit                                    */

enum { PW_UNITS = 50 };
static atomic_int pw_dropped;

/* The book's doWork: a pulse before each unit, then the unit's result. */
static int pw_work(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *results, void *arg)
{
    int units = *(int *)arg;
    for (int i = 0; i < units; i++) {
        if (csp_heartbeat_pulse(hb) != 0)
            atomic_fetch_add(&pw_dropped, 1);
        if (csp_chan_send_ctx(ctx, results, &i) != 0)
            return -1;
    }
    return 0;
}

static void pw_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    int units = PW_UNITS;
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());

    /* 1. a listener that takes the pulse, then the result */
    atomic_store(&pw_dropped, 0);
    csp_chan_t *hb, *res;
    TCHECK_EQ(csp_heartbeat_go(ctx, 0, sizeof(int), 0, pw_work, &units, &hb, &res), 0);
    int pulses = 0, v;
    for (int i = 0; i < units; i++) {
        TCHECK_EQ(csp_chan_recv(hb, NULL), 0); /* before every unit */
        pulses++;
        TCHECK_EQ(csp_chan_recv(res, &v), 0);
        TCHECK_EQ(v, i);
    }
    TCHECK_EQ(csp_chan_recv(res, &v), CSP_ECLOSED); /* closed when the work returned */
    TCHECK_EQ(csp_chan_recv(hb, NULL), CSP_ECLOSED);
    TCHECK_EQ(pulses, units);
    TCHECK_EQ(atomic_load(&pw_dropped), 0);
    csp_chan_release(hb);
    csp_chan_release(res);

    /* 2. the book's listener: one select over both (heartbeat first) */
    atomic_store(&pw_dropped, 0);
    TCHECK_EQ(csp_heartbeat_go(ctx, 0, sizeof(int), 0, pw_work, &units, &hb, &res), 0);
    int results = 0;
    pulses = 0;
    csp_chan_t *hc = hb, *rc = res;
    while (hc || rc) {
        csp_case_t cases[] = { CSP_RECV_CASE(hc, NULL), CSP_RECV_CASE(rc, &v) };
        int i = csp_select_biased(cases, 2, CSP_FOREVER);
        TCHECK(i == 0 || i == 1);
        if (i < 0 || i > 1)
            break;
        if (cases[i].status == CSP_ECLOSED) {
            if (i == 0)
                hc = NULL;
            else
                rc = NULL;
            continue;
        }
        if (i == 0) {
            pulses++;
        } else {
            TCHECK_EQ(v, results);
            results++;
            TCHECK_EQ(pulses, results); /* each result came after its pulse */
        }
    }
    TCHECK_EQ(pulses, units);
    TCHECK_EQ(results, units);
    TCHECK_EQ(atomic_load(&pw_dropped), 0);
    csp_chan_release(hb);
    csp_chan_release(res);

    /* 3. the listener walks away: cancel; the work ends and closes both */
    TCHECK_EQ(csp_heartbeat_go(ctx, 0, sizeof(int), 0, pw_work, &units, &hb, &res), 0);
    TCHECK_EQ(csp_chan_recv(res, &v), 0);
    csp_ctx_cancel(ctx);
    while (csp_chan_recv(res, &v) == 0) /* at most the one in flight */
        ;
    while (csp_chan_recv(hb, NULL) == 0)
        ;
    csp_chan_release(hb);
    csp_chan_release(res);
    csp_ctx_release(ctx);
    TCHECK_EQ(live_settle(live0), live0);
}

static void test_heartbeat_per_work(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 3; rep++)
            T_RUN(pw_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* the book's interval doWork through csp_heartbeat_go                        */

#define IW_INTERVAL (10 * MS)

static int iw_work(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *results, void *arg)
{
    (void)arg;
    csp_timer_t *work_gen = csp_ticker_new(2 * IW_INTERVAL);
    if (!work_gen)
        return CSP_ENOMEM;
    csp_time_t r;
    /* for { select { done; pulse; r := <-workGen: sendResult(r) } } */
    while (csp_heartbeat_recv(hb, ctx, csp_timer_chan(work_gen), &r) == 0)
        if (csp_heartbeat_send(hb, ctx, results, &r) != 0)
            break;
    csp_timer_release(work_gen);
    return 0;
}

static void iw_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    csp_chan_t *hb, *res;
    TCHECK_EQ(csp_heartbeat_go(ctx, IW_INTERVAL, sizeof(csp_time_t), 0, iw_work, NULL, &hb, &res),
              0);
    int pulses = 0, results = 0;
    csp_time_t last = 0, r;
    csp_time_t stop = csp_now() + 200 * MS;
    csp_chan_t *hc = hb, *rc = res;
    while (hc || rc) {
        if (stop && csp_now() >= stop) {
            csp_ctx_cancel(ctx); /* the book's done: both channels close */
            stop = 0;
        }
        csp_case_t cases[] = { CSP_RECV_CASE(hc, NULL), CSP_RECV_CASE(rc, &r) };
        int i = csp_select(cases, 2, csp_deadline_after(2 * CSP_SECOND));
        TCHECK(i == 0 || i == 1); /* never silent for long */
        if (i < 0 || i > 1)
            break;
        if (cases[i].status == CSP_ECLOSED) {
            *(i == 0 ? &hc : &rc) = NULL;
            continue;
        }
        if (i == 0) {
            pulses++;
        } else {
            TCHECK(r > last); /* work times increase */
            last = r;
            results++;
        }
    }
    TCHECK(pulses >= 2);
    TCHECK(results >= 2);
    csp_chan_release(hb);
    csp_chan_release(res);
    csp_ctx_release(ctx);
    TCHECK_EQ(live_settle(live0), live0);
}

static void test_heartbeat_go_interval(void **state)
{
    (void)state;
    for (int w = 0; w < SV_NW; w++)
        T_RUN(iw_main, NULL, sv_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* replicated requests                                                       */

enum { RP_N = 8 };
typedef struct {
    int            fast;          /* the replica that finishes first (-1: none) */
    csp_duration_t fast_d, slow_d;
    int            fail_from;     /* replicas >= this fail (with -(100 + i)) after i*fail_step */
    csp_duration_t fail_step;
    int            positive;      /* failures return +5 instead */
    atomic_int     ran, exits, cancelled;
} rp_t;

static int rp_fn(csp_ctx_t *ctx, int i, void *arg, void *out)
{
    rp_t *a = arg;
    atomic_fetch_add(&a->ran, 1);
    int rc;
    if (i >= a->fail_from) {
        csp_sleep(i * a->fail_step);
        rc = a->positive ? 5 : -(100 + i);
    } else {
        csp_duration_t d = i == a->fast ? a->fast_d : a->slow_d;
        int r = csp_select_ctx_until(ctx, NULL, 0, csp_deadline_after(d));
        if (r == CSP_ETIMEDOUT) {
            if (out)
                *(int *)out = i * 100 + 7;
            rc = 0;
        } else {
            TCHECK(r == CSP_ECANCELED || r == CSP_EDEADLINE);
            atomic_fetch_add(&a->cancelled, 1);
            rc = r;
        }
    }
    atomic_fetch_add(&a->exits, 1);
    return rc;
}

static void rp_reset(rp_t *a)
{
    memset(a, 0, sizeof *a);
    a->fast = -1;
    a->fail_from = RP_N;
}

static void rp_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    csp_ctx_t *bg = csp_ctx_background();
    static rp_t a;
    int out;

    /* 1. the fastest wins; the others see cancellation and are joined */
    for (int rep = 0; rep < 3; rep++) {
        rp_reset(&a);
        a.fast = (int)(csp_now() / 1000 % RP_N);
        a.fast_d = 5 * MS;
        a.slow_d = 5 * CSP_SECOND;
        out = -1;
        csp_time_t t0 = csp_now();
        int w = csp_replicate(bg, RP_N, rp_fn, &a, &out, sizeof out);
        TCHECK_EQ(w, a.fast);
        TCHECK_EQ(out, a.fast * 100 + 7);
        TCHECK(csp_now() - t0 >= 5 * MS);
        TCHECK(csp_now() - t0 < 4 * CSP_SECOND); /* long before the slow ones */
        TCHECK_EQ(atomic_load(&a.ran), RP_N);
        TCHECK_EQ(atomic_load(&a.exits), RP_N); /* all joined before the return */
        TCHECK_EQ(atomic_load(&a.cancelled), RP_N - 1);
    }

    /* 2. every replica fails: the first error (in time) comes back */
    rp_reset(&a);
    a.fail_from = 0;
    a.fail_step = 20 * MS;
    TCHECK_EQ(csp_replicate(bg, RP_N, rp_fn, &a, &out, sizeof out), -100);
    TCHECK_EQ(atomic_load(&a.exits), RP_N);
    /* ... positive failures are reported as CSP_EINVAL (never an index) */
    rp_reset(&a);
    a.fail_from = 0;
    a.positive = 1;
    TCHECK_EQ(csp_replicate(bg, 3, rp_fn, &a, NULL, 0), CSP_EINVAL);
    TCHECK_EQ(atomic_load(&a.exits), 3);

    /* 3. failures do not stop a later success */
    rp_reset(&a);
    a.fast = 0;
    a.fast_d = 30 * MS;
    a.fail_from = 1;
    TCHECK_EQ(csp_replicate(bg, RP_N, rp_fn, &a, &out, sizeof out), 0);
    TCHECK_EQ(out, 7);
    TCHECK_EQ(atomic_load(&a.exits), RP_N);

    /* 4. the caller's context ends first: its error, everyone joined */
    rp_reset(&a);
    a.slow_d = 5 * CSP_SECOND;
    csp_time_t t0 = csp_now(); /* before the deadline is set: a lower bound */
    csp_ctx_t *d = csp_ctx_with_timeout(bg, 30 * MS);
    TCHECK_EQ(csp_replicate(d, RP_N, rp_fn, &a, NULL, 0), CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 30 * MS);
    TCHECK(csp_now() - t0 < 4 * CSP_SECOND);
    TCHECK_EQ(atomic_load(&a.exits), RP_N);
    TCHECK_EQ(atomic_load(&a.cancelled), RP_N);
    csp_ctx_release(d);

    /* 5. one replica is a plain request */
    rp_reset(&a);
    a.fast = 0;
    a.fast_d = MS;
    TCHECK_EQ(csp_replicate(bg, 1, rp_fn, &a, &out, sizeof out), 0);

    TCHECK_EQ(live_settle(live0), live0);
}

static void test_replicate(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(rp_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* A plain thread may replicate too (it blocks while the tasks race). */
static void test_replicate_plain_thread(void **state)
{
    (void)state;
    csp_config_t cfg = { .workers = 2 };
    TC_RESET();
    assert_int_equal(csp_init(&cfg), 0);
    static rp_t a;
    rp_reset(&a);
    a.fast = 3;
    a.fast_d = 2 * MS;
    a.slow_d = 5 * CSP_SECOND;
    int out = 0;
    assert_int_equal(csp_replicate(csp_ctx_background(), 6, rp_fn, &a, &out, sizeof out), 3);
    assert_int_equal(out, 307);
    assert_int_equal(atomic_load(&a.exits), 6);
    csp_shutdown();
    TC_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------------ */
/* stewards                                                                   */

typedef struct {
    csp_duration_t beat_for;  /* pulses this long ... */
    int            then;      /* ... then: 0 hang without pulses, 1 return `rc`, 2 beat forever */
    int            rc;
    atomic_int     starts, exits;
} ward_t;

static int test_ward(csp_ctx_t *ctx, csp_heartbeat_t *hb, void *arg)
{
    ward_t *w = arg;
    atomic_fetch_add(&w->starts, 1);
    int r = 0;
    if (w->beat_for > 0)
        r = csp_heartbeat_sleep(hb, ctx, w->beat_for);
    if (r == 0) {
        if (w->then == 0)
            csp_ctx_wait(ctx); /* stuck: alive, but no more pulses */
        else if (w->then == 2)
            csp_heartbeat_sleep(hb, ctx, 3600 * CSP_SECOND);
    }
    atomic_fetch_add(&w->exits, 1);
    return w->then == 1 ? w->rc : -1;
}

typedef struct {
    atomic_int calls;
    atomic_int last_total;
    atomic_int bad_cause; /* a cause other than `want` */
    int        want;
} restart_log_t;

static void on_restart(void *arg, int restarts, int cause)
{
    restart_log_t *l = arg;
    int n = atomic_fetch_add(&l->calls, 1) + 1;
    TCHECK_EQ(restarts, n); /* counts this run's restarts, this one included */
    atomic_store(&l->last_total, restarts);
    if (cause != l->want)
        atomic_fetch_add(&l->bad_cause, 1);
}

static csp_steward_t *make_steward(csp_duration_t timeout, csp_duration_t interval, int max,
                                   ward_t *w, restart_log_t *log)
{
    csp_steward_opts_t o = { 0 };
    o.timeout = timeout;
    o.ward_interval = interval;
    o.max_restarts = max;
    o.on_restart = log ? on_restart : NULL;
    o.on_restart_arg = log;
    o.name = "ward";
    return csp_steward_new(&o, test_ward, w);
}

static void st_restart_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    static ward_t w;
    static restart_log_t log;

    /* 1. a ward that stops beating is restarted every time it goes silent */
    memset(&w, 0, sizeof w);
    memset(&log, 0, sizeof log);
    w.beat_for = 20 * MS;
    w.then = 0;
    log.want = CSP_ETIMEDOUT;
    csp_duration_t timeout = 40 * MS;
    csp_steward_t *s = make_steward(timeout, 10 * MS, -1, &w, &log);
    csp_ctx_t *ctx = csp_ctx_with_timeout(csp_ctx_background(), 400 * MS);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_steward_run(s, ctx, NULL), CSP_EDEADLINE);
    csp_time_t elapsed = csp_now() - t0;
    uint64_t restarts = csp_steward_restarts(s);
    TCHECK(restarts >= 2);
    TCHECK((csp_time_t)restarts <= elapsed / timeout); /* never before `timeout` of silence */
    TCHECK_EQ(atomic_load(&w.starts), (int)restarts + 1);
    TCHECK_EQ(atomic_load(&w.exits), atomic_load(&w.starts)); /* all joined */
    TCHECK_EQ(atomic_load(&log.calls), (int)restarts);
    TCHECK_EQ(atomic_load(&log.bad_cause), 0);
    csp_ctx_release(ctx);
    csp_steward_release(s);

    /* 2. a healthy ward is left alone */
    memset(&w, 0, sizeof w);
    w.then = 2;
    s = make_steward(150 * MS, 10 * MS, -1, &w, NULL);
    ctx = csp_ctx_with_timeout(csp_ctx_background(), 250 * MS);
    TCHECK_EQ(csp_steward_run(s, ctx, NULL), CSP_EDEADLINE);
    TCHECK_EQ(csp_steward_restarts(s), 0);
    TCHECK_EQ(atomic_load(&w.starts), 1);
    TCHECK_EQ(atomic_load(&w.exits), 1);
    csp_ctx_release(ctx);
    csp_steward_release(s);

    /* 3. a ward that finishes its work (returns 0) ends the steward with 0 */
    memset(&w, 0, sizeof w);
    w.beat_for = 5 * MS;
    w.then = 1;
    w.rc = 0;
    s = make_steward(100 * MS, 0, -1, &w, NULL);
    TCHECK_EQ(csp_steward_run(s, csp_ctx_background(), NULL), 0);
    TCHECK_EQ(csp_steward_restarts(s), 0);
    TCHECK_EQ(atomic_load(&w.exits), 1);
    csp_steward_release(s);

    TCHECK_EQ(live_settle(live0), live0);
}

static void test_steward_restarts(void **state)
{
    (void)state;
    for (int w = 0; w < SV_NW; w++)
        T_RUN(st_restart_main, NULL, sv_workers[w], CSP_SPAWN_HELP_FIRST);
}

static void st_budget_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    static ward_t w;
    static restart_log_t log;

    /* 1. a ward that fails at once: restarted max_restarts times, then the
     *    steward gives up with the ward's failure */
    memset(&w, 0, sizeof w);
    memset(&log, 0, sizeof log);
    w.then = 1;
    w.rc = -42;
    log.want = -42;
    csp_steward_t *s = make_steward(CSP_SECOND, 0, 3, &w, &log);
    TCHECK_EQ(csp_steward_run(s, csp_ctx_background(), NULL), -42);
    TCHECK_EQ(atomic_load(&w.starts), 4);
    TCHECK_EQ(atomic_load(&w.exits), 4);
    TCHECK_EQ(atomic_load(&log.calls), 3);
    TCHECK_EQ(atomic_load(&log.bad_cause), 0);
    TCHECK_EQ(csp_steward_restarts(s), 3);
    /* a second run has a fresh budget; the total goes on */
    memset(&log, 0, sizeof log);
    log.want = -42;
    TCHECK_EQ(csp_steward_run(s, csp_ctx_background(), NULL), -42);
    TCHECK_EQ(atomic_load(&log.calls), 3);
    TCHECK_EQ(csp_steward_restarts(s), 6);
    csp_steward_release(s);

    /* 2. a silent ward, budget 2: gives up with CSP_ETIMEDOUT after three
     *    timeouts (never sooner) */
    memset(&w, 0, sizeof w);
    w.then = 0;
    csp_duration_t timeout = 30 * MS;
    s = make_steward(timeout, 0, 2, &w, NULL);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_steward_run(s, csp_ctx_background(), NULL), CSP_ETIMEDOUT);
    TCHECK(csp_now() - t0 >= 3 * timeout);
    TCHECK_EQ(atomic_load(&w.starts), 3);
    TCHECK_EQ(atomic_load(&w.exits), 3);
    csp_steward_release(s);

    /* 3. max_restarts 0: never restarts */
    memset(&w, 0, sizeof w);
    w.then = 1;
    w.rc = -7;
    s = make_steward(CSP_SECOND, 0, 0, &w, NULL);
    TCHECK_EQ(csp_steward_run(s, csp_ctx_background(), NULL), -7);
    TCHECK_EQ(atomic_load(&w.starts), 1);
    csp_steward_release(s);

    /* 4. budget_period: a ward that stays up long enough gets a fresh budget */
    memset(&w, 0, sizeof w);
    w.beat_for = 40 * MS;
    w.then = 1;
    w.rc = -1;
    csp_steward_opts_t o = { 0 };
    o.timeout = 100 * MS;
    o.max_restarts = 1;
    o.budget_period = 20 * MS;
    s = csp_steward_new(&o, test_ward, &w);
    csp_ctx_t *ctx = csp_ctx_with_timeout(csp_ctx_background(), 300 * MS);
    TCHECK_EQ(csp_steward_run(s, ctx, NULL), CSP_EDEADLINE);
    TCHECK(csp_steward_restarts(s) >= 2); /* more than max_restarts */
    TCHECK_EQ(atomic_load(&w.exits), atomic_load(&w.starts));
    csp_ctx_release(ctx);
    csp_steward_release(s);
    /* ... without it the same ward exhausts the budget */
    memset(&w, 0, sizeof w);
    w.beat_for = 40 * MS;
    w.then = 1;
    w.rc = -1;
    o.budget_period = 0;
    s = csp_steward_new(&o, test_ward, &w);
    TCHECK_EQ(csp_steward_run(s, csp_ctx_background(), NULL), -1);
    TCHECK_EQ(atomic_load(&w.starts), 2);
    csp_steward_release(s);

    /* 5. backoff: a pause before each restart */
    memset(&w, 0, sizeof w);
    w.then = 1;
    w.rc = -3;
    o.budget_period = 0;
    o.max_restarts = 2;
    o.backoff = 25 * MS;
    s = csp_steward_new(&o, test_ward, &w);
    t0 = csp_now();
    TCHECK_EQ(csp_steward_run(s, csp_ctx_background(), NULL), -3);
    TCHECK(csp_now() - t0 >= 2 * o.backoff);
    TCHECK_EQ(atomic_load(&w.starts), 3);
    csp_steward_release(s);

    TCHECK_EQ(live_settle(live0), live0);
}

static void test_steward_budget(void **state)
{
    (void)state;
    for (int w = 0; w < SV_NW; w++)
        T_RUN(st_budget_main, NULL, sv_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* Stewards nest: the inner steward is the outer one's ward; it pulses on its
 * own while it heals its stuck ward, so the outer one never restarts it -
 * until the inner one gives up, and then the outer one restarts it. */
static void st_nested_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    static ward_t w;
    static restart_log_t outer_log;

    for (int variant = 0; variant < 2; variant++) {
        memset(&w, 0, sizeof w);
        memset(&outer_log, 0, sizeof outer_log);
        w.beat_for = 10 * MS;
        w.then = 0;
        outer_log.want = CSP_ETIMEDOUT; /* what the inner steward returns when it gives up */
        /* the inner steward: heals the stuck ward; variant 1 gives up after 1 */
        csp_steward_t *inner = make_steward(30 * MS, 10 * MS, variant ? 1 : -1, &w, NULL);
        csp_steward_opts_t o = { 0 };
        o.timeout = 150 * MS;
        o.ward_interval = 30 * MS; /* the inner steward's own pulse interval */
        o.max_restarts = -1;
        o.on_restart = on_restart;
        o.on_restart_arg = &outer_log;
        csp_steward_t *outer = csp_steward_new(&o, csp_steward_ward, inner);
        csp_ctx_t *ctx = csp_ctx_with_timeout(csp_ctx_background(), 400 * MS);
        TCHECK_EQ(csp_steward_run(outer, ctx, NULL), CSP_EDEADLINE);
        if (variant == 0) {
            TCHECK_EQ(csp_steward_restarts(outer), 0);
            TCHECK(csp_steward_restarts(inner) >= 3);
        } else {
            TCHECK(csp_steward_restarts(outer) >= 1);
            TCHECK_EQ(atomic_load(&outer_log.bad_cause), 0);
        }
        TCHECK_EQ(atomic_load(&w.exits), atomic_load(&w.starts)); /* every ward joined */
        csp_ctx_release(ctx);
        csp_steward_release(outer);
        csp_steward_release(inner);
    }
    TCHECK_EQ(live_settle(live0), live0);
}

static void test_steward_nested(void **state)
{
    (void)state;
    for (int w = 0; w < SV_NW; w++)
        T_RUN(st_nested_main, NULL, sv_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* csp_steward_go: the book's doWorkWithSteward(done, pulseInterval); range
 * over the steward's pulses until it stops. */
static void st_go_main(void *arg)
{
    (void)arg;
    uint64_t live0 = tasks_live();
    static ward_t w;
    for (int per_work = 0; per_work < 2; per_work++) {
        memset(&w, 0, sizeof w);
        w.beat_for = 15 * MS;
        w.then = 0;
        csp_steward_t *s = make_steward(40 * MS, 5 * MS, -1, &w, NULL);
        csp_ctx_t *ctx = csp_ctx_with_timeout(csp_ctx_background(), 250 * MS);
        int result = 1;
        csp_duration_t interval = per_work ? 0 : 20 * MS;
        csp_time_t t0 = csp_now();
        csp_chan_t *hb = csp_steward_go(s, ctx, interval, &result);
        TCHECK(hb != NULL);
        csp_ctx_release(ctx); /* the steward task holds its own reference */
        int pulses = 0;
        while (csp_chan_recv(hb, NULL) == 0)
            pulses++;
        csp_time_t end = csp_now();
        TCHECK_EQ(result, CSP_EDEADLINE); /* written before the close */
        TCHECK(pulses >= 2);
        if (!per_work)
            TCHECK(pulses <= (end - t0) / interval + 1);
        TCHECK_EQ(atomic_load(&w.exits), atomic_load(&w.starts));
        TCHECK(csp_steward_restarts(s) >= 1);
        csp_chan_release(hb);
        csp_steward_release(s);
    }
    TCHECK_EQ(live_settle(live0), live0);
}

static void test_steward_go(void **state)
{
    (void)state;
    for (int w = 0; w < SV_NW; w++)
        T_RUN(st_go_main, NULL, sv_workers[w], CSP_SPAWN_HELP_FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_supervise_bad_input),
        cmocka_unit_test(test_heartbeat_interval),
        cmocka_unit_test(test_heartbeat_no_listener),
        cmocka_unit_test(test_heartbeat_per_work),
        cmocka_unit_test(test_heartbeat_go_interval),
        cmocka_unit_test(test_replicate),
        cmocka_unit_test(test_replicate_plain_thread),
        cmocka_unit_test(test_steward_restarts),
        cmocka_unit_test(test_steward_budget),
        cmocka_unit_test(test_steward_nested),
        cmocka_unit_test(test_steward_go),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
