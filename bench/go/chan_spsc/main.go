// chan_spsc: the Go twin of bench/bench_chan_spsc.c.
//
// One producer sends 0..n-1 on a chan int with capacity 1024 and closes it;
// one consumer ranges over it and checks count and sum. Wall time from the
// first spawn to the join divided by n.
//
// Usage: chan_spsc [items]   (default 10,000,000)
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
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "chan_spsc: bad item count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	ch := make(chan int32, 1024)
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(2)
	go func() {
		var count, sum int64
		want := n * (n - 1) / 2
		for v := range ch {
			count++
			sum += int64(v)
		}
		if count != n || sum != want {
			fmt.Fprintf(os.Stderr, "chan_spsc: got %d items sum %d, want %d sum %d\n", count, sum, n, want)
			os.Exit(1)
		}
		wg.Done()
	}()
	go func() {
		for i := int64(0); i < n; i++ {
			ch <- int32(i)
		}
		close(ch)
		wg.Done()
	}()
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("chan_spsc: GOMAXPROCS=%d items=%d cap=1024 elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), n, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=chan_spsc unit=ns/item value=%.3f\n",
		float64(el.Nanoseconds())/float64(n))
}
