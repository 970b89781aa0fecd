package stream

import (
	"fmt"
	"runtime"
	"sync"
	"testing"
)

// BenchmarkHubFanout measures handing one packet to N subscribers, each drained by its
// own goroutine as HTTP-FLV writers do. allocs/op is per packet for all viewers.
func BenchmarkHubFanout(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("viewers=%d", n), func(b *testing.B) {
			s := newTestStream(b, 1024)
			s.WritePacket(seqHeader(b))
			pkts := gopPackets(b, 60, 60, 10_000)
			var wg sync.WaitGroup
			subs := make([]*Subscriber, n)
			for i := range subs {
				sub, _, _ := s.Subscribe(0)
				subs[i] = sub
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range sub.Packets() {
					}
				}()
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				s.WritePacket(pkts[i%len(pkts)])
				if i%256 == 255 {
					// Let the readers catch up, so every packet is delivered (no skips):
					// the figure is the cost of delivery, not of dropping.
					for _, sub := range subs {
						for sub.Len() > 512 {
							runtime.Gosched()
						}
					}
				}
			}
			b.StopTimer()
			s.Close()
			wg.Wait()
			for _, sub := range subs {
				if sub.Skipped.Load() != 0 || sub.Err() != nil {
					b.Fatalf("a reader skipped %d packets (%v)", sub.Skipped.Load(), sub.Err())
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/delivery")
			b.ReportMetric(float64(n), "viewers")
			b.ReportMetric(float64(b.N)*float64(n)/b.Elapsed().Seconds(), "deliveries/s")
		})
	}
}
