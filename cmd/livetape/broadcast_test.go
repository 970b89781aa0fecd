package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage/catalog"
)

// Three pushes of one stream through a real serve, each starting within the reconnect
// window after the previous one ended, are one broadcast: every recording and callback
// carries its id, its entry lists the 3 pushes, it ends once the window after the last
// push passed (event 302), and with record_stitch=1 its MP4 recordings are stitched into
// one replay lasting their sum. Its HLS recording is one playlist, the pushes joined by
// two discontinuities, announced once (event 100) when the broadcast ended, lasting the
// same, and hls.js in Chromium plays it through. A push after a gap longer than the
// window starts a new broadcast.
func TestServeBroadcastAcrossReconnects(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	r := startServe(t, pipelineConfig(t, rc))
	// The window is a few seconds: ffmpeg starts well within it after the previous
	// push is gone, even on a busy machine.
	const window = 4
	pushURL := fmt.Sprintf("rtmp://%s/live/cam?record=mp4|hls&record_interval=2&record_reconnect_window=%d&record_stitch=1", r.rtmpAddr, window)
	gone := func() bool {
		resp, err := http.Get(r.httpURL + "/api/v1/streams/live/cam")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusNotFound
	}
	push := func(url string, secs float64) {
		t.Helper()
		p := mediatest.Push(t, url, secs)
		if err := p.Wait(t, 40*time.Second); err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
		}
		mediatest.WaitFor(t, "the push to be gone", 10*time.Second, gone)
	}
	for _, secs := range []float64{3, 2.5, 3} {
		push(pushURL, secs)
	}
	var ended jobs.Event
	mediatest.WaitFor(t, "event 302", 60*time.Second, func() bool {
		for _, ev := range rc.snapshot() {
			if ev.EventType == jobs.EventBroadcastEnded {
				ended = ev
				return true
			}
		}
		return false
	})
	id := ended.BroadcastID
	if id == "" || ended.Pushes != 3 || ended.StreamID != "cam" || ended.Duration < 8 || ended.Duration > 9.5 {
		t.Errorf("event 302: %+v, want a broadcast of 3 pushes lasting about 8.5 s", ended)
	}
	var stitched jobs.Event
	mediatest.WaitFor(t, "the broadcast stitched (event 300)", 60*time.Second, func() bool {
		for _, ev := range rc.snapshot() {
			if ev.EventType == jobs.EventStitchDone && ev.BroadcastID == id {
				stitched = ev
				return true
			}
		}
		return false
	})

	// Every callback names the broadcast; the recordings add up to the replay.
	var mp4s []string
	var sum float64
	for _, ev := range rc.snapshot() {
		switch ev.EventType {
		case jobs.EventPushStarted, jobs.EventPushEnded, jobs.EventRecordingReady, jobs.EventStitchDone:
			if ev.BroadcastID != id {
				t.Errorf("event %s: broadcast_id %q, want %q", ev.EventID, ev.BroadcastID, id)
			}
		}
		if ev.EventType == jobs.EventRecordingReady && ev.FileFormat == "mp4" {
			mp4s = append(mp4s, ev.FileID)
			sum += ev.Duration
		}
	}
	if n := rc.count(jobs.EventPushStarted); n != 3 || rc.count(jobs.EventPushEnded) != 3 {
		t.Errorf("%d push starts, %d push ends: want 3 of each", n, rc.count(jobs.EventPushEnded))
	}
	if stitched.ErrCode != 0 {
		t.Fatalf("stitch failed: %+v", stitched)
	}
	if d := mediatest.Probe(t, stitched.VideoURL).Duration(); d < sum-0.1 || d > sum+0.1 {
		t.Errorf("stitched replay %s: %.3f s, want the recordings' %.3f s", stitched.VideoURL, d, sum)
	}

	var list struct {
		Total      int `json:"total"`
		Recordings []struct {
			FileID      string  `json:"file_id"`
			Type        *string `json:"type"`
			BroadcastID *string `json:"broadcast_id"`
		} `json:"recordings"`
	}
	if err := json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings?stream_id=cam", ""), &list); err != nil {
		t.Fatal(err)
	}
	types := map[string]int{}
	for _, rec := range list.Recordings {
		if rec.Type == nil || rec.BroadcastID == nil || *rec.BroadcastID != id {
			t.Errorf("recording %s: type %v broadcast_id %v, want both, of %s", rec.FileID, rec.Type, rec.BroadcastID, id)
			continue
		}
		types[*rec.Type]++
	}
	if types["fragment"] != len(mp4s)+1 || types["broadcast"] != 1 {
		t.Errorf("recordings by type %v, want %d fragments (MP4s and the HLS playlist) and 1 broadcast", types, len(mp4s)+1)
	}

	// The HLS recording: event 100 once, for the whole broadcast.
	var hlsEvents []jobs.Event
	mediatest.WaitFor(t, "event 100 of the HLS recording", 60*time.Second, func() bool {
		hlsEvents = hlsEvents[:0]
		for _, ev := range rc.snapshot() {
			if ev.EventType == jobs.EventRecordingReady && ev.FileFormat == "hls" {
				hlsEvents = append(hlsEvents, ev)
			}
		}
		return len(hlsEvents) > 0
	})
	if len(hlsEvents) != 1 || hlsEvents[0].BroadcastID != id {
		t.Fatalf("HLS events 100: %+v, want one, of broadcast %s", hlsEvents, id)
	}
	playlist := string(httpBody(t, hlsEvents[0].VideoURL, ""))
	if n := strings.Count(playlist, "#EXT-X-DISCONTINUITY\n"); n != 2 || !strings.Contains(playlist, "#EXT-X-ENDLIST") {
		t.Errorf("HLS playlist with %d discontinuities (want 2) and ENDLIST %v:\n%s", n, strings.Contains(playlist, "#EXT-X-ENDLIST"), playlist)
	}
	if d := mediatest.Probe(t, hlsEvents[0].VideoURL).Duration(); d < sum-0.1 || d > sum+0.1 {
		t.Errorf("HLS recording %s: %.3f s, want the MP4 recordings' %.3f s", hlsEvents[0].VideoURL, d, sum)
	}
	playThroughInChromium(t, hlsEvents[0].VideoURL)

	var b catalog.Broadcast
	mediatest.WaitFor(t, "the replay named in the broadcast entry", 30*time.Second, func() bool {
		return json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/broadcasts/"+id, ""), &b) == nil && b.ReplayFileID == stitched.FileID
	})
	var pushes []string
	for _, p := range b.Pushes {
		pushes = append(pushes, p.PushID)
	}
	recs := slices.Clone(b.Recordings)
	slices.Sort(recs)
	slices.Sort(mp4s)
	if b.State != catalog.BroadcastEnded || len(pushes) != 3 || !slices.Equal(recs, mp4s) || b.StreamID != "cam" || b.App != "live" {
		t.Errorf("broadcast entry %+v: want ended, 3 pushes, recordings %v", b, mp4s)
	}

	// A gap longer than the window: the next push is a broadcast of its own.
	push(pushURL, 1.5)
	var page struct {
		Total      int                 `json:"total"`
		Broadcasts []catalog.Broadcast `json:"broadcasts"`
	}
	mediatest.WaitFor(t, "a second broadcast", 30*time.Second, func() bool {
		return json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/broadcasts?stream_id=cam", ""), &page) == nil && page.Total == 2
	})
	if page.Broadcasts[0].BroadcastID != id || page.Broadcasts[1].BroadcastID == id || len(page.Broadcasts[1].Pushes) != 1 {
		t.Errorf("broadcasts of cam: %+v", page.Broadcasts)
	}
}

