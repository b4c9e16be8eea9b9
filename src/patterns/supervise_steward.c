/* csp_steward_t: stewards that heal unhealthy wards (the book's chapter 5,
 * "Healing Unhealthy Goroutines"; Erlang's supervisors).
 *
 * A steward run (csp_steward_run) starts the ward in a task of its own,
 * with a context derived from the steward's and a fresh heartbeat, and
 * watches three things in one select: the ward's pulses (each one moves the
 * deadline to now + timeout), its own ticker (to pulse its own heartbeat, so
 * that a steward can be some other steward's ward), and the deadline. A
 * missed deadline, or the ward returning non-zero, makes the ward unhealthy:
 * the steward cancels the ward's context, drops it, and starts a new one
 * with a new heartbeat (a late pulse of the old ward can never count for
 * the new one). It does not wait for the old ward to return before
 * restarting: a stuck ward must not stall the healing. Every ward it started
 * is joined before the run returns.
 *
 * Records
 *   st_run_t     one per run: the wait group of live ward tasks, reference
 *                counted by the run and each ward task (so a ward finishing
 *                after a run that returned early on shutdown is harmless).
 *   ward_inst_t  one per ward start: its context, its heartbeat and its
 *                return value; held by the run (until the ward is dropped)
 *                and by the ward task.
 * Invariants
 *   - Each ward task does wg_done(&run->wards) exactly once, after its last
 *     use of its instance; the run waits for wards == 0 before returning
 *     (unless the runtime is shutting down).
 *   - inst->rc is written by the ward task before it closes inst->hb's
 *     channel; the steward reads it only after receiving CSP_ECLOSED from
 *     that channel (the channel's lock orders the two).
 *   - The run's `cur` is the only ward whose heartbeat is watched.
 * Atomics: reference counts (relaxed increments under an existing
 * reference, acq_rel decrements) and s->restarts (relaxed: a statistic).
 * Locks: none of its own.
 */
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include <csp/supervise.h>

struct csp_steward {
    _Atomic uint32_t   refs;
    csp_steward_opts_t o;        /* o.name points at name */
    char               name[32];
    csp_ward_fn        ward;
    void              *arg;
    _Atomic uint64_t   restarts; /* over all runs */
};

typedef struct {
    _Atomic uint32_t refs;  /* the run + each ward task */
    csp_wg_t         wards; /* ward tasks not yet returned */
} st_run_t;

typedef struct {
    _Atomic uint32_t refs;  /* the run (while current) + the ward task */
    csp_ctx_t       *ctx;   /* the ward's: child of the steward's */
    csp_heartbeat_t *hb;
    int              rc;    /* the ward's result; see the invariants */
    csp_ward_fn      fn;
    void            *arg;
    st_run_t        *run;
} ward_inst_t;

/* ---- steward objects ---- */

CSP_EXTERN csp_steward_t *csp_steward_new(const csp_steward_opts_t *opts, csp_ward_fn ward,
                                          void *arg)
{
    if (!opts || !ward || opts->timeout <= 0 || opts->ward_interval < 0 ||
        opts->ward_interval >= opts->timeout || opts->budget_period < 0 || opts->backoff < 0)
        return NULL;
    csp_steward_t *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    atomic_init(&s->refs, 1);
    s->o = *opts;
    if (s->o.ward_interval == 0)
        s->o.ward_interval = s->o.timeout / 2 > 0 ? s->o.timeout / 2 : 1; /* the book's */
    if (opts->name) {
        strncpy(s->name, opts->name, sizeof s->name - 1);
        s->o.name = s->name;
    }
    s->ward = ward;
    s->arg = arg;
    return s;
}

CSP_EXTERN csp_steward_t *csp_steward_retain(csp_steward_t *s)
{
    if (s)
        atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed); /* caller holds one */
    return s;
}

CSP_EXTERN void csp_steward_release(csp_steward_t *s)
{
    /* acq_rel: the last releaser sees every holder's use */
    if (s && atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) == 1)
        free(s);
}

