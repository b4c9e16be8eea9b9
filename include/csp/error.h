/* libcsp — error propagation ("Concurrency in Go", chapter 5) and results
 * that carry a value or an error through a channel (chapter 4's Result).
 *
 * A csp_error_t is what the book's MyError is: what happened (a code and a
 * printf-formatted message), an optional wrapped inner error (the layer
 * below), and when and where it happened (the UTC wall-clock time, the id and
 * name of the task that created it, and the stack trace of the creating call,
 * up to CSP_ERROR_MAX_FRAMES frames, symbolised only when the long form is
 * formatted), plus a log id that a user-facing message can quote so that the
 * full log entry can be found again.
 *
 *   csp_error_t *err = csp_error_new(ERR_DISK, "write %s: %s", path, strerror(errno));
 *   ...
 *   return csp_error_wrap(err, ERR_REPORT, "cannot post report %d", id);  // err now owned by the wrapper
 *   ...
 *   csp_error_fprint(log, err, CSP_ERROR_LONG);              // every layer, times, tasks, stacks
 *   printf("[%llu] %s\n", (unsigned long long)csp_error_log_id(err),
 *          csp_error_is(err, ERR_REPORT) ? csp_error_message(err) : "unexpected issue");
 *   csp_error_release(err);
 *
 * Codes: any int. libcsp's own codes are the negative CSP_E* values (the
 * long form names them, "CSP_ECLOSED (-1)"); use positive codes of your own
 * for your modules' error kinds ("code 100").
 *
 * Ownership (reference counting, as every libcsp object):
 *   - csp_error_new / csp_error_wrap return one reference that the caller
 *     owns and drops with csp_error_release; csp_error_retain adds one.
 *   - csp_error_wrap CONSUMES the caller's reference to inner: the wrapper
 *     owns it from then on (and releases it when it is freed itself). Retain
 *     inner first to keep using it after the wrapper is gone.
 *   - Everything an accessor returns (message, inner, root, task name) is
 *     borrowed from the error and valid while the caller holds a reference.
 *   - An error is immutable once created (only csp_error_set_log_id writes,
 *     atomically), so one error may be shared, retained and formatted by
 *     any number of tasks and threads at once.
 *
 * Out of memory: constructors never return NULL. When memory runs out they
 * return a static error whose code is CSP_ENOMEM (retain and release do
 * nothing to it; it has no stack trace, task, time or log id), so that an
 * error never turns into "no error" on the way up. csp_error_wrap releases
 * inner in that case.
 *
 * NULL: every function accepts a NULL error. Accessors then return the zero
 * value (0, NULL), predicates 0, and functions that return a status code
 * return CSP_EINVAL. Nothing here blocks or switches tasks (creating an
 * error calls malloc and, the first time in a process, lets glibc load its
 * unwinder; formatting the long form calls malloc once per error).
 */
#ifndef CSP_ERROR_H
#define CSP_ERROR_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "common.h"
#include "chan.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct csp_error csp_error_t;

/* Most stack frames an error records (the innermost, starting at the call
 * that created it). */
#define CSP_ERROR_MAX_FRAMES 32
/* Longest message, in bytes without the NUL; longer ones are cut there. */
#define CSP_ERROR_MAX_MESSAGE ((size_t)65535)

/* ---- creating and owning ---- */

/* A new error with this code and the message printf(fmt, ...) (fmt NULL:
 * csp_strerror(code) for libcsp's own codes, "" for others), recording the
 * caller's stack trace, the UTC time, the calling task's id and name (0 and
 * "" on a plain thread) and a new log id: unique in the process, and
 * increasing in the order the errors are created. errno is preserved (so
 * "%m" works). Returns one reference owned by the caller; never NULL (out of
 * memory: the static CSP_ENOMEM error). Never blocks. */
