package spec

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
)

// The wire format between livetape and livetape-transcoder, one job per run:
//
//	livetape-transcoder '{"op":"transcode","input":"in.mp4","outputs":[…]}'
//	livetape-transcoder < request.json        (no argument, or "-": the request on stdin)
//
// stdout carries JSON lines: Line{Progress} while the job runs (once per whole
// percent), then one Line{Result} or Line{Thumbnail} on success. stderr carries the
// error, in words. The exit status says how it ended (ExitOK, ExitFailed,
// ExitBadRequest, ExitBadInput). SIGTERM or SIGINT stop the job and leave no output.

// Operations of a Request.
const (
	OpTranscode = "transcode" // Input → Outputs (MP4 files or HLS directories)
	OpABR       = "abr"       // Input → an HLS ABR set in Dir, one variant per template
	OpThumbnail = "thumbnail" // Input → a JPEG at Path
)

// Exit statuses of livetape-transcoder.
const (
	ExitOK         = 0
	ExitFailed     = 1 // the machine failed (I/O, memory, a signal): another run may work
	ExitBadRequest = 2 // the request is malformed: the caller's mistake, never retried
	ExitBadInput   = 3 // the input can never be transcoded (ErrBadInput), never retried
)

// MaxRequestSize bounds a request, read before it is parsed.
const MaxRequestSize = 1 << 20

// MaxLineSize bounds one line of livetape-transcoder's stdout.
const MaxLineSize = 1 << 20

// MaxTemplates bounds the renditions of one request.
const MaxTemplates = 16

// Request is one job of livetape-transcoder. Templates travel in full: the child reads
// no configuration.
type Request struct {
	Op    string `json:"op"`
	Input string `json:"input"`
	// Outputs of OpTranscode.
	Outputs []Output `json:"outputs,omitempty"`
	// Dir and Templates of OpABR.
	Dir       string     `json:"dir,omitempty"`
	Templates []Template `json:"templates,omitempty"`
	// Path (the JPEG) and Thumbnail of OpThumbnail.
	Path      string           `json:"path,omitempty"`
	Thumbnail ThumbnailOptions `json:"thumbnail,omitzero"`
}

// Line is one line of livetape-transcoder's stdout: exactly one field is set.
type Line struct {
	Progress  *Progress  `json:"progress,omitempty"`
	Result    *Result    `json:"result,omitempty"`
	Thumbnail *Thumbnail `json:"thumbnail,omitempty"`
}

// ErrBadRequest marks a request livetape-transcoder refuses (ExitBadRequest).
var ErrBadRequest = errors.New("transcoder: bad request")

// ReadRequest reads and checks one request from r, bounded by MaxRequestSize. Errors
// wrap ErrBadRequest.
func ReadRequest(r io.Reader) (Request, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxRequestSize+1))
	if err != nil {
		return Request{}, fmt.Errorf("%w: read: %w", ErrBadRequest, err)
	}
	if len(data) > MaxRequestSize {
		return Request{}, fmt.Errorf("%w: larger than %d bytes", ErrBadRequest, MaxRequestSize)
	}
	var req Request
	if err := json.Unmarshal(data, &req); err != nil {
		return Request{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	if err := req.Validate(); err != nil {
		return Request{}, err
	}
	return req, nil
}

// Validate reports what makes req impossible to run. Errors wrap ErrBadRequest.
func (req Request) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrBadRequest, fmt.Sprintf(format, args...))
	}
	if req.Input == "" {
		return bad("no input")
	}
	var templates []Template
	switch req.Op {
	case OpTranscode:
		if len(req.Outputs) == 0 || len(req.Outputs) > MaxTemplates {
			return bad("%d outputs: want 1 to %d", len(req.Outputs), MaxTemplates)
		}
		seen := map[string]bool{}
		for _, o := range req.Outputs {
			if o.Format != FormatMP4 && o.Format != FormatHLS {
				return bad("output format %.20q: want mp4 or hls", o.Format)
			}
			if o.Path == "" || seen[filepath.Clean(o.Path)] {
				return bad("output path %q empty or used twice", o.Path)
			}
			seen[filepath.Clean(o.Path)] = true
			templates = append(templates, o.Template)
		}
	case OpABR:
		if req.Dir == "" {
			return bad("abr: no dir")
		}
		if len(req.Templates) == 0 || len(req.Templates) > MaxTemplates {
			return bad("abr: %d templates: want 1 to %d", len(req.Templates), MaxTemplates)
		}
		templates = req.Templates
	case OpThumbnail:
		if req.Path == "" {
			return bad("thumbnail: no path")
		}
		if req.Thumbnail.At < 0 || req.Thumbnail.ShortSide < 0 || req.Thumbnail.ShortSide > 4320 {
			return bad("thumbnail: at %v, short_side %d out of range", req.Thumbnail.At, req.Thumbnail.ShortSide)
		}
	default:
		return bad("op %.20q: want %s, %s or %s", req.Op, OpTranscode, OpABR, OpThumbnail)
	}
	names := map[string]bool{}
	for _, t := range templates {
		if err := t.Validate(); err != nil {
			return fmt.Errorf("%w: %w", ErrBadRequest, err)
		}
		if req.Op == OpABR && names[t.Name] {
			return bad("abr: template %q given twice", t.Name)
		}
		names[t.Name] = true
	}
	return nil
}
