/* ctest-timeout: 120 */
/* csp_once_t (Go's sync.Once) from tasks and plain threads: NULL arguments,
 * static and zero initialisation, use without a runtime, 100 racing tasks
 * (and threads) run fn exactly once and every caller returns only after fn
 * has finished (fn sleeps, then sets a flag that every caller checks),
 * csp_once_done before, during and after fn, a once freed right after the
 * last caller returns, and shutdown of callers waiting for a fn that never
 * finishes.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"
#include "thread_util.h"

#include "task_join.h"

static csp_wg_t th_wg;

/* ------------------------------------------------------------------------ */
/* NULL, initialisers, no runtime                                            */

static csp_once_t file_scope_once = CSP_ONCE_INIT;
static int fs_calls;

static void count_fn(void *arg)
{
    (*(int *)arg)++;
}

static void test_once_null(void **state)
{
    (void)state;
    csp_once_t o = CSP_ONCE_INIT;
    int n = 0;
    assert_int_equal(csp_once(NULL, count_fn, &n), CSP_EINVAL);
    assert_int_equal(csp_once(&o, NULL, &n), CSP_EINVAL);
    assert_int_equal(csp_once(NULL, NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_once_done(NULL), CSP_EINVAL);
    assert_int_equal(n, 0);
    assert_int_equal(csp_once_done(&o), 0); /* the bad calls did not run it */
}

static void test_once_no_runtime(void **state)
{
    (void)state;
    assert_int_equal(csp_once_done(&file_scope_once), 0);
    assert_int_equal(csp_once(&file_scope_once, count_fn, &fs_calls), 0);
    assert_int_equal(fs_calls, 1);
    assert_int_equal(csp_once_done(&file_scope_once), 1);
    assert_int_equal(csp_once(&file_scope_once, count_fn, &fs_calls), 0);
    assert_int_equal(fs_calls, 1);
    /* zeroed memory; a different fn later does not run either (Go) */
    csp_once_t z;
    memset(&z, 0, sizeof z);
    int a = 0, b = 0;
    assert_int_equal(csp_once(&z, count_fn, &a), 0);
    assert_int_equal(csp_once(&z, count_fn, &b), 0);
    assert_int_equal(a, 1);
    assert_int_equal(b, 0);
    assert_int_equal(csp_once_done(&z), 1);
}

/* ------------------------------------------------------------------------ */
/* racing callers                                                            */

#define RC_TASKS 100
#define RC_THREADS 3
static csp_once_t rc_once;
static atomic_int rc_runs, rc_returned, rc_done_during;
static int rc_flag; /* plain: written by fn, read by callers after csp_once */
static atomic_int rc_go, rc_in_fn, rc_fn_finished, rc_seen_running;

static void rc_fn(void *arg)
{
    (void)arg;
    atomic_fetch_add(&rc_runs, 1);
    atomic_store(&rc_in_fn, 1);
    csp_sleep(5 * CSP_MILLISECOND); /* the others arrive and wait */
    /* and until the observer has seen csp_once_done == 0 meanwhile */
    csp_time_t give_up = csp_now() + 10 * CSP_SECOND;
    while (!atomic_load(&rc_seen_running) && csp_now() < give_up)
        csp_sleep(200 * CSP_MICROSECOND);
    /* not done while fn runs */
    if (csp_once_done(&rc_once) != 0)
        atomic_fetch_add(&rc_done_during, 1);
    rc_flag = 42;
    atomic_store(&rc_fn_finished, 1);
}

static void rc_call(void)
{
    TCHECK_EQ(csp_once(&rc_once, rc_fn, NULL), 0);
    TCHECK_EQ(rc_flag, 42); /* fn has completed for every caller */
    TCHECK_EQ(csp_once_done(&rc_once), 1);
    atomic_fetch_add(&rc_returned, 1);
}

static void rc_task(void *arg)
{
    (void)arg;
    while (!atomic_load(&rc_go))
        csp_yield();
    rc_call();
}

static void *rc_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&rc_go))
        sched_yield();
    rc_call();
    csp_wg_done(&th_wg);
    return NULL;
}

