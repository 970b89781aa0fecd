package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/live/sign"
)

// apiCall makes an API request to the rig (loopback: no key needed) and decodes a
// JSON answer into out when out is not nil. It returns the status code.
func apiCall(t *testing.T, method, url, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode/100 == 2 {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, url, err, b)
		}
	}
	return resp.StatusCode
}

func getStream(t *testing.T, r *pipelineRig, key string) (api.Stream, bool) {
	var s api.Stream
	code := apiCall(t, "GET", r.httpURL+"/api/v1/streams/"+key, "", &s)
	return s, code == http.StatusOK
}

// startViewer runs ffmpeg reading url (RTMP or HLS) until the test ends.
func startViewer(t *testing.T, url string) {
	cmd := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-i", url, "-c", "copy", "-f", "null", "-")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
}

// startFLVViewer reads an HTTP-FLV stream until the test ends.
func startFLVViewer(t *testing.T, url string) {
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(io.Discard, resp.Body)
	}()
	t.Cleanup(func() {
		resp.Body.Close()
		<-done
	})
}

func within(got, want, frac float64) bool { return got >= want*(1-frac) && got <= want*(1+frac) }

// Stats and /metrics while ffmpeg pushes 800 kbit/s CBR at 25 fps: the rates within
// 10 %, the viewer counts exact for 3 HTTP-FLV + 2 RTMP + 1 HLS viewers.
func TestStreamStatsAndMetrics(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	r := startServe(t, pipelineConfig(t, &receiver{t: t, hits: map[string]int{}}))
	mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/stats", 60,
		"-b:v", "800k", "-minrate", "800k", "-maxrate", "800k", "-bufsize", "800k", "-x264-params", "nal-hrd=cbr")
	mediatest.WaitFor(t, "the push to be live", 15*time.Second, func() bool { _, ok := getStream(t, r, "live/stats"); return ok })
	for range 3 {
		startFLVViewer(t, r.httpURL+"/live/stats.flv")
	}
	for range 2 {
		startViewer(t, "rtmp://"+r.rtmpAddr+"/live/stats")
	}
	startViewer(t, r.httpURL+"/live/stats.m3u8")

	want := map[string]int{"http-flv": 3, "rtmp": 2, "hls": 1, "total": 6}
	var s api.Stream
	mediatest.WaitFor(t, "7 s of media and every viewer counted", 40*time.Second, func() bool {
		var ok bool
		s, ok = getStream(t, r, "live/stats")
		if !ok || s.Video == nil || s.Audio == nil || s.Video.Frames < 7*25 {
			return false
		}
		for p, n := range want {
			if s.Viewers[p] != n {
				return false
			}
		}
		return true
	})
	b, _ := json.MarshalIndent(s, "", " ")
	t.Logf("stream:\n%s", b)
	if !within(s.Video.FPS, 25, 0.1) || !within(s.Video.Kbps, 800, 0.1) || !within(s.Audio.Kbps, 64, 0.1) {
		t.Errorf("fps %.2f (want 25), video %.1f kbps (want 800), audio %.1f kbps (want 64): not within 10 %%", s.Video.FPS, s.Video.Kbps, s.Audio.Kbps)
	}
	if s.Video.Codec != "avc1.42c00d" && !strings.HasPrefix(s.Video.Codec, "avc1.") || s.Video.Width != 320 || s.Video.Height != 240 {
		t.Errorf("video %s %dx%d, want avc1 320x240", s.Video.Codec, s.Video.Width, s.Video.Height)
	}
	if s.Video.KeyframeInterval != 1 || s.Audio.Codec != "mp4a.40.2" || s.Audio.SampleRate != 44100 {
		t.Errorf("keyframe interval %v s (want 1), audio %s %d Hz", s.Video.KeyframeInterval, s.Audio.Codec, s.Audio.SampleRate)
	}
	if !strings.Contains(s.Publisher.Software, "Lavf") || s.Publisher.ClientIP != "127.0.0.1" || s.NodeID != r.cfg.Jobs.NodeID {
		t.Errorf("publisher %+v node %q", s.Publisher, s.NodeID)
	}
	if s.BytesOut["http-flv"] == 0 || s.BytesOut["rtmp"] == 0 || s.BytesOut["hls"] == 0 {
		t.Errorf("bytes out %v: every protocol sent something", s.BytesOut)
	}
	var list struct {
		Streams []api.Stream `json:"streams"`
		Total   int          `json:"total"`
	}
	if apiCall(t, "GET", r.httpURL+"/api/v1/streams", "", &list); list.Total != 1 || list.Streams[0].StreamID != "stats" {
		t.Errorf("list: %+v", list)
	}

	m := scrape(t, r.httpURL+"/metrics")
	for _, c := range []struct {
		series    string
		want, tol float64
	}{
		{`livetape_stream_fps{app="live",stream="stats"}`, 25, 0.1},
		{`livetape_stream_ingress_kbps{app="live",stream="stats",track="video"}`, 800, 0.1},
		{`livetape_stream_viewers{app="live",protocol="http-flv",stream="stats"}`, 3, 0},
		{`livetape_stream_viewers{app="live",protocol="rtmp",stream="stats"}`, 2, 0},
		{`livetape_stream_viewers{app="live",protocol="hls",stream="stats"}`, 1, 0},
		{`livetape_connections{protocol="rtmp-publish"}`, 1, 0},
		{`livetape_connections{protocol="http-flv"}`, 3, 0},
	} {
		got, ok := m[c.series]
		if !ok || !within(got, c.want, c.tol) {
			t.Errorf("%s = %v (present %v), want %v", c.series, got, ok, c.want)
		}
	}
	for _, name := range []string{`livetape_queue_tasks{queue="callbacks",state="pending"}`, `livetape_callbacks_total{result="delivered"}`,
		`livetape_recordings_total{format="mp4"}`, `livetape_storage_upload_bytes_total`, `livetape_fragments_lost_total`} {
		if _, ok := m[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}
}

