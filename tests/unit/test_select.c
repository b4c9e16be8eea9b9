/* ctest-timeout: 300 */
/* csp_select (include/csp/chan.h): poll and deadline forms, NULL cases, bad
 * input, send cases, closed cases, uniform choice among ready cases
 * (chi-square), 64-case selects, blocked selects woken by one channel with
 * the other cases' buffers untouched, no lost or duplicated values when
 * several channels fire at once, send and receive on the same channel,
 * selects matching selects, and plain threads.
 */
#define _GNU_SOURCE
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

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"

#include "task_join.h"

static const int sl_workers[] = { 1, 2, 8 };
#define SL_NW ((int)(sizeof sl_workers / sizeof sl_workers[0]))

#define SENTINEL 0x5A5A5A5A
#define STATUS_SENTINEL 12345

/* ------------------------------------------------------------------------ */
/* poll / deadline / NULL cases / bad input (tasks and plain threads)        */

static void basic_checks(void)
{
    csp_chan_t *unb = csp_chan_make(sizeof(int), 0);
    csp_chan_t *full = csp_chan_make(sizeof(int), 1);
    int one = 1;
    TCHECK_EQ(csp_chan_send(full, &one), 0);

    /* poll with nothing ready: CSP_EAGAIN, buffers and statuses untouched */
    int r0 = SENTINEL, s1 = 77, r2 = SENTINEL;
    csp_case_t cs[3] = { CSP_RECV_CASE(unb, &r0), CSP_SEND_CASE(full, &s1),
                         CSP_SEND_CASE(unb, &s1) };
    (void)r2;
    for (int i = 0; i < 3; i++)
        cs[i].status = STATUS_SENTINEL;
    TCHECK_EQ(csp_select(cs, 3, 0), CSP_EAGAIN);
    TCHECK_EQ(r0, SENTINEL);
    TCHECK_EQ(s1, 77);
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(cs[i].status, STATUS_SENTINEL);
    TCHECK_EQ(csp_chan_len(full), 1);

    /* deadline: CSP_ETIMEDOUT, never early */
    csp_time_t dl = csp_deadline_after(30 * CSP_MILLISECOND);
    TCHECK_EQ(csp_select(cs, 3, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    TCHECK_EQ(r0, SENTINEL);
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(cs[i].status, STATUS_SENTINEL);
    /* a passed deadline, nothing ready */
    TCHECK_EQ(csp_select(cs, 3, csp_now() - 1), CSP_ETIMEDOUT);
    TCHECK_EQ(csp_select(cs, 3, 1), CSP_ETIMEDOUT);
    TCHECK_EQ(csp_chan_len(full), 1);
    TCHECK_EQ(csp_chan_len(unb), 0);

    /* NULL channels mixed with a ready case: the ready one, always */
    for (int k = 0; k < 500; k++) {
        int a = SENTINEL, b = SENTINEL, c = SENTINEL;
        csp_case_t m[4] = { CSP_RECV_CASE(NULL, &a), CSP_RECV_CASE(full, &b),
                            CSP_SEND_CASE(NULL, &c), CSP_RECV_CASE(NULL, NULL) };
        int rc = csp_select(m, 4, k % 2 ? 0 : CSP_FOREVER);
        if (rc != 1) {
            TCHECK_EQ(rc, 1);
            break;
        }
        TCHECK_EQ(m[1].status, 0);
        TCHECK_EQ(b, k + 1);
        TCHECK(a == SENTINEL && c == SENTINEL);
        int nv = k + 2;
        TCHECK_EQ(csp_chan_send(full, &nv), 0);
    }

    /* all NULL: times out (after the deadline), polls EAGAIN */
    int x = SENTINEL;
    csp_case_t nul[3] = { CSP_RECV_CASE(NULL, &x), CSP_SEND_CASE(NULL, &x),
                          CSP_RECV_CASE(NULL, NULL) };
    dl = csp_deadline_after(50 * CSP_MILLISECOND);
    TCHECK_EQ(csp_select(nul, 3, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    TCHECK_EQ(csp_select(nul, 3, 0), CSP_EAGAIN);
    TCHECK_EQ(x, SENTINEL);

    /* n == 0 */
    TCHECK_EQ(csp_select(NULL, 0, 0), CSP_EAGAIN);
    TCHECK_EQ(csp_select(cs, 0, 0), CSP_EAGAIN);
    dl = csp_deadline_after(10 * CSP_MILLISECOND);
    TCHECK_EQ(csp_select(NULL, 0, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);

    /* bad input: CSP_EINVAL, nothing done */
    TCHECK_EQ(csp_select(NULL, 1, 0), CSP_EINVAL);
    TCHECK_EQ(csp_select(NULL, 3, CSP_FOREVER), CSP_EINVAL);
    int v = SENTINEL;
    csp_case_t bad[2] = { CSP_RECV_CASE(full, &v), CSP_RECV_CASE(unb, &v) };
    bad[1].dir = 0;
    TCHECK_EQ(csp_select(bad, 2, 0), CSP_EINVAL);
    bad[1].dir = 3;
    TCHECK_EQ(csp_select(bad, 2, CSP_FOREVER), CSP_EINVAL);
    bad[1].dir = -1;
    TCHECK_EQ(csp_select(bad, 2, 0), CSP_EINVAL);
    bad[1].chan = NULL; /* a bad dir is bad even on a NULL channel */
    TCHECK_EQ(csp_select(bad, 2, 0), CSP_EINVAL);
    /* send case with a NULL buf on a channel with elements */
    csp_case_t bad2[2] = { CSP_RECV_CASE(full, &v), CSP_SEND_CASE(unb, NULL) };
    TCHECK_EQ(csp_select(bad2, 2, 0), CSP_EINVAL);
    TCHECK_EQ(csp_select(bad2, 2, CSP_FOREVER), CSP_EINVAL);
    TCHECK_EQ(v, SENTINEL);
    TCHECK_EQ(csp_chan_len(full), 1); /* the ready case was not performed */
    /* ... but fine on a NULL channel or a signal channel */
    csp_chan_t *sig = csp_chan_make(0, 1);
    csp_case_t ok[2] = { CSP_SEND_CASE(NULL, NULL), CSP_SEND_CASE(sig, NULL) };
    TCHECK_EQ(csp_select(ok, 2, 0), 1);
    TCHECK_EQ(ok[1].status, 0);
    TCHECK_EQ(csp_chan_len(sig), 1);
    csp_case_t okr = CSP_RECV_CASE(sig, NULL);
    TCHECK_EQ(csp_select(&okr, 1, 0), 0);
    TCHECK_EQ(csp_chan_len(sig), 0);
    csp_chan_release(sig);

    /* recv case with a NULL buf discards */
    csp_case_t disc = CSP_RECV_CASE(full, NULL);
    TCHECK_EQ(csp_select(&disc, 1, 0), 0);
    TCHECK_EQ(csp_chan_len(full), 0);

    csp_chan_release(unb);
    csp_chan_release(full);
}

static void basic_main(void *arg)
{
    (void)arg;
    basic_checks();
}

static void test_select_basic(void **state)
{
    (void)state;
    /* a plain thread with no runtime */
    TC_RESET();
    basic_checks();
    TC_ASSERT_CLEAN();
    for (int w = 0; w < SL_NW; w++)
        J_RUN(basic_main, NULL, sl_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* closed cases                                                              */

typedef struct {
    unsigned char b[40];
} blob_t;

static int all_bytes(const void *p, int byte, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)byte)
            return 0;
    return 1;
}

static void closed_wake_recv(void *arg)
{
    csp_chan_t *c = arg;
    csp_sleep(10 * CSP_MILLISECOND);
    TCHECK_EQ(csp_chan_close(c), 0);
}

static void closed_main(void *arg)
{
    (void)arg;
    csp_chan_t *c = csp_chan_make(sizeof(blob_t), 0);
    csp_chan_t *never = csp_chan_make(sizeof(blob_t), 0);
    TCHECK_EQ(csp_chan_close(c), 0);
    /* a closed channel's recv case is ready: status CSP_ECLOSED, zero-filled */
    for (int k = 0; k < 50; k++) {
        blob_t a, b;
        memset(&a, 0xAA, sizeof a);
        memset(&b, 0xAA, sizeof b);
        csp_case_t cs[2] = { CSP_RECV_CASE(never, &a), CSP_RECV_CASE(c, &b) };
        int rc = csp_select(cs, 2, k % 2 ? 0 : CSP_FOREVER);
        TCHECK_EQ(rc, 1);
        TCHECK_EQ(cs[1].status, CSP_ECLOSED);
        TCHECK(all_bytes(&b, 0, sizeof b));
        TCHECK(all_bytes(&a, 0xAA, sizeof a));
    }
    /* a send case on a closed channel is chosen with CSP_ECLOSED */
    for (int k = 0; k < 50; k++) {
        blob_t a, b;
        memset(&a, 0xAA, sizeof a);
        memset(&b, 0x11, sizeof b);
        csp_case_t cs[2] = { CSP_RECV_CASE(never, &a), CSP_SEND_CASE(c, &b) };
        int rc = csp_select(cs, 2, k % 2 ? 0 : CSP_FOREVER);
        TCHECK_EQ(rc, 1);
        TCHECK_EQ(cs[1].status, CSP_ECLOSED);
        TCHECK(all_bytes(&b, 0x11, sizeof b));
        TCHECK(all_bytes(&a, 0xAA, sizeof a));
    }
    /* a buffered closed channel: the values first, status 0, then ECLOSED */
    csp_chan_t *bc = csp_chan_make(sizeof(int), 2);
    int v = 5;
    csp_chan_send(bc, &v);
    v = 6;
    csp_chan_send(bc, &v);
    csp_chan_close(bc);
    for (int k = 0; k < 3; k++) {
        v = SENTINEL;
        csp_case_t cs[2] = { CSP_RECV_CASE(NULL, NULL), CSP_RECV_CASE(bc, &v) };
        TCHECK_EQ(csp_select(cs, 2, 0), 1);
        TCHECK_EQ(cs[1].status, k < 2 ? 0 : CSP_ECLOSED);
        TCHECK_EQ(v, k == 0 ? 5 : k == 1 ? 6 : 0);
    }
    csp_chan_release(bc);

    /* close wakes a blocked select: recv case */
    csp_chan_t *c2 = csp_chan_make(sizeof(blob_t), 0);
    blob_t a, b;
    memset(&a, 0xAA, sizeof a);
    memset(&b, 0xAA, sizeof b);
    TCHECK_EQ(go_joined(closed_wake_recv, c2), 0);
    csp_case_t cs[2] = { CSP_RECV_CASE(never, &a), CSP_RECV_CASE(c2, &b) };
    cs[0].status = STATUS_SENTINEL;
    TCHECK_EQ(csp_select(cs, 2, csp_deadline_after(10 * CSP_SECOND)), 1);
    TCHECK_EQ(cs[1].status, CSP_ECLOSED);
    TCHECK_EQ(cs[0].status, STATUS_SENTINEL);
    TCHECK(all_bytes(&b, 0, sizeof b));
    TCHECK(all_bytes(&a, 0xAA, sizeof a));
    csp_chan_release(c2);
    /* close wakes a blocked select: send case */
    c2 = csp_chan_make(sizeof(blob_t), 0);
    memset(&b, 0x22, sizeof b);
    TCHECK_EQ(go_joined(closed_wake_recv, c2), 0);
    csp_case_t cs2[2] = { CSP_RECV_CASE(never, &a), CSP_SEND_CASE(c2, &b) };
    TCHECK_EQ(csp_select(cs2, 2, CSP_FOREVER), 1);
    TCHECK_EQ(cs2[1].status, CSP_ECLOSED);
    TCHECK(all_bytes(&b, 0x22, sizeof b));
    TCHECK(all_bytes(&a, 0xAA, sizeof a));
    csp_chan_release(c2);
    csp_chan_release(c);
    csp_chan_release(never);
}

static void test_select_closed(void **state)
{
    (void)state;
    for (int w = 0; w < SL_NW; w++)
        J_RUN(closed_main, NULL, sl_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* send cases                                                                */

static void sc_receiver(void *arg)
{
    csp_chan_t *c = arg;
    int v = 0;
    TCHECK_EQ(csp_chan_recv(c, &v), 0);
    TCHECK_EQ(v, 1000 + (int)csp_chan_cap(c)); /* see below: unique per channel */
    csp_chan_release(c);
}

static void send_cases_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < 40; round++) {
        /* two unbuffered channels; a receiver on one of them only.
         * Channel i is made with cap 0 for both, so give the values by index. */
        csp_chan_t *ch[2] = { csp_chan_make(sizeof(int), 0), csp_chan_make(sizeof(int), 0) };
        int target = round % 2;
        TCHECK_EQ(go_joined(sc_receiver, csp_chan_retain(ch[target])), 0);
        int vals[2] = { 1000, 1000 };
        csp_case_t cs[2] = { CSP_SEND_CASE(ch[0], &vals[0]), CSP_SEND_CASE(ch[1], &vals[1]) };
        if (round % 4 < 2)
            csp_sleep(CSP_MILLISECOND); /* sometimes the receiver parks first */
        int rc = csp_select(cs, 2, csp_deadline_after(10 * CSP_SECOND));
        TCHECK_EQ(rc, target);
        TCHECK_EQ(cs[target].status, 0);
        TCHECK_EQ(csp_chan_len(ch[0]) + csp_chan_len(ch[1]), 0);
        /* nothing is left for a receiver on the other channel */
        int x;
        TCHECK_EQ(csp_chan_try_recv(ch[1 - target], &x), CSP_EAGAIN);
        csp_chan_release(ch[0]);
        csp_chan_release(ch[1]);
    }
    /* buffered: the one with room is chosen */
    csp_chan_t *f = csp_chan_make(sizeof(int), 1), *e = csp_chan_make(sizeof(int), 1);
    int one = 1;
    csp_chan_send(f, &one);
    for (int k = 0; k < 100; k++) {
        int a = 10, b = 20 + k;
        csp_case_t cs[2] = { CSP_SEND_CASE(f, &a), CSP_SEND_CASE(e, &b) };
        TCHECK_EQ(csp_select(cs, 2, k % 2 ? 0 : CSP_FOREVER), 1);
        int got = 0;
        TCHECK_EQ(csp_chan_try_recv(e, &got), 0);
        TCHECK_EQ(got, 20 + k);
        TCHECK_EQ(csp_chan_len(f), 1);
    }
    /* a mixed select: the only ready case is a send */
    int r = SENTINEL, s = 9;
    csp_case_t mix[3] = { CSP_RECV_CASE(e, &r), CSP_SEND_CASE(f, &s), CSP_SEND_CASE(e, &s) };
    TCHECK_EQ(csp_select(mix, 3, 0), 2);
    TCHECK_EQ(r, SENTINEL);
    csp_chan_release(f);
    csp_chan_release(e);
}

static void test_select_send_cases(void **state)
{
    (void)state;
    for (int w = 0; w < SL_NW; w++)
        J_RUN(send_cases_main, NULL, sl_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* biased order respects causality: a case readied before another wins      */

enum { BC_N = 20000 };
static csp_chan_t *bc_first, *bc_second;

static void bc_producer(void *arg)
{
    (void)arg;
    for (int i = 0; i < BC_N; i++) {
        TCHECK_EQ(csp_chan_send(bc_first, &i), 0);  /* buffered (cap 1): returns at once */
        TCHECK_EQ(csp_chan_send(bc_second, &i), 0); /* unbuffered: waits for the select */
    }
}

static void bc_main(void *arg)
{
    (void)arg;
    bc_first = csp_chan_make(sizeof(int), 1);
    bc_second = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(csp_go(bc_producer, NULL), 0);
    int firsts = 0, seconds = 0, v = 0;
    while (seconds < BC_N) {
        csp_case_t cs[] = { CSP_RECV_CASE(bc_first, &v), CSP_RECV_CASE(bc_second, &v) };
        int i = csp_select_biased(cs, 2, CSP_FOREVER);
        TCHECK(i == 0 || i == 1);
        if (i == 0) {
            firsts++;
        } else if (i == 1) {
            seconds++;
            /* value i went into bc_first before bc_second was ready */
            if (firsts != seconds) {
                tc_fail(__FILE__, __LINE__, "item %d: case 1 won with case 0 ready", seconds - 1);
                break;
            }
        } else {
            break;
        }
    }
    csp_sleep(CSP_MILLISECOND);
    csp_chan_release(bc_first);
    csp_chan_release(bc_second);
}

static void test_select_biased_causal(void **state)
{
    (void)state;
    for (int w = 0; w < 3; w++)
        J_RUN(bc_main, NULL, sl_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* fairness: chi-square over always-ready cases                              */

enum { FAIR_N = 40000 };

/* Critical values of chi-square at p = 0.001 for df = 1, 3, 63. */
static double chi2_crit(int df)
{
    return df == 1 ? 10.828 : df == 3 ? 16.266 : df == 7 ? 24.322 : 103.442;
}

/* Runs FAIR_N selects over k buffered channels kept non-empty (and, when
 * with_send, k more buffered channels with room as send cases: 2k ready
 * cases); returns chi-square, or -1 on an error. With `last` false a
 * chi-square over the critical value is only returned, not reported. */
static double fairness_once(int k, int with_send, int with_nulls, bool last)
{
    enum { MAXK = 64 };
    csp_chan_t *ch[MAXK];
    csp_case_t cs[2 * MAXK + 2];
    int bufs[2 * MAXK + 2];
    long counts[2 * MAXK + 2] = { 0 };
    int n = 0;
    for (int i = 0; i < k; i++) {
        ch[i] = csp_chan_make(sizeof(int), 1);
        int v = i;
        csp_chan_send(ch[i], &v);
    }
    for (int i = 0; i < k; i++) {
        if (with_nulls && i == 1)
            cs[n++] = (csp_case_t)CSP_RECV_CASE(NULL, &bufs[0]);
        cs[n] = (csp_case_t)CSP_RECV_CASE(ch[i], &bufs[n]);
        n++;
    }
    csp_chan_t *out[MAXK] = { 0 };
    if (with_send)
        for (int i = 0; i < k; i++) {
            out[i] = csp_chan_make(sizeof(int), 1);
            bufs[n] = i;
            cs[n] = (csp_case_t)CSP_SEND_CASE(out[i], &bufs[n]);
            n++;
        }
    if (with_nulls)
        cs[n++] = (csp_case_t)CSP_SEND_CASE(NULL, &bufs[0]);
    int ready = 0;
    double err = 0;
    for (int t = 0; t < FAIR_N; t++) {
        int rc = csp_select(cs, (size_t)n, (t % 3) ? 0 : CSP_FOREVER);
        if (rc < 0 || rc >= n || cs[rc].chan == NULL || cs[rc].status != 0) {
            tc_fail(__FILE__, __LINE__, "select returned %d", rc);
            err = -1;
            break;
        }
        counts[rc]++;
        /* refill: put the value back / take the sent one out */
        if (cs[rc].dir == CSP_RECV)
            TCHECK_EQ(csp_chan_try_send(cs[rc].chan, cs[rc].buf), 0);
        else
            TCHECK_EQ(csp_chan_try_recv(cs[rc].chan, NULL), 0);
    }
    double chi = 0;
    for (int i = 0; i < n; i++)
        if (cs[i].chan)
            ready++;
    double expect = (double)FAIR_N / ready;
    for (int i = 0; i < n; i++) {
        if (!cs[i].chan) {
            TCHECK_EQ(counts[i], 0);
            continue;
        }
        chi += (counts[i] - expect) * (counts[i] - expect) / expect;
    }
    for (int i = 0; i < k; i++) {
        csp_chan_release(ch[i]);
        csp_chan_release(out[i]);
    }
    if (err < 0)
        return err;
    if (chi >= chi2_crit(ready - 1) && last) {
        char msg[512];
        int off = snprintf(msg, sizeof msg, "chi2 %.2f (crit %.2f, %d ready) counts:", chi,
                           chi2_crit(ready - 1), ready);
        for (int i = 0; i < n && off < (int)sizeof msg - 16; i++)
            off += snprintf(msg + off, sizeof msg - off, " %ld", counts[i]);
        tc_fail(__FILE__, __LINE__, "%s", msg);
    }
    return chi;
}

/* A fair select exceeds the p = 0.001 critical value once in 1,000 runs, and
 * a test_select run does ~20 of them: so a run over the value is repeated,
 * and only two in a row fail (p = 1e-6 for a fair select; a biased one
 * fails both). */
static double fairness_run(int k, int with_send, int with_nulls)
{
    double chi = fairness_once(k, with_send, with_nulls, false);
    if (chi < 0 || chi < chi2_crit((with_send ? 2 * k : k) - 1))
        return chi;
    return fairness_once(k, with_send, with_nulls, true);
}

static void fair_main(void *arg)
{
    (void)arg;
    fairness_run(2, 0, 0);
    fairness_run(4, 0, 0);
    fairness_run(2, 0, 1);
    fairness_run(4, 0, 1);
    fairness_run(2, 1, 0);  /* 2 recv + 2 send: 4 ready */
    fairness_run(4, 1, 1);  /* 8 ready */
}

static void test_select_fairness(void **state)
{
    (void)state;
    /* tasks (the worker's generator) and a plain thread (thread-local one) */
    J_RUN(fair_main, NULL, 1, CSP_SPAWN_HELP_FIRST);
    J_RUN(fair_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    TC_RESET();
    fair_main(NULL);
    TC_ASSERT_CLEAN();
}

static void fair64_main(void *arg)
{
    (void)arg;
    fairness_run(64, 0, 0); /* 40,000 over 64: ~625 each; df 63 */
}

static void test_select_fairness_64(void **state)
{
    (void)state;
    J_RUN(fair64_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* 64 cases, one becomes ready from another task                             */

enum { BIG_N = 64 };
typedef struct {
    csp_chan_t *ch;
    int value;
    int delay_ms;
} wake_arg_t;

static csp_wg_t big_wg;

static void waker_send(void *arg)
{
    wake_arg_t *a = arg;
    csp_sleep(a->delay_ms * CSP_MILLISECOND);
    TCHECK_EQ(csp_chan_send(a->ch, &a->value), 0);
    csp_wg_done(&big_wg);
}

static void waker_recv(void *arg)
{
    wake_arg_t *a = arg;
    csp_sleep(a->delay_ms * CSP_MILLISECOND);
    int v = 0;
    TCHECK_EQ(csp_chan_recv(a->ch, &v), 0);
    TCHECK_EQ(v, a->value);
    csp_wg_done(&big_wg);
}

static void big_main(void *arg)
{
    (void)arg;
    csp_chan_t *ch[BIG_N];
    for (int i = 0; i < BIG_N; i++)
        ch[i] = csp_chan_make(sizeof(int), (size_t)(i % 3 == 0)); /* some buffered */
    uint64_t s = 0x1234567;
    for (int round = 0; round < 60; round++) {
        s = s * 6364136223846793005ULL + 1442695040888963407ULL;
        int target = (int)((s >> 33) % BIG_N);
        /* sometimes the target is a send case (on an unbuffered channel, so
         * that it is not ready at once) */
        int as_send = round % 3 == 2 && csp_chan_cap(ch[target]) == 0;
        int bufs[BIG_N];
        csp_case_t cs[BIG_N];
        for (int i = 0; i < BIG_N; i++) {
            bufs[i] = SENTINEL;
            if (as_send && i == target) {
                bufs[i] = 7000 + round;
                cs[i] = (csp_case_t)CSP_SEND_CASE(ch[i], &bufs[i]);
            } else {
                cs[i] = (csp_case_t)CSP_RECV_CASE(ch[i], &bufs[i]);
            }
            cs[i].status = STATUS_SENTINEL;
        }
        wake_arg_t wa = { ch[target], as_send ? 7000 + round : 1000 + round, round % 3 };
        csp_wg_add(&big_wg, 1);
        TCHECK_EQ(go_joined(as_send ? waker_recv : waker_send, &wa), 0);
        int rc = csp_select(cs, BIG_N, csp_deadline_after(10 * CSP_SECOND));
        TCHECK_EQ(rc, target);
        TCHECK_EQ(cs[target].status, 0);
        TCHECK_EQ(bufs[target], as_send ? 7000 + round : 1000 + round);
        for (int i = 0; i < BIG_N; i++)
            if (i != target && (bufs[i] != SENTINEL || cs[i].status != STATUS_SENTINEL)) {
                tc_fail(__FILE__, __LINE__, "round %d: unchosen case %d touched", round, i);
                break;
            }
        TCHECK_EQ(csp_wg_wait(&big_wg), 0); /* the waker is done with wa */
        for (int i = 0; i < BIG_N; i++)
            TCHECK_EQ(csp_chan_len(ch[i]), 0);
    }
    for (int i = 0; i < BIG_N; i++)
        csp_chan_release(ch[i]);
}

static void test_select_64_cases(void **state)
{
    (void)state;
    for (int w = 0; w < SL_NW; w++) {
        memset(&big_wg, 0, sizeof big_wg);
        J_RUN(big_main, NULL, sl_workers[w], CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* several channels firing at once: no lost or duplicated values             */

enum { MF_CH = 4, MF_CONSUMERS = 16 };
#define MF_PER CSP_TEST_SCALE(50000)
static csp_chan_t *mf_ch[MF_CH];
static atomic_uchar *mf_seen;
static atomic_long mf_total;
static csp_wg_t mf_prod_wg, mf_cons_wg;

static void mf_producer(void *arg)
{
    int p = (int)(uintptr_t)arg;
    for (long i = 0; i < MF_PER; i++) {
        long v = p * MF_PER + i;
        if (i % 3 == 0) {
            /* a send through a select too */
            csp_case_t c = CSP_SEND_CASE(mf_ch[p], &v);
            TCHECK_EQ(csp_select(&c, 1, CSP_FOREVER), 0);
        } else {
            TCHECK_EQ(csp_chan_send(mf_ch[p], &v), 0);
        }
    }
    TCHECK_EQ(csp_chan_close(mf_ch[p]), 0);
    csp_wg_done(&mf_prod_wg);
}

static void mf_consumer(void *arg)
{
    (void)arg;
    long bufs[MF_CH];
    csp_case_t cs[MF_CH];
    for (int i = 0; i < MF_CH; i++)
        cs[i] = (csp_case_t)CSP_RECV_CASE(mf_ch[i], &bufs[i]);
    int open = MF_CH;
    long n = 0;
    while (open > 0) {
        for (int i = 0; i < MF_CH; i++)
            bufs[i] = -7;
        int rc = csp_select(cs, MF_CH, CSP_FOREVER);
        if (rc < 0 || rc >= MF_CH) {
            TCHECK_EQ(rc, 0);
            break;
        }
        for (int i = 0; i < MF_CH; i++)
            if (i != rc && bufs[i] != -7)
                TCHECK(!"unchosen buffer written");
        if (cs[rc].status == CSP_ECLOSED) {
            TCHECK_EQ(bufs[rc], 0);
            cs[rc].chan = NULL; /* Go's idiom: a nil channel is never ready */
            open--;
            continue;
        }
        long v = bufs[rc];
        if (v / MF_PER != rc || v < 0) {
            TCHECK(!"value from the wrong channel");
            continue;
        }
        atomic_fetch_add_explicit(&mf_seen[v], 1, memory_order_relaxed);
        n++;
    }
    atomic_fetch_add(&mf_total, n);
    csp_wg_done(&mf_cons_wg);
}

static void mf_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    for (int i = 0; i < MF_CH; i++)
        mf_ch[i] = csp_chan_make(sizeof(long), cap);
    csp_wg_add(&mf_cons_wg, MF_CONSUMERS);
    for (int i = 0; i < MF_CONSUMERS; i++)
        TCHECK_EQ(go_joined(mf_consumer, NULL), 0);
    csp_wg_add(&mf_prod_wg, MF_CH);
    for (int i = 0; i < MF_CH; i++)
        TCHECK_EQ(go_joined(mf_producer, (void *)(uintptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&mf_prod_wg), 0);
    TCHECK_EQ(csp_wg_wait(&mf_cons_wg), 0);
    for (int i = 0; i < MF_CH; i++)
        csp_chan_release(mf_ch[i]);
}

static void test_select_no_lost_values(void **state)
{
    (void)state;
    static const size_t caps[] = { 0, 1, 64 };
    size_t total = (size_t)MF_CH * MF_PER;
    mf_seen = malloc(total);
    assert_non_null(mf_seen);
    for (int w = 0; w < SL_NW; w++)
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            memset((void *)mf_seen, 0, total);
            memset(&mf_prod_wg, 0, sizeof mf_prod_wg);
            memset(&mf_cons_wg, 0, sizeof mf_cons_wg);
            atomic_store(&mf_total, 0);
            J_RUN(mf_main, (void *)(uintptr_t)caps[k], sl_workers[w], CSP_SPAWN_HELP_FIRST);
            assert_int_equal(atomic_load(&mf_total), (long)total);
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < total; i++)
                if (mf_seen[i] != 1 && bad++ == 0)
                    first = i;
            if (bad)
                print_error("workers %d cap %zu: %zu values not received exactly once "
                            "(first %zu: %d times)\n",
                            sl_workers[w], caps[k], bad, first, (int)mf_seen[first]);
            assert_int_equal(bad, 0);
        }
    free((void *)mf_seen);
}

/* ------------------------------------------------------------------------ */
/* send and recv cases on the same channel; the same channel twice           */

static void same_peer_recv(void *arg)
{
    csp_chan_t *c = arg;
    csp_sleep(2 * CSP_MILLISECOND);
    int v = 0;
    TCHECK_EQ(csp_chan_recv(c, &v), 0);
    TCHECK_EQ(v, 111);
}

static void same_peer_send(void *arg)
{
    csp_chan_t *c = arg;
    csp_sleep(2 * CSP_MILLISECOND);
    int v = 222;
    TCHECK_EQ(csp_chan_send(c, &v), 0);
}

static void same_main(void *arg)
{
    (void)arg;
    csp_chan_t *c = csp_chan_make(sizeof(int), 0);
    /* unbuffered: a select never matches itself */
    int s = 111, r = SENTINEL;
    csp_case_t cs[2] = { CSP_SEND_CASE(c, &s), CSP_RECV_CASE(c, &r) };
    TCHECK_EQ(csp_select(cs, 2, 0), CSP_EAGAIN);
    csp_time_t dl = csp_deadline_after(20 * CSP_MILLISECOND);
    TCHECK_EQ(csp_select(cs, 2, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    TCHECK_EQ(r, SENTINEL);
    /* a receiver comes: the send case */
    for (int k = 0; k < 20; k++) {
        TCHECK_EQ(go_joined(same_peer_recv, c), 0);
        r = SENTINEL;
        TCHECK_EQ(csp_select(cs, 2, CSP_FOREVER), 0);
        TCHECK_EQ(r, SENTINEL);
        /* a sender comes: the recv case */
        TCHECK_EQ(go_joined(same_peer_send, c), 0);
        TCHECK_EQ(csp_select(cs, 2, CSP_FOREVER), 1);
        TCHECK_EQ(r, 222);
    }
    csp_sleep(5 * CSP_MILLISECOND);
    csp_chan_release(c);

    /* buffered cap 2: empty -> only the send; full -> only the recv;
     * one in it -> both ready, both chosen sometimes */
    c = csp_chan_make(sizeof(int), 2);
    cs[0].chan = cs[1].chan = c;
    TCHECK_EQ(csp_select(cs, 2, 0), 0);
    TCHECK_EQ(csp_chan_len(c), 1);
    TCHECK_EQ(csp_chan_send(c, &s), 0);
    r = SENTINEL;
    TCHECK_EQ(csp_select(cs, 2, 0), 1);
    TCHECK_EQ(r, 111);
    TCHECK_EQ(csp_chan_len(c), 1);
    int chosen[2] = { 0, 0 };
    for (int k = 0; k < 2000; k++) {
        int rc = csp_select(cs, 2, 0);
        if (rc != 0 && rc != 1) {
            TCHECK(rc == 0 || rc == 1);
            break;
        }
        chosen[rc]++;
        /* back to one element */
        if (rc == 0)
            TCHECK_EQ(csp_chan_try_recv(c, NULL), 0);
        else
            TCHECK_EQ(csp_chan_try_send(c, &s), 0);
        TCHECK_EQ(csp_chan_len(c), 1);
    }
    TCHECK(chosen[0] > 800 && chosen[1] > 800);
    csp_chan_release(c);

    /* the same channel in two recv cases: one receives, once */
    c = csp_chan_make(sizeof(int), 0);
    int r0 = SENTINEL, r1 = SENTINEL;
    csp_case_t dup[3] = { CSP_RECV_CASE(c, &r0), CSP_RECV_CASE(NULL, NULL),
                          CSP_RECV_CASE(c, &r1) };
    for (int k = 0; k < 20; k++) {
        r0 = r1 = SENTINEL;
        TCHECK_EQ(go_joined(same_peer_send, c), 0);
        int rc = csp_select(dup, 3, CSP_FOREVER);
        TCHECK(rc == 0 || rc == 2);
        TCHECK_EQ(rc == 0 ? r0 : r1, 222);
        TCHECK_EQ(rc == 0 ? r1 : r0, SENTINEL);
        TCHECK_EQ(csp_chan_try_recv(c, NULL), CSP_EAGAIN);
    }
    csp_sleep(5 * CSP_MILLISECOND);
    csp_chan_release(c);
}

static void test_select_same_channel(void **state)
{
    (void)state;
    for (int w = 0; w < SL_NW; w++)
        J_RUN(same_main, NULL, sl_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* two selects matching each other (sender sudog of one select claimed by the
 * other's poll), consistent choices                                         */

enum { XS_ROUNDS = 2000 };
static csp_chan_t *xs_a, *xs_b;
static int xs_choice_left[XS_ROUNDS], xs_choice_right[XS_ROUNDS];
static csp_wg_t xs_wg;

static void xs_left(void *arg)
{
    (void)arg;
    for (int i = 0; i < XS_ROUNDS; i++) {
        int out = i, in = SENTINEL;
        /* send i on a, or receive on b */
        csp_case_t cs[2] = { CSP_SEND_CASE(xs_a, &out), CSP_RECV_CASE(xs_b, &in) };
        int rc = csp_select(cs, 2, CSP_FOREVER);
        xs_choice_left[i] = rc;
        if (rc == 1)
            TCHECK_EQ(in, -i);
        else
            TCHECK_EQ(in, SENTINEL);
    }
    csp_wg_done(&xs_wg);
}

static void xs_right(void *arg)
{
    (void)arg;
    for (int i = 0; i < XS_ROUNDS; i++) {
        int out = -i, in = SENTINEL;
        csp_case_t cs[2] = { CSP_RECV_CASE(xs_a, &in), CSP_SEND_CASE(xs_b, &out) };
        int rc = csp_select(cs, 2, CSP_FOREVER);
        xs_choice_right[i] = rc;
        if (rc == 0)
            TCHECK_EQ(in, i);
        else
            TCHECK_EQ(in, SENTINEL);
    }
    csp_wg_done(&xs_wg);
}

static void xs_main(void *arg)
{
    (void)arg;
    xs_a = csp_chan_make(sizeof(int), 0);
    xs_b = csp_chan_make(sizeof(int), 0);
    csp_wg_add(&xs_wg, 2);
    TCHECK_EQ(go_joined(xs_left, NULL), 0);
    TCHECK_EQ(go_joined(xs_right, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&xs_wg), 0);
    int via_a = 0;
    for (int i = 0; i < XS_ROUNDS; i++) {
        /* left sent on a <=> right received on a */
        if ((xs_choice_left[i] == 0) != (xs_choice_right[i] == 0)) {
            tc_fail(__FILE__, __LINE__, "round %d: left chose %d, right chose %d", i,
                    xs_choice_left[i], xs_choice_right[i]);
            break;
        }
        via_a += xs_choice_left[i] == 0;
    }
    csp_chan_release(xs_a);
    csp_chan_release(xs_b);
}

static void test_select_vs_select(void **state)
{
    (void)state;
    for (int w = 0; w < SL_NW; w++)
        for (int rep = 0; rep < 2; rep++) {
            memset(&xs_wg, 0, sizeof xs_wg);
            J_RUN(xs_main, NULL, sl_workers[w], rep ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST);
        }
}

/* ------------------------------------------------------------------------ */
/* plain threads                                                             */

enum { PS_N = 5000 };
static csp_chan_t *ps_ch[3];
static csp_wg_t ps_wg;

static void ps_task_sender(void *arg)
{
    int i = (int)(uintptr_t)arg;
    for (int k = 0; k < PS_N; k++) {
        int v = i * PS_N + k;
        TCHECK_EQ(csp_chan_send(ps_ch[i], &v), 0);
    }
    csp_wg_done(&ps_wg);
}

static void *ps_thread_select_recv(void *arg)
{
    long *sum = arg;
    int bufs[2];
    csp_case_t cs[2] = { CSP_RECV_CASE(ps_ch[0], &bufs[0]), CSP_RECV_CASE(ps_ch[1], &bufs[1]) };
    int open = 2;
    int last[2] = { -1, -1 };
    while (open) {
        int rc = csp_select(cs, 2, csp_deadline_after(30 * CSP_SECOND));
        if (rc != 0 && rc != 1) {
            TCHECK_EQ(rc, 0);
            break;
        }
        if (cs[rc].status == CSP_ECLOSED) {
            cs[rc].chan = NULL;
            open--;
            continue;
        }
        TCHECK_EQ(bufs[rc] / PS_N, rc);
        TCHECK(bufs[rc] > last[rc]); /* per channel FIFO */
        last[rc] = bufs[rc];
        *sum += bufs[rc];
    }
    return NULL;
}

static void *ps_thread_select_send(void *arg)
{
    (void)arg;
    /* sends 0..PS_N-1 through select (with a never-ready NULL case) */
    for (int k = 0; k < PS_N; k++) {
        int v = k;
        csp_case_t cs[2] = { CSP_RECV_CASE(NULL, NULL), CSP_SEND_CASE(ps_ch[2], &v) };
        TCHECK_EQ(csp_select(cs, 2, CSP_FOREVER), 1);
    }
    TCHECK_EQ(csp_chan_close(ps_ch[2]), 0);
    return NULL;
}

static void ps_task_recv(void *arg)
{
    long *sum = arg;
    int v, rc, expect = 0;
    while ((rc = csp_chan_recv(ps_ch[2], &v)) == 0) {
        TCHECK_EQ(v, expect);
        expect++;
        *sum += v;
    }
    TCHECK_EQ(rc, CSP_ECLOSED);
    csp_wg_done(&ps_wg);
}

static void test_select_plain_threads(void **state)
{
    (void)state;
    const long n = PS_N;
    for (int w = 0; w < SL_NW; w++)
        for (size_t cap = 0; cap <= 4; cap += 4) {
            csp_config_t cfg = { .workers = sl_workers[w] };
            TC_RESET();
            assert_int_equal(csp_init(&cfg), 0);
            for (int i = 0; i < 3; i++)
                ps_ch[i] = csp_chan_make(sizeof(int), cap);
            memset(&ps_wg, 0, sizeof ps_wg);
            long sum_recv = 0, sum_task = 0;
            pthread_t rt, st;
            assert_int_equal(pthread_create(&rt, NULL, ps_thread_select_recv, &sum_recv), 0);
            assert_int_equal(pthread_create(&st, NULL, ps_thread_select_send, NULL), 0);
            csp_wg_add(&ps_wg, 3);
            assert_int_equal(go_joined(ps_task_sender, (void *)(uintptr_t)0), 0);
            assert_int_equal(go_joined(ps_task_sender, (void *)(uintptr_t)1), 0);
            assert_int_equal(go_joined(ps_task_recv, &sum_task), 0);
            csp_wg_wait(&ps_wg);
            csp_chan_close(ps_ch[0]);
            csp_chan_close(ps_ch[1]);
            pthread_join(rt, NULL);
            pthread_join(st, NULL);
            csp_wg_wait(&join_wg);
            csp_shutdown();
            TC_ASSERT_CLEAN();
            /* sum of 0..2n-1 and of 0..n-1 */
            assert_int_equal(sum_recv, (2 * n - 1) * (2 * n) / 2);
            assert_int_equal(sum_task, (n - 1) * n / 2);
            for (int i = 0; i < 3; i++)
                csp_chan_release(ps_ch[i]);
        }
}

/* two plain threads, no runtime: a blocked select woken by the other thread */
static csp_chan_t *nr_ch[3];

static void *nr_thread(void *arg)
{
    (void)arg;
    for (int k = 0; k < 2000; k++) {
        int v = k;
        TCHECK_EQ(csp_chan_send(nr_ch[k % 3], &v), 0);
    }
    return NULL;
}

static void test_select_plain_threads_no_runtime(void **state)
{
    (void)state;
    TC_RESET();
    for (int i = 0; i < 3; i++)
        nr_ch[i] = csp_chan_make(sizeof(int), 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, nr_thread, NULL), 0);
    for (int k = 0; k < 2000; k++) {
        int b[3] = { SENTINEL, SENTINEL, SENTINEL };
        csp_case_t cs[3] = { CSP_RECV_CASE(nr_ch[0], &b[0]), CSP_RECV_CASE(nr_ch[1], &b[1]),
                             CSP_RECV_CASE(nr_ch[2], &b[2]) };
        int rc = csp_select(cs, 3, csp_deadline_after(30 * CSP_SECOND));
        assert_int_equal(rc, k % 3);
        assert_int_equal(b[rc], k);
        for (int i = 0; i < 3; i++)
            if (i != rc)
                assert_int_equal(b[i], SENTINEL);
    }
    pthread_join(th, NULL);
    TC_ASSERT_CLEAN();
    for (int i = 0; i < 3; i++)
        csp_chan_release(nr_ch[i]);
}

/* ------------------------------------------------------------------------ */
/* all-NULL select with CSP_FOREVER blocks until shutdown                    */

static atomic_int sd_result = 1;
static atomic_int sd_started;

static void sd_task(void *arg)
{
    (void)arg;
    csp_case_t cs[2] = { CSP_RECV_CASE(NULL, NULL), CSP_SEND_CASE(NULL, NULL) };
    atomic_store(&sd_started, 1);
    atomic_store(&sd_result, csp_select(cs, 2, CSP_FOREVER));
}

static void test_select_all_null_until_shutdown(void **state)
{
    (void)state;
    csp_config_t cfg = { .workers = 2 };
    atomic_store(&sd_result, 1);
    atomic_store(&sd_started, 0);
    assert_int_equal(csp_init(&cfg), 0);
    assert_int_equal(csp_go(sd_task, NULL), 0);
    while (!atomic_load(&sd_started))
        csp_sleep(CSP_MILLISECOND);
    csp_sleep(20 * CSP_MILLISECOND);
    assert_int_equal(atomic_load(&sd_result), 1); /* still blocked */
    tc_watchdog_start(30, "csp_shutdown with a task in an all-NULL select");
    csp_shutdown();
    tc_watchdog_stop();
    int r = atomic_load(&sd_result);
    /* the task either got CSP_ESHUTDOWN or was freed while blocked */
    assert_true(r == CSP_ESHUTDOWN || r == 1);
}


/* ------------------------------------------------------------------------ */
/* select deadlines racing with values on several channels                   */

enum { SR_CH = 3, SR_SENDERS = 3, SR_SELECTORS = 4 };
#define SR_ITERS TC_SCALE(3000)
static csp_chan_t *sr_ch[SR_CH];
static atomic_long sr_sent_sum, sr_sent_n, sr_recv_sum, sr_recv_n;
static atomic_int sr_senders_left;

static void sr_sender(void *arg)
{
    long id = (long)(uintptr_t)arg;
    long sum = 0, n = 0;
    for (long i = 0; i < SR_ITERS; i++) {
        long v = id * 1000000 + i + 1, v2 = v + 500000;
        /* a select sending on one of two channels, or a plain timed send */
        int rc;
        if (i % 2) {
            csp_case_t cs[2] = { CSP_SEND_CASE(sr_ch[id % SR_CH], &v),
                                 CSP_SEND_CASE(sr_ch[(id + 1) % SR_CH], &v2) };
            rc = csp_select(cs, 2, csp_deadline_after((i % 4) * 25 * CSP_MICROSECOND));
            if (rc == 0 || rc == 1) {
                TCHECK_EQ(cs[rc].status, 0);
                sum += rc == 0 ? v : v2;
                n++;
                continue;
            }
        } else {
            rc = csp_chan_send_until(sr_ch[(id + i) % SR_CH], &v,
                                     csp_deadline_after((i % 4) * 25 * CSP_MICROSECOND));
            if (rc == 0) {
                sum += v;
                n++;
                continue;
            }
        }
        if (rc != CSP_ETIMEDOUT && rc != CSP_EAGAIN)
            TCHECK_EQ(rc, CSP_ETIMEDOUT);
    }
    atomic_fetch_add(&sr_sent_sum, sum);
    atomic_fetch_add(&sr_sent_n, n);
    if (atomic_fetch_sub(&sr_senders_left, 1) == 1)
        for (int i = 0; i < SR_CH; i++)
            TCHECK_EQ(csp_chan_close(sr_ch[i]), 0);
}

static void sr_selector(void *arg)
{
    (void)arg;
    long sum = 0, n = 0;
    long bufs[SR_CH];
    csp_case_t cs[SR_CH];
    for (int i = 0; i < SR_CH; i++)
        cs[i] = (csp_case_t)CSP_RECV_CASE(sr_ch[i], &bufs[i]);
    int open = SR_CH;
    while (open) {
        for (int i = 0; i < SR_CH; i++)
            bufs[i] = -1;
        int rc = csp_select(cs, SR_CH, csp_deadline_after(40 * CSP_MICROSECOND));
        if (rc == CSP_ETIMEDOUT) {
            for (int i = 0; i < SR_CH; i++)
                TCHECK_EQ(bufs[i], -1);
            continue;
        }
        if (rc < 0 || rc >= SR_CH) {
            TCHECK_EQ(rc, 0);
            break;
        }
        for (int i = 0; i < SR_CH; i++)
            if (i != rc)
                TCHECK_EQ(bufs[i], -1);
        if (cs[rc].status == CSP_ECLOSED) {
            TCHECK_EQ(bufs[rc], 0);
            cs[rc].chan = NULL;
            open--;
            continue;
        }
        TCHECK(bufs[rc] > 0);
        sum += bufs[rc];
        n++;
    }
    atomic_fetch_add(&sr_recv_sum, sum);
    atomic_fetch_add(&sr_recv_n, n);
}

static void sr_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    for (int i = 0; i < SR_CH; i++)
        sr_ch[i] = csp_chan_make(sizeof(long), cap);
    atomic_store(&sr_senders_left, SR_SENDERS);
    for (int i = 0; i < SR_SELECTORS; i++)
        TCHECK_EQ(go_joined(sr_selector, NULL), 0);
    for (int i = 0; i < SR_SENDERS; i++)
        TCHECK_EQ(go_joined(sr_sender, (void *)(uintptr_t)i), 0);
}

static void test_select_deadline_races(void **state)
{
    (void)state;
    for (int w = 0; w < SL_NW; w++)
        for (size_t cap = 0; cap <= 1; cap++) {
            atomic_store(&sr_sent_sum, 0);
            atomic_store(&sr_sent_n, 0);
            atomic_store(&sr_recv_sum, 0);
            atomic_store(&sr_recv_n, 0);
            J_RUN(sr_main, (void *)(uintptr_t)cap, sl_workers[w], CSP_SPAWN_HELP_FIRST);
            assert_int_equal(atomic_load(&sr_recv_n), atomic_load(&sr_sent_n));
            assert_int_equal(atomic_load(&sr_recv_sum), atomic_load(&sr_sent_sum));
            assert_true(atomic_load(&sr_sent_n) > 0);
            for (int i = 0; i < SR_CH; i++)
                csp_chan_release(sr_ch[i]);
        }
}

/* ------------------------------------------------------------------------ */
/* biased select: the first ready case in array order wins                  */

static void biased_main(void *arg)
{
    (void)arg;
    csp_chan_t *hi = csp_chan_make(sizeof(int), 4), *lo = csp_chan_make(sizeof(int), 4);
    TCHECK(hi && lo);
    int x = 7;
    /* both ready: always the first */
    for (int i = 0; i < 1000; i++) {
        TCHECK_EQ(csp_chan_try_send(hi, &x), 0);
        TCHECK_EQ(csp_chan_try_send(lo, &x), 0);
        int a = SENTINEL, b = SENTINEL;
        int r = csp_select_biased((csp_case_t[]){ CSP_RECV_CASE(hi, &a), CSP_RECV_CASE(lo, &b) },
                                  2, 0);
        TCHECK_EQ(r, 0);
        TCHECK_EQ(a, 7);
        TCHECK_EQ(b, SENTINEL); /* the unchosen case's buffer is untouched */
        TCHECK_EQ(csp_chan_try_recv(lo, &b), 0);
    }
    /* only the second ready: the second; NULL first case skipped */
    TCHECK_EQ(csp_chan_try_send(lo, &x), 0);
    int a = SENTINEL, b = SENTINEL;
    TCHECK_EQ(csp_select_biased((csp_case_t[]){ CSP_RECV_CASE(NULL, &a), CSP_RECV_CASE(hi, &a),
                                                CSP_RECV_CASE(lo, &b) },
                                3, 0),
              2);
    TCHECK_EQ(b, 7);
    /* none ready: poll, deadline, bad input as csp_select */
    TCHECK_EQ(csp_select_biased((csp_case_t[]){ CSP_RECV_CASE(hi, &a) }, 1, 0), CSP_EAGAIN);
    TCHECK_EQ(csp_select_biased((csp_case_t[]){ CSP_RECV_CASE(hi, &a) }, 1,
                                csp_deadline_after(5 * CSP_MILLISECOND)),
              CSP_ETIMEDOUT);
    TCHECK_EQ(csp_select_biased(NULL, 1, 0), CSP_EINVAL);
    csp_chan_release(hi);
    csp_chan_release(lo);
}

static void test_select_biased(void **state)
{
    (void)state;
    T_RUN(biased_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select_basic),
        cmocka_unit_test(test_select_plain_threads_no_runtime),
        cmocka_unit_test(test_select_closed),
        cmocka_unit_test(test_select_send_cases),
        cmocka_unit_test(test_select_fairness),
        cmocka_unit_test(test_select_biased),
        cmocka_unit_test(test_select_biased_causal),
        cmocka_unit_test(test_select_fairness_64),
        cmocka_unit_test(test_select_64_cases),
        cmocka_unit_test(test_select_no_lost_values),
        cmocka_unit_test(test_select_same_channel),
        cmocka_unit_test(test_select_vs_select),
        cmocka_unit_test(test_select_plain_threads),
        cmocka_unit_test(test_select_deadline_races),
        cmocka_unit_test(test_select_all_null_until_shutdown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
