/* Public timers on the workers' timer heaps (sched/timer.c).
 *
 * Kinds: AFTER (csp_after: the channel owns the timer and frees it on its
 * last release), CHAN (csp_timer_new: the timer owns its channel), TICKER
 * (CHAN with a period), FUNC (csp_after_func: spawns a task; refcounted:
 * the caller's handle + one while a run is pending).
 *
 * Go 1.23 "no stale values": stop and reset first remove the heap entry
 * (csp__timer_del returns only once a firing in progress has finished, since
 * timer functions run under the heap lock), then drain the channel. A value
 * sent before that is discarded; none can be sent after it.
 *
 * Invariants
 *   - t->lock serialises stop/reset/release on one timer.
 *   - Timer functions (fire_*) run under a heap lock: they only try_send (a
 *     channel lock ranks after heap locks) or spawn without switching.
 */
#include "chan_internal.h"
#include "sched/sched.h"

#include <stdlib.h>
#include <string.h>

enum { KIND_AFTER, KIND_CHAN, KIND_TICKER, KIND_FUNC };

struct csp_timer {
    csp__timer_t    tm;
    int             kind;
    csp_chan_t     *c;
    void          (*fn)(void *);
    void           *arg;
    csp_duration_t  period;   /* tickers */
    _Atomic int     refs;     /* FUNC: handle + pending run */
    csp__spinlock_t lock;
};

/* Enters the runtime (plain threads: hold off teardown). */
static bool enter(void)
{
    if (csp__cur_worker())
        return true;
    return csp__ext_enter(CSP__RT_RUNNING, CSP__RT_SHUTDOWN);
}

static void leave(void)
{
    if (!csp__cur_worker())
        csp__ext_exit();
}

static void fire_chan(csp__timer_t *tm)
{
    struct csp_timer *t = tm->arg;
    csp_time_t now = csp_now();
    (void)csp_chan_try_send(t->c, &now); /* full: the tick is dropped */
}

static void func_unref(struct csp_timer *t)
{
    if (atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1)
        free(t);
}

static void run_func(void *arg)
{
    struct csp_timer *t = arg;
    t->fn(t->arg);
    func_unref(t); /* the pending run's reference */
}

static void fire_func(csp__timer_t *tm)
{
    struct csp_timer *t = tm->arg;
    if (csp__spawn_nosched(run_func, t) != 0)
        func_unref(t); /* stopping: the call is dropped */
}

static void arm(struct csp_timer *t, csp_duration_t d)
{
    t->tm.period = t->kind == KIND_TICKER ? t->period : 0;
    csp__timer_add(&t->tm, csp_deadline_after(d > 0 ? d : 0));
}

static struct csp_timer *timer_make(int kind, csp_duration_t d, csp_duration_t period,
                                    void (*fn)(void *), void *arg)
{
    if (!enter())
        return NULL;
    struct csp_timer *t = calloc(1, sizeof *t);
    if (!t) {
        leave();
        return NULL;
    }
    t->kind = kind;
    t->period = period;
    t->fn = fn;
    t->arg = arg;
    t->tm.idx = -1;
    t->tm.arg = t;
    if (kind == KIND_FUNC) {
        t->tm.fn = fire_func;
        atomic_store_explicit(&t->refs, 2, memory_order_relaxed);
    } else {
        t->tm.fn = fire_chan;
        t->c = csp_chan_make(sizeof(csp_time_t), 1);
        if (!t->c) {
            free(t);
            leave();
            return NULL;
        }
    }
    arm(t, d);
    leave();
    return t;
}

CSP_EXTERN csp_chan_t *csp_after(csp_duration_t d)
{
    if (!enter())
        return NULL;
    struct csp_timer *t = calloc(1, sizeof *t);
    csp_chan_t *c = t ? csp_chan_make(sizeof(csp_time_t), 1) : NULL;
    if (!c) {
        free(t);
        leave();
        return NULL;
    }
    t->kind = KIND_AFTER;
    t->c = c;
    t->tm.idx = -1;
    t->tm.arg = t;
    t->tm.fn = fire_chan;
    csp__chan_set_timer(c, t);
    arm(t, d);
    leave();
    return c;
}

void csp__timer_chan_free(struct csp_timer *t)
{
    if (enter()) {
        csp__timer_del(&t->tm);
        leave();
    }
    free(t);
}

CSP_EXTERN csp_timer_t *csp_timer_new(csp_duration_t d)
{
    return timer_make(KIND_CHAN, d, 0, NULL, NULL);
}

CSP_EXTERN csp_timer_t *csp_ticker_new(csp_duration_t period)
{
    if (period <= 0)
        return NULL;
    return timer_make(KIND_TICKER, period, period, NULL, NULL);
}

CSP_EXTERN csp_timer_t *csp_after_func(csp_duration_t d, void (*fn)(void *), void *arg)
{
    if (!fn)
        return NULL;
    return timer_make(KIND_FUNC, d, 0, fn, arg);
}

/* Caller holds t->lock. Stops t: was a fire prevented? */
static int stop_locked(struct csp_timer *t)
{
    bool pending = false;
    if (enter()) {
        pending = csp__timer_del(&t->tm);
        leave();
    }
    if (t->kind == KIND_FUNC) {
        if (pending) /* the run that won't happen; the caller's handle keeps it > 0 */
            atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel);
        return pending;
    }
    size_t drained = csp__chan_drain(t->c);
    return pending || drained;
}

CSP_EXTERN int csp_timer_stop(csp_timer_t *t)
{
    if (!t)
        return 0;
    csp__spin_lock(&t->lock);
    int r = stop_locked(t);
    csp__spin_unlock(&t->lock);
    return r;
}

CSP_EXTERN int csp_timer_reset(csp_timer_t *t, csp_duration_t d)
{
    if (!t || (t->kind == KIND_TICKER && d <= 0))
        return CSP_EINVAL;
    csp__spin_lock(&t->lock);
    int r = stop_locked(t);
    if (t->kind == KIND_TICKER)
        t->period = d;
    if (enter()) {
        if (t->kind == KIND_FUNC)
            atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed); /* pending again */
        arm(t, d);
        leave();
    }
    csp__spin_unlock(&t->lock);
    return r;
}

CSP_EXTERN csp_chan_t *csp_timer_chan(csp_timer_t *t)
{
    return t && t->kind != KIND_FUNC ? t->c : NULL;
}

CSP_EXTERN void csp_timer_release(csp_timer_t *t)
{
    if (!t)
        return;
    if (t->kind == KIND_FUNC) {
        func_unref(t); /* a pending run keeps it alive */
        return;
    }
    csp_timer_stop(t);
    csp_chan_release(t->c);
    free(t);
}
