/* ctest-timeout: 120 */
/* Pipelines (include/csp/pipeline.h): every helper's values and order,
 * cancellation from the consumer side (cancel the ctx mid-stream) and from the
 * producer side (the input closes), that no task is left behind afterwards
 * (csp_stats().tasks_live back to where it was), bad input, ownership
 * (CSP_PIPE_CONSUME, arg_free, errors in results; leaks show under ASan),
 * with 1, 2, 4 and 8 workers and repeated rounds.
 *
 * The typed macros, the ordered parallel map and error results are in
 * test_pipeline_par.c.
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
#include <csp/pipeline.h>

#include "task_check.h"
#include "test_util.h"
#include "test_pipeline_util.h"

/* ------------------------------------------------------------------------ */
/* generator                                                                  */

static void gen_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    enum { N = 1000 };
    int *vals = malloc(N * sizeof *vals);
    for (int i = 0; i < N; i++)
        vals[i] = i * 3;
    /* values, in order; the array is copied at creation */
    for (size_t cap = 0; cap <= 16; cap += 16) {
        csp_pipe_opts_t o = { .cap = cap };
        csp_chan_t *g = csp_pipe_generator(ctx, vals, N, sizeof(int), &o);
        TCHECK(g != NULL);
        TCHECK_EQ(csp_chan_cap(g), cap);
        TCHECK_EQ(csp_chan_elem_size(g), sizeof(int));
        vals[0] = -1; /* too late to matter */
        int v, n = 0;
        while (csp_chan_recv(g, &v) == 0) {
            TCHECK_EQ(v, n * 3);
            n++;
        }
        vals[0] = 0;
        TCHECK_EQ(n, N);
        csp_chan_release(g);
    }
    /* n == 0: already closed */
    csp_chan_t *g0 = csp_pipe_generator(ctx, NULL, 0, sizeof(int), NULL);
    TCHECK(g0 != NULL);
    TCHECK(csp_chan_closed(g0));
    TCHECK_EQ(csp_chan_recv(g0, NULL), CSP_ECLOSED);
    csp_chan_release(g0);
    /* signals (elem_size 0): n of them, vals may be NULL */
    csp_chan_t *gs = csp_pipe_generator(ctx, NULL, 7, 0, NULL);
    TCHECK(gs != NULL);
    TCHECK_EQ(pu_count(gs), 7);
    csp_chan_release(gs);
    /* large elements */
    typedef struct { int id; char pad[3000]; int tail; } big_t;
    big_t *bigs = calloc(5, sizeof *bigs);
    for (int i = 0; i < 5; i++) {
        bigs[i].id = i;
        bigs[i].tail = 100 + i;
        memset(bigs[i].pad, 'a' + i, sizeof bigs[i].pad);
    }
    csp_chan_t *gb = csp_pipe_generator(ctx, bigs, 5, sizeof(big_t), NULL);
    free(bigs);
    big_t *b = malloc(sizeof *b);
    for (int i = 0; i < 5; i++) {
        TCHECK_EQ(csp_chan_recv(gb, b), 0);
        TCHECK_EQ(b->id, i);
        TCHECK_EQ(b->tail, 100 + i);
        TCHECK(b->pad[0] == 'a' + i && b->pad[2999] == 'a' + i);
    }
    TCHECK_EQ(csp_chan_recv(gb, b), CSP_ECLOSED);
    free(b);
    csp_chan_release(gb);
    /* consumer side: cancel mid-stream, the generator ends and closes */
    csp_chan_t *g = csp_pipe_generator(ctx, vals, N, sizeof(int), NULL);
    for (int i = 0; i < 10; i++) {
        int v;
        TCHECK_EQ(csp_chan_recv(g, &v), 0);
        TCHECK_EQ(v, i * 3);
    }
    csp_ctx_cancel(ctx);
    TCHECK(pu_count(g) <= 1); /* at most a value that was already handed over */
    csp_chan_release(g);
    TCHECK(pu_wait_live(base));
    /* a generator made on a done ctx sends nothing */
    csp_chan_t *gd = csp_pipe_generator(ctx, vals, N, sizeof(int), NULL);
    TCHECK_EQ(pu_count(gd), 0);
    csp_chan_release(gd);
    csp_ctx_release(ctx);
    free(vals);
    TCHECK(pu_wait_live(base));
}

static void test_generator(void **state)
{
    (void)state;
    PU_RUN_ALL(gen_main, 2);
}

/* ------------------------------------------------------------------------ */
/* repeat and take                                                             */

static void repeat_take_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    const int v123[] = { 1, 2, 3 };
    /* repeat(1, 2, 3) | take(10): 1 2 3 1 2 3 1 2 3 1, then closed */
    csp_chan_t *r = csp_pipe_repeat(ctx, v123, 3, sizeof(int), NULL);
    csp_chan_t *t = csp_pipe_take(ctx, r, 10, NULL);
    TCHECK(r && t);
    int v;
    for (int i = 0; i < 10; i++) {
        TCHECK_EQ(csp_chan_recv(t, &v), 0);
        TCHECK_EQ(v, 1 + i % 3);
    }
    TCHECK_EQ(csp_chan_recv(t, &v), CSP_ECLOSED);
    csp_chan_release(t);
    /* take has ended; repeat has not (it only ends on cancel): base + 1 */
    TCHECK(pu_wait_live(base + 1));
    /* take read exactly 10: repeat goes on with the 11th value (2) */
    TCHECK_EQ(csp_chan_recv(r, &v), 0);
    TCHECK_EQ(v, 2);
    csp_ctx_cancel(ctx);
    TCHECK(pu_count(r) <= 1);
    csp_chan_release(r);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);

    ctx = csp_ctx_with_cancel(csp_ctx_background());
    /* take reads no more than it forwards: a generator of 20, take 5, the
     * generator's next value is the 6th */
    int twenty[20];
    for (int i = 0; i < 20; i++)
        twenty[i] = i;
    csp_chan_t *g = csp_pipe_generator(ctx, twenty, 20, sizeof(int), NULL);
    t = csp_pipe_take(ctx, g, 5, NULL);
    for (int i = 0; i < 5; i++) {
        TCHECK_EQ(csp_chan_recv(t, &v), 0);
        TCHECK_EQ(v, i);
    }
    TCHECK_EQ(csp_chan_recv(t, &v), CSP_ECLOSED);
    TCHECK_EQ(csp_chan_recv(g, &v), 0);
    TCHECK_EQ(v, 5);
    csp_chan_release(t);
    /* take 0: closed at once, g not read */
    t = csp_pipe_take(ctx, g, 0, NULL);
    TCHECK(t && csp_chan_closed(t));
    csp_chan_release(t);
    TCHECK_EQ(csp_chan_recv(g, &v), 0);
    TCHECK_EQ(v, 6);
    /* producer side: the input closes before n */
    t = csp_pipe_take(ctx, g, 1000, NULL);
    int n = 0;
    while (csp_chan_recv(t, &v) == 0) {
        TCHECK_EQ(v, 7 + n);
        n++;
    }
    TCHECK_EQ(n, 13);
    csp_chan_release(t);
    csp_chan_release(g);
    TCHECK(pu_wait_live(base));
    /* consumer side: cancel a long take mid-stream */
    r = csp_pipe_repeat(ctx, v123, 3, sizeof(int), NULL);
    t = csp_pipe_take(ctx, r, 1000000, &(csp_pipe_opts_t){ .cap = 8 });
    for (int i = 0; i < 100; i++)
        TCHECK_EQ(csp_chan_recv(t, NULL), 0);
    csp_ctx_cancel(ctx);
    TCHECK(pu_count(t) <= 9); /* what was buffered, at most */
    csp_chan_release(t);
    csp_chan_release(r);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);
}

