/* ctest-timeout: 180 */
/* csp_errgroup_t (golang.org/x/sync/errgroup): wait returns 0 when no
 * function fails and the first error when some do (one of them; the first,
 * by construction, when the others fail only after the group's context was
 * cancelled); with_ctx: the derived context is cancelled (cause: the error)
 * on the first error, so the others stop early, and when wait returns;
 * set_limit: never more than limit functions at once, try_go's CSP_EAGAIN,
 * CSP_EINVAL while functions run and for 0; 10,000 functions; reuse after
 * wait; freeing the group right after wait; static initialisation; plain
 * threads; NULL arguments.
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

#include "task_join.h"

#define MS CSP_MILLISECOND

#if defined(CSP_TEST_SANITIZER) && CSP_TEST_SANITIZER
#  define EG_SANITIZER 1
#else
#  define EG_SANITIZER 0
#endif

static const int eg_workers[] = { 1, 2, 4 };
#define EG_NW ((int)(sizeof eg_workers / sizeof eg_workers[0]))

#define RUN_ALL(fn, reps)                                                      \
    do {                                                                       \
        for (int w_ = 0; w_ < EG_NW; w_++)                                     \
            for (int r_ = 0; r_ < (reps); r_++)                                \
                J_RUN((fn), NULL, eg_workers[w_],                              \
                      (r_ & 1) ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST); \
    } while (0)

static atomic_int ran;

static int fn_ok(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ran, 1);
    return 0;
}

static int fn_ret(void *arg)
{
    atomic_fetch_add(&ran, 1);
    return (int)(intptr_t)arg;
}

/* ------------------------------------------------------------------------ */
/* NULL arguments, static initialisation                                     */

static csp_errgroup_t file_scope_group = CSP_ERRGROUP_INIT;

