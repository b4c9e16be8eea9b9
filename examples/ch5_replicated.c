/* ch5_replicated: "Concurrency in Go", chapter 5, Replicated Requests.
 *
 * One request goes to 10 handlers at once, each with a random simulated
 * load of 1 to 5 units; the first answer wins and the other handlers are
 * cancelled. Each handler prints how long it took - or, for the cancelled
 * ones, how long it would have taken - and main prints who answered. All
 * handlers have returned (csp_replicate joins them) before main prints.
 *
 * csp_replicate is the book's whole main: it starts the handlers with a
 * context derived from main's (the book's done), takes the first success,
 * cancels the rest and waits for them (the book's close(done); wg.Wait()).
 *
 * A load unit is 100 ms here (the book's is a second).
 *
 * Go original:
 *   doWork := func(done <-chan interface{}, id int, wg *sync.WaitGroup, result chan<- int) {
 *       started := time.Now()
 *       defer wg.Done()
 *       // Simulate random load
 *       simulatedLoadTime := time.Duration(1+rand.Intn(5))*time.Second
 *       select {
 *       case <-done:
 *       case <-time.After(simulatedLoadTime):
 *       }
 *       select {
 *       case <-done:
 *       case result <- id:
 *       }
 *       took := time.Since(started)
 *       // Display how long handlers would have taken
 *       if took < simulatedLoadTime {
 *           took = simulatedLoadTime
 *       }
 *       fmt.Printf("%v took %v\n", id, took)
 *   }
 *
 *   done := make(chan interface{})
 *   result := make(chan int)
 *   var wg sync.WaitGroup
 *   wg.Add(10)
 *   for i:=0; i < 10; i++ {
 *       go doWork(done, i, &wg, result)
 *   }
 *   firstReturned := <-result
 *   close(done)
 *   wg.Wait()
 *   fmt.Printf("Received an answer from #%v\n", firstReturned)
 */
#include <csp.h>
#include <csp/supervise.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define HANDLERS 10
#define UNIT (100 * CSP_MILLISECOND) /* the book's time.Second */

/* Prints d the way Go's time.Duration does for these values: "300ms",
 * "100.211046ms". */
static void format_duration(char *buf, size_t size, csp_duration_t d)
{
    long long ms = d / CSP_MILLISECOND, rest = d % CSP_MILLISECOND;
    if (rest == 0) {
        snprintf(buf, size, "%lldms", ms);
        return;
    }
    char frac[8];
    snprintf(frac, sizeof frac, "%06lld", rest);
    for (int i = 5; i > 0 && frac[i] == '0'; i--) /* Go drops trailing zeros */
        frac[i] = 0;
    snprintf(buf, size, "%lld.%sms", ms, frac);
}

static csp_duration_t simulated_load[HANDLERS]; /* 1+rand.Intn(5) units each */

static int do_work(csp_ctx_t *done, int id, void *arg, void *out)
{
    (void)arg;
    csp_time_t started = csp_now();
    csp_duration_t simulated_load_time = simulated_load[id];
    /* select { case <-done: case <-time.After(simulatedLoadTime): } */
    int rc = csp_select_ctx_until(done, NULL, 0, started + simulated_load_time);
    if (rc == CSP_ETIMEDOUT) {
        *(int *)out = id; /* result <- id: the answer */
        rc = 0;
    }
    csp_duration_t took = csp_now() - started;
    if (took < simulated_load_time) /* display how long it would have taken */
        took = simulated_load_time;
    char buf[32];
    format_duration(buf, sizeof buf, took);
    printf("%d took %s\n", id, buf);
    return rc; /* 0: an answer; else cancelled */
}

static void main_task(void *arg)
{
    (void)arg;
    srand((unsigned)time(NULL));
    for (int i = 0; i < HANDLERS; i++)
        simulated_load[i] = (1 + rand() % 5) * UNIT;
    int first_returned = -1;
    int winner = csp_replicate(csp_ctx_background(), HANDLERS, do_work, NULL, &first_returned,
                               sizeof first_returned);
    if (winner < 0) {
        printf("no answer: %s\n", csp_strerror(winner));
        return;
    }
    printf("Received an answer from #%d\n", first_returned);
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
