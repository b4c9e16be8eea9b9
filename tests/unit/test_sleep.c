/* ctest-timeout: 120 */
/* csp_sleep / csp_sleep_until: never early (strict, measured with csp_now),
 * not much late (loose bounds: this runs on loaded 2-core machines and under
 * sanitizers), d <= 0 just yields, many concurrent sleepers, timers while the
 * workers are busy or asleep, and sleeping on plain threads (no runtime, a
 * runtime from csp_init, and next to csp_run).
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

#include "task_check.h"
#include "test_util.h"

/* How late a sleep may return. Loose on purpose: the lower bound is the one
 * that matters and is checked exactly. */
#define LATE_MAX (150 * CSP_MILLISECOND)

/* Sleeps d with csp_sleep and checks the result. Returns the overshoot. */
static csp_duration_t sleep_checked(csp_duration_t d)
{
    csp_time_t t0 = csp_now();
    int r = csp_sleep(d);
    csp_duration_t took = csp_now() - t0;
    TCHECK_EQ(r, 0);
    if (took < d)
        tc_fail(__FILE__, __LINE__, "csp_sleep(%lld) returned after %lld ns (early)",
                (long long)d, (long long)took);
    if (took > d + LATE_MAX)
        tc_fail(__FILE__, __LINE__, "csp_sleep(%lld) returned after %lld ns (late)",
                (long long)d, (long long)took);
    return took - d;
}

static const csp_duration_t durations[] = {
    1, 1000, 50 * CSP_MICROSECOND, CSP_MILLISECOND, 3 * CSP_MILLISECOND,
    10 * CSP_MILLISECOND, 25 * CSP_MILLISECOND,
};
#define NDUR ((int)(sizeof durations / sizeof durations[0]))

static atomic_llong max_over;

static void note_over(csp_duration_t o)
{
    long long cur = atomic_load(&max_over);
    while (o > cur && !atomic_compare_exchange_weak(&max_over, &cur, o))
        ;
}

/* ------------------------------------------------------------------------ */
/* a few tasks sleeping the durations above, at every worker count          */

static csp_wg_t acc_wg;

static void acc_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < NDUR; i++)
        note_over(sleep_checked(durations[i]));
    csp_wg_done(&acc_wg);
}

static void acc_main(void *arg)
{
    (void)arg;
    enum { N = 4 };
    csp_wg_add(&acc_wg, N);
    for (int i = 0; i < N; i++)
        TCHECK_EQ(csp_go(acc_task, NULL), 0);
    for (int i = NDUR - 1; i >= 0; i--)
        note_over(sleep_checked(durations[i]));
    TCHECK_EQ(csp_wg_wait(&acc_wg), 0);
}

static void test_sleep_accuracy(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 2; rep++) {
            atomic_store(&max_over, 0);
            memset(&acc_wg, 0, sizeof acc_wg);
            T_RUN(acc_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
            print_message("workers %d: worst overshoot %.2f ms\n", tc_worker_counts[w],
                          (double)atomic_load(&max_over) / 1e6);
        }
}

/* ------------------------------------------------------------------------ */
/* 10,000 concurrent sleepers, 1-20 ms each                                  */

/* 10,000 (TSan: 5,000, below its limit of 8,128 live fibers) */
#if defined(TC_TSAN)
#define MANY 5000
#else
#define MANY 10000
#endif
static csp_wg_t many_wg;
static atomic_int many_early, many_bad_rc, many_done;

static void many_task(void *arg)
{
    uint32_t x = (uint32_t)(uintptr_t)arg * 2654435761u;
    x ^= x >> 13;
    csp_duration_t d = (csp_duration_t)(1 + x % 20) * CSP_MILLISECOND;
    csp_time_t t0 = csp_now();
    int r = csp_sleep(d);
    csp_duration_t took = csp_now() - t0;
    if (r != 0)
        atomic_fetch_add(&many_bad_rc, 1);
    if (took < d)
        atomic_fetch_add(&many_early, 1);
    note_over(took - d);
    atomic_fetch_add(&many_done, 1);
    csp_wg_done(&many_wg);
}

