/* ch5_steward: "Concurrency in Go", chapter 5, Healing Unhealthy Goroutines
 * - the steward and its irresponsible ward.
 *
 * The ward never pulses its heartbeat. Its steward waits `timeout` for a
 * pulse, declares it unhealthy, halts it (cancels its context) and starts a
 * new one, over and over, until main halts the steward and its ward. The
 * steward pulses its own heartbeat, which main ranges over until the
 * steward stops (the book's `for range doWorkWithSteward(done, ...) {}`).
 *
 * csp_steward_t is the book's newSteward(timeout, startGoroutine); the ward
 * function gets its context (the book's or(wardDone, done)) and its
 * heartbeat. csp_steward_go is the book's doWorkWithSteward(done,
 * pulseInterval): it runs the steward in a task and returns its heartbeat
 * channel, closed once the steward has stopped and joined its wards. The
 * log line before each restart is the steward's on_restart callback.
 *
 * Times are the book's divided by 10 (a 400 ms timeout; main halts after
 * 900 ms). The log's lines come from different tasks, so their order can
 * vary between runs where they happen at the same moment (as in Go); the
 * output check compares them as a set.
 *
 * Go original (abridged; startWard and the monitor loop are in the library):
 *   doWork := func(done <-chan interface{}, _ time.Duration) <-chan interface{} {
 *       log.Println("ward: Hello, I'm irresponsible!")
 *       go func() {
 *           <-done
 *           log.Println("ward: I am halting.")
 *       }()
 *       return nil
 *   }
 *   doWorkWithSteward := newSteward(4*time.Second, doWork)
 *
 *   done := make(chan interface{})
 *   time.AfterFunc(9*time.Second, func() {
 *       log.Println("main: halting steward and ward.")
 *       close(done)
 *   })
 *   for range doWorkWithSteward(done, 4*time.Second) {}
 *   log.Println("Done")
 *
 *   // in newSteward's monitor loop:
 *   case <-timeoutSignal:
 *       log.Println("steward: ward unhealthy; restarting")
 *       close(wardDone)
 *       startWard()
 */
#include <csp.h>
#include <csp/supervise.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define TIMEOUT (400 * CSP_MILLISECOND) /* the book's 4 s / 10 */
#define HALT    (900 * CSP_MILLISECOND) /* the book's 9 s / 10 */

/* log.Println with log.Ltime | log.LUTC. */
static void log_printf(const char *fmt, ...)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    char msg[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%02d:%02d:%02d %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec, msg);
}

/* The irresponsible ward: no pulses, just waits to be halted. */
static int do_work(csp_ctx_t *done, csp_heartbeat_t *hb, void *arg)
{
    (void)hb, (void)arg;
    log_printf("ward: Hello, I'm irresponsible!");
    csp_ctx_wait(done); /* <-done */
    log_printf("ward: I am halting.");
    return 0;
}

static void on_restart(void *arg, int restarts, int cause)
{
    (void)arg, (void)restarts, (void)cause;
    log_printf("steward: ward unhealthy; restarting");
}

static csp_wg_t halted = CSP_WG_INIT;

static void halt(void *arg)
{
    log_printf("main: halting steward and ward.");
    csp_ctx_cancel(arg); /* close(done) */
    csp_wg_done(&halted);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_steward_opts_t opts = {
        .timeout = TIMEOUT,
        .max_restarts = -1, /* no limit, as the book's */
        .on_restart = on_restart,
        .name = "irresponsible",
    };
    csp_steward_t *do_work_with_steward = csp_steward_new(&opts, do_work, NULL);
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_add(&halted, 1);
    csp_timer_t *halter = csp_after_func(HALT, halt, done);

    csp_chan_t *heartbeat = csp_steward_go(do_work_with_steward, done, TIMEOUT, NULL);
    while (csp_chan_recv(heartbeat, NULL) == 0) /* for range ... {} */
        ;
    log_printf("Done");

    csp_wg_wait(&halted); /* halt() has cancelled done (and returns) */
    csp_chan_release(heartbeat);
    csp_timer_release(halter);
    csp_ctx_release(done);
    csp_steward_release(do_work_with_steward);
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
