/* ctest-timeout: 180 */
/* csp_sem_t (golang.org/x/sync/semaphore.Weighted): weights, try_acquire,
 * bad input leaving the state unchanged, static CSP_SEM_INIT, FIFO order
 * (a large request at the head is not overtaken by later small ones),
 * acquire with a context cancelled (or past its deadline) while waiting
 * acquires nothing and, if it was the head, lets the waiters behind it that
 * now fit get in; a done context still acquires free units; a stress test
 * that never sees more than `size` units in use; plain threads with and
 * without a runtime; shutdown.
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
#define LATE (250 * MS)

#if defined(CSP_TEST_SANITIZER) && CSP_TEST_SANITIZER
#  define SM_SANITIZER 1
#  define SETTLE (10 * MS) /* time for a task to get from "about to acquire" into the queue */
#else
#  define SM_SANITIZER 0
#  define SETTLE (3 * MS)
#endif

static const int sm_workers[] = { 1, 2, 4 };
#define SM_NW ((int)(sizeof sm_workers / sizeof sm_workers[0]))

#define RUN_ALL(fn, reps)                                                      \
    do {                                                                       \
        for (int w_ = 0; w_ < SM_NW; w_++)                                     \
            for (int r_ = 0; r_ < (reps); r_++)                                \
                J_RUN((fn), NULL, sm_workers[w_],                              \
                      (r_ & 1) ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST); \
    } while (0)

/* Waits (polling) until cond holds; gives up after 10 s with a failure
 * instead of hanging the test. */
