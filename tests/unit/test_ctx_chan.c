/* ctest-timeout: 240 */
/* The context forms of channel operations and select (include/csp/chan.h):
 * csp_chan_send_ctx / csp_chan_recv_ctx woken by a cancel (CSP_ECANCELED) or
 * a deadline (CSP_EDEADLINE) while blocked, operations that can complete at
 * once completing even on a done context, the channel intact afterwards (no
 * stale waiter, nothing delivered by a cancelled send), close while blocked,
 * csp_select_ctx woken by a cancel with the unchosen buffers untouched,
 * uniform choice between ready cases and a done context (chi-square),
 * n == 0, csp_select_ctx_until (poll, deadlines), plain threads with and
 * without a runtime, typed wrappers, NULL arguments, and a stress test where
 * cancels race sends and receives and every value is delivered exactly once.
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
#define SENTINEL 0x5A5A5A5A
#define STATUS_SENTINEL 12345

#if defined(CSP_TEST_SANITIZER) && CSP_TEST_SANITIZER
#  define CC_SANITIZER 1
#else
#  define CC_SANITIZER 0
#endif

static const int cc_workers[] = { 1, 2, 4 };
#define CC_NW ((int)(sizeof cc_workers / sizeof cc_workers[0]))

#define RUN_ALL(fn, reps)                                                      \
    do {                                                                       \
        for (int w_ = 0; w_ < CC_NW; w_++)                                     \
            for (int r_ = 0; r_ < (reps); r_++)                                \
                J_RUN((fn), NULL, cc_workers[w_],                              \
                      (r_ & 1) ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST); \
    } while (0)

/* See test_ctx.c: deadline contexts are cancelled by a library task that
 * must have run before the main task returns. */
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

/* a task that cancels a context after a delay */
typedef struct {
    csp_ctx_t     *ctx;
    csp_duration_t delay;
    int            cause;
} canceller_t;

static void canceller_task(void *arg)
{
    canceller_t *c = arg;
    csp_sleep(c->delay);
    csp_ctx_cancel_cause(c->ctx, c->cause);
}

/* The channel has no stale waiter and holds nothing: an unbuffered channel
 * refuses a try_send and a try_recv; a buffered one takes a value and gives
 * it back. Then a blocking send/recv pair works. */
static int pair_recv_val;
static void pair_receiver(void *arg)
{
    TCHECK_EQ(csp_chan_recv((csp_chan_t *)arg, &pair_recv_val), 0);
}

