package live

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// With live.read_merge, publishers' reads wait for a shared tick: two pushes at once
// still arrive whole, in order, at the timestamps pushed; and once they end no tick
// stays armed, so an idle node does not wake every period.
func TestMergedReads(t *testing.T) {
	obs := newRecordingObserver()
	s := startServer(t, func(c *Config) { c.ReadMerge = 20 * time.Millisecond }, obs)
	want := mediatest.ReadFLV(t, "../testdata/av.flv")
	pubs := make([]*mediatest.Publisher, 2)
	subs := make([]*stream.Subscriber, 2)
	for i := range pubs {
		pubs[i] = mediatest.PublishRTMP(t, fmt.Sprintf("rtmp://%s/live/merged%d", s.rtmpAddr, i))
		ev := obs.next(t) // the publish was answered after its start event: nothing sent yet
		if ev.kind != "start" {
			t.Fatalf("event %+v, want a start", ev)
		}
		sub, _, err := ev.pub.Stream.Subscribe(len(want) + 16)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Close()
		subs[i] = sub
	}
	var wg sync.WaitGroup
	for _, pub := range pubs {
		wg.Go(func() {
			for _, p := range want {
				if err := pub.Write(p.Kind, p.Timestamp, p.Body()); err != nil {
					t.Error(err)
					return
				}
			}
			if err := pub.Unpublish(); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for i, sub := range subs {
		var got []*media.Packet
		for p := range sub.Packets() {
			got = append(got, p)
		}
		for _, kind := range []media.Kind{media.KindVideo, media.KindAudio} {
			if g, w := timestamps(got, kind), timestamps(want, kind); !slices.Equal(g, w) {
				t.Errorf("push %d, %v timestamps:\n got %v\nwant %v", i, kind, g, w)
			}
		}
	}
	s.merged.mu.Lock()
	used := s.merged.timer != nil
	s.merged.mu.Unlock()
	if !used {
		t.Error("no read waited for a tick")
	}
	waitFor(t, "the last tick", 10*time.Second, func() bool {
		s.merged.mu.Lock()
		defer s.merged.mu.Unlock()
		return s.merged.open == nil
	})
}
