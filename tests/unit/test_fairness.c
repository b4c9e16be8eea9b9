/* ctest-timeout: 120 */
/* Scheduling fairness without preemption: tasks that keep readying each other
 * through runnext must not starve older runnable tasks. Two producer ->
 * forwarder chains feed one unbuffered channel read by the main task; chain A
 * has one hop more than chain B, so with a LIFO-only policy for displaced
 * runnext tasks (the bug this guards against) chain A never delivered a
 * value in 5,000,000 of chain B's. Every worker count, both spawn policies,
 * repeated.
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

typedef struct {
    csp_chan_t *in, *out;
} fw_t;

static csp_wg_t fw_wg = CSP_WG_INIT;

static void producer(void *arg)
{
    csp_chan_t *c = arg;
    int v = 1;
    while (csp_chan_send(c, &v) == 0)
        ;
    csp_wg_done(&fw_wg);
}

static void producer_b(void *arg)
{
    csp_chan_t *c = arg;
    int v = 100;
    while (csp_chan_send(c, &v) == 0)
        ;
    csp_wg_done(&fw_wg);
}

static void forwarder(void *arg)
{
    fw_t *f = arg;
    int v;
    while (csp_chan_recv(f->in, &v) == 0 && csp_chan_send(f->out, &v) == 0)
        ;
    csp_chan_close(f->out); /* unblocks the producer upstream: close the input too */
    csp_chan_close(f->in);
    csp_wg_done(&fw_wg);
}

/* The longest run of chain-B values seen before a chain-A value, over
 * `want_a` values of chain A. */
static void chains_main(void *arg)
{
    long *worst = arg;
    csp_chan_t *a0 = csp_chan_make(sizeof(int), 0), *a1 = csp_chan_make(sizeof(int), 0);
    csp_chan_t *b0 = csp_chan_make(sizeof(int), 0), *merged = csp_chan_make(sizeof(int), 0);
    TCHECK(a0 && a1 && b0 && merged);
    fw_t fa1 = { a0, a1 }, fa2 = { a1, merged }, fb = { b0, merged };
    csp_wg_add(&fw_wg, 5);
    TCHECK_EQ(csp_go(producer, a0), 0);
    TCHECK_EQ(csp_go(forwarder, &fa1), 0);
    TCHECK_EQ(csp_go(forwarder, &fa2), 0);
    TCHECK_EQ(csp_go(producer_b, b0), 0);
    TCHECK_EQ(csp_go(forwarder, &fb), 0);
    long run = 0, got_a = 0, got = 0;
    *worst = 0;
    const long limit = 2000000; /* a starving scheduler gives up here */
    while (got_a < 20 && got < limit) {
        int v;
        TCHECK_EQ(csp_chan_recv(merged, &v), 0);
        got++;
        if (v == 1) {
            got_a++;
            if (run > *worst)
                *worst = run;
            run = 0;
        } else {
            run++;
        }
    }
    if (run > *worst)
        *worst = run;
    /* tear down: closing merged stops both last forwarders, which close
     * their inputs in turn, back to the producers */
    csp_chan_close(merged);
    int v;
    while (csp_chan_try_recv(merged, &v) == 0)
        ;
    TCHECK_EQ(csp_wg_wait(&fw_wg), 0);
    csp_chan_release(a0);
    csp_chan_release(a1);
    csp_chan_release(b0);
    csp_chan_release(merged);
}

static void test_chains_not_starved(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof tc_worker_counts / sizeof tc_worker_counts[0]; k++)
        for (int pol = 0; pol < 2; pol++)
            for (int rep = 0; rep < 3; rep++) {
                long worst = -1;
                T_RUN(chains_main, &worst, tc_worker_counts[k],
                      pol ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST);
                /* one worker: the scheduler alone decides, and it gives an
                 * older runnable task a turn every few dozen picks (the bound
                 * is generous). Several workers on a loaded machine: the OS
                 * may stall a worker for a time slice, so only starvation
                 * (no chain-A value in 2,000,000) fails. */
                long bound = tc_worker_counts[k] == 1 ? 10000 : 1999999;
                if (worst > bound)
                    fail_msg("workers %d policy %d: chain A waited for %ld values of chain B",
                             tc_worker_counts[k], pol, worst);
            }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chains_not_starved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
