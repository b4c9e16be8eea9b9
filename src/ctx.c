/* Contexts: Go's context package (context.go) without a garbage collector.
 *
 * Kinds
 *   ROOT     background / todo: static, never cancelled, refcount ignored.
 *   CANCEL   with_cancel / with_deadline: owns cancellation state (below).
 *   VALUE    with_value: a (key, value) pair; cancellation is its parent's.
 *   WITHOUT  without_cancel: values of its parent, never cancelled.
 * Every context caches `canc`, its nearest CANCEL ancestor-or-self (NULL if
 * it can never be cancelled): err/cause/done/deadline/watches are canc's.
 *
 * Ownership
 *   - A child holds one reference on its parent (released when the child is
 *     freed), so ancestors outlive descendants; hence `canc` stays valid.
 *   - A CANCEL context that is not done is linked into the `children` list
 *     of its parent's canc (P), which holds NO reference: when the child's
 *     last reference goes, it unlinks itself under P's lock before freeing.
 *     A canceller detaching P's children under P's lock takes a reference on
 *     each child whose count is still > 0 (try_retain); a child at 0 is being
 *     freed by its last owner and has no observers (no children, no waiters:
 *     both hold references), so it is skipped (just marked unlinked).
 *
 * Fields of a CANCEL context, under its `lock` unless said:
 *   err, cause   0 until cancelled, then set once (atomic: read lock-free by
 *                csp_ctx_err, with acquire, pairing with the release store
 *                in cancel_one)
 *   done         the done channel, created lazily; closed in cancel_one
 *   children     CANCEL descendants whose canc-parent this is (sib links)
 *   watches      csp__ctx_watch_t list (ctx_internal.h)
 *   parent_canc, linked, sib_next/prev: this node's membership in its
 *                parent canc's children list, under the PARENT's lock
 *   timer        deadline timer; armed once at creation; deleted (outside
 *                every ctx lock) by cancel and by the last release
 *
 * Cancellation (cancel_tree) is iterative: a tree of any depth needs no
 * recursion and no nested context locks. It cancels the root, detaches its
 * children (retained) onto a work list, and repeats for each.
 *
 * Lock order: timer heap lock < context locks (never two at once) < channel
 * locks (closing `done`, in cancel_one) < run queues (waking waiters).
 * A deadline timer's function runs under the heap lock and so must not
 * cancel inline (cancel deletes timers, which takes heap locks): it spawns a
 * task that does (Go's time.AfterFunc).
 */
#define CSP__SPIN_RANK CSP__RANK_CTX /* lock ranks: internal.h */
#include "ctx_internal.h"
#include "sched/wait.h"

#include <stdlib.h>
#include <string.h>

enum { KIND_ROOT, KIND_CANCEL, KIND_VALUE, KIND_WITHOUT };

struct csp_ctx {
    _Atomic int32_t  refs;
    uint8_t          kind;
    _Atomic bool     timer_armed;   /* set once by with_deadline under lock (release) */
    csp_ctx_t       *parent;        /* strong reference; NULL for roots */
    csp_ctx_t       *canc;          /* nearest CANCEL ancestor-or-self, or NULL */
    /* VALUE */
    const void      *key;
    void            *value;
    void           (*value_free)(void *);
    /* CANCEL */
    csp__spinlock_t  lock;
    _Atomic int      err;
    _Atomic int      cause;
    csp_time_t       deadline;      /* effective; immutable after creation */
    csp_chan_t      *_Atomic done;  /* written under lock (release), read lock-free */
    csp_ctx_t       *children;
    csp__ctx_watch_t *watches;
    csp_ctx_t       *parent_canc;   /* the canc we are linked on (under its lock) */
    csp_ctx_t       *sib_next, *sib_prev;
    _Atomic bool     linked;        /* written under the parent canc's lock (release);
                                     * read lock-free by unlink_from_parent: once
                                     * false it never becomes true again */
    csp__timer_t     timer;
};

static csp_ctx_t ctx_background = { .refs = 1, .kind = KIND_ROOT };
static csp_ctx_t ctx_todo = { .refs = 1, .kind = KIND_ROOT };

CSP_EXTERN csp_ctx_t *csp_ctx_background(void) { return &ctx_background; }
CSP_EXTERN csp_ctx_t *csp_ctx_todo(void) { return &ctx_todo; }

