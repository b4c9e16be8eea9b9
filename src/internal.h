/* Internal macros shared by every source file. Never installed. */
#ifndef CSP_INTERNAL_H
#define CSP_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <csp.h>

#define CSP__LIKELY(x)   __builtin_expect(!!(x), 1)
#define CSP__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define CSP__CACHELINE   64
#define CSP__ALIGNED_CL  __attribute__((aligned(CSP__CACHELINE)))
#define CSP__NOINLINE    __attribute__((noinline))
/* noipa: the compiler may neither inline nor draw conclusions about the
 * function's result (e.g. that two calls return the same thread-local
 * address); used for every accessor of worker-local state. */
#if defined(__clang__)
/* clang has no noipa: noinline + optnone keeps the body opaque; callers
 * still can't merge calls across a task switch (an opaque call) */
#  define CSP__NOIPA     __attribute__((noinline, optnone))
#else
#  define CSP__NOIPA     __attribute__((noinline, noipa))
#endif
#define CSP__UNUSED      __attribute__((unused))
#define CSP__STATIC_ASSERT(c, msg) _Static_assert(c, msg)

#define csp__container_of(ptr, type, field) \
    ((type *)((char *)(ptr) - offsetof(type, field)))

/* Relaxed/acq/rel shorthands; every use names what it pairs with. */
#define csp__load_relaxed(p)      atomic_load_explicit((p), memory_order_relaxed)
#define csp__load_acquire(p)      atomic_load_explicit((p), memory_order_acquire)
#define csp__store_relaxed(p, v)  atomic_store_explicit((p), (v), memory_order_relaxed)
#define csp__store_release(p, v)  atomic_store_explicit((p), (v), memory_order_release)

static inline void csp__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield" ::: "memory");
#else
    __asm__ __volatile__("" ::: "memory");
#endif
}

/* Broken internal invariant (the runtime's own bug, never the caller's):
 * print "libcsp: <msg>" to stderr and abort. Async-signal-safe. */
__attribute__((noreturn, format(printf, 1, 2)))
void csp__panic(const char *fmt, ...);

#ifdef CSP_DEBUG
#define CSP__ASSERT(c) do { if (!(c)) csp__panic("assertion failed: %s (%s:%d)", #c, __FILE__, __LINE__); } while (0)
#else
#define CSP__ASSERT(c) do { (void)sizeof(c); } while (0)
#endif

/* ---- futex ---- */
/* Waits while *addr == val, until woken or the absolute monotonic deadline
 * (CSP_FOREVER: none). Returns 0 when woken or on a value mismatch/EINTR,
 * CSP_ETIMEDOUT when the deadline passed. */
int  csp__futex_wait(_Atomic uint32_t *addr, uint32_t val, csp_time_t deadline);
void csp__futex_wake(_Atomic uint32_t *addr, int n);

/* ---- a tiny test-and-test-and-set spinlock for short critical sections
 * (timer heaps, wait queues). Yields the thread after a while so that an
 * oversubscribed machine (more workers than cores) still progresses. ---- */
typedef struct { _Atomic uint32_t v; } csp__spinlock_t;
void csp__spin_lock_slow(csp__spinlock_t *l);
static inline void csp__spin_lock(csp__spinlock_t *l)
{
    /* acquire: pairs with the release in csp__spin_unlock */
    if (CSP__LIKELY(!atomic_exchange_explicit(&l->v, 1, memory_order_acquire)))
        return;
    csp__spin_lock_slow(l);
}
static inline bool csp__spin_trylock(csp__spinlock_t *l)
{
    return !csp__load_relaxed(&l->v) &&
           !atomic_exchange_explicit(&l->v, 1, memory_order_acquire);
}
static inline void csp__spin_unlock(csp__spinlock_t *l)
{
    atomic_store_explicit(&l->v, 0, memory_order_release); /* pairs with lock's acquire */
}

/* xorshift64* PRNG, per worker (no locking). */
static inline uint64_t csp__rand_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

/* Fast bounded random: [0, n). */
static inline uint32_t csp__rand_n(uint64_t *s, uint32_t n)
{
    return (uint32_t)(((csp__rand_next(s) >> 32) * (uint64_t)n) >> 32);
}

#endif /* CSP_INTERNAL_H */
