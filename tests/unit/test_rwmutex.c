/* ctest-timeout: 180 */
/* csp_rwmutex_t (Go's sync.RWMutex) from tasks and plain threads: NULL
 * arguments, static initialisation, use without a runtime, misuse (runlock
 * without readers, unlock when not write-locked: CSP_EINVAL, unchanged),
 * readers overlap, writers exclude readers and writers (invariant counter,
 * tasks and threads mixed), a waiting writer blocks new readers
 * (deterministic), readers queued behind a writer get in before the next
 * writer, shutdown of blocked readers and writers (including a writer that
 * waits for readers: its bias is undone), and tasks freed while queued on an
 * rwmutex that outlives the runtime.
 *
 * After every concurrent phase the rwmutex must be all-zero again.
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

/* ------------------------------------------------------------------------ */
/* NULL, static init, no runtime, misuse                                     */

static csp_rwmutex_t file_scope_rw = CSP_RWMUTEX_INIT;

static void test_rw_null(void **state)
{
    (void)state;
    assert_int_equal(csp_rwmutex_rlock(NULL), CSP_EINVAL);
    assert_int_equal(csp_rwmutex_tryrlock(NULL), CSP_EINVAL);
    assert_int_equal(csp_rwmutex_runlock(NULL), CSP_EINVAL);
    assert_int_equal(csp_rwmutex_lock(NULL), CSP_EINVAL);
    assert_int_equal(csp_rwmutex_trylock(NULL), CSP_EINVAL);
    assert_int_equal(csp_rwmutex_unlock(NULL), CSP_EINVAL);
}

static void test_rw_no_runtime(void **state)
{
    (void)state;
    csp_rwmutex_t *m = &file_scope_rw;
    assert_true(all_zero(m, sizeof *m));
    assert_int_equal(csp_rwmutex_rlock(m), 0);
    assert_int_equal(csp_rwmutex_rlock(m), 0);
    assert_int_equal(csp_rwmutex_tryrlock(m), 0);
    assert_int_equal(csp_rwmutex_trylock(m), CSP_EAGAIN); /* readers hold it */
    assert_int_equal(csp_rwmutex_runlock(m), 0);
    assert_int_equal(csp_rwmutex_runlock(m), 0);
    assert_int_equal(csp_rwmutex_runlock(m), 0);
    assert_true(all_zero(m, sizeof *m));
    assert_int_equal(csp_rwmutex_lock(m), 0);
    assert_int_equal(csp_rwmutex_tryrlock(m), CSP_EAGAIN);
    assert_int_equal(csp_rwmutex_trylock(m), CSP_EAGAIN);
    assert_int_equal(csp_rwmutex_unlock(m), 0);
    assert_int_equal(csp_rwmutex_trylock(m), 0);
    assert_int_equal(csp_rwmutex_unlock(m), 0);
    assert_true(all_zero(m, sizeof *m));
    /* zeroed memory */
    csp_rwmutex_t z;
    memset(&z, 0, sizeof z);
    assert_int_equal(csp_rwmutex_lock(&z), 0);
    assert_int_equal(csp_rwmutex_unlock(&z), 0);
}

static void test_rw_misuse(void **state)
{
    (void)state;
    csp_rwmutex_t m = CSP_RWMUTEX_INIT, before;
    /* unlocked */
    memcpy(&before, &m, sizeof m);
    assert_int_equal(csp_rwmutex_runlock(&m), CSP_EINVAL);
    assert_int_equal(csp_rwmutex_unlock(&m), CSP_EINVAL);
    assert_memory_equal(&m, &before, sizeof m);
    /* read-locked: unlock is not allowed */
    assert_int_equal(csp_rwmutex_rlock(&m), 0);
    memcpy(&before, &m, sizeof m);
    assert_int_equal(csp_rwmutex_unlock(&m), CSP_EINVAL);
    assert_memory_equal(&m, &before, sizeof m);
    assert_int_equal(csp_rwmutex_runlock(&m), 0);
    memcpy(&before, &m, sizeof m);
    assert_int_equal(csp_rwmutex_runlock(&m), CSP_EINVAL); /* one too many */
    assert_memory_equal(&m, &before, sizeof m);
    /* write-locked: runlock is not allowed */
    assert_int_equal(csp_rwmutex_lock(&m), 0);
    memcpy(&before, &m, sizeof m);
    assert_int_equal(csp_rwmutex_runlock(&m), CSP_EINVAL);
    assert_memory_equal(&m, &before, sizeof m);
    assert_int_equal(csp_rwmutex_unlock(&m), 0);
    memcpy(&before, &m, sizeof m);
    assert_int_equal(csp_rwmutex_unlock(&m), CSP_EINVAL);
    assert_memory_equal(&m, &before, sizeof m);
    /* still works */
    assert_int_equal(csp_rwmutex_rlock(&m), 0);
    assert_int_equal(csp_rwmutex_runlock(&m), 0);
    assert_int_equal(csp_rwmutex_lock(&m), 0);
    assert_int_equal(csp_rwmutex_unlock(&m), 0);
    assert_true(all_zero(&m, sizeof m));
}

