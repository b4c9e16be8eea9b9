/* ch4_repeat_take: two handy generators. repeat sends its values over and
 * over until it is cancelled; take passes on the first n values of a
 * stream and then closes, reading no more than that. Together they make a
 * finite stream from an endless one.
 *
 * Go original:
 *   repeat := func(done <-chan interface{}, values ...interface{}) <-chan interface{} {
 *       valueStream := make(chan interface{})
 *       go func() {
 *           defer close(valueStream)
 *           for {
 *               for _, v := range values {
 *                   select {
 *                   case <-done:
 *                       return
 *                   case valueStream <- v:
 *                   }
 *               }
 *           }
 *       }()
 *       return valueStream
 *   }
 *
 *   take := func(done <-chan interface{}, valueStream <-chan interface{}, num int) <-chan interface{} {
 *       takeStream := make(chan interface{})
 *       go func() {
 *           defer close(takeStream)
 *           for i := 0; i < num; i++ {
 *               select {
 *               case <-done:
 *                   return
 *               case takeStream <- <-valueStream:
 *               }
 *           }
 *       }()
 *       return takeStream
 *   }
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   for num := range take(done, repeat(done, 1), 10) {
 *       fmt.Printf("%v ", num)
 *   }
 *
 * Output: "1 1 1 1 1 1 1 1 1 1 " (Go prints a space after every value and
 * no newline; this program ends the line). The untyped stages work on any
 * element size, here an int. Once take has ended, repeat is still blocked
 * on its next send; cancelling the context (Go's deferred close(done)) ends
 * it, and the WaitGroup in the options joins both stages.
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t opts = { .flags = CSP_PIPE_CONSUME, .wg = &stages };

    const int one = 1;
    csp_chan_t *nums = csp_pipe_take(done, csp_pipe_repeat(done, &one, 1, sizeof(int), &opts),
                                     10, &opts);
    if (!nums) {
        fprintf(stderr, "pipeline: out of memory\n");
        csp_ctx_release(done);
        return;
    }
    int num;
    while (csp_chan_recv(nums, &num) == 0)        /* for num := range take(...) */
        printf("%d ", num);
    printf("\n");

    csp_chan_release(nums);
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
