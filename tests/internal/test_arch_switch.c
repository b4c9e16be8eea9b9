/* ctest-timeout: 60 */
/* Internal tests of the context-switch backend (src/arch/context.h): whichever
 * one the build selected (x86-64 asm, AArch64 asm, or ucontext).
 *
 * Contexts here never finish (entry must not return): each test abandons its
 * contexts suspended and frees their stacks. Checks are made on the main
 * stack; contexts only record what they see. In ASan and TSan builds every
 * switch is announced to the sanitizer, as the scheduler does.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "arch/context.h"

#if defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define T_ASAN 1
#  endif
#  if __has_feature(thread_sanitizer)
#    define T_TSAN 1
#  endif
#endif
#if defined(__SANITIZE_ADDRESS__) && !defined(T_ASAN)
#  define T_ASAN 1
#endif
#if defined(__SANITIZE_THREAD__) && !defined(T_TSAN)
#  define T_TSAN 1
#endif
#ifdef T_ASAN
#  include <sanitizer/asan_interface.h>
#  include <sanitizer/common_interface_defs.h>
#endif
#ifdef T_TSAN
#  include <sanitizer/tsan_interface.h>
#endif

#if defined(__clang__)
#  define T_NOIPA __attribute__((noinline, optnone))
#else
#  define T_NOIPA __attribute__((noinline, noipa))
#endif

#define STACK_SIZE ((size_t)256 * 1024)

/* ------------------------------------------------------------------------ */
/* A context with its stack, and switching with sanitizer announcements.    */

typedef struct tctx tctx_t;
typedef void (*tentry_fn)(tctx_t *self, void *pass);

struct tctx {
    csp__ctx_t ctx;
    /* stack */
    void  *map; /* mmap'ed region (guard page first), or NULL */
    size_t map_size;
    void  *heap;     /* malloc'ed block, or NULL */
    void  *stack_lo; /* what csp__ctx_make got */
    size_t stack_size;
    /* what the context runs */
    tentry_fn entry;
    void     *user;
    /* what the first frame saw, checked by the tests */
    void     *arg_seen;
    uintptr_t sp_seen; /* sp (aarch64) or frame address (x86-64) */
    uintptr_t aligned_local_seen;
    int       started;
#ifdef T_TSAN
    void *tsan_fiber;
#endif
};

static void tctx_announce_start(tctx_t *to)
{
#ifdef T_TSAN
    __tsan_switch_to_fiber(to->tsan_fiber, 0);
#endif
    (void)to;
}

static void *tsw(tctx_t *from, tctx_t *to, void *pass)
{
    tctx_announce_start(to);
#ifdef T_ASAN
    void *fake = NULL;
    __sanitizer_start_switch_fiber(&fake, to->stack_lo, to->stack_size);
#endif
    void *r = csp__ctx_switch(&from->ctx, &to->ctx, pass);
#ifdef T_ASAN
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
    return r;
}

/* The calling thread's own stack, as a context to come back to. */
static void home_init(tctx_t *h)
{
    memset(h, 0, sizeof *h);
#ifdef T_ASAN
    pthread_attr_t a;
    assert_int_equal(pthread_getattr_np(pthread_self(), &a), 0);
    assert_int_equal(pthread_attr_getstack(&a, &h->stack_lo, &h->stack_size), 0);
    pthread_attr_destroy(&a);
#endif
#ifdef T_TSAN
    h->tsan_fiber = __tsan_get_current_fiber();
#endif
}

static T_NOIPA uintptr_t launder(uintptr_t v)
{
    return v;
}

static uintptr_t current_sp_or_frame(void)
{
#if defined(__aarch64__)
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
#else
    return (uintptr_t)__builtin_frame_address(0);
#endif
}

/* Called by the backend's trampoline: the first frame of every context. */
static void tctx_first(void *arg, void *pass)
{
    tctx_t *self = arg;
#ifdef T_ASAN
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    __attribute__((aligned(16))) volatile char aligned_local[16];
    aligned_local[0] = 1;
    self->arg_seen = arg;
    self->sp_seen = current_sp_or_frame();
    self->aligned_local_seen = launder((uintptr_t)&aligned_local[0]);
    self->started = 1;
    self->entry(self, pass);
    abort(); /* test entries never return */
}

