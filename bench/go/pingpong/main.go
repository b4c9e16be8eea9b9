// pingpong: the Go twin of bench/bench_pingpong.c.
//
// Two goroutines exchange an int over two unbuffered channels, n/2 round
// trips; the result is the wall time from the first spawn to the join divided
// by the number of one-way messages (n).
//
// Usage: pingpong [messages]   (default 2,000,000)
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
	n := int64(2000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 2 {
			fmt.Fprintf(os.Stderr, "pingpong: bad message count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	rounds := n / 2
	msgs := rounds * 2
	ping := make(chan int)
	pong := make(chan int)
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(2)
	go func() {
		for i := int64(0); i < rounds; i++ {
			v := <-ping
			pong <- v + 1
		}
		wg.Done()
	}()
	go func() {
		v := 0
		for i := int64(0); i < rounds; i++ {
			ping <- v
			v = <-pong
		}
		if int64(v) != rounds {
			fmt.Fprintf(os.Stderr, "pingpong: bad value %d\n", v)
			os.Exit(1)
		}
		wg.Done()
	}()
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("pingpong: GOMAXPROCS=%d messages=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), msgs, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=pingpong unit=ns/msg value=%.3f\n",
		float64(el.Nanoseconds())/float64(msgs))
}
