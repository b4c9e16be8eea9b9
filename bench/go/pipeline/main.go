// pipeline: the Go twin of bench/bench_pipeline.c.
//
// The book's stream pipeline with a fan-out:
//
//	generator(0..n-1) -> multiply(x * 2) -> 4 x add(x + 1) (fan-out: four
//	copies of the stage reading one channel) -> fanIn -> take(n) -> consumer
//
// written as the book writes its stages (a goroutine each, unbuffered
// chan int, a select on done around every send). The consumer checks the
// count and the sum (n^2; exit 1 otherwise); then done is closed and the
// stages are joined. The result is the wall time from the generator's start
// to the last value received, divided by n.
//
// Usage: pipeline [items]   (default 1,000,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const nFinders = 4

var stages sync.WaitGroup

func generator(done <-chan struct{}, integers ...int) <-chan int {
	intStream := make(chan int)
	stages.Add(1)
	go func() {
		defer stages.Done()
		defer close(intStream)
		for _, i := range integers {
			select {
			case <-done:
				return
			case intStream <- i:
			}
		}
	}()
	return intStream
}

func multiply(done <-chan struct{}, intStream <-chan int, multiplier int) <-chan int {
	multipliedStream := make(chan int)
	stages.Add(1)
	go func() {
		defer stages.Done()
		defer close(multipliedStream)
		for i := range intStream {
			select {
			case <-done:
				return
			case multipliedStream <- i * multiplier:
			}
		}
	}()
	return multipliedStream
}

func add(done <-chan struct{}, intStream <-chan int, additive int) <-chan int {
	addedStream := make(chan int)
	stages.Add(1)
	go func() {
		defer stages.Done()
		defer close(addedStream)
		for i := range intStream {
			select {
			case <-done:
				return
			case addedStream <- i + additive:
			}
		}
	}()
	return addedStream
}

func fanIn(done <-chan struct{}, channels ...<-chan int) <-chan int {
	var wg sync.WaitGroup
	multiplexedStream := make(chan int)
	multiplex := func(c <-chan int) {
		defer wg.Done()
		for i := range c {
			select {
			case <-done:
				return
			case multiplexedStream <- i:
			}
		}
	}
	wg.Add(len(channels))
	for _, c := range channels {
		go multiplex(c)
	}
	stages.Add(1)
	go func() {
		defer stages.Done()
		wg.Wait()
		close(multiplexedStream)
	}()
	return multiplexedStream
}

func take(done <-chan struct{}, valueStream <-chan int, num int) <-chan int {
	takeStream := make(chan int)
	stages.Add(1)
	go func() {
		defer stages.Done()
		defer close(takeStream)
		for i := 0; i < num; i++ {
			v, ok := <-valueStream
			if !ok {
				return
			}
			select {
			case <-done:
				return
			case takeStream <- v:
			}
		}
	}()
	return takeStream
}

func main() {
	n := 1000000
	if len(os.Args) > 1 {
		v, err := strconv.Atoi(os.Args[1])
		if err != nil || v < 1 || v > 1000000000 {
			fmt.Fprintf(os.Stderr, "pipeline: bad item count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	vals := make([]int, n)
	for i := range vals {
		vals[i] = i
	}
	done := make(chan struct{})

	start := time.Now()
	doubled := multiply(done, generator(done, vals...), 2)
	outs := make([]<-chan int, nFinders)
	for i := range outs { // fan-out
		outs[i] = add(done, doubled, 1)
	}
	count, sum := 0, 0
	for v := range take(done, fanIn(done, outs...), n) {
		count++
		sum += v
	}
	el := time.Since(start)
	close(done)
	stages.Wait()
	if count != n || sum != n*n {
		fmt.Fprintf(os.Stderr, "pipeline: got %d values summing to %d, want %d and %d\n",
			count, sum, n, n*n)
		os.Exit(1)
	}
	fmt.Printf("pipeline: GOMAXPROCS=%d stages=generator,multiply,%dxadd,fanIn,take items=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), nFinders, n, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=pipeline unit=ns/item value=%.3f\n",
		float64(el.Nanoseconds())/float64(n))
}
