package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/transcoder/spec"
)

func runChild(args []string, stdin string) (code int, stdout, stderr string) {
	var out, errb bytes.Buffer
	code = run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

// Requests that cannot run exit with ExitBadRequest and say why on stderr, without
// reading more than MaxRequestSize.
func TestBadRequests(t *testing.T) {
	sd := spec.DefaultTemplates()[0]
	good := spec.Request{Op: spec.OpTranscode, Input: "in.mp4", Outputs: []spec.Output{{Template: sd, Format: spec.FormatMP4, Path: "o.mp4"}}}
	mutate := func(f func(*spec.Request)) string {
		r := good
		r.Outputs = append([]spec.Output(nil), good.Outputs...)
		f(&r)
		b, _ := json.Marshal(r)
		return string(b)
	}
	for name, c := range map[string]struct {
		args  []string
		stdin string
		want  string
	}{
		"empty stdin":     {nil, "", "unexpected end of JSON"},
		"not JSON":        {[]string{"{op"}, "", "invalid character"},
		"two arguments":   {[]string{"{}", "{}"}, "", "one argument at most"},
		"too large":       {[]string{"-"}, `{"input":"` + strings.Repeat("x", spec.MaxRequestSize) + `"}`, "larger than"},
		"unknown op":      {[]string{mutate(func(r *spec.Request) { r.Op = "rm" })}, "", `op "rm"`},
		"no input":        {[]string{mutate(func(r *spec.Request) { r.Input = "" })}, "", "no input"},
		"bad template":    {[]string{mutate(func(r *spec.Request) { r.Outputs[0].Template.Name = "../x" })}, "", "the name must be"},
		"path used twice": {[]string{mutate(func(r *spec.Request) { r.Outputs = append(r.Outputs, r.Outputs[0]) })}, "", "used twice"},
		"abr twice":       {nil, `{"op":"abr","input":"i","dir":"d","templates":[{"name":"sd","short_side":360,"video_kbps":800,"audio_kbps":64},{"name":"sd","short_side":360,"video_kbps":800,"audio_kbps":64}]}`, "given twice"},
	} {
		code, stdout, stderr := runChild(c.args, c.stdin)
		if code != spec.ExitBadRequest || stdout != "" || !strings.Contains(stderr, c.want) || !strings.Contains(stderr, "bad request") {
			t.Errorf("%s: exit %d, stdout %q, stderr %.200q; want %d and %q", name, code, stdout, stderr, spec.ExitBadRequest, c.want)
		}
	}
}

// A truncated source exits with ExitBadInput; a good one prints progress lines and
// then the result, and exits 0.
func TestExitStatuses(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	dir := t.TempDir()
	src := filepath.Join(dir, "in.mp4")
	if out, err := exec.Command("ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
		"-f", "lavfi", "-i", "sine", "-t", "2", "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", src).CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v\n%s", err, out)
	}
	req := func(input string) string {
		b, _ := json.Marshal(spec.Request{Op: spec.OpThumbnail, Input: input, Path: filepath.Join(dir, "p.jpg")})
		return string(b)
	}
	data, _ := os.ReadFile(src)
	cut := filepath.Join(dir, "cut.mp4")
	os.WriteFile(cut, data[:len(data)/3], 0o644)
	if code, _, stderr := runChild(nil, req(cut)); code != spec.ExitBadInput || !strings.Contains(stderr, "bad input") {
		t.Errorf("truncated input: exit %d, %q; want %d", code, stderr, spec.ExitBadInput)
	}
	if code, _, stderr := runChild([]string{req(filepath.Join(dir, "missing.mp4"))}, ""); code != spec.ExitFailed || !strings.Contains(stderr, "missing.mp4") {
		t.Errorf("missing input: exit %d, %q; want %d", code, stderr, spec.ExitFailed)
	}

	b, _ := json.Marshal(spec.Request{Op: spec.OpTranscode, Input: src, Outputs: []spec.Output{
		{Template: spec.DefaultTemplates()[0], Format: spec.FormatMP4, Path: filepath.Join(dir, "sd.mp4")}}})
	code, stdout, stderr := runChild([]string{"-"}, string(b))
	if code != spec.ExitOK || stderr != "" {
		t.Fatalf("transcode: exit %d, stderr %q", code, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	var last spec.Line
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil || last.Result == nil || len(last.Result.Outputs) != 1 || last.Result.Outputs[0].Height != 360 {
		t.Fatalf("last line %q (%v), want the result", lines[len(lines)-1], err)
	}
	for _, l := range lines[:len(lines)-1] {
		var p spec.Line
		if err := json.Unmarshal([]byte(l), &p); err != nil || p.Progress == nil || p.Progress.Total <= 0 {
			t.Errorf("line %q (%v), want progress", l, err)
		}
	}
	if len(lines) < 3 {
		t.Errorf("%d lines, want progress lines before the result:\n%s", len(lines), stdout)
	}
}
