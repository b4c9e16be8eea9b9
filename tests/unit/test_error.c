/* ctest-timeout: 120 */
/* csp_error_t and csp_result_t (include/csp/error.h): construction (code,
 * printf message, NULL fmt, errno kept, long messages cut, UTC time, log id,
 * the stack starting at the creating call), wrap chains 3 deep (inner, root,
 * depth, is, find, walk, the shared log id, iterative release of a deep chain
 * on a task stack), the formats (short, chain, detailed, long with symbolised
 * frames, snprintf-style truncation, fprint), the task id and name in tasks vs
 * 0 on plain threads, log ids unique and increasing across concurrent
 * creators, one error formatted by many tasks at once (the lazy symbol
 * cache), results through channels both ways (untyped and typed, buffered and
 * not, ownership on failed sends, the book's checkStatus with a done
 * channel), out-of-memory behaviour (through the library's allocation
 * failure hook), and NULL / bad arguments. Run under ASan: every error
 * created here must be released (the leak check verifies the ownership
 * rules).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"

#include "task_join.h"

/* The library's test hook (src/patterns/error.c, hidden in libcsp.so): the
 * next n allocations of errors or symbol tables fail. */
void csp__error_fail_allocs(int n);

/* ------------------------------------------------------------------------ */
/* helpers                                                                    */

static int64_t realtime_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static size_t count_of(const char *hay, const char *needle)
{
    size_t n = 0, len = strlen(needle);
    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + len, needle))
        n++;
    return n;
}

/* The whole text of err in style, malloc'ed (checked with cmocka: test
 * thread only). */
static char *format_alloc(const csp_error_t *err, int style)
{
    int n = csp_error_format(err, style, NULL, 0);
    assert_true(n >= 0);
    char *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    memset(buf, '#', (size_t)n + 1);
    assert_int_equal(csp_error_format(err, style, buf, (size_t)n + 1), n);
    assert_int_equal(strlen(buf), (size_t)n);
    return buf;
}

/* As format_alloc, for tasks: NULL on failure (recorded with TCHECK). */
static char *format_alloc_task(const csp_error_t *err, int style)
{
    int n = csp_error_format(err, style, NULL, 0);
    TCHECK(n >= 0);
    if (n < 0)
        return NULL;
    char *buf = malloc((size_t)n + 1);
    TCHECK(buf != NULL);
    if (buf == NULL)
        return NULL;
    TCHECK_EQ(csp_error_format(err, style, buf, (size_t)n + 1), n);
    TCHECK_EQ(strlen(buf), n);
    return buf;
}

/* True if the address p lies in the first `span` bytes of function fn. */
static int in_function(void *p, void (*fn)(void), size_t span)
{
    uintptr_t a = (uintptr_t)p, f = (uintptr_t)fn;
    return a > f && a < f + span;
}
#define FN_SPAN 2048

/* Error constructors called from known functions: their first frame must be
 * in them. The empty asm after the call keeps the call from being a tail
 * call (which would make the caller's caller the first frame). */
static __attribute__((noinline, noclone)) csp_error_t *make_here(int code, int x)
{
    csp_error_t *e = csp_error_new(code, "made here: %d", x);
    __asm__ __volatile__("" ::: "memory");
    return e;
}

static __attribute__((noinline, noclone)) csp_error_t *wrap_here(csp_error_t *inner)
{
    csp_error_t *e = csp_error_wrap(inner, 9, "wrapped here");
    __asm__ __volatile__("" ::: "memory");
    return e;
}

static __attribute__((noinline, noclone)) csp_result_t bad_result_here(void)
{
    char big[CSP_RESULT_VALUE_MAX + 1] = { 0 };
    csp_result_t r = csp_result_ok(big, sizeof big);
    __asm__ __volatile__("" ::: "memory");
    return r;
}

static __attribute__((format(printf, 2, 3))) csp_error_t *new_via_v(int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    csp_error_t *e = csp_error_newv(code, fmt, ap);
    va_end(ap);
    return e;
}

static __attribute__((format(printf, 3, 4))) csp_error_t *wrap_via_v(csp_error_t *inner, int code,
                                                                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    csp_error_t *e = csp_error_wrapv(inner, code, fmt, ap);
    va_end(ap);
    return e;
}

/* ------------------------------------------------------------------------ */
/* construction                                                               */

