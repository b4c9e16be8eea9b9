/* ch4_fan_in_primes: fan-out, fan-in. The prime finder is a deliberately
 * slow stage (trial division by every smaller number), so the pipeline runs
 * at its pace. Fanning out starts several copies of that stage, all reading
 * the same input stream; fanning in merges their outputs into one stream.
 * The search runs twice: with one finder, then with one finder per worker
 * thread (Go's runtime.NumCPU()). Results come out in a different order with
 * several finders: fan-in only works when order does not matter.
 *
 * Go original:
 *   rand := func() interface{} { return rand.Intn(50000000) }
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   start := time.Now()
 *   randIntStream := toInt(done, repeatFn(done, rand))
 *   fmt.Println("Primes:")
 *   for prime := range take(done, primeFinder(done, randIntStream), 10) {
 *       fmt.Printf("\t%d\n", prime)
 *   }
 *   fmt.Printf("Search took: %v", time.Since(start))
 *
 * and with fan-out, fan-in:
 *   numFinders := runtime.NumCPU()
 *   fmt.Printf("Spinning up %d prime finders.\n", numFinders)
 *   finders := make([]<-chan interface{}, numFinders)
 *   fmt.Println("Primes:")
 *   for i := 0; i < numFinders; i++ {
 *       finders[i] = primeFinder(done, randIntStream)
 *   }
 *   for prime := range take(done, fanIn(done, finders...), 10) {
 *       fmt.Printf("\t%d\n", prime)
 *   }
 *   fmt.Printf("Search took: %v", time.Since(start))
 *
 *   primeFinder := func(done <-chan interface{}, intStream <-chan int) <-chan interface{} {
 *       primeStream := make(chan interface{})
 *       go func() {
 *           defer close(primeStream)
 *           for integer := range intStream {
 *               integer -= 1
 *               prime := true
 *               for divisor := integer - 1; divisor > 1; divisor-- {
 *                   if integer%divisor == 0 {
 *                       prime = false
 *                       break
 *                   }
 *               }
 *               if prime {
 *                   select {
 *                   case <-done:
 *                       return
 *                   case primeStream <- integer:
 *                   }
 *               }
 *           }
 *       }()
 *       return primeStream
 *   }
 *
 * The book draws from [0, 50,000,000) and takes 23 s (one finder) and 5 s
 * (eight); the range here is 1,000,000 so that the example runs in well under
 * a second. The stream of random numbers is of int64_t (Go's interface{}
 * holding an int) and toInt narrows it to int; primeFinder is a csp_pipe_map
 * that skips the numbers that are not prime. Each search has its own context,
 * cancelled when take(10) is done, and a WaitGroup joins its stages.
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdint.h>
#include <stdio.h>

#define RAND_MAX_N 1000000

/* rand.Intn(RAND_MAX_N), from the xorshift state in arg (only the repeat_fn
 * task calls it) */
static int rand_intn(void *arg, void *out)
{
    uint64_t *state = arg, x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    *(int64_t *)out = (int64_t)((x >> 11) % RAND_MAX_N);
    return 0;
}

static int to_int(void *arg, const void *in, void *out)
{
    (void)arg;
    *(int *)out = (int)*(const int64_t *)in;
    return CSP_PIPE_EMIT;
}

static int prime_finder(void *arg, const void *in, void *out)
{
    (void)arg;
    int integer = *(const int *)in - 1;
    for (int divisor = integer - 1; divisor > 1; divisor--)
        if (integer % divisor == 0)
            return CSP_PIPE_SKIP;                 /* not prime: nothing sent */
    *(int *)out = integer;
    return CSP_PIPE_EMIT;
}

/* Go's time.Duration String(), enough of it for this program */
static void print_duration(csp_duration_t d)
{
    if (d >= CSP_SECOND)
        printf("%.9gs\n", (double)d / 1e9);
    else if (d >= CSP_MILLISECOND)
        printf("%.9gms\n", (double)d / 1e6);
    else
        printf("%.9gµs\n", (double)d / 1e3);
}

static void search(int num_finders, uint64_t seed)
{
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t opts = { .wg = &stages };
    const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME, .wg = &stages };
    uint64_t state = seed;

    csp_time_t start = csp_now();
    csp_chan_t *rand_int_stream = csp_pipe_map(
        done, csp_pipe_repeat_fn(done, sizeof(int64_t), rand_intn, &state, &own), sizeof(int),
        to_int, NULL, &own);
    csp_chan_t *primes;
    if (num_finders == 1) {
        primes = csp_pipe_map(done, rand_int_stream, sizeof(int), prime_finder, NULL, &opts);
    } else {
        printf("Spinning up %d prime finders.\n", num_finders);
        csp_chan_t *finders[64];
        for (int i = 0; i < num_finders; i++)         /* fan out */
            finders[i] = csp_pipe_map(done, rand_int_stream, sizeof(int), prime_finder, NULL,
                                      &opts);
        primes = csp_pipe_fan_in(done, finders, (size_t)num_finders, &own); /* fan in */
    }
    csp_chan_release(rand_int_stream);                /* the finders hold it */
    printf("Primes:\n");
    csp_chan_t *first10 = csp_pipe_take(done, primes, 10, &own);
    int prime;
    while (csp_chan_recv(first10, &prime) == 0)
        printf("\t%d\n", prime);
    printf("Search took: ");
    print_duration(csp_now() - start);

    csp_chan_release(first10);
    csp_ctx_cancel(done);                             /* defer close(done) */
    csp_wg_wait(&stages);
    csp_ctx_release(done);
}

static void main_task(void *arg)
{
    (void)arg;
    uint64_t seed = (uint64_t)csp_now() | 1;
    search(1, seed);
    int n = csp_workers();                            /* runtime.NumCPU() */
    search(n > 64 ? 64 : n, seed);
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
