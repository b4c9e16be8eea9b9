/* hello: the smallest libcsp program. Spawns workers with CSP_TASK/CSP_GO,
 * joins them with a WaitGroup, prints in a fixed order.
 *
 * Go original:
 *   var wg sync.WaitGroup
 *   for i := 0; i < 4; i++ { wg.Add(1); go func(id int) { defer wg.Done(); results[id] = id * id }(i) }
 *   wg.Wait()
 */
#include <csp.h>
#include <stdio.h>

static int results[4];

CSP_TASK(square, (int, id), (csp_wg_t *, wg))
{
    results[id] = id * id;
    csp_wg_done(wg);
}

static void main_task(void *arg)
{
    (void)arg;
    csp_wg_t wg = CSP_WG_INIT;
    for (int i = 0; i < 4; i++) {
        csp_wg_add(&wg, 1);
        CSP_GO(square, i, &wg);
    }
    csp_wg_wait(&wg);
    for (int i = 0; i < 4; i++)
        printf("%d squared is %d\n", i, results[i]);
    printf("hello from task %s\n", csp_task_name());
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
