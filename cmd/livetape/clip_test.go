package main

import (
	"encoding/json"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/jobs"
)

// A push recorded as 2-second MP4 fragments through a real serve: a clip of a window
// across fragments, from /vod/clip/, starts on a keyframe and lasts the window within
// one GOP.
func TestServeClip(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	r := startServe(t, pipelineConfig(t, rc))
	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/cam?record=mp4&record_interval=2", 7)
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	mediatest.WaitFor(t, "the push end", 30*time.Second, func() bool { return rc.count(jobs.EventPushEnded) == 1 })
	var list struct {
		Total      int `json:"total"`
		Recordings []struct {
			StartTime time.Time `json:"start_time"`
		} `json:"recordings"`
	}
	mediatest.WaitFor(t, "every fragment catalogued", 30*time.Second, func() bool {
		err := json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings?stream_id=cam&format=mp4", ""), &list)
		return err == nil && list.Total >= 3 && list.Total == rc.count(jobs.EventRecordingReady)
	})
	// From 1.5 s into the first fragment to 1.2 s into the third.
	start := list.Recordings[0].StartTime.Add(1500 * time.Millisecond)
	end := list.Recordings[2].StartTime.Add(1200 * time.Millisecond)
	u := r.httpURL + "/vod/clip/live/cam.mp4?start=" + url.QueryEscape(start.Format(time.RFC3339Nano)) +
		"&end=" + url.QueryEscape(end.Format(time.RFC3339Nano))
	body := httpBody(t, u, "")
	path := filepath.Join(t.TempDir(), "clip.mp4")
	if err := os.WriteFile(path, body, 0o644); err != nil {
		t.Fatal(err)
	}
	const gop = 1.0 // mediatest.Push: a keyframe every second
	window := end.Sub(start).Seconds()
	pr := mediatest.ProbeFrames(t, path)
	if d := pr.Duration(); d < window-0.1 || d > window+gop+0.1 {
		t.Errorf("clip of 3 fragments: duration %.3f s, want within one GOP of the window %.3f s", d, window)
	}
	if vc, _, _, n := pr.Stream("video"); vc != "h264" || n < int(window*25)-1 {
		t.Errorf("clip video %s, %d frames, want h264 and at least %.0f", vc, n, window*25)
	}
	if part := httpBody(t, u, "bytes=100-1099"); string(part) != string(body[100:1100]) {
		t.Errorf("range of the clip: %d bytes, not those of the whole", len(part))
	}
	if strings.Contains(r.logs.String(), "vod: clip refused") {
		t.Errorf("a clip was refused:\n%s", r.logs)
	}
}
