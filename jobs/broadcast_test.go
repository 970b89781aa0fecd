package jobs

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/internal/mp4test"
	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// broadcastNode is one node of a broadcast test: its queue (node id of its own) and
// tracker on the shared Redis and store.
type broadcastNode struct {
	q   *Queue
	b   *Broadcasts
	cat *catalog.Catalog
}

// sharedRedis is a Redis two nodes share: a redis-server, or a miniredis that both
// reach by address (what the embedded queue of one process cannot be).
var sharedRedis = []backend{
	{"redis-server", func(t testing.TB) (string, *redistest.Server) {
		s := redistest.Start(t)
		return s.URL(), s
	}},
	{"miniredis", func(t testing.TB) (string, *redistest.Server) {
		m := miniredis.NewMiniRedis()
		if err := m.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(m.Close)
		return m.Addr(), nil
	}},
}

func startBroadcastNodes(t *testing.T, addr string, rc *receiver, ids ...string) []*broadcastNode {
	store := storage.Local{Dir: t.TempDir()}
	var nodes []*broadcastNode
	for _, id := range ids {
		cfg := testConfig(addr, rc.srv.URL)
		cfg.NodeID = id
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		q, err := Open(ctx, cfg, t.TempDir(), testLogger(t))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { q.Close() })
		cat := testCatalog(t, q, store)
		if _, err := cat.EnsureIndex(t.Context()); err != nil {
			t.Fatal(err)
		}
		b := NewBroadcasts(q, cat, testLogger(t))
		b.Register()
		if err := q.Start(); err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, &broadcastNode{q: q, b: b, cat: cat})
	}
	return nodes
}

// Pushes of one stream on two nodes, each starting within the window after the
// previous one ended, are one broadcast; it ends (event 302, entry ended) only once
// the window after the last push has passed, and the next push starts a new one.
func TestBroadcastAcrossNodes(t *testing.T) {
	for _, be := range sharedRedis {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			rc := newReceiver(t, nil)
			nodes := startBroadcastNodes(t, addr, rc, "node-a", "node-b")
			a, b := nodes[0], nodes[1]
			ctx := t.Context()
			const window = 2 * time.Second
			push := func(n *broadcastNode, pushID string) (string, int) {
				t.Helper()
				id, num, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "cam", PushID: pushID,
					Started: time.Now(), Window: window, Stitch: true})
				if err != nil {
					t.Fatal(err)
				}
				return id, num
			}
			end := func(n *broadcastNode, id, pushID string) {
				t.Helper()
				if err := n.b.End(ctx, id, pushID, time.Now()); err != nil {
					t.Fatal(err)
				}
			}
			id1, n1 := push(a, "p1")
			end(a, id1, "p1")
			id2, n2 := push(b, "p2") // reconnect lands on the other node
			end(b, id2, "p2")
			id3, n3 := push(a, "p3")
			if id1 != "cam_p1" || id2 != id1 || id3 != id1 || n1 != 1 || n2 != 2 || n3 != 3 {
				t.Fatalf("pushes got (%s %d) (%s %d) (%s %d), want one broadcast cam_p1 numbered 1..3", id1, n1, id2, n2, id3, n3)
			}
			// The end tasks of p1 and p2 ran (or will) while p3 is live: nothing ends.
			end(a, id1, "p3")
			ev := rc.await(t, EventID(EventBroadcastEnded, id1), 30*time.Second).ev
			if ev.BroadcastID != id1 || ev.Pushes != 3 || ev.App != "live" || ev.StreamID != "cam" {
				t.Errorf("event 302: %+v", ev)
			}
			var entry *catalog.Broadcast
			waitFor(t, 10*time.Second, "the ended entry", func() bool {
				var err error
				entry, err = b.cat.GetBroadcast(ctx, id1)
				return err == nil && entry.State == catalog.BroadcastEnded
			})
			var pushes []string
			for _, p := range entry.Pushes {
				pushes = append(pushes, p.PushID)
				if p.EndTime.Before(p.StartTime) || p.EndTime.IsZero() {
					t.Errorf("push %s: %v..%v", p.PushID, p.StartTime, p.EndTime)
				}
			}
			if !slices.Equal(pushes, []string{"p1", "p2", "p3"}) || !entry.Stitch || entry.ReconnectWindow != 2 {
				t.Errorf("entry: %+v", entry)
			}
			if rc.count(EventID(EventBroadcastEnded, id1)) != 1 {
				t.Errorf("event 302 sent %d times", rc.count(EventID(EventBroadcastEnded, id1)))
			}
			id4, n4 := push(b, "p4")
			if id4 != "cam_p4" || n4 != 1 {
				t.Errorf("push after the end: %s %d, want a new broadcast cam_p4", id4, n4)
			}
		})
	}
}

