/* ctest-timeout: 240 */
/* Contexts (include/csp/ctx.h; Go's context package): background/todo,
 * with_cancel (err, cause, done channel, idempotence, first cancel wins,
 * cancel never goes up, cancel goes down through value and deadline
 * contexts, children born under a done parent), deadlines (never early, the
 * earlier of own and parent's, past deadlines, timers freed on cancel and on
 * release: heap measured), values (ancestors, shadowing, keys by pointer,
 * value_free exactly once after the last release, not on failed creation,
 * out of memory), without_cancel, detaching released children (heap
 * measured), trees of 10,000 nodes cancelled from the root and from the
 * middle (and 100,000 deep on a 16 KiB stack), csp_ctx_after_func (once, in
 * a new task; stop; never-cancellable contexts; stop/cancel and register/
 * cancel races; chains; a parking value_free during the cancel),
 * csp_ctx_wait, racing cancels (one cause wins everywhere), csp_ctx_done
 * created while cancelling, deadline children created while their parent is
 * cancelled, concurrent create/release/cancel stress, plain threads with and
 * without a runtime, out of memory, and NULL arguments.
 *
 * Heap measurements use mallinfo2() (glibc) in plain builds and the
 * sanitizer allocator's counter in ASan/TSan builds.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <malloc.h>
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

#if defined(CSP_TEST_SANITIZER) && CSP_TEST_SANITIZER
/* from <sanitizer/allocator_interface.h> (not shipped with every gcc):
 * exported by libasan and libtsan */
size_t __sanitizer_get_current_allocated_bytes(void);
#  define CX_SANITIZER 1
#else
#  define CX_SANITIZER 0
#endif

#define MS CSP_MILLISECOND
/* generous upper bound on lateness for a loaded 2-core machine; the lower
 * bound (never early) is strict */
#define LATE (250 * MS)

static const int cx_workers[] = { 1, 2, 4 };
#define CX_NW ((int)(sizeof cx_workers / sizeof cx_workers[0]))

/* Runs fn as the main task at every worker count, reps times each,
 * alternating the spawn policy; helper tasks started with go_joined are
 * joined before the runtime stops. */
#define RUN_ALL(fn, reps)                                                      \
    do {                                                                       \
        for (int w_ = 0; w_ < CX_NW; w_++)                                     \
            for (int r_ = 0; r_ < (reps); r_++)                                \
                J_RUN((fn), NULL, cx_workers[w_],                              \
                      (r_ & 1) ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST); \
    } while (0)

/* Bytes currently allocated with malloc & co. */
static size_t heap_in_use(void)
{
#if CX_SANITIZER
    return __sanitizer_get_current_allocated_bytes();
#else
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
#endif
}

/* What a loop of n create/release pairs may add to the heap: allocator
 * noise (glibc's per-thread caches count as in use), far below what keeping
 * a pointer per object would cost (8n), let alone a context (~200n). */
#define HEAP_SLACK(n) (2L * (n) + 16384L)

/* 1: ctx's done channel is closed; 0: open; -1: ctx has no done channel. */
static int done_state(csp_ctx_t *c)
{
    csp_chan_t *d = csp_ctx_done(c);
    if (!d)
        return -1;
    int r = csp_chan_try_recv(d, NULL);
    if (r == CSP_ECLOSED)
        return 1;
    if (r == CSP_EAGAIN)
        return 0;
    return -2; /* a value on a done channel: never */
}

/* Deadline contexts are cancelled by a task the library spawns when the
 * timer fires; that task holds a reference until it finishes. Before a main
 * task returns (freeing tasks that have not run), make sure such tasks have
 * run: the same path taken once more, observed through a value_free. */
static atomic_int settle_freed;
static const char settle_key = 0;
static void settle_free(void *v)
{
    (void)v;
    atomic_fetch_add(&settle_freed, 1);
}

static void settle_deadlines(void)
{
    atomic_store(&settle_freed, 0);
    csp_ctx_t *v = csp_ctx_with_value(csp_ctx_background(), &settle_key, NULL, settle_free);
    csp_ctx_t *d = csp_ctx_with_timeout(v, 1 * MS);
    csp_ctx_release(v); /* d keeps it */
    TCHECK_EQ(csp_ctx_wait(d), CSP_EDEADLINE);
    csp_ctx_release(d); /* the deadline task may still hold d */
    csp_time_t until = csp_deadline_after(10 * CSP_SECOND);
    while (atomic_load(&settle_freed) == 0 && csp_now() < until)
        csp_sleep(CSP_MILLISECOND / 2);
    TCHECK_EQ(atomic_load(&settle_freed), 1);
    csp_sleep(CSP_MILLISECOND); /* deadline tasks that fired earlier */
}

/* ------------------------------------------------------------------------ */
/* background / todo                                                         */

static const int key_a = 7, key_b = 7; /* equal contents, different addresses */
static char key_c;

static void root_checks(void)
{
    csp_ctx_t *bg = csp_ctx_background(), *todo = csp_ctx_todo();
    TCHECK(bg != NULL);
    TCHECK(todo != NULL);
    TCHECK(bg != todo);
    TCHECK(csp_ctx_background() == bg);
    TCHECK(csp_ctx_todo() == todo);
    csp_ctx_t *roots[2] = { bg, todo };
    for (int i = 0; i < 2; i++) {
        csp_ctx_t *r = roots[i];
        TCHECK(csp_ctx_done(r) == NULL);
        TCHECK_EQ(csp_ctx_err(r), 0);
        TCHECK_EQ(csp_ctx_cause(r), 0);
        csp_time_t d = 12345;
        TCHECK_EQ(csp_ctx_deadline(r, &d), 0);
        TCHECK_EQ(d, CSP_FOREVER);
        TCHECK_EQ(csp_ctx_deadline(r, NULL), 0);
        TCHECK(csp_ctx_value(r, &key_a) == NULL);
        TCHECK(csp_ctx_value(r, NULL) == NULL);
        /* retain returns it; release is a no-op however often it is called */
        for (int k = 0; k < 1000; k++)
            TCHECK(csp_ctx_retain(r) == r);
        for (int k = 0; k < 3000; k++)
            csp_ctx_release(r);
        /* cancel is a no-op */
        csp_ctx_cancel(r);
        csp_ctx_cancel_cause(r, -55);
        TCHECK_EQ(csp_ctx_err(r), 0);
        TCHECK_EQ(csp_ctx_cause(r), 0);
        TCHECK(csp_ctx_done(r) == NULL);
        /* still usable as a parent, and a child's cancel doesn't reach it */
        csp_ctx_t *c = csp_ctx_with_cancel(r);
        TCHECK(c != NULL);
        csp_ctx_cancel(c);
        TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
        TCHECK_EQ(csp_ctx_err(r), 0);
        csp_ctx_release(c);
    }
}

static void roots_main(void *arg)
{
    (void)arg;
    root_checks();
}

static void test_ctx_background_todo(void **state)
{
    (void)state;
    TC_RESET();
    root_checks(); /* plain thread, no runtime */
    TC_ASSERT_CLEAN();
    RUN_ALL(roots_main, 1);
}

/* ------------------------------------------------------------------------ */
/* with_cancel                                                               */

static void cancel_checks(void)
{
    csp_ctx_t *bg = csp_ctx_background();

    /* basic: err, cause, done closed, idempotent */
    csp_ctx_t *c = csp_ctx_with_cancel(bg);
    TCHECK(c != NULL);
    TCHECK_EQ(csp_ctx_err(c), 0);
    TCHECK_EQ(csp_ctx_cause(c), 0);
    csp_time_t dl = 0;
    TCHECK_EQ(csp_ctx_deadline(c, &dl), 0);
    TCHECK_EQ(dl, CSP_FOREVER);
    csp_chan_t *d = csp_ctx_done(c);
    TCHECK(d != NULL);
    TCHECK(csp_ctx_done(c) == d); /* stable */
    TCHECK_EQ(csp_chan_elem_size(d), 0);
    TCHECK_EQ(csp_chan_closed(d), 0);
    TCHECK_EQ(csp_chan_try_recv(d, NULL), CSP_EAGAIN);
    csp_ctx_cancel(c);
    TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(c), CSP_ECANCELED);
    TCHECK_EQ(csp_chan_closed(d), 1);
    TCHECK(csp_ctx_done(c) == d);
    /* a receive on the done channel returns CSP_ECLOSED at once, every time */
    for (int i = 0; i < 3; i++)
        TCHECK_EQ(csp_chan_recv(d, NULL), CSP_ECLOSED);
    TCHECK_EQ(csp_chan_recv_until(d, NULL, 0), CSP_ECLOSED);
    /* idempotent: later cancels change nothing, not even the cause */
    csp_ctx_cancel(c);
    csp_ctx_cancel_cause(c, -77);
    TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_wait(c), CSP_ECANCELED);
    csp_ctx_release(c);

    /* first cancel_cause counts; done created only after the cancel is
     * born closed */
    c = csp_ctx_with_cancel(bg);
    csp_ctx_cancel_cause(c, -77);
    csp_ctx_cancel_cause(c, -88);
    csp_ctx_cancel(c);
    TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(c), -77);
    TCHECK_EQ(done_state(c), 1);
    csp_ctx_release(c);
    /* cause 0 means CSP_ECANCELED; any int is a cause */
    c = csp_ctx_with_cancel(bg);
    csp_ctx_cancel_cause(c, 0);
    TCHECK_EQ(csp_ctx_cause(c), CSP_ECANCELED);
    csp_ctx_release(c);
    c = csp_ctx_with_cancel(bg);
    csp_ctx_cancel_cause(c, 4242);
    TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(c), 4242);
    csp_ctx_release(c);

    /* cancelling a child never touches the parent or siblings */
    csp_ctx_t *p = csp_ctx_with_cancel(bg);
    csp_ctx_t *c1 = csp_ctx_with_cancel(p), *c2 = csp_ctx_with_cancel(p);
    csp_ctx_t *g1 = csp_ctx_with_cancel(c1);
    csp_ctx_t *pv = csp_ctx_with_value(p, &key_a, (void *)"pv", NULL);
    TCHECK_EQ(done_state(p), 0);
    TCHECK_EQ(done_state(c2), 0);
    TCHECK_EQ(done_state(g1), 0);
    csp_ctx_cancel_cause(c1, -5);
    TCHECK_EQ(csp_ctx_err(c1), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_err(g1), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(g1), -5);
    TCHECK_EQ(done_state(g1), 1);
    TCHECK_EQ(csp_ctx_err(p), 0);
    TCHECK_EQ(csp_ctx_err(c2), 0);
    TCHECK_EQ(csp_ctx_err(pv), 0);
    TCHECK_EQ(done_state(p), 0);
    TCHECK_EQ(done_state(c2), 0);
    /* a value context has no cancel of its own: cancelling it is a no-op and
     * never reaches its parent */
    csp_ctx_cancel(pv);
    csp_ctx_cancel_cause(pv, -9);
    TCHECK_EQ(csp_ctx_err(pv), 0);
    TCHECK_EQ(csp_ctx_err(p), 0);
    TCHECK(csp_ctx_done(pv) == csp_ctx_done(p)); /* shares the parent's */
    /* now the parent: the rest follows, the earlier cause stays */
    csp_ctx_cancel_cause(p, -6);
    TCHECK_EQ(csp_ctx_cause(p), -6);
    TCHECK_EQ(csp_ctx_cause(c2), -6);
    TCHECK_EQ(csp_ctx_cause(pv), -6);
    TCHECK_EQ(csp_ctx_cause(c1), -5);
    TCHECK_EQ(csp_ctx_cause(g1), -5);
    TCHECK_EQ(done_state(c2), 1);
    TCHECK_EQ(done_state(pv), 1);
    csp_ctx_release(g1);
    csp_ctx_release(c1);
    csp_ctx_release(c2);
    csp_ctx_release(pv);
    csp_ctx_release(p);

    /* a parent's cancel reaches grandchildren through value and deadline
     * contexts, with the parent's cause */
    p = csp_ctx_with_cancel(bg);
    csp_ctx_t *chain[8];
    chain[0] = csp_ctx_with_value(p, &key_a, (void *)"a", NULL);
    chain[1] = csp_ctx_with_deadline(chain[0], csp_deadline_after(3600 * CSP_SECOND));
    chain[2] = csp_ctx_with_value(chain[1], &key_b, (void *)"b", NULL);
    chain[3] = csp_ctx_with_cancel(chain[2]);
    chain[4] = csp_ctx_with_timeout(chain[3], 3600 * CSP_SECOND);
    chain[5] = csp_ctx_with_value(chain[4], &key_c, (void *)"c", NULL);
    chain[6] = csp_ctx_with_value(chain[5], &key_a, (void *)"a2", NULL);
    chain[7] = csp_ctx_with_cancel(chain[6]);
    for (int i = 0; i < 8; i++) {
        TCHECK(chain[i] != NULL);
        TCHECK_EQ(csp_ctx_err(chain[i]), 0);
        TCHECK_EQ(done_state(chain[i]), 0);
    }
    csp_ctx_cancel_cause(p, -4242);
    for (int i = 0; i < 8; i++) {
        TCHECK_EQ(csp_ctx_err(chain[i]), CSP_ECANCELED);
        TCHECK_EQ(csp_ctx_cause(chain[i]), -4242);
        TCHECK_EQ(done_state(chain[i]), 1);
        TCHECK_EQ(csp_ctx_wait(chain[i]), CSP_ECANCELED);
    }
    TCHECK(csp_ctx_done(chain[0]) == csp_ctx_done(p));
    TCHECK(csp_ctx_done(chain[2]) == csp_ctx_done(chain[1]));
    /* released in creation order: each child keeps its parent alive */
    csp_ctx_release(p);
    for (int i = 0; i < 8; i++)
        csp_ctx_release(chain[i]);

    /* a child created under an already-cancelled parent starts done, with
     * the parent's err and cause, whatever its own kind */
    p = csp_ctx_with_cancel(bg);
    csp_ctx_cancel_cause(p, -9);
    csp_ctx_t *born[6];
    born[0] = csp_ctx_with_cancel(p);
    born[1] = csp_ctx_with_timeout(p, 3600 * CSP_SECOND);
    born[2] = csp_ctx_with_deadline(p, csp_now() - 1); /* past, but the parent's cancel came first */
    born[3] = csp_ctx_with_value(p, &key_a, (void *)"v", NULL);
    born[4] = csp_ctx_with_cancel(born[3]);
    born[5] = csp_ctx_with_deadline(born[3], 0);
    for (int i = 0; i < 6; i++) {
        TCHECK(born[i] != NULL);
        TCHECK_EQ(csp_ctx_err(born[i]), CSP_ECANCELED);
        TCHECK_EQ(csp_ctx_cause(born[i]), -9);
        TCHECK_EQ(done_state(born[i]), 1);
        /* a later cancel of the child changes nothing */
        csp_ctx_cancel_cause(born[i], -10);
        TCHECK_EQ(csp_ctx_cause(born[i]), -9);
    }
    /* but without_cancel is never done */
    csp_ctx_t *wc = csp_ctx_without_cancel(p);
    TCHECK_EQ(csp_ctx_err(wc), 0);
    TCHECK(csp_ctx_done(wc) == NULL);
    csp_ctx_release(wc);
    for (int i = 5; i >= 0; i--)
        csp_ctx_release(born[i]);
    csp_ctx_release(p);
}