static void many_main(void *arg)
{
    int n = (int)(intptr_t)arg;
    csp_wg_add(&many_wg, n);
    for (int i = 0; i < n; i++)
        TCHECK_EQ(csp_go(many_task, (void *)(uintptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&many_wg), 0);
}

static void test_many_sleepers(void **state)
{
    (void)state;
    static const int ws[] = { 1, 2, 8 };
    for (int w = 0; w < 3; w++) {
        memset(&many_wg, 0, sizeof many_wg);
        atomic_store(&many_early, 0);
        atomic_store(&many_bad_rc, 0);
        atomic_store(&many_done, 0);
        atomic_store(&max_over, 0);
        csp_time_t t0 = csp_now();
        T_RUN(many_main, (void *)(intptr_t)MANY, ws[w], CSP_SPAWN_HELP_FIRST);
        csp_duration_t took = csp_now() - t0;
        print_message("workers %d: %d sleepers done in %.1f ms, worst overshoot %.2f ms\n", ws[w],
                      MANY, (double)took / 1e6, (double)atomic_load(&max_over) / 1e6);
        assert_int_equal(atomic_load(&many_done), MANY);
        assert_int_equal(atomic_load(&many_early), 0);
        assert_int_equal(atomic_load(&many_bad_rc), 0);
        assert_true(took < 20 * CSP_SECOND);
    }
}

/* ------------------------------------------------------------------------ */
/* a burst of timers readies hundreds of tasks into a spinning worker's run  */
/* queue, which then steals: every task must run exactly once                */

#define BURST 3000
static atomic_int burst_runs[BURST];
static csp_wg_t burst_wg;
static csp_time_t burst_at;

static void burst_task(void *arg)
{
    int i = (int)(intptr_t)arg;
    /* all due within 1 ms of each other, so each heap fires in one burst */
    TCHECK_EQ(csp_sleep_until(burst_at + (csp_duration_t)(i % 4) * 250 * CSP_MICROSECOND), 0);
    atomic_fetch_add(&burst_runs[i], 1);
    /* park again right away, so the workers go idle (and spin, and steal)
     * while the burst is still being drained */
    csp_yield();
    atomic_fetch_add(&burst_runs[i], 1);
    csp_wg_done(&burst_wg);
}

static void burst_main(void *arg)
{
    (void)arg;
    burst_at = csp_now() + 20 * CSP_MILLISECOND;
    TCHECK_EQ(csp_wg_add(&burst_wg, BURST), 0);
    for (int i = 0; i < BURST; i++) {
        TCHECK_EQ(csp_go(burst_task, (void *)(intptr_t)i), 0);
        if (i % 64 == 63)
            csp_yield(); /* spread the timers over the workers' heaps */
    }
    TCHECK_EQ(csp_wg_wait(&burst_wg), 0);
}

static void test_timer_burst_then_steal(void **state)
{
    (void)state;
    static const int ws[] = { 4, 8 };
    for (int rep = 0; rep < 6; rep++) {
        memset(&burst_wg, 0, sizeof burst_wg);
        for (int i = 0; i < BURST; i++)
            atomic_store(&burst_runs[i], 0);
        T_RUN(burst_main, NULL, ws[rep % 2], CSP_SPAWN_HELP_FIRST);
        int bad = -1;
        for (int i = 0; i < BURST && bad < 0; i++)
            if (atomic_load(&burst_runs[i]) != 2)
                bad = i;
        if (bad >= 0)
            fail_msg("rep %d: task %d ran its halves %d times (want 2)", rep, bad,
                     atomic_load(&burst_runs[bad]));
    }
}

/* ------------------------------------------------------------------------ */
/* csp_sleep_until                                                           */

static void until_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++) {
        csp_time_t t = csp_now() + (csp_duration_t)(i % 5) * CSP_MILLISECOND + 100;
        TCHECK_EQ(csp_sleep_until(t), 0);
        csp_time_t now = csp_now();
        TCHECK(now >= t);
        TCHECK(now <= t + LATE_MAX);
    }
    /* deadlines in the past return at once */
    static const csp_time_t past[] = { 0, 1, -1, INT64_MIN };
    for (int i = 0; i < 4; i++) {
        csp_time_t t0 = csp_now();
        TCHECK_EQ(csp_sleep_until(past[i]), 0);
        TCHECK(csp_now() - t0 < LATE_MAX);
    }
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_sleep_until(csp_now() - CSP_SECOND), 0);
    TCHECK(csp_now() - t0 < LATE_MAX);
}

