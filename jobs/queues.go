package jobs

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Serve is a set of queues a process works on (see Config.Serve).
type Serve uint8

const (
	// ServeNode: the uploads of this node's spool, queue node:{NodeID}.
	// Only the node whose disk holds the fragments can do them.
	ServeNode Serve = 1 << iota
	// ServeShared: the work any node can do, because it reads from the
	// bucket and Redis only: callbacks (QueueCallbacks) and heavy jobs
	// (QueueCPU).
	ServeShared

	// ServeAll is a single "livetape serve" that does everything.
	ServeAll = ServeNode | ServeShared
)

// Queue names. Work that needs a node's disk goes to that node's queue;
// everything else to a shared one.
const (
	// QueueCallbacks holds callback deliveries (TaskNotify).
	QueueCallbacks = "callbacks"
	// QueueCPU holds heavy jobs (transcode, stitch): the default of Enqueue.
	QueueCPU = "cpu"
	// nodeQueuePrefix + NodeID holds the uploads of that node's spool.
	nodeQueuePrefix = "node:"
)

// NodeQueue is the queue of the uploads of node nodeID's spool.
func NodeQueue(nodeID string) string { return nodeQueuePrefix + nodeID }

// Queue weights: a worker picks its next task from a queue with a
// probability proportional to its weight, among the queues that hold work.
// Callbacks are small and late ones are what a customer notices, so they go
// first; uploads free the spool and lead to a callback, so they go before
// heavy jobs. Weighted rather than strict priority: a burst of callbacks (a
// receiver back after an outage, thousands of retries due at once) must
// slow uploads down, not stop them while the spool fills up.
const (
	weightCallbacks = 6
	weightNode      = 3
	weightCPU       = 1
)

// queues is asynq's Config.Queues for what cfg serves.
func queues(cfg Config) map[string]int {
	q := map[string]int{}
	if cfg.Serve&ServeNode != 0 {
		q[NodeQueue(cfg.NodeID)] = weightNode
	}
	if cfg.Serve&ServeShared != 0 {
		q[QueueCallbacks] = weightCallbacks
		q[QueueCPU] = weightCPU
	}
	return q
}

// CompletedRetention is how long a completed task is kept in Redis. Every
// livetape task has an id that says "do this once" (upload:{file_id},
// notify:{event_id}:…); while the completed task is kept, enqueueing that id
// again is refused, so a reconcile that raced with the completion (it read
// the spool or the pending events just before the task finished) cannot run
// finished work a second time. 24 h covers any reconcile interval with a
// wide margin, for a few hundred bytes per task.
const CompletedRetention = 24 * time.Hour

// DrainNode waits until this node's queue holds no upload that is waiting or
// running, or until ctx ends (its error is returned then). Uploads waiting
// for a retry are not waited for: storage is failing, and the spool keeps
// them for the next start. Call it at shutdown once the recorder has handed
// on its last fragments, and before Close: the workers keep running
// meanwhile, so a stopped node leaves its spool uploaded. A process that
// does not serve its node queue has nothing to drain.
func (q *Queue) DrainNode(ctx context.Context) error {
	if q.cfg.Serve&ServeNode == 0 {
		return nil
	}
	name := NodeQueue(q.cfg.NodeID)
	names, err := q.inspector.Queues()
	if err != nil {
		return fmt.Errorf("jobs: drain node queue: %w", err)
	}
	if !slices.Contains(names, name) {
		return nil // nothing was ever queued
	}
	tick := time.NewTicker(q.cfg.PollInterval)
	defer tick.Stop()
	for {
		info, err := q.inspector.GetQueueInfo(name)
		switch {
		case err != nil:
			q.log.Warn("drain: node queue", "err", err)
		case info.Pending+info.Active == 0:
			return nil
		}
		select {
		case <-ctx.Done():
			left := -1
			if info != nil {
				left = info.Pending + info.Active
			}
			return fmt.Errorf("jobs: drain node queue: %d uploads left: %w", left, ctx.Err())
		case <-tick.C:
		}
	}
}
