/* sum: fork-join divide and conquer, after shiyanhui/libcsp's
 * benchmarks/sum_libcsp.c and sum_go.go.
 *
 * sum(low, high): if low == high the result is low; otherwise two tasks
 * compute sum(low, mid) and sum(mid+1, high), joined by a WaitGroup, and the
 * result is left + right. sum(0, MAX) spawns about 2*MAX tasks. One warm-up
 * round, then 5 timed rounds; the result is the median round in ms. The sum
 * is checked against MAX*(MAX+1)/2.
 *
 * The spawn policy comes from env CSP_SPAWN_POLICY: "help" (default,
 * CSP_SPAWN_HELP_FIRST) or "child" (CSP_SPAWN_CHILD_FIRST).
 * Spawns use CSP_TASK/CSP_GO: the arguments are copied into the task, no
 * malloc. Go twin: bench/go/sum.
 *
 * Usage: bench_sum [MAX]   (default 1,000,000)
 */
#include "bench.h"

#define ROUNDS 5

static void sum(int64_t low, int64_t high, int64_t *result);

CSP_TASK(sum_task, (int64_t, low), (int64_t, high), (int64_t *, result), (csp_wg_t *, wg)) {
    sum(low, high, result);
    csp_wg_done(wg);
}

static void sum(int64_t low, int64_t high, int64_t *result) {
    if (low == high) {
        *result = low;
        return;
    }
    int64_t mid = low + ((high - low) >> 1), left, right;
    csp_wg_t wg = CSP_WG_INIT;
    BENCH_CHECK(csp_wg_add(&wg, 2));
    BENCH_CHECK(CSP_GO(sum_task, low, mid, &left, &wg));
    BENCH_CHECK(CSP_GO(sum_task, mid + 1, high, &right, &wg));
    BENCH_CHECK(csp_wg_wait(&wg));
    *result = left + right;
}

static int64_t g_max;
static double g_ms[ROUNDS];
static int g_bad;

static void main_task(void *arg) {
    (void)arg;
    int64_t want = g_max * (g_max + 1) / 2;
    for (int r = -1; r < ROUNDS; r++) { /* r == -1: warm-up */
        int64_t result = 0;
        int64_t t0 = bench_now();
        sum(0, g_max, &result);
        int64_t t1 = bench_now();
        if (result != want) {
            fprintf(stderr, "sum: wrong result %lld, want %lld\n", (long long)result,
                    (long long)want);
            g_bad = 1;
            return;
        }
        if (r >= 0) g_ms[r] = bench_ms(t0, t1);
    }
    bench_print_stats("sum");
}

int main(int argc, char **argv) {
    g_max = (int64_t)bench_arg(argc, argv, 1000000, 0);
    csp_config_t cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *pol = getenv("CSP_SPAWN_POLICY");
    if (!pol || !*pol) pol = "help";
    if (strcmp(pol, "help") == 0) {
        cfg.spawn_policy = CSP_SPAWN_HELP_FIRST;
    } else if (strcmp(pol, "child") == 0) {
        cfg.spawn_policy = CSP_SPAWN_CHILD_FIRST;
    } else {
        fprintf(stderr, "sum: CSP_SPAWN_POLICY must be 'help' or 'child', not '%s'\n", pol);
        return 2;
    }
    const char *w = getenv("CSP_WORKERS");
    printf("sum: policy=%s workers=%s max=%lld rounds=%d\n", pol, w && *w ? w : "default",
           (long long)g_max, ROUNDS);
    BENCH_CHECK(csp_run(main_task, NULL, &cfg));
    if (g_bad) return 1;
    printf("sum: ms per round:");
    for (int r = 0; r < ROUNDS; r++) printf(" %.3f", g_ms[r]);
    printf("\n");
    bench_result("sum", "ms/round", bench_median(g_ms, ROUNDS));
    return 0;
}
