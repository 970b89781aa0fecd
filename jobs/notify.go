package jobs

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hibiken/asynq"
)

// notifyPayload is the payload of a TaskNotify task. It carries the whole
// event and its URL, so that a worker that is not the node holding the
// event record can still deliver it.
type notifyPayload struct {
	Event Event  `json:"event"`
	Index int    `json:"index"` // into EventRecord.Deliveries
	URL   string `json:"url"`
}

// taskBookkeeping is added to the task timeout beyond the HTTP timeout: the
// handler must record a success before asynq's deadline fires, or asynq
// counts the delivered attempt as failed and sends it again.
const taskBookkeeping = 2 * time.Second

// maxErrorBody is how much of a failing receiver's answer ends up in
// last_error.
const maxErrorBody = 200

// notifyTaskID names the task delivering event id to URL index, in its
// redelivery round (0 for the first delivery).
func notifyTaskID(id string, index, round int) string {
	s := "notify:" + id + ":" + strconv.Itoa(index)
	if round > 0 {
		s += ":r" + strconv.Itoa(round)
	}
	return s
}

// Notify sends ev to every callback URL, through the queue: it stores the
// event (so that it survives a restart of the queue), then enqueues one
// delivery task per URL, each retried with exponential backoff for
// CallbackRetryFor. ev.EventID must be set, derived from what the event is
// about (see [EventID]): notifying the same id again only queues the URLs
// still pending (a no-op while their tasks are queued), never a delivered or
// given-up one; [Queue.Redeliver] sends it again. t and sign are set at each
// send.
//
// With no callback URLs configured Notify does nothing. When the event is
// stored but enqueueing fails (Redis down), Notify returns the error and the
// event stays pending: calling Notify again, or ResumePending, queues it.
func (q *Queue) Notify(ctx context.Context, ev Event) error {
	if err := validEventID(ev.EventID); err != nil {
		return fmt.Errorf("jobs: notify: %w", err)
	}
	if len(q.cfg.CallbackURLs) == 0 {
		return nil
	}
	ev.T, ev.Sign = 0, ""
	if q.outbox != nil {
		// On this node's disk first: Redis may be down, or lose the record.
		if err := q.outbox.put(ev); err != nil {
			return err
		}
	}
	rec, created, err := q.events.create(ctx, q.newRecord(ev))
	if err != nil {
		return err
	}
	if !created {
		q.log.Debug("event already notified", "event_id", ev.EventID, "state", rec.State)
	}
	return q.enqueuePending(ctx, rec)
}

// newRecord is the record of an event just notified: pending at every callback URL.
func (q *Queue) newRecord(ev Event) EventRecord {
	ev.T, ev.Sign = 0, ""
	now := time.Now().UTC()
	rec := EventRecord{Event: ev, CreatedAt: now, UpdatedAt: now}
	for i, u := range q.cfg.CallbackURLs {
		rec.Deliveries = append(rec.Deliveries, Delivery{
			URL:           u,
			State:         StatePending,
			RetryingSince: now,
			TaskID:        notifyTaskID(ev.EventID, i, 0),
		})
	}
	return rec
}

// enqueuePending queues a task for every pending delivery of rec.
func (q *Queue) enqueuePending(ctx context.Context, rec EventRecord) error {
	var errs []error
	for i, d := range rec.Deliveries {
		if d.State != StatePending {
			continue
		}
		p, err := json.Marshal(notifyPayload{Event: rec.Event, Index: i, URL: d.URL})
		if err != nil {
			return fmt.Errorf("jobs: notify %s: %w", rec.Event.EventID, err)
		}
		_, err = q.enqueue(ctx, asynq.NewTask(TaskNotify, p),
			asynq.Queue(QueueCallbacks),
			asynq.TaskID(d.TaskID),
			asynq.MaxRetry(q.maxRetry),
			asynq.Timeout(q.notifyTaskTimeout()))
		if err != nil {
			errs = append(errs, fmt.Errorf("jobs: notify %s to %s: enqueue: %w", rec.Event.EventID, d.URL, err))
		}
	}
	return errors.Join(errs...)
}

