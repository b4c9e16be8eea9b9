// mutex: the Go twin of bench/bench_mutex.c.
//
// 4 goroutines each do n/4 iterations of mu.Lock(); counter++; mu.Unlock()
// on one sync.Mutex; the result is the wall time from the first spawn to the
// join divided by the number of lock/unlock pairs. The counter is checked.
//
// Usage: mutex [pairs]   (default 4,000,000: 4 goroutines x 1,000,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const tasks = 4

func main() {
	n := int64(4000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < tasks {
			fmt.Fprintf(os.Stderr, "mutex: bad pair count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	perTask := n / tasks
	pairs := perTask * tasks
	var mu sync.Mutex
	var counter int64
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(tasks)
	for t := 0; t < tasks; t++ {
		go func() {
			for i := int64(0); i < perTask; i++ {
				mu.Lock()
				counter++
				mu.Unlock()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	mu.Lock()
	got := counter
	mu.Unlock()
	if got != pairs {
		fmt.Fprintf(os.Stderr, "mutex: counter %d, want %d\n", got, pairs)
		os.Exit(1)
	}
	fmt.Printf("mutex: GOMAXPROCS=%d tasks=%d pairs=%d counter=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), tasks, pairs, got, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=mutex unit=ns/pair value=%.3f\n",
		float64(el.Nanoseconds())/float64(pairs))
}
