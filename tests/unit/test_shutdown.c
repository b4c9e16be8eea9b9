/* ctest-timeout: 120 */
/* csp_init / csp_shutdown: plain-thread usage (spawning from the main thread
 * and from extra pthreads, waiting on a WaitGroup from a plain thread), and
 * shutdown with blocked callers - tasks in csp_wg_wait and csp_sleep(1 hour),
 * plain threads in both - which all get CSP_ESHUTDOWN, as does every later
 * blocking call and spawn; tasks that never block are stopped after the
 * grace period; init/shutdown cycles.
 *
 * A task's results are recorded in global arrays and checked after
 * csp_shutdown() returns.
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

#define UNSET 12345

static void ms_sleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Waits until thread tid is asleep in the kernel (state S in
 * /proc/self/task/<tid>/stat) - blocked in its futex wait, given that it has
 * nothing else to block on once it announced itself. */
static void wait_thread_blocked(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    csp_time_t until = csp_now() + 10 * CSP_SECOND;
    int asleep = 0;
    while (csp_now() < until) {
        FILE *f = fopen(path, "r");
        if (f) {
            char buf[512];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            char *rp = strrchr(buf, ')');
            if (rp && rp[1] == ' ' && rp[2] == 'S') {
                if (++asleep >= 3) /* asleep three looks in a row */
                    return;
            } else {
                asleep = 0;
            }
        }
        ms_sleep(2);
    }
}

static void noop(void *arg)
{
    (void)arg;
}

/* ------------------------------------------------------------------------ */
/* plain-thread usage of a csp_init runtime                                  */

enum { PT_THREADS = 4 };
#define PT_PER_THREAD TC_SCALE(500)
static csp_wg_t pt_wg;
static atomic_int pt_ran;

static void pt_task(void *arg)
{
    (void)arg;
    TCHECK(csp_task_id() != 0);
    TCHECK(csp_worker_id() >= 0);
    atomic_fetch_add(&pt_ran, 1);
    if (atomic_load(&pt_ran) % 7 == 0)
        csp_yield();
    csp_wg_done(&pt_wg);
}

static void *pt_thread(void *arg)
{
    (void)arg;
    csp_wg_t mine = CSP_WG_INIT;
    csp_wg_add(&mine, PT_PER_THREAD);
    for (int i = 0; i < PT_PER_THREAD; i++) {
        TCHECK_EQ(csp_go(pt_task, NULL), 0);
        csp_wg_done(&mine);
    }
    TCHECK_EQ(csp_wg_wait(&mine), 0);
    return NULL;
}

static void test_init_plain_threads(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        TC_RESET();
        atomic_store(&pt_ran, 0);
        memset(&pt_wg, 0, sizeof pt_wg);
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        assert_int_equal(csp_init(&cfg), 0);
        assert_int_equal(csp_workers(), tc_worker_counts[w]);
        assert_int_equal(csp_task_id(), 0);
        /* the main thread and PT_THREADS pthreads spawn */
        csp_wg_add(&pt_wg, (PT_THREADS + 1) * PT_PER_THREAD);
        pthread_t th[PT_THREADS];
        for (int i = 0; i < PT_THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, pt_thread, NULL), 0);
        for (int i = 0; i < PT_PER_THREAD; i++)
            assert_int_equal(csp_go(pt_task, NULL), 0);
        /* a plain thread waits for tasks */
        assert_int_equal(csp_wg_wait(&pt_wg), 0);
        assert_int_equal(atomic_load(&pt_ran), (PT_THREADS + 1) * PT_PER_THREAD);
        for (int i = 0; i < PT_THREADS; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        csp_stats_t st;
        assert_int_equal(csp_stats(&st), 0);
        assert_true(st.tasks_spawned >= (uint64_t)(PT_THREADS + 1) * PT_PER_THREAD);
        csp_time_t t0 = csp_now();
        csp_shutdown();
        assert_true(csp_now() - t0 < 2 * CSP_SECOND);
        TC_ASSERT_CLEAN();
        assert_int_equal(csp_workers(), 0);
        assert_int_equal(csp_stats(&st), CSP_ESTATE);
    }
}

/* ------------------------------------------------------------------------ */
/* shutdown with blocked tasks and threads                                   */

#if defined(TC_TSAN)
enum { BL_WG = 25, BL_SLEEP = 25, BL_THREADS = 3 };
#else
enum { BL_WG = 100, BL_SLEEP = 100, BL_THREADS = 3 };
#endif
static csp_wg_t bl_gate;
static atomic_int bl_arrived;
static atomic_int rc_wg[BL_WG], rc_sleep[BL_SLEEP];
static atomic_int rc_again_sleep[BL_WG + BL_SLEEP], rc_again_wait[BL_WG + BL_SLEEP],
    rc_again_go[BL_WG + BL_SLEEP];
