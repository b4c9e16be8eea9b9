// ctxcancel: the Go twin of bench/bench_ctxcancel.c.
//
// One round: root, rootCancel := context.WithCancel(context.Background());
// n goroutines, each with its own ctx, cancel := context.WithCancel(root),
// blocked in <-ctx.Done(). Once all have started and a 20 ms settle has let
// them park, t0; rootCancel(); each goroutine checks ctx.Err(), calls its
// cancel() and wg.Done(); t1 when the last has. One warm-up round, then 5
// timed rounds; the result is the median (t1 - t0) in ms.
// With env BENCH_CTXCANCEL_OP=recv each goroutine blocks in a select on an
// unbuffered channel nobody sends on and ctx.Done().
//
// Usage: ctxcancel [tasks]   (default 10,000)
package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"sort"
	"strconv"
	"sync"
	"time"
)

const rounds = 5

func round(n int64, recvOp bool, never chan int) float64 {
	root, rootCancel := context.WithCancel(context.Background())
	var started, exited sync.WaitGroup
	started.Add(int(n))
	exited.Add(int(n))
	for i := int64(0); i < n; i++ {
		ctx, cancel := context.WithCancel(root)
		go func() {
			started.Done()
			if recvOp {
				select {
				case <-never:
				case <-ctx.Done():
				}
			} else {
				<-ctx.Done()
			}
			if ctx.Err() != context.Canceled {
				fmt.Fprintf(os.Stderr, "ctxcancel: ctx.Err() = %v, want context.Canceled\n", ctx.Err())
				os.Exit(1)
			}
			cancel()
			exited.Done()
		}()
	}
	started.Wait()
	time.Sleep(20 * time.Millisecond)
	t0 := time.Now()
	rootCancel()
	exited.Wait()
	return float64(time.Since(t0).Nanoseconds()) / 1e6
}

func main() {
	n := int64(10000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 || v > 0x7fffffff {
			fmt.Fprintf(os.Stderr, "ctxcancel: bad task count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	recvOp := false
	opName := "<-ctx.Done()"
	switch op := os.Getenv("BENCH_CTXCANCEL_OP"); op {
	case "", "wait":
	case "recv":
		recvOp = true
		opName = "select{<-ch, <-ctx.Done()}"
	default:
		fmt.Fprintf(os.Stderr, "ctxcancel: BENCH_CTXCANCEL_OP must be 'wait' or 'recv'\n")
		os.Exit(2)
	}
	never := make(chan int)
	warm := round(n, recvOp, never)
	ms := make([]float64, rounds)
	for r := range ms {
		ms[r] = round(n, recvOp, never)
	}
	fmt.Printf("ctxcancel: GOMAXPROCS=%d tasks=%d op=%s warm-up=%.3f ms rounds:",
		runtime.GOMAXPROCS(0), n, opName, warm)
	for _, v := range ms {
		fmt.Printf(" %.3f", v)
	}
	fmt.Printf(" ms\n")
	sort.Float64s(ms)
	med := ms[rounds/2]
	fmt.Printf("ctxcancel: median %.3f ms = %.1f ns/task\n", med, med*1e6/float64(n))
	fmt.Printf("RESULT name=ctxcancel unit=ms value=%.3f\n", med)
}
