// Package runner runs transcodes in the livetape-transcoder executable, one child
// process per job, so that the process asking (a livetape serve or worker) never maps
// FFmpeg's libraries. It speaks package spec's wire format and mirrors package
// transcoder's API: Transcode, TranscodeABR, Thumbnail.
package runner

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/livetape/livetape/transcoder/spec"
)

// Name is the executable's file name.
const Name = "livetape-transcoder"

// Setting names where the executable is configured, for the errors that ask for it.
const Setting = "transcode.binary (env LIVETAPE_TRANSCODER)"

// ErrNotFound: no livetape-transcoder where it was looked for.
var ErrNotFound = errors.New("transcoder not found")

// Find locates livetape-transcoder: configured (a path, or a name looked up on $PATH)
// when not empty, else beside the running executable, else on $PATH. The error wraps
// ErrNotFound and says where it looked and which setting to use.
func Find(configured string) (string, error) {
	if configured != "" {
		path, err := exec.LookPath(configured)
		if err != nil {
			return "", fmt.Errorf("%w: %s is %q: %w", ErrNotFound, Setting, configured, err)
		}
		return abs(path), nil
	}
	var looked []string
	if self, err := os.Executable(); err == nil {
		beside := filepath.Join(filepath.Dir(self), Name)
		if path, err := exec.LookPath(beside); err == nil {
			return abs(path), nil
		}
		looked = append(looked, beside)
	}
	if path, err := exec.LookPath(Name); err == nil {
		return abs(path), nil
	}
	looked = append(looked, "$PATH")
	return "", fmt.Errorf("%w: no %s at %s: build it (go build -o bin/ ./cmd/livetape-transcoder) or set %s",
		ErrNotFound, Name, strings.Join(looked, " or on "), Setting)
}

func abs(path string) string {
	if a, err := filepath.Abs(path); err == nil {
		return a
	}
	return path
}

// Runner runs jobs in the executable Binary. The zero Runner, or one with Err set (what
// Find returned), fails every job with that error.
type Runner struct {
	Binary string
	Err    error
	// StopGrace is how long a canceled child may take to stop and clean up after
	// SIGTERM before it is killed (default 10s).
	StopGrace time.Duration
}

// New is the Runner of Find(configured).
func New(configured string) Runner {
	bin, err := Find(configured)
	return Runner{Binary: bin, Err: err}
}

// ErrBadRequest marks a request the executable refused (spec.ExitBadRequest): running it
// again cannot help.
var ErrBadRequest = spec.ErrBadRequest

// Transcode is transcoder.Transcode in a child process.
func (r Runner) Transcode(ctx context.Context, input string, outputs []spec.Output, progress func(spec.Progress)) (spec.Result, error) {
	req := spec.Request{Op: spec.OpTranscode, Input: input, Outputs: outputs}
	var partial []string
	for _, o := range outputs {
		partial = append(partial, o.Path+".partial")
	}
	line, err := r.run(ctx, req, progress, partial)
	if err != nil {
		return spec.Result{}, err
	}
	if line.Result == nil {
		return spec.Result{}, fmt.Errorf("%s: no result printed", Name)
	}
	return *line.Result, nil
}

// TranscodeABR is transcoder.TranscodeABR in a child process.
func (r Runner) TranscodeABR(ctx context.Context, input, dir string, templates []spec.Template, progress func(spec.Progress)) (spec.Result, error) {
	req := spec.Request{Op: spec.OpABR, Input: input, Dir: dir, Templates: templates}
	line, err := r.run(ctx, req, progress, []string{dir + ".partial"})
	if err != nil {
		return spec.Result{}, err
	}
	if line.Result == nil {
		return spec.Result{}, fmt.Errorf("%s: no result printed", Name)
	}
	return *line.Result, nil
}

// Thumbnail writes a JPEG of input (transcoder.WriteThumbnail) to path, in a child
// process. path appears only once whole.
func (r Runner) Thumbnail(ctx context.Context, input, path string, opt spec.ThumbnailOptions) (spec.Thumbnail, error) {
	req := spec.Request{Op: spec.OpThumbnail, Input: input, Path: path, Thumbnail: opt}
	line, err := r.run(ctx, req, nil, []string{path + ".partial"})
	if err != nil {
		return spec.Thumbnail{}, err
	}
	if line.Thumbnail == nil {
		return spec.Thumbnail{}, fmt.Errorf("%s: no thumbnail printed", Name)
	}
	return *line.Thumbnail, nil
}

