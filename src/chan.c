/* Channels and select: Go's chan.go and select.go on libcsp's waiters.
 *
 * Invariants (c->lock held):
 *   - At least one of c->sendq and c->recvq is empty, except transiently for
 *     sudogs that lost their claim (a select case whose select already fired
 *     elsewhere, or a timed-out wait): those are skipped and dropped by the
 *     next dequeue, or removed by their owner.
 *   - qcount > 0 implies recvq holds no claimable receiver; qcount < cap
 *     implies sendq holds no claimable sender.
 *   - A closed channel has no queued sudogs once close returns (close claims
 *     and completes them all).
 *   - sudog.queued is written only under its channel's lock.
 *
 * Waking (wait.h two-phase protocol): the waker dequeues a sudog and claims
 * its waiter under c->lock (WAITING -> CLAIMED); only then does it copy the
 * value into or out of the waiter's buffer and record the case; after
 * unlocking it completes the waiter (-> WOKEN, ready or futex wake). A claim
 * that fails (timed out, shut down, or another case of the same select won)
 * means the sudog is skipped, untouched. A claimed waiter never times out,
 * so it is still there when completed.
 *
 * Select locks every channel involved in address order (Go's lockorder),
 * polls the cases in a random order (Go's pollorder: uniform choice among
 * ready cases), and, if none is ready, queues one sudog per case, all sharing
 * one waiter, so exactly one case can win.
 *
 * Lock order: channel locks (by address) < timer heap? No: a channel lock is
 * never held while taking a timer lock; the waiter arms its deadline timer
 * after unlocking (csp__waiter_wait). Channel locks < run-queue locks
 * (completing a waiter readies a task, always after unlocking here).
 */
#define CSP__SPIN_RANK CSP__RANK_CHAN /* lock ranks: internal.h */
#include "sched/wait.h"
#include "chan_internal.h"

#include <stdlib.h>
#include <string.h>

typedef struct csp__sudog {
    csp__waiter_t     *w;        /* the blocked task/thread, shared by a select's cases */
    struct csp__sudog *next, *prev;
    csp_chan_t        *c;
    void              *elem;     /* send: the value; recv: destination (NULL discards) */
    int                index;    /* the case index (0 for plain send/recv) */
    int                status;   /* written by the waker that claimed w: 0 or CSP_ECLOSED */
    bool               queued;   /* under c->lock */
} csp__sudog_t;

typedef struct {
    csp__sudog_t    *head, *tail;
    _Atomic uint32_t n;   /* queued sudogs (incl. stale ones); written under the
                           * lock, read racily as a readiness hint */
} csp__waitq_t;

struct csp_chan {
    csp__spinlock_t  lock;
    struct csp_timer *timer;     /* csp_after's timer: cancelled and freed with the channel */
    _Atomic int32_t  refs;
    _Atomic uint32_t closed;     /* written under lock; read racily by csp_chan_closed */
    size_t           elem_size;
    size_t           cap;
    _Atomic size_t   qcount;     /* written under lock; read racily by csp_chan_len */
    size_t           sendx, recvx;
    csp__waitq_t     recvq, sendq;
    char             buf[] __attribute__((aligned(16)));
};

/* ---- wait queues (caller holds c->lock) ---- */

static void waitq_push(csp__waitq_t *q, csp__sudog_t *sg)
{
    sg->next = NULL;
    sg->prev = q->tail;
    if (q->tail)
        q->tail->next = sg;
    else
        q->head = sg;
    q->tail = sg;
    sg->queued = true;
    atomic_store_explicit(&q->n, atomic_load_explicit(&q->n, memory_order_relaxed) + 1,
                          memory_order_relaxed);
}

static void waitq_remove(csp__waitq_t *q, csp__sudog_t *sg)
{
    if (sg->prev)
        sg->prev->next = sg->next;
    else
        q->head = sg->next;
    if (sg->next)
        sg->next->prev = sg->prev;
    else
        q->tail = sg->prev;
    sg->next = sg->prev = NULL;
    sg->queued = false;
    atomic_store_explicit(&q->n, atomic_load_explicit(&q->n, memory_order_relaxed) - 1,
                          memory_order_relaxed);
}

