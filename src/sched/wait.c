/* Waiters: see wait.h for the protocol. */
#define _GNU_SOURCE
#include "wait.h"
#include "../ctx_internal.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

/* Plain threads blocked in a wait, for csp_shutdown. Lock order: taken alone. */
static pthread_mutex_t thread_waiters_lock = PTHREAD_MUTEX_INITIALIZER;
static csp__waiter_t *thread_waiters;

void csp__waiter_init(csp__waiter_t *w)
{
    w->task = csp__cur_task();
    atomic_store_explicit(&w->state, CSP__W_WAITING, memory_order_relaxed);
    w->result = 0;
    w->data = NULL;
    w->unlink = NULL;
    w->obj = NULL;
    w->what = NULL;
    atomic_store_explicit(&w->ack, 0, memory_order_relaxed);
    w->next = w->prev = NULL;
    memset(&w->timer, 0, sizeof w->timer);
    w->timer.idx = -1;
}

bool csp__waiter_wake(csp__waiter_t *w, uint32_t st)
{
    /* read before the CAS: once it succeeds a thread waiter may return and
     * its frame be reused at once */
    csp__task_t *t = w->task;
    uint32_t exp = CSP__W_WAITING;
    /* acq_rel: release publishes what the waker wrote into the waiter's data
     * (pairs with the acquire load in csp__waiter_wait); acquire orders our
     * reads of w->task after the waiter's initialisation. */
    if (!atomic_compare_exchange_strong_explicit(&w->state, &exp, st, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    if (t)
        csp__ready(t);
    else
        csp__futex_wake(&w->state, 1); /* harmless if the frame is already gone */
    return true;
}

void csp__waiter_complete(csp__waiter_t *w)
{
    csp__task_t *t = w->task; /* before the store: a thread waiter may return */
    /* release: publishes what the waker wrote (pairs with the waiter's acquire) */
    atomic_store_explicit(&w->state, CSP__W_WOKEN, memory_order_release);
    if (t)
        csp__ready(t);
    else
        csp__futex_wake(&w->state, 1);
}

static void waiter_timer_fn(csp__timer_t *tm)
{
    csp__waiter_wake((csp__waiter_t *)tm->arg, CSP__W_TIMEDOUT);
}


uint32_t csp__waiter_wait(csp__waiter_t *w, csp_time_t deadline, const char *reason)
{
    uint32_t exp = CSP__W_WAITING;
    if (w->task) {
        csp__task_t *t = w->task;
        bool armed = false;
        if (CSP__UNLIKELY(csp__shutting_down())) {
            if (atomic_compare_exchange_strong_explicit(&w->state, &exp, CSP__W_SHUTDOWN,
                                                        memory_order_acq_rel,
                                                        memory_order_acquire))
                return CSP__W_SHUTDOWN;
            /* someone else won: their csp__ready is coming; consume it */
        } else if (deadline != CSP_FOREVER) {
            if (deadline <= csp_now()) {
                if (atomic_compare_exchange_strong_explicit(&w->state, &exp, CSP__W_TIMEDOUT,
                                                            memory_order_acq_rel,
                                                            memory_order_acquire))
                    return CSP__W_TIMEDOUT;
            } else {
                w->timer.fn = waiter_timer_fn;
                w->timer.arg = w;
                csp__timer_add(&w->timer, deadline);
                armed = true;
            }
        }
        /* the shutdown sweep's hook (read with the world stopped), and what
         * dumps show (read racily: relaxed atomics). The park is timed only
         * once wait timing is on (a dump asked for it): the coarse clock
         * costs ~8 ns, a tenth of a channel hand-off. */
        t->waiter = w;
        __atomic_store_n(&t->wait_reason, reason, __ATOMIC_RELAXED);
        __atomic_store_n(&t->wait_obj, w->what, __ATOMIC_RELAXED);
        __atomic_store_n(&t->wait_since,
                         CSP__UNLIKELY(atomic_load_explicit(&csp__wait_timing, memory_order_relaxed))
                             ? csp__coarse_now()
                             : 0,
                         __ATOMIC_RELAXED);
        csp__park();
        t->waiter = NULL;
        if (armed)
            csp__timer_del(&w->timer);
        /* acquire: pairs with the winning CAS's release */
        return atomic_load_explicit(&w->state, memory_order_acquire);
    }

    /* plain thread */
    csp__mutex_lock(&thread_waiters_lock, CSP__RANK_THREADWAITERS);
    w->tprev = NULL;
    w->tnext = thread_waiters;
    if (thread_waiters)
        thread_waiters->tprev = w;
    thread_waiters = w;
    csp__mutex_unlock(&thread_waiters_lock);
    if (csp__shutting_down())
        csp__waiter_wake(w, CSP__W_SHUTDOWN);
    uint32_t st;
    while ((st = atomic_load_explicit(&w->state, memory_order_acquire)) == CSP__W_WAITING ||
           st == CSP__W_CLAIMED) {
        csp_time_t dl = st == CSP__W_CLAIMED ? CSP_FOREVER : deadline; /* completion is near */
        if (csp__futex_wait(&w->state, st, dl) == CSP_ETIMEDOUT) {
            exp = CSP__W_WAITING;
            atomic_compare_exchange_strong_explicit(&w->state, &exp, CSP__W_TIMEDOUT,
                                                    memory_order_acq_rel, memory_order_acquire);
        }
    }
    csp__mutex_lock(&thread_waiters_lock, CSP__RANK_THREADWAITERS);
    if (w->tprev)
        w->tprev->tnext = w->tnext;
    else
        thread_waiters = w->tnext;
    if (w->tnext)
        w->tnext->tprev = w->tprev;
    csp__mutex_unlock(&thread_waiters_lock);
    (void)reason;
    return st;
}

static void waiter_ctx_fn(csp__ctx_watch_t *wt)
{
    csp__waiter_wake((csp__waiter_t *)wt->arg, CSP__W_CANCELED);
}

uint32_t csp__waiter_wait_ctx(csp__waiter_t *w, csp_ctx_t *ctx, csp_time_t deadline,
                              const char *reason)
{
    if (!ctx)
        return csp__waiter_wait(w, deadline, reason);
    csp__ctx_watch_t wt = { .fn = waiter_ctx_fn, .arg = w };
    int r = csp__ctx_watch_add(ctx, &wt);
    if (r < 0) {
        uint32_t exp = CSP__W_WAITING;
        /* acq_rel: as csp__waiter_wake's CAS; losing means a waker claimed
         * or woke w, and csp__waiter_wait below consumes that wake-up */
        if (atomic_compare_exchange_strong_explicit(&w->state, &exp, CSP__W_CANCELED,
                                                    memory_order_acq_rel, memory_order_acquire))
            return CSP__W_CANCELED;
    }
    uint32_t st = csp__waiter_wait(w, deadline, reason);
    if (r == 0)
        csp__ctx_watch_del(&wt); /* takes the ctx lock: a firing watch has finished */
    return st;
}

void csp__waiter_await_ack(csp__waiter_t *w)
{
    unsigned spins = 0;
    /* acquire: pairs with csp__waiter_wake_dequeued's release */
    while (!atomic_load_explicit(&w->ack, memory_order_acquire)) {
        if (++spins < 100)
            csp__cpu_relax();
        else
            csp_yield();
    }
}

void csp__waiters_shutdown_threads(void)
{
    csp__mutex_lock(&thread_waiters_lock, CSP__RANK_THREADWAITERS);
    for (csp__waiter_t *w = thread_waiters; w; w = w->tnext)
        csp__waiter_wake(w, CSP__W_SHUTDOWN);
    csp__mutex_unlock(&thread_waiters_lock);
}
