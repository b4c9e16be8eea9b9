/* csp_error_t and csp_result_t: error propagation ("Concurrency in Go",
 * chapter 5) and results through channels (chapter 4). See include/csp/error.h.
 *
 * Layout: one malloc block per error: the struct, then the message text.
 *
 * Invariants
 *   - Every field is written only by the constructor, before the error is
 *     returned to anyone, except:
 *       log_id  written by csp_error_set_log_id (atomic, relaxed: a plain
 *               value with no data attached; the caller publishes the error
 *               itself, e.g. through a channel, which orders everything);
 *       syms    the lazily symbolised frames, NULL until the first long
 *               format; installed once by a CAS from NULL and never changed
 *               again; freed with the error.
 *       refs    the reference count.
 *     So an error may be read by any number of threads at once.
 *   - inner is an owned reference (or NULL) and is immutable: a chain is a
 *     list, never a cycle (a wrapper is created after its inner error). The
 *     last release frees the chain iteratively (no recursion on deep chains).
 *   - error_nomem is static and immortal: refs is ignored, nothing in it is
 *     ever written (it has no frames, so syms stays NULL; set_log_id refuses
 *     it). Constructors return it when malloc fails, so an error never turns
 *     into NULL ("no error").
 *   - frames[0] is the return address into the function that called the
 *     public constructor: the frames of libcsp's own constructor are cut off
 *     by looking for __builtin_return_address(0) of the public entry point.
 *
 * Locks: none. Atomics: refs (retain relaxed, release acq_rel), syms (CAS
 * acq_rel / load acquire), log_id (relaxed), next_log_id (relaxed RMW),
 * fail_allocs (relaxed, the tests' allocation-failure hook).
 */
#define _GNU_SOURCE
#include "../internal.h"

#include <errno.h>
#include <execinfo.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TASK_NAME_MAX 32 /* bytes of the task name kept, with the NUL */

struct csp_error {
    _Atomic uint64_t refs;   /* references; ignored for the immortal error */
    _Atomic uint64_t log_id; /* see the invariants */
    _Atomic(char **) syms;   /* backtrace_symbols(frames), or NULL; see above */
    csp_error_t *inner;      /* owned reference, or NULL */
    const char  *msg;        /* text[] (or a static string for error_nomem) */
    int64_t      time_ns;    /* CLOCK_REALTIME at creation */
    uint64_t     task_id;    /* csp_task_id() at creation */
    int          code;
    int          nframes;
    bool         immortal;
    char         task_name[TASK_NAME_MAX];
    void        *frames[CSP_ERROR_MAX_FRAMES];
    char         text[];     /* the message, NUL-terminated */
};

static csp_error_t error_nomem = {
    .msg = "out of memory (an error could not be recorded)",
    .code = CSP_ENOMEM,
    .immortal = true,
};

/* The next log id; ids start at 1. Relaxed: only uniqueness (RMW atomicity)
 * and per-thread monotonicity (coherence) are needed, no data is attached. */
static _Atomic uint64_t next_log_id = 1;

/* ---- allocation (with a failure hook for the tests) ---- */

/* Test hook, hidden from the shared library: the next n allocations made
 * here (errors and symbol tables) fail. Not part of the API. */
void csp__error_fail_allocs(int n);
static _Atomic int fail_allocs;

void csp__error_fail_allocs(int n)
{
    atomic_store_explicit(&fail_allocs, n > 0 ? n : 0, memory_order_relaxed);
}

/* true if the hook says this allocation must fail (consumes one). */
static bool alloc_should_fail(void)
{
    int n = atomic_load_explicit(&fail_allocs, memory_order_relaxed);
    while (n > 0) {
        /* relaxed: a plain counter, no data is published through it */
        if (atomic_compare_exchange_weak_explicit(&fail_allocs, &n, n - 1, memory_order_relaxed,
                                                  memory_order_relaxed))
            return true;
    }
    return false;
}

/* ---- construction ---- */

/* The message for a NULL fmt: libcsp's own codes describe themselves. */
static const char *default_message(int code)
{
    return strcmp(csp_err_name(code), "CSP_UNKNOWN") != 0 ? csp_strerror(code) : "";
}

/* Records the stack from the caller of the public entry point (whose return
 * address is ra) outwards. */