static void cancel_main(void *arg)
{
    (void)arg;
    cancel_checks();
}

static void test_ctx_cancel(void **state)
{
    (void)state;
    TC_RESET();
    cancel_checks(); /* no runtime: a plain thread */
    TC_ASSERT_CLEAN();
    RUN_ALL(cancel_main, 2);
}

/* ------------------------------------------------------------------------ */
/* retain / release: releasing does not cancel                               */

static atomic_int rr_phase;

static void rr_holder(void *arg)
{
    csp_ctx_t *c = arg; /* retained for us */
    while (atomic_load(&rr_phase) == 0)
        csp_yield();
    /* the creator released its reference: still alive, still not done */
    TCHECK_EQ(csp_ctx_err(c), 0);
    atomic_store(&rr_phase, 2); /* checked: the creator may cancel now */
    TCHECK_EQ(csp_ctx_wait(c), CSP_ECANCELED); /* parent's cancel reaches it */
    TCHECK_EQ(csp_ctx_cause(c), -31);
    csp_ctx_release(c);
}

static void rr_main(void *arg)
{
    (void)arg;
    csp_ctx_t *p = csp_ctx_with_cancel(csp_ctx_background());
    csp_ctx_t *c = csp_ctx_with_cancel(p);
    TCHECK(csp_ctx_retain(c) == c);
    TCHECK(csp_ctx_retain(NULL) == NULL);
    atomic_store(&rr_phase, 0);
    TCHECK_EQ(go_joined(rr_holder, csp_ctx_retain(c)), 0);
    csp_ctx_release(c);
    csp_ctx_release(c); /* ours are gone; the holder's remains */
    atomic_store(&rr_phase, 1);
    while (atomic_load(&rr_phase) != 2) /* the holder has seen it not done */
        csp_yield();
    csp_sleep(2 * MS); /* mostly: the holder is parked in csp_ctx_wait */
    csp_ctx_cancel_cause(p, -31);
    csp_ctx_release(p);
}

static void test_ctx_release_does_not_cancel(void **state)
{
    (void)state;
    RUN_ALL(rr_main, 2);
}

/* ------------------------------------------------------------------------ */
/* deadlines                                                                 */

static void deadline_basic(void)
{
    csp_ctx_t *bg = csp_ctx_background();
    /* with_timeout(20 ms) fires with EDEADLINE, never before 20 ms */
    const csp_duration_t durs[] = { 1 * MS, 5 * MS, 20 * MS };
    for (int i = 0; i < 3; i++) {
        csp_duration_t dur = durs[i];
        csp_time_t t0 = csp_now();
        csp_ctx_t *c = csp_ctx_with_timeout(bg, dur);
        csp_time_t t1 = csp_now();
        TCHECK(c != NULL);
        csp_time_t dl = 0;
        TCHECK_EQ(csp_ctx_deadline(c, &dl), 1);
        TCHECK(dl >= t0 + dur && dl <= t1 + dur);
        if (dur >= 20 * MS)
            TCHECK_EQ(csp_ctx_err(c), 0);
        if (i & 1) {
            TCHECK_EQ(csp_ctx_wait(c), CSP_EDEADLINE);
        } else {
            TCHECK_EQ(csp_chan_recv(csp_ctx_done(c), NULL), CSP_ECLOSED);
        }
        csp_time_t t2 = csp_now();
        TCHECK(t2 >= dl);
        TCHECK(t2 - t0 >= dur);
        TCHECK(t2 - t0 < dur + LATE);
        TCHECK_EQ(csp_ctx_err(c), CSP_EDEADLINE);
        TCHECK_EQ(csp_ctx_cause(c), CSP_EDEADLINE);
        TCHECK_EQ(done_state(c), 1);
        /* a cancel after the deadline changes nothing */
        csp_ctx_cancel_cause(c, -1);
        TCHECK_EQ(csp_ctx_err(c), CSP_EDEADLINE);
        TCHECK_EQ(csp_ctx_cause(c), CSP_EDEADLINE);
        csp_ctx_release(c);
    }

    /* child deadline = the earlier of own and parent's, both directions */
    csp_ctx_t *p = csp_ctx_with_timeout(bg, 3600 * CSP_SECOND);
    csp_time_t pdl = 0, cdl = 0;
    TCHECK_EQ(csp_ctx_deadline(p, &pdl), 1);
    csp_ctx_t *later = csp_ctx_with_deadline(p, pdl + 3600 * CSP_SECOND);
    TCHECK_EQ(csp_ctx_deadline(later, &cdl), 1);
    TCHECK_EQ(cdl, pdl);
    csp_ctx_t *same = csp_ctx_with_deadline(p, pdl);
    TCHECK_EQ(csp_ctx_deadline(same, &cdl), 1);
    TCHECK_EQ(cdl, pdl);
    csp_time_t own = csp_deadline_after(1800 * CSP_SECOND);
    csp_ctx_t *earlier = csp_ctx_with_deadline(p, own);
    TCHECK_EQ(csp_ctx_deadline(earlier, &cdl), 1);
    TCHECK_EQ(cdl, own);
    csp_ctx_t *cc = csp_ctx_with_cancel(p), *vv = csp_ctx_with_value(earlier, &key_a, NULL, NULL);
    TCHECK_EQ(csp_ctx_deadline(cc, &cdl), 1);
    TCHECK_EQ(cdl, pdl);
    TCHECK_EQ(csp_ctx_deadline(vv, &cdl), 1);
    TCHECK_EQ(cdl, own);
    csp_ctx_t *wc = csp_ctx_without_cancel(earlier); /* no deadline */
    cdl = 0;
    TCHECK_EQ(csp_ctx_deadline(wc, &cdl), 0);
    TCHECK_EQ(cdl, CSP_FOREVER);
    csp_ctx_release(wc);
    csp_ctx_release(vv);
    csp_ctx_release(cc);
    csp_ctx_release(earlier);
    csp_ctx_release(same);
    csp_ctx_release(later);
    csp_ctx_release(p);

    /* firing: the parent's earlier deadline fires the child with EDEADLINE */
    csp_time_t t0 = csp_now();
    p = csp_ctx_with_timeout(bg, 15 * MS);
    csp_ctx_t *c = csp_ctx_with_timeout(p, 3600 * CSP_SECOND);
    csp_ctx_t *c2 = csp_ctx_with_cancel(c);
    TCHECK_EQ(csp_ctx_wait(c2), CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 15 * MS);
    TCHECK_EQ(csp_ctx_err(c), CSP_EDEADLINE);
    TCHECK_EQ(csp_ctx_cause(c2), CSP_EDEADLINE);
    TCHECK_EQ(csp_ctx_err(p), CSP_EDEADLINE);
    csp_ctx_release(c2);
    csp_ctx_release(c);
    csp_ctx_release(p);
    /* the child's earlier deadline fires the child only */
    t0 = csp_now();
    p = csp_ctx_with_timeout(bg, 3600 * CSP_SECOND);
    c = csp_ctx_with_timeout(p, 10 * MS);
    TCHECK_EQ(csp_ctx_wait(c), CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 10 * MS);
    csp_sleep(2 * MS);
    TCHECK_EQ(csp_ctx_err(p), 0);
    TCHECK_EQ(done_state(p), 0);
    csp_ctx_release(c);
    csp_ctx_release(p);

    /* a deadline already past: done at once with EDEADLINE, no blocking */
    csp_time_t past[] = { csp_now() - 1, csp_now(), 0, 1, -5 };
    for (int i = 0; i < 5; i++) {
        c = csp_ctx_with_deadline(bg, past[i]);
        TCHECK(c != NULL);
        TCHECK_EQ(csp_ctx_err(c), CSP_EDEADLINE);
        TCHECK_EQ(csp_ctx_cause(c), CSP_EDEADLINE);
        TCHECK_EQ(done_state(c), 1);
        TCHECK_EQ(csp_ctx_deadline(c, &cdl), 1);
        TCHECK_EQ(cdl, past[i]);
        csp_ctx_release(c);
    }
    const csp_duration_t nonpos[] = { 0, -1, -CSP_SECOND };
    for (int i = 0; i < 3; i++) {
        c = csp_ctx_with_timeout(bg, nonpos[i]);
        TCHECK_EQ(csp_ctx_err(c), CSP_EDEADLINE);
        TCHECK_EQ(done_state(c), 1);
        /* children of it are born done with EDEADLINE */
        csp_ctx_t *k = csp_ctx_with_cancel(c);
        TCHECK_EQ(csp_ctx_err(k), CSP_EDEADLINE);
        TCHECK_EQ(csp_ctx_cause(k), CSP_EDEADLINE);
        csp_ctx_release(k);
        csp_ctx_release(c);
    }
    /* CSP_FOREVER is no deadline at all */
    c = csp_ctx_with_deadline(bg, CSP_FOREVER);
    TCHECK_EQ(csp_ctx_deadline(c, &cdl), 0);
    TCHECK_EQ(csp_ctx_err(c), 0);
    csp_ctx_release(c);

    /* cancelled before its deadline: ECANCELED, and the deadline never
     * overrides it afterwards */
    c = csp_ctx_with_timeout(bg, 3 * MS);
    csp_ctx_cancel(c);
    csp_sleep(10 * MS);
    TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(c), CSP_ECANCELED);
    csp_ctx_release(c);
    settle_deadlines();
}

