package live

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/live/sign"
)

func TestRefusals(t *testing.T) {
	needFFmpeg(t)
	const key = "push-key"
	s := startServer(t, func(c *Config) { c.PushKey = key; c.PushBackupKey = "old-key" })
	signed := func(id string, expiry time.Time, k string) string {
		return id + "?" + sign.Query(k, id, expiry).Encode()
	}
	later := time.Now().Add(time.Hour)
	base := "rtmp://" + s.rtmpAddr + "/live/"

	// A good stream that must keep going while others are refused.
	push(t, base+signed("good", later, key), 60)
	good := s.waitLive(t, "live", "good")

	// Garbage on the RTMP port is dropped without disturbing anyone.
	if c, err := net.Dial("tcp", s.rtmpAddr); err == nil {
		c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n" + strings.Repeat("\x00\xff", 2000)))
		c.Close()
	}

	tests := []struct {
		name, path, reason string
	}{
		{"no signature", "nosig", "missing txSecret or txTime"},
		{"wrong signature", signed("wrong", later, "not-the-key"), "txSecret does not match"},
		{"signature of another stream", "other?" + sign.Query(key, "good", later).Encode(), "txSecret does not match"},
		{"expired", signed("old", time.Now().Add(-time.Minute), key), "txTime has expired"},
		{"second publisher", signed("good", later, key), "already being published"},
		{"bad record format", signed("rec", later, key) + "&record=mp4|avi", `record format "avi"`},
		{"bad record interval", signed("rec", later, key) + "&record=mp4&record_interval=9000", "record_interval"},
		{"bad record type", signed("rec", later, key) + "&record_type=both", "record_type"},
		{"reconnect window too long", signed("rec", later, key) + "&record_reconnect_window=3601", "record_reconnect_window"},
		{"reconnect window not a number", signed("rec", later, key) + "&record_reconnect_window=1m", "record_reconnect_window"},
		{"bad record stitch", signed("rec", later, key) + "&record_stitch=true", "record_stitch"},
		{"bad stream id", signed("a..b$", later, key), "stream id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := push(t, base+tt.path, 5)
			err := p.Wait(t, 20*time.Second)
			if err == nil {
				t.Fatalf("ffmpeg succeeded; stderr:\n%s", p.Stderr)
			}
			if !strings.Contains(p.Stderr.String(), tt.reason) {
				t.Errorf("ffmpeg stderr lacks %q:\n%s", tt.reason, p.Stderr)
			}
			// slog's text format escapes the quotes.
			if !strings.Contains(s.logs.String(), strings.ReplaceAll(tt.reason, `"`, `\"`)) {
				t.Errorf("server log lacks %q", tt.reason)
			}
		})
	}

	t.Run("backup key accepted", func(t *testing.T) {
		push(t, base+signed("backup", later, "old-key"), 30)
		s.waitLive(t, "live", "backup")
	})

	before := good.Packets()
	waitFor(t, "the good stream to keep flowing", 10*time.Second, func() bool { return good.Packets() > before+25 })
	if s.hub.Lookup("live", "good") != good {
		t.Fatal("the good stream was replaced or ended")
	}
}

func TestPlayKey(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, func(c *Config) { c.PlayKey = "play-key" })
	push(t, "rtmp://"+s.rtmpAddr+"/live/p", 30)
	s.waitLive(t, "live", "p")
	if code, body := httpGet(t, s.httpURL+"/live/p.m3u8"); code != 403 || !strings.Contains(body, "missing txSecret") {
		t.Errorf("unsigned play: %d %q", code, body)
	}
	q := sign.Query("play-key", "p", time.Now().Add(time.Hour)).Encode()
	r := probe(t, s.httpURL+"/live/p.flv?"+q, 1)
	if codec, _, _, _ := r.Stream("video"); codec != "h264" {
		t.Errorf("signed play: video codec %q", codec)
	}
}

// A URL that is no live playback URL says so, names what was asked for and lists
// the URL shapes that exist.
func TestLiveNotFoundSaysWhat(t *testing.T) {
	s := startServer(t, nil)
	for _, path := range []string{"/etc/passwd", "/x/etc/passwd", "/a/b/c/d", "/", "/favicon.ico", "/live/x.mp4", "/live/x/seg-x.ts"} {
		code, body := httpGet(t, s.httpURL+path)
		if code != 404 || !strings.Contains(body, fmt.Sprintf("%q is not a live playback URL", path)) ||
			!strings.Contains(body, "/{app}/{stream_id}.flv") || !strings.Contains(body, "/{app}/{stream_id}.m3u8") ||
			!strings.Contains(body, "/{app}/{stream_id}/seg-N.ts") {
			t.Errorf("GET %s: %d %q", path, code, body)
		}
	}
	// Right shapes, nothing live: what was not found.
	for path, want := range map[string]string{
		"/live/none.flv":          "live/none is not live",
		"/live/none.m3u8":         "live/none is not live",
		"/live/none/seg-3.ts":     "live/none is not live",
		"/live/bad%20id.m3u8":     "stream id must be",
		"/live/bad%20id/seg-1.ts": "stream id must be",
	} {
		code, body := httpGet(t, s.httpURL+path)
		if (code != 404 && code != 400) || !strings.Contains(body, want) {
			t.Errorf("GET %s: %d %q, want it to say %q", path, code, body, want)
		}
	}
}
