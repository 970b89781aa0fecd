package main

import (
	"io"
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
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/fmp4"
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
// files play and miss at most what the README promises of what the publisher SENT — the
// media after the last sync (1 s) for MP4 and FLV, the segment being written (4 s) for
// HLS. The Go publisher sends known timestamps, and the kill waits until the server has
// recorded the last one, so neither connect time nor a busy machine moves the figures.
func TestRecordingSurvivesKill(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	bin := buildLivetape(t)
	data := t.TempDir()
	logs := &mediatest.SyncBuffer{}
	cmd, rtmpAddr := startLivetape(t, bin, data, logs)

	// 9 s of the av fixture (4 s, a keyframe every second) looped, then the keyframe at
	// 9 s: the MP4 writer closes its fragment [8 s, 9 s) when that keyframe arrives, which
	// is how the test sees that the server has recorded everything sent.
	const lastKeyframe = 9000 // ms, the last packet sent
	formats := []string{"mp4", "flv", "hls"}
	_, pkts := pushLoop(t, "rtmp://"+rtmpAddr+"/live/crash?record="+strings.Join(formats, "|"), lastKeyframe)
	sent := time.Duration(pkts[len(pkts)-1].Timestamp) * time.Millisecond
	mediatest.WaitFor(t, "the MP4 in the spool to hold the fragment closed by the last keyframe", 30*time.Second, func() bool {
		parts, _ := filepath.Glob(filepath.Join(data, "spool", "live", "crash", "*", "0001.mp4.part"))
		return len(parts) == 1 && spoolMP4Duration(t, parts[0]) > sent-time.Second
	})
	// The push is still live: the connection stays open until the test ends.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	logs2 := &mediatest.SyncBuffer{}
	startLivetape(t, bin, data, logs2)
	out := filepath.Join(data, "store", "live", "crash")
	mediatest.WaitFor(t, "the recovered recordings", 30*time.Second, func() bool {
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
	const frame = 40 * time.Millisecond // one video frame: the last packet's own duration
	for _, f := range files {
		pr := mediatest.ProbeFrames(t, f)
		got := time.Duration(pr.Duration() * float64(time.Second))
		lossBound := time.Second // README: synced every second of media
		if strings.HasSuffix(f, ".m3u8") {
			lossBound = 4 * time.Second // the HLS segment being written is dropped
		}
		t.Logf("%s: %v recovered of %v sent", filepath.Base(f), got, sent)
		if got < sent-lossBound || got > sent+frame {
			t.Errorf("%s: %v recovered of %v sent: want between %v and %v", filepath.Base(f), got, sent, sent-lossBound, sent+frame)
		}
		if vc, _, _, n := pr.Stream("video"); vc != "h264" || n < 25 {
			t.Errorf("%s: video %s, %d frames", filepath.Base(f), vc, n)
		}
	}
}

// loopFixture returns the packets of an FLV fixture repeated, re-stamped one loop after
// the other, up to and including the video keyframe at lastKeyframe ms. The metadata and
// sequence headers are sent once; each loop keeps the media before the next loop starts
// (the fixture's last audio frames run past its last video frame).
// pushLoop publishes the av fixture looped up to lastKeyframe (ms) to url with the Go
// publisher, and returns the publisher (still connected) and what it sent.
func pushLoop(t *testing.T, url string, lastKeyframe uint32) (*mediatest.Publisher, []*media.Packet) {
	t.Helper()
	pkts := loopFixture(t, filepath.Join("..", "..", "testdata", "av.flv"), lastKeyframe)
	pub := mediatest.PublishRTMP(t, url)
	for _, p := range pkts {
		if err := pub.WritePacket(p); err != nil {
			t.Fatalf("push to %s: %v", url, err)
		}
	}
	return pub, pkts
}

func loopFixture(t *testing.T, path string, lastKeyframe uint32) []*media.Packet {
	t.Helper()
	fixture := mediatest.ReadFLV(t, path)
	var loopLen uint32 // from the first video frame to the one after the last
	for _, p := range fixture {
		if p.Kind == media.KindVideo && !p.SequenceHeader {
			loopLen = p.Timestamp + 40
		}
	}
	var out []*media.Packet
	for offset := uint32(0); ; offset += loopLen {
		for _, p := range fixture {
			if offset > 0 && (p.SequenceHeader || p.Kind == media.KindData) || p.Timestamp >= loopLen {
				continue
			}
			q := p.WithTimestamp(p.Timestamp + offset)
			out = append(out, q)
			if q.Kind == media.KindVideo && q.Keyframe && q.Timestamp == lastKeyframe {
				return out
			}
			if q.Timestamp > lastKeyframe+loopLen {
				t.Fatalf("%s: no keyframe at %d ms once looped", path, lastKeyframe)
			}
		}
	}
}

// spoolMP4Duration is how much media the fragmented MP4 being recorded at path holds in
// complete fragments: what a recovery of it now would keep. It works on a copy, since
// the server is still writing.
func spoolMP4Duration(t *testing.T, path string) time.Duration {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	cp, err := os.CreateTemp(t.TempDir(), "spool-*.mp4")
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Close()
	if _, err := cp.Write(b); err != nil {
		t.Fatal(err)
	}
	if _, err := fmp4.Recover(cp); err != nil {
		return 0
	}
	st, err := fmp4.Finalize(cp, io.Discard)
	if err != nil {
		return 0
	}
	return st.Duration
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
