package live

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/loadgen"
	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/live/sign"
)

func TestLiveHLS(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, func(c *Config) { c.HLS.SegmentDuration = time.Second; c.HLS.Window = 4 })
	p := push(t, "rtmp://"+s.rtmpAddr+"/live/h", 9)
	s.waitLive(t, "live", "h")

	// The first playlist request waits for the first segment instead of failing.
	code, pl := httpGet(t, s.httpURL+"/live/h.m3u8")
	if code != 200 || !strings.HasPrefix(pl, "#EXTM3U") || !strings.Contains(pl, "h/seg-0.ts") {
		t.Fatalf("first playlist: %d\n%s", code, pl)
	}

	r := probe(t, s.httpURL+"/live/h.m3u8", 2)
	if codec, w, h, n := r.Stream("video"); codec != "h264" || w != 320 || h != 240 || n == 0 {
		t.Errorf("HLS video: %s %dx%d %d frames", codec, w, h, n)
	}
	if codec, _, _, _ := r.Stream("audio"); codec != "aac" {
		t.Errorf("HLS audio: %q", codec)
	}

	// Every segment starts on a keyframe and lasts about the target.
	code, seg := httpGetBytes(t, s.httpURL+"/live/h/seg-1.ts")
	if code != 200 {
		t.Fatalf("seg-1: %d", code)
	}
	file := filepath.Join(t.TempDir(), "seg.ts")
	os.WriteFile(file, seg, 0o644)
	if first := firstVideoFrame(t, file); first.KeyFrame != 1 || first.PictType != "I" {
		t.Errorf("seg-1 starts with %+v, want a keyframe", first)
	}

	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	waitFor(t, "#EXT-X-ENDLIST", 10*time.Second, func() bool {
		_, pl = httpGet(t, s.httpURL+"/live/h.m3u8")
		return strings.Contains(pl, "#EXT-X-ENDLIST")
	})
	var total float64
	n := 0
	for _, m := range regexp.MustCompile(`#EXTINF:([0-9.]+),`).FindAllStringSubmatch(pl, -1) {
		d, _ := strconv.ParseFloat(m[1], 64)
		if d > 1.6 {
			t.Errorf("segment of %.3f s with a 1 s target and 1 s GOP", d)
		}
		total += d
		n++
	}
	if n != 4 || !strings.Contains(pl, "#EXT-X-MEDIA-SEQUENCE:") || strings.Contains(pl, "seg-0.ts") {
		t.Errorf("ended playlist should list the last 4 segments:\n%s", pl)
	}
	if code, _ := httpGet(t, s.httpURL+"/live/h/seg-0.ts"); code != 404 {
		t.Errorf("old segment still served: %d", code)
	}
}

type frameInfo struct {
	KeyFrame int    `json:"key_frame"`
	PictType string `json:"pict_type"`
}

func firstVideoFrame(t testing.TB, file string) frameInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-of", "json", "-select_streams", "v",
		"-show_entries", "frame=key_frame,pict_type", "-read_intervals", "%+#1", file).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", file, err)
	}
	var r struct{ Frames []frameInfo }
	if err := json.Unmarshal(out, &r); err != nil || len(r.Frames) == 0 {
		t.Fatalf("ffprobe frames: %v %s", err, out)
	}
	return r.Frames[0]
}

// With a play key, the retained playlist of an ended stream (#EXT-X-ENDLIST) and its
// segments answer a correctly signed request; the signature is still required.
func TestLiveHLSPlayKeyAfterEnd(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, func(c *Config) {
		c.PlayKey = "play-key"
		c.HLS.SegmentDuration = time.Second
	})
	p := push(t, "rtmp://"+s.rtmpAddr+"/live/hk", 3)
	s.waitLive(t, "live", "hk")
	signed := "?" + sign.Query("play-key", "hk", time.Now().Add(time.Hour)).Encode()
	if code, pl := httpGet(t, s.httpURL+"/live/hk.m3u8"+signed); code != 200 || !strings.HasPrefix(pl, "#EXTM3U") {
		t.Fatalf("signed playlist while live: %d\n%s", code, pl)
	}
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	waitFor(t, "the stream to end", 10*time.Second, func() bool { return s.hub.Lookup("live", "hk") == nil })

	var pl string
	waitFor(t, "#EXT-X-ENDLIST", 10*time.Second, func() bool {
		var code int
		code, pl = httpGet(t, s.httpURL+"/live/hk.m3u8"+signed)
		if code != 200 {
			t.Fatalf("signed playlist after the end: %d %q", code, pl)
		}
		return strings.Contains(pl, "#EXT-X-ENDLIST")
	})
	segs := regexp.MustCompile(`(?m)^hk/seg-\d+\.ts\?.+$`).FindAllString(pl, -1)
	if len(segs) == 0 {
		t.Fatalf("no signed segment URIs in the ended playlist:\n%s", pl)
	}
	for _, seg := range segs {
		if code, data := httpGetBytes(t, s.httpURL+"/live/"+seg); code != 200 || len(data) == 0 || data[0] != 0x47 {
			t.Errorf("%s after the end: %d, %d bytes", seg, code, len(data))
		}
	}
	if code, body := httpGet(t, s.httpURL+"/live/hk.m3u8"); code != 403 || !strings.Contains(body, "missing txSecret") {
		t.Errorf("unsigned playlist after the end: %d %q", code, body)
	}
	if code, _ := httpGet(t, s.httpURL+"/live/"+strings.SplitN(segs[0], "?", 2)[0]); code != 403 {
		t.Errorf("unsigned segment after the end: %d", code)
	}
	never := "?" + sign.Query("play-key", "never", time.Now().Add(time.Hour)).Encode()
	if code, body := httpGet(t, s.httpURL+"/live/never.m3u8"+never); code != 404 || !strings.Contains(body, "live/never is not live") {
		t.Errorf("signed playlist of a stream never live: %d %q", code, body)
	}
}