/* ------------------------------------------------------------------------ */
/* readers overlap                                                            */

#define OV_READERS 8
static csp_rwmutex_t ov_rw;
static atomic_int ov_active, ov_max;
static atomic_int ov_go;
static int ov_busy; /* hold by spinning instead of sleeping */

static void ov_reader(void *arg)
{
    (void)arg;
    while (!atomic_load(&ov_go))
        csp_yield();
    for (int r = 0; r < 5; r++) {
        TCHECK_EQ(csp_rwmutex_rlock(&ov_rw), 0);
        int cur = atomic_fetch_add(&ov_active, 1) + 1;
        int mx = atomic_load(&ov_max);
        while (cur > mx && !atomic_compare_exchange_weak(&ov_max, &mx, cur))
            ;
        if (ov_busy) {
            csp_time_t until = csp_now() + 300 * CSP_MICROSECOND;
            while (csp_now() < until)
                ;
        } else {
            csp_sleep(2 * CSP_MILLISECOND);
        }
        atomic_fetch_sub(&ov_active, 1);
        TCHECK_EQ(csp_rwmutex_runlock(&ov_rw), 0);
        csp_yield();
    }
}

static void ov_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < OV_READERS; i++)
        TCHECK_EQ(go_joined(ov_reader, NULL), 0);
    csp_sleep(CSP_MILLISECOND);
    atomic_store(&ov_go, 1);
}

static void test_rw_readers_overlap(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        int nw = tc_worker_counts[w];
        for (ov_busy = 0; ov_busy < 2; ov_busy++) {
            if (ov_busy && nw < 2)
                continue; /* spinning readers overlap only on several workers */
            int mx = 0;
            /* busy readers overlap when two workers run at once: on a loaded
             * machine that may take a few tries */
            for (int attempt = 0; attempt < 20 && mx < 2; attempt++) {
                memset(&ov_rw, 0, sizeof ov_rw);
                atomic_store(&ov_active, 0);
                atomic_store(&ov_max, 0);
                atomic_store(&ov_go, 0);
                J_RUN(ov_main, NULL, nw, CSP_SPAWN_HELP_FIRST);
                assert_true(all_zero(&ov_rw, sizeof ov_rw));
                mx = atomic_load(&ov_max);
                if (!ov_busy)
                    break;
            }
            print_message("workers %d, %s readers: at most %d at once\n", nw,
                          ov_busy ? "spinning" : "sleeping", mx);
            assert_true(mx > 1);
            assert_true(mx <= OV_READERS);
        }
    }
}

/* ------------------------------------------------------------------------ */
/* writers exclude readers and writers                                       */

#define EX_READERS 12
#define EX_WRITERS 4
#define EX_ROUNDS TC_SCALE(600)
#define EX_THREAD_ROUNDS TC_SCALE(3000)
static csp_rwmutex_t ex_rw;
static atomic_int ex_state; /* +1 per reader inside, +1000 per writer inside */
static long ex_a, ex_b;     /* written by writers only; readers check a == b */
static atomic_long ex_writes;

static void ex_read(void)
{
    TCHECK_EQ(csp_rwmutex_rlock(&ex_rw), 0);
    int s = atomic_fetch_add(&ex_state, 1) + 1;
    TCHECK(s < 1000);
    long a = ex_a;
    csp_yield();
    long b = ex_b;
    TCHECK_EQ(a, b);
    atomic_fetch_sub(&ex_state, 1);
    TCHECK_EQ(csp_rwmutex_runlock(&ex_rw), 0);
}

