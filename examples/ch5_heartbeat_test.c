/* ch5_heartbeat_test: "Concurrency in Go", chapter 5, Heartbeats in tests.
 *
 * DoWork turns its numbers into a stream after a start-up delay (the book's
 * time.Sleep(2*time.Second), standing for CPU load, disk contention, network
 * latency "and goblins"). The book tests it three ways; this program runs
 * the three tests and prints their verdicts as `go test -v` would:
 *
 *   1. the bad test: a timeout per value, shorter than the delay, so it
 *      always fails ("test timed out") - a timeout in a test is a guess;
 *   2. the good test: wait for the first heartbeat (the goroutine has
 *      started its loop), then simply range over the results: no timeout;
 *   3. with interval heartbeats: a timeout that only fires if the worker
 *      stops pulsing, never because it is merely slow.
 *
 * Times are the book's divided by 10 (a 200 ms delay; the bad test waits
 * 100 ms per value; the interval test's timeout is 200 ms).
 *
 * Go original (abridged):
 *   func DoWork(done <-chan interface{}, nums ...int) (<-chan interface{}, <-chan int) {
 *       heartbeat := make(chan interface{}, 1)
 *       intStream := make(chan int)
 *       go func() {
 *           defer close(heartbeat)
 *           defer close(intStream)
 *           time.Sleep(2*time.Second)
 *           for _, n := range nums {
 *               select {
 *               case heartbeat <- struct{}{}:
 *               default:
 *               }
 *               select {
 *               case <-done:
 *                   return
 *               case intStream <- n:
 *               }
 *           }
 *       }()
 *       return heartbeat, intStream
 *   }
 *
 *   func TestDoWork_GeneratesAllNumbers(t *testing.T) {     // the bad one
 *       done := make(chan interface{})
 *       defer close(done)
 *       intSlice := []int{0, 1, 2, 3, 5}
 *       _, results := DoWork(done, intSlice...)
 *       for i, expected := range intSlice {
 *           select {
 *           case r := <-results:
 *               if r != expected {
 *                   t.Errorf("index %v: expected %v, but received %v,", i, expected, r)
 *               }
 *           case <-time.After(1 * time.Second):
 *               t.Fatal("test timed out")
 *           }
 *       }
 *   }
 *
 *   func TestDoWork_GeneratesAllNumbers(t *testing.T) {     // the good one
 *       done := make(chan interface{})
 *       defer close(done)
 *       intSlice := []int{0, 1, 2, 3, 5}
 *       heartbeat, results := DoWork(done, intSlice...)
 *       <-heartbeat
 *       i := 0
 *       for r := range results {
 *           if expected := intSlice[i]; r != expected {
 *               t.Errorf("index %v: expected %v, but received %v,", i, expected, r)
 *           }
 *           i++
 *       }
 *   }
 *
 *   (the interval version: DoWork(done, pulseInterval, nums...) pulses every
 *   pulseInterval while it waits to send; the test selects on results,
 *   heartbeat and time.After(timeout), with pulseInterval = timeout/2)
 */
#include <csp.h>
#include <csp/supervise.h>
#include <stdio.h>

#define MS CSP_MILLISECOND
#define START_DELAY (200 * MS) /* the book's time.Sleep(2 * time.Second) / 10 */

static const int int_slice[] = { 0, 1, 2, 3, 5 };
#define NUMS ((int)(sizeof int_slice / sizeof int_slice[0]))

/* ---- a tiny testing.T ---- */
typedef struct {
    const char *name;
    int         failed;
    csp_time_t  start;
} test_t;

static void t_run(test_t *t, const char *name)
{
    t->name = name;
    t->failed = 0;
    t->start = csp_now();
    printf("=== RUN   %s\n", name);
}

static void t_errorf(test_t *t, int i, int expected, int r)
{
    printf("    index %d: expected %d, but received %d,\n", i, expected, r);
    t->failed = 1;
}

static void t_fatal(test_t *t, const char *msg)
{
    printf("    %s\n", msg);
    t->failed = 1;
}

static int t_end(test_t *t)
{
    printf("--- %s: %s (%.2fs)\n", t->failed ? "FAIL" : "PASS", t->name,
           (double)(csp_now() - t->start) / 1e9);
    return t->failed;
}

/* ---- DoWork ---- */

typedef struct {
    const int *nums;
    int        n;
} nums_t;

/* Per-work heartbeats: a pulse before each number. */
static int do_work(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *int_stream, void *arg)
{
    const nums_t *a = arg;
    csp_sleep(START_DELAY); /* simulate some kind of delay before working */
    for (int i = 0; i < a->n; i++) {
        csp_heartbeat_pulse(hb);
        if (csp_chan_send_ctx(ctx, int_stream, &a->nums[i]) != 0)
            return 0;
    }
    return 0;
}

