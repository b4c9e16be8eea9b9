/* ctest-timeout: 120 */
/* csp_singleflight_t (golang.org/x/sync/singleflight): bad arguments; calls
 * with no flight in progress run fn on the caller and return its result as
 * is; 1,000 concurrent tasks with one key collapse into exactly one fn
 * execution and all get its result, its output and shared = 1 (fn errors
 * too), at 1, 2, 4 and 8 workers, over repeated rounds; keys compared by
 * content (own copies, prefixes, embedded NULs, the empty key) and different
 * keys in flight at once; forget during a flight starts a new one while the
 * old flight's followers still get the old result, and the old flight's end
 * does not remove the new one; out_size mismatches (truncated copy, zero
 * fill); plain pthreads as callers, with and without a runtime, checked for
 * consistency flight by flight; a mixed stress of tasks and threads over
 * several keys; followers failing with CSP_ESHUTDOWN when the runtime shuts
 * down under them; and flights whose leader task was freed by the runtime's
 * teardown (abandoned: the next call starts afresh, destroy frees them).
 *
 * "All followers are waiting" is observed through csp_stats().parks: each
 * follower task parks exactly once (in the singleflight wait) and each
 * leader once (on its gate channel); the main task only yields.
 */
#define _GNU_SOURCE
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
#include "thread_util.h"

static uint64_t parks_now(void)
{
    csp_stats_t st;
    if (csp_stats(&st) != 0)
        return 0;
    return st.parks;
}

/* Yields (tasks) or sleeps (threads) until n tasks parked since base. */
static void await_parks(uint64_t base, uint64_t n)
{
    csp_time_t until = csp_now() + 20 * CSP_SECOND;
    while (parks_now() < base + n) {
        if (csp_now() > until) {
            TCHECK(!"tasks did not park within 20 s");
            return;
        }
        if (csp_task_id())
            csp_yield();
        else
            ms_sleep(1);
    }
}

static int all_bytes(const void *p, int byte, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)byte)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* bad arguments, and calls without a flight in progress                      */

static atomic_int simple_runs;

static int simple_fn(void *arg, void *out)
{
    atomic_fetch_add(&simple_runs, 1);
    if (out)
        memset(out, 0x5c, 8);
    return (int)(intptr_t)arg;
}

static void test_sf_bad_args(void **state)
{
    (void)state;
    csp_singleflight_t g = CSP_SINGLEFLIGHT_INIT;
    char out[8];
    int sh = 7;
    atomic_store(&simple_runs, 0);
    assert_int_equal(csp_singleflight_do(NULL, "k", 1, simple_fn, NULL, out, 8, &sh), CSP_EINVAL);
    assert_int_equal(csp_singleflight_do(&g, NULL, 1, simple_fn, NULL, out, 8, &sh), CSP_EINVAL);
    assert_int_equal(csp_singleflight_do(&g, "k", 1, NULL, NULL, out, 8, &sh), CSP_EINVAL);
    assert_int_equal(csp_singleflight_do(&g, "k", 1, simple_fn, NULL, NULL, 8, &sh), CSP_EINVAL);
    assert_int_equal(sh, 7); /* untouched */
    assert_int_equal(atomic_load(&simple_runs), 0);
    assert_int_equal(csp_singleflight_forget(NULL, "k", 1), CSP_EINVAL);
    assert_int_equal(csp_singleflight_forget(&g, NULL, 1), CSP_EINVAL);
    assert_int_equal(csp_singleflight_forget(&g, NULL, 0), 0);
    assert_int_equal(csp_singleflight_forget(&g, "k", 1), 0); /* nothing in flight */
    csp_singleflight_destroy(NULL);
    csp_singleflight_destroy(&g);
}

