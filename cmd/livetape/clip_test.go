package main

import (
	"encoding/json"
	"io"
	"net/http"
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
// one GOP; POST /api/v1/stitch joins the fragments into one MP4 lasting their sum,
// announced by event 300 and shown done by GET /api/v1/jobs/{id}.
func TestServeClipAndStitch(t *testing.T) {
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
			FileID      string    `json:"file_id"`
			StartTime   time.Time `json:"start_time"`
			Duration    float64   `json:"duration"`
			Type        *string   `json:"type"`
			BroadcastID *string   `json:"broadcast_id"`
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

	// Stitch every fragment by file id.
	var ids []string
	var sum float64
	for _, rec := range list.Recordings {
		if rec.Type == nil || *rec.Type != "fragment" || rec.BroadcastID == nil {
			t.Errorf("recording %s: type %v, broadcast_id %v: want both present", rec.FileID, rec.Type, rec.BroadcastID)
		}
		ids = append(ids, rec.FileID)
		sum += rec.Duration
	}
	req, _ := json.Marshal(map[string]any{"file_ids": ids})
	code, answer := postJSON(t, r.httpURL+"/api/v1/stitch", string(req))
	var job struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(answer, &job); code != 202 || err != nil || job.JobID == "" {
		t.Fatalf("POST /api/v1/stitch: %d %s", code, answer)
	}
	var done jobs.Event
	mediatest.WaitFor(t, "event 300", 30*time.Second, func() bool {
		for _, ev := range rc.snapshot() {
			if ev.EventType == jobs.EventStitchDone && ev.JobID == job.JobID {
				done = ev
				return true
			}
		}
		return false
	})
	if done.ErrCode != 0 || done.Duration < sum-0.1 || done.Duration > sum+0.1 {
		t.Errorf("event 300: %+v, want errcode 0 and the fragments' %.3f s", done, sum)
	}
	if d := mediatest.Probe(t, done.VideoURL).Duration(); d < sum-0.1 || d > sum+0.1 {
		t.Errorf("stitched MP4 from %s: %.3f s, want the fragments' %.3f s", done.VideoURL, d, sum)
	}
	var state struct {
		State string `json:"state"`
	}
	if err := json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/jobs/"+job.JobID, ""), &state); err != nil || state.State != "completed" {
		t.Errorf("GET /api/v1/jobs/%s: %q %v, want completed", job.JobID, state.State, err)
	}
	// The same request is the same job; a malformed one is refused.
	if code, again := postJSON(t, r.httpURL+"/api/v1/stitch", string(req)); code != 202 || !strings.Contains(string(again), job.JobID) {
		t.Errorf("POST again: %d %s, want 202 and job %s", code, again, job.JobID)
	}
	if code, _ := postJSON(t, r.httpURL+"/api/v1/stitch", `{"file_id":"x"}`); code != 400 {
		t.Errorf("POST with an unknown field: %d, want 400", code)
	}
	if strings.Contains(r.logs.String(), "vod: clip refused") {
		t.Errorf("a clip was refused:\n%s", r.logs)
	}
}

func postJSON(t *testing.T, url, body string) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
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
