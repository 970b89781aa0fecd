package mediatest

import "testing"

// Without ffmpeg, NeedFFmpeg skips a developer's test and fails scripts/test.sh's.
func TestNeedFFmpegHonoursRequireTools(t *testing.T) {
	if IsToolsChild() {
		NeedFFmpeg(t)
		return
	}
	CheckRequireTools(t, "ffmpeg not installed")
}