static void test_sf_no_flight_plain_thread(void **state)
{
    (void)state;
    csp_singleflight_t g;
    memset(&g, 0, sizeof g); /* zeroed = initialised */
    atomic_store(&simple_runs, 0);
    char out[8] = { 0 };
    int sh = 7;
    /* fn's result is returned as is: 0, negative, positive */
    assert_int_equal(csp_singleflight_do(&g, "k", 1, simple_fn, (void *)(intptr_t)0, out, 8, &sh), 0);
    assert_int_equal(sh, 0);
    assert_true(all_bytes(out, 0x5c, 8));
    assert_int_equal(csp_singleflight_do(&g, "k", 1, simple_fn, (void *)(intptr_t)-77, out, 8, &sh),
                     -77);
    assert_int_equal(csp_singleflight_do(&g, "k", 1, simple_fn, (void *)(intptr_t)CSP_EAGAIN, out,
                                         8, NULL),
                     CSP_EAGAIN);
    assert_int_equal(csp_singleflight_do(&g, "k", 1, simple_fn, (void *)(intptr_t)5, out, 8, &sh), 5);
    /* the empty key (NULL, 0), and no output at all */
    assert_int_equal(csp_singleflight_do(&g, NULL, 0, simple_fn, NULL, NULL, 0, &sh), 0);
    assert_int_equal(csp_singleflight_do(&g, "", 0, simple_fn, NULL, NULL, 0, &sh), 0);
    assert_int_equal(sh, 0);
    /* sequential calls never share: fn ran every time */
    assert_int_equal(atomic_load(&simple_runs), 6);
    csp_singleflight_destroy(&g);
    /* usable after destroy */
    assert_int_equal(csp_singleflight_do(&g, "k", 1, simple_fn, NULL, out, 8, &sh), 0);
    assert_int_equal(atomic_load(&simple_runs), 7);
    csp_singleflight_destroy(&g);
    static csp_singleflight_t file_scope = CSP_SINGLEFLIGHT_INIT;
    assert_int_equal(csp_singleflight_do(&file_scope, "x", 1, simple_fn, NULL, out, 8, &sh), 0);
    csp_singleflight_destroy(&file_scope);
}

/* ------------------------------------------------------------------------ */
/* 1,000 tasks, one key, one execution                                        */

#define CO_N 1000
#define CO_OUT 48
typedef struct {
    int r;
    int shared;
    unsigned char out[CO_OUT];
} co_rec_t;

static csp_singleflight_t co_g = CSP_SINGLEFLIGHT_INIT;
static csp_chan_t *co_gate;
static atomic_int co_execs, co_arrived;
static int co_result, co_round;
static co_rec_t co_recs[CO_N];
static csp_wg_t co_wg;

static unsigned char co_byte(int i, int round)
{
    return (unsigned char)(i * 7 + round * 13 + 1);
}

static int co_fn(void *arg, void *out)
{
    TCHECK(arg == &co_g);
    atomic_fetch_add(&co_execs, 1);
    int v;
    TCHECK_EQ(csp_chan_recv(co_gate, &v), CSP_ECLOSED); /* parks until closed */
    unsigned char *o = out;
    for (int i = 0; i < CO_OUT; i++)
        o[i] = co_byte(i, co_round);
    return co_result;
}

static void co_task(void *arg)
{
    int i = (int)(uintptr_t)arg;
    char key[16];
    snprintf(key, sizeof key, "the-%s", "key"); /* each caller its own copy */
    co_rec_t *r = &co_recs[i];
    memset(r->out, 0xee, sizeof r->out);
    r->shared = -1;
    atomic_fetch_add(&co_arrived, 1);
    /* nothing switches between the count and the call's enqueue */
    r->r = csp_singleflight_do(&co_g, key, strlen(key), co_fn, &co_g, r->out, sizeof r->out,
                               &r->shared);
    csp_wg_done(&co_wg);
}

static void co_main(void *arg)
{
    (void)arg;
    static const int results[] = { 0, -77, CSP_EAGAIN };
    for (int round = 0; round < 3; round++) {
        co_round = round;
        co_result = results[round];
        atomic_store(&co_execs, 0);
        atomic_store(&co_arrived, 0);
        co_gate = csp_chan_make(sizeof(int), 0);
        TCHECK(co_gate != NULL);
        if (!co_gate)
            return;
        uint64_t base = parks_now();
        csp_wg_add(&co_wg, CO_N);
        for (int i = 0; i < CO_N; i++)
            TCHECK_EQ(csp_go(co_task, (void *)(uintptr_t)i), 0);
        while (atomic_load(&co_arrived) < CO_N)
            csp_yield();
        await_parks(base, CO_N); /* the leader on the gate, 999 in the flight */
        TCHECK_EQ(atomic_load(&co_execs), 1);
        TCHECK_EQ(csp_chan_close(co_gate), 0);
        TCHECK_EQ(csp_wg_wait(&co_wg), 0);
        TCHECK_EQ(atomic_load(&co_execs), 1);
        int bad_r = 0, bad_shared = 0, bad_out = 0;
        for (int i = 0; i < CO_N; i++) {
            bad_r += co_recs[i].r != co_result;
            bad_shared += co_recs[i].shared != 1;
            for (int k = 0; k < CO_OUT; k++)
                if (co_recs[i].out[k] != co_byte(k, round)) {
                    bad_out++;
                    break;
                }
        }
        TCHECK_EQ(bad_r, 0);
        TCHECK_EQ(bad_shared, 0);
        TCHECK_EQ(bad_out, 0);
        csp_chan_release(co_gate);
    }
}

