/* libcsp — the sync package (Go's sync, task-aware).
 *
 * Every object here is a fixed-size public struct of opaque words that can be
 * initialised statically with its CSP_*_INIT (also at file scope) or by zeroing.
 * Waiting parks a task, never its worker; on a plain OS thread it blocks the
 * thread. Objects must not be copied after first use (Go's rule).
 * Misuse returns CSP_EINVAL and leaves the object unchanged.
 */
#ifndef CSP_SYNC_H
#define CSP_SYNC_H

#include "common.h"
#include "ctx.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- WaitGroup ---- */
typedef struct csp_wg { uint64_t _opaque[4]; } csp_wg_t;
#define CSP_WG_INIT {{0, 0, 0, 0}}

/* Adds delta (may be negative) to the counter. When it reaches 0 every waiter
 * is released. 0, or CSP_EINVAL (wg NULL; the counter would go below 0 or above
 * INT32_MAX: the counter is left unchanged). Never blocks. */
CSP_EXTERN int csp_wg_add(csp_wg_t *wg, int delta);
/* csp_wg_add(wg, -1). */
CSP_EXTERN int csp_wg_done(csp_wg_t *wg);
/* Blocks until the counter is 0 (returns at once if it is). 0, CSP_EINVAL (wg
 * NULL), CSP_ESHUTDOWN (runtime stopping). The wg may be freed as soon as wait
 * returns 0 (Go's rule); done() never touches the wg after the wake-up. */
CSP_EXTERN int csp_wg_wait(csp_wg_t *wg);

/* ---- Mutex (Go's sync.Mutex) ----
 * Not reentrant; any task or thread may unlock a mutex another locked (Go's
 * rule). Contended lockers spin briefly, then park in FIFO order; a waiter
 * that has waited over 1 ms switches the mutex to starvation mode, in which
 * unlock hands the lock straight to the oldest waiter (Go's fairness). */
typedef struct csp_mutex { uint64_t _opaque[4]; } csp_mutex_t;
#define CSP_MUTEX_INIT {{0, 0, 0, 0}}
/* Locks m, blocking while another holds it. 0, CSP_EINVAL (NULL),
 * CSP_ESHUTDOWN (runtime stopping; m not acquired). */
CSP_EXTERN int csp_mutex_lock(csp_mutex_t *m);
/* 0 if it locked m, CSP_EAGAIN if m is held, CSP_EINVAL (NULL). Never blocks. */
CSP_EXTERN int csp_mutex_trylock(csp_mutex_t *m);
/* Like lock, giving up at deadline: CSP_ETIMEDOUT (m not acquired). A
 * deadline of 0 polls (CSP_EAGAIN if m is held, like trylock); a deadline
 * already past still makes one attempt. */
CSP_EXTERN int csp_mutex_lock_until(csp_mutex_t *m, csp_time_t deadline);
/* Unlocks m, waking one waiter. 0, CSP_EINVAL (NULL or not locked: m is left
 * unchanged). Never blocks. */
CSP_EXTERN int csp_mutex_unlock(csp_mutex_t *m);

/* ---- RWMutex (Go's sync.RWMutex) ----
 * Many readers or one writer. A waiting writer blocks new readers, so writers
 * are not starved; readers waiting behind a writer get in when it unlocks. */
typedef struct csp_rwmutex { uint64_t _opaque[8]; } csp_rwmutex_t;
#define CSP_RWMUTEX_INIT {{0, 0, 0, 0, 0, 0, 0, 0}}
/* Shared lock. 0, CSP_EINVAL (NULL; or 2^30-1 readers already), CSP_ESHUTDOWN.
 * May block. */
CSP_EXTERN int csp_rwmutex_rlock(csp_rwmutex_t *m);
/* 0 or CSP_EAGAIN (a writer holds or waits for it). Never blocks. */
CSP_EXTERN int csp_rwmutex_tryrlock(csp_rwmutex_t *m);
/* Drops a shared lock. CSP_EINVAL if no reader holds it (unchanged). */
CSP_EXTERN int csp_rwmutex_runlock(csp_rwmutex_t *m);
/* Exclusive lock. 0, CSP_EINVAL (NULL), CSP_ESHUTDOWN. May block. */
CSP_EXTERN int csp_rwmutex_lock(csp_rwmutex_t *m);
/* 0 or CSP_EAGAIN. Never blocks. */
CSP_EXTERN int csp_rwmutex_trylock(csp_rwmutex_t *m);
/* Drops the exclusive lock. CSP_EINVAL if not write-locked (unchanged). */
CSP_EXTERN int csp_rwmutex_unlock(csp_rwmutex_t *m);

/* ---- Cond (Go's sync.Cond) ----
 * No spurious wake-ups: a wait returns only after a signal or broadcast that
 * came after it started waiting (or on timeout/shutdown). As in Go, callers
 * still re-check their condition in a loop, since another task may run
 * between the signal and the waiter's relock. */
