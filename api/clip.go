package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/packager/mp4concat"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// DefaultMaxClipWindow bounds the window a clip may ask for: its moov is built in
// memory (some 4 bytes per sample), so the window bounds the memory of a request.
const DefaultMaxClipWindow = 6 * time.Hour

// namePattern is what an app or a stream id may be (stream.ValidStreamID's rule): a
// clip URL names them, and nothing else reaches the catalog.
var namePattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,128}$`)

// Clip serves time-range clips of the recorded MP4 fragments of a stream:
//
//	GET|HEAD /vod/clip/{app}/{stream_id}.mp4?start=RFC3339&end=RFC3339[&gaps=keep|close]
//
// The clip is one fast-start MP4 remuxed on the fly from the recordings that overlap
// the window (mp4concat.Clip): it starts at the keyframe at or before start, ends at
// end, its timestamps start at 0. Nothing is written anywhere: the moovs of the inputs
// are read to plan it, then its bytes are read from storage by range as they are sent,
// so Range requests work (http.ServeContent). Paths under /vod/clip/ that are not of
// that shape (a recording of an app named "clip") go to Next.
type Clip struct {
	Catalog *catalog.Catalog
	Store   storage.Store
	// PlayKey, when set (live.play_key), makes a clip URL need txSecret/txTime signed
	// for the stream id with it, like a live play URL: a clip names a stream and a
	// time, which anyone can guess, where a /vod/ key holds a file id.
	PlayKey string
	// MaxWindow bounds end - start (DefaultMaxClipWindow when 0).
	MaxWindow time.Duration
	// Next serves the paths that are not clip URLs (the VOD handler).
	Next http.Handler
	Log  *slog.Logger
}

func (c *Clip) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	app, streamID, ok := clipPath(r.URL.Path)
	if c.Next != nil && (!ok || c.isRecording(r)) {
		c.Next.ServeHTTP(w, r)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Access-Control-Allow-Origin", "*")
	if !ok {
		c.refuse(w, r, http.StatusNotFound, "not a clip URL: want /vod/clip/{app}/{stream_id}.mp4?start=RFC3339&end=RFC3339")
		return
	}
	q := r.URL.Query()
	if c.PlayKey != "" {
		if err := sign.Verify([]string{c.PlayKey}, streamID, q.Get("txSecret"), q.Get("txTime"), time.Now()); err != nil {
			c.refuse(w, r, http.StatusForbidden, "play signature: "+err.Error())
			return
		}
	}
	start, end, gaps, err := c.window(q.Get("start"), q.Get("end"), q.Get("gaps"))
	if err != nil {
		c.refuse(w, r, http.StatusBadRequest, err.Error())
		return
	}
	recs, err := clipRecordings(r.Context(), c.Catalog, app, streamID, start, end)
	switch {
	case errors.Is(err, catalog.ErrTooMany):
		c.refuse(w, r, http.StatusBadRequest, "the window holds more than 1000 recordings: ask for a shorter one")
		return
	case err != nil:
		c.fail(w, r, err)
		return
	case len(recs) == 0:
		c.refuse(w, r, http.StatusNotFound, fmt.Sprintf("nothing of %s/%s recorded as MP4 between %s and %s",
			app, streamID, start.Format(time.RFC3339), end.Format(time.RFC3339)))
		return
	}

	inputs, closeAll, err := openInputs(r.Context(), c.Store, recs)
	if err != nil {
		c.fail(w, r, err)
		return
	}
	defer closeAll()
	movie, err := mp4concat.Clip(inputs, start, end, mp4concat.Options{Gaps: gaps})
	switch {
	case errors.Is(err, mp4concat.ErrNoMedia):
		c.refuse(w, r, http.StatusNotFound, "no recorded frame in the window")
		return
	case errors.Is(err, mp4concat.ErrConfigMismatch):
		// A clip is remuxed while it is served; joining recordings that differ needs a
		// transcode, which the stitch job does.
		why := ""
		var m *mp4concat.MismatchError
		if errors.As(err, &m) {
			why = fmt.Sprintf(": %s, %s track: %s", m.Input, m.Track, m.Reason())
		}
		c.refuse(w, r, http.StatusConflict, "the recordings in this window differ in codec configuration"+why+
			" (the publisher changed its settings); a clip is remuxed, never transcoded: ask for a window on one side of the change,"+
			" or POST /api/v1/stitch with this window, which transcodes them to one template")
		return
	case errors.Is(err, mp4concat.ErrUnsupported):
		c.log().Error("vod: clip: a recording of the window cannot be read", "path", r.URL.Path, "err", err)
		http.Error(w, "a recording of the window cannot be read", http.StatusInternalServerError)
		return
	case err != nil:
		c.fail(w, r, err)
		return
	}
	// Planning read the moovs on each input's first request; the media is read from
	// the chunks on, so those requests end here and each input opens one when reached.
	closeAll()

	h := w.Header()
	h.Set("Content-Type", "video/mp4")
	h.Set("ETag", clipETag(recs, start, end, gaps))
	c.log().Debug("vod: clip", "app", app, "stream_id", streamID, "start", start, "end", end,
		"recordings", len(recs), "bytes", movie.Size(), "range", r.Header.Get("Range"))
	http.ServeContent(w, r, "", lastStored(recs), movie.NewReader())
}

// clipPath splits "/vod/clip/{app}/{stream_id}.mp4"; ok is false for any other shape.
func clipPath(p string) (app, streamID string, ok bool) {
	rest, ok := strings.CutPrefix(p, "/vod/clip/")
	if !ok {
		return "", "", false
	}
	app, file, ok := strings.Cut(rest, "/")
	streamID, isMP4 := strings.CutSuffix(file, ".mp4")
	if !ok || !isMP4 || !namePattern.MatchString(app) || !namePattern.MatchString(streamID) {
		return "", "", false
	}
	return app, streamID, true
}

// isRecording tells a request for a recording of an app named "clip" (whose keys,
// {app}/{stream_id}/{start}_{file_id}.mp4, read as a clip URL under /vod/) from a clip
// request: it has no start and no end, and the object exists.
func (c *Clip) isRecording(r *http.Request) bool {
	q := r.URL.Query()
	if q.Has("start") || q.Has("end") {
		return false
	}
	_, err := c.Store.Stat(r.Context(), strings.TrimPrefix(r.URL.Path, "/vod/"))
	return err == nil
}

// window parses and checks the clip's window and gap mode.
func (c *Clip) window(startS, endS, gapsS string) (start, end time.Time, gaps mp4concat.GapMode, err error) {
	if startS == "" || endS == "" {
		return start, end, gaps, errors.New("start and end are required, as RFC 3339 times (2026-11-21T10:00:00Z)")
	}
	// Bounded before parsing: an RFC 3339 time with nanoseconds and an offset is 35 bytes.
	if len(startS) > 64 || len(endS) > 64 {
		return start, end, gaps, errors.New("start and end are RFC 3339 times (2026-11-21T10:00:00Z)")
	}
	if start, err = time.Parse(time.RFC3339Nano, startS); err != nil {
		return start, end, gaps, fmt.Errorf("start %q is not an RFC 3339 time (2026-11-21T10:00:00Z)", startS)
	}
	if end, err = time.Parse(time.RFC3339Nano, endS); err != nil {
		return start, end, gaps, fmt.Errorf("end %q is not an RFC 3339 time (2026-11-21T10:00:00Z)", endS)
	}
	maxWindow := c.MaxWindow
	if maxWindow <= 0 {
		maxWindow = DefaultMaxClipWindow
	}
	switch {
	case !end.After(start):
		return start, end, gaps, errors.New("end must be after start")
	case end.Sub(start) > maxWindow:
		return start, end, gaps, fmt.Errorf("window of %s: a clip is at most %s", end.Sub(start), maxWindow)
	}
	gaps, err = parseGaps(gapsS, mp4concat.KeepGaps)
	return start, end, gaps, err
}

// parseGaps reads a gaps parameter: "keep" (a jump in the timeline stays, the last
// frame before it held) or "close" (the next recording follows at once).
func parseGaps(s string, def mp4concat.GapMode) (mp4concat.GapMode, error) {
	switch s {
	case "":
		return def, nil
	case "keep":
		return mp4concat.KeepGaps, nil
	case "close":
		return mp4concat.CloseGaps, nil
	}
	return def, fmt.Errorf("gaps %.20q: want keep or close", s)
}

// clipRecordings returns the recorded MP4 fragments of a stream that overlap
// [start, end), oldest first.
func clipRecordings(ctx context.Context, cat *catalog.Catalog, app, streamID string, start, end time.Time) ([]*catalog.Recording, error) {
	recs, err := cat.Overlapping(ctx, catalog.Query{App: app, StreamID: streamID, Format: "mp4", Type: catalog.TypeFragment}, start, end)
	if err != nil {
		return nil, fmt.Errorf("list the recordings of %s/%s: %w", app, streamID, err)
	}
	return recs, nil
}

// openInputs opens each recording's object as an mp4concat.Input read through storage
// by range. closeAll ends every open request (the inputs stay usable).
func openInputs(ctx context.Context, store storage.Store, recs []*catalog.Recording) (inputs []mp4concat.Input, closeAll func(), err error) {
	var readers []*storage.ReaderAt
	closeAll = func() {
		for _, r := range readers {
			r.Close()
		}
	}
	for _, rec := range recs {
		r, err := storage.OpenReaderAt(ctx, store, rec.Key)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("open recording %s: %w", rec.FileID, err)
		}
		readers = append(readers, r)
		inputs = append(inputs, mp4concat.Input{Name: rec.FileID, R: r, Size: r.Size(), Start: rec.StartTime})
	}
	return inputs, closeAll, nil
}

// clipETag names a clip's bytes: the same recordings (each as stored then) cut at the
// same window give the same movie, so If-Range and caches can tell when a recording
// arrived in the window meanwhile.
func clipETag(recs []*catalog.Recording, start, end time.Time, gaps mp4concat.GapMode) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d|%d|%d", start.UnixNano(), end.UnixNano(), gaps)
	for _, rec := range recs {
		fmt.Fprintf(h, "|%s|%d|%d", rec.FileID, rec.Size, rec.StoredAt.UnixNano())
	}
	return `"clip-` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

func lastStored(recs []*catalog.Recording) time.Time {
	var t time.Time
	for _, rec := range recs {
		if rec.StoredAt.After(t) {
			t = rec.StoredAt
		}
	}
	return t
}

func (c *Clip) refuse(w http.ResponseWriter, r *http.Request, code int, msg string) {
	c.log().Warn("vod: clip refused", "path", r.URL.Path, "client", r.RemoteAddr, "status", code, "reason", msg)
	http.Error(w, msg, code)
}

func (c *Clip) fail(w http.ResponseWriter, r *http.Request, err error) {
	if errors.Is(err, storage.ErrNotFound) {
		// The catalog names an object the store lacks: deleted meanwhile.
		c.refuse(w, r, http.StatusNotFound, "a recording of the window is gone from storage")
		return
	}
	c.log().Error("vod: clip", "path", r.URL.Path, "err", err)
	http.Error(w, "storage unavailable", http.StatusBadGateway)
}

func (c *Clip) log() *slog.Logger {
	if c.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return c.Log
}