static void test_sleep_until(void **state)
{
    (void)state;
    T_RUN(until_main, NULL, 1, CSP_SPAWN_HELP_FIRST);
    T_RUN(until_main, NULL, 4, CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* csp_sleep(d <= 0) yields                                                  */

static atomic_long other_count;
static atomic_int zero_stop;

static void zero_other(void *arg)
{
    csp_wg_t *wg = arg;
    while (!atomic_load(&zero_stop)) {
        atomic_fetch_add(&other_count, 1);
        csp_yield();
    }
    csp_wg_done(wg);
}

static void zero_main(void *arg)
{
    (void)arg;
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, 1);
    TCHECK_EQ(csp_go(zero_other, &wg), 0);
    csp_yield(); /* let it start */
    static const csp_duration_t ds[] = { 0, -1, -CSP_SECOND, INT64_MIN };
    int not_yielded = 0;
    for (int i = 0; i < 400; i++) {
        long before = atomic_load(&other_count);
        csp_time_t t0 = csp_now();
        int r;
        if (i % 5 == 4)
            r = csp_sleep_until(csp_now() - 1);
        else
            r = csp_sleep(ds[i % 4]);
        TCHECK_EQ(r, 0);
        TCHECK(csp_now() - t0 < LATE_MAX);
        /* one worker: the other task must have had a turn */
        if (atomic_load(&other_count) == before)
            not_yielded++;
    }
    TCHECK_EQ(not_yielded, 0);
    atomic_store(&zero_stop, 1);
    TCHECK_EQ(csp_wg_wait(&wg), 0);
}

static void test_sleep_zero_yields(void **state)
{
    (void)state;
    for (int rep = 0; rep < 3; rep++) {
        atomic_store(&other_count, 0);
        atomic_store(&zero_stop, 0);
        T_RUN(zero_main, NULL, 1, CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* timers fire while every worker is busy yielding                           */

static atomic_int busy_stop;

static void busy_yielder(void *arg)
{
    csp_wg_t *wg = arg;
    while (!atomic_load_explicit(&busy_stop, memory_order_relaxed))
        csp_yield();
    csp_wg_done(wg);
}

static void busy_main(void *arg)
{
    (void)arg;
    int nw = csp_workers();
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, 2 * nw);
    for (int i = 0; i < 2 * nw; i++)
        TCHECK_EQ(csp_go(busy_yielder, &wg), 0);
    for (int i = 0; i < NDUR; i++)
        note_over(sleep_checked(durations[i]));
    atomic_store(&busy_stop, 1);
    TCHECK_EQ(csp_wg_wait(&wg), 0);
}

static void test_sleep_while_busy(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        atomic_store(&busy_stop, 0);
        atomic_store(&max_over, 0);
        T_RUN(busy_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        print_message("workers %d, all busy: worst overshoot %.2f ms\n", tc_worker_counts[w],
                      (double)atomic_load(&max_over) / 1e6);
    }
}

/* ------------------------------------------------------------------------ */
/* a short sleep while an idle worker already sleeps until a far timer       */

static void far_sleeper(void *arg)
{
    atomic_int *started = arg;
    atomic_store(started, 1);
    csp_sleep(3600 * CSP_SECOND);
}

static void far_main(void *arg)
{
    (void)arg;
    atomic_int started = 0;
    TCHECK_EQ(csp_go(far_sleeper, &started), 0);
    while (!atomic_load(&started))
        csp_yield();
    /* let the other workers go idle (one of them sleeps until the far
     * timer) while this one stays busy, so that the sleeps below add their
     * timers under that sleeper */
    csp_time_t until = csp_now() + 20 * CSP_MILLISECOND;
    while (csp_now() < until)
        csp_yield();
    for (int i = 0; i < 10; i++)
        note_over(sleep_checked((csp_duration_t)(i + 1) * CSP_MILLISECOND));
    /* return with the far sleeper still asleep */
}

static void test_sleep_under_far_timer(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        atomic_store(&max_over, 0);
        T_RUN(far_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        print_message("workers %d, far timer pending: worst overshoot %.2f ms\n",
                      tc_worker_counts[w], (double)atomic_load(&max_over) / 1e6);
    }
}

/* ------------------------------------------------------------------------ */
/* plain threads                                                             */

static void *plain_sleeper(void *arg)
{
    (void)arg;
    for (int i = 0; i < NDUR; i++)
        note_over(sleep_checked(durations[i]));
    /* d <= 0 returns at once */
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_sleep(0), 0);
    TCHECK_EQ(csp_sleep(-CSP_SECOND), 0);
    TCHECK_EQ(csp_sleep(INT64_MIN), 0);
    TCHECK_EQ(csp_sleep_until(0), 0);
    TCHECK(csp_now() - t0 < LATE_MAX);
    csp_time_t t = csp_now() + 2 * CSP_MILLISECOND;
    TCHECK_EQ(csp_sleep_until(t), 0);
    TCHECK(csp_now() >= t);
    return NULL;
}

static void run_plain_sleepers(int nthreads)
{
    pthread_t th[8];
    for (int i = 0; i < nthreads; i++)
        assert_int_equal(pthread_create(&th[i], NULL, plain_sleeper, NULL), 0);
    plain_sleeper(NULL); /* and this thread */
    for (int i = 0; i < nthreads; i++)
        assert_int_equal(pthread_join(th[i], NULL), 0);
}

/* No runtime at all: csp_sleep blocks the thread. */
static void test_sleep_plain_thread_no_runtime(void **state)
{
    (void)state;
    TC_RESET();
    atomic_store(&max_over, 0);
    assert_int_equal(csp_workers(), 0);
    run_plain_sleepers(4);
    TC_ASSERT_CLEAN();
    print_message("no runtime: worst overshoot %.2f ms\n", (double)atomic_load(&max_over) / 1e6);
}

/* A runtime from csp_init: plain threads sleep next to sleeping tasks. */
static csp_wg_t init_wg;

static void init_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < NDUR; i++)
        note_over(sleep_checked(durations[i]));
    csp_wg_done(&init_wg);
}

