package mp4concat

import (
	"math"
	"os/exec"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// MP4s as FFmpeg's muxer writes them (what livetape-transcoder outputs): an edit list
// on each track skipping the encoder delay of B-frames and the AAC priming. They join:
// the video presents from 0 and every frame once, the audio loses only each input's
// priming frame, the duration is the sum of the inputs', and it decodes cleanly.
func TestConcatFFmpegEditLists(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	var ins []Input
	var want float64
	var frames int
	for i, secs := range []string{"2", "3"} {
		path := filepath.Join(dir, "in"+secs+".mp4")
		out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
			"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25:duration="+secs,
			"-f", "lavfi", "-i", "sine=sample_rate=48000:duration="+secs,
			"-c:v", "libx264", "-bf", "3", "-g", "25", "-pix_fmt", "yuv420p", "-threads", "1",
			"-c:a", "aac", "-ac", "2", path).CombinedOutput()
		if err != nil {
			t.Fatalf("ffmpeg: %v\n%s", err, out)
		}
		want += mediatest.Probe(t, path).Duration()
		frames += len(probePackets(t, path, "video"))
		ins = append(ins, openInput(t, path, time.Time{}.Add(time.Duration(i)*time.Hour)))
	}
	m, err := Concat(ins, Options{})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "out.mp4")
	writeMovie(t, m, path)
	if d := mediatest.Probe(t, path).Duration(); math.Abs(d-want) > 0.05 {
		t.Errorf("duration %.3f s, want the inputs' %.3f", d, want)
	}
	video := probePackets(t, path, "video")
	if len(video) != frames {
		t.Errorf("%d video frames, want the inputs' %d", len(video), frames)
	}
	pts := make([]float64, len(video))
	for i, p := range video {
		pts[i] = p.pts()
	}
	slices.Sort(pts)
	if pts[0] != 0 {
		t.Errorf("first video frame presented at %.3f s, want 0 (the encoder delay skipped)", pts[0])
	}
	for i := 1; i < len(pts); i++ {
		if d := pts[i] - pts[i-1]; math.Abs(d-0.04) > 0.001 {
			t.Fatalf("video frame %d presented %.3f s after the one before, want 0.040", i, d)
		}
	}
	mediatest.DecodeClean(t, path)
}