static void test_repeat_take(void **state)
{
    (void)state;
    PU_RUN_ALL(repeat_take_main, 3);
}

/* ------------------------------------------------------------------------ */
/* repeat_fn                                                                    */

typedef struct {
    atomic_long calls;
    long        stop_at; /* returns non-zero at this call; -1: never */
    atomic_int  freed;
} counter_t;

static int counter_fn(void *arg, void *out)
{
    counter_t *c = arg;
    long n = atomic_fetch_add(&c->calls, 1);
    if (n == c->stop_at)
        return 1;
    *(long *)out = n;
    return 0;
}

static void counter_free(void *arg)
{
    counter_t *c = arg;
    atomic_fetch_add(&c->freed, 1);
}

static void repeat_fn_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    /* the callback ends the stream: 0..99, then closed; arg_free once */
    counter_t c = { .stop_at = 100 };
    csp_pipe_opts_t o = { .arg_free = counter_free };
    csp_chan_t *s = csp_pipe_repeat_fn(ctx, sizeof(long), counter_fn, &c, &o);
    TCHECK(s != NULL);
    long v;
    for (long i = 0; i < 100; i++) {
        TCHECK_EQ(csp_chan_recv(s, &v), 0);
        TCHECK_EQ(v, i);
    }
    TCHECK_EQ(csp_chan_recv(s, &v), CSP_ECLOSED);
    TCHECK_EQ(v, 0); /* zero-filled */
    csp_chan_release(s);
    TCHECK(pu_wait_live(base));
    TCHECK_EQ(atomic_load(&c.freed), 1);
    TCHECK_EQ(atomic_load(&c.calls), 101);
    /* cancelled mid-stream: fn is not called again once the stage sees it */
    counter_t c2 = { .stop_at = -1 };
    s = csp_pipe_repeat_fn(ctx, sizeof(long), counter_fn, &c2, &o);
    for (long i = 0; i < 50; i++) {
        TCHECK_EQ(csp_chan_recv(s, &v), 0);
        TCHECK_EQ(v, i);
    }
    csp_ctx_cancel(ctx);
    long extra = pu_count(s);
    csp_chan_release(s);
    TCHECK(pu_wait_live(base));
    TCHECK_EQ(atomic_load(&c2.freed), 1);
    /* calls: the 50 received, what came after (<= 1), and one in flight */
    TCHECK(extra <= 1);
    TCHECK(atomic_load(&c2.calls) <= 50 + extra + 1);
    csp_ctx_release(ctx);
}

static void test_repeat_fn(void **state)
{
    (void)state;
    PU_RUN_ALL(repeat_fn_main, 3);
}

/* ------------------------------------------------------------------------ */
/* or                                                                             */

enum { OR_N = 20 };

CSP_TASK(or_closer, (csp_chan_t *, c), (csp_duration_t, after))
{
    csp_sleep(after);
    csp_chan_close(c);
    csp_chan_release(c);
}

/* The book's sig: a channel closed after `after`, or when ctx is done (so
 * that no sig task outlives the test). */
CSP_TASK(sig_task, (csp_ctx_t *, ctx), (csp_chan_t *, c), (csp_duration_t, after))
{
    (void)csp_select_ctx_until(ctx, NULL, 0, csp_deadline_after(after));
    csp_chan_close(c);
    csp_chan_release(c);
    csp_ctx_release(ctx);
}

static csp_chan_t *sig(csp_ctx_t *ctx, csp_duration_t after)
{
    csp_chan_t *c = csp_chan_make(0, 0);
    TCHECK_EQ(CSP_GO(sig_task, csp_ctx_retain(ctx), csp_chan_retain(c), after), 0);
    return c;
}

static void or_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    csp_chan_t *chans[OR_N];
    /* one input closes: the or-channel closes, the others are untouched */
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < OR_N; i++)
            chans[i] = csp_chan_make(0, 0);
        int k = (round * 7) % OR_N;
        csp_chan_t *o = csp_pipe_or(ctx, chans, OR_N, NULL);
        TCHECK(o != NULL);
        TCHECK_EQ(csp_chan_elem_size(o), 0);
        TCHECK_EQ(csp_chan_recv_until(o, NULL, csp_deadline_after(2 * CSP_MILLISECOND)),
                  CSP_ETIMEDOUT);
        TCHECK_EQ(CSP_GO(or_closer, csp_chan_retain(chans[k]), CSP_MILLISECOND), 0);
        TCHECK_EQ(csp_chan_recv(o, NULL), CSP_ECLOSED);
        for (int i = 0; i < OR_N; i++) {
            TCHECK_EQ(csp_chan_closed(chans[i]), i == k);
            csp_chan_release(chans[i]);
        }
        csp_chan_release(o);
        TCHECK(pu_wait_live(base));
    }
    /* the book's example, scaled: sig(2 h), sig(5 min), sig(20 ms), sig(1 h),
     * sig(1 min) -> done after ~20 ms; then done is cancelled (defer) */
    {
        csp_time_t t0 = csp_now();
        csp_chan_t *s[5] = { sig(ctx, 7200 * CSP_SECOND), sig(ctx, 300 * CSP_SECOND),
                             sig(ctx, 20 * CSP_MILLISECOND), sig(ctx, 3600 * CSP_SECOND),
                             sig(ctx, 60 * CSP_SECOND) };
        csp_chan_t *o = csp_pipe_or(ctx, s, 5, &(csp_pipe_opts_t){ .flags = CSP_PIPE_CONSUME });
        TCHECK_EQ(csp_chan_recv(o, NULL), CSP_ECLOSED);
        csp_duration_t el = csp_now() - t0;
        TCHECK(el >= 20 * CSP_MILLISECOND);
        TCHECK(el < 10 * CSP_SECOND);
        csp_chan_release(o);
        TCHECK(pu_wait_live(base + 4)); /* the four long sigs */
        csp_ctx_cancel(ctx);
        TCHECK(pu_wait_live(base));
        csp_ctx_release(ctx);
        ctx = csp_ctx_with_cancel(csp_ctx_background());
    }
    /* a value counts too (a timer channel), and NULL entries never fire */
    {
        csp_chan_t *in[3] = { NULL, csp_after(5 * CSP_MILLISECOND), NULL };
        csp_chan_t *o = csp_pipe_or(ctx, in, 3, NULL);
        TCHECK_EQ(csp_chan_recv(o, NULL), CSP_ECLOSED);
        TCHECK_EQ(csp_chan_len(in[1]), 0); /* the value was consumed */
        csp_chan_release(in[1]);
        csp_chan_release(o);
    }
    /* ctx done: closes; n == 0 closes only then */
    {
        for (int i = 0; i < OR_N; i++)
            chans[i] = csp_chan_make(sizeof(int), 1);
        csp_chan_t *o = csp_pipe_or(ctx, chans, OR_N, NULL);
        csp_chan_t *o0 = csp_pipe_or(ctx, NULL, 0, NULL);
        TCHECK(o && o0);
        TCHECK_EQ(csp_chan_recv_until(o0, NULL, csp_deadline_after(2 * CSP_MILLISECOND)),
                  CSP_ETIMEDOUT);
        csp_ctx_cancel(ctx);
        TCHECK_EQ(csp_chan_recv(o, NULL), CSP_ECLOSED);
        TCHECK_EQ(csp_chan_recv(o0, NULL), CSP_ECLOSED);
        for (int i = 0; i < OR_N; i++) {
            TCHECK(!csp_chan_closed(chans[i]));
            csp_chan_release(chans[i]);
        }
        csp_chan_release(o);
        csp_chan_release(o0);
    }
    /* an or-channel made on a done ctx is closed at once */
    {
        csp_chan_t *c = csp_chan_make(0, 0);
        csp_chan_t *o = csp_pipe_or(ctx, &c, 1, NULL);
        TCHECK_EQ(csp_chan_recv(o, NULL), CSP_ECLOSED);
        csp_chan_release(o);
        csp_chan_release(c);
    }
    csp_ctx_release(ctx);
    TCHECK(pu_wait_live(base));
}