CSP_EXTERN csp_error_t *csp_error_new(int code, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* As csp_error_new, with a va_list. */
CSP_EXTERN csp_error_t *csp_error_newv(int code, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

/* The book's wrapError: a new error (as csp_error_new) whose inner error is
 * `inner`, taking over the caller's reference to inner (consumed in every
 * case, also when out of memory). The wrapper shares inner's log id, so a
 * whole chain is one log entry (inner NULL: a new id, as csp_error_new).
 * Returns one reference owned by the caller; never NULL. Never blocks. */
CSP_EXTERN csp_error_t *csp_error_wrap(csp_error_t *inner, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As csp_error_wrap, with a va_list. */
CSP_EXTERN csp_error_t *csp_error_wrapv(csp_error_t *inner, int code, const char *fmt,
                                        va_list ap) __attribute__((format(printf, 3, 0)));

/* Adds a reference; returns err (NULL for NULL). Thread-safe, never blocks. */
CSP_EXTERN csp_error_t *csp_error_retain(csp_error_t *err);
/* Drops a reference; the last one frees the error and releases its inner
 * error (the whole chain, iteratively). NULL: no-op. Never blocks. */
CSP_EXTERN void csp_error_release(csp_error_t *err);

/* ---- accessors (borrowed results; NULL err: 0 / NULL) ---- */

/* The error's code (this layer's; see csp_error_is for the chain). */
CSP_EXTERN int csp_error_code(const csp_error_t *err);
/* This layer's message (NUL-terminated, never NULL for a non-NULL err). */
CSP_EXTERN const char *csp_error_message(const csp_error_t *err);
/* The wrapped inner error (Go's errors.Unwrap), or NULL. Borrowed. */
CSP_EXTERN csp_error_t *csp_error_inner(const csp_error_t *err);
/* The innermost error of the chain (err itself if it wraps nothing). Borrowed. */
CSP_EXTERN csp_error_t *csp_error_root(const csp_error_t *err);
/* The number of layers in the chain (1 for an error that wraps nothing). */
CSP_EXTERN size_t csp_error_depth(const csp_error_t *err);
/* The id of the task that created this layer (csp_task_id()), 0 if it was
 * created on a plain thread. */
CSP_EXTERN uint64_t csp_error_task_id(const csp_error_t *err);
/* That task's name ("" if it had none or on a plain thread; at most 31 bytes). */
CSP_EXTERN const char *csp_error_task_name(const csp_error_t *err);
/* When this layer was created: UTC wall-clock time (CLOCK_REALTIME) in
 * nanoseconds since 1970-01-01T00:00:00Z. Not a csp_time_t (monotonic). */
CSP_EXTERN int64_t csp_error_time(const csp_error_t *err);
/* This layer's log id (never 0 except for the static out-of-memory error). */
CSP_EXTERN uint64_t csp_error_log_id(const csp_error_t *err);
/* Replaces this layer's log id with one of the caller's (e.g. a request id);
 * errors that wrap it later inherit it. Set it before sharing the error (a
 * concurrent reader sees the old or the new id). 0, CSP_EINVAL (err NULL or
 * the static out-of-memory error, id 0). Never blocks. */
CSP_EXTERN int csp_error_set_log_id(csp_error_t *err, uint64_t id);
/* Copies up to max of this layer's raw stack frames (return addresses, the
 * creating call site first) to out; returns how many the layer has (which
 * may be more than max), or CSP_EINVAL (err NULL, max < 0, out NULL with
 * max > 0). For a custom symboliser; csp_error_format does it for you. */
CSP_EXTERN int csp_error_frames(const csp_error_t *err, void **out, int max);

/* ---- the chain ---- */

/* 1 if some layer of err's chain (err itself included) has this code, else
 * 0 (Go's errors.Is, for codes). */
CSP_EXTERN int csp_error_is(const csp_error_t *err, int code);
/* The outermost layer of err's chain with this code, or NULL (Go's
 * errors.As, for codes). Borrowed. */
CSP_EXTERN csp_error_t *csp_error_find(const csp_error_t *err, int code);
/* Calls fn(layer, depth, arg) for every layer, outermost (depth 0) first,
 * until fn returns non-zero; returns that value, or 0 when every layer was
 * visited (also for a NULL err). CSP_EINVAL if fn is NULL. */
CSP_EXTERN int csp_error_walk(const csp_error_t *err,
                              int (*fn)(const csp_error_t *layer, size_t depth, void *arg),
                              void *arg);

/* ---- formatting ---- */

/* Styles for csp_error_format / csp_error_fprint. */
enum {
    CSP_ERROR_SHORT    = 0, /* this layer's message only: for users */
    CSP_ERROR_LONG     = 1, /* for logs, several lines: "[logID: N]: error with
                               K layers, outermost first:", then per layer its
                               code (name), message, UTC time, task, and stack
                               trace (symbolised with backtrace_symbols) */
    CSP_ERROR_CHAIN    = 2, /* one line, every layer's message joined by ": "
                               (Go's fmt.Errorf("%w") style), empty ones skipped */
    CSP_ERROR_DETAILED = 3  /* CSP_ERROR_LONG without the stack traces */
};

/* Formats err in the given style into buf, snprintf-style: writes at most
 * size bytes including a terminating NUL (buf may be NULL when size is 0, to
 * measure), and returns the length of the whole text (without the NUL);
 * a return value >= size means it was cut. CSP_EINVAL: err NULL, buf NULL
 * with size > 0, an unknown style; CSP_ENOMEM: the text would be longer than
 * INT_MAX. LONG and DETAILED end with a newline, SHORT and CHAIN do not.
 * The first long format of an error symbolises its frames once (malloc);
 * when that fails, frames are printed as raw addresses (so a later call may
 * produce a longer text than a measuring call did: check the result against
 * size). Thread-safe on a shared error. Never blocks. */
CSP_EXTERN int csp_error_format(const csp_error_t *err, int style, char *buf, size_t size);
/* csp_error_format(err, CSP_ERROR_SHORT, buf, size). */
CSP_EXTERN int csp_error_format_short(const csp_error_t *err, char *buf, size_t size);
/* csp_error_format(err, CSP_ERROR_LONG, buf, size). */
CSP_EXTERN int csp_error_format_long(const csp_error_t *err, char *buf, size_t size);

/* Writes err to f in the given style (0 / CSP_ERROR_SHORT, 1 / CSP_ERROR_LONG,
 * ...), ending with a newline in every style, as one locked stdio operation
 * (lines of concurrent writers do not interleave). No buffer is allocated.
 * 0, CSP_EINVAL (f or err NULL, unknown style); a write error is left on the
 * stream for ferror(f). Blocks only as stdio does. */
CSP_EXTERN int csp_error_fprint(FILE *f, const csp_error_t *err, int style);

/* ---- results: a value or an error, through a channel ----
 *
 * The book's Result {Error, Response}. Make the channel with
 * csp_chan_make(sizeof(csp_result_t), cap); a stage sends csp_result_ok(...)
 * or csp_result_err(err). Ownership of the error travels with the result:
 *   - a result holds one reference to its err;
 *   - a successful send moves it to the receiver (the sender must not touch
 *     its copy's err afterwards); if the send fails (CSP_ECLOSED, a done
 *     context, a deadline) the sender still owns it and must
 *     csp_result_clear() it;
 *   - the receiver owns the err of every result it receives: it releases it
 *     (csp_result_clear), or takes it (csp_result_take_err) to wrap or keep.
 * A receive from a closed, drained channel yields an all-zero result (err
 * NULL, size 0): check the receive's return code, as with any channel.
 */

/* Bytes of value a csp_result_t carries inline. */
#define CSP_RESULT_VALUE_MAX 48

typedef struct csp_result {
    csp_error_t *err;   /* NULL: success, value holds the response */
    size_t       size;  /* bytes of value in use (0 .. CSP_RESULT_VALUE_MAX) */
    union {
        void         *ptr;
        int64_t       i64;
        uint64_t      u64;
        double        f64;
        unsigned char bytes[CSP_RESULT_VALUE_MAX];
    } value;
} csp_result_t;

/* A success carrying a copy of size bytes at value (value may be NULL when
 * size is 0). Bad input (size > CSP_RESULT_VALUE_MAX, or value NULL with
 * size > 0) gives an error result with code CSP_EINVAL instead: it never
 * truncates silently. Unused value bytes are zero. Never blocks. */
CSP_EXTERN csp_result_t csp_result_ok(const void *value, size_t size);
/* A success carrying the pointer p (value.ptr, size sizeof(void *)); what p
 * points to is the caller's business. */
CSP_EXTERN csp_result_t csp_result_ok_ptr(void *p);
/* A failure carrying err, whose reference the result takes over. err NULL
 * (a bug in the caller) gives a CSP_EINVAL error instead, so the result is
 * still a failure. Never blocks. */
CSP_EXTERN csp_result_t csp_result_err(csp_error_t *err);
/* 1 if r holds a value (r not NULL, r->err NULL), else 0. */
CSP_EXTERN int csp_result_is_ok(const csp_result_t *r);
/* Copies r's value to out, which must be exactly r->size bytes (size). 0,
 * CSP_EINVAL (r or out NULL, r is a failure, size != r->size). */
CSP_EXTERN int csp_result_get(const csp_result_t *r, void *out, size_t size);
/* Moves r's error out: returns it (the caller now owns the reference) and
 * sets r->err to NULL. NULL if r is NULL or a success. */
CSP_EXTERN csp_error_t *csp_result_take_err(csp_result_t *r);
/* Releases r's error (if any) and zeroes *r. NULL: no-op. */
CSP_EXTERN void csp_result_clear(csp_result_t *r);

/* ---- typed results ----
 *
 *   CSP_RESULT_DECLARE(resp_result, struct response);   // at file scope
 *   resp_result_chan_t ch = resp_result_chan_make(0);     // channel of resp_result_t
 *   resp_result_chan_send(ch, resp_result_ok(resp));
 *   resp_result_chan_send(ch, resp_result_err(csp_error_new(ERR_FETCH, "...")));
 *   resp_result_t r;
 *   while (resp_result_chan_recv(ch, &r) == 0) {
 *       if (!resp_result_is_ok(&r)) { ...r.err...; resp_result_clear(&r); continue; }
 *       use(r.value);
 *   }
 *
 * declares  typedef struct { csp_error_t *err; T value; } name_t;
 *           name_ok(T) / name_err(csp_error_t *) / name_is_ok(const name_t *) /
 *           name_take_err(name_t *) / name_clear(name_t *), with the ownership
 *           rules of csp_result_t (name_err(NULL) gives a CSP_EINVAL error);
 *           and the typed channel name_chan (CSP_CHAN_DECLARE(name_chan, name_t)).
 * T is any type that can be passed by value, of at most CSP_CHAN_MAX_ELEM bytes
 * with the error pointer. Everything is static inline.
 */
#define CSP_RESULT_DECLARE(name, T)                                                         \
    typedef struct { csp_error_t *err; T value; } name##_t;                                  \
    static inline __attribute__((unused)) name##_t name##_ok(T v)                            \
    { name##_t r; memset(&r, 0, sizeof r); r.value = v; return r; }                          \
    static inline __attribute__((unused)) name##_t name##_err(csp_error_t *e)                \
    {                                                                                        \
        name##_t r; memset(&r, 0, sizeof r);                                                 \
        r.err = e ? e : csp_error_new(CSP_EINVAL, #name "_err: NULL error");                 \
        return r;                                                                            \
    }                                                                                        \
    static inline __attribute__((unused)) int name##_is_ok(const name##_t *r)                \
    { return r != NULL && r->err == NULL; }                                                  \
    static inline __attribute__((unused)) csp_error_t *name##_take_err(name##_t *r)          \
    { csp_error_t *e = r ? r->err : NULL; if (r) r->err = NULL; return e; }                  \
    static inline __attribute__((unused)) void name##_clear(name##_t *r)                     \
    { if (r) { csp_error_release(r->err); memset(r, 0, sizeof *r); } }                       \
    CSP_CHAN_DECLARE(name##_chan, name##_t)

#ifdef __cplusplus
}
#endif
#endif /* CSP_ERROR_H */
