/* Timers: one 4-ary min-heap per worker, each under its own spinlock.
 *
 * Invariants
 *   - A timer is queued on at most one heap; t->heap and t->idx are written
 *     only under that heap's lock; t->idx == -1 <=> not queued.
 *   - h->next_when == when of h->heap[0] (INT64_MAX when empty), updated under
 *     h->lock with seq_cst stores.
 *   - Timer functions run under h->lock, after the timer is removed from the
 *     heap. Hence csp__timer_del() returning means the function is not running
 *     and will not run. A timer function may re-add its own timer (tickers) and
 *     may ready tasks, but must not take a timer heap lock (lock order: heap
 *     locks are outermost, see sched.h).
 *
 * Who runs timers: a worker runs its own heap's due timers at schedule points
 * (sched.c); an idle worker runs any heap's due timers and is the one that
 * sleeps until the earliest timer (rt.timer_sleeper). Adding a timer earlier
 * than that sleeper's deadline wakes it (csp__timer_wake_sleeper). Cost:
 * O(log n) per add/del/fire with n timers on the heap.
 */
#define CSP__SPIN_RANK CSP__RANK_TIMER /* lock ranks: internal.h */
#include "sched.h"

#include <stdlib.h>

void csp__timers_init(csp__timers_t *h)
{
    atomic_store_explicit(&h->lock.v, 0, memory_order_relaxed);
    h->heap = NULL;
    h->len = h->cap = 0;
    atomic_store_explicit(&h->next_when, INT64_MAX, memory_order_relaxed);
}

void csp__timers_destroy(csp__timers_t *h)
{
    /* timers still queued belong to their owners (user timer objects): leave
     * them looking never-queued so a later stop/release doesn't touch the
     * freed heap */
    for (uint32_t i = 0; i < h->len; i++) {
        csp__timer_t *t = h->heap[i];
        t->idx = -1;
        t->period = 0;
        __atomic_store_n(&t->heap, NULL, __ATOMIC_RELEASE);
        __atomic_store_n(&t->last_heap, NULL, __ATOMIC_RELEASE);
    }
    free(h->heap);
    h->heap = NULL;
    h->len = h->cap = 0;
    atomic_store_explicit(&h->next_when, INT64_MAX, memory_order_relaxed);
}

static void sift_up(csp__timers_t *h, uint32_t i)
{
    csp__timer_t *t = h->heap[i];
    while (i > 0) {
        uint32_t p = (i - 1) / 4;
        if (h->heap[p]->when <= t->when)
            break;
        h->heap[i] = h->heap[p];
        h->heap[i]->idx = (int32_t)i;
        i = p;
    }
    h->heap[i] = t;
    t->idx = (int32_t)i;
}

static void sift_down(csp__timers_t *h, uint32_t i)
{
    csp__timer_t *t = h->heap[i];
    for (;;) {
        uint32_t c = 4 * i + 1, best = i;
        csp_time_t bw = t->when;
        for (uint32_t k = c; k < c + 4 && k < h->len; k++)
            if (h->heap[k]->when < bw) {
                bw = h->heap[k]->when;
                best = k;
            }
        if (best == i)
            break;
        h->heap[i] = h->heap[best];
        h->heap[i]->idx = (int32_t)i;
        i = best;
    }
    h->heap[i] = t;
    t->idx = (int32_t)i;
}

/* Caller holds h->lock. */
static void heap_remove(csp__timers_t *h, csp__timer_t *t)
{
    uint32_t i = (uint32_t)t->idx;
    h->len--;
    if (i != h->len) {
        h->heap[i] = h->heap[h->len];
        h->heap[i]->idx = (int32_t)i;
        sift_down(h, i);
        sift_up(h, (uint32_t)h->heap[i]->idx == i ? i : (uint32_t)h->heap[i]->idx);
    }
    t->idx = -1;
    /* release: pairs with csp__timer_del's acquire loads */
    __atomic_store_n(&t->last_heap, h, __ATOMIC_RELEASE);
    __atomic_store_n(&t->heap, NULL, __ATOMIC_RELEASE);
    /* seq_cst: see next_when in sched.h */
    atomic_store(&h->next_when, h->len ? h->heap[0]->when : INT64_MAX);
}