// Live HLS segments are files: one that left the playlist (and the few kept after it)
// is removed, the push's folder goes when its ended playlist expires, the whole run
// folder at shutdown, and a previous process's leftovers at start.
func TestLiveHLSFilesRemoved(t *testing.T) {
	dir := t.TempDir()
	stale := filepath.Join(dir, "run-stale")
	os.MkdirAll(filepath.Join(stale, "live", "x", "1"), 0o755)
	os.WriteFile(filepath.Join(stale, hlsRunMarker), nil, 0o644)
	os.WriteFile(filepath.Join(stale, "live", "x", "1", "seg-0.ts"), []byte("old"), 0o644)
	os.WriteFile(filepath.Join(dir, "unrelated"), []byte("keep"), 0o644)

	s := startServer(t, func(c *Config) {
		c.HLS.Dir, c.HLS.SegmentDuration, c.HLS.Window = dir, 500*time.Millisecond, 2
	})
	s.hls.keepEnded = 100 * time.Millisecond
	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("a previous run's folder is still there (%v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "unrelated")); err != nil {
		t.Errorf("a file livetape did not make was removed: %v", err)
	}

	pub := mediatest.PublishRTMP(t, "rtmp://"+s.rtmpAddr+"/live/files")
	for f := range (loadgen.Stream{GOP: 500 * time.Millisecond}).Frames() {
		if f.At > 10*time.Second {
			break
		}
		if err := pub.Write(f.Kind, uint32(f.At.Milliseconds()), f.Body); err != nil {
			t.Fatal(err)
		}
	}
	segments := func() []string {
		m, _ := filepath.Glob(filepath.Join(dir, "run-*", "live", "files", "*", "seg-*.ts"))
		return m
	}
	// 20 segments of 0.5 s were pushed: the playlist lists 2, 3 more stay fetchable,
	// one is being written, and for a moment the one just finished is not listed yet.
	waitFor(t, "segment 15 or later", 20*time.Second, func() bool {
		code, pl := httpGet(t, s.httpURL+"/live/files.m3u8")
		for _, m := range regexp.MustCompile(`seg-([0-9]+)\.ts`).FindAllStringSubmatch(pl, -1) {
			if n, _ := strconv.Atoi(m[1]); code == 200 && n >= 15 {
				return true
			}
		}
		return false
	})
	if n := len(segments()); n > 2+hlsKeepEvicted+2 || n < 2 {
		t.Errorf("%d segment files on disk, want at most %d: %v", n, 2+hlsKeepEvicted+2, segments())
	}
	if code, _ := httpGetBytes(t, s.httpURL+"/live/files/seg-0.ts"); code != 404 {
		t.Errorf("evicted seg-0.ts: %d, want 404", code)
	}
	_, pl := httpGet(t, s.httpURL+"/live/files.m3u8")
	uris := regexp.MustCompile(`files/seg-[0-9]+\.ts`).FindAllString(pl, -1)
	if len(uris) == 0 {
		t.Fatalf("no segments in\n%s", pl)
	}
	if code, b := httpGetBytes(t, s.httpURL+"/live/"+uris[0]); code != 200 || len(b) == 0 || b[0] != 0x47 {
		t.Errorf("%s: %d, %d bytes", uris[0], code, len(b))
	}

	if err := pub.Unpublish(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the ended stream's folder to go", 20*time.Second, func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "run-*", "live"))
		return len(m) == 0
	})
	if code, _ := httpGet(t, s.httpURL+"/live/files.m3u8"); code != 404 {
		t.Errorf("expired playlist: %d, want 404", code)
	}
}
