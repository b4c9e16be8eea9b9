// select8: the Go twin of bench/bench_select8.c.
//
// One receiver runs a select statement with 8 receive cases, one per
// unbuffered chan int, each fed by its own producer goroutine sending n/8
// ints; per-channel counts are checked. Wall time from the first spawn to the
// join divided by the number of items.
//
// Usage: select8 [items]   (default 2,000,000)
package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"sync"
	"time"
)

const k = 8

func main() {
	n := int64(2000000)
	if len(os.Args) > 1 {
		v, err := strconv.ParseInt(os.Args[1], 10, 64)
		if err != nil || v < k {
			fmt.Fprintf(os.Stderr, "select8: bad item count %q\n", os.Args[1])
			os.Exit(2)
		}
		n = v
	}
	per := n / k
	total := per * k
	var ch [k]chan int
	for i := range ch {
		ch[i] = make(chan int)
	}
	var wg sync.WaitGroup
	start := time.Now()
	wg.Add(k + 1)
	go func() {
		var got [k]int64
		for r := int64(0); r < total; r++ {
			select {
			case <-ch[0]:
				got[0]++
			case <-ch[1]:
				got[1]++
			case <-ch[2]:
				got[2]++
			case <-ch[3]:
				got[3]++
			case <-ch[4]:
				got[4]++
			case <-ch[5]:
				got[5]++
			case <-ch[6]:
				got[6]++
			case <-ch[7]:
				got[7]++
			}
		}
		for i := range got {
			if got[i] != per {
				fmt.Fprintf(os.Stderr, "select8: channel %d delivered %d, want %d\n", i, got[i], per)
				os.Exit(1)
			}
		}
		wg.Done()
	}()
	for i := 0; i < k; i++ {
		go func(c chan int) {
			for j := int64(0); j < per; j++ {
				c <- int(j)
			}
			wg.Done()
		}(ch[i])
	}
	wg.Wait()
	el := time.Since(start)
	fmt.Printf("select8: GOMAXPROCS=%d channels=%d items=%d elapsed=%.3f ms\n",
		runtime.GOMAXPROCS(0), k, total, float64(el.Nanoseconds())/1e6)
	fmt.Printf("RESULT name=select8 unit=ns/item value=%.3f\n",
		float64(el.Nanoseconds())/float64(total))
}
