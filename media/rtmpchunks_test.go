package media

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// A packet is chunk-encoded once per (chunk stream, message stream, chunk size): a
// type-0 header with the absolute timestamp, then type-3 chunks, each repeating an
// extended timestamp (RTMP 5.3.1.3).
func TestRTMPChunks(t *testing.T) {
	body := bytes.Repeat([]byte{0x27, 1, 2, 3, 4}, 60) // 300 bytes: chunks of 128, 128, 44
	for _, ts := range []uint32{1234, 0xffffff, 0x12345678} {
		p, err := NewPacket(KindVideo, ts, body)
		if err != nil {
			t.Fatal(err)
		}
		c := p.RTMPChunks(7, 1, 128)
		if p.RTMPChunks(7, 1, 128) != c {
			t.Error("same arguments: chunks made again")
		}
		if other := p.RTMPChunks(7, 2, 128); other == c || other.StreamID != 2 {
			t.Error("another message stream got the cached chunks")
		}
		var wire []byte
		for _, b := range c.Bufs {
			wire = append(wire, b...)
		}
		ext := ts >= 0xffffff
		h := wire[:12]
		field := uint32(h[1])<<16 | uint32(h[2])<<8 | uint32(h[3])
		length := int(h[4])<<16 | int(h[5])<<8 | int(h[6])
		if h[0] != 7 || length != len(body) || h[7] != 9 || binary.LittleEndian.Uint32(h[8:12]) != 1 {
			t.Fatalf("ts %#x: type-0 header % x", ts, h)
		}
		rest := wire[12:]
		if ext {
			if field != 0xffffff || binary.BigEndian.Uint32(rest) != ts {
				t.Fatalf("ts %#x: timestamp field %#x, extended % x", ts, field, rest[:4])
			}
			rest = rest[4:]
		} else if field != ts {
			t.Fatalf("ts %#x: timestamp field %#x", ts, field)
		}
		var got []byte
		for i := 0; len(rest) > 0; i++ {
			if i > 0 {
				if rest[0] != 0xc0|7 {
					t.Fatalf("ts %#x: chunk %d header %#x, want type 3 on csid 7", ts, i, rest[0])
				}
				rest = rest[1:]
				if ext {
					if binary.BigEndian.Uint32(rest) != ts {
						t.Fatalf("ts %#x: chunk %d does not repeat the extended timestamp", ts, i)
					}
					rest = rest[4:]
				}
			}
			n := min(128, len(rest), len(body)-len(got))
			got, rest = append(got, rest[:n]...), rest[n:]
		}
		if !bytes.Equal(got, body) {
			t.Errorf("ts %#x: payload differs", ts)
		}
	}
}

// The chunks refer to the packet's body instead of copying it: a packet in the GOP
// cache would otherwise be held twice. A body within one chunk is two buffers, the
// header and the body.
func TestRTMPChunksShareBody(t *testing.T) {
	p, err := NewPacket(KindVideo, 40, bytes.Repeat([]byte{0x27, 1}, 500))
	if err != nil {
		t.Fatal(err)
	}
	c := p.RTMPChunks(7, 1, 60000)
	if len(c.Bufs) != 2 || len(c.Bufs[0]) != 12 || &c.Bufs[1][0] != &p.Body()[0] || len(c.Bufs[1]) != len(p.Body()) {
		t.Fatalf("one-chunk message: %d buffers, want the 12-byte header and the packet's own body", len(c.Bufs))
	}
	c = p.RTMPChunks(7, 1, 128)
	for i := 1; i < len(c.Bufs); i += 2 {
		if &c.Bufs[i][0] != &p.Body()[(i/2)*128] {
			t.Fatalf("chunk %d is a copy of the body", i/2)
		}
	}
}