static void test_new_basic(void **state)
{
    (void)state;
    int64_t before = realtime_ns();
    csp_error_t *e = make_here(42, 7);
    int64_t after = realtime_ns();
    assert_non_null(e);
    assert_int_equal(csp_error_code(e), 42);
    assert_string_equal(csp_error_message(e), "made here: 7");
    assert_null(csp_error_inner(e));
    assert_ptr_equal(csp_error_root(e), e);
    assert_int_equal(csp_error_depth(e), 1);
    /* created on the test's plain thread, no runtime */
    assert_int_equal(csp_error_task_id(e), 0);
    assert_string_equal(csp_error_task_name(e), "");
    /* UTC wall clock at creation */
    assert_true(csp_error_time(e) >= before);
    assert_true(csp_error_time(e) <= after);
    /* the stack starts in make_here, and goes on to this test and beyond */
    void *fr[CSP_ERROR_MAX_FRAMES];
    int n = csp_error_frames(e, fr, CSP_ERROR_MAX_FRAMES);
    assert_true(n >= 2);
    assert_true(n <= CSP_ERROR_MAX_FRAMES);
    assert_true(in_function(fr[0], (void (*)(void))make_here, FN_SPAN));
    /* asking for fewer copies fewer and still tells the total */
    void *one[1] = { NULL };
    assert_int_equal(csp_error_frames(e, one, 1), n);
    assert_ptr_equal(one[0], fr[0]);
    assert_int_equal(csp_error_frames(e, NULL, 0), n);

    /* log ids: nonzero, increasing in creation order on one thread */
    uint64_t id1 = csp_error_log_id(e);
    assert_true(id1 > 0);
    csp_error_t *e2 = new_via_v(-3, "v %s %d", "form", 5);
    assert_string_equal(csp_error_message(e2), "v form 5");
    assert_int_equal(csp_error_code(e2), CSP_ECANCELED);
    assert_true(csp_error_log_id(e2) > id1);
    /* the va_list form's stack starts in its caller too */
    n = csp_error_frames(e2, fr, CSP_ERROR_MAX_FRAMES);
    assert_true(n >= 1);
    assert_true(in_function(fr[0], (void (*)(void))new_via_v, FN_SPAN));

    /* retain/release: the error survives until the last release */
    assert_ptr_equal(csp_error_retain(e), e);
    assert_ptr_equal(csp_error_retain(e), e);
    csp_error_release(e);
    csp_error_release(e);
    assert_string_equal(csp_error_message(e), "made here: 7"); /* ASan: still live */
    csp_error_release(e);
    csp_error_release(e2);

    /* a NULL fmt: libcsp's codes describe themselves, others are empty */
    e = csp_error_new(CSP_ECLOSED, NULL);
    assert_string_equal(csp_error_message(e), "channel closed");
    csp_error_release(e);
    e = csp_error_new(777, NULL);
    assert_string_equal(csp_error_message(e), "");
    csp_error_release(e);

    /* errno survives creation, and %m sees it */
    errno = ENOENT;
    e = csp_error_new(1, "open: %m");
    assert_int_equal(errno, ENOENT);
    char want[128];
    snprintf(want, sizeof want, "open: %s", strerror(ENOENT));
    assert_string_equal(csp_error_message(e), want);
    csp_error_release(e);

    /* a message longer than the first-pass buffer, and one past the limit */
    char *longmsg = malloc(CSP_ERROR_MAX_MESSAGE + 1000);
    assert_non_null(longmsg);
    memset(longmsg, 'x', CSP_ERROR_MAX_MESSAGE + 999);
    longmsg[300] = '\0';
    e = csp_error_new(2, "<%s>", longmsg);
    assert_int_equal(strlen(csp_error_message(e)), 302);
    assert_int_equal(csp_error_message(e)[0], '<');
    assert_int_equal(csp_error_message(e)[301], '>');
    csp_error_release(e);
    longmsg[300] = 'x';
    longmsg[CSP_ERROR_MAX_MESSAGE + 999] = '\0';
    e = csp_error_new(2, "%s", longmsg);
    assert_int_equal(strlen(csp_error_message(e)), CSP_ERROR_MAX_MESSAGE);
    assert_int_equal(strspn(csp_error_message(e), "x"), CSP_ERROR_MAX_MESSAGE);
    csp_error_release(e);
    free(longmsg);
}

/* ------------------------------------------------------------------------ */
/* chains                                                                     */

struct walk_rec {
    int codes[8];
    size_t depths[8];
    int n;
    int stop_at; /* depth at which to return 7, or -1 */
};

static int walk_fn(const csp_error_t *layer, size_t depth, void *arg)
{
    struct walk_rec *w = arg;
    if (w->n < 8) {
        w->codes[w->n] = csp_error_code(layer);
        w->depths[w->n] = depth;
    }
    w->n++;
    return (int)depth == w->stop_at ? 7 : 0;
}

static void test_wrap_chain(void **state)
{
    (void)state;
    csp_error_t *root = csp_error_new(CSP_ECLOSED, "root %s", "cause");
    uint64_t id = csp_error_log_id(root);
    csp_error_t *mid = wrap_via_v(root, 100, "mid %d", 2);
    csp_error_t *top = wrap_here(mid);

    assert_ptr_equal(csp_error_inner(top), mid);
    assert_ptr_equal(csp_error_inner(mid), root);
    assert_null(csp_error_inner(root));
    assert_ptr_equal(csp_error_root(top), root);
    assert_ptr_equal(csp_error_root(mid), root);
    assert_int_equal(csp_error_depth(top), 3);
    assert_int_equal(csp_error_depth(mid), 2);
    assert_int_equal(csp_error_code(top), 9);
    assert_string_equal(csp_error_message(mid), "mid 2");

    /* is / find walk the chain, from the layer asked down */
    assert_true(csp_error_is(top, 9));
    assert_true(csp_error_is(top, 100));
    assert_true(csp_error_is(top, CSP_ECLOSED));
    assert_false(csp_error_is(top, 300));
    assert_false(csp_error_is(mid, 9));
    assert_ptr_equal(csp_error_find(top, 100), mid);
    assert_ptr_equal(csp_error_find(top, CSP_ECLOSED), root);
    assert_ptr_equal(csp_error_find(top, 9), top);
    assert_null(csp_error_find(top, 12345));

    /* the chain shares the root's log id */
    assert_int_equal(csp_error_log_id(mid), id);
    assert_int_equal(csp_error_log_id(top), id);

    /* each layer has its own stack: the wrapper's starts in wrap_here */
    void *fr[CSP_ERROR_MAX_FRAMES];
    assert_true(csp_error_frames(top, fr, CSP_ERROR_MAX_FRAMES) >= 2);
    assert_true(in_function(fr[0], (void (*)(void))wrap_here, FN_SPAN));
    assert_true(csp_error_frames(mid, fr, CSP_ERROR_MAX_FRAMES) >= 2);
    assert_true(in_function(fr[0], (void (*)(void))wrap_via_v, FN_SPAN));

    /* walk: outermost first, with depths; stops on a non-zero return */
    struct walk_rec w = { .stop_at = -1 };
    assert_int_equal(csp_error_walk(top, walk_fn, &w), 0);
    assert_int_equal(w.n, 3);
    assert_int_equal(w.codes[0], 9);
    assert_int_equal(w.codes[1], 100);
    assert_int_equal(w.codes[2], CSP_ECLOSED);
    for (int i = 0; i < 3; i++)
        assert_int_equal(w.depths[i], (size_t)i);
    struct walk_rec w2 = { .stop_at = 1 };
    assert_int_equal(csp_error_walk(top, walk_fn, &w2), 7);
    assert_int_equal(w2.n, 2);

    /* keep the middle alive past the top: retain before releasing */
    csp_error_retain(mid);
    csp_error_release(top); /* frees top only */
    assert_string_equal(csp_error_message(mid), "mid 2");
    assert_string_equal(csp_error_message(csp_error_root(mid)), "root cause");
    csp_error_release(mid); /* frees mid and root */

    /* wrapping nothing: a fresh id, no inner */
    csp_error_t *lone = csp_error_wrap(NULL, 5, "lone");
    assert_null(csp_error_inner(lone));
    assert_true(csp_error_log_id(lone) > id);
    /* a caller-set id is inherited by later wrappers */
    assert_int_equal(csp_error_set_log_id(lone, 424242), 0);
    assert_int_equal(csp_error_log_id(lone), 424242);
    csp_error_t *outer = csp_error_wrap(lone, 6, "outer");
    assert_int_equal(csp_error_log_id(outer), 424242);
    /* an empty message is allowed */
    csp_error_t *empty = csp_error_wrap(outer, 7, "%s", "");
    assert_string_equal(csp_error_message(empty), "");
    assert_int_equal(csp_error_depth(empty), 3);
    csp_error_release(empty);
}

