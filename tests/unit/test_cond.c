/* ctest-timeout: 180 */
/* csp_cond_t (Go's sync.Cond) from tasks and plain threads: NULL arguments,
 * waiting with a mutex that is not locked (CSP_EINVAL, nothing changed), the
 * book's queue example (Concurrency in Go, ch. 3: a queue of at most 2 with
 * 10 items), signal wakes exactly one waiter - the longest waiting - and
 * broadcast all of them, no spurious wake-ups (a waiter that got no signal
 * is still waiting, also while the mutex is busy), a signal with nobody
 * waiting is not remembered, wait_until (timeout relocks the mutex, deadline
 * 0 and past deadlines), no signal lost to waiters that time out at the same
 * moment, shutdown (the waiter returns CSP_ESHUTDOWN holding the mutex) and
 * tasks freed while waiting on a cond that outlives the runtime.
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
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <csp.h>

#include "task_check.h"
#include "test_util.h"
#include "thread_util.h"

#include "task_join.h"

static csp_wg_t th_wg; /* plain threads of a run: a task waits on it (parks) */
static const int nw3[] = { 1, 2, 4 };

/* ------------------------------------------------------------------------ */
/* NULL, unlocked mutex, static init                                          */

static csp_cond_t file_scope_cond = CSP_COND_INIT;

static void test_cond_null_and_misuse(void **state)
{
    (void)state;
    csp_cond_t c = CSP_COND_INIT;
    csp_mutex_t m = CSP_MUTEX_INIT;
    assert_int_equal(csp_cond_wait(NULL, &m), CSP_EINVAL);
    assert_int_equal(csp_cond_wait(&c, NULL), CSP_EINVAL);
    assert_int_equal(csp_cond_wait(NULL, NULL), CSP_EINVAL);
    assert_int_equal(csp_cond_wait_until(NULL, &m, CSP_FOREVER), CSP_EINVAL);
    assert_int_equal(csp_cond_wait_until(&c, NULL, 0), CSP_EINVAL);
    assert_int_equal(csp_cond_signal(NULL), CSP_EINVAL);
    assert_int_equal(csp_cond_broadcast(NULL), CSP_EINVAL);
    /* m not locked: EINVAL, nothing changed, nothing blocks */
    assert_int_equal(csp_cond_wait(&c, &m), CSP_EINVAL);
    assert_int_equal(csp_cond_wait_until(&c, &m, csp_now() + CSP_SECOND), CSP_EINVAL);
    assert_true(all_zero(&c, sizeof c));
    assert_true(all_zero(&m, sizeof m));
    /* signal/broadcast with nobody waiting, on a file-scope cond */
    assert_int_equal(csp_cond_signal(&file_scope_cond), 0);
    assert_int_equal(csp_cond_broadcast(&file_scope_cond), 0);
    assert_true(all_zero(&file_scope_cond, sizeof file_scope_cond));
}

/* wait_until without a runtime: deadline 0 (poll), past, and a real timeout;
 * the mutex is held on return every time */
static void test_cond_wait_until_no_runtime(void **state)
{
    (void)state;
    csp_cond_t c = CSP_COND_INIT;
    csp_mutex_t m = CSP_MUTEX_INIT;
    assert_int_equal(csp_mutex_lock(&m), 0);
    assert_int_equal(csp_cond_wait_until(&c, &m, 0), CSP_EAGAIN);
    assert_int_equal(csp_mutex_trylock(&m), CSP_EAGAIN);
    assert_int_equal(csp_cond_wait_until(&c, &m, csp_now() - CSP_MILLISECOND), CSP_ETIMEDOUT);
    assert_int_equal(csp_mutex_trylock(&m), CSP_EAGAIN);
    csp_time_t t0 = csp_now();
    assert_int_equal(csp_cond_wait_until(&c, &m, t0 + 15 * CSP_MILLISECOND), CSP_ETIMEDOUT);
    assert_true(csp_now() - t0 >= 15 * CSP_MILLISECOND);
    assert_int_equal(csp_mutex_trylock(&m), CSP_EAGAIN); /* relocked */
    assert_int_equal(csp_mutex_unlock(&m), 0);
    assert_int_equal(csp_mutex_unlock(&m), CSP_EINVAL);
    assert_true(all_zero(&c, sizeof c));
    assert_true(all_zero(&m, sizeof m));
}

