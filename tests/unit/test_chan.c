/* ctest-timeout: 300 */
/* Channels (include/csp/chan.h): Go's chan semantics from tasks and plain
 * threads - unbuffered rendezvous, buffered FIFO, len/cap, close (drain, then
 * CSP_ECLOSED zero-filled; wakes every blocked sender and receiver), try and
 * deadline forms, bad input, signal channels, discarding receives, large
 * elements, MPMC integrity, plain threads with and without a runtime,
 * reference counting, typed channels, and a randomized model test against a
 * sequential model of Go's semantics.
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

/* Worker counts for the concurrency tests: one, two, oversubscribed. */
static const int ch_workers[] = { 1, 2, 8 };
#define CH_NW ((int)(sizeof ch_workers / sizeof ch_workers[0]))
#define CH_REPS 2

static int all_bytes(const void *p, int byte, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (unsigned char)byte)
            return 0;
    return 1;
}

/* ------------------------------------------------------------------------ */
/* unbuffered rendezvous                                                     */

static csp_chan_t *rv_ch;
static atomic_int rv_sent;            /* set by the sender after send returns */
static _Atomic csp_time_t rv_sent_at; /* when send returned */
static csp_wg_t rv_wg;

static void rv_sender(void *arg)
{
    (void)arg;
    int v = 4242;
    TCHECK_EQ(csp_chan_send(rv_ch, &v), 0);
    atomic_store(&rv_sent_at, csp_now());
    atomic_store(&rv_sent, 1);
    csp_wg_done(&rv_wg);
}

static void rv_main(void *arg)
{
    (void)arg;
    rv_ch = csp_chan_make(sizeof(int), 0);
    TCHECK(rv_ch != NULL);
    atomic_store(&rv_sent, 0);
    atomic_store(&rv_sent_at, 0);
    csp_wg_add(&rv_wg, 1);
    TCHECK_EQ(go_joined(rv_sender, NULL), 0);
    csp_sleep(20 * CSP_MILLISECOND);
    /* the sender is parked in send: it has not returned */
    TCHECK_EQ(atomic_load(&rv_sent), 0);
    TCHECK_EQ(csp_chan_len(rv_ch), 0);
    csp_time_t before = csp_now();
    int v = 0;
    TCHECK_EQ(csp_chan_recv(rv_ch, &v), 0);
    TCHECK_EQ(v, 4242);
    csp_wg_wait(&rv_wg);
    TCHECK_EQ(atomic_load(&rv_sent), 1);
    TCHECK(atomic_load(&rv_sent_at) >= before);
    csp_chan_release(rv_ch);
}

static void test_chan_unbuffered_rendezvous(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++)
        for (int rep = 0; rep < CH_REPS; rep++) {
            memset(&rv_wg, 0, sizeof rv_wg);
            J_RUN(rv_main, NULL, ch_workers[w], rep ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST);
        }
}

/* ------------------------------------------------------------------------ */
/* buffered FIFO, one producer and one consumer                              */

enum { FIFO_N = 20000 };
static csp_wg_t fifo_wg;

static void fifo_producer(void *arg)
{
    csp_chan_t *c = arg;
    for (int i = 0; i < FIFO_N; i++)
        TCHECK_EQ(csp_chan_send(c, &i), 0);
    TCHECK_EQ(csp_chan_close(c), 0);
    csp_wg_done(&fifo_wg);
}

static void fifo_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    csp_chan_t *c = csp_chan_make(sizeof(int), cap);
    TCHECK(c != NULL);
    csp_wg_add(&fifo_wg, 1);
    TCHECK_EQ(go_joined(fifo_producer, c), 0);
    int expect = 0, v;
    int rc;
    while ((rc = csp_chan_recv(c, &v)) == 0) {
        if (v != expect) {
            TCHECK_EQ(v, expect);
            break;
        }
        TCHECK(csp_chan_len(c) <= cap);
        expect++;
    }
    TCHECK_EQ(rc, CSP_ECLOSED);
    TCHECK_EQ(expect, FIFO_N);
    csp_wg_wait(&fifo_wg);
    csp_chan_release(c);
}

static void test_chan_buffered_fifo(void **state)
{
    (void)state;
    static const size_t caps[] = { 1, 3, 64, 1024 };
    for (int w = 0; w < CH_NW; w++)
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            memset(&fifo_wg, 0, sizeof fifo_wg);
            J_RUN(fifo_main, (void *)(uintptr_t)caps[k], ch_workers[w], CSP_SPAWN_HELP_FIRST);
        }
}

/* FIFO with wrap-around, single thread, no runtime */
static void test_chan_fifo_wraparound(void **state)
{
    (void)state;
    csp_chan_t *c = csp_chan_make(sizeof(long), 5);
    assert_non_null(c);
    long next_in = 0, next_out = 0;
    for (int round = 0; round < 200; round++) {
        int room = 5 - (int)(next_in - next_out);
        int k = 1 + round % room;
        for (int i = 0; i < k; i++) {
            assert_int_equal(csp_chan_try_send(c, &next_in), 0);
            next_in++;
        }
        assert_int_equal(csp_chan_len(c), (size_t)(next_in - next_out));
        if (next_in - next_out == 5) {
            long x = 0;
            assert_int_equal(csp_chan_try_send(c, &x), CSP_EAGAIN);
        }
        int m = 1 + (round * 7) % k;
        for (int i = 0; i < m; i++) {
            long v = -1;
            assert_int_equal(csp_chan_try_recv(c, &v), 0);
            assert_int_equal(v, next_out);
            next_out++;
        }
        /* drain to keep it from filling */
        while (next_in - next_out > 2) {
            long v = -1;
            assert_int_equal(csp_chan_recv(c, &v), 0);
            assert_int_equal(v, next_out);
            next_out++;
        }
    }
    csp_chan_release(c);
}

/* ------------------------------------------------------------------------ */
/* len / cap / elem_size                                                     */

static void test_chan_len_cap_elem_size(void **state)
{
    (void)state;
    assert_int_equal(csp_chan_len(NULL), 0);
    assert_int_equal(csp_chan_cap(NULL), 0);
    assert_int_equal(csp_chan_elem_size(NULL), 0);
    assert_int_equal(csp_chan_closed(NULL), 0);

    csp_chan_t *c = csp_chan_make(sizeof(double), 7);
    assert_non_null(c);
    assert_int_equal(csp_chan_cap(c), 7);
    assert_int_equal(csp_chan_elem_size(c), sizeof(double));
    assert_int_equal(csp_chan_len(c), 0);
    assert_int_equal(csp_chan_closed(c), 0);
    for (int i = 0; i < 7; i++) {
        double d = i;
        assert_int_equal(csp_chan_send(c, &d), 0);
        assert_int_equal(csp_chan_len(c), (size_t)i + 1);
    }
    double d = 1;
    assert_int_equal(csp_chan_try_send(c, &d), CSP_EAGAIN);
    assert_int_equal(csp_chan_len(c), 7);
    assert_int_equal(csp_chan_close(c), 0);
    assert_int_equal(csp_chan_closed(c), 1);
    assert_int_equal(csp_chan_len(c), 7); /* buffered values remain */
    assert_int_equal(csp_chan_recv(c, &d), 0);
    assert_int_equal(csp_chan_len(c), 6);
    assert_int_equal(csp_chan_cap(c), 7);
    csp_chan_release(c);

    c = csp_chan_make(3, 0);
    assert_non_null(c);
    assert_int_equal(csp_chan_cap(c), 0);
    assert_int_equal(csp_chan_elem_size(c), 3);
    assert_int_equal(csp_chan_len(c), 0);
    csp_chan_release(c);

    c = csp_chan_make(0, 0);
    assert_non_null(c);
    assert_int_equal(csp_chan_elem_size(c), 0);
    assert_int_equal(csp_chan_cap(c), 0);
    csp_chan_release(c);

    /* the maxima themselves are accepted */
    c = csp_chan_make(CSP_CHAN_MAX_ELEM, 2);
    assert_non_null(c);
    assert_int_equal(csp_chan_elem_size(c), CSP_CHAN_MAX_ELEM);
    csp_chan_release(c);
    c = csp_chan_make(0, CSP_CHAN_MAX_CAP);
    assert_non_null(c);
    assert_int_equal(csp_chan_cap(c), CSP_CHAN_MAX_CAP);
    assert_int_equal(csp_chan_try_send(c, NULL), 0);
    assert_int_equal(csp_chan_len(c), 1);
    csp_chan_release(c);
}

