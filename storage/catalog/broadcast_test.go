package catalog_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

func sampleBroadcast(app, streamID string, i int) *catalog.Broadcast {
	start := base.Add(time.Duration(i) * time.Hour)
	return &catalog.Broadcast{
		BroadcastID: fmt.Sprintf("%s_%s_b%02d", streamID, app, i), App: app, StreamID: streamID, State: catalog.BroadcastEnded,
		StartTime: start, EndTime: start.Add(30 * time.Minute), Duration: 1700,
		Pushes: []catalog.BroadcastPush{
			{PushID: "p1", StartTime: start, EndTime: start.Add(10 * time.Minute)},
			{PushID: "p2", StartTime: start.Add(11 * time.Minute), EndTime: start.Add(30 * time.Minute)},
		},
		Recordings: []string{"f1", "f2"}, ReconnectWindow: 60, Rev: 5,
	}
}

// Broadcast entries are stored, listed by app and stream id, paged, and come back from
// the store alone after the Redis lost everything; recordings are not disturbed by them.
func TestBroadcastPutListRebuild(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		if _, err := e.cat.Rebuild(ctx); err != nil {
			t.Fatal(err)
		}
		var all []*catalog.Broadcast
		for i := range 3 {
			for _, k := range [][2]string{{"live", "cam1"}, {"live", "cam2"}, {"edu", "cam1"}} {
				b := sampleBroadcast(k[0], k[1], i)
				if err := e.cat.PutBroadcast(ctx, b); err != nil {
					t.Fatal(err)
				}
				all = append(all, b)
			}
		}
		e.record(t, sample(4)...)
		check := func(t *testing.T) {
			res, err := e.cat.ListBroadcasts(ctx, catalog.BroadcastQuery{StreamID: "cam1"})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != 6 || len(res.Broadcasts) != 6 {
				t.Fatalf("stream_id=cam1: %d of %d, want 6", len(res.Broadcasts), res.Total)
			}
			for i, b := range res.Broadcasts {
				if b.StreamID != "cam1" || (i > 0 && b.StartTime.Before(res.Broadcasts[i-1].StartTime)) {
					t.Errorf("entry %d: %s/%s at %v: wrong stream or order", i, b.App, b.StreamID, b.StartTime)
				}
			}
			res, err = e.cat.ListBroadcasts(ctx, catalog.BroadcastQuery{App: "live", StreamID: "cam1", Page: 2, PageSize: 2})
			if err != nil {
				t.Fatal(err)
			}
			if res.Total != 3 || len(res.Broadcasts) != 1 || res.Broadcasts[0].BroadcastID != "cam1_live_b02" {
				t.Fatalf("live/cam1 page 2 of 2: %+v", res)
			}
			got, err := e.cat.GetBroadcast(ctx, "cam2_live_b01")
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Pushes) != 2 || got.Pushes[1].PushID != "p2" || got.Recordings[1] != "f2" || got.Rev != 5 || got.CatalogKey == "" {
				t.Errorf("GetBroadcast = %+v", got)
			}
			if _, err := e.cat.GetBroadcast(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("unknown id: %v", err)
			}
			recs, err := e.cat.List(ctx, catalog.Query{})
			if err != nil || recs.Total != 4 {
				t.Fatalf("recordings: %d, %v; want the 4 recordings only", recs.Total, err)
			}
		}
		t.Run("indexed", check)
		e.flushAll(t)
		t.Run("from the store while not built", check)
		st, err := e.cat.Rebuild(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.Broadcasts != len(all) || st.Entries != 4 || st.Skipped != 0 {
			t.Errorf("rebuild: %+v, want %d broadcasts, 4 entries, none skipped", st, len(all))
		}
		t.Run("rebuilt", check)
	})
}

// Of two writes of one broadcast, the index keeps the higher rev whatever the order.
func TestBroadcastIndexKeepsNewestRev(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		ctx := t.Context()
		newer := sampleBroadcast("live", "cam1", 0)
		newer.Rev, newer.State = 9, catalog.BroadcastEnded
		older := sampleBroadcast("live", "cam1", 0)
		older.Rev, older.State = 3, catalog.BroadcastLive
		for _, b := range []*catalog.Broadcast{newer, older} {
			if err := e.cat.PutBroadcast(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		got, err := e.cat.GetBroadcast(ctx, newer.BroadcastID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Rev != 9 || got.State != catalog.BroadcastEnded {
			t.Errorf("indexed rev %d state %s, want 9 ended", got.Rev, got.State)
		}
	})
}

func TestBroadcastRefusesBadFields(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		b := sampleBroadcast("live", "cam1", 0)
		b.StreamID = "../x"
		if err := e.cat.PutBroadcast(t.Context(), b); err == nil {
			t.Error("a stream id with a slash was stored")
		}
		b = sampleBroadcast("live", "cam1", 0)
		b.State = "paused"
		if err := e.cat.PutBroadcast(t.Context(), b); err == nil {
			t.Error("an unknown state was stored")
		}
	})
}
