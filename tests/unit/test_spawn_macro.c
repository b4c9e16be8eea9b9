/* ctest-timeout: 60 */
/* CSP_TASK / CSP_GO / CSP_GO_OPTS (the one-line, type-checked spawn) and
 * csp_go_copy: arguments of several types arrive intact, are copied at spawn
 * time (the caller may change or drop its own right away), are suitably
 * aligned, and the options (name, stack size, pinned) apply.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"

typedef struct {
    int a;
    char s[13];
    double d;
    uint64_t u;
} point_t;

typedef struct {
    long double ld; /* the most-aligned scalar type */
    int tag;
} wide_t;

static csp_wg_t wg;
static atomic_int ran;

/* ------------------------------------------------------------------------ */
/* several argument types                                                    */

CSP_TASK(mixed, (int, i), (double, d), (const char *, str), (point_t, p), (csp_wg_t *, done))
{
    TCHECK_EQ(i, -42);
    TCHECK(d == 3.25e100);
    TCHECK(str != NULL && strcmp(str, "hello") == 0);
    TCHECK_EQ(p.a, 7);
    TCHECK(strcmp(p.s, "twelve chars") == 0);
    TCHECK(p.d == -0.5);
    TCHECK(p.u == 0xfedcba9876543210ULL);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(done);
}