static void test_or(void **state)
{
    (void)state;
    PU_RUN_ALL(or_main, 2);
}

/* ------------------------------------------------------------------------ */
/* or_done and buffer                                                          */

static void or_done_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *app = csp_ctx_with_cancel(csp_ctx_background());
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    /* producer side: forwards everything, closes when in closes */
    int vals[100];
    for (int i = 0; i < 100; i++)
        vals[i] = i * i;
    csp_chan_t *g = csp_pipe_generator(app, vals, 100, sizeof(int), NULL);
    csp_chan_t *od = csp_pipe_or_done(ctx, g, &(csp_pipe_opts_t){ .flags = CSP_PIPE_CONSUME });
    int v, n = 0;
    while (csp_chan_recv(od, &v) == 0) {
        TCHECK_EQ(v, n * n);
        n++;
    }
    TCHECK_EQ(n, 100);
    csp_chan_release(od);
    TCHECK(pu_wait_live(base));
    /* consumer side: a channel we do not control never closes; cancelling
     * ctx ends the range loop anyway */
    csp_chan_t *never = csp_chan_make(sizeof(int), 0);
    od = csp_pipe_or_done(ctx, never, NULL);
    TCHECK_EQ(csp_chan_recv_until(od, &v, csp_deadline_after(2 * CSP_MILLISECOND)),
              CSP_ETIMEDOUT);
    TCHECK_EQ(csp_chan_send(never, &(int){ 42 }), 0);
    TCHECK_EQ(csp_chan_recv(od, &v), 0);
    TCHECK_EQ(v, 42);
    csp_ctx_cancel(ctx);
    TCHECK_EQ(csp_chan_recv(od, &v), CSP_ECLOSED);
    TCHECK(!csp_chan_closed(never));
    csp_chan_release(od);
    csp_chan_release(never);
    TCHECK(pu_wait_live(base));
    /* an endless producer of another part of the system (app ctx) */
    const int one = 1;
    csp_chan_t *r = csp_pipe_repeat(app, &one, 1, sizeof(int), NULL);
    csp_ctx_t *ctx2 = csp_ctx_with_cancel(csp_ctx_background());
    od = csp_pipe_or_done(ctx2, r, NULL);
    for (int i = 0; i < 20; i++) {
        TCHECK_EQ(csp_chan_recv(od, &v), 0);
        TCHECK_EQ(v, 1);
    }
    csp_ctx_cancel(ctx2);
    TCHECK(pu_count(od) <= 1);
    csp_chan_release(od);
    TCHECK(pu_wait_live(base + 1)); /* repeat is still there */
    csp_ctx_cancel(app);
    csp_chan_release(r);
    TCHECK(pu_wait_live(base));
    /* buffer: lets the producer run n ahead */
    csp_ctx_t *ctx3 = csp_ctx_with_cancel(csp_ctx_background());
    counter_t c = { .stop_at = -1 };
    csp_chan_t *s = csp_pipe_repeat_fn(ctx3, sizeof(long), counter_fn, &c, NULL);
    csp_chan_t *b = csp_pipe_buffer(ctx3, s, 5, &(csp_pipe_opts_t){ .cap = 1000 });
    TCHECK_EQ(csp_chan_cap(b), 5);
    /* without a consumer: 5 buffered, 1 in the buffer stage, 1 in repeat_fn */
    csp_time_t until = csp_deadline_after(10 * CSP_SECOND);
    while (csp_chan_len(b) < 5 && csp_now() < until)
        csp_sleep(100 * CSP_MICROSECOND);
    csp_sleep(5 * CSP_MILLISECOND); /* it would go further now if it could */
    TCHECK_EQ(csp_chan_len(b), 5);
    TCHECK(atomic_load(&c.calls) <= 7);
    for (long i = 0; i < 50; i++) {
        long x;
        TCHECK_EQ(csp_chan_recv(b, &x), 0);
        TCHECK_EQ(x, i);
    }
    csp_ctx_cancel(ctx3);
    TCHECK(pu_count(b) <= 6);
    csp_chan_release(b);
    csp_chan_release(s);
    TCHECK(pu_wait_live(base));
    /* producer side: the input closes; buffered values still come, in order */
    {
        csp_ctx_t *c4 = csp_ctx_with_cancel(csp_ctx_background());
        csp_chan_t *bb = csp_pipe_buffer(c4, csp_pipe_generator(c4, vals, 10, sizeof(int), NULL),
                                         4, &(csp_pipe_opts_t){ .flags = CSP_PIPE_CONSUME });
        csp_time_t until = csp_deadline_after(10 * CSP_SECOND);
        while (csp_chan_len(bb) < 4 && csp_now() < until)
            csp_sleep(100 * CSP_MICROSECOND);
        for (int i = 0; i < 10; i++) {
            TCHECK_EQ(csp_chan_recv(bb, &v), 0);
            TCHECK_EQ(v, i * i);
        }
        TCHECK_EQ(csp_chan_recv(bb, &v), CSP_ECLOSED);
        csp_chan_release(bb);
        TCHECK(pu_wait_live(base));
        csp_ctx_release(c4);
    }
    csp_ctx_release(ctx3);
    csp_ctx_release(ctx2);
    csp_ctx_release(ctx);
    csp_ctx_release(app);
}

static void test_or_done(void **state)
{
    (void)state;
    PU_RUN_ALL(or_done_main, 2);
}

/* ------------------------------------------------------------------------ */
/* tee                                                                              */

enum { TEE_N = 2000 };

CSP_TASK(tee_reader, (csp_chan_t *, c), (int *, got), (int *, n), (csp_wg_t *, wg))
{
    int v;
    while (*n < TEE_N && csp_chan_recv(c, &v) == 0)
        got[(*n)++] = v;
    csp_chan_release(c);
    csp_wg_done(wg);
}

