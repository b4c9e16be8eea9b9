/* csp_singleflight_t: golang.org/x/sync/singleflight for tasks and threads.
 *
 * Layout (csp_singleflight_t._opaque, 4 words; all-zero = empty):
 *   table   uthash table of the calls in flight (sf_call_t), keyed by the
 *           key's bytes; under lock.
 *   lock    spinlock guarding the table and every call record's fields
 *           marked "under lock" below.
 *
 * A call (sf_call_t, malloc'ed, holding a copy of the key):
 *   - The first caller of a key (the leader) adds a record and runs fn with
 *     no lock held, writing into its own out buffer.
 *   - Later callers (followers) find the record, take a reference, queue a
 *     csp__waiter_t on their stack whose data points at their out buffer
 *     (sf_dest_t), and wait.
 *   - When fn returns the leader, under the lock, removes the record from the
 *     table (unless forgotten) and detaches the wait queue (detached = true;
 *     no follower can join after that); then, without the lock, it claims
 *     each follower (csp__waiter_claim), copies its result and output
 *     straight into the follower's buffers, and completes it (wait.h's
 *     claim/complete: a claimed waiter cannot be shut down, so the buffers
 *     are still there). A follower already shut down fails the claim and is
 *     acknowledged instead (w->ack): it finds detached == true and waits for
 *     that before its frame goes away.
 *   - References: the leader holds one, and every queued follower one. The
 *     leader drops its own plus one per follower it completed (those never
 *     touch the record again); a follower that was shut down drops its own.
 *     Whoever drops the last frees the record, after unlocking.
 *
 * Invariants
 *   - in_table  <=>  the record is in the table. A record in the table is
 *     never detached; a detached record never returns to the table.
 *   - the wait queue holds exactly the followers that joined and were
 *     neither detached nor removed by their own shutdown path.
 *   - refs == 1 (leader, until it finishes) + queued followers + followers
 *     detached but not completed by the leader (shut down; they drop their
 *     own reference after the ack).
 *   - fn and every copy into a follower's buffer run with no lock held.
 *
 * Dead leaders: a leader task that is freed by the runtime's teardown while
 * in fn never finishes its call. A record whose leader was a task of a
 * runtime that has stopped (leader_task && the runtime generation moved or
 * the runtime is stopped) is "abandoned" by the next caller of its key (or
 * by forget/destroy): removed from the table, its followers completed with
 * CSP_ESHUTDOWN, the leader's reference dropped on its behalf.
 *
 * Lock order: the singleflight lock is a leaf; it is never held across a
 * switch. uthash allocates and frees its bucket arrays inside HASH_ADD /
 * HASH_DEL, so malloc/free can run under it (when the table is created,
 * grows, or becomes empty); record allocation and frees happen outside it.
 * The runtime teardown's unlink hook takes it with the world stopped.
 *
 * Atomics: only the waiter state (wait.h) and the runtime's state/generation
 * (see leader_dead()); everything else is under the lock.
 */
#define CSP__SPIN_RANK CSP__RANK_LEAF /* lock ranks: internal.h */
#include <stdlib.h>
#include <string.h>

#include "../sched/wait.h"

#define HASH_NONFATAL_OOM 1 /* an add that cannot allocate leaves hh.tbl NULL */
#include <uthash.h>

typedef struct sf_call sf_call_t;

typedef struct {
    sf_call_t      *table; /* under lock */
    csp__spinlock_t lock;
    uint32_t        unused0;
    uint64_t        unused1[2];
} sf_impl_t;

CSP__STATIC_ASSERT(sizeof(sf_impl_t) <= sizeof(csp_singleflight_t), "csp_singleflight_t too small");
CSP__STATIC_ASSERT(_Alignof(sf_impl_t) <= _Alignof(csp_singleflight_t),
                   "csp_singleflight_t misaligned");

struct sf_call {
    UT_hash_handle hh;         /* under lock */
    sf_impl_t     *g;
    csp__waiter_t *head, *tail; /* queued followers (next/prev), under lock */
    uint32_t       refs;       /* under lock: see the file comment */
    bool           in_table;   /* under lock */
    bool           detached;   /* under lock: the queue was taken by the leader */
    bool           leader_task; /* the leader is a task of runtime generation gen */
    uint32_t       gen;
    size_t         key_len;
    unsigned char  key[];      /* the key's bytes (a copy) */
};

/* Where a follower wants its result; on the follower's stack (w->data). */
typedef struct {
    void  *out;
    size_t out_size;
    int    shared;   /* written by the completing leader */
} sf_dest_t;

static inline sf_impl_t *impl(csp_singleflight_t *g)
{
    return (sf_impl_t *)(void *)g->_opaque;
}

