/* Pipelines: the chapter-4 patterns of "Concurrency in Go" as library calls.
 * See include/csp/pipeline.h for the contract.
 *
 * Every stage is built from public primitives only: tasks (csp_go_opts /
 * csp_go_copy), channels with their _ctx forms, csp_select_ctx and
 * contexts. Nothing here parks by itself, so nothing here implements the
 * waiter protocol: every wait is a channel operation or a select, which
 * already does.
 *
 * Invariants
 *   - A stage's state is one malloc block, created by the constructor and
 *     freed by the last of its tasks to end (single-task stages: by that
 *     task). The block holds one reference to each channel it uses (inputs,
 *     outputs, internal channels) and one to its context; "finish" drops
 *     them all, after closing the outputs, and calls arg_free(arg).
 *   - Multi-task stages (fan_in, par_map) count their tasks in `refs`,
 *     starting at tasks + 1: the extra one is the constructor's hold, dropped
 *     when it has spawned everything, so that a task ending at once cannot
 *     free the state under the constructor. A spawn that fails cancels the
 *     stage's own context (`ctx` there is csp_ctx_with_cancel of the
 *     caller's), and drops the references of the tasks not spawned; the ones
 *     already running see the cancel and end.
 *   - The caller's reference to an output is taken (csp_chan_retain) before
 *     any task is spawned, so the stage finishing early never frees the
 *     channel the constructor returns.
 *   - Per-element work allocates nothing and takes no lock of ours: buffers
 *     for one element (or one element per task) live in the state block.
 *   - opts->wg counts every task (added before csp_go, done by the task as
 *     its very last act, after the state is freed), plus the constructor's
 *     hold in multi-task stages; so csp_wg_wait returning means the stage's
 *     finish (closing, releasing, arg_free) is complete.
 *   - Cancellation: every loop checks csp_ctx_err (one acquire load) before
 *     it starts an element, and every blocking call is a _ctx form, so a
 *     done context ends every task of every stage; outputs are closed on the
 *     way out, so downstream stages end too (the book's induction).
 *
 * Ordered parallel map (opar_t): dispatcher -> jobs -> workers -> results ->
 * collector -> out. `credits` (capacity window, filled with window tokens)
 * bounds the items between the dispatcher's take of a token and the
 * collector's return of it after emitting the item: at most `window` items
 * are in flight, so sequence numbers in flight are distinct modulo window
 * (the collector's ring never collides) and `results` (capacity window)
 * never blocks a worker.
 *
 * Locks: none of our own; the channels' and contexts' locks are taken
 * inside their calls, never nested by this file.
 *
 * Atomics (each initialised with atomic_init before the first csp_go,
 * which publishes the state to the new tasks)
 *   par_t.refs / opar_t.refs / fan_t.refs   fetch_sub acq_rel: each task's
 *       writes (channel sends, buffer use) happen before the finisher frees;
 *       pairs with itself (the finisher's acquire side).
 *   opar_t.workers_live   fetch_sub acq_rel (pairs with itself): the last
 *       worker closes results after every worker's last send (the channel
 *       lock orders the data itself).
 *   opar_t.stopped        relaxed store (a worker whose fn said STOP) and
 *       relaxed load (the dispatcher): only a hint to stop dispatching early;
 *       correctness comes from the collector cancelling the stage's context.
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <csp/pipeline.h>

#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* options and shared helpers                                                 */

#define KNOWN_FLAGS (CSP_PIPE_CONSUME | CSP_PIPE_ORDERED)
#define MAX_WORKERS 65535u
#define MAX_OR 65535u /* csp_select's limit */

typedef struct {
    size_t      cap;
    unsigned    flags;
    size_t      window;
    void      (*arg_free)(void *);
    const char *name;
    size_t      stack_size;
    csp_wg_t   *wg;
} popts_t;

/* Copies *o (NULL: defaults) into *p; false for bad options. */
static bool opts_read(const csp_pipe_opts_t *o, popts_t *p)
{
    memset(p, 0, sizeof *p);
    if (!o)
        return true;
    for (size_t i = 0; i < sizeof o->reserved / sizeof o->reserved[0]; i++)
        if (o->reserved[i])
            return false;
    if (o->flags & ~(unsigned)KNOWN_FLAGS)
        return false;
    if (o->cap > CSP_CHAN_MAX_CAP)
        return false;
    p->cap = o->cap;
    p->flags = o->flags;
    p->window = o->window;
    p->arg_free = o->arg_free;
    p->name = o->name;
    p->stack_size = o->stack_size;
    p->wg = o->wg;
    return true;
}

/* The failure path of every constructor: with CSP_PIPE_CONSUME the caller's
 * references to the inputs go (also for bad options: the flag is honoured
 * whenever it is set), and arg_free runs. Returns NULL. */
static csp_chan_t *fail(const csp_pipe_opts_t *o, csp_chan_t *const *ins, size_t n, void *arg)
{
    if (o && (o->flags & CSP_PIPE_CONSUME) && ins)
        for (size_t i = 0; i < n; i++)
            csp_chan_release(ins[i]);
    if (o && o->arg_free)
        o->arg_free(arg);
    return NULL;
}

/* After success: with CSP_PIPE_CONSUME the stage (which retained the
 * inputs) takes over the caller's references, i.e. they are dropped. */
static void consumed(const popts_t *p, csp_chan_t *const *ins, size_t n)
{
    if (p->flags & CSP_PIPE_CONSUME)
        for (size_t i = 0; i < n; i++)
            csp_chan_release(ins[i]);
}

static csp_task_opts_t task_opts(const popts_t *p, const char *defname)
{
    csp_task_opts_t t;
    memset(&t, 0, sizeof t);
    t.stack_size = p->stack_size;
    t.name = p->name ? p->name : defname;
    return t;
}

/* opts->wg: one count per task, added before it can run, done as its last
 * act (task_end) */
static void wg_add(const popts_t *p)
{
    if (p->wg)
        csp_wg_add(p->wg, 1);
}

static void task_end(csp_wg_t *wg)
{
    if (wg)
        csp_wg_done(wg);
}

static int spawn(void (*fn)(void *), void *arg, const popts_t *p, const char *defname)
{
    csp_task_opts_t t = task_opts(p, defname);
    wg_add(p);
    int rc = csp_go_opts(fn, arg, &t);
    if (rc != 0)
        task_end(p->wg);
    return rc;
}

