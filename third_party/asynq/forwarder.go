// Copyright 2020 Kentaro Hibino. All rights reserved.
// Use of this source code is governed by a MIT license
// that can be found in the LICENSE file.

package asynq

import (
	"sync"
	"time"

	"github.com/hibiken/asynq/internal/base"
	"github.com/hibiken/asynq/internal/log"
)

// A forwarder is responsible for moving scheduled and retry tasks to pending state
// so that the tasks get processed by the workers.
type forwarder struct {
	logger *log.Logger
	broker base.Broker

	// channel to communicate back to the long running "forwarder" goroutine.
	done chan struct{}

	// list of queue names to check and enqueue.
	queues []string

	// poll interval on average
	avgInterval time.Duration

	// livetape patch: forwarded is called when a check moved tasks to pending
	// (the server wakes its processor), and due holds the whole seconds at
	// which tasks this server put in the retry set become ready, so that they
	// are moved then rather than at the next poll. kick tells the goroutine
	// that due changed.
	forwarded func()
	mu        sync.Mutex
	due       map[int64]struct{}
	kick      chan struct{}
}

// maxDue bounds the retry times the forwarder remembers (livetape patch); past
// it, retries are found by the poll.
const maxDue = 1024

type forwarderParams struct {
	logger    *log.Logger
	broker    base.Broker
	queues    []string
	interval  time.Duration
	forwarded func() // livetape patch: called when a check moved tasks
}

func newForwarder(params forwarderParams) *forwarder {
	forwarded := params.forwarded
	if forwarded == nil {
		forwarded = func() {}
	}
	return &forwarder{
		logger:      params.logger,
		broker:      params.broker,
		done:        make(chan struct{}),
		queues:      params.queues,
		avgInterval: params.interval,
		forwarded:   forwarded,
		due:         make(map[int64]struct{}),
		kick:        make(chan struct{}, 1),
	}
}

// dueAt tells the forwarder that a task becomes ready at t (livetape patch).
// Redis scores delayed tasks in whole seconds and the forwarder moves those
// whose second has begun, so t is kept as its second.
func (f *forwarder) dueAt(t time.Time) {
	f.mu.Lock()
	if len(f.due) < maxDue {
		f.due[t.Unix()] = struct{}{}
	}
	f.mu.Unlock()
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

func (f *forwarder) shutdown() {
	f.logger.Debug("Forwarder shutting down...")
	// Signal the forwarder goroutine to stop polling.
	f.done <- struct{}{}
}

// next is when to check next (livetape patch): at poll, or at the earliest
// remembered retry time if that comes first.
func (f *forwarder) next(poll time.Time) time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.due {
		if t := time.Unix(s, 0); t.Before(poll) {
			poll = t
		}
	}
	return poll
}

// forgetDue forgets the retry times that have come (livetape patch): the
// check about to run moves their tasks.
func (f *forwarder) forgetDue() {
	now := time.Now().Unix()
	f.mu.Lock()
	defer f.mu.Unlock()
	for s := range f.due {
		if s <= now {
			delete(f.due, s)
		}
	}
}

// start starts the "forwarder" goroutine.
func (f *forwarder) start(wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		poll := time.Now().Add(f.avgInterval)
		for {
			// livetape patch: wake at the poll or at the earliest known
			// retry time, whichever comes first; a new retry time re-arms.
			timer := time.NewTimer(time.Until(f.next(poll)))
			select {
			case <-f.done:
				timer.Stop()
				f.logger.Debug("Forwarder done")
				return
			case <-f.kick:
				timer.Stop()
				continue
			case <-timer.C:
			}
			f.forgetDue()
			f.exec()
			if !time.Now().Before(poll) {
				poll = time.Now().Add(f.avgInterval)
			}
		}
	}()
}

func (f *forwarder) exec() {
	n, err := f.broker.ForwardIfReady(f.queues...)
	if err != nil {
		f.logger.Errorf("Failed to forward scheduled tasks: %v", err)
	}
	if n > 0 {
		f.forwarded() // livetape patch
	}
}
