package recorder

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
)

func TestRecordCases(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	cfg := DefaultConfig()
	cfg.Apps = map[string]AppConfig{"always": {Formats: []string{"flv"}, Interval: time.Hour}}
	r := newRig(t, cfg)
	url := func(app, id, query string) string { return "rtmp://" + r.rtmpAddr + "/" + app + "/" + id + query }

	// Run the pushes side by side; each case checks its own stream id.
	pushes := map[string]*mediatest.Pusher{
		"audio":   mediatest.Push(t, url("live", "audio", "?record=flv&record_type=audio"), 2.5),
		"short":   mediatest.Push(t, url("live", "short", "?record=flv|hls"), 0.5),
		"none":    mediatest.Push(t, url("live", "none", ""), 2),
		"default": mediatest.Push(t, url("always", "def", ""), 2),
		"resumed": mediatest.Push(t, url("live", "resumed", "?record=flv"), 2),
	}
	for name, p := range pushes {
		if err := p.Wait(t, 30*time.Second); err != nil {
			t.Fatalf("%s: ffmpeg: %v\n%s", name, err, p.Stderr)
		}
	}
	// The broadcaster reconnects: a new push, a new fragment.
	p := mediatest.Push(t, url("live", "resumed", "?record=flv"), 2)
	if err := p.Wait(t, 30*time.Second); err != nil {
		t.Fatalf("resumed: ffmpeg: %v", err)
	}
	r.stop()

	t.Run("record_type=audio has no video", func(t *testing.T) {
		files := r.recordings(t, "audio", "*.flv")
		if len(files) != 1 {
			t.Fatalf("files %v", files)
		}
		pr := mediatest.ProbeFrames(t, files[0])
		if vc, _, _, _ := pr.Stream("video"); vc != "" {
			t.Errorf("video track %q in an audio-only recording", vc)
		}
		if ac, _, _, n := pr.Stream("audio"); ac != "aac" || n < 80 {
			t.Errorf("audio %s with %d frames", ac, n)
		}
	})
	t.Run("under 1 s leaves no file", func(t *testing.T) {
		if files, _ := os.ReadDir(filepath.Join(r.out, "live", "short")); len(files) != 0 {
			t.Errorf("files left: %v", files)
		}
		if !strings.Contains(r.logs.String(), "fragment discarded: shorter than 1 s") {
			t.Error("the discard is not logged")
		}
	})
	t.Run("no record and no default records nothing", func(t *testing.T) {
		if _, err := os.Stat(filepath.Join(r.out, "live", "none")); !os.IsNotExist(err) {
			t.Errorf("recordings of an unrecorded push: %v", err)
		}
	})
	t.Run("app default applies", func(t *testing.T) {
		if files, _ := filepath.Glob(filepath.Join(r.out, "always", "def", "*.flv")); len(files) != 1 {
			t.Errorf("files %v", files)
		}
	})
	t.Run("reconnect starts a new fragment", func(t *testing.T) {
		files := r.recordings(t, "resumed", "*.flv")
		if len(files) != 2 {
			t.Fatalf("files %v, want one per push", files)
		}
		for _, f := range files {
			if d := mediatest.Probe(t, f).Duration(); d < 1.5 || d > 2.5 {
				t.Errorf("%s: %.3f s", filepath.Base(f), d)
			}
		}
	})
	// Nothing is left in the spool once everything is handed on.
	var left []string
	filepath.WalkDir(filepath.Join(filepath.Dir(r.out), "spool"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			left = append(left, p)
		}
		return nil
	})
	if len(left) != 0 {
		t.Errorf("spool not empty: %v", left)
	}
}
