/* parked_mem: resident memory per parked task.
 *
 * n tasks each mark themselves started (csp_wg_done(&started)) and then park
 * on one shared WaitGroup (csp_wg_wait(&gate)) that the main task releases
 * later. The process RSS (/proc/self/statm: resident pages * page size) is
 * read just before the spawns and again once all have started plus a 100 ms
 * settle; the result is the difference divided by n. Then the gate opens and
 * all are joined. Go twin: bench/go/parked_mem (same measurement).
 *
 * Usage: bench_parked_mem [n]   (default 1,000,000)
 */
#include "bench.h"

static long long g_n;
static csp_wg_t g_started = CSP_WG_INIT, g_gate = CSP_WG_INIT, g_finished = CSP_WG_INIT;
static double g_bytes_per_task;

static void parked(void *arg) {
    (void)arg;
    csp_wg_done(&g_started);
    BENCH_CHECK(csp_wg_wait(&g_gate));
    csp_wg_done(&g_finished);
}

static void main_task(void *arg) {
    (void)arg;
    BENCH_CHECK(csp_wg_add(&g_gate, 1));
    BENCH_CHECK(csp_wg_add(&g_started, (int)g_n));
    BENCH_CHECK(csp_wg_add(&g_finished, (int)g_n));

    BENCH_CHECK(csp_sleep(100 * CSP_MILLISECOND));
    int64_t before = bench_rss_bytes();
    int64_t t0 = bench_now();
    for (long long i = 0; i < g_n; i++) BENCH_CHECK(csp_go(parked, NULL));
    BENCH_CHECK(csp_wg_wait(&g_started));
    int64_t t1 = bench_now();
    BENCH_CHECK(csp_sleep(100 * CSP_MILLISECOND));
    int64_t after = bench_rss_bytes();

    BENCH_CHECK(csp_wg_done(&g_gate));
    BENCH_CHECK(csp_wg_wait(&g_finished));

    g_bytes_per_task = (double)(after - before) / (double)g_n;
    printf("parked_mem: workers=%d tasks=%lld rss_before=%lld rss_parked=%lld "
           "spawn+park=%.3f ms\n",
           csp_workers(), g_n, (long long)before, (long long)after, bench_ms(t0, t1));
    bench_print_stats("parked_mem");
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 1000000, 1);
    if (g_n > 0x7fffffffLL) {
        fprintf(stderr, "parked_mem: at most %d tasks\n", 0x7fffffff);
        return 2;
    }
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("parked_mem", "bytes/task", g_bytes_per_task);
    return 0;
}
