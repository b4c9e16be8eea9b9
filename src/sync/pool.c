/* csp_pool_t: Go's sync.Pool without a garbage collector.
 *
 * Layout (csp_pool_t._opaque, 5 words; all-zero = an empty pool, so
 * CSP_POOL_INIT works at file scope):
 *   locals   the per-worker caches (pool_locals_t): one cache-line-aligned
 *            pool_local_t per worker of the runtime generation (csp__rt.gen)
 *            that made them. Allocated lazily by the first get/put on a
 *            worker; replaced when a later runtime (maybe with another worker
 *            count) first uses the pool.
 *   lock     spinlock guarding shared / cap / the writes of nshared, and the
 *            replacement of locals.
 *   shared   the overflow: a LIFO array that grows (outside the lock) up to
 *            CSP_POOL_SHARED_MAX entries. Plain threads use only this.
 *
 * Fast path (a task, or worker code on g0): load csp__cur_worker(), compare
 * locals_gen with the runtime's generation, load locals, push/pop
 * local[w->id]. No lock, no store to a line another worker writes (the
 * pool's own line is only read; it is written by the slow paths). Tasks are cooperative: nothing between the
 * csp__cur_worker() load and the last access to the cache can park or yield,
 * so the cache is the running thread's own for that span. Every call that
 * can switch (new_fn, free_fn) comes after the last use of the worker
 * pointer; the slow paths re-read it after installing new caches (which may
 * call free_fn).
 *
 * Invariants
 *   - local[i] of a pool_locals_t L is read and written only by the thread of
 *     worker i of runtime generation L->gen while that runtime exists, and
 *     afterwards (runtime stopped and its threads joined) only by the one
 *     thread that unhooked L from the pool under the lock (pool_retire), or
 *     by csp_pool_destroy (which must not race with get/put).
 *   - locals is replaced only when it is dead: the runtime of generation
 *     L->gen has stopped. A worker of a running runtime that sees
 *     locals_gen == csp__rt.gen therefore uses L without a lock: nobody can
 *     retire L until its own runtime is gone. (Workers judge "dead" by
 *     locals_gen != csp__rt.gen, plain threads by locals_dead() under the
 *     lock.) Outside the lock, only live caches are dereferenced.
 *   - csp__rt.gen is >= 1 once a runtime has started, so locals_gen == 0
 *     (no caches) never matches a worker's generation.
 *   - Every object the pool holds is in exactly one place: one slot of one
 *     local cache or one slot of shared. Objects that find no room (local
 *     full and shared at CSP_POOL_SHARED_MAX, or an allocation failed) are
 *     handed to free_fn, or dropped (not freed) when free_fn is NULL.
 *   - new_fn and free_fn run with no lock held.
 *
 * Lock order: the pool lock is a leaf (nothing is taken under it, no
 * malloc/free under it; the shared array is allocated outside and swapped
 * in). It is never held across a switch.
 *
 * Atomics
 *   locals, locals_gen   written under the lock (locals_set): locals
 *            relaxed, then locals_gen = locals->gen with release. The fast
 *            path loads locals_gen with acquire and, only if it is its own
 *            runtime's generation, locals: so it never dereferences a dead
 *            runtime's caches (which another thread may be freeing) and sees
 *            the header and zeroed caches of live ones.
 *   nshared  written under the lock (relaxed); read without it (relaxed) only
 *            as a hint that shared is empty, to skip the lock.
 *   csp__rt.state / csp__rt.gen: see locals_dead() and cur_gen().
 */
#define CSP__SPIN_RANK CSP__RANK_LEAF /* lock ranks: internal.h */
#include <stdlib.h>
#include <string.h>

#include "../sched/sched.h"

/* 63 slots + the count: 512 bytes, eight whole cache lines per worker. */
#define POOL_LOCAL_MAX 63u
/* objects moved between a worker cache and shared at once */
#define POOL_BATCH 32u
/* first capacity of the shared array */
#define POOL_SHARED_MIN 64u

CSP__STATIC_ASSERT((CSP_POOL_SHARED_MAX & (CSP_POOL_SHARED_MAX - 1)) == 0,
                   "CSP_POOL_SHARED_MAX must be a power of two");