static void tee_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    /* the book: tee(take(repeat(1, 2), 4)): both see 1 2 1 2 */
    const int v12[] = { 1, 2 };
    csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    csp_chan_t *o1, *o2;
    TCHECK_EQ(csp_pipe_tee(ctx, csp_pipe_take(ctx, csp_pipe_repeat(ctx, v12, 2, sizeof(int), NULL),
                                              4, &own),
                           &o1, &o2, &own),
              0);
    int v1, v2, n = 0;
    while (csp_chan_recv(o1, &v1) == 0) {
        TCHECK_EQ(csp_chan_recv(o2, &v2), 0);
        TCHECK_EQ(v1, 1 + n % 2);
        TCHECK_EQ(v2, v1);
        n++;
    }
    TCHECK_EQ(n, 4);
    TCHECK_EQ(csp_chan_recv(o2, &v2), CSP_ECLOSED);
    csp_chan_release(o1);
    csp_chan_release(o2);
    TCHECK(pu_wait_live(base + 1)); /* repeat */
    csp_ctx_cancel(ctx);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);

    /* two concurrent readers see every value in order */
    ctx = csp_ctx_with_cancel(csp_ctx_background());
    int *vals = malloc(TEE_N * sizeof *vals);
    for (int i = 0; i < TEE_N; i++)
        vals[i] = i;
    int *got1 = calloc(TEE_N, sizeof(int)), *got2 = calloc(TEE_N, sizeof(int));
    int n1 = 0, n2 = 0;
    csp_wg_t wg = CSP_WG_INIT;
    for (size_t cap = 0; cap <= 4; cap += 4) {
        n1 = n2 = 0;
        csp_chan_t *g = csp_pipe_generator(ctx, vals, TEE_N, sizeof(int), NULL);
        TCHECK_EQ(csp_pipe_tee(ctx, g, &o1, &o2, &(csp_pipe_opts_t){ .cap = cap }), 0);
        csp_chan_release(g);
        csp_wg_add(&wg, 2);
        CSP_GO(tee_reader, o1, got1, &n1, &wg);
        CSP_GO(tee_reader, o2, got2, &n2, &wg);
        csp_wg_wait(&wg);
        TCHECK_EQ(n1, TEE_N);
        TCHECK_EQ(n2, TEE_N);
        for (int i = 0; i < TEE_N; i++) {
            TCHECK_EQ(got1[i], i);
            TCHECK_EQ(got2[i], i);
        }
        TCHECK(pu_wait_live(base));
    }
    /* lock step: one value goes to both before the next is read. With
     * unbuffered outputs and only out1 read, out1 gets one value, then tee
     * waits for out2. */
    counter_t c = { .stop_at = -1 };
    csp_chan_t *src = csp_pipe_repeat_fn(ctx, sizeof(long), counter_fn, &c, NULL);
    TCHECK_EQ(csp_pipe_tee(ctx, src, &o1, &o2, NULL), 0);
    long x;
    TCHECK_EQ(csp_chan_recv(o1, &x), 0);
    TCHECK_EQ(x, 0);
    TCHECK_EQ(csp_chan_recv_until(o1, &x, csp_deadline_after(20 * CSP_MILLISECOND)),
              CSP_ETIMEDOUT);
    TCHECK(atomic_load(&c.calls) <= 2); /* value 0 in tee, value 1 in repeat_fn */
    TCHECK_EQ(csp_chan_recv(o2, &x), 0);
    TCHECK_EQ(x, 0);
    TCHECK_EQ(csp_chan_recv(o2, &x), 0); /* now either order */
    TCHECK_EQ(x, 1);
    TCHECK_EQ(csp_chan_recv(o1, &x), 0);
    TCHECK_EQ(x, 1);
    /* consumer side: cancel; both outputs close */
    csp_ctx_cancel(ctx);
    TCHECK(pu_count(o1) <= 1);
    TCHECK(pu_count(o2) <= 1);
    csp_chan_release(o1);
    csp_chan_release(o2);
    csp_chan_release(src);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);
    free(vals);
    free(got1);
    free(got2);
}

static void test_tee(void **state)
{
    (void)state;
    PU_RUN_ALL(tee_main, 2);
}

/* ------------------------------------------------------------------------ */
/* bridge                                                                           */

/* The book's genVals: 10 channels of one value each. */
CSP_TASK(gen_vals, (csp_ctx_t *, ctx), (csp_chan_t *, chan_stream), (int, nchans), (int, per))
{
    for (int i = 0; i < nchans; i++) {
        csp_chan_t *stream = csp_chan_make(sizeof(int), (size_t)per);
        for (int k = 0; k < per; k++)
            csp_chan_send(stream, &(int){ i * per + k });
        csp_chan_close(stream);
        /* the reference travels with the send; a failed send keeps it here */
        if (csp_chan_send_ctx(ctx, chan_stream, &stream) != 0) {
            csp_chan_release(stream);
            break;
        }
    }
    csp_chan_close(chan_stream);
    csp_chan_release(chan_stream);
    csp_ctx_release(ctx);
}

static void bridge_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    /* genVals: 0 1 ... 9, in order; then several values per channel */
    for (int per = 1; per <= 7; per += 3) {
        csp_chan_t *cs = csp_chan_make(sizeof(csp_chan_t *), 0);
        TCHECK_EQ(CSP_GO(gen_vals, csp_ctx_retain(ctx), csp_chan_retain(cs), 10, per), 0);
        csp_chan_t *b = csp_pipe_bridge(ctx, cs, sizeof(int), NULL);
        csp_chan_release(cs);
        TCHECK(b != NULL);
        int v, n = 0;
        while (csp_chan_recv(b, &v) == 0) {
            TCHECK_EQ(v, n);
            n++;
        }
        TCHECK_EQ(n, 10 * per);
        csp_chan_release(b);
        TCHECK(pu_wait_live(base));
    }
    /* NULL inner channels are skipped; a wrong elem_size is released unread */
    {
        csp_chan_t *cs = csp_chan_make(sizeof(csp_chan_t *), 8);
        csp_chan_t *a = csp_chan_make(sizeof(int), 2), *wrong = csp_chan_make(sizeof(long), 1),
                   *z = NULL;
        csp_chan_send(a, &(int){ 5 });
        csp_chan_close(a);
        csp_chan_send(wrong, &(long){ 9 });
        csp_chan_close(wrong);
        csp_chan_send(cs, &z);
        csp_chan_send(cs, &wrong); /* references handed over */
        csp_chan_send(cs, &a);
        csp_chan_close(cs);
        csp_chan_t *b = csp_pipe_bridge(ctx, cs, sizeof(int), &(csp_pipe_opts_t){
                                                               .flags = CSP_PIPE_CONSUME });
        int v;
        TCHECK_EQ(csp_chan_recv(b, &v), 0);
        TCHECK_EQ(v, 5);
        TCHECK_EQ(csp_chan_recv(b, &v), CSP_ECLOSED);
        csp_chan_release(b);
        TCHECK(pu_wait_live(base));
    }
    /* consumer side: an inner channel that never closes; cancel ends bridge,
     * which releases the inner channel it reads and those still buffered */
    {
        csp_chan_t *cs = csp_chan_make(sizeof(csp_chan_t *), 4);
        csp_chan_t *open = csp_chan_make(sizeof(int), 4);
        csp_chan_send(open, &(int){ 1 });
        csp_chan_t *ref = csp_chan_retain(open);
        csp_chan_send(cs, &ref);
        for (int i = 0; i < 3; i++) {
            csp_chan_t *x = csp_chan_make(sizeof(int), 0);
            csp_chan_send(cs, &x);
        }
        csp_chan_t *b = csp_pipe_bridge(ctx, cs, sizeof(int), NULL);
        int v;
        TCHECK_EQ(csp_chan_recv(b, &v), 0);
        TCHECK_EQ(v, 1);
        TCHECK_EQ(csp_chan_recv_until(b, &v, csp_deadline_after(2 * CSP_MILLISECOND)),
                  CSP_ETIMEDOUT);
        csp_ctx_cancel(ctx);
        TCHECK_EQ(csp_chan_recv(b, &v), CSP_ECLOSED);
        csp_chan_release(b);
        TCHECK(pu_wait_live(base));
        TCHECK_EQ(csp_chan_len(cs), 0); /* the buffered ones were taken and released */
        csp_chan_release(cs);
        csp_chan_release(open); /* ASan: the bridge released its reference */
    }
    csp_ctx_release(ctx);
}

static void test_bridge(void **state)
{
    (void)state;
    PU_RUN_ALL(bridge_main, 2);
}

/* ------------------------------------------------------------------------ */
/* fan_in                                                                            */

enum { FI_IN = 6, FI_PER = 500 };

