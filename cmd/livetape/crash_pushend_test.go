package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage/catalog"
)

// A push live when livetape is killed gets its push-end event (0) after the restart,
// with errcode 4 "server crashed", exactly once: a second restart does not send it again.
func TestPushEndAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	rc := &receiver{t: t, hits: map[string]int{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	httpAddr := freePort(t)
	env := []string{"LIVETAPE_CALLBACK_URL=" + hook.URL, "LIVETAPE_CALLBACK_KEY=" + callbackKey, "LIVETAPE_HTTP_ADDR=" + httpAddr}
	bin := buildLivetape(t)
	data := t.TempDir()
	cmd, rtmpAddr := startLivetape(t, bin, data, &mediatest.SyncBuffer{}, env...)

	pub := mediatest.PublishRTMP(t, "rtmp://"+rtmpAddr+"/live/killed?record=flv&custom=1")
	for _, p := range mediatest.ReadFLV(t, "../../testdata/av.flv")[:20] {
		if err := pub.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	mediatest.WaitFor(t, "the push-start event", 20*time.Second, func() bool { return rc.count(jobs.EventPushStarted) == 1 })
	var live struct {
		Broadcasts []catalog.Broadcast `json:"broadcasts"`
	}
	mediatest.WaitFor(t, "the live broadcast in the catalog", 20*time.Second, func() bool {
		return json.Unmarshal(httpBody(t, "http://"+httpAddr+"/api/v1/broadcasts?stream_id=killed", ""), &live) == nil &&
			len(live.Broadcasts) == 1 && live.Broadcasts[0].State == catalog.BroadcastLive
	})
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if n := rc.count(jobs.EventPushEnded); n != 0 {
		t.Fatalf("%d push-end events before the restart", n)
	}

	restart := func() (*mediatest.SyncBuffer, func()) {
		logs := &mediatest.SyncBuffer{}
		cmd, _ := startLivetape(t, bin, data, logs, env...)
		// /healthz answers once the start-up (and what it queues) is done.
		mediatest.WaitFor(t, "livetape to serve HTTP", 20*time.Second, func() bool {
			resp, err := http.Get("http://" + httpAddr + "/healthz")
			if err == nil {
				resp.Body.Close()
			}
			return err == nil && resp.StatusCode == http.StatusOK
		})
		return logs, func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }
	}
	logs, kill := restart()
	mediatest.WaitFor(t, "the push-end event after the restart", 30*time.Second, func() bool { return rc.count(jobs.EventPushEnded) == 1 })
	var start, end jobs.Event
	for _, ev := range rc.snapshot() {
		switch ev.EventType {
		case jobs.EventPushStarted:
			start = ev
		case jobs.EventPushEnded:
			end = ev
		}
	}
	if end.ErrCode != int(jobs.PushEndServerCrashed) || end.ErrMsg != "server crashed" || end.StreamID != "killed" ||
		end.EventID != jobs.EventID(jobs.EventPushEnded, strings.TrimPrefix(start.EventID, "1-")) ||
		!strings.Contains(end.StreamParam, "custom=1") {
		t.Errorf("push end %+v after push start %+v", end, start)
	}
	mediatest.WaitFor(t, "the push end logged", 10*time.Second, func() bool { return strings.Contains(logs.String(), "push ended by a crash") })
	// Its broadcast, whose state the embedded Redis lost, is ended from its entry.
	bid := live.Broadcasts[0].BroadcastID
	mediatest.WaitFor(t, "event 302 of the killed push's broadcast", 30*time.Second, func() bool {
		return rc.count(jobs.EventBroadcastEnded) == 1
	})
	var ended catalog.Broadcast
	if err := json.Unmarshal(httpBody(t, "http://"+httpAddr+"/api/v1/broadcasts/"+bid, ""), &ended); err != nil ||
		ended.State != catalog.BroadcastEnded || end.BroadcastID != bid || start.BroadcastID != bid {
		t.Errorf("broadcast %s after the restart: %+v (%v); push events name %q and %q", bid, ended, err, start.BroadcastID, end.BroadcastID)
	}
	// Queued, the push is forgotten: the next start has nothing to send.
	if left, _ := os.ReadDir(filepath.Join(data, "live-pushes")); len(left) != 0 {
		t.Errorf("pushes still remembered after their end was queued: %v", left)
	}

	// Another kill and restart: nothing is left to report. The receiver counts a POST when
	// it arrives; livetape records the delivery a moment later, and a kill in between
	// would rightly send it again (at least once): wait for the record.
	mediatest.WaitFor(t, "the push end recorded as delivered", 10*time.Second, func() bool {
		var rec jobs.EventRecord
		return json.Unmarshal(httpBody(t, "http://"+httpAddr+"/api/v1/events/"+end.EventID, ""), &rec) == nil &&
			rec.State == jobs.StateDelivered
	})
	kill()
	logs, _ = restart()
	if strings.Contains(logs.String(), "broadcast ended at start") {
		t.Errorf("the broadcast is ended again after a second restart:\n%s", logs)
	}
	if strings.Contains(logs.String(), "push ended by a crash") {
		t.Errorf("the push end is sent again after a second restart:\n%s", logs)
	}
	if n := rc.count(jobs.EventPushEnded); n != 1 {
		t.Errorf("%d push-end events, want 1", n)
	}
	if n := rc.count(jobs.EventBroadcastEnded); n != 1 {
		t.Errorf("%d broadcast-end events, want 1", n)
	}
}