/* never early, many timeouts at once */
enum { NE_TASKS = 40 };
static void ne_task(void *arg)
{
    intptr_t i = (intptr_t)arg;
    csp_duration_t dur = (1 + (i * 7) % 20) * MS;
    csp_time_t t0 = csp_now();
    csp_ctx_t *c = csp_ctx_with_timeout(csp_ctx_background(), dur);
    csp_time_t dl;
    TCHECK_EQ(csp_ctx_deadline(c, &dl), 1);
    if (i % 3 == 0) {
        TCHECK_EQ(csp_ctx_wait(c), CSP_EDEADLINE);
    } else if (i % 3 == 1) {
        TCHECK_EQ(csp_chan_recv(csp_ctx_done(c), NULL), CSP_ECLOSED);
    } else {
        /* polling err: the moment it is set, the deadline has passed */
        while (csp_ctx_err(c) == 0)
            csp_sleep(CSP_MILLISECOND / 4);
    }
    csp_time_t now = csp_now();
    TCHECK(now >= dl);
    TCHECK(now - t0 >= dur);
    TCHECK_EQ(csp_ctx_err(c), CSP_EDEADLINE);
    csp_ctx_release(c);
}

static void deadline_main(void *arg)
{
    (void)arg;
    deadline_basic();
    for (intptr_t i = 0; i < NE_TASKS; i++)
        TCHECK_EQ(go_joined(ne_task, (void *)i), 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    settle_deadlines();
}

static void test_ctx_deadline(void **state)
{
    (void)state;
    RUN_ALL(deadline_main, 2);
}

/* ------------------------------------------------------------------------ */
/* deadline timers are freed on release and on cancel (heap measured)        */

#define TM_N TC_SCALE(100000)

static void timer_release_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    csp_ctx_t *parent = csp_ctx_with_cancel(bg);
    /* warm-up: per-thread caches, timer heaps */
    for (int i = 0; i < 2000; i++) {
        csp_ctx_release(csp_ctx_with_timeout(bg, 3600 * CSP_SECOND));
        csp_ctx_t *c = csp_ctx_with_timeout(parent, 3600 * CSP_SECOND);
        csp_ctx_cancel(c);
        csp_ctx_release(c);
    }
    size_t m0 = heap_in_use();
    for (int i = 0; i < TM_N; i++) {
        /* never fire: freed by the release */
        csp_ctx_t *c = csp_ctx_with_timeout(i & 1 ? bg : parent, 3600 * CSP_SECOND + i);
        TCHECK(c != NULL);
        if (i % 3 == 0)
            csp_ctx_cancel(c); /* freed by the cancel, then the release */
        csp_ctx_release(c);
        if ((i & 1023) == 0)
            csp_yield();
    }
    size_t m1 = heap_in_use();
    long grew = (long)m1 - (long)m0;
    if (grew > HEAP_SLACK(TM_N))
        tc_fail(__FILE__, __LINE__, "heap grew by %ld bytes over %d timeout contexts", grew,
                TM_N);
    TCHECK_EQ(csp_ctx_err(parent), 0);
    csp_ctx_release(parent);
}

/* cancel (holding the context) frees the timer: N cancelled deadline
 * contexts held at once cost what N cancelled plain contexts cost; a timer
 * left queued would grow a timer heap by a pointer per context */
#define TC_N TC_SCALE(20000)
static void timer_cancel_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    csp_ctx_t **held = malloc((size_t)TC_N * sizeof *held);
    TCHECK(held != NULL);
    if (!held)
        return;
    long delta[2];
    for (int kind = 0; kind < 2; kind++) {
        /* the runtime keeps freed contexts in per-worker caches and a pool
         * (src/sched/objcache.c): fill them the same way before each kind,
         * so that both take as many from them and the rest from malloc */
        for (int i = 0; i < TC_N; i++)
            held[i] = csp_ctx_with_cancel(bg);
        for (int i = 0; i < TC_N; i++)
            csp_ctx_release(held[i]);
        size_t m0 = heap_in_use();
        for (int i = 0; i < TC_N; i++) {
            held[i] = kind == 0 ? csp_ctx_with_timeout(bg, 3600 * CSP_SECOND + i)
                                : csp_ctx_with_cancel(bg);
            csp_ctx_cancel(held[i]);
        }
        delta[kind] = (long)heap_in_use() - (long)m0;
        for (int i = 0; i < TC_N; i++) {
            TCHECK_EQ(csp_ctx_err(held[i]), CSP_ECANCELED);
            csp_ctx_release(held[i]);
        }
    }
    long diff = delta[0] - delta[1];
    if (diff > (long)TC_N * 4)
        tc_fail(__FILE__, __LINE__,
                "%d cancelled deadline contexts use %ld bytes more than plain ones", TC_N, diff);
    free(held);
}

