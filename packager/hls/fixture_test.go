package hls

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
)

// Fixtures are made by ffmpeg once per test binary, in a directory removed at exit, so
// the tests run on what a real encoder emits without committing media.
var (
	fixtureDir  string
	fixtureMu   sync.Mutex
	fixtureDone = map[string]error{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hls-fixtures-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fixtureDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// 5 s, 320x240 at 25 fps with a keyframe every second (B-frames on, so composition
// times are not zero), 44.1 kHz AAC.
var fixtureArgs = map[string][]string{
	"av.flv": {
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", "5", "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
		"-c:a", "aac",
	},
	"video.flv": {
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-t", "5", "-c:v", "libx264", "-g", "25", "-keyint_min", "25", "-sc_threshold", "0",
	},
	"audio.flv": {
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
		"-t", "5", "-c:a", "aac",
	},
}

// fixture returns the path of a generated FLV file.
func fixture(t testing.TB, name string) string {
	t.Helper()
	mediatest.NeedFFmpeg(t)
	path := filepath.Join(fixtureDir, name)
	fixtureMu.Lock()
	defer fixtureMu.Unlock()
	err, done := fixtureDone[name]
	if !done {
		args := append([]string{"-v", "error", "-y"}, fixtureArgs[name]...)
		args = append(args, "-f", "flv", path)
		if out, e := exec.Command("ffmpeg", args...).CombinedOutput(); e != nil {
			err = fmt.Errorf("ffmpeg %s: %v\n%s", name, e, out)
		}
		fixtureDone[name] = err
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func readPackets(t testing.TB, path string) []*media.Packet {
	t.Helper()
	return mediatest.ReadFLV(t, path)
}

// segmentFiles runs pkts through a Segmenter writing seg-N.ts files into dir and a VOD
// playlist.m3u8 listing them.
// segmentAll runs pkts through a Segmenter made from cfg and returns every segment,
// the last one (from Close) included.
func segmentAll(t testing.TB, pkts []*media.Packet, cfg SegmenterConfig) []*Segment {
	t.Helper()
	return feed(t, NewSegmenter(cfg), pkts...)
}

func segmentFiles(t testing.TB, pkts []*media.Packet, cfg SegmenterConfig, dir string) []*Segment {
	t.Helper()
	cfg.Create = func(seq int) (io.WriteCloser, error) {
		return os.Create(filepath.Join(dir, fmt.Sprintf("seg-%d.ts", seq)))
	}
	segs := segmentAll(t, pkts, cfg)
	pl := Playlist{VOD: true}
	for _, seg := range segs {
		pl.Entries = append(pl.Entries, seg.Entry(fmt.Sprintf("seg-%d.ts", seg.Seq)))
	}
	if err := os.WriteFile(filepath.Join(dir, "playlist.m3u8"), pl.AppendTo(nil), 0o644); err != nil {
		t.Fatal(err)
	}
	return segs
}

type probeStream struct {
	CodecType    string `json:"codec_type"`
	CodecName    string `json:"codec_name"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	NbReadFrames string `json:"nb_read_frames"`
}

type probeFrame struct {
	KeyFrame int    `json:"key_frame"`
	PictType string `json:"pict_type"`
}

type probePacket struct {
	PTS   string `json:"pts_time"`
	DTS   string `json:"dts_time"`
	Flags string `json:"flags"`
}

type probeResult struct {
	Streams []probeStream `json:"streams"`
	Frames  []probeFrame  `json:"frames"`
	Packets []probePacket `json:"packets"`
	Format  struct {
		Duration string `json:"duration"`
	} `json:"format"`
}

func (r *probeResult) stream(codecType string) *probeStream {
	for i := range r.Streams {
		if r.Streams[i].CodecType == codecType {
			return &r.Streams[i]
		}
	}
	return nil
}

func ffprobe(t testing.TB, args ...string) *probeResult {
	t.Helper()
	args = append([]string{"-v", "error", "-of", "json"}, args...)
	cmd := exec.Command("ffprobe", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("ffprobe %v: %v\n%s", args, err, stderr.Bytes())
	}
	if stderr.Len() > 0 {
		t.Errorf("ffprobe %v complained:\n%s", args, stderr.Bytes())
	}
	var r probeResult
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("ffprobe output: %v\n%s", err, out)
	}
	return &r
}
