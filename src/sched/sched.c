/* The scheduler: workers, run queues, spawn, yield, park/ready, start/stop.
 *
 * Model (Go's G/M/P with M and P fused into a worker; see sched.h for the
 * glossary and docs/internals/design.md for the rationale):
 *   - Each worker owns a bounded run queue (Go's runq: a 256-slot ring; the
 *     owner puts at the tail, owner and thieves take at the head with a CAS)
 *     and a runnext slot (the task readied or spawned last runs next).
 *   - A global queue (mutex) takes overflow and tasks made runnable by plain
 *     threads; every 61st schedule looks at it first so it can't starve.
 *   - An idle worker: global queue, then steals from a random victim: the
 *     oldest continuation plus up to half of the rest of its deque (onto
 *     the thief's own deque), or half of its ring (4 rounds over all
 *     victims, runnext on the last), then sleeps on its futex. At most half
 *     of the busy workers spin (Go's rule).
 *   - Tasks switch directly to the next runnable task when the local queue
 *     has one (one context switch per yield/park); otherwise they switch to
 *     the worker's scheduler loop (g0).
 *
 * Invariants
 *   - A task is in at most one place: running on one worker, in one run queue
 *     slot / runnext / the global queue / a pinned inbox, parked, or free.
 *   - Only the context that switches *to* a task's successor publishes the
 *     task that was switched away from (post-switch step, sched.h).
 *   - No lost wake-ups: whoever makes work runnable calls csp__wakep() after a
 *     seq_cst fence; a worker going to sleep first registers as idle (seq_cst
 *     RMW on npidle) and stops spinning, then re-checks every queue, then
 *     sleeps on park_seq read *before* that re-check (Dekker pairing).
 *   - An idle runtime uses no CPU: sleeping workers are in futex_wait, with a
 *     timeout only for the single timer sleeper.
 *
 * Thread-locals: tls_worker is read only through csp__cur_worker() (noipa),
 * and re-read after every switch, because a task may resume on another
 * worker (docs/internals/threads.md).
 */
#define _GNU_SOURCE
#define CSP__SPIN_RANK CSP__RANK_PIN /* lock ranks: internal.h */
#include "sched.h"
#include "wait.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#if defined(CSP_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(CSP_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

csp__runtime_t csp__rt;
__thread csp__worker_t *csp__tls_worker __attribute__((tls_model("initial-exec")));
#define tls_worker csp__tls_worker
static pthread_mutex_t rt_lifecycle = PTHREAD_MUTEX_INITIALIZER;

/* The portable accessor: noipa, so the compiler can't assume two calls
 * return the same thread's value. */
CSP__NOIPA csp__worker_t *csp__cur_worker_slow(void)
{
    return tls_worker;
}

csp__task_t *csp__cur_task(void)
{
    csp__worker_t *w = csp__cur_worker();
    return w ? w->cur : NULL;
}

/* ------------------------------------------------------------------ */
/* run queue (Go's runq)                                               */

static bool cq_empty(csp__worker_t *v);
static csp__task_t *cq_pop(csp__worker_t *w);

/* gq_lock held: room for n more tasks. False if out of memory. */
static bool gq_reserve(uint32_t n)
{
    uint32_t len = atomic_load_explicit(&csp__rt.gq_n, memory_order_relaxed);
    if (len + n <= csp__rt.gq_cap)
        return true;
    uint32_t cap = csp__rt.gq_cap ? csp__rt.gq_cap : 256;
    while (cap < len + n)
        cap *= 2;
    csp__task_t **nb = malloc((size_t)cap * sizeof *nb);
    if (!nb)
        return false;
    for (uint32_t i = 0; i < len; i++)
        nb[i] = csp__rt.gq_buf[(csp__rt.gq_first + i) % csp__rt.gq_cap];
    free(csp__rt.gq_buf);
    csp__rt.gq_buf = nb;
    csp__rt.gq_cap = cap;
    csp__rt.gq_first = 0;
    return true;
}

/* gq_lock held, room reserved. */
static inline void gq_append_locked(csp__task_t *t)
{
    uint32_t len = atomic_load_explicit(&csp__rt.gq_n, memory_order_relaxed);
    csp__rt.gq_buf[(csp__rt.gq_first + len) % csp__rt.gq_cap] = t;
    atomic_store_explicit(&csp__rt.gq_n, len + 1, memory_order_relaxed);
}

/* Locks gq_lock with room for n more tasks (retrying while out of memory:
 * rare, and the queue only ever needs a bounded batch at a time). */
static void gq_lock_room(uint32_t n)
{
    csp__mutex_lock(&csp__rt.gq_lock, CSP__RANK_GQ);
    while (CSP__UNLIKELY(!gq_reserve(n))) {
        csp__mutex_unlock(&csp__rt.gq_lock);
        sched_yield();
        csp__mutex_lock(&csp__rt.gq_lock, CSP__RANK_GQ);
    }
}

/* Owner only. Moves half of the local queue plus t to the global queue.
 * False if a thief raced us (retry the fast path). */
static bool runq_put_slow(csp__worker_t *w, csp__task_t *t, uint32_t h, uint32_t tl)
{
    csp__task_t *batch[CSP__RUNQ_SIZE / 2 + 1];
    uint32_t n = (tl - h) / 2;
    for (uint32_t i = 0; i < n; i++)
        batch[i] = atomic_load_explicit(&w->runq[(h + i) % CSP__RUNQ_SIZE], memory_order_relaxed);
    /* release: commits the consume (pairs with the acquire loads of head) */
    if (!atomic_compare_exchange_strong_explicit(&w->runq_head, &h, h + n, memory_order_release,
                                                 memory_order_relaxed))
        return false;
    batch[n] = t;
    gq_lock_room(n + 1);
    for (uint32_t i = 0; i <= n; i++)
        gq_append_locked(batch[i]);
    csp__mutex_unlock(&csp__rt.gq_lock);
    return true;
}

static bool cq_push(csp__worker_t *w, csp__task_t *t);

/* Owner only. next: put t in runnext; the task it displaces goes on the
 * LIFO deque (not the FIFO tail as in Go: a parent that spawned two children
 * then finds the younger sibling of the one that just finished, so
 * fork-join runs depth-first with O(depth) live stacks instead of
 * breadth-first with O(n)). Yields and overflow go to the FIFO tail. */
static void runq_put(csp__worker_t *w, csp__task_t *t, bool next)
{
    if (next) {
        t = atomic_exchange_explicit(&w->runnext, t, memory_order_acq_rel);
        if (!t)
            return;
        /* The displaced task: a child that never ran goes to the LIFO
         * deque, which makes fork-join depth-first (sum: 1.7 s -> 0.13 s);
         * a task that was woken goes to the FIFO tail, as in Go, so a cycle
         * of tasks readying each other through runnext cannot starve it
         * (the streak limit serves the FIFO queue). Found by the pipeline
         * stress test: a LIFO for woken tasks starved a chain forever. */
        if (t->fresh && cq_push(w, t))
            return;
    }
    for (;;) {
        /* acquire: pairs with consumers' release CAS on head */
        uint32_t h = atomic_load_explicit(&w->runq_head, memory_order_acquire);
        uint32_t tl = atomic_load_explicit(&w->runq_tail, memory_order_relaxed);
        if (tl - h < CSP__RUNQ_SIZE) {
            atomic_store_explicit(&w->runq[tl % CSP__RUNQ_SIZE], t, memory_order_relaxed);
            /* release: makes the slot available to consumers */
            atomic_store_explicit(&w->runq_tail, tl + 1, memory_order_release);
            return;
        }
        if (runq_put_slow(w, t, h, tl))
            return;
    }
}

/* Owner only. */
static csp__task_t *runq_get(csp__worker_t *w)
{
    csp__task_t *next;
    if (CSP__LIKELY(w->runnext_streak < 32)) {
        next = atomic_load_explicit(&w->runnext, memory_order_relaxed);
        if (next && atomic_compare_exchange_strong_explicit(&w->runnext, &next, NULL,
                                                            memory_order_acquire,
                                                            memory_order_relaxed)) {
            w->runnext_streak++;
            return next;
        }
        if ((next = cq_pop(w))) {
            w->runnext_streak++;
            return next;
        }
    }
    w->runnext_streak = 0;
    for (;;) {
        uint32_t h = atomic_load_explicit(&w->runq_head, memory_order_acquire);
        uint32_t tl = atomic_load_explicit(&w->runq_tail, memory_order_relaxed);
        if (tl == h)
            break;
        csp__task_t *t = atomic_load_explicit(&w->runq[h % CSP__RUNQ_SIZE], memory_order_relaxed);
        /* release: commits the consume */
        if (atomic_compare_exchange_strong_explicit(&w->runq_head, &h, h + 1, memory_order_release,
                                                    memory_order_relaxed)) {
            /* Warm the next task's struct (saved registers; its stack top is
             * on the same page) while this one runs: every task lives in its
             * own stack slot, so a burst of woken tasks is a string of
             * cache and TLB misses. A stale slot only wastes the prefetch. */
            if (h + 1 != tl)
                __builtin_prefetch(
                    atomic_load_explicit(&w->runq[(h + 1) % CSP__RUNQ_SIZE], memory_order_relaxed));
            return t;
        }
    }
    /* the queue was empty: runnext and continuations, even past the streak limit */
    next = atomic_load_explicit(&w->runnext, memory_order_relaxed);
    if (next && atomic_compare_exchange_strong_explicit(&w->runnext, &next, NULL,
                                                        memory_order_acquire, memory_order_relaxed))
        return next;
    return cq_pop(w);
}

static bool runq_empty(csp__worker_t *v)
{
    if (!cq_empty(v))
        return false;
    /* seq_cst loads: the re-check half of the sleep protocol */
    uint32_t h = atomic_load(&v->runq_head);
    uint32_t t = atomic_load(&v->runq_tail);
    return h == t && atomic_load(&v->runnext) == NULL;
}

