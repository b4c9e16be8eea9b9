/* ch3_mutex: guarding a critical section with a Mutex. Six goroutines
 * increment a shared count and six decrement it; the mutex makes each
 * read-modify-print exclusive, so every printed value is one step away from
 * the previous one and the count ends at 0.
 *
 * Which goroutine gets the lock first is up to the scheduler, so the values
 * and the line order vary from run to run (the output is compared sorted,
 * values masked); "Arithmetic complete." is printed after all twelve, once
 * the WaitGroup says they are done.
 *
 * Go original:
 *   var count int
 *   var lock sync.Mutex
 *   increment := func() {
 *       lock.Lock()
 *       defer lock.Unlock()
 *       count++
 *       fmt.Printf("Incrementing: %d\n", count)
 *   }
 *   decrement := func() {
 *       lock.Lock()
 *       defer lock.Unlock()
 *       count--
 *       fmt.Printf("Decrementing: %d\n", count)
 *   }
 *
 *   var arithmetic sync.WaitGroup
 *   for i := 0; i <= 5; i++ {
 *       arithmetic.Add(1)
 *       go func() {
 *           defer arithmetic.Done()
 *           increment()
 *       }()
 *   }
 *   for i := 0; i <= 5; i++ {
 *       arithmetic.Add(1)
 *       go func() {
 *           defer arithmetic.Done()
 *           decrement()
 *       }()
 *   }
 *   arithmetic.Wait()
 *   fmt.Println("Arithmetic complete.")
 */
#include <csp.h>
#include <stdio.h>

static int count;                           /* guarded by lock */
static csp_mutex_t lock = CSP_MUTEX_INIT;

static void increment(void)
{
    csp_mutex_lock(&lock);
    count++;
    printf("Incrementing: %d\n", count);
    csp_mutex_unlock(&lock);
}

static void decrement(void)
{
    csp_mutex_lock(&lock);
    count--;
    printf("Decrementing: %d\n", count);
    csp_mutex_unlock(&lock);
}

CSP_TASK(incrementer, (csp_wg_t *, arithmetic))
{
    increment();
    csp_wg_done(arithmetic);
}

CSP_TASK(decrementer, (csp_wg_t *, arithmetic))
{
    decrement();
    csp_wg_done(arithmetic);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_wg_t arithmetic = CSP_WG_INIT;
    for (int i = 0; i <= 5; i++) {
        csp_wg_add(&arithmetic, 1);
        CSP_GO(incrementer, &arithmetic);
    }
    for (int i = 0; i <= 5; i++) {
        csp_wg_add(&arithmetic, 1);
        CSP_GO(decrementer, &arithmetic);
    }
    csp_wg_wait(&arithmetic);
    printf("Arithmetic complete.\n");
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
