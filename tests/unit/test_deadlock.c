/* ctest-timeout: 120 */
/* Global deadlock detection: csp_run returns CSP_EDEADLOCK when every task is
 * asleep and nothing can wake one (no runnable task, no timer, no thread
 * outside the runtime), as Go's "all goroutines are asleep - deadlock!".
 *   - main blocked forever (alone, with blocked helpers, with 1,000 of them);
 *   - a lock-order inversion between two tasks while main waits;
 *   - only once the last timer is gone (a sleeper wakes first);
 *   - never while a timer, a task or a thread could still wake someone:
 *     a delayed sender task, a plain thread made by main, a plain thread that
 *     existed before csp_run.
 * Every case runs at 1, 2, 4 and 8 workers, twice. Where the process can't
 * count its threads (qemu-user), detection is off and the deadlock cases
 * skip. No watchdog thread here: a
 * thread outside the runtime turns detection off (ctest's timeout guards).
 * The runtime prints the blocked tasks to stderr; that output is expected.
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

/* Where the process cannot count its threads (qemu-user fakes 0) the runtime
 * never declares a deadlock (it cannot rule out a thread of the program's
 * own): the tests that expect CSP_EDEADLOCK skip there; those that expect
 * none still run. */
#define NEED_THREAD_COUNT()                                                    \
    do {                                                                       \
        if (!csp_test_threads_countable()) {                                   \
            fprintf(stderr, "skipped: /proc/self/stat has no thread count here (qemu-user?)\n"); \
            skip();                                                            \
        }                                                                      \
    } while (0)

/* Runs main_fn at every worker count, twice; csp_run must return want.
 * after (may be NULL) runs after each csp_run, on this thread. */
static void run_all(void (*main_fn)(void *), int want, void (*after)(void))
{
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        for (int rep = 0; rep < 2; rep++) {
            csp_config_t cfg = { .workers = tc_worker_counts[w] };
            TC_RESET();
            int r = csp_run(main_fn, NULL, &cfg);
            if (r != want)
                fprintf(stderr, "workers %d rep %d: csp_run returned %d, want %d\n",
                        tc_worker_counts[w], rep, r, want);
            assert_int_equal(r, want);
            TC_ASSERT_CLEAN();
            if (after)
                after();
        }
    }
}

/* ------------------------------------------------------------------------ */
/* deadlocks                                                                   */

static csp_chan_t *g_never; /* nobody ever sends on it */

static void recv_forever(void *arg)
{
    (void)arg;
    int v;
    (void)csp_chan_recv(g_never, &v);
    TCHECK(!"a receive on a channel nobody sends on returned");
}

/* Makes g_never and n tasks blocked on it. */
static void spawn_blocked(int n)
{
    g_never = csp_chan_make(sizeof(int), 0);
    TCHECK(g_never != NULL);
    for (int i = 0; i < n; i++)
        TCHECK_EQ(csp_go(recv_forever, NULL), 0);
}

static void main_alone(void *arg)
{
    (void)arg;
    spawn_blocked(0);
    recv_forever(NULL);
}

static void main_with_helpers(void *arg)
{
    (void)arg;
    spawn_blocked(3);
    recv_forever(NULL);
}

static void main_with_many(void *arg)
{
    (void)arg;
    spawn_blocked(1000);
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, 1);
    (void)csp_wg_wait(&wg); /* never done */
    TCHECK(!"a wait on a WaitGroup nobody finishes returned");
}

/* The channel outlives the runtime; the teardown took the freed tasks'
 * waiters off it, so using and releasing it from a plain thread is safe. */
static void release_never(void)
{
    int v = 1;
    assert_int_equal(csp_chan_try_send(g_never, &v), CSP_EAGAIN);
    csp_chan_release(g_never);
    g_never = NULL;
}

static void test_deadlock_main_blocked(void **state)
{
    (void)state;
    NEED_THREAD_COUNT();
    void (*mains[])(void *) = { main_alone, main_with_helpers, main_with_many };
    for (size_t i = 0; i < sizeof mains / sizeof mains[0]; i++)
        run_all(mains[i], CSP_EDEADLOCK, release_never);
}

static csp_mutex_t g_a, g_b;
static csp_wg_t g_both_hold;

static void lock_ab(void *arg)
{
    int ab = *(int *)arg;
    csp_mutex_t *first = ab ? &g_a : &g_b, *second = ab ? &g_b : &g_a;
    TCHECK_EQ(csp_mutex_lock(first), 0);
    csp_wg_done(&g_both_hold);
    (void)csp_wg_wait(&g_both_hold); /* both hold their first lock */
    (void)csp_mutex_lock(second);    /* and wait for each other's */
    TCHECK(!"a lock-order inversion was not a deadlock");
}