/* Any worker. Grabs half of v's queue into w's ring starting at index bh. */
static uint32_t runq_grab(csp__worker_t *v, csp__worker_t *w, uint32_t bh, bool steal_runnext)
{
    for (;;) {
        uint32_t h = atomic_load_explicit(&v->runq_head, memory_order_acquire);
        /* acquire: pairs with the owner's release store of tail */
        uint32_t t = atomic_load_explicit(&v->runq_tail, memory_order_acquire);
        uint32_t n = t - h;
        /* A lone queued task is left to its (running) owner until the last
         * round, as runnext is: in a handoff between a few tasks (one
         * receiver selecting over two producers) each wake-up displaces the
         * previous runnext into the ring, and a thief taking that one task
         * moves the conversation across cores for every item. select2 was
         * bimodal, ~160 or ~380 ns/item, run to run; it is ~150 with this.
         * The cost: such a task waits up to the spin window (50 us) behind a
         * busy owner before a thief takes it. */
        if (n == 1 && !steal_runnext)
            return 0;
        n = n - n / 2;
        if (n == 0) {
            if (steal_runnext) {
                csp__task_t *next = atomic_load_explicit(&v->runnext, memory_order_relaxed);
                if (next && atomic_compare_exchange_strong_explicit(&v->runnext, &next, NULL,
                                                                    memory_order_acquire,
                                                                    memory_order_relaxed)) {
                    atomic_store_explicit(&w->runq[bh % CSP__RUNQ_SIZE], next, memory_order_relaxed);
                    return 1;
                }
            }
            return 0;
        }
        if (n > CSP__RUNQ_SIZE / 2)
            continue; /* inconsistent h and t */
        for (uint32_t i = 0; i < n; i++) {
            csp__task_t *x = atomic_load_explicit(&v->runq[(h + i) % CSP__RUNQ_SIZE], memory_order_relaxed);
            atomic_store_explicit(&w->runq[(bh + i) % CSP__RUNQ_SIZE], x, memory_order_relaxed);
        }
        /* release: commits the consume */
        if (atomic_compare_exchange_strong_explicit(&v->runq_head, &h, h + n, memory_order_release,
                                                    memory_order_relaxed))
            return n;
    }
}

/* w steals from v. Returns a task to run, or NULL.
 *
 * The grab copies up to half of v's ring into w's ring past w's tail, which
 * is only safe while w's ring is empty: with k tasks already there, k + n >
 * CSP__RUNQ_SIZE wraps over w's own head and duplicates or loses tasks. A
 * spinning worker's ring is not always empty here: the timers it runs (its
 * own between spin rounds, a victim's in the last round) ready tasks into
 * it, a burst of hundreds when many sleepers are due together. So w runs its
 * own work first, as Go's stealWork re-checks runqget after checkTimers.
 * Found with 10,000 sleepers on 8 workers (test_sleep) once idle workers were
 * slowed down: a task ran twice, and its slot was freed twice. The test is
 * test_timer_burst_then_steal (it crashes at once without this check). */
static csp__task_t *runq_steal(csp__worker_t *w, csp__worker_t *v, bool steal_runnext)
{
    uint32_t t = atomic_load_explicit(&w->runq_tail, memory_order_relaxed);
    /* acquire: pairs with the release CAS of whoever last took from our head */
    if (atomic_load_explicit(&w->runq_head, memory_order_acquire) != t)
        return runq_get(w);
    uint32_t n = runq_grab(v, w, t, steal_runnext);
    if (n == 0)
        return NULL;
    n--;
    csp__task_t *gp = atomic_load_explicit(&w->runq[(t + n) % CSP__RUNQ_SIZE], memory_order_relaxed);
    if (n == 0)
        return gp;
    /* release: publishes the grabbed slots */
    atomic_store_explicit(&w->runq_tail, t + n, memory_order_release);
    return gp;
}

/* ------------------------------------------------------------------ */
/* continuation deque (Chase-Lev; Le, Pop, Cohen, Zappa Nardelli 2013)  */
/* seq_cst operations stand in for the paper's fences so that TSan, which
 * does not model fences, sees every happens-before edge. */

/* Owner only. False when full. */
static bool cq_push(csp__worker_t *w, csp__task_t *t)
{
    int64_t b = atomic_load_explicit(&w->cq_bottom, memory_order_relaxed);
    int64_t top = atomic_load_explicit(&w->cq_top, memory_order_acquire);
    if (b - top >= CSP__CQ_SIZE)
        return false;
    atomic_store_explicit(&w->cq_buf[b % CSP__CQ_SIZE], t, memory_order_relaxed);
    /* release: publishes the slot (and the task) to thieves' acquire of bottom */
    atomic_store_explicit(&w->cq_bottom, b + 1, memory_order_release);
    return true;
}

/* Owner only: the newest continuation. */
static csp__task_t *cq_pop(csp__worker_t *w)
{
    int64_t b = atomic_load_explicit(&w->cq_bottom, memory_order_relaxed) - 1;
    if (b < atomic_load_explicit(&w->cq_top, memory_order_relaxed))
        return NULL; /* cheap empty check; top only grows */
    /* seq_cst store then seq_cst load of top: the paper's full fence between
     * them (pairs with the thief's seq_cst load of top then of bottom) */
    atomic_store(&w->cq_bottom, b);
    int64_t top = atomic_load(&w->cq_top);
    if (top > b) {
        atomic_store_explicit(&w->cq_bottom, b + 1, memory_order_relaxed);
        return NULL;
    }
    csp__task_t *t = atomic_load_explicit(&w->cq_buf[b % CSP__CQ_SIZE], memory_order_relaxed);
    if (top == b) {
        /* the last one: race the thieves for it */
        if (!atomic_compare_exchange_strong(&w->cq_top, &top, top + 1))
            t = NULL;
        atomic_store_explicit(&w->cq_bottom, b + 1, memory_order_relaxed);
    }
    return t;
}

/* Any worker: the oldest continuation of v, or NULL (empty or lost a race). */
static csp__task_t *cq_steal(csp__worker_t *v)
{
    int64_t top = atomic_load(&v->cq_top);
    int64_t b = atomic_load(&v->cq_bottom); /* seq_cst; acquire pairs with cq_push */
    if (top >= b)
        return NULL;
    csp__task_t *t = atomic_load_explicit(&v->cq_buf[top % CSP__CQ_SIZE], memory_order_relaxed);
    if (!atomic_compare_exchange_strong(&v->cq_top, &top, top + 1))
        return NULL;
    return t;
}

/* Any worker w with an empty deque of its own (it is looking for work):
 * steals the oldest continuation of v to run now, and then up to half of
 * what v has left (at most CSP__CQ_BATCH), one standard steal (CAS on top)
 * each, onto w's own deque. Chase-Lev allows no multi-item CAS: the owner
 * takes all but the last item without one.
 *
 * Why a batch: a spawn loop of tiny tasks (the wg benchmark: 100,000 tasks
 * that only call csp_wg_done) keeps up to 32 fresh children in its deque.
 * Stolen one per trip, the thief paid a whole search, a spinning hand-off
 * (two RMWs on nspinning, which every spawn's wakep reads) and a cq_top
 * miss in the spawner per task: 400-700k steals per 1M tasks, and on this
 * host, where a cross-core round trip is 100 or 500 ns depending on where
 * the hypervisor put the vCPUs, rounds of 12 or 40 ms. With the batch:
 * 20-100k steals, 8-11 or ~27 ms (Go: 27-37 or 54-78 ms).
 * Why onto w's deque and not its FIFO ring: w then pops them LIFO, so
 * each stolen fresh subtree runs depth-first to completion before the next
 * starts, and fork-join keeps its space bound. Into the ring, help-first
 * sum ran stolen subtrees breadth-first and was 3.5x slower. The tasks
 * were live already, so the batch adds no stacks. */
#define CSP__CQ_BATCH 16
static csp__task_t *cq_steal_batch(csp__worker_t *w, csp__worker_t *v)
{
    csp__task_t *first = cq_steal(v);
    if (!first)
        return NULL;
    /* seq_cst loads, a hint only: each steal below re-checks */
    int64_t n = (atomic_load(&v->cq_bottom) - atomic_load(&v->cq_top)) / 2;
    if (n > CSP__CQ_BATCH)
        n = CSP__CQ_BATCH;
    csp__task_t *got[CSP__CQ_BATCH];
    int k = 0;
    while (k < n) {
        csp__task_t *x = cq_steal(v);
        if (!x)
            break;
        got[k++] = x;
    }
    /* newest first, so that w pops the oldest (the next one v would have
     * given a thief) first */
    while (k > 0) {
        csp__task_t *x = got[--k];
        if (CSP__UNLIKELY(!cq_push(w, x)))
            runq_put(w, x, false); /* not reached while w's deque was empty */
    }
    return first;
}

/* w (spinning) looks at v's deque at time now: may it steal? Only once the
 * oldest entry has waited CSP__CQ_STEAL_AGE: v's top has not moved for that
 * long while the deque was not empty (top moves only when the oldest entry
 * is taken; w remembers the top it saw there and when).
 *
 * Why: a loop that spawns tiny tasks (spawn, wg: tasks that only call
 * csp_wg_done) keeps its deque short - the spawner yields at 32 queued, and
 * its worker runs them LIFO in ~2 us - so a thief that takes them moves
 * each task's struct, stack and WaitGroup line to another core and back. At
 * 2 workers that was 2-3x slower than at 1 (spawn ~130 vs 56 ns per task),
 * and worse the farther apart the hypervisor put the two vCPUs. With the
 * age: 10k steal trips per 1M tasks instead of 20-100k, spawn 80-100 ns.
 * Entries do age in such a loop too - LIFO leaves the oldest at the top
 * while the spawner keeps refilling the bottom - and are then stolen, as
 * they should be. Work that takes longer than the age per task is stolen
 * as before, 5 us later; a fork-join's few steals (a few hundred per
 * second in sum) each take a big subtree. No exception for the spin's
 * last round: a deque whose top keeps moving is being served. */
