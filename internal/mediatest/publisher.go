package mediatest

import (
	"bytes"
	"fmt"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
	"github.com/yutopp/go-rtmp"
	rtmpmsg "github.com/yutopp/go-rtmp/message"

	"github.com/livetape/livetape/media"
)

// Publisher pushes packets over RTMP with exactly the timestamps a test gives, where an
// ffmpeg push can only approximate them: late, repeated, backwards or jumping
// timestamps, extended (≥ 0xFFFFFF) ones, a known amount of media before a kill.
type Publisher struct {
	conn   *rtmp.ClientConn
	stream *rtmp.Stream
}

// Chunk stream ids a publisher sends media on (as ffmpeg does).
const (
	pubCSIDData  = 4
	pubCSIDAudio = 4
	pubCSIDVideo = 6
)

// PublishRTMP connects to rtmpURL (rtmp://HOST:PORT/APP/NAME?QUERY) and publishes.
// The go-rtmp client does not wait for the server's answer to publish: a refused push
// shows as a write error or a closed connection (Publisher.Err). The connection is
// closed when the test ends.
func PublishRTMP(t testing.TB, rtmpURL string) *Publisher {
	t.Helper()
	u, err := url.Parse(rtmpURL)
	if err != nil {
		t.Fatal(err)
	}
	app, name, ok := strings.Cut(strings.TrimPrefix(u.Path, "/"), "/")
	if !ok {
		t.Fatalf("publish %s: want rtmp://host/app/name", rtmpURL)
	}
	if u.RawQuery != "" {
		name += "?" + u.RawQuery
	}
	log := logrus.New()
	log.Out = io.Discard
	conn, err := rtmp.Dial("rtmp", u.Host, &rtmp.ConnConfig{Logger: log})
	if err != nil {
		t.Fatalf("publish %s: dial: %v", rtmpURL, err)
	}
	p := &Publisher{conn: conn}
	t.Cleanup(func() { conn.Close() })
	tcURL := "rtmp://" + u.Host + "/" + app
	if err := conn.Connect(&rtmpmsg.NetConnectionConnect{Command: rtmpmsg.NetConnectionConnectCommand{
		App: app, Type: "nonprivate", FlashVer: "FMLE/3.0 (compatible; livetape-test)", TCURL: tcURL,
	}}); err != nil {
		t.Fatalf("publish %s: connect: %v", rtmpURL, err)
	}
	p.stream, err = conn.CreateStream(&rtmpmsg.NetConnectionCreateStream{}, 4096)
	if err != nil {
		t.Fatalf("publish %s: createStream: %v", rtmpURL, err)
	}
	if err := p.stream.Publish(&rtmpmsg.NetStreamPublish{PublishingName: name, PublishingType: "live"}); err != nil {
		t.Fatalf("publish %s: publish: %v", rtmpURL, err)
	}
	return p
}

// Write sends one audio, video or script data message (an FLV tag body) with timestamp ts.
func (p *Publisher) Write(kind media.Kind, ts uint32, body []byte) error {
	var msg rtmpmsg.Message
	csid := pubCSIDVideo
	switch kind {
	case media.KindAudio:
		msg, csid = &rtmpmsg.AudioMessage{Payload: bytes.NewReader(body)}, pubCSIDAudio
	case media.KindVideo:
		msg = &rtmpmsg.VideoMessage{Payload: bytes.NewReader(body)}
	case media.KindData:
		// "@setDataFrame", then the script tag body as it is ("onMetaData" and its
		// object): go-rtmp's NetStreamSetDataFrame encoder would drop the payload.
		msg, csid = &rtmpmsg.DataMessage{Name: "@setDataFrame", Encoding: rtmpmsg.EncodingTypeAMF0, Body: bytes.NewReader(body)}, pubCSIDData
	default:
		return fmt.Errorf("publish: unknown packet kind %v", kind)
	}
	return p.stream.Write(csid, ts, msg)
}

// WritePacket sends pkt with its own timestamp.
func (p *Publisher) WritePacket(pkt *media.Packet) error {
	return p.Write(pkt.Kind, pkt.Timestamp, pkt.Body())
}

// Err is the connection's last error (set once the server closed it).
func (p *Publisher) Err() error { return p.conn.LastError() }

// Unpublish ends the push normally (FCUnpublish's effect: deleteStream) and closes
// the connection.
func (p *Publisher) Unpublish() error {
	err := p.conn.DeleteStream(&rtmpmsg.NetStreamDeleteStream{StreamID: p.stream.StreamID()})
	if cerr := p.conn.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close drops the connection without unpublishing: the server sees an interrupted push.
func (p *Publisher) Close() error { return p.conn.Close() }