/* Stack from mmap with a PROT_NONE guard page below it. */
static void tctx_make_mmap(tctx_t *t, tentry_fn entry, void *user)
{
    long page = sysconf(_SC_PAGESIZE);
    memset(t, 0, sizeof *t);
    t->map_size = STACK_SIZE + (size_t)page;
    t->map = mmap(NULL, t->map_size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    assert_true(t->map != MAP_FAILED);
    assert_int_equal(mprotect(t->map, (size_t)page, PROT_NONE), 0);
    t->stack_lo = (char *)t->map + page;
    t->stack_size = STACK_SIZE;
    t->entry = entry;
    t->user = user;
#ifdef T_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    csp__ctx_make(&t->ctx, t->stack_lo, t->stack_size, tctx_first, t);
}

/* Stack from malloc, deliberately with an odd start and length, so that the
 * backend has to align the top itself. */
static void tctx_make_heap(tctx_t *t, tentry_fn entry, void *user)
{
    memset(t, 0, sizeof *t);
    t->heap = malloc(STACK_SIZE + 64);
    assert_non_null(t->heap);
    t->stack_lo = (char *)t->heap + 3;
    t->stack_size = STACK_SIZE - 7;
    t->entry = entry;
    t->user = user;
#ifdef T_TSAN
    t->tsan_fiber = __tsan_create_fiber(0);
#endif
    csp__ctx_make(&t->ctx, t->stack_lo, t->stack_size, tctx_first, t);
}

static void tctx_free(tctx_t *t)
{
#ifdef T_ASAN
    /* Frames abandoned on this stack left their redzones poisoned; a later
     * mapping at the same address would inherit them. */
    __asan_unpoison_memory_region(t->stack_lo, t->stack_size);
#endif
#ifdef T_TSAN
    if (t->tsan_fiber)
        __tsan_destroy_fiber(t->tsan_fiber);
#endif
    if (t->map)
        munmap(t->map, t->map_size);
    free(t->heap);
    t->map = NULL;
    t->heap = NULL;
}

static tctx_t g_main; /* the test thread's own stack */

static int setup(void **state)
{
    (void)state;
    home_init(&g_main);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* First entry: arg and pass reach entry; pass comes back.                  */

struct first_rec {
    void *pass_seen;
    void *second_pass_seen;
};

static void first_entry(tctx_t *self, void *pass)
{
    struct first_rec *r = self->user;
    r->pass_seen = pass;
    r->second_pass_seen = tsw(self, &g_main, (void *)(uintptr_t)0x5678);
    tsw(self, &g_main, (void *)(uintptr_t)0x9abc);
    abort();
}

static void test_arch_switch_first_entry(void **state)
{
    (void)state;
    struct first_rec rec = {0};
    tctx_t           t;
    tctx_make_mmap(&t, first_entry, &rec);
    assert_int_equal(t.started, 0); /* make does not run anything */

    void *r = tsw(&g_main, &t, (void *)(uintptr_t)0x1234);
    assert_int_equal(t.started, 1);
    assert_ptr_equal(t.arg_seen, &t);
    assert_ptr_equal(rec.pass_seen, (void *)(uintptr_t)0x1234);
    assert_ptr_equal(r, (void *)(uintptr_t)0x5678);

    r = tsw(&g_main, &t, NULL);
    assert_null(rec.second_pass_seen);
    assert_ptr_equal(r, (void *)(uintptr_t)0x9abc);
    tctx_free(&t);
}

/* ------------------------------------------------------------------------ */
/* A ring: main -> A -> B -> C -> main, each adding its own amount.         */

struct node {
    tctx_t       *next;
    uintptr_t     add;
    uintptr_t     last_seen;
    unsigned long hits;
};

static void node_entry(tctx_t *self, void *pass)
{
    struct node *n = self->user;
    for (;;) {
        n->last_seen = (uintptr_t)pass;
        n->hits++;
        pass = tsw(self, n->next, (void *)((uintptr_t)pass + n->add));
    }
}

static void test_arch_switch_ring_of_three(void **state)
{
    (void)state;
    tctx_t      c[3];
    struct node n[3] = {
        {&c[1], 1, 0, 0},
        {&c[2], 10, 0, 0},
        {&g_main, 100, 0, 0},
    };
    tctx_make_mmap(&c[0], node_entry, &n[0]);
    tctx_make_heap(&c[1], node_entry, &n[1]);
    tctx_make_mmap(&c[2], node_entry, &n[2]);

    for (uintptr_t i = 0; i < 10000; i++) {
        uintptr_t v = i * 1000;
        uintptr_t r = (uintptr_t)tsw(&g_main, &c[0], (void *)v);
        assert_int_equal(n[0].last_seen, v);
        assert_int_equal(n[1].last_seen, v + 1);
        assert_int_equal(n[2].last_seen, v + 11);
        assert_int_equal(r, v + 111);
    }
    for (int k = 0; k < 3; k++) {
        assert_int_equal(n[k].hits, 10000);
        assert_ptr_equal(c[k].arg_seen, &c[k]);
        tctx_free(&c[k]);
    }
}

/* Main talks to three contexts in turn, each keeping its own state. */
static void test_arch_switch_interleaved_contexts(void **state)
{
    (void)state;
    tctx_t      c[3];
    struct node n[3] = {
        {&g_main, 1, 0, 0},
        {&g_main, 2, 0, 0},
        {&g_main, 3, 0, 0},
    };
    for (int k = 0; k < 3; k++)
        tctx_make_heap(&c[k], node_entry, &n[k]);
    for (uintptr_t i = 0; i < 3000; i++) {
        int       k = (int)((i * 7) % 3);
        uintptr_t r = (uintptr_t)tsw(&g_main, &c[k], (void *)(i << 4));
        assert_int_equal(r, (i << 4) + (uintptr_t)k + 1);
        assert_int_equal(n[k].last_seen, i << 4);
    }
    for (int k = 0; k < 3; k++) {
        assert_int_equal(n[k].hits, 1000);
        tctx_free(&c[k]);
    }
}

/* ------------------------------------------------------------------------ */
/* Many round trips.                                                        */

static void test_arch_switch_million_round_trips(void **state)
{
    (void)state;
    tctx_t      t;
    struct node n = {&g_main, 1, 0, 0};
    tctx_make_mmap(&t, node_entry, &n);
    unsigned long   bad = 0;
    const uintptr_t rounds = 1000000;
    for (uintptr_t i = 0; i < rounds; i++) {
        uintptr_t r = (uintptr_t)tsw(&g_main, &t, (void *)i);
        bad += (r != i + 1);
    }
    assert_int_equal(bad, 0);
    assert_int_equal(n.hits, rounds);
    assert_int_equal(n.last_seen, rounds - 1);
    tctx_free(&t);
}

/* ------------------------------------------------------------------------ */
/* Stack alignment as the ABI wants, on both stack kinds.                   */

static void align_entry(tctx_t *self, void *pass)
{
    (void)pass;
    for (;;)
        tsw(self, &g_main, NULL);
}

static void test_arch_switch_stack_alignment(void **state)
{
    (void)state;
    tctx_t t[2];
    tctx_make_mmap(&t[0], align_entry, NULL);
    tctx_make_heap(&t[1], align_entry, NULL);
    for (int k = 0; k < 2; k++) {
        tsw(&g_main, &t[k], NULL);
        assert_int_equal(t[k].started, 1);
        assert_int_equal(t[k].aligned_local_seen % 16, 0);
        /* aarch64: sp itself; x86-64: rbp after `push rbp`, i.e. the entry
         * rsp was 8 mod 16 as after a call. */
        assert_int_equal(t[k].sp_seen % 16, 0);
        /* and the frame is inside the stack we gave */
        assert_true(t[k].sp_seen > (uintptr_t)t[k].stack_lo);
        assert_true(t[k].sp_seen <= (uintptr_t)t[k].stack_lo + t[k].stack_size);
        assert_true(t[k].aligned_local_seen > (uintptr_t)t[k].stack_lo);
        assert_true(t[k].aligned_local_seen < (uintptr_t)t[k].stack_lo + t[k].stack_size);
        tctx_free(&t[k]);
    }
}

/* ------------------------------------------------------------------------ */
/* Migration: a context created on the test thread, resumed from thread A,  */
/* then from thread B, then from the test thread again.                     */

static __thread int tls_tag;

static T_NOIPA int tls_tag_get(void)
{
    return tls_tag;
}

/* Not pthread_self(): glibc declares it __attribute__((const)), so the
 * compiler may keep one thread's value across a switch (this test caught
 * exactly that). The same holds for errno's __errno_location(). */
static T_NOIPA long thread_id(void)
{
    return (long)syscall(SYS_gettid);
}

struct mig {
    tctx_t   *back; /* set by whoever resumes the context */
    int       n;
    long      thread_seen[8];
    int       tag_seen[8];
    uintptr_t local_seen[8];
};

static void mig_entry(tctx_t *self, void *pass)
{
    struct mig        *m = self->user;
    volatile uintptr_t local = 0xfeedface; /* must survive the moves */
    for (;;) {
        m->thread_seen[m->n] = thread_id();
        m->tag_seen[m->n] = tls_tag_get();
        m->local_seen[m->n] = local;
        m->n++;
        local = local + 1;
        pass = tsw(self, m->back, (void *)((uintptr_t)pass + 1));
    }
}

struct mig_thread {
    tctx_t     *t;
    struct mig *m;
    int         tag;
    uintptr_t   pass;
    uintptr_t   got;
    long        tid;
};

static void *mig_thread_fn(void *p)
{
    struct mig_thread *a = p;
    tctx_t             home;
    home_init(&home);
    tls_tag = a->tag;
    a->tid = thread_id();
    a->m->back = &home;
    a->got = (uintptr_t)tsw(&home, a->t, (void *)a->pass);
    return NULL;
}

static void test_arch_switch_migrates_between_threads(void **state)
{
    (void)state;
    tctx_t     t;
    struct mig m;
    memset(&m, 0, sizeof m);
    tctx_make_mmap(&t, mig_entry, &m);

    struct mig_thread a = {&t, &m, 1, 10, 0, 0};
    struct mig_thread b = {&t, &m, 2, 20, 0, 0};
    pthread_t         ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, mig_thread_fn, &a), 0);
    assert_int_equal(pthread_join(ta, NULL), 0);
    assert_int_equal(pthread_create(&tb, NULL, mig_thread_fn, &b), 0);
    assert_int_equal(pthread_join(tb, NULL), 0);

    tls_tag = 3;
    m.back = &g_main;
    uintptr_t got = (uintptr_t)tsw(&g_main, &t, (void *)(uintptr_t)30);

    assert_int_equal(a.got, 11);
    assert_int_equal(b.got, 21);
    assert_int_equal(got, 31);
    assert_int_equal(m.n, 3);
    assert_int_not_equal(a.tid, b.tid);
    assert_int_not_equal(a.tid, thread_id());
    assert_int_not_equal(b.tid, thread_id());
    assert_int_equal(m.thread_seen[0], a.tid);
    assert_int_equal(m.thread_seen[1], b.tid);
    assert_int_equal(m.thread_seen[2], thread_id());
    /* thread-locals read after a switch are the current thread's */
    assert_int_equal(m.tag_seen[0], 1);
    assert_int_equal(m.tag_seen[1], 2);
    assert_int_equal(m.tag_seen[2], 3);
    assert_int_equal(m.local_seen[0], 0xfeedface);
    assert_int_equal(m.local_seen[1], 0xfeedface + 1);
    assert_int_equal(m.local_seen[2], 0xfeedface + 2);
    tls_tag = 0;
    tctx_free(&t);
}

