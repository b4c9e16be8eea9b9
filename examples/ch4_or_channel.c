/* ch4_or_channel: the or-channel. Several "done" channels are combined into
 * one that closes as soon as any of them closes. The book builds it by
 * recursion (a goroutine per three channels); csp_pipe_or is one task and one
 * select over all of them, plus the context that cancels it.
 *
 * Go original:
 *   var or func(channels ...<-chan interface{}) <-chan interface{}
 *   or = func(channels ...<-chan interface{}) <-chan interface{} {
 *       switch len(channels) {
 *       case 0:
 *           return nil
 *       case 1:
 *           return channels[0]
 *       }
 *       orDone := make(chan interface{})
 *       go func() {
 *           defer close(orDone)
 *           switch len(channels) {
 *           case 2:
 *               select {
 *               case <-channels[0]:
 *               case <-channels[1]:
 *               }
 *           default:
 *               select {
 *               case <-channels[0]:
 *               case <-channels[1]:
 *               case <-channels[2]:
 *               case <-or(append(channels[3:], orDone)...):
 *               }
 *           }
 *       }()
 *       return orDone
 *   }
 *
 *   sig := func(after time.Duration) <-chan interface{} {
 *       c := make(chan interface{})
 *       go func() {
 *           defer close(c)
 *           time.Sleep(after)
 *       }()
 *       return c
 *   }
 *
 *   start := time.Now()
 *   <-or(
 *       sig(2*time.Hour),
 *       sig(5*time.Minute),
 *       sig(1*time.Second),
 *       sig(1*time.Hour),
 *       sig(1*time.Minute),
 *   )
 *   fmt.Printf("done after %v", time.Since(start))
 *
 * Go leaves the four long sig goroutines sleeping when main returns; here
 * each sig also stops when the program's context is cancelled, and main
 * waits for them (a WaitGroup), so nothing is left behind.
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <stdio.h>

static csp_wg_t sigs = CSP_WG_INIT;

/* sleeps `after` (or until ctx is done), then closes c */
CSP_TASK(sig_task, (csp_ctx_t *, ctx), (csp_chan_t *, c), (csp_duration_t, after))
{
    /* a select with no cases: waits for the deadline or for ctx */
    (void)csp_select_ctx_until(ctx, NULL, 0, csp_deadline_after(after));
    csp_chan_close(c);                            /* defer close(c) */
    csp_chan_release(c);
    csp_ctx_release(ctx);
    csp_wg_done(&sigs);
}

static csp_chan_t *sig(csp_ctx_t *ctx, csp_duration_t after)
{
    csp_chan_t *c = csp_chan_make(0, 0);           /* chan interface{} */
    csp_wg_add(&sigs, 1);
    CSP_GO(sig_task, csp_ctx_retain(ctx), csp_chan_retain(c), after);
    return c;
}

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    const csp_duration_t hour = 3600 * CSP_SECOND, minute = 60 * CSP_SECOND;

    csp_time_t start = csp_now();
    csp_chan_t *chans[] = {
        sig(ctx, 2 * hour),
        sig(ctx, 5 * minute),
        sig(ctx, 1 * CSP_SECOND),
        sig(ctx, 1 * hour),
        sig(ctx, 1 * minute),
    };
    /* CSP_PIPE_CONSUME: or keeps the five channels; we keep none */
    const csp_pipe_opts_t own = { .flags = CSP_PIPE_CONSUME };
    csp_chan_t *done = csp_pipe_or(ctx, chans, 5, &own);
    csp_chan_recv(done, NULL);                     /* <-or(...) */
    csp_duration_t took = csp_now() - start;
    printf("done after %lld.%09llds\n", (long long)(took / CSP_SECOND),
           (long long)(took % CSP_SECOND));

    csp_chan_release(done);
    csp_ctx_cancel(ctx);                           /* the long sigs stop */
    csp_wg_wait(&sigs);
    csp_ctx_release(ctx);
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
