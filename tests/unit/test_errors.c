/* ctest-timeout: 60 */
/* Every error path of the runtime API with bad arguments or in the wrong
 * state, the error strings, identity functions on plain threads, the worker
 * count (cfg.workers, env CSP_WORKERS) and the time helpers. After each
 * failed call the runtime must still start normally.
 */
#define _GNU_SOURCE
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"

static void noop(void *arg)
{
    (void)arg;
}

static atomic_int ok_ran;
static void ok_main(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ok_ran, 1);
}

/* The runtime starts and stops normally (after a failed call). */
static void assert_runtime_usable(void)
{
    atomic_store(&ok_ran, 0);
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_run(ok_main, NULL, &cfg), 0);
    assert_int_equal(atomic_load(&ok_ran), 1);
    assert_int_equal(csp_init(&cfg), 0);
    assert_int_equal(csp_workers(), 2);
    csp_shutdown();
    assert_int_equal(csp_workers(), 0);
}

/* ------------------------------------------------------------------------ */
/* csp_run / csp_init arguments                                              */

static void test_run_null_main(void **state)
{
    (void)state;
    assert_int_equal(csp_run(NULL, NULL, NULL), CSP_EINVAL);
    csp_config_t cfg = { .workers = 1 };
    assert_int_equal(csp_run(NULL, &cfg, &cfg), CSP_EINVAL);
    assert_runtime_usable();
}

static void check_bad_config(const csp_config_t *cfg, const char *what)
{
    atomic_store(&ok_ran, 0);
    int r = csp_run(ok_main, NULL, cfg);
    if (r != CSP_EINVAL) {
        print_error("csp_run with %s: %d (%s), want CSP_EINVAL\n", what, r, csp_err_name(r));
        fail();
    }
    assert_int_equal(atomic_load(&ok_ran), 0);
    r = csp_init(cfg);
    if (r != CSP_EINVAL) {
        print_error("csp_init with %s: %d (%s), want CSP_EINVAL\n", what, r, csp_err_name(r));
        if (r == 0)
            csp_shutdown();
        fail();
    }
    assert_int_equal(csp_workers(), 0);
}

static void test_bad_configs(void **state)
{
    (void)state;
    csp_config_t c;

    memset(&c, 0, sizeof c);
    c.workers = -1;
    check_bad_config(&c, "workers -1");
    c.workers = INT_MIN;
    check_bad_config(&c, "workers INT_MIN");

    memset(&c, 0, sizeof c);
    c.stack_size = CSP_MAX_STACK_SIZE + 1;
    check_bad_config(&c, "stack_size CSP_MAX_STACK_SIZE + 1");
    c.stack_size = SIZE_MAX;
    check_bad_config(&c, "stack_size SIZE_MAX");

    memset(&c, 0, sizeof c);
    c.spawn_policy = 2;
    check_bad_config(&c, "spawn_policy 2");
    c.spawn_policy = -1;
    check_bad_config(&c, "spawn_policy -1");
    c.spawn_policy = INT_MAX;
    check_bad_config(&c, "spawn_policy INT_MAX");

    for (size_t i = 0; i < sizeof c.reserved / sizeof c.reserved[0]; i++) {
        char what[32];
        snprintf(what, sizeof what, "reserved[%zu] = 1", i);
        memset(&c, 0, sizeof c);
        c.reserved[i] = 1;
        check_bad_config(&c, what);
        c.reserved[i] = -1;
        check_bad_config(&c, what);
    }
    assert_runtime_usable();

    /* the edges that are fine: the largest stack, a tiny one (rounded up) */
    memset(&c, 0, sizeof c);
    c.workers = 1;
    c.stack_size = CSP_MAX_STACK_SIZE;
    atomic_store(&ok_ran, 0);
    assert_int_equal(csp_run(ok_main, NULL, &c), 0);
    assert_int_equal(atomic_load(&ok_ran), 1);
    c.stack_size = 1;
    assert_int_equal(csp_run(ok_main, NULL, &c), 0);
    assert_int_equal(atomic_load(&ok_ran), 2);
    c.spawn_policy = CSP_SPAWN_CHILD_FIRST;
    assert_int_equal(csp_run(ok_main, NULL, &c), 0);
    assert_int_equal(atomic_load(&ok_ran), 3);
}

