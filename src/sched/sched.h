/* The scheduler's data structures: tasks (Go's G), workers (Go's M+P fused)
 * and the runtime (Go's sched). Read docs/internals/design.md first.
 *
 * Glossary
 *   task    a user function on its own stack (csp__task_t). Lives in the top of
 *           its stack slot (stack.c), so a spawn is one slot pop.
 *   worker  an OS thread with a run queue, a timer heap and a stack cache
 *           (csp__worker_t). Runs tasks; when it has none, it steals, then
 *           sleeps on its futex.
 *   g0      a worker's own thread stack, where the scheduler loop runs.
 *   waiter  a parked task or a blocked plain thread (wait.c).
 *
 * Task park states (t->pstate; the only cross-thread task field besides the
 * run queues):
 *   RUNNING   running, runnable or about to park.
 *   PARKED    switched out and waiting for csp__ready().
 *   NOTIFIED  csp__ready() arrived before the park completed: the post-switch
 *             step sees it and makes the task runnable again (a permit).
 *   Exactly one csp__ready() per csp__park() (wait.c's CAS on the waiter state
 *   picks the single waker).
 *
 * Post-switch steps. A task never publishes itself (runnable, parked, free)
 * while it still runs on its stack: it records the step in its worker
 * (w->post_op, w->post_task) and the context that is switched to performs it
 * (csp__sched_post) before anything else. That is what makes direct
 * task-to-task switches safe under migration.
 *
 * Lock order (lower first; see docs/internals/locking.md):
 *   timer heap lock (timers run under it)  <  pinned inbox lock
 *   <  global run queue lock  <  idle list lock  <  stack pool lock
 */
#ifndef CSP_SCHED_H
#define CSP_SCHED_H

#include <pthread.h>

#include "../arch/context.h"
#include "../internal.h"

typedef struct csp__task   csp__task_t;
typedef struct csp__worker csp__worker_t;
typedef struct csp__waiter csp__waiter_t;
typedef struct csp__timer  csp__timer_t;

/* ---- timers (timer.c) ---- */
typedef void (*csp__timer_fn)(csp__timer_t *t);
struct csp__timer {
    csp_time_t      when;    /* guarded by heap->lock while queued */
    csp_duration_t  period;  /* > 0: re-queued at when + period after firing */
    csp__timer_fn   fn;      /* runs under heap->lock: keep it short */
    void           *arg;
    int32_t         idx;     /* index in heap, -1 when not queued (under heap lock) */
    uint32_t        gen;     /* csp__rt.gen when added: heaps of an older runtime are gone */
    /* the heap it is queued on / was last removed from; written under that
     * heap's lock with release, read with acquire (csp__timer_del) */
    struct csp__timers *heap;
    struct csp__timers *last_heap;
};
/* A timer must be zeroed (or CSP__TIMER_INIT) before first use. */

typedef struct csp__timers {
    csp__spinlock_t lock;
    csp__timer_t  **heap;    /* 4-ary min-heap on when; guarded by lock */
    uint32_t        len, cap;
    /* earliest `when`, INT64_MAX when empty. Written under lock (seq_cst so
     * that an idle worker's scan and a timer add can't both miss: pairs with
     * rt.sleep_until). Read without the lock. */
    _Atomic int64_t next_when;
} csp__timers_t;

/* ---- tasks ---- */
enum { CSP__PS_RUNNING = 0, CSP__PS_PARKED = 1, CSP__PS_NOTIFIED = 2 };
/* Coarse status for dumps (relaxed, informational only). The low byte is
 * the state; RUNNING carries the worker's index + 1 in the next bits. */
enum { CSP__TS_RUNNABLE = 0, CSP__TS_RUNNING, CSP__TS_WAITING, CSP__TS_DEAD };
#define CSP__TS_RUNNING_ON(w) ((uint32_t)CSP__TS_RUNNING | ((uint32_t)(w)->id + 1) << 8)

struct csp__stack_pool;

