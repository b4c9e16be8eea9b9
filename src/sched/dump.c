/* Task dumps: csp_tasks() (a snapshot as data), csp_dump() (as text), the
 * SIGQUIT handler, and the timing of waits.
 *
 * No stop-the-world: a task that never yields would stop the dump with it,
 * and that is when a dump is wanted most. The dump walks every stack slot
 * (csp__stacks_foreach: slots are never unmapped while the runtime runs) and
 * reads each live task's fields racily, as a seqlock reader would: id first,
 * then the rest, then (after an acquire fence) live and id again. A slot
 * freed and reused meanwhile shows a new id, and the task is skipped. Every
 * field read here is written with relaxed atomics (spawn, park, switches:
 * plain stores on x86, no cost) so the reads are not data races.
 *
 * Async-signal-safe path (the SIGQUIT handler): no malloc, no stdio, no
 * locks. Lines are formatted into a buffer on the stack and written with
 * write(2). Symbol names (dladdr: the loader's lock) only outside handlers.
 *
 * Lifetime: callers outside the runtime's own teardown hold csp__ext_enter,
 * so stacks are not unmapped under the walk (the teardown waits for it).
 *
 * Wait timing: a park reads the clock only once csp__wait_timing is set (the
 * first dump sets it, or env CSP_WAIT_TIMES=1): the coarse clock costs ~8 ns,
 * a tenth of a channel hand-off. A dump that finds a waiting task with no
 * time stamps it with minus the dump's time: later dumps say "at least".
 */
#define _GNU_SOURCE
#include "sched.h"

#include <dlfcn.h>
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Alone on its line: read by every park, written once or twice per run. */
_Alignas(64) _Atomic int csp__wait_timing;
static char wait_timing_pad[64 - sizeof(int)] __attribute__((unused));

csp_time_t csp__coarse_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (csp_time_t)ts.tv_sec * CSP_SECOND + ts.tv_nsec;
}

/* ---- one task ---- */

/* Reads t into *ti. False if t is not a live task (any more). now: the
 * coarse clock. Async-signal-safe. */
static bool snapshot(csp__task_t *t, csp_task_info_t *ti, csp_time_t now)
{
    uint64_t id = __atomic_load_n(&t->id, __ATOMIC_RELAXED);
    uint32_t st = atomic_load_explicit(&t->status, memory_order_relaxed);
    ti->id = id;
    ti->parent = __atomic_load_n(&t->parent, __ATOMIC_RELAXED);
    ti->spawn_pc = __atomic_load_n(&t->spawn_pc, __ATOMIC_RELAXED);
    size_t i = 0;
    for (; i < sizeof ti->name - 1; i++) {
        char c = __atomic_load_n(&t->name[i], __ATOMIC_RELAXED);
        if (!c)
            break;
        ti->name[i] = c;
    }
    ti->name[i] = 0;
    ti->worker = -1;
    ti->wait_reason = NULL;
    ti->wait_obj = NULL;
    ti->waited = -1;
    ti->wait_at_least = 0;
    switch (st & 0xff) {
    case CSP__TS_RUNNABLE:
        ti->state = CSP_TASK_RUNNABLE;
        break;
    case CSP__TS_RUNNING:
        ti->state = CSP_TASK_RUNNING;
        ti->worker = (int)(st >> 8) - 1;
        break;
    case CSP__TS_WAITING: {
        ti->state = CSP_TASK_WAITING;
        ti->wait_reason = __atomic_load_n(&t->wait_reason, __ATOMIC_RELAXED);
        ti->wait_obj = __atomic_load_n(&t->wait_obj, __ATOMIC_RELAXED);
        csp_time_t since = __atomic_load_n(&t->wait_since, __ATOMIC_RELAXED);
        if (since == 0) {
            /* untimed park: time it from now on (a park that replaced it
             * meanwhile started before this CAS, so "at least" still holds) */
            csp_time_t zero = 0;
            __atomic_compare_exchange_n(&t->wait_since, &zero, -now, false, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED);
        } else if (since > 0) {
            ti->waited = now > since ? now - since : 0;
        } else {
            ti->waited = now > -since ? now + since : 0;
            ti->wait_at_least = 1;
        }
        break;
    }
    default:
        return false; /* exiting */
    }
    /* acquire: orders the reads above before the re-check (seqlock reader) */
    atomic_thread_fence(memory_order_acquire);
    return atomic_load_explicit(&t->live, memory_order_relaxed) &&
           __atomic_load_n(&t->id, __ATOMIC_RELAXED) == id;
}