/* ------------------------------------------------------------------------ */
/* wrong state                                                               */

static void nested_main(void *arg)
{
    (void)arg;
    csp_config_t cfg = { .workers = 1 };
    /* csp_run / csp_init from inside a task */
    TCHECK_EQ(csp_run(ok_main, NULL, NULL), CSP_ESTATE);
    TCHECK_EQ(csp_run(ok_main, NULL, &cfg), CSP_ESTATE);
    TCHECK_EQ(csp_init(NULL), CSP_ESTATE);
    TCHECK_EQ(csp_init(&cfg), CSP_ESTATE);
    TCHECK_EQ(csp_workers(), 2); /* still the same runtime */
}

static void *other_thread_run(void *arg)
{
    (void)arg;
    /* a plain thread while a runtime runs */
    TCHECK_EQ(csp_run(ok_main, NULL, NULL), CSP_ESTATE);
    TCHECK_EQ(csp_init(NULL), CSP_ESTATE);
    return NULL;
}

static void nested_thread_main(void *arg)
{
    (void)arg;
    pthread_t th;
    TCHECK_EQ(pthread_create(&th, NULL, other_thread_run, NULL), 0);
    pthread_join(th, NULL);
}

static void test_wrong_state(void **state)
{
    (void)state;
    atomic_store(&ok_ran, 0);
    T_RUN(nested_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    T_RUN(nested_thread_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    assert_int_equal(atomic_load(&ok_ran), 0); /* ok_main never ran */

    /* csp_init twice; csp_run while csp_init's runtime runs */
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    assert_int_equal(csp_init(&cfg), CSP_ESTATE);
    assert_int_equal(csp_init(NULL), CSP_ESTATE);
    assert_int_equal(csp_run(ok_main, NULL, &cfg), CSP_ESTATE);
    assert_int_equal(csp_workers(), 2);
    TC_RESET();
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, other_thread_run, NULL), 0);
    pthread_join(th, NULL);
    TC_ASSERT_CLEAN();
    csp_shutdown();
    assert_int_equal(atomic_load(&ok_ran), 0);
    /* shutdown without a runtime, twice: no-ops */
    csp_shutdown();
    csp_shutdown();
    assert_runtime_usable();
}

/* ------------------------------------------------------------------------ */
/* spawning                                                                  */

