/* ch3_once: Once runs a function exactly once, however many goroutines ask.
 *
 * 1. A hundred goroutines call once.Do(increment): the count is 1.
 * 2. Once counts calls to Do, not distinct functions: after
 *    once.Do(increment), once.Do(decrement) does nothing, so the count is 1.
 *
 * (The book's third example, where initA's Do waits for initB's Do, which
 * waits for initA's, deadlocks by design and is not ported.)
 *
 * Go original:
 *   var count int
 *   increment := func() { count++ }
 *   var once sync.Once
 *   var increments sync.WaitGroup
 *   increments.Add(100)
 *   for i := 0; i < 100; i++ {
 *       go func() {
 *           defer increments.Done()
 *           once.Do(increment)
 *       }()
 *   }
 *   increments.Wait()
 *   fmt.Printf("Count is %d\n", count)
 *
 *   var count int
 *   increment := func() { count++ }
 *   decrement := func() { count-- }
 *   var once sync.Once
 *   once.Do(increment)
 *   once.Do(decrement)
 *   fmt.Printf("Count: %d\n", count)
 */
#include <csp.h>
#include <stdio.h>

/* fn(arg) for csp_once: arg is the count to change. Once orders the write
 * before every csp_once return, so the readers below need no lock. */
static void increment(void *count) { ++*(int *)count; }
static void decrement(void *count) { --*(int *)count; }

CSP_TASK(do_increment, (csp_once_t *, once), (int *, count), (csp_wg_t *, increments))
{
    csp_once(once, increment, count);
    csp_wg_done(increments);
}

static void hundred_goroutines(void)
{
    int count = 0;
    csp_once_t once = CSP_ONCE_INIT;
    csp_wg_t increments = CSP_WG_INIT;
    csp_wg_add(&increments, 100);
    for (int i = 0; i < 100; i++)
        CSP_GO(do_increment, &once, &count, &increments);
    csp_wg_wait(&increments);
    printf("Count is %d\n", count);
}

static void one_do_per_once(void)
{
    int count = 0;
    csp_once_t once = CSP_ONCE_INIT;
    csp_once(&once, increment, &count);
    csp_once(&once, decrement, &count);
    printf("Count: %d\n", count);
}

static void main_task(void *arg)
{
    (void)arg;
    hundred_goroutines();
    one_do_per_once();
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
