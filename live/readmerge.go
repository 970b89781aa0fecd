package live

import (
	"sync"
	"time"
)

// mergedReads holds publishers' reads until a shared tick (live.read_merge), so what
// every publisher sent during one period is read in one burst: a publisher's goroutine
// runs once a period instead of once per TCP segment, and its viewers, recorder and
// live HLS get larger batches (SRS's merged read). Go's poller still wakes per segment
// (it finds no reader waiting), so less is saved than the period suggests. The cost is
// latency to every viewer: more than the period itself (the README has what
// livetape-load measured).
type mergedReads struct {
	period time.Duration

	mu    sync.Mutex
	open  chan struct{} // closed at the next tick; nil while no read waits
	timer *time.Timer
}

// newMergedReads returns nil (reads are not held) for a period of 0.
func newMergedReads(period time.Duration) *mergedReads {
	if period <= 0 {
		return nil
	}
	return &mergedReads{period: period}
}

// wait returns at the next tick. The first read to wait arms it, so the timer runs
// only while publishers read.
func (m *mergedReads) wait() {
	m.mu.Lock()
	if m.open == nil {
		m.open = make(chan struct{})
		if m.timer == nil {
			m.timer = time.AfterFunc(m.period, m.tick)
		} else {
			m.timer.Reset(m.period)
		}
	}
	open := m.open
	m.mu.Unlock()
	<-open
}

func (m *mergedReads) tick() {
	m.mu.Lock()
	close(m.open)
	m.open = nil
	m.mu.Unlock()
}