static void test_sf_collapse_1000_tasks(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(&co_wg, 0, sizeof co_wg);
        T_RUN(co_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    }
    csp_singleflight_destroy(&co_g);
}

/* ------------------------------------------------------------------------ */
/* out_size mismatches                                                        */

enum { OS_LEADER = 16, OS_NF = 5 };
static const size_t os_sizes[OS_NF] = { 0, 4, 16, 40, 1 };
static csp_singleflight_t os_g = CSP_SINGLEFLIGHT_INIT;
static csp_chan_t *os_gate;
static atomic_int os_execs;
static size_t os_leader_size;
static unsigned char os_out[OS_NF + 1][64];
static int os_r[OS_NF + 1], os_sh[OS_NF + 1];
static csp_wg_t os_wg;

static int os_fn(void *arg, void *out)
{
    (void)arg;
    atomic_fetch_add(&os_execs, 1);
    int v;
    TCHECK_EQ(csp_chan_recv(os_gate, &v), CSP_ECLOSED);
    unsigned char *o = out;
    for (size_t i = 0; i < os_leader_size; i++)
        o[i] = (unsigned char)(i + 1);
    return -5;
}

static void os_task(void *arg)
{
    int i = (int)(uintptr_t)arg; /* OS_NF: the leader */
    size_t sz = i == OS_NF ? os_leader_size : os_sizes[i];
    memset(os_out[i], 0xaa, sizeof os_out[i]);
    os_sh[i] = -1;
    os_r[i] = csp_singleflight_do(&os_g, "size", 4, os_fn, NULL, sz ? os_out[i] : NULL, sz,
                                  &os_sh[i]);
    csp_wg_done(&os_wg);
}

static void os_main(void *arg)
{
    (void)arg;
    for (int variant = 0; variant < 2; variant++) {
        os_leader_size = variant == 0 ? OS_LEADER : 0;
        atomic_store(&os_execs, 0);
        os_gate = csp_chan_make(sizeof(int), 0);
        uint64_t base = parks_now();
        csp_wg_add(&os_wg, OS_NF + 1);
        TCHECK_EQ(csp_go(os_task, (void *)(uintptr_t)OS_NF), 0); /* the leader first */
        await_parks(base, 1);
        TCHECK_EQ(atomic_load(&os_execs), 1);
        for (int i = 0; i < OS_NF; i++)
            TCHECK_EQ(csp_go(os_task, (void *)(uintptr_t)i), 0);
        await_parks(base, 1 + OS_NF);
        TCHECK_EQ(csp_chan_close(os_gate), 0);
        TCHECK_EQ(csp_wg_wait(&os_wg), 0);
        TCHECK_EQ(atomic_load(&os_execs), 1);
        for (int i = 0; i <= OS_NF; i++) {
            TCHECK_EQ(os_r[i], -5); /* the error reaches everyone */
            TCHECK_EQ(os_sh[i], 1);
        }
        for (int i = 0; i < OS_NF; i++) {
            size_t sz = os_sizes[i];
            size_t k = sz < os_leader_size ? sz : os_leader_size;
            for (size_t j = 0; j < k; j++)
                TCHECK_EQ(os_out[i][j], j + 1);         /* the leader's bytes */
            TCHECK(all_bytes(os_out[i] + k, 0, sz - k)); /* zero past them */
            TCHECK(all_bytes(os_out[i] + sz, 0xaa, sizeof os_out[i] - sz)); /* nothing beyond */
        }
        csp_chan_release(os_gate);
    }
}

