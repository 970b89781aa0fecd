package catalog_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
	"github.com/livetape/livetape/storage/catalog/catalogtest"
)

// Environment of BenchmarkCatalogLookup.
const (
	// envBenchN is how many entries are stored (default benchDefaultN, so that a CI run
	// is quick); the figure is for 100000.
	envBenchN = "LIVETAPE_BENCH_CATALOG_N"
	// envBenchS3 = 1 stores them in S3 (versitygw) instead of a local directory.
	envBenchS3 = "LIVETAPE_BENCH_CATALOG_S3"
)

const (
	benchDefaultN   = 2000
	benchStreams    = 100
	benchInterval   = 30 * time.Minute
	benchRangeWidth = 24 * time.Hour // a day of one stream: 48 fragments
	// indexLookupsPerOp is how many lookups one iteration of an index benchmark makes,
	// so that one -benchtime Nx gives the index many samples and the slow scans few.
	indexLookupsPerOp = 50
)

// benchStart is catalogtest.Fill's default start.
var benchStart = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// BenchmarkCatalogLookup measures the two lookups the API makes — a recording by file
// id, and one stream's recordings in a time range — with N recordings stored, through
// the index (on redis-server and on miniredis) and the old way (list the bucket and
// read every JSON, as api.recordings does before the catalog), and reports p50/p95 of
// single lookups. An index iteration makes indexLookupsPerOp lookups, a scan iteration
// one. The Rebuild of each index from the store, timed once, is reported as rebuild-s.
//
//	LIVETAPE_BENCH_CATALOG_N=100000 go test -run '^$' -bench CatalogLookup -benchtime 20x ./storage/catalog/
func BenchmarkCatalogLookup(b *testing.B) {
	n := benchDefaultN
	if s := os.Getenv(envBenchN); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil || n < benchStreams {
			b.Fatalf("%s=%q: want a number >= %d", envBenchN, s, benchStreams)
		}
	}
	var st storage.Store = storage.Local{Dir: b.TempDir()}
	if os.Getenv(envBenchS3) == "1" {
		st = s3Store(b)
	}
	start := time.Now()
	recs, err := catalogtest.Fill(b.Context(), st, catalogtest.FillConfig{N: n, Streams: benchStreams, Interval: benchInterval})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("filled %d entries in %v", n, time.Since(start).Round(time.Millisecond))

	realRdb, _ := realRedis(b)
	miniRdb, _ := miniRedis(b)
	type index struct {
		name    string
		rdb     *redis.Client
		cat     *catalog.Catalog
		rebuilt time.Duration
		mb      float64
	}
	indexes := []*index{{name: "redis", rdb: realRdb}, {name: "miniredis", rdb: miniRdb}}
	for _, ix := range indexes {
		e := newEnv(b, ix.rdb, st)
		ix.cat = e.cat
		t0 := time.Now()
		stats, err := e.cat.Rebuild(b.Context())
		if err != nil || stats.Entries != n {
			b.Fatalf("rebuild on %s: %+v, %v", ix.name, stats, err)
		}
		ix.rebuilt = time.Since(t0)
		if ix.name == "redis" {
			ix.mb = usedMemoryMB(b, ix.rdb)
		}
		b.Logf("rebuild of %d entries on %s: %v", n, ix.name, ix.rebuilt.Round(time.Millisecond))
	}

	rng := rand.New(rand.NewPCG(1, 2))
	randomGet := func() string { return recs[rng.IntN(len(recs))].FileID }
	perStream := n / benchStreams
	randomRange := func() catalog.Query {
		r := recs[rng.IntN(len(recs))]
		from := benchStart.Add(time.Duration(rng.IntN(max(1, perStream-48))) * benchInterval)
		return catalog.Query{App: r.App, StreamID: r.StreamID, From: from, To: from.Add(benchRangeWidth - time.Second), PageSize: 100}
	}

	for _, ix := range indexes {
		b.Run("index/"+ix.name+"/get", func(b *testing.B) {
			lat := latencies{}
			for b.Loop() {
				for range indexLookupsPerOp {
					id := randomGet()
					t0 := time.Now()
					r, err := ix.cat.Get(b.Context(), id)
					lat.add(time.Since(t0))
					if err != nil || r.FileID != id {
						b.Fatalf("Get %s: %v", id, err)
					}
				}
			}
			lat.report(b)
			// The rebuild, measured once before the lookups, is reported here.
			b.ReportMetric(ix.rebuilt.Seconds(), "rebuild-s")
			if ix.mb > 0 {
				b.ReportMetric(ix.mb, "redis-MB")
			}
		})
		b.Run("index/"+ix.name+"/list-stream-range", func(b *testing.B) {
			lat := latencies{}
			for b.Loop() {
				for range indexLookupsPerOp {
					q := randomRange()
					t0 := time.Now()
					res, err := ix.cat.List(b.Context(), q)
					lat.add(time.Since(t0))
					if err != nil || len(res.Recordings) == 0 {
						b.Fatalf("List %+v: %v, %d found", q, err, len(res.Recordings))
					}
				}
			}
			lat.report(b)
		})
	}

	b.Run("scan/get", func(b *testing.B) {
		lat := latencies{}
		for b.Loop() {
			id := randomGet()
			t0 := time.Now()
			r, err := oldFind(b.Context(), st, id)
			lat.add(time.Since(t0))
			if err != nil || r.FileID != id {
				b.Fatalf("find %s: %v", id, err)
			}
		}
		lat.report(b)
	})
	b.Run("scan/list-stream-range", func(b *testing.B) {
		lat := latencies{}
		for b.Loop() {
			q := randomRange()
			t0 := time.Now()
			got, err := oldList(b.Context(), st, q)
			lat.add(time.Since(t0))
			if err != nil || len(got) == 0 {
				b.Fatalf("list %+v: %v, %d found", q, err, len(got))
			}
		}
		lat.report(b)
	})
}

