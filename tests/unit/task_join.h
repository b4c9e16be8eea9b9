/* Joined runs for the channel and select tests: every helper task started
 * with go_joined() is waited for before the main task returns (J_RUN), so no
 * test leaves a task parked when csp_run returns. Include after
 * task_check.h. */
#ifndef CSP_TEST_TASK_JOIN_H
#define CSP_TEST_TASK_JOIN_H

#include <stdlib.h>

#include "task_check.h"

/* Every helper task is joined before the main task returns (go_joined,
 * J_RUN): a task left parked or runnable when csp_run returns is freed
 * without being resumed, and in ASan builds the poisoned redzones of its
 * frames then outlive it (see the report on runtime teardown). */
static csp_wg_t join_wg;
typedef struct {
    void (*fn)(void *);
    void *arg;
} join_rec_t;

static void join_tramp(void *p)
{
    join_rec_t r = *(join_rec_t *)p;
    free(p);
    r.fn(r.arg);
    csp_wg_done(&join_wg);
}

static int go_joined(void (*fn)(void *), void *arg)
{
    join_rec_t *r = malloc(sizeof *r);
    if (!r)
        return CSP_ENOMEM;
    r->fn = fn;
    r->arg = arg;
    csp_wg_add(&join_wg, 1);
    int rc = csp_go(join_tramp, r);
    if (rc != 0) {
        free(r);
        csp_wg_done(&join_wg);
    }
    return rc;
}

static void (*jm_fn)(void *);
static void *jm_arg;

static void joined_main(void *a)
{
    (void)a;
    jm_fn(jm_arg);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
}

/* T_RUN, then waits for every task started with go_joined */
#define J_RUN(fn, arg, nw, pol)                                                \
    do {                                                                       \
        jm_fn = (fn);                                                          \
        jm_arg = (arg);                                                        \
        T_RUN(joined_main, NULL, (nw), (pol));                                 \
    } while (0)

#endif /* CSP_TEST_TASK_JOIN_H */