/* one argument */
CSP_TASK(one_arg, (uint64_t, v))
{
    TCHECK(v == UINT64_MAX - 1);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

/* the maximum: 8 arguments */
CSP_TASK(eight, (char, c), (short, s), (int, i), (long, l), (long long, ll), (float, f),
         (unsigned char, uc), (void *, p))
{
    TCHECK_EQ(c, 'x');
    TCHECK_EQ(s, -1234);
    TCHECK_EQ(i, 1 << 30);
    TCHECK(l == -(1L << 40));
    TCHECK(ll == 1LL << 62);
    TCHECK(f == 1.5f);
    TCHECK_EQ(uc, 250);
    TCHECK(p == &ran);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

/* a struct that needs max alignment */
CSP_TASK(aligned_arg, (wide_t, w), (int, k))
{
    TCHECK(w.ld == (long double)k / 3.0L);
    TCHECK_EQ(w.tag, k);
    TCHECK((uintptr_t)&w % alignof(long double) == 0);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

/* named by CSP_GO_OPTS */
CSP_TASK(named, (const char *, expect), (int, pinned_to))
{
    const char *n = csp_task_name();
    TCHECK(n != NULL && strcmp(n, expect) == 0);
    if (pinned_to >= 0) {
        for (int k = 0; k < 50; k++) {
            TCHECK_EQ(csp_worker_id(), pinned_to);
            csp_yield();
        }
    }
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

/* big stack via CSP_GO_OPTS */
CSP_TASK(big_stack, (size_t, bytes))
{
    volatile char buf[bytes];
    for (size_t i = 0; i < bytes; i += 256)
        buf[i] = (char)i;
    TCHECK_EQ(buf[bytes / 256 / 2 * 256], (char)(bytes / 256 / 2 * 256));
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

static void macro_main(void *arg)
{
    (void)arg;
    atomic_store(&ran, 0);
    memset(&wg, 0, sizeof wg);
    enum { REPS = 50 };
    csp_wg_add(&wg, REPS * 5 + 2);
    csp_wg_t local = CSP_WG_INIT;
    csp_wg_add(&local, REPS);
    for (int r = 0; r < REPS; r++) {
        point_t p = { 7, "twelve chars", -0.5, 0xfedcba9876543210ULL };
        TCHECK_EQ(CSP_GO(mixed, -42, 3.25e100, "hello", p, &local), 0);
        /* p is copied: changing it now does not reach the task */
        p.a = 0;
        strcpy(p.s, "changed");
        TCHECK_EQ(CSP_GO(one_arg, UINT64_MAX - 1), 0);
        TCHECK_EQ(CSP_GO(eight, 'x', -1234, 1 << 30, -(1L << 40), 1LL << 62, 1.5f, 250, &ran),
                  0);
        wide_t w = { (long double)r / 3.0L, r };
        TCHECK_EQ(CSP_GO(aligned_arg, w, r), 0);
        w.tag = -1;
        csp_task_opts_t o = { .name = "macro-named" };
        TCHECK_EQ(CSP_GO_OPTS(&o, named, "macro-named", -1), 0);
        csp_task_opts_t pin = { .name = "pinned", .flags = CSP_TASK_PINNED };
        TCHECK_EQ(CSP_GO_OPTS(&pin, named, "pinned", csp_worker_id()), 0);
        if (r % 10 == 0)
            csp_yield();
    }
    csp_task_opts_t big = { .stack_size = 4 * 1024 * 1024, .name = "big" };
    TCHECK_EQ(CSP_GO_OPTS(&big, big_stack, (size_t)3 * 1024 * 1024), 0);
    TCHECK_EQ(CSP_GO_OPTS(NULL, big_stack, (size_t)1024), 0);
    TCHECK_EQ(csp_wg_wait(&local), 0);
    TCHECK_EQ(csp_wg_wait(&wg), 0);
    TCHECK_EQ(atomic_load(&ran), REPS * 6 + 2);
}

static void test_macro_args(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        T_RUN(macro_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        T_RUN(macro_main, NULL, tc_worker_counts[w], CSP_SPAWN_CHILD_FIRST);
    }
}

/* The function CSP_TASK defines can be called directly, without a runtime. */
CSP_TASK(direct, (int, x), (int *, out))
{
    *out = x * 2;
}

static void test_macro_direct_call(void **state)
{
    (void)state;
    int out = 0;
    direct(21, &out);
    assert_int_equal(out, 42);
    /* and CSP_GO without a runtime reports it */
    assert_int_equal(CSP_GO(direct, 1, &out), CSP_ESHUTDOWN);
}

/* CSP_GO from a plain thread of a csp_init runtime */
static void test_macro_from_plain_thread(void **state)
{
    (void)state;
    csp_config_t cfg = { .workers = 2 };
    TC_RESET();
    assert_int_equal(csp_init(&cfg), 0);
    atomic_store(&ran, 0);
    memset(&wg, 0, sizeof wg);
    csp_wg_add(&wg, 20);
    for (int r = 0; r < 10; r++) {
        assert_int_equal(CSP_GO(one_arg, UINT64_MAX - 1), 0);
        wide_t w = { (long double)r / 3.0L, r };
        assert_int_equal(CSP_GO(aligned_arg, w, r), 0);
    }
    assert_int_equal(csp_wg_wait(&wg), 0);
    csp_shutdown();
    TC_ASSERT_CLEAN();
    assert_int_equal(atomic_load(&ran), 20);
}

/* ------------------------------------------------------------------------ */
/* csp_go_copy                                                               */

typedef struct {
    unsigned char bytes[CSP_GO_COPY_MAX];
} max_arg_t;

typedef struct {
    int v[2];
    const void *src; /* where the spawner's original lives */
} small_arg_t;

static void copy_small(void *arg)
{
    const small_arg_t *a = arg;
    TCHECK(arg != a->src);
    TCHECK_EQ(a->v[0], 1111);
    TCHECK_EQ(a->v[1], 2222);
    TCHECK((uintptr_t)arg % alignof(max_align_t) == 0);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

static void copy_max(void *arg)
{
    const max_arg_t *m = arg;
    int bad = 0;
    for (size_t i = 0; i < CSP_GO_COPY_MAX; i++)
        if (m->bytes[i] != (unsigned char)(i * 7 + 3))
            bad++;
    TCHECK_EQ(bad, 0);
    TCHECK((uintptr_t)arg % alignof(max_align_t) == 0);
    /* the copy is the task's own: writable */
    memset(arg, 0, CSP_GO_COPY_MAX);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

static void copy_odd(void *arg)
{
    const unsigned char *b = arg;
    for (int i = 0; i < 13; i++)
        TCHECK_EQ(b[i], 100 + i);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

static void copy_null(void *arg)
{
    TCHECK(arg == NULL);
    atomic_fetch_add(&ran, 1);
    csp_wg_done(&wg);
}

static void copy_main(void *arg)
{
    (void)arg;
    enum { REPS = 40 };
    atomic_store(&ran, 0);
    memset(&wg, 0, sizeof wg);
    csp_wg_add(&wg, REPS * 4);
    for (int r = 0; r < REPS; r++) {
        small_arg_t v = { { 1111, 2222 }, NULL };
        v.src = &v;
        TCHECK_EQ(csp_go_copy(copy_small, &v, sizeof v, NULL), 0);
        v.v[0] = v.v[1] = -1; /* mutate the source: the task sees the old value */

        static max_arg_t m;
        for (size_t i = 0; i < CSP_GO_COPY_MAX; i++)
            m.bytes[i] = (unsigned char)(i * 7 + 3);
        csp_task_opts_t o = { .name = "copy-max" };
        TCHECK_EQ(csp_go_copy(copy_max, &m, sizeof m, &o), 0);
        memset(&m, 0xee, sizeof m);

        unsigned char odd[13];
        for (int i = 0; i < 13; i++)
            odd[i] = (unsigned char)(100 + i);
        TCHECK_EQ(csp_go_copy(copy_odd, odd, sizeof odd, NULL), 0);
        memset(odd, 0, sizeof odd);

        TCHECK_EQ(csp_go_copy(copy_null, NULL, 0, NULL), 0);
        if (r % 8 == 0)
            csp_yield();
    }
    TCHECK_EQ(csp_wg_wait(&wg), 0);
    TCHECK_EQ(atomic_load(&ran), REPS * 4);
}

static void test_go_copy(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        T_RUN(copy_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        T_RUN(copy_main, NULL, tc_worker_counts[w], CSP_SPAWN_CHILD_FIRST);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_macro_args),
        cmocka_unit_test(test_macro_direct_call),
        cmocka_unit_test(test_macro_from_plain_thread),
        cmocka_unit_test(test_go_copy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
