package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"strings"
	"time"

	"github.com/hibiken/asynq"

	"github.com/livetape/livetape/storage"
)

// TaskUpload uploads a closed recording fragment from the spool to storage, writes its
// catalog manifest beside it, deletes the spool copy and sends the "recording ready"
// callback.
const TaskUpload = "recording:upload"

// uploadMaxRetry keeps an upload retrying for days (backoff is capped at 10 minutes):
// the spool keeps the file meanwhile, and nothing is lost while storage is down.
const uploadMaxRetry = 1000

// Recording is the catalog entry of a stored recording: the JSON manifest kept beside
// the media in storage ({key stem}.json), the only record of it livetape needs.
type Recording struct {
	FileID      string    `json:"file_id"`
	App         string    `json:"app"`
	StreamID    string    `json:"stream_id"`
	PushID      string    `json:"push_id"`
	Seq         int       `json:"seq"`
	Format      string    `json:"format"`            // mp4, flv or hls
	Key         string    `json:"key"`               // the object to play (HLS: its playlist)
	Objects     []string  `json:"objects,omitempty"` // every object of the recording (HLS: playlist and segments)
	StartTime   time.Time `json:"start_time"`
	EndTime     time.Time `json:"end_time"`
	Duration    float64   `json:"duration"`     // seconds
	Size        int64     `json:"size"`         // bytes, all objects
	StreamParam string    `json:"stream_param"` // without txSecret/txTime
	AudioOnly   bool      `json:"audio_only,omitempty"`
	Recovered   bool      `json:"recovered,omitempty"`
	VideoURL    string    `json:"video_url"`
	StoredAt    time.Time `json:"stored_at"`
	// CatalogKey is the key of this entry itself.
	CatalogKey string `json:"catalog_key"`
}

// DefaultKeyTemplate names a recording's objects in storage; {ext} is mp4 or flv, and an
// HLS recording is a folder of that name (without the extension) holding index.m3u8
// and its segments.
const DefaultKeyTemplate = "{app}/{stream_id}/{start}_{file_id}.{ext}"

// ValidateKeyTemplate checks that a template names each recording apart.
func ValidateKeyTemplate(t string) error {
	if !strings.Contains(t, "{file_id}") || !strings.HasSuffix(t, ".{ext}") {
		return fmt.Errorf("key template %q: must contain {file_id} and end with .{ext}", t)
	}
	return nil
}

// ManifestKey is where the catalog entry of a recording lives: beside its media, with
// the extension .json.
func ManifestKey(r *Recording) string {
	if r.CatalogKey != "" {
		return r.CatalogKey
	}
	return r.keyStem(DefaultKeyTemplate) + ".json"
}

// keyStem expands the template without its ".{ext}": the recording's objects share it.
func (r *Recording) keyStem(template string) string {
	return strings.NewReplacer(
		"{app}", r.App,
		"{stream_id}", r.StreamID,
		"{start}", r.StartTime.UTC().Format("20060102T150405Z"),
		"{file_id}", r.FileID,
		"{format}", r.Format,
		"{date}", r.StartTime.UTC().Format("2006/01/02"),
	).Replace(strings.TrimSuffix(template, ".{ext}"))
}

// UploadPayload is the task of one fragment: which fragment of which node's spool,
// and the catalog entry to complete. It holds no local path.
type UploadPayload struct {
	Fragment  FragmentHandle `json:"fragment"`
	Recording Recording      `json:"recording"`
}

// EnqueueUpload queues the upload of a fragment this node recorded and closed: rec is
// its catalog entry so far (file id, app, stream, push, seq, format, times, push
// parameters). The task waits in this node's queue, which only this node serves,
// names the fragment by a handle its spool resolves, and has an id derived from the
// file id, so enqueueing it again (after a restart, from a reconcile) is harmless.
func (q *Queue) EnqueueUpload(ctx context.Context, rec Recording) error {
	p := UploadPayload{
		Fragment: FragmentHandle{NodeID: q.cfg.NodeID, App: rec.App, StreamID: rec.StreamID,
			PushID: rec.PushID, Seq: rec.Seq, Format: rec.Format},
		Recording: rec,
	}
	b, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("jobs: upload payload: %w", err)
	}
	return q.Enqueue(ctx, asynq.NewTask(TaskUpload, b), asynq.Queue(NodeQueue(q.cfg.NodeID)),
		asynq.TaskID("upload:"+rec.FileID), asynq.MaxRetry(uploadMaxRetry), asynq.Timeout(time.Hour))
}