/* ------------------------------------------------------------------------ */
/* the book's queue example                                                  */

static csp_mutex_t bq_mu;
static csp_cond_t bq_cond;
static int bq_len, bq_added, bq_removed, bq_max_len, bq_waits;

static void bq_remove(void *arg)
{
    (void)arg;
    /* the book: time.Sleep(delay) with 1 s; 20 ms keeps the adder waiting
     * (the queue full) even on a slow, loaded machine */
    csp_sleep(20 * CSP_MILLISECOND);
    TCHECK_EQ(csp_mutex_lock(&bq_mu), 0);
    TCHECK(bq_len > 0);
    bq_len--; /* queue = queue[1:] */
    bq_removed++;
    TCHECK_EQ(csp_mutex_unlock(&bq_mu), 0);
    TCHECK_EQ(csp_cond_signal(&bq_cond), 0);
}

static void bq_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        TCHECK_EQ(csp_mutex_lock(&bq_mu), 0);
        while (bq_len == 2) {
            bq_waits++;
            TCHECK_EQ(csp_cond_wait(&bq_cond, &bq_mu), 0);
        }
        bq_len++; /* "Adding to queue" */
        bq_added++;
        if (bq_len > bq_max_len)
            bq_max_len = bq_len;
        TCHECK_EQ(go_joined(bq_remove, NULL), 0);
        TCHECK_EQ(csp_mutex_unlock(&bq_mu), 0);
    }
}

static void *bq_thread(void *arg)
{
    bq_main(arg);
    csp_wg_done(&th_wg);
    return NULL;
}

/* the adding loop on a plain thread */
static void bq_thread_main(void *arg)
{
    (void)arg;
    pthread_t th;
    csp_wg_add(&th_wg, 1);
    TCHECK_EQ(pthread_create(&th, NULL, bq_thread, NULL), 0);
    TCHECK_EQ(csp_wg_wait(&th_wg), 0);
    pthread_join(th, NULL);
}

static void test_cond_book_queue(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int thread = 0; thread < 2; thread++) {
            memset(&bq_mu, 0, sizeof bq_mu);
            memset(&bq_cond, 0, sizeof bq_cond);
            memset(&th_wg, 0, sizeof th_wg);
            bq_len = bq_added = bq_removed = bq_max_len = bq_waits = 0;
            J_RUN(thread ? bq_thread_main : bq_main, NULL, tc_worker_counts[w],
                  CSP_SPAWN_HELP_FIRST);
            assert_int_equal(bq_added, 10);
            assert_int_equal(bq_removed, 10);
            assert_int_equal(bq_len, 0);
            assert_int_equal(bq_max_len, 2);
            assert_true(bq_waits >= 1); /* it did wait for removals */
            assert_true(all_zero(&bq_cond, sizeof bq_cond));
            assert_true(all_zero(&bq_mu, sizeof bq_mu));
        }
}

/* ------------------------------------------------------------------------ */
/* signal wakes exactly one (the oldest), broadcast all, no spurious wakes   */

#define SG_WAITERS 5
static csp_mutex_t sg_mu;
static csp_cond_t sg_cond;
static int sg_entered;               /* under sg_mu */
static atomic_int sg_woke;           /* returned from wait */
static atomic_int sg_woke_id[SG_WAITERS]; /* 1 once waiter i returned */
static atomic_int sg_first_woken;    /* id of the first to wake */
static atomic_int sg_busy_stop;

static void sg_wait_body(int id)
{
    TCHECK_EQ(csp_mutex_lock(&sg_mu), 0);
    sg_entered++;
    TCHECK_EQ(csp_cond_wait(&sg_cond, &sg_mu), 0);
    /* holds the mutex again */
    TCHECK_EQ(csp_mutex_trylock(&sg_mu), CSP_EAGAIN);
    int expect = -1;
    atomic_compare_exchange_strong(&sg_first_woken, &expect, id);
    atomic_store(&sg_woke_id[id], 1);
    atomic_fetch_add(&sg_woke, 1);
    TCHECK_EQ(csp_mutex_unlock(&sg_mu), 0);
}

static void sg_waiter(void *arg) { sg_wait_body((int)(intptr_t)arg); }
static void *sg_waiter_thread(void *arg)
{
    sg_wait_body((int)(intptr_t)arg);
    csp_wg_done(&th_wg);
    return NULL;
}