static void ex_write(int i)
{
    int r = (i % 4 == 0) ? csp_rwmutex_trylock(&ex_rw) : csp_rwmutex_lock(&ex_rw);
    if (r == CSP_EAGAIN)
        return;
    TCHECK_EQ(r, 0);
    int s = atomic_fetch_add(&ex_state, 1000) + 1000;
    TCHECK_EQ(s, 1000);
    ex_a++;
    if (i % 3 == 0)
        csp_yield();
    ex_b++;
    atomic_fetch_add(&ex_writes, 1);
    atomic_fetch_sub(&ex_state, 1000);
    TCHECK_EQ(csp_rwmutex_unlock(&ex_rw), 0);
}

static void ex_reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < EX_ROUNDS; i++) {
        if (i % 5 == 0 && csp_rwmutex_tryrlock(&ex_rw) == 0) {
            TCHECK(atomic_load(&ex_state) < 1000);
            TCHECK_EQ(csp_rwmutex_runlock(&ex_rw), 0);
            continue;
        }
        ex_read();
    }
}

static void ex_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < EX_ROUNDS; i++)
        ex_write(i);
}

static void *ex_thread(void *arg)
{
    int writer = (int)(intptr_t)arg;
    for (int i = 0; i < EX_THREAD_ROUNDS; i++) {
        if (writer)
            ex_write(i);
        else
            ex_read();
    }
    csp_wg_done(&th_wg);
    return NULL;
}

static void ex_main(void *arg)
{
    int threads = (int)(intptr_t)arg;
    pthread_t th[2];
    if (threads) {
        csp_wg_add(&th_wg, 2);
        for (int i = 0; i < 2; i++)
            TCHECK_EQ(pthread_create(&th[i], NULL, ex_thread, (void *)(intptr_t)i), 0);
    }
    for (int i = 0; i < EX_READERS + EX_WRITERS; i++)
        TCHECK_EQ(go_joined(i < EX_WRITERS ? ex_writer : ex_reader, NULL), 0);
    if (threads) {
        TCHECK_EQ(csp_wg_wait(&th_wg), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
    }
}

static void test_rw_exclusion(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int threads = 0; threads < 2; threads++) {
            memset(&ex_rw, 0, sizeof ex_rw);
            memset(&th_wg, 0, sizeof th_wg);
            atomic_store(&ex_state, 0);
            atomic_store(&ex_writes, 0);
            ex_a = ex_b = 0;
            J_RUN(ex_main, (void *)(intptr_t)threads, tc_worker_counts[w], CSP_SPAWN_HELP_FIRST);
            assert_int_equal(ex_a, atomic_load(&ex_writes));
            assert_int_equal(ex_b, ex_a);
            assert_true(ex_a > 0);
            assert_true(all_zero(&ex_rw, sizeof ex_rw));
        }
}

/* ------------------------------------------------------------------------ */
/* a waiting writer blocks new readers (deterministic)                      */

static csp_rwmutex_t wb_rw;
static atomic_int wb_w_in;  /* 0 not yet, 1 inside, 2 left */
static atomic_int wb_b_in;  /* the late reader: 1 once inside */
static atomic_int wb_b_saw; /* wb_w_in as the late reader found it */

static void wb_writer(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_rwmutex_lock(&wb_rw), 0);
    atomic_store(&wb_w_in, 1);
    csp_sleep(10 * CSP_MILLISECOND);
    TCHECK_EQ(atomic_load(&wb_b_in), 0); /* the late reader waits for us */
    atomic_store(&wb_w_in, 2);
    TCHECK_EQ(csp_rwmutex_unlock(&wb_rw), 0);
}

static void wb_late_reader(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_rwmutex_rlock(&wb_rw), 0);
    atomic_store(&wb_b_saw, atomic_load(&wb_w_in));
    atomic_store(&wb_b_in, 1);
    TCHECK_EQ(csp_rwmutex_runlock(&wb_rw), 0);
}

static void *wb_late_reader_thread(void *arg)
{
    wb_late_reader(arg);
    csp_wg_done(&th_wg);
    return NULL;
}

