package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/transcodertest"
	"github.com/livetape/livetape/transcoder/spec"
)

func TestMain(m *testing.M) { os.Exit(transcodertest.Main(m)) }

// makeSource encodes a 1280x720 30 fps H.264 + AAC MP4 of secs seconds with ffmpeg.
func makeSource(t *testing.T, dir string, secs int) string {
	t.Helper()
	mediatest.NeedFFmpeg(t)
	path := filepath.Join(dir, fmt.Sprintf("src%d.mp4", secs))
	out, err := exec.Command("ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
		"-f", "lavfi", "-i", "sine=frequency=440", "-t", fmt.Sprint(secs),
		"-c:v", "libx264", "-preset", "ultrafast", "-g", "30", "-c:a", "aac", path).CombinedOutput()
	if err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	return path
}

func sd() spec.Template { return spec.DefaultTemplates()[0] }

// noneLeft fails the test if any of paths exists.
func noneLeft(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s is there (%v), want nothing", p, err)
		}
	}
}

// A transcode and a poster through the executable: the child's progress reaches the
// caller, its result is the transcoder's (640x360 sd), and the files probe.
func TestTranscodeAndThumbnailInChild(t *testing.T) {
	r := Runner{Binary: transcodertest.Binary(t)}
	dir := t.TempDir()
	src := makeSource(t, dir, 2)

	var progress []float64
	out := filepath.Join(dir, "sd.mp4")
	res, err := r.Transcode(context.Background(), src, []spec.Output{{Template: sd(), Format: spec.FormatMP4, Path: out}},
		func(p spec.Progress) { progress = append(progress, p.Percent()) })
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 1 || res.Duration < 1900*time.Millisecond || res.Duration > 2100*time.Millisecond {
		t.Fatalf("result %+v, want one output of a 2 s source", res)
	}
	o := res.Outputs[0]
	if o.Template != "sd" || o.Format != spec.FormatMP4 || o.Path != out || o.Width != 640 || o.Height != 360 ||
		o.Bitrate <= 0 || o.VideoBitrate <= 0 || o.FrameRate != 30 || !strings.HasPrefix(o.Codecs, "avc1.") {
		t.Errorf("rendition %+v, want sd mp4 640x360 30 fps", o)
	}
	if len(progress) < 2 || progress[len(progress)-1] != 100 {
		t.Errorf("progress %v, want several reports ending at 100", progress)
	}
	for i := 1; i < len(progress); i++ {
		if progress[i] <= progress[i-1] {
			t.Errorf("progress %v: not increasing (reported once per whole percent)", progress)
			break
		}
	}
	if _, w, h, _ := mediatest.Probe(t, out).Stream("video"); w != 640 || h != 360 {
		t.Errorf("sd.mp4 is %dx%d", w, h)
	}

	poster := filepath.Join(dir, "poster.jpg")
	th, err := r.Thumbnail(context.Background(), src, poster, spec.ThumbnailOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if th.Width != 1280 || th.Height != 720 || th.At < 100*time.Millisecond || th.At > 300*time.Millisecond {
		t.Errorf("thumbnail %+v, want 1280x720 at 10 %% of 2 s", th)
	}
	if codec, w, _, _ := mediatest.Probe(t, poster).Stream("video"); codec != "mjpeg" || w != 1280 {
		t.Errorf("poster: %s %d wide", codec, w)
	}
	noneLeft(t, out+".partial", poster+".partial")
}

// An ABR set through the executable: the master playlist and one variant per template.
func TestABRInChild(t *testing.T) {
	r := Runner{Binary: transcodertest.Binary(t)}
	dir := t.TempDir()
	src := makeSource(t, dir, 2)
	abr := filepath.Join(dir, "abr")
	res, err := r.TranscodeABR(context.Background(), src, abr, spec.DefaultTemplates()[:2], nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Outputs) != 2 || res.Outputs[1].Path != filepath.Join(abr, "hd") || res.Outputs[1].Height != 540 {
		t.Errorf("result %+v, want sd and hd variants in %s", res, abr)
	}
	if p := mediatest.Probe(t, filepath.Join(abr, spec.MasterPlaylist)); len(p.Streams) != 4 {
		t.Errorf("master playlist: %d streams, want 2 variants × (video + audio)", len(p.Streams))
	}
	noneLeft(t, abr+".partial")
}

// A truncated MP4: the child exits with ExitBadInput, and the error is ErrBadInput
// with the child's own reason; nothing is left.
func TestBadInputIsPermanent(t *testing.T) {
	r := Runner{Binary: transcodertest.Binary(t)}
	dir := t.TempDir()
	data, err := os.ReadFile(makeSource(t, dir, 2))
	if err != nil {
		t.Fatal(err)
	}
	cut := filepath.Join(dir, "cut.mp4")
	if err := os.WriteFile(cut, data[:len(data)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "out.mp4")
	_, err = r.Transcode(context.Background(), cut, []spec.Output{{Template: sd(), Format: spec.FormatMP4, Path: out}}, nil)
	if !errors.Is(err, spec.ErrBadInput) || !strings.Contains(err.Error(), "bad input") || strings.Contains(err.Error(), Name+": ") {
		t.Errorf("truncated input: %v, want spec.ErrBadInput in the child's words", err)
	}
	noneLeft(t, out, out+".partial")

	_, err = r.Thumbnail(context.Background(), filepath.Join(dir, "missing.mp4"), filepath.Join(dir, "p.jpg"), spec.ThumbnailOptions{})
	if err == nil || errors.Is(err, spec.ErrBadInput) || !strings.Contains(err.Error(), "missing.mp4") {
		t.Errorf("missing input: %v, want a retryable error naming the file", err)
	}
}

// envParent marks the process TestCancelStopsChild starts and kills: it runs a
// transcode of LIVETAPE_TEST_SRC with LIVETAPE_TEST_BIN and says "started".
const envParent = "LIVETAPE_TEST_RUNNER_PARENT"

// childOf is the pid of a child process of pid, "" if none.
func childOf(pid int) string {
	dirs, _ := os.ReadDir("/proc")
	for _, d := range dirs {
		stat, err := os.ReadFile(filepath.Join("/proc", d.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid …: comm may hold spaces, so split after its ')'.
		_, rest, _ := strings.Cut(string(stat), ") ")
		if f := strings.Fields(rest); len(f) > 1 && f[1] == fmt.Sprint(pid) {
			return d.Name()
		}
	}
	return ""
}

// alive reports whether process pid runs (a zombie does not).
func alive(pid string) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(stat), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// Canceling a transcode stops the child: it is gone when Transcode returns, and no
// output or partial output is left — whether the child cleans up after SIGTERM or is
// killed before it can (StopGrace over). A parent killed with SIGKILL (a worker
// killed mid-job) takes its child with it.
func TestCancelStopsChild(t *testing.T) {
	if os.Getenv(envParent) == "1" {
		r := Runner{Binary: os.Getenv("LIVETAPE_TEST_BIN")}
		r.Transcode(context.Background(), os.Getenv("LIVETAPE_TEST_SRC"),
			[]spec.Output{{Template: sd(), Format: spec.FormatMP4, Path: os.Getenv("LIVETAPE_TEST_SRC") + ".sd.mp4"}}, nil)
		return
	}
	bin := transcodertest.Binary(t)
	dir := t.TempDir()
	src := makeSource(t, dir, 30)
	// The child of a killed parent dies at its next progress line (SIGPIPE) or, when
	// silent (the fake child sleeps), by the kernel's parent-death signal.
	fake := script(t, "exec sleep 600")
	for name, bin := range map[string]string{"parent killed": bin, "parent killed, child silent": fake} {
		t.Run(name, func(t *testing.T) {
			parent := exec.Command(os.Args[0], "-test.run=^TestCancelStopsChild$")
			parent.Env = append(os.Environ(), envParent+"=1", "LIVETAPE_TEST_BIN="+bin, "LIVETAPE_TEST_SRC="+src)
			if err := parent.Start(); err != nil {
				t.Fatal(err)
			}
			defer parent.Wait()
			defer parent.Process.Kill()
			var child string
			mediatest.WaitFor(t, "the parent to start its child", 30*time.Second, func() bool {
				child = childOf(parent.Process.Pid)
				return child != ""
			})
			t.Cleanup(func() {
				if n, err := strconv.Atoi(child); err == nil && alive(child) {
					syscall.Kill(n, syscall.SIGKILL)
				}
			})
			parent.Process.Kill()
			parent.Wait()
			mediatest.WaitFor(t, "the child to die with its parent", 10*time.Second, func() bool { return !alive(child) })
		})
	}
	for name, grace := range map[string]time.Duration{"SIGTERM": 0, "SIGKILL": time.Nanosecond} {
		t.Run(name, func(t *testing.T) {
			r := Runner{Binary: bin, StopGrace: grace}
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			outs := []spec.Output{{Template: sd(), Format: spec.FormatMP4, Path: filepath.Join(dir, name+"-sd.mp4")},
				{Template: spec.DefaultTemplates()[2], Format: spec.FormatHLS, Path: filepath.Join(dir, name+"-uhd")}}
			started := make(chan struct{})
			var once sync.Once
			done := make(chan error, 1)
			go func() {
				_, err := r.Transcode(ctx, src, outs, func(spec.Progress) { once.Do(func() { close(started) }) })
				done <- err
			}()
			select {
			case <-started:
			case err := <-done:
				t.Fatalf("transcode ended before it could be canceled: %v", err)
			}
			if len(transcodertest.Processes(bin)) == 0 {
				t.Fatal("no child running while the transcode reports progress")
			}
			cancel()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Errorf("canceled transcode: %v, want context.Canceled", err)
			}
			if pids := transcodertest.Processes(bin); len(pids) > 0 {
				t.Errorf("child still running after Transcode returned: %v", pids)
			}
			for _, o := range outs {
				noneLeft(t, o.Path, o.Path+".partial")
			}
		})
	}
}

// Without the executable, Find and every job say which setting names it.
func TestNotFoundNamesTheSetting(t *testing.T) {
	empty := t.TempDir()
	t.Setenv("PATH", empty)
	for _, configured := range []string{"", filepath.Join(empty, "nope")} {
		_, err := Find(configured)
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "transcode.binary") || !strings.Contains(err.Error(), "LIVETAPE_TRANSCODER") {
			t.Errorf("Find(%q): %v, want ErrNotFound naming transcode.binary and LIVETAPE_TRANSCODER", configured, err)
		}
	}
	r := New("")
	if _, err := r.Thumbnail(context.Background(), "in.mp4", filepath.Join(empty, "p.jpg"), spec.ThumbnailOptions{}); !errors.Is(err, ErrNotFound) {
		t.Errorf("job without the executable: %v", err)
	}

	// Found on $PATH, and by a configured name looked up there.
	exe := filepath.Join(empty, Name)
	if err := os.WriteFile(exe, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, configured := range []string{"", Name, exe} {
		if got, err := Find(configured); err != nil || got != exe {
			t.Errorf("Find(%q) = %q, %v; want %s", configured, got, err, exe)
		}
	}
}

// script writes an executable shell script standing in for the child.
func script(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "fake-transcoder")
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

// What the child prints is bounded before it is parsed: a line longer than
// MaxLineSize ends the job (the child is killed), and only the last few KiB of its
// stderr make the error.
func TestChildOutputBounded(t *testing.T) {
	src := filepath.Join(t.TempDir(), "in.mp4")
	outs := []spec.Output{{Template: sd(), Format: spec.FormatMP4, Path: filepath.Join(t.TempDir(), "o.mp4")}}

	// head blocks on the full pipe once the runner stops reading: only the kill ends it.
	long := Runner{Binary: script(t, `exec head -c 3000000 /dev/zero`)}
	if _, err := long.Transcode(context.Background(), src, outs, nil); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("a 3 MB line: %v, want token too long", err)
	}

	noisy := Runner{Binary: script(t, `i=0; while [ $i -lt 2000 ]; do echo "line $i of noise" >&2; i=$((i+1)); done; echo "the reason" >&2; exit 1`)}
	_, err := noisy.Transcode(context.Background(), src, outs, nil)
	if err == nil {
		t.Fatal("a child that exits 1: no error")
	}
	if !strings.HasSuffix(err.Error(), "the reason (exit status 1)") || len(err.Error()) > stderrKept+100 ||
		errors.Is(err, spec.ErrBadInput) || errors.Is(err, spec.ErrBadRequest) {
		t.Errorf("noisy child: %d bytes of error ending %q, want the last lines, retryable", len(err.Error()), err.Error()[max(0, len(err.Error())-80):])
	}

	refused := Runner{Binary: script(t, `echo "livetape-transcoder: transcoder: bad request: nope" >&2; exit 2`)}
	if _, err := refused.Transcode(context.Background(), src, outs, nil); !errors.Is(err, spec.ErrBadRequest) {
		t.Errorf("exit 2: %v, want spec.ErrBadRequest", err)
	}
}
