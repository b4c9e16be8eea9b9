/* Per-worker caches of small runtime objects (contexts, for now).
 *
 * Why: objects such as contexts are made by one task and freed by another,
 * often on another worker: a cancel that wakes 10,000 waiters has both
 * workers freeing the contexts one task allocated. glibc sends a chunk freed
 * by a thread that did not allocate it to the owning arena under that
 * arena's lock (its per-thread tcache holds only 7 chunks per size), and its
 * lock sleeps on a futex when contended: the ctxcancel benchmark's workers
 * slept in __lll_lock_wait_private in the middle of a cancel, and rounds
 * took 6-7 ms instead of 3.5 (with GLIBC_TUNABLES=glibc.malloc.tcache_count
 * raised they did not). Go allocates from per-P caches; so do we.
 *
 * Structure, per class (a class is one object kind of one fixed size):
 *   - each worker has a cache of up to CSP__OBJ_CACHE_MAX free objects
 *     (owner only, like the stack-slot cache): alloc pops, free pushes;
 *   - a full cache gives its CSP__OBJ_BATCH oldest objects to the class's
 *     global pool, an empty one takes up to a batch from it (pool->lock);
 *   - the global pool holds at most CSP__OBJ_POOL_MAX objects; beyond that a
 *     given batch goes back to free(). So what is kept after a burst is
 *     bounded: (workers * CSP__OBJ_CACHE_MAX + CSP__OBJ_POOL_MAX) objects.
 * Every object is one calloc'd chunk, cached or not, so a plain thread (no
 * worker) can free one that a worker allocated and the other way round: it
 * allocates with calloc and frees with free, and so does every thread in
 * ASan builds (a cache would hide use-after-free). csp__obj_drain frees
 * everything cached at teardown, once the workers are joined; a count of
 * the chunks taken from malloc and not given back (csp__obj_outstanding)
 * lets tests see a leak.
 *
 * Concurrency: a worker's cache is touched only by code running on that
 * worker's thread, between two switches (alloc and free never park), with
 * the worker read afresh on every call. The global pool is under its
 * spinlock; the lock is also what orders an object's last use on one worker
 * before its reuse on another (release on unlock, acquire on lock).
 * Lock order: pool->lock is a leaf (nothing is taken inside it; free() of an
 * overflowing batch happens after it is released).
 */
#include "sched.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    csp__spinlock_t lock;
    void           *head;  /* singly linked through each object's first word; under lock */
    uint32_t        n;     /* objects on the list; under lock */
} obj_pool_t;

static obj_pool_t pools[CSP__OBJ_NCLASS];

/* objects taken from malloc and not yet given back to free, cached or live:
 * touched only on those slow paths (relaxed: a count for tests and leaks) */
static _Atomic int64_t outstanding;

static void *obj_calloc(size_t size)
{
    void *o = calloc(1, size);
    if (o)
        atomic_fetch_add_explicit(&outstanding, 1, memory_order_relaxed);
    return o;
}

static void obj_release(void *o)
{
    atomic_fetch_sub_explicit(&outstanding, 1, memory_order_relaxed);
    free(o);
}

static inline void **link_of(void *p) { return (void **)p; }

/* Gives a NULL-terminated chain of objects back to free(). */
static void release_chain(void *o)
{
    while (o) {
        void *next = *link_of(o);
        obj_release(o);
        o = next;
    }
}

void *csp__obj_alloc(int cls, size_t size)
{
#if !defined(CSP_ASAN)
    csp__worker_t *w = csp__cur_worker(); /* fresh: no switch until we return */
    if (CSP__LIKELY(w && cls >= 0 && cls < CSP__OBJ_NCLASS)) {
        struct csp__obj_cache *c = &w->ocache[cls];
        if (CSP__UNLIKELY(!c->n)) {
            obj_pool_t *p = &pools[cls];
            csp__spin_lock(&p->lock);
            while (p->head && c->n < CSP__OBJ_BATCH) {
                void *o = p->head;
                p->head = *link_of(o);
                p->n--;
                c->slot[c->n++] = o;
            }
            csp__spin_unlock(&p->lock);
        }
        if (CSP__LIKELY(c->n)) {
            void *o = c->slot[--c->n];
            memset(o, 0, size);
            return o;
        }
    }
#else
    (void)cls;
#endif
    return obj_calloc(size);
}

void csp__obj_free(int cls, void *o)
{
    if (!o)
        return;
#if !defined(CSP_ASAN)
    csp__worker_t *w = csp__cur_worker(); /* fresh: no switch until we return */
    if (CSP__LIKELY(w && cls >= 0 && cls < CSP__OBJ_NCLASS)) {
        struct csp__obj_cache *c = &w->ocache[cls];
        if (CSP__UNLIKELY(c->n == CSP__OBJ_CACHE_MAX)) {
            /* give the oldest batch back: chain it outside the lock */
            for (uint32_t i = 0; i + 1 < CSP__OBJ_BATCH; i++)
                *link_of(c->slot[i]) = c->slot[i + 1];
            void *first = c->slot[0], *last = c->slot[CSP__OBJ_BATCH - 1];
            obj_pool_t *p = &pools[cls];
            csp__spin_lock(&p->lock);
            bool kept = p->n + CSP__OBJ_BATCH <= CSP__OBJ_POOL_MAX;
            if (kept) {
                *link_of(last) = p->head;
                p->head = first;
                p->n += CSP__OBJ_BATCH;
            }
            csp__spin_unlock(&p->lock);
            if (!kept) {
                *link_of(last) = NULL;
                release_chain(first);
            }
            memmove(c->slot, c->slot + CSP__OBJ_BATCH,
                    (CSP__OBJ_CACHE_MAX - CSP__OBJ_BATCH) * sizeof c->slot[0]);
            c->n -= CSP__OBJ_BATCH;
        }
        c->slot[c->n++] = o;
        return;
    }
#else
    (void)cls;
#endif
    obj_release(o);
}

void csp__obj_drain(csp__worker_t *const *workers, int n)
{
    for (int i = 0; i < n; i++) {
        if (!workers[i])
            continue;
        for (int k = 0; k < CSP__OBJ_NCLASS; k++) {
            struct csp__obj_cache *c = &workers[i]->ocache[k];
            while (c->n)
                obj_release(c->slot[--c->n]);
        }
    }
    for (int k = 0; k < CSP__OBJ_NCLASS; k++) {
        obj_pool_t *p = &pools[k];
        csp__spin_lock(&p->lock);
        void *o = p->head;
        p->head = NULL;
        p->n = 0;
        csp__spin_unlock(&p->lock);
        release_chain(o);
    }
}

uint64_t csp__obj_cached(void)
{
    uint64_t total = 0;
    for (int k = 0; k < CSP__OBJ_NCLASS; k++) {
        obj_pool_t *p = &pools[k];
        csp__spin_lock(&p->lock);
        total += p->n;
        csp__spin_unlock(&p->lock);
    }
    return total;
}

int64_t csp__obj_outstanding(void)
{
    return atomic_load_explicit(&outstanding, memory_order_relaxed);
}