struct csp__task {
    csp__ctx_t       ctx;        /* saved registers; owned by whoever runs/resumes it */
    void           (*fn)(void *);
    void            *arg;
    _Atomic uint32_t pstate;     /* CSP__PS_*: see the file comment */
    _Atomic uint32_t status;     /* CSP__TS_* (+ worker): informational (relaxed) */
    uint64_t         id;
    csp__task_t     *next;       /* link: global queue, pinned inbox (under their locks) */
    csp__worker_t   *pinned;     /* non-NULL: runs only on this worker */
    /* what it waits on: waiter is for the shutdown sweep (read with the
     * world stopped). wait_reason, wait_obj and wait_since are for dumps,
     * which read them racily: written and read with relaxed __atomic
     * builtins only (dump.c). wait_since: 0 untimed, > 0 the park's time,
     * < 0 minus the time a dump first saw it waiting (coarse clock). */
    csp__waiter_t   *waiter;
    const char      *wait_reason;
    const void      *wait_obj;
    csp_time_t       wait_since;
    /* set at spawn, before live's store-release; dumps read id, parent,
     * spawn_pc and name with relaxed __atomic loads (a slot reused while a
     * dump reads it shows a new id: the dump re-reads id to notice) */
    uint64_t         parent;
    void            *spawn_pc;
    /* stack slot (stack.c): [lo, lo + size) holds the guard page (maybe),
     * the canary, the stack, and this struct at the very top */
    char            *lo;
    size_t           size;
    struct csp__stack_pool *pool;
    uint16_t         has_guard;
    uint16_t         first_in_chunk; /* its canary is the chunk's zero leading page */
    /* 1 from spawn until it first runs (written by the spawner, then by the
     * task itself; read by whoever displaces it from a runnext, which it is
     * in only while not running). See runq_put. */
    uint16_t         fresh;
    /* 1 from spawn to exit: store-release once the task is initialised,
     * load-acquire by slot walkers (shutdown sweep, teardown, dumps) */
    _Atomic uint32_t live;
    void            *tsan_fiber; /* CSP_TSAN */
#if defined(CSP_DEBUG) || defined(CSP_ASAN)
    _Atomic uint32_t on_cpu;     /* debug: 1 while some worker runs it */
#endif
    char             name[32];
};

/* ---- workers ---- */
#define CSP__RUNQ_SIZE 256u
#define CSP__CQ_SIZE 256       /* continuation deque */
#define CSP__CACHE_MAX 512u    /* stack slots cached per worker */
#define CSP__CACHE_BATCH 128u  /* moved to/from the global pool at once */

/* ---- small-object caches (objcache.c) ---- */
enum { CSP__OBJ_CTX = 0, CSP__OBJ_NCLASS };
#define CSP__OBJ_CACHE_MAX 256u   /* free objects per worker and class */
#define CSP__OBJ_BATCH 64u        /* moved to/from the global pool at once */
#define CSP__OBJ_POOL_MAX 8192u   /* free objects kept in a class's global pool */
struct csp__obj_cache { uint32_t n; void *slot[CSP__OBJ_CACHE_MAX]; };

enum {
    CSP__POST_NONE = 0,
    CSP__POST_YIELD,   /* put post_task at the tail of the local run queue */
    CSP__POST_PARK,    /* PARKED, unless NOTIFIED meanwhile */
    CSP__POST_EXIT,    /* free post_task's stack slot */
    CSP__POST_CONT     /* push post_task on the continuation deque (child-first spawn) */
};

struct csp__worker {
    /* --- owner only (this worker's thread) --- */
    int              id;
    csp__task_t     *cur;        /* running task, NULL on g0 */
    csp__ctx_t       g0;         /* scheduler loop context on the thread stack */
    int              post_op;
    csp__task_t     *post_task;
    uint32_t         tick;       /* schedule count: every 61st looks at the global queue */
    uint32_t         runnext_streak; /* consecutive runnext picks (fairness) */
    uint64_t         rng;
    int              spinning;
    uint64_t         id_next, id_end;   /* block of task ids */
    /* statistics: written by the owner only (relaxed), read by csp_stats */
    _Atomic int64_t  live_delta;        /* tasks spawned - exited here */
    _Atomic uint64_t spawned, steals, parks, sleeps;
    _Atomic int      wake_spinning;     /* set by wakep: start spinning when woken */
    void            *g0_stack_lo;       /* sanitizer annotations */
    size_t           g0_stack_size;
    void            *g0_tsan_fiber;
    void            *asan_fake;         /* scratch for fiber annotations */
    /* free stack slots of the default size (stack.c), owner only */
    struct csp__stack_cache { uint32_t n; csp__task_t *slot[CSP__CACHE_MAX]; } scache;
    /* free small objects by class (objcache.c), owner only */
    struct csp__obj_cache ocache[CSP__OBJ_NCLASS];
    pthread_t        thread;
    int              own_thread;        /* created by the runtime (joined at stop) */
    /* per victim: the deque top this worker last saw there, and when
     * (cq_aged; owner only; nworkers entries) */
    struct csp__cq_seen { int64_t top; csp_time_t at; } *cq_seen;