static void wb_main(void *arg)
{
    int thread = (int)(intptr_t)arg;
    TCHECK_EQ(csp_rwmutex_rlock(&wb_rw), 0); /* reader A */
    TCHECK_EQ(go_joined(wb_writer, NULL), 0);
    /* until the writer waits: then new readers are refused */
    csp_time_t give_up = csp_now() + 10 * CSP_SECOND;
    while (csp_rwmutex_tryrlock(&wb_rw) == 0) {
        TCHECK_EQ(csp_rwmutex_runlock(&wb_rw), 0);
        csp_sleep(CSP_MILLISECOND / 2);
        if (csp_now() > give_up) {
            TCHECK(!"the writer never arrived");
            break;
        }
    }
    pthread_t th;
    if (thread) {
        csp_wg_add(&th_wg, 1);
        TCHECK_EQ(pthread_create(&th, NULL, wb_late_reader_thread, NULL), 0);
    } else {
        TCHECK_EQ(go_joined(wb_late_reader, NULL), 0);
    }
    csp_sleep(20 * CSP_MILLISECOND);
    TCHECK_EQ(atomic_load(&wb_w_in), 0);   /* the writer waits for A */
    TCHECK_EQ(atomic_load(&wb_b_in), 0);   /* the late reader waits for the writer */
    TCHECK_EQ(csp_rwmutex_tryrlock(&wb_rw), CSP_EAGAIN);
    TCHECK_EQ(csp_rwmutex_trylock(&wb_rw), CSP_EAGAIN);
    TCHECK_EQ(csp_rwmutex_runlock(&wb_rw), 0); /* A leaves: the writer goes first */
    if (thread) {
        TCHECK_EQ(csp_wg_wait(&th_wg), 0);
        pthread_join(th, NULL);
    }
}

static void test_rw_writer_blocks_readers(void **state)
{
    (void)state;
    const int nw[] = { 1, 2, 4 };
    for (int w = 0; w < 3; w++)
        for (int thread = 0; thread < 2; thread++) {
            memset(&wb_rw, 0, sizeof wb_rw);
            memset(&th_wg, 0, sizeof th_wg);
            atomic_store(&wb_w_in, 0);
            atomic_store(&wb_b_in, 0);
            atomic_store(&wb_b_saw, -1);
            J_RUN(wb_main, (void *)(intptr_t)thread, nw[w], CSP_SPAWN_HELP_FIRST);
            assert_int_equal(atomic_load(&wb_b_in), 1);
            assert_int_equal(atomic_load(&wb_b_saw), 2); /* in only after the writer left */
            assert_true(all_zero(&wb_rw, sizeof wb_rw));
        }
}

/* ------------------------------------------------------------------------ */
/* readers queued behind a writer get in before the next writer             */

#define NX_READERS 3
static csp_rwmutex_t nx_rw;
static atomic_int nx_seq;
static atomic_int nx_reader_in[NX_READERS], nx_reader_out[NX_READERS], nx_w2_in;
static atomic_int nx_queued;

static void nx_reader(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&nx_queued, 1);
    TCHECK_EQ(csp_rwmutex_rlock(&nx_rw), 0);
    atomic_store(&nx_reader_in[i], atomic_fetch_add(&nx_seq, 1));
    csp_sleep(5 * CSP_MILLISECOND);
    atomic_store(&nx_reader_out[i], atomic_fetch_add(&nx_seq, 1));
    TCHECK_EQ(csp_rwmutex_runlock(&nx_rw), 0);
}

static void nx_writer2(void *arg)
{
    (void)arg;
    atomic_fetch_add(&nx_queued, 1);
    TCHECK_EQ(csp_rwmutex_lock(&nx_rw), 0);
    atomic_store(&nx_w2_in, atomic_fetch_add(&nx_seq, 1));
    TCHECK_EQ(csp_rwmutex_unlock(&nx_rw), 0);
}

static void nx_main(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_rwmutex_lock(&nx_rw), 0); /* W1 */
    for (int i = 0; i < NX_READERS; i++)
        TCHECK_EQ(go_joined(nx_reader, (void *)(intptr_t)i), 0);
    while (atomic_load(&nx_queued) < NX_READERS)
        csp_sleep(CSP_MILLISECOND);
    csp_sleep(5 * CSP_MILLISECOND); /* the readers queue */
    TCHECK_EQ(go_joined(nx_writer2, NULL), 0);
    while (atomic_load(&nx_queued) < NX_READERS + 1)
        csp_sleep(CSP_MILLISECOND);
    csp_sleep(5 * CSP_MILLISECOND); /* W2 queues */
    atomic_fetch_add(&nx_seq, 1);
    TCHECK_EQ(csp_rwmutex_unlock(&nx_rw), 0);
}

