package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/livetape/livetape/packager/mp4concat"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// TaskStitch joins stored MP4 recordings into one (packager/mp4concat, a remux, or when
// their codec configurations differ a transcode of each to one template in
// livetape-transcoder first), stores and catalogs it and sends event 300. It runs on
// any worker (QueueCPU); only a stitch that needs a transcode needs the transcoder.
const TaskStitch = "recording:stitch"

// Stitch limits, checked before a job is queued.
const (
	// MaxStitchInputs bounds the recordings of one stitch (a moov each in memory).
	MaxStitchInputs = 1000
	// MaxStitchWindow bounds a stitch by time range.
	MaxStitchWindow = 24 * time.Hour
)

// stitchMaxRetry: storage outages are retried for a few hours (backoff capped at
// 10 minutes), then the job fails with event 300 saying why.
const stitchMaxRetry = 25

// StitchRequest is the body of POST /api/v1/stitch: exactly one of FileIDs,
// BroadcastID, or App+StreamID+From+To.
type StitchRequest struct {
	// FileIDs are MP4 recordings of one stream, joined whole in the order given.
	FileIDs []string `json:"file_ids,omitempty"`
	// BroadcastID joins the MP4 fragments of a broadcast, oldest first. App and
	// StreamID may name its stream; they are not needed once the broadcast is in the
	// catalog.
	BroadcastID string `json:"broadcast_id,omitempty"`
	// App, StreamID, From and To cut the window [From, To) out of a stream's MP4
	// fragments, as /vod/clip does, and store it.
	App      string    `json:"app,omitempty"`
	StreamID string    `json:"stream_id,omitempty"`
	From     time.Time `json:"from,omitzero"`
	To       time.Time `json:"to,omitzero"`
	// Gaps is "close" (the default: each recording follows the previous one) or
	// "keep" (the time between them stays, the last frame held).
	Gaps string `json:"gaps,omitempty"`
}

// StitchPayload is a stitch task: the request resolved to recordings.
type StitchPayload struct {
	JobID   string   `json:"job_id"`
	FileIDs []string `json:"file_ids"` // in output order
	// Type is the output's catalog type: broadcast or clip.
	Type        string    `json:"type"`
	BroadcastID string    `json:"broadcast_id,omitempty"`
	From        time.Time `json:"from,omitzero"` // a window to cut; zero: whole recordings
	To          time.Time `json:"to,omitzero"`
	Gaps        string    `json:"gaps"`
}

// OutputFileID is the file id of the job's result: {stream_id}_{job_id}_mp4.
func (p StitchPayload) OutputFileID(streamID string) string {
	return streamID + "_" + p.JobID + "_mp4"
}

// ErrBadStitch marks a stitch request that cannot be done as asked (the API's 400).
var ErrBadStitch = errors.New("bad stitch request")

func badStitch(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadStitch, fmt.Sprintf(format, args...))
}

// ResolveStitch checks a request and finds its recordings in the catalog. Errors wrap
// ErrBadStitch (the request is wrong) or storage.ErrNotFound (a file id, or nothing
// in the window).
func ResolveStitch(ctx context.Context, cat *catalog.Catalog, req StitchRequest) (StitchPayload, error) {
	p := StitchPayload{Gaps: req.Gaps}
	switch req.Gaps {
	case "":
		p.Gaps = "close"
	case "close", "keep":
	default:
		return p, badStitch("gaps %.20q: want keep or close", req.Gaps)
	}
	byRange := req.App != "" || req.StreamID != "" || !req.From.IsZero() || !req.To.IsZero()
	modes := 0
	for _, set := range []bool{len(req.FileIDs) > 0, req.BroadcastID != "", byRange && req.BroadcastID == ""} {
		if set {
			modes++
		}
	}
	if modes != 1 {
		return p, badStitch("give exactly one of file_ids, broadcast_id, or app+stream_id+from+to")
	}
	var recs []*catalog.Recording
	var err error
	switch {
	case len(req.FileIDs) > 0:
		p.Type = catalog.TypeClip
		recs, err = resolveFileIDs(ctx, cat, req.FileIDs)
	case req.BroadcastID != "":
		p.Type, p.BroadcastID = catalog.TypeBroadcast, req.BroadcastID
		recs, err = resolveBroadcast(ctx, cat, req)
	default:
		p.Type, p.From, p.To = catalog.TypeClip, req.From, req.To
		recs, err = resolveWindow(ctx, cat, req)
	}
	if err != nil {
		return p, err
	}
	for _, rec := range recs {
		p.FileIDs = append(p.FileIDs, rec.FileID)
	}
	p.JobID = stitchJobID(p)
	return p, nil
}

