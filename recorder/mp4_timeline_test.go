package recorder

import (
	"context"
	"encoding/json"
	"maps"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// frameMS is the video frame duration of the crafted pushes (25 fps): the tolerance
// between the timelines of the three formats.
const frameMS = 40

// timelineShape restamps one packet of a 10 s push: nominal is the timestamp a perfect
// publisher would send, i its index among the packets of its kind.
type timelineShape func(kind media.Kind, i int, nominal uint32) uint32

// timelineShapes are the publisher timestamp habits a recording must survive, with the
// number of fragments each push records. Each keeps the two tracks in step, so audio
// and video must end together in every file.
var timelineShapes = map[string]struct {
	restamp   timelineShape
	fragments int
}{
	// A video frame 100 ms late followed by one with the same timestamp (what
	// gstreamer's flvmux sends): 4100, 4100, then 4080 — backwards — and on.
	"late": {func(kind media.Kind, i int, nominal uint32) uint32 {
		if kind == media.KindVideo && (i == 100 || i == 101) {
			return 4100
		}
		return nominal
	}, 1},
	// Five video frames and five audio frames stamped alike.
	"repeated": {func(kind media.Kind, i int, nominal uint32) uint32 {
		switch {
		case kind == media.KindVideo && i >= 100 && i < 105:
			return 4000
		case kind == media.KindAudio && i >= 260 && i < 265:
			return uint32(aacTimestamp(260))
		}
		return nominal
	}, 1},
	// The publisher's clock steps back 500 ms in the middle of a GOP, on both tracks.
	"backwards": {func(_ media.Kind, _ int, nominal uint32) uint32 {
		if nominal >= 4400 {
			return nominal - 500
		}
		return nominal
	}, 1},
	// The publisher's clock jumps 5 s forward (a stalled encoder), on both tracks.
	"jump": {func(_ media.Kind, _ int, nominal uint32) uint32 {
		if nominal >= 4000 {
			return nominal + 5000
		}
		return nominal
	}, 1},
	// A step back of 3 s (an encoder restarting its clock) in the middle of a GOP is a
	// new timeline: a new fragment starts at the next keyframe.
	"restart": {func(_ media.Kind, _ int, nominal uint32) uint32 {
		if nominal >= 4400 {
			return nominal - 3000
		}
		return nominal
	}, 2},
	// So is a jump of more than 10 s, here on a keyframe.
	"long-jump": {func(_ media.Kind, _ int, nominal uint32) uint32 {
		if nominal >= 4000 {
			return nominal + 15000
		}
		return nominal
	}, 2},
}

// aacTimestamp is the millisecond timestamp of AAC frame j at 44.1 kHz.
func aacTimestamp(j int) int64 { return int64(math.Round(float64(j) * 1024 * 1000 / 44100)) }

// craftedPush is 10 s of the av fixture at 25 fps with AAC at 44.1 kHz, its frames
// restamped by shape, in the order a publisher sends them (by nominal time).
func craftedPush(t *testing.T, shape timelineShape) []*media.Packet {
	t.Helper()
	var hdrs, video, audio []*media.Packet
	for _, p := range mediatest.ReadFLV(t, "../testdata/av.flv") {
		switch {
		case p.Kind == media.KindData:
		case p.SequenceHeader:
			hdrs = append(hdrs, p.WithTimestamp(0))
		case p.Kind == media.KindVideo:
			if b := p.Body(); len(b) > 1 && b[1] == 1 { // NAL units, not the end of sequence
				video = append(video, p)
			}
		default:
			audio = append(audio, p)
		}
	}
	out := hdrs
	var vi, ai int
	for {
		vNominal, aNominal := int64(vi*frameMS), aacTimestamp(ai)
		if vNominal >= 10000 && aNominal >= 10000 {
			return out
		}
		// Video first at equal times: the push starts on the keyframe.
		if vNominal <= aNominal {
			// Looping over the fixture's 100 frames restarts on its first keyframe.
			out = append(out, video[vi%len(video)].WithTimestamp(shape(media.KindVideo, vi, uint32(vNominal))))
			vi++
		} else {
			out = append(out, audio[ai%len(audio)].WithTimestamp(shape(media.KindAudio, ai, uint32(aNominal))))
			ai++
		}
	}
}

// TestMP4TimelineMatchesFLVAndHLS pushes each timestamp shape with record=mp4|flv|hls
// and checks that the three recordings tell the same timeline: the same duration, the
// same keyframe times, audio and video ending together, and the manifest saying so.
func TestMP4TimelineMatchesFLVAndHLS(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	received := &packetCounter{n: map[string]*atomic.Int64{}}
	r := newRig(t, DefaultConfig(), received)
	names := slices.Sorted(maps.Keys(timelineShapes))
	for _, name := range names {
		pub := mediatest.PublishRTMP(t, "rtmp://"+r.rtmpAddr+"/live/"+name+"?record=mp4|flv|hls")
		pkts := craftedPush(t, timelineShapes[name].restamp)
		for _, p := range pkts {
			if err := pub.WritePacket(p); err != nil {
				t.Fatalf("%s: push: %v", name, err)
			}
		}
		// go-rtmp sends messages of different chunk streams interleaved, from a
		// goroutine: unpublishing now could overtake the last frames. Once the stream
		// has delivered them, the recorder has them queued too.
		mediatest.WaitFor(t, name+": every packet received", time.Minute, func() bool {
			return received.count(name) == int64(len(pkts))
		})
		if err := pub.Unpublish(); err != nil {
			t.Fatalf("%s: unpublish: %v", name, err)
		}
	}
	r.stop() // every recording finalized and handed on

	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			files := map[string][]string{}
			n := timelineShapes[name].fragments
			for format, pattern := range map[string]string{"mp4": "*.mp4", "flv": "*.flv", "hls": "*/index.m3u8"} {
				files[format] = r.recordings(t, name, pattern)
				if want := map[bool]int{true: 1, false: n}[format == "hls"]; len(files[format]) != want {
					t.Fatalf("%s recordings %v, want %d", format, files[format], want)
				}
			}
			// HLS is one playlist per push: a new timeline is a discontinuity in it.
			if n == 1 {
				checkSameTimeline(t, files["mp4"][0], files["flv"][0], files["hls"][0])
				return
			}
			var sum float64
			for i := range files["mp4"] {
				checkSameTimeline(t, files["mp4"][i], files["flv"][i], "")
				sum += mediatest.Probe(t, files["mp4"][i]).Duration()
			}
			pl, _ := os.ReadFile(files["hls"][0])
			if d := strings.Count(string(pl), "#EXT-X-DISCONTINUITY\n"); d != n-1 {
				t.Errorf("HLS playlist with %d discontinuities, want %d:\n%s", d, n-1, pl)
			}
			if d := mediatest.Probe(t, files["hls"][0]).Duration(); math.Abs(d-sum) > frameMS/1000.0 {
				t.Errorf("HLS lasts %.3f s, the MP4 fragments %.3f s", d, sum)
			}
		})
	}
}

