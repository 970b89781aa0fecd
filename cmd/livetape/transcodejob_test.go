package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"image/jpeg"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/internal/transcodertest"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// jobAnswer is GET /api/v1/jobs/{id}, decoded loosely so that the exact set of keys
// can be checked too.
type jobAnswer struct {
	JobID    string `json:"job_id"`
	Type     string `json:"type"`
	State    string `json:"state"`
	Progress int    `json:"progress"`
	Error    string `json:"error"`
	Result   *struct {
		Outputs []struct {
			Template string `json:"template"`
			Format   string `json:"format"`
			FileID   string `json:"file_id"`
			VideoURL string `json:"video_url"`
			Width    int    `json:"width"`
			Height   int    `json:"height"`
			Bitrate  int64  `json:"bitrate"`
			Variants []struct {
				Template string `json:"template"`
				VideoURL string `json:"video_url"`
				Width    int    `json:"width"`
				Height   int    `json:"height"`
			} `json:"variants"`
		} `json:"outputs"`
	} `json:"result"`
	keys []string
}

func getJob(t *testing.T, base, id string) jobAnswer {
	t.Helper()
	b := httpBody(t, base+"/api/v1/jobs/"+id, "")
	var j jobAnswer
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatalf("GET job %s: %v\n%s", id, err, b)
	}
	json.Unmarshal(b, &m)
	for k := range m {
		j.keys = append(j.keys, k)
	}
	slices.Sort(j.keys)
	return j
}

func waitJob(t *testing.T, base, id string, d time.Duration, states ...string) jobAnswer {
	t.Helper()
	var j jobAnswer
	mediatest.WaitFor(t, "job "+id+" "+strings.Join(states, "|"), d, func() bool {
		j = getJob(t, base, id)
		return slices.Contains(states, j.State)
	})
	return j
}

func postTranscode(t *testing.T, base, body string) string {
	t.Helper()
	code, b := postJSON(t, base+"/api/v1/transcode", body)
	var ans map[string]string
	if err := json.Unmarshal(b, &ans); code != http.StatusAccepted || err != nil || ans["job_id"] == "" || len(ans) != 1 {
		t.Fatalf("POST /api/v1/transcode %s: %d %s, want 202 {\"job_id\"}", body, code, b)
	}
	return ans["job_id"]
}

func eventOf(rc *receiver, typ jobs.EventType, match func(jobs.Event) bool) (jobs.Event, bool) {
	for _, ev := range rc.snapshot() {
		if ev.EventType == typ && match(ev) {
			return ev, true
		}
	}
	return jobs.Event{}, false
}

