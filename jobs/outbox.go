package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// outbox keeps, in the data dir of the node that notified them, the events whose
// delivery is not known to be finished: one file per event (DATA_DIR/outbox/{id}.json),
// written and fsynced before the event goes to the shared Redis. Redis holds the
// delivery records, but a Redis restarted without persistence forgets them, and an
// event notified while Redis is down never reached it: reconcile (ResumePending)
// notifies again every outbox event whose record is missing, and deletes the files of
// events whose record says delivered or failed.
//
// What it cannot close: an event delivered, whose record Redis then loses before a
// reconcile saw it delivered, is sent again. Receivers drop it by event_id.
type outbox struct{ dir string }

func openOutbox(dir string) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: outbox: %w", err)
	}
	return &outbox{dir: dir}, nil
}

func (o *outbox) path(id string) string { return filepath.Join(o.dir, id+".json") }

// put writes ev atomically and durably (temporary file, fsync, rename, fsync of the
// folder), so that a crash right after leaves it.
func (o *outbox) put(ev Event) error {
	id := ev.EventID
	b, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("jobs: outbox %q: %w", id, err)
	}
	if err := writeFileAtomic(o.dir, id, b); err != nil {
		return fmt.Errorf("jobs: outbox %q: %w", id, err)
	}
	return nil
}

func (o *outbox) remove(id string) error {
	if err := os.Remove(o.path(id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("jobs: outbox: %w", err)
	}
	return nil
}

// list reads every event in the outbox; files that do not decode are removed (a
// write cut short leaves only a temporary file, which is removed too).
func (o *outbox) list() ([]Event, error) {
	entries, err := os.ReadDir(o.dir)
	if err != nil {
		return nil, fmt.Errorf("jobs: outbox: %w", err)
	}
	var evs []Event
	for _, e := range entries {
		name := e.Name()
		p := filepath.Join(o.dir, name)
		if strings.HasPrefix(name, ".") || !strings.HasSuffix(name, ".json") {
			os.Remove(p)
			continue
		}
		b, err := os.ReadFile(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		var ev Event
		if err == nil {
			err = json.Unmarshal(b, &ev)
		}
		if err == nil {
			err = validEventID(ev.EventID)
		}
		if err != nil {
			os.Remove(p)
			continue
		}
		evs = append(evs, ev)
	}
	return evs, nil
}

// Defer keeps ev to be notified by the next ResumePending (the reconcile), without
// touching Redis: for a caller that must not wait (a publisher's connection) when the
// sender that would notify it now is busy. The event is on disk when Defer returns.
func (q *Queue) Defer(ctx context.Context, ev Event) error {
	if err := validEventID(ev.EventID); err != nil {
		return fmt.Errorf("jobs: defer: %w", err)
	}
	if len(q.cfg.CallbackURLs) == 0 {
		return nil
	}
	if q.outbox != nil {
		return q.outbox.put(ev)
	}
	// The embedded queue's records are files already: a pending record is what
	// ResumePending queues.
	_, _, err := q.events.create(ctx, q.newRecord(ev))
	return err
}

// resumeOutbox notifies again the outbox events Redis has no record of, and forgets
// those whose delivery is finished.
func (q *Queue) resumeOutbox(ctx context.Context) error {
	if q.outbox == nil {
		return nil
	}
	evs, err := q.outbox.list()
	if err != nil {
		return err
	}
	var errs []error
	renotified := 0
	for _, ev := range evs {
		rec, err := q.events.get(ctx, ev.EventID)
		switch {
		case errors.Is(err, ErrEventNotFound):
			if err := q.Notify(ctx, ev); err != nil {
				errs = append(errs, err)
				continue
			}
			renotified++
		case err != nil:
			errs = append(errs, err)
		case rec.State != StatePending:
			if err := q.outbox.remove(ev.EventID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if renotified > 0 {
		q.log.Info("events Redis had no record of notified again from the outbox", "events", renotified)
	}
	return errors.Join(errs...)
}