// Two serve processes sharing a redis-server and a bucket: a push to node A, then its
// reconnect to node B, are one broadcast (the tracker's state is in the shared Redis);
// its entry lists both pushes and the recordings of both nodes, and its stitched replay
// joins them.
func TestTopologyBroadcastAcrossNodes(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc, hookURL := newHookReceiver(t, hookOK)
	tp := newTopology(t, hookURL)
	a := tp.startServe("node-a")
	b := tp.startServe("node-b")
	pkts := mediatest.ReadFLV(t, filepath.Join("..", "..", "testdata", "av.flv"))
	const stream = "live/bc?record=mp4&record_interval=2&record_reconnect_window=5&record_stitch=1"
	for _, n := range []*node{a, b} {
		pub := pushFixture(t, n, stream, pkts)
		if err := pub.Unpublish(); err != nil {
			t.Fatalf("unpublish: %v", err)
		}
		mediatest.WaitFor(t, "the push on "+n.id+" to be gone", 10*time.Second, func() bool {
			resp, err := http.Get(n.httpURL + "/api/v1/streams/live/bc")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusNotFound
		})
	}
	var ended, stitched jobs.Event
	mediatest.WaitFor(t, "event 302 and the broadcast's stitch (300)", 60*time.Second, func() bool {
		for _, ev := range rc.deliveredEvents() {
			switch ev.EventType {
			case jobs.EventBroadcastEnded:
				ended = ev
			case jobs.EventStitchDone:
				stitched = ev
			}
		}
		return ended.EventID != "" && stitched.EventID != ""
	})
	id := ended.BroadcastID
	if ended.Pushes != 2 || stitched.BroadcastID != id || stitched.ErrCode != 0 {
		t.Fatalf("event 302 %+v, event 300 %+v: want 2 pushes, the broadcast stitched", ended, stitched)
	}
	var sum float64
	nodes := map[string]bool{}
	for _, ev := range rc.deliveredEvents() {
		if ev.BroadcastID != id && ev.EventType != jobs.EventStitchDone {
			t.Errorf("event %s: broadcast_id %q, want %q", ev.EventID, ev.BroadcastID, id)
		}
		if ev.EventType == jobs.EventRecordingReady {
			sum += ev.Duration
		}
	}
	for _, rec := range b.recordings(t, "stream_id=bc&type=fragment").Recordings {
		nodes[rec["node_id"].(string)] = true
	}
	if !nodes["node-a"] || !nodes["node-b"] {
		t.Errorf("fragments recorded by %v, want node-a and node-b", nodes)
	}
	var entry catalog.Broadcast
	mediatest.WaitFor(t, "the replay in the broadcast entry (read on A)", 30*time.Second, func() bool {
		return json.Unmarshal(httpBody(t, a.httpURL+"/api/v1/broadcasts/"+id, ""), &entry) == nil && entry.ReplayFileID == stitched.FileID
	})
	if entry.State != catalog.BroadcastEnded || len(entry.Pushes) != 2 || len(entry.Recordings) != 4 {
		t.Errorf("broadcast entry %+v: want ended, 2 pushes, 4 recordings", entry)
	}
	if d := mediatest.Probe(t, stitched.VideoURL).Duration(); d < sum-0.1 || d > sum+0.1 {
		t.Errorf("stitched replay %.3f s, want the recordings' %.3f s", d, sum)
	}
}

