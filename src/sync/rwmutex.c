/* csp_rwmutex_t: Go's sync.RWMutex (sync/rwmutex.go) for tasks and plain
 * threads.
 *
 * Layout (fits csp_rwmutex_t's 8 opaque words; all-zero = unlocked):
 *   w       a csp_mutex_t that writers hold from lock to unlock (Go's rw.w)
 *   rw      one 64-bit word holding Go's two counters, so that they change
 *           together:
 *             low 32 bits  readerCount (int32): readers holding or waiting;
 *                          a writer subtracts RW_MAX (the writer bias), so
 *                          readerCount < 0 <=> a writer holds or waits
 *             high 32 bits readerWait: readers the pending writer still waits
 *                          for (those that held the lock when it arrived)
 *   slock   csp__spinlock_t guarding `readers`, `wslot`, rwaiter_t.queued,
 *           and every change of readerCount while it is negative except a
 *           departing reader's (so the pending readers are exactly the list)
 *   readers pending readers (arrived while a writer held or waited), on their
 *           stacks, doubly linked
 *   wslot   Go's writerSem for the one pending writer: NULL, RW_TOKEN (the
 *           last reader left before the writer parked), or the parked writer
 *
 * Go's algorithm: RLock adds 1 to readerCount and waits if the result is
 * negative (a writer is there: new readers queue behind it, so writers are
 * not starved). Lock takes w, adds the bias (-RW_MAX) and waits until the r
 * readers it found have left (readerWait). RUnlock subtracts 1; with a writer
 * pending it also decrements readerWait and the reader that brings it to 0
 * wakes the writer. Unlock removes the bias and releases every reader that
 * queued meanwhile (they get in before the next writer, which still waits on
 * w), then unlocks w.
 *
 * Differences, for misuse checks and shutdown:
 *   - Go keeps readerCount and readerWait apart (the writer's two adds leave
 *     a window); here they are one word changed by CAS, so runlock can tell
 *     "no reader holds it" (readerCount == 0 with no writer; readerWait == 0
 *     with one) and return CSP_EINVAL without touching anything. unlock
 *     checks the writer bias with readerWait == 0 and no pending wake-up.
 *   - Pending readers join readerCount and the list in one step under slock,
 *     and writers release them under slock by claiming them (wait.h); so
 *     no semaphore count is needed for readers, and a reader that is shut
 *     down while waiting either unlinks itself and takes back its +1, or was
 *     unlinked (and subtracted) by the writer whose claim failed.
 *   - A writer shut down while waiting for readers undoes its bias as an
 *     unlock would (releasing pending readers), and absorbs the token of a
 *     reader that is already committed to waking it.
 *
 * Invariants
 *   - readerCount >= 0 => readerWait == 0, no pending reader, wslot == NULL.
 *   - While a writer holds the lock: readerCount == -RW_MAX + (pending
 *     readers), readerWait == 0, wslot == NULL.
 *   - At most one writer is past w at a time.
 *
 * Memory orders: a reader's acquiring CAS pairs with the writer's releasing
 * CAS (unlock); a departing reader's CAS is acq_rel so that the reader
 * bringing readerWait to 0 carries every earlier reader's release to the
 * writer, which it then wakes through slock (token) or the waiter's
 * completion. The writer's bias CAS is acquire (pairs with the readers'
 * releases when it finds none). Released pending readers see the writer's
 * critical section through csp__waiter_complete / csp__waiter_wait.
 *
 * Lock order: w (a mutex: its qlock is rank 11) is never held while taking
 * slock in a way that nests: slock (rank 14) is a leaf, released before any
 * mutex call or wake-up.
 */
#define CSP__SPIN_RANK CSP__RANK_LEAF /* lock ranks: internal.h */
#include "../sched/wait.h"

typedef struct {
    csp_mutex_t      w;
    _Atomic uint64_t rw;
    csp__spinlock_t  slock;
    uint32_t         unused;
    csp__waiter_t   *readers; /* under slock */
    csp__waiter_t   *wslot;   /* under slock */
} rw_impl_t;

CSP__STATIC_ASSERT(sizeof(rw_impl_t) <= sizeof(csp_rwmutex_t), "csp_rwmutex_t too small");
CSP__STATIC_ASSERT(_Alignof(rw_impl_t) <= _Alignof(csp_rwmutex_t), "csp_rwmutex_t misaligned");

