/* ch4_context_greeting: cancellation and deadlines with contexts.
 *
 * Two goroutines share a cancellable context: one prints a greeting, the
 * other a farewell; both need the locale, which takes a minute to look up.
 * genGreeting will not wait more than a second for it (WithTimeout), and
 * locale checks the deadline it was given up front: a one-minute lookup
 * cannot meet a one-second deadline, so it fails at once with
 * DeadlineExceeded instead of waiting for the timer. The greeting goroutine
 * then cancels the shared context, which stops the farewell's lookup:
 * printFarewell fails with Canceled. Both lines come at once, greeting
 * first (the farewell fails only after that cancel).
 *
 * Go original (the book's final version):
 *   func main() {
 *       var wg sync.WaitGroup
 *       ctx, cancel := context.WithCancel(context.Background())
 *       defer cancel()
 *       wg.Add(1)
 *       go func() {
 *           defer wg.Done()
 *           if err := printGreeting(ctx); err != nil {
 *               fmt.Printf("cannot print greeting: %v\n", err)
 *               cancel()
 *           }
 *       }()
 *       wg.Add(1)
 *       go func() {
 *           defer wg.Done()
 *           if err := printFarewell(ctx); err != nil {
 *               fmt.Printf("cannot print farewell: %v\n", err)
 *           }
 *       }()
 *       wg.Wait()
 *   }
 *   func printGreeting(ctx context.Context) error {
 *       greeting, err := genGreeting(ctx)
 *       if err != nil {
 *           return err
 *       }
 *       fmt.Printf("%s world!\n", greeting)
 *       return nil
 *   }
 *   func genGreeting(ctx context.Context) (string, error) {
 *       ctx, cancel := context.WithTimeout(ctx, 1*time.Second)
 *       defer cancel()
 *       switch locale, err := locale(ctx); {
 *       case err != nil:
 *           return "", err
 *       case locale == "EN/US":
 *           return "hello", nil
 *       }
 *       return "", fmt.Errorf("unsupported locale")
 *   }
 *   // printFarewell and genFarewell: the same with "goodbye", no timeout.
 *   func locale(ctx context.Context) (string, error) {
 *       if deadline, ok := ctx.Deadline(); ok {
 *           if deadline.Sub(time.Now().Add(1*time.Minute)) <= 0 {
 *               return "", context.DeadlineExceeded
 *           }
 *       }
 *       select {
 *       case <-ctx.Done():
 *           return "", ctx.Err()
 *       case <-time.After(1 * time.Minute):
 *       }
 *       return "EN/US", nil
 *   }
 *
 * Output:
 *   cannot print greeting: context deadline exceeded
 *   cannot print farewell: context canceled
 */
#include <csp.h>
#include <stdio.h>
#include <string.h>

#define LOCALE_LOOKUP (60 * CSP_SECOND)

/* The example's own error, next to the library's negative CSP_E* codes. */
enum { ERR_UNSUPPORTED_LOCALE = 1 };

static const char *error_string(int err)
{
    return err == ERR_UNSUPPORTED_LOCALE ? "unsupported locale" : csp_strerror(err);
}

/* 0 and *out = the locale, or an error code. */
static int locale(csp_ctx_t *ctx, const char **out)
{
    csp_time_t deadline;
    if (csp_ctx_deadline(ctx, &deadline)) {
        if (deadline - (csp_now() + LOCALE_LOOKUP) <= 0)
            return CSP_EDEADLINE;           /* context.DeadlineExceeded */
    }

    csp_chan_t *after = csp_after(LOCALE_LOOKUP);
    if (after == NULL)
        return CSP_ENOMEM;
    csp_case_t cases[] = {
        CSP_RECV_CASE(csp_ctx_done(ctx), NULL),
        CSP_RECV_CASE(after, NULL),
    };
    int chosen = csp_select(cases, 2, CSP_FOREVER);
    csp_chan_release(after);                /* stops the timer if pending */
    if (chosen < 0)
        return chosen;                      /* CSP_ESHUTDOWN */
    if (chosen == 0)
        return csp_ctx_err(ctx);            /* case <-ctx.Done() */
    *out = "EN/US";
    return 0;
}

static int gen_greeting(csp_ctx_t *parent, const char **out)
{
    csp_ctx_t *ctx = csp_ctx_with_timeout(parent, 1 * CSP_SECOND);
    if (ctx == NULL)
        return CSP_ENOMEM;
    const char *loc;
    int err = locale(ctx, &loc);
    if (err == 0) {
        if (strcmp(loc, "EN/US") == 0)
            *out = "hello";
        else
            err = ERR_UNSUPPORTED_LOCALE;
    }
    csp_ctx_cancel(ctx);                    /* defer cancel() */
    csp_ctx_release(ctx);
    return err;
}

static int gen_farewell(csp_ctx_t *ctx, const char **out)
{
    const char *loc;
    int err = locale(ctx, &loc);
    if (err != 0)
        return err;
    if (strcmp(loc, "EN/US") == 0) {
        *out = "goodbye";
        return 0;
    }
    return ERR_UNSUPPORTED_LOCALE;
}

static int print_greeting(csp_ctx_t *ctx)
{
    const char *greeting;
    int err = gen_greeting(ctx, &greeting);
    if (err != 0)
        return err;
    printf("%s world!\n", greeting);
    return 0;
}

static int print_farewell(csp_ctx_t *ctx)
{
    const char *farewell;
    int err = gen_farewell(ctx, &farewell);
    if (err != 0)
        return err;
    printf("%s world!\n", farewell);
    return 0;
}

/* ctx is borrowed: main holds its reference until wg says both are done. */
CSP_TASK(greeter, (csp_ctx_t *, ctx), (csp_wg_t *, wg))
{
    int err = print_greeting(ctx);
    if (err != 0) {
        printf("cannot print greeting: %s\n", error_string(err));
        csp_ctx_cancel(ctx);
    }
    csp_wg_done(wg);
}

CSP_TASK(farewell, (csp_ctx_t *, ctx), (csp_wg_t *, wg))
{
    int err = print_farewell(ctx);
    if (err != 0)
        printf("cannot print farewell: %s\n", error_string(err));
    csp_wg_done(wg);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_wg_t wg = CSP_WG_INIT;
    csp_ctx_t *ctx = csp_ctx_with_cancel(csp_ctx_background());
    if (ctx == NULL) {
        fprintf(stderr, "csp_ctx_with_cancel: out of memory\n");
        return;
    }

    csp_wg_add(&wg, 1);
    CSP_GO(greeter, ctx, &wg);
    csp_wg_add(&wg, 1);
    CSP_GO(farewell, ctx, &wg);
    csp_wg_wait(&wg);

    csp_ctx_cancel(ctx);                    /* defer cancel() */
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
