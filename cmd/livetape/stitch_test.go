package main

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/mp4test"
	"github.com/livetape/livetape/packager/mp4concat"
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
// they do together, with a progress bar on stderr; a mismatch of codec
// configurations is refused with a hint and leaves no OUT behind.
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
	if !strings.Contains(stdout.String(), "3 inputs") {
		t.Errorf("stdout %q, want a summary", stdout.String())
	}
	one := mediatest.Probe(t, rec).Duration()
	if d := mediatest.Probe(t, out).Duration(); math.Abs(d-3*one) > 0.1 {
		t.Errorf("stitched duration %.3f s, want 3 × %.3f", d, one)
	}

	other := filepath.Join(dir, "720.mp4")
	recordFixture(t, "video720.flv", time.Second, other)
	bad := filepath.Join(dir, "bad.mp4")
	err = runEnv(context.Background(), []string{"stitch", "--quiet", bad, rec, other}, noEnv, &stdout, &stderr)
	if !errors.Is(err, mp4concat.ErrConfigMismatch) || !strings.Contains(err.Error(), "transcode") {
		t.Errorf("stitch of different configurations: %v, want ErrConfigMismatch with a hint", err)
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
