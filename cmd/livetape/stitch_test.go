package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/mp4test"
	"github.com/livetape/livetape/internal/transcodertest"
	"github.com/livetape/livetape/packager/mp4concat"
	"github.com/livetape/livetape/transcoder/runner"
)

// recordFixture writes to path a recording of a testdata FLV as the recorder makes it
// (internal/mp4test), lasting period.
func recordFixture(t *testing.T, name string, period time.Duration, path string) {
	t.Helper()
	mp4 := mp4test.Record(t, filepath.Join("..", "..", "testdata", name), 1, period)
	if err := os.WriteFile(path, mp4, 0o644); err != nil {
		t.Fatal(err)
	}
}

// `livetape stitch OUT IN...` joins three recordings into one MP4 lasting as long as
// they do together, with a progress bar on stderr; a mismatch of codec configurations
// without livetape-transcoder is refused, saying what differs and how to name the
// transcoder, and leaves no OUT behind.
func TestStitchCommand(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	rec := filepath.Join(dir, "a.mp4")
	recordFixture(t, "av.flv", 4*time.Second, rec)
	data, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	ins := []string{rec, filepath.Join(dir, "b.mp4"), filepath.Join(dir, "c.mp4")}
	for _, p := range ins[1:] {
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noEnv := func(string) (string, bool) { return "", false }
	out := filepath.Join(dir, "out.mp4")
	var stdout, stderr bytes.Buffer
	if err := runEnv(context.Background(), append([]string{"stitch", out}, ins...), noEnv, &stdout, &stderr); err != nil {
		t.Fatalf("stitch: %v\n%s", err, stderr.String())
	}
	if !strings.Contains(stderr.String(), "stitching") || !strings.Contains(stderr.String(), "100%") {
		t.Errorf("no progress bar on stderr: %q", stderr.String())
	}
	if !strings.Contains(stdout.String(), "3 inputs remuxed") {
		t.Errorf("stdout %q, want a summary", stdout.String())
	}
	one := mediatest.Probe(t, rec).Duration()
	if d := mediatest.Probe(t, out).Duration(); math.Abs(d-3*one) > 0.1 {
		t.Errorf("stitched duration %.3f s, want 3 × %.3f", d, one)
	}

	other := filepath.Join(dir, "720.mp4")
	recordFixture(t, "video720.flv", time.Second, other)
	bad := filepath.Join(dir, "bad.mp4")
	missing := func(k string) (string, bool) {
		if k == "LIVETAPE_TRANSCODER" {
			return filepath.Join(dir, "no-such-transcoder"), true
		}
		return "", false
	}
	err = runEnv(context.Background(), []string{"stitch", "--quiet", bad, rec, other}, missing, &stdout, &stderr)
	if !errors.Is(err, mp4concat.ErrConfigMismatch) || !errors.Is(err, runner.ErrNotFound) ||
		!strings.Contains(err.Error(), "320x240") || !strings.Contains(err.Error(), "LIVETAPE_TRANSCODER") {
		t.Errorf("stitch of different configurations without a transcoder: %v, want ErrConfigMismatch saying what differs and the transcoder not found", err)
	}
	if _, err := os.Stat(bad); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused stitch left %s: %v", bad, err)
	}
	var usage usageError
	if err := runEnv(context.Background(), []string{"stitch", out}, noEnv, &stdout, &stderr); !errors.As(err, &usage) {
		t.Errorf("stitch without inputs: %v, want a usage error", err)
	}
	if err := runEnv(context.Background(), []string{"stitch", rec, rec}, noEnv, &stdout, &stderr); !errors.As(err, &usage) {
		t.Errorf("stitch onto its own input: %v, want a usage error", err)
	}
}

// `livetape stitch` of recordings of different resolutions (1280x720, 640x360) transcodes
// them to the template of the smallest (sd) and joins them: one 640x360 video stream,
// as long as the inputs together, decoding cleanly; --template chooses another.
func TestStitchCommandTranscodes(t *testing.T) {
	bin := transcodertest.Binary(t)
	env := func(k string) (string, bool) {
		if k == "LIVETAPE_TRANSCODER" {
			return bin, true
		}
		return "", false
	}
	dir := t.TempDir()
	var ins []string
	var want float64
	for i, size := range [][2]int{{1280, 720}, {640, 360}} {
		p := filepath.Join(dir, fmt.Sprintf("in%d.mp4", i))
		if err := os.WriteFile(p, mp4test.Synthetic(t, size[0], size[1], 2*time.Second), 0o644); err != nil {
			t.Fatal(err)
		}
		ins = append(ins, p)
		want += mediatest.Probe(t, p).Duration()
	}
	for _, c := range []struct {
		flags      []string
		tpl        string
		w, h       int
		wantStderr string
	}{
		{nil, "sd", 640, 360, "transcoding"},
		{[]string{"--quiet", "--template", "hd"}, "hd", 0, 0, ""}, // 540p: the 360p input is not upscaled
	} {
		out := filepath.Join(dir, c.tpl+".mp4")
		var stdout, stderr bytes.Buffer
		args := append(append([]string{"stitch"}, c.flags...), append([]string{out}, ins...)...)
		err := runEnv(context.Background(), args, env, &stdout, &stderr)
		if c.w == 0 {
			// hd leaves 640x360 as it is and makes 960x540 of 1280x720: still two sizes.
			if !errors.Is(err, mp4concat.ErrConfigMismatch) || !strings.Contains(err.Error(), "template hd") {
				t.Errorf("stitch --template hd: %v, want the sizes still differing after the transcode", err)
			}
			if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a failed stitch left %s: %v", out, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("stitch: %v\n%s", err, stderr.String())
		}
		if !strings.Contains(stdout.String(), "2 inputs transcoded to sd (640x360)") || !strings.Contains(stderr.String(), c.wantStderr) {
			t.Errorf("stdout %q stderr %q, want the transcode said and shown", stdout.String(), stderr.String())
		}
		probe := mediatest.Probe(t, out)
		videos := 0
		for _, st := range probe.Streams {
			if st.CodecType == "video" {
				videos++
			}
		}
		if codec, w, h, _ := probe.Stream("video"); videos != 1 || codec != "h264" || w != c.w || h != c.h {
			t.Errorf("%d video streams, the first %s %dx%d; want one h264 %dx%d", videos, codec, w, h, c.w, c.h)
		}
		if d := probe.Duration(); math.Abs(d-want) > 0.1 {
			t.Errorf("duration %.3f s, want the inputs' %.3f ± 0.1", d, want)
		}
		mediatest.DecodeClean(t, out)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".livetape-stitch-*")); len(left) > 0 {
		t.Errorf("transcodes left behind: %v", left)
	}
}
