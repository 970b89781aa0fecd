package mp4concat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// TestClipAcrossFragments clips a window that starts in the middle of one recording
// and ends in the next: the clip starts at the keyframe before the window (within
// one GOP of it), its first packet is a keyframe at 0, and its packets are the
// inputs' own.
func TestClipAcrossFragments(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	ins, paths := threeRecordings(t, 0)
	start := ins[0].Start.Add(2500 * time.Millisecond)
	end := ins[1].Start.Add(1500 * time.Millisecond)
	m, err := Clip(ins, start, end, Options{Gaps: KeepGaps})
	if err != nil {
		t.Fatal(err)
	}
	if want := ins[0].Start.Add(2 * time.Second); !m.Start.Equal(want) {
		t.Errorf("clip Start %s, want %s (the keyframe at 2 s)", m.Start, want)
	}
	out := filepath.Join(t.TempDir(), "clip.mp4")
	writeMovie(t, m, out)

	const gop = 1.0 // av.flv has a keyframe every second
	window := end.Sub(start).Seconds()
	if d := mediatest.Probe(t, out).Duration(); d < window-0.05 || d > window+gop+0.05 {
		t.Errorf("clip duration %.3f s, want within one GOP (%.0f s) of the window %.3f s", d, gop, window)
	}
	video := probePackets(t, out, "video")
	if len(video) == 0 || !strings.Contains(video[0].Flags, "K") {
		t.Fatalf("first video packet %+v, want a keyframe", video)
	}
	if video[0].dts() != 0 {
		t.Errorf("first video dts %s, want 0", video[0].DTS)
	}
	audio := probePackets(t, out, "audio")
	if first := min(video[0].pts(), audio[0].pts()); first < 0 || first > 0.1 {
		t.Errorf("first pts %.3f s, want from 0 (within the 0.08 s B-frame delay)", first)
	}

	// The video is the first recording's from its keyframe at 2 s, then the second's
	// up to 1.5 s: the same bytes.
	in1, in2 := probePackets(t, paths[0], "video"), probePackets(t, paths[1], "video")
	key := slices.IndexFunc(in1, func(p packet) bool { return strings.Contains(p.Flags, "K") && p.dts() >= 2-0.001 })
	cut := slices.IndexFunc(in2, func(p packet) bool { return p.dts() >= 1.5-0.001 })
	want := append(hashes(in1[key:]), hashes(in2[:cut])...)
	if !slices.Equal(hashes(video), want) {
		t.Errorf("clip video: %d packets, want %d (the inputs' from the keyframe at 2 s to 1.5 s into the next)", len(video), len(want))
	}
	mediatest.DecodeClean(t, out)

	// A window outside every recording has nothing.
	late := ins[2].Start.Add(time.Hour)
	if _, err := Clip(ins, late, late.Add(time.Minute), Options{}); !errors.Is(err, ErrNoMedia) {
		t.Errorf("clip after the recordings: %v, want ErrNoMedia", err)
	}
}

// TestClipServeRange serves a clip with http.ServeContent, as the /vod/clip handler
// does: every Range request returns exactly those bytes of the full response.
func TestClipServeRange(t *testing.T) {
	ins, _ := threeRecordings(t, 3*time.Second)
	m, err := Clip(ins, ins[0].Start.Add(time.Second), ins[2].Start.Add(2*time.Second), Options{Gaps: KeepGaps})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "video/mp4")
		http.ServeContent(w, r, "clip.mp4", time.Time{}, m.NewReader())
	}))
	defer srv.Close()
	get := func(rng string) (int, []byte) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL, nil)
		if rng != "" {
			req.Header.Set("Range", rng)
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
		return resp.StatusCode, body
	}
	status, full := get("")
	if status != http.StatusOK || int64(len(full)) != m.Size() {
		t.Fatalf("GET: status %d, %d bytes, want 200 and %d", status, len(full), m.Size())
	}
	var written bytes.Buffer
	if _, err := m.WriteTo(&written); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(full, written.Bytes()) {
		t.Fatal("the served movie differs from WriteTo's")
	}
	size := int64(len(full))
	// The middle range crosses from the header into the media and across extents.
	mid := int64(len(m.head)) - 50
	for _, c := range []struct {
		rng        string
		start, end int64 // inclusive
	}{
		{"bytes=0-99", 0, 99},
		{fmt.Sprintf("bytes=%d-%d", mid, mid+size/2), mid, mid + size/2},
		{"bytes=-500", size - 500, size - 1},
		{fmt.Sprintf("bytes=%d-", size-1), size - 1, size - 1},
	} {
		status, body := get(c.rng)
		if status != http.StatusPartialContent || !bytes.Equal(body, full[c.start:c.end+1]) {
			t.Errorf("%s: status %d, %d bytes, want 206 and bytes [%d, %d] of the full response",
				c.rng, status, len(body), c.start, c.end)
		}
	}
}

// TestMovieReadAt reads the movie at every extent boundary and past its end.
func TestMovieReadAt(t *testing.T) {
	ins, _ := threeRecordings(t, 0)
	m, err := Concat(ins, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var full bytes.Buffer
	if _, err := m.WriteTo(&full); err != nil {
		t.Fatal(err)
	}
	for _, e := range m.extents {
		for _, off := range []int64{e.at - 3, e.at, e.at + e.size - 3} {
			buf := make([]byte, 7)
			n, err := m.ReadAt(buf, off)
			want := full.Bytes()[off:min(off+7, int64(full.Len()))]
			if n != len(want) || !bytes.Equal(buf[:n], want) || (n < 7) != errors.Is(err, io.EOF) {
				t.Errorf("ReadAt(7, %d) = %d, %v; want %d bytes of the file", off, n, err, len(want))
			}
		}
	}
	if n, err := m.ReadAt(make([]byte, 1), m.Size()); n != 0 || err != io.EOF {
		t.Errorf("ReadAt at the end = %d, %v; want 0, EOF", n, err)
	}
	// An input shorter than its index says is an error, not a short movie.
	short := ins[1]
	data := make([]byte, short.Size-1000)
	if _, err := short.R.ReadAt(data, 0); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "short.mp4")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	cutInput := openInput(t, path, short.Start)
	cutInput.Size = short.Size // as a catalog that remembers the old size would say
	// Its moov is whole, so it parses; reading its media must fail.
	m, err = Concat([]Input{ins[0], cutInput}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.WriteTo(io.Discard); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("WriteTo with a cut input: %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := io.Copy(io.Discard, m.NewReader()); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("reading a movie with a cut input: %v, want io.ErrUnexpectedEOF", err)
	}
}
