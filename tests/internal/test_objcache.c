/* ctest-timeout: 120 */
/* Internal tests of the per-worker small-object caches (src/sched/objcache.c):
 *   - an object is never handed out twice while live, and comes back zeroed,
 *     with objects allocated on one worker freed on others (through a
 *     channel), at 1, 2, 4 and 8 workers, repeated;
 *   - the global pool never holds more than CSP__OBJ_POOL_MAX objects, even
 *     after a burst far larger than that;
 *   - teardown drains every cache: every object is back with free() after
 *     csp_run returns;
 *   - plain threads (no worker) allocate and free directly; NULL is ignored.
 * ASan builds bypass the caches (plain calloc/free), where the same checks
 * still hold trivially and ASan itself watches for reuse after free.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <csp.h>

#include "sched/sched.h"

#define OBJ_SIZE 200 /* about a context */
#define TASKS 16
#define PER_TASK 2000
#define BURST 30000

typedef struct {
    uint64_t tag;       /* the holder's mark: overwritten if handed out twice */
    uint64_t check;     /* ~tag */
    unsigned char rest[OBJ_SIZE - 16];
} obj_t;

static _Atomic int g_bad_zero, g_bad_tag, g_over_cap, g_fail;

/* checks inside tasks record failures (cmocka's asserts must not longjmp
 * out of a task); the test body asserts g_fail == 0 afterwards */
#define TCHK(c)                                                                \
    do {                                                                       \
        if (!(c)) {                                                            \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c); \
            atomic_fetch_add(&g_fail, 1);                                      \
        }                                                                      \
    } while (0)
static _Atomic uint64_t g_next_tag;
static csp_chan_t *g_ch; /* obj_t * handed to another task to free */
static csp_wg_t g_wg = CSP_WG_INIT;

static bool all_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

static obj_t *take(void)
{
    obj_t *o = csp__obj_alloc(CSP__OBJ_CTX, sizeof *o);
    if (!o)
        return NULL;
    if (!all_zero(o, sizeof *o))
        atomic_fetch_add(&g_bad_zero, 1);
    o->tag = atomic_fetch_add(&g_next_tag, 1) + 1;
    o->check = ~o->tag;
    memset(o->rest, 0xA5, sizeof o->rest); /* garbage for the next holder to not see */
    return o;
}

static void give(obj_t *o)
{
    if (o->check != ~o->tag)
        atomic_fetch_add(&g_bad_tag, 1);
    csp__obj_free(CSP__OBJ_CTX, o);
    if (csp__obj_cached() > CSP__OBJ_POOL_MAX)
        atomic_fetch_add(&g_over_cap, 1);
}

/* allocates, keeps a few live at once, frees half itself and sends the
 * other half to whichever task receives next (often on another worker) */
static void churner(void *arg)
{
    (void)arg;
    obj_t *held[8] = { 0 };
    for (int i = 0; i < PER_TASK; i++) {
        int k = i % 8;
        if (held[k]) {
            uint64_t tag = held[k]->tag;
            if (held[k]->check != ~tag)
                atomic_fetch_add(&g_bad_tag, 1);
            if (i % 2) {
                give(held[k]);
            } else {
                obj_t *o = held[k];
                if (csp_chan_send(g_ch, &o) != 0)
                    give(o);
            }
        }
        held[k] = take();
        obj_t *in;
        while (csp_chan_try_recv(g_ch, &in) == 0)
            give(in);
        if (i % 64 == 0)
            csp_yield();
    }
    for (int k = 0; k < 8; k++)
        if (held[k])
            give(held[k]);
    csp_wg_done(&g_wg);
}

static void churn_main(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(obj_t *), 64);
    TCHK(g_ch);
    if (!g_ch)
        return;
    csp_wg_add(&g_wg, TASKS);
    for (int t = 0; t < TASKS; t++)
        TCHK(csp_go(churner, NULL) == 0);
    TCHK(csp_wg_wait(&g_wg) == 0);
    obj_t *in;
    while (csp_chan_try_recv(g_ch, &in) == 0)
        give(in);
    csp_chan_release(g_ch);

    /* a burst far above the pool's cap, all freed at once on this worker */
    obj_t **many = malloc(BURST * sizeof *many);
    TCHK(many);
    if (!many)
        return;
    for (int i = 0; i < BURST; i++)
        TCHK((many[i] = take()) != NULL);
    for (int i = 0; i < BURST; i++)
        give(many[i]);
    free(many);
    TCHK(csp__obj_cached() <= CSP__OBJ_POOL_MAX);
}

static void test_objcache_churn(void **state)
{
    (void)state;
    static const int workers[] = { 1, 2, 4, 8 };
    for (size_t w = 0; w < sizeof workers / sizeof workers[0]; w++) {
        for (int rep = 0; rep < 2; rep++) {
            atomic_store(&g_bad_zero, 0);
            atomic_store(&g_bad_tag, 0);
            atomic_store(&g_over_cap, 0);
            atomic_store(&g_fail, 0);
            csp_config_t cfg = { .workers = workers[w] };
            assert_int_equal(csp_run(churn_main, NULL, &cfg), 0);
            assert_int_equal(atomic_load(&g_bad_zero), 0);
            assert_int_equal(atomic_load(&g_bad_tag), 0);
            assert_int_equal(atomic_load(&g_over_cap), 0);
            assert_int_equal(atomic_load(&g_fail), 0);
            /* teardown drained the pools and the workers' caches: every
             * object went back to free() */
            assert_int_equal(csp__obj_cached(), 0);
            assert_int_equal(csp__obj_outstanding(), 0);
        }
    }
}

static void *plain_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 1000; i++) {
        obj_t *o = take();
        if (!o)
            return (void *)1;
        give(o);
    }
    csp__obj_free(CSP__OBJ_CTX, NULL);
    return NULL;
}

static void plain_main(void *arg)
{
    (void)arg;
    pthread_t th;
    TCHK(pthread_create(&th, NULL, plain_thread, NULL) == 0);
    void *rc;
    TCHK(pthread_join(th, &rc) == 0);
    TCHK(rc == NULL);
}

static void test_objcache_plain_threads(void **state)
{
    (void)state;
    atomic_store(&g_bad_zero, 0);
    atomic_store(&g_bad_tag, 0);
    atomic_store(&g_fail, 0);
    /* no runtime at all */
    assert_null(plain_thread(NULL));
    assert_int_equal(csp__obj_cached(), 0); /* plain threads never cache */
    /* a plain thread while a runtime runs */
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_run(plain_main, NULL, &cfg), 0);
    assert_int_equal(atomic_load(&g_fail), 0);
    assert_int_equal(csp__obj_outstanding(), 0);
    assert_int_equal(atomic_load(&g_bad_zero), 0);
    assert_int_equal(atomic_load(&g_bad_tag), 0);
    /* bad class: plain calloc/free */
    void *o = csp__obj_alloc(-1, 32);
    assert_non_null(o);
    csp__obj_free(CSP__OBJ_NCLASS, o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_objcache_churn),
        cmocka_unit_test(test_objcache_plain_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