/* checks csp_once_done while fn runs, without calling csp_once: it may say
 * 1 only after fn has finished */
static void rc_observer(void *arg)
{
    (void)arg;
    while (!atomic_load(&rc_in_fn))
        csp_sleep(100 * CSP_MICROSECOND);
    for (;;) {
        int d = csp_once_done(&rc_once); /* first done, then finished */
        int f = atomic_load(&rc_fn_finished);
        TCHECK(d == 0 || d == 1);
        if (d == 1) {
            TCHECK_EQ(f, 1);
            break;
        }
        if (!f)
            atomic_store(&rc_seen_running, 1);
        csp_sleep(200 * CSP_MICROSECOND);
    }
}

static void rc_main(void *arg)
{
    int threads = (int)(intptr_t)arg;
    pthread_t th[RC_THREADS];
    if (threads) {
        csp_wg_add(&th_wg, RC_THREADS);
        for (int i = 0; i < RC_THREADS; i++)
            TCHECK_EQ(pthread_create(&th[i], NULL, rc_thread, NULL), 0);
    }
    TCHECK_EQ(go_joined(rc_observer, NULL), 0);
    for (int i = 0; i < RC_TASKS; i++)
        TCHECK_EQ(go_joined(rc_task, NULL), 0);
    csp_sleep(CSP_MILLISECOND);
    atomic_store(&rc_go, 1);
    if (threads) {
        TCHECK_EQ(csp_wg_wait(&th_wg), 0);
        for (int i = 0; i < RC_THREADS; i++)
            pthread_join(th[i], NULL);
    }
}

static void test_once_racing(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 4; rep++) {
            int threads = rep % 2;
            memset(&rc_once, 0, sizeof rc_once);
            memset(&th_wg, 0, sizeof th_wg);
            atomic_store(&rc_runs, 0);
            atomic_store(&rc_returned, 0);
            atomic_store(&rc_done_during, 0);
            atomic_store(&rc_go, 0);
            atomic_store(&rc_in_fn, 0);
            atomic_store(&rc_fn_finished, 0);
            atomic_store(&rc_seen_running, 0);
            rc_flag = 0;
            J_RUN(rc_main, (void *)(intptr_t)threads, tc_worker_counts[w],
                  rep < 2 ? CSP_SPAWN_HELP_FIRST : CSP_SPAWN_CHILD_FIRST);
            assert_int_equal(atomic_load(&rc_runs), 1);
            assert_int_equal(atomic_load(&rc_returned), RC_TASKS + (threads ? RC_THREADS : 0));
            assert_int_equal(atomic_load(&rc_done_during), 0);
            assert_int_equal(atomic_load(&rc_seen_running), 1); /* done was 0 meanwhile */
            assert_int_equal(csp_once_done(&rc_once), 1);
        }
}

/* ------------------------------------------------------------------------ */
/* many onces, each freed as soon as its callers have returned               */

#define FR_ROUNDS TC_SCALE(500)
static atomic_int fr_runs;

typedef struct {
    csp_once_t once;
    csp_wg_t wg;
    int value;
} fr_obj_t;

static void fr_fn(void *arg)
{
    fr_obj_t *o = arg;
    atomic_fetch_add(&fr_runs, 1);
    if (o->value % 3 == 0)
        csp_yield(); /* others queue */
    o->value = -1;
}

static void fr_caller(void *arg)
{
    fr_obj_t *o = arg;
    TCHECK_EQ(csp_once(&o->once, fr_fn, o), 0);
    TCHECK_EQ(o->value, -1);
    csp_wg_done(&o->wg);
}

