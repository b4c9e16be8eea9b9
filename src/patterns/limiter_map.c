/* csp_limiter_map_t: one token bucket per key, for per-client limits, with
 * eviction of idle keys.
 *
 * Layout
 *   table       uthash table of lm_entry_t keyed by the key's bytes; under
 *               lock. Each entry holds one reference to its bucket.
 *   next_sweep  when the next automatic eviction pass is due; under lock.
 *   rate, burst, ttl  immutable after creation.
 *
 * Invariants (under lock)
 *   - Every entry's bucket has refs >= 1 (the map's). New references to a
 *     map bucket are handed out only by csp_limiter_map_get, under the lock;
 *     so with the lock held, refs == 1 means nobody else holds the bucket
 *     and nobody can obtain it: evicting it is invisible to callers.
 *   - An entry is evicted only if refs == 1, it was last handed out at
 *     least ttl ago, and its bucket is full at the time of the pass (a new
 *     bucket for the same key would start full: no client gains tokens).
 *
 * Lock order: the map lock, then a bucket lock (the eviction check reads
 * the bucket's tokens under both); bucket operations (wait, allow) run
 * after the map lock is dropped, holding a reference. uthash may
 * malloc/free its bucket arrays inside HASH_ADD / HASH_DEL under the lock;
 * entries and buckets are allocated and freed outside it. The lock is a
 * spinlock, held for a table operation or one eviction pass, never across
 * a switch.
 *
 * Atomics: only the buckets' reference counts (limiter_internal.h).
 */
#include <stdlib.h>
#include <string.h>

#include "limiter_internal.h"

#define HASH_NONFATAL_OOM 1 /* an add that cannot allocate leaves hh.tbl NULL */
#include <uthash.h>

typedef struct lm_entry {
    UT_hash_handle hh;        /* under the map lock */
    csp_limiter_t *lim;       /* the map's reference */
    csp_time_t     last_used; /* under the map lock: when last handed out */
    size_t         key_len;
    unsigned char  key[];     /* a copy of the key */
} lm_entry_t;

struct csp_limiter_map {
    csp__spinlock_t lock;
    lm_entry_t     *table;      /* under lock */
    csp_time_t      next_sweep; /* under lock */
    size_t          count;      /* under lock */
    double          rate;
    int             burst;
    csp_duration_t  ttl;
};

static const unsigned char empty_key[1];

CSP_EXTERN csp_limiter_map_t *csp_limiter_map_new(double rate, int burst, csp_duration_t idle_ttl)
{
    if (idle_ttl < 0)
        return NULL;
    /* validate rate and burst exactly as csp_limiter_new does */
    csp_limiter_t *probe = csp_limiter_new(rate, burst);
    if (!probe)
        return NULL;
    csp_limiter_release(probe);
    csp_limiter_map_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->rate = rate;
    m->burst = burst;
    m->ttl = idle_ttl;
    m->next_sweep = csp_now() + (idle_ttl > 0 ? idle_ttl : CSP_SECOND);
    return m;
}

CSP_EXTERN void csp_limiter_map_release(csp_limiter_map_t *m)
{
    if (!m)
        return;
    lm_entry_t *e, *tmp;
    HASH_ITER(hh, m->table, e, tmp)
    {
        HASH_DEL(m->table, e);
        csp_limiter_release(e->lim);
        free(e);
    }
    free(m);
}

/* One eviction pass (lock held): unlinks evictable entries onto *out
 * (through hh.next, no longer used by the table) and returns how many. */
static size_t sweep_locked(csp_limiter_map_t *m, csp_time_t now, lm_entry_t **out)
{
    size_t n = 0;
    lm_entry_t *e, *tmp;
    HASH_ITER(hh, m->table, e, tmp)
    {
        if (now - e->last_used < m->ttl)
            continue;
        /* acquire: pairs with the releasing decrement of the last other
         * holder, whose bucket writes we then see */
        if (atomic_load_explicit(&e->lim->refs, memory_order_acquire) != 1)
            continue;
        csp__spin_lock(&e->lim->lock);
        bool full = csp__limiter_advance(e->lim, now) >= (double)e->lim->burst;
        csp__spin_unlock(&e->lim->lock);
        if (!full)
            continue;
        HASH_DEL(m->table, e);
        m->count--;
        e->hh.next = *out;
        *out = e;
        n++;
    }
    m->next_sweep = now + (m->ttl > 0 ? m->ttl : CSP_SECOND);
    return n;
}

