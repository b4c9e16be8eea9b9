/* wg: spawn/join fan-out with a WaitGroup, in rounds.
 *
 * One round: csp_wg_add(&wg, n) once, n tasks spawned with csp_go, each of
 * which only calls csp_wg_done(&wg); then csp_wg_wait(&wg). One warm-up
 * round (stack slots mapped, caches filled), then ROUNDS timed rounds; the
 * result is the median round in ms. Unlike `spawn` (one csp_wg_add(1) per
 * task, one long run) every round here starts from an empty runtime and ends
 * with all n tasks joined, so it is the fork-join cost of a whole fan-out.
 * Go twin: bench/go/wg (wg.Add(n), n goroutines calling wg.Done, wg.Wait).
 *
 * Usage: bench_wg [tasks per round]   (default 100,000)
 */
#include "bench.h"

#define ROUNDS 9

static long long g_n;
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ms;

static void child(void *arg) { csp_wg_done((csp_wg_t *)arg); }

static double round_ms(void) {
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_wg, (int)g_n));
    for (long long i = 0; i < g_n; i++)
        BENCH_CHECK(csp_go(child, &g_wg));
    BENCH_CHECK(csp_wg_wait(&g_wg));
    return bench_ms(t0, bench_now());
}

static void main_task(void *arg) {
    (void)arg;
    double warm = round_ms();
    double ms[ROUNDS];
    for (int r = 0; r < ROUNDS; r++)
        ms[r] = round_ms();
    printf("wg: workers=%d tasks/round=%lld warm-up=%.3f ms rounds:", csp_workers(), g_n, warm);
    for (int r = 0; r < ROUNDS; r++)
        printf(" %.3f", ms[r]);
    printf(" ms\n");
    g_ms = bench_median(ms, ROUNDS);
    printf("wg: median %.3f ms/round = %.1f ns/task\n", g_ms, g_ms * 1e6 / (double)g_n);
    bench_print_stats("wg");
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 100000, 1);
    if (g_n > 0x7fffffff) { fprintf(stderr, "wg: at most %d tasks per round\n", 0x7fffffff); return 2; }
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("wg", "ms/round", g_ms);
    return 0;
}
