/* ctest-timeout: 120 */
/* csp_blocking: blocking calls on the pool, parking only the caller.
 *   - the caller's worker keeps running other tasks meanwhile (1 worker);
 *   - 64 calls run at once on 64 pool threads; with CSP_BLOCKING_MAX=2 at
 *     most 2 do, and the rest queue and still run;
 *   - fn's writes to the caller's stack are seen after it returns;
 *   - a plain thread runs fn itself; fn NULL is CSP_EINVAL;
 *   - csp_run returns only after a call still running when main returned
 *     has returned (ASan: no write into a freed stack);
 *   - csp_shutdown: a running call is waited for, a queued one never runs
 *     and its task gets CSP_ESHUTDOWN;
 *   - the deadlock check: a call in flight can wake a task (no verdict);
 *     idle pool threads wake nobody (verdict);
 *   - csp_blocking_ctx: a context done while the call is queued drops it
 *     (fn never runs, CSP_ECANCELED); done while fn runs, the caller still
 *     waits (parked) and gets 0 with fn's results; done before: fn never
 *     runs; plain threads; bad input;
 *   - dumps show the wait as "blocking".
 * Every runtime case runs at 1, 2, 4 and 8 workers.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "task_check.h"

#define MS CSP_MILLISECOND

static void sleep_ns(csp_duration_t d)
{
    struct timespec ts = { (time_t)(d / CSP_SECOND), (long)(d % CSP_SECOND) };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ------------------------------------------------------------------------ */
/* the worker is not blocked                                                 */

static atomic_int g_ticks, g_stop_ticker;
static csp_wg_t g_wg;

static void ticker(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_stop_ticker)) {
        atomic_fetch_add(&g_ticks, 1);
        csp_sleep(MS);
    }
    csp_wg_done(&g_wg);
}

typedef struct {
    csp_duration_t sleep;
    int            out;
    pthread_t      thread;
} job_t;

static void job_fn(void *arg)
{
    job_t *j = arg;
    j->thread = pthread_self();
    sleep_ns(j->sleep);
    j->out = 42;
}

static void nonblocking_main(void *arg)
{
    (void)arg;
    atomic_store(&g_ticks, 0);
    atomic_store(&g_stop_ticker, 0);
    csp_wg_add(&g_wg, 1);
    TCHECK_EQ(csp_go(ticker, NULL), 0);
    csp_sleep(5 * MS);
    job_t j = { .sleep = 200 * MS, .out = 0 };
    int before = atomic_load(&g_ticks);
    TCHECK_EQ(csp_blocking(job_fn, &j), 0);
    int during = atomic_load(&g_ticks) - before;
    TCHECK_EQ(j.out, 42);               /* fn's write to our stack */
    TCHECK(!pthread_equal(j.thread, pthread_self()));
    /* 200 ms of 1 ms sleeps: the ticker ran on while we were parked (a
     * blocked worker would give 0; the bound leaves room for slow hosts) */
    TCHECK(during >= 20);
    atomic_store(&g_stop_ticker, 1);
    TCHECK_EQ(csp_wg_wait(&g_wg), 0);
}