typedef struct csp_cond { uint64_t _opaque[4]; } csp_cond_t;
#define CSP_COND_INIT {{0, 0, 0, 0}}
/* Atomically unlocks m (which the caller holds) and waits; relocks m before
 * returning, whatever the result. 0, CSP_EINVAL (NULL c or m, or m not
 * locked), CSP_ESHUTDOWN. Blocks. */
CSP_EXTERN int csp_cond_wait(csp_cond_t *c, csp_mutex_t *m);
/* Like wait, giving up at deadline with CSP_ETIMEDOUT (m relocked). A
 * deadline of 0 returns CSP_EAGAIN and one already past CSP_ETIMEDOUT, in
 * both cases without releasing m. */
CSP_EXTERN int csp_cond_wait_until(csp_cond_t *c, csp_mutex_t *m, csp_time_t deadline);
/* Wakes the longest-waiting waiter, if any. 0, CSP_EINVAL. Never blocks. */
CSP_EXTERN int csp_cond_signal(csp_cond_t *c);
/* Wakes every waiter. 0, CSP_EINVAL. Never blocks. */
CSP_EXTERN int csp_cond_broadcast(csp_cond_t *c);

/* ---- Once (Go's sync.Once) ---- */
typedef struct csp_once { uint64_t _opaque[4]; } csp_once_t;
#define CSP_ONCE_INIT {{0, 0, 0, 0}}
/* Runs fn(arg) if no call on this once has run it yet; concurrent callers
 * block until it has returned (so every return happens after fn). 0,
 * CSP_EINVAL (NULL once or fn), CSP_ESHUTDOWN. fn must not call csp_once on
 * the same once (deadlock, as in Go). */
CSP_EXTERN int csp_once(csp_once_t *once, void (*fn)(void *), void *arg);
/* 1 if fn has completed, 0 if not, CSP_EINVAL for NULL. Never blocks. */
CSP_EXTERN int csp_once_done(csp_once_t *once);

/* ---- Pool (Go's sync.Pool) ----
 * A cache of interchangeable objects with per-worker caches: get/put from a
 * task touch no lock and no shared cache line unless its worker's cache is
 * empty/full. Unlike Go there is no garbage collector: the pool keeps at most
 * a bounded number of objects (per-worker caches plus a shared overflow of
 * CSP_POOL_SHARED_MAX) and hands the ones it drops to free_fn. */
typedef struct csp_pool {
    void *(*new_fn)(void *arg);             /* may be NULL: get returns NULL when empty */
    void  (*free_fn)(void *item, void *arg); /* may be NULL: dropped items are not freed */
    void   *arg;
    uint64_t _opaque[5];
} csp_pool_t;
#define CSP_POOL_INIT(new_fn, free_fn, arg) { (new_fn), (free_fn), (arg), {0, 0, 0, 0, 0} }
#define CSP_POOL_SHARED_MAX 4096
/* (With free_fn NULL, objects the pool drops -- beyond its bound, or at
 * destroy -- are not freed: give a free_fn unless they are static.) */
/* Initialises p (same as CSP_POOL_INIT). 0, CSP_EINVAL (p NULL). */
CSP_EXTERN int csp_pool_init(csp_pool_t *p, void *(*new_fn)(void *arg),
                             void (*free_fn)(void *item, void *arg), void *arg);
/* A cached object (ownership passes to the caller), else new_fn(arg), else
 * NULL. NULL for p NULL. Never blocks (new_fn may). */
CSP_EXTERN void *csp_pool_get(csp_pool_t *p);
/* Gives x to the pool (ownership passes to it). NULL x is ignored. 0,
 * CSP_EINVAL (p NULL). Never blocks. */
CSP_EXTERN int csp_pool_put(csp_pool_t *p, void *x);
/* Frees every cached object with free_fn and the pool's caches; the pool is
 * empty and reusable afterwards. Must not race with get/put. NULL: no-op. */
CSP_EXTERN void csp_pool_destroy(csp_pool_t *p);

/* ---- Weighted semaphore (golang.org/x/sync/semaphore) ----
 * FIFO: a large request at the head is not overtaken by smaller ones. */
typedef struct csp_sem { int64_t _size; uint64_t _opaque[5]; } csp_sem_t;
#define CSP_SEM_INIT(size) { (size), {0, 0, 0, 0, 0} }
/* Initialises s with capacity size (>= 0). 0, CSP_EINVAL. */
CSP_EXTERN int csp_sem_init(csp_sem_t *s, int64_t size);
/* Acquires n (0 <= n <= size) units, blocking until they are free or ctx is
 * done. 0, CSP_ECANCELED/CSP_EDEADLINE (ctx done: nothing acquired),
 * CSP_EINVAL (NULL s or ctx, n < 0 or n > size: could never succeed),
 * CSP_ESHUTDOWN. If the units are free it succeeds even if ctx is done. */