/* ---- runtime bracket for plain threads (timers, spawns) ---- */

static bool rt_enter(void)
{
    if (csp__cur_worker())
        return true;
    return csp__ext_enter(CSP__RT_RUNNING, CSP__RT_SHUTDOWN);
}

static void rt_leave(void)
{
    if (!csp__cur_worker())
        csp__ext_exit();
}

static void timer_del(csp_ctx_t *c)
{
    /* Set (release) under c->lock by with_deadline, only while c is not
     * cancelled. Our callers either own c alone (last release) or have just
     * cancelled it under c->lock (cancel_one), so an arming that happened
     * is visible here and none can follow. The delete itself happens
     * outside every context lock. */
    bool armed = atomic_load_explicit(&c->timer_armed, memory_order_acquire);
    if (armed && rt_enter()) {
        csp__timer_del(&c->timer);
        rt_leave();
    }
}

/* ---- references ---- */

static bool try_retain(csp_ctx_t *c)
{
    int32_t r = atomic_load_explicit(&c->refs, memory_order_relaxed);
    while (r > 0)
        /* relaxed: the caller holds the parent canc's lock, which orders it
         * against the child's unlink (taken under the same lock) */
        if (atomic_compare_exchange_weak_explicit(&c->refs, &r, r + 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    return false;
}

CSP_EXTERN csp_ctx_t *csp_ctx_retain(csp_ctx_t *ctx)
{
    if (ctx && ctx->kind != KIND_ROOT)
        atomic_fetch_add_explicit(&ctx->refs, 1, memory_order_relaxed);
    return ctx;
}

/* Removes c (a CANCEL context) from its parent canc's children, if linked. */
static void unlink_from_parent(csp_ctx_t *c)
{
    csp_ctx_t *p = c->parent_canc;
    /* acquire: pairs with the canceller's release store of false, its last
     * access to c's links (a cancelled child skips the parent's lock: 10,000
     * children exiting after a cancel don't all queue on it) */
    if (!p || !atomic_load_explicit(&c->linked, memory_order_acquire))
        return;
    csp__spin_lock(&p->lock);
    if (atomic_load_explicit(&c->linked, memory_order_relaxed)) {
        if (c->sib_prev)
            c->sib_prev->sib_next = c->sib_next;
        else
            p->children = c->sib_next;
        if (c->sib_next)
            c->sib_next->sib_prev = c->sib_prev;
        c->sib_next = c->sib_prev = NULL;
        atomic_store_explicit(&c->linked, false, memory_order_relaxed);
    }
    csp__spin_unlock(&p->lock);
}

CSP_EXTERN void csp_ctx_release(csp_ctx_t *ctx)
{
    while (ctx && ctx->kind != KIND_ROOT) {
        /* acq_rel: the last release sees every other owner's writes */
        if (atomic_fetch_sub_explicit(&ctx->refs, 1, memory_order_acq_rel) != 1)
            return;
        csp_ctx_t *parent = ctx->parent;
        if (ctx->kind == KIND_CANCEL) {
            unlink_from_parent(ctx);
            timer_del(ctx);
            /* nobody can reach ctx now: no children (they'd hold refs), no
             * parent link, the timer fn has finished */
            csp_chan_t *d = atomic_load_explicit(&ctx->done, memory_order_acquire);
            csp_chan_release(d);
        }
        if (ctx->value_free)
            ctx->value_free(ctx->value);
        csp__obj_free(CSP__OBJ_CTX, ctx); /* value_free may have parked: the worker is read afresh */
        ctx = parent; /* drop the child's reference on its parent (iteratively) */
    }
}

/* ---- cancellation ---- */

/* Cancels one CANCEL context: sets err/cause, fires watches, closes done,
 * and detaches the children that must be cancelled too (retained, linked
 * through sib_next) onto *work. Returns false if it was already done. */
typedef struct csp_ctx_func csp_ctx_func_t;
static void af_watch_fn(csp__ctx_watch_t *wt);
static bool af_claim(csp__ctx_watch_t *wt, csp_ctx_func_t **deferred);
static void af_run_deferred(csp_ctx_func_t *list);

static bool cancel_one(csp_ctx_t *c, int err, int cause, csp_ctx_t **work,
                       csp_ctx_func_t **deferred)
{
    csp__spin_lock(&c->lock);
    if (atomic_load_explicit(&c->err, memory_order_relaxed)) {
        csp__spin_unlock(&c->lock);
        return false;
    }
    atomic_store_explicit(&c->cause, cause, memory_order_relaxed);
    /* release: pairs with the acquire loads of err (csp_ctx_err, cause) */
    atomic_store_explicit(&c->err, err, memory_order_release);
    csp_chan_t *d = atomic_load_explicit(&c->done, memory_order_relaxed);
    if (d)
        csp_chan_close(d);
    csp__ctx_watch_t *wt = c->watches;
    c->watches = NULL;
    while (wt) {
        csp__ctx_watch_t *next = wt->next; /* the fn may free wt once it returns */
        wt->linked = false;
        /* after-functions are started once no lock is held (they spawn, or
         * run inline without a runtime), from the canceller's own list: a
         * value_free that parks may resume this task on another thread */
        if (wt->fn == af_watch_fn)
            af_claim(wt, deferred);
        else
            wt->fn(wt);
        wt = next;
    }
    csp_ctx_t *ch = c->children;
    c->children = NULL;
    while (ch) {
        csp_ctx_t *next = ch->sib_next;
        ch->sib_prev = NULL;
        if (try_retain(ch)) {
            ch->sib_next = *work;
            *work = ch;
        } else {
            ch->sib_next = NULL; /* being freed by its last owner: nobody observes it */
        }
        /* release: our last access to a child we did not retain (its
         * release may free it as soon as it sees false) */
        atomic_store_explicit(&ch->linked, false, memory_order_release);
        ch = next;
    }
    csp__spin_unlock(&c->lock);
    return true;
}

/* Cancels c and its whole subtree. c is a CANCEL context the caller holds. */
static void cancel_tree(csp_ctx_t *c, int err, int cause, bool detach)
{
    csp_ctx_t *work = NULL;
    csp_ctx_func_t *deferred = NULL;
    if (!cancel_one(c, err, cause, &work, &deferred))
        return;
    if (detach)
        unlink_from_parent(c); /* Go's removeChild: only for the root of the cancel */
    timer_del(c);
    while (work) {
        csp_ctx_t *x = work;
        work = x->sib_next;
        x->sib_next = NULL;
#if !defined(CSP_TSAN)
        /* Software pipelining: a big cancel is dominated by cache and TLB
         * misses on each waiter's watch (it lives on the waiting task's
         * stack, one slot apiece). Prefetch the context after next and the
         * next one's first watch. The loads are racy hints (the lists are
         * under the contexts' locks), so TSan builds skip them. */
        if (work) {
            csp_ctx_t *n2 = __atomic_load_n(&work->sib_next, __ATOMIC_RELAXED);
            csp__ctx_watch_t *w1 = __atomic_load_n(&work->watches, __ATOMIC_RELAXED);
            if (n2)
                __builtin_prefetch(n2, 1);
            if (w1)
                __builtin_prefetch(w1, 1);
        }
#endif
        if (cancel_one(x, err, cause, &work, &deferred))
            timer_del(x);
        csp_ctx_release(x);
    }
    af_run_deferred(deferred);
}

CSP_EXTERN void csp_ctx_cancel_cause(csp_ctx_t *ctx, int cause)
{
    if (!ctx || ctx->kind != KIND_CANCEL)
        return; /* value/root contexts have no cancel of their own */
    cancel_tree(ctx, CSP_ECANCELED, cause ? cause : CSP_ECANCELED, true);
}

CSP_EXTERN void csp_ctx_cancel(csp_ctx_t *ctx)
{
    csp_ctx_cancel_cause(ctx, 0);
}

/* The deadline: a task spawned by the timer does the cancel. */
static void deadline_task(void *arg)
{
    csp_ctx_t *c = arg;
    cancel_tree(c, CSP_EDEADLINE, CSP_EDEADLINE, true);
    csp_ctx_release(c);
}

static void deadline_fn(csp__timer_t *tm)
{
    csp_ctx_t *c = tm->arg;
    /* relaxed is enough: the timer was armed by a holder of a reference,
     * and the last release deletes the timer (waiting for us) before freeing */
    if (!try_retain(c))
        return;
    if (csp__spawn_nosched(deadline_task, c) != 0) {
        /* the runtime is stopping: drop our reference. If that was the last
         * one (its owner released it just now) the context leaks: freeing
         * deletes this very timer, which cannot happen under its heap lock. */
        atomic_fetch_sub_explicit(&c->refs, 1, memory_order_release);
    }
}

/* ---- construction ---- */

static csp_ctx_t *ctx_alloc(csp_ctx_t *parent, uint8_t kind)
{
    csp_ctx_t *c = csp__obj_alloc(CSP__OBJ_CTX, sizeof *c);
    if (!c)
        return NULL;
    atomic_store_explicit(&c->refs, 1, memory_order_relaxed);
    c->kind = kind;
    c->parent = csp_ctx_retain(parent);
    c->deadline = CSP_FOREVER;
    c->timer.idx = -1;
    return c;
}

static csp_time_t ctx_deadline_of(csp_ctx_t *c)
{
    return c->canc ? c->canc->deadline : CSP_FOREVER;
}

/* A new CANCEL child of parent with the given effective deadline, linked on
 * the parent's canc (or born cancelled if that is done). */
static csp_ctx_t *new_cancel(csp_ctx_t *parent, csp_time_t deadline)
{
    csp_ctx_t *c = ctx_alloc(parent, KIND_CANCEL);
    if (!c)
        return NULL;
    c->canc = c;
    c->deadline = deadline;
    csp_ctx_t *p = parent->canc;
    if (p) {
        csp__spin_lock(&p->lock);
        int perr = atomic_load_explicit(&p->err, memory_order_relaxed);
        if (perr) {
            atomic_store_explicit(&c->cause, atomic_load_explicit(&p->cause, memory_order_relaxed),
                                  memory_order_relaxed);
            atomic_store_explicit(&c->err, perr, memory_order_relaxed); /* not yet shared */
        } else {
            c->parent_canc = p;
            atomic_store_explicit(&c->linked, true, memory_order_relaxed); /* not yet shared */
            c->sib_next = p->children;
            if (p->children)
                p->children->sib_prev = c;
            p->children = c;
        }
        csp__spin_unlock(&p->lock);
    }
    return c;
}

CSP_EXTERN csp_ctx_t *csp_ctx_with_cancel(csp_ctx_t *parent)
{
    if (!parent)
        return NULL;
    return new_cancel(parent, ctx_deadline_of(parent));
}

CSP_EXTERN csp_ctx_t *csp_ctx_with_deadline(csp_ctx_t *parent, csp_time_t deadline)
{
    if (!parent)
        return NULL;
    csp_time_t pd = ctx_deadline_of(parent);
    if (pd <= deadline)
        return new_cancel(parent, pd); /* the parent's deadline comes first (Go) */
    csp_ctx_t *c = new_cancel(parent, deadline);
    if (!c)
        return NULL;
    if (atomic_load_explicit(&c->err, memory_order_relaxed))
        return c; /* born cancelled by the parent */
    if (deadline <= csp_now()) {
        cancel_tree(c, CSP_EDEADLINE, CSP_EDEADLINE, true);
        return c;
    }
    /* Armed under c->lock: c is already linked on its parent, and a cancel
     * racing with us either sees the timer armed (and deletes it after
     * unlocking) or has cancelled c first (and no timer is armed). Lock
     * order: ctx lock < timer heap lock (deadline_fn never takes a ctx lock). */
    csp__spin_lock(&c->lock);
    if (!atomic_load_explicit(&c->err, memory_order_relaxed) && rt_enter()) {
        c->timer.fn = deadline_fn;
        c->timer.arg = c;
        csp__timer_add(&c->timer, deadline);
        atomic_store_explicit(&c->timer_armed, true, memory_order_release);
        rt_leave();
    }
    csp__spin_unlock(&c->lock);
    return c;
}

CSP_EXTERN csp_ctx_t *csp_ctx_with_timeout(csp_ctx_t *parent, csp_duration_t d)
{
    return csp_ctx_with_deadline(parent, csp_deadline_after(d));
}

CSP_EXTERN csp_ctx_t *csp_ctx_with_value(csp_ctx_t *parent, const void *key, void *value,
                                         void (*value_free)(void *))
{
    if (!parent)
        return NULL;
    csp_ctx_t *c = ctx_alloc(parent, KIND_VALUE);
    if (!c)
        return NULL;
    c->canc = parent->canc;
    c->key = key;
    c->value = value;
    c->value_free = value_free;
    return c;
}

CSP_EXTERN csp_ctx_t *csp_ctx_without_cancel(csp_ctx_t *parent)
{
    if (!parent)
        return NULL;
    csp_ctx_t *c = ctx_alloc(parent, KIND_WITHOUT);
    if (c)
        c->canc = NULL;
    return c;
}

/* ---- queries ---- */

CSP_EXTERN int csp_ctx_err(csp_ctx_t *ctx)
{
    if (!ctx)
        return CSP_EINVAL;
    csp_ctx_t *c = ctx->canc;
    /* acquire: pairs with cancel_one's release */
    return c ? atomic_load_explicit(&c->err, memory_order_acquire) : 0;
}

CSP_EXTERN int csp_ctx_cause(csp_ctx_t *ctx)
{
    if (!ctx)
        return CSP_EINVAL;
    csp_ctx_t *c = ctx->canc;
    if (!c || !atomic_load_explicit(&c->err, memory_order_acquire))
        return 0;
    return atomic_load_explicit(&c->cause, memory_order_relaxed);
}

CSP_EXTERN int csp_ctx_deadline(csp_ctx_t *ctx, csp_time_t *deadline)
{
    csp_time_t d = ctx ? ctx_deadline_of(ctx) : CSP_FOREVER;
    if (deadline)
        *deadline = d;
    return d != CSP_FOREVER;
}

CSP_EXTERN void *csp_ctx_value(csp_ctx_t *ctx, const void *key)
{
    for (csp_ctx_t *c = ctx; c; c = c->parent)
        if (c->kind == KIND_VALUE && c->key == key)
            return c->value;
    return NULL;
}

CSP_EXTERN csp_chan_t *csp_ctx_done(csp_ctx_t *ctx)
{
    if (!ctx || !ctx->canc)
        return NULL;
    csp_ctx_t *c = ctx->canc;
    /* acquire: pairs with the release store below (the channel's contents) */
    csp_chan_t *d = atomic_load_explicit(&c->done, memory_order_acquire);
    if (d)
        return d;
    csp_chan_t *n = csp_chan_make(0, 0);
    if (!n)
        return NULL;
    csp__spin_lock(&c->lock);
    d = atomic_load_explicit(&c->done, memory_order_relaxed);
    if (!d) {
        if (atomic_load_explicit(&c->err, memory_order_relaxed))
            csp_chan_close(n);
        atomic_store_explicit(&c->done, n, memory_order_release);
        d = n;
        n = NULL;
    }
    csp__spin_unlock(&c->lock);
    csp_chan_release(n);
    return d;
}

/* ---- watches (ctx_internal.h) ---- */

int csp__ctx_watch_add(csp_ctx_t *ctx, csp__ctx_watch_t *wt)
{
    csp_ctx_t *c = ctx->canc;
    if (!c)
        return 1;
    csp__spin_lock(&c->lock);
    int err = atomic_load_explicit(&c->err, memory_order_relaxed);
    if (err) {
        csp__spin_unlock(&c->lock);
        return err;
    }
    wt->owner = c;
    wt->prev = NULL;
    wt->next = c->watches;
    if (c->watches)
        c->watches->prev = wt;
    c->watches = wt;
    wt->linked = true;
    csp__spin_unlock(&c->lock);
    return 0;
}

bool csp__ctx_watch_del(csp__ctx_watch_t *wt)
{
    csp_ctx_t *c = wt->owner;
    csp__spin_lock(&c->lock);
    bool was = wt->linked;
    if (was) {
        if (wt->prev)
            wt->prev->next = wt->next;
        else
            c->watches = wt->next;
        if (wt->next)
            wt->next->prev = wt->prev;
        wt->linked = false;
    }
    csp__spin_unlock(&c->lock);
    return was;
}

/* ---- waiting ---- */

CSP_EXTERN int csp_ctx_wait(csp_ctx_t *ctx)
{
    if (!ctx)
        return CSP_EINVAL;
    csp__waiter_t w;
    csp__waiter_init(&w);
    w.what = ctx;
    uint32_t st = csp__waiter_wait_ctx(&w, ctx, CSP_FOREVER, "ctx.wait");
    if (st == CSP__W_CANCELED)
        return csp_ctx_err(ctx);
    return csp__shutdown_err();
}

/* ---- AfterFunc ---- */

enum { AF_PENDING, AF_STARTED, AF_STOPPED };

struct csp_ctx_func {
    _Atomic int32_t   refs;    /* the caller's + the runtime's while pending */
    _Atomic uint32_t  state;   /* AF_*: one CAS decides run vs stop */
    void            (*fn)(void *);
    void             *arg;
    csp_ctx_t        *ctx;     /* retained until started or stopped */
    csp__ctx_watch_t  watch;
    struct csp_ctx_func *run_next; /* a canceller's deferred list */
};

static void af_unref(csp_ctx_func_t *f)
{
    /* acq_rel: the last reference frees */
    if (atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) == 1)
        free(f);
}

static void af_task(void *arg)
{
    csp_ctx_func_t *f = arg;
    csp_ctx_t *c = f->ctx;
    f->ctx = NULL;
    csp_ctx_release(c);
    f->fn(f->arg);
    af_unref(f);
}

static void af_start(csp_ctx_func_t *f)
{
    if (csp__spawn_nosched(af_task, f) != 0)
        af_task(f); /* no runtime: run it on this thread (documented) */
}

static void af_run_deferred(csp_ctx_func_t *list)
{
    while (list) {
        csp_ctx_func_t *f = list;
        list = f->run_next;
        af_start(f);
    }
}

/* Under the ctx lock: claim the run (against csp_ctx_func_stop) and put f
 * on the canceller's list. */
static bool af_claim(csp__ctx_watch_t *wt, csp_ctx_func_t **deferred)
{
    csp_ctx_func_t *f = wt->arg;
    uint32_t exp = AF_PENDING;
    /* acq_rel: against csp_ctx_func_stop's CAS */
    if (!atomic_compare_exchange_strong_explicit(&f->state, &exp, AF_STARTED, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return false;
    f->run_next = *deferred;
    *deferred = f;
    return true;
}

/* The watch function of an after-function: never called (cancel_one
 * recognises it and calls af_claim); its address marks the watch. */
static void af_watch_fn(csp__ctx_watch_t *wt)
{
    (void)wt;
    CSP__ASSERT(!"af_watch_fn is not called");
}

CSP_EXTERN csp_ctx_func_t *csp_ctx_after_func(csp_ctx_t *ctx, void (*fn)(void *), void *arg)
{
    if (!ctx || !fn)
        return NULL;
    csp_ctx_func_t *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    atomic_store_explicit(&f->refs, 2, memory_order_relaxed);
    atomic_store_explicit(&f->state, AF_PENDING, memory_order_relaxed);
    f->fn = fn;
    f->arg = arg;
    f->watch.fn = af_watch_fn;
    f->watch.arg = f;
    f->ctx = csp_ctx_retain(ctx->canc);
    int r = csp__ctx_watch_add(ctx, &f->watch);
    if (r < 0) {
        /* already done: run it now, in a new task */
        atomic_store_explicit(&f->state, AF_STARTED, memory_order_relaxed);
        af_start(f);
    } else if (r == 1) {
        /* never cancelled: it can never run, but stays "pending" (stop
         * returns 1, as Go's does for Background); nothing is registered, so
         * only the caller's reference remains (f->ctx is NULL) */
        atomic_store_explicit(&f->refs, 1, memory_order_relaxed);
    }
    return f;
}

CSP_EXTERN int csp_ctx_func_stop(csp_ctx_func_t *f)
{
    if (!f)
        return 0;
    uint32_t exp = AF_PENDING;
    if (!atomic_compare_exchange_strong_explicit(&f->state, &exp, AF_STOPPED, memory_order_acq_rel,
                                                 memory_order_relaxed))
        return 0;
    csp_ctx_t *c = f->ctx;
    if (c) { /* registered: unregister and drop the runtime's reference */
        csp__ctx_watch_del(&f->watch);
        f->ctx = NULL;
        csp_ctx_release(c);
        af_unref(f);
    }
    return 1;
}

CSP_EXTERN void csp_ctx_func_release(csp_ctx_func_t *f)
{
    if (f)
        af_unref(f);
}
