package recorder

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/live"
)

// gatedSink is the consumer of closed fragments, held shut until the test opens its
// gate: the recorder hands a fragment on from the goroutine that finalized it, so the
// calls waiting here are the finalizations running at once.
type gatedSink struct {
	next Sink
	gate chan struct{}

	mu      sync.Mutex
	running int
	most    int
}

func (s *gatedSink) FragmentClosed(m *Manifest) error {
	s.mu.Lock()
	s.running++
	s.most = max(s.most, s.running)
	s.mu.Unlock()
	<-s.gate
	s.mu.Lock()
	s.running--
	s.mu.Unlock()
	return s.next.FragmentClosed(m)
}

func (s *gatedSink) state() (running, most int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running, s.most
}

// Five pushes ending at once close five fragments: two finalize, the other three wait
// for them (README: "at most 2 at once"), and all five are recorded in the end.
func TestFinalizePoolBound(t *testing.T) {
	const pushes, bound = 5, 2 // README, "Roles and shutdown": at most 2 at once
	dir := t.TempDir()
	logs := &mediatest.SyncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	out := filepath.Join(dir, "recordings")
	sink := &gatedSink{next: &LocalSink{Dir: out, Log: log}, gate: make(chan struct{})}
	rec, err := New(DefaultConfig(), filepath.Join(dir, "spool"), sink, log)
	if err != nil {
		t.Fatal(err)
	}
	srv := live.NewServer(live.DefaultConfig(), log, rec)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { srv.ServeRTMP(ctx, ln); close(done) }()
	var openGate sync.Once
	t.Cleanup(func() {
		openGate.Do(func() { close(sink.gate) })
		cancel()
		<-done
		rec.Wait()
		if t.Failed() {
			t.Logf("log:\n%s", logs)
		}
	})

	pkts := mediatest.ReadFLV(t, filepath.Join("..", "testdata", "av.flv"))
	pubs := make([]*mediatest.Publisher, pushes)
	for i := range pubs {
		pubs[i] = mediatest.PublishRTMP(t, fmt.Sprintf("rtmp://%s/live/pool%d?record=flv", ln.Addr(), i))
		for _, p := range pkts {
			if err := pubs[i].WritePacket(p); err != nil {
				t.Fatalf("push %d: %v", i, err)
			}
		}
	}
	for _, p := range pubs {
		if err := p.Unpublish(); err != nil {
			t.Fatal(err)
		}
	}
	queued := func() int {
		rec.finMu.Lock()
		defer rec.finMu.Unlock()
		return len(rec.toFinalize)
	}
	// With the sink shut, every fragment ends up either handed on (its finalizer
	// blocked in the sink) or queued for a finalizer.
	mediatest.WaitFor(t, "every fragment handed on or waiting", 30*time.Second, func() bool {
		running, _ := sink.state()
		return running+queued() == pushes
	})
	if running, _ := sink.state(); running != bound {
		t.Errorf("%d fragments finalizing at once, %d waiting: want %d at once", running, queued(), bound)
	}
	openGate.Do(func() { close(sink.gate) })
	mediatest.WaitFor(t, "every fragment recorded", 30*time.Second, func() bool {
		files, _ := filepath.Glob(filepath.Join(out, "live", "pool*", "*.flv"))
		return len(files) == pushes
	})
	if _, most := sink.state(); most != bound {
		t.Errorf("%d fragments finalized at once, want at most %d", most, bound)
	}
}
