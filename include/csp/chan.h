/* libcsp — channels and select (Go's chan and select).
 *
 * Semantics are Go's: an unbuffered send completes only when a receiver takes
 * the value; a buffered channel is FIFO; values buffered before close are
 * still received after it, then receives return CSP_ECLOSED at once with the
 * element zero-filled; a send on a closed channel returns CSP_ECLOSED; close
 * wakes every blocked sender and receiver. Every call works from tasks (the
 * task parks) and plain threads (the thread blocks). Bad input returns
 * CSP_EINVAL and never corrupts a channel.
 */
#ifndef CSP_CHAN_H
#define CSP_CHAN_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csp_chan csp_chan_t;
typedef struct csp_ctx csp_ctx_t;

/* Largest element size (bytes) csp_chan_make accepts. */
#define CSP_CHAN_MAX_ELEM ((size_t)1 << 16)
/* Largest capacity csp_chan_make accepts. */
#define CSP_CHAN_MAX_CAP  ((size_t)1 << 30)

/* A channel of elem_size-byte elements (0: a signal channel, Go's
 * chan struct{}) with capacity elements of buffer (0: unbuffered). Returns
 * one reference owned by the caller, or NULL (elem_size or capacity above
 * the maxima, capacity * elem_size overflowing, out of memory). Never blocks. */
CSP_EXTERN csp_chan_t *csp_chan_make(size_t elem_size, size_t capacity);
/* Adds a reference; returns c (NULL for NULL). */
CSP_EXTERN csp_chan_t *csp_chan_retain(csp_chan_t *c);
/* Drops a reference; the last one frees the channel. NULL: no-op. Releasing
 * while tasks are still blocked on it is a misuse (they keep it alive only if
 * they hold references themselves). */
CSP_EXTERN void csp_chan_release(csp_chan_t *c);

/* Sends *elem (elem_size bytes copied; elem may be NULL for a signal channel).
 * 0, CSP_ECLOSED, CSP_EINVAL (c NULL, elem NULL with elem_size > 0),
 * CSP_ESHUTDOWN. Blocks until a receiver or buffer space takes it. */
CSP_EXTERN int csp_chan_send(csp_chan_t *c, const void *elem);
/* Receives into out (NULL discards). 0, CSP_ECLOSED (closed and drained: out
 * zero-filled), CSP_EINVAL, CSP_ESHUTDOWN. Blocks until a value comes. */
CSP_EXTERN int csp_chan_recv(csp_chan_t *c, void *out);
/* Non-blocking forms: as above, or CSP_EAGAIN when they would block. */
CSP_EXTERN int csp_chan_try_send(csp_chan_t *c, const void *elem);
CSP_EXTERN int csp_chan_try_recv(csp_chan_t *c, void *out);
/* Deadline forms (absolute csp_now() time; CSP_FOREVER: none; 0: poll, like
 * the try forms): as above, or CSP_ETIMEDOUT once the deadline passed. */
CSP_EXTERN int csp_chan_send_until(csp_chan_t *c, const void *elem, csp_time_t deadline);
CSP_EXTERN int csp_chan_recv_until(csp_chan_t *c, void *out, csp_time_t deadline);
/* Context forms: as the blocking forms, or csp_ctx_err(ctx) (CSP_ECANCELED /
 * CSP_EDEADLINE) once ctx is done. The operation is tried first: one that
 * can complete at once does, even if ctx is done. CSP_EINVAL for a NULL ctx. */
CSP_EXTERN int csp_chan_send_ctx(csp_ctx_t *ctx, csp_chan_t *c, const void *elem);
CSP_EXTERN int csp_chan_recv_ctx(csp_ctx_t *ctx, csp_chan_t *c, void *out);
/* Closes c. 0, CSP_ECLOSED (already closed), CSP_EINVAL (NULL). Never blocks. */
CSP_EXTERN int csp_chan_close(csp_chan_t *c);
/* Buffered elements now / capacity / element size; 0 for NULL. */
CSP_EXTERN size_t csp_chan_len(const csp_chan_t *c);
CSP_EXTERN size_t csp_chan_cap(const csp_chan_t *c);
CSP_EXTERN size_t csp_chan_elem_size(const csp_chan_t *c);
/* 1 if c is closed (buffered values may remain), 0 if not or NULL. */
CSP_EXTERN int csp_chan_closed(const csp_chan_t *c);

