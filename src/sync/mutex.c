/* csp_mutex_t: Go's sync.Mutex (sync/mutex.go) for tasks and plain threads.
 *
 * Layout (fits csp_mutex_t's 4 opaque words; all-zero = unlocked, no waiters):
 *   state  bit 0  LOCKED    someone holds the mutex
 *          bit 1  WOKEN     an awake contender exists (a spinner, or a waiter
 *                           that an unlock woke): unlock need not wake another
 *          bit 2  STARVING  starvation mode: unlock hands the mutex over
 *          bits 3..31       number of queued waiters
 *   qlock  csp__spinlock_t guarding the wait queue (head/tail, every waiter's
 *          links and mwaiter_t.queued), every change of the waiter count and
 *          every change of STARVING
 *   head, tail  FIFO of mwaiter_t records, which live on the waiters' stacks
 *
 * Modes (Go's design):
 *   normal     lockers spin briefly, then queue at the tail. Unlock releases
 *              the mutex and wakes the queue head, which competes with newly
 *              arriving lockers; if it loses it re-queues at the head (LIFO).
 *   starvation a waiter that waited over 1 ms (and lost a race after being
 *              woken) sets STARVING when it re-queues. While STARVING is set,
 *              nobody acquires the mutex by CAS or spins: unlock hands it,
 *              still LOCKED, straight to the queue head. The hand-off ends the
 *              mode when the new owner waited less than 1 ms or is the last
 *              waiter.
 *
 * Spinning (Go's runtime_canSpin): only while the mutex is held in normal
 * mode, with more than one CPU and more than one worker running, and not
 * while other tasks wait in the spinner's local run queue; at most 4 rounds
 * of 30 csp__cpu_relax() (120 pauses: about 1-6 us depending on the CPU's
 * pause latency), then the locker queues and parks (a plain thread blocks).
 *
 * Invariants
 *   - With qlock free: waiter count == queue length.
 *   - STARVING implies LOCKED (a hand-off keeps LOCKED set; the only unlock
 *     in starvation mode is the hand-off, or, when every queued waiter is
 *     leaving, one CAS that clears both). So lockers need only test LOCKED,
 *     and there is no window in which a starving mutex looks free.
 *   - At most one party holds the WOKEN "role": it sets the bit (spinner, or
 *     unlocker on behalf of the waiter it wakes) only while the bit is clear,
 *     and its holder clears it in the CAS that acquires the mutex or
 *     re-queues it. A role whose waiter could not be claimed is given back.
 *   - Uncontended lock and unlock are one CAS each (0 <-> LOCKED); misuse
 *     (unlock of an unlocked mutex) is decided by a CAS that only succeeds on
 *     a LOCKED state, so a bad unlock never modifies the mutex.
 *   - Waking uses the two-phase claim of wait.h under qlock: a waiter that
 *     timed out or was shut down cannot be claimed; the waker then unlinks it
 *     and accounts for it (count, woken role) itself. So a hand-off and a
 *     timeout can never both happen to one waiter, and a leaving waiter finds
 *     out under qlock (mwaiter_t.queued) whether it still has to unlink
 *     itself. A waker touches an unclaimed waiter only under qlock, so no
 *     acknowledgement (csp__waiter_await_ack) is needed.
 *
 * Memory orders: the CAS that acquires the mutex is acquire; the CAS that
 * releases it is release (pairs with the next acquiring CAS; the relaxed
 * read-modify-writes in between - waiter count, WOKEN - continue the release
 * sequence). A hand-off publishes the critical section through the waiter's
 * completion (release store in csp__waiter_complete, acquire load in
 * csp__waiter_wait). Everything else on `state` is relaxed: the queue it
 * counts is ordered by qlock.
 *
 * Lock order: qlock is a leaf (rank 11, after the WaitGroup lock bit): no
 * other lock is taken under it and it is never held across a switch; wakes
 * (which may take run-queue locks) happen after it is released.
 */
#define _GNU_SOURCE
#define CSP__SPIN_RANK CSP__RANK_LEAF /* lock ranks: internal.h */
#include <time.h>
#include <unistd.h>

#include "../sched/wait.h"
#include "sync_internal.h"

typedef struct {
    _Atomic uint32_t state;
    csp__spinlock_t  qlock;
    csp__waiter_t   *head, *tail; /* under qlock */
    uint64_t         unused;
} mutex_impl_t;

