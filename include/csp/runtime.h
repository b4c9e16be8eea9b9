/* libcsp — the runtime: worker threads, tasks, yield, sleep.
 *
 * Tasks are cooperative: a task runs until it returns, yields, or blocks in a
 * libcsp call. A task may resume on a different worker thread after any call
 * that can block or yield, so it must not keep the address of thread-local
 * state (errno included) across such calls; see docs/internals/threads.md.
 * A task created with CSP_TASK_PINNED never migrates.
 */
#ifndef CSP_RUNTIME_H
#define CSP_RUNTIME_H

#include "common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Spawn policy (csp_config_t.spawn_policy). */
enum {
    CSP_SPAWN_HELP_FIRST  = 0, /* child is queued, the parent runs on (default, Go's) */
    CSP_SPAWN_CHILD_FIRST = 1  /* child runs now; the parent's continuation is queued
                                  and may be stolen ("continuation stealing") */
};

typedef struct csp_config {
    int    workers;      /* worker threads (Go's GOMAXPROCS); 0: env CSP_WORKERS, else nproc */
    size_t stack_size;   /* default task stack; 0: library default (CSP_DEFAULT_STACK_SIZE) */
    /* --- additions (zero means the default) --- */
    int    spawn_policy; /* CSP_SPAWN_HELP_FIRST (0) or CSP_SPAWN_CHILD_FIRST */
    int    reserved[7];  /* must be zero */
} csp_config_t;

/* Default virtual size of a task stack. Pages are committed only when touched. */
#define CSP_DEFAULT_STACK_SIZE ((size_t)128 * 1024)
/* Smallest and largest accepted stack sizes (after rounding up to pages). */
#define CSP_MIN_STACK_SIZE     ((size_t)16 * 1024)
#define CSP_MAX_STACK_SIZE     ((size_t)1024 * 1024 * 1024)

/* Task option flags (csp_task_opts_t.flags). */
enum {
    CSP_TASK_PINNED = 1  /* runs only on the worker that spawned it (the spawning
                            worker, or worker 0 from a plain thread); never migrates */
};

typedef struct csp_task_opts {
    size_t      stack_size;  /* 0: the runtime's default */
    const char *name;        /* shows in dumps and overflow reports; copied (first 31 bytes) */
    /* --- additions --- */
    unsigned    flags;       /* CSP_TASK_* */
} csp_task_opts_t;

/* Starts the runtime with cfg (NULL: defaults) and runs main_fn(arg) as the first
 * task. Returns when main_fn returns: 0. Tasks still alive then are freed without
 * being resumed (debug builds print how many). Errors: CSP_EINVAL (main_fn NULL,
 * bad cfg), CSP_ENOMEM, CSP_ESTATE (a runtime is already running in this process).
 * Blocks the calling thread, which must not be a task. A task that never yields
 * keeps its worker busy and delays the return (scheduling is cooperative).
 * Global deadlock: when every task is asleep and nothing can wake one (no task
 * runnable, no timer pending - sleeps, deadlines, tickers -, and no thread in
 * the process but the runtime's own), the blocked tasks are printed to stderr
 * ("all tasks are asleep - deadlock!", as Go), they are freed as above, and
 * csp_run returns CSP_EDEADLOCK instead of hanging. Threads that existed
 * before csp_run turn the check off for the whole run (any of them might
 * wake a task later), threads made during it until they exit; env
 * CSP_DEADLOCK=0 turns it off. */
CSP_EXTERN int csp_run(void (*main_fn)(void *), void *arg, const csp_config_t *cfg);

/* Starts the runtime's workers and returns at once; the caller stays a plain
 * thread that may spawn tasks and use every blocking call. 0, CSP_EINVAL,
 * CSP_ENOMEM, CSP_ESTATE (already running). Stop it with csp_shutdown(). */
CSP_EXTERN int csp_init(const csp_config_t *cfg);

/* Stops a runtime started with csp_init: every pending blocking call, in tasks
 * and on plain threads, returns CSP_ESHUTDOWN, and so does every later one;
 * tasks get a short grace period (100 ms) to return, then the workers stop and
 * every task's memory is freed. Call it from a plain thread (not a task); a
 * no-op when no runtime runs. Blocks until the workers have stopped. */
CSP_EXTERN void csp_shutdown(void);

/* Spawns fn(arg) as a new task with the default options. Callable from tasks
 * and plain threads while the runtime runs. 0, CSP_EINVAL (fn NULL),
 * CSP_ENOMEM, CSP_ESHUTDOWN (no runtime, or stopping). Never blocks. The
 * caller keeps ownership of arg. */
CSP_EXTERN int csp_go(void (*fn)(void *), void *arg);

/* As csp_go with options (NULL: defaults). CSP_EINVAL also for a stack size
 * above CSP_MAX_STACK_SIZE or unknown flags. */
