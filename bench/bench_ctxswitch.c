/* ctxswitch: the raw cost of a task switch.
 *
 * Two tasks each call csp_yield() n/2 times; the result is the wall time from
 * the first spawn to the join, divided by the total number of yields (so one
 * yield = one switch to the other task). Meant for 1 worker (CSP_WORKERS=1);
 * at 2 workers the two tasks may run in parallel and yield to nobody.
 * Go twin: bench/go/ctxswitch (runtime.Gosched, GOMAXPROCS=1).
 *
 * Usage: bench_ctxswitch [total_yields]   (default 10,000,000)
 */
#include "bench.h"

static long long g_per_task;
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ns_per_yield;

static void yielder(void *arg) {
    (void)arg;
    for (long long i = 0; i < g_per_task; i++) csp_yield();
    csp_wg_done(&g_wg);
}

static void main_task(void *arg) {
    (void)arg;
    long long total = g_per_task * 2;
    int64_t t0 = bench_now();
    for (int t = 0; t < 2; t++) {
        BENCH_CHECK(csp_wg_add(&g_wg, 1));
        BENCH_CHECK(csp_go(yielder, NULL));
    }
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    g_ns_per_yield = (double)(t1 - t0) / (double)total;
    printf("ctxswitch: workers=%d yields=%lld elapsed=%.3f ms\n", csp_workers(), total,
           bench_ms(t0, t1));
    bench_print_stats("ctxswitch");
}

int main(int argc, char **argv) {
    g_per_task = bench_arg(argc, argv, 10000000, 2) / 2;
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("ctxswitch", "ns/yield", g_ns_per_yield);
    return 0;
}