/* keeps the mutex busy: mutex traffic must not wake cond waiters */
static void sg_busy(void *arg)
{
    (void)arg;
    while (!atomic_load(&sg_busy_stop)) {
        TCHECK_EQ(csp_mutex_lock(&sg_mu), 0);
        csp_yield();
        TCHECK_EQ(csp_mutex_unlock(&sg_mu), 0);
        csp_sleep(50 * CSP_MICROSECOND);
    }
}

static int sg_entered_now(void)
{
    csp_mutex_lock(&sg_mu);
    int n = sg_entered;
    csp_mutex_unlock(&sg_mu);
    return n;
}

static void sg_settle(void) { csp_sleep(20 * CSP_MILLISECOND); }

/* waiters: odd ids are plain threads when `threads` */
static void sg_main(void *arg)
{
    int threads = (int)(intptr_t)arg;
    pthread_t th[SG_WAITERS];
    int nth = 0;
    TCHECK_EQ(go_joined(sg_busy, NULL), 0);
    /* a signal with nobody waiting is not remembered */
    TCHECK_EQ(csp_cond_signal(&sg_cond), 0);
    TCHECK_EQ(csp_cond_broadcast(&sg_cond), 0);
    /* start the waiters one by one, so that id order is waiting order: a
     * waiter counted in sg_entered is queued (it queues before it unlocks) */
    for (int i = 0; i < SG_WAITERS; i++) {
        if (threads && i % 2) {
            csp_wg_add(&th_wg, 1);
            TCHECK_EQ(pthread_create(&th[nth++], NULL, sg_waiter_thread, (void *)(intptr_t)i), 0);
        } else {
            TCHECK_EQ(go_joined(sg_waiter, (void *)(intptr_t)i), 0);
        }
        while (sg_entered_now() < i + 1)
            csp_sleep(100 * CSP_MICROSECOND);
    }
    /* nobody signalled: nobody wakes, however busy the mutex */
    sg_settle();
    TCHECK_EQ(atomic_load(&sg_woke), 0);
    /* one signal: exactly one wakes, the longest waiting (id 0) */
    TCHECK_EQ(csp_cond_signal(&sg_cond), 0);
    while (atomic_load(&sg_woke) < 1)
        csp_sleep(100 * CSP_MICROSECOND);
    sg_settle();
    TCHECK_EQ(atomic_load(&sg_woke), 1);
    TCHECK_EQ(atomic_load(&sg_first_woken), 0);
    TCHECK_EQ(atomic_load(&sg_woke_id[0]), 1);
    /* a second signal: the next one (id 1) */
    TCHECK_EQ(csp_cond_signal(&sg_cond), 0);
    while (atomic_load(&sg_woke) < 2)
        csp_sleep(100 * CSP_MICROSECOND);
    sg_settle();
    TCHECK_EQ(atomic_load(&sg_woke), 2);
    TCHECK_EQ(atomic_load(&sg_woke_id[1]), 1);
    /* broadcast: all the others */
    TCHECK_EQ(csp_cond_broadcast(&sg_cond), 0);
    csp_time_t give_up = csp_now() + 10 * CSP_SECOND;
    while (atomic_load(&sg_woke) < SG_WAITERS && csp_now() < give_up)
        csp_sleep(100 * CSP_MICROSECOND);
    TCHECK_EQ(atomic_load(&sg_woke), SG_WAITERS);
    atomic_store(&sg_busy_stop, 1);
    if (nth) {
        TCHECK_EQ(csp_wg_wait(&th_wg), 0);
        for (int i = 0; i < nth; i++)
            pthread_join(th[i], NULL);
    }
}

static void test_cond_signal_one_broadcast_all(void **state)
{
    (void)state;
    for (int w = 0; w < 3; w++)
        for (int threads = 0; threads < 2; threads++) {
            memset(&sg_mu, 0, sizeof sg_mu);
            memset(&sg_cond, 0, sizeof sg_cond);
            memset(&th_wg, 0, sizeof th_wg);
            sg_entered = 0;
            atomic_store(&sg_woke, 0);
            atomic_store(&sg_first_woken, -1);
            atomic_store(&sg_busy_stop, 0);
            for (int i = 0; i < SG_WAITERS; i++)
                atomic_store(&sg_woke_id[i], 0);
            J_RUN(sg_main, (void *)(intptr_t)threads, nw3[w], CSP_SPAWN_HELP_FIRST);
            assert_true(all_zero(&sg_cond, sizeof sg_cond));
            assert_true(all_zero(&sg_mu, sizeof sg_mu));
        }
}