static void test_ctx_deadline_timer_freed(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++) {
        J_RUN(timer_release_main, NULL, cx_workers[w], CSP_SPAWN_HELP_FIRST);
        /* a fresh runtime: fresh timer heaps */
        J_RUN(timer_cancel_main, NULL, cx_workers[w], CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* values                                                                    */

static atomic_int vf_calls;
static _Atomic(void *) vf_last;
static atomic_int vf_order[8];
static atomic_int vf_seq;

static void vf_count(void *v)
{
    atomic_fetch_add(&vf_calls, 1);
    atomic_store(&vf_last, v);
}

static int vf_payload[8];
static void vf_ordered(void *v)
{
    int idx = (int)((int *)v - vf_payload);
    if (idx >= 0 && idx < 8)
        atomic_store(&vf_order[idx], atomic_fetch_add(&vf_seq, 1) + 1);
}

static void value_checks(void)
{
    csp_ctx_t *bg = csp_ctx_background();
    /* lookup through ancestors of every kind, shadowing, keys by pointer */
    csp_ctx_t *v1 = csp_ctx_with_value(bg, &key_a, (void *)"a1", NULL);
    csp_ctx_t *c = csp_ctx_with_cancel(v1);
    csp_ctx_t *v2 = csp_ctx_with_value(c, &key_b, (void *)"b", NULL);
    csp_ctx_t *w = csp_ctx_without_cancel(v2);
    csp_ctx_t *v3 = csp_ctx_with_value(w, &key_a, (void *)"a3", NULL);
    csp_ctx_t *d = csp_ctx_with_timeout(v3, 3600 * CSP_SECOND);
    csp_ctx_t *vn = csp_ctx_with_value(d, NULL, (void *)"null-key", NULL);
    TCHECK(vn != NULL);
    TCHECK(csp_ctx_value(vn, &key_a) == (void *)"a3");
    TCHECK(csp_ctx_value(d, &key_a) == (void *)"a3");
    TCHECK(csp_ctx_value(d, &key_b) == (void *)"b");
    TCHECK(csp_ctx_value(d, &key_c) == NULL);
    TCHECK(csp_ctx_value(vn, NULL) == (void *)"null-key");
    TCHECK(csp_ctx_value(d, NULL) == NULL);
    TCHECK(csp_ctx_value(w, &key_a) == (void *)"a1");
    TCHECK(csp_ctx_value(v2, &key_a) == (void *)"a1");
    TCHECK(csp_ctx_value(c, &key_b) == NULL);
    TCHECK(csp_ctx_value(v1, &key_b) == NULL);
    TCHECK(csp_ctx_value(v1, &key_a) == (void *)"a1");
    TCHECK(csp_ctx_value(bg, &key_a) == NULL);
    /* a key with the same contents at another address is another key */
    csp_ctx_t *vb = csp_ctx_with_value(bg, &key_b, (void *)"only-b", NULL);
    TCHECK(csp_ctx_value(vb, &key_a) == NULL);
    TCHECK(csp_ctx_value(vb, &key_b) == (void *)"only-b");
    /* cancelling doesn't touch values */
    csp_ctx_cancel(c);
    TCHECK(csp_ctx_value(vn, &key_b) == (void *)"b");
    TCHECK_EQ(csp_ctx_err(v2), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_err(vn), 0); /* under without_cancel */
    csp_ctx_t *all[] = { v1, c, v2, w, v3, d, vn, vb };
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        csp_ctx_release(all[i]);

    /* value_free runs exactly once, after the last reference is gone */
    atomic_store(&vf_calls, 0);
    atomic_store(&vf_last, NULL);
    static int payload;
    csp_ctx_t *v = csp_ctx_with_value(bg, &key_a, &payload, vf_count);
    for (int i = 0; i < 3; i++)
        TCHECK(csp_ctx_retain(v) == v);
    for (int i = 0; i < 3; i++)
        csp_ctx_release(v);
    TCHECK_EQ(atomic_load(&vf_calls), 0);
    csp_ctx_t *ch = csp_ctx_with_cancel(v);      /* children keep it alive */
    csp_ctx_t *ch2 = csp_ctx_with_value(ch, &key_b, &payload, NULL);
    csp_ctx_cancel(ch);
    csp_ctx_release(v);
    TCHECK_EQ(atomic_load(&vf_calls), 0);
    TCHECK(csp_ctx_value(ch2, &key_a) == &payload); /* still readable */
    csp_ctx_release(ch);
    TCHECK_EQ(atomic_load(&vf_calls), 0);
    csp_ctx_release(ch2);
    TCHECK_EQ(atomic_load(&vf_calls), 1);
    TCHECK(atomic_load(&vf_last) == &payload);

    /* a chain of value contexts: children's value_free before parents' */
    atomic_store(&vf_seq, 0);
    for (int i = 0; i < 8; i++)
        atomic_store(&vf_order[i], 0);
    csp_ctx_t *vc[8];
    csp_ctx_t *par = bg;
    for (int i = 0; i < 8; i++) {
        vc[i] = csp_ctx_with_value(par, &vf_payload[i], &vf_payload[i], vf_ordered);
        par = vc[i];
    }
    for (int i = 0; i < 7; i++)
        csp_ctx_release(vc[i]);
    for (int i = 0; i < 8; i++)
        TCHECK_EQ(atomic_load(&vf_order[i]), 0);
    TCHECK(csp_ctx_value(vc[7], &vf_payload[0]) == &vf_payload[0]);
    csp_ctx_release(vc[7]); /* frees the whole chain, leaf first */
    for (int i = 0; i < 8; i++)
        TCHECK_EQ(atomic_load(&vf_order[i]), 8 - i);

    /* creation fails: value_free is not called */
    atomic_store(&vf_calls, 0);
    TCHECK(csp_ctx_with_value(NULL, &key_a, &payload, vf_count) == NULL);
    TCHECK_EQ(atomic_load(&vf_calls), 0);
}

static void values_main(void *arg)
{
    (void)arg;
    value_checks();
}

/* the last release from another task frees it there */
static void vf_other_task(void *arg)
{
    csp_ctx_t *c = arg;
    csp_sleep(MS);
    csp_ctx_release(c);
}

static void values_cross_main(void *arg)
{
    (void)arg;
    static int payload;
    for (int round = 0; round < 50; round++) {
        atomic_store(&vf_calls, 0);
        csp_ctx_t *v = csp_ctx_with_value(csp_ctx_background(), &key_a, &payload, vf_count);
        csp_ctx_t *c = csp_ctx_with_cancel(v);
        csp_ctx_release(v);
        for (int i = 0; i < 4; i++)
            TCHECK_EQ(go_joined(vf_other_task, csp_ctx_retain(c)), 0);
        csp_ctx_release(c);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        TCHECK_EQ(atomic_load(&vf_calls), 1);
    }
}

static void test_ctx_values(void **state)
{
    (void)state;
    TC_RESET();
    value_checks();
    TC_ASSERT_CLEAN();
    RUN_ALL(values_main, 1);
    RUN_ALL(values_cross_main, 1);
}

/* ------------------------------------------------------------------------ */
/* out of memory (plain builds only: calloc is interposed, which sanitizer
 * builds must not do). Without a runtime nothing else allocates meanwhile. */

#if !CX_SANITIZER
extern void *__libc_calloc(size_t n, size_t size);
static atomic_int oom_fail_next;

void *calloc(size_t n, size_t size)
{
    if (atomic_load_explicit(&oom_fail_next, memory_order_relaxed) &&
        atomic_exchange_explicit(&oom_fail_next, 0, memory_order_relaxed)) {
        errno = ENOMEM;
        return NULL;
    }
    return __libc_calloc(n, size);
}

static void oom_fn(void *arg)
{
    atomic_fetch_add((atomic_int *)arg, 1);
}

static void test_ctx_out_of_memory(void **state)
{
    (void)state;
    static int payload;
    atomic_store(&vf_calls, 0);
    /* the parent's value_free counts: a failed child must not keep (or
     * drop) a reference on it */
    csp_ctx_t *p = csp_ctx_with_value(csp_ctx_background(), &key_a, &payload, vf_count);
    csp_ctx_t *pc = csp_ctx_with_cancel(p);
    assert_non_null(p);
    assert_non_null(pc);

    atomic_store(&oom_fail_next, 1);
    assert_null(csp_ctx_with_value(pc, &key_b, &payload, vf_count));
    assert_int_equal(atomic_load(&vf_calls), 0); /* not called on failure */
    atomic_store(&oom_fail_next, 1);
    assert_null(csp_ctx_with_cancel(pc));
    atomic_store(&oom_fail_next, 1);
    assert_null(csp_ctx_with_timeout(pc, CSP_SECOND));
    atomic_store(&oom_fail_next, 1);
    assert_null(csp_ctx_with_deadline(pc, 0));
    atomic_store(&oom_fail_next, 1);
    assert_null(csp_ctx_without_cancel(pc));
    atomic_int runs = 0;
    atomic_store(&oom_fail_next, 1);
    assert_null(csp_ctx_after_func(pc, oom_fn, &runs));
    assert_int_equal(atomic_load(&oom_fail_next), 0); /* each really hit calloc */

    /* the tree is intact: a cancel still reaches a child made afterwards */
    csp_ctx_t *k = csp_ctx_with_cancel(pc);
    assert_non_null(k);
    csp_ctx_func_t *f = csp_ctx_after_func(k, oom_fn, &runs);
    assert_non_null(f);
    csp_ctx_cancel(pc);
    assert_int_equal(csp_ctx_err(k), CSP_ECANCELED);
    assert_int_equal(atomic_load(&runs), 1); /* no runtime: ran on this thread */
    csp_ctx_func_release(f);
    csp_ctx_release(k);
    csp_ctx_release(pc);
    assert_int_equal(atomic_load(&vf_calls), 0);
    csp_ctx_release(p);
    assert_int_equal(atomic_load(&vf_calls), 1); /* exactly once: no reference leaked */
}
#endif

/* ------------------------------------------------------------------------ */
/* without_cancel                                                            */

static void without_checks(void)
{
    csp_ctx_t *bg = csp_ctx_background();
    csp_ctx_t *p = csp_ctx_with_timeout(bg, 3600 * CSP_SECOND);
    csp_ctx_t *pv = csp_ctx_with_value(p, &key_a, (void *)"pa", NULL);
    csp_ctx_t *w = csp_ctx_without_cancel(pv);
    TCHECK(w != NULL);
    TCHECK(csp_ctx_value(w, &key_a) == (void *)"pa");
    TCHECK(csp_ctx_done(w) == NULL);
    csp_time_t dl = 0;
    TCHECK_EQ(csp_ctx_deadline(w, &dl), 0);
    TCHECK_EQ(dl, CSP_FOREVER);
    /* descendants: value children share w's (absent) cancellation, cancel
     * children are independent of p */
    csp_ctx_t *wv = csp_ctx_with_value(w, &key_b, (void *)"wb", NULL);
    csp_ctx_t *wc = csp_ctx_with_cancel(w);
    csp_ctx_t *wd = csp_ctx_with_timeout(wv, 3600 * CSP_SECOND);
    TCHECK(csp_ctx_done(wv) == NULL);
    TCHECK(csp_ctx_done(wc) != NULL);
    csp_ctx_cancel_cause(p, -17);
    TCHECK_EQ(csp_ctx_err(pv), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_err(w), 0);
    TCHECK_EQ(csp_ctx_cause(w), 0);
    TCHECK(csp_ctx_done(w) == NULL); /* even with the parent cancelled */
    TCHECK_EQ(csp_ctx_err(wv), 0);
    TCHECK_EQ(csp_ctx_err(wc), 0);
    TCHECK_EQ(done_state(wc), 0);
    TCHECK_EQ(csp_ctx_err(wd), 0);
    TCHECK(csp_ctx_value(wd, &key_a) == (void *)"pa");
    TCHECK(csp_ctx_value(wd, &key_b) == (void *)"wb");
    /* its own cancellable children still cancel */
    csp_ctx_cancel(wc);
    TCHECK_EQ(csp_ctx_err(wc), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_err(w), 0);
    /* created under an already-cancelled parent: still never done */
    csp_ctx_t *w2 = csp_ctx_without_cancel(p);
    TCHECK_EQ(csp_ctx_err(w2), 0);
    TCHECK(csp_ctx_done(w2) == NULL);
    csp_ctx_t *w2c = csp_ctx_with_cancel(w2);
    TCHECK_EQ(csp_ctx_err(w2c), 0);
    csp_ctx_release(w2c);
    csp_ctx_release(w2);
    csp_ctx_release(wd);
    csp_ctx_release(wc);
    csp_ctx_release(wv);
    csp_ctx_release(w);
    csp_ctx_release(pv);
    csp_ctx_release(p);
}

static void without_main(void *arg)
{
    (void)arg;
    without_checks();
}

static void test_ctx_without_cancel(void **state)
{
    (void)state;
    TC_RESET();
    without_checks();
    TC_ASSERT_CLEAN();
    RUN_ALL(without_main, 1);
}

/* ------------------------------------------------------------------------ */
/* a released child detaches from its parent: a long-lived parent with      */
/* 100,000 short-lived children does not grow                                */

#define DT_N TC_SCALE(100000)

static void detach_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    csp_ctx_t *parent = csp_ctx_with_cancel(bg);
    csp_ctx_t *pval = csp_ctx_with_value(parent, &key_a, NULL, NULL);
    for (int i = 0; i < 2000; i++) /* warm-up */
        csp_ctx_release(csp_ctx_with_cancel(parent));
    size_t m0 = heap_in_use();
    for (int i = 0; i < DT_N; i++) {
        csp_ctx_t *c;
        switch (i % 4) {
        case 0: c = csp_ctx_with_cancel(parent); break;
        case 1: c = csp_ctx_with_cancel(pval); break; /* linked on parent through the value */
        case 2: c = csp_ctx_with_timeout(parent, 3600 * CSP_SECOND); break;
        default: {
            /* a grandchild released before its parent */
            csp_ctx_t *mid = csp_ctx_with_cancel(parent);
            c = csp_ctx_with_cancel(mid);
            csp_ctx_release(mid);
            break;
        }
        }
        TCHECK(c != NULL);
        if (i % 8 == 0)
            (void)csp_ctx_done(c); /* with a done channel too */
        csp_ctx_release(c);
        if ((i & 1023) == 0)
            csp_yield();
    }
    size_t m1 = heap_in_use();
    long grew = (long)m1 - (long)m0;
    if (grew > HEAP_SLACK(DT_N))
        tc_fail(__FILE__, __LINE__, "heap grew by %ld bytes over %d released children", grew,
                DT_N);
    /* the parent still works, and its cancel touches none of the freed
     * children (ASan would see it) */
    csp_ctx_t *last = csp_ctx_with_cancel(pval);
    csp_ctx_cancel(parent);
    TCHECK_EQ(csp_ctx_err(last), CSP_ECANCELED);
    csp_ctx_release(last);
    csp_ctx_release(pval);
    csp_ctx_release(parent);
}

static void test_ctx_detach_released_children(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++)
        J_RUN(detach_main, NULL, cx_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* trees of 10,000 nodes                                                     */

enum { K_CANCEL, K_VALUE, K_DEADLINE, K_WITHOUT, K_NKINDS };
#define TREE_N 10000

typedef struct {
    csp_ctx_t *ctx;
    int parent; /* -1: background */
    int kind;
} tnode_t;

static tnode_t tree[TREE_N];
static uint64_t tree_rng;

static uint32_t trand(void)
{
    tree_rng ^= tree_rng << 13;
    tree_rng ^= tree_rng >> 7;
    tree_rng ^= tree_rng << 17;
    return (uint32_t)(tree_rng >> 11);
}

static void tree_build(int n, int chain)
{
    for (int i = 0; i < n; i++) {
        int par;
        if (i == 0)
            par = -1;
        else if (chain)
            par = i - 1;
        else if (trand() % 2)
            par = (int)(trand() % (uint32_t)i);               /* bushy */
        else
            par = i - 1 - (int)(trand() % (uint32_t)(i < 50 ? i : 50)); /* deep */
        int kind;
        if (i == 0)
            kind = K_CANCEL;
        else if (chain)
            kind = i % 3 == 0 ? K_VALUE : i % 3 == 1 ? K_CANCEL : K_DEADLINE;
        else {
            uint32_t r = trand() % 100;
            kind = r < 45 ? K_CANCEL : r < 75 ? K_VALUE : r < 97 ? K_DEADLINE : K_WITHOUT;
        }
        csp_ctx_t *pc = par < 0 ? csp_ctx_background() : tree[par].ctx;
        csp_ctx_t *c;
        switch (kind) {
        case K_CANCEL: c = csp_ctx_with_cancel(pc); break;
        case K_VALUE: c = csp_ctx_with_value(pc, &tree[i], &tree[i], NULL); break;
        case K_DEADLINE: c = csp_ctx_with_timeout(pc, 3600 * CSP_SECOND); break;
        default: c = csp_ctx_without_cancel(pc); break;
        }
        TCHECK(c != NULL);
        tree[i].ctx = c;
        tree[i].parent = par;
        tree[i].kind = kind;
    }
}

/* tree_exp[i]: should node i be done after node m was cancelled? Parents
 * come before their children, so one forward pass computes it: the
 * cancelled node is done, a without_cancel node never is, any other node is
 * done iff its parent is. */
static unsigned char tree_exp[TREE_N];

static int tree_expect(int n, int m)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (i == m)
            tree_exp[i] = 1;
        else if (tree[i].kind == K_WITHOUT || tree[i].parent < 0)
            tree_exp[i] = 0;
        else
            tree_exp[i] = tree_exp[tree[i].parent];
        k += tree_exp[i];
    }
    return k;
}

/* Checks every node against tree_exp (tree_expect(n, m) first); returns
 * the number done. */
static int tree_check(int n, int m, int cause)
{
    int ndone = 0, bad = 0;
    for (int i = 0; i < n; i++) {
        int exp = tree_exp[i];
        int err = csp_ctx_err(tree[i].ctx);
        int ds = done_state(tree[i].ctx);
        int ok;
        if (exp)
            ok = err == CSP_ECANCELED && csp_ctx_cause(tree[i].ctx) == cause && ds == 1;
        else
            ok = err == 0 && csp_ctx_cause(tree[i].ctx) == 0 && ds != 1;
        if (!ok && bad++ == 0)
            tc_fail(__FILE__, __LINE__,
                    "node %d (kind %d, parent %d): expected %s, err %d done %d (cancelled %d)", i,
                    tree[i].kind, tree[i].parent, exp ? "done" : "not done", err, ds, m);
        ndone += err != 0;
    }
    return ndone;
}

static void tree_release(int n)
{
    /* random order: a child may outlive its parent's owner */
    int *perm = malloc((size_t)n * sizeof *perm);
    TCHECK(perm != NULL);
    if (!perm)
        return;
    for (int i = 0; i < n; i++)
        perm[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(trand() % (uint32_t)(i + 1));
        int t = perm[i];
        perm[i] = perm[j];
        perm[j] = t;
    }
    for (int i = 0; i < n; i++)
        csp_ctx_release(tree[perm[i]].ctx);
    free(perm);
}

/* the cancel point: a non-root cancellable node with a big subtree */
static int tree_pick_middle(int n)
{
    int *size = calloc((size_t)n, sizeof *size);
    TCHECK(size != NULL);
    if (!size)
        return 0;
    for (int i = n - 1; i >= 0; i--) {
        size[i] += 1;
        if (tree[i].parent >= 0)
            size[tree[i].parent] += size[i];
    }
    int best = -1;
    for (int i = 1; i < n; i++) {
        if (tree[i].kind != K_CANCEL && tree[i].kind != K_DEADLINE)
            continue;
        if (size[i] >= n / 8 && size[i] <= n / 2 && (best < 0 || size[i] > size[best]))
            best = i;
    }
    if (best < 0) /* fall back: the largest proper cancellable subtree */
        for (int i = 1; i < n; i++)
            if ((tree[i].kind == K_CANCEL || tree[i].kind == K_DEADLINE) &&
                (best < 0 || size[i] > size[best]))
                best = i;
    free(size);
    return best;
}

