/* ch5_timeouts: "Concurrency in Go", chapter 5, Timeouts and Cancellation.
 *
 * A concurrent process can only be cancelled between the pieces it cannot
 * be interrupted in, so the book makes reallyLongCalculation preemptable:
 * it passes `done` down to longCalculation, which checks it between small,
 * non-preemptable steps. Here the context (csp_ctx_t) is the book's done:
 *
 *   1. with time enough, the value goes in, the result comes out;
 *   2. a timeout (csp_ctx_with_timeout) cancels the calculation part-way:
 *      it stops within one step of the deadline;
 *   3. user intervention (csp_ctx_cancel) does the same, from another task;
 *   4. shared state is written once, at the end (the book's
 *      writeTallyToState(add(1, ..., 9))): a cancelled run leaves nothing to
 *      roll back.
 *
 * Go original (abridged):
 *   var value interface{}
 *   select {
 *   case <-done:
 *       return
 *   case value = <-valueStream:
 *   }
 *   result := reallyLongCalculation(done, value)
 *   select {
 *   case <-done:
 *       return
 *   case resultStream<-result:
 *   }
 *
 *   reallyLongCalculation := func(done <-chan interface{}, value interface{}) interface{} {
 *       intermediateResult := longCalculation(done, value)
 *       return longCalculation(done, intermediateResult)
 *   }
 *
 *   result := add(1, 2, 3, 4, 5, 6, 7, 8, 9)
 *   writeTallyToState(result)
 */
#include <csp.h>
#include <stdio.h>

#define STEPS 10                      /* per longCalculation */
#define STEP  (4 * CSP_MILLISECOND)   /* one non-preemptable piece of work */
#define TIMEOUT (10 * CSP_MILLISECOND) /* less than the 20 steps take */

/* One step of work that cannot be interrupted (here: a short nap). */
static long step(long acc, int i)
{
    csp_sleep(STEP);
    return acc + i;
}

/* longCalculation(done, value): preemptable between its steps. Counts the
 * steps it did in *steps; returns 0 or why it stopped. */
static int long_calculation(csp_ctx_t *ctx, long value, long *out, int *steps)
{
    long acc = value;
    for (int i = 0; i < STEPS; i++) {
        int err = csp_ctx_err(ctx); /* select { case <-done: return; default: } */
        if (err)
            return err;
        acc = step(acc, i);
        (*steps)++;
    }
    *out = acc;
    return 0;
}

static int really_long_calculation(csp_ctx_t *ctx, long value, long *out, int *steps)
{
    long intermediate;
    int err = long_calculation(ctx, value, &intermediate, steps);
    if (err)
        return err;
    return long_calculation(ctx, intermediate, out, steps);
}

/* The goroutine: one value in, one result out, cancellable everywhere. */
CSP_TASK(calculator, (csp_ctx_t *, ctx), (csp_chan_t *, value_stream),
         (csp_chan_t *, result_stream), (csp_wg_t *, wg))
{
    long value, result;
    int steps = 0;
    int err = csp_chan_recv_ctx(ctx, value_stream, &value);
    if (err == 0)
        err = really_long_calculation(ctx, value, &result, &steps);
    if (err == 0)
        err = csp_chan_send_ctx(ctx, result_stream, &result);
    if (err)
        printf("calculation stopped after %d of %d steps: %s\n", steps, 2 * STEPS,
               csp_strerror(err));
    csp_wg_done(wg);
}

/* Runs one calculation of `value` under ctx; prints the result if any. */
static void run(csp_ctx_t *ctx, long value, csp_ctx_t *cancel_after, csp_duration_t after)
{
    csp_chan_t *values = csp_chan_make(sizeof(long), 1);
    csp_chan_t *results = csp_chan_make(sizeof(long), 1);
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, 1);
    CSP_GO(calculator, ctx, values, results, &wg);
    csp_chan_send(values, &value);
    if (cancel_after) { /* user intervention, some time later */
        csp_sleep(after);
        csp_ctx_cancel(cancel_after);
    }
    csp_wg_wait(&wg);
    long result;
    if (csp_chan_try_recv(results, &result) == 0)
        printf("result: %ld\n", result);
    csp_chan_release(values);
    csp_chan_release(results);
}

/* ---- shared state ---- */

static long tally; /* the shared state */

static void write_tally_to_state(long v)
{
    tally = v;
}

/* add(1, ..., 9) one preemptable step at a time, then one write. */
static int tally_up(csp_ctx_t *ctx)
{
    long result = 0;
    for (int i = 1; i <= 9; i++) {
        int err = csp_ctx_err(ctx);
        if (err)
            return err; /* nothing written yet: nothing to roll back */
        csp_sleep(STEP);
        result += i;
    }
    write_tally_to_state(result);
    return 0;
}

static void main_task(void *arg)
{
    (void)arg;
    csp_ctx_t *bg = csp_ctx_background();

    printf("== with time enough\n");
    run(bg, 100, NULL, 0);

    printf("== a timeout of %d ms cancels it part-way\n", (int)(TIMEOUT / CSP_MILLISECOND));
    csp_ctx_t *timeout = csp_ctx_with_timeout(bg, TIMEOUT);
    run(timeout, 100, NULL, 0);
    csp_ctx_release(timeout);

    printf("== the user cancels it\n");
    csp_ctx_t *user = csp_ctx_with_cancel(bg);
    run(user, 100, user, 5 * STEP);
    csp_ctx_release(user);

    printf("== a parent's cancellation reaches its children\n");
    csp_ctx_t *parent = csp_ctx_with_cancel(bg);
    csp_ctx_t *child = csp_ctx_with_timeout(parent, CSP_SECOND);
    run(child, 100, parent, 3 * STEP);
    csp_ctx_release(child);
    csp_ctx_release(parent);

    printf("== shared state is written once, at the end\n");
    csp_ctx_t *early = csp_ctx_with_timeout(bg, 3 * STEP);
    int err = tally_up(early);
    printf("cancelled run: %s, tally = %ld\n", csp_strerror(err), tally);
    csp_ctx_release(early);
    err = tally_up(bg);
    printf("full run: %s, tally = %ld\n", err ? csp_strerror(err) : "ok", tally);
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