/* ------------------------------------------------------------------------ */
/* broadcast wakes every one of many waiters, and only those                 */

#define BC_WAITERS TC_SCALE_LIVE(200)
static csp_mutex_t bc_mu;
static csp_cond_t bc_cond;
static int bc_entered, bc_gen; /* under bc_mu */
static atomic_int bc_woke, bc_late_woke;

static void bc_waiter(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_mutex_lock(&bc_mu), 0);
    int gen = bc_gen;
    bc_entered++;
    while (bc_gen == gen) /* the usual predicate loop; no spurious wakes anyway */
        TCHECK_EQ(csp_cond_wait(&bc_cond, &bc_mu), 0);
    atomic_fetch_add(&bc_woke, 1);
    TCHECK_EQ(csp_mutex_unlock(&bc_mu), 0);
}

/* starts waiting after the broadcast: must not be woken by it */
static void bc_late(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_mutex_lock(&bc_mu), 0);
    int r = csp_cond_wait_until(&bc_cond, &bc_mu, csp_now() + 30 * CSP_MILLISECOND);
    TCHECK_EQ(r, CSP_ETIMEDOUT);
    if (r == 0)
        atomic_fetch_add(&bc_late_woke, 1);
    TCHECK_EQ(csp_mutex_unlock(&bc_mu), 0);
}

static void bc_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < BC_WAITERS; i++)
        TCHECK_EQ(go_joined(bc_waiter, NULL), 0);
    for (;;) {
        TCHECK_EQ(csp_mutex_lock(&bc_mu), 0);
        int n = bc_entered;
        if (n == BC_WAITERS) {
            bc_gen++;
            TCHECK_EQ(csp_cond_broadcast(&bc_cond), 0);
            TCHECK_EQ(csp_mutex_unlock(&bc_mu), 0);
            break;
        }
        TCHECK_EQ(csp_mutex_unlock(&bc_mu), 0);
        csp_sleep(200 * CSP_MICROSECOND);
    }
    TCHECK_EQ(go_joined(bc_late, NULL), 0);
}

static void test_cond_broadcast_many(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        memset(&bc_mu, 0, sizeof bc_mu);
        memset(&bc_cond, 0, sizeof bc_cond);
        bc_entered = bc_gen = 0;
        atomic_store(&bc_woke, 0);
        atomic_store(&bc_late_woke, 0);
        J_RUN(bc_main, NULL, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
        assert_int_equal(atomic_load(&bc_woke), BC_WAITERS);
        assert_int_equal(atomic_load(&bc_late_woke), 0);
        assert_true(all_zero(&bc_cond, sizeof bc_cond));
    }
}

/* ------------------------------------------------------------------------ */
/* wait_until: timeout relocks; a signal before the deadline wins            */

static csp_mutex_t wu_mu;
static csp_cond_t wu_cond;
static atomic_int wu_waiting;

static void wu_body(void)
{
    TCHECK_EQ(csp_mutex_lock(&wu_mu), 0);
    TCHECK_EQ(csp_cond_wait_until(&wu_cond, &wu_mu, 0), CSP_EAGAIN);
    TCHECK_EQ(csp_cond_wait_until(&wu_cond, &wu_mu, 1), CSP_ETIMEDOUT);
    csp_time_t t0 = csp_now();
    TCHECK_EQ(csp_cond_wait_until(&wu_cond, &wu_mu, t0 + 20 * CSP_MILLISECOND), CSP_ETIMEDOUT);
    TCHECK(csp_now() - t0 >= 20 * CSP_MILLISECOND); /* never early */
    TCHECK_EQ(csp_mutex_trylock(&wu_mu), CSP_EAGAIN); /* relocked */
    /* now one that a signal ends long before its deadline */
    atomic_store(&wu_waiting, 1);
    t0 = csp_now();
    TCHECK_EQ(csp_cond_wait_until(&wu_cond, &wu_mu, t0 + 10 * CSP_SECOND), 0);
    TCHECK(csp_now() - t0 < 5 * CSP_SECOND);
    TCHECK_EQ(csp_mutex_trylock(&wu_mu), CSP_EAGAIN);
    TCHECK_EQ(csp_mutex_unlock(&wu_mu), 0);
}

