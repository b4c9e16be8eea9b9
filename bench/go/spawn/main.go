// spawn: the Go twin of bench/bench_spawn.c.
//
// Spawns n goroutines that exit at once, joined by a WaitGroup (Add(1)
// before each spawn, Done in the goroutine). The result is the wall time from
// the first spawn to the join divided by n.
//
// Usage: spawn [n]   (default 1,000,000)
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
	n := int64(1000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "spawn: bad task count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}

	var wg sync.WaitGroup
	start := time.Now()
	for i := int64(0); i < n; i++ {
		wg.Add(1)
		go func() {
			wg.Done()
		}()
	}
	wg.Wait()
	el := time.Since(start)

	fmt.Printf("spawn: GOMAXPROCS=%d tasks=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), n, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=spawn unit=ns/task value=%.3f\n",
		float64(el.Nanoseconds())/float64(n))
}
