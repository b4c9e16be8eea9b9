/* ch3_pool: Pool, a cache of interchangeable objects.
 *
 * 1. Get on an empty pool calls New (twice here); an instance Put back is
 *    handed out by the next Get instead of a new one, so "Creating new
 *    instance." is printed twice, not three times.
 * 2. Bounding memory: the pool is seeded with four 1 KB buffers and 1024
 *    goroutines each borrow one and give it back. Only a buffer per
 *    goroutine running at the same moment is ever needed, so New is called
 *    a handful of times, not 1024 (the exact count depends on scheduling
 *    and on the number of workers). The book runs 1024*1024 goroutines.
 *
 * Differences from Go: there is no garbage collector, so the objects a pool
 * drops or still caches are freed by its free_fn (csp_pool_destroy frees
 * the cached ones), and New's counter is atomic (New may run concurrently,
 * which the book's version, numCalcsCreated += 1, overlooks).
 *
 * Go original:
 *   myPool := &sync.Pool{
 *       New: func() interface{} {
 *           fmt.Println("Creating new instance.")
 *           return struct{}{}
 *       },
 *   }
 *   myPool.Get()
 *   instance := myPool.Get()
 *   myPool.Put(instance)
 *   myPool.Get()
 *
 *   var numCalcsCreated int
 *   calcPool := &sync.Pool{
 *       New: func() interface{} {
 *           numCalcsCreated += 1
 *           mem := make([]byte, 1024)
 *           return &mem
 *       },
 *   }
 *   // Seed the pool with 4KB
 *   calcPool.Put(calcPool.New())
 *   calcPool.Put(calcPool.New())
 *   calcPool.Put(calcPool.New())
 *   calcPool.Put(calcPool.New())
 *
 *   const numWorkers = 1024 * 1024
 *   var wg sync.WaitGroup
 *   wg.Add(numWorkers)
 *   for i := numWorkers; i > 0; i-- {
 *       go func() {
 *           defer wg.Done()
 *           mem := calcPool.Get().(*[]byte)
 *           defer calcPool.Put(mem)
 *           // Assume something interesting, but quick is being done with
 *           // this memory.
 *       }()
 *   }
 *   wg.Wait()
 *   fmt.Printf("%d calculators were created.", numCalcsCreated)
 */
#include <csp.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

/* ---- 1. Creating new instance. ---- */

/* Go's struct{}{}: every instance is the same empty object. */
static char empty_instance;

static void *new_instance(void *arg)
{
    (void)arg;
    printf("Creating new instance.\n");
    return &empty_instance;
}

static void get_put_get(void)
{
    csp_pool_t my_pool = CSP_POOL_INIT(new_instance, NULL, NULL);  /* nothing to free */
    csp_pool_get(&my_pool);
    void *instance = csp_pool_get(&my_pool);
    csp_pool_put(&my_pool, instance);
    csp_pool_get(&my_pool);
    csp_pool_destroy(&my_pool);
}

/* ---- 2. N calculators were created. ---- */

enum { CALC_SIZE = 1024, NUM_WORKERS = 1024 };

/* Counts New calls; relaxed: only its final value is read, after the
 * WaitGroup has ordered every New call before the read. */
static atomic_int num_calcs_created;

static void *new_calc(void *arg)
{
    (void)arg;
    atomic_fetch_add_explicit(&num_calcs_created, 1, memory_order_relaxed);
    return malloc(CALC_SIZE);
}

static void free_calc(void *mem, void *arg)
{
    (void)arg;
    free(mem);
}

static csp_pool_t calc_pool = CSP_POOL_INIT(new_calc, free_calc, NULL);

CSP_TASK(calculate, (csp_wg_t *, wg))
{
    unsigned char *mem = csp_pool_get(&calc_pool);
    if (mem != NULL) {
        /* Assume something interesting, but quick is being done with this
         * memory. */
        mem[0] = (unsigned char)csp_task_id();
        csp_pool_put(&calc_pool, mem);
    }
    csp_wg_done(wg);
}

static void bounded_memory(void)
{
    /* Seed the pool with 4 KB. */
    for (int i = 0; i < 4; i++)
        csp_pool_put(&calc_pool, calc_pool.new_fn(calc_pool.arg));

    csp_wg_t wg = CSP_WG_INIT;
    csp_wg_add(&wg, NUM_WORKERS);
    for (int i = NUM_WORKERS; i > 0; i--)
        CSP_GO(calculate, &wg);
    csp_wg_wait(&wg);
    printf("%d calculators were created.\n",
           atomic_load_explicit(&num_calcs_created, memory_order_relaxed));
    csp_pool_destroy(&calc_pool);
}

static void main_task(void *arg)
{
    (void)arg;
    get_put_get();
    bounded_memory();
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
