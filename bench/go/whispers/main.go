// whispers: the Go twin of bench/bench_whispers.c (Rob Pike's "Chinese
// whispers"): a chain of n goroutines, each receiving an int from its right
// neighbour and passing it plus one to its left. Creation is timed; the
// result is the total wall time in ms.
//
// Usage: whispers [tasks]   (default 100,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"time"
)

func whisper(left, right chan int) {
	left <- 1 + <-right
}

func main() {
	n := int64(100000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < 1 {
			fmt.Fprintf(os.Stderr, "whispers: bad task count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	start := time.Now()
	leftmost := make(chan int)
	left, right := leftmost, leftmost
	for i := int64(0); i < n; i++ {
		right = make(chan int)
		go whisper(left, right)
		left = right
	}
	go func(c chan int) { c <- 1 }(right)
	v := <-leftmost
	el := time.Since(start)
	if int64(v) != n+1 {
		fmt.Fprintf(os.Stderr, "whispers: got %d, want %d\n", v, n+1)
		os.Exit(1)
	}
	ms := float64(el.Nanoseconds()) / 1e6
	fmt.Printf("whispers: GOMAXPROCS=%d tasks=%d result=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), n, v, ms)
	fmt.Printf("RESULT name=whispers unit=ms value=%.3f\n", ms)
}
