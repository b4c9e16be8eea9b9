/* ctest-timeout: 120 */
/* Pipelines, part 2: the ordered parallel map (order kept under randomised
 * per-item work, the bounded window, STOP and SKIP in order, cancellation),
 * error results (csp_pipe_map_try, csp_pipe_par_map_try: errors arrive in
 * place and every error is released exactly once - ASan reports the rest),
 * the typed stages (CSP_PIPE_DECLARE, CSP_PIPE_MAP_DECLARE), and a stress
 * of random pipelines cancelled at random moments that must leave no task
 * behind. 1, 2, 4 and 8 workers, repeated.
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
#include <csp/pipeline.h>

#include "task_check.h"
#include "test_util.h"
#include "test_pipeline_util.h"

/* A small per-task random generator (splitmix64): no shared state. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* ------------------------------------------------------------------------ */
/* ordered parallel map                                                        */

typedef struct {
    uint64_t   seed;
    int        stop_at; /* -1: never */
    atomic_int calls;
    atomic_int freed;
} work_t;

/* x -> 3x + 1 after a random delay (nothing, yields, or a sleep of up to
 * 200 us), so that later items often finish first; x % 5 == 4 is skipped. */
static int slow_affine(void *arg, const void *in, void *out)
{
    work_t *w = arg;
    int x = *(const int *)in;
    atomic_fetch_add(&w->calls, 1);
    uint64_t r = mix(w->seed ^ (uint64_t)x);
    switch (r % 4) {
    case 0: break;
    case 1:
        for (unsigned i = 0; i < (r >> 8) % 8; i++)
            csp_yield();
        break;
    default:
        csp_sleep((csp_duration_t)((r >> 16) % 200) * CSP_MICROSECOND);
        break;
    }
    if (x == w->stop_at)
        return CSP_PIPE_STOP;
    if (x % 5 == 4)
        return CSP_PIPE_SKIP;
    *(long *)out = 3L * x + 1;
    return CSP_PIPE_EMIT;
}

static void work_free(void *arg)
{
    atomic_fetch_add(&((work_t *)arg)->freed, 1);
}

static int ord_n(void)
{
    return (int)CSP_TEST_SCALE(3000) < 300 ? 300 : (int)CSP_TEST_SCALE(3000);
}

static void ordered_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    const int N = ord_n();
    int *vals = malloc((size_t)N * sizeof *vals);
    for (int i = 0; i < N; i++)
        vals[i] = i;
    static const size_t nworkers[] = { 1, 2, 5, 16 };
    static const size_t windows[] = { 0, 1, 3, 64 };
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    for (int k = 0; k < 4; k++) {
        /* producer side: the input closes; everything comes out, in order */
        work_t w = { .seed = (uint64_t)csp_now() + (uint64_t)k, .stop_at = -1 };
        csp_pipe_opts_t o = { .flags = CSP_PIPE_ORDERED | CSP_PIPE_CONSUME,
                              .window = windows[k], .arg_free = work_free,
                              .cap = (size_t)k };
        csp_chan_t *p = csp_pipe_par_map(ctx, csp_pipe_generator(ctx, vals, (size_t)N,
                                                                 sizeof(int), NULL),
                                         nworkers[k], sizeof(long), slow_affine, &w, &o);
        TCHECK(p != NULL);
        long x;
        int next = 0, n = 0;
        while (csp_chan_recv(p, &x) == 0) {
            while (next % 5 == 4)
                next++;
            TCHECK_EQ(x, 3L * next + 1);
            next++;
            n++;
        }
        TCHECK_EQ(n, N - N / 5);
        csp_chan_release(p);
        TCHECK(pu_wait_live(base));
        TCHECK_EQ(atomic_load(&w.freed), 1);
        TCHECK_EQ(atomic_load(&w.calls), N);
    }
    /* STOP at item 50: exactly the items before it, in order, then closed */
    for (int k = 0; k < 2; k++) {
        work_t w = { .seed = (uint64_t)k * 77, .stop_at = 50 };
        csp_chan_t *g = csp_pipe_generator(ctx, vals, (size_t)N, sizeof(int), NULL);
        csp_chan_t *p = csp_pipe_par_map(ctx, g, 4, sizeof(long), slow_affine, &w,
                                         &(csp_pipe_opts_t){ .flags = CSP_PIPE_ORDERED,
                                                             .window = k ? 8 : 0,
                                                             .arg_free = work_free });
        long x;
        int next = 0;
        while (csp_chan_recv(p, &x) == 0) {
            while (next % 5 == 4)
                next++;
            TCHECK_EQ(x, 3L * next + 1);
            next++;
        }
        TCHECK_EQ(next, 49); /* 0..48 minus the skipped ones were emitted */
        csp_chan_release(p);
        /* the stage is gone; the generator waits with its next value */
        TCHECK(pu_wait_live(base + 1));
        TCHECK_EQ(atomic_load(&w.freed), 1);
        int y;
        TCHECK_EQ(csp_chan_recv(g, &y), 0);
        TCHECK(y > 50 && y <= 50 + (k ? 8 : 16) + 1); /* read at most window past 50 */
        csp_chan_release(g);
        csp_ctx_cancel(ctx);
        TCHECK(pu_wait_live(base));
        csp_ctx_release(ctx);
        ctx = csp_ctx_with_cancel(csp_ctx_background());
    }
    csp_ctx_release(ctx);
    free(vals);
}

