package stream

import (
	"testing"
	"time"

	"github.com/livetape/livetape/media"
)

// The queue keeps order across growth and wrap-around, refuses packets past its limit,
// and lets a large ring go once drained, so a subscriber that keeps up holds a small one.
func TestQueueGrowsAndShrinks(t *testing.T) {
	q := newQueue(300)
	pkts := make([]*media.Packet, 400)
	for i := range pkts {
		pkts[i] = &media.Packet{Timestamp: uint32(i)}
	}
	next := 0 // the next packet pop must return
	pop := func() {
		t.Helper()
		p, ended := q.pop()
		if ended || p != pkts[next] {
			t.Fatalf("pop: %v (ended %v), want packet %d", p, ended, next)
		}
		next++
	}
	// Wrap around a small ring, then grow it while it wraps.
	for i := range 10 {
		q.push(pkts[i])
	}
	for range 8 {
		pop()
	}
	for i := 10; i < 300+8; i++ {
		if !q.push(pkts[i]) {
			t.Fatalf("push %d refused with %d queued", i, q.len())
		}
	}
	if q.push(pkts[308]) {
		t.Fatalf("push past the limit (%d queued) accepted", q.len())
	}
	if q.free() != 0 || len(q.ring) != 300 {
		t.Fatalf("full queue: free %d, ring %d, want 0 and the limit", q.free(), len(q.ring))
	}
	for next < 308 {
		pop()
	}
	if q.ring != nil {
		t.Errorf("drained queue keeps a ring of %d", len(q.ring))
	}
	// Keeping up: one packet at a time never grows the ring past its start.
	for next = 308; next < 400; {
		q.push(pkts[next])
		pop()
		if len(q.ring) > minRing {
			t.Fatalf("ring of %d for one packet at a time", len(q.ring))
		}
	}
	q.end()
	if p, ended := q.pop(); p != nil || !ended {
		t.Errorf("after end: %v, ended %v", p, ended)
	}
	if q.push(pkts[0]) {
		t.Error("push after end accepted")
	}
}

// Next waits for a packet, drains what was queued before the end, then reports the end.
func TestSubscriberNextWaits(t *testing.T) {
	s := newTestStream(t, 64)
	sub, _, _ := s.Subscribe(0)
	got := make(chan *media.Packet)
	go func() {
		for p := range sub.Packets() {
			got <- p
		}
		close(got)
	}()
	pkts := gopPackets(t, 3, 25, 100)
	s.WritePacket(pkts[0])
	select {
	case p := <-got:
		if p != pkts[0] {
			t.Fatalf("got packet at %d, want the first", p.Timestamp)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a waiting Next did not get the packet written")
	}
	s.WritePacket(pkts[1])
	s.WritePacket(pkts[2])
	s.Close()
	var rest []*media.Packet
	for p := range got {
		rest = append(rest, p)
	}
	if len(rest) != 2 || rest[0] != pkts[1] || rest[1] != pkts[2] {
		t.Errorf("after the end: %d packets, want the two queued before it", len(rest))
	}
}
