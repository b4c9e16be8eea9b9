/* ch4_pipeline_stream: a stream-processing pipeline built from the library's
 * stages. Each stage is a task reading one channel and writing the next; the
 * values flow through one at a time, and every stage stops when done (here a
 * context) is cancelled. Compare ch4_pipeline_batch, which runs the same
 * arithmetic stage by stage over whole slices.
 *
 * Go original:
 *   generator := func(done <-chan interface{}, integers ...int) <-chan int {
 *       intStream := make(chan int)
 *       go func() {
 *           defer close(intStream)
 *           for _, i := range integers {
 *               select {
 *               case <-done:
 *                   return
 *               case intStream <- i:
 *               }
 *           }
 *       }()
 *       return intStream
 *   }
 *
 *   multiply := func(done <-chan interface{}, intStream <-chan int, multiplier int) <-chan int {
 *       multipliedStream := make(chan int)
 *       go func() {
 *           defer close(multipliedStream)
 *           for i := range intStream {
 *               select {
 *               case <-done:
 *                   return
 *               case multipliedStream <- i * multiplier:
 *               }
 *           }
 *       }()
 *       return multipliedStream
 *   }
 *   add := ... the same with i + additive ...
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   intStream := generator(done, 1, 2, 3, 4)
 *   pipeline := multiply(done, add(done, multiply(done, intStream, 2), 1), 2)
 *
 *   for v := range pipeline {
 *       fmt.Println(v)
 *   }
 *
 * Here generator is csp_pipe_generator and multiply/add are csp_pipe_map
 * stages, in their typed form (CSP_PIPE_DECLARE): the operand travels in the
 * callback's arg. CSP_PIPE_CONSUME lets each stage take over the reference
 * to its input, so the stages nest exactly like the Go expression; the
 * WaitGroup in the options joins the stages' tasks at the end.
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>

CSP_CHAN_DECLARE(int_chan, int);
CSP_PIPE_DECLARE(int_chan, int);

static int multiply(void *arg, const int *in, int *out)
{
    *out = *in * *(const int *)arg;
    return CSP_PIPE_EMIT;
}

static int add(void *arg, const int *in, int *out)
{
    *out = *in + *(const int *)arg;
    return CSP_PIPE_EMIT;
}

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    static const int two = 2, one = 1;
    static const int ints[] = { 1, 2, 3, 4 };
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME, .wg = &stages };

    int_chan_t int_stream = int_chan_generator(done, ints, 4, &own);
    int_chan_t pipeline =
        int_chan_map(done,
                     int_chan_map(done, int_chan_map(done, int_stream, multiply, (void *)&two, &own),
                                  add, (void *)&one, &own),
                     multiply, (void *)&two, &own);
    if (!pipeline.c) {
        fprintf(stderr, "pipeline: out of memory\n");
        csp_ctx_release(done);
        return;
    }

    int v;
    while (int_chan_recv(pipeline, &v) == 0)    /* for v := range pipeline */
        printf("%d\n", v);

    int_chan_release(pipeline);
    csp_ctx_cancel(done);                        /* defer close(done) */
    csp_wg_wait(&stages);                        /* join the stages' tasks */
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
