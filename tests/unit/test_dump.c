/* ctest-timeout: 120 */
/* Task dumps: csp_tasks() (data), csp_dump() (text), SIGQUIT.
 *   - every state: running (on which worker), runnable, waiting (in what,
 *     on which object), with parent ids, names and spawn sites; the count
 *     matches csp_stats; a short buffer still reports the full count;
 *   - the text lines, with symbols; a failed write is CSP_EIO;
 *   - wait timing: off until the first dump; a park after it is timed, a
 *     wait already going on is "at least" from that dump on;
 *   - dumps racing with tasks that spawn, exit and hand values off, from a
 *     task and from a plain thread (TSan: no data race in the snapshot);
 *   - SIGQUIT: dumps and keeps running (CSP_SIGQUIT=dump), dumps and dies of
 *     SIGQUIT by default (in a child process), leaves a program's own
 *     handler alone, and is uninstalled when the runtime stops;
 *   - bad input and no runtime.
 * Every case runs at 1, 2, 4 and 8 workers.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "task_check.h"

#define MS CSP_MILLISECOND

#if defined(__SANITIZE_THREAD__)
/* test_sigquit_dies forks this (multi-threaded under TSan) process and the
 * child starts a runtime */
const char *__tsan_default_options(void);
const char *__tsan_default_options(void) { return "die_after_fork=0"; }
#endif
#define MAXT 64

static int g_workers;

static const csp_task_info_t *find_named(const csp_task_info_t *ti, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(ti[i].name, name) == 0)
            return &ti[i];
    return NULL;
}

static size_t tasks_now(csp_task_info_t *ti)
{
    size_t n = 0;
    TCHECK_EQ(csp_tasks(ti, MAXT, &n), 0);
    TCHECK(n <= MAXT);
    return n < MAXT ? n : MAXT;
}

/* Polls until the task called name is in state st (5 s at most). */
static bool await_state(const char *name, int st)
{
    csp_task_info_t ti[MAXT];
    csp_time_t end = csp_now() + 5 * CSP_SECOND;
    while (csp_now() < end) {
        size_t n = tasks_now(ti);
        const csp_task_info_t *t = find_named(ti, n, name);
        if (t && t->state == st)
            return true;
        csp_sleep(MS);
    }
    return false;
}

/* ------------------------------------------------------------------------ */
/* states                                                                    */

static csp_chan_t *g_ch;
static csp_mutex_t g_mu = CSP_MUTEX_INIT;
static atomic_int g_spin_stop, g_spinning;

static void recv_task(void *arg)
{
    (void)arg;
    int v;
    TCHECK_EQ(csp_chan_recv(g_ch, &v), 0);
    TCHECK_EQ(v, 42);
}

static void lock_task(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_mutex_lock(&g_mu), 0);
    TCHECK_EQ(csp_mutex_unlock(&g_mu), 0);
}

static void sleep_task(void *arg)
{
    (void)arg;
    TCHECK_EQ(csp_sleep(3600 * CSP_SECOND), CSP_ESHUTDOWN);
}

static void spin_task(void *arg)
{
    (void)arg;
    atomic_store(&g_spinning, 1);
    while (!atomic_load(&g_spin_stop))
        ; /* never yields: running on its worker until told */
}

static void noop_task(void *arg) { (void)arg; }

static int spawn_named(void (*fn)(void *), const char *name)
{
    csp_task_opts_t o = { .name = name };
    return csp_go_opts(fn, NULL, &o);
}