// scrape reads a Prometheus text exposition into series → value.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// DELETE drops the publisher (event 0, errcode 3 "kicked"); with ?ban= a new push of
// the same id is refused with the ban's reason.
func TestKickAndBan(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	r := startServe(t, pipelineConfig(t, rc))
	push := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/kickme", 60)
	mediatest.WaitFor(t, "the push to be live", 15*time.Second, func() bool { _, ok := getStream(t, r, "live/kickme"); return ok })
	if code := apiCall(t, "DELETE", r.httpURL+"/api/v1/streams/live/kickme?ban=60", "", nil); code != http.StatusNoContent {
		t.Fatalf("kick: %d", code)
	}
	push.Wait(t, 10*time.Second) // ffmpeg sees its connection closed
	mediatest.WaitFor(t, "push-end callback", 15*time.Second, func() bool { return rc.count(jobs.EventPushEnded) == 1 })
	for _, ev := range rc.snapshot() {
		if ev.EventType == jobs.EventPushEnded && (ev.ErrCode != 3 || ev.ErrMsg != "kicked") {
			t.Errorf("push end: errcode %d errmsg %q, want 3 kicked", ev.ErrCode, ev.ErrMsg)
		}
	}
	again := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/kickme", 5)
	if err := again.Wait(t, 15*time.Second); err == nil {
		t.Fatal("a push during the ban was accepted")
	}
	if !strings.Contains(again.Stderr.String(), "banned for 60 s") {
		t.Errorf("ffmpeg does not show the ban's reason:\n%s", again.Stderr)
	}
	if code := apiCall(t, "DELETE", r.httpURL+"/api/v1/streams/live/nosuch", "", nil); code != http.StatusNotFound {
		t.Errorf("kick of a stream not live: %d, want 404", code)
	}
}