static void null_checks(void)
{
    csp_errgroup_t g;
    csp_ctx_t *out = (csp_ctx_t *)&g;
    TCHECK_EQ(csp_errgroup_init(NULL), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_with_ctx(NULL, csp_ctx_background(), &out), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_init(&g), 0);
    TCHECK_EQ(csp_errgroup_with_ctx(&g, NULL, &out), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_with_ctx(&g, csp_ctx_background(), NULL), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_set_limit(NULL, 1), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_go(NULL, fn_ok, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_try_go(NULL, fn_ok, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_go(&g, NULL, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_try_go(&g, NULL, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_wait(NULL), CSP_EINVAL);
    /* an empty group waits at once */
    TCHECK_EQ(csp_errgroup_init(&g), 0);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    TCHECK_EQ(csp_errgroup_wait(&file_scope_group), 0);
    csp_errgroup_t z;
    memset(&z, 0, sizeof z);
    TCHECK_EQ(csp_errgroup_wait(&z), 0);
    csp_errgroup_t st = CSP_ERRGROUP_INIT;
    TCHECK_EQ(csp_errgroup_wait(&st), 0);
    /* limit 0 is refused, a negative limit means none */
    TCHECK_EQ(csp_errgroup_set_limit(&g, 0), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_set_limit(&g, -1), 0);
    TCHECK_EQ(csp_errgroup_set_limit(&g, 3), 0);
    TCHECK_EQ(csp_errgroup_set_limit(&g, 0), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
}

static void static_main(void *arg)
{
    (void)arg;
    null_checks();
    /* the file-scope group, and a zeroed one, run functions */
    atomic_store(&ran, 0);
    for (int i = 0; i < 10; i++)
        TCHECK_EQ(csp_errgroup_go(&file_scope_group, fn_ok, NULL), 0);
    TCHECK_EQ(csp_errgroup_wait(&file_scope_group), 0);
    TCHECK_EQ(atomic_load(&ran), 10);
    csp_errgroup_t z;
    memset(&z, 0, sizeof z);
    TCHECK_EQ(csp_errgroup_go(&z, fn_ret, (void *)(intptr_t)-9), 0);
    TCHECK_EQ(csp_errgroup_wait(&z), -9);
    TCHECK_EQ(atomic_load(&ran), 11);
    /* re-initialised, the file-scope group is reusable */
    TCHECK_EQ(csp_errgroup_init(&file_scope_group), 0);
}

static void test_eg_null_and_static(void **state)
{
    (void)state;
    TC_RESET();
    null_checks(); /* plain thread, no runtime */
    TC_ASSERT_CLEAN();
    RUN_ALL(static_main, 1);
}

/* ------------------------------------------------------------------------ */
/* wait: 0 when none fail, the first error when some do                      */

static int fn_sleep_ret(void *arg)
{
    intptr_t v = (intptr_t)arg;
    /* arg: -(1000 + delay_ms) fails after delay_ms; >= 0 succeeds after arg ms */
    csp_sleep((v < 0 ? -(v + 1000) : v) * MS);
    atomic_fetch_add(&ran, 1);
    return v < 0 ? (int)v : 0;
}

static void first_error_main(void *arg)
{
    (void)arg;
    csp_errgroup_t g;
    /* none fail */
    TCHECK_EQ(csp_errgroup_init(&g), 0);
    atomic_store(&ran, 0);
    for (int i = 0; i < 20; i++)
        TCHECK_EQ(csp_errgroup_go(&g, fn_ok, NULL), 0);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    TCHECK_EQ(atomic_load(&ran), 20);
    TCHECK_EQ(csp_errgroup_wait(&g), 0); /* again: at once */

    /* several fail: wait waits for all and returns one of their errors;
     * the one that fails 40 ms before the others is the first */
    TCHECK_EQ(csp_errgroup_init(&g), 0);
    atomic_store(&ran, 0);
    TCHECK_EQ(csp_errgroup_go(&g, fn_sleep_ret, (void *)(intptr_t)(-1000 - 45)), 0);
    TCHECK_EQ(csp_errgroup_go(&g, fn_sleep_ret, (void *)(intptr_t)3), 0);
    TCHECK_EQ(csp_errgroup_go(&g, fn_sleep_ret, (void *)(intptr_t)(-1000 - 5)), 0);
    TCHECK_EQ(csp_errgroup_go(&g, fn_sleep_ret, (void *)(intptr_t)(-1000 - 46)), 0);
    TCHECK_EQ(csp_errgroup_go(&g, fn_sleep_ret, (void *)(intptr_t)50), 0);
    int r = csp_errgroup_wait(&g);
    TCHECK_EQ(atomic_load(&ran), 5); /* every function returned first */
    TCHECK_EQ(r, -1005);

    /* errors need not be CSP codes: any non-zero int, positive too */
    TCHECK_EQ(csp_errgroup_init(&g), 0);
    TCHECK_EQ(csp_errgroup_go(&g, fn_ret, (void *)(intptr_t)7), 0);
    TCHECK_EQ(csp_errgroup_wait(&g), 7);
}

static void test_eg_first_error(void **state)
{
    (void)state;
    RUN_ALL(first_error_main, 1);
}

/* deterministic: function 0 fails at once; the others wait until the
 * group's context is done and only then fail, each with its own error. The
 * first error is function 0's every time. */
typedef struct {
    csp_ctx_t *ctx;
    int        idx;
} de_arg_t;

static int de_fn(void *arg)
{
    de_arg_t *a = arg;
    if (a->idx == 0)
        return -500;
    TCHECK_EQ(csp_ctx_wait(a->ctx), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(a->ctx), -500);
    return -500 - a->idx;
}

static void deterministic_main(void *arg)
{
    (void)arg;
    enum { N = 16 };
    for (int rep = 0; rep < 20; rep++) {
        csp_errgroup_t g;
        csp_ctx_t *ctx = NULL;
        TCHECK_EQ(csp_errgroup_with_ctx(&g, csp_ctx_background(), &ctx), 0);
        TCHECK(ctx != NULL);
        de_arg_t args[N];
        /* the failing one is started last: it doesn't win by starting first */
        for (int i = N - 1; i >= 0; i--) {
            args[i] = (de_arg_t){ ctx, i };
            TCHECK_EQ(csp_errgroup_go(&g, de_fn, &args[i]), 0);
        }
        TCHECK_EQ(csp_errgroup_wait(&g), -500);
    }
}

static void test_eg_first_error_deterministic(void **state)
{
    (void)state;
    RUN_ALL(deterministic_main, 2);
}

/* ------------------------------------------------------------------------ */
/* with_ctx: cancelled on the first error, others stop early; cancelled when */
/* wait returns; the parent is never touched                                 */

static atomic_int ec_iters, ec_stopped;

static int ec_worker(void *arg)
{
    csp_ctx_t *ctx = arg;
    for (int i = 0; i < 10000; i++) {
        if (csp_ctx_err(ctx)) {
            atomic_fetch_add(&ec_stopped, 1);
            return csp_ctx_err(ctx); /* like Go: return ctx.Err() */
        }
        atomic_fetch_add(&ec_iters, 1);
        csp_sleep(CSP_MILLISECOND / 2);
    }
    return 0;
}

static int ec_failer(void *arg)
{
    (void)arg;
    csp_sleep(3 * MS);
    return -4444;
}

static void ctx_main(void *arg)
{
    (void)arg;
    csp_ctx_t *parent = csp_ctx_with_cancel(csp_ctx_background());
    csp_errgroup_t g;
    csp_ctx_t *ctx = NULL;
    TCHECK_EQ(csp_errgroup_with_ctx(&g, parent, &ctx), 0);
    TCHECK(ctx != NULL && ctx != parent);
    TCHECK_EQ(csp_ctx_err(ctx), 0);
    csp_ctx_retain(ctx); /* keep it past wait */
    atomic_store(&ec_iters, 0);
    atomic_store(&ec_stopped, 0);
    enum { NW = 8 };
    for (int i = 0; i < NW; i++)
        TCHECK_EQ(csp_errgroup_go(&g, ec_worker, ctx), 0);
    TCHECK_EQ(csp_errgroup_go(&g, ec_failer, NULL), 0);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_errgroup_wait(&g), -4444); /* the first error, not ECANCELED */
    TCHECK(csp_now() - t0 < 2 * CSP_SECOND); /* they stopped early */
    TCHECK_EQ(atomic_load(&ec_stopped), NW);
    TCHECK(atomic_load(&ec_iters) < NW * 10000);
    TCHECK_EQ(csp_ctx_err(ctx), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(ctx), -4444); /* the cause is the error */
    TCHECK_EQ(csp_ctx_err(parent), 0);
    csp_ctx_release(ctx);

    /* no error: the context is cancelled when wait returns, not before */
    TCHECK_EQ(csp_errgroup_with_ctx(&g, parent, &ctx), 0);
    csp_ctx_retain(ctx);
    atomic_store(&ran, 0);
    for (int i = 0; i < 5; i++)
        TCHECK_EQ(csp_errgroup_go(&g, fn_sleep_ret, (void *)(intptr_t)(i + 1)), 0);
    csp_sleep(MS / 2);
    TCHECK_EQ(csp_ctx_err(ctx), 0);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    TCHECK_EQ(atomic_load(&ran), 5);
    TCHECK_EQ(csp_ctx_err(ctx), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(ctx), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_err(parent), 0);
    csp_ctx_release(ctx);

    /* the parent's cancel reaches the group's context */
    TCHECK_EQ(csp_errgroup_with_ctx(&g, parent, &ctx), 0);
    atomic_store(&ec_stopped, 0);
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(csp_errgroup_go(&g, ec_worker, ctx), 0);
    csp_sleep(2 * MS);
    csp_ctx_cancel_cause(parent, -77);
    TCHECK_EQ(csp_errgroup_wait(&g), CSP_ECANCELED); /* what the workers returned */
    TCHECK_EQ(atomic_load(&ec_stopped), 4);

    /* a group under an already-cancelled parent: its context starts done */
    TCHECK_EQ(csp_errgroup_with_ctx(&g, parent, &ctx), 0);
    TCHECK_EQ(csp_ctx_err(ctx), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(ctx), -77);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    csp_ctx_release(parent);
}

static void test_eg_with_ctx(void **state)
{
    (void)state;
    RUN_ALL(ctx_main, 2);
}

/* ------------------------------------------------------------------------ */
/* set_limit                                                                 */

static atomic_int lim_running, lim_max, lim_limit, lim_total;

static int lim_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;
    int now = atomic_fetch_add(&lim_running, 1) + 1;
    int m = atomic_load(&lim_max);
    while (now > m && !atomic_compare_exchange_weak(&lim_max, &m, now))
        ;
    if (now > atomic_load(&lim_limit))
        tc_fail(__FILE__, __LINE__, "%d running with limit %d", now, atomic_load(&lim_limit));
    if (i < atomic_load(&lim_limit)) {
        /* the first `limit` ones wait until all of them run: the limit is
         * reached, so a broken limit would show as more than limit */
        csp_time_t until = csp_deadline_after(5 * CSP_SECOND);
        while (atomic_load(&lim_running) < atomic_load(&lim_limit) && csp_now() < until)
            csp_sleep(CSP_MILLISECOND / 4);
    } else if (i % 3 == 0) {
        csp_sleep(CSP_MILLISECOND / 4);
    } else {
        csp_yield();
    }
    atomic_fetch_add(&lim_total, 1);
    atomic_fetch_sub(&lim_running, 1);
    return 0;
}

static void limit_main(void *arg)
{
    (void)arg;
    const int limits[] = { 1, 3, 8 };
    for (int k = 0; k < 3; k++) {
        int limit = limits[k];
        csp_errgroup_t g;
        TCHECK_EQ(csp_errgroup_init(&g), 0);
        TCHECK_EQ(csp_errgroup_set_limit(&g, limit), 0);
        atomic_store(&lim_running, 0);
        atomic_store(&lim_max, 0);
        atomic_store(&lim_total, 0);
        atomic_store(&lim_limit, limit);
        const int n = 200;
        for (intptr_t i = 0; i < n; i++)
            TCHECK_EQ(csp_errgroup_go(&g, lim_fn, (void *)i), 0);
        TCHECK_EQ(csp_errgroup_wait(&g), 0);
        TCHECK_EQ(atomic_load(&lim_total), n);
        TCHECK_EQ(atomic_load(&lim_max), limit);
    }
}

static void test_eg_limit(void **state)
{
    (void)state;
    RUN_ALL(limit_main, 2);
}

/* try_go at the limit, set_limit while running */
static csp_chan_t *gate;

static int gated_fn(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_chan_recv(gate, NULL), CSP_ECLOSED);
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void try_go_main(void *arg)
{
    (void)arg;
    csp_errgroup_t g;
    TCHECK_EQ(csp_errgroup_init(&g), 0);
    TCHECK_EQ(csp_errgroup_set_limit(&g, 2), 0);
    gate = csp_chan_make(0, 0);
    atomic_store(&ran, 0);
    TCHECK_EQ(csp_errgroup_try_go(&g, gated_fn, NULL), 0);
    TCHECK_EQ(csp_errgroup_go(&g, gated_fn, NULL), 0);
    /* at the limit: try_go refuses and runs nothing */
    for (int i = 0; i < 5; i++)
        TCHECK_EQ(csp_errgroup_try_go(&g, fn_ok, NULL), CSP_EAGAIN);
    /* functions are running: set_limit refuses, the limit is unchanged */
    TCHECK_EQ(csp_errgroup_set_limit(&g, 10), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_set_limit(&g, -1), CSP_EINVAL);
    TCHECK_EQ(csp_errgroup_try_go(&g, fn_ok, NULL), CSP_EAGAIN);
    csp_sleep(MS);
    TCHECK_EQ(atomic_load(&ran), 0);
    csp_chan_close(gate);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    TCHECK_EQ(atomic_load(&ran), 2);
    /* after they finished, a slot is free again, and the limit can change */
    TCHECK_EQ(csp_errgroup_try_go(&g, fn_ok, NULL), 0);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    TCHECK_EQ(atomic_load(&ran), 3);
    TCHECK_EQ(csp_errgroup_set_limit(&g, 1), 0);
    TCHECK_EQ(csp_errgroup_set_limit(&g, -1), 0); /* no limit */
    /* no limit: many at once */
    csp_chan_release(gate);
    gate = csp_chan_make(0, 0);
    for (int i = 0; i < 50; i++)
        TCHECK_EQ(csp_errgroup_try_go(&g, gated_fn, NULL), 0);
    csp_chan_close(gate);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    TCHECK_EQ(atomic_load(&ran), 53);
    csp_chan_release(gate);
}

static void test_eg_try_go_and_set_limit(void **state)
{
    (void)state;
    RUN_ALL(try_go_main, 2);
}

/* a blocked go waits for a slot, in a task and on a plain thread */
static int slow_fn(void *arg)
{
    (void)arg;
    csp_sleep(2 * MS);
    atomic_fetch_add(&ran, 1);
    return 0;
}

static void blocked_go_main(void *arg)
{
    (void)arg;
    csp_errgroup_t g;
    TCHECK_EQ(csp_errgroup_init(&g), 0);
    TCHECK_EQ(csp_errgroup_set_limit(&g, 1), 0);
    atomic_store(&ran, 0);
    csp_time_t t0 = csp_now();
    for (int i = 0; i < 5; i++)
        TCHECK_EQ(csp_errgroup_go(&g, slow_fn, NULL), 0);
    /* the fifth go returned only when the fourth function had finished */
    TCHECK(atomic_load(&ran) >= 4);
    TCHECK(csp_now() - t0 >= 8 * MS);
    TCHECK_EQ(csp_errgroup_wait(&g), 0);
    TCHECK_EQ(atomic_load(&ran), 5);
}

static void test_eg_go_waits_for_slot(void **state)
{
    (void)state;
    RUN_ALL(blocked_go_main, 1);
}

/* ------------------------------------------------------------------------ */
/* 10,000 functions                                                          */

#define MANY_N TC_SCALE_LIVE(10000)
static atomic_llong many_sum;

static int many_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&many_sum, i);
    if (i % 64 == 0)
        csp_yield();
    return 0;
}

static int many_fail_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&many_sum, i);
    return i == MANY_N / 2 ? -31 : 0;
}