#define CSP__CQ_STEAL_AGE (5 * CSP_MICROSECOND)
static bool cq_aged(csp__worker_t *w, csp__worker_t *v, csp_time_t now)
{
    /* acquire: pairs with the owner's release of bottom (a hint here; the
     * steal re-checks) */
    int64_t top = atomic_load_explicit(&v->cq_top, memory_order_acquire);
    if (top >= atomic_load_explicit(&v->cq_bottom, memory_order_acquire))
        return false;
    struct csp__cq_seen *seen = &w->cq_seen[v->id];
    if (seen->top != top) {
        seen->top = top;
        seen->at = now;
        return false;
    }
    return now - seen->at >= CSP__CQ_STEAL_AGE;
}

static bool cq_empty(csp__worker_t *v)
{
    return atomic_load(&v->cq_top) >= atomic_load(&v->cq_bottom);
}

/* ------------------------------------------------------------------ */
/* global queue                                                        */

static void gq_put(csp__task_t *t)
{
    gq_lock_room(1);
    uint32_t len = atomic_load_explicit(&csp__rt.gq_n, memory_order_relaxed);
    csp__rt.gq_buf[(csp__rt.gq_first + len) % csp__rt.gq_cap] = t;
    atomic_store(&csp__rt.gq_n, len + 1); /* seq_cst: the sleep protocol's re-check */
    csp__mutex_unlock(&csp__rt.gq_lock);
}

/* Owner w. Takes a fair share of the global queue; returns one, queues the rest. */
static csp__task_t *gq_get(csp__worker_t *w, uint32_t max)
{
    if (atomic_load_explicit(&csp__rt.gq_n, memory_order_relaxed) == 0)
        return NULL;
    csp__mutex_lock(&csp__rt.gq_lock, CSP__RANK_GQ);
    uint32_t avail = atomic_load_explicit(&csp__rt.gq_n, memory_order_relaxed);
    uint32_t n = avail / (uint32_t)csp__rt.nworkers + 1;
    if (n > avail)
        n = avail;
    if (max && n > max)
        n = max;
    if (n > CSP__RUNQ_SIZE / 2)
        n = CSP__RUNQ_SIZE / 2;
    csp__task_t *batch[CSP__RUNQ_SIZE / 2];
    for (uint32_t i = 0; i < n; i++)
        batch[i] = csp__rt.gq_buf[(csp__rt.gq_first + i) % csp__rt.gq_cap];
    if (n) {
        csp__rt.gq_first = (csp__rt.gq_first + n) % csp__rt.gq_cap;
        atomic_store_explicit(&csp__rt.gq_n, avail - n, memory_order_relaxed);
    }
    csp__mutex_unlock(&csp__rt.gq_lock);
    if (!n)
        return NULL;
    for (uint32_t i = 1; i < n; i++)
        runq_put(w, batch[i], false);
    return batch[0];
}

/* ------------------------------------------------------------------ */
/* pinned tasks                                                         */

static void pin_push(csp__worker_t *w, csp__task_t *t)
{
    t->next = NULL;
    csp__spin_lock(&w->pin_lock);
    if (w->pin_tail)
        w->pin_tail->next = t;
    else
        w->pin_head = t;
    w->pin_tail = t;
    atomic_store(&w->pin_n, atomic_load_explicit(&w->pin_n, memory_order_relaxed) + 1);
    csp__spin_unlock(&w->pin_lock);
}

static csp__task_t *pin_pop(csp__worker_t *w)
{
    if (!atomic_load_explicit(&w->pin_n, memory_order_relaxed))
        return NULL;
    csp__spin_lock(&w->pin_lock);
    csp__task_t *t = w->pin_head;
    if (t) {
        w->pin_head = t->next;
        if (!w->pin_head)
            w->pin_tail = NULL;
        atomic_store_explicit(&w->pin_n, atomic_load_explicit(&w->pin_n, memory_order_relaxed) - 1,
                              memory_order_relaxed);
    }
    csp__spin_unlock(&w->pin_lock);
    return t;
}

/* ------------------------------------------------------------------ */
/* sleeping and waking workers                                          */

static void worker_kick(csp__worker_t *w)
{
    /* release: the wake-up reason (work, stw, spinning hand-off) is visible
     * to the woken worker's acquire of park_seq */
    atomic_fetch_add_explicit(&w->park_seq, 1, memory_order_release);
    csp__futex_wake(&w->park_seq, 1);
}

/* Pops an idle worker. spinning: hand it the spinning role (the caller
 * counted it in nspinning). The flag is set under idle_lock: every way the
 * worker leaves its idle registration goes through idle_remove (the same
 * lock), so it sees the flag at its loop's top. Set after the unlock, as it
 * was, a worker that had found work on its own could miss the flag there,
 * start spinning by itself (nspinning + 1), and take the flag later on top:
 * one spinner counted twice for good, so csp__wakep never woke anyone again
 * (every worker asleep, a task in the global queue; found by test_wg under
 * qemu-aarch64, where the task dump showed "4 idle, 1 spinning"). */
static csp__worker_t *idle_pop(bool spinning)
{
    csp__mutex_lock(&csp__rt.idle_lock, CSP__RANK_IDLE);
    csp__worker_t *w = csp__rt.idle_list;
    if (w) {
        csp__rt.idle_list = w->idle_next;
        w->idle = 0;
        atomic_fetch_sub(&csp__rt.npidle, 1);
        if (spinning)
            atomic_store_explicit(&w->wake_spinning, 1, memory_order_relaxed);
    }
    csp__mutex_unlock(&csp__rt.idle_lock);
    return w;
}

/* Removes w from the idle list if it is still on it. Owner w. */
static void idle_remove(csp__worker_t *w)
{
    csp__mutex_lock(&csp__rt.idle_lock, CSP__RANK_IDLE);
    if (w->idle) {
        csp__worker_t **pp = &csp__rt.idle_list;
        while (*pp != w)
            pp = &(*pp)->idle_next;
        *pp = w->idle_next;
        w->idle = 0;
        atomic_fetch_sub(&csp__rt.npidle, 1);
    }
    csp__mutex_unlock(&csp__rt.idle_lock);
}

void csp__wakep(void)
{
    /* seq_cst fence: orders the caller's queue put before the loads below
     * (pairs with the idle worker's seq_cst RMWs + re-check). */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&csp__rt.npidle, memory_order_relaxed) == 0 ||
        atomic_load_explicit(&csp__rt.nspinning, memory_order_relaxed) != 0)
        return;
    int z = 0;
    if (!atomic_compare_exchange_strong(&csp__rt.nspinning, &z, 1))
        return;
    csp__worker_t *w = idle_pop(true);
    if (!w) {
        atomic_fetch_sub(&csp__rt.nspinning, 1);
        return;
    }
    worker_kick(w);
}

/* Wakes an idle worker so that it re-evaluates timers (no spinning hand-off). */
static void wake_idle_for_timers(void)
{
    csp__worker_t *w = idle_pop(false);
    if (w)
        worker_kick(w);
}

void csp__timer_wake_sleeper(csp_time_t when)
{
    /* seq_cst: pairs with the timer sleeper's store of sleep_until and its
     * re-scan of next_when (both seq_cst). */
    if (when >= atomic_load(&csp__rt.sleep_until))
        return;
    int s = atomic_load(&csp__rt.timer_sleeper);
    if (s >= 0)
        worker_kick(csp__rt.workers[s]);
    else if (atomic_load(&csp__rt.npidle) > 0)
        wake_idle_for_timers();
}

void csp__deadlock_poke(void)
{
    /* seq_cst load: pairs with the idle worker's npidle increment before it
     * reads what can wake a task (deadlock_state) - the caller's decrement
     * came first, so either that worker sees it or we see the worker */
    if (!csp__rt.dl_max_threads || atomic_load(&csp__rt.npidle) != csp__rt.nworkers)
        return;
    wake_idle_for_timers(); /* it re-runs the check on its way back to sleep */
}

static void wake_all_workers(void)
{
    for (int i = 0; i < csp__rt.nworkers; i++)
        worker_kick(csp__rt.workers[i]);
}

/* ------------------------------------------------------------------ */
/* switching                                                            */

static inline void *worker_g0_lo(csp__worker_t *w) { return w->g0_stack_lo; }

/* Switches from `from` (a task, or NULL = this worker's g0) to `to` (a task,
 * or NULL = g0), telling the sanitizers. exiting: `from` never resumes. */
static inline void do_switch(csp__worker_t *w, csp__task_t *from, csp__task_t *to, bool exiting)
{
    csp__ctx_t *fc = from ? &from->ctx : &w->g0;
    csp__ctx_t *tc = to ? &to->ctx : &w->g0;
    csp__rank_check_none("a context switch"); /* CSP_LOCKRANK builds */
#if defined(CSP_DEBUG) || defined(CSP_ASAN)
    if (to && atomic_exchange(&to->on_cpu, 1))
        csp__panic("task %llu resumed while it runs elsewhere", (unsigned long long)to->id);
    if (from)
        atomic_store(&from->on_cpu, 0);
#endif
#if defined(CSP_ASAN)
    void *fake = NULL;
    __sanitizer_start_switch_fiber(exiting ? NULL : &fake, to ? (void *)to->lo : worker_g0_lo(w),
                                   to ? to->size : w->g0_stack_size);
#else
    (void)exiting;
#endif
#if defined(CSP_TSAN)
    __tsan_switch_to_fiber(to ? to->tsan_fiber : w->g0_tsan_fiber, 0);
#endif
    csp__ctx_switch(fc, tc, NULL);
#if defined(CSP_ASAN)
    __sanitizer_finish_switch_fiber(fake, NULL, NULL);
#endif
}

