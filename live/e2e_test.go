package live

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests drive livetape with the real clients: ffmpeg pushes, ffprobe and plain
// HTTP read what viewers get.

type testServer struct {
	*Server
	rtmpAddr string
	httpURL  string
	logs     *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func needFFmpeg(t testing.TB) {
	t.Helper()
	for _, tool := range []string{"ffmpeg", "ffprobe"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (scripts/test.sh installs it)", tool)
		}
	}
}

func startServer(t testing.TB, mutate func(*Config), observers ...Observer) *testServer {
	t.Helper()
	cfg := DefaultConfig()
	cfg.RTMPAddr = "127.0.0.1:0"
	if mutate != nil {
		mutate(&cfg)
	}
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	srv := NewServer(cfg, log, observers...)
	ln, err := net.Listen("tcp", cfg.RTMPAddr)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeRTMP(ctx, ln) }()
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() {
		cancel()
		<-done
		hs.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	return &testServer{Server: srv, rtmpAddr: ln.Addr().String(), httpURL: hs.URL, logs: logs}
}

type pusher struct {
	cmd    *exec.Cmd
	stderr *syncBuffer
	done   chan error
}

// push starts ffmpeg publishing a generated 320x240 25 fps H.264 + AAC stream (GOP 1 s)
// in real time for secs seconds.
func push(t testing.TB, url string, secs float64) *pusher {
	t.Helper()
	return pushArgs(t, url, secs)
}

// pushArgs is push with extra ffmpeg output options (bitrate…).
func pushArgs(t testing.TB, url string, secs float64, extra ...string) *pusher {
	t.Helper()
	args := []string{"-hide_banner", "-loglevel", "error", "-re",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", fmt.Sprint(secs),
		"-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac", "-b:a", "64k"}
	args = append(append(args, extra...), "-f", "flv", url)
	p := &pusher{cmd: exec.Command("ffmpeg", args...), stderr: &syncBuffer{}, done: make(chan error, 1)}
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

// wait returns ffmpeg's exit error, failing the test if it has not exited by the deadline.
func (p *pusher) wait(t testing.TB, d time.Duration) error {
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

func waitFor(t testing.TB, what string, d time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLive waits until app/id is live and has a keyframe cached.
func (s *testServer) waitLive(t testing.TB, app, id string) *Stream {
	t.Helper()
	var st *Stream
	waitFor(t, app+"/"+id+" to be live", 15*time.Second, func() bool {
		st = s.hub.Lookup(app, id)
		if st == nil {
			return false
		}
		st.mu.Lock()
		defer st.mu.Unlock()
		return len(st.gop) > 0 && st.audioHdr != nil
	})
	return st
}

type probeResult struct {
	Streams []struct {
		CodecType     string `json:"codec_type"`
		CodecName     string `json:"codec_name"`
		Width         int    `json:"width"`
		Height        int    `json:"height"`
		NbReadFrames  string `json:"nb_read_frames"`
		NbReadPackets string `json:"nb_read_packets"`
	} `json:"streams"`
	Format struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func (r *probeResult) stream(kind string) (codec string, w, h int, frames int) {
	for _, s := range r.Streams {
		if s.CodecType == kind {
			fmt.Sscan(s.NbReadFrames+s.NbReadPackets, &frames)
			return s.CodecName, s.Width, s.Height, frames
		}
	}
	return "", 0, 0, 0
}

// probe runs ffprobe -of json on url, reading secs seconds of it and counting packets.
func probe(t testing.TB, url string, secs int) *probeResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-of", "json", "-show_streams", "-show_format",
		"-count_packets", "-read_intervals", fmt.Sprintf("%%+%d", secs), url).Output()
	if err != nil {
		var stderr string
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = string(ee.Stderr)
		}
		t.Fatalf("ffprobe %s: %v\n%s", url, err, stderr)
	}
	var r probeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	return &r
}

func httpGet(t testing.TB, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func httpGetBytes(t testing.TB, url string) (int, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}