// With Redis unreachable at publish, the push is not refused: it starts a broadcast of
// its own (named after itself), and the failure is logged.
func TestServeBroadcastWithoutRedis(t *testing.T) {
	redis := redistest.Start(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	cfg.Jobs.RedisAddr = redis.Addr()
	r := startServe(t, cfg)
	redis.Stop()
	pub := mediatest.PublishRTMP(t, "rtmp://"+r.rtmpAddr+"/live/noredis?record=flv")
	pkts := mediatest.ReadFLV(t, filepath.Join("..", "..", "testdata", "av.flv"))
	writePackets(t, pub, pkts[:40])
	mediatest.WaitFor(t, "the push accepted with a broadcast of its own", 20*time.Second, func() bool {
		logs := r.logs.String()
		return strings.Contains(logs, "broadcast tracker failed") && strings.Contains(logs, "msg=\"publish started\"") &&
			strings.Contains(logs, "broadcast_id=noredis_")
	})
	writePackets(t, pub, pkts[40:60])
	if err := pub.Err(); err != nil {
		t.Errorf("the publisher was dropped: %v", err)
	}
	redis.Restart() // for the shutdown's sake
	if err := pub.Unpublish(); err != nil {
		t.Fatal(err)
	}
}

// playThroughPage plays ?src= with the hls.js the console ships, 8 times as fast, and
// tells where playback is.
const playThroughPage = `<!doctype html>
<video id="v" muted playsinline></video>
<script type="module">
import Hls from '/console/vendor/hls-1.7.4.min.mjs';
const v = document.getElementById('v');
const hls = new Hls();
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) console.error('hls.js: ' + d.type + ' ' + d.details); });
hls.loadSource(new URLSearchParams(location.search).get('src'));
hls.attachMedia(v);
v.playbackRate = 8;
v.addEventListener('loadedmetadata', () => { v.playbackRate = 8; });
v.play();
window.progress = () => ({time: v.currentTime, duration: v.duration || 0, ended: v.ended});
</script>`

// playThroughInChromium plays a recorded HLS playlist in headless Chromium with hls.js
// until it ends: across discontinuities, to the last segment. The page and the console's
// hls.js are served beside a proxy of the playlist's server, so the playlist is
// same-origin.
func playThroughInChromium(t *testing.T, playlistURL string) {
	t.Helper()
	u, err := url.Parse(playlistURL)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/console/", api.NewConsole())
	mux.Handle("/vod/", httputil.NewSingleHostReverseProxy(&url.URL{Scheme: u.Scheme, Host: u.Host}))
	mux.HandleFunc("/play.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(playThroughPage))
	})
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	b := startChromium(t)
	b.run(t, "open the player", chromedp.Navigate(srv.URL+"/play.html?src="+url.QueryEscape(u.RequestURI())))
	var p struct {
		Time     float64 `json:"time"`
		Duration float64 `json:"duration"`
		Ended    bool    `json:"ended"`
	}
	mediatest.WaitFor(t, "hls.js to play the recording through", 60*time.Second, func() bool {
		return b.eval(`window.progress && window.progress()`, &p) && p.Duration > 0 && (p.Ended || p.Time >= p.Duration-0.3)
	})
	t.Logf("hls.js played %.2f of %.2f s (ended %v)", p.Time, p.Duration, p.Ended)
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the browser console has errors: %v", errs)
	}
}

