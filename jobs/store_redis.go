package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// Keys of the Redis event store. The braces are a Redis Cluster hash tag:
// a record and the pending set are changed in one transaction, which a
// cluster allows only within one slot.
const (
	redisEventPrefix  = "livetape:{events}:event:"
	redisPendingKey   = "livetape:{events}:pending"
	redisListBatch    = 256 // records per MGET when listing the pending ones
	redisMaxTxRetries = 100 // WATCH conflicts in a row before giving up
)

// FinishedEventRetention is how long the Redis store keeps a record once no
// delivery is pending (delivered, or given up): long enough for anyone to
// look at it or redeliver it, bounded so that Redis does not fill up with
// every event ever sent. A redelivery keeps it again until it is done.
const FinishedEventRetention = 30 * 24 * time.Hour

// redisEventStore keeps one JSON string per event in the shared Redis, so
// that every node and worker reads and writes the same delivery state, and a
// sorted set of the pending event ids (score: creation time) so that
// ResumePending reads only those. A record and its membership of the pending
// set change together, in a WATCH/MULTI transaction that is retried when
// another process changed the record in between.
type redisEventStore struct {
	rdb redis.UniversalClient
}

func redisEventKey(id string) string { return redisEventPrefix + id }

func (s *redisEventStore) create(ctx context.Context, rec EventRecord) (EventRecord, bool, error) {
	id := rec.Event.EventID
	rec.summarize()
	var stored EventRecord
	var created bool
	err := s.transact(ctx, id, func(tx *redis.Tx) error {
		old, err := s.read(ctx, tx, id)
		if err == nil {
			stored, created = old, false
			return nil
		}
		if !errors.Is(err, ErrEventNotFound) {
			return err
		}
		stored, created = rec, true
		return s.write(ctx, tx, rec)
	})
	if err != nil {
		return EventRecord{}, false, err
	}
	return stored, created, nil
}

func (s *redisEventStore) update(ctx context.Context, id string, fn func(*EventRecord) error) (EventRecord, error) {
	var rec EventRecord
	err := s.transact(ctx, id, func(tx *redis.Tx) error {
		var err error
		if rec, err = s.read(ctx, tx, id); err != nil {
			return err
		}
		if err := fn(&rec); err != nil {
			return err
		}
		rec.summarize()
		rec.UpdatedAt = time.Now().UTC()
		return s.write(ctx, tx, rec)
	})
	if err != nil {
		return EventRecord{}, err
	}
	return rec, nil
}

func (s *redisEventStore) get(ctx context.Context, id string) (EventRecord, error) {
	return s.read(ctx, s.rdb, id)
}

func (s *redisEventStore) pending(ctx context.Context) ([]EventRecord, error) {
	ids, err := s.rdb.ZRange(ctx, redisPendingKey, 0, -1).Result()
	if err != nil {
		return nil, fmt.Errorf("jobs: list pending events: %w", err)
	}
	var recs []EventRecord
	for len(ids) > 0 {
		batch := ids[:min(len(ids), redisListBatch)]
		ids = ids[len(batch):]
		keys := make([]string, len(batch))
		for i, id := range batch {
			keys[i] = redisEventKey(id)
		}
		vals, err := s.rdb.MGet(ctx, keys...).Result()
		if err != nil {
			return nil, fmt.Errorf("jobs: list pending events: %w", err)
		}
		for i, v := range vals {
			str, ok := v.(string)
			if !ok { // the record went between ZRANGE and MGET
				continue
			}
			var rec EventRecord
			if err := json.Unmarshal([]byte(str), &rec); err != nil {
				return nil, fmt.Errorf("jobs: read event %q: %w", batch[i], err)
			}
			// A record finished between ZRANGE and MGET is no longer pending.
			if rec.State == StatePending {
				recs = append(recs, rec)
			}
		}
	}
	return recs, nil
}

func (s *redisEventStore) close() error { return nil } // the Queue closes its client

// transact runs fn with the record's key watched, again from the start
// whenever another client changed the key before fn's transaction ran.
func (s *redisEventStore) transact(ctx context.Context, id string, fn func(*redis.Tx) error) error {
	for range redisMaxTxRetries {
		err := s.rdb.Watch(ctx, fn, redisEventKey(id))
		if !errors.Is(err, redis.TxFailedErr) {
			return err
		}
	}
	return fmt.Errorf("jobs: event %q: changed concurrently %d times in a row", id, redisMaxTxRetries)
}

func (s *redisEventStore) read(ctx context.Context, c redis.Cmdable, id string) (EventRecord, error) {
	b, err := c.Get(ctx, redisEventKey(id)).Bytes()
	if errors.Is(err, redis.Nil) {
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

// write stores rec and its membership of the pending set in one MULTI/EXEC,
// which fails as a whole if the watched record changed since it was read.
func (s *redisEventStore) write(ctx context.Context, tx *redis.Tx, rec EventRecord) error {
	id := rec.Event.EventID
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("jobs: write event %q: %w", id, err)
	}
	key := redisEventKey(id)
	_, err = tx.TxPipelined(ctx, func(p redis.Pipeliner) error {
		if rec.State == StatePending {
			p.Set(ctx, key, b, 0)
			p.ZAdd(ctx, redisPendingKey, redis.Z{Score: float64(rec.CreatedAt.UnixMilli()), Member: id})
		} else {
			p.Set(ctx, key, b, FinishedEventRetention)
			p.ZRem(ctx, redisPendingKey, id)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.TxFailedErr) {
		return fmt.Errorf("jobs: write event %q: %w", id, err)
	}
	return err
}
