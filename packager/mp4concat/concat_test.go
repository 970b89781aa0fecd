package mp4concat

import (
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// threeRecordings records av.flv three times, as three pushes whose wall-clock starts
// are gap apart after each recording's end.
func threeRecordings(t *testing.T, gap time.Duration) (ins []Input, paths []string) {
	t.Helper()
	fx := loadFixture(t, "av.flv")
	dir := t.TempDir()
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for i := range 3 {
		path := filepath.Join(dir, "rec"+string(rune('1'+i))+".mp4")
		in := record(t, fx, path, start, recOptions{})
		dur := mediatest.Probe(t, path).Duration()
		start = start.Add(time.Duration(dur*float64(time.Second)) + gap)
		ins, paths = append(ins, in), append(paths, path)
	}
	return ins, paths
}

// hashes is the data hash of every packet.
func hashes(pkts []packet) []string {
	var h []string
	for _, p := range pkts {
		h = append(h, p.Hash)
	}
	return h
}

// TestConcatRemux stitches three recordings with their gaps closed: the duration is
// the sum of theirs, every packet (video and audio) is the inputs' byte for byte and
// in order, and ffmpeg decodes the result without a message.
func TestConcatRemux(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	ins, paths := threeRecordings(t, 7*time.Second)
	m, err := Concat(ins, Options{Gaps: CloseGaps})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.mp4")
	writeMovie(t, m, out)

	var wantDur float64
	var wantVideo, wantAudio []string
	for _, p := range paths {
		wantDur += mediatest.Probe(t, p).Duration()
		wantVideo = append(wantVideo, hashes(probePackets(t, p, "video"))...)
		wantAudio = append(wantAudio, hashes(probePackets(t, p, "audio"))...)
	}
	if d := mediatest.Probe(t, out).Duration(); math.Abs(d-wantDur) > 0.1 {
		t.Errorf("duration %.3f s, want the sum %.3f", d, wantDur)
	}
	if got := m.Duration.Seconds(); math.Abs(got-wantDur) > 0.1 {
		t.Errorf("Movie.Duration %.3f s, want %.3f", got, wantDur)
	}
	video := probePackets(t, out, "video")
	if !slices.Equal(hashes(video), wantVideo) {
		t.Errorf("video packets differ from the inputs' (%d, want %d)", len(video), len(wantVideo))
	}
	if got := hashes(probePackets(t, out, "audio")); !slices.Equal(got, wantAudio) {
		t.Errorf("audio packets differ from the inputs' (%d, want %d)", len(got), len(wantAudio))
	}
	// Each recording's first video packet is where the recordings before it end
	// (the longest track's end: here the audio), and decode times only increase.
	var at float64
	var n int
	for _, p := range paths {
		if got := video[n].dts() - video[0].dts(); math.Abs(got-at) > 0.05 {
			t.Errorf("recording %s starts at dts %.3f s, want %.3f", filepath.Base(p), got, at)
		}
		at += mediatest.Probe(t, p).Duration()
		n += len(probePackets(t, p, "video"))
	}
	for i := 1; i < len(video); i++ {
		if video[i].dts() <= video[i-1].dts() {
			t.Errorf("video packet %d: dts %.3f after %.3f", i, video[i].dts(), video[i-1].dts())
		}
	}
	mediatest.DecodeClean(t, out)
}

// TestConcatKeepGaps keeps the wall-clock gaps: the second recording starts 7 s after
// the first one ended, in the output as on the wall clock.
func TestConcatKeepGaps(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	const gap = 7 * time.Second
	ins, paths := threeRecordings(t, gap)
	m, err := Concat(ins, Options{Gaps: KeepGaps})
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out.mp4")
	writeMovie(t, m, out)

	last := mediatest.Probe(t, paths[2]).Duration()
	wantDur := ins[2].Start.Sub(ins[0].Start).Seconds() + last
	if d := mediatest.Probe(t, out).Duration(); math.Abs(d-wantDur) > 0.1 {
		t.Errorf("duration %.3f s, want %.3f (gaps kept)", d, wantDur)
	}
	// The second recording's first video packet is where it started on the wall clock.
	video := probePackets(t, out, "video")
	n1 := len(probePackets(t, paths[0], "video"))
	first2 := probePackets(t, paths[1], "video")[0]
	want := ins[1].Start.Sub(ins[0].Start).Seconds() + first2.dts()
	if got := video[n1].dts(); math.Abs(got-want) > 0.05 {
		t.Errorf("second recording starts at dts %.3f s, want %.3f", got, want)
	}
	if step := video[n1].dts() - video[n1-1].dts(); step < gap.Seconds() {
		t.Errorf("the gap is %.3f s, want at least %v", step, gap)
	}
	var wantVideo []string
	for _, p := range paths {
		wantVideo = append(wantVideo, hashes(probePackets(t, p, "video"))...)
	}
	if !slices.Equal(hashes(video), wantVideo) {
		t.Errorf("video packets differ from the inputs'")
	}
	mediatest.DecodeClean(t, out)
}

// TestConcatConfigMismatch refuses inputs whose SPS differ, before writing anything.
func TestConcatConfigMismatch(t *testing.T) {
	dir := t.TempDir()
	start := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	a := record(t, loadFixture(t, "av.flv"), filepath.Join(dir, "a.mp4"), start, recOptions{})
	b := record(t, loadFixture(t, "video720.flv"), filepath.Join(dir, "b.mp4"), start.Add(time.Minute), recOptions{})
	_, err := Concat([]Input{a, b}, Options{})
	if !errors.Is(err, ErrConfigMismatch) {
		t.Fatalf("Concat of 320x240 and 1280x720: %v, want ErrConfigMismatch", err)
	}
	// The error says what differs, in words (not the parameter sets' bytes).
	var m *MismatchError
	if !errors.As(err, &m) || m.Track != "video" || !strings.Contains(m.Reason(), "320x240") ||
		!strings.Contains(m.Reason(), "then") || !strings.Contains(m.Reason(), "1280x720") || strings.Contains(err.Error(), "sps") {
		t.Errorf("mismatch error %q, want the two sizes named", err)
	}
	for _, in := range []struct {
		in   Input
		w, h int
	}{{a, 320, 240}, {b, 1280, 720}} {
		info, err := Probe(in.in)
		if err != nil || info.Width != in.w || info.Height != in.h || info.Duration <= 0 {
			t.Errorf("Probe(%s) = %+v, %v; want %dx%d", in.in.Name, info, err, in.w, in.h)
		}
	}
	if _, err := Clip([]Input{a, b}, start, start.Add(time.Hour), Options{}); !errors.Is(err, ErrConfigMismatch) {
		t.Fatalf("Clip of 320x240 and 1280x720: %v, want ErrConfigMismatch", err)
	}
}