/* A chain far deeper than a task stack could release recursively. */
static int deep_n;
static csp_wg_t deep_wg;

static void deep_chain_task(void *arg)
{
    (void)arg;
    csp_error_t *e = NULL;
    for (int i = 0; i < deep_n; i++)
        e = csp_error_wrap(e, i, "layer %d", i);
    TCHECK_EQ(csp_error_depth(e), deep_n);
    TCHECK_EQ(csp_error_code(csp_error_root(e)), 0);
    TCHECK(csp_error_is(e, deep_n / 2));
    TCHECK_EQ(csp_error_log_id(csp_error_root(e)), csp_error_log_id(e));
    csp_error_release(e); /* iteratively, on a 64 KiB task stack */
    csp_wg_done(&deep_wg);
}

static void deep_main(void *arg)
{
    (void)arg;
    csp_task_opts_t o = { .stack_size = 64 * 1024, .name = "deep" };
    csp_wg_add(&deep_wg, 1);
    int rc = csp_go_opts(deep_chain_task, NULL, &o);
    TCHECK_EQ(rc, 0);
    if (rc != 0)
        csp_wg_done(&deep_wg);
    TCHECK_EQ(csp_wg_wait(&deep_wg), 0);
}

static void test_deep_chain(void **state)
{
    (void)state;
    deep_n = CSP_TEST_SCALE(20000);
    T_RUN(deep_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* formats                                                                    */

/* The timestamp the long form prints for an error, computed independently. */
static void iso_time(const csp_error_t *e, char *out, size_t size)
{
    int64_t ns = csp_error_time(e);
    time_t sec = (time_t)(ns / 1000000000);
    struct tm tm;
    assert_non_null(gmtime_r(&sec, &tm));
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)(ns % 1000000000 / 1000));
}

static void test_format(void **state)
{
    (void)state;
    csp_error_t *root = csp_error_new(CSP_ECLOSED, "root cause");
    csp_error_t *mid = csp_error_wrap(root, 100, "mid %d", 2);
    csp_error_t *top = csp_error_wrap(mid, 200, "top");

    /* short: the outermost message, snprintf-style */
    char buf[64];
    assert_int_equal(csp_error_format_short(top, buf, sizeof buf), 3);
    assert_string_equal(buf, "top");
    assert_int_equal(csp_error_format(top, CSP_ERROR_SHORT, NULL, 0), 3);
    char small[3] = { 'Z', 'Z', 'Z' };
    assert_int_equal(csp_error_format_short(top, small, sizeof small), 3);
    assert_string_equal(small, "to");
    char one[1] = { 'Z' };
    assert_int_equal(csp_error_format_short(top, one, 1), 3);
    assert_int_equal(one[0], '\0');

    /* chain: every message, ": "-joined; empty ones skipped */
    char *chain = format_alloc(top, CSP_ERROR_CHAIN);
    assert_string_equal(chain, "top: mid 2: root cause");
    csp_error_t *blank = csp_error_wrap(csp_error_retain(mid), 300, "%s", "");
    char *chain2 = format_alloc(blank, CSP_ERROR_CHAIN);
    assert_string_equal(chain2, "mid 2: root cause");
    csp_error_release(blank); /* and the reference to mid it took */
    free(chain2);
    /* cut chain: the prefix, NUL-terminated, and the full length */
    memset(buf, 'Z', sizeof buf);
    assert_int_equal(csp_error_format(top, CSP_ERROR_CHAIN, buf, 8), (int)strlen(chain));
    assert_string_equal(buf, "top: mi");

    /* long: header, every layer (code name, message, time, thread), stacks */
    char *l = format_alloc(top, CSP_ERROR_LONG);
    char want[256];
    snprintf(want, sizeof want, "[logID: %llu]: error with 3 layers, outermost first:\n",
             (unsigned long long)csp_error_log_id(top));
    assert_int_equal(strncmp(l, want, strlen(want)), 0);
    const char *p0 = strstr(l, "\n  [0] code 200: top\n");
    const char *p1 = strstr(l, "\n  [1] code 100: mid 2\n");
    const char *p2 = strstr(l, "\n  [2] CSP_ECLOSED (-1): root cause\n");
    assert_non_null(p0);
    assert_non_null(p1);
    assert_non_null(p2);
    assert_true(p0 < p1 && p1 < p2);
    const csp_error_t *layers[3] = { top, mid, root };
    size_t frames = 0;
    for (int i = 0; i < 3; i++) {
        char ts[64];
        iso_time(layers[i], ts, sizeof ts);
        snprintf(want, sizeof want, "      at %s, plain thread\n", ts);
        assert_non_null(strstr(l, want));
        int n = csp_error_frames(layers[i], NULL, 0);
        assert_true(n >= 2);
        frames += (size_t)n;
        snprintf(want, sizeof want, "      stack (%d frames):\n", n);
        const char *st = strstr(i == 0 ? p0 : i == 1 ? p1 : p2, want);
        assert_non_null(st);
        /* the first frame is symbolised: this test binary (backtrace_symbols
         * names the object; the binary is linked without -rdynamic, so its
         * static functions show as offsets) */
        const char *f0 = st + strlen(want);
        assert_int_equal(strncmp(f0, "        #0  ", 12), 0);
        const char *eol = strchr(f0, '\n');
        assert_non_null(eol);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)(eol - f0), f0);
        assert_non_null(strstr(line, "test_error"));
        assert_non_null(strstr(line, "[0x"));
    }
    assert_int_equal(count_of(l, "      stack ("), 3);
    assert_int_equal(count_of(l, "\n        #"), frames);
    assert_int_equal(l[strlen(l) - 1], '\n');
    /* formatting again gives the same text (symbols cached) */
    char *l2 = format_alloc(top, CSP_ERROR_LONG);
    assert_string_equal(l, l2);
    free(l2);
    assert_int_equal(csp_error_format_long(top, NULL, 0), (int)strlen(l));

    /* detailed: the long form without the stacks */
    char *d = format_alloc(top, CSP_ERROR_DETAILED);
    assert_int_equal(strncmp(d, l, strlen("[logID: ")), 0);
    assert_non_null(strstr(d, "\n  [2] CSP_ECLOSED (-1): root cause\n"));
    assert_int_equal(count_of(d, ", plain thread\n"), 3);
    assert_int_equal(count_of(d, "stack ("), 0);
    assert_int_equal(count_of(d, "\n"), 7); /* header + 3 x (code line, time line) */

    /* fprint: the same texts, one newline at the end of each */
    char *mem = NULL;
    size_t memlen = 0;
    FILE *f = open_memstream(&mem, &memlen);
    assert_non_null(f);
    assert_int_equal(csp_error_fprint(f, top, CSP_ERROR_SHORT), 0);
    assert_int_equal(csp_error_fprint(f, top, CSP_ERROR_CHAIN), 0);
    assert_int_equal(csp_error_fprint(f, top, 1), 0); /* "long?" = 1: CSP_ERROR_LONG */
    assert_int_equal(csp_error_fprint(f, top, CSP_ERROR_DETAILED), 0);
    assert_int_equal(fclose(f), 0);
    size_t total = strlen(chain) + strlen(l) + strlen(d) + 7;
    char *all = malloc(total);
    assert_non_null(all);
    snprintf(all, total, "top\n%s\n%s%s", chain, l, d);
    assert_string_equal(mem, all);
    free(all);
    free(mem);
    free(d);
    free(l);
    free(chain);
    csp_error_release(top);
}

