/* Task stacks: pooled slots carved out of large mappings.
 *
 * Why not one mmap per stack: Linux allows vm.max_map_count (65530 by
 * default) mappings per process, and a million live tasks must fit. So slots
 * of one size class are carved from chunks of >= 32 MiB (one mapping each, and
 * neighbouring chunks usually merge into one VMA). Pages are committed only
 * when touched (MAP_NORESERVE, never pre-faulted).
 *
 * Slot layout (size S, a power of two; a chunk is one leading page, then its
 * slots; lo = chunk base + page + i * S):
 *
 *   lo                                                           lo + S
 *   | guard page? | ...... stack (grows down) ...... | args | task | canary |
 *
 *   - guard page: while the guard budget (max_map_count/8 slots) lasts. A
 *     guard is a guard-region marker (MADV_GUARD_INSTALL, Linux 6.13) where
 *     the kernel has them, else PROT_NONE by mprotect, which splits the
 *     chunk's VMA (two more mappings: hence the budget). Slots made later
 *     rely on the canary alone.
 *   - canary: 16 bytes at the very top of every slot. A task that runs off
 *     the bottom of its stack first writes over the canary just below its lo
 *     (the top of the slot below, or the chunk's leading page for slot 0),
 *     which is checked at every switch away from the task. Slot i's init
 *     writes the canary that guards slot i (in slot i-1's top bytes), so a
 *     slot is usable as soon as its own init is done, whatever order the
 *     slots of a chunk are made in. Keeping it at the top costs no extra
 *     page: a parked task with a shallow stack touches exactly one page.
 *   - task: the csp__task_t lives in the slot's top bytes, so a spawn costs one
 *     slot pop.
 *
 * Ownership: a slot is either reserved (its index taken from the chunk under
 * pool->lock, being made by the thread that reserved it, outside the lock),
 * handed out (its task is live or about to be freed by a post-switch step),
 * in one worker's cache (owner only), or on its class's global free list
 * (under pool->lock). Chunks are never unmapped while the runtime runs, so a
 * walk over them (dumps, the shutdown sweep, the SIGSEGV handler) never
 * touches unmapped memory. A walk covers every reserved index; a slot still
 * being made reads live == 0 (fresh mmap memory is zero, and init stores 0),
 * so walkers skip it.
 *
 * Making a slot costs a page fault (its top page: task struct, canary) and,
 * while the guard budget lasts, a guard install: about 3-4 us in a VM, more
 * than the spawn itself. So slots are made outside pool->lock (two workers
 * spawning fault in parallel), and an idle spinning worker prewarms: while
 * the default class is hungry (tasks are being created faster than they
 * exit: a take had to make new slots), csp__stacks_prewarm makes a few slots
 * and puts them on the free list, up to CSP__WARM_MAX of them (256 KiB at the
 * default size). A program that never holds more than 2 * CSP__CACHE_BATCH
 * tasks at once never triggers it.
 */
#define _GNU_SOURCE
#include "sched.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(CSP_HAVE_VALGRIND_H)
#include <valgrind/valgrind.h>
#endif
#if defined(CSP_TSAN)
#include <sanitizer/tsan_interface.h>
#endif
#if defined(CSP_ASAN)
#include <sanitizer/asan_interface.h>
#endif

#define CSP__CANARY 0x6373702d63616e61ULL /* "csp-cana" */
#define CSP__CHUNK_MIN ((size_t)32 << 20)
#define CSP__NCLASS 17              /* 16 KiB << 0 .. 16 KiB << 16 (1 GiB) */

typedef struct csp__chunk {
    char              *map;     /* the mapping: one leading page, then the slots */
    char              *base;    /* first slot */
    size_t             slot_size;
    uint32_t           nslots;
    _Atomic uint32_t   nused;   /* slots reserved (bump index): written under the
                                 * pool's lock, read lock-free by walkers */
    struct csp__chunk *_Atomic next; /* published with release; walked lock-free */
} csp__chunk_t;

typedef struct csp__stack_pool {
    pthread_mutex_t lock;
    size_t          slot_size;
    csp__task_t   **free;       /* free slots (array), under lock */
    uint32_t        nfree, cap;
    csp__chunk_t   *cur;        /* chunk being bump-allocated; under lock */
} csp__stack_pool_t;

