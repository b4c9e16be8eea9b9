/* ch3_buffered: a buffered channel of capacity 4. The producer can queue four
 * values without a receiver; the fifth send waits for the consumer to make
 * room. The interleaving of "Sending" and "Received" lines depends on
 * scheduling (as in Go), so the expected output ignores line order.
 *
 * Go original:
 *   var stdoutBuff bytes.Buffer
 *   defer stdoutBuff.WriteTo(os.Stdout)
 *
 *   intStream := make(chan int, 4)
 *   go func() {
 *       defer close(intStream)
 *       defer fmt.Fprintln(&stdoutBuff, "Producer Done.")
 *       for i := 0; i < 5; i++ {
 *           fmt.Fprintf(&stdoutBuff, "Sending: %d\n", i)
 *           intStream <- i
 *       }
 *   }()
 *
 *   for integer := range intStream {
 *       fmt.Fprintf(&stdoutBuff, "Received %v.\n", integer)
 *   }
 */
#include <csp.h>
#include <stdio.h>
#include <pthread.h>

/* stdoutBuff: an in-memory buffer written to stdout at the end, guarded by a
 * mutex because both tasks append to it (no libcsp call is made while it is
 * held, so a plain pthread mutex is fine). */
static char stdout_buff[4096];
static size_t stdout_len;
static pthread_mutex_t buff_mu = PTHREAD_MUTEX_INITIALIZER;

static void buff_printf(const char *fmt, int v)
{
    pthread_mutex_lock(&buff_mu);
    int n = snprintf(stdout_buff + stdout_len, sizeof stdout_buff - stdout_len, fmt, v);
    if (n > 0 && (size_t)n < sizeof stdout_buff - stdout_len)
        stdout_len += (size_t)n;
    pthread_mutex_unlock(&buff_mu);
}

CSP_TASK(producer, (csp_chan_t *, int_stream))
{
    for (int i = 0; i < 5; i++) {
        buff_printf("Sending: %d\n", i);
        csp_chan_send(int_stream, &i);
    }
    buff_printf("Producer Done.\n", 0);   /* deferred: runs before close */
    csp_chan_close(int_stream);
    csp_chan_release(int_stream);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_chan_t *int_stream = csp_chan_make(sizeof(int), 4);
    CSP_GO(producer, csp_chan_retain(int_stream));

    int integer;
    while (csp_chan_recv(int_stream, &integer) == 0)
        buff_printf("Received %d.\n", integer);
    csp_chan_release(int_stream);

    fwrite(stdout_buff, 1, stdout_len, stdout);   /* stdoutBuff.WriteTo(os.Stdout) */
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