static void check_intact(csp_chan_t *c)
{
    TCHECK_EQ(csp_chan_len(c), 0);
    TCHECK_EQ(csp_chan_closed(c), 0);
    int v = 99;
    if (csp_chan_cap(c) == 0) {
        TCHECK_EQ(csp_chan_try_send(c, &v), CSP_EAGAIN);
        TCHECK_EQ(csp_chan_try_recv(c, &v), CSP_EAGAIN);
    } else {
        TCHECK_EQ(csp_chan_try_recv(c, &v), CSP_EAGAIN);
        TCHECK_EQ(csp_chan_try_send(c, &v), 0);
        v = 0;
        TCHECK_EQ(csp_chan_try_recv(c, &v), 0);
        TCHECK_EQ(v, 99);
    }
    pair_recv_val = 0;
    TCHECK_EQ(go_joined(pair_receiver, c), 0);
    v = 4321;
    TCHECK_EQ(csp_chan_send(c, &v), 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(pair_recv_val, 4321);
    TCHECK_EQ(csp_chan_len(c), 0);
}

/* ------------------------------------------------------------------------ */
/* NULL and bad arguments                                                    */

static void null_checks(void)
{
    csp_ctx_t *bg = csp_ctx_background();
    csp_chan_t *c = csp_chan_make(sizeof(int), 1);
    int v = 5, out = SENTINEL;
    TCHECK_EQ(csp_chan_send_ctx(NULL, c, &v), CSP_EINVAL);
    TCHECK_EQ(csp_chan_len(c), 0); /* nothing sent */
    TCHECK_EQ(csp_chan_send(c, &v), 0);
    TCHECK_EQ(csp_chan_recv_ctx(NULL, c, &out), CSP_EINVAL);
    TCHECK_EQ(out, SENTINEL);
    TCHECK_EQ(csp_chan_len(c), 1); /* nothing taken */
    TCHECK_EQ(csp_chan_send_ctx(bg, NULL, &v), CSP_EINVAL);
    TCHECK_EQ(csp_chan_recv_ctx(bg, NULL, &out), CSP_EINVAL);
    TCHECK_EQ(csp_chan_send_ctx(NULL, NULL, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_chan_recv_ctx(NULL, NULL, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_chan_recv_ctx(bg, c, &out), 0);
    TCHECK_EQ(out, 5);
    TCHECK_EQ(csp_chan_send_ctx(bg, c, NULL), CSP_EINVAL); /* elem NULL, elem_size 4 */
    TCHECK_EQ(csp_chan_len(c), 0);

    csp_case_t cs[1] = { CSP_RECV_CASE(c, &out) };
    TCHECK_EQ(csp_select_ctx(NULL, cs, 1), CSP_EINVAL);
    TCHECK_EQ(csp_select_ctx_until(NULL, cs, 1, 0), CSP_EINVAL);
    TCHECK_EQ(csp_select_ctx(bg, NULL, 1), CSP_EINVAL);
    TCHECK_EQ(csp_select_ctx_until(bg, NULL, 1, 0), CSP_EINVAL);
    cs[0].dir = 7;
    TCHECK_EQ(csp_select_ctx(bg, cs, 1), CSP_EINVAL);
    csp_case_t bad_send[1] = { CSP_SEND_CASE(c, NULL) };
    TCHECK_EQ(csp_select_ctx_until(bg, bad_send, 1, 0), CSP_EINVAL);
    TCHECK_EQ(csp_chan_len(c), 0);
    /* a done context doesn't hide bad input */
    csp_ctx_t *done = csp_ctx_with_cancel(bg);
    csp_ctx_cancel(done);
    TCHECK_EQ(csp_select_ctx(done, cs, 1), CSP_EINVAL);
    TCHECK_EQ(csp_chan_send_ctx(done, NULL, &v), CSP_EINVAL);
    csp_ctx_release(done);
    csp_chan_release(c);
}

static void null_main(void *arg)
{
    (void)arg;
    null_checks();
}

/* a NULL ctx never delivers to a parked receiver */
static atomic_int nr_got;
static void nr_receiver(void *arg)
{
    int v = 0;
    TCHECK_EQ(csp_chan_recv((csp_chan_t *)arg, &v), 0);
    TCHECK_EQ(v, 77);
    atomic_store(&nr_got, v);
}

static void null_parked_main(void *arg)
{
    (void)arg;
    csp_chan_t *c = csp_chan_make(sizeof(int), 0);
    atomic_store(&nr_got, 0);
    TCHECK_EQ(go_joined(nr_receiver, c), 0);
    csp_sleep(2 * MS);
    int v = 66;
    TCHECK_EQ(csp_chan_send_ctx(NULL, c, &v), CSP_EINVAL);
    csp_sleep(MS);
    TCHECK_EQ(atomic_load(&nr_got), 0);
    v = 77;
    TCHECK_EQ(csp_chan_send(c, &v), 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(atomic_load(&nr_got), 77);
    csp_chan_release(c);
}

static void test_cc_null_args(void **state)
{
    (void)state;
    TC_RESET();
    null_checks(); /* plain thread, no runtime */
    TC_ASSERT_CLEAN();
    RUN_ALL(null_main, 1);
    RUN_ALL(null_parked_main, 1);
}

/* ------------------------------------------------------------------------ */
/* blocked, woken by a cancel                                                */

static void wake_on_cancel_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    for (size_t cap = 0; cap <= 1; cap++) {
        for (int how = 0; how < 3; how++) {
            /* how: 0 the context itself, 1 its parent, 2 through a value ctx */
            csp_chan_t *c = csp_chan_make(sizeof(int), cap);
            csp_ctx_t *p = csp_ctx_with_cancel(bg);
            csp_ctx_t *ctx = how == 2 ? csp_ctx_with_value(p, &settle_key, NULL, NULL)
                                      : csp_ctx_with_cancel(p);
            canceller_t cn = { how == 0 ? ctx : p, 3 * MS, -5 };

            /* recv */
            int out = SENTINEL;
            csp_time_t t0 = csp_now();
            TCHECK_EQ(go_joined(canceller_task, &cn), 0);
            TCHECK_EQ(csp_chan_recv_ctx(ctx, c, &out), CSP_ECANCELED); /* err, not the cause */
            TCHECK(csp_now() - t0 >= 3 * MS);
            TCHECK_EQ(out, SENTINEL);
            TCHECK_EQ(csp_wg_wait(&join_wg), 0);
            check_intact(c);
            /* an op on a done context that cannot complete: at once */
            t0 = csp_now();
            TCHECK_EQ(csp_chan_recv_ctx(ctx, c, &out), CSP_ECANCELED);
            TCHECK(csp_now() - t0 < LATE);
            csp_ctx_release(ctx);
            csp_ctx_release(p);

            /* send: on an unbuffered channel with no receiver, or a full one */
            p = csp_ctx_with_cancel(bg);
            ctx = how == 2 ? csp_ctx_with_value(p, &settle_key, NULL, NULL)
                           : csp_ctx_with_cancel(p);
            cn.ctx = how == 0 ? ctx : p;
            int first = 11, v = 22;
            if (cap)
                TCHECK_EQ(csp_chan_send(c, &first), 0);
            t0 = csp_now();
            TCHECK_EQ(go_joined(canceller_task, &cn), 0);
            TCHECK_EQ(csp_chan_send_ctx(ctx, c, &v), CSP_ECANCELED);
            TCHECK(csp_now() - t0 >= 3 * MS);
            TCHECK_EQ(csp_wg_wait(&join_wg), 0);
            /* the value was not delivered */
            TCHECK_EQ(csp_chan_len(c), cap);
            if (cap) {
                out = 0;
                TCHECK_EQ(csp_chan_try_recv(c, &out), 0);
                TCHECK_EQ(out, 11);
            }
            check_intact(c);
            TCHECK_EQ(csp_chan_send_ctx(ctx, c, &v), cap ? 0 : CSP_ECANCELED); /* room: completes */
            if (cap)
                TCHECK_EQ(csp_chan_try_recv(c, &out), 0);
            csp_ctx_release(ctx);
            csp_ctx_release(p);
            csp_chan_release(c);
        }
    }
}

static void test_cc_wake_on_cancel(void **state)
{
    (void)state;
    RUN_ALL(wake_on_cancel_main, 2);
}

/* ------------------------------------------------------------------------ */
/* blocked, woken by a deadline context firing                               */

static void deadline_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    for (size_t cap = 0; cap <= 2; cap += 2) {
        csp_chan_t *c = csp_chan_make(sizeof(int), cap);
        int out = SENTINEL;
        csp_time_t t0 = csp_now();
        csp_ctx_t *ctx = csp_ctx_with_timeout(bg, 10 * MS);
        TCHECK_EQ(csp_chan_recv_ctx(ctx, c, &out), CSP_EDEADLINE);
        csp_time_t took = csp_now() - t0;
        TCHECK(took >= 10 * MS);
        TCHECK(took < 10 * MS + LATE);
        TCHECK_EQ(out, SENTINEL);
        csp_ctx_release(ctx);
        check_intact(c);

        /* a deadline context under a parent whose deadline comes first */
        t0 = csp_now();
        csp_ctx_t *p = csp_ctx_with_timeout(bg, 6 * MS);
        ctx = csp_ctx_with_timeout(p, 3600 * CSP_SECOND);
        int v = 1;
        for (size_t i = 0; i < cap; i++)
            TCHECK_EQ(csp_chan_send(c, &v), 0);
        TCHECK_EQ(csp_chan_send_ctx(ctx, c, &v), CSP_EDEADLINE);
        TCHECK(csp_now() - t0 >= 6 * MS);
        TCHECK_EQ(csp_chan_len(c), cap);
        for (size_t i = 0; i < cap; i++)
            TCHECK_EQ(csp_chan_try_recv(c, &out), 0);
        csp_ctx_release(ctx);
        csp_ctx_release(p);
        check_intact(c);
        csp_chan_release(c);
    }
    settle_deadlines();
}

static void test_cc_deadline(void **state)
{
    (void)state;
    RUN_ALL(deadline_main, 2);
}

/* ------------------------------------------------------------------------ */
/* an operation that can complete at once does, even on a done context       */

static atomic_int rd_val;
static void rd_parked_receiver(void *arg)
{
    int v = 0;
    TCHECK_EQ(csp_chan_recv((csp_chan_t *)arg, &v), 0);
    atomic_store(&rd_val, v);
}

static void rd_parked_sender(void *arg)
{
    int v = 31337;
    TCHECK_EQ(csp_chan_send((csp_chan_t *)arg, &v), 0);
}

static void ready_main(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_ctx_cancel(done);
    csp_ctx_t *dl = csp_ctx_with_deadline(csp_ctx_background(), 0); /* EDEADLINE */
    csp_ctx_t *ctxs[2] = { done, dl };
    for (int k = 0; k < 2; k++) {
        csp_ctx_t *ctx = ctxs[k];
        int err = k ? CSP_EDEADLINE : CSP_ECANCELED;
        /* buffered: send with room, recv with a value */
        csp_chan_t *b = csp_chan_make(sizeof(int), 2);
        int v = 7, out = 0;
        TCHECK_EQ(csp_chan_send_ctx(ctx, b, &v), 0);
        v = 8;
        TCHECK_EQ(csp_chan_send_ctx(ctx, b, &v), 0);
        TCHECK_EQ(csp_chan_send_ctx(ctx, b, &v), err); /* full: not ready */
        TCHECK_EQ(csp_chan_recv_ctx(ctx, b, &out), 0);
        TCHECK_EQ(out, 7);
        TCHECK_EQ(csp_chan_recv_ctx(ctx, b, &out), 0);
        TCHECK_EQ(out, 8);
        TCHECK_EQ(csp_chan_recv_ctx(ctx, b, &out), err); /* empty: not ready */
        /* unbuffered with a parked peer */
        csp_chan_t *u = csp_chan_make(sizeof(int), 0);
        atomic_store(&rd_val, 0);
        /* (until the peer has parked, the op cannot complete and returns
         * the ctx's err at once: retry until it has) */
        TCHECK_EQ(go_joined(rd_parked_receiver, u), 0);
        v = 4242;
        int r, tries = 0;
        while ((r = csp_chan_send_ctx(ctx, u, &v)) == err && ++tries < 20000)
            csp_sleep(CSP_MILLISECOND / 4);
        TCHECK_EQ(r, 0);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        TCHECK_EQ(atomic_load(&rd_val), 4242);
        TCHECK_EQ(go_joined(rd_parked_sender, u), 0);
        out = 0;
        tries = 0;
        while ((r = csp_chan_recv_ctx(ctx, u, &out)) == err && ++tries < 20000)
            csp_sleep(CSP_MILLISECOND / 4);
        TCHECK_EQ(r, 0);
        TCHECK_EQ(out, 31337);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        /* closed: ready (ECLOSED) */
        TCHECK_EQ(csp_chan_send(b, &v), 0);
        csp_chan_close(b);
        TCHECK_EQ(csp_chan_recv_ctx(ctx, b, &out), 0); /* the buffered value first */
        TCHECK_EQ(out, 4242);
        out = SENTINEL;
        TCHECK_EQ(csp_chan_recv_ctx(ctx, b, &out), CSP_ECLOSED);
        TCHECK_EQ(out, 0); /* zero-filled */
        TCHECK_EQ(csp_chan_send_ctx(ctx, b, &v), CSP_ECLOSED);
        /* select on a done context with a ready case gives the case or the
         * context; with nothing ready, the context at once */
        csp_case_t none[1] = { CSP_RECV_CASE(u, &out) };
        TCHECK_EQ(csp_select_ctx(ctx, none, 1), err);
        csp_chan_release(u);
        csp_chan_release(b);
    }
    csp_ctx_release(dl);
    csp_ctx_release(done);
}

static void test_cc_ready_despite_done(void **state)
{
    (void)state;
    RUN_ALL(ready_main, 2);
}

/* ------------------------------------------------------------------------ */
/* close while blocked; never-cancellable contexts block like the plain ops  */

static void cl_closer(void *arg)
{
    csp_sleep(2 * MS);
    csp_chan_close((csp_chan_t *)arg);
}

static void cl_sender(void *arg)
{
    csp_sleep(3 * MS);
    int v = 555;
    TCHECK_EQ(csp_chan_send((csp_chan_t *)arg, &v), 0);
}

static void close_main(void *arg)
{
    (void)arg;
    csp_ctx_t *c = csp_ctx_with_cancel(csp_ctx_background());
    csp_chan_t *ch = csp_chan_make(sizeof(int), 0);
    int out = SENTINEL;
    TCHECK_EQ(go_joined(cl_closer, ch), 0);
    TCHECK_EQ(csp_chan_recv_ctx(c, ch, &out), CSP_ECLOSED);
    TCHECK_EQ(out, 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    csp_chan_release(ch);
    ch = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(go_joined(cl_closer, ch), 0);
    TCHECK_EQ(csp_chan_send_ctx(c, ch, &out), CSP_ECLOSED);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    csp_chan_release(ch);
    TCHECK_EQ(csp_ctx_err(c), 0);
    csp_ctx_release(c);

    /* background / without_cancel of a cancelled parent: wait for the value */
    csp_ctx_t *p = csp_ctx_with_cancel(csp_ctx_background());
    csp_ctx_cancel(p);
    csp_ctx_t *w = csp_ctx_without_cancel(p);
    csp_ctx_t *ctxs[3] = { csp_ctx_background(), csp_ctx_todo(), w };
    for (int i = 0; i < 3; i++) {
        ch = csp_chan_make(sizeof(int), 0);
        TCHECK_EQ(go_joined(cl_sender, ch), 0);
        out = 0;
        TCHECK_EQ(csp_chan_recv_ctx(ctxs[i], ch, &out), 0);
        TCHECK_EQ(out, 555);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        csp_chan_release(ch);
    }
    csp_ctx_release(w);
    csp_ctx_release(p);
}

static void test_cc_close_and_uncancellable(void **state)
{
    (void)state;
    RUN_ALL(close_main, 1);
}

/* ------------------------------------------------------------------------ */
/* select_ctx woken by a cancel: unchosen buffers untouched, no stale sudog  */

static void select_cancel_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    for (int variant = 0; variant < 2; variant++) {
        csp_chan_t *u = csp_chan_make(sizeof(int), 0);
        csp_chan_t *e = csp_chan_make(sizeof(int), 2);    /* empty */
        csp_chan_t *f = csp_chan_make(sizeof(int), 1);    /* full */
        int one = 1;
        TCHECK_EQ(csp_chan_send(f, &one), 0);
        int r0 = SENTINEL, r1 = SENTINEL, s2 = 77, s3 = 88;
        csp_case_t cs[5] = { CSP_RECV_CASE(u, &r0), CSP_RECV_CASE(e, &r1),
                             CSP_SEND_CASE(f, &s2), CSP_SEND_CASE(u, &s3),
                             CSP_RECV_CASE(NULL, &r0) };
        for (int i = 0; i < 5; i++)
            cs[i].status = STATUS_SENTINEL;
        csp_ctx_t *ctx;
        int want;
        csp_duration_t after = 3 * MS;
        canceller_t cn;
        csp_time_t t0 = csp_now();
        if (variant == 0) {
            ctx = csp_ctx_with_cancel(bg);
            cn = (canceller_t){ ctx, after, 0 };
            TCHECK_EQ(go_joined(canceller_task, &cn), 0);
            want = CSP_ECANCELED;
        } else {
            ctx = csp_ctx_with_timeout(bg, after);
            want = CSP_EDEADLINE;
        }
        TCHECK_EQ(csp_select_ctx(ctx, cs, 5), want);
        TCHECK(csp_now() - t0 >= after);
        TCHECK_EQ(r0, SENTINEL);
        TCHECK_EQ(r1, SENTINEL);
        TCHECK_EQ(s2, 77);
        TCHECK_EQ(s3, 88);
        for (int i = 0; i < 5; i++)
            TCHECK_EQ(cs[i].status, STATUS_SENTINEL);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        /* channels intact: no sudog of the select left behind */
        check_intact(u);
        check_intact(e);
        TCHECK_EQ(csp_chan_len(f), 1);
        int out = 0;
        TCHECK_EQ(csp_chan_try_recv(f, &out), 0);
        TCHECK_EQ(out, 1);
        check_intact(f);
        csp_ctx_release(ctx);
        csp_chan_release(u);
        csp_chan_release(e);
        csp_chan_release(f);
    }
    settle_deadlines();
}

static void test_cc_select_cancel(void **state)
{
    (void)state;
    RUN_ALL(select_cancel_main, 2);
}

/* the select fires on a case before the cancel */
static void sf_sender(void *arg)
{
    csp_sleep(2 * MS);
    int v = 606;
    TCHECK_EQ(csp_chan_send((csp_chan_t *)arg, &v), 0);
}

static void select_fire_main(void *arg)
{
    (void)arg;
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    csp_chan_t *a = csp_chan_make(sizeof(int), 0), *b = csp_chan_make(sizeof(int), 0);
    int ra = SENTINEL, rb = SENTINEL;
    csp_case_t cs[2] = { CSP_RECV_CASE(a, &ra), CSP_RECV_CASE(b, &rb) };
    cs[0].status = cs[1].status = STATUS_SENTINEL;
    TCHECK_EQ(go_joined(sf_sender, b), 0);
    TCHECK_EQ(csp_select_ctx(ctx, cs, 2), 1);
    TCHECK_EQ(rb, 606);
    TCHECK_EQ(cs[1].status, 0);
    TCHECK_EQ(ra, SENTINEL);
    TCHECK_EQ(cs[0].status, STATUS_SENTINEL);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    /* cancelled afterwards: the select left no watch behind (ASan/TSan) */
    csp_ctx_cancel(ctx);
    check_intact(a);
    check_intact(b);
    csp_ctx_release(ctx);
    csp_chan_release(a);
    csp_chan_release(b);
}

static void test_cc_select_fires_first(void **state)
{
    (void)state;
    RUN_ALL(select_fire_main, 2);
}

/* ------------------------------------------------------------------------ */
/* ready cases and a done context: uniform choice                            */

#define UN_TRIALS 2000
/* chi-square critical values at p = 0.001 for 1..4 degrees of freedom */
static const double chi_crit[] = { 0, 10.83, 13.82, 16.27, 18.47 };

static void uniform_main(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_ctx_cancel(done);
    for (int nready = 1; nready <= 4; nready++) {
        csp_chan_t *ch[4];
        int bufs[4];
        csp_case_t cs[6];
        for (int i = 0; i < nready; i++) {
            ch[i] = csp_chan_make(sizeof(int), 1);
            int v = i;
            TCHECK_EQ(csp_chan_send(ch[i], &v), 0);
            cs[i] = (csp_case_t)CSP_RECV_CASE(ch[i], &bufs[i]);
        }
        /* plus a never-ready case */
        csp_chan_t *never = csp_chan_make(sizeof(int), 0);
        int nb = SENTINEL;
        cs[nready] = (csp_case_t)CSP_RECV_CASE(never, &nb);
        int counts[6] = { 0 };
        for (int t = 0; t < UN_TRIALS; t++) {
            int r = csp_select_ctx(done, cs, (size_t)nready + 1);
            if (r == CSP_ECANCELED) {
                counts[nready]++;
            } else if (r >= 0 && r < nready) {
                counts[r]++;
                TCHECK_EQ(bufs[r], r);
                TCHECK_EQ(cs[r].status, 0);
                int v = r; /* refill */
                TCHECK_EQ(csp_chan_send(ch[r], &v), 0);
            } else {
                TCHECK_EQ(r, -1000); /* never */
            }
        }
        TCHECK_EQ(nb, SENTINEL);
        double expect = (double)UN_TRIALS / (nready + 1), chi = 0;
        for (int i = 0; i <= nready; i++) {
            double d = counts[i] - expect;
            chi += d * d / expect;
            TCHECK(counts[i] > 0); /* each seen */
        }
        if (chi > chi_crit[nready])
            tc_fail(__FILE__, __LINE__, "chi-square %.2f > %.2f with %d ready (ctx chosen %d/%d)",
                    chi, chi_crit[nready], nready, counts[nready], UN_TRIALS);
        for (int i = 0; i < nready; i++)
            csp_chan_release(ch[i]);
        csp_chan_release(never);
    }
    csp_ctx_release(done);
}

static void test_cc_select_uniform(void **state)
{
    (void)state;
    J_RUN(uniform_main, NULL, 1, CSP_SPAWN_HELP_FIRST);
    J_RUN(uniform_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* n == 0 (and all-NULL cases): blocks until the cancel                      */

static void n0_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    for (int k = 0; k < 2; k++) {
        csp_ctx_t *ctx = csp_ctx_with_cancel(bg);
        canceller_t cn = { ctx, 4 * MS, 0 };
        int buf = SENTINEL;
        csp_case_t nulls[2] = { CSP_RECV_CASE(NULL, &buf), CSP_SEND_CASE(NULL, &buf) };
        csp_time_t t0 = csp_now();
        TCHECK_EQ(go_joined(canceller_task, &cn), 0);
        TCHECK_EQ(k ? csp_select_ctx(ctx, nulls, 2) : csp_select_ctx(ctx, NULL, 0), CSP_ECANCELED);
        TCHECK(csp_now() - t0 >= 4 * MS);
        TCHECK_EQ(buf, SENTINEL);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        /* already done: at once */
        TCHECK_EQ(csp_select_ctx(ctx, NULL, 0), CSP_ECANCELED);
        TCHECK_EQ(csp_select_ctx_until(ctx, NULL, 0, 0), CSP_ECANCELED);
        csp_ctx_release(ctx);
    }
    /* with a deadline context */
    csp_time_t t0 = csp_now();
    csp_ctx_t *ctx = csp_ctx_with_timeout(bg, 5 * MS);
    TCHECK_EQ(csp_select_ctx(ctx, NULL, 0), CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 5 * MS);
    csp_ctx_release(ctx);
    /* background: poll and deadline forms */
    TCHECK_EQ(csp_select_ctx_until(bg, NULL, 0, 0), CSP_EAGAIN);
    t0 = csp_now();
    TCHECK_EQ(csp_select_ctx_until(bg, NULL, 0, csp_deadline_after(3 * MS)), CSP_ETIMEDOUT);
    TCHECK(csp_now() - t0 >= 3 * MS);
    settle_deadlines();
}

static void test_cc_select_n0(void **state)
{
    (void)state;
    RUN_ALL(n0_main, 2);
}

/* ------------------------------------------------------------------------ */
/* select_ctx_until: poll, and which of the two deadlines comes first        */

static void until_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    csp_chan_t *e = csp_chan_make(sizeof(int), 1), *r = csp_chan_make(sizeof(int), 1);
    int one = 1, be = SENTINEL, br = SENTINEL;
    csp_case_t cs[2] = { CSP_RECV_CASE(e, &be), CSP_RECV_CASE(r, &br) };
    csp_ctx_t *live = csp_ctx_with_cancel(bg);
    csp_ctx_t *done = csp_ctx_with_cancel(bg);
    csp_ctx_cancel(done);

    /* poll, nothing ready, live ctx: EAGAIN, untouched */
    cs[0].status = cs[1].status = STATUS_SENTINEL;
    TCHECK_EQ(csp_select_ctx_until(live, cs, 2, 0), CSP_EAGAIN);
    TCHECK_EQ(be, SENTINEL);
    TCHECK_EQ(br, SENTINEL);
    TCHECK_EQ(cs[0].status, STATUS_SENTINEL);
    TCHECK_EQ(cs[1].status, STATUS_SENTINEL);
    /* poll, nothing ready, done ctx: the ctx is ready */
    TCHECK_EQ(csp_select_ctx_until(done, cs, 2, 0), CSP_ECANCELED);
    /* past deadline: ETIMEDOUT, or the done ctx */
    TCHECK_EQ(csp_select_ctx_until(live, cs, 2, csp_now() - 1), CSP_ETIMEDOUT);
    TCHECK_EQ(csp_select_ctx_until(done, cs, 2, csp_now() - 1), CSP_ECANCELED);
    /* poll with a ready case and a live ctx: the case */
    TCHECK_EQ(csp_chan_send(r, &one), 0);
    TCHECK_EQ(csp_select_ctx_until(live, cs, 2, 0), 1);
    TCHECK_EQ(br, 1);
    TCHECK_EQ(be, SENTINEL);
    /* poll with a ready case and a done ctx: one or the other, both seen */
    int saw_case = 0, saw_ctx = 0;
    for (int t = 0; t < 200; t++) {
        if (csp_chan_len(r) == 0)
            TCHECK_EQ(csp_chan_send(r, &one), 0);
        int x = csp_select_ctx_until(done, cs, 2, 0);
        TCHECK(x == 1 || x == CSP_ECANCELED);
        saw_case += x == 1;
        saw_ctx += x == CSP_ECANCELED;
    }
    TCHECK(saw_case > 0 && saw_ctx > 0);
    csp_chan_try_recv(r, NULL);
    /* the ctx's deadline first: EDEADLINE; the select's first: ETIMEDOUT */
    csp_time_t t0 = csp_now();
    csp_ctx_t *dl = csp_ctx_with_timeout(bg, 4 * MS);
    TCHECK_EQ(csp_select_ctx_until(dl, cs, 2, csp_deadline_after(3600 * CSP_SECOND)),
              CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 4 * MS);
    csp_ctx_release(dl);
    t0 = csp_now();
    dl = csp_ctx_with_timeout(bg, 3600 * CSP_SECOND);
    TCHECK_EQ(csp_select_ctx_until(dl, cs, 2, csp_deadline_after(4 * MS)), CSP_ETIMEDOUT);
    TCHECK(csp_now() - t0 >= 4 * MS);
    TCHECK_EQ(csp_ctx_err(dl), 0);
    csp_ctx_release(dl);
    check_intact(e);
    check_intact(r);
    csp_ctx_release(live);
    csp_ctx_release(done);
    csp_chan_release(e);
    csp_chan_release(r);
    settle_deadlines();
}

static void test_cc_select_until(void **state)
{
    (void)state;
    RUN_ALL(until_main, 2);
}

/* ------------------------------------------------------------------------ */
/* plain threads blocked in the ctx forms                                    */

enum { PT_THREADS = 4 };
static csp_ctx_t *pt_ctx;    /* the waiters' context: a value child of pt_target */
static csp_ctx_t *pt_target; /* what the canceller cancels */
static csp_chan_t *pt_chan[PT_THREADS];
static atomic_int pt_woken;

static void *pt_thread(void *arg)
{
    intptr_t i = (intptr_t)arg;
    int out = SENTINEL, v = 5;
    int r;
    switch (i % 3) {
    case 0: r = csp_chan_recv_ctx(pt_ctx, pt_chan[i], &out); break;
    case 1: r = csp_chan_send_ctx(pt_ctx, pt_chan[i], &v); break;
    default: {
        csp_case_t cs[2] = { CSP_RECV_CASE(pt_chan[i], &out), CSP_SEND_CASE(pt_chan[i], &v) };
        r = csp_select_ctx(pt_ctx, cs, 2);
        break;
    }
    }
    TCHECK_EQ(r, CSP_ECANCELED);
    TCHECK_EQ(out, SENTINEL);
    atomic_fetch_add(&pt_woken, 1);
    return NULL;
}

static void *pt_cancel_thread(void *arg)
{
    (void)arg;
    csp_sleep(5 * MS);
    csp_ctx_cancel(pt_target);
    return NULL;
}

static void pt_cancel_task(void *arg)
{
    (void)pt_cancel_thread(arg);
}

static void run_pt(int runtime, int nworkers)
{
    TC_RESET();
    if (runtime) {
        csp_config_t cfg = { .workers = nworkers };
        assert_int_equal(csp_init(&cfg), 0);
    }
    csp_ctx_t *p = csp_ctx_with_cancel(csp_ctx_background());
    pt_target = p;
    pt_ctx = csp_ctx_with_value(p, &settle_key, NULL, NULL);
    atomic_store(&pt_woken, 0);
    for (int i = 0; i < PT_THREADS; i++)
        pt_chan[i] = csp_chan_make(sizeof(int), 0);
    pthread_t th[PT_THREADS], cth;
    for (intptr_t i = 0; i < PT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, pt_thread, (void *)i), 0);
    if (runtime) {
        assert_int_equal(go_joined(pt_cancel_task, NULL), 0);
    } else {
        assert_int_equal(pthread_create(&cth, NULL, pt_cancel_thread, NULL), 0);
    }
    for (int i = 0; i < PT_THREADS; i++)
        pthread_join(th[i], NULL);
    if (runtime)
        assert_int_equal(csp_wg_wait(&join_wg), 0);
    else
        pthread_join(cth, NULL);
    assert_int_equal(atomic_load(&pt_woken), PT_THREADS);
    for (int i = 0; i < PT_THREADS; i++) {
        int v = 1;
        assert_int_equal(csp_chan_try_send(pt_chan[i], &v), CSP_EAGAIN); /* no stale waiter */
        assert_int_equal(csp_chan_try_recv(pt_chan[i], &v), CSP_EAGAIN);
        csp_chan_release(pt_chan[i]);
    }
    if (runtime)
        csp_shutdown();
    csp_ctx_release(pt_ctx);
    csp_ctx_release(p);
    TC_ASSERT_CLEAN();
}

static void test_cc_plain_threads(void **state)
{
    (void)state;
    for (int rep = 0; rep < 2; rep++) {
        run_pt(0, 0);
        for (int w = 0; w < CC_NW; w++)
            run_pt(1, cc_workers[w]);
    }
}

/* ------------------------------------------------------------------------ */
/* typed channels                                                            */

CSP_CHAN_DECLARE(ichan, int);

static void typed_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    csp_ctx_t *done = csp_ctx_with_cancel(bg);
    csp_ctx_cancel(done);
    ichan_t ch = ichan_make(2);
    ichan_recv_only_t ro = ichan_recv_only(ch);
    ichan_send_only_t so = ichan_send_only(ch);
    int out = 0;
    TCHECK_EQ(ichan_send_ctx(bg, ch, 10), 0);
    TCHECK_EQ(ichan_so_send_ctx(done, so, 20), 0); /* room: completes */
    TCHECK_EQ(ichan_send_ctx(done, ch, 30), CSP_ECANCELED); /* full */
    TCHECK_EQ(ichan_send_ctx(NULL, ch, 30), CSP_EINVAL);
    TCHECK_EQ(ichan_recv_ctx(done, ch, &out), 0);
    TCHECK_EQ(out, 10);
    TCHECK_EQ(ichan_ro_recv_ctx(bg, ro, &out), 0);
    TCHECK_EQ(out, 20);
    TCHECK_EQ(ichan_ro_recv_ctx(done, ro, &out), CSP_ECANCELED);
    TCHECK_EQ(ichan_recv_ctx(NULL, ch, &out), CSP_EINVAL);
    /* blocked typed recv woken by a deadline */
    csp_ctx_t *dl = csp_ctx_with_timeout(bg, 3 * MS);
    out = SENTINEL;
    TCHECK_EQ(ichan_ro_recv_ctx(dl, ro, &out), CSP_EDEADLINE);
    TCHECK_EQ(out, SENTINEL);
    csp_ctx_release(dl);
    TCHECK_EQ(ichan_len(ch), 0);
    ichan_release(ch);
    csp_ctx_release(done);
    settle_deadlines();
}

