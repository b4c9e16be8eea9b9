/* mutex: contended csp_mutex_t.
 *
 * TASKS tasks each do n/TASKS iterations of csp_mutex_lock(&mu); counter++;
 * csp_mutex_unlock(&mu) on one shared mutex and counter; main waits for them
 * on a WaitGroup. The result is the wall time from the first spawn to the
 * join divided by the number of lock/unlock pairs (n). The final counter is
 * checked against n (exit 1 otherwise).
 * Go twin: bench/go/mutex (sync.Mutex).
 *
 * Usage: bench_mutex [pairs]   (default 4,000,000: 4 tasks x 1,000,000)
 */
#include "bench.h"

#define TASKS 4

static long long g_per_task;
static csp_mutex_t g_mu = CSP_MUTEX_INIT;
static long long g_counter;   /* protected by g_mu */
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ns;

static void locker(void *arg) {
    (void)arg;
    for (long long i = 0; i < g_per_task; i++) {
        BENCH_CHECK(csp_mutex_lock(&g_mu));
        g_counter++;
        BENCH_CHECK(csp_mutex_unlock(&g_mu));
    }
    csp_wg_done(&g_wg);
}

static void main_task(void *arg) {
    (void)arg;
    long long pairs = g_per_task * TASKS;
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_wg, TASKS));
    for (int i = 0; i < TASKS; i++)
        BENCH_CHECK(csp_go(locker, NULL));
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    BENCH_CHECK(csp_mutex_lock(&g_mu));
    long long got = g_counter;
    BENCH_CHECK(csp_mutex_unlock(&g_mu));
    if (got != pairs) {
        fprintf(stderr, "mutex: counter %lld, want %lld\n", got, pairs);
        exit(1);
    }
    g_ns = (double)(t1 - t0) / (double)pairs;
    printf("mutex: workers=%d tasks=%d pairs=%lld counter=%lld elapsed=%.3f ms\n", csp_workers(),
           TASKS, pairs, got, bench_ms(t0, t1));
    bench_print_stats("mutex");
}

int main(int argc, char **argv) {
    g_per_task = bench_arg(argc, argv, 4000000, TASKS) / TASKS;
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("mutex", "ns/pair", g_ns);
    return 0;
}
