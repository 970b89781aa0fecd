package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/livetape/livetape/jobs"
)

// livePushes remembers the pushes live on this node, one file per push under
// DATA/live-pushes holding its push-end event (0), written when the push starts and
// removed once that event is queued. Files left at start are the pushes a crash ended
// without their event: sendCrashed sends it for them.
type livePushes struct{ dir string }

func (l livePushes) path(ev jobs.Event) string { return filepath.Join(l.dir, ev.EventID+".json") }

// add records a push that started; ev is its push-end event.
func (l livePushes) add(ev jobs.Event) error {
	if err := os.MkdirAll(l.dir, 0o755); err != nil {
		return fmt.Errorf("live pushes: %w", err)
	}
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("live pushes: %w", err)
	}
	tmp := l.path(ev) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("live pushes: %w", err)
	}
	if err := os.Rename(tmp, l.path(ev)); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("live pushes: %w", err)
	}
	return nil
}

// remove forgets a push whose end event is queued.
func (l livePushes) remove(ev jobs.Event) error {
	if err := os.Remove(l.path(ev)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("live pushes: %w", err)
	}
	return nil
}

// sendCrashed queues the push-end event, errcode PushEndServerCrashed, of every push
// that was live when livetape last stopped without ending it. The event id is the one
// the push's normal end would have had, so a push whose end was queued just before
// the crash is not reported twice, nor one whose crash event was queued before
// another crash. Call it before the live server accepts pushes. It returns how many
// were queued; a push whose event cannot be queued stays for the next start.
func (l livePushes) sendCrashed(ctx context.Context, q *jobs.Queue, broadcasts *jobs.Broadcasts, log *slog.Logger) (int, error) {
	entries, err := os.ReadDir(l.dir)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("live pushes: %w", err)
	}
	n := 0
	var errs []error
	for _, e := range entries {
		path := filepath.Join(l.dir, e.Name())
		if !strings.HasSuffix(e.Name(), ".json") {
			os.Remove(path) // a .tmp of a write cut short: that push had not started
			continue
		}
		b, err := os.ReadFile(path)
		var ev jobs.Event
		if err == nil {
			err = json.Unmarshal(b, &ev)
		}
		if err != nil || ev.EventType != jobs.EventPushEnded {
			log.Error("live pushes: unreadable entry removed", "path", path, "err", err)
			os.Remove(path)
			continue
		}
		r := jobs.PushEndServerCrashed
		ev.ErrCode, ev.ErrMsg = int(r), r.String()
		if err := q.Notify(ctx, ev); err != nil {
			errs = append(errs, fmt.Errorf("push end %s: %w", ev.EventID, err))
			continue
		}
		log.Info("push ended by a crash: push-end event queued", "stream", ev.App+"/"+ev.StreamID, "event_id", ev.EventID, "errcode", ev.ErrCode)
		// Its broadcast counts it live until told: it ends a window from now. A
		// broadcast Redis forgot (the embedded one) is ended by Broadcasts.EndLost.
		if ev.BroadcastID != "" {
			pushID := strings.TrimPrefix(ev.EventID, jobs.EventID(jobs.EventPushEnded, ev.StreamID+"_"))
			if err := broadcasts.End(ctx, ev.BroadcastID, pushID, time.Now()); err != nil {
				log.Info("push ended by a crash: its broadcast is not in Redis", "broadcast_id", ev.BroadcastID, "err", err)
			}
		}
		os.Remove(path)
		n++
	}
	return n, errors.Join(errs...)
}
