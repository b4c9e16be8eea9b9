/* ch3_select_timeout: two uses of select from chapter 3.
 *
 * 1. A timeout with time.After: nothing ever arrives on c (a nil channel), so
 *    the time.After case fires. (1 s in the book; 100 ms here.)
 *
 * 2. The work-cycle counter: a select with a default case polls the done
 *    channel between units of work, until a goroutine closes done. (In the
 *    book done closes after 5 s and each cycle sleeps 1 s; scaled here to
 *    500 ms and 100 ms. The count depends on timing, so it is masked.)
 *
 * Go original:
 *   var c <-chan int
 *   select {
 *   case <-c:
 *   case <-time.After(1 * time.Second):
 *       fmt.Println("Timed out.")
 *   }
 *
 *   done := make(chan interface{})
 *   go func() {
 *       time.Sleep(5 * time.Second)
 *       close(done)
 *   }()
 *
 *   workCounter := 0
 *   loop:
 *   for {
 *       select {
 *       case <-done:
 *           break loop
 *       case <-time.After(10 * time.Second):
 *           break loop
 *       default:
 *       }
 *       // Simulate work
 *       workCounter++
 *       time.Sleep(1 * time.Second)
 *   }
 *   fmt.Printf("Achieved %v cycles of work before signalled to stop.\n", workCounter)
 */
#include <csp.h>
#include <stdio.h>

static void timeout_example(void)
{
    csp_chan_t *c = NULL;                    /* var c <-chan int: never ready */
    csp_chan_t *after = csp_after(100 * CSP_MILLISECOND);
    csp_time_t t;
    csp_case_t cases[] = {
        CSP_RECV_CASE(c, NULL),
        CSP_RECV_CASE(after, &t),
    };
    if (csp_select(cases, 2, CSP_FOREVER) == 1)
        printf("Timed out.\n");
    csp_chan_release(after);
}

CSP_TASK(closer, (csp_chan_t *, done))
{
    csp_sleep(500 * CSP_MILLISECOND);
    csp_chan_close(done);
    csp_chan_release(done);
}

static void work_cycle_example(void)
{
    csp_chan_t *done = csp_chan_make(0, 0);  /* chan interface{} used as a signal */
    CSP_GO(closer, csp_chan_retain(done));

    int work_counter = 0;
    for (;;) {
        /* time.After in the loop: a fresh 10 s timer per iteration; releasing
         * it before it fires cancels it. */
        csp_chan_t *after = csp_after(10 * CSP_SECOND);
        csp_case_t cases[] = {
            CSP_RECV_CASE(done, NULL),
            CSP_RECV_CASE(after, NULL),
        };
        int r = csp_select(cases, 2, 0);      /* deadline 0: Go's default */
        csp_chan_release(after);
        if (r == 0 || r == 1)
            break;                            /* break loop */
        /* Simulate work */
        work_counter++;
        csp_sleep(100 * CSP_MILLISECOND);
    }
    printf("Achieved %d cycles of work before signalled to stop.\n", work_counter);
    csp_chan_release(done);
}

static void main_task(void *arg)
{
    (void)arg;
    timeout_example();
    work_cycle_example();
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
