package mediatest

import (
	"runtime"
	"time"
)

// WatchHeap samples HeapInuse every millisecond until the returned function is called,
// which returns the highest value seen: the peak memory of what ran in between, for
// benchmarks to report.
func WatchHeap() func() uint64 {
	done := make(chan struct{})
	result := make(chan uint64)
	go func() {
		var m runtime.MemStats
		var peak uint64
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			runtime.ReadMemStats(&m)
			peak = max(peak, m.HeapInuse)
			select {
			case <-done:
				result <- peak
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(done)
		return <-result
	}
}

// HeapAfterGC collects garbage and returns the bytes of live heap objects: compared
// before and after some work, what that work keeps.
func HeapAfterGC() int64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
