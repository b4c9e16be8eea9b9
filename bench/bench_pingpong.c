/* pingpong: two tasks exchange an int over two unbuffered channels.
 *
 * Task A sends on ping and receives on pong, task B the reverse, n/2 round
 * trips in all; the result is the wall time from the first spawn to the join
 * divided by the number of one-way messages (n).
 * Go twin: bench/go/pingpong.
 *
 * Usage: bench_pingpong [messages]   (default 2,000,000)
 */
#include "bench.h"

static long long g_rounds;
static csp_chan_t *g_ping, *g_pong;
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ns;

static void pinger(void *arg) {
    (void)arg;
    int v = 0;
    for (long long i = 0; i < g_rounds; i++) {
        BENCH_CHECK(csp_chan_send(g_ping, &v));
        BENCH_CHECK(csp_chan_recv(g_pong, &v));
    }
    if (v != (int)g_rounds) { fprintf(stderr, "pingpong: bad value %d\n", v); exit(1); }
    csp_wg_done(&g_wg);
}

static void ponger(void *arg) {
    (void)arg;
    int v;
    for (long long i = 0; i < g_rounds; i++) {
        BENCH_CHECK(csp_chan_recv(g_ping, &v));
        v++;
        BENCH_CHECK(csp_chan_send(g_pong, &v));
    }
    csp_wg_done(&g_wg);
}

static void main_task(void *arg) {
    (void)arg;
    g_ping = csp_chan_make(sizeof(int), 0);
    g_pong = csp_chan_make(sizeof(int), 0);
    if (!g_ping || !g_pong) { fprintf(stderr, "pingpong: csp_chan_make failed\n"); exit(1); }
    long long msgs = g_rounds * 2;
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_wg, 2));
    BENCH_CHECK(csp_go(ponger, NULL));
    BENCH_CHECK(csp_go(pinger, NULL));
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    g_ns = (double)(t1 - t0) / (double)msgs;
    printf("pingpong: workers=%d messages=%lld elapsed=%.3f ms\n", csp_workers(), msgs,
           bench_ms(t0, t1));
    bench_print_stats("pingpong");
    csp_chan_release(g_ping);
    csp_chan_release(g_pong);
}

int main(int argc, char **argv) {
    g_rounds = bench_arg(argc, argv, 2000000, 2) / 2;
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("pingpong", "ns/msg", g_ns);
    return 0;
}