CSP__STATIC_ASSERT(POOL_BATCH <= POOL_LOCAL_MAX && POOL_SHARED_MIN <= CSP_POOL_SHARED_MAX,
                   "pool batch sizes");

typedef struct pool_local {
    uint32_t n;                    /* objects in item[0..n), newest last */
    void    *item[POOL_LOCAL_MAX];
} CSP__ALIGNED_CL pool_local_t;

typedef struct pool_locals {
    uint32_t     gen;  /* csp__rt.gen of the runtime whose workers use it */
    uint32_t     n;    /* that runtime's worker count */
    /* one per worker id; the header above has its own (read-only) line */
    pool_local_t local[];
} pool_locals_t;

CSP__STATIC_ASSERT(sizeof(pool_local_t) % CSP__CACHELINE == 0, "pool_local_t size");

typedef struct {
    pool_locals_t *_Atomic locals;
    csp__spinlock_t        lock;
    _Atomic uint32_t       nshared; /* objects in shared[0..nshared) */
    void                 **shared;  /* under lock */
    uint32_t               cap;     /* shared's capacity; under lock */
    _Atomic uint32_t       locals_gen; /* locals->gen, 0 if locals is NULL */
    uint64_t               unused1;
} pool_impl_t;

CSP__STATIC_ASSERT(sizeof(pool_impl_t) <= sizeof(((csp_pool_t *)0)->_opaque), "csp_pool_t too small");
CSP__STATIC_ASSERT(_Alignof(pool_impl_t) <= _Alignof(csp_pool_t), "csp_pool_t misaligned");

static inline pool_impl_t *impl(csp_pool_t *p)
{
    return (pool_impl_t *)(void *)p->_opaque;
}

/* The running runtime's generation, for a caller on one of its workers.
 * Relaxed: it was bumped before this worker thread started (rt_setup, then
 * pthread_create or the caller itself becoming worker 0) and cannot change
 * before this worker's runtime has stopped. */
static inline uint32_t cur_gen(void)
{
    return atomic_load_explicit(&csp__rt.gen, memory_order_relaxed);
}

/* For a plain thread holding the pool lock, L the installed caches: true
 * when no worker can use L any more, i.e. the runtime of generation L->gen
 * has stopped.
 *   - state STOPPED is stored (seq_cst) by rt_teardown after every worker of
 *     that runtime was joined; STARTING is a CAS (an RMW, so in the release
 *     sequence of that store) by the next start. L was made by a worker of a
 *     RUNNING runtime of generation L->gen and installed under the pool
 *     lock, which the caller holds, so that RUNNING happens-before this load
 *     and by read-coherence the state we read is it or a later one: STOPPED
 *     or STARTING can only be the ones after its teardown.
 *   - a generation other than L->gen was bumped by a later rt_setup, under
 *     rt_lifecycle, after that teardown.
 * Both loads acquire, so the old workers' writes to L are visible. */
static bool locals_dead(const pool_locals_t *L)
{
    int s = atomic_load(&csp__rt.state); /* seq_cst (acquire): see above */
    if (s == CSP__RT_STOPPED || s == CSP__RT_STARTING)
        return true;
    /* acquire: pairs with rt_setup's fetch_add */
    return atomic_load_explicit(&csp__rt.gen, memory_order_acquire) != L->gen;
}

/* The caches of the calling worker's runtime, or NULL if there are none yet
 * (or only a dead runtime's). Never dereferences a dead runtime's caches:
 * another thread may retire and free them at any moment. The generation is
 * read first, from the pool itself. */
static inline pool_locals_t *locals_live(pool_impl_t *pi)
{
    /* acquire: pairs with the store-release of locals_gen in pool_install,
     * which comes after its store of locals: if the generation is ours, the
     * locals we load are ours (they are replaced only once dead) and their
     * contents are visible */
    if (atomic_load_explicit(&pi->locals_gen, memory_order_acquire) != cur_gen())
        return NULL;
    return atomic_load_explicit(&pi->locals, memory_order_relaxed);
}