/* ------------------------------------------------------------------------ */
/* task ids                                                                   */

static csp_wg_t ti_wg;
static _Atomic uint64_t ti_child_id;
static csp_error_t *ti_child_err;

static void ti_child(void *arg)
{
    (void)arg;
    atomic_store(&ti_child_id, csp_task_id());
    ti_child_err = csp_error_new(3, "in child");
    csp_wg_done(&ti_wg);
}

static void *ti_thread(void *arg)
{
    *(csp_error_t **)arg = csp_error_new(4, "on a plain thread");
    return NULL;
}

static void ti_check_child(const char *name)
{
    uint64_t cid = atomic_load(&ti_child_id);
    TCHECK(cid != 0);
    TCHECK(cid != csp_task_id());
    TCHECK_EQ(csp_error_task_id(ti_child_err), cid);
    TCHECK(strcmp(csp_error_task_name(ti_child_err), name) == 0);
    char *d = format_alloc_task(ti_child_err, CSP_ERROR_DETAILED);
    char want[128];
    if (name[0] != '\0')
        snprintf(want, sizeof want, ", task %llu (%s)\n", (unsigned long long)cid, name);
    else
        snprintf(want, sizeof want, ", task %llu\n", (unsigned long long)cid);
    TCHECK(d != NULL && strstr(d, want) != NULL);
    free(d);
    csp_error_release(ti_child_err);
    ti_child_err = NULL;
}

static void ti_main(void *arg)
{
    (void)arg;
    csp_error_t *e = csp_error_new(1, "in main");
    TCHECK(csp_task_id() != 0);
    TCHECK_EQ(csp_error_task_id(e), csp_task_id());
    TCHECK(strcmp(csp_error_task_name(e), "main") == 0);
    char *d = format_alloc_task(e, CSP_ERROR_DETAILED);
    char want[128];
    snprintf(want, sizeof want, ", task %llu (main)\n", (unsigned long long)csp_task_id());
    TCHECK(d != NULL && strstr(d, want) != NULL);
    free(d);
    csp_error_release(e);

    /* a named child task, then an unnamed one */
    csp_task_opts_t o = { .name = "erroring" };
    csp_wg_add(&ti_wg, 1);
    TCHECK_EQ(csp_go_opts(ti_child, NULL, &o), 0);
    TCHECK_EQ(csp_wg_wait(&ti_wg), 0);
    ti_check_child("erroring");
    csp_wg_add(&ti_wg, 1);
    TCHECK_EQ(csp_go(ti_child, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&ti_wg), 0);
    ti_check_child("");

    /* a plain thread while the runtime runs: task id 0 */
    pthread_t th;
    csp_error_t *te = NULL;
    TCHECK_EQ(pthread_create(&th, NULL, ti_thread, &te), 0);
    TCHECK_EQ(pthread_join(th, NULL), 0);
    TCHECK(te != NULL);
    TCHECK_EQ(csp_error_task_id(te), 0);
    TCHECK(strcmp(csp_error_task_name(te), "") == 0);
    csp_error_release(te);
}

