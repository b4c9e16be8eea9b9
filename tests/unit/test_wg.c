/* ctest-timeout: 120 */
/* csp_wg_t (Go's sync.WaitGroup) for tasks and plain threads: wait at 0,
 * many waiters of both kinds released together, reuse across rounds, freeing
 * the wg right after wait returns (run under ASan to catch a done() that
 * still touches it), concurrent adds, and the counter's limits.
 */
#define _GNU_SOURCE
#include <limits.h>
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

/* ------------------------------------------------------------------------ */
/* without a runtime                                                          */

static void test_wg_no_runtime(void **state)
{
    (void)state;
    csp_wg_t wg = CSP_WG_INIT;
    /* wait at 0 returns at once, on a plain thread with no runtime */
    assert_int_equal(csp_wg_wait(&wg), 0);
    assert_int_equal(csp_wg_add(&wg, 3), 0);
    assert_int_equal(csp_wg_done(&wg), 0);
    assert_int_equal(csp_wg_add(&wg, -2), 0);
    assert_int_equal(csp_wg_wait(&wg), 0);
    /* zeroed memory is an empty wg too */
    csp_wg_t z;
    memset(&z, 0, sizeof z);
    assert_int_equal(csp_wg_wait(&z), 0);
    static csp_wg_t file_scope = CSP_WG_INIT;
    assert_int_equal(csp_wg_wait(&file_scope), 0);
    assert_int_equal(csp_wg_add(&wg, 0), 0); /* a no-op at 0 */
    assert_int_equal(csp_wg_wait(&wg), 0);
}

/* the counter's limits: below 0 and above INT32_MAX fail, leaving it as it was */
static void test_wg_limits(void **state)
{
    (void)state;
    csp_wg_t wg = CSP_WG_INIT;
    assert_int_equal(csp_wg_done(&wg), CSP_EINVAL);
    assert_int_equal(csp_wg_add(&wg, -1), CSP_EINVAL);
    assert_int_equal(csp_wg_add(&wg, INT_MIN), CSP_EINVAL);
    assert_int_equal(csp_wg_wait(&wg), 0); /* still 0 */
    assert_int_equal(csp_wg_add(&wg, 2), 0);
    assert_int_equal(csp_wg_add(&wg, -3), CSP_EINVAL);
    /* still 2: two dones succeed, the third fails */
    assert_int_equal(csp_wg_done(&wg), 0);
    assert_int_equal(csp_wg_done(&wg), 0);
    assert_int_equal(csp_wg_done(&wg), CSP_EINVAL);
    assert_int_equal(csp_wg_wait(&wg), 0);
    /* the top */
    assert_int_equal(csp_wg_add(&wg, INT32_MAX), 0);
    assert_int_equal(csp_wg_add(&wg, 1), CSP_EINVAL);
    assert_int_equal(csp_wg_add(&wg, INT_MAX), CSP_EINVAL);
    assert_int_equal(csp_wg_add(&wg, -INT32_MAX), 0);
    assert_int_equal(csp_wg_wait(&wg), 0);
    assert_int_equal(csp_wg_add(&wg, INT32_MAX - 1), 0);
    assert_int_equal(csp_wg_add(&wg, 1), 0);
    assert_int_equal(csp_wg_add(&wg, 1), CSP_EINVAL);
    assert_int_equal(csp_wg_add(&wg, -(INT32_MAX - 5)), 0);
    assert_int_equal(csp_wg_add(&wg, -6), CSP_EINVAL);
    assert_int_equal(csp_wg_add(&wg, -5), 0);
    assert_int_equal(csp_wg_wait(&wg), 0);
    /* NULL */
    assert_int_equal(csp_wg_add(NULL, 1), CSP_EINVAL);
    assert_int_equal(csp_wg_done(NULL), CSP_EINVAL);
    assert_int_equal(csp_wg_wait(NULL), CSP_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* many waiters, tasks and plain threads, all released                       */

enum { MW_TASKS = 200, MW_THREADS = 4 };
static csp_wg_t mw_gate, mw_out;
static atomic_int mw_arrived, mw_released, mw_early;
static atomic_int mw_opened;

static void mw_note_release(int rc)
{
    TCHECK_EQ(rc, 0);
    if (!atomic_load(&mw_opened))
        atomic_fetch_add(&mw_early, 1);
    atomic_fetch_add(&mw_released, 1);
}

static void mw_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&mw_arrived, 1);
    mw_note_release(csp_wg_wait(&mw_gate));
    csp_wg_done(&mw_out);
}