/* ---- text, async-signal-safe ---- */

typedef struct {
    int    fd;
    int    failed;
    size_t len;
    char   buf[1024];
} out_t;

static void out_flush(out_t *o)
{
    size_t off = 0;
    while (off < o->len && !o->failed) {
        ssize_t n = write(o->fd, o->buf + off, o->len - off);
        if (n > 0)
            off += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else
            o->failed = 1;
    }
    o->len = 0;
}

static void out_ch(out_t *o, char c)
{
    if (o->len == sizeof o->buf)
        out_flush(o);
    o->buf[o->len++] = c;
}

static void out_str(out_t *o, const char *s)
{
    while (*s)
        out_ch(o, *s++);
}

static void out_u64(out_t *o, uint64_t v)
{
    char d[20];
    int n = 0;
    do
        d[n++] = (char)('0' + v % 10);
    while ((v /= 10) != 0);
    while (n)
        out_ch(o, d[--n]);
}

static void out_hex(out_t *o, uintptr_t v)
{
    char d[16];
    int n = 0;
    do
        d[n++] = "0123456789abcdef"[v & 15];
    while ((v >>= 4) != 0);
    out_str(o, "0x");
    while (n)
        out_ch(o, d[--n]);
}

/* 850 ns, 12 us, 340 ms, 4.2 s, 3 min */
static void out_dur(out_t *o, csp_duration_t d)
{
    if (d < CSP_MICROSECOND) {
        out_u64(o, (uint64_t)d);
        out_str(o, " ns");
    } else if (d < CSP_MILLISECOND) {
        out_u64(o, (uint64_t)(d / CSP_MICROSECOND));
        out_str(o, " us");
    } else if (d < CSP_SECOND) {
        out_u64(o, (uint64_t)(d / CSP_MILLISECOND));
        out_str(o, " ms");
    } else if (d < 600 * CSP_SECOND) {
        out_u64(o, (uint64_t)(d / CSP_SECOND));
        out_ch(o, '.');
        out_u64(o, (uint64_t)(d % CSP_SECOND / (100 * CSP_MILLISECOND)));
        out_str(o, " s");
    } else {
        out_u64(o, (uint64_t)(d / (60 * CSP_SECOND)));
        out_str(o, " min");
    }
}

static void out_task(out_t *o, const csp_task_info_t *ti, bool symbols)
{
    out_str(o, "  task ");
    out_u64(o, ti->id);
    if (ti->name[0]) {
        out_str(o, " \"");
        out_str(o, ti->name);
        out_ch(o, '"');
    }
    if (ti->parent) {
        out_str(o, " (parent ");
        out_u64(o, ti->parent);
        out_ch(o, ')');
    }
    out_str(o, ": ");
    switch (ti->state) {
    case CSP_TASK_RUNNING:
        out_str(o, "running on worker ");
        out_u64(o, (uint64_t)ti->worker);
        break;
    case CSP_TASK_WAITING:
        out_str(o, "waiting in ");
        out_str(o, ti->wait_reason ? ti->wait_reason : "?");
        if (ti->wait_obj) {
            out_str(o, " on ");
            out_hex(o, (uintptr_t)ti->wait_obj);
        }
        if (ti->waited >= 0) {
            out_str(o, ti->wait_at_least ? " for at least " : " for ");
            out_dur(o, ti->waited);
        }
        break;
    default:
        out_str(o, "runnable");
        break;
    }
    if (ti->spawn_pc) {
        out_str(o, ", created at ");
        out_hex(o, (uintptr_t)ti->spawn_pc);
        Dl_info dl;
        if (symbols && dladdr(ti->spawn_pc, &dl) && dl.dli_fname) {
            const char *base = strrchr(dl.dli_fname, '/');
            out_str(o, " (");
            out_str(o, base ? base + 1 : dl.dli_fname);
            out_ch(o, '+');
            out_hex(o, (uintptr_t)ti->spawn_pc - (uintptr_t)dl.dli_fbase);
            if (dl.dli_sname && dl.dli_saddr) {
                out_str(o, ", in ");
                out_str(o, dl.dli_sname);
                out_ch(o, '+');
                out_hex(o, (uintptr_t)ti->spawn_pc - (uintptr_t)dl.dli_saddr);
            }
            out_ch(o, ')');
        }
    }
    out_ch(o, '\n');
}

