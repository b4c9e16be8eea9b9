/* ctest-timeout: 120 */
/* The runtime's teardown when csp_run's main task returns while other tasks
 * were woken but have not run yet, or are still blocked, on channels the
 * program has already released. A blocked (or woken, not yet resumed)
 * operation keeps its channel alive, and teardown unlinks it and drops that
 * reference: no hang (teardown once spun on a freed channel's lock), no use
 * after free (ASan), no leak (LeakSanitizer). Every worker count, repeated.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"

#define NRECV 64

static atomic_int td_parked;

static void receiver(void *arg)
{
    csp_chan_t *c = arg;
    int v;
    atomic_fetch_add(&td_parked, 1);
    (void)csp_chan_recv(c, &v); /* may never return: freed by the teardown */
}

static void selector(void *arg)
{
    csp_chan_t **cs = arg;
    int v;
    csp_case_t cases[] = { CSP_RECV_CASE(cs[0], &v), CSP_RECV_CASE(cs[1], &v) };
    atomic_fetch_add(&td_parked, 1);
    (void)csp_select(cases, 2, CSP_FOREVER);
}

/* Wakes half the receivers (they do not get to run before main returns on
 * one worker), leaves the rest blocked, and releases everything. */
static void woken_main(void *arg)
{
    (void)arg;
    csp_chan_t *c = csp_chan_make(sizeof(int), 0);
    static csp_chan_t *pair[2];
    pair[0] = csp_chan_make(sizeof(int), 0);
    pair[1] = csp_chan_make(sizeof(int), 0);
    TCHECK(c && pair[0] && pair[1]);
    atomic_store(&td_parked, 0);
    for (int i = 0; i < NRECV; i++)
        TCHECK_EQ(csp_go(receiver, c), 0);
    for (int i = 0; i < 8; i++)
        TCHECK_EQ(csp_go(selector, pair), 0);
    while (atomic_load(&td_parked) < NRECV + 8)
        csp_yield();
    for (int i = 0; i < 50; i++)
        csp_yield(); /* let them all park */
    for (int v = 0; v < NRECV / 2; v++)
        TCHECK_EQ(csp_chan_send(c, &v), 0); /* wakes a receiver each */
    int v = 1;
    TCHECK_EQ(csp_chan_send(pair[0], &v), 0); /* one selector fires; its other case stays queued */
    csp_chan_release(c);
    csp_chan_release(pair[0]);
    csp_chan_release(pair[1]);
    /* return at once: woken tasks have not run; the others still block */
}

static void test_teardown_woken_and_blocked(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof tc_worker_counts / sizeof tc_worker_counts[0]; k++)
        for (int rep = 0; rep < 5; rep++) {
            tc_watchdog_start(60, "csp_run (teardown with woken tasks)");
            T_RUN(woken_main, NULL, tc_worker_counts[k], CSP_SPAWN_HELP_FIRST);
            tc_watchdog_stop();
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_teardown_woken_and_blocked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