// A push starting longer than the window after the previous one ended starts a new
// broadcast, and the old one still ends; with window 0 every push is its own.
func TestBroadcastWindowPassed(t *testing.T) {
	for _, be := range sharedRedis {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			rc := newReceiver(t, nil)
			n := startBroadcastNodes(t, addr, rc, "node-a")[0]
			ctx := t.Context()
			t0 := time.Now()
			begin := func(pushID string, at time.Time, window time.Duration) string {
				t.Helper()
				id, _, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "cam", PushID: pushID, Started: at, Window: window})
				if err != nil {
					t.Fatal(err)
				}
				return id
			}
			id1 := begin("p1", t0, time.Second)
			if err := n.b.End(ctx, id1, "p1", t0.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
			// 1.5 s after p1 ended, with a 1 s window: a new broadcast.
			id2 := begin("p2", t0.Add(2500*time.Millisecond), 0)
			if id2 == id1 {
				t.Fatalf("p2 joined %s across a gap longer than the window", id1)
			}
			rc.await(t, EventID(EventBroadcastEnded, id1), 30*time.Second)
			if err := n.b.End(ctx, id2, "p2", t0.Add(3*time.Second)); err != nil {
				t.Fatal(err)
			}
			rc.await(t, EventID(EventBroadcastEnded, id2), 30*time.Second)
			// Window 0: a push right after is a broadcast of its own.
			if id3 := begin("p3", t0.Add(3*time.Second+time.Millisecond), 0); id3 == id2 {
				t.Errorf("p3 joined %s with no window", id2)
			}
		})
	}
}

// Begin fails, without hanging, when Redis is gone: the live server then starts a
// broadcast of its own.
func TestBroadcastBeginRedisDown(t *testing.T) {
	srv := redistest.Start(t)
	rc := newReceiver(t, nil)
	n := startBroadcastNodes(t, srv.URL(), rc, "node-a")[0]
	srv.Stop()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	if _, _, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "cam", PushID: "p1", Started: time.Now(), Window: time.Minute}); err == nil {
		t.Fatal("Begin succeeded with Redis down")
	}
}

// A broadcast whose state Redis lost (a restart without persistence) stays live in
// the catalog until EndLost ends it from its entry: its push ends where its last stored
// recording does, event 302 is sent once, and a second call finds nothing to end.
func TestBroadcastEndLost(t *testing.T) {
	for _, be := range sharedRedis {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			rc := newReceiver(t, nil)
			n := startBroadcastNodes(t, addr, rc, "node-a")[0]
			ctx := t.Context()
			t0 := time.Now().Truncate(time.Millisecond).UTC()
			id, _, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "cam", PushID: "p1", Started: t0, Window: time.Minute})
			if err != nil {
				t.Fatal(err)
			}
			rec := &Recording{FileID: "cam_p1_0001_mp4", App: "live", StreamID: "cam", PushID: "p1", BroadcastID: id,
				Format: "mp4", StartTime: t0, EndTime: t0.Add(7 * time.Second), Duration: 7, Key: "live/cam/x.mp4"}
			if err := n.cat.Put(ctx, rec); err != nil {
				t.Fatal(err)
			}
			if err := n.q.broadcastFragmentStored(ctx, rec); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the live entry with its recording", func() bool {
				b, err := n.cat.GetBroadcast(ctx, id)
				return err == nil && len(b.Recordings) == 1
			})
			if err := n.q.rdb.FlushAll(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := n.cat.EnsureIndex(ctx); err != nil {
				t.Fatal(err)
			}
			ended, err := n.b.EndLost(ctx)
			if err != nil || ended != 1 {
				t.Fatalf("EndLost: %d, %v; want 1", ended, err)
			}
			ev := rc.await(t, EventID(EventBroadcastEnded, id), 10*time.Second).ev
			b, err := n.cat.GetBroadcast(ctx, id)
			if err != nil {
				t.Fatal(err)
			}
			if b.State != catalog.BroadcastEnded || !b.Pushes[0].EndTime.Equal(rec.EndTime) || b.Duration != 7 || ev.Duration != 7 {
				t.Errorf("entry %+v, event %+v: want ended at the recording's end, 7 s", b, ev)
			}
			if again, err := n.b.EndLost(ctx); again != 0 || err != nil {
				t.Errorf("EndLost again: %d, %v", again, err)
			}
		})
	}
}