static void test_par_map_ordered(void **state)
{
    (void)state;
    PU_RUN_ALL(ordered_main, 2);
}

/* the window bounds how far the input is read ahead of the consumer */
typedef struct {
    atomic_long calls;
} src_count_t;

static int count_src(void *arg, void *out)
{
    src_count_t *s = arg;
    *(long *)out = atomic_fetch_add(&s->calls, 1);
    return 0;
}

static int count_src_int(void *arg, void *out)
{
    src_count_t *s = arg;
    *(int *)out = (int)atomic_fetch_add(&s->calls, 1);
    return 0;
}

static int ident_long(void *arg, const void *in, void *out)
{
    (void)arg;
    *(long *)out = *(const long *)in;
    return CSP_PIPE_EMIT;
}

static void window_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    static const size_t windows[] = { 1, 4, 10 };
    for (int k = 0; k < 3; k++) {
        csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
        src_count_t s = { 0 };
        size_t W = windows[k];
        csp_chan_t *p = csp_pipe_par_map(
            ctx, csp_pipe_repeat_fn(ctx, sizeof(long), count_src, &s, NULL), 3, sizeof(long),
            ident_long, NULL,
            &(csp_pipe_opts_t){ .flags = CSP_PIPE_ORDERED | CSP_PIPE_CONSUME, .window = W });
        /* nobody reads: the stage fills up to the window (raised to the 3
         * workers), plus the value repeat_fn holds, and no further */
        long lim = (long)(W < 3 ? 3 : W) + 1;
        csp_time_t until = csp_deadline_after(10 * CSP_SECOND);
        while (atomic_load(&s.calls) < lim - 1 && csp_now() < until)
            csp_sleep(100 * CSP_MICROSECOND);
        csp_sleep(5 * CSP_MILLISECOND);
        long calls = atomic_load(&s.calls);
        TCHECK(calls >= lim - 1);
        TCHECK(calls <= lim);
        if (calls > lim)
            tc_fail(__FILE__, __LINE__, "window %zu: %ld reads", W, calls);
        for (long i = 0; i < 100; i++) {
            long x;
            TCHECK_EQ(csp_chan_recv(p, &x), 0);
            TCHECK_EQ(x, i);
        }
        TCHECK(atomic_load(&s.calls) <= 100 + lim);
        csp_ctx_cancel(ctx);
        TCHECK(pu_count(p) <= 1);
        csp_chan_release(p);
        TCHECK(pu_wait_live(base));
        csp_ctx_release(ctx);
    }
}

static void test_par_map_window(void **state)
{
    (void)state;
    PU_RUN_ALL(window_main, 1);
}

