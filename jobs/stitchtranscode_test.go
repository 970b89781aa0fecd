package jobs

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mp4test"
	"github.com/livetape/livetape/internal/transcodertest"
	"github.com/livetape/livetape/packager/mp4concat"
	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// The template of a stitch by transcode: the largest not above the smallest input, so
// that no input is left at its own size by the transcoder's refusal to upscale.
func TestStitchTemplate(t *testing.T) {
	mobile := spec.Template{Name: "mobile", ShortSide: 240, VideoKbps: 300, AudioKbps: 48}
	for _, c := range []struct {
		templates []spec.Template
		inputs    [][2]int
		name      string
		short     int
	}{
		{nil, [][2]int{{1280, 720}, {640, 360}}, "sd", 360},
		{nil, [][2]int{{1920, 1080}, {1280, 720}}, "uhd", 720},
		{nil, [][2]int{{1920, 1080}, {960, 540}}, "hd", 540},
		{nil, [][2]int{{720, 1280}, {1080, 1920}}, "uhd", 720}, // portrait: the short side is the width
		{nil, [][2]int{{1280, 720}, {1000, 600}}, "hd", 540},
		{nil, [][2]int{{1280, 720}, {426, 240}}, "240p", 240}, // under every template: the smallest, lowered
		{nil, [][2]int{{1280, 720}, {321, 181}}, "180p", 180}, // even
		{nil, [][2]int{{0, 0}, {1280, 720}}, "uhd", 720},      // an input without video does not count
		{nil, [][2]int{{0, 0}}, "sd", 360},                    // no video at all: the smallest
		{append(spec.DefaultTemplates(), mobile), [][2]int{{1280, 720}, {426, 240}}, "mobile", 240},
	} {
		var infos []mp4concat.Info
		for _, in := range c.inputs {
			infos = append(infos, mp4concat.Info{Width: in[0], Height: in[1]})
		}
		got := StitchTemplate(c.templates, infos)
		if got.Name != c.name || got.ShortSide != c.short || got.Validate() != nil {
			t.Errorf("inputs %v: template %+v, want %s at %d", c.inputs, got, c.name, c.short)
		}
	}
}

// The progress of the transcodes of a stitch goes from 0 to 100 without going back,
// each input weighing its duration: the first of 2 s and 4 s ends at a third.
func TestTranscodeForStitchProgress(t *testing.T) {
	tc := runner.Runner{Binary: transcodertest.Binary(t)}
	dir := t.TempDir()
	var paths []string
	for i, d := range []time.Duration{2 * time.Second, 4 * time.Second} {
		p := filepath.Join(dir, []string{"a.mp4", "b.mp4"}[i])
		if err := os.WriteFile(p, mp4test.Synthetic(t, 320, 180, d), 0o644); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	var seen []float64
	var removed []string
	outs, err := TranscodeForStitch(t.Context(), tc, paths, []time.Duration{2 * time.Second, 4 * time.Second}, dir,
		spec.DefaultTemplates()[0], func(p float64) { seen = append(seen, p) }, func(p string) { removed = append(removed, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || !slices.Equal(removed, paths) {
		t.Errorf("outputs %v, removed %v", outs, removed)
	}
	if !slices.IsSorted(seen) || len(seen) < 3 || seen[len(seen)-1] != 100 {
		t.Fatalf("progress %v: want increasing to 100", seen)
	}
	if !slices.ContainsFunc(seen, func(p float64) bool { return p > 33.3 && p < 33.4 }) {
		t.Errorf("progress %v: want 33.3 once the first input (2 s of 6) is done", seen)
	}
}
