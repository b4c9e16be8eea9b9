/* Small helpers shared by the tests (tests/ is on every test's include path).
 *
 *   csp_test_workers()  worker count for csp_config_t.workers: env
 *                       CSP_TEST_WORKERS, or 0 (the runtime's default) when
 *                       unset or not a non-negative number.
 *   CSP_TEST_SCALE(n)   n, or n / 20 (at least 1) in sanitizer builds, where
 *                       CMake defines CSP_TEST_SANITIZER=1: for the huge counts
 *                       (1,000,000 tasks) that ASan/TSan make too slow or big.
 *   CSP_TEST_LIVE(n)    for a count of tasks alive AT ONCE: CSP_TEST_SCALE(n),
 *                       and at most 4000 under TSan, which gives every task
 *                       (fiber) a thread slot and dies past 8128 of them
 *                       ("ThreadSanitizer: Thread limit (8128 threads) exceeded").
 *
 *   csp_test_threads_countable()  can this process count its threads
 *                       (/proc/self/stat field 20)? qemu-user fakes 0 there,
 *                       and the runtime's deadlock check is then off.
 *
 * Tests also see the library's private definitions: CSP_ASAN / CSP_TSAN in
 * sanitizer builds, CSP_DEBUG in Debug builds, CSP_CONTEXT_UCONTEXT.
 */
#ifndef CSP_TEST_UTIL_H
#define CSP_TEST_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static inline int csp_test_workers(void)
{
    const char *s = getenv("CSP_TEST_WORKERS");
    if (s == NULL || *s == '\0')
        return 0;
    char *end;
    long v = strtol(s, &end, 10);
    if (*end != '\0' || v < 0 || v > INT_MAX)
        return 0;
    return (int)v;
}

#if defined(CSP_TEST_SANITIZER) && CSP_TEST_SANITIZER
#  define CSP_TEST_SCALE(n) ((n) / 20 > 0 ? (n) / 20 : 1)
#else
#  define CSP_TEST_SCALE(n) (n)
#endif

#if defined(CSP_TSAN)
#  define CSP_TEST_LIVE(n) (CSP_TEST_SCALE(n) < 4000 ? CSP_TEST_SCALE(n) : 4000)
#else
#  define CSP_TEST_LIVE(n) CSP_TEST_SCALE(n)
#endif

static inline bool csp_test_threads_countable(void)
{
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return false;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces and parentheses */
    if (!p)
        return false;
    int field = 2;
    for (p++; *p && field < 20; p++)
        if (*p == ' ')
            field++;
    return field == 20 && atoi(p) >= 1;
}

#endif /* CSP_TEST_UTIL_H */