    /* --- run queue (Go's runq): owner puts at tail, anyone takes at head --- */
    _Atomic uint32_t runq_head CSP__ALIGNED_CL; /* CAS by owner and thieves */
    _Atomic uint32_t runq_tail;  /* store-release by owner only */
    csp__task_t *_Atomic runq[CSP__RUNQ_SIZE];
    csp__task_t *_Atomic runnext CSP__ALIGNED_CL;  /* owner sets; owner/thieves CAS to take */

    /* --- continuations (child-first spawns): a Chase-Lev deque. The owner
     * pushes and pops at the bottom (LIFO: the newest continuation is the
     * parent of the child that just finished - depth-first, like Cilk);
     * thieves take the oldest at the top (the biggest piece of work). --- */
    _Atomic int64_t  cq_top CSP__ALIGNED_CL;    /* CAS by owner (last item) and thieves */
    _Atomic int64_t  cq_bottom CSP__ALIGNED_CL; /* owner only writes */
    csp__task_t *_Atomic cq_buf[CSP__CQ_SIZE];

    /* --- pinned tasks readied by others: under pin_lock --- */
    csp__spinlock_t  pin_lock CSP__ALIGNED_CL;
    csp__task_t     *pin_head, *pin_tail;
    _Atomic uint32_t pin_n;      /* hint, read without the lock */

    /* --- sleeping --- */
    _Atomic uint32_t park_seq CSP__ALIGNED_CL; /* futex word: bumped by every wake */
    int              idle;       /* on the idle list; under rt.idle_lock */
    csp__worker_t   *idle_next;  /* under rt.idle_lock */

    csp__timers_t    timers CSP__ALIGNED_CL;
};

/* ---- the runtime ---- */
enum { CSP__RT_STOPPED = 0, CSP__RT_STARTING, CSP__RT_RUNNING,
       CSP__RT_SHUTDOWN /* grace: blocking calls fail */, CSP__RT_STOPPING };

typedef struct csp__runtime {
    _Atomic int       state;      /* CSP__RT_*; seq_cst */
    /* non-zero: the fast path (direct task-to-task switch) must go through
     * the scheduler loop instead (stop the world, stopping). Relaxed reads. */
    _Atomic int       interrupt;
    /* written by rt_setup before the workers start and by rt_free after they
     * are joined; plain reads inside the runtime, relaxed __atomic access
     * from csp_workers(), which any thread may call at any time */
    int               nworkers;
    csp__worker_t   **workers;
    size_t            default_stack;
    int               spawn_policy;

    /* global run queue: under gq_lock */
    pthread_mutex_t   gq_lock;
    /* global queue: a ring of task pointers, grown by doubling (under
     * gq_lock). An array, not a list through the tasks: moving a batch of
     * 128 tasks in or out touches no task struct (each in its own stack
     * slot: a cache and TLB miss apiece). */
    csp__task_t     **gq_buf;
    uint32_t          gq_cap, gq_first;
    _Atomic uint32_t  gq_n;       /* written under gq_lock, read racily as a hint */

    /* idle workers: under idle_lock */
    pthread_mutex_t   idle_lock;
    csp__worker_t    *idle_list;
    _Atomic int       npidle;     /* seq_cst: Dekker with run-queue puts (wakep) */
    _Atomic int       nspinning;  /* seq_cst, as above */

    /* the idle worker that sleeps until the next timer, -1 if none */
    _Atomic int       timer_sleeper;
    _Atomic int64_t   sleep_until; /* its deadline; INT64_MAX if none (seq_cst) */

    /* stop the world (shutdown sweep) */
    _Atomic int       stw;          /* 1: workers stop at their next schedule point */
    _Atomic uint32_t  stw_stopped;  /* futex word: workers stopped */
    _Atomic uint32_t  stw_release;  /* futex word: bumped to release them */

    _Atomic uint64_t  ids;          /* task id blocks */
    _Atomic uint32_t  gen;          /* bumped by every start (timer staleness) */
    _Atomic int64_t   live_shared;  /* live-task delta from plain threads */
    _Atomic uint64_t  spawned_shared;

    /* plain threads inside the runtime's structures (spawn, ready); the
     * teardown waits for 0 after setting STOPPING (seq_cst both sides) */
    _Atomic int       ext_refs;

    csp__task_t *_Atomic main_task; /* csp_run's; read by every exiting task */
    _Atomic int       main_done;

    /* global deadlock detection (csp_run only, see check_deadlock): the most
     * threads the process may have for "nobody can wake a task" to hold, 0:
     * detection off. Written before the workers start. deadlock: 1 once
     * detected (CAS by the detecting worker; read by csp_run after the join) */
    int               dl_max_threads;
    _Atomic int       deadlock;
    /* when a check last found threads outside the runtime (relaxed: a rate
     * limit only, written and read by idle workers) */
    _Atomic int64_t   dl_threads_seen;
} csp__runtime_t;

