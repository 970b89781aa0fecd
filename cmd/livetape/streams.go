package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/api"
	"github.com/livetape/livetape/live"
	"github.com/livetape/livetape/recorder"
	"github.com/livetape/livetape/stream"
)

// liveStreams is this node's live server and recorder as the streams API asks for
// them (api.LiveStreams).
type liveStreams struct {
	live   *live.Server
	rec    *recorder.Recorder
	nodeID string
}

var _ api.LiveStreams = liveStreams{}

func (l liveStreams) Streams() []api.Stream {
	stats := l.live.Hub().AllStats()
	out := make([]api.Stream, 0, len(stats))
	for _, st := range stats {
		if st.PushID != "" {
			out = append(out, l.toAPI(st))
		}
	}
	return out
}

// Stream is a live stream once its push has started: the API shows no stream whose
// recorder and callbacks have not been told yet (its broadcast is being looked up), so
// what the API then does to it (record, kick) finds it everywhere.
func (l liveStreams) Stream(app, id string) (api.Stream, bool) {
	s := l.live.Hub().Lookup(app, id)
	if s == nil {
		return api.Stream{}, false
	}
	st := s.Stats()
	if st.PushID == "" {
		return api.Stream{}, false
	}
	return l.toAPI(st), true
}

func (l liveStreams) toAPI(st stream.Stats) api.Stream {
	host, _, _ := net.SplitHostPort(st.ClientAddr)
	out := api.Stream{
		App: st.App, StreamID: st.StreamID, NodeID: l.nodeID, PushID: st.PushID,
		Started: st.Started.UTC(), Duration: time.Since(st.Started).Seconds(), StreamParam: st.StreamParam,
		Publisher: &api.Publisher{Address: st.ClientAddr, ClientIP: host, Software: st.ClientApp},
		BytesIn:   st.BytesIn, Viewers: map[string]int{}, BytesOut: map[string]int64{},
		Skipped: st.Skipped, Dropped: st.Dropped, InternalSkipped: st.InternalSkipped,
		Recording: []api.Recording{},
	}
	total := 0
	for _, p := range stream.Protocols {
		out.Viewers[p.String()] = st.Viewers[p]
		out.BytesOut[p.String()] = st.BytesOut[p]
		total += st.Viewers[p]
	}
	out.Viewers["total"] = total
	if st.VideoCodec != "" || st.VideoFrames > 0 {
		out.Video = &api.Video{
			Codec: st.VideoCodec, Profile: int(st.Profile), Level: int(st.Level), Width: st.Width, Height: st.Height,
			FPS: round2(st.FPS), FPSAvg: round2(st.FPSAverage), Kbps: round2(st.VideoKbps), KbpsAvg: round2(st.VideoKbpsAverage),
			KeyframeInterval: st.KeyframeInterval.Seconds(), Frames: st.VideoFrames,
		}
	}
	if st.AudioCodec != "" || st.AudioFrames > 0 {
		out.Audio = &api.Audio{
			Codec: st.AudioCodec, SampleRate: st.SampleRate, Channels: st.Channels,
			Kbps: round2(st.AudioKbps), KbpsAvg: round2(st.AudioKbpsAverage), Frames: st.AudioFrames,
		}
	}
	for _, r := range l.rec.Status(st.App, st.StreamID) {
		out.Recording = append(out.Recording, api.Recording{Format: r.Format, FileID: r.FileID,
			Seconds: round2(r.Seconds), TotalSeconds: round2(r.Total), Interval: int(r.Interval.Seconds())})
	}
	return out
}

func round2(f float64) float64 { return float64(int64(f*100+0.5)) / 100 }

func (l liveStreams) Kick(app, id string, ban time.Duration) error {
	err := l.live.Kick(app, id, ban)
	if errors.Is(err, live.ErrNotPublishing) {
		if ban > 0 {
			return nil // the ban is set: nothing to drop here
		}
		return fmt.Errorf("%w: %w", api.ErrNotLive, err)
	}
	return err
}

func (l liveStreams) StartRecording(app, id string, formats []string, interval time.Duration) error {
	return recorderError(l.rec.Start(app, id, formats, interval))
}

func (l liveStreams) StopRecording(app, id string) error {
	return recorderError(l.rec.Stop(app, id))
}

func recorderError(err error) error {
	switch {
	case errors.Is(err, recorder.ErrNotLive):
		return fmt.Errorf("%w: %w", api.ErrNotLive, err)
	case errors.Is(err, recorder.ErrAlreadyRecording), errors.Is(err, recorder.ErrNotRecording):
		return fmt.Errorf("%w: %w", api.ErrConflict, err)
	}
	return err
}