/* ------------------------------------------------------------------------ */
/* close semantics                                                           */

typedef struct {
    unsigned char b[24];
} blob_t;

static void test_chan_close_buffered(void **state)
{
    (void)state;
    csp_chan_t *c = csp_chan_make(sizeof(blob_t), 4);
    assert_non_null(c);
    for (int i = 0; i < 3; i++) {
        blob_t b;
        memset(&b, i + 1, sizeof b);
        assert_int_equal(csp_chan_send(c, &b), 0);
    }
    assert_int_equal(csp_chan_close(c), 0);
    blob_t b;
    memset(&b, 7, sizeof b);
    assert_int_equal(csp_chan_send(c, &b), CSP_ECLOSED);
    assert_int_equal(csp_chan_try_send(c, &b), CSP_ECLOSED);
    assert_int_equal(csp_chan_send_until(c, &b, csp_deadline_after(CSP_SECOND)), CSP_ECLOSED);
    assert_int_equal(csp_chan_send_until(c, &b, 0), CSP_ECLOSED);
    assert_int_equal(csp_chan_close(c), CSP_ECLOSED);
    assert_int_equal(csp_chan_len(c), 3);
    for (int i = 0; i < 3; i++) {
        memset(&b, 0xAA, sizeof b);
        int rc = i == 0 ? csp_chan_recv(c, &b)
               : i == 1 ? csp_chan_try_recv(c, &b)
                        : csp_chan_recv_until(c, &b, csp_deadline_after(CSP_SECOND));
        assert_int_equal(rc, 0);
        assert_true(all_bytes(&b, i + 1, sizeof b));
    }
    assert_int_equal(csp_chan_len(c), 0);
    /* drained: every receive form returns CSP_ECLOSED at once, zero-filled */
    for (int k = 0; k < 4; k++) {
        memset(&b, 0xAA, sizeof b);
        csp_time_t t0 = csp_now();
        int rc = k == 0 ? csp_chan_recv(c, &b)
               : k == 1 ? csp_chan_try_recv(c, &b)
               : k == 2 ? csp_chan_recv_until(c, &b, csp_deadline_after(5 * CSP_SECOND))
                        : csp_chan_recv_until(c, &b, 0);
        assert_int_equal(rc, CSP_ECLOSED);
        assert_true(all_bytes(&b, 0, sizeof b));
        assert_true(csp_now() - t0 < CSP_SECOND);
    }
    assert_int_equal(csp_chan_recv(c, NULL), CSP_ECLOSED);
    assert_int_equal(csp_chan_close(c), CSP_ECLOSED);
    csp_chan_release(c);

    /* unbuffered, closed while empty */
    c = csp_chan_make(sizeof(blob_t), 0);
    assert_non_null(c);
    assert_int_equal(csp_chan_close(c), 0);
    memset(&b, 0xAA, sizeof b);
    assert_int_equal(csp_chan_recv(c, &b), CSP_ECLOSED);
    assert_true(all_bytes(&b, 0, sizeof b));
    assert_int_equal(csp_chan_send(c, &b), CSP_ECLOSED);
    assert_int_equal(csp_chan_close(c), CSP_ECLOSED);
    csp_chan_release(c);
}

/* close wakes 100 blocked receivers and 100 blocked senders */
enum { CW_N = 100 };
static csp_chan_t *cw_ch;
static atomic_int cw_arrived, cw_returned, cw_early;
static atomic_int cw_closed;
static csp_wg_t cw_wg;

static void cw_receiver(void *arg)
{
    (void)arg;
    blob_t b;
    memset(&b, 0xAA, sizeof b);
    atomic_fetch_add(&cw_arrived, 1);
    int rc = csp_chan_recv(cw_ch, &b);
    if (!atomic_load(&cw_closed))
        atomic_fetch_add(&cw_early, 1);
    TCHECK_EQ(rc, CSP_ECLOSED);
    TCHECK(all_bytes(&b, 0, sizeof b));
    atomic_fetch_add(&cw_returned, 1);
    csp_wg_done(&cw_wg);
}

static void cw_sender(void *arg)
{
    (void)arg;
    blob_t b;
    memset(&b, 0x5C, sizeof b);
    atomic_fetch_add(&cw_arrived, 1);
    int rc = csp_chan_send(cw_ch, &b);
    if (!atomic_load(&cw_closed))
        atomic_fetch_add(&cw_early, 1);
    TCHECK_EQ(rc, CSP_ECLOSED);
    TCHECK(all_bytes(&b, 0x5C, sizeof b)); /* a send never writes its value */
    atomic_fetch_add(&cw_returned, 1);
    csp_wg_done(&cw_wg);
}

static void cw_main(void *arg)
{
    int senders = (int)(uintptr_t)arg;
    cw_ch = csp_chan_make(sizeof(blob_t), 0);
    TCHECK(cw_ch != NULL);
    csp_wg_add(&cw_wg, CW_N);
    for (int i = 0; i < CW_N; i++)
        TCHECK_EQ(go_joined(senders ? cw_sender : cw_receiver, NULL), 0);
    while (atomic_load(&cw_arrived) < CW_N)
        csp_sleep(CSP_MILLISECOND);
    csp_sleep(20 * CSP_MILLISECOND); /* let them all block */
    TCHECK_EQ(atomic_load(&cw_returned), 0);
    atomic_store(&cw_closed, 1);
    TCHECK_EQ(csp_chan_close(cw_ch), 0);
    TCHECK_EQ(csp_wg_wait(&cw_wg), 0);
    TCHECK_EQ(atomic_load(&cw_returned), CW_N);
    TCHECK_EQ(atomic_load(&cw_early), 0);
    TCHECK_EQ(csp_chan_close(cw_ch), CSP_ECLOSED);
    csp_chan_release(cw_ch);
}

static void test_chan_close_wakes_blocked(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++)
        for (int s = 0; s < 2; s++)
            for (int rep = 0; rep < CH_REPS; rep++) {
                memset(&cw_wg, 0, sizeof cw_wg);
                atomic_store(&cw_arrived, 0);
                atomic_store(&cw_returned, 0);
                atomic_store(&cw_early, 0);
                atomic_store(&cw_closed, 0);
                J_RUN(cw_main, (void *)(uintptr_t)s, ch_workers[w], CSP_SPAWN_HELP_FIRST);
            }
}

