// Package mediatest drives real media tools in tests: ffmpeg pushes a generated stream,
// ffprobe reports what a file or URL holds. Tests skip when the tools are missing, or
// fail when LIVETAPE_TEST_REQUIRE_TOOLS=1 (scripts/test.sh installs them and sets it).
package mediatest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"
)

// SyncBuffer is a bytes.Buffer safe for concurrent writers (logs, stderr).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// Grow makes room for n more bytes, so that writes up to then allocate nothing (a
// test that measures the heap keeps the logs out of it).
func (s *SyncBuffer) Grow(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.b.Grow(n)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// EnvRequireTools names the switch that makes a missing test tool (ffmpeg, ffprobe,
// redis-server, versitygw) fail the test instead of skipping it. scripts/test.sh installs
// the tools and sets it, so that a run whose install failed cannot pass as green; a
// developer's plain `go test` still skips.
const EnvRequireTools = "LIVETAPE_TEST_REQUIRE_TOOLS"

// ToolsRequired reports whether LIVETAPE_TEST_REQUIRE_TOOLS is on (set, and not "0").
func ToolsRequired() bool {
	v := os.Getenv(EnvRequireTools)
	return v != "" && v != "0"
}

// MissingTool skips the test for a missing tool, saying why, or fails it when
// LIVETAPE_TEST_REQUIRE_TOOLS is on. Every test helper that needs an external program
// goes through it.
func MissingTool(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if ToolsRequired() {
		t.Fatalf("%s (%s=%s: a missing tool fails the test)", msg, EnvRequireTools, os.Getenv(EnvRequireTools))
	}
	t.Skip(msg)
}

// NeedFFmpeg skips the test when ffmpeg or ffprobe is not installed (fails it under
// LIVETAPE_TEST_REQUIRE_TOOLS).
func NeedFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			MissingTool(t, "%s not installed (scripts/test.sh installs it)", tool)
		}
	}
}

// Pusher is a running ffmpeg push.
type Pusher struct {
	Cmd    *exec.Cmd
	Stderr *SyncBuffer
	done   chan error
}

// Push starts ffmpeg publishing a generated 320x240 25 fps H.264 + AAC stream (GOP 1 s)
// to url in real time for secs seconds. extra are more output options (bitrate…). The
// process is killed when the test ends.
func Push(t testing.TB, url string, secs float64, extra ...string) *Pusher {
	t.Helper()
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", fmt.Sprint(secs),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "64k"}
	args = append(append(args, extra...), "-f", "flv", url)
	p := &Pusher{Cmd: exec.Command("ffmpeg", args...), Stderr: &SyncBuffer{}, done: make(chan error, 1)}
	p.Cmd.Stderr = p.Stderr
	if err := p.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.Cmd.Wait() }()
	t.Cleanup(func() {
		p.Cmd.Process.Kill()
		<-p.done
	})
	return p
}

// Wait returns ffmpeg's exit error, failing the test if it has not exited within d.
func (p *Pusher) Wait(t testing.TB, d time.Duration) error {
	t.Helper()
	select {
	case err := <-p.done:
		p.done <- err
		return err
	case <-time.After(d):
		t.Fatalf("ffmpeg still running after %v", d)
		return nil
	}
}

// WaitFor polls cond until it holds, failing the test after d.
func WaitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ProbeStream is one stream as ffprobe reports it.
type ProbeStream struct {
	CodecType     string `json:"codec_type"`
	CodecName     string `json:"codec_name"`
	Width         int    `json:"width"`
	Height        int    `json:"height"`
	Duration      string `json:"duration"`
	NbReadFrames  string `json:"nb_read_frames"`
	NbReadPackets string `json:"nb_read_packets"`
}

// ProbeResult is ffprobe's -show_streams -show_format output.
type ProbeResult struct {
	Streams []ProbeStream `json:"streams"`
	Format  struct {
		Duration   string `json:"duration"`
		FormatName string `json:"format_name"`
	} `json:"format"`
}

// Stream returns the first stream of kind ("video", "audio") and its frame (or packet)
// count; codec is "" when there is none.
func (r *ProbeResult) Stream(kind string) (codec string, w, h int, frames int) {
	for _, s := range r.Streams {
		if s.CodecType == kind {
			fmt.Sscan(s.NbReadFrames+s.NbReadPackets, &frames)
			return s.CodecName, s.Width, s.Height, frames
		}
	}
	return "", 0, 0, 0
}

// Duration is the container duration in seconds.
func (r *ProbeResult) Duration() float64 {
	var d float64
	fmt.Sscan(r.Format.Duration, &d)
	return d
}

// Probe runs ffprobe -of json -show_streams -show_format with args before the input.
func Probe(t testing.TB, input string, args ...string) *ProbeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	all := append([]string{"-v", "error", "-of", "json", "-show_streams", "-show_format"}, args...)
	out, err := exec.CommandContext(ctx, "ffprobe", append(all, input)...).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v\n%s", input, err, stderr)
	}
	var r ProbeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	return &r
}

// ProbeLive reads secs seconds of a live URL, counting packets.
func ProbeLive(t testing.TB, url string, secs int) *ProbeResult {
	t.Helper()
	return Probe(t, url, "-count_packets", "-read_intervals", fmt.Sprintf("%%+%d", secs))
}

// ProbeFrames decodes a whole file, counting frames.
func ProbeFrames(t testing.TB, path string) *ProbeResult {
	t.Helper()
	return Probe(t, path, "-count_frames")
}