static void test_worker_not_blocked(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(nonblocking_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* concurrency and the cap                                                   */

#define NCALLS 64
static atomic_int g_inside, g_max_inside, g_done_calls;
static int g_want_inside;

static void gather_fn(void *arg)
{
    (void)arg;
    int n = atomic_fetch_add(&g_inside, 1) + 1;
    int m = atomic_load(&g_max_inside);
    while (n > m && !atomic_compare_exchange_weak(&g_max_inside, &m, n))
        ;
    /* wait (5 s at most) until g_want_inside calls are inside at once */
    for (int i = 0; i < 5000 && atomic_load(&g_max_inside) < g_want_inside; i++)
        sleep_ns(MS);
    sleep_ns(MS);
    atomic_fetch_sub(&g_inside, 1);
    atomic_fetch_add(&g_done_calls, 1);
}

static void caller(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_blocking(gather_fn, NULL), 0);
    csp_wg_done(&g_wg);
}

static void concurrency_main(void *arg)
{
    (void)arg;
    atomic_store(&g_inside, 0);
    atomic_store(&g_max_inside, 0);
    atomic_store(&g_done_calls, 0);
    csp_wg_add(&g_wg, NCALLS);
    for (int i = 0; i < NCALLS; i++)
        TCHECK_EQ(csp_go(caller, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&g_wg), 0);
    TCHECK_EQ(atomic_load(&g_done_calls), NCALLS);
}

static void test_concurrency(void **state)
{
    (void)state;
    g_want_inside = NCALLS; /* all at once: one thread each */
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        T_RUN(concurrency_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        assert_int_equal(atomic_load(&g_max_inside), NCALLS);
    }
}

static void test_cap(void **state)
{
    (void)state;
    setenv("CSP_BLOCKING_MAX", "2", 1);
    g_want_inside = 2; /* what the cap allows (a call waits for it up to 5 s) */
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        T_RUN(concurrency_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        assert_int_equal(atomic_load(&g_max_inside), 2);
    }
    unsetenv("CSP_BLOCKING_MAX");
}

/* ------------------------------------------------------------------------ */
/* plain threads, bad input                                                  */

static void *plain_thread(void *arg)
{
    (void)arg;
    job_t j = { .sleep = 0 };
    if (csp_blocking(job_fn, &j) != 0 || j.out != 42 || !pthread_equal(j.thread, pthread_self()))
        return (void *)1;
    return NULL;
}

static void plain_main(void *arg)
{
    (void)arg;
    pthread_t th;
    TCHECK_EQ(pthread_create(&th, NULL, plain_thread, NULL), 0);
    void *r = (void *)2;
    pthread_join(th, &r);
    TCHECK(r == NULL);
    TCHECK_EQ(csp_blocking(NULL, NULL), CSP_EINVAL);
}

static void test_plain_thread_and_bad_input(void **state)
{
    (void)state;
    job_t j = { .sleep = 0 };
    assert_int_equal(csp_blocking(job_fn, &j), 0); /* no runtime: just runs */
    assert_int_equal(j.out, 42);
    assert_int_equal(csp_blocking(NULL, NULL), CSP_EINVAL);
    T_RUN(plain_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* main returns while a call runs                                            */

static atomic_int g_late_done;

static void late_fn(void *arg)
{
    sleep_ns(100 * MS);
    *(volatile int *)arg = 7; /* the caller's stack: must still be there */
    atomic_store(&g_late_done, 1);
}

static void late_task(void *arg)
{
    (void)arg;
    int on_stack = 0;
    csp_blocking(late_fn, &on_stack);
    TCHECK(0); /* never resumed: main has returned */
}

static void late_main(void *arg)
{
    (void)arg;
    atomic_store(&g_late_done, 0);
    TCHECK_EQ(csp_go(late_task, NULL), 0);
    csp_sleep(20 * MS); /* the call is running */
}

static void test_run_waits_for_running_call(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        T_RUN(late_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        assert_int_equal(atomic_load(&g_late_done), 1);
    }
}

/* ------------------------------------------------------------------------ */
/* csp_shutdown                                                              */

static atomic_int g_first_started, g_second_ran, g_release;
static atomic_int g_rc_first = 99, g_rc_second = 99;

static void hold_fn(void *arg)
{
    (void)arg;
    atomic_store(&g_first_started, 1);
    while (!atomic_load(&g_release))
        sleep_ns(MS);
}

static void second_fn(void *arg)
{
    (void)arg;
    atomic_store(&g_second_ran, 1);
}

static void first_task(void *arg)
{
    (void)arg;
    atomic_store(&g_rc_first, csp_blocking(hold_fn, NULL));
}

static void second_task(void *arg)
{
    (void)arg;
    atomic_store(&g_rc_second, csp_blocking(second_fn, NULL));
}

static void *releaser(void *arg)
{
    (void)arg;
    sleep_ns(150 * MS);
    atomic_store(&g_release, 1);
    return NULL;
}

static void test_shutdown(void **state)
{
    (void)state;
    setenv("CSP_BLOCKING_MAX", "1", 1); /* the second call queues */
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        atomic_store(&g_first_started, 0);
        atomic_store(&g_second_ran, 0);
        atomic_store(&g_release, 0);
        atomic_store(&g_rc_first, 99);
        atomic_store(&g_rc_second, 99);
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        TC_RESET();
        assert_int_equal(csp_init(&cfg), 0);
        assert_int_equal(csp_go(first_task, NULL), 0);
        while (!atomic_load(&g_first_started))
            sleep_ns(MS);
        assert_int_equal(csp_go(second_task, NULL), 0);
        sleep_ns(20 * MS); /* second is queued behind first */
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, releaser, NULL), 0);
        csp_shutdown(); /* waits for hold_fn, released after 150 ms */
        pthread_join(th, NULL);
        TC_ASSERT_CLEAN();
        assert_int_equal(atomic_load(&g_release), 1);
        assert_int_equal(atomic_load(&g_second_ran), 0);
        int rc2 = atomic_load(&g_rc_second);
        assert_true(rc2 == CSP_ESHUTDOWN || rc2 == 99); /* 99: freed unresumed */
        int rc1 = atomic_load(&g_rc_first);
        assert_true(rc1 == CSP_ESHUTDOWN || rc1 == 0 || rc1 == 99);
    }
    unsetenv("CSP_BLOCKING_MAX");
}

