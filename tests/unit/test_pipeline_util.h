/* Helpers shared by the pipeline tests (test_pipeline*.c). Include after
 * task_check.h. */
#ifndef CSP_TEST_PIPELINE_UTIL_H
#define CSP_TEST_PIPELINE_UTIL_H

#include <stdbool.h>

#include <csp.h>
#include <csp/pipeline.h>

#include "task_check.h"

/* Tasks alive now (the caller included). */
static inline uint64_t pu_live(void)
{
    csp_stats_t st;
    if (csp_stats(&st) != 0)
        return UINT64_MAX;
    return st.tasks_live;
}

/* Waits (up to 10 s) until exactly `want` tasks are alive: a stage's tasks
 * end shortly after their outputs close, not at the same instant. */
static inline bool pu_wait_live(uint64_t want)
{
    csp_time_t until = csp_deadline_after(10 * CSP_SECOND);
    uint64_t n;
    while ((n = pu_live()) != want) {
        if (csp_now() > until) {
            tc_fail(__FILE__, __LINE__, "tasks_live stayed at %llu, want %llu",
                    (unsigned long long)n, (unsigned long long)want);
            return false;
        }
        if (csp_task_id())
            csp_sleep(100 * CSP_MICROSECOND);
        else
            csp_sleep(CSP_MILLISECOND);
    }
    return true;
}

/* Receives until c is closed; returns how many elements came. */
static inline long pu_count(csp_chan_t *c)
{
    int64_t n = csp_pipe_drain(c, NULL);
    return n < 0 ? -1 : (long)n;
}

/* Runs main_fn under every worker count of tc_worker_counts, reps times
 * each, alternating the spawn policies. */
#define PU_RUN_ALL(main_fn, reps)                                              \
    do {                                                                       \
        for (int pu_w = 0; pu_w < TC_NWORKER_COUNTS; pu_w++)                   \
            for (int pu_r = 0; pu_r < (reps); pu_r++)                          \
                T_RUN((main_fn), NULL, tc_worker_counts[pu_w],                 \
                      (pu_r & 1) ? CSP_SPAWN_CHILD_FIRST : CSP_SPAWN_HELP_FIRST); \
    } while (0)

#endif /* CSP_TEST_PIPELINE_UTIL_H */
