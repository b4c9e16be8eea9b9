/* idle: CPU used by an idle runtime.
 *
 * Starts the runtime with csp_init(NULL) (workers from CSP_WORKERS, else the
 * number of CPUs), then the plain main thread sleeps 1 s with nothing for the
 * workers to do. The result is the process CPU time (getrusage user + sys)
 * spent during that second, in ms; the target is ~0 (idle workers park on a
 * futex). No Go twin.
 *
 * Usage: bench_idle [ms]   (default 1000)
 */
#include "bench.h"

#include <sys/resource.h>
#include <time.h>

static int64_t cpu_ns(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) {
        perror("getrusage");
        exit(1);
    }
    return ((int64_t)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000000LL +
           ((int64_t)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1000LL;
}

int main(int argc, char **argv) {
    long long ms = bench_arg(argc, argv, 1000, 1);
    BENCH_CHECK(csp_init(NULL));
    int64_t c0 = cpu_ns(), t0 = bench_now();
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
    int64_t c1 = cpu_ns(), t1 = bench_now();
    int workers = csp_workers();
    csp_shutdown();
    printf("idle: workers=%d wall=%.3f ms cpu=%.3f ms\n", workers, bench_ms(t0, t1),
           (double)(c1 - c0) / 1e6);
    bench_result("idle", "ms", (double)(c1 - c0) / 1e6);
    return 0;
}
