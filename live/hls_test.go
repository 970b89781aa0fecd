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