CSP__STATIC_ASSERT(sizeof(mutex_impl_t) <= sizeof(csp_mutex_t), "csp_mutex_t too small");
CSP__STATIC_ASSERT(_Alignof(mutex_impl_t) <= _Alignof(csp_mutex_t), "csp_mutex_t misaligned");

#define MTX_LOCKED     1u
#define MTX_WOKEN      2u
#define MTX_STARVING   4u
#define MTX_SHIFT      3
#define MTX_WAITER     (1u << MTX_SHIFT)
#define MTX_NWAIT(s)   ((s) >> MTX_SHIFT)
#define MTX_STARVE_NS  (1 * CSP_MILLISECOND) /* Go's starvationThresholdNs */
#define MTX_SPIN_ITERS 4                     /* Go's active_spin */
#define MTX_SPIN_RELAX 30                    /* Go's active_spin_cnt: 30 pauses per round */

/* What a waker granted a claimed waiter (w.result). */
enum { MTX_GRANT_NONE = 0, MTX_GRANT_WOKEN = 1 /* the WOKEN role: compete */,
       MTX_GRANT_HANDOFF = 2 /* the mutex itself (starvation mode) */ };

typedef struct {
    csp__waiter_t w;      /* w.result: MTX_GRANT_*, written by the claimer under qlock */
    csp_time_t    since;  /* when this lock call first queued; read by hand-offs under qlock */
    bool          queued; /* on the queue; under qlock */
} mwaiter_t;


static inline mwaiter_t *mw_of(csp__waiter_t *w)
{
    return csp__container_of(w, mwaiter_t, w);
}

/* ---- the wait queue (under qlock) ---- */

static void q_push_back(mutex_impl_t *m, csp__waiter_t *w)
{
    w->next = NULL;
    w->prev = m->tail;
    if (m->tail)
        m->tail->next = w;
    else
        m->head = w;
    m->tail = w;
    mw_of(w)->queued = true;
}

static void q_push_front(mutex_impl_t *m, csp__waiter_t *w)
{
    w->prev = NULL;
    w->next = m->head;
    if (m->head)
        m->head->prev = w;
    else
        m->tail = w;
    m->head = w;
    mw_of(w)->queued = true;
}

static void q_remove(mutex_impl_t *m, csp__waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        m->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        m->tail = w->prev;
    w->next = w->prev = NULL;
    mw_of(w)->queued = false;
}

static csp__waiter_t *q_pop(mutex_impl_t *m)
{
    csp__waiter_t *w = m->head;
    if (w)
        q_remove(m, w);
    return w;
}

/* Under qlock: n waiters left the queue. The last one leaving ends
 * starvation mode (nobody is left to hand the mutex to). */
static void mtx_drop_waiters(mutex_impl_t *m, uint32_t n)
{
    uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
    uint32_t nw;
    do {
        CSP__ASSERT(MTX_NWAIT(old) >= n);
        nw = old - n * MTX_WAITER;
        if (MTX_NWAIT(nw) == 0)
            nw &= ~MTX_STARVING;
        /* relaxed: the count is ordered by qlock; the RMW keeps the release
         * sequence of the last unlock intact */
    } while (!atomic_compare_exchange_weak_explicit(&m->state, &old, nw, memory_order_relaxed,
                                                    memory_order_relaxed));
}

/* ---- spinning ---- */

static int mtx_ncpu(void)
{
    static _Atomic int ncpu; /* 0: not read yet; a benign race (same value) */
    int n = atomic_load_explicit(&ncpu, memory_order_relaxed);
    if (CSP__UNLIKELY(n == 0)) {
        long v = sysconf(_SC_NPROCESSORS_ONLN);
        n = v > 0 ? (int)(v < 1024 ? v : 1024) : 1;
        atomic_store_explicit(&ncpu, n, memory_order_relaxed);
    }
    return n;
}

/* Go's runtime_canSpin: a few rounds, only with several CPUs and workers, and
 * not while other tasks wait on this worker's run queue. */
static bool mtx_can_spin(int iter)
{
    if (iter >= MTX_SPIN_ITERS || csp_workers() <= 1 || mtx_ncpu() <= 1)
        return false;
    csp__worker_t *w = csp__cur_worker(); /* read anew every time: never cached */
    if (w && (atomic_load_explicit(&w->runq_head, memory_order_relaxed) !=
                  atomic_load_explicit(&w->runq_tail, memory_order_relaxed) ||
              atomic_load_explicit(&w->runnext, memory_order_relaxed) != NULL))
        return false; /* relaxed: a hint only */
    return true;
}