static void test_sf_out_size_mismatch(void **state)
{
    (void)state;
    for (int w = 0; w < 3; w++) {
        memset(&os_wg, 0, sizeof os_wg);
        T_RUN(os_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    }
    csp_singleflight_destroy(&os_g);
}

/* ------------------------------------------------------------------------ */
/* different keys: compared by content, in flight at once                     */

typedef struct {
    const char *bytes;
    size_t len;
} dk_key_t;
static const dk_key_t dk_keys[] = {
    { NULL, 0 }, { "a", 1 }, { "ab", 2 }, { "abc", 3 },
    { "a\0b", 3 }, { "a\0c", 3 }, { "\0", 1 }, { "\0\0", 2 },
};
#define DK_K ((int)(sizeof dk_keys / sizeof dk_keys[0]))
#define DK_PER 3 /* callers per key */

static csp_singleflight_t dk_g = CSP_SINGLEFLIGHT_INIT;
static csp_chan_t *dk_gate;
static atomic_int dk_running, dk_execs[DK_K];
static int dk_out[DK_K][DK_PER], dk_r[DK_K][DK_PER], dk_sh[DK_K][DK_PER];
static csp_wg_t dk_wg;

static int dk_fn(void *arg, void *out)
{
    int k = (int)(uintptr_t)arg;
    atomic_fetch_add(&dk_execs[k], 1);
    atomic_fetch_add(&dk_running, 1);
    /* every key's fn runs at the same time as all the others */
    csp_time_t until = csp_now() + 10 * CSP_SECOND;
    while (atomic_load(&dk_running) < DK_K && csp_now() < until)
        csp_yield();
    TCHECK_EQ(atomic_load(&dk_running), DK_K);
    int v;
    TCHECK_EQ(csp_chan_recv(dk_gate, &v), CSP_ECLOSED);
    *(int *)out = 1000 + k;
    return -k;
}

static void dk_task(void *arg)
{
    int id = (int)(uintptr_t)arg, k = id / DK_PER, j = id % DK_PER;
    char copy[8] = { 0 };
    if (dk_keys[k].len)
        memcpy(copy, dk_keys[k].bytes, dk_keys[k].len); /* its own copy */
    dk_out[k][j] = -1;
    dk_r[k][j] = csp_singleflight_do(&dk_g, dk_keys[k].len ? copy : NULL, dk_keys[k].len, dk_fn,
                                     (void *)(uintptr_t)k, &dk_out[k][j], sizeof(int),
                                     &dk_sh[k][j]);
    csp_wg_done(&dk_wg);
}

static void dk_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 2; round++) {
        atomic_store(&dk_running, 0);
        for (int k = 0; k < DK_K; k++)
            atomic_store(&dk_execs[k], 0);
        dk_gate = csp_chan_make(sizeof(int), 0);
        uint64_t base = parks_now();
        csp_wg_add(&dk_wg, DK_K * DK_PER);
        for (int id = 0; id < DK_K * DK_PER; id++)
            TCHECK_EQ(csp_go(dk_task, (void *)(uintptr_t)id), 0);
        await_parks(base, DK_K * DK_PER); /* K leaders on the gate, the rest following */
        for (int k = 0; k < DK_K; k++)
            TCHECK_EQ(atomic_load(&dk_execs[k]), 1);
        TCHECK_EQ(csp_chan_close(dk_gate), 0);
        TCHECK_EQ(csp_wg_wait(&dk_wg), 0);
        for (int k = 0; k < DK_K; k++)
            for (int j = 0; j < DK_PER; j++) {
                TCHECK_EQ(dk_out[k][j], 1000 + k);
                TCHECK_EQ(dk_r[k][j], -k);
                TCHECK_EQ(dk_sh[k][j], 1);
            }
        csp_chan_release(dk_gate);
    }
}

static void test_sf_different_keys(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(&dk_wg, 0, sizeof dk_wg);
        T_RUN(dk_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    }
    csp_singleflight_destroy(&dk_g);
}

/* ------------------------------------------------------------------------ */
/* forget during a flight                                                     */

enum { FG_L1, FG_F1, FG_L2, FG_F2, FG_F3, FG_N };
static csp_singleflight_t fg_g = CSP_SINGLEFLIGHT_INIT;
static csp_chan_t *fg_gate[3];
static atomic_int fg_execs, fg_done[FG_N];
static int fg_out[FG_N], fg_r[FG_N], fg_sh[FG_N];
static csp_wg_t fg_wg;

static int fg_fn(void *arg, void *out)
{
    (void)arg;
    int id = atomic_fetch_add(&fg_execs, 1) + 1; /* flight 1, 2 */
    TCHECK(id <= 2);
    int v;
    if (id <= 2)
        TCHECK_EQ(csp_chan_recv(fg_gate[id], &v), CSP_ECLOSED);
    *(int *)out = id;
    return -id;
}

static void fg_task(void *arg)
{
    int i = (int)(uintptr_t)arg;
    fg_r[i] = csp_singleflight_do(&fg_g, "forget-me", 9, fg_fn, NULL, &fg_out[i], sizeof(int),
                                  &fg_sh[i]);
    atomic_store(&fg_done[i], 1);
    csp_wg_done(&fg_wg);
}

