// Package flv reads and writes FLV files and tags (Adobe Flash Video File Format
// Specification v10.1, annex E) and the AMF0 script data they carry.
package flv

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/livetape/livetape/media"
)

// HeaderSize is the size of the FLV file header plus PreviousTagSize0.
const HeaderSize = 9 + 4

// ErrNotFLV is returned when a stream does not start with an FLV header.
var ErrNotFLV = errors.New("flv: not an FLV stream (bad signature)")

// Header flags (E.2).
const (
	FlagAudio = 0x04
	FlagVideo = 0x01
)

// Header returns the FLV file header and PreviousTagSize0 for the given tracks.
func Header(audio, video bool) []byte {
	var flags byte
	if audio {
		flags |= FlagAudio
	}
	if video {
		flags |= FlagVideo
	}
	return []byte{'F', 'L', 'V', 1, flags, 0, 0, 0, 9, 0, 0, 0, 0}
}

// Reader reads packets from an FLV stream.
type Reader struct {
	r      io.Reader
	Flags  byte  // header TypeFlags
	Offset int64 // bytes consumed so far: the file position of the next tag
	hdr    [media.TagHeaderSize]byte
}

// NewReader reads the FLV header from r.
func NewReader(r io.Reader) (*Reader, error) {
	var h [9]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, fmt.Errorf("flv: read header: %w", err)
	}
	if h[0] != 'F' || h[1] != 'L' || h[2] != 'V' {
		return nil, ErrNotFLV
	}
	off := binary.BigEndian.Uint32(h[5:])
	if off < 9 || off > 1<<16 {
		return nil, fmt.Errorf("flv: header DataOffset %d out of range", off)
	}
	// Skip any extension of the header and PreviousTagSize0.
	if _, err := io.CopyN(io.Discard, r, int64(off-9)+4); err != nil {
		return nil, fmt.Errorf("flv: read header: %w", err)
	}
	return &Reader{r: r, Flags: h[4], Offset: int64(off) + 4}, nil
}

// ReadPacket reads the next tag. It returns io.EOF at a clean end of stream and
// io.ErrUnexpectedEOF for a tag cut short (a truncated file).
func (r *Reader) ReadPacket() (*media.Packet, error) {
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return nil, err
	}
	kind := media.Kind(r.hdr[0] & 0x1f)
	if r.hdr[0]&0x20 != 0 {
		return nil, fmt.Errorf("flv: encrypted tag at offset %d not supported", r.Offset)
	}
	size := int(r.hdr[1])<<16 | int(r.hdr[2])<<8 | int(r.hdr[3])
	ts := uint32(r.hdr[7])<<24 | uint32(r.hdr[4])<<16 | uint32(r.hdr[5])<<8 | uint32(r.hdr[6])
	body := make([]byte, size+media.PrevSizeLen)
	if _, err := io.ReadFull(r.r, body); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch kind {
	case media.KindAudio, media.KindVideo, media.KindData:
	default:
		return nil, fmt.Errorf("flv: unknown tag type %d at offset %d", kind, r.Offset)
	}
	r.Offset += int64(media.TagHeaderSize + len(body))
	return media.NewPacket(kind, ts, body[:size])
}