static void test_rw_readers_before_next_writer(void **state)
{
    (void)state;
    const int nw[] = { 1, 2, 4 };
    for (int w = 0; w < 3; w++) {
        memset(&nx_rw, 0, sizeof nx_rw);
        atomic_store(&nx_seq, 0);
        atomic_store(&nx_queued, 0);
        atomic_store(&nx_w2_in, -1);
        J_RUN(nx_main, NULL, nw[w], CSP_SPAWN_HELP_FIRST);
        int w2 = atomic_load(&nx_w2_in);
        for (int i = 0; i < NX_READERS; i++) {
            /* every reader was let in by W1's unlock and left before W2 */
            assert_true(atomic_load(&nx_reader_in[i]) >= 1);
            assert_true(atomic_load(&nx_reader_out[i]) < w2);
        }
        assert_true(all_zero(&nx_rw, sizeof nx_rw));
    }
}

/* ------------------------------------------------------------------------ */
/* shutdown                                                                  */

#define UNSET 12345
enum { SD_HOLD_WRITE, SD_HOLD_READ };
static csp_rwmutex_t sd_rw;
static atomic_int sd_held, sd_arrived;
#define SD_TASKS 8
#define SD_THREADS 3
static atomic_int sd_rc_task[SD_TASKS], sd_rc_thread[SD_THREADS], sd_tid[SD_THREADS];

static void sd_holder(void *arg)
{
    int how = (int)(intptr_t)arg;
    TCHECK_EQ(how == SD_HOLD_WRITE ? csp_rwmutex_lock(&sd_rw) : csp_rwmutex_rlock(&sd_rw), 0);
    atomic_store(&sd_held, 1);
    csp_sleep(3600 * CSP_SECOND); /* ESHUTDOWN: keeps the lock */
}

/* even: reader, odd: writer */
static int sd_block(int i)
{
    return i % 2 ? csp_rwmutex_lock(&sd_rw) : csp_rwmutex_rlock(&sd_rw);
}

static void sd_task(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_fetch_add(&sd_arrived, 1);
    atomic_store(&sd_rc_task[i], sd_block(i));
}

static void *sd_thread(void *arg)
{
    int i = (int)(intptr_t)arg;
    atomic_store(&sd_tid[i], (int)syscall(SYS_gettid));
    atomic_fetch_add(&sd_arrived, 1);
    atomic_store(&sd_rc_thread[i], sd_block(i));
    return NULL;
}

static void sd_run(int how)
{
    memset(&sd_rw, 0, sizeof sd_rw);
    atomic_store(&sd_held, 0);
    atomic_store(&sd_arrived, 0);
    for (int i = 0; i < SD_TASKS; i++)
        atomic_store(&sd_rc_task[i], UNSET);
    for (int i = 0; i < SD_THREADS; i++)
        atomic_store(&sd_rc_thread[i], UNSET);
    TC_RESET();
    csp_config_t cfg = { .workers = 2 };
    assert_int_equal(csp_init(&cfg), 0);
    assert_int_equal(csp_go(sd_holder, (void *)(intptr_t)how), 0);
    while (!atomic_load(&sd_held))
        ms_sleep(1);
    /* the first blocked party is a writer (thread 1): with a read holder it
     * waits for the reader, and the later readers queue behind it */
    pthread_t th[SD_THREADS];
    int order[SD_THREADS] = { 1, 0, 2 };
    for (int k = 0; k < SD_THREADS; k++) {
        int i = order[k];
        assert_int_equal(pthread_create(&th[i], NULL, sd_thread, (void *)(intptr_t)i), 0);
        while (atomic_load(&sd_arrived) < k + 1)
            ms_sleep(1);
        wait_thread_blocked(atomic_load(&sd_tid[i]));
    }
    for (int i = 0; i < SD_TASKS; i++)
        assert_int_equal(csp_go(sd_task, (void *)(intptr_t)i), 0);
    while (atomic_load(&sd_arrived) < SD_TASKS + SD_THREADS)
        ms_sleep(1);
    ms_sleep(20); /* let the tasks park */
    csp_shutdown();
    /* Writers fail (the holder never leaves). Readers fail too, except that
     * with a read holder, the waiting writer's abort may release queued
     * readers before the shutdown reaches them: they hold the lock then. */
    int readers_in = 0;
    for (int i = 0; i < SD_THREADS; i++) {
        pthread_join(th[i], NULL);
        int v = atomic_load(&sd_rc_thread[i]);
        if (v == 0 && i % 2 == 0 && how == SD_HOLD_READ)
            readers_in++;
        else
            assert_int_equal(v, CSP_ESHUTDOWN);
    }
    for (int i = 0; i < SD_TASKS; i++) {
        int v = atomic_load(&sd_rc_task[i]);
        if (v == 0 && i % 2 == 0 && how == SD_HOLD_READ)
            readers_in++;
        else if (v != UNSET) /* UNSET: cut off by the grace period */
            assert_int_equal(v, CSP_ESHUTDOWN);
    }
    TC_ASSERT_CLEAN();
    for (int i = 0; i < readers_in; i++)
        assert_int_equal(csp_rwmutex_runlock(&sd_rw), 0);
    /* only the holder's lock is left: every waiter took its part back */
    if (how == SD_HOLD_WRITE) {
        assert_int_equal(csp_rwmutex_tryrlock(&sd_rw), CSP_EAGAIN);
        assert_int_equal(csp_rwmutex_runlock(&sd_rw), CSP_EINVAL);
        assert_int_equal(csp_rwmutex_unlock(&sd_rw), 0);
    } else {
        assert_int_equal(csp_rwmutex_trylock(&sd_rw), CSP_EAGAIN);
        assert_int_equal(csp_rwmutex_unlock(&sd_rw), CSP_EINVAL);
        assert_int_equal(csp_rwmutex_runlock(&sd_rw), 0);
    }
    assert_true(all_zero(&sd_rw, sizeof sd_rw));
    assert_int_equal(csp_rwmutex_lock(&sd_rw), 0);
    assert_int_equal(csp_rwmutex_unlock(&sd_rw), 0);
}