static void *mw_thread(void *arg)
{
    (void)arg;
    atomic_fetch_add(&mw_arrived, 1);
    mw_note_release(csp_wg_wait(&mw_gate));
    csp_wg_done(&mw_out);
    return NULL;
}

static void mw_main(void *arg)
{
    (void)arg;
    const int k = 3; /* the gate needs k dones */
    csp_wg_add(&mw_gate, k);
    csp_wg_add(&mw_out, MW_TASKS + MW_THREADS);
    pthread_t th[MW_THREADS];
    for (int i = 0; i < MW_THREADS; i++)
        TCHECK_EQ(pthread_create(&th[i], NULL, mw_thread, NULL), 0);
    for (int i = 0; i < MW_TASKS; i++)
        TCHECK_EQ(csp_go(mw_task, NULL), 0);
    while (atomic_load(&mw_arrived) < MW_TASKS + MW_THREADS)
        csp_yield();
    csp_sleep(5 * CSP_MILLISECOND); /* let them get into wait */
    for (int i = 0; i < k - 1; i++) {
        TCHECK_EQ(csp_wg_done(&mw_gate), 0);
        csp_sleep(CSP_MILLISECOND);
        TCHECK_EQ(atomic_load(&mw_released), 0);
    }
    atomic_store(&mw_opened, 1);
    TCHECK_EQ(csp_wg_done(&mw_gate), 0);
    TCHECK_EQ(csp_wg_wait(&mw_out), 0);
    TCHECK_EQ(atomic_load(&mw_released), MW_TASKS + MW_THREADS);
    for (int i = 0; i < MW_THREADS; i++)
        pthread_join(th[i], NULL);
}

static void test_wg_many_waiters(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 3; rep++) {
            memset(&mw_gate, 0, sizeof mw_gate);
            memset(&mw_out, 0, sizeof mw_out);
            atomic_store(&mw_arrived, 0);
            atomic_store(&mw_released, 0);
            atomic_store(&mw_early, 0);
            atomic_store(&mw_opened, 0);
            T_RUN(mw_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
            assert_int_equal(atomic_load(&mw_early), 0);
            assert_int_equal(atomic_load(&mw_released), MW_TASKS + MW_THREADS);
        }
}

/* ------------------------------------------------------------------------ */
/* one wg reused across rounds                                               */

#define RU_ROUNDS TC_SCALE(300)
static csp_wg_t ru_wg;
static atomic_int ru_count;

static void ru_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ru_count, 1);
    csp_wg_done(&ru_wg);
}

static void ru_waiter(void *arg)
{
    csp_wg_t *done = arg;
    TCHECK_EQ(csp_wg_wait(&ru_wg), 0);
    csp_wg_done(done);
}

static void ru_main(void *arg)
{
    (void)arg;
    int expect = 0;
    for (int r = 0; r < RU_ROUNDS; r++) {
        int k = 1 + r % 17;
        TCHECK_EQ(csp_wg_add(&ru_wg, k), 0);
        /* a couple of extra waiters besides this task */
        csp_wg_t extra = CSP_WG_INIT;
        csp_wg_add(&extra, 2);
        TCHECK_EQ(csp_go(ru_waiter, &extra), 0);
        TCHECK_EQ(csp_go(ru_waiter, &extra), 0);
        for (int i = 0; i < k; i++)
            TCHECK_EQ(csp_go(ru_task, NULL), 0);
        expect += k;
        TCHECK_EQ(csp_wg_wait(&ru_wg), 0);
        TCHECK_EQ(atomic_load(&ru_count), expect);
        TCHECK_EQ(csp_wg_wait(&extra), 0);
        TCHECK_EQ(csp_wg_wait(&ru_wg), 0); /* at 0: at once */
    }
}

static void test_wg_reuse(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int p = 0; p < 2; p++) {
            memset(&ru_wg, 0, sizeof ru_wg);
            atomic_store(&ru_count, 0);
            T_RUN(ru_main, NULL, tc_worker_counts[w],
                  p ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST);
        }
}

/* ------------------------------------------------------------------------ */
/* the wg is freed as soon as wait returns                                   */

static void fr_doner(void *arg)
{
    csp_wg_t *wg = arg;
    TCHECK_EQ(csp_wg_done(wg), 0);
    /* must not touch *wg any more: the waiter frees it */
}

