package catalog_test

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// secretQuery is a push query with its credentials, as the recorder hands it over.
const secretQuery = "txSecret=5d41402abc4b2a76b9719d911017c592&txTime=7FFFFFFF&record=mp4%7Chls&record_interval=600"

var base = time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)

// sample makes entries over two apps, two streams each, every format and type, ten
// minutes apart per stream, with a push credential in stream_param.
func sample(n int) []*catalog.Recording {
	apps := []string{"live", "edu"}
	streams := []string{"cam1", "cam 2/b"} // a space and a slash must not confuse the index
	formats := []string{"mp4", "flv", "hls"}
	types := []string{"", catalog.TypeFragment, catalog.TypeBroadcast, catalog.TypeRendition, catalog.TypeClip}
	var out []*catalog.Recording
	for i := range n {
		app, stream := apps[i%2], streams[(i/2)%2]
		seq := i / 4
		format := formats[i%3]
		start := base.Add(time.Duration(seq)*10*time.Minute + time.Duration(i%4)*time.Second)
		r := &catalog.Recording{
			FileID: fmt.Sprintf("f%03d_%s", i, format), App: app, StreamID: stream, PushID: "p1", Seq: seq,
			Format: format, StartTime: start, EndTime: start.Add(10 * time.Minute), Duration: 600,
			StreamParam: secretQuery, StoredAt: start.Add(11 * time.Minute), NodeID: "node-a", Type: types[i%len(types)],
		}
		stem := r.KeyStem("")
		if format == "hls" {
			r.Key = stem + "/index.m3u8"
			r.Objects = []string{stem + "/seg0.ts", r.Key}
		} else {
			r.Key = stem + "." + format
			r.Objects = []string{r.Key}
		}
		out = append(out, r)
	}
	return out
}

