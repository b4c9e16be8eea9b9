/* ch4_or_done: the or-done channel. A channel that comes from another part
 * of the system may never close when *our* work is cancelled, so every read
 * of it would need a select with done. orDone wraps that select once: its
 * output closes when the input closes or when done does, and the consumer
 * goes back to a plain range loop.
 *
 * Go original:
 *   orDone := func(done, c <-chan interface{}) <-chan interface{} {
 *       valStream := make(chan interface{})
 *       go func() {
 *           defer close(valStream)
 *           for {
 *               select {
 *               case <-done:
 *                   return
 *               case v, ok := <-c:
 *                   if ok == false {
 *                       return
 *                   }
 *                   select {
 *                   case valStream <- v:
 *                   case <-done:
 *                   }
 *               }
 *           }
 *       }()
 *       return valStream
 *   }
 *
 *   for val := range orDone(done, myChan) {
 *       // Do something with val
 *   }
 *
 * Here myChan is an endless stream owned by the rest of the program (its
 * own context, "app"); our loop has its own "done". After five values we
 * cancel done: the range loop ends although myChan never closes. (A value
 * already on its way may still arrive after the cancel, exactly as Go's
 * select may pick a ready send over done; the loop does not print such
 * stragglers.) Then a second loop over a channel that the
 * producer closes: orDone ends with it too.
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>

/* the rest of the system: 0, 1, 2, ... forever */
static int count_up(void *arg, void *out)
{
    int *next = arg;
    *(int *)out = (*next)++;
    return 0;
}

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *app = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t opts = { .wg = &stages };
    int next = 0;
    csp_chan_t *my_chan = csp_pipe_repeat_fn(app, sizeof(int), count_up, &next, &opts);

    /* 1. our side is cancelled; myChan goes on */
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_chan_t *vals = csp_pipe_or_done(done, my_chan, &opts);
    int val, seen = 0;
    printf("reading myChan until done:");
    while (csp_chan_recv(vals, &val) == 0) {      /* for val := range orDone(done, myChan) */
        if (seen < 5) {
            printf(" %d", val);
            if (++seen == 5)
                csp_ctx_cancel(done);             /* our work is cancelled */
        } /* else: a value handed over before the cancel took effect */
    }
    printf("\nthe loop ended; myChan is %s\n", csp_chan_closed(my_chan) ? "closed" : "still open");
    csp_chan_release(vals);
    csp_ctx_release(done);

    /* 2. the producer closes its channel: the loop ends the same way */
    const int ints[] = { 10, 20, 30 };
    csp_chan_t *finite = csp_pipe_generator(app, ints, 3, sizeof(int), &opts);
    done = csp_ctx_with_cancel(csp_ctx_background());
    vals = csp_pipe_or_done(done, finite, &opts);
    printf("reading a channel that closes:");
    while (csp_chan_recv(vals, &val) == 0)
        printf(" %d", val);
    printf("\nthe loop ended with it\n");
    csp_chan_release(vals);
    csp_chan_release(finite);
    csp_ctx_cancel(done);
    csp_ctx_release(done);

    csp_chan_release(my_chan);
    csp_ctx_cancel(app);                          /* the rest of the system stops */
    csp_wg_wait(&stages);
    csp_ctx_release(app);
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
