package catalog

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// MaxFragmentSpan is the longest a recorded fragment lasts: record_interval is at most
// 7 200 s and the cut waits for the next keyframe. A fragment that started this long
// before a window is the earliest that can reach into it.
const MaxFragmentSpan = 2*time.Hour + 10*time.Minute

// ErrTooMany is returned by Overlapping when more than MaxPageSize entries may overlap.
var ErrTooMany = errors.New("catalog: more than 1000 recordings in the window")

// Overlapping returns the entries matching q (App, StreamID, Format, Type; its other
// fields are ignored) whose media overlaps [from, to), oldest first: those that start
// before to and end after from. It reads one page of the index; a window that may hold
// more than MaxPageSize entries is ErrTooMany.
func (c *Catalog) Overlapping(ctx context.Context, q Query, from, to time.Time) ([]*Recording, error) {
	q.From, q.To, q.Page, q.PageSize = from.Add(-MaxFragmentSpan), to, 1, MaxPageSize
	res, err := c.List(ctx, q)
	if err != nil {
		return nil, err
	}
	if res.Total > MaxPageSize {
		return nil, fmt.Errorf("%w (%s/%s from %s to %s)", ErrTooMany, q.App, q.StreamID, from.Format(time.RFC3339), to.Format(time.RFC3339))
	}
	var out []*Recording
	for _, rec := range res.Recordings {
		if rec.StartTime.Before(to) && rec.End().After(from) {
			out = append(out, rec)
		}
	}
	return out, nil
}

// End is the wall-clock time the recording's media ends: EndTime, or StartTime plus
// Duration when an entry lacks it.
func (r *Recording) End() time.Time {
	if !r.EndTime.IsZero() {
		return r.EndTime
	}
	return r.StartTime.Add(time.Duration(r.Duration * float64(time.Second)))
}
