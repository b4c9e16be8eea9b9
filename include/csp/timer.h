/* libcsp — timers (Go's time.After, Timer, AfterFunc, Ticker).
 *
 * Go 1.23 semantics: after csp_timer_stop or csp_timer_reset returns, no
 * value sent before it is ever received from the timer's channel; releasing
 * a csp_after channel or a channel timer before it fires cancels and frees
 * it. Timer channels have capacity 1 and carry the csp_time_t (csp_now()) of
 * the firing. Timers fire on the workers' timer heaps (O(log n) each); they
 * need a running runtime (the functions return NULL otherwise).
 */
#ifndef CSP_TIMER_H
#define CSP_TIMER_H

#include "chan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csp_timer csp_timer_t;

/* Go's time.After: a channel (cap 1, csp_time_t elements) that receives the
 * time once, d from now (d <= 0: at once). The caller owns the channel and
 * releases it; releasing it before it fires cancels the timer. NULL: no
 * runtime, or out of memory. Never blocks. */
CSP_EXTERN csp_chan_t *csp_after(csp_duration_t d);

/* Go's time.NewTimer: fires once on its channel (csp_timer_chan) d from now.
 * The caller owns the timer and releases it (csp_timer_release, which also
 * stops it). NULL: no runtime, or out of memory. */
CSP_EXTERN csp_timer_t *csp_timer_new(csp_duration_t d);

/* Go's time.AfterFunc: runs fn(arg) in a new task d from now. The caller owns
 * the handle; releasing it does not cancel the call (stop it first). */
CSP_EXTERN csp_timer_t *csp_after_func(csp_duration_t d, void (*fn)(void *), void *arg);

/* Go's time.NewTicker: sends the time on its channel every period (> 0, else
 * NULL), dropping ticks a slow reader misses. Stop or release it. */
CSP_EXTERN csp_timer_t *csp_ticker_new(csp_duration_t period);

/* Stops t: 1 if that prevented a pending fire (a queued timer, or a value
 * sent but not yet received, which is discarded), 0 if it had fired (and
 * been received) or was stopped. NULL: 0. Never blocks (it may wait for a
 * firing in progress on another worker to finish, briefly). */
CSP_EXTERN int csp_timer_stop(csp_timer_t *t);

/* Stops t and arms it again d from now (for a ticker: the new period, d > 0).
 * Returns what csp_timer_stop would have; CSP_EINVAL for NULL or a ticker
 * period <= 0. */
CSP_EXTERN int csp_timer_reset(csp_timer_t *t, csp_duration_t d);

/* The timer's channel (borrowed; valid until the timer is released; NULL for
 * an csp_after_func timer and for NULL). */
CSP_EXTERN csp_chan_t *csp_timer_chan(csp_timer_t *t);

/* Releases the caller's handle. Channel timers and tickers are stopped and
 * freed; an csp_after_func timer still runs unless it was stopped. NULL: no-op. */
CSP_EXTERN void csp_timer_release(csp_timer_t *t);

#ifdef __cplusplus
}
#endif
#endif /* CSP_TIMER_H */