extern csp__runtime_t csp__rt;

/* The worker running the caller, or NULL on a plain thread. Never cache the
 * result across a call that may switch tasks.
 *
 * Read with a volatile asm (memory clobber) rather than a plain __thread
 * access: compilers treat the thread pointer as constant within a function
 * and may reuse it after a switch moved the task to another thread. The asm
 * is re-executed at every use. Initial-exec TLS: libcsp is linked at start-up
 * (static TLS), not dlopen'ed into a process that exhausted its surplus. */
extern __thread csp__worker_t *csp__tls_worker __attribute__((tls_model("initial-exec")));
#if defined(__x86_64__)
static inline csp__worker_t *csp__cur_worker(void)
{
    csp__worker_t *w;
    __asm__ __volatile__("movq csp__tls_worker@gottpoff(%%rip), %0\n\t"
                         "movq %%fs:(%0), %0"
                         : "=r"(w)
                         :
                         : "memory");
    return w;
}
#elif defined(__aarch64__)
static inline csp__worker_t *csp__cur_worker(void)
{
    csp__worker_t *w;
    uintptr_t tp, off;
    __asm__ __volatile__("mrs %1, tpidr_el0\n\t"
                         "adrp %2, :gottprel:csp__tls_worker\n\t"
                         "ldr %2, [%2, #:gottprel_lo12:csp__tls_worker]\n\t"
                         "ldr %0, [%1, %2]"
                         : "=r"(w), "=&r"(tp), "=&r"(off)
                         :
                         : "memory");
    return w;
}
#else
csp__worker_t *csp__cur_worker_slow(void);
static inline csp__worker_t *csp__cur_worker(void)
{
    return csp__cur_worker_slow();
}
#endif
/* The running task, or NULL on a plain thread. */
csp__task_t *csp__cur_task(void);

/* Parks the running task until csp__ready(t). Task context only. */
void csp__park(void);
/* Makes a parked task runnable (see the permit rule above). Any thread. */
void csp__ready(csp__task_t *t);
/* True while blocking calls should fail with CSP_ESHUTDOWN. */
static inline bool csp__shutting_down(void)
{
    return atomic_load_explicit(&csp__rt.state, memory_order_acquire) >= CSP__RT_SHUTDOWN;
}
/* Every call that fails with CSP_ESHUTDOWN goes through this: in a task it
 * first yields, so that a task that ignores the error and loops still reaches
 * a schedule point, where a stopping worker leaves it. Returns CSP_ESHUTDOWN. */
int csp__shutdown_err(void);
/* A plain thread about to touch run queues, timer heaps or stack pools
 * brackets it with these: the teardown waits for it. csp__ext_enter returns
 * false (and enters nothing) unless the runtime state is in [lo, hi]. */
bool csp__ext_enter(int lo, int hi);
void csp__ext_exit(void);
/* Spawns fn(arg) with default options without ever switching (no child-first,
 * no backpressure): for timer functions. 0 or a CSP_E* code. */
int csp__spawn_nosched(void (*fn)(void *), void *arg);
/* Wakes one idle worker if work appeared and nobody is spinning. */
void csp__wakep(void);

/* ---- timers (timer.c) ---- */
void csp__timers_init(csp__timers_t *h);
void csp__timers_destroy(csp__timers_t *h);
/* Queues t (t->fn, t->arg set) to fire at `when` on the caller's worker heap
 * (worker 0's on a plain thread). t must not be queued. */
void csp__timer_add(csp__timer_t *t, csp_time_t when);
/* Removes t if queued. After it returns t->fn is not running and won't run.
 * Returns true if it was queued. */
