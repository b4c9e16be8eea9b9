/* spawn: the cost of creating a task that exits at once.
 *
 * n tasks, each spawned with csp_go and calling csp_wg_done on a shared
 * WaitGroup (csp_wg_add(1) before each spawn); the main task waits for all.
 * The result is the wall time from the first spawn to the join, divided by n.
 * Go twin: bench/go/spawn.
 *
 * Usage: bench_spawn [n]   (default 1,000,000)
 */
#include "bench.h"

static long long g_n;
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ns_per_task;

static void child(void *arg) { csp_wg_done((csp_wg_t *)arg); }

static void main_task(void *arg) {
    (void)arg;
    int64_t t0 = bench_now();
    for (long long i = 0; i < g_n; i++) {
        BENCH_CHECK(csp_wg_add(&g_wg, 1));
        BENCH_CHECK(csp_go(child, &g_wg));
    }
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    g_ns_per_task = (double)(t1 - t0) / (double)g_n;
    printf("spawn: workers=%d tasks=%lld elapsed=%.3f ms\n", csp_workers(), g_n,
           bench_ms(t0, t1));
    bench_print_stats("spawn");
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 1000000, 1);
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("spawn", "ns/task", g_ns_per_task);
    return 0;
}