/* A task argument for multi-task stages: the shared state and the task's
 * index (copied into the task by csp_go_copy: no allocation). */
typedef struct {
    void  *st;
    size_t idx;
} targ_t;

static int spawn_idx(void (*fn)(void *), void *st, size_t idx, const popts_t *p,
                     const char *defname)
{
    targ_t a = { st, idx };
    csp_task_opts_t t = task_opts(p, defname);
    wg_add(p);
    int rc = csp_go_copy(fn, &a, sizeof a, &t);
    if (rc != 0)
        task_end(p->wg);
    return rc;
}

/* n * size without overflow, and below a sane bound; false otherwise. */
static bool mul_ok(size_t n, size_t size, size_t *out)
{
    if (size && n > (SIZE_MAX / 4) / size)
        return false;
    *out = n * size;
    return true;
}

/* ------------------------------------------------------------------------ */
/* generator and repeat                                                        */

typedef struct {
    csp_ctx_t    *ctx;
    csp_chan_t   *out;
    csp_wg_t     *wg;
    size_t        n, es;
    bool          forever;
    unsigned char data[]; /* n elements of es bytes */
} src_t;

static void src_task(void *arg)
{
    src_t *s = arg;
    do {
        for (size_t i = 0; i < s->n; i++)
            if (csp_ctx_err(s->ctx) ||
                csp_chan_send_ctx(s->ctx, s->out, s->data + i * s->es) != 0)
                goto out;
    } while (s->forever);
out:
    csp_chan_close(s->out);
    csp_chan_release(s->out);
    csp_ctx_release(s->ctx);
    csp_wg_t *wg = s->wg;
    free(s);
    task_end(wg);
}

static csp_chan_t *source(csp_ctx_t *ctx, const void *vals, size_t n, size_t es,
                          const csp_pipe_opts_t *opts, bool forever)
{
    popts_t p;
    size_t bytes;
    if (!ctx || !opts_read(opts, &p) || es > CSP_CHAN_MAX_ELEM || (forever && n == 0) ||
        !mul_ok(n, es, &bytes) || (bytes && !vals))
        return fail(opts, NULL, 0, NULL);
    csp_chan_t *out = csp_chan_make(es, p.cap);
    if (!out)
        return NULL;
    if (n == 0) { /* nothing to send: closed at once, no task */
        csp_chan_close(out);
        return out;
    }
    src_t *s = malloc(sizeof *s + bytes);
    if (!s) {
        csp_chan_release(out);
        return NULL;
    }
    s->ctx = csp_ctx_retain(ctx);
    s->out = csp_chan_retain(out);
    s->n = n;
    s->es = es;
    s->forever = forever;
    s->wg = p.wg;
    if (bytes)
        memcpy(s->data, vals, bytes);
    if (spawn(src_task, s, &p, forever ? "pipe_repeat" : "pipe_generator") != 0) {
        csp_ctx_release(s->ctx);
        csp_chan_release(s->out);
        free(s);
        csp_chan_release(out);
        return NULL;
    }
    return out;
}

CSP_EXTERN csp_chan_t *csp_pipe_generator(csp_ctx_t *ctx, const void *vals, size_t n,
                                          size_t elem_size, const csp_pipe_opts_t *opts)
{
    return source(ctx, vals, n, elem_size, opts, false);
}

CSP_EXTERN csp_chan_t *csp_pipe_repeat(csp_ctx_t *ctx, const void *vals, size_t n,
                                       size_t elem_size, const csp_pipe_opts_t *opts)
{
    return source(ctx, vals, n, elem_size, opts, true);
}

/* ------------------------------------------------------------------------ */
/* repeat_fn                                                                    */

typedef struct {
    csp_ctx_t      *ctx;
    csp_chan_t     *out;
    size_t          es;
    csp_pipe_gen_fn fn;
    void           *arg;
    void          (*arg_free)(void *);
    csp_wg_t       *wg;
    unsigned char   buf[];
} rfn_t;

static void rfn_task(void *arg)
{
    rfn_t *s = arg;
    for (;;) {
        if (csp_ctx_err(s->ctx))
            break;
        memset(s->buf, 0, s->es);
        if (s->fn(s->arg, s->buf) != 0)
            break;
        if (csp_chan_send_ctx(s->ctx, s->out, s->buf) != 0)
            break;
    }
    csp_chan_close(s->out);
    if (s->arg_free)
        s->arg_free(s->arg);
    csp_chan_release(s->out);
    csp_ctx_release(s->ctx);
    csp_wg_t *wg = s->wg;
    free(s);
    task_end(wg);
}

CSP_EXTERN csp_chan_t *csp_pipe_repeat_fn(csp_ctx_t *ctx, size_t elem_size, csp_pipe_gen_fn fn,
                                          void *arg, const csp_pipe_opts_t *opts)
{
    popts_t p;
    if (!ctx || !fn || !opts_read(opts, &p) || elem_size > CSP_CHAN_MAX_ELEM)
        return fail(opts, NULL, 0, arg);
    csp_chan_t *out = csp_chan_make(elem_size, p.cap);
    rfn_t *s = out ? malloc(sizeof *s + elem_size) : NULL;
    if (!s) {
        csp_chan_release(out);
        return fail(opts, NULL, 0, arg);
    }
    s->ctx = csp_ctx_retain(ctx);
    s->out = csp_chan_retain(out);
    s->es = elem_size;
    s->fn = fn;
    s->arg = arg;
    s->arg_free = p.arg_free;
    s->wg = p.wg;
    if (spawn(rfn_task, s, &p, "pipe_repeat_fn") != 0) {
        csp_ctx_release(s->ctx);
        csp_chan_release(s->out);
        free(s);
        csp_chan_release(out);
        return fail(opts, NULL, 0, arg);
    }
    return out;
}

/* ------------------------------------------------------------------------ */
/* one-input stages: take, or_done / buffer, map, filter, map_try              */

enum { K_TAKE, K_FWD, K_MAP, K_FILTER, K_TRY };

typedef union {
    csp_pipe_map_fn  map;
    csp_pipe_pred_fn pred;
    csp_pipe_try_fn  try_;
} stage_fn_t;

