/* ch4_queuing: queuing, i.e. a buffer between two stages. It does not make
 * the pipeline faster as a whole; it decouples the stages, so that a fast
 * stage is not blocked by a slow one after it (it finishes its own part
 * early and is free for other work).
 *
 * Go original (the book's "sleep" stage waits, then passes the value on):
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   zeros := take(done, 3, repeat(done, 0))
 *   short := sleep(done, 1*time.Second, zeros)
 *   long := sleep(done, 4*time.Second, short)
 *   pipeline := long
 *
 * and with a queue after the fast stage:
 *   zeros := take(done, 3, repeat(done, 0))
 *   short := sleep(done, 1*time.Second, zeros)
 *   bufferedShort := buffer(done, 2, short) // buffers sends from short by 2
 *   long := sleep(done, 4*time.Second, bufferedShort)
 *   pipeline := long
 *
 * In the book the short stage is done after 9 s without the buffer and
 * after 3 s with it; the whole pipeline takes 13 s either way. Here the
 * stages sleep 40 ms and 160 ms (the same 1:4): expect ~360 ms against
 * ~120 ms for the short stage and ~520 ms for the pipeline in both runs.
 * The time a stage is done is when its task has ended: the stage is given
 * its own WaitGroup (csp_pipe_opts_t.wg) and a small task waits on it.
 *
 * Then the book's other case for queuing, chunking (bufio.Writer):
 *   func BenchmarkUnbufferedWrite(b *testing.B) { performWrite(b, tmpFileOrFatal()) }
 *   func BenchmarkBufferedWrite(b *testing.B) {
 *       bufferredFile := bufio.NewWriter(tmpFileOrFatal())
 *       performWrite(b, bufio.NewWriter(bufferredFile))
 *   }
 *   func performWrite(b *testing.B, writer io.Writer) {
 *       done := make(chan interface{})
 *       defer close(done)
 *       b.ResetTimer()
 *       for bt := range take(done, repeat(done, byte(0)), b.N) {
 *           writer.Write([]byte{bt.(byte)})
 *       }
 *   }
 * A byte at a time with write(2) (one system call each) against a stdio
 * FILE with a 4 KiB buffer (one call per chunk). All numbers are masked in
 * the checked output: they depend on the machine.
 */
#define _POSIX_C_SOURCE 200809L
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

/* the book's sleep stage: waits d (arg), then passes the value on */
static int sleep_stage(void *arg, const void *in, void *out)
{
    csp_sleep(*(const csp_duration_t *)arg);
    *(int *)out = *(const int *)in;
    return CSP_PIPE_EMIT;
}

/* records when the stage joined by wg has ended */
CSP_TASK(watch, (csp_wg_t *, wg), (csp_time_t *, at), (csp_wg_t *, watchers))
{
    csp_wg_wait(wg);
    *at = csp_now();
    csp_wg_done(watchers);
}

static void run_pipeline(int buffered)
{
    static const csp_duration_t short_d = 40 * CSP_MILLISECOND, long_d = 160 * CSP_MILLISECOND;
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT, short_stage = CSP_WG_INIT, watchers = CSP_WG_INIT;
    const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME, .wg = &stages };
    const csp_pipe_opts_t own_short = { .flags = CSP_PIPE_CONSUME, .wg = &short_stage };
    const int zero = 0;
    csp_time_t short_done = 0;

    csp_time_t start = csp_now();
    csp_chan_t *zeros = csp_pipe_take(done, csp_pipe_repeat(done, &zero, 1, sizeof(int), &own),
                                      3, &own);
    csp_chan_t *s = csp_pipe_map(done, zeros, sizeof(int), sleep_stage, (void *)&short_d,
                                 &own_short);
    csp_wg_add(&watchers, 1);
    CSP_GO(watch, &short_stage, &short_done, &watchers);
    if (buffered)
        s = csp_pipe_buffer(done, s, 2, &own);     /* bufferedShort := buffer(done, 2, short) */
    csp_chan_t *pipeline = csp_pipe_map(done, s, sizeof(int), sleep_stage, (void *)&long_d, &own);
    if (!pipeline) {
        fprintf(stderr, "pipeline: out of memory\n");
        exit(1);
    }
    while (csp_chan_recv(pipeline, NULL) == 0)
        ;
    csp_time_t end = csp_now();
    csp_wg_wait(&watchers);
    printf("  %s short stage done after %lld ms, pipeline done after %lld ms\n",
           buffered ? "with buffer(2):    " : "without the buffer:",
           (long long)((short_done - start) / CSP_MILLISECOND),
           (long long)((end - start) / CSP_MILLISECOND));

    csp_chan_release(pipeline);
    csp_ctx_cancel(done);                          /* defer close(done); repeat stops */
    csp_wg_wait(&stages);
    csp_ctx_release(done);
}

/* writes n zero bytes from take(n, repeat(0)); returns ns per byte */
static double perform_write(FILE *f, int buffered, size_t n)
{
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t stages = CSP_WG_INIT;
    const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME, .wg = &stages };
    const unsigned char zero = 0;
    csp_chan_t *bytes = csp_pipe_take(done, csp_pipe_repeat(done, &zero, 1, 1, &own), n, &own);
    if (!bytes) {
        fprintf(stderr, "pipeline: out of memory\n");
        exit(1);
    }
    csp_time_t start = csp_now();
    unsigned char bt;
    while (csp_chan_recv(bytes, &bt) == 0) {
        if (buffered ? fwrite(&bt, 1, 1, f) != 1 : write(fileno(f), &bt, 1) != 1) {
            perror("write");
            exit(1);
        }
    }
    if (buffered)
        fflush(f);
    double ns = (double)(csp_now() - start) / (double)n;
    csp_chan_release(bytes);
    csp_ctx_cancel(done);
    csp_wg_wait(&stages);
    csp_ctx_release(done);
    return ns;
}

static void main_task(void *arg)
{
    (void)arg;
    printf("Queuing: take(3, repeat(0)) | sleep 40 ms | [buffer(2)] | sleep 160 ms\n");
    run_pipeline(0);
    run_pipeline(1);

    enum { N = 20000 };
    printf("Chunking: take(%d, repeat(byte 0)) written to a file\n", N);
    FILE *unbuffered = tmpfile(), *buffered = tmpfile();
    static char buf[4096];
    if (!unbuffered || !buffered || setvbuf(buffered, buf, _IOFBF, sizeof buf) != 0) {
        perror("tmpfile");
        exit(1);
    }
    printf("  unbuffered writes: %.1f ns/op\n", perform_write(unbuffered, 0, N));
    printf("  buffered writes:   %.1f ns/op\n", perform_write(buffered, 1, N));
    fclose(unbuffered);
    fclose(buffered);
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
