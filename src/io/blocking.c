/* csp_blocking: blocking C calls on a pool of plain threads, parking only
 * the calling task.
 *
 * A request lives on the calling task's stack: the task is parked until the
 * request is done with, so the frame stays put. States, under bp.lock:
 *   QUEUED   on the FIFO queue, no thread has it
 *   RUNNING  a pool thread took it and runs fn
 *   DONE     fn returned and the pool thread will not touch it again
 * The pool thread that ran fn wakes the task through the waiter protocol
 * (CAS WAITING -> WOKEN, then csp__ready); after a successful wake it never
 * touches the request again (the task may have returned). If the wake fails
 * (the shutdown sweep woke the task first), it marks the request DONE under
 * the lock instead, and the task, which waits for DONE, returns only then.
 *
 * Invariants
 *   - bp.inflight = requests QUEUED or RUNNING (atomic mirror of the queue and
 *     the running count, read by the deadlock check: a request in flight can
 *     wake a task). Decremented only after the task was readied, so the check
 *     never sees "nothing runnable, nothing in flight" in between.
 *   - bp.running = pool threads inside fn or its wake. The teardown waits for
 *     0 before it frees task stacks (then no pool thread holds a request).
 *   - bp.nthreads counts live pool threads (deadlock check: they are not
 *     outside threads that could wake a task, unless a request is in flight).
 *
 * Lock order: bp.lock is a leaf except that a pool thread calls csp__ready
 * (run queues, with ext_enter) with it released.
 */
#define _GNU_SOURCE
#include "../sched/sched.h"
#include "../sched/wait.h"
#include "csp/ctx.h"
#include "csp/io.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { REQ_QUEUED = 0, REQ_RUNNING, REQ_DONE };

typedef struct req {
    void (*fn)(void *);
    void *arg;
    csp__waiter_t w;
    int state;                  /* REQ_*, under bp.lock */
    /* a caller whose context was done while fn runs parks here until DONE
     * (under bp.lock; the pool thread takes it off and wakes it) */
    csp__waiter_t *late;
    struct req *next, *prev;    /* the queue, under bp.lock */
} req_t;

#define IDLE_EXIT_NS (10 * CSP_SECOND)

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  work;      /* idle threads wait here */
    pthread_cond_t  changed;   /* the teardown waits here (running, nthreads) */
    req_t          *head, *tail;
    int             nidle;
    int             running;
    int             max;
    int             stopping;  /* teardown: idle threads exit now */
    _Atomic int     nthreads;  /* live pool threads (written under lock) */
    /* handles of the threads the teardown joins (a thread that exits idle
     * takes itself off and detaches) */
    pthread_t      *ths;
    int             nths, cap;
    _Atomic int     inflight;  /* queued + running (written under lock) */
} bp = { .lock = PTHREAD_MUTEX_INITIALIZER, .work = PTHREAD_COND_INITIALIZER,
        .changed = PTHREAD_COND_INITIALIZER };

int csp__blocking_inflight(void) { return atomic_load(&bp.inflight); }
int csp__blocking_threads(void) { return atomic_load(&bp.nthreads); }

static void queue_remove(req_t *r)
{
    if (r->prev)
        r->prev->next = r->next;
    else
        bp.head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        bp.tail = r->prev;
    r->next = r->prev = NULL;
}

