// sum: the Go twin of bench/bench_sum.c, after shiyanhui/libcsp's
// benchmarks/sum_go.go.
//
// sum(low, high): if low == high the result is low; otherwise two goroutines
// compute sum(low, mid) and sum(mid+1, high), joined by a WaitGroup. One
// warm-up round, then ROUNDS timed rounds of sum(0, max); the result is the
// median round in milliseconds. The sum is checked against max*(max+1)/2.
//
// Usage: sum [max]   (default 1,000,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const rounds = 5

func sum(low, high int64, result *int64) {
	if low == high {
		*result = low
		return
	}

	var left, right int64
	mid := low + ((high - low) >> 1)

	var wg sync.WaitGroup
	wg.Add(2)

	go func() {
		sum(low, mid, &left)
		wg.Done()
	}()

	go func() {
		sum(mid+1, high, &right)
		wg.Done()
	}()

	wg.Wait()

	*result = left + right
}

func main() {
	max := int64(1000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 0 {
			fmt.Fprintf(os.Stderr, "sum: bad MAX %q\n", os.Args[1])
			os.Exit(2)
		}
		max = v
	}
	want := max * (max + 1) / 2

	ms := make([]float64, 0, rounds)
	for r := -1; r < rounds; r++ { // r == -1: warm-up
		var result int64
		start := time.Now()
		sum(0, max, &result)
		el := time.Since(start)
		if result != want {
			fmt.Fprintf(os.Stderr, "sum: wrong result %d, want %d\n", result, want)
			os.Exit(1)
		}
		if r >= 0 {
			ms = append(ms, float64(el.Nanoseconds())/1e6)
		}
	}
	sort.Float64s(ms)
	med := ms[len(ms)/2]

	fmt.Printf("sum: GOMAXPROCS=%d max=%d result=%d rounds=%d ms=%v\n",
		runtime.GOMAXPROCS(0), max, want, rounds, ms)
	fmt.Printf("RESULT name=sum unit=ms/round value=%.3f\n", med)
}