/* consumer-side cancellation of an ordered map at random moments */
static void ordered_cancel_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    const int rounds = (int)CSP_TEST_SCALE(60) < 10 ? 10 : (int)CSP_TEST_SCALE(60);
    for (int r = 0; r < rounds; r++) {
        csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
        work_t w = { .seed = (uint64_t)r, .stop_at = -1 };
        src_count_t s = { 0 };
        csp_chan_t *src = csp_pipe_repeat_fn(ctx, sizeof(int), count_src_int, &s, NULL);
        csp_chan_t *p = csp_pipe_par_map(ctx, src, 1 + (size_t)r % 6, sizeof(long),
                                         slow_affine, &w,
                                         &(csp_pipe_opts_t){ .flags = CSP_PIPE_ORDERED,
                                                             .window = (size_t)r % 9,
                                                             .arg_free = work_free });
        int take = (int)(mix((uint64_t)r) % 40);
        long x;
        for (int i = 0; i < take; i++)
            TCHECK_EQ(csp_chan_recv(p, &x), 0);
        csp_ctx_cancel(ctx);
        TCHECK(pu_count(p) <= 1);
        csp_chan_release(p);
        csp_chan_release(src);
        TCHECK(pu_wait_live(base));
        TCHECK_EQ(atomic_load(&w.freed), 1);
        csp_ctx_release(ctx);
    }
}

static void test_par_map_ordered_cancel(void **state)
{
    (void)state;
    PU_RUN_ALL(ordered_cancel_main, 1);
}

/* ------------------------------------------------------------------------ */
/* errors through results                                                       */

enum { ERR_THREE = 300 };

/* x -> x * 2, failing (code ERR_THREE) for multiples of 3 */
static csp_error_t *double_or_fail(void *arg, const void *in, void *out)
{
    int x = *(const int *)in;
    if (arg)
        csp_sleep((csp_duration_t)(mix((uint64_t)x) % 100) * CSP_MICROSECOND);
    if (x % 3 == 0)
        return csp_error_new(ERR_THREE, "%d is a multiple of 3", x);
    TCHECK_EQ(*(int *)out, 0);
    *(int *)out = x * 2;
    return NULL;
}

/* Checks result i of the stream 0..N-1 (in order); releases it. */
static void check_result(csp_result_t *r, int i)
{
    if (i % 3 == 0) {
        TCHECK(!csp_result_is_ok(r));
        TCHECK_EQ(csp_error_code(r->err), ERR_THREE);
        char want[64];
        snprintf(want, sizeof want, "%d is a multiple of 3", i);
        TCHECK(strcmp(csp_error_message(r->err), want) == 0);
    } else {
        TCHECK(csp_result_is_ok(r));
        int v = -1;
        TCHECK_EQ(csp_result_get(r, &v, sizeof v), 0);
        TCHECK_EQ(v, i * 2);
    }
    csp_result_clear(r);
}

static void results_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    enum { N = 300 };
    int vals[N];
    for (int i = 0; i < N; i++)
        vals[i] = i;
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    csp_pipe_opts_t own_ord = { .flags = CSP_PIPE_CONSUME | CSP_PIPE_ORDERED, .window = 5 };
    /* one task, in order */
    csp_chan_t *m = csp_pipe_map_try(ctx, csp_pipe_generator(ctx, vals, N, sizeof(int), NULL),
                                     sizeof(int), double_or_fail, NULL, &own);
    TCHECK_EQ(csp_chan_elem_size(m), sizeof(csp_result_t));
    csp_result_t r;
    int n = 0;
    while (csp_chan_recv(m, &r) == 0)
        check_result(&r, n++);
    TCHECK_EQ(n, N);
    csp_chan_release(m);
    /* ordered parallel: in order, errors in place */
    m = csp_pipe_par_map_try(ctx, csp_pipe_generator(ctx, vals, N, sizeof(int), NULL), 4,
                             sizeof(int), double_or_fail, (void *)1, &own_ord);
    n = 0;
    while (csp_chan_recv(m, &r) == 0)
        check_result(&r, n++);
    TCHECK_EQ(n, N);
    csp_chan_release(m);
    /* unordered parallel: each one once */
    m = csp_pipe_par_map_try(ctx, csp_pipe_generator(ctx, vals, N, sizeof(int), NULL), 4,
                             sizeof(int), double_or_fail, (void *)1, &own);
    char seen[N] = { 0 };
    n = 0;
    while (csp_chan_recv(m, &r) == 0) {
        int i;
        if (csp_result_is_ok(&r)) {
            int v;
            csp_result_get(&r, &v, sizeof v);
            i = v / 2;
        } else {
            TCHECK_EQ(sscanf(csp_error_message(r.err), "%d", &i), 1);
        }
        TCHECK(i >= 0 && i < N);
        if (i < 0 || i >= N) {
            csp_result_clear(&r);
            continue;
        }
        TCHECK(!seen[i]);
        seen[i] = 1;
        check_result(&r, i);
        n++;
    }
    TCHECK_EQ(n, N);
    csp_chan_release(m);
    TCHECK(pu_wait_live(base));
    /* consumer side: cancel with errors in flight; the stages release what
     * they hold, the consumer drains what reached its channel */
    for (int k = 0; k < 3; k++) {
        csp_ctx_t *c2 = csp_ctx_with_cancel(csp_ctx_background());
        const int three = 3;
        csp_chan_t *src = csp_pipe_repeat(c2, &three, 1, sizeof(int), NULL);
        csp_chan_t *e = k == 0 ? csp_pipe_map_try(c2, src, sizeof(int), double_or_fail, NULL,
                                                  &(csp_pipe_opts_t){ .cap = 4 })
                      : csp_pipe_par_map_try(c2, src, 3, sizeof(int), double_or_fail, (void *)1,
                                             &(csp_pipe_opts_t){
                                                 .cap = 4,
                                                 .flags = k == 2 ? CSP_PIPE_ORDERED : 0u });
        for (int i = 0; i < 20; i++) {
            TCHECK_EQ(csp_chan_recv(e, &r), 0);
            TCHECK_EQ(csp_error_code(r.err), ERR_THREE);
            csp_result_clear(&r);
        }
        csp_sleep(2 * CSP_MILLISECOND); /* let errors pile up everywhere */
        csp_ctx_cancel(c2);
        TCHECK(csp_pipe_drain(e, csp_pipe_free_result) >= 0);
        csp_chan_release(e);
        csp_chan_release(src);
        TCHECK(pu_wait_live(base));
        csp_ctx_release(c2);
    }
    csp_ctx_release(ctx);
}