// checkSameTimeline checks that three recordings of one fragment tell the same
// timeline: the same duration, the same keyframe times, audio and video ending
// together, and their manifests saying so.
func checkSameTimeline(t *testing.T, mp4, flv, hls string) {
	t.Helper()
	files := map[string]string{"mp4": mp4, "flv": flv}
	if hls != "" {
		files["hls"] = hls
	}
	durations := map[string]float64{}
	keyframes := map[string][]float64{}
	for format, f := range files {
		pr := mediatest.Probe(t, f)
		durations[format] = pr.Duration()
		keyframes[format] = keyframeTimes(t, f)
		if format == "hls" {
			continue // a push's HLS recording has no manifest of its own
		}
		m, err := LoadManifest(manifestPath(f))
		if err != nil {
			t.Fatal(err)
		}
		// The manifest (and so the callback and the catalog) says what a player of
		// the MP4 shows, to the rounding of millisecond timestamps at either end.
		if tol := map[string]float64{"mp4": 0.0025, "flv": frameMS / 1000.0}[format]; math.Abs(m.Duration-pr.Duration()) > tol {
			t.Errorf("%s: manifest says %.4f s, the file %.4f s", filepath.Base(f), m.Duration, pr.Duration())
		}
	}
	t.Logf("%s: mp4 %.3f s, flv %.3f s, hls %.3f s", filepath.Base(mp4), durations["mp4"], durations["flv"], durations["hls"])
	for _, format := range []string{"flv", "hls"} {
		if files[format] == "" {
			continue
		}
		if math.Abs(durations["mp4"]-durations[format]) > frameMS/1000.0 {
			t.Errorf("%s: mp4 lasts %.3f s, %s %.3f s", filepath.Base(mp4), durations["mp4"], format, durations[format])
		}
		// Keyframes are where the publisher stamped them, in every format: the same
		// millisecond.
		if !sameTimes(keyframes["mp4"], keyframes[format], 0.0015) {
			t.Errorf("%s: keyframes at\nmp4 %v\n%s %v", filepath.Base(mp4), keyframes["mp4"], format, keyframes[format])
		}
	}
	// The MP4's tracks end together, as the push's do.
	trackEnd := map[string]float64{}
	for _, s := range mediatest.Probe(t, mp4).Streams {
		trackEnd[s.CodecType], _ = strconv.ParseFloat(s.Duration, 64)
	}
	if math.Abs(trackEnd["video"]-trackEnd["audio"]) > frameMS/1000.0 {
		t.Errorf("%s: video lasts %.3f s, audio %.3f s", filepath.Base(mp4), trackEnd["video"], trackEnd["audio"])
	}
}

