package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// newCatalog is a catalog of a local store, indexed in a miniredis (the embedded
// queue's Redis), built.
func newCatalog(t *testing.T) (*catalog.Catalog, storage.Store) {
	t.Helper()
	store := storage.Local{Dir: t.TempDir()}
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	c, err := catalog.New(catalog.Config{Store: store, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.EnsureIndex(context.Background()); err != nil {
		t.Fatal(err)
	}
	return c, store
}

// stored stores n recordings of stream s (and one of stream t) as the uploader does.
func stored(t *testing.T, c *catalog.Catalog, store storage.Store, n int) []*catalog.Recording {
	t.Helper()
	var out []*catalog.Recording
	put := func(stream string, i int, format string) {
		r := &catalog.Recording{FileID: fmt.Sprintf("%s_p_%04d_%s", stream, i, format), App: "live", StreamID: stream,
			Seq: i, Format: format, StartTime: time.Unix(1_800_000_000+int64(i)*60, 0).UTC()}
		r.Key = "live/" + stream + "/" + r.FileID + "." + format
		r.Objects = []string{r.Key}
		ctx := context.Background()
		store.Put(ctx, r.Key, bytes.NewReader([]byte("media")), 5, "")
		if err := c.Put(ctx, r); err != nil {
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
	c, store := newCatalog(t)
	recs := stored(t, c, store, 5)
	srv := httptest.NewServer(NewHandler(Config{Catalog: c, Key: "api-key"}))
	defer srv.Close()
	call := func(method, path, key string) (int, []byte) {
		return callAuth(t, method, srv.URL+path, "Bearer "+key)
	}
	for _, auth := range []string{"", "api-key", "Basic api-key", "Bearer", "Bearer ", "Bearer  api-key", "Bearerapi-key", "Bearer wrong"} {
		if code, _ := callAuth(t, "GET", srv.URL+"/api/v1/recordings", auth); code != 401 {
			t.Errorf("Authorization %q: %d, want 401", auth, code)
		}
	}
	if code, _ := callAuth(t, "GET", srv.URL+"/api/v1/recordings", "bearer api-key"); code != 200 {
		t.Errorf("scheme in lower case (RFC 9110 11.1: case-insensitive): %d", code)
	}
	var page struct {
		Total      int                  `json:"total"`
		Recordings []*catalog.Recording `json:"recordings"`
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
	for _, r := range page.Recordings {
		if r.Type != catalog.TypeFragment {
			t.Errorf("%s answered with type %q, want fragment", r.FileID, r.Type)
		}
	}
	list("?stream_id=s&type=fragment")
	if page.Total != 5 {
		t.Errorf("fragments of s: %d", page.Total)
	}
	list("?type=broadcast")
	if page.Total != 0 || page.Recordings == nil {
		t.Errorf("broadcasts: %d, recordings %v (want an empty list)", page.Total, page.Recordings)
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

// callAuth makes a request with an Authorization header (none when auth is empty).
func callAuth(t *testing.T, method, url, auth string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, url, nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// Without a key the API answers loopback clients only, judged by the TCP peer address.
func TestAPIWithoutKeyLoopbackOnly(t *testing.T) {
	c, store := newCatalog(t)
	stored(t, c, store, 2)
	var logs bytes.Buffer
	h := NewHandler(Config{Catalog: c, Log: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "loopback clients only") {
		t.Errorf("startup log does not say the API is loopback-only:\n%s", logs.String())
	}

	// A real request over 127.0.0.1.
	srv := httptest.NewServer(h)
	defer srv.Close()
	if code, b := callAuth(t, "GET", srv.URL+"/api/v1/recordings", ""); code != 200 || !bytes.Contains(b, []byte(`"total": 3`)) {
		t.Errorf("loopback client: %d %s", code, b)
	}

	// Other peers: the handler sees the address the TCP connection came from.
	for _, tc := range []struct {
		remote, forwardedFor string
		want                 int
	}{
		{"127.0.0.1:40000", "", 200},
		{"127.3.4.5:40000", "", 200},
		{"[::1]:40000", "", 200},
		{"[::ffff:127.0.0.1]:40000", "", 200},
		{"203.0.113.7:40000", "", 403},
		{"203.0.113.7:40000", "127.0.0.1", 403}, // a header is no proof
		{"10.0.0.2:40000", "", 403},
		{"[2001:db8::1]:40000", "", 403},
		{"[::ffff:203.0.113.7]:40000", "", 403},
		{"garbage", "", 403},
	} {
		for _, method := range []string{"GET", "DELETE"} {
			req := httptest.NewRequest(method, "/api/v1/recordings", nil)
			if method == "DELETE" {
				req = httptest.NewRequest(method, "/api/v1/recordings/s_p_0001_flv", nil)
			}
			req.RemoteAddr = tc.remote
			if tc.forwardedFor != "" {
				req.Header.Set("X-Forwarded-For", tc.forwardedFor)
			}
			w := httptest.NewRecorder()
			logs.Reset()
			h.ServeHTTP(w, req)
			want := tc.want
			if method == "DELETE" && want == 200 {
				want = 204
				stored(t, c, store, 2) // put it back for the next peer
			}
			if w.Code != want {
				t.Errorf("%s from %s (X-Forwarded-For %q): %d, want %d", method, tc.remote, tc.forwardedFor, w.Code, want)
			}
			if want == 403 && (!strings.Contains(w.Body.String(), "loopback") || !strings.Contains(w.Body.String(), "LIVETAPE_API_KEY") ||
				!strings.Contains(logs.String(), tc.remote)) {
				t.Errorf("refusal of %s: body %s, log %s", tc.remote, w.Body, logs.String())
			}
		}
	}
}
