package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// DeliveryState is where the delivery of an event stands.
type DeliveryState string

const (
	// StatePending: not delivered yet; queued or waiting for a retry.
	StatePending DeliveryState = "pending"
	// StateDelivered: the receiver answered 2xx.
	StateDelivered DeliveryState = "delivered"
	// StateFailed: retried for CallbackRetryFor without a 2xx; only
	// Redeliver sends it again.
	StateFailed DeliveryState = "failed"
)

// Delivery is the state of an event at one callback URL.
type Delivery struct {
	// URL is the receiver, as configured when the event was notified.
	URL string `json:"url"`
	// State of this URL's delivery.
	State DeliveryState `json:"state"`
	// Attempts counts POSTs made (successful or not), redeliveries included.
	Attempts int `json:"attempts"`
	// LastError is why the last attempt failed, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// LastAttemptAt is when the last POST was made.
	LastAttemptAt *time.Time `json:"last_attempt_at,omitempty"`
	// DeliveredAt is when a POST was answered 2xx.
	DeliveredAt *time.Time `json:"delivered_at,omitempty"`
	// RetryingSince starts the CallbackRetryFor window: when the event was
	// notified or last redelivered.
	RetryingSince time.Time `json:"retrying_since"`
	// TaskID is the queue task of the current delivery, kept so that a
	// restart re-enqueues under the same id (deduplicated against the
	// task when Redis still has it).
	TaskID string `json:"task_id"`
}

// EventRecord is an event as stored on disk with its delivery state: the
// queue may forget a task (embedded Redis, restart), the record does not.
type EventRecord struct {
	// Event as notified (t and sign are set per attempt, not stored).
	Event Event `json:"event"`
	// State sums up Deliveries: pending while any URL is pending, else
	// failed if any URL failed, else delivered.
	State DeliveryState `json:"state"`
	// Deliveries holds one entry per callback URL.
	Deliveries []Delivery `json:"deliveries"`
	// Redeliveries counts Redeliver calls; it makes their task ids new.
	Redeliveries int `json:"redeliveries"`
	// CreatedAt is when the event was first notified.
	CreatedAt time.Time `json:"created_at"`
	// UpdatedAt is the last change of the record.
	UpdatedAt time.Time `json:"updated_at"`
}

func (r *EventRecord) summarize() {
	state := StateDelivered
	for _, d := range r.Deliveries {
		switch d.State {
		case StatePending:
			r.State = StatePending
			return
		case StateFailed:
			state = StateFailed
		}
	}
	r.State = state
}

// ErrEventNotFound: no event with that id is stored.
var ErrEventNotFound = errors.New("jobs: event not found")

// eventStore keeps the event records and their delivery state. Records
// change by read-modify-write: deliveries to several URLs of one event, on
// several workers, finish concurrently, so update is atomic per record.
type eventStore interface {
	// create stores rec unless a record with its id exists; it returns the
	// stored record and whether it was created.
	create(ctx context.Context, rec EventRecord) (EventRecord, bool, error)
	// update applies fn to the stored record and writes the result back,
	// summarized and stamped. fn may run more than once (a concurrent
	// change makes the store read the record again), so it must only
	// change the record it is given.
	update(ctx context.Context, id string, fn func(*EventRecord) error) (EventRecord, error)
	// get returns the record; the error wraps ErrEventNotFound.
	get(ctx context.Context, id string) (EventRecord, error)
	// pending lists the records in StatePending, oldest first.
	pending(ctx context.Context) ([]EventRecord, error)
	close() error
}

// fileEventStore keeps one JSON file per event in dir: the store of the
// embedded queue, whose Redis is lost at every restart while the data dir
// is not. Each file is replaced atomically (temporary file, fsync, rename),
// so a crash leaves either the old or the new record, never a torn one. One
// mutex serialises the read-modify-write of records; only this process
// reaches the embedded Redis, so no other process writes them.
type fileEventStore struct {
	dir string
	mu  sync.Mutex
}

func openFileEventStore(dir string) (*fileEventStore, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("jobs: event store: %w", err)
	}
	return &fileEventStore{dir: dir}, nil
}

// validEventID keeps ids usable as file names and task ids.
func validEventID(id string) error {
	if id == "" {
		return errors.New("jobs: event has no event_id")
	}
	if len(id) > 200 {
		return fmt.Errorf("jobs: event_id %.20q…: longer than 200 bytes", id)
	}
	if id[0] == '.' {
		return fmt.Errorf("jobs: event_id %q starts with a dot", id)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return fmt.Errorf("jobs: event_id %q: only letters, digits, '-', '_' and '.' are allowed", id)
		}
	}
	return nil
}

func (s *fileEventStore) path(id string) string { return filepath.Join(s.dir, id+".json") }

func (s *fileEventStore) create(_ context.Context, rec EventRecord) (EventRecord, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	old, err := s.read(rec.Event.EventID)
	if err == nil {
		return old, false, nil
	}
	if !errors.Is(err, ErrEventNotFound) {
		return EventRecord{}, false, err
	}
	rec.summarize()
	if err := s.write(rec); err != nil {
		return EventRecord{}, false, err
	}
	return rec, true, nil
}

func (s *fileEventStore) update(_ context.Context, id string, fn func(*EventRecord) error) (EventRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	rec, err := s.read(id)
	if err != nil {
		return EventRecord{}, err
	}
	if err := fn(&rec); err != nil {
		return EventRecord{}, err
	}
	rec.summarize()
	rec.UpdatedAt = time.Now().UTC()
	if err := s.write(rec); err != nil {
		return EventRecord{}, err
	}
	return rec, nil
}

func (s *fileEventStore) get(_ context.Context, id string) (EventRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.read(id)
}

func (s *fileEventStore) pending(context.Context) ([]EventRecord, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return nil, fmt.Errorf("jobs: event store: %w", err)
	}
	var recs []EventRecord
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".json") || strings.HasPrefix(name, ".") {
			continue
		}
		rec, err := s.read(strings.TrimSuffix(name, ".json"))
		if err != nil {
			return nil, err
		}
		if rec.State == StatePending {
			recs = append(recs, rec)
		}
	}
	sort.SliceStable(recs, func(i, j int) bool { return recs[i].CreatedAt.Before(recs[j].CreatedAt) })
	return recs, nil
}

func (s *fileEventStore) read(id string) (EventRecord, error) {
	b, err := os.ReadFile(s.path(id))
	if errors.Is(err, fs.ErrNotExist) {
		return EventRecord{}, fmt.Errorf("jobs: event %q: %w", id, ErrEventNotFound)
	}
	if err != nil {
		return EventRecord{}, fmt.Errorf("jobs: read event %q: %w", id, err)
	}
	var rec EventRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		return EventRecord{}, fmt.Errorf("jobs: read event %q: %w", id, err)
	}
	return rec, nil
}

// write replaces the record's file atomically (writeFileAtomic).
func (s *fileEventStore) write(rec EventRecord) error {
	id := rec.Event.EventID
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("jobs: write event %q: %w", id, err)
	}
	if err := writeFileAtomic(s.dir, id, append(b, '\n')); err != nil {
		return fmt.Errorf("jobs: write event %q: %w", id, err)
	}
	return nil
}

// writeFileAtomic replaces dir/id.json with data: a temporary file in the same
// directory, fsynced, renamed over the old one, then the directory fsynced so that
// the rename itself survives a power cut. A crash leaves the old file or the new one,
// and at worst a temporary file.
func writeFileAtomic(dir, id string, data []byte) error {
	f, err := os.CreateTemp(dir, "."+id+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, id+".json"))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

func (s *fileEventStore) close() error { return nil }