static void fg_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 3; round++) {
        atomic_store(&fg_execs, 0);
        for (int i = 0; i < FG_N; i++)
            atomic_store(&fg_done[i], 0);
        fg_gate[1] = csp_chan_make(sizeof(int), 0);
        fg_gate[2] = csp_chan_make(sizeof(int), 0);
        uint64_t base = parks_now();
        csp_wg_add(&fg_wg, FG_N);
        TCHECK_EQ(csp_go(fg_task, (void *)(uintptr_t)FG_L1), 0);
        await_parks(base, 1);
        TCHECK_EQ(csp_go(fg_task, (void *)(uintptr_t)FG_F1), 0);
        await_parks(base, 2);
        TCHECK_EQ(atomic_load(&fg_execs), 1);
        /* forget: the next call starts flight 2 although flight 1 goes on */
        TCHECK_EQ(csp_singleflight_forget(&fg_g, "forget-me", 9), 0);
        TCHECK_EQ(csp_singleflight_forget(&fg_g, "forget-me", 9), 0); /* again: no-op */
        TCHECK_EQ(csp_go(fg_task, (void *)(uintptr_t)FG_L2), 0);
        await_parks(base, 3);
        TCHECK_EQ(atomic_load(&fg_execs), 2);
        TCHECK_EQ(csp_go(fg_task, (void *)(uintptr_t)FG_F2), 0);
        await_parks(base, 4);
        /* flight 1 ends first; it must not take flight 2 out of the table */
        TCHECK_EQ(csp_chan_close(fg_gate[1]), 0);
        while (!atomic_load(&fg_done[FG_L1]) || !atomic_load(&fg_done[FG_F1]))
            csp_yield();
        TCHECK_EQ(atomic_load(&fg_done[FG_L2]) + atomic_load(&fg_done[FG_F2]), 0);
        TCHECK_EQ(csp_go(fg_task, (void *)(uintptr_t)FG_F3), 0); /* joins flight 2 */
        await_parks(base, 5);
        TCHECK_EQ(atomic_load(&fg_execs), 2);
        TCHECK_EQ(csp_chan_close(fg_gate[2]), 0);
        TCHECK_EQ(csp_wg_wait(&fg_wg), 0);
        TCHECK_EQ(atomic_load(&fg_execs), 2);
        static const int flight[FG_N] = { 1, 1, 2, 2, 2 };
        for (int i = 0; i < FG_N; i++) {
            TCHECK_EQ(fg_out[i], flight[i]);
            TCHECK_EQ(fg_r[i], -flight[i]);
            TCHECK_EQ(fg_sh[i], 1);
        }
        csp_chan_release(fg_gate[1]);
        csp_chan_release(fg_gate[2]);
    }
}

static void test_sf_forget_during_flight(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(&fg_wg, 0, sizeof fg_wg);
        T_RUN(fg_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
    }
    csp_singleflight_destroy(&fg_g);
}

/* ------------------------------------------------------------------------ */
/* consistency checking, flight by flight (plain threads and the stress)      */

/* Every call records the flight it got (fn writes the flight id, and the key
 * index, to out). Checked: each flight ran fn once; everyone in a flight got
 * its output and result; shared == 1 exactly when the flight had more than
 * one caller. */
#define CK_MAX_FLIGHTS 100000
typedef struct {
    int flight, key, r, shared;
} ck_rec_t;

static atomic_int ck_flights;
static atomic_int ck_key_of[CK_MAX_FLIGHTS + 1];
static int ck_count[CK_MAX_FLIGHTS + 1];

static int ck_fn_body(int key, int *out)
{
    int id = atomic_fetch_add(&ck_flights, 1) + 1;
    if (id <= CK_MAX_FLIGHTS)
        atomic_store(&ck_key_of[id], key + 1);
    out[0] = id;
    out[1] = key;
    return -(id % 7);
}

/* returns the number of flights that had more than one caller */
static int ck_check(const ck_rec_t *recs, int n, int *bad)
{
    int nf = atomic_load(&ck_flights);
    if (nf > CK_MAX_FLIGHTS) {
        (*bad)++;
        return 0;
    }
    memset(ck_count, 0, sizeof(int) * (size_t)(nf + 1));
    for (int i = 0; i < n; i++) {
        int f = recs[i].flight;
        if (f < 1 || f > nf) {
            (*bad)++;
            continue;
        }
        ck_count[f]++;
        if (atomic_load(&ck_key_of[f]) != recs[i].key + 1)
            (*bad)++; /* a flight of another key */
        if (recs[i].r != -(f % 7))
            (*bad)++;
    }
    int collapsed = 0;
    for (int f = 1; f <= nf; f++) {
        if (ck_count[f] == 0)
            (*bad)++; /* fn ran but nobody got the result */
        collapsed += ck_count[f] > 1;
    }
    for (int i = 0; i < n; i++) {
        int f = recs[i].flight;
        if (f >= 1 && f <= nf && recs[i].shared != (ck_count[f] > 1))
            (*bad)++;
    }
    return collapsed;
}

static void ck_reset(void)
{
    atomic_store(&ck_flights, 0);
}

/* ------------------------------------------------------------------------ */
/* plain threads as callers                                                   */

#define PT_THREADS 8
#define PT_ROUNDS 20
static csp_singleflight_t pt_g = CSP_SINGLEFLIGHT_INIT;
static atomic_int pt_arrived;
static ck_rec_t pt_recs[PT_ROUNDS * PT_THREADS];
static pthread_barrier_t pt_barrier;