/* Caller holds h->lock. Returns false on allocation failure. */
static bool heap_push(csp__timers_t *h, csp__timer_t *t)
{
    if (h->len == h->cap) {
        uint32_t ncap = h->cap ? h->cap * 2 : 64;
        csp__timer_t **n = realloc(h->heap, ncap * sizeof *n);
        if (!n)
            return false;
        h->heap = n;
        h->cap = ncap;
    }
    h->heap[h->len] = t;
    __atomic_store_n(&t->heap, h, __ATOMIC_RELEASE); /* pairs with csp__timer_del */
    sift_up(h, h->len++);
    atomic_store(&h->next_when, h->heap[0]->when); /* seq_cst: see sched.h */
    return true;
}

void csp__timer_add(csp__timer_t *t, csp_time_t when)
{
    csp__worker_t *w = csp__cur_worker();
    if (!w)
        w = csp__rt.workers[0];
    csp__timers_t *h = &w->timers;
    t->when = when;
    t->idx = -1;
    t->gen = atomic_load_explicit(&csp__rt.gen, memory_order_relaxed);
    csp__spin_lock(&h->lock);
    while (CSP__UNLIKELY(!heap_push(h, t))) {
        /* out of memory growing the heap: rare; retry after yielding the lock */
        csp__spin_unlock(&h->lock);
        csp__cpu_relax();
        csp__spin_lock(&h->lock);
    }
    csp__spin_unlock(&h->lock);
    csp__timer_wake_sleeper(when);
}

bool csp__timer_del(csp__timer_t *t)
{
    /* a timer of a runtime that has stopped: its heaps are gone, and nothing
     * can run it any more */
    if (t->gen != atomic_load_explicit(&csp__rt.gen, memory_order_relaxed) ||
        atomic_load_explicit(&csp__rt.state, memory_order_acquire) < CSP__RT_RUNNING)
        return false;
    for (;;) {
        /* acquire: pairs with the release stores in heap_push/heap_remove */
        csp__timers_t *h = __atomic_load_n(&t->heap, __ATOMIC_ACQUIRE);
        if (!h) {
            /* Not queued. Its function may still be running on the heap it
             * was removed from, under that heap's lock: take the lock once to
             * wait for it. A periodic timer may have been re-queued then. */
            csp__timers_t *last = __atomic_load_n(&t->last_heap, __ATOMIC_ACQUIRE);
            if (!last)
                return false;
            csp__spin_lock(&last->lock);
            bool requeued = __atomic_load_n(&t->heap, __ATOMIC_ACQUIRE) != NULL;
            csp__spin_unlock(&last->lock);
            if (!requeued)
                return false;
            continue;
        }
        csp__spin_lock(&h->lock);
        if (__atomic_load_n(&t->heap, __ATOMIC_RELAXED) == h && t->idx >= 0) {
            t->period = 0; /* a stopped ticker stays stopped */
            heap_remove(h, t);
            csp__spin_unlock(&h->lock);
            return true;
        }
        csp__spin_unlock(&h->lock);
    }
}

int64_t csp__timers_run(csp__timers_t *h, csp_time_t now)
{
    if (atomic_load_explicit(&h->next_when, memory_order_relaxed) > now)
        return atomic_load_explicit(&h->next_when, memory_order_relaxed);
    if (!csp__spin_trylock(&h->lock))
        return atomic_load_explicit(&h->next_when, memory_order_relaxed);
    while (h->len && h->heap[0]->when <= now) {
        csp__timer_t *t = h->heap[0];
        heap_remove(h, t);
        /* A one-shot timer may be freed as soon as its function ran (an
         * after_func task on another worker), so don't touch it afterwards.
         * A periodic one can't: stopping it waits for this lock. */
        bool periodic = t->period > 0;
        t->fn(t); /* under the lock: see the file comment */
        if (periodic && t->period > 0) {
            /* periodic: next multiple of period after now (missed ticks are
             * dropped, like Go's ticker) */
            csp_time_t next = t->when + t->period;
            if (next <= now)
                next = now + t->period - (now - t->when) % t->period;
            t->when = next;
            if (!heap_push(h, t))
                t->period = 0; /* out of memory: the ticker stops */
        }
    }
    int64_t next = h->len ? h->heap[0]->when : INT64_MAX;
    csp__spin_unlock(&h->lock);
    return next;
}

int64_t csp__timers_earliest(void)
{
    int64_t m = INT64_MAX;
    for (int i = 0; i < csp__rt.nworkers; i++) {
        int64_t w = atomic_load(&csp__rt.workers[i]->timers.next_when); /* seq_cst */
        if (w < m)
            m = w;
    }
    return m;
}