static void test_cc_typed(void **state)
{
    (void)state;
    RUN_ALL(typed_main, 1);
}

/* ------------------------------------------------------------------------ */
/* stress: cancels race sends, receives and selects; every value that a     */
/* send reported as sent is received exactly once, no other value is         */

enum { SS_PROD = 4, SS_CONS = 4, SS_PER = 400 };
#define SS_ROUNDS (CC_SANITIZER ? 6 : 40)
#define SS_NVAL (SS_PROD * SS_PER)
static csp_chan_t *ss_a, *ss_b;
static csp_ctx_t *ss_ctx;  /* what the ops use: a cancel or value child of ss_root */
static csp_ctx_t *ss_root; /* what the canceller cancels */
static atomic_uchar ss_sent[SS_NVAL], ss_recv[SS_NVAL];
static atomic_int ss_dup, ss_bad;

static void ss_note_recv(int v)
{
    if (v < 0 || v >= SS_NVAL) {
        atomic_fetch_add(&ss_bad, 1);
        return;
    }
    if (atomic_exchange(&ss_recv[v], 1))
        atomic_fetch_add(&ss_dup, 1);
}

static void ss_producer(void *arg)
{
    intptr_t p = (intptr_t)arg;
    for (int k = 0; k < SS_PER; k++) {
        int v = (int)p * SS_PER + k;
        int r;
        if (k % 3 == 2) {
            csp_case_t cs[2] = { CSP_SEND_CASE(ss_a, &v), CSP_SEND_CASE(ss_b, &v) };
            r = csp_select_ctx(ss_ctx, cs, 2);
            if (r >= 0) {
                TCHECK_EQ(cs[r].status, 0);
                r = 0;
            }
        } else {
            r = csp_chan_send_ctx(ss_ctx, k & 1 ? ss_a : ss_b, &v);
        }
        if (r == 0) {
            atomic_store(&ss_sent[v], 1);
        } else {
            TCHECK_EQ(r, CSP_ECANCELED);
            break;
        }
    }
}