/* The first sudog whose waiter we can claim; drops the ones we can't. */
static csp__sudog_t *waitq_claim(csp__waitq_t *q)
{
    csp__sudog_t *sg;
    while ((sg = q->head)) {
        waitq_remove(q, sg);
        if (csp__waiter_claim(sg->w))
            return sg;
    }
    return NULL;
}

/* Element copies: the common small sizes inline (no call to memcpy). */
static inline void copy_bytes(void *dst, const void *src, size_t n)
{
    switch (n) {
    case 1: memcpy(dst, src, 1); break;
    case 2: memcpy(dst, src, 2); break;
    case 4: memcpy(dst, src, 4); break;
    case 8: memcpy(dst, src, 8); break;
    case 16: memcpy(dst, src, 16); break;
    default: memcpy(dst, src, n); break;
    }
}

static inline void copy_elem(csp_chan_t *c, void *dst, const void *src)
{
    if (c->elem_size && dst)
        copy_bytes(dst, src, c->elem_size);
}

static inline void zero_elem(csp_chan_t *c, void *dst)
{
    if (c->elem_size && dst)
        memset(dst, 0, c->elem_size);
}

static inline char *slot(csp_chan_t *c, size_t i)
{
    return c->buf + i * c->elem_size;
}

/* ---- lock-free readiness (Go's chan.go empty()/full()) ----
 * One racy read each, valid at the moment it is made thanks to the queue
 * invariants at the top: a buffered channel with qcount == 0 has no
 * claimable sender, and with qcount == cap no claimable receiver. Stale
 * (unclaimable) sudogs only make a channel look ready when it is not, which
 * costs a locked attempt, never a wrong answer. acquire: orders the closed
 * load after this one (Go's "not ready, then not closed" argument). */
static inline bool recv_not_ready(const csp_chan_t *c)
{
    if (c->cap)
        return atomic_load_explicit(&c->qcount, memory_order_acquire) == 0;
    return atomic_load_explicit(&c->sendq.n, memory_order_acquire) == 0;
}

static inline bool send_not_ready(const csp_chan_t *c)
{
    if (c->cap)
        return atomic_load_explicit(&c->qcount, memory_order_acquire) == c->cap;
    return atomic_load_explicit(&c->recvq.n, memory_order_acquire) == 0;
}

/* True when an operation in direction dir would certainly block now. */
static inline bool would_block(const csp_chan_t *c, int dir)
{
    if (dir == CSP_SEND ? !send_not_ready(c) : !recv_not_ready(c))
        return false;
    return !atomic_load_explicit(&c->closed, memory_order_relaxed);
}

/* Completes a claimed sudog's waiter as case sg->index. Call after unlock. */
static inline void finish(csp__sudog_t *sg)
{
    sg->w->result = sg->index;
    csp__waiter_complete(sg->w);
}

/* ---- lifecycle ---- */

CSP_EXTERN csp_chan_t *csp_chan_make(size_t elem_size, size_t capacity)
{
    if (elem_size > CSP_CHAN_MAX_ELEM || capacity > CSP_CHAN_MAX_CAP)
        return NULL;
    size_t bytes = elem_size * capacity; /* both bounded: no overflow */
    csp_chan_t *c = aligned_alloc(64, (sizeof *c + bytes + 63) & ~(size_t)63);
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
    c->elem_size = elem_size;
    c->cap = capacity;
    return c;
}

CSP_EXTERN csp_chan_t *csp_chan_retain(csp_chan_t *c)
{
    if (c)
        atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    return c;
}

CSP_EXTERN void csp_chan_release(csp_chan_t *c)
{
    if (!c)
        return;
    /* acq_rel: the last release sees every use by other holders */
    if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) == 1) {
        if (c->timer)
            csp__timer_chan_free(c->timer); /* waits for a firing in progress */
        free(c);
    }
}

