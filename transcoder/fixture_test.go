package transcoder

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// makeSource encodes a w×h 30 fps H.264 + stereo AAC 48 kHz MP4 of secs seconds with
// the ffmpeg CLI: testsrc2 with temporal noise, so that x264 needs the template's
// bitrate (a clean test pattern compresses far below it).
func makeSource(t testing.TB, dir string, w, h int, secs float64, extra ...string) string {
	t.Helper()
	mediatest.NeedFFmpeg(t)
	path := filepath.Join(dir, fmt.Sprintf("src_%dx%d.mp4", w, h))
	args := []string{"-v", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=30,noise=alls=12:allf=t", w, h),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
		"-t", strconv.FormatFloat(secs, 'f', -1, 64),
		"-c:v", "libx264", "-preset", "ultrafast", "-b:v", "6M", "-pix_fmt", "yuv420p", "-g", "30",
		"-c:a", "aac", "-ac", "2", "-b:a", "128k"}
	args = append(args, extra...)
	runFFmpeg(t, append(args, path)...)
	return path
}

func runFFmpeg(t testing.TB, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, "ffmpeg", args...).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// probe is what ffprobe -of json says about a file: streams with their start times and
// bitrates, and the format.
type probe struct {
	Streams []struct {
		CodecType  string `json:"codec_type"`
		CodecName  string `json:"codec_name"`
		Profile    string `json:"profile"`
		Width      int    `json:"width"`
		Height     int    `json:"height"`
		StartTime  string `json:"start_time"`
		Duration   string `json:"duration"`
		BitRate    string `json:"bit_rate"`
		RFrameRate string `json:"r_frame_rate"`
		NbFrames   string `json:"nb_read_frames"`
	} `json:"streams"`
	Format struct {
		FormatName string `json:"format_name"`
		Duration   string `json:"duration"`
		StartTime  string `json:"start_time"`
		BitRate    string `json:"bit_rate"`
	} `json:"format"`
}

func runProbe(t testing.TB, path string, args ...string) *probe {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"-v", "error", "-of", "json", "-show_streams", "-show_format"}, args...)
	out, err := exec.CommandContext(ctx, "ffprobe", append(all, path)...).Output()
	if err != nil {
		stderr := ""
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr)
	}
	var p probe
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	return &p
}

func num(s string) float64 {
	f, _ := strconv.ParseFloat(s, 64)
	return f
}

// runProbeInto runs ffprobe -of json with args and decodes its output into v.
func runProbeInto(t testing.TB, v any, path string, args ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	all := append([]string{"-v", "error", "-of", "json"}, args...)
	out, err := exec.CommandContext(ctx, "ffprobe", append(all, path)...).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
}