/* ------------------------------------------------------------------------ */
/* Callee-saved registers survive a switch out and back, while the other    */
/* context runs with different values in all of them.                       */
/*                                                                          */
/* probe_switch(from, to, pass, in, out): saves the caller's callee-saved   */
/* registers, loads in[] into them, calls csp__ctx_switch(from, to, pass),  */
/* writes the registers' values on return into out[], restores the caller's */
/* registers and returns what csp__ctx_switch returned. In ASan/TSan builds */
/* it calls tsw(), which announces the switch, instead; it is plain C, so   */
/* it keeps the ABI and the test still covers the whole path.               */

#if defined(T_ASAN) || defined(T_TSAN)
#  define PROBE_TARGET "t_probe_tsw"
__attribute__((visibility("hidden"), used)) void *t_probe_tsw(tctx_t *from, tctx_t *to,
                                                              void *pass);
__attribute__((visibility("hidden"), used)) void *t_probe_tsw(tctx_t *from, tctx_t *to,
                                                              void *pass)
{
    return tsw(from, to, pass);
}
#  define PROBE_CTX(t) (t)
#else
#  define PROBE_TARGET "csp__ctx_switch"
#  define PROBE_CTX(t) (&(t)->ctx) /* ctx is the first member anyway */
#endif

#if defined(__x86_64__)
#  define NREGS 6 /* rbx rbp r12 r13 r14 r15 */
static const char *const reg_names[NREGS] = {"rbx", "rbp", "r12", "r13", "r14", "r15"};
__asm__("    .text\n"
        "    .globl  t_probe_switch\n"
        "    .hidden t_probe_switch\n"
        "    .type   t_probe_switch, @function\n"
        "    .p2align 4\n"
        "t_probe_switch:\n" /* rdi from, rsi to, rdx pass, rcx in, r8 out */
        "    pushq %rbp\n"
        "    pushq %rbx\n"
        "    pushq %r12\n"
        "    pushq %r13\n"
        "    pushq %r14\n"
        "    pushq %r15\n"
        "    subq  $8, %rsp\n" /* keeps rsp 16-aligned at the call */
        "    movq  %r8, (%rsp)\n"
        "    movq  0(%rcx), %rbx\n"
        "    movq  8(%rcx), %rbp\n"
        "    movq  16(%rcx), %r12\n"
        "    movq  24(%rcx), %r13\n"
        "    movq  32(%rcx), %r14\n"
        "    movq  40(%rcx), %r15\n"
        "    call  " PROBE_TARGET "@PLT\n"
        "    movq  (%rsp), %r8\n"
        "    movq  %rbx, 0(%r8)\n"
        "    movq  %rbp, 8(%r8)\n"
        "    movq  %r12, 16(%r8)\n"
        "    movq  %r13, 24(%r8)\n"
        "    movq  %r14, 32(%r8)\n"
        "    movq  %r15, 40(%r8)\n"
        "    addq  $8, %rsp\n"
        "    popq  %r15\n"
        "    popq  %r14\n"
        "    popq  %r13\n"
        "    popq  %r12\n"
        "    popq  %rbx\n"
        "    popq  %rbp\n"
        "    ret\n"
        "    .size t_probe_switch, .-t_probe_switch\n");