/* Applies a map/try step to one element: the output element (out_es bytes;
 * for K_TRY a csp_result_t built from a value of vsize bytes at vbuf) is
 * written to out. Returns CSP_PIPE_EMIT, CSP_PIPE_SKIP or CSP_PIPE_STOP. */
static int apply(int kind, stage_fn_t fn, void *arg, const void *in, void *out, size_t out_es,
                 void *vbuf, size_t vsize)
{
    if (kind == K_TRY) {
        memset(vbuf, 0, vsize);
        csp_error_t *err = fn.try_(arg, in, vbuf);
        csp_result_t r = err ? csp_result_err(err) : csp_result_ok(vbuf, vsize);
        memcpy(out, &r, sizeof r);
        return CSP_PIPE_EMIT;
    }
    memset(out, 0, out_es);
    int rc = fn.map(arg, in, out);
    return rc == CSP_PIPE_EMIT || rc == CSP_PIPE_SKIP ? rc : CSP_PIPE_STOP;
}

/* An output element that could not be delivered: a K_TRY result's error is
 * the stage's to release. */
static void undelivered(int kind, void *elem)
{
    if (kind == K_TRY)
        csp_result_clear((csp_result_t *)elem);
}

typedef struct {
    csp_ctx_t     *ctx;
    csp_chan_t    *in, *out;
    int            kind;
    size_t         limit; /* K_TAKE */
    stage_fn_t     fn;
    void          *arg;
    void         (*arg_free)(void *);
    csp_wg_t      *wg;
    size_t         in_es, out_es, vsize;
    unsigned char *ibuf, *obuf, *vbuf;
    max_align_t    data[]; /* ibuf, obuf, vbuf */
} stage_t;

static void stage_task(void *arg)
{
    stage_t *s = arg;
    for (size_t i = 0; s->kind != K_TAKE || i < s->limit; i++) {
        if (csp_ctx_err(s->ctx) || csp_chan_recv_ctx(s->ctx, s->in, s->ibuf) != 0)
            break; /* done, or in closed and drained */
        const void *send = s->ibuf;
        if (s->kind == K_FILTER) {
            if (!s->fn.pred(s->arg, s->ibuf))
                continue;
        } else if (s->kind == K_MAP || s->kind == K_TRY) {
            int rc = apply(s->kind, s->fn, s->arg, s->ibuf, s->obuf, s->out_es, s->vbuf,
                           s->vsize);
            if (rc == CSP_PIPE_SKIP)
                continue;
            if (rc == CSP_PIPE_STOP)
                break;
            send = s->obuf;
        }
        if (csp_chan_send_ctx(s->ctx, s->out, send) != 0) {
            undelivered(s->kind, s->obuf);
            break;
        }
    }
    csp_chan_close(s->out);
    if (s->arg_free)
        s->arg_free(s->arg);
    csp_chan_release(s->in);
    csp_chan_release(s->out);
    csp_ctx_release(s->ctx);
    csp_wg_t *wg = s->wg;
    free(s);
    task_end(wg);
}

static const char *stage_name(int kind)
{
    switch (kind) {
    case K_TAKE: return "pipe_take";
    case K_FWD: return "pipe_or_done";
    case K_MAP: return "pipe_map";
    case K_FILTER: return "pipe_filter";
    default: return "pipe_map_try";
    }
}

/* out_es: the output element size (the input's for take/fwd/filter;
 * sizeof(csp_result_t) for try, whose value size is vsize). cap_override:
 * SIZE_MAX, or the output capacity to use instead of opts->cap. */
static csp_chan_t *stage_new(csp_ctx_t *ctx, csp_chan_t *in, int kind, size_t limit,
                             size_t out_es, size_t vsize, stage_fn_t fn, void *arg,
                             const csp_pipe_opts_t *opts, size_t cap_override)
{
    popts_t p;
    if (!ctx || !in || !opts_read(opts, &p) || out_es > CSP_CHAN_MAX_ELEM ||
        vsize > CSP_RESULT_VALUE_MAX ||
        (cap_override != SIZE_MAX && cap_override > CSP_CHAN_MAX_CAP))
        return fail(opts, &in, 1, arg);
    size_t cap = cap_override != SIZE_MAX ? cap_override : p.cap;
    size_t in_es = csp_chan_elem_size(in);
    csp_chan_t *out = csp_chan_make(out_es, cap);
    if (!out)
        return fail(opts, &in, 1, arg);
    if (kind == K_TAKE && limit == 0) { /* take 0: closed at once, in is not read */
        csp_chan_close(out);
        consumed(&p, &in, 1);
        return out;
    }
    /* buffers, each rounded up to max_align_t */
    const size_t al = sizeof(max_align_t);
    size_t ib = (in_es + al - 1) / al * al, ob = (out_es + al - 1) / al * al;
    size_t vb = (vsize + al - 1) / al * al;
    stage_t *s = malloc(sizeof *s + ib + ob + vb);
    if (!s) {
        csp_chan_release(out);
        return fail(opts, &in, 1, arg);
    }
    s->ctx = csp_ctx_retain(ctx);
    s->in = csp_chan_retain(in);
    s->out = csp_chan_retain(out);
    s->kind = kind;
    s->limit = limit;
    s->fn = fn;
    s->arg = arg;
    s->arg_free = p.arg_free;
    s->wg = p.wg;
    s->in_es = in_es;
    s->out_es = out_es;
    s->vsize = vsize;
    s->ibuf = (unsigned char *)s->data;
    s->obuf = s->ibuf + ib;
    s->vbuf = s->obuf + ob;
    if (spawn(stage_task, s, &p, stage_name(kind)) != 0) {
        csp_ctx_release(s->ctx);
        csp_chan_release(s->in);
        csp_chan_release(s->out);
        free(s);
        csp_chan_release(out);
        return fail(opts, &in, 1, arg);
    }
    consumed(&p, &in, 1);
    return out;
}

static const stage_fn_t no_fn = { .map = NULL };

CSP_EXTERN csp_chan_t *csp_pipe_take(csp_ctx_t *ctx, csp_chan_t *in, size_t n,
                                     const csp_pipe_opts_t *opts)
{
    return stage_new(ctx, in, K_TAKE, n, csp_chan_elem_size(in), 0, no_fn, NULL, opts,
                     SIZE_MAX);
}

