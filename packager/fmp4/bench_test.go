package fmp4

import (
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
)

// benchFrameBytes pads the fixture's video to 12.5 kB a frame: 2.5 Mbit/s at 25 fps,
// the bitrate a recording's sample density is sized for here.
const benchFrameBytes = 2_500_000 / 8 / 25

// BenchmarkFinalize finalizes a synthetic recording: av.flv repeated with increasing
// timestamps and its video padded to 2.5 Mbit/s with filler NAL units, until the
// fragmented file reaches LIVETAPE_BENCH_FINALIZE_MB megabytes (default 64; run it at
// 512 or more to see that memory does not follow the size). MB/s counts source bytes.
// MiB-heap is the peak growth of the heap in use (sampled every millisecond) and
// MiB-alloc/op what one Finalize allocates in all, garbage included. Both follow the
// number of samples (the sample tables, the moov being encoded, the decoded moofs),
// not the number of bytes: the media goes through one fixed buffer.
//
//	LIVETAPE_BENCH_FINALIZE_MB=512 go test -run '^$' -bench Finalize -benchtime 5x ./packager/fmp4
func BenchmarkFinalize(b *testing.B) {
	mb := 64
	if v := os.Getenv("LIVETAPE_BENCH_FINALIZE_MB"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			b.Fatalf("LIVETAPE_BENCH_FINALIZE_MB=%q: want a positive number of megabytes", v)
		}
		mb = n
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "src.mp4.part")
	fx := loadFixture(b, "av.flv")
	writeFMP4(b, fx, src, writeOptions{repeat: 1 << 30, padTo: benchFrameBytes, maxSize: int64(mb) << 20})
	info, err := os.Stat(src)
	if err != nil {
		b.Fatal(err)
	}

	run := func(b *testing.B, finalize func(dst string) (Stats, error)) {
		dst := filepath.Join(b.TempDir(), "dst.mp4")
		var st Stats
		b.SetBytes(info.Size())
		b.ReportAllocs()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		peak := mediatest.WatchHeap()
		for b.Loop() {
			if st, err = finalize(dst); err != nil {
				b.Fatal(err)
			}
		}
		peakInuse := peak()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(peakInuse-before.HeapInuse)/(1<<20), "MiB-heap")
		b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "MiB-alloc/op")
		b.ReportMetric(float64(st.VideoFrames+st.AudioFrames), "samples")
		b.ReportMetric(st.Duration.Seconds(), "media-s")
	}
	// Finalize into an open file, as a job with its own temp-file handling would.
	b.Run("Finalize", func(b *testing.B) {
		run(b, func(dst string) (Stats, error) {
			in, err := os.Open(src)
			if err != nil {
				return Stats{}, err
			}
			defer in.Close()
			out, err := os.Create(dst)
			if err != nil {
				return Stats{}, err
			}
			defer out.Close()
			return Finalize(in, out)
		})
	})
	// FinalizeFile adds the fsync of the whole output: disk bound.
	b.Run("FinalizeFile", func(b *testing.B) {
		run(b, func(dst string) (Stats, error) { return FinalizeFile(src, dst) })
	})
}

// BenchmarkWriter writes the av fixture through a Writer to io.Discard as the recorder
// does (a flush per keyframe and per second): the per-sample cost of placing, queuing
// and encoding samples. samples/s counts audio and video samples.
func BenchmarkWriter(b *testing.B) {
	fx := loadFixture(b, "av.flv")
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		w, err := NewWriter(io.Discard, fx.tracks)
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range fx.pkts {
			if err := w.WritePacket(p); err != nil {
				b.Fatal(err)
			}
			if p.Kind == media.KindVideo && p.Keyframe || w.Pending() >= time.Second {
				if err := w.Flush(); err != nil {
					b.Fatal(err)
				}
			}
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*(fx.videoFrames+fx.audioFrames))/b.Elapsed().Seconds(), "samples/s")
}