// record writes the media of each entry, then puts the entry.
func (e *env) record(t testing.TB, recs ...*catalog.Recording) {
	t.Helper()
	for _, r := range recs {
		for _, k := range r.Objects {
			body := []byte("media of " + k)
			if _, err := e.store.Put(t.Context(), k, bytes.NewReader(body), int64(len(body)), ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := e.cat.Put(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
}

func asJSON(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// expected filters and orders entries as List must, written apart from the package.
func expected(all []*catalog.Recording, q catalog.Query) []*catalog.Recording {
	var out []*catalog.Recording
	for _, r := range all {
		typ := cmp.Or(r.Type, catalog.TypeFragment)
		if (q.App == "" || q.App == r.App) && (q.StreamID == "" || q.StreamID == r.StreamID) &&
			(q.Format == "" || q.Format == r.Format) && (q.Type == "" || q.Type == typ) &&
			(q.From.IsZero() || !r.StartTime.Before(q.From)) && (q.To.IsZero() || !r.StartTime.After(q.To)) {
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(a, b *catalog.Recording) int {
		return cmp.Or(a.StartTime.Compare(b.StartTime), strings.Compare(a.FileID, b.FileID))
	})
	return out
}

func fileIDs(recs []*catalog.Recording) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.FileID)
	}
	return ids
}

// checkLists runs a set of queries and compares every page with expected.
func checkLists(t *testing.T, cat *catalog.Catalog, all []*catalog.Recording) {
	t.Helper()
	mid := base.Add(30 * time.Minute)
	queries := []catalog.Query{
		{},
		{App: "live"},
		{App: "edu", StreamID: "cam 2/b"},
		{StreamID: "cam1"},
		{Format: "hls"},
		{App: "live", Format: "mp4", Type: catalog.TypeFragment},
		{Type: catalog.TypeClip},
		{App: "live", StreamID: "cam1", From: mid},
		{App: "live", StreamID: "cam1", To: mid},
		{App: "live", StreamID: "cam1", From: base.Add(20 * time.Minute), To: base.Add(50 * time.Minute)},
		{From: base.Add(10 * time.Minute), To: base.Add(10*time.Minute + 2*time.Second)},
		{App: "nope"},
	}
	for _, q := range queries {
		want := expected(all, q)
		for _, size := range []int{1, 3, 1000} {
			pages := len(want)/size + 2 // one past the end
			var got []*catalog.Recording
			for page := 1; page <= pages; page++ {
				q.Page, q.PageSize = page, size
				res, err := cat.List(t.Context(), q)
				if err != nil {
					t.Fatalf("%+v: %v", q, err)
				}
				if res.Total != len(want) {
					t.Errorf("%+v: total %d, want %d", q, res.Total, len(want))
				}
				if len(res.Recordings) > size {
					t.Errorf("%+v: %d on a page", q, len(res.Recordings))
				}
				got = append(got, res.Recordings...)
			}
			if g, w := fileIDs(got), fileIDs(want); !slices.Equal(g, w) {
				t.Errorf("%+v page size %d:\n got %v\nwant %v", q, size, g, w)
				continue
			}
			for i := range got {
				if g, w := asJSON(t, got[i]), asJSON(t, want[i]); g != w {
					t.Errorf("%s:\n got %s\nwant %s", want[i].FileID, g, w)
				}
			}
		}
	}
}

func TestPutGetListDelete(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		if rebuilt, err := e.cat.EnsureIndex(t.Context()); err != nil || !rebuilt {
			t.Fatalf("EnsureIndex on a new Redis: %v, %v; want a rebuild", rebuilt, err)
		}
		all := sample(40)
		e.record(t, all...)
		for _, r := range all {
			if r.CatalogKey != r.KeyStem("")+".json" || r.Type == "" || strings.Contains(r.StreamParam, "tx") {
				t.Fatalf("Put did not normalize %+v", r)
			}
		}
		for _, r := range all {
			got, err := e.cat.Get(t.Context(), r.FileID)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := asJSON(t, got), asJSON(t, r); g != w {
				t.Errorf("Get %s:\n got %s\nwant %s", r.FileID, g, w)
			}
		}
		checkLists(t, e.cat, all)

		if _, err := e.cat.Get(t.Context(), "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get of an unknown id: %v, want ErrNotFound", err)
		}
		// Put again with another start and format: the entry leaves its old sets.
		oldKey := all[0].CatalogKey
		moved := *all[0]
		moved.StartTime, moved.Format, moved.CatalogKey = base.Add(-time.Hour), "flv", ""
		moved.Key = moved.KeyStem("") + ".flv"
		moved.Objects = []string{moved.Key}
		e.record(t, &moved)
		all[0] = &moved
		if err := e.store.Delete(t.Context(), oldKey); err != nil {
			t.Fatal(err)
		}
		checkLists(t, e.cat, all)

		victim := all[5]
		if err := e.cat.Delete(t.Context(), victim.FileID); err != nil {
			t.Fatal(err)
		}
		for _, k := range append(slices.Clone(victim.Objects), victim.CatalogKey) {
			if _, err := e.store.Stat(t.Context(), k); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("after Delete, %s: %v", k, err)
			}
		}
		if _, err := e.cat.Get(t.Context(), victim.FileID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get after Delete: %v", err)
		}
		if err := e.cat.Delete(t.Context(), victim.FileID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("second Delete: %v", err)
		}
		all = slices.Delete(all, 5, 6)
		checkLists(t, e.cat, all)
	})
}

