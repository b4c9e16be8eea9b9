/* csp_heartbeat_t: heartbeats (the book's chapter 5, "Heartbeats").
 *
 * A heartbeat is a pulse channel (elem_size 0, capacity 1) plus, for
 * interval heartbeats, a ticker (Go's time.Tick(pulseInterval)). Pulses are
 * try-sends: a pulse that finds the one-slot buffer full is dropped, because
 * the listener has a pulse pending already and one is all it needs to know
 * the worker is alive. So pulsing never blocks, whoever listens or not.
 *
 * The blocking helpers (select, send, recv, sleep) add the ticker as one
 * more receive case and pulse when it fires, looping until a case of the
 * caller's completes: the book's `case <-pulse: sendPulse()` in every select
 * of a heartbeat-emitting goroutine, written once.
 *
 * Invariants
 *   - ch and ticker are set at creation and never change; ch is closed at
 *     most once (csp_heartbeat_close; the channel itself refuses a second).
 *   - refs counts the holders; the last release stops and frees the ticker
 *     and drops the heartbeat's reference to ch.
 * Locks: none of its own (the channel's and the timer's).
 * Atomics: refs only (increments relaxed: the caller holds a reference;
 * decrements acq_rel: the last one sees every holder's use).
 */
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include <csp/supervise.h>

struct csp_heartbeat {
    _Atomic uint32_t refs;
    csp_duration_t   interval; /* 0: per-work */
    csp_chan_t      *ch;       /* the pulses: elem_size 0, capacity 1 */
    csp_timer_t     *ticker;   /* NULL for per-work heartbeats */
};

CSP_EXTERN csp_heartbeat_t *csp_heartbeat_new(csp_duration_t interval)
{
    if (interval < 0)
        return NULL;
    csp_heartbeat_t *hb = calloc(1, sizeof *hb);
    if (!hb)
        return NULL;
    atomic_init(&hb->refs, 1);
    hb->interval = interval;
    hb->ch = csp_chan_make(0, 1);
    if (!hb->ch)
        goto fail;
    if (interval > 0) {
        hb->ticker = csp_ticker_new(interval);
        if (!hb->ticker)
            goto fail;
    }
    return hb;
fail:
    csp_chan_release(hb->ch);
    free(hb);
    return NULL;
}

CSP_EXTERN csp_heartbeat_t *csp_heartbeat_retain(csp_heartbeat_t *hb)
{
    if (hb)
        atomic_fetch_add_explicit(&hb->refs, 1, memory_order_relaxed); /* caller holds one */
    return hb;
}

