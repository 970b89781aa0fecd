// Package media is the packet model shared by every livetape package: an FLV-style
// packet (audio, video or script data with a millisecond timestamp) and the codec
// configurations carried by sequence headers.
package media

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Kind is the FLV tag type of a packet.
type Kind uint8

// Packet kinds, numbered as FLV tag types (E.4.1).
const (
	KindAudio Kind = 8
	KindVideo Kind = 9
	KindData  Kind = 18
)

func (k Kind) String() string {
	switch k {
	case KindAudio:
		return "audio"
	case KindVideo:
		return "video"
	case KindData:
		return "data"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// FLV codec ids this package understands.
const (
	VideoCodecAVC  = 7  // VideoTagHeader CodecID
	AudioFormatAAC = 10 // AudioTagHeader SoundFormat
)

// TagHeaderSize and PrevSizeLen frame an FLV tag: 11 bytes of header before the body,
// 4 bytes of PreviousTagSize after it.
const (
	TagHeaderSize = 11
	PrevSizeLen   = 4
)

// MaxBodySize is the largest tag body FLV can describe (DataSize is 24 bits).
const MaxBodySize = 1<<24 - 1

// ErrBodyTooLarge is returned for a body that does not fit an FLV tag.
var ErrBodyTooLarge = errors.New("media: packet body larger than 16 MiB")

// Packet is one audio, video or data message. It is immutable once built and shared
// by every reader of a stream: the FLV tag is serialized once, when the packet is made,
// and every HTTP-FLV viewer and recorder writes the same bytes.
type Packet struct {
	Kind      Kind
	Timestamp uint32 // decode time in milliseconds (FLV/RTMP timestamp)
	// Keyframe is set on video key frames; audio and data packets are always
	// keyframes (any of them can start playback).
	Keyframe bool
	// SequenceHeader is set on AVC decoder configuration records and AAC
	// AudioSpecificConfigs: codec setup, not media.
	SequenceHeader bool
	// CompositionTime is PTS-DTS in milliseconds (AVC only).
	CompositionTime int32
	// Tag is the whole FLV tag: header, body and PreviousTagSize.
	Tag []byte
}

// NewPacket builds a packet from an FLV tag body (the payload of an RTMP audio, video or
// data message), copying body into the packet's own serialized tag.
func NewPacket(kind Kind, timestamp uint32, body []byte) (*Packet, error) {
	if len(body) > MaxBodySize {
		return nil, ErrBodyTooLarge
	}
	tag := make([]byte, TagHeaderSize+len(body)+PrevSizeLen)
	copy(tag[TagHeaderSize:], body)
	p := &Packet{Kind: kind, Timestamp: timestamp, Tag: tag}
	p.encodeHeader()
	p.parseFlags()
	return p, nil
}

// WithTimestamp returns a copy of p re-stamped at ts (e.g. to make a recording start at 0).
func (p *Packet) WithTimestamp(ts uint32) *Packet {
	q := *p
	q.Tag = append([]byte(nil), p.Tag...)
	q.Timestamp = ts
	q.encodeHeader()
	return &q
}

// Body is the FLV tag body: for video the VideoTagHeader and its data, for audio the
// AudioTagHeader and its data, for data packets AMF0 values.
func (p *Packet) Body() []byte { return p.Tag[TagHeaderSize : len(p.Tag)-PrevSizeLen] }

// encodeHeader writes the FLV tag header and PreviousTagSize around the body (E.4.1).
func (p *Packet) encodeHeader() {
	n := len(p.Tag) - TagHeaderSize - PrevSizeLen
	h := p.Tag
	h[0] = byte(p.Kind)
	h[1], h[2], h[3] = byte(n>>16), byte(n>>8), byte(n)
	h[4], h[5], h[6] = byte(p.Timestamp>>16), byte(p.Timestamp>>8), byte(p.Timestamp)
	h[7] = byte(p.Timestamp >> 24) // TimestampExtended
	h[8], h[9], h[10] = 0, 0, 0    // StreamID
	binary.BigEndian.PutUint32(p.Tag[len(p.Tag)-PrevSizeLen:], uint32(TagHeaderSize+n))
}

func (p *Packet) parseFlags() {
	b := p.Body()
	switch p.Kind {
	case KindVideo:
		if len(b) == 0 {
			return
		}
		p.Keyframe = b[0]>>4 == 1
		if b[0]&0x0f == VideoCodecAVC && len(b) >= 5 {
			p.SequenceHeader = b[1] == 0
			ct := int32(uint32(b[2])<<16 | uint32(b[3])<<8 | uint32(b[4]))
			p.CompositionTime = ct << 8 >> 8 // sign-extend SI24
		}
	case KindAudio:
		p.Keyframe = true
		p.SequenceHeader = len(b) >= 2 && b[0]>>4 == AudioFormatAAC && b[1] == 0
	default:
		p.Keyframe = true
	}
}

// VideoCodec returns the FLV CodecID of a video packet.
func (p *Packet) VideoCodec() uint8 {
	if b := p.Body(); p.Kind == KindVideo && len(b) > 0 {
		return b[0] & 0x0f
	}
	return 0
}

// AudioFormat returns the FLV SoundFormat of an audio packet.
func (p *Packet) AudioFormat() uint8 {
	if b := p.Body(); p.Kind == KindAudio && len(b) > 0 {
		return b[0] >> 4
	}
	return 0
}

// Payload is the codec data after the FLV audio/video tag header: AVCC NAL units or an
// AVCDecoderConfigurationRecord for AVC, a raw AAC frame or AudioSpecificConfig for AAC.
// It is nil when the packet carries another codec or is too short.
func (p *Packet) Payload() []byte {
	b := p.Body()
	switch {
	case p.Kind == KindVideo && p.VideoCodec() == VideoCodecAVC && len(b) >= 5:
		return b[5:]
	case p.Kind == KindAudio && p.AudioFormat() == AudioFormatAAC && len(b) >= 2:
		return b[2:]
	}
	return nil
}
