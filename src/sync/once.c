/* csp_once_t: Go's sync.Once (sync/once.go) for tasks and plain threads.
 *
 * Layout (fits csp_once_t's 4 opaque words; all-zero = not run yet):
 *   state  bit 0  DONE     fn has returned (final; nothing else changes after)
 *          bit 1  RUNNING  a caller is running fn
 *          bit 2  LOCK     guards `waiters` (spin; never held across a switch)
 *   waiters  singly linked list of waiters (on their stacks) that arrived
 *            while fn ran
 *
 * Go's Once is `done` + a Mutex: the fast path is one atomic load, the slow
 * path locks the mutex, runs f if done is still 0, sets done. Here the
 * "mutex" is the RUNNING bit plus the waiter list (no mutex hand-offs are
 * needed: every waiter is released at once when fn returns), so the slow
 * path serialises callers the same way and csp_once returns after fn has
 * completed for every caller.
 *
 * Invariants
 *   - DONE is set, together with clearing RUNNING and LOCK, by one
 *     store-release from the runner, after detaching the list under LOCK; it
 *     is the runner's last access to the once, so a caller may free the
 *     once as soon as csp_once returns.
 *   - waiters != NULL only while RUNNING is set.
 *   - A waiter is woken exactly once (wait.h); the runner wakes detached
 *     waiters with csp__waiter_wake_dequeued, and a waiter that was shut down
 *     and finds itself no longer listed awaits the runner's ack.
 *
 * Memory orders: DONE store-release pairs with the fast path's load-acquire
 * (fn's effects are visible to every caller that sees DONE). LOCK is taken
 * with a CAS-acquire and released with a release RMW/store. Waiters see fn's
 * effects through the wake (acq_rel CAS on the waiter state).
 *
 * Lock order: the LOCK bit is a leaf (rank 13).
 */
#include "../sched/wait.h"

typedef struct {
    _Atomic uint32_t state;
    uint32_t         unused0;
    csp__waiter_t   *waiters; /* under ONCE_LOCK */
    uint64_t         unused[2];
} once_impl_t;

CSP__STATIC_ASSERT(sizeof(once_impl_t) <= sizeof(csp_once_t), "csp_once_t too small");
CSP__STATIC_ASSERT(_Alignof(once_impl_t) <= _Alignof(csp_once_t), "csp_once_t misaligned");

#define ONCE_DONE    1u
#define ONCE_RUNNING 2u
#define ONCE_LOCK    4u

/* Waits for LOCK to be free, reloading *s (acquire: pairs with the lock's
 * release). */
static void once_wait_unlocked(once_impl_t *o, uint32_t *s)
{
    unsigned spins = 0;
    while (*s & ONCE_LOCK) {
        if (++spins < 64)
            csp__cpu_relax();
        else
            csp_yield(); /* plain thread: sched_yield */
        *s = atomic_load_explicit(&o->state, memory_order_acquire);
    }
}

static void once_lock(once_impl_t *o)
{
    uint32_t s = atomic_load_explicit(&o->state, memory_order_acquire);
    for (;;) {
        once_wait_unlocked(o, &s);
        /* acquire: pairs with the release that freed the lock */
        if (atomic_compare_exchange_weak_explicit(&o->state, &s, s | ONCE_LOCK,
                                                  memory_order_acquire, memory_order_acquire))
            return;
    }
}

static void once_unlock(once_impl_t *o)
{
    /* release: the list changes made under the lock (pairs with once_lock) */
    atomic_fetch_and_explicit(&o->state, ~ONCE_LOCK, memory_order_release);
}

/* Under LOCK: removes w from the list; false if it was not there. */
static bool once_list_remove(once_impl_t *o, csp__waiter_t *w)
{
    for (csp__waiter_t **pp = &o->waiters; *pp; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            return true;
        }
    return false;
}

/* Teardown hook (wait.h): a task freed while waiting leaves the list. */
static void once_unlink(csp__waiter_t *w)
{
    once_impl_t *o = w->obj;
    once_lock(o);
    once_list_remove(o, w);
    once_unlock(o);
}

static void once_run(once_impl_t *o, void (*fn)(void *), void *arg)
{
    fn(arg);
    once_lock(o);
    csp__waiter_t *list = o->waiters;
    o->waiters = NULL;
    /* release: fn's effects (pairs with the fast path's acquire load); also
     * drops RUNNING and LOCK. Last access to *o. */
    atomic_store_explicit(&o->state, ONCE_DONE, memory_order_release);
    while (list) {
        csp__waiter_t *next = list->next; /* read before the wake frees it */
        csp__waiter_wake_dequeued(list, CSP__W_WOKEN);
        list = next;
    }
}

static CSP__NOINLINE int once_slow(once_impl_t *o, void (*fn)(void *), void *arg)
{
    uint32_t s = atomic_load_explicit(&o->state, memory_order_acquire);
    for (;;) {
        once_wait_unlocked(o, &s);
        if (s & ONCE_DONE)
            return 0; /* acquire above pairs with the runner's release */
        if (!(s & ONCE_RUNNING)) {
            /* acquire: orders fn after the claim (nothing to pair with but
             * an earlier DONE, which we would have seen) */
            if (atomic_compare_exchange_weak_explicit(&o->state, &s, s | ONCE_RUNNING,
                                                      memory_order_acquire, memory_order_acquire)) {
                once_run(o, fn, arg);
                return 0;
            }
            continue;
        }
        /* someone runs fn: lock the list to queue */
        if (atomic_compare_exchange_weak_explicit(&o->state, &s, s | ONCE_LOCK,
                                                  memory_order_acquire, memory_order_acquire))
            break;
    }
    csp__waiter_t w;
    csp__waiter_init(&w);
    w.unlink = once_unlink;
    w.obj = o;
    w.what = o;
    w.next = o->waiters;
    o->waiters = &w;
    once_unlock(o);
    uint32_t st = csp__waiter_wait(&w, CSP_FOREVER, "once");
    if (st == CSP__W_WOKEN)
        return 0; /* the waiter state's acquire: fn's effects are visible */
    /* shut down: leave the list, or wait for the runner that detached it */
    once_lock(o);
    bool found = once_list_remove(o, &w);
    once_unlock(o);
    if (!found)
        csp__waiter_await_ack(&w); /* the runner detached us and will ack */
    return csp__shutdown_err();
}

CSP_EXTERN int csp_once(csp_once_t *once, void (*fn)(void *), void *arg)
{
    if (CSP__UNLIKELY(!once || !fn))
        return CSP_EINVAL;
    once_impl_t *o = (once_impl_t *)once;
    /* acquire: pairs with the runner's release of DONE */
    if (CSP__LIKELY(atomic_load_explicit(&o->state, memory_order_acquire) & ONCE_DONE))
        return 0;
    return once_slow(o, fn, arg);
}

CSP_EXTERN int csp_once_done(csp_once_t *once)
{
    if (!once)
        return CSP_EINVAL;
    /* acquire: as in csp_once, so a caller that sees 1 sees fn's effects */
    return (atomic_load_explicit(&((once_impl_t *)once)->state, memory_order_acquire) &
            ONCE_DONE) != 0;
}
