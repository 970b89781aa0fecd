package transcoder

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const srcFPS = 30.0

// checkRendition probes an MP4 or HLS output: the template's size, both tracks, the
// source's duration (±0.1 s), audio and video starting within one frame of each other.
func checkRendition(t *testing.T, path string, srcDuration float64, w, h int) *probe {
	t.Helper()
	p := runProbe(t, path)
	var video, audio int = -1, -1
	for i, s := range p.Streams {
		switch s.CodecType {
		case "video":
			video = i
		case "audio":
			audio = i
		}
	}
	if video < 0 || audio < 0 {
		t.Fatalf("%s: streams %+v, want video and audio", path, p.Streams)
	}
	v, a := p.Streams[video], p.Streams[audio]
	if v.CodecName != "h264" || a.CodecName != "aac" {
		t.Errorf("%s: codecs %s/%s, want h264/aac", path, v.CodecName, a.CodecName)
	}
	if v.Width != w || v.Height != h {
		t.Errorf("%s: %dx%d, want %dx%d", path, v.Width, v.Height, w, h)
	}
	if d := num(p.Format.Duration); math.Abs(d-srcDuration) > 0.1 {
		t.Errorf("%s: duration %.3f s, source %.3f s", path, d, srcDuration)
	}
	if diff := math.Abs(num(v.StartTime) - num(a.StartTime)); diff > 1/srcFPS {
		t.Errorf("%s: video starts at %s, audio at %s: %.3f s apart, more than a frame", path, v.StartTime, a.StartTime, diff)
	}
	return p
}

func TestTranscodeMP4LandscapeLadder(t *testing.T) {
	dir := t.TempDir()
	src := makeSource(t, dir, 1280, 720, 6)
	srcDuration := num(runProbe(t, src).Format.Duration)
	var outputs []Output
	for _, tpl := range DefaultTemplates() {
		outputs = append(outputs, Output{Template: tpl, Format: FormatMP4, Path: filepath.Join(dir, tpl.Name+".mp4")})
	}
	var reports []Progress
	res, err := Transcode(context.Background(), src, outputs, func(p Progress) { reports = append(reports, p) })
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][2]int{"sd": {640, 360}, "hd": {960, 540}, "uhd": {1280, 720}}
	for i, o := range outputs {
		wh := want[o.Template.Name]
		p := checkRendition(t, o.Path, srcDuration, wh[0], wh[1])
		r := res.Outputs[i]
		if r.Template != o.Template.Name || r.Width != wh[0] || r.Height != wh[1] || r.Path != o.Path {
			t.Errorf("result %+v for %s", r, o.Template.Name)
		}
		for _, s := range p.Streams {
			if s.CodecType != "video" {
				continue
			}
			// ffprobe's bit_rate of the H.264 track against the template's target.
			got, target := num(s.BitRate), float64(o.Template.VideoKbps*1000)
			if math.Abs(got-target) > 0.2*target {
				t.Errorf("%s: video %.0f bit/s, template %0.f bit/s (±20 %%)", o.Template.Name, got, target)
			}
			if math.Abs(float64(r.VideoBitrate)-got) > 0.05*got {
				t.Errorf("%s: result says %d bit/s, ffprobe %.0f", o.Template.Name, r.VideoBitrate, got)
			}
		}
		// Fast start: the index (moov) comes before the media (mdat).
		data, err := os.ReadFile(o.Path)
		if err != nil {
			t.Fatal(err)
		}
		if moov, mdat := bytes.Index(data, []byte("moov")), bytes.Index(data, []byte("mdat")); moov < 0 || moov > mdat {
			t.Errorf("%s: moov at %d, mdat at %d: not fast start", o.Path, moov, mdat)
		}
		if _, err := os.Stat(o.Path + ".partial"); !os.IsNotExist(err) {
			t.Errorf("%s.partial left behind: %v", o.Path, err)
		}
	}
	if len(reports) < 3 || reports[len(reports)-1].Percent() != 100 {
		t.Errorf("progress reports %+v: want several, ending at 100 %%", reports)
	}
	for i := 1; i < len(reports); i++ {
		if reports[i].Done < reports[i-1].Done {
			t.Errorf("progress went back: %+v", reports)
		}
	}
}

