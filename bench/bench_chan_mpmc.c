/* chan_mpmc: 4 producers and 4 consumers on one channel of ints, capacity 1024.
 *
 * Each producer sends n/4 ints; once all are done the channel is closed; the
 * consumers receive until it is closed and drained. The total received is
 * checked. The result is the wall time from the first spawn to the join of
 * the consumers divided by the number of items (n rounded down to a multiple
 * of 4). Go twin: bench/go/chan_mpmc.
 *
 * Usage: bench_chan_mpmc [items]   (default 10,000,000)
 */
#include "bench.h"

#include <stdatomic.h>

#define NPROD 4
#define NCONS 4

static long long g_per;
static csp_chan_t *g_ch;
static csp_wg_t g_prod = CSP_WG_INIT, g_cons = CSP_WG_INIT;
static atomic_llong g_received;
static double g_ns;

static void producer(void *arg) {
    (void)arg;
    for (long long i = 0; i < g_per; i++) {
        int v = (int)i;
        BENCH_CHECK(csp_chan_send(g_ch, &v));
    }
    csp_wg_done(&g_prod);
}

static void consumer(void *arg) {
    (void)arg;
    long long count = 0;
    int v;
    while (csp_chan_recv(g_ch, &v) == 0) count++;
    atomic_fetch_add(&g_received, count);
    csp_wg_done(&g_cons);
}

static void main_task(void *arg) {
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 1024);
    if (!g_ch) { fprintf(stderr, "chan_mpmc: csp_chan_make failed\n"); exit(1); }
    long long total = g_per * NPROD;
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_cons, NCONS));
    for (int i = 0; i < NCONS; i++) BENCH_CHECK(csp_go(consumer, NULL));
    BENCH_CHECK(csp_wg_add(&g_prod, NPROD));
    for (int i = 0; i < NPROD; i++) BENCH_CHECK(csp_go(producer, NULL));
    BENCH_CHECK(csp_wg_wait(&g_prod));
    BENCH_CHECK(csp_chan_close(g_ch));
    BENCH_CHECK(csp_wg_wait(&g_cons));
    int64_t t1 = bench_now();
    if (atomic_load(&g_received) != total) {
        fprintf(stderr, "chan_mpmc: received %lld, want %lld\n", (long long)atomic_load(&g_received),
                total);
        exit(1);
    }
    g_ns = (double)(t1 - t0) / (double)total;
    printf("chan_mpmc: workers=%d producers=%d consumers=%d items=%lld cap=1024 elapsed=%.3f ms\n",
           csp_workers(), NPROD, NCONS, total, bench_ms(t0, t1));
    bench_print_stats("chan_mpmc");
    csp_chan_release(g_ch);
}

int main(int argc, char **argv) {
    g_per = bench_arg(argc, argv, 10000000, NPROD) / NPROD;
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("chan_mpmc", "ns/item", g_ns);
    return 0;
}