// The automatic stitch of an ended broadcast waits, retrying, while one of its MP4
// fragments is handed to the upload queue but not stored, and never stitches without
// it: once it is stored, the replay joins both, and the broadcast entry names it.
func TestBroadcastStitchWaitsForFragments(t *testing.T) {
	mediatest.NeedFFmpeg(t)
	store := storage.Local{Dir: t.TempDir()}
	rc := newReceiver(t, nil)
	ctx := t.Context()
	q, err := Open(ctx, testConfig("", rc.srv.URL), t.TempDir(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	cat := testCatalog(t, q, store)
	if _, err := cat.EnsureIndex(ctx); err != nil {
		t.Fatal(err)
	}
	q.Register(TaskStitch, &Stitcher{Store: store, Catalog: cat, Queue: q, PublicURL: "http://vod.example", Log: testLogger(t)})
	b := NewBroadcasts(q, cat, testLogger(t))
	b.Register()
	if err := q.Start(); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	id, _, err := b.Begin(ctx, BroadcastPush{App: "live", StreamID: "cam", PushID: "p1", Started: t0, Window: 0, Stitch: true})
	if err != nil {
		t.Fatal(err)
	}
	mp4 := mp4test.Record(t, filepath.Join("..", "testdata", "av.flv"), 2, 4*time.Second)
	frag := func(seq int) *Recording {
		rec := &Recording{FileID: fmt.Sprintf("cam_p1_%04d_mp4", seq), App: "live", StreamID: "cam", PushID: "p1", Seq: seq,
			BroadcastID: id, Format: "mp4", StartTime: t0.Add(time.Duration(seq-1) * 8 * time.Second), Duration: 8}
		rec.EndTime = rec.StartTime.Add(8 * time.Second)
		rec.Key = rec.KeyStem("") + ".mp4"
		rec.Objects = []string{rec.Key}
		return rec
	}
	stored := func(rec *Recording) {
		t.Helper()
		if _, err := store.Put(ctx, rec.Key, bytes.NewReader(mp4), int64(len(mp4)), "video/mp4"); err != nil {
			t.Fatal(err)
		}
		if err := cat.Put(ctx, rec); err != nil {
			t.Fatal(err)
		}
		if err := q.broadcastFragmentStored(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	// The recorder notes the push as being recorded until its last fragment is handed on.
	if err := q.BroadcastPushRecording(ctx, id, "p1", true); err != nil {
		t.Fatal(err)
	}
	first, second := frag(1), frag(2)
	for _, rec := range []*Recording{first, second} {
		if err := q.broadcastFragmentPending(ctx, *rec); err != nil { // as EnqueueUpload does
			t.Fatal(err)
		}
	}
	stored(first)
	if err := b.End(ctx, id, "p1", t0.Add(16*time.Second)); err != nil {
		t.Fatal(err)
	}
	rc.await(t, EventID(EventBroadcastEnded, id), 10*time.Second)
	waitFor(t, 10*time.Second, "the stitch to wait for the second fragment", func() bool {
		info, err := q.Inspector().GetTaskInfo(QueueCallbacks, "broadcast-stitch:"+id)
		return err == nil && info.Retried >= 2 && strings.Contains(info.LastErr, second.FileID)
	})
	rc.mu.Lock()
	for _, got := range rc.all {
		if got.ev.EventType == EventStitchDone {
			t.Errorf("stitched with a fragment missing: %+v", got.ev)
		}
	}
	rc.mu.Unlock()
	stored(second)
	// Every fragment handed on is stored, but the recorder may still be finalizing
	// one: the stitch waits for the push's recording to be done.
	waitFor(t, 10*time.Second, "the stitch to wait for the push's recording", func() bool {
		info, err := q.Inspector().GetTaskInfo(QueueCallbacks, "broadcast-stitch:"+id)
		return err == nil && strings.Contains(info.LastErr, "recording:p1") && !strings.Contains(info.LastErr, second.FileID)
	})
	rc.mu.Lock()
	for _, got := range rc.all {
		if got.ev.EventType == EventStitchDone {
			t.Errorf("stitched while the push was still being recorded: %+v", got.ev)
		}
	}
	rc.mu.Unlock()
	if err := q.BroadcastPushRecording(ctx, id, "p1", false); err != nil {
		t.Fatal(err)
	}
	var done Event
	waitFor(t, 30*time.Second, "event 300 of the broadcast", func() bool {
		rc.mu.Lock()
		defer rc.mu.Unlock()
		for _, got := range rc.all {
			if got.ev.EventType == EventStitchDone && got.ev.BroadcastID == id {
				done = got.ev
				return true
			}
		}
		return false
	})
	out, err := cat.Get(ctx, done.FileID)
	if err != nil {
		t.Fatal(err)
	}
	if done.ErrCode != 0 || !slices.Equal(out.SourceFileIDs, []string{first.FileID, second.FileID}) || out.Type != catalog.TypeBroadcast {
		t.Errorf("event 300 %+v, output %+v: want both fragments, type broadcast", done, out)
	}
	if d := mediatest.Probe(t, filepath.Join(store.Dir, out.Key)).Duration(); d < 15.9 || d > 16.1 {
		t.Errorf("replay %.3f s, want 16 (2 × 8 s)", d)
	}
	waitFor(t, 10*time.Second, "the replay named in the entry", func() bool {
		e, err := cat.GetBroadcast(ctx, id)
		return err == nil && e.ReplayFileID == out.FileID
	})
}

// A push whose end was never recorded (its node died for good) counts as live only
// while its lease lasts: a later push of the stream starts a new broadcast once the
// lease and the window have passed, and Sweep ends the old one, its push ending when
// its lease ran out. A push whose node renews its lease stays live meanwhile.
func TestBroadcastLostPushEnds(t *testing.T) {
	for _, be := range sharedRedis {
		t.Run(be.name, func(t *testing.T) {
			addr, _ := be.start(t)
			rc := newReceiver(t, nil)
			n := startBroadcastNodes(t, addr, rc, "node-a")[0]
			ctx := t.Context()
			now := time.Now()
			long := now.Add(-3 * BroadcastLease)
			lost, _, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "dead", PushID: "p1", Started: long, Window: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			kept, _, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "alive", PushID: "q1", Started: long, Window: time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if err := n.b.Renew(ctx, []PushRef{{kept, "q1"}}, now); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "both entries live in the catalog", func() bool {
				l, err := n.cat.LiveBroadcasts(ctx)
				return err == nil && len(l) == 2
			})
			queued, err := n.b.Sweep(ctx, now)
			if err != nil || queued != 1 {
				t.Fatalf("Sweep: %d, %v; want the lost broadcast's end queued", queued, err)
			}
			ev := rc.await(t, EventID(EventBroadcastEnded, lost), 10*time.Second).ev
			wantEnd := long.Add(BroadcastLease).Truncate(time.Millisecond)
			if ev.Pushes != 1 || ev.EndTime != wantEnd.Unix() {
				t.Errorf("event 302 %+v: want 1 push ended at its lease's expiry %v", ev, wantEnd)
			}
			next, _, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "dead", PushID: "p2", Started: now, Window: time.Second})
			if err != nil || next == lost {
				t.Errorf("push after the lost one: %s, %v; want a new broadcast", next, err)
			}
			joined, num, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "alive", PushID: "q2", Started: now, Window: time.Second})
			if err != nil || joined != kept || num != 2 {
				t.Errorf("push while a renewed one is live: %s #%d, %v; want %s #2", joined, num, err, kept)
			}
		})
	}
}

// A live broadcast that a running Redis forgets (restarted without persistence) is
// ended by the next Sweep, as EndLost does at start.
func TestBroadcastSweepEndsForgotten(t *testing.T) {
	srv := redistest.Start(t)
	rc := newReceiver(t, nil)
	n := startBroadcastNodes(t, srv.URL(), rc, "node-a")[0]
	ctx := t.Context()
	id, _, err := n.b.Begin(ctx, BroadcastPush{App: "live", StreamID: "cam", PushID: "p1", Started: time.Now(), Window: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the live entry", func() bool {
		l, err := n.cat.LiveBroadcasts(ctx)
		return err == nil && len(l) == 1
	})
	srv.Stop()
	srv.Restart()
	waitFor(t, 10*time.Second, "the sweep to end it", func() bool {
		ended, err := n.b.Sweep(ctx, time.Now())
		return err == nil && ended == 1
	})
	rc.await(t, EventID(EventBroadcastEnded, id), 10*time.Second)
	b, err := n.cat.GetBroadcast(ctx, id)
	if err != nil || b.State != catalog.BroadcastEnded {
		t.Errorf("entry after the sweep: %+v, %v", b, err)
	}
}
