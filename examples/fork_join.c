/* fork_join: divide-and-conquer sum(0, n) with a task per half, the book's
 * chapter 6 example of work stealing. Runs it with both spawn policies.
 *
 * Go original:
 *   func sum(lo, hi int64, out *int64) {
 *       if lo == hi { *out = lo; return }
 *       mid := lo + (hi-lo)/2
 *       var l, r int64; var wg sync.WaitGroup; wg.Add(2)
 *       go func() { sum(lo, mid, &l); wg.Done() }()
 *       go func() { sum(mid+1, hi, &r); wg.Done() }()
 *       wg.Wait(); *out = l + r
 *   }
 */
#include <csp.h>
#include <stdio.h>

CSP_TASK(sum, (int64_t, lo), (int64_t, hi), (int64_t *, out), (csp_wg_t *, parent))
{
    if (lo == hi) {
        *out = lo;
    } else {
        int64_t mid = lo + (hi - lo) / 2, l = 0, r = 0;
        csp_wg_t wg = CSP_WG_INIT;
        csp_wg_add(&wg, 2);
        CSP_GO(sum, lo, mid, &l, &wg);
        CSP_GO(sum, mid + 1, hi, &r, &wg);
        csp_wg_wait(&wg);
        *out = l + r;
    }
    if (parent)
        csp_wg_done(parent);
}

static void main_task(void *arg)
{
    const char *policy = arg;
    int64_t n = 100000, total = 0;
    csp_time_t t0 = csp_now();
    sum(0, n, &total, NULL);
    csp_time_t dt = csp_now() - t0;
    printf("%s: sum(0, %lld) = %lld (expected %lld) in %.1f ms on %d workers\n", policy,
           (long long)n, (long long)total, (long long)(n * (n + 1) / 2), (double)dt / 1e6,
           csp_workers());
}

int main(void)
{
    csp_config_t cfg = { 0 };
    cfg.spawn_policy = CSP_SPAWN_HELP_FIRST;
    if (csp_run(main_task, "help-first", &cfg))
        return 1;
    cfg.spawn_policy = CSP_SPAWN_CHILD_FIRST;
    if (csp_run(main_task, "child-first", &cfg))
        return 1;
    return 0;
}