static void mtx_do_spin(void)
{
    for (int i = 0; i < MTX_SPIN_RELAX; i++)
        csp__cpu_relax();
}

/* nofail relock during shutdown: let the holder run before trying again */
static void mtx_backoff(void)
{
    if (csp__cur_task()) {
        csp_yield();
    } else {
        struct timespec ts = { 0, 50 * 1000 };
        nanosleep(&ts, NULL);
    }
}

/* ---- unlock side ---- */

/* Normal mode, after an unlock that left waiters and no awake contender:
 * wake the queue head to compete (Go's unlockSlow + semrelease). */
static void mtx_wake(mutex_impl_t *m)
{
    csp__waiter_t *claimed = NULL;
    csp__spin_lock(&m->qlock);
    uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
    for (;;) {
        /* someone took the mutex, or is awake to, or nobody waits: done */
        if (MTX_NWAIT(old) == 0 || (old & (MTX_LOCKED | MTX_WOKEN | MTX_STARVING)))
            goto out;
        /* take the woken role and one waiter off the count. relaxed: see
         * mtx_drop_waiters */
        if (atomic_compare_exchange_weak_explicit(&m->state, &old, (old - MTX_WAITER) | MTX_WOKEN,
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    /* Hand both to the first waiter we can claim. The count covered one
     * queued waiter (the queue is not empty); waiters that are leaving
     * (timed out, shut down) are unlinked here and each one after the first
     * takes its own unit off the count. */
    for (bool first = true;; first = false) {
        csp__waiter_t *w = q_pop(m);
        if (!w) {
            /* everyone was leaving: give the role back (count is now 0).
             * relaxed: ordered by qlock like the count */
            atomic_fetch_and_explicit(&m->state, ~MTX_WOKEN, memory_order_relaxed);
            break;
        }
        if (!first)
            mtx_drop_waiters(m, 1);
        if (csp__waiter_claim(w)) {
            w->result = MTX_GRANT_WOKEN;
            claimed = w;
            break;
        }
    }
out:
    csp__spin_unlock(&m->qlock);
    if (claimed)
        csp__waiter_complete(claimed); /* after unlock: may take run-queue locks */
}

/* Starvation mode: hand the mutex (still LOCKED) to the first waiter we can
 * claim. 0, CSP_EINVAL (not locked), or 1: the mode ended meanwhile (the
 * last waiter left): unlock normally. */
static int mtx_unlock_starving(mutex_impl_t *m)
{
    csp__spin_lock(&m->qlock);
    uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
    if (!(old & MTX_LOCKED)) {
        csp__spin_unlock(&m->qlock);
        return CSP_EINVAL; /* a concurrent unlock won (misuse) */
    }
    if (!(old & MTX_STARVING)) {
        csp__spin_unlock(&m->qlock);
        return 1;
    }
    uint32_t n = 0;
    csp__waiter_t *w;
    while ((w = q_pop(m))) {
        n++;
        if (csp__waiter_claim(w))
            break;
        /* leaving: unlinked here, counted in n */
    }
    bool stay = false;
    if (w) {
        stay = csp_now() - mw_of(w)->since > MTX_STARVE_NS;
        w->result = MTX_GRANT_HANDOFF;
    }
    uint32_t nw;
    do {
        nw = old - n * MTX_WAITER;
        if (!w)
            nw &= ~(MTX_LOCKED | MTX_STARVING); /* nobody to hand to: a plain unlock */
        else if (!stay || MTX_NWAIT(nw) == 0)
            nw &= ~MTX_STARVING; /* Go: the new owner waited < 1 ms, or is the last */
        /* release: a plain unlock publishes the critical section (pairs with
         * the next acquiring CAS); a hand-off publishes it again through the
         * completion below */
    } while (!atomic_compare_exchange_weak_explicit(&m->state, &old, nw, memory_order_release,
                                                    memory_order_relaxed));
    csp__spin_unlock(&m->qlock);
    if (w)
        csp__waiter_complete(w);
    return 0;
}

static CSP__NOINLINE int mtx_unlock_slow(mutex_impl_t *m, uint32_t old)
{
    for (;;) {
        if (!(old & MTX_LOCKED))
            return CSP_EINVAL; /* not locked: unchanged */
        if (old & MTX_STARVING) {
            int r = mtx_unlock_starving(m);
            if (r != 1)
                return r;
            old = atomic_load_explicit(&m->state, memory_order_relaxed);
            continue;
        }
        /* release: publishes the critical section (pairs with the acquiring
         * CAS in lock/trylock) */
        if (atomic_compare_exchange_weak_explicit(&m->state, &old, old & ~MTX_LOCKED,
                                                  memory_order_release, memory_order_relaxed))
            break;
    }
    old &= ~MTX_LOCKED;
    if (MTX_NWAIT(old) != 0 && !(old & (MTX_WOKEN | MTX_STARVING)))
        mtx_wake(m);
    return 0;
}

/* ---- lock side ---- */

/* Teardown hook (wait.h): a task freed while waiting. If it is still queued,
 * unlink it; if an unlock woke it (the woken role) and it never ran again,
 * the role dies with it. A hand-off it never saw leaves the mutex locked, as
 * for any task freed while holding it. */
static void mtx_unlink(csp__waiter_t *w)
{
    mutex_impl_t *m = w->obj;
    csp__spin_lock(&m->qlock);
    if (mw_of(w)->queued) {
        q_remove(m, w);
        mtx_drop_waiters(m, 1);
    } else if (w->result == MTX_GRANT_WOKEN) {
        /* relaxed: under qlock, world stopped */
        atomic_fetch_and_explicit(&m->state, ~MTX_WOKEN, memory_order_relaxed);
    }
    csp__spin_unlock(&m->qlock);
}

/* One try that fails only if the mutex is held (Go's TryLock). */
static int mtx_try(mutex_impl_t *m)
{
    uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
    while (!(old & (MTX_LOCKED | MTX_STARVING))) {
        /* acquire: pairs with the releasing CAS of the last unlock */
        if (atomic_compare_exchange_weak_explicit(&m->state, &old, old | MTX_LOCKED,
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
    return CSP_EAGAIN;
}

/* Go's lockSlow, with a deadline. nofail: keep trying through shutdown
 * (cond's relock). */
static CSP__NOINLINE int mtx_lock_slow(mutex_impl_t *m, csp_time_t deadline, bool nofail)
{
    mwaiter_t mw;
    csp_time_t since = 0;
    bool starving = false, awoke = false, requeue = false;
    int iter = 0;
    uint32_t old = atomic_load_explicit(&m->state, memory_order_relaxed);
    for (;;) {
        /* Spin while the mutex is held in normal mode. Setting WOKEN tells
         * unlock not to wake a waiter: we will take the mutex. */
        if ((old & (MTX_LOCKED | MTX_STARVING)) == MTX_LOCKED && mtx_can_spin(iter)) {
            /* relaxed: only a hint to unlockers */
            if (!awoke && !(old & MTX_WOKEN) && MTX_NWAIT(old) != 0 &&
                atomic_compare_exchange_weak_explicit(&m->state, &old, old | MTX_WOKEN,
                                                      memory_order_relaxed, memory_order_relaxed))
                awoke = true;
            mtx_do_spin();
            iter++;
            old = atomic_load_explicit(&m->state, memory_order_relaxed);
            continue;
        }
        if (!(old & (MTX_LOCKED | MTX_STARVING))) {
            uint32_t nw = old | MTX_LOCKED;
            if (awoke)
                nw &= ~MTX_WOKEN; /* the role ends with the acquisition */
            /* acquire: pairs with the releasing CAS of the last unlock */
            if (atomic_compare_exchange_weak_explicit(&m->state, &old, nw, memory_order_acquire,
                                                      memory_order_relaxed))
                return 0;
            continue;
        }

        /* Held: queue (the count changes only under qlock). */
        if (!since)
            since = csp_now();
        csp__spin_lock(&m->qlock);
        old = atomic_load_explicit(&m->state, memory_order_relaxed);
        bool queued = false;
        while (old & (MTX_LOCKED | MTX_STARVING)) {
            uint32_t nw = old + MTX_WAITER;
            if (starving)
                nw |= MTX_STARVING; /* LOCKED is set: STARVING implies LOCKED */
            if (awoke)
                nw &= ~MTX_WOKEN;
            /* relaxed: ordered by qlock (see mtx_drop_waiters) */
            if (atomic_compare_exchange_weak_explicit(&m->state, &old, nw, memory_order_relaxed,
                                                      memory_order_relaxed)) {
                queued = true;
                break;
            }
        }
        if (!queued) { /* released meanwhile: try to take it */
            csp__spin_unlock(&m->qlock);
            continue;
        }
        awoke = false;
        csp__waiter_init(&mw.w);
        mw.w.unlink = mtx_unlink;
        mw.w.obj = m;
        mw.w.what = m;
        mw.w.result = MTX_GRANT_NONE;
        mw.since = since;
        if (requeue)
            q_push_front(m, &mw.w); /* lost the race after a wake-up: stay first */
        else
            q_push_back(m, &mw.w);
        csp__spin_unlock(&m->qlock);
        requeue = true;

        uint32_t st = csp__waiter_wait(&mw.w, deadline, "mutex.lock");
        if (st == CSP__W_WOKEN) {
            /* acquire in csp__waiter_wait: w.result and, for a hand-off, the
             * previous owner's critical section are visible */
            if (mw.w.result == MTX_GRANT_HANDOFF)
                return 0;
            awoke = true;
            iter = 0;
            if (!starving && csp_now() - since > MTX_STARVE_NS)
                starving = true;
            old = atomic_load_explicit(&m->state, memory_order_relaxed);
            continue;
        }
        /* timed out or shut down: leave, unless a waker already unlinked us
         * (its claim failed; it did the accounting) */
        csp__spin_lock(&m->qlock);
        if (mw.queued) {
            q_remove(m, &mw.w);
            mtx_drop_waiters(m, 1);
        }
        csp__spin_unlock(&m->qlock);
        if (st == CSP__W_TIMEDOUT)
            return CSP_ETIMEDOUT;
        if (!nofail)
            return csp__shutdown_err();
        mtx_backoff();
        old = atomic_load_explicit(&m->state, memory_order_relaxed);
    }
}

/* ---- public API ---- */

CSP_EXTERN int csp_mutex_lock(csp_mutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    mutex_impl_t *m = (mutex_impl_t *)mm;
    uint32_t exp = 0;
    /* acquire: pairs with the releasing CAS of the last unlock */
    if (CSP__LIKELY(atomic_compare_exchange_strong_explicit(&m->state, &exp, MTX_LOCKED,
                                                            memory_order_acquire,
                                                            memory_order_relaxed)))
        return 0;
    return mtx_lock_slow(m, CSP_FOREVER, false);
}

CSP_EXTERN int csp_mutex_trylock(csp_mutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    return mtx_try((mutex_impl_t *)mm);
}

CSP_EXTERN int csp_mutex_lock_until(csp_mutex_t *mm, csp_time_t deadline)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    mutex_impl_t *m = (mutex_impl_t *)mm;
    uint32_t exp = 0;
    /* acquire: pairs with the releasing CAS of the last unlock */
    if (CSP__LIKELY(atomic_compare_exchange_strong_explicit(&m->state, &exp, MTX_LOCKED,
                                                            memory_order_acquire,
                                                            memory_order_relaxed)))
        return 0;
    if (deadline != CSP_FOREVER && (deadline == 0 || deadline <= csp_now())) {
        if (mtx_try(m) == 0)
            return 0;
        return deadline == 0 ? CSP_EAGAIN : CSP_ETIMEDOUT;
    }
    return mtx_lock_slow(m, deadline, false);
}

CSP_EXTERN int csp_mutex_unlock(csp_mutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    mutex_impl_t *m = (mutex_impl_t *)mm;
    uint32_t old = MTX_LOCKED;
    /* release: publishes the critical section (pairs with the acquiring CAS
     * in lock/trylock) */
    if (CSP__LIKELY(atomic_compare_exchange_strong_explicit(&m->state, &old, 0,
                                                            memory_order_release,
                                                            memory_order_relaxed)))
        return 0;
    return mtx_unlock_slow(m, old);
}

/* True if m is locked (by anyone). For cond's misuse check. */
bool csp__mutex_is_locked(csp_mutex_t *mm)
{
    mutex_impl_t *m = (mutex_impl_t *)mm;
    /* relaxed: a snapshot for a sanity check; the caller claims to hold m */
    return atomic_load_explicit(&m->state, memory_order_relaxed) & MTX_LOCKED;
}

/* Locks m even while the runtime shuts down (cond's relock: the caller must
 * hold m when cond_wait returns, whatever the result). Always 0. */
int csp__mutex_lock_nofail(csp_mutex_t *mm)
{
    mutex_impl_t *m = (mutex_impl_t *)mm;
    uint32_t exp = 0;
    /* acquire: pairs with the releasing CAS of the last unlock */
    if (atomic_compare_exchange_strong_explicit(&m->state, &exp, MTX_LOCKED, memory_order_acquire,
                                                memory_order_relaxed))
        return 0;
    return mtx_lock_slow(m, CSP_FOREVER, true);
}