func resolveFileIDs(ctx context.Context, cat *catalog.Catalog, ids []string) ([]*catalog.Recording, error) {
	if len(ids) > MaxStitchInputs {
		return nil, badStitch("%d file ids: at most %d", len(ids), MaxStitchInputs)
	}
	seen := map[string]bool{}
	var recs []*catalog.Recording
	for _, id := range ids {
		if seen[id] {
			return nil, badStitch("file id %.80q given twice", id)
		}
		seen[id] = true
		rec, err := cat.Get(ctx, id)
		if err != nil {
			return nil, fmt.Errorf("recording %.80q: %w", id, err)
		}
		if rec.Format != "mp4" {
			return nil, badStitch("recording %s is %s: a stitch joins MP4 recordings", id, rec.Format)
		}
		if len(recs) > 0 && (rec.App != recs[0].App || rec.StreamID != recs[0].StreamID) {
			return nil, badStitch("recording %s is of %s/%s, %s of %s/%s: a stitch joins the recordings of one stream",
				id, rec.App, rec.StreamID, recs[0].FileID, recs[0].App, recs[0].StreamID)
		}
		recs = append(recs, rec)
	}
	return recs, nil
}

// resolveBroadcast lists a broadcast's MP4 fragments: those of its stream (from its
// catalog entry, or as the request names it) that carry its id.
func resolveBroadcast(ctx context.Context, cat *catalog.Catalog, req StitchRequest) ([]*catalog.Recording, error) {
	if !req.From.IsZero() || !req.To.IsZero() {
		return nil, badStitch("broadcast_id takes no from/to")
	}
	b, err := cat.GetBroadcast(ctx, req.BroadcastID)
	switch {
	case err == nil:
		if (req.App != "" && req.App != b.App) || (req.StreamID != "" && req.StreamID != b.StreamID) {
			return nil, badStitch("broadcast %s is of %s/%s, not %s/%s", b.BroadcastID, b.App, b.StreamID, req.App, req.StreamID)
		}
		req.App, req.StreamID = b.App, b.StreamID
	case !errors.Is(err, storage.ErrNotFound):
		return nil, fmt.Errorf("look up broadcast %.80q: %w", req.BroadcastID, err)
	case req.App == "" || req.StreamID == "":
		// Not in the catalog: fragments recorded before broadcasts were, found by stream.
		return nil, fmt.Errorf("broadcast %.80q (give app and stream_id for one the catalog has no entry of): %w", req.BroadcastID, storage.ErrNotFound)
	}
	var recs []*catalog.Recording
	for page := 1; ; page++ {
		res, err := cat.List(ctx, catalog.Query{App: req.App, StreamID: req.StreamID, Format: "mp4",
			Type: catalog.TypeFragment, Page: page, PageSize: catalog.MaxPageSize})
		if err != nil {
			return nil, fmt.Errorf("list the recordings of %s/%s: %w", req.App, req.StreamID, err)
		}
		for _, rec := range res.Recordings {
			if rec.BroadcastID == req.BroadcastID {
				recs = append(recs, rec)
			}
		}
		if len(recs) > MaxStitchInputs {
			return nil, badStitch("broadcast %s has more than %d recordings", req.BroadcastID, MaxStitchInputs)
		}
		if page*catalog.MaxPageSize >= res.Total {
			break
		}
	}
	if len(recs) == 0 {
		return nil, fmt.Errorf("no MP4 recording of broadcast %.80q of %s/%s: %w", req.BroadcastID, req.App, req.StreamID, storage.ErrNotFound)
	}
	return recs, nil
}