static atomic_int rc_thread_wg[BL_THREADS], rc_thread_sleep[BL_THREADS];
static atomic_int tid_thread[2 * BL_THREADS];

/* After the blocking call failed: everything later fails at once too. */
static void after_shutdown(int slot)
{
    csp_time_t t0 = csp_now();
    atomic_store(&rc_again_sleep[slot], csp_sleep(10 * CSP_SECOND));
    csp_wg_t w = CSP_WG_INIT;
    csp_wg_add(&w, 1);
    atomic_store(&rc_again_wait[slot], csp_wg_wait(&w));
    atomic_store(&rc_again_go[slot], csp_go(noop, NULL));
    TCHECK(csp_now() - t0 < CSP_SECOND);
}

static void bl_wg_task(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&bl_arrived, 1);
    atomic_store(&rc_wg[i], csp_wg_wait(&bl_gate));
    after_shutdown(i);
}

static void bl_sleep_task(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&bl_arrived, 1);
    atomic_store(&rc_sleep[i], csp_sleep(3600 * CSP_SECOND));
    after_shutdown(BL_WG + i);
}

static void *bl_thread_wg(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_store(&tid_thread[i], (int)syscall(SYS_gettid));
    atomic_fetch_add(&bl_arrived, 1);
    atomic_store(&rc_thread_wg[i], csp_wg_wait(&bl_gate));
    return NULL;
}

static void *bl_thread_sleep(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_store(&tid_thread[BL_THREADS + i], (int)syscall(SYS_gettid));
    atomic_fetch_add(&bl_arrived, 1);
    atomic_store(&rc_thread_sleep[i], csp_sleep(3600 * CSP_SECOND));
    return NULL;
}

static void reset_blocked(void)
{
    memset(&bl_gate, 0, sizeof bl_gate);
    atomic_store(&bl_arrived, 0);
    for (int i = 0; i < BL_WG; i++)
        atomic_store(&rc_wg[i], UNSET);
    for (int i = 0; i < BL_SLEEP; i++)
        atomic_store(&rc_sleep[i], UNSET);
    for (int i = 0; i < BL_WG + BL_SLEEP; i++) {
        atomic_store(&rc_again_sleep[i], UNSET);
        atomic_store(&rc_again_wait[i], UNSET);
        atomic_store(&rc_again_go[i], UNSET);
    }
    for (int i = 0; i < BL_THREADS; i++) {
        atomic_store(&rc_thread_wg[i], UNSET);
        atomic_store(&rc_thread_sleep[i], UNSET);
    }
}

/* Counts the entries of rc that are not `want`; reports the first few.
 * UNSET entries (never returned) are only counted, in *unset. */
static int check_all(const char *what, atomic_int *rc, int n, int want, int *unset)
{
    int bad = 0;
    for (int i = 0; i < n; i++) {
        int v = atomic_load(&rc[i]);
        if (v == want)
            continue;
        if (v == UNSET) {
            (*unset)++;
            continue;
        }
        if (bad++ < 3)
            print_error("%s[%d] = %d (%s), want %s\n", what, i, v, csp_err_name(v),
                        csp_err_name(want));
    }
    return bad;
}

/* One run; returns the number of calls that never returned (all must have,
 * unless the grace period ran out: see below). Wrong results fail at once. */