static void states_main(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 0);
    TCHECK(g_ch != NULL);
    TCHECK_EQ(csp_mutex_lock(&g_mu), 0);
    atomic_store(&g_spin_stop, 0);
    atomic_store(&g_spinning, 0);
    TCHECK_EQ(spawn_named(recv_task, "recv"), 0);
    TCHECK_EQ(spawn_named(lock_task, "lock"), 0);
    TCHECK_EQ(spawn_named(sleep_task, "sleeper"), 0);
    if (g_workers > 1) {
        TCHECK_EQ(spawn_named(spin_task, "spinner"), 0);
        while (!atomic_load(&g_spinning))
            csp_yield();
    }
    TCHECK(await_state("recv", CSP_TASK_WAITING));
    TCHECK(await_state("lock", CSP_TASK_WAITING));
    TCHECK(await_state("sleeper", CSP_TASK_WAITING));

    /* a runnable one: pinned to main's worker, where main runs on without
     * yielding until it has looked (no thief can take it) */
    csp_task_opts_t po = { .name = "fresh", .flags = CSP_TASK_PINNED };
    TCHECK_EQ(csp_go_opts(noop_task, NULL, &po), 0);
    csp_task_info_t ti[MAXT];
    size_t n = tasks_now(ti);
    csp_stats_t st;
    TCHECK_EQ(csp_stats(&st), 0);
    TCHECK_EQ(n, st.tasks_live);

    const csp_task_info_t *m = find_named(ti, n, "main");
    TCHECK(m != NULL);
    if (m) {
        TCHECK_EQ(m->id, csp_task_id());
        TCHECK_EQ(m->state, CSP_TASK_RUNNING);
        TCHECK_EQ(m->worker, csp_worker_id());
        TCHECK_EQ(m->parent, 0);
        TCHECK(m->wait_reason == NULL);
    }
    struct { const char *name, *reason; const void *obj; } waiting[] = {
        { "recv", "chan recv", g_ch },
        { "lock", "mutex.lock", &g_mu },
        { "sleeper", "sleep", NULL },
    };
    for (size_t i = 0; i < sizeof waiting / sizeof waiting[0]; i++) {
        const csp_task_info_t *t = find_named(ti, n, waiting[i].name);
        TCHECK(t != NULL);
        if (!t)
            continue;
        TCHECK_EQ(t->state, CSP_TASK_WAITING);
        TCHECK(t->wait_reason && strcmp(t->wait_reason, waiting[i].reason) == 0);
        TCHECK(t->wait_obj == waiting[i].obj);
        TCHECK_EQ(t->worker, -1);
        TCHECK_EQ(t->parent, csp_task_id());
        TCHECK(t->spawn_pc != NULL);
        /* timed: by their park if the first poll (which turned timing on)
         * came before it, else "at least" since a poll that saw them */
        TCHECK(t->waited >= 0);
    }
    const csp_task_info_t *f = find_named(ti, n, "fresh");
    TCHECK(f != NULL);
    if (f) {
        TCHECK_EQ(f->state, CSP_TASK_RUNNABLE);
        TCHECK_EQ(f->worker, -1);
        TCHECK(f->spawn_pc != NULL);
    }
    if (g_workers > 1) {
        const csp_task_info_t *s = find_named(ti, n, "spinner");
        TCHECK(s != NULL);
        if (s) {
            TCHECK_EQ(s->state, CSP_TASK_RUNNING);
            TCHECK(s->worker >= 0 && s->worker < g_workers && s->worker != m->worker);
        }
    }
    /* ids are unique */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i + 1; j < n; j++)
            TCHECK(ti[i].id != ti[j].id);

    /* a short buffer: the full count, the first entries filled */
    size_t n2 = 0;
    csp_task_info_t two[2];
    memset(two, 0, sizeof two);
    TCHECK_EQ(csp_tasks(two, 2, &n2), 0);
    TCHECK(n2 >= 2 && two[0].id != 0 && two[1].id != 0);
    TCHECK_EQ(csp_tasks(NULL, 0, &n2), 0);
    TCHECK_EQ(n2, n);

    int v = 42;
    TCHECK_EQ(csp_chan_send(g_ch, &v), 0);
    TCHECK_EQ(csp_mutex_unlock(&g_mu), 0);
    atomic_store(&g_spin_stop, 1);
    /* the sleeper is freed when main returns */
    csp_chan_release(g_ch);
}

static void test_states(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++)
        for (int rep = 0; rep < 2; rep++) {
            g_workers = tc_worker_counts[w];
            T_RUN(states_main, NULL, g_workers, CSP_SPAWN_HELP_FIRST);
        }
}

/* ------------------------------------------------------------------------ */
/* text                                                                      */

static char g_text[1 << 16];

/* The dump written to a temporary file, read back into g_text. */
static int dump_to_text(void)
{
    char path[] = "/tmp/csp_dump_XXXXXX";
    int fd = mkstemp(path);
    TCHECK(fd >= 0);
    if (fd < 0)
        return -1;
    unlink(path);
    int r = csp_dump(fd);
    ssize_t len = pread(fd, g_text, sizeof g_text - 1, 0);
    g_text[len > 0 ? len : 0] = 0;
    close(fd);
    return r;
}