func resolveWindow(ctx context.Context, cat *catalog.Catalog, req StitchRequest) ([]*catalog.Recording, error) {
	switch {
	case req.App == "" || req.StreamID == "" || req.From.IsZero() || req.To.IsZero():
		return nil, badStitch("a stitch by time needs app, stream_id, from and to (RFC 3339)")
	case !req.To.After(req.From):
		return nil, badStitch("to must be after from")
	case req.To.Sub(req.From) > MaxStitchWindow:
		return nil, badStitch("window of %s: at most %s", req.To.Sub(req.From), MaxStitchWindow)
	}
	recs, err := cat.Overlapping(ctx, catalog.Query{App: req.App, StreamID: req.StreamID, Format: "mp4",
		Type: catalog.TypeFragment}, req.From, req.To)
	switch {
	case errors.Is(err, catalog.ErrTooMany):
		return nil, badStitch("%v", err)
	case err != nil:
		return nil, fmt.Errorf("list the recordings of %s/%s: %w", req.App, req.StreamID, err)
	case len(recs) == 0:
		return nil, fmt.Errorf("nothing of %s/%s recorded as MP4 between %s and %s: %w", req.App, req.StreamID,
			req.From.Format(time.RFC3339), req.To.Format(time.RFC3339), storage.ErrNotFound)
	}
	return recs, nil
}

// stitchJobID derives the job id from what the job does, so that the same request
// posted twice is one job (and one output).
func stitchJobID(p StitchPayload) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s|%d|%d", p.Type, p.BroadcastID, p.Gaps, p.From.UnixNano(), p.To.UnixNano())
	for _, id := range p.FileIDs {
		fmt.Fprintf(h, "|%s", id)
	}
	return "stitch-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// EnqueueStitch queues a resolved stitch on QueueCPU with the job id as task id: a
// job queued again while it is queued, running, or completed less than
// CompletedRetention ago is not run again.
func (q *Queue) EnqueueStitch(ctx context.Context, p StitchPayload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("jobs: stitch payload: %w", err)
	}
	if err := q.Enqueue(ctx, asynq.NewTask(TaskStitch, b), asynq.Queue(QueueCPU), asynq.TaskID(p.JobID),
		asynq.MaxRetry(stitchMaxRetry), asynq.Timeout(time.Hour)); err != nil {
		return err
	}
	if err := q.indexJob(ctx, p.JobID, p.FileIDs...); err != nil {
		return fmt.Errorf("jobs: stitch %s: index by file: %w", p.JobID, err)
	}
	return nil
}

// Stitcher handles TaskStitch.
type Stitcher struct {
	Store   storage.Store
	Catalog *catalog.Catalog
	Queue   *Queue
	// PublicURL is the base of replay URLs (video_url = PublicURL + "/vod/" + key).
	PublicURL string
	// KeyTemplate names the output (catalog.DefaultKeyTemplate when empty).
	KeyTemplate string
	// Transcoder transcodes inputs whose codec configurations differ. One not found
	// (its Err set, or the zero Runner) fails only the stitches that need it.
	Transcoder runner.Runner
	// Templates are the ones StitchTemplate chooses from (spec.DefaultTemplates when
	// empty).
	Templates []spec.Template
	// WorkDir receives the inputs and transcodes of a running stitch (os.TempDir()
	// when empty).
	WorkDir string
	Log     *slog.Logger
}

// stitched is what a stitch made: the catalogued output, and how.
type stitched struct {
	rec      *catalog.Recording
	mode     string // StitchRemux or StitchTranscode ("" when an earlier run stored it)
	template string // the template of a transcode
}