/* Makes t runnable from the current context. Owner ops on the current worker. */
static void enqueue(csp__worker_t *w, csp__task_t *t, bool next)
{
    atomic_store_explicit(&t->status, CSP__TS_RUNNABLE, memory_order_relaxed);
    if (CSP__UNLIKELY(t->pinned != NULL)) {
        pin_push(t->pinned, t);
        if (t->pinned != w)
            worker_kick(t->pinned);
        return;
    }
    if (w)
        runq_put(w, t, next);
    else
        gq_put(t);
}

/* The post-switch step (sched.h). Runs first thing in the context that was
 * switched to. */
static inline void sched_post(csp__worker_t *w)
{
    int op = w->post_op;
    if (op == CSP__POST_NONE)
        return;
    csp__task_t *p = w->post_task;
    w->post_op = CSP__POST_NONE;
    switch (op) {
    case CSP__POST_YIELD:
        enqueue(w, p, false);
        break;
    case CSP__POST_CONT:
        atomic_store_explicit(&p->status, CSP__TS_RUNNABLE, memory_order_relaxed);
        if (!cq_push(w, p))
            runq_put(w, p, false);
        csp__wakep();
        break;
    case CSP__POST_PARK: {
        uint32_t exp = CSP__PS_RUNNING;
        /* acq_rel: pairs with csp__ready's CAS */
        if (!atomic_compare_exchange_strong_explicit(&p->pstate, &exp, CSP__PS_PARKED,
                                                     memory_order_acq_rel, memory_order_acquire)) {
            /* NOTIFIED: the wake-up came before the park completed */
            atomic_store_explicit(&p->pstate, CSP__PS_RUNNING, memory_order_relaxed);
            enqueue(w, p, true);
        }
        break;
    }
    case CSP__POST_EXIT:
#if defined(CSP_ASAN)
        __asan_unpoison_memory_region(p->lo, (size_t)((char *)p - p->lo));
#endif
        csp__task_free(w, p);
        break;
    }
}

static inline void check_timers(csp__worker_t *w)
{
    if (CSP__UNLIKELY(atomic_load_explicit(&w->timers.next_when, memory_order_relaxed) != INT64_MAX)) {
        csp_time_t now = csp_now();
        if (atomic_load_explicit(&w->timers.next_when, memory_order_relaxed) <= now)
            csp__timers_run(&w->timers, now);
    }
}

/* The next task to switch to directly from a task, or NULL to go through g0. */
static inline csp__task_t *fast_next(csp__worker_t *w)
{
    if (CSP__UNLIKELY(atomic_load_explicit(&csp__rt.interrupt, memory_order_relaxed)))
        return NULL;
    if (CSP__UNLIKELY(++w->tick % 61 == 0))
        return NULL; /* let g0 look at the global queue and other timers */
    if (CSP__UNLIKELY(atomic_load_explicit(&w->pin_n, memory_order_relaxed)))
        return NULL;
    check_timers(w);
    return runq_get(w);
}

/* The running task t gives up its worker with post-switch step op. Returns
 * when t runs again (possibly on another worker), except for EXIT. */
static void switch_out(csp__worker_t *w, csp__task_t *t, int op)
{
    csp__stack_check(t);
    csp__task_t *next = fast_next(w);
    w->post_op = op;
    w->post_task = t;
    w->cur = next;
    if (next)
        atomic_store_explicit(&next->status, CSP__TS_RUNNING_ON(w), memory_order_relaxed);
    do_switch(w, t, next, op == CSP__POST_EXIT);
    /* resumed, maybe elsewhere: never reuse w */
    sched_post(csp__cur_worker());
}

#if defined(CSP_TSAN)
static void task_exit(csp__task_t *t); /* returns when the slot is reused */
#else
static void task_exit(csp__task_t *t) __attribute__((noreturn));
#endif
static void csp__ready_task(csp__task_t *t);

static void task_entry(void *arg, void *pass)
{
    (void)pass;
#if defined(CSP_ASAN)
    __sanitizer_finish_switch_fiber(NULL, NULL, NULL);
#endif
    csp__task_t *t = arg;
    sched_post(csp__cur_worker());
#if defined(CSP_TSAN)
    /* TSan builds: a stack slot keeps its context and its TSan fiber, and a
     * later spawn into the slot resumes the exited task's context, which
     * loops here. A fiber made per task costs TSan ~0.7 ms, and a fiber
     * reused with a fresh context would keep the abandoned frames on its
     * shadow stack until it overflows. */
    for (;;) {
        t->fresh = 0;
        t->fn(t->arg);
        task_exit(t);
    }
#else
    t->fresh = 0;
    t->fn(t->arg);
    task_exit(t);
#endif
}

static void task_exit(csp__task_t *t)
{
    csp__worker_t *w = csp__cur_worker();
    atomic_store_explicit(&t->status, CSP__TS_DEAD, memory_order_relaxed);
    atomic_store_explicit(&w->live_delta, atomic_load_explicit(&w->live_delta, memory_order_relaxed) - 1,
                          memory_order_relaxed);
    if (CSP__UNLIKELY(t == atomic_load_explicit(&csp__rt.main_task, memory_order_relaxed))) {
        atomic_store_explicit(&csp__rt.main_task, NULL, memory_order_relaxed);
        atomic_store(&csp__rt.main_done, 1);
        atomic_store(&csp__rt.state, CSP__RT_STOPPING);
        atomic_store(&csp__rt.interrupt, 1);
        wake_all_workers();
    }
    switch_out(w, t, CSP__POST_EXIT);
#if !defined(CSP_TSAN)
    __builtin_unreachable();
#endif
}

void csp__park(void)
{
    csp__worker_t *w = csp__cur_worker();
    csp__task_t *t = w->cur;
    atomic_store_explicit(&w->parks, atomic_load_explicit(&w->parks, memory_order_relaxed) + 1,
                          memory_order_relaxed);
    atomic_store_explicit(&t->status, CSP__TS_WAITING, memory_order_relaxed);
    switch_out(w, t, CSP__POST_PARK);
    /* whoever switched to t stored RUNNING (with its worker) */
}

/* A plain thread is about to touch run queues or allocate: holds off the
 * teardown (which sets STOPPING, then waits for ext_refs == 0). False when
 * the runtime is not in one of the states [lo, hi]. */
bool csp__ext_enter(int lo, int hi)
{
    atomic_fetch_add(&csp__rt.ext_refs, 1); /* seq_cst: pairs with rt_stop_and_join */
    int st = atomic_load(&csp__rt.state);
    if (st < lo || st > hi) {
        atomic_fetch_sub(&csp__rt.ext_refs, 1);
        return false;
    }
    return true;
}

void csp__ext_exit(void)
{
    atomic_fetch_sub_explicit(&csp__rt.ext_refs, 1, memory_order_release);
}

void csp__ready(csp__task_t *t)
{
    if (CSP__UNLIKELY(!csp__cur_worker())) {
        /* plain thread: the runtime may be tearing down; a task of a runtime
         * that is stopping never runs again, so its wake-up is dropped */
        if (!csp__ext_enter(CSP__RT_RUNNING, CSP__RT_SHUTDOWN))
            return;
        csp__ready_task(t);
        csp__ext_exit();
        return;
    }
    csp__ready_task(t);
}

static void csp__ready_task(csp__task_t *t)
{
    uint32_t s = atomic_load_explicit(&t->pstate, memory_order_relaxed);
    for (;;) {
        if (s == CSP__PS_PARKED) {
            /* acq_rel: pairs with the parking side's CAS in sched_post */
            if (atomic_compare_exchange_weak_explicit(&t->pstate, &s, CSP__PS_RUNNING,
                                                      memory_order_acq_rel, memory_order_relaxed)) {
                csp__worker_t *w = csp__cur_worker();
                enqueue(w, t, true);
                csp__wakep();
                return;
            }
        } else if (s == CSP__PS_RUNNING) {
            if (atomic_compare_exchange_weak_explicit(&t->pstate, &s, CSP__PS_NOTIFIED,
                                                      memory_order_acq_rel, memory_order_relaxed))
                return;
        } else {
            csp__panic("task %llu readied twice", (unsigned long long)t->id);
        }
    }
}

/* ------------------------------------------------------------------ */
/* the scheduler loop (g0)                                              */

static void stw_park(csp__worker_t *w)
{
    if (w->spinning) {
        w->spinning = 0;
        atomic_fetch_sub(&csp__rt.nspinning, 1);
    }
    idle_remove(w);
    uint32_t rel = atomic_load(&csp__rt.stw_release);
    atomic_fetch_add(&csp__rt.stw_stopped, 1);
    csp__futex_wake(&csp__rt.stw_stopped, 1);
    while (atomic_load(&csp__rt.stw)) {
        csp__futex_wait(&csp__rt.stw_release, rel, CSP_FOREVER);
        rel = atomic_load(&csp__rt.stw_release);
    }
}

static void reset_spinning(csp__worker_t *w)
{
    if (w->spinning) {
        w->spinning = 0;
        /* the last spinner to find work wakes another to keep looking */
        if (atomic_fetch_sub(&csp__rt.nspinning, 1) == 1)
            csp__wakep();
    }
}

/* allow_runnext: the last round may take a victim's runnext. Only after the
 * spinning worker has waited a while: a running victim is about to run it
 * itself, and taking it moves a hot producer/consumer pair across cores
 * (Go sleeps 3 us before the same steal). */
