/* csp_errgroup_t: golang.org/x/sync/errgroup.Group.
 *
 * Layout (csp_errgroup_t's words; all zero = a group with no context and no
 * limit):
 *   wg       counts the running functions (csp_wg_t)
 *   sem      the concurrency limit, when has_limit (csp_sem_t)
 *   err      the first non-zero result: one CAS from 0 (acq_rel; read by
 *            wait after csp_wg_wait, which orders it)
 *   ctx      the derived context (owned by the group), or NULL; taken
 *            (exchanged to NULL, acq_rel) by the one csp_errgroup_wait that
 *            cancels and releases it: several tasks may wait at once (Go)
 *   active   functions started and not finished (relaxed counter; only
 *            set_limit reads it, to refuse changing a busy group)
 *   has_limit  written by set_limit only while no function runs
 *
 * A function's task touches the group last in csp_wg_done (the group may be
 * freed once wait returns, like a WaitGroup).
 */
#include "../sched/wait.h"

#include <string.h>

typedef struct {
    csp_wg_t        wg;
    csp_sem_t       sem;
    _Atomic int     err;
    int             has_limit;
    csp_ctx_t *_Atomic ctx;
    _Atomic int64_t active;
} eg_impl_t;

CSP__STATIC_ASSERT(sizeof(eg_impl_t) <= sizeof(csp_errgroup_t), "csp_errgroup_t too small");

typedef struct {
    eg_impl_t *g;
    int      (*fn)(void *);
    void      *arg;
} eg_call_t;

CSP_EXTERN int csp_errgroup_init(csp_errgroup_t *g)
{
    if (!g)
        return CSP_EINVAL;
    memset(g, 0, sizeof *g);
    return 0;
}

CSP_EXTERN int csp_errgroup_with_ctx(csp_errgroup_t *g, csp_ctx_t *parent, csp_ctx_t **ctx_out)
{
    if (!g || !parent || !ctx_out)
        return CSP_EINVAL;
    memset(g, 0, sizeof *g);
    eg_impl_t *e = (eg_impl_t *)g;
    csp_ctx_t *c = csp_ctx_with_cancel(parent);
    if (!c)
        return CSP_ENOMEM;
    /* relaxed: published to the functions' tasks by their spawn */
    atomic_store_explicit(&e->ctx, c, memory_order_relaxed);
    *ctx_out = c;
    return 0;
}

CSP_EXTERN int csp_errgroup_set_limit(csp_errgroup_t *g, int limit)
{
    eg_impl_t *e = (eg_impl_t *)g;
    if (!e || limit == 0 || atomic_load_explicit(&e->active, memory_order_acquire) != 0)
        return CSP_EINVAL;
    if (limit < 0) {
        e->has_limit = 0;
        return 0;
    }
    csp_sem_init(&e->sem, limit);
    e->has_limit = 1;
    return 0;
}

static void eg_task(void *arg)
{
    eg_call_t *c = arg;
    eg_impl_t *e = c->g;
    int r = c->fn(c->arg);
    if (r != 0) {
        int exp = 0;
        /* acq_rel: first error wins; wait reads it after csp_wg_wait */
        if (atomic_compare_exchange_strong_explicit(&e->err, &exp, r, memory_order_acq_rel,
                                                    memory_order_relaxed)) {
            /* relaxed: set before our spawn; wait takes it only after our
             * csp_wg_done */
            csp_ctx_t *ctx = atomic_load_explicit(&e->ctx, memory_order_relaxed);
            if (ctx)
                csp_ctx_cancel_cause(ctx, r);
        }
    }
    if (e->has_limit)
        csp_sem_release(&e->sem, 1);
    /* release: pairs with set_limit's acquire */
    atomic_fetch_sub_explicit(&e->active, 1, memory_order_release);
    csp_wg_done(&e->wg); /* last access to the group */
}

static int eg_start(eg_impl_t *e, int (*fn)(void *), void *arg, bool wait_slot)
{
    if (!e || !fn)
        return CSP_EINVAL;
    if (e->has_limit) {
        int r = wait_slot ? csp_sem_acquire(&e->sem, 1, csp_ctx_background())
                          : csp_sem_try_acquire(&e->sem, 1);
        if (r)
            return r;
    }
    atomic_fetch_add_explicit(&e->active, 1, memory_order_relaxed);
    csp_wg_add(&e->wg, 1);
    eg_call_t c = { e, fn, arg };
    int r = csp_go_copy(eg_task, &c, sizeof c, NULL);
    if (r) {
        if (e->has_limit)
            csp_sem_release(&e->sem, 1);
        atomic_fetch_sub_explicit(&e->active, 1, memory_order_release);
        csp_wg_done(&e->wg);
    }
    return r;
}

CSP_EXTERN int csp_errgroup_go(csp_errgroup_t *g, int (*fn)(void *arg), void *arg)
{
    return eg_start((eg_impl_t *)g, fn, arg, true);
}

CSP_EXTERN int csp_errgroup_try_go(csp_errgroup_t *g, int (*fn)(void *arg), void *arg)
{
    return eg_start((eg_impl_t *)g, fn, arg, false);
}

CSP_EXTERN int csp_errgroup_wait(csp_errgroup_t *g)
{
    eg_impl_t *e = (eg_impl_t *)g;
    if (!e)
        return CSP_EINVAL;
    int r = csp_wg_wait(&e->wg);
    if (r)
        return r;
    /* acq_rel: of several concurrent waiters exactly one takes the context
     * (a second cancel + release would be a use after free) */
    csp_ctx_t *ctx = atomic_exchange_explicit(&e->ctx, NULL, memory_order_acq_rel);
    if (ctx) {
        csp_ctx_cancel(ctx); /* Go cancels the derived context when Wait returns */
        csp_ctx_release(ctx);
    }
    return atomic_load_explicit(&e->err, memory_order_acquire);
}
