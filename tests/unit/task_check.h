/* Checks made inside tasks and helper threads of the runtime tests.
 *
 * cmocka's assert_*() longjmp back to the test on failure, so they may only
 * run on the test's own thread and stack - never inside a task (another stack,
 * maybe another thread). Tasks use TCHECK(), which records the failure (the
 * first message is kept) and lets the task go on; the test calls
 * TC_ASSERT_CLEAN() after the runtime has returned (csp_run) or after the
 * tasks have been joined.
 */
#ifndef CSP_TEST_TASK_CHECK_H
#define CSP_TEST_TASK_CHECK_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include <csp.h>

#include "test_util.h"

static atomic_int tc_failures;
static atomic_int tc_msg_claimed;
static char tc_msg[512];

static __attribute__((format(printf, 3, 4), unused)) void
tc_fail(const char *file, int line, const char *fmt, ...)
{
    atomic_fetch_add(&tc_failures, 1);
    if (atomic_exchange(&tc_msg_claimed, 1))
        return;
    int n = snprintf(tc_msg, sizeof tc_msg, "%s:%d: ", file, line);
    if (n < 0 || (size_t)n >= sizeof tc_msg)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tc_msg + n, sizeof tc_msg - (size_t)n, fmt, ap);
    va_end(ap);
}

/* Records a failure when c is false. */
#define TCHECK(c)                                                              \
    do {                                                                       \
        if (!(c))                                                              \
            tc_fail(__FILE__, __LINE__, "check failed: %s", #c);               \
    } while (0)

/* As TCHECK, comparing two integers (printed on failure). */
#define TCHECK_EQ(a, b)                                                        \
    do {                                                                       \
        long long tc_a_ = (long long)(a), tc_b_ = (long long)(b);              \
        if (tc_a_ != tc_b_)                                                    \
            tc_fail(__FILE__, __LINE__, "%s == %s failed: %lld != %lld", #a,   \
                    #b, tc_a_, tc_b_);                                         \
    } while (0)

/* Forgets earlier failures (call at the start of a test). */
#define TC_RESET()                                                             \
    do {                                                                       \
        atomic_store(&tc_failures, 0);                                         \
        atomic_store(&tc_msg_claimed, 0);                                      \
        tc_msg[0] = 0;                                                         \
    } while (0)

/* Fails the cmocka test if any TCHECK failed since TC_RESET(). */
#define TC_ASSERT_CLEAN()                                                      \
    do {                                                                       \
        int tc_n_ = atomic_load(&tc_failures);                                 \
        if (tc_n_) {                                                           \
            print_error("%d check(s) failed in tasks/threads; first: %s\n",    \
                        tc_n_, tc_msg);                                        \
            fail();                                                            \
        }                                                                      \
    } while (0)

/* TSan allows at most 8128 live threads + fibers ("Thread limit exceeded.
 * Dying."), and every live task has a fiber. */
#if defined(__SANITIZE_THREAD__)
#  define TC_TSAN 1
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define TC_TSAN 1
#  endif
#endif

/* Counts of spawned tasks: CSP_TEST_SCALE(n) (n / 20 in sanitizer builds). */
#define TC_SCALE(n) CSP_TEST_SCALE(n)
/* Counts of tasks alive at once: TC_SCALE(n), at most 5000 under TSan. */
#if defined(TC_TSAN)
#  define TC_SCALE_LIVE(n) (TC_SCALE(n) < 5000 ? TC_SCALE(n) : 5000)
#else
#  define TC_SCALE_LIVE(n) TC_SCALE(n)
#endif

/* Runs main_fn under csp_run with the given workers and spawn policy and
 * asserts that it returned 0 and that no TCHECK failed. */
#define T_RUN(main_fn, arg, nworkers, policy)                                  \
    do {                                                                       \
        csp_config_t t_cfg_ = { 0 };                                           \
        t_cfg_.workers = (nworkers);                                           \
        t_cfg_.spawn_policy = (policy);                                        \
        TC_RESET();                                                            \
        assert_int_equal(csp_run((main_fn), (arg), &t_cfg_), 0);               \
        TC_ASSERT_CLEAN();                                                     \
    } while (0)

/* A watchdog for calls that must return (csp_run, csp_shutdown): if
 * tc_watchdog_stop() is not called within `seconds`, it prints what hung and
 * exits the test process with status 1 - a clear failure instead of a ctest
 * timeout. One at a time. */
#include <pthread.h>
#include <time.h>

static pthread_mutex_t tc_wd_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tc_wd_cond;
static int tc_wd_armed;
static pthread_t tc_wd_thread;
static int tc_wd_seconds;
static const char *tc_wd_what;

static void *tc_wd_main(void *arg)
{
    (void)arg;
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += tc_wd_seconds;
    pthread_mutex_lock(&tc_wd_lock);
    while (tc_wd_armed) {
        if (pthread_cond_timedwait(&tc_wd_cond, &tc_wd_lock, &until) != 0 && tc_wd_armed) {
            fprintf(stderr, "watchdog: %s did not return within %d s - hung\n", tc_wd_what,
                    tc_wd_seconds);
            fflush(NULL);
            _Exit(1);
        }
    }
    pthread_mutex_unlock(&tc_wd_lock);
    return NULL;
}

static __attribute__((unused)) void tc_watchdog_start(int seconds, const char *what)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&tc_wd_cond, &ca);
    pthread_condattr_destroy(&ca);
    tc_wd_seconds = seconds;
    tc_wd_what = what;
    tc_wd_armed = 1;
    if (pthread_create(&tc_wd_thread, NULL, tc_wd_main, NULL) != 0)
        abort();
}

static __attribute__((unused)) void tc_watchdog_stop(void)
{
    pthread_mutex_lock(&tc_wd_lock);
    tc_wd_armed = 0;
    pthread_cond_signal(&tc_wd_cond);
    pthread_mutex_unlock(&tc_wd_lock);
    pthread_join(tc_wd_thread, NULL);
    pthread_cond_destroy(&tc_wd_cond);
}

/* Worker counts every concurrency test runs with: one worker, a few, and
 * oversubscribed (8 on a 2-core machine). */
static const int tc_worker_counts[] = { 1, 2, 4, 8 };
#define TC_NWORKER_COUNTS ((int)(sizeof tc_worker_counts / sizeof tc_worker_counts[0]))

#endif /* CSP_TEST_TASK_CHECK_H */
