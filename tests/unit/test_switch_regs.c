/* ctest-timeout: 60 */
/* Callee-saved state survives task switches through the scheduler, including
 * resumptions on another worker thread:
 *   - general registers: an assembly helper loads known values into every
 *     callee-saved register (x86-64: rbx, r12-r15, and rbp when it is not
 *     needed as the frame pointer; aarch64: x19-x28, d8-d15), calls
 *     csp_yield (or a sleep / WaitGroup park) and stores what the registers
 *     hold afterwards, while other tasks do the same with other values;
 *   - the floating-point control state (rounding mode; x86-64 MXCSR and the
 *     x87 control word, aarch64 FPCR): each task sets its own and must find
 *     it after every switch.
 * (tests/internal/test_arch_switch.c checks the raw switch; this goes through
 * csp_yield, parking and migration between workers.)
 */
#define _GNU_SOURCE
#include <fenv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"

#if defined(__x86_64__)
#define HAVE_REGS 1
/* in[0..4]: rbx r12 r13 r14 r15, in[5]: rbp, in[6]: nonzero = load rbp too.
 * out[0..5]: the same registers after fn() returned. */
#define NREGS 6
#define NIN 7
void t_regs_call(const uint64_t *in, uint64_t *out, void (*fn)(void));
__asm__(".text\n"
        ".globl t_regs_call\n"
        ".hidden t_regs_call\n"
        ".type t_regs_call, @function\n"
        ".p2align 4\n"
        "t_regs_call:\n"
        "  pushq %rbp\n"
        "  pushq %rbx\n"
        "  pushq %r12\n"
        "  pushq %r13\n"
        "  pushq %r14\n"
        "  pushq %r15\n"
        "  pushq %rsi\n" /* out; 7 pushes: rsp is 16-byte aligned for the call */
        "  movq 0(%rdi), %rbx\n"
        "  movq 8(%rdi), %r12\n"
        "  movq 16(%rdi), %r13\n"
        "  movq 24(%rdi), %r14\n"
        "  movq 32(%rdi), %r15\n"
        "  cmpq $0, 48(%rdi)\n"
        "  je 1f\n"
        "  movq 40(%rdi), %rbp\n"
        "1:\n"
        "  callq *%rdx\n"
        "  movq (%rsp), %rsi\n"
        "  movq %rbx, 0(%rsi)\n"
        "  movq %r12, 8(%rsi)\n"
        "  movq %r13, 16(%rsi)\n"
        "  movq %r14, 24(%rsi)\n"
        "  movq %r15, 32(%rsi)\n"
        "  movq %rbp, 40(%rsi)\n"
        "  popq %rsi\n"
        "  popq %r15\n"
        "  popq %r14\n"
        "  popq %r13\n"
        "  popq %r12\n"
        "  popq %rbx\n"
        "  popq %rbp\n"
        "  ret\n"
        ".size t_regs_call, .-t_regs_call\n");
