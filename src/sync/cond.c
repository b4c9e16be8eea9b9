/* csp_cond_t: Go's sync.Cond (sync/cond.go + runtime notifyList) for tasks
 * and plain threads.
 *
 * Layout (fits csp_cond_t's 4 opaque words; all-zero = no waiters):
 *   nwait  number of queued waiters: changed under `lock`, read without it by
 *          signal/broadcast's fast path (nobody waits: return at once)
 *   lock   csp__spinlock_t guarding the queue (head/tail, the waiters'
 *          links, cwaiter_t.queued) and nwait's changes
 *   head, tail  FIFO of waiter records on the waiters' stacks
 *
 * Go's notifyList gives each waiter a ticket (notifyListAdd, an atomic
 * increment done while the caller still holds L) and queues it later
 * (notifyListWait); signal wakes the waiter holding the oldest un-notified
 * ticket, so a signal never wakes a waiter that started waiting after it and
 * never wakes anyone spuriously. Here both steps are one: the waiter joins
 * the queue under `lock` while it still holds the mutex, so its queue
 * position is its ticket, and signal/broadcast (which take `lock`) see
 * exactly the waiters that started before them, oldest first.
 *
 * Invariants
 *   - With `lock` free: nwait == queue length.
 *   - A wait returns 0 only after a signal/broadcast claimed its waiter
 *     (two-phase claim of wait.h, under `lock`), so there are no spurious
 *     wake-ups. A waiter that timed out or was shut down cannot be claimed:
 *     signal unlinks it and goes on to the next one, so no signal is lost to
 *     a waiter that is leaving.
 *   - A waker touches an unclaimed waiter only under `lock`: no ack needed.
 *   - Every return of csp_cond_wait(_until) with a valid, locked mutex
 *     relocks it first, whatever the result (timeout and shutdown too). The
 *     relock itself ignores shutdown (it retries until the mutex is free):
 *     the caller must hold m on return. On shutdown a task yields before
 *     relocking, never while holding m.
 *
 * Memory orders: nwait is incremented with release before the waiter
 * unlocks the mutex and read with acquire by signal, which the caller
 * usually calls holding the mutex (so the increment happens-before the
 * read). Claimed waiters see the waker's writes through csp__waiter_complete
 * (release) / csp__waiter_wait (acquire).
 *
 * Lock order: `lock` is a leaf (rank 12): the mutex is locked and unlocked
 * only while `lock` is free; wakes happen after it is released.
 */
#define CSP__SPIN_RANK CSP__RANK_LEAF /* lock ranks: internal.h */
#include "../sched/wait.h"
#include "sync_internal.h"

typedef struct {
    _Atomic uint32_t nwait;
    csp__spinlock_t  lock;
    csp__waiter_t   *head, *tail; /* under lock */
    uint64_t         unused;
} cond_impl_t;

CSP__STATIC_ASSERT(sizeof(cond_impl_t) <= sizeof(csp_cond_t), "csp_cond_t too small");
CSP__STATIC_ASSERT(_Alignof(cond_impl_t) <= _Alignof(csp_cond_t), "csp_cond_t misaligned");

typedef struct {
    csp__waiter_t w;
    bool          queued; /* under lock */
} cwaiter_t;


static inline cwaiter_t *cw_of(csp__waiter_t *w)
{
    return csp__container_of(w, cwaiter_t, w);
}

/* ---- the queue (under lock) ---- */

static void cq_push_back(cond_impl_t *c, csp__waiter_t *w)
{
    w->next = NULL;
    w->prev = c->tail;
    if (c->tail)
        c->tail->next = w;
    else
        c->head = w;
    c->tail = w;
    cw_of(w)->queued = true;
    /* release: see the file comment (pairs with signal's acquire load) */
    atomic_fetch_add_explicit(&c->nwait, 1, memory_order_release);
}

static void cq_remove(cond_impl_t *c, csp__waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        c->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        c->tail = w->prev;
    w->next = w->prev = NULL;
    cw_of(w)->queued = false;
    /* relaxed: changed under lock; readers only use it as a hint */
    atomic_fetch_sub_explicit(&c->nwait, 1, memory_order_relaxed);
}

static csp__waiter_t *cq_pop(cond_impl_t *c)
{
    csp__waiter_t *w = c->head;
    if (w)
        cq_remove(c, w);
    return w;
}

/* Teardown hook (wait.h): a task freed while waiting leaves the queue. */
static void cond_unlink(csp__waiter_t *w)
{
    cond_impl_t *c = w->obj;
    csp__spin_lock(&c->lock);
    if (cw_of(w)->queued)
        cq_remove(c, w);
    csp__spin_unlock(&c->lock);
}