bool csp__timer_del(csp__timer_t *t);
/* Runs w's due timers. Returns the next `when` (INT64_MAX if none). */
int64_t csp__timers_run(csp__timers_t *h, csp_time_t now);
/* Earliest timer of every worker. */
int64_t csp__timers_earliest(void);
void csp__timer_wake_sleeper(csp_time_t when);

/* ---- task dumps (dump.c) ---- */
/* Nonzero: parks record their time (wait timing is on). Relaxed. */
extern _Atomic int csp__wait_timing;
/* The dumps' clock: CLOCK_MONOTONIC_COARSE (a few ns; ticks every few ms). */
csp_time_t csp__coarse_now(void);
/* Writes a line for each live task to fd (at most max of them, then a
 * count of the rest; max <= 0: all), with symbol names if symbols, else
 * async-signal-safe. Returns the number of tasks, or -1 if a write failed. */
int  csp__dump_tasks(int fd, bool symbols, int max);
/* Runtime start/stop: wait timing from env, the SIGQUIT handler. */
void csp__dump_setup(void);
void csp__dump_teardown(void);

/* ---- the blocking pool (io/blocking.c) ---- */
int  csp__blocking_inflight(void); /* calls queued or running (they can wake a task) */
int  csp__blocking_threads(void);  /* live pool threads */
void csp__blocking_setup(void);
/* Something that could wake a task (a blocking call in flight) just went
 * away: if every worker is idle, one re-runs the deadlock check (the last
 * one to go idle may have checked while it still existed). Any thread,
 * while the runtime's structures exist (the blocking pool: before its
 * teardown has waited for it). */
void csp__deadlock_poke(void);
/* Workers stopped, before task stacks are freed: waits for running calls. */
void csp__blocking_teardown(void);

/* ---- stacks (stack.c) ---- */
extern size_t csp__page_size;
int  csp__stacks_init(void);
void csp__stacks_destroy(void);

/* Small objects of class cls (CSP__OBJ_*, one fixed size per class) from the
 * calling worker's cache (objcache.c). alloc returns size zeroed bytes or
 * NULL (out of memory); free takes an object from alloc of the same class,
 * from any thread; NULL is ignored. Any thread; never
 * block. drain frees every cached object: teardown only, with the workers
 * joined. cached: objects on the global pools (tests). outstanding:
 * objects taken from malloc and not given back, live or cached (tests). */
void    *csp__obj_alloc(int cls, size_t size);
void     csp__obj_free(int cls, void *o);
void     csp__obj_drain(csp__worker_t *const *workers, int n);
uint64_t csp__obj_cached(void);
int64_t  csp__obj_outstanding(void);
/* A task in a fresh or cached slot of at least `size` bytes. NULL: ENOMEM. */
csp__task_t *csp__task_alloc(csp__worker_t *w, size_t size);
void csp__task_free(csp__worker_t *w, csp__task_t *t);
/* Checks t's canary; reports and aborts on overflow. Slots with a guard page
 * skip it: the guard catches the overflow, and the canary sits in another
 * page (the check would cost a TLB entry per switch). */
void csp__stack_check_canary(csp__task_t *t);
void csp__stack_overflow_report(csp__task_t *t) __attribute__((noreturn));
static inline void csp__stack_check(csp__task_t *t)
{
    /* the stack pointer itself below the usable stack: a frame bigger than
     * the guard page jumped it (or there is no guard) */
    char *sp = (char *)__builtin_frame_address(0);
    if (CSP__UNLIKELY(sp < t->lo + (t->has_guard ? csp__page_size : 0)))
        csp__stack_overflow_report(t);
    if (!t->has_guard)
        csp__stack_check_canary(t);
}
/* Calls fn for every task slot ever mapped (world stopped). */
void csp__stacks_foreach(void (*fn)(csp__task_t *t, void *arg), void *arg);
void csp__stacks_stats(uint64_t *mapped, uint64_t *guards);
/* An idle worker's chore: while tasks are being created faster than they
 * exit, makes a few default-size slots ahead (their page faults off the
 * spawner's path). Returns true if it did any work (the caller re-checks for
 * tasks before going on). Cheap (one relaxed load) when there is nothing to do. */
bool csp__stacks_prewarm(void);
/* Installs the SIGSEGV handler that names overflowing tasks (once). */
void csp__stack_install_handler(void);
void csp__stack_thread_init(void);  /* sigaltstack for this worker */
void csp__stack_thread_fini(void);

#endif /* CSP_SCHED_H */
