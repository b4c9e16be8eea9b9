/* ch4_pipeline_batch: a batch-processing pipeline. Each stage is a plain
 * function that takes a whole slice and returns a new one; stages combine
 * by calling one on the result of the other. Every stage must finish the
 * whole batch before the next starts, and holds twice the batch in memory;
 * ch4_pipeline_stream does the same work one value at a time.
 *
 * Go original:
 *   multiply := func(values []int, multiplier int) []int {
 *       multipliedValues := make([]int, len(values))
 *       for i, v := range values {
 *           multipliedValues[i] = v * multiplier
 *       }
 *       return multipliedValues
 *   }
 *   add := func(values []int, additive int) []int {
 *       addedValues := make([]int, len(values))
 *       for i, v := range values {
 *           addedValues[i] = v + additive
 *       }
 *       return addedValues
 *   }
 *
 *   ints := []int{1, 2, 3, 4}
 *   for _, v := range multiply(add(multiply(ints, 2), 1), 2) {
 *       fmt.Println(v)
 *   }
 *
 * No tasks, no channels: this is the baseline the stream version improves
 * on. A slice is a pointer and a length; each stage allocates its result
 * (the caller frees it), as Go's make does.
 */
#include <stdio.h>
#include <stdlib.h>

typedef struct {
    int   *v;
    size_t n;
} ints_t;

static ints_t multiply(ints_t values, int multiplier)
{
    ints_t r = { malloc(values.n * sizeof(int)), values.n };
    if (!r.v)
        abort();
    for (size_t i = 0; i < values.n; i++)
        r.v[i] = values.v[i] * multiplier;
    return r;
}

static ints_t add(ints_t values, int additive)
{
    ints_t r = { malloc(values.n * sizeof(int)), values.n };
    if (!r.v)
        abort();
    for (size_t i = 0; i < values.n; i++)
        r.v[i] = values.v[i] + additive;
    return r;
}

int main(void)
{
    int data[] = { 1, 2, 3, 4 };
    ints_t ints = { data, 4 };

    ints_t step1 = multiply(ints, 2);
    ints_t step2 = add(step1, 1);
    ints_t result = multiply(step2, 2);   /* multiply(add(multiply(ints, 2), 1), 2) */
    for (size_t i = 0; i < result.n; i++)
        printf("%d\n", result.v[i]);

    free(step1.v);
    free(step2.v);
    free(result.v);
    return 0;
}
