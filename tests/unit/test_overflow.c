/* ctest-timeout: 120 */
/* Stack overflow detection. Each case runs in a forked child that starts a
 * runtime and lets a task named "deep" run off the bottom of its stack; the
 * parent reads the child's stderr through a pipe and expects
 *
 *     libcsp: task <id> (deep) overflowed its <N>-byte stack
 *
 * with <id> the task's own csp_task_id() and <N> its stack slot size, and the
 * child killed by SIGABRT.
 *
 * Both detection paths:
 *   - guard page: the first stack slots get a PROT_NONE page at the bottom;
 *     "deep" recurses with 1 KiB frames (every byte written, so no frame
 *     jumps over the guard) until it hits it. Skipped in sanitizer builds
 *     (the runtime installs no SIGSEGV handler there).
 *   - canary: once the guard budget (vm.max_map_count / 8 slots) is used up,
 *     new slots have none. The child first parks enough tasks to use the
 *     budget up, then three 64 KiB-stack tasks, whose new, guard-less slots
 *     are freed again one by one, then "deep" (64 KiB: it gets the last of
 *     those slots; the one below is mapped and holds no live task).
 *     "deep" recurses to near the bottom of its stack, then writes a VLA
 *     reaching 2-3.5 KiB past the bottom - over the canary at the top of the
 *     slot below - and yields, sleeps or returns: the switch away from it
 *     must report the overflow.
 * And a frame bigger than a page that jumps over the guard page (written
 * only at its low end, in the slot below) and yields from there: the switch
 * must notice that the stack pointer is outside the stack (the guard was
 * never touched, and guarded slots don't check their canary).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <csp.h>

#include "test_util.h"

enum mode { GUARD, CANARY_YIELD, CANARY_EXIT, CANARY_SLEEP, GUARD_JUMP };

#define PAD_STACK ((size_t)64 * 1024)

/* ------------------------------------------------------------------------ */
/* the child                                                                 */

static enum mode child_mode;
static size_t child_stack;   /* deep's requested stack size (0: default) */
static csp_wg_t child_gate;
static atomic_long child_arrived;

static void say(const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
}

static uintptr_t frame_addr(void)
{
    return (uintptr_t)__builtin_frame_address(0);
}

/* Guard path: plain recursion with fully written 1 KiB frames. */
static __attribute__((noinline)) int recurse_forever(int n)
{
    volatile char buf[1024];
    for (int i = (int)sizeof buf - 1; i >= 0; i--)
        buf[i] = (char)(n + i);
    if (n > 1000000) /* never: 1 GiB of frames */
        return buf[0];
    return recurse_forever(n + 1) + buf[n & 1023];
}

/* Canary path: recurse until the frame is below `until`, then write a VLA
 * from there down to `bottom` and switch away (or return). */
static __attribute__((noinline)) int recurse_to(int n, uintptr_t until, uintptr_t bottom)
{
    volatile char buf[256];
    for (int i = (int)sizeof buf - 1; i >= 0; i--)
        buf[i] = (char)(n + i);
    uintptr_t fp = frame_addr();
    if (fp > until)
        return recurse_to(n + 1, until, bottom) + buf[n & 255];
    size_t len = (size_t)(fp - 512 - bottom);
    volatile char vla[len];
    memset((char *)vla, 0xAB, len);
    if (child_mode == CANARY_YIELD)
        csp_yield();
    else if (child_mode == CANARY_SLEEP)
        csp_sleep(CSP_MILLISECOND);
    /* CANARY_EXIT: return, and the task's exit must notice */
    return vla[0] + vla[len - 1] + buf[0];
}

/* Guard jump: recurse until the frame is safely above the guard page, then
 * take a frame much bigger than a page (a VLA) and write only its low end,
 * which lies below the guard page, in the slot below - as `char buf[16384];
 * snprintf(buf, 64, ...)` would - and yield from inside that frame. */
static __attribute__((noinline)) int recurse_then_jump(int n, uintptr_t until)
{
    volatile char buf[256];
    for (int i = (int)sizeof buf - 1; i >= 0; i--)
        buf[i] = (char)(n + i);
    if (frame_addr() > until)
        return recurse_then_jump(n + 1, until) + buf[n & 255];
    size_t len = 16 * 1024;
    volatile char big[len];
    for (int i = 0; i < 64; i++)
        big[i] = (char)i; /* the lowest 64 bytes only */
    csp_yield();
    return big[0] + buf[0];
}

static void deep(void *arg)
{
    (void)arg;
    say("deep id=%llu\n", (unsigned long long)csp_task_id());
    if (child_mode == GUARD) {
        recurse_forever(0);
    } else if (child_mode == GUARD_JUMP) {
        /* the guard page is [lo, lo + page), lo within top - S + ~1.5 KiB */
        uintptr_t top = frame_addr();
        recurse_then_jump(0, top - CSP_DEFAULT_STACK_SIZE + 1536 + 4096 + 512);
    } else {
        uintptr_t top = frame_addr();
        /* the slot's bottom is between top - S and top - S + ~1.5 KiB (task
         * struct, colour, first frames above top); go 2 KiB past top - S */
        uintptr_t bottom = top - PAD_STACK - 2048;
        recurse_to(0, top - PAD_STACK + 4096, bottom);
    }
    say("deep returned: no overflow detected (yet)\n");
    if (child_mode != CANARY_EXIT) /* else the exit is what must notice */
        _exit(3);
}