static void fan_in_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    int *vals = malloc(FI_IN * FI_PER * sizeof *vals);
    for (int i = 0; i < FI_IN * FI_PER; i++)
        vals[i] = i;
    for (size_t cap = 0; cap <= 8; cap += 8) {
        csp_chan_t *ins[FI_IN];
        for (int i = 0; i < FI_IN; i++)
            ins[i] = csp_pipe_generator(ctx, vals + i * FI_PER, FI_PER, sizeof(int), NULL);
        csp_pipe_opts_t o = { .cap = cap, .flags = CSP_PIPE_CONSUME };
        csp_chan_t *m = csp_pipe_fan_in(ctx, ins, FI_IN, &o);
        TCHECK(m != NULL);
        /* every value once; each input's own order kept */
        int last[FI_IN], v, n = 0;
        for (int i = 0; i < FI_IN; i++)
            last[i] = -1;
        char *seen = calloc(FI_IN * FI_PER, 1);
        while (csp_chan_recv(m, &v) == 0) {
            TCHECK(v >= 0 && v < FI_IN * FI_PER);
            if (v < 0 || v >= FI_IN * FI_PER)
                break;
            TCHECK(!seen[v]);
            seen[v] = 1;
            int src = v / FI_PER;
            TCHECK(v > last[src]);
            last[src] = v;
            n++;
        }
        TCHECK_EQ(n, FI_IN * FI_PER);
        free(seen);
        csp_chan_release(m);
        TCHECK(pu_wait_live(base));
    }
    /* one input ends early, the others go on; all closed -> closed */
    {
        csp_chan_t *ins[3] = { csp_pipe_generator(ctx, vals, 1, sizeof(int), NULL),
                               csp_chan_make(sizeof(int), 0), csp_chan_make(sizeof(int), 0) };
        csp_chan_t *m = csp_pipe_fan_in(ctx, ins, 3, NULL);
        int v;
        TCHECK_EQ(csp_chan_recv(m, &v), 0);
        TCHECK_EQ(v, 0);
        csp_chan_send(ins[1], &(int){ 11 });
        TCHECK_EQ(csp_chan_recv(m, &v), 0);
        TCHECK_EQ(v, 11);
        csp_chan_close(ins[1]);
        TCHECK_EQ(csp_chan_recv_until(m, &v, csp_deadline_after(2 * CSP_MILLISECOND)),
                  CSP_ETIMEDOUT);
        csp_chan_send(ins[2], &(int){ 22 });
        TCHECK_EQ(csp_chan_recv(m, &v), 0);
        TCHECK_EQ(v, 22);
        csp_chan_close(ins[2]);
        TCHECK_EQ(csp_chan_recv(m, &v), CSP_ECLOSED);
        for (int i = 0; i < 3; i++)
            csp_chan_release(ins[i]);
        csp_chan_release(m);
        TCHECK(pu_wait_live(base));
    }
    /* consumer side: cancel with endless inputs */
    {
        const int one = 1, two = 2;
        csp_chan_t *ins[2] = { csp_pipe_repeat(ctx, &one, 1, sizeof(int), NULL),
                               csp_pipe_repeat(ctx, &two, 1, sizeof(int), NULL) };
        csp_chan_t *m = csp_pipe_fan_in(ctx, ins, 2, &(csp_pipe_opts_t){
                                                         .flags = CSP_PIPE_CONSUME });
        int v, ones = 0, twos = 0;
        for (int i = 0; i < 400; i++) {
            TCHECK_EQ(csp_chan_recv(m, &v), 0);
            ones += v == 1;
            twos += v == 2;
        }
        TCHECK_EQ(ones + twos, 400);
        csp_ctx_cancel(ctx);
        TCHECK(pu_count(m) <= 2);
        csp_chan_release(m);
        TCHECK(pu_wait_live(base));
    }
    csp_ctx_release(ctx);
    free(vals);
}

static void test_fan_in(void **state)
{
    (void)state;
    PU_RUN_ALL(fan_in_main, 2);
}

/* ------------------------------------------------------------------------ */
/* map and filter                                                                   */

typedef struct {
    long       mult;
    int        stop_at; /* STOP on this input; -1: never */
    atomic_int freed;
    atomic_int calls;
} mapper_t;

/* int -> long: (x * mult), odd inputs skipped */
static int map_int_long(void *arg, const void *in, void *out)
{
    mapper_t *m = arg;
    int x = *(const int *)in;
    atomic_fetch_add(&m->calls, 1);
    if (x == m->stop_at)
        return CSP_PIPE_STOP;
    if (x & 1)
        return CSP_PIPE_SKIP;
    TCHECK_EQ(*(long *)out, 0); /* zeroed before the call */
    *(long *)out = (long)x * m->mult;
    return CSP_PIPE_EMIT;
}

static int ident_long_map(void *arg, const void *in, void *out)
{
    atomic_fetch_add(&((mapper_t *)arg)->calls, 1);
    *(long *)out = *(const long *)in;
    return CSP_PIPE_EMIT;
}

static void mapper_free(void *arg)
{
    atomic_fetch_add(&((mapper_t *)arg)->freed, 1);
}

static bool div3(void *arg, const void *elem)
{
    (void)arg;
    return *(const long *)elem % 3 == 0;
}

static int neg_rc(void *arg, const void *in, void *out)
{
    (void)arg;
    *(int *)out = *(const int *)in;
    return *(const int *)in == 3 ? -5 : CSP_PIPE_EMIT; /* any other code: STOP */
}

static void map_filter_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    enum { N = 300 };
    int vals[N];
    for (int i = 0; i < N; i++)
        vals[i] = i;
    csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    /* generator | map(int -> long, skip odds) | filter(% 3 == 0) */
    mapper_t m = { .mult = 10, .stop_at = -1 };
    csp_pipe_opts_t mo = { .flags = CSP_PIPE_CONSUME, .arg_free = mapper_free, .cap = 3 };
    csp_chan_t *f = csp_pipe_filter(
        ctx,
        csp_pipe_map(ctx, csp_pipe_generator(ctx, vals, N, sizeof(int), NULL), sizeof(long),
                     map_int_long, &m, &mo),
        div3, NULL, &own);
    TCHECK(f != NULL);
    TCHECK_EQ(csp_chan_elem_size(f), sizeof(long));
    long x;
    int n = 0;
    for (int i = 0; i < N; i += 2) {
        if ((long)i * 10 % 3)
            continue;
        TCHECK_EQ(csp_chan_recv(f, &x), 0);
        TCHECK_EQ(x, (long)i * 10);
        n++;
    }
    TCHECK_EQ(csp_chan_recv(f, &x), CSP_ECLOSED);
    TCHECK_EQ(n, 50);
    csp_chan_release(f);
    TCHECK(pu_wait_live(base));
    TCHECK_EQ(atomic_load(&m.freed), 1);
    TCHECK_EQ(atomic_load(&m.calls), N);
    /* STOP: the items before it, then closed; the input is left alone */
    mapper_t ms = { .mult = 1, .stop_at = 10 };
    csp_chan_t *g = csp_pipe_generator(ctx, vals, N, sizeof(int), NULL);
    csp_chan_t *mp = csp_pipe_map(ctx, g, sizeof(long), map_int_long, &ms,
                                  &(csp_pipe_opts_t){ .arg_free = mapper_free });
    for (int i = 0; i < 10; i += 2) {
        TCHECK_EQ(csp_chan_recv(mp, &x), 0);
        TCHECK_EQ(x, i);
    }
    TCHECK_EQ(csp_chan_recv(mp, &x), CSP_ECLOSED);
    csp_chan_release(mp);
    TCHECK(pu_wait_live(base + 1)); /* the generator waits to send 11 */
    TCHECK_EQ(atomic_load(&ms.freed), 1);
    int y;
    TCHECK_EQ(csp_chan_recv(g, &y), 0);
    TCHECK_EQ(y, 11);
    /* a callback code outside EMIT/SKIP/STOP stops too */
    mp = csp_pipe_map(ctx, g, sizeof(int), neg_rc, NULL, &own); /* g: 12.. */
    TCHECK_EQ(csp_chan_recv(mp, &y), 0);
    TCHECK_EQ(y, 12);
    csp_chan_release(mp); /* the consumer stops reading: cancel to end it */
    csp_ctx_cancel(ctx);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);
    ctx = csp_ctx_with_cancel(csp_ctx_background());
    mp = csp_pipe_map(ctx, csp_pipe_generator(ctx, vals, 10, sizeof(int), NULL), sizeof(int),
                      neg_rc, NULL, &own);
    TCHECK_EQ(pu_count(mp), 3); /* 0 1 2, then -5 at 3 stops */
    csp_chan_release(mp);
    TCHECK(pu_wait_live(base + 1));
    csp_ctx_cancel(ctx);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);
    /* consumer side: cancel a long map mid-stream */
    ctx = csp_ctx_with_cancel(csp_ctx_background());
    const int two = 2;
    mapper_t mm = { .mult = 3, .stop_at = -1 };
    mp = csp_pipe_map(ctx, csp_pipe_repeat(ctx, &two, 1, sizeof(int), NULL), sizeof(long),
                      map_int_long, &mm, &(csp_pipe_opts_t){ .flags = CSP_PIPE_CONSUME,
                                                               .arg_free = mapper_free });
    for (int i = 0; i < 100; i++) {
        TCHECK_EQ(csp_chan_recv(mp, &x), 0);
        TCHECK_EQ(x, 6);
    }
    csp_ctx_cancel(ctx);
    TCHECK(pu_count(mp) <= 1);
    csp_chan_release(mp);
    TCHECK(pu_wait_live(base));
    TCHECK_EQ(atomic_load(&mm.freed), 1);
    csp_ctx_release(ctx);
}