static void tree_main(void *arg)
{
    int variant = (int)(intptr_t)arg;
    for (int chain = 0; chain < 2; chain++) {
        /* cancelled from the root: all done (except under without_cancel) */
        tree_build(TREE_N, chain);
        tree_expect(TREE_N, -1);
        TCHECK_EQ(tree_check(TREE_N, -1, 0), 0);
        csp_ctx_cancel_cause(tree[0].ctx, -100 - variant);
        int ne = tree_expect(TREE_N, 0);
        int nd = tree_check(TREE_N, 0, -100 - variant);
        TCHECK_EQ(nd, ne);
        if (chain)
            TCHECK_EQ(nd, TREE_N);
        else
            TCHECK(nd > TREE_N / 10); /* the shape is not degenerate */
        tree_release(TREE_N);

        /* cancelled from the middle: exactly the subtree */
        tree_build(TREE_N, chain);
        int m = chain ? TREE_N / 2 + 2 : tree_pick_middle(TREE_N); /* 5002 % 3 == 1: cancel */
        TCHECK(tree[m].kind == K_CANCEL || tree[m].kind == K_DEADLINE);
        csp_ctx_cancel_cause(tree[m].ctx, -200);
        ne = tree_expect(TREE_N, m);
        nd = tree_check(TREE_N, m, -200);
        TCHECK_EQ(nd, ne);
        TCHECK(nd > 1 && nd < TREE_N);
        if (chain)
            TCHECK_EQ(nd, TREE_N - m);
        /* then the root: the rest, the subtree keeps its cause */
        csp_ctx_cancel_cause(tree[0].ctx, -300);
        unsigned char *in_m = malloc(TREE_N);
        TCHECK(in_m != NULL);
        if (in_m) {
            memcpy(in_m, tree_exp, TREE_N);
            tree_expect(TREE_N, 0);
            for (int i = 0; i < TREE_N; i++) {
                int want = in_m[i] ? -200 : tree_exp[i] ? -300 : 0;
                if (csp_ctx_cause(tree[i].ctx) != want) {
                    TCHECK_EQ(csp_ctx_cause(tree[i].ctx), want);
                    break;
                }
            }
            free(in_m);
        }
        tree_release(TREE_N);
    }
}

static void test_ctx_tree(void **state)
{
    (void)state;
    tree_rng = 0x9E3779B97F4A7C15ull;
    int reps = CX_SANITIZER ? 1 : 2;
    for (int w = 0; w < CX_NW; w++)
        for (int r = 0; r < reps; r++)
            J_RUN(tree_main, (void *)(intptr_t)(w * 10 + r), cx_workers[w],
                  CSP_SPAWN_HELP_FIRST);
    /* no runtime too (deadline nodes then have no timer, which is fine for
     * deadlines an hour away) */
    TC_RESET();
    tree_main((void *)(intptr_t)99);
    TC_ASSERT_CLEAN();
}

/* a tree cancelled while tasks wait on nodes of it whose owners (all but
 * the root's) released them */
enum { TW_NODES = 2000, TW_WAITERS = 64 };
static atomic_int tw_woken;

static void tw_waiter(void *arg)
{
    csp_ctx_t *c = arg; /* retained for us */
    TCHECK_EQ(csp_ctx_wait(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_cause(c), -400);
    atomic_fetch_add(&tw_woken, 1);
    csp_ctx_release(c);
}

static void tree_wait_main(void *arg)
{
    (void)arg;
    tree_build(TW_NODES, 0);
    tree_expect(TW_NODES, 0);
    atomic_store(&tw_woken, 0);
    int nw = 0;
    for (int i = 1; i < TW_NODES && nw < TW_WAITERS; i += 7) {
        if (!tree_exp[i])
            continue; /* under without_cancel: would wait forever */
        TCHECK_EQ(go_joined(tw_waiter, csp_ctx_retain(tree[i].ctx)), 0);
        nw++;
    }
    TCHECK(nw > TW_WAITERS / 2);
    csp_sleep(2 * MS);
    TCHECK_EQ(atomic_load(&tw_woken), 0);
    csp_ctx_t *root = csp_ctx_retain(tree[0].ctx);
    tree_release(TW_NODES); /* the waiters and we hold ours */
    csp_sleep(MS);
    TCHECK_EQ(atomic_load(&tw_woken), 0);
    csp_ctx_cancel_cause(root, -400);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(atomic_load(&tw_woken), nw);
    csp_ctx_release(root);
}

static void test_ctx_tree_waiters(void **state)
{
    (void)state;
    tree_rng = 0x1234567887654321ull;
    RUN_ALL(tree_wait_main, 2);
}

/* ------------------------------------------------------------------------ */
/* csp_ctx_after_func                                                        */

typedef struct {
    atomic_int      runs;
    _Atomic uint64_t tid;
    atomic_int      err_at_run;
    csp_ctx_t      *ctx;
    csp_wg_t        wg;
} af_rec_t;

static void af_fn(void *arg)
{
    af_rec_t *r = arg;
    atomic_store(&r->tid, csp_task_id());
    atomic_store(&r->err_at_run, r->ctx ? csp_ctx_err(r->ctx) : 0);
    atomic_fetch_add(&r->runs, 1);
    csp_wg_done(&r->wg);
}

static void af_rec_init(af_rec_t *r, csp_ctx_t *ctx)
{
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    csp_wg_add(&r->wg, 1);
}

static void af_canceller(void *arg)
{
    csp_ctx_cancel((csp_ctx_t *)arg);
}

static void after_func_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    uint64_t me = csp_task_id();
    af_rec_t r;

    /* runs once, in a new task, after cancel */
    csp_ctx_t *c = csp_ctx_with_cancel(bg);
    af_rec_init(&r, c);
    csp_ctx_func_t *f = csp_ctx_after_func(c, af_fn, &r);
    TCHECK(f != NULL);
    csp_sleep(2 * MS);
    TCHECK_EQ(atomic_load(&r.runs), 0);
    csp_ctx_cancel(c);
    TCHECK_EQ(csp_wg_wait(&r.wg), 0);
    TCHECK_EQ(atomic_load(&r.runs), 1);
    TCHECK(atomic_load(&r.tid) != 0);
    TCHECK(atomic_load(&r.tid) != me);
    TCHECK_EQ(atomic_load(&r.err_at_run), CSP_ECANCELED);
    csp_ctx_cancel(c); /* again: nothing */
    csp_sleep(2 * MS);
    TCHECK_EQ(atomic_load(&r.runs), 1);
    TCHECK_EQ(csp_ctx_func_stop(f), 0); /* after it ran */
    TCHECK_EQ(csp_ctx_func_stop(f), 0);
    csp_ctx_func_release(f);
    csp_ctx_release(c);

    /* cancelled by another task: runs in a task that is neither */
    c = csp_ctx_with_cancel(bg);
    af_rec_init(&r, c);
    f = csp_ctx_after_func(c, af_fn, &r);
    TCHECK_EQ(go_joined(af_canceller, c), 0);
    TCHECK_EQ(csp_wg_wait(&r.wg), 0);
    TCHECK_EQ(atomic_load(&r.runs), 1);
    TCHECK(atomic_load(&r.tid) != me && atomic_load(&r.tid) != 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    csp_ctx_func_release(f);
    csp_ctx_release(c);

    /* via a parent, a value context and a deadline */
    csp_time_t t0 = csp_now();
    csp_ctx_t *p = csp_ctx_with_timeout(bg, 5 * MS);
    csp_ctx_t *v = csp_ctx_with_value(p, &key_a, NULL, NULL);
    af_rec_init(&r, v);
    f = csp_ctx_after_func(v, af_fn, &r);
    TCHECK_EQ(csp_wg_wait(&r.wg), 0);
    TCHECK(csp_now() - t0 >= 5 * MS);
    TCHECK_EQ(atomic_load(&r.err_at_run), CSP_EDEADLINE);
    csp_ctx_func_release(f);
    csp_ctx_release(v);
    csp_ctx_release(p);

    /* stop before cancel: 1, and it never runs */
    c = csp_ctx_with_cancel(bg);
    af_rec_init(&r, c);
    f = csp_ctx_after_func(c, af_fn, &r);
    TCHECK_EQ(csp_ctx_func_stop(f), 1);
    TCHECK_EQ(csp_ctx_func_stop(f), 0); /* already stopped */
    csp_ctx_cancel(c);
    csp_sleep(3 * MS);
    TCHECK_EQ(atomic_load(&r.runs), 0);
    csp_ctx_func_release(f);
    csp_ctx_release(c);

    /* registered on an already-done context: runs at once, in a new task */
    c = csp_ctx_with_cancel(bg);
    csp_ctx_cancel(c);
    af_rec_init(&r, c);
    f = csp_ctx_after_func(c, af_fn, &r);
    TCHECK(f != NULL);
    TCHECK_EQ(csp_wg_wait(&r.wg), 0);
    TCHECK_EQ(atomic_load(&r.runs), 1);
    TCHECK(atomic_load(&r.tid) != me && atomic_load(&r.tid) != 0);
    TCHECK_EQ(csp_ctx_func_stop(f), 0);
    csp_ctx_func_release(f);
    csp_ctx_release(c);

    /* the handle released before the cancel: still runs (the runtime holds
     * its own reference) */
    c = csp_ctx_with_cancel(bg);
    af_rec_init(&r, c);
    csp_ctx_func_release(csp_ctx_after_func(c, af_fn, &r));
    csp_ctx_cancel(c);
    TCHECK_EQ(csp_wg_wait(&r.wg), 0);
    TCHECK_EQ(atomic_load(&r.runs), 1);
    csp_ctx_release(c);

    /* the context released before the cancel: still cancellable through a
     * parent, the function still runs */
    p = csp_ctx_with_cancel(bg);
    c = csp_ctx_with_cancel(p);
    af_rec_init(&r, NULL);
    f = csp_ctx_after_func(c, af_fn, &r);
    csp_ctx_release(c);
    csp_ctx_cancel(p);
    TCHECK_EQ(csp_wg_wait(&r.wg), 0);
    TCHECK_EQ(atomic_load(&r.runs), 1);
    csp_ctx_func_release(f);
    csp_ctx_release(p);

    /* many functions on one context: each runs once */
    enum { MANY = 100 };
    static af_rec_t many[MANY];
    csp_ctx_func_t *fs[MANY];
    c = csp_ctx_with_cancel(bg);
    csp_ctx_t *cv = csp_ctx_with_value(c, &key_a, NULL, NULL);
    for (int i = 0; i < MANY; i++) {
        af_rec_init(&many[i], c);
        fs[i] = csp_ctx_after_func(i & 1 ? cv : c, af_fn, &many[i]);
    }
    /* stop every third one */
    int stopped = 0;
    for (int i = 0; i < MANY; i += 3) {
        TCHECK_EQ(csp_ctx_func_stop(fs[i]), 1);
        csp_wg_done(&many[i].wg);
        stopped++;
    }
    csp_ctx_cancel(c);
    for (int i = 0; i < MANY; i++)
        TCHECK_EQ(csp_wg_wait(&many[i].wg), 0);
    csp_sleep(2 * MS);
    for (int i = 0; i < MANY; i++) {
        TCHECK_EQ(atomic_load(&many[i].runs), i % 3 == 0 ? 0 : 1);
        TCHECK_EQ(csp_ctx_func_stop(fs[i]), 0);
        csp_ctx_func_release(fs[i]);
    }
    (void)stopped;
    csp_ctx_release(cv);
    csp_ctx_release(c);
    settle_deadlines();
}

static void test_ctx_after_func(void **state)
{
    (void)state;
    RUN_ALL(after_func_main, 2);
}

/* never-cancellable contexts: the function never runs, stop returns 1 (Go:
 * stop reports that it stopped f from being run) */
static void after_func_never_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    csp_ctx_t *w = csp_ctx_without_cancel(bg);
    csp_ctx_t *bv = csp_ctx_with_value(bg, &key_a, NULL, NULL);
    csp_ctx_t *ctxs[4] = { bg, csp_ctx_todo(), w, bv };
    af_rec_t r[4];
    csp_ctx_func_t *f[4];
    for (int i = 0; i < 4; i++) {
        af_rec_init(&r[i], NULL);
        f[i] = csp_ctx_after_func(ctxs[i], af_fn, &r[i]);
        TCHECK(f[i] != NULL);
    }
    csp_sleep(3 * MS);
    for (int i = 0; i < 4; i++) {
        TCHECK_EQ(atomic_load(&r[i].runs), 0);
        TCHECK_EQ(csp_ctx_func_stop(f[i]), 1);
        TCHECK_EQ(csp_ctx_func_stop(f[i]), 0);
        csp_ctx_func_release(f[i]);
    }
    csp_ctx_release(bv);
    csp_ctx_release(w);
}