func TestTranscodePortraitStaysPortrait(t *testing.T) {
	dir := t.TempDir()
	src := makeSource(t, dir, 720, 1280, 4)
	srcDuration := num(runProbe(t, src).Format.Duration)
	sd, _ := FindTemplate(DefaultTemplates(), "sd")
	hd, _ := FindTemplate(DefaultTemplates(), "hd")
	outputs := []Output{
		{Template: sd, Format: FormatMP4, Path: filepath.Join(dir, "sd.mp4")},
		{Template: hd, Format: FormatHLS, Path: filepath.Join(dir, "hd")},
	}
	res, err := Transcode(context.Background(), src, outputs, nil)
	if err != nil {
		t.Fatal(err)
	}
	checkRendition(t, outputs[0].Path, srcDuration, 360, 640)
	checkRendition(t, filepath.Join(outputs[1].Path, "index.m3u8"), srcDuration, 540, 960)
	if res.Outputs[1].Width != 540 || res.Outputs[1].Height != 960 {
		t.Errorf("result %+v", res.Outputs[1])
	}
}

func TestTranscodeABRSet(t *testing.T) {
	dir := t.TempDir()
	src := makeSource(t, dir, 1280, 720, 6)
	srcProbe := runProbe(t, src, "-count_frames")
	srcDuration := num(srcProbe.Format.Duration)
	out := filepath.Join(dir, "abr")
	res, err := TranscodeABR(context.Background(), src, out, DefaultTemplates(), nil)
	if err != nil {
		t.Fatal(err)
	}
	master, err := os.ReadFile(filepath.Join(out, MasterPlaylist))
	if err != nil {
		t.Fatal(err)
	}
	inf := regexp.MustCompile(`#EXT-X-STREAM-INF:BANDWIDTH=(\d+),AVERAGE-BANDWIDTH=\d+,RESOLUTION=(\d+)x(\d+),FRAME-RATE=[\d.]+,CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"\n([a-z]+)/index\.m3u8\n`)
	entries := inf.FindAllStringSubmatch(string(master), -1)
	if len(entries) != 3 {
		t.Fatalf("master playlist has %d well-formed variants, want 3:\n%s", len(entries), master)
	}
	want := map[string][2]int{"sd": {640, 360}, "hd": {960, 540}, "uhd": {1280, 720}}
	var lastBandwidth int
	var srcFrames string
	for _, s := range srcProbe.Streams {
		if s.CodecType == "video" {
			srcFrames = s.NbFrames
		}
	}
	var extinfs [][]Segment
	var keyframes [][]string
	for _, e := range entries {
		name := e[4]
		bw, _ := strconv.Atoi(e[1])
		if bw < lastBandwidth {
			t.Errorf("variants not in increasing BANDWIDTH:\n%s", master)
		}
		lastBandwidth = bw
		tpl, _ := FindTemplate(DefaultTemplates(), name)
		// BANDWIDTH is the peak: at least the template's audio+video rate less 20 %.
		if float64(bw) < 0.8*float64((tpl.VideoKbps+tpl.AudioKbps)*1000) {
			t.Errorf("%s: BANDWIDTH %d below the template's %d+%d kbps", name, bw, tpl.VideoKbps, tpl.AudioKbps)
		}
		if e[2] != strconv.Itoa(want[name][0]) || e[3] != strconv.Itoa(want[name][1]) {
			t.Errorf("%s: RESOLUTION %sx%s, want %v", name, e[2], e[3], want[name])
		}
		playlist := filepath.Join(out, name, "index.m3u8")
		checkRendition(t, playlist, srcDuration, want[name][0], want[name][1])
		// Every frame decodes.
		decoded := runProbe(t, playlist, "-count_frames", "-select_streams", "v")
		if got := decoded.Streams[0].NbFrames; got != srcFrames {
			t.Errorf("%s: %s frames decoded, source has %s", name, got, srcFrames)
		}
		segs, err := ReadMediaPlaylist(playlist)
		if err != nil {
			t.Fatal(err)
		}
		extinfs = append(extinfs, segs)
		keyframes = append(keyframes, keyframeTimes(t, playlist))
	}
	for i := 1; i < len(extinfs); i++ {
		if !slices.Equal(extinfs[i], extinfs[0]) {
			t.Errorf("segment lists differ:\n%s %v\n%s %v", entries[0][4], extinfs[0], entries[i][4], extinfs[i])
		}
		if !slices.Equal(keyframes[i], keyframes[0]) {
			t.Errorf("keyframes differ:\n%s %v\n%s %v", entries[0][4], keyframes[0], entries[i][4], keyframes[i])
		}
	}
	if len(extinfs[0]) != int(math.Ceil(srcDuration/GOP.Seconds())) {
		t.Errorf("%d segments for %.1f s, want one per %v: %v", len(extinfs[0]), srcDuration, GOP, extinfs[0])
	}
	if len(keyframes[0]) != len(extinfs[0]) {
		t.Errorf("keyframes %v: want one per segment (%d)", keyframes[0], len(extinfs[0]))
	}
	for _, r := range res.Outputs {
		if r.Path != filepath.Join(out, r.Template) {
			t.Errorf("result path %q", r.Path)
		}
	}
	if _, err := os.Stat(out + ".partial"); !os.IsNotExist(err) {
		t.Errorf("%s.partial left behind: %v", out, err)
	}
}