static void test_map_filter(void **state)
{
    (void)state;
    PU_RUN_ALL(map_filter_main, 3);
}

/* ------------------------------------------------------------------------ */
/* parallel map, unordered                                                          */

static int square_slow(void *arg, const void *in, void *out)
{
    int x = *(const int *)in;
    if (arg && x % 7 == 0)
        csp_yield();
    if (x % 5 == 4)
        return CSP_PIPE_SKIP;
    *(long *)out = (long)x * x;
    return CSP_PIPE_EMIT;
}

static int stop_at_100(void *arg, const void *in, void *out)
{
    (void)arg;
    int x = *(const int *)in;
    *(int *)out = x;
    return x == 100 ? CSP_PIPE_STOP : CSP_PIPE_EMIT;
}

static void par_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    enum { N = 2000 };
    int *vals = malloc(N * sizeof *vals);
    for (int i = 0; i < N; i++)
        vals[i] = i;
    static const size_t nworkers[] = { 1, 3, 8 };
    for (size_t wi = 0; wi < 3; wi++) {
        mapper_t m = { 0 };
        csp_chan_t *p = csp_pipe_par_map(ctx, csp_pipe_generator(ctx, vals, N, sizeof(int), NULL),
                                         nworkers[wi], sizeof(long), square_slow, &m,
                                         &(csp_pipe_opts_t){ .flags = CSP_PIPE_CONSUME,
                                                             .arg_free = mapper_free,
                                                             .cap = wi });
        TCHECK(p != NULL);
        char *seen = calloc(N, 1);
        long x;
        int n = 0;
        while (csp_chan_recv(p, &x) == 0) {
            long r = 0;
            while ((r + 1) * (r + 1) <= x)
                r++;
            TCHECK(r * r == x && r < N && r % 5 != 4);
            if (r >= N)
                break;
            TCHECK(!seen[r]);
            seen[r] = 1;
            n++;
        }
        TCHECK_EQ(n, N - N / 5);
        free(seen);
        csp_chan_release(p);
        TCHECK(pu_wait_live(base));
        TCHECK_EQ(atomic_load(&m.freed), 1);
    }
    /* STOP ends the whole stage and closes the output. Unordered, the stop
     * races with the other workers: until they see it they go on (so any
     * number of later items may come), and what they hold then may be
     * dropped. But the input is read in order and a worker holds one item
     * at a time, so of 0..99 at most the 3 other workers' items are lost. */
    {
        csp_chan_t *g = csp_pipe_generator(ctx, vals, N, sizeof(int), NULL);
        csp_chan_t *p = csp_pipe_par_map(ctx, g, 4, sizeof(int), stop_at_100, NULL, NULL);
        int x, below = 0;
        while (csp_chan_recv(p, &x) == 0) {
            below += x < 100;
            TCHECK(x != 100);
        }
        TCHECK(below >= 97 && below <= 100);
        if (below < 97)
            tc_fail(__FILE__, __LINE__, "%d of 0..99 came out", below);
        csp_chan_release(p);
        TCHECK(pu_wait_live(base + 1)); /* the generator */
        csp_ctx_cancel(ctx);
        csp_chan_release(g);
        TCHECK(pu_wait_live(base));
        csp_ctx_release(ctx);
        ctx = csp_ctx_with_cancel(csp_ctx_background());
    }
    /* consumer side: cancel mid-stream */
    {
        const int three = 3;
        csp_chan_t *p = csp_pipe_par_map(ctx, csp_pipe_repeat(ctx, &three, 1, sizeof(int), NULL),
                                         5, sizeof(long), square_slow, (void *)1,
                                         &(csp_pipe_opts_t){ .flags = CSP_PIPE_CONSUME });
        long x;
        for (int i = 0; i < 200; i++) {
            TCHECK_EQ(csp_chan_recv(p, &x), 0);
            TCHECK_EQ(x, 9);
        }
        csp_ctx_cancel(ctx);
        TCHECK(pu_count(p) <= 5);
        csp_chan_release(p);
        TCHECK(pu_wait_live(base));
    }
    csp_ctx_release(ctx);
    free(vals);
}

static void test_par_map(void **state)
{
    (void)state;
    PU_RUN_ALL(par_main, 2);
}

/* ------------------------------------------------------------------------ */
/* bad input                                                                           */

static int id_map(void *arg, const void *in, void *out)
{
    (void)arg;
    memcpy(out, in, sizeof(int));
    return CSP_PIPE_EMIT;
}

static csp_error_t *id_try(void *arg, const void *in, void *out)
{
    (void)arg;
    memcpy(out, in, sizeof(int));
    return NULL;
}

static bool keep_all(void *arg, const void *e)
{
    (void)arg;
    (void)e;
    return true;
}

