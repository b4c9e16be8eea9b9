/* ctest-timeout: 60 */
/* The lock-rank checker (CSP_LOCKRANK builds; CI's ASan stage): each bad
 * pattern runs in a forked child, which must die (abort) naming the fault;
 * good patterns must pass. Without CSP_LOCKRANK the test checks only that
 * the good patterns run, and says the checker is off. */
#define _GNU_SOURCE
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <csp.h>

#include "internal.h"

static csp__spinlock_t l_ctx, l_timer, l_leaf, l_none;
static csp__spinlock_t l_chan[4];
static pthread_mutex_t m_gq = PTHREAD_MUTEX_INITIALIZER;

static void good_patterns(void)
{
    /* increasing ranks, channel locks in address order, unranked inside */
    csp__spin_lock_r(&l_ctx, CSP__RANK_CTX);
    csp__spin_lock_r(&l_timer, CSP__RANK_TIMER);
    for (int i = 0; i < 4; i++)
        csp__spin_lock_r(&l_chan[i], CSP__RANK_CHAN);
    csp__mutex_lock(&m_gq, CSP__RANK_GQ);
    csp__spin_lock_r(&l_none, CSP__RANK_NONE);
    csp__spin_unlock(&l_none);
    csp__mutex_unlock(&m_gq);
    for (int i = 0; i < 4; i++)
        csp__spin_unlock(&l_chan[i]); /* any order */
    csp__spin_unlock(&l_ctx);          /* not LIFO either */
    csp__spin_unlock(&l_timer);
    csp__rank_check_none("the end of the good patterns");
}

static void bad_order(void)
{
    csp__spin_lock_r(&l_timer, CSP__RANK_TIMER);
    csp__spin_lock_r(&l_ctx, CSP__RANK_CTX); /* ctx < timer: wrong */
}

static void bad_chan_order(void)
{
    csp__spin_lock_r(&l_chan[2], CSP__RANK_CHAN);
    csp__spin_lock_r(&l_chan[1], CSP__RANK_CHAN); /* lower address second */
}

static void bad_under_leaf(void)
{
    csp__spin_lock_r(&l_leaf, CSP__RANK_LEAF);
    csp__spin_lock_r(&l_none, CSP__RANK_NONE); /* nothing under a leaf */
}

static void bad_held_at_switch(void)
{
    csp__spin_lock_r(&l_none, CSP__RANK_NONE);
    csp__rank_check_none("a context switch");
}

static void bad_twice(void)
{
    csp__spin_lock_r(&l_ctx, CSP__RANK_CTX);
    csp__rank_acquire(&l_ctx, CSP__RANK_CTX, __FILE__, __LINE__);
}

/* Runs fn in a child; true if the child died of SIGABRT and its stderr
 * holds want. */
static bool dies_with(void (*fn)(void), const char *want)
{
    char path[] = "/tmp/csp_lockrank_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    unlink(path);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fd, 2);
        fn();
        _exit(0); /* not caught */
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    char buf[2048];
    ssize_t n = pread(fd, buf, sizeof buf - 1, 0);
    buf[n > 0 ? n : 0] = 0;
    close(fd);
    bool ok = WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT && strstr(buf, want);
    if (!ok)
        fprintf(stderr, "want death with \"%s\"; status %#x, stderr: %s\n", want, status, buf);
    return ok;
}

static void test_lockrank(void **state)
{
    (void)state;
    good_patterns();
#if defined(CSP_LOCKRANK)
    assert_true(dies_with(bad_order, "takes rank 15 while holding rank 20"));
    assert_true(dies_with(bad_chan_order, "takes rank 25 while holding rank 25"));
    assert_true(dies_with(bad_under_leaf, "under the leaf lock"));
    assert_true(dies_with(bad_held_at_switch, "held at a context switch"));
    assert_true(dies_with(bad_twice, "again"));
#else
    (void)bad_order; (void)bad_chan_order; (void)bad_under_leaf;
    (void)bad_held_at_switch; (void)bad_twice; (void)dies_with;
    fprintf(stderr, "the lock-rank checker is off in this build (CSP_LOCKRANK)\n");
#endif
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lockrank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