#define RW_MAX   ((int32_t)1 << 30) /* Go's rwmutexMaxReaders */
#define RW_TOKEN ((csp__waiter_t *)(uintptr_t)1)

typedef struct {
    csp__waiter_t w;
    bool          queued; /* under slock */
} rwaiter_t;

static inline int32_t rw_count(uint64_t v) { return (int32_t)(uint32_t)v; }
static inline uint32_t rw_wait(uint64_t v) { return (uint32_t)(v >> 32); }
static inline uint64_t rw_make(int32_t count, uint32_t wait)
{
    return ((uint64_t)wait << 32) | (uint32_t)count;
}
/* readers holding or waiting, whatever the bias */
static inline int32_t rw_readers(int32_t count) { return count < 0 ? count + RW_MAX : count; }

static inline rwaiter_t *rwr_of(csp__waiter_t *w)
{
    return csp__container_of(w, rwaiter_t, w);
}

/* ---- pending readers (under slock) ---- */

static void rq_push(rw_impl_t *m, csp__waiter_t *w)
{
    w->prev = NULL;
    w->next = m->readers;
    if (m->readers)
        m->readers->prev = w;
    m->readers = w;
    rwr_of(w)->queued = true;
}

static void rq_remove(rw_impl_t *m, csp__waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        m->readers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->next = w->prev = NULL;
    rwr_of(w)->queued = false;
}