static void test_results(void **state)
{
    (void)state;
    PU_RUN_ALL(results_main, 2);
}

/* ------------------------------------------------------------------------ */
/* typed stages                                                                    */

CSP_CHAN_DECLARE(ichan, int);
CSP_PIPE_DECLARE(ichan, int);
CSP_CHAN_DECLARE(dchan, double);
CSP_PIPE_DECLARE(dchan, double);
CSP_PIPE_MAP_DECLARE(int_to_double, ichan, int, dchan, double);

static atomic_int typed_freed;
static void typed_free(void *arg)
{
    (void)arg;
    atomic_fetch_add(&typed_freed, 1);
}

static int add_k(void *arg, const int *in, int *out)
{
    *out = *in + *(const int *)arg;
    return CSP_PIPE_EMIT;
}

static bool is_even(void *arg, const int *v)
{
    (void)arg;
    return *v % 2 == 0;
}

static int half(void *arg, const int *in, double *out)
{
    (void)arg;
    *out = *in / 2.0;
    return CSP_PIPE_EMIT;
}

static int next_int(void *arg, int *out)
{
    int *n = arg;
    if (*n >= 10)
        return 1;
    *out = (*n)++;
    return 0;
}

static int dbl_neg(void *arg, const double *in, double *out)
{
    (void)arg;
    *out = -*in;
    return CSP_PIPE_EMIT;
}

