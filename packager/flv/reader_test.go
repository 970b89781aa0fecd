package flv

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/livetape/livetape/media"
)

func encode(t testing.TB, pkts ...*media.Packet) []byte {
	t.Helper()
	b := Header(true, true)
	for _, p := range pkts {
		b = append(b, p.Tag...)
	}
	return b
}

func TestReaderRoundTrip(t *testing.T) {
	v, _ := media.NewPacket(media.KindVideo, 0x01000020, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65})
	a, _ := media.NewPacket(media.KindAudio, 23, []byte{0xaf, 1, 0x21})
	data := encode(t, v, a)
	r, err := NewReader(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []*media.Packet{v, a} {
		got, err := r.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		if got.Kind != want.Kind || got.Timestamp != want.Timestamp || !bytes.Equal(got.Tag, want.Tag) {
			t.Fatalf("got %v@%d, want %v@%d", got.Kind, got.Timestamp, want.Kind, want.Timestamp)
		}
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("end: err = %v, want io.EOF", err)
	}
	if r.Offset != int64(len(data)) {
		t.Errorf("offset = %d, want %d", r.Offset, len(data))
	}
	r, _ = NewReader(bytes.NewReader(data[:len(data)-2]))
	r.ReadPacket()
	if _, err := r.ReadPacket(); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("truncated: err = %v, want io.ErrUnexpectedEOF", err)
	}
	if _, err := NewReader(bytes.NewReader([]byte("RTMP garbage"))); !errors.Is(err, ErrNotFLV) {
		t.Errorf("garbage: err = %v", err)
	}
}

func FuzzReader(f *testing.F) {
	v, _ := media.NewPacket(media.KindVideo, 40, []byte{0x17, 1, 0, 0, 0, 0, 0, 0, 1, 0x65})
	f.Add(encode(f, v))
	f.Add([]byte("FLV\x01\x05\x00\x00\x00\x09\x00\x00\x00\x00\x12\x00\x00\x03"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for i := 0; i < 1000; i++ {
			p, err := r.ReadPacket()
			if err != nil {
				return
			}
			if len(p.Body()) > len(b) {
				t.Fatalf("body of %d bytes from %d bytes of input", len(p.Body()), len(b))
			}
		}
	})
}
