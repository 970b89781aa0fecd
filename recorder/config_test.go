package recorder

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/livetape/livetape/stream"
)

// A push's reconnect window and stitch come from its URL, else its app's config, else
// the global config; 0s is a window of its own (off), not "unset".
func TestBroadcastPlan(t *testing.T) {
	zero, tenS, yes, no := time.Duration(0), 10*time.Second, true, false
	cfg := DefaultConfig()
	cfg.Stitch = true
	cfg.Apps = map[string]AppConfig{
		"off":  {ReconnectWindow: &zero, Stitch: &no},
		"ten":  {ReconnectWindow: &tenS},
		"sewn": {Stitch: &yes},
	}
	tests := []struct {
		app, query string
		window     time.Duration
		stitch     bool
	}{
		{"live", "", 60 * time.Second, true},
		{"off", "", 0, false},
		{"ten", "", 10 * time.Second, true},
		{"off", "record_reconnect_window=5&record_stitch=1", 5 * time.Second, true},
		{"live", "record_reconnect_window=0&record_stitch=0", 0, false},
	}
	for _, tt := range tests {
		q, _ := url.ParseQuery(tt.query)
		p := &stream.PushParams{App: tt.app, StreamID: "s", Query: q}
		if q.Has("record_reconnect_window") {
			p.ReconnectWindow = int(tt.window / time.Second)
		}
		p.Stitch = q.Get("record_stitch") == "1"
		w, s := cfg.Broadcast(p)
		if w != tt.window || s != tt.stitch {
			t.Errorf("%s?%s: window %v stitch %v, want %v %v", tt.app, tt.query, w, s, tt.window, tt.stitch)
		}
	}
}

func TestValidateReconnectWindow(t *testing.T) {
	bad := 2 * time.Hour
	cfg := DefaultConfig()
	cfg.ReconnectWindow = -time.Second
	cfg.Apps = map[string]AppConfig{"x": {ReconnectWindow: &bad}}
	err := cfg.Validate()
	if err == nil || !strings.Contains(err.Error(), "record.reconnect_window") || !strings.Contains(err.Error(), "record.apps.x.reconnect_window") {
		t.Fatalf("Validate = %v, want both windows refused", err)
	}
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
}