static void typed_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    atomic_store(&typed_freed, 0);
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    const int one = 1;
    csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    csp_pipe_opts_t own_free = { .flags = CSP_PIPE_CONSUME, .arg_free = typed_free };
    /* generator | map(+1) | filter(even) | take(3) | int_to_double(/2) */
    const int vals[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };
    dchan_t d = int_to_double(
        ctx,
        ichan_take(ctx,
                   ichan_filter(ctx,
                                ichan_map(ctx, ichan_generator(ctx, vals, 9, NULL), add_k,
                                          (void *)&one, &own_free),
                                is_even, NULL, &own_free),
                   3, &own),
        half, NULL, &own_free);
    TCHECK(d.c != NULL);
    double x;
    const double want[] = { 1.0, 2.0, 3.0 };
    for (int i = 0; i < 3; i++) {
        TCHECK_EQ(dchan_recv(d, &x), 0);
        TCHECK(x == want[i]);
    }
    TCHECK_EQ(dchan_recv(d, &x), CSP_ECLOSED);
    dchan_release(d);
    /* repeat_fn ends itself (10 values); par_map and fan_in, tee, or_done */
    int counter = 0;
    ichan_t rf = ichan_repeat_fn(ctx, next_int, &counter, &(csp_pipe_opts_t){
                                                              .arg_free = typed_free });
    ichan_t ins[2] = { ichan_par_map(ctx, rf, 3, add_k, (void *)&one,
                                     &(csp_pipe_opts_t){ .flags = CSP_PIPE_ORDERED,
                                                         .arg_free = typed_free }),
                       /* finite: an endless fast producer next to a slow one starves
                        * the slow one on 1 worker (the scheduler's LIFO of displaced
                        * runnext tasks), which is not what this test is about */
                       ichan_take(ctx, ichan_repeat(ctx, (const int[]){ 100 }, 1, NULL), 20,
                                  &own) };
    ichan_release(rf);
    ichan_t merged = ichan_fan_in(ctx, ins, 2, NULL);
    ichan_t t1, t2;
    TCHECK_EQ(ichan_tee(ctx, ichan_or_done(ctx, merged, NULL), &t1, &t2, &own), 0);
    int got = 0, hundreds = 0, a, b, last = 0;
    while (got < 10 && hundreds <= 20) {
        TCHECK_EQ(ichan_recv(t1, &a), 0);
        TCHECK_EQ(ichan_recv(t2, &b), 0);
        TCHECK_EQ(a, b);
        if (a == 100) {
            hundreds++;
        } else {
            TCHECK_EQ(a, last + 1); /* the ordered map's 1..10, in order */
            last = a;
            got++;
        }
    }
    TCHECK_EQ(got, 10);
    csp_ctx_cancel(ctx);
    csp_pipe_drain(t1.c, NULL);
    csp_pipe_drain(t2.c, NULL);
    ichan_release(t1);
    ichan_release(t2);
    ichan_release(merged);
    ichan_release(ins[0]);
    ichan_release(ins[1]);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);
    /* closures freed: map, filter, int_to_double, repeat_fn, par_map */
    TCHECK_EQ(atomic_load(&typed_freed), 5);

    /* buffer, dchan map, and the failure paths of the typed calls */
    atomic_store(&typed_freed, 0);
    ctx = csp_ctx_with_cancel(csp_ctx_background());
    dchan_t dd = dchan_map(ctx, dchan_buffer(ctx, dchan_generator(ctx, (const double[]){ 1.5 }, 1,
                                                                  NULL),
                                             2, &own),
                           dbl_neg, NULL, &own);
    TCHECK_EQ(dchan_recv(dd, &x), 0);
    TCHECK(x == -1.5);
    TCHECK_EQ(dchan_recv(dd, &x), CSP_ECLOSED);
    dchan_release(dd);
    /* NULL callback: NULL, arg_free called, the consumed input released */
    ichan_t none = ichan_map(ctx, ichan_make(0), NULL, NULL, &own_free);
    TCHECK(none.c == NULL);
    none = ichan_filter(ctx, ichan_make(0), NULL, NULL, &own_free);
    TCHECK(none.c == NULL);
    none = ichan_repeat_fn(ctx, NULL, NULL, &own_free);
    TCHECK(none.c == NULL);
    dchan_t dn = int_to_double(ctx, ichan_make(0), NULL, NULL, &own_free);
    TCHECK(dn.c == NULL);
    /* a typed view over a channel of another size: refused */
    ichan_t foreign = { csp_chan_make(sizeof(long long), 0) };
    dn = int_to_double(ctx, foreign, half, NULL, &own_free);
    TCHECK(dn.c == NULL);
    none = ichan_map(ctx, (ichan_t){ csp_chan_make(1, 0) }, add_k, (void *)&one, &own_free);
    TCHECK(none.c == NULL);
    TCHECK_EQ(atomic_load(&typed_freed), 6);
    /* bad options reach the untyped call: the closure and arg_free go too */
    csp_pipe_opts_t bad = { .arg_free = typed_free, .reserved = { 3 } };
    ichan_t src = ichan_make(0);
    none = ichan_map(ctx, src, add_k, (void *)&one, &bad);
    TCHECK(none.c == NULL);
    TCHECK_EQ(atomic_load(&typed_freed), 7);
    ichan_release(src);
    TCHECK(pu_wait_live(base));
    csp_ctx_release(ctx);
}

static void test_typed(void **state)
{
    (void)state;
    PU_RUN_ALL(typed_main, 2);
}

/* ------------------------------------------------------------------------ */
/* stress: random pipelines, cancelled at random moments                         */