CSP_EXTERN csp_chan_t *csp_pipe_or_done(csp_ctx_t *ctx, csp_chan_t *in,
                                        const csp_pipe_opts_t *opts)
{
    return stage_new(ctx, in, K_FWD, 0, csp_chan_elem_size(in), 0, no_fn, NULL, opts,
                     SIZE_MAX);
}

CSP_EXTERN csp_chan_t *csp_pipe_buffer(csp_ctx_t *ctx, csp_chan_t *in, size_t n,
                                       const csp_pipe_opts_t *opts)
{
    if (n > CSP_CHAN_MAX_CAP)
        return fail(opts, &in, 1, NULL);
    return stage_new(ctx, in, K_FWD, 0, csp_chan_elem_size(in), 0, no_fn, NULL, opts, n);
}

CSP_EXTERN csp_chan_t *csp_pipe_map(csp_ctx_t *ctx, csp_chan_t *in, size_t out_elem_size,
                                    csp_pipe_map_fn fn, void *arg, const csp_pipe_opts_t *opts)
{
    if (!fn)
        return fail(opts, &in, 1, arg);
    stage_fn_t f = { .map = fn };
    return stage_new(ctx, in, K_MAP, 0, out_elem_size, 0, f, arg, opts, SIZE_MAX);
}

CSP_EXTERN csp_chan_t *csp_pipe_filter(csp_ctx_t *ctx, csp_chan_t *in, csp_pipe_pred_fn pred,
                                       void *arg, const csp_pipe_opts_t *opts)
{
    if (!pred)
        return fail(opts, &in, 1, arg);
    stage_fn_t f = { .pred = pred };
    return stage_new(ctx, in, K_FILTER, 0, csp_chan_elem_size(in), 0, f, arg, opts, SIZE_MAX);
}

CSP_EXTERN csp_chan_t *csp_pipe_map_try(csp_ctx_t *ctx, csp_chan_t *in, size_t value_size,
                                        csp_pipe_try_fn fn, void *arg,
                                        const csp_pipe_opts_t *opts)
{
    if (!fn || value_size > CSP_RESULT_VALUE_MAX)
        return fail(opts, &in, 1, arg);
    stage_fn_t f = { .try_ = fn };
    return stage_new(ctx, in, K_TRY, 0, sizeof(csp_result_t), value_size, f, arg, opts,
                     SIZE_MAX);
}

/* ------------------------------------------------------------------------ */
/* parallel map, unordered: `workers` tasks share in and out                   */

typedef struct {
    _Atomic size_t refs;   /* running tasks + the constructor's hold */
    csp_ctx_t     *ctx;    /* the stage's own: a child of the caller's */
    csp_chan_t    *in, *out;
    int            kind;   /* K_MAP or K_TRY */
    stage_fn_t     fn;
    void          *arg;
    void         (*arg_free)(void *);
    size_t         out_es, vsize;
    csp_wg_t      *wg;
    size_t         slot;   /* bytes of buffers per worker */
    size_t         ib, ob; /* offsets of obuf and vbuf in a slot */
    max_align_t    data[]; /* workers slots: ibuf, obuf, vbuf */
} par_t;

static void par_put(par_t *p, size_t n)
{
    /* acq_rel: every task's last use of the state happens before the free */
    if (atomic_fetch_sub_explicit(&p->refs, n, memory_order_acq_rel) != n)
        return;
    csp_chan_close(p->out);
    if (p->arg_free)
        p->arg_free(p->arg);
    csp_chan_release(p->in);
    csp_chan_release(p->out);
    csp_ctx_release(p->ctx);
    free(p);
}

static void par_worker(void *a)
{
    targ_t *t = a;
    par_t *p = t->st;
    unsigned char *ibuf = (unsigned char *)p->data + t->idx * p->slot;
    unsigned char *obuf = ibuf + p->ib, *vbuf = ibuf + p->ob;
    for (;;) {
        if (csp_ctx_err(p->ctx) || csp_chan_recv_ctx(p->ctx, p->in, ibuf) != 0)
            break;
        int rc = apply(p->kind, p->fn, p->arg, ibuf, obuf, p->out_es, vbuf, p->vsize);
        if (rc == CSP_PIPE_SKIP)
            continue;
        if (rc == CSP_PIPE_STOP) {
            csp_ctx_cancel(p->ctx); /* the other workers stop too */
            break;
        }
        if (csp_chan_send_ctx(p->ctx, p->out, obuf) != 0) {
            undelivered(p->kind, obuf);
            break;
        }
    }
    csp_wg_t *wg = p->wg;
    par_put(p, 1);
    task_end(wg);
}

/* ------------------------------------------------------------------------ */
/* parallel map, ordered: dispatcher -> workers -> collector (see the top)    */

typedef struct {
    uint64_t seq;
    int32_t  status; /* results: CSP_PIPE_EMIT / SKIP / STOP */
    int32_t  pad;
} hdr_t;
#define HDR ((sizeof(hdr_t) + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t))

typedef struct {
    _Atomic size_t refs;         /* running tasks + the constructor's hold */
    _Atomic size_t workers_live; /* the last worker closes results */
    _Atomic int    stopped;      /* a worker's fn said STOP (a hint) */
    csp_ctx_t     *ctx;          /* the stage's own: a child of the caller's */
    csp_chan_t    *in, *out;
    csp_chan_t    *jobs;         /* hdr + input element */
    csp_chan_t    *results;      /* hdr + output element; capacity window */
    csp_chan_t    *credits;      /* signal channel, capacity window, window tokens */
    int            kind;
    stage_fn_t     fn;
    void          *arg;
    void         (*arg_free)(void *);
    csp_wg_t      *wg;
    size_t         in_es, out_es, vsize, window;
    size_t         job_es, res_es; /* HDR + element, rounded */
    unsigned char *jbuf;         /* dispatcher: one job */
    unsigned char *wbufs;        /* per worker: job, result, value */
    size_t         wslot;
    unsigned char *ring;         /* collector: window results */
    bool          *full;         /* collector: ring[i] holds a result */
    max_align_t    data[];
} opar_t;

