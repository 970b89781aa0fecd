package transcoder

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
)

// vmRSS is the process's resident set in KiB, from /proc/self/status.
func vmRSS(t testing.TB) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			if err != nil {
				t.Fatalf("VmRSS line %q: %v", line, err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// Every libav allocation is freed: after 100 transcodes (and posters) in one process
// the bytes held by the C heap and the Go heap are where they were after ten. A leaked
// frame, codec context, filter graph or format context per job holds from hundreds of
// KiB to megabytes, so 90 more jobs would add tens of MiB.
//
// The resident set is logged, not compared: glibc gives the threads x264 and the
// decoders start in every job arenas of their own and keeps them, so RSS moves by tens
// of MiB between runs with no leak (measured 98 -> 134 MiB over 100 jobs, no trend),
// which made an RSS threshold flaky.
func TestHeapFlatOver100Transcodes(t *testing.T) {
	if testing.Short() {
		t.Skip("100 transcodes")
	}
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	src := makeSource(t, dir, 320, 240, 1)
	sd := DefaultTemplates()[0]
	outputs := []Output{
		{Template: sd, Format: FormatMP4, Path: filepath.Join(dir, "sd.mp4")},
		{Template: sd, Format: FormatHLS, Path: filepath.Join(dir, "sd")},
	}
	transcode := func() {
		if _, err := Transcode(context.Background(), src, outputs, nil); err != nil {
			t.Fatal(err)
		}
		thumb, err := os.Create(filepath.Join(dir, "poster.jpg"))
		if err != nil {
			t.Fatal(err)
		}
		defer thumb.Close()
		if _, err := WriteThumbnail(context.Background(), src, thumb, ThumbnailOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	type usage struct{ c, goHeap int64 }
	measure := func() usage {
		goHeap := mediatest.HeapAfterGC()
		return usage{c: mallocInUse(), goHeap: goHeap}
	}
	transcode()
	after1 := measure()
	for range 9 {
		transcode()
	}
	after10 := measure()
	for range 90 {
		transcode()
	}
	after100 := measure()
	t.Logf("C heap in use after 1 job: %d KiB, after 10: %d KiB, after 100: %d KiB; Go heap %d, %d, %d KiB; VmRSS now %d KiB",
		after1.c>>10, after10.c>>10, after100.c>>10, after1.goHeap>>10, after10.goHeap>>10, after100.goHeap>>10, vmRSS(t))
	// Both heaps keep some caches (glibc's fastbins, x264's and swscale's lazily made
	// tables): 4 MiB over 90 jobs is below one leaked codec context per ten jobs.
	const slack = 4 << 20
	if grew := after100.c - after10.c; grew > slack {
		t.Errorf("C heap grew %d KiB from job 10 to job 100: a libav object is not freed", grew>>10)
	}
	if grew := after100.goHeap - after10.goHeap; grew > slack {
		t.Errorf("Go heap grew %d KiB from job 10 to job 100", grew>>10)
	}
}