void csp__chan_set_timer(csp_chan_t *c, struct csp_timer *t)
{
    c->timer = t;
}

size_t csp__chan_drain(csp_chan_t *c)
{
    csp__spin_lock(&c->lock);
    size_t n = atomic_load_explicit(&c->qcount, memory_order_relaxed);
    atomic_store_explicit(&c->qcount, 0, memory_order_relaxed);
    c->recvx = c->sendx = 0;
    csp__spin_unlock(&c->lock);
    return n;
}

CSP_EXTERN size_t csp_chan_len(const csp_chan_t *c)
{
    return c ? atomic_load_explicit(&((csp_chan_t *)c)->qcount, memory_order_relaxed) : 0;
}

CSP_EXTERN size_t csp_chan_cap(const csp_chan_t *c)
{
    return c ? c->cap : 0;
}

CSP_EXTERN size_t csp_chan_elem_size(const csp_chan_t *c)
{
    return c ? c->elem_size : 0;
}

CSP_EXTERN int csp_chan_closed(const csp_chan_t *c)
{
    return c ? (int)atomic_load_explicit(&((csp_chan_t *)c)->closed, memory_order_acquire) : 0;
}

/* ---- the operations, lock held; true if done (*status set) ---- */

/* Send without blocking. Caller holds c->lock; *wake gets a sudog to finish
 * after unlocking. */
static bool try_send_locked(csp_chan_t *c, const void *elem, int *status, csp__sudog_t **wake)
{
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
        *status = CSP_ECLOSED;
        return true;
    }
    csp__sudog_t *sg = waitq_claim(&c->recvq);
    if (sg) {
        copy_elem(c, sg->elem, elem); /* straight into the receiver's buffer */
        sg->status = 0;
        *wake = sg;
        *status = 0;
        return true;
    }
    size_t q = atomic_load_explicit(&c->qcount, memory_order_relaxed);
    if (q < c->cap) {
        copy_elem(c, slot(c, c->sendx), elem);
        if (++c->sendx == c->cap)
            c->sendx = 0;
        atomic_store_explicit(&c->qcount, q + 1, memory_order_relaxed);
        *status = 0;
        return true;
    }
    return false;
}

static bool try_recv_locked(csp_chan_t *c, void *out, int *status, csp__sudog_t **wake)
{
    csp__sudog_t *sg = waitq_claim(&c->sendq);
    if (sg) {
        if (c->cap == 0) {
            copy_elem(c, out, sg->elem);
        } else {
            /* full buffer: take the head, the sender's value goes to the tail */
            copy_elem(c, out, slot(c, c->recvx));
            copy_elem(c, slot(c, c->recvx), sg->elem);
            if (++c->recvx == c->cap)
                c->recvx = 0;
            c->sendx = c->recvx;
        }
        sg->status = 0;
        *wake = sg;
        *status = 0;
        return true;
    }
    size_t q = atomic_load_explicit(&c->qcount, memory_order_relaxed);
    if (q > 0) {
        copy_elem(c, out, slot(c, c->recvx));
        if (++c->recvx == c->cap)
            c->recvx = 0;
        atomic_store_explicit(&c->qcount, q - 1, memory_order_relaxed);
        *status = 0;
        return true;
    }
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
        zero_elem(c, out);
        *status = CSP_ECLOSED;
        return true;
    }
    return false;
}

/* Teardown hooks (wait.h): a task freed while blocked leaves no sudog on a
 * channel that outlives the runtime. */
static void unlink_sudog(csp__sudog_t *sg, int dir)
{
    csp_chan_t *c = sg->c;
    csp__spin_lock(&c->lock);
    if (sg->queued)
        waitq_remove(dir == CSP_SEND ? &c->sendq : &c->recvq, sg);
    csp__spin_unlock(&c->lock);
    csp_chan_release(c); /* the blocked operation's reference (see chan_op) */
}

