/* AArch64: builds the first frame that csp__ctx_switch pops (see
 * switch_aarch64.S and context_offsets.h). */
#include "context.h"
#include "context_offsets.h"
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void csp__ctx_trampoline(void);

/* The frame csp__ctx_switch pushes, as C sees it. */
struct csp__a64_frame {
    uint64_t x19_x28[10];
    uint64_t x29;
    uint64_t x30;
    uint64_t d8_d15[8];
    uint64_t fpcr;
    uint64_t unused;
};

_Static_assert(offsetof(struct csp__a64_frame, x19_x28) == CSP_A64_OFF_X19, "x19");
_Static_assert(offsetof(struct csp__a64_frame, x19_x28[2]) == CSP_A64_OFF_X21, "x21");
_Static_assert(offsetof(struct csp__a64_frame, x19_x28[4]) == CSP_A64_OFF_X23, "x23");
_Static_assert(offsetof(struct csp__a64_frame, x19_x28[6]) == CSP_A64_OFF_X25, "x25");
_Static_assert(offsetof(struct csp__a64_frame, x19_x28[8]) == CSP_A64_OFF_X27, "x27");
_Static_assert(offsetof(struct csp__a64_frame, x29) == CSP_A64_OFF_X29, "x29");
_Static_assert(offsetof(struct csp__a64_frame, x30) == CSP_A64_OFF_X30, "x30");
_Static_assert(offsetof(struct csp__a64_frame, d8_d15) == CSP_A64_OFF_D8, "d8");
_Static_assert(offsetof(struct csp__a64_frame, d8_d15[2]) == CSP_A64_OFF_D10, "d10");
_Static_assert(offsetof(struct csp__a64_frame, d8_d15[4]) == CSP_A64_OFF_D12, "d12");
_Static_assert(offsetof(struct csp__a64_frame, d8_d15[6]) == CSP_A64_OFF_D14, "d14");
_Static_assert(offsetof(struct csp__a64_frame, fpcr) == CSP_A64_OFF_FPCR, "fpcr");
_Static_assert(sizeof(struct csp__a64_frame) == CSP_A64_FRAME_SIZE, "frame size");
_Static_assert(CSP_A64_FRAME_SIZE % 16 == 0, "sp must stay 16-byte aligned");
_Static_assert(CSP_A64_OFF_ENTRY == CSP_A64_OFF_X19 &&
                   CSP_A64_OFF_ARG == CSP_A64_OFF_X19 + 8,
               "trampoline reads entry from x19 and arg from x20");

void csp__ctx_make(csp__ctx_t *ctx, void *stack_lo, size_t size, csp__ctx_entry_fn entry,
                   void *arg)
{
    uintptr_t top = ((uintptr_t)stack_lo + size) & ~(uintptr_t)15;
    /* After the switch pops the frame, sp == top (16-aligned) when the
     * trampoline calls entry. */
    struct csp__a64_frame *f = (struct csp__a64_frame *)(top - sizeof *f);
    memset(f, 0, sizeof *f);                    /* x29 = 0 ends the fp chain */
    f->x19_x28[0] = (uint64_t)(uintptr_t)entry; /* x19 */
    f->x19_x28[1] = (uint64_t)(uintptr_t)arg;   /* x20 */
    f->x30 = (uint64_t)(uintptr_t)csp__ctx_trampoline;
    f->fpcr = 0; /* default: round to nearest, no traps, no flush-to-zero */
    ctx->sp = f;
}
