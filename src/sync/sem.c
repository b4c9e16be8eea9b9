/* csp_sem_t: a weighted semaphore (golang.org/x/sync/semaphore.Weighted).
 *
 * Layout (csp_sem_t's words; all zero but _size = empty, unlocked):
 *   size    capacity (immutable after init)
 *   lock    csp__spinlock_t guarding cur and the queue
 *   cur     units held
 *   head/tail  FIFO of waiting acquirers (sem_waiter_t on their stacks)
 *
 * Invariants (under lock)
 *   - 0 <= cur <= size.
 *   - FIFO: while the queue is not empty, no acquire succeeds without
 *     queueing, so a large request at the head is not overtaken.
 *   - A queued waiter is either WAITING, or lost its CAS to a cancel /
 *     shutdown and is about to remove itself; release skips (and drops) the
 *     latter. Release grants a waiter by claiming it (WAITING -> CLAIMED),
 *     adding its n to cur and dequeueing it, all under the lock; it completes
 *     (wakes) it after unlocking. A claimed waiter is never cancelled, so it
 *     owns its units exactly when acquire returns 0.
 * Lock order: the semaphore lock is taken alone (waking happens after it).
 */
#define CSP__SPIN_RANK CSP__RANK_LEAF /* lock ranks: internal.h */
#include "../sched/wait.h"

#include <string.h>

typedef struct sem_waiter {
    csp__waiter_t      w;
    int64_t            n;
    struct sem_waiter *next, *prev;
    bool               queued;   /* under lock */
} sem_waiter_t;

typedef struct {
    int64_t          size;
    csp__spinlock_t  lock;
    int64_t          cur;
    sem_waiter_t    *head, *tail;
} sem_impl_t;

CSP__STATIC_ASSERT(sizeof(sem_impl_t) <= sizeof(csp_sem_t), "csp_sem_t too small");
CSP__STATIC_ASSERT(offsetof(sem_impl_t, size) == offsetof(csp_sem_t, _size), "size first");

static void q_push(sem_impl_t *s, sem_waiter_t *x)
{
    x->next = NULL;
    x->prev = s->tail;
    if (s->tail)
        s->tail->next = x;
    else
        s->head = x;
    s->tail = x;
    x->queued = true;
}

static void q_remove(sem_impl_t *s, sem_waiter_t *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        s->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    else
        s->tail = x->prev;
    x->next = x->prev = NULL;
    x->queued = false;
}

/* Grants units to queued waiters in order while they fit (lock held).
 * Returns the claimed waiters (linked by next) to complete after unlocking. */
static sem_waiter_t *grant_locked(sem_impl_t *s)
{
    sem_waiter_t *wake = NULL, **tail = &wake;
    sem_waiter_t *x;
    while ((x = s->head)) {
        if (s->size - s->cur < x->n)
            break; /* FIFO: nobody overtakes the head */
        q_remove(s, x);
        if (!csp__waiter_claim(&x->w))
            continue; /* cancelled or shut down: it removes itself (already done) */
        s->cur += x->n;
        *tail = x;
        tail = &x->next;
    }
    return wake;
}

static void complete_all(sem_waiter_t *x)
{
    while (x) {
        sem_waiter_t *next = x->next; /* before completing: the frame may go */
        csp__waiter_complete(&x->w);
        x = next;
    }
}

static void sem_unlink(csp__waiter_t *w)
{
    sem_waiter_t *x = (sem_waiter_t *)w;
    sem_impl_t *s = w->obj;
    csp__spin_lock(&s->lock);
    if (x->queued)
        q_remove(s, x);
    csp__spin_unlock(&s->lock);
}

CSP_EXTERN int csp_sem_init(csp_sem_t *s, int64_t size)
{
    if (!s || size < 0)
        return CSP_EINVAL;
    sem_impl_t *m = (sem_impl_t *)s;
    memset(s, 0, sizeof *s);
    m->size = size;
    return 0;
}

static int check(sem_impl_t *m, int64_t n)
{
    if (!m || n < 0 || n > m->size)
        return CSP_EINVAL;
    return 0;
}

CSP_EXTERN int csp_sem_try_acquire(csp_sem_t *s, int64_t n)
{
    sem_impl_t *m = (sem_impl_t *)s;
    int r = check(m, n);
    if (r)
        return r;
    csp__spin_lock(&m->lock);
    if (!m->head && m->size - m->cur >= n) {
        m->cur += n;
        r = 0;
    } else {
        r = CSP_EAGAIN;
    }
    csp__spin_unlock(&m->lock);
    return r;
}

CSP_EXTERN int csp_sem_acquire(csp_sem_t *s, int64_t n, csp_ctx_t *ctx)
{
    sem_impl_t *m = (sem_impl_t *)s;
    int r = check(m, n);
    if (r || !ctx)
        return r ? r : CSP_EINVAL;
    csp__spin_lock(&m->lock);
    if (!m->head && m->size - m->cur >= n) {
        m->cur += n;
        csp__spin_unlock(&m->lock);
        return 0;
    }
    int e = csp_ctx_err(ctx);
    if (e || csp__shutting_down()) {
        csp__spin_unlock(&m->lock);
        return e ? e : csp__shutdown_err();
    }
    sem_waiter_t x;
    csp__waiter_init(&x.w);
    x.w.unlink = sem_unlink;
    x.w.obj = m;
    x.w.what = m;
    x.n = n;
    q_push(m, &x);
    csp__spin_unlock(&m->lock);

    uint32_t st = csp__waiter_wait_ctx(&x.w, ctx, CSP_FOREVER, "sem.acquire");
    if (st == CSP__W_WOKEN)
        return 0;
    /* cancelled or shut down: leave the queue; if we were the head, the ones
     * behind us may fit now (Go's notifyWaiters on cancel) */
    csp__spin_lock(&m->lock);
    sem_waiter_t *wake = NULL;
    if (x.queued) {
        bool was_head = m->head == &x;
        q_remove(m, &x);
        if (was_head)
            wake = grant_locked(m);
    }
    csp__spin_unlock(&m->lock);
    complete_all(wake);
    return st == CSP__W_CANCELED ? csp_ctx_err(ctx) : csp__shutdown_err();
}

CSP_EXTERN int csp_sem_release(csp_sem_t *s, int64_t n)
{
    sem_impl_t *m = (sem_impl_t *)s;
    if (!m || n < 0)
        return CSP_EINVAL;
    csp__spin_lock(&m->lock);
    if (n > m->cur) {
        csp__spin_unlock(&m->lock);
        return CSP_EINVAL;
    }
    m->cur -= n;
    sem_waiter_t *wake = grant_locked(m);
    csp__spin_unlock(&m->lock);
    complete_all(wake);
    return 0;
}
