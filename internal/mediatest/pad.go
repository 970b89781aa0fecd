package mediatest

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/livetape/livetape/media"
)

// PadVideo appends a filler data NAL unit (H.264 7.3.2.7, type 12) so the AVC frame p
// is size bytes: bigger, still decodable frames for a realistic bitrate. Sequence
// headers and frames already that big come back as they are.
func PadVideo(t testing.TB, p *media.Packet, size int) *media.Packet {
	b := p.Body()
	if len(b) < 5 || b[1] != 1 || len(p.Payload())+6 > size {
		return p
	}
	n := size - len(p.Payload()) - 4 // NAL unit bytes after its length
	body := make([]byte, len(b), len(b)+4+n)
	copy(body, b)
	body = binary.BigEndian.AppendUint32(body, uint32(n))
	body = append(body, 12)
	body = append(body, bytes.Repeat([]byte{0xff}, n-2)...)
	body = append(body, 0x80) // rbsp_trailing_bits
	q, err := media.NewPacket(p.Kind, p.Timestamp, body)
	if err != nil {
		t.Fatal(err)
	}
	return q
}