func TestRebuildAfterFlushAll(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		all := sample(30)
		e.record(t, all...)
		if _, err := e.cat.Rebuild(t.Context()); err != nil {
			t.Fatal(err)
		}
		// Something in the bucket that is not an entry, and an entry that only the
		// index still has (its JSON removed behind the catalog's back).
		junk := []byte(`{"hello": "world"}`)
		if _, err := e.store.Put(t.Context(), "other/config.json", bytes.NewReader(junk), int64(len(junk)), ""); err != nil {
			t.Fatal(err)
		}

		e.flushAll(t)
		if built, err := e.cat.Built(t.Context()); err != nil || built {
			t.Fatalf("Built after FLUSHALL: %v %v", built, err)
		}
		// Not built: answers come from the store, and are the same.
		got, err := e.cat.Get(t.Context(), all[7].FileID)
		if err != nil || asJSON(t, got) != asJSON(t, all[7]) {
			t.Fatalf("Get from the store: %v\n got %s\nwant %s", err, asJSON(t, got), asJSON(t, all[7]))
		}
		if _, err := e.cat.Get(t.Context(), "nope"); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get of an unknown id from the store: %v", err)
		}
		checkLists(t, e.cat, all)

		st, err := e.cat.Rebuild(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != len(all) || st.Skipped != 1 || st.Removed != 0 {
			t.Errorf("rebuild: %+v, want %d entries, 1 skipped", st, len(all))
		}
		if built, _ := e.cat.Built(t.Context()); !built {
			t.Fatal("not built after Rebuild")
		}
		checkLists(t, e.cat, all)

		// An index entry whose JSON is gone goes at the next rebuild.
		gone := all[3]
		if err := e.store.Delete(t.Context(), gone.CatalogKey); err != nil {
			t.Fatal(err)
		}
		st, err = e.cat.Rebuild(t.Context())
		if err != nil || st.Removed != 1 || st.Entries != len(all)-1 {
			t.Fatalf("rebuild after removing %s: %+v, %v", gone.CatalogKey, st, err)
		}
		if _, err := e.cat.Get(t.Context(), gone.FileID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("Get of an entry removed from the store: %v", err)
		}
		checkLists(t, e.cat, slices.Delete(all, 3, 4))
	})
}

func TestEnsureIndexAfterRedisRestart(t *testing.T) {
	for _, b := range backends[:1] {
		t.Run(b.name, func(t *testing.T) {
			rdb, srv := b.redis(t)
			e := newEnv(t, rdb, b.store(t))
			all := sample(20)
			e.record(t, all...)
			if rebuilt, err := e.cat.EnsureIndex(t.Context()); err != nil || !rebuilt {
				t.Fatalf("first EnsureIndex: %v %v", rebuilt, err)
			}
			if rebuilt, err := e.cat.EnsureIndex(t.Context()); err != nil || rebuilt {
				t.Fatalf("EnsureIndex on a built index: %v %v, want no rebuild", rebuilt, err)
			}
			srv.Restart() // no persistence: everything is gone
			if built, err := e.cat.Built(t.Context()); err != nil || built {
				t.Fatalf("Built after a restart: %v %v", built, err)
			}
			if rebuilt, err := e.cat.EnsureIndex(t.Context()); err != nil || !rebuilt {
				t.Fatalf("EnsureIndex after a restart: %v %v", rebuilt, err)
			}
			checkLists(t, e.cat, all)
		})
	}
}

// TestRebuildKeepsDeletes: a rebuild that read an entry before it was deleted does not
// bring it back; a Put of the same id later does.
func TestRebuildKeepsDeletes(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		all := sample(5)
		e.record(t, all...)
		victim := all[2]
		b, err := json.Marshal(victim)
		if err != nil {
			t.Fatal(err)
		}
		if err := e.cat.Delete(t.Context(), victim.FileID); err != nil {
			t.Fatal(err)
		}
		// What a rebuild listing the store just before the Delete would have read.
		if _, err := e.store.Put(t.Context(), victim.CatalogKey, bytes.NewReader(b), int64(len(b)), ""); err != nil {
			t.Fatal(err)
		}
		st, err := e.cat.Rebuild(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if st.Entries != len(all)-1 {
			t.Errorf("rebuild indexed %d, want %d (the deleted one barred)", st.Entries, len(all)-1)
		}
		if _, err := e.cat.Get(t.Context(), victim.FileID); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("deleted entry came back: %v", err)
		}
		e.record(t, victim)
		if _, err := e.cat.Get(t.Context(), victim.FileID); err != nil {
			t.Errorf("Put after Delete: %v", err)
		}
	})
}

