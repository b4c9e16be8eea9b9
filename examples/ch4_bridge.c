/* ch4_bridge: the bridge-channel. A stream of streams (a channel of
 * channels, e.g. one channel per batch or per connection) is flattened into
 * one stream: bridge reads each inner channel to its end, in the order the
 * channels arrived, and passes its values on.
 *
 * Go original:
 *   bridge := func(done <-chan interface{}, chanStream <-chan <-chan interface{}) <-chan interface{} {
 *       valStream := make(chan interface{})
 *       go func() {
 *           defer close(valStream)
 *           for {
 *               var stream <-chan interface{}
 *               select {
 *               case maybeStream, ok := <-chanStream:
 *                   if ok == false {
 *                       return
 *                   }
 *                   stream = maybeStream
 *               case <-done:
 *                   return
 *               }
 *               for val := range orDone(done, stream) {
 *                   select {
 *                   case valStream <- val:
 *                   case <-done:
 *                   }
 *               }
 *           }
 *       }()
 *       return valStream
 *   }
 *
 *   genVals := func() <-chan <-chan interface{} {
 *       chanStream := make(chan (<-chan interface{}))
 *       go func() {
 *           defer close(chanStream)
 *           for i := 0; i < 10; i++ {
 *               stream := make(chan interface{}, 1)
 *               stream <- i
 *               close(stream)
 *               chanStream <- stream
 *           }
 *       }()
 *       return chanStream
 *   }
 *
 *   for v := range bridge(nil, genVals()) {
 *       fmt.Printf("%v ", v)
 *   }
 *
 * Ownership in C: each channel sent on chanStream carries one reference,
 * which passes to bridge (it releases each inner channel once drained).
 * Go passes a nil done; here it is the background context, which is never
 * cancelled. Output as in the book: "0 1 2 3 4 5 6 7 8 9 " (the line is
 * ended here).
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>

static csp_wg_t tasks = CSP_WG_INIT;

CSP_TASK(gen_vals_task, (csp_chan_t *, chan_stream))
{
    for (int i = 0; i < 10; i++) {
        csp_chan_t *stream = csp_chan_make(sizeof(int), 1);
        csp_chan_send(stream, &i);
        csp_chan_close(stream);
        if (csp_chan_send(chan_stream, &stream) != 0) { /* the reference goes with it */
            csp_chan_release(stream);                   /* unless the send fails */
            break;
        }
    }
    csp_chan_close(chan_stream);                        /* defer close(chanStream) */
    csp_chan_release(chan_stream);
    csp_wg_done(&tasks);
}

static csp_chan_t *gen_vals(void)
{
    csp_chan_t *chan_stream = csp_chan_make(sizeof(csp_chan_t *), 0);
    csp_wg_add(&tasks, 1);
    CSP_GO(gen_vals_task, csp_chan_retain(chan_stream));
    return chan_stream;
}

static void main_task(void *arg)
{
    (void)arg;
    const csp_pipe_opts_t opts = { .flags = CSP_PIPE_CONSUME, .wg = &tasks };
    csp_chan_t *vals = csp_pipe_bridge(csp_ctx_background(), gen_vals(), sizeof(int), &opts);
    if (!vals) {
        fprintf(stderr, "bridge failed\n");
        return;
    }
    int v;
    while (csp_chan_recv(vals, &v) == 0)
        printf("%d ", v);
    printf("\n");
    csp_chan_release(vals);
    csp_wg_wait(&tasks);
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
