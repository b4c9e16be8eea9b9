// wg: the Go twin of bench/bench_wg.c.
//
// One round: wg.Add(n) once, n goroutines that each only call wg.Done, then
// wg.Wait. One warm-up round, then 9 timed rounds; the result is the median
// round in ms.
//
// Usage: wg [tasks per round]   (default 100,000)
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

const rounds = 9

func round(n int64) float64 {
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(int(n))
	for i := int64(0); i < n; i++ {
		go func() { wg.Done() }()
	}
	wg.Wait()
	return float64(time.Since(start).Nanoseconds()) / 1e6
}

func main() {
	n := int64(100000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 || v > 0x7fffffff {
			fmt.Fprintf(os.Stderr, "wg: bad task count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	warm := round(n)
	ms := make([]float64, rounds)
	for r := range ms {
		ms[r] = round(n)
	}
	fmt.Printf("wg: GOMAXPROCS=%d tasks/round=%d warm-up=%.3f ms rounds:", runtime.GOMAXPROCS(0), n, warm)
	for _, v := range ms {
		fmt.Printf(" %.3f", v)
	}
	fmt.Printf(" ms\n")
	sort.Float64s(ms)
	med := ms[rounds/2]
	fmt.Printf("wg: median %.3f ms/round = %.1f ns/task\n", med, med*1e6/float64(n))
	fmt.Printf("RESULT name=wg unit=ms/round value=%.3f\n", med)
}