/* ------------------------------------------------------------------------ */
/* deadlock check                                                            */


static csp_chan_t *g_ch;

static void send_fn(void *arg)
{
    (void)arg;
    sleep_ns(100 * MS);
}

static void sender_task(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_blocking(send_fn, NULL), 0);
    int v = 1;
    TCHECK_EQ(csp_chan_send(g_ch, &v), 0);
}

static void in_flight_main(void *arg)
{
    (void)arg;
    /* main and the sender are both parked while send_fn sleeps, with no
     * timer pending: only the call in flight can wake anyone */
    g_ch = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(csp_go(sender_task, NULL), 0);
    int v = 0;
    TCHECK_EQ(csp_chan_recv(g_ch, &v), 0);
    TCHECK_EQ(v, 1);
    csp_chan_release(g_ch);
}

static csp_chan_t *g_never; /* released after csp_run: main is freed blocked */

static void idle_pool_main(void *arg)
{
    (void)arg;
    job_t j = { .sleep = 0 };
    TCHECK_EQ(csp_blocking(job_fn, &j), 0); /* leaves an idle pool thread */
    g_never = csp_chan_make(sizeof(int), 0);
    int v;
    csp_chan_recv(g_never, &v); /* nobody can send: deadlock */
    TCHECK(0);
}

static void test_deadlock_check(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        TC_RESET();
        assert_int_equal(csp_run(in_flight_main, NULL, &cfg), 0);
        TC_ASSERT_CLEAN();
    }
    if (!csp_test_threads_countable()) {
        fprintf(stderr, "skipped the deadlock case: /proc/self/stat has no thread count here\n");
        return;
    }
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        TC_RESET();
        assert_int_equal(csp_run(idle_pool_main, NULL, &cfg), CSP_EDEADLOCK);
        TC_ASSERT_CLEAN();
        csp_chan_release(g_never);
    }
}

/* ------------------------------------------------------------------------ */
/* csp_blocking_ctx                                                          */

static atomic_int g_hold_release, g_hold_started, g_q_ran, g_slow_done;
static csp_ctx_t *g_cctx;
static atomic_int g_rc_queued = 99, g_rc_running = 99;

static void hold2_fn(void *arg)
{
    (void)arg;
    atomic_store(&g_hold_started, 1);
    while (!atomic_load(&g_hold_release))
        sleep_ns(MS);
}

static void queued_fn(void *arg)
{
    (void)arg;
    atomic_store(&g_q_ran, 1);
}

static void holder_task(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_blocking(hold2_fn, NULL), 0);
    csp_wg_done(&g_wg);
}

static void queued_task(void *arg)
{
    (void)arg;
    atomic_store(&g_rc_queued, csp_blocking_ctx(g_cctx, queued_fn, NULL));
    csp_wg_done(&g_wg);
}

static void ctx_queued_main(void *arg)
{
    (void)arg;
    /* CSP_BLOCKING_MAX=1: the holder has the only thread, ours queues */
    atomic_store(&g_hold_release, 0);
    atomic_store(&g_hold_started, 0);
    atomic_store(&g_q_ran, 0);
    atomic_store(&g_rc_queued, 99);
    g_cctx = csp_ctx_with_cancel(csp_ctx_background());
    TCHECK(g_cctx != NULL);
    csp_wg_add(&g_wg, 2);
    TCHECK_EQ(csp_go(holder_task, NULL), 0);
    while (!atomic_load(&g_hold_started))
        csp_sleep(MS);
    TCHECK_EQ(csp_go(queued_task, NULL), 0);
    csp_sleep(10 * MS);
    csp_ctx_cancel(g_cctx);
    /* the queued call gives up at once, with fn never run */
    for (int i = 0; i < 5000 && atomic_load(&g_rc_queued) == 99; i++)
        csp_sleep(MS);
    TCHECK_EQ(atomic_load(&g_rc_queued), CSP_ECANCELED);
    TCHECK_EQ(atomic_load(&g_q_ran), 0);
    atomic_store(&g_hold_release, 1);
    TCHECK_EQ(csp_wg_wait(&g_wg), 0);
    TCHECK_EQ(atomic_load(&g_q_ran), 0);
    csp_ctx_release(g_cctx);
}

typedef struct { int out; } slow_t;

static void slow_fn(void *arg)
{
    slow_t *sl = arg;
    atomic_store(&g_hold_started, 1);
    while (!atomic_load(&g_hold_release))
        sleep_ns(MS);
    sl->out = 77; /* the caller's stack */
    atomic_store(&g_slow_done, 1);
}