/* ------------------------------------------------------------------------ */
/* try forms                                                                 */

static void test_chan_try(void **state)
{
    (void)state;
    int v = 0;
    /* unbuffered, nobody on the other side */
    csp_chan_t *c = csp_chan_make(sizeof(int), 0);
    assert_non_null(c);
    v = 5;
    assert_int_equal(csp_chan_try_send(c, &v), CSP_EAGAIN);
    v = 0x5a5a;
    assert_int_equal(csp_chan_try_recv(c, &v), CSP_EAGAIN);
    assert_int_equal(v, 0x5a5a); /* untouched */
    assert_int_equal(csp_chan_len(c), 0);
    csp_chan_release(c);

    /* buffered: full and empty */
    c = csp_chan_make(sizeof(int), 2);
    assert_non_null(c);
    assert_int_equal(csp_chan_try_recv(c, &v), CSP_EAGAIN);
    v = 1;
    assert_int_equal(csp_chan_try_send(c, &v), 0);
    v = 2;
    assert_int_equal(csp_chan_try_send(c, &v), 0);
    v = 3;
    assert_int_equal(csp_chan_try_send(c, &v), CSP_EAGAIN);
    assert_int_equal(csp_chan_len(c), 2);
    assert_int_equal(csp_chan_try_recv(c, &v), 0);
    assert_int_equal(v, 1);
    v = 4;
    assert_int_equal(csp_chan_try_send(c, &v), 0);
    assert_int_equal(csp_chan_try_recv(c, &v), 0);
    assert_int_equal(v, 2);
    assert_int_equal(csp_chan_try_recv(c, &v), 0);
    assert_int_equal(v, 4);
    v = 0x77;
    assert_int_equal(csp_chan_try_recv(c, &v), CSP_EAGAIN);
    assert_int_equal(v, 0x77);
    csp_chan_release(c);
}

/* try_send succeeds into a parked receiver; try_recv from a parked sender */
static csp_chan_t *tp_ch;
static atomic_int tp_parked;
static csp_wg_t tp_wg;

static void tp_receiver(void *arg)
{
    (void)arg;
    int v = 0;
    atomic_store(&tp_parked, 1);
    TCHECK_EQ(csp_chan_recv(tp_ch, &v), 0);
    TCHECK_EQ(v, 99);
    csp_wg_done(&tp_wg);
}

static void tp_sender(void *arg)
{
    (void)arg;
    int v = 77;
    atomic_store(&tp_parked, 1);
    TCHECK_EQ(csp_chan_send(tp_ch, &v), 0);
    csp_wg_done(&tp_wg);
}

static void tp_main(void *arg)
{
    (void)arg;
    tp_ch = csp_chan_make(sizeof(int), 0);
    /* a parked receiver: try_send succeeds */
    atomic_store(&tp_parked, 0);
    csp_wg_add(&tp_wg, 1);
    TCHECK_EQ(go_joined(tp_receiver, NULL), 0);
    while (!atomic_load(&tp_parked))
        csp_yield();
    int v = 99, rc;
    csp_time_t give_up = csp_deadline_after(5 * CSP_SECOND);
    while ((rc = csp_chan_try_send(tp_ch, &v)) == CSP_EAGAIN && csp_now() < give_up)
        csp_sleep(CSP_MILLISECOND);
    TCHECK_EQ(rc, 0);
    csp_wg_wait(&tp_wg);
    /* a parked sender: try_recv succeeds */
    atomic_store(&tp_parked, 0);
    csp_wg_add(&tp_wg, 1);
    TCHECK_EQ(go_joined(tp_sender, NULL), 0);
    while (!atomic_load(&tp_parked))
        csp_yield();
    v = 0;
    give_up = csp_deadline_after(5 * CSP_SECOND);
    while ((rc = csp_chan_try_recv(tp_ch, &v)) == CSP_EAGAIN && csp_now() < give_up)
        csp_sleep(CSP_MILLISECOND);
    TCHECK_EQ(rc, 0);
    TCHECK_EQ(v, 77);
    csp_wg_wait(&tp_wg);
    /* and the buffered full case: try_recv takes the head, the parked
     * sender's value moves in behind */
    csp_chan_t *b = csp_chan_make(sizeof(int), 1);
    v = 1;
    TCHECK_EQ(csp_chan_send(b, &v), 0);
    csp_chan_release(tp_ch);
    tp_ch = b;
    atomic_store(&tp_parked, 0);
    csp_wg_add(&tp_wg, 1);
    TCHECK_EQ(go_joined(tp_sender, NULL), 0); /* sends 77, blocks: full */
    while (!atomic_load(&tp_parked))
        csp_yield();
    csp_sleep(5 * CSP_MILLISECOND);
    TCHECK_EQ(csp_chan_try_recv(b, &v), 0);
    TCHECK_EQ(v, 1);
    csp_wg_wait(&tp_wg);
    TCHECK_EQ(csp_chan_len(b), 1);
    TCHECK_EQ(csp_chan_try_recv(b, &v), 0);
    TCHECK_EQ(v, 77);
    TCHECK_EQ(csp_chan_try_recv(b, &v), CSP_EAGAIN);
    csp_chan_release(b);
}