static void test_task_id(void **state)
{
    (void)state;
    /* the test's own thread, no runtime */
    csp_error_t *e = csp_error_new(1, "no runtime");
    assert_int_equal(csp_error_task_id(e), 0);
    csp_error_release(e);
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(ti_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    /* a plain thread while a runtime runs (csp_init keeps the caller) */
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    e = csp_error_new(1, "plain thread, runtime up");
    assert_int_equal(csp_error_task_id(e), 0);
    csp_error_release(e);
    csp_shutdown();
}

/* ------------------------------------------------------------------------ */
/* log ids across concurrent creators                                         */

#define LI_TASKS 8
static int li_per;
static uint64_t *li_ids;
static csp_wg_t li_wg;

static void li_task(void *arg)
{
    int t = (int)(intptr_t)arg;
    uint64_t prev = 0, me = csp_task_id();
    for (int i = 0; i < li_per; i++) {
        csp_error_t *e = csp_error_new(t, "task %d error %d", t, i);
        uint64_t id = csp_error_log_id(e);
        TCHECK(id > prev); /* increasing in each creator's order */
        TCHECK_EQ(csp_error_task_id(e), me);
        prev = id;
        li_ids[(size_t)t * (size_t)li_per + (size_t)i] = id;
        csp_error_release(e);
        if ((i & 63) == 0)
            csp_yield();
    }
    csp_wg_done(&li_wg);
}

static void li_main(void *arg)
{
    (void)arg;
    for (int t = 0; t < LI_TASKS; t++) {
        csp_wg_add(&li_wg, 1);
        TCHECK_EQ(csp_go(li_task, (void *)(intptr_t)t), 0);
    }
    TCHECK_EQ(csp_wg_wait(&li_wg), 0);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_log_ids_concurrent(void **state)
{
    (void)state;
    li_per = CSP_TEST_SCALE(10000);
    size_t n = (size_t)LI_TASKS * (size_t)li_per;
    li_ids = calloc(n, sizeof *li_ids);
    assert_non_null(li_ids);
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(li_ids, 0, n * sizeof *li_ids);
        T_RUN(li_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        /* unique: nothing else creates errors meanwhile, so the ids are
         * exactly n consecutive numbers */
        qsort(li_ids, n, sizeof *li_ids, cmp_u64);
        assert_true(li_ids[0] > 0);
        for (size_t i = 1; i < n; i++)
            if (li_ids[i] != li_ids[i - 1] + 1)
                fail_msg("log ids %llu and %llu at %zu: duplicate or gap",
                         (unsigned long long)li_ids[i - 1], (unsigned long long)li_ids[i], i);
    }
    free(li_ids);
}

/* ------------------------------------------------------------------------ */
/* one error formatted by many tasks at once                                  */

#define SF_TASKS 6
static char *sf_out[SF_TASKS];
static csp_wg_t sf_wg;

CSP_TASK(sf_task, (int, slot), (csp_error_t *, e))
{
    sf_out[slot] = format_alloc_task(e, CSP_ERROR_LONG); /* races the symbol cache */
    csp_error_release(e); /* this task's own reference */
    csp_wg_done(&sf_wg);
}

static void sf_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 3; round++) {
        csp_error_t *e = csp_error_wrap(csp_error_new(1, "shared root %d", round), 2,
                                        "shared %d", round);
        for (int t = 0; t < SF_TASKS; t++) {
            csp_wg_add(&sf_wg, 1);
            TCHECK_EQ(CSP_GO(sf_task, t, csp_error_retain(e)), 0);
        }
        csp_error_release(e); /* the tasks keep it alive */
        TCHECK_EQ(csp_wg_wait(&sf_wg), 0);
        for (int t = 0; t < SF_TASKS; t++) {
            TCHECK(sf_out[t] != NULL);
            if (sf_out[t] == NULL || sf_out[0] == NULL)
                continue;
            TCHECK(strcmp(sf_out[t], sf_out[0]) == 0); /* every task saw the same table */
            TCHECK(strstr(sf_out[t], "test_error") != NULL);
            TCHECK_EQ(count_of(sf_out[t], "      stack ("), 2);
        }
        for (int t = 0; t < SF_TASKS; t++) {
            free(sf_out[t]);
            sf_out[t] = NULL;
        }
    }
}

