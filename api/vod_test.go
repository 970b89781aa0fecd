package api

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/storage"
)

func TestVOD(t *testing.T) {
	store := storage.Local{Dir: t.TempDir()}
	data := bytes.Repeat([]byte("0123456789"), 1000)
	ctx := context.Background()
	if _, err := store.Put(ctx, "live/s/a.mp4", bytes.NewReader(data), int64(len(data)), "video/mp4"); err != nil {
		t.Fatal(err)
	}
	// The catalog entry beside a recording holds its push parameters: not for players.
	entry := []byte(`{"file_id":"a","stream_param":"record=mp4"}`)
	for _, key := range []string{"live/s/a.json", "live/s/notes.txt"} {
		if _, err := store.Put(ctx, key, bytes.NewReader(entry), int64(len(entry)), ""); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(&VOD{Store: store})
	defer srv.Close()

	get := func(method, key, rng string, hdr ...string) (*http.Response, []byte) {
		req, _ := http.NewRequest(method, srv.URL+"/vod/"+key, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, b
	}

	resp, body := get("GET", "live/s/a.mp4", "")
	if resp.StatusCode != 200 || !bytes.Equal(body, data) || resp.Header.Get("Content-Type") != "video/mp4" ||
		resp.Header.Get("ETag") == "" || resp.Header.Get("Last-Modified") == "" {
		t.Fatalf("full GET: %d %v", resp.StatusCode, resp.Header)
	}
	etag := resp.Header.Get("ETag")
	for _, tc := range []struct {
		rng          string
		from, to     int
		contentRange string
	}{
		{"bytes=100-199", 100, 200, "bytes 100-199/10000"},
		{"bytes=9990-", 9990, 10000, "bytes 9990-9999/10000"},
		{"bytes=-5", 9995, 10000, "bytes 9995-9999/10000"},
		{"bytes=9000-20000", 9000, 10000, "bytes 9000-9999/10000"},
		// RFC 9110 14.1.2: a last-byte-pos past the end, however large, is clamped.
		{"bytes=0-99999999999999999999", 0, 10000, "bytes 0-9999/10000"},
		{"bytes=-99999999999999999999", 0, 10000, "bytes 0-9999/10000"},
	} {
		resp, body := get("GET", "live/s/a.mp4", tc.rng)
		if resp.StatusCode != 206 || !bytes.Equal(body, data[tc.from:tc.to]) || resp.Header.Get("Content-Range") != tc.contentRange {
			t.Errorf("%s: %d %q, %d bytes", tc.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body))
		}
	}
	for _, rng := range []string{"bytes=20000-", "bytes=10000-10005", "bytes=99999999999999999999-", "bytes=-0", "bytes=5-2", "bytes=+1-5"} {
		if resp, _ := get("GET", "live/s/a.mp4", rng); resp.StatusCode != 416 || resp.Header.Get("Content-Range") != "bytes */10000" {
			t.Errorf("%s: %d %q, want 416", rng, resp.StatusCode, resp.Header.Get("Content-Range"))
		}
	}
	// If-Range: the range applies only to the version the client has; a
	// validator of another version (or a weak one) gets the whole object.
	lastModified := resp.Header.Get("Last-Modified")
	for _, tc := range []struct {
		validator string
		want      int
	}{
		{etag, 206},
		{lastModified, 206},
		{`"0123abcd"`, 200},
		{"W/" + etag, 200},
		{"Mon, 02 Jan 2006 15:04:05 GMT", 200},
		{"not a validator", 200},
	} {
		resp, body := get("GET", "live/s/a.mp4", "bytes=100-199", "If-Range", tc.validator)
		wantBody := data
		if tc.want == 206 {
			wantBody = data[100:200]
		}
		if resp.StatusCode != tc.want || !bytes.Equal(body, wantBody) {
			t.Errorf("If-Range %s: %d with %d bytes, want %d", tc.validator, resp.StatusCode, len(body), tc.want)
		}
	}
	if resp, body := get("HEAD", "live/s/a.mp4", ""); resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 10000 {
		t.Errorf("HEAD: %d len %d", resp.StatusCode, resp.ContentLength)
	}
	if resp, _ := get("GET", "live/s/a.mp4", "", "If-None-Match", etag); resp.StatusCode != 304 {
		t.Errorf("If-None-Match: %d", resp.StatusCode)
	}
	for _, key := range []string{"live/s/a.json", "live/s/notes.txt"} {
		for _, method := range []string{"GET", "HEAD"} {
			if resp, body := get(method, key, ""); resp.StatusCode != 404 || bytes.Contains(body, []byte("stream_param")) {
				t.Errorf("%s %s: %d %q, want 404: /vod/ serves media only", method, key, resp.StatusCode, body)
			}
		}
	}
	if resp, _ := get("GET", "live/s/none.mp4", ""); resp.StatusCode != 404 {
		t.Errorf("missing: %d", resp.StatusCode)
	}
	if resp, _ := get("GET", "live/../etc/passwd", ""); resp.StatusCode != 400 && resp.StatusCode != 404 {
		t.Errorf("traversal: %d", resp.StatusCode)
	}
}

// With vod.redirect presigned, players are sent to the bucket.
func TestVODPresignedRedirect(t *testing.T) {
	s3 := s3test.Start(t)
	store, err := storage.NewS3(context.Background(), storage.S3Config{Endpoint: s3.Endpoint, Region: s3.Region,
		Bucket: s3.Bucket, AccessKey: s3.AccessKey, SecretKey: s3.SecretKey, PathStyle: true})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("x"), 5000)
	if _, err := store.Put(context.Background(), "live/s/a.flv", bytes.NewReader(data), int64(len(data)), ""); err != nil {
		t.Fatal(err)
	}
	entry := []byte(`{"stream_param":"record=mp4"}`)
	if _, err := store.Put(context.Background(), "live/s/a.json", bytes.NewReader(entry), int64(len(entry)), ""); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(&VOD{Store: store, Presigned: true})
	defer srv.Close()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// No presigned URL for a catalog entry either.
	resp, err := noFollow.Get(srv.URL + "/vod/live/s/a.json")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("catalog entry: %d to %q, want 404", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, err = noFollow.Get(srv.URL + "/vod/live/s/a.flv")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(loc, s3.Endpoint) {
		t.Fatalf("%d to %q, want 302 to the bucket", resp.StatusCode, loc)
	}
	req, _ := http.NewRequest(http.MethodGet, loc, nil)
	req.Header.Set("Range", "bytes=10-19")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusPartialContent || len(got) != 10 {
		t.Errorf("presigned GET with Range: %d, %d bytes", resp.StatusCode, len(got))
	}
}