static int pt_fn(void *arg, void *out)
{
    (void)arg;
    int r = ck_fn_body(0, out);
    /* give the others time to arrive and join */
    for (int i = 0; i < 2000 && atomic_load(&pt_arrived) < PT_THREADS; i++)
        ms_sleep(1);
    ms_sleep(5);
    return r;
}

static void *pt_thread(void *arg)
{
    int t = (int)(intptr_t)arg;
    for (int round = 0; round < PT_ROUNDS; round++) {
        pthread_barrier_wait(&pt_barrier);
        if (t == 0)
            atomic_store(&pt_arrived, 0);
        pthread_barrier_wait(&pt_barrier);
        ck_rec_t *rec = &pt_recs[round * PT_THREADS + t];
        int out[2] = { -1, -1 };
        rec->shared = -1;
        atomic_fetch_add(&pt_arrived, 1);
        rec->r = csp_singleflight_do(&pt_g, "thread-key", 10, pt_fn, NULL, out, sizeof out,
                                     &rec->shared);
        rec->flight = out[0];
        rec->key = out[1];
    }
    return NULL;
}

static void pt_run_threads(void)
{
    ck_reset();
    pthread_barrier_init(&pt_barrier, NULL, PT_THREADS);
    pthread_t th[PT_THREADS];
    for (intptr_t i = 0; i < PT_THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, pt_thread, (void *)i), 0);
    for (int i = 0; i < PT_THREADS; i++)
        pthread_join(th[i], NULL);
    pthread_barrier_destroy(&pt_barrier);
    int bad = 0;
    int collapsed = ck_check(pt_recs, PT_ROUNDS * PT_THREADS, &bad);
    assert_int_equal(bad, 0);
    /* fn waits for everyone to arrive: flights are shared (every round, in
     * practice; at least once is the check that cannot flake) */
    assert_true(collapsed >= 1);
    assert_true(atomic_load(&ck_flights) < PT_ROUNDS * PT_THREADS);
}

static void test_sf_plain_threads(void **state)
{
    (void)state;
    /* no runtime */
    pt_run_threads();
    /* with a runtime running (the threads are still plain threads) */
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    pt_run_threads();
    csp_shutdown();
    csp_singleflight_destroy(&pt_g);
}

/* ------------------------------------------------------------------------ */
/* stress: tasks and threads, several keys, many rounds                       */

#define SS_TASKS 32
#define SS_THREADS 3
#define SS_CALLS TC_SCALE(300)
#define SS_KEYS 4
static csp_singleflight_t ss_g = CSP_SINGLEFLIGHT_INIT;
static ck_rec_t ss_recs[(SS_TASKS + SS_THREADS) * 300];
static csp_wg_t ss_wg;

static int ss_fn(void *arg, void *out)
{
    int key = (int)(intptr_t)arg;
    int r = ck_fn_body(key, out);
    int spins = (int)(((unsigned)r * 2654435761u) >> 30); /* 0..3 */
    for (int i = 0; i < spins; i++) {
        if (csp_task_id())
            csp_yield();
        else
            sched_yield();
    }
    return r;
}

static void ss_loop(int who)
{
    uint64_t rng = 0x9E3779B97F4A7C15ULL * (uint64_t)(who + 1);
    for (int i = 0; i < SS_CALLS; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int key = (int)(rng % SS_KEYS);
        char kb[8];
        snprintf(kb, sizeof kb, "ss%d", key);
        ck_rec_t *rec = &ss_recs[who * SS_CALLS + i];
        int out[2] = { -1, -1 };
        rec->shared = -1;
        rec->r = csp_singleflight_do(&ss_g, kb, strlen(kb), ss_fn, (void *)(intptr_t)key, out,
                                     sizeof out, &rec->shared);
        rec->flight = out[0];
        rec->key = out[1];
        if (out[1] != key)
            rec->key = -100; /* another key's output */
        if (rng % 3 == 0) {
            if (csp_task_id())
                csp_yield();
            else
                sched_yield();
        }
    }
}

static void ss_task(void *arg)
{
    ss_loop((int)(intptr_t)arg);
    csp_wg_done(&ss_wg);
}

static void *ss_thread(void *arg)
{
    ss_loop((int)(intptr_t)arg);
    csp_wg_done(&ss_wg);
    return NULL;
}

