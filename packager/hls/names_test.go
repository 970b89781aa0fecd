package hls

import (
	"bytes"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestSegmentName(t *testing.T) {
	for _, seq := range []int{0, 7, 123456} {
		if got, ok := ParseSegmentName(SegmentName(seq)); !ok || got != seq {
			t.Errorf("round trip of %d: %d %v", seq, got, ok)
		}
	}
	for _, bad := range []string{"seg-.ts", "seg-1.tsx", "seg--1.ts", "seg-01.ts", "x-1.ts", "seg-1a.ts"} {
		if _, ok := ParseSegmentName(bad); ok {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestParsePlaylistRoundTrip(t *testing.T) {
	pl := Playlist{VOD: true, Entries: []PlaylistEntry{
		{Seq: 0, URI: SegmentName(0), Duration: 4},
		{Seq: 1, URI: SegmentName(1), Duration: 4.04, Discontinuity: true},
		{Seq: 2, URI: SegmentName(2), Duration: 1.5},
	}}
	got, err := ParsePlaylist(bytes.NewReader(pl.AppendTo(nil)))
	if err != nil || !slices.Equal(got, pl.Entries) {
		t.Fatalf("got %+v, %v", got, err)
	}
	// A playlist cut in the middle of an entry keeps the entries before it.
	cut := string(pl.AppendTo(nil))
	cut = cut[:strings.Index(cut, "seg-2.ts")-len("#EXTINF:1.500,\n")+3]
	if got, _ := ParsePlaylist(strings.NewReader(cut)); len(got) != 2 {
		t.Errorf("cut playlist: %d entries, want 2", len(got))
	}
}

func FuzzParsePlaylist(f *testing.F) {
	f.Add((&Playlist{VOD: true, Entries: []PlaylistEntry{{URI: "seg-0.ts", Duration: 4}}}).AppendTo(nil))
	f.Add([]byte("#EXTM3U\n#EXTINF:x,\nseg-1.ts\n#EXTINF:2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, _ := ParsePlaylist(bytes.NewReader(b))
		for _, e := range entries {
			if !(e.Duration >= 0) || math.IsInf(e.Duration, 0) {
				t.Fatalf("negative duration %v", e.Duration)
			}
		}
	})
}