/* Under the lock: replaces the installed caches (NULL: none). */
static inline void locals_set(pool_impl_t *pi, pool_locals_t *L)
{
    /* relaxed: ordered before the release store below, and read after its
     * acquire load (locals_live), or under the lock */
    atomic_store_explicit(&pi->locals, L, memory_order_relaxed);
    /* release: publishes L's header and zeroed caches (pairs with the
     * acquire in locals_live) */
    atomic_store_explicit(&pi->locals_gen, L ? L->gen : 0, memory_order_release);
}

/* Takes the lock and returns with it held and, unless an allocation failed,
 * room for `extra` more objects in shared (up to CSP_POOL_SHARED_MAX). Grows
 * shared outside the lock. Returns an old array for the caller to free()
 * after unlocking (or NULL). */
static void **shared_lock_reserve(pool_impl_t *pi, uint64_t extra)
{
    void **spare = NULL;
    uint32_t spare_cap = 0;
    for (;;) {
        csp__spin_lock(&pi->lock);
        uint32_t n = atomic_load_explicit(&pi->nshared, memory_order_relaxed); /* under lock */
        uint64_t need = (uint64_t)n + extra;
        if (need > CSP_POOL_SHARED_MAX)
            need = CSP_POOL_SHARED_MAX;
        if (pi->cap >= need)
            return spare;
        if (spare_cap >= need) {
            if (n)
                memcpy(spare, pi->shared, (size_t)n * sizeof *spare);
            void **old = pi->shared;
            pi->shared = spare;
            pi->cap = spare_cap;
            return old;
        }
        csp__spin_unlock(&pi->lock);
        free(spare);
        spare_cap = POOL_SHARED_MIN;
        while (spare_cap < need)
            spare_cap *= 2; /* stops at CSP_POOL_SHARED_MAX (a power of two) */
        spare = malloc((size_t)spare_cap * sizeof *spare);
        if (!spare) {
            csp__spin_lock(&pi->lock);
            return NULL; /* the caller uses what room there is */
        }
    }
}

static inline void shared_set_n(pool_impl_t *pi, uint32_t n)
{
    /* relaxed: under the lock; lock-free readers use it only as a hint */
    atomic_store_explicit(&pi->nshared, n, memory_order_relaxed);
}

static inline void pool_drop(csp_pool_t *p, void *x)
{
    if (p->free_fn)
        p->free_fn(x, p->arg); /* may block or switch: no lock, no worker held */
}

/* L, unhooked from the pool and dead (no worker uses it), goes away: its
 * objects move to shared as far as there is room, the rest to free_fn.
 * May call free_fn (may switch). */
static void pool_retire(csp_pool_t *p, pool_locals_t *L)
{
    pool_impl_t *pi = impl(p);
    uint64_t total = 0;
    for (uint32_t i = 0; i < L->n; i++)
        total += L->local[i].n;
    if (total) {
        void **old = shared_lock_reserve(pi, total);
        uint32_t n = atomic_load_explicit(&pi->nshared, memory_order_relaxed);
        for (uint32_t i = 0; i < L->n && n < pi->cap; i++) {
            pool_local_t *c = &L->local[i];
            uint32_t k = pi->cap - n < c->n ? pi->cap - n : c->n;
            /* the newest k: the older ones are the likelier to be cold */
            memcpy(pi->shared + n, c->item + (c->n - k), (size_t)k * sizeof(void *));
            n += k;
            c->n -= k;
        }
        shared_set_n(pi, n);
        csp__spin_unlock(&pi->lock);
        free(old);
        for (uint32_t i = 0; i < L->n; i++) {
            pool_local_t *c = &L->local[i];
            for (uint32_t j = 0; j < c->n; j++)
                pool_drop(p, c->item[j]);
            c->n = 0;
        }
    }
    free(L);
}

/* Installs caches for the calling worker's runtime (unless another worker
 * just did) and retires a dead runtime's. 0 or CSP_ENOMEM. May call free_fn:
 * the caller must re-read csp__cur_worker() afterwards. */
