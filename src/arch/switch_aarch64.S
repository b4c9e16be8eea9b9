/* AArch64 (AAPCS64) context switch. See context.h for the contract and
 * context_offsets.h for the frame layout (shared with context_aarch64.c).
 *
 * csp__ctx_switch pushes the callee-saved state of the side being left on its
 * own stack: x19-x28, x29 (fp), x30 (lr = where it resumes), the low 64 bits
 * of v8-v15 (d8-d15: all AAPCS64 preserves of them) and FPCR, then stores sp
 * in from->sp, loads to->sp and pops the same frame. x18 (platform register)
 * is not touched: Linux leaves it to the program and nothing here uses it.
 * FPSR (the sticky exception flags) is not preserved, as across any call.
 */
#include "context_offsets.h"

/* Branch Target Identification: when the C code is built with
 * -mbranch-protection=bti|standard, indirect calls need a landing pad and the
 * object must say it is BTI-compatible (GNU property note at the end). */
#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
#define CSP_BTI_C hint 34 /* bti c */
#else
#define CSP_BTI_C
#endif

    .text
    .globl  csp__ctx_switch
    .hidden csp__ctx_switch
    .type   csp__ctx_switch, %function
    .p2align 4
/* void *csp__ctx_switch(csp__ctx_t *from (x0), csp__ctx_t *to (x1), void *pass (x2)) */
csp__ctx_switch:
    .cfi_startproc
    CSP_BTI_C
    sub     sp, sp, #CSP_A64_FRAME_SIZE
    .cfi_def_cfa_offset CSP_A64_FRAME_SIZE
    stp     x19, x20, [sp, #CSP_A64_OFF_X19]
    stp     x21, x22, [sp, #CSP_A64_OFF_X21]
    stp     x23, x24, [sp, #CSP_A64_OFF_X23]
    stp     x25, x26, [sp, #CSP_A64_OFF_X25]
    stp     x27, x28, [sp, #CSP_A64_OFF_X27]
    stp     x29, x30, [sp, #CSP_A64_OFF_X29]
    stp     d8,  d9,  [sp, #CSP_A64_OFF_D8]
    stp     d10, d11, [sp, #CSP_A64_OFF_D10]
    stp     d12, d13, [sp, #CSP_A64_OFF_D12]
    stp     d14, d15, [sp, #CSP_A64_OFF_D14]
    .cfi_offset x19, CSP_A64_OFF_X19 - CSP_A64_FRAME_SIZE
    .cfi_offset x20, CSP_A64_OFF_X19 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset x21, CSP_A64_OFF_X21 - CSP_A64_FRAME_SIZE
    .cfi_offset x22, CSP_A64_OFF_X21 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset x23, CSP_A64_OFF_X23 - CSP_A64_FRAME_SIZE
    .cfi_offset x24, CSP_A64_OFF_X23 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset x25, CSP_A64_OFF_X25 - CSP_A64_FRAME_SIZE
    .cfi_offset x26, CSP_A64_OFF_X25 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset x27, CSP_A64_OFF_X27 - CSP_A64_FRAME_SIZE
    .cfi_offset x28, CSP_A64_OFF_X27 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset x29, CSP_A64_OFF_X29 - CSP_A64_FRAME_SIZE
    .cfi_offset x30, CSP_A64_OFF_X30 - CSP_A64_FRAME_SIZE
    .cfi_offset d8,  CSP_A64_OFF_D8 - CSP_A64_FRAME_SIZE
    .cfi_offset d9,  CSP_A64_OFF_D8 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset d10, CSP_A64_OFF_D10 - CSP_A64_FRAME_SIZE
    .cfi_offset d11, CSP_A64_OFF_D10 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset d12, CSP_A64_OFF_D12 - CSP_A64_FRAME_SIZE
    .cfi_offset d13, CSP_A64_OFF_D12 + 8 - CSP_A64_FRAME_SIZE
    .cfi_offset d14, CSP_A64_OFF_D14 - CSP_A64_FRAME_SIZE
    .cfi_offset d15, CSP_A64_OFF_D14 + 8 - CSP_A64_FRAME_SIZE
    mrs     x9, fpcr
    str     x9, [sp, #CSP_A64_OFF_FPCR]
    mov     x10, sp
    str     x10, [x0]               /* from->sp */
    ldr     x10, [x1]               /* to->sp */
    mov     sp, x10
    /* From here on the frame is the resumed side's, same layout, same CFI. */
    ldr     x10, [sp, #CSP_A64_OFF_FPCR]
    cmp     x9, x10                 /* writing FPCR can be slow: skip if equal */
    b.eq    1f
    msr     fpcr, x10
1:
    ldp     x19, x20, [sp, #CSP_A64_OFF_X19]
    ldp     x21, x22, [sp, #CSP_A64_OFF_X21]
    ldp     x23, x24, [sp, #CSP_A64_OFF_X23]
    ldp     x25, x26, [sp, #CSP_A64_OFF_X25]
    ldp     x27, x28, [sp, #CSP_A64_OFF_X27]
    ldp     x29, x30, [sp, #CSP_A64_OFF_X29]
    ldp     d8,  d9,  [sp, #CSP_A64_OFF_D8]
    ldp     d10, d11, [sp, #CSP_A64_OFF_D10]
    ldp     d12, d13, [sp, #CSP_A64_OFF_D12]
    ldp     d14, d15, [sp, #CSP_A64_OFF_D14]
    mov     x0, x2                  /* the resumed side's return value */
    mov     x1, x2                  /* and entry's second argument on a first switch */
    add     sp, sp, #CSP_A64_FRAME_SIZE
    .cfi_def_cfa_offset 0
    .cfi_restore x19
    .cfi_restore x20
    .cfi_restore x21
    .cfi_restore x22
    .cfi_restore x23
    .cfi_restore x24
    .cfi_restore x25
    .cfi_restore x26
    .cfi_restore x27
    .cfi_restore x28
    .cfi_restore x29
    .cfi_restore x30
    .cfi_restore d8
    .cfi_restore d9
    .cfi_restore d10
    .cfi_restore d11
    .cfi_restore d12
    .cfi_restore d13
    .cfi_restore d14
    .cfi_restore d15
    ret
    .cfi_endproc
    .size   csp__ctx_switch, .-csp__ctx_switch

/* First code of a new context, reached by csp__ctx_switch's `ret` (not an
 * indirect call, so no BTI landing pad). x19 = entry, x20 = arg, x1 = pass,
 * x29 = 0 (ends the frame-pointer chain), sp = the 16-aligned stack top. */
    .globl  csp__ctx_trampoline
    .hidden csp__ctx_trampoline
    .type   csp__ctx_trampoline, %function
    .p2align 4
csp__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined x30              /* outermost frame for unwinders */
    mov     x0, x20
    blr     x19
    brk     #0xc5                   /* entry must not return */
    .cfi_endproc
    .size   csp__ctx_trampoline, .-csp__ctx_trampoline

#if defined(__ARM_FEATURE_BTI_DEFAULT) && __ARM_FEATURE_BTI_DEFAULT
/* GNU_PROPERTY_AARCH64_FEATURE_1_AND: BTI (bit 0). PAC (bit 1) is per function
 * and needs no marking; these functions never sign lr. */
    .pushsection .note.gnu.property, "a"
    .p2align 3
    .word   4                       /* name size ("GNU\0") */
    .word   16                      /* descriptor size */
    .word   5                       /* NT_GNU_PROPERTY_TYPE_0 */
    .asciz  "GNU"
    .word   0xc0000000              /* GNU_PROPERTY_AARCH64_FEATURE_1_AND */
    .word   4
    .word   1                       /* GNU_PROPERTY_AARCH64_FEATURE_1_BTI */
    .word   0
    .popsection
#endif

    .section .note.GNU-stack,"",%progbits
