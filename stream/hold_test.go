package stream

import (
	"testing"
	"time"

	"github.com/livetape/livetape/media"
)

// An internal subscriber gets the packets in batches, in order and all of them: a
// keyframe hands over what was held at once, a batch spanning holdMedia of media is
// handed over, a publisher that pauses has its last packets handed over within
// holdWall, and the end of the stream hands over the rest before closing.
func TestNoDropSubscriberBatches(t *testing.T) {
	s := newTestStream(t, 1024)
	s.hub.holdWall = time.Hour // no release by the clock until the pause below
	s.WritePacket(seqHeader(t))
	sub, _, _ := s.SubscribeNoDrop(0)
	mustNext(t, sub)                   // the sequence header
	pkts := gopPackets(t, 60, 25, 100) // 40 ms apart, keyframes at 0, 25, 50
	var got []*media.Packet
	drain := func() {
		for sub.Len() > 0 {
			got = append(got, mustNext(t, sub))
		}
	}

	s.WritePacket(pkts[0]) // a keyframe: at once
	drain()
	if len(got) != 1 {
		t.Fatalf("after a keyframe %d packets handed over, want 1", len(got))
	}
	// Packets 40 ms apart are held until the batch spans holdMedia: the packet at
	// holdMedia past the first one held (pkts[1]) hands over the batch, itself included.
	span := (holdMedia+39)/40 + 1
	if span >= 25 {
		t.Fatalf("holdMedia %d ms: the test's GOP is too short", holdMedia)
	}
	for _, p := range pkts[1:span] {
		s.WritePacket(p)
	}
	drain()
	if len(got) != 1 {
		t.Fatalf("%d packets handed over before the batch spans %d ms", len(got), holdMedia)
	}
	s.WritePacket(pkts[span])
	drain()
	if len(got) != span+1 {
		t.Fatalf("%d packets handed over once the batch spans %d ms, want %d", len(got), holdMedia, span+1)
	}
	for _, p := range pkts[span+1 : 25] {
		s.WritePacket(p)
	}
	s.WritePacket(pkts[25]) // a keyframe hands over everything before it and itself
	drain()
	if len(got) != 26 {
		t.Fatalf("%d packets handed over after the second keyframe, want 26", len(got))
	}

	// The publisher pauses with packets held: they come within holdWall.
	s.mu.Lock()
	s.hub.holdWall = holdWall
	s.releaseTimer.Stop()
	s.timerArmed = false
	s.mu.Unlock()
	s.WritePacket(pkts[26])
	deadline := time.Now().Add(10 * time.Second)
	for len(got) < 27 {
		if time.Now().After(deadline) {
			t.Fatal("a held packet was not handed over while the publisher paused")
		}
		select {
		case <-sub.Ready():
			for p, ok := sub.TryNext(); ok; p, ok = sub.TryNext() {
				got = append(got, p)
			}
		case <-time.After(10 * time.Millisecond):
		}
	}

	// The end hands over what is held, then closes.
	for _, p := range pkts[27:] {
		s.WritePacket(p)
	}
	s.Close()
	for p := range sub.Packets() {
		got = append(got, p)
	}
	if len(got) != len(pkts) {
		t.Fatalf("%d packets delivered, %d written", len(got), len(pkts))
	}
	for i := range got {
		if got[i] != pkts[i] {
			t.Fatalf("packet %d out of order", i)
		}
	}
}