// run starts the child with req on stdin, passes its progress lines to progress, and
// returns its last line. On any failure it removes partial (what a killed child may
// leave), and the error carries the last lines of the child's stderr.
func (r Runner) run(ctx context.Context, req spec.Request, progress func(spec.Progress), partial []string) (line spec.Line, err error) {
	if r.Err != nil {
		return spec.Line{}, r.Err
	}
	if r.Binary == "" {
		return spec.Line{}, fmt.Errorf("%w: no executable given (%s)", ErrNotFound, Setting)
	}
	if err := req.Validate(); err != nil {
		return spec.Line{}, err
	}
	body, err := json.Marshal(req)
	if err != nil {
		return spec.Line{}, fmt.Errorf("transcoder request: %w", err)
	}
	defer func() {
		if err != nil {
			for _, p := range partial {
				os.RemoveAll(p)
			}
		}
	}()

	cmd := exec.CommandContext(ctx, r.Binary)
	cmd.Stdin = bytes.NewReader(body)
	stderr := &tail{max: stderrKept}
	cmd.Stderr = stderr
	// A cancel asks the child to stop (it removes its partial outputs), then kills it.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = r.StopGrace
	if cmd.WaitDelay <= 0 {
		cmd.WaitDelay = 10 * time.Second
	}
	killWithParent(cmd)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return spec.Line{}, fmt.Errorf("start %s: %w", Name, err)
	}
	if err := cmd.Start(); err != nil {
		return spec.Line{}, fmt.Errorf("start %s: %w", r.Binary, err)
	}

	var last spec.Line
	var readErr error
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 4096), spec.MaxLineSize)
	for sc.Scan() {
		var l spec.Line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			readErr = fmt.Errorf("%s printed %.80q: %w", Name, sc.Bytes(), err)
			break
		}
		if l.Progress != nil {
			if progress != nil {
				progress(*l.Progress)
			}
			continue
		}
		last = l
	}
	if readErr == nil {
		readErr = sc.Err() // a line over MaxLineSize
	}
	if readErr != nil {
		cmd.Process.Kill()
	}
	waitErr := cmd.Wait()
	if ctx.Err() != nil {
		return spec.Line{}, fmt.Errorf("transcoder: %w", ctx.Err())
	}
	if readErr != nil {
		return spec.Line{}, fmt.Errorf("read %s's output: %w", Name, readErr)
	}
	if waitErr != nil {
		return spec.Line{}, exitError(waitErr, stderr.String())
	}
	return last, nil
}

// exitError is the error of a child that failed: its own words (the last lines of its
// stderr), marked by its exit status.
func exitError(waitErr error, stderr string) error {
	msg := strings.TrimSpace(stderr)
	msg = strings.TrimPrefix(msg, Name+": ")
	if msg == "" {
		msg = Name + ": " + waitErr.Error()
	}
	var exit *exec.ExitError
	if errors.As(waitErr, &exit) {
		switch exit.ExitCode() {
		case spec.ExitBadInput:
			return &childError{msg: msg, kind: spec.ErrBadInput}
		case spec.ExitBadRequest:
			return &childError{msg: msg, kind: spec.ErrBadRequest}
		}
	}
	return &childError{msg: msg + " (" + waitErr.Error() + ")"}
}

// childError says what the child said; errors.Is finds its kind (spec.ErrBadInput,
// spec.ErrBadRequest), if any.
type childError struct {
	msg  string
	kind error
}

func (e *childError) Error() string { return e.msg }
func (e *childError) Unwrap() error { return e.kind }

// stderrKept bounds what is kept of a child's stderr: its last lines.
const stderrKept = 4 << 10

// tail keeps the last max bytes written to it, cut at a line start.
type tail struct {
	max int
	b   []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.b = append(t.b, p...)
	if over := len(t.b) - t.max; over > 0 {
		t.b = t.b[over:]
		if i := bytes.IndexByte(t.b, '\n'); i >= 0 && i < len(t.b)-1 {
			t.b = t.b[i+1:]
		}
	}
	return len(p), nil
}

func (t *tail) String() string { return string(t.b) }