static csp__stack_pool_t pools[CSP__NCLASS];
static csp__chunk_t *_Atomic chunks;   /* all chunks, newest first */
static _Atomic uint64_t nslots_mapped, nguards;
/* Set (relaxed) by a take that had to make slots once the pool has made more
 * than CSP__WARM_AFTER; cleared by a prewarm that finds the free list full.
 * A hint only: a stale value costs one lock round trip or one missed batch. */
static _Atomic uint32_t warm_hungry;
#define CSP__WARM_MAX 64u      /* free slots a prewarm fills the pool up to */
#define CSP__WARM_BATCH 8u     /* slots per prewarm call (~30 us of faults) */
#define CSP__WARM_AFTER (2u * CSP__CACHE_BATCH)
static uint64_t guard_budget;
size_t csp__page_size;
#define page_size csp__page_size
static pthread_mutex_t chunks_lock = PTHREAD_MUTEX_INITIALIZER;

static _Atomic int guard_markers;      /* below, with guard_install */
static int guard_markers_probe(void);

/* bytes at the top of a slot for the task struct and the canary above it */
static size_t task_reserve(void)
{
    return (sizeof(csp__task_t) + 16 + 63) & ~(size_t)63;
}

static int size_class(size_t size)
{
    size_t s = (size_t)16 << 10;
    for (int c = 0; c < CSP__NCLASS; c++, s <<= 1)
        if (size <= s)
            return c;
    return -1;
}

int csp__stacks_init(void)
{
    page_size = (size_t)sysconf(_SC_PAGESIZE);
    long maxmap = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "r");
    if (f) {
        if (fscanf(f, "%ld", &maxmap) != 1)
            maxmap = 65530;
        fclose(f);
    }
    guard_budget = (uint64_t)(maxmap / 8);
    for (int c = 0; c < CSP__NCLASS; c++) {
        pthread_mutex_init(&pools[c].lock, NULL);
        pools[c].slot_size = ((size_t)16 << 10) << c;
        pools[c].free = NULL;
        pools[c].nfree = pools[c].cap = 0;
        pools[c].cur = NULL;
    }
    atomic_store_explicit(&chunks, NULL, memory_order_relaxed);
    atomic_store_explicit(&nslots_mapped, 0, memory_order_relaxed);
    atomic_store_explicit(&nguards, 0, memory_order_relaxed);
    atomic_store_explicit(&warm_hungry, 0, memory_order_relaxed);
    if (atomic_load_explicit(&guard_markers, memory_order_relaxed) < 0)
        atomic_store_explicit(&guard_markers, guard_markers_probe(), memory_order_relaxed);
    return 0;
}


/* Cache colouring: slots are a power of two apart, so without it every task
 * struct would sit at the same offset in its page and fight for the same few
 * L1 sets (virtually indexed by address bits 6..11). Slot i shifts its task
 * struct down by colour(i) cache lines. */
#define CSP__COLORS 16u
static inline size_t slot_color(char *lo, size_t size)
{
    size_t i = (size_t)((uintptr_t)lo / size);
    return (size_t)((i * 7u) % CSP__COLORS) * 64u;
}

static inline csp__task_t *slot_task(char *lo, size_t size)
{
    return (csp__task_t *)(lo + size - task_reserve() - slot_color(lo, size));
}

void csp__stacks_destroy(void)
{
    csp__chunk_t *c = atomic_exchange_explicit(&chunks, NULL, memory_order_acquire);
    while (c) {
        csp__chunk_t *n = atomic_load_explicit(&c->next, memory_order_relaxed);
#if defined(CSP_TSAN)
        /* the slots' fibers (sched.c makes one per slot and keeps it) */
        uint32_t used = atomic_load_explicit(&c->nused, memory_order_relaxed);
        for (uint32_t i = 0; i < used; i++) {
            csp__task_t *t = slot_task(c->base + (size_t)i * c->slot_size, c->slot_size);
            if (t->tsan_fiber)
                __tsan_destroy_fiber(t->tsan_fiber);
        }
#endif
#if defined(CSP_ASAN)
        /* frames of tasks freed while parked leave poisoned shadow; the next
         * mapping at this address must not inherit it */
        for (uint32_t i = 0; i < atomic_load_explicit(&c->nused, memory_order_relaxed); i++) {
            char *lo = c->base + (size_t)i * c->slot_size;
            csp__task_t *t = slot_task(lo, c->slot_size);
            char *ulo = lo + (t->has_guard ? page_size : 0);
            __asan_unpoison_memory_region(ulo, (size_t)((char *)t - ulo));
        }
#endif
        munmap(c->map, page_size + (size_t)c->nslots * c->slot_size);
        free(c);
        c = n;
    }
    for (int c2 = 0; c2 < CSP__NCLASS; c2++) {
        pthread_mutex_destroy(&pools[c2].lock);
        free(pools[c2].free);
        pools[c2].free = NULL;
        pools[c2].nfree = pools[c2].cap = 0;
        pools[c2].cur = NULL;
    }
}