#  define HAVE_PROBE 1
#elif defined(__aarch64__)
#  define NREGS      19 /* x19-x29, d8-d15 */
static const char *const reg_names[NREGS] = {
    "x19", "x20", "x21", "x22", "x23", "x24", "x25", "x26", "x27", "x28",
    "x29", "d8",  "d9",  "d10", "d11", "d12", "d13", "d14", "d15"};
__asm__("    .text\n"
        "    .globl  t_probe_switch\n"
        "    .hidden t_probe_switch\n"
        "    .type   t_probe_switch, %function\n"
        "    .p2align 4\n"
        "t_probe_switch:\n" /* x0 from, x1 to, x2 pass, x3 in, x4 out */
        "    stp   x29, x30, [sp, #-176]!\n"
        "    stp   x19, x20, [sp, #16]\n"
        "    stp   x21, x22, [sp, #32]\n"
        "    stp   x23, x24, [sp, #48]\n"
        "    stp   x25, x26, [sp, #64]\n"
        "    stp   x27, x28, [sp, #80]\n"
        "    stp   d8,  d9,  [sp, #96]\n"
        "    stp   d10, d11, [sp, #112]\n"
        "    stp   d12, d13, [sp, #128]\n"
        "    stp   d14, d15, [sp, #144]\n"
        "    str   x4, [sp, #160]\n"
        "    ldp   x19, x20, [x3, #0]\n"
        "    ldp   x21, x22, [x3, #16]\n"
        "    ldp   x23, x24, [x3, #32]\n"
        "    ldp   x25, x26, [x3, #48]\n"
        "    ldp   x27, x28, [x3, #64]\n"
        "    ldr   x29, [x3, #80]\n"
        "    ldp   d8,  d9,  [x3, #88]\n"
        "    ldp   d10, d11, [x3, #104]\n"
        "    ldp   d12, d13, [x3, #120]\n"
        "    ldp   d14, d15, [x3, #136]\n"
        "    bl    " PROBE_TARGET "\n"
        "    ldr   x4, [sp, #160]\n"
        "    stp   x19, x20, [x4, #0]\n"
        "    stp   x21, x22, [x4, #16]\n"
        "    stp   x23, x24, [x4, #32]\n"
        "    stp   x25, x26, [x4, #48]\n"
        "    stp   x27, x28, [x4, #64]\n"
        "    str   x29, [x4, #80]\n"
        "    stp   d8,  d9,  [x4, #88]\n"
        "    stp   d10, d11, [x4, #104]\n"
        "    stp   d12, d13, [x4, #120]\n"
        "    stp   d14, d15, [x4, #136]\n"
        "    ldp   x19, x20, [sp, #16]\n"
        "    ldp   x21, x22, [sp, #32]\n"
        "    ldp   x23, x24, [sp, #48]\n"
        "    ldp   x25, x26, [sp, #64]\n"
        "    ldp   x27, x28, [sp, #80]\n"
        "    ldp   d8,  d9,  [sp, #96]\n"
        "    ldp   d10, d11, [sp, #112]\n"
        "    ldp   d12, d13, [sp, #128]\n"
        "    ldp   d14, d15, [sp, #144]\n"
        "    ldp   x29, x30, [sp], #176\n"
        "    ret\n"
        "    .size t_probe_switch, .-t_probe_switch\n");