// ProcessTask implements asynq.Handler. What cannot succeed on a retry (an input
// deleted, a damaged input, codec configurations that differ with no transcoder on this
// node or that still differ once transcoded) fails the job at once;
// either way a failed job sends event 300 with errcode 1 and the reason.
func (s *Stitcher) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p StitchPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.JobID == "" || len(p.FileIDs) == 0 {
		return fmt.Errorf("jobs: stitch: bad payload (%v): %w", err, asynq.SkipRetry)
	}
	log := s.Log.With("job_id", p.JobID)
	if s.Queue.IsCanceled(ctx, p.JobID) {
		return fmt.Errorf("jobs: stitch %s: %w", p.JobID, ErrCanceled)
	}
	res, err := s.stitch(ctx, p, log)
	if err != nil {
		err = s.Queue.CanceledOr(ctx, p.JobID, err)
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if errors.Is(err, asynq.SkipRetry) || retried >= maxRetry {
			s.failed(ctx, p, err, log)
		}
		return fmt.Errorf("jobs: stitch %s: %w", p.JobID, err)
	}
	if p.Type == catalog.TypeBroadcast && p.BroadcastID != "" {
		if err := s.Queue.broadcastReplayStored(ctx, s.Catalog, p.BroadcastID, res.rec.FileID); err != nil {
			return fmt.Errorf("jobs: stitch %s: %w", p.JobID, err)
		}
	}
	if err := s.notify(ctx, p, res); err != nil {
		return fmt.Errorf("jobs: stitch %s: notify: %w", p.JobID, err)
	}
	// The job's result, shown by GET /api/v1/jobs/{id}.
	rec := res.rec
	out := JobOutput{Format: rec.Format, FileID: rec.FileID, VideoURL: rec.VideoURL, Template: res.template,
		Width: rec.Width, Height: rec.Height, Stitch: res.mode}
	if rec.Duration > 0 {
		out.Bitrate = int64(float64(rec.Size*8) / rec.Duration)
	}
	if b, err := json.Marshal(JobResult{Outputs: []JobOutput{out}}); err == nil {
		t.ResultWriter().Write(b)
	}
	return nil
}