CSP_EXTERN uint64_t csp_steward_restarts(csp_steward_t *s)
{
    return s ? atomic_load_explicit(&s->restarts, memory_order_relaxed) : 0; /* a statistic */
}

/* ---- wards ---- */

static void run_unref(st_run_t *run)
{
    /* acq_rel: the last holder sees the others' uses before freeing */
    if (atomic_fetch_sub_explicit(&run->refs, 1, memory_order_acq_rel) == 1)
        free(run);
}

static void inst_unref(ward_inst_t *w)
{
    /* acq_rel: the last holder sees the others' uses before freeing */
    if (atomic_fetch_sub_explicit(&w->refs, 1, memory_order_acq_rel) != 1)
        return;
    csp_heartbeat_release(w->hb);
    csp_ctx_release(w->ctx);
    free(w);
}

static void ward_task(void *p)
{
    ward_inst_t *w = p;
    w->rc = w->fn(w->ctx, w->hb, w->arg);
    csp_heartbeat_close(w->hb); /* tells the steward the ward returned */
    st_run_t *run = w->run;
    inst_unref(w);
    csp_wg_done(&run->wards);
    run_unref(run);
}

/* Starts a ward under ctx; *out gets the run's reference to it. */
static int start_ward(csp_steward_t *s, csp_ctx_t *ctx, st_run_t *run, ward_inst_t **out)
{
    ward_inst_t *w = calloc(1, sizeof *w);
    if (!w)
        return CSP_ENOMEM;
    w->ctx = csp_ctx_with_cancel(ctx);
    w->hb = csp_heartbeat_new(s->o.ward_interval);
    if (!w->ctx || !w->hb) {
        csp_ctx_release(w->ctx);
        csp_heartbeat_release(w->hb);
        free(w);
        return csp_workers() > 0 ? CSP_ENOMEM : CSP_ESHUTDOWN;
    }
    atomic_init(&w->refs, 2); /* the run's and the task's */
    w->fn = s->ward;
    w->arg = s->arg;
    w->run = run;
    atomic_fetch_add_explicit(&run->refs, 1, memory_order_relaxed); /* the run holds one */
    csp_wg_add(&run->wards, 1);
    csp_task_opts_t to = { 0 };
    to.name = s->o.name;
    int rc = csp_go_opts(ward_task, w, &to);
    if (rc != 0) {
        csp_wg_done(&run->wards);
        atomic_fetch_sub_explicit(&run->refs, 1, memory_order_relaxed); /* never the last */
        atomic_store_explicit(&w->refs, 1, memory_order_relaxed);     /* no task: ours only */
        inst_unref(w);
        return rc;
    }
    *out = w;
    return 0;
}

/* Waits d, pulsing hb (if any) meanwhile. 0, or why it stopped early. */
static int pause_pulsing(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_duration_t d)
{
    if (hb)
        return csp_heartbeat_sleep(hb, ctx, d);
    int r = csp_select_ctx_until(ctx, NULL, 0, csp_deadline_after(d));
    return r == CSP_ETIMEDOUT ? 0 : r;
}

