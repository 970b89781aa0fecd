package live

import (
	"context"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/loadgen"
)

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
		return st != nil && st.Packets() > 100
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
