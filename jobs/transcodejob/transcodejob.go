// Package transcodejob runs the transcode and poster jobs (jobs.TaskTranscode,
// jobs.TaskPoster) in the livetape-transcoder executable (transcoder/runner), one child
// process per job: the process running the queue never maps FFmpeg's libraries. The
// API queues these jobs through package jobs alone.
package transcodejob

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/livetape/livetape/jobs"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/transcoder/runner"
	"github.com/livetape/livetape/transcoder/spec"
)

// Handler runs transcode and poster jobs: it reads the source recording from storage
// into a temporary file (the transcoder reads a path), has livetape-transcoder make the
// outputs there, and stores them beside the source. Register ProcessTranscode and
// ProcessPoster.
type Handler struct {
	Store   storage.Store
	Catalog *catalog.Catalog
	Queue   *jobs.Queue
	// Transcoder runs the livetape-transcoder executable. One not found (its Err set)
	// fails every job at once, with the error that names the setting.
	Transcoder runner.Runner
	// Templates are the templates jobs may name (the defaults and the configured ones);
	// each job passes the ones it uses to livetape-transcoder in full.
	Templates []spec.Template
	// PublicURL is the base of replay URLs (video_url = PublicURL + "/vod/" + key).
	PublicURL string
	// WorkDir receives the temporary files of running jobs (os.TempDir() when empty).
	WorkDir string
	Log     *slog.Logger
}

// Register routes the transcode and poster tasks of q to h.
func (h *Handler) Register(q *jobs.Queue) {
	q.Register(jobs.TaskTranscode, asynq.HandlerFunc(h.ProcessTranscode))
	q.Register(jobs.TaskPoster, asynq.HandlerFunc(h.ProcessPoster))
}

// output is one catalog entry a transcode makes, with the job output it shows as.
type output struct {
	rec *catalog.Recording
	out jobs.JobOutput
}

// ProcessTranscode handles jobs.TaskTranscode. A source that can never be transcoded
// (spec.ErrBadInput: truncated, corrupt, unsupported), a source deleted, no
// livetape-transcoder on this node, or a cancel fail the job at once; storage errors
// and a transcoder that crashed are retried. A failed job sends event
// 301 with errcode 1 and the reason; each output sends event 301 once stored.
func (h *Handler) ProcessTranscode(ctx context.Context, t *asynq.Task) error {
	var p jobs.TranscodePayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.JobID == "" || p.FileID == "" || len(p.Templates) == 0 {
		return fmt.Errorf("jobs: transcode: bad payload (%v): %w", err, asynq.SkipRetry)
	}
	log := h.Log.With("job_id", p.JobID, "file_id", p.FileID)
	if h.Queue.IsCanceled(ctx, p.JobID) {
		return fmt.Errorf("jobs: transcode %s: %w", p.JobID, jobs.ErrCanceled)
	}
	outs, err := h.transcode(ctx, p, log)
	if err != nil {
		err = h.Queue.CanceledOr(ctx, p.JobID, err)
		retried, _ := asynq.GetRetryCount(ctx)
		maxRetry, _ := asynq.GetMaxRetry(ctx)
		if errors.Is(err, asynq.SkipRetry) || retried >= maxRetry {
			h.failed(ctx, p, err, log)
		}
		return fmt.Errorf("jobs: transcode %s: %w", p.JobID, err)
	}
	res := jobs.JobResult{}
	for _, o := range outs {
		if err := h.notify(ctx, p, o); err != nil {
			return fmt.Errorf("jobs: transcode %s: notify: %w", p.JobID, err)
		}
		res.Outputs = append(res.Outputs, o.out)
	}
	if b, err := json.Marshal(res); err == nil {
		t.ResultWriter().Write(b)
	}
	return nil
}