// A push with record=mp4&transcode=sd through a real serve: the recording gets a
// poster (event 200, a JPEG of its aspect) and an sd rendition (event 301); POST
// /api/v1/transcode of the same is the same job, completed, in the contract's shape;
// an ABR set's master playlist and variants play from /vod/; a truncated MP4 fails
// its job once, for good; DELETE stops a running job and leaves nothing in the catalog.
func TestServeTranscodeJobs(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	redisSrv := redistest.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redisSrv.Addr()
	cfg.Transcode.Binary = transcodertest.Binary(t)
	// The jobs' work dirs (os.MkdirTemp) land here, to be checked for leftovers.
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	r := startServe(t, cfg)
	rdb := redis.NewClient(&redis.Options{Addr: redisSrv.Addr()})
	t.Cleanup(func() { rdb.Close() })
	store := storage.Local{Dir: filepath.Join(cfg.DataDir, "store")}
	cat, err := catalog.New(catalog.Config{Store: store, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}

	// A transcode= naming no template is refused at publish.
	bad := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/bad?record=mp4&transcode=4k", 2)
	if err := bad.Wait(t, 30*time.Second); err == nil {
		t.Errorf("push with transcode=4k accepted")
	}

	// 16:9 at 960x540: sd is 640x360.
	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/tc?record=mp4&transcode=sd", 5, "-vf", "scale=960:540,setsar=1")
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	var src jobs.Event
	mediatest.WaitFor(t, "the recording", 30*time.Second, func() bool {
		var ok bool
		src, ok = eventOf(rc, jobs.EventRecordingReady, func(ev jobs.Event) bool { return ev.StreamID == "tc" })
		return ok
	})

	// The poster: event 200, a JPEG of the recording's 16:9, in its catalog entry.
	var snap jobs.Event
	mediatest.WaitFor(t, "event 200", 60*time.Second, func() bool {
		var ok bool
		snap, ok = eventOf(rc, jobs.EventSnapshot, func(ev jobs.Event) bool { return ev.FileID == src.FileID })
		return ok
	})
	pic := httpBody(t, snap.PicFullURL, "")
	img, err := jpeg.DecodeConfig(bytes.NewReader(pic))
	if err != nil || img.Width != 960 || img.Height != 540 || snap.Width != 960 || snap.Height != 540 || snap.FileSize != int64(len(pic)) {
		t.Errorf("poster %s: %dx%d (%v), event %dx%d %d bytes, want a 960x540 JPEG of %d bytes", snap.PicFullURL, img.Width, img.Height, err, snap.Width, snap.Height, snap.FileSize, len(pic))
	}
	var srcEntry catalog.Recording
	json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings/"+src.FileID, ""), &srcEntry)
	if snap.BroadcastID == "" || snap.BroadcastID != srcEntry.BroadcastID {
		t.Errorf("event 200: broadcast_id %q, want the recording's %q", snap.BroadcastID, srcEntry.BroadcastID)
	}
	if srcEntry.Poster != snap.PicURL || srcEntry.PosterURL != snap.PicFullURL || !strings.HasSuffix(srcEntry.Poster, ".jpg") {
		t.Errorf("recording entry: poster %q %q, want the event's %q %q", srcEntry.Poster, srcEntry.PosterURL, snap.PicURL, snap.PicFullURL)
	}

	// transcode=sd on the push queued the job the API names for {file_id, [sd], mp4}.
	id := postTranscode(t, r.httpURL, fmt.Sprintf(`{"file_id":%q,"templates":["sd"],"format":"mp4"}`, src.FileID))
	if want := jobs.TranscodeJobID(src.FileID, "mp4", []string{"sd"}); id != want {
		t.Errorf("job id %s, want the derived %s", id, want)
	}
	j := waitJob(t, r.httpURL, id, 90*time.Second, jobs.JobCompleted, jobs.JobFailed)
	wantKeys := []string{"error", "job_id", "progress", "result", "state", "type"}
	if j.State != jobs.JobCompleted || j.Type != "transcode" || j.Progress != 100 || j.Error != "" || !slices.Equal(j.keys, wantKeys) ||
		j.Result == nil || len(j.Result.Outputs) != 1 {
		t.Fatalf("job: %+v, want completed transcode at 100 %% with one output and keys %v", j, wantKeys)
	}
	out := j.Result.Outputs[0]
	if out.Template != "sd" || out.Format != "mp4" || out.Width != 640 || out.Height != 360 || out.Bitrate <= 0 || out.FileID == "" {
		t.Errorf("output %+v, want sd mp4 640x360", out)
	}
	pr := mediatest.Probe(t, out.VideoURL)
	if vc, w, h, _ := pr.Stream("video"); vc != "h264" || w != 640 || h != 360 {
		t.Errorf("rendition %s: %s %dx%d, want h264 640x360", out.VideoURL, vc, w, h)
	}
	if ac, _, _, _ := pr.Stream("audio"); ac != "aac" {
		t.Errorf("rendition audio %q, want aac", ac)
	}
	var entry catalog.Recording
	json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings/"+out.FileID, ""), &entry)
	if entry.Type != catalog.TypeRendition || entry.SourceFileID != src.FileID || entry.Template != "sd" ||
		entry.Width != 640 || entry.Height != 360 || entry.VideoURL != out.VideoURL {
		t.Errorf("rendition entry %+v, want type rendition of %s, template sd, 640x360", entry, src.FileID)
	}
	ev, ok := eventOf(rc, jobs.EventTranscodeDone, func(ev jobs.Event) bool { return ev.FileID == out.FileID })
	if !ok || ev.JobID != id || ev.ErrCode != 0 || ev.SourceFileID != src.FileID || ev.Template != "sd" || ev.Width != 640 || ev.VideoURL != out.VideoURL {
		t.Errorf("event 301: %+v (found %v), want job %s, sd of %s", ev, ok, id, src.FileID)
	}
	if n := rc.count(jobs.EventTranscodeDone); n != 1 {
		t.Errorf("%d events 301 for one job queued twice, want 1", n)
	}

	t.Run("requests refused", func(t *testing.T) {
		for body, want := range map[string]int{
			`{"file_id":"` + src.FileID + `","templates":["4k"],"format":"mp4"}`:  400,
			`{"file_id":"` + src.FileID + `","templates":["sd"],"format":"webm"}`: 400,
			`{"file_id":"` + src.FileID + `","templates":[]}`:                     400,
			`{"file_id":"nope","templates":["sd"],"format":"mp4"}`:                404,
			`{"file_id":"` + out.FileID + `","templates":["sd"]}`:                 400, // a rendition
		} {
			if code, b := postJSON(t, r.httpURL+"/api/v1/transcode", body); code != want {
				t.Errorf("POST %s: %d %s, want %d", body, code, b, want)
			}
		}
	})

	t.Run("ABR set", func(t *testing.T) {
		id := postTranscode(t, r.httpURL, fmt.Sprintf(`{"file_id":%q,"templates":["sd","hd"],"format":"hls"}`, src.FileID))
		j := waitJob(t, r.httpURL, id, 120*time.Second, jobs.JobCompleted, jobs.JobFailed)
		if j.State != jobs.JobCompleted || j.Result == nil || len(j.Result.Outputs) != 1 {
			t.Fatalf("ABR job: %+v", j)
		}
		set := j.Result.Outputs[0]
		if set.Template != jobs.ABRTemplate || set.Format != "hls" || len(set.Variants) != 2 || set.Width != 960 {
			t.Errorf("ABR output %+v, want template abr, hls, 2 variants, top 960 wide", set)
		}
		master := string(httpBody(t, set.VideoURL, ""))
		if strings.Count(master, "#EXT-X-STREAM-INF:") != 2 || !strings.Contains(master, "RESOLUTION=640x360") ||
			!strings.Contains(master, "RESOLUTION=960x540") || !strings.Contains(master, "CODECS=") {
			t.Errorf("master playlist %s:\n%s", set.VideoURL, master)
		}
		for _, v := range set.Variants {
			pr := mediatest.ProbeFrames(t, v.VideoURL)
			if vc, w, h, n := pr.Stream("video"); vc != "h264" || w != v.Width || h != v.Height || n < 100 {
				t.Errorf("variant %s %s: %s %dx%d %d frames, want h264 %dx%d, the 5 s pushed", v.Template, v.VideoURL, vc, w, h, n, v.Width, v.Height)
			}
		}
		if pr := mediatest.Probe(t, set.VideoURL); len(pr.Streams) == 0 {
			t.Errorf("master playlist does not probe")
		}
		var entry catalog.Recording
		json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings/"+set.FileID, ""), &entry)
		if entry.Type != catalog.TypeRendition || entry.Template != jobs.ABRTemplate || entry.Format != "hls" || entry.SourceFileID != src.FileID {
			t.Errorf("ABR entry %+v", entry)
		}
		var list struct {
			Jobs []jobAnswer `json:"jobs"`
		}
		json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/jobs?file_id="+src.FileID, ""), &list)
		var ids []string
		for _, j := range list.Jobs {
			ids = append(ids, j.JobID)
		}
		for _, want := range []string{id, j.JobID, jobs.PosterJobID(src.FileID), jobs.TranscodeJobID(src.FileID, "mp4", []string{"sd"})} {
			if !slices.Contains(ids, want) {
				t.Errorf("jobs of %s: %v, want %s among them", src.FileID, ids, want)
			}
		}
	})

	// A recording put in the catalog by hand, as an upload would.
	storeRecording := func(t *testing.T, fileID, path string) {
		t.Helper()
		rec := &catalog.Recording{FileID: fileID, App: "live", StreamID: "hand", Format: "mp4",
			StartTime: time.Now().UTC(), EndTime: time.Now().UTC(), Duration: 1}
		rec.Key = rec.KeyStem("") + ".mp4"
		obj, err := storage.PutFile(context.Background(), store, rec.Key, path, "video/mp4")
		if err != nil {
			t.Fatal(err)
		}
		rec.Size, rec.Objects, rec.VideoURL = obj.Size, []string{rec.Key}, r.httpURL+"/vod/"+rec.Key
		if err := cat.Put(context.Background(), rec); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("truncated MP4 fails once", func(t *testing.T) {
		srcPath := filepath.Join(cfg.DataDir, "store", filepath.FromSlash(srcEntry.Key))
		data, err := os.ReadFile(srcPath)
		if err != nil {
			t.Fatal(err)
		}
		cut := filepath.Join(t.TempDir(), "cut.mp4")
		os.WriteFile(cut, data[:len(data)/2], 0o644)
		storeRecording(t, "truncated1", cut)
		id := postTranscode(t, r.httpURL, `{"file_id":"truncated1","templates":["sd"],"format":"mp4"}`)
		j := waitJob(t, r.httpURL, id, 60*time.Second, jobs.JobFailed, jobs.JobCompleted)
		if j.State != jobs.JobFailed || !strings.Contains(j.Error, "bad input") || j.Result != nil {
			t.Errorf("job on a truncated MP4: %+v, want failed with the reason", j)
		}
		var fail jobs.Event
		mediatest.WaitFor(t, "event 301 errcode 1", 30*time.Second, func() bool {
			var ok bool
			fail, ok = eventOf(rc, jobs.EventTranscodeDone, func(ev jobs.Event) bool { return ev.JobID == id })
			return ok
		})
		if fail.ErrCode != 1 || !strings.Contains(fail.ErrMsg, "bad input") {
			t.Errorf("failure event %+v", fail)
		}
		attempts := 0
		for line := range strings.Lines(r.logs.String()) {
			if strings.Contains(line, "task failed") && strings.Contains(line, "task_id="+id) {
				attempts++
			}
		}
		if attempts != 1 || j.Error == "" {
			t.Errorf("%d failed attempts logged, want 1 (no retry)", attempts)
		}
	})

	t.Run("cancel a running job", func(t *testing.T) {
		// 30 s of 720p: long enough to be caught running on a busy machine.
		long := filepath.Join(t.TempDir(), "long.mp4")
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error",
			"-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=25", "-f", "lavfi", "-i", "sine=frequency=440",
			"-t", "30", "-c:v", "libx264", "-preset", "ultrafast", "-g", "50", "-c:a", "aac", "-movflags", "+faststart", long).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		storeRecording(t, "long1", long)
		id := postTranscode(t, r.httpURL, `{"file_id":"long1","templates":["sd","hd","uhd"],"format":"hls"}`)
		mediatest.WaitFor(t, "the job running with progress", 60*time.Second, func() bool {
			j := getJob(t, r.httpURL, id)
			if j.State == jobs.JobCompleted || j.State == jobs.JobFailed {
				t.Fatalf("job ended before it could be canceled: %+v", j)
			}
			return j.State == jobs.JobRunning && j.Progress > 0
		})
		req, _ := http.NewRequest(http.MethodDelete, r.httpURL+"/api/v1/jobs/"+id, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("DELETE: %s", resp.Status)
		}
		// The handler stopped: its failure event says canceled.
		mediatest.WaitFor(t, "the canceled job's event", 30*time.Second, func() bool {
			ev, ok := eventOf(rc, jobs.EventTranscodeDone, func(ev jobs.Event) bool { return ev.JobID == id })
			return ok && ev.ErrCode == 1 && ev.ErrMsg == "canceled"
		})
		if j := getJob(t, r.httpURL, id); j.State != jobs.JobCanceled || j.Result != nil {
			t.Errorf("job after DELETE: %+v, want canceled", j)
		}
		// livetape-transcoder was stopped, and what it had written removed.
		if pids := transcodertest.Processes(cfg.Transcode.Binary); len(pids) > 0 {
			t.Errorf("livetape-transcoder still running after the cancel: %v", pids)
		}
		if left, _ := filepath.Glob(filepath.Join(tmp, "livetape-transcode-*")); len(left) > 0 {
			t.Errorf("canceled job left %v", left)
		}
		rendition := jobs.RenditionFileID("long1", "hls", []string{"sd", "hd", "uhd"})
		if _, err := cat.Get(context.Background(), rendition); err == nil {
			t.Errorf("canceled job left %s in the catalog", rendition)
		}
		if code, _ := postJSON(t, r.httpURL+"/api/v1/jobs/"+id, ""); code != http.StatusMethodNotAllowed {
			t.Errorf("POST on a job: %d", code)
		}
	})
}

// A node without livetape-transcoder says so once at start, naming the setting; its
// poster and transcode jobs fail at once, for good, with that error (event 301
// errcode 1); recording, upload and callbacks go on, and stitching (pure Go) works.
func TestServeWithoutTranscoder(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redistest.Start(t).Addr()
	cfg.Transcode.Binary = filepath.Join(t.TempDir(), "livetape-transcoder")
	r := startServe(t, cfg)

	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/notc?record=mp4&transcode=sd", 3)
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	var src jobs.Event
	mediatest.WaitFor(t, "the recording", 30*time.Second, func() bool {
		var ok bool
		src, ok = eventOf(rc, jobs.EventRecordingReady, func(ev jobs.Event) bool { return ev.StreamID == "notc" })
		return ok
	})
	if n := strings.Count(r.logs.String(), "transcode and poster jobs will fail"); n != 1 || !strings.Contains(r.logs.String(), "LIVETAPE_TRANSCODER") {
		t.Errorf("%d start messages about the missing transcoder, want 1 naming LIVETAPE_TRANSCODER", n)
	}
	for _, id := range []string{jobs.PosterJobID(src.FileID), jobs.TranscodeJobID(src.FileID, "mp4", []string{"sd"})} {
		j := waitJob(t, r.httpURL, id, 30*time.Second, jobs.JobFailed, jobs.JobCompleted)
		if j.State != jobs.JobFailed || !strings.Contains(j.Error, "transcode.binary") || !strings.Contains(j.Error, "LIVETAPE_TRANSCODER") {
			t.Errorf("job %s: %+v, want failed naming transcode.binary and LIVETAPE_TRANSCODER", id, j)
		}
	}
	var fail jobs.Event
	mediatest.WaitFor(t, "event 301 errcode 1", 30*time.Second, func() bool {
		var ok bool
		fail, ok = eventOf(rc, jobs.EventTranscodeDone, func(ev jobs.Event) bool { return ev.SourceFileID == src.FileID })
		return ok
	})
	if fail.ErrCode != 1 || !strings.Contains(fail.ErrMsg, "LIVETAPE_TRANSCODER") {
		t.Errorf("event 301: %+v, want errcode 1 naming the setting", fail)
	}
	attempts := 0
	for line := range strings.Lines(r.logs.String()) {
		if strings.Contains(line, "task failed") && strings.Contains(line, "transcoder not found") {
			attempts++
		}
	}
	if attempts != 2 {
		t.Errorf("%d failed attempts logged, want 2 (the poster and the transcode, not retried)", attempts)
	}

	code, answer := postJSON(t, r.httpURL+"/api/v1/stitch", fmt.Sprintf(`{"file_ids":[%q]}`, src.FileID))
	var job struct {
		JobID string `json:"job_id"`
	}
	if err := json.Unmarshal(answer, &job); code != 202 || err != nil {
		t.Fatalf("POST /api/v1/stitch: %d %s", code, answer)
	}
	if j := waitJob(t, r.httpURL, job.JobID, 30*time.Second, jobs.JobCompleted, jobs.JobFailed); j.State != jobs.JobCompleted {
		t.Errorf("stitch without the transcoder: %+v, want completed", j)
	}
}
