/* libcsp — I/O: running blocking calls off the workers.
 *
 * A task that calls a blocking C function (read(2) on a pipe, getaddrinfo,
 * a database client, fsync) would block its worker thread and with it every
 * task queued there. csp_blocking() runs the call on a thread of a separate
 * pool instead and parks only the calling task (Go's entersyscall hand-off,
 * done explicitly). Network and file I/O on libuv will join this header.
 */
#ifndef CSP_IO_H
#define CSP_IO_H

#include "common.h"
#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs fn(arg) on a thread of the blocking pool and parks the calling task
 * until fn returns; fn's result travels through arg. On a plain thread it
 * just calls fn(arg).
 *
 * Returns 0 once fn has returned; CSP_EINVAL (fn NULL); CSP_ESHUTDOWN if the
 * runtime is stopping - then fn never ran, or has returned (never: runs on
 * after csp_blocking returned). Blocks (parks the task) while fn runs.
 * Ownership: arg stays the caller's; fn may use memory on the calling task's
 * stack, which stays put until fn returns.
 *
 * The pool starts a thread when a call finds none idle, up to
 * CSP_BLOCKING_MAX_THREADS (env CSP_BLOCKING_MAX, 1..4096) at once; more
 * calls queue in FIFO order. A thread idle for 10 s exits. fn runs on a
 * plain thread: libcsp calls in it act as on any plain thread (a blocking
 * one blocks that pool thread). When the runtime stops,
 * csp_run and csp_shutdown wait for every fn still running to return (and
 * say so on stderr every second); calls still queued never run. */
CSP_EXTERN int csp_blocking(void (*fn)(void *arg), void *arg);

/* csp_blocking with a context. If ctx is done before a pool thread has
 * started fn, fn never runs and the result is csp_ctx_err(ctx). Once fn has
 * started it cannot be stopped: the call still waits for it (fn may use the
 * caller's stack) and returns 0, and fn's results are valid. Also
 * CSP_EINVAL (ctx or fn NULL), CSP_ESHUTDOWN. On a plain thread: ctx's
 * error if it is done, else fn(arg) inline. Blocks as csp_blocking. */
CSP_EXTERN int csp_blocking_ctx(csp_ctx_t *ctx, void (*fn)(void *arg), void *arg);

/* Default cap on pool threads running calls at once. */
#define CSP_BLOCKING_MAX_THREADS 256

#ifdef __cplusplus
}
#endif
#endif /* CSP_IO_H */