static void wu_task(void *arg) { (void)arg; wu_body(); }
static void *wu_thread(void *arg) { (void)arg; wu_body(); csp_wg_done(&th_wg); return NULL; }

static void wu_main(void *arg)
{
    int thread = (int)(intptr_t)arg;
    pthread_t th;
    if (thread) {
        csp_wg_add(&th_wg, 1);
        TCHECK_EQ(pthread_create(&th, NULL, wu_thread, NULL), 0);
    } else {
        TCHECK_EQ(go_joined(wu_task, NULL), 0);
    }
    /* while it times out, this task holds the mutex now and then: the
     * waiter's relock has to wait for it */
    while (!atomic_load(&wu_waiting)) {
        TCHECK_EQ(csp_mutex_lock(&wu_mu), 0);
        csp_sleep(2 * CSP_MILLISECOND);
        TCHECK_EQ(csp_mutex_unlock(&wu_mu), 0);
        csp_sleep(CSP_MILLISECOND);
    }
    /* the flag is set under the mutex, so once we hold it the waiter waits */
    TCHECK_EQ(csp_mutex_lock(&wu_mu), 0);
    TCHECK_EQ(csp_cond_signal(&wu_cond), 0);
    TCHECK_EQ(csp_mutex_unlock(&wu_mu), 0);
    if (thread) {
        TCHECK_EQ(csp_wg_wait(&th_wg), 0);
        pthread_join(th, NULL);
    }
}

static void test_cond_wait_until(void **state)
{
    (void)state;
    for (int w = 0; w < 3; w++)
        for (int thread = 0; thread < 2; thread++) {
            memset(&wu_mu, 0, sizeof wu_mu);
            memset(&wu_cond, 0, sizeof wu_cond);
            memset(&th_wg, 0, sizeof th_wg);
            atomic_store(&wu_waiting, 0);
            J_RUN(wu_main, (void *)(intptr_t)thread, nw3[w], CSP_SPAWN_HELP_FIRST);
            assert_true(all_zero(&wu_cond, sizeof wu_cond));
            assert_true(all_zero(&wu_mu, sizeof wu_mu));
        }
}

/* ------------------------------------------------------------------------ */
/* no signal is lost to waiters that time out at the same moment             */

/* Consumers wait forever for items; churners wait with tiny deadlines (1-21
 * us) over and over. A churner that is signalled passes the signal on (it is not a
 * consumer). If a signal went to a churner whose deadline had already
 * fired, a consumer would sleep with an item pending and the run would
 * stall: the producer waits for each item to be consumed. */
#define LS_CONSUMERS 4
#define LS_CHURNERS 6
#define LS_ITEMS TC_SCALE(2000)
static csp_mutex_t ls_mu;
static csp_cond_t ls_cond;
static int ls_items, ls_consumed, ls_done; /* under ls_mu */
static atomic_int ls_stalled;
static atomic_long ls_churn_timeouts, ls_churn_signals;

static void ls_consumer(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_mutex_lock(&ls_mu), 0);
    for (;;) {
        while (ls_items == 0 && !ls_done)
            TCHECK_EQ(csp_cond_wait(&ls_cond, &ls_mu), 0);
        if (ls_items == 0 && ls_done)
            break;
        ls_items--;
        ls_consumed++;
    }
    TCHECK_EQ(csp_mutex_unlock(&ls_mu), 0);
}

static void ls_churner(void *arg)
{
    uint64_t rng = (uint64_t)(intptr_t)arg + 1;
    TCHECK_EQ(csp_mutex_lock(&ls_mu), 0);
    while (!ls_done) {
        rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
        int r = csp_cond_wait_until(&ls_cond, &ls_mu,
                                    csp_now() + 1000 + (csp_duration_t)((rng >> 40) % 20000));
        if (r == 0) {
            atomic_fetch_add(&ls_churn_signals, 1);
            TCHECK_EQ(csp_cond_signal(&ls_cond), 0); /* not ours: pass it on */
        } else {
            TCHECK_EQ(r, CSP_ETIMEDOUT);
            atomic_fetch_add(&ls_churn_timeouts, 1);
            /* a slow build may time out before parking, every time: leave
             * the others (one worker) a schedule point */
            TCHECK_EQ(csp_mutex_unlock(&ls_mu), 0);
            csp_yield();
            TCHECK_EQ(csp_mutex_lock(&ls_mu), 0);
        }
    }
    TCHECK_EQ(csp_mutex_unlock(&ls_mu), 0);
}