static void many_main(void *arg)
{
    (void)arg;
    const long long expect = (long long)MANY_N * (MANY_N - 1) / 2;
    for (int variant = 0; variant < 3; variant++) {
        csp_errgroup_t g;
        csp_ctx_t *ctx = NULL;
        if (variant == 2)
            TCHECK_EQ(csp_errgroup_with_ctx(&g, csp_ctx_background(), &ctx), 0);
        else
            TCHECK_EQ(csp_errgroup_init(&g), 0);
        if (variant == 1)
            TCHECK_EQ(csp_errgroup_set_limit(&g, 8), 0);
        atomic_store(&many_sum, 0);
        for (intptr_t i = 0; i < MANY_N; i++)
            TCHECK_EQ(csp_errgroup_go(&g, variant == 2 ? many_fail_fn : many_fn, (void *)i), 0);
        TCHECK_EQ(csp_errgroup_wait(&g), variant == 2 ? -31 : 0);
        TCHECK_EQ(atomic_load(&many_sum), expect);
    }
}

static void test_eg_many(void **state)
{
    (void)state;
    for (int w = 0; w < EG_NW; w++)
        J_RUN(many_main, NULL, eg_workers[w], CSP_SPAWN_HELP_FIRST);
    J_RUN(many_main, NULL, 2, CSP_SPAWN_CHILD_FIRST);
}

