/* pipeline: the book's stream pipeline with a fan-out, built from the
 * library's stages (include/csp/pipeline.h):
 *
 *   generator(0..n-1) -> map(x * 2) -> 4 x map(x + 1) (fan-out: four copies
 *   of the stage reading one channel) -> fan_in -> take(n) -> consumer
 *
 * Every channel is unbuffered (Go's make(chan int)), every stage runs on the
 * same cancellable context, and the consumer checks the count and the sum
 * (sum of 2i + 1 over i < n = n^2; exit 1 otherwise). After the last value
 * the context is cancelled and the stages are joined (opts.wg). The result
 * is the wall time from the generator's creation to the last value received,
 * divided by n. Go twin: bench/go/pipeline (the book's generator, multiply,
 * add, fanIn and take on chan int with a done channel).
 *
 * Usage: bench_pipeline [items]   (default 1,000,000)
 */
#include "bench.h"

#include <csp/pipeline.h>

#define NFINDERS 4

static long long g_n;
static double g_ns;

static int times2(void *arg, const void *in, void *out) {
    (void)arg;
    *(int *)out = *(const int *)in * 2;
    return CSP_PIPE_EMIT;
}

static int plus1(void *arg, const void *in, void *out) {
    (void)arg;
    *(int *)out = *(const int *)in + 1;
    return CSP_PIPE_EMIT;
}

static void main_task(void *arg) {
    (void)arg;
    const long long n = g_n;
    int *vals = malloc((size_t)n * sizeof *vals);
    if (!vals) { fprintf(stderr, "pipeline: out of memory\n"); exit(1); }
    for (long long i = 0; i < n; i++) vals[i] = (int)i;
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t opts = { .wg = &stages };
    const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME, .wg = &stages };

    int64_t t0 = bench_now();
    csp_chan_t *doubled = csp_pipe_map(ctx, csp_pipe_generator(ctx, vals, (size_t)n, sizeof(int), &opts),
                                       sizeof(int), times2, NULL, &own);
    csp_chan_t *outs[NFINDERS];
    for (int i = 0; i < NFINDERS; i++)   /* fan-out */
        outs[i] = csp_pipe_map(ctx, doubled, sizeof(int), plus1, NULL, &opts);
    csp_chan_release(doubled);
    csp_chan_t *last = csp_pipe_take(ctx, csp_pipe_fan_in(ctx, outs, NFINDERS, &own), (size_t)n, &own);
    if (!last) { fprintf(stderr, "pipeline: building the stages failed\n"); exit(1); }
    long long count = 0, sum = 0;
    int v;
    while (csp_chan_recv(last, &v) == 0) {
        count++;
        sum += v;
    }
    int64_t t1 = bench_now();
    csp_chan_release(last);
    csp_ctx_cancel(ctx);
    BENCH_CHECK(csp_wg_wait(&stages));
    csp_ctx_release(ctx);
    free(vals);
    if (count != n || sum != n * n) {
        fprintf(stderr, "pipeline: got %lld values summing to %lld, want %lld and %lld\n", count,
                sum, n, n * n);
        exit(1);
    }
    g_ns = (double)(t1 - t0) / (double)n;
    printf("pipeline: workers=%d stages=generator,map,%dxmap,fan_in,take items=%lld "
           "elapsed=%.3f ms\n",
           csp_workers(), NFINDERS, n, bench_ms(t0, t1));
    bench_print_stats("pipeline");
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 1000000, 1);
    if (g_n > 1000000000) { fprintf(stderr, "pipeline: at most 1e9 items\n"); return 2; }
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("pipeline", "ns/item", g_ns);
    return 0;
}
