/* libcsp — supervision patterns from the book's chapter 5: heartbeats,
 * replicated requests, and stewards that heal unhealthy wards.
 *
 * Heartbeats (csp_heartbeat_t): a task signals that it is alive on a
 * heartbeat channel, either every interval (interval heartbeats: a ticker
 * owned by the heartbeat, which the task's blocking calls watch) or before
 * each unit of work (per-work heartbeats: interval 0, csp_heartbeat_pulse
 * by hand). Pulses are never blocking: the channel has capacity 1 and a
 * pulse that finds it full is dropped (the listener has one pending
 * already), so a slow or absent listener never stalls the worker.
 *
 * Replicated requests (csp_replicate): the same request to n replicas at
 * once; the first success wins and the rest are cancelled and joined.
 *
 * Stewards (csp_steward_t): run a ward, watch its heartbeat, and restart it
 * (cancelling the old one) when it misses its deadline or fails. A steward
 * has a heartbeat of its own, so stewards nest (csp_steward_ward).
 *
 * Every call takes the csp_ctx_t that cancels it (the book's done channel);
 * a helper that spawns tasks joins or hands back everything it started:
 * nothing leaks once the context is cancelled and the channels are drained.
 */
#ifndef CSP_SUPERVISE_H
#define CSP_SUPERVISE_H

#include <stddef.h>

#include "common.h"
#include "ctx.h"
#include "chan.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ======================================================================== */
/* heartbeats                                                                */

typedef struct csp_heartbeat csp_heartbeat_t;

/* Most cases csp_heartbeat_select accepts (it adds the pulse ticker). */
#define CSP_HEARTBEAT_MAX_CASES 63

/* A heartbeat: a channel of pulses (elem_size 0, capacity 1) and, when
 * interval > 0, a ticker that says when the next interval pulse is due
 * (interval 0: per-work pulses, no ticker). Returns one reference owned by
 * the caller (csp_heartbeat_release), or NULL: interval < 0, no runtime
 * (interval > 0 needs a running runtime for its ticker), out of memory.
 * Never blocks. */
CSP_EXTERN csp_heartbeat_t *csp_heartbeat_new(csp_duration_t interval);
/* Adds a reference; returns hb (NULL for NULL). */
CSP_EXTERN csp_heartbeat_t *csp_heartbeat_retain(csp_heartbeat_t *hb);
/* Drops a reference; the last one stops the ticker and drops the
 * heartbeat's reference to its channel (listeners holding the channel keep
 * it). NULL: no-op. */
CSP_EXTERN void csp_heartbeat_release(csp_heartbeat_t *hb);

/* The listener's side: the channel pulses arrive on (receive with a NULL
 * buffer). Borrowed: valid while the caller holds hb; csp_chan_retain it to
 * keep it longer. Closed by csp_heartbeat_close. NULL for NULL. */
CSP_EXTERN csp_chan_t *csp_heartbeat_chan(csp_heartbeat_t *hb);
/* The ticker channel (the book's `pulse := time.Tick(interval)`): ready
 * every interval; a task writing its own select loop adds a receive case on
 * it and calls csp_heartbeat_pulse when it fires. Borrowed; NULL for a
 * per-work heartbeat (a NULL channel is never ready in csp_select) or NULL. */
CSP_EXTERN csp_chan_t *csp_heartbeat_ticker(csp_heartbeat_t *hb);
/* The interval given to csp_heartbeat_new (0: per-work). 0 for NULL. */
CSP_EXTERN csp_duration_t csp_heartbeat_interval(csp_heartbeat_t *hb);

/* Sends one pulse without blocking (the book's select with a default
 * case). 0: sent; CSP_EAGAIN: a pulse is still pending, so this one was
 * dropped (the listener will see the pending one); CSP_ECLOSED: closed;
 * CSP_EINVAL: NULL. Never blocks. */
CSP_EXTERN int csp_heartbeat_pulse(csp_heartbeat_t *hb);
/* For work that does not block: pulses if the ticker has fired since the
 * last call (consuming the tick). 1: pulsed (or tried to: pulse's result
 * is not reported), 0: not due (or per-work heartbeat), CSP_EINVAL. Never
 * blocks. */
CSP_EXTERN int csp_heartbeat_tick(csp_heartbeat_t *hb);
/* Closes the pulse channel: listeners see CSP_ECLOSED once drained, later
 * pulses fail. 0, CSP_ECLOSED (already), CSP_EINVAL. Never blocks. */
CSP_EXTERN int csp_heartbeat_close(csp_heartbeat_t *hb);