static void fr_main(void *arg)
{
    (void)arg;
    for (int r = 0; r < FR_ROUNDS; r++) {
        fr_obj_t *o = calloc(1, sizeof *o);
        TCHECK(o != NULL);
        if (!o)
            return;
        o->value = r;
        int n = 1 + r % 5;
        csp_wg_add(&o->wg, n);
        for (int i = 0; i < n; i++)
            TCHECK_EQ(csp_go(fr_caller, o), 0);
        TCHECK_EQ(csp_wg_wait(&o->wg), 0);
        memset(o, 0xdd, sizeof *o); /* poison, then free: nobody may touch it now */
        free(o);
    }
}

static void test_once_free_after(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        atomic_store(&fr_runs, 0);
        T_RUN(fr_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        assert_int_equal(atomic_load(&fr_runs), FR_ROUNDS);
    }
}

/* ------------------------------------------------------------------------ */
/* shutdown: callers waiting for a fn that never finishes                    */

#define UNSET 12345
#define SD_TASKS 10
static csp_once_t sd_once;
static atomic_int sd_in_fn, sd_arrived, sd_fn_rc, sd_tid;
static atomic_int sd_rc_task[SD_TASKS], sd_rc_thread;

static void sd_fn(void *arg)
{
    (void)arg;
    atomic_store(&sd_in_fn, 1);
    atomic_store(&sd_fn_rc, csp_sleep(3600 * CSP_SECOND)); /* until shutdown */
}

static void sd_runner(void *arg)
{
    (void)arg;
    csp_once(&sd_once, sd_fn, NULL);
}

static void sd_task(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&sd_arrived, 1);
    atomic_store(&sd_rc_task[i], csp_once(&sd_once, sd_fn, NULL));
}

static void *sd_thread(void *arg)
{
    (void)arg;
    atomic_store(&sd_tid, (int)syscall(SYS_gettid));
    atomic_fetch_add(&sd_arrived, 1);
    atomic_store(&sd_rc_thread, csp_once(&sd_once, sd_fn, NULL));
    return NULL;
}

static void test_once_shutdown(void **state)
{
    (void)state;
    for (int rep = 0; rep < 2; rep++) {
        memset(&sd_once, 0, sizeof sd_once);
        atomic_store(&sd_in_fn, 0);
        atomic_store(&sd_arrived, 0);
        atomic_store(&sd_fn_rc, UNSET);
        atomic_store(&sd_rc_thread, UNSET);
        for (int i = 0; i < SD_TASKS; i++)
            atomic_store(&sd_rc_task[i], UNSET);
        csp_config_t cfg = { .workers = 2 };
        assert_int_equal(csp_init(&cfg), 0);
        assert_int_equal(csp_go(sd_runner, NULL), 0);
        while (!atomic_load(&sd_in_fn))
            ms_sleep(1);
        for (int i = 0; i < SD_TASKS; i++)
            assert_int_equal(csp_go(sd_task, (void *)(intptr_t)i), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, sd_thread, NULL), 0);
        while (atomic_load(&sd_arrived) < SD_TASKS + 1)
            ms_sleep(1);
        wait_thread_blocked(atomic_load(&sd_tid));
        ms_sleep(20); /* the tasks park */
        csp_shutdown();
        pthread_join(th, NULL);
        /* every waiter is shut down before fn (whose sleep fails too) can
         * return and release them */
        assert_int_equal(atomic_load(&sd_rc_thread), CSP_ESHUTDOWN);
        for (int i = 0; i < SD_TASKS; i++) {
            int v = atomic_load(&sd_rc_task[i]);
            assert_true(v == UNSET || v == CSP_ESHUTDOWN); /* UNSET: cut off by the grace period */
        }
        int f = atomic_load(&sd_fn_rc);
        assert_true(f == UNSET || f == CSP_ESHUTDOWN);
        if (f == CSP_ESHUTDOWN) /* fn returned: the once is done */
            assert_int_equal(csp_once_done(&sd_once), 1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_once_null),
        cmocka_unit_test(test_once_no_runtime),
        cmocka_unit_test(test_once_racing),
        cmocka_unit_test(test_once_free_after),
        cmocka_unit_test(test_once_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
