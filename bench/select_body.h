/* select_body.h: the body of bench_select2.c and bench_select8.c. One receiver
 * selects over K unbuffered int channels, each fed by its own producer task
 * sending n/K ints, until it has them all; reports ns per received item.
 * The includer defines K and NAME ("select2", "select8"). Go twins:
 * bench/go/select2, bench/go/select8 (a select statement with K cases). */
#include "bench.h"


static long long g_per;
static csp_chan_t *g_ch[K];
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ns;

static void producer(void *arg) {
    csp_chan_t *ch = g_ch[(intptr_t)arg];
    for (long long i = 0; i < g_per; i++) {
        int v = (int)i;
        BENCH_CHECK(csp_chan_send(ch, &v));
    }
    csp_wg_done(&g_wg);
}

static void receiver(void *arg) {
    (void)arg;
    int v;
    long long got[K] = {0};
    csp_case_t cases[K];
    for (int i = 0; i < K; i++) {
        cases[i].chan = g_ch[i];
        cases[i].dir = CSP_RECV;
        cases[i].buf = &v;
        cases[i].status = 0;
    }
    long long total = g_per * K;
    for (long long r = 0; r < total; r++) {
        int idx = csp_select(cases, K, CSP_FOREVER);
        if (idx < 0 || idx >= K || cases[idx].status != 0) {
            fprintf(stderr, NAME ": csp_select returned %d\n", idx);
            exit(1);
        }
        got[idx]++;
    }
    for (int i = 0; i < K; i++)
        if (got[i] != g_per) {
            fprintf(stderr, NAME ": channel %d delivered %lld, want %lld\n", i, got[i], g_per);
            exit(1);
        }
    csp_wg_done(&g_wg);
}

static void main_task(void *arg) {
    (void)arg;
    for (int i = 0; i < K; i++)
        if (!(g_ch[i] = csp_chan_make(sizeof(int), 0))) {
            fprintf(stderr, NAME ": csp_chan_make failed\n");
            exit(1);
        }
    long long total = g_per * K;
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_wg, K + 1));
    BENCH_CHECK(csp_go(receiver, NULL));
    for (intptr_t i = 0; i < K; i++) BENCH_CHECK(csp_go(producer, (void *)i));
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    g_ns = (double)(t1 - t0) / (double)total;
    printf(NAME ": workers=%d channels=%d items=%lld elapsed=%.3f ms\n", csp_workers(), K,
           total, bench_ms(t0, t1));
    bench_print_stats(NAME);
    for (int i = 0; i < K; i++) csp_chan_release(g_ch[i]);
}

int main(int argc, char **argv) {
    g_per = bench_arg(argc, argv, 2000000, K) / K;
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result(NAME, "ns/item", g_ns);
    return 0;
}
