/* One way to wait: a waiter is a parked task or a blocked plain OS thread.
 *
 * Every blocking call in the library (sleep, WaitGroup, later channels,
 * mutexes, contexts) follows the same protocol, which is Go's sudog +
 * selectDone idea reduced to one word:
 *
 *   csp__waiter_init(&w);                 // on the waiter's own stack
 *   lock(obj); enqueue(obj, &w); unlock(obj);
 *   st = csp__waiter_wait(&w, deadline, "reason");
 *   if (st != CSP__W_WOKEN) { lock(obj); if still queued: dequeue(obj, &w); unlock(obj); }
 *
 * and a waker does
 *
 *   lock(obj); w = dequeue(obj); fill w->data / w->result; unlock(obj);
 *   csp__waiter_wake(w, CSP__W_WOKEN);   // false: it timed out or was shut down
 *
 * w->state goes WAITING -> exactly one of WOKEN / TIMEDOUT / SHUTDOWN, by one
 * compare-and-swap (acq_rel): the party that wins it, and only that party,
 * readies the task or wakes the thread. So a wait is woken exactly once, and
 * the permit rule of csp__park() (sched.h) makes the order of "ready" and
 * "park" irrelevant. The waker must not touch w after a successful
 * csp__waiter_wake() (the waiter may return and its stack frame is gone).
 *
 * Lost race after dequeue: a waker that took w off the queue and then wakes
 * it *after* dropping the object's lock (to keep lock hold times short, or
 * because the object may be freed once a waiter returns) may lose the CAS to
 * a timeout or shutdown. Such a waker uses csp__waiter_wake_dequeued(), which
 * acknowledges the failure (w->ack); the waiter, finding itself no longer
 * queued, calls csp__waiter_await_ack() before its frame goes away.
 *
 * Deadlines: a task arms w->timer (the timer fn is a CAS to TIMEDOUT); a
 * thread uses the futex timeout on w->state. Shutdown: tasks parked in a
 * wait are found by the stop-the-world sweep through t->waiter; threads
 * register on a global list while they wait.
 */
#ifndef CSP_WAIT_H
#define CSP_WAIT_H

#include "sched.h"

enum { CSP__W_WAITING = 0, CSP__W_WOKEN = 1, CSP__W_TIMEDOUT = 2, CSP__W_SHUTDOWN = 3,
       CSP__W_CLAIMED = 4 /* a waker won it and is still filling it in */,
       CSP__W_CANCELED = 5 /* its context is done (csp__waiter_wait_ctx) */ };

struct csp__waiter {
    csp__task_t      *task;    /* NULL: plain thread */
    _Atomic uint32_t  state;   /* CSP__W_*; the futex word for threads */
    int               result;  /* free for the waker (e.g. CSP_ECLOSED) */
    void             *data;    /* free for the operation (e.g. element buffer) */
    _Atomic uint32_t  ack;     /* 1: a dequeuing waker is done with this waiter */
    /* Removes the waiter from the object it is queued on, if it still is.
     * Called by the runtime's teardown (world stopped) for tasks that are
     * freed while waiting, so that objects outliving the runtime (a global
     * WaitGroup, a channel) hold no pointer into freed stacks. Every
     * primitive that queues waiters sets it (with obj). */
    void            (*unlink)(csp__waiter_t *w);
    void             *obj;
    /* the user-visible object waited on (a channel, a mutex, a context),
     * for dumps; NULL: several or none (select, sleep) */
    const void       *what;
    csp__waiter_t    *next, *prev;   /* the object's wait queue, under its lock */
    csp__timer_t      timer;   /* deadline (tasks) */
    csp__waiter_t    *tnext, *tprev; /* thread registry (shutdown), under its lock */
};

/* Prepares w for the running task, or the calling thread. */
void csp__waiter_init(csp__waiter_t *w);
/* Blocks until woken, the deadline passes or the runtime shuts down. Returns
 * the final state (never WAITING). The caller published w before calling
 * (or nobody else knows it: a plain sleep). */
uint32_t csp__waiter_wait(csp__waiter_t *w, csp_time_t deadline, const char *reason);
/* Two-phase wake for wakers that must write into the waiter's buffers only
 * if they win it (channels, select: "the buffers of cases not chosen are
 * untouched"): claim under the object's lock (WAITING -> CLAIMED), fill in,
 * then complete (-> WOKEN, ready / futex wake), possibly after unlocking.
 * A claimed waiter is never timed out or shut down: those CASes fail and
 * the waiter keeps waiting for the completion. */
static inline bool csp__waiter_claim(csp__waiter_t *w)
{
    uint32_t exp = CSP__W_WAITING;
    /* acquire: pairs with the waiter's initialisation / enqueue */
    return atomic_compare_exchange_strong_explicit(&w->state, &exp, CSP__W_CLAIMED,
                                                   memory_order_acquire, memory_order_relaxed);
}
void csp__waiter_complete(csp__waiter_t *w);

/* csp__waiter_wait that also ends (CSP__W_CANCELED) when ctx is done; ctx
 * NULL: plain csp__waiter_wait. If ctx is done already it returns
 * CSP__W_CANCELED without blocking, unless a waker got w first. The caller
 * maps CSP__W_CANCELED to csp_ctx_err(ctx). */
uint32_t csp__waiter_wait_ctx(csp__waiter_t *w, csp_ctx_t *ctx, csp_time_t deadline,
                              const char *reason);

/* Tries to finish w with state st. True if this call did it (and woke it). */
bool csp__waiter_wake(csp__waiter_t *w, uint32_t st);

/* For wakers that dequeued w and dropped the lock: wake, or acknowledge the
 * lost race so the waiter may go. Read w->next before calling. */
static inline bool csp__waiter_wake_dequeued(csp__waiter_t *w, uint32_t st)
{
    if (csp__waiter_wake(w, st))
        return true;
    /* release: our last access to w (pairs with csp__waiter_await_ack) */
    atomic_store_explicit(&w->ack, 1, memory_order_release);
    return false;
}
/* Waits until a dequeuing waker has acknowledged (see above). */
void csp__waiter_await_ack(csp__waiter_t *w);

/* Stop-the-world helper for csp_shutdown: wakes every thread waiter. */
void csp__waiters_shutdown_threads(void);

/* Maps a final waiter state to the public result. */
static inline int csp__waiter_err(uint32_t st)
{
    return st == CSP__W_WOKEN ? 0 : st == CSP__W_TIMEDOUT ? CSP_ETIMEDOUT : CSP_ESHUTDOWN;
}

#endif /* CSP_WAIT_H */
