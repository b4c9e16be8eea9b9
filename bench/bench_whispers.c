/* whispers: Go's "Chinese whispers" — a chain of n tasks, each receiving an int
 * from its right neighbour and passing it plus one to its left.
 *
 * main makes n+1 unbuffered int channels and spawns the n links (creation is
 * timed), sends 1 into the rightmost channel and receives n+1 from the
 * leftmost. The result is the total wall time in ms. Channels are released
 * after the clock stops. Go twin: bench/go/whispers.
 *
 * Usage: bench_whispers [tasks]   (default 100,000)
 */
#include "bench.h"

typedef struct { csp_chan_t *left, *right; } link_t;

static long long g_n;
static double g_ms;

static void whisper(void *arg) {
    link_t *l = arg; /* the task's own copy (csp_go_copy) */
    int v;
    BENCH_CHECK(csp_chan_recv(l->right, &v));
    v++;
    BENCH_CHECK(csp_chan_send(l->left, &v));
}

static void main_task(void *arg) {
    (void)arg;
    csp_chan_t **ch = malloc(sizeof *ch * (size_t)(g_n + 1));
    if (!ch) { fprintf(stderr, "whispers: out of memory\n"); exit(1); }
    int64_t t0 = bench_now();
    for (long long i = 0; i <= g_n; i++)
        if (!(ch[i] = csp_chan_make(sizeof(int), 0))) {
            fprintf(stderr, "whispers: csp_chan_make failed\n");
            exit(1);
        }
    for (long long i = 0; i < g_n; i++) {
        link_t l = { ch[i], ch[i + 1] };
        BENCH_CHECK(csp_go_copy(whisper, &l, sizeof l, NULL));
    }
    int v = 1;
    BENCH_CHECK(csp_chan_send(ch[g_n], &v));
    BENCH_CHECK(csp_chan_recv(ch[0], &v));
    int64_t t1 = bench_now();
    if (v != (int)(g_n + 1)) {
        fprintf(stderr, "whispers: got %d, want %lld\n", v, g_n + 1);
        exit(1);
    }
    g_ms = bench_ms(t0, t1);
    printf("whispers: workers=%d tasks=%lld result=%d elapsed=%.3f ms\n", csp_workers(), g_n, v,
           g_ms);
    bench_print_stats("whispers");
    for (long long i = 0; i <= g_n; i++) csp_chan_release(ch[i]);
    free(ch);
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 100000, 1);
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    bench_result("whispers", "ms", g_ms);
    return 0;
}