static int run_blocked(int workers, int with_threads)
{
    reset_blocked();
    TC_RESET();
    csp_config_t cfg = { .workers = workers };
    assert_int_equal(csp_init(&cfg), 0);
    csp_wg_add(&bl_gate, 1); /* never released */
    for (int i = 0; i < BL_WG; i++)
        assert_int_equal(csp_go(bl_wg_task, (void *)(intptr_t)i), 0);
    for (int i = 0; i < BL_SLEEP; i++)
        assert_int_equal(csp_go(bl_sleep_task, (void *)(intptr_t)i), 0);
    pthread_t th[2 * BL_THREADS];
    int nth = with_threads ? BL_THREADS : 0;
    for (int i = 0; i < nth; i++) {
        assert_int_equal(pthread_create(&th[i], NULL, bl_thread_wg, (void *)(intptr_t)i), 0);
        assert_int_equal(
            pthread_create(&th[BL_THREADS + i], NULL, bl_thread_sleep, (void *)(intptr_t)i), 0);
    }
    while (atomic_load(&bl_arrived) < BL_WG + BL_SLEEP + 2 * nth)
        ms_sleep(1);
    for (int i = 0; i < nth; i++) {
        wait_thread_blocked(atomic_load(&tid_thread[i]));
        wait_thread_blocked(atomic_load(&tid_thread[BL_THREADS + i]));
    }
    ms_sleep(20); /* let the tasks park */
    csp_time_t t0 = csp_now();
    csp_shutdown();
    csp_duration_t took = csp_now() - t0;
    for (int i = 0; i < nth; i++) {
        assert_int_equal(pthread_join(th[i], NULL), 0);
        assert_int_equal(pthread_join(th[BL_THREADS + i], NULL), 0);
    }
    print_message("workers %d: csp_shutdown took %.1f ms\n", workers, (double)took / 1e6);
    assert_true(took < 3 * CSP_SECOND);
    int bad = 0, unset = 0, thread_unset = 0;
    bad += check_all("task csp_wg_wait", rc_wg, BL_WG, CSP_ESHUTDOWN, &unset);
    bad += check_all("task csp_sleep(1 h)", rc_sleep, BL_SLEEP, CSP_ESHUTDOWN, &unset);
    bad += check_all("later csp_sleep", rc_again_sleep, BL_WG + BL_SLEEP, CSP_ESHUTDOWN, &unset);
    bad += check_all("later csp_wg_wait", rc_again_wait, BL_WG + BL_SLEEP, CSP_ESHUTDOWN, &unset);
    bad += check_all("later csp_go", rc_again_go, BL_WG + BL_SLEEP, CSP_ESHUTDOWN, &unset);
    if (nth) {
        bad += check_all("thread csp_wg_wait", rc_thread_wg, nth, CSP_ESHUTDOWN, &thread_unset);
        bad += check_all("thread csp_sleep(1 h)", rc_thread_sleep, nth, CSP_ESHUTDOWN,
                         &thread_unset);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(thread_unset, 0); /* threads are joined: they returned */
    TC_ASSERT_CLEAN();
    assert_int_equal(csp_go(noop, NULL), CSP_ESHUTDOWN);
    assert_int_equal(csp_workers(), 0);
    if (unset && took < 100 * CSP_MILLISECOND) {
        print_error("%d task calls never returned, though csp_shutdown took only %.1f ms "
                    "(less than the 100 ms grace period)\n",
                    unset, (double)took / 1e6);
        fail();
    }
    return unset;
}

/* Tasks get 100 ms of wall time to return after the wake-up. On a loaded
 * machine (parallel ctest, sanitizers) a worker thread may not even run in
 * that time, and the tasks are freed before their calls return: such a run is
 * inconclusive and is repeated, up to 4 times. */
static void run_blocked_retry(int workers, int with_threads)
{
    for (int attempt = 0; attempt < 4; attempt++) {
        int unset = run_blocked(workers, with_threads);
        if (!unset)
            return;
        print_message("workers %d: %d task calls cut off by the grace period; again\n", workers,
                      unset);
    }
    print_error("workers %d: in every attempt, blocked task calls never returned\n", workers);
    fail();
}

static void test_shutdown_blocked_tasks(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        run_blocked_retry(tc_worker_counts[w], 0);
}

static void test_shutdown_blocked_threads(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        run_blocked_retry(tc_worker_counts[w], 1);
}

/* ------------------------------------------------------------------------ */
/* tasks that never block are stopped after the grace period                 */

static atomic_int spin_started;

static void spin_yielder(void *arg)
{
    (void)arg;
    atomic_fetch_add(&spin_started, 1);
    for (;;)
        csp_yield();
}

/* A ticker loop that ignores errors: once the runtime stops, csp_sleep fails
 * at once with CSP_ESHUTDOWN, over and over. A failing blocking call must
 * still be a scheduling point, or this task never gives its worker back. */
static void spin_sleeper_ignoring_errors(void *arg)
{
    (void)arg;
    atomic_fetch_add(&spin_started, 1);
    for (;;) {
        csp_time_t t = csp_now() + 200 * CSP_MICROSECOND;
        while (csp_now() < t)
            ; /* a tick's work */
        csp_sleep(CSP_MILLISECOND);
    }
}

/* The same with a WaitGroup that is never released. */
static csp_wg_t spin_gate = CSP_WG_INIT;
static void spin_waiter_ignoring_errors(void *arg)
{
    (void)arg;
    atomic_fetch_add(&spin_started, 1);
    csp_wg_add(&spin_gate, 1);
    for (;;)
        csp_wg_wait(&spin_gate);
}

static void test_shutdown_busy_tasks(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        atomic_store(&spin_started, 0);
        csp_config_t cfg = { .workers = tc_worker_counts[w] };
        assert_int_equal(csp_init(&cfg), 0);
        for (int i = 0; i < 4; i++) {
            assert_int_equal(csp_go(spin_yielder, NULL), 0);
            assert_int_equal(csp_go(spin_sleeper_ignoring_errors, NULL), 0);
            assert_int_equal(csp_go(spin_waiter_ignoring_errors, NULL), 0);
        }
        while (atomic_load(&spin_started) < 12)
            ms_sleep(1);
        ms_sleep(5);
        csp_time_t t0 = csp_now();
        tc_watchdog_start(20, "csp_shutdown with tasks looping on failing blocking calls");
        csp_shutdown();
        tc_watchdog_stop();
        csp_duration_t took = csp_now() - t0;
        print_message("workers %d: shutdown with busy tasks took %.1f ms\n",
                      tc_worker_counts[w], (double)took / 1e6);
        assert_true(took < 3 * CSP_SECOND);
        assert_int_equal(csp_workers(), 0);
    }
}

