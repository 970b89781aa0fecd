package live

import (
	"net/url"
	"slices"
	"strings"
	"testing"
)

func TestParsePush(t *testing.T) {
	tests := []struct {
		name, app, id, query string
		wantErr              string
		record               []string
		interval             int
		audio                bool
		window               int
		stitch               bool
	}{
		{name: "plain", app: "live", id: "demo", query: "", interval: 1800},
		{name: "record", app: "live", id: "demo", query: "record=mp4|hls&record_interval=5", record: []string{"mp4", "hls"}, interval: 5},
		{name: "encoded pipe", app: "live", id: "a.b-c_d", query: "record=flv%7Cmp4", record: []string{"flv", "mp4"}, interval: 1800},
		{name: "audio", app: "live", id: "x", query: "record=mp4&record_type=audio", record: []string{"mp4"}, interval: 1800, audio: true},
		{name: "dotdot", app: "live", id: "..", wantErr: "stream id"},
		{name: "dot", app: "live", id: ".", wantErr: "stream id"},
		{name: "slash", app: "live", id: "a/b", wantErr: "stream id"},
		{name: "empty", app: "live", id: "", wantErr: "stream id"},
		{name: "too long", app: "live", id: strings.Repeat("a", 129), wantErr: "stream id"},
		{name: "bad app", app: "../x", id: "demo", wantErr: "bad app"},
		{name: "bad format", app: "live", id: "d", query: "record=mkv", wantErr: `record format "mkv"`},
		{name: "empty format", app: "live", id: "d", query: "record=mp4|", wantErr: `record format ""`},
		{name: "twice", app: "live", id: "d", query: "record=mp4|mp4", wantErr: "twice"},
		{name: "interval zero", app: "live", id: "d", query: "record_interval=0", wantErr: "record_interval"},
		{name: "interval big", app: "live", id: "d", query: "record_interval=7201", wantErr: "record_interval"},
		{name: "interval text", app: "live", id: "d", query: "record_interval=1h", wantErr: "record_interval"},
		{name: "record type", app: "live", id: "d", query: "record_type=video", wantErr: "record_type"},
		{name: "window", app: "live", id: "d", query: "record_reconnect_window=5&record_stitch=1", interval: 1800, window: 5, stitch: true},
		{name: "window off", app: "live", id: "d", query: "record_reconnect_window=0&record_stitch=0", interval: 1800},
		{name: "window max", app: "live", id: "d", query: "record_reconnect_window=3600", interval: 1800, window: 3600},
		{name: "window big", app: "live", id: "d", query: "record_reconnect_window=3601", wantErr: "record_reconnect_window"},
		{name: "window negative", app: "live", id: "d", query: "record_reconnect_window=-1", wantErr: "record_reconnect_window"},
		{name: "window text", app: "live", id: "d", query: "record_reconnect_window=1m", wantErr: "record_reconnect_window"},
		{name: "window empty", app: "live", id: "d", query: "record_reconnect_window=", wantErr: "record_reconnect_window"},
		{name: "window huge", app: "live", id: "d", query: "record_reconnect_window=" + strings.Repeat("9", 400), wantErr: "record_reconnect_window"},
		{name: "stitch yes", app: "live", id: "d", query: "record_stitch=yes", wantErr: "record_stitch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			p, err := ParsePush(tt.app, tt.id, q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to mention %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(p.Record, tt.record) || p.RecordInterval != tt.interval || p.AudioOnly != tt.audio ||
				p.ReconnectWindow != tt.window || p.Stitch != tt.stitch {
				t.Errorf("got record=%v interval=%d audio=%v window=%d stitch=%v", p.Record, p.RecordInterval, p.AudioOnly,
					p.ReconnectWindow, p.Stitch)
			}
		})
	}
}

// stream_param is the push query without the push credentials; every other parameter,
// custom ones included, is kept.
func TestStreamParam(t *testing.T) {
	for _, tc := range []struct{ query, want string }{
		{"txSecret=abc&txTime=5867D600&record=mp4&foo=bar", "foo=bar&record=mp4"},
		{"txSecret=abc&txTime=5867D600", ""},
		{"record=mp4%7Cflv&note=a+b", "note=a+b&record=mp4%7Cflv"},
		{"TXSECRET=x", "TXSECRET=x"}, // not a credential: sign checks txSecret exactly
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		p, err := ParsePush("live", "demo", q)
		if err != nil {
			t.Fatal(err)
		}
		if got := p.StreamParam(); got != tc.want {
			t.Errorf("%q: StreamParam() = %q, want %q", tc.query, got, tc.want)
		}
		if !q.Has("txSecret") == strings.Contains(tc.query, "txSecret=") {
			t.Errorf("%q: StreamParam changed the push's own query", tc.query)
		}
	}
}

// transcode= and abr= are checked at publish against the known template names.
func TestCheckTranscodeParams(t *testing.T) {
	known := []string{"sd", "hd", "uhd", "phone"}
	for _, tc := range []struct {
		query string
		ok    bool
	}{
		{"record=mp4", true},
		{"transcode=sd", true},
		{"transcode=sd%7Chd&abr=1", true},
		{"transcode=phone", true},
		{"abr=1", true},
		{"abr=0", true},
		{"transcode=4k", false},
		{"transcode=", false},
		{"transcode=sd%7C", false},
		{"abr=yes", false},
		{"transcode=sd|sd|sd|sd|sd|sd|sd|sd|sd", false},
	} {
		q, err := url.ParseQuery(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		err = CheckTranscodeParams(q, known)
		if (err == nil) != tc.ok {
			t.Errorf("%q: %v, want ok=%v", tc.query, err, tc.ok)
		}
	}
	q, _ := url.ParseQuery("transcode=phone")
	if err := CheckTranscodeParams(q, nil); err == nil || !strings.Contains(err.Error(), "sd, hd, uhd") {
		t.Errorf("phone against the defaults: %v, want refused naming the defaults", err)
	}
}