static void ss_consumer(void *arg)
{
    intptr_t c = (intptr_t)arg;
    for (;;) {
        int v = -1, r;
        if (c & 1) {
            int va = -1, vb = -1;
            csp_case_t cs[3] = { CSP_RECV_CASE(ss_a, &va), CSP_RECV_CASE(ss_b, &vb),
                                 CSP_RECV_CASE(NULL, &v) };
            r = csp_select_ctx(ss_ctx, cs, 3);
            if (r == 0)
                v = va;
            else if (r == 1)
                v = vb;
            if (r >= 0) {
                TCHECK_EQ(cs[r].status, 0);
                TCHECK(r != 2);
                /* the other buffer untouched */
                TCHECK_EQ(r == 0 ? vb : va, -1);
                r = 0;
            }
        } else {
            r = csp_chan_recv_ctx(ss_ctx, c & 2 ? ss_a : ss_b, &v);
        }
        if (r != 0) {
            TCHECK_EQ(r, CSP_ECANCELED);
            TCHECK_EQ(v, -1); /* nothing written into a cancelled receive */
            return;
        }
        ss_note_recv(v);
    }
}

static void ss_cancel(void *arg)
{
    intptr_t round = (intptr_t)arg;
    csp_sleep((csp_duration_t)(round % 5) * 100 * CSP_MICROSECOND);
    for (int i = (int)(round % 13) * 7; i > 0; i--)
        csp_yield();
    csp_ctx_cancel(ss_root);
}

