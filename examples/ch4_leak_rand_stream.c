/* ch4_leak_rand_stream: preventing a goroutine leak. The producer of an
 * endless random stream also selects on a done channel; closing done makes
 * it return (and print its farewell) instead of blocking forever on a send.
 *
 * Go original:
 *   newRandStream := func(done <-chan interface{}) <-chan int {
 *       randStream := make(chan int)
 *       go func() {
 *           defer fmt.Println("newRandStream has exited.")
 *           defer close(randStream)
 *           for {
 *               select {
 *               case randStream <- rand.Int():
 *               case <-done:
 *                   return
 *               }
 *           }
 *       }()
 *       return randStream
 *   }
 *
 *   done := make(chan interface{})
 *   randStream := newRandStream(done)
 *   fmt.Println("3 random ints:")
 *   for i := 1; i <= 3; i++ {
 *       fmt.Printf("%d: %d\n", i, <-randStream)
 *   }
 *   close(done)
 *
 *   // Simulate ongoing work
 *   time.Sleep(1 * time.Second)
 *
 * Go waits with a sleep; here the goroutine also closes an "exited" channel
 * so that main waits for the farewell line deterministically.
 */
#include <csp.h>
#include <stdint.h>
#include <stdio.h>

/* rand.Int(): a small xorshift generator owned by the producer task. */
static int64_t next_rand(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    return (int64_t)(x >> 1);   /* non-negative, like rand.Int() */
}

CSP_TASK(rand_producer, (csp_chan_t *, done), (csp_chan_t *, rand_stream),
         (csp_chan_t *, exited))
{
    uint64_t state = (uint64_t)csp_now() | 1;
    for (;;) {
        int64_t v = next_rand(&state);
        csp_case_t cases[] = {
            CSP_SEND_CASE(rand_stream, &v),
            CSP_RECV_CASE(done, NULL),
        };
        if (csp_select(cases, 2, CSP_FOREVER) == 1)
            break;                                   /* case <-done: return */
    }
    csp_chan_close(rand_stream);                     /* defer close(randStream) */
    printf("newRandStream has exited.\n");           /* defer fmt.Println(...) */
    csp_chan_release(rand_stream);
    csp_chan_release(done);
    csp_chan_close(exited);
    csp_chan_release(exited);
}

/* Returns the stream (the caller owns one reference); the producer task keeps
 * its own references to done and the stream. */
static csp_chan_t *new_rand_stream(csp_chan_t *done, csp_chan_t *exited)
{
    csp_chan_t *rand_stream = csp_chan_make(sizeof(int64_t), 0);
    CSP_GO(rand_producer, csp_chan_retain(done), csp_chan_retain(rand_stream),
           csp_chan_retain(exited));
    return rand_stream;
}

static void main_task(void *arg)
{
    (void)arg;
    csp_chan_t *done = csp_chan_make(0, 0);
    csp_chan_t *exited = csp_chan_make(0, 0);
    csp_chan_t *rand_stream = new_rand_stream(done, exited);
    printf("3 random ints:\n");
    for (int i = 1; i <= 3; i++) {
        int64_t v;
        csp_chan_recv(rand_stream, &v);
        printf("%d: %lld\n", i, (long long)v);
    }
    fflush(stdout);
    csp_chan_close(done);

    /* Simulate ongoing work (time.Sleep in Go): wait for the producer. */
    csp_chan_recv(exited, NULL);

    csp_chan_release(rand_stream);
    csp_chan_release(exited);
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
