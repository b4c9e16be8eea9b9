/* pool: csp_pool_t get/put from several tasks.
 *
 * TASKS tasks each do n/TASKS iterations of x = csp_pool_get(&pool); touch
 * one byte of x; csp_pool_put(&pool, x) on one shared pool whose new_fn
 * mallocs a 64-byte object (free_fn frees it). The result is the wall time
 * from the first spawn to the join divided by the number of get/put pairs.
 * Checked: get never returns NULL, and after csp_pool_destroy every object
 * new_fn made has been freed exactly once (news == frees).
 * Go twin: bench/go/pool (sync.Pool with New).
 *
 * Usage: bench_pool [pairs]   (default 4,000,000: 4 tasks x 1,000,000)
 */
#include "bench.h"

#include <stdatomic.h>

#define TASKS 4
#define OBJ_SIZE 64

static long long g_per_task;
static csp_wg_t g_wg = CSP_WG_INIT;
static double g_ns;
/* Counters only (relaxed): read after the join and the destroy, which order
 * them (the WaitGroup's wait synchronises with every done). */
static atomic_llong g_news, g_frees;

static void *obj_new(void *arg) {
    (void)arg;
    atomic_fetch_add_explicit(&g_news, 1, memory_order_relaxed);
    return calloc(1, OBJ_SIZE);
}

static void obj_free(void *item, void *arg) {
    (void)arg;
    atomic_fetch_add_explicit(&g_frees, 1, memory_order_relaxed);
    free(item);
}

static csp_pool_t g_pool = CSP_POOL_INIT(obj_new, obj_free, NULL);

static void user(void *arg) {
    (void)arg;
    for (long long i = 0; i < g_per_task; i++) {
        unsigned char *x = csp_pool_get(&g_pool);
        if (!x) { fprintf(stderr, "pool: csp_pool_get returned NULL\n"); exit(1); }
        x[0]++;
        BENCH_CHECK(csp_pool_put(&g_pool, x));
    }
    csp_wg_done(&g_wg);
}

static void main_task(void *arg) {
    (void)arg;
    long long pairs = g_per_task * TASKS;
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_wg, TASKS));
    for (int i = 0; i < TASKS; i++)
        BENCH_CHECK(csp_go(user, NULL));
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    g_ns = (double)(t1 - t0) / (double)pairs;
    long long news = atomic_load_explicit(&g_news, memory_order_relaxed);
    csp_pool_destroy(&g_pool);
    long long frees = atomic_load_explicit(&g_frees, memory_order_relaxed);
    if (frees != news) {
        fprintf(stderr, "pool: new_fn made %lld objects, free_fn freed %lld\n", news, frees);
        exit(1);
    }
    printf("pool: workers=%d tasks=%d pairs=%lld news=%lld elapsed=%.3f ms\n", csp_workers(),
           TASKS, pairs, news, bench_ms(t0, t1));
    bench_print_stats("pool");
}

int main(int argc, char **argv) {
    g_per_task = bench_arg(argc, argv, 4000000, TASKS) / TASKS;
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("pool", "ns/pair", g_ns);
    return 0;
}