static int plus_one(void *arg, const void *in, void *out)
{
    (void)arg;
    *(long *)out = *(const long *)in + 1;
    if (*(const long *)in % 13 == 0)
        csp_yield();
    return CSP_PIPE_EMIT;
}

static bool not_mult7(void *arg, const void *e)
{
    (void)arg;
    return *(const long *)e % 7 != 0;
}

/* reads c until it is closed (a tee's other side) */
CSP_TASK(sink_task, (csp_chan_t *, c))
{
    while (csp_chan_recv(c, NULL) == 0)
        ;
    csp_chan_release(c);
}

static void stress_main(void *arg)
{
    (void)arg;
    uint64_t base = pu_live();
    const int rounds = (int)CSP_TEST_SCALE(150) < 15 ? 15 : (int)CSP_TEST_SCALE(150);
    const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    for (int r = 0; r < rounds; r++) {
        uint64_t rnd = mix((uint64_t)r * 31 + (uint64_t)csp_now());
        csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
        src_count_t s = { 0 };
        csp_chan_t *c = csp_pipe_repeat_fn(ctx, sizeof(long), count_src, &s,
                                           &(csp_pipe_opts_t){ .cap = rnd % 3 });
        int stages = 1 + (int)(rnd >> 4) % 6;
        csp_chan_t *side = NULL; /* a tee's second output (the sink task's) */
        for (int k = 0; k < stages; k++) {
            uint64_t q = mix(rnd + (uint64_t)k);
            csp_pipe_opts_t o = own;
            o.cap = q % 3;
            switch ((q >> 8) % 8) {
            case 0: c = csp_pipe_map(ctx, c, sizeof(long), plus_one, NULL, &o); break;
            case 1: c = csp_pipe_filter(ctx, c, not_mult7, NULL, &o); break;
            case 2: c = csp_pipe_or_done(ctx, c, &o); break;
            case 3: c = csp_pipe_par_map(ctx, c, 1 + (q >> 12) % 4, sizeof(long), plus_one,
                                         NULL, &o); break;
            case 4:
                o.flags |= CSP_PIPE_ORDERED;
                o.window = (q >> 16) % 6;
                c = csp_pipe_par_map(ctx, c, 1 + (q >> 12) % 4, sizeof(long), plus_one, NULL,
                                     &o);
                break;
            case 5: {
                /* merged with a finite side stream: an endless constant one
                 * (whose values a later filter may drop, 5 + 2 = 7) would
                 * starve c on 1 worker - the scheduler keeps tasks displaced
                 * from runnext on a LIFO, so a tight cycle of tasks waking
                 * each other never lets the others run */
                csp_chan_t *side5 = csp_pipe_take(
                    ctx, csp_pipe_repeat(ctx, &(long){ 5 }, 1, sizeof(long), NULL), 20, &own);
                csp_chan_t *both[2] = { c, side5 };
                c = csp_pipe_fan_in(ctx, both, 2, &o);
                break;
            }
            case 6:
                if (!side) {
                    csp_chan_t *a, *b;
                    TCHECK_EQ(csp_pipe_tee(ctx, c, &a, &b, &o), 0);
                    c = a;
                    side = b; /* read by a sink task, or the tee stalls */
                    TCHECK_EQ(CSP_GO(sink_task, side), 0);
                    break;
                }
                /* fall through */
            default: c = csp_pipe_buffer(ctx, c, 1 + (q >> 12) % 4, &o); break;
            }
            TCHECK(c != NULL);
            if (!c)
                break;
        }
        if (c) {
            int want = (int)((rnd >> 20) % 30);
            for (int i = 0; i < want; i++)
                TCHECK_EQ(csp_chan_recv(c, NULL), 0);
        }
        if (rnd & 1)
            csp_yield();
        csp_ctx_cancel(ctx);
        if (c) {
            TCHECK(pu_count(c) >= 0);
            csp_chan_release(c);
        }
        TCHECK(pu_wait_live(base));
        csp_ctx_release(ctx);
    }
}

static void test_stress_cancel(void **state)
{
    (void)state;
    PU_RUN_ALL(stress_main, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_par_map_ordered),
        cmocka_unit_test(test_par_map_window),
        cmocka_unit_test(test_par_map_ordered_cancel),
        cmocka_unit_test(test_results),
        cmocka_unit_test(test_typed),
        cmocka_unit_test(test_stress_cancel),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
