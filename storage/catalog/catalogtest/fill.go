// Package catalogtest fills a store with catalog entries, as the upload job leaves them,
// for tests and benchmarks that need many recordings without recording them.
package catalogtest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// FillConfig shapes the entries Fill writes.
type FillConfig struct {
	N       int      // entries
	Apps    []string // ["live"] when empty
	Streams int      // streams per app (100 when 0); entry i is of stream i % (apps × streams)
	// Start is the start time of each stream's first fragment (2026-01-01 UTC when
	// zero); a stream's fragments follow each other every Interval (30 min when 0).
	Start    time.Time
	Interval time.Duration
	// Concurrency bounds the parallel Puts (16 when 0).
	Concurrency int
	// PushQuery is the stream_param of every entry (a push query with its credentials
	// when empty, as an old livetape stored it, so that readers must strip them).
	PushQuery string
}

// StreamName is the stream id of stream s of an app.
func StreamName(s int) string { return fmt.Sprintf("stream%04d", s) }

// Fill writes cfg.N catalog entries straight to st — the JSON only, no media and no
// index — and returns them in the order they were generated. Entry i is fragment i/S of
// stream i%S (S streams in all), so a stream's entries are cfg.Interval apart.
func Fill(ctx context.Context, st storage.Store, cfg FillConfig) ([]*catalog.Recording, error) {
	if len(cfg.Apps) == 0 {
		cfg.Apps = []string{"live"}
	}
	if cfg.Streams == 0 {
		cfg.Streams = 100
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if cfg.Interval == 0 {
		cfg.Interval = 30 * time.Minute
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.PushQuery == "" {
		cfg.PushQuery = "txSecret=0123456789abcdef0123456789abcdef&txTime=7FFFFFFF&record=mp4&record_interval=1800"
	}
	formats := []string{"mp4", "flv", "hls"}
	streams := len(cfg.Apps) * cfg.Streams
	recs := make([]*catalog.Recording, cfg.N)
	for i := range recs {
		s, seq := i%streams, i/streams
		app, stream := cfg.Apps[s/cfg.Streams], StreamName(s%cfg.Streams)
		format := formats[seq%len(formats)]
		start := cfg.Start.Add(time.Duration(seq) * cfg.Interval)
		r := &catalog.Recording{
			FileID:      fmt.Sprintf("%s_push%04d_%04d_%s", stream, seq/10, seq, format),
			App:         app,
			StreamID:    stream,
			PushID:      fmt.Sprintf("push%04d", seq/10),
			Seq:         seq,
			Format:      format,
			StartTime:   start,
			EndTime:     start.Add(cfg.Interval),
			Duration:    cfg.Interval.Seconds(),
			Size:        int64(1_000_000 + i),
			StreamParam: cfg.PushQuery,
			StoredAt:    start.Add(cfg.Interval + time.Second),
			NodeID:      "node-a",
			Type:        catalog.TypeFragment,
		}
		stem := r.KeyStem("")
		if format == "hls" {
			r.Key = stem + "/index.m3u8"
			r.Objects = []string{stem + "/seg0.ts", stem + "/seg1.ts", r.Key}
		} else {
			r.Key = stem + "." + format
			r.Objects = []string{r.Key}
		}
		r.VideoURL = "http://127.0.0.1:8080/vod/" + r.Key
		r.CatalogKey = catalog.EntryKey(r)
		recs[i] = r
	}

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan *catalog.Recording)
	var wg sync.WaitGroup
	for range cfg.Concurrency {
		wg.Go(func() {
			for r := range next {
				b, err := json.MarshalIndent(r, "", "  ")
				if err == nil {
					_, err = st.Put(ctx, r.CatalogKey, bytes.NewReader(b), int64(len(b)), "application/json")
				}
				if err != nil {
					cancel(fmt.Errorf("catalogtest: fill %s: %w", r.CatalogKey, err))
					return
				}
			}
		})
	}
feed:
	for _, r := range recs {
		select {
		case next <- r:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return recs, nil
}
