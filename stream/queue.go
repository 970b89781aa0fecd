package stream

import (
	"sync"

	"github.com/livetape/livetape/media"
)

// Ring sizes of a subscriber's queue: it starts at minRing slots and doubles as
// packets wait, up to the subscriber's limit; drained, a ring larger than keepRing is
// let go. A viewer that keeps up then holds a few slots instead of its whole limit (a
// channel of 512 packets was 4 KiB a viewer, a recorder's of 16384 was 128 KiB a push),
// and a new viewer's GOP burst or a recorder's batch costs a few growths.
const (
	minRing  = 16
	keepRing = 64
)

// queue is a subscriber's FIFO of packets: one writer (the stream, under its lock) and
// one reader (the subscriber's goroutine).
type queue struct {
	limit int
	ready chan struct{} // a token once a packet lands in an empty queue, or at the end

	mu      sync.Mutex
	ring    []*media.Packet
	head, n int
	ended   bool
}

func newQueue(limit int) *queue {
	return &queue{limit: limit, ready: make(chan struct{}, 1)}
}

// push appends p; it returns false, queuing nothing, when the queue is full.
func (q *queue) push(p *media.Packet) bool {
	q.mu.Lock()
	if q.n >= q.limit || q.ended {
		q.mu.Unlock()
		return false
	}
	if q.n == len(q.ring) {
		q.grow()
	}
	q.ring[(q.head+q.n)%len(q.ring)] = p
	q.n++
	wake := q.n == 1
	q.mu.Unlock()
	if wake {
		q.signal()
	}
	return true
}

// grow doubles the ring (up to the limit), keeping the packets in order.
func (q *queue) grow() {
	ring := make([]*media.Packet, min(max(2*len(q.ring), minRing), q.limit))
	for i := range q.n {
		ring[i] = q.ring[(q.head+i)%len(q.ring)]
	}
	q.ring, q.head = ring, 0
}

// free is how many more packets fit.
func (q *queue) free() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.limit - q.n
}

// end lets the reader drain what is queued and then see the end.
func (q *queue) end() {
	q.mu.Lock()
	q.ended = true
	q.mu.Unlock()
	q.signal()
}

func (q *queue) signal() {
	select {
	case q.ready <- struct{}{}:
	default: // a token is waiting already
	}
}

// pop takes the oldest packet, if any; ended tells that none will come any more.
func (q *queue) pop() (p *media.Packet, ended bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.n == 0 {
		return nil, q.ended
	}
	p, q.ring[q.head] = q.ring[q.head], nil
	q.head = (q.head + 1) % len(q.ring)
	q.n--
	if q.n == 0 {
		q.head = 0
		if len(q.ring) > keepRing {
			q.ring = nil
		}
	}
	return p, false
}

func (q *queue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}
