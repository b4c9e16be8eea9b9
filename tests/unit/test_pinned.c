/* ctest-timeout: 120 */
/* Migration and pinned tasks.
 *
 *   - An ordinary task that yields many times on 4 workers, with busy tasks
 *     around, may resume on other workers (csp_worker_id() changes - seen,
 *     not required), but its csp_task_id() and the data on its stack stay.
 *   - A CSP_TASK_PINNED task runs only on the worker that spawned it (worker
 *     0 when spawned from a plain thread): csp_worker_id(), pthread_self()
 *     and the address of a thread-local stay the same across 10,000 yields,
 *     sleeps and WaitGroup waits while other tasks keep every worker busy.
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

static atomic_int busy_stop;
static csp_wg_t busy_wg;
static atomic_uint busy_sink;

static void busy(void *arg)
{
    (void)arg;
    unsigned x = 1;
    while (!atomic_load_explicit(&busy_stop, memory_order_relaxed)) {
        for (int i = 0; i < 200; i++)
            x = x * 1103515245u + 12345u;
        csp_yield();
    }
    atomic_store_explicit(&busy_sink, x, memory_order_relaxed);
    csp_wg_done(&busy_wg);
}

static void start_busy(int n)
{
    atomic_store(&busy_stop, 0);
    csp_wg_add(&busy_wg, n);
    for (int i = 0; i < n; i++)
        TCHECK_EQ(csp_go(busy, NULL), 0);
}

static void stop_busy(void)
{
    atomic_store(&busy_stop, 1);
    TCHECK_EQ(csp_wg_wait(&busy_wg), 0);
}

/* ------------------------------------------------------------------------ */
/* migration of ordinary tasks                                               */

enum { MIG_TASKS = 4, MIG_YIELDS = 20000 };
static atomic_int mig_workers_seen[MIG_TASKS];
static atomic_long mig_moves;
static csp_wg_t mig_wg;

static void migrant(void *arg)
{
    int me = (int)(intptr_t)arg;
    uint64_t id = csp_task_id();
    uint64_t stackdata[64];
    for (int i = 0; i < 64; i++)
        stackdata[i] = id * 1000003u + (uint64_t)i * 0x9E3779B97F4A7C15ull;
    volatile double fp = 1.0 + me;
    unsigned seen = 0;
    int last = csp_worker_id();
    long moves = 0;
    for (int k = 0; k < MIG_YIELDS; k++) {
        if (k % 256 == 255)
            TCHECK_EQ(csp_sleep(20 * CSP_MICROSECOND), 0); /* woken wherever the timer runs */
        else
            csp_yield();
        int w = csp_worker_id();
        TCHECK(w >= 0 && w < csp_workers());
        if (w != last)
            moves++;
        last = w;
        seen |= 1u << (w & 31);
        if (csp_task_id() != id)
            TCHECK_EQ(csp_task_id(), id);
        if (k % 64 == 0)
            for (int i = 0; i < 64; i++)
                if (stackdata[i] != id * 1000003u + (uint64_t)i * 0x9E3779B97F4A7C15ull)
                    TCHECK(!"stack data changed across a yield");
        fp = fp * 1.0000001;
    }
    TCHECK(fp > 1.0 + me);
    atomic_store(&mig_workers_seen[me], __builtin_popcount(seen));
    atomic_fetch_add(&mig_moves, moves);
    csp_wg_done(&mig_wg);
}

