/* csp_replicate: replicated requests (the book's chapter 5): n replicas of
 * one request race; the first success wins, the rest are cancelled and
 * joined before the call returns.
 *
 * The shared record (rep_state_t, one malloc with the replicas' scratch
 * buffers behind it) is reference counted: the caller and each spawned
 * replica hold one. Normally the caller joins every replica before
 * dropping its own, so the last reference is the caller's; but if the
 * runtime shuts down while the caller waits (the wait returns
 * CSP_ESHUTDOWN) the caller leaves early and the replicas still running
 * keep the record (and the group context) alive.
 *
 * Invariants
 *   - `decided` is released exactly once: by the first replica to succeed
 *     (the winner CAS on `winner`, -1 -> its index) or, if none does, by the
 *     failure that makes nfailed == n. A success that loses the CAS is not
 *     a failure, so both cannot happen.
 *   - A replica writes only its own scratch slot; the caller reads the
 *     winner's slot after joining every replica (`all`), so the copy races
 *     with nothing.
 *   - first_err is the first failure in time (CAS 0 -> code); never 0 once
 *     set (positive codes are mapped to CSP_EINVAL).
 * Atomics: winner, first_err, nfailed are acq_rel RMWs (the winner's scratch
 * writes are also published by the wait groups); refs as every refcount
 * (relaxed increments under an existing reference, acq_rel decrements).
 * Locks: none of its own (the wait groups').
 */
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include <csp/supervise.h>

typedef struct {
    _Atomic uint32_t refs;      /* caller + spawned replicas */
    csp_ctx_t       *ctx;       /* the group: child of the caller's ctx */
    csp_replica_fn   fn;
    void            *arg;
    int              n;
    size_t           out_size;
    _Atomic int      winner;    /* -1 until the first success */
    _Atomic int      first_err; /* 0 until the first failure */
    _Atomic int      nfailed;
    csp_wg_t         all;       /* replicas not yet returned */
    csp_wg_t         decided;   /* 1 until a winner or the n-th failure */
    unsigned char    scratch[]; /* n * out_size */
} rep_state_t;

typedef struct {
    rep_state_t *s;
    int          i;
} rep_arg_t;

static void rep_unref(rep_state_t *s)
{
    /* acq_rel: the last holder sees every replica's writes before freeing */
    if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
        return;
    csp_ctx_release(s->ctx);
    free(s);
}

/* Records replica i's result rc. */
static void rep_finish(rep_state_t *s, int i, int rc)
{
    if (rc == 0) {
        int exp = -1;
        /* acq_rel: one winner; the caller's acquire load after joining reads it */
        if (atomic_compare_exchange_strong_explicit(&s->winner, &exp, i, memory_order_acq_rel,
                                                    memory_order_relaxed))
            csp_wg_done(&s->decided); /* the winner decides */
        return;
    }
    if (rc > 0)
        rc = CSP_EINVAL; /* keep results >= 0 for winners */
    int zero = 0;
    /* acq_rel: the first failure in time wins; read by the caller (acquire)
     * after joining */
    atomic_compare_exchange_strong_explicit(&s->first_err, &zero, rc, memory_order_acq_rel,
                                            memory_order_relaxed);
    /* acq_rel: the n-th failure sees the others' first_err updates before it
     * opens `decided` */
    if (atomic_fetch_add_explicit(&s->nfailed, 1, memory_order_acq_rel) + 1 == s->n)
        csp_wg_done(&s->decided); /* every replica failed */
}

static void rep_task(void *p)
{
    rep_arg_t a = *(rep_arg_t *)p;
    rep_state_t *s = a.s;
    void *out = s->out_size ? s->scratch + (size_t)a.i * s->out_size : NULL;
    int rc = s->fn(s->ctx, a.i, s->arg, out);
    rep_finish(s, a.i, rc);
    csp_wg_done(&s->all);
    rep_unref(s);
}

CSP_EXTERN int csp_replicate(csp_ctx_t *ctx, int n, csp_replica_fn fn, void *arg, void *out,
                             size_t out_size)
{
    if (!ctx || !fn || n <= 0 || (!out && out_size > 0))
        return CSP_EINVAL;
    if (out_size > 0 && (size_t)n > (SIZE_MAX - sizeof(rep_state_t)) / out_size)
        return CSP_EINVAL;
    rep_state_t *s = malloc(sizeof *s + (size_t)n * out_size);
    if (!s)
        return CSP_ENOMEM;
    memset(s, 0, sizeof *s);
    s->ctx = csp_ctx_with_cancel(ctx);
    if (!s->ctx) {
        free(s);
        return CSP_ENOMEM;
    }
    atomic_init(&s->refs, 1);
    s->fn = fn;
    s->arg = arg;
    s->n = n;
    s->out_size = out_size;
    atomic_init(&s->winner, -1);
    atomic_init(&s->first_err, 0);
    atomic_init(&s->nfailed, 0);
    csp_wg_add(&s->all, n);
    csp_wg_add(&s->decided, 1);

    for (int i = 0; i < n; i++) {
        rep_arg_t a = { s, i };
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); /* we hold one */
        int rc = csp_go_copy(rep_task, &a, sizeof a, NULL);
        if (rc != 0) { /* this replica fails with the spawn error */
            atomic_fetch_sub_explicit(&s->refs, 1, memory_order_relaxed); /* never ours to free */
            rep_finish(s, i, rc);
            csp_wg_done(&s->all);
        }
    }

    int jr = csp_wg_wait(&s->decided);
    csp_ctx_cancel(s->ctx); /* the losers stop */
    if (jr == 0)
        jr = csp_wg_wait(&s->all); /* no task left behind */
    int result;
    if (jr != 0) {
        result = jr; /* shutting down: the replicas still running keep s */
    } else {
        /* acquire: pairs with the winner's CAS (also ordered by the joins) */
        int w = atomic_load_explicit(&s->winner, memory_order_acquire);
        if (w >= 0) {
            if (out_size)
                memcpy(out, s->scratch + (size_t)w * out_size, out_size);
            result = w;
        } else {
            int e = csp_ctx_err(ctx);
            /* acquire: pairs with the failing replicas' CAS */
            result = e ? e : atomic_load_explicit(&s->first_err, memory_order_acquire);
        }
    }
    rep_unref(s);
    return result;
}
