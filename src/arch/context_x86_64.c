/* x86-64: builds the first frame that csp__ctx_switch pops (see the .S file). */
#include "context.h"
#include <stdint.h>
#include <string.h>

void csp__ctx_trampoline(void);

void csp__ctx_make(csp__ctx_t *ctx, void *stack_lo, size_t size,
                   csp__ctx_entry_fn entry, void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    /* After the switch pops 8 words and returns, rsp == top (16-aligned), so the
     * trampoline's `call` gives entry the ABI's (rsp + 8) % 16 == 0. */
    uint64_t *sp = (uint64_t *)top;
    *--sp = (uint64_t)(uintptr_t)csp__ctx_trampoline; /* return address */
    *--sp = 0;                                  /* rbp */
    *--sp = 0;                                  /* rbx */
    *--sp = (uint64_t)(uintptr_t)entry;         /* r12 */
    *--sp = (uint64_t)(uintptr_t)arg;           /* r13 */
    *--sp = 0;                                  /* r14 */
    *--sp = 0;                                  /* r15 */
    /* control words: x87 CW 0x037f (default), MXCSR 0x1f80 (default) */
    uint64_t cw = 0x037fULL | ((uint64_t)0x1f80 << 32);
    *--sp = cw;
    ctx->sp = sp;
}
