/* ch4_tee: the tee-channel. Like the Unix tee, it reads one stream and
 * sends every value to two outputs, to both before it reads the next (so
 * the two consumers advance in lock step; a consumer that stops reading one
 * side stalls the other).
 *
 * Go original:
 *   tee := func(done <-chan interface{}, in <-chan interface{}) (_, _ <-chan interface{}) {
 *       out1 := make(chan interface{})
 *       out2 := make(chan interface{})
 *       go func() {
 *           defer close(out1)
 *           defer close(out2)
 *           for val := range orDone(done, in) {
 *               var out1, out2 = out1, out2
 *               for i := 0; i < 2; i++ {
 *                   select {
 *                   case <-done:
 *                   case out1 <- val:
 *                       out1 = nil
 *                   case out2 <- val:
 *                       out2 = nil
 *                   }
 *               }
 *           }
 *       }()
 *       return out1, out2
 *   }
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   out1, out2 := tee(done, take(done, repeat(done, 1, 2), 4))
 *
 *   for val1 := range out1 {
 *       fmt.Printf("out1: %v, out2: %v\n", val1, <-out2)
 *   }
 *
 * csp_pipe_tee does the same with a select over the two sends (a sent-to
 * output becomes a nil channel, as in the book) and ctx as done. This one
 * uses the typed stages of CSP_PIPE_DECLARE.
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>

CSP_CHAN_DECLARE(int_chan, int);
CSP_PIPE_DECLARE(int_chan, int);

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t opts = { .flags = CSP_PIPE_CONSUME, .wg = &stages };

    const int one_two[] = { 1, 2 };
    int_chan_t out1, out2;
    if (int_chan_tee(done,
                     int_chan_take(done, int_chan_repeat(done, one_two, 2, &opts), 4, &opts),
                     &out1, &out2, &opts) != 0) {
        fprintf(stderr, "tee failed\n");
        csp_ctx_release(done);
        return;
    }
    int val1, val2;
    while (int_chan_recv(out1, &val1) == 0) {     /* for val1 := range out1 */
        int_chan_recv(out2, &val2);               /* <-out2 */
        printf("out1: %d, out2: %d\n", val1, val2);
    }

    int_chan_release(out1);
    int_chan_release(out2);
    csp_ctx_cancel(done);                         /* defer close(done) */
    csp_wg_wait(&stages);
    csp_ctx_release(done);
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