// oldRecordings is api.recordings before the catalog: list the prefix, read every JSON
// one after the other.
func oldRecordings(ctx context.Context, st storage.Store, prefix string) ([]*catalog.Recording, error) {
	objs, err := st.List(ctx, prefix)
	if err != nil {
		return nil, err
	}
	var out []*catalog.Recording
	for _, o := range objs {
		if !strings.HasSuffix(o.Key, ".json") {
			continue
		}
		rec, err := loadRecording(ctx, st, o.Key)
		if err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				continue
			}
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// loadRecording is jobs.LoadRecording.
func loadRecording(ctx context.Context, st storage.Store, key string) (*catalog.Recording, error) {
	rc, _, err := st.Open(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var r catalog.Recording
	if err := jsonDecode(rc, &r); err != nil {
		return nil, err
	}
	return &r, nil
}

// oldFind is api.find before the catalog: every entry of the bucket.
func oldFind(ctx context.Context, st storage.Store, fileID string) (*catalog.Recording, error) {
	all, err := oldRecordings(ctx, st, "")
	if err != nil {
		return nil, err
	}
	for _, r := range all {
		if r.FileID == fileID {
			return r, nil
		}
	}
	return nil, storage.ErrNotFound
}

// oldList is api.listRecordings before the catalog, for app and stream id given: the
// stream's folder (default key template), filtered and sorted.
func oldList(ctx context.Context, st storage.Store, q catalog.Query) ([]*catalog.Recording, error) {
	all, err := oldRecordings(ctx, st, q.App+"/"+q.StreamID+"/")
	if err != nil {
		return nil, err
	}
	var out []*catalog.Recording
	for _, r := range all {
		if r.StreamID == q.StreamID && !r.StartTime.Before(q.From) && !r.StartTime.After(q.To) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y *catalog.Recording) int { return x.StartTime.Compare(y.StartTime) })
	return out[:min(len(out), q.PageSize)], nil
}

// latencies collects the duration of each lookup for percentiles.
type latencies []time.Duration

func (l *latencies) add(d time.Duration) { *l = append(*l, d) }

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	pct := func(p int) float64 {
		i := (len(l)*p + 99) / 100 // nearest rank
		return float64(l[max(0, i-1)]) / float64(time.Millisecond)
	}
	b.ReportMetric(pct(50), "p50-ms")
	b.ReportMetric(pct(95), "p95-ms")
}

func usedMemoryMB(b *testing.B, rdb *redis.Client) float64 {
	info, err := rdb.Info(b.Context(), "memory").Result()
	if err != nil {
		b.Fatal(err)
	}
	for line := range strings.SplitSeq(info, "\r\n") {
		if v, ok := strings.CutPrefix(line, "used_memory:"); ok {
			n, _ := strconv.ParseFloat(v, 64)
			return n / (1 << 20)
		}
	}
	return 0
}

func jsonDecode(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
