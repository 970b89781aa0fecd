package jobs

import (
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func signedRequest(t *testing.T, key string, ev Event, now time.Time) ([]byte, http.Header) {
	t.Helper()
	body, sig, err := signEvent(key, ev, now)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	h.Set(HeaderSignature, sig)
	h.Set(HeaderEventID, ev.EventID)
	return body, h
}

func TestVerifyCallback(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	ev := recordingEvent("f1")
	body, h := signedRequest(t, "k", ev, now)

	cases := []struct {
		name   string
		key    string
		body   []byte
		header func(http.Header)
		now    time.Time
		want   error // nil, a sentinel, or errAny
	}{
		{name: "valid", key: "k", body: body, now: now},
		{name: "valid until t", key: "k", body: body, now: now.Add(600 * time.Second)},
		{name: "expired", key: "k", body: body, now: now.Add(601 * time.Second), want: ErrCallbackExpired},
		{name: "wrong key", key: "other", body: body, now: now, want: ErrCallbackSignature},
		{name: "body changed", key: "k", now: now, want: ErrCallbackSignature,
			body: []byte(strings.Replace(string(body), `"file_size":9749353`, `"file_size":1`, 1))},
		{name: "no signature header", key: "k", body: body, now: now, want: ErrCallbackSignature,
			header: func(h http.Header) { h.Del(HeaderSignature) }},
		{name: "event id header differs", key: "k", body: body, now: now, want: errAny,
			header: func(h http.Header) { h.Set(HeaderEventID, "100-other") }},
		{name: "not JSON", key: "k", body: []byte("nope"), now: now, want: errAny},
		{name: "no t", key: "k", body: []byte(`{"sign":"x"}`), now: now, want: errAny},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			hh := h.Clone()
			if c.header != nil {
				c.header(hh)
			}
			err := VerifyCallback(c.key, c.body, hh, c.now)
			switch {
			case c.want == nil && err != nil:
				t.Errorf("VerifyCallback = %v, want nil", err)
			case c.want == errAny && err == nil:
				t.Error("VerifyCallback = nil, want an error")
			case c.want != nil && c.want != errAny && !errors.Is(err, c.want):
				t.Errorf("VerifyCallback = %v, want %v", err, c.want)
			}
		})
	}
}

var errAny = errors.New("any error")

// sign = MD5(key + t), checked against Python's hashlib.md5(b"key1473126233").
func TestLVBSign(t *testing.T) {
	if got := lvbSign("key", 1473126233); got != "227b35a7a5d8f8bd9396a005e85efb7d" {
		t.Errorf("lvbSign = %s", got)
	}
}

func fieldNames(t *testing.T, ev Event) []string {
	t.Helper()
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func TestEventFieldsPerType(t *testing.T) {
	common := []string{"app", "channel_id", "event_id", "event_type", "sign", "stream_id", "t"}
	file := []string{"duration", "end_time", "file_format", "file_id", "file_size", "start_time", "stream_param", "video_id", "video_url"}
	with := func(extra ...string) []string {
		s := slices.Concat(common, extra)
		slices.Sort(s)
		return s
	}
	cases := []struct {
		name string
		ev   Event
		want []string
	}{
		{"push started", Event{EventType: EventPushStarted, ClientIP: "10.0.0.1"},
			with("stream_param", "client_ip")},
		{"push ended normally keeps errcode 0", Event{EventType: EventPushEnded, ErrMsg: PushEndNormal.String()},
			with("stream_param", "errcode", "errmsg")},
		{"recording ready, zero fields kept", Event{EventType: EventRecordingReady}, with(file...)},
		{"stitch done", Event{EventType: EventStitchDone}, with(slices.Concat(file, []string{"errcode", "errmsg"})...)},
		{"transcode done", Event{EventType: EventTranscodeDone},
			with(slices.Concat(file, []string{"errcode", "errmsg", "source_file_id", "template", "width", "height", "bitrate"})...)},
		{"snapshot", Event{EventType: EventSnapshot, FileID: "f"},
			with("file_id", "file_size", "width", "height", "pic_url", "pic_full_url", "create_time")},
		{"unknown type: only set fields", Event{EventType: 999, FileID: "x"}, with("file_id")},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := fieldNames(t, c.ev); !slices.Equal(got, c.want) {
				t.Errorf("fields\n got %v\nwant %v", got, c.want)
			}
		})
	}
}

func TestEventRoundTrip(t *testing.T) {
	ev := recordingEvent("rt")
	ev.ClientIP = "192.0.2.1"
	ev.Duration = 1799.96
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	var back Event
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back != ev {
		t.Errorf("round trip\n got %+v\nwant %+v", back, ev)
	}
}

