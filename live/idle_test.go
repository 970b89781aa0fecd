package live

import (
	"testing"
	"time"

	"github.com/yutopp/go-rtmp"
	"github.com/yutopp/go-rtmp/message"

	"github.com/livetape/livetape/live/sign"
	"github.com/livetape/livetape/stream"
)

// A publisher that goes silent is dropped after the idle timeout, so the broadcaster's
// reconnect is not locked out by its own dead connection.
func TestIdlePublisherDropped(t *testing.T) {
	obs := newRecordingObserver()
	s := startServer(t, func(c *Config) { c.IdleTimeout = time.Second }, obs)

	silent := publishSilently(t, s.rtmpAddr, "again")
	defer silent.Close()
	if ev := obs.next(t); ev.kind != "start" {
		t.Fatalf("event %s, want start", ev.kind)
	}
	if ev := obs.next(t); ev.kind != "end" || ev.reason != stream.EndIdle {
		t.Fatalf("event %s %s, want end idle", ev.kind, ev.reason)
	}
	// The stream id is free again for the reconnect.
	second := publishSilently(t, s.rtmpAddr, "again")
	defer second.Close()
	if ev := obs.next(t); ev.kind != "start" {
		t.Fatalf("reconnect: event %s, want start", ev.kind)
	}
}

// publishSilently publishes app "live" stream id and then sends nothing.
func publishSilently(t *testing.T, addr, id string) *rtmp.ClientConn {
	t.Helper()
	cc, err := rtmp.Dial("rtmp", addr, &rtmp.ConnConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := cc.Connect(&message.NetConnectionConnect{Command: message.NetConnectionConnectCommand{App: "live"}}); err != nil {
		t.Fatal(err)
	}
	st, err := cc.CreateStream(nil, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(&message.NetStreamPublish{PublishingName: id, PublishingType: "live"}); err != nil {
		t.Fatal(err)
	}
	return cc
}

// Some encoders send the push URL's query on the tcUrl, not in the publishing name.
func TestSignatureOnTcURL(t *testing.T) {
	obs := newRecordingObserver()
	s := startServer(t, func(c *Config) { c.PushKey = "k" }, obs)
	q := sign.Query("k", "tc", time.Now().Add(time.Hour)).Encode() + "&record=flv"
	cc, err := rtmp.Dial("rtmp", s.rtmpAddr, &rtmp.ConnConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	if err := cc.Connect(&message.NetConnectionConnect{Command: message.NetConnectionConnectCommand{
		App: "live", TCURL: "rtmp://" + s.rtmpAddr + "/live?" + q,
	}}); err != nil {
		t.Fatal(err)
	}
	st, err := cc.CreateStream(nil, 4096)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Publish(&message.NetStreamPublish{PublishingName: "tc", PublishingType: "live"}); err != nil {
		t.Fatal(err)
	}
	ev := obs.next(t)
	if ev.kind != "start" || ev.pub.Params.StreamID != "tc" || len(ev.pub.Params.Record) != 1 {
		t.Fatalf("event %+v", ev)
	}
}
