/* libcsp — the sync package (Go's sync, task-aware).
 *
 * Every object here is a fixed-size public struct of opaque words that can be
 * initialised statically with its CSP_*_INIT (also at file scope) or by zeroing.
 * Waiting parks a task, never its worker; on a plain OS thread it blocks the
 * thread. Objects must not be copied after first use (Go's rule).
 * Misuse returns CSP_EINVAL and leaves the object unchanged.
 */
#ifndef CSP_SYNC_H
#define CSP_SYNC_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- WaitGroup ---- */
typedef struct csp_wg { uint64_t _opaque[4]; } csp_wg_t;
#define CSP_WG_INIT {{0, 0, 0, 0}}

/* Adds delta (may be negative) to the counter. When it reaches 0 every waiter
 * is released. 0, or CSP_EINVAL (wg NULL; the counter would go below 0 or above
 * INT32_MAX: the counter is left unchanged). Never blocks. */
CSP_EXTERN int csp_wg_add(csp_wg_t *wg, int delta);
/* csp_wg_add(wg, -1). */
CSP_EXTERN int csp_wg_done(csp_wg_t *wg);
/* Blocks until the counter is 0 (returns at once if it is). 0, CSP_EINVAL (wg
 * NULL), CSP_ESHUTDOWN (runtime stopping). The wg may be freed as soon as wait
 * returns 0 (Go's rule); done() never touches the wg after the wake-up. */
CSP_EXTERN int csp_wg_wait(csp_wg_t *wg);

#ifdef __cplusplus
}
#endif
#endif /* CSP_SYNC_H */
