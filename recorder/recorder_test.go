package recorder

import (
	"bytes"
	"context"
	"encoding/binary"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/live"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
	"github.com/livetape/livetape/stream"
)

type rig struct {
	rec      *Recorder
	srv      *live.Server
	rtmpAddr string
	out      string // recordings folder
	spool    string
	logs     *mediatest.SyncBuffer
	stop     func()
}

// newRig runs a live server with a recorder, recording into a LocalSink; observers are
// told about pushes after the recorder.
func newRig(t *testing.T, cfg Config, observers ...stream.Observer) *rig {
	t.Helper()
	dir := t.TempDir()
	logs := &mediatest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	out, spool := filepath.Join(dir, "recordings"), filepath.Join(dir, "spool")
	rec, err := New(cfg, spool, &LocalSink{Dir: out, Log: log}, log)
	if err != nil {
		t.Fatal(err)
	}
	lc := live.DefaultConfig()
	srv := live.NewServer(lc, log, append([]stream.Observer{rec}, observers...)...)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.ServeRTMP(ctx, ln); close(done) }()
	r := &rig{rec: rec, srv: srv, rtmpAddr: ln.Addr().String(), out: out, spool: spool, logs: logs}
	r.stop = func() { cancel(); <-done; rec.Wait() }
	t.Cleanup(func() {
		r.stop()
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})
	return r
}

// recordings returns the finished recordings of live/id in format ext, in order.
func (r *rig) recordings(t *testing.T, id, pattern string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(r.out, "live", id, pattern))
	slices.Sort(files)
	return files
}

func TestRecordFragments(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	r := newRig(t, DefaultConfig())
	p := mediatest.Push(t, "rtmp://"+r.rtmpAddr+"/live/rec?record=mp4|flv|hls&record_interval=5", 12)
	if err := p.Wait(t, 40*time.Second); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, p.Stderr)
	}
	r.stop()

	t.Run("flv", func(t *testing.T) {
		files := r.recordings(t, "rec", "*.flv")
		checkFragments(t, files, 12)
		for _, f := range files {
			data, _ := os.ReadFile(f)
			rd, _ := flv.NewReader(bytes.NewReader(data))
			first, err := rd.ReadPacket()
			if err != nil || first.Kind != media.KindData {
				t.Fatalf("%s: first tag is not onMetaData", f)
			}
			_, meta, err := flv.ParseScriptData(first.Body())
			if err != nil || meta.Duration == 0 || meta.FileSize != float64(len(data)) || meta.Keyframes == nil || len(meta.Keyframes.Times) < 2 {
				t.Errorf("%s: metadata %+v, %v", f, meta, err)
			}
		}
	})
	t.Run("mp4", func(t *testing.T) {
		files := r.recordings(t, "rec", "*.mp4")
		checkFragments(t, files, 12)
		for _, f := range files {
			if order := topLevelBoxes(t, f); !slices.Equal(order[:3], []string{"ftyp", "moov", "mdat"}) {
				t.Errorf("%s: boxes %v, want moov before mdat", filepath.Base(f), order)
			}
		}
	})
	// record_interval cuts MP4 and FLV only: the push is one HLS playlist, without a
	// discontinuity, as long as the push and its segments sum up to.
	t.Run("hls", func(t *testing.T) {
		files := r.recordings(t, "rec", "*/index.m3u8")
		if len(files) != 1 {
			t.Fatalf("HLS playlists %v, want 1", files)
		}
		pl, _ := os.ReadFile(files[0])
		if !strings.HasSuffix(string(pl), "#EXT-X-ENDLIST\n") || strings.Contains(string(pl), "#EXT-X-DISCONTINUITY") {
			t.Errorf("%s: want one timeline, ended:\n%s", files[0], pl)
		}
		var sum float64
		for _, m := range regexp.MustCompile(`#EXTINF:([0-9.]+),`).FindAllStringSubmatch(string(pl), -1) {
			d, _ := strconv.ParseFloat(m[1], 64)
			sum += d
		}
		pr := mediatest.ProbeFrames(t, files[0])
		if d := pr.Duration(); sum < d-0.1 || sum > d+0.1 || d < 12-0.3 || d > 12+0.3 {
			t.Errorf("%s: segments add up to %.3f s, ffprobe says %.3f s, pushed 12 s", files[0], sum, d)
		}
		if vc, w, _, n := pr.Stream("video"); vc != "h264" || w != 320 || n != 12*25 {
			t.Errorf("video %s width %d, %d frames; pushed %d", vc, w, n, 12*25)
		}
	})
	// The manifests beside the files describe them (and the HLS push record).
	ms, _ := filepath.Glob(filepath.Join(r.out, "live", "rec", "*.json"))
	if len(ms) != 7 {
		t.Fatalf("%d manifests, want 7", len(ms))
	}
	m, err := LoadManifest(ms[0])
	if err != nil || m.State != StateHandedOn || m.PushID == "" || m.Seq != 1 || !strings.Contains(m.StreamParam, "record_interval=5") {
		t.Errorf("manifest %+v, %v", m, err)
	}
}

// checkFragments checks 3 fragments of about 5, 5 and 2 s adding up to the push, each
// starting with a keyframe, with the frames pushed.
func checkFragments(t *testing.T, files []string, pushed float64) {
	t.Helper()
	if len(files) != 3 {
		t.Fatalf("%d fragments %v, want 3", len(files), files)
	}
	var total float64
	var frames int
	for i, f := range files {
		pr := mediatest.ProbeFrames(t, f)
		d := pr.Duration()
		total += d
		want := []float64{5, 5, 2}[i]
		if d < want-0.5 || d > want+0.5 {
			t.Errorf("%s: %.3f s, want about %v", filepath.Base(f), d, want)
		}
		vc, w, h, n := pr.Stream("video")
		ac, _, _, _ := pr.Stream("audio")
		if vc != "h264" || w != 320 || h != 240 || ac != "aac" {
			t.Errorf("%s: video %s %dx%d, audio %s", filepath.Base(f), vc, w, h, ac)
		}
		frames += n
	}
	if total < pushed-0.3 || total > pushed+0.3 {
		t.Errorf("fragments add up to %.3f s, pushed %v s", total, pushed)
	}
	if want := int(pushed * 25); frames != want {
		t.Errorf("%d video frames recorded, %d pushed", frames, want)
	}
}

// topLevelBoxes lists the MP4 box types at the top of a file, in order.
func topLevelBoxes(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var types []string
	var off int64
	hdr := make([]byte, 16)
	for {
		if _, err := f.ReadAt(hdr[:8], off); err != nil {
			return types
		}
		size := int64(binary.BigEndian.Uint32(hdr))
		types = append(types, string(hdr[4:8]))
		if size == 1 {
			f.ReadAt(hdr[8:16], off+8)
			size = int64(binary.BigEndian.Uint64(hdr[8:]))
		}
		if size < 8 {
			return types
		}
		off += size
	}
}
