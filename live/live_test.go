package live

import (
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/stream"
)

func TestPushAndPlay(t *testing.T) {
	needFFmpeg(t)
	s := startServer(t, nil)
	push(t, "rtmp://"+s.rtmpAddr+"/live/demo", 30)
	s.waitLive(t, "live", "demo")

	for _, tc := range []struct{ name, url string }{
		{"http-flv", s.httpURL + "/live/demo.flv"},
		{"rtmp", "rtmp://" + s.rtmpAddr + "/live/demo"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			short := probe(t, tc.url, 1)
			long := probe(t, tc.url, 3)
			codec, w, h, frames := long.Stream("video")
			if codec != "h264" || w != 320 || h != 240 {
				t.Errorf("video = %s %dx%d, want h264 320x240", codec, w, h)
			}
			if acodec, _, _, aframes := long.Stream("audio"); acodec != "aac" || aframes == 0 {
				t.Errorf("audio = %s with %d packets, want aac", acodec, aframes)
			}
			_, _, _, shortFrames := short.Stream("video")
			if frames <= shortFrames || shortFrames == 0 {
				t.Errorf("video frames did not grow: %d after 1 s, %d after 3 s", shortFrames, frames)
			}
		})
	}

	code, body := httpGet(t, s.httpURL+"/live/nosuch.flv")
	if code != 404 || !strings.Contains(body, "live/nosuch is not live") {
		t.Errorf("unknown stream: %d %q", code, body)
	}
}

func TestEndReasons(t *testing.T) {
	needFFmpeg(t)
	obs := newRecordingObserver()
	s := startServer(t, func(c *Config) { c.IdleTimeout = time.Second }, obs)
	p := push(t, "rtmp://"+s.rtmpAddr+"/live/short?record=mp4", 1.5)
	if err := p.Wait(t, 20*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	ev := obs.next(t)
	if ev.kind != "start" || ev.pub.Params.StreamID != "short" || ev.pub.Params.Record[0] != "mp4" || ev.pub.ClientAddr == "" {
		t.Fatalf("first event %+v", ev)
	}
	if ev := obs.next(t); ev.kind != "end" || ev.reason != stream.EndNormal {
		t.Fatalf("second event %s %s, want end normal", ev.kind, ev.reason)
	}
}