static void unlink_send(csp__waiter_t *w) { unlink_sudog(w->obj, CSP_SEND); }
static void unlink_recv(csp__waiter_t *w) { unlink_sudog(w->obj, CSP_RECV); }

typedef struct {
    csp_case_t   *cases;
    csp__sudog_t *sgs;
    size_t        n;
} select_rec_t;

static void unlink_select(csp__waiter_t *w)
{
    select_rec_t *r = w->obj;
    for (size_t i = 0; i < r->n; i++)
        if (r->cases[i].chan)
            unlink_sudog(&r->sgs[i], r->cases[i].dir);
}

/* Common blocking path for send (dir CSP_SEND) and recv. */
static int chan_op(csp_chan_t *c, int dir, void *elem, csp_time_t deadline, csp_ctx_t *ctx)
{
    if (!c || (dir == CSP_SEND && !elem && c->elem_size))
        return CSP_EINVAL;
    if (deadline == 0 && would_block(c, dir))
        return CSP_EAGAIN; /* a failing poll takes no lock (Go's fast path) */
    int status;
    csp__sudog_t *wake = NULL;
    csp__spin_lock(&c->lock);
    bool done = dir == CSP_SEND ? try_send_locked(c, elem, &status, &wake)
                                : try_recv_locked(c, elem, &status, &wake);
    if (done) {
        csp__spin_unlock(&c->lock);
        if (wake)
            finish(wake);
        return status;
    }
    if (deadline == 0) {
        csp__spin_unlock(&c->lock);
        return CSP_EAGAIN;
    }
    if (deadline != CSP_FOREVER && deadline <= csp_now()) {
        csp__spin_unlock(&c->lock);
        return CSP_ETIMEDOUT;
    }
    if (csp__shutting_down()) {
        csp__spin_unlock(&c->lock);
        return csp__shutdown_err();
    }
    if (ctx) {
        int e = csp_ctx_err(ctx); /* lock-free load: no ctx lock under c->lock */
        if (e) {
            csp__spin_unlock(&c->lock);
            return e;
        }
    }
    csp__waiter_t w;
    csp__waiter_init(&w);
    csp__sudog_t sg = { .w = &w, .c = c, .elem = elem, .index = 0, .status = 0 };
    w.obj = &sg;
    w.what = c;
    w.unlink = dir == CSP_SEND ? unlink_send : unlink_recv;
    /* A blocked operation keeps its channel alive (Go's GC does): the caller
     * may drop its reference while we wait, and a task the runtime frees
     * while blocked (or woken but not yet run) is unlinked from a channel
     * that must still exist. relaxed: we hold a reference through the
     * caller, and the release below is acq_rel. */
    atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
    waitq_push(dir == CSP_SEND ? &c->sendq : &c->recvq, &sg);
    csp__spin_unlock(&c->lock);
    uint32_t st = csp__waiter_wait_ctx(&w, ctx, deadline, dir == CSP_SEND ? "chan send" : "chan recv");
    if (st == CSP__W_WOKEN) {
        csp_chan_release(c);
        return sg.status;
    }
    csp__spin_lock(&c->lock);
    if (sg.queued)
        waitq_remove(dir == CSP_SEND ? &c->sendq : &c->recvq, &sg);
    csp__spin_unlock(&c->lock);
    csp_chan_release(c);
    return st == CSP__W_TIMEDOUT ? CSP_ETIMEDOUT
         : st == CSP__W_CANCELED ? csp_ctx_err(ctx)
                                 : csp__shutdown_err();
}

CSP_EXTERN int csp_chan_send(csp_chan_t *c, const void *elem)
{
    return chan_op(c, CSP_SEND, (void *)elem, CSP_FOREVER, NULL);
}

CSP_EXTERN int csp_chan_recv(csp_chan_t *c, void *out)
{
    return chan_op(c, CSP_RECV, out, CSP_FOREVER, NULL);
}

CSP_EXTERN int csp_chan_try_send(csp_chan_t *c, const void *elem)
{
    return chan_op(c, CSP_SEND, (void *)elem, 0, NULL);
}