static void test_ctx_after_func_never_cancelled(void **state)
{
    (void)state;
    RUN_ALL(after_func_never_main, 1);
}

/* stop racing the cancel: exactly one of them wins */
#define AR_ROUNDS TC_SCALE(400)
static af_rec_t ar_rec[64];

static void ar_cancel_task(void *arg)
{
    csp_ctx_t *c = arg;
    for (int i = (int)(csp_task_id() % 7); i > 0; i--)
        csp_yield();
    csp_ctx_cancel(c);
    csp_ctx_release(c);
}

static void after_func_race_main(void *arg)
{
    (void)arg;
    int stops = 0, total = 0;
    for (int round = 0; round < AR_ROUNDS; round += 64) {
        csp_ctx_func_t *fs[64];
        int got[64];
        for (int k = 0; k < 64; k++) {
            csp_ctx_t *c = csp_ctx_with_cancel(csp_ctx_background());
            af_rec_init(&ar_rec[k], NULL);
            fs[k] = csp_ctx_after_func(c, af_fn, &ar_rec[k]);
            TCHECK_EQ(go_joined(ar_cancel_task, c), 0); /* it owns c */
            if (k & 1)
                csp_yield();
            got[k] = csp_ctx_func_stop(fs[k]);
            if (got[k])
                csp_wg_done(&ar_rec[k].wg); /* it will never run */
        }
        for (int k = 0; k < 64; k++) {
            TCHECK_EQ(csp_wg_wait(&ar_rec[k].wg), 0);
            stops += got[k];
            total++;
        }
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        csp_sleep(MS / 2);
        for (int k = 0; k < 64; k++) {
            TCHECK_EQ(atomic_load(&ar_rec[k].runs) + got[k], 1);
            csp_ctx_func_release(fs[k]);
        }
    }
    TCHECK(total > 0);
    (void)stops;
}

static void test_ctx_after_func_stop_race(void **state)
{
    (void)state;
    RUN_ALL(after_func_race_main, 1);
}

/* no runtime: fn runs on the cancelling thread */
static void test_ctx_after_func_no_runtime(void **state)
{
    (void)state;
    TC_RESET();
    af_rec_t r;
    csp_ctx_t *c = csp_ctx_with_cancel(csp_ctx_background());
    af_rec_init(&r, c);
    csp_ctx_func_t *f = csp_ctx_after_func(c, af_fn, &r);
    assert_non_null(f);
    assert_int_equal(atomic_load(&r.runs), 0);
    csp_ctx_cancel(c);
    assert_int_equal(atomic_load(&r.runs), 1); /* before cancel returned */
    assert_int_equal((int)atomic_load(&r.tid), 0); /* this plain thread */
    assert_int_equal(atomic_load(&r.err_at_run), CSP_ECANCELED);
    assert_int_equal(csp_ctx_func_stop(f), 0);
    csp_ctx_func_release(f);
    /* already done: at once, here */
    af_rec_init(&r, c);
    f = csp_ctx_after_func(c, af_fn, &r);
    assert_int_equal(atomic_load(&r.runs), 1);
    csp_ctx_func_release(f);
    /* stopped: never */
    csp_ctx_t *c2 = csp_ctx_with_cancel(csp_ctx_background());
    af_rec_init(&r, c2);
    f = csp_ctx_after_func(c2, af_fn, &r);
    assert_int_equal(csp_ctx_func_stop(f), 1);
    csp_ctx_cancel(c2);
    assert_int_equal(atomic_load(&r.runs), 0);
    csp_ctx_func_release(f);
    csp_ctx_release(c2);
    csp_ctx_release(c);
    TC_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------------ */
/* csp_ctx_wait                                                              */

static atomic_int cw_woken;

static void cw_waiter(void *arg)
{
    csp_ctx_t *c = arg;
    TCHECK_EQ(csp_ctx_wait(c), CSP_ECANCELED);
    TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
    atomic_fetch_add(&cw_woken, 1);
    csp_ctx_release(c);
}

static void ctx_wait_main(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();
    TCHECK_EQ(csp_ctx_wait(NULL), CSP_EINVAL);
    /* many waiters on one context, through children and value contexts */
    atomic_store(&cw_woken, 0);
    csp_ctx_t *p = csp_ctx_with_cancel(bg);
    csp_ctx_t *v = csp_ctx_with_value(p, &key_a, NULL, NULL);
    csp_ctx_t *c = csp_ctx_with_cancel(v);
    enum { NWAIT = 30 };
    for (int i = 0; i < NWAIT; i++) {
        csp_ctx_t *t = i % 3 == 0 ? p : i % 3 == 1 ? v : c;
        TCHECK_EQ(go_joined(cw_waiter, csp_ctx_retain(t)), 0);
    }
    csp_sleep(3 * MS);
    TCHECK_EQ(atomic_load(&cw_woken), 0);
    csp_ctx_cancel(p);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(atomic_load(&cw_woken), NWAIT);
    /* already done: at once */
    TCHECK_EQ(csp_ctx_wait(c), CSP_ECANCELED);
    csp_ctx_release(c);
    csp_ctx_release(v);
    csp_ctx_release(p);
    /* a deadline: EDEADLINE, not early */
    csp_time_t t0 = csp_now();
    c = csp_ctx_with_timeout(bg, 4 * MS);
    TCHECK_EQ(csp_ctx_wait(c), CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 4 * MS);
    csp_ctx_release(c);
    settle_deadlines();
}

static void test_ctx_wait(void **state)
{
    (void)state;
    RUN_ALL(ctx_wait_main, 2);
}

/* csp_ctx_wait on a never-cancellable context returns at shutdown */
static void *nc_wait_thread(void *arg)
{
    TCHECK_EQ(csp_ctx_wait((csp_ctx_t *)arg), CSP_ESHUTDOWN);
    return NULL;
}

static void test_ctx_wait_shutdown(void **state)
{
    (void)state;
    csp_config_t cfg = { .workers = 2 };
    TC_RESET();
    assert_int_equal(csp_init(&cfg), 0);
    csp_ctx_t *w = csp_ctx_without_cancel(csp_ctx_background());
    pthread_t th[2];
    assert_int_equal(pthread_create(&th[0], NULL, nc_wait_thread, csp_ctx_background()), 0);
    assert_int_equal(pthread_create(&th[1], NULL, nc_wait_thread, w), 0);
    csp_sleep(5 * MS);
    csp_shutdown();
    pthread_join(th[0], NULL);
    pthread_join(th[1], NULL);
    csp_ctx_release(w);
    TC_ASSERT_CLEAN();
}

/* ------------------------------------------------------------------------ */
/* plain threads: cancel from them, wait on them                             */

enum { PT_THREADS = 4, PT_TASKS = 8 };
static csp_ctx_t *pt_ctx;
static atomic_int pt_woken;
static atomic_int pt_go;

static void *pt_wait_thread(void *arg)
{
    intptr_t i = (intptr_t)arg;
    csp_ctx_t *c = csp_ctx_retain(pt_ctx);
    if (i & 1) {
        TCHECK_EQ(csp_ctx_wait(c), CSP_ECANCELED);
    } else {
        TCHECK_EQ(csp_chan_recv(csp_ctx_done(c), NULL), CSP_ECLOSED);
    }
    TCHECK_EQ(csp_ctx_cause(c), -808);
    atomic_fetch_add(&pt_woken, 1);
    csp_ctx_release(c);
    return NULL;
}

static void *pt_cancel_thread(void *arg)
{
    (void)arg;
    while (!atomic_load(&pt_go))
        sched_yield();
    csp_ctx_cancel_cause(pt_ctx, -808);
    return NULL;
}

static void pt_wait_task(void *arg)
{
    (void)pt_wait_thread(arg);
}

static void run_plain_threads(int with_runtime, int nworkers)
{
    TC_RESET();
    if (with_runtime) {
        csp_config_t cfg = { .workers = nworkers };
        assert_int_equal(csp_init(&cfg), 0);
    }
    csp_ctx_t *root = csp_ctx_with_cancel(csp_ctx_background());
    pt_ctx = csp_ctx_with_cancel(root); /* waiters on a child, cancel on... the child */
    atomic_store(&pt_woken, 0);
    atomic_store(&pt_go, 0);
    pthread_t w[PT_THREADS], cth;
    for (intptr_t i = 0; i < PT_THREADS; i++)
        assert_int_equal(pthread_create(&w[i], NULL, pt_wait_thread, (void *)i), 0);
    int ntasks = 0;
    if (with_runtime)
        for (intptr_t i = 0; i < PT_TASKS; i++, ntasks++)
            assert_int_equal(go_joined(pt_wait_task, (void *)i), 0);
    assert_int_equal(pthread_create(&cth, NULL, pt_cancel_thread, NULL), 0);
    csp_sleep(5 * MS);
    assert_int_equal(atomic_load(&pt_woken), 0);
    atomic_store(&pt_go, 1);
    pthread_join(cth, NULL);
    for (int i = 0; i < PT_THREADS; i++)
        pthread_join(w[i], NULL);
    if (with_runtime) {
        assert_int_equal(csp_wg_wait(&join_wg), 0);
        csp_shutdown();
    }
    assert_int_equal(atomic_load(&pt_woken), PT_THREADS + ntasks);
    assert_int_equal(csp_ctx_err(root), 0); /* the cancel never went up */
    csp_ctx_release(pt_ctx);
    csp_ctx_release(root);
    TC_ASSERT_CLEAN();
}

static void test_ctx_plain_threads(void **state)
{
    (void)state;
    for (int rep = 0; rep < 3; rep++) {
        run_plain_threads(0, 0);
        for (int w = 0; w < CX_NW; w++)
            run_plain_threads(1, cx_workers[w]);
    }
}

/* a deadline context made on a plain thread while the runtime runs fires */
static void *pt_deadline_thread(void *arg)
{
    (void)arg;
    csp_time_t t0 = csp_now();
    csp_ctx_t *c = csp_ctx_with_timeout(csp_ctx_background(), 5 * MS);
    TCHECK_EQ(csp_ctx_wait(c), CSP_EDEADLINE);
    TCHECK(csp_now() - t0 >= 5 * MS);
    csp_ctx_release(c);
    return NULL;
}

static void test_ctx_plain_thread_deadline(void **state)
{
    (void)state;
    for (int w = 0; w < CX_NW; w++) {
        csp_config_t cfg = { .workers = cx_workers[w] };
        TC_RESET();
        assert_int_equal(csp_init(&cfg), 0);
        pthread_t th[3];
        for (int i = 0; i < 3; i++)
            assert_int_equal(pthread_create(&th[i], NULL, pt_deadline_thread, NULL), 0);
        for (int i = 0; i < 3; i++)
            pthread_join(th[i], NULL);
        /* the deadline tasks finish before the runtime goes */
        csp_sleep(20 * MS);
        csp_shutdown();
        TC_ASSERT_CLEAN();
    }
}

/* ------------------------------------------------------------------------ */
/* stress: many tasks create/release children of a shared parent while      */
/* another task cancels it                                                   */

#define ST_ROUNDS (CX_SANITIZER ? 15 : 100)
enum { ST_TASKS = 12, ST_ITERS = 300 };
static csp_ctx_t *st_root, *st_parent; /* st_parent: a value child of st_root */
static atomic_int st_cancelled; /* set after the cancel returned */
static atomic_int st_waits;

static void st_worker(void *arg)
{
    uintptr_t seed = (uintptr_t)arg * 2654435761u + 1;
    for (int i = 0; i < ST_ITERS; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        int after = atomic_load(&st_cancelled);
        csp_ctx_t *c;
        switch ((seed >> 33) % 5) {
        case 0: c = csp_ctx_with_cancel(st_parent); break;
        case 1: c = csp_ctx_with_timeout(st_parent, 3600 * CSP_SECOND); break;
        case 2: c = csp_ctx_with_value(st_parent, &key_a, NULL, NULL); break;
        case 3: {
            csp_ctx_t *m = csp_ctx_with_value(st_parent, &key_b, NULL, NULL);
            c = csp_ctx_with_cancel(m);
            csp_ctx_release(m);
            break;
        }
        default: c = csp_ctx_with_timeout(st_parent, (csp_duration_t)((seed >> 40) % 200) * 1000);
            break;
        }
        TCHECK(c != NULL);
        if (after) {
            /* made after the cancel returned: born done */
            TCHECK_EQ(csp_ctx_err(c), CSP_ECANCELED);
            TCHECK_EQ(csp_ctx_cause(c), -77);
        }
        int e = csp_ctx_err(c);
        if (e) {
            /* err is published after cause: a done context has its cause */
            int cause = csp_ctx_cause(c);
            TCHECK(cause == -77 || (e == CSP_EDEADLINE && cause == CSP_EDEADLINE));
        }
        if ((seed >> 20) % 16 == 0) {
            csp_chan_t *d = csp_ctx_done(c);
            if (d && csp_chan_try_recv(d, NULL) == CSP_ECLOSED)
                TCHECK(csp_ctx_err(c) != 0); /* closed after err was set */
        } else if ((seed >> 20) % 16 == 1) {
            csp_ctx_t *g = csp_ctx_with_cancel(c);
            if ((seed >> 24) & 1)
                csp_ctx_cancel(g);
            csp_ctx_release(g);
        } else if ((seed >> 20) % 64 == 2) {
            /* wait for it: the parent's cancel (or its own short deadline)
             * must come */
            int r = csp_ctx_wait(c);
            TCHECK(r == CSP_ECANCELED || r == CSP_EDEADLINE);
            atomic_fetch_add(&st_waits, 1);
        }
        if ((seed >> 28) % 8 == 0)
            csp_yield();
        csp_ctx_release(c);
    }
}

static void st_cancel_task(void *arg)
{
    (void)arg;
    for (int i = (int)(csp_task_id() % 50); i > 0; i--)
        csp_yield();
    csp_ctx_cancel_cause(st_root, -77);
    atomic_store(&st_cancelled, 1);
}

static void stress_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < ST_ROUNDS; round++) {
        csp_ctx_t *root = csp_ctx_with_cancel(csp_ctx_background());
        st_root = root;
        st_parent = csp_ctx_with_value(root, &key_c, NULL, NULL);
        atomic_store(&st_cancelled, 0);
        for (intptr_t i = 0; i < ST_TASKS; i++)
            TCHECK_EQ(go_joined(st_worker, (void *)(i + round * 100)), 0);
        TCHECK_EQ(go_joined(st_cancel_task, NULL), 0);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        TCHECK_EQ(csp_ctx_err(st_parent), CSP_ECANCELED);
        csp_ctx_release(st_parent);
        csp_ctx_release(root);
    }
    settle_deadlines();
}

