package main

import (
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/jobs"
)

// buildLivetape compiles the binary once per test run.
func buildLivetape(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "livetape")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

func freePort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startLivetape runs `livetape serve` on dataDir with fresh ports.
func startLivetape(t *testing.T, bin, dataDir string, logs *mediatest.SyncBuffer, env ...string) (*exec.Cmd, string) {
	t.Helper()
	rtmpAddr, httpAddr := freePort(t), freePort(t)
	cmd := exec.Command(bin, "serve")
	cmd.Env = append(os.Environ(), "LIVETAPE_RTMP_ADDR="+rtmpAddr, "LIVETAPE_HTTP_ADDR="+httpAddr, "LIVETAPE_PUBLIC_URL=http://"+httpAddr,
		"LIVETAPE_DATA_DIR="+dataDir, "LIVETAPE_PUSH_KEY=", "LIVETAPE_LOG_LEVEL=info")
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	mediatest.WaitFor(t, "livetape to listen", 10*time.Second, func() bool {
		c, err := net.Dial("tcp", rtmpAddr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return cmd, rtmpAddr
}

// Kill -9 a real livetape in the middle of a recording, start it again: the recovered
// files play and miss at most about a second before the kill.
func TestRecordingSurvivesKill(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildLivetape(t)
	data := t.TempDir()
	logs := &mediatest.SyncBuffer{}
	cmd, rtmpAddr := startLivetape(t, bin, data, logs)

	formats := []string{"mp4", "flv", "hls"}
	p := mediatest.Push(t, "rtmp://"+rtmpAddr+"/live/crash?record="+strings.Join(formats, "|"), 30)
	start := time.Now()
	// Kill once the HLS recording has finished its first 4 s segment (and more is
	// buffered in the other formats).
	mediatest.WaitFor(t, "a recorded HLS segment", 20*time.Second, func() bool {
		pl, _ := filepath.Glob(filepath.Join(data, "spool", "live", "crash", "*", "0001.hls", "index.m3u8"))
		if len(pl) == 0 {
			return false
		}
		b, _ := os.ReadFile(pl[0])
		return strings.Contains(string(b), "seg-1.ts")
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	killedAt := time.Since(start).Seconds()
	p.Wait(t, 10*time.Second)

	parts, _ := filepath.Glob(filepath.Join(data, "spool", "live", "crash", "*", "0001.*"))
	if len(parts) == 0 {
		t.Fatalf("nothing in the spool after the kill")
	}
	logs2 := &mediatest.SyncBuffer{}
	startLivetape(t, bin, data, logs2)
	out := filepath.Join(data, "store", "live", "crash")
	mediatest.WaitFor(t, "the recovered recordings", 20*time.Second, func() bool {
		ms, _ := filepath.Glob(filepath.Join(out, "*.json"))
		return len(ms) == len(formats)
	})
	if !strings.Contains(logs2.String(), "recovered after a crash") {
		t.Errorf("recovery not logged:\n%s", logs2)
	}
	files, _ := filepath.Glob(filepath.Join(out, "*.flv"))
	mp4Files, _ := filepath.Glob(filepath.Join(out, "*.mp4"))
	hlsFiles, _ := filepath.Glob(filepath.Join(out, "*", "index.m3u8"))
	files = slices.Concat(files, mp4Files, hlsFiles)
	if len(files) != len(formats) {
		t.Fatalf("recovered %v", files)
	}
	for _, f := range files {
		pr := mediatest.ProbeFrames(t, f)
		d := pr.Duration()
		// ffmpeg needs ~0.3 s to connect; HLS loses the segment being written (≤ 4 s).
		lost := 1.5
		if strings.HasSuffix(f, ".m3u8") {
			lost = 4.5
		}
		t.Logf("%s: %.2f s recovered of a push killed after %.2f s", filepath.Base(f), d, killedAt)
		if d > killedAt || d < killedAt-lost {
			t.Errorf("%s: %.2f s recovered, killed after %.2f s of push", filepath.Base(f), d, killedAt)
		}
		if vc, _, _, n := pr.Stream("video"); vc != "h264" || n < 25 {
			t.Errorf("%s: video %s, %d frames", filepath.Base(f), vc, n)
		}
	}
}

// livetape serve killed with uploads and callbacks pending, on the embedded queue:
// after the restart they complete (the spool and the event files are the truth).
func TestEmbeddedQueueSurvivesKill(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	s3 := s3test.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}, fail: 1 << 30} // down until told otherwise
	hook := httptest.NewServer(rc)
	defer hook.Close()
	env := []string{"LIVETAPE_S3_ENDPOINT=" + s3.Endpoint, "LIVETAPE_S3_BUCKET=" + s3.Bucket,
		"LIVETAPE_S3_ACCESS_KEY=" + s3.AccessKey, "LIVETAPE_S3_SECRET_KEY=" + s3.SecretKey,
		"LIVETAPE_S3_REGION=" + s3.Region, "LIVETAPE_CALLBACK_URL=" + hook.URL, "LIVETAPE_CALLBACK_KEY=" + callbackKey}
	bin := buildLivetape(t)
	data := t.TempDir()
	s3.Stop()
	cmd, rtmpAddr := startLivetape(t, bin, data, &mediatest.SyncBuffer{}, env...)
	p := mediatest.Push(t, "rtmp://"+rtmpAddr+"/live/emb?record=flv", 3)
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	mediatest.WaitFor(t, "the fragment closed in the spool and a failed callback", 20*time.Second, func() bool {
		ms, _ := filepath.Glob(filepath.Join(data, "spool", "live", "emb", "*", "*.json"))
		if len(ms) != 1 {
			return false
		}
		b, _ := os.ReadFile(ms[0])
		rc.mu.Lock()
		defer rc.mu.Unlock()
		return strings.Contains(string(b), `"state": "closed"`) && len(rc.hits) > 0
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	s3.Restart()
	rc.mu.Lock()
	rc.fail = 0
	rc.mu.Unlock()
	logs := &mediatest.SyncBuffer{}
	startLivetape(t, bin, data, logs, env...)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("log after the restart:\n%s", logs)
		}
	})
	mediatest.WaitFor(t, "push start, push end and recording callbacks after the restart", 60*time.Second, func() bool {
		return rc.count(jobs.EventPushStarted) == 1 && rc.count(jobs.EventPushEnded) == 1 && rc.count(jobs.EventRecordingReady) == 1
	})
	for _, ev := range rc.snapshot() {
		if ev.EventType == jobs.EventRecordingReady {
			if d := mediatest.ProbeFrames(t, ev.VideoURL).Duration(); d < 2 {
				t.Errorf("%s: %.2f s", ev.VideoURL, d)
			}
		}
	}
}