typedef struct {
    out_t     *o;
    bool       symbols;
    int        max;
    int        n;
    csp_time_t now;
} dump_walk_t;

static void dump_one(csp__task_t *t, void *arg)
{
    dump_walk_t *d = arg;
    csp_task_info_t ti;
    if (!snapshot(t, &ti, d->now))
        return;
    if (d->max <= 0 || d->n < d->max)
        out_task(d->o, &ti, d->symbols);
    d->n++;
}

int csp__dump_tasks(int fd, bool symbols, int max)
{
    out_t o;
    o.fd = fd;
    o.failed = 0;
    o.len = 0;
    dump_walk_t d = { &o, symbols, max, 0, csp__coarse_now() };
    csp__stacks_foreach(dump_one, &d);
    if (max > 0 && d.n > max) {
        out_str(&o, "  ... and ");
        out_u64(&o, (uint64_t)(d.n - max));
        out_str(&o, " more\n");
    }
    out_flush(&o);
    return o.failed ? -1 : d.n;
}

/* A whole dump with its header and footer. Caller holds ext_enter. */
static int dump_all(int fd, bool symbols)
{
    out_t o;
    o.fd = fd;
    o.failed = 0;
    o.len = 0;
    int nw = csp__rt.nworkers;
    out_str(&o, "libcsp: task dump: ");
    out_u64(&o, (uint64_t)nw);
    out_str(&o, nw == 1 ? " worker, " : " workers, ");
    out_u64(&o, (uint64_t)atomic_load_explicit(&csp__rt.npidle, memory_order_relaxed));
    out_str(&o, " idle, ");
    out_u64(&o, (uint64_t)atomic_load_explicit(&csp__rt.nspinning, memory_order_relaxed));
    out_str(&o, " spinning; global queue ");
    out_u64(&o, (uint64_t)atomic_load_explicit(&csp__rt.gq_n, memory_order_relaxed));
    out_str(&o, "; queued per worker:");
    for (int i = 0; i < nw; i++) {
        csp__worker_t *w = csp__rt.workers[i];
        /* racy counts (relaxed loads of the queue indexes): a hint */
        uint32_t rq = atomic_load_explicit(&w->runq_tail, memory_order_relaxed) -
                      atomic_load_explicit(&w->runq_head, memory_order_relaxed);
        int64_t cq = atomic_load_explicit(&w->cq_bottom, memory_order_relaxed) -
                     atomic_load_explicit(&w->cq_top, memory_order_relaxed);
        rq += atomic_load_explicit(&w->runnext, memory_order_relaxed) != NULL;
        out_ch(&o, ' ');
        out_u64(&o, (uint64_t)rq + (uint64_t)(cq > 0 ? cq : 0));
    }
    out_ch(&o, '\n');
    out_flush(&o);
    int n = csp__dump_tasks(fd, symbols, 0);
    if (n >= 0) {
        out_str(&o, "libcsp: ");
        out_u64(&o, (uint64_t)n);
        out_str(&o, n == 1 ? " task\n" : " tasks\n");
        out_flush(&o);
    }
    return n < 0 || o.failed ? -1 : n;
}