static void opar_put(opar_t *p, size_t n)
{
    /* acq_rel: every task's last use of the state happens before the free */
    if (atomic_fetch_sub_explicit(&p->refs, n, memory_order_acq_rel) != n)
        return;
    csp_chan_close(p->out);
    if (p->kind == K_TRY) {
        /* results sent after the collector ended: their errors are ours. No
         * task is left, so nothing more arrives. */
        csp_chan_close(p->results);
        unsigned char *r = p->ring + p->window * p->res_es; /* the spare entry */
        while (csp_chan_try_recv(p->results, r) == 0)
            if (((hdr_t *)r)->status == CSP_PIPE_EMIT)
                csp_result_clear((csp_result_t *)(r + HDR));
        for (size_t i = 0; i < p->window; i++)
            if (p->full[i])
                csp_result_clear((csp_result_t *)(p->ring + i * p->res_es + HDR));
    }
    if (p->arg_free)
        p->arg_free(p->arg);
    csp_chan_release(p->in);
    csp_chan_release(p->out);
    csp_chan_release(p->jobs);
    csp_chan_release(p->results);
    csp_chan_release(p->credits);
    csp_ctx_release(p->ctx);
    free(p);
}

static void opar_dispatcher(void *a)
{
    targ_t *t = a;
    opar_t *p = t->st;
    hdr_t *h = (hdr_t *)p->jbuf;
    for (uint64_t seq = 0;; seq++) {
        /* relaxed: a hint only; the collector cancels ctx on STOP */
        if (csp_ctx_err(p->ctx) || atomic_load_explicit(&p->stopped, memory_order_relaxed))
            break;
        /* a token first: never take an element that cannot be processed */
        if (csp_chan_recv_ctx(p->ctx, p->credits, NULL) != 0)
            break;
        if (csp_chan_recv_ctx(p->ctx, p->in, p->jbuf + HDR) != 0)
            break;
        h->seq = seq;
        if (csp_chan_send_ctx(p->ctx, p->jobs, p->jbuf) != 0)
            break;
    }
    csp_chan_close(p->jobs); /* the workers drain it, then end */
    csp_wg_t *wg = p->wg;
    opar_put(p, 1);
    task_end(wg);
}

static void opar_worker(void *a)
{
    targ_t *t = a;
    opar_t *p = t->st;
    unsigned char *job = p->wbufs + t->idx * p->wslot;
    unsigned char *res = job + p->job_es, *vbuf = res + p->res_es;
    hdr_t *rh = (hdr_t *)res;
    for (;;) {
        if (csp_ctx_err(p->ctx) || csp_chan_recv_ctx(p->ctx, p->jobs, job) != 0)
            break;
        rh->seq = ((hdr_t *)job)->seq;
        rh->status = apply(p->kind, p->fn, p->arg, job + HDR, res + HDR, p->out_es, vbuf,
                           p->vsize);
        if (rh->status == CSP_PIPE_STOP) /* relaxed: see opar_dispatcher */
            atomic_store_explicit(&p->stopped, 1, memory_order_relaxed);
        /* never blocks: results has room for every item in flight */
        if (csp_chan_send_ctx(p->ctx, p->results, res) != 0) {
            undelivered(p->kind, res + HDR);
            break;
        }
    }
    /* acq_rel: the last worker closes results after every worker's last send */
    if (atomic_fetch_sub_explicit(&p->workers_live, 1, memory_order_acq_rel) == 1)
        csp_chan_close(p->results);
    csp_wg_t *wg = p->wg;
    opar_put(p, 1);
    task_end(wg);
}

static void opar_collector(void *a)
{
    targ_t *t = a;
    opar_t *p = t->st;
    const size_t W = p->window;
    unsigned char *rbuf = p->ring + W * p->res_es; /* one spare entry */
    bool finished = false;                         /* results closed: all emitted */
    uint64_t next = 0;
    for (;;) {
        int rc = csp_chan_recv_ctx(p->ctx, p->results, rbuf);
        if (rc != 0) {
            finished = rc == CSP_ECLOSED;
            break;
        }
        size_t i = (size_t)(((hdr_t *)rbuf)->seq % W);
        memcpy(p->ring + i * p->res_es, rbuf, p->res_es);
        p->full[i] = true;
        for (size_t j; p->full[j = (size_t)(next % W)];) {
            unsigned char *e = p->ring + j * p->res_es;
            int st = ((hdr_t *)e)->status;
            if (st == CSP_PIPE_STOP)
                goto out; /* stays "full": STOP results own nothing */
            p->full[j] = false;
            if (st == CSP_PIPE_EMIT && (csp_ctx_err(p->ctx) ||
                                        csp_chan_send_ctx(p->ctx, p->out, e + HDR) != 0)) {
                undelivered(p->kind, e + HDR);
                goto out;
            }
            next++;
            /* give the token back: never blocks (at most window tokens) */
            if (csp_chan_send_ctx(p->ctx, p->credits, NULL) != 0)
                goto out;
        }
    }
out:
    if (!finished)
        csp_ctx_cancel(p->ctx); /* STOP or done: the dispatcher and workers end */
    csp_chan_close(p->out);
    csp_wg_t *wg = p->wg;
    opar_put(p, 1);
    task_end(wg);
}

/* The fields par_t and opar_t share, set the same way by both constructors
 * (in scope there: sctx, in, out, kind, fn, arg, p, out_es, vsize). */
#define PAR_SHARED_INIT(s)                                                     \
    do {                                                                       \
        (s)->ctx = sctx;                                                       \
        (s)->in = csp_chan_retain(in);                                         \
        (s)->out = csp_chan_retain(out);                                       \
        (s)->kind = kind;                                                      \
        (s)->fn = fn;                                                          \
        (s)->arg = arg;                                                        \
        (s)->arg_free = p.arg_free;                                            \
        (s)->wg = p.wg;                                                        \
        (s)->out_es = out_es;                                                  \
        (s)->vsize = vsize;                                                    \
    } while (0)

static size_t round_al(size_t n)
{
    const size_t al = sizeof(max_align_t);
    return (n + al - 1) / al * al;
}