// lossyStore empties the Redis while a rebuild lists the store: a Redis restarted
// without persistence in the middle of a rebuild.
type lossyStore struct {
	storage.Store
	lose func()
}

func (s lossyStore) List(ctx context.Context, prefix string) ([]storage.Object, error) {
	objs, err := s.Store.List(ctx, prefix)
	s.lose()
	return objs, err
}

func TestRebuildNotMarkedWhenRedisLostMeanwhile(t *testing.T) {
	for _, b := range backends[:2] {
		t.Run(b.name, func(t *testing.T) {
			rdb, _ := b.redis(t)
			st := b.store(t)
			e := newEnv(t, rdb, st)
			e.record(t, sample(5)...)
			lossy := newEnv(t, rdb, lossyStore{st, func() { e.flushAll(t) }})
			if _, err := lossy.cat.Rebuild(t.Context()); err == nil {
				t.Fatal("Rebuild succeeded though Redis lost its data during it")
			}
			if built, err := e.cat.Built(t.Context()); err != nil || built {
				t.Errorf("index marked built after a lost rebuild: %v %v", built, err)
			}
		})
	}
}

func TestOneRebuildAtATime(t *testing.T) {
	for _, b := range backends[:2] {
		t.Run(b.name, func(t *testing.T) {
			rdb, _ := b.redis(t)
			e := newEnv(t, rdb, b.store(t))
			// Another node holds the lock.
			if err := rdb.Set(t.Context(), catalog.DefaultPrefix+"lock", "other-node", time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			if _, err := e.cat.Rebuild(t.Context()); !errors.Is(err, catalog.ErrRebuildRunning) {
				t.Errorf("Rebuild under another's lock: %v", err)
			}
			if rebuilt, err := e.cat.EnsureIndex(t.Context()); err != nil || rebuilt {
				t.Errorf("EnsureIndex under another's lock: %v %v, want (false, nil)", rebuilt, err)
			}
			if v := rdb.Get(t.Context(), catalog.DefaultPrefix+"lock").Val(); v != "other-node" {
				t.Errorf("the other node's lock became %q", v)
			}
		})
	}
}

// TestCredentialsNeverServed: stream_param loses txSecret and txTime on the way in,
// and entries stored with them (by an older livetape) lose them on the way out, from
// the index and from the store.
func TestCredentialsNeverServed(t *testing.T) {
	forEachBackend(t, func(t *testing.T, e *env) {
		in := sample(1)[0]
		e.record(t, in)
		rc, _, err := e.store.Open(t.Context(), in.CatalogKey, 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		stored, _ := io.ReadAll(rc)
		rc.Close()
		if bytes.Contains(bytes.ToLower(stored), []byte("txsecret")) || bytes.Contains(bytes.ToLower(stored), []byte("txtime")) {
			t.Errorf("stored JSON holds the credentials: %s", stored)
		}

		// An old entry written with its credentials.
		old := sample(2)[1]
		old.StreamParam = "TXSECRET=abc&record=flv&txTime=7FFFFFFF"
		old.CatalogKey = old.KeyStem("") + ".json"
		b, _ := json.Marshal(old)
		if _, err := e.store.Put(t.Context(), old.CatalogKey, bytes.NewReader(b), int64(len(b)), ""); err != nil {
			t.Fatal(err)
		}
		check := func(how string) {
			t.Helper()
			got, err := e.cat.Get(t.Context(), old.FileID)
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			res, err := e.cat.List(t.Context(), catalog.Query{})
			if err != nil {
				t.Fatalf("%s: %v", how, err)
			}
			for _, r := range append(res.Recordings, got) {
				if strings.Contains(strings.ToLower(r.StreamParam), "tx") {
					t.Errorf("%s: %s served with %q", how, r.FileID, r.StreamParam)
				}
			}
			if got.StreamParam != "record=flv" {
				t.Errorf("%s: stream_param %q, want record=flv", how, got.StreamParam)
			}
		}
		check("from the store (index not built)")
		if _, err := e.cat.Rebuild(t.Context()); err != nil {
			t.Fatal(err)
		}
		check("from the index")
		// Written into the index by hand (by an older livetape, or by hand): still stripped.
		raw := strings.Replace(string(b), `"stream_param":"`, `"stream_param":"txSecret=zzz&`, 1)
		if err := e.rdb.HSet(t.Context(), catalog.DefaultPrefix+"entries", old.FileID, raw).Err(); err != nil {
			t.Fatal(err)
		}
		check("from an index entry holding them")
	})
}

func TestPutRefusesBadEntries(t *testing.T) {
	rdb, _ := miniRedis(t)
	e := newEnv(t, rdb, localStore(t))
	for name, mutate := range map[string]func(r *catalog.Recording){
		"no file id":   func(r *catalog.Recording) { r.FileID = "" },
		"no app":       func(r *catalog.Recording) { r.App = "" },
		"no format":    func(r *catalog.Recording) { r.Format = "" },
		"NUL stream":   func(r *catalog.Recording) { r.StreamID = "a\x00b" },
		"long stream":  func(r *catalog.Recording) { r.StreamID = strings.Repeat("s", 600) },
		"unknown type": func(r *catalog.Recording) { r.Type = "movie" },
	} {
		r := sample(1)[0]
		mutate(r)
		if err := e.cat.Put(t.Context(), r); err == nil {
			t.Errorf("%s: Put succeeded", name)
		}
	}
	if objs, _ := e.store.List(t.Context(), ""); len(objs) != 0 {
		t.Errorf("refused entries left objects: %v", objs)
	}
	for _, q := range []catalog.Query{{Page: -1}, {PageSize: catalog.MaxPageSize + 1}, {StreamID: strings.Repeat("s", 600)}} {
		if _, err := e.cat.List(t.Context(), q); err == nil {
			t.Errorf("List %+v succeeded", q)
		}
	}
}

func TestPrefixesShareARedis(t *testing.T) {
	rdb, _ := miniRedis(t)
	st := localStore(t)
	a, err := catalog.New(catalog.Config{Store: st, Redis: rdb, Prefix: "a:"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := catalog.New(catalog.Config{Store: localStore(t), Redis: rdb, Prefix: "b:"})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*catalog.Catalog{a, b} {
		if _, err := c.Rebuild(t.Context()); err != nil {
			t.Fatal(err)
		}
	}
	r := sample(1)[0]
	if err := a.Put(t.Context(), r); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(t.Context(), r.FileID); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("prefix b sees prefix a's entry: %v", err)
	}
	if res, _ := b.List(t.Context(), catalog.Query{}); res.Total != 0 {
		t.Errorf("prefix b lists %d entries", res.Total)
	}
}

func TestPublicStreamParam(t *testing.T) {
	for in, want := range map[string]string{
		"":                             "",
		"record=mp4":                   "record=mp4",
		"txSecret=abc&txTime=5867D600": "",
		"txSecret=abc&record=mp4%7Chls&txTime=5867D600&record_interval=600": "record=mp4%7Chls&record_interval=600",
		"?txSecret=abc&a=1":         "?a=1",
		"TXSECRET=abc&TxTime=1&a=1": "a=1",
		"tx%53ecret=abc&a=1":        "a=1",
		"txSecret&a=1":              "a=1",
		"a=1&&b=txSecret":           "a=1&&b=txSecret",
		"txSecretX=1":               "txSecretX=1",
	} {
		if got := catalog.PublicStreamParam(in); got != want {
			t.Errorf("PublicStreamParam(%q) = %q, want %q", in, got, want)
		}
	}
}