static void pad_task(void *arg)
{
    csp_wg_wait(arg);
}

static void parked(void *arg)
{
    (void)arg;
    atomic_fetch_add(&child_arrived, 1);
    csp_wg_wait(&child_gate);
}

static long max_map_count(void)
{
    long v = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &v) != 1)
            v = 65530;
        fclose(f);
    }
    return v;
}

static void child_main(void *arg)
{
    (void)arg;
    csp_wg_add(&child_gate, 1);
    csp_task_opts_t o = { .name = "deep", .stack_size = child_stack };
    if (child_mode == CANARY_YIELD || child_mode == CANARY_EXIT || child_mode == CANARY_SLEEP) {
        /* use the guard budget up */
        long n = max_map_count() / 8 + 256;
        for (long i = 0; i < n; i++)
            if (csp_go(parked, NULL) != 0) {
                say("spawn failed\n");
                _exit(5);
            }
        while (atomic_load(&child_arrived) < n)
            csp_sleep(CSP_MILLISECOND);
        csp_stats_t s0, s1, s2;
        /* an idle worker may still be prewarming default-size slots (after a
         * burst of spawns; bounded): wait until the count holds still */
        csp_stats(&s0);
        do {
            s1 = s0;
            csp_sleep(20 * CSP_MILLISECOND);
            csp_stats(&s0);
        } while (s0.stacks_mapped != s1.stacks_mapped);
        if (s0.guard_pages >= s0.stacks_mapped) {
            say("guard budget not used up: %llu guards, %llu stacks\n",
                (unsigned long long)s0.guard_pages, (unsigned long long)s0.stacks_mapped);
            _exit(4);
        }
        /* three 64 KiB slots, made after the budget ran out, used once and
         * freed: "deep" gets the last one back and overflows into the one
         * below, which holds no live task (so ASan sees no live frames
         * overwritten; the canary is what must notice) */
        csp_task_opts_t pad = { .name = "pad", .stack_size = PAD_STACK };
        static csp_wg_t pad_gate[3];
        for (int i = 0; i < 3; i++) {
            csp_wg_add(&pad_gate[i], 1);
            csp_go_opts(pad_task, &pad_gate[i], &pad);
        }
        for (int i = 0; i < 3; i++) {
            /* one at a time, so that their slots are freed in order and the
             * last (highest) one is handed out next */
            csp_wg_done(&pad_gate[i]);
            do
                csp_sleep(CSP_MILLISECOND);
            while (csp_stats(&s1) == 0 && s1.tasks_live > (uint64_t)(n + 1 + 2 - i));
        }
        if (s1.guard_pages != s0.guard_pages || s1.stacks_mapped != s0.stacks_mapped + 3) {
            say("pads: guards %llu -> %llu, stacks %llu -> %llu\n",
                (unsigned long long)s0.guard_pages, (unsigned long long)s1.guard_pages,
                (unsigned long long)s0.stacks_mapped, (unsigned long long)s1.stacks_mapped);
            _exit(4);
        }
        o.stack_size = PAD_STACK;
        csp_go_opts(deep, NULL, &o);
        csp_stats(&s2);
        if (s2.guard_pages != s1.guard_pages || s2.stacks_mapped != s1.stacks_mapped) {
            say("deep did not reuse a pad's slot\n");
            _exit(4);
        }
    } else {
        csp_go_opts(deep, NULL, &o);
    }
    /* the report ends the process; give up after 5 s */
    for (int i = 0; i < 500; i++)
        csp_sleep(10 * CSP_MILLISECOND);
    say("no overflow report within 5 s\n");
    _exit(3);
}

static void run_child(enum mode m, size_t stack, int workers)
{
    child_mode = m;
    child_stack = stack;
    csp_config_t cfg = { .workers = workers };
    int r = csp_run(child_main, NULL, &cfg);
    say("csp_run returned %d\n", r);
    _exit(3);
}

/* ------------------------------------------------------------------------ */
/* the parent                                                                */

/* Forks a child running mode m; returns its stderr (malloc'ed) and status. */
static char *fork_child(enum mode m, size_t stack, int workers, int *status)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* not cmocka's handlers: a crash must end the child, not resume the
         * test runner in it */
        static const int sigs[] = { SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGABRT, SIGSYS };
        for (int i = 0; i < (int)(sizeof sigs / sizeof sigs[0]); i++)
            signal(sigs[i], SIG_DFL);
        close(p[0]);
        dup2(p[1], 2);
        close(p[1]);
        run_child(m, stack, workers);
    }
    close(p[1]);
    size_t cap = 4096, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    csp_time_t deadline = csp_now() + 30 * CSP_SECOND;
    for (;;) {
        struct pollfd pf = { .fd = p[0], .events = POLLIN };
        int left = (int)((deadline - csp_now()) / CSP_MILLISECOND);
        if (left <= 0) {
            kill(pid, SIGKILL);
            break;
        }
        int pr = poll(&pf, 1, left);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;
        if (len + 1024 > cap) {
            cap *= 2;
            out = realloc(out, cap);
            assert_non_null(out);
        }
        ssize_t n = read(p[0], out + len, cap - len - 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        len += (size_t)n;
    }
    out[len] = 0;
    close(p[0]);
    assert_int_equal(waitpid(pid, status, 0), pid);
    return out;
}

