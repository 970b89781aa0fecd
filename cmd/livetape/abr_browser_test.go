package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/transcodertest"
	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// abrPage plays ?src= with the hls.js the console ships, and exposes the variants it
// found and the one it plays.
const abrPage = `<!doctype html>
<video id="v" muted playsinline></video>
<script type="module">
import Hls from '/console/vendor/hls-1.7.4.min.mjs';
const v = document.getElementById('v');
const hls = new Hls();
window.levels = () => hls.levels.map((l) => l.width + 'x' + l.height);
hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) console.error('hls.js: ' + d.type + ' ' + d.details); });
hls.loadSource(new URLSearchParams(location.search).get('src'));
hls.attachMedia(v);
v.play();
</script>`

// An HLS ABR set made by the transcoder plays in a browser: hls.js reads the master
// playlist's variants and playback advances.
func TestABRSetPlaysInChromium(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine", "-t", "6", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", src).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	abr := filepath.Join(dir, "abr")
	templates := spec.DefaultTemplates()[:2] // sd, hd
	tc := runner.Runner{Binary: transcodertest.Binary(t)}
	if _, err := tc.TranscodeABR(context.Background(), src, abr, templates, nil); err != nil {
		t.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.Handle("/console/", api.NewConsole())
	mux.Handle("/abr/", http.StripPrefix("/abr/", http.FileServer(http.Dir(abr))))
	mux.HandleFunc("/abr.html", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte(abrPage))
	})
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	b := startChromium(t)
	b.run(t, "open the player", chromedp.Navigate(srv.URL+"/abr.html?src=/abr/"+spec.MasterPlaylist))
	b.waitPlaying(t, "v")
	var levels []string
	if !b.eval(`window.levels()`, &levels) || len(levels) != 2 || levels[0] != "640x360" || levels[1] != "960x540" {
		t.Errorf("hls.js variants %v, want [640x360 960x540]", levels)
	}
	if errs := b.consoleErrors(); len(errs) > 0 {
		t.Errorf("the browser console has errors: %v", errs)
	}
}