static void *pool_thread(void *arg)
{
    (void)arg;
    csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
    for (;;) {
        while (!bp.head && !bp.stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += IDLE_EXIT_NS / CSP_SECOND;
            bp.nidle++;
            int e = pthread_cond_clockwait(&bp.work, &bp.lock, CLOCK_MONOTONIC, &ts);
            bp.nidle--;
            if (e == ETIMEDOUT && !bp.head && !bp.stopping) {
                /* idle too long: leave, detached (nobody will join us) */
                for (int i = 0; i < bp.nths; i++)
                    if (pthread_equal(bp.ths[i], pthread_self())) {
                        bp.ths[i] = bp.ths[--bp.nths];
                        pthread_detach(pthread_self());
                        break;
                    }
                goto out;
            }
        }
        if (bp.stopping || csp__shutting_down())
            goto out; /* queued requests never run once the runtime stops */
        req_t *r = bp.head;
        queue_remove(r);
        r->state = REQ_RUNNING;
        bp.running++;
        csp__mutex_unlock(&bp.lock);

        r->fn(r->arg);

        /* the last touch of r when it succeeds (the task may return) */
        bool woke = csp__waiter_wake(&r->w, CSP__W_WOKEN);
        csp__waiter_t *late = NULL;
        csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
        if (!woke) {
            /* the task was woken by its context or the shutdown sweep and
             * waits for DONE: parked on r->late, or blocked on bp.changed */
            r->state = REQ_DONE;
            late = r->late;
            r->late = NULL;
        }
        atomic_fetch_sub(&bp.inflight, 1); /* seq_cst: see csp__deadlock_poke */
        csp__mutex_unlock(&bp.lock);
        if (late)
            csp__waiter_wake_dequeued(late, CSP__W_WOKEN); /* our last touch of it */
        /* Every worker may have gone idle, and checked for a deadlock,
         * while this call was still in flight: let one look again. No
         * ext_enter (the check would see it and pass again): bp.running
         * still counts us, and the teardown frees nothing of the runtime
         * before it is 0. */
        if (atomic_load(&csp__rt.state) == CSP__RT_RUNNING)
            csp__deadlock_poke();
        csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
        bp.running--;
        if (bp.stopping || !woke)
            pthread_cond_broadcast(&bp.changed);
    }
out:
    atomic_store(&bp.nthreads, atomic_load(&bp.nthreads) - 1);
    pthread_cond_broadcast(&bp.changed);
    csp__mutex_unlock(&bp.lock);
    return NULL;
}

/* bp.lock held: a thread for the request just queued, if none is idle. */
static void pool_grow(void)
{
    if (bp.nidle > 0) {
        pthread_cond_signal(&bp.work);
        return;
    }
    if (atomic_load(&bp.nthreads) >= bp.max)
        return; /* queued until a thread is free */
    pthread_attr_t a;
    pthread_attr_init(&a);
    if (bp.nths == bp.cap) {
        int cap = bp.cap ? 2 * bp.cap : 16;
        pthread_t *n = realloc(bp.ths, (size_t)cap * sizeof *n);
        if (!n)
            return; /* a running thread takes the request later */
        bp.ths = n;
        bp.cap = cap;
    }
    /* counted before it exists: the deadlock check then errs on the safe
     * side (a thread it cannot see is allowed for, not the reverse) */
    atomic_store(&bp.nthreads, atomic_load(&bp.nthreads) + 1);
    if (pthread_create(&bp.ths[bp.nths], &a, pool_thread, NULL) == 0)
        bp.nths++;
    else
        atomic_store(&bp.nthreads, atomic_load(&bp.nthreads) - 1);
    pthread_attr_destroy(&a);
    /* if no thread could be made, a running one takes the request later;
     * with none at all it waits for the next call's attempt */
}

/* the runtime's teardown (world stopped) frees a task still waiting: take
 * its request off the queue if it is there */
static void req_unlink(csp__waiter_t *w)
{
    req_t *r = (req_t *)((char *)w - offsetof(req_t, w));
    csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
    if (r->state == REQ_QUEUED) {
        queue_remove(r);
        r->state = REQ_DONE;
        atomic_store(&bp.inflight, atomic_load(&bp.inflight) - 1);
    }
    csp__mutex_unlock(&bp.lock);
}

/* The caller's request was woken other than by its completion (st: its
 * context, or the shutdown sweep), with bp.lock held. Takes a queued request
 * off the queue (fn never runs), or waits until a running fn has returned:
 * parked on a second waiter the pool thread wakes, or, once the runtime is
 * stopping, blocking the worker on bp.changed (the teardown waits for fn
 * anyway). Returns with bp.lock released; true if fn ran. */
static bool req_abandon(req_t *r)
{
    if (r->state == REQ_QUEUED) {
        queue_remove(r);
        r->state = REQ_DONE;
        atomic_fetch_sub(&bp.inflight, 1);
        csp__mutex_unlock(&bp.lock);
        return false;
    }
    while (r->state != REQ_DONE) {
        if (csp__shutting_down()) {
            pthread_cond_wait(&bp.changed, &bp.lock); /* shutdown only */
            continue;
        }
        csp__waiter_t w2;
        csp__waiter_init(&w2);
        r->late = &w2;
        csp__mutex_unlock(&bp.lock);
        uint32_t st = csp__waiter_wait(&w2, CSP_FOREVER, "blocking");
        csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
        if (r->late == &w2) {
            r->late = NULL; /* woken by the sweep: the pool thread never saw w2 */
        } else if (st != CSP__W_WOKEN) {
            /* the pool thread took w2 and lost the wake race: let it finish
             * with w2 before our frame goes */
            csp__mutex_unlock(&bp.lock);
            csp__waiter_await_ack(&w2);
            csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
        }
    }
    csp__mutex_unlock(&bp.lock);
    return true;
}

