package live

import (
	"errors"
	"net"
	"sync"
	"time"
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
