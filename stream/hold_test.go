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
	s.WritePacket(pkts[1]) // 40 ms: held
	s.WritePacket(pkts[2]) // 80 ms: held
	drain()
	if len(got) != 1 {
		t.Fatalf("%d packets handed over before the batch spans %d ms", len(got), holdMedia)
	}
	s.WritePacket(pkts[3]) // 120 ms: 80 ms past the first held... still held
	s.WritePacket(pkts[4]) // 160 ms: 120 ms past it: the batch goes
	drain()
	if len(got) != 5 {
		t.Fatalf("%d packets handed over once the batch spans %d ms, want 5", len(got), holdMedia)
	}
	for _, p := range pkts[5:25] {
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
