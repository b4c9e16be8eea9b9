/* Helpers shared by the sync tests that mix tasks and plain threads. */
#ifndef CSP_TEST_THREAD_UTIL_H
#define CSP_TEST_THREAD_UTIL_H

#include <stdio.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>

#include <csp.h>

/* 1 if the n bytes at p are all zero (an unlocked / idle sync object). */
static __attribute__((unused)) int all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

/* Sleeps the calling thread for ms milliseconds (not a task sleep). */
static __attribute__((unused)) void ms_sleep(int ms)
{
    struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* Waits (up to 10 s) until thread tid sleeps in the kernel (blocked in its
 * futex wait): /proc/self/task/<tid>/stat says 'S' three times in a row. */
static __attribute__((unused)) void wait_thread_blocked(pid_t tid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    csp_time_t until = csp_now() + 10 * CSP_SECOND;
    int asleep = 0;
    while (csp_now() < until) {
        FILE *f = fopen(path, "r");
        if (f) {
            char buf[512];
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = 0;
            char *rp = strrchr(buf, ')');
            if (rp && rp[1] == ' ' && rp[2] == 'S') {
                if (++asleep >= 3)
                    return;
            } else {
                asleep = 0;
            }
        }
        ms_sleep(2);
    }
}

#endif /* CSP_TEST_THREAD_UTIL_H */
