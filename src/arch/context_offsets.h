/* Frame layouts of the asm context-switch backends, shared by the .S files
 * (which push/pop these frames) and the .c files (which build the first frame
 * of a new context). Only macros here: this header is included from assembly.
 * The C side checks every offset with _Static_assert against a struct.
 */
#ifndef CSP_ARCH_CONTEXT_OFFSETS_H
#define CSP_ARCH_CONTEXT_OFFSETS_H

/* AArch64 (AAPCS64). The frame is stored at the saved sp, low address first;
 * csp__ctx_t.sp points at its base. 16-byte aligned, as sp must always be.
 *
 *     0  x19  x20      16  x21  x22      32  x23  x24
 *    48  x25  x26      64  x27  x28      80  x29  x30 (lr: where to resume)
 *    96  d8   d9      112  d10  d11     128  d12  d13
 *   144  d14  d15     160  FPCR (low 32 bits used), 168 unused
 */
#define CSP_A64_OFF_X19   0
#define CSP_A64_OFF_X21  16
#define CSP_A64_OFF_X23  32
#define CSP_A64_OFF_X25  48
#define CSP_A64_OFF_X27  64
#define CSP_A64_OFF_X29  80
#define CSP_A64_OFF_X30  88
#define CSP_A64_OFF_D8   96
#define CSP_A64_OFF_D10 112
#define CSP_A64_OFF_D12 128
#define CSP_A64_OFF_D14 144
#define CSP_A64_OFF_FPCR 160
#define CSP_A64_FRAME_SIZE 176

/* Registers a fresh context's trampoline reads from its first frame. */
#define CSP_A64_OFF_ENTRY CSP_A64_OFF_X19 /* x19 = entry */
#define CSP_A64_OFF_ARG   (CSP_A64_OFF_X19 + 8) /* x20 = arg */

#endif /* CSP_ARCH_CONTEXT_OFFSETS_H */
