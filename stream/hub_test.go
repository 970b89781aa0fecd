package stream

import (
	"errors"
	"io"
	"log/slog"
	"testing"

	"github.com/livetape/livetape/media"
)

func newTestStream(t testing.TB, queue int) *Stream {
	t.Helper()
	h := NewHub(queue, slog.New(slog.NewTextHandler(io.Discard, nil)))
	s, err := h.Publish(&PushParams{App: "live", StreamID: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// gopPackets returns n video packets at 40 ms spacing with a keyframe every gop packets.
func gopPackets(t testing.TB, n, gop int, size int) []*media.Packet {
	t.Helper()
	out := make([]*media.Packet, n)
	for i := range out {
		frameType := byte(0x27)
		if i%gop == 0 {
			frameType = 0x17
		}
		body := make([]byte, size)
		copy(body, []byte{frameType, 1, 0, 0, 0})
		p, err := media.NewPacket(media.KindVideo, uint32(i*40), body)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = p
	}
	return out
}

func seqHeader(t testing.TB) *media.Packet {
	p, err := media.NewPacket(media.KindVideo, 0, []byte{0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestNewSubscriberStartsOnKeyframe(t *testing.T) {
	s := newTestStream(t, 64)
	s.WritePacket(seqHeader(t))
	pkts := gopPackets(t, 37, 25, 100)
	for _, p := range pkts {
		s.WritePacket(p)
	}
	sub, info, err := s.Subscribe(0)
	if err != nil {
		t.Fatal(err)
	}
	if !info.HasVideo {
		t.Error("info: no video")
	}
	first := mustNext(t, sub)
	if !first.SequenceHeader || first.Timestamp != pkts[25].Timestamp {
		t.Errorf("first packet: seqhdr=%v ts=%d, want the header stamped %d", first.SequenceHeader, first.Timestamp, pkts[25].Timestamp)
	}
	second := mustNext(t, sub)
	if second != pkts[25] || !second.Keyframe {
		t.Errorf("second packet is not the cached keyframe (ts %d)", second.Timestamp)
	}
	if n := sub.Len(); n != 11 {
		t.Errorf("%d more packets queued, want the rest of the GOP (11)", n)
	}
}

func TestSlowSubscriberSkipsThenIsDropped(t *testing.T) {
	s := newTestStream(t, 32)
	s.WritePacket(seqHeader(t))
	slow, _, _ := s.Subscribe(0)
	dropped := make(chan struct{})
	slow.OnDrop(func() { close(dropped) })
	fast, _, _ := s.Subscribe(0)
	pkts := gopPackets(t, 200, 25, 100)
	got := 0
	for i, p := range pkts {
		s.WritePacket(p) // never blocks, whatever the subscribers do
		for fast.Len() > 0 {
			mustNext(t, fast)
			got++
		}
		if i == 40 && !slow.skipping {
			t.Error("slow subscriber not skipping after its queue overflowed")
		}
	}
	select {
	case <-dropped:
	default:
		t.Fatal("slow subscriber was not dropped")
	}
	for range slow.Packets() {
	}
	if !errors.Is(slow.Err(), ErrTooSlow) {
		t.Errorf("slow.Err() = %v", slow.Err())
	}
	if got != len(pkts)+1 || fast.Skipped.Load() != 0 { // +1: the sequence header
		t.Errorf("fast subscriber got %d of %d packets, skipped %d", got, len(pkts), fast.Skipped.Load())
	}
	if s.Viewers() != 1 {
		t.Errorf("viewers = %d, want 1", s.Viewers())
	}
}

func TestSkippingSubscriberResumesAtKeyframe(t *testing.T) {
	s := newTestStream(t, 32)
	s.WritePacket(seqHeader(t))
	sub, _, _ := s.Subscribe(0)
	pkts := gopPackets(t, 60, 25, 100)
	var seen []*media.Packet
	for i, p := range pkts {
		s.WritePacket(p)
		if i == 35 { // the queue overflowed around packet 31: drain it once
			for sub.Len() > 0 {
				seen = append(seen, mustNext(t, sub))
			}
		}
	}
	for sub.Len() > 0 {
		seen = append(seen, mustNext(t, sub))
	}
	// After the gap the next packet must be the keyframe at index 50.
	for i := 1; i < len(seen); i++ {
		if seen[i].Timestamp-seen[i-1].Timestamp > 40 {
			if seen[i] != pkts[50] {
				t.Fatalf("resumed at ts %d, want the keyframe at %d", seen[i].Timestamp, pkts[50].Timestamp)
			}
			return
		}
	}
	t.Fatal("no gap: the subscriber never skipped")
}

func TestSecondPublisherRefused(t *testing.T) {
	s := newTestStream(t, 16)
	if _, err := s.hub.Publish(&PushParams{App: "live", StreamID: "t"}); !errors.Is(err, ErrAlreadyPublishing) {
		t.Fatalf("err = %v", err)
	}
	s.Close()
	if _, err := s.hub.Publish(&PushParams{App: "live", StreamID: "t"}); err != nil {
		t.Fatalf("after close: %v", err)
	}
}

func TestNoDropSubscriberSkipsButStays(t *testing.T) {
	s := newTestStream(t, 32)
	s.WritePacket(seqHeader(t))
	sub, _, _ := s.SubscribeNoDrop(0)
	for _, p := range gopPackets(t, 200, 25, 100) {
		s.WritePacket(p)
	}
	if s.Viewers() != 1 || sub.Skipped.Load() == 0 {
		t.Fatalf("viewers %d, skipped %d: want still subscribed, with skips counted", s.Viewers(), sub.Skipped.Load())
	}
}

// mustNext is the subscriber's next packet; the test fails if the subscription ended.
func mustNext(t *testing.T, sub *Subscriber) *media.Packet {
	t.Helper()
	p, ok := sub.Next()
	if !ok {
		t.Fatal("the subscription ended")
	}
	return p
}
