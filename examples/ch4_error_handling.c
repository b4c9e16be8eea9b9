/* ch4_error_handling: "Concurrency in Go", chapter 4, Error Handling.
 *
 * The goroutine that checks URLs does not decide what to do with an error:
 * it sends each outcome, a response or an error, as one Result to the part of
 * the program that has the whole picture. Here the consumer stops after three
 * errors.
 *
 * http.Get is replaced by a stand-in that needs no network: a name without a
 * scheme fails the way http.Get does ("unsupported protocol scheme"), and
 * the few URLs of a small in-memory table answer after a millisecond.
 *
 * Ownership: a result carries one reference to its error. A delivered result
 * hands it to the consumer, who releases it; a result the producer could not
 * deliver (done was closed) is released by the producer.
 *
 * Go original:
 *   type Result struct {
 *       Error    error
 *       Response *http.Response
 *   }
 *   checkStatus := func(done <-chan interface{}, urls ...string) <-chan Result {
 *       results := make(chan Result)
 *       go func() {
 *           defer close(results)
 *           for _, url := range urls {
 *               var result Result
 *               resp, err := http.Get(url)
 *               result = Result{Error: err, Response: resp}
 *               select {
 *               case <-done:
 *                   return
 *               case results <- result:
 *               }
 *           }
 *       }()
 *       return results
 *   }
 *
 *   done := make(chan interface{})
 *   defer close(done)
 *
 *   errCount := 0
 *   urls := []string{"a", "https://www.google.com", "b", "c", "d"}
 *   for result := range checkStatus(done, urls...) {
 *       if result.Error != nil {
 *           fmt.Printf("error: %v\n", result.Error)
 *           errCount++
 *           if errCount >= 3 {
 *               fmt.Println("Too many errors, breaking!")
 *               break
 *           }
 *           continue
 *       }
 *       fmt.Printf("Response: %v\n", result.Response.Status)
 *   }
 */
#include <csp.h>

#include <stdio.h>
#include <string.h>

typedef struct {
    int         status_code;
    const char *status; /* static text */
} response_t;

/* result_t { csp_error_t *err; response_t value; }, its helpers, and the
 * typed channel result_chan. */
CSP_RESULT_DECLARE(result, response_t);

enum { ERR_URL = 1, ERR_SCHEME = 2, ERR_DNS = 3 };

/* The stand-in for the web. */
static const struct {
    const char *url;
    int         status_code;
    const char *status;
} fake_web[] = {
    { "https://www.google.com", 200, "200 OK" },
    { "https://www.google.com/nothing-here", 404, "404 Not Found" },
};

/* The stand-in for http.Get: a response, or an error the caller owns. */
static result_t http_get(const char *url)
{
    const char *sep = strstr(url, "://");
    if (sep == NULL) {
        csp_error_t *err = csp_error_new(ERR_SCHEME, "unsupported protocol scheme \"\"");
        return result_err(csp_error_wrap(err, ERR_URL, "Get \"%s\"", url));
    }
    csp_sleep(CSP_MILLISECOND); /* the round trip */
    for (size_t i = 0; i < sizeof fake_web / sizeof fake_web[0]; i++)
        if (strcmp(fake_web[i].url, url) == 0)
            return result_ok((response_t){ fake_web[i].status_code, fake_web[i].status });
    const char *host = sep + 3;
    int host_len = (int)strcspn(host, "/");
    csp_error_t *err = csp_error_new(ERR_DNS, "dial tcp: lookup %.*s: no such host", host_len,
                                     host);
    return result_err(csp_error_wrap(err, ERR_URL, "Get \"%s\"", url));
}

static csp_wg_t producers = CSP_WG_INIT;

/* The goroutine of checkStatus; owns a reference to done and to results. */
CSP_TASK(check_urls, (csp_chan_t *, done), (result_chan_t, results),
         (const char *const *, urls), (size_t, n))
{
    for (size_t i = 0; i < n; i++) {
        result_t result = http_get(urls[i]);
        csp_case_t cases[] = {
            CSP_RECV_CASE(done, NULL),
            CSP_SEND_CASE(results.c, &result),
        };
        if (csp_select(cases, 2, CSP_FOREVER) != 1) {
            result_clear(&result); /* case <-done: not delivered, still ours */
            break;
        }
    }
    result_chan_close(results); /* defer close(results) */
    result_chan_release(results);
    csp_chan_release(done);
    csp_wg_done(&producers);
}

/* Returns the receiving end; the caller owns one reference to it. */
static result_chan_recv_only_t check_status(csp_chan_t *done, const char *const *urls, size_t n)
{
    result_chan_t results = result_chan_make(0);
    csp_wg_add(&producers, 1);
    CSP_GO(check_urls, csp_chan_retain(done), result_chan_retain(results), urls, n);
    return result_chan_recv_only(results);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_chan_t *done = csp_chan_make(0, 0);

    static const char *const urls[] = { "a", "https://www.google.com", "b", "c", "d" };
    result_chan_recv_only_t results = check_status(done, urls, sizeof urls / sizeof urls[0]);
    int err_count = 0;
    result_t result;
    while (result_chan_ro_recv(results, &result) == 0) { /* range */
        if (!result_is_ok(&result)) {
            char msg[256];
            csp_error_format(result.err, CSP_ERROR_CHAIN, msg, sizeof msg);
            printf("error: %s\n", msg);
            result_clear(&result); /* the error is ours now: release it */
            err_count++;
            if (err_count >= 3) {
                printf("Too many errors, breaking!\n");
                break;
            }
            continue;
        }
        printf("Response: %s\n", result.value.status);
    }

    csp_chan_close(done); /* defer close(done) */
    /* Go's garbage collector would take what is still in flight; here the
     * results the producer still delivers are drained and released, and the
     * producer is waited for, so that nothing leaks. */
    while (result_chan_ro_recv(results, &result) == 0)
        result_clear(&result);
    csp_wg_wait(&producers);
    csp_chan_release(results.c);
    csp_chan_release(done);
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