CSP_EXTERN int csp_chan_try_recv(csp_chan_t *c, void *out)
{
    return chan_op(c, CSP_RECV, out, 0, NULL);
}

CSP_EXTERN int csp_chan_send_until(csp_chan_t *c, const void *elem, csp_time_t deadline)
{
    return chan_op(c, CSP_SEND, (void *)elem, deadline, NULL);
}

CSP_EXTERN int csp_chan_recv_until(csp_chan_t *c, void *out, csp_time_t deadline)
{
    return chan_op(c, CSP_RECV, out, deadline, NULL);
}

CSP_EXTERN int csp_chan_send_ctx(csp_ctx_t *ctx, csp_chan_t *c, const void *elem)
{
    if (!ctx)
        return CSP_EINVAL;
    return chan_op(c, CSP_SEND, (void *)elem, CSP_FOREVER, ctx);
}

CSP_EXTERN int csp_chan_recv_ctx(csp_ctx_t *ctx, csp_chan_t *c, void *out)
{
    if (!ctx)
        return CSP_EINVAL;
    return chan_op(c, CSP_RECV, out, CSP_FOREVER, ctx);
}

CSP_EXTERN int csp_chan_close(csp_chan_t *c)
{
    if (!c)
        return CSP_EINVAL;
    csp__spin_lock(&c->lock);
    if (atomic_load_explicit(&c->closed, memory_order_relaxed)) {
        csp__spin_unlock(&c->lock);
        return CSP_ECLOSED;
    }
    atomic_store_explicit(&c->closed, 1, memory_order_release);
    /* claim every waiter; link the winners through next (they stay alive until
     * completed) */
    csp__sudog_t *list = NULL, *sg;
    while ((sg = waitq_claim(&c->recvq))) {
        zero_elem(c, sg->elem);
        sg->status = CSP_ECLOSED;
        sg->next = list;
        list = sg;
    }
    while ((sg = waitq_claim(&c->sendq))) {
        sg->status = CSP_ECLOSED;
        sg->next = list;
        list = sg;
    }
    csp__spin_unlock(&c->lock);
    while (list) {
        sg = list;
        list = sg->next; /* read before finishing: the frame may go */
        finish(sg);
    }
    return 0;
}

/* ---- select ---- */

static uint64_t select_rand(void)
{
    csp__worker_t *w = csp__cur_worker();
    if (w)
        return csp__rand_next(&w->rng);
    static __thread uint64_t s;
    if (!s)
        s = (uint64_t)(uintptr_t)&s ^ (uint64_t)csp_now() ^ 0x9E3779B97F4A7C15ULL;
    return csp__rand_next(&s);
}

static void lock_all(csp_case_t *cases, const uint16_t *lockorder, size_t n)
{
    csp_chan_t *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        csp_chan_t *c = cases[lockorder[i]].chan;
        if (c != prev)
            csp__spin_lock(&c->lock);
        prev = c;
    }
}

static void unlock_all(csp_case_t *cases, const uint16_t *lockorder, size_t n)
{
    csp_chan_t *prev = NULL;
    for (size_t i = 0; i < n; i++) {
        csp_chan_t *c = cases[lockorder[i]].chan;
        if (c != prev)
            csp__spin_unlock(&c->lock);
        prev = c;
    }
}

#define CSP__SELECT_MAX 65535u
#define CSP__SELECT_STACK 16u

static int select_impl(csp_case_t *cases, size_t n, csp_time_t deadline, bool biased,
                       csp_ctx_t *ctx);

CSP_EXTERN int csp_select(csp_case_t *cases, size_t n, csp_time_t deadline)
{
    return select_impl(cases, n, deadline, false, NULL);
}

CSP_EXTERN int csp_select_ctx(csp_ctx_t *ctx, csp_case_t *cases, size_t n)
{
    if (!ctx)
        return CSP_EINVAL;
    return select_impl(cases, n, CSP_FOREVER, false, ctx);
}