static void test_ctx_stress(void **state)
{
    (void)state;
    for (int w = 0; w < CX_NW; w++)
        J_RUN(stress_main, NULL, cx_workers[w], CSP_SPAWN_HELP_FIRST);
    J_RUN(stress_main, NULL, 8, CSP_SPAWN_CHILD_FIRST);
}

/* ------------------------------------------------------------------------ */
/* racing cancels: one cause wins, and every descendant reports it           */

#define RC_ROUNDS (CX_SANITIZER ? 40 : 300)
static csp_ctx_t *rc_ctx;

static void rc_cancel_task(void *arg)
{
    int cause = (int)(intptr_t)arg;
    for (int i = (int)(csp_task_id() % 5); i > 0; i--)
        csp_yield();
    csp_ctx_cancel_cause(rc_ctx, cause);
}

static void race_cause_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < RC_ROUNDS; round++) {
        rc_ctx = csp_ctx_with_cancel(csp_ctx_background());
        csp_ctx_t *kids[6];
        kids[0] = csp_ctx_with_cancel(rc_ctx);
        kids[1] = csp_ctx_with_value(rc_ctx, &key_a, NULL, NULL);
        kids[2] = csp_ctx_with_cancel(kids[1]);
        kids[3] = csp_ctx_with_timeout(kids[2], 3600 * CSP_SECOND);
        kids[4] = csp_ctx_with_cancel(kids[3]);
        kids[5] = csp_ctx_with_cancel(kids[0]);
        for (intptr_t k = 1; k <= 4; k++)
            TCHECK_EQ(go_joined(rc_cancel_task, (void *)(-1000 - k)), 0);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        int cause = csp_ctx_cause(rc_ctx);
        TCHECK(cause <= -1001 && cause >= -1004);
        for (int k = 0; k < 6; k++) {
            TCHECK_EQ(csp_ctx_err(kids[k]), CSP_ECANCELED);
            TCHECK_EQ(csp_ctx_cause(kids[k]), cause);
        }
        for (int k = 5; k >= 0; k--)
            csp_ctx_release(kids[k]);
        csp_ctx_release(rc_ctx);
    }
}

static void test_ctx_racing_cancels(void **state)
{
    (void)state;
    RUN_ALL(race_cause_main, 1);
}

/* ------------------------------------------------------------------------ */
/* csp_ctx_done created by many tasks at once while another cancels          */

enum { DR_TASKS = 16 };
#define DR_ROUNDS (CX_SANITIZER ? 30 : 200)
static csp_ctx_t *dr_ctx;
static _Atomic(csp_chan_t *) dr_seen[DR_TASKS];

static void dr_task(void *arg)
{
    intptr_t i = (intptr_t)arg;
    csp_chan_t *d = csp_ctx_done(dr_ctx);
    TCHECK(d != NULL);
    atomic_store(&dr_seen[i], d);
    TCHECK_EQ(csp_chan_recv(d, NULL), CSP_ECLOSED);
    TCHECK_EQ(csp_ctx_err(dr_ctx), CSP_ECANCELED);
    TCHECK(csp_ctx_done(dr_ctx) == d);
}

static void dr_cancel(void *arg)
{
    (void)arg;
    for (int i = (int)(csp_task_id() % 9); i > 0; i--)
        csp_yield();
    csp_ctx_cancel(dr_ctx);
}

static void done_race_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < DR_ROUNDS; round++) {
        csp_ctx_t *p = csp_ctx_with_cancel(csp_ctx_background());
        dr_ctx = csp_ctx_with_cancel(p);
        for (intptr_t i = 0; i < DR_TASKS; i++) {
            atomic_store(&dr_seen[i], NULL);
            TCHECK_EQ(go_joined(dr_task, (void *)i), 0);
            if (i == DR_TASKS / 2)
                TCHECK_EQ(go_joined(dr_cancel, NULL), 0);
        }
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        for (int i = 1; i < DR_TASKS; i++)
            TCHECK(atomic_load(&dr_seen[i]) == atomic_load(&dr_seen[0]));
        TCHECK_EQ(csp_ctx_err(p), 0);
        csp_ctx_release(dr_ctx);
        csp_ctx_release(p);
    }
}

static void test_ctx_done_race(void **state)
{
    (void)state;
    RUN_ALL(done_race_main, 1);
}

/* ------------------------------------------------------------------------ */
/* after_func registered while another task cancels: each runs exactly once */

enum { AFR_TASKS = 8, AFR_EACH = 16 };
#define AFR_ROUNDS (CX_SANITIZER ? 10 : 60)
static csp_ctx_t *afr_ctx;
static af_rec_t afr_rec[AFR_TASKS][AFR_EACH];

static void afr_register(void *arg)
{
    intptr_t t = (intptr_t)arg;
    for (int k = 0; k < AFR_EACH; k++) {
        af_rec_init(&afr_rec[t][k], NULL);
        csp_ctx_t *on = k & 1 ? csp_ctx_with_value(afr_ctx, &key_b, NULL, NULL)
                              : csp_ctx_retain(afr_ctx);
        csp_ctx_func_release(csp_ctx_after_func(on, af_fn, &afr_rec[t][k]));
        csp_ctx_release(on);
        if (k % 4 == 0)
            csp_yield();
    }
}

static void afr_cancel(void *arg)
{
    (void)arg;
    for (int i = (int)(csp_task_id() % 13); i > 0; i--)
        csp_yield();
    csp_ctx_cancel(afr_ctx);
}

static void after_func_register_race_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < AFR_ROUNDS; round++) {
        afr_ctx = csp_ctx_with_cancel(csp_ctx_background());
        for (intptr_t t = 0; t < AFR_TASKS; t++) {
            TCHECK_EQ(go_joined(afr_register, (void *)t), 0);
            if (t == AFR_TASKS / 2)
                TCHECK_EQ(go_joined(afr_cancel, NULL), 0);
        }
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        for (int t = 0; t < AFR_TASKS; t++)
            for (int k = 0; k < AFR_EACH; k++)
                TCHECK_EQ(csp_wg_wait(&afr_rec[t][k].wg), 0);
        csp_sleep(MS / 2);
        for (int t = 0; t < AFR_TASKS; t++)
            for (int k = 0; k < AFR_EACH; k++)
                TCHECK_EQ(atomic_load(&afr_rec[t][k].runs), 1);
        csp_ctx_release(afr_ctx);
    }
}

static void test_ctx_after_func_register_race(void **state)
{
    (void)state;
    RUN_ALL(after_func_register_race_main, 1);
}

/* ------------------------------------------------------------------------ */
/* functions that cancel other contexts: chains of after_funcs               */

enum { NC_LEN = 20 };
static csp_ctx_t *nc_ctx[NC_LEN];
static atomic_int nc_runs[NC_LEN];
static csp_wg_t nc_wg;

static void nc_fn(void *arg)
{
    intptr_t i = (intptr_t)arg;
    atomic_fetch_add(&nc_runs[i], 1);
    if (i + 1 < NC_LEN)
        csp_ctx_cancel(nc_ctx[i + 1]); /* the next one's function runs from here */
    csp_wg_done(&nc_wg);
}

static void nested_chain(int runtime)
{
    csp_ctx_func_t *f[NC_LEN], *g[NC_LEN];
    memset(&nc_wg, 0, sizeof nc_wg);
    csp_wg_add(&nc_wg, 2 * NC_LEN);
    for (int i = 0; i < NC_LEN; i++) {
        nc_ctx[i] = csp_ctx_with_cancel(csp_ctx_background());
        atomic_store(&nc_runs[i], 0);
    }
    for (intptr_t i = 0; i < NC_LEN; i++) {
        f[i] = csp_ctx_after_func(nc_ctx[i], nc_fn, (void *)i);
        g[i] = csp_ctx_after_func(nc_ctx[i], nc_fn, (void *)i); /* two per context */
    }
    csp_ctx_cancel(nc_ctx[0]);
    if (!runtime) /* all ran on this thread before cancel returned */
        for (int i = 0; i < NC_LEN; i++)
            TCHECK_EQ(atomic_load(&nc_runs[i]), 2);
    TCHECK_EQ(csp_wg_wait(&nc_wg), 0);
    for (int i = 0; i < NC_LEN; i++) {
        TCHECK_EQ(atomic_load(&nc_runs[i]), 2);
        csp_ctx_func_release(f[i]);
        csp_ctx_func_release(g[i]);
        csp_ctx_release(nc_ctx[i]);
    }
}

static void nested_main(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20; i++)
        nested_chain(1);
}

static void test_ctx_after_func_chains(void **state)
{
    (void)state;
    TC_RESET();
    nested_chain(0);
    TC_ASSERT_CLEAN();
    RUN_ALL(nested_main, 1);
}

/* ------------------------------------------------------------------------ */
/* a 100,000-deep chain cancelled and released on a 16 KiB task stack: no   */
/* recursion in cancel or release                                            */

#define DC_N (CX_SANITIZER ? 20000 : 100000)
static atomic_int dc_freed;
static void dc_free(void *v)
{
    (void)v;
    atomic_fetch_add(&dc_freed, 1);
}

static void dc_small_stack(void *arg)
{
    csp_ctx_t **chain = arg;
    csp_ctx_cancel_cause(chain[0], -66);
    TCHECK_EQ(csp_ctx_cause(chain[DC_N - 1]), -66);
    /* drop every reference but the leaf's, then the leaf: the release walks
     * the whole chain */
    for (int i = 0; i < DC_N - 1; i++)
        csp_ctx_release(chain[i]);
    TCHECK_EQ(atomic_load(&dc_freed), 0);
    csp_ctx_release(chain[DC_N - 1]);
}