static void test_rw_shutdown(void **state)
{
    (void)state;
    for (int rep = 0; rep < 2; rep++) {
        sd_run(SD_HOLD_WRITE);
        sd_run(SD_HOLD_READ);
    }
}

/* ------------------------------------------------------------------------ */
/* an rwmutex outlives tasks freed while queued on it                        */

static csp_rwmutex_t ol_rw = CSP_RWMUTEX_INIT;
static atomic_int ol_arrived;

static void ol_reader(void *arg)
{
    (void)arg;
    atomic_fetch_add(&ol_arrived, 1);
    csp_rwmutex_rlock(&ol_rw);
}

static void ol_main(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_rwmutex_lock(&ol_rw), 0);
    for (int i = 0; i < 4; i++)
        TCHECK_EQ(csp_go(ol_reader, NULL), 0);
    while (atomic_load(&ol_arrived) < 4)
        csp_sleep(CSP_MILLISECOND);
    csp_sleep(5 * CSP_MILLISECOND);
    /* return write-locked with four readers queued */
}

static void ol_reuse(void *arg)
{
    (void)arg;
    for (int i = 0; i < 50; i++) {
        TCHECK_EQ(csp_rwmutex_rlock(&ol_rw), 0);
        csp_yield();
        TCHECK_EQ(csp_rwmutex_runlock(&ol_rw), 0);
        TCHECK_EQ(csp_rwmutex_lock(&ol_rw), 0);
        csp_yield();
        TCHECK_EQ(csp_rwmutex_unlock(&ol_rw), 0);
    }
}

static void ol_reuse_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 6; i++)
        TCHECK_EQ(go_joined(ol_reuse, NULL), 0);
}

static void test_rw_outlives_freed_waiters(void **state)
{
    (void)state;
    atomic_store(&ol_arrived, 0);
    T_RUN(ol_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    /* unlock must not release (touch) the freed readers */
    assert_int_equal(csp_rwmutex_unlock(&ol_rw), 0);
    assert_true(all_zero(&ol_rw, sizeof ol_rw));
    J_RUN(ol_reuse_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    assert_true(all_zero(&ol_rw, sizeof ol_rw));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rw_null),
        cmocka_unit_test(test_rw_no_runtime),
        cmocka_unit_test(test_rw_misuse),
        cmocka_unit_test(test_rw_readers_overlap),
        cmocka_unit_test(test_rw_exclusion),
        cmocka_unit_test(test_rw_writer_blocks_readers),
        cmocka_unit_test(test_rw_readers_before_next_writer),
        cmocka_unit_test(test_rw_shutdown),
        cmocka_unit_test(test_rw_outlives_freed_waiters), /* last: it may crash */
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