// stitch makes, stores and catalogs the output, or finds it done by an earlier run.
func (s *Stitcher) stitch(ctx context.Context, p StitchPayload, log *slog.Logger) (stitched, error) {
	var ins []*catalog.Recording
	for _, id := range p.FileIDs {
		rec, err := s.Catalog.Get(ctx, id)
		if errors.Is(err, storage.ErrNotFound) {
			return stitched{}, fmt.Errorf("recording %s was deleted: %w", id, asynq.SkipRetry)
		}
		if err != nil {
			return stitched{}, err
		}
		ins = append(ins, rec)
	}
	out := &catalog.Recording{
		FileID: p.OutputFileID(ins[0].StreamID), App: ins[0].App, StreamID: ins[0].StreamID,
		Format: "mp4", Type: p.Type, BroadcastID: p.BroadcastID, SourceFileIDs: p.FileIDs,
		NodeID: s.Queue.NodeID(),
	}
	if done, err := s.Catalog.Get(ctx, out.FileID); err == nil {
		log.Info("stitch: already stored by an earlier run", "file_id", out.FileID)
		return stitched{rec: done}, nil
	}

	inputs := make([]mp4concat.Input, 0, len(ins))
	var readers []*storage.ReaderAt
	defer func() {
		for _, r := range readers {
			r.Close()
		}
	}()
	for _, rec := range ins {
		r, err := storage.OpenReaderAt(ctx, s.Store, rec.Key)
		if errors.Is(err, storage.ErrNotFound) {
			return stitched{}, fmt.Errorf("recording %s: %s is gone from storage: %w", rec.FileID, rec.Key, asynq.SkipRetry)
		}
		if err != nil {
			return stitched{}, fmt.Errorf("open recording %s: %w", rec.FileID, err)
		}
		readers = append(readers, r)
		inputs = append(inputs, mp4concat.Input{Name: rec.FileID, R: r, Size: r.Size(), Start: rec.StartTime})
	}
	opts := mp4concat.Options{Gaps: mp4concat.CloseGaps}
	if p.Gaps == "keep" {
		opts.Gaps = mp4concat.KeepGaps
	}
	join := func(inputs []mp4concat.Input) (*mp4concat.Movie, error) {
		if p.From.IsZero() {
			return mp4concat.Concat(inputs, opts)
		}
		return mp4concat.Clip(inputs, p.From, p.To, opts)
	}
	res := stitched{rec: out, mode: StitchRemux}
	movie, err := join(inputs)
	if errors.Is(err, mp4concat.ErrConfigMismatch) {
		var cleanup func()
		movie, res.template, cleanup, err = s.transcodeAndJoin(ctx, p, ins, inputs, out, err, join, log)
		defer cleanup()
		res.mode = StitchTranscode
	}
	switch {
	case errors.Is(err, mp4concat.ErrUnsupported), errors.Is(err, mp4concat.ErrNoMedia):
		return stitched{}, fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	case err != nil:
		return stitched{}, err // reading an input failed: storage, retried; a transcode's errors say
	}

	// Wall-clock times of the first and last frames; with gaps closed the duration is
	// less than their difference.
	out.StartTime = movie.Start.UTC()
	out.Duration = movie.Duration.Seconds()
	out.EndTime = ins[len(ins)-1].End().UTC()
	if !p.To.IsZero() && p.To.Before(out.EndTime) {
		out.EndTime = p.To.UTC()
	}
	out.Template = s.KeyTemplate
	if out.Template == catalog.DefaultKeyTemplate {
		out.Template = ""
	}
	out.Key = out.KeyStem(out.Template) + ".mp4"
	out.Objects = []string{out.Key}
	start := time.Now()
	// A plain reader: the S3 backend streams it part by part in order, where a
	// ReaderAt would be read at several places at once (one request per jump).
	obj, err := s.Store.Put(ctx, out.Key, struct{ io.Reader }{movie.NewReader()}, movie.Size(), "video/mp4")
	if err != nil {
		return stitched{}, fmt.Errorf("store %s: %w", out.Key, err)
	}
	out.Size = obj.Size
	out.VideoURL = strings.TrimSuffix(s.PublicURL, "/") + "/vod/" + out.Key
	out.StoredAt = time.Now().UTC()
	if err := s.Catalog.Put(ctx, out); err != nil {
		return stitched{}, err
	}
	log.Info("stitch: stored", "file_id", out.FileID, "key", out.Key, "inputs", len(ins), "size", out.Size,
		"duration", out.Duration, "stitch", res.mode, "template", res.template, "took", time.Since(start).Round(time.Millisecond))
	return res, nil
}

// notify sends event 300 for a stored output; its id derives from the file id.
func (s *Stitcher) notify(ctx context.Context, p StitchPayload, res stitched) error {
	rec := res.rec
	return s.Queue.Notify(ctx, Event{
		ChannelID: rec.StreamID, StreamID: rec.StreamID, App: rec.App,
		EventType: EventStitchDone, EventID: EventID(EventStitchDone, rec.FileID),
		FileID: rec.FileID, FileFormat: rec.Format, FileSize: rec.Size,
		StartTime: rec.StartTime.Unix(), EndTime: rec.EndTime.Unix(), Duration: rec.Duration,
		VideoID: rec.Key, VideoURL: rec.VideoURL, ErrCode: 0, ErrMsg: "ok",
		JobID: p.JobID, BroadcastID: p.BroadcastID, Stitch: res.mode, Template: res.template,
		Width: rec.Width, Height: rec.Height,
	})
}

