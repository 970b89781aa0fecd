package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/mp4test"
	"github.com/livetape/livetape/internal/s3test"
	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// recordMP4 is testdata/av.flv recorded repeat times in a row: 4 s each, a keyframe
// every second.
func recordMP4(t *testing.T, repeat int) []byte {
	return mp4test.Record(t, filepath.Join("..", "testdata", "av.flv"), repeat, 4*time.Second)
}

// countingStore is a real store that counts the ranged reads opened on it.
type countingStore struct {
	storage.Store
	opens atomic.Int64
}

func (s *countingStore) Open(ctx context.Context, key string, offset, length int64) (io.ReadCloser, storage.Object, error) {
	s.opens.Add(1)
	return s.Store.Open(ctx, key, offset, length)
}

// clipRig is a catalog of three 8-second MP4 fragments of live/cam, stored as the
// uploader leaves them: at t0, t0+8 s (right after the first) and t0+20 s (after a gap
// of 4 s), and one of another stream.
type clipRig struct {
	t0    time.Time
	store *countingStore
	srv   *httptest.Server
	vod   string // URL of the clip of live/cam
	// put stores and catalogs an MP4 fragment of stream, as the uploader does.
	put func(stream string, seq int, start time.Time, mp4 []byte)
}

func newClipRig(t *testing.T, store storage.Store, playKey string) *clipRig {
	t.Helper()
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	t.Cleanup(func() { rdb.Close() })
	cat, err := catalog.New(catalog.Config{Store: store, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := cat.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	put := func(stream string, seq int, start time.Time, mp4 []byte) {
		rec := &catalog.Recording{FileID: fmt.Sprintf("%s_p_%04d_mp4", stream, seq), App: "live", StreamID: stream,
			PushID: "p", Seq: seq, Format: "mp4", StartTime: start, EndTime: start.Add(8 * time.Second), Duration: 8,
			Size: int64(len(mp4)), StoredAt: start.Add(10 * time.Second)}
		rec.Key = rec.KeyStem("") + ".mp4"
		rec.Objects = []string{rec.Key}
		if _, err := store.Put(ctx, rec.Key, bytes.NewReader(mp4), int64(len(mp4)), "video/mp4"); err != nil {
			t.Fatal(err)
		}
		if err := cat.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	mp4 := recordMP4(t, 2)
	put("cam", 1, t0, mp4)
	put("cam", 2, t0.Add(8*time.Second), mp4)
	put("cam", 3, t0.Add(20*time.Second), mp4)
	put("other", 1, t0, mp4)

	cs := &countingStore{Store: store}
	vod := &VOD{Store: store}
	mux := http.NewServeMux()
	mux.Handle("/vod/clip/", &Clip{Catalog: cat, Store: cs, PlayKey: playKey, Next: vod})
	mux.Handle("/vod/", vod)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return &clipRig{t0: t0, store: cs, srv: srv, vod: srv.URL + "/vod/clip/live/cam.mp4", put: put}
}

// clipURL is the clip of live/cam between t0+from and t0+to.
func (r *clipRig) clipURL(from, to time.Duration, extra string) string {
	return r.vod + "?start=" + url.QueryEscape(r.t0.Add(from).Format(time.RFC3339Nano)) +
		"&end=" + url.QueryEscape(r.t0.Add(to).Format(time.RFC3339Nano)) + extra
}

func get(t *testing.T, u string, header ...string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// probePackets lists the packets of a file (first stream of kind "v" or "a"), in
// decode order.
func probePackets(t *testing.T, path, kind string) []struct{ PTS, DTS, Flags string } {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-of", "json", "-select_streams", kind,
		"-show_entries", "packet=pts_time,dts_time,flags", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var r struct {
		Packets []struct {
			PTS   string `json:"pts_time"`
			DTS   string `json:"dts_time"`
			Flags string `json:"flags"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	var pk []struct{ PTS, DTS, Flags string }
	for _, p := range r.Packets {
		pk = append(pk, struct{ PTS, DTS, Flags string }{p.PTS, p.DTS, p.Flags})
	}
	return pk
}

func seconds(s string) float64 { f, _ := strconv.ParseFloat(s, 64); return f }

// A clip across two fragments, served from Local and from S3: one MP4 that starts on
// the keyframe at or before start, lasts the window within one GOP, timestamps from 0;
// Range requests give exactly those bytes; a sequential GET costs two ranged reads per
// recording (its moov, then its media), not one per 32 KiB.
func TestClipEndpoint(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	for _, backend := range []struct {
		name string
		open func(t *testing.T) storage.Store
	}{
		{"local", func(t *testing.T) storage.Store { return storage.Local{Dir: t.TempDir()} }},
		{"s3", func(t *testing.T) storage.Store {
			srv := s3test.Start(t)
			st, err := storage.NewS3(t.Context(), storage.S3Config{Endpoint: srv.Endpoint, Region: srv.Region,
				Bucket: srv.Bucket, AccessKey: srv.AccessKey, SecretKey: srv.SecretKey, PathStyle: true})
			if err != nil {
				t.Fatal(err)
			}
			return st
		}},
	} {
		t.Run(backend.name, func(t *testing.T) {
			t.Parallel()
			r := newClipRig(t, backend.open(t), "")
			const gop = 1.0 // av.flv: a keyframe every second
			from, to := 5500*time.Millisecond, 13200*time.Millisecond
			before := r.store.opens.Load()
			resp, full := get(t, r.clipURL(from, to, ""))
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "video/mp4" || resp.Header.Get("Accept-Ranges") != "bytes" {
				t.Fatalf("GET: %d %v\n%s", resp.StatusCode, resp.Header, full)
			}
			if n := r.store.opens.Load() - before; n > 4 {
				t.Errorf("a GET of a clip of 2 recordings opened %d ranged reads, want at most 4", n)
			}
			if cl := resp.Header.Get("Content-Length"); cl != strconv.Itoa(len(full)) {
				t.Errorf("Content-Length %s, body %d bytes", cl, len(full))
			}
			path := filepath.Join(t.TempDir(), "clip.mp4")
			if err := os.WriteFile(path, full, 0o644); err != nil {
				t.Fatal(err)
			}
			window := (to - from).Seconds()
			if d := mediatest.ProbeFrames(t, path).Duration(); d < window-0.05 || d > window+gop+0.05 {
				t.Errorf("clip duration %.3f s, want within one GOP of the window %.3f s", d, window)
			}
			video, audio := probePackets(t, path, "v"), probePackets(t, path, "a")
			if len(video) == 0 || len(audio) == 0 || !strings.Contains(video[0].Flags, "K") || seconds(video[0].DTS) != 0 {
				t.Fatalf("first video packet %+v, want a keyframe at dts 0", video[:min(1, len(video))])
			}
			if first := min(seconds(video[0].PTS), seconds(audio[0].PTS)); first < 0 || first > 0.1 {
				t.Errorf("first pts %.3f s, want from 0 (within the B-frame delay)", first)
			}
			// 5.5 s is in the first fragment: the clip opens at its keyframe at 5 s and
			// holds 8.2 s of 25 fps video, across the two fragments.
			if want := int((to - 5*time.Second).Seconds() * 25); len(video) < want-1 || len(video) > want+1 {
				t.Errorf("%d video frames, want %d (5 s to 13.2 s at 25 fps)", len(video), want)
			}

			// Range requests: exactly those bytes, with the whole size in Content-Range;
			// If-Range with the clip's ETag keeps the range, another ETag gets it all.
			size := len(full)
			etag := resp.Header.Get("ETag")
			for _, c := range []struct {
				rng        string
				start, end int
			}{
				{"bytes=0-99", 0, 99},
				{fmt.Sprintf("bytes=%d-%d", size/3, size/3+size/2), size / 3, size/3 + size/2},
				{"bytes=-700", size - 700, size - 1},
			} {
				resp, body := get(t, r.clipURL(from, to, ""), "Range", c.rng, "If-Range", etag)
				wantCR := fmt.Sprintf("bytes %d-%d/%d", c.start, c.end, size)
				if resp.StatusCode != 206 || resp.Header.Get("Content-Range") != wantCR || !bytes.Equal(body, full[c.start:c.end+1]) {
					t.Errorf("%s: %d %q, %d bytes; want 206 %q and those bytes", c.rng, resp.StatusCode, resp.Header.Get("Content-Range"), len(body), wantCR)
				}
			}
			if resp, body := get(t, r.clipURL(from, to, ""), "Range", "bytes=0-99", "If-Range", `"other"`); resp.StatusCode != 200 || len(body) != size {
				t.Errorf("If-Range with another ETag: %d, %d bytes; want 200 and the whole clip", resp.StatusCode, len(body))
			}
			if resp, _ := get(t, r.clipURL(from, to, ""), "Range", fmt.Sprintf("bytes=%d-", size)); resp.StatusCode != 416 {
				t.Errorf("range past the end: %d, want 416", resp.StatusCode)
			}
		})
	}
}

// The gap of 4 s between the second and third fragments stays in the clip's timeline
// by default (gaps=keep) and is closed up with gaps=close.
func TestClipGaps(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	r := newClipRig(t, storage.Local{Dir: t.TempDir()}, "")
	for _, c := range []struct {
		extra string
		want  float64
	}{
		{"", 10},                // 14 s .. 24 s on the wall clock
		{"&gaps=keep", 10},      // the same
		{"&gaps=close", 10 - 4}, // without the 4 s the stream was off
	} {
		resp, body := get(t, r.clipURL(14*time.Second, 24*time.Second, c.extra))
		if resp.StatusCode != 200 {
			t.Fatalf("%q: %d %s", c.extra, resp.StatusCode, body)
		}
		path := filepath.Join(t.TempDir(), "clip.mp4")
		os.WriteFile(path, body, 0o644)
		if d := mediatest.Probe(t, path).Duration(); d < c.want-0.1 || d > c.want+0.1 {
			t.Errorf("%q: duration %.3f s, want %.1f", c.extra, d, c.want)
		}
	}
}

// Requests a clip cannot be made of are refused with a status and a reason that says
// what to send instead.
func TestClipRefusals(t *testing.T) {
	r := newClipRig(t, storage.Local{Dir: t.TempDir()}, "")
	t0 := r.t0.Format(time.RFC3339)
	for _, c := range []struct {
		url  string
		code int
		says string
	}{
		{r.vod, 400, "start and end are required"},
		{r.vod + "?start=" + t0, 400, "start and end are required"},
		{r.vod + "?start=yesterday&end=" + t0, 400, "not an RFC 3339 time"},
		{r.vod + "?start=" + t0 + "&end=1800000000", 400, "not an RFC 3339 time"},
		{r.vod + "?start=" + strings.Repeat("9", 100) + "&end=" + t0, 400, "RFC 3339"},
		{r.clipURL(5*time.Second, 5*time.Second, ""), 400, "end must be after start"},
		{r.clipURL(5*time.Second, time.Second, ""), 400, "end must be after start"},
		{r.clipURL(0, 6*time.Hour+time.Second, ""), 400, "at most 6h0m0s"},
		{r.clipURL(0, time.Second, "&gaps=maybe"), 400, "want keep or close"},
		{r.clipURL(time.Hour, 2*time.Hour, ""), 404, "nothing of live/cam recorded"},
		{r.clipURL(-time.Hour, -time.Minute, ""), 404, "nothing of live/cam recorded"},
		{r.clipURL(16100*time.Millisecond, 19*time.Second, ""), 404, "nothing of live/cam recorded"}, // in the gap
		{strings.Replace(r.clipURL(0, time.Second, ""), "cam.mp4", "nobody.mp4", 1), 404, "nothing of live/nobody recorded"},
		{strings.Replace(r.clipURL(0, time.Second, ""), "cam.mp4", "cam.flv", 1), 404, "no such recording"},
	} {
		resp, body := get(t, c.url)
		if resp.StatusCode != c.code || !strings.Contains(string(body), c.says) {
			t.Errorf("GET %s: %d %q, want %d saying %q", c.url, resp.StatusCode, body, c.code, c.says)
		}
	}
	// A recording of an app named "clip" is still served by /vod/ (three elements).
	ctx := context.Background()
	if _, err := r.store.Put(ctx, "clip/cam/20261121T100000Z_cam_p_0001_mp4.mp4", strings.NewReader("media"), 5, "video/mp4"); err != nil {
		t.Fatal(err)
	}
	if resp, body := get(t, r.srv.URL+"/vod/clip/cam/20261121T100000Z_cam_p_0001_mp4.mp4"); resp.StatusCode != 200 || string(body) != "media" {
		t.Errorf("a recording of app clip: %d %q, want it from /vod/", resp.StatusCode, body)
	}
}

// A window across a change of resolution is refused with 409 (a clip is never
// transcoded on the fly), saying what differs and where a transcode is to be had.
func TestClipConfigMismatch(t *testing.T) {
	r := newClipRig(t, storage.Local{Dir: t.TempDir()}, "")
	r.put("cam", 4, r.t0.Add(28*time.Second), mp4test.Record(t, filepath.Join("..", "testdata", "video720.flv"), 1, time.Second))
	resp, body := get(t, r.clipURL(22*time.Second, 29*time.Second, ""))
	if resp.StatusCode != http.StatusConflict || !strings.Contains(string(body), "cam_p_0004_mp4, video track") ||
		!strings.Contains(string(body), "320x240") || !strings.Contains(string(body), "then avc1 90000 1280x720") ||
		!strings.Contains(string(body), "POST /api/v1/stitch") {
		t.Errorf("clip across a resolution change: %d %q, want 409 saying which recording differs, how, and where to transcode", resp.StatusCode, body)
	}
}

// With a play key configured, a clip URL needs a play signature for its stream id.
func TestClipPlaySignature(t *testing.T) {
	r := newClipRig(t, storage.Local{Dir: t.TempDir()}, "play-key")
	u := r.clipURL(time.Second, 3*time.Second, "")
	if resp, body := get(t, u); resp.StatusCode != 403 || !strings.Contains(string(body), "play signature") {
		t.Errorf("unsigned: %d %q, want 403", resp.StatusCode, body)
	}
	if resp, _ := get(t, u+"&"+sign.Query("play-key", "other", time.Now().Add(time.Hour)).Encode()); resp.StatusCode != 403 {
		t.Errorf("signed for another stream: %d, want 403", resp.StatusCode)
	}
	if resp, _ := get(t, u+"&"+sign.Query("play-key", "cam", time.Now().Add(-time.Minute)).Encode()); resp.StatusCode != 403 {
		t.Errorf("expired signature: %d, want 403", resp.StatusCode)
	}
	if resp, body := get(t, u+"&"+sign.Query("play-key", "cam", time.Now().Add(time.Hour)).Encode()); resp.StatusCode != 200 {
		t.Errorf("signed: %d %q, want 200", resp.StatusCode, body)
	}
}
