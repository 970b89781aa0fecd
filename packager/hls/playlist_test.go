package hls

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
)

func entry(seq int, d float64) PlaylistEntry {
	return PlaylistEntry{Seq: seq, URI: fmt.Sprintf("seg-%d.ts", seq), Duration: d}
}

func TestVODPlaylist(t *testing.T) {
	pl := Playlist{VOD: true, Entries: []PlaylistEntry{entry(0, 4), entry(1, 4.0004), entry(2, 1.2345)}}
	want := `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-PLAYLIST-TYPE:VOD
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:0
#EXTINF:4.000,
seg-0.ts
#EXTINF:4.000,
seg-1.ts
#EXTINF:1.234,
seg-2.ts
#EXT-X-ENDLIST
`
	if got := string(pl.AppendTo(nil)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	var b bytes.Buffer
	if n, err := pl.WriteTo(&b); err != nil || n != int64(len(want)) || b.String() != want {
		t.Errorf("WriteTo: %d, %v", n, err)
	}
	pl.Entries[2].Duration = 4.0006 // shows as 4.001: the target must cover it
	if got := string(pl.AppendTo(nil)); !strings.Contains(got, "#EXT-X-TARGETDURATION:5\n") {
		t.Errorf("target duration not the ceiling of 4.001:\n%s", got)
	}
}

func TestLivePlaylistWindow(t *testing.T) {
	l := NewLivePlaylist(3)
	if got := string(l.Bytes()); got != "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:0\n#EXT-X-MEDIA-SEQUENCE:0\n" {
		t.Errorf("empty playlist:\n%s", got)
	}
	for seq := 10; seq < 13; seq++ {
		if _, ok := l.Add(entry(seq, 2)); ok {
			t.Errorf("seq %d evicted something before the window was full", seq)
		}
	}
	before := l.Bytes()
	evicted, ok := l.Add(entry(13, 2.5))
	if !ok || evicted.Seq != 10 {
		t.Errorf("evicted %v %v, want seq 10", evicted, ok)
	}
	want := `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:11
#EXTINF:2.000,
seg-11.ts
#EXTINF:2.000,
seg-12.ts
#EXTINF:2.500,
seg-13.ts
`
	if got := string(l.AppendTo(nil)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if !strings.Contains(string(before), "#EXT-X-MEDIA-SEQUENCE:10\n") {
		t.Error("a rendering handed out earlier changed")
	}

	// The target never shrinks, though the 2.5 s segment leaves the window.
	d := entry(14, 2)
	d.Discontinuity = true
	for _, e := range []PlaylistEntry{d, entry(15, 2), entry(16, 2), entry(17, 2)} {
		l.Add(e)
	}
	want = `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-TARGETDURATION:3
#EXT-X-MEDIA-SEQUENCE:15
#EXT-X-DISCONTINUITY-SEQUENCE:1
#EXTINF:2.000,
seg-15.ts
#EXTINF:2.000,
seg-16.ts
#EXTINF:2.000,
seg-17.ts
#EXT-X-ENDLIST
`
	l.End()
	var b bytes.Buffer
	if _, err := l.WriteTo(&b); err != nil || b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	if got := l.Entries(); len(got) != 3 || got[0].Seq != 15 {
		t.Errorf("entries %v", got)
	}
}

func TestLivePlaylistConcurrentReaders(t *testing.T) {
	l := NewLivePlaylist(6)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var b []byte
			for range 1000 {
				b = l.AppendTo(b[:0])
				if !bytes.HasPrefix(b, []byte("#EXTM3U\n")) {
					t.Error("torn playlist")
					return
				}
			}
		}()
	}
	for seq := range 100 {
		l.Add(entry(seq, 2))
	}
	wg.Wait()
}

// A recording that still grows is an EVENT playlist: players may seek back to its
// start; the discontinuities between its timelines are kept.
func TestEventPlaylist(t *testing.T) {
	second := entry(1, 2)
	second.Discontinuity = true
	pl := Playlist{Event: true, Entries: []PlaylistEntry{entry(0, 4), second}}
	want := `#EXTM3U
#EXT-X-VERSION:3
#EXT-X-PLAYLIST-TYPE:EVENT
#EXT-X-TARGETDURATION:4
#EXT-X-MEDIA-SEQUENCE:0
#EXTINF:4.000,
seg-0.ts
#EXT-X-DISCONTINUITY
#EXTINF:2.000,
seg-1.ts
`
	if got := string(pl.AppendTo(nil)); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	pl.VOD = true // finished: VOD wins, and the list ends
	if got := string(pl.AppendTo(nil)); !strings.Contains(got, "#EXT-X-PLAYLIST-TYPE:VOD\n") ||
		strings.Contains(got, "EVENT") || !strings.HasSuffix(got, "#EXT-X-ENDLIST\n") {
		t.Errorf("finished event playlist:\n%s", got)
	}
}
