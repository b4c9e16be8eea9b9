/* wakeup: latency from a send on an unbuffered channel to the parked
 * receiver, on ANOTHER worker, running again.
 *
 * A sender task and a receiver task share one unbuffered channel. For each of
 * n samples the sender
 *   1. sleeps a pseudo-random 50..500 us (csp_sleep), so that the receiver's
 *      side goes idle: its worker is spinning or asleep on its futex, which is
 *      the case that matters;
 *   2. stamps csp_now() into the message and sends it (the receiver is parked
 *      in csp_chan_recv, so the send readies it);
 *   3. keeps its own worker busy for 100 us (env BENCH_WAKEUP_SPIN_US), without yielding,
 *      so the receiver cannot run on the sender's worker: another worker has
 *      to wake up (or stop spinning) and take it.
 * The receiver computes csp_now() - stamp for each message. The samples are
 * sorted; p50, p90, p99 and p99.9 (nearest rank) are printed, and the
 * RESULT lines give p50 and, last, p99 (bench/run makes two rows of them).
 * A sample above the spin means the receiver was not taken by another worker
 * while the sender spun (it ran after the spin); such samples are counted
 * ("late"), as are samples where both tasks ran on the same worker.
 * Meant for 2 workers (bench/run's default for this row).
 * Go twin: bench/go/wakeup (goroutines, time.Sleep, a spin on time.Since).
 *
 * Usage: bench_wakeup [samples]   (default 20,000)
 */
#include "bench.h"

#define SPIN_US_DEFAULT 100 /* the sender's busy spin after each send (us) */
#define GAP_MIN_US 50       /* the pseudo-random pause between samples ... */
#define GAP_MAX_US 500      /* ... is GAP_MIN_US .. GAP_MAX_US inclusive */

typedef struct {
    int64_t stamp;          /* csp_now() just before the send */
    int64_t seq;            /* sample number, checked by the receiver */
    int     worker;         /* the sender's worker at the send (where the send readies the receiver) */
} wake_msg_t;

static long long g_n;
static int64_t g_spin_us;   /* SPIN_US_DEFAULT, or env BENCH_WAKEUP_SPIN_US */
static csp_chan_t *g_ch;
static csp_wg_t g_wg = CSP_WG_INIT;
static int64_t *g_lat;      /* ns, one per sample (written by the receiver only) */
static long long g_same_worker;
static double g_p50_us, g_p99_us;

/* xorshift64: the same sequence as the Go twin. */
static uint64_t xs_next(uint64_t *s) {
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static void sender(void *arg) {
    (void)arg;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    for (long long i = 0; i < g_n; i++) {
        int64_t gap_us = GAP_MIN_US + (int64_t)(xs_next(&rng) % (GAP_MAX_US - GAP_MIN_US + 1));
        BENCH_CHECK(csp_sleep(gap_us * CSP_MICROSECOND));
        /* A receiver is parked, so the send does not park the sender: the
         * worker read here is the one the send readies the receiver on. */
        wake_msg_t m = { .seq = i, .worker = csp_worker_id() };
        m.stamp = csp_now();
        BENCH_CHECK(csp_chan_send(g_ch, &m));
        /* The send returned: the receiver has the value and is runnable. Keep
         * this worker busy so it must run elsewhere. */
        int64_t t = csp_now();
        while (csp_now() - t < g_spin_us * CSP_MICROSECOND)
            __asm__ __volatile__("" ::: "memory");
    }
    csp_wg_done(&g_wg);
}

static void receiver(void *arg) {
    (void)arg;
    for (long long i = 0; i < g_n; i++) {
        wake_msg_t m;
        BENCH_CHECK(csp_chan_recv(g_ch, &m));
        int64_t now = csp_now();
        if (m.seq != i) {
            fprintf(stderr, "wakeup: got sample %lld, want %lld\n", (long long)m.seq, i);
            exit(1);
        }
        g_lat[i] = now - m.stamp;
        if (csp_worker_id() == m.worker) g_same_worker++;
    }
    csp_wg_done(&g_wg);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of the sorted v[0..n): the smallest value with at
 * least p% of the samples at or below it. The Go twin computes the same. */
static double pct_us(const int64_t *v, long long n, double p) {
    long long k = (long long)((p / 100.0) * (double)n + 0.999999);
    if (k < 1) k = 1;
    if (k > n) k = n;
    return (double)v[k - 1] / 1e3;
}

static void main_task(void *arg) {
    (void)arg;
    g_ch = csp_chan_make(sizeof(wake_msg_t), 0);
    if (!g_ch) { fprintf(stderr, "wakeup: csp_chan_make failed\n"); exit(1); }
    if (csp_workers() < 2)
        printf("wakeup: warning: %d worker(s); the receiver cannot run on another worker\n",
               csp_workers());
    int64_t t0 = bench_now();
    BENCH_CHECK(csp_wg_add(&g_wg, 2));
    BENCH_CHECK(csp_go(receiver, NULL));
    BENCH_CHECK(csp_go(sender, NULL));
    BENCH_CHECK(csp_wg_wait(&g_wg));
    int64_t t1 = bench_now();
    csp_chan_release(g_ch);

    long long late = 0;
    for (long long i = 0; i < g_n; i++)
        if (g_lat[i] > g_spin_us * CSP_MICROSECOND) late++;
    qsort(g_lat, (size_t)g_n, sizeof *g_lat, cmp_i64);
    g_p50_us = pct_us(g_lat, g_n, 50);
    g_p99_us = pct_us(g_lat, g_n, 99);
    printf("wakeup: workers=%d samples=%lld gap=%d..%d us spin=%lld us elapsed=%.3f ms\n",
           csp_workers(), g_n, GAP_MIN_US, GAP_MAX_US, (long long)g_spin_us, bench_ms(t0, t1));
    printf("wakeup: latency us: min=%.3f p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f\n",
           (double)g_lat[0] / 1e3, g_p50_us, pct_us(g_lat, g_n, 90), g_p99_us,
           pct_us(g_lat, g_n, 99.9), (double)g_lat[g_n - 1] / 1e3);
    printf("wakeup: late (> %lld us: not taken while the sender spun)=%lld, "
           "same worker as the sender=%lld\n", (long long)g_spin_us, late, g_same_worker);
    bench_print_stats("wakeup");
}

int main(int argc, char **argv) {
    g_n = bench_arg(argc, argv, 20000, 1);
    g_spin_us = SPIN_US_DEFAULT;
    const char *e = getenv("BENCH_WAKEUP_SPIN_US");
    if (e && *e) {
        char *end = NULL;
        long long v = strtoll(e, &end, 10);
        if (*end || v < 1 || v > 1000000) {
            fprintf(stderr, "wakeup: bad BENCH_WAKEUP_SPIN_US '%s' (1..1000000)\n", e);
            return 2;
        }
        g_spin_us = v;
    }
    g_lat = calloc((size_t)g_n, sizeof *g_lat);
    if (!g_lat) { fprintf(stderr, "wakeup: out of memory\n"); return 1; }
    BENCH_CHECK(csp_run(main_task, NULL, NULL));
    free(g_lat);
    printf("RESULT name=wakeup_p50 unit=us value=%.3f\n", g_p50_us);
    bench_result("wakeup", "us", g_p99_us);
    return 0;
}
