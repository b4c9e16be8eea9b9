/* ch5_steward_bridge: "Concurrency in Go", chapter 5, Healing Unhealthy
 * Goroutines - a ward that produces an integer stream from a list, behind a
 * bridge.
 *
 * The ward sends the values of its list (1, 2, -1, 3, 4, 5) on a stream of
 * its own; at the negative value it logs an error and dies. Its steward
 * restarts it, and the new ward starts the list from the beginning with a
 * new stream. Each stream is handed to a bridge (the book's
 * bridge-channel), so the consumer sees one uninterrupted stream: it takes
 * six values and gets 1 and 2, three times.
 *
 * csp_pipe_bridge and csp_pipe_take are the book's bridge and take
 * (include/csp/pipeline.h). The ward is a function of its context and its
 * heartbeat (csp_heartbeat_send pulses while it waits to send); the list it
 * closes over is its argument. The steward restarts a ward as soon as it
 * returns a failure (the book's, watching only the heartbeat, notices a
 * millisecond later). As the book suggests, this steward gives up after a
 * number of failures: two restarts, so the third ward's failure is the
 * last - and the output is the book's whatever the timing.
 *
 * The log lines and the "Received" lines come from different tasks, so
 * their order varies between runs (as in Go); the output check compares
 * them as a set.
 *
 * Go original (abridged):
 *   doWorkFn := func(done <-chan interface{}, intList ...int,
 *   ) (startGoroutineFn, <-chan interface{}) {
 *       intChanStream := make(chan (<-chan interface{}))
 *       intStream := bridge(done, intChanStream)
 *       doWork := func(done <-chan interface{}, pulseInterval time.Duration,
 *       ) <-chan interface{} {
 *           intStream := make(chan interface{})
 *           heartbeat := make(chan interface{})
 *           go func() {
 *               defer close(intStream)
 *               select {
 *               case intChanStream <- intStream:
 *               case <-done:
 *                   return
 *               }
 *               pulse := time.Tick(pulseInterval)
 *               for {
 *               valueLoop:
 *                   for _, intVal := range intList {
 *                       if intVal < 0 {
 *                           log.Printf("negative value: %v\n", intVal)
 *                           return
 *                       }
 *                       for {
 *                           select {
 *                           case <-pulse:
 *                               select {
 *                               case heartbeat <- struct{}{}:
 *                               default:
 *                               }
 *                           case intStream <- intVal:
 *                               continue valueLoop
 *                           case <-done:
 *                               return
 *                           }
 *                       }
 *                   }
 *               }
 *           }()
 *           return heartbeat
 *       }
 *       return doWork, intStream
 *   }
 *
 *   log.SetFlags(log.Ltime | log.LUTC)
 *   log.SetOutput(os.Stdout)
 *   done := make(chan interface{})
 *   defer close(done)
 *   doWork, intStream := doWorkFn(done, 1, 2, -1, 3, 4, 5)
 *   doWorkWithSteward := newSteward(1*time.Millisecond, doWork)
 *   doWorkWithSteward(done, 1*time.Hour)
 *   for intVal := range take(done, intStream, 6) {
 *       fmt.Printf("Received: %v\n", intVal)
 *   }
 */
#include <csp.h>
#include <csp/pipeline.h>
#include <csp/supervise.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

/* log.Printf with log.Ltime | log.LUTC. */
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

/* What doWorkFn's closure captures. */
typedef struct {
    csp_chan_t *int_chan_stream; /* channel of channels, read by the bridge */
    const int  *int_list;
    int         n;
} ward_arg_t;

/* The ward: one instance per (re)start. */
static int do_work(csp_ctx_t *done, csp_heartbeat_t *hb, void *arg)
{
    const ward_arg_t *a = arg;
    csp_chan_t *int_stream = csp_chan_make(sizeof(int), 0);
    if (!int_stream)
        return CSP_ENOMEM;
    /* let the bridge know about the new stream; the pointer carries a
     * reference, which the bridge releases when it has drained the stream */
    csp_chan_t *handed = csp_chan_retain(int_stream);
    if (csp_heartbeat_send(hb, done, a->int_chan_stream, &handed) != 0) {
        csp_chan_release(handed); /* not handed over: still ours */
        csp_chan_close(int_stream);
        csp_chan_release(int_stream);
        return 0;
    }
    int rc = 0;
    for (;;) { /* the book's endless for { valueLoop: ... } */
        for (int i = 0; i < a->n; i++) {
            int int_val = a->int_list[i];
            if (int_val < 0) {
                log_printf("negative value: %d", int_val); /* simulate an unhealthy ward */
                rc = -1;
                goto out;
            }
            if (csp_heartbeat_send(hb, done, int_stream, &int_val) != 0)
                goto out; /* case <-done: return */
        }
    }
out:
    csp_chan_close(int_stream); /* defer close(intStream) */
    csp_chan_release(int_stream);
    return rc;
}

static void on_restart(void *arg, int restarts, int cause)
{
    (void)arg, (void)restarts, (void)cause;
    log_printf("steward: ward unhealthy; restarting");
}

static void main_task(void *arg)
{
    (void)arg;
    static const int int_list[] = { 1, 2, -1, 3, 4, 5 };
    csp_ctx_t *done = csp_ctx_with_cancel(csp_ctx_background());
    csp_wg_t pipes = CSP_WG_INIT; /* joins the bridge and take stages */
    csp_pipe_opts_t opts = { .wg = &pipes };

    /* doWorkFn(done, 1, 2, -1, 3, 4, 5) */
    csp_chan_t *int_chan_stream = csp_chan_make(sizeof(csp_chan_t *), 0);
    csp_chan_t *int_stream = csp_pipe_bridge(done, int_chan_stream, sizeof(int), &opts);
    ward_arg_t ward = { int_chan_stream, int_list, (int)(sizeof int_list / sizeof int_list[0]) };

    /* newSteward(timeout, doWork) and doWorkWithSteward(done, 1*time.Hour) */
    csp_steward_opts_t sopts = {
        .timeout = 100 * CSP_MILLISECOND, /* failures are seen at once anyway */
        .max_restarts = 2,                /* give up at the third failure */
        .on_restart = on_restart,
    };
    csp_steward_t *steward = csp_steward_new(&sopts, do_work, &ward);
    csp_chan_t *steward_heartbeat = csp_steward_go(steward, done, 3600 * CSP_SECOND, NULL);
    if (!int_stream || !steward || !steward_heartbeat) {
        printf("cannot start: out of memory\n");
        return;
    }

    csp_chan_t *six = csp_pipe_take(done, int_stream, 6, &opts);
    int int_val;
    while (csp_chan_recv(six, &int_val) == 0) /* for intVal := range take(done, intStream, 6) */
        printf("Received: %d\n", int_val);

    /* defer close(done); then wait until everything has stopped */
    csp_ctx_cancel(done);
    while (csp_chan_recv(steward_heartbeat, NULL) == 0) /* closed once the wards are joined */
        ;
    csp_wg_wait(&pipes);
    csp_chan_release(six);
    csp_chan_release(steward_heartbeat);
    csp_chan_release(int_stream);
    csp_chan_release(int_chan_stream);
    csp_steward_release(steward);
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
