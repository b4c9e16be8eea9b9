/* ch3_cond_broadcast: Broadcast wakes every waiter. A GUI button's Clicked
 * condition has three subscribers (maximize the window, show a dialog, log
 * the click); one Broadcast runs all three handlers. They run in whatever
 * order their goroutines are scheduled (the output is compared sorted).
 *
 * One change from the book: there, subscribe's goroutine calls Done before
 * it locks and waits, and main broadcasts without the lock, so a broadcast
 * could come before a subscriber waits and be lost. Here the subscriber
 * locks first and signals "running" while holding the lock, and main takes
 * the lock to broadcast: by then every subscriber has released it inside
 * its wait, so none can miss the click.
 *
 * Go original:
 *   type Button struct {
 *       Clicked *sync.Cond
 *   }
 *   button := Button{Clicked: sync.NewCond(&sync.Mutex{})}
 *
 *   subscribe := func(c *sync.Cond, fn func()) {
 *       var goroutineRunning sync.WaitGroup
 *       goroutineRunning.Add(1)
 *       go func() {
 *           goroutineRunning.Done()
 *           c.L.Lock()
 *           defer c.L.Unlock()
 *           c.Wait()
 *           fn()
 *       }()
 *       goroutineRunning.Wait()
 *   }
 *
 *   var clickRegistered sync.WaitGroup
 *   clickRegistered.Add(3)
 *   subscribe(button.Clicked, func() {
 *       fmt.Println("Maximizing window.")
 *       clickRegistered.Done()
 *   })
 *   subscribe(button.Clicked, func() {
 *       fmt.Println("Displaying annoying dialog box!")
 *       clickRegistered.Done()
 *   })
 *   subscribe(button.Clicked, func() {
 *       fmt.Println("Mouse clicked.")
 *       clickRegistered.Done()
 *   })
 *   button.Clicked.Broadcast()
 *   clickRegistered.Wait()
 */
#include <csp.h>
#include <stdio.h>

/* Go's Cond carries its Locker (c.L); here the button holds both. */
typedef struct button {
    csp_mutex_t lock;
    csp_cond_t clicked;
} button_t;

typedef void handler_fn(void);

/* At file scope, not on main's stack: a handler calls Done before its
 * subscriber unlocks button.lock, so the button must outlive main's Wait. */
static button_t button = { CSP_MUTEX_INIT, CSP_COND_INIT };
static csp_wg_t click_registered = CSP_WG_INIT;

CSP_TASK(subscriber, (button_t *, b), (handler_fn *, fn), (csp_wg_t *, running))
{
    csp_mutex_lock(&b->lock);
    csp_wg_done(running);                   /* goroutineRunning.Done() */
    csp_cond_wait(&b->clicked, &b->lock);
    fn();
    csp_mutex_unlock(&b->lock);
}

/* Returns once the handler's goroutine is waiting for a click (or about to:
 * it holds b->lock until its wait releases it). */
static void subscribe(button_t *b, handler_fn *fn)
{
    csp_wg_t goroutine_running = CSP_WG_INIT;
    csp_wg_add(&goroutine_running, 1);
    CSP_GO(subscriber, b, fn, &goroutine_running);
    csp_wg_wait(&goroutine_running);
}

static void maximize_window(void)
{
    printf("Maximizing window.\n");
    csp_wg_done(&click_registered);
}

static void display_dialog(void)
{
    printf("Displaying annoying dialog box!\n");
    csp_wg_done(&click_registered);
}

static void log_click(void)
{
    printf("Mouse clicked.\n");
    csp_wg_done(&click_registered);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_wg_add(&click_registered, 3);
    subscribe(&button, maximize_window);
    subscribe(&button, display_dialog);
    subscribe(&button, log_click);

    csp_mutex_lock(&button.lock);
    csp_cond_broadcast(&button.clicked);
    csp_mutex_unlock(&button.lock);

    csp_wg_wait(&click_registered);
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
