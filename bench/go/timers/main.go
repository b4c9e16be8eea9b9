// timers: the Go twin of bench/bench_timers.c: n goroutines each
// time.Sleep(10 ms) once, joined by a WaitGroup; total wall time in ms.
//
// Usage: timers [tasks]   (default 100,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

func main() {
	n := int64(100000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "timers: bad task count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	var wg sync.WaitGroup
	start := time.Now()
	for i := int64(0); i < n; i++ {
		wg.Add(1)
		go func() {
			time.Sleep(10 * time.Millisecond)
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	ms := float64(el.Nanoseconds()) / 1e6
	fmt.Printf("timers: GOMAXPROCS=%d tasks=%d sleep=10 ms elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), n, ms)
	fmt.Printf("RESULT name=timers unit=ms value=%.3f\n", ms)
}