CSP_EXTERN int csp_steward_run(csp_steward_t *s, csp_ctx_t *ctx, csp_heartbeat_t *hb)
{
    if (!s || !ctx)
        return CSP_EINVAL;
    st_run_t *run = calloc(1, sizeof *run);
    if (!run)
        return CSP_ENOMEM;
    atomic_init(&run->refs, 1);

    csp_chan_t *own_tick = csp_heartbeat_ticker(hb);
    bool relay = hb && !own_tick; /* per-work heartbeat: pulse when the ward does */
    const csp_steward_opts_t *o = &s->o;
    ward_inst_t *cur = NULL;
    int in_row = 0, total = 0;
    int result = start_ward(s, ctx, run, &cur);
    csp_time_t started = csp_now();
    csp_time_t deadline = csp_deadline_after(o->timeout);

    while (result == 0) {
        csp_case_t cases[2] = {
            CSP_RECV_CASE(csp_heartbeat_chan(cur->hb), NULL),
            CSP_RECV_CASE(own_tick, NULL),
        };
        int i = csp_select_ctx_until(ctx, cases, 2, deadline);
        int cause;
        if (i == 0 && cases[0].status == 0) { /* the ward is alive */
            deadline = csp_deadline_after(o->timeout);
            if (relay)
                (void)csp_heartbeat_pulse(hb);
            continue;
        }
        if (i == 1) { /* our own pulse is due */
            (void)csp_heartbeat_pulse(hb);
            continue;
        }
        if (i == 0) { /* the ward returned */
            int e = csp_ctx_err(ctx);
            if (e) {
                result = e; /* we are being stopped: not the ward's failure */
                break;
            }
            if (cur->rc == 0)
                break; /* its work is done, and so is ours (result 0) */
            cause = cur->rc;
        } else if (i == CSP_ETIMEDOUT) {
            cause = CSP_ETIMEDOUT; /* missed its heartbeat */
        } else {
            result = i; /* ctx done, or shutdown */
            break;
        }

        /* unhealthy: halt it and start another (not waiting for it) */
        csp_ctx_cancel(cur->ctx);
        inst_unref(cur);
        cur = NULL;
        csp_time_t now = csp_now();
        if (o->budget_period > 0 && now - started >= o->budget_period)
            in_row = 0; /* it stayed up long enough: a fresh budget */
        if (o->max_restarts >= 0 && in_row >= o->max_restarts) {
            result = cause; /* budget spent: give up */
            break;
        }
        in_row++;
        total++;
        atomic_fetch_add_explicit(&s->restarts, 1, memory_order_relaxed); /* a statistic */
        if (o->on_restart)
            o->on_restart(o->on_restart_arg, total, cause);
        if (o->backoff > 0 && (result = pause_pulsing(hb, ctx, o->backoff)) != 0)
            break;
        result = start_ward(s, ctx, run, &cur);
        started = csp_now();
        deadline = csp_deadline_after(o->timeout);
    }

    if (cur) {
        csp_ctx_cancel(cur->ctx);
        inst_unref(cur);
    }
    int jr = csp_wg_wait(&run->wards); /* every ward we started has returned */
    run_unref(run);
    return jr != 0 ? jr : result;
}

CSP_EXTERN int csp_steward_ward(csp_ctx_t *ctx, csp_heartbeat_t *hb, void *steward)
{
    return csp_steward_run((csp_steward_t *)steward, ctx, hb);
}

/* ---- the book's doWorkWithSteward ---- */

typedef struct {
    csp_steward_t   *s;      /* retained */
    csp_ctx_t       *ctx;    /* retained */
    csp_heartbeat_t *hb;     /* the task's reference */
    int             *result;
} st_go_args_t;

static void steward_task(void *p)
{
    st_go_args_t a = *(st_go_args_t *)p;
    int rc = csp_steward_run(a.s, a.ctx, a.hb);
    if (a.result)
        *a.result = rc; /* published by the close below */
    csp_steward_release(a.s);
    csp_ctx_release(a.ctx);
    csp_heartbeat_close(a.hb); /* the book's defer close(heartbeat) */
    csp_heartbeat_release(a.hb);
}

CSP_EXTERN csp_chan_t *csp_steward_go(csp_steward_t *s, csp_ctx_t *ctx,
                                      csp_duration_t pulse_interval, int *result)
{
    if (!s || !ctx || pulse_interval < 0)
        return NULL;
    csp_heartbeat_t *hb = csp_heartbeat_new(pulse_interval);
    if (!hb)
        return NULL;
    csp_chan_t *ch = csp_chan_retain(csp_heartbeat_chan(hb)); /* the caller's */
    st_go_args_t a = { csp_steward_retain(s), csp_ctx_retain(ctx), hb, result };
    if (csp_go_copy(steward_task, &a, sizeof a, NULL) != 0) {
        csp_steward_release(s);
        csp_ctx_release(ctx);
        csp_heartbeat_release(hb);
        csp_chan_release(ch);
        return NULL;
    }
    return ch;
}
