/* libcsp — pipelines: the patterns of "Concurrency in Go", chapter 4, as
 * library calls (generator, repeat, repeat_fn, take, or, or_done, tee,
 * bridge, fan-in, map / filter stages, parallel map with N workers, ordered
 * or not).
 *
 * Every stage is a function that takes the context that cancels it (the
 * book's `done`), spawns the task(s) it needs, and returns its output
 * channel(s). The shape is always the book's:
 *
 *   csp_ctx_t  *ctx = csp_ctx_with_cancel(csp_ctx_background());
 *   csp_chan_t *g   = csp_pipe_generator(ctx, ints, 4, sizeof(int), NULL);
 *   csp_chan_t *m   = csp_pipe_map(ctx, g, sizeof(int), times2, NULL, NULL);
 *   csp_chan_release(g);                         // m's task keeps its own
 *   int v;
 *   while (csp_chan_recv(m, &v) == 0)            // for v := range m
 *       printf("%d\n", v);
 *   csp_chan_release(m);
 *   csp_ctx_cancel(ctx);                         // defer close(done)
 *   csp_ctx_release(ctx);
 *
 * or nested, as the book writes it, with CSP_PIPE_CONSUME (each stage takes
 * over the reference to its input, also when it fails):
 *
 *   const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
 *   csp_chan_t *p = csp_pipe_map(ctx, csp_pipe_map(ctx,
 *                       csp_pipe_generator(ctx, ints, 4, sizeof(int), NULL),
 *                       sizeof(int), add1, NULL, &own), sizeof(int), times2, NULL, &own);
 *
 * Rules common to every function here:
 *
 *   Ownership. A returned channel is one reference owned by the caller
 *     (release it with csp_chan_release). Input channels and the context are
 *     borrowed: a stage retains what it keeps and releases it when its last
 *     task ends - unless opts->flags has CSP_PIPE_CONSUME, which hands the
 *     caller's reference of every input channel (one per array entry) to the
 *     stage, on success and on failure alike. The context is never consumed.
 *
 *   Termination. A stage's tasks end, close their outputs and drop every
 *     reference when (a) their input is closed and drained and everything
 *     was sent on, (b) ctx is done (csp_ctx_cancel, a deadline), or (c) a
 *     callback asks to stop. No task is left behind after any of these. A
 *     stage blocked on a send to a consumer that stopped reading stays
 *     blocked until ctx is done, exactly as in Go: cancel the context when
 *     you stop consuming. After cancellation a stage does not start another
 *     item, but a value that can be handed over at once may still arrive
 *     (Go's select chooses at random between a ready send and done).
 *     Tasks end shortly after their outputs close, not at the same instant:
 *     give the stages an opts->wg and csp_wg_wait on it to join them (before
 *     csp_run returns, or before freeing what a callback's arg points to).
 *
 *   Elements. Stages copy elements as plain bytes of the channel's
 *     elem_size (any size a channel accepts, 0 included). An element that a
 *     stage drops (cancellation, a filter, a SKIP) is not
 *     "released": for elements that own something (csp_result_t, channel
 *     pointers) see csp_pipe_drain. Output element sizes: the input's, or
 *     the size the function is given; mismatches are bad input.
 *
 *   Bad input (NULL ctx, NULL channel, NULL callback, zero workers, element
 *     sizes that do not fit, unknown flags or non-zero reserved fields):
 *     channel-returning functions return NULL (like csp_chan_make), int-
 *     returning ones CSP_EINVAL. NULL is also returned when memory runs out
 *     or no task can be spawned (no runtime, or it is stopping). Nothing is
 *     leaked on these paths; with CSP_PIPE_CONSUME the inputs are released
 *     and an opts->arg_free is called.
 *
 *   Callbacks run in the stage's tasks (so they may block, sleep, use
 *     channels), one call at a time per task; a parallel map calls fn from
 *     several tasks at once. opts->arg_free, if set, is called once with the
 *     callback's arg after the last call (when the stage's last task ends),
 *     or at once when the stage cannot be created.
 *
 *   Blocking. Creating a stage never blocks (it allocates and spawns).
 *     Every function may be called from a task or from a plain thread while
 *     the runtime runs.
 */
#ifndef CSP_PIPELINE_H
#define CSP_PIPELINE_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"
#include "chan.h"
#include "ctx.h"
#include "error.h"
#include "sync.h"