CSP_EXTERN void csp_heartbeat_release(csp_heartbeat_t *hb)
{
    if (!hb)
        return;
    /* acq_rel: the last releaser sees every other holder's use */
    if (atomic_fetch_sub_explicit(&hb->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (hb->ticker)
        csp_timer_release(hb->ticker); /* stops it */
    csp_chan_release(hb->ch);
    free(hb);
}

CSP_EXTERN csp_chan_t *csp_heartbeat_chan(csp_heartbeat_t *hb)
{
    return hb ? hb->ch : NULL;
}

CSP_EXTERN csp_chan_t *csp_heartbeat_ticker(csp_heartbeat_t *hb)
{
    return hb && hb->ticker ? csp_timer_chan(hb->ticker) : NULL;
}

CSP_EXTERN csp_duration_t csp_heartbeat_interval(csp_heartbeat_t *hb)
{
    return hb ? hb->interval : 0;
}

CSP_EXTERN int csp_heartbeat_pulse(csp_heartbeat_t *hb)
{
    if (!hb)
        return CSP_EINVAL;
    /* the book's select { case heartbeat <- struct{}{}: default: } */
    return csp_chan_try_send(hb->ch, NULL);
}

CSP_EXTERN int csp_heartbeat_tick(csp_heartbeat_t *hb)
{
    if (!hb)
        return CSP_EINVAL;
    if (!hb->ticker || csp_chan_try_recv(csp_timer_chan(hb->ticker), NULL) != 0)
        return 0;
    (void)csp_heartbeat_pulse(hb);
    return 1;
}

CSP_EXTERN int csp_heartbeat_close(csp_heartbeat_t *hb)
{
    if (!hb)
        return CSP_EINVAL;
    return csp_chan_close(hb->ch);
}

CSP_EXTERN int csp_heartbeat_select_until(csp_heartbeat_t *hb, csp_ctx_t *ctx,
                                          csp_case_t *cases, size_t n, csp_time_t deadline)
{
    if (!hb || !ctx || (!cases && n > 0) || n > CSP_HEARTBEAT_MAX_CASES)
        return CSP_EINVAL;
    csp_case_t all[CSP_HEARTBEAT_MAX_CASES + 1];
    if (n)
        memcpy(all, cases, n * sizeof *cases); /* recv buffers stay the caller's */
    csp_chan_t *tick = csp_heartbeat_ticker(hb);
    size_t m = n;
    if (tick) {
        all[n] = (csp_case_t)CSP_RECV_CASE(tick, NULL);
        m++;
    }
    for (;;) {
        int i = csp_select_ctx_until(ctx, all, m, deadline);
        if (i < 0)
            return i;
        if ((size_t)i == n) { /* the ticker: an interval pulse is due */
            (void)csp_heartbeat_pulse(hb);
            continue;
        }
        cases[i].status = all[i].status;
        return i;
    }
}

CSP_EXTERN int csp_heartbeat_select(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_case_t *cases,
                                    size_t n)
{
    return csp_heartbeat_select_until(hb, ctx, cases, n, CSP_FOREVER);
}

CSP_EXTERN int csp_heartbeat_send(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_chan_t *c,
                                  const void *elem)
{
    if (!c)
        return CSP_EINVAL;
    csp_case_t k = CSP_SEND_CASE(c, (void *)elem);
    int i = csp_heartbeat_select(hb, ctx, &k, 1);
    return i < 0 ? i : k.status;
}

CSP_EXTERN int csp_heartbeat_recv(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_chan_t *c,
                                  void *out)
{
    if (!c)
        return CSP_EINVAL;
    csp_case_t k = CSP_RECV_CASE(c, out);
    int i = csp_heartbeat_select(hb, ctx, &k, 1);
    return i < 0 ? i : k.status;
}

CSP_EXTERN int csp_heartbeat_sleep(csp_heartbeat_t *hb, csp_ctx_t *ctx, csp_duration_t d)
{
    if (!hb || !ctx)
        return CSP_EINVAL;
    int i = csp_heartbeat_select_until(hb, ctx, NULL, 0, csp_deadline_after(d > 0 ? d : 0));
    return i == CSP_ETIMEDOUT ? 0 : i;
}

/* ---- the book's doWork shape ---- */

typedef struct {
    csp_ctx_t       *ctx;     /* retained */
    csp_heartbeat_t *hb;      /* the task's reference */
    csp_chan_t      *results; /* the task's reference */
    csp_heartbeat_fn fn;
    void            *arg;
} hb_task_args_t;

static void hb_task(void *p)
{
    hb_task_args_t a = *(hb_task_args_t *)p;
    (void)a.fn(a.ctx, a.hb, a.results, a.arg);
    /* the book's defer close(heartbeat); defer close(results) */
    csp_chan_close(a.results);
    csp_heartbeat_close(a.hb);
    csp_chan_release(a.results);
    csp_heartbeat_release(a.hb);
    csp_ctx_release(a.ctx);
}

CSP_EXTERN int csp_heartbeat_go(csp_ctx_t *ctx, csp_duration_t interval, size_t elem_size,
                                size_t results_cap, csp_heartbeat_fn fn, void *arg,
                                csp_chan_t **heartbeat, csp_chan_t **results)
{
    if (heartbeat)
        *heartbeat = NULL;
    if (results)
        *results = NULL;
    if (!ctx || !fn || !heartbeat || !results || interval < 0)
        return CSP_EINVAL;
    if (elem_size > CSP_CHAN_MAX_ELEM || results_cap > CSP_CHAN_MAX_CAP)
        return CSP_EINVAL;
    csp_heartbeat_t *hb = csp_heartbeat_new(interval);
    if (!hb)
        return csp_workers() > 0 ? CSP_ENOMEM : CSP_ESHUTDOWN;
    csp_chan_t *res = csp_chan_make(elem_size, results_cap);
    if (!res) {
        csp_heartbeat_release(hb);
        return CSP_ENOMEM; /* sizes were checked: out of memory */
    }
    hb_task_args_t a = { csp_ctx_retain(ctx), hb, res, fn, arg };
    /* the caller's references, taken before the task can drop its own */
    csp_chan_t *hb_ch = csp_chan_retain(csp_heartbeat_chan(hb));
    csp_chan_retain(res);
    int rc = csp_go_copy(hb_task, &a, sizeof a, NULL);
    if (rc != 0) {
        csp_chan_release(hb_ch);
        csp_chan_release(res);
        csp_chan_release(res);
        csp_heartbeat_release(hb);
        csp_ctx_release(a.ctx);
        return rc;
    }
    *heartbeat = hb_ch;
    *results = res;
    return 0;
}