static void stress_main(void *arg)
{
    (void)arg;
    for (intptr_t round = 0; round < SS_ROUNDS; round++) {
        size_t cap = (size_t)(round % 3) * 2; /* 0, 2, 4 */
        ss_a = csp_chan_make(sizeof(int), cap);
        ss_b = csp_chan_make(sizeof(int), cap ? cap - 1 : 0);
        csp_ctx_t *root = csp_ctx_with_cancel(csp_ctx_background());
        ss_root = root;
        ss_ctx = round & 1 ? csp_ctx_with_value(root, &settle_key, NULL, NULL)
                           : csp_ctx_with_cancel(root);
        for (int i = 0; i < SS_NVAL; i++) {
            atomic_store(&ss_sent[i], 0);
            atomic_store(&ss_recv[i], 0);
        }
        atomic_store(&ss_dup, 0);
        atomic_store(&ss_bad, 0);
        for (intptr_t i = 0; i < SS_PROD; i++)
            TCHECK_EQ(go_joined(ss_producer, (void *)i), 0);
        for (intptr_t i = 0; i < SS_CONS; i++)
            TCHECK_EQ(go_joined(ss_consumer, (void *)i), 0);
        csp_ctx_t *saved = ss_ctx;
        TCHECK_EQ(go_joined(ss_cancel, (void *)round), 0);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        /* what was buffered was sent and not yet received */
        int v;
        while (csp_chan_try_recv(ss_a, &v) == 0)
            ss_note_recv(v);
        while (csp_chan_try_recv(ss_b, &v) == 0)
            ss_note_recv(v);
        int lost = 0, phantom = 0, sent = 0;
        for (int i = 0; i < SS_NVAL; i++) {
            int s = atomic_load(&ss_sent[i]), r = atomic_load(&ss_recv[i]);
            sent += s;
            lost += s && !r;
            phantom += r && !s;
        }
        TCHECK_EQ(atomic_load(&ss_dup), 0);
        TCHECK_EQ(atomic_load(&ss_bad), 0);
        TCHECK_EQ(lost, 0);
        TCHECK_EQ(phantom, 0);
        TCHECK(sent >= 0);
        check_intact(ss_a);
        check_intact(ss_b);
        csp_ctx_release(saved);
        csp_ctx_release(root);
        csp_chan_release(ss_a);
        csp_chan_release(ss_b);
    }
}

static void test_cc_stress_exactly_once(void **state)
{
    (void)state;
    for (int w = 0; w < CC_NW; w++)
        J_RUN(stress_main, NULL, cc_workers[w], CSP_SPAWN_HELP_FIRST);
    J_RUN(stress_main, NULL, 8, CSP_SPAWN_CHILD_FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cc_null_args),
        cmocka_unit_test(test_cc_wake_on_cancel),
        cmocka_unit_test(test_cc_deadline),
        cmocka_unit_test(test_cc_ready_despite_done),
        cmocka_unit_test(test_cc_close_and_uncancellable),
        cmocka_unit_test(test_cc_select_cancel),
        cmocka_unit_test(test_cc_select_fires_first),
        cmocka_unit_test(test_cc_select_uniform),
        cmocka_unit_test(test_cc_select_n0),
        cmocka_unit_test(test_cc_select_until),
        cmocka_unit_test(test_cc_plain_threads),
        cmocka_unit_test(test_cc_typed),
        cmocka_unit_test(test_cc_stress_exactly_once),
    };
    if (getenv("CX_FILTER"))
        cmocka_set_test_filter(getenv("CX_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