static void dc_small_stack_tramp(void *arg)
{
    dc_small_stack(arg);
    csp_wg_done(&join_wg);
}

static void deep_chain_main(void *arg)
{
    (void)arg;
    csp_ctx_t **chain = malloc((size_t)DC_N * sizeof *chain);
    TCHECK(chain != NULL);
    if (!chain)
        return;
    atomic_store(&dc_freed, 0);
    csp_ctx_t *par = csp_ctx_background();
    for (int i = 0; i < DC_N; i++) {
        switch (i % 4) {
        case 0: chain[i] = csp_ctx_with_cancel(par); break;
        case 1: chain[i] = csp_ctx_with_value(par, &key_a, NULL, dc_free); break;
        case 2: chain[i] = csp_ctx_with_timeout(par, 3600 * CSP_SECOND); break;
        default: chain[i] = csp_ctx_with_value(par, &key_b, NULL, dc_free); break;
        }
        par = chain[i];
    }
    TCHECK(csp_ctx_value(chain[DC_N - 1], &key_a) == NULL);
    csp_task_opts_t opts = { .stack_size = CSP_MIN_STACK_SIZE, .name = "small" };
    csp_wg_add(&join_wg, 1);
    TCHECK_EQ(csp_go_opts(dc_small_stack_tramp, chain, &opts), 0);
    TCHECK_EQ(csp_wg_wait(&join_wg), 0);
    TCHECK_EQ(atomic_load(&dc_freed), DC_N / 2);
    free(chain);
}

static void test_ctx_deep_chain_small_stack(void **state)
{
    (void)state;
    for (int w = 0; w < 2; w++)
        J_RUN(deep_chain_main, NULL, cx_workers[w], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* deadline children created while their parent is being cancelled: the    */
/* cancel must find (and delete) each child's timer, or the child must see  */
/* the cancel and not keep a timer (TSan checks the hand-off)                */

enum { DC2_TASKS = 3, DC2_EACH = 200 };
#define DC2_ROUNDS (CX_SANITIZER ? 40 : 200)
static csp_ctx_t *dc2_parent;
static csp_ctx_t *dc2_kids[DC2_TASKS][DC2_EACH];
static atomic_int dc2_made; /* relaxed only: no happens-before for TSan to lean on */

static void dc2_creator(void *arg)
{
    intptr_t t = (intptr_t)arg;
    for (int k = 0; k < DC2_EACH; k++) {
        dc2_kids[t][k] = csp_ctx_with_timeout(dc2_parent, 3600 * CSP_SECOND + k);
        TCHECK(dc2_kids[t][k] != NULL);
        atomic_fetch_add_explicit(&dc2_made, 1, memory_order_relaxed);
    }
}

static void dc2_cancel(void *arg)
{
    (void)arg;
    /* cancel while the creators are busy (on other workers, if any) */
    csp_time_t until = csp_deadline_after(50 * MS);
    while (atomic_load_explicit(&dc2_made, memory_order_relaxed) < DC2_EACH / 2 &&
           csp_now() < until)
        csp_yield();
    csp_ctx_cancel_cause(dc2_parent, -12);
}

static void deadline_child_race_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < DC2_ROUNDS; round++) {
        dc2_parent = csp_ctx_with_cancel(csp_ctx_background());
        atomic_store(&dc2_made, 0);
        TCHECK_EQ(go_joined(dc2_cancel, NULL), 0);
        for (intptr_t t = 0; t < DC2_TASKS; t++)
            TCHECK_EQ(go_joined(dc2_creator, (void *)t), 0);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        for (int t = 0; t < DC2_TASKS; t++)
            for (int k = 0; k < DC2_EACH; k++) {
                TCHECK_EQ(csp_ctx_err(dc2_kids[t][k]), CSP_ECANCELED);
                TCHECK_EQ(csp_ctx_cause(dc2_kids[t][k]), -12);
                csp_ctx_release(dc2_kids[t][k]);
            }
        csp_ctx_release(dc2_parent);
    }
}

static void test_ctx_deadline_child_vs_parent_cancel(void **state)
{
    (void)state;
    RUN_ALL(deadline_child_race_main, 1);
}

/* ------------------------------------------------------------------------ */
/* a value_free that parks, run by a cancel (the cancel's release of a      */
/* child whose other owner let go meanwhile): the after-functions that      */
/* cancel claimed before it must still run                                  */

enum { BV_FILLER = 3000, BV_ROUNDS = 10 };
static csp_ctx_t *bv_x;
static atomic_int bv_freed;

static void bv_parking_free(void *v)
{
    (void)v;
    csp_sleep(MS); /* parks: the task may resume on another worker */
    atomic_fetch_add(&bv_freed, 1);
}

static void bv_holder(void *arg)
{
    csp_ctx_t *a = arg; /* retained for us */
    /* A is cancelled first; X (whose only other reference the cancel holds
     * by then) a few thousand siblings later: our release makes the
     * cancel's release of X the last one */
    TCHECK_EQ(csp_ctx_wait(a), CSP_ECANCELED);
    csp_ctx_release(bv_x);
    csp_ctx_release(a);
}

static void blocking_value_free_main(void *arg)
{
    (void)arg;
    for (int round = 0; round < BV_ROUNDS; round++) {
        csp_ctx_t *r = csp_ctx_with_cancel(csp_ctx_background());
        csp_ctx_t *a = csp_ctx_with_cancel(r); /* first child: cancelled first */
        /* static: a function that is lost and runs later must not write
         * into a dead frame */
        static af_rec_t recs[BV_ROUNDS];
        af_rec_t *rec = &recs[round];
        af_rec_init(rec, NULL);
        csp_ctx_func_t *f = csp_ctx_after_func(a, af_fn, rec);
        csp_ctx_t **filler = malloc(BV_FILLER * sizeof *filler);
        TCHECK(filler != NULL);
        if (!filler)
            return;
        for (int i = 0; i < BV_FILLER; i++)
            filler[i] = csp_ctx_with_cancel(r);
        atomic_store(&bv_freed, 0);
        csp_ctx_t *v = csp_ctx_with_value(r, &key_c, NULL, bv_parking_free);
        bv_x = csp_ctx_with_cancel(v); /* last child: cancelled last */
        csp_ctx_release(v);            /* X keeps V */
        TCHECK_EQ(go_joined(bv_holder, csp_ctx_retain(a)), 0);
        csp_sleep(MS); /* the holder waits on A */
        csp_ctx_cancel(r);
        /* the function registered on A runs, whatever happened to this task
         * during the cancel */
        csp_time_t until = csp_deadline_after(CSP_SECOND);
        while (atomic_load(&rec->runs) == 0 && csp_now() < until)
            csp_sleep(MS);
        int lost = atomic_load(&rec->runs) != 1;
        if (lost)
            tc_fail(__FILE__, __LINE__,
                    "after_func on a cancelled context did not run within 1 s (%d runs; "
                    "%d workers, round %d)", atomic_load(&rec->runs), csp_workers(), round);
        TCHECK_EQ(csp_wg_wait(&join_wg), 0);
        TCHECK_EQ(atomic_load(&bv_freed), 1);
        if (atomic_load(&rec->runs) == 1)
            TCHECK_EQ(csp_wg_wait(&rec->wg), 0);
        csp_ctx_func_release(f);
        for (int i = 0; i < BV_FILLER; i++)
            csp_ctx_release(filler[i]);
        free(filler);
        csp_ctx_release(a);
        csp_ctx_release(r);
        if (lost)
            break; /* once is enough */
    }
}

static void test_ctx_after_func_blocking_value_free(void **state)
{
    (void)state;
    /* the task must be able to resume on another worker */
    static const int nw[] = { 1, 2, 4, 8 };
    for (int i = 0; i < 4; i++)
        J_RUN(blocking_value_free_main, NULL, nw[i], CSP_SPAWN_HELP_FIRST);
}

/* ------------------------------------------------------------------------ */
/* NULL arguments                                                            */

static void null_fn(void *arg) { (void)arg; }

static void null_checks(void)
{
    static atomic_int calls;
    atomic_store(&calls, 0);
    TCHECK(csp_ctx_with_cancel(NULL) == NULL);
    TCHECK(csp_ctx_with_deadline(NULL, 0) == NULL);
    TCHECK(csp_ctx_with_deadline(NULL, CSP_FOREVER) == NULL);
    TCHECK(csp_ctx_with_timeout(NULL, CSP_SECOND) == NULL);
    TCHECK(csp_ctx_with_value(NULL, &key_a, NULL, NULL) == NULL);
    TCHECK(csp_ctx_without_cancel(NULL) == NULL);
    csp_ctx_cancel(NULL);
    csp_ctx_cancel_cause(NULL, -1);
    TCHECK(csp_ctx_done(NULL) == NULL);
    TCHECK_EQ(csp_ctx_err(NULL), CSP_EINVAL);
    TCHECK_EQ(csp_ctx_cause(NULL), CSP_EINVAL);
    csp_time_t d = 5;
    TCHECK_EQ(csp_ctx_deadline(NULL, &d), 0);
    TCHECK_EQ(d, CSP_FOREVER);
    TCHECK_EQ(csp_ctx_deadline(NULL, NULL), 0);
    TCHECK(csp_ctx_value(NULL, &key_a) == NULL);
    TCHECK(csp_ctx_value(NULL, NULL) == NULL);
    TCHECK(csp_ctx_retain(NULL) == NULL);
    csp_ctx_release(NULL);
    TCHECK_EQ(csp_ctx_wait(NULL), CSP_EINVAL);
    TCHECK(csp_ctx_after_func(NULL, null_fn, NULL) == NULL);
    csp_ctx_t *c = csp_ctx_with_cancel(csp_ctx_background());
    TCHECK(csp_ctx_after_func(c, NULL, NULL) == NULL);
    TCHECK_EQ(csp_ctx_func_stop(NULL), 0);
    csp_ctx_func_release(NULL);
    csp_ctx_cancel(c);
    csp_ctx_release(c);
}

static void null_main(void *arg)
{
    (void)arg;
    null_checks();
}

static void test_ctx_null_args(void **state)
{
    (void)state;
    TC_RESET();
    null_checks();
    TC_ASSERT_CLEAN();
    RUN_ALL(null_main, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ctx_background_todo),
        cmocka_unit_test(test_ctx_null_args),
        cmocka_unit_test(test_ctx_cancel),
        cmocka_unit_test(test_ctx_release_does_not_cancel),
        cmocka_unit_test(test_ctx_values),
#if !CX_SANITIZER
        cmocka_unit_test(test_ctx_out_of_memory),
#endif
        cmocka_unit_test(test_ctx_without_cancel),
        cmocka_unit_test(test_ctx_deadline),
        cmocka_unit_test(test_ctx_deadline_timer_freed),
        cmocka_unit_test(test_ctx_detach_released_children),
        cmocka_unit_test(test_ctx_tree),
        cmocka_unit_test(test_ctx_tree_waiters),
        cmocka_unit_test(test_ctx_after_func),
        cmocka_unit_test(test_ctx_after_func_never_cancelled),
        cmocka_unit_test(test_ctx_after_func_stop_race),
        cmocka_unit_test(test_ctx_after_func_no_runtime),
        cmocka_unit_test(test_ctx_wait),
        cmocka_unit_test(test_ctx_wait_shutdown),
        cmocka_unit_test(test_ctx_plain_threads),
        cmocka_unit_test(test_ctx_plain_thread_deadline),
        cmocka_unit_test(test_ctx_stress),
        cmocka_unit_test(test_ctx_racing_cancels),
        cmocka_unit_test(test_ctx_done_race),
        cmocka_unit_test(test_ctx_after_func_register_race),
        cmocka_unit_test(test_ctx_after_func_chains),
        cmocka_unit_test(test_ctx_deep_chain_small_stack),
        cmocka_unit_test(test_ctx_deadline_child_vs_parent_cancel),
        cmocka_unit_test(test_ctx_after_func_blocking_value_free),
    };
    /* CX_FILTER=pattern runs the matching tests only (cmocka's filter) */
    if (getenv("CX_FILTER"))
        cmocka_set_test_filter(getenv("CX_FILTER"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