static void text_main(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(spawn_named(recv_task, "recv"), 0);
    TCHECK(await_state("recv", CSP_TASK_WAITING));
    TCHECK_EQ(dump_to_text(), 0);

    char want[256];
    snprintf(want, sizeof want, "libcsp: task dump: %d worker%s, ", g_workers,
             g_workers == 1 ? "" : "s");
    TCHECK(strncmp(g_text, want, strlen(want)) == 0);
    snprintf(want, sizeof want, "  task %llu \"main\": running on worker %d, created at 0x",
             (unsigned long long)csp_task_id(), csp_worker_id());
    TCHECK(strstr(g_text, want) != NULL);
    snprintf(want, sizeof want, "\"recv\" (parent %llu): waiting in chan recv on %p for ",
             (unsigned long long)csp_task_id(), (void *)g_ch);
    TCHECK(strstr(g_text, want) != NULL);
    /* symbols: the spawn site is in this binary */
    TCHECK(strstr(g_text, "(test_dump+0x") != NULL);
    TCHECK(strstr(g_text, "libcsp: 2 tasks\n") != NULL);
    if (!strstr(g_text, want))
        fprintf(stderr, "dump was:\n%s", g_text);

    /* a write that fails */
    int fd = open("/dev/null", O_RDONLY);
    TCHECK(fd >= 0);
    TCHECK_EQ(csp_dump(fd), CSP_EIO);
    close(fd);

    int v = 42;
    TCHECK_EQ(csp_chan_send(g_ch, &v), 0);
    csp_chan_release(g_ch);
}