/* ------------------------------------------------------------------------ */
/* the group freed as soon as wait returns (ASan: no late access)            */

static void free_after_wait_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 200; round++) {
        csp_errgroup_t *g = malloc(sizeof *g);
        TCHECK(g != NULL);
        if (!g)
            return;
        csp_ctx_t *ctx = NULL;
        if (round & 1)
            TCHECK_EQ(csp_errgroup_with_ctx(g, csp_ctx_background(), &ctx), 0);
        else
            TCHECK_EQ(csp_errgroup_init(g), 0);
        if (round % 3 == 0)
            TCHECK_EQ(csp_errgroup_set_limit(g, 2), 0);
        int k = 1 + round % 7;
        for (int i = 0; i < k; i++)
            TCHECK_EQ(csp_errgroup_go(g, fn_ret, (void *)(intptr_t)(i == 2 ? -2 : 0)), 0);
        TCHECK_EQ(csp_errgroup_wait(g), k > 2 ? -2 : 0);
        memset(g, 0xA5, sizeof *g);
        free(g);
    }
}

static void test_eg_free_after_wait(void **state)
{
    (void)state;
    RUN_ALL(free_after_wait_main, 1);
}

/* ------------------------------------------------------------------------ */
/* several waiters on one group (WaitGroup allows it; so does Go's errgroup) */