static csp__task_t *steal_work(csp__worker_t *w, bool allow_runnext, csp_time_t now)
{
    int n = csp__rt.nworkers;
    for (int round = 0; round < 4; round++) {
        bool last = round == 3 && allow_runnext;
        uint32_t start = csp__rand_n(&w->rng, (uint32_t)n);
        for (int i = 0; i < n; i++) {
            csp__worker_t *v = csp__rt.workers[(start + (uint32_t)i) % (uint32_t)n];
            if (v == w)
                continue;
            if (last && atomic_load_explicit(&v->timers.next_when, memory_order_relaxed) != INT64_MAX)
                csp__timers_run(&v->timers, csp_now());
            csp__task_t *t = cq_aged(w, v, now) ? cq_steal_batch(w, v) : NULL;
            if (!t)
                t = runq_steal(w, v, last);
            if (t) {
                atomic_store_explicit(&w->steals,
                                      atomic_load_explicit(&w->steals, memory_order_relaxed) + 1,
                                      memory_order_relaxed);
                return t;
            }
        }
        csp__task_t *t = runq_get(w); /* timers may have readied tasks here */
        if (t)
            return t;
    }
    return NULL;
}

static bool any_work_visible(csp__worker_t *self)
{
    if (atomic_load(&csp__rt.gq_n))
        return true;
    if (atomic_load(&self->pin_n))
        return true;
    for (int i = 0; i < csp__rt.nworkers; i++)
        if (!runq_empty(csp__rt.workers[i]))
            return true;
    return false;
}

/* ---- global deadlock detection ("all goroutines are asleep") ----
 *
 * Under csp_run, the program's main is a task and the caller's thread is a
 * worker. When every worker is idle, no task is runnable anywhere, no timer
 * is pending (a sleep, a deadline, a ticker would wake someone) and no plain
 * thread is inside the runtime, only a thread outside the runtime could ever
 * wake a task again. Go knows all its threads; a C program may have its own,
 * and one of them may send on a channel later. So the check also counts the
 * process's threads (/proc/self/stat): with none but the workers (and, in
 * TSan builds, TSan's own background thread), nobody can, and the program is
 * deadlocked. csp_run then prints the tasks and what they wait on, stops the
 * runtime (the tasks are freed as when main returns early) and returns
 * CSP_EDEADLOCK instead of hanging. A program whose threads existed before
 * csp_run, or that uses csp_init, is never checked; nor with env
 * CSP_DEADLOCK=0. A thread created while the runtime runs only defers the
 * check until it exits.
 *
 * The check runs in the sleep path of the last worker to go idle with no
 * timers pending (rare: a program that is not deadlocked is then about to
 * sleep for good, or a plain thread is about to act). Race-free because it
 * is a snapshot of a state nothing can leave: npidle == nworkers means no
 * worker runs a task or is kicked (idle_pop decrements npidle first), and
 * nothing visible is left to run; everything is read again after the slow
 * thread count. Two workers may find it at once: the deadlock CAS picks one.
 */

#define CSP__DL_RECHECK_NS (10 * CSP_MILLISECOND)

/* The number of threads in this process, or -1 if it can't be read. */
static int process_threads(void)
{
    FILE *f = fopen("/proc/self/stat", "re");
    if (!f)
        return -1;
    char buf[1024];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
    if (!p)
        return -1;
    /* after comm: state (field 3) ... num_threads (field 20) */
    int field = 2;
    for (p++; *p && field < 20; p++)
        if (*p == ' ')
            field++;
    return field == 20 ? atoi(p) : -1;
}

/* Before csp_run starts its threads: may this run be checked, and with how
 * many threads at most? */
static void deadlock_setup(void)
{
    const char *e = getenv("CSP_DEADLOCK");
    if (e && e[0] == '0')
        return;
    int before = process_threads();
#if defined(CSP_TSAN)
    /* TSan starts a background thread of its own with the first
     * pthread_create, and keeps it: allow it, before or after our start */
    int tool = 1;
#else
    int tool = 0;
#endif
    if (before < 1 || before > 1 + tool)
        return; /* other threads exist: they may wake a task at any time */
    csp__rt.dl_max_threads = csp__rt.nworkers + tool;
}

static bool deadlock_state(csp__worker_t *w)
{
    if (atomic_load(&csp__rt.npidle) != csp__rt.nworkers || atomic_load(&csp__rt.ext_refs) ||
        csp__blocking_inflight() > 0 ||
        atomic_load(&csp__rt.interrupt) || any_work_visible(w) ||
        csp__timers_earliest() != INT64_MAX)
        return false;
    for (int i = 0; i < csp__rt.nworkers; i++)
        if (atomic_load(&csp__rt.workers[i]->pin_n))
            return false;
    return true;
}

/* The sleep path of w (idle, on the idle list, no timers anywhere): true if
 * the program is deadlocked; the runtime is then stopping. */
static bool check_deadlock(csp__worker_t *w)
{
    if (!csp__rt.dl_max_threads || !deadlock_state(w))
        return false;
    /* A program whose own threads feed it work goes idle after every item:
     * read /proc (~15 us) at most once per CSP__DL_RECHECK_NS while such
     * threads were seen. Best effort either way: a deadlock that forms
     * while a thread is still exiting is not seen (nothing rechecks). */
    csp_time_t now = csp_now();
    int64_t seen = atomic_load_explicit(&csp__rt.dl_threads_seen, memory_order_relaxed);
    if (seen && now - seen < CSP__DL_RECHECK_NS)
        return false;
    /* the blocking pool's threads are ours: idle (nothing in flight, see
     * deadlock_state), they wake nobody */
    int n = process_threads();
    if (n < 1 || n > csp__rt.dl_max_threads + csp__blocking_threads()) {
        atomic_store_explicit(&csp__rt.dl_threads_seen, now, memory_order_relaxed);
        return false;
    }
    if (!deadlock_state(w))
        return false;
    int z = 0;
    if (!atomic_compare_exchange_strong(&csp__rt.deadlock, &z, 1))
        return true; /* another worker found it */
    fprintf(stderr, "libcsp: all tasks are asleep - deadlock!\n");
    fflush(stderr);
    /* every worker idle: the tasks' fields are as good as stopped */
    csp__dump_tasks(2, true, 32);
    atomic_store(&csp__rt.state, CSP__RT_STOPPING);
    atomic_store(&csp__rt.interrupt, 1);
    wake_all_workers();
    return true;
}

/* How long a spinning worker keeps looking for work before it sleeps. */
#define CSP__SPIN_NS (50 * CSP_MICROSECOND)
/* A spinning worker takes a busy victim's runnext (the task its running task
 * just readied) only in its last round. In a ping-pong or a producer/consumer
 * the running task parks within a microsecond and the readied one runs on the
 * same worker with a warm cache; taking it after 5 us (Go's runqgrab sleeps
 * 3 us) made chan_spsc ~40% slower here (55 -> 75 ns/item) for a better
 * wakeup p50 only. */