static void spawn_errors_main(void *arg)
{
    (void)arg;
    csp_task_opts_t o = { 0 };
    char buf[CSP_GO_COPY_MAX + 1];
    memset(buf, 0, sizeof buf);

    TCHECK_EQ(csp_go(NULL, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_go(NULL, buf), CSP_EINVAL);
    TCHECK_EQ(csp_go_opts(NULL, NULL, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_go_opts(NULL, NULL, &o), CSP_EINVAL);
    TCHECK_EQ(csp_go_copy(NULL, buf, 8, NULL), CSP_EINVAL);

    o.stack_size = CSP_MAX_STACK_SIZE + 1;
    TCHECK_EQ(csp_go_opts(noop, NULL, &o), CSP_EINVAL);
    TCHECK_EQ(csp_go_copy(noop, buf, 8, &o), CSP_EINVAL);
    o.stack_size = SIZE_MAX;
    TCHECK_EQ(csp_go_opts(noop, NULL, &o), CSP_EINVAL);
    o.stack_size = 0;
    for (unsigned bit = 1; bit; bit <<= 1) {
        if (bit == CSP_TASK_PINNED)
            continue;
        o.flags = bit;
        TCHECK_EQ(csp_go_opts(noop, NULL, &o), CSP_EINVAL);
        o.flags = bit | CSP_TASK_PINNED;
        TCHECK_EQ(csp_go_opts(noop, NULL, &o), CSP_EINVAL);
    }
    o.flags = ~0u;
    TCHECK_EQ(csp_go_opts(noop, NULL, &o), CSP_EINVAL);
    o.flags = 0;

    TCHECK_EQ(csp_go_copy(noop, buf, CSP_GO_COPY_MAX + 1, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_go_copy(noop, buf, SIZE_MAX, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_go_copy(noop, NULL, 1, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_go_copy(noop, NULL, CSP_GO_COPY_MAX, NULL), CSP_EINVAL);

    /* none of the failed calls spawned anything */
    csp_stats_t st;
    TCHECK_EQ(csp_stats(&st), 0);
    TCHECK_EQ(st.tasks_spawned, 1);
    TCHECK_EQ(st.tasks_live, 1);

    /* the valid edges */
    TCHECK_EQ(csp_go_copy(noop, buf, CSP_GO_COPY_MAX, NULL), 0);
    TCHECK_EQ(csp_go_copy(noop, NULL, 0, NULL), 0);
    o.stack_size = CSP_MAX_STACK_SIZE;
    TCHECK_EQ(csp_go_opts(noop, NULL, &o), 0);
    o.stack_size = 1;
    o.flags = CSP_TASK_PINNED;
    TCHECK_EQ(csp_go_opts(noop, NULL, &o), 0);
    TCHECK_EQ(csp_go_opts(noop, NULL, NULL), 0);
    csp_sleep(5 * CSP_MILLISECOND);

    /* stats */
    TCHECK_EQ(csp_stats(NULL), CSP_EINVAL);
}

static void test_spawn_errors(void **state)
{
    (void)state;
    T_RUN(spawn_errors_main, NULL, 1, CSP_SPAWN_HELP_FIRST);
    T_RUN(spawn_errors_main, NULL, 4, CSP_SPAWN_CHILD_FIRST);
}

static void test_spawn_without_runtime(void **state)
{
    (void)state;
    int x = 0;
    assert_int_equal(csp_go(noop, NULL), CSP_ESHUTDOWN);
    assert_int_equal(csp_go_opts(noop, NULL, NULL), CSP_ESHUTDOWN);
    csp_task_opts_t o = { .name = "x" };
    assert_int_equal(csp_go_opts(noop, NULL, &o), CSP_ESHUTDOWN);
    assert_int_equal(csp_go_copy(noop, &x, sizeof x, NULL), CSP_ESHUTDOWN);
    assert_int_equal(csp_go(NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_go_copy(noop, NULL, 4, NULL), CSP_EINVAL);
    assert_int_equal(csp_go_copy(noop, &x, CSP_GO_COPY_MAX + 1, NULL), CSP_EINVAL);
    /* and from a plain thread of a csp_init runtime, after shutdown */
    csp_config_t cfg = { .workers = 1 };
    assert_int_equal(csp_init(&cfg), 0);
    assert_int_equal(csp_go(noop, NULL), 0);
    assert_int_equal(csp_go(NULL, NULL), CSP_EINVAL);
    csp_shutdown();
    assert_int_equal(csp_go(noop, NULL), CSP_ESHUTDOWN);
}

/* ------------------------------------------------------------------------ */
/* csp_stats, WaitGroup arguments                                            */

static void test_stats_and_wg_errors(void **state)
{
    (void)state;
    csp_stats_t st;
    assert_int_equal(csp_stats(NULL), CSP_EINVAL);
    assert_int_equal(csp_stats(&st), CSP_ESTATE);
    assert_int_equal(csp_wg_add(NULL, 1), CSP_EINVAL);
    assert_int_equal(csp_wg_add(NULL, 0), CSP_EINVAL);
    assert_int_equal(csp_wg_done(NULL), CSP_EINVAL);
    assert_int_equal(csp_wg_wait(NULL), CSP_EINVAL);
    csp_wg_t wg = CSP_WG_INIT;
    assert_int_equal(csp_wg_add(&wg, -1), CSP_EINVAL);
    assert_int_equal(csp_wg_add(&wg, 1), 0);
    assert_int_equal(csp_wg_add(&wg, -2), CSP_EINVAL);
    assert_int_equal(csp_wg_done(&wg), 0); /* still 1 before: now 0 */
    assert_int_equal(csp_wg_wait(&wg), 0);
    csp_config_t cfg = { .workers = 1 };
    assert_int_equal(csp_init(&cfg), 0);
    assert_int_equal(csp_stats(NULL), CSP_EINVAL);
    assert_int_equal(csp_stats(&st), 0);
    assert_int_equal(csp_wg_wait(NULL), CSP_EINVAL);
    csp_shutdown();
    assert_int_equal(csp_stats(&st), CSP_ESTATE);
}

/* ------------------------------------------------------------------------ */
/* error strings                                                             */

static void test_strerror(void **state)
{
    (void)state;
    struct { int code; const char *name; } codes[] = {
#define X(name, val, msg) { CSP_##name, "CSP_" #name },
        CSP_ERRNO_MAP(X)
#undef X
    };
    int n = (int)(sizeof codes / sizeof codes[0]);
    assert_int_equal(n, 11); /* one more when a code is added; values are never reused */
    const char *unknown = csp_strerror(-1000);
    assert_string_equal(unknown, "unknown error");
    for (int i = 0; i < n; i++) {
        assert_true(codes[i].code < 0);
        const char *s = csp_strerror(codes[i].code);
        assert_non_null(s);
        assert_true(s[0] != '\0');
        assert_string_not_equal(s, "unknown error");
        assert_string_equal(csp_err_name(codes[i].code), codes[i].name);
        for (int j = 0; j < i; j++) {
            assert_true(codes[j].code != codes[i].code);
            assert_string_not_equal(csp_strerror(codes[j].code), s);
        }
    }
    /* the documented examples */
    assert_string_equal(csp_strerror(CSP_ECLOSED), "channel closed");
    assert_string_equal(csp_err_name(CSP_ECLOSED), "CSP_ECLOSED");
    assert_int_equal(CSP_EINVAL, -6);
    assert_int_equal(CSP_ESHUTDOWN, -8);
    assert_int_equal(CSP_ESTATE, -10);
    assert_int_equal(CSP_EIO, -11);
    /* success has its own description, not "unknown error" */
    assert_non_null(csp_strerror(0));
    assert_true(csp_strerror(0)[0] != '\0');
    assert_string_not_equal(csp_strerror(0), "unknown error");
    /* unknown codes */
    static const int bad[] = { 1, 5, -12, -13, -100, INT_MIN, INT_MAX };
    for (int i = 0; i < (int)(sizeof bad / sizeof bad[0]); i++) {
        assert_string_equal(csp_strerror(bad[i]), "unknown error");
        assert_string_equal(csp_err_name(bad[i]), "CSP_UNKNOWN");
    }
}

/* ------------------------------------------------------------------------ */
/* identity on plain threads                                                 */

static void *identity_thread(void *arg)
{
    int expect_workers = (int)(intptr_t)arg;
    TCHECK_EQ(csp_task_id(), 0);
    TCHECK(csp_task_name() == NULL);
    TCHECK_EQ(csp_worker_id(), -1);
    TCHECK_EQ(csp_workers(), expect_workers);
    return NULL;
}

static void identity_main(void *arg)
{
    (void)arg;
    pthread_t th;
    TCHECK_EQ(pthread_create(&th, NULL, identity_thread, (void *)(intptr_t)3), 0);
    pthread_join(th, NULL);
    TCHECK(csp_task_id() != 0);
}

static void test_identity_plain_thread(void **state)
{
    (void)state;
    TC_RESET();
    identity_thread((void *)(intptr_t)0); /* no runtime */
    TC_ASSERT_CLEAN();
    csp_config_t cfg = { .workers = 3 };
    assert_int_equal(csp_init(&cfg), 0);
    identity_thread((void *)(intptr_t)3); /* the thread that called csp_init */
    TC_ASSERT_CLEAN();
    csp_shutdown();
    T_RUN(identity_main, NULL, 3, CSP_SPAWN_HELP_FIRST);
    identity_thread((void *)(intptr_t)0);
    TC_ASSERT_CLEAN();
    /* yield on a plain thread: sched_yield, never fails */
    csp_yield();
}

/* ------------------------------------------------------------------------ */
/* worker count: cfg.workers, env CSP_WORKERS, else the CPUs                 */

static atomic_int seen_workers;
static void workers_main(void *arg)
{
    (void)arg;
    atomic_store(&seen_workers, csp_workers());
}

static int run_workers(const csp_config_t *cfg)
{
    atomic_store(&seen_workers, -1);
    assert_int_equal(csp_run(workers_main, NULL, cfg), 0);
    int via_run = atomic_load(&seen_workers);
    assert_int_equal(csp_init(cfg), 0);
    int via_init = csp_workers();
    csp_shutdown();
    assert_int_equal(via_run, via_init);
    return via_run;
}

static int cpus(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static void test_workers_config_env(void **state)
{
    (void)state;
    char *saved = getenv("CSP_WORKERS") ? strdup(getenv("CSP_WORKERS")) : NULL;
    unsetenv("CSP_WORKERS");
    csp_config_t cfg = { 0 };
    static const int ws[] = { 1, 2, 3, 8, 16 };
    for (int i = 0; i < 5; i++) {
        cfg.workers = ws[i];
        assert_int_equal(run_workers(&cfg), ws[i]);
    }
    cfg.workers = 0;
    assert_int_equal(run_workers(&cfg), cpus());
    assert_int_equal(run_workers(NULL), cpus());

    setenv("CSP_WORKERS", "3", 1);
    assert_int_equal(run_workers(&cfg), 3);
    assert_int_equal(run_workers(NULL), 3);
    cfg.workers = 5; /* cfg wins over the environment */
    assert_int_equal(run_workers(&cfg), 5);
    cfg.workers = 0;
    setenv("CSP_WORKERS", "7", 1);
    assert_int_equal(run_workers(&cfg), 7);
    /* nonsense in the environment: the CPU count */
    static const char *bad[] = { "", "abc", "0", "-2", "3x", " " };
    for (int i = 0; i < 6; i++) {
        setenv("CSP_WORKERS", bad[i], 1);
        int got = run_workers(&cfg);
        if (got != cpus()) {
            print_error("CSP_WORKERS=\"%s\": %d workers, want %d (the CPUs)\n", bad[i], got,
                        cpus());
            fail();
        }
    }
    if (saved) {
        setenv("CSP_WORKERS", saved, 1);
        free(saved);
    } else {
        unsetenv("CSP_WORKERS");
    }
}

/* ------------------------------------------------------------------------ */
/* time helpers                                                              */

static void test_time_helpers(void **state)
{
    (void)state;
    csp_time_t a = csp_now();
    csp_time_t b = csp_now();
    assert_true(a > 0);
    assert_true(b >= a);
    csp_time_t d = csp_deadline_after(CSP_SECOND);
    assert_true(d >= b + CSP_SECOND);
    assert_true(d < csp_now() + CSP_SECOND + CSP_SECOND);
    assert_true(csp_deadline_after(INT64_MAX) == CSP_FOREVER);
    assert_true(csp_deadline_after(INT64_MAX - 1) == CSP_FOREVER);
    assert_true(csp_deadline_after(INT64_MIN) == 0);
    assert_true(csp_deadline_after(-INT64_MAX) == 0);
    csp_time_t z = csp_deadline_after(0);
    assert_true(z >= b && z <= csp_now());
    csp_time_t n = csp_deadline_after(-CSP_MILLISECOND);
    assert_true(n < csp_now() && n > 0);
}

/* ------------------------------------------------------------------------ */
/* csp_shutdown from inside a task: not allowed, and must not stop anything  */

static void shutdown_in_task(void *arg)
{
    (void)arg;
    csp_shutdown();
    TCHECK_EQ(csp_workers(), 2);
    TCHECK_EQ(csp_go(noop, NULL), 0);
    TCHECK_EQ(csp_sleep(CSP_MILLISECOND), 0);
    atomic_fetch_add(&ok_ran, 1);
}

static void test_shutdown_from_task_is_ignored(void **state)
{
    (void)state;
    atomic_store(&ok_ran, 0);
    T_RUN(shutdown_in_task, NULL, 2, CSP_SPAWN_HELP_FIRST);
    assert_int_equal(atomic_load(&ok_ran), 1);
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    TC_RESET();
    assert_int_equal(csp_go(shutdown_in_task, NULL), 0);
    csp_time_t until = csp_now() + 5 * CSP_SECOND;
    while (atomic_load(&ok_ran) < 2 && csp_now() < until)
        csp_sleep(CSP_MILLISECOND);
    assert_int_equal(atomic_load(&ok_ran), 2);
    assert_int_equal(csp_workers(), 2);
    csp_shutdown();
    TC_ASSERT_CLEAN();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_null_main),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_wrong_state),
        cmocka_unit_test(test_spawn_errors),
        cmocka_unit_test(test_spawn_without_runtime),
        cmocka_unit_test(test_stats_and_wg_errors),
        cmocka_unit_test(test_strerror),
        cmocka_unit_test(test_identity_plain_thread),
        cmocka_unit_test(test_workers_config_env),
        cmocka_unit_test(test_time_helpers),
        cmocka_unit_test(test_shutdown_from_task_is_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
