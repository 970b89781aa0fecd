package jobs

import (
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
	"github.com/livetape/livetape/storage/catalog"
)

// TaskUpload uploads a closed recording fragment from the spool to storage, writes its
// catalog manifest beside it, deletes the spool copy and sends the "recording ready"
// callback.
const TaskUpload = "recording:upload"

// uploadMaxRetry keeps an upload retrying for days (backoff is capped at 10 minutes):
// the spool keeps the file meanwhile, and nothing is lost while storage is down.
const uploadMaxRetry = 1000

// Recording is the catalog entry of a stored recording (storage/catalog owns it): what
// an upload task carries, completes and stores.
type Recording = catalog.Recording

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
	// Before the task exists: the broadcast's automatic stitch must not miss it.
	if err := q.broadcastFragmentPending(ctx, rec); err != nil {
		return err
	}
	return q.Enqueue(ctx, asynq.NewTask(TaskUpload, b), asynq.Queue(NodeQueue(q.cfg.NodeID)),
		asynq.TaskID("upload:"+rec.FileID), asynq.MaxRetry(uploadMaxRetry), asynq.Timeout(time.Hour))
}

// Uploader handles TaskUpload, on the node whose spool holds the fragments.
type Uploader struct {
	Store storage.Store
	// Catalog receives the entry of every stored fragment.
	Catalog *catalog.Catalog
	Queue   *Queue
	// Spool resolves fragment handles to files on this node's disk.
	Spool Spool
	// PublicURL is the base of replay URLs (video_url = PublicURL + "/vod/" + key).
	PublicURL string
	// KeyTemplate names the objects (catalog.DefaultKeyTemplate when empty); placeholders
	// {app} {stream_id} {start} {file_id} {format} {date} {ext}.
	KeyTemplate string
	// Posters queues a poster job (TaskPoster) for every MP4 recording stored. The
	// transcodes a push asked for (transcode=, abr=) are queued either way.
	Posters bool
	Log     *slog.Logger
}

// ProcessTask implements asynq.Handler.
func (u *Uploader) ProcessTask(ctx context.Context, t *asynq.Task) error {
	var p UploadPayload
	if err := json.Unmarshal(t.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: upload: bad payload: %v: %w", err, asynq.SkipRetry)
	}
	rec := p.Recording
	// A fragment spooled by an older version may still carry the push credentials.
	rec.StreamParam = catalog.PublicStreamParam(rec.StreamParam)
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
		if err := u.Queue.broadcastFragmentStored(ctx, stored); err != nil {
			return fmt.Errorf("jobs: upload %s: %w", rec.FileID, err)
		}
		if err := u.Queue.followUps(ctx, stored, u.Posters); err != nil {
			return fmt.Errorf("jobs: upload %s: queue poster and transcodes: %w", rec.FileID, err)
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
	// A failure here is retried: the spool copy is gone, so the retry takes the path
	// above, which queues them again (same task ids) and notifies.
	if err := u.Queue.followUps(ctx, &rec, u.Posters); err != nil {
		return fmt.Errorf("jobs: upload %s: queue poster and transcodes: %w", rec.FileID, err)
	}
	return u.notify(ctx, &rec)
}

// store uploads the fragment's files (HLS: segments, then the playlist), then puts
// its catalog entry; frag passed checkFragment.
func (u *Uploader) store(ctx context.Context, rec *Recording, frag Fragment) error {
	rec.Template = u.KeyTemplate
	if rec.Template == catalog.DefaultKeyTemplate {
		rec.Template = ""
	}
	rec.CatalogKey = "" // Put names it from the template
	rec.NodeID, rec.Type = u.Queue.NodeID(), catalog.TypeFragment
	stem := rec.KeyStem(rec.Template)
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
	if err := u.Catalog.Put(ctx, rec); err != nil {
		return err
	}
	return u.Queue.broadcastFragmentStored(ctx, rec)
}

// loadStored is the catalog entry an earlier run of the task stored.
func (u *Uploader) loadStored(ctx context.Context, rec *Recording) (*Recording, error) {
	return u.Catalog.Get(ctx, rec.FileID)
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
		BroadcastID: rec.BroadcastID,
	}
	return u.Queue.Notify(ctx, ev)
}