static void capture_stack(csp_error_t *e, void *ra)
{
    void *raw[CSP_ERROR_MAX_FRAMES + 8];
    int n = backtrace(raw, (int)(sizeof raw / sizeof raw[0]));
    int first = 0;
    for (int i = 0; i < n; i++) {
        if (raw[i] == ra) {
            first = i;
            break;
        }
    }
    /* ra not found (an unwinder without unwind info): keep everything. */
    int keep = n - first;
    if (keep > CSP_ERROR_MAX_FRAMES)
        keep = CSP_ERROR_MAX_FRAMES;
    if (keep < 0)
        keep = 0;
    memcpy(e->frames, raw + first, (size_t)keep * sizeof raw[0]);
    e->nframes = keep;
}

/* Builds an error. Consumes the reference to inner in every case. ra: the
 * return address of the public entry point (where the stack starts). */
static csp_error_t *error_make(csp_error_t *inner, int code, void *ra, const char *fmt,
                               va_list ap)
{
    int saved_errno = errno;

    /* Measure the message (first pass into a small buffer: most fit). */
    char small[256];
    const char *src = NULL; /* the finished text, or NULL: format again */
    size_t len;
    if (fmt == NULL) {
        src = default_message(code);
        len = strlen(src);
    } else {
        va_list ap1;
        va_copy(ap1, ap);
        errno = saved_errno; /* for %m */
        int m = vsnprintf(small, sizeof small, fmt, ap1);
        va_end(ap1);
        if (m < 0) {
            src = "(invalid error message format)";
            len = strlen(src);
        } else {
            len = (size_t)m;
            if (len < sizeof small)
                src = small;
            else if (len > CSP_ERROR_MAX_MESSAGE)
                len = CSP_ERROR_MAX_MESSAGE;
        }
    }

    csp_error_t *e = alloc_should_fail() ? NULL : malloc(sizeof *e + len + 1);
    if (e == NULL) {
        csp_error_release(inner);
        errno = saved_errno;
        return &error_nomem;
    }
    memset(e, 0, sizeof *e);
    if (src != NULL) {
        memcpy(e->text, src, len);
    } else {
        va_list ap2;
        va_copy(ap2, ap);
        errno = saved_errno; /* malloc may have changed it; %m again */
        int m = vsnprintf(e->text, len + 1, fmt, ap2);
        va_end(ap2);
        if (m < 0) /* cannot happen: the same format succeeded above */
            len = 0;
    }
    e->text[len] = '\0';
    e->msg = e->text;

    atomic_init(&e->refs, 1);
    atomic_init(&e->syms, NULL);
    e->code = code;
    e->inner = inner;
    uint64_t id = inner ? atomic_load_explicit(&inner->log_id, memory_order_relaxed) : 0;
    if (id == 0) /* relaxed RMW: see next_log_id */
        id = atomic_fetch_add_explicit(&next_log_id, 1, memory_order_relaxed);
    atomic_init(&e->log_id, id);

    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    e->time_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
    /* Both read the current task now; nothing here can switch tasks. */
    e->task_id = csp_task_id();
    const char *name = csp_task_name();
    if (name != NULL)
        snprintf(e->task_name, sizeof e->task_name, "%s", name);

    capture_stack(e, ra);
    errno = saved_errno;
    return e;
}

