/* libcsp benchmarks — a tiny shared harness (header-only).
 *
 * Every benchmark prints free-form lines, then as its LAST line exactly
 *     RESULT name=<bench> unit=<unit> value=<number>
 * which bench/run parses; the Go twins in bench/go/ print the same line.
 * Worker count: csp_config_t.workers is left 0, so the runtime reads
 * CSP_WORKERS (bench/run sets it, and GOMAXPROCS for the Go twins).
 */
#ifndef CSP_BENCH_H
#define CSP_BENCH_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep, sysconf, getrusage under -std=c11 */
#endif

#include <csp.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Monotonic nanoseconds. */
static inline int64_t bench_now(void) { return (int64_t)csp_now(); }

/* Milliseconds between two bench_now() readings. */
static inline double bench_ms(int64_t t0, int64_t t1) { return (double)(t1 - t0) / 1e6; }

/* Resident set size of this process in bytes: /proc/self/statm's second
 * field (resident pages) times the page size. Exits on error. */
static inline int64_t bench_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    long long size = 0, resident = 0;
    if (!f || fscanf(f, "%lld %lld", &size, &resident) != 2) {
        fprintf(stderr, "bench: cannot read /proc/self/statm: %s\n", strerror(errno));
        exit(1);
    }
    fclose(f);
    return (int64_t)resident * (int64_t)sysconf(_SC_PAGESIZE);
}

static int bench__cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of v[0..n) (sorts v in place); 0 for n == 0. For an even n, the
 * mean of the two middle values. */
static inline double bench_median(double *v, int n) {
    if (n <= 0) return 0;
    qsort(v, (size_t)n, sizeof *v, bench__cmp_double);
    return (n & 1) ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The optional first argument (an iteration count or MAX), else def. Exits
 * with status 2 on a malformed or too small value. */
static inline long long bench_arg(int argc, char **argv, long long def, long long min) {
    if (argc < 2) return def;
    char *end = NULL;
    errno = 0;
    long long v = strtoll(argv[1], &end, 10);
    if (errno || end == argv[1] || *end || v < min) {
        fprintf(stderr, "%s: bad argument '%s' (want an integer >= %lld)\n",
                argv[0], argv[1], min);
        exit(2);
    }
    return v;
}

/* Dies with a message when a libcsp call fails. */
#define BENCH_CHECK(call)                                                       \
    do {                                                                        \
        int bench__rc = (call);                                                 \
        if (bench__rc != 0) {                                                   \
            fprintf(stderr, "%s:%d: %s failed: %s\n", __FILE__, __LINE__, #call,  \
                    csp_strerror(bench__rc));                                   \
            exit(1);                                                            \
        }                                                                       \
    } while (0)

/* Prints the runtime's counters (informational; call while the runtime runs). */
static inline void bench_print_stats(const char *bench) {
    csp_stats_t st;
    if (csp_stats(&st) != 0) return;
    printf("%s: stats: spawned=%llu live=%llu steals=%llu parks=%llu worker_sleeps=%llu "
           "stacks_mapped=%llu guard_pages=%llu\n",
           bench, (unsigned long long)st.tasks_spawned, (unsigned long long)st.tasks_live,
           (unsigned long long)st.steals, (unsigned long long)st.parks,
           (unsigned long long)st.worker_sleeps, (unsigned long long)st.stacks_mapped,
           (unsigned long long)st.guard_pages);
}

/* Prints the RESULT line; must be the program's last output. */
static inline void bench_result(const char *name, const char *unit, double value) {
    printf("RESULT name=%s unit=%s value=%.3f\n", name, unit, value);
    fflush(stdout);
}

#endif /* CSP_BENCH_H */