static void running_task(void *arg)
{
    (void)arg;
    slow_t sl = { 0 };
    int rc = csp_blocking_ctx(g_cctx, slow_fn, &sl);
    TCHECK(atomic_load(&g_slow_done)); /* returned only after fn */
    TCHECK_EQ(sl.out, 77);
    atomic_store(&g_rc_running, rc);
    csp_wg_done(&g_wg);
}

static void ctx_running_main(void *arg)
{
    (void)arg;
    atomic_store(&g_hold_release, 0);
    atomic_store(&g_hold_started, 0);
    atomic_store(&g_slow_done, 0);
    atomic_store(&g_rc_running, 99);
    g_cctx = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_add(&g_wg, 1);
    TCHECK_EQ(csp_go(running_task, NULL), 0);
    while (!atomic_load(&g_hold_started))
        csp_sleep(MS);
    csp_ctx_cancel(g_cctx); /* fn runs on: the caller keeps waiting, parked */
    csp_sleep(20 * MS);
    TCHECK_EQ(atomic_load(&g_rc_running), 99);
    atomic_store(&g_hold_release, 1);
    TCHECK_EQ(csp_wg_wait(&g_wg), 0);
    TCHECK_EQ(atomic_load(&g_rc_running), 0); /* fn ran: its results stand */
    /* a context already done: fn never runs */
    atomic_store(&g_q_ran, 0);
    TCHECK_EQ(csp_blocking_ctx(g_cctx, queued_fn, NULL), CSP_ECANCELED);
    TCHECK_EQ(atomic_load(&g_q_ran), 0);
    TCHECK_EQ(csp_blocking_ctx(NULL, queued_fn, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_blocking_ctx(g_cctx, NULL, NULL), CSP_EINVAL);
    csp_ctx_release(g_cctx);
}

static void test_ctx(void **state)
{
    (void)state;
    setenv("CSP_BLOCKING_MAX", "1", 1);
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(ctx_queued_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    unsetenv("CSP_BLOCKING_MAX");
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(ctx_running_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    /* plain thread, no runtime: a done context, a live one */
    csp_ctx_t *c = csp_ctx_with_cancel(csp_ctx_background());
    assert_non_null(c);
    atomic_store(&g_q_ran, 0);
    assert_int_equal(csp_blocking_ctx(c, queued_fn, NULL), 0);
    assert_int_equal(atomic_load(&g_q_ran), 1);
    csp_ctx_cancel(c);
    atomic_store(&g_q_ran, 0);
    assert_int_equal(csp_blocking_ctx(c, queued_fn, NULL), CSP_ECANCELED);
    assert_int_equal(atomic_load(&g_q_ran), 0);
    csp_ctx_release(c);
}

/* ------------------------------------------------------------------------ */
/* dumps                                                                     */

static atomic_int g_dump_release;

static void dump_hold_fn(void *arg)
{
    (void)arg;
    while (!atomic_load(&g_dump_release))
        sleep_ns(MS);
}

static void dump_task(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_blocking(dump_hold_fn, NULL), 0);
    csp_wg_done(&g_wg);
}

static void dump_main(void *arg)
{
    (void)arg;
    atomic_store(&g_dump_release, 0);
    csp_wg_add(&g_wg, 1);
    csp_task_opts_t o = { .name = "in-blocking" };
    TCHECK_EQ(csp_go_opts(dump_task, NULL, &o), 0);
    bool seen = false;
    for (int i = 0; i < 5000 && !seen; i++) {
        csp_task_info_t ti[8];
        size_t n = 0;
        TCHECK_EQ(csp_tasks(ti, 8, &n), 0);
        for (size_t k = 0; k < n && k < 8; k++)
            if (strcmp(ti[k].name, "in-blocking") == 0 && ti[k].state == CSP_TASK_WAITING &&
                ti[k].wait_reason && strcmp(ti[k].wait_reason, "blocking") == 0)
                seen = true;
        if (!seen)
            csp_sleep(MS);
    }
    TCHECK(seen);
    atomic_store(&g_dump_release, 1);
    TCHECK_EQ(csp_wg_wait(&g_wg), 0);
}

static void test_dump_reason(void **state)
{
    (void)state;
    T_RUN(dump_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_worker_not_blocked),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_cap),
        cmocka_unit_test(test_plain_thread_and_bad_input),
        cmocka_unit_test(test_run_waits_for_running_call),
        cmocka_unit_test(test_shutdown),
        cmocka_unit_test(test_deadlock_check),
        cmocka_unit_test(test_ctx),
        cmocka_unit_test(test_dump_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
