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

/* ---- lock ranks (docs/internals/locking.md) ----
 * A thread holding a lock of rank r takes only locks of rank > r (channel
 * locks: several at once in increasing address order). With CSP_LOCKRANK
 * (cmake -DCSP_LOCKRANK=ON; CI's ASan build) every internal lock is tracked
 * per thread and the runtime panics, naming both locks, on a wrong order, on
 * a lock taken under a leaf lock, and on any lock held across a context
 * switch or a worker's sleep. Without it the calls compile to nothing.
 * Rank NONE: tracked for the switch check only. A file sets the rank of its
 * spinlocks with CSP__SPIN_RANK before including this header. */
enum {
    CSP__RANK_NONE = 0,
    CSP__RANK_WG = 10,
    CSP__RANK_CTX = 15,
    CSP__RANK_TIMER = 20,
    CSP__RANK_CHAN = 25,
    CSP__RANK_PIN = 30,
    CSP__RANK_GQ = 40,
    CSP__RANK_IDLE = 50,
    CSP__RANK_STACKPOOL = 60,
    CSP__RANK_CHUNKS = 61,
    CSP__RANK_THREADWAITERS = 70,
    CSP__RANK_BLOCKING = 80,
    CSP__RANK_LEAF = 90
};
#if defined(CSP_LOCKRANK)
void csp__rank_acquire(const void *lock, int rank, const char *file, int line);
void csp__rank_release(const void *lock);
void csp__rank_check_none(const char *where);
#else
#define csp__rank_acquire(lock, rank, file, line) ((void)0)
#define csp__rank_release(lock) ((void)0)
#define csp__rank_check_none(where) ((void)0)
#endif
#ifndef CSP__SPIN_RANK
#define CSP__SPIN_RANK CSP__RANK_NONE
#endif

/* pthread mutexes of the runtime, ranked */
#define csp__mutex_lock(m, rank)                                               \
    do {                                                                       \
        csp__rank_acquire((m), (rank), __FILE__, __LINE__);                    \
        pthread_mutex_lock(m);                                                 \
    } while (0)
#define csp__mutex_unlock(m)                                                   \
    do {                                                                       \
        csp__rank_release(m);                                                  \
        pthread_mutex_unlock(m);                                               \
    } while (0)

/* ---- a tiny test-and-test-and-set spinlock for short critical sections
 * (timer heaps, wait queues). Yields the thread after a while so that an
 * oversubscribed machine (more workers than cores) still progresses. ---- */
typedef struct { _Atomic uint32_t v; } csp__spinlock_t;
void csp__spin_lock_slow(csp__spinlock_t *l);
static inline void csp__spin_lock_raw(csp__spinlock_t *l)
{
    /* acquire: pairs with the release in csp__spin_unlock */
    if (CSP__LIKELY(!atomic_exchange_explicit(&l->v, 1, memory_order_acquire)))
        return;
    csp__spin_lock_slow(l);
}
static inline bool csp__spin_trylock_raw(csp__spinlock_t *l)
{
    return !csp__load_relaxed(&l->v) &&
           !atomic_exchange_explicit(&l->v, 1, memory_order_acquire);
}
static inline void csp__spin_unlock_raw(csp__spinlock_t *l)
{
    atomic_store_explicit(&l->v, 0, memory_order_release); /* pairs with lock's acquire */
}
/* the file's rank (CSP__SPIN_RANK), or an explicit one */
#define csp__spin_lock(l) csp__spin_lock_r((l), CSP__SPIN_RANK)
#define csp__spin_lock_r(l, rank)                                              \
    do {                                                                       \
        csp__rank_acquire((l), (rank), __FILE__, __LINE__);                    \
        csp__spin_lock_raw(l);                                                 \
    } while (0)
#if defined(CSP_LOCKRANK)
static inline bool csp__spin_trylock_ranked(csp__spinlock_t *l, int rank, const char *f, int n)
{
    if (!csp__spin_trylock_raw(l))
        return false;
    csp__rank_acquire(l, rank, f, n);
    return true;
}
#define csp__spin_trylock(l) csp__spin_trylock_ranked((l), CSP__SPIN_RANK, __FILE__, __LINE__)
#else
#define csp__spin_trylock(l) csp__spin_trylock_raw(l)
#endif
#define csp__spin_unlock(l)                                                    \
    do {                                                                       \
        csp__rank_release(l);                                                  \
        csp__spin_unlock_raw(l);                                               \
    } while (0)

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
