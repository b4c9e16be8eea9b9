/* ctest-timeout: 120 */
/* Timers: csp_after, csp_timer_new/stop/reset/release, csp_after_func,
 * csp_ticker_new, with Go 1.23 semantics (no stale values after stop/reset,
 * release before the fire cancels). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "task_check.h"

#define MS CSP_MILLISECOND
/* generous upper bound for a loaded CI machine; the lower bound is strict */
#define LATE (150 * MS)

static void t_after_fires_once(void *arg)
{
    (void)arg;
    csp_time_t t0 = csp_now(), v = 0;
    csp_chan_t *c = csp_after(20 * MS);
    TCHECK(c != NULL);
    TCHECK_EQ(csp_chan_cap(c), 1);
    TCHECK_EQ(csp_chan_elem_size(c), sizeof(csp_time_t));
    TCHECK_EQ(csp_chan_recv(c, &v), 0);
    csp_time_t took = csp_now() - t0;
    TCHECK(took >= 20 * MS);
    TCHECK(took < 20 * MS + LATE);
    TCHECK(v >= t0 + 20 * MS && v <= csp_now());
    /* exactly once */
    TCHECK_EQ(csp_chan_recv_until(c, &v, csp_deadline_after(40 * MS)), CSP_ETIMEDOUT);
    csp_chan_release(c);
    /* d <= 0 fires at once */
    c = csp_after(-5);
    TCHECK_EQ(csp_chan_recv_until(c, &v, csp_deadline_after(LATE)), 0);
    csp_chan_release(c);
}

