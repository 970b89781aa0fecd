package live

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/loadgen"
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
					for range sub.C() {
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
						for len(sub.C()) > 512 {
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

// BenchmarkLoopbackHTTPFLV publishes a synthetic 2.5 Mbit/s 30 fps stream over RTMP and
// plays it with real HTTP-FLV viewers on loopback; it reports first-keyframe and
// publish-to-viewer latency percentiles. Each iteration is one viewer joining and
// watching for 100 ms.
func BenchmarkLoopbackHTTPFLV(b *testing.B) {
	s := startServer(b, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go loadgen.Publish(ctx, s.rtmpAddr, "live", "bench", loadgen.Stream{})
	waitFor(b, "the stream", 10*time.Second, func() bool {
		st := s.hub.Lookup("live", "bench")
		return st != nil && st.packets.Load() > 100
	})
	var stats loadgen.Stats
	b.ResetTimer()
	for b.Loop() {
		vctx, vcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		loadgen.View(vctx, s.httpURL+"/live/bench.flv", &stats, 1)
		vcancel()
	}
	b.StopTimer()
	if len(stats.Errors) > 0 {
		b.Fatalf("viewer errors: %v", stats.Errors[0])
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(loadgen.Percentile(stats.FirstKeyframe, 50)), "first-key-p50-ms")
	b.ReportMetric(ms(loadgen.Percentile(stats.FirstKeyframe, 95)), "first-key-p95-ms")
	b.ReportMetric(ms(loadgen.Percentile(stats.Latency, 50)), "latency-p50-ms")
	b.ReportMetric(ms(loadgen.Percentile(stats.Latency, 95)), "latency-p95-ms")
}
