/* Internal context-switch interface. One backend is compiled, chosen by CMake
 * (CSP_CONTEXT=asm|ucontext):
 *   switch_x86_64_sysv.S   x86-64 System V
 *   switch_aarch64.S       AArch64 (AAPCS64)
 *   switch_ucontext.c      portable fallback (getcontext/makecontext/swapcontext)
 *
 * Contract (every backend):
 *  - csp__ctx_make(ctx, lo, size, entry, arg) prepares ctx so that the first
 *    csp__ctx_switch(_, ctx, pass) runs entry(arg, pass) on the stack
 *    [lo, lo + size), 16-byte aligned as the ABI wants. entry must never return.
 *  - csp__ctx_switch(from, to, pass) saves the callee-saved registers (and the
 *    FPU/SSE control words: x87 CW + MXCSR on x86-64, FPCR on AArch64) into
 *    from, resumes to, and hands `pass` to it: the resumed side's own pending
 *    csp__ctx_switch call returns `pass` (or entry receives it).
 *  - No allocation, no syscall (except the ucontext backend's sigprocmask).
 *  - Sanitizer annotations are NOT done here: the scheduler wraps every switch
 *    (src/sched/switch.h) so the asm stays annotation-free.
 */
#ifndef CSP_ARCH_CONTEXT_H
#define CSP_ARCH_CONTEXT_H

#include <stddef.h>

#if defined(CSP_CONTEXT_UCONTEXT)
#include <ucontext.h>
typedef struct csp__ctx {
    ucontext_t uc;
} csp__ctx_t;
#else
/* asm backends push the callee-saved state on the stack being left and keep
 * only the stack pointer here. */
typedef struct csp__ctx {
    void *sp;
} csp__ctx_t;
#endif

typedef void (*csp__ctx_entry_fn)(void *arg, void *pass);

void  csp__ctx_make(csp__ctx_t *ctx, void *stack_lo, size_t size,
                    csp__ctx_entry_fn entry, void *arg);
void *csp__ctx_switch(csp__ctx_t *from, csp__ctx_t *to, void *pass);

#endif /* CSP_ARCH_CONTEXT_H */