static void mig_main(void *arg)
{
    (void)arg;
    start_busy(2); /* fewer than the workers: idle workers steal */
    csp_wg_add(&mig_wg, MIG_TASKS);
    for (int i = 0; i < MIG_TASKS; i++)
        TCHECK_EQ(csp_go(migrant, (void *)(intptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&mig_wg), 0);
    stop_busy();
}

static void test_migration_keeps_identity(void **state)
{
    (void)state;
    for (int rep = 0; rep < 3; rep++) {
        memset(&mig_wg, 0, sizeof mig_wg);
        memset(&busy_wg, 0, sizeof busy_wg);
        atomic_store(&mig_moves, 0);
        T_RUN(mig_main, NULL, 4, CSP_SPAWN_HELP_FIRST);
        int maxseen = 0;
        for (int i = 0; i < MIG_TASKS; i++)
            if (atomic_load(&mig_workers_seen[i]) > maxseen)
                maxseen = atomic_load(&mig_workers_seen[i]);
        print_message("4 workers: migrants saw up to %d workers, %ld moves in total\n", maxseen,
                      atomic_load(&mig_moves));
    }
}

/* ------------------------------------------------------------------------ */
/* pinned tasks                                                              */

enum { PIN_ITERS = 10000, PIN_TASKS = 6 };
static __thread int tls_probe;
static atomic_int pin_done;
static csp_wg_t pin_wg;

typedef struct {
    int expect_worker; /* -1: don't know */
    int use_wg;
} pin_arg_t;

static void pin_releaser(void *arg);

static void pinned_task(void *arg)
{
    const pin_arg_t *a = arg;
    int w0 = csp_worker_id();
    if (a->expect_worker >= 0)
        TCHECK_EQ(w0, a->expect_worker);
    pthread_t self = pthread_self();
    int *tls = &tls_probe;
    uint64_t id = csp_task_id();
    int moved = 0;
    for (int k = 0; k < PIN_ITERS; k++) {
        if (k % 500 == 250)
            TCHECK_EQ(csp_sleep((csp_duration_t)(k % 7) * 50 * CSP_MICROSECOND), 0);
        else if (k % 1000 == 999 && a->use_wg) {
            /* park on a WaitGroup released by a task on another worker */
            csp_wg_t wg = CSP_WG_INIT;
            csp_wg_add(&wg, 1);
            TCHECK_EQ(csp_go(pin_releaser, &wg), 0);
            TCHECK_EQ(csp_wg_wait(&wg), 0);
        } else {
            csp_yield();
        }
        if (csp_worker_id() != w0 || !pthread_equal(pthread_self(), self) || &tls_probe != tls)
            moved++;
        if (csp_task_id() != id)
            TCHECK_EQ(csp_task_id(), id);
    }
    TCHECK_EQ(moved, 0);
    atomic_fetch_add(&pin_done, 1);
    csp_wg_done(&pin_wg);
}

static void pin_releaser(void *arg)
{
    csp_wg_t *wg = arg;
    csp_yield();
    csp_wg_done(wg);
}

static pin_arg_t pin_args[PIN_TASKS];

/* Spawns pinned task i from whatever worker the caller is on right now. */
static void spawn_pinned_here(int i, int use_wg)
{
    csp_task_opts_t o = { .name = "pinned", .flags = CSP_TASK_PINNED };
    pin_args[i].expect_worker = csp_worker_id(); /* the spawner's, right now */
    pin_args[i].use_wg = use_wg;
    TCHECK_EQ(csp_go_opts(pinned_task, &pin_args[i], &o), 0);
}

static void pin_spawner(void *arg)
{
    int i = (int)(intptr_t)arg;
    spawn_pinned_here(i, i % 2);
}

static void pin_main(void *arg)
{
    (void)arg;
    start_busy(2 * csp_workers() + 2);
    csp_wg_add(&pin_wg, PIN_TASKS);
    spawn_pinned_here(0, 1);
    spawn_pinned_here(1, 0);
    /* and from tasks that may be on other workers */
    for (int i = 2; i < PIN_TASKS; i++)
        TCHECK_EQ(csp_go(pin_spawner, (void *)(intptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&pin_wg), 0);
    stop_busy();
}

static void test_pinned_never_migrates(void **state)
{
    (void)state;
    static const int ws[] = { 1, 2, 4, 8 };
    for (int k = 0; k < 4; k++)
        for (int p = 0; p < 2; p++) {
            memset(&pin_wg, 0, sizeof pin_wg);
            memset(&busy_wg, 0, sizeof busy_wg);
            atomic_store(&pin_done, 0);
            T_RUN(pin_main, NULL, ws[k], p ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST);
            assert_int_equal(atomic_load(&pin_done), PIN_TASKS);
        }
}

/* Pinned tasks spawned from a plain thread run on worker 0. */
static void test_pinned_from_plain_thread(void **state)
{
    (void)state;
    static const int ws[] = { 1, 3 };
    for (int k = 0; k < 2; k++) {
        TC_RESET();
        memset(&pin_wg, 0, sizeof pin_wg);
        memset(&busy_wg, 0, sizeof busy_wg);
        atomic_store(&pin_done, 0);
        csp_config_t cfg = { .workers = ws[k] };
        assert_int_equal(csp_init(&cfg), 0);
        atomic_store(&busy_stop, 0);
        csp_wg_add(&busy_wg, 6);
        for (int i = 0; i < 6; i++)
            assert_int_equal(csp_go(busy, NULL), 0);
        csp_wg_add(&pin_wg, 3);
        csp_task_opts_t o = { .name = "pinned", .flags = CSP_TASK_PINNED };
        for (int i = 0; i < 3; i++) {
            pin_args[i].expect_worker = 0;
            pin_args[i].use_wg = i % 2;
            assert_int_equal(csp_go_opts(pinned_task, &pin_args[i], &o), 0);
        }
        assert_int_equal(csp_wg_wait(&pin_wg), 0);
        atomic_store(&busy_stop, 1);
        assert_int_equal(csp_wg_wait(&busy_wg), 0);
        csp_shutdown();
        TC_ASSERT_CLEAN();
        assert_int_equal(atomic_load(&pin_done), 3);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_migration_keeps_identity),
        cmocka_unit_test(test_pinned_never_migrates),
        cmocka_unit_test(test_pinned_from_plain_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
