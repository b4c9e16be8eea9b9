/* Portable context switch on getcontext/makecontext/swapcontext. Built with
 * -DCSP_CONTEXT_UCONTEXT (CMake option CSP_CONTEXT=ucontext), which makes
 * context.h define csp__ctx_t around a ucontext_t. See context.h for the
 * contract.
 *
 * Differences from the asm backends, all allowed by the contract:
 *  - swapcontext saves and restores the signal mask, one rt_sigprocmask
 *    syscall per switch: slower (about 10x), but correct.
 *  - A new context starts with the FPU/SSE control state and the signal mask
 *    of the thread that called csp__ctx_make (getcontext captures them), not
 *    with the defaults.
 *  - glibc's ucontext_t points into itself (uc_mcontext.fpregs on x86-64), so
 *    a csp__ctx_t must not be moved or copied once made or switched from.
 *
 * Passing values: makecontext passes only int arguments, so entry and arg
 * travel as two 32-bit halves each. `pass` goes through a thread-local: the
 * switch happens within one thread, so the value written just before
 * swapcontext is the one the resumed side reads just after it, on the same
 * thread. The resumed side may be a task that last ran on another thread, so
 * the read goes through a noinline, non-IPA accessor: the compiler must not
 * reuse a TLS address it computed before the switch.
 */
#include "context.h"
#include <stdint.h>
#include <stdlib.h>

#if defined(__clang__)
#  define CSP__UC_NOIPA __attribute__((noinline, optnone))
#else
#  define CSP__UC_NOIPA __attribute__((noinline, noipa))
#endif

static __thread void *csp__uc_pass;

static CSP__UC_NOIPA void *csp__uc_pass_get(void)
{
    return csp__uc_pass;
}

static CSP__UC_NOIPA void csp__uc_pass_set(void *pass)
{
    csp__uc_pass = pass;
}

static void csp__uc_trampoline(unsigned int entry_hi, unsigned int entry_lo,
                               unsigned int arg_hi, unsigned int arg_lo)
{
    csp__ctx_entry_fn entry =
        (csp__ctx_entry_fn)(uintptr_t)(((uint64_t)entry_hi << 32) | entry_lo);
    void *arg = (void *)(uintptr_t)(((uint64_t)arg_hi << 32) | arg_lo);
    entry(arg, csp__uc_pass_get());
    abort(); /* entry must not return */
}

void csp__ctx_make(csp__ctx_t *ctx, void *stack_lo, size_t size, csp__ctx_entry_fn entry,
                   void *arg)
{
    uint64_t e = (uint64_t)(uintptr_t)entry;
    uint64_t a = (uint64_t)(uintptr_t)arg;

    if (getcontext(&ctx->uc) != 0)
        abort(); /* cannot fail on Linux */
    ctx->uc.uc_link = NULL;
    ctx->uc.uc_stack.ss_sp = stack_lo;
    ctx->uc.uc_stack.ss_size = size;
    ctx->uc.uc_stack.ss_flags = 0;
    /* makecontext aligns the stack top as the ABI wants. */
    makecontext(&ctx->uc, (void (*)(void))csp__uc_trampoline, 4, (unsigned int)(e >> 32),
                (unsigned int)(e & 0xffffffffu), (unsigned int)(a >> 32),
                (unsigned int)(a & 0xffffffffu));
}

void *csp__ctx_switch(csp__ctx_t *from, csp__ctx_t *to, void *pass)
{
    csp__uc_pass_set(pass);
    if (swapcontext(&from->uc, &to->uc) != 0)
        abort(); /* cannot fail on Linux */
    return csp__uc_pass_get();
}