#  define HAVE_PROBE 1
#endif

#ifdef HAVE_PROBE
__attribute__((visibility("hidden"))) void *
t_probe_switch(void *from, void *to, void *pass, const uint64_t *in, uint64_t *out);

static void fill_pattern(uint64_t *v, uint64_t seed)
{
    for (int i = 0; i < NREGS; i++)
        v[i] = (seed * 0x9e3779b97f4a7c15ULL) ^
               ((uint64_t)(i + 1) * 0x0101010101010101ULL) ^ ((uint64_t)i << 56);
}

struct regs_rec {
    uint64_t  in[NREGS];
    uint64_t  out[NREGS];
    uintptr_t pass_back;
    int       rounds;
};

/* The other side: its own patterns in all callee-saved registers while the
 * test's are switched out; it checks its own after each switch back. */
static void regs_entry(tctx_t *self, void *pass)
{
    struct regs_rec *r = self->user;
    (void)pass;
    for (;;) {
        fill_pattern(r->in, 0xbeef0000u + (uint64_t)r->rounds);
        r->pass_back =
            (uintptr_t)t_probe_switch(PROBE_CTX(self), PROBE_CTX(&g_main),
                                      (void *)(uintptr_t)0x2222, r->in, r->out);
        r->rounds++;
        tsw(self, &g_main, (void *)(uintptr_t)0x4444);
    }
}

