package hls

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// SegmentName is the file name livetape gives segment seq, live and recorded alike.
func SegmentName(seq int) string { return "seg-" + strconv.Itoa(seq) + ".ts" }

// ParseSegmentName returns the sequence number of a SegmentName.
func ParseSegmentName(name string) (int, bool) {
	v, ok := strings.CutPrefix(name, "seg-")
	if !ok {
		return 0, false
	}
	v, ok = strings.CutSuffix(v, ".ts")
	if !ok {
		return 0, false
	}
	seq, err := strconv.Atoi(v)
	return seq, err == nil && seq >= 0 && strconv.Itoa(seq) == v
}

// ParsePlaylist reads the segments of a media playlist (EXTINF duration and URI; the
// sequence number from a SegmentName URI, else counted from 0). It stops at the first
// entry it cannot read, returning those before it: a playlist is rewritten whole, so
// what precedes a damaged entry is trustworthy.
func ParsePlaylist(r io.Reader) ([]PlaylistEntry, error) {
	var entries []PlaylistEntry
	sc := bufio.NewScanner(r)
	discontinuity := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "#EXT-X-DISCONTINUITY":
			discontinuity = true
		case strings.HasPrefix(line, "#EXTINF:"):
			v, _, _ := strings.Cut(strings.TrimPrefix(line, "#EXTINF:"), ",")
			d, err := strconv.ParseFloat(v, 64)
			if err != nil || d < 0 || math.IsNaN(d) || math.IsInf(d, 0) || !sc.Scan() {
				return entries, nil
			}
			uri := strings.TrimSpace(sc.Text())
			seq, ok := ParseSegmentName(uri)
			if !ok {
				seq = len(entries)
			}
			entries = append(entries, PlaylistEntry{Seq: seq, URI: uri, Duration: d, Discontinuity: discontinuity})
			discontinuity = false
		}
	}
	if err := sc.Err(); err != nil {
		return entries, fmt.Errorf("hls: read playlist: %w", err)
	}
	return entries, nil
}
