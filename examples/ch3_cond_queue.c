/* ch3_cond_queue: a Cond as a rendezvous. The main goroutine adds ten items
 * to a queue that may hold at most two; whenever it is full, main waits on
 * the condition until a remover (one goroutine per item, started when the
 * item is added, removing it after a delay) signals that it took one.
 *
 * Items come in pairs: main adds two, waits, and each removal (a delay
 * later) lets it add one more. Main returns after the tenth add, while the
 * last two removers are still sleeping, so there are always ten adds and
 * eight removals. Their interleaving is usually the book's (each removal
 * followed by an add), but the two removers of a pair wake microseconds
 * apart, and if the second takes the lock before the woken main does, two
 * removals print back to back, then two adds; so the output is compared
 * sorted. The delay is 1 s in the book, 200 ms here.
 *
 * Go original:
 *   c := sync.NewCond(&sync.Mutex{})
 *   queue := make([]interface{}, 0, 10)
 *
 *   removeFromQueue := func(delay time.Duration) {
 *       time.Sleep(delay)
 *       c.L.Lock()
 *       queue = queue[1:]
 *       fmt.Println("Removed from queue")
 *       c.L.Unlock()
 *       c.Signal()
 *   }
 *
 *   for i := 0; i < 10; i++ {
 *       c.L.Lock()
 *       for len(queue) == 2 {
 *           c.Wait()
 *       }
 *       fmt.Println("Adding to queue")
 *       queue = append(queue, struct{}{})
 *       go removeFromQueue(1*time.Second)
 *       c.L.Unlock()
 *   }
 */
#include <csp.h>
#include <stdio.h>

#define REMOVE_DELAY (200 * CSP_MILLISECOND)

/* c.L and c: Go's Cond carries its Locker; here they are two objects. */
static csp_mutex_t lock = CSP_MUTEX_INIT;
static csp_cond_t c = CSP_COND_INIT;

/* The queue (of struct{}{}, so only its bounds matter), guarded by lock:
 * the live items are [head, tail) in a slice with capacity 10. */
static int head, tail;

static int queue_len(void) { return tail - head; }

CSP_TASK(remove_from_queue, (csp_duration_t, delay))
{
    csp_sleep(delay);
    csp_mutex_lock(&lock);
    head++;                                 /* queue = queue[1:] */
    printf("Removed from queue\n");
    csp_mutex_unlock(&lock);
    csp_cond_signal(&c);
}

static void main_task(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10; i++) {
        csp_mutex_lock(&lock);
        while (queue_len() == 2)
            csp_cond_wait(&c, &lock);       /* unlocks, waits, relocks */
        printf("Adding to queue\n");
        tail++;                             /* queue = append(queue, struct{}{}) */
        CSP_GO(remove_from_queue, REMOVE_DELAY);
        csp_mutex_unlock(&lock);
    }
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