/* Interval heartbeats: pulses while it waits to send (csp_heartbeat_send). */
static int do_work_interval(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *int_stream,
                            void *arg)
{
    const nums_t *a = arg;
    csp_sleep(START_DELAY);
    for (int i = 0; i < a->n; i++) /* numLoop: for { select { done; pulse; intStream <- n } } */
        if (csp_heartbeat_send(hb, ctx, int_stream, &a->nums[i]) != 0)
            return 0;
    return 0;
}

/* `defer close(done)`: cancels and waits for DoWork to close its channels. */
static void finish(csp_ctx_t *done, csp_chan_t *heartbeat, csp_chan_t *results)
{
    csp_ctx_cancel(done);
    while (csp_chan_recv(results, NULL) == 0)
        ;
    while (csp_chan_recv(heartbeat, NULL) == 0)
        ;
    csp_chan_release(heartbeat);
    csp_chan_release(results);
    csp_ctx_release(done);
}

/* 1. the bad test */
static int test_bad(void)
{
    test_t t;
    t_run(&t, "TestDoWork_GeneratesAllNumbers_Timeout");
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    nums_t a = { int_slice, NUMS };
    csp_chan_t *heartbeat, *results;
    csp_heartbeat_go(done, 0, sizeof(int), 0, do_work, &a, &heartbeat, &results);
    for (int i = 0; i < NUMS; i++) {
        int r;
        /* select { case r := <-results: ... case <-time.After(1 * time.Second): } */
        int rc = csp_chan_recv_until(results, &r, csp_deadline_after(START_DELAY / 2));
        if (rc == CSP_ETIMEDOUT) {
            t_fatal(&t, "test timed out");
            break;
        }
        if (rc != 0 || r != int_slice[i])
            t_errorf(&t, i, int_slice[i], r);
    }
    finish(done, heartbeat, results);
    return t_end(&t);
}

/* 2. the good test: the first heartbeat, then range */
static int test_heartbeat(void)
{
    test_t t;
    t_run(&t, "TestDoWork_GeneratesAllNumbers");
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    nums_t a = { int_slice, NUMS };
    csp_chan_t *heartbeat, *results;
    csp_heartbeat_go(done, 0, sizeof(int), 0, do_work, &a, &heartbeat, &results);
    csp_chan_recv(heartbeat, NULL); /* <-heartbeat: the loop has started */
    int i = 0, r;
    while (csp_chan_recv(results, &r) == 0) { /* for r := range results */
        if (i >= NUMS || r != int_slice[i])
            t_errorf(&t, i, i < NUMS ? int_slice[i] : -1, r);
        i++;
    }
    if (i != NUMS)
        t_fatal(&t, "wrong number of results");
    finish(done, heartbeat, results);
    return t_end(&t);
}

/* 3. interval heartbeats: the timeout only catches a worker that stopped */
static int test_interval(void)
{
    test_t t;
    t_run(&t, "TestDoWork_GeneratesAllNumbers_Interval");
    const csp_duration_t timeout = START_DELAY; /* the book's 2 s / 10 */
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    nums_t a = { int_slice, NUMS };
    csp_chan_t *heartbeat, *results;
    csp_heartbeat_go(done, timeout / 2, sizeof(int), 0, do_work_interval, &a, &heartbeat,
                     &results);
    csp_chan_recv(heartbeat, NULL); /* <-heartbeat */
    int i = 0;
    for (;;) {
        int r;
        csp_case_t cases[] = { CSP_RECV_CASE(results, &r), CSP_RECV_CASE(heartbeat, NULL) };
        int k = csp_select(cases, 2, csp_deadline_after(timeout));
        if (k == CSP_ETIMEDOUT) {
            t_fatal(&t, "test timed out");
            break;
        }
        if (k == 0) {
            if (cases[0].status == CSP_ECLOSED)
                break;
            if (i >= NUMS || r != int_slice[i])
                t_errorf(&t, i, i < NUMS ? int_slice[i] : -1, r);
            i++;
        } /* k == 1: a pulse keeps the timeout from firing */
    }
    if (!t.failed && i != NUMS)
        t_fatal(&t, "wrong number of results");
    finish(done, heartbeat, results);
    return t_end(&t);
}

static void main_task(void *arg)
{
    int *status = arg;
    printf("== the book's bad test: a timeout shorter than the start-up delay\n");
    int bad_failed = test_bad();
    printf("== with heartbeats\n");
    int failed = test_heartbeat();
    failed |= test_interval();
    if (!bad_failed) {
        printf("the bad test passed: it should have timed out\n");
        failed = 1;
    }
    printf("%s\n", failed ? "FAIL" : "PASS");
    *status = failed;
}

int main(void)
{
    int status = 1;
    int err = csp_run(main_task, &status, NULL);
    if (err) {
        fprintf(stderr, "csp_run: %s\n", csp_strerror(err));
        return 1;
    }
    return status;
}