/* Wakes the oldest waiter that can be claimed; returns whether one was. */
static bool cond_signal_one(cond_impl_t *c)
{
    csp__waiter_t *w;
    csp__spin_lock(&c->lock);
    while ((w = cq_pop(c)) && !csp__waiter_claim(w))
        ; /* leaving (timed out, shut down): unlinked, skipped */
    csp__spin_unlock(&c->lock);
    if (w)
        csp__waiter_complete(w);
    return w != NULL;
}

CSP_EXTERN int csp_cond_wait_until(csp_cond_t *cc, csp_mutex_t *m, csp_time_t deadline)
{
    if (!cc || !m)
        return CSP_EINVAL;
    if (!csp__mutex_is_locked(m))
        return CSP_EINVAL;
    /* nothing can complete a wait without waiting: the poll form and a past
     * deadline fail at once, keeping m */
    if (deadline != CSP_FOREVER && (deadline == 0 || deadline <= csp_now()))
        return deadline == 0 ? CSP_EAGAIN : CSP_ETIMEDOUT;
    cond_impl_t *c = (cond_impl_t *)cc;

    cwaiter_t cw;
    csp__waiter_init(&cw.w);
    cw.w.unlink = cond_unlink;
    cw.w.obj = c;
    cw.w.what = c;
    csp__spin_lock(&c->lock);
    cq_push_back(c, &cw.w); /* the ticket: taken while we hold m */
    csp__spin_unlock(&c->lock);

    if (csp_mutex_unlock(m) != 0) {
        /* m was unlocked behind our back (misuse, racing the check above):
         * leave; if a signal already claimed us, pass it on */
        csp__spin_lock(&c->lock);
        bool was_queued = cw.queued;
        if (was_queued)
            cq_remove(c, &cw.w);
        csp__spin_unlock(&c->lock);
        if (!was_queued) {
            /* only a signal can have unlinked us before we waited (no timer,
             * no shutdown sweep knows the waiter yet): it claimed us and will
             * complete; wait for that, then hand the signal on */
            csp__waiter_wait(&cw.w, CSP_FOREVER, "cond.wait");
            cond_signal_one(c);
        }
        return CSP_EINVAL;
    }

    uint32_t st = csp__waiter_wait(&cw.w, deadline, "cond.wait");
    if (st != CSP__W_WOKEN) {
        /* timed out or shut down: leave, unless a signal already unlinked
         * us (its claim failed; it went on to the next waiter) */
        csp__spin_lock(&c->lock);
        if (cw.queued)
            cq_remove(c, &cw.w);
        csp__spin_unlock(&c->lock);
    }
    if (st == CSP__W_SHUTDOWN && csp__cur_task()) {
        /* The schedule point every failing call owes (csp__shutdown_err:
         * a task looping on cond_wait must reach one), taken *before* the
         * relock: a task the stopping runtime leaves there is freed without
         * holding m. */
        csp_yield();
    }
    csp__mutex_lock_nofail(m);
    if (st == CSP__W_WOKEN)
        return 0;
    if (st == CSP__W_TIMEDOUT)
        return CSP_ETIMEDOUT;
    return CSP_ESHUTDOWN;
}

CSP_EXTERN int csp_cond_wait(csp_cond_t *c, csp_mutex_t *m)
{
    return csp_cond_wait_until(c, m, CSP_FOREVER);
}

CSP_EXTERN int csp_cond_signal(csp_cond_t *cc)
{
    if (!cc)
        return CSP_EINVAL;
    cond_impl_t *c = (cond_impl_t *)cc;
    /* acquire: pairs with the waiter's release increment (fast path: no
     * waiter started before us) */
    if (atomic_load_explicit(&c->nwait, memory_order_acquire) == 0)
        return 0;
    cond_signal_one(c);
    return 0;
}

CSP_EXTERN int csp_cond_broadcast(csp_cond_t *cc)
{
    if (!cc)
        return CSP_EINVAL;
    cond_impl_t *c = (cond_impl_t *)cc;
    /* acquire: as in signal */
    if (atomic_load_explicit(&c->nwait, memory_order_acquire) == 0)
        return 0;
    /* claim everyone queued now; link the claimed through next (a claimed
     * waiter does not touch its links until completed) */
    csp__waiter_t *list = NULL, **tail = &list, *w;
    csp__spin_lock(&c->lock);
    while ((w = cq_pop(c))) {
        if (csp__waiter_claim(w)) {
            *tail = w;
            tail = &w->next;
        }
    }
    csp__spin_unlock(&c->lock);
    while (list) {
        csp__waiter_t *next = list->next; /* before the completion frees it */
        csp__waiter_complete(list);
        list = next;
    }
    return 0;
}