/* True if c's leader is a task of a runtime that has stopped: it will never
 * finish. The state is read first: the leader's runtime was RUNNING before
 * the record was added (under the lock, which we hold), so STOPPED/STARTING
 * can only be after its teardown; a generation other than c->gen was bumped
 * by a later start. (seq_cst / acquire loads.) */
static bool leader_dead(const sf_call_t *c)
{
    if (!c->leader_task)
        return false;
    int s = atomic_load(&csp__rt.state);
    if (s == CSP__RT_STOPPED || s == CSP__RT_STARTING)
        return true;
    /* acquire: pairs with rt_setup's fetch_add */
    return atomic_load_explicit(&csp__rt.gen, memory_order_acquire) != c->gen;
}

static void queue_remove(sf_call_t *c, csp__waiter_t *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        c->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        c->tail = w->prev;
    w->next = w->prev = NULL;
}

/* Under lock: takes c out of the table (if there) and detaches its queue. */
static csp__waiter_t *sf_finish_locked(sf_impl_t *s, sf_call_t *c)
{
    if (c->in_table) {
        HASH_DELETE(hh, s->table, c);
        c->in_table = false;
    }
    csp__waiter_t *list = c->head;
    c->head = c->tail = NULL;
    c->detached = true;
    return list;
}

/* No lock held: gives result/out to every detached follower it can claim.
 * Returns how many it completed (their references are the caller's to
 * drop); the others were shut down, are acknowledged, and drop their own. */
static uint32_t sf_deliver(csp__waiter_t *list, int result, const void *out, size_t out_size,
                           int shared)
{
    uint32_t n = 0;
    while (list) {
        csp__waiter_t *w = list;
        list = w->next; /* before the completion/ack: then the frame may go */
        if (csp__waiter_claim(w)) {
            sf_dest_t *d = w->data;
            size_t k = d->out_size < out_size ? d->out_size : out_size;
            if (k)
                memcpy(d->out, out, k);
            if (d->out_size > k)
                memset((char *)d->out + k, 0, d->out_size - k);
            d->shared = shared;
            w->result = result;
            csp__waiter_complete(w); /* release: publishes the copies */
            n++;
        } else {
            /* release: our last access to w (pairs with csp__waiter_await_ack) */
            atomic_store_explicit(&w->ack, 1, memory_order_release);
        }
    }
    return n;
}

/* Drops n references to c; frees it if they were the last. No lock held. */
static void sf_unref(sf_impl_t *s, sf_call_t *c, uint32_t n)
{
    csp__spin_lock(&s->lock);
    CSP__ASSERT(c->refs >= n);
    c->refs -= n;
    bool last = c->refs == 0;
    csp__spin_unlock(&s->lock);
    if (last)
        free(c);
}

/* Called with the lock held, returns with it released: c's leader is dead;
 * its followers get CSP_ESHUTDOWN and the leader's reference is dropped. */
static void sf_abandon_unlock(sf_impl_t *s, sf_call_t *c)
{
    csp__waiter_t *list = sf_finish_locked(s, c);
    csp__spin_unlock(&s->lock);
    uint32_t n = sf_deliver(list, CSP_ESHUTDOWN, NULL, 0, 0);
    sf_unref(s, c, n + 1);
}

/* Teardown hook (wait.h; world stopped): a follower task is being freed
 * while waiting. Leave the queue and drop its reference; if the leader
 * already detached it, the reference is still ours to drop when the
 * leader's claim fails (the waiter was shut down or timed out). */
static void sf_unlink(csp__waiter_t *w)
{
    sf_call_t *c = w->obj;
    sf_impl_t *s = c->g;
    bool drop = false;
    csp__spin_lock(&s->lock);
    if (!c->detached) {
        queue_remove(c, w);
        drop = true;
    } else {
        /* acquire: pairs with the CAS that ended the wait */
        uint32_t st = atomic_load_explicit(&w->state, memory_order_acquire);
        drop = st != CSP__W_WAITING && st != CSP__W_CLAIMED && st != CSP__W_WOKEN;
    }
    bool last = false;
    if (drop)
        last = --c->refs == 0;
    csp__spin_unlock(&s->lock);
    if (last)
        free(c);
}

/* A follower: queue on c (lock held; released here, then to_free is
 * freed), wait, collect. */
static int sf_follow_unlock(sf_impl_t *s, sf_call_t *c, void *out, size_t out_size, int *shared,
                            void *to_free)
{
    sf_dest_t d = { .out = out, .out_size = out_size, .shared = 0 };
    csp__waiter_t w;
    csp__waiter_init(&w);
    w.data = &d;
    w.unlink = sf_unlink;
    w.obj = c;
    w.what = s;
    w.prev = c->tail;
    w.next = NULL;
    if (c->tail)
        c->tail->next = &w;
    else
        c->head = &w;
    c->tail = &w;
    c->refs++;
    csp__spin_unlock(&s->lock);
    free(to_free);

    uint32_t st = csp__waiter_wait(&w, CSP_FOREVER, "singleflight");
    if (st == CSP__W_WOKEN) {
        /* the leader wrote out, d and w.result before completing; the
         * acquire in csp__waiter_wait pairs with its release */
        if (shared)
            *shared = d.shared;
        return w.result;
    }
    /* shut down: leave the queue, or wait for the leader that detached it */
    csp__spin_lock(&s->lock);
    bool queued = !c->detached;
    if (queued)
        queue_remove(c, &w);
    csp__spin_unlock(&s->lock);
    if (!queued)
        csp__waiter_await_ack(&w);
    sf_unref(s, c, 1);
    return csp__shutdown_err();
}