static void free_evicted(lm_entry_t *list)
{
    while (list) {
        lm_entry_t *next = list->hh.next;
        csp_limiter_release(list->lim); /* the last reference: frees the bucket */
        free(list);
        list = next;
    }
}

CSP_EXTERN size_t csp_limiter_map_evict(csp_limiter_map_t *m)
{
    if (!m)
        return 0;
    lm_entry_t *dead = NULL;
    csp__spin_lock(&m->lock);
    size_t n = sweep_locked(m, csp_now(), &dead);
    csp__spin_unlock(&m->lock);
    free_evicted(dead);
    return n;
}

CSP_EXTERN size_t csp_limiter_map_len(csp_limiter_map_t *m)
{
    if (!m)
        return 0;
    csp__spin_lock(&m->lock);
    size_t n = m->count;
    csp__spin_unlock(&m->lock);
    return n;
}

/* The bucket of key with a new reference, or NULL (*err set). */
static csp_limiter_t *lm_get(csp_limiter_map_t *m, const void *key, size_t key_len, int *err)
{
    if (!m || (!key && key_len > 0) || key_len > 0xffffffffu) {
        *err = CSP_EINVAL;
        return NULL;
    }
    if (!key)
        key = empty_key; /* uthash compares with memcmp: never pass it NULL */
    unsigned hv;
    HASH_VALUE(key, (unsigned)key_len, hv);
    lm_entry_t *fresh = NULL, *dead = NULL;
    csp_limiter_t *lim = NULL;
    for (;;) {
        csp__spin_lock(&m->lock);
        csp_time_t now = csp_now();
        if (now >= m->next_sweep)
            sweep_locked(m, now, &dead);
        lm_entry_t *e = NULL;
        HASH_FIND_BYHASHVALUE(hh, m->table, key, (unsigned)key_len, hv, e);
        if (!e && fresh) {
            HASH_ADD_KEYPTR_BYHASHVALUE(hh, m->table, fresh->key, (unsigned)key_len, hv, fresh);
            if (!fresh->hh.tbl) { /* uthash could not allocate */
                csp__spin_unlock(&m->lock);
                *err = CSP_ENOMEM;
                break;
            }
            m->count++;
            e = fresh;
            fresh = NULL;
        }
        if (e) {
            e->last_used = now;
            /* relaxed: the map's own reference keeps it alive; the lock
             * orders this against eviction's check */
            lim = csp_limiter_retain(e->lim);
            csp__spin_unlock(&m->lock);
            break;
        }
        csp__spin_unlock(&m->lock);
        /* not there: make an entry outside the lock, then look again */
        fresh = malloc(sizeof *fresh + key_len);
        if (!fresh) {
            *err = CSP_ENOMEM;
            break;
        }
        memset(fresh, 0, sizeof *fresh);
        memcpy(fresh->key, key, key_len);
        fresh->key_len = key_len;
        fresh->lim = csp_limiter_new(m->rate, m->burst);
        if (!fresh->lim) {
            free(fresh);
            fresh = NULL;
            *err = CSP_ENOMEM;
            break;
        }
    }
    if (fresh) { /* lost a race for the key, or could not add it */
        csp_limiter_release(fresh->lim);
        free(fresh);
    }
    free_evicted(dead);
    return lim;
}

CSP_EXTERN csp_limiter_t *csp_limiter_map_get(csp_limiter_map_t *m, const void *key,
                                              size_t key_len)
{
    int err = 0;
    return lm_get(m, key, key_len, &err);
}

CSP_EXTERN int csp_limiter_map_allow(csp_limiter_map_t *m, const void *key, size_t key_len,
                                     int n)
{
    if (n < 0)
        return CSP_EINVAL;
    int err = 0;
    csp_limiter_t *l = lm_get(m, key, key_len, &err);
    if (!l)
        return err;
    int rc = csp_limiter_allow_n(l, n);
    csp_limiter_release(l);
    return rc;
}

CSP_EXTERN int csp_limiter_map_wait(csp_limiter_map_t *m, csp_ctx_t *ctx, const void *key,
                                    size_t key_len, int n)
{
    if (!ctx || n < 0)
        return CSP_EINVAL;
    int err = 0;
    csp_limiter_t *l = lm_get(m, key, key_len, &err);
    if (!l)
        return err;
    int rc = csp_limiter_wait_n(l, ctx, n); /* may park: the map lock is not held */
    csp_limiter_release(l);
    return rc;
}