CSP_EXTERN int csp_go_opts(void (*fn)(void *), void *arg, const csp_task_opts_t *opts);

/* As csp_go_opts, but first copies size bytes at arg into the new task's own
 * memory (at most CSP_GO_COPY_MAX bytes; CSP_EINVAL beyond) and passes fn the
 * address of that copy, valid until fn returns. No heap allocation. */
CSP_EXTERN int csp_go_copy(void (*fn)(void *), const void *arg, size_t size,
                           const csp_task_opts_t *opts);
#define CSP_GO_COPY_MAX ((size_t)1024)

/* Lets other runnable tasks run; the caller is queued behind them. On a plain
 * thread: sched_yield(). Never fails. */
CSP_EXTERN void csp_yield(void);

/* Sleeps at least d ns (d <= 0: just yields). 0, or CSP_ESHUTDOWN if the
 * runtime is stopping. Parks a task; blocks a plain thread. */
CSP_EXTERN int csp_sleep(csp_duration_t d);

/* Sleeps until the monotonic time t. Same results as csp_sleep. */
CSP_EXTERN int csp_sleep_until(csp_time_t t);

/* The running task's id: unique, nonzero, increasing per spawning worker;
 * 0 on a plain thread. */
CSP_EXTERN uint64_t csp_task_id(void);

/* The running task's name ("" if none), or NULL on a plain thread. Borrowed:
 * valid while the task lives. */
CSP_EXTERN const char *csp_task_name(void);

/* The number of worker threads while the runtime runs, else 0. */
CSP_EXTERN int csp_workers(void);

/* The index (0 .. csp_workers()-1) of the worker running the caller right now,
 * or -1 on a plain thread. Only a hint: a task may move after any yield. */
CSP_EXTERN int csp_worker_id(void);

/* Runtime counters (a snapshot; fields read without stopping the world). */
typedef struct csp_stats {
    uint64_t tasks_live;      /* tasks spawned and not yet returned */
    uint64_t tasks_spawned;   /* since start */
    uint64_t steals;          /* successful steals */
    uint64_t parks;           /* times a task blocked */
    uint64_t worker_sleeps;   /* times a worker went to sleep idle */
    uint64_t stacks_mapped;   /* stack slots mapped */
    uint64_t guard_pages;     /* stacks that have a guard page */
} csp_stats_t;

/* Fills *st. 0, CSP_EINVAL (st NULL), CSP_ESTATE (no runtime). Never blocks. */
CSP_EXTERN int csp_stats(csp_stats_t *st);

/* ---- task dump ----
 *
 * A snapshot of every live task: what Go prints on SIGQUIT, as data and as
 * text. Taken without stopping the world (a task that never yields would
 * stop the dump too), so it is consistent per task, not across tasks: a task
 * may change state while the others are read. */

/* csp_task_info_t.state */
enum {
    CSP_TASK_RUNNABLE = 0, /* queued (or just spawned), waiting for a worker */
    CSP_TASK_RUNNING  = 1, /* on a worker right now (.worker says which) */
    CSP_TASK_WAITING  = 2  /* parked in a blocking call (.wait_reason says which) */
};

typedef struct csp_task_info {
    uint64_t    id;          /* csp_task_id() of the task */
    uint64_t    parent;      /* id of the task that spawned it; 0: a plain thread */
    char        name[32];    /* its name, "" if none */
    int         state;       /* CSP_TASK_* */
    int         worker;      /* RUNNING: the worker's index, else -1 */
    /* WAITING: the call it is blocked in ("chan recv", "chan send",
     * "select", "sleep", "mutex.lock", "wg.wait", "cond.wait", ...: a static
     * string), and the object it waits on (the channel, mutex, ...; NULL if
     * several or none). NULL otherwise. */
    const char *wait_reason;
    const void *wait_obj;
    /* WAITING: for how long, in ns; -1 if not known. Parks are timed once
     * wait timing is on: env CSP_WAIT_TIMES=1 at start, or after the first
     * dump. A task already waiting when timing came on is timed from that
     * dump on, and wait_at_least says so (its wait is longer). */
    csp_duration_t waited;
    int         wait_at_least;
    void       *spawn_pc;    /* return address of the csp_go* call that made it */
} csp_task_info_t;

/* Fills out[0 .. cap-1] with live tasks (in no particular order) and stores
 * in *n how many tasks are live (may be > cap: call again with more room).
 * 0, CSP_EINVAL (n NULL, or out NULL with cap > 0), CSP_ESTATE (no runtime).
 * Any thread, tasks included; never blocks; allocates nothing. The caller
 * owns out. Turns wait timing on. */
CSP_EXTERN int csp_tasks(csp_task_info_t *out, size_t cap, size_t *n);