static void test_text(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        g_workers = tc_worker_counts[w];
        T_RUN(text_main, NULL, g_workers, CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* wait timing                                                               */

static void timing_main(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(spawn_named(recv_task, "early"), 0);
    csp_task_info_t ti[MAXT];
    /* no dump yet, so parks are not timed: "early" parks untimed (30 ms is
     * ample for it to block; if it has not, it is timed like "late" and
     * the "at least" check below does not apply) */
    csp_sleep(30 * MS);
    size_t n = tasks_now(ti);
    const csp_task_info_t *t = find_named(ti, n, "early");
    TCHECK(t != NULL);
    bool early_untimed = t && t->state == CSP_TASK_WAITING;
    if (early_untimed)
        TCHECK_EQ(t->waited, -1); /* first look: no time known */
    TCHECK(await_state("early", CSP_TASK_WAITING));

    /* timing is on now: this park is timed from its start */
    TCHECK_EQ(spawn_named(recv_task, "late"), 0);
    TCHECK(await_state("late", CSP_TASK_WAITING));
    csp_sleep(60 * MS);
    n = tasks_now(ti);
    t = find_named(ti, n, "late");
    TCHECK(t != NULL);
    if (t) {
        TCHECK_EQ(t->wait_at_least, 0);
        /* coarse clock: a few ms of slack each way */
        TCHECK(t->waited >= 45 * MS);
    }
    t = find_named(ti, n, "early");
    TCHECK(t != NULL);
    if (t) {
        TCHECK_EQ(t->wait_at_least, early_untimed);
        TCHECK(t->waited >= 45 * MS);
    }
    int v = 42;
    TCHECK_EQ(csp_chan_send(g_ch, &v), 0);
    TCHECK_EQ(csp_chan_send(g_ch, &v), 0);
    csp_chan_release(g_ch);
}

static void test_wait_timing(void **state)
{
    (void)state;
    unsetenv("CSP_WAIT_TIMES");
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        g_workers = tc_worker_counts[w];
        T_RUN(timing_main, NULL, g_workers, CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* dumps racing with a busy runtime                                          */

#define RACE_PAIRS 4
static atomic_int g_race_stop;
static csp_wg_t g_race_wg;

static void race_ping(void *arg)
{
    csp_chan_t **ch = arg; /* ch[0]: to the partner, ch[1]: from it */
    int v = 0;
    while (!atomic_load_explicit(&g_race_stop, memory_order_relaxed)) {
        if (csp_chan_send(ch[0], &v) != 0 || csp_chan_recv(ch[1], &v) != 0)
            break;
        v++;
    }
    csp_chan_close(ch[0]);
    csp_wg_done(&g_race_wg);
}

static void race_pong(void *arg)
{
    csp_chan_t **ch = arg;
    int v;
    while (csp_chan_recv(ch[0], &v) == 0)
        if (csp_chan_send(ch[1], &v) != 0)
            break;
    csp_wg_done(&g_race_wg);
}

static void race_spawner(void *arg)
{
    (void)arg;
    while (!atomic_load_explicit(&g_race_stop, memory_order_relaxed)) {
        csp_task_opts_t o = { .name = "short-lived" };
        TCHECK_EQ(csp_go_opts(noop_task, NULL, &o), 0);
        csp_yield();
    }
    csp_wg_done(&g_race_wg);
}

static void check_snapshot(void)
{
    csp_task_info_t ti[MAXT];
    size_t n = tasks_now(ti);
    TCHECK(n >= 1);
    for (size_t i = 0; i < n; i++) {
        TCHECK(ti[i].id != 0);
        TCHECK(ti[i].state >= CSP_TASK_RUNNABLE && ti[i].state <= CSP_TASK_WAITING);
        TCHECK(ti[i].state == CSP_TASK_RUNNING ? ti[i].worker >= 0 && ti[i].worker < g_workers
                                               : ti[i].worker == -1);
        TCHECK(strlen(ti[i].name) < sizeof ti[i].name);
    }
}

static void *race_thread(void *arg)
{
    int fd = *(int *)arg;
    while (!atomic_load(&g_race_stop)) {
        check_snapshot();
        TCHECK_EQ(csp_dump(fd), 0);
    }
    return NULL;
}

static void race_main(void *arg)
{
    (void)arg;
    atomic_store(&g_race_stop, 0);
    csp_wg_add(&g_race_wg, 2 * RACE_PAIRS + 1);
    csp_chan_t *chs[RACE_PAIRS][2];
    for (int i = 0; i < RACE_PAIRS; i++) {
        chs[i][0] = csp_chan_make(sizeof(int), 0);
        chs[i][1] = csp_chan_make(sizeof(int), 0);
        TCHECK_EQ(csp_go(race_ping, chs[i]), 0);
        TCHECK_EQ(csp_go(race_pong, chs[i]), 0);
    }
    TCHECK_EQ(csp_go(race_spawner, NULL), 0);
    int fd = open("/dev/null", O_WRONLY);
    TCHECK(fd >= 0);
    pthread_t th;
    TCHECK_EQ(pthread_create(&th, NULL, race_thread, &fd), 0);
    csp_time_t end = csp_now() + 150 * MS;
    while (csp_now() < end) {
        check_snapshot();
        TCHECK_EQ(csp_dump(fd), 0);
        csp_yield();
    }
    atomic_store(&g_race_stop, 1);
    TCHECK_EQ(csp_wg_wait(&g_race_wg), 0);
    pthread_join(th, NULL);
    close(fd);
    for (int i = 0; i < RACE_PAIRS; i++) {
        csp_chan_release(chs[i][0]);
        csp_chan_release(chs[i][1]);
    }
}

static void test_race(void **state)
{
    (void)state;
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        g_workers = tc_worker_counts[w];
        T_RUN(race_main, NULL, g_workers, CSP_SPAWN_HELP_FIRST);
    }
}

/* ------------------------------------------------------------------------ */
/* SIGQUIT                                                                   */

/* stderr goes to a temporary file while fn runs; its text lands in g_text */
static int g_saved_err = -1, g_err_fd = -1;

static void capture_stderr_begin(void)
{
    char path[] = "/tmp/csp_quit_XXXXXX";
    g_err_fd = mkstemp(path);
    assert_true(g_err_fd >= 0);
    unlink(path);
    fflush(stderr);
    g_saved_err = dup(2);
    dup2(g_err_fd, 2);
}

static void capture_stderr_end(void)
{
    fflush(stderr);
    dup2(g_saved_err, 2);
    close(g_saved_err);
    ssize_t len = pread(g_err_fd, g_text, sizeof g_text - 1, 0);
    g_text[len > 0 ? len : 0] = 0;
    close(g_err_fd);
}

static bool quit_is_default(void)
{
    struct sigaction cur;
    return sigaction(SIGQUIT, NULL, &cur) == 0 && !(cur.sa_flags & SA_SIGINFO) &&
           cur.sa_handler == SIG_DFL;
}

static void quit_main(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 0);
    TCHECK_EQ(spawn_named(recv_task, "quit-recv"), 0);
    TCHECK(await_state("quit-recv", CSP_TASK_WAITING));
    TCHECK(!quit_is_default()); /* ours is installed */
    capture_stderr_begin();
    raise(SIGQUIT);
    capture_stderr_end();
    TCHECK(strstr(g_text, "libcsp: task dump: ") == g_text);
    TCHECK(strstr(g_text, "\"quit-recv\" (parent ") != NULL);
    TCHECK(strstr(g_text, ": waiting in chan recv on ") != NULL);
    TCHECK(strstr(g_text, "libcsp: 2 tasks\n") != NULL);
    int v = 42;
    TCHECK_EQ(csp_chan_send(g_ch, &v), 0);
    csp_chan_release(g_ch);
}

static void test_sigquit_dump(void **state)
{
    (void)state;
    setenv("CSP_SIGQUIT", "dump", 1);
    for (int w = 0; w < TC_NWORKER_COUNTS; w++) {
        g_workers = tc_worker_counts[w];
        T_RUN(quit_main, NULL, g_workers, CSP_SPAWN_HELP_FIRST);
        assert_true(quit_is_default()); /* uninstalled at stop */
    }
    unsetenv("CSP_SIGQUIT");
}

static void users_quit_handler(int sig) { (void)sig; }

static void check_users_handler_main(void *arg)
{
    (void)arg;
    struct sigaction cur;
    TCHECK_EQ(sigaction(SIGQUIT, NULL, &cur), 0);
    TCHECK(cur.sa_handler == users_quit_handler);
}

static void check_default_main(void *arg)
{
    (void)arg;
    TCHECK(quit_is_default());
}

static void test_sigquit_left_alone(void **state)
{
    (void)state;
    /* a program's own handler is kept, during the run and after */
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = users_quit_handler;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGQUIT, &sa, &old), 0);
    T_RUN(check_users_handler_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    struct sigaction cur;
    assert_int_equal(sigaction(SIGQUIT, NULL, &cur), 0);
    assert_true(cur.sa_handler == users_quit_handler);
    assert_int_equal(sigaction(SIGQUIT, &old, NULL), 0);
    /* CSP_SIGQUIT=0: none installed */
    setenv("CSP_SIGQUIT", "0", 1);
    T_RUN(check_default_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
    unsetenv("CSP_SIGQUIT");
}

static void die_main(void *arg)
{
    (void)arg;
    g_ch = csp_chan_make(sizeof(int), 0);
    spawn_named(recv_task, "doomed");
    await_state("doomed", CSP_TASK_WAITING);
    raise(SIGQUIT);
    _exit(3); /* not reached: SIGQUIT kills the process */
}

static void test_sigquit_dies(void **state)
{
    (void)state;
    char path[] = "/tmp/csp_quit_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct rlimit nocore = { 0, 0 };
        setrlimit(RLIMIT_CORE, &nocore);
        dup2(fd, 2);
        unsetenv("CSP_SIGQUIT");
        csp_config_t cfg = { .workers = 2 };
        csp_run(die_main, NULL, &cfg);
        _exit(4);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    ssize_t len = pread(fd, g_text, sizeof g_text - 1, 0);
    g_text[len > 0 ? len : 0] = 0;
    close(fd);
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGQUIT)
        fprintf(stderr, "child status %#x, stderr:\n%s", status, g_text);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGQUIT);
    assert_non_null(strstr(g_text, "\"doomed\" (parent "));
    assert_non_null(strstr(g_text, "\"main\": running on worker "));
}