static void *fr_thread_doner(void *arg)
{
    csp_wg_t *wg = arg;
    TCHECK_EQ(csp_wg_done(wg), 0);
    return NULL;
}

/* A waiter task: many rounds of malloc a wg, add(n), spawn n doners, wait,
 * free. */
static void fr_waiter(void *arg)
{
    csp_wg_t *all = arg;
    int rounds = TC_SCALE(2000);
    for (int r = 0; r < rounds; r++) {
        csp_wg_t *wg = malloc(sizeof *wg);
        TCHECK(wg != NULL);
        if (!wg)
            break;
        memset(wg, 0, sizeof *wg);
        int n = 1 + r % 3;
        csp_wg_add(wg, n);
        for (int i = 0; i < n; i++)
            TCHECK_EQ(csp_go(fr_doner, wg), 0);
        if (r % 4 == 0)
            csp_yield(); /* sometimes the dones come first */
        TCHECK_EQ(csp_wg_wait(wg), 0);
        memset(wg, 0xdd, sizeof *wg); /* poison, then free */
        free(wg);
    }
    csp_wg_done(all);
}

static void fr_main(void *arg)
{
    (void)arg;
    enum { NW = 8 };
    csp_wg_t all = CSP_WG_INIT;
    csp_wg_add(&all, NW);
    for (int i = 0; i < NW; i++)
        TCHECK_EQ(csp_go(fr_waiter, &all), 0);
    /* and plain-thread doners waking a task that frees the wg */
    for (int r = 0; r < TC_SCALE(200); r++) {
        csp_wg_t *wg = malloc(sizeof *wg);
        memset(wg, 0, sizeof *wg);
        csp_wg_add(wg, 1);
        pthread_t th;
        TCHECK_EQ(pthread_create(&th, NULL, fr_thread_doner, wg), 0);
        TCHECK_EQ(csp_wg_wait(wg), 0);
        memset(wg, 0xdd, sizeof *wg);
        free(wg);
        pthread_join(th, NULL);
    }
    TCHECK_EQ(csp_wg_wait(&all), 0);
}

