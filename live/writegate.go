package live

import (
	"errors"
	"net"
	"sync"
	"time"

	"github.com/livetape/livetape/media"
	"github.com/livetape/livetape/stream"
)

// errWritesAborted is returned by writes to a viewer the hub dropped.
var errWritesAborted = errors.New("writes aborted: viewer dropped")

// writeGate sets a connection's write deadlines so that aborting is final: abort (the
// hub's OnDrop) fails a blocked write at once, and no later write arms a new deadline.
// Without the lock a writer could arm a fresh deadline just after the abort and block
// for the whole write timeout.
type writeGate struct {
	conn    net.Conn
	mu      sync.Mutex
	aborted bool
}

// arm sets the write deadline d from now, or reports false once aborted.
func (g *writeGate) arm(d time.Duration) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.aborted {
		return false
	}
	g.conn.SetWriteDeadline(time.Now().Add(d))
	return true
}

// abort fails the write in progress and every later one. It does not block.
func (g *writeGate) abort() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.aborted = true
	g.conn.SetWriteDeadline(time.Now())
}

// maxBatch is the most packets written in one writev.
const maxBatch = 64

// maxHeldAudio is how many audio packets a viewer's writer holds back waiting for the
// next video frame (about 90 ms of AAC), so a stalled video track does not stall audio.
const maxHeldAudio = 4

// nextBatch appends to batch[:0] the packets to write next with one writev: first
// one packet (waiting for it), then every packet already queued. When the stream has
// video, audio that came after the last video frame is held until the next video
// frame (up to maxHeldAudio packets): a viewer then writes about once per video frame
// instead of once per packet, which halves its system calls (the writes are most of a
// viewer's cost). It returns false when the subscription ended and nothing is left.
func nextBatch(sub *stream.Subscriber, batch []*media.Packet, hasVideo bool) ([]*media.Packet, bool) {
	batch = batch[:0]
	p, ok := sub.Next()
	if !ok {
		return batch, false
	}
	batch = append(batch, p)
	held := 0
	for len(batch) < maxBatch {
		if p.Kind == media.KindVideo {
			held = 0
		} else {
			held++
		}
		if p, ok = sub.TryNext(); !ok {
			if !hasVideo || held == 0 || held >= maxHeldAudio {
				return batch, true
			}
			if p, ok = sub.Next(); !ok { // hold the audio until the next video frame
				return batch, true
			}
		}
		batch = append(batch, p)
	}
	return batch, true
}
