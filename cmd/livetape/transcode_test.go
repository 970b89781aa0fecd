package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/transcodertest"
)

// `livetape transcode` on a local file: an MP4 of the template, an HLS ABR set, a
// poster, and a usage error for a wrong template.
func TestTranscodeCommand(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	env := mapEnv(map[string]string{"LIVETAPE_TRANSCODER": transcodertest.Binary(t)})
	dir := t.TempDir()
	src := filepath.Join(dir, "in.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", src).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	transcode := func(args ...string) (string, error) {
		var stdout, stderr bytes.Buffer
		err := runEnv(context.Background(), append([]string{"transcode"}, args...), env, &stdout, &stderr)
		return stdout.String(), err
	}

	out, err := transcode(src, filepath.Join(dir, "sd.mp4"), "--template", "sd", "--poster", filepath.Join(dir, "poster.jpg"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "sd: mp4 640x360") || !strings.Contains(out, "poster: 1280x720") {
		t.Errorf("output:\n%s", out)
	}
	if _, _, h, _ := mediatest.Probe(t, filepath.Join(dir, "sd.mp4")).Stream("video"); h != 360 {
		t.Errorf("sd.mp4 is %dp, want 360p", h)
	}
	if codec, w, _, _ := mediatest.Probe(t, filepath.Join(dir, "poster.jpg")).Stream("video"); codec != "mjpeg" || w != 1280 {
		t.Errorf("poster: %s %d wide", codec, w)
	}

	// Flags after the arguments too.
	if _, err := transcode(src, filepath.Join(dir, "abr"), "--hls", "--templates", "sd,hd", "--quiet"); err != nil {
		t.Fatal(err)
	}
	p := mediatest.Probe(t, filepath.Join(dir, "abr", "master.m3u8"))
	if len(p.Streams) != 4 {
		t.Errorf("master playlist: %d streams, want 2 variants × (video + audio)", len(p.Streams))
	}

	if _, err := transcode(src, filepath.Join(dir, "x.mp4"), "--template", "4k"); err == nil || !strings.Contains(err.Error(), "unknown template") {
		t.Errorf("unknown template: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "x.mp4")); !os.IsNotExist(err) {
		t.Errorf("x.mp4 written for a refused command")
	}
}