/* The canary that guards t's stack: the 16 bytes just below t->lo. */
static inline uint64_t *canary_addr(csp__task_t *t)
{
    return (uint64_t *)(t->lo - 16);
}

static inline void canary_write(char *below)
{
    uint64_t *can = (uint64_t *)(below - 16);
    can[0] = CSP__CANARY ^ (uintptr_t)can;
    can[1] = CSP__CANARY;
}

/* Linux 6.13's guard regions: PTE markers that fault like PROT_NONE without
 * splitting the VMA (no mapping spent, and no mmap write lock that would stall
 * every other thread's page faults, as mprotect takes). Older kernels (Debian
 * 12's 6.1) say EINVAL once and get mprotect from then on. */
#ifndef MADV_GUARD_INSTALL
#define MADV_GUARD_INSTALL 102
#endif
/* -1: not probed yet; set once by csp__stacks_init (before any worker runs);
 * cleared (relaxed) if an install ever fails. A hint: both ways are correct. */
static _Atomic int guard_markers = -1;

/* Does MADV_GUARD_INSTALL really guard? A kernel without it says EINVAL; an
 * emulator may say 0 and do nothing (qemu-user ignores madvise). The kernel
 * copying from a guarded page for write() must fail with EFAULT. */
static int guard_markers_probe(void)
{
    char *m = mmap(NULL, page_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 0;
    int ok = 0, p[2];
    if (madvise(m, page_size, MADV_GUARD_INSTALL) == 0 && pipe(p) == 0) {
        int saved = errno;
        ok = write(p[1], m, 1) < 0 && errno == EFAULT;
        errno = saved;
        close(p[0]);
        close(p[1]);
    }
    munmap(m, page_size);
    return ok;
}

static bool guard_install(char *lo)
{
    if (atomic_load_explicit(&guard_markers, memory_order_relaxed) > 0) {
        if (madvise(lo, page_size, MADV_GUARD_INSTALL) == 0)
            return true;
        atomic_store_explicit(&guard_markers, 0, memory_order_relaxed);
    }
    return mprotect(lo, page_size, PROT_NONE) == 0;
}

/* Makes slot i of chunk c usable. Called without pool->lock by the thread
 * that reserved i: this is where the slot's top page is faulted in. */
static csp__task_t *slot_init(csp__stack_pool_t *p, csp__chunk_t *c, uint32_t i)
{
    char *lo = c->base + (size_t)i * c->slot_size;
    csp__task_t *t = slot_task(lo, c->slot_size);
    uint32_t guard = 0;
    /* counted before its guard, so guards <= mapped in any stats snapshot:
     * the guard's CAS (release) pairs with csp__stacks_stats's acquire */
    atomic_fetch_add_explicit(&nslots_mapped, 1, memory_order_relaxed);
    /* the budget is shared by threads making slots at once: claim one first */
    uint64_t g = atomic_load_explicit(&nguards, memory_order_relaxed);
    while (g < guard_budget &&
           !atomic_compare_exchange_weak_explicit(&nguards, &g, g + 1, memory_order_release,
                                                  memory_order_relaxed))
        ;
    if (g < guard_budget) {
        if (guard_install(lo))
            guard = 1;
        else
            atomic_fetch_sub_explicit(&nguards, 1, memory_order_relaxed);
    }
    if (i)
        canary_write(lo); /* guards this slot, in the top bytes of slot i-1 */
    t->lo = lo;
    t->size = c->slot_size;
    t->pool = p;
    t->has_guard = guard;
    t->first_in_chunk = i == 0;
    atomic_store_explicit(&t->live, 0, memory_order_relaxed);
#if defined(CSP_HAVE_VALGRIND_H)
    VALGRIND_STACK_REGISTER(lo, lo + c->slot_size);
#endif
    return t;
}

/* Reserves up to n fresh slot indices from p's current chunk, mapping a new
 * chunk when it is full. Caller holds p->lock. Returns the count (0: out of
 * memory); *cp and *i0 say where they are. The caller makes them with
 * slot_init after dropping the lock. */
static uint32_t slots_reserve(csp__stack_pool_t *p, uint32_t n, csp__chunk_t **cp, uint32_t *i0)
{
    csp__chunk_t *c = p->cur;
    if (!c || atomic_load_explicit(&c->nused, memory_order_relaxed) == c->nslots) {
        size_t per = p->slot_size >= CSP__CHUNK_MIN ? 1 : CSP__CHUNK_MIN / p->slot_size;
        size_t len = page_size + per * p->slot_size;
        char *map = mmap(NULL, len, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (map == MAP_FAILED)
            return 0;
        /* a huge page would commit 2 MiB for 16 tasks' first pages */
        madvise(map, len, MADV_NOHUGEPAGE);
#if defined(CSP_ASAN)
        /* the address range may carry stale shadow from an earlier user
         * (another runtime's stacks, the allocator's redzones) */
        __asan_unpoison_memory_region(map, len);
#endif
        c = calloc(1, sizeof *c);
        if (!c) {
            munmap(map, len);
            return 0;
        }
        c->map = map;
        c->base = map + page_size;
        /* slot 0's canary is the leading page, left untouched: it reads
         * as zeros (the shared zero page, no memory) until an overflow
         * writes there. Writing a pattern would commit a page per chunk
         * (16 bytes per task at the default size). */
        c->slot_size = p->slot_size;
        c->nslots = (uint32_t)per;
        csp__mutex_lock(&chunks_lock, CSP__RANK_CHUNKS);
        atomic_store_explicit(&c->next, atomic_load_explicit(&chunks, memory_order_relaxed),
                              memory_order_relaxed);
        /* release: the chunk's fields are visible to lock-free walkers */
        atomic_store_explicit(&chunks, c, memory_order_release);
        csp__mutex_unlock(&chunks_lock);
        p->cur = c;
    }
    uint32_t i = atomic_load_explicit(&c->nused, memory_order_relaxed);
    uint32_t k = c->nslots - i < n ? c->nslots - i : n;
    /* release: pairs with walkers' acquire; they may now read these slots'
     * live words (zero until a spawn publishes a task there) */
    atomic_store_explicit(&c->nused, i + k, memory_order_release);
    *cp = c;
    *i0 = i;
    return k;
}

static void pool_give(csp__stack_pool_t *p, csp__task_t **in, uint32_t n);

static inline bool is_default_pool(csp__stack_pool_t *p)
{
    return p->slot_size == csp__rt.default_stack;
}

/* Takes up to n slots from the pool into out[]. Returns the count. Free slots
 * are kept as arrays of pointers, so moving them never touches (and never
 * misses on) the slots' own memory. New slots are reserved under the lock and
 * made outside it. */
static uint32_t pool_take(csp__stack_pool_t *p, uint32_t n, csp__task_t **out)
{
    uint32_t got = 0;
    csp__mutex_lock(&p->lock, CSP__RANK_STACKPOOL);
    while (got < n && p->nfree)
        out[got++] = p->free[--p->nfree];
    while (got < n) {
        csp__chunk_t *c;
        uint32_t i0, k = slots_reserve(p, n - got, &c, &i0);
        if (!k)
            break;
        if (is_default_pool(p) &&
            atomic_load_explicit(&nslots_mapped, memory_order_relaxed) >= CSP__WARM_AFTER)
            atomic_store_explicit(&warm_hungry, 1, memory_order_relaxed);
        csp__mutex_unlock(&p->lock);
        for (uint32_t j = 0; j < k; j++)
            out[got++] = slot_init(p, c, i0 + j);
        csp__mutex_lock(&p->lock, CSP__RANK_STACKPOOL);
    }
    csp__mutex_unlock(&p->lock);
    return got;
}

bool csp__stacks_prewarm(void)
{
    if (CSP__LIKELY(!atomic_load_explicit(&warm_hungry, memory_order_relaxed)))
        return false;
    int cl = size_class(csp__rt.default_stack);
    if (cl < 0)
        return false;
    csp__stack_pool_t *p = &pools[cl];
    csp__task_t *made[CSP__WARM_BATCH];
    csp__chunk_t *c;
    uint32_t i0, k = 0;
    csp__mutex_lock(&p->lock, CSP__RANK_STACKPOOL);
    if (p->nfree < CSP__WARM_MAX)
        k = slots_reserve(p, CSP__WARM_BATCH, &c, &i0);
    else
        atomic_store_explicit(&warm_hungry, 0, memory_order_relaxed);
    csp__mutex_unlock(&p->lock);
    if (!k)
        return false;
    for (uint32_t j = 0; j < k; j++)
        made[j] = slot_init(p, c, i0 + j);
    pool_give(p, made, k);
    return true;
}

static void pool_give(csp__stack_pool_t *p, csp__task_t **in, uint32_t n)
{
    csp__mutex_lock(&p->lock, CSP__RANK_STACKPOOL);
    if (p->nfree + n > p->cap) {
        size_t ncap = p->cap ? p->cap : 1024;
        while (ncap < p->nfree + n)
            ncap *= 2;
        csp__task_t **nf = realloc(p->free, ncap * sizeof *nf);
        if (!nf) {
            /* can't grow the free array: the slots stay unused (leaked to
             * the pool) rather than corrupting anything */
            csp__mutex_unlock(&p->lock);
            return;
        }
        p->free = nf;
        p->cap = (uint32_t)ncap;
    }
    memcpy(p->free + p->nfree, in, n * sizeof *in);
    p->nfree += n;
    csp__mutex_unlock(&p->lock);
}

csp__task_t *csp__task_alloc(csp__worker_t *w, size_t size)
{
    int c = size_class(size);
    if (c < 0)
        return NULL;
    csp__stack_pool_t *p = &pools[c];
    if (CSP__LIKELY(w && p->slot_size == csp__rt.default_stack)) {
        struct csp__stack_cache *sc = &w->scache;
        if (CSP__UNLIKELY(!sc->n)) {
            sc->n = pool_take(p, CSP__CACHE_BATCH, sc->slot);
            if (!sc->n)
                return NULL;
        }
        return sc->slot[--sc->n];
    }
    csp__task_t *t;
    if (!pool_take(p, 1, &t))
        return NULL;
    return t;
}

void csp__task_free(csp__worker_t *w, csp__task_t *t)
{
    csp__stack_pool_t *p = t->pool;
    atomic_store_explicit(&t->live, 0, memory_order_relaxed);
    if (CSP__LIKELY(w && p->slot_size == csp__rt.default_stack)) {
        struct csp__stack_cache *sc = &w->scache;
        if (CSP__UNLIKELY(sc->n == CSP__CACHE_MAX)) {
            /* give the coldest (oldest) batch back */
            pool_give(p, sc->slot, CSP__CACHE_BATCH);
            memmove(sc->slot, sc->slot + CSP__CACHE_BATCH,
                    (CSP__CACHE_MAX - CSP__CACHE_BATCH) * sizeof sc->slot[0]);
            sc->n -= CSP__CACHE_BATCH;
        }
        sc->slot[sc->n++] = t;
        return;
    }
    pool_give(p, &t, 1);
}

void csp__stack_overflow_report(csp__task_t *t)
{
    /* async-signal-safe formatting */
    char buf[160];
    int n = 0;
    const char *a = "libcsp: task ";
    while (*a) buf[n++] = *a++;
    char num[24];
    int k = 0;
    uint64_t id = t->id;
    do { num[k++] = (char)('0' + id % 10); id /= 10; } while (id);
    while (k) buf[n++] = num[--k];
    buf[n++] = ' ';
    buf[n++] = '(';
    for (int i = 0; i < 31 && t->name[i]; i++) buf[n++] = t->name[i];
    a = ") overflowed its ";
    while (*a) buf[n++] = *a++;
    uint64_t sz = t->size;
    do { num[k++] = (char)('0' + sz % 10); sz /= 10; } while (sz);
    while (k) buf[n++] = num[--k];
    a = "-byte stack\n";
    while (*a) buf[n++] = *a++;
    ssize_t r = write(2, buf, (size_t)n);
    (void)r;
    abort();
}

void csp__stack_check_canary(csp__task_t *t)
{
    uint64_t *can = canary_addr(t);
    bool ok;
    if (t->first_in_chunk)
        ok = can[0] == 0 && can[1] == 0; /* the untouched leading page */
    else
        ok = can[0] == (CSP__CANARY ^ (uintptr_t)can) && can[1] == CSP__CANARY;
    if (CSP__UNLIKELY(!ok))
        csp__stack_overflow_report(t);
}

void csp__stacks_foreach(void (*fn)(csp__task_t *t, void *arg), void *arg)
{
    /* acquire: pairs with the release publishing each chunk / slot */
    for (csp__chunk_t *c = atomic_load_explicit(&chunks, memory_order_acquire); c;
         c = atomic_load_explicit(&c->next, memory_order_acquire)) {
        uint32_t used = atomic_load_explicit(&c->nused, memory_order_acquire);
        for (uint32_t i = 0; i < used; i++) {
            csp__task_t *t = slot_task(c->base + (size_t)i * c->slot_size, c->slot_size);
            /* acquire: pairs with spawn's release; the task's fields are set */
            if (atomic_load_explicit(&t->live, memory_order_acquire))
                fn(t, arg);
        }
    }
}

void csp__stacks_stats(uint64_t *mapped, uint64_t *guards)
{
    /* guards first (acquire: pairs with slot_init's claim), so every guard
     * seen has its slot counted */
    *guards = atomic_load_explicit(&nguards, memory_order_acquire);
    *mapped = atomic_load_explicit(&nslots_mapped, memory_order_relaxed);
}

/* ---- SIGSEGV: name the task whose guard page was hit ----
 * Not installed in sanitizer builds: ASan and TSan own SIGSEGV there (ASan
 * reports stack overflows itself); the canary still works. */
#if !defined(CSP_ASAN) && !defined(CSP_TSAN)
static struct sigaction old_segv;

static void segv_handler(int sig, siginfo_t *si, void *uc)
{
    char *addr = si->si_addr;
    for (csp__chunk_t *c = atomic_load_explicit(&chunks, memory_order_acquire); c;
         c = atomic_load_explicit(&c->next, memory_order_acquire)) {
        size_t span = (size_t)c->nslots * c->slot_size;
        if (addr < c->base || addr >= c->base + span)
            continue;
        size_t i = (size_t)(addr - c->base) / c->slot_size;
        char *lo = c->base + i * c->slot_size;
        csp__task_t *t = slot_task(lo, c->slot_size);
        if (i < atomic_load_explicit(&c->nused, memory_order_acquire) && t->has_guard &&
            addr < lo + page_size)
            csp__stack_overflow_report(t);
        break;
    }
    /* not ours: fall back to the previous disposition and let it re-fault */
    if (old_segv.sa_flags & SA_SIGINFO && old_segv.sa_sigaction) {
        old_segv.sa_sigaction(sig, si, uc);
        return;
    }
    if (old_segv.sa_handler != SIG_DFL && old_segv.sa_handler != SIG_IGN && old_segv.sa_handler) {
        old_segv.sa_handler(sig);
        return;
    }
    signal(SIGSEGV, SIG_DFL);
}

static void install_handler(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = segv_handler;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, &old_segv);
}
#else
static void install_handler(void) {}
#endif

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;

void csp__stack_install_handler(void)
{
    pthread_once(&handler_once, install_handler);
}

static __thread void *altstack_mem;
static __thread int altstack_set;

void csp__stack_thread_init(void)
{
#if !defined(CSP_ASAN) && !defined(CSP_TSAN)
    stack_t ss, old;
    if (sigaltstack(NULL, &old) == 0 && !(old.ss_flags & SS_DISABLE))
        return; /* the thread already has one */
    size_t sz = 64 * 1024;
    altstack_mem = malloc(sz);
    if (!altstack_mem)
        return;
    ss.ss_sp = altstack_mem;
    ss.ss_size = sz;
    ss.ss_flags = 0;
    if (sigaltstack(&ss, NULL) == 0)
        altstack_set = 1;
#endif
}

void csp__stack_thread_fini(void)
{
    if (altstack_set) {
        stack_t ss;
        memset(&ss, 0, sizeof ss);
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, NULL);
        altstack_set = 0;
    }
    free(altstack_mem);
    altstack_mem = NULL;
}