static csp_chan_t *par_new(csp_ctx_t *ctx, csp_chan_t *in, size_t workers, int kind,
                           size_t out_es, size_t vsize, stage_fn_t fn, void *arg,
                           const csp_pipe_opts_t *opts)
{
    popts_t p;
    if (!ctx || !in || workers == 0 || workers > MAX_WORKERS || !opts_read(opts, &p) ||
        out_es > CSP_CHAN_MAX_ELEM)
        return fail(opts, &in, 1, arg);
    size_t in_es = csp_chan_elem_size(in);
    size_t ib = round_al(in_es), ob = round_al(out_es), vb = round_al(vsize);
    bool ordered = (p.flags & CSP_PIPE_ORDERED) != 0;
    csp_ctx_t *sctx = csp_ctx_with_cancel(ctx);
    csp_chan_t *out = sctx ? csp_chan_make(out_es, p.cap) : NULL;
    if (!out) {
        csp_ctx_release(sctx);
        return fail(opts, &in, 1, arg);
    }
    size_t ntasks;
    void *st;
    if (!ordered) {
        size_t slot = ib + ob + vb, bytes;
        par_t *s = mul_ok(workers, slot, &bytes) ? malloc(sizeof *s + bytes) : NULL;
        if (!s)
            goto nomem;
        atomic_init(&s->refs, workers + 1);
        PAR_SHARED_INIT(s);
        s->slot = slot;
        s->ib = ib;
        s->ob = ib + ob;
        ntasks = workers;
        st = s;
    } else {
        size_t W = p.window ? p.window : 4 * workers;
        if (W < workers)
            W = workers;
        size_t job_es = HDR + ib, res_es = HDR + ob;
        size_t wslot = job_es + res_es + vb, wbytes, rbytes, fbytes;
        if (W > CSP_CHAN_MAX_CAP || job_es > CSP_CHAN_MAX_ELEM || res_es > CSP_CHAN_MAX_ELEM ||
            !mul_ok(workers, wslot, &wbytes) || !mul_ok(W + 1, res_es, &rbytes) ||
            !mul_ok(W, sizeof(bool), &fbytes)) {
            csp_chan_release(out);
            csp_ctx_release(sctx);
            return fail(opts, &in, 1, arg);
        }
        size_t total = job_es + wbytes + rbytes + fbytes;
        opar_t *s = total < SIZE_MAX / 2 ? calloc(1, sizeof *s + total) : NULL;
        if (!s)
            goto nomem;
        s->jobs = csp_chan_make(job_es, workers);
        s->results = csp_chan_make(res_es, W);
        s->credits = csp_chan_make(0, W);
        bool ok = s->jobs && s->results && s->credits;
        for (size_t i = 0; ok && i < W; i++)
            ok = csp_chan_try_send(s->credits, NULL) == 0;
        if (!ok) {
            csp_chan_release(s->jobs);
            csp_chan_release(s->results);
            csp_chan_release(s->credits);
            free(s);
            goto nomem;
        }
        atomic_init(&s->refs, workers + 3);
        atomic_init(&s->workers_live, workers);
        atomic_init(&s->stopped, 0);
        PAR_SHARED_INIT(s);
        s->in_es = in_es;
        s->window = W;
        s->job_es = job_es;
        s->res_es = res_es;
        s->wslot = wslot;
        s->jbuf = (unsigned char *)s->data;
        s->wbufs = s->jbuf + job_es;
        s->ring = s->wbufs + wbytes;
        s->full = (bool *)(s->ring + rbytes);
        ntasks = workers + 2;
        st = s;
    }
    /* from here on the state owns sctx, arg and its references; the caller
     * gets its own reference to out (out's creation reference). The
     * constructor's hold counts in wg too, so that a wait cannot return
     * before a finish that the constructor runs. */
    wg_add(&p);
    size_t spawned = 0;
    int rc = 0;
    for (; spawned < ntasks; spawned++) {
        if (!ordered)
            rc = spawn_idx(par_worker, st, spawned, &p, "pipe_par_map");
        else if (spawned == 0)
            rc = spawn_idx(opar_collector, st, 0, &p, "pipe_par_collect");
        else if (spawned == 1)
            rc = spawn_idx(opar_dispatcher, st, 0, &p, "pipe_par_dispatch");
        else
            rc = spawn_idx(opar_worker, st, spawned - 2, &p, "pipe_par_map");
        if (rc != 0)
            break;
    }
    if (rc != 0) {
        /* the tasks that run end at once; the state goes with the last */
        csp_ctx_cancel(sctx);
        if (ordered) {
            opar_t *s = st;
            /* workers never spawned count as ended; jobs is closed by the
             * dispatcher, or here if it never ran */
            size_t wmissing = spawned >= 2 ? workers - (spawned - 2) : workers;
            if (spawned < 2)
                csp_chan_close(s->jobs);
            if (atomic_fetch_sub_explicit(&s->workers_live, wmissing, memory_order_acq_rel) ==
                wmissing)
                csp_chan_close(s->results);
            opar_put(s, ntasks - spawned + 1);
        } else {
            par_put(st, ntasks - spawned + 1);
        }
        task_end(p.wg);
        csp_chan_release(out);
        /* arg and arg_free belong to the state now: only the inputs */
        if (opts && (opts->flags & CSP_PIPE_CONSUME))
            csp_chan_release(in);
        return NULL;
    }
    if (ordered)
        opar_put(st, 1);
    else
        par_put(st, 1);
    task_end(p.wg);
    consumed(&p, &in, 1);
    return out;

nomem:
    csp_chan_release(out);
    csp_ctx_release(sctx);
    return fail(opts, &in, 1, arg);
}

CSP_EXTERN csp_chan_t *csp_pipe_par_map(csp_ctx_t *ctx, csp_chan_t *in, size_t workers,
                                        size_t out_elem_size, csp_pipe_map_fn fn, void *arg,
                                        const csp_pipe_opts_t *opts)
{
    if (!fn)
        return fail(opts, &in, 1, arg);
    stage_fn_t f = { .map = fn };
    return par_new(ctx, in, workers, K_MAP, out_elem_size, 0, f, arg, opts);
}

CSP_EXTERN csp_chan_t *csp_pipe_par_map_try(csp_ctx_t *ctx, csp_chan_t *in, size_t workers,
                                            size_t value_size, csp_pipe_try_fn fn, void *arg,
                                            const csp_pipe_opts_t *opts)
{
    if (!fn || value_size > CSP_RESULT_VALUE_MAX)
        return fail(opts, &in, 1, arg);
    stage_fn_t f = { .try_ = fn };
    return par_new(ctx, in, workers, K_TRY, sizeof(csp_result_t), value_size, f, arg, opts);
}

/* ------------------------------------------------------------------------ */
/* or                                                                            */

typedef struct {
    csp_ctx_t  *ctx;
    csp_chan_t *out;
    csp_wg_t   *wg;
    size_t      n;
    csp_case_t  cases[];
} or_t;