static void main_inversion(void *arg)
{
    (void)arg;
    static int one = 1, zero = 0;
    memset(&g_a, 0, sizeof g_a);
    memset(&g_b, 0, sizeof g_b);
    g_both_hold = (csp_wg_t)CSP_WG_INIT;
    csp_wg_add(&g_both_hold, 2);
    csp_wg_t done = CSP_WG_INIT;
    csp_wg_add(&done, 2);
    TCHECK_EQ(csp_go(lock_ab, &one), 0);
    TCHECK_EQ(csp_go(lock_ab, &zero), 0);
    (void)csp_wg_wait(&done); /* nobody calls done */
    TCHECK(!"main's wait returned");
}

static void test_deadlock_lock_inversion(void **state)
{
    (void)state;
    NEED_THREAD_COUNT();
    run_all(main_inversion, CSP_EDEADLOCK, NULL);
}

/* a sleeping task is a pending timer: no deadlock until it is gone */
static _Atomic int g_slept;
static csp_time_t g_t0;

static void sleeper(void *arg)
{
    (void)arg;
    csp_sleep(40 * MS);
    atomic_store(&g_slept, 1);
    recv_forever(NULL);
}

static void main_after_timer(void *arg)
{
    (void)arg;
    atomic_store(&g_slept, 0);
    g_t0 = csp_now();
    g_never = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(csp_go(sleeper, NULL), 0);
    recv_forever(NULL);
}

static void test_deadlock_only_after_timers(void **state)
{
    (void)state;
    NEED_THREAD_COUNT();
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        TC_RESET();
        assert_int_equal(csp_run(main_after_timer, NULL, &cfg), CSP_EDEADLOCK);
        TC_ASSERT_CLEAN();
        assert_int_equal(atomic_load(&g_slept), 1);
        assert_true(csp_now() - g_t0 >= 40 * MS);
        release_never();
    }
}

/* ------------------------------------------------------------------------ */
/* not deadlocks                                                               */

static csp_chan_t *g_ch;

static void late_sender(void *arg)
{
    (void)arg;
    csp_sleep(30 * MS);
    int v = 42;
    TCHECK_EQ(csp_chan_send(g_ch, &v), 0);
}

static void main_late_task(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(csp_go(late_sender, NULL), 0);
    int v = 0;
    TCHECK_EQ(csp_chan_recv(g_ch, &v), 0);
    TCHECK_EQ(v, 42);
    csp_chan_release(g_ch);
}

static void ms_sleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

static void *thread_sender(void *arg)
{
    (void)arg;
    ms_sleep(60); /* every task is asleep meanwhile, with no timer */
    int v = 7;
    if (csp_chan_send(g_ch, &v) != 0)
        tc_fail(__FILE__, __LINE__, "the plain thread's send failed");
    return NULL;
}

static void main_plain_thread(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 0);
    pthread_t th;
    TCHECK_EQ(pthread_create(&th, NULL, thread_sender, NULL), 0);
    int v = 0;
    TCHECK_EQ(csp_chan_recv(g_ch, &v), 0);
    TCHECK_EQ(v, 7);
    pthread_join(th, NULL); /* blocks this worker a moment: fine in a test */
    csp_chan_release(g_ch);
}

static void main_recv_only(void *arg)
{
    (void)arg;
    int v = 0;
    TCHECK_EQ(csp_chan_recv(g_ch, &v), 0);
    TCHECK_EQ(v, 7);
}

static void test_no_deadlock(void **state)
{
    (void)state;
    /* a task that sends after a sleep (a pending timer) */
    run_all(main_late_task, 0, NULL);
    /* a plain thread made by main sends while every task sleeps */
    run_all(main_plain_thread, 0, NULL);
    /* a plain thread made before csp_run does */
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        g_ch = csp_chan_make(sizeof(int), 0);
        assert_non_null(g_ch);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, thread_sender, NULL), 0);
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        TC_RESET();
        assert_int_equal(csp_run(main_recv_only, NULL, &cfg), 0);
        TC_ASSERT_CLEAN();
        pthread_join(th, NULL);
        csp_chan_release(g_ch);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deadlock_main_blocked),
        cmocka_unit_test(test_deadlock_lock_inversion),
        cmocka_unit_test(test_deadlock_only_after_timers),
        cmocka_unit_test(test_no_deadlock),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
