/* Contexts, as seen by the rest of the library: watches.
 *
 * A watch is a callback registered on a context that runs once when the
 * context is done. Blocking primitives use it (through
 * csp__waiter_wait_ctx, wait.h) to wake a waiter with CSP__W_CANCELED; the
 * AfterFunc handles use it to spawn their function.
 *
 * The callback runs with the cancelled context's lock held: it must be short,
 * must not block and must take no lock that ranks at or below a context lock
 * (see docs/internals/locking.md: it may ready tasks and close channels).
 */
#ifndef CSP_CTX_INTERNAL_H
#define CSP_CTX_INTERNAL_H

#include "internal.h"

#include <csp.h>

typedef struct csp__ctx_watch csp__ctx_watch_t;
struct csp__ctx_watch {
    void (*fn)(csp__ctx_watch_t *wt);  /* under the context's lock */
    void              *arg;
    csp_ctx_t         *owner;   /* the context it is registered on; under its lock */
    csp__ctx_watch_t  *next, *prev;
    bool               linked;  /* under owner's lock */
};

/* Registers wt on ctx (on its nearest cancellable ancestor). Returns 0 when
 * registered; 1 when ctx can never be cancelled (nothing registered);
 * csp_ctx_err(ctx) (< 0) when ctx is already done (nothing registered, fn
 * not called). */
int csp__ctx_watch_add(csp_ctx_t *ctx, csp__ctx_watch_t *wt);
/* Unregisters wt if still registered. Returns true if it was (fn has not run
 * and will not); false if fn ran (it has returned: it ran under the lock this
 * call takes). */
bool csp__ctx_watch_del(csp__ctx_watch_t *wt);

#endif /* CSP_CTX_INTERNAL_H */
