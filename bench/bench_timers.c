/* timers: n tasks each sleep 10 ms once (csp_sleep), joined by a WaitGroup.
 *
 * The result is the total wall time in ms from the first spawn to the join:
 * 10 ms plus the cost of creating n tasks, arming and firing n timers and
 * waking n tasks. Go twin: bench/go/timers (time.Sleep).
 *
 * Usage: bench_timers [tasks]   (default 100,000)
 */
#include "bench.h"

static long long g_n;
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ms;

static void sleeper(void *arg) {
    (void)arg;
    BENCH_CHECK(csp_sleep(10 * CSP_MILLISECOND));
    csp_wg_done(&g_wg);
}

static void main_task(void *arg) {
    (void)arg;
    int64_t t0 = bench_now();
    for (long long i = 0; i < g_n; i++) {
        BENCH_CHECK(csp_wg_add(&g_wg, 1));
        BENCH_CHECK(csp_go(sleeper, NULL));
    }
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    g_ms = bench_ms(t0, t1);
    printf("timers: workers=%d tasks=%lld sleep=10 ms elapsed=%.3f ms\n", csp_workers(), g_n,
           g_ms);
    bench_print_stats("timers");
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 100000, 1);
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("timers", "ms", g_ms);
    return 0;
}
