/* x86-64 System V context switch. See context.h for the contract.
 *
 * Saved frame, pushed on the stack being left (low address first), sp kept
 * in csp__ctx_t.sp:
 *   0  x87 control word (2 bytes, bytes 2..3 zero) | MXCSR (4 bytes at +4)
 *   8  r15
 *  16  r14
 *  24  r13
 *  32  r12
 *  40  rbx
 *  48  rbp
 *  56  return address
 */
    .text
    .globl  csp__ctx_switch
    .hidden csp__ctx_switch
    .type   csp__ctx_switch, @function
    .p2align 4
/* void *csp__ctx_switch(csp__ctx_t *from (rdi), csp__ctx_t *to (rsi), void *pass (rdx)) */
csp__ctx_switch:
    .cfi_startproc
    pushq   %rbp
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbp, 0
    pushq   %rbx
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset rbx, 0
    pushq   %r12
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r12, 0
    pushq   %r13
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r13, 0
    pushq   %r14
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r14, 0
    pushq   %r15
    .cfi_adjust_cfa_offset 8
    .cfi_rel_offset r15, 0
    pushq   $0                  /* control-word slot, padding bytes 2..3 zeroed */
    .cfi_adjust_cfa_offset 8
    fnstcw  (%rsp)
    stmxcsr 4(%rsp)
    movq    (%rsp), %rax        /* our control words */
    movq    %rsp, (%rdi)        /* from->sp */
    movq    (%rsi), %rsp        /* to->sp: same frame layout, so the CFI holds */
    cmpq    (%rsp), %rax        /* loading them is slow (fldcw, ldmxcsr): */
    je      1f                  /* skip it when the target's are the same */
    fldcw   (%rsp)
    ldmxcsr 4(%rsp)
1:
    addq    $8, %rsp
    .cfi_adjust_cfa_offset -8
    popq    %r15
    .cfi_adjust_cfa_offset -8
    .cfi_restore r15
    popq    %r14
    .cfi_adjust_cfa_offset -8
    .cfi_restore r14
    popq    %r13
    .cfi_adjust_cfa_offset -8
    .cfi_restore r13
    popq    %r12
    .cfi_adjust_cfa_offset -8
    .cfi_restore r12
    popq    %rbx
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbx
    popq    %rbp
    .cfi_adjust_cfa_offset -8
    .cfi_restore rbp
    movq    %rdx, %rax          /* the resumed side's return value */
    movq    %rdx, %rsi          /* and entry's second argument on a first switch */
    ret
    .cfi_endproc
    .size   csp__ctx_switch, .-csp__ctx_switch

/* First frame of a new context: r12 = entry, r13 = arg, pass in rsi. */
    .globl  csp__ctx_trampoline
    .hidden csp__ctx_trampoline
    .type   csp__ctx_trampoline, @function
    .p2align 4
csp__ctx_trampoline:
    .cfi_startproc
    .cfi_undefined rip
    movq    %r13, %rdi
    /* rsp is 16-byte aligned here; call pushes the return address as the ABI expects */
    callq   *%r12
    ud2                          /* entry must not return */
    .cfi_endproc
    .size   csp__ctx_trampoline, .-csp__ctx_trampoline

    .section .note.GNU-stack,"",@progbits