static void ls_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < LS_CONSUMERS; i++)
        TCHECK_EQ(go_joined(ls_consumer, NULL), 0);
    for (int i = 0; i < LS_CHURNERS; i++)
        TCHECK_EQ(go_joined(ls_churner, (void *)(intptr_t)i), 0);
    csp_sleep(CSP_MILLISECOND);
    for (int k = 0; k < LS_ITEMS; k++) {
        TCHECK_EQ(csp_mutex_lock(&ls_mu), 0);
        ls_items++;
        TCHECK_EQ(csp_cond_signal(&ls_cond), 0);
        /* wait until it is consumed (the churners keep the cond busy) */
        csp_time_t give_up = csp_now() + 5 * CSP_SECOND;
        while (ls_items > 0) {
            TCHECK_EQ(csp_mutex_unlock(&ls_mu), 0);
            csp_yield();
            TCHECK_EQ(csp_mutex_lock(&ls_mu), 0);
            if (csp_now() > give_up) {
                atomic_store(&ls_stalled, 1);
                break;
            }
        }
        TCHECK_EQ(csp_mutex_unlock(&ls_mu), 0);
        if (atomic_load(&ls_stalled))
            break;
    }
    TCHECK_EQ(csp_mutex_lock(&ls_mu), 0);
    ls_done = 1;
    TCHECK_EQ(csp_cond_broadcast(&ls_cond), 0);
    TCHECK_EQ(csp_mutex_unlock(&ls_mu), 0);
}

static void test_cond_no_lost_signal_with_timeouts(void **state)
{
    (void)state;
    for (int run = 0; run < 2 * TC_NWORKER_COUNTS; run++) {
        int nw = tc_worker_counts[run / 2];
        memset(&ls_mu, 0, sizeof ls_mu);
        memset(&ls_cond, 0, sizeof ls_cond);
        ls_items = ls_consumed = ls_done = 0;
        atomic_store(&ls_stalled, 0);
        atomic_store(&ls_churn_timeouts, 0);
        atomic_store(&ls_churn_signals, 0);
        J_RUN(ls_main, NULL, nw, CSP_SPAWN_HELP_FIRST);
        print_message("workers %d: churners timed out %ld times, passed on %ld signals\n", nw,
                      atomic_load(&ls_churn_timeouts), atomic_load(&ls_churn_signals));
        assert_int_equal(atomic_load(&ls_stalled), 0);
        assert_int_equal(ls_consumed, LS_ITEMS);
        assert_true(atomic_load(&ls_churn_timeouts) > 0);
        assert_true(all_zero(&ls_cond, sizeof ls_cond));
        assert_true(all_zero(&ls_mu, sizeof ls_mu));
    }
}

/* ------------------------------------------------------------------------ */
/* shutdown: the waiter gets CSP_ESHUTDOWN and holds the mutex again         */

#define UNSET 12345
static csp_mutex_t sd_mu;
static csp_cond_t sd_cond;
static atomic_int sd_rc_thread, sd_thread_relocked, sd_rc_task, sd_task_relocked, sd_ready;
static atomic_int sd_tid;

static void *sd_thread(void *arg)
{
    (void)arg;
    atomic_store(&sd_tid, (int)syscall(SYS_gettid));
    csp_mutex_lock(&sd_mu);
    atomic_fetch_add(&sd_ready, 1);
    atomic_store(&sd_rc_thread, csp_cond_wait(&sd_cond, &sd_mu));
    /* the mutex is ours again: unlock succeeds exactly once */
    atomic_store(&sd_thread_relocked, csp_mutex_unlock(&sd_mu) == 0);
    return NULL;
}

static void sd_task(void *arg)
{
    (void)arg;
    csp_mutex_lock(&sd_mu);
    atomic_fetch_add(&sd_ready, 1);
    atomic_store(&sd_rc_task, csp_cond_wait_until(&sd_cond, &sd_mu, csp_now() + 3600 * CSP_SECOND));
    atomic_store(&sd_task_relocked, csp_mutex_unlock(&sd_mu) == 0);
}

