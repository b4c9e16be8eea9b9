// wakeup: the Go twin of bench/bench_wakeup.c.
//
// Latency from a send on an unbuffered channel to the parked receiver, on
// another P, running again. For each sample the sender goroutine sleeps a
// pseudo-random 50..500 us (the same xorshift64 sequence as the C program)
// so the receiving side goes idle, stamps the time into the message, sends
// it, and then spins for 100 us (env BENCH_WAKEUP_SPIN_US) without yielding so the receiver has to run
// on another P. The receiver computes now - stamp. Prints p50, p90, p99 and
// p99.9 (nearest rank); the RESULT lines give p50 and, last, p99.
//
// Note: an idle Go runtime sleeps in epoll_wait, whose timeout has
// millisecond resolution, so the sender's short sleeps last about 1 ms here
// (50..500 us in libcsp); the receiving side is idle either way.
//
// Usage: wakeup [samples]   (default 20,000)
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

const (
	spinDefaultUS = 100 // the sender's spin after each send; env BENCH_WAKEUP_SPIN_US
	gapMinUS      = 50
	gapMaxUS      = 500
)

type msg struct {
	stamp time.Duration // since base, just before the send
	seq   int64
}

// pct is the nearest-rank percentile of the sorted v, in microseconds.
func pct(v []time.Duration, p float64) float64 {
	n := int64(len(v))
	k := int64(p/100.0*float64(n) + 0.999999)
	if k < 1 {
		k = 1
	}
	if k > n {
		k = n
	}
	return float64(v[k-1].Nanoseconds()) / 1e3
}

func main() {
	n := int64(20000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "wakeup: bad sample count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	spinUS := int64(spinDefaultUS)
	if e := os.Getenv("BENCH_WAKEUP_SPIN_US"); e != "" {
		v, err := strconv.ParseInt(e, 10, 64)
		if err != nil || v < 1 || v > 1000000 {
			fmt.Fprintf(os.Stderr, "wakeup: bad BENCH_WAKEUP_SPIN_US %q (1..1000000)\n", e)
			os.Exit(2)
		}
		spinUS = v
	}
	spin := time.Duration(spinUS) * time.Microsecond
	if runtime.GOMAXPROCS(0) < 2 {
		fmt.Printf("wakeup: warning: GOMAXPROCS=%d; the receiver cannot run on another P\n",
			runtime.GOMAXPROCS(0))
	}
	lat := make([]time.Duration, n)
	ch := make(chan msg)
	base := time.Now()
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(2)
	go func() { // receiver
		for i := int64(0); i < n; i++ {
			m := <-ch
			now := time.Since(base)
			if m.seq != i {
				fmt.Fprintf(os.Stderr, "wakeup: got sample %d, want %d\n", m.seq, i)
				os.Exit(1)
			}
			lat[i] = now - m.stamp
		}
		wg.Done()
	}()
	go func() { // sender
		rng := uint64(0x9E3779B97F4A7C15)
		for i := int64(0); i < n; i++ {
			rng ^= rng << 13
			rng ^= rng >> 7
			rng ^= rng << 17
			gap := gapMinUS + int64(rng%(gapMaxUS-gapMinUS+1))
			time.Sleep(time.Duration(gap) * time.Microsecond)
			ch <- msg{stamp: time.Since(base), seq: i}
			t := time.Since(base)
			for time.Since(base)-t < spin {
			}
		}
		wg.Done()
	}()
	wg.Wait()
	el := time.Since(start)

	late := 0
	for _, d := range lat {
		if d > spin {
			late++
		}
	}
	sort.Slice(lat, func(a, b int) bool { return lat[a] < lat[b] })
	p50, p99 := pct(lat, 50), pct(lat, 99)
	fmt.Printf("wakeup: GOMAXPROCS=%d samples=%d gap=%d..%d us spin=%d us elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), n, gapMinUS, gapMaxUS, spinUS, float64(el.Nanoseconds())/1e6)
	fmt.Printf("wakeup: latency us: min=%.3f p50=%.3f p90=%.3f p99=%.3f p999=%.3f max=%.3f\n",
		float64(lat[0].Nanoseconds())/1e3, p50, pct(lat, 90), p99, pct(lat, 99.9),
		float64(lat[n-1].Nanoseconds())/1e3)
	fmt.Printf("wakeup: late (> %d us: not taken while the sender spun)=%d\n", spinUS, late)
	fmt.Printf("RESULT name=wakeup_p50 unit=us value=%.3f\n", p50)
	fmt.Printf("RESULT name=wakeup unit=us value=%.3f\n", p99)
}
