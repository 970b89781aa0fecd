package mp4test

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

// Synthetic returns the MP4 recording (as Record makes it) of a push of w×h video at
// 25 fps with a keyframe every second and 44.1 kHz stereo AAC, lasting d (whole
// seconds), made with the ffmpeg CLI from its synthetic sources.
func Synthetic(t testing.TB, w, h int, d time.Duration) []byte {
	t.Helper()
	mediatest.NeedFFmpeg(t)
	secs := strconv.Itoa(int(d / time.Second))
	flv := filepath.Join(t.TempDir(), fmt.Sprintf("%dx%d.flv", w, h))
	out, err := exec.Command("ffmpeg", "-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", fmt.Sprintf("testsrc2=size=%dx%d:rate=25:duration=%s", w, h, secs),
		"-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration="+secs,
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "25", "-pix_fmt", "yuv420p", "-threads", "1",
		"-c:a", "aac", "-ac", "2", "-b:a", "64k", "-f", "flv", flv).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg %dx%d: %v\n%s", w, h, err, out)
	}
	// The last audio frame may run past d: Record leaves out what does.
	return Record(t, flv, 1, d)
}
