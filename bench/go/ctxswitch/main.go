// ctxswitch: the Go twin of bench/bench_ctxswitch.c.
//
// Two goroutines each call runtime.Gosched() n/2 times; the result is the
// wall time from the first spawn to the join divided by the total number of
// yields. Run with GOMAXPROCS=1 to measure pure switch cost.
//
// Usage: ctxswitch [total_yields]   (default 10,000,000)
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
	n := int64(10000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 2 {
			fmt.Fprintf(os.Stderr, "ctxswitch: bad yield count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	per := n / 2
	total := per * 2

	var wg sync.WaitGroup
	start := time.Now()
	for t := 0; t < 2; t++ {
		wg.Add(1)
		go func() {
			for i := int64(0); i < per; i++ {
				runtime.Gosched()
			}
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(start)

	fmt.Printf("ctxswitch: GOMAXPROCS=%d yields=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), total, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=ctxswitch unit=ns/yield value=%.3f\n",
		float64(el.Nanoseconds())/float64(total))
}
