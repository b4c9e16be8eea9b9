/* ch5_heartbeat_interval: "Concurrency in Go", chapter 5, Heartbeats that
 * occur on a time interval.
 *
 * doWork pulses every pulseInterval while it waits for work (a ticker every
 * 2 * pulseInterval) and while it waits to hand its result over; main
 * prints "pulse" and "results N" (N: the second of the minute, UTC, when
 * the work arrived) and gives up when neither comes within the timeout.
 * Then the book's unhealthy variant: the worker does two iterations and
 * falls silent; within the timeout main knows: "worker goroutine is not
 * healthy!".
 *
 * csp_heartbeat_go is the book's doWork shape (a task, its heartbeat and
 * results channels, closed when the work returns); the heartbeat's ticker
 * is the book's `pulse := time.Tick(pulseInterval)` and csp_heartbeat_recv
 * / csp_heartbeat_send are its for-select loops with `case <-pulse:
 * sendPulse()`. The second worker writes that loop out by hand.
 *
 * Times are the book's divided by 5 (pulseInterval 200 ms, the run 1.9 s
 * instead of 10 s). The book's two tickers both tick at every even second,
 * where Go's select picks one at random, so the book's output order varies
 * from run to run; starting workGen half an interval late keeps the printed
 * order that the book shows. The book's unhealthy goroutine returns without
 * closing its channels; the library closes them when the work function
 * returns, so here the broken worker stays stuck instead (silent, as far as
 * main can tell) until main cancels it: no task is left behind.
 *
 * Go original (abridged):
 *   doWork := func(done <-chan interface{}, pulseInterval time.Duration,
 *   ) (<-chan interface{}, <-chan time.Time) {
 *       heartbeat := make(chan interface{})
 *       results := make(chan time.Time)
 *       go func() {
 *           defer close(heartbeat)
 *           defer close(results)
 *           pulse := time.Tick(pulseInterval)
 *           workGen := time.Tick(2*pulseInterval)
 *           sendPulse := func() {
 *               select {
 *               case heartbeat <-struct{}{}:
 *               default:
 *               }
 *           }
 *           sendResult := func(r time.Time) {
 *               for {
 *                   select {
 *                   case <-done:
 *                       return
 *                   case <-pulse:
 *                       sendPulse()
 *                   case results <- r:
 *                       return
 *                   }
 *               }
 *           }
 *           for {                 // unhealthy variant: for i := 0; i < 2; i++ {
 *               select {
 *               case <-done:
 *                   return
 *               case <-pulse:
 *                   sendPulse()
 *               case r := <-workGen:
 *                   sendResult(r)
 *               }
 *           }
 *       }()
 *       return heartbeat, results
 *   }
 *
 *   done := make(chan interface{})
 *   time.AfterFunc(10*time.Second, func() { close(done) })
 *   const timeout = 2*time.Second
 *   heartbeat, results := doWork(done, timeout/2)
 *   for {
 *       select {
 *       case _, ok := <-heartbeat:
 *           if ok == false {
 *               return
 *           }
 *           fmt.Println("pulse")
 *       case r, ok := <-results:
 *           if ok == false {
 *               return
 *           }
 *           fmt.Printf("results %v\n", r.Second())
 *       case <-time.After(timeout):
 *           return          // unhealthy variant: fmt.Println("worker goroutine is not healthy!")
 *       }
 *   }
 */
#include <csp.h>
#include <csp/supervise.h>
#include <stdio.h>
#include <time.h>

#define TIMEOUT (400 * CSP_MILLISECOND) /* the book's 2 s / 5 */
#define RUN     (1900 * CSP_MILLISECOND) /* the book's 10 s / 5, a bit less */

/* The second of the minute (UTC) at monotonic time t: the book's r.Second(). */
static int second_of(csp_time_t t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    long long wall = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec - (csp_now() - t);
    return (int)((wall / 1000000000LL) % 60);
}