/* ---- select ---- */
enum { CSP_RECV = 1, CSP_SEND = 2 };
typedef struct csp_case {
    csp_chan_t *chan;    /* NULL: this case is never ready (Go's nil channel) */
    int         dir;     /* CSP_RECV or CSP_SEND */
    void       *buf;     /* recv: destination (NULL discards); send: the value */
    int         status;  /* out, chosen case only: 0, or CSP_ECLOSED */
} csp_case_t;
#define CSP_RECV_CASE(ch, buf) { (ch), CSP_RECV, (buf), 0 }   /* buf: pointer */
#define CSP_SEND_CASE(ch, buf) { (ch), CSP_SEND, (buf), 0 }

/* Waits until one of the n cases can proceed and does it: returns its index
 * (its status says 0 or CSP_ECLOSED). Several ready: one chosen uniformly at
 * random. deadline 0: poll (CSP_EAGAIN if none is ready, Go's default);
 * CSP_ETIMEDOUT once a deadline passed; CSP_FOREVER: no deadline. The buffers
 * of the cases not chosen are untouched. CSP_EINVAL: cases NULL with n > 0, a
 * bad dir, a send case with a NULL buf on a channel with elements. All-NULL
 * channels with CSP_FOREVER block until shutdown (CSP_ESHUTDOWN). */
CSP_EXTERN int csp_select(csp_case_t *cases, size_t n, csp_time_t deadline);

/* As csp_select, but biased: when several cases are ready, the first in the
 * array wins (priority channels). When none is ready it blocks the same way,
 * and the first case to become ready wins. Not Go's semantics: opt in only
 * where a priority order is wanted (and starvation of later cases is fine). */
CSP_EXTERN int csp_select_biased(csp_case_t *cases, size_t n, csp_time_t deadline);

/* As csp_select with CSP_FOREVER, where ctx behaves as one more case (its
 * done channel): returns csp_ctx_err(ctx) (CSP_ECANCELED / CSP_EDEADLINE) when
 * that case is chosen; if ctx is done and cases are ready too, one of them all
 * is chosen uniformly at random. CSP_EINVAL for a NULL ctx. */
CSP_EXTERN int csp_select_ctx(csp_ctx_t *ctx, csp_case_t *cases, size_t n);
/* Both: ctx and a deadline (CSP_ETIMEDOUT; 0 polls, CSP_EAGAIN). */
CSP_EXTERN int csp_select_ctx_until(csp_ctx_t *ctx, csp_case_t *cases, size_t n,
                                    csp_time_t deadline);

/* ---- typed channels ----
 *
 *   CSP_CHAN_DECLARE(int_chan, int);   // at file scope
 *   int_chan_t ch = int_chan_make(16);
 *   int_chan_send(ch, 42);
 *   int v; int_chan_recv(ch, &v);
 *   int_chan_recv_only_t in = int_chan_recv_only(ch);   // Go's <-chan int
 *   int_chan_send_only_t out = int_chan_send_only(ch);  // Go's chan<- int
 *
 * Each view is a distinct struct wrapping the untyped channel, so passing a
 * receive-only view to a send function, or a channel of another element type,
 * is a compile error. Everything is static inline: no overhead.
 */