static void ss_main(void *arg)
{
    (void)arg;
    pthread_t th[SS_THREADS];
    csp_wg_add(&ss_wg, SS_TASKS + SS_THREADS);
    for (intptr_t i = 0; i < SS_THREADS; i++)
        TCHECK_EQ(pthread_create(&th[i], NULL, ss_thread, (void *)(SS_TASKS + i)), 0);
    for (intptr_t i = 0; i < SS_TASKS; i++)
        TCHECK_EQ(csp_go(ss_task, (void *)i), 0);
    TCHECK_EQ(csp_wg_wait(&ss_wg), 0);
    for (int i = 0; i < SS_THREADS; i++)
        pthread_join(th[i], NULL);
}

static void test_sf_stress_mixed(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 2; rep++) {
            ck_reset();
            memset(&ss_wg, 0, sizeof ss_wg);
            T_RUN(ss_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
            int bad = 0;
            ck_check(ss_recs, (SS_TASKS + SS_THREADS) * SS_CALLS, &bad);
            assert_int_equal(bad, 0);
        }
    csp_singleflight_destroy(&ss_g);
}

/* ------------------------------------------------------------------------ */
/* followers shut down while the leader (a plain thread) is in fn             */

#define SD_TASKS 5
#define SD_THREADS 2
#define SD_UNSET 12345
static csp_singleflight_t sd_g = CSP_SINGLEFLIGHT_INIT;
static atomic_int sd_in_fn, sd_release, sd_runs;
static int sd_r[SD_TASKS + SD_THREADS], sd_sh[SD_TASKS + SD_THREADS];
static unsigned char sd_out[SD_TASKS + SD_THREADS][8];
static int sd_leader_r, sd_leader_sh;

static int sd_fn(void *arg, void *out)
{
    (void)arg;
    atomic_fetch_add(&sd_runs, 1);
    atomic_store(&sd_in_fn, 1);
    while (!atomic_load(&sd_release))
        ms_sleep(1);
    memset(out, 0x77, 8);
    return 3;
}

static void *sd_leader(void *arg)
{
    (void)arg;
    unsigned char out[8];
    sd_leader_r = csp_singleflight_do(&sd_g, "sd", 2, sd_fn, NULL, out, sizeof out, &sd_leader_sh);
    return NULL;
}

static void sd_follow(int i)
{
    memset(sd_out[i], 0xaa, 8);
    sd_r[i] = csp_singleflight_do(&sd_g, "sd", 2, sd_fn, NULL, sd_out[i], 8, &sd_sh[i]);
}

static void sd_task(void *arg)
{
    sd_follow((int)(intptr_t)arg);
}

static void *sd_thread(void *arg)
{
    sd_follow((int)(intptr_t)arg);
    return NULL;
}

static void test_sf_shutdown(void **state)
{
    (void)state;
    for (int rep = 0; rep < 3; rep++) {
        TC_RESET();
        atomic_store(&sd_in_fn, 0);
        atomic_store(&sd_release, 0);
        atomic_store(&sd_runs, 0);
        for (int i = 0; i < SD_TASKS + SD_THREADS; i++)
            sd_r[i] = sd_sh[i] = SD_UNSET;
        csp_config_t cfg = { .workers = 2 };
        assert_int_equal(csp_init(&cfg), 0);
        pthread_t lt, th[SD_THREADS];
        assert_int_equal(pthread_create(&lt, NULL, sd_leader, NULL), 0);
        while (!atomic_load(&sd_in_fn))
            ms_sleep(1);
        uint64_t base = parks_now();
        for (intptr_t i = 0; i < SD_TASKS; i++)
            assert_int_equal(csp_go(sd_task, (void *)i), 0);
        for (intptr_t i = 0; i < SD_THREADS; i++)
            assert_int_equal(pthread_create(&th[i], NULL, sd_thread, (void *)(SD_TASKS + i)), 0);
        await_parks(base, SD_TASKS);
        ms_sleep(5);
        csp_shutdown();
        /* every task follower got CSP_ESHUTDOWN, its out untouched */
        for (int i = 0; i < SD_TASKS; i++) {
            assert_int_equal(sd_r[i], CSP_ESHUTDOWN);
            assert_int_equal(sd_sh[i], SD_UNSET);
            assert_true(all_bytes(sd_out[i], 0xaa, 8));
        }
        atomic_store(&sd_release, 1);
        pthread_join(lt, NULL);
        for (int i = 0; i < SD_THREADS; i++)
            pthread_join(th[i], NULL);
        assert_int_equal(sd_leader_r, 3);
        /* the threads were shut down too, or (if they arrived after the
         * shutdown) waited for the leader's result */
        int got = 0;
        for (int i = SD_TASKS; i < SD_TASKS + SD_THREADS; i++) {
            if (sd_r[i] == CSP_ESHUTDOWN) {
                assert_true(all_bytes(sd_out[i], 0xaa, 8));
            } else {
                assert_int_equal(sd_r[i], 3);
                assert_int_equal(sd_sh[i], 1);
                assert_true(all_bytes(sd_out[i], 0x77, 8));
                got++;
            }
        }
        assert_int_equal(sd_leader_sh, got > 0);
        assert_int_equal(atomic_load(&sd_runs), 1);
        /* the flight is over: the next call runs fn again */
        unsigned char out[8];
        int sh = -1;
        assert_int_equal(csp_singleflight_do(&sd_g, "sd", 2, sd_fn, NULL, out, 8, &sh), 3);
        assert_int_equal(sh, 0);
        assert_int_equal(atomic_load(&sd_runs), 2);
        TC_ASSERT_CLEAN();
    }
    csp_singleflight_destroy(&sd_g);
}