// transcode makes, stores and catalogs the outputs the catalog does not have yet.
func (h *Handler) transcode(ctx context.Context, p jobs.TranscodePayload, log *slog.Logger) ([]output, error) {
	src, err := h.Catalog.Get(ctx, p.FileID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fmt.Errorf("recording %s was deleted: %w", p.FileID, asynq.SkipRetry)
	}
	if err != nil {
		return nil, err
	}
	var templates []spec.Template
	for _, name := range p.Templates {
		tpl, ok := spec.FindTemplate(h.Templates, name)
		if !ok {
			return nil, fmt.Errorf("unknown template %q (not in this worker's configuration): %w", name, asynq.SkipRetry)
		}
		templates = append(templates, tpl)
	}

	// What an earlier run stored already (the catalog entry is written last) is kept.
	var done []output
	var todo []spec.Template
	switch p.Format {
	case jobs.TranscodeHLS:
		if rec, err := h.Catalog.Get(ctx, jobs.RenditionFileID(src.FileID, p.Format, p.Templates)); err == nil {
			done = append(done, output{rec, outputOf(rec)})
		} else {
			todo = templates
		}
	case jobs.TranscodeMP4:
		for _, tpl := range templates {
			if rec, err := h.Catalog.Get(ctx, jobs.RenditionFileID(src.FileID, p.Format, []string{tpl.Name})); err == nil {
				done = append(done, output{rec, outputOf(rec)})
			} else {
				todo = append(todo, tpl)
			}
		}
	default:
		return nil, fmt.Errorf("unknown format %q: %w", p.Format, asynq.SkipRetry)
	}
	if len(todo) == 0 {
		log.Info("transcode: outputs stored by an earlier run")
		return done, nil
	}
	if h.Transcoder.Err != nil {
		return nil, transcodeError(h.Transcoder.Err)
	}

	dir, err := os.MkdirTemp(h.WorkDir, "livetape-transcode-")
	if err != nil {
		return nil, fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	input, err := h.download(ctx, src, dir)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	report := h.Queue.ProgressReporter(ctx, p.JobID)
	// The encode is 95 %; storing the outputs the rest, and completion says 100.
	progress := func(pr spec.Progress) { report(pr.Percent() * 0.95) }
	var made []output
	if p.Format == jobs.TranscodeHLS {
		res, err := h.Transcoder.TranscodeABR(ctx, input, filepath.Join(dir, "abr"), todo, progress)
		if err != nil {
			return nil, transcodeError(err)
		}
		o, err := h.storeABR(ctx, src, p, filepath.Join(dir, "abr"), res)
		if err != nil {
			return nil, err
		}
		made = append(made, o)
	} else {
		outs := make([]spec.Output, len(todo))
		for i, tpl := range todo {
			outs[i] = spec.Output{Template: tpl, Format: spec.FormatMP4, Path: filepath.Join(dir, tpl.Name+".mp4")}
		}
		res, err := h.Transcoder.Transcode(ctx, input, outs, progress)
		if err != nil {
			return nil, transcodeError(err)
		}
		for _, r := range res.Outputs {
			o, err := h.storeMP4(ctx, src, r, res.Duration)
			if err != nil {
				return nil, err
			}
			made = append(made, o)
		}
	}
	log.Info("transcode: stored", "format", p.Format, "templates", p.Templates, "took", time.Since(start).Round(time.Millisecond))
	// In the order the templates were asked for.
	all := append(done, made...)
	slices.SortStableFunc(all, func(a, b output) int {
		return slices.Index(p.Templates, a.out.Template) - slices.Index(p.Templates, b.out.Template)
	})
	return all, nil
}

// transcodeError makes final what retrying cannot help: a bad input, a request
// livetape-transcoder refuses, or no livetape-transcoder on this node (a node set up
// without it says so at start; the error names the setting).
func transcodeError(err error) error {
	if errors.Is(err, spec.ErrBadInput) || errors.Is(err, spec.ErrBadRequest) || errors.Is(err, runner.ErrNotFound) {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	return err
}

// download copies a recording's object into dir.
func (h *Handler) download(ctx context.Context, rec *catalog.Recording, dir string) (string, error) {
	r, _, err := h.Store.Open(ctx, rec.Key, 0, -1)
	if errors.Is(err, storage.ErrNotFound) {
		return "", fmt.Errorf("recording %s: %s is gone from storage: %w", rec.FileID, rec.Key, asynq.SkipRetry)
	}
	if err != nil {
		return "", fmt.Errorf("open recording %s: %w", rec.FileID, err)
	}
	defer r.Close()
	name := filepath.Join(dir, "source"+path.Ext(rec.Key))
	f, err := os.Create(name)
	if err != nil {
		return "", fmt.Errorf("download recording %s: %w", rec.FileID, err)
	}
	_, err = io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("download recording %s: %w", rec.FileID, err)
	}
	return name, nil
}

// rendition is the catalog entry of an output of src, without its objects.
func (h *Handler) rendition(src *catalog.Recording, fileID, format, template string, duration time.Duration) *catalog.Recording {
	stem := jobs.RenditionStem(src, fileID)
	return &catalog.Recording{
		FileID: fileID, App: src.App, StreamID: src.StreamID, PushID: src.PushID, Seq: src.Seq,
		Format: format, StartTime: src.StartTime, EndTime: src.EndTime, Duration: duration.Seconds(),
		StreamParam: src.StreamParam, NodeID: h.Queue.NodeID(), Type: catalog.TypeRendition,
		BroadcastID: src.BroadcastID, SourceFileID: src.FileID, Template: template,
		CatalogKey: stem + ".json",
	}
}

func (h *Handler) url(key string) string {
	return strings.TrimSuffix(h.PublicURL, "/") + "/vod/" + key
}

// storeMP4 uploads one MP4 rendition, then its catalog entry: a worker killed in
// between leaves an object no entry names, which the retry overwrites.
func (h *Handler) storeMP4(ctx context.Context, src *catalog.Recording, r spec.Rendition, duration time.Duration) (output, error) {
	fileID := jobs.RenditionFileID(src.FileID, jobs.TranscodeMP4, []string{r.Template})
	rec := h.rendition(src, fileID, jobs.TranscodeMP4, r.Template, duration)
	rec.Key = jobs.RenditionStem(src, fileID) + ".mp4"
	obj, err := storage.PutFile(ctx, h.Store, rec.Key, r.Path, "video/mp4")
	if err != nil {
		return output{}, err
	}
	rec.Objects, rec.Size = []string{rec.Key}, obj.Size
	rec.Width, rec.Height, rec.Bitrate = r.Width, r.Height, r.Bitrate
	rec.VideoURL, rec.StoredAt = h.url(rec.Key), time.Now().UTC()
	if err := h.Catalog.Put(ctx, rec); err != nil {
		return output{}, err
	}
	return output{rec, outputOf(rec)}, nil
}

// storeABR uploads an ABR set (segments, variant playlists, the master playlist last),
// then its one catalog entry, whose key is the master playlist.
func (h *Handler) storeABR(ctx context.Context, src *catalog.Recording, p jobs.TranscodePayload, dir string, res spec.Result) (output, error) {
	fileID := jobs.RenditionFileID(src.FileID, jobs.TranscodeHLS, p.Templates)
	stem := jobs.RenditionStem(src, fileID)
	rec := h.rendition(src, fileID, jobs.TranscodeHLS, jobs.ABRTemplate, res.Duration)
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			files = append(files, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		return output{}, fmt.Errorf("list the ABR set: %w", err)
	}
	// Playlists after what they name, the master last.
	rank := func(name string) int {
		switch {
		case name == spec.MasterPlaylist:
			return 2
		case strings.HasSuffix(name, ".m3u8"):
			return 1
		}
		return 0
	}
	slices.SortStableFunc(files, func(a, b string) int { return rank(a) - rank(b) })
	for _, name := range files {
		key := stem + "/" + name
		obj, err := storage.PutFile(ctx, h.Store, key, filepath.Join(dir, filepath.FromSlash(name)), "")
		if err != nil {
			return output{}, err
		}
		rec.Objects = append(rec.Objects, key)
		rec.Size += obj.Size
	}
	rec.Key = stem + "/" + spec.MasterPlaylist
	out := jobs.JobOutput{Template: jobs.ABRTemplate, Format: jobs.TranscodeHLS, FileID: fileID}
	for _, r := range res.Outputs {
		v := jobs.JobOutput{Template: r.Template, Format: jobs.TranscodeHLS, FileID: fileID,
			VideoURL: h.url(stem + "/" + r.Template + "/index.m3u8"), Width: r.Width, Height: r.Height, Bitrate: r.Bitrate}
		out.Variants = append(out.Variants, v)
		if r.Width*r.Height > rec.Width*rec.Height {
			rec.Width, rec.Height, rec.Bitrate = r.Width, r.Height, r.Bitrate
		}
	}
	rec.VideoURL, rec.StoredAt = h.url(rec.Key), time.Now().UTC()
	if err := h.Catalog.Put(ctx, rec); err != nil {
		return output{}, err
	}
	out.VideoURL, out.Width, out.Height, out.Bitrate = rec.VideoURL, rec.Width, rec.Height, rec.Bitrate
	return output{rec, out}, nil
}

// outputOf is the job output of a stored rendition.
func outputOf(rec *catalog.Recording) jobs.JobOutput {
	return jobs.JobOutput{Template: rec.Template, Format: rec.Format, FileID: rec.FileID, VideoURL: rec.VideoURL,
		Width: rec.Width, Height: rec.Height, Bitrate: rec.Bitrate}
}

// notify sends event 301 for a stored output; its id derives from the output's file id.
func (h *Handler) notify(ctx context.Context, p jobs.TranscodePayload, o output) error {
	rec := o.rec
	return h.Queue.Notify(ctx, jobs.Event{
		ChannelID: rec.StreamID, StreamID: rec.StreamID, App: rec.App,
		EventType: jobs.EventTranscodeDone, EventID: jobs.EventID(jobs.EventTranscodeDone, rec.FileID),
		FileID: rec.FileID, FileFormat: rec.Format, FileSize: rec.Size,
		StartTime: rec.StartTime.Unix(), EndTime: rec.EndTime.Unix(), Duration: rec.Duration,
		VideoID: rec.Key, VideoURL: rec.VideoURL, StreamParam: rec.StreamParam, ErrCode: 0, ErrMsg: "ok",
		JobID: p.JobID, BroadcastID: rec.BroadcastID, SourceFileID: rec.SourceFileID, Template: rec.Template,
		Width: rec.Width, Height: rec.Height, Bitrate: rec.Bitrate,
	})
}

// failed sends event 301 with errcode 1 for a job that gave up.
func (h *Handler) failed(ctx context.Context, p jobs.TranscodePayload, cause error, log *slog.Logger) {
	log.Error("transcode failed", "err", cause)
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ev := jobs.Event{
		EventType: jobs.EventTranscodeDone, EventID: jobs.EventID(jobs.EventTranscodeDone, p.JobID+"-failed"),
		ErrCode: 1, ErrMsg: strings.TrimSuffix(cause.Error(), ": "+asynq.SkipRetry.Error()),
		JobID: p.JobID, SourceFileID: p.FileID, Template: strings.Join(p.Templates, ","),
	}
	if rec, err := h.Catalog.Get(ctx, p.FileID); err == nil {
		ev.ChannelID, ev.StreamID, ev.App = rec.StreamID, rec.StreamID, rec.App
	}
	if err := h.Queue.Notify(ctx, ev); err != nil {
		log.Error("transcode: failure event not queued", "err", err)
	}
}

// ProcessPoster handles jobs.TaskPoster: a JPEG of the recording's frame at 10 % of
// its duration, in its aspect ratio, stored beside it (key stem + ".jpg"), named in
// its catalog entry (poster, poster_url) and announced by event 200.
func (h *Handler) ProcessPoster(ctx context.Context, t *asynq.Task) error {
	var p jobs.PosterPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil || p.FileID == "" {
		return fmt.Errorf("jobs: poster: bad payload (%v): %w", err, asynq.SkipRetry)
	}
	log := h.Log.With("file_id", p.FileID)
	rec, err := h.Catalog.Get(ctx, p.FileID)
	if errors.Is(err, storage.ErrNotFound) {
		return fmt.Errorf("jobs: poster of %s: the recording was deleted: %w", p.FileID, asynq.SkipRetry)
	}
	if err != nil {
		return fmt.Errorf("jobs: poster of %s: %w", p.FileID, err)
	}
	var th spec.Thumbnail
	var size int64
	if rec.Poster == "" {
		th, size, err = h.poster(ctx, rec)
		if err != nil {
			err = h.Queue.CanceledOr(ctx, jobs.PosterJobID(p.FileID), err)
			log.Warn("poster not made", "err", err)
			return fmt.Errorf("jobs: poster of %s: %w", p.FileID, err)
		}
		log.Info("poster stored", "key", rec.Poster, "width", th.Width, "height", th.Height)
	}
	err = h.Queue.Notify(ctx, jobs.Event{
		ChannelID: rec.StreamID, StreamID: rec.StreamID, App: rec.App,
		EventType: jobs.EventSnapshot, EventID: jobs.EventID(jobs.EventSnapshot, rec.FileID),
		FileID: rec.FileID, FileSize: size, Width: th.Width, Height: th.Height,
		PicURL: rec.Poster, PicFullURL: rec.PosterURL, CreateTime: time.Now().Unix(), BroadcastID: rec.BroadcastID,
	})
	if err != nil {
		return fmt.Errorf("jobs: poster of %s: notify: %w", p.FileID, err)
	}
	res := jobs.JobResult{Outputs: []jobs.JobOutput{{Format: "jpg", FileID: rec.FileID, VideoURL: rec.PosterURL, Width: th.Width, Height: th.Height}}}
	if b, err := json.Marshal(res); err == nil {
		t.ResultWriter().Write(b)
	}
	return nil
}

// poster makes and stores the poster of rec, and adds it to rec's catalog entry.
func (h *Handler) poster(ctx context.Context, rec *catalog.Recording) (spec.Thumbnail, int64, error) {
	if h.Transcoder.Err != nil {
		return spec.Thumbnail{}, 0, transcodeError(h.Transcoder.Err)
	}
	dir, err := os.MkdirTemp(h.WorkDir, "livetape-poster-")
	if err != nil {
		return spec.Thumbnail{}, 0, fmt.Errorf("work dir: %w", err)
	}
	defer os.RemoveAll(dir)
	input, err := h.download(ctx, rec, dir)
	if err != nil {
		return spec.Thumbnail{}, 0, err
	}
	jpeg := filepath.Join(dir, "poster.jpg")
	th, err := h.Transcoder.Thumbnail(ctx, input, jpeg, spec.ThumbnailOptions{})
	if err != nil {
		return spec.Thumbnail{}, 0, transcodeError(err)
	}
	key := jobs.PosterKey(rec)
	obj, err := storage.PutFile(ctx, h.Store, key, jpeg, "image/jpeg")
	if err != nil {
		return spec.Thumbnail{}, 0, err
	}
	rec.Poster, rec.PosterURL = key, h.url(key)
	if !slices.Contains(rec.Objects, key) {
		rec.Objects = append(rec.Objects, key) // deleted with the recording
	}
	if err := h.Catalog.Put(ctx, rec); err != nil {
		return spec.Thumbnail{}, 0, err
	}
	return th, obj.Size, nil
}