/* Writes a readable dump of every live task to file descriptor fd: one
 * header line, then one line per task -
 *   task 12 "server" (parent 1): waiting in chan recv on 0x55d2c0a4b2a0 for 1.2 s,
 *     created at 0x55d2c0a01234 (demo+0x1234, in main+0x44)
 * The "created at" part names the binary and offset (for addr2line) and the
 * nearest exported symbol when there is one. 0, CSP_EINVAL (fd < 0),
 * CSP_ESTATE (no runtime), CSP_EIO (a write failed). Any thread; never blocks
 * on the runtime (only on the writes); allocates nothing. Turns wait timing on.
 *
 * SIGQUIT (Ctrl-\) dumps the same lines to stderr, from the signal handler,
 * without symbol names. By default the process then dies of SIGQUIT as it
 * would have (Go's behaviour); env CSP_SIGQUIT=dump keeps it running, and
 * CSP_SIGQUIT=0 leaves SIGQUIT alone. The handler is installed by csp_run and
 * csp_init only if SIGQUIT has its default action, and removed at shutdown. */
CSP_EXTERN int csp_dump(int fd);

/* ---- one-line, type-checked spawn with several arguments ----
 *
 *   CSP_TASK(worker, (int, id), (csp_chan_t *, ch)) {
 *       ... body uses id and ch ...
 *   }
 *   ...
 *   CSP_GO(worker, 3, ch);          // returns csp_go's result
 *   CSP_GO_OPTS(&opts, worker, 3, ch);
 *
 * CSP_TASK defines a static function worker(int id, csp_chan_t *ch) (callable
 * directly too) and a spawner whose prototype type-checks CSP_GO's arguments.
 * The arguments are copied into the task (csp_go_copy): no malloc. Up to 8.
 */
#define CSP__CAT_(a, b) a##b
#define CSP__CAT(a, b) CSP__CAT_(a, b)
#define CSP__NARGS_(_1, _2, _3, _4, _5, _6, _7, _8, N, ...) N
#define CSP__NARGS(...) CSP__NARGS_(__VA_ARGS__, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define CSP__MAP(m, sep, ...) CSP__CAT(CSP__MAP_, CSP__NARGS(__VA_ARGS__))(m, sep, __VA_ARGS__)
#define CSP__MAP_1(m, s, a) m a
#define CSP__MAP_2(m, s, a, ...) m a s() CSP__MAP_1(m, s, __VA_ARGS__)
#define CSP__MAP_3(m, s, a, ...) m a s() CSP__MAP_2(m, s, __VA_ARGS__)
#define CSP__MAP_4(m, s, a, ...) m a s() CSP__MAP_3(m, s, __VA_ARGS__)
#define CSP__MAP_5(m, s, a, ...) m a s() CSP__MAP_4(m, s, __VA_ARGS__)
#define CSP__MAP_6(m, s, a, ...) m a s() CSP__MAP_5(m, s, __VA_ARGS__)
#define CSP__MAP_7(m, s, a, ...) m a s() CSP__MAP_6(m, s, __VA_ARGS__)
#define CSP__MAP_8(m, s, a, ...) m a s() CSP__MAP_7(m, s, __VA_ARGS__)
#define CSP__SEP_COMMA() ,
#define CSP__SEP_SEMI() ;
#define CSP__SEP_NONE()
#define CSP__PARAM(type, name) type name
#define CSP__FIELD(type, name) type name;
#define CSP__FROM_ARGS(type, name) csp__a->name
#define CSP__NAME(type, name) name

#define CSP_TASK(fn, ...)                                                      \
    static void fn(CSP__MAP(CSP__PARAM, CSP__SEP_COMMA, __VA_ARGS__));         \
    struct csp__args_##fn { CSP__MAP(CSP__FIELD, CSP__SEP_NONE, __VA_ARGS__) };\
    static void csp__tramp_##fn(void *csp__p) {                                \
        struct csp__args_##fn *csp__a = (struct csp__args_##fn *)csp__p;       \
        fn(CSP__MAP(CSP__FROM_ARGS, CSP__SEP_COMMA, __VA_ARGS__));             \
    }                                                                          \
    static inline __attribute__((unused)) int csp__go_##fn(                    \
        const csp_task_opts_t *csp__o,                                         \
        CSP__MAP(CSP__PARAM, CSP__SEP_COMMA, __VA_ARGS__)) {                   \
        struct csp__args_##fn csp__a = {                                       \
            CSP__MAP(CSP__NAME, CSP__SEP_COMMA, __VA_ARGS__) };                \
        return csp_go_copy(csp__tramp_##fn, &csp__a, sizeof csp__a, csp__o);   \
    }                                                                          \
    static void fn(CSP__MAP(CSP__PARAM, CSP__SEP_COMMA, __VA_ARGS__))

#define CSP_GO(fn, ...) csp__go_##fn(NULL, __VA_ARGS__)
#define CSP_GO_OPTS(opts, fn, ...) csp__go_##fn((opts), __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif /* CSP_RUNTIME_H */