/* ------------------------------------------------------------------------ */
/* flights whose leader task was freed at the runtime's teardown              */

/* csp_run frees the tasks still alive when main returns, without resuming
 * them: a leader parked inside fn never finishes its flight, and its
 * followers (tasks too) are freed while queued on it. The next call with
 * the key must start a new flight (not wait forever), and destroy must free
 * an abandoned flight nobody called again (ASan's leak check). */
static csp_singleflight_t ab_g = CSP_SINGLEFLIGHT_INIT;
static csp_chan_t *ab_gate;
static atomic_int ab_runs;

static int ab_fn(void *arg, void *out)
{
    (void)arg;
    atomic_fetch_add(&ab_runs, 1);
    int v;
    if (ab_gate)
        csp_chan_recv(ab_gate, &v); /* the leader tasks never come back */
    memset(out, 0x31, 4);
    return 9;
}

static void ab_task(void *arg)
{
    const char *key = arg;
    unsigned char out[4];
    int sh;
    csp_singleflight_do(&ab_g, key, strlen(key), ab_fn, NULL, out, sizeof out, &sh);
    TCHECK(!"an abandoned flight returned");
}

static const char *const ab_keys[] = { "again", "later", "never" };

static void ab_main(void *arg)
{
    (void)arg;
    uint64_t base = parks_now();
    for (int k = 0; k < 3; k++)
        TCHECK_EQ(csp_go(ab_task, (void *)ab_keys[k]), 0);
    await_parks(base, 3); /* the leaders, in fn */
    for (int i = 0; i < 3; i++)
        for (int k = 0; k < 3; k++)
            TCHECK_EQ(csp_go(ab_task, (void *)ab_keys[k]), 0);
    await_parks(base, 12);
    TCHECK_EQ(atomic_load(&ab_runs), 3);
    /* return with all of them parked */
}

static void test_sf_abandoned_flights(void **state)
{
    (void)state;
    atomic_store(&ab_runs, 0);
    ab_gate = csp_chan_make(sizeof(int), 0);
    assert_non_null(ab_gate);
    T_RUN(ab_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    csp_chan_t *gate = ab_gate;
    ab_gate = NULL;
    csp_chan_release(gate);
    /* a plain thread, no runtime: the dead flight is not joined, fn runs */
    unsigned char out[4] = { 0 };
    int sh = -1;
    assert_int_equal(csp_singleflight_do(&ab_g, "again", 5, ab_fn, NULL, out, 4, &sh), 9);
    assert_int_equal(sh, 0);
    assert_true(all_bytes(out, 0x31, 4));
    assert_int_equal(atomic_load(&ab_runs), 4);
    /* the next runtime running (another generation): same */
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    memset(out, 0, sizeof out);
    assert_int_equal(csp_singleflight_do(&ab_g, "later", 5, ab_fn, NULL, out, 4, &sh), 9);
    assert_true(all_bytes(out, 0x31, 4));
    assert_int_equal(atomic_load(&ab_runs), 5);
    csp_shutdown();
    /* "never" is still abandoned in the table: destroy frees it */
    csp_singleflight_destroy(&ab_g);
    assert_int_equal(csp_singleflight_do(&ab_g, "never", 5, ab_fn, NULL, out, 4, &sh), 9);
    assert_int_equal(atomic_load(&ab_runs), 6);
    csp_singleflight_destroy(&ab_g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sf_bad_args),
        cmocka_unit_test(test_sf_no_flight_plain_thread),
        cmocka_unit_test(test_sf_collapse_1000_tasks),
        cmocka_unit_test(test_sf_out_size_mismatch),
        cmocka_unit_test(test_sf_different_keys),
        cmocka_unit_test(test_sf_forget_during_flight),
        cmocka_unit_test(test_sf_plain_threads),
        cmocka_unit_test(test_sf_stress_mixed),
        cmocka_unit_test(test_sf_shutdown),
        cmocka_unit_test(test_sf_abandoned_flights), /* last: frees parked tasks */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
