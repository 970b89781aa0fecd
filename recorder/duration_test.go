package recorder

import (
	"testing"
	"time"

	"github.com/livetape/livetape/media"
)

// A fragment's duration (what Status reports while it records and what its manifest,
// callback and catalog entry say once closed) is where its longest track ends, as the
// MP4 writer ends it, after every frame: it never goes back when an audio frame
// follows a video frame closely, whatever frame the push stops on.
func TestFragmentDurationIsWhereTracksEnd(t *testing.T) {
	f := &fragment{s: &session{}, lastTS: [2]int64{-1, -1}}
	var vi, ai int
	var prev time.Duration
	for range 500 {
		video, audio := int64(vi*frameMS), aacTimestamp(ai)
		p := &media.Packet{Kind: media.KindVideo, Timestamp: uint32(video)}
		if video > audio {
			p = &media.Packet{Kind: media.KindAudio, Timestamp: uint32(audio)}
			ai++
		} else {
			vi++
		}
		f.advance(p, p.Timestamp)
		// Video ends one frame after its last; AAC one frame of 1024 samples after its
		// last, to the millisecond of the timestamps.
		want := time.Duration(int64(vi-1)*frameMS+frameMS) * time.Millisecond
		if ai > 0 {
			want = max(want, time.Duration(aacTimestamp(ai-1))*time.Millisecond+time.Duration(1024*time.Second/44100))
		}
		d := f.duration()
		if (d - want).Abs() > time.Millisecond {
			t.Fatalf("after %d video and %d audio frames: duration %v, the tracks end at %v", vi, ai, d, want)
		}
		if d < prev {
			t.Fatalf("after %d video and %d audio frames: duration went back from %v to %v", vi, ai, prev, d)
		}
		if got := time.Duration(f.s.openMS.Load()) * time.Millisecond; got != d {
			t.Fatalf("Status says %v, the fragment %v", got, d)
		}
		prev = d
	}
}