static void check_regs(const uint64_t *want, const uint64_t *got, const char *who,
                       int round)
{
    for (int i = 0; i < NREGS; i++) {
        if (want[i] != got[i])
            fail_msg("%s round %d: %s = %#llx, want %#llx", who, round, reg_names[i],
                     (unsigned long long)got[i], (unsigned long long)want[i]);
    }
}
#endif

static void test_arch_switch_callee_saved_preserved(void **state)
{
    (void)state;
#ifndef HAVE_PROBE
    skip();
#else
    tctx_t t;
    struct regs_rec other;
    memset(&other, 0, sizeof other);
    tctx_make_mmap(&t, regs_entry, &other);
    for (int round = 0; round < 100; round++) {
        uint64_t in[NREGS], out[NREGS];
        fill_pattern(in, 0x1000u + (uint64_t)round);
        memset(out, 0, sizeof out);
        /* out to the other context, which switches back from inside its
         * own probe with its own values loaded */
        uintptr_t r = (uintptr_t)t_probe_switch(PROBE_CTX(&g_main), PROBE_CTX(&t),
                                                (void *)(uintptr_t)0x1111, in, out);
        assert_int_equal(r, 0x2222);
        check_regs(in, out, "main", round);
        /* resume the other context inside its probe: its registers too */
        r = (uintptr_t)tsw(&g_main, &t, (void *)(uintptr_t)0x3333);
        assert_int_equal(r, 0x4444);
        assert_int_equal(other.rounds, round + 1);
        assert_int_equal(other.pass_back, 0x3333);
        check_regs(other.in, other.out, "context", round);
    }
    tctx_free(&t);
#endif
}

/* ------------------------------------------------------------------------ */
/* FPU/SSE control words are per context.                                   */

enum { RM_NEAREST, RM_DOWN, RM_UP, RM_ZERO };

#if defined(__x86_64__)
#  define HAVE_FPCTL 1
static unsigned get_mxcsr(void)
{
    unsigned v;
    __asm__ volatile("stmxcsr %0" : "=m"(v)::"memory");
    return v;
}
static void set_mxcsr(unsigned v)
{
    __asm__ volatile("ldmxcsr %0" ::"m"(v) : "memory");
}
static unsigned get_x87cw(void)
{
    unsigned short v;
    __asm__ volatile("fnstcw %0" : "=m"(v)::"memory");
    return v;
}
static void set_x87cw(unsigned v)
{
    unsigned short s = (unsigned short)v;
    __asm__ volatile("fldcw %0" ::"m"(s) : "memory");
}
/* x86 RC field: 0 nearest, 1 down, 2 up, 3 toward zero (same in both). */
static void set_round(int rm)
{
    set_mxcsr((get_mxcsr() & ~0x6000u) | ((unsigned)rm << 13));
    set_x87cw((get_x87cw() & ~0x0c00u) | ((unsigned)rm << 10));
}
/* Both units' rounding modes, packed; -1 if they disagree. */
static int get_round(void)
{
    int sse = (int)((get_mxcsr() >> 13) & 3);
    int x87 = (int)((get_x87cw() >> 10) & 3);
    return sse == x87 ? sse : -1;
}
/* Control bits other than rounding, which a context also owns: FZ and DAZ. */
#  define FP_EXTRA_BITS 0x8040u
static unsigned get_extra(void)
{
    return get_mxcsr() & FP_EXTRA_BITS;
}
static void set_extra(unsigned v)
{
    set_mxcsr((get_mxcsr() & ~FP_EXTRA_BITS) | v);
}
#elif defined(__aarch64__)
#  define HAVE_FPCTL    1
static uint64_t get_fpcr(void)
{
    uint64_t v;
    __asm__ volatile("mrs %0, fpcr" : "=r"(v)::"memory");
    return v;
}
static void set_fpcr(uint64_t v)
{
    __asm__ volatile("msr fpcr, %0" ::"r"(v) : "memory");
}
/* FPCR.RMode (bits 23:22): 0 nearest, 1 up (+inf), 2 down (-inf), 3 zero */
static const unsigned rm_to_hw[4] = {0, 2, 1, 3};
static void set_round(int rm)
{
    set_fpcr((get_fpcr() & ~(3ull << 22)) | ((uint64_t)rm_to_hw[rm] << 22));
}
static int get_round(void)
{
    unsigned hw = (unsigned)(get_fpcr() >> 22) & 3;
    for (int rm = 0; rm < 4; rm++)
        if (rm_to_hw[rm] == hw)
            return rm;
    return -1;
}
/* FZ (bit 24) */
#  define FP_EXTRA_BITS (1u << 24)
static unsigned get_extra(void)
{
    return (unsigned)get_fpcr() & FP_EXTRA_BITS;
}
static void set_extra(unsigned v)
{
    set_fpcr((get_fpcr() & ~(uint64_t)FP_EXTRA_BITS) | v);
}
#endif

