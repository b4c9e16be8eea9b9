/* csp_wg_t: Go's sync.WaitGroup for tasks and plain threads.
 *
 * Layout (fits csp_wg_t's 4 opaque words, all-zero = empty):
 *   state: bits 0..31  counter (0 .. INT32_MAX)
 *          bit  32     lock: guards `waiters` (and the wake-up hand-off)
 *   waiters: singly linked list of csp__waiter_t (on the waiters' stacks)
 *
 * Invariants
 *   - counter == 0  =>  waiters == NULL once the lock is free.
 *   - csp_wg_wait may return (and its caller free the wg) as soon as it sees
 *     counter == 0 with the lock free. So the csp_wg_add that brings the
 *     counter to 0 takes the lock in the *same* CAS, detaches the waiters,
 *     releases the lock as its last access to the wg, and only then wakes
 *     the waiters (whose records live on their own stacks).
 *   - Every state change is one CAS on `state` (acq_rel); the lock bit is
 *     released with a store-release.
 */
#include "../sched/wait.h"

typedef struct {
    _Atomic uint64_t state;
    csp__waiter_t   *waiters; /* under the lock bit */
    uint64_t         unused[2];
} wg_impl_t;

CSP__STATIC_ASSERT(sizeof(wg_impl_t) <= sizeof(csp_wg_t), "csp_wg_t too small");
CSP__STATIC_ASSERT(_Alignof(wg_impl_t) <= _Alignof(csp_wg_t), "csp_wg_t misaligned");

#define WG_LOCK   ((uint64_t)1 << 32)
#define WG_COUNT  0xffffffffULL

static inline void wg_wait_unlocked(wg_impl_t *g, uint64_t *s)
{
    unsigned spins = 0;
    while (*s & WG_LOCK) {
        if (++spins < 64)
            csp__cpu_relax();
        else
            csp_yield();
        *s = atomic_load_explicit(&g->state, memory_order_acquire);
    }
}

/* Locks g (the lock bit) and returns with it held. */
static void wg_lock(wg_impl_t *g)
{
    uint64_t s = atomic_load_explicit(&g->state, memory_order_acquire);
    for (;;) {
        wg_wait_unlocked(g, &s);
        if (atomic_compare_exchange_weak_explicit(&g->state, &s, s | WG_LOCK, memory_order_acquire,
                                                  memory_order_acquire))
            return;
    }
}

static void wg_unlock(wg_impl_t *g)
{
    atomic_fetch_and_explicit(&g->state, ~WG_LOCK, memory_order_release);
}

/* Teardown hook (wait.h): removes a freed task's waiter from the list. */
static void wg_unlink(csp__waiter_t *w)
{
    wg_impl_t *g = w->obj;
    wg_lock(g);
    for (csp__waiter_t **pp = &g->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    wg_unlock(g);
}

CSP_EXTERN int csp_wg_add(csp_wg_t *wg, int delta)
{
    if (!wg)
        return CSP_EINVAL;
    wg_impl_t *g = (wg_impl_t *)wg;
    uint64_t s = atomic_load_explicit(&g->state, memory_order_relaxed);
    for (;;) {
        wg_wait_unlocked(g, &s);
        int64_t c = (int64_t)(s & WG_COUNT) + delta;
        if (c < 0 || c > INT32_MAX)
            return CSP_EINVAL;
        uint64_t ns = (uint64_t)c;
        bool wake = (c == 0 && delta != 0);
        if (wake)
            ns |= WG_LOCK; /* take the lock together with reaching 0 */
        /* acq_rel: release publishes the caller's work to waiters (Go's
         * Done happens-before Wait returning); acquire pairs with earlier
         * adds and with the lock release below. */
        if (!atomic_compare_exchange_weak_explicit(&g->state, &s, ns, memory_order_acq_rel,
                                                   memory_order_relaxed))
            continue;
        if (!wake)
            return 0;
        csp__waiter_t *list = g->waiters;
        g->waiters = NULL;
        /* release: last access to *wg (pairs with the acquire loads in wait) */
        atomic_store_explicit(&g->state, 0, memory_order_release);
        while (list) {
            csp__waiter_t *next = list->next; /* read before the wake frees it */
            csp__waiter_wake_dequeued(list, CSP__W_WOKEN);
            list = next;
        }
        return 0;
    }
}

CSP_EXTERN int csp_wg_done(csp_wg_t *wg)
{
    return csp_wg_add(wg, -1);
}

CSP_EXTERN int csp_wg_wait(csp_wg_t *wg)
{
    if (!wg)
        return CSP_EINVAL;
    wg_impl_t *g = (wg_impl_t *)wg;
    uint64_t s = atomic_load_explicit(&g->state, memory_order_acquire);
    for (;;) {
        wg_wait_unlocked(g, &s);
        if ((s & WG_COUNT) == 0)
            return 0; /* acquire above pairs with the releasing add */
        if (atomic_compare_exchange_weak_explicit(&g->state, &s, s | WG_LOCK, memory_order_acquire,
                                                  memory_order_acquire))
            break;
    }
    /* locked, counter > 0: queue ourselves */
    csp__waiter_t w;
    csp__waiter_init(&w);
    w.unlink = wg_unlink;
    w.obj = g;
    w.what = g;
    w.next = g->waiters;
    g->waiters = &w;
    /* release the lock keeping the counter (it can't change while locked) */
    atomic_fetch_and_explicit(&g->state, ~WG_LOCK, memory_order_release);
    uint32_t st = csp__waiter_wait(&w, CSP_FOREVER, "wg.wait");
    if (st == CSP__W_WOKEN)
        return 0;
    /* shutdown: unlink ourselves if the list still has us */
    wg_lock(g);
    bool found = false;
    for (csp__waiter_t **pp = &g->waiters; *pp; pp = &(*pp)->next)
        if (*pp == &w) {
            *pp = w.next;
            found = true;
            break;
        }
    wg_unlock(g);
    if (!found)
        csp__waiter_await_ack(&w); /* a waker detached the list and will ack us */
    return csp__shutdown_err();
}
