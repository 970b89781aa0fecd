package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage"
)

// catalog stores n recordings of stream s (and one of stream t) as the uploader does.
func catalog(t *testing.T, store storage.Store, n int) []*jobs.Recording {
	t.Helper()
	var out []*jobs.Recording
	put := func(stream string, i int, format string) {
		r := &jobs.Recording{FileID: fmt.Sprintf("%s_p_%04d_%s", stream, i, format), App: "live", StreamID: stream,
			Seq: i, Format: format, StartTime: time.Unix(1_800_000_000+int64(i)*60, 0).UTC()}
		r.Key = "live/" + stream + "/" + r.FileID + "." + format
		r.Objects = []string{r.Key}
		ctx := context.Background()
		store.Put(ctx, r.Key, bytes.NewReader([]byte("media")), 5, "")
		b, _ := json.Marshal(r)
		if _, err := store.Put(ctx, jobs.ManifestKey(r), bytes.NewReader(b), int64(len(b)), "application/json"); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	for i := 1; i <= n; i++ {
		put("s", i, []string{"mp4", "flv"}[i%2])
	}
	put("t", 1, "mp4")
	return out
}

func TestRecordingsAPI(t *testing.T) {
	store := storage.Local{Dir: t.TempDir()}
	recs := catalog(t, store, 5)
	srv := httptest.NewServer(NewHandler(Config{Store: store, Key: "api-key"}))
	defer srv.Close()
	call := func(method, path, key string) (int, []byte) {
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		if key != "" {
			req.Header.Set("Authorization", "Bearer "+key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	if code, _ := call("GET", "/api/v1/recordings", ""); code != 401 {
		t.Errorf("no key: %d", code)
	}
	if code, _ := call("GET", "/api/v1/recordings", "wrong"); code != 401 {
		t.Errorf("wrong key: %d", code)
	}
	var page struct {
		Total      int               `json:"total"`
		Recordings []*jobs.Recording `json:"recordings"`
	}
	list := func(q string) {
		t.Helper()
		code, b := call("GET", "/api/v1/recordings"+q, "api-key")
		page.Recordings = nil
		if code != 200 || json.Unmarshal(b, &page) != nil {
			t.Fatalf("list %s: %d %s", q, code, b)
		}
	}
	list("?stream_id=s")
	if page.Total != 5 || page.Recordings[0].Seq != 1 {
		t.Errorf("stream s: total %d", page.Total)
	}
	list("?stream_id=s&format=mp4")
	if page.Total != 2 {
		t.Errorf("mp4 of s: %d", page.Total)
	}
	list(fmt.Sprintf("?from=%d&to=%d", 1_800_000_120, 1_800_000_240))
	if page.Total != 3 { // s2 (+120), s3 (+180), s4 (+240); t1 (+60) is before
		t.Errorf("time window: %d", page.Total)
	}
	list("?stream_id=s&page=2&page_size=2")
	if page.Total != 5 || len(page.Recordings) != 2 || page.Recordings[0].Seq != 3 {
		t.Errorf("page 2: %d recordings", len(page.Recordings))
	}
	if code, _ := call("GET", "/api/v1/recordings?page=0", "api-key"); code != 400 {
		t.Errorf("bad page: %d", code)
	}
	code, b := call("GET", "/api/v1/recordings/"+recs[2].FileID, "api-key")
	if code != 200 || !bytes.Contains(b, []byte(recs[2].Key)) {
		t.Errorf("get: %d %s", code, b)
	}
	if code, _ := call("DELETE", "/api/v1/recordings/"+recs[2].FileID, "api-key"); code != 204 {
		t.Errorf("delete: %d", code)
	}
	if _, err := store.Stat(context.Background(), recs[2].Key); err == nil {
		t.Error("media still stored after delete")
	}
	if code, _ := call("GET", "/api/v1/recordings/"+recs[2].FileID, "api-key"); code != 404 {
		t.Errorf("get after delete: %d", code)
	}
}