static void or_task(void *arg)
{
    or_t *s = arg;
    /* any completed receive, a done ctx, or shutdown: all mean "done" */
    (void)csp_select_ctx(s->ctx, s->cases, s->n);
    csp_chan_close(s->out);
    for (size_t i = 0; i < s->n; i++)
        csp_chan_release(s->cases[i].chan);
    csp_chan_release(s->out);
    csp_ctx_release(s->ctx);
    csp_wg_t *wg = s->wg;
    free(s);
    task_end(wg);
}

CSP_EXTERN csp_chan_t *csp_pipe_or(csp_ctx_t *ctx, csp_chan_t *const *chans, size_t n,
                                   const csp_pipe_opts_t *opts)
{
    popts_t p;
    if (!ctx || (n && !chans) || n > MAX_OR || !opts_read(opts, &p))
        return fail(opts, chans, chans ? n : 0, NULL);
    csp_chan_t *out = csp_chan_make(0, 0);
    or_t *s = out ? malloc(sizeof *s + n * sizeof(csp_case_t)) : NULL;
    if (!s) {
        csp_chan_release(out);
        return fail(opts, chans, n, NULL);
    }
    s->ctx = csp_ctx_retain(ctx);
    s->out = csp_chan_retain(out);
    s->n = n;
    s->wg = p.wg;
    for (size_t i = 0; i < n; i++)
        s->cases[i] = (csp_case_t)CSP_RECV_CASE(csp_chan_retain(chans[i]), NULL);
    if (spawn(or_task, s, &p, "pipe_or") != 0) {
        for (size_t i = 0; i < n; i++)
            csp_chan_release(s->cases[i].chan);
        csp_chan_release(s->out);
        csp_ctx_release(s->ctx);
        free(s);
        csp_chan_release(out);
        return fail(opts, chans, n, NULL);
    }
    consumed(&p, chans, n);
    return out;
}

/* ------------------------------------------------------------------------ */
/* tee                                                                           */

typedef struct {
    csp_ctx_t    *ctx;
    csp_chan_t   *in, *o1, *o2;
    csp_wg_t     *wg;
    max_align_t   buf[];
} tee_t;

static void tee_task(void *arg)
{
    tee_t *s = arg;
    for (;;) {
        if (csp_ctx_err(s->ctx) || csp_chan_recv_ctx(s->ctx, s->in, s->buf) != 0)
            break;
        /* to both before the next read, whichever consumer is ready first */
        csp_case_t cs[2] = { CSP_SEND_CASE(s->o1, s->buf), CSP_SEND_CASE(s->o2, s->buf) };
        for (int k = 0; k < 2; k++) {
            int r = csp_select_ctx(s->ctx, cs, 2);
            if (r < 0 || cs[r].status != 0) /* done, or an output closed by someone */
                goto out;
            cs[r].chan = NULL; /* sent there: a nil channel now (the book's out1 = nil) */
        }
    }
out:
    csp_chan_close(s->o1);
    csp_chan_close(s->o2);
    csp_chan_release(s->in);
    csp_chan_release(s->o1);
    csp_chan_release(s->o2);
    csp_ctx_release(s->ctx);
    csp_wg_t *wg = s->wg;
    free(s);
    task_end(wg);
}