static void test_shared_format(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        T_RUN(sf_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* results through channels                                                   */

static int rc_n;
static _Atomic uint64_t rc_producer_id;

/* Sends rc_n results: every third an error, the others i*i; then closes. */
static void rc_producer(void *arg)
{
    csp_chan_t *ch = arg; /* the producer's own reference */
    atomic_store(&rc_producer_id, csp_task_id());
    for (int i = 0; i < rc_n; i++) {
        csp_result_t r;
        if (i % 3 == 0) {
            r = csp_result_err(csp_error_new(1000 + i, "item %d failed", i));
        } else {
            int64_t v = (int64_t)i * i;
            r = csp_result_ok(&v, sizeof v);
        }
        int rc = csp_chan_send(ch, &r);
        TCHECK_EQ(rc, 0);
        if (rc != 0)
            csp_result_clear(&r); /* not delivered: still ours */
    }
    TCHECK_EQ(csp_chan_close(ch), 0);
    csp_chan_release(ch);
}

static void rc_main(void *arg)
{
    size_t cap = *(const size_t *)arg;
    csp_chan_t *ch = csp_chan_make(sizeof(csp_result_t), cap);
    TCHECK(ch != NULL);
    if (ch == NULL)
        return;
    TCHECK_EQ(go_joined(rc_producer, csp_chan_retain(ch)), 0);
    csp_result_t r;
    int i = 0;
    while (csp_chan_recv(ch, &r) == 0) {
        if (i % 3 == 0) {
            TCHECK(!csp_result_is_ok(&r));
            TCHECK_EQ(csp_error_code(r.err), 1000 + i);
            char want[64];
            snprintf(want, sizeof want, "item %d failed", i);
            TCHECK(strcmp(csp_error_message(r.err), want) == 0);
            TCHECK_EQ(csp_error_task_id(r.err), atomic_load(&rc_producer_id));
            if (i % 2 == 0) {
                csp_result_clear(&r); /* the receiver owns it: release */
                TCHECK(r.err == NULL);
            } else {
                /* or take it over and wrap it (the wrapper owns it then) */
                csp_error_t *e = csp_result_take_err(&r);
                TCHECK(r.err == NULL);
                e = csp_error_wrap(e, 1, "consumer saw %d", i);
                TCHECK_EQ(csp_error_depth(e), 2);
                TCHECK(csp_error_is(e, 1000 + i));
                csp_error_release(e);
            }
        } else {
            int64_t v = -1;
            int32_t narrow;
            TCHECK(csp_result_is_ok(&r));
            TCHECK_EQ(r.size, sizeof v);
            TCHECK_EQ(csp_result_get(&r, &v, sizeof v), 0);
            TCHECK_EQ(v, (int64_t)i * i);
            TCHECK_EQ(csp_result_get(&r, &narrow, sizeof narrow), CSP_EINVAL);
            TCHECK(csp_result_take_err(&r) == NULL);
        }
        i++;
    }
    TCHECK_EQ(i, rc_n);
    /* closed and drained: a zero-filled result */
    memset(&r, 0xab, sizeof r);
    TCHECK_EQ(csp_chan_recv(ch, &r), CSP_ECLOSED);
    TCHECK(r.err == NULL);
    TCHECK_EQ(r.size, 0);
    /* a send that fails leaves the error with the sender */
    csp_result_t f = csp_result_err(csp_error_new(5, "never delivered"));
    TCHECK_EQ(csp_chan_send(ch, &f), CSP_ECLOSED);
    TCHECK(f.err != NULL && csp_error_code(f.err) == 5);
    csp_result_clear(&f);
    TCHECK(f.err == NULL);
    csp_chan_release(ch);
}

/* Typed results: CSP_RESULT_DECLARE's type, helpers and channel. */
CSP_RESULT_DECLARE(int_result, int);

static void tr_producer(void *arg)
{
    int_result_chan_t ch = { arg };
    for (int i = 0; i < rc_n; i++) {
        int_result_t r = (i % 4 == 0) ? int_result_err(csp_error_new(i, "typed %d", i))
                                      : int_result_ok(i * 7);
        int rc = int_result_chan_send(ch, r);
        TCHECK_EQ(rc, 0);
        if (rc != 0)
            int_result_clear(&r);
    }
    int_result_chan_close(ch);
    int_result_chan_release(ch);
}

static void tr_main(void *arg)
{
    size_t cap = *(const size_t *)arg;
    int_result_chan_t ch = int_result_chan_make(cap);
    TCHECK(ch.c != NULL);
    if (ch.c == NULL)
        return;
    TCHECK_EQ(csp_chan_elem_size(ch.c), sizeof(int_result_t));
    TCHECK_EQ(go_joined(tr_producer, int_result_chan_retain(ch).c), 0);
    int_result_chan_recv_only_t in = int_result_chan_recv_only(ch); /* <-chan */
    int_result_t r;
    int i = 0;
    while (int_result_chan_ro_recv(in, &r) == 0) {
        if (i % 4 == 0) {
            TCHECK(!int_result_is_ok(&r));
            TCHECK_EQ(csp_error_code(r.err), i);
            csp_error_t *e = int_result_take_err(&r);
            TCHECK(r.err == NULL);
            csp_error_release(e);
        } else {
            TCHECK(int_result_is_ok(&r));
            TCHECK_EQ(r.value, i * 7);
        }
        int_result_clear(&r);
        i++;
    }
    TCHECK_EQ(i, rc_n);
    int_result_chan_release(ch);
}

static void test_result_channel(void **state)
{
    (void)state;
    rc_n = CSP_TEST_SCALE(3000);
    static const size_t caps[] = { 0, 1, 16 };
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        for (size_t c = 0; c < sizeof caps / sizeof caps[0]; c++) {
            J_RUN(rc_main, (void *)&caps[c], tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
            J_RUN(tr_main, (void *)&caps[c], tc_worker_counts[w], CSP_SPAWN_CHILD_FIRST);
        }
    }
    /* the typed helpers' edge cases */
    int_result_t r = int_result_err(NULL); /* a bug in the caller: still a failure */
    assert_false(int_result_is_ok(&r));
    assert_int_equal(csp_error_code(r.err), CSP_EINVAL);
    int_result_clear(&r);
    assert_null(r.err);
    assert_false(int_result_is_ok(NULL));
    assert_null(int_result_take_err(NULL));
    int_result_clear(NULL);
    r = int_result_ok(5);
    assert_true(int_result_is_ok(&r));
    assert_null(int_result_take_err(&r));
    assert_int_equal(r.value, 5);
}

/* The book's checkStatus: the consumer stops after 3 errors and closes done;
 * the producer drops (clears) the result it could not deliver, and the
 * consumer drains and clears what was still in flight. */
typedef struct {
    int  status;
    char name[16];
} cs_resp_t;
CSP_RESULT_DECLARE(cs_result, cs_resp_t);

static const char *const cs_names[] = { "bad1", "ok1", "bad2", "bad3", "ok2",
                                        "bad4", "ok3",  "bad5", "ok4" };
#define CS_N ((int)(sizeof cs_names / sizeof cs_names[0]))
static atomic_int cs_sent, cs_dropped;
static csp_wg_t cs_wg;

static cs_result_t cs_fetch(const char *name)
{
    if (strncmp(name, "bad", 3) == 0)
        return cs_result_err(csp_error_new(404, "fetch %s: not found", name));
    cs_resp_t resp = { .status = 200 };
    snprintf(resp.name, sizeof resp.name, "%s", name);
    return cs_result_ok(resp);
}

CSP_TASK(cs_producer, (csp_chan_t *, done), (cs_result_chan_t, results))
{
    for (int i = 0; i < CS_N; i++) {
        cs_result_t r = cs_fetch(cs_names[i]);
        csp_case_t cases[] = {
            CSP_RECV_CASE(done, NULL),
            CSP_SEND_CASE(results.c, &r),
        };
        int k = csp_select(cases, 2, CSP_FOREVER);
        if (k != 1) { /* done (or a failure): the result was not delivered */
            TCHECK_EQ(k, 0);
            cs_result_clear(&r);
            atomic_fetch_add(&cs_dropped, 1);
            break;
        }
        TCHECK_EQ(cases[1].status, 0);
        atomic_fetch_add(&cs_sent, 1);
    }
    cs_result_chan_close(results);
    cs_result_chan_release(results);
    csp_chan_release(done);
    csp_wg_done(&cs_wg);
}

static void cs_main(void *arg)
{
    size_t cap = *(const size_t *)arg;
    atomic_store(&cs_sent, 0);
    atomic_store(&cs_dropped, 0);
    csp_chan_t *done = csp_chan_make(0, 0);
    cs_result_chan_t results = cs_result_chan_make(cap);
    TCHECK(done != NULL && results.c != NULL);
    csp_wg_add(&cs_wg, 1);
    TCHECK_EQ(CSP_GO(cs_producer, csp_chan_retain(done), cs_result_chan_retain(results)), 0);
    int errs = 0, oks = 0, received = 0;
    cs_result_t r;
    while (cs_result_chan_recv(results, &r) == 0) {
        received++;
        if (!cs_result_is_ok(&r)) {
            errs++;
            TCHECK_EQ(csp_error_code(r.err), 404);
            cs_result_clear(&r);
            if (errs >= 3)
                break; /* "Too many errors, breaking!" */
            continue;
        }
        oks++;
        TCHECK_EQ(r.value.status, 200);
        TCHECK(strncmp(r.value.name, "ok", 2) == 0);
    }
    TCHECK_EQ(errs, 3);
    TCHECK_EQ(oks, 1);
    TCHECK_EQ(received, 4);
    csp_chan_close(done); /* defer close(done) */
    int drained = 0;
    while (cs_result_chan_recv(results, &r) == 0) {
        drained++;
        cs_result_clear(&r);
    }
    TCHECK_EQ(csp_wg_wait(&cs_wg), 0);
    TCHECK_EQ(atomic_load(&cs_sent), received + drained);
    TCHECK(atomic_load(&cs_dropped) <= 1);
    TCHECK(atomic_load(&cs_sent) + atomic_load(&cs_dropped) <= CS_N);
    cs_result_chan_release(results);
    csp_chan_release(done);
}

static void test_check_status(void **state)
{
    (void)state;
    static const size_t caps[] = { 0, 2 };
    for (int rep = 0; rep < 5; rep++)
        for (int w = 0; w < TC_NWORKER_COUNTS; w++)
            for (size_t c = 0; c < 2; c++)
                T_RUN(cs_main, (void *)&caps[c], tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* untyped result helpers                                                     */

static void test_result_values(void **state)
{
    (void)state;
    /* a full-size value round-trips; unused bytes of a small one are zero */
    unsigned char big[CSP_RESULT_VALUE_MAX], back[CSP_RESULT_VALUE_MAX];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 13 + 1);
    csp_result_t r = csp_result_ok(big, sizeof big);
    assert_true(csp_result_is_ok(&r));
    assert_int_equal(r.size, sizeof big);
    assert_int_equal(csp_result_get(&r, back, sizeof back), 0);
    assert_memory_equal(back, big, sizeof big);
    int32_t x = -5;
    r = csp_result_ok(&x, sizeof x);
    for (size_t i = sizeof x; i < CSP_RESULT_VALUE_MAX; i++)
        assert_int_equal(r.value.bytes[i], 0);
    /* no value at all */
    r = csp_result_ok(NULL, 0);
    assert_true(csp_result_is_ok(&r));
    assert_int_equal(r.size, 0);
    /* a pointer */
    r = csp_result_ok_ptr(&x);
    assert_ptr_equal(r.value.ptr, &x);
    assert_int_equal(r.size, sizeof(void *));
    void *p = NULL;
    assert_int_equal(csp_result_get(&r, &p, sizeof p), 0);
    assert_ptr_equal(p, &x);

    /* bad values become CSP_EINVAL error results, never truncated values;
     * the error's stack starts at the call */
    r = bad_result_here();
    assert_false(csp_result_is_ok(&r));
    assert_int_equal(csp_error_code(r.err), CSP_EINVAL);
    void *fr[1];
    assert_true(csp_error_frames(r.err, fr, 1) >= 1);
    assert_true(in_function(fr[0], (void (*)(void))bad_result_here, FN_SPAN));
    assert_int_equal(csp_result_get(&r, back, 0), CSP_EINVAL); /* no value in a failure */
    csp_result_clear(&r);
    r = csp_result_ok(NULL, 4);
    assert_int_equal(csp_error_code(r.err), CSP_EINVAL);
    csp_result_clear(&r);
    r = csp_result_err(NULL);
    assert_false(csp_result_is_ok(&r));
    assert_int_equal(csp_error_code(r.err), CSP_EINVAL);
    csp_error_t *e = csp_result_take_err(&r);
    assert_non_null(e);
    assert_null(r.err);
    assert_null(csp_result_take_err(&r));
    csp_error_release(e);
}

/* ------------------------------------------------------------------------ */
/* NULL and bad arguments                                                     */

static int never_fn(const csp_error_t *layer, size_t depth, void *arg)
{
    (void)layer;
    (void)depth;
    *(int *)arg += 1;
    return 0;
}

static void test_bad_args(void **state)
{
    (void)state;
    assert_null(csp_error_retain(NULL));
    csp_error_release(NULL);
    assert_int_equal(csp_error_code(NULL), 0);
    assert_null(csp_error_message(NULL));
    assert_null(csp_error_inner(NULL));
    assert_null(csp_error_root(NULL));
    assert_int_equal(csp_error_depth(NULL), 0);
    assert_int_equal(csp_error_task_id(NULL), 0);
    assert_null(csp_error_task_name(NULL));
    assert_int_equal(csp_error_time(NULL), 0);
    assert_int_equal(csp_error_log_id(NULL), 0);
    assert_int_equal(csp_error_set_log_id(NULL, 1), CSP_EINVAL);
    assert_int_equal(csp_error_is(NULL, 0), 0);
    assert_null(csp_error_find(NULL, 0));
    int calls = 0;
    assert_int_equal(csp_error_walk(NULL, never_fn, &calls), 0);
    assert_int_equal(calls, 0);

    csp_error_t *e = csp_error_new(1, "x");
    uint64_t id = csp_error_log_id(e);
    assert_int_equal(csp_error_set_log_id(e, 0), CSP_EINVAL);
    assert_int_equal(csp_error_log_id(e), id);
    assert_int_equal(csp_error_walk(e, NULL, NULL), CSP_EINVAL);
    void *fr[4];
    assert_int_equal(csp_error_frames(NULL, fr, 4), CSP_EINVAL);
    assert_int_equal(csp_error_frames(e, NULL, 4), CSP_EINVAL);
    assert_int_equal(csp_error_frames(e, fr, -1), CSP_EINVAL);

    char buf[16] = "unchanged";
    assert_int_equal(csp_error_format(NULL, CSP_ERROR_SHORT, buf, sizeof buf), CSP_EINVAL);
    assert_int_equal(csp_error_format(e, CSP_ERROR_SHORT, NULL, sizeof buf), CSP_EINVAL);
    assert_int_equal(csp_error_format(e, 99, buf, sizeof buf), CSP_EINVAL);
    assert_int_equal(csp_error_format(e, -1, buf, sizeof buf), CSP_EINVAL);
    assert_string_equal(buf, "unchanged");
    assert_int_equal(csp_error_format_short(NULL, buf, sizeof buf), CSP_EINVAL);
    assert_int_equal(csp_error_format_long(NULL, buf, sizeof buf), CSP_EINVAL);
    assert_int_equal(csp_error_fprint(NULL, e, CSP_ERROR_SHORT), CSP_EINVAL);
    assert_int_equal(csp_error_fprint(stdout, NULL, CSP_ERROR_SHORT), CSP_EINVAL);
    assert_int_equal(csp_error_fprint(stdout, e, 4), CSP_EINVAL);
    csp_error_release(e);

    assert_int_equal(csp_result_is_ok(NULL), 0);
    int64_t v = 0;
    assert_int_equal(csp_result_get(NULL, &v, sizeof v), CSP_EINVAL);
    csp_result_t r = csp_result_ok(&v, sizeof v);
    assert_int_equal(csp_result_get(&r, NULL, sizeof v), CSP_EINVAL);
    assert_null(csp_result_take_err(NULL));
    csp_result_clear(NULL);
}

/* ------------------------------------------------------------------------ */
/* out of memory (the library's allocation-failure hook)                      */

static void test_nomem(void **state)
{
    (void)state;
    /* a constructor never returns NULL: the static CSP_ENOMEM error */
    csp__error_fail_allocs(1);
    csp_error_t *e = csp_error_new(5, "lost %d", 1);
    assert_non_null(e);
    assert_int_equal(csp_error_code(e), CSP_ENOMEM);
    assert_non_null(strstr(csp_error_message(e), "out of memory"));
    assert_int_equal(csp_error_log_id(e), 0);
    assert_int_equal(csp_error_task_id(e), 0);
    assert_int_equal(csp_error_frames(e, NULL, 0), 0);
    assert_int_equal(csp_error_set_log_id(e, 9), CSP_EINVAL);
    assert_ptr_equal(csp_error_retain(e), e);
    csp_error_release(e);
    csp_error_release(e);
    csp_error_release(e); /* immortal: extra releases do nothing */
    char *l = format_alloc(e, CSP_ERROR_LONG);
    assert_non_null(strstr(l, "[logID: none]: error with 1 layer, outermost first:\n"));
    assert_non_null(strstr(l, "  [0] CSP_ENOMEM (-7): out of memory"));
    free(l);
    /* the hook was used up: the next allocation works */
    e = csp_error_new(5, "fine");
    assert_int_equal(csp_error_code(e), 5);

    /* a failed wrap releases inner (ASan: no leak) and is still an error */
    csp__error_fail_allocs(1);
    csp_error_t *w = csp_error_wrap(e, 6, "wrapper");
    assert_int_equal(csp_error_code(w), CSP_ENOMEM);
    assert_null(csp_error_inner(w));
    csp_error_release(w);

    /* a result of a NULL error when memory runs out: still a failure */
    csp__error_fail_allocs(1);
    csp_result_t r = csp_result_err(NULL);
    assert_false(csp_result_is_ok(&r));
    assert_int_equal(csp_error_code(r.err), CSP_ENOMEM);
    csp_result_clear(&r);

    /* symbolising fails: raw addresses; the next format symbolises (so the
     * text may grow between a measuring call and the real one: format into
     * a buffer that is large enough) */
    e = csp_error_new(7, "symbols");
    static char big[1 << 16];
    csp__error_fail_allocs(1);
    int n = csp_error_format(e, CSP_ERROR_LONG, big, sizeof big);
    assert_true(n > 0 && (size_t)n < sizeof big);
    assert_non_null(strstr(big, "        #0  [0x"));
    assert_null(strstr(big, "test_error"));
    int n2 = csp_error_format(e, CSP_ERROR_LONG, big, sizeof big);
    assert_true(n2 > n && (size_t)n2 < sizeof big);
    assert_non_null(strstr(big, "test_error"));
    assert_int_equal(count_of(big, "\n        #"), csp_error_frames(e, NULL, 0));
    csp_error_release(e);
    csp__error_fail_allocs(0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_new_basic),
        cmocka_unit_test(test_wrap_chain),
        cmocka_unit_test(test_deep_chain),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_task_id),
        cmocka_unit_test(test_log_ids_concurrent),
        cmocka_unit_test(test_shared_format),
        cmocka_unit_test(test_result_channel),
        cmocka_unit_test(test_check_status),
        cmocka_unit_test(test_result_values),
        cmocka_unit_test(test_bad_args),
        cmocka_unit_test(test_nomem),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
