package live

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// rawRTMP is a hand-rolled RTMP client for hostile input: it writes chunks exactly as
// a test builds them, which no well-behaved client library does.
type rawRTMP struct {
	net.Conn
}

const rtmpHandshakeSize = 1536

// dialRaw connects and completes the RTMP handshake.
func dialRaw(t testing.TB, addr string) *rawRTMP {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(30 * time.Second))
	if err := clientHandshake(nc); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	return &rawRTMP{Conn: nc}
}

// clientHandshake sends C0 C1, reads S0 S1 S2 and echoes S1 as C2.
func clientHandshake(rw io.ReadWriter) error {
	c0c1 := make([]byte, 1+rtmpHandshakeSize)
	c0c1[0] = 3
	errc := make(chan error, 1)
	go func() { _, err := rw.Write(c0c1); errc <- err }() // net.Pipe: S0 comes back while C1 is written
	s := make([]byte, 1+2*rtmpHandshakeSize)
	if _, err := io.ReadFull(rw, s); err != nil {
		return err
	}
	if err := <-errc; err != nil {
		return err
	}
	s1 := s[1 : 1+rtmpHandshakeSize]
	c2 := make([]byte, rtmpHandshakeSize)
	copy(c2[:4], s1[:4])
	copy(c2[8:], s1[8:])
	_, err := rw.Write(c2)
	return err
}

// chunkMessage encodes one message as a type-0 chunk and type-3 continuations of
// chunkSize bytes. With an extended timestamp, repeatExt puts it in the type-3
// chunks too (RTMP 5.3.1.3, as ffmpeg and OBS write); without, as rtmpdump does.
func chunkMessage(csid int, typeID byte, streamID, ts uint32, payload []byte, chunkSize int, repeatExt bool) []byte {
	var b bytes.Buffer
	ext := ts >= 0xffffff
	b.WriteByte(byte(csid)) // fmt 0, csid 2..63
	field := ts
	if ext {
		field = 0xffffff
	}
	b.Write([]byte{byte(field >> 16), byte(field >> 8), byte(field)})
	b.Write([]byte{byte(len(payload) >> 16), byte(len(payload) >> 8), byte(len(payload))})
	b.WriteByte(typeID)
	binary.Write(&b, binary.LittleEndian, streamID)
	if ext {
		binary.Write(&b, binary.BigEndian, ts)
	}
	for i := 0; i < len(payload); i += chunkSize {
		if i > 0 {
			b.WriteByte(0xc0 | byte(csid)) // fmt 3
			if ext && repeatExt {
				binary.Write(&b, binary.BigEndian, ts)
			}
		}
		b.Write(payload[i:min(i+chunkSize, len(payload))])
	}
	return b.Bytes()
}

// amf0 builds AMF0 values for command bodies.
type amf0 struct{ bytes.Buffer }

func (a *amf0) str(s string) *amf0 {
	a.WriteByte(0x02)
	binary.Write(a, binary.BigEndian, uint16(len(s)))
	a.WriteString(s)
	return a
}

func (a *amf0) num(f float64) *amf0 {
	a.WriteByte(0x00)
	binary.Write(a, binary.BigEndian, f)
	return a
}

func (a *amf0) null() *amf0 { a.WriteByte(0x05); return a }

// object writes an object of string properties.
func (a *amf0) object(kv ...string) *amf0 {
	a.WriteByte(0x03)
	for i := 0; i+1 < len(kv); i += 2 {
		binary.Write(a, binary.BigEndian, uint16(len(kv[i])))
		a.WriteString(kv[i])
		a.str(kv[i+1])
	}
	a.Write([]byte{0, 0, 0x09})
	return a
}

// nested writes depth objects, each the only property "a" of the one around it.
func (a *amf0) nested(depth int) *amf0 {
	for range depth {
		a.Write([]byte{0x03, 0, 1, 'a'})
	}
	a.WriteByte(0x05)
	for range depth {
		a.Write([]byte{0, 0, 0x09})
	}
	return a
}

const (
	typeCommandAMF0 = 20
	typeVideo       = 9
)

func (c *rawRTMP) send(t testing.TB, b []byte) {
	t.Helper()
	if _, err := c.Write(b); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// connect sends a well-formed connect for app.
func (c *rawRTMP) connect(t testing.TB, app string) {
	t.Helper()
	c.send(t, connectCommand(app))
}

func connectCommand(app string) []byte {
	var a amf0
	a.str("connect").num(1).object("app", app, "type", "nonprivate", "flashVer", "FMLE/3.0 (compatible; FMSc/1.0)", "tcUrl", "rtmp://localhost/"+app)
	return chunkMessage(3, typeCommandAMF0, 0, 0, a.Bytes(), 128, false)
}

// publishCommands are what ffmpeg sends to publish app/name: connect, createStream and
// publish (the stream id is then 1).
func publishCommands(app, name string) []byte {
	var create, publish amf0
	create.str("createStream").num(2).null()
	publish.str("publish").num(3).null().str(name).str("live")
	b := connectCommand(app)
	b = append(b, chunkMessage(3, typeCommandAMF0, 0, 0, create.Bytes(), 128, false)...)
	return append(b, chunkMessage(8, typeCommandAMF0, 1, 0, publish.Bytes(), 128, false)...)
}

// waitClosed reads until the server closes the connection, failing after 20 s.
func (c *rawRTMP) waitClosed(t testing.TB) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err := io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the server did not close the connection")
	}
}

// playCommands are what ffmpeg sends to play app/name: connect, createStream and play
// on message stream 1.
func playCommands(app, name string) []byte {
	var create, play amf0
	create.str("createStream").num(2).null()
	play.str("play").num(3).null().str(name).num(-2000)
	b := connectCommand(app)
	b = append(b, chunkMessage(3, typeCommandAMF0, 0, 0, create.Bytes(), 128, false)...)
	return append(b, chunkMessage(8, typeCommandAMF0, 1, 0, play.Bytes(), 128, false)...)
}
