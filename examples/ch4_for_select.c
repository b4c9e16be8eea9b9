/* ch4_for_select: the for-select loop, in its two shapes from chapter 4.
 *
 * 1. Sending iteration variables out on a channel, stopping early if done
 *    is closed.
 * 2. Looping forever, doing work between polls of done (select with a
 *    default case), until done is closed.
 *
 * Go original:
 *   for _, s := range []string{"a", "b", "c"} {
 *       select {
 *       case <-done:
 *           return
 *       case stringStream <- s:
 *       }
 *   }
 *
 *   for {
 *       select {
 *       case <-done:
 *           return
 *       default:
 *       }
 *       // Do non-preemptable work
 *   }
 */
#include <csp.h>
#include <stdio.h>

/* Shape 1: the goroutine sends "a", "b", "c" unless done closes first. */
CSP_TASK(send_strings, (csp_chan_t *, done), (csp_chan_t *, string_stream))
{
    static const char *const words[] = { "a", "b", "c" };
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        const char *s = words[i];
        csp_case_t cases[] = {
            CSP_RECV_CASE(done, NULL),
            CSP_SEND_CASE(string_stream, &s),
        };
        if (csp_select(cases, 2, CSP_FOREVER) == 0)
            break;                                  /* case <-done: return */
    }
    csp_chan_close(string_stream);
    csp_chan_release(string_stream);
    csp_chan_release(done);
}

/* Shape 2: works until done closes, then reports how much it did. */
CSP_TASK(worker, (csp_chan_t *, done), (csp_wg_t *, wg), (long *, units))
{
    long n = 0;
    for (;;) {
        csp_case_t cases[] = { CSP_RECV_CASE(done, NULL) };
        if (csp_select(cases, 1, 0) == 0)           /* deadline 0: default */
            break;
        /* Do non-preemptable work (here: a short nap, so that this
         * cooperative task also lets the others run). */
        n++;
        csp_sleep(CSP_MILLISECOND);
    }
    *units = n;
    csp_chan_release(done);
    csp_wg_done(wg);
}

static void main_task(void *arg)
{
    (void)arg;

    /* Shape 1. */
    csp_chan_t *done = csp_chan_make(0, 0);
    csp_chan_t *string_stream = csp_chan_make(sizeof(const char *), 0);
    CSP_GO(send_strings, csp_chan_retain(done), csp_chan_retain(string_stream));
    const char *s;
    while (csp_chan_recv(string_stream, &s) == 0)
        printf("%s\n", s);
    csp_chan_close(done);
    csp_chan_release(string_stream);
    csp_chan_release(done);

    /* Shape 2. */
    done = csp_chan_make(0, 0);
    csp_wg_t wg = CSP_WG_INIT;
    long units = 0;
    csp_wg_add(&wg, 1);
    CSP_GO(worker, csp_chan_retain(done), &wg, &units);
    csp_sleep(50 * CSP_MILLISECOND);
    csp_chan_close(done);
    csp_wg_wait(&wg);
    printf("worker stopped after %ld units of work\n", units);
    csp_chan_release(done);
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
