/* ch4_repeat_fn: repeatFn, a generator that calls a function for every
 * value, here a random-number generator, combined with take(10).
 *
 * Go original:
 *   repeatFn := func(done <-chan interface{}, fn func() interface{}) <-chan interface{} {
 *       valueStream := make(chan interface{})
 *       go func() {
 *           defer close(valueStream)
 *           for {
 *               select {
 *               case <-done:
 *                   return
 *               case valueStream <- fn():
 *               }
 *           }
 *       }()
 *       return valueStream
 *   }
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   rand := func() interface{} { return rand.Int() }
 *
 *   for num := range take(done, repeatFn(done, rand), 10) {
 *       fmt.Println(num)
 *   }
 *
 * The callback gets an argument (a closure's captured state in Go): here the
 * state of a small xorshift generator, which only the repeat_fn task touches.
 * The callback could also end the stream by returning non-zero.
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdint.h>
#include <stdio.h>

/* rand.Int(): a non-negative 63-bit pseudo-random number */
static int rand_int(void *arg, void *out)
{
    uint64_t *state = arg, x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    *(int64_t *)out = (int64_t)(x >> 1);
    return 0;                                     /* 0: a value; else the end */
}

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t opts = { .flags = CSP_PIPE_CONSUME, .wg = &stages };
    uint64_t state = (uint64_t)csp_now() | 1;

    csp_chan_t *nums = csp_pipe_take(
        done, csp_pipe_repeat_fn(done, sizeof(int64_t), rand_int, &state, &opts), 10, &opts);
    if (!nums) {
        fprintf(stderr, "pipeline: out of memory\n");
        csp_ctx_release(done);
        return;
    }
    int64_t num;
    while (csp_chan_recv(nums, &num) == 0)
        printf("%lld\n", (long long)num);

    csp_chan_release(nums);
    csp_ctx_cancel(done);                         /* defer close(done) */
    csp_wg_wait(&stages);                         /* state is on this stack */
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
