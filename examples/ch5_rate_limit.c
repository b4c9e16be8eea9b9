/* ch5_rate_limit: "Concurrency in Go", chapter 5, Rate Limiting - the
 * book's last APIConnection: API calls are limited per second and per
 * minute, disk reads and network calls have their own limits, and each
 * endpoint combines the limits it needs with a MultiLimiter. 10 ReadFile
 * and 10 ResolveAddress calls run concurrently; each logs when it gets
 * through.
 *
 * csp_limiter_t is Go's rate.Limiter (a token bucket); csp_limiter_multi is
 * the book's MultiLimiter (it waits for the most restrictive limiter, and
 * multi-limiters nest); csp_rate_per is the book's Per helper.
 *
 * Time runs 30 times faster than the book's: a "second" is 33.3 ms and a
 * "minute" 2 s, so the whole run takes about 2 s instead of a minute. The
 * log's timestamps (HH:MM:SS, UTC, like log.Ltime|log.LUTC) are in the
 * book's time, starting from the wall clock at start-up, so they show the
 * same pattern as the book's: two calls a second, then one every six
 * seconds once the per-minute pool is spent.
 *
 * Go original (abridged):
 *   func Per(eventCount int, duration time.Duration) rate.Limit {
 *       return rate.Every(duration/time.Duration(eventCount))
 *   }
 *   func Open() *APIConnection {
 *       return &APIConnection{
 *           apiLimit: MultiLimiter(
 *               rate.NewLimiter(Per(2, time.Second), 2),
 *               rate.NewLimiter(Per(10, time.Minute), 10),
 *           ),
 *           diskLimit: MultiLimiter(
 *               rate.NewLimiter(rate.Limit(1), 1),
 *           ),
 *           networkLimit: MultiLimiter(
 *               rate.NewLimiter(Per(3, time.Second), 3),
 *           ),
 *       }
 *   }
 *   func (a *APIConnection) ReadFile(ctx context.Context) error {
 *       err := MultiLimiter(a.apiLimit, a.diskLimit).Wait(ctx)
 *       if err != nil {
 *           return err
 *       }
 *       // Pretend we do work here
 *       return nil
 *   }
 *   func (a *APIConnection) ResolveAddress(ctx context.Context) error {
 *       err := MultiLimiter(a.apiLimit, a.networkLimit).Wait(ctx)
 *       ...
 *   }
 *
 *   func main() {
 *       defer log.Printf("Done.")
 *       log.SetOutput(os.Stdout)
 *       log.SetFlags(log.Ltime | log.LUTC)
 *       apiConnection := Open()
 *       var wg sync.WaitGroup
 *       wg.Add(20)
 *       for i := 0; i < 10; i++ {
 *           go func() {
 *               defer wg.Done()
 *               err := apiConnection.ReadFile(context.Background())
 *               if err != nil {
 *                   log.Printf("cannot ReadFile: %v", err)
 *               }
 *               log.Printf("ReadFile")
 *           }()
 *       }
 *       for i := 0; i < 10; i++ {
 *           go func() {
 *               defer wg.Done()
 *               err := apiConnection.ResolveAddress(context.Background())
 *               if err != nil {
 *                   log.Printf("cannot ResolveAddress: %v", err)
 *               }
 *               log.Printf("ResolveAddress")
 *           }()
 *       }
 *       wg.Wait()
 *   }
 */
#include <csp.h>
#include <csp/limiter.h>
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#define SCALE  30                       /* the book's time runs this much slower */
#define SECOND (CSP_SECOND / SCALE)     /* the book's time.Second, here */
#define MINUTE (60 * SECOND)

/* ---- log.Printf with log.Ltime | log.LUTC, in the book's time ---- */

static csp_time_t mono_start;
static time_t wall_start;

static void log_printf(const char *fmt, ...)
{
    time_t t = wall_start + (time_t)((csp_now() - mono_start) * SCALE / CSP_SECOND);
    struct tm tm;
    gmtime_r(&t, &tm);
    char msg[128];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    printf("%02d:%02d:%02d %s\n", tm.tm_hour, tm.tm_min, tm.tm_sec, msg); /* one call: one line */
}

/* ---- the API connection ---- */

typedef struct {
    csp_limiter_t *network_limit, *disk_limit, *api_limit;
} api_connection_t;

static void open_connection(api_connection_t *a)
{
    csp_limiter_t *per_second = csp_limiter_new(csp_rate_per(2, SECOND), 2);
    csp_limiter_t *per_minute = csp_limiter_new(csp_rate_per(10, MINUTE), 10);
    csp_limiter_t *disk = csp_limiter_new(csp_rate_every(SECOND), 1); /* rate.Limit(1) */
    csp_limiter_t *network = csp_limiter_new(csp_rate_per(3, SECOND), 3);
    a->api_limit = csp_limiter_multi((csp_limiter_t *[]){ per_second, per_minute }, 2);
    a->disk_limit = csp_limiter_multi((csp_limiter_t *[]){ disk }, 1);
    a->network_limit = csp_limiter_multi((csp_limiter_t *[]){ network }, 1);
    /* the multi-limiters hold their own references */
    csp_limiter_release(per_second);
    csp_limiter_release(per_minute);
    csp_limiter_release(disk);
    csp_limiter_release(network);
}

static void close_connection(api_connection_t *a)
{
    csp_limiter_release(a->api_limit);
    csp_limiter_release(a->disk_limit);
    csp_limiter_release(a->network_limit);
}

/* Waits on the combination of two limiters: MultiLimiter(x, y).Wait(ctx). */
static int wait_both(csp_ctx_t *ctx, csp_limiter_t *x, csp_limiter_t *y)
{
    csp_limiter_t *m = csp_limiter_multi((csp_limiter_t *[]){ x, y }, 2);
    if (!m)
        return CSP_ENOMEM;
    int err = csp_limiter_wait(m, ctx);
    csp_limiter_release(m);
    return err;
}

static int read_file(api_connection_t *a, csp_ctx_t *ctx)
{
    return wait_both(ctx, a->api_limit, a->disk_limit); /* pretend we do work here */
}

static int resolve_address(api_connection_t *a, csp_ctx_t *ctx)
{
    return wait_both(ctx, a->api_limit, a->network_limit);
}

/* ---- the driver ---- */

CSP_TASK(reader, (api_connection_t *, conn), (csp_wg_t *, wg))
{
    int err = read_file(conn, csp_ctx_background());
    if (err)
        log_printf("cannot ReadFile: %s", csp_strerror(err));
    log_printf("ReadFile");
    csp_wg_done(wg);
}

CSP_TASK(resolver, (api_connection_t *, conn), (csp_wg_t *, wg))
{
    int err = resolve_address(conn, csp_ctx_background());
    if (err)
        log_printf("cannot ResolveAddress: %s", csp_strerror(err));
    log_printf("ResolveAddress");
    csp_wg_done(wg);
}

static void main_task(void *arg)
{
    (void)arg;
    mono_start = csp_now();
    wall_start = time(NULL);
    api_connection_t conn;
    open_connection(&conn);
    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, 20);
    for (int i = 0; i < 10; i++)
        CSP_GO(reader, &conn, &wg);
    for (int i = 0; i < 10; i++)
        CSP_GO(resolver, &conn, &wg);
    csp_wg_wait(&wg);
    close_connection(&conn);
    log_printf("Done."); /* defer log.Printf("Done.") */
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