static csp__task_t *find_runnable(csp__worker_t *w)
{
    for (;;) {
    again:
        if (atomic_load_explicit(&w->wake_spinning, memory_order_relaxed)) {
            atomic_store_explicit(&w->wake_spinning, 0, memory_order_relaxed);
            if (w->spinning)
                atomic_fetch_sub(&csp__rt.nspinning, 1); /* counted by wakep and by us */
            else
                w->spinning = 1; /* counted in nspinning by wakep */
        }
        if (CSP__UNLIKELY(atomic_load(&csp__rt.interrupt))) {
            if (atomic_load(&csp__rt.stw))
                stw_park(w);
            if (atomic_load(&csp__rt.state) >= CSP__RT_STOPPING) {
                if (w->spinning) {
                    w->spinning = 0;
                    atomic_fetch_sub(&csp__rt.nspinning, 1);
                }
                return NULL;
            }
        }
        check_timers(w);
        csp__task_t *t;
        if (w->tick % 61 == 0 && (t = gq_get(w, 1)))
            goto found;
        w->tick++;
        if ((t = pin_pop(w)) || (t = runq_get(w)) || (t = gq_get(w, 0)))
            goto found;

        /* spin: at most half of the busy workers */
        if (!w->spinning && 2 * atomic_load(&csp__rt.nspinning) <
                                csp__rt.nworkers - atomic_load(&csp__rt.npidle)) {
            w->spinning = 1;
            atomic_fetch_add(&csp__rt.nspinning, 1);
        }
        if (w->spinning) {
            /* Spin for a short while before sleeping: a futex sleep + wake
             * costs microseconds (more in a VM), and work often arrives right
             * after (producer/consumer, spawn loops). While we spin,
             * nspinning > 0 stops csp__wakep from waking anyone else. */
            csp_time_t spin_until = 0;
            bool allow_next = false;
            for (int round = 0;; round++) {
                csp_time_t now = csp_now();
                if ((t = steal_work(w, allow_next, now)) || (t = gq_get(w, 0)) ||
                    (t = pin_pop(w)))
                    goto found;
                if (atomic_load_explicit(&csp__rt.interrupt, memory_order_relaxed))
                    break;
                if (csp__stacks_prewarm())
                    goto again; /* useful work done: look everywhere afresh */
                if (round == 0)
                    spin_until = now + CSP__SPIN_NS;
                else if (allow_next)
                    break; /* the last round, with runnext, found nothing */
                else if (now >= spin_until)
                    allow_next = true;
                check_timers(w);
                for (int k = 0; k < 32; k++)
                    csp__cpu_relax();
            }
        }

        /* going to sleep. Read the futex word before the re-check. */
        uint32_t seq = atomic_load_explicit(&w->park_seq, memory_order_acquire);
        /* A csp__wakep may have popped us off the idle list (we had put
         * ourselves there in an earlier round and then found work) and made
         * us the spinning worker: it stores wake_spinning, then kicks. If our
         * seq already includes that kick, the acquire above makes the store
         * visible here and we must take the role instead of sleeping on the
         * new seq (the spinning count would stay 1 for good, and no worker
         * would ever be woken again). If it does not, futex_wait returns at
         * once. Found by the channel fuzzer (tests/fuzz). */
        if (atomic_load_explicit(&w->wake_spinning, memory_order_relaxed))
            continue;
        csp__mutex_lock(&csp__rt.idle_lock, CSP__RANK_IDLE);
        if (atomic_load_explicit(&csp__rt.gq_n, memory_order_relaxed)) {
            csp__mutex_unlock(&csp__rt.idle_lock);
            continue;
        }
        w->idle = 1;
        w->idle_next = csp__rt.idle_list;
        csp__rt.idle_list = w;
        atomic_fetch_add(&csp__rt.npidle, 1); /* seq_cst */
        csp__mutex_unlock(&csp__rt.idle_lock);
        if (w->spinning) {
            w->spinning = 0;
            atomic_fetch_sub(&csp__rt.nspinning, 1); /* seq_cst, then re-check */
        }
        if (any_work_visible(w) || atomic_load(&csp__rt.interrupt)) {
            idle_remove(w);
            continue;
        }

        /* timers: run what is due anywhere; one idle worker sleeps until the
         * earliest of the rest */
        csp_time_t deadline = CSP_FOREVER;
        int64_t earliest = csp__timers_earliest();
        if (earliest == INT64_MAX && check_deadlock(w)) {
            idle_remove(w);
            continue; /* stopping: the loop's top returns */
        }
        if (earliest != INT64_MAX) {
            csp_time_t now = csp_now();
            if (earliest <= now) {
                idle_remove(w);
                for (int i = 0; i < csp__rt.nworkers; i++)
                    csp__timers_run(&csp__rt.workers[i]->timers, now);
                continue;
            }
            int none = -1;
            if (atomic_compare_exchange_strong(&csp__rt.timer_sleeper, &none, w->id)) {
                atomic_store(&csp__rt.sleep_until, earliest);
                int64_t again = csp__timers_earliest(); /* seq_cst re-scan */
                if (again < earliest) {
                    earliest = again;
                    atomic_store(&csp__rt.sleep_until, earliest);
                }
                deadline = earliest;
            } else {
                /* Another worker is the timer sleeper: make sure it sleeps no
                 * later than the earliest timer we see (a ticker re-armed by
                 * csp__timers_run, or a timer added to a busy worker's heap,
                 * wakes nobody). Found by the steward/heartbeat tests. */
                csp__timer_wake_sleeper(earliest);
            }
        }
        atomic_store_explicit(&w->sleeps, atomic_load_explicit(&w->sleeps, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        csp__rank_check_none("a worker's sleep");
        csp__futex_wait(&w->park_seq, seq, deadline);
        if (deadline != CSP_FOREVER) {
            atomic_store(&csp__rt.sleep_until, INT64_MAX);
            atomic_store(&csp__rt.timer_sleeper, -1);
        }
        idle_remove(w);
        if (deadline != CSP_FOREVER) {
            /* The timer sleeper woke for a timer that may sit on another
             * worker's heap: run every due one now. Left to the spin loop,
             * another heap's timers ran only in its last round, 50 us late
             * (the wakeup benchmark's sender woke that late). */
            csp_time_t now = csp_now();
            if (now >= deadline)
                for (int i = 0; i < csp__rt.nworkers; i++)
                    if (atomic_load_explicit(&csp__rt.workers[i]->timers.next_when,
                                             memory_order_relaxed) <= now)
                        csp__timers_run(&csp__rt.workers[i]->timers, now);
        }
        if (deadline != CSP_FOREVER && csp__timers_earliest() != INT64_MAX &&
            atomic_load(&csp__rt.npidle) > 0) {
            /* hand the timer-sleeper role on if we were woken for work */
            if (csp_now() < deadline)
                wake_idle_for_timers();
        }
        continue;
    found:
        reset_spinning(w);
        return t;
    }
}

static void worker_loop(csp__worker_t *w)
{
    for (;;) {
        csp__task_t *t = find_runnable(w);
        if (!t)
            return;
        w->cur = t;
        atomic_store_explicit(&t->status, CSP__TS_RUNNING_ON(w), memory_order_relaxed);
        do_switch(w, NULL, t, false);
        /* back on g0 of the same worker (g0 never migrates) */
        sched_post(w);
    }
}

static void worker_thread_setup(csp__worker_t *w)
{
    tls_worker = w;
    csp__stack_thread_init();
    pthread_attr_t a;
    if (pthread_getattr_np(pthread_self(), &a) == 0) {
        pthread_attr_getstack(&a, &w->g0_stack_lo, &w->g0_stack_size);
        pthread_attr_destroy(&a);
    }
#if defined(CSP_TSAN)
    w->g0_tsan_fiber = __tsan_get_current_fiber();
#endif
}

static void worker_thread_teardown(void)
{
    csp__stack_thread_fini();
    tls_worker = NULL;
}

static void *worker_main(void *arg)
{
    csp__worker_t *w = arg;
    worker_thread_setup(w);
    worker_loop(w);
    worker_thread_teardown();
    return NULL;
}

/* ------------------------------------------------------------------ */
/* spawn                                                                */

static uint64_t next_task_id(csp__worker_t *w)
{
    if (!w)
        return atomic_fetch_add_explicit(&csp__rt.ids, 1, memory_order_relaxed);
    if (CSP__UNLIKELY(w->id_next == w->id_end)) {
        w->id_next = atomic_fetch_add_explicit(&csp__rt.ids, 1024, memory_order_relaxed);
        w->id_end = w->id_next + 1024;
    }
    return w->id_next++;
}

static size_t round_stack(size_t s)
{
    size_t c = CSP_MIN_STACK_SIZE;
    while (c < s)
        c <<= 1;
    return c;
}

/* A spawning task yields once its local queue holds this many tasks (see the
 * backpressure note in spawn()). Small keeps the working set of fresh stacks
 * in cache: measured 66-85 ns per spawn+exit at 32 vs 113-120 ns at 255 (one
 * worker), and thieves still find half of it to steal. */
#define CSP__SPAWN_BACKPRESSURE 32u

static int spawn_locked(void (*fn)(void *), void *arg, size_t copy, size_t size, unsigned flags,
                        const csp_task_opts_t *opts, csp__task_t **out, csp__worker_t *w,
                        void *pc);

/* pc: the spawn site (the public entry's return address), for dumps */
static int spawn(void (*fn)(void *), void *arg, size_t copy, const csp_task_opts_t *opts,
                 csp__task_t **out, void *pc)
{
    if (CSP__UNLIKELY(!fn))
        return CSP_EINVAL;
    if (CSP__UNLIKELY(copy > CSP_GO_COPY_MAX || (copy && !arg)))
        return CSP_EINVAL;
    size_t size = 0; /* 0: the runtime's default, read once inside */
    unsigned flags = 0;
    if (opts) {
        if (opts->stack_size > CSP_MAX_STACK_SIZE || (opts->flags & ~(unsigned)CSP_TASK_PINNED))
            return CSP_EINVAL;
        if (opts->stack_size)
            size = round_stack(opts->stack_size);
        flags = opts->flags;
    }
    csp__worker_t *w = csp__cur_worker();
    if (CSP__UNLIKELY(!w)) {
        /* plain thread: hold off the teardown while we allocate and queue */
        if (!csp__ext_enter(CSP__RT_RUNNING, CSP__RT_RUNNING))
            return CSP_ESHUTDOWN;
        int r = spawn_locked(fn, arg, copy, size, flags, opts, out, NULL, pc);
        csp__ext_exit();
        return r;
    }
    if (CSP__UNLIKELY(atomic_load_explicit(&csp__rt.state, memory_order_acquire) != CSP__RT_RUNNING))
        return csp__shutdown_err();
    return spawn_locked(fn, arg, copy, size, flags, opts, out, w, pc);
}

/* The body of spawn: the runtime is known to be running (a worker, or a plain
 * thread inside ext_enter). */
static int spawn_locked(void (*fn)(void *), void *arg, size_t copy, size_t size, unsigned flags,
                        const csp_task_opts_t *opts, csp__task_t **out, csp__worker_t *w,
                        void *pc)
{
    if (!size)
        size = csp__rt.default_stack;
    csp__task_t *t = csp__task_alloc(w, size);
    if (CSP__UNLIKELY(!t))
        return CSP_ENOMEM;
    t->fn = fn;
    atomic_store_explicit(&t->pstate, CSP__PS_RUNNING, memory_order_relaxed);
    atomic_store_explicit(&t->status, CSP__TS_RUNNABLE, memory_order_relaxed);
    /* relaxed atomics: dumps read these racily (sched.h) */
    __atomic_store_n(&t->id, next_task_id(w), __ATOMIC_RELAXED);
    __atomic_store_n(&t->parent, w && w->cur ? w->cur->id : 0, __ATOMIC_RELAXED);
    __atomic_store_n(&t->spawn_pc, pc, __ATOMIC_RELAXED);
    t->next = NULL;
    t->pinned = (flags & CSP_TASK_PINNED) ? (w ? w : csp__rt.workers[0]) : NULL;
    t->waiter = NULL;
    __atomic_store_n(&t->wait_reason, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&t->wait_obj, NULL, __ATOMIC_RELAXED);
    __atomic_store_n(&t->wait_since, 0, __ATOMIC_RELAXED);
    if (CSP__UNLIKELY(opts && opts->name)) {
        size_t i = 0;
        for (; i < sizeof t->name - 1 && opts->name[i]; i++)
            __atomic_store_n(&t->name[i], opts->name[i], __ATOMIC_RELAXED);
        __atomic_store_n(&t->name[i], 0, __ATOMIC_RELAXED);
    } else {
        __atomic_store_n(&t->name[0], 0, __ATOMIC_RELAXED);
    }
    char *top = (char *)t;
#if defined(CSP_ASAN)
    /* a fresh stack must carry no shadow from its history (frames of a task
     * freed while parked, an earlier mapping at this address) */
    {
        char *ulo = t->lo + (t->has_guard ? csp__page_size : 0);
        __asan_unpoison_memory_region(ulo, (size_t)(top - ulo));
    }
#endif
#if defined(CSP_TSAN)
    /* the slot's context is made once and then reused (see task_entry), so
     * the argument area below the task struct has its full size always */
    top -= CSP_GO_COPY_MAX;
    if (copy) {
        memcpy(top, arg, copy);
        arg = top;
    }
    t->arg = arg;
    if (!t->tsan_fiber) {
        t->tsan_fiber = __tsan_create_fiber(0);
        char *lo = t->lo + (t->has_guard ? csp__page_size : 0);
        csp__ctx_make(&t->ctx, lo, (size_t)(top - lo), task_entry, t);
    }
#else
    if (copy) {
        top -= (copy + 15) & ~(size_t)15;
        memcpy(top, arg, copy);
        arg = top;
    }
    t->arg = arg;
    char *lo = t->lo + (t->has_guard ? csp__page_size : 0);
    csp__ctx_make(&t->ctx, lo, (size_t)(top - lo), task_entry, t);
#endif
    /* release: the task is initialised for slot walkers (shutdown sweep) */
    t->fresh = 1;
    atomic_store_explicit(&t->live, 1, memory_order_release);
    if (w) {
        atomic_store_explicit(&w->live_delta, atomic_load_explicit(&w->live_delta, memory_order_relaxed) + 1,
                              memory_order_relaxed);
        atomic_store_explicit(&w->spawned, atomic_load_explicit(&w->spawned, memory_order_relaxed) + 1,
                              memory_order_relaxed);
    } else {
        atomic_fetch_add_explicit(&csp__rt.live_shared, 1, memory_order_relaxed);
        atomic_fetch_add_explicit(&csp__rt.spawned_shared, 1, memory_order_relaxed);
    }
    if (out) {
        *out = t;
        return 0;
    }
    csp__task_t *cur = w ? w->cur : NULL;
    if (csp__rt.spawn_policy == CSP_SPAWN_CHILD_FIRST && cur && !t->pinned && !cur->pinned &&
        !atomic_load_explicit(&csp__rt.interrupt, memory_order_relaxed)) {
        /* child first: run t now; the parent's continuation goes on the
         * continuation deque, where it runs when the child is done or is
         * stolen by an idle worker */
        csp__stack_check(cur);
        w->post_op = CSP__POST_CONT;
        w->post_task = cur;
        w->cur = t;
        atomic_store_explicit(&t->status, CSP__TS_RUNNING_ON(w), memory_order_relaxed);
        do_switch(w, cur, t, false);
        sched_post(csp__cur_worker());
        return 0;
    }
    enqueue(w, t, true);
    csp__wakep();
    if (cur && !cur->pinned) {
        /* Backpressure (help-first becomes work-first when the local queue
         * is full): rather than spilling to the global queue and growing
         * the number of live stacks without bound, the spawner runs the
         * queued tasks first. csp_go is a scheduling point only then. */
        uint32_t h = atomic_load_explicit(&w->runq_head, memory_order_relaxed);
        uint32_t tl = atomic_load_explicit(&w->runq_tail, memory_order_relaxed);
        int64_t cq = atomic_load_explicit(&w->cq_bottom, memory_order_relaxed) -
                     atomic_load_explicit(&w->cq_top, memory_order_relaxed);
        if (CSP__UNLIKELY((int64_t)(tl - h) + cq >= (int64_t)CSP__SPAWN_BACKPRESSURE))
            switch_out(w, cur, CSP__POST_YIELD);
    }
    return 0;
}

int csp__spawn_nosched(void (*fn)(void *), void *arg)
{
    csp__worker_t *w = csp__cur_worker();
    if (!w) {
        if (!csp__ext_enter(CSP__RT_RUNNING, CSP__RT_RUNNING))
            return CSP_ESHUTDOWN;
        csp__task_t *t;
        int r = spawn_locked(fn, arg, 0, 0, 0, NULL, &t, NULL, __builtin_return_address(0));
        if (r == 0) {
            enqueue(NULL, t, false);
            csp__wakep();
        }
        csp__ext_exit();
        return r;
    }
    if (atomic_load_explicit(&csp__rt.state, memory_order_acquire) != CSP__RT_RUNNING)
        return CSP_ESHUTDOWN;
    csp__task_t *t;
    int r = spawn_locked(fn, arg, 0, 0, 0, NULL, &t, w, __builtin_return_address(0));
    if (r == 0) {
        enqueue(w, t, false);
        csp__wakep();
    }
    return r;
}

CSP_EXTERN int csp_go(void (*fn)(void *), void *arg)
{
    return spawn(fn, arg, 0, NULL, NULL, __builtin_return_address(0));
}

CSP_EXTERN int csp_go_opts(void (*fn)(void *), void *arg, const csp_task_opts_t *opts)
{
    return spawn(fn, arg, 0, opts, NULL, __builtin_return_address(0));
}

CSP_EXTERN int csp_go_copy(void (*fn)(void *), const void *arg, size_t size,
                           const csp_task_opts_t *opts)
{
    return spawn(fn, (void *)arg, size, opts, NULL, __builtin_return_address(0));
}

/* ------------------------------------------------------------------ */
/* yield, sleep, identity                                               */

CSP_EXTERN void csp_yield(void)
{
    csp__worker_t *w = csp__cur_worker();
    if (!w || !w->cur) {
        sched_yield();
        return;
    }
    switch_out(w, w->cur, CSP__POST_YIELD);
}

int csp__shutdown_err(void)
{
    if (csp__cur_task())
        csp_yield();
    return CSP_ESHUTDOWN;
}

CSP_EXTERN int csp_sleep_until(csp_time_t when)
{
    if (csp__shutting_down() && csp__cur_task())
        return csp__shutdown_err();
    if (when <= csp_now()) {
        csp_yield();
        return 0;
    }
    csp__waiter_t wt;
    csp__waiter_init(&wt);
    uint32_t st = csp__waiter_wait(&wt, when, "sleep");
    if (st == CSP__W_SHUTDOWN)
        return csp__shutdown_err();
    return 0;
}

CSP_EXTERN int csp_sleep(csp_duration_t d)
{
    return csp_sleep_until(csp_deadline_after(d));
}

CSP_EXTERN uint64_t csp_task_id(void)
{
    csp__task_t *t = csp__cur_task();
    return t ? t->id : 0;
}

CSP_EXTERN const char *csp_task_name(void)
{
    csp__task_t *t = csp__cur_task();
    return t ? t->name : NULL;
}

CSP_EXTERN int csp_workers(void)
{
    int s = atomic_load(&csp__rt.state);
    /* Any thread may ask, at any time, also while rt_free zeroes the count
     * (a foreign thread's mutex spin during shutdown did): relaxed atomic
     * access, paired with the relaxed stores in rt_setup and rt_free. */
    return (s == CSP__RT_RUNNING || s == CSP__RT_SHUTDOWN)
               ? __atomic_load_n(&csp__rt.nworkers, __ATOMIC_RELAXED) : 0;
}

CSP_EXTERN int csp_worker_id(void)
{
    csp__worker_t *w = csp__cur_worker();
    return w ? w->id : -1;
}

static int64_t live_tasks(void)
{
    int64_t n = atomic_load_explicit(&csp__rt.live_shared, memory_order_relaxed);
    for (int i = 0; i < csp__rt.nworkers; i++)
        n += atomic_load_explicit(&csp__rt.workers[i]->live_delta, memory_order_relaxed);
    return n;
}

CSP_EXTERN int csp_stats(csp_stats_t *st)
{
    if (!st)
        return CSP_EINVAL;
    pthread_mutex_lock(&rt_lifecycle);
    int s = atomic_load(&csp__rt.state);
    if (s != CSP__RT_RUNNING && s != CSP__RT_SHUTDOWN) {
        pthread_mutex_unlock(&rt_lifecycle);
        return CSP_ESTATE;
    }
    memset(st, 0, sizeof *st);
    int64_t live = live_tasks();
    st->tasks_live = live > 0 ? (uint64_t)live : 0;
    st->tasks_spawned = atomic_load_explicit(&csp__rt.spawned_shared, memory_order_relaxed);
    for (int i = 0; i < csp__rt.nworkers; i++) {
        csp__worker_t *w = csp__rt.workers[i];
        st->tasks_spawned += atomic_load_explicit(&w->spawned, memory_order_relaxed);
        st->steals += atomic_load_explicit(&w->steals, memory_order_relaxed);
        st->parks += atomic_load_explicit(&w->parks, memory_order_relaxed);
        st->worker_sleeps += atomic_load_explicit(&w->sleeps, memory_order_relaxed);
    }
    csp__stacks_stats(&st->stacks_mapped, &st->guard_pages);
    pthread_mutex_unlock(&rt_lifecycle);
    return 0;
}

/* ------------------------------------------------------------------ */
/* start and stop                                                       */

static int cpu_count(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

#define CSP__MAX_WORKERS 1024

static int config_workers(const csp_config_t *cfg)
{
    if (cfg && cfg->workers > 0)
        return cfg->workers;
    const char *e = getenv("CSP_WORKERS");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v > 0 && v <= CSP__MAX_WORKERS)
            return (int)v;
    }
    int n = cpu_count();
    return n > CSP__MAX_WORKERS ? CSP__MAX_WORKERS : n;
}

static void rt_free(void)
{
    if (csp__rt.workers)
        csp__obj_drain(csp__rt.workers, csp__rt.nworkers);
    if (csp__rt.workers) {
        for (int i = 0; i < csp__rt.nworkers; i++) {
            csp__worker_t *w = csp__rt.workers[i];
            if (!w)
                continue;
            csp__timers_destroy(&w->timers);
            free(w->cq_seen);
            free(w);
        }
        free(csp__rt.workers);
        csp__rt.workers = NULL;
    }
    csp__stacks_destroy();
    pthread_mutex_destroy(&csp__rt.gq_lock);
    free(csp__rt.gq_buf);
    csp__rt.gq_buf = NULL;
    csp__rt.gq_cap = csp__rt.gq_first = 0;
    pthread_mutex_destroy(&csp__rt.idle_lock);
    __atomic_store_n(&csp__rt.nworkers, 0, __ATOMIC_RELAXED); /* see csp_workers */
}

/* Starts everything but the threads. Caller holds rt_lifecycle. */
static int rt_setup(const csp_config_t *cfg)
{
    if (cfg) {
        if (cfg->workers < 0 || cfg->workers > CSP__MAX_WORKERS)
            return CSP_EINVAL;
        if (cfg->stack_size > CSP_MAX_STACK_SIZE)
            return CSP_EINVAL;
        if (cfg->spawn_policy != CSP_SPAWN_HELP_FIRST && cfg->spawn_policy != CSP_SPAWN_CHILD_FIRST)
            return CSP_EINVAL;
        for (size_t i = 0; i < sizeof cfg->reserved / sizeof cfg->reserved[0]; i++)
            if (cfg->reserved[i])
                return CSP_EINVAL;
    }
    int expect = CSP__RT_STOPPED;
    if (!atomic_compare_exchange_strong(&csp__rt.state, &expect, CSP__RT_STARTING))
        return CSP_ESTATE;
    int n = config_workers(cfg);
    __atomic_store_n(&csp__rt.nworkers, n, __ATOMIC_RELAXED); /* see csp_workers */
    csp__rt.default_stack = round_stack(cfg && cfg->stack_size ? cfg->stack_size : CSP_DEFAULT_STACK_SIZE);
    csp__rt.spawn_policy = cfg ? cfg->spawn_policy : CSP_SPAWN_HELP_FIRST;
    pthread_mutex_init(&csp__rt.gq_lock, NULL);
    pthread_mutex_init(&csp__rt.idle_lock, NULL);
    csp__rt.gq_buf = NULL;
    csp__rt.gq_cap = csp__rt.gq_first = 0;
    atomic_store(&csp__rt.gq_n, 0);
    csp__rt.idle_list = NULL;
    atomic_store(&csp__rt.npidle, 0);
    atomic_store(&csp__rt.nspinning, 0);
    atomic_store(&csp__rt.timer_sleeper, -1);
    atomic_store(&csp__rt.sleep_until, INT64_MAX);
    atomic_store(&csp__rt.stw, 0);
    atomic_store(&csp__rt.interrupt, 0);
    atomic_store(&csp__rt.ids, 1);
    atomic_fetch_add(&csp__rt.gen, 1);
    atomic_store(&csp__rt.live_shared, 0);
    atomic_store(&csp__rt.spawned_shared, 0);
    atomic_store(&csp__rt.main_done, 0);
    csp__rt.dl_max_threads = 0;
    atomic_store(&csp__rt.deadlock, 0);
    atomic_store(&csp__rt.dl_threads_seen, 0);
    atomic_store(&csp__rt.ext_refs, 0);
    atomic_store(&csp__rt.main_task, NULL);
    csp__rt.workers = calloc((size_t)n, sizeof *csp__rt.workers);
    if (!csp__rt.workers) {
        atomic_store(&csp__rt.state, CSP__RT_STOPPED);
        return CSP_ENOMEM;
    }
    csp__stacks_init();
    uint64_t seed = (uint64_t)csp_now() ^ 0x9E3779B97F4A7C15ULL;
    for (int i = 0; i < n; i++) {
        csp__worker_t *w = aligned_alloc(CSP__CACHELINE, (sizeof *w + CSP__CACHELINE - 1) &
                                                              ~(size_t)(CSP__CACHELINE - 1));
        if (!w) {
            rt_free();
            atomic_store(&csp__rt.state, CSP__RT_STOPPED);
            return CSP_ENOMEM;
        }
        memset(w, 0, sizeof *w);
        w->id = i;
        w->cq_seen = calloc((size_t)n, sizeof *w->cq_seen);
        if (!w->cq_seen) {
            free(w);
            rt_free();
            atomic_store(&csp__rt.state, CSP__RT_STOPPED);
            return CSP_ENOMEM;
        }
        for (int j = 0; j < n; j++)
            w->cq_seen[j].top = -1;
        w->rng = (seed += 0x9E3779B97F4A7C15ULL) | 1;
        csp__timers_init(&w->timers);
        csp__rt.workers[i] = w;
    }
    csp__stack_install_handler();
    csp__dump_setup();
    csp__blocking_setup();
    return 0;
}

/* Starts worker threads [first, n). */
static int rt_start_threads(int first)
{
    for (int i = first; i < csp__rt.nworkers; i++) {
        csp__worker_t *w = csp__rt.workers[i];
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, 256 * 1024);
        int r = pthread_create(&w->thread, &a, worker_main, w);
        pthread_attr_destroy(&a);
        if (r != 0)
            return CSP_ENOMEM;
        w->own_thread = 1;
    }
    return 0;
}