static void test_cond_shutdown(void **state)
{
    (void)state;
    for (int rep = 0; rep < 3; rep++) {
        memset(&sd_mu, 0, sizeof sd_mu);
        memset(&sd_cond, 0, sizeof sd_cond);
        atomic_store(&sd_rc_thread, UNSET);
        atomic_store(&sd_rc_task, UNSET);
        atomic_store(&sd_thread_relocked, 0);
        atomic_store(&sd_task_relocked, 0);
        atomic_store(&sd_ready, 0);
        csp_config_t cfg = { .workers = 2 };
        assert_int_equal(csp_init(&cfg), 0);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, sd_thread, NULL), 0);
        assert_int_equal(csp_go(sd_task, NULL), 0);
        while (atomic_load(&sd_ready) < 2)
            ms_sleep(1);
        /* both wait once we get the mutex (they queue before unlocking) */
        assert_int_equal(csp_mutex_lock(&sd_mu), 0);
        assert_int_equal(csp_mutex_unlock(&sd_mu), 0);
        ms_sleep(20);
        csp_shutdown();
        pthread_join(th, NULL);
        assert_int_equal(atomic_load(&sd_rc_thread), CSP_ESHUTDOWN);
        assert_int_equal(atomic_load(&sd_thread_relocked), 1);
        int t = atomic_load(&sd_rc_task);
        if (t != UNSET) { /* UNSET: cut off by the grace period */
            assert_int_equal(t, CSP_ESHUTDOWN);
            assert_int_equal(atomic_load(&sd_task_relocked), 1);
        }
        assert_true(all_zero(&sd_cond, sizeof sd_cond));
        if (t != UNSET)
            assert_true(all_zero(&sd_mu, sizeof sd_mu));
    }
}

/* ------------------------------------------------------------------------ */
/* a cond outlives tasks freed while waiting on it                           */

static csp_mutex_t ol_mu = CSP_MUTEX_INIT;
static csp_cond_t ol_cond = CSP_COND_INIT;
static int ol_entered; /* under ol_mu */

static void ol_waiter(void *arg)
{
    int i = (int)(intptr_t)arg;
    csp_mutex_lock(&ol_mu);
    ol_entered++;
    if (i % 2)
        csp_cond_wait(&ol_cond, &ol_mu);
    else
        csp_cond_wait_until(&ol_cond, &ol_mu, csp_now() + 3600 * CSP_SECOND);
    csp_mutex_unlock(&ol_mu);
}

static void ol_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(csp_go(ol_waiter, (void *)(intptr_t)i), 0);
    for (;;) {
        csp_mutex_lock(&ol_mu);
        int n = ol_entered;
        csp_mutex_unlock(&ol_mu);
        if (n == 4)
            break;
        csp_sleep(CSP_MILLISECOND);
    }
    /* The last one is queued on ol_cond but may not have parked yet: let it
     * park, so that teardown has four parked waiters to unlink (one that
     * reaches its wait while the runtime stops gets CSP_ESHUTDOWN instead and
     * is left at the yield before its relock, not holding ol_mu). */
    csp_sleep(20 * CSP_MILLISECOND);
    /* return with four tasks waiting on ol_cond */
}

static void test_cond_outlives_freed_waiters(void **state)
{
    (void)state;
    T_RUN(ol_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    /* a signal that woke a freed task would touch its freed stack */
    assert_true(all_zero(&ol_cond, sizeof ol_cond));
    assert_int_equal(csp_cond_signal(&ol_cond), 0);
    assert_int_equal(csp_cond_broadcast(&ol_cond), 0);
    assert_true(all_zero(&ol_mu, sizeof ol_mu));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cond_null_and_misuse),
        cmocka_unit_test(test_cond_wait_until_no_runtime),
        cmocka_unit_test(test_cond_book_queue),
        cmocka_unit_test(test_cond_signal_one_broadcast_all),
        cmocka_unit_test(test_cond_broadcast_many),
        cmocka_unit_test(test_cond_wait_until),
        cmocka_unit_test(test_cond_no_lost_signal_with_timeouts),
        cmocka_unit_test(test_cond_shutdown),
        cmocka_unit_test(test_cond_outlives_freed_waiters), /* last: it may crash */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