#define WAIT_FOR(cond)                                                         \
    do {                                                                       \
        csp_time_t wf_until_ = csp_deadline_after(10 * CSP_SECOND);            \
        while (!(cond) && csp_now() < wf_until_)                               \
            csp_sleep(CSP_MILLISECOND / 4);                                    \
        if (!(cond))                                                           \
            tc_fail(__FILE__, __LINE__, "waited 10 s for %s", #cond);          \
    } while (0)

/* Deadline contexts are cancelled by a task the library spawns when the
 * timer fires, holding a reference until it finishes: before a main task
 * returns (which frees tasks that have not run), let such tasks finish. The
 * same path once more, observed through a value_free. */
static atomic_int settle_freed;
static const char settle_key = 0;
static void settle_free(void *v)
{
    (void)v;
    atomic_fetch_add(&settle_freed, 1);
}

static void settle_deadlines(void)
{
    atomic_store(&settle_freed, 0);
    csp_ctx_t *v = csp_ctx_with_value(csp_ctx_background(), &settle_key, NULL, settle_free);
    csp_ctx_t *d = csp_ctx_with_timeout(v, 1 * MS);
    csp_ctx_release(v);
    TCHECK_EQ(csp_ctx_wait(d), CSP_EDEADLINE);
    csp_ctx_release(d);
    csp_time_t until = csp_deadline_after(10 * CSP_SECOND);
    while (atomic_load(&settle_freed) == 0 && csp_now() < until)
        csp_sleep(CSP_MILLISECOND / 2);
    TCHECK_EQ(atomic_load(&settle_freed), 1);
    csp_sleep(CSP_MILLISECOND);
}

/* The units free in s right now, found with try_acquire (and given back).
 * Only meaningful while nobody is queued and nobody else acquires. */
static int64_t free_units(csp_sem_t *s, int64_t size)
{
    for (int64_t n = size; n > 0; n--)
        if (csp_sem_try_acquire(s, n) == 0) {
            TCHECK_EQ(csp_sem_release(s, n), 0);
            return n;
        }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* weights, try_acquire, bad input                                           */

static csp_sem_t file_scope_sem = CSP_SEM_INIT(5);

static void basic_checks(void)
{
    csp_ctx_t *bg = csp_ctx_background();
    csp_sem_t s;
    TCHECK_EQ(csp_sem_init(&s, 10), 0);
    TCHECK_EQ(free_units(&s, 10), 10);
    TCHECK_EQ(csp_sem_acquire(&s, 3, bg), 0);
    TCHECK_EQ(csp_sem_acquire(&s, 4, bg), 0);
    TCHECK_EQ(csp_sem_try_acquire(&s, 4), CSP_EAGAIN); /* 3 left */
    TCHECK_EQ(free_units(&s, 10), 3);
    TCHECK_EQ(csp_sem_try_acquire(&s, 3), 0);
    TCHECK_EQ(csp_sem_try_acquire(&s, 1), CSP_EAGAIN);
    TCHECK_EQ(csp_sem_try_acquire(&s, 0), 0); /* zero always fits an empty queue */
    TCHECK_EQ(csp_sem_acquire(&s, 0, bg), 0);
    /* release above what is held: EINVAL, unchanged */
    TCHECK_EQ(csp_sem_release(&s, 11), CSP_EINVAL);
    TCHECK_EQ(csp_sem_release(&s, 7), 0);
    TCHECK_EQ(csp_sem_release(&s, 4), CSP_EINVAL); /* 3 held */
    TCHECK_EQ(free_units(&s, 10), 7);
    TCHECK_EQ(csp_sem_release(&s, 3), 0);
    TCHECK_EQ(csp_sem_release(&s, 1), CSP_EINVAL);
    TCHECK_EQ(csp_sem_release(&s, 0), 0);
    TCHECK_EQ(free_units(&s, 10), 10);
    /* n > size can never succeed: EINVAL at once, even with a ctx */
    TCHECK_EQ(csp_sem_acquire(&s, 11, bg), CSP_EINVAL);
    TCHECK_EQ(csp_sem_try_acquire(&s, 11), CSP_EINVAL);
    TCHECK_EQ(csp_sem_acquire(&s, INT64_MAX, bg), CSP_EINVAL);
    /* negative */
    TCHECK_EQ(csp_sem_acquire(&s, -1, bg), CSP_EINVAL);
    TCHECK_EQ(csp_sem_try_acquire(&s, -1), CSP_EINVAL);
    TCHECK_EQ(csp_sem_release(&s, -1), CSP_EINVAL);
    TCHECK_EQ(csp_sem_release(&s, INT64_MIN), CSP_EINVAL);
    TCHECK_EQ(free_units(&s, 10), 10);
    /* NULLs */
    TCHECK_EQ(csp_sem_init(NULL, 1), CSP_EINVAL);
    TCHECK_EQ(csp_sem_init(&s, -1), CSP_EINVAL);
    TCHECK_EQ(csp_sem_acquire(NULL, 1, bg), CSP_EINVAL);
    TCHECK_EQ(csp_sem_acquire(&s, 1, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_sem_try_acquire(NULL, 1), CSP_EINVAL);
    TCHECK_EQ(csp_sem_release(NULL, 1), CSP_EINVAL);
    TCHECK_EQ(free_units(&s, 10), 10);
    /* a done context still acquires free units */
    csp_ctx_t *done = csp_ctx_with_cancel(bg);
    csp_ctx_cancel(done);
    TCHECK_EQ(csp_sem_acquire(&s, 6, done), 0);
    TCHECK_EQ(csp_sem_acquire(&s, 4, done), 0);
    /* ... and fails at once, acquiring nothing, when they are not */
    TCHECK_EQ(csp_sem_acquire(&s, 1, done), CSP_ECANCELED);
    csp_ctx_t *dl = csp_ctx_with_deadline(bg, 0);
    TCHECK_EQ(csp_sem_acquire(&s, 1, dl), CSP_EDEADLINE);
    TCHECK_EQ(csp_sem_release(&s, 10), 0);
    TCHECK_EQ(free_units(&s, 10), 10);
    csp_ctx_release(dl);
    csp_ctx_release(done);
    /* size 0: only n == 0 */
    csp_sem_t z;
    TCHECK_EQ(csp_sem_init(&z, 0), 0);
    TCHECK_EQ(csp_sem_try_acquire(&z, 0), 0);
    TCHECK_EQ(csp_sem_acquire(&z, 0, bg), 0);
    TCHECK_EQ(csp_sem_try_acquire(&z, 1), CSP_EINVAL);
    TCHECK_EQ(csp_sem_release(&z, 1), CSP_EINVAL);
    /* static initialisers, at file scope and on the stack */
    csp_sem_t st = CSP_SEM_INIT(3);
    TCHECK_EQ(csp_sem_try_acquire(&st, 3), 0);
    TCHECK_EQ(csp_sem_try_acquire(&st, 1), CSP_EAGAIN);
    TCHECK_EQ(csp_sem_release(&st, 3), 0);
    TCHECK_EQ(free_units(&file_scope_sem, 5), 5);
    TCHECK_EQ(csp_sem_acquire(&file_scope_sem, 5, bg), 0);
    TCHECK_EQ(csp_sem_try_acquire(&file_scope_sem, 1), CSP_EAGAIN);
    TCHECK_EQ(csp_sem_release(&file_scope_sem, 5), 0);
    TCHECK_EQ(csp_sem_acquire(&file_scope_sem, 6, bg), CSP_EINVAL);
    /* huge sizes */
    csp_sem_t big;
    TCHECK_EQ(csp_sem_init(&big, INT64_MAX), 0);
    TCHECK_EQ(csp_sem_acquire(&big, INT64_MAX - 1, bg), 0);
    TCHECK_EQ(csp_sem_try_acquire(&big, 1), 0);
    TCHECK_EQ(csp_sem_try_acquire(&big, 1), CSP_EAGAIN);
    TCHECK_EQ(csp_sem_release(&big, INT64_MAX), 0);
    TCHECK_EQ(csp_sem_try_acquire(&big, INT64_MAX), 0);
    TCHECK_EQ(csp_sem_release(&big, INT64_MAX), 0);
}

static void basic_main(void *arg)
{
    (void)arg;
    basic_checks();
}

static void test_sem_basic(void **state)
{
    (void)state;
    TC_RESET();
    basic_checks(); /* plain thread, no runtime */
    TC_ASSERT_CLEAN();
    RUN_ALL(basic_main, 1);
}

/* ------------------------------------------------------------------------ */
/* FIFO: waiters are served in arrival order; a big one at the head is not  */
/* overtaken                                                                 */

enum { FF_MAX = 8 };
static csp_sem_t ff_sem;
static atomic_int ff_about[FF_MAX];   /* 1: about to call acquire */
static atomic_int ff_got[FF_MAX];     /* order of acquisition, 1-based */
static atomic_int ff_seq;
static atomic_int ff_release_now[FF_MAX];
static int64_t ff_n[FF_MAX];

static void ff_waiter(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_store(&ff_about[i], 1);
    TCHECK_EQ(csp_sem_acquire(&ff_sem, ff_n[i], csp_ctx_background()), 0);
    atomic_store(&ff_got[i], atomic_fetch_add(&ff_seq, 1) + 1);
    while (!atomic_load(&ff_release_now[i]))
        csp_sleep(CSP_MILLISECOND / 4);
    TCHECK_EQ(csp_sem_release(&ff_sem, ff_n[i]), 0);
}

/* Starts waiter i and returns once it is (very probably) queued. */
static void ff_start(intptr_t i)
{
    TCHECK_EQ(go_joined(ff_waiter, (void *)i), 0);
    while (!atomic_load(&ff_about[i]))
        csp_yield();
    csp_sleep(SETTLE);
}

static void fifo_main(void *arg)
{
    (void)arg;
    const int64_t size = 10;
    TCHECK_EQ(csp_sem_init(&ff_sem, size), 0);
    atomic_store(&ff_seq, 0);
    for (int i = 0; i < FF_MAX; i++) {
        atomic_store(&ff_about[i], 0);
        atomic_store(&ff_got[i], 0);
        atomic_store(&ff_release_now[i], 0);
    }
    /* we hold all 10 */
    TCHECK_EQ(csp_sem_acquire(&ff_sem, size, csp_ctx_background()), 0);
    /* waiter 0 wants 10 (the head), then 1..4 want 1 each, 5 and 6 want 6 */
    ff_n[0] = 10;
    ff_n[1] = ff_n[2] = ff_n[3] = ff_n[4] = 1;
    ff_n[5] = ff_n[6] = 6;
    for (intptr_t i = 0; i <= 6; i++)
        ff_start(i);
    /* free 5: small requests would fit, but the head (10) blocks them */
    TCHECK_EQ(csp_sem_release(&ff_sem, 5), 0);
    csp_sleep(SETTLE);
    for (int i = 0; i <= 6; i++)
        TCHECK_EQ(atomic_load(&ff_got[i]), 0);
    TCHECK_EQ(csp_sem_try_acquire(&ff_sem, 1), CSP_EAGAIN); /* queued waiters: no barging */
    /* free the rest: the head gets all 10 */
    TCHECK_EQ(csp_sem_release(&ff_sem, 5), 0);
    WAIT_FOR(atomic_load(&ff_got[0]) != 0);
    csp_sleep(SETTLE);
    TCHECK_EQ(atomic_load(&ff_got[0]), 1);
    for (int i = 1; i <= 6; i++)
        TCHECK_EQ(atomic_load(&ff_got[i]), 0);
    /* the head releases: 1..4 (4 units) and 5 (6 units) fit; 6 must wait */
    atomic_store(&ff_release_now[0], 1);
    WAIT_FOR(atomic_load(&ff_seq) >= 6);
    csp_sleep(SETTLE);
    for (int i = 1; i <= 5; i++)
        TCHECK(atomic_load(&ff_got[i]) >= 2 && atomic_load(&ff_got[i]) <= 6);
    TCHECK_EQ(atomic_load(&ff_got[6]), 0);
    /* small ones leave: 6 still doesn't fit (5 holds 6) */
    for (int i = 1; i <= 4; i++)
        atomic_store(&ff_release_now[i], 1);
    csp_sleep(SETTLE);
    TCHECK_EQ(atomic_load(&ff_got[6]), 0);
    /* 5 leaves: 6 gets in */
    atomic_store(&ff_release_now[5], 1);
    WAIT_FOR(atomic_load(&ff_got[6]) != 0);
    TCHECK_EQ(atomic_load(&ff_got[6]), 7);
    atomic_store(&ff_release_now[6], 1);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(free_units(&ff_sem, size), size);
}

static void test_sem_fifo(void **state)
{
    (void)state;
    RUN_ALL(fifo_main, 2);
}

/* strict order: waiters that each need the whole semaphore get it in the
 * order they queued */
static void fifo_order_main(void *arg)
{
    (void)arg;
    const int64_t size = 4;
    TCHECK_EQ(csp_sem_init(&ff_sem, size), 0);
    atomic_store(&ff_seq, 0);
    for (int i = 0; i < FF_MAX; i++) {
        atomic_store(&ff_about[i], 0);
        atomic_store(&ff_got[i], 0);
        atomic_store(&ff_release_now[i], 1); /* release as soon as acquired */
        ff_n[i] = i % 2 ? size : size - 1;    /* never two at once */
    }
    TCHECK_EQ(csp_sem_acquire(&ff_sem, size, csp_ctx_background()), 0);
    for (intptr_t i = 0; i < FF_MAX; i++)
        ff_start(i);
    TCHECK_EQ(csp_sem_release(&ff_sem, size), 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    for (int i = 0; i < FF_MAX; i++)
        TCHECK_EQ(atomic_load(&ff_got[i]), i + 1);
    TCHECK_EQ(free_units(&ff_sem, size), size);
}

static void test_sem_fifo_order(void **state)
{
    (void)state;
    RUN_ALL(fifo_order_main, 2);
}

/* ------------------------------------------------------------------------ */
/* cancel while waiting                                                      */

typedef struct {
    csp_sem_t *s;
    int64_t    n;
    csp_ctx_t *ctx;
    int        want;       /* expected result */
    atomic_int about, done;
    int        result;
    int        hold;       /* keep the units until told */
    atomic_int release_now;
} cw_t;

static void cw_task(void *arg)
{
    cw_t *c = arg;
    atomic_store(&c->about, 1);
    c->result = csp_sem_acquire(c->s, c->n, c->ctx);
    TCHECK_EQ(c->result, c->want);
    atomic_store(&c->done, 1);
    if (c->result == 0) {
        while (c->hold && !atomic_load(&c->release_now))
            csp_sleep(CSP_MILLISECOND / 4);
        TCHECK_EQ(csp_sem_release(c->s, c->n), 0);
    }
}

static void cw_start(cw_t *c)
{
    TCHECK_EQ(go_joined(cw_task, c), 0);
    while (!atomic_load(&c->about))
        csp_yield();
    csp_sleep(SETTLE);
}

static void cancel_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    csp_sem_t s;
    TCHECK_EQ(csp_sem_init(&s, 10), 0);

    /* the head is cancelled: the waiter behind it that fits gets in without
     * any release (Go's notifyWaiters on cancel) */
    TCHECK_EQ(csp_sem_acquire(&s, 8, bg), 0); /* 2 free */
    csp_ctx_t *hc = csp_ctx_with_cancel(bg);
    cw_t head = { .s = &s, .n = 8, .ctx = hc, .want = CSP_ECANCELED };
    cw_t small = { .s = &s, .n = 2, .ctx = bg, .want = 0, .hold = 1 };
    cw_t big = { .s = &s, .n = 3, .ctx = bg, .want = 0 };
    cw_start(&head);
    cw_start(&small);
    cw_start(&big);
    TCHECK_EQ(atomic_load(&head.done) + atomic_load(&small.done) + atomic_load(&big.done), 0);
    csp_ctx_cancel(hc);
    WAIT_FOR(atomic_load(&small.done) && atomic_load(&head.done));
    csp_sleep(SETTLE);
    TCHECK_EQ(atomic_load(&big.done), 0); /* 3 doesn't fit: 8 + 2 held */
    TCHECK_EQ(csp_sem_try_acquire(&s, 1), CSP_EAGAIN);
    /* the cancelled head acquired nothing: releasing our 8 lets big in */
    TCHECK_EQ(csp_sem_release(&s, 8), 0);
    WAIT_FOR(atomic_load(&big.done));
    atomic_store(&small.release_now, 1);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(free_units(&s, 10), 10);
    csp_ctx_release(hc);

    /* a cancelled waiter that is not the head lets nobody in */
    TCHECK_EQ(csp_sem_acquire(&s, 8, bg), 0);
    csp_ctx_t *mc = csp_ctx_with_cancel(bg);
    cw_t h2 = { .s = &s, .n = 9, .ctx = bg, .want = 0 };
    cw_t mid = { .s = &s, .n = 2, .ctx = mc, .want = CSP_ECANCELED };
    cw_t tail = { .s = &s, .n = 1, .ctx = bg, .want = 0 };
    cw_start(&h2);
    cw_start(&mid);
    cw_start(&tail);
    csp_ctx_cancel_cause(mc, -3); /* the result is the err, not the cause */
    WAIT_FOR(atomic_load(&mid.done));
    csp_sleep(SETTLE);
    TCHECK_EQ(atomic_load(&tail.done), 0); /* 1 would fit, but the head (9) is first */
    TCHECK_EQ(atomic_load(&h2.done), 0);
    TCHECK_EQ(csp_sem_release(&s, 8), 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(free_units(&s, 10), 10);
    csp_ctx_release(mc);

    /* a deadline while waiting: EDEADLINE, not early, nothing acquired */
    TCHECK_EQ(csp_sem_acquire(&s, 10, bg), 0);
    csp_time_t t0 = csp_now();
    csp_ctx_t *dl = csp_ctx_with_timeout(bg, 5 * MS);
    TCHECK_EQ(csp_sem_acquire(&s, 1, dl), CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 5 * MS);
    TCHECK(csp_now() - t0 < 5 * MS + LATE);
    csp_ctx_release(dl);
    TCHECK_EQ(csp_sem_release(&s, 10), 0);
    TCHECK_EQ(free_units(&s, 10), 10);

    /* the whole queue cancelled at once through a parent */
    TCHECK_EQ(csp_sem_acquire(&s, 10, bg), 0);
    csp_ctx_t *p = csp_ctx_with_cancel(bg);
    csp_ctx_t *kids[4];
    cw_t q[4];
    for (int i = 0; i < 4; i++) {
        kids[i] = i & 1 ? csp_ctx_with_value(p, &q, NULL, NULL) : csp_ctx_with_cancel(p);
        q[i] = (cw_t){ .s = &s, .n = 1 + i, .ctx = kids[i], .want = CSP_ECANCELED };
        cw_start(&q[i]);
    }
    csp_ctx_cancel(p);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(csp_sem_try_acquire(&s, 1), CSP_EAGAIN); /* still all ours */
    TCHECK_EQ(csp_sem_release(&s, 10), 0);
    /* the queue is empty again: try_acquire works */
    TCHECK_EQ(free_units(&s, 10), 10);
    for (int i = 0; i < 4; i++)
        csp_ctx_release(kids[i]);
    csp_ctx_release(p);
    settle_deadlines();
}

static void test_sem_cancel_while_waiting(void **state)
{
    (void)state;
    RUN_ALL(cancel_main, 2);
}

/* ------------------------------------------------------------------------ */
/* stress: never more than size units in use; cancels and timeouts mixed in */

enum { SS_TASKS = 16 };
#define SS_ITERS (SM_SANITIZER ? 150 : 1500)
static csp_sem_t ss_sem;
static int64_t ss_size;
static atomic_llong ss_inuse, ss_max;
static atomic_int ss_cancelled;
static csp_ctx_t *ss_root;

static void ss_task(void *arg)
{
    uint64_t x = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    for (int i = 0; i < SS_ITERS; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t n = 1 + (int64_t)(x % (uint64_t)(ss_size / 2));
        csp_ctx_t *ctx;
        int kind = (int)((x >> 20) % 8);
        if (kind == 0)
            ctx = csp_ctx_with_timeout(ss_root, (csp_duration_t)((x >> 30) % 50) * CSP_MICROSECOND);
        else if (kind == 1)
            ctx = csp_ctx_with_cancel(ss_root);
        else
            ctx = csp_ctx_retain(ss_root);
        int r;
        if ((x >> 40) % 4 == 0) {
            r = csp_sem_try_acquire(&ss_sem, n);
            TCHECK(r == 0 || r == CSP_EAGAIN);
        } else {
            if (kind == 1 && (x >> 44) % 2)
                csp_ctx_cancel(ctx); /* already done: acquires only if free */
            r = csp_sem_acquire(&ss_sem, n, ctx);
            TCHECK(r == 0 || r == CSP_EDEADLINE || r == CSP_ECANCELED);
            if (r)
                atomic_fetch_add(&ss_cancelled, 1);
        }
        if (r == 0) {
            long long now = atomic_fetch_add(&ss_inuse, n) + n;
            if (now > ss_size)
                tc_fail(__FILE__, __LINE__, "%lld units in use, size %lld", now,
                        (long long)ss_size);
            long long m = atomic_load(&ss_max);
            while (now > m && !atomic_compare_exchange_weak(&ss_max, &m, now))
                ;
            if ((x >> 50) % 4 == 0)
                csp_yield();
            atomic_fetch_sub(&ss_inuse, n);
            TCHECK_EQ(csp_sem_release(&ss_sem, n), 0);
        }
        csp_ctx_release(ctx);
    }
}

static void stress_main(void *arg)
{
    (void)arg;
    const int64_t sizes[] = { 2, 7, 64 };
    for (int k = 0; k < 3; k++) {
        ss_size = sizes[k];
        TCHECK_EQ(csp_sem_init(&ss_sem, ss_size), 0);
        atomic_store(&ss_inuse, 0);
        atomic_store(&ss_max, 0);
        ss_root = csp_ctx_background();
        for (intptr_t i = 0; i < SS_TASKS; i++)
            TCHECK_EQ(go_joined(ss_task, (void *)(i + 1 + k * 100)), 0);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        TCHECK_EQ(atomic_load(&ss_inuse), 0);
        TCHECK(atomic_load(&ss_max) >= 1);
        TCHECK(atomic_load(&ss_max) <= ss_size);
        /* every unit came back, the queue is empty */
        TCHECK_EQ(free_units(&ss_sem, ss_size), ss_size);
        TCHECK_EQ(csp_sem_release(&ss_sem, 1), CSP_EINVAL);
    }
    settle_deadlines(); /* the short timeouts' deadline tasks */
}

static void test_sem_stress(void **state)
{
    (void)state;
    for (int w = 0; w < SM_NW; w++)
        J_RUN(stress_main, NULL, sm_workers[w], CSP_SPAWN_HELP_FIRST);
    J_RUN(stress_main, NULL, 8, CSP_SPAWN_CHILD_FIRST);
}

/* ------------------------------------------------------------------------ */
/* plain threads (with tasks, and without a runtime)                         */

enum { PT_THREADS = 4, PT_TASKS = 4 };
#define PT_ITERS (SM_SANITIZER ? 300 : 3000)
static csp_sem_t pt_sem;
static atomic_llong pt_inuse;
static const int64_t pt_size = 5;

static void pt_body(uintptr_t seed)
{
    for (int i = 0; i < PT_ITERS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int64_t n = 1 + (int64_t)((seed >> 33) % 3);
        TCHECK_EQ(csp_sem_acquire(&pt_sem, n, csp_ctx_background()), 0);
        long long now = atomic_fetch_add(&pt_inuse, n) + n;
        TCHECK(now <= pt_size);
        atomic_fetch_sub(&pt_inuse, n);
        TCHECK_EQ(csp_sem_release(&pt_sem, n), 0);
    }
}

static void *pt_thread(void *arg)
{
    pt_body((uintptr_t)arg);
    return NULL;
}

static void pt_task(void *arg)
{
    pt_body((uintptr_t)arg);
}

/* a plain thread blocked in acquire, cancelled from another thread */
static void *pt_cancel_waiter(void *arg)
{
    csp_ctx_t *c = arg;
    TCHECK_EQ(csp_sem_acquire(&pt_sem, pt_size, c), CSP_ECANCELED);
    return NULL;
}

static void run_pt(int runtime, int nworkers)
{
    TC_RESET();
    if (runtime) {
        csp_config_t cfg = { .workers = nworkers };
        assert_int_equal(csp_init(&cfg), 0);
    }
    assert_int_equal(csp_sem_init(&pt_sem, pt_size), 0);
    atomic_store(&pt_inuse, 0);
    pthread_t th[PT_THREADS];
    for (uintptr_t i = 0; i < PT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, pt_thread, (void *)(i + 1)), 0);
    if (runtime)
        for (uintptr_t i = 0; i < PT_TASKS; i++)
            assert_int_equal(go_joined(pt_task, (void *)(i + 100)), 0);
    for (int i = 0; i < PT_THREADS; i++)
        pthread_join(th[i], NULL);
    if (runtime)
        assert_int_equal(csp_wg_wait(&join_wg), 0);
    /* cancel across threads */
    assert_int_equal(csp_sem_try_acquire(&pt_sem, 1), 0);
    csp_ctx_t *c = csp_ctx_with_cancel(csp_ctx_background());
    pthread_t w;
    assert_int_equal(pthread_create(&w, NULL, pt_cancel_waiter, c), 0);
    csp_sleep(5 * MS);
    csp_ctx_cancel(c);
    pthread_join(w, NULL);
    assert_int_equal(csp_sem_release(&pt_sem, 1), 0);
    assert_int_equal(csp_sem_try_acquire(&pt_sem, pt_size), 0); /* all free, queue empty */
    assert_int_equal(csp_sem_release(&pt_sem, pt_size), 0);
    csp_ctx_release(c);
    if (runtime)
        csp_shutdown();
    TC_ASSERT_CLEAN();
}

static void test_sem_plain_threads(void **state)
{
    (void)state;
    run_pt(0, 0);
    for (int w = 0; w < SM_NW; w++)
        run_pt(1, sm_workers[w]);
}

/* ------------------------------------------------------------------------ */
/* shutdown wakes a plain thread blocked in acquire                          */

static csp_sem_t sd_sem = CSP_SEM_INIT(1);

static void *sd_thread(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_sem_acquire(&sd_sem, 1, csp_ctx_background()), CSP_ESHUTDOWN);
    return NULL;
}

static void test_sem_shutdown(void **state)
{
    (void)state;
    csp_config_t cfg = { .workers = 2 };
    TC_RESET();
    assert_int_equal(csp_init(&cfg), 0);
    assert_int_equal(csp_sem_try_acquire(&sd_sem, 1), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, sd_thread, NULL), 0);
    csp_sleep(5 * MS);
    csp_shutdown();
    pthread_join(th, NULL);
    /* the shut-down waiter left the queue: the semaphore still works */
    assert_int_equal(csp_sem_release(&sd_sem, 1), 0);
    assert_int_equal(csp_sem_try_acquire(&sd_sem, 1), 0);
    assert_int_equal(csp_sem_release(&sd_sem, 1), 0);
    TC_ASSERT_CLEAN();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sem_basic),
        cmocka_unit_test(test_sem_fifo),
        cmocka_unit_test(test_sem_fifo_order),
        cmocka_unit_test(test_sem_cancel_while_waiting),
        cmocka_unit_test(test_sem_stress),
        cmocka_unit_test(test_sem_plain_threads),
        cmocka_unit_test(test_sem_shutdown),
    };
    if (getenv("CX_FILTER"))
        cmocka_set_test_filter(getenv("CX_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