/* ------------------------------------------------------------------------ */
/* bad input                                                                 */

static void bad_main(void *arg)
{
    (void)arg;
    size_t n = 0;
    csp_task_info_t ti[1];
    TCHECK_EQ(csp_tasks(NULL, 1, &n), CSP_EINVAL);
    TCHECK_EQ(csp_tasks(ti, 1, NULL), CSP_EINVAL);
    TCHECK_EQ(csp_dump(-1), CSP_EINVAL);
    TCHECK_EQ(csp_tasks(ti, 1, &n), 0);
    TCHECK_EQ(n, 1);
    TCHECK_EQ(ti[0].id, csp_task_id());
}

static void test_bad_input(void **state)
{
    (void)state;
    size_t n = 7;
    csp_task_info_t ti[1];
    assert_int_equal(csp_tasks(ti, 1, &n), CSP_ESTATE);
    assert_int_equal(n, 7);
    assert_int_equal(csp_dump(2), CSP_ESTATE);
    T_RUN(bad_main, NULL, 2, CSP_SPAWN_HELP_FIRST);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_states),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_wait_timing),
        cmocka_unit_test(test_race),
        cmocka_unit_test(test_sigquit_dump),
        cmocka_unit_test(test_sigquit_left_alone),
        cmocka_unit_test(test_sigquit_dies),
        cmocka_unit_test(test_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