static void bad_input_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    csp_chan_t *in = csp_chan_make(sizeof(int), 4);
    int vals[2] = { 1, 2 };
    mapper_t m = { 0 };
    csp_pipe_opts_t af = { .arg_free = mapper_free };
    csp_pipe_opts_t bad_res = { .reserved = { 0, 1 } };
    csp_pipe_opts_t bad_flags = { .flags = 1u << 7 };
    csp_pipe_opts_t bad_cap = { .cap = CSP_CHAN_MAX_CAP + 1 };

    /* NULL ctx / channel / callback */
    TCHECK(csp_pipe_generator(NULL, vals, 2, sizeof(int), NULL) == NULL);
    TCHECK(csp_pipe_generator(ctx, NULL, 2, sizeof(int), NULL) == NULL);
    TCHECK(csp_pipe_generator(ctx, vals, 2, CSP_CHAN_MAX_ELEM + 1, NULL) == NULL);
    TCHECK(csp_pipe_generator(ctx, vals, SIZE_MAX / 2, sizeof(int), NULL) == NULL);
    TCHECK(csp_pipe_repeat(NULL, vals, 2, sizeof(int), NULL) == NULL);
    TCHECK(csp_pipe_repeat(ctx, vals, 0, sizeof(int), NULL) == NULL);
    TCHECK(csp_pipe_repeat_fn(NULL, sizeof(long), counter_fn, &m, &af) == NULL);
    TCHECK(csp_pipe_repeat_fn(ctx, sizeof(long), NULL, &m, &af) == NULL);
    TCHECK(csp_pipe_take(NULL, in, 1, NULL) == NULL);
    TCHECK(csp_pipe_take(ctx, NULL, 1, NULL) == NULL);
    TCHECK(csp_pipe_or_done(NULL, in, NULL) == NULL);
    TCHECK(csp_pipe_or_done(ctx, NULL, NULL) == NULL);
    TCHECK(csp_pipe_buffer(ctx, NULL, 3, NULL) == NULL);
    TCHECK(csp_pipe_buffer(ctx, in, CSP_CHAN_MAX_CAP + 1, NULL) == NULL);
    TCHECK(csp_pipe_map(ctx, in, sizeof(int), NULL, &m, &af) == NULL);
    TCHECK(csp_pipe_map(ctx, NULL, sizeof(int), id_map, &m, &af) == NULL);
    TCHECK(csp_pipe_map(NULL, in, sizeof(int), id_map, &m, &af) == NULL);
    TCHECK(csp_pipe_map(ctx, in, CSP_CHAN_MAX_ELEM + 1, id_map, &m, &af) == NULL);
    TCHECK(csp_pipe_filter(ctx, in, NULL, &m, &af) == NULL);
    TCHECK(csp_pipe_filter(ctx, NULL, keep_all, &m, &af) == NULL);
    TCHECK(csp_pipe_map_try(ctx, in, sizeof(int), NULL, &m, &af) == NULL);
    TCHECK(csp_pipe_map_try(ctx, in, CSP_RESULT_VALUE_MAX + 1, id_try, &m, &af) == NULL);
    TCHECK(csp_pipe_par_map(ctx, in, 0, sizeof(int), id_map, &m, &af) == NULL);
    TCHECK(csp_pipe_par_map(ctx, in, 65536, sizeof(int), id_map, &m, &af) == NULL);
    TCHECK(csp_pipe_par_map(ctx, in, 2, sizeof(int), NULL, &m, &af) == NULL);
    TCHECK(csp_pipe_par_map(NULL, in, 2, sizeof(int), id_map, &m, &af) == NULL);
    TCHECK(csp_pipe_par_map_try(ctx, in, 0, sizeof(int), id_try, &m, &af) == NULL);
    TCHECK(csp_pipe_par_map_try(ctx, in, 2, CSP_RESULT_VALUE_MAX + 1, id_try, &m, &af) == NULL);
    /* every arg_free above ran exactly once each */
    TCHECK_EQ(atomic_load(&m.freed), 16);
    /* bad options */
    TCHECK(csp_pipe_take(ctx, in, 1, &bad_res) == NULL);
    TCHECK(csp_pipe_take(ctx, in, 1, &bad_flags) == NULL);
    TCHECK(csp_pipe_take(ctx, in, 1, &bad_cap) == NULL);
    TCHECK(csp_pipe_generator(ctx, vals, 2, sizeof(int), &bad_res) == NULL);
    TCHECK(csp_pipe_fan_in(ctx, &in, 1, &bad_flags) == NULL);
    csp_chan_t *o1 = (csp_chan_t *)&m, *o2 = (csp_chan_t *)&m;
    TCHECK_EQ(csp_pipe_tee(ctx, in, &o1, &o2, &bad_res), CSP_EINVAL);
    TCHECK(o1 == NULL && o2 == NULL);
    /* or */
    TCHECK(csp_pipe_or(NULL, &in, 1, NULL) == NULL);
    TCHECK(csp_pipe_or(ctx, NULL, 2, NULL) == NULL);
    TCHECK(csp_pipe_or(ctx, &in, 65536, NULL) == NULL);
    /* tee */
    TCHECK_EQ(csp_pipe_tee(NULL, in, &o1, &o2, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_pipe_tee(ctx, NULL, &o1, &o2, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_pipe_tee(ctx, in, NULL, &o2, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_pipe_tee(ctx, in, &o1, NULL, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_pipe_tee(ctx, in, &o1, &o1, NULL), CSP_EINVAL);
    TCHECK(o1 == NULL && o2 == NULL);
    /* bridge: the stream must carry channel pointers */
    TCHECK(csp_pipe_bridge(ctx, in, sizeof(int), NULL) == NULL);
    TCHECK(csp_pipe_bridge(NULL, in, sizeof(int), NULL) == NULL);
    TCHECK(csp_pipe_bridge(ctx, NULL, sizeof(int), NULL) == NULL);
    /* fan_in: n >= 1, no NULL entry, one elem_size */
    csp_chan_t *other = csp_chan_make(sizeof(long), 0);
    csp_chan_t *mixed[2] = { in, other }, *withnull[2] = { in, NULL };
    TCHECK(csp_pipe_fan_in(ctx, mixed, 2, NULL) == NULL);
    TCHECK(csp_pipe_fan_in(ctx, withnull, 2, NULL) == NULL);
    TCHECK(csp_pipe_fan_in(ctx, mixed, 0, NULL) == NULL);
    TCHECK(csp_pipe_fan_in(ctx, NULL, 2, NULL) == NULL);
    TCHECK(csp_pipe_fan_in(NULL, mixed, 1, NULL) == NULL);
    /* drain */
    TCHECK_EQ(csp_pipe_drain(NULL, NULL), CSP_EINVAL);
    csp_pipe_free_chan(NULL);
    csp_pipe_free_result(NULL);
    /* CSP_PIPE_CONSUME on failure releases the inputs (else ASan reports a
     * leak): each channel here has only the reference handed over */
    csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    csp_pipe_opts_t own_bad = { .flags = CSP_PIPE_CONSUME, .reserved = { 1 } };
    TCHECK(csp_pipe_take(NULL, csp_chan_make(4, 0), 1, &own) == NULL);
    TCHECK(csp_pipe_take(ctx, csp_chan_make(4, 0), 1, &own_bad) == NULL);
    TCHECK(csp_pipe_map(ctx, csp_chan_make(4, 0), sizeof(int), NULL, NULL, &own) == NULL);
    TCHECK(csp_pipe_par_map(ctx, csp_chan_make(4, 0), 0, sizeof(int), id_map, NULL, &own) ==
           NULL);
    TCHECK(csp_pipe_bridge(ctx, csp_chan_make(4, 0), sizeof(int), &own) == NULL);
    TCHECK_EQ(csp_pipe_tee(ctx, csp_chan_make(4, 0), &o1, NULL, &own), CSP_EINVAL);
    csp_chan_t *pair[2] = { csp_chan_make(4, 0), csp_chan_make(8, 0) };
    TCHECK(csp_pipe_fan_in(ctx, pair, 2, &own) == NULL);
    csp_chan_t *pair2[2] = { csp_chan_make(0, 0), csp_chan_make(0, 0) };
    TCHECK(csp_pipe_or(NULL, pair2, 2, &own) == NULL);
    /* nothing was spawned, and nothing happened to in */
    TCHECK_EQ(csp_chan_len(in), 0);
    TCHECK(!csp_chan_closed(in));
    csp_chan_release(other);
    csp_chan_release(in);
    csp_ctx_release(ctx);
    TCHECK(pu_wait_live(base));
}

static void test_bad_input(void **state)
{
    (void)state;
    PU_RUN_ALL(bad_input_main, 1);
}

/* without a runtime: NULL, no crash, CONSUME still releases */
static void test_no_runtime(void **state)
{
    (void)state;
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    int v = 1;
    assert_null(csp_pipe_generator(ctx, &v, 1, sizeof(int), NULL));
    assert_null(csp_pipe_repeat(ctx, &v, 1, sizeof(int), NULL));
    csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    assert_null(csp_pipe_take(ctx, csp_chan_make(4, 0), 1, &own));
    assert_null(csp_pipe_par_map(ctx, csp_chan_make(4, 0), 3, 4, id_map, NULL, &own));
    csp_pipe_opts_t ord = { .flags = CSP_PIPE_CONSUME | CSP_PIPE_ORDERED };
    assert_null(csp_pipe_par_map(ctx, csp_chan_make(4, 0), 3, 4, id_map, NULL, &ord));
    csp_chan_t *ins[2] = { csp_chan_make(4, 0), csp_chan_make(4, 0) };
    assert_null(csp_pipe_fan_in(ctx, ins, 2, &own));
    csp_chan_t *o1, *o2;
    assert_int_equal(csp_pipe_tee(ctx, csp_chan_make(4, 0), &o1, &o2, &own), CSP_ESHUTDOWN);
    assert_null(o1);
    assert_null(o2);
    /* take 0 and a generator of nothing need no task */
    csp_chan_t *in = csp_chan_make(4, 0);
    csp_chan_t *t = csp_pipe_take(ctx, in, 0, NULL);
    assert_non_null(t);
    assert_int_equal(csp_chan_recv(t, NULL), CSP_ECLOSED);
    csp_chan_release(t);
    csp_chan_release(in);
    csp_ctx_release(ctx);
}

/* ------------------------------------------------------------------------ */
/* plain threads: stages made and consumed outside any task                         */

static void test_plain_thread(void **state)
{
    (void)state;
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    int vals[100];
    for (int i = 0; i < 100; i++)
        vals[i] = i;
    csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME | CSP_PIPE_ORDERED };
    csp_chan_t *p = csp_pipe_par_map(ctx, csp_pipe_generator(ctx, vals, 100, sizeof(int), NULL),
                                     3, sizeof(int), id_map, NULL, &own);
    assert_non_null(p);
    int v;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(csp_chan_recv(p, &v), 0);
        assert_int_equal(v, i);
    }
    assert_int_equal(csp_chan_recv(p, &v), CSP_ECLOSED);
    csp_chan_release(p);
    const int one = 1;
    csp_chan_t *r = csp_pipe_repeat(ctx, &one, 1, sizeof(int), NULL);
    csp_chan_t *t = csp_pipe_take(ctx, r, 5, &(csp_pipe_opts_t){ .flags = CSP_PIPE_CONSUME });
    assert_non_null(t);
    assert_int_equal(csp_pipe_drain(t, NULL), 5);
    csp_chan_release(t);
    csp_ctx_cancel(ctx); /* repeat ends */
    csp_ctx_release(ctx);
    csp_stats_t st;
    for (int i = 0; i < 5000; i++) {
        assert_int_equal(csp_stats(&st), 0);
        if (st.tasks_live == 0)
            break;
        csp_sleep(CSP_MILLISECOND);
    }
    assert_int_equal(st.tasks_live, 0);
    csp_shutdown();
}

/* ------------------------------------------------------------------------ */
/* drain                                                                                */

static atomic_int drained_freed;
static void count_free(void *e)
{
    (void)e;
    atomic_fetch_add(&drained_freed, 1);
}

static void drain_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    int vals[33] = { 0 };
    atomic_store(&drained_freed, 0);
    csp_chan_t *g = csp_pipe_generator(ctx, vals, 33, sizeof(int), NULL);
    TCHECK_EQ(csp_pipe_drain(g, count_free), 33);
    TCHECK_EQ(atomic_load(&drained_freed), 33);
    TCHECK_EQ(csp_pipe_drain(g, count_free), 0);
    csp_chan_release(g);
    /* elements larger than the small stack buffer */
    char big[1000][3];
    memset(big, 7, sizeof big);
    csp_chan_t *gb = csp_pipe_generator(ctx, big, 3, 1000, NULL);
    TCHECK_EQ(csp_pipe_drain(gb, NULL), 3);
    csp_chan_release(gb);
    /* a channel of channels: drain releases what bridge would have */
    csp_chan_t *cs = csp_chan_make(sizeof(csp_chan_t *), 4);
    for (int i = 0; i < 4; i++) {
        csp_chan_t *x = csp_chan_make(1, 1);
        csp_chan_send(cs, &x);
    }
    csp_chan_close(cs);
    TCHECK_EQ(csp_pipe_drain(cs, csp_pipe_free_chan), 4);
    csp_chan_release(cs);
    csp_ctx_release(ctx);
    TCHECK(pu_wait_live(base));
}