/* ---- public ---- */

typedef struct {
    csp_task_info_t *out;
    size_t           cap, n;
    csp_time_t       now;
} collect_t;

static void collect_one(csp__task_t *t, void *arg)
{
    collect_t *c = arg;
    csp_task_info_t ti;
    if (!snapshot(t, &ti, c->now))
        return;
    if (c->n < c->cap)
        c->out[c->n] = ti;
    c->n++;
}

CSP_EXTERN int csp_tasks(csp_task_info_t *out, size_t cap, size_t *n)
{
    if (!n || (!out && cap))
        return CSP_EINVAL;
    if (!csp__ext_enter(CSP__RT_RUNNING, CSP__RT_SHUTDOWN))
        return CSP_ESTATE;
    atomic_store_explicit(&csp__wait_timing, 1, memory_order_relaxed);
    collect_t c = { out, cap, 0, csp__coarse_now() };
    csp__stacks_foreach(collect_one, &c);
    csp__ext_exit();
    *n = c.n;
    return 0;
}

CSP_EXTERN int csp_dump(int fd)
{
    if (fd < 0)
        return CSP_EINVAL;
    if (!csp__ext_enter(CSP__RT_RUNNING, CSP__RT_SHUTDOWN))
        return CSP_ESTATE;
    atomic_store_explicit(&csp__wait_timing, 1, memory_order_relaxed);
    int n = dump_all(fd, true);
    csp__ext_exit();
    return n < 0 ? CSP_EIO : 0;
}

/* ---- SIGQUIT ---- */

enum { QUIT_OFF = 0, QUIT_DIE, QUIT_DUMP };
static int quit_mode;              /* set before the handler is installed */
static _Atomic int quit_installed; /* 1 while our handler is in place */
static struct sigaction quit_old;

static void quit_handler(int sig)
{
    (void)sig;
    int saved = errno;
    if (csp__ext_enter(CSP__RT_RUNNING, CSP__RT_SHUTDOWN)) {
        atomic_store_explicit(&csp__wait_timing, 1, memory_order_relaxed);
        dump_all(2, false);
        csp__ext_exit();
    }
    if (quit_mode == QUIT_DIE) {
        /* die of SIGQUIT as without us (it is blocked in here: delivered,
         * with the default action, when the handler returns) */
        struct sigaction dfl;
        memset(&dfl, 0, sizeof dfl);
        dfl.sa_handler = SIG_DFL;
        sigemptyset(&dfl.sa_mask);
        sigaction(SIGQUIT, &dfl, NULL);
        raise(SIGQUIT);
    }
    errno = saved;
}

void csp__dump_setup(void)
{
    const char *e = getenv("CSP_WAIT_TIMES");
    atomic_store_explicit(&csp__wait_timing, e && e[0] == '1', memory_order_relaxed);
    e = getenv("CSP_SIGQUIT");
    if (e && e[0] == '0')
        return;
    quit_mode = e && strcmp(e, "dump") == 0 ? QUIT_DUMP : QUIT_DIE;
    struct sigaction cur;
    if (sigaction(SIGQUIT, NULL, &cur) != 0 || (cur.sa_flags & SA_SIGINFO) ||
        cur.sa_handler != SIG_DFL)
        return; /* the program handles (or ignores) SIGQUIT itself */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = quit_handler;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_ONSTACK;
    if (sigaction(SIGQUIT, &sa, &quit_old) == 0)
        atomic_store(&quit_installed, 1);
}

void csp__dump_teardown(void)
{
    if (!atomic_exchange(&quit_installed, 0))
        return;
    struct sigaction cur;
    /* put the old action back only if ours is still the one in place */
    if (sigaction(SIGQUIT, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
        cur.sa_handler == quit_handler)
        sigaction(SIGQUIT, &quit_old, NULL);
}
