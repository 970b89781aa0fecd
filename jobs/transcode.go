package jobs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/livetape/livetape/storage/catalog"
)

// TaskTranscode transcodes a stored recording into renditions (jobs/transcodejob does
// the work: the transcoder is cgo, this package is not). It reads and writes storage
// only, so it runs on any worker (QueueCPU).
const TaskTranscode = "recording:transcode"

// TaskPoster takes a JPEG poster of a stored MP4 recording (jobs/transcodejob).
const TaskPoster = "recording:poster"

// Transcode output formats.
const (
	TranscodeMP4 = "mp4" // one progressive MP4 per template
	TranscodeHLS = "hls" // one HLS ABR set: a master playlist and a variant per template
)

// ABRTemplate is the template name of an ABR set's catalog entry: the set is one
// recording (its key is the master playlist), its variants are in the job's result.
const ABRTemplate = "abr"

// DefaultABRTemplates are the variants of the ABR set a push asks for with abr=1 and
// no transcode= list: the default templates' ladder.
var DefaultABRTemplates = []string{"sd", "hd", "uhd"}

// MaxTranscodeTemplates bounds the renditions of one job.
const MaxTranscodeTemplates = 8

// transcodeMaxRetry: storage outages are retried for a few hours, like a stitch.
const transcodeMaxRetry = 25

// TranscodeRequest is the body of POST /api/v1/transcode.
type TranscodeRequest struct {
	FileID    string   `json:"file_id"`
	Templates []string `json:"templates"`
	Format    string   `json:"format"` // mp4 (default) or hls
}

// TranscodePayload is a transcode task.
type TranscodePayload struct {
	JobID     string   `json:"job_id"`
	FileID    string   `json:"file_id"`
	Templates []string `json:"templates"`
	Format    string   `json:"format"`
}

// ErrBadTranscode marks a transcode request that cannot be done as asked (the API's 400).
var ErrBadTranscode = errors.New("bad transcode request")

func badTranscode(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrBadTranscode, fmt.Sprintf(format, args...))
}

// ResolveTranscode checks a request against the known template names and the catalog.
// Errors wrap ErrBadTranscode (the request is wrong) or storage.ErrNotFound (no such
// recording).
func ResolveTranscode(ctx context.Context, cat *catalog.Catalog, req TranscodeRequest, known []string) (TranscodePayload, error) {
	p := TranscodePayload{FileID: req.FileID, Format: req.Format}
	switch req.Format {
	case "":
		p.Format = TranscodeMP4
	case TranscodeMP4, TranscodeHLS:
	default:
		return p, badTranscode("format %.20q: want mp4 or hls", req.Format)
	}
	if len(req.Templates) == 0 || len(req.Templates) > MaxTranscodeTemplates {
		return p, badTranscode("%d templates: give 1 to %d of %s", len(req.Templates), MaxTranscodeTemplates, strings.Join(known, ", "))
	}
	for _, name := range req.Templates {
		if !slices.Contains(known, name) {
			return p, badTranscode("unknown template %.40q (known: %s)", name, strings.Join(known, ", "))
		}
		if slices.Contains(p.Templates, name) {
			return p, badTranscode("template %q given twice", name)
		}
		p.Templates = append(p.Templates, name)
	}
	if req.FileID == "" {
		return p, badTranscode("file_id is required")
	}
	rec, err := cat.Get(ctx, req.FileID)
	if err != nil {
		return p, fmt.Errorf("recording %.80q: %w", req.FileID, err)
	}
	if err := transcodable(rec); err != nil {
		return p, badTranscode("%v", err)
	}
	p.JobID = TranscodeJobID(p.FileID, p.Format, p.Templates)
	return p, nil
}

// transcodable says why a recording cannot be transcoded: the transcoder reads one
// file with a video track, so HLS recordings (a playlist of segments) and audio-only
// ones are refused.
func transcodable(rec *catalog.Recording) error {
	switch {
	case rec.Format != "mp4" && rec.Format != "flv":
		return fmt.Errorf("recording %s is %s: a transcode reads an MP4 or FLV recording", rec.FileID, rec.Format)
	case rec.AudioOnly:
		return fmt.Errorf("recording %s is audio only: nothing to scale", rec.FileID)
	case rec.Type == catalog.TypeRendition:
		return fmt.Errorf("recording %s is a rendition already: transcode its source %s", rec.FileID, rec.SourceFileID)
	}
	return nil
}

// TranscodeJobID derives the job id from what the job does ({file_id, format,
// templates}), so that the same request posted twice, or by the API and a push
// parameter, is one job.
func TranscodeJobID(fileID, format string, templates []string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s|%s|%s", fileID, format, strings.Join(templates, ","))
	return "transcode-" + hex.EncodeToString(h.Sum(nil)[:12])
}