/* ------------------------------------------------------------------------ */
/* init/shutdown cycles, mixed with csp_run                                  */

static csp_wg_t cy_wg;
static atomic_int cy_ran;

static void cy_task(void *arg)
{
    (void)arg;
    atomic_fetch_add(&cy_ran, 1);
    csp_sleep(100 * CSP_MICROSECOND);
    csp_wg_done(&cy_wg);
}

static void cy_parked(void *arg)
{
    (void)arg;
    csp_sleep(3600 * CSP_SECOND);
}

static void test_init_shutdown_cycles(void **state)
{
    (void)state;
    for (int cycle = 0; cycle < 10; cycle++) {
        TC_RESET();
        atomic_store(&cy_ran, 0);
        memset(&cy_wg, 0, sizeof cy_wg);
        csp_config_t cfg = { .workers = 1 + cycle % 4,
                             .spawn_policy = cycle % 2 ? CSP_SPAWN_CHILD_FIRST
                                                       : CSP_SPAWN_HELP_FIRST };
        assert_int_equal(csp_init(&cfg), 0);
        assert_int_equal(csp_workers(), cfg.workers);
        csp_wg_add(&cy_wg, 50);
        for (int i = 0; i < 50; i++)
            assert_int_equal(csp_go(cy_task, NULL), 0);
        for (int i = 0; i < 20; i++)
            assert_int_equal(csp_go(cy_parked, NULL), 0); /* left blocked */
        assert_int_equal(csp_wg_wait(&cy_wg), 0);
        assert_int_equal(atomic_load(&cy_ran), 50);
        csp_shutdown();
        TC_ASSERT_CLEAN();
        assert_int_equal(csp_workers(), 0);
        assert_int_equal(csp_go(noop, NULL), CSP_ESHUTDOWN);
        /* csp_run works between the cycles */
        if (cycle % 3 == 0) {
            cfg.workers = 2;
            assert_int_equal(csp_run(noop, NULL, &cfg), 0);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* plain threads spawning while the runtime shuts down                       */

static atomic_int sp_stop;
static atomic_long sp_spawned;

static void *sp_thread(void *arg)
{
    (void)arg;
    for (;;) {
        int r = csp_go(noop, NULL);
        if (r == CSP_ESHUTDOWN)
            break;
        TCHECK_EQ(r, 0);
        atomic_fetch_add(&sp_spawned, 1);
        if (atomic_load(&sp_stop))
            break;
    }
    return NULL;
}

/* Plain threads keep spawning while csp_shutdown runs: every csp_go either
 * succeeds or returns CSP_ESHUTDOWN; nothing may touch the runtime's memory
 * after it is torn down. */
static void test_shutdown_while_spawning(void **state)
{
    (void)state;
#if defined(TC_TSAN)
    const int cycles = 6;
#else
    const int cycles = 100;
#endif
    for (int cycle = 0; cycle < cycles; cycle++) {
        TC_RESET();
        atomic_store(&sp_stop, 0);
        atomic_store(&sp_spawned, 0);
        csp_config_t cfg = { .workers = 1 + cycle % 3 };
        assert_int_equal(csp_init(&cfg), 0);
        pthread_t th[4];
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_create(&th[i], NULL, sp_thread, NULL), 0);
        while (atomic_load(&sp_spawned) < 20)
            ms_sleep(1);
        csp_shutdown();
        /* the spawners see CSP_ESHUTDOWN (no runtime) and stop */
        for (int i = 0; i < 4; i++)
            assert_int_equal(pthread_join(th[i], NULL), 0);
        TC_ASSERT_CLEAN();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_plain_threads),
        cmocka_unit_test(test_shutdown_blocked_tasks),
        cmocka_unit_test(test_shutdown_blocked_threads),
        cmocka_unit_test(test_init_shutdown_cycles),
        /* last: while they fail, they crash or hang */
        cmocka_unit_test(test_shutdown_while_spawning),
        cmocka_unit_test(test_shutdown_busy_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