// notifyTaskTimeout is CallbackTimeout rounded up to whole seconds (asynq
// keeps timeouts in seconds) plus the bookkeeping margin.
func (q *Queue) notifyTaskTimeout() time.Duration {
	return (q.cfg.CallbackTimeout + time.Second - 1).Truncate(time.Second) + taskBookkeeping
}

// Redeliver sends a stored event again to every callback URL, whatever its
// state, as new tasks (a delivered event is not deduplicated away). It
// returns an error wrapping ErrEventNotFound for an unknown id.
func (q *Queue) Redeliver(ctx context.Context, eventID string) error {
	if err := validEventID(eventID); err != nil {
		return fmt.Errorf("jobs: redeliver: %w: %w", ErrEventNotFound, err)
	}
	now := time.Now().UTC()
	rec, err := q.events.update(ctx, eventID, func(r *EventRecord) error {
		r.Redeliveries++
		for i := range r.Deliveries {
			d := &r.Deliveries[i]
			d.State = StatePending
			d.RetryingSince = now
			d.TaskID = notifyTaskID(eventID, i, r.Redeliveries)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("jobs: redeliver: %w", err)
	}
	return q.enqueuePending(ctx, rec)
}

// storeTimeout bounds a read of the event store by a caller that gives no
// context.
const storeTimeout = 10 * time.Second

// Event returns the stored record of an event, with the state of its
// deliveries; the error wraps ErrEventNotFound for an unknown id. With a
// shared Redis every node answers the same, whoever delivered the event.
func (q *Queue) Event(eventID string) (EventRecord, error) {
	if err := validEventID(eventID); err != nil {
		return EventRecord{}, fmt.Errorf("jobs: %w: %w", ErrEventNotFound, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return q.events.get(ctx, eventID)
}

// PendingEvents lists the stored events not yet delivered to every URL (and
// not given up), oldest first.
func (q *Queue) PendingEvents() ([]EventRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	return q.events.pending(ctx)
}

// ResumePending queues the delivery of every pending event again. Call it at
// start and now and then: the embedded Redis forgets its tasks on restart
// (its event files do not), and a real one may have lost tasks its records
// still name. Tasks Redis still holds, or completed less than
// CompletedRetention ago, keep their ids and are not queued twice; an event
// delivered meanwhile, by any worker, is not pending and is not sent again.
// Any node may call it, with the same result.
func (q *Queue) ResumePending(ctx context.Context) error {
	outboxErr := q.resumeOutbox(ctx)
	recs, err := q.events.pending(ctx)
	if err != nil {
		return errors.Join(outboxErr, err)
	}
	errs := []error{outboxErr}
	for _, rec := range recs {
		if err := q.enqueuePending(ctx, rec); err != nil {
			errs = append(errs, err)
		}
	}
	if len(recs) > 0 {
		q.log.Info("pending callbacks queued again", "events", len(recs), "errors", len(errs))
	}
	return errors.Join(errs...)
}

// handleNotify POSTs one event to one URL. A 2xx marks the delivery done;
// anything else (other statuses, 4xx included since receivers get
// misconfigured and fixed, network errors, timeouts) is returned so that
// asynq retries with backoff, until the CallbackRetryFor window is over.
func (q *Queue) handleNotify(ctx context.Context, task *asynq.Task) error {
	var p notifyPayload
	if err := json.Unmarshal(task.Payload(), &p); err != nil {
		return fmt.Errorf("jobs: notify: bad payload: %w: %w", err, asynq.SkipRetry)
	}
	id := p.Event.EventID
	log := q.log.With("event_id", id, "url", p.URL)

	// The record decides whether this task is still wanted: a duplicate of
	// a delivered event, or an old task of a redelivered one, sends nothing.
	rec, err := q.events.get(ctx, id)
	haveRecord := err == nil
	if err != nil && !errors.Is(err, ErrEventNotFound) {
		return err
	}
	if haveRecord {
		if p.Index >= len(rec.Deliveries) || rec.Deliveries[p.Index].URL != p.URL {
			return fmt.Errorf("jobs: notify %s: record has no delivery %d to %s: %w", id, p.Index, p.URL, asynq.SkipRetry)
		}
		d := rec.Deliveries[p.Index]
		taskID, _ := asynq.GetTaskID(ctx)
		if d.State != StatePending || (taskID != "" && taskID != d.TaskID) {
			log.Debug("callback no longer wanted", "state", d.State, "task_id", taskID)
			return nil
		}
	}

	started := time.Now().UTC()
	postErr := q.post(ctx, p.URL, p.Event)
	if haveRecord {
		// The outcome is recorded even when the task's context ended during
		// the POST (timeout, shutdown): a delivery left "pending" is sent again.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), taskBookkeeping)
		defer cancel()
		_, err := q.events.update(rctx, id, func(r *EventRecord) error {
			d := &r.Deliveries[p.Index]
			d.Attempts++
			d.LastAttemptAt = &started
			if postErr == nil {
				now := time.Now().UTC()
				d.State = StateDelivered
				d.DeliveredAt = &now
				d.LastError = ""
			} else {
				d.LastError = postErr.Error()
			}
			return nil
		})
		if err != nil {
			// The POST itself is done; a retry would send a duplicate,
			// which receivers drop by event_id, and is better than losing
			// the record of a failure.
			log.Error("record callback outcome", "err", err)
		}
	}
	if postErr == nil {
		log.Info("callback delivered", "event_type", int(p.Event.EventType))
		return nil
	}
	if haveRecord && time.Since(rec.Deliveries[p.Index].RetryingSince) >= q.cfg.CallbackRetryFor {
		return fmt.Errorf("%w (retried for %v): %w", postErr, q.cfg.CallbackRetryFor, asynq.SkipRetry)
	}
	return postErr
}

// post makes one signed POST of ev to url.
func (q *Queue) post(ctx context.Context, url string, ev Event) error {
	body, sig, err := signEvent(q.cfg.CallbackKey, ev, time.Now())
	if err != nil {
		return fmt.Errorf("%w: %w", err, asynq.SkipRetry)
	}
	ctx, cancel := context.WithTimeout(ctx, q.cfg.CallbackTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("jobs: callback %s: %w: %w", ev.EventID, err, asynq.SkipRetry)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "livetape")
	req.Header.Set(HeaderSignature, sig)
	req.Header.Set(HeaderEventID, ev.EventID)
	resp, err := q.httpClient.Do(req)
	if err != nil {
		return fmt.Errorf("jobs: callback %s: %w", ev.EventID, err)
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // reuse the connection
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		msg := strings.TrimSpace(string(head))
		if msg != "" {
			msg = ": " + msg
		}
		return fmt.Errorf("jobs: callback %s: %s answered %s%s", ev.EventID, url, resp.Status, msg)
	}
	return nil
}

// notifyGaveUp marks a delivery failed once asynq stops retrying it. A
// stale task (superseded by a redelivery) changes nothing.
func (q *Queue) notifyGaveUp(ctx context.Context, taskID string, task *asynq.Task, cause error) {
	var p notifyPayload
	if err := json.Unmarshal(task.Payload(), &p); err != nil {
		return
	}
	marked := false
	_, err := q.events.update(ctx, p.Event.EventID, func(r *EventRecord) error {
		marked = false // fn runs again when another worker changed the record
		if p.Index >= len(r.Deliveries) {
			return nil
		}
		d := &r.Deliveries[p.Index]
		if d.State == StatePending && d.URL == p.URL && d.TaskID == taskID {
			d.State = StateFailed
			d.LastError = cause.Error()
			marked = true
		}
		return nil
	})
	switch {
	case err != nil && !errors.Is(err, ErrEventNotFound):
		q.log.Error("record callback failure", "event_id", p.Event.EventID, "err", err)
	case marked:
		q.log.Error("callback given up", "event_id", p.Event.EventID, "url", p.URL, "err", cause)
	}
}