CSP_EXTERN int csp_singleflight_do(csp_singleflight_t *g, const void *key, size_t key_len,
                                   int (*fn)(void *arg, void *out), void *arg, void *out,
                                   size_t out_size, int *shared)
{
    if (!g || (!key && key_len) || !fn || (!out && out_size) || key_len > UINT32_MAX)
        return CSP_EINVAL;
    if (!key)
        key = ""; /* key_len == 0: never read, but memcmp wants a pointer */
    sf_impl_t *s = impl(g);
    unsigned hv;
    HASH_VALUE(key, (unsigned)key_len, hv); /* outside the lock */
    sf_call_t *fresh = NULL;                 /* our record, allocated unlocked */
    sf_call_t *c;
    for (;;) {
        csp__spin_lock(&s->lock);
        HASH_FIND_BYHASHVALUE(hh, s->table, key, (unsigned)key_len, hv, c);
        if (c && leader_dead(c)) {
            sf_abandon_unlock(s, c);
            continue;
        }
        if (c) /* our record, if any, was not needed */
            return sf_follow_unlock(s, c, out, out_size, shared, fresh);
        if (fresh)
            break; /* still no flight: ours starts, lock held */
        csp__spin_unlock(&s->lock);
        fresh = malloc(sizeof *fresh + key_len);
        if (!fresh)
            return CSP_ENOMEM;
        memset(fresh, 0, sizeof *fresh);
        if (key_len)
            memcpy(fresh->key, key, key_len);
        fresh->key_len = key_len;
        fresh->g = s;
    }
    /* leader, lock held */
    c = fresh;
    c->refs = 1;
    c->leader_task = csp__cur_task() != NULL;
    c->gen = atomic_load_explicit(&csp__rt.gen, memory_order_relaxed); /* stable while we run */
    HASH_ADD_KEYPTR_BYHASHVALUE(hh, s->table, c->key, (unsigned)key_len, hv, c);
    if (!c->hh.tbl) { /* uthash could not allocate */
        csp__spin_unlock(&s->lock);
        free(c);
        return CSP_ENOMEM;
    }
    c->in_table = true;
    csp__spin_unlock(&s->lock);

    int r = fn(arg, out); /* may block, switch, migrate */

    csp__spin_lock(&s->lock);
    csp__waiter_t *list = sf_finish_locked(s, c);
    csp__spin_unlock(&s->lock);
    uint32_t n = sf_deliver(list, r, out, out_size, 1);
    sf_unref(s, c, n + 1);
    if (shared)
        *shared = n > 0;
    return r;
}

CSP_EXTERN int csp_singleflight_forget(csp_singleflight_t *g, const void *key, size_t key_len)
{
    if (!g || (!key && key_len) || key_len > UINT32_MAX)
        return CSP_EINVAL;
    if (!key)
        key = "";
    sf_impl_t *s = impl(g);
    unsigned hv;
    HASH_VALUE(key, (unsigned)key_len, hv);
    sf_call_t *c;
    csp__spin_lock(&s->lock);
    HASH_FIND_BYHASHVALUE(hh, s->table, key, (unsigned)key_len, hv, c);
    if (c && leader_dead(c)) {
        sf_abandon_unlock(s, c);
        return 0;
    }
    if (c) {
        /* the flight goes on; its followers still get its result */
        HASH_DELETE(hh, s->table, c);
        c->in_table = false;
    }
    csp__spin_unlock(&s->lock);
    return 0;
}

CSP_EXTERN void csp_singleflight_destroy(csp_singleflight_t *g)
{
    if (!g)
        return;
    sf_impl_t *s = impl(g);
    for (;;) {
        csp__spin_lock(&s->lock);
        sf_call_t *c = s->table;
        if (!c) {
            csp__spin_unlock(&s->lock);
            break;
        }
        if (leader_dead(c)) {
            /* an abandoned flight: release its followers, if any are left,
             * and free it */
            sf_abandon_unlock(s, c);
        } else {
            /* misuse (a call in flight): forget it; its leader frees it */
            HASH_DELETE(hh, s->table, c);
            c->in_table = false;
            csp__spin_unlock(&s->lock);
        }
    }
}
