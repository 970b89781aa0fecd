package live

import (
	"testing"
	"time"

	"github.com/livetape/livetape/stream"
)

type observed struct {
	kind   string
	pub    *stream.Publication
	reason stream.EndReason
}

type recordingObserver struct{ ch chan observed }

func newRecordingObserver() *recordingObserver {
	return &recordingObserver{ch: make(chan observed, 16)}
}

func (o *recordingObserver) PublishStarted(p *stream.Publication) {
	o.ch <- observed{kind: "start", pub: p}
}

func (o *recordingObserver) PublishEnded(p *stream.Publication, r stream.EndReason, _ time.Time) {
	o.ch <- observed{kind: "end", pub: p, reason: r}
}

func (o *recordingObserver) next(t testing.TB) observed {
	t.Helper()
	select {
	case ev := <-o.ch:
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no publish event within 15 s")
		return observed{}
	}
}