CSP_EXTERN int csp_select_ctx_until(csp_ctx_t *ctx, csp_case_t *cases, size_t n,
                                    csp_time_t deadline)
{
    if (!ctx)
        return CSP_EINVAL;
    return select_impl(cases, n, deadline, false, ctx);
}

CSP_EXTERN int csp_select_biased(csp_case_t *cases, size_t n, csp_time_t deadline)
{
    return select_impl(cases, n, deadline, true, NULL);
}

static int select_impl(csp_case_t *cases, size_t n, csp_time_t deadline, bool biased,
                       csp_ctx_t *ctx)
{
    if ((!cases && n > 0) || n > CSP__SELECT_MAX)
        return CSP_EINVAL;
    for (size_t i = 0; i < n; i++) {
        csp_case_t *k = &cases[i];
        if (k->dir != CSP_RECV && k->dir != CSP_SEND)
            return CSP_EINVAL;
        if (k->dir == CSP_SEND && k->chan && k->chan->elem_size && !k->buf)
            return CSP_EINVAL;
    }

    /* scratch: poll order, lock order (non-NULL channels only), sudogs */
    uint16_t po_s[CSP__SELECT_STACK] = { 0 }, lo_s[CSP__SELECT_STACK] = { 0 };
    csp__sudog_t sg_s[CSP__SELECT_STACK];
    uint16_t *pollorder = po_s, *lockorder = lo_s;
    csp__sudog_t *sgs = sg_s;
    void *heap = NULL;
    if (n > CSP__SELECT_STACK) {
        heap = malloc(n * (2 * sizeof(uint16_t) + sizeof(csp__sudog_t)) + 16);
        if (!heap)
            return CSP_ENOMEM;
        sgs = heap;
        pollorder = (uint16_t *)(sgs + n);
        lockorder = pollorder + n;
    }

    /* pollorder: a uniform random permutation of the cases (Fisher-Yates),
     * or the given order for a biased select */
    size_t np = 0, nl = 0;
    for (size_t i = 0; i < n; i++) {
        if (!cases[i].chan)
            continue;
        size_t j = biased ? np : (size_t)(((select_rand() >> 32) * (uint64_t)(np + 1)) >> 32);
        pollorder[np] = pollorder[j];
        pollorder[j] = (uint16_t)i;
        np++;
        lockorder[nl++] = (uint16_t)i;
    }
    /* the context is one more case, at a random place in the poll order */
    size_t ctxpos = SIZE_MAX;
    if (ctx)
        ctxpos = biased ? np : (size_t)(((select_rand() >> 32) * (uint64_t)(np + 1)) >> 32);

    int result;
    /* Fast pass (not in Go): take only the lock of the first case that looks
     * ready (a racy hint, see would_block). Several ready cases still give a
     * uniform choice: the scan follows pollorder. Only if none looks ready
     * (or the ones that did raced away) are all the locks taken. */
    for (size_t p = 0; p <= np; p++) {
        if (p == ctxpos) {
            int e = csp_ctx_err(ctx);
            if (e) {
                result = e;
                goto out;
            }
        }
        if (p == np)
            break;
        /* A biased select may take only its first case here. A later one
         * could be chosen on stale hints of the earlier ones: a producer
         * that readies case 0 and then case 1 must never see case 1 win
         * (the hints are read one at a time, not as one snapshot). The
         * locked pass below checks the cases in order with every lock
         * held. Found by test_heartbeat_per_work under TSan: a result
         * chosen before the pulse sent ahead of it. */
        if (biased && p > 0)
            break;
        int i = pollorder[p];
        csp_case_t *k = &cases[i];
        if (would_block(k->chan, k->dir))
            continue;
        int status;
        csp__sudog_t *wake = NULL;
        csp__spin_lock(&k->chan->lock);
        bool done = k->dir == CSP_SEND ? try_send_locked(k->chan, k->buf, &status, &wake)
                                       : try_recv_locked(k->chan, k->buf, &status, &wake);
        csp__spin_unlock(&k->chan->lock);
        if (done) {
            if (wake)
                finish(wake);
            k->status = status;
            result = i;
            goto out;
        }
    }
    if (deadline == 0 && np <= 1 && !ctx) {
        /* one channel: its observation above is exact (Go's poll fast path) */
        result = CSP_EAGAIN;
        goto out;
    }

    /* lockorder: by channel address (insertion sort: n is small) */
    for (size_t i = 1; i < nl; i++) {
        uint16_t x = lockorder[i];
        size_t j = i;
        while (j > 0 && (uintptr_t)cases[lockorder[j - 1]].chan > (uintptr_t)cases[x].chan) {
            lockorder[j] = lockorder[j - 1];
            j--;
        }
        lockorder[j] = x;
    }

    lock_all(cases, lockorder, nl);
    for (size_t p = 0; p <= np; p++) {
        if (p == ctxpos) {
            int e = csp_ctx_err(ctx); /* lock-free: no ctx lock under channel locks */
            if (e) {
                unlock_all(cases, lockorder, nl);
                result = e;
                goto out;
            }
        }
        if (p == np)
            break;
        int i = pollorder[p];
        csp_case_t *k = &cases[i];
        int status;
        csp__sudog_t *wake = NULL;
        bool done = k->dir == CSP_SEND ? try_send_locked(k->chan, k->buf, &status, &wake)
                                       : try_recv_locked(k->chan, k->buf, &status, &wake);
        if (done) {
            unlock_all(cases, lockorder, nl);
            if (wake)
                finish(wake);
            k->status = status;
            result = i;
            goto out;
        }
    }
    if (deadline == 0) {
        unlock_all(cases, lockorder, nl);
        result = CSP_EAGAIN;
        goto out;
    }
    if (deadline != CSP_FOREVER && deadline <= csp_now()) {
        unlock_all(cases, lockorder, nl);
        result = CSP_ETIMEDOUT;
        goto out;
    }
    if (csp__shutting_down()) {
        unlock_all(cases, lockorder, nl);
        result = csp__shutdown_err();
        goto out;
    }

    /* block: one sudog per case, all on one waiter */
    csp__waiter_t w;
    csp__waiter_init(&w);
    w.result = -1;
    select_rec_t rec = { cases, sgs, n };
    for (size_t i = 0; i < n; i++)
        sgs[i].queued = false;
    w.obj = &rec;
    w.unlink = unlink_select;
    for (size_t l = 0; l < nl; l++) {
        int i = lockorder[l];
        csp_case_t *k = &cases[i];
        csp__sudog_t *sg = &sgs[i];
        *sg = (csp__sudog_t){ .w = &w, .c = k->chan, .elem = k->buf, .index = i };
        atomic_fetch_add_explicit(&k->chan->refs, 1, memory_order_relaxed); /* as in chan_op */
        waitq_push(k->dir == CSP_SEND ? &k->chan->sendq : &k->chan->recvq, sg);
    }
    unlock_all(cases, lockorder, nl);
    uint32_t st = csp__waiter_wait_ctx(&w, ctx, deadline, "select");
    /* dequeue the cases that didn't fire */
    lock_all(cases, lockorder, nl);
    for (size_t l = 0; l < nl; l++) {
        int i = lockorder[l];
        csp__sudog_t *sg = &sgs[i];
        if (sg->queued)
            waitq_remove(cases[i].dir == CSP_SEND ? &cases[i].chan->sendq : &cases[i].chan->recvq,
                         sg);
    }
    unlock_all(cases, lockorder, nl);
    for (size_t l = 0; l < nl; l++)
        csp_chan_release(cases[lockorder[l]].chan);
    if (st == CSP__W_WOKEN) {
        result = w.result;
        cases[result].status = sgs[result].status;
    } else {
        result = st == CSP__W_TIMEDOUT ? CSP_ETIMEDOUT
               : st == CSP__W_CANCELED ? csp_ctx_err(ctx)
                                       : csp__shutdown_err();
    }
out:
    free(heap);
    return result;
}