// packetCounter is a stream.Observer counting the packets each push delivers.
type packetCounter struct {
	mu sync.Mutex
	n  map[string]*atomic.Int64 // by stream id
}

func (c *packetCounter) PublishStarted(p *stream.Publication) {
	sub, _, err := p.Stream.SubscribeNoDrop(1 << 14)
	if err != nil {
		return
	}
	n := &atomic.Int64{}
	c.mu.Lock()
	c.n[p.Params.StreamID] = n
	c.mu.Unlock()
	go func() {
		for p := range sub.Packets() {
			if p.Kind != media.KindData {
				n.Add(1)
			}
		}
	}()
}

func (c *packetCounter) PublishEnded(*stream.Publication, stream.EndReason, time.Time) {}

func (c *packetCounter) count(streamID string) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n := c.n[streamID]; n != nil {
		return n.Load()
	}
	return 0
}

// manifestPath is the manifest beside a recording in the LocalSink folder.
func manifestPath(file string) string {
	if filepath.Base(file) == hlsPlaylist {
		return filepath.Dir(file) + ".json"
	}
	return file[:len(file)-len(filepath.Ext(file))] + ".json"
}

// keyframeTimes lists the presentation times of the video keyframes of a recording,
// relative to the first (MPEG-TS starts at an arbitrary clock).
func keyframeTimes(t *testing.T, path string) []float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ffprobe", "-v", "error", "-of", "json", "-select_streams", "v:0",
		"-show_entries", "packet=pts_time,flags", "-show_packets", path).Output()
	if err != nil {
		t.Fatalf("ffprobe %s: %v", path, err)
	}
	var res struct {
		Packets []struct {
			PTS   string `json:"pts_time"`
			Flags string `json:"flags"`
		} `json:"packets"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		t.Fatal(err)
	}
	var times []float64
	for _, p := range res.Packets {
		if len(p.Flags) > 0 && p.Flags[0] == 'K' {
			v, err := strconv.ParseFloat(p.PTS, 64)
			if err != nil {
				t.Fatalf("%s: keyframe pts %q", path, p.PTS)
			}
			times = append(times, v)
		}
	}
	if len(times) == 0 {
		t.Fatalf("%s: no keyframe", path)
	}
	for i := len(times) - 1; i >= 0; i-- {
		times[i] -= times[0]
	}
	return times
}

// sameTimes tells whether a and b have as many times, each within tol of the other's.
func sameTimes(a, b []float64, tol float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Abs(a[i]-b[i]) > tol {
			return false
		}
	}
	return true
}
