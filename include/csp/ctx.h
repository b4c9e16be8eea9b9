/* libcsp — contexts (Go's context package).
 *
 * A context carries a cancellation signal, an optional deadline and values
 * down a tree of calls and tasks. Cancelling a context cancels every
 * descendant and never its parent. Contexts are reference counted and
 * thread-safe: any task or plain thread may cancel, query or wait on them.
 *
 * Ownership: csp_ctx_with_* and csp_ctx_without_cancel return one reference
 * the caller owns and drops with csp_ctx_release. A child keeps its parent
 * alive. Releasing a context that was never cancelled frees its deadline
 * timer and detaches it from its parent (a long-lived parent with many
 * short-lived children does not grow). Releasing does *not* cancel: tasks
 * that still hold references keep it alive and cancellable.
 *
 * Every blocking libcsp call with a _ctx form (channels, select, semaphores,
 * ...) returns CSP_ECANCELED or CSP_EDEADLINE (csp_ctx_err) once its context
 * is done.
 */
#ifndef CSP_CTX_H
#define CSP_CTX_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csp_ctx csp_ctx_t;
typedef struct csp_chan csp_chan_t;

/* The root context: never cancelled, no deadline, no values. A static
 * object: retain returns it and release is a no-op. Never NULL. */
CSP_EXTERN csp_ctx_t *csp_ctx_background(void);
/* Like background; marks code whose context is still to be decided. */
CSP_EXTERN csp_ctx_t *csp_ctx_todo(void);

/* A child of parent that csp_ctx_cancel can cancel (and that is cancelled
 * when parent is). NULL if parent is NULL or out of memory. If parent is
 * already done the child starts done with the parent's err and cause.
 * Never blocks. */
CSP_EXTERN csp_ctx_t *csp_ctx_with_cancel(csp_ctx_t *parent);
/* A cancellable child that cancels itself with CSP_EDEADLINE at deadline
 * (absolute csp_now() time). Its deadline is the earlier of deadline and the
 * parent's. A deadline already past gives a context that is done at once.
 * The timer is freed by cancel or by the last release. NULL on NULL parent
 * or out of memory. Never blocks. */
CSP_EXTERN csp_ctx_t *csp_ctx_with_deadline(csp_ctx_t *parent, csp_time_t deadline);
/* csp_ctx_with_deadline(parent, csp_deadline_after(d)). */
CSP_EXTERN csp_ctx_t *csp_ctx_with_timeout(csp_ctx_t *parent, csp_duration_t d);
/* A child carrying (key, value): csp_ctx_value(child or a descendant, key)
 * returns value unless a nearer context shadows key. Keys compare by
 * pointer (use the address of a static object as a key, like Go's
 * unexported key types). value_free (may be NULL) runs once with value after
 * the last reference to this context is gone. Shares the parent's
 * cancellation (its done channel is the parent's). NULL on NULL parent or
 * out of memory (value_free is then *not* called). Never blocks. */
CSP_EXTERN csp_ctx_t *csp_ctx_with_value(csp_ctx_t *parent, const void *key, void *value,
                                         void (*value_free)(void *));
/* Go 1.21 WithoutCancel: a child that sees parent's values but is never
 * cancelled and has no deadline. NULL on NULL parent or out of memory. */
CSP_EXTERN csp_ctx_t *csp_ctx_without_cancel(csp_ctx_t *parent);

/* Cancels ctx and every descendant with CSP_ECANCELED (cause CSP_ECANCELED).
 * Idempotent: only the first cancel (or deadline) counts. No effect on
 * background/todo/value-only contexts' ancestors. NULL: no-op. Never blocks
 * (it wakes the waiters). */
CSP_EXTERN void csp_ctx_cancel(csp_ctx_t *ctx);
/* Like csp_ctx_cancel, recording cause (any int; 0 means CSP_ECANCELED),
 * which csp_ctx_cause of ctx and its descendants returns. */
CSP_EXTERN void csp_ctx_cancel_cause(csp_ctx_t *ctx, int cause);

/* The channel closed when ctx is done (elem_size 0). Borrowed: valid while
 * the caller holds ctx. NULL for contexts that can never be cancelled
 * (background, todo, without_cancel and value children of those): a NULL
 * channel is never ready in csp_select, exactly like Go's nil Done(). A value
 * context returns its parent's. Created on first use; NULL also if that
 * allocation fails. Never blocks. */
CSP_EXTERN csp_chan_t *csp_ctx_done(csp_ctx_t *ctx);
/* 0 while not done, else CSP_ECANCELED or CSP_EDEADLINE. CSP_EINVAL for NULL. */
CSP_EXTERN int csp_ctx_err(csp_ctx_t *ctx);
/* 0 before cancel; the cause given to csp_ctx_cancel_cause, else the err
 * code; children inherit their cancelled ancestor's cause. CSP_EINVAL for
 * NULL. */
CSP_EXTERN int csp_ctx_cause(csp_ctx_t *ctx);
/* 1 and *deadline set if ctx (or an ancestor) has a deadline, else 0
 * (*deadline = CSP_FOREVER). deadline may be NULL. 0 for NULL ctx. */
CSP_EXTERN int csp_ctx_deadline(csp_ctx_t *ctx, csp_time_t *deadline);
/* The value of the nearest context carrying key, or NULL. Borrowed. */
CSP_EXTERN void *csp_ctx_value(csp_ctx_t *ctx, const void *key);

/* Adds a reference; returns ctx (NULL for NULL). */
CSP_EXTERN csp_ctx_t *csp_ctx_retain(csp_ctx_t *ctx);
/* Drops a reference; see the ownership rules at the top. NULL: no-op. */
CSP_EXTERN void csp_ctx_release(csp_ctx_t *ctx);

/* Blocks until ctx is done; returns csp_ctx_err (CSP_ECANCELED /
 * CSP_EDEADLINE), CSP_EINVAL (NULL), CSP_ESHUTDOWN. A context that can never
 * be cancelled blocks until shutdown. */
CSP_EXTERN int csp_ctx_wait(csp_ctx_t *ctx);

/* ---- AfterFunc (Go 1.21 context.AfterFunc) ---- */
typedef struct csp_ctx_func csp_ctx_func_t;
/* Arranges for fn(arg) to run in a new task once ctx is done (at once if it
 * already is). Returns a handle the caller owns (release it with
 * csp_ctx_func_release; releasing does not stop it), or NULL (NULL ctx or fn,
 * out of memory). The runtime keeps its own reference until fn has been
 * started or stopped. Never blocks. If the runtime is not running when ctx
 * is done, fn runs on the cancelling thread. */
CSP_EXTERN csp_ctx_func_t *csp_ctx_after_func(csp_ctx_t *ctx, void (*fn)(void *), void *arg);
/* Stops fn from running: 1 if this call stopped it, 0 if it had already been
 * started (or stopped). NULL: 0. Never blocks. */
CSP_EXTERN int csp_ctx_func_stop(csp_ctx_func_t *f);
/* Drops the caller's reference. NULL: no-op. */
CSP_EXTERN void csp_ctx_func_release(csp_ctx_func_t *f);

#ifdef __cplusplus
}
#endif
#endif /* CSP_CTX_H */
