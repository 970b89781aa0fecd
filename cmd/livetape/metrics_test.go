package main

import (
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// BenchmarkMetricsScrape500 is one /metrics scrape (collect and encode) with 500 live
// streams published in-process, each with a second of media and 3 viewers.
func BenchmarkMetricsScrape500(b *testing.B) {
	hub := stream.NewHub(512, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for i := range 500 {
		s, err := hub.Publish(&stream.PushParams{App: "live", StreamID: fmt.Sprintf("s%03d", i)})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range []stream.Protocol{stream.ProtoHTTPFLV, stream.ProtoRTMP, stream.ProtoRTMP} {
			sub, _, _ := s.SubscribeAs(p, 0)
			go func() {
				for range sub.Packets() {
				}
			}()
		}
		for f := range 50 {
			body := make([]byte, 2000)
			body[0] = 0x27
			if f == 0 {
				body[0] = 0x17
			}
			body[1] = 1
			p, _ := media.NewPacket(media.KindVideo, uint32(f*40), body)
			s.WritePacket(p)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(&liveCollector{hub: hub})
	h := promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	req := httptest.NewRequest("GET", "/metrics", nil)
	b.ReportAllocs()
	var size int
	for b.Loop() {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code)
		}
		size = w.Body.Len()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/1e6/float64(b.N), "ms/scrape")
	b.ReportMetric(float64(size), "bytes/scrape")
	for _, s := range hub.Streams() {
		s.Close()
	}
}
