/* ctest-timeout: 300 */
/* A million tasks: spawned and joined (each runs exactly once), and alive at
 * once (all parked on one WaitGroup gate) with the default vm.max_map_count
 * of 65530 - stacks must not be one mapping each. Sanitizer builds divide the
 * counts by 20 (TC_SCALE); TSan allows at most 8128 live tasks, so there the
 * count alive at once is 5000 (TC_SCALE_LIVE).
 */
#define _GNU_SOURCE
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

#include "test_util.h"
#include "unit/task_check.h"

#define MILLION 1000000

static atomic_uchar *ran;  /* per task: how many times it ran */
static atomic_long total;
static csp_wg_t wg, gate;
static atomic_long arrived;
static long n_tasks, n_alive;

static long count_maps(void)
{
    FILE *f = fopen("/proc/self/maps", "r");
    if (!f)
        return -1;
    long n = 0;
    int c;
    while ((c = getc(f)) != EOF)
        if (c == '\n')
            n++;
    fclose(f);
    return n;
}

static long max_map_count(void)
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

static void check_ran_once(void)
{
    long bad = 0;
    for (long i = 0; i < n_tasks; i++)
        if (atomic_load_explicit(&ran[i], memory_order_relaxed) != 1) {
            if (bad++ < 5)
                print_error("task %ld ran %d times\n", i, (int)atomic_load(&ran[i]));
        }
    assert_int_equal(bad, 0);
    assert_int_equal(atomic_load(&total), n_tasks);
}

static void reset(void)
{
    memset((void *)ran, 0, (size_t)n_tasks);
    atomic_store(&total, 0);
    atomic_store(&arrived, 0);
    memset(&wg, 0, sizeof wg);
    memset(&gate, 0, sizeof gate);
}

/* ------------------------------------------------------------------------ */
/* spawn and join a million                                                  */

static void sj_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    atomic_fetch_add_explicit(&ran[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
    csp_wg_done(&wg);
}

static void sj_main(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_wg_add(&wg, (int)n_tasks), 0);
    for (long i = 0; i < n_tasks; i++) {
        int r = csp_go(sj_task, (void *)(uintptr_t)i);
        if (r) {
            TCHECK_EQ(r, 0);
            csp_wg_done(&wg);
        }
    }
    TCHECK_EQ(csp_wg_wait(&wg), 0);
}

static void test_spawn_join_million(void **state)
{
    (void)state;
    static const struct { int workers, policy; } runs[] = {
        { 1, CSP_SPAWN_HELP_FIRST }, { 2, CSP_SPAWN_HELP_FIRST }, { 8, CSP_SPAWN_HELP_FIRST },
        { 2, CSP_SPAWN_CHILD_FIRST },
    };
    for (int k = 0; k < (int)(sizeof runs / sizeof runs[0]); k++) {
        reset();
        csp_time_t t0 = csp_now();
        T_RUN(sj_main, NULL, runs[k].workers, runs[k].policy);
        print_message("workers %d, %s: %ld spawned and joined in %.0f ms\n", runs[k].workers,
                      runs[k].policy ? "child-first" : "help-first", n_tasks,
                      (double)(csp_now() - t0) / 1e6);
        check_ran_once();
    }
}

/* ------------------------------------------------------------------------ */
/* a million alive at once                                                   */

static csp_stats_t parked_stats;
static long parked_maps;

static void parked_task(void *arg)
{
    uintptr_t i = (uintptr_t)arg;
    atomic_fetch_add_explicit(&arrived, 1, memory_order_relaxed);
    int r = csp_wg_wait(&gate);
    if (r != 0)
        TCHECK_EQ(r, 0);
    atomic_fetch_add_explicit(&ran[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&total, 1, memory_order_relaxed);
    csp_wg_done(&wg);
}

static void parked_main(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_wg_add(&gate, 1), 0);
    TCHECK_EQ(csp_wg_add(&wg, (int)n_tasks), 0);
    for (long i = 0; i < n_tasks; i++) {
        int r = csp_go(parked_task, (void *)(uintptr_t)i);
        if (r) {
            TCHECK_EQ(r, 0);
            atomic_fetch_add(&arrived, 1);
            csp_wg_done(&wg);
        }
    }
    while (atomic_load(&arrived) < n_tasks)
        csp_sleep(CSP_MILLISECOND);
    /* every task is parked (or about to park) on the gate */
    TCHECK_EQ(csp_stats(&parked_stats), 0);
    parked_maps = count_maps();
    TCHECK_EQ(atomic_load(&total), 0);
    TCHECK_EQ(csp_wg_done(&gate), 0);
    TCHECK_EQ(csp_wg_wait(&wg), 0);
}

static void test_million_alive(void **state)
{
    (void)state;
    /* first-touching a million fresh stack pages costs seconds on a VM:
     * the full count once (8 workers), a fifth with one worker */
    static const struct { int workers, div; } runs[] = { { 8, 1 }, { 1, 5 } };
    long limit = max_map_count();
    long full = n_alive;
    for (int k = 0; k < 2; k++) {
        const int ws[] = { runs[k].workers };
        n_tasks = full / runs[k].div;
        reset();
        memset(&parked_stats, 0, sizeof parked_stats);
        parked_maps = -1;
        csp_time_t t0 = csp_now();
        T_RUN(parked_main, NULL, ws[0], CSP_SPAWN_HELP_FIRST);
        print_message("workers %d: %ld alive at once (live %llu, stacks %llu, guards %llu, "
                      "%ld mappings of %ld allowed) in %.0f ms\n",
                      ws[0], n_tasks, (unsigned long long)parked_stats.tasks_live,
                      (unsigned long long)parked_stats.stacks_mapped,
                      (unsigned long long)parked_stats.guard_pages, parked_maps, limit,
                      (double)(csp_now() - t0) / 1e6);
        check_ran_once();
        assert_true(parked_stats.tasks_live >= (uint64_t)n_tasks);
        assert_true(parked_stats.stacks_mapped >= (uint64_t)n_tasks);
        assert_true(parked_stats.guard_pages <= parked_stats.stacks_mapped);
        assert_true(parked_maps > 0);
        /* well inside the limit, with room for the rest of the program */
        assert_true(parked_maps < limit - 1000);
    }
    n_tasks = TC_SCALE(MILLION);
}

static int setup(void **state)
{
    (void)state;
    n_tasks = TC_SCALE(MILLION);
    n_alive = TC_SCALE_LIVE(MILLION);
    ran = calloc((size_t)n_tasks, 1);
    return ran ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    free((void *)ran);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spawn_join_million),
        cmocka_unit_test(test_million_alive),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