// keyframeTimes lists the pts of the video keyframes of a file, as ffprobe reads them.
func keyframeTimes(t *testing.T, path string) []string {
	t.Helper()
	var p struct {
		Packets []struct {
			PtsTime string `json:"pts_time"`
			Flags   string `json:"flags"`
		} `json:"packets"`
	}
	runProbeInto(t, &p, path, "-select_streams", "v", "-show_entries", "packet=pts_time,flags")
	var keys []string
	for _, pkt := range p.Packets {
		if strings.HasPrefix(pkt.Flags, "K") {
			keys = append(keys, pkt.PtsTime)
		}
	}
	return keys
}

func TestTruncatedInputIsBadInput(t *testing.T) {
	for name, extra := range map[string][]string{
		"index at the end":   nil,                         // the moov is gone
		"index at the front": {"-movflags", "+faststart"}, // the media is cut
	} {
		t.Run(strings.ReplaceAll(name, " ", "_"), func(t *testing.T) {
			dir := t.TempDir()
			src := makeSource(t, dir, 320, 240, 3, extra...)
			data, err := os.ReadFile(src)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(src, data[:len(data)/2], 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(dir, "out.mp4")
			_, err = Transcode(context.Background(), src, []Output{{Template: DefaultTemplates()[0], Format: FormatMP4, Path: out}}, nil)
			if !errors.Is(err, ErrBadInput) {
				t.Fatalf("err = %v, want ErrBadInput", err)
			}
			assertNoOutput(t, dir, "src_320x240.mp4")
		})
	}
	t.Run("not_media", func(t *testing.T) {
		dir := t.TempDir()
		src := filepath.Join(dir, "notes.mp4")
		os.WriteFile(src, []byte("this is not a video\n"), 0o644)
		_, err := Transcode(context.Background(), src, []Output{{Template: DefaultTemplates()[0], Format: FormatHLS, Path: filepath.Join(dir, "out")}}, nil)
		if !errors.Is(err, ErrBadInput) {
			t.Fatalf("err = %v, want ErrBadInput", err)
		}
		assertNoOutput(t, dir, "notes.mp4")
	})
	t.Run("missing_file_is_not_bad_input", func(t *testing.T) {
		dir := t.TempDir()
		_, err := Transcode(context.Background(), filepath.Join(dir, "nope.mp4"), []Output{{Template: DefaultTemplates()[0], Format: FormatMP4, Path: filepath.Join(dir, "out.mp4")}}, nil)
		if err == nil || errors.Is(err, ErrBadInput) {
			t.Fatalf("err = %v, want an error that is not ErrBadInput (the file may appear: retry)", err)
		}
	})
}

// assertNoOutput fails when dir holds anything but the source.
func assertNoOutput(t *testing.T, dir, source string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != source {
			t.Errorf("%s left in %s", e.Name(), dir)
		}
	}
}

func TestCancelStopsAndLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	src := makeSource(t, dir, 640, 360, 6)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var reports []Progress
	var outputs []Output
	for _, tpl := range DefaultTemplates()[:2] {
		outputs = append(outputs,
			Output{Template: tpl, Format: FormatMP4, Path: filepath.Join(dir, tpl.Name+".mp4")},
			Output{Template: tpl, Format: FormatHLS, Path: filepath.Join(dir, tpl.Name)})
	}
	_, err := Transcode(ctx, src, outputs, func(p Progress) {
		reports = append(reports, p)
		if p.Done >= GOP/2 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	// The loop checks ctx before each packet: no frame a whole report interval later.
	if last := reports[len(reports)-1]; last.Done > GOP/2 {
		t.Errorf("progress went on after the cancel: %+v", reports)
	}
	assertNoOutput(t, dir, filepath.Base(src))

	// The ABR set too leaves no directory. A job cancelled before it starts is
	// cancelled, never a bad input (the interrupt cut probing short: seen under load).
	ctx2, cancel2 := context.WithCancel(context.Background())
	cancel2()
	for range 20 {
		_, err = TranscodeABR(ctx2, src, filepath.Join(dir, "abr"), DefaultTemplates(), nil)
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("ABR err = %v, want context.Canceled", err)
		}
	}
	assertNoOutput(t, dir, filepath.Base(src))
}

func TestThumbnail(t *testing.T) {
	dir := t.TempDir()
	src := makeSource(t, dir, 720, 1280, 4)
	for _, tc := range []struct {
		name   string
		opt    ThumbnailOptions
		w, h   int
		atFrom float64 // the frame taken lies in [atFrom, atFrom + one frame)
	}{
		{"default_10_percent", ThumbnailOptions{}, 720, 1280, 0.4},
		{"at_offset_small", ThumbnailOptions{At: 2500e6, ShortSide: 180}, 180, 320, 2.5},
		{"past_the_end", ThumbnailOptions{At: 3600e9}, 720, 1280, 4 - 1/srcFPS},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, tc.name+".jpg")
			f, err := os.Create(path)
			if err != nil {
				t.Fatal(err)
			}
			th, err := WriteThumbnail(context.Background(), src, f, tc.opt)
			f.Close()
			if err != nil {
				t.Fatal(err)
			}
			p := runProbe(t, path)
			if len(p.Streams) != 1 || p.Streams[0].CodecName != "mjpeg" || p.Streams[0].Width != tc.w || p.Streams[0].Height != tc.h {
				t.Fatalf("thumbnail %+v, want a %dx%d JPEG", p.Streams, tc.w, tc.h)
			}
			if th.Width != tc.w || th.Height != tc.h {
				t.Errorf("result %+v", th)
			}
			if at := th.At.Seconds(); at < tc.atFrom-1e-3 || at >= tc.atFrom+1/srcFPS {
				t.Errorf("frame at %.3f s, want [%.3f, %.3f)", at, tc.atFrom, tc.atFrom+1/srcFPS)
			}
		})
	}
}
