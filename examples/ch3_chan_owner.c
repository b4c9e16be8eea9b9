/* ch3_chan_owner: channel ownership. The owner makes the channel, writes to
 * it, closes it, and hands out only the reading end; the consumer ranges over
 * it until it is closed.
 *
 * Go original:
 *   chanOwner := func() <-chan int {
 *       resultStream := make(chan int, 5)
 *       go func() {
 *           defer close(resultStream)
 *           for i := 0; i <= 5; i++ {
 *               resultStream <- i
 *           }
 *       }()
 *       return resultStream
 *   }
 *
 *   resultStream := chanOwner()
 *   for result := range resultStream {
 *       fmt.Printf("received: %d\n", result)
 *   }
 *   fmt.Println("done receiving")
 */
#include <csp.h>
#include <stdio.h>

CSP_CHAN_DECLARE(int_chan, int);

/* The goroutine owns one reference to the channel and drops it when done. */
CSP_TASK(produce, (int_chan_t, result_stream))
{
    for (int i = 0; i <= 5; i++)
        int_chan_send(result_stream, i);
    int_chan_close(result_stream);      /* defer close(resultStream) */
    int_chan_release(result_stream);
}

/* Returns the read-only view; the caller owns one reference (release it). */
static int_chan_recv_only_t chan_owner(void)
{
    int_chan_t result_stream = int_chan_make(5);
    CSP_GO(produce, int_chan_retain(result_stream));
    return int_chan_recv_only(result_stream);
}

static void main_task(void *arg)
{
    (void)arg;
    int_chan_recv_only_t result_stream = chan_owner();
    int result;
    while (int_chan_ro_recv(result_stream, &result) == 0)   /* range */
        printf("received: %d\n", result);
    printf("done receiving\n");
    csp_chan_release(result_stream.c);
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
