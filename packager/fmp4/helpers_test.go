package fmp4

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
)

// fixture is an FLV from testdata with what the tests compare against.
type fixture struct {
	name        string
	pkts        []*media.Packet // media packets (no script data), rebased so the first is at 0
	tracks      Tracks
	videoFrames int
	audioFrames int
}

// loadFixture reads testdata/name the way the recorder receives a stream: packets
// rebased to start at 0, sequence headers first.
func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	r, err := flv.NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	fx := &fixture{name: name}
	var raw []*media.Packet
	for {
		p, err := r.ReadPacket()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if p.Kind == media.KindData {
			continue
		}
		raw = append(raw, p)
	}
	base := raw[0].Timestamp
	for _, p := range raw {
		base = min(base, p.Timestamp)
	}
	for _, p := range raw {
		p = p.WithTimestamp(p.Timestamp - base)
		fx.pkts = append(fx.pkts, p)
		switch {
		case p.Kind == media.KindVideo && p.SequenceHeader:
			if fx.tracks.Video, err = media.ParseAVCConfig(p.Payload()); err != nil {
				t.Fatal(err)
			}
		case p.Kind == media.KindAudio && p.SequenceHeader:
			if fx.tracks.Audio, err = media.ParseAACConfig(p.Payload()); err != nil {
				t.Fatal(err)
			}
		case p.Kind == media.KindVideo:
			// Not the AVC end of sequence ffmpeg writes last (AVCPacketType 2).
			if b := p.Body(); len(b) > 1 && b[1] != 2 {
				fx.videoFrames++
			}
		case p.Kind == media.KindAudio:
			fx.audioFrames++
		}
	}
	return fx
}

// writeOptions say how writeFMP4 feeds the Writer.
type writeOptions struct {
	shift   uint32 // added to every timestamp
	repeat  int    // the fixture this many times, one after the other (default 1)
	padTo   int    // pad video frames to this many bytes with filler NAL units
	maxSize int64  // stop repeating once the file is this large
}

// writeFMP4 writes fx through a Writer to path as the recorder does: a flush at every
// video keyframe and whenever a second is pending. It returns the file size after the
// init segment and after each fragment.
func writeFMP4(t testing.TB, fx *fixture, path string, o writeOptions) []int64 {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cw := &countWriter{w: f}
	w, err := NewWriter(cw, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	ends := []int64{cw.n}
	flush := func() {
		before := cw.n
		if err := w.Flush(); err != nil {
			t.Fatal(err)
		}
		if cw.n != before {
			ends = append(ends, cw.n)
		}
	}
	var period uint32
	for _, p := range fx.pkts {
		period = max(period, p.Timestamp+40)
	}
	repeat := max(o.repeat, 1)
	for r := range repeat {
		for _, p := range fx.pkts {
			if r > 0 && p.SequenceHeader {
				continue
			}
			if r > 0 || o.shift != 0 {
				p = p.WithTimestamp(p.Timestamp + o.shift + uint32(r)*period)
			}
			if o.padTo > 0 && p.Kind == media.KindVideo && !p.SequenceHeader {
				p = mediatest.PadVideo(t, p, o.padTo)
			}
			if err := w.WritePacket(p); err != nil {
				t.Fatal(err)
			}
			if p.Kind == media.KindVideo && p.Keyframe && !p.SequenceHeader || w.Pending() >= time.Second {
				flush()
			}
		}
		if o.maxSize > 0 && cw.n >= o.maxSize {
			break
		}
	}
	before := cw.n
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if cw.n != before {
		ends = append(ends, cw.n)
	}
	return ends
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// topLevelBoxes lists the types of the top-level boxes of an MP4 file.
func topLevelBoxes(t testing.TB, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	var types []string
	for off := int64(0); off < info.Size(); {
		h, err := readHeader(f, off, info.Size())
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		types = append(types, h.typ)
		off = h.end()
	}
	return types
}

// probeDuration is ffprobe's format duration of the original fixture.
func probeDuration(t testing.TB, name string) float64 {
	t.Helper()
	return mediatest.Probe(t, filepath.Join("..", "..", "testdata", name)).Duration()
}