// Without a reconnect window a broadcast ends with its push, while the recorder is
// still finalizing the push's last fragment: the automatic stitch waits for it (the
// push is noted as being recorded until its last fragment is handed on), so the replay
// holds every fragment.
func TestServeBroadcastStitchWithoutWindow(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc := &receiver{t: t, hits: map[string]int{}}
	r := startServe(t, pipelineConfig(t, rc))
	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/nowin?record=mp4&record_interval=2&record_reconnect_window=0&record_stitch=1", 5)
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	var stitched jobs.Event
	mediatest.WaitFor(t, "the broadcast stitched (event 300)", 60*time.Second, func() bool {
		ev, ok := eventOf(rc, jobs.EventStitchDone, func(jobs.Event) bool { return true })
		stitched = ev
		return ok
	})
	if stitched.ErrCode != 0 {
		t.Fatalf("stitch failed: %+v", stitched)
	}
	var sum float64
	n := 0
	for _, ev := range rc.snapshot() {
		if ev.EventType == jobs.EventRecordingReady && ev.FileFormat == "mp4" {
			sum += ev.Duration
			n++
		}
	}
	if n < 3 {
		t.Fatalf("%d MP4 recordings of a 5 s push cut every 2 s, want 3", n)
	}
	if d := mediatest.Probe(t, stitched.VideoURL).Duration(); d < sum-0.1 || d > sum+0.1 {
		t.Errorf("stitched replay %.3f s, want its %d recordings' %.3f s", d, n, sum)
	}
}