// Uploader handles TaskUpload, on the node whose spool holds the fragments.
type Uploader struct {
	Store storage.Store
	Queue *Queue
	// Spool resolves fragment handles to files on this node's disk.
	Spool Spool
	// PublicURL is the base of replay URLs (video_url = PublicURL + "/vod/" + key).
	PublicURL string
	// KeyTemplate names the objects (DefaultKeyTemplate when empty); placeholders
	// {app} {stream_id} {start} {file_id} {format} {date} {ext}.
	KeyTemplate string
	Log         *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (u *Uploader) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p UploadPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: upload: bad payload: %v: %w", err, asynq.SkipRetry)
	}
	rec := p.Recording
	// A fragment spooled by an older version may still carry the push credentials.
	rec.StreamParam = RedactStreamParam(rec.StreamParam)
	log := u.Log.With("file_id", rec.FileID, "fragment", p.Fragment.String())
	if node := u.Queue.NodeID(); p.Fragment.NodeID != node {
		// Only this node serves its queue: two nodes share a node id, or a task was
		// moved by hand. Another disk holds the fragment; running it here would find
		// nothing, or the wrong file.
		return fmt.Errorf("jobs: upload %s: fragment of node %q, this is node %q: %w",
			rec.FileID, p.Fragment.NodeID, node, asynq.SkipRetry)
	}
	frag, err := u.Spool.Fragment(p.Fragment)
	if errors.Is(err, ErrFragmentGone) {
		// A run that stored it and deleted the spool copy, then died before or while
		// notifying: the catalog entry in storage says so.
		stored, err := u.loadStored(ctx, &rec)
		if err != nil {
			return fmt.Errorf("jobs: upload %s: spool copy gone and not in storage (%v): %w", rec.FileID, err, asynq.SkipRetry)
		}
		return u.notify(ctx, stored)
	}
	if err != nil {
		return fmt.Errorf("jobs: upload %s: spool: %w", rec.FileID, err)
	}
	if err := checkFragment(rec.Format, frag); err != nil {
		return fmt.Errorf("jobs: upload %s: spool gave %s: %w: %w", rec.FileID, p.Fragment, err, asynq.SkipRetry)
	}
	start := time.Now()
	if err := u.store(ctx, &rec, frag); err != nil {
		return fmt.Errorf("jobs: upload %s: %w", rec.FileID, err)
	}
	// Storage confirmed every object: the spool copy can go.
	if err := u.Spool.Remove(p.Fragment); err != nil {
		log.Warn("upload: spool copy not removed", "err", err)
	}
	log.Info("recording stored", "key", rec.Key, "size", rec.Size, "took", time.Since(start).Round(time.Millisecond))
	return u.notify(ctx, &rec)
}

// store uploads the fragment's files (HLS: segments, then the playlist) and the
// catalog entry; frag passed checkFragment.
func (u *Uploader) store(ctx context.Context, rec *Recording, frag Fragment) error {
	stem := rec.keyStem(u.template())
	rec.CatalogKey = stem + ".json"
	type upload struct{ key, file string }
	var ups []upload
	if rec.Format == "hls" {
		var playlist upload
		for _, f := range frag.Files {
			up := upload{stem + "/" + f.Name, f.Path}
			if strings.HasSuffix(f.Name, ".m3u8") {
				playlist = up
				continue
			}
			ups = append(ups, up)
		}
		// The playlist last: once it is there, everything it names is.
		ups = append(ups, playlist)
		rec.Key = playlist.key
	} else {
		f := frag.Files[0]
		ups = []upload{{stem + path.Ext(f.Name), f.Path}}
		rec.Key = ups[0].key
	}
	rec.Objects, rec.Size = nil, 0
	for _, up := range ups {
		obj, err := storage.PutFile(ctx, u.Store, up.key, up.file, "")
		if err != nil {
			return err
		}
		rec.Objects = append(rec.Objects, up.key)
		rec.Size += obj.Size
	}
	rec.VideoURL = strings.TrimSuffix(u.PublicURL, "/") + "/vod/" + rec.Key
	rec.StoredAt = time.Now().UTC()
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	_, err = u.Store.Put(ctx, ManifestKey(rec), bytes.NewReader(b), int64(len(b)), "application/json")
	return err
}

func (u *Uploader) loadStored(ctx context.Context, rec *Recording) (*Recording, error) {
	return LoadRecording(ctx, u.Store, rec.keyStem(u.template())+".json")
}

func (u *Uploader) template() string {
	if u.KeyTemplate == "" {
		return DefaultKeyTemplate
	}
	return u.KeyTemplate
}

// LoadRecording reads a catalog entry from storage.
func LoadRecording(ctx context.Context, st storage.Store, key string) (*Recording, error) {
	rc, _, err := st.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r Recording
	if err := json.NewDecoder(rc).Decode(&r); err != nil {
		return nil, fmt.Errorf("jobs: catalog entry %s: %w", key, err)
	}
	// Entries stored by older versions may still carry the push credentials.
	r.StreamParam = RedactStreamParam(r.StreamParam)
	return &r, nil
}

// notify sends the "recording ready" event (100); its id is derived from the file id,
// so a second run does not send a second event.
func (u *Uploader) notify(ctx context.Context, rec *Recording) error {
	ev := Event{
		ChannelID:   rec.StreamID,
		StreamID:    rec.StreamID,
		App:         rec.App,
		EventType:   EventRecordingReady,
		EventID:     EventID(EventRecordingReady, rec.FileID),
		FileID:      rec.FileID,
		FileFormat:  rec.Format,
		FileSize:    rec.Size,
		StartTime:   rec.StartTime.Unix(),
		EndTime:     rec.EndTime.Unix(),
		Duration:    rec.Duration,
		VideoID:     rec.Key,
		VideoURL:    rec.VideoURL,
		StreamParam: rec.StreamParam,
	}
	return u.Queue.Notify(ctx, ev)
}
