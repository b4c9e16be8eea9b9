/* ch4_confinement: making data safe by confining it instead of sharing it.
 *
 * Ad hoc confinement (by convention: only loopData touches data):
 *   data := make([]int, 4)
 *   loopData := func(handleData chan<- int) {
 *       defer close(handleData)
 *       for i := range data {
 *           handleData <- data[i]
 *       }
 *   }
 *   handleData := make(chan int)
 *   go loopData(handleData)
 *   for num := range handleData {
 *       fmt.Println(num)
 *   }
 *
 * Lexical confinement (the compiler enforces it): the owner creates the
 * channel inside its scope and hands out only a receive-only view.
 *   chanOwner := func() <-chan int {
 *       results := make(chan int, 5)
 *       go func() {
 *           defer close(results)
 *           for i := 0; i <= 5; i++ {
 *               results <- i
 *           }
 *       }()
 *       return results
 *   }
 *   consumer := func(results <-chan int) {
 *       for result := range results {
 *           fmt.Printf("Received: %d\n", result)
 *       }
 *       fmt.Println("Done receiving!")
 *   }
 *   results := chanOwner()
 *   consumer(results)
 *
 * and with data that is not concurrent-safe (bytes.Buffer): each task gets
 * its own slice of data, so no synchronisation is needed.
 *   printData := func(wg *sync.WaitGroup, data []byte) {
 *       defer wg.Done()
 *       var buff bytes.Buffer
 *       for _, b := range data {
 *           fmt.Fprintf(&buff, "%c", b)
 *       }
 *       fmt.Println(buff.String())
 *   }
 *   var wg sync.WaitGroup
 *   wg.Add(2)
 *   data := []byte("golang")
 *   go printData(&wg, data[:3])
 *   go printData(&wg, data[3:])
 *   wg.Wait()
 *
 * In C the receive-only view is a distinct type (CSP_CHAN_DECLARE), so a
 * consumer that tried to send or close would not compile.
 */
#include <csp.h>
#include <stdio.h>
#include <string.h>

CSP_CHAN_DECLARE(int_chan, int);

/* ---- ad hoc ---- */
static int data[4]; /* by convention only loop_data reads it */

CSP_TASK(loop_data, (int_chan_send_only_t, handle_data))
{
    for (size_t i = 0; i < sizeof data / sizeof data[0]; i++)
        int_chan_so_send(handle_data, data[i]);
    int_chan_so_close(handle_data);            /* defer close(handleData) */
}

static void ad_hoc(void)
{
    int_chan_t handle_data = int_chan_make(0);
    CSP_GO(loop_data, int_chan_send_only(handle_data));
    int num;
    while (int_chan_recv(handle_data, &num) == 0) /* for num := range handleData */
        printf("%d\n", num);
    int_chan_release(handle_data);
}

/* ---- lexical ---- */
CSP_TASK(owner_loop, (int_chan_t, results))
{
    for (int i = 0; i <= 5; i++)
        int_chan_send(results, i);
    int_chan_close(results);                   /* defer close(results) */
    int_chan_release(results);                 /* the task's own reference */
}

/* The only way to reach the channel from outside is the receive-only view. */
static int_chan_recv_only_t chan_owner(void)
{
    int_chan_t results = int_chan_make(5);
    CSP_GO(owner_loop, int_chan_retain(results));
    return int_chan_recv_only(results);        /* the caller owns one reference */
}

static void consumer(int_chan_recv_only_t results)
{
    int result;
    while (int_chan_ro_recv(results, &result) == 0)
        printf("Received: %d\n", result);
    printf("Done receiving!\n");
}

static csp_wg_t wg = CSP_WG_INIT;

CSP_TASK(print_data, (const char *, bytes), (size_t, len))
{
    char buff[16];                             /* this task's own buffer */
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < sizeof buff; i++)
        buff[n++] = bytes[i];
    buff[n] = 0;
    printf("%s\n", buff);
    csp_wg_done(&wg);                          /* defer wg.Done() */
}

static void main_task(void *arg)
{
    (void)arg;
    ad_hoc();

    int_chan_recv_only_t results = chan_owner();
    consumer(results);
    csp_chan_release(results.c);

    static const char golang[] = "golang";
    csp_wg_add(&wg, 2);
    CSP_GO(print_data, golang, 3);             /* data[:3] */
    CSP_GO(print_data, golang + 3, strlen(golang) - 3); /* data[3:] */
    csp_wg_wait(&wg);
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