CSP_EXTERN int csp_pipe_tee(csp_ctx_t *ctx, csp_chan_t *in, csp_chan_t **out1,
                            csp_chan_t **out2, const csp_pipe_opts_t *opts)
{
    popts_t p;
    if (out1)
        *out1 = NULL;
    if (out2)
        *out2 = NULL;
    if (!ctx || !in || !out1 || !out2 || out1 == out2 || !opts_read(opts, &p)) {
        fail(opts, &in, 1, NULL);
        return CSP_EINVAL;
    }
    size_t es = csp_chan_elem_size(in);
    csp_chan_t *o1 = csp_chan_make(es, p.cap), *o2 = csp_chan_make(es, p.cap);
    tee_t *s = o1 && o2 ? malloc(sizeof *s + round_al(es)) : NULL;
    if (!s) {
        csp_chan_release(o1);
        csp_chan_release(o2);
        fail(opts, &in, 1, NULL);
        return CSP_ENOMEM;
    }
    s->ctx = csp_ctx_retain(ctx);
    s->in = csp_chan_retain(in);
    s->o1 = csp_chan_retain(o1);
    s->o2 = csp_chan_retain(o2);
    s->wg = p.wg;
    int rc = spawn(tee_task, s, &p, "pipe_tee");
    if (rc != 0) {
        csp_ctx_release(s->ctx);
        csp_chan_release(s->in);
        csp_chan_release(s->o1);
        csp_chan_release(s->o2);
        free(s);
        csp_chan_release(o1);
        csp_chan_release(o2);
        fail(opts, &in, 1, NULL);
        return rc;
    }
    consumed(&p, &in, 1);
    *out1 = o1;
    *out2 = o2;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* bridge                                                                         */

typedef struct {
    csp_ctx_t  *ctx;
    csp_chan_t *cs, *out;
    csp_wg_t   *wg;
    size_t      es;
    max_align_t buf[];
} bridge_t;

static void bridge_task(void *arg)
{
    bridge_t *s = arg;
    csp_chan_t *inner = NULL;
    for (;;) {
        if (csp_ctx_err(s->ctx) || csp_chan_recv_ctx(s->ctx, s->cs, &inner) != 0)
            break;
        if (!inner)
            continue; /* a nil channel in the stream: nothing to read */
        if (csp_chan_elem_size(inner) != s->es) {
            csp_chan_release(inner); /* not ours to read: dropped, reference released */
            inner = NULL;
            continue;
        }
        for (;;) {
            if (csp_ctx_err(s->ctx))
                goto out;
            int rc = csp_chan_recv_ctx(s->ctx, inner, s->buf);
            if (rc == CSP_ECLOSED)
                break;
            if (rc != 0 || csp_chan_send_ctx(s->ctx, s->out, s->buf) != 0)
                goto out;
        }
        csp_chan_release(inner);
        inner = NULL;
    }
out:
    csp_chan_close(s->out);
    csp_chan_release(inner);
    /* inner channels still buffered in the stream were handed to us */
    csp_chan_t *left;
    while (csp_chan_try_recv(s->cs, &left) == 0)
        csp_chan_release(left);
    csp_chan_release(s->cs);
    csp_chan_release(s->out);
    csp_ctx_release(s->ctx);
    csp_wg_t *wg = s->wg;
    free(s);
    task_end(wg);
}

CSP_EXTERN csp_chan_t *csp_pipe_bridge(csp_ctx_t *ctx, csp_chan_t *chan_stream, size_t elem_size,
                                       const csp_pipe_opts_t *opts)
{
    popts_t p;
    if (!ctx || !chan_stream || csp_chan_elem_size(chan_stream) != sizeof(csp_chan_t *) ||
        elem_size > CSP_CHAN_MAX_ELEM || !opts_read(opts, &p))
        return fail(opts, &chan_stream, 1, NULL);
    csp_chan_t *out = csp_chan_make(elem_size, p.cap);
    bridge_t *s = out ? malloc(sizeof *s + round_al(elem_size)) : NULL;
    if (!s) {
        csp_chan_release(out);
        return fail(opts, &chan_stream, 1, NULL);
    }
    s->ctx = csp_ctx_retain(ctx);
    s->cs = csp_chan_retain(chan_stream);
    s->out = csp_chan_retain(out);
    s->es = elem_size;
    s->wg = p.wg;
    if (spawn(bridge_task, s, &p, "pipe_bridge") != 0) {
        csp_ctx_release(s->ctx);
        csp_chan_release(s->cs);
        csp_chan_release(s->out);
        free(s);
        csp_chan_release(out);
        return fail(opts, &chan_stream, 1, NULL);
    }
    consumed(&p, &chan_stream, 1);
    return out;
}

/* ------------------------------------------------------------------------ */
/* fan_in: one forwarding task per input                                          */

typedef struct {
    _Atomic size_t refs; /* running tasks + the constructor's hold */
    csp_ctx_t     *ctx;  /* the stage's own: a child of the caller's */
    csp_chan_t    *out;
    csp_wg_t      *wg;
    size_t         n, slot;
    csp_chan_t   **ins;
    max_align_t    data[]; /* ins[n], then n buffers of slot bytes */
} fan_t;

static void fan_put(fan_t *f, size_t n)
{
    /* acq_rel: every task's last use of the state happens before the free */
    if (atomic_fetch_sub_explicit(&f->refs, n, memory_order_acq_rel) != n)
        return;
    csp_chan_close(f->out); /* the last input ended: the merged stream ends */
    for (size_t i = 0; i < f->n; i++)
        csp_chan_release(f->ins[i]);
    csp_chan_release(f->out);
    csp_ctx_release(f->ctx);
    free(f);
}

static void fan_task(void *a)
{
    targ_t *t = a;
    fan_t *f = t->st;
    csp_chan_t *in = f->ins[t->idx];
    unsigned char *buf = (unsigned char *)(f->ins + f->n);
    buf = (unsigned char *)round_al((uintptr_t)buf) + t->idx * f->slot;
    while (!csp_ctx_err(f->ctx) && csp_chan_recv_ctx(f->ctx, in, buf) == 0 &&
           csp_chan_send_ctx(f->ctx, f->out, buf) == 0)
        ;
    csp_wg_t *wg = f->wg;
    fan_put(f, 1);
    task_end(wg);
}

CSP_EXTERN csp_chan_t *csp_pipe_fan_in(csp_ctx_t *ctx, csp_chan_t *const *ins, size_t n,
                                       const csp_pipe_opts_t *opts)
{
    popts_t p;
    bool ok = ctx && ins && n > 0 && n <= MAX_WORKERS && opts_read(opts, &p);
    size_t es = ok ? csp_chan_elem_size(ins[0]) : 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = ins[i] && csp_chan_elem_size(ins[i]) == es;
    if (!ok)
        return fail(opts, ins, ins ? n : 0, NULL);
    size_t slot = round_al(es), bytes;
    csp_ctx_t *fctx = csp_ctx_with_cancel(ctx);
    csp_chan_t *out = fctx ? csp_chan_make(es, p.cap) : NULL;
    fan_t *f = out && mul_ok(n, slot + sizeof(csp_chan_t *), &bytes)
                   ? malloc(sizeof *f + bytes + sizeof(max_align_t))
                   : NULL;
    if (!f) {
        csp_chan_release(out);
        csp_ctx_release(fctx);
        return fail(opts, ins, n, NULL);
    }
    atomic_init(&f->refs, n + 1);
    f->ctx = fctx;
    f->out = csp_chan_retain(out);
    f->n = n;
    f->wg = p.wg;
    f->slot = slot;
    f->ins = (csp_chan_t **)f->data;
    for (size_t i = 0; i < n; i++)
        f->ins[i] = csp_chan_retain(ins[i]);
    wg_add(&p); /* the constructor's hold (see par_new) */
    size_t spawned = 0;
    for (; spawned < n; spawned++)
        if (spawn_idx(fan_task, f, spawned, &p, "pipe_fan_in") != 0)
            break;
    if (spawned < n) {
        csp_ctx_cancel(fctx); /* the spawned ones end at once */
        fan_put(f, n - spawned + 1);
        task_end(p.wg);
        csp_chan_release(out);
        return fail(opts, ins, n, NULL);
    }
    fan_put(f, 1);
    task_end(p.wg);
    consumed(&p, ins, n);
    return out;
}

/* ------------------------------------------------------------------------ */
/* consumers' helpers                                                              */

CSP_EXTERN int64_t csp_pipe_drain(csp_chan_t *c, void (*elem_free)(void *elem))
{
    if (!c)
        return CSP_EINVAL;
    size_t es = csp_chan_elem_size(c);
    max_align_t small[256 / sizeof(max_align_t)];
    void *buf = es <= sizeof small ? (void *)small : malloc(es);
    if (!buf)
        return CSP_ENOMEM;
    int64_t n = 0;
    int rc;
    while ((rc = csp_chan_recv(c, buf)) == 0) {
        n++;
        if (elem_free)
            elem_free(buf);
    }
    if (buf != (void *)small)
        free(buf);
    return rc == CSP_ECLOSED ? n : rc;
}

CSP_EXTERN void csp_pipe_free_result(void *elem)
{
    csp_result_clear((csp_result_t *)elem);
}

CSP_EXTERN void csp_pipe_free_chan(void *elem)
{
    if (elem)
        csp_chan_release(*(csp_chan_t **)elem);
}