// The stream locator: one Redis key per stream live on any node, naming the node and
// its API URL, with a TTL the node refreshes while the stream is live, so a node that
// dies leaves no entry behind for longer than locatorTTL.
const (
	locatorPrefix  = "livetape:stream:"
	locatorTTL     = 30 * time.Second
	locatorRefresh = 10 * time.Second
)

// locator keeps this node's live streams in Redis and reads every node's
// (api.Locator). It is a stream.Observer; Redis is written by one goroutine, off the
// publisher's connection.
type locator struct {
	rdb    redis.UniversalClient
	nodeID string
	apiURL string
	log    *slog.Logger
	ops    chan *locatorOp // pointers: 1024 queued ops would hold 100 KB at rest
}

type locatorOp struct {
	entry api.Located
	del   bool
}

func newLocator(rdb redis.UniversalClient, nodeID, apiURL string, log *slog.Logger) *locator {
	return &locator{rdb: rdb, nodeID: nodeID, apiURL: apiURL, log: log.With("component", "locator"), ops: make(chan *locatorOp, 1024)}
}

var _ api.Locator = (*locator)(nil)

func (l *locator) PublishStarted(p *stream.Publication) {
	l.queue(locatorOp{entry: api.Located{App: p.Params.App, StreamID: p.Params.StreamID, NodeID: l.nodeID, APIURL: l.apiURL, Started: p.Started.UTC()}})
}

func (l *locator) PublishEnded(p *stream.Publication, _ stream.EndReason, _ time.Time) {
	l.queue(locatorOp{entry: api.Located{App: p.Params.App, StreamID: p.Params.StreamID}, del: true})
}

// queue hands op to the writer; when it is behind, the refresh puts things right.
func (l *locator) queue(op locatorOp) {
	select {
	case l.ops <- &op:
	default:
	}
}

// run writes the queued changes and refreshes the live streams of hub until ctx ends,
// then removes them (the node stops serving them).
func (l *locator) run(ctx context.Context, hub *stream.Hub) {
	t := time.NewTicker(locatorRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			for _, s := range hub.Streams() {
				l.rdb.Del(cctx, locatorPrefix+s.Params.Key())
			}
			cancel()
			return
		case op := <-l.ops:
			l.apply(ctx, *op)
		case <-t.C:
			for _, s := range hub.Streams() {
				l.apply(ctx, locatorOp{entry: api.Located{App: s.Params.App, StreamID: s.Params.StreamID,
					NodeID: l.nodeID, APIURL: l.apiURL, Started: s.Started.UTC()}})
			}
		}
	}
}

func (l *locator) apply(ctx context.Context, op locatorOp) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	key := locatorPrefix + op.entry.App + "/" + op.entry.StreamID
	var err error
	if op.del {
		// Only this node's entry: the stream may have moved to another node meanwhile.
		err = delIfNode.Run(ctx, l.rdb, []string{key}, l.nodeID).Err()
		if errors.Is(err, redis.Nil) {
			err = nil
		}
	} else {
		b, _ := json.Marshal(op.entry)
		err = l.rdb.Set(ctx, key, b, locatorTTL).Err()
	}
	if err != nil {
		l.log.Warn("stream locator not updated; retried at the next refresh", "stream", op.entry.App+"/"+op.entry.StreamID, "err", err)
	}
}

// delIfNode deletes KEYS[1] if its entry names node ARGV[1].
var delIfNode = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v and cjson.decode(v).node_id == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`)

// Live lists every node's live streams.
func (l *locator) Live(ctx context.Context) ([]api.Located, error) {
	var keys []string
	iter := l.rdb.Scan(ctx, 0, locatorPrefix+"*", 1000).Iterator()
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		return nil, fmt.Errorf("stream locator: scan: %w", err)
	}
	var out []api.Located
	for len(keys) > 0 {
		n := min(len(keys), 500)
		vals, err := l.rdb.MGet(ctx, keys[:n]...).Result()
		if err != nil {
			return nil, fmt.Errorf("stream locator: mget: %w", err)
		}
		keys = keys[n:]
		for _, v := range vals {
			if s, ok := v.(string); ok {
				var e api.Located
				if json.Unmarshal([]byte(s), &e) == nil {
					out = append(out, e)
				}
			}
		}
	}
	return out, nil
}

// Find returns where app/id is live.
func (l *locator) Find(ctx context.Context, app, id string) (api.Located, bool, error) {
	b, err := l.rdb.Get(ctx, locatorPrefix+app+"/"+id).Bytes()
	if errors.Is(err, redis.Nil) {
		return api.Located{}, false, nil
	}
	if err != nil {
		return api.Located{}, false, fmt.Errorf("stream locator: %w", err)
	}
	var e api.Located
	if err := json.Unmarshal(b, &e); err != nil {
		return api.Located{}, false, fmt.Errorf("stream locator: entry of %s/%s: %w", app, id, err)
	}
	return e, true, nil
}
