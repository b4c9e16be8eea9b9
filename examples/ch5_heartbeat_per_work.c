/* ch5_heartbeat_per_work: "Concurrency in Go", chapter 5, Heartbeats that
 * occur at the beginning of a unit of work.
 *
 * doWork sends a pulse before each of its 10 units of work (a random number
 * 0-9 sent on the results channel); main prints "pulse" and "results N":
 * one pulse for every result. The pulse is a non-blocking send into a
 * one-slot heartbeat channel, so a pulse is never lost when the listener is
 * a little late, and never blocks the worker when nobody listens.
 *
 * csp_heartbeat_go with interval 0 is the book's doWork shape for per-work
 * heartbeats; csp_heartbeat_pulse is the book's
 * `select { case heartbeatStream <- struct{}{}: default: }`.
 *
 * Go's select picks at random among ready cases, so when a pulse and a
 * result are both waiting the book's program may print them in either
 * order (and then drop the next pulse, the slot being full). Listening with
 * csp_select_biased, heartbeat first, prints them in the book's order every
 * time.
 *
 * Go original:
 *   doWork := func(done <-chan interface{}) (<-chan interface{}, <-chan int) {
 *       heartbeatStream := make(chan interface{}, 1)
 *       workStream := make(chan int)
 *       go func() {
 *           defer close(heartbeatStream)
 *           defer close(workStream)
 *           for i := 0; i < 10; i++ {
 *               select {
 *               case heartbeatStream <- struct{}{}:
 *               default:
 *               }
 *               select {
 *               case <-done:
 *                   return
 *               case workStream <- rand.Intn(10):
 *               }
 *           }
 *       }()
 *       return heartbeatStream, workStream
 *   }
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *   heartbeat, results := doWork(done)
 *   for {
 *       select {
 *       case _, ok := <-heartbeat:
 *           if ok {
 *               fmt.Println("pulse")
 *           } else {
 *               return
 *           }
 *       case r, ok := <-results:
 *           if ok {
 *               fmt.Printf("results %v\n", r)
 *           } else {
 *               return
 *           }
 *       }
 *   }
 */
#include <csp.h>
#include <csp/supervise.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int do_work(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *results, void *arg)
{
    unsigned seed = *(unsigned *)arg;
    for (int i = 0; i < 10; i++) {
        csp_heartbeat_pulse(hb); /* never blocks */
        int r = (int)(rand_r(&seed) % 10);
        if (csp_chan_send_ctx(ctx, results, &r) != 0) /* case <-done: return */
            return 0;
    }
    return 0; /* the task closes both channels */
}

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    unsigned seed = (unsigned)time(NULL);
    csp_chan_t *heartbeat, *results;
    if (csp_heartbeat_go(done, 0, sizeof(int), 0, do_work, &seed, &heartbeat, &results) != 0)
        return;
    for (;;) {
        int r;
        csp_case_t cases[] = { CSP_RECV_CASE(heartbeat, NULL), CSP_RECV_CASE(results, &r) };
        int i = csp_select_biased(cases, 2, CSP_FOREVER);
        if (i < 0 || cases[i].status == CSP_ECLOSED)
            break;
        if (i == 0)
            printf("pulse\n");
        else
            printf("results %d\n", r);
    }
    csp_ctx_cancel(done); /* defer close(done) */
    while (csp_chan_recv(results, NULL) == 0) /* wait for the worker to close both */
        ;
    while (csp_chan_recv(heartbeat, NULL) == 0)
        ;
    csp_chan_release(heartbeat);
    csp_chan_release(results);
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
