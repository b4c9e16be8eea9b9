/* ch4_leak_dowork: a goroutine leak, and how a done signal prevents it.
 *
 * Go original, the leak (strings is nil: the goroutine blocks forever):
 *   doWork := func(strings <-chan string) <-chan interface{} {
 *       completed := make(chan interface{})
 *       go func() {
 *           defer fmt.Println("doWork exited.")
 *           defer close(completed)
 *           for s := range strings {
 *               fmt.Println(s)
 *           }
 *       }()
 *       return completed
 *   }
 *   doWork(nil)
 *   // Perhaps more work is done here
 *   fmt.Println("Done.")
 *
 * and the fix: the parent passes a done channel and closes it.
 *   doWork := func(done <-chan interface{}, strings <-chan string) <-chan interface{} {
 *       terminated := make(chan interface{})
 *       go func() {
 *           defer fmt.Println("doWork exited.")
 *           defer close(terminated)
 *           for {
 *               select {
 *               case s := <-strings:
 *                   fmt.Println(s)
 *               case <-done:
 *                   return
 *               }
 *           }
 *       }()
 *       return terminated
 *   }
 *   done := make(chan interface{})
 *   terminated := doWork(done, nil)
 *   go func() {
 *       // Cancel the operation after 1 second.
 *       time.Sleep(1 * time.Second)
 *       fmt.Println("Canceling doWork goroutine...")
 *       close(done)
 *   }()
 *   <-terminated
 *   fmt.Println("Done.")
 *
 * In libcsp the done channel is a context (csp_ctx_t): csp_select_ctx treats
 * it as one more case. A NULL channel in a select case is never ready, like
 * Go's nil channel. The first part prints the runtime's live-task count to
 * show the leaked task; the runtime frees it when csp_run returns. The
 * second waits 100 ms instead of a second.
 */
#include <csp.h>
#include <stdio.h>

/* ---- the leak ---- */
CSP_TASK(leaky_work, (csp_chan_t *, strings), (csp_chan_t *, completed))
{
    const char *s;
    for (;;) { /* for s := range strings, on a nil channel: blocks forever */
        csp_case_t c[] = { CSP_RECV_CASE(strings, &s) };
        if (csp_select(c, 1, CSP_FOREVER) != 0 || c[0].status != 0)
            break;
        printf("%s\n", s);
    }
    csp_chan_close(completed);
    printf("doWork exited.\n");
}

/* The leaked task never returns, so it borrows `completed` from the caller
 * (which keeps it until the end of the program): a reference of its own
 * would leak along with the task -- the C face of a goroutine leak. */
static csp_chan_t *leaky_do_work(csp_chan_t *strings)
{
    csp_chan_t *completed = csp_chan_make(0, 0);
    CSP_GO(leaky_work, strings, completed);
    return completed;
}

/* ---- the fix ---- */
CSP_TASK(do_work_task, (csp_ctx_t *, done), (csp_chan_t *, strings),
         (csp_chan_t *, terminated))
{
    const char *s;
    for (;;) {
        csp_case_t c[] = { CSP_RECV_CASE(strings, &s) };
        if (csp_select_ctx(done, c, 1) != 0)   /* case <-done: return */
            break;
        printf("%s\n", s);
    }
    printf("doWork exited.\n");                /* defer fmt.Println */
    csp_chan_close(terminated);                /* defer close(terminated) */
    csp_chan_release(terminated);
    csp_ctx_release(done);
}

static csp_chan_t *do_work(csp_ctx_t *done, csp_chan_t *strings)
{
    csp_chan_t *terminated = csp_chan_make(0, 0);
    CSP_GO(do_work_task, csp_ctx_retain(done), strings, csp_chan_retain(terminated));
    return terminated;
}

CSP_TASK(canceler, (csp_ctx_t *, done))
{
    csp_sleep(100 * CSP_MILLISECOND);
    printf("Canceling doWork goroutine...\n");
    csp_ctx_cancel(done);                      /* close(done) */
    csp_ctx_release(done);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_stats_t st0, st1;
    csp_stats(&st0);
    csp_chan_t *completed = leaky_do_work(NULL);
    csp_yield();                               /* let it start and block */
    printf("Done.\n");
    csp_stats(&st1);
    printf("leaked tasks: %llu\n",
           (unsigned long long)(st1.tasks_live - st0.tasks_live));

    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_chan_t *terminated = do_work(done, NULL);
    CSP_GO(canceler, csp_ctx_retain(done));
    csp_chan_recv(terminated, NULL);           /* <-terminated */
    printf("Done.\n");
    csp_chan_release(terminated);
    csp_ctx_release(done);
    csp_chan_release(completed); /* the leaked task is freed unrun when we return */
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
