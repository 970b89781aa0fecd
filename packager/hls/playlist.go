package hls

import (
	"io"
	"math"
	"strconv"
	"sync"
)

// PlaylistEntry is one segment of a media playlist.
type PlaylistEntry struct {
	Seq           int     // media sequence number
	URI           string  // as the client should request it, e.g. "seg-12.ts"
	Duration      float64 // seconds
	Discontinuity bool    // preceded by EXT-X-DISCONTINUITY
}

// Playlist is an HLS media playlist (RFC 8216, version 3: decimal EXTINF durations).
// A VOD playlist is Playlist{VOD: true, Entries: all}; LivePlaylist maintains a sliding
// window over one.
type Playlist struct {
	// TargetDuration in seconds; zero means the ceiling of the longest entry.
	TargetDuration int
	// DiscontinuitySequence counts the discontinuities that left the window.
	DiscontinuitySequence int
	VOD                   bool // EXT-X-PLAYLIST-TYPE:VOD; implies Ended
	// Event says EXT-X-PLAYLIST-TYPE:EVENT (ignored with VOD): segments are only ever
	// appended, so a player may seek back to the start of a recording that still grows.
	Event bool
	Ended bool // EXT-X-ENDLIST: no segment will be added
	// Entries have consecutive Seq; the first one's is the EXT-X-MEDIA-SEQUENCE.
	Entries []PlaylistEntry
}

// AppendTo appends the rendered playlist to b.
func (p *Playlist) AppendTo(b []byte) []byte {
	target := p.TargetDuration
	if target == 0 {
		for _, e := range p.Entries {
			target = max(target, ceilSeconds(e.Duration))
		}
	}
	b = append(b, "#EXTM3U\n#EXT-X-VERSION:3\n"...)
	switch {
	case p.VOD:
		b = append(b, "#EXT-X-PLAYLIST-TYPE:VOD\n"...)
	case p.Event:
		b = append(b, "#EXT-X-PLAYLIST-TYPE:EVENT\n"...)
	}
	b = append(b, "#EXT-X-TARGETDURATION:"...)
	b = strconv.AppendInt(b, int64(target), 10)
	b = append(b, "\n#EXT-X-MEDIA-SEQUENCE:"...)
	seq := 0
	if len(p.Entries) > 0 {
		seq = p.Entries[0].Seq
	}
	b = strconv.AppendInt(b, int64(seq), 10)
	b = append(b, '\n')
	if p.DiscontinuitySequence > 0 {
		b = append(b, "#EXT-X-DISCONTINUITY-SEQUENCE:"...)
		b = strconv.AppendInt(b, int64(p.DiscontinuitySequence), 10)
		b = append(b, '\n')
	}
	for _, e := range p.Entries {
		if e.Discontinuity {
			b = append(b, "#EXT-X-DISCONTINUITY\n"...)
		}
		b = append(b, "#EXTINF:"...)
		b = strconv.AppendFloat(b, e.Duration, 'f', 3, 64)
		b = append(b, ",\n"...)
		b = append(b, e.URI...)
		b = append(b, '\n')
	}
	if p.VOD || p.Ended {
		b = append(b, "#EXT-X-ENDLIST\n"...)
	}
	return b
}

// WriteTo writes the rendered playlist to w.
func (p *Playlist) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(p.AppendTo(nil))
	return int64(n), err
}

// ceilSeconds rounds a duration up to whole seconds, after rounding it to the
// milliseconds EXTINF shows, so that 2.0000001 s (float noise) stays 2.
func ceilSeconds(d float64) int {
	return int(math.Ceil(math.Round(d*1000) / 1000))
}

// LivePlaylist is the playlist of a live stream: the last few segments, re-rendered
// when one is added, so serving it costs a copy, however many viewers poll it. It is
// safe for concurrent use: one goroutine adds segments while HTTP handlers read.
type LivePlaylist struct {
	window int

	mu       sync.Mutex
	pl       Playlist
	rendered []byte // immutable once published: a new slice per change
}

// NewLivePlaylist returns an empty live playlist keeping the last window segments
// (at least 1; HLS players want 3 or more).
func NewLivePlaylist(window int) *LivePlaylist {
	l := &LivePlaylist{window: max(window, 1)}
	l.rendered = l.pl.AppendTo(nil)
	return l
}

// Add appends a segment, whose Seq must follow the previous one, and returns the
// entry that slid out of the window, if any, so that its data can be released (after
// a grace period: a client may have just read a playlist listing it).
func (l *LivePlaylist) Add(e PlaylistEntry) (evicted PlaylistEntry, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.pl.Entries) == l.window {
		evicted, ok = l.pl.Entries[0], true
		// Removing an EXT-X-DISCONTINUITY must bump the discontinuity sequence
		// (RFC 8216 6.2.2) so players keep timelines apart.
		if evicted.Discontinuity {
			l.pl.DiscontinuitySequence++
		}
		copy(l.pl.Entries, l.pl.Entries[1:])
		l.pl.Entries = l.pl.Entries[:len(l.pl.Entries)-1]
	}
	l.pl.Entries = append(l.pl.Entries, e)
	// EXT-X-TARGETDURATION must not change (RFC 8216 6.2.1), and must cover every
	// segment: keep the longest ever seen rather than the longest in the window.
	l.pl.TargetDuration = max(l.pl.TargetDuration, ceilSeconds(e.Duration))
	l.rendered = l.pl.AppendTo(make([]byte, 0, len(l.rendered)+64))
	return evicted, ok
}

// End marks the stream as ended: EXT-X-ENDLIST tells players to stop polling.
func (l *LivePlaylist) End() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.pl.Ended = true
	l.rendered = l.pl.AppendTo(make([]byte, 0, len(l.rendered)+16))
}

// Entries returns a copy of the segments in the window.
func (l *LivePlaylist) Entries() []PlaylistEntry {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]PlaylistEntry(nil), l.pl.Entries...)
}

// Bytes returns the rendered playlist. It must not be modified; it is not changed by
// later calls either, so it can be written to a slow client without holding anything.
func (l *LivePlaylist) Bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rendered
}

// AppendTo appends the rendered playlist to b.
func (l *LivePlaylist) AppendTo(b []byte) []byte { return append(b, l.Bytes()...) }

// WriteTo writes the rendered playlist to w, without holding the lock during the write.
func (l *LivePlaylist) WriteTo(w io.Writer) (int64, error) {
	n, err := w.Write(l.Bytes())
	return int64(n), err
}