static csp_error_t *error_makef(csp_error_t *inner, int code, void *ra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static csp_error_t *error_makef(csp_error_t *inner, int code, void *ra, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    csp_error_t *e = error_make(inner, code, ra, fmt, ap);
    va_end(ap);
    return e;
}

CSP_EXTERN csp_error_t *csp_error_new(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    csp_error_t *e = error_make(NULL, code, __builtin_return_address(0), fmt, ap);
    va_end(ap);
    return e;
}

CSP_EXTERN csp_error_t *csp_error_newv(int code, const char *fmt, va_list ap)
{
    return error_make(NULL, code, __builtin_return_address(0), fmt, ap);
}

CSP_EXTERN csp_error_t *csp_error_wrap(csp_error_t *inner, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    csp_error_t *e = error_make(inner, code, __builtin_return_address(0), fmt, ap);
    va_end(ap);
    return e;
}

CSP_EXTERN csp_error_t *csp_error_wrapv(csp_error_t *inner, int code, const char *fmt,
                                        va_list ap)
{
    return error_make(inner, code, __builtin_return_address(0), fmt, ap);
}

CSP_EXTERN csp_error_t *csp_error_retain(csp_error_t *err)
{
    /* relaxed: the caller already holds a reference, so the error cannot be
     * freed meanwhile; nothing is published by a retain. */
    if (err != NULL && !err->immortal)
        atomic_fetch_add_explicit(&err->refs, 1, memory_order_relaxed);
    return err;
}

CSP_EXTERN void csp_error_release(csp_error_t *err)
{
    while (err != NULL && !err->immortal) {
        /* acq_rel: the release half publishes this holder's reads of the
         * error to whoever frees it; the acquire half (for the last one)
         * sees every other holder's, and the syms CAS, before free. */
        if (atomic_fetch_sub_explicit(&err->refs, 1, memory_order_acq_rel) != 1)
            return;
        csp_error_t *inner = err->inner;
        free(atomic_load_explicit(&err->syms, memory_order_relaxed)); /* ordered by the acq_rel */
        free(err);
        err = inner; /* the freed wrapper's reference to it */
    }
}

/* ---- accessors ---- */

CSP_EXTERN int csp_error_code(const csp_error_t *err)
{
    return err ? err->code : 0;
}

CSP_EXTERN const char *csp_error_message(const csp_error_t *err)
{
    return err ? err->msg : NULL;
}

CSP_EXTERN csp_error_t *csp_error_inner(const csp_error_t *err)
{
    return err ? err->inner : NULL;
}

CSP_EXTERN csp_error_t *csp_error_root(const csp_error_t *err)
{
    if (err == NULL)
        return NULL;
    while (err->inner != NULL)
        err = err->inner;
    return (csp_error_t *)err;
}

CSP_EXTERN size_t csp_error_depth(const csp_error_t *err)
{
    size_t n = 0;
    for (; err != NULL; err = err->inner)
        n++;
    return n;
}

CSP_EXTERN uint64_t csp_error_task_id(const csp_error_t *err)
{
    return err ? err->task_id : 0;
}

CSP_EXTERN const char *csp_error_task_name(const csp_error_t *err)
{
    return err ? err->task_name : NULL;
}

CSP_EXTERN int64_t csp_error_time(const csp_error_t *err)
{
    return err ? err->time_ns : 0;
}

CSP_EXTERN uint64_t csp_error_log_id(const csp_error_t *err)
{
    /* relaxed: see the invariants (pairs with nothing; a plain value) */
    return err ? atomic_load_explicit(&((csp_error_t *)err)->log_id, memory_order_relaxed) : 0;
}

CSP_EXTERN int csp_error_set_log_id(csp_error_t *err, uint64_t id)
{
    if (err == NULL || err->immortal || id == 0)
        return CSP_EINVAL;
    atomic_store_explicit(&err->log_id, id, memory_order_relaxed); /* see the invariants */
    return 0;
}

CSP_EXTERN int csp_error_frames(const csp_error_t *err, void **out, int max)
{
    if (err == NULL || max < 0 || (out == NULL && max > 0))
        return CSP_EINVAL;
    int n = err->nframes < max ? err->nframes : max;
    if (n > 0)
        memcpy(out, err->frames, (size_t)n * sizeof err->frames[0]);
    return err->nframes;
}

/* ---- the chain ---- */

CSP_EXTERN csp_error_t *csp_error_find(const csp_error_t *err, int code)
{
    for (; err != NULL; err = err->inner)
        if (err->code == code)
            return (csp_error_t *)err;
    return NULL;
}

CSP_EXTERN int csp_error_is(const csp_error_t *err, int code)
{
    return csp_error_find(err, code) != NULL;
}

CSP_EXTERN int csp_error_walk(const csp_error_t *err,
                              int (*fn)(const csp_error_t *layer, size_t depth, void *arg),
                              void *arg)
{
    if (fn == NULL)
        return CSP_EINVAL;
    size_t depth = 0;
    for (; err != NULL; err = err->inner, depth++) {
        int r = fn(err, depth, arg);
        if (r != 0)
            return r;
    }
    return 0;
}

/* ---- formatting ---- */

/* Where formatted text goes: a caller buffer (snprintf-style: len counts
 * everything, at most size - 1 bytes are stored), or a locked FILE. */
typedef struct {
    char  *buf;
    size_t size;
    size_t len;
    FILE  *f;
} sink_t;

static void sink_put(sink_t *s, const char *p, size_t n)
{
    if (n == 0)
        return;
    if (s->f != NULL) {
        fwrite_unlocked(p, 1, n, s->f); /* the caller holds flockfile(f) */
    } else if (s->buf != NULL && s->len + 1 < s->size) {
        size_t room = s->size - 1 - s->len;
        memcpy(s->buf + s->len, p, n < room ? n : room);
    }
    s->len += n;
}

static void sink_puts(sink_t *s, const char *p)
{
    sink_put(s, p, strlen(p));
}

/* For short pieces only (numbers, names, times): at most 255 bytes. */
static __attribute__((format(printf, 2, 3))) void sink_printf(sink_t *s, const char *fmt, ...)
{
    char tmp[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    sink_put(s, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_code(sink_t *s, int code)
{
    const char *name = csp_err_name(code);
    if (strcmp(name, "CSP_UNKNOWN") != 0)
        sink_printf(s, "%s (%d)", name, code);
    else
        sink_printf(s, "code %d", code);
}

/* ISO 8601, UTC, microseconds: 2024-05-01T21:46:07.123456Z */
static void put_time(sink_t *s, int64_t ns)
{
    int64_t sec = ns / 1000000000, frac = ns % 1000000000;
    if (frac < 0) {
        frac += 1000000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL) {
        sink_printf(s, "(time %lld ns)", (long long)ns);
        return;
    }
    sink_printf(s, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
                tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)(frac / 1000));
}

/* The symbolised frames of e, computed once (NULL if that fails). */
static char **error_syms(const csp_error_t *ce)
{
    csp_error_t *e = (csp_error_t *)ce; /* the cache is the one mutable part */
    /* acquire: pairs with the CAS below, to see the table's contents */
    char **syms = atomic_load_explicit(&e->syms, memory_order_acquire);
    if (syms != NULL || e->nframes == 0)
        return syms;
    syms = alloc_should_fail() ? NULL : backtrace_symbols(e->frames, e->nframes);
    if (syms == NULL)
        return NULL;
    char **expected = NULL;
    /* acq_rel: release publishes our table; acquire (on failure) sees the
     * winner's. */
    if (!atomic_compare_exchange_strong_explicit(&e->syms, &expected, syms, memory_order_acq_rel,
                                                 memory_order_acquire)) {
        free(syms);
        syms = expected;
    }
    return syms;
}

static void format_layer_details(sink_t *s, const csp_error_t *e, bool stack)
{
    if (e->immortal) { /* recorded without memory: nothing more is known */
        sink_puts(s, "      (no time, task or stack: recorded without memory)\n");
        return;
    }
    sink_puts(s, "      at ");
    put_time(s, e->time_ns);
    if (e->task_id == 0)
        sink_puts(s, ", plain thread\n");
    else if (e->task_name[0] != '\0')
        sink_printf(s, ", task %llu (%s)\n", (unsigned long long)e->task_id, e->task_name);
    else
        sink_printf(s, ", task %llu\n", (unsigned long long)e->task_id);
    if (!stack)
        return;
    sink_printf(s, "      stack (%d frame%s):\n", e->nframes, e->nframes == 1 ? "" : "s");
    char **syms = error_syms(e);
    for (int i = 0; i < e->nframes; i++) {
        sink_printf(s, "        #%-2d ", i);
        if (syms != NULL)
            sink_puts(s, syms[i]);
        else
            sink_printf(s, "[%p]", e->frames[i]);
        sink_puts(s, "\n");
    }
}

static void format_into(sink_t *s, const csp_error_t *err, int style)
{
    switch (style) {
    case CSP_ERROR_SHORT:
        sink_puts(s, err->msg);
        return;
    case CSP_ERROR_CHAIN: {
        bool first = true;
        for (const csp_error_t *e = err; e != NULL; e = e->inner) {
            if (e->msg[0] == '\0')
                continue;
            if (!first)
                sink_puts(s, ": ");
            sink_puts(s, e->msg);
            first = false;
        }
        return;
    }
    default: { /* LONG, DETAILED */
        size_t depth = csp_error_depth(err);
        uint64_t id = csp_error_log_id(err);
        if (id != 0)
            sink_printf(s, "[logID: %llu]: ", (unsigned long long)id);
        else
            sink_puts(s, "[logID: none]: ");
        sink_printf(s, "error with %zu layer%s, outermost first:\n", depth, depth == 1 ? "" : "s");
        size_t i = 0;
        for (const csp_error_t *e = err; e != NULL; e = e->inner, i++) {
            sink_printf(s, "  [%zu] ", i);
            put_code(s, e->code);
            sink_puts(s, ": ");
            sink_puts(s, e->msg);
            sink_puts(s, "\n");
            format_layer_details(s, e, style == CSP_ERROR_LONG);
        }
        return;
    }
    }
}

static bool style_ok(int style)
{
    return style == CSP_ERROR_SHORT || style == CSP_ERROR_LONG || style == CSP_ERROR_CHAIN ||
           style == CSP_ERROR_DETAILED;
}

CSP_EXTERN int csp_error_format(const csp_error_t *err, int style, char *buf, size_t size)
{
    if (err == NULL || (buf == NULL && size > 0) || !style_ok(style))
        return CSP_EINVAL;
    sink_t s = { .buf = buf, .size = size };
    format_into(&s, err, style);
    if (size > 0)
        buf[s.len < size ? s.len : size - 1] = '\0';
    if (s.len > (size_t)INT_MAX)
        return CSP_ENOMEM;
    return (int)s.len;
}

CSP_EXTERN int csp_error_format_short(const csp_error_t *err, char *buf, size_t size)
{
    return csp_error_format(err, CSP_ERROR_SHORT, buf, size);
}

CSP_EXTERN int csp_error_format_long(const csp_error_t *err, char *buf, size_t size)
{
    return csp_error_format(err, CSP_ERROR_LONG, buf, size);
}

CSP_EXTERN int csp_error_fprint(FILE *f, const csp_error_t *err, int style)
{
    if (f == NULL || err == NULL || !style_ok(style))
        return CSP_EINVAL;
    sink_t s = { .f = f };
    flockfile(f);
    format_into(&s, err, style);
    if (style == CSP_ERROR_SHORT || style == CSP_ERROR_CHAIN)
        sink_put(&s, "\n", 1);
    funlockfile(f);
    return 0;
}

/* ---- results ---- */

CSP_EXTERN csp_result_t csp_result_ok(const void *value, size_t size)
{
    csp_result_t r;
    memset(&r, 0, sizeof r);
    if (size > CSP_RESULT_VALUE_MAX) {
        r.err = error_makef(NULL, CSP_EINVAL, __builtin_return_address(0),
                            "csp_result_ok: a value of %zu bytes (at most %d fit)", size,
                            CSP_RESULT_VALUE_MAX);
    } else if (value == NULL && size > 0) {
        r.err = error_makef(NULL, CSP_EINVAL, __builtin_return_address(0),
                            "csp_result_ok: NULL value of %zu bytes", size);
    } else {
        if (size > 0)
            memcpy(r.value.bytes, value, size);
        r.size = size;
    }
    return r;
}

CSP_EXTERN csp_result_t csp_result_ok_ptr(void *p)
{
    csp_result_t r;
    memset(&r, 0, sizeof r);
    r.value.ptr = p;
    r.size = sizeof p;
    return r;
}

CSP_EXTERN csp_result_t csp_result_err(csp_error_t *err)
{
    csp_result_t r;
    memset(&r, 0, sizeof r);
    r.err = err ? err
                : error_makef(NULL, CSP_EINVAL, __builtin_return_address(0),
                              "csp_result_err: NULL error");
    return r;
}

CSP_EXTERN int csp_result_is_ok(const csp_result_t *r)
{
    return r != NULL && r->err == NULL;
}

CSP_EXTERN int csp_result_get(const csp_result_t *r, void *out, size_t size)
{
    if (r == NULL || out == NULL || r->err != NULL || size != r->size ||
        size > CSP_RESULT_VALUE_MAX)
        return CSP_EINVAL;
    memcpy(out, r->value.bytes, size);
    return 0;
}

CSP_EXTERN csp_error_t *csp_result_take_err(csp_result_t *r)
{
    if (r == NULL)
        return NULL;
    csp_error_t *e = r->err;
    r->err = NULL;
    return e;
}

CSP_EXTERN void csp_result_clear(csp_result_t *r)
{
    if (r == NULL)
        return;
    csp_error_release(r->err);
    memset(r, 0, sizeof *r);
}