static int pool_install(csp_pool_t *p)
{
    pool_impl_t *pi = impl(p);
    uint32_t gen = cur_gen();
    uint32_t n = (uint32_t)csp__rt.nworkers; /* fixed while this runtime runs */
    size_t sz = sizeof(pool_locals_t) + (size_t)n * sizeof(pool_local_t);
    sz = (sz + CSP__CACHELINE - 1) & ~(size_t)(CSP__CACHELINE - 1);
    pool_locals_t *nl = aligned_alloc(CSP__CACHELINE, sz);
    if (!nl)
        return CSP_ENOMEM;
    memset(nl, 0, sz);
    nl->gen = gen;
    nl->n = n;
    csp__spin_lock(&pi->lock);
    if (atomic_load_explicit(&pi->locals_gen, memory_order_relaxed) == gen) { /* under lock */
        csp__spin_unlock(&pi->lock);
        free(nl); /* another worker of this runtime was first */
        return 0;
    }
    pool_locals_t *old = atomic_load_explicit(&pi->locals, memory_order_relaxed); /* under lock */
    locals_set(pi, nl);
    csp__spin_unlock(&pi->lock);
    if (old)
        pool_retire(p, old); /* old->gen != gen: its runtime has stopped */
    return 0;
}

/* Plain thread: if the caches belong to a runtime that has stopped, unhook
 * and retire them, so their objects become reachable through shared. True
 * if it retired something. */
static bool pool_reclaim_dead(csp_pool_t *p)
{
    pool_impl_t *pi = impl(p);
    if (!atomic_load_explicit(&pi->locals, memory_order_relaxed))
        return false; /* the common case, without the lock */
    /* L is dereferenced only under the lock: a dead L may be retired and
     * freed by another thread at any moment outside it */
    csp__spin_lock(&pi->lock);
    pool_locals_t *L = atomic_load_explicit(&pi->locals, memory_order_relaxed); /* under lock */
    bool mine = L && locals_dead(L);
    if (mine)
        locals_set(pi, NULL);
    csp__spin_unlock(&pi->lock);
    if (!mine)
        return false;
    pool_retire(p, L);
    return true;
}

CSP_EXTERN int csp_pool_init(csp_pool_t *p, void *(*new_fn)(void *arg),
                             void (*free_fn)(void *item, void *arg), void *arg)
{
    if (!p)
        return CSP_EINVAL;
    *p = (csp_pool_t)CSP_POOL_INIT(new_fn, free_fn, arg);
    return 0;
}

static CSP__NOINLINE void *pool_get_slow(csp_pool_t *p)
{
    pool_impl_t *pi = impl(p);
    bool reclaimed = false;
    for (;;) {
        csp__worker_t *w = csp__cur_worker(); /* re-read: pool_install may have switched */
        pool_locals_t *L = NULL;
        if (w) {
            L = locals_live(pi);
            if (!L && pool_install(p) == 0)
                continue;
        }
        if (L) {
            pool_local_t *c = &L->local[w->id];
            CSP__ASSERT((uint32_t)w->id < L->n);
            if (c->n > 0)
                return c->item[--c->n];
            /* refill up to a batch from shared */
            if (atomic_load_explicit(&pi->nshared, memory_order_relaxed) == 0) /* hint */
                break;
            csp__spin_lock(&pi->lock);
            uint32_t n = atomic_load_explicit(&pi->nshared, memory_order_relaxed);
            uint32_t k = n < POOL_BATCH ? n : POOL_BATCH;
            n -= k;
            if (k)
                memcpy(c->item, pi->shared + n, (size_t)k * sizeof(void *));
            shared_set_n(pi, n);
            csp__spin_unlock(&pi->lock);
            c->n = k;
            if (k)
                return c->item[--c->n];
            break;
        }
        /* plain thread (or no memory for caches): shared only */
        if (atomic_load_explicit(&pi->nshared, memory_order_relaxed) > 0) { /* hint */
            void *x = NULL;
            csp__spin_lock(&pi->lock);
            uint32_t n = atomic_load_explicit(&pi->nshared, memory_order_relaxed);
            if (n) {
                x = pi->shared[n - 1];
                shared_set_n(pi, n - 1);
            }
            csp__spin_unlock(&pi->lock);
            if (x)
                return x;
        }
        /* a stopped runtime's caches may still hold objects */
        if (!w && !reclaimed && pool_reclaim_dead(p)) {
            reclaimed = true;
            continue;
        }
        break;
    }
    return p->new_fn ? p->new_fn(p->arg) : NULL; /* may block or switch */
}

