/* ctxcancel: cancelling a context with many blocked waiters.
 *
 * One round: a root context (csp_ctx_with_cancel(background)); n tasks, each
 * with its own child csp_ctx_with_cancel(root) (created by main, owned by
 * the task), each blocked in csp_ctx_wait(child) (Go: <-ctx.Done()). Once
 * every task has started (a WaitGroup) and a 20 ms settle has let the last
 * ones park, t0 is taken and the root is cancelled; each task checks that
 * its wait returned CSP_ECANCELED, releases its child and calls wg_done; t1
 * is taken when the last has done so. One warm-up round, then ROUNDS timed
 * rounds; the result is the median (t1 - t0) in ms.
 * With env BENCH_CTXCANCEL_OP=recv each task blocks in csp_chan_recv_ctx on
 * an unbuffered channel nobody sends on instead (Go: a select on that
 * channel and ctx.Done()).
 * Go twin: bench/go/ctxcancel (context.WithCancel per goroutine).
 *
 * Usage: bench_ctxcancel [tasks]   (default 10,000)
 */
#include "bench.h"

#define ROUNDS 5

static long long g_n;
static int g_recv_op;            /* BENCH_CTXCANCEL_OP=recv */
static csp_chan_t *g_never;      /* recv mode: nobody sends on it */
static csp_wg_t g_started = CSP_WG_INIT, g_exited = CSP_WG_INIT;

static void waiter(void *arg) {
    csp_ctx_t *ctx = arg;
    csp_wg_done(&g_started);
    int rc = g_recv_op ? csp_chan_recv_ctx(ctx, g_never, NULL) : csp_ctx_wait(ctx);
    if (rc != CSP_ECANCELED) {
        fprintf(stderr, "ctxcancel: %s returned %d (%s), want CSP_ECANCELED\n",
                g_recv_op ? "csp_chan_recv_ctx" : "csp_ctx_wait", rc, csp_strerror(rc));
        exit(1);
    }
    csp_ctx_release(ctx);
    csp_wg_done(&g_exited);
}

static double round_ms(void) {
    csp_ctx_t *root = csp_ctx_with_cancel(csp_ctx_background());
    if (!root) { fprintf(stderr, "ctxcancel: csp_ctx_with_cancel failed\n"); exit(1); }
    BENCH_CHECK(csp_wg_add(&g_started, (int)g_n));
    BENCH_CHECK(csp_wg_add(&g_exited, (int)g_n));
    for (long long i = 0; i < g_n; i++) {
        csp_ctx_t *child = csp_ctx_with_cancel(root);
        if (!child) { fprintf(stderr, "ctxcancel: csp_ctx_with_cancel failed\n"); exit(1); }
        BENCH_CHECK(csp_go(waiter, child));
    }
    BENCH_CHECK(csp_wg_wait(&g_started));
    BENCH_CHECK(csp_sleep(20 * CSP_MILLISECOND));
    int64_t t0 = bench_now();
    csp_ctx_cancel(root);
    BENCH_CHECK(csp_wg_wait(&g_exited));
    int64_t t1 = bench_now();
    csp_ctx_release(root);
    return bench_ms(t0, t1);
}

static double g_ms;

static void main_task(void *arg) {
    (void)arg;
    if (g_recv_op) {
        g_never = csp_chan_make(sizeof(int), 0);
        if (!g_never) { fprintf(stderr, "ctxcancel: csp_chan_make failed\n"); exit(1); }
    }
    double warm = round_ms();
    double ms[ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        ms[r] = round_ms();
    printf("ctxcancel: workers=%d tasks=%lld op=%s warm-up=%.3f ms rounds:", csp_workers(), g_n,
           g_recv_op ? "csp_chan_recv_ctx" : "csp_ctx_wait", warm);
    for (int r = 0; r < ROUNDS; r++)
        printf(" %.3f", ms[r]);
    printf(" ms\n");
    g_ms = bench_median(ms, ROUNDS);
    printf("ctxcancel: median %.3f ms = %.1f ns/task\n", g_ms, g_ms * 1e6 / (double)g_n);
    bench_print_stats("ctxcancel");
    csp_chan_release(g_never);
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 10000, 1);
    if (g_n > 0x7fffffff) { fprintf(stderr, "ctxcancel: at most %d tasks\n", 0x7fffffff); return 2; }
    const char *op = getenv("BENCH_CTXCANCEL_OP");
    if (op && *op && strcmp(op, "wait") != 0) {
        if (strcmp(op, "recv") != 0) {
            fprintf(stderr, "ctxcancel: BENCH_CTXCANCEL_OP must be 'wait' or 'recv'\n");
            return 2;
        }
        g_recv_op = 1;
    }
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("ctxcancel", "ms", g_ms);
    return 0;
}