// A live stream that was not recording is recorded from POST .../record until
// DELETE .../record: one fragment, as long as what was recorded.
func TestRecordStartStopByAPI(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	r := startServe(t, cfg)
	mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/rec", 60)
	mediatest.WaitFor(t, "the push to be live", 15*time.Second, func() bool { _, ok := getStream(t, r, "live/rec"); return ok })
	if code := apiCall(t, "DELETE", r.httpURL+"/api/v1/streams/live/rec/record", "", nil); code != http.StatusConflict {
		t.Errorf("stop while not recording: %d, want 409", code)
	}
	if code := apiCall(t, "POST", r.httpURL+"/api/v1/streams/live/rec/record", `{"formats":["mp4"],"interval":600}`, nil); code != http.StatusNoContent {
		t.Fatalf("start: %d", code)
	}
	if code := apiCall(t, "POST", r.httpURL+"/api/v1/streams/live/rec/record", `{"formats":"mp4"}`, nil); code != http.StatusConflict {
		t.Errorf("second start: %d, want 409", code)
	}
	var s api.Stream
	mediatest.WaitFor(t, "4 s recorded", 20*time.Second, func() bool {
		s, _ = getStream(t, r, "live/rec")
		return len(s.Recording) == 1 && s.Recording[0].Seconds >= 4
	})
	recorded := s.Recording[0].Seconds
	if code := apiCall(t, "DELETE", r.httpURL+"/api/v1/streams/live/rec/record", "", nil); code != http.StatusNoContent {
		t.Fatalf("stop: %d", code)
	}
	if s, _ = getStream(t, r, "live/rec"); len(s.Recording) != 0 {
		t.Errorf("still recording after stop: %+v", s.Recording)
	}
	mediatest.WaitFor(t, "the recording callback", 20*time.Second, func() bool { return rc.count(jobs.EventRecordingReady) == 1 })
	var ev jobs.Event
	for _, e := range rc.snapshot() {
		if e.EventType == jobs.EventRecordingReady {
			ev = e
		}
	}
	// What was recorded when stop was asked (the API rounds to 10 ms), plus what was
	// queued then (well under 1 s).
	if ev.Duration < recorded-0.01 || ev.Duration > recorded+1.5 {
		t.Errorf("fragment of %.2f s, %.2f s were recorded at the stop", ev.Duration, recorded)
	}
	p := mediatest.Probe(t, filepath.Join(cfg.DataDir, "store", filepath.FromSlash(ev.VideoID)))
	if d := p.Duration(); d < ev.Duration-0.1 || d > ev.Duration+0.1 {
		t.Errorf("ffprobe says %.3f s, the callback %.3f s", d, ev.Duration)
	}
	if ev.FileID == "" || !strings.HasSuffix(ev.FileID, "_0001_mp4") {
		t.Errorf("file id %q", ev.FileID)
	}
}

// on_publish: 403 refuses with its body as reason, a receiver slower than the timeout
// refuses, 200 accepts; it gets the push without its credentials.
func TestOnPublishHook(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	var mu sync.Mutex
	var asked []map[string]any
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var body map[string]any
		json.NewDecoder(req.Body).Decode(&body)
		mu.Lock()
		asked = append(asked, body)
		mu.Unlock()
		switch body["stream"] {
		case "denied":
			w.WriteHeader(http.StatusForbidden)
			io.WriteString(w, "no entry for denied\n"+strings.Repeat("x", 1000))
		case "slow":
			select {
			case <-time.After(3 * time.Second):
			case <-req.Context().Done():
			}
		}
	}))
	t.Cleanup(hook.Close)
	cfg := pipelineConfig(t, &receiver{t: t, hits: map[string]int{}})
	cfg.Live.PushKey = "pk"
	cfg.Live.OnPublish = hook.URL
	cfg.Live.OnPublishTimeout = 500 * time.Millisecond
	r := startServe(t, cfg)
	url := func(id string) string {
		return "rtmp://" + r.rtmpAddr + "/live/" + id + "?" + sign.Query("pk", id, time.Now().Add(time.Hour)).Encode() + "&custom=1"
	}
	for _, c := range []struct{ id, reason string }{
		{"denied", "refused by on_publish (403): no entry for denied"},
		{"slow", "on_publish did not answer within 500ms"},
	} {
		p := mediatest.Push(t, url(c.id), 5)
		if err := p.Wait(t, 15*time.Second); err == nil {
			t.Errorf("%s: push accepted", c.id)
		}
		if !strings.Contains(p.Stderr.String(), c.reason) {
			t.Errorf("%s: ffmpeg does not show %q:\n%s", c.id, c.reason, p.Stderr)
		}
		if strings.Contains(p.Stderr.String(), strings.Repeat("x", 181)) { // 20 bytes of text, then x
			t.Errorf("%s: the reason is not bounded to 200 bytes", c.id)
		}
	}
	mediatest.Push(t, url("welcome"), 30)
	mediatest.WaitFor(t, "the accepted push to be live", 15*time.Second, func() bool { _, ok := getStream(t, r, "live/welcome"); return ok })
	mu.Lock()
	defer mu.Unlock()
	last := asked[len(asked)-1]
	if last["app"] != "live" || last["stream"] != "welcome" || last["client_ip"] != "127.0.0.1" || last["params"] != "custom=1" || last["node_id"] != r.cfg.Jobs.NodeID {
		t.Errorf("hook request %v", last)
	}
	if regexp.MustCompile(`txSecret|txTime`).MatchString(fmt.Sprint(asked)) {
		t.Errorf("the hook got the push credentials: %v", asked)
	}
}