static void rt_stop_and_join(void)
{
    atomic_store(&csp__rt.state, CSP__RT_STOPPING); /* seq_cst: pairs with ext_enter */
    atomic_store(&csp__rt.interrupt, 1);
    while (atomic_load(&csp__rt.ext_refs) != 0)
        sched_yield();
    wake_all_workers();
    for (int i = 0; i < csp__rt.nworkers; i++) {
        csp__worker_t *w = csp__rt.workers[i];
        if (w->own_thread) {
            pthread_join(w->thread, NULL);
            w->own_thread = 0;
        }
    }
}

static void count_live(csp__task_t *t, void *arg)
{
    (*(uint64_t *)arg)++;
    /* a task freed while waiting: take its waiter off the object it is
     * queued on (the object may outlive the runtime) */
    csp__waiter_t *wt = t->waiter;
    if (wt && wt->unlink)
        wt->unlink(wt);
}

static void rt_teardown(void)
{
    csp__blocking_teardown(); /* no pool thread holds a request after this */
    uint64_t left = 0;
    csp__stacks_foreach(count_live, &left);
#if defined(CSP_DEBUG)
    if (left)
        fprintf(stderr, "libcsp: %llu task(s) still alive at exit were freed\n",
                (unsigned long long)left);
#endif
    csp__dump_teardown();
    rt_free();
    atomic_store(&csp__rt.state, CSP__RT_STOPPED);
}

