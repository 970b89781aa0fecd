// Command livetape-transcoder runs one transcode job with FFmpeg's libraries (package
// transcoder, cgo) and exits: MP4 renditions, an HLS ABR set, or a JPEG poster. livetape
// runs it for its transcode and poster jobs and for `livetape transcode`, so that
// livetape itself never maps FFmpeg: only the process doing a transcode does.
//
//	livetape-transcoder REQUEST_JSON
//	livetape-transcoder < request.json
//
// The request and the JSON lines it prints are package spec's (transcoder/spec/wire.go):
//
//	livetape-transcoder '{"op":"transcode","input":"in.mp4","outputs":[{"template":{"name":"sd","short_side":360,"video_kbps":800,"audio_kbps":64},"format":"mp4","path":"sd.mp4"}]}'
//	{"progress":{"done":500000000,"total":10000000000}}
//	…
//	{"result":{"duration":10000000000,"outputs":[{"template":"sd","format":"mp4","path":"sd.mp4","width":640,…}]}}
//
// Exit status: 0 done, 1 failed (may work another time), 2 bad request, 3 bad input
// (the media can never be transcoded). SIGTERM or SIGINT stop the job and remove what
// it wrote.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/livetape/livetape/transcoder"
	"github.com/livetape/livetape/transcoder/spec"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run does the job args or stdin ask for and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fail := func(code int, err error) int {
		fmt.Fprintln(stderr, "livetape-transcoder:", err)
		return code
	}
	var src io.Reader
	switch {
	case len(args) > 1:
		return fail(spec.ExitBadRequest, fmt.Errorf("%w: one argument at most (the request), got %d", spec.ErrBadRequest, len(args)))
	case len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help"):
		fmt.Fprintln(stdout, "usage: livetape-transcoder REQUEST_JSON, or the request on stdin (see transcoder/spec/wire.go)")
		return spec.ExitOK
	case len(args) == 1 && args[0] != "-":
		src = strings.NewReader(args[0])
	default:
		src = stdin
	}
	req, err := spec.ReadRequest(src)
	if err != nil {
		return fail(spec.ExitBadRequest, err)
	}
	lines := json.NewEncoder(stdout)
	line, err := do(ctx, req, lines)
	if err == nil {
		err = lines.Encode(line)
	}
	switch {
	case err == nil:
		return spec.ExitOK
	case errors.Is(err, spec.ErrBadInput):
		return fail(spec.ExitBadInput, err)
	}
	return fail(spec.ExitFailed, err)
}

// do runs req, printing its progress on lines, and returns the line of its result.
func do(ctx context.Context, req spec.Request, lines *json.Encoder) (spec.Line, error) {
	last := -1
	progress := func(p spec.Progress) {
		// Once per whole percent: a long source reports twice a second of media.
		if pct := int(math.Floor(p.Percent())); pct != last {
			last = pct
			lines.Encode(spec.Line{Progress: &p})
		}
	}
	switch req.Op {
	case spec.OpTranscode:
		res, err := transcoder.Transcode(ctx, req.Input, req.Outputs, progress)
		return spec.Line{Result: &res}, err
	case spec.OpABR:
		res, err := transcoder.TranscodeABR(ctx, req.Input, req.Dir, req.Templates, progress)
		return spec.Line{Result: &res}, err
	case spec.OpThumbnail:
		th, err := thumbnail(ctx, req)
		return spec.Line{Thumbnail: &th}, err
	}
	return spec.Line{}, fmt.Errorf("%w: op %q", spec.ErrBadRequest, req.Op)
}

// thumbnail writes the JPEG to req.Path, under a ".partial" name until it is whole.
func thumbnail(ctx context.Context, req spec.Request) (spec.Thumbnail, error) {
	var jpeg bytes.Buffer
	th, err := transcoder.WriteThumbnail(ctx, req.Input, &jpeg, req.Thumbnail)
	if err != nil {
		return spec.Thumbnail{}, err
	}
	tmp := req.Path + ".partial"
	if err := os.WriteFile(tmp, jpeg.Bytes(), 0o644); err != nil {
		os.Remove(tmp)
		return spec.Thumbnail{}, fmt.Errorf("write poster: %w", err)
	}
	if err := os.Rename(tmp, req.Path); err != nil {
		os.Remove(tmp)
		return spec.Thumbnail{}, fmt.Errorf("write poster: %w", err)
	}
	return th, nil
}