static T_NOIPA double fdiv(double a, double b)
{
    return a / b;
}

#ifdef HAVE_FPCTL
struct fp_rec {
    int      initial_round;
    unsigned initial_extra;
    int      round_after_resume;
    unsigned extra_after_resume;
    double   third_up;
    double   third_zero;
};

static void fp_entry(tctx_t *self, void *pass)
{
    struct fp_rec *r = self->user;
    (void)pass;
    r->initial_round = get_round();
    r->initial_extra = get_extra();
    set_round(RM_UP);
    r->third_up = fdiv(1.0, 3.0);
    set_extra(FP_EXTRA_BITS);
    tsw(self, &g_main, NULL);
    /* main ran with its own mode meanwhile */
    r->round_after_resume = get_round();
    r->extra_after_resume = get_extra();
    set_round(RM_ZERO);
    r->third_zero = fdiv(-1.0, 3.0);
    for (;;)
        tsw(self, &g_main, NULL);
}
#endif

static void test_arch_switch_fp_control_per_context(void **state)
{
    (void)state;
#ifndef HAVE_FPCTL
    skip();
#else
    int saved_round = get_round();
    unsigned saved_extra = get_extra();
    assert_int_equal(saved_round, RM_NEAREST);
    assert_int_equal(saved_extra, 0);
    const double third_near = fdiv(1.0, 3.0);
    const double mthird_near = fdiv(-1.0, 3.0);

    struct fp_rec rec;
    memset(&rec, 0, sizeof rec);
    tctx_t t;
    tctx_make_mmap(&t, fp_entry, &rec); /* made while main is in default mode */

    set_round(RM_DOWN);
    tsw(&g_main, &t, NULL);
    /* main's mode is back, the context's changes stayed there */
    assert_int_equal(get_round(), RM_DOWN);
    assert_int_equal(get_extra(), 0);
    /* the context started in the default mode, not main's current one */
    assert_int_equal(rec.initial_round, RM_NEAREST);
    assert_int_equal(rec.initial_extra, 0);
    assert_true(rec.third_up > third_near); /* it really rounded up */
    const double mthird_down = fdiv(-1.0, 3.0);
    assert_true(mthird_down < mthird_near); /* and main really rounds down */

    set_round(RM_NEAREST);
    tsw(&g_main, &t, NULL);
    /* the context got its own mode back */
    assert_int_equal(rec.round_after_resume, RM_UP);
    assert_int_equal(rec.extra_after_resume, FP_EXTRA_BITS);
    assert_true(rec.third_zero > mthird_down);
    assert_true(rec.third_zero == mthird_near); /* -1/3 toward zero == nearest */
    assert_int_equal(get_round(), RM_NEAREST);
    assert_true(fdiv(1.0, 3.0) == third_near);

    set_round(saved_round);
    set_extra(saved_extra);
    tctx_free(&t);
#endif
}

/* ------------------------------------------------------------------------ */
/* Floating point and vector code in contexts, interleaved by switches.     */

typedef double v2d __attribute__((vector_size(16)));

#define FP_N 512
static double fp_data[FP_N];

struct fp_work {
    int    id;
    double scalar;
    v2d    vec;
    int    steps;
};

static T_NOIPA void fp_step(struct fp_work *w, int i, double *acc, v2d *vacc)
{
    double x = fp_data[i] * (double)(w->id + 1);
    *acc += x * x / (1.0 + x);
    v2d v = {x, 1.0 / (x + 2.0)};
    *vacc = *vacc * 0.999 + v;
}