// transcodeAndJoin is the stitch of inputs whose configurations differ (mismatch says
// how): it copies them into a work directory, transcodes each to the StitchTemplate of
// them, and joins the transcodes as the inputs would have been; out gets their picture
// size. cleanup closes and
// removes what it made once the movie has been read; it is never nil.
func (s *Stitcher) transcodeAndJoin(ctx context.Context, p StitchPayload, ins []*catalog.Recording, inputs []mp4concat.Input, out *catalog.Recording,
	mismatch error, join func([]mp4concat.Input) (*mp4concat.Movie, error), log *slog.Logger,
) (movie *mp4concat.Movie, template string, cleanup func(), err error) {
	cleanup = func() {}
	reason := mismatch.Error()
	var m *mp4concat.MismatchError
	if errors.As(mismatch, &m) {
		reason = m.Input + ": " + m.Track + " " + m.Reason()
	}
	if s.Transcoder.Err != nil || s.Transcoder.Binary == "" {
		notFound := s.Transcoder.Err
		if notFound == nil {
			notFound = fmt.Errorf("%w: none given (%s)", runner.ErrNotFound, runner.Setting)
		}
		return nil, "", cleanup, fmt.Errorf("the recordings differ in codec configuration (%s), which needs a transcode on this node: %w: %w",
			reason, notFound, asynq.SkipRetry)
	}
	infos, durations, err := ProbeForStitch(inputs)
	if err != nil {
		return nil, "", cleanup, err
	}
	tpl := StitchTemplate(s.Templates, infos)
	log.Info("stitch: the recordings differ, transcoding them first", "reason", reason, "template", tpl.Name, "short_side", tpl.ShortSide)

	dir, err := os.MkdirTemp(s.WorkDir, "livetape-stitch-")
	if err != nil {
		return nil, "", cleanup, fmt.Errorf("work dir: %w", err)
	}
	var files []*os.File
	cleanup = func() {
		for _, f := range files {
			f.Close()
		}
		os.RemoveAll(dir)
	}
	var paths []string
	for i, rec := range ins {
		path := filepath.Join(dir, fmt.Sprintf("input-%04d.mp4", i))
		if err := download(inputs[i], path); err != nil {
			return nil, "", cleanup, fmt.Errorf("copy recording %s: %w", rec.FileID, err)
		}
		paths = append(paths, path)
	}
	// The transcodes are 90 % of the job; joining and storing the rest.
	report := s.Queue.ProgressReporter(ctx, p.JobID)
	outs, err := TranscodeForStitch(ctx, s.Transcoder, paths, durations, dir, tpl,
		func(pc float64) { report(pc * 0.9) }, func(path string) { os.Remove(path) })
	if err != nil {
		if errors.Is(err, spec.ErrBadInput) || errors.Is(err, spec.ErrBadRequest) || errors.Is(err, runner.ErrNotFound) {
			err = fmt.Errorf("%w: %w", err, asynq.SkipRetry)
		}
		return nil, "", cleanup, err
	}
	transcoded, err := OpenTranscodes(outs, inputs, &files)
	if err != nil {
		return nil, "", cleanup, err
	}
	if first, err := mp4concat.Probe(transcoded[0]); err == nil {
		out.Width, out.Height = first.Width, first.Height
	}
	movie, err = join(transcoded)
	if errors.Is(err, mp4concat.ErrConfigMismatch) {
		// Different aspect ratios, orientations, frame rates or audio sample rates: the
		// transcoder keeps each input's.
		return nil, "", cleanup, fmt.Errorf("the recordings differ in codec configuration (%s), and still do once transcoded to template %s: %w: %w",
			reason, tpl.Name, err, asynq.SkipRetry)
	}
	return movie, tpl.Name, cleanup, err
}

// download copies a stitch input into the file path.
func download(in mp4concat.Input, path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, io.NewSectionReader(in.R, 0, in.Size))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// failed sends event 300 with errcode 1 for a job that gave up.
func (s *Stitcher) failed(ctx context.Context, p StitchPayload, cause error, log *slog.Logger) {
	log.Error("stitch failed", "err", cause)
	ev := Event{
		EventType: EventStitchDone, EventID: EventID(EventStitchDone, p.JobID+"-failed"),
		ErrCode: 1, ErrMsg: strings.TrimSuffix(cause.Error(), ": "+asynq.SkipRetry.Error()),
		JobID: p.JobID, BroadcastID: p.BroadcastID,
	}
	if rec, err := s.Catalog.Get(ctx, p.FileIDs[0]); err == nil {
		ev.ChannelID, ev.StreamID, ev.App = rec.StreamID, rec.StreamID, rec.App
	}
	if err := s.Queue.Notify(ctx, ev); err != nil {
		log.Error("stitch: failure event not queued", "err", err)
	}
}
