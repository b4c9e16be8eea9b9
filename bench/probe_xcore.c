/* probe_xcore: the round trip of one cache line between two CPUs.
 *
 * Two threads, pinned to the first two CPUs the process may use, hand a
 * counter back and forth through one cache line 200,000 times; the result
 * is ns per round trip (the median of 5 batches). Every cross-core cost in
 * the benchmarks - a stolen task, a woken receiver on the other worker, a
 * shared WaitGroup - is a few of these. On a VM the number depends on where
 * the hypervisor has put the vCPUs and can change from second to second
 * (measured here: ~100 ns or ~500 ns), and a cross-core benchmark follows
 * it; bench/run prints it before and after the runs. Not a libcsp
 * benchmark (no Go twin, no libcsp).
 *
 * Usage: probe_xcore [round trips per batch]   (default 40,000)
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static _Alignas(64) _Atomic long g_line;
static long g_n;
static int g_cpu[2];

static void pin(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

static void *partner(void *arg)
{
    (void)arg;
    pin(g_cpu[1]);
    for (long i = 0; i < g_n; i++) {
        while (atomic_load_explicit(&g_line, memory_order_acquire) != 2 * i + 1)
            ;
        atomic_store_explicit(&g_line, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    g_n = argc > 1 ? atol(argv[1]) : 40000;
    if (g_n < 1) {
        fprintf(stderr, "probe_xcore: bad count\n");
        return 2;
    }
    cpu_set_t s;
    if (sched_getaffinity(0, sizeof s, &s) != 0 || CPU_COUNT(&s) < 2) {
        printf("probe_xcore: fewer than 2 CPUs\nRESULT name=xcore unit=ns/roundtrip value=0\n");
        return 0;
    }
    for (int c = 0, k = 0; c < CPU_SETSIZE && k < 2; c++)
        if (CPU_ISSET(c, &s))
            g_cpu[k++] = c;
    pin(g_cpu[0]);
    double r[5];
    for (int b = 0; b < 5; b++) {
        atomic_store(&g_line, 0);
        pthread_t th;
        if (pthread_create(&th, NULL, partner, NULL) != 0)
            return 1;
        double t0 = now_ns();
        for (long i = 0; i < g_n; i++) {
            atomic_store_explicit(&g_line, 2 * i + 1, memory_order_release);
            while (atomic_load_explicit(&g_line, memory_order_acquire) != 2 * i + 2)
                ;
        }
        r[b] = (now_ns() - t0) / (double)g_n;
        pthread_join(th, NULL);
    }
    printf("probe_xcore: cpus %d and %d, batches:", g_cpu[0], g_cpu[1]);
    for (int b = 0; b < 5; b++)
        printf(" %.0f", r[b]);
    qsort(r, 5, sizeof r[0], cmp);
    printf(" ns\nRESULT name=xcore unit=ns/roundtrip value=%.0f\n", r[2]);
    return 0;
}
