package live

import (
	"testing"
	"time"

	"github.com/livetape/livetape/internal/mediatest"
	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/packager/flv"
	"github.com/livetape/livetape/stream"
)

// TestGoPublisher pushes the av fixture with the Go publisher: the timestamps it sends
// are the ones viewers get.
func TestGoPublisher(t *testing.T) {
	obs := newRecordingObserver()
	s := startServer(t, nil, obs)
	pkts := mediatest.ReadFLV(t, "../testdata/av.flv")
	pub := mediatest.PublishRTMP(t, "rtmp://"+s.rtmpAddr+"/live/gopub?record=flv")
	if ev := obs.next(t); ev.kind != "start" || ev.pub.Params.StreamID != "gopub" {
		t.Fatalf("first event %+v", ev)
	}
	st := s.hub.Lookup("live", "gopub")
	if st == nil {
		t.Fatal("not live")
	}
	sub, _, err := st.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, p := range pkts {
		if err := pub.WritePacket(p); err != nil {
			t.Fatal(err)
		}
	}
	var last uint32
	var meta *flv.Metadata
	waitFor(t, "the last packet", 10*time.Second, func() bool {
		for p, ok := sub.TryNext(); ok; p, ok = sub.TryNext() {
			last = p.Timestamp
			if p.Kind == media.KindData {
				_, meta, _ = flv.ParseScriptData(p.Body())
			}
		}
		return last == pkts[len(pkts)-1].Timestamp
	})
	if meta == nil || meta.Width != 320 || meta.Height != 240 {
		t.Errorf("onMetaData as received: %+v, want the fixture's 320x240", meta)
	}
	if err := pub.Unpublish(); err != nil {
		t.Fatal(err)
	}
	if ev := obs.next(t); ev.kind != "end" || ev.reason != stream.EndNormal {
		t.Fatalf("second event %s %s, want end normal", ev.kind, ev.reason)
	}
}
