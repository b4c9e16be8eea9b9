/* ch3_waitgroup: waiting for a set of concurrent operations with a
 * WaitGroup, when their results do not matter (or are collected another way).
 *
 * 1. Two goroutines that announce themselves and nap; Wait returns once both
 *    have called Done.
 * 2. Hello from five greeters: Add the whole count up front, then start
 *    them; each calls Done when it has printed.
 *
 * The goroutines print in whatever order the scheduler runs them (the
 * output is compared sorted); "All goroutines complete." is always after
 * the two sleeping lines, because Wait orders it after both Done calls.
 *
 * Go original:
 *   var wg sync.WaitGroup
 *   wg.Add(1)
 *   go func() {
 *       defer wg.Done()
 *       fmt.Println("1st goroutine sleeping...")
 *       time.Sleep(1)
 *   }()
 *   wg.Add(1)
 *   go func() {
 *       defer wg.Done()
 *       fmt.Println("2nd goroutine sleeping...")
 *       time.Sleep(2)
 *   }()
 *   wg.Wait()
 *   fmt.Println("All goroutines complete.")
 *
 *   hello := func(wg *sync.WaitGroup, id int) {
 *       defer wg.Done()
 *       fmt.Printf("Hello from %v!\n", id)
 *   }
 *   const numGreeters = 5
 *   var wg sync.WaitGroup
 *   wg.Add(numGreeters)
 *   for i := 0; i < numGreeters; i++ {
 *       go hello(&wg, i+1)
 *   }
 *   wg.Wait()
 */
#include <csp.h>
#include <stdio.h>

CSP_TASK(sleeper, (csp_wg_t *, wg), (const char *, name), (csp_duration_t, nap))
{
    printf("%s goroutine sleeping...\n", name);
    csp_sleep(nap);
    csp_wg_done(wg);                        /* defer wg.Done() */
}

CSP_TASK(hello, (csp_wg_t *, wg), (int, id))
{
    printf("Hello from %d!\n", id);
    csp_wg_done(wg);
}

static void sleepers(void)
{
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, 1);
    CSP_GO(sleeper, &wg, "1st", 1 * CSP_NANOSECOND);
    csp_wg_add(&wg, 1);
    CSP_GO(sleeper, &wg, "2nd", 2 * CSP_NANOSECOND);
    csp_wg_wait(&wg);
    printf("All goroutines complete.\n");
}

static void greeters(void)
{
    enum { NUM_GREETERS = 5 };
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, NUM_GREETERS);
    for (int i = 0; i < NUM_GREETERS; i++)
        CSP_GO(hello, &wg, i + 1);
    csp_wg_wait(&wg);
}

static void main_task(void *arg)
{
    (void)arg;
    sleepers();
    greeters();
}

int main(void)
{
    int err = csp_run(main_task, NULL, NULL);
    if (err) {
        fprintf(stderr, "csp_run: %s\n", csp_strerror(err));
        return 1;
    }
    return 0;
}