#elif defined(__aarch64__)
#define HAVE_REGS 1
/* in/out[0..9]: x19-x28, [10..17]: d8-d15 (bit patterns). in[18] unused. */
#define NREGS 18
#define NIN 19
void t_regs_call(const uint64_t *in, uint64_t *out, void (*fn)(void));
__asm__(".text\n"
        ".globl t_regs_call\n"
        ".hidden t_regs_call\n"
        ".type t_regs_call, %function\n"
        ".p2align 4\n"
        "t_regs_call:\n"
        "  stp x29, x30, [sp, #-176]!\n"
        "  mov x29, sp\n"
        "  stp x19, x20, [sp, #16]\n"
        "  stp x21, x22, [sp, #32]\n"
        "  stp x23, x24, [sp, #48]\n"
        "  stp x25, x26, [sp, #64]\n"
        "  stp x27, x28, [sp, #80]\n"
        "  stp d8, d9, [sp, #96]\n"
        "  stp d10, d11, [sp, #112]\n"
        "  stp d12, d13, [sp, #128]\n"
        "  stp d14, d15, [sp, #144]\n"
        "  str x1, [sp, #160]\n"
        "  ldp x19, x20, [x0, #0]\n"
        "  ldp x21, x22, [x0, #16]\n"
        "  ldp x23, x24, [x0, #32]\n"
        "  ldp x25, x26, [x0, #48]\n"
        "  ldp x27, x28, [x0, #64]\n"
        "  ldp d8, d9, [x0, #80]\n"
        "  ldp d10, d11, [x0, #96]\n"
        "  ldp d12, d13, [x0, #112]\n"
        "  ldp d14, d15, [x0, #128]\n"
        "  blr x2\n"
        "  ldr x1, [sp, #160]\n"
        "  stp x19, x20, [x1, #0]\n"
        "  stp x21, x22, [x1, #16]\n"
        "  stp x23, x24, [x1, #32]\n"
        "  stp x25, x26, [x1, #48]\n"
        "  stp x27, x28, [x1, #64]\n"
        "  stp d8, d9, [x1, #80]\n"
        "  stp d10, d11, [x1, #96]\n"
        "  stp d12, d13, [x1, #112]\n"
        "  stp d14, d15, [x1, #128]\n"
        "  ldp x19, x20, [sp, #16]\n"
        "  ldp x21, x22, [sp, #32]\n"
        "  ldp x23, x24, [sp, #48]\n"
        "  ldp x25, x26, [sp, #64]\n"
        "  ldp x27, x28, [sp, #80]\n"
        "  ldp d8, d9, [sp, #96]\n"
        "  ldp d10, d11, [sp, #112]\n"
        "  ldp d12, d13, [sp, #128]\n"
        "  ldp d14, d15, [sp, #144]\n"
        "  ldp x29, x30, [sp], #176\n"
        "  ret\n"
        ".size t_regs_call, .-t_regs_call\n");
#endif

enum { REG_TASKS = 12, REG_ITERS = 3000 };
static csp_wg_t reg_wg;
static atomic_long reg_moves;

#if defined(HAVE_REGS)

static void do_yield(void)
{
    csp_yield();
}

static void do_sleep(void)
{
    csp_sleep(20 * CSP_MICROSECOND);
}

static void release_soon(void *arg)
{
    csp_yield();
    csp_wg_done(arg);
}

static void do_park(void)
{
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, 1);
    csp_go(release_soon, &wg);
    csp_wg_wait(&wg);
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 31;
    x *= 0x7fb5d329728ea185ull;
    x ^= x >> 27;
    x *= 0x81dadef4bc2dd44dull;
    x ^= x >> 33;
    return x;
}

static void reg_task(void *arg)
{
    int me = (int)(intptr_t)arg;
#if defined(__x86_64__) && !defined(CSP_TEST_SANITIZER)
    /* rbp too, unless the sanitizers' unwinders may walk frame pointers */
    const uint64_t with_rbp = 1;
#else
    const uint64_t with_rbp = 0;
#endif
    int last = csp_worker_id();
    long moves = 0;
    for (int k = 0; k < REG_ITERS; k++) {
        uint64_t in[NIN], out[NREGS];
        for (int r = 0; r < NREGS; r++)
            in[r] = mix(((uint64_t)me << 40) ^ ((uint64_t)k << 8) ^ (uint64_t)r) | 1;
#if defined(__x86_64__)
        in[6] = with_rbp;
#else
        in[NIN - 1] = with_rbp;
#endif
        void (*fn)(void) = k % 97 == 0 ? do_sleep : k % 89 == 0 ? do_park : do_yield;
        t_regs_call(in, out, fn);
        int nchk = NREGS;
#if defined(__x86_64__)
        if (!with_rbp)
            nchk = 5;
#endif
        for (int r = 0; r < nchk; r++)
            if (out[r] != in[r]) {
                tc_fail(__FILE__, __LINE__,
                        "task %d iteration %d: callee-saved register #%d was %#llx, now %#llx", me,
                        k, r, (unsigned long long)in[r], (unsigned long long)out[r]);
                break;
            }
        int w = csp_worker_id();
        if (w != last)
            moves++;
        last = w;
    }
    atomic_fetch_add(&reg_moves, moves);
    csp_wg_done(&reg_wg);
}

