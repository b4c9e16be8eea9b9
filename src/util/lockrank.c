/* The lock-rank checker (CSP_LOCKRANK builds; see internal.h and
 * docs/internals/locking.md).
 *
 * Per thread, the locks it holds, in acquisition order, with their ranks and
 * where they were taken. Thread-local is right because no lock is ever held
 * across a context switch - which is one of the things checked: a task that
 * parks while holding a lock would carry it to another worker. The checks:
 *   - a ranked lock is taken only above every ranked lock held (equal rank:
 *     channel locks in increasing address order, as select takes them);
 *   - nothing is taken while a leaf lock is held;
 *   - nothing is held at a context switch or when a worker goes to sleep.
 * A violation panics with both locks' ranks and sites. */
#include "../internal.h"

#if defined(CSP_LOCKRANK)
#include <stdio.h>
#include <stdlib.h>

#define MAX_HELD 16

/* One entry per lock, except channel locks taken one after another in
 * address order (select: up to 65535 of them): one entry counts them, with
 * the highest address taken so far. */
typedef struct {
    const void *lock;
    int         rank;
    int         count;
    int         group;  /* a channel group: released by count, not by address */
    const char *file;
    int         line;
} held_t;

static __thread held_t held[MAX_HELD];
static __thread int nheld;

void csp__rank_acquire(const void *lock, int rank, const char *file, int line)
{
    held_t *h = held;
    int n = nheld;
    for (int i = 0; i < n; i++) {
        if (h[i].lock == lock)
            csp__panic("lock rank: %s:%d takes lock %p again (held since %s:%d)", file, line,
                       lock, h[i].file, h[i].line);
        if (h[i].rank == CSP__RANK_LEAF)
            csp__panic("lock rank: %s:%d takes a lock (rank %d) under the leaf lock taken at "
                       "%s:%d",
                       file, line, rank, h[i].file, h[i].line);
        if (rank == CSP__RANK_NONE || h[i].rank == CSP__RANK_NONE)
            continue;
        if (h[i].rank > rank ||
            (h[i].rank == rank && !(rank == CSP__RANK_CHAN && (const char *)h[i].lock <
                                                                    (const char *)lock)))
            csp__panic("lock rank: %s:%d takes rank %d while holding rank %d (taken at %s:%d)",
                       file, line, rank, h[i].rank, h[i].file, h[i].line);
    }
    if (rank == CSP__RANK_CHAN && n > 0 && h[n - 1].rank == CSP__RANK_CHAN) {
        h[n - 1].lock = lock; /* above it, checked: one more in the group */
        h[n - 1].count++;
        h[n - 1].group = 1;
        h[n - 1].file = file;
        h[n - 1].line = line;
        return;
    }
    if (n == MAX_HELD)
        csp__panic("lock rank: %s:%d: more than %d locks held", file, line, MAX_HELD);
    h[n].lock = lock;
    h[n].rank = rank;
    h[n].count = 1;
    h[n].group = 0;
    h[n].file = file;
    h[n].line = line;
    nheld = n + 1;
}

void csp__rank_release(const void *lock)
{
    held_t *h = held;
    int n = nheld;
    int at = -1;
    for (int i = n - 1; i >= 0 && at < 0; i--)
        if (!h[i].group && h[i].lock == lock)
            at = i;
    for (int i = n - 1; i >= 0 && at < 0; i--)
        if (h[i].group && --h[i].count > 0)
            return; /* a channel lock of a group */
        else if (h[i].group)
            at = i;
    if (at >= 0) {
        for (int j = at; j < n - 1; j++)
            h[j] = h[j + 1];
        nheld = n - 1;
        return;
    }
    csp__panic("lock rank: releases lock %p, which this thread does not hold", lock);
}

void csp__rank_check_none(const char *where)
{
    if (nheld)
        csp__panic("lock rank: %d lock(s) held at %s; the last taken at %s:%d (rank %d)", nheld,
                   where, held[nheld - 1].file, held[nheld - 1].line, held[nheld - 1].rank);
}
#else
typedef int csp__lockrank_unused;
#endif
