/* chan_spsc: one producer, one consumer, a channel of ints with capacity 1024.
 *
 * The producer sends 0..n-1 then closes; the consumer receives until the
 * channel is closed and drained and checks the count and the sum. The result
 * is the wall time from the first spawn to the join divided by n.
 * Go twin: bench/go/chan_spsc.
 *
 * Usage: bench_chan_spsc [items]   (default 10,000,000)
 */
#include "bench.h"

static long long g_n;
static csp_chan_t *g_ch;
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ns;

static void producer(void *arg) {
    (void)arg;
    for (long long i = 0; i < g_n; i++) {
        int v = (int)i;
        BENCH_CHECK(csp_chan_send(g_ch, &v));
    }
    BENCH_CHECK(csp_chan_close(g_ch));
    csp_wg_done(&g_wg);
}

static void consumer(void *arg) {
    (void)arg;
    long long count = 0, sum = 0;
    int v;
    while (csp_chan_recv(g_ch, &v) == 0) { count++; sum += v; }
    long long want = g_n * (g_n - 1) / 2; /* n < 2^31: the ints do not wrap */
    if (count != g_n || sum != want) {
        fprintf(stderr, "chan_spsc: got %lld items sum %lld, want %lld sum %lld\n", count,
                sum, g_n, want);
        exit(1);
    }
    csp_wg_done(&g_wg);
}

static void main_task(void *arg) {
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 1024);
    if (!g_ch) { fprintf(stderr, "chan_spsc: csp_chan_make failed\n"); exit(1); }
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_wg, 2));
    BENCH_CHECK(csp_go(consumer, NULL));
    BENCH_CHECK(csp_go(producer, NULL));
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    g_ns = (double)(t1 - t0) / (double)g_n;
    printf("chan_spsc: workers=%d items=%lld cap=1024 elapsed=%.3f ms\n", csp_workers(), g_n,
           bench_ms(t0, t1));
    bench_print_stats("chan_spsc");
    csp_chan_release(g_ch);
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 10000000, 1);
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("chan_spsc", "ns/item", g_ns);
    return 0;
}