/* The healthy worker. */
static int do_work(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *results, void *arg)
{
    (void)arg;
    csp_duration_t pulse_interval = csp_heartbeat_interval(hb);
    if (csp_heartbeat_sleep(hb, ctx, pulse_interval / 2) != 0) /* see the top */
        return 0;
    csp_timer_t *work_gen = csp_ticker_new(2 * pulse_interval);
    csp_time_t r;
    /* for { select { case <-done; case <-pulse: sendPulse(); case r := <-workGen: sendResult(r) } } */
    while (csp_heartbeat_recv(hb, ctx, csp_timer_chan(work_gen), &r) == 0)
        if (csp_heartbeat_send(hb, ctx, results, &r) != 0) /* sendResult(r) */
            break;
    csp_timer_release(work_gen);
    return 0;
}

/* The unhealthy worker: two iterations of the loop, written out by hand. */
static int do_work_broken(csp_ctx_t *ctx, csp_heartbeat_t *hb, csp_chan_t *results, void *arg)
{
    (void)arg;
    csp_duration_t pulse_interval = csp_heartbeat_interval(hb);
    if (csp_heartbeat_sleep(hb, ctx, pulse_interval / 2) != 0)
        return 0;
    csp_timer_t *work_gen = csp_ticker_new(2 * pulse_interval);
    csp_time_t r;
    for (int i = 0; i < 2; i++) { /* simulate a panic: only loop twice */
        csp_case_t cases[] = {
            CSP_RECV_CASE(csp_heartbeat_ticker(hb), NULL),   /* case <-pulse */
            CSP_RECV_CASE(csp_timer_chan(work_gen), &r),    /* case r := <-workGen */
        };
        int k = csp_select_ctx(ctx, cases, 2);               /* case <-done */
        if (k < 0)
            break;
        if (k == 0)
            csp_heartbeat_pulse(hb);                         /* sendPulse() */
        else if (csp_heartbeat_send(hb, ctx, results, &r) != 0)
            break;
    }
    csp_timer_release(work_gen);
    csp_ctx_wait(ctx); /* stuck: no more pulses, no results */
    return 0;
}

/* main's loop; returns when a channel closes or the timeout passes. */
static void listen(csp_chan_t *heartbeat, csp_chan_t *results, int report_unhealthy)
{
    for (;;) {
        csp_time_t r;
        csp_chan_t *timeout = csp_after(TIMEOUT); /* a fresh time.After each round */
        csp_case_t cases[] = {
            CSP_RECV_CASE(heartbeat, NULL),
            CSP_RECV_CASE(results, &r),
            CSP_RECV_CASE(timeout, NULL),
        };
        int i = csp_select(cases, 3, CSP_FOREVER);
        csp_chan_release(timeout);
        if (i == 0) {
            if (cases[0].status == CSP_ECLOSED)
                return;
            printf("pulse\n");
        } else if (i == 1) {
            if (cases[1].status == CSP_ECLOSED)
                return;
            printf("results %d\n", second_of(r));
        } else {
            if (report_unhealthy)
                printf("worker goroutine is not healthy!\n");
            return;
        }
    }
}

/* Drains both channels until the work has ended (closed them). */
static void join(csp_chan_t *heartbeat, csp_chan_t *results)
{
    while (csp_chan_recv(results, NULL) == 0)
        ;
    while (csp_chan_recv(heartbeat, NULL) == 0)
        ;
    csp_chan_release(heartbeat);
    csp_chan_release(results);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_chan_t *heartbeat, *results;

    printf("== a healthy worker\n");
    csp_ctx_t *done = csp_ctx_with_timeout(csp_ctx_background(), RUN);
    if (csp_heartbeat_go(done, TIMEOUT / 2, sizeof(csp_time_t), 0, do_work, NULL, &heartbeat,
                         &results) != 0)
        return;
    listen(heartbeat, results, 0);
    csp_ctx_cancel(done);
    join(heartbeat, results);
    csp_ctx_release(done);

    printf("== a worker that stops after two iterations\n");
    done = csp_ctx_with_timeout(csp_ctx_background(), 5 * CSP_SECOND);
    if (csp_heartbeat_go(done, TIMEOUT / 2, sizeof(csp_time_t), 0, do_work_broken, NULL,
                         &heartbeat, &results) != 0)
        return;
    listen(heartbeat, results, 1);
    csp_ctx_cancel(done); /* and stop it */
    join(heartbeat, results);
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