static void reg_main(void *arg)
{
    (void)arg;
    csp_wg_add(&reg_wg, REG_TASKS);
    for (int i = 0; i < REG_TASKS; i++)
        TCHECK_EQ(csp_go(reg_task, (void *)(intptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&reg_wg), 0);
}
#endif

static void test_callee_saved_registers(void **state)
{
    (void)state;
#if !defined(HAVE_REGS)
    skip();
#else
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int p = 0; p < 2; p++) {
            memset(&reg_wg, 0, sizeof reg_wg);
            atomic_store(&reg_moves, 0);
            T_RUN(reg_main, NULL, tc_worker_counts[w],
                  p ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST);
            print_message("workers %d: %ld migrations\n", tc_worker_counts[w],
                          atomic_load(&reg_moves));
        }
#endif
}

/* ------------------------------------------------------------------------ */
/* floating-point control state                                              */

static const int modes[] = { FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO };

#if defined(__x86_64__)
static unsigned read_sse_control(void)
{
    return __builtin_ia32_stmxcsr() & ~0x3fu; /* without the status flags */
}
static void write_sse_ftz(int on)
{
    unsigned m = __builtin_ia32_stmxcsr();
    m = on ? (m | 0x8000u) : (m & ~0x8000u); /* FTZ */
    __builtin_ia32_ldmxcsr(m);
}
#elif defined(__aarch64__)
static unsigned read_sse_control(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    return (unsigned)v;
}
static void write_sse_ftz(int on)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v));
    v = on ? (v | (1u << 24)) : (v & ~(uint64_t)(1u << 24)); /* FZ */
    __asm__ volatile("msr fpcr, %0" ::"r"(v));
}
#else
static unsigned read_sse_control(void)
{
    return 0;
}
static void write_sse_ftz(int on)
{
    (void)on;
}
#endif

static csp_wg_t fp_wg;

static void fp_task(void *arg)
{
    int me = (int)(intptr_t)arg;
    int mode = modes[me % 4];
    TCHECK_EQ(fesetround(mode), 0);
    write_sse_ftz(me % 8 >= 4);
    unsigned ctl = read_sse_control();
    volatile double one = 1.0, three = 3.0;
    double expect_third = one / three;
    for (int k = 0; k < 2000; k++) {
        if (k % 101 == 0)
            csp_sleep(10 * CSP_MICROSECOND);
        else
            csp_yield();
        int now = fegetround();
        if (now != mode) {
            tc_fail(__FILE__, __LINE__, "task %d iteration %d: rounding mode %d, set %d", me, k,
                    now, mode);
            break;
        }
        if (read_sse_control() != ctl) {
            tc_fail(__FILE__, __LINE__, "task %d iteration %d: FP control %#x, set %#x", me, k,
                    read_sse_control(), ctl);
            break;
        }
        double third = one / three; /* rounds as the mode says */
        if (third != expect_third) {
            tc_fail(__FILE__, __LINE__, "task %d: 1/3 rounded differently after a switch", me);
            break;
        }
    }
    fesetround(FE_TONEAREST);
    write_sse_ftz(0);
    csp_wg_done(&fp_wg);
}

static void fp_main(void *arg)
{
    (void)arg;
    enum { N = 16 };
    csp_wg_add(&fp_wg, N);
    for (int i = 0; i < N; i++)
        TCHECK_EQ(csp_go(fp_task, (void *)(intptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&fp_wg), 0);
    /* this task's own state was never changed */
    TCHECK_EQ(fegetround(), FE_TONEAREST);
}

static void test_fp_control_state(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(&fp_wg, 0, sizeof fp_wg);
        T_RUN(fp_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_callee_saved_registers),
        cmocka_unit_test(test_fp_control_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