// RenditionFileID is the file id of an output: {source}_{template} for an MP4
// rendition, {source}_abr-{t1}-{t2}… for an ABR set.
func RenditionFileID(sourceFileID, format string, templates []string) string {
	if format == TranscodeHLS {
		return sourceFileID + "_" + ABRTemplate + "-" + strings.Join(templates, "-")
	}
	return sourceFileID + "_" + templates[0]
}

// RenditionStem is the key stem of an output: the source's object name without its
// extension, then the part of the file id that follows the source's ("_sd", "_abr-sd-hd").
func RenditionStem(source *catalog.Recording, fileID string) string {
	stem := strings.TrimSuffix(source.Key, path.Ext(source.Key))
	return stem + strings.TrimPrefix(fileID, source.FileID)
}

// PosterKey is where the poster of a recording is stored: beside it, its key stem + ".jpg".
func PosterKey(rec *catalog.Recording) string {
	return strings.TrimSuffix(rec.Key, path.Ext(rec.Key)) + ".jpg"
}

// EnqueueTranscode queues a resolved transcode on QueueCPU with the job id as task id
// (a job queued again while queued, running, or completed less than
// CompletedRetention ago is not run again).
func (q *Queue) EnqueueTranscode(ctx context.Context, p TranscodePayload) error {
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("jobs: transcode payload: %w", err)
	}
	if err := q.Enqueue(ctx, asynq.NewTask(TaskTranscode, b), asynq.Queue(QueueCPU), asynq.TaskID(p.JobID),
		asynq.MaxRetry(transcodeMaxRetry), asynq.Timeout(6*time.Hour)); err != nil {
		return err
	}
	if err := q.indexJob(ctx, p.JobID, p.FileID); err != nil {
		return fmt.Errorf("jobs: transcode %s: index by file: %w", p.JobID, err)
	}
	return nil
}

// PosterPayload is a poster task.
type PosterPayload struct {
	FileID string `json:"file_id"`
}

// PosterJobID is the job id of the poster of a recording.
func PosterJobID(fileID string) string { return "poster-" + fileID }

// EnqueuePoster queues the poster of a stored MP4 recording.
func (q *Queue) EnqueuePoster(ctx context.Context, fileID string) error {
	b, err := json.Marshal(PosterPayload{FileID: fileID})
	if err != nil {
		return fmt.Errorf("jobs: poster payload: %w", err)
	}
	id := PosterJobID(fileID)
	if err := q.Enqueue(ctx, asynq.NewTask(TaskPoster, b), asynq.Queue(QueueCPU), asynq.TaskID(id),
		asynq.MaxRetry(transcodeMaxRetry), asynq.Timeout(10*time.Minute)); err != nil {
		return err
	}
	if err := q.indexJob(ctx, id, fileID); err != nil {
		return fmt.Errorf("jobs: poster %s: index by file: %w", id, err)
	}
	return nil
}

// PushTranscodes reads what a push asked for in its parameters (a recording's
// stream_param): transcode=sd|hd makes MP4 renditions, abr=1 an HLS ABR set of the
// same templates (DefaultABRTemplates without transcode=). live validated them at
// publish; a name unknown by now fails its job.
func PushTranscodes(streamParam string) (mp4, abr []string) {
	q, err := url.ParseQuery(strings.TrimPrefix(streamParam, "?"))
	if err != nil && len(q) == 0 {
		return nil, nil
	}
	for name := range strings.SplitSeq(q.Get("transcode"), "|") {
		if name = strings.TrimSpace(name); name != "" && !slices.Contains(mp4, name) && len(mp4) < MaxTranscodeTemplates {
			mp4 = append(mp4, name)
		}
	}
	if q.Get("abr") == "1" {
		abr = mp4
		if len(abr) == 0 {
			abr = DefaultABRTemplates
		}
	}
	return mp4, abr
}

// followUps queues the work that follows the storing of a recording: its poster, and
// the transcodes its push asked for. Task ids derive from the file id, so a retried
// upload queues each once.
func (q *Queue) followUps(ctx context.Context, rec *Recording, posters bool) error {
	if rec.Format != "mp4" || rec.AudioOnly {
		return nil
	}
	if posters {
		if err := q.EnqueuePoster(ctx, rec.FileID); err != nil {
			return err
		}
	}
	mp4, abr := PushTranscodes(rec.StreamParam)
	if len(mp4) > 0 {
		if err := q.EnqueueTranscode(ctx, TranscodePayload{JobID: TranscodeJobID(rec.FileID, TranscodeMP4, mp4),
			FileID: rec.FileID, Templates: mp4, Format: TranscodeMP4}); err != nil {
			return err
		}
	}
	if len(abr) > 0 {
		if err := q.EnqueueTranscode(ctx, TranscodePayload{JobID: TranscodeJobID(rec.FileID, TranscodeHLS, abr),
			FileID: rec.FileID, Templates: abr, Format: TranscodeHLS}); err != nil {
			return err
		}
	}
	return nil
}