/* Under slock: a pending reader gives up (its +1 goes). */
static void rw_drop_pending(rw_impl_t *m)
{
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    /* relaxed: the pending part of the count is ordered by slock */
    while (!atomic_compare_exchange_weak_explicit(&m->rw, &old,
                                                  rw_make(rw_count(old) - 1, rw_wait(old)),
                                                  memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Under slock, writer side: removes the bias and makes every pending reader
 * that can be claimed a holder; returns the claimed ones linked through
 * next, to be completed after slock is released. *old_out: the word before. */
static csp__waiter_t *rw_release_pending(rw_impl_t *m, uint64_t *old_out)
{
    csp__waiter_t *list = NULL, **tail = &list, *w;
    int32_t nfail = 0;
    while ((w = m->readers)) {
        rq_remove(m, w);
        if (csp__waiter_claim(w)) {
            *tail = w;
            tail = &w->next;
        } else {
            nfail++; /* shut down: not a holder; its +1 goes with it */
        }
    }
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    /* acq_rel: release publishes the writer's critical section to readers
     * that take the fast path next (pairs with their acquiring CAS); acquire
     * pairs with the departing readers' releases (abort path) */
    while (!atomic_compare_exchange_weak_explicit(
        &m->rw, &old, rw_make(rw_count(old) + RW_MAX - nfail, 0), memory_order_acq_rel,
        memory_order_relaxed))
        ;
    *old_out = old;
    return list;
}

static void rw_complete_all(csp__waiter_t *list)
{
    while (list) {
        csp__waiter_t *next = list->next; /* before the completion frees it */
        csp__waiter_complete(list);
        list = next;
    }
}

/* Teardown hooks (wait.h): tasks freed while waiting. A pending reader
 * vanishes (its +1 goes); a writer waiting for readers leaves its slot (the
 * rwmutex stays write-locked, as for any task freed holding a lock: it
 * also holds w). */
static void rw_unlink_reader(csp__waiter_t *w)
{
    rw_impl_t *m = w->obj;
    csp__spin_lock(&m->slock);
    if (rwr_of(w)->queued) {
        rq_remove(m, w);
        rw_drop_pending(m);
    }
    csp__spin_unlock(&m->slock);
}

static void rw_unlink_writer(csp__waiter_t *w)
{
    rw_impl_t *m = w->obj;
    csp__spin_lock(&m->slock);
    if (m->wslot == w)
        m->wslot = NULL;
    csp__spin_unlock(&m->slock);
}

static void rw_backoff(void)
{
    csp_yield(); /* plain thread: sched_yield */
}

/* ---- readers ---- */

static CSP__NOINLINE int rw_rlock_slow(rw_impl_t *m)
{
    csp__spin_lock(&m->slock);
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    for (;;) {
        int32_t c = rw_count(old);
        if (rw_readers(c) >= RW_MAX - 1) {
            csp__spin_unlock(&m->slock);
            return CSP_EINVAL; /* absurd: 2^30 - 1 readers */
        }
        if (c >= 0) { /* the writer left meanwhile */
            /* acquire: pairs with the writer's releasing CAS */
            if (atomic_compare_exchange_weak_explicit(&m->rw, &old, rw_make(c + 1, rw_wait(old)),
                                                      memory_order_acquire,
                                                      memory_order_relaxed)) {
                csp__spin_unlock(&m->slock);
                return 0;
            }
            continue;
        }
        /* relaxed: the pending part of the count is ordered by slock */
        if (atomic_compare_exchange_weak_explicit(&m->rw, &old, rw_make(c + 1, rw_wait(old)),
                                                  memory_order_relaxed, memory_order_relaxed))
            break;
    }
    rwaiter_t rw;
    csp__waiter_init(&rw.w);
    rw.w.unlink = rw_unlink_reader;
    rw.w.obj = m;
    rw.w.what = m;
    rq_push(m, &rw.w);
    csp__spin_unlock(&m->slock);

    uint32_t st = csp__waiter_wait(&rw.w, CSP_FOREVER, "rwmutex.rlock");
    if (st == CSP__W_WOKEN)
        return 0; /* a writer made us a holder (its section is visible) */
    csp__spin_lock(&m->slock);
    if (rw.queued) {
        rq_remove(m, &rw.w);
        rw_drop_pending(m);
    } /* else: the writer unlinked us and did not count us */
    csp__spin_unlock(&m->slock);
    return csp__shutdown_err();
}

CSP_EXTERN int csp_rwmutex_rlock(csp_rwmutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    rw_impl_t *m = (rw_impl_t *)mm;
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    for (;;) {
        int32_t c = rw_count(old);
        if (c < 0)
            return rw_rlock_slow(m); /* a writer holds or waits */
        if (CSP__UNLIKELY(c >= RW_MAX - 1))
            return CSP_EINVAL;
        /* acquire: pairs with the writer's releasing CAS */
        if (CSP__LIKELY(atomic_compare_exchange_weak_explicit(&m->rw, &old,
                                                              rw_make(c + 1, rw_wait(old)),
                                                              memory_order_acquire,
                                                              memory_order_relaxed)))
            return 0;
    }
}

CSP_EXTERN int csp_rwmutex_tryrlock(csp_rwmutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    rw_impl_t *m = (rw_impl_t *)mm;
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    for (;;) {
        int32_t c = rw_count(old);
        if (c < 0 || c >= RW_MAX - 1)
            return CSP_EAGAIN;
        /* acquire: as in rlock */
        if (atomic_compare_exchange_weak_explicit(&m->rw, &old, rw_make(c + 1, rw_wait(old)),
                                                  memory_order_acquire, memory_order_relaxed))
            return 0;
    }
}

/* The reader that brought readerWait to 0 wakes the pending writer, or
 * leaves it a token if it has not parked yet (or is leaving: shutdown). */
static CSP__NOINLINE void rw_post_writer(rw_impl_t *m)
{
    csp__spin_lock(&m->slock);
    csp__waiter_t *w = m->wslot;
    CSP__ASSERT(w != RW_TOKEN);
    if (w && w != RW_TOKEN && csp__waiter_claim(w)) {
        m->wslot = NULL;
    } else {
        w = NULL;
        m->wslot = RW_TOKEN;
    }
    csp__spin_unlock(&m->slock);
    if (w)
        csp__waiter_complete(w);
}

CSP_EXTERN int csp_rwmutex_runlock(csp_rwmutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    rw_impl_t *m = (rw_impl_t *)mm;
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    for (;;) {
        int32_t c = rw_count(old);
        uint32_t wt = rw_wait(old);
        uint64_t nv;
        if (c >= 0) {
            if (c == 0)
                return CSP_EINVAL; /* no reader holds it: unchanged */
            nv = rw_make(c - 1, wt);
        } else {
            if (wt == 0)
                return CSP_EINVAL; /* write-locked: only pending readers, none holds it */
            nv = rw_make(c - 1, wt - 1);
        }
        /* acq_rel: release publishes the read section to the writer;
         * acquire makes the last departing reader carry the earlier readers'
         * releases on to the writer it wakes */
        if (atomic_compare_exchange_weak_explicit(&m->rw, &old, nv, memory_order_acq_rel,
                                                  memory_order_relaxed)) {
            if (c < 0 && wt == 1)
                rw_post_writer(m);
            return 0;
        }
    }
}

/* ---- writers ---- */

/* A writer shut down while waiting for readers: undo the bias (releasing
 * the readers that queued behind it). Holds w; the caller unlocks it. */
static void rw_writer_abort(rw_impl_t *m, csp__waiter_t *ww)
{
    csp__spin_lock(&m->slock);
    bool posted = m->wslot == RW_TOKEN; /* the last reader already left a token */
    CSP__ASSERT(posted || m->wslot == ww);
    (void)ww;
    m->wslot = NULL;
    uint64_t old;
    csp__waiter_t *list = rw_release_pending(m, &old);
    csp__spin_unlock(&m->slock);
    rw_complete_all(list);
    if (posted || rw_wait(old) != 0)
        return; /* no reader will post any more: they see no writer now */
    /* readerWait was already 0: the last reader is on its way to post a
     * token; absorb it, or it would let the next writer in early */
    for (;;) {
        csp__spin_lock(&m->slock);
        if (m->wslot == RW_TOKEN) {
            m->wslot = NULL;
            csp__spin_unlock(&m->slock);
            return;
        }
        csp__spin_unlock(&m->slock);
        rw_backoff();
    }
}

CSP_EXTERN int csp_rwmutex_lock(csp_rwmutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    rw_impl_t *m = (rw_impl_t *)mm;
    int r = csp_mutex_lock(&m->w);
    if (r != 0)
        return r; /* CSP_ESHUTDOWN */
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    int32_t c;
    for (;;) {
        c = rw_count(old);
        CSP__ASSERT(c >= 0 && rw_wait(old) == 0);
        /* acquire: pairs with the departing readers' releases when none is
         * left (c == 0) */
        if (atomic_compare_exchange_weak_explicit(&m->rw, &old, rw_make(c - RW_MAX, (uint32_t)c),
                                                  memory_order_acquire, memory_order_relaxed))
            break;
    }
    if (c == 0)
        return 0;
    /* wait for the c readers that hold it */
    csp__waiter_t ww;
    csp__waiter_init(&ww);
    ww.unlink = rw_unlink_writer;
    ww.obj = m;
    ww.what = m;
    csp__spin_lock(&m->slock);
    if (m->wslot == RW_TOKEN) { /* they left already (slock orders their sections) */
        m->wslot = NULL;
        csp__spin_unlock(&m->slock);
        return 0;
    }
    CSP__ASSERT(m->wslot == NULL);
    m->wslot = &ww;
    csp__spin_unlock(&m->slock);
    uint32_t st = csp__waiter_wait(&ww, CSP_FOREVER, "rwmutex.lock");
    if (st == CSP__W_WOKEN)
        return 0;
    rw_writer_abort(m, &ww);
    csp_mutex_unlock(&m->w);
    return csp__shutdown_err();
}

CSP_EXTERN int csp_rwmutex_trylock(csp_rwmutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    rw_impl_t *m = (rw_impl_t *)mm;
    if (csp_mutex_trylock(&m->w) != 0)
        return CSP_EAGAIN;
    uint64_t exp = 0;
    /* acquire: pairs with the departing readers' releases */
    if (atomic_compare_exchange_strong_explicit(&m->rw, &exp, rw_make(-RW_MAX, 0),
                                                memory_order_acquire, memory_order_relaxed))
        return 0;
    csp_mutex_unlock(&m->w); /* readers hold it */
    return CSP_EAGAIN;
}

CSP_EXTERN int csp_rwmutex_unlock(csp_rwmutex_t *mm)
{
    if (CSP__UNLIKELY(!mm))
        return CSP_EINVAL;
    rw_impl_t *m = (rw_impl_t *)mm;
    csp__spin_lock(&m->slock);
    uint64_t old = atomic_load_explicit(&m->rw, memory_order_relaxed);
    if (rw_count(old) >= 0 || rw_wait(old) != 0 || m->wslot != NULL) {
        /* not write-locked (unlocked, read-locked, or a writer still
         * waiting for readers): unchanged */
        csp__spin_unlock(&m->slock);
        return CSP_EINVAL;
    }
    csp__waiter_t *list = rw_release_pending(m, &old);
    csp__spin_unlock(&m->slock);
    rw_complete_all(list); /* they get in before the next writer */
    csp_mutex_unlock(&m->w);
    return 0;
}
