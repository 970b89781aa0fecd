package main

import (
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/live/sign"
)

// rawReceiver keeps the bodies of the callbacks as they arrived.
type rawReceiver struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (rc *rawReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	rc.mu.Lock()
	defer rc.mu.Unlock()
	rc.bodies = append(rc.bodies, body)
}

func (rc *rawReceiver) events() (evs []jobs.Event, bodies [][]byte) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for _, b := range rc.bodies {
		var ev jobs.Event
		json.Unmarshal(b, &ev)
		evs = append(evs, ev)
	}
	return evs, append([][]byte(nil), rc.bodies...)
}

// A push signed with txSecret/txTime: the credentials are in no document livetape
// stores (spool manifest, catalog entry, event records) or serves (callbacks 1, 100
// and 0, API answers), while a custom parameter is kept; the catalog entry itself is
// not served by /vod/.
func TestPushCredentialsStayPrivate(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	rc := &rawReceiver{}
	cfg := defaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Jobs.CallbackURLs = []string{httptest.NewServer(rc).URL}
	cfg.Jobs.CallbackKey = callbackKey
	cfg.Live.PushKey = "push-key"
	r := startServe(t, cfg)

	creds := sign.Query(cfg.Live.PushKey, "sec", time.Now().Add(time.Hour))
	secret, txTime := creds.Get("txSecret"), creds.Get("txTime")
	const wantParam = "foo=bar&record=flv"
	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/sec?record=flv&foo=bar&"+creds.Encode(), 3)

	// While live: the spool manifest.
	var manifests []string
	mediatest.WaitFor(t, "a spool manifest", 20*time.Second, func() bool {
		manifests, _ = filepath.Glob(filepath.Join(cfg.DataDir, "spool", "live", "sec", "*", "*.json"))
		return len(manifests) > 0
	})
	for _, m := range manifests {
		b, err := os.ReadFile(m)
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			StreamParam string `json:"stream_param"`
		}
		if err := json.Unmarshal(b, &got); err != nil || got.StreamParam != wantParam {
			t.Errorf("spool manifest %s: stream_param %q (%v)", m, got.StreamParam, err)
		}
	}
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}

	// Callbacks 1, 100 and 0.
	mediatest.WaitFor(t, "callbacks 1, 100 and 0", 30*time.Second, func() bool {
		evs, _ := rc.events()
		return len(evs) == 3
	})
	evs, bodies := rc.events()
	var ready jobs.Event
	for i, ev := range evs {
		if ev.StreamParam != wantParam || bytes.Contains(bodies[i], []byte(secret)) || bytes.Contains(bodies[i], []byte(txTime)) {
			t.Errorf("callback %d: stream_param %q\n%s", ev.EventType, ev.StreamParam, bodies[i])
		}
		if ev.EventType == jobs.EventRecordingReady {
			ready = ev
		}
	}
	if ready.FileID == "" {
		t.Fatalf("no recording callback among %+v", evs)
	}

	// API answers: the recordings list, one recording, an event's record.
	for _, path := range []string{"/api/v1/recordings?stream_id=sec", "/api/v1/recordings/" + ready.FileID, "/api/v1/events/" + ready.EventID} {
		b := httpBody(t, r.httpURL+path, "")
		if !bytes.Contains(b, []byte(`"stream_param": "foo=bar\u0026record=flv"`)) || bytes.Contains(b, []byte(secret)) {
			t.Errorf("GET %s:\n%s", path, b)
		}
	}

	// The catalog entry is stored without them and is not served.
	catalogKey := strings.TrimSuffix(strings.TrimPrefix(ready.VideoURL, r.httpURL+"/vod/"), ".flv") + ".json"
	entry, err := os.ReadFile(filepath.Join(cfg.DataDir, "store", filepath.FromSlash(catalogKey)))
	if err != nil || !bytes.Contains(entry, []byte(`"stream_param": "foo=bar\u0026record=flv"`)) {
		t.Errorf("catalog entry %s: %v\n%s", catalogKey, err, entry)
	}
	resp, err := http.Get(r.httpURL + "/vod/" + catalogKey)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /vod/%s: %d, want 404", catalogKey, resp.StatusCode)
	}
	if b := httpBody(t, ready.VideoURL, "bytes=0-2"); string(b) != "FLV" {
		t.Errorf("the recording itself: %q", b)
	}

	// Nothing under the data dir holds the secret: spool, store, event records, queue.
	filepath.WalkDir(cfg.DataDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(secret)) {
			t.Errorf("%s holds the push txSecret", path)
		}
		return nil
	})
}