static csp_errgroup_t mw_group;
static atomic_int mw_results;

static void mw_waiter(void *arg)
{
    (void)arg;
    int r = csp_errgroup_wait(&mw_group);
    TCHECK_EQ(r, -8);
    atomic_fetch_add(&mw_results, 1);
}

static int mw_fn(void *arg)
{
    (void)arg;
    csp_sleep(2 * MS);
    return -8;
}

static void multi_wait_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 30; round++) {
        csp_ctx_t *ctx;
        TCHECK_EQ(csp_errgroup_with_ctx(&mw_group, csp_ctx_background(), &ctx), 0);
        atomic_store(&mw_results, 0);
        for (int i = 0; i < 3; i++)
            TCHECK_EQ(csp_errgroup_go(&mw_group, mw_fn, NULL), 0);
        for (int i = 0; i < 4; i++)
            TCHECK_EQ(go_joined(mw_waiter, NULL), 0);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        TCHECK_EQ(atomic_load(&mw_results), 4);
    }
}

static void test_eg_several_waiters(void **state)
{
    (void)state;
    RUN_ALL(multi_wait_main, 1);
}

/* ------------------------------------------------------------------------ */
/* plain threads: go and wait from a thread that is not a task               */

static void *pt_thread(void *arg)
{
    (void)arg;
    csp_errgroup_t g;
    csp_ctx_t *ctx;
    TCHECK_EQ(csp_errgroup_with_ctx(&g, csp_ctx_background(), &ctx), 0);
    TCHECK_EQ(csp_errgroup_set_limit(&g, 2), 0);
    for (int i = 0; i < 20; i++)
        TCHECK_EQ(csp_errgroup_go(&g, slow_fn, NULL), 0); /* blocks this thread for a slot */
    TCHECK_EQ(csp_errgroup_go(&g, fn_ret, (void *)(intptr_t)-6), 0);
    TCHECK_EQ(csp_errgroup_wait(&g), -6);
    return NULL;
}