func TestPushEndReason(t *testing.T) {
	for r, want := range map[PushEndReason]string{
		PushEndNormal: "normal", PushEndInterrupted: "interrupted", PushEndIdle: "idle", PushEndKicked: "kicked",
	} {
		if r.String() != want {
			t.Errorf("%d: %q, want %q", int(r), r.String(), want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	def := DefaultConfig()
	def.NodeID = "host-1.example"
	if err := def.Validate(); err != nil {
		t.Errorf("DefaultConfig with a node id: %v", err)
	}
	bad := Config{
		RedisAddr:    "no-port",
		NodeID:       "a/b",
		Serve:        ServeShared,
		CallbackURLs: []string{"ftp://x", "http://"},
	}
	err := bad.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"redis_addr", "node_id", "concurrency", "callback_urls[0]", "callback_urls[1]",
		"callback_key", "callback_timeout", "callback_retry_for", "retry_base_delay", "poll_interval"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	for _, c := range []struct {
		id, want string
	}{{"", "node_id is required"}, {strings.Repeat("n", 65), "longer than 64"}, {"a b", "only letters"}} {
		cfg := def
		cfg.NodeID = c.id
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("node_id %q: %v, want an error saying %q", c.id, err, c.want)
		}
	}
	worker := def
	worker.Serve = ServeShared
	if err := worker.Validate(); err == nil || !strings.Contains(err.Error(), "needs a shared redis_addr") {
		t.Errorf("a worker on the embedded queue: %v, want refused", err)
	}
	ok := def
	ok.Serve = ServeShared
	ok.RedisAddr = "redis://:secret@127.0.0.1:6379/3"
	ok.CallbackURLs = []string{"https://backend.example/hook"}
	ok.CallbackKey = "k"
	if err := ok.Validate(); err != nil {
		t.Errorf("Validate(%+v): %v", ok, err)
	}
}

func TestConfigYAML(t *testing.T) {
	cfg := DefaultConfig()
	src := `
redis_addr: 127.0.0.1:6379
node_id: edge-1
concurrency: 8
callback_urls: [http://a/hook, http://b/hook]
callback_key: secret
callback_timeout: 5s
callback_retry_for: 2h
retry_base_delay: 2s
poll_interval: 50ms
`
	if err := yaml.Unmarshal([]byte(src), &cfg); err != nil {
		t.Fatal(err)
	}
	want := Config{RedisAddr: "127.0.0.1:6379", Concurrency: 8, CallbackURLs: []string{"http://a/hook", "http://b/hook"},
		CallbackKey: "secret", CallbackTimeout: 5 * time.Second, CallbackRetryFor: 2 * time.Hour,
		RetryBaseDelay: 2 * time.Second, PollInterval: 50 * time.Millisecond}
	if !slices.Equal(cfg.CallbackURLs, want.CallbackURLs) {
		t.Errorf("urls %v", cfg.CallbackURLs)
	}
	cfg.CallbackURLs, want.CallbackURLs = nil, nil
	if cfg.NodeID != "edge-1" || cfg.Serve != ServeAll {
		t.Errorf("node_id %q, serve %v: want edge-1 and the default ServeAll", cfg.NodeID, cfg.Serve)
	}
	if cfg.RedisAddr != want.RedisAddr || cfg.Concurrency != want.Concurrency || cfg.CallbackKey != want.CallbackKey ||
		cfg.CallbackTimeout != want.CallbackTimeout || cfg.CallbackRetryFor != want.CallbackRetryFor ||
		cfg.RetryBaseDelay != want.RetryBaseDelay || cfg.PollInterval != want.PollInterval {
		t.Errorf("decoded %+v\nwant %+v", cfg, want)
	}
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for n := range 12 {
		got = append(got, retryDelay(time.Second, n))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600}
	for i := range want {
		want[i] *= time.Second
	}
	if !slices.Equal(got, want) {
		t.Errorf("delays %v, want %v", got, want)
	}
	// 1+2+…+512 s = 1023 s in 10 retries, then 600 s each until 24 h.
	n := retriesFor(24*time.Hour, time.Second)
	if n != 10+143 {
		t.Errorf("retriesFor(24h) = %d, want 153", n)
	}
	var total time.Duration
	for i := range n {
		total += retryDelay(time.Second, i)
	}
	if total < 24*time.Hour || total-retryDelay(time.Second, n-1) >= 24*time.Hour {
		t.Errorf("%d retries span %v, want just past 24h", n, total)
	}
}

// An event stored by an older version with the push credentials in stream_param
// (a delivery record, redelivered or shown by the API) goes out without them.
func TestEventNeverCarriesPushCredentials(t *testing.T) {
	for _, typ := range []EventType{EventPushStarted, EventPushEnded, EventRecordingReady} {
		ev := recordingEvent("f1")
		ev.EventType = typ
		ev.StreamParam = "foo=bar&record=mp4&txSecret=0123456789abcdef&txTime=5867D600"
		body, _ := signedRequest(t, "k", ev, time.Unix(1_700_000_000, 0))
		stored, err := json.Marshal(EventRecord{Event: ev})
		if err != nil {
			t.Fatal(err)
		}
		for what, b := range map[string][]byte{"callback body": body, "event record": stored} {
			var got struct {
				StreamParam string `json:"stream_param"`
			}
			if what == "event record" {
				var rec struct{ Event json.RawMessage }
				json.Unmarshal(b, &rec)
				b = rec.Event
			}
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			if got.StreamParam != "foo=bar&record=mp4" || strings.Contains(string(b), "0123456789abcdef") || strings.Contains(string(b), "5867D600") {
				t.Errorf("event %d %s: stream_param %q\n%s", typ, what, got.StreamParam, b)
			}
		}
	}
}