#ifdef __cplusplus
extern "C" {
#endif

/* opts->flags */
enum {
    /* The stage takes over the caller's reference to each input channel
     * (released by the stage when done, or at once if it fails). */
    CSP_PIPE_CONSUME = 1u << 0,
    /* csp_pipe_par_map / csp_pipe_par_map_try: results leave in input order. */
    CSP_PIPE_ORDERED = 1u << 1
};

/* Options of a stage; NULL means all defaults (zero-initialise and set what
 * you need). */
typedef struct csp_pipe_opts {
    size_t      cap;        /* capacity of each output channel the stage makes;
                               0: unbuffered (Go's make(chan T)) */
    unsigned    flags;      /* CSP_PIPE_CONSUME, CSP_PIPE_ORDERED */
    size_t      window;     /* ordered parallel map: the most items between the
                               input and the output (the reorder buffer);
                               0: 4 x workers. Values below workers are raised
                               to workers. */
    void      (*arg_free)(void *arg); /* stages with a callback: see above */
    const char *name;       /* name of the stage's tasks (dumps); NULL: "pipe_<stage>" */
    size_t      stack_size; /* stack of the stage's tasks (callbacks run there);
                               0: the runtime's default */
    csp_wg_t   *wg;         /* if set: csp_wg_add(wg, 1) for every task of the
                               stage before it starts, csp_wg_done(wg) as the
                               last thing it does (after closing its outputs,
                               dropping its references and arg_free), so that
                               csp_wg_wait(wg) joins the stage (e.g. after
                               cancelling it; the tasks return right after
                               their done). The wg must outlive the wait. */
    int         reserved[4]; /* must be zero */
} csp_pipe_opts_t;

/* What a map callback returns. Anything else (e.g. a negative code) is
 * taken as CSP_PIPE_STOP. */
enum {
    CSP_PIPE_EMIT = 0, /* send *out downstream */
    CSP_PIPE_SKIP = 1, /* drop this item (a filter) and go on */
    CSP_PIPE_STOP = 2  /* drop this item and end the stage: the output is
                          closed after the items before it */
};

/* A value source (repeat_fn): writes the next value to out (elem_size bytes,
 * zeroed before the call) and returns 0, or returns anything else to end the
 * stream (the output is closed). */
typedef int (*csp_pipe_gen_fn)(void *arg, void *out);
/* A map step: reads the input element at in, writes the output element to
 * out (out_elem_size bytes, zeroed before the call), returns CSP_PIPE_EMIT,
 * CSP_PIPE_SKIP or CSP_PIPE_STOP. */
typedef int (*csp_pipe_map_fn)(void *arg, const void *in, void *out);
/* A filter predicate: true keeps the element. */
typedef bool (*csp_pipe_pred_fn)(void *arg, const void *elem);
/* A map step that can fail: returns NULL and writes its value (value_size
 * bytes, zeroed before the call) to out, or returns an error (one reference,
 * handed over to the stage; out is then ignored). */
typedef csp_error_t *(*csp_pipe_try_fn)(void *arg, const void *in, void *out);

/* ---- sources ---- */

/* The book's generator: sends the n elements of elem_size bytes at vals, in
 * order, then closes the channel. The values are copied now (vals may be
 * freed when this returns; it may be NULL if n or elem_size is 0). n == 0
 * gives a channel that is already closed (no task). Returns the channel
 * (elem_size, capacity opts->cap), or NULL (bad input, no memory, no
 * runtime). */
CSP_EXTERN csp_chan_t *csp_pipe_generator(csp_ctx_t *ctx, const void *vals, size_t n,
                                          size_t elem_size, const csp_pipe_opts_t *opts);

/* The book's repeat: sends the n elements at vals over and over, in order,
 * until ctx is done (then closes the channel). The values are copied now.
 * n == 0 is bad input (Go's version would spin). Returns the channel or
 * NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_repeat(csp_ctx_t *ctx, const void *vals, size_t n,
                                       size_t elem_size, const csp_pipe_opts_t *opts);

/* The book's repeatFn: sends fn(arg)'s values (elem_size bytes each) until fn
 * returns non-zero or ctx is done, then closes the channel. fn is not called
 * again once ctx is done. Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_repeat_fn(csp_ctx_t *ctx, size_t elem_size, csp_pipe_gen_fn fn,
                                          void *arg, const csp_pipe_opts_t *opts);

/* ---- stages ---- */

/* The book's take: forwards the first n elements of in, then closes its
 * output and stops reading in (reads exactly as many as it forwards). Closes
 * early if in is closed or ctx is done. n == 0 gives a closed channel (no
 * task, in is not read). Returns the channel (in's elem_size) or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_take(csp_ctx_t *ctx, csp_chan_t *in, size_t n,
                                     const csp_pipe_opts_t *opts);

/* The book's orDone: forwards in until in is closed or ctx is done, then
 * closes its output. Lets a consumer `range` over a channel it does not
 * control and still stop on ctx. Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_or_done(csp_ctx_t *ctx, csp_chan_t *in,
                                        const csp_pipe_opts_t *opts);

/* The book's buffer stage (Queuing): or_done with an output of capacity n
 * (opts->cap is ignored). Lets the stage before it run up to n elements
 * ahead of the stage after it. Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_buffer(csp_ctx_t *ctx, csp_chan_t *in, size_t n,
                                       const csp_pipe_opts_t *opts);

/* A map stage: for each element of in, out = fn(arg, in); sends out
 * (out_elem_size bytes) unless fn says CSP_PIPE_SKIP; CSP_PIPE_STOP ends the
 * stage. Closes its output when in is closed and drained, on STOP, or when
 * ctx is done. One task: fn is called in input order, one call at a time.
 * Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_map(csp_ctx_t *ctx, csp_chan_t *in, size_t out_elem_size,
                                    csp_pipe_map_fn fn, void *arg, const csp_pipe_opts_t *opts);

/* A filter stage: forwards the elements of in for which pred(arg, elem) is
 * true, in order. Returns the channel (in's elem_size) or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_filter(csp_ctx_t *ctx, csp_chan_t *in, csp_pipe_pred_fn pred,
                                       void *arg, const csp_pipe_opts_t *opts);

/* A map stage whose steps can fail (the book's Result): its output carries
 * csp_result_t (make no assumption beyond sizeof(csp_result_t) elements).
 * For each element of in it sends csp_result_ok(value, value_size) when fn
 * returns NULL, or csp_result_err(err) with the error fn returned, and goes
 * on with the next element either way (the consumer decides; cancel ctx to
 * stop). value_size: 0 .. CSP_RESULT_VALUE_MAX.
 * Ownership of errors: fn hands its error to the stage; a delivered result
 * hands it to the receiver, who must csp_result_clear() it (or take it); an
 * error the stage cannot deliver (ctx done) is released by the stage. Results
 * left in the channel when the consumer stops: see csp_pipe_drain. Returns
 * the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_map_try(csp_ctx_t *ctx, csp_chan_t *in, size_t value_size,
                                        csp_pipe_try_fn fn, void *arg,
                                        const csp_pipe_opts_t *opts);

/* Fan-out + fan-in in one call: `workers` tasks each take elements from in
 * and send fn's outputs to one shared output channel, as csp_pipe_map does
 * (SKIP drops an element; STOP ends the whole stage: the workers stop as
 * soon as they see it - unordered, the others may have taken, and may still
 * send or drop, elements after the stopping one; ordered, see below).
 * Unordered (default): outputs leave in completion order; the output closes
 * when the last worker ends.
 * opts->flags & CSP_PIPE_ORDERED: outputs leave in input order; a dispatcher
 * numbers the inputs, at most opts->window of them are between the input
 * and the output at any time (a slow element holds back at most window - 1
 * finished ones), and a collector sends them on in order; STOP then ends
 * the output right after the elements before the stopping one.
 * The output closes once in is closed and every element is out, on STOP, or
 * when ctx is done. workers: 1 .. 65535. Tasks: workers (unordered) or
 * workers + 2 (ordered). Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_par_map(csp_ctx_t *ctx, csp_chan_t *in, size_t workers,
                                        size_t out_elem_size, csp_pipe_map_fn fn, void *arg,
                                        const csp_pipe_opts_t *opts);

/* csp_pipe_par_map with csp_pipe_map_try's steps and csp_result_t outputs
 * (same ownership of errors; CSP_PIPE_ORDERED works the same). Results of a
 * cancelled ordered stage that were not delivered are released by it. */
CSP_EXTERN csp_chan_t *csp_pipe_par_map_try(csp_ctx_t *ctx, csp_chan_t *in, size_t workers,
                                            size_t value_size, csp_pipe_try_fn fn, void *arg,
                                            const csp_pipe_opts_t *opts);

/* ---- combining and splitting ---- */

/* The book's or-channel: returns a signal channel (elem_size 0) that is
 * closed as soon as a receive on any of the n channels completes - a close
 * (done channels: csp_ctx_done, the book's sig) or a value (csp_after's timer
 * channels; the value is consumed) - or when ctx is done. One task and one
 * select over all n (no recursion). NULL entries are never ready (Go's nil
 * channel); n == 0 gives a channel closed only when ctx is done. n at most
 * 65535. opts->cap is ignored. Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_or(csp_ctx_t *ctx, csp_chan_t *const *chans, size_t n,
                                   const csp_pipe_opts_t *opts);

/* The book's tee: reads in and sends every element to both *out1 and *out2
 * (made here, in's elem_size, capacity opts->cap) before it reads the next,
 * so both outputs see every element, in order. A consumer that stops reading
 * one output stalls the other (cancel ctx). Both close when in is closed and
 * drained or ctx is done. Elements are copied bitwise to both (elements that
 * own something then have two holders). 0 with *out1 and *out2 set (the
 * caller owns one reference to each); CSP_EINVAL (a NULL argument, bad
 * opts), CSP_ENOMEM, CSP_ESHUTDOWN (no runtime), with *out1 and *out2 set to
 * NULL (when those pointers are not NULL). */
CSP_EXTERN int csp_pipe_tee(csp_ctx_t *ctx, csp_chan_t *in, csp_chan_t **out1,
                            csp_chan_t **out2, const csp_pipe_opts_t *opts);

/* The book's bridge: chan_stream carries channels (elements of
 * sizeof(csp_chan_t *)); bridge reads them one after another and forwards
 * each one's elements (elem_size bytes) until it is closed, then takes the
 * next. The output closes when chan_stream is closed and the last inner
 * channel drained, or when ctx is done.
 * Ownership: each channel pointer sent on chan_stream carries one reference
 * that passes to bridge, which releases it once that channel is drained (or
 * when bridge ends). When bridge ends early it also releases the channels it
 * finds still buffered in chan_stream; a producer should send them with
 * csp_chan_send_ctx on the same ctx, so that a send that fails leaves the
 * reference with the producer. A NULL inner channel is skipped; an inner
 * channel whose elem_size differs from elem_size is released unread.
 * Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_bridge(csp_ctx_t *ctx, csp_chan_t *chan_stream, size_t elem_size,
                                       const csp_pipe_opts_t *opts);

/* The book's fanIn: merges the n channels into one (unordered; each input's
 * own order is kept), which closes when all n are closed and drained, or
 * when ctx is done. One task per input. n >= 1, no NULL entries, all of one
 * elem_size. Returns the channel or NULL. */
CSP_EXTERN csp_chan_t *csp_pipe_fan_in(csp_ctx_t *ctx, csp_chan_t *const *ins, size_t n,
                                       const csp_pipe_opts_t *opts);

/* ---- consumers' helpers ---- */

/* Receives every element of c until it is closed and drained, calling
 * elem_free(elem) (if not NULL) on each: for a consumer that stops early
 * and must release what the elements own (csp_pipe_free_result,
 * csp_pipe_free_chan). Cancel the producing stages' ctx first: they close
 * their outputs when they end. Blocks until c is closed. Returns the number
 * of elements drained (>= 0), or a negative CSP_E* code (CSP_EINVAL for NULL
 * c, CSP_ESHUTDOWN). */
CSP_EXTERN int64_t csp_pipe_drain(csp_chan_t *c, void (*elem_free)(void *elem));
/* elem_free for channels of csp_result_t: csp_result_clear(elem). */
CSP_EXTERN void csp_pipe_free_result(void *elem);
/* elem_free for channels of csp_chan_t *: csp_chan_release(*elem). */
CSP_EXTERN void csp_pipe_free_chan(void *elem);

/* ---- typed stages ----
 *
 *   CSP_CHAN_DECLARE(int_chan, int);          // the typed channel, then
 *   CSP_PIPE_DECLARE(int_chan, int);          // its stages
 *
 *   static int add1(void *arg, const int *in, int *out) { *out = *in + 1; return CSP_PIPE_EMIT; }
 *   static bool odd(void *arg, const int *v) { return *v & 1; }
 *
 *   int_chan_t g = int_chan_generator(ctx, (int[]){ 1, 2, 3 }, 3, NULL);
 *   int_chan_t m = int_chan_map(ctx, g, add1, NULL, NULL);
 *   int_chan_t f = int_chan_filter(ctx, m, odd, NULL, NULL);
 *   int_chan_t t = int_chan_take(ctx, f, 1, NULL);
 *
 * declares, for name_t (a CSP_CHAN_DECLARE'd channel of T), with the
 * semantics and ownership of the untyped calls (an invalid channel has
 * .c == NULL):
 *   name_generator(ctx, const T *vals, size_t n, opts)
 *   name_repeat(ctx, const T *vals, size_t n, opts)
 *   name_repeat_fn(ctx, int (*fn)(void *arg, T *out), void *arg, opts)
 *   name_take(ctx, name_t in, size_t n, opts)
 *   name_or_done(ctx, name_t in, opts)
 *   name_buffer(ctx, name_t in, size_t n, opts)
 *   name_map(ctx, name_t in, int (*fn)(void *arg, const T *in, T *out), void *arg, opts)
 *   name_filter(ctx, name_t in, bool (*pred)(void *arg, const T *v), void *arg, opts)
 *   name_par_map(ctx, name_t in, size_t workers,
 *                int (*fn)(void *arg, const T *in, T *out), void *arg, opts)
 *   name_fan_in(ctx, const name_t *ins, size_t n, opts)
 *   name_tee(ctx, name_t in, name_t *out1, name_t *out2, opts)
 * and CSP_PIPE_MAP_DECLARE(fname, in_name, Tin, out_name, Tout) declares a
 * map between two typed channels:
 *   out_name_t fname(ctx, in_name_t in,
 *                    int (*fn)(void *arg, const Tin *in, Tout *out), void *arg, opts)
 * The typed callbacks are called through a small heap-allocated adapter that
 * the stage frees when it ends (then opts->arg_free, if any, runs as usual).
 * Everything is static inline.
 */

/* Adapter between a typed callback and the untyped one (internal). */
typedef struct csp__pipe_closure {
    void (*fn)(void);             /* the typed callback */
    void  *arg;                   /* the user's arg */
    void (*arg_free)(void *arg);  /* the user's arg_free */
} csp__pipe_closure_t;

static inline __attribute__((unused)) void csp__pipe_closure_free(void *p)
{
    csp__pipe_closure_t *c = (csp__pipe_closure_t *)p;
    if (c->arg_free)
        c->arg_free(c->arg);
    free(c);
}

/* Builds the adapter and the options that hand it to the stage. NULL when
 * out of memory or for bad opts (the user's arg_free has then been called,
 * as the untyped calls do). */
static inline __attribute__((unused)) csp__pipe_closure_t *
csp__pipe_closure_new(void (*fn)(void), void *arg, const csp_pipe_opts_t *opts,
                      csp_pipe_opts_t *o)
{
    if (opts)
        *o = *opts;
    else
        memset(o, 0, sizeof *o);
    csp__pipe_closure_t *c = (csp__pipe_closure_t *)malloc(sizeof *c);
    if (!c) {
        if (o->arg_free)
            o->arg_free(arg);
        return NULL;
    }
    c->fn = fn;
    c->arg = arg;
    c->arg_free = o->arg_free;
    o->arg_free = csp__pipe_closure_free;
    return c;
}

/* Releases the caller's input (CSP_PIPE_CONSUME) when a typed call fails
 * before reaching the untyped one. */
static inline __attribute__((unused)) void csp__pipe_consume_fail(csp_chan_t *in,
                                                                  const csp_pipe_opts_t *opts)
{
    if (opts && (opts->flags & CSP_PIPE_CONSUME))
        csp_chan_release(in);
}

/* A typed stage with a callback fails early (NULL callback, or an input
 * channel whose elem_size is not the callback's type): release what the
 * untyped call would have released. Returns NULL. */
static inline __attribute__((unused)) csp_chan_t *
csp__pipe_typed_fail(csp_chan_t *in, void *arg, const csp_pipe_opts_t *opts)
{
    csp__pipe_consume_fail(in, opts);
    if (opts && opts->arg_free)
        opts->arg_free(arg);
    return NULL;
}

/* The typed call of an untyped stage with a callback: checks the callback
 * and the input's element size, wraps the callback. */
#define CSP__PIPE_TYPED_CALL(r, in_c, in_size, fn, arg, opts, call)                         \
    do {                                                                                     \
        csp_pipe_opts_t o_;                                                                  \
        csp__pipe_closure_t *c_;                                                             \
        if (!(fn) || ((in_c) != NULL && csp_chan_elem_size(in_c) != (in_size))) {            \
            (r) = csp__pipe_typed_fail((in_c), (arg), (opts));                               \
            break;                                                                           \
        }                                                                                    \
        c_ = csp__pipe_closure_new((void (*)(void))(fn), (arg), (opts), &o_);                \
        if (!c_) {                                                                           \
            csp__pipe_consume_fail((in_c), (opts));                                          \
            (r) = NULL;                                                                      \
            break;                                                                           \
        }                                                                                    \
        (r) = call;                                                                          \
    } while (0)

#define CSP_PIPE_DECLARE(name, T)                                                           \
    static inline __attribute__((unused)) name##_t name##_generator(                        \
        csp_ctx_t *ctx, const T *vals, size_t n, const csp_pipe_opts_t *opts)               \
    { name##_t r = { csp_pipe_generator(ctx, vals, n, sizeof(T), opts) }; return r; }        \
    static inline __attribute__((unused)) name##_t name##_repeat(                           \
        csp_ctx_t *ctx, const T *vals, size_t n, const csp_pipe_opts_t *opts)               \
    { name##_t r = { csp_pipe_repeat(ctx, vals, n, sizeof(T), opts) }; return r; }           \
    static inline __attribute__((unused)) name##_t name##_take(                             \
        csp_ctx_t *ctx, name##_t in, size_t n, const csp_pipe_opts_t *opts)                 \
    { name##_t r = { csp_pipe_take(ctx, in.c, n, opts) }; return r; }                        \
    static inline __attribute__((unused)) name##_t name##_or_done(                          \
        csp_ctx_t *ctx, name##_t in, const csp_pipe_opts_t *opts)                           \
    { name##_t r = { csp_pipe_or_done(ctx, in.c, opts) }; return r; }                        \
    static inline __attribute__((unused)) name##_t name##_buffer(                           \
        csp_ctx_t *ctx, name##_t in, size_t n, const csp_pipe_opts_t *opts)                 \
    { name##_t r = { csp_pipe_buffer(ctx, in.c, n, opts) }; return r; }                      \
    static inline __attribute__((unused)) name##_t name##_fan_in(                           \
        csp_ctx_t *ctx, const name##_t *ins, size_t n, const csp_pipe_opts_t *opts)         \
    {                                                                                        \
        /* name_t is a struct holding only the channel pointer: same layout */              \
        _Static_assert(sizeof(name##_t) == sizeof(csp_chan_t *), "typed channel layout");    \
        name##_t r = { csp_pipe_fan_in(ctx, (csp_chan_t *const *)(const void *)ins, n,       \
                                       opts) };                                              \
        return r;                                                                            \
    }                                                                                        \
    static inline __attribute__((unused)) int name##_tee(                                   \
        csp_ctx_t *ctx, name##_t in, name##_t *out1, name##_t *out2,                        \
        const csp_pipe_opts_t *opts)                                                        \
    {                                                                                        \
        return csp_pipe_tee(ctx, in.c, out1 ? &out1->c : NULL, out2 ? &out2->c : NULL,       \
                            opts);                                                           \
    }                                                                                        \
    static inline __attribute__((unused)) int name##__gen_tramp(void *a, void *out)          \
    {                                                                                        \
        csp__pipe_closure_t *c = (csp__pipe_closure_t *)a;                                   \
        return ((int (*)(void *, T *))c->fn)(c->arg, (T *)out);                              \
    }                                                                                        \
    static inline __attribute__((unused)) name##_t name##_repeat_fn(                        \
        csp_ctx_t *ctx, int (*fn)(void *arg, T *out), void *arg,                            \
        const csp_pipe_opts_t *opts)                                                        \
    {                                                                                        \
        name##_t r;                                                                          \
        CSP__PIPE_TYPED_CALL(r.c, (csp_chan_t *)NULL, sizeof(T), fn, arg, opts,              \
                             csp_pipe_repeat_fn(ctx, sizeof(T), name##__gen_tramp, c_, &o_)); \
        return r;                                                                            \
    }                                                                                        \
    static inline __attribute__((unused)) int name##__map_tramp(void *a, const void *in,    \
                                                                 void *out)                  \
    {                                                                                        \
        csp__pipe_closure_t *c = (csp__pipe_closure_t *)a;                                   \
        return ((int (*)(void *, const T *, T *))c->fn)(c->arg, (const T *)in, (T *)out);    \
    }                                                                                        \
    static inline __attribute__((unused)) name##_t name##_map(                              \
        csp_ctx_t *ctx, name##_t in, int (*fn)(void *arg, const T *in, T *out), void *arg,  \
        const csp_pipe_opts_t *opts)                                                        \
    {                                                                                        \
        name##_t r;                                                                          \
        CSP__PIPE_TYPED_CALL(r.c, in.c, sizeof(T), fn, arg, opts,                            \
                             csp_pipe_map(ctx, in.c, sizeof(T), name##__map_tramp, c_, &o_)); \
        return r;                                                                            \
    }                                                                                        \
    static inline __attribute__((unused)) name##_t name##_par_map(                          \
        csp_ctx_t *ctx, name##_t in, size_t workers,                                        \
        int (*fn)(void *arg, const T *in, T *out), void *arg, const csp_pipe_opts_t *opts)  \
    {                                                                                        \
        name##_t r;                                                                          \
        CSP__PIPE_TYPED_CALL(r.c, in.c, sizeof(T), fn, arg, opts,                            \
                             csp_pipe_par_map(ctx, in.c, workers, sizeof(T),                 \
                                              name##__map_tramp, c_, &o_));                  \
        return r;                                                                            \
    }                                                                                        \
    static inline __attribute__((unused)) bool name##__pred_tramp(void *a, const void *v)    \
    {                                                                                        \
        csp__pipe_closure_t *c = (csp__pipe_closure_t *)a;                                   \
        return ((bool (*)(void *, const T *))c->fn)(c->arg, (const T *)v);                   \
    }                                                                                        \
    static inline __attribute__((unused)) name##_t name##_filter(                           \
        csp_ctx_t *ctx, name##_t in, bool (*pred)(void *arg, const T *v), void *arg,        \
        const csp_pipe_opts_t *opts)                                                        \
    {                                                                                        \
        name##_t r;                                                                          \
        CSP__PIPE_TYPED_CALL(r.c, in.c, sizeof(T), pred, arg, opts,                          \
                             csp_pipe_filter(ctx, in.c, name##__pred_tramp, c_, &o_));       \
        return r;                                                                            \
    }                                                                                        \
    typedef int name##_pipe_declared_

#define CSP_PIPE_MAP_DECLARE(fname, in_name, Tin, out_name, Tout)                           \
    static inline __attribute__((unused)) int fname##__tramp(void *a, const void *in,        \
                                                             void *out)                      \
    {                                                                                        \
        csp__pipe_closure_t *c = (csp__pipe_closure_t *)a;                                   \
        return ((int (*)(void *, const Tin *, Tout *))c->fn)(c->arg, (const Tin *)in,        \
                                                            (Tout *)out);                    \
    }                                                                                        \
    static inline __attribute__((unused)) out_name##_t fname(                               \
        csp_ctx_t *ctx, in_name##_t in, int (*fn)(void *arg, const Tin *in, Tout *out),     \
        void *arg, const csp_pipe_opts_t *opts)                                             \
    {                                                                                        \
        out_name##_t r;                                                                      \
        CSP__PIPE_TYPED_CALL(r.c, in.c, sizeof(Tin), fn, arg, opts,                          \
                             csp_pipe_map(ctx, in.c, sizeof(Tout), fname##__tramp, c_, &o_)); \
        return r;                                                                            \
    }                                                                                        \
    typedef int fname##_map_declared_

#ifdef __cplusplus
}
#endif
#endif /* CSP_PIPELINE_H */