static void test_sleep_plain_thread_with_init(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        TC_RESET();
        atomic_store(&max_over, 0);
        memset(&init_wg, 0, sizeof init_wg);
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        assert_int_equal(csp_init(&cfg), 0);
        csp_wg_add(&init_wg, 8);
        for (int i = 0; i < 8; i++)
            assert_int_equal(csp_go(init_task, NULL), 0);
        run_plain_sleepers(3);
        assert_int_equal(csp_wg_wait(&init_wg), 0); /* a plain thread waits for tasks */
        csp_shutdown();
        TC_ASSERT_CLEAN();
        print_message("csp_init, workers %d: worst overshoot %.2f ms\n", tc_worker_counts[w],
                      (double)atomic_load(&max_over) / 1e6);
    }
}

/* Next to csp_run: threads started by a task sleep, then wake the task
 * through a WaitGroup. */
static csp_wg_t run_wg;

static void *run_thread(void *arg)
{
    (void)arg;
    plain_sleeper(NULL);
    TCHECK_EQ(csp_task_id(), 0);
    TCHECK_EQ(csp_worker_id(), -1);
    csp_wg_done(&run_wg);
    return NULL;
}

static void run_main(void *arg)
{
    (void)arg;
    enum { NT = 3 };
    pthread_t th[NT];
    csp_wg_add(&run_wg, NT);
    for (int i = 0; i < NT; i++)
        TCHECK_EQ(pthread_create(&th[i], NULL, run_thread, NULL), 0);
    for (int i = 0; i < NDUR; i++)
        note_over(sleep_checked(durations[i]));
    TCHECK_EQ(csp_wg_wait(&run_wg), 0);
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL); /* they have called done: returns soon */
}

static void test_sleep_plain_thread_during_run(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(&run_wg, 0, sizeof run_wg);
        T_RUN(run_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sleep_accuracy),
        cmocka_unit_test(test_many_sleepers),
        cmocka_unit_test(test_timer_burst_then_steal),
        cmocka_unit_test(test_sleep_until),
        cmocka_unit_test(test_sleep_zero_yields),
        cmocka_unit_test(test_sleep_while_busy),
        cmocka_unit_test(test_sleep_under_far_timer),
        cmocka_unit_test(test_sleep_plain_thread_no_runtime),
        cmocka_unit_test(test_sleep_plain_thread_with_init),
        cmocka_unit_test(test_sleep_plain_thread_during_run),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