/* ctx NULL: no context. */
static int blocking(csp_ctx_t *ctx, void (*fn)(void *), void *arg)
{
    if (!csp__cur_task()) {
        if (ctx) {
            int e = csp_ctx_err(ctx);
            if (e)
                return e;
        }
        fn(arg); /* a plain thread may block */
        return 0;
    }
    if (csp__shutting_down())
        return csp__shutdown_err();
    if (ctx) {
        int e = csp_ctx_err(ctx);
        if (e)
            return e;
    }
    req_t r;
    r.fn = fn;
    r.arg = arg;
    r.state = REQ_QUEUED;
    r.late = NULL;
    r.next = NULL;
    csp__waiter_init(&r.w);
    r.w.unlink = req_unlink;
    r.w.obj = &r;
    csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
    if (bp.stopping) {
        csp__mutex_unlock(&bp.lock);
        return csp__shutdown_err();
    }
    r.prev = bp.tail;
    if (bp.tail)
        bp.tail->next = &r;
    else
        bp.head = &r;
    bp.tail = &r;
    atomic_fetch_add(&bp.inflight, 1);
    pool_grow();
    csp__mutex_unlock(&bp.lock);

    uint32_t st = csp__waiter_wait_ctx(&r.w, ctx, CSP_FOREVER, "blocking");
    if (st == CSP__W_WOKEN)
        return 0;
    csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
    bool ran = req_abandon(&r);
    if (st == CSP__W_SHUTDOWN)
        return CSP_ESHUTDOWN;
    /* the context: before fn started, its error; after, fn's results stand */
    return ran ? 0 : csp_ctx_err(ctx);
}

CSP_EXTERN int csp_blocking(void (*fn)(void *), void *arg)
{
    if (!fn)
        return CSP_EINVAL;
    return blocking(NULL, fn, arg);
}

CSP_EXTERN int csp_blocking_ctx(csp_ctx_t *ctx, void (*fn)(void *), void *arg)
{
    if (!ctx || !fn)
        return CSP_EINVAL;
    return blocking(ctx, fn, arg);
}

/* Runtime start: the thread cap from env. */
void csp__blocking_setup(void)
{
    int max = CSP_BLOCKING_MAX_THREADS;
    const char *e = getenv("CSP_BLOCKING_MAX");
    if (e && *e) {
        char *end;
        long v = strtol(e, &end, 10);
        if (*end == 0 && v >= 1 && v <= 4096)
            max = (int)v;
    }
    csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
    bp.max = max;
    bp.stopping = 0;
    csp__mutex_unlock(&bp.lock);
}

/* Runtime teardown, workers stopped, before task stacks are freed: waits for
 * every fn still running to return (saying so every second), then lets the
 * idle threads go. Queued requests are dropped by their tasks' unlink hooks
 * (the teardown frees those tasks). */
void csp__blocking_teardown(void)
{
    csp__mutex_lock(&bp.lock, CSP__RANK_BLOCKING);
    bp.stopping = 1;
    pthread_cond_broadcast(&bp.work);
    csp_time_t next_note = csp_now() + CSP_SECOND;
    while (bp.running > 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += 100 * 1000 * 1000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_clockwait(&bp.changed, &bp.lock, CLOCK_MONOTONIC, &ts);
        if (bp.running > 0 && csp_now() >= next_note) {
            fprintf(stderr, "libcsp: stopping: waiting for %d csp_blocking call(s) to return\n",
                    bp.running);
            next_note = csp_now() + CSP_SECOND;
        }
    }
    /* the threads exit at once (woken above, nothing runs); join them, so
     * that the next csp_run's deadlock check does not see them as the
     * program's own */
    pthread_t *ths = bp.ths;
    int n = bp.nths;
    bp.ths = NULL;
    bp.nths = bp.cap = 0;
    csp__mutex_unlock(&bp.lock);
    for (int i = 0; i < n; i++)
        pthread_join(ths[i], NULL);
    free(ths);
}