/* Parses "libcsp: task <id> (<name>) overflowed its <N>-byte stack". */
static int parse_report(const char *out, const char *name, unsigned long long *id,
                        unsigned long long *size)
{
    const char *p = strstr(out, "libcsp: task ");
    if (!p)
        return 0;
    p += strlen("libcsp: task ");
    char *end;
    if (*p < '0' || *p > '9')
        return 0;
    *id = strtoull(p, &end, 10);
    p = end;
    char mid[64];
    snprintf(mid, sizeof mid, " (%s) overflowed its ", name);
    if (strncmp(p, mid, strlen(mid)) != 0)
        return 0;
    p += strlen(mid);
    if (*p < '0' || *p > '9')
        return 0;
    *size = strtoull(p, &end, 10);
    p = end;
    const char *tail = "-byte stack";
    if (strncmp(p, tail, strlen(tail)) != 0)
        return 0;
    p += strlen(tail);
    return *p == '\n' || *p == '\0';
}

static void expect_report(enum mode m, size_t stack, int workers, unsigned long long want_size)
{
    int status = 0;
    char *out = fork_child(m, stack, workers, &status);
    unsigned long long deep_id = 0, id = 0, size = 0;
    const char *d = strstr(out, "deep id=");
    int ok = d && sscanf(d, "deep id=%llu", &deep_id) == 1;
    int parsed = parse_report(out, "deep", &id, &size);
    int aborted = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT;
    if (!ok || !parsed || id != deep_id || size != want_size || !aborted) {
        print_error("mode %d, stack %zu, workers %d: child %s %d; stderr:\n%s\n", (int)m, stack,
                    workers, WIFSIGNALED(status) ? "killed by signal" : "exited with",
                    WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status), out);
        print_error("want: deep's id (%llu) = reported id (%llu), size %llu = %llu, SIGABRT\n",
                    deep_id, id, want_size, size);
        free(out);
        fail();
    }
    free(out);
}

static void test_overflow_guard_page(void **state)
{
    (void)state;
#if defined(CSP_TEST_SANITIZER)
    skip(); /* no SIGSEGV handler under ASan/TSan */
#else
    expect_report(GUARD, 0, 1, CSP_DEFAULT_STACK_SIZE);
    expect_report(GUARD, 0, 2, CSP_DEFAULT_STACK_SIZE);
    expect_report(GUARD, 16 * 1024, 1, 16 * 1024);
    expect_report(GUARD, 1024 * 1024, 2, 1024 * 1024);
#endif
}

/* TSan allows at most 8128 live tasks (threads + fibers), fewer than the
 * guard budget (8191 with the default vm.max_map_count): the canary path
 * cannot be reached there. */
#if defined(__SANITIZE_THREAD__)
#  define SKIP_IF_TSAN() skip()
#elif defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define SKIP_IF_TSAN() skip()
#  endif
#endif
#ifndef SKIP_IF_TSAN
#  define SKIP_IF_TSAN() ((void)0)
#endif

static void test_overflow_canary_yield(void **state)
{
    (void)state;
    SKIP_IF_TSAN();
    expect_report(CANARY_YIELD, PAD_STACK, 1, PAD_STACK);
}

static void test_overflow_canary_exit(void **state)
{
    (void)state;
    SKIP_IF_TSAN();
    expect_report(CANARY_EXIT, PAD_STACK, 1, PAD_STACK);
}

static void test_overflow_canary_park(void **state)
{
    (void)state;
    SKIP_IF_TSAN();
    expect_report(CANARY_SLEEP, PAD_STACK, 1, PAD_STACK);
}

/* A frame larger than the guard page may jump over it and write into the
 * slot below without touching the guard (or the canary). The task then
 * switches away with its stack pointer below its stack: that must be
 * reported, not left as silent corruption of another slot. */
static void test_overflow_frame_jumps_guard(void **state)
{
    (void)state;
#if defined(CSP_TEST_SANITIZER)
    skip(); /* sanitizer frames may reach the guard page: no handler there */
#else
    expect_report(GUARD_JUMP, 0, 1, CSP_DEFAULT_STACK_SIZE);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_overflow_guard_page),
        cmocka_unit_test(test_overflow_canary_yield),
        cmocka_unit_test(test_overflow_canary_exit),
        cmocka_unit_test(test_overflow_canary_park),
        cmocka_unit_test(test_overflow_frame_jumps_guard),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