static void test_drain(void **state)
{
    (void)state;
    PU_RUN_ALL(drain_main, 1);
}

/* ------------------------------------------------------------------------ */
/* opts->wg joins the stages: after csp_wg_wait nothing of them is left         */

static void wg_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    for (int round = 0; round < 6; round++) {
        csp_wg_t wg = CSP_WG_INIT;
        csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
        mapper_t *m = calloc(1, sizeof *m); /* freed right after the wait */
        m->mult = 1;
        m->stop_at = -1;
        counter_t *c = calloc(1, sizeof *c);
        c->stop_at = round == 5 ? 40 : -1; /* the last round ends by itself */
        csp_pipe_opts_t o = { .flags = CSP_PIPE_CONSUME, .wg = &wg };
        csp_pipe_opts_t of = { .flags = CSP_PIPE_CONSUME, .wg = &wg, .arg_free = mapper_free };
        csp_pipe_opts_t oc = { .wg = &wg, .arg_free = counter_free };
        csp_chan_t *src = csp_pipe_repeat_fn(ctx, sizeof(long), counter_fn, c, &oc);
        csp_chan_t *a, *b;
        TCHECK_EQ(csp_pipe_tee(ctx, csp_pipe_buffer(ctx, src, 3, &o), &a, &b, &o), 0);
        csp_chan_t *ins[2] = { csp_pipe_or_done(ctx, a, &o), csp_pipe_take(ctx, b, 1000, &o) };
        csp_chan_t *merged = csp_pipe_fan_in(ctx, ins, 2, &o);
        csp_pipe_opts_t ord = of;
        ord.flags |= (round & 1) ? CSP_PIPE_ORDERED : 0u;
        csp_chan_t *p = csp_pipe_par_map(ctx, merged, 1 + (size_t)round % 3, sizeof(long),
                                         ident_long_map, m, &ord);
        csp_chan_t *orc[2] = { csp_chan_make(0, 0), NULL };
        csp_chan_t *o2 = csp_pipe_or(ctx, orc, 2, &(csp_pipe_opts_t){ .wg = &wg }); /* borrows */
        TCHECK(p && o2);
        for (int i = 0; i < 30; i++)
            TCHECK_EQ(csp_chan_recv(p, NULL), 0);
        if (round == 5) {
            csp_pipe_drain(p, NULL); /* ends: the source stops at 40 */
            csp_chan_close(orc[0]);
        } else {
            csp_ctx_cancel(ctx);
        }
        TCHECK_EQ(csp_wg_wait(&wg), 0);
        /* joined: every stage has finished (outputs closed, arg_free run, its
         * state freed); the tasks themselves return right after their done */
        TCHECK_EQ(atomic_load(&m->freed), 1);
        TCHECK_EQ(atomic_load(&c->freed), 1);
        free(m);
        free(c);
        TCHECK(csp_chan_closed(p));
        TCHECK(csp_chan_closed(o2));
        csp_chan_release(p);
        csp_chan_release(o2);
        csp_chan_release(orc[0]);
        csp_ctx_release(ctx);
        TCHECK(pu_wait_live(base));
    }
}

static void test_wg_join(void **state)
{
    (void)state;
    PU_RUN_ALL(wg_main, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_runtime),
        cmocka_unit_test(test_generator),
        cmocka_unit_test(test_repeat_take),
        cmocka_unit_test(test_repeat_fn),
        cmocka_unit_test(test_or),
        cmocka_unit_test(test_or_done),
        cmocka_unit_test(test_tee),
        cmocka_unit_test(test_bridge),
        cmocka_unit_test(test_fan_in),
        cmocka_unit_test(test_map_filter),
        cmocka_unit_test(test_par_map),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_drain),
        cmocka_unit_test(test_wg_join),
        cmocka_unit_test(test_plain_thread),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