static void fp_work_entry(tctx_t *self, void *pass)
{
    struct fp_work *w = self->user;
    double          acc = 0.0; /* kept live across switches (d8-d15 on aarch64) */
    v2d             vacc = {0.0, 0.0};
    (void)pass;
    for (int i = 0; i < FP_N; i++) {
        fp_step(w, i, &acc, &vacc);
        w->steps++;
        if (i % 3 == 0)
            tsw(self, &g_main, NULL);
    }
    w->scalar = acc;
    w->vec = vacc;
    for (;;)
        tsw(self, &g_main, (void *)(uintptr_t)1);
}

static void test_arch_switch_fp_in_contexts(void **state)
{
    (void)state;
    for (int i = 0; i < FP_N; i++)
        fp_data[i] = 0.5 + (double)i / 7.0;

    struct fp_work ref[2], w[2];
    memset(ref, 0, sizeof ref);
    memset(w, 0, sizeof w);
    for (int k = 0; k < 2; k++) {
        double acc = 0.0;
        v2d    vacc = {0.0, 0.0};
        ref[k].id = w[k].id = k;
        for (int i = 0; i < FP_N; i++)
            fp_step(&ref[k], i, &acc, &vacc);
        ref[k].scalar = acc;
        ref[k].vec = vacc;
    }

    tctx_t t[2];
    tctx_make_mmap(&t[0], fp_work_entry, &w[0]);
    tctx_make_heap(&t[1], fp_work_entry, &w[1]);
    int done[2] = {0, 0};
    /* main does FP work of its own between the switches */
    double mine = 1.0;
    int    iters = 0;
    for (; iters < 10 * FP_N && !(done[0] && done[1]); iters++) {
        for (int k = 0; k < 2; k++)
            if (!done[k])
                done[k] = tsw(&g_main, &t[k], NULL) != NULL;
        mine = fdiv(mine * 1.0001 + 0.5, 1.0);
    }
    assert_true(done[0] && done[1]);
    assert_true(iters > FP_N / 3); /* really interleaved */
    double mine_ref = 1.0;
    for (int i = 0; i < iters; i++)
        mine_ref = fdiv(mine_ref * 1.0001 + 0.5, 1.0);
    assert_true(mine_ref == mine);
    for (int k = 0; k < 2; k++) {
        assert_int_equal(w[k].steps, FP_N);
        assert_true(w[k].scalar == ref[k].scalar);
        assert_true(w[k].vec[0] == ref[k].vec[0]);
        assert_true(w[k].vec[1] == ref[k].vec[1]);
        assert_true(w[k].scalar > 0.0);
        tctx_free(&t[k]);
    }
}

/* ------------------------------------------------------------------------ */
/* An entry that returns traps instead of running off the stack.            */

static void returning_entry(void *arg, void *pass)
{
    (void)arg;
    (void)pass;
}

static void test_arch_switch_entry_return_traps(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        static csp__ctx_t home, c;
        /* cmocka catches these to report a failed test: die of them */
        signal(SIGILL, SIG_DFL);
        signal(SIGTRAP, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        signal(SIGSEGV, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        struct rlimit no_core = {0, 0}; /* an expected crash: no core file */
        setrlimit(RLIMIT_CORE, &no_core);
        void *stack = malloc(STACK_SIZE);
        if (!stack)
            _exit(3);
        csp__ctx_make(&c, stack, STACK_SIZE, returning_entry, NULL);
        csp__ctx_switch(&home, &c, NULL);
        _exit(0); /* not reached: nobody switches back */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    int sig = WTERMSIG(status);
#if defined(CSP_CONTEXT_UCONTEXT)
    assert_int_equal(sig, SIGABRT);
#elif defined(__x86_64__)
    assert_int_equal(sig, SIGILL); /* ud2 */
#elif defined(__aarch64__)
    assert_int_equal(sig, SIGTRAP); /* brk */
#else
    assert_true(sig == SIGILL || sig == SIGTRAP || sig == SIGABRT);
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_arch_switch_first_entry),
        cmocka_unit_test(test_arch_switch_ring_of_three),
        cmocka_unit_test(test_arch_switch_interleaved_contexts),
        cmocka_unit_test(test_arch_switch_million_round_trips),
        cmocka_unit_test(test_arch_switch_stack_alignment),
        cmocka_unit_test(test_arch_switch_migrates_between_threads),
        cmocka_unit_test(test_arch_switch_callee_saved_preserved),
        cmocka_unit_test(test_arch_switch_fp_control_per_context),
        cmocka_unit_test(test_arch_switch_fp_in_contexts),
        cmocka_unit_test(test_arch_switch_entry_return_traps),
    };
    return cmocka_run_group_tests_name("arch_switch", tests, setup, NULL);
}