/* csp_select_ctx over cases[0..n-1] that also pulses every interval while
 * it waits (the book's `case <-pulse: sendPulse()` in every select of an
 * interval-heartbeat worker). Returns the index of the case that completed
 * (its status says 0 or CSP_ECLOSED), csp_ctx_err(ctx), CSP_ESHUTDOWN, or
 * CSP_EINVAL (hb or ctx NULL, cases NULL with n > 0, n above
 * CSP_HEARTBEAT_MAX_CASES, bad cases as csp_select). With a per-work
 * heartbeat it is csp_select_ctx. Parks the task. */
CSP_EXTERN int csp_heartbeat_select(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_case_t *cases,
                                    size_t n);
/* As csp_heartbeat_select, giving up at deadline with CSP_ETIMEDOUT. */
CSP_EXTERN int csp_heartbeat_select_until(csp_heartbeat_t *hb, csp_ctx_t *ctx,
                                          csp_case_t *cases, size_t n, csp_time_t deadline);
/* Sends *elem on c, pulsing while blocked (the book's sendResult). 0,
 * CSP_ECLOSED, csp_ctx_err(ctx), CSP_ESHUTDOWN, CSP_EINVAL. */
CSP_EXTERN int csp_heartbeat_send(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_chan_t *c,
                                  const void *elem);
/* Receives from c into out (NULL discards), pulsing while blocked. 0,
 * CSP_ECLOSED, csp_ctx_err(ctx), CSP_ESHUTDOWN, CSP_EINVAL. */
CSP_EXTERN int csp_heartbeat_recv(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_chan_t *c,
                                  void *out);
/* Waits d (a ward that is idle but healthy), pulsing meanwhile. 0 after d,
 * csp_ctx_err(ctx) if ctx is done first, CSP_ESHUTDOWN, CSP_EINVAL. */
CSP_EXTERN int csp_heartbeat_sleep(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_duration_t d);

/* The work function run by csp_heartbeat_go: produces values on results
 * (elem_size bytes each, e.g. with csp_heartbeat_send), pulses hb (by
 * itself for per-work heartbeats; the csp_heartbeat_* blocking calls do it
 * for interval heartbeats), and returns when done or when ctx is done. hb,
 * results and ctx are borrowed for the call; its return value is ignored. */
typedef int (*csp_heartbeat_fn)(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *results,
                                void *arg);

/* The book's doWork shape: spawns a task that runs fn(ctx, hb, results, arg)
 * with a new heartbeat of this interval (0: per-work) and a new results
 * channel (elem_size, results_cap; 0: unbuffered), and that closes both
 * channels when fn returns (the book's `defer close(...)`). On success
 * returns 0 and one reference to each channel in *heartbeat and *results,
 * owned by the caller. Errors (nothing spawned, outputs NULL): CSP_EINVAL
 * (NULL ctx, fn or outputs; interval < 0; bad channel sizes), CSP_ENOMEM,
 * CSP_ESHUTDOWN. The task retains ctx; it ends when fn returns, so fn must
 * return once ctx is done. Never blocks. */
CSP_EXTERN int csp_heartbeat_go(csp_ctx_t *ctx, csp_duration_t interval, size_t elem_size,
                                size_t results_cap, csp_heartbeat_fn fn, void *arg,
                                csp_chan_t **heartbeat, csp_chan_t **results);

/* ======================================================================== */
/* replicated requests                                                       */

/* One replica of a request: does the work under ctx (cancelled as soon as
 * another replica has won, or when the caller's context is done), writes
 * its answer to out (out_size bytes of its own scratch; NULL if out_size is
 * 0), and returns 0 on success or a negative error code. A positive return
 * counts as a failure and is reported as CSP_EINVAL. */
typedef int (*csp_replica_fn)(csp_ctx_t *ctx, int replica, void *arg, void *out);

/* Runs fn(ctx', i, arg, scratch_i) for i = 0..n-1, each in its own task,
 * where ctx' is a child of ctx shared by the replicas. The first replica to
 * return 0 wins: ctx' is cancelled so the others stop, every replica is
 * joined (no task outlives the call), the winner's scratch is copied to out,
 * and its index (>= 0) is returned. If none succeeds: csp_ctx_err(ctx) when
 * ctx is done, else the first error a replica returned (in time order; a
 * replica that could not be spawned fails with the spawn error, e.g.
 * CSP_ENOMEM or CSP_ESHUTDOWN). CSP_EINVAL: ctx or fn NULL, n <= 0, out NULL
 * with out_size > 0, n * out_size overflowing. Blocks until every replica
 * has returned: replicas must honour ctx'. Allocates n * out_size bytes of
 * scratch (none when out_size is 0). */
CSP_EXTERN int csp_replicate(csp_ctx_t *ctx, int n, csp_replica_fn fn, void *arg, void *out,
                             size_t out_size);

/* ======================================================================== */
/* stewards and wards                                                        */

