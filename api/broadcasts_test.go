package api

import (
	"encoding/json"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/livetape/livetape/storage/catalog"
)

func TestBroadcastsAPI(t *testing.T) {
	c, _ := newCatalog(t)
	t0 := time.Unix(1_800_000_000, 0).UTC()
	for i, k := range [][2]string{{"live", "s"}, {"live", "s"}, {"live", "t"}, {"edu", "s"}} {
		b := &catalog.Broadcast{BroadcastID: k[0] + k[1] + string(rune('a'+i)), App: k[0], StreamID: k[1], State: catalog.BroadcastEnded,
			StartTime: t0.Add(time.Duration(i) * time.Hour), Pushes: []catalog.BroadcastPush{{PushID: "p", StartTime: t0}},
			Recordings: []string{"f"}, Rev: 1}
		if err := c.PutBroadcast(t.Context(), b); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(NewHandler(Config{Catalog: c, Key: "api-key"}))
	defer srv.Close()
	if code, _ := callAuth(t, "GET", srv.URL+"/api/v1/broadcasts", ""); code != 401 {
		t.Errorf("no key: %d, want 401", code)
	}
	if code, _ := callAuth(t, "GET", srv.URL+"/api/v1/broadcasts/livesa", "Bearer wrong"); code != 401 {
		t.Errorf("wrong key: %d, want 401", code)
	}
	var page struct {
		Broadcasts []catalog.Broadcast `json:"broadcasts"`
		Total      int                 `json:"total"`
	}
	code, body := callAuth(t, "GET", srv.URL+"/api/v1/broadcasts?stream_id=s&app=live&page_size=1&page=2", "Bearer api-key")
	if err := json.Unmarshal(body, &page); code != 200 || err != nil {
		t.Fatalf("list: %d %s", code, body)
	}
	if page.Total != 2 || len(page.Broadcasts) != 1 || page.Broadcasts[0].BroadcastID != "livesb" {
		t.Errorf("live/s page 2: %s", body)
	}
	code, body = callAuth(t, "GET", srv.URL+"/api/v1/broadcasts?stream_id=s", "Bearer api-key")
	if json.Unmarshal(body, &page); code != 200 || page.Total != 3 {
		t.Errorf("stream_id=s: %d %s, want 3 broadcasts", code, body)
	}
	var one catalog.Broadcast
	code, body = callAuth(t, "GET", srv.URL+"/api/v1/broadcasts/livetc", "Bearer api-key")
	if json.Unmarshal(body, &one); code != 200 || one.StreamID != "t" || len(one.Pushes) != 1 || one.State != "ended" {
		t.Errorf("get: %d %s", code, body)
	}
	if code, _ := callAuth(t, "GET", srv.URL+"/api/v1/broadcasts/nope", "Bearer api-key"); code != 404 {
		t.Errorf("unknown broadcast: %d, want 404", code)
	}
	if code, _ := callAuth(t, "GET", srv.URL+"/api/v1/broadcasts?page_size=100000", "Bearer api-key"); code != 400 {
		t.Errorf("page_size too big: %d, want 400", code)
	}
}