static void test_eg_plain_threads(void **state)
{
    (void)state;
    for (int w = 0; w < EG_NW; w++) {
        csp_config_t cfg = { .workers = eg_workers[w] };
        TC_RESET();
        assert_int_equal(csp_init(&cfg), 0);
        atomic_store(&ran, 0);
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&th[i], NULL, pt_thread, NULL), 0);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(atomic_load(&ran), 60 + 3);
        csp_shutdown();
        TC_ASSERT_CLEAN();
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_eg_null_and_static),
        cmocka_unit_test(test_eg_first_error),
        cmocka_unit_test(test_eg_first_error_deterministic),
        cmocka_unit_test(test_eg_with_ctx),
        cmocka_unit_test(test_eg_limit),
        cmocka_unit_test(test_eg_try_go_and_set_limit),
        cmocka_unit_test(test_eg_go_waits_for_slot),
        cmocka_unit_test(test_eg_many),
        cmocka_unit_test(test_eg_free_after_wait),
        cmocka_unit_test(test_eg_plain_threads),
        /* last: when it crashes (the bug it was written for), the runtime it
         * leaves behind would fail the tests after it */
        cmocka_unit_test(test_eg_several_waiters),
    };
    if (getenv("CX_FILTER"))
        cmocka_set_test_filter(getenv("CX_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
