package main

import (
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/livetape/livetape/internal/transcodertest"
)

// TestMain removes the livetape-transcoder that transcodertest.Binary built for the
// tests that transcode.
func TestMain(m *testing.M) { os.Exit(transcodertest.Main(m)) }

// livetape never links FFmpeg: no package it imports is cgo, so it builds with
// CGO_ENABLED=0 and a serve or worker process maps no libav* (livetape-transcoder,
// run per job, is the only binary that does).
func TestLivetapeDoesNotLinkFFmpeg(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go command")
	}
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}} cgo={{len .CgoFiles}} {{if .Error}}error={{.Error}}{{end}}", ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		if strings.Contains(line, "astiav") || strings.HasPrefix(line, "github.com/livetape/livetape/transcoder ") ||
			strings.Contains(line, "error=") || !strings.Contains(line, " cgo=0") {
			t.Errorf("livetape depends on %s", strings.TrimSpace(line))
		}
	}
}