CSP_EXTERN int csp_sem_acquire(csp_sem_t *s, int64_t n, csp_ctx_t *ctx);
/* 0 if n units were free and are now acquired, else CSP_EAGAIN (also when
 * others are queued). CSP_EINVAL as above. Never blocks. */
CSP_EXTERN int csp_sem_try_acquire(csp_sem_t *s, int64_t n);
/* Releases n units, waking waiters in order. 0, CSP_EINVAL (NULL, n < 0, or
 * more than are held: s unchanged). Never blocks. */
CSP_EXTERN int csp_sem_release(csp_sem_t *s, int64_t n);

/* ---- errgroup (golang.org/x/sync/errgroup) ----
 *   csp_errgroup_t g = CSP_ERRGROUP_INIT;   // or csp_errgroup_with_ctx
 *   csp_errgroup_go(&g, fetch, url);        // int fetch(void *arg)
 *   int err = csp_errgroup_wait(&g);        // the first non-zero result
 */
typedef struct csp_errgroup { uint64_t _opaque[16]; } csp_errgroup_t;
#define CSP_ERRGROUP_INIT {{0}}
/* Initialises g (same as CSP_ERRGROUP_INIT). 0, CSP_EINVAL. */
CSP_EXTERN int csp_errgroup_init(csp_errgroup_t *g);
/* Initialises g with a context derived from parent that is cancelled (cause:
 * the error) when a function first returns non-zero, or when wait returns.
 * *ctx_out (borrowed from g) stays valid until csp_errgroup_wait returns;
 * retain it to keep it longer. 0, CSP_EINVAL (NULL argument), CSP_ENOMEM. */
CSP_EXTERN int csp_errgroup_with_ctx(csp_errgroup_t *g, csp_ctx_t *parent, csp_ctx_t **ctx_out);
/* At most limit functions run at once (limit < 0: no limit, the default).
 * 0, CSP_EINVAL (NULL, limit 0, or functions are running). */
CSP_EXTERN int csp_errgroup_set_limit(csp_errgroup_t *g, int limit);
/* Runs fn(arg) in a new task, first waiting (blocking) for a free slot if a
 * limit is set. 0, CSP_EINVAL (NULL g or fn), CSP_ENOMEM, CSP_ESHUTDOWN. */
CSP_EXTERN int csp_errgroup_go(csp_errgroup_t *g, int (*fn)(void *arg), void *arg);
/* Like go, but CSP_EAGAIN instead of waiting for a slot. */
CSP_EXTERN int csp_errgroup_try_go(csp_errgroup_t *g, int (*fn)(void *arg), void *arg);
/* Blocks until every function has returned; returns the first non-zero
 * result (0 if none), cancels and releases the derived context. The group
 * may be reused (re-initialise it) after wait. CSP_EINVAL for NULL. */
CSP_EXTERN int csp_errgroup_wait(csp_errgroup_t *g);

/* ---- singleflight (golang.org/x/sync/singleflight) ----
 * Concurrent calls with the same key share one execution of fn. */
typedef struct csp_singleflight { uint64_t _opaque[4]; } csp_singleflight_t;
#define CSP_SINGLEFLIGHT_INIT {{0, 0, 0, 0}}
/* If no call with this key (key_len bytes, compared by content) is in
 * flight, runs fn(arg, out) on the calling task and returns its result;
 * otherwise blocks until the in-flight call finishes and returns its result
 * with a copy of its output: out_size bytes of the leader's out (the caller's
 * out is zero-filled past the leader's out_size). *shared (may be NULL) is
 * set to 1 if the result was given to more than one caller. fn's return
 * value is returned as is (use 0 or negative codes). CSP_EINVAL (NULL g,
 * key with key_len > 0, or fn; out NULL with out_size > 0), CSP_ENOMEM,
 * CSP_ESHUTDOWN. */
CSP_EXTERN int csp_singleflight_do(csp_singleflight_t *g, const void *key, size_t key_len,
                                   int (*fn)(void *arg, void *out), void *arg, void *out,
                                   size_t out_size, int *shared);
/* (A follower whose leader's runtime stopped gets CSP_ESHUTDOWN with out and
 * *shared untouched; fn calling do on its own key deadlocks, as in Go;
 * key_len above UINT32_MAX is CSP_EINVAL.) */
/* Forgets key: the next call runs fn again even if one is in flight.
 * 0, CSP_EINVAL. Never blocks. */
CSP_EXTERN int csp_singleflight_forget(csp_singleflight_t *g, const void *key, size_t key_len);
/* Frees g's table. No call may be in flight. NULL: no-op. */
CSP_EXTERN void csp_singleflight_destroy(csp_singleflight_t *g);

#ifdef __cplusplus
}
#endif
#endif /* CSP_SYNC_H */
