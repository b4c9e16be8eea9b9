// parked_mem: the Go twin of bench/bench_parked_mem.c.
//
// Spawns n goroutines that each mark themselves started and then park on one
// shared WaitGroup (the gate) that main releases later. The process RSS is
// read from /proc/self/statm (resident pages * page size) just before the
// spawns and again after all have started plus a 100 ms settle; the result is
// the difference divided by n. No runtime.GC(): both twins are measured the
// same way. Then the gate opens and all are joined.
//
// Usage: parked_mem [n]   (default 1,000,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"
)

func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		fmt.Fprintf(os.Stderr, "parked_mem: %v\n", err)
		os.Exit(1)
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		fmt.Fprintf(os.Stderr, "parked_mem: bad /proc/self/statm\n")
		os.Exit(1)
	}
	pages, err := strconv.ParseInt(f[1], 10, 64)
	if err != nil {
		fmt.Fprintf(os.Stderr, "parked_mem: bad /proc/self/statm: %v\n", err)
		os.Exit(1)
	}
	return pages * int64(os.Getpagesize())
}

func main() {
	n := int64(1000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "parked_mem: bad task count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}

	var started, gate, finished sync.WaitGroup
	gate.Add(1)
	started.Add(int(n))
	finished.Add(int(n))

	time.Sleep(100 * time.Millisecond)
	before := rssBytes()
	start := time.Now()
	for i := int64(0); i < n; i++ {
		go func() {
			started.Done()
			gate.Wait()
			finished.Done()
		}()
	}
	started.Wait()
	spawnEl := time.Since(start)
	time.Sleep(100 * time.Millisecond)
	after := rssBytes()

	gate.Done()
	finished.Wait()

	fmt.Printf("parked_mem: GOMAXPROCS=%d tasks=%d rss_before=%d rss_parked=%d spawn+park=%.3f ms\n",
		runtime.GOMAXPROCS(0), n, before, after, float64(spawnEl.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=parked_mem unit=bytes/task value=%.3f\n",
		float64(after-before)/float64(n))
}
