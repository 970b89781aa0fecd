package mp4concat

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// benchFrameBytes pads the fixture's video to 12.5 kB a frame: 2.5 Mbit/s at 25 fps.
const benchFrameBytes = 2_500_000 / 8 / 25

type benchSet struct {
	dir     string
	paths   []string
	minutes int
}

var (
	benchOnce sync.Once
	bench     benchSet
)

// recordingsForBench returns six recordings of LIVETAPE_BENCH_STITCH_MIN minutes each
// (default 1; 10 makes the hour), made once per process.
func recordingsForBench(b *testing.B) benchSet {
	benchOnce.Do(func() {
		minutes := 1
		if v := os.Getenv("LIVETAPE_BENCH_STITCH_MIN"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				b.Fatalf("LIVETAPE_BENCH_STITCH_MIN=%q: want a positive number of minutes", v)
			}
			minutes = n
		}
		dir, err := os.MkdirTemp("", "mp4concat-bench-")
		if err != nil {
			b.Fatal(err)
		}
		fx := loadFixture(b, "av.flv")
		repeat := (minutes*60*1000 + int(fx.period) - 1) / int(fx.period)
		bench = benchSet{dir: dir, minutes: minutes}
		for i := range 6 {
			path := filepath.Join(dir, "rec"+strconv.Itoa(i)+".mp4")
			record(b, fx, path, time.Time{}, recOptions{repeat: repeat, padTo: benchFrameBytes})
			bench.paths = append(bench.paths, path)
		}
	})
	if bench.paths == nil {
		b.Fatal("no recordings")
	}
	return bench
}

// TestMain removes the benchmark's recordings.
func TestMain(m *testing.M) {
	code := m.Run()
	if bench.dir != "" {
		os.RemoveAll(bench.dir)
	}
	os.Exit(code)
}

// benchInputs opens the first n recordings, contiguous on the wall clock.
func benchInputs(b *testing.B, set benchSet, n int) []Input {
	var ins []Input
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, p := range set.paths[:n] {
		in := openInput(b, p, start)
		ins = append(ins, in)
		src, err := parse(in)
		if err != nil {
			b.Fatal(err)
		}
		var d int64
		for _, t := range src.tracks {
			if t != nil {
				d = max(d, t.duration())
			}
		}
		start = start.Add(time.Duration(d))
	}
	return ins
}

// BenchmarkConcat stitches one recording, then all six, to a file: with
// LIVETAPE_BENCH_STITCH_MIN=10 that is 10 minutes and 1 hour of 2.5 Mbit/s. MB/s
// counts output bytes; MiB-heap is the peak growth of the heap in use during the
// stitch (sampled every millisecond), which follows the number of samples, not bytes.
//
//	LIVETAPE_BENCH_STITCH_MIN=10 go test -run '^$' -bench Concat -benchtime 3x ./packager/mp4concat
func BenchmarkConcat(b *testing.B) {
	set := recordingsForBench(b)
	for _, n := range []int{1, 6} {
		b.Run(strconv.Itoa(n*set.minutes)+"min", func(b *testing.B) {
			ins := benchInputs(b, set, n)
			dst := filepath.Join(b.TempDir(), "out.mp4")
			var size int64
			runtime.GC()
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			peak := mediatest.WatchHeap()
			for b.Loop() {
				m, err := Concat(ins, Options{})
				if err != nil {
					b.Fatal(err)
				}
				f, err := os.Create(dst)
				if err != nil {
					b.Fatal(err)
				}
				if size, err = m.WriteTo(f); err != nil {
					b.Fatal(err)
				}
				if err := f.Close(); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(size)
			b.ReportMetric(float64(peak()-before.HeapInuse)/(1<<20), "MiB-heap")
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/op")
		})
	}
}

// BenchmarkClip serves a clip of a sixth of the six recordings (10 minutes out of an
// hour with LIVETAPE_BENCH_STITCH_MIN=10), from the middle, through http.ServeContent
// on loopback as the /vod/clip handler does: ms-first-byte is from the request to the
// first byte of the body (the clip is planned inside the handler), MB/s the whole
// response.
func BenchmarkClip(b *testing.B) {
	set := recordingsForBench(b)
	ins := benchInputs(b, set, 6)
	total := ins[5].Start.Sub(ins[0].Start) * 6 / 5
	start := ins[0].Start.Add(total * 5 / 12)
	end := start.Add(total / 6)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m, err := Clip(ins, start, end, Options{Gaps: KeepGaps})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		w.Header().Set("Content-Type", "video/mp4")
		http.ServeContent(w, r, "clip.mp4", time.Time{}, m.NewReader())
	}))
	defer srv.Close()
	var firstByte time.Duration
	var size int64
	buf := make([]byte, 1<<20)
	for b.Loop() {
		t0 := time.Now()
		resp, err := http.Get(srv.URL)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.ReadFull(resp.Body, buf[:1])
		if err != nil || n != 1 {
			b.Fatal(err)
		}
		firstByte += time.Since(t0)
		rest, err := io.CopyBuffer(io.Discard, resp.Body, buf)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d: %v", resp.StatusCode, err)
		}
		size = rest + 1
	}
	b.SetBytes(size)
	b.ReportMetric(float64(firstByte.Milliseconds())/float64(b.N), "ms-first-byte")
	b.ReportMetric(float64(size)/(1<<20), "MiB-clip")
}
