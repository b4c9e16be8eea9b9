/* Error strings, the clock, panics, futex and spinlock slow paths. */
#define _GNU_SOURCE
#include "internal.h"

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

CSP_EXTERN const char *csp_strerror(int err)
{
    switch (err) {
    case 0: return "success";
#define CSP__ERR_STR(name, val, msg) case (val): return msg;
    CSP_ERRNO_MAP(CSP__ERR_STR)
#undef CSP__ERR_STR
    default: return "unknown error";
    }
}

CSP_EXTERN const char *csp_err_name(int err)
{
    switch (err) {
    case 0: return "CSP_OK";
#define CSP__ERR_NAME(name, val, msg) case (val): return "CSP_" #name;
    CSP_ERRNO_MAP(CSP__ERR_NAME)
#undef CSP__ERR_NAME
    default: return "CSP_UNKNOWN";
    }
}

CSP_EXTERN csp_time_t csp_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (csp_time_t)ts.tv_sec * CSP_SECOND + ts.tv_nsec;
}

CSP_EXTERN csp_time_t csp_deadline_after(csp_duration_t d)
{
    csp_time_t now = csp_now();
    if (d > 0 && now > CSP_FOREVER - d)
        return CSP_FOREVER;
    if (d < 0 && now + d < 0)
        return 0;
    return now + d;
}

void csp__panic(const char *fmt, ...)
{
    char buf[512];
    int n = snprintf(buf, sizeof buf, "libcsp: ");
    va_list ap;
    va_start(ap, fmt);
    n += vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof buf - 2)
        n = (int)sizeof buf - 2;
    buf[n++] = '\n';
    ssize_t w = write(2, buf, (size_t)n);
    (void)w;
    abort();
}

int csp__futex_wait(_Atomic uint32_t *addr, uint32_t val, csp_time_t deadline)
{
    struct timespec ts, *tp = NULL;
    if (deadline != CSP_FOREVER) {
        if (deadline <= csp_now())
            return CSP_ETIMEDOUT;
        ts.tv_sec = deadline / CSP_SECOND;
        ts.tv_nsec = deadline % CSP_SECOND;
        tp = &ts;
    }
    /* FUTEX_WAIT_BITSET takes an absolute CLOCK_MONOTONIC timeout. */
    long r = syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_BITSET | FUTEX_PRIVATE_FLAG,
                     val, tp, NULL, FUTEX_BITSET_MATCH_ANY);
    if (r == -1 && errno == ETIMEDOUT)
        return CSP_ETIMEDOUT;
    return 0;
}

void csp__futex_wake(_Atomic uint32_t *addr, int n)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE | FUTEX_PRIVATE_FLAG, n, NULL, NULL, 0);
}

void csp__spin_lock_slow(csp__spinlock_t *l)
{
    /* Exponential backoff between attempts (1, 2, 4 ... 64 pauses): under
     * contention fewer cores hammer the line the holder must write to
     * unlock. After ~64 rounds the holder is probably descheduled
     * (oversubscription): yield the thread. */
    unsigned backoff = 1;
    for (unsigned spins = 0;; spins++) {
        if (!csp__load_relaxed(&l->v) &&
            !atomic_exchange_explicit(&l->v, 1, memory_order_acquire))
            return;
        if (spins < 64) {
            for (unsigned i = 0; i < backoff; i++)
                csp__cpu_relax();
            if (backoff < 64)
                backoff <<= 1;
        } else {
            sched_yield();
        }
    }
}