CSP_EXTERN int csp_run(void (*main_fn)(void *), void *arg, const csp_config_t *cfg)
{
    if (!main_fn)
        return CSP_EINVAL;
    if (csp__cur_worker())
        return CSP_ESTATE;
    pthread_mutex_lock(&rt_lifecycle);
    int r = rt_setup(cfg);
    if (r) {
        pthread_mutex_unlock(&rt_lifecycle);
        return r;
    }
    csp__worker_t *w0 = csp__rt.workers[0];
    atomic_store(&csp__rt.state, CSP__RT_RUNNING);
    /* the caller's thread becomes worker 0 */
    worker_thread_setup(w0);
    csp__task_t *mt;
    r = spawn(main_fn, arg, 0, &(csp_task_opts_t){ .name = "main" }, &mt, __builtin_return_address(0));
    if (r == 0) {
        atomic_store(&csp__rt.main_task, mt);
        deadlock_setup();
        runq_put(w0, mt, false);
        r = rt_start_threads(1);
    }
    pthread_mutex_unlock(&rt_lifecycle);
    if (r == 0)
        worker_loop(w0);
    pthread_mutex_lock(&rt_lifecycle);
    rt_stop_and_join();
    if (r == 0 && atomic_load(&csp__rt.deadlock))
        r = CSP_EDEADLOCK;
    worker_thread_teardown();
    rt_teardown();
    pthread_mutex_unlock(&rt_lifecycle);
    return r;
}

CSP_EXTERN int csp_init(const csp_config_t *cfg)
{
    if (csp__cur_worker())
        return CSP_ESTATE;
    pthread_mutex_lock(&rt_lifecycle);
    int r = rt_setup(cfg);
    if (r == 0) {
        atomic_store(&csp__rt.state, CSP__RT_RUNNING);
        r = rt_start_threads(0);
        if (r) {
            rt_stop_and_join();
            rt_teardown();
        }
    }
    pthread_mutex_unlock(&rt_lifecycle);
    return r;
}

static void sweep_wake(csp__task_t *t, void *arg)
{
    (void)arg;
    if (atomic_load(&t->pstate) == CSP__PS_PARKED && t->waiter)
        csp__waiter_wake(t->waiter, CSP__W_SHUTDOWN);
}

CSP_EXTERN void csp_shutdown(void)
{
    if (csp__cur_worker())
        return; /* not from a task or worker */
    pthread_mutex_lock(&rt_lifecycle);
    int expect = CSP__RT_RUNNING;
    if (!atomic_compare_exchange_strong(&csp__rt.state, &expect, CSP__RT_SHUTDOWN)) {
        pthread_mutex_unlock(&rt_lifecycle);
        return;
    }
    /* stop the world, wake every parked waiter with CSP_ESHUTDOWN */
    atomic_store(&csp__rt.stw_stopped, 0);
    atomic_store(&csp__rt.stw, 1);
    atomic_store(&csp__rt.interrupt, 1);
    wake_all_workers();
    uint32_t s;
    while ((s = atomic_load(&csp__rt.stw_stopped)) < (uint32_t)csp__rt.nworkers)
        csp__futex_wait(&csp__rt.stw_stopped, s, csp_now() + 10 * CSP_MILLISECOND);
    csp__stacks_foreach(sweep_wake, NULL);
    csp__waiters_shutdown_threads();
    atomic_store(&csp__rt.stw, 0);
    atomic_store(&csp__rt.interrupt, 0);
    atomic_fetch_add(&csp__rt.stw_release, 1);
    csp__futex_wake(&csp__rt.stw_release, INT32_MAX);
    wake_all_workers();
    /* grace period: let the woken tasks return */
    csp_time_t until = csp_now() + 100 * CSP_MILLISECOND;
    while (live_tasks() > 0 && csp_now() < until) {
        struct timespec ts = { 0, 1000000 };
        nanosleep(&ts, NULL);
    }
    rt_stop_and_join();
    rt_teardown();
    pthread_mutex_unlock(&rt_lifecycle);
}
