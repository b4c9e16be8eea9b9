// pool: the Go twin of bench/bench_pool.c.
//
// 4 goroutines each do n/4 iterations of x := pool.Get(); touch one byte of
// x; pool.Put(x) on one sync.Pool whose New makes a 64-byte object. The
// result is the wall time from the first spawn to the join divided by the
// number of get/put pairs.
//
// Usage: pool [pairs]   (default 4,000,000: 4 goroutines x 1,000,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

const tasks = 4

func main() {
	n := int64(4000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < tasks {
			fmt.Fprintf(os.Stderr, "pool: bad pair count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	perTask := n / tasks
	pairs := perTask * tasks
	var news int64
	pool := sync.Pool{New: func() interface{} {
		atomic.AddInt64(&news, 1)
		return new([64]byte)
	}}
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(tasks)
	for t := 0; t < tasks; t++ {
		go func() {
			for i := int64(0); i < perTask; i++ {
				x := pool.Get().(*[64]byte)
				x[0]++
				pool.Put(x)
			}
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("pool: GOMAXPROCS=%d tasks=%d pairs=%d news=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), tasks, pairs, atomic.LoadInt64(&news), float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=pool unit=ns/pair value=%.3f\n",
		float64(el.Nanoseconds())/float64(pairs))
}
