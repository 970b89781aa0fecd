package jobs

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// BenchmarkNotifyLatency measures Notify → callback received by an httptest
// receiver, one event at a time on idle workers (the common case: a fragment
// closes now and then), with the production defaults except the poll
// interval, which the sub-benchmark names (on redis-server: the embedded queue
// polls every 5 s at most often, and wakes its workers when it queues a task).
// p50/p95 are in milliseconds.
//
//	go test ./jobs -run '^$' -bench NotifyLatency -benchtime 200x
func BenchmarkNotifyLatency(b *testing.B) {
	for _, be := range backends {
		for _, poll := range []time.Duration{DefaultPollInterval, time.Second} {
			if be.name == "embedded" && poll != DefaultPollInterval {
				continue
			}
			b.Run(fmt.Sprintf("%s/poll=%v", be.name, poll), func(b *testing.B) {
				addr, _ := be.start(b)
				r := newReceiver(b, nil)
				cfg := DefaultConfig()
				cfg.RedisAddr = addr
				cfg.NodeID = "bench"
				cfg.CallbackURLs = []string{r.srv.URL}
				cfg.CallbackKey = testKey
				cfg.PollInterval = poll
				q := openQueue(b, cfg, b.TempDir())
				ctx := context.Background()

				lat := make([]time.Duration, 0, b.N)
				b.ResetTimer()
				for i := range b.N {
					ev := recordingEvent(fmt.Sprintf("bench-%d", i))
					start := time.Now()
					if err := q.Notify(ctx, ev); err != nil {
						b.Fatal(err)
					}
					got := r.await(b, ev.EventID, 30*time.Second)
					lat = append(lat, got.at.Sub(start))
				}
				b.StopTimer()
				slices.Sort(lat)
				pct := func(p float64) float64 {
					return float64(lat[int(p*float64(len(lat)-1))]) / float64(time.Millisecond)
				}
				b.ReportMetric(pct(0.50), "p50-ms")
				b.ReportMetric(pct(0.95), "p95-ms")
				b.ReportMetric(float64(lat[len(lat)-1])/float64(time.Millisecond), "max-ms")
			})
		}
	}
}