static void test_chan_try_with_parked_peer(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++) {
        memset(&tp_wg, 0, sizeof tp_wg);
        J_RUN(tp_main, NULL, ch_workers[w], CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* deadline forms                                                            */

static void until_checks(void)
{
    int v = 0x1234;
    csp_chan_t *c = csp_chan_make(sizeof(int), 0);
    csp_chan_t *full = csp_chan_make(sizeof(int), 1);
    TCHECK(c && full);
    TCHECK_EQ(csp_chan_send(full, &v), 0);

    /* timeout after the deadline, never early */
    csp_time_t dl = csp_deadline_after(30 * CSP_MILLISECOND);
    TCHECK_EQ(csp_chan_recv_until(c, &v, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    TCHECK_EQ(v, 0x1234);
    dl = csp_deadline_after(30 * CSP_MILLISECOND);
    TCHECK_EQ(csp_chan_send_until(c, &v, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    dl = csp_deadline_after(20 * CSP_MILLISECOND);
    TCHECK_EQ(csp_chan_send_until(full, &v, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    TCHECK_EQ(csp_chan_len(full), 1);

    /* deadline 0: a poll */
    TCHECK_EQ(csp_chan_recv_until(c, &v, 0), CSP_EAGAIN);
    TCHECK_EQ(csp_chan_send_until(c, &v, 0), CSP_EAGAIN);
    TCHECK_EQ(csp_chan_send_until(full, &v, 0), CSP_EAGAIN);

    /* an already-passed deadline with nothing ready */
    csp_time_t past = csp_now() - CSP_MILLISECOND;
    TCHECK_EQ(csp_chan_recv_until(c, &v, past), CSP_ETIMEDOUT);
    TCHECK_EQ(csp_chan_send_until(c, &v, past), CSP_ETIMEDOUT);
    TCHECK_EQ(csp_chan_send_until(full, &v, past), CSP_ETIMEDOUT);
    TCHECK_EQ(csp_chan_recv_until(c, &v, 1), CSP_ETIMEDOUT);

    /* an already-passed deadline with something ready: it proceeds */
    int w = 0;
    TCHECK_EQ(csp_chan_recv_until(full, &w, past), 0);
    TCHECK_EQ(w, 0x1234);
    w = 5;
    TCHECK_EQ(csp_chan_send_until(full, &w, 1), 0);
    TCHECK_EQ(csp_chan_recv_until(full, &w, 0), 0);
    TCHECK_EQ(w, 5);
    csp_chan_release(c);
    csp_chan_release(full);
}

static void until_main(void *arg)
{
    (void)arg;
    until_checks();
}

/* a value arriving before the deadline is received */
static void ua_sender(void *arg)
{
    csp_chan_t *c = arg;
    csp_sleep(10 * CSP_MILLISECOND);
    int v = 31337;
    TCHECK_EQ(csp_chan_send(c, &v), 0);
    csp_chan_release(c);
}

static void ua_receiver(void *arg)
{
    csp_chan_t *c = arg;
    csp_sleep(10 * CSP_MILLISECOND);
    int v = 0;
    TCHECK_EQ(csp_chan_recv(c, &v), 0);
    TCHECK_EQ(v, 4711);
    csp_chan_release(c);
}

static void until_arrive_main(void *arg)
{
    (void)arg;
    csp_chan_t *c = csp_chan_make(sizeof(int), 0);
    csp_time_t t0 = csp_now();
    csp_time_t dl = t0 + 5 * CSP_SECOND;
    TCHECK_EQ(go_joined(ua_sender, csp_chan_retain(c)), 0);
    int v = 0;
    TCHECK_EQ(csp_chan_recv_until(c, &v, dl), 0);
    TCHECK_EQ(v, 31337);
    TCHECK(csp_now() < dl);
    TCHECK(csp_now() - t0 >= 9 * CSP_MILLISECOND);
    TCHECK_EQ(go_joined(ua_receiver, csp_chan_retain(c)), 0);
    v = 4711;
    TCHECK_EQ(csp_chan_send_until(c, &v, csp_deadline_after(5 * CSP_SECOND)), 0);
    /* the woken-by-a-value waiter's timer must not fire later into anything:
     * another timed wait on the same channel times out normally */
    csp_time_t dl2 = csp_deadline_after(15 * CSP_MILLISECOND);
    TCHECK_EQ(csp_chan_recv_until(c, &v, dl2), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl2);
    csp_sleep(10 * CSP_MILLISECOND);
    csp_chan_release(c);
}

static void test_chan_until(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++) {
        J_RUN(until_main, NULL, ch_workers[w], CSP_SPAWN_HELP_FIRST);
        J_RUN(until_arrive_main, NULL, ch_workers[w], CSP_SPAWN_HELP_FIRST);
    }
    /* and from a plain thread with no runtime */
    TC_RESET();
    until_checks();
    TC_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------------ */
/* bad input                                                                 */

static void test_chan_bad_input(void **state)
{
    (void)state;
    int v = 1;
    assert_int_equal(csp_chan_send(NULL, &v), CSP_EINVAL);
    assert_int_equal(csp_chan_recv(NULL, &v), CSP_EINVAL);
    assert_int_equal(csp_chan_try_send(NULL, &v), CSP_EINVAL);
    assert_int_equal(csp_chan_try_recv(NULL, &v), CSP_EINVAL);
    assert_int_equal(csp_chan_send_until(NULL, &v, CSP_FOREVER), CSP_EINVAL);
    assert_int_equal(csp_chan_recv_until(NULL, &v, CSP_FOREVER), CSP_EINVAL);
    assert_int_equal(csp_chan_send_until(NULL, &v, 0), CSP_EINVAL);
    assert_int_equal(csp_chan_recv_until(NULL, &v, 0), CSP_EINVAL);
    assert_int_equal(csp_chan_send(NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_chan_recv(NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_chan_close(NULL), CSP_EINVAL);
    assert_null(csp_chan_retain(NULL));
    csp_chan_release(NULL); /* no-op */
    assert_int_equal(v, 1);

    assert_null(csp_chan_make(CSP_CHAN_MAX_ELEM + 1, 0));
    assert_null(csp_chan_make(CSP_CHAN_MAX_ELEM + 1, 1));
    assert_null(csp_chan_make(SIZE_MAX, 1));
    assert_null(csp_chan_make(1, CSP_CHAN_MAX_CAP + 1));
    assert_null(csp_chan_make(0, CSP_CHAN_MAX_CAP + 1));
    assert_null(csp_chan_make(8, SIZE_MAX));
    assert_null(csp_chan_make(SIZE_MAX, SIZE_MAX));
#if !(defined(CSP_TEST_SANITIZER) && CSP_TEST_SANITIZER)
    /* 2^46 bytes: out of memory -> NULL (sanitizer allocators abort instead) */
    csp_chan_t *huge = csp_chan_make(CSP_CHAN_MAX_ELEM, CSP_CHAN_MAX_CAP);
    csp_chan_release(huge);
#endif

    /* NULL elem with elem_size > 0: EINVAL, channel intact */
    csp_chan_t *c = csp_chan_make(sizeof(int), 2);
    assert_non_null(c);
    assert_int_equal(csp_chan_send(c, NULL), CSP_EINVAL);
    assert_int_equal(csp_chan_try_send(c, NULL), CSP_EINVAL);
    assert_int_equal(csp_chan_send_until(c, NULL, csp_deadline_after(CSP_MILLISECOND)),
                     CSP_EINVAL);
    assert_int_equal(csp_chan_len(c), 0);
    v = 10;
    assert_int_equal(csp_chan_send(c, &v), 0);
    assert_int_equal(csp_chan_send(c, NULL), CSP_EINVAL);
    v = 11;
    assert_int_equal(csp_chan_send(c, &v), 0);
    assert_int_equal(csp_chan_send(c, NULL), CSP_EINVAL); /* full: still EINVAL, no block */
    assert_int_equal(csp_chan_len(c), 2);
    assert_int_equal(csp_chan_recv(c, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(csp_chan_recv(c, &v), 0);
    assert_int_equal(v, 11);
    assert_int_equal(csp_chan_try_recv(c, &v), CSP_EAGAIN);
    assert_int_equal(csp_chan_close(c), 0);
    assert_int_equal(csp_chan_send(c, NULL), CSP_EINVAL); /* EINVAL wins over closed */
    csp_chan_release(c);

    c = csp_chan_make(sizeof(int), 0);
    assert_non_null(c);
    assert_int_equal(csp_chan_send(c, NULL), CSP_EINVAL); /* does not block */
    assert_int_equal(csp_chan_try_send(c, NULL), CSP_EINVAL);
    csp_chan_release(c);
}

/* ------------------------------------------------------------------------ */
/* signal channels (elem_size 0)                                             */

static void sig_peer(void *arg)
{
    csp_chan_t *c = arg;
    for (int i = 0; i < 1000; i++)
        TCHECK_EQ(csp_chan_send(c, NULL), 0);
    TCHECK_EQ(csp_chan_close(c), 0);
    csp_chan_release(c);
}

static void sig_main(void *arg)
{
    (void)arg;
    for (size_t cap = 0; cap <= 3; cap += 3) {
        csp_chan_t *c = csp_chan_make(0, cap);
        TCHECK(c != NULL);
        TCHECK_EQ(go_joined(sig_peer, csp_chan_retain(c)), 0);
        int n = 0, rc;
        char dummy = 0x3c;
        while ((rc = (n % 2 ? csp_chan_recv(c, NULL) : csp_chan_recv(c, &dummy))) == 0)
            n++;
        TCHECK_EQ(rc, CSP_ECLOSED);
        TCHECK_EQ(n, 1000);
        TCHECK_EQ(dummy, 0x3c); /* elem_size 0: nothing written */
        csp_chan_release(c);
    }
}

static void test_chan_signal(void **state)
{
    (void)state;
    /* buffered, single thread */
    csp_chan_t *c = csp_chan_make(0, 3);
    assert_non_null(c);
    for (int i = 0; i < 3; i++)
        assert_int_equal(csp_chan_send(c, NULL), 0);
    assert_int_equal(csp_chan_try_send(c, NULL), CSP_EAGAIN);
    assert_int_equal(csp_chan_len(c), 3);
    assert_int_equal(csp_chan_recv(c, NULL), 0);
    assert_int_equal(csp_chan_try_recv(c, NULL), 0);
    assert_int_equal(csp_chan_len(c), 1);
    assert_int_equal(csp_chan_close(c), 0);
    assert_int_equal(csp_chan_recv(c, NULL), 0);
    assert_int_equal(csp_chan_recv(c, NULL), CSP_ECLOSED);
    assert_int_equal(csp_chan_send(c, NULL), CSP_ECLOSED);
    csp_chan_release(c);
    /* unbuffered: nobody there */
    c = csp_chan_make(0, 0);
    assert_int_equal(csp_chan_try_send(c, NULL), CSP_EAGAIN);
    assert_int_equal(csp_chan_try_recv(c, NULL), CSP_EAGAIN);
    csp_chan_release(c);
    for (int w = 0; w < CH_NW; w++)
        J_RUN(sig_main, NULL, ch_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* out == NULL discards                                                      */

static void discard_sender(void *arg)
{
    csp_chan_t *c = arg;
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(csp_chan_send(c, &i), 0);
    csp_chan_release(c);
}

static void discard_main(void *arg)
{
    (void)arg;
    csp_chan_t *c = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(go_joined(discard_sender, csp_chan_retain(c)), 0);
    int v = -1;
    TCHECK_EQ(csp_chan_recv(c, NULL), 0);
    TCHECK_EQ(csp_chan_recv(c, &v), 0);
    TCHECK_EQ(v, 1);
    TCHECK_EQ(csp_chan_recv_until(c, NULL, csp_deadline_after(5 * CSP_SECOND)), 0);
    TCHECK_EQ(csp_chan_recv(c, &v), 0);
    TCHECK_EQ(v, 3);
    csp_chan_release(c);
}

static void test_chan_discard(void **state)
{
    (void)state;
    csp_chan_t *c = csp_chan_make(sizeof(int), 4);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(csp_chan_send(c, &i), 0);
    assert_int_equal(csp_chan_recv(c, NULL), 0);
    assert_int_equal(csp_chan_try_recv(c, NULL), 0);
    int v = 0;
    assert_int_equal(csp_chan_recv(c, &v), 0);
    assert_int_equal(v, 3);
    csp_chan_close(c);
    assert_int_equal(csp_chan_recv(c, NULL), CSP_ECLOSED);
    csp_chan_release(c);
    for (int w = 0; w < CH_NW; w++)
        J_RUN(discard_main, NULL, ch_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* large elements                                                            */

typedef struct {
    uint32_t seq;
    unsigned char data[4096 - 8];
    uint32_t tail;
} big_t;

static void big_fill(big_t *b, uint32_t seq)
{
    b->seq = seq;
    for (size_t i = 0; i < sizeof b->data; i++)
        b->data[i] = (unsigned char)(seq * 31 + i * 7);
    b->tail = ~seq;
}

static int big_ok(const big_t *b, uint32_t seq)
{
    if (b->seq != seq || b->tail != ~seq)
        return 0;
    for (size_t i = 0; i < sizeof b->data; i++)
        if (b->data[i] != (unsigned char)(seq * 31 + i * 7))
            return 0;
    return 1;
}

enum { BIG_N = 500 };

static void big_producer(void *arg)
{
    csp_chan_t *c = arg;
    big_t *b = malloc(sizeof *b);
    for (uint32_t i = 0; i < BIG_N; i++) {
        big_fill(b, i);
        TCHECK_EQ(csp_chan_send(c, b), 0);
    }
    free(b);
    csp_chan_close(c);
    csp_chan_release(c);
}

static void big_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    csp_chan_t *c = csp_chan_make(sizeof(big_t), cap);
    TCHECK(c != NULL);
    TCHECK_EQ(csp_chan_elem_size(c), sizeof(big_t));
    TCHECK_EQ(go_joined(big_producer, csp_chan_retain(c)), 0);
    big_t *b = malloc(sizeof *b);
    uint32_t n = 0;
    int rc;
    while ((rc = csp_chan_recv(c, b)) == 0) {
        TCHECK(big_ok(b, n));
        n++;
    }
    TCHECK_EQ(rc, CSP_ECLOSED);
    TCHECK_EQ(n, BIG_N);
    TCHECK(all_bytes(b, 0, sizeof *b));
    free(b);
    csp_chan_release(c);

    /* the largest element size, through an unbuffered channel */
    c = csp_chan_make(CSP_CHAN_MAX_ELEM, 1);
    unsigned char *x = malloc(CSP_CHAN_MAX_ELEM), *y = malloc(CSP_CHAN_MAX_ELEM);
    for (size_t i = 0; i < CSP_CHAN_MAX_ELEM; i++)
        x[i] = (unsigned char)(i * 13 + 1);
    TCHECK_EQ(csp_chan_send(c, x), 0);
    memset(y, 0, CSP_CHAN_MAX_ELEM);
    TCHECK_EQ(csp_chan_recv(c, y), 0);
    TCHECK(memcmp(x, y, CSP_CHAN_MAX_ELEM) == 0);
    free(x);
    free(y);
    csp_chan_release(c);
}

static void test_chan_large_elements(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++) {
        J_RUN(big_main, (void *)(uintptr_t)0, ch_workers[w], CSP_SPAWN_HELP_FIRST);
        J_RUN(big_main, (void *)(uintptr_t)7, ch_workers[w], CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* MPMC integrity                                                            */

enum { MP_PRODUCERS = 8, MP_CONSUMERS = 8 };
#define MP_PER CSP_TEST_SCALE(100000)
static csp_chan_t *mp_ch;
static atomic_uchar *mp_seen;
static atomic_long mp_received;
static csp_wg_t mp_prod_wg, mp_cons_wg;

static void mp_producer(void *arg)
{
    long p = (long)(uintptr_t)arg;
    for (long i = 0; i < MP_PER; i++) {
        long v = p * MP_PER + i;
        int rc = csp_chan_send(mp_ch, &v);
        if (rc != 0) {
            TCHECK_EQ(rc, 0);
            break;
        }
    }
    csp_wg_done(&mp_prod_wg);
}

static void mp_consumer(void *arg)
{
    (void)arg;
    long last[MP_PRODUCERS];
    for (int p = 0; p < MP_PRODUCERS; p++)
        last[p] = -1;
    long v, n = 0;
    int rc;
    while ((rc = csp_chan_recv(mp_ch, &v)) == 0) {
        if (v < 0 || v >= (long)MP_PRODUCERS * MP_PER) {
            TCHECK(!"value out of range");
            continue;
        }
        atomic_fetch_add_explicit(&mp_seen[v], 1, memory_order_relaxed);
        /* one producer's values reach any one consumer in order */
        long p = v / MP_PER, i = v % MP_PER;
        TCHECK(i > last[p]);
        last[p] = i;
        n++;
    }
    TCHECK_EQ(rc, CSP_ECLOSED);
    atomic_fetch_add(&mp_received, n);
    csp_wg_done(&mp_cons_wg);
}

static void mp_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    mp_ch = csp_chan_make(sizeof(long), cap);
    TCHECK(mp_ch != NULL);
    csp_wg_add(&mp_prod_wg, MP_PRODUCERS);
    csp_wg_add(&mp_cons_wg, MP_CONSUMERS);
    for (int i = 0; i < MP_CONSUMERS; i++)
        TCHECK_EQ(go_joined(mp_consumer, NULL), 0);
    for (int i = 0; i < MP_PRODUCERS; i++)
        TCHECK_EQ(go_joined(mp_producer, (void *)(uintptr_t)i), 0);
    TCHECK_EQ(csp_wg_wait(&mp_prod_wg), 0);
    TCHECK_EQ(csp_chan_close(mp_ch), 0);
    TCHECK_EQ(csp_wg_wait(&mp_cons_wg), 0);
    csp_chan_release(mp_ch);
}

static void test_chan_mpmc(void **state)
{
    (void)state;
    static const size_t caps[] = { 0, 1, 1024 };
    size_t total = (size_t)MP_PRODUCERS * MP_PER;
    mp_seen = malloc(total);
    assert_non_null(mp_seen);
    for (int w = 0; w < CH_NW; w++)
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            memset((void *)mp_seen, 0, total);
            memset(&mp_prod_wg, 0, sizeof mp_prod_wg);
            memset(&mp_cons_wg, 0, sizeof mp_cons_wg);
            atomic_store(&mp_received, 0);
            J_RUN(mp_main, (void *)(uintptr_t)caps[k], ch_workers[w], CSP_SPAWN_HELP_FIRST);
            assert_int_equal(atomic_load(&mp_received), (long)total);
            size_t bad = 0, first = 0;
            for (size_t i = 0; i < total; i++)
                if (mp_seen[i] != 1 && bad++ == 0)
                    first = i;
            if (bad)
                print_error("workers %d cap %zu: %zu values not received exactly once "
                            "(first %zu: %d times)\n",
                            ch_workers[w], caps[k], bad, first, (int)mp_seen[first]);
            assert_int_equal(bad, 0);
        }
    free((void *)mp_seen);
}

/* ------------------------------------------------------------------------ */
/* plain threads                                                             */

enum { PT_N = 20000, PT_THREADS = 2, PT_TASKS = 2 };
static csp_chan_t *pt_to_tasks, *pt_to_threads;
static atomic_long pt_sum_tasks, pt_sum_threads;
static csp_wg_t pt_wg;

static void *pt_thread_sender(void *arg)
{
    (void)arg;
    for (long i = 1; i <= PT_N; i++)
        TCHECK_EQ(csp_chan_send(pt_to_tasks, &i), 0);
    return NULL;
}

static void *pt_thread_receiver(void *arg)
{
    (void)arg;
    long v, s = 0;
    int rc;
    while ((rc = csp_chan_recv(pt_to_threads, &v)) == 0)
        s += v;
    TCHECK_EQ(rc, CSP_ECLOSED);
    atomic_fetch_add(&pt_sum_threads, s);
    return NULL;
}

static void pt_task_sender(void *arg)
{
    (void)arg;
    for (long i = 1; i <= PT_N; i++)
        TCHECK_EQ(csp_chan_send(pt_to_threads, &i), 0);
    csp_wg_done(&pt_wg);
}

static void pt_task_receiver(void *arg)
{
    (void)arg;
    long v, s = 0;
    int rc;
    while ((rc = csp_chan_recv(pt_to_tasks, &v)) == 0)
        s += v;
    TCHECK_EQ(rc, CSP_ECLOSED);
    atomic_fetch_add(&pt_sum_tasks, s);
    csp_wg_done(&pt_wg);
}

static void test_chan_plain_threads_with_runtime(void **state)
{
    (void)state;
    const long expect = (long)PT_N * (PT_N + 1) / 2 * PT_THREADS;
    for (int w = 0; w < CH_NW; w++)
        for (size_t cap = 0; cap <= 16; cap += 16) {
            csp_config_t cfg = { .workers = ch_workers[w] };
            TC_RESET();
            assert_int_equal(csp_init(&cfg), 0);
            pt_to_tasks = csp_chan_make(sizeof(long), cap);
            pt_to_threads = csp_chan_make(sizeof(long), cap);
            atomic_store(&pt_sum_tasks, 0);
            atomic_store(&pt_sum_threads, 0);
            memset(&pt_wg, 0, sizeof pt_wg);
            pthread_t snd[PT_THREADS], rcv[PT_THREADS];
            for (int i = 0; i < PT_THREADS; i++) {
                assert_int_equal(pthread_create(&snd[i], NULL, pt_thread_sender, NULL), 0);
                assert_int_equal(pthread_create(&rcv[i], NULL, pt_thread_receiver, NULL), 0);
            }
            /* tasks: PT_TASKS senders (to threads), PT_TASKS receivers (from threads) */
            csp_wg_add(&pt_wg, PT_THREADS);
            for (int i = 0; i < PT_THREADS; i++)
                assert_int_equal(go_joined(pt_task_sender, NULL), 0);
            csp_wg_wait(&pt_wg); /* task senders done */
            assert_int_equal(csp_chan_close(pt_to_threads), 0);
            csp_wg_add(&pt_wg, PT_TASKS);
            for (int i = 0; i < PT_TASKS; i++)
                assert_int_equal(go_joined(pt_task_receiver, NULL), 0);
            for (int i = 0; i < PT_THREADS; i++)
                pthread_join(snd[i], NULL);
            assert_int_equal(csp_chan_close(pt_to_tasks), 0);
            csp_wg_wait(&pt_wg);
            for (int i = 0; i < PT_THREADS; i++)
                pthread_join(rcv[i], NULL);
            csp_wg_wait(&join_wg);
            csp_shutdown();
            TC_ASSERT_CLEAN();
            assert_int_equal(atomic_load(&pt_sum_tasks), expect);
            assert_int_equal(atomic_load(&pt_sum_threads), expect);
            csp_chan_release(pt_to_tasks);
            csp_chan_release(pt_to_threads);
        }
}

/* two plain threads, no runtime at all */
static csp_chan_t *nr_ch, *nr_ack;

static void *nr_sender(void *arg)
{
    (void)arg;
    for (int i = 0; i < PT_N; i++) {
        TCHECK_EQ(csp_chan_send(nr_ch, &i), 0);
        if (i % 1000 == 0) { /* a rendezvous the other way */
            int a = -1;
            TCHECK_EQ(csp_chan_recv(nr_ack, &a), 0);
            TCHECK_EQ(a, i);
        }
    }
    TCHECK_EQ(csp_chan_close(nr_ch), 0);
    return NULL;
}

static void test_chan_plain_threads_no_runtime(void **state)
{
    (void)state;
    for (size_t cap = 0; cap <= 8; cap += 8) {
        TC_RESET();
        nr_ch = csp_chan_make(sizeof(int), cap);
        nr_ack = csp_chan_make(sizeof(int), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, nr_sender, NULL), 0);
        int v, expect = 0, rc;
        while ((rc = csp_chan_recv(nr_ch, &v)) == 0) {
            assert_int_equal(v, expect);
            if (v % 1000 == 0)
                assert_int_equal(csp_chan_send(nr_ack, &v), 0);
            expect++;
        }
        assert_int_equal(rc, CSP_ECLOSED);
        assert_int_equal(expect, PT_N);
        pthread_join(th, NULL);
        TC_ASSERT_CLEAN();
        csp_chan_release(nr_ch);
        csp_chan_release(nr_ack);
    }
}

/* ------------------------------------------------------------------------ */
/* reference counting                                                        */

static atomic_int rc_got;
static atomic_int rc_main_released;

static void rc_consumer(void *arg)
{
    csp_chan_t *c = arg;
    /* let main drop its reference first */
    while (!atomic_load(&rc_main_released))
        csp_sleep(CSP_MILLISECOND);
    int v, n = 0, rc;
    while ((rc = csp_chan_recv(c, &v)) == 0) {
        TCHECK_EQ(v, n);
        n++;
    }
    TCHECK_EQ(rc, CSP_ECLOSED);
    TCHECK_EQ(csp_chan_len(c), 0);
    TCHECK_EQ(csp_chan_cap(c), 8);
    atomic_store(&rc_got, n);
    csp_chan_release(c); /* the last reference: frees it */
}

static void rc_main(void *arg)
{
    (void)arg;
    csp_chan_t *c = csp_chan_make(sizeof(int), 8);
    TCHECK(csp_chan_retain(c) == c);
    TCHECK_EQ(go_joined(rc_consumer, c), 0); /* the retained reference goes to it */
    for (int i = 0; i < 5; i++)
        TCHECK_EQ(csp_chan_send(c, &i), 0);
    TCHECK_EQ(csp_chan_close(c), 0);
    /* extra retain/release pairs leave it alive */
    for (int i = 0; i < 10; i++)
        csp_chan_retain(c);
    for (int i = 0; i < 10; i++)
        csp_chan_release(c);
    csp_chan_release(c);
    atomic_store(&rc_main_released, 1);
    while (atomic_load(&rc_got) == 0)
        csp_sleep(CSP_MILLISECOND);
    TCHECK_EQ(atomic_load(&rc_got), 5);
}

static void test_chan_refcount(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++) {
        atomic_store(&rc_got, 0);
        atomic_store(&rc_main_released, 0);
        J_RUN(rc_main, NULL, ch_workers[w], CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* typed channels                                                            */

typedef struct {
    int x;
    double y;
} pt2_t;

CSP_CHAN_DECLARE(int_chan, int);
CSP_CHAN_DECLARE(pt_chan, pt2_t);

static void typed_producer(void *arg)
{
    int_chan_send_only_t out = { (csp_chan_t *)arg };
    for (int i = 0; i < 100; i++)
        TCHECK_EQ(int_chan_so_send(out, i * 3), 0);
    TCHECK_EQ(int_chan_so_close(out), 0);
    TCHECK_EQ(int_chan_so_close(out), CSP_ECLOSED);
    TCHECK_EQ(int_chan_so_send(out, 1), CSP_ECLOSED);
    csp_chan_release(out.c); /* its own reference: it outlives main's receives */
}

static void typed_main(void *arg)
{
    (void)arg;
    int_chan_t ch = int_chan_make(4);
    TCHECK(ch.c != NULL);
    int_chan_t r = int_chan_retain(ch);
    TCHECK(r.c == ch.c);
    int_chan_release(r);
    int_chan_send_only_t so = int_chan_send_only(ch);
    int_chan_recv_only_t ro = int_chan_recv_only(ch);
    TCHECK(so.c == ch.c && ro.c == ch.c);
    TCHECK_EQ(go_joined(typed_producer, csp_chan_retain(so.c)), 0);
    int v = -1, n = 0, rc;
    while ((rc = (n % 2 ? int_chan_ro_recv(ro, &v) : int_chan_recv(ch, &v))) == 0) {
        TCHECK_EQ(v, n * 3);
        n++;
    }
    TCHECK_EQ(rc, CSP_ECLOSED);
    TCHECK_EQ(v, 0);
    TCHECK_EQ(n, 100);
    TCHECK_EQ(int_chan_ro_try_recv(ro, &v), CSP_ECLOSED);
    int_chan_release(ch);

    pt_chan_t pc = pt_chan_make(2);
    pt2_t p = { 7, 2.5 }, q = { 0, 0 };
    TCHECK_EQ(pt_chan_try_send(pc, p), 0);
    TCHECK_EQ(pt_chan_len(pc), 1);
    p.x = 8;
    TCHECK_EQ(pt_chan_send(pc, p), 0);
    TCHECK_EQ(pt_chan_try_send(pc, p), CSP_EAGAIN);
    csp_time_t dl = csp_deadline_after(10 * CSP_MILLISECOND);
    TCHECK_EQ(pt_chan_send_until(pc, p, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    TCHECK_EQ(pt_chan_try_recv(pc, &q), 0);
    TCHECK(q.x == 7 && q.y == 2.5);
    TCHECK_EQ(pt_chan_recv_until(pc, &q, csp_deadline_after(CSP_SECOND)), 0);
    TCHECK(q.x == 8 && q.y == 2.5);
    dl = csp_deadline_after(10 * CSP_MILLISECOND);
    TCHECK_EQ(pt_chan_recv_until(pc, &q, dl), CSP_ETIMEDOUT);
    TCHECK(csp_now() >= dl);
    TCHECK_EQ(pt_chan_try_recv(pc, &q), CSP_EAGAIN);
    TCHECK_EQ(pt_chan_send_until(pc, p, 0), 0);
    TCHECK_EQ(pt_chan_close(pc), 0);
    TCHECK_EQ(pt_chan_len(pc), 1);
    TCHECK_EQ(pt_chan_recv(pc, &q), 0);
    TCHECK_EQ(pt_chan_recv(pc, &q), CSP_ECLOSED);
    TCHECK(q.x == 0 && q.y == 0.0);
    pt_chan_release(pc);
}

static void test_chan_typed(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++)
        J_RUN(typed_main, NULL, ch_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* randomized model test                                                     */

static uint64_t xs_next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

typedef struct {
    uint64_t seed;
    size_t cap;
    int ops;
} model_arg_t;

static void model_run(const model_arg_t *a)
{
    csp_chan_t *c = csp_chan_make(sizeof(uint32_t), a->cap);
    TCHECK(c != NULL);
    if (!c)
        return;
    uint32_t *q = malloc((a->cap + 1) * sizeof *q); /* model: ring of the values */
    size_t head = 0, count = 0;
    int closed = 0;
    uint64_t s = a->seed * 0x9E3779B97F4A7C15ULL + 1;
    uint32_t next = 1;
    for (int op = 0; op < a->ops; op++) {
        uint64_t r = xs_next(&s) % 100;
        if (r < 45) { /* try_send */
            uint32_t v = next;
            int rc = csp_chan_try_send(c, &v);
            int expect = closed ? CSP_ECLOSED : count < a->cap ? 0 : CSP_EAGAIN;
            if (rc != expect) {
                tc_fail(__FILE__, __LINE__, "seed %llu cap %zu op %d: try_send %d, model %d",
                        (unsigned long long)a->seed, a->cap, op, rc, expect);
                break;
            }
            if (rc == 0) {
                q[(head + count) % (a->cap ? a->cap : 1)] = next;
                count++;
                next++;
            }
        } else if (r < 90) { /* try_recv */
            uint32_t v = 0xAAAAAAAAu;
            int rc = csp_chan_try_recv(c, &v);
            int expect = count ? 0 : closed ? CSP_ECLOSED : CSP_EAGAIN;
            uint32_t ev = count ? q[head] : closed ? 0 : 0xAAAAAAAAu;
            if (rc != expect || v != ev) {
                tc_fail(__FILE__, __LINE__,
                        "seed %llu cap %zu op %d: try_recv %d/%u, model %d/%u",
                        (unsigned long long)a->seed, a->cap, op, rc, v, expect, ev);
                break;
            }
            if (rc == 0) {
                head = (head + 1) % a->cap;
                count--;
            }
        } else if (r < 98) { /* len / cap / closed */
            if (csp_chan_len(c) != count || csp_chan_cap(c) != a->cap ||
                csp_chan_closed(c) != closed) {
                tc_fail(__FILE__, __LINE__,
                        "seed %llu cap %zu op %d: len %zu closed %d, model %zu %d",
                        (unsigned long long)a->seed, a->cap, op, csp_chan_len(c),
                        csp_chan_closed(c), count, closed);
                break;
            }
        } else { /* close (rarely) */
            int rc = csp_chan_close(c);
            int expect = closed ? CSP_ECLOSED : 0;
            if (rc != expect) {
                tc_fail(__FILE__, __LINE__, "seed %llu cap %zu op %d: close %d, model %d",
                        (unsigned long long)a->seed, a->cap, op, rc, expect);
                break;
            }
            closed = 1;
            if (count == 0 && (xs_next(&s) & 1)) { /* reopen: start a new channel */
                csp_chan_release(c);
                c = csp_chan_make(sizeof(uint32_t), a->cap);
                head = 0;
                closed = 0;
            }
        }
    }
    csp_chan_release(c);
    free(q);
}

static void model_main(void *arg)
{
    static const size_t caps[] = { 1, 2, 3, 5, 16, 100 };
    (void)arg;
    for (uint64_t seed = 1; seed <= 40; seed++)
        for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++) {
            model_arg_t a = { seed, caps[k], 3000 };
            model_run(&a);
        }
}

static void test_chan_model(void **state)
{
    (void)state;
    J_RUN(model_main, NULL, 1, CSP_SPAWN_HELP_FIRST);
    J_RUN(model_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    /* and on a plain thread */
    TC_RESET();
    model_main(NULL);
    TC_ASSERT_CLEAN();
}


/* ------------------------------------------------------------------------ */
/* deadlines racing with values: a value whose send succeeded is received    */
/* exactly once, a timed-out send delivered nothing                          */

enum { TR_SENDERS = 4, TR_RECEIVERS = 4 };
#define TR_ITERS TC_SCALE(4000)
static csp_chan_t *tr_ch;
static atomic_long tr_sent_sum, tr_sent_n, tr_recv_sum, tr_recv_n;
static atomic_int tr_senders_left;

static void tr_sender(void *arg)
{
    long id = (long)(uintptr_t)arg;
    long sum = 0, n = 0;
    for (long i = 0; i < TR_ITERS; i++) {
        long v = id * 1000000 + i + 1;
        int rc = csp_chan_send_until(tr_ch, &v, csp_deadline_after((i % 5) * 20 * CSP_MICROSECOND));
        if (rc == 0) {
            sum += v;
            n++;
        } else if (rc != CSP_ETIMEDOUT && rc != CSP_EAGAIN) {
            TCHECK_EQ(rc, 0);
        }
    }
    atomic_fetch_add(&tr_sent_sum, sum);
    atomic_fetch_add(&tr_sent_n, n);
    if (atomic_fetch_sub(&tr_senders_left, 1) == 1)
        TCHECK_EQ(csp_chan_close(tr_ch), 0);
}

static void tr_receiver(void *arg)
{
    (void)arg;
    long sum = 0, n = 0;
    for (;;) {
        long v = -1;
        int rc = csp_chan_recv_until(tr_ch, &v, csp_deadline_after(30 * CSP_MICROSECOND));
        if (rc == 0) {
            TCHECK(v > 0);
            sum += v;
            n++;
        } else if (rc == CSP_ECLOSED) {
            TCHECK_EQ(v, 0);
            break;
        } else {
            TCHECK_EQ(rc, CSP_ETIMEDOUT);
            TCHECK_EQ(v, -1); /* a timed-out receive wrote nothing */
        }
    }
    atomic_fetch_add(&tr_recv_sum, sum);
    atomic_fetch_add(&tr_recv_n, n);
}

static void tr_main(void *arg)
{
    size_t cap = (size_t)(uintptr_t)arg;
    tr_ch = csp_chan_make(sizeof(long), cap);
    atomic_store(&tr_senders_left, TR_SENDERS);
    for (int i = 0; i < TR_RECEIVERS; i++)
        TCHECK_EQ(go_joined(tr_receiver, NULL), 0);
    for (int i = 0; i < TR_SENDERS; i++)
        TCHECK_EQ(go_joined(tr_sender, (void *)(uintptr_t)i), 0);
}

static void test_chan_deadline_races(void **state)
{
    (void)state;
    for (int w = 0; w < CH_NW; w++)
        for (size_t cap = 0; cap <= 2; cap += 2) {
            atomic_store(&tr_sent_sum, 0);
            atomic_store(&tr_sent_n, 0);
            atomic_store(&tr_recv_sum, 0);
            atomic_store(&tr_recv_n, 0);
            J_RUN(tr_main, (void *)(uintptr_t)cap, ch_workers[w], CSP_SPAWN_HELP_FIRST);
            assert_int_equal(atomic_load(&tr_recv_n), atomic_load(&tr_sent_n));
            assert_int_equal(atomic_load(&tr_recv_sum), atomic_load(&tr_sent_sum));
            assert_true(atomic_load(&tr_sent_n) > 0);
            csp_chan_release(tr_ch);
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chan_len_cap_elem_size),
        cmocka_unit_test(test_chan_bad_input),
        cmocka_unit_test(test_chan_try),
        cmocka_unit_test(test_chan_fifo_wraparound),
        cmocka_unit_test(test_chan_close_buffered),
        cmocka_unit_test(test_chan_plain_threads_no_runtime),
        cmocka_unit_test(test_chan_unbuffered_rendezvous),
        cmocka_unit_test(test_chan_buffered_fifo),
        cmocka_unit_test(test_chan_close_wakes_blocked),
        cmocka_unit_test(test_chan_try_with_parked_peer),
        cmocka_unit_test(test_chan_until),
        cmocka_unit_test(test_chan_signal),
        cmocka_unit_test(test_chan_discard),
        cmocka_unit_test(test_chan_large_elements),
        cmocka_unit_test(test_chan_mpmc),
        cmocka_unit_test(test_chan_plain_threads_with_runtime),
        cmocka_unit_test(test_chan_refcount),
        cmocka_unit_test(test_chan_typed),
        cmocka_unit_test(test_chan_model),
        cmocka_unit_test(test_chan_deadline_races),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