CSP_EXTERN void *csp_pool_get(csp_pool_t *p)
{
    if (CSP__UNLIKELY(!p))
        return NULL;
    csp__worker_t *w = csp__cur_worker();
    if (CSP__LIKELY(w != NULL)) {
        pool_locals_t *L = locals_live(impl(p));
        if (CSP__LIKELY(L != NULL)) {
            pool_local_t *c = &L->local[w->id];
            if (CSP__LIKELY(c->n > 0))
                return c->item[--c->n];
        }
    }
    return pool_get_slow(p);
}

static CSP__NOINLINE void pool_put_slow(csp_pool_t *p, void *x)
{
    pool_impl_t *pi = impl(p);
    for (;;) {
        csp__worker_t *w = csp__cur_worker(); /* re-read: pool_install may have switched */
        pool_locals_t *L = NULL;
        if (w) {
            L = locals_live(pi);
            if (!L && pool_install(p) == 0)
                continue;
        }
        if (L) {
            pool_local_t *c = &L->local[w->id];
            CSP__ASSERT((uint32_t)w->id < L->n);
            if (c->n < POOL_LOCAL_MAX) {
                c->item[c->n++] = x;
                return;
            }
            /* full: the oldest batch moves to shared */
            void **old = shared_lock_reserve(pi, POOL_BATCH);
            uint32_t n = atomic_load_explicit(&pi->nshared, memory_order_relaxed);
            uint32_t room = pi->cap - n;
            uint32_t k = room < POOL_BATCH ? room : POOL_BATCH;
            if (k)
                memcpy(pi->shared + n, c->item, (size_t)k * sizeof(void *));
            shared_set_n(pi, n + k);
            csp__spin_unlock(&pi->lock);
            if (k) {
                memmove(c->item, c->item + k, (size_t)(c->n - k) * sizeof(void *));
                c->n -= k;
                c->item[c->n++] = x;
            }
            free(old);
            if (k)
                return;
            break; /* shared is full */
        }
        /* plain thread (or no memory for caches): shared only */
        void **old = shared_lock_reserve(pi, 1);
        uint32_t n = atomic_load_explicit(&pi->nshared, memory_order_relaxed);
        bool stored = n < pi->cap;
        if (stored) {
            pi->shared[n] = x;
            shared_set_n(pi, n + 1);
        }
        csp__spin_unlock(&pi->lock);
        free(old);
        if (stored)
            return;
        break;
    }
    pool_drop(p, x);
}

CSP_EXTERN int csp_pool_put(csp_pool_t *p, void *x)
{
    if (CSP__UNLIKELY(!p))
        return CSP_EINVAL;
    if (!x)
        return 0;
    csp__worker_t *w = csp__cur_worker();
    if (CSP__LIKELY(w != NULL)) {
        pool_locals_t *L = locals_live(impl(p));
        if (CSP__LIKELY(L != NULL)) {
            pool_local_t *c = &L->local[w->id];
            if (CSP__LIKELY(c->n < POOL_LOCAL_MAX)) {
                c->item[c->n++] = x;
                return 0;
            }
        }
    }
    pool_put_slow(p, x);
    return 0;
}

CSP_EXTERN void csp_pool_destroy(csp_pool_t *p)
{
    if (!p)
        return;
    pool_impl_t *pi = impl(p);
    csp__spin_lock(&pi->lock);
    pool_locals_t *L = atomic_load_explicit(&pi->locals, memory_order_relaxed); /* under lock */
    locals_set(pi, NULL);
    void **shared = pi->shared;
    uint32_t n = atomic_load_explicit(&pi->nshared, memory_order_relaxed);
    pi->shared = NULL;
    pi->cap = 0;
    shared_set_n(pi, 0);
    csp__spin_unlock(&pi->lock);
    for (uint32_t i = 0; i < n; i++)
        pool_drop(p, shared[i]);
    free(shared);
    if (L) {
        for (uint32_t i = 0; i < L->n; i++) {
            pool_local_t *c = &L->local[i];
            for (uint32_t j = 0; j < c->n; j++)
                pool_drop(p, c->item[j]);
        }
        free(L);
    }
}
