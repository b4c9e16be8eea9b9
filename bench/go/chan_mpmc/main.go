// chan_mpmc: the Go twin of bench/bench_chan_mpmc.c.
//
// 4 producers each send n/4 ints on a chan int32 with capacity 1024; once all
// are done the channel is closed; 4 consumers range over it. Wall time from
// the first spawn to the join of the consumers divided by the item count.
//
// Usage: chan_mpmc [items]   (default 10,000,000)
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

const nprod, ncons = 4, 4

func main() {
	n := int64(10000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < nprod {
			fmt.Fprintf(os.Stderr, "chan_mpmc: bad item count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	per := n / nprod
	total := per * nprod
	ch := make(chan int32, 1024)
	var prod, cons sync.WaitGroup
	var received int64
	start := time.Now()
	cons.Add(ncons)
	for i := 0; i < ncons; i++ {
		go func() {
			var count int64
			for range ch {
				count++
			}
			atomic.AddInt64(&received, count)
			cons.Done()
		}()
	}
	prod.Add(nprod)
	for i := 0; i < nprod; i++ {
		go func() {
			for j := int64(0); j < per; j++ {
				ch <- int32(j)
			}
			prod.Done()
		}()
	}
	prod.Wait()
	close(ch)
	cons.Wait()
	el := time.Since(start)
	if atomic.LoadInt64(&received) != total {
		fmt.Fprintf(os.Stderr, "chan_mpmc: received %d, want %d\n", received, total)
		os.Exit(1)
	}
	fmt.Printf("chan_mpmc: GOMAXPROCS=%d producers=%d consumers=%d items=%d cap=1024 elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), nprod, ncons, total, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=chan_mpmc unit=ns/item value=%.3f\n",
		float64(el.Nanoseconds())/float64(total))
}