static void test_after(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(t_after_fires_once, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

static void t_after_release_cancels(void *arg)
{
    (void)arg;
    /* many abandoned afters: released before they fire, nothing leaks (ASan
     * checks) and nothing fires into freed memory */
    for (int i = 0; i < 2000; i++) {
        csp_chan_t *c = csp_after((i % 20) * MS);
        TCHECK(c != NULL);
        if (i % 3)
            csp_sleep((i % 7) * CSP_MICROSECOND * 100);
        csp_chan_release(c);
    }
    csp_sleep(30 * MS); /* any that were not cancelled would fire now */
}

static void test_after_release_cancels(void **state)
{
    (void)state;
    T_RUN(t_after_release_cancels, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

static void t_timer_stop_reset(void *arg)
{
    (void)arg;
    csp_time_t v;
    /* stop before the fire: 1, and nothing ever arrives */
    csp_timer_t *t = csp_timer_new(20 * MS);
    TCHECK(t != NULL);
    TCHECK_EQ(csp_timer_stop(t), 1);
    TCHECK_EQ(csp_timer_stop(t), 0);
    TCHECK_EQ(csp_chan_recv_until(csp_timer_chan(t), &v, csp_deadline_after(50 * MS)),
              CSP_ETIMEDOUT);
    /* fired but not received: stop discards the value (Go 1.23) */
    TCHECK_EQ(csp_timer_reset(t, 5 * MS), 0);
    csp_sleep(30 * MS);
    TCHECK_EQ(csp_timer_stop(t), 1);
    TCHECK_EQ(csp_chan_try_recv(csp_timer_chan(t), &v), CSP_EAGAIN);
    /* reset of a fired, unreceived timer: no stale value, fires again later */
    TCHECK_EQ(csp_timer_reset(t, 5 * MS), 0);
    csp_sleep(20 * MS);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_timer_reset(t, 30 * MS), 1);
    TCHECK_EQ(csp_chan_try_recv(csp_timer_chan(t), &v), CSP_EAGAIN);
    TCHECK_EQ(csp_chan_recv(csp_timer_chan(t), &v), 0);
    TCHECK(csp_now() - t0 >= 30 * MS);
    TCHECK(v >= t0 + 30 * MS);
    /* received: stop returns 0 */
    TCHECK_EQ(csp_timer_stop(t), 0);
    csp_timer_release(t);
    /* release of a pending timer cancels it */
    t = csp_timer_new(10 * MS);
    csp_timer_release(t);
    csp_sleep(20 * MS);
    /* bad input */
    TCHECK_EQ(csp_timer_stop(NULL), 0);
    TCHECK_EQ(csp_timer_reset(NULL, MS), CSP_EINVAL);
    TCHECK(csp_timer_chan(NULL) == NULL);
    csp_timer_release(NULL);
}

static void test_timer_stop_reset(void **state)
{
    (void)state;
    T_RUN(t_timer_stop_reset, NULL, 1, CSP_SPAWN_HELP_FIRST);
    T_RUN(t_timer_stop_reset, NULL, 4, CSP_SPAWN_HELP_FIRST);
}

static atomic_int func_runs;
static atomic_uint_least64_t func_task;

static void func_body(void *arg)
{
    TCHECK(arg == (void *)&func_runs);
    TCHECK(csp_task_id() != 0); /* runs in a task */
    atomic_store(&func_task, csp_task_id());
    atomic_fetch_add(&func_runs, 1);
}

static void t_after_func(void *arg)
{
    (void)arg;
    atomic_store(&func_runs, 0);
    /* released at once: still runs */
    csp_timer_t *a = csp_after_func(10 * MS, func_body, &func_runs);
    TCHECK(a != NULL);
    TCHECK(csp_timer_chan(a) == NULL);
    csp_timer_release(a);
    /* stopped: never runs */
    csp_timer_t *b = csp_after_func(10 * MS, func_body, &func_runs);
    TCHECK_EQ(csp_timer_stop(b), 1);
    csp_sleep(40 * MS);
    TCHECK_EQ(atomic_load(&func_runs), 1);
    TCHECK(atomic_load(&func_task) != csp_task_id());
    /* reset after stop: runs once more */
    TCHECK_EQ(csp_timer_reset(b, 5 * MS), 0);
    csp_sleep(40 * MS);
    TCHECK_EQ(atomic_load(&func_runs), 2);
    TCHECK_EQ(csp_timer_stop(b), 0);
    csp_timer_release(b);
    TCHECK(csp_after_func(MS, NULL, NULL) == NULL);
}

static void test_after_func(void **state)
{
    (void)state;
    T_RUN(t_after_func, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

static void t_ticker(void *arg)
{
    (void)arg;
    TCHECK(csp_ticker_new(0) == NULL);
    TCHECK(csp_ticker_new(-1) == NULL);
    csp_timer_t *tk = csp_ticker_new(10 * MS);
    TCHECK(tk != NULL);
    csp_time_t t0 = csp_now(), v, prev = t0;
    for (int i = 0; i < 5; i++) {
        TCHECK_EQ(csp_chan_recv(csp_timer_chan(tk), &v), 0);
        TCHECK(v > prev);
        prev = v;
    }
    TCHECK(csp_now() - t0 >= 50 * MS);
    /* a slow reader: ticks are dropped, at most one is buffered */
    csp_sleep(60 * MS);
    TCHECK(csp_chan_len(csp_timer_chan(tk)) <= 1);
    /* reset changes the period; no stale tick after it */
    TCHECK_EQ(csp_timer_reset(tk, 30 * MS), 1);
    TCHECK_EQ(csp_chan_try_recv(csp_timer_chan(tk), &v), CSP_EAGAIN);
    t0 = csp_now();
    TCHECK_EQ(csp_chan_recv(csp_timer_chan(tk), &v), 0);
    TCHECK(csp_now() - t0 >= 30 * MS);
    TCHECK_EQ(csp_timer_reset(tk, 0), CSP_EINVAL);
    TCHECK_EQ(csp_timer_stop(tk), 1);
    TCHECK_EQ(csp_chan_recv_until(csp_timer_chan(tk), &v, csp_deadline_after(50 * MS)),
              CSP_ETIMEDOUT);
    csp_timer_release(tk);
}

static void test_ticker(void **state)
{
    (void)state;
    T_RUN(t_ticker, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

/* many pending timers from many tasks: none early, all fire */
static csp_wg_t many_wg;

static void many_one(void *arg)
{
    intptr_t i = (intptr_t)arg;
    csp_duration_t d = (csp_duration_t)(i % 50) * MS / 2;
    csp_time_t t0 = csp_now(), v;
    csp_chan_t *c = csp_after(d);
    TCHECK(c != NULL);
    TCHECK_EQ(csp_chan_recv(c, &v), 0);
    TCHECK(csp_now() - t0 >= d);
    csp_chan_release(c);
    csp_wg_done(&many_wg);
}

static void t_many(void *arg)
{
    (void)arg;
    int n = CSP_TEST_LIVE(20000);
    memset(&many_wg, 0, sizeof many_wg);
    csp_wg_add(&many_wg, n);
    for (intptr_t i = 0; i < n; i++)
        TCHECK_EQ(csp_go(many_one, (void *)i), 0);
    TCHECK_EQ(csp_wg_wait(&many_wg), 0);
}

static void test_many_timers(void **state)
{
    (void)state;
    T_RUN(t_many, NULL, 1, CSP_SPAWN_HELP_FIRST);
    T_RUN(t_many, NULL, 4, CSP_SPAWN_HELP_FIRST);
}

/* timers created and received on a plain thread */
static void test_plain_thread(void **state)
{
    (void)state;
    TC_RESET();
    assert_null(csp_after(MS)); /* no runtime */
    assert_null(csp_timer_new(MS));
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    csp_time_t t0 = csp_now(), v;
    csp_chan_t *c = csp_after(15 * MS);
    assert_non_null(c);
    assert_int_equal(csp_chan_recv(c, &v), 0);
    assert_true(csp_now() - t0 >= 15 * MS);
    csp_chan_release(c);
    csp_timer_t *t = csp_timer_new(10 * MS);
    assert_int_equal(csp_timer_stop(t), 1);
    csp_timer_release(t);
    /* a timer still pending at shutdown can be released afterwards */
    t = csp_timer_new(CSP_SECOND);
    csp_shutdown();
    assert_int_equal(csp_timer_stop(t), 0);
    csp_timer_release(t);
    TC_ASSERT_CLEAN();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_after),
        cmocka_unit_test(test_after_release_cancels),
        cmocka_unit_test(test_timer_stop_reset),
        cmocka_unit_test(test_after_func),
        cmocka_unit_test(test_ticker),
        cmocka_unit_test(test_many_timers),
        cmocka_unit_test(test_plain_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