#define CSP_CHAN_DECLARE(name, T)                                                           \
    typedef struct { csp_chan_t *c; } name##_t;                                              \
    typedef struct { csp_chan_t *c; } name##_recv_only_t;                                    \
    typedef struct { csp_chan_t *c; } name##_send_only_t;                                    \
    static inline __attribute__((unused)) name##_t name##_make(size_t cap)                   \
    { name##_t r = { csp_chan_make(sizeof(T), cap) }; return r; }                            \
    static inline __attribute__((unused)) name##_t name##_retain(name##_t ch)                \
    { csp_chan_retain(ch.c); return ch; }                                                    \
    static inline __attribute__((unused)) void name##_release(name##_t ch)                   \
    { csp_chan_release(ch.c); }                                                              \
    static inline __attribute__((unused)) name##_recv_only_t name##_recv_only(name##_t ch)   \
    { name##_recv_only_t r = { ch.c }; return r; }                                           \
    static inline __attribute__((unused)) name##_send_only_t name##_send_only(name##_t ch)   \
    { name##_send_only_t r = { ch.c }; return r; }                                           \
    static inline __attribute__((unused)) int name##_send(name##_t ch, T v)                  \
    { return csp_chan_send(ch.c, &v); }                                                      \
    static inline __attribute__((unused)) int name##_try_send(name##_t ch, T v)              \
    { return csp_chan_try_send(ch.c, &v); }                                                  \
    static inline __attribute__((unused)) int name##_send_until(name##_t ch, T v,           \
                                                               csp_time_t dl)               \
    { return csp_chan_send_until(ch.c, &v, dl); }                                            \
    static inline __attribute__((unused)) int name##_recv(name##_t ch, T *out)               \
    { return csp_chan_recv(ch.c, out); }                                                     \
    static inline __attribute__((unused)) int name##_try_recv(name##_t ch, T *out)           \
    { return csp_chan_try_recv(ch.c, out); }                                                 \
    static inline __attribute__((unused)) int name##_recv_until(name##_t ch, T *out,        \
                                                               csp_time_t dl)               \
    { return csp_chan_recv_until(ch.c, out, dl); }                                           \
    static inline __attribute__((unused)) int name##_send_ctx(csp_ctx_t *ctx, name##_t ch,   \
                                                             T v)                         \
    { return csp_chan_send_ctx(ctx, ch.c, &v); }                                             \
    static inline __attribute__((unused)) int name##_recv_ctx(csp_ctx_t *ctx, name##_t ch,   \
                                                             T *out)                      \
    { return csp_chan_recv_ctx(ctx, ch.c, out); }                                            \
    static inline __attribute__((unused)) int name##_ro_recv_ctx(csp_ctx_t *ctx,             \
                                                                name##_recv_only_t ch,    \
                                                                T *out)                   \
    { return csp_chan_recv_ctx(ctx, ch.c, out); }                                            \
    static inline __attribute__((unused)) int name##_so_send_ctx(csp_ctx_t *ctx,             \
                                                                name##_send_only_t ch,    \
                                                                T v)                      \
    { return csp_chan_send_ctx(ctx, ch.c, &v); }                                             \
    static inline __attribute__((unused)) int name##_close(name##_t ch)                      \
    { return csp_chan_close(ch.c); }                                                         \
    static inline __attribute__((unused)) size_t name##_len(name##_t ch)                     \
    { return csp_chan_len(ch.c); }                                                           \
    static inline __attribute__((unused)) int name##_ro_recv(name##_recv_only_t ch, T *out)  \
    { return csp_chan_recv(ch.c, out); }                                                     \
    static inline __attribute__((unused)) int name##_ro_try_recv(name##_recv_only_t ch,     \
                                                                T *out)                     \
    { return csp_chan_try_recv(ch.c, out); }                                                 \
    static inline __attribute__((unused)) int name##_so_send(name##_send_only_t ch, T v)     \
    { return csp_chan_send(ch.c, &v); }                                                      \
    static inline __attribute__((unused)) int name##_so_close(name##_send_only_t ch)         \
    { return csp_chan_close(ch.c); }                                                         \
    typedef int name##_declared_

#ifdef __cplusplus
}
#endif
#endif /* CSP_CHAN_H */
