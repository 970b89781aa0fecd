package mp4concat

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/fmp4"
)

// fixture is the media packets of a testdata FLV, rebased to start at 0, and its
// codec configurations.
type fixture struct {
	pkts   []*media.Packet
	tracks fmp4.Tracks
	period uint32 // ms after which a repetition of the packets starts
}

func loadFixture(t testing.TB, name string) *fixture {
	t.Helper()
	fx := &fixture{}
	var base uint32 = 1 << 31
	all := mediatest.ReadFLV(t, filepath.Join("..", "..", "testdata", name))
	for _, p := range all {
		if p.Kind != media.KindData {
			base = min(base, p.Timestamp)
		}
	}
	var err error
	for _, p := range all {
		if p.Kind == media.KindData {
			continue
		}
		if b := p.Body(); p.Kind == media.KindVideo && len(b) > 1 && b[1] == 2 {
			continue // the AVC end of sequence ffmpeg writes last: not a frame
		}
		p = p.WithTimestamp(p.Timestamp - base)
		fx.pkts = append(fx.pkts, p)
		fx.period = max(fx.period, p.Timestamp+40)
		switch {
		case p.Kind == media.KindVideo && p.SequenceHeader:
			if fx.tracks.Video, err = media.ParseAVCConfig(p.Payload()); err != nil {
				t.Fatal(err)
			}
		case p.Kind == media.KindAudio && p.SequenceHeader:
			if fx.tracks.Audio, err = media.ParseAACConfig(p.Payload()); err != nil {
				t.Fatal(err)
			}
		}
	}
	return fx
}

// recOptions say how record feeds the fixture to the recorder's writer.
type recOptions struct {
	repeat int // the fixture this many times, one after the other (default 1)
	padTo  int // pad video frames to this many bytes with filler NAL units
}

// record writes fx to path as livetape records a push: a packager/fmp4 Writer flushed
// at every video keyframe and every second, then FinalizeFile. It returns the input
// for the finalized file, with Start = start.
func record(t testing.TB, fx *fixture, path string, start time.Time, o recOptions) Input {
	t.Helper()
	part := path + ".part"
	f, err := os.Create(part)
	if err != nil {
		t.Fatal(err)
	}
	w, err := fmp4.NewWriter(f, fx.tracks)
	if err != nil {
		t.Fatal(err)
	}
	for r := range max(o.repeat, 1) {
		for _, p := range fx.pkts {
			if r > 0 && p.SequenceHeader {
				continue
			}
			if r > 0 {
				p = p.WithTimestamp(p.Timestamp + uint32(r)*fx.period)
			}
			if o.padTo > 0 && p.Kind == media.KindVideo && !p.SequenceHeader {
				p = mediatest.PadVideo(t, p, o.padTo)
			}
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
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := fmp4.FinalizeFile(part, path); err != nil {
		t.Fatal(err)
	}
	os.Remove(part)
	return openInput(t, path, start)
}

// openInput opens path as an Input; the file is closed with the test.
func openInput(t testing.TB, path string, start time.Time) Input {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	info, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	return Input{Name: filepath.Base(path), R: f, Size: info.Size(), Start: start}
}

// writeMovie writes m to a file in dir.
func writeMovie(t testing.TB, m *Movie, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n, err := m.WriteTo(f)
	if err != nil {
		t.Fatal(err)
	}
	if n != m.Size() {
		t.Fatalf("wrote %d bytes, Size says %d", n, m.Size())
	}
}

// packet is one packet as ffprobe reports it.
type packet struct {
	CodecType string `json:"codec_type"`
	PTS       string `json:"pts_time"`
	DTS       string `json:"dts_time"`
	Flags     string `json:"flags"`
	Hash      string `json:"data_hash"`
}

func (p packet) pts() float64 { f, _ := strconv.ParseFloat(p.PTS, 64); return f }
func (p packet) dts() float64 { f, _ := strconv.ParseFloat(p.DTS, 64); return f }

// probePackets lists the packets of one kind ("video", "audio") of path, with a
// hash of each packet's data, in decode order.
func probePackets(t testing.TB, path, kind string) []packet {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-of", "json", "-show_data_hash", "SHA256",
		"-select_streams", kind[:1], "-show_entries", "packet=codec_type,pts_time,dts_time,flags,data_hash", path).Output()
	if err != nil {
		t.Fatalf("ffprobe packets %s: %v", path, err)
	}
	var r struct {
		Packets []packet `json:"packets"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatal(err)
	}
	return r.Packets
}
