package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/livetape/livetape/internal/redistest"
	"github.com/livetape/livetape/storage"
	"github.com/livetape/livetape/storage/catalog"
)

// storeEntries writes n catalog entries (and their media) into the local store of
// dataDir, through a catalog indexed in a Redis that is then thrown away: what a
// previous run left in the bucket.
func storeEntries(t *testing.T, dataDir string, n int) []string {
	t.Helper()
	store := storage.Local{Dir: filepath.Join(dataDir, "store")}
	m := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: m.Addr()})
	defer rdb.Close()
	c, err := catalog.New(catalog.Config{Store: store, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for i := 1; i <= n; i++ {
		r := &catalog.Recording{FileID: fmt.Sprintf("cam_p_%04d_flv", i), App: "live", StreamID: "cam", Seq: i,
			Format: "flv", StartTime: time.Unix(1_800_000_000+int64(i), 0).UTC()}
		r.Key = r.KeyStem("") + ".flv"
		r.Objects = []string{r.Key}
		if _, err := store.Put(context.Background(), r.Key, bytes.NewReader([]byte("media")), 5, ""); err != nil {
			t.Fatal(err)
		}
		if err := c.Put(context.Background(), r); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, r.FileID)
	}
	b := &catalog.Broadcast{BroadcastID: "cam_p", App: "live", StreamID: "cam", State: catalog.BroadcastEnded,
		StartTime: time.Unix(1_800_000_001, 0).UTC(), Pushes: []catalog.BroadcastPush{{PushID: "p"}}, Recordings: ids, Rev: 3}
	if err := c.PutBroadcast(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return ids
}

// `livetape catalog rebuild` makes the index of a Redis that has none (new, or
// restarted without persistence) from the storage, and says what it did.
func TestCatalogRebuildCommand(t *testing.T) {
	redisSrv := redistest.Start(t)
	dataDir := t.TempDir()
	ids := storeEntries(t, dataDir, 3)

	var stdout, stderr bytes.Buffer
	env := mapEnv(map[string]string{"LIVETAPE_DATA_DIR": dataDir, "LIVETAPE_REDIS_ADDR": redisSrv.Addr()})
	if err := runEnv(context.Background(), []string{"catalog", "rebuild"}, env, &stdout, &stderr); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "3 entries, 1 broadcasts") {
		t.Errorf("output %q, want the stats (3 entries, 1 broadcasts)", stdout.String())
	}
	rdb := redis.NewClient(&redis.Options{Addr: redisSrv.Addr()})
	defer rdb.Close()
	c, _ := catalog.New(catalog.Config{Store: storage.Local{Dir: filepath.Join(dataDir, "store")}, Redis: rdb})
	if built, err := c.Built(context.Background()); !built || err != nil {
		t.Fatalf("index not built: %v", err)
	}
	if r, err := c.Get(context.Background(), ids[1]); err != nil || r.Seq != 2 {
		t.Errorf("Get after the rebuild: %+v, %v", r, err)
	}
	if b, err := c.GetBroadcast(context.Background(), "cam_p"); err != nil || len(b.Recordings) != 3 || b.Rev != 3 {
		t.Errorf("GetBroadcast after the rebuild: %+v, %v", b, err)
	}

	err := runEnv(context.Background(), []string{"catalog", "rebuild"}, mapEnv(map[string]string{"LIVETAPE_DATA_DIR": dataDir}), &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "LIVETAPE_REDIS_ADDR") {
		t.Errorf("rebuild without a shared Redis: %v", err)
	}
	if err := runEnv(context.Background(), []string{"catalog"}, env, &stdout, &stderr); err == nil {
		t.Error("'livetape catalog' without rebuild accepted")
	}
}

// With the embedded queue, serve rebuilds the index from its local store at every
// start: the recordings of earlier runs are listed and found by id.
func TestServeEmbeddedRebuildsIndex(t *testing.T) {
	rc := &receiver{t: t, hits: map[string]int{}}
	cfg := pipelineConfig(t, rc)
	ids := storeEntries(t, cfg.DataDir, 2)
	r := startServe(t, cfg)

	var list struct {
		Total      int                  `json:"total"`
		Recordings []*catalog.Recording `json:"recordings"`
	}
	if err := json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings?stream_id=cam", ""), &list); err != nil || list.Total != 2 {
		t.Fatalf("list: %d, %v", list.Total, err)
	}
	var got catalog.Recording
	if err := json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/recordings/"+ids[0], ""), &got); err != nil || got.FileID != ids[0] || got.Type != "fragment" {
		t.Errorf("get: %+v, %v", got, err)
	}
	var bl struct {
		Total      int                  `json:"total"`
		Broadcasts []*catalog.Broadcast `json:"broadcasts"`
	}
	if err := json.Unmarshal(httpBody(t, r.httpURL+"/api/v1/broadcasts?stream_id=cam", ""), &bl); err != nil || bl.Total != 1 || bl.Broadcasts[0].BroadcastID != "cam_p" {
		t.Errorf("broadcasts of earlier runs: %+v, %v", bl, err)
	}
	if !strings.Contains(r.logs.String(), "catalog index rebuilt") {
		t.Error("serve did not log the rebuild of its index")
	}
}