static void test_wg_free_after_wait(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(fr_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* A plain thread waits and frees; tasks are the doners. */
static void test_wg_free_after_wait_plain_thread(void **state)
{
    (void)state;
    csp_config_t cfg = { .workers = 2 };
    TC_RESET();
    assert_int_equal(csp_init(&cfg), 0);
    for (int r = 0; r < TC_SCALE(3000); r++) {
        csp_wg_t *wg = malloc(sizeof *wg);
        assert_non_null(wg);
        memset(wg, 0, sizeof *wg);
        int n = 1 + r % 4;
        assert_int_equal(csp_wg_add(wg, n), 0);
        for (int i = 0; i < n; i++)
            assert_int_equal(csp_go(fr_doner, wg), 0);
        assert_int_equal(csp_wg_wait(wg), 0);
        memset(wg, 0xdd, sizeof *wg);
        free(wg);
    }
    csp_shutdown();
    TC_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------------ */
/* add from many tasks at once                                               */

enum { CA_TASKS = 64, CA_ITERS = 1000 };
static csp_wg_t ca_wg, ca_finished;
static atomic_int ca_released;

static void ca_adder(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    for (int k = 0; k < CA_ITERS; k++) {
        TCHECK_EQ(csp_wg_add(&ca_wg, 2), 0);
        if ((k + (int)i) % 7 == 0)
            csp_yield();
        TCHECK_EQ(csp_wg_done(&ca_wg), 0);
    }
    for (int k = 0; k < CA_ITERS; k++) {
        TCHECK_EQ(csp_wg_done(&ca_wg), 0);
        if ((k + (int)i) % 11 == 0)
            csp_yield();
    }
    csp_wg_done(&ca_finished);
}

static void ca_waiter(void *arg)
{
    csp_wg_t *w = arg;
    TCHECK_EQ(csp_wg_wait(&ca_wg), 0);
    atomic_fetch_add(&ca_released, 1);
    csp_wg_done(w);
}

static void ca_main(void *arg)
{
    (void)arg;
    /* one held by main, so the counter never reaches 0 while adders run */
    TCHECK_EQ(csp_wg_add(&ca_wg, 1), 0);
    csp_wg_t waiters = CSP_WG_INIT;
    csp_wg_add(&waiters, 4);
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(csp_go(ca_waiter, &waiters), 0);
    csp_wg_add(&ca_finished, CA_TASKS);
    for (int i = 0; i < CA_TASKS; i++)
        TCHECK_EQ(csp_go(ca_adder, (void *)(uintptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&ca_finished), 0);
    TCHECK_EQ(atomic_load(&ca_released), 0);
    /* the counter is exactly 1: -2 fails, -1 releases the waiters */
    TCHECK_EQ(csp_wg_add(&ca_wg, -2), CSP_EINVAL);
    TCHECK_EQ(atomic_load(&ca_released), 0);
    TCHECK_EQ(csp_wg_done(&ca_wg), 0);
    TCHECK_EQ(csp_wg_wait(&waiters), 0);
    TCHECK_EQ(atomic_load(&ca_released), 4);
}

static void test_wg_concurrent_add(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 2; rep++) {
            memset(&ca_wg, 0, sizeof ca_wg);
            memset(&ca_finished, 0, sizeof ca_finished);
            atomic_store(&ca_released, 0);
            T_RUN(ca_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        }
}

/* ------------------------------------------------------------------------ */
/* plain threads add and done concurrently, a task waits                     */

static csp_wg_t pt_wg;

static void *pt_thread(void *arg)
{
    (void)arg;
    for (int k = 0; k < 20000; k++) {
        TCHECK_EQ(csp_wg_add(&pt_wg, 1), 0);
        TCHECK_EQ(csp_wg_done(&pt_wg), 0);
    }
    TCHECK_EQ(csp_wg_done(&pt_wg), 0);
    return NULL;
}

static void pt_main(void *arg)
{
    (void)arg;
    enum { NT = 4 };
    pthread_t th[NT];
    csp_wg_add(&pt_wg, NT);
    for (int i = 0; i < NT; i++)
        TCHECK_EQ(pthread_create(&th[i], NULL, pt_thread, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&pt_wg), 0);
    for (int i = 0; i < NT; i++)
        pthread_join(th[i], NULL);
    TCHECK_EQ(csp_wg_add(&pt_wg, -1), CSP_EINVAL); /* exactly 0 */
}

static void test_wg_plain_thread_adders(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(&pt_wg, 0, sizeof pt_wg);
        T_RUN(pt_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* a wg outlives tasks that were freed while waiting on it                   */

/* csp_run frees the tasks still alive when main returns, "without being
 * resumed". A task parked in csp_wg_wait has its waiter record (on its own
 * stack) linked into the wg; the wg must stay usable afterwards - the next
 * add that reaches 0 must not walk into the freed stack. */
static csp_wg_t orphan_wg = CSP_WG_INIT;
static atomic_int orphan_arrived;

static void orphan_waiter(void *arg)
{
    (void)arg;
    atomic_fetch_add(&orphan_arrived, 1);
    csp_wg_wait(&orphan_wg);
}

static void orphan_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(csp_go(orphan_waiter, NULL), 0);
    while (atomic_load(&orphan_arrived) < 3)
        csp_sleep(CSP_MILLISECOND);
    csp_sleep(5 * CSP_MILLISECOND);
    /* return with the waiters parked on orphan_wg */
}

static void reuse_main(void *arg)
{
    (void)arg;
    /* the same wg in the next runtime */
    TCHECK_EQ(csp_wg_add(&orphan_wg, 1), 0);
    TCHECK_EQ(csp_go(fr_doner, &orphan_wg), 0);
    TCHECK_EQ(csp_wg_wait(&orphan_wg), 0);
}

static void test_wg_outlives_freed_waiters(void **state)
{
    (void)state;
    assert_int_equal(csp_wg_add(&orphan_wg, 1), 0);
    atomic_store(&orphan_arrived, 0);
    T_RUN(orphan_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    /* the count is still 1; bringing it to 0 must not touch the freed tasks */
    assert_int_equal(csp_wg_done(&orphan_wg), 0);
    assert_int_equal(csp_wg_wait(&orphan_wg), 0);
    T_RUN(reuse_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wg_no_runtime),
        cmocka_unit_test(test_wg_limits),
        cmocka_unit_test(test_wg_many_waiters),
        cmocka_unit_test(test_wg_reuse),
        cmocka_unit_test(test_wg_free_after_wait),
        cmocka_unit_test(test_wg_free_after_wait_plain_thread),
        cmocka_unit_test(test_wg_concurrent_add),
        cmocka_unit_test(test_wg_plain_thread_adders),
        cmocka_unit_test(test_wg_outlives_freed_waiters), /* last: it may crash */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