/* A ward: runs in its own task, started (and restarted) by a steward. It
 * pulses hb at least every csp_heartbeat_interval(hb) while healthy (the
 * csp_heartbeat_* blocking calls do that by themselves) and must return
 * once ctx is done. Return 0 when its work is finished (the steward then
 * stops too and returns 0), or non-zero when it failed (the steward
 * restarts it). ctx and hb are borrowed for the call. */
typedef int (*csp_ward_fn)(csp_ctx_t *ctx, csp_heartbeat_t *hb, void *arg);

typedef struct csp_steward_opts {
    /* A ward silent this long (no pulse) is unhealthy: cancelled and
     * restarted. Required, > 0. */
    csp_duration_t timeout;
    /* The interval of the ward's heartbeat; 0: timeout / 2 (the book's). */
    csp_duration_t ward_interval;
    /* Restart budget: after this many restarts in a row the steward gives up
     * (returns the failure) instead of restarting again; < 0: no limit,
     * 0: never restart. */
    int            max_restarts;
    /* > 0: a ward that stays up this long resets the count of restarts in a
     * row; 0: the budget counts every restart of the steward's run. */
    csp_duration_t budget_period;
    /* Pause before each restart (0: none), pulsing meanwhile. */
    csp_duration_t backoff;
    /* Called in the steward's task before each restart (the book's log
     * line): cause is CSP_ETIMEDOUT for a missed heartbeat or the ward's
     * non-zero return value; restarts counts this run's restarts including
     * this one. May be NULL. Must not block for long. */
    void         (*on_restart)(void *arg, int restarts, int cause);
    void          *on_restart_arg;
    /* Name of the ward tasks (copied; NULL: none). */
    const char    *name;
} csp_steward_opts_t;

typedef struct csp_steward csp_steward_t;

/* A steward for ward(ctx, hb, arg) with these options (copied; name too).
 * Returns one reference owned by the caller (csp_steward_release), or NULL:
 * opts or ward NULL, timeout <= 0, ward_interval < 0 or >= timeout,
 * budget_period < 0, backoff < 0, out of memory. Never blocks. */
CSP_EXTERN csp_steward_t *csp_steward_new(const csp_steward_opts_t *opts, csp_ward_fn ward,
                                          void *arg);
/* Adds a reference; returns s (NULL for NULL). */
CSP_EXTERN csp_steward_t *csp_steward_retain(csp_steward_t *s);
/* Drops a reference. NULL: no-op. */
CSP_EXTERN void csp_steward_release(csp_steward_t *s);

/* Runs the steward on the calling task until it stops: starts the ward in
 * a new task, restarts it (cancelling the old one's context first) when it
 * misses its heartbeat deadline or returns non-zero, and pulses hb (may be
 * NULL) every csp_heartbeat_interval(hb) — or, for a per-work hb, whenever
 * the ward pulses — so that it can be watched in turn. Returns
 *   0                  the ward returned 0 (its work is done);
 *   csp_ctx_err(ctx)   ctx is done (the normal way to stop a steward);
 *   the last failure   the restart budget is spent: CSP_ETIMEDOUT (missed
 *                      heartbeat) or the ward's non-zero return value;
 *   CSP_ENOMEM / CSP_ESHUTDOWN  a ward could not be started;
 *   CSP_EINVAL         s or ctx NULL.
 * Before it returns, every ward task it started has been cancelled and has
 * returned (a ward that ignores its context blocks this). Parks the task. */
CSP_EXTERN int csp_steward_run(csp_steward_t *s, csp_ctx_t *ctx, csp_heartbeat_t *hb);
/* A steward shaped as a ward (the book's "the steward itself is
 * monitorable"): csp_steward_run((csp_steward_t *)steward, ctx, hb). Give it
 * to another steward as its ward, with the inner steward as arg. */
CSP_EXTERN int csp_steward_ward(csp_ctx_t *ctx, csp_heartbeat_t *hb, void *steward);
/* The book's doWorkWithSteward(done, pulseInterval): runs csp_steward_run in
 * a new task with a new heartbeat of pulse_interval (> 0; 0: per-work, the
 * steward pulses whenever its ward does) and returns that heartbeat's
 * channel, owned by the caller. The channel is closed once the steward has
 * stopped and joined its wards; *result (may be NULL) then holds
 * csp_steward_run's return value (written before the close). The task
 * retains s and ctx. NULL: s or ctx NULL, pulse_interval < 0, out of memory,
 * no runtime. Never blocks. */
CSP_EXTERN csp_chan_t *csp_steward_go(csp_steward_t *s, csp_ctx_t *ctx,
                                      csp_duration_t pulse_interval, int *result);
/* Restarts made by s so far, over all its runs. 0 for NULL. Never blocks. */
CSP_EXTERN uint64_t csp_steward_restarts(csp_steward_t *s);

#ifdef __cplusplus
}
#endif
#endif /* CSP_SUPERVISE_H */
