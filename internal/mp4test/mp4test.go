// Package mp4test makes MP4 recordings for tests, as the recorder makes them, from the
// FLV fixtures in testdata.
package mp4test

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/fmp4"
)

// Record records the FLV fixture at flvPath repeat times in a row as the recorder does
// (packager/fmp4 flushed per keyframe and second, then finalized) and returns the
// MP4's bytes. Each repetition lasts period: the fixture's audio frames that would run
// past it are left out, so a fixture of whole seconds with a keyframe every second
// (testdata/av.flv, period 4 s) gives a recording with a keyframe at every second.
func Record(t testing.TB, flvPath string, repeat int, period time.Duration) []byte {
	t.Helper()
	periodMS := uint32(period.Milliseconds())
	var tracks fmp4.Tracks
	var pkts []*media.Packet
	for _, p := range mediatest.ReadFLV(t, flvPath) {
		var err error
		switch {
		case p.Kind == media.KindData:
			continue
		case p.Kind == media.KindVideo && len(p.Body()) > 1 && p.Body()[1] == 2:
			continue // the AVC end of sequence ffmpeg writes last: not a frame
		case !p.SequenceHeader && p.Timestamp >= periodMS,
			p.Kind == media.KindAudio && !p.SequenceHeader && p.Timestamp+24 > periodMS:
			continue
		case p.Kind == media.KindVideo && p.SequenceHeader:
			tracks.Video, err = media.ParseAVCConfig(p.Payload())
		case p.Kind == media.KindAudio && p.SequenceHeader:
			tracks.Audio, err = media.ParseAACConfig(p.Payload())
		}
		if err != nil {
			t.Fatal(err)
		}
		pkts = append(pkts, p)
	}
	dir := t.TempDir()
	part, final := filepath.Join(dir, "rec.mp4.part"), filepath.Join(dir, "rec.mp4")
	f, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, err := fmp4.NewWriter(f, tracks)
	if err != nil {
		t.Fatal(err)
	}
	for r := range repeat {
		for _, p := range pkts {
			if r > 0 && p.SequenceHeader {
				continue
			}
			p = p.WithTimestamp(p.Timestamp + uint32(r)*periodMS)
			if err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
			if p.Kind == media.KindVideo && p.Keyframe && !p.SequenceHeader || w.Pending() >= time.Second {
				if err := w.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fmp4.FinalizeFile(part, final); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(final)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
